"""Reading untrusted DICOM files safely: structure, instance facts and pixels.

``read_dataset`` accepts only DICOM Part 10 files (``sniff``: preamble + ``DICM``; no
``force=True`` on arbitrary bytes) and, before pydicom reads anything, walks the element
*headers* of the whole file (values are skipped, never read): every defined length must fit
inside its container and the file, undefined lengths must end in a delimiter, sequences may
nest at most ``max_sequence_depth`` deep, hold at most ``max_sequence_items`` items and the
file at most ``max_elements`` elements and items. So a declared length of 0xFFFFFFF0 in a
small file, a truncated file, 10,000 nested sequences or 10^6 items are refused without
allocating, recursing or building objects (pydicom itself would ask CPython's buffered
``read(n)`` for the declared length, which allocates ``n`` bytes up front). pydicom then
reads only checked bytes: small files from memory, larger ones from the file, through a
bounded reader when zero padding after the dataset (seen in real files) ends it early.
Deflated datasets are inflated with a cap.

Element values are converted by pydicom lazily, on access, tolerantly (invalid DS/IS/dates/
UIDs are data; unknown character sets and invalid bytes decode with replacement). pydicom
warns when it meets such values: the functions here silence those warnings inside
themselves only; callers that read values from the returned dataset (de-identification)
must do the same.

``check_pixel_module`` and ``decode_frames`` refuse nonsense pixel modules, compute the
decoded size from the header before allocating, compare it with the limits and with the
Pixel Data actually present, and check fragments and codestream headers (``codestream``)
before a decoder runs. Every expected failure is a ``MedlabelError`` (``InvalidInput`` 422,
``Unsupported`` 415, ``TooLarge`` 413) whose message never contains a value from the file.

This module is the public face of the reading layer; the work is done in
``dicom_limits`` (limits, failure kinds, silencing pydicom), ``dicom_walk`` (the element
header walk), ``dicom_values`` (tolerant value access), ``dicom_pixel_module`` (the Image
Pixel module and its checks), ``dicom_pixels`` (decoding, colour, modality values) and
``dicom_info`` (instance facts). Reading a file and its DICOMDIR happen here.
"""

from __future__ import annotations

import io
import mmap
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import read_dataset as pydicom_read_dataset

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging.dicom_info import InstanceInfo, instance_info
from medlabel.imaging.dicom_limits import (
    PASS_THROUGH,
    DicomLimits,
    GiB,
    malformed,
    quiet,
    truncated,
)
from medlabel.imaging.dicom_pixel_module import check_pixel_module
from medlabel.imaging.dicom_pixels import decode_frames, to_modality_values
from medlabel.imaging.dicom_values import (
    Orientation,
    Vec3,
    as_dataset,
    as_int,
    as_text,
    get_value,
    is_multi,
)
from medlabel.imaging.dicom_walk import BoundedReader, HeaderWalk, vr_like
from medlabel.imaging.sniff import MEDIA_STORAGE_DIRECTORY, is_dicom_part10, parse_file_meta

__all__ = [
    "IN_MEMORY_BYTES",
    "DicomLimits",
    "GiB",
    "InstanceInfo",
    "Orientation",
    "Vec3",
    "check_pixel_module",
    "decode_frames",
    "instance_info",
    "read_dataset",
    "read_dicomdir",
    "to_modality_values",
]

IN_MEMORY_BYTES = 256 * 1024  # smaller files are read with one read(); larger ones are mapped
_IMPLICIT_LE, _EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"

# -- reading ------------------------------------------------------------------------------


def read_dataset(path: Path, limits: DicomLimits) -> Dataset:
    """The dataset of the DICOM Part 10 file at ``path``, structure-checked (see module)."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise TooLarge(
            f"The DICOM file is larger than the {limits.max_file_bytes} bytes accepted per "
            "file; split it or ask an administrator to raise the limit."
        )
    with path.open("rb") as fh:
        if size <= max(IN_MEMORY_BYTES, 4096):
            return _read_buffer(fh.read(size), fh, limits)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return _read_buffer(mapped, fh, limits)


def _read_buffer(buf: bytes | mmap.mmap, fh: BinaryIO, limits: DicomLimits) -> Dataset:
    size = len(buf)
    if not is_dicom_part10(bytes(buf[:132])):
        raise Unsupported(
            "The file is not a DICOM Part 10 file (no 'DICM' prefix after a 128-byte "
            "preamble); files are recognised by content, not by name. Export the images "
            "as DICOM files, or upload NIfTI, PNG, JPEG or TIFF."
        )
    meta = parse_file_meta(buf, size)
    if meta is None:
        raise truncated()
    syntax = meta.transfer_syntax
    with quiet():
        try:
            if syntax == _DEFLATED:
                body = _inflate(buf[meta.end :], limits.max_file_bytes)
                end = HeaderWalk(body, True, limits).top(0, len(body), implicit=False)
                return _read_deflated(bytes(buf[: meta.end]), body[:end])
            implicit, little = _encoding(syntax, buf, meta.end, size)
            end = HeaderWalk(buf, little, limits).top(meta.end, size, implicit)
            if isinstance(buf, bytes):
                with io.BytesIO(buf if end == size else buf[:end]) as stream:
                    return pydicom.dcmread(stream)  # closing it frees the file's bytes
            fh.seek(0)  # every length is checked: only a trimmed end needs the bounded view
            return pydicom.dcmread(fh if end == size else BoundedReader(fh, end))
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            raise malformed("its data elements cannot be parsed") from exc


def _encoding(syntax: str | None, buf: Any, start: int, size: int) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the dataset; guessed like pydicom without a syntax."""
    if syntax == _IMPLICIT_LE:
        return True, True
    if syntax == _EXPLICIT_BE:
        return False, False
    if syntax is None and start + 6 <= size:
        group, vr = struct.unpack_from("<H2x2s", buf, start)
        if not vr_like(vr):
            return True, True
        return False, group < 1024
    return False, True


def _read_deflated(meta_bytes: bytes, body: bytes) -> Dataset:
    head = pydicom.dcmread(io.BytesIO(meta_bytes))
    dataset = pydicom_read_dataset(io.BytesIO(body), is_implicit_VR=False, is_little_endian=True)
    ds = FileDataset(
        "", dataset, head.preamble, head.file_meta, is_implicit_VR=False, is_little_endian=True
    )
    ds.set_original_encoding(False, True, dataset.original_character_set)
    return ds


def _inflate(data: bytes | mmap.mmap, cap: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    parts, total, pending = [], 0, bytes(data)
    try:
        while True:
            out = inflater.decompress(pending, cap + 1 - total)
            parts.append(out)
            total += len(out)
            pending = inflater.unconsumed_tail
            if total > cap:
                raise TooLarge(
                    f"The deflated DICOM dataset inflates to more than {cap} bytes; send it "
                    "uncompressed or ask an administrator to raise the limit."
                )
            if not pending:
                break
        parts.append(inflater.flush())
    except zlib.error as exc:
        raise malformed("its deflated dataset cannot be inflated") from exc
    return b"".join(parts)


# -- DICOMDIR -----------------------------------------------------------------------------


def read_dicomdir(path: Path, limits: DicomLimits | None = None) -> list[Path]:
    """The files a DICOMDIR references (in use, existing regular files), in record order.

    Each ReferencedFileID is checked component by component (no empty, ``.`` or ``..``
    components, separators, drive letters or control characters) and the resolved path
    (links followed) must stay inside the DICOMDIR's folder; otherwise the whole DICOMDIR is
    refused (SECURITY.md case 11). pydicom's ``FileSet`` is deliberately not used.
    """
    ds = read_dataset(path, limits or DicomLimits())
    with quiet():
        sop_class = as_text(get_value(getattr(ds, "file_meta", None), 0x00020002))
        if sop_class != MEDIA_STORAGE_DIRECTORY:
            raise Unsupported("The file is not a DICOMDIR (a DICOM media directory).")
        records = get_value(ds, 0x00041220)
        ids = [_file_id(as_dataset(r)) for r in (records if is_multi(records) else [])]
    root = path.parent.resolve()
    found: dict[Path, None] = {}
    for parts in ids:
        if parts is None:
            continue
        target = root.joinpath(*parts).resolve()
        if not target.is_relative_to(root):
            raise _outside()
        if target.is_file():
            found.setdefault(target, None)
    return list(found)


def _file_id(record: Dataset | None) -> tuple[str, ...] | None:
    if record is None or as_int(get_value(record, 0x00041410)) == 0:  # Record In-use Flag: inactive
        return None
    value = get_value(record, 0x00041500)
    parts = tuple(str(v) for v in (value if is_multi(value) else [value]) if v is not None)
    parts = tuple(p.strip(" ") for p in parts)
    if not parts:
        return None
    for part in parts:
        bad = not part or part in (".", "..") or ":" in part or "/" in part or "\\" in part
        if bad or any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise _outside()
    return parts


def _outside() -> InvalidInput:
    return InvalidInput(
        "The DICOMDIR lists a file outside its own folder (a '..' or absolute path, or a "
        "link); it is refused. Copy the media as it is and use its DICOMDIR unchanged."
    )
