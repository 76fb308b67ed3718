"""A real ``medlabel serve`` process, driven over real HTTP on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import Server, run_cli, start_demo_server

pytestmark = pytest.mark.server

COOKIE = "__Host-medlabel_session"
TIMEOUT = httpx2.Timeout(60.0)


class Browserless:
    """A logged-in HTTP client that sends the session cookie and the CSRF token itself.

    The session cookie is ``Secure``; a cookie jar does not send it back over plain
    http://127.0.0.1 (only browsers treat that origin as secure), so the ``Cookie`` header
    is set explicitly.
    """

    def __init__(self, server: Server, username: str | None = None, password: str | None = None):
        self.client = httpx2.Client(base_url=server.url, timeout=TIMEOUT)
        response = self.client.post(
            "/api/auth/login",
            json={"username": username or server.username, "password": password or server.password},
        )
        assert response.status_code == 200, response.text
        self.login_response = response
        self.cookie = response.cookies[COOKIE]
        self.csrf: str = response.json()["csrf_token"]
        self.client.cookies.clear()
        self.client.headers["Cookie"] = f"{COOKIE}={self.cookie}"

    def get(self, path: str, **kw: Any) -> httpx2.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, *, csrf: bool = True, **kw: Any) -> httpx2.Response:
        headers = dict(kw.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.client.post(path, headers=headers, **kw)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def admin(demo_server: Server):
    session = Browserless(demo_server)
    yield session
    session.close()


def test_health_endpoints(demo_server: Server) -> None:
    with httpx2.Client(base_url=demo_server.url, timeout=TIMEOUT) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "detail": "ok"}
        assert client.get("/healthz").json() == {"status": "ok"}
        index = client.get("/")
        assert index.status_code == 200
        assert "text/html" in index.headers["content-type"]
        assert "default-src 'self'" in index.headers["content-security-policy"]
        assert client.get("/static/app.js").status_code == 200


def test_login_and_list_projects(demo_server: Server, admin: Browserless) -> None:
    cookie = admin.login_response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("httponly", "secure", "samesite=strict", "path=/"):
        assert attribute in cookie.lower()
    assert admin.login_response.json()["user"]["username"] == "admin"

    projects = admin.get("/api/projects")
    assert projects.status_code == 200
    assert projects.headers["cache-control"] == "no-store"
    items = projects.json()["items"]
    assert [(p["slug"], p["my_role"]) for p in items] == [("demo", "admin")]
    assert admin.get("/api/auth/session").json()["csrf_token"] == admin.csrf

    with httpx2.Client(base_url=demo_server.url, timeout=TIMEOUT) as anonymous:
        assert anonymous.get("/api/projects").status_code == 401
        wrong = anonymous.post(
            "/api/auth/login", json={"username": "admin", "password": "not the password"}
        )
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers


def test_changes_need_the_csrf_token(admin: Browserless) -> None:
    body = {"slug": f"csrf-{uuid.uuid4().hex[:8]}", "name": "CSRF check"}
    refused = admin.post("/api/projects", csrf=False, json=body)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "X-CSRF-Token" in refused.json()["detail"]
    wrong = admin.post("/api/projects", csrf=False, json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    cross_site = admin.post("/api/projects", json=body, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert admin.get(f"/api/projects/{body['slug']}").status_code == 404

    made = admin.post("/api/projects", json=body)
    assert made.status_code == 201, made.text
    assert admin.get(f"/api/projects/{body['slug']}").json()["my_role"] == "admin"


def test_api_token_over_http(demo_server: Server, admin: Browserless) -> None:
    created = admin.post("/api/me/tokens", json={"name": "e2e script", "expires_days": 1})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx2.Client(base_url=demo_server.url, timeout=TIMEOUT) as script:
        listed = script.get("/api/projects", headers=auth)
        assert listed.status_code == 200
        assert "demo" in [p["slug"] for p in listed.json()["items"]]
        slug = f"tok-{uuid.uuid4().hex[:8]}"
        made = script.post("/api/projects", json={"slug": slug, "name": "By token"}, headers=auth)
        assert made.status_code == 201, made.text  # no CSRF token needed with a bearer token
        bad = script.get("/api/projects", headers={"Authorization": "Bearer mlt_" + "A" * 43})
        assert bad.status_code == 401
    assert admin.get(f"/api/projects/{slug}").status_code == 200


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``medlabel serve --workers 2`` on SQLite: two processes share the database."""
    server = start_demo_server(tmp_path_factory.mktemp("e2e-workers") / "data", "--workers", "2")
    try:
        yield server
    finally:
        server.terminate()


@pytest.mark.parametrize("which", ["demo_server", "two_workers"])
def test_concurrent_clients(which: str, request: pytest.FixtureRequest) -> None:
    demo_server: Server = request.getfixturevalue(which)
    if which == "two_workers":  # /readyz answers as soon as the first worker is up
        deadline = time.monotonic() + 120
        while demo_server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, demo_server.log()
            time.sleep(0.2)
        assert demo_server.log().count("Started server process") == 2, demo_server.log()
    threads, rounds = 8, 6
    run = uuid.uuid4().hex[:6]

    def work(i: int) -> list[tuple[str, int]]:
        statuses: list[tuple[str, int]] = []
        session = Browserless(demo_server)
        try:
            for r in range(rounds):
                for path in ("/api/projects", "/api/projects/demo/schema", "/api/auth/session"):
                    statuses.append((path, session.get(path).status_code))
                if r % 3 == 0:
                    body = {"slug": f"c-{run}-{i}-{r}", "name": f"Concurrent {i}/{r}"}
                    statuses.append(
                        ("POST project", session.post("/api/projects", json=body).status_code)
                    )
            token = session.post("/api/me/tokens", json={"name": f"thread {i}"})
            statuses.append(("POST token", token.status_code))
        finally:
            session.close()
        return statuses

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(work, range(threads)))

    failures = [(i, s) for i, statuses in enumerate(results) for s in statuses if s[1] >= 300]
    assert not failures, failures
    assert sum(len(r) for r in results) == threads * (rounds * 3 + rounds // 3 + 1)

    check = Browserless(demo_server)
    try:
        page = check.get("/api/projects", params={"q": f"c-{run}", "limit": 500}).json()
        assert page["total"] == threads * (rounds // 3)
        # The concurrent writes left one unbroken audit chain.
        report = check.post("/api/audit/verify")
        assert report.status_code == 200
        assert report.json()["ok"] is True, report.json()
    finally:
        check.close()
    out = run_cli("audit", "verify", "--data-dir", demo_server.data_dir)
    assert out.startswith("audit trail OK:")


def test_sigterm_stops_the_server(server_factory) -> None:
    server = server_factory()
    session = Browserless(server)
    try:
        assert session.get("/api/projects").status_code == 200
    finally:
        session.close()
    server.process.send_signal(signal.SIGTERM)
    returncode = server.process.wait(timeout=30)
    # uvicorn shuts down gracefully and then re-raises the signal (or exits 0).
    assert returncode in (0, -signal.SIGTERM), server.log()
    log = server.log()
    assert "Shutting down" in log and "Finished server process" in log, log
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass
