#!/usr/bin/env bash
# Set everything up and run medlabel with the demo project on the embedded default
# (SQLite in ./medlabel-data). Prints the URL and the login, then serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/medlabel demo --serve --data-dir "${MEDLABEL_DATA_DIR:-./medlabel-data}" \
  --host "${MEDLABEL_HOST:-127.0.0.1}" --port "${MEDLABEL_PORT:-8000}"
