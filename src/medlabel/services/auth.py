"""Logins, browser sessions and personal API tokens.

Secrets given to clients (session cookies, API tokens) are 256-bit random strings; only
their SHA-256 is stored. Failed logins are counted per account and per client address in
the database (so the limit holds across several API servers); an unknown user and a wrong
password get the same answer and take the same time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medlabel.domain.audit import Outcome
from medlabel.domain.errors import InvalidInput, NotFound
from medlabel.domain.names import clean_text, fold
from medlabel.services import audit
from medlabel.services.actor import Actor, Clock
from medlabel.services.passwords import Passwords
from medlabel.storage.models import ApiToken, LoginAttempt, User, WebSession

TOKEN_PREFIX = "mlt_"  # noqa: S105 (a public prefix, not a secret)
TOUCH_EVERY = timedelta(seconds=60)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token(secret_key: bytes, session_id_hash: str) -> str:
    return hmac.new(secret_key, f"csrf:{session_id_hash}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int
    ip_max_failures: int
    window: timedelta
    session_idle: timedelta
    session_max: timedelta


@dataclass(frozen=True)
class LoginOutcome:
    user: User | None
    session_token: str | None = None
    retry_after_s: int | None = None


def _failures(session: Session, key_hash: str, since: datetime) -> tuple[int, datetime | None]:
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.key_hash == key_hash, LoginAttempt.succeeded.is_(True)
        )
    )
    start = max(since, last_ok) if last_ok else since
    count, oldest = session.execute(
        select(func.count(), func.min(LoginAttempt.at)).where(
            LoginAttempt.key_hash == key_hash,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.at > start,
        )
    ).one()
    return int(count), oldest


def _lockout(
    session: Session, keys: list[tuple[str, int]], policy: LoginPolicy, now: datetime
) -> int | None:
    """Seconds until the next attempt is allowed, or None when not locked."""
    for key_hash, limit in keys:
        count, oldest = _failures(session, key_hash, now - policy.window)
        if count >= limit and oldest is not None:
            return max(1, int((oldest + policy.window - now).total_seconds()) + 1)
    return None


def attempt_login(
    session: Session,
    passwords: Passwords,
    policy: LoginPolicy,
    clock: Clock,
    *,
    username: str,
    password: str,
    client_ip: str | None,
    user_agent_hash: str | None,
) -> LoginOutcome:
    """Check credentials; record the attempt and its audit event either way."""
    now = clock()
    name = username.strip().lower()[:256]
    account_key = sha256_hex(f"user:{fold(name)}")
    ip_key = sha256_hex(f"ip:{client_ip or '-'}")
    user = session.scalar(select(User).where(User.username == name))
    anonymous = Actor(
        user_id=user.id if user else None,
        username=None,
        is_admin=False,
        via="session",
        client_ip=client_ip,
        user_agent_hash=user_agent_hash,
    )
    retry = _lockout(
        session, [(account_key, policy.max_failures), (ip_key, policy.ip_max_failures)], policy, now
    )
    if retry is not None:
        audit.record(
            session,
            audit.entry(
                anonymous,
                "login.failure",
                outcome=Outcome.MINOR_FAILURE,
                detail={"reason": "locked"},
            ),
            clock,
        )
        return LoginOutcome(user=None, retry_after_s=retry)
    ok = passwords.verify(user.password_hash if user else None, password)
    ok = ok and user is not None and user.is_active
    for key in (account_key, ip_key):
        session.add(LoginAttempt(key_hash=key, at=now, succeeded=ok))
    if not ok or user is None:
        audit.record(
            session,
            audit.entry(
                anonymous,
                "login.failure",
                outcome=Outcome.MINOR_FAILURE,
                detail={"reason": "bad_credentials"},
            ),
            clock,
        )
        return LoginOutcome(user=None)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash(password)
    token = secrets.token_urlsafe(32)
    id_hash = sha256_hex(token)
    session.add(
        WebSession(
            id_hash=id_hash,
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.session_max,
        )
    )
    actor = Actor(
        user_id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        via="session",
        session_id_hash=id_hash,
        client_ip=client_ip,
        user_agent_hash=user_agent_hash,
    )
    audit.record(session, audit.entry(actor, "login.success"), clock)
    return LoginOutcome(user=user, session_token=token)


@dataclass(frozen=True)
class SessionCheck:
    user: User
    id_hash: str
    needs_touch: bool


def check_session(
    session: Session, token: str, policy: LoginPolicy, clock: Clock
) -> SessionCheck | None:
    """The user of a live session, or None if unknown, revoked, idle too long or expired."""
    if not token or len(token) > 256:
        return None
    id_hash = sha256_hex(token)
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.id_hash == id_hash)
    ).first()
    if row is None:
        return None
    web_session, user = row
    now = clock()
    if (
        web_session.revoked_at is not None
        or now >= web_session.expires_at
        or now - web_session.last_seen_at > policy.session_idle
        or not user.is_active
    ):
        return None
    return SessionCheck(
        user=user, id_hash=id_hash, needs_touch=now - web_session.last_seen_at > TOUCH_EVERY
    )


def touch_session(session: Session, id_hash: str, clock: Clock) -> None:
    web_session = session.scalar(select(WebSession).where(WebSession.id_hash == id_hash))
    if web_session is not None:
        web_session.last_seen_at = clock()


def logout(session: Session, actor: Actor, clock: Clock) -> None:
    web_session = session.scalar(
        select(WebSession).where(WebSession.id_hash == actor.session_id_hash)
    )
    if web_session is not None and web_session.revoked_at is None:
        web_session.revoked_at = clock()
    audit.record(session, audit.entry(actor, "logout"), clock)


# ---- personal API tokens --------------------------------------------------------------


def create_token(
    session: Session, actor: Actor, clock: Clock, *, name: str, expires_days: int | None
) -> tuple[ApiToken, str]:
    """Create a token for the acting user; the plaintext is returned once, never stored."""
    if actor.user_id is None:
        raise InvalidInput("API tokens belong to a user; log in first.")
    name = clean_text(name, field="name", max_len=128)
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InvalidInput("expires_days must be between 1 and 3650 (or omitted).")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock()
    token = ApiToken(
        user_id=actor.user_id,
        name=name,
        token_hash=sha256_hex(plaintext),
        prefix=plaintext[:12],
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        audit.entry(actor, "token.create", object_type="api_token", object_id=token.id),
        clock,
    )
    return token, plaintext


def list_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == actor.user_id).order_by(ApiToken.id)
        )
    )


def revoke_token(session: Session, actor: Actor, clock: Clock, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != actor.user_id:
        raise NotFound(
            f"You have no API token with id {token_id}; list yours with GET /api/me/tokens."
        )
    if token.revoked_at is None:
        token.revoked_at = clock()
        audit.record(
            session,
            audit.entry(actor, "token.revoke", object_type="api_token", object_id=token.id),
            clock,
        )
    return token


@dataclass(frozen=True)
class TokenCheck:
    user: User
    token_id: int
    needs_touch: bool


def check_token(session: Session, plaintext: str, clock: Clock) -> TokenCheck | None:
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 256:
        return None
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == sha256_hex(plaintext))
    ).first()
    if row is None:
        return None
    token, user = row
    now = clock()
    if (
        token.revoked_at is not None
        or (token.expires_at and now >= token.expires_at)
        or not user.is_active
    ):
        return None
    stale = token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY
    return TokenCheck(user=user, token_id=token.id, needs_touch=stale)


def touch_token(session: Session, token_id: int, clock: Clock) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = clock()
