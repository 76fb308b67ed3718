"""Print the server's OpenAPI document as JSON, without a running server or a database.

The app is built with a throwaway data directory (nothing is read from or written to a
real one) and ``app.openapi()`` is serialised with sorted keys, so the output is stable
and can be committed: ``frontend/src/api/openapi.json`` is this script's output, and the
front end's TypeScript types (``schema.d.ts``) are generated from it.

Usage: .venv/bin/python scripts/dump_openapi.py [OUT.json]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from medlabel.settings import Settings
from medlabel.storage.db import Database
from medlabel.web.app import create_app


def openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="medlabel-openapi-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        db = Database(f"sqlite:///{Path(tmp) / 'unused.db'}")
        try:
            return create_app(settings, db=db).openapi()
        finally:
            db.dispose()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
