"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from medlabel import __version__
from medlabel.services import ingest as ingest_service
from medlabel.services.actor import Clock, utcnow
from medlabel.services.annotation_masks import MAX_MASK_VOXELS
from medlabel.settings import Settings, quiet_third_party_logs
from medlabel.storage.db import Database
from medlabel.web import errors
from medlabel.web.context import AppContext
from medlabel.web.middleware import RequestLimitsMiddleware, SecurityHeadersMiddleware
from medlabel.web.routers import (
    annotation_sets,
    audit,
    auth,
    guidelines,
    health,
    ingest,
    items,
    label_schema,
    me,
    projects,
    users,
)

STATIC_DIR = Path(__file__).with_name("static")
# The built front end (`npm run build` in frontend/, see docs/frontend.md). Without it (a
# backend-only checkout) "/" serves the minimal page in STATIC_DIR instead.
FRONTEND_DIST = Path(__file__).resolve().parents[3] / "frontend" / "dist"
UPLOAD_PATH_SUFFIXES = ("/guidelines/assets",)
# The largest mask body: a whole uint16 mask of the largest size, uncompressed.
MAX_MASK_BODY_BYTES = MAX_MASK_VOXELS * 2 + 65536


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    clock: Clock = utcnow,
    immediate_jobs: bool = False,
    embedded_worker: bool = False,
    resume_jobs: bool = True,
) -> FastAPI:
    """Build the app for ``settings``; the database must already be migrated.

    ``immediate_jobs`` runs background jobs inside the request (tests); ``embedded_worker``
    consumes the queue in threads of this process while the app runs (``medlabel serve``);
    ``resume_jobs`` re-queues, at start-up, the jobs a crash interrupted (only one process
    of a deployment may do that: ``medlabel serve --workers N`` does it once, before it
    starts the workers).
    """
    quiet_third_party_logs()
    database = db or Database(settings.resolved_database_url())
    ctx = AppContext.build(settings, database, clock, immediate_jobs=immediate_jobs)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if embedded_worker:
            ctx.queue.start_consumer(workers=1)
            if resume_jobs:
                # Jobs a crash interrupted carry on where they stopped.
                resume_interrupted_jobs(ctx)
        try:
            yield
        finally:
            if embedded_worker:
                ctx.queue.stop_consumer()

    app = FastAPI(
        lifespan=lifespan,
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
        if path.endswith("/ingest"):
            return settings.max_archive_bytes
        if path.startswith("/api/annotation-sets/") and "/masks/" in path:
            return MAX_MASK_BODY_BYTES
        return settings.max_json_bytes

    app.add_middleware(RequestLimitsMiddleware, limit_for=body_limit)
    app.add_middleware(SecurityHeadersMiddleware)
    # The pixel routes come first: they take most of the requests, and routes are matched
    # in order.
    for module in (
        items,
        annotation_sets,
        health,
        auth,
        me,
        users,
        projects,
        label_schema,
        guidelines,
        audit,
        ingest,
    ):
        app.include_router(module.router)

    # The hottest route, served by a plain Starlette route ahead of the documented one.
    app.router.routes.insert(
        0,
        Route("/api/items/{item_id:int}/frames/{k:int}/raw", items.raw_frame_fast, methods=["GET"]),
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if (FRONTEND_DIST / "index.html").is_file():
        app.mount("/assets", StaticFiles(directory=FRONTEND_DIST / "assets"), name="assets")
        # Asked only when no route matched the path (a wrong method is still a 405).
        app.router.default = SinglePageApp(FRONTEND_DIST / "index.html", app.router.default)
    else:

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def resume_interrupted_jobs(ctx: AppContext) -> int:
    """Queue again every ingest job a crash left unfinished; returns how many."""
    deps = ctx.ingest_deps()
    jobs = ingest_service.resumable_jobs(ctx.db, deps.staging_root)
    for job_id in jobs:
        ctx.queue.enqueue_ingest(job_id)
    return len(jobs)


class SinglePageApp:
    """The router's default for paths no route matched: the front end's index.html for a
    GET of a client-side route (``/``, ``/projects/demo``, ``/items/7`` ...); everything
    else goes to ``not_found`` (the usual 404 problem): API, docs and static paths, paths
    that look like files, and other methods."""

    RESERVED = frozenset({"api", "assets", "static", "docs", "redoc", "healthz", "readyz"})

    def __init__(self, index: Path, not_found: ASGIApp) -> None:
        self.index = index
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        segments = path.strip("/").split("/")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or segments[0] in self.RESERVED
            or "." in segments[-1]
        ):
            await self.not_found(scope, receive, send)
            return
        response = FileResponse(self.index, headers={"Cache-Control": "no-cache"})
        await response(scope, receive, send)
