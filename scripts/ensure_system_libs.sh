#!/usr/bin/env bash
# Makes sure the system libraries WeasyPrint prints letters to PDF with are installed:
# Pango (text layout), HarfBuzz's subsetter (small embedded fonts, fast) and a font.
# Idempotent and quiet: does nothing when the Debian packages are installed; otherwise
# installs them with apt-get (needs root or passwordless sudo). The Dockerfile installs
# the same packages into the worker image.
set -euo pipefail
PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core ${EXTRA_PACKAGES:-})
if ! command -v dpkg-query >/dev/null; then
  # Not Debian/Ubuntu: say what is needed if the libraries cannot be found, and go on.
  if ! ldconfig -p 2>/dev/null | grep -q "libpangoft2-1.0.so"; then
    echo "ensure_system_libs: WeasyPrint needs Pango (libpango, libpangoft2), HarfBuzz" \
         "(libharfbuzz-subset) and a font: install them with your package manager" >&2
  fi
  exit 0
fi
missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "ensure_system_libs: ${missing[*]} missing and installing needs root:" \
         "run 'apt-get install -y ${missing[*]}' as root" >&2
    exit 1
  fi
fi
echo "setup: installing ${missing[*]} (apt-get install)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! log=$({ $SUDO apt-get update -qq \
             && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } 2>&1); then
  echo "$log" >&2
  echo "ensure_system_libs: could not install ${missing[*]}" >&2
  exit 1
fi
