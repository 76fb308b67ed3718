"""The audit trail through the API and the database (SECURITY.md §6.3, cases 47-48).

Who did what is recorded for every security-relevant action, with pseudonymous ids only;
only site admins read the whole trail; the database refuses to change it; tampering by
someone who can bypass the database is detected; a change whose audit record cannot be
written does not happen (fail closed); concurrent writers keep the chain gap-free.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from medlabel.domain.audit import Outcome, seal
from medlabel.services import audit, auth, projects
from medlabel.services.actor import Actor
from medlabel.storage.db import Database
from medlabel.storage.models import AuditEvent, Project, ProjectMember, User, WebSession
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD, Api, add_member

SESSION_COOKIE = "__Host-medlabel_session"
SCHEMA = {
    "base_version": 0,
    "classes": [{"name": "Nodule", "color": "#e6194b", "kinds": ["polygon"]}],
}


def all_rows(database: Database) -> list[dict[str, Any]]:
    with database.engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM audit_event ORDER BY seq"))
        return [dict(r._mapping) for r in result]


def events(database: Database, action: str | None = None) -> list[Any]:
    with database.read() as s:
        return [r.entry for r in audit.list_events(s, limit=1000, action=action)]


def last(database: Database, action: str) -> Any:
    found = events(database, action)
    assert found, f"no {action} event"
    return found[-1]


def user_id(database: Database, username: str) -> int:
    with database.read() as s:
        uid = s.scalar(select(User.id).where(User.username == username))
    assert uid is not None
    return uid


def project_id(database: Database, slug: str) -> int:
    with database.read() as s:
        pid = s.scalar(select(Project.id).where(Project.slug == slug))
    assert pid is not None
    return pid


def create_user(admin: Api, username: str, display_name: str) -> None:
    response = admin.post(
        "/api/users",
        json={"username": username, "password": USER_PASSWORD, "display_name": display_name},
    )
    assert response.status_code == 201, response.text


def quiet(api: Api) -> Api:
    """The same user, with server errors returned as responses instead of raised."""
    clone = Api(api.client.app)
    clone.client = TestClient(
        api.client.app,
        base_url="https://testserver",
        raise_server_exceptions=False,
        cookies=dict(api.client.cookies),
    )
    clone.csrf = api.csrf
    return clone


def allow_tampering(database: Database) -> None:
    """What a database superuser can do: switch the append-only triggers off."""
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DROP TRIGGER audit_event_no_delete"))


def verify(admin: Api) -> dict[str, Any]:
    response = admin.post("/api/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()


# ---- what is recorded -------------------------------------------------------------------


def facts(e: Any) -> tuple[Any, ...]:
    """Who did it, in which role and project, to which object."""
    return (e.actor_user_id, e.actor_role, e.project_id, e.object_id)


def test_logins_and_logouts_are_audited(app, admin: Api, database: Database) -> None:
    admin_id = user_id(database, "root-admin")
    success = last(database, "login.success")
    assert facts(success) == (admin_id, "site-admin", None, None)
    assert success.outcome is Outcome.SUCCESS and success.session_id_hash

    create_user(admin, "ada.q", "Dr. Ada Quintessa")
    ada_id = user_id(database, "ada.q")
    anon = Api(app).client
    wrong_password = {"username": "ada.q", "password": "nope"}
    assert anon.post("/api/auth/login", json=wrong_password).status_code == 401
    wrong = last(database, "login.failure")
    assert (wrong.actor_user_id, wrong.outcome) == (ada_id, Outcome.MINOR_FAILURE)
    assert wrong.detail == {"reason": "bad_credentials"}
    unknown_user = {"username": "ghost.patient", "password": "nope"}
    assert anon.post("/api/auth/login", json=unknown_user).status_code == 401
    unknown = last(database, "login.failure")
    assert unknown.actor_user_id is None and unknown.outcome is Outcome.MINOR_FAILURE
    assert len(events(database, "login.failure")) == 2

    ada = Api(app).login("ada.q", USER_PASSWORD)
    assert facts(last(database, "login.success")) == (ada_id, "user", None, None)
    assert ada.post("/api/auth/logout").status_code == 204
    logout = last(database, "logout")
    assert facts(logout) == (ada_id, "user", None, None)
    assert logout.session_id_hash == events(database, "login.success")[-1].session_id_hash


def test_tokens_and_users_are_audited(admin: Api, database: Database) -> None:
    admin_id = user_id(database, "root-admin")
    create_user(admin, "bo.viewer", "Bo Viewer")
    created_user = last(database, "user.create")
    bo_id = str(user_id(database, "bo.viewer"))
    assert facts(created_user) == (admin_id, "site-admin", None, bo_id)
    assert created_user.object_type == "user" and created_user.detail == {"is_admin": False}

    token_id = str(admin.post("/api/me/tokens", json={"name": "script"}).json()["id"])
    made = last(database, "token.create")
    assert facts(made) == (admin_id, "site-admin", None, token_id)
    assert made.object_type == "api_token"
    assert admin.delete(f"/api/me/tokens/{token_id}").status_code == 204
    assert facts(last(database, "token.revoke")) == (admin_id, "site-admin", None, token_id)
    assert admin.delete(f"/api/me/tokens/{token_id}").status_code == 204
    assert len(events(database, "token.revoke")) == 1  # revoking again changes nothing


def test_projects_members_schema_and_guidelines_are_audited(
    admin: Api, project: str, database: Database
) -> None:
    admin_id, pid = user_id(database, "root-admin"), project_id(database, project)
    assert facts(last(database, "project.create")) == (admin_id, "site-admin", pid, str(pid))
    create_user(admin, "ada.q", "Dr. Ada Quintessa")
    ada = str(user_id(database, "ada.q"))

    add_member(admin, project, "ada.q", "annotator")
    added = last(database, "project.member.add")
    assert facts(added) == (admin_id, "admin", pid, ada)
    assert added.detail == {"role": "annotator"}
    add_member(admin, project, "ada.q", "reviewer")
    changed = last(database, "project.member.role_change")
    assert facts(changed) == (admin_id, "admin", pid, ada)
    assert changed.detail == {"from": "annotator", "to": "reviewer"}
    assert admin.delete(f"/api/projects/{project}/members/ada.q").status_code == 204
    assert facts(last(database, "project.member.remove")) == (admin_id, "admin", pid, ada)

    assert admin.put(f"/api/projects/{project}/schema", json=SCHEMA).status_code == 200
    schema = last(database, "schema.version.create")
    assert facts(schema)[:3] == (admin_id, "admin", pid)
    assert schema.detail["version"] == 1 and len(schema.after_hash or "") == 64
    guideline = {"base_version": 0, "markdown": "# Nodules\nOutline every nodule."}
    assert admin.put(f"/api/projects/{project}/guidelines", json=guideline).status_code == 200
    written = last(database, "guideline.version.create")
    assert facts(written)[:3] == (admin_id, "admin", pid)
    assert written.detail == {"version": 1}


def test_access_denials_are_audited(
    admin: Api, make_user, project: str, database: Database
) -> None:
    pid = project_id(database, project)
    outsider, viewer = make_user("out.sider"), make_user("vi.ewer")
    add_member(admin, project, "vi.ewer", "viewer")

    assert outsider.get(f"/api/projects/{project}").status_code == 404
    denied = last(database, "access.denied")
    assert (denied.actor_user_id, denied.actor_role) == (user_id(database, "out.sider"), "user")
    assert denied.outcome is Outcome.MINOR_FAILURE
    assert (denied.object_type, denied.object_id) == ("project", project)
    assert denied.detail["status"] == 404 and denied.project_id is None
    assert outsider.get("/api/projects/does-not-exist/schema").status_code == 404
    assert last(database, "access.denied").object_id == "does-not-exist"

    assert viewer.put(f"/api/projects/{project}/schema", json=SCHEMA).status_code == 403
    forbidden = last(database, "access.denied")
    assert forbidden.actor_user_id == user_id(database, "vi.ewer")
    assert forbidden.project_id == pid
    assert forbidden.detail == {"status": 403, "method": "PUT", "permission": "schema.edit"}
    assert len(events(database, "access.denied")) == 3
    assert events(database, "schema.version.create") == []


def test_no_names_passwords_tokens_or_cookies_in_the_audit_trail(
    app, admin: Api, project: str, database: Database
) -> None:
    create_user(admin, "quinn.radiologist", "Dr. Quinn Fairweather")
    add_member(admin, project, "quinn.radiologist", "annotator")
    anon = Api(app).client
    typo_password = "Sunflower-Meadow-1987"
    for name in ("quinn.radiologist", "jane.patient-doe"):
        anon.post("/api/auth/login", json={"username": name, "password": typo_password})
    quinn = Api(app).login("quinn.radiologist", USER_PASSWORD)
    token = quinn.post("/api/me/tokens", json={"name": "Quinn's laptop"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert quinn.get(f"/api/projects/{project}", headers=headers).status_code == 200
    assert quinn.put(f"/api/projects/{project}/schema", json=SCHEMA).status_code == 403
    quinn_cookie = quinn.client.cookies.get(SESSION_COOKIE)
    admin_cookie = admin.client.cookies.get(SESSION_COOKIE)
    assert verify(admin)["ok"]
    quinn.post("/api/auth/logout")

    names = ["root-admin", "Site Admin", "quinn.radiologist", "Dr. Quinn Fairweather"]
    names += ["jane.patient-doe", "Quinn's laptop"]
    passwords = [ADMIN_PASSWORD, USER_PASSWORD, typo_password]
    credentials = [token, token[4:], quinn_cookie, admin_cookie, quinn.csrf, admin.csrf]
    assert all(credentials)
    secrets = [*names, *passwords, *credentials]
    rows = all_rows(database)
    assert len(rows) >= 12
    for row in rows:
        flat = " ".join(str(v) for v in row.values()) + json.dumps(row["detail"], default=str)
        leaked = {s for s in secrets if s and s.lower() in flat.lower()}
        assert not leaked, (row["seq"], row["action"], leaked)


# ---- reading and verifying ---------------------------------------------------------------


def test_the_audit_trail_is_for_site_admins_only(app, admin: Api, make_user, project: str) -> None:
    user = make_user("plain.user")
    assert user.get("/api/audit").status_code == 403
    assert user.post("/api/audit/verify").status_code == 403
    assert Api(app).client.get("/api/audit").status_code == 401
    listed = admin.get("/api/audit")
    assert listed.status_code == 200
    seqs = [e["seq"] for e in listed.json()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert "audit.verify" not in {e["action"] for e in listed.json()}
    page = admin.get(f"/api/audit?after_seq={seqs[1]}&limit=2").json()
    assert [e["seq"] for e in page] == seqs[2:4]
    creates = admin.get("/api/audit?action=project.create").json()
    assert [e["action"] for e in creates] == ["project.create"]


def test_project_admins_read_only_their_projects_events(
    admin: Api, make_user, project: str, database: Database
) -> None:
    assert admin.post("/api/projects", json={"slug": "other", "name": "Other"}).status_code == 201
    lead, viewer = make_user("pro.lead"), make_user("vi.ewer")
    add_member(admin, project, "pro.lead", "admin")
    add_member(admin, project, "vi.ewer", "viewer")
    own = lead.get(f"/api/projects/{project}/audit")
    assert own.status_code == 200
    assert own.json() and {e["project_id"] for e in own.json()} == {project_id(database, project)}
    assert lead.get("/api/projects/other/audit").status_code == 404
    assert viewer.get(f"/api/projects/{project}/audit").status_code == 403


def test_verify_reports_ok_and_is_itself_audited(
    admin: Api, project: str, database: Database
) -> None:
    before = len(all_rows(database))
    report = verify(admin)
    assert report["ok"] is True and report["first_broken_seq"] is None
    assert report["checked"] == report["head_seq"] == before
    assert report["head_hash"] == all_rows(database)[before - 1]["row_hash"]
    used = last(database, "audit.verify")
    assert used.actor_user_id == user_id(database, "root-admin")
    assert used.detail == {"ok": True, "checked": before}
    assert verify(admin)["checked"] == before + 1


# ---- append-only and tamper evidence (case 48) -------------------------------------------


def test_the_database_refuses_to_update_or_delete_audit_rows(
    admin: Api, project: str, database: Database
) -> None:
    before = all_rows(database)
    statements = [
        "UPDATE audit_event SET actor_user_id = 999 WHERE seq = 2",
        "UPDATE audit_event SET action = 'nothing.happened'",
        "DELETE FROM audit_event WHERE seq = 2",
        "DELETE FROM audit_event",
    ]
    if database.dialect == "postgresql":
        statements.append("TRUNCATE audit_event")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
            conn.execute(text(statement))
    assert all_rows(database) == before
    assert verify(admin)["ok"]


def test_an_edited_row_is_named_by_verify(admin: Api, project: str, database: Database) -> None:
    target = next(r["seq"] for r in all_rows(database) if r["action"] == "project.create")
    allow_tampering(database)
    with database.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == target).values(actor_user_id=999))
    report = verify(admin)
    assert report["ok"] is False
    assert report["first_broken_seq"] == target
    assert report["checked"] == target - 1
    assert last(database, "audit.verify").detail == {"ok": False, "checked": target - 1}


def test_a_deleted_middle_row_is_detected(admin: Api, project: str, database: Database) -> None:
    rows = all_rows(database)
    target = rows[len(rows) // 2]["seq"]
    assert 1 < target < rows[-1]["seq"]
    allow_tampering(database)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": target})
    report = verify(admin)
    assert report["ok"] is False
    assert report["first_broken_seq"] == target  # the missing record
    assert report["head_seq"] == target - 1
    assert "missing" in report["problem"]


def test_an_anchor_exposes_a_consistently_rehashed_rewrite(
    admin: Api, project: str, database: Database
) -> None:
    with database.read() as s:
        records = audit.list_events(s, limit=1000)
        head_anchor = dict([audit.head(s)])
    target = next(r for r in records if r.entry.action == "project.create")
    allow_tampering(database)
    prev = records[target.seq - 2].row_hash
    with database.engine.begin() as conn:
        for rec in records[target.seq - 1 :]:
            entry = rec.entry
            if rec.seq == target.seq:
                entry = dataclasses.replace(entry, actor_user_id=999)
            new = seal(rec.seq, rec.ts_utc, prev, entry)
            conn.execute(
                update(AuditEvent)
                .where(AuditEvent.seq == rec.seq)
                .values(actor_user_id=entry.actor_user_id, prev_hash=prev, row_hash=new.row_hash)
            )
            prev = new.row_hash
    with database.read() as s:
        assert audit.verify(s).ok  # the chain alone cannot tell
        report = audit.verify(s, head_anchor)
    assert report.ok is False
    assert report.first_broken_seq == records[-1].seq
    assert "anchor" in (report.problem or "")


# ---- fail closed -------------------------------------------------------------------------


def break_audit_inserts(database: Database) -> None:
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION test_audit_down() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit-store-down-7f3'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_event_down BEFORE INSERT ON audit_event "
                    "FOR EACH ROW EXECUTE FUNCTION test_audit_down()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER audit_event_down BEFORE INSERT ON audit_event "
                    "BEGIN SELECT RAISE(ABORT, 'audit-store-down-7f3'); END"
                )
            )


def repair_audit_inserts(database: Database) -> None:
    with database.engine.begin() as conn:
        on = " ON audit_event" if database.dialect == "postgresql" else ""
        conn.execute(text(f"DROP TRIGGER audit_event_down{on}"))


LEAKS = ("audit-store-down", "Traceback", 'File "', "audit_event", "INSERT", "psycopg", "sqlite")


def assert_generic_500(response: Any) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["correlation_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    for leak in LEAKS:
        assert leak not in response.text


def test_a_change_whose_audit_record_fails_does_not_happen(
    app, admin: Api, database: Database
) -> None:
    before = all_rows(database)
    break_audit_inserts(database)
    response = quiet(admin).post("/api/projects", json={"slug": "unaudited", "name": "U"})
    assert_generic_500(response)
    login = quiet(Api(app)).client.post(
        "/api/auth/login", json={"username": "root-admin", "password": ADMIN_PASSWORD}
    )
    assert_generic_500(login)
    assert SESSION_COOKIE not in login.cookies
    with database.read() as s:
        assert s.scalar(select(Project).where(Project.slug == "unaudited")) is None
        assert s.scalar(select(func.count()).select_from(ProjectMember)) == 0
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1  # admin's only
    assert all_rows(database) == before

    repair_audit_inserts(database)
    assert admin.post("/api/projects", json={"slug": "unaudited", "name": "U"}).status_code == 201
    seqs = [r["seq"] for r in all_rows(database)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert verify(admin)["ok"]


# ---- concurrency -------------------------------------------------------------------------


def assert_gap_free_and_valid(database: Database) -> list[dict[str, Any]]:
    rows = all_rows(database)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert len({r["row_hash"] for r in rows}) == len(rows)
    with database.read() as s:
        report = audit.verify(s)
    assert report.ok, report.problem
    assert report.checked == len(rows)
    return rows


def test_concurrent_writers_keep_one_gap_free_chain(admin: Api, database: Database, clock) -> None:
    actor = Actor(
        user_id=user_id(database, "root-admin"), username="root-admin", is_admin=True, via="token"
    )
    before = len(all_rows(database))
    threads, rounds = 8, 6
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait(timeout=60)
        for i in range(rounds):
            with database.write() as s:
                if i % 2:
                    auth.create_token(s, actor, clock, name=f"t{t}-{i}", expires_days=None)
                else:
                    projects.create_project(s, actor, clock, slug=f"c-{t}-{i}", name=f"C{t}{i}")

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, t) for t in range(threads)]:
            future.result()
    rows = assert_gap_free_and_valid(database)
    # Each project writes two events (create, member.add); each token one.
    assert len(rows) == before + threads * (rounds // 2) * 3
    assert sum(r["action"] == "project.create" for r in rows) == threads * rounds // 2


def test_concurrent_api_clients_keep_one_gap_free_chain(
    app, admin: Api, database: Database
) -> None:
    tokens = [
        admin.post("/api/me/tokens", json={"name": f"w{i}"}).json()["token"] for i in range(4)
    ]
    barrier = threading.Barrier(len(tokens))

    def work(i: int) -> list[int]:
        client = Api(app).client
        headers = {"Authorization": f"Bearer {tokens[i]}"}
        barrier.wait(timeout=60)
        return [
            client.post(
                "/api/projects", json={"slug": f"w{i}-{j}", "name": "W"}, headers=headers
            ).status_code
            for j in range(3)
        ]

    with ThreadPoolExecutor(len(tokens)) as pool:
        statuses = [
            s for f in [pool.submit(work, i) for i in range(len(tokens))] for s in f.result()
        ]
    assert statuses == [201] * 12
    rows = assert_gap_free_and_valid(database)
    assert sum(r["action"] == "project.create" for r in rows) == 12
    assert verify(admin)["ok"]
