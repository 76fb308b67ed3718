"""Pure ASGI middleware: request ids, request body limits and security headers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

CSP_APP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CSP_DOCS = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class _BodyTooLarge(Exception):
    pass


class RequestLimitsMiddleware:
    """Refuse malformed URLs and oversized bodies before any handler sees them.

    - A NUL in the path or query string is a 400: no identifier contains one, and
      PostgreSQL refuses NUL in text parameters, so it must never reach a query.
    - Bodies above the per-path limit are a 413: the declared Content-Length is checked
      first, then the bytes actually received are counted, so a wrong Content-Length or an
      endless chunked body is cut off at the limit too.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (
            "\x00" in scope["path"]
            or b"%00" in scope.get("query_string", b"")
            or (b"\x00" in scope.get("query_string", b""))
        ):
            await _send_problem(
                send,
                400,
                "bad_request",
                "Bad request",
                "The URL contains a NUL character; remove it.",
            )
            return
        limit = self.limit_for(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_413(send, limit)
            return
        received = 0
        started = False
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large:
                # The app caught the error (FastAPI turns a failed body read into a 400):
                # answer 413 instead and drop the app's own response.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_413(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_413(send, limit)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_413(send: Send, limit: int) -> None:
    await _send_problem(
        send,
        413,
        "too_large",
        "Request too large",
        f"The request body is larger than the {limit} bytes this endpoint accepts.",
    )


async def _send_problem(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body = json.dumps(
        {
            "type": f"https://medlabel.dev/problems/{code}",
            "title": title,
            "status": status,
            "code": code,
            "detail": detail,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def security_headers(path: str, request_id: str, https: bool) -> dict[bytes, bytes]:
    """The headers every response gets (also used for 500s, which are sent from outside
    this middleware by Starlette's ServerErrorMiddleware)."""
    extra = {
        b"x-request-id": request_id.encode(),
        b"x-content-type-options": b"nosniff",
        b"x-frame-options": b"DENY",
        b"referrer-policy": b"no-referrer",
        b"cross-origin-opener-policy": b"same-origin",
        b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
        b"content-security-policy": (CSP_DOCS if path in ("/docs", "/redoc") else CSP_APP).encode(),
    }
    if https:
        extra[b"strict-transport-security"] = b"max-age=63072000; includeSubDomains"
    if path.startswith("/api/"):
        extra[b"cache-control"] = b"no-store"
    return extra


class SecurityHeadersMiddleware:
    """Request id, CSP and the usual hardening headers; API responses are not cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _REQUEST_ID_RE.fullmatch(incoming) else (uuid.uuid4().hex)
        )
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = security_headers(path, request_id, https)
                headers.extend((k, v) for k, v in extra.items() if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
