#!/usr/bin/env bash
# Sets up .venv (see bootstrap.sh) and runs the main job. Extra args go to `complaints`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "$#" -eq 0 ]; then
  set -- dev
fi
exec .venv/bin/complaints "$@"
