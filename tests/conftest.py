"""Shared fixtures: real SQLite and PostgreSQL databases, the app, and HTTP clients.

Every database test runs twice, on SQLite and on PostgreSQL. Each test gets a fresh
database cloned from a migrated template (a file copy for SQLite, ``CREATE DATABASE ...
TEMPLATE`` for PostgreSQL), so tests are isolated and fast.

PostgreSQL comes from ``MEDLABEL_TEST_PG_URL`` (default: the local server with trust auth).
If it cannot be reached the PostgreSQL variants are skipped, unless
``MEDLABEL_TEST_REQUIRE_PG=1`` (set by ``make test`` and CI), which makes them fail instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from medlabel.settings import Settings
from medlabel.storage import migrate
from medlabel.storage.db import Database
from medlabel.web.app import create_app

PG_URL = os.environ.get(
    "MEDLABEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("MEDLABEL_TEST_REQUIRE_PG") == "1"
REQUIRE_DATA = os.environ.get("MEDLABEL_TEST_REQUIRE_DATA") == "1"
SAMPLES_DIR = (
    Path(
        os.environ.get("MEDLABEL_SAMPLES_DIR")
        or Path(__file__).resolve().parents[1] / ".cache" / "medlabel-data"
    )
    / "files"
)
ADMIN_PASSWORD = "correct horse battery staple"
USER_PASSWORD = "annotate-all-the-nodules"


@dataclass
class FakeClock:
    """A controllable clock (naive UTC), so idle timeouts and lockouts can be tested."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 26, 12, 0, 0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _pg_admin_engine() -> Engine:
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    try:
        admin = _pg_admin_engine()
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if REQUIRE_PG:
            raise RuntimeError(f"PostgreSQL required but unreachable at {PG_URL}") from exc
        yield None
        return
    name = f"medlabel_tpl_{_worker()}_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db.engine)
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_template: str | None
) -> Iterator[str]:
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        target = tmp_path / "medlabel.db"
        shutil.copyfile(sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    if pg_template is None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    name = f"medlabel_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def samples() -> Path:
    """The real medical files of data/manifest.json's "test" tier (scripts/fetch_data.py)."""
    if not (SAMPLES_DIR / "MANIFEST.sha256").is_file():
        message = (
            f"real test files missing in {SAMPLES_DIR}: run "
            "`python3 scripts/fetch_data.py --tier test`"
        )
        if REQUIRE_DATA:
            raise RuntimeError(message)
        pytest.skip(message)
    return SAMPLES_DIR


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Cheaper argon2id parameters keep the suite fast; the production defaults are
    # checked in tests/services/test_passwords.py.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        argon2_parallelism=1,
        ingest_workers=1,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database(settings.resolved_database_url())
    yield db
    db.dispose()


@pytest.fixture
def app(settings: Settings, database: Database, clock: FakeClock) -> FastAPI:
    return create_app(settings, db=database, clock=clock, immediate_jobs=True)


class Api:
    """An HTTP client for one user, which sends the CSRF token with every change."""

    def __init__(self, app: FastAPI) -> None:
        self.client = TestClient(app, base_url="https://testserver")
        self.csrf: str | None = None

    def login(self, username: str, password: str) -> Api:
        response = self.client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        self.csrf = response.json()["csrf_token"]
        return self

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.csrf and method.upper() not in ("GET", "HEAD"):
            headers.setdefault("X-CSRF-Token", self.csrf)
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def bootstrap_admin(app: FastAPI) -> Callable[[], None]:
    """Create the first site admin the way an operator does (CLI actor, no HTTP)."""
    from medlabel.services import users
    from medlabel.services.actor import Actor

    def make() -> None:
        ctx = app.state.ctx
        with ctx.db.write() as s:
            users.create_user(
                s,
                Actor.cli(),
                ctx.passwords,
                ctx.clock,
                username="root-admin",
                password=ADMIN_PASSWORD,
                display_name="Site Admin",
                is_admin=True,
            )

    return make


@pytest.fixture
def admin(app: FastAPI, bootstrap_admin: Callable[[], None]) -> Api:
    bootstrap_admin()
    return Api(app).login("root-admin", ADMIN_PASSWORD)


@pytest.fixture
def new_client(app: FastAPI) -> Callable[[], Api]:
    return lambda: Api(app)


@pytest.fixture
def make_user(admin: Api, app: FastAPI) -> Callable[..., Api]:
    """Create a user through the API and return a logged-in client for them."""

    def make(username: str, *, is_admin: bool = False) -> Api:
        response = admin.post(
            "/api/users",
            json={"username": username, "password": USER_PASSWORD, "is_admin": is_admin},
        )
        assert response.status_code == 201, response.text
        return Api(app).login(username, USER_PASSWORD)

    return make


@pytest.fixture
def project(admin: Api) -> str:
    response = admin.post("/api/projects", json={"slug": "chest-ct", "name": "Chest CT"})
    assert response.status_code == 201, response.text
    return "chest-ct"


def add_member(admin: Api, slug: str, username: str, role: str) -> None:
    response = admin.put(f"/api/projects/{slug}/members/{username}", json={"role": role})
    assert response.status_code == 200, response.text
