"""Shape-based slice interpolation of masks."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage  # type: ignore[import-untyped, unused-ignore]

from medlabel.domain.errors import InvalidInput
from medlabel.domain.interpolate import interpolate_slices

ROWS, COLUMNS = 96, 128


def disc(cx: float, cy: float, r: float, rows: int = ROWS, columns: int = COLUMNS) -> np.ndarray:
    j, i = np.ogrid[:rows, :columns]
    return (i - cx) ** 2 + (j - cy) ** 2 <= r * r


def volume(slices: int = 11, dtype: type = np.uint8) -> np.ndarray:
    return np.zeros((slices, ROWS, COLUMNS), dtype=dtype)


def test_identical_discs_fill_every_slice_between_with_the_same_disc() -> None:
    vol = volume()
    vol[0][disc(60, 40, 12)] = 1
    vol[10][disc(60, 40, 12)] = 1
    before = vol.copy()
    out, changed = interpolate_slices(vol, 1)
    assert changed == list(range(1, 10))
    for k in range(11):
        assert np.array_equal(out[k], vol[0]), k
    assert np.array_equal(vol, before), "the input is not modified"
    assert out is not vol


def test_growing_disc_radii_are_close_to_linear() -> None:
    vol = volume()
    vol[0][disc(64, 48, 10)] = 1
    vol[10][disc(64, 48, 20)] = 1
    out, _ = interpolate_slices(vol, 1)
    for k in range(1, 10):
        r = 10 + k
        area = int(np.count_nonzero(out[k]))
        assert abs(area - math.pi * r * r) <= 0.04 * math.pi * r * r, (k, area)
        # the result is a disc: centred, and within one pixel of radius r
        assert np.array_equal(out[k] != 0, (out[k] != 0)[::-1, :][::-1, :])
        assert not np.any((out[k] != 0) & ~disc(64, 48, r + 1))
        assert np.all(out[k][disc(64, 48, r - 1)] == 1)


def test_a_shifted_disc_moves_its_centroid_linearly() -> None:
    # Shape-based interpolation needs overlapping key shapes: shift by 10 px, radius 15.
    vol = volume()
    vol[0][disc(40, 48, 15)] = 1
    vol[10][disc(50, 48, 15)] = 1
    out, _ = interpolate_slices(vol, 1)
    centres = []
    for k in range(1, 10):
        cj, ci = ndimage.center_of_mass(out[k] == 1)
        assert abs(ci - (40 + k)) <= 0.75, (k, ci)
        assert cj == pytest.approx(48.0)
        centres.append(ci)
        area = np.count_nonzero(out[k])
        assert abs(area - math.pi * 225) <= 0.1 * math.pi * 225
    assert centres == sorted(centres)
    assert centres[4] == pytest.approx(45.0)  # the middle slice is symmetric


def test_other_labels_and_existing_voxels_are_never_overwritten() -> None:
    vol = volume()
    vol[0][disc(60, 40, 12)] = 1
    vol[10][disc(60, 40, 12)] = 1
    vol[5, 30:50, 50:60] = 2  # another label inside the region
    vol[3][disc(60, 40, 3)] = 1  # this label already, on an in-between slice
    out, changed = interpolate_slices(vol, 1, key_slices=[0, 10])
    assert np.all(out[5, 30:50, 50:60] == 2)
    assert np.array_equal(out == 2, vol == 2)
    assert np.all(out[3][disc(60, 40, 3)] == 1)
    expected5 = disc(60, 40, 12) & (vol[5] == 0)
    assert np.array_equal(out[5] == 1, expected5)
    assert changed == list(range(1, 10))


def test_slices_outside_the_key_range_are_unchanged() -> None:
    vol = volume(15)
    vol[3][disc(60, 40, 10)] = 4
    vol[9][disc(62, 44, 14)] = 4
    vol[0][disc(20, 20, 5)] = 7
    vol[13][disc(20, 20, 5)] = 7
    out, changed = interpolate_slices(vol, 4)
    assert changed == [4, 5, 6, 7, 8]
    for k in [0, 1, 2, 3, 9, 10, 11, 12, 13, 14]:
        assert np.array_equal(out[k], vol[k]), k
    assert np.array_equal(out == 7, vol == 7), "other labels are not interpolated"


def test_several_key_slices_interpolate_pair_by_pair() -> None:
    vol = volume(9)
    vol[0][disc(40, 40, 8)] = 3
    vol[4][disc(40, 40, 16)] = 3
    vol[8][disc(40, 40, 8)] = 3
    out, changed = interpolate_slices(vol, 3)
    assert changed == [1, 2, 3, 5, 6, 7]
    for a, b in [(1, 7), (2, 6), (3, 5)]:
        assert np.array_equal(out[a], out[b])
    areas = [np.count_nonzero(out[k]) for k in range(5)]
    assert areas == sorted(areas)


def test_adjacent_key_slices_change_nothing() -> None:
    vol = volume(2)
    vol[0][disc(40, 40, 8)] = 1
    vol[1][disc(40, 40, 9)] = 1
    out, changed = interpolate_slices(vol, 1)
    assert changed == []
    assert np.array_equal(out, vol)


def test_binary_masks_are_supported() -> None:
    vol = np.zeros((5, ROWS, COLUMNS), dtype=bool)
    vol[0] = disc(40, 40, 8)
    vol[4] = disc(40, 40, 8)
    out, changed = interpolate_slices(vol, 1)
    assert out.dtype == np.bool_
    assert changed == [1, 2, 3]
    assert all(np.array_equal(out[k], vol[0]) for k in range(5))


def test_uint16_instance_labels() -> None:
    vol = volume(3, np.uint16)
    vol[0][disc(40, 40, 8)] = 40000
    vol[2][disc(40, 40, 8)] = 40000
    vol[1][disc(90, 60, 8)] = 12
    out, changed = interpolate_slices(vol, 40000)
    assert changed == [1]
    assert np.array_equal(out[1] == 40000, disc(40, 40, 8))
    assert np.array_equal(out[1] == 12, disc(90, 60, 8))


def test_shapes_at_the_image_border_are_kept() -> None:
    vol = volume(5)
    vol[0, :, :20] = 1  # touches three borders
    vol[4, :, :20] = 1
    out, _ = interpolate_slices(vol, 1)
    assert all(np.array_equal(out[k], vol[0]) for k in range(5))


def test_anisotropic_spacing_matches_the_transposed_problem() -> None:
    vol = np.zeros((5, 60, 60), dtype=np.uint8)
    vol[0, 25:35, 10:50] = 1  # a wide bar
    vol[4, 10:50, 25:35] = 1  # a tall bar
    a, _ = interpolate_slices(vol, 1, spacing=(1.0, 3.0))
    b, _ = interpolate_slices(vol.transpose(0, 2, 1).copy(), 1, spacing=(3.0, 1.0))
    assert np.array_equal(a, b.transpose(0, 2, 1))
    c, _ = interpolate_slices(vol, 1, spacing=(3.0, 1.0))
    assert not np.array_equal(a[2], c[2]), "the spacing changes the result"


def reference(vol: np.ndarray, label: int, spacing: tuple[float, float]) -> np.ndarray:
    """The same method without cropping: distance maps over the whole (padded) image."""
    out = vol.copy()
    keys = [k for k in range(vol.shape[0]) if np.any(vol[k] == label)]
    sampling = (spacing[1], spacing[0])

    def sdf(shape: np.ndarray) -> np.ndarray:
        p = np.pad(shape, 1)
        d = ndimage.distance_transform_edt(~p, sampling=sampling) - ndimage.distance_transform_edt(
            p, sampling=sampling
        )
        return np.asarray(d[1:-1, 1:-1])

    for k0, k1 in pairwise(keys):
        d0, d1 = sdf(vol[k0] == label), sdf(vol[k1] == label)
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            write = ((1 - t) * d0 + t * d1 < 0) & (out[k] == 0)
            out[k][write] = label
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0)),
)
def test_cropping_gives_the_same_result_as_the_whole_image(
    seed: int, spacing: tuple[float, float]
) -> None:
    rng = np.random.default_rng(seed)
    vol = np.zeros((7, 40, 50), dtype=np.uint8)
    for k in rng.choice(7, size=3, replace=False):
        r0, c0 = rng.integers(0, 35), rng.integers(0, 45)
        blob = rng.random((rng.integers(1, 15), rng.integers(1, 15))) < 0.6
        region = vol[k, r0 : r0 + blob.shape[0], c0 : c0 + blob.shape[1]]
        region[blob[: region.shape[0], : region.shape[1]]] = 1
    vol[rng.random(vol.shape) < 0.02] = 2
    if sum(np.any(vol[k] == 1) for k in range(7)) < 2:
        return
    out, _ = interpolate_slices(vol, 1, spacing=spacing)
    assert np.array_equal(out, reference(vol, 1, spacing))


@pytest.mark.parametrize(
    ("setup", "kwargs", "needle"),
    [
        ([0], {}, "at least two different slices; it is only on slice 0"),
        ([], {}, "on no slice"),
        ([0, 5], {"key_slices": [0, 3]}, "Key slice\\(s\\) 3 have no voxel of label 1"),
        ([0, 5], {"key_slices": [0, 0]}, "only on slice 0"),
        ([0, 5], {"key_slices": [0, 11]}, "outside the volume"),
        ([0, 5], {"label": 0}, "from 1 to 255"),
        ([0, 5], {"label": 256}, "from 1 to 255"),
        ([0, 5], {"spacing": (1.0, 0.0)}, "positive millimetre"),
        ([0, 5], {"spacing": (1.0,)}, "positive millimetre"),
    ],
)
def test_rejections_explain_what_to_do(
    setup: list[int], kwargs: dict[str, Any], needle: str
) -> None:
    vol = volume()
    for k in setup:
        vol[k][disc(40, 40, 5)] = 1
    label = kwargs.pop("label", 1)
    with pytest.raises(InvalidInput, match=needle):
        interpolate_slices(vol, label, **kwargs)


def test_only_labelmaps_are_accepted() -> None:
    with pytest.raises(InvalidInput, match="slices, rows, columns"):
        interpolate_slices(np.zeros((4, 4), np.uint8), 1)
    with pytest.raises(InvalidInput, match="dtype"):
        interpolate_slices(np.zeros((3, 4, 4), np.float32), 1)
