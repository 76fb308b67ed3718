"""``medlabel ingest``, ``medlabel images export`` and ``medlabel worker``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from medlabel.cli_options import DEFAULT_DATA_DIR, DataDir
from medlabel.domain.errors import MedlabelError

images_app = typer.Typer(no_args_is_help=True, help="De-identified images.")
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def collect_files(paths: list[Path]) -> list[Path]:
    """Every regular file under the given paths (sorted, hidden files skipped); a DICOMDIR
    is replaced by the files it lists (checked to stay inside its folder)."""
    from medlabel.imaging import dicom
    from medlabel.imaging.sniff import FileKind, sniff

    seen: dict[Path, None] = {}
    for path in paths:
        for candidate in _walk(path):
            if sniff(candidate) is FileKind.DICOMDIR:
                for listed in dicom.read_dicomdir(candidate):
                    seen.setdefault(listed.resolve(), None)
            else:
                seen.setdefault(candidate.resolve(), None)
    return list(seen)


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise typer.BadParameter(f"{path} is neither a file nor a folder")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                full = Path(root) / name
                if full.is_file() and not full.is_symlink():
                    yield full


def register(app: typer.Typer, ready_db: Any, settings_for: Any) -> None:
    """Add the imaging commands to the main CLI (avoids an import cycle with cli.py)."""

    @app.command("ingest")
    def ingest_command(
        paths: Annotated[
            list[Path] | None, typer.Argument(help="Files and folders to ingest.")
        ] = None,
        project: Annotated[str | None, typer.Option("--project", help="Project slug.")] = None,
        data_dir: DataDir = DEFAULT_DATA_DIR,
        resume: Annotated[
            str | None,
            typer.Option("--resume", help="Finish a job that was interrupted (its id)."),
        ] = None,
        queue: Annotated[
            bool,
            typer.Option("--queue", help="Hand the job to the workers instead of running it here."),
        ] = False,
    ) -> None:
        """De-identify and ingest DICOM (incl. DICOMDIR), NIfTI, photos and slides.

        File and folder names never leave this machine: the server knows files by number;
        this command maps the numbers back to your paths in its report.
        """
        settings = settings_for(data_dir)
        db = ready_db(settings)
        try:
            if resume:
                _resume(settings, db, resume)
            elif not paths or not project:
                raise typer.BadParameter("give --project and files or folders (or --resume JOB)")
            else:
                _ingest(settings, db, project, paths, queue)
        except MedlabelError as exc:
            typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None

    @images_app.command("export")
    def export_command(
        outdir: Annotated[Path, typer.Argument(help="Folder to write into (created).")],
        project: Annotated[str, typer.Option("--project", help="Project slug.")],
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Write every released, de-identified DICOM instance of a project as a .dcm file.

        Layout: OUTDIR/<study uid>/<series uid>/<instance uid>.dcm (all de-identified UIDs).
        """
        settings = settings_for(data_dir)
        db = ready_db(settings)
        written = _export(settings, db, project, outdir)
        typer.echo(f"Wrote {written} de-identified instance(s) to {outdir}")

    @app.command("worker")
    def worker_command(
        data_dir: DataDir = DEFAULT_DATA_DIR,
        workers: Annotated[int, typer.Option(help="Worker threads.")] = 1,
    ) -> None:
        """Consume background jobs (set MEDLABEL_REDIS_URL to share a queue between machines)."""
        from medlabel.services.actor import utcnow
        from medlabel.web.context import AppContext

        settings = settings_for(data_dir)
        ctx = AppContext.build(settings, ready_db(settings), utcnow)
        typer.echo(
            f"medlabel worker consuming {'Redis' if settings.redis_url else 'SQLite'} "
            "queue; Ctrl-C to stop"
        )
        ctx.queue.run_consumer(workers)

    app.add_typer(images_app, name="images")


def _ingest(settings: Any, db: Any, project: str, paths: list[Path], queue: bool) -> None:
    from medlabel.services import ingest
    from medlabel.services.actor import Actor, utcnow
    from medlabel.storage.blobs import BlobStore

    files = collect_files(paths)
    if not files:
        typer.echo("No files found.")
        return
    deps = ingest.deps_from(settings, db, BlobStore(settings.ensure_data_dir()), utcnow)
    with db.write() as s:
        job_id = ingest.create_job(s, Actor.cli(), utcnow, project, source="files").id
    _stage(deps, job_id, files)
    typer.echo(
        f"Job {job_id}: {len(files)} files staged (resume an interrupted run with "
        f"--resume {job_id})"
    )
    if queue:
        from medlabel.web.context import AppContext

        AppContext.build(settings, db, utcnow).queue.enqueue_ingest(job_id)
        typer.echo(f"Queued ingest job {job_id} ({len(files)} files).")
        return
    _run_with_progress(deps, job_id, len(files))
    _report(db, job_id, files)


def _run_with_progress(deps: Any, job_id: str, total: int) -> None:
    from medlabel.services import ingest

    with typer.progressbar(length=total, label="Ingesting") as bar:
        last = [0]

        def progress(done: int, _total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        ingest.run_job(deps, job_id, progress)


def _resume(settings: Any, db: Any, job_id: str) -> None:
    from medlabel.services import ingest
    from medlabel.services.actor import utcnow
    from medlabel.storage.blobs import BlobStore
    from medlabel.storage.models import IngestJob

    deps = ingest.deps_from(settings, db, BlobStore(settings.ensure_data_dir()), utcnow)
    with db.read() as s:
        job = s.get(IngestJob, job_id)
    if job is None or job_id not in ingest.resumable_jobs(db, deps.staging_root):
        typer.secho(
            f"error: job {job_id[:40]} is not an interrupted ingest job",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2)
    _run_with_progress(deps, job_id, job.total)
    _report(db, job_id, None)


def _stage(deps: Any, job_id: str, files: list[Path]) -> None:
    from medlabel.services import ingest

    def streams() -> Iterator[Any]:
        for path in files:
            with path.open("rb") as fh:
                yield fh

    ingest.stage_files(deps, job_id, streams())


def _report(db: Any, job_id: str, files: list[Path] | None) -> None:
    from sqlalchemy import select

    from medlabel.storage.models import IngestFile, IngestJob

    with db.read() as s:
        job = s.get(IngestJob, job_id)
        rows = list(
            s.scalars(
                select(IngestFile).where(IngestFile.job_id == job_id).order_by(IngestFile.seq)
            )
        )
    counts = ", ".join(f"{v} {k}" for k, v in sorted((job.counts or {}).items()))
    typer.echo(f"Job {job_id}: {counts}")
    for row in rows:
        if row.outcome in ("rejected", "quarantined"):
            color = typer.colors.RED if row.outcome == "rejected" else typer.colors.YELLOW
            name = files[row.seq - 1] if files else f"file {row.seq}"
            typer.secho(f"  {row.outcome}: {name}: {row.reason}", fg=color)


def _export(settings: Any, db: Any, project: str, outdir: Path) -> int:
    from sqlalchemy import select

    from medlabel.storage.blobs import BlobStore
    from medlabel.storage.models import Instance, Project, Study

    blobs = BlobStore(settings.ensure_data_dir())
    written = 0
    manifest = []
    with db.read() as s:
        proj = s.scalar(select(Project).where(Project.slug == project))
        if proj is None:
            typer.secho(f"error: there is no project {project!r}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2)
        rows = s.execute(
            select(Instance, Study.study_uid)
            .join(Study, Study.id == Instance.study_id)
            .where(Instance.project_id == proj.id)
        ).all()
    for inst, study_uid in rows:
        if inst.quarantine_reasons:
            continue
        parts = (study_uid, inst.series_uid, inst.sop_instance_uid)
        if not all(_UID_RE.fullmatch(p) for p in parts):
            continue  # never a path from anything but our own numeric UIDs
        target = outdir / parts[0] / parts[1] / f"{parts[2]}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs.read_bytes(inst.blob_sha256))
        manifest.append({"path": str(target.relative_to(outdir)), "sha256": inst.blob_sha256})
        written += 1
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return written
