"""The pure label-schema domain: validation, evolution across versions, serialisation."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medlabel.domain.errors import InvalidInput
from medlabel.domain.labels import (
    MAX_LABEL_VALUE,
    AnnotationKind,
    AttributeSpec,
    AttributeType,
    CodedConcept,
    LabelClass,
    LabelSchema,
    check_evolution,
    next_free_value,
    schema_from_dict,
)

BOX = (AnnotationKind.BOX,)


def label(key: str, value: int, name: str | None = None, **kw: Any) -> LabelClass:
    return LabelClass(
        key=key,
        name=name or key.title(),
        value=value,
        color=kw.pop("color", "#112233"),
        kinds=kw.pop("kinds", BOX),
        **kw,
    )


def schema(*classes: LabelClass) -> LabelSchema:
    return LabelSchema(classes=classes)


def refused(s: LabelSchema) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        s.validate()
    return exc.value


def number(**kw: Any) -> AttributeSpec:
    return AttributeSpec(key="size", name="Size", type=AttributeType.NUMBER, **kw)


ENUM = AttributeSpec(
    key="margin", name="Margin", type=AttributeType.ENUM, options=("smooth", "spiculated")
)


# ---- validate ---------------------------------------------------------------------------------


def test_a_valid_schema_validates_to_itself() -> None:
    s = schema(
        label("liver", 1, hotkey="l"),
        label("spleen", 2, hotkey="s", attributes=(ENUM, number(unit="mm"))),
    )
    assert s.validate() is s
    assert s.by_key("spleen") is s.classes[1] and s.by_key("kidney") is None
    assert s.classes[1].attribute("margin") is ENUM and s.classes[0].attribute("x") is None
    assert LabelSchema().validate().classes == ()


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (label("liver", 2, name="Other"), "classes[1].key"),
        (label("liver_b", 2, name="L\u0456VER"), "classes[1].name"),
        (label("liver_b", 1, name="Other"), "classes[1].value"),
        (label("liver_b", 2, name="Other", hotkey="l"), "classes[1].hotkey"),
    ],
)
def test_duplicates_are_refused(second: LabelClass, field: str) -> None:
    error = refused(schema(label("liver", 1, name="Liver", hotkey="l"), second))
    assert error.errors == [{"field": field, "problem": "duplicate"}]


def test_classes_without_hotkeys_do_not_clash() -> None:
    assert schema(label("a", 1), label("b", 2), label("c", 3)).validate()


@pytest.mark.parametrize(
    "bad",
    [
        {"key": "Liver"},
        {"key": "1liver"},
        {"key": "x" * 65},
        {"key": ""},
        {"value": 0},
        {"value": MAX_LABEL_VALUE + 1},
        {"value": -3},
        {"color": "red"},
        {"color": "#12345"},
        {"color": "#1234567"},
        {"hotkey": "L"},
        {"hotkey": "ab"},
        {"hotkey": "!"},
        {"kinds": ()},
        {"kinds": (AnnotationKind.BOX, AnnotationKind.BOX)},
        {
            "attributes": tuple(
                AttributeSpec(key=f"a{i}", name=f"A{i}", type=AttributeType.BOOL) for i in range(65)
            )
        },
        {"attributes": (ENUM, dataclasses.replace(ENUM, name="Other"))},
    ],
)
def test_invalid_classes_are_refused(bad: dict[str, Any]) -> None:
    cls = dataclasses.replace(label("liver", 1), **bad)
    refused(schema(cls))


def test_limits_are_inclusive() -> None:
    assert schema(label("a", MAX_LABEL_VALUE), label("b" * 64, 1)).validate()
    attrs = tuple(
        AttributeSpec(key=f"a{i}", name=f"A{i}", type=AttributeType.BOOL) for i in range(64)
    )
    assert schema(label("a", 1, attributes=attrs)).validate()
    many = [label(f"c{i}", i + 1, name=f"Class {i}") for i in range(1001)]
    assert "at most 1000" in refused(schema(*many)).detail
    assert LabelSchema(classes=tuple(many[:1000])).validate()


@pytest.mark.parametrize(
    "attribute",
    [
        dataclasses.replace(ENUM, options=()),
        dataclasses.replace(ENUM, options=tuple(f"o{i}" for i in range(257))),
        dataclasses.replace(ENUM, options=("Smooth", "SMOOTH")),
        AttributeSpec(key="flag", name="Flag", type=AttributeType.BOOL, options=("yes",)),
        number(minimum=math.nan),
        number(maximum=math.inf),
        number(minimum=-math.inf),
        number(minimum=5, maximum=1),
        AttributeSpec(key="flag", name="Flag", type=AttributeType.BOOL, unit="mm"),
        AttributeSpec(key="note", name="Note", type=AttributeType.TEXT, minimum=0),
        number(default="abc"),
        number(default=math.nan),
        number(minimum=0, default=-1),
        dataclasses.replace(ENUM, default="rough"),
        AttributeSpec(key="flag", name="Flag", type=AttributeType.BOOL, default=1),
        AttributeSpec(
            key="note", name="Note", type=AttributeType.TEXT, max_length=2, default="abc"
        ),
        dataclasses.replace(ENUM, key="Margin"),
    ],
)
def test_invalid_attributes_are_refused(attribute: AttributeSpec) -> None:
    refused(schema(label("nodule", 1, attributes=(attribute,))))


def test_valid_attribute_edge_cases() -> None:
    attrs = (
        number(minimum=1, maximum=1, default=1),
        dataclasses.replace(
            ENUM, key="m", options=tuple(f"o{i}" for i in range(256)), default="o255"
        ),
        AttributeSpec(key="flag", name="Flag", type=AttributeType.BOOL, default=False),
        AttributeSpec(
            key="note", name="Note", type=AttributeType.TEXT, max_length=3, default="abc"
        ),
    )
    assert schema(label("nodule", 1, attributes=attrs)).validate()


# ---- AttributeSpec.check_value --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        (
            AttributeSpec(key="b", name="B", type=AttributeType.BOOL),
            [True, False],
            [1, 0, "true", None],
        ),
        (ENUM, ["smooth", "spiculated"], ["Smooth", "", None, 1, ["smooth"]]),
        (
            AttributeSpec(key="t", name="T", type=AttributeType.TEXT, max_length=3),
            ["", "abc"],
            ["abcd", 3, None],
        ),
        (
            number(minimum=0, maximum=10, unit="mm"),
            [0, 10, 2.5, 7],
            [-0.1, 10.5, True, "5", None, math.nan, math.inf],
        ),
        (number(), [-1e300, 0, 1e300], [math.nan, -math.inf, False]),
    ],
)
def test_check_value(spec: AttributeSpec, good: list[object], bad: list[object]) -> None:
    for value in good:
        spec.check_value(value, where="annotation.attributes")
    for value in bad:
        with pytest.raises(InvalidInput) as exc:
            spec.check_value(value, where="annotation.attributes")
        [error] = exc.value.errors
        assert error["field"] == "annotation.attributes" and error["attribute"] == spec.key


def test_check_value_names_the_unit() -> None:
    with pytest.raises(InvalidInput, match=r"must be <= 10 mm"):
        number(maximum=10, unit="mm").check_value(11, where="x")


@settings(deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_number_bounds_are_exactly_the_accepted_range(low: float, high: float, x: float) -> None:
    low, high = min(low, high), max(low, high)
    spec = number(minimum=low, maximum=high)
    try:
        spec.check_value(x, where="v")
        accepted = True
    except InvalidInput:
        accepted = False
    assert accepted == (low <= x <= high)


# ---- evolution across versions --------------------------------------------------------------


def test_check_evolution_keeps_values_bound_to_keys() -> None:
    v1 = schema(label("liver", 1), label("spleen", 2))
    v2 = schema(label("spleen", 2))
    check_evolution(schema(label("spleen", 2), label("kidney", 3)), [v1, v2])
    check_evolution(schema(label("liver", 1, name="Renamed", color="#000000")), [v1, v2])
    check_evolution(schema(label("anything", 1)), [])
    with pytest.raises(InvalidInput) as exc:
        check_evolution(schema(label("kidney", 3), label("pancreas", 1)), [v1, v2])
    assert exc.value.errors == [{"field": "classes[1].value", "problem": "value_reused"}]
    assert "'liver'" in exc.value.detail
    with pytest.raises(InvalidInput) as exc:
        check_evolution(schema(label("spleen", 9)), [v1, v2])
    assert exc.value.errors == [{"field": "classes[0].value", "problem": "value_changed"}]


def test_the_first_binding_in_history_wins() -> None:
    # A corrupted history that rebinds a value cannot launder the rebinding.
    history = [schema(label("liver", 1)), schema(label("kidney", 1))]
    with pytest.raises(InvalidInput):
        check_evolution(schema(label("kidney", 1)), history)
    check_evolution(schema(label("liver", 1)), history)


def test_next_free_value_never_reuses() -> None:
    assert next_free_value([]) == 1
    assert next_free_value([1, 2, 7]) == 8
    assert next_free_value({3}) == 4


def test_changes_from_lists_added_removed_and_changed_keys() -> None:
    old = schema(label("liver", 1), label("spleen", 2), label("lung", 3))
    new = schema(
        label("lung", 3), label("liver", 1, color="#ffffff"), label("aorta", 4), label("heart", 5)
    )
    assert new.changes_from(old) == {
        "added": ["aorta", "heart"],
        "removed": ["spleen"],
        "changed": ["liver"],
    }
    assert old.changes_from(old) == {"added": [], "removed": [], "changed": []}
    with_attr = schema(label("liver", 1, attributes=(ENUM,)), label("spleen", 2), label("lung", 3))
    assert with_attr.changes_from(old)["changed"] == ["liver"]
    assert old.changes_from(LabelSchema())["added"] == ["liver", "lung", "spleen"]


# ---- serialisation ------------------------------------------------------------------------

names = st.text(alphabet=st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=20)
keys = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
concepts = st.none() | st.builds(
    CodedConcept,
    value=st.from_regex(r"[0-9]{1,10}", fullmatch=True),
    scheme=st.sampled_from(["SCT", "DCM", "RADLEX"]),
    meaning=names,
)


@st.composite
def attributes(draw: st.DrawFn, key: str) -> AttributeSpec:
    kind = draw(st.sampled_from(list(AttributeType)))
    spec = AttributeSpec(key=key, name=draw(names), type=kind, required=draw(st.booleans()))
    if kind is AttributeType.ENUM:
        options = draw(st.lists(names, min_size=1, max_size=5, unique=True))
        default = draw(st.none() | st.sampled_from(options))
        return dataclasses.replace(spec, options=tuple(options), default=default)
    if kind is AttributeType.NUMBER:
        low, high = sorted((draw(finite), draw(finite)))
        bounds = draw(st.sampled_from([(None, None), (low, None), (None, high), (low, high)]))
        return dataclasses.replace(
            spec,
            unit=draw(st.none() | names),
            minimum=bounds[0],
            maximum=bounds[1],
            default=draw(st.none() | st.just(high)),
        )
    if kind is AttributeType.TEXT:
        return dataclasses.replace(
            spec, max_length=draw(st.integers(1, 100_000)), default=draw(st.none() | st.just(""))
        )
    return dataclasses.replace(spec, default=draw(st.none() | st.booleans()))


@st.composite
def label_schemas(draw: st.DrawFn) -> LabelSchema:
    class_keys = draw(st.lists(keys, max_size=5, unique=True))
    values = draw(
        st.lists(
            st.integers(1, MAX_LABEL_VALUE),
            min_size=len(class_keys),
            max_size=len(class_keys),
            unique=True,
        )
    )
    classes = []
    for i, (key, value) in enumerate(zip(class_keys, values, strict=True)):
        attr_keys = draw(st.lists(keys, max_size=3, unique=True))
        classes.append(
            LabelClass(
                key=key,
                name=f"Class {i} {draw(names)}",
                value=value,
                color=draw(st.from_regex(r"#[0-9a-f]{6}", fullmatch=True)),
                kinds=tuple(
                    draw(
                        st.lists(
                            st.sampled_from(list(AnnotationKind)),
                            min_size=1,
                            max_size=3,
                            unique=True,
                        )
                    )
                ),
                hotkey=None if i else draw(st.none() | st.just("a")),
                description=draw(st.text(max_size=30)),
                attributes=tuple(draw(attributes(k)) for k in attr_keys),
                segmented_property_category=draw(concepts),
                segmented_property_type=draw(concepts),
            )
        )
    return LabelSchema(classes=tuple(classes))


@settings(deadline=None, max_examples=100)
@given(label_schemas())
def test_to_dict_and_schema_from_dict_round_trip(s: LabelSchema) -> None:
    data = s.to_dict()
    assert schema_from_dict(data) == s
    # As stored in a JSON column (what the database gives back).
    stored = json.loads(json.dumps(data, allow_nan=False))
    assert schema_from_dict(stored) == s
    assert schema_from_dict(stored).to_dict() == data


def test_to_dict_has_the_documented_shape() -> None:
    concept = CodedConcept(value="27925004", scheme="SCT", meaning="Nodule")
    cls = label(
        "nodule",
        4,
        name="Nodule",
        hotkey="n",
        description="d",
        attributes=(ENUM, number(unit="mm", minimum=0, maximum=30)),
        segmented_property_type=concept,
    )
    assert schema(cls).to_dict() == {
        "classes": [
            {
                "key": "nodule",
                "name": "Nodule",
                "value": 4,
                "color": "#112233",
                "kinds": ["box"],
                "hotkey": "n",
                "description": "d",
                "attributes": [
                    {
                        "key": "margin",
                        "name": "Margin",
                        "type": "enum",
                        "required": False,
                        "options": ["smooth", "spiculated"],
                    },
                    {
                        "key": "size",
                        "name": "Size",
                        "type": "number",
                        "required": False,
                        "unit": "mm",
                        "minimum": 0,
                        "maximum": 30,
                    },
                ],
                "segmented_property_category": None,
                "segmented_property_type": {
                    "value": "27925004",
                    "scheme": "SCT",
                    "meaning": "Nodule",
                },
            }
        ]
    }
    assert schema_from_dict({}) == LabelSchema()
