"""Ingest: upload a zip of images and follow the job's progress."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from medlabel.domain.errors import NotFound, TooLarge, Unsupported
from medlabel.domain.roles import Permission
from medlabel.services import ingest, uploads
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
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ZIP_TYPES:
        raise Unsupported(
            "Send a zip archive as the raw request body with Content-Type application/zip."
        )

    def create() -> str:
        with ctx.db.write() as s:
            return ingest.create_job(s, actor, ctx.clock, slug, source="upload").id

    job_id = await run_in_threadpool(create)
    deps = ctx.ingest_deps()
    folder = ingest.staging_dir(deps, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        await _receive(request, folder / uploads.ARCHIVE_NAME, ctx.settings.max_archive_bytes)
    except BaseException:
        await run_in_threadpool(ingest.fail_job, deps, job_id, "the upload did not complete")
        raise
    ctx.queue.enqueue_ingest(job_id)
    return await run_in_threadpool(_read_job, ctx, actor, slug, job_id, 0)


async def _receive(request: Request, target: Any, limit: int) -> None:
    received = 0
    with open(target, "wb") as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"The archive is larger than {limit} bytes.")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


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
