"""Shared helpers of the ``test_dicom_read*`` modules (no tests here): the sample lists,
crafted Part 10 files and the clean-refusal check.

Reference values come from independent paths: pydicom's own ``dcmread``/``pixel_array``,
Pillow decoding the JPEG / JPEG 2000 codestreams, the geometry module. Every hostile file
must raise the documented ``MedlabelError`` subclass (never another exception type) with a
message free of values from the file, and memory must stay bounded (``tracemalloc``):
``raises_cleanly`` checks all three.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info

from medlabel.domain.errors import MedlabelError
from medlabel.imaging import dicom
from medlabel.imaging.dicom import DicomLimits
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


def quietly(fn: Callable[[], Any]) -> Any:
    """Run a *reference* computation (pydicom's own) with its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def read_dicom(path: Path, limits: DicomLimits = LIMITS) -> Dataset:
    return dicom.read_dataset(path, limits)


def decode_file(path: Path, **kw: Any) -> np.ndarray:
    return dicom.decode_frames(read_dicom(path), LIMITS, **kw)


def reference_frames(path: Path) -> np.ndarray:
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

    return quietly(run)


def save_part10(ds: Dataset, path: Path) -> Path:
    quietly(lambda: ds.save_as(path, enforce_file_format=True))
    return path


def pydicom_read(path: Path) -> Dataset:
    return quietly(lambda: pydicom.dcmread(path))


def part10(
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


def explicit_element(group: int, element: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR"):
        return struct.pack("<HH2s2xL", group, element, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def tiny_image(*extra: bytes, rows: int = 2, columns: int = 2) -> bytes:
    """A minimal 8-bit monochrome image dataset (elements in tag order with ``extra``)."""
    elements = [
        explicit_element(0x0008, 0x0016, "UI", b"1.2.840.10008.5.1.4.1.1.7"),
        explicit_element(0x0008, 0x0018, "UI", b"1.2.3.4"),
        explicit_element(0x0028, 0x0002, "US", struct.pack("<H", 1)),
        explicit_element(0x0028, 0x0004, "CS", b"MONOCHROME2"),
        explicit_element(0x0028, 0x0010, "US", struct.pack("<H", rows)),
        explicit_element(0x0028, 0x0011, "US", struct.pack("<H", columns)),
        explicit_element(0x0028, 0x0100, "US", struct.pack("<H", 8)),
        explicit_element(0x0028, 0x0101, "US", struct.pack("<H", 8)),
        explicit_element(0x0028, 0x0102, "US", struct.pack("<H", 7)),
        explicit_element(0x0028, 0x0103, "US", struct.pack("<H", 0)),
        explicit_element(0x7FE0, 0x0010, "OB", bytes(range(rows * columns))),
        *extra,
    ]
    return b"".join(sorted(elements, key=lambda e: struct.unpack_from("<HH", e)))


def write_upload(tmp_path: Path, data: bytes, name: str = "upload.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def raises_cleanly(
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


def read_everything(path: Path, limits: DicomLimits = LIMITS) -> None:
    ds = dicom.read_dataset(path, limits)
    dicom.instance_info(ds)
    dicom.check_pixel_module(ds, limits)
    dicom.decode_frames(ds, limits)
