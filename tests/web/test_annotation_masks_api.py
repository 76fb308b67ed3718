"""Masks over HTTP on a real CT volume: binary slices, partial updates, exact round trips,
interpolation, contours, statistics in mL and HU, and malformed bodies (case 32)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlabel.domain.raster import rasterize_polygon
from tests.conftest import Api, add_member
from tests.web.annotation_support import ct_files, ingest, items_by_kind, set_schema

ROWS = COLUMNS = 512
SLICES = 12


@pytest.fixture
def setup(
    admin: Api, project: str, samples: Path, make_user: Callable[..., Api]
) -> tuple[Api, dict[str, Any], dict[str, int], int]:
    values = set_schema(admin, project)
    ingest(admin, project, ct_files(samples))
    ct = items_by_kind(admin, project)["volume"]
    alice = make_user("alice")
    add_member(admin, project, "alice", "annotator")
    made = alice.post(f"/api/items/{ct['id']}/annotation-sets")
    assert made.status_code == 201
    return alice, ct, values, int(made.json()["id"])


def disc(cx: float, cy: float, r: float, value: int = 1) -> np.ndarray:
    j, i = np.mgrid[0:ROWS, 0:COLUMNS]
    return (((i - cx) ** 2 + (j - cy) ** 2) <= r * r).astype(np.uint8) * value


def put(api: Api, sid: int, body: bytes, base: int, **params: Any):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.put(
        f"/api/annotation-sets/{sid}/masks/lesions?{query}",
        content=body,
        headers={"Content-Type": "application/octet-stream", "If-Match": f'"v{base}"'},
    )


def get(api: Api, sid: int, **params: Any) -> np.ndarray:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = api.get(f"/api/annotation-sets/{sid}/masks/lesions?{query}")
    assert response.status_code == 200, response.text
    shape = tuple(int(n) for n in response.headers["x-mask-shape"].split(","))
    data = response.content
    dtype = response.headers["x-mask-dtype"]
    if response.headers["x-mask-encoding"] == "zlib":
        data = zlib.decompress(data)
    if response.headers["x-mask-encoding"] == "rle":  # (value, run) uint32 pairs
        pairs = np.frombuffer(data, dtype="<u4").reshape(-1, 2)
        return np.repeat(pairs[:, 0], pairs[:, 1]).astype(dtype).reshape(shape)
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def test_one_slice_then_another_round_trip_exactly(setup: Any) -> None:
    alice, _, values, sid = setup
    nodule = values["nodule"]
    plane = disc(250, 260, 18, nodule)
    first = put(alice, sid, zlib.compress(plane.tobytes()), 0, start=4, count=1)
    assert first.status_code == 201, first.text
    assert first.headers["etag"] == '"v1"' and first.json()["changed_slices"] == [4]
    [mask] = first.json()["masks"]
    assert mask["shape"] == [SLICES, ROWS, COLUMNS] and mask["labels"] == [nodule]
    assert "manifest" not in mask

    vessel = disc(100, 100, 5, values["vessel"])
    second = put(alice, sid, vessel.tobytes(), 1, start=7, count=1, encoding="raw")
    assert second.status_code == 201, second.text
    volume = get(alice, sid)
    assert volume.shape == (SLICES, ROWS, COLUMNS)
    assert np.array_equal(volume[4], plane) and np.array_equal(volume[7], vessel)
    assert not volume[[0, 1, 2, 3, 5, 6, 8, 9, 10, 11]].any()
    # The first revision still has only the nodule.
    old = get(alice, sid, revision=1, start=7, count=1)
    assert not old.any()
    history = alice.get(f"/api/annotation-sets/{sid}/revisions").json()
    assert [h["summary"]["slices"] for h in history] == [[4], [7]]


def test_a_full_volume_uploads_and_loads_exactly(setup: Any) -> None:
    alice, _, values, sid = setup
    rng = np.random.default_rng(3)
    volume = (rng.random((SLICES, ROWS, COLUMNS)) < 0.02).astype(np.uint8) * values["tumour"]
    volume[3] = disc(256, 256, 40, values["nodule"])
    body = zlib.compress(volume.tobytes(), 1)
    response = put(alice, sid, body, 0)
    assert response.status_code == 201, response.text
    assert response.json()["changed_slices"] == list(range(SLICES))
    assert np.array_equal(get(alice, sid), volume)
    assert np.array_equal(get(alice, sid, encoding="rle", start=2, count=3), volume[2:5])


def test_rle_upload(setup: Any) -> None:
    alice, _, values, sid = setup
    plane = disc(300, 200, 9, values["nodule"]).ravel()
    change = np.flatnonzero(np.diff(plane)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [plane.size]]))
    pairs = np.stack([plane[starts].astype("<u4"), lengths.astype("<u4")], axis=1)
    response = put(alice, sid, pairs.tobytes(), 0, start=0, count=1, encoding="rle")
    assert response.status_code == 201, response.text
    assert np.array_equal(get(alice, sid, start=0, count=1)[0].ravel(), plane)


BAD_BODIES: list[tuple[str, bytes, dict[str, Any], int, str]] = [
    ("raw too short", b"\x00" * 100, {"encoding": "raw", "count": 1}, 422, "262144"),
    (
        "rle sum too small",
        np.array([0, 5], "<u4").tobytes(),
        {"encoding": "rle", "count": 1},
        422,
        "5",
    ),
    ("rle odd length", b"\x00" * 12, {"encoding": "rle", "count": 1}, 422, ""),
    ("not zlib", b"this is not zlib", {"encoding": "zlib", "count": 1}, 422, "zlib"),
    (
        "zlib bomb",
        zlib.compress(b"\x00" * (64 * 1024 * 1024), 9),
        {"encoding": "zlib", "count": 1},
        422,
        "",
    ),
    ("slices beyond the volume", b"", {"start": 12, "count": 1}, 422, "slices"),
    ("unknown class value", zlib.compress(bytes([77]) * ROWS * COLUMNS), {"count": 1}, 422, "77"),
    ("wrong dtype", b"", {"count": 1, "dtype": "uint16"}, 422, ""),
]


@pytest.mark.parametrize(
    "name, body, params, status, needle", BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_malformed_mask_bodies_are_refused(
    setup: Any, name: str, body: bytes, params: dict[str, Any], status: int, needle: str
) -> None:
    alice, _, _, sid = setup
    if name == "wrong dtype":
        ok = put(alice, sid, zlib.compress(bytes(ROWS * COLUMNS)), 0, count=1)
        assert ok.status_code == 201
        response = put(alice, sid, zlib.compress(bytes(2 * ROWS * COLUMNS)), 1, **params)
    else:
        response = put(alice, sid, body, 0, **params)
    assert response.status_code == status, response.text
    assert needle in response.text
    assert alice.get(f"/api/annotation-sets/{sid}").json()["revision"] == (
        1 if name == "wrong dtype" else 0
    )


def test_content_type_and_stale_base(setup: Any) -> None:
    alice, _, values, sid = setup
    plane = zlib.compress(disc(250, 250, 5, values["nodule"]).tobytes())
    wrong = alice.put(
        f"/api/annotation-sets/{sid}/masks/lesions?count=1",
        content=plane,
        headers={"Content-Type": "text/plain", "If-Match": '"v0"'},
    )
    assert wrong.status_code == 415
    assert put(alice, sid, plane, 0, count=1).status_code == 201
    stale = put(alice, sid, plane, 0, start=1, count=1)
    assert stale.status_code == 409 and stale.json()["current_revision"] == 1
    no_base = alice.put(
        f"/api/annotation-sets/{sid}/masks/lesions?count=1",
        content=plane,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert no_base.status_code == 428


def test_interpolation_fills_the_slices_between_key_slices(setup: Any) -> None:
    alice, _, values, sid = setup
    nodule = values["nodule"]
    volume = np.zeros((SLICES, ROWS, COLUMNS), np.uint8)
    volume[2] = disc(200, 200, 10, nodule)
    volume[8] = disc(200, 200, 22, nodule)
    assert put(alice, sid, zlib.compress(volume.tobytes()), 0).status_code == 201
    response = alice.post(
        f"/api/annotation-sets/{sid}/masks/lesions/interpolate",
        json={"value": nodule},
        headers={"If-Match": '"v1"'},
    )
    assert response.status_code == 201, response.text
    assert response.json()["changed_slices"] == [3, 4, 5, 6, 7]
    filled = get(alice, sid)
    areas = [int((filled[k] == nodule).sum()) for k in range(2, 9)]
    assert areas == sorted(areas) and areas[0] < areas[3] < areas[6]
    expected_mid = np.pi * 16**2  # radius halfway between 10 and 22
    assert areas[3] == pytest.approx(expected_mid, rel=0.1)
    assert not filled[:2].any() and not filled[9:].any()


def test_statistics_in_millilitres_and_hounsfield_units(setup: Any) -> None:
    alice, ct, values, sid = setup
    nodule = values["nodule"]
    volume = np.zeros((SLICES, ROWS, COLUMNS), np.uint8)
    for k in (5, 6, 7):
        volume[k] = disc(256, 300, 15, nodule)
    assert put(alice, sid, zlib.compress(volume.tobytes()), 0).status_code == 201
    stats = alice.get(f"/api/annotation-sets/{sid}/masks/lesions/statistics")
    assert stats.status_code == 200, stats.text
    body = stats.json()
    row = body["labels"][str(nodule)]
    di, dj, dk = ct["geometry"]["spacing_mm"]
    count = int((volume == nodule).sum())
    assert row["voxels"] == count
    assert row["volume_ml"] == pytest.approx(count * di * dj * dk / 1000)
    raw = alice.get(f"/api/items/{ct['id']}/frames/raw?start=5&count=3")
    assert raw.status_code == 200, raw.text
    hu = np.frombuffer(raw.content, dtype=raw.headers["x-dtype"]).reshape(3, ROWS, COLUMNS)
    inside = hu[volume[5:8] == nodule].astype(float)
    assert row["mean"] == pytest.approx(inside.mean())
    assert row["min"] == inside.min() and row["max"] == inside.max()


def test_contours_rasterise_back_to_the_slice(setup: Any) -> None:
    alice, _, values, sid = setup
    plane = disc(120, 140, 12, values["nodule"])
    plane[130:134, 116:124] = 0  # a hole
    plane[300:310, 300:305] = values["vessel"]
    assert put(alice, sid, zlib.compress(plane.tobytes()), 0, start=6, count=1).status_code == 201
    response = alice.get(f"/api/annotation-sets/{sid}/masks/lesions/contours?slice=6")
    assert response.status_code == 200, response.text
    rebuilt = np.zeros_like(plane)
    for poly in response.json()["polygons"]:
        filled = rasterize_polygon(poly["points"], poly["holes"], ROWS, COLUMNS)
        rebuilt[filled] = poly["value"]
    assert np.array_equal(rebuilt, plane)


def test_delete_a_mask_keeps_it_in_history(setup: Any) -> None:
    alice, _, values, sid = setup
    plane = zlib.compress(disc(250, 250, 5, values["nodule"]).tobytes())
    assert put(alice, sid, plane, 0, count=1).status_code == 201
    gone = alice.delete(f"/api/annotation-sets/{sid}/masks/lesions", headers={"If-Match": '"v1"'})
    assert gone.status_code == 201, gone.text
    assert gone.json()["masks"] == []
    assert alice.get(f"/api/annotation-sets/{sid}/masks/lesions").status_code == 404
    assert get(alice, sid, revision=1, start=0, count=1).any()
