#!/usr/bin/env bash
# Build the front end into frontend/dist (served by `medlabel serve` at "/").
# npm packages are installed with `npm ci` from package-lock.json only when the lock file
# changed; the build runs only when a source file changed.
# Usage: scripts/build-frontend.sh [--check]
#   --check  also type-checks (tsc --noEmit), runs the unit tests (vitest) and checks that
#            src/api/schema.d.ts is what openapi-typescript makes of src/api/openapi.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-node.sh >/dev/null
cd frontend

installed="node_modules/.medlabel-installed"
if [ ! -f "$installed" ] || [ package-lock.json -nt "$installed" ] || [ package.json -nt "$installed" ]; then
  echo "== npm ci (frontend/package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$installed"
fi

if [ "${1:-}" = "--check" ]; then
  echo "== tsc --noEmit (strict)"
  npm run --silent typecheck
  echo "== vitest"
  npm test --silent
  echo "== schema.d.ts matches openapi.json"
  npm run --silent check:api
fi

built="dist/.medlabel-built"
if [ ! -f "$built" ] || [ -n "$(find src index.html vite.config.ts tsconfig.json package-lock.json \
    -newer "$built" -print -quit)" ]; then
  echo "== vite build -> frontend/dist"
  npm run --silent build
  touch "$built"
fi
