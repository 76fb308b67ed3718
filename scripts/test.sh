#!/usr/bin/env bash
# The whole test suite on a fresh machine: dependencies, PostgreSQL, Chromium, the front end
# (npm ci, tsc, vitest, build), lint, types, then pytest on SQLite and PostgreSQL (the
# browser tests drive the built front end). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh --dev
MEDLABEL_TEST_PG_URL="$(scripts/ensure-postgres.sh | tail -n 1)"
MEDLABEL_TEST_CHROMIUM="$(scripts/ensure-chromium.sh | tail -n 1)"
export MEDLABEL_TEST_PG_URL MEDLABEL_TEST_CHROMIUM
export MEDLABEL_TEST_REQUIRE_PG=1 MEDLABEL_TEST_REQUIRE_BROWSER=1 MEDLABEL_TEST_REQUIRE_DATA=1
export MEDLABEL_TEST_REQUIRE_FRONTEND=1
echo "== front end (frontend/: npm ci when the lock changed, tsc, vitest, vite build)"
scripts/build-frontend.sh --check
echo "== real medical sample files (data/manifest.json tiers test + demo, sha256-checked)"
.venv/bin/python scripts/fetch_data.py --tier test --tier demo

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict (domain, services)"
.venv/bin/mypy
echo "== pytest (SQLite and PostgreSQL)"
.venv/bin/pytest -n 2 --dist loadfile "$@"
