"""NIfTI reading: geometry and voxel order against nibabel on real files, and hostile headers."""

from __future__ import annotations

import gzip
import math
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging.nifti import NiftiLimits, NiftiVolume, read_nifti

REAL_FILES = [
    "nibabel/anatomical.nii",
    "nibabel/functional.nii",
    "nibabel/example4d.nii.gz",
    "itk/KmeansTest_T1UCharRaw.nii.gz",
    "itk/KmeansTest_T1KmeansPrelimSegmentation.nii.gz",
    "mricron/aal.nii.gz",
    "mricron/ch2.nii.gz",
]
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
PHI = "Jane Doe 1962"


def _real(samples: Path, name: str) -> Path:
    path = samples / name
    if not path.is_file():
        pytest.skip(f"{name} is not in this data tier")
    return path


def _write(path: Path, data: np.ndarray, header: nib.Nifti1Header | None = None) -> Path:
    image = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]), header=header, dtype=data.dtype)
    nib.save(image, path)
    return path


def _header_bytes(header: nib.Nifti1Header) -> bytes:
    """A single-file NIfTI-1 header plus the 4-byte extension flag (352 bytes)."""
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4


# -- real files -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_FILES)
def test_geometry_equals_nibabel_affine_in_lps(samples: Path, name: str) -> None:
    path = _real(samples, name)
    volume = read_nifti(path)
    reference = nib.load(path)
    expected = LPS_FROM_RAS @ reference.affine
    np.testing.assert_allclose(volume.geometry.index_to_patient_matrix(), expected, atol=1e-4)
    assert volume.geometry.shape == tuple(reference.shape[:3])
    corners = np.array([[0, 0, 0], [n - 1 for n in reference.shape[:3]], [3, 1, 2]], float)
    mapped = nib.affines.apply_affine(expected, corners)
    np.testing.assert_allclose(volume.geometry.index_to_patient(corners), mapped, atol=1e-3)


@pytest.mark.parametrize("name", REAL_FILES)
def test_frames_are_k_j_i_of_nibabel_i_j_k(samples: Path, name: str) -> None:
    path = _real(samples, name)
    volume = read_nifti(path)
    reference = np.asarray(nib.load(path).get_fdata())
    if reference.ndim == 3:
        reference = reference[..., np.newaxis]
    ni, nj, nk, nt = reference.shape
    assert volume.voxels.shape == (nt, nk, nj, ni)
    frames = volume.frames(nt - 1)
    assert frames.shape == (nk, nj, ni)
    rng = np.random.default_rng(7)
    for i, j, k in zip(
        rng.integers(0, ni, 50), rng.integers(0, nj, 50), rng.integers(0, nk, 50), strict=True
    ):
        assert frames[k, j, i] == pytest.approx(reference[i, j, k, nt - 1], rel=1e-6, abs=1e-4)
    np.testing.assert_allclose(volume.data.reshape(reference.shape), reference, rtol=1e-6)
    assert not volume.voxels.flags.writeable


def test_dtype_is_kept_for_unscaled_files(samples: Path) -> None:
    anatomical = read_nifti(_real(samples, "nibabel/anatomical.nii"))
    labels = read_nifti(_real(samples, "itk/KmeansTest_T1KmeansPrelimSegmentation.nii.gz"))
    assert anatomical.voxels.dtype == np.int16 and not anatomical.scaled
    assert labels.voxels.dtype == np.uint8
    assert anatomical.affine_source == "sform"


def test_scaled_file_becomes_float32(samples: Path) -> None:
    path = _real(samples, "nibabel/functional.nii")
    volume = read_nifti(path)
    assert volume.scaled and volume.voxels.dtype == np.float32
    assert volume.stored_dtype == "int16"


def test_4d_series(samples: Path) -> None:
    path = _real(samples, "nibabel/example4d.nii.gz")
    volume = read_nifti(path)
    reference = np.asarray(nib.load(path).dataobj)
    assert volume.timepoints == 2
    assert volume.geometry.shape == (128, 96, 24)
    for t in range(2):
        np.testing.assert_array_equal(volume.frames(t), reference[..., t].transpose(2, 1, 0))
    assert volume.time_step_s is not None and volume.time_step_s > 0
    with pytest.raises(InvalidInput):
        volume.frames(2)


def test_label_intent_is_reported_by_code(samples: Path) -> None:
    volume = read_nifti(_real(samples, "mricron/aal.nii.gz"))
    assert (volume.intent.code, volume.intent.name) == (1002, "label")


# -- text fields and extensions are never exposed -------------------------------------------


def test_text_fields_and_extensions_are_not_exposed(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    header = nib.Nifti1Header()
    image = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]), header=header)
    image.header["descrip"] = PHI.encode()
    image.header["aux_file"] = b"JaneDoe.nii"
    image.header["intent_name"] = b"Jane"
    image.header["db_name"] = b"Doe"
    image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", PHI.encode() * 10))
    path = tmp_path / "Jane_Doe_MRN123.nii"
    nib.save(image, path)
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.data, data)
    exposed = repr(volume) + repr(volume.intent) + repr(vars(volume))
    for needle in ("Jane", "Doe", "MRN123", "1962"):
        assert needle not in exposed
    assert set(NiftiVolume.__dataclass_fields__) == {
        "geometry",
        "voxels",
        "intent",
        "affine_source",
        "stored_dtype",
        "scaled",
        "time_step_s",
    }


# -- hostile and broken headers -------------------------------------------------------------


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    zeros = gzip.compress(b"\x00" * 2**20, compresslevel=9)
    first = gzip.compress(_header_bytes(header) + bytes(64) + b"\x00" * 2**20)
    bomb = tmp_path / "bomb.nii.gz"
    bomb.write_bytes(first + zeros * 1023)  # a ~1 MB file that inflates to 1 GiB
    assert bomb.stat().st_size < 4 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge) as caught:
            read_nifti(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20
    assert "gzip bomb" in str(caught.value)


def test_trailing_bytes_within_the_margin_are_accepted(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    path = tmp_path / "padded.nii.gz"
    data = np.arange(64, dtype=np.uint8)
    path.write_bytes(gzip.compress(_header_bytes(header) + data.tobytes() + bytes(1000)))
    volume = read_nifti(path, NiftiLimits(trailing_bytes_allowed=1000))
    np.testing.assert_array_equal(volume.voxels.ravel(), data)
    with pytest.raises(TooLarge):
        read_nifti(path, NiftiLimits(trailing_bytes_allowed=999))


@pytest.mark.parametrize("compressed", [False, True])
def test_header_claiming_2_to_the_40_voxels_is_refused(tmp_path: Path, compressed: bool) -> None:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header["dim"] = [3, 16384, 8192, 8192, 1, 1, 1, 1]
    assert math.prod(int(d) for d in header["dim"][1:4]) == 2**40
    payload = _header_bytes(header) + bytes(4096)
    path = tmp_path / ("huge.nii.gz" if compressed else "huge.nii")
    path.write_bytes(gzip.compress(payload) if compressed else payload)
    with pytest.raises(TooLarge, match="voxels"):
        read_nifti(path)


def test_byte_cap_is_checked_before_reading(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.nii", np.zeros((8, 8, 8), np.float64))
    with pytest.raises(TooLarge):
        read_nifti(path, NiftiLimits(max_data_bytes=8 * 8 * 8 * 8 - 1))


@pytest.mark.parametrize("value", [math.nan, 0.0, -1.5, math.inf])
def test_bad_pixdim_is_invalid(tmp_path: Path, value: float) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    header["pixdim"][2] = value
    path = tmp_path / "pixdim.nii"
    path.write_bytes(_header_bytes(header) + bytes(64))
    with pytest.raises(InvalidInput, match="pixdim"):
        read_nifti(path)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_sform_is_invalid(tmp_path: Path, value: float) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    header.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    header["srow_y"][3] = value
    path = tmp_path / "sform.nii"
    path.write_bytes(_header_bytes(header) + bytes(64))
    with pytest.raises(InvalidInput, match="sform"):
        read_nifti(path)


def test_singular_sform_is_invalid(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    header.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)
    path = tmp_path / "sform0.nii"
    path.write_bytes(_header_bytes(header) + bytes(64))
    with pytest.raises(InvalidInput):
        read_nifti(path)


def test_truncated_file_is_invalid_and_does_not_name_the_file(
    samples: Path, tmp_path: Path
) -> None:
    whole = _real(samples, "nibabel/anatomical.nii").read_bytes()
    path = tmp_path / "Jane_Doe_MRN123.nii"
    path.write_bytes(whole[:-100])
    with pytest.raises(InvalidInput, match="truncated") as caught:
        read_nifti(path)
    assert "Jane" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    path.write_bytes(whole[:200])
    with pytest.raises(InvalidInput, match="truncated"):
        read_nifti(path)


def test_truncated_gzip_is_invalid(samples: Path, tmp_path: Path) -> None:
    whole = _real(samples, "itk/KmeansTest_T1UCharRaw.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidInput):
        read_nifti(path)


def test_not_nifti_is_unsupported(samples: Path, tmp_path: Path) -> None:
    with pytest.raises(Unsupported):
        read_nifti(_real(samples, "skimage/microaneurysms.png"))
    header = nib.Nifti1Header()
    header["magic"] = b"ni1"
    pair = tmp_path / "pair.hdr"
    pair.write_bytes(header.binaryblock)
    with pytest.raises(Unsupported, match="pair"):
        read_nifti(pair)


def test_complex_and_5d_are_unsupported(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="datatype"):
        read_nifti(_write(tmp_path / "c.nii", np.zeros((2, 2, 2), np.complex64)))
    with pytest.raises(Unsupported, match="5D"):
        read_nifti(_write(tmp_path / "five.nii", np.zeros((2, 2, 2, 2, 2), np.int16)))


# -- dtypes, scaling, byte order ------------------------------------------------------------


def test_integral_scaling_keeps_an_integer_type(tmp_path: Path) -> None:
    stored = np.array([0, 100, 2000, 4095], np.uint16).reshape(2, 2, 1)
    header = nib.Nifti1Header()
    header.set_slope_inter(1.0, -1024.0)
    image = nib.Nifti1Image(stored, np.eye(4), header=header)
    image.header.set_data_dtype(np.uint16)
    image.header.set_slope_inter(1.0, -1024.0)
    path = tmp_path / "ct.nii"
    nib.save(image, path)
    volume = read_nifti(path)
    assert volume.scaled and volume.voxels.dtype == np.int16
    np.testing.assert_array_equal(volume.data, stored.astype(np.int32) - 1024)


def test_wide_integers_narrow_to_what_the_values_need(tmp_path: Path) -> None:
    labels = read_nifti(_write(tmp_path / "l.nii", np.array([[[0, 7, 200]]], np.int32)))
    assert labels.voxels.dtype == np.uint8
    signed = read_nifti(_write(tmp_path / "s.nii", np.array([[[-5, 7, 30000]]], np.int64)))
    assert signed.voxels.dtype == np.int16
    wide = read_nifti(_write(tmp_path / "w.nii", np.array([[[0, 70000]]], np.int32)))
    assert wide.voxels.dtype == np.float32
    np.testing.assert_array_equal(wide.data, [[[0, 70000]]])
    small = read_nifti(_write(tmp_path / "i8.nii", np.array([[[-128, 127]]], np.int8)))
    assert small.voxels.dtype == np.int16


def test_big_endian_file(tmp_path: Path) -> None:
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5) - 30
    path = _write(tmp_path / "be.nii", data.astype(">i2"), nib.Nifti1Header(endianness=">"))
    assert nib.load(path).header.endianness == ">"
    volume = read_nifti(path)
    assert volume.voxels.dtype == np.dtype("=i2")
    np.testing.assert_array_equal(volume.data, data)


def test_units_in_metres_become_millimetres(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.diag([0.001, 0.002, 0.003, 1.0]))
    image.header.set_xyzt_units("meter")
    path = tmp_path / "m.nii"
    nib.save(image, path)
    assert read_nifti(path).geometry.spacing_mm == pytest.approx((1.0, 2.0, 3.0))


def test_no_affine_codes_fall_back_to_pixdim(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    header["pixdim"][1:4] = [0.5, 0.75, 3.0]
    header["sform_code"] = 0
    header["qform_code"] = 0
    path = tmp_path / "analyze-like.nii"
    path.write_bytes(_header_bytes(header) + bytes(64))
    volume = read_nifti(path)
    assert volume.affine_source == "pixdim"
    assert volume.geometry.spacing_mm == pytest.approx((0.5, 0.75, 3.0))
    assert volume.geometry.origin_mm == (0.0, 0.0, 0.0)


def test_nifti2_file(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4 * 2, dtype=np.uint16).reshape(2, 3, 4, 2)
    affine = np.array([[0, 0, 2.0, 10], [1.5, 0, 0, -5], [0, 1.0, 0, 3], [0, 0, 0, 1]])
    path = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti2Image(data, affine, dtype=np.uint16), path)
    volume = read_nifti(path)
    assert volume.timepoints == 2 and volume.voxels.dtype == np.uint16
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.geometry.index_to_patient_matrix(), LPS_FROM_RAS @ affine)


def test_nifti2_header_claiming_2_to_the_40_voxels_is_refused(tmp_path: Path) -> None:
    header = nib.Nifti2Header()
    header.set_data_dtype(np.uint8)
    header["dim"] = [3, 2**20, 2**20, 1, 1, 1, 1, 1]
    header["vox_offset"] = 544
    path = tmp_path / "huge2.nii"
    path.write_bytes(header.binaryblock + bytes(4) + bytes(4096))
    with pytest.raises(TooLarge, match="voxels"):
        read_nifti(path)
