"""The one place where errors become HTTP responses (RFC 9457 problem details).

Expected errors (:class:`MedlabelError`) keep their message; validation errors list the
offending fields without echoing the submitted values (which may hold passwords); anything
unexpected becomes a generic 500 that names only a correlation id, with the traceback in
the server log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medlabel.domain.audit import Outcome
from medlabel.domain.errors import MedlabelError
from medlabel.services import audit
from medlabel.services.actor import Actor
from medlabel.web.middleware import security_headers

log = logging.getLogger("medlabel.web")
PROBLEM = "application/problem+json"


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def problem(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://medlabel.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "correlation_id": request_id(request),
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def _audit_denied(request: Request, exc: MedlabelError) -> None:
    denied = exc.extra.get("audit_denied")
    actor: Actor | None = getattr(request.state, "actor", None)
    if not denied or actor is None:
        return
    ctx = request.app.state.ctx
    with ctx.db.write() as s:
        audit.record(
            s,
            audit.entry(
                actor,
                "access.denied",
                outcome=Outcome.MINOR_FAILURE,
                object_type=denied.get("object_type"),
                object_id=denied.get("object_id"),
                project_id=denied.get("project_id"),
                detail={
                    "status": exc.status,
                    "method": request.method,
                    **({"permission": denied["permission"]} if "permission" in denied else {}),
                },
            ),
            ctx.clock,
        )


def _public_extra(exc: MedlabelError) -> dict[str, Any]:
    return {k: v for k, v in exc.extra.items() if k != "audit_denied"}


async def _medlabel_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MedlabelError)
    if exc.extra.get("audit_denied"):
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(_audit_denied, request, exc)
    return problem(
        request,
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        exc.errors,
        exc.headers,
        _public_extra(exc),
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "field": ".".join(
                    loc[1:] if loc[:1] in (["body"], ["query"], ["path"], ["header"]) else loc
                ),
                "in": loc[0] if loc else "body",
                "problem": err.get("type"),
                "message": err.get("msg"),
                **({"char": err["ctx"]["char"]} if "char" in (err.get("ctx") or {}) else {}),
            }
        )
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    first = errors[0] if errors else {"field": "?", "message": "invalid"}
    detail = (
        f"The request is not valid: {first['field'] or first['in']}: {first['message']}"
        + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else "")
        + ". See 'errors' for every problem and /docs for the expected shape."
    )
    return problem(request, 422, "invalid_input", "Invalid input", detail, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"There is no endpoint {request.url.path[:200]!r}; see /docs for the API."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on this endpoint; see /docs."
    else:
        detail = str(exc.detail)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    return problem(
        request,
        exc.status_code,
        code,
        code.replace("_", " ").capitalize(),
        detail,
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error (correlation id %s)", request_id(request))
    # Starlette sends this response from outside SecurityHeadersMiddleware: add them here.
    headers = security_headers(request.url.path, request_id(request), request.url.scheme == "https")
    return problem(
        request,
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on the server. Nothing was changed by this request "
        "if it failed before its transaction committed; report the correlation id "
        "to an administrator.",
        headers={k.decode(): v.decode() for k, v in headers.items()},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(MedlabelError, _medlabel_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
