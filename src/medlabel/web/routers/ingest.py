"""Ingest: upload a zip of images and follow the job's progress."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from medlabel.domain.errors import NotFound, TooLarge, Unsupported
from medlabel.domain.roles import Permission
from medlabel.services import ingest, quotas, uploads
from medlabel.services.access import project_for
from medlabel.storage.models import IngestFile, IngestJob
from medlabel.web.api_models import ResponseModel, iso
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/api/projects/{slug}/ingest", tags=["ingest"])
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")


class FileOut(ResponseModel):
    seq: int
    size_bytes: int
    sha256: str | None
    kind: str
    outcome: str
    reason: str | None
    item_id: int | None


class JobOut(ResponseModel):
    id: str
    source: str
    state: str
    total: int
    done: int
    counts: dict[str, int]
    error: str | None
    created_at: str | None
    finished_at: str | None
    files: list[FileOut] | None = None
    files_total: int | None = None


def _job_out(job: IngestJob) -> JobOut:
    return JobOut(
        id=job.id,
        source=job.source,
        state=job.state,
        total=job.total,
        done=job.done,
        counts=job.counts or {},
        error=job.error,
        created_at=iso(job.created_at),
        finished_at=iso(job.finished_at),
    )


@router.post(
    "",
    response_model=JobOut,
    status_code=202,
    openapi_extra={"requestBody": {"content": {"application/zip": {}}, "required": True}},
)
async def upload(slug: str, request: Request, actor: CurrentActor, ctx: Ctx) -> JobOut:
    """Upload a zip of DICOM, NIfTI, photo or slide files (raw body, streamed to disk).

    Returns the job at once (202); follow it at ``GET .../ingest/{job_id}``. File and folder
    names inside the archive are never stored: files are reported by their position.

    Per-user and per-project quotas (``GET .../ingest/quota``) are checked before the body
    is read and again once it is received: 429 with ``Retry-After`` for too many jobs in
    progress, too many uploads in the last hour or too many bytes in the last 24 hours;
    413 when the project's storage quota would be exceeded.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ZIP_TYPES:
        raise Unsupported(
            "Send a zip archive as the raw request body with Content-Type application/zip."
        )
    limits = quotas.Limits.from_settings(ctx.settings)
    deps = ctx.ingest_deps()
    admission = await run_in_threadpool(
        quotas.admit_upload,
        ctx.db,
        actor,
        ctx.clock,
        slug,
        limits,
        deps.staging_root,
        _declared_length(request),
    )
    job_id = admission.job_id
    folder = ingest.staging_dir(deps, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        received, truncated = await _receive(
            request,
            folder / uploads.ARCHIVE_NAME,
            ctx.settings.max_archive_bytes,
            admission.byte_cap,
        )
        await run_in_threadpool(
            quotas.confirm_upload,
            ctx.db,
            actor,
            ctx.clock,
            slug,
            admission,
            limits,
            deps.staging_root,
            received,
            truncated,
        )
    except BaseException:
        # A quota refusal has removed the job already; anything else leaves a failed job.
        await run_in_threadpool(ingest.fail_job, deps, job_id, "the upload did not complete")
        raise
    ctx.queue.enqueue_ingest(job_id)
    return await run_in_threadpool(_read_job, ctx, actor, slug, job_id, 0)


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def _receive(request: Request, target: Any, limit: int, cap: int | None) -> tuple[int, bool]:
    """Stream the body to ``target``: (bytes received, cut off at ``cap``).

    Over ``limit`` (the largest archive) is a 413 here; over ``cap`` (what the quotas
    leave) reading stops and the caller refuses the upload.
    """
    received = 0
    with open(target, "wb") as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"The archive is larger than {limit} bytes.")
            if cap is not None and received > cap:
                return received, True
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return received, False


def _read_job(
    ctx: Any, actor: Any, slug: str, job_id: str, files_offset: int | None, files_limit: int = 200
) -> JobOut:
    with ctx.db.read() as s:
        access = project_for(s, actor, slug, Permission.PROJECT_READ)
        job = s.get(IngestJob, job_id)
        if job is None or job.project_id != access.project.id:
            raise NotFound(f"Project {slug!r} has no ingest job {job_id[:40]!r}.")
        out = _job_out(job)
        if files_offset is not None:
            rows = s.scalars(
                select(IngestFile)
                .where(IngestFile.job_id == job_id)
                .order_by(IngestFile.seq)
                .limit(files_limit)
                .offset(files_offset)
            )
            out.files = [
                FileOut(
                    seq=f.seq,
                    size_bytes=f.size_bytes,
                    sha256=f.sha256,
                    kind=f.kind,
                    outcome=f.outcome,
                    reason=f.reason,
                    item_id=f.item_id,
                )
                for f in rows
            ]
            out.files_total = s.scalar(select(func.count()).where(IngestFile.job_id == job_id))
        return out


@router.get("", response_model=list[JobOut])
def list_jobs(
    slug: str, actor: CurrentActor, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[JobOut]:
    with ctx.db.read() as s:
        access = project_for(s, actor, slug, Permission.PROJECT_READ)
        jobs = s.scalars(
            select(IngestJob)
            .where(IngestJob.project_id == access.project.id)
            .order_by(IngestJob.created_at.desc())
            .limit(limit)
        )
        return [_job_out(j) for j in jobs]


class QuotaLineOut(ResponseModel):
    used: int
    limit: int | None
    remaining: int | None


class QuotaOut(ResponseModel):
    exempt: bool
    active_jobs: QuotaLineOut
    jobs_last_hour: QuotaLineOut
    bytes_last_day: QuotaLineOut
    project_stored_bytes: QuotaLineOut


def _line(line: quotas.QuotaLine) -> QuotaLineOut:
    return QuotaLineOut(used=line.used, limit=line.limit, remaining=line.remaining)


@router.get("/quota", response_model=QuotaOut)
def quota(slug: str, actor: CurrentActor, ctx: Ctx) -> QuotaOut:
    """Your ingest usage and limits (``limit`` null: unlimited, or you are exempt).

    Jobs in progress, uploads in the last hour and bytes in the last 24 hours are yours, in
    all projects; stored bytes are the project's.
    """
    staging_root = ctx.settings.resolved_data_dir() / "staging"
    r = quotas.report(
        ctx.db, actor, ctx.clock, slug, quotas.Limits.from_settings(ctx.settings), staging_root
    )
    return QuotaOut(
        exempt=r.exempt,
        active_jobs=_line(r.active_jobs),
        jobs_last_hour=_line(r.jobs_last_hour),
        bytes_last_day=_line(r.bytes_last_day),
        project_stored_bytes=_line(r.project_stored_bytes),
    )


@router.get("/{job_id}", response_model=JobOut)
def get_job(
    slug: str,
    job_id: str,
    actor: CurrentActor,
    ctx: Ctx,
    files_offset: Annotated[int, Query(ge=0)] = 0,
    files_limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JobOut:
    """Progress (files done of total, counts per outcome) and the per-file report."""
    return _read_job(ctx, actor, slug, job_id, files_offset, files_limit)
