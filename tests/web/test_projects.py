"""Projects, membership and project-scoped authorization (SECURITY.md cases 35-37)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from medlabel.storage.models import Project, ProjectMember, User
from tests.conftest import Api, add_member

ONE_CLASS = {"classes": [{"name": "Nodule", "color": "#ff0000", "kinds": ["box"]}]}


def strip(response: Any) -> dict[str, Any]:
    return {k: v for k, v in response.json().items() if k != "correlation_id"}


def png_bytes(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(out, "PNG")
    return out.getvalue()


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["name"] for p in response.json()["items"]]


def create(admin: Api, slug: str, name: str) -> None:
    response = admin.post("/api/projects", json={"slug": slug, "name": name})
    assert response.status_code == 201, response.text


def project_count(database: Any) -> int:
    with database.read() as s:
        return int(s.scalar(select(func.count()).select_from(Project)) or 0)


# ---- creation and listing ---------------------------------------------------------------


def test_site_admin_creates_a_project_and_becomes_its_admin(admin: Api) -> None:
    response = admin.post(
        "/api/projects", json={"slug": "liver-mr", "name": " Liver MR ", "description": "T1"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "liver-mr"
    assert body["name"] == "Liver MR"  # stripped
    assert body["my_role"] == "admin"
    assert body["schema_version"] == 0 and body["guideline_version"] == 0
    members = admin.get("/api/projects/liver-mr/members").json()
    assert [(m["username"], m["role"]) for m in members] == [("root-admin", "admin")]
    duplicate = admin.post("/api/projects", json={"slug": "liver-mr", "name": "Again"})
    assert duplicate.status_code == 409


def test_project_text_is_cleaned(admin: Api, project: str) -> None:
    for bad in ("Chest\u0000CT", "Chest\u202eTC", "Ch\u200best", "", "x" * 129):
        assert admin.post("/api/projects", json={"slug": "p2", "name": bad}).status_code == 422
        assert admin.patch(f"/api/projects/{project}", json={"name": bad}).status_code == 422
    response = admin.patch(f"/api/projects/{project}", json={"description": "a\u0000b"})
    assert response.status_code == 422
    assert admin.get("/api/projects").json()["total"] == 1
    renamed = admin.patch(f"/api/projects/{project}", json={"name": "<b>CT</b>"}).json()
    assert renamed["name"] == "<b>CT</b>"  # plain text; encoding is the UI's job


@pytest.mark.parametrize("slug", ["Upper", "-lead", "trail-", "a_b", "a" * 65, "sp ace"])
def test_bad_slugs_are_refused(admin: Api, slug: str) -> None:
    response = admin.post("/api/projects", json={"slug": slug, "name": "x"})
    assert response.status_code == 422
    assert admin.get("/api/projects").json()["total"] == 0


def test_non_admins_cannot_create_projects(make_user, admin: Api, database) -> None:
    alice = make_user("alice")
    response = alice.post("/api/projects", json={"slug": "mine", "name": "Mine"})
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert project_count(database) == 0
    assert admin.get("/api/projects/mine").status_code == 404


def test_listing_shows_only_your_projects_with_your_role(admin: Api, make_user) -> None:
    create(admin, "alpha", "Alpha")
    create(admin, "beta", "Beta")
    create(admin, "gamma", "Gamma")
    alice = make_user("alice")
    add_member(admin, "alpha", "alice", "reviewer")
    add_member(admin, "gamma", "alice", "viewer")
    page = alice.get("/api/projects").json()
    assert page["total"] == 2
    assert [(p["slug"], p["my_role"]) for p in page["items"]] == [
        ("alpha", "reviewer"),
        ("gamma", "viewer"),
    ]
    assert alice.get("/api/projects/alpha").json()["my_role"] == "reviewer"
    # A second site admin who is no member sees every project, acting as admin.
    other_admin = make_user("site-admin-2", is_admin=True)
    page = other_admin.get("/api/projects").json()
    assert page["total"] == 3
    assert {p["my_role"] for p in page["items"]} == {"admin"}
    # A user without memberships sees nothing.
    page = make_user("bob").get("/api/projects").json()
    assert (page["items"], page["total"]) == ([], 0)


def test_project_page_reports_schema_and_guideline_versions(admin: Api, project: str) -> None:
    base = f"/api/projects/{project}"
    assert admin.put(f"{base}/schema", json={"base_version": 0, **ONE_CLASS}).status_code == 200
    for version, text in enumerate(("a", "b")):
        response = admin.put(f"{base}/guidelines", json={"base_version": version, "markdown": text})
        assert response.status_code == 200
    body = admin.get(f"/api/projects/{project}").json()
    assert (body["schema_version"], body["guideline_version"]) == (1, 2)


def test_pagination_and_sorting(admin: Api, make_user, clock) -> None:
    for slug, name in zip("eacdb", ("Echo", "Delta", "Alpha", "Bravo", "Charlie"), strict=True):
        create(admin, f"{slug}-p", name)
        clock.advance(minutes=1)
    everything = ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]
    assert names(admin.get("/api/projects")) == everything
    seen = []
    for offset in (0, 2, 4):
        page = admin.get("/api/projects", params={"limit": 2, "offset": offset}).json()
        assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == offset
        seen += [p["name"] for p in page["items"]]
    assert seen == everything
    beyond = admin.get("/api/projects", params={"offset": 10}).json()
    assert beyond["items"] == [] and beyond["total"] == 5
    assert names(admin.get("/api/projects", params={"sort": "-name"})) == everything[::-1]
    by_slug = ["Delta", "Charlie", "Alpha", "Bravo", "Echo"]
    assert names(admin.get("/api/projects", params={"sort": "slug"})) == by_slug
    by_time = ["Echo", "Delta", "Alpha", "Bravo", "Charlie"]
    assert names(admin.get("/api/projects", params={"sort": "created_at"})) == by_time
    newest = admin.get("/api/projects", params={"sort": "-created_at", "limit": 1})
    assert names(newest) == ["Charlie"]
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}):
        assert admin.get("/api/projects", params=bad).status_code == 422, bad
    # total counts only what the caller can see.
    alice = make_user("alice")
    add_member(admin, "a-p", "alice", "annotator")
    add_member(admin, "e-p", "alice", "annotator")
    page = alice.get("/api/projects", params={"limit": 1}).json()
    assert page["total"] == 2 and [p["name"] for p in page["items"]] == ["Delta"]


# ---- SQL injection in sort and q ----------------------------------------------------------


@pytest.mark.parametrize(
    "sort", ["name;DROP TABLE project", "name desc", "id", "password_hash", "(SELECT 1)", ""]
)
def test_sort_is_allowlisted(admin: Api, project: str, database, sort: str) -> None:
    response = admin.get("/api/projects", params={"sort": sort})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "sort"
    assert project_count(database) == 1
    assert names(admin.get("/api/projects")) == ["Chest CT"]


def test_search_escapes_like_wildcards_and_quotes(admin: Api, make_user, database) -> None:
    create(admin, "chest-ct", "Chest CT")
    create(admin, "coverage", "100% coverage")
    create(admin, "snake", "under_score")
    create(admin, "slash", "back\\slash")
    create(admin, "quote", "O'Brien study")

    def search(q: str) -> list[str]:
        return sorted(names(admin.get("/api/projects", params={"q": q})))

    assert search("%") == ["100% coverage"]
    assert search("_") == ["under_score"]
    assert search("\\") == ["back\\slash"]
    assert search("' OR 1=1--") == []
    assert search("' OR '1'='1") == []
    assert search("'; DROP TABLE project; --") == []
    assert search("o'b") == ["O'Brien study"]
    assert search("CHEST") == ["Chest CT"]  # case-insensitive
    assert search("snak") == ["under_score"]  # slugs match too
    assert search("0% c") == ["100% coverage"]
    assert search("r_s") == ["under_score"]
    assert search("x") == []
    assert admin.get("/api/projects", params={"q": "x" * 129}).status_code == 422
    assert project_count(database) == 5
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1
    # A member only ever finds their own projects, whatever the pattern.
    alice = make_user("alice")
    add_member(admin, "snake", "alice", "viewer")
    for q in ("%", "' OR 1=1--", "_", "e"):
        found = names(alice.get("/api/projects", params={"q": q}))
        assert set(found) <= {"under_score"}, q


def test_control_characters_in_search_and_paths_do_not_crash(admin: Api, project: str) -> None:
    # PostgreSQL refuses NUL in text parameters; that must never become a 500. A NUL anywhere
    # in the URL is refused before any handler runs; other invisible characters are a 422.
    response = admin.get("/api/projects", params={"q": "che\x00st"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    for q in ("\u202etc", "a\u200bb"):
        response = admin.get("/api/projects", params={"q": q})
        assert response.status_code == 422, q
        assert response.json()["errors"][0]["problem"] == "forbidden_character"
    for method, path, kwargs in [
        ("GET", "/api/projects/chest%00ct", {}),
        ("GET", "/api/projects/%00/schema", {}),
        ("PUT", f"/api/projects/{project}/members/root%00admin", {"json": {"role": "viewer"}}),
        ("DELETE", f"/api/projects/{project}/members/%00", {}),
    ]:
        assert admin.request(method, path, **kwargs).status_code == 400, path
    huge = admin.get(f"/api/projects/{project}/audit", params={"after_seq": 10**20})
    assert huge.status_code == 422


def test_nul_inside_json_bodies_is_refused(admin: Api, project: str) -> None:
    response = admin.patch(f"/api/projects/{project}", json={"description": "a\x00b"})
    assert response.status_code == 422
    login = admin.client.post(
        "/api/auth/login", json={"username": "root\x00admin", "password": "x"}
    )
    assert login.status_code == 422
    assert admin.get(f"/api/projects/{project}").json()["description"] == ""


# ---- cross-project IDOR ---------------------------------------------------------------------


def probes(slug: str, sha: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/api/projects/{slug}"
    guideline = {"base_version": 1, "markdown": "# pwned"}
    return [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"name": "Hijacked"}}),
        ("GET", f"{base}/members", {}),
        ("PUT", f"{base}/members/mallory", {"json": {"role": "admin"}}),
        ("DELETE", f"{base}/members/root-admin", {}),
        ("GET", f"{base}/schema", {}),
        ("PUT", f"{base}/schema", {"json": {"base_version": 1, **ONE_CLASS}}),
        ("GET", f"{base}/schema/versions", {}),
        ("GET", f"{base}/schema/versions/1", {}),
        ("GET", f"{base}/guidelines", {}),
        ("PUT", f"{base}/guidelines", {"json": guideline}),
        ("GET", f"{base}/guidelines/versions", {}),
        ("GET", f"{base}/guidelines/versions/1", {}),
        ("GET", f"{base}/guidelines/assets/{sha}", {}),
        (
            "POST",
            f"{base}/guidelines/assets",
            {"content": png_bytes("blue"), "headers": {"Content-Type": "image/png"}},
        ),
        ("GET", f"{base}/audit", {}),
    ]


def test_non_members_get_the_same_404_as_for_a_missing_project(admin: Api, make_user) -> None:
    mallory = make_user("mallory")
    create(admin, "own-project", "Mallory's")
    add_member(admin, "own-project", "mallory", "admin")
    sha = "ab" * 32
    before = {(m, p): mallory.request(m, p, **kw) for m, p, kw in probes("secret-ct", sha)}

    create(admin, "secret-ct", "Secret")
    base = "/api/projects/secret-ct"
    assert admin.put(f"{base}/schema", json={"base_version": 0, **ONE_CLASS}).status_code == 200
    uploaded = admin.post(
        f"{base}/guidelines/assets", content=png_bytes(), headers={"Content-Type": "image/png"}
    )
    assert uploaded.status_code == 201
    sha = uploaded.json()["sha256"]
    assert (
        admin.put(f"{base}/guidelines", json={"base_version": 0, "markdown": "x"}).status_code
        == 200
    )
    for method, path, kw in probes("secret-ct", sha):
        response = mallory.request(method, path, **kw)
        key = (method, path.replace(sha, "ab" * 32))
        assert response.status_code == 404, (method, path, response.text)
        assert before[key].status_code == 404
        assert strip(response) == strip(before[key]), (method, path)
        assert response.headers["content-type"] == "application/problem+json"

    # Nothing changed, and the attempts were audited as denied.
    project = admin.get(base).json()
    assert (project["name"], project["schema_version"], project["guideline_version"]) == (
        "Secret",
        1,
        1,
    )
    assert [m["username"] for m in admin.get(f"{base}/members").json()] == ["root-admin"]
    denied = admin.get("/api/audit", params={"action": "access.denied", "limit": 1000}).json()
    on_secret = [e for e in denied if e["object_id"] == "secret-ct"]
    assert len(on_secret) >= 2 * len(probes("secret-ct", sha))
    assert {e["detail"]["status"] for e in on_secret} == {404}


def test_members_of_another_project_cannot_reach_it_via_their_own(admin: Api, make_user) -> None:
    create(admin, "proj-a", "A")
    create(admin, "proj-b", "B")
    bob = make_user("bob")
    add_member(admin, "proj-b", "bob", "admin")
    make_user("eve")
    assert bob.get("/api/projects/proj-a").status_code == 404
    # Being admin of B gives no rights in A.
    assert bob.put("/api/projects/proj-a/members/bob", json={"role": "admin"}).status_code == 404
    assert bob.put("/api/projects/proj-a/members/eve", json={"role": "viewer"}).status_code == 404
    assert bob.put("/api/projects/proj-b/members/eve", json={"role": "viewer"}).status_code == 200
    assert [m["username"] for m in admin.get("/api/projects/proj-a/members").json()] == [
        "root-admin"
    ]
    assert [p["slug"] for p in bob.get("/api/projects").json()["items"]] == ["proj-b"]


# ---- roles ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "annotator", "reviewer", "expert"])
def test_non_admin_roles_cannot_manage_the_project(
    admin: Api, make_user, project: str, role: str
) -> None:
    make_user("carol")
    add_member(admin, project, "carol", "viewer")
    member = make_user("dave")
    add_member(admin, project, "dave", role)
    base = f"/api/projects/{project}"
    for path in (
        base,
        f"{base}/members",
        f"{base}/schema",
        f"{base}/schema/versions",
        f"{base}/guidelines",
        f"{base}/guidelines/versions",
    ):
        assert member.get(path).status_code == 200, path
    attempts = [
        member.patch(base, json={"name": "Renamed"}),
        member.put(f"{base}/members/carol", json={"role": "admin"}),
        member.put(f"{base}/members/dave", json={"role": "admin"}),
        member.delete(f"{base}/members/carol"),
        member.put(f"{base}/schema", json={"base_version": 0, **ONE_CLASS}),
        member.put(f"{base}/guidelines", json={"base_version": 0, "markdown": "x"}),
        member.post(
            f"{base}/guidelines/assets", content=png_bytes(), headers={"Content-Type": "image/png"}
        ),
        member.get(f"{base}/audit"),
    ]
    for response in attempts:
        assert response.status_code == 403, response.request.url
        assert response.json()["code"] == "forbidden"
        assert role in response.json()["detail"]
    body = admin.get(base).json()
    assert (body["name"], body["schema_version"], body["guideline_version"]) == ("Chest CT", 0, 0)
    roles = {m["username"]: m["role"] for m in admin.get(f"{base}/members").json()}
    assert roles == {"root-admin": "admin", "carol": "viewer", "dave": role}


def test_a_project_admin_who_is_not_site_admin_manages_the_project(
    admin: Api, make_user, project: str
) -> None:
    pam = make_user("pam")
    add_member(admin, project, "pam", "admin")
    make_user("erin")
    base = f"/api/projects/{project}"
    assert pam.patch(base, json={"name": "Chest CT 2", "description": "d"}).status_code == 200
    assert pam.put(f"{base}/members/erin", json={"role": "annotator"}).status_code == 200
    assert pam.put(f"{base}/schema", json={"base_version": 0, **ONE_CLASS}).status_code == 200
    assert (
        pam.put(f"{base}/guidelines", json={"base_version": 0, "markdown": "x"}).status_code == 200
    )
    assert (
        pam.post(
            f"{base}/guidelines/assets", content=png_bytes(), headers={"Content-Type": "image/png"}
        ).status_code
        == 201
    )
    events = pam.get(f"{base}/audit").json()
    assert "project.update" in {e["action"] for e in events}
    update = next(e for e in events if e["action"] == "project.update")
    assert update["actor_role"] == "admin"
    assert update["detail"] == {"fields": ["name", "description"]}
    assert pam.delete(f"{base}/members/erin").status_code == 204
    # A project admin is not a site admin.
    assert pam.post("/api/projects", json={"slug": "x", "name": "x"}).status_code == 403


# ---- membership -----------------------------------------------------------------------------


def test_add_change_and_remove_members(admin: Api, make_user, project: str) -> None:
    alice = make_user("alice")
    base = f"/api/projects/{project}"
    assert alice.get(base).status_code == 404
    added = admin.put(f"{base}/members/alice", json={"role": "annotator"})
    assert added.status_code == 200
    assert added.json()["role"] == "annotator" and added.json()["username"] == "alice"
    assert alice.get(base).json()["my_role"] == "annotator"
    changed = admin.put(f"{base}/members/ALICE", json={"role": "reviewer"})
    assert changed.json()["role"] == "reviewer"
    assert changed.json()["added_at"] == added.json()["added_at"]
    assert alice.get(base).json()["my_role"] == "reviewer"
    assert admin.put(f"{base}/members/alice", json={"role": "reviewer"}).status_code == 200
    assert admin.delete(f"{base}/members/alice").status_code == 204
    assert alice.get(base).status_code == 404
    assert admin.delete(f"{base}/members/alice").status_code == 422  # no longer a member
    assert admin.put(f"{base}/members/nobody", json={"role": "viewer"}).status_code == 404
    assert admin.put(f"{base}/members/alice", json={"role": "owner"}).status_code == 422
    actions = [
        e["action"]
        for e in admin.get(f"{base}/audit").json()
        if e["action"].startswith("project.member.")
    ]
    # root-admin's own add, alice add, one role change (the no-op is not audited), remove.
    assert actions == [
        "project.member.add",
        "project.member.add",
        "project.member.role_change",
        "project.member.remove",
    ]


def test_deactivated_users_cannot_be_added(admin: Api, make_user, project: str) -> None:
    make_user("gone")
    assert admin.patch("/api/users/gone", json={"is_active": False}).status_code == 200
    response = admin.put(f"/api/projects/{project}/members/gone", json={"role": "viewer"})
    assert response.status_code == 422
    assert [m["username"] for m in admin.get(f"/api/projects/{project}/members").json()] == [
        "root-admin"
    ]


def test_the_last_admin_cannot_be_demoted_or_removed(admin: Api, make_user, project: str) -> None:
    base = f"/api/projects/{project}"
    demote = admin.put(f"{base}/members/root-admin", json={"role": "annotator"})
    assert demote.status_code == 409
    assert "last admin" in demote.json()["detail"]
    assert admin.delete(f"{base}/members/root-admin").status_code == 409
    assert admin.get(f"{base}/members").json()[0]["role"] == "admin"
    alice = make_user("alice")
    add_member(admin, project, "alice", "admin")
    assert admin.put(f"{base}/members/root-admin", json={"role": "viewer"}).status_code == 200
    # alice is now the only admin; she cannot step down or remove herself...
    assert alice.put(f"{base}/members/alice", json={"role": "expert"}).status_code == 409
    assert alice.delete(f"{base}/members/alice").status_code == 409
    # ...but once there is another admin she can.
    assert alice.put(f"{base}/members/root-admin", json={"role": "admin"}).status_code == 200
    assert alice.delete(f"{base}/members/alice").status_code == 204
    assert {m["username"]: m["role"] for m in admin.get(f"{base}/members").json()} == {
        "root-admin": "admin"
    }


# ---- mass assignment ----------------------------------------------------------------------


def test_extra_fields_are_refused_and_change_nothing(
    admin: Api, make_user, project: str, database
) -> None:
    base = f"/api/projects/{project}"
    alice = make_user("alice")
    create_body = {"slug": "sneaky", "name": "Sneaky"}
    for extra in ({"created_by": 99}, {"id": 1}, {"my_role": "viewer"}):
        assert admin.post("/api/projects", json={**create_body, **extra}).status_code == 422
    assert admin.get("/api/projects/sneaky").status_code == 404
    for extra in (
        {"slug": "renamed"},
        {"project_id": 2},
        {"created_by": 2},
        {"created_at": "2020-01-01T00:00:00"},
    ):
        response = admin.patch(base, json={"name": "Changed", **extra})
        assert response.status_code == 422, extra
        field = response.json()["errors"][0]["field"]
        assert field == next(iter(extra)), response.json()
    assert admin.get(base).json()["name"] == "Chest CT"
    for extra in ({"is_admin": True}, {"project_id": 1}, {"username": "root-admin"}):
        assert (
            admin.put(f"{base}/members/alice", json={"role": "annotator", **extra}).status_code
            == 422
        )
    assert alice.get(base).status_code == 404
    assert alice.get("/api/me").json()["is_admin"] is False
    schema = {"base_version": 0, "project_id": 2, **ONE_CLASS}
    assert admin.put(f"{base}/schema", json=schema).status_code == 422
    assert admin.get(f"{base}/schema").json()["version"] == 0
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(ProjectMember)) == 1


def test_an_annotator_cannot_raise_their_own_role(admin: Api, make_user, project: str) -> None:
    base = f"/api/projects/{project}"
    anna = make_user("anna")
    add_member(admin, project, "anna", "annotator")
    make_user("zed")
    assert anna.put(f"{base}/members/anna", json={"role": "admin"}).status_code == 403
    assert anna.put(f"{base}/members/zed", json={"role": "admin"}).status_code == 403
    assert anna.patch(base, json={"name": "Mine now"}).status_code == 403
    assert anna.patch(f"{base}/members/anna", json={"role": "admin"}).status_code == 405
    assert anna.patch("/api/users/anna", json={"is_admin": True}).status_code == 403
    assert anna.get(base).json()["my_role"] == "annotator"
    assert {m["username"]: m["role"] for m in admin.get(f"{base}/members").json()} == {
        "anna": "annotator",
        "root-admin": "admin",
    }
    assert anna.get("/api/me").json()["is_admin"] is False
