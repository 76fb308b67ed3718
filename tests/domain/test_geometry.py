"""Geometry: index <-> patient mapping, DICOM and NIfTI conventions (property-tested)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from medlabel.domain.errors import InvalidInput
from medlabel.domain.geometry import (
    Geometry,
    from_dicom,
    from_nifti_affine,
    planar,
    to_nifti_affine,
)

spacing = st.floats(min_value=0.05, max_value=20.0, allow_nan=False)
coordinate = st.floats(min_value=-1000.0, max_value=1000.0, allow_nan=False)
size = st.integers(min_value=1, max_value=2048)


@st.composite
def geometries(draw: st.DrawFn) -> Geometry:
    quat = draw(
        st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
            lambda q: sum(x * x for x in q) > 0.01
        )
    )
    rot = Rotation.from_quat(quat).as_matrix()
    flip = draw(st.sampled_from([1.0, -1.0]))  # slices ordered with or against the normal
    direction = (tuple(rot[:, 0]), tuple(rot[:, 1]), tuple(flip * rot[:, 2]))
    return Geometry(
        shape=(draw(size), draw(size), draw(size)),
        spacing_mm=(draw(spacing), draw(spacing), draw(spacing)),
        direction=direction,  # type: ignore[arg-type]
        origin_mm=(draw(coordinate), draw(coordinate), draw(coordinate)),
    )


@settings(max_examples=200, deadline=None)
@given(
    geometries(), st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=1, max_size=20)
)
def test_patient_to_index_inverts_index_to_patient(geom: Geometry, points: list) -> None:
    ijk = np.asarray(points)
    back = geom.patient_to_index(geom.index_to_patient(ijk))
    np.testing.assert_allclose(back, ijk, atol=1e-6 * (1 + np.abs(ijk).max()))


@settings(max_examples=200, deadline=None)
@given(
    geometries(),
    st.tuples(coordinate, coordinate, coordinate),
    st.sampled_from([0, 1, 2]),
    st.floats(-50, 50, allow_nan=False),
)
def test_a_step_along_an_index_axis_moves_by_the_spacing(
    geom: Geometry, start: tuple, axis: int, steps: float
) -> None:
    a = np.asarray(start, dtype=float)
    b = a.copy()
    b[axis] += steps
    distance = np.linalg.norm(geom.index_to_patient(b) - geom.index_to_patient(a))
    assert math.isclose(distance, abs(steps) * geom.spacing_mm[axis], rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=100, deadline=None)
@given(geometries())
def test_nifti_affine_round_trip(geom: Geometry) -> None:
    again = from_nifti_affine(to_nifti_affine(geom), geom.shape)
    np.testing.assert_allclose(
        again.index_to_patient_matrix(), geom.index_to_patient_matrix(), atol=1e-9
    )
    assert again.shape == geom.shape


@settings(max_examples=100, deadline=None)
@given(geometries(), st.tuples(coordinate, coordinate, coordinate))
def test_nifti_affine_agrees_with_nibabel_in_ras(geom: Geometry, point: tuple) -> None:
    from nibabel.affines import apply_affine

    ras = apply_affine(to_nifti_affine(geom), point)
    lps = geom.index_to_patient(point)
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-6)


def test_dicom_conventions_by_hand() -> None:
    # An axial slice: rows run to patient left (+x), columns run posterior (+y).
    geom = from_dicom(
        512,
        400,
        3,
        image_orientation=[1, 0, 0, 0, 1, 0],
        first_position=[-100.0, -120.0, 50.0],
        pixel_spacing=[0.8, 0.6],
        slice_step_mm=(0.0, 0.0, -2.5),
        frame_of_reference_uid="1.2.3",
    )
    assert geom.shape == (512, 400, 3)
    assert geom.spacing_mm == (0.6, 0.8, 2.5)  # PixelSpacing is (row, column) spacing
    np.testing.assert_allclose(geom.index_to_patient([0, 0, 0]), [-100, -120, 50])
    np.testing.assert_allclose(geom.index_to_patient([1, 0, 0]), [-99.4, -120, 50])
    np.testing.assert_allclose(geom.index_to_patient([0, 1, 0]), [-100, -119.2, 50])
    np.testing.assert_allclose(geom.index_to_patient([0, 0, 2]), [-100, -120, 45])
    assert geom.slice_normal == (0.0, 0.0, 1.0)
    assert geom.direction[2] == (0.0, 0.0, -1.0)
    assert geom.voxel_volume_mm3 == pytest.approx(0.6 * 0.8 * 2.5)
    assert geom.is_orthogonal


def test_dicom_geometry_of_a_real_ct_slice() -> None:
    from pydicom import examples

    ds = examples.ct
    geom = from_dicom(
        ds.Columns,
        ds.Rows,
        1,
        image_orientation=ds.ImageOrientationPatient,
        first_position=ds.ImagePositionPatient,
        pixel_spacing=ds.PixelSpacing,
        slice_step_mm=None,
        frame_of_reference_uid=ds.FrameOfReferenceUID,
    )
    ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
    row_cos = np.asarray(ds.ImageOrientationPatient[:3], dtype=float)
    col_cos = np.asarray(ds.ImageOrientationPatient[3:], dtype=float)
    dj, di = (float(v) for v in ds.PixelSpacing)
    # PS3.3 C.7.6.2.1.1: P = S + col_cos * dj * r + row_cos * di * c ... with (c, r) = (i, j)
    for i, j in [(0, 0), (10, 0), (0, 7), (127, 127)]:
        expected = ipp + row_cos * di * i + col_cos * dj * j
        np.testing.assert_allclose(geom.index_to_patient([i, j, 0]), expected, atol=1e-9)


def test_gantry_tilt_gives_a_sheared_but_valid_geometry() -> None:
    tilt = math.radians(15)
    geom = from_dicom(
        64,
        64,
        10,
        image_orientation=[1, 0, 0, 0, math.cos(tilt), math.sin(tilt)],
        first_position=[0, 0, 0],
        pixel_spacing=[1, 1],
        slice_step_mm=(0.0, 0.0, 2.0),
        frame_of_reference_uid=None,
    )
    assert not geom.is_orthogonal
    back = geom.patient_to_index(geom.index_to_patient([3.0, 4.0, 5.0]))
    np.testing.assert_allclose(back, [3, 4, 5], atol=1e-9)


def test_planar_images_have_pixel_units_by_default() -> None:
    geom = planar(640, 480)
    assert geom.shape == (640, 480, 1) and geom.spacing_mm == (1.0, 1.0, 1.0)
    assert geom.frame_of_reference_uid is None
    assert geom.contains_index([639.4, 479.4, 0]) and not geom.contains_index([640, 0, 0])


@pytest.mark.parametrize(
    "bad",
    [
        {"shape": (0, 10, 10)},
        {"spacing_mm": (0.0, 1.0, 1.0)},
        {"spacing_mm": (float("nan"), 1.0, 1.0)},
        {"origin_mm": (float("inf"), 0.0, 0.0)},
        {"direction": ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0))},
        {"direction": ((2.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))},
        {"direction": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))},
    ],
)
def test_invalid_geometries_are_refused(bad: dict) -> None:
    fields = {
        "shape": (10, 10, 10),
        "spacing_mm": (1.0, 1.0, 1.0),
        "direction": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        "origin_mm": (0.0, 0.0, 0.0),
    } | bad
    with pytest.raises(InvalidInput):
        Geometry(**fields)


def test_dict_round_trip() -> None:
    geom = from_dicom(
        4,
        5,
        6,
        image_orientation=[0, 1, 0, 0, 0, -1],
        first_position=[1, 2, 3],
        pixel_spacing=[0.5, 0.25],
        slice_step_mm=(3.0, 0.0, 0.0),
        frame_of_reference_uid="2.25.1",
    )
    assert Geometry.from_dict(geom.to_dict()) == geom


def test_nifti_affine_of_a_real_file() -> None:
    import nibabel as nib
    from nibabel.testing import data_path

    img = nib.load(f"{data_path}/anatomical.nii")
    geom = from_nifti_affine(img.affine, img.shape)
    np.testing.assert_allclose(to_nifti_affine(geom), img.affine, atol=1e-6)
    centre = np.asarray(img.shape) / 2
    ras = img.affine @ np.append(centre, 1)
    lps = geom.index_to_patient(centre)
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
