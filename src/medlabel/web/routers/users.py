"""User administration (site admins)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from medlabel.services import users
from medlabel.web.api_models import StrictModel, UserOut
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/api/users", tags=["users"])


class UserIn(StrictModel):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str | None = Field(default=None, max_length=128)
    is_admin: bool = False


class UserPatch(StrictModel):
    display_name: str | None = Field(default=None, max_length=128)
    is_admin: bool | None = None
    is_active: bool | None = None


class PasswordIn(StrictModel):
    password: str = Field(min_length=1, max_length=1024)


@router.get("", response_model=list[UserOut])
def list_users(actor: CurrentActor, ctx: Ctx) -> list[UserOut]:
    with ctx.db.read() as s:
        return [UserOut.model_validate(users.view(u)) for u in users.list_users(s, actor)]


@router.post("", response_model=UserOut, status_code=201)
def create_user(body: UserIn, actor: CurrentActor, ctx: Ctx) -> UserOut:
    with ctx.db.write() as s:
        user = users.create_user(
            s,
            actor,
            ctx.passwords,
            ctx.clock,
            username=body.username,
            password=body.password,
            display_name=body.display_name,
            is_admin=body.is_admin,
        )
        return UserOut.model_validate(users.view(user))


@router.patch("/{username}", response_model=UserOut)
def update_user(username: str, body: UserPatch, actor: CurrentActor, ctx: Ctx) -> UserOut:
    with ctx.db.write() as s:
        user = users.update_user(
            s,
            actor,
            ctx.clock,
            username=username,
            display_name=body.display_name,
            is_admin=body.is_admin,
            is_active=body.is_active,
        )
        out = UserOut.model_validate(users.view(user))
    ctx.forget_access()
    return out


@router.put("/{username}/password", status_code=204)
def set_password(username: str, body: PasswordIn, actor: CurrentActor, ctx: Ctx) -> Response:
    """Set a user's password (site admins); ends that user's sessions."""
    with ctx.db.write() as s:
        users.set_password(
            s, actor, ctx.passwords, ctx.clock, username=username, password=body.password
        )
    ctx.forget_access()
    return Response(status_code=204)
