"""Error responses, hostile request bodies and the headers on every response.

SECURITY.md cases 23 (endless bodies), 28-30 (huge, deep and non-finite JSON), 46 (log
injection) and 47 (no stack traces or SQL in errors, correlation ids instead).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from medlabel.storage.db import Database
from medlabel.storage.models import AuditEvent, LabelSchemaVersion, Project
from medlabel.web.middleware import CSP_APP, CSP_DOCS
from tests.conftest import Api

PROBLEM = "application/problem+json"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
LEAKS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "SELECT ", "INSERT ")


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://medlabel.dev/problems/")
    if code is not None:
        assert body["code"] == code
    for leak in LEAKS:
        assert leak not in response.text
    return body


def login_body(limit: int) -> Iterator[bytes]:
    """A login body that streams more than ``limit`` bytes, in chunks, with no length."""
    yield b'{"username": "'
    sent = 0
    while sent <= limit:
        yield b"a" * 65536
        sent += 65536
    yield b'", "password": "x"}'


def audit_actions(database: Database) -> list[str]:
    with database.read() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


# ---- routing errors ---------------------------------------------------------------------


def test_unknown_api_route_is_a_problem_404(app) -> None:
    response = Api(app).client.get("/api/no-such-thing")
    body = assert_problem(response, 404, "not_found")
    assert "/api/no-such-thing" in body["detail"]
    assert body["correlation_id"] == response.headers["x-request-id"]


def test_wrong_method_is_a_problem_405_with_allow(app) -> None:
    response = Api(app).client.get("/api/auth/login")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    response = Api(app).client.delete("/healthz")
    assert_problem(response, 405, "method_not_allowed")


# ---- body size limits (cases 23, 28) ----------------------------------------------------


def test_declared_body_over_the_json_limit_is_413(app, settings, database) -> None:
    limit = settings.max_json_bytes
    payload = b'{"username": "' + b"a" * limit + b'", "password": "x"}'
    response = Api(app).client.post(
        "/api/auth/login", content=payload, headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 413, "too_large")
    assert str(limit) in body["detail"]
    assert response.headers["x-request-id"]
    assert "login.failure" not in audit_actions(database)  # never reached the handler


def test_a_body_exactly_at_the_limit_is_not_413(app, settings) -> None:
    limit = settings.max_json_bytes
    head, tail = b'{"username": "', b'", "password": "x"}'
    payload = head + b"a" * (limit - len(head) - len(tail)) + tail
    assert len(payload) == limit
    response = Api(app).client.post(
        "/api/auth/login", content=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422  # too long a username, but read and validated


def test_streamed_body_without_length_over_the_limit_is_413(app, settings, database) -> None:
    response = Api(app).client.post(
        "/api/auth/login",
        content=login_body(settings.max_json_bytes),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "too_large")
    assert "login.failure" not in audit_actions(database)


def test_streamed_body_to_an_authenticated_endpoint_is_413(admin: Api, settings, database) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"slug": "streamed", "name": "x", "description": "'
        for _ in range(settings.max_json_bytes // 65536 + 2):
            yield b"d" * 65536
        yield b'"}'

    response = admin.post(
        "/api/projects", content=body(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "too_large")
    with database.read() as s:
        assert s.scalar(select(Project.id).where(Project.slug == "streamed")) is None


# ---- hostile JSON (cases 29, 30) --------------------------------------------------------

DEEP = {
    "open brackets": b"[" * 100_000,
    "balanced brackets": b"[" * 100_000 + b"]" * 100_000,
    "nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
}


def test_deeply_nested_json_is_refused_without_a_500(admin: Api) -> None:
    headers = {"Content-Type": "application/json"}
    anonymous = Api(admin.client.app).client
    for name, payload in DEEP.items():
        for response in (
            anonymous.post("/api/auth/login", content=payload, headers=headers),
            admin.post("/api/projects", content=payload, headers=headers),
        ):
            assert response.status_code in (400, 422), (name, response.text)
            assert_problem(response, response.status_code)


def schema_with_minimum(literal: str) -> bytes:
    return (
        '{"base_version": 0, "classes": [{"name": "Nodule", "color": "#e6194b", '
        '"kinds": ["polygon"], "attributes": [{"name": "Size", "type": "number", '
        f'"minimum": {literal}}}]}}]}}'
    ).encode()


def test_the_non_finite_payload_is_otherwise_valid(admin: Api, project: str) -> None:
    response = admin.put(
        f"/api/projects/{project}/schema",
        content=schema_with_minimum("1e308"),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_nan_and_infinity_are_422(admin: Api, project: str, database) -> None:
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        response = admin.put(
            f"/api/projects/{project}/schema",
            content=schema_with_minimum(literal),
            headers={"Content-Type": "application/json"},
        )
        body = assert_problem(response, 422, "invalid_input")
        assert any(e["field"].endswith("minimum") for e in body["errors"]), (literal, body)
    with database.read() as s:
        assert s.scalars(select(LabelSchemaVersion)).all() == []


def test_nan_in_an_integer_field_is_422(admin: Api) -> None:
    response = admin.post(
        "/api/me/tokens",
        content=b'{"name": "t", "expires_days": NaN}',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(response, 422, "invalid_input")
    assert [e["field"] for e in body["errors"]] == ["expires_days"]


def test_wrong_types_list_the_fields_without_echoing_values(admin: Api, database) -> None:
    secret = "Hunter2-do-not-echo-me"
    response = admin.post(
        "/api/users",
        json={
            "username": "typed-user",
            "password": {"value": secret},
            "is_admin": f"maybe-{secret}",
            "display_name": ["x", secret],
        },
    )
    body = assert_problem(response, 422, "invalid_input")
    fields = {e["field"] for e in body["errors"]}
    assert {"password", "is_admin", "display_name"} <= fields
    assert all(e["in"] == "body" for e in body["errors"])
    assert secret not in response.text
    assert all(set(e) <= {"field", "in", "problem", "message"} for e in body["errors"])
    with database.read() as s:
        assert list(s.scalars(select(AuditEvent.action))).count("user.create") == 1  # the admin


def test_a_too_long_password_is_not_echoed(app) -> None:
    password = "Z" * 2000
    response = Api(app).client.post(
        "/api/auth/login", json={"username": "someone", "password": password}
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["password"]
    assert password[:100] not in response.text


def test_unknown_fields_are_refused(admin: Api) -> None:
    response = admin.post("/api/projects", json={"slug": "p1", "name": "P", "owner_id": 1})
    body = assert_problem(response, 422, "invalid_input")
    assert [e["field"] for e in body["errors"]] == ["owner_id"]


def test_invalid_query_parameters_are_422(admin: Api) -> None:
    body = assert_problem(admin.get("/api/audit?limit=lots"), 422, "invalid_input")
    assert body["errors"][0]["field"] == "limit" and body["errors"][0]["in"] == "query"


def test_invalid_json_is_422(app) -> None:
    client = Api(app).client
    for payload in (b'{"username": "a", "password": ', b"{'username': 'a'}", b"\xff\xfe", b"{}}"):
        response = client.post(
            "/api/auth/login", content=payload, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 422, "invalid_input")


# ---- headers and request ids ------------------------------------------------------------


def assert_hardened(response: Any) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "max-age=" in headers["strict-transport-security"]
    assert headers["x-request-id"]


def test_api_responses_are_hardened_and_not_cached(admin: Api) -> None:
    assert "frame-ancestors 'none'" in CSP_APP and "object-src 'none'" in CSP_APP
    for path in ("/api/projects", "/api/nope", "/api/auth/session", "/api/me/tokens"):
        response = admin.get(path)
        assert_hardened(response)
        assert response.headers["content-security-policy"] == CSP_APP
        assert response.headers["cache-control"] == "no-store", path


def test_413_and_405_responses_carry_the_headers_too(app, settings) -> None:
    client = Api(app).client
    too_big = client.post(
        "/api/auth/login",
        content=b"[" * (settings.max_json_bytes + 1),
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert_hardened(too_big)
    assert too_big.headers["cache-control"] == "no-store"
    assert_hardened(client.get("/api/auth/login"))


def test_pages_get_the_app_csp_and_docs_their_own(app) -> None:
    client = Api(app).client
    index = client.get("/")
    assert index.status_code == 200
    assert_hardened(index)
    assert index.headers["content-security-policy"] == CSP_APP
    assert index.headers["cache-control"] != "no-store"  # only /api is no-store
    docs = client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert docs.headers["content-security-policy"] == CSP_DOCS
    assert "/api/openapi.json" in docs.text


def test_the_openapi_document_loads(app) -> None:
    response = Api(app).client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/audit", "/api/audit/verify", "/api/auth/login", "/api/projects"):
        assert path in spec["paths"]


def test_health_probes(app) -> None:
    for path in ("/healthz", "/readyz"):
        response = Api(app).client.get(path)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


def test_a_safe_request_id_is_echoed(app) -> None:
    for value in ("abc-123_X.y", "x" * 64, "trace.1"):
        response = Api(app).client.get("/api/nope", headers={"X-Request-ID": value})
        assert response.headers["x-request-id"] == value
        assert response.json()["correlation_id"] == value


UNSAFE_IDS = ["two words", "line\nbreak", "crlf\r\nSet-Cookie: x=1", "x" * 65, "<script>", ""]


def test_an_unsafe_request_id_is_replaced(app) -> None:
    for value in UNSAFE_IDS:
        response = Api(app).client.get("/api/nope", headers={"X-Request-ID": value})
        replaced = response.headers["x-request-id"]
        assert replaced != value and GENERATED_ID.fullmatch(replaced), value
        assert response.json()["correlation_id"] == replaced
        assert "set-cookie" not in response.headers


def test_each_request_gets_its_own_id(app) -> None:
    client = Api(app).client
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


# ---- log injection (case 46) ------------------------------------------------------------


def test_a_username_with_a_newline_is_just_a_failed_login(
    app, bootstrap_admin, database, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap_admin()
    injected = "root-admin\n2026-11-26 12:00:00 INFO login.success user=root-admin"
    with caplog.at_level(logging.DEBUG):
        response = Api(app).client.post(
            "/api/auth/login", json={"username": injected, "password": "whatever"}
        )
    body = assert_problem(response, 401, "unauthenticated")
    assert "INFO login.success" not in response.text
    assert "set-cookie" not in response.headers
    assert all("INFO login.success" not in r.getMessage() for r in caplog.records)
    assert body["detail"] == "Invalid username or password."
    actions = audit_actions(database)
    assert actions[-1] == "login.failure" and "login.success" not in actions
