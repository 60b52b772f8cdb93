#!/usr/bin/env bash
# Creates .venv (once) and installs the project with its test tools into it, and makes
# sure the system libraries it prints letters with are there (ensure_system_libs.sh).
# Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing dependencies into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e ".[dev]" >&2
  rm -f .venv/.installed-* && touch "$stamp"
fi
# The system libraries PDF letters need (WeasyPrint: Pango, HarfBuzz, a font).
bash scripts/ensure_system_libs.sh
