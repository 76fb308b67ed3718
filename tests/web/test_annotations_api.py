"""Annotation sets over HTTP on a real CT volume: every shape kind, exact read-back,
revisions, optimistic concurrency, diff, restore, blinding and validation
(SECURITY.md cases 28-34, 41)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from medlabel.storage.models import AnnotationRevision, AuditEvent
from tests.conftest import Api, add_member
from tests.web.annotation_support import ct_files, ingest, items_by_kind, set_schema


@pytest.fixture
def ct(admin: Api, project: str, samples: Path) -> dict[str, Any]:
    set_schema(admin, project)
    ingest(admin, project, ct_files(samples))
    return items_by_kind(admin, project)["volume"]


@pytest.fixture
def alice(make_user: Callable[..., Api], admin: Api, project: str) -> Api:
    api = make_user("alice")
    add_member(admin, project, "alice", "annotator")
    return api


def open_set(api: Api, item_id: int) -> dict[str, Any]:
    response = api.post(f"/api/items/{item_id}/annotation-sets")
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def save(api: Api, set_id: int, annotations: list[dict[str, Any]], base: int | None, **kw: Any):
    headers = {"If-Match": f'"v{base}"'} if base is not None else {}
    return api.put(
        f"/api/annotation-sets/{set_id}/annotations",
        json={"annotations": annotations, **kw},
        headers=headers,
    )


EVERY_KIND: list[dict[str, Any]] = [
    {
        "id": "b1",
        "kind": "box",
        "label": "nodule",
        "slice": 5,
        "min": [100.25, 120.5],
        "max": [140.75, 150.0],
        "attributes": {"solid": True, "diameter": 12.5},
    },
    {
        "id": "b3d",
        "kind": "box",
        "label": "tumour",
        "min": [10.0, 10.0, 1.0],
        "max": [30.0, 40.0, 4.0],
        "attributes": {},
    },
    {
        "id": "p1",
        "kind": "polygon",
        "label": "tumour",
        "slice": 3,
        "points": [[200.0, 200.0], [260.0, 200.0], [260.0, 250.0], [200.0, 250.0]],
        "holes": [[[210.0, 210.0], [220.0, 210.0], [220.0, 220.0], [210.0, 220.0]]],
        "attributes": {},
    },
    {
        "id": "l1",
        "kind": "polyline",
        "label": "vessel",
        "slice": 7,
        "points": [[10.0, 10.0], [13.0, 14.0], [13.0, 24.0]],
        "attributes": {},
    },
    {
        "id": "c1",
        "kind": "point",
        "label": "carina",
        "point": [256.0, 230.5, 6.0],
        "attributes": {},
    },
    {
        "id": "q1",
        "kind": "classification",
        "label": "quality",
        "scope": "item",
        "attributes": {"grade": "good"},
    },
]


def test_every_kind_is_saved_and_read_back_exactly(
    alice: Api, ct: dict[str, Any], project: str
) -> None:
    # The item names its project (the viewer loads the project's label schema from it).
    assert ct["project"] == project
    assert alice.get(f"/api/items/{ct['id']}").json()["project"] == project
    aset = open_set(alice, ct["id"])
    assert aset["revision"] == 0 and aset["owner"]["username"] == "alice"
    response = save(alice, aset["id"], EVERY_KIND, 0, duration_s=42.5)
    assert response.status_code == 201, response.text
    assert response.headers["etag"] == '"v1"'
    assert response.json()["summary"]["added"] == sorted(a["id"] for a in EVERY_KIND)

    got = alice.get(f"/api/annotation-sets/{aset['id']}")
    assert got.status_code == 200 and got.headers["etag"] == '"v1"'
    body = got.json()
    by_id = {a["id"]: a for a in body["annotations"]}
    for sent in EVERY_KIND:
        stored = by_id[sent["id"]]
        for key, value in sent.items():
            assert stored[key] == value, (sent["id"], key)
    assert body["duration_s"] == 42.5 and body["author"]["username"] == "alice"

    # Measurements in physical units from the item's geometry (0.627 x 0.627 x 5 mm).
    di, dj, dk = ct["geometry"]["spacing_mm"]
    m = body["measurements"]
    assert m["l1"]["length_mm"] == pytest.approx((5 + 10) * di)
    assert m["p1"]["area_mm2"] == pytest.approx((60 * 50 - 10 * 10) * di * dj)
    assert m["b3d"]["volume_ml"] == pytest.approx(20 * 30 * 3 * di * dj * dk / 1000)
    # Same request again: nothing new is stored.
    again = save(alice, aset["id"], EVERY_KIND, 1)
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(alice.get(f"/api/annotation-sets/{aset['id']}/revisions").json()) == 1


def test_a_stale_save_is_refused_and_both_versions_stay(alice: Api, ct: dict[str, Any]) -> None:
    aset = open_set(alice, ct["id"])
    first = save(alice, aset["id"], EVERY_KIND[:1], 0)
    assert first.status_code == 201
    second = save(alice, aset["id"], EVERY_KIND[:2], 1)
    assert second.status_code == 201
    stale = save(alice, aset["id"], EVERY_KIND[:3], 1)
    assert stale.status_code == 409, stale.text
    problem = stale.json()
    assert problem["current_revision"] == 2 and "revision 2" in problem["detail"]
    missing = save(alice, aset["id"], EVERY_KIND, None)
    assert missing.status_code == 428
    history = alice.get(f"/api/annotation-sets/{aset['id']}/revisions").json()
    assert [h["revision"] for h in history] == [1, 2]
    assert [h["summary"]["added"] for h in history] == [["b1"], ["b3d"]]


def test_concurrent_saves_never_lose_a_change(alice: Api, ct: dict[str, Any]) -> None:
    """Eight writers race on the same base revision: exactly one wins each round, the
    others get 409, and every winning document is in the history."""
    aset = open_set(alice, ct["id"])
    winners: list[int] = []
    for round_ in range(3):
        results: list[Any] = [None] * 8
        head = round_

        def attempt(n: int, head: int = head, results: list[Any] = results) -> None:
            doc = [{**EVERY_KIND[0], "id": f"r{head}w{n}"}]
            results[n] = save(alice, aset["id"], doc, head)

        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [201] + [409] * 7, codes
        winners.extend(n for n, r in enumerate(results) if r.status_code == 201)
    history = alice.get(f"/api/annotation-sets/{aset['id']}/revisions").json()
    assert [h["revision"] for h in history] == [1, 2, 3]
    for number, winner in enumerate(winners, start=1):
        rev = alice.get(f"/api/annotation-sets/{aset['id']}?revision={number}").json()
        assert [a["id"] for a in rev["annotations"]] == [f"r{number - 1}w{winner}"]


def test_owner_and_reviewer_saving_at_once_lose_nothing(
    alice: Api, make_user: Callable[..., Api], admin: Api, project: str, ct: dict[str, Any]
) -> None:
    rita = make_user("rita")
    add_member(admin, project, "rita", "reviewer")
    aset = open_set(alice, ct["id"])
    assert save(alice, aset["id"], EVERY_KIND[:1], 0).status_code == 201
    results: dict[str, Any] = {}

    def run(name: str, api: Api, doc: list[dict[str, Any]]) -> None:
        results[name] = save(api, aset["id"], doc, 1)

    threads = [
        threading.Thread(target=run, args=("alice", alice, [EVERY_KIND[0], EVERY_KIND[1]])),
        threading.Thread(target=run, args=("rita", rita, [EVERY_KIND[0], EVERY_KIND[2]])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [201, 409], codes
    loser = next(n for n, r in results.items() if r.status_code == 409)
    winner = next(n for n, r in results.items() if r.status_code == 201)
    # The loser reloads revision 2, merges and saves again: both changes are kept.
    head = alice.get(f"/api/annotation-sets/{aset['id']}").json()
    assert head["revision"] == 2 and head["author"]["username"] == winner
    merged = {a["id"]: a for a in head["annotations"]} | {a["id"]: a for a in EVERY_KIND[:3]}
    again = save(rita if loser == "rita" else alice, aset["id"], list(merged.values()), 2)
    assert again.status_code == 201, again.text
    final = alice.get(f"/api/annotation-sets/{aset['id']}").json()
    assert sorted(a["id"] for a in final["annotations"]) == sorted(["b1", "b3d", "p1"])
    history = alice.get(f"/api/annotation-sets/{aset['id']}/revisions").json()
    assert [h["author"]["username"] for h in history] == ["alice", winner, loser]


def test_diff_and_restore(alice: Api, ct: dict[str, Any]) -> None:
    aset = open_set(alice, ct["id"])
    sid = aset["id"]
    assert save(alice, sid, EVERY_KIND[:3], 0).status_code == 201
    moved = [{**EVERY_KIND[0], "max": [141.0, 150.0]}, EVERY_KIND[2], EVERY_KIND[3]]
    assert save(alice, sid, moved, 1).status_code == 201
    diff = alice.get(f"/api/annotation-sets/{sid}/diff?from=1&to=2").json()
    assert [a["id"] for a in diff["added"]] == ["l1"]
    assert [a["id"] for a in diff["removed"]] == ["b3d"]
    [changed] = diff["changed"]
    assert changed["before"]["max"] == [140.75, 150.0] and changed["after"]["max"] == [141.0, 150.0]

    restored = alice.post(
        f"/api/annotation-sets/{sid}/revisions/1/restore", headers={"If-Match": '"v2"'}
    )
    assert restored.status_code == 201, restored.text
    assert restored.json()["revision"] == 3
    head = alice.get(f"/api/annotation-sets/{sid}").json()
    first = alice.get(f"/api/annotation-sets/{sid}?revision=1").json()
    assert head["annotations"] == first["annotations"] and head["restored_from"] == 1
    history = alice.get(f"/api/annotation-sets/{sid}/revisions").json()
    assert [(h["revision"], h["operation"]) for h in history] == [
        (1, "save"),
        (2, "save"),
        (3, "restore"),
    ]


def test_annotators_are_blind_to_each_other(
    alice: Api, make_user: Callable[..., Api], admin: Api, project: str, ct: dict[str, Any]
) -> None:
    bob = make_user("bob")
    add_member(admin, project, "bob", "annotator")
    rita = make_user("rita")
    add_member(admin, project, "rita", "reviewer")
    outsider = make_user("olga")
    a = open_set(alice, ct["id"])
    b = open_set(bob, ct["id"])
    assert a["id"] != b["id"]
    assert save(alice, a["id"], EVERY_KIND[:1], 0).status_code == 201
    assert bob.get(f"/api/annotation-sets/{a['id']}").status_code == 404
    assert save(bob, a["id"], EVERY_KIND, 1).status_code == 404
    bulk = bob.get(f"/api/items/{ct['id']}/annotations").json()
    assert [s["set"]["id"] for s in bulk["sets"]] == [b["id"]]
    seen = rita.get(f"/api/items/{ct['id']}/annotations").json()
    assert sorted(s["set"]["id"] for s in seen["sets"]) == sorted([a["id"], b["id"]])
    # A reviewer may correct someone else's set; the revision records who did it.
    corrected = save(rita, a["id"], EVERY_KIND[:2], 1)
    assert corrected.status_code == 201, corrected.text
    history = alice.get(f"/api/annotation-sets/{a['id']}/revisions").json()
    assert [h["author"]["username"] for h in history] == ["alice", "rita"]
    assert outsider.get(f"/api/items/{ct['id']}/annotations").status_code == 404
    assert outsider.post(f"/api/items/{ct['id']}/annotation-sets").status_code == 404
    viewer = make_user("vera")
    add_member(admin, project, "vera", "viewer")
    assert viewer.post(f"/api/items/{ct['id']}/annotation-sets").status_code == 403


def test_model_sets_are_for_admins_and_visible_to_annotators(
    alice: Api, admin: Api, ct: dict[str, Any]
) -> None:
    denied = alice.post(
        f"/api/items/{ct['id']}/annotation-sets", json={"model": {"name": "nodnet", "version": "1"}}
    )
    assert denied.status_code == 403
    made = admin.post(
        f"/api/items/{ct['id']}/annotation-sets", json={"model": {"name": "nodnet", "version": "1"}}
    )
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == {"type": "model", "name": "nodnet", "version": "1"}
    assert save(admin, made.json()["id"], EVERY_KIND[:1], 0).status_code == 201
    sets = alice.get(f"/api/items/{ct['id']}/annotations").json()["sets"]
    assert [s["set"]["owner"]["type"] for s in sets] == ["model"]


BAD_SHAPES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown label", {**EVERY_KIND[0], "label": "spleen"}, "spleen"),
    ("kind not allowed", {**EVERY_KIND[3], "label": "carina"}, "polyline"),
    ("slice out of range", {**EVERY_KIND[0], "slice": 12}, "slice"),
    ("outside the image", {**EVERY_KIND[3], "points": [[10.0, 10.0], [600.0, 10.0]]}, "600"),
    (
        "self-intersecting",
        {**EVERY_KIND[2], "points": [[0, 0], [10, 10], [10, 0], [0, 10]], "holes": []},
        "cross",
    ),
    ("two points", {**EVERY_KIND[2], "points": [[0, 0], [10, 10]], "holes": []}, "3"),
    ("string coordinate", {**EVERY_KIND[3], "points": [[1, "2"], [3, 4]]}, "number"),
    ("huge coordinate", {**EVERY_KIND[3], "points": [[1, 1e308], [3, 4]]}, ""),
    ("missing required attribute", {**EVERY_KIND[0], "attributes": {}}, "solid"),
    ("wrong attribute type", {**EVERY_KIND[0], "attributes": {"solid": "yes"}}, "solid"),
    ("unknown attribute", {**EVERY_KIND[4], "attributes": {"x": 1}}, "x"),
]


@pytest.mark.parametrize("name, shape, needle", BAD_SHAPES, ids=[b[0] for b in BAD_SHAPES])
def test_invalid_shapes_are_refused_precisely(
    alice: Api, ct: dict[str, Any], name: str, shape: dict[str, Any], needle: str
) -> None:
    aset = open_set(alice, ct["id"])
    response = save(alice, aset["id"], [shape], 0)
    assert response.status_code == 422, response.text
    assert needle.lower() in response.text.lower()
    assert alice.get(f"/api/annotation-sets/{aset['id']}").json()["revision"] == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(alice: Api, ct: dict[str, Any], token: str) -> None:
    aset = open_set(alice, ct["id"])
    raw = json.dumps({"annotations": [EVERY_KIND[3]]}).replace("13.0, 24.0", f"13.0, {token}")
    response = alice.put(
        f"/api/annotation-sets/{aset['id']}/annotations",
        content=raw.encode(),
        headers={"Content-Type": "application/json", "If-Match": '"v0"'},
    )
    assert response.status_code == 422, response.text


def test_duplicate_ids_and_too_many_vertices(alice: Api, ct: dict[str, Any]) -> None:
    aset = open_set(alice, ct["id"])
    dup = save(alice, aset["id"], [EVERY_KIND[0], EVERY_KIND[0]], 0)
    assert dup.status_code == 422 and "b1" in dup.text
    ring = [[float(i % 500), float((i * 7) % 500)] for i in range(10_001)]
    huge = save(alice, aset["id"], [{**EVERY_KIND[3], "points": ring}], 0)
    assert huge.status_code == 422 and "10" in huge.text


def test_labels_of_another_project_are_unknown_here(
    alice: Api, admin: Api, ct: dict[str, Any]
) -> None:
    other = admin.post("/api/projects", json={"slug": "other", "name": "Other"})
    assert other.status_code == 201
    schema = admin.put(
        "/api/projects/other/schema",
        json={
            "base_version": 0,
            "classes": [{"name": "Spleen", "color": "#00ffff", "kinds": ["box"]}],
        },
    )
    assert schema.status_code == 200
    aset = open_set(alice, ct["id"])
    response = save(alice, aset["id"], [{**EVERY_KIND[0], "label": "spleen", "attributes": {}}], 0)
    assert response.status_code == 422 and "spleen" in response.text


def test_saves_are_audited_and_revisions_cannot_be_updated(
    alice: Api, ct: dict[str, Any], app: Any
) -> None:
    aset = open_set(alice, ct["id"])
    assert save(alice, aset["id"], EVERY_KIND, 0).status_code == 201
    db = app.state.ctx.db
    with db.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action.like("annotation%"))))
        rev = s.scalars(select(AnnotationRevision)).one()
    assert [e.action for e in events] == ["annotation_set.create", "annotation.save"]
    assert events[1].after_hash == rev.content_sha256
    assert "carina" not in json.dumps(events[1].detail)
    with pytest.raises(Exception, match="immutable"), db.write() as s:
        s.execute(text("UPDATE annotation_revision SET comment = 'x'"))


def test_a_quarantined_or_unknown_item_cannot_be_annotated(alice: Api, ct: dict[str, Any]) -> None:
    assert alice.post("/api/items/999999/annotation-sets").status_code == 404
    assert alice.get("/api/annotation-sets/999999").status_code == 404
    assert alice.get("/api/items/0/annotations").status_code == 422
