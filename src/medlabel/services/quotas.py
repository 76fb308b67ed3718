"""Ingest quotas and rate limits per user and per project (SECURITY.md case 27).

Everything is counted from the database (plus the sizes of archives still waiting in the
shared staging folder), never from a process's memory, so the limits hold when several API
servers share one database. The checks for one user are serialised (PostgreSQL: a
transaction-scoped advisory lock per user; SQLite: the write lock every write transaction
holds), so parallel uploads cannot all slip under a limit at once.

Per user (site admins and the CLI are exempt):

- jobs queued or running at once (``ingest_max_active_jobs_per_user``) → 429;
- uploads started per rolling hour (``ingest_max_jobs_per_user_per_hour``) → 429 with
  ``Retry-After`` from the job that must leave the window;
- bytes per rolling 24 hours (``ingest_max_bytes_per_user_per_day``): the unpacked sizes of
  the files of the user's jobs, or the archive's size while it is not unpacked yet → 429
  with ``Retry-After``, or 413 for one upload larger than the whole budget.

Per project (everyone using the API, site admins too; the CLI is exempt):
``project_max_stored_bytes`` over stored DICOM instances, the source files of other
items, guideline images and files waiting to be ingested → 413.

An upload is checked before its body is read (with ``Content-Length`` when sent), its body
is cut off at the remaining byte budget, and it is checked again once received; a refused
upload leaves no job row and no staged file. Every refusal is audited as
``ingest.refused`` (quota name and numbers only, never file names).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.orm import Session

from medlabel.domain.audit import Outcome
from medlabel.domain.errors import MedlabelError, RateLimited, TooLarge
from medlabel.domain.roles import Permission
from medlabel.services import audit, ingest, uploads
from medlabel.services.access import ProjectAccess, project_for
from medlabel.services.actor import Actor, Clock
from medlabel.settings import Settings
from medlabel.storage.db import Database
from medlabel.storage.models import GuidelineAsset, IngestFile, IngestJob, Instance

ACTIVE_STATES = ("queued", "running")
STORED_OUTCOMES = ("ingested", "quarantined")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ACTIVE_RETRY_S = 30  # a job's end cannot be predicted: suggest polling again soon
_LOCK_SPACE = 0x6D71  # "mq": two-key advisory locks (key2 = user id), apart from the audit's

ACTIVE_JOBS = "active_jobs"
JOBS_PER_HOUR = "jobs_per_hour"
BYTES_PER_DAY = "bytes_per_day"
PROJECT_STORAGE = "project_stored_bytes"


@dataclass(frozen=True)
class Limits:
    """The limits in force (0: unlimited)."""

    active_jobs: int = 0
    jobs_per_hour: int = 0
    bytes_per_day: int = 0
    project_stored_bytes: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            active_jobs=settings.ingest_max_active_jobs_per_user,
            jobs_per_hour=settings.ingest_max_jobs_per_user_per_hour,
            bytes_per_day=settings.ingest_max_bytes_per_user_per_day,
            project_stored_bytes=settings.project_max_stored_bytes,
        )


def is_exempt(actor: Actor) -> bool:
    """Site admins and the operator's CLI have no per-user ingest limits."""
    return actor.is_admin or actor.via == "cli"


@dataclass(frozen=True)
class Usage:
    active_jobs: int
    hour_jobs: Sequence[datetime]  # creation times of the user's jobs in the hour, oldest first
    day_bytes: Sequence[tuple[datetime, int]]  # (created, bytes) per job in the day, oldest first
    project_bytes: int

    @property
    def jobs_last_hour(self) -> int:
        return len(self.hour_jobs)

    @property
    def bytes_last_day(self) -> int:
        return sum(size for _, size in self.day_bytes)


@dataclass(frozen=True)
class Admission:
    """An accepted upload: its job, and where to stop reading its body (None: no quota cap)."""

    job_id: str
    project_id: int
    byte_cap: int | None
    cap_quota: str | None


@dataclass(frozen=True)
class QuotaLine:
    used: int
    limit: int | None  # None: unlimited or exempt

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


@dataclass(frozen=True)
class QuotaReport:
    exempt: bool
    active_jobs: QuotaLine
    jobs_last_hour: QuotaLine
    bytes_last_day: QuotaLine
    project_stored_bytes: QuotaLine


# ---- entry points ------------------------------------------------------------------------


def admit_upload(
    db: Database,
    actor: Actor,
    clock: Clock,
    slug: str,
    limits: Limits,
    staging_root: Path,
    declared_bytes: int | None,
) -> Admission:
    """Check the quotas before any of the body is read; create the job if they allow it.

    A refusal is audited (committed) and raised; nothing else is written.
    """
    refusal: MedlabelError | None = None
    with db.write() as s:
        access = project_for(s, actor, slug, Permission.ITEMS_INGEST)
        _lock_user(s, actor)
        now = clock()
        use = usage(s, staging_root, access.project.id, actor, now)
        refusal = _admission_refusal(slug, actor, limits, use, now, declared_bytes)
        if refusal is None:
            job = ingest.create_job(s, actor, clock, slug, source="upload")
            cap, cap_quota = _byte_cap(actor, limits, use)
            return Admission(job.id, access.project.id, cap, cap_quota)
        _record_refusal(s, actor, clock, access, refusal, "before_body", None)
    raise refusal


def confirm_upload(
    db: Database,
    actor: Actor,
    clock: Clock,
    slug: str,
    admission: Admission,
    limits: Limits,
    staging_root: Path,
    received: int,
    truncated: bool,
) -> None:
    """Check the byte quotas again with the bytes actually received.

    On refusal the job row and its staged upload are removed, the refusal is audited and
    raised. ``truncated``: the body was cut off at the admission's byte cap.
    """
    refusal: MedlabelError | None = None
    try:
        with db.write() as s:
            access = project_for(s, actor, slug, Permission.ITEMS_INGEST)
            _lock_user(s, actor)
            now = clock()
            use = usage(s, staging_root, access.project.id, actor, now, exclude=admission.job_id)
            refusal = _bytes_refusal(slug, actor, limits, use, now, received)
            if refusal is None and truncated:
                # The window moved while the body arrived; the body is incomplete anyway.
                refusal = _refusal_for(admission.cap_quota, slug, limits, use, now, received)
            if refusal is not None:
                s.execute(delete(IngestJob).where(IngestJob.id == admission.job_id))
                _record_refusal(s, actor, clock, access, refusal, "after_body", admission.job_id)
    finally:
        if refusal is not None:
            shutil.rmtree(staging_root / admission.job_id, ignore_errors=True)
    if refusal is not None:
        raise refusal


def report(
    db: Database, actor: Actor, clock: Clock, slug: str, limits: Limits, staging_root: Path
) -> QuotaReport:
    """The caller's usage and the limits that apply to them (for the UI and scripts)."""
    with db.read() as s:
        access = project_for(s, actor, slug, Permission.ITEMS_INGEST)
        use = usage(s, staging_root, access.project.id, actor, clock())
    per_user = not is_exempt(actor)

    def line(used: int, limit: int, applies: bool) -> QuotaLine:
        return QuotaLine(used=used, limit=limit if limit and applies else None)

    return QuotaReport(
        exempt=not per_user,
        active_jobs=line(use.active_jobs, limits.active_jobs, per_user),
        jobs_last_hour=line(use.jobs_last_hour, limits.jobs_per_hour, per_user),
        bytes_last_day=line(use.bytes_last_day, limits.bytes_per_day, per_user),
        project_stored_bytes=line(
            use.project_bytes, limits.project_stored_bytes, actor.via != "cli"
        ),
    )


# ---- counting ------------------------------------------------------------------------------


def usage(
    s: Session,
    staging_root: Path,
    project_id: int,
    actor: Actor,
    now: datetime,
    *,
    exclude: str | None = None,
) -> Usage:
    """The user's jobs and bytes in the windows, and the project's stored bytes.

    ``exclude``: a job whose staged upload is not to be counted (the one being checked).
    """
    active, hour_jobs, day_bytes = 0, [], []
    if actor.user_id is not None:
        jobs = s.execute(
            select(IngestJob.id, IngestJob.state, IngestJob.total, IngestJob.created_at)
            .where(
                IngestJob.created_by == actor.user_id,
                (IngestJob.created_at > now - DAY) | IngestJob.state.in_(ACTIVE_STATES),
            )
            .order_by(IngestJob.created_at, IngestJob.id)
        ).all()
        files: dict[str, int] = {
            job_id: int(size)
            for job_id, size in s.execute(
                select(IngestFile.job_id, func.coalesce(func.sum(IngestFile.size_bytes), 0))
                .join(IngestJob, IngestJob.id == IngestFile.job_id)
                .where(IngestJob.created_by == actor.user_id, IngestJob.created_at > now - DAY)
                .group_by(IngestFile.job_id)
            )
        }
        for job_id, state, total, created in jobs:
            if state in ACTIVE_STATES:
                active += 1
            if created > now - HOUR:
                hour_jobs.append(created)
            if created > now - DAY:
                size = files.get(job_id, 0)
                if job_id != exclude and state in ACTIVE_STATES and not total:
                    size += _archive_size(staging_root, job_id)
                day_bytes.append((created, size))
    return Usage(
        active_jobs=active,
        hour_jobs=hour_jobs,
        day_bytes=day_bytes,
        project_bytes=project_stored_bytes(s, staging_root, project_id, exclude=exclude),
    )


def project_stored_bytes(
    s: Session, staging_root: Path, project_id: int, *, exclude: str | None = None
) -> int:
    """Stored DICOM instances, source files of other items (NIfTI, photos, slides),
    guideline images, and files staged for ingest (unpacked or still archived)."""

    def total(query: Select[Any]) -> int:
        return int(s.scalar(query) or 0)

    in_project = (IngestJob.id == IngestFile.job_id) & (IngestJob.project_id == project_id)
    instances = total(
        select(func.coalesce(func.sum(Instance.size_bytes), 0)).where(
            Instance.project_id == project_id
        )
    )
    sources = total(
        select(func.coalesce(func.sum(IngestFile.size_bytes), 0))
        .join(IngestJob, in_project)
        .where(IngestFile.item_id.is_not(None), IngestFile.outcome.in_(STORED_OUTCOMES))
    )
    pending = total(
        select(func.coalesce(func.sum(IngestFile.size_bytes), 0))
        .join(IngestJob, in_project)
        .where(IngestJob.state.in_(ACTIVE_STATES), IngestFile.outcome == "pending")
    )
    assets = total(
        select(func.coalesce(func.sum(GuidelineAsset.size_bytes), 0)).where(
            GuidelineAsset.project_id == project_id
        )
    )
    waiting = s.scalars(
        select(IngestJob.id).where(
            IngestJob.project_id == project_id,
            IngestJob.state.in_(ACTIVE_STATES),
            IngestJob.total == 0,
        )
    )
    archives = sum(_archive_size(staging_root, j) for j in waiting if j != exclude)
    return instances + sources + pending + assets + archives


def _archive_size(staging_root: Path, job_id: str) -> int:
    try:
        return os.stat(staging_root / job_id / uploads.ARCHIVE_NAME).st_size
    except OSError:
        return 0


def _lock_user(s: Session, actor: Actor) -> None:
    if actor.user_id is not None and s.get_bind().dialect.name == "postgresql":
        s.execute(
            text(
                "SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:user_id AS integer))"
            ),
            {"space": _LOCK_SPACE, "user_id": actor.user_id},
        )


# ---- decisions -----------------------------------------------------------------------------


def _admission_refusal(
    slug: str, actor: Actor, limits: Limits, use: Usage, now: datetime, declared: int | None
) -> MedlabelError | None:
    if not is_exempt(actor):
        if limits.active_jobs and use.active_jobs >= limits.active_jobs:
            return _quota_error(
                RateLimited(
                    f"You already have {use.active_jobs} ingest job(s) queued or running; at "
                    f"most {limits.active_jobs} may be in progress at once per user. Wait for "
                    f"one of them to finish (GET /api/projects/{slug[:64]}/ingest lists this "
                    "project's jobs), then upload again.",
                    retry_after_s=ACTIVE_RETRY_S,
                ),
                ACTIVE_JOBS,
                use.active_jobs,
                limits.active_jobs,
            )
        if limits.jobs_per_hour and use.jobs_last_hour >= limits.jobs_per_hour:
            # The oldest jobs must leave the window until one more fits.
            leaving = use.hour_jobs[use.jobs_last_hour - limits.jobs_per_hour]
            retry = _seconds(leaving + HOUR - now)
            return _quota_error(
                RateLimited(
                    f"You started {use.jobs_last_hour} ingest upload(s) in the last hour; the "
                    f"limit is {limits.jobs_per_hour} per user per hour. Try again in "
                    f"{human_duration(retry)}, or send fewer, larger archives.",
                    retry_after_s=retry,
                ),
                JOBS_PER_HOUR,
                use.jobs_last_hour,
                limits.jobs_per_hour,
            )
    # Without Content-Length at least one byte must still fit.
    return _bytes_refusal(slug, actor, limits, use, now, 1 if declared is None else declared)


def _bytes_refusal(
    slug: str, actor: Actor, limits: Limits, use: Usage, now: datetime, incoming: int
) -> MedlabelError | None:
    day, project = limits.bytes_per_day, limits.project_stored_bytes
    if day and not is_exempt(actor) and use.bytes_last_day + incoming > day:
        return _day_error(limits, use, now, incoming)
    if project and actor.via != "cli" and use.project_bytes + incoming > project:
        return _project_error(slug, limits, use, incoming)
    return None


def _refusal_for(
    quota: str | None, slug: str, limits: Limits, use: Usage, now: datetime, incoming: int
) -> MedlabelError:
    if quota == BYTES_PER_DAY:
        return _day_error(limits, use, now, incoming)
    return _project_error(slug, limits, use, incoming)


def _day_error(limits: Limits, use: Usage, now: datetime, incoming: int) -> MedlabelError:
    budget, used = limits.bytes_per_day, use.bytes_last_day
    if incoming > budget:
        return _quota_error(
            TooLarge(
                f"This upload ({human_bytes(incoming)}) is larger than your whole ingest "
                f"budget of {human_bytes(budget)} per 24 hours. Split it into smaller "
                "archives, or ask a site admin to ingest it with `medlabel ingest`."
            ),
            BYTES_PER_DAY,
            used,
            budget,
        )
    retry = _seconds(DAY)
    freed = 0
    for created, size in use.day_bytes:
        freed += size
        if used - freed + incoming <= budget:
            retry = _seconds(created + DAY - now)
            break
    what = "this upload" if incoming <= 1 else f"this upload of {human_bytes(incoming)}"
    return _quota_error(
        RateLimited(
            f"You uploaded {human_bytes(used)} for ingest in the last 24 hours; {what} would "
            f"exceed your budget of {human_bytes(budget)} per 24 hours. Try again in "
            f"{human_duration(retry)}, or ask a site admin to ingest large data sets with "
            "`medlabel ingest`.",
            retry_after_s=retry,
        ),
        BYTES_PER_DAY,
        used,
        budget,
    )


def _project_error(slug: str, limits: Limits, use: Usage, incoming: int) -> MedlabelError:
    limit, used = limits.project_stored_bytes, use.project_bytes
    what = (
        "it is full"
        if used >= limit or incoming <= 1
        else f"this upload of {human_bytes(incoming)} would exceed it"
    )
    return _quota_error(
        TooLarge(
            f"Project {slug[:64]!r} has reached its storage quota "
            f"(MEDLABEL_PROJECT_MAX_STORED_BYTES): {human_bytes(used)} of "
            f"{human_bytes(limit)} stored; {what}. Remove data from the project or ask the "
            "operator to raise the quota."
        ),
        PROJECT_STORAGE,
        used,
        limit,
    )


def _byte_cap(actor: Actor, limits: Limits, use: Usage) -> tuple[int | None, str | None]:
    caps: list[tuple[int, str]] = []
    if not is_exempt(actor) and limits.bytes_per_day:
        caps.append((max(0, limits.bytes_per_day - use.bytes_last_day), BYTES_PER_DAY))
    if actor.via != "cli" and limits.project_stored_bytes:
        caps.append((max(0, limits.project_stored_bytes - use.project_bytes), PROJECT_STORAGE))
    if not caps:
        return None, None
    cap, quota = min(caps)
    return cap, quota


def _quota_error(error: MedlabelError, quota: str, used: int, limit: int) -> MedlabelError:
    error.extra.update({"quota": quota, "used": used, "limit": limit})
    return error


def _record_refusal(
    s: Session,
    actor: Actor,
    clock: Clock,
    access: ProjectAccess,
    refusal: MedlabelError,
    stage: str,
    job_id: str | None,
) -> None:
    audit.record(
        s,
        audit.entry(
            actor,
            "ingest.refused",
            outcome=Outcome.MINOR_FAILURE,
            role=access.audit_role,
            object_type="ingest_job" if job_id else "project",
            object_id=job_id or access.project.slug,
            project_id=access.project.id,
            reason="quota",
            detail={
                "quota": refusal.extra.get("quota"),
                "status": refusal.status,
                "stage": stage,
                "used": refusal.extra.get("used"),
                "limit": refusal.extra.get("limit"),
            },
        ),
        clock,
    )


# ---- wording -------------------------------------------------------------------------------


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def human_bytes(n: int) -> str:
    """1536 → '1.5 KiB'; below 1 KiB in bytes."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def human_duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
