"""User accounts: creation, passwords, activation and the site-admin flag."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from medlabel.domain.names import check_username, clean_text
from medlabel.services import audit
from medlabel.services.actor import Actor, Clock
from medlabel.services.passwords import Passwords, check_policy
from medlabel.storage.models import User, WebSession


@dataclass(frozen=True)
class UserView:
    username: str
    display_name: str
    is_admin: bool
    is_active: bool


def view(user: User) -> UserView:
    return UserView(
        username=user.username,
        display_name=user.display_name,
        is_admin=user.is_admin,
        is_active=user.is_active,
    )


def require_site_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("Only site administrators can manage user accounts and create projects.")


def get_by_username(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None:
        raise NotFound(
            f"There is no user {username[:64]!r}. Check the spelling or list users "
            "with GET /api/users."
        )
    return user


def create_user(
    session: Session,
    actor: Actor,
    passwords: Passwords,
    clock: Clock,
    *,
    username: str,
    password: str,
    display_name: str | None = None,
    is_admin: bool = False,
) -> User:
    require_site_admin(actor)
    username = check_username(username.strip().lower())
    display = clean_text(display_name or username, field="display_name", max_len=128)
    check_policy(password, username=username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"The username {username!r} is taken; choose another.")
    now = clock()
    user = User(
        username=username,
        display_name=display,
        password_hash=passwords.hash(password),
        is_admin=is_admin,
        is_active=True,
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"The username {username!r} is taken; choose another.") from exc
    audit.record(
        session,
        audit.entry(
            actor,
            "user.create",
            object_type="user",
            object_id=user.id,
            detail={"is_admin": is_admin},
        ),
        clock,
    )
    return user


def set_password(
    session: Session,
    actor: Actor,
    passwords: Passwords,
    clock: Clock,
    *,
    username: str,
    password: str,
) -> User:
    """Set a new password and end every session of the user (tokens stay valid)."""
    user = get_by_username(session, username)
    if actor.user_id != user.id:
        require_site_admin(actor)
    check_policy(password, username=user.username)
    now = clock()
    user.password_hash = passwords.hash(password)
    user.password_changed_at = now
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    audit.record(
        session,
        audit.entry(actor, "user.password_change", object_type="user", object_id=user.id),
        clock,
    )
    return user


def update_user(
    session: Session,
    actor: Actor,
    clock: Clock,
    *,
    username: str,
    display_name: str | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
) -> User:
    require_site_admin(actor)
    user = get_by_username(session, username)
    changes: dict[str, object] = {}
    if display_name is not None:
        user.display_name = clean_text(display_name, field="display_name", max_len=128)
        changes["display_name"] = True
    if is_admin is not None and is_admin != user.is_admin:
        if user.id == actor.user_id and not is_admin:
            raise InvalidInput("You cannot remove your own site-admin flag; ask another admin.")
        user.is_admin, changes["is_admin"] = is_admin, is_admin
    if is_active is not None and is_active != user.is_active:
        if user.id == actor.user_id and not is_active:
            raise InvalidInput("You cannot deactivate your own account.")
        user.is_active, changes["is_active"] = is_active, is_active
        if not is_active:
            session.execute(
                update(WebSession).where(WebSession.user_id == user.id).values(revoked_at=clock())
            )
    if changes:
        audit.record(
            session,
            audit.entry(
                actor, "user.update", object_type="user", object_id=user.id, detail=changes
            ),
            clock,
        )
    return user


def list_users(session: Session, actor: Actor) -> list[User]:
    require_site_admin(actor)
    return list(session.scalars(select(User).order_by(User.username)))
