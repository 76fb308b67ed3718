"""Annotation documents: parsing and validation, canonical round trip, measurements, diffs."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medlabel.domain.errors import InvalidInput
from medlabel.domain.geometry import Geometry, planar
from medlabel.domain.labels import (
    AnnotationKind,
    AttributeSpec,
    AttributeType,
    LabelClass,
    LabelSchema,
)
from medlabel.domain.shapes import (
    MAX_ANNOTATIONS,
    MAX_DOCUMENT_VERTICES,
    MAX_HOLES,
    MAX_RING_VERTICES,
    Box,
    Classification,
    ModelRef,
    Point,
    Polygon,
    Polyline,
    Scope,
    ShapeContext,
    annotation_from_stored,
    diff_documents,
    load_stored,
    measure,
    parse_annotation,
    parse_document,
)

K = AnnotationKind

NODULE = LabelClass(
    key="nodule",
    name="Nodule",
    value=1,
    color="#e6194b",
    kinds=(K.BOX, K.POLYGON, K.POLYLINE, K.MASK),
    attributes=(
        AttributeSpec(
            key="texture",
            name="Texture",
            type=AttributeType.ENUM,
            required=True,
            options=("solid", "part-solid", "ground-glass"),
        ),
        AttributeSpec(
            key="diameter",
            name="Diameter",
            type=AttributeType.NUMBER,
            unit="mm",
            minimum=0,
            maximum=300,
        ),
        AttributeSpec(key="calcified", name="Calcified", type=AttributeType.BOOL, default=False),
        AttributeSpec(key="comment", name="Comment", type=AttributeType.TEXT, max_length=20),
    ),
)
LIVER = LabelClass(key="liver", name="Liver", value=2, color="#3cb44b", kinds=(K.MASK, K.POLYGON))
APEX = LabelClass(key="apex", name="Apex", value=3, color="#ffe119", kinds=(K.POINT,))
QUALITY = LabelClass(
    key="quality",
    name="Quality",
    value=4,
    color="#4363d8",
    kinds=(K.CLASSIFICATION,),
    attributes=(
        AttributeSpec(
            key="grade",
            name="Grade",
            type=AttributeType.ENUM,
            required=True,
            options=("good", "poor"),
        ),
    ),
)
RULER = LabelClass(key="ruler", name="Ruler", value=5, color="#f58231", kinds=(K.POLYLINE,))
SCHEMA = LabelSchema(classes=(NODULE, LIVER, APEX, QUALITY, RULER)).validate()

VOLUME = ShapeContext(shape=(512, 400, 30), schema=SCHEMA, item_kind="volume")
IMAGE = ShapeContext(shape=(640, 480, 1), schema=SCHEMA, item_kind="image")
CINE = ShapeContext(shape=(100, 80, 20), schema=SCHEMA, item_kind="cine")

SQUARE = [[10, 10], [30, 10], [30, 30], [10, 30]]


def box(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "b1",
        "kind": "box",
        "label": "nodule",
        "attributes": {"texture": "solid"},
        "slice": 3,
        "min": [10, 20],
        "max": [30.5, 60.25],
    }
    data.update(over)
    return data


def box3d(**over: Any) -> dict[str, Any]:
    data = box(min=[10, 20, 2], max=[30, 60, 6])
    del data["slice"]
    data.update(over)
    return data


def polygon(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "p1",
        "kind": "polygon",
        "label": "liver",
        "slice": 0,
        "points": [[0, 0], [100, 0], [100, 100], [0, 100]],
        "holes": [[[10, 10], [20, 10], [20, 20], [10, 20]]],
    }
    data.update(over)
    return data


def polyline(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "l1",
        "kind": "polyline",
        "label": "ruler",
        "slice": 2,
        "points": [[0, 0], [3, 4], [3, 10.5]],
    }
    data.update(over)
    return data


def point(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": "pt1", "kind": "point", "label": "apex", "point": [10, 20, 4]}
    data.update(over)
    return data


def classification(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "c1",
        "kind": "classification",
        "label": "quality",
        "attributes": {"grade": "good"},
        "scope": "item",
    }
    data.update(over)
    return data


def refused(data: Any, ctx: ShapeContext = VOLUME, index: int = 0) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        parse_annotation(data, index=index, ctx=ctx)
    err = exc.value
    assert err.status == 422
    assert len(err.errors) == 1
    assert err.detail.startswith(err.errors[0]["field"])
    return err


def field_of(err: InvalidInput) -> str:
    return str(err.errors[0]["field"])


# ---- valid annotations ---------------------------------------------------------------------------


def test_box_2d() -> None:
    ann = parse_annotation(box(), index=0, ctx=VOLUME)
    assert ann == Box(
        id="b1",
        label="nodule",
        attributes=(("texture", "solid"), ("calcified", False)),  # the default is filled in
        slice=3,
        min_corner=(10.0, 20.0),
        max_corner=(30.5, 60.25),
    )
    assert not ann.is_3d
    assert ann.to_dict() == {
        "id": "b1",
        "kind": "box",
        "label": "nodule",
        "attributes": {"texture": "solid", "calcified": False},
        "slice": 3,
        "min": [10.0, 20.0],
        "max": [30.5, 60.25],
    }


def test_box_3d_on_a_volume() -> None:
    ann = parse_annotation(box3d(), index=0, ctx=VOLUME)
    assert isinstance(ann, Box)
    assert ann.is_3d
    assert ann.slice is None
    assert ann.min_corner == (10.0, 20.0, 2.0)
    assert "slice" not in ann.to_dict()


def test_all_kinds_and_optional_fields_round_trip() -> None:
    doc = {
        "annotations": [
            box(
                instance=7,
                model={"name": "nnU-Net", "version": "2.1"},
                time_spent_s=12.5,
                note="  first line\nsecond line  ",
                attributes={"texture": "solid", "diameter": 12.25, "comment": "ok"},
            ),
            box3d(id="b2"),
            polygon(),
            polygon(id="p2", holes=[]),
            polyline(),
            point(),
            classification(),
            classification(id="c2", scope="frame", slice=4),
            classification(id="c3", scope="study"),
        ]
    }
    anns = parse_document(doc, VOLUME)
    assert [a.kind for a in anns] == [
        K.BOX,
        K.BOX,
        K.POLYGON,
        K.POLYGON,
        K.POLYLINE,
        K.POINT,
        K.CLASSIFICATION,
        K.CLASSIFICATION,
        K.CLASSIFICATION,
    ]
    first = anns[0]
    assert first.instance == 7
    assert first.model == ModelRef(name="nnU-Net", version="2.1")
    assert first.time_spent_s == 12.5
    assert first.note == "first line\nsecond line"
    assert first.attribute_dict() == {
        "texture": "solid",
        "diameter": 12.25,
        "calcified": False,
        "comment": "ok",
    }
    back = parse_document({"annotations": [a.to_dict() for a in anns]}, VOLUME)
    assert back == anns
    assert [a.to_dict() for a in back] == [a.to_dict() for a in anns]


def test_stored_annotations_load_without_a_schema() -> None:
    anns = parse_document(
        {"annotations": [box(instance=3, note="n"), polygon(), point(), classification()]},
        VOLUME,
    )
    stored = [a.to_dict() for a in anns]
    stored[1]["label"] = "removed_class"  # a class that a later schema version dropped
    loaded = load_stored(stored)
    assert loaded[0] == anns[0]
    assert loaded[1].label == "removed_class"
    assert loaded[2:] == anns[2:]
    with pytest.raises(ValueError, match="unknown stored annotation kind"):
        annotation_from_stored({"id": "m", "kind": "mask", "label": "liver"})


def test_classification_frame_scope_keeps_its_slice() -> None:
    ann = parse_annotation(classification(scope="frame", slice=4), index=0, ctx=CINE)
    assert ann == Classification(
        id="c1", label="quality", attributes=(("grade", "good"),), scope=Scope.FRAME, slice=4
    )
    assert ann.to_dict()["slice"] == 4


def test_point_on_a_volume_may_fall_between_slices() -> None:
    ann = parse_annotation(point(point=[10.25, 20.5, 3.5]), index=0, ctx=VOLUME)
    assert ann == Point(id="pt1", label="apex", point=(10.25, 20.5, 3.5))


def test_point_on_an_image_uses_k_zero() -> None:
    ann = parse_annotation(point(point=[639.5, -0.5, 0]), index=0, ctx=IMAGE)
    assert isinstance(ann, Point)
    assert ann.point == (639.5, -0.5, 0.0)


def test_coordinates_on_the_outer_image_edge_are_allowed() -> None:
    ann = parse_annotation(box(min=[-0.5, -0.5], max=[511.5, 399.5]), index=0, ctx=VOLUME)
    assert isinstance(ann, Box)
    assert ann.max_corner == (511.5, 399.5)


def test_floats_are_kept_exactly() -> None:
    x = 0.1 + 0.2  # 0.30000000000000004
    y = 1 / 3
    ann = parse_annotation(polyline(points=[[x, y], [2 * x, 5]]), index=0, ctx=VOLUME)
    assert isinstance(ann, Polyline)
    assert ann.points[0] == (x, y)
    assert ann.to_dict()["points"][0] == [x, y]


def test_blank_note_means_none() -> None:
    ann = parse_annotation(box(note="   "), index=0, ctx=VOLUME)
    assert ann.note is None
    assert "note" not in ann.to_dict()


def test_ten_thousand_vertex_polygon_is_accepted() -> None:
    n = MAX_RING_VERTICES
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = np.where(np.arange(n) % 2 == 0, 900.0, 500.0)  # a star
    points = np.c_[1000 + r * np.cos(t), 1000 + r * np.sin(t)].tolist()
    ctx = ShapeContext(shape=(2048, 2048, 1), schema=SCHEMA, item_kind="slide")
    ann = parse_annotation(polygon(points=points, holes=[]), index=0, ctx=ctx)
    assert isinstance(ann, Polygon)
    assert len(ann.points) == n
    assert ann.vertex_count == n


# ---- rejections: common fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ("box", "annotations[0]", "must be an object, not a string"),
        (box(id=None), "annotations[0].id", "is missing"),
        (box(id=""), "annotations[0].id", "is not a valid id"),
        (box(id="a b"), "annotations[0].id", "is not a valid id"),
        (box(id="x" * 65), "annotations[0].id", "is not a valid id"),
        (box(id=12), "annotations[0].id", "is not a valid id"),
        (box(kind="mask"), "annotations[0].kind", "masks are not part of annotation documents"),
        (box(kind="circle"), "annotations[0].kind", "must be one of box, polygon"),
        (box(kind=None), "annotations[0].kind", "must be one of"),
        (box(hole=[]), "annotations[0].hole", "is not a field of a box annotation"),
        (box(points=[]), "annotations[0].points", "is not a field of a box annotation"),
        (box(label="tumour"), "annotations[0].label", "'tumour' is not a class"),
        (box(label=None), "annotations[0].label", "must be a class key"),
        (box(label="liver"), "annotations[0].kind", "class 'liver' does not allow box"),
        (point(label="nodule"), "annotations[0].kind", "it allows box, polygon, polyline, mask"),
        (
            box(attributes={"texture": "solid", "size": 3}),
            "annotations[0].attributes.size",
            "class 'nodule' has no attribute 'size'",
        ),
        (box(attributes=[]), "annotations[0].attributes", "must be an object"),
        (
            box(attributes={"texture": "hairy"}),
            "annotations[0].attributes.texture",
            "must be one of",
        ),
        (
            box(attributes={"texture": "solid", "diameter": "12"}),
            "annotations[0].attributes.diameter",
            "must be a finite number",
        ),
        (
            box(attributes={"texture": "solid", "diameter": 301}),
            "annotations[0].attributes.diameter",
            "must be <= 300",
        ),
        (
            box(attributes={"texture": "solid", "calcified": 1}),
            "annotations[0].attributes.calcified",
            "must be true or false",
        ),
        (
            box(attributes={"texture": "solid", "comment": "x" * 21}),
            "annotations[0].attributes.comment",
            "at most 20 characters",
        ),
        (box(attributes={}), "annotations[0].attributes.texture", "required attribute"),
        (box(attributes=None), "annotations[0].attributes.texture", "required attribute"),
        (classification(attributes={}), "annotations[0].attributes.grade", "is missing"),
        (box(instance=0), "annotations[0].instance", "is 0; use 1 .. 65535"),
        (box(instance=65536), "annotations[0].instance", "use 1 .. 65535"),
        (box(instance=True), "annotations[0].instance", "must be an integer"),
        (box(instance=1.0), "annotations[0].instance", "must be an integer"),
        (box(model={"name": "x"}), "annotations[0].model", "must be {"),
        (box(model={"name": "x", "version": 2}), "annotations[0].model.version", "string"),
        (box(model="nnunet"), "annotations[0].model", "must be {"),
        (box(time_spent_s=-1), "annotations[0].time_spent_s", "0 .. 86400 seconds"),
        (box(time_spent_s=86401), "annotations[0].time_spent_s", "0 .. 86400 seconds"),
        (box(time_spent_s=math.nan), "annotations[0].time_spent_s", "0 .. 86400 seconds"),
        (box(time_spent_s=math.inf), "annotations[0].time_spent_s", "0 .. 86400 seconds"),
        (box(time_spent_s=True), "annotations[0].time_spent_s", "must be a number"),
        (box(time_spent_s="5"), "annotations[0].time_spent_s", "must be a number"),
        (box(note=5), "annotations[0].note", "must be a string"),
        (box(note="x" * 2001), "annotations[0].note", "the limit is 2000"),
    ],
)
def test_common_field_rejections(data: Any, field: str, problem: str) -> None:
    err = refused(data)
    assert field_of(err) == field
    assert problem in err.detail


def test_control_characters_in_a_note_are_refused() -> None:
    err = refused(box(note="hi\u202eevil"))
    assert field_of(err) == "annotations[0].note"
    assert "U+202E" in err.detail


def test_the_index_names_the_annotation() -> None:
    err = refused(box(label="tumour"), index=17)
    assert field_of(err) == "annotations[17].label"
    assert "Use one of: nodule, liver, apex, quality, ruler." in err.detail


# ---- rejections: coordinates and geometry --------------------------------------------------------

BAD_NUMBERS = [
    (math.nan, "is NaN"),
    (math.inf, "is infinite"),
    (-math.inf, "is infinite"),
    (1e308, "beyond the limit"),
    (10**400, "beyond the limit"),
    ("12", "is a string, not a number"),
    (True, "is a boolean, not a number"),
    (None, "is null, not a number"),
    ([1], "is a list, not a number"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_NUMBERS)
def test_bad_numbers_in_polygon_points(value: object, problem: str) -> None:
    points = copy.deepcopy(SQUARE)
    points[2][1] = value  # type: ignore[call-overload]
    err = refused(polygon(points=points, holes=[]))
    assert field_of(err) == "annotations[0].points[2]"
    assert "coordinate j " in err.detail
    assert problem in err.detail


@pytest.mark.parametrize(("value", "problem"), BAD_NUMBERS)
def test_bad_numbers_elsewhere(value: object, problem: str) -> None:
    for data, field in [
        (box(min=[value, 20]), "annotations[0].min"),
        (box3d(max=[30, 60, value]), "annotations[0].max"),
        (polyline(points=[[0, 0], [value, 1]]), "annotations[0].points[1]"),
        (point(point=[1, 2, value]), "annotations[0].point"),
        (polygon(holes=[[[10, 10], [20, 10], [value, 20]]]), "annotations[0].holes[0][2]"),
    ]:
        err = refused(data)
        assert field_of(err) == field
        assert problem in err.detail


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (box(min=[-0.6, 20]), "annotations[0].min", "i = -0.6 lies outside the image"),
        (box(max=[512, 60]), "annotations[0].max", "whose 512 columns span i = -0.5 .. 511.5"),
        (box(max=[30, 400]), "annotations[0].max", "whose 400 rows span j = -0.5 .. 399.5"),
        (box3d(max=[30, 60, 29.6]), "annotations[0].max", "whose 30 slices span k"),
        (
            polygon(points=[[0, 0], [600, 0], [600, 100]], holes=[]),
            "annotations[0].points[1]",
            "lies outside the image",
        ),
        (polyline(points=[[0, 0], [1, -1]]), "annotations[0].points[1]", "j = -1.0 lies outside"),
        (point(point=[10, 20, 30]), "annotations[0].point", "k = 30.0 lies outside"),
        (box(slice=30), "annotations[0].slice", "is 30, but the item has 30 slice(s)"),
        (box(slice=-1), "annotations[0].slice", "is -1"),
        (box(slice=True), "annotations[0].slice", "must be an integer, not a boolean"),
        (box(slice=2.0), "annotations[0].slice", "must be an integer"),
        (box(slice="2"), "annotations[0].slice", "must be an integer"),
        (polygon(slice=None), "annotations[0].slice", "must be an integer, not null"),
        (
            {k: v for k, v in polygon().items() if k != "slice"},
            "annotations[0].slice",
            "is required",
        ),
        (box(min=[30, 20], max=[30, 60]), "annotations[0].max", "max i (30.0) must be greater"),
        (box(min=[10, 61], max=[30, 60]), "annotations[0].max", "max j (60.0) must be greater"),
        (box3d(min=[10, 20, 6]), "annotations[0].max", "max k (6.0) must be greater"),
        (box(min=[10, 20, 3]), "annotations[0].min", "must be a corner [i, j]"),
        (box(max="30,60"), "annotations[0].max", "must be a corner [i, j] of 2 numbers"),
        (box3d(min=[10, 20]), "annotations[0].slice", "is required for a box on one slice"),
        (box(min=None), "annotations[0].min", "must be a corner"),
        (polygon(points=[[0, 0], [10, 0]], holes=[]), "annotations[0].points", "at least 3"),
        (polygon(points="0,0 1,1 1,0"), "annotations[0].points", "must be a list of [i, j]"),
        (polygon(points=[[0, 0], [1, 0], [1]]), "annotations[0].points[2]", "must be a point"),
        (polygon(holes={"a": 1}), "annotations[0].holes", "must be a list of rings"),
        (polygon(holes=[[[10, 10], [20, 10]]]), "annotations[0].holes[0]", "at least 3"),
        (polyline(points=[[0, 0]]), "annotations[0].points", "at least 2 are needed"),
        (
            polyline(points=[[0, 0], [1, 1], [1, 1], [2, 2]]),
            "annotations[0].points[2]",
            "points 1 and 2 are the same point",
        ),
        (point(point=[1, 2]), "annotations[0].point", "must be a point [i, j, k]"),
        (classification(scope="series"), "annotations[0].scope", "must be one of item, frame"),
        (classification(scope=None), "annotations[0].scope", "must be one of"),
        (classification(scope="frame"), "annotations[0].slice", "is required"),
        (
            classification(slice=2),
            "annotations[0].slice",
            "is only allowed with scope 'frame'",
        ),
    ],
)
def test_geometry_rejections(data: dict[str, Any], field: str, problem: str) -> None:
    err = refused(data)
    assert field_of(err) == field
    assert problem in err.detail


@pytest.mark.parametrize(
    ("ctx", "why"),
    [
        (IMAGE, "this image has 1"),
        (CINE, "this cine has 20"),
        (ShapeContext(shape=(64, 64, 1), schema=SCHEMA, item_kind="volume"), "volume has 1"),
    ],
)
def test_3d_boxes_need_a_volume_with_slices(ctx: ShapeContext, why: str) -> None:
    err = refused(box3d(min=[1, 2, 0], max=[3, 4, 0.5]), ctx=ctx)
    assert field_of(err) == "annotations[0].min"
    assert "a 3D box needs a volume with more than one slice" in err.detail
    assert why in err.detail


def test_points_on_frames_must_be_whole_frames() -> None:
    err = refused(point(point=[10, 20, 0.5]), ctx=IMAGE)
    assert "k = 0.5 falls between frames; on this image k is a whole frame number" in err.detail
    assert field_of(err) == "annotations[0].point"
    err = refused(point(point=[10, 20, 4.5]), ctx=CINE)
    assert "falls between frames" in err.detail
    assert parse_annotation(point(point=[10, 20, 4]), index=0, ctx=CINE) == Point(
        id="pt1", label="apex", point=(10.0, 20.0, 4.0)
    )
    assert refused(point(point=[10, 20, 1]), ctx=IMAGE).errors[0]["field"] == (
        "annotations[0].point"
    )


# ---- rejections: polygon validity ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "field", "problem"),
    [
        (
            {"points": [[0, 0], [20, 20], [20, 0], [0, 20]], "holes": []},
            "annotations[0].points",
            "edges 0 and 2 cross at (10.0, 10.0)",
        ),
        (
            {"points": [[0, 0], [10, 0], [10, 0], [0, 10]], "holes": []},
            "annotations[0].points[2]",
            "vertices 1 and 2 are the same point",
        ),
        (
            {"points": [*SQUARE, [10, 10]], "holes": []},
            "annotations[0].points[4]",
            "repeats the first; rings close themselves",
        ),
        (
            {"points": [[0, 0], [5, 5], [10, 10]], "holes": []},
            "annotations[0].points",
            "lie on one straight line",
        ),
        (
            {"holes": [[[200, 200], [210, 200], [210, 210]]]},
            "annotations[0].holes[0]",
            "hole 0 lies outside the outer ring",
        ),
        (
            {"holes": [[[0, 50], [20, 40], [20, 60]]]},
            "annotations[0].holes[0]",
            "touches",
        ),
        (
            {"holes": [[[10, 10], [30, 10], [30, 30]], [[20, 5], [40, 20], [20, 25]]]},
            "annotations[0].holes[1]",
            "crosses",
        ),
        (
            {"holes": [[[10, 10], [40, 10], [40, 40], [10, 40]], [[20, 20], [30, 20], [30, 30]]]},
            "annotations[0].holes[1]",
            "holes may not be nested",
        ),
        (
            {"holes": [[[10, 10], [20, 20], [20, 10], [10, 20]]]},
            "annotations[0].holes[0]",
            "edges 0 and 2 cross",
        ),
    ],
)
def test_polygon_validity(over: dict[str, Any], field: str, problem: str) -> None:
    err = refused(polygon(**over))
    assert field_of(err) == field
    assert problem in err.detail
    assert "Correct the outline" in err.detail


def test_too_many_vertices_and_holes() -> None:
    ring = [[float(i % 100), float(i // 100)] for i in range(MAX_RING_VERTICES + 1)]
    err = refused(polygon(points=ring, holes=[]))
    assert field_of(err) == "annotations[0].points"
    assert "has 10001 vertices; the limit is 10000" in err.detail
    err = refused(polyline(points=ring))
    assert "has 10001 vertices" in err.detail
    err = refused(polygon(holes=[[[1, 1], [2, 1], [2, 2]]] * (MAX_HOLES + 1)))
    assert field_of(err) == "annotations[0].holes"
    assert "has 101 holes; the limit is 100" in err.detail


# ---- documents -----------------------------------------------------------------------------------


def test_duplicate_ids_are_refused() -> None:
    doc = {"annotations": [box(id="a"), polygon(id="b"), point(id="a")]}
    with pytest.raises(InvalidInput) as exc:
        parse_document(doc, VOLUME)
    assert exc.value.errors[0]["field"] == "annotations[2].id"
    assert "'a' is also the id of annotations[0]" in exc.value.detail
    assert "unique within a document" in exc.value.detail


def test_document_shape_is_checked() -> None:
    for doc, problem in [
        ({}, "must be a list, not null"),
        ({"annotations": {"a": 1}}, "must be a list, not an object"),
        ([], "must be an object"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            parse_document(doc, VOLUME)  # type: ignore[arg-type]
        assert problem in exc.value.detail
    assert parse_document({"annotations": []}, VOLUME) == ()


def test_errors_name_the_index_in_the_document() -> None:
    doc = {"annotations": [box(), box(id="b2", slice=99)]}
    with pytest.raises(InvalidInput) as exc:
        parse_document(doc, VOLUME)
    assert exc.value.errors[0]["field"] == "annotations[1].slice"


def test_too_many_annotations() -> None:
    doc = {"annotations": [classification(id=f"c{n}") for n in range(MAX_ANNOTATIONS + 1)]}
    with pytest.raises(InvalidInput) as exc:
        parse_document(doc, VOLUME)
    assert exc.value.errors[0]["field"] == "annotations"
    assert "holds 10001 annotations; the limit is 10000" in exc.value.detail
    assert len(parse_document({"annotations": doc["annotations"][:-1]}, VOLUME)) == 10_000


def test_too_many_vertices_in_a_document() -> None:
    ring = [[0, 0]] * 10_000  # counted before anything else is checked
    doc = {"annotations": [polygon(id=f"p{n}", points=ring, holes=[]) for n in range(20)]}
    doc["annotations"].append(polyline(id="l", points=[[0, 0]] * 1))
    with pytest.raises(InvalidInput) as exc:
        parse_document(doc, VOLUME)
    assert exc.value.errors[0]["field"] == "annotations"
    assert f"hold 200001 polygon and polyline vertices; the limit is {MAX_DOCUMENT_VERTICES}" in (
        exc.value.detail
    )


def test_context_is_checked() -> None:
    with pytest.raises(ValueError, match="three positive integers"):
        ShapeContext(shape=(0, 1, 1), schema=SCHEMA, item_kind="image")
    with pytest.raises(ValueError, match="unknown item kind"):
        ShapeContext(shape=(1, 1, 1), schema=SCHEMA, item_kind="movie")


# ---- measurements --------------------------------------------------------------------------------

CT = Geometry(
    shape=(512, 400, 30),
    spacing_mm=(0.7, 0.7, 2.5),
    direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    origin_mm=(-100.0, 50.0, 20.0),
)


def parsed(data: dict[str, Any]) -> Any:
    return parse_annotation(data, index=0, ctx=VOLUME)


def test_measure_2d_box() -> None:
    m = measure(parsed(box(min=[10, 20], max=[30, 60])), CT, physical=True)
    assert m.keys() == {"units", "width_mm", "height_mm", "area_mm2"}
    assert m["units"] == "mm"
    assert m["width_mm"] == pytest.approx(14.0)
    assert m["height_mm"] == pytest.approx(28.0)
    assert m["area_mm2"] == pytest.approx(392.0)
    px = measure(parsed(box(min=[10, 20], max=[30, 60])), CT, physical=False)
    assert px == {"units": "px", "width_px": 20.0, "height_px": 40.0, "area_px2": 800.0}


def test_measure_3d_box() -> None:
    m = measure(parsed(box3d()), CT, physical=True)
    assert m.keys() == {"units", "width_mm", "height_mm", "depth_mm", "volume_ml"}
    assert m["depth_mm"] == pytest.approx(10.0)
    assert m["volume_ml"] == pytest.approx(14.0 * 28.0 * 10.0 / 1000)  # 3.92 mL
    px = measure(parsed(box3d()), CT, physical=False)
    assert px == {
        "units": "px",
        "width_px": 20.0,
        "height_px": 40.0,
        "depth_px": 4.0,
        "volume_px3": 3200.0,
    }


def test_measure_3d_box_on_a_sheared_grid() -> None:
    tilt = math.radians(20)  # slices step 20 degrees off the normal (gantry tilt)
    sheared = Geometry(
        shape=(512, 400, 30),
        spacing_mm=(0.7, 0.7, 2.5),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, math.sin(tilt), math.cos(tilt))),
        origin_mm=(0.0, 0.0, 0.0),
    )
    m = measure(parsed(box3d()), sheared, physical=True)
    assert m["volume_ml"] == pytest.approx(3.92 * math.cos(tilt))


def test_measure_polygon_with_hole() -> None:
    data = polygon(
        points=[[0, 0], [10, 0], [10, 10], [0, 10]],
        holes=[[[2, 2], [4, 2], [4, 4], [2, 4]]],
    )
    m = measure(parsed(data), CT, physical=True)
    assert m.keys() == {"units", "area_mm2", "perimeter_mm"}
    assert m["area_mm2"] == pytest.approx((100 - 4) * 0.49)  # 47.04
    assert m["perimeter_mm"] == pytest.approx(28.0)  # the outer ring only
    px = measure(parsed(data), CT, physical=False)
    assert px == {"units": "px", "area_px2": 96.0, "perimeter_px": 40.0}


def test_measure_with_anisotropic_pixels() -> None:
    geo = planar(640, 480, pixel_spacing_mm=(0.5, 2.0))
    rect = parse_annotation(
        polygon(points=[[0, 0], [4, 0], [4, 3], [0, 3]], holes=[]), index=0, ctx=IMAGE
    )
    m = measure(rect, geo, physical=True)
    assert m["area_mm2"] == pytest.approx(12 * 0.5 * 2.0)
    assert m["perimeter_mm"] == pytest.approx(2 * (4 * 0.5 + 3 * 2.0))
    line = parse_annotation(polyline(slice=0, points=[[0, 0], [3, 4]]), index=0, ctx=IMAGE)
    assert measure(line, geo, physical=True) == {
        "units": "mm",
        "length_mm": pytest.approx(math.hypot(1.5, 8.0)),
    }


def test_measure_polyline() -> None:
    m = measure(parsed(polyline()), CT, physical=True)
    assert m == {"units": "mm", "length_mm": pytest.approx((5 + 6.5) * 0.7)}
    assert measure(parsed(polyline()), CT, physical=False) == {"units": "px", "length_px": 11.5}


def test_measure_point_in_patient_coordinates() -> None:
    m = measure(parsed(point()), CT, physical=True)
    assert m["units"] == "mm"
    assert m["position_mm"] == pytest.approx([-100 + 7.0, 50 + 14.0, 20 + 10.0])
    assert measure(parsed(point()), CT, physical=False) == {
        "units": "px",
        "position_px": [10.0, 20.0, 4.0],
    }


def test_measure_classification_is_empty() -> None:
    assert measure(parsed(classification()), CT, physical=True) == {}


# ---- diffs ---------------------------------------------------------------------------------------


def test_diff_documents() -> None:
    old = parse_document(
        {"annotations": [box(id="a"), polygon(id="b"), point(id="c"), polyline(id="d")]},
        VOLUME,
    )
    new = parse_document(
        {
            "annotations": [
                box(id="a"),
                polygon(id="b", slice=1),
                polyline(id="d", note="checked"),
                classification(id="e"),
            ]
        },
        VOLUME,
    )
    assert diff_documents(old, new) == {"added": ["e"], "removed": ["c"], "changed": ["b", "d"]}
    assert diff_documents(new, new) == {"added": [], "removed": [], "changed": []}
    assert diff_documents([], old) == {"added": ["a", "b", "c", "d"], "removed": [], "changed": []}


# ---- properties ----------------------------------------------------------------------------------

coord_i = st.floats(-0.5, 511.5, allow_nan=False)
coord_j = st.floats(-0.5, 399.5, allow_nan=False)
ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@st.composite
def annotation_dicts(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["box", "box3d", "polygon", "polyline", "point", "class"]))
    common: dict[str, Any] = {"id": draw(ids)}
    if draw(st.booleans()):
        common["instance"] = draw(st.integers(1, 65535))
    if draw(st.booleans()):
        common["time_spent_s"] = draw(st.floats(0, 86400))
    if draw(st.booleans()):
        common["model"] = {"name": draw(st.sampled_from(["a", "nnU-Net"])), "version": "1"}
    if kind in ("box", "box3d"):
        lo = [draw(st.floats(-0.5, 200)), draw(st.floats(-0.5, 200))]
        hi = [lo[0] + draw(st.floats(0.01, 300)), lo[1] + draw(st.floats(0.01, 199))]
        attrs = {"texture": draw(st.sampled_from(["solid", "ground-glass"]))}
        if draw(st.booleans()):
            attrs["diameter"] = draw(st.floats(0, 300) | st.integers(0, 300))
        if kind == "box":
            return box(**common, min=lo, max=hi, slice=draw(st.integers(0, 29)), attributes=attrs)
        k0 = draw(st.floats(-0.5, 20))
        return box3d(
            **common, min=[*lo, k0], max=[*hi, k0 + draw(st.floats(0.5, 9))], attributes=attrs
        )
    if kind == "polygon":
        steps = draw(st.lists(st.integers(0, 359), min_size=3, max_size=30, unique=True))
        r = draw(st.floats(5, 150))
        cx, cy = draw(st.floats(160, 350)), draw(st.floats(160, 240))
        pts = [
            [cx + r * math.cos(math.radians(s)), cy + r * math.sin(math.radians(s))]
            for s in sorted(steps)
        ]
        return polygon(**common, points=pts, holes=[], slice=draw(st.integers(0, 29)))
    if kind == "polyline":
        pts = draw(st.lists(st.tuples(coord_i, coord_j), min_size=2, max_size=20, unique=True))
        return polyline(**common, points=[list(p) for p in pts])
    if kind == "point":
        return point(**common, point=[draw(coord_i), draw(coord_j), draw(st.floats(-0.5, 29.5))])
    scope = draw(st.sampled_from(["item", "frame", "study"]))
    extra = {"slice": draw(st.integers(0, 29))} if scope == "frame" else {}
    return classification(**common, scope=scope, **extra)


@settings(max_examples=300, deadline=None)
@given(annotation_dicts())
def test_round_trip(data: dict[str, Any]) -> None:
    ann = parse_annotation(data, index=0, ctx=VOLUME)
    again = parse_annotation(ann.to_dict(), index=0, ctx=VOLUME)
    assert again == ann
    assert again.to_dict() == ann.to_dict()
    assert load_stored([ann.to_dict()]) == (ann,)
    hash(ann)  # frozen and hashable
    for key in ("min", "max", "points", "point"):
        if key in data:
            flat_in = np.asarray(data[key], dtype=float).ravel().tolist()
            flat_out = np.asarray(ann.to_dict()[key], dtype=float).ravel().tolist()
            assert flat_in == flat_out  # exactly as given, no rounding


@settings(max_examples=100, deadline=None)
@given(st.lists(annotation_dicts(), max_size=8, unique_by=lambda d: d["id"]))
def test_document_round_trip(items: list[dict[str, Any]]) -> None:
    anns = parse_document({"annotations": items}, VOLUME)
    assert parse_document({"annotations": [a.to_dict() for a in anns]}, VOLUME) == anns
    assert diff_documents(anns, anns) == {"added": [], "removed": [], "changed": []}


@settings(max_examples=100, deadline=None)
@given(annotation_dicts(), st.sampled_from(["nan", "inf", "big", "str", "bool"]))
def test_any_bad_coordinate_is_refused(data: dict[str, Any], how: str) -> None:
    bad: object = {
        "nan": math.nan,
        "inf": -math.inf,
        "big": 1e308,
        "str": "1",
        "bool": False,
    }[how]
    for key in ("min", "points", "point"):
        if key in data:
            value = copy.deepcopy(data[key])
            if key == "points":
                value[-1][0] = bad
            else:
                value[0] = bad
            with pytest.raises(InvalidInput) as exc:
                parse_annotation({**data, key: value}, index=3, ctx=VOLUME)
            assert exc.value.errors[0]["field"].startswith(f"annotations[3].{key}")
            return
