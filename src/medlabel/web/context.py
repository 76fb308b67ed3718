"""Everything a request handler needs, built once per application and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from medlabel.services.actor import Clock
from medlabel.services.auth import LoginPolicy
from medlabel.services.passwords import Passwords
from medlabel.settings import Settings
from medlabel.storage.blobs import BlobStore
from medlabel.storage.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    passwords: Passwords
    blobs: BlobStore
    clock: Clock
    secret_key: bytes
    login_policy: LoginPolicy

    @classmethod
    def build(cls, settings: Settings, db: Database, clock: Clock) -> AppContext:
        root = settings.ensure_data_dir()
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            blobs=BlobStore(root),
            secret_key=settings.resolved_secret_key(),
            passwords=Passwords(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
            login_policy=LoginPolicy(
                max_failures=settings.login_max_failures,
                ip_max_failures=settings.login_ip_max_failures,
                window=timedelta(minutes=settings.login_window_minutes),
                session_idle=timedelta(minutes=settings.session_idle_minutes),
                session_max=timedelta(hours=settings.session_max_hours),
            ),
        )

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix pins the cookie to this host, path / and HTTPS.
        return "__Host-medlabel_session" if self.settings.cookie_secure else "medlabel_session"
