"""The acting user: profile, own password and personal API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from medlabel.domain.errors import Unauthenticated
from medlabel.services import auth, users
from medlabel.web.api_models import ResponseModel, StrictModel, UserOut, iso
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/api/me", tags=["me"])


class PasswordChangeIn(StrictModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TokenIn(StrictModel):
    name: str = Field(min_length=1, max_length=128)
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(ResponseModel):
    id: int
    name: str
    prefix: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked: bool


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret; shown only once. Send as 'Bearer <token>'.")


def _token_out(t: auth.ApiToken) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "created_at": iso(t.created_at),
        "expires_at": iso(t.expires_at),
        "last_used_at": iso(t.last_used_at),
        "revoked": t.revoked_at is not None,
    }


@router.get("", response_model=UserOut)
def me(actor: CurrentActor, ctx: Ctx) -> UserOut:
    with ctx.db.read() as s:
        return UserOut.model_validate(users.view(users.get_by_username(s, actor.username or "")))


@router.put("/password", status_code=204)
def change_password(body: PasswordChangeIn, actor: CurrentActor, ctx: Ctx) -> Response:
    """Change your own password (needs the current one); ends all your sessions."""
    with ctx.db.read() as s:
        user = users.get_by_username(s, actor.username or "")
    if not ctx.passwords.verify(user.password_hash, body.current_password):
        raise Unauthenticated("The current password is wrong.")
    with ctx.db.write() as s:
        users.set_password(
            s, actor, ctx.passwords, ctx.clock, username=user.username, password=body.new_password
        )
    ctx.forget_access()
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(actor: CurrentActor, ctx: Ctx) -> list[dict[str, object]]:
    with ctx.db.read() as s:
        return [_token_out(t) for t in auth.list_tokens(s, actor)]


@router.post("/tokens", response_model=NewTokenOut, status_code=201)
def create_token(body: TokenIn, actor: CurrentActor, ctx: Ctx) -> dict[str, object]:
    """Create a personal API token for scripts. Store it now: it is never shown again."""
    with ctx.db.write() as s:
        token, plaintext = auth.create_token(
            s, actor, ctx.clock, name=body.name, expires_days=body.expires_days
        )
        return {**_token_out(token), "token": plaintext}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, actor: CurrentActor, ctx: Ctx) -> Response:
    with ctx.db.write() as s:
        auth.revoke_token(s, actor, ctx.clock, token_id)
    ctx.forget_access()
    return Response(status_code=204)
