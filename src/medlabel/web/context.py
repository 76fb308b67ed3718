"""Everything a request handler needs, built once per application and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from medlabel.imaging.slide import SlideHandles
from medlabel.jobs.queue import JobQueue, make_huey
from medlabel.services import ingest
from medlabel.services.actor import Clock
from medlabel.services.auth import LoginPolicy
from medlabel.services.passwords import Passwords
from medlabel.services.read_audit import ReadAudit
from medlabel.settings import Settings
from medlabel.storage.blobs import BlobStore
from medlabel.storage.db import Database
from medlabel.web.caches import TtlCache


@dataclass
class AppContext:
    settings: Settings
    db: Database
    passwords: Passwords
    blobs: BlobStore
    clock: Clock
    secret_key: bytes
    login_policy: LoginPolicy
    queue: JobQueue
    read_audit: ReadAudit
    slides: SlideHandles
    principals: TtlCache[str, Any]
    item_access: TtlCache[tuple[int | None, int], Any]

    @classmethod
    def build(
        cls, settings: Settings, db: Database, clock: Clock, *, immediate_jobs: bool = False
    ) -> AppContext:
        root = settings.ensure_data_dir()
        blobs = BlobStore(root)

        def deps() -> ingest.IngestDeps:
            return ingest.deps_from(settings, db, blobs, clock)

        queue = JobQueue(
            make_huey(settings, immediate=immediate_jobs),
            run_ingest=lambda job_id: ingest.run_queued(deps(), job_id),
            fail_ingest=lambda job_id, why: ingest.fail_job(deps(), job_id, why),
        )
        return cls(
            queue=queue,
            read_audit=ReadAudit(db, clock),
            slides=SlideHandles(capacity=16),
            principals=TtlCache(settings.auth_cache_seconds, clock),
            item_access=TtlCache(settings.auth_cache_seconds, clock),
            settings=settings,
            db=db,
            clock=clock,
            blobs=blobs,
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

    def forget_access(self) -> None:
        """Drop cached credential and item checks (after logout, revocations, role changes)."""
        self.principals.clear()
        self.item_access.clear()

    def ingest_deps(self) -> ingest.IngestDeps:
        return ingest.deps_from(self.settings, self.db, self.blobs, self.clock)

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix pins the cookie to this host, path / and HTTPS.
        return "__Host-medlabel_session" if self.settings.cookie_secure else "medlabel_session"
