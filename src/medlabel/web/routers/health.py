"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from medlabel.storage import migrate
from medlabel.web.deps import Ctx

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: Ctx) -> JSONResponse:
    """The database answers and its schema is at the code's migration head."""

    def check() -> tuple[bool, str]:
        try:
            ctx.db.ping()
            current = migrate.current_revision(ctx.db.engine)
        except Exception:  # any database failure means "not ready"
            return False, "database unreachable"
        head = migrate.head_revision()
        if current != head:
            return False, f"database at migration {current}, code expects {head}"
        return True, "ok"

    ok, detail = await run_in_threadpool(check)
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "detail": detail}, status_code=200 if ok else 503
    )
