"""The versioned label schema over HTTP (SECURITY.md case 33, optimistic concurrency)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api, add_member


def cls(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "color": "#FF0000", "kinds": ["box"], **kw}


def attr(name: str, type_: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **kw}


def url(slug: str, rest: str = "") -> str:
    return f"/api/projects/{slug}/schema{rest}"


def save(api: Api, slug: str, classes: list[dict[str, Any]], base: int | None, **kw: Any) -> Any:
    body: dict[str, Any] = {"classes": classes, **kw}
    if base is not None:
        body["base_version"] = base
    return api.put(url(slug), json=body)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def values(body: dict[str, Any]) -> dict[str, int]:
    return {c["key"]: c["value"] for c in body["classes"]}


def assert_invalid(response: Any, admin: Api, slug: str, version: int = 0) -> dict[str, Any]:
    """422 in problem+json form, and the schema did not move."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_input"
    assert admin.get(url(slug)).json()["version"] == version
    return dict(response.json())


def test_before_the_first_save_the_schema_is_version_0(admin: Api, project: str) -> None:
    response = admin.get(url(project))
    assert response.status_code == 200
    assert response.headers["etag"] == '"v0"'
    body = response.json()
    assert (body["version"], body["classes"], body["created_at"]) == (0, [], None)
    assert admin.get(url(project, "/versions")).json() == []
    assert admin.get(url(project, "/versions/1")).status_code == 404


def test_saves_create_immutable_versions(admin: Api, project: str) -> None:
    nodule = cls(
        "Lung nodule",
        hotkey="n",
        description="Solid or part-solid",
        attributes=[attr("Diameter", "number", unit="mm", minimum=0, maximum=300)],
    )
    first = admin.put(
        url(project), json={"base_version": 0, "classes": [nodule], "comment": "initial"}
    )
    body = ok(first)
    assert first.headers["etag"] == '"v1"'
    assert body["version"] == 1 and body["comment"] == "initial"
    [c] = body["classes"]
    assert (c["key"], c["value"], c["color"], c["hotkey"]) == ("lung_nodule", 1, "#ff0000", "n")
    assert c["attributes"] == [
        {
            "key": "diameter",
            "name": "Diameter",
            "type": "number",
            "required": False,
            "unit": "mm",
            "minimum": 0,
            "maximum": 300,
        }
    ]
    second = ok(save(admin, project, [nodule, cls("Mass", kinds=["mask", "box"])], 1))
    assert second["version"] == 2
    assert values(second) == {"lung_nodule": 1, "mass": 2}
    renamed = {**nodule, "key": "lung_nodule", "name": "Pulmonary nodule"}
    third = ok(save(admin, project, [renamed], 2, comment="rename"))
    assert values(third) == {"lung_nodule": 1}
    assert admin.get(url(project)).json() == third

    listing = admin.get(url(project, "/versions")).json()
    assert [(v["version"], v["classes"], v["comment"]) for v in listing] == [
        (1, 1, "initial"),
        (2, 2, ""),
        (3, 1, "rename"),
    ]
    old = admin.get(url(project, "/versions/1"))
    assert old.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert old.json() == body  # unchanged by later edits
    assert [c["name"] for c in admin.get(url(project, "/versions/2")).json()["classes"]] == [
        "Lung nodule",
        "Mass",
    ]
    assert admin.get(url(project, "/versions/4")).status_code == 404
    # Out-of-range numbers are refused before they reach an INTEGER column.
    for absurd in ("99999999999", "-1", "2147483648"):
        assert admin.get(url(project, f"/versions/{absurd}")).status_code == 422, absurd


def test_if_match_and_preconditions(admin: Api, project: str) -> None:
    etag = admin.get(url(project)).headers["etag"]
    first = admin.put(url(project), json={"classes": [cls("Liver")]}, headers={"If-Match": etag})
    assert ok(first)["version"] == 1 and first.headers["etag"] == '"v1"'
    weak = admin.put(
        url(project),
        json={"classes": [cls("Liver"), cls("Spleen")]},
        headers={"If-Match": 'W/"v1"'},
    )
    assert ok(weak)["version"] == 2

    missing = save(admin, project, [cls("Kidney")], None)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition_required"
    stale = admin.put(url(project), json={"classes": [cls("Kidney")]}, headers={"If-Match": '"v1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    for header in ("v2", "*", '"2"', '"v-1"', '"v2", "v3"'):
        response = admin.put(
            url(project), json={"classes": [cls("Kidney")]}, headers={"If-Match": header}
        )
        assert_invalid(response, admin, project, version=2)
    disagree = admin.put(
        url(project),
        json={"base_version": 1, "classes": [cls("Kidney")]},
        headers={"If-Match": '"v2"'},
    )
    assert_invalid(disagree, admin, project, version=2)
    assert [c["key"] for c in admin.get(url(project)).json()["classes"]] == ["liver", "spleen"]


def test_a_stale_base_version_gets_409_and_keeps_the_first_save(
    admin: Api, make_user, project: str
) -> None:
    other = make_user("second-admin")
    add_member(admin, project, "second-admin", "admin")
    ok(save(admin, project, [cls("Liver")], 0))
    ok(save(admin, project, [cls("Liver"), cls("Spleen")], 1))
    lost = save(other, project, [cls("Liver"), cls("Kidney")], 1)
    assert lost.status_code == 409
    body = lost.json()
    assert body["code"] == "conflict" and body["current_version"] == 2
    assert "version 2" in body["detail"]
    again = save(other, project, [cls("Liver")], 0)
    assert again.status_code == 409 and again.json()["current_version"] == 2
    current = admin.get(url(project)).json()
    assert current["version"] == 2 and list(values(current)) == ["liver", "spleen"]
    assert len(admin.get(url(project, "/versions")).json()) == 2
    future = save(other, project, [cls("Liver")], 7)
    assert future.status_code == 409 and future.json()["current_version"] == 2


def test_label_values_are_stable_and_never_reused(admin: Api, project: str) -> None:
    v1 = ok(save(admin, project, [cls("Liver"), cls("Spleen")], 0))
    assert values(v1) == {"liver": 1, "spleen": 2}
    v2 = ok(save(admin, project, [cls("Spleen")], 1))  # liver removed
    assert values(v2) == {"spleen": 2}
    v3 = ok(save(admin, project, [cls("Spleen"), cls("Kidney")], 2))
    assert values(v3) == {"spleen": 2, "kidney": 3}  # not 1: liver's value stays retired
    v4 = ok(save(admin, project, [cls("Spleen"), cls("Kidney"), cls("Liver")], 3))
    assert values(v4) == {"spleen": 2, "kidney": 3, "liver": 1}  # liver gets its value back

    reused = save(admin, project, [cls("Spleen"), cls("Pancreas", value=1)], 4)
    body = assert_invalid(reused, admin, project, version=4)
    assert body["errors"] == [{"field": "classes[1].value", "problem": "value_reused"}]
    assert "'liver'" in body["detail"]
    changed = save(admin, project, [cls("Spleen", value=7)], 4)
    body = assert_invalid(changed, admin, project, version=4)
    assert body["errors"] == [{"field": "classes[0].value", "problem": "value_changed"}]
    # Another key for an old name is a new class; it cannot take the old value either.
    renamed = save(admin, project, [cls("Spleen", key="spleen_v2", value=2)], 4)
    assert_invalid(renamed, admin, project, version=4)
    same = save(admin, project, [cls("Spleen", value=2), cls("Kidney", key="kidney")], 4)
    assert values(ok(same)) == {"spleen": 2, "kidney": 3}
    # Explicit fresh values are respected and never handed out again.
    v6 = ok(save(admin, project, [cls("Gallbladder"), cls("Aorta", value=6)], 5))
    assert values(v6) == {"gallbladder": 7, "aorta": 6}
    v7 = ok(save(admin, project, [cls("Bladder")], 6))
    assert values(v7) == {"bladder": 8}
    dup = save(admin, project, [cls("A", value=20), cls("B", value=20)], 7)
    assert assert_invalid(dup, admin, project, version=7)["errors"][0]["problem"] == "duplicate"
    for bad in (0, 65536, -1):
        assert_invalid(save(admin, project, [cls("C", value=bad)], 7), admin, project, 7)


def test_names_that_look_the_same_collide(admin: Api, project: str) -> None:
    # Case, Cyrillic i, full-width letters, accents, padding and a Greek nu all fold together.
    for second in (
        "LIVER",
        "liver",
        "L\u0456ver",
        "\uff2c\uff49\uff56\uff45\uff52",
        "L\u00edv\u00e9r",
        "  Liver  ",
        "Li\u03bder",
    ):
        response = save(
            admin, project, [cls("Liver", key="liver_a"), cls(second, key="liver_b")], 0
        )
        body = assert_invalid(response, admin, project)
        assert body["errors"] == [{"field": "classes[1].name", "problem": "duplicate"}], second
    body = ok(save(admin, project, [cls("Liver", key="liver_a"), cls("Livers", key="liver_b")], 0))
    assert [c["name"] for c in body["classes"]] == ["Liver", "Livers"]


def test_distinct_names_and_duplicate_keys(admin: Api, project: str) -> None:
    derived = save(admin, project, [cls("Liver"), cls("liver!")], 0)
    assert assert_invalid(derived, admin, project)["errors"] == [
        {"field": "classes[1].key", "problem": "duplicate"}
    ]
    for key in ("Bad Key", "1liver", "x" * 65, "li-ver"):
        assert_invalid(save(admin, project, [cls("Liver", key=key)], 0), admin, project)
    body = ok(save(admin, project, [cls("Liver"), cls("Liver left", hotkey="l")], 0))
    assert values(body) == {"liver": 1, "liver_left": 2}


def test_hotkeys_must_be_distinct_single_lowercase_characters(admin: Api, project: str) -> None:
    clash = save(admin, project, [cls("Liver", hotkey="l"), cls("Lung", hotkey="l")], 0)
    assert assert_invalid(clash, admin, project)["errors"] == [
        {"field": "classes[1].hotkey", "problem": "duplicate"}
    ]
    for hotkey in ("L", "ab", "!", " "):
        assert_invalid(save(admin, project, [cls("Liver", hotkey=hotkey)], 0), admin, project)
    body = ok(
        save(admin, project, [cls("Liver", hotkey="l"), cls("Lung", hotkey="1"), cls("Heart")], 0)
    )
    assert [c["hotkey"] for c in body["classes"]] == ["l", "1", None]


BAD_CHARS = ["\u0000", "\u202e", "\u200b", "\u0007", "\ufeff"]


def _with(char: str, where: str) -> dict[str, Any]:
    enum = attr("Margin", "enum", options=["smooth", "spiculated"])
    concept = {"value": "27925004", "scheme": "SCT", "meaning": "Nodule"}
    if where == "class":
        return cls(f"Liv{char}er")
    if where == "attribute":
        return cls("Liver", attributes=[attr(f"Size{char}", "bool")])
    if where == "option":
        return cls("Liver", attributes=[{**enum, "options": ["smooth", f"spic{char}"]}])
    if where == "description":
        return cls("Liver", description=f"line one\nline{char} two")
    if where == "unit":
        return cls("Liver", attributes=[attr("Size", "number", unit=f"m{char}m")])
    if where == "concept":
        return cls("Liver", segmented_property_type={**concept, "meaning": f"Nod{char}ule"})
    assert where == "default"
    return cls("Liver", attributes=[attr("Note", "text", default=f"a{char}b")])


@pytest.mark.parametrize(
    "where", ["class", "attribute", "option", "description", "unit", "concept", "default"]
)
def test_control_and_invisible_characters_are_refused(admin: Api, project: str, where: str) -> None:
    for char in BAD_CHARS:
        response = save(admin, project, [_with(char, where)], 0)
        body = assert_invalid(response, admin, project)
        assert body["errors"][0]["problem"] == "forbidden_character", char
        assert body["errors"][0]["char"] == f"U+{ord(char):04X}"
    assert ok(save(admin, project, [_with("", where)], 0))["version"] == 1


def test_control_characters_in_the_comment_are_refused(admin: Api, project: str) -> None:
    response = save(admin, project, [cls("Liver")], 0, comment="ok\u0000")
    assert_invalid(response, admin, project)
    assert ok(save(admin, project, [cls("Liver")], 0, comment="two\nlines"))["comment"] == (
        "two\nlines"
    )


def test_markup_in_names_is_stored_as_plain_text(admin: Api, project: str) -> None:
    name = "<script>alert(1)</script>"
    response = save(admin, project, [cls(name, description='"><img src=x onerror=alert(1)>')], 0)
    assert response.headers["content-type"] == "application/json"
    [c] = ok(response)["classes"]
    assert c["name"] == name and c["key"] == "script_alert_1_script"
    assert c["description"] == '"><img src=x onerror=alert(1)>'
    assert admin.get(url(project)).json()["classes"][0]["name"] == name


def test_text_is_nfc_normalised_and_lengths_are_bounded(admin: Api, project: str) -> None:
    body = ok(save(admin, project, [cls("Le\u0301sion")], 0))
    assert body["classes"][0]["name"] == "L\u00e9sion"
    for too_long in ("x" * 129, "x" * 1_000_000):
        response = save(admin, project, [cls(too_long)], 1)
        assert_invalid(response, admin, project, version=1)
    assert ok(save(admin, project, [cls("x" * 128)], 1))["version"] == 2
    assert_invalid(save(admin, project, [cls("   ")], 2), admin, project, version=2)
    many = [cls(f"Class {i}") for i in range(1001)]
    assert_invalid(save(admin, project, many, 2), admin, project, version=2)


def raw_number_attribute(field: str, literal: str) -> bytes:
    """JSON text with a bare number literal (Python's json module would accept NaN)."""
    number = '{"name": "Size", "type": "number", "FIELD": LITERAL}'
    number = number.replace("FIELD", field).replace("LITERAL", literal)
    body = (
        '{"base_version": 0, "classes": [{"name": "Nodule", "color": "#ff0000", '
        '"kinds": ["box"], "attributes": [ATTRIBUTE]}]}'
    )
    return body.replace("ATTRIBUTE", number).encode()


@pytest.mark.parametrize("field", ["minimum", "maximum", "default"])
def test_non_finite_numbers_are_refused(admin: Api, project: str, field: str) -> None:
    headers = {"Content-Type": "application/json"}
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        response = admin.put(
            url(project), content=raw_number_attribute(field, literal), headers=headers
        )
        assert_invalid(response, admin, project)
        assert literal not in json.dumps(response.json()["errors"])  # the value is not echoed
    fine = admin.put(url(project), content=raw_number_attribute(field, "2.5"), headers=headers)
    assert ok(fine)["classes"][0]["attributes"][0][field] == 2.5


INVALID_ATTRIBUTES = [
    attr("Margin", "enum"),
    attr("Margin", "enum", options=[]),
    attr("Margin", "enum", options=["Smooth", "smooth"]),
    attr("Flag", "bool", options=["yes"]),
    attr("Size", "number", minimum=10, maximum=1),
    attr("Flag", "bool", unit="mm"),
    attr("Note", "text", minimum=0),
    attr("Size", "number", default="abc"),
    attr("Size", "number", default=True),
    attr("Size", "number", minimum=0, maximum=5, default=6),
    attr("Margin", "enum", options=["smooth"], default="spiculated"),
    attr("Flag", "bool", default="yes"),
    attr("Note", "text", max_length=3, default="toolong"),
    attr("Note", "text", max_length=0),
    attr("When", "date"),
    attr("Size", "number", key="Bad Key"),
    {"name": "Size", "type": "number", "secret": 1},
]


def test_invalid_attributes_are_refused(admin: Api, project: str) -> None:
    for attribute in INVALID_ATTRIBUTES:
        response = save(admin, project, [cls("Nodule", attributes=[attribute])], 0)
        assert response.status_code == 422, (attribute, response.text)
    assert admin.get(url(project)).json()["version"] == 0


def test_duplicate_attribute_keys_are_refused(admin: Api, project: str) -> None:
    response = save(
        admin,
        project,
        [cls("Nodule", attributes=[attr("Size", "bool"), attr("size", "number")])],
        0,
    )
    body = assert_invalid(response, admin, project)
    assert body["errors"] == [{"field": "classes[0].attributes[1].key", "problem": "duplicate"}]


def test_invalid_class_fields_are_refused(admin: Api, project: str) -> None:
    for change in (
        {"kinds": ["cube"]},
        {"kinds": []},
        {"kinds": ["box", "box"]},
        {"color": "red"},
        {"color": "#ff00000"},
        {"project_id": 1},
        {"value": "one"},
        {"kinds": "box"},
    ):
        response = save(admin, project, [{**cls("Nodule"), **change}], 0)
        assert response.status_code == 422, (change, response.text)
    assert admin.get(url(project)).json()["version"] == 0


def test_valid_attributes_and_coded_concepts_round_trip(admin: Api, project: str) -> None:
    category = {
        "value": "49755003",
        "scheme": "SCT",
        "meaning": "Morphologically Altered Structure",
    }
    kind = {"value": "27925004", "scheme": "SCT", "meaning": "Nodule"}
    attributes = [
        attr(
            "Margin",
            "enum",
            options=["smooth", "lobulated", "spiculated"],
            default="smooth",
            required=True,
        ),
        attr("Calcified", "bool", default=False),
        attr("Diameter", "number", unit="mm", minimum=0.5, maximum=300, default=4.5),
        attr("Comment", "text", max_length=500),
    ]
    sent = cls(
        "Nodule",
        kinds=["box", "point", "mask"],
        attributes=attributes,
        segmented_property_category=category,
        segmented_property_type=kind,
    )
    body = ok(save(admin, project, [sent], 0))
    [c] = body["classes"]
    assert c["segmented_property_category"] == category
    assert c["segmented_property_type"] == kind
    assert c["kinds"] == ["box", "point", "mask"]
    assert c["attributes"] == [
        {
            "key": "margin",
            "name": "Margin",
            "type": "enum",
            "required": True,
            "options": ["smooth", "lobulated", "spiculated"],
            "default": "smooth",
        },
        {
            "key": "calcified",
            "name": "Calcified",
            "type": "bool",
            "required": False,
            "default": False,
        },
        {
            "key": "diameter",
            "name": "Diameter",
            "type": "number",
            "required": False,
            "unit": "mm",
            "minimum": 0.5,
            "maximum": 300,
            "default": 4.5,
        },
        {"key": "comment", "name": "Comment", "type": "text", "required": False, "max_length": 500},
    ]
    # The stored version reads back identically, and re-saving it unchanged is accepted.
    assert admin.get(url(project, "/versions/1")).json()["classes"] == [c]
    again = ok(save(admin, project, body["classes"], 1))
    assert again["classes"] == body["classes"]
    bad_concept = save(
        admin, project, [cls("Nodule", segmented_property_type={"value": "1", "scheme": "SCT"})], 2
    )
    assert_invalid(bad_concept, admin, project, version=2)


def test_schema_versions_are_audited(admin: Api, project: str) -> None:
    ok(save(admin, project, [cls("Liver"), cls("Spleen")], 0))
    ok(save(admin, project, [cls("Liver", color="#00ff00"), cls("Kidney")], 1))
    assert save(admin, project, [cls("Liver", value=9)], 2).status_code == 422
    events = admin.get(
        f"/api/projects/{project}/audit", params={"action": "schema.version.create"}
    ).json()
    assert [e["object_id"].split(":")[1] for e in events] == ["v1", "v2"]
    assert events[0]["detail"] == {
        "version": 1,
        "added": ["liver", "spleen"],
        "removed": [],
        "changed": [],
    }
    assert events[1]["detail"] == {
        "version": 2,
        "added": ["kidney"],
        "removed": ["spleen"],
        "changed": ["liver"],
    }
    assert {e["actor_role"] for e in events} == {"admin"}
    assert {e["outcome"] for e in events} == {0}
