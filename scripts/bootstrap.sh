#!/usr/bin/env bash
# Create .venv and install medlabel with pinned dependencies (constraints.txt).
# Usage: scripts/bootstrap.sh [--dev]     (--dev adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "medlabel needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

stamp=".venv/.medlabel-installed${extras:+-dev}"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c constraints.txt -e ".${extras}"
touch "$stamp"
