"""The FastAPI application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from medlabel import __version__
from medlabel.services.actor import Clock, utcnow
from medlabel.settings import Settings
from medlabel.storage.db import Database
from medlabel.web import errors
from medlabel.web.context import AppContext
from medlabel.web.middleware import RequestLimitsMiddleware, SecurityHeadersMiddleware
from medlabel.web.routers import audit, auth, guidelines, health, label_schema, me, projects, users

STATIC_DIR = Path(__file__).with_name("static")
UPLOAD_PATH_SUFFIXES = ("/guidelines/assets",)


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock = utcnow) -> FastAPI:
    """Build the app for ``settings``; the database must already be migrated."""
    database = db or Database(settings.resolved_database_url())
    ctx = AppContext.build(settings, database, clock)
    app = FastAPI(
        title="medlabel",
        version=__version__,
        description="Trustworthy ground truth for healthcare AI. Authenticate with the "
        "session cookie (browser) or 'Authorization: Bearer <token>' (scripts).",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.ctx = ctx
    errors.install(app)

    def body_limit(path: str) -> int:
        if path.endswith(UPLOAD_PATH_SUFFIXES):
            return settings.max_upload_bytes
        return settings.max_json_bytes

    app.add_middleware(RequestLimitsMiddleware, limit_for=body_limit)
    app.add_middleware(SecurityHeadersMiddleware)
    for module in (health, auth, me, users, projects, label_schema, guidelines, audit):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app
