#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries the tests run (tests/pg.py) are installed.
# Idempotent and quiet: does nothing when /usr/lib/postgresql/*/bin/initdb exists; otherwise
# installs Debian's postgresql (needs root or passwordless sudo). The tests start their own
# throwaway server; the package's default cluster is neither needed nor started here.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "ensure_postgres: PostgreSQL is missing and installing it needs root:" \
         "run 'apt-get install -y postgresql' as root" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure_postgres: PostgreSQL is missing and this is not a Debian/Ubuntu system:" \
       "install the PostgreSQL server (initdb, pg_ctl) with your package manager" >&2
  exit 1
fi
echo "setup: installing PostgreSQL (apt-get install postgresql)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "ensure_postgres: postgresql installed but no /usr/lib/postgresql/*/bin/initdb" >&2
  exit 1
fi
