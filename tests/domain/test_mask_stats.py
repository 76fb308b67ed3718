"""Mask statistics in physical units, against hand-computed values and a brute force."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medlabel.domain import mask_stats
from medlabel.domain.errors import InvalidInput
from medlabel.domain.mask_stats import label_stats, slice_areas

SPACING = (0.5, 2.0, 3.0)  # (di, dj, dk): one voxel is 3 mm^3


def small_volume() -> np.ndarray:
    vol = np.zeros((3, 4, 5), dtype=np.uint8)  # (k, j, i)
    vol[0, 1, 2] = 1
    vol[0, 1, 3] = 1
    vol[2, 3, 4] = 1
    vol[1, 0, 0] = 1
    vol[2, 2, 1] = 9
    return vol


def test_counts_volumes_boxes_and_centroids_by_hand() -> None:
    stats = label_stats(small_volume(), SPACING)
    assert list(stats) == [1, 9]
    one = stats[1]
    assert one["voxels"] == 4
    assert one["volume_mm3"] == pytest.approx(12.0)
    assert one["volume_ml"] == pytest.approx(0.012)
    # voxels (i, j, k): (2, 1, 0), (3, 1, 0), (4, 3, 2), (0, 0, 1)
    assert one["bbox_min"] == [0, 0, 0]
    assert one["bbox_max"] == [4, 3, 2]
    assert one["centroid_index"] == pytest.approx([9 / 4, 5 / 4, 3 / 4])
    assert "mean" not in one, "no intensity statistics without intensities"
    nine = stats[9]
    assert nine["voxels"] == 1
    assert nine["volume_ml"] == pytest.approx(0.003)
    assert nine["bbox_min"] == nine["bbox_max"] == [1, 2, 2]
    assert nine["centroid_index"] == [1.0, 2.0, 2.0]


def test_intensity_statistics_by_hand() -> None:
    vol = small_volume()
    hu = np.zeros(vol.shape, dtype=np.int16)
    hu[0, 1, 2], hu[0, 1, 3], hu[2, 3, 4], hu[1, 0, 0] = 1, 2, 3, 10
    hu[2, 2, 1] = -1000
    hu[vol == 0] = 500  # background never counts
    stats = label_stats(vol, SPACING, intensities=hu)
    one, nine = stats[1], stats[9]
    assert (one["mean"], one["min"], one["max"], one["median"]) == (4.0, 1.0, 10.0, 2.5)
    assert one["std"] == pytest.approx(math.sqrt(12.5))
    assert one["voxels"] == 4
    assert (nine["mean"], nine["std"], nine["min"], nine["max"], nine["median"]) == (
        -1000.0,
        0.0,
        -1000.0,
        -1000.0,
        -1000.0,
    )
    # an absent label asked for has None statistics
    absent = label_stats(vol, SPACING, intensities=hu, labels=[3])[3]
    assert (absent["mean"], absent["median"], absent["voxels"]) == (None, None, 0)


def test_float_intensities_keep_their_precision() -> None:
    vol = np.ones((1, 1, 4), dtype=np.uint8)
    values = np.array([[[1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4]]])
    got = label_stats(vol, (1, 1, 1), intensities=values)[1]
    assert got["std"] == pytest.approx(math.sqrt(1.25), rel=1e-9)
    assert got["median"] == 1e9 + 2.5


def test_requested_labels_restrict_and_extend_the_result() -> None:
    stats = label_stats(small_volume(), SPACING, labels=[9, 200])
    assert list(stats) == [9, 200]
    assert stats[9]["voxels"] == 1
    assert stats[200] == {
        "voxels": 0,
        "volume_mm3": 0.0,
        "volume_ml": 0.0,
        "bbox_min": None,
        "bbox_max": None,
        "centroid_index": None,
    }
    assert label_stats(np.zeros((2, 2, 2), np.uint8), SPACING) == {}


def test_bool_volumes_are_label_one() -> None:
    vol = np.zeros((2, 3, 3), dtype=bool)
    vol[1, 1:, 1:] = True
    stats = label_stats(vol, (1.0, 1.0, 2.5))
    assert stats[1]["voxels"] == 4
    assert stats[1]["volume_mm3"] == 10.0
    assert stats[1]["centroid_index"] == [1.5, 1.5, 1.0]


def brute_force(
    vol: np.ndarray, spacing: tuple[float, float, float], hu: np.ndarray
) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for label in np.unique(vol):
        if label == 0:
            continue
        k, j, i = np.nonzero(vol == label)
        values = hu[vol == label].astype(np.float64)
        out[int(label)] = {
            "voxels": k.size,
            "volume_mm3": k.size * spacing[0] * spacing[1] * spacing[2],
            "bbox_min": [int(i.min()), int(j.min()), int(k.min())],
            "bbox_max": [int(i.max()), int(j.max()), int(k.max())],
            "centroid_index": [i.mean(), j.mean(), k.mean()],
            "intensity": (
                values.mean(),
                values.std(),
                values.min(),
                values.max(),
                np.median(values),
            ),
        }
    return out


@st.composite
def labelled_volumes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = 255 if dtype is np.uint8 else 65535
    palette = rng.integers(1, top + 1, size=draw(st.integers(1, 12)))
    labels = np.where(rng.random(shape) < 0.5, 0, rng.choice(palette, size=shape))
    hu = rng.normal(40, 300, size=shape)
    return labels.astype(dtype), hu


@settings(max_examples=150, deadline=None)
@given(
    labelled_volumes(),
    st.tuples(*(st.floats(0.1, 5.0) for _ in range(3))),
    st.sampled_from([1 << 22, 7, 1]),
)
def test_matches_a_brute_force_per_label(
    data: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float], chunk: int
) -> None:
    vol, hu = data
    original = mask_stats._CHUNK_VOXELS
    mask_stats._CHUNK_VOXELS = chunk  # also exercise row chunks within slices
    try:
        got = label_stats(vol, spacing, intensities=hu)
    finally:
        mask_stats._CHUNK_VOXELS = original
    want = brute_force(vol, spacing, hu)
    assert list(got) == sorted(want)
    for label, w in want.items():
        g = got[label]
        assert g["voxels"] == w["voxels"]
        assert g["volume_mm3"] == pytest.approx(w["volume_mm3"])
        assert g["volume_ml"] == pytest.approx(w["volume_mm3"] / 1000)
        assert g["bbox_min"] == w["bbox_min"]
        assert g["bbox_max"] == w["bbox_max"]
        assert g["centroid_index"] == pytest.approx(w["centroid_index"])
        assert (g["mean"], g["std"], g["min"], g["max"], g["median"]) == pytest.approx(
            w["intensity"]
        )


def test_slice_areas_by_hand() -> None:
    vol = small_volume()
    assert slice_areas(vol, 1, (0.5, 2.0)) == [2.0, 1.0, 1.0]
    assert slice_areas(vol, 9, SPACING) == [0.0, 0.0, 1.0]
    assert slice_areas(vol, 42, SPACING) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: label_stats(np.zeros((2, 2), np.uint8), SPACING), "slices, rows, columns"),
        (lambda: label_stats(np.zeros((1, 2, 2), np.int32), SPACING), "uint8 or uint16"),
        (lambda: label_stats(small_volume(), (1.0, 1.0)), "di, dj, dk"),
        (lambda: label_stats(small_volume(), (1.0, -1.0, 1.0)), "positive"),
        (lambda: label_stats(small_volume(), (1.0, float("inf"), 1.0)), "positive"),
        (lambda: label_stats(small_volume(), SPACING, labels=[0]), "0 is background"),
        (lambda: label_stats(small_volume(), SPACING, labels=[256]), "from 1 to 255"),
        (
            lambda: label_stats(small_volume(), SPACING, intensities=np.zeros((3, 4, 4))),
            "labelmap's shape",
        ),
        (
            lambda: label_stats(
                small_volume(), SPACING, intensities=np.zeros((3, 4, 5), dtype=complex)
            ),
            "real-valued",
        ),
        (lambda: slice_areas(small_volume(), 0, (1.0, 1.0)), "0 is background"),
        (lambda: slice_areas(small_volume(), 1, (1.0,)), "di, dj"),
    ],
)
def test_rejections(call: object, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        call()  # type: ignore[operator]
