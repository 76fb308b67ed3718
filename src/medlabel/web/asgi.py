"""ASGI entry point for multi-worker servers: settings come from MEDLABEL_* variables.

``uvicorn medlabel.web.asgi:app --workers 4`` (or gunicorn with uvicorn workers). Run
``medlabel db upgrade`` once before starting the workers. The workers do not re-queue
interrupted ingest jobs (every one of them would): ``medlabel serve --workers N`` does that
once before it starts them; with uvicorn directly, ``medlabel ingest --resume JOB``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Built on first access, not at import time.
    if name == "app":
        from medlabel.settings import Settings
        from medlabel.web.app import create_app

        settings = Settings()
        return create_app(settings, embedded_worker=settings.embedded_worker, resume_jobs=False)
    raise AttributeError(name)
