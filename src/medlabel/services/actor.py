"""Who is acting: the authenticated principal as the services see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time as a naive UTC datetime (how timestamps are stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str | None
    is_admin: bool
    via: str  # "session", "token" or "cli"
    session_id_hash: str | None = None
    client_ip: str | None = None
    user_agent_hash: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The operator at the command line (trusted: has shell access to the data)."""
        return cls(user_id=None, username=None, is_admin=True, via="cli")

    @property
    def site_role(self) -> str:
        if self.via == "cli":
            return "system"
        return "site-admin" if self.is_admin else "user"
