#!/usr/bin/env bash
# Installs the tests' OpenID Connect provider (npm oidc-provider, tests/oidc) from its lock
# file. Idempotent and quiet: reinstalls only when tests/oidc/node_modules is missing or
# package-lock.json changed since the last install (a stamp in node_modules holds its sha1).
set -euo pipefail
cd "$(dirname "$0")/../tests/oidc"
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found; install Node.js (20 or later) and npm to run the sign-in tests" >&2
  exit 1
fi
stamp=node_modules/.installed-$(sha1sum package-lock.json | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the test OpenID Connect provider (npm ci in tests/oidc)" >&2
  npm ci --no-audit --no-fund --silent >&2
  rm -f node_modules/.installed-* && touch "$stamp"
fi
