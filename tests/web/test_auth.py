"""Logins, sessions, CSRF, API tokens and brute-force limits (SECURITY.md cases 38-40)."""

from __future__ import annotations

from sqlalchemy import select, text

from medlabel.storage.models import ApiToken
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD, Api


def test_login_sets_a_hardened_session_cookie(app, bootstrap_admin) -> None:
    bootstrap_admin()
    api = Api(app)
    response = api.client.post(
        "/api/auth/login", json={"username": "root-admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-medlabel_session=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "domain=" not in cookie.lower()
    body = response.json()
    assert body["user"]["username"] == "root-admin"
    assert len(body["csrf_token"]) == 64


def test_api_needs_credentials(app) -> None:
    response = Api(app).get("/api/projects")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"


def test_unknown_user_and_wrong_password_look_the_same(app, bootstrap_admin) -> None:
    bootstrap_admin()
    api = Api(app)
    wrong = api.client.post(
        "/api/auth/login", json={"username": "root-admin", "password": "not the password"}
    )
    unknown = api.client.post(
        "/api/auth/login", json={"username": "nobody-here", "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: {k: v for k, v in r.json().items() if k != "correlation_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert "set-cookie" not in wrong.headers


def test_account_lockout_after_repeated_failures(app, bootstrap_admin, clock) -> None:
    bootstrap_admin()
    api = Api(app)
    for _ in range(5):
        r = api.client.post("/api/auth/login", json={"username": "root-admin", "password": "x"})
        assert r.status_code == 401
    locked = api.client.post(
        "/api/auth/login", json={"username": "root-admin", "password": ADMIN_PASSWORD}
    )
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    # An unknown account locks the same way: no enumeration through the lockout either.
    for _ in range(5):
        api.client.post("/api/auth/login", json={"username": "ghost-user", "password": "x"})
    ghost = api.client.post("/api/auth/login", json={"username": "ghost-user", "password": "x"})
    assert ghost.status_code == 429
    clock.advance(minutes=16)
    assert (
        api.client.post(
            "/api/auth/login", json={"username": "root-admin", "password": ADMIN_PASSWORD}
        ).status_code
        == 200
    )


def test_logout_revokes_the_session_server_side(admin: Api) -> None:
    cookie = admin.client.cookies.get("__Host-medlabel_session")
    assert admin.post("/api/auth/logout").status_code == 204
    replay = Api(admin.client.app)
    replay.client.cookies.set("__Host-medlabel_session", cookie)
    assert replay.get("/api/projects").status_code == 401


def test_idle_sessions_end_automatically(admin: Api, clock) -> None:
    assert admin.get("/api/projects").status_code == 200
    clock.advance(minutes=20)
    assert admin.get("/api/projects").status_code == 200  # activity keeps it alive
    clock.advance(minutes=31)
    assert admin.get("/api/projects").status_code == 401


def test_sessions_have_an_absolute_lifetime(admin: Api, clock) -> None:
    for _ in range(13):
        clock.advance(minutes=29)
        admin.get("/api/projects")
    clock.advance(hours=6)
    assert admin.get("/api/projects").status_code == 401


def test_state_changes_with_the_cookie_need_the_csrf_token(admin: Api) -> None:
    body = {"slug": "csrf-test", "name": "CSRF"}
    no_token = admin.client.post("/api/projects", json=body)
    assert no_token.status_code == 403
    wrong = admin.client.post("/api/projects", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    cross_site = admin.post("/api/projects", json=body, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert admin.get("/api/projects/csrf-test").status_code == 404
    assert (
        admin.post("/api/projects", json=body, headers={"Origin": "https://testserver"}).status_code
        == 201
    )


def test_json_sent_as_text_plain_is_not_accepted(admin: Api) -> None:
    response = admin.post(
        "/api/projects",
        content=b'{"slug": "plain", "name": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 422
    assert admin.get("/api/projects/plain").status_code == 404


def test_session_endpoint_returns_the_csrf_token_again(admin: Api) -> None:
    body = admin.get("/api/auth/session").json()
    assert body["csrf_token"] == admin.csrf
    assert body["via"] == "session"


def test_api_tokens_work_without_csrf_and_are_hashed_at_rest(admin: Api, app, database) -> None:
    created = admin.post("/api/me/tokens", json={"name": "training script", "expires_days": 30})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("mlt_")
    script = Api(app)
    headers = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/projects", headers=headers).status_code == 200
    made = script.post(
        "/api/projects", json={"slug": "by-token", "name": "By token"}, headers=headers
    )
    assert made.status_code == 201
    with database.read() as s:
        stored = s.scalars(select(ApiToken)).all()
        assert len(stored) == 1
        assert stored[0].token_hash != token and token not in stored[0].token_hash
        assert stored[0].last_used_at is not None
    listed = admin.get("/api/me/tokens").json()
    assert listed[0]["prefix"] == token[:12] and "token" not in listed[0]


def test_revoked_and_expired_tokens_are_refused(admin: Api, app, clock) -> None:
    first = admin.post("/api/me/tokens", json={"name": "a"}).json()
    second = admin.post("/api/me/tokens", json={"name": "b", "expires_days": 1}).json()
    script = Api(app)
    assert admin.delete(f"/api/me/tokens/{first['id']}").status_code == 204
    assert (
        script.get(
            "/api/projects", headers={"Authorization": f"Bearer {first['token']}"}
        ).status_code
        == 401
    )
    assert (
        script.get(
            "/api/projects", headers={"Authorization": f"Bearer {second['token']}"}
        ).status_code
        == 200
    )
    clock.advance(days=1, seconds=1)
    assert (
        script.get(
            "/api/projects", headers={"Authorization": f"Bearer {second['token']}"}
        ).status_code
        == 401
    )
    forged = "mlt_" + "A" * 43
    assert (
        script.get("/api/projects", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_a_user_cannot_revoke_someone_elses_token(admin: Api, make_user) -> None:
    token_id = admin.post("/api/me/tokens", json={"name": "mine"}).json()["id"]
    other = make_user("other-user")
    assert other.delete(f"/api/me/tokens/{token_id}").status_code == 404
    assert admin.get("/api/me/tokens").json()[0]["revoked"] is False


def test_password_change_ends_other_sessions(admin: Api, make_user, app) -> None:
    alice = make_user("alice")
    second_browser = Api(app).login("alice", USER_PASSWORD)
    response = alice.put(
        "/api/me/password",
        json={"current_password": USER_PASSWORD, "new_password": "a much better passphrase"},
    )
    assert response.status_code == 204
    assert second_browser.get("/api/projects").status_code == 401
    assert Api(app).login("alice", "a much better passphrase")
    bad = Api(app).client.post(
        "/api/auth/login", json={"username": "alice", "password": USER_PASSWORD}
    )
    assert bad.status_code == 401


def test_password_policy(admin: Api) -> None:
    for password, problem in [
        ("short", "too_short"),
        ("password1234", "too_common"),
        ("aaaaaaaaaaaaaaaa", "too_common"),
        ("weak-bob-the-builder", "contains_username"),
    ]:
        r = admin.post("/api/users", json={"username": "bob-the-builder", "password": password})
        assert r.status_code == 422, password
        assert r.json()["errors"][0]["problem"] == problem


def test_deactivated_users_lose_access(admin: Api, make_user, app) -> None:
    bob = make_user("bob")
    token = bob.post("/api/me/tokens", json={"name": "t"}).json()["token"]
    assert admin.patch("/api/users/bob", json={"is_active": False}).status_code == 200
    assert bob.get("/api/projects").status_code == 401
    assert (
        Api(app).get("/api/projects", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )
    login = Api(app).client.post(
        "/api/auth/login", json={"username": "bob", "password": USER_PASSWORD}
    )
    assert login.status_code == 401


def test_passwords_are_stored_as_argon2id(admin: Api, database) -> None:
    with database.read() as s:
        stored = s.execute(text("SELECT password_hash FROM user_account")).scalars().all()
    assert stored and all(h.startswith("$argon2id$") for h in stored)
    assert all(ADMIN_PASSWORD not in h for h in stored)


def test_only_site_admins_manage_users(make_user) -> None:
    carol = make_user("carol")
    assert carol.get("/api/users").status_code == 403
    r = carol.post("/api/users", json={"username": "mallory", "password": USER_PASSWORD})
    assert r.status_code == 403
    assert carol.patch("/api/users/carol", json={"is_admin": True}).status_code == 403
