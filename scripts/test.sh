#!/usr/bin/env bash
# Sets up .venv (see bootstrap.sh) and runs the whole test suite. Extra args go to pytest.
# The browser tests drive Debian's chromium (installed here from apt, never downloaded by
# Playwright) and sign in through a real OpenID Connect provider (npm oidc-provider,
# installed by ensure_oidc_provider.sh from its lock file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
EXTRA_PACKAGES="chromium" bash scripts/ensure_system_libs.sh
bash scripts/ensure_oidc_provider.sh
bash scripts/ensure_postgres.sh
# Two pytest workers (pytest-xdist): the suite waits on servers and subprocesses much of
# the time, so two halve it on two cores. TEST_WORKERS=0 runs it in one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" "$@"
