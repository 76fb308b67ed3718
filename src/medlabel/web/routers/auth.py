"""Login, logout and the current session."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from medlabel.domain.errors import RateLimited, Unauthenticated
from medlabel.services import auth
from medlabel.services.users import get_by_username, view
from medlabel.web.api_models import ResponseModel, StrictModel, UserOut
from medlabel.web.deps import Ctx, CurrentActor, check_origin, client_ip, user_agent_hash

router = APIRouter(prefix="/api/auth", tags=["auth"])

INVALID = "Invalid username or password."


class LoginIn(StrictModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(ResponseModel):
    user: UserOut
    via: str
    csrf_token: str | None = None


@router.post("/login", response_model=SessionOut)
def login(body: LoginIn, request: Request, response: Response, ctx: Ctx) -> SessionOut:
    """Start a browser session. Unknown users and wrong passwords get the same answer."""
    check_origin(request)
    with ctx.db.write() as s:
        outcome = auth.attempt_login(
            s,
            ctx.passwords,
            ctx.login_policy,
            ctx.clock,
            username=body.username,
            password=body.password,
            client_ip=client_ip(request, ctx),
            user_agent_hash=user_agent_hash(request),
        )
    if outcome.retry_after_s is not None:
        raise RateLimited(
            f"Too many failed logins; try again in {outcome.retry_after_s} s.",
            retry_after_s=outcome.retry_after_s,
        )
    if outcome.user is None or outcome.session_token is None:
        raise Unauthenticated(INVALID)
    response.set_cookie(
        ctx.session_cookie,
        outcome.session_token,
        httponly=True,
        secure=ctx.settings.cookie_secure,
        samesite="strict",
        path="/",
        max_age=int(ctx.login_policy.session_max.total_seconds()),
    )
    id_hash = auth.sha256_hex(outcome.session_token)
    return SessionOut(
        user=UserOut.model_validate(view(outcome.user)),
        via="session",
        csrf_token=auth.csrf_token(ctx.secret_key, id_hash),
    )


@router.post("/logout", status_code=204)
def logout(actor: CurrentActor, response: Response, ctx: Ctx) -> Response:
    """End the browser session (the cookie is cleared; the session id is revoked)."""
    if actor.via == "session":
        with ctx.db.write() as s:
            auth.logout(s, actor, ctx.clock)
        ctx.forget_access()
    response = Response(status_code=204)
    response.delete_cookie(
        ctx.session_cookie,
        path="/",
        secure=ctx.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/session", response_model=SessionOut)
def session(actor: CurrentActor, ctx: Ctx) -> SessionOut:
    """Who is logged in, and the CSRF token the browser must send with every change."""
    with ctx.db.read() as s:
        user = get_by_username(s, actor.username or "")
    token = (
        auth.csrf_token(ctx.secret_key, actor.session_id_hash) if actor.session_id_hash else None
    )
    return SessionOut(user=UserOut.model_validate(view(user)), via=actor.via, csrf_token=token)
