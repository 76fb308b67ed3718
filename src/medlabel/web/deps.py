"""Request dependencies: the app context and the authenticated actor.

Browsers authenticate with the session cookie; every state-changing request made with the
cookie must carry the ``X-CSRF-Token`` header (an HMAC of the session id that only
same-origin script can read from ``GET /api/auth/session``) and, when the browser sends an
``Origin``, it must be this server's. Scripts authenticate with ``Authorization: Bearer
mlt_...`` personal tokens, which browsers never attach on their own, so they need no CSRF
token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from medlabel.domain.errors import Forbidden, Unauthenticated
from medlabel.services import auth
from medlabel.services.actor import Actor
from medlabel.storage.models import ApiToken
from medlabel.web.context import AppContext

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def client_ip(request: Request, ctx: AppContext) -> str | None:
    if ctx.settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.client.host[:64] if request.client else None


def user_agent_hash(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    return auth.sha256_hex(agent) if agent else None


def check_origin(request: Request) -> None:
    """Refuse a cross-site browser request (the Origin header cannot be forged by a page)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    allowed = {f"http://{host}", f"https://{host}"}
    if origin not in allowed:
        raise Forbidden("Cross-site request refused: the Origin does not match this server.")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


@dataclass(frozen=True)
class Principal:
    """A checked credential: who it belongs to and until when it may be reused."""

    user_id: int
    username: str
    is_admin: bool
    via: str
    session_id_hash: str | None = None
    expires_at: datetime | None = None


_BAD_TOKEN_TEXT = (
    "The API token is invalid, expired or revoked. Create a new one with POST /api/me/tokens."  # noqa: S105
)
_NO_LOGIN = (
    "Log in first (POST /api/auth/login) or send an API token as 'Authorization: Bearer <token>'."
)
_ENDED = "Your session has ended (logged out, idle too long or expired); log in again."


def _lookup_token(ctx: AppContext, token: str) -> Principal | None:
    with ctx.db.read() as s:
        checked = auth.check_token(s, token, ctx.clock)
        expires = None
        if checked is not None:
            row = s.get(ApiToken, checked.token_id)
            expires = row.expires_at if row is not None else None
    if checked is None:
        return None
    if checked.needs_touch:
        with ctx.db.write() as s:
            auth.touch_token(s, checked.token_id, ctx.clock)
    user = checked.user
    return Principal(user.id, user.username, user.is_admin, "token", expires_at=expires)


def _lookup_session(ctx: AppContext, cookie: str) -> Principal | None:
    with ctx.db.read() as s:
        checked = auth.check_session(s, cookie, ctx.login_policy, ctx.clock)
    if checked is None:
        return None
    if checked.needs_touch:
        with ctx.db.write() as s:
            auth.touch_session(s, checked.id_hash, ctx.clock)
    user = checked.user
    return Principal(user.id, user.username, user.is_admin, "session", checked.id_hash)


async def _principal(ctx: AppContext, kind: str, secret: str) -> Principal | None:
    """A cached check of a token or session secret (see web/caches.py)."""
    key = f"{kind}:{auth.sha256_hex(secret)}"
    found = ctx.principals.get(key)
    if found is None:
        lookup = _lookup_token if kind == "token" else _lookup_session
        found = await run_in_threadpool(lookup, ctx, secret)
        if found is not None:
            ctx.principals.put(key, found)
    if found is not None and found.expires_at is not None and ctx.clock() >= found.expires_at:
        return None
    return found


def _check_csrf(request: Request, ctx: AppContext, id_hash: str) -> None:
    check_origin(request)
    expected = auth.csrf_token(ctx.secret_key, id_hash)
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            f"Missing or wrong {CSRF_HEADER} header. Read the token from "
            "GET /api/auth/session and send it with every change."
        )


async def authenticate(request: Request, ctx: Ctx) -> Actor:
    """The acting user, from a bearer token or the session cookie; 401 otherwise."""
    token = _bearer(request)
    if token is not None:
        principal = await _principal(ctx, "token", token)
        if principal is None:
            raise Unauthenticated(_BAD_TOKEN_TEXT, headers={"WWW-Authenticate": "Bearer"})
    else:
        cookie = request.cookies.get(ctx.session_cookie)
        if not cookie or len(cookie) > 256:
            raise Unauthenticated(_NO_LOGIN, headers={"WWW-Authenticate": "Bearer"})
        principal = await _principal(ctx, "session", cookie)
        if principal is None:
            raise Unauthenticated(_ENDED)
        if request.method not in SAFE_METHODS:
            assert principal.session_id_hash is not None
            _check_csrf(request, ctx, principal.session_id_hash)
    actor = Actor(
        user_id=principal.user_id,
        username=principal.username,
        is_admin=principal.is_admin,
        via=principal.via,
        session_id_hash=principal.session_id_hash,
        client_ip=client_ip(request, ctx),
        user_agent_hash=user_agent_hash(request),
    )
    request.state.actor = actor
    return actor


CurrentActor = Annotated[Actor, Depends(authenticate)]
