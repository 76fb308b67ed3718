"""Ingest jobs: stage files, process them in the sandbox, record instances, build items.

Atomicity and idempotency: staged files live under server-generated names in
``<data_dir>/staging/<job id>/``; blobs are written before the rows that name them; each
batch of results commits in one transaction; items are built only from committed
instances, in one transaction per series. A crash or kill at any point leaves committed
work valid and the rest pending: running the job again completes it. Ingesting the same
file twice yields the same de-identified instance (keyed UIDs), recorded as a duplicate.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain.audit import AuditEntry
from medlabel.domain.errors import NotFound
from medlabel.domain.roles import Permission
from medlabel.imaging.sandbox import Failed, Sandbox, SandboxLimits
from medlabel.services import audit, items_build, uploads
from medlabel.services.access import project_for
from medlabel.services.actor import Actor, Clock
from medlabel.services.ingest_worker import FileResult, FileTask, process
from medlabel.settings import Settings
from medlabel.storage.blobs import BlobStore
from medlabel.storage.db import Database
from medlabel.storage.models import IngestFile, IngestJob, Instance, Patient, Study

BATCH = 25
WORKER_PRELOAD = (
    "numpy",
    "pydicom",
    "medlabel.services.ingest_worker",
    "medlabel.imaging.dicom",
    "medlabel.imaging.deid",
    "medlabel.imaging.sniff",
)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestDeps:
    db: Database
    blobs: BlobStore
    clock: Clock
    deid_secret: bytes
    staging_root: Path
    sandbox: SandboxLimits
    archive: uploads.ArchiveLimits


def deps_from(settings: Settings, db: Database, blobs: BlobStore, clock: Clock) -> IngestDeps:
    root = settings.ensure_data_dir()
    workers = settings.ingest_workers or SandboxLimits().workers
    return IngestDeps(
        db=db,
        blobs=blobs,
        clock=clock,
        deid_secret=settings.resolved_deid_secret(),
        staging_root=root / "staging",
        sandbox=SandboxLimits(
            memory_bytes=settings.ingest_memory_bytes, workers=workers, preload=WORKER_PRELOAD
        ),
        archive=uploads.ArchiveLimits(
            max_bytes=settings.max_archive_bytes,
            max_entries=settings.max_archive_entries,
            max_ratio=settings.max_archive_ratio,
        ),
    )


def run_queued(deps: IngestDeps, job_id: str) -> None:
    """What the background task does: unpack an uploaded archive, then run the job."""
    unpack_upload(deps, job_id, deps.archive)
    run_job(deps, job_id)


def staging_dir(deps: IngestDeps, job_id: str) -> Path:
    return deps.staging_root / job_id


def create_job(
    session: Session, actor: Actor, clock: Clock, slug: str, *, source: str
) -> IngestJob:
    access = project_for(session, actor, slug, Permission.ITEMS_INGEST)
    job = IngestJob(
        id=secrets.token_hex(16),
        project_id=access.project.id,
        created_by=actor.user_id,
        source=source,
        state="queued",
        total=0,
        done=0,
        counts={},
        created_at=clock(),
    )
    session.add(job)
    session.flush()
    audit.record(
        session,
        audit.entry(
            actor,
            "ingest.create",
            role=access.audit_role,
            object_type="ingest_job",
            object_id=job.id,
            project_id=job.project_id,
            detail={"source": source},
        ),
        clock,
    )
    return job


def stage_files(deps: IngestDeps, job_id: str, sources: Iterable[BinaryIO]) -> int:
    """Copy readable streams into the job's staging folder as ``000001``, ``000002``...

    Returns the number of files staged. Rows are created in one transaction at the end, so
    a crash while staging leaves no half-registered job content.
    """
    folder = staging_dir(deps, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for seq, stream in enumerate(sources, start=1):
        staged.append(uploads.copy_hashed(stream, folder / f"{seq:06d}"))
    register_staged(deps, job_id, staged)
    return len(staged)


def register_staged(deps: IngestDeps, job_id: str, staged: list[uploads.Staged]) -> None:
    with deps.db.write() as s:
        job = s.get(IngestJob, job_id)
        if job is None:
            raise NotFound(f"There is no ingest job {job_id}.")
        start = job.total
        for offset, item in enumerate(staged, start=1):
            s.add(
                IngestFile(
                    job_id=job_id,
                    seq=start + offset,
                    size_bytes=item.size,
                    sha256=item.sha256,
                    outcome="pending",
                )
            )
        job.total = start + len(staged)


def unpack_upload(deps: IngestDeps, job_id: str, limits: uploads.ArchiveLimits) -> None:
    """If the job was an archive upload that is not unpacked yet, unpack and register it."""
    folder = staging_dir(deps, job_id)
    archive = folder / uploads.ARCHIVE_NAME
    if not archive.exists():
        return
    with deps.db.read() as s:
        job = s.get(IngestJob, job_id)
        already = job is not None and job.total > 0
    if not already:
        register_staged(deps, job_id, uploads.unpack(archive, folder, limits))
    archive.unlink()


# ---- running --------------------------------------------------------------------------


def run_job(deps: IngestDeps, job_id: str, progress: Progress | None = None) -> IngestJob:
    """Process every pending file of the job, then build items. Safe to call again."""
    with deps.db.write() as s:
        job = s.get(IngestJob, job_id)
        if job is None:
            raise NotFound(f"There is no ingest job {job_id}.")
        job.state, job.started_at = "running", job.started_at or deps.clock()
        rows = s.execute(
            select(IngestFile.seq, IngestFile.sha256)
            .where(IngestFile.job_id == job_id, IngestFile.outcome == "pending")
            .order_by(IngestFile.seq)
        ).all()
        pending = [seq for seq, _ in rows]
        project_id, total, done = job.project_id, job.total, job.total - len(pending)
    folder = staging_dir(deps, job_id)
    tasks = (
        FileTask(
            seq=seq,
            path=str(folder / f"{seq:06d}"),
            blob_root=str(deps.blobs.root),
            deid_secret=deps.deid_secret,
            sha256=sha or "",
        )
        for seq, sha in rows
    )
    with Sandbox(process, deps.sandbox) as box:
        for batch in _batches(box.map(tasks), BATCH, pending):
            _record_batch(deps, job_id, project_id, batch)
            done += len(batch)
            if progress:
                progress(done, total)
    items_build.build_for_job(deps, job_id, project_id)
    return _finish(deps, job_id)


def _batches(
    results: Iterator[FileResult | Failed], size: int, seqs: list[int]
) -> Iterator[list[FileResult]]:
    batch: list[FileResult] = []
    for seq, outcome in zip(seqs, results, strict=True):
        batch.append(
            FileResult(seq=seq, kind="", outcome="rejected", reason=outcome.reason)
            if isinstance(outcome, Failed)
            else outcome
        )
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _record_batch(deps: IngestDeps, job_id: str, project_id: int, batch: list[FileResult]) -> None:
    deps.blobs.sync()  # the workers' blobs are durable before any row names them
    with deps.db.write() as s:
        for result in batch:
            row = s.scalar(
                select(IngestFile).where(IngestFile.job_id == job_id, IngestFile.seq == result.seq)
            )
            assert row is not None
            row.kind = result.kind
            _record_file(s, deps.clock, project_id, row, result)
        job = s.get(IngestJob, job_id)
        assert job is not None
        job.done = job.done + len(batch)


def _record_file(
    s: Session, clock: Clock, project_id: int, row: IngestFile, result: FileResult
) -> None:
    """Record one file's result. Another job may be ingesting the same study at the same
    time (PostgreSQL): a unique-key race is retried once, and then sees the other row."""
    for attempt in range(2):
        try:
            with s.begin_nested():
                _record_outcome(s, clock, project_id, row, result)
            return
        except IntegrityError:
            if attempt:
                raise


def _record_outcome(
    s: Session, clock: Clock, project_id: int, row: IngestFile, result: FileResult
) -> None:
    if result.outcome == "rejected":
        row.outcome, row.reason = "rejected", result.reason
    elif result.dicom is not None:
        row.outcome, row.reason = _record_instance(s, clock, project_id, result)
        row.series_uid = result.dicom["series_uid"]
    else:
        row.outcome, row.reason, row.item_id = items_build.record_volume(
            s, clock, project_id, result
        )


def _record_instance(
    s: Session, clock: Clock, project_id: int, result: FileResult
) -> tuple[str, str | None]:
    facts = result.dicom
    assert facts is not None and (result.frames is not None or facts.get("wsi") is not None)
    existing = s.scalar(
        select(Instance).where(
            Instance.project_id == project_id,
            Instance.sop_instance_uid == facts["sop_instance_uid"],
        )
    )
    if existing is not None:
        if existing.blob_sha256 == facts["blob_sha256"]:
            return "duplicate", "this instance was ingested before (same content)"
        return "rejected", (
            "another file with the same SOP Instance UID but different "
            "content was ingested before; the existing instance is kept"
        )
    study = _study(s, clock, project_id, facts)
    frames = result.frames
    info: dict[str, Any] = {
        "record": facts["record"],
        "display": facts["display"],
        "modality": facts["modality"],
        "series_description": facts["series_description"],
        "pixels": frames.__dict__ if frames is not None else None,
    }
    if facts.get("wsi") is not None:  # a whole-slide level: no frames blob (dicom_wsi)
        info["wsi"] = facts["wsi"]
    s.add(
        Instance(
            project_id=project_id,
            study_id=study.id,
            series_uid=facts["series_uid"],
            sop_instance_uid=facts["sop_instance_uid"],
            sop_class_uid=facts["sop_class_uid"],
            blob_sha256=facts["blob_sha256"],
            frames_sha256=frames.sha256 if frames is not None else None,
            size_bytes=facts["blob_size"],
            frames=frames.frames if frames is not None else int(facts["record"]["frames"] or 1),
            info=info,
            quarantine_reasons=list(result.quarantine_reasons),
            created_at=clock(),
        )
    )
    s.flush()
    if result.quarantine_reasons:
        return "quarantined", "may carry burned-in text: " + ", ".join(result.quarantine_reasons)
    return "ingested", None


def _study(s: Session, clock: Clock, project_id: int, facts: dict[str, Any]) -> Study:
    study = s.scalar(
        select(Study).where(Study.project_id == project_id, Study.study_uid == facts["study_uid"])
    )
    if study is not None:
        return study
    patient = s.scalar(
        select(Patient).where(
            Patient.project_id == project_id, Patient.pseudonym == facts["patient_pseudonym"]
        )
    )
    if patient is None:
        patient = Patient(
            project_id=project_id, pseudonym=facts["patient_pseudonym"], created_at=clock()
        )
        s.add(patient)
        s.flush()
    study = Study(
        project_id=project_id,
        patient_id=patient.id,
        study_uid=facts["study_uid"],
        study_date=facts["study_date"],
        description=facts["study_description"],
        created_at=clock(),
    )
    s.add(study)
    s.flush()
    return study


def _finish(deps: IngestDeps, job_id: str) -> IngestJob:
    with deps.db.write() as s:
        job = s.get(IngestJob, job_id)
        assert job is not None
        counts: dict[str, int] = {}
        for outcome in s.scalars(select(IngestFile.outcome).where(IngestFile.job_id == job_id)):
            counts[outcome] = counts.get(outcome, 0) + 1
        job.counts, job.state, job.finished_at = counts, "done", deps.clock()
        audit.record(
            s,
            AuditEntry(
                action="ingest.finish",
                object_type="ingest_job",
                object_id=job_id,
                project_id=job.project_id,
                actor_user_id=job.created_by,
                actor_role="system",
                detail=counts,
            ),
            deps.clock,
        )
    shutil.rmtree(staging_dir(deps, job_id), ignore_errors=True)
    return job


def resumable_jobs(db: Database, staging_root: Path) -> list[str]:
    """Jobs a crash left queued or running whose staged files are still there."""
    with db.read() as s:
        ids = list(
            s.scalars(select(IngestJob.id).where(IngestJob.state.in_(("queued", "running"))))
        )
    return [job_id for job_id in ids if (staging_root / job_id).is_dir()]


def fail_job(deps: IngestDeps, job_id: str, reason: str) -> None:
    """Mark a job failed (e.g. a refused archive); nothing of it is kept."""
    with deps.db.write() as s:
        job = s.get(IngestJob, job_id)
        if job is not None:
            job.state, job.error, job.finished_at = "failed", reason, deps.clock()
    shutil.rmtree(staging_dir(deps, job_id), ignore_errors=True)
