"""Options shared by the ``medlabel`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="MEDLABEL_DATA_DIR", help="Data directory (database, blobs, secrets)."
    ),
]
DEFAULT_DATA_DIR = Path("./medlabel-data")
