"""Recognise an uploaded file by its content, never by its name.

``sniff`` reads at most a few KB (the DICOM File Meta Information, up to 64 KB, when the
first 4 KB do not hold all of it) and decompresses at most 1 KB of a gzip stream.

Rules, in order:

- DICOM: ``DICM`` at offset 128 (a DICOM Part 10 file). Checked first, so dual-personality
  files (a TIFF or an executable in the preamble) are DICOM; the preamble is replaced on
  ingest anyway. It is a DICOMDIR when the File Meta Information's Media Storage SOP Class
  UID is the Media Storage Directory Storage class (1.2.840.10008.1.3.10).
- A dataset without the preamble and ``DICM`` ("raw" DICOM) is deliberately **not**
  recognised (``UNKNOWN``): telling it from arbitrary bytes means parsing arbitrary bytes
  as DICOM, which is what ``dcmread(force=True)`` does and SECURITY.md case 2 forbids.
  Such files must be converted to Part 10 files by the sender.
- NIfTI-1 / NIfTI-2: ``sizeof_hdr`` of 348 / 540 in either byte order and the magic string
  (``n+1``, ``ni1`` at offset 344; ``n+2``, ``ni2`` at offset 4).
- gzip whose first decompressed bytes are a NIfTI header: ``NIFTI_GZ``; any other gzip:
  ``GZIP``.
- PNG, JPEG, TIFF (classic and BigTIFF, both byte orders), ZIP (a local file header, or the
  end record of an empty archive), PDF: their magic numbers.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

HEAD_BYTES = 4096
MAX_META_BYTES = 64 * 1024
MAX_GZIP_PEEK = 1024
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_DICM_OFFSET = 128
_META_START = 132
# VRs whose length is 4 bytes after 2 reserved ones (PS3.5 7.1.2)
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


class FileKind(StrEnum):
    DICOM = "dicom"
    DICOMDIR = "dicomdir"
    NIFTI = "nifti"
    NIFTI_GZ = "nifti_gz"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    ZIP = "zip"
    GZIP = "gzip"
    PDF = "pdf"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FileMeta:
    """What the DICOM File Meta Information (group 0002) says, read without pydicom.

    ``end`` is the offset of the first byte after the group: where the dataset starts.
    UIDs are ``None`` when absent; they are data, never trusted for anything but dispatch.
    """

    end: int
    transfer_syntax: str | None
    sop_class_uid: str | None


def sniff(path: Path) -> FileKind:
    """The kind of the file at ``path``, from its first bytes (see the module docstring)."""
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
        if is_dicom_part10(head) and parse_file_meta(head, len(head)) is None:
            head += fh.read(MAX_META_BYTES - len(head))
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> FileKind:
    """The kind of a file whose first bytes are ``head`` (a few KB are enough)."""
    if is_dicom_part10(head):
        meta = parse_file_meta(head, len(head))
        if meta is not None and meta.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
            return FileKind.DICOMDIR
        return FileKind.DICOM
    if is_nifti_header(head):
        return FileKind.NIFTI
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    if head.startswith(b"\x1f\x8b"):
        return FileKind.NIFTI_GZ if is_nifti_header(_gunzip_peek(head)) else FileKind.GZIP
    return FileKind.UNKNOWN


_MAGICS: tuple[tuple[bytes, FileKind], ...] = (
    (b"\x89PNG\r\n\x1a\n", FileKind.PNG),
    (b"\xff\xd8\xff", FileKind.JPEG),
    (b"II*\x00", FileKind.TIFF),
    (b"MM\x00*", FileKind.TIFF),
    (b"II+\x00", FileKind.TIFF),  # BigTIFF
    (b"MM\x00+", FileKind.TIFF),
    (b"PK\x03\x04", FileKind.ZIP),
    (b"PK\x05\x06", FileKind.ZIP),  # an empty archive is only its end record
    (b"%PDF-", FileKind.PDF),
)


def is_dicom_part10(head: bytes) -> bool:
    """True if ``head`` has the ``DICM`` prefix after a 128-byte preamble."""
    return head[_DICM_OFFSET:_META_START] == b"DICM"


def is_nifti_header(head: bytes) -> bool:
    """True if ``head`` starts with a NIfTI-1 or NIfTI-2 header (either byte order)."""
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return 348 in struct.unpack_from("<i", head) + struct.unpack_from(">i", head)
    if len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return 540 in struct.unpack_from("<i", head) + struct.unpack_from(">i", head)
    return False


def _gunzip_peek(head: bytes) -> bytes:
    """Up to ``MAX_GZIP_PEEK`` decompressed bytes of a gzip stream; b"" if it is damaged."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, MAX_GZIP_PEEK)
    except zlib.error:
        return b""


def parse_file_meta(buf: bytes | memoryview | mmap.mmap, size: int) -> FileMeta | None:
    """Parse the File Meta Information of a Part 10 file held (at least partly) in ``buf``.

    The group is Explicit VR Little Endian by definition. Returns ``None`` when an element
    of the group runs past ``size`` (the file, or the bytes read so far, ends inside it) or
    has an undefined length. ``buf`` must start at the beginning of the file.
    """
    pos, values = _META_START, {}
    while pos + 8 <= size:
        group, element, vr, length = struct.unpack_from("<HH2sH", buf, pos)
        if group != 0x0002:
            break
        header = 8
        if vr in LONG_VRS:
            if pos + 12 > size:
                return None
            (length,) = struct.unpack_from("<L", buf, pos + 8)
            header = 12
        if length == 0xFFFFFFFF or pos + header + length > size:
            return None
        if element in (0x0002, 0x0010):
            values[element] = _uid_text(bytes(buf[pos + header : pos + header + length]))
        pos += header + length
    else:
        if pos != size:
            return None
    return FileMeta(end=pos, transfer_syntax=values.get(0x0010), sop_class_uid=values.get(0x0002))


def _uid_text(raw: bytes) -> str | None:
    text = raw.decode("ascii", "replace").strip("\x00 ")
    return text or None
