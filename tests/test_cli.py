"""The ``medlabel`` console script, run as a real subprocess on fresh data directories.

What the CLI writes is then checked through the web app built in-process on the same data
directory (or PostgreSQL database), so "the printed credentials work" is tested end to end.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

import medlabel
from medlabel.settings import Settings
from medlabel.storage import migrate
from medlabel.storage.db import Database
from medlabel.web.app import create_app

MEDLABEL = Path(sys.executable).parent / "medlabel"
PG_URL = os.environ.get(
    "MEDLABEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("MEDLABEL_TEST_REQUIRE_PG") == "1"
PASSWORD = "a long enough passphrase for tests"
OTHER_PASSWORD = "another quite long passphrase"


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any MEDLABEL_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLABEL_")}
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _no_medlabel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process Settings() read MEDLABEL_* too; keep them out of these tests.
    for key in list(os.environ):
        if key.startswith("MEDLABEL_") and not key.startswith("MEDLABEL_TEST_"):
            monkeypatch.delenv(key)


def cli(
    *args: str | Path,
    data_dir: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = [str(MEDLABEL), *map(str, args)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else _clean_env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


@dataclass
class DemoLogin:
    url: str
    username: str
    password: str


def parse_demo(stdout: str) -> DemoLogin:
    fields = dict(re.findall(r"^\s+(URL|username|password):\s+(\S+)\s*$", stdout, re.M))
    assert set(fields) == {"URL", "username", "password"}, stdout
    return DemoLogin(fields["URL"], fields["username"], fields["password"])


class Web:
    """The app built in-process on a data directory the CLI wrote to."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        # The CLI changes things in another process; without the in-process credential
        # cache (web/caches.py), this app sees those changes at once.
        self.settings = Settings(data_dir=data_dir, database_url=database_url, auth_cache_seconds=0)
        self.db = Database(self.settings.resolved_database_url())
        self.app = create_app(self.settings, db=self.db)

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://testserver")

    def login(self, username: str, password: str) -> tuple[TestClient, int]:
        client = self.client()
        response = client.post("/api/auth/login", json={"username": username, "password": password})
        return client, response.status_code

    def logged_in(self, username: str, password: str) -> TestClient:
        client, status = self.login(username, password)
        assert status == 200, f"{username} could not log in"
        return client

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture
def web() -> Iterator[Callable[..., Web]]:
    """Open the web app on a data directory; everything opened is closed afterwards."""
    opened: list[Web] = []

    def open_web(data_dir: Path, database_url: str | None = None) -> Web:
        opened.append(Web(data_dir, database_url))
        return opened[-1]

    yield open_web
    for item in opened:
        item.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def demo_dir(data_dir: Path) -> tuple[Path, DemoLogin]:
    return data_dir, parse_demo(ok(cli("demo", data_dir=data_dir)))


# --- basics ------------------------------------------------------------------------------


def test_version() -> None:
    result = cli("--version")
    assert ok(result).strip() == f"medlabel {medlabel.__version__}"
    assert result.stderr == ""


def test_db_upgrade_creates_the_sqlite_database(tmp_path: Path, data_dir: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert not data_dir.exists()
    out = ok(cli("db", "upgrade", data_dir=data_dir, cwd=cwd))
    head = migrate.head_revision()
    assert out.strip() == f"Database (sqlite) is at migration {head}."
    db_file = data_dir / "medlabel.db"
    assert db_file.is_file()
    with sqlite3.connect(db_file) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    conn.close()
    assert {"user_account", "project", "audit_event", "alembic_version"} <= tables
    assert version == head
    # Nothing was written to the default ./medlabel-data of the working directory.
    assert list(cwd.iterdir()) == []
    # Running it again is a no-op.
    assert ok(cli("db", "upgrade", data_dir=data_dir)).strip().endswith(f"migration {head}.")


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env_dir = tmp_path / "from-env"
    result = cli("db", "upgrade", env=_clean_env(MEDLABEL_DATA_DIR=str(env_dir)), cwd=cwd)
    assert "Database (sqlite)" in ok(result)
    assert (env_dir / "medlabel.db").is_file()
    assert list(cwd.iterdir()) == []


# --- demo --------------------------------------------------------------------------------


def test_demo_prints_credentials_that_log_in(demo_dir: tuple[Path, DemoLogin], web) -> None:
    data_dir, login = demo_dir
    assert login.url == "http://127.0.0.1:8000/"
    assert login.username == "admin"
    assert len(login.password) >= 12
    site = web(data_dir)
    assert site.login("admin", login.password + "x")[1] == 401
    client = site.logged_in(login.username, login.password)

    projects = client.get("/api/projects")
    assert projects.status_code == 200
    items = {p["slug"]: p for p in projects.json()["items"]}
    assert set(items) == {"demo"}
    assert items["demo"]["my_role"] == "admin"
    assert items["demo"]["schema_version"] == 1
    assert items["demo"]["guideline_version"] == 1

    schema = client.get("/api/projects/demo/schema")
    assert schema.status_code == 200
    assert schema.json()["version"] == 1
    keys = [c["key"] for c in schema.json()["classes"]]
    assert keys and "lung_nodule" in keys

    guidelines = client.get("/api/projects/demo/guidelines")
    assert guidelines.status_code == 200
    assert guidelines.json()["version"] == 1
    assert "<h1>" in guidelines.json()["html"]
    assert guidelines.json()["markdown"].strip()

    me = client.get("/api/me").json()
    assert me["username"] == "admin" and me["is_admin"] is True


def test_demo_again_rotates_the_password(demo_dir: tuple[Path, DemoLogin], web) -> None:
    data_dir, first = demo_dir
    site = web(data_dir)
    old_session = site.logged_in("admin", first.password)
    assert old_session.get("/api/projects").status_code == 200

    second = parse_demo(ok(cli("demo", data_dir=data_dir)))
    assert second.password != first.password
    assert site.login("admin", first.password)[1] == 401
    # Setting a password ends the admin's existing browser sessions too.
    assert old_session.get("/api/projects").status_code == 401
    client = site.logged_in("admin", second.password)
    page = client.get("/api/projects").json()
    assert [p["slug"] for p in page["items"]] == ["demo"]
    assert page["items"][0]["schema_version"] == 1  # not duplicated by the second run


# --- users -------------------------------------------------------------------------------


def test_user_add_and_admin_flag(data_dir: Path, web) -> None:
    out = ok(cli("user", "add", "Alice", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))
    assert out.strip() == "Created user alice."
    out = ok(
        cli(
            "user",
            "add",
            "root",
            "--admin",
            "--display-name",
            "Root Admin",
            "--password-stdin",
            data_dir=data_dir,
            stdin=OTHER_PASSWORD + "\n",
        )
    )
    assert out.strip() == "Created user root (site admin)."

    site = web(data_dir)
    alice = site.logged_in("alice", PASSWORD)
    root = site.logged_in("root", OTHER_PASSWORD)
    assert alice.get("/api/me").json()["is_admin"] is False
    assert root.get("/api/me").json()["display_name"] == "Root Admin"
    assert alice.get("/api/users").status_code == 403
    assert {u["username"] for u in root.get("/api/users").json()} == {"alice", "root"}


def test_user_add_rejects_a_weak_password(data_dir: Path, web) -> None:
    result = cli("user", "add", "bob", "--password-stdin", data_dir=data_dir, stdin="short\n")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "error: The password is too short" in result.stderr
    common = cli("user", "add", "bob", "--password-stdin", data_dir=data_dir, stdin="password1234")
    assert common.returncode == 2
    assert "error:" in common.stderr and "common" in common.stderr.lower()
    assert web(data_dir).login("bob", "short")[1] == 401
    # The name is still free.
    ok(cli("user", "add", "bob", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))


def test_user_add_refuses_a_duplicate(data_dir: Path, web) -> None:
    ok(cli("user", "add", "carol", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))
    again = cli("user", "add", "Carol", "--password-stdin", data_dir=data_dir, stdin=OTHER_PASSWORD)
    assert again.returncode == 2
    assert "error:" in again.stderr and "taken" in again.stderr
    site = web(data_dir)
    site.logged_in("carol", PASSWORD)
    assert site.login("carol", OTHER_PASSWORD)[1] == 401


def test_user_set_password(data_dir: Path, web) -> None:
    ok(cli("user", "add", "dave", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))
    site = web(data_dir)
    before = site.logged_in("dave", PASSWORD)
    out = ok(
        cli(
            "user",
            "set-password",
            "dave",
            "--password-stdin",
            data_dir=data_dir,
            stdin=OTHER_PASSWORD,
        )
    )
    assert "dave" in out and "sessions were ended" in out
    assert before.get("/api/projects").status_code == 401
    assert site.login("dave", PASSWORD)[1] == 401
    site.logged_in("dave", OTHER_PASSWORD)

    weak = cli("user", "set-password", "dave", "--password-stdin", data_dir=data_dir, stdin="x")
    assert weak.returncode == 2 and "error:" in weak.stderr
    site.logged_in("dave", OTHER_PASSWORD)
    unknown = cli(
        "user", "set-password", "nobody", "--password-stdin", data_dir=data_dir, stdin=PASSWORD
    )
    assert unknown.returncode == 2 and "error:" in unknown.stderr


# --- projects ----------------------------------------------------------------------------


def test_project_create_and_add_member(data_dir: Path, web) -> None:
    ok(cli("user", "add", "owner", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))
    ok(cli("user", "add", "erin", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))

    out = ok(
        cli(
            "project",
            "create",
            "chest-ct",
            "--name",
            "Chest CT",
            "--owner",
            "owner",
            data_dir=data_dir,
        )
    )
    assert out.strip() == "Created project chest-ct with admin owner."
    bad = cli("project", "create", "Chest CT!", "--name", "x", data_dir=data_dir)
    assert bad.returncode == 2
    assert "error: slug" in bad.stderr and "not valid" in bad.stderr
    dup = cli("project", "create", "chest-ct", "--name", "Again", data_dir=data_dir)
    assert dup.returncode == 2 and "error:" in dup.stderr
    no_owner = cli(
        "project", "create", "x-ray", "--name", "X", "--owner", "ghost", data_dir=data_dir
    )
    assert no_owner.returncode == 2 and "error:" in no_owner.stderr

    site = web(data_dir)
    erin = site.logged_in("erin", PASSWORD)
    assert erin.get("/api/projects").json()["items"] == []

    out = ok(
        cli("project", "add-member", "chest-ct", "erin", "--role", "annotator", data_dir=data_dir)
    )
    assert out.strip() == "erin is now annotator in chest-ct."
    bad_role = cli("project", "add-member", "chest-ct", "erin", "--role", "boss", data_dir=data_dir)
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    no_project = cli("project", "add-member", "nope", "erin", "--role", "viewer", data_dir=data_dir)
    assert no_project.returncode == 2 and "error:" in no_project.stderr

    owner = site.logged_in("owner", PASSWORD)
    roles = {p["slug"]: p["my_role"] for p in erin.get("/api/projects").json()["items"]}
    assert roles == {"chest-ct": "annotator"}
    owned = {
        p["slug"]: (p["name"], p["my_role"]) for p in owner.get("/api/projects").json()["items"]
    }
    assert owned == {"chest-ct": ("Chest CT", "admin")}


# --- audit -------------------------------------------------------------------------------


def test_audit_verify_detects_tampering(demo_dir: tuple[Path, DemoLogin]) -> None:
    data_dir, _ = demo_dir
    out = ok(cli("audit", "verify", data_dir=data_dir))
    assert out.startswith("audit trail OK:")

    db_file = data_dir / "medlabel.db"
    conn = sqlite3.connect(db_file)
    try:
        # The append-only trigger refuses the edit while it exists...
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_event SET action = 'user.create' WHERE seq = 2")
        conn.rollback()
        # ...so an attacker with file access drops it first.
        conn.execute("DROP TRIGGER audit_event_no_update")
        conn.execute("UPDATE audit_event SET action = 'tampered.action' WHERE seq = 2")
        conn.commit()
    finally:
        conn.close()

    broken = cli("audit", "verify", data_dir=data_dir)
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    assert "audit trail BROKEN at record 2" in broken.stderr
    assert "1 records before it verified" in broken.stderr
    assert "OK" not in broken.stdout


def test_audit_head_anchor(demo_dir: tuple[Path, DemoLogin], tmp_path: Path) -> None:
    data_dir, _ = demo_dir
    head = json.loads(ok(cli("audit", "head", data_dir=data_dir)))
    assert set(head) == {"seq", "row_hash", "read_at"}
    assert head["seq"] >= 1
    assert re.fullmatch(r"[0-9a-f]{64}", head["row_hash"])
    anchor = tmp_path / "anchor.json"
    anchor.write_text(json.dumps(head))

    # More history after the anchor does not matter; the anchored record must be intact.
    ok(cli("user", "add", "frank", "--password-stdin", data_dir=data_dir, stdin=PASSWORD))
    out = ok(cli("audit", "verify", "--anchor", anchor, data_dir=data_dir))
    assert out.startswith("audit trail OK:")
    later = json.loads(ok(cli("audit", "head", data_dir=data_dir)))
    assert later["seq"] > head["seq"]

    forged = tmp_path / "forged.json"
    altered = ("0" if head["row_hash"][0] != "0" else "1") + head["row_hash"][1:]
    forged.write_text(json.dumps({**head, "row_hash": altered}))
    bad = cli("audit", "verify", "--anchor", forged, data_dir=data_dir)
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert f"BROKEN at record {head['seq']}" in bad.stderr
    assert "anchor" in bad.stderr

    # Both anchors at once: the bad one still fails the check.
    both = cli("audit", "verify", "--anchor", anchor, "--anchor", forged, data_dir=data_dir)
    assert both.returncode == 1


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if REQUIRE_PG:
            raise RuntimeError(f"PostgreSQL required but unreachable at {PG_URL}") from exc
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    name = f"medlabel_cli_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_cli_on_postgresql(pg_database: str, data_dir: Path, web) -> None:
    env = _clean_env(MEDLABEL_DATABASE_URL=pg_database)
    out = ok(cli("db", "upgrade", data_dir=data_dir, env=env))
    assert out.strip() == f"Database (postgresql) is at migration {migrate.head_revision()}."
    login = parse_demo(ok(cli("demo", data_dir=data_dir, env=env)))
    verified = ok(cli("audit", "verify", data_dir=data_dir, env=env))
    assert verified.startswith("audit trail OK:")
    assert not (data_dir / "medlabel.db").exists()  # the data went to PostgreSQL

    site = web(data_dir, pg_database)
    client = site.logged_in(login.username, login.password)
    items = client.get("/api/projects").json()["items"]
    assert [(p["slug"], p["my_role"], p["schema_version"]) for p in items] == [("demo", "admin", 1)]
