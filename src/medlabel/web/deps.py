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
from typing import Annotated

from fastapi import Depends, Request

from medlabel.domain.errors import Forbidden, Unauthenticated
from medlabel.services import auth
from medlabel.services.actor import Actor
from medlabel.web.context import AppContext

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


def get_ctx(request: Request) -> AppContext:
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


def authenticate(request: Request, ctx: Ctx) -> Actor:
    """The acting user, from a bearer token or the session cookie; 401 otherwise."""
    ip, ua = client_ip(request, ctx), user_agent_hash(request)
    token = _bearer(request)
    if token is not None:
        with ctx.db.read() as s:
            checked = auth.check_token(s, token, ctx.clock)
        if checked is None:
            raise Unauthenticated(
                "The API token is invalid, expired or revoked. Create a new "
                "one with POST /api/me/tokens.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if checked.needs_touch:
            with ctx.db.write() as s:
                auth.touch_token(s, checked.token_id, ctx.clock)
        actor = Actor(
            user_id=checked.user.id,
            username=checked.user.username,
            is_admin=checked.user.is_admin,
            via="token",
            client_ip=ip,
            user_agent_hash=ua,
        )
    else:
        actor = _session_actor(request, ctx, ip, ua)
    request.state.actor = actor
    return actor


def _session_actor(request: Request, ctx: AppContext, ip: str | None, ua: str | None) -> Actor:
    cookie = request.cookies.get(ctx.session_cookie)
    if not cookie:
        raise Unauthenticated(
            "Log in first (POST /api/auth/login) or send an API token as "
            "'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with ctx.db.read() as s:
        checked = auth.check_session(s, cookie, ctx.login_policy, ctx.clock)
    if checked is None:
        raise Unauthenticated(
            "Your session has ended (logged out, idle too long or expired); log in again."
        )
    if request.method not in SAFE_METHODS:
        check_origin(request)
        expected = auth.csrf_token(ctx.secret_key, checked.id_hash)
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Forbidden(
                f"Missing or wrong {CSRF_HEADER} header. Read the token from "
                "GET /api/auth/session and send it with every change."
            )
    if checked.needs_touch:
        with ctx.db.write() as s:
            auth.touch_session(s, checked.id_hash, ctx.clock)
    return Actor(
        user_id=checked.user.id,
        username=checked.user.username,
        is_admin=checked.user.is_admin,
        via="session",
        session_id_hash=checked.id_hash,
        client_ip=ip,
        user_agent_hash=ua,
    )


CurrentActor = Annotated[Actor, Depends(authenticate)]
