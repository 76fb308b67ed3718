"""Per-user and per-project ingest quotas through the API (SECURITY.md case 27).

The app here has no worker: uploaded jobs stay queued, as on a busy server, until a test
runs one the way the worker does (``ingest.run_queued``).
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from medlabel.services import ingest
from medlabel.services.quotas import human_bytes
from medlabel.settings import Settings
from medlabel.storage.db import Database
from medlabel.storage.models import AuditEvent, IngestJob, Instance
from medlabel.web.app import create_app
from tests.conftest import Api, FakeClock, add_member
from tests.web.test_ingest_api import make_zip

PATIENT_FOLDER = "DOE^JANE 1970"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "ingest_max_active_jobs_per_user": 2,
            "ingest_max_jobs_per_user_per_hour": 0,
            "ingest_max_bytes_per_user_per_day": 0,
            "project_max_stored_bytes": 0,
        }
    )


@pytest.fixture
def app(settings: Settings, database: Database, clock: FakeClock) -> FastAPI:
    return create_app(settings, db=database, clock=clock)


@pytest.fixture
def ct_zip(samples: Path) -> bytes:
    data = (samples / "pydicom" / "CT_small.dcm").read_bytes()
    return make_zip({f"{PATIENT_FOLDER}/CT.dcm": data}, compression=zipfile.ZIP_STORED)


def bearer(app: FastAPI, api: Api) -> Api:
    """A client on a personal token: it keeps working while the fake clock moves on."""
    token = api.post("/api/me/tokens", json={"name": "quota-test"}).json()["token"]
    client = Api(app)
    client.client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def uploader(app: FastAPI, admin: Api, project: str, make_user: Callable[..., Api]) -> Api:
    """A project admin (may ingest) who is not a site admin: the per-user limits apply."""
    user = make_user("loader")
    add_member(admin, project, "loader", "admin")
    return bearer(app, user)


def upload(api: Api, slug: str, body: bytes | Iterator[bytes]) -> Any:
    return api.post(
        f"/api/projects/{slug}/ingest", content=body, headers={"Content-Type": "application/zip"}
    )


def limit(app: FastAPI, **values: int) -> None:
    for name, value in values.items():
        setattr(app.state.ctx.settings, name, value)


def chunked(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body without Content-Length (chunked transfer)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def jobs(app: FastAPI) -> dict[str, str]:
    with app.state.ctx.db.read() as s:
        rows = s.execute(select(IngestJob.id, IngestJob.state)).all()
        return {row.id: row.state for row in rows}


def staged(app: FastAPI) -> set[str]:
    root = app.state.ctx.settings.resolved_data_dir() / "staging"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def run(app: FastAPI, job_id: str) -> None:
    """What the background worker does with a queued upload."""
    ingest.run_queued(app.state.ctx.ingest_deps(), job_id)
    assert jobs(app)[job_id] == "done"


def accepted(api: Api, slug: str, body: Any) -> str:
    response = upload(api, slug, body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def refusals(app: FastAPI) -> list[AuditEvent]:
    with app.state.ctx.db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "ingest.refused")
                .order_by(AuditEvent.seq)
            )
        )


def quota(api: Api, slug: str) -> dict[str, Any]:
    response = api.get(f"/api/projects/{slug}/ingest/quota")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_too_many_jobs_in_progress_wait_for_one_to_finish(
    app: FastAPI, uploader: Api, project: str, ct_zip: bytes
) -> None:
    first = accepted(uploader, project, ct_zip)
    second = accepted(uploader, project, ct_zip)
    assert jobs(app) == {first: "queued", second: "queued"}

    refused = upload(uploader, project, ct_zip)
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "30"
    problem = refused.json()
    assert problem["code"] == "rate_limited" and problem["quota"] == "active_jobs"
    assert (problem["used"], problem["limit"]) == (2, 2)
    assert "You already have 2 ingest job(s) queued or running" in problem["detail"]
    assert "at most 2 may be in progress" in problem["detail"]
    assert "Wait for one of them to finish" in problem["detail"]
    # Nothing of the refused upload was kept.
    assert set(jobs(app)) == {first, second}
    assert staged(app) == {first, second}

    run(app, first)
    third = accepted(uploader, project, ct_zip)
    assert jobs(app)[third] == "queued"


def test_parallel_uploads_on_two_servers_cannot_overshoot_the_limit(
    app: FastAPI,
    settings: Settings,
    clock: FakeClock,
    uploader: Api,
    project: str,
    ct_zip: bytes,
) -> None:
    """Two API servers on one database: the count comes from the database, serialised."""
    # Create the de-identification key first: settings.read_or_create_secret is not safe
    # for two threads of one process creating it at the same moment (reported separately).
    settings.resolved_deid_secret()
    other_db = Database(settings.resolved_database_url())
    other = create_app(settings, db=other_db, clock=clock)
    token = uploader.client.headers["Authorization"]
    clients = []
    for server in (app, other) * 3:
        client = Api(server)
        client.client.headers["Authorization"] = token
        clients.append(client)
    for client in clients[:2]:  # FastAPI builds a route on its first request: not in parallel
        wrong_type = {"Content-Type": "text/plain"}
        response = client.post(f"/api/projects/{project}/ingest", content=b"", headers=wrong_type)
        assert response.status_code == 415
    start = threading.Barrier(len(clients))

    def send(client: Api) -> int:
        start.wait()
        return int(upload(client, project, ct_zip).status_code)

    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            statuses = sorted(pool.map(send, clients))
    finally:
        other_db.dispose()
    assert statuses == [202, 202, 429, 429, 429, 429]
    assert sorted(jobs(app).values()) == ["queued", "queued"]
    assert len(staged(app)) == 2


def test_too_many_uploads_per_hour_says_when_to_retry(
    app: FastAPI, uploader: Api, project: str, ct_zip: bytes, clock: FakeClock
) -> None:
    limit(app, ingest_max_active_jobs_per_user=0, ingest_max_jobs_per_user_per_hour=3)
    first = accepted(uploader, project, ct_zip)
    run(app, first)  # finished jobs still count in the hour
    for _ in range(2):
        clock.advance(minutes=10)
        accepted(uploader, project, ct_zip)
    clock.advance(minutes=10)

    refused = upload(uploader, project, ct_zip)
    assert refused.status_code == 429, refused.text
    # The first upload (30 minutes ago) leaves the one-hour window in 30 minutes.
    assert refused.headers["Retry-After"] == "1800"
    problem = refused.json()
    assert problem["quota"] == "jobs_per_hour"
    assert "You started 3 ingest upload(s) in the last hour" in problem["detail"]
    assert "the limit is 3 per user per hour" in problem["detail"]
    assert "Try again in 30 minutes" in problem["detail"]
    assert len(jobs(app)) == 3

    clock.advance(minutes=29)
    assert upload(uploader, project, ct_zip).headers["Retry-After"] == "60"
    clock.advance(minutes=1)
    accepted(uploader, project, ct_zip)
    assert len(jobs(app)) == 4


def test_daily_byte_budget_before_and_after_the_body(
    app: FastAPI, uploader: Api, project: str, ct_zip: bytes, clock: FakeClock
) -> None:
    budget = len(ct_zip) * 3 // 2
    limit(app, ingest_max_bytes_per_user_per_day=budget)
    first = accepted(uploader, project, ct_zip)
    assert quota(uploader, project)["bytes_last_day"]["used"] == len(ct_zip)
    clock.advance(hours=1)

    # Content-Length says it will not fit: refused before a byte of the body is stored.
    refused = upload(uploader, project, ct_zip)
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == str(23 * 3600)
    problem = refused.json()
    assert problem["quota"] == "bytes_per_day"
    assert (problem["used"], problem["limit"]) == (len(ct_zip), budget)
    detail = problem["detail"]
    assert f"You uploaded {human_bytes(len(ct_zip))} for ingest in the last 24 hours" in detail
    assert f"your budget of {human_bytes(budget)} per 24 hours" in detail
    assert "Try again in 23 h 00 min" in detail
    assert set(jobs(app)) == {first} and staged(app) == {first}

    # No Content-Length: the body is cut off at what the budget leaves, then refused.
    refused = upload(uploader, project, chunked(ct_zip))
    assert refused.status_code == 429, refused.text
    assert refused.json()["quota"] == "bytes_per_day"
    assert "Retry-After" in refused.headers
    assert set(jobs(app)) == {first} and staged(app) == {first}

    # One upload larger than the whole budget can never fit: 413, not "try later".
    too_big = upload(uploader, project, ct_zip * 2)
    assert too_big.status_code == 413, too_big.text
    assert "larger than your whole ingest budget" in too_big.json()["detail"]
    assert "Retry-After" not in too_big.headers

    run(app, first)  # now counted by its unpacked files, still inside the day
    assert quota(uploader, project)["bytes_last_day"]["used"] > len(ct_zip) // 2
    assert upload(uploader, project, ct_zip).status_code == 429
    clock.advance(hours=23)
    second = accepted(uploader, project, ct_zip)
    assert jobs(app)[second] == "queued"
    assert [e.detail["stage"] for e in refusals(app)] == [
        "before_body",
        "after_body",
        "before_body",
        "before_body",
    ]


def test_project_storage_quota_applies_to_everyone_using_the_api(
    app: FastAPI, admin: Api, uploader: Api, project: str, ct_zip: bytes, samples: Path
) -> None:
    run(app, accepted(admin, project, ct_zip))
    with app.state.ctx.db.read() as s:
        stored = int(s.scalar(select(func.sum(Instance.size_bytes))) or 0)
    assert stored > 0
    assert quota(uploader, project)["project_stored_bytes"] == {
        "used": stored,
        "limit": None,
        "remaining": None,
    }
    cap = stored + 1000
    limit(app, project_max_stored_bytes=cap)
    other = (samples / "pydicom" / "MR_small.dcm").read_bytes()
    mr_zip = make_zip({"MR.dcm": other}, compression=zipfile.ZIP_STORED)
    assert len(mr_zip) > 1000
    before = set(jobs(app))

    for api in (uploader, admin):  # site admins are not exempt from the project's quota
        refused = upload(api, project, mr_zip)
        assert refused.status_code == 413, refused.text
        problem = refused.json()
        assert problem["code"] == "too_large" and problem["quota"] == "project_stored_bytes"
        assert "storage quota (MEDLABEL_PROJECT_MAX_STORED_BYTES)" in problem["detail"]
        assert f"{human_bytes(stored)} of {human_bytes(cap)} stored" in problem["detail"]
        assert f"this upload of {human_bytes(len(mr_zip))} would exceed it" in problem["detail"]
        assert "Retry-After" not in refused.headers

    refused = upload(uploader, project, chunked(mr_zip))
    assert refused.status_code == 413 and refused.json()["quota"] == "project_stored_bytes"
    assert set(jobs(app)) == before and staged(app) == set()

    report = quota(uploader, project)["project_stored_bytes"]
    assert report == {"used": stored, "limit": cap, "remaining": 1000}
    limit(app, project_max_stored_bytes=stored)
    full = upload(uploader, project, mr_zip)
    assert full.status_code == 413 and "it is full" in full.json()["detail"]
    limit(app, project_max_stored_bytes=0)
    accepted(uploader, project, mr_zip)


def test_site_admins_have_no_per_user_limits(
    app: FastAPI, admin: Api, project: str, ct_zip: bytes
) -> None:
    limit(
        app,
        ingest_max_active_jobs_per_user=1,
        ingest_max_jobs_per_user_per_hour=1,
        ingest_max_bytes_per_user_per_day=len(ct_zip),
    )
    ids = [accepted(admin, project, ct_zip) for _ in range(3)]
    assert all(jobs(app)[i] == "queued" for i in ids)
    report = quota(admin, project)
    assert report["exempt"] is True
    assert report["active_jobs"] == {"used": 3, "limit": None, "remaining": None}
    assert report["jobs_last_hour"]["used"] == 3
    assert report["bytes_last_day"] == {"used": 3 * len(ct_zip), "limit": None, "remaining": None}
    assert refusals(app) == []


def test_the_quota_endpoint_reports_usage_and_limits(
    app: FastAPI,
    admin: Api,
    uploader: Api,
    project: str,
    make_user: Callable[..., Api],
    ct_zip: bytes,
) -> None:
    limit(
        app,
        ingest_max_jobs_per_user_per_hour=10,
        ingest_max_bytes_per_user_per_day=10 * 1024**2,
        project_max_stored_bytes=10 * 1024**3,
    )
    empty = quota(uploader, project)
    assert empty == {
        "exempt": False,
        "active_jobs": {"used": 0, "limit": 2, "remaining": 2},
        "jobs_last_hour": {"used": 0, "limit": 10, "remaining": 10},
        "bytes_last_day": {"used": 0, "limit": 10 * 1024**2, "remaining": 10 * 1024**2},
        "project_stored_bytes": {"used": 0, "limit": 10 * 1024**3, "remaining": 10 * 1024**3},
    }
    first = accepted(uploader, project, ct_zip)
    accepted(admin, project, ct_zip)  # the admin's job counts for the project, not for them
    report = quota(uploader, project)
    assert report["active_jobs"] == {"used": 1, "limit": 2, "remaining": 1}
    assert report["jobs_last_hour"]["used"] == 1
    assert report["bytes_last_day"]["used"] == len(ct_zip)
    assert report["project_stored_bytes"]["used"] == 2 * len(ct_zip)  # both staged archives
    run(app, first)
    report = quota(uploader, project)
    assert report["active_jobs"]["used"] == 0 and report["jobs_last_hour"]["used"] == 1

    annotator = make_user("marker")
    add_member(admin, project, "marker", "annotator")
    assert annotator.get(f"/api/projects/{project}/ingest/quota").status_code == 403
    outsider = make_user("stranger")
    assert outsider.get(f"/api/projects/{project}/ingest/quota").status_code == 404


def test_refusals_are_audited_without_file_names(
    app: FastAPI, admin: Api, uploader: Api, project: str, ct_zip: bytes
) -> None:
    limit(app, ingest_max_active_jobs_per_user=1)
    accepted(uploader, project, ct_zip)
    assert upload(uploader, project, ct_zip).status_code == 429
    limit(app, ingest_max_active_jobs_per_user=0, project_max_stored_bytes=len(ct_zip) + 10)
    assert upload(uploader, project, chunked(ct_zip)).status_code == 413

    events = refusals(app)
    assert [(e.detail["quota"], e.detail["status"], e.object_type) for e in events] == [
        ("active_jobs", 429, "project"),
        ("project_stored_bytes", 413, "ingest_job"),
    ]
    assert all(e.outcome == 4 and e.actor_role == "admin" for e in events)
    text = repr([(e.object_id, e.reason, e.detail) for e in events])
    assert "DOE" not in text and "CT.dcm" not in text
    assert admin.post("/api/audit/verify").json()["ok"] is True
