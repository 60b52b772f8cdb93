#!/usr/bin/env bash
# Sets up .venv (see bootstrap.sh) and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/ensure_postgres.sh
exec .venv/bin/python -m pytest "$@"
