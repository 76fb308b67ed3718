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
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import mmap
import struct
import warnings
import zlib
from collections.abc import Iterator, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import read_dataset as pydicom_read_dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, convert_color_space
from pydicom.tag import BaseTag
from pydicom.uid import UID

from medlabel.domain.errors import InvalidInput, MedlabelError, TooLarge, Unsupported
from medlabel.imaging import codestream
from medlabel.imaging.sniff import (
    LONG_VRS,
    MEDIA_STORAGE_DIRECTORY,
    is_dicom_part10,
    parse_file_meta,
)

GiB = 1024**3
IN_MEMORY_BYTES = 256 * 1024  # smaller files are read with one read(); larger ones are mapped
_MAX_DEPTH_CAP = 200  # the structure walk recurses once per level; keep far from Python's limit
_ITEM, _ITEM_END, _SEQUENCE_END, _UNDEFINED = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD, 0xFFFFFFFF
_IMPLICIT_LE, _EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
# Raised as they are; anything else from pydicom or a decoder means damaged input.
_PASS_THROUGH = (MedlabelError, MemoryError, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass(frozen=True)
class DicomLimits:
    """What one DICOM file may declare before it is refused (before anything is allocated).

    ``max_total_pixel_bytes`` bounds the decoded size of all frames; ``max_elements``
    counts data elements and sequence items anywhere in the file (each becomes a Python
    object); ``max_file_bytes`` also bounds the inflated size of a deflated dataset.
    """

    max_file_bytes: int = 2 * GiB
    max_pixels_per_frame: int = 100_000_000
    max_frames: int = 10_000
    max_total_pixel_bytes: int = 4 * GiB
    max_sequence_depth: int = 32
    max_sequence_items: int = 100_000
    max_elements: int = 500_000

    def __post_init__(self) -> None:
        sizes = (self.max_file_bytes, self.max_pixels_per_frame, self.max_frames)
        counts = (self.max_total_pixel_bytes, self.max_sequence_items, self.max_elements)
        if min(sizes + counts) < 1 or not 1 <= self.max_sequence_depth <= _MAX_DEPTH_CAP:
            raise InvalidInput(
                "DICOM limits must be positive and the sequence depth at most "
                f"{_MAX_DEPTH_CAP}; correct the configuration."
            )


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
        raise _truncated()
    syntax = meta.transfer_syntax
    with _quiet():
        try:
            if syntax == _DEFLATED:
                body = _inflate(buf[meta.end :], limits.max_file_bytes)
                end = _Walk(body, True, limits).top(0, len(body), implicit=False)
                return _read_deflated(bytes(buf[: meta.end]), body[:end])
            implicit, little = _encoding(syntax, buf, meta.end, size)
            end = _Walk(buf, little, limits).top(meta.end, size, implicit)
            if isinstance(buf, bytes):
                with io.BytesIO(buf if end == size else buf[:end]) as stream:
                    return pydicom.dcmread(stream)  # closing it frees the file's bytes
            fh.seek(0)  # every length is checked: only a trimmed end needs the bounded view
            return pydicom.dcmread(fh if end == size else _BoundedReader(fh, end))
        except _PASS_THROUGH:
            raise
        except BaseException as exc:
            raise _malformed("its data elements cannot be parsed") from exc


def _encoding(syntax: str | None, buf: Any, start: int, size: int) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the dataset; guessed like pydicom without a syntax."""
    if syntax == _IMPLICIT_LE:
        return True, True
    if syntax == _EXPLICIT_BE:
        return False, False
    if syntax is None and start + 6 <= size:
        group, vr = struct.unpack_from("<H2x2s", buf, start)
        if not _vr_like(vr):
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
        raise _malformed("its deflated dataset cannot be inflated") from exc
    return b"".join(parts)


class _BoundedReader:
    """A read-only file view whose ``read(n)`` never asks for more than is left before
    ``end`` (so nothing preallocates a declared length)."""

    def __init__(self, fh: BinaryIO, end: int) -> None:
        self._fh, self._end = fh, end

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._end - self._fh.tell())
        return self._fh.read(left if size is None or size < 0 else min(size, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


class _Damaged(InvalidInput):
    """The file's structure is broken (as opposed to a limit being exceeded)."""


def _truncated() -> InvalidInput:
    return _Damaged(
        "The DICOM file ends inside an element, so it was cut off in transfer or storage; "
        "upload it again completely."
    )


def _malformed(what: str) -> InvalidInput:
    return _Damaged(f"The DICOM file is damaged: {what}. Export it again from the source system.")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom inside one of our calls: it warns *and logs* about invalid values,
    quoting them (PHI must not reach the logs). Process-wide while it lasts, like
    ``warnings.catch_warnings``; ingest runs one file per worker process."""
    logger = logging.getLogger("pydicom")
    disabled = logger.disabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.disabled = True
        try:
            yield
        finally:
            logger.disabled = disabled


def _vr_like(vr: bytes) -> bool:
    return 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B


class _Walk:
    """Walks element headers (never values) of a dataset, checking lengths and limits.

    It follows pydicom's reading rules: explicit VR with a per-element fallback to implicit
    for VR bytes that are not letters, implicit VR detection at the start of the dataset
    and of each sequence item, VR UN and unknown tags of undefined length read as
    sequences, undefined-length values as encapsulated items or up to a Sequence
    Delimitation Item. Plain elements take the inlined fast path of ``dataset``.
    """

    def __init__(self, buf: Any, little: bool, limits: DicomLimits) -> None:
        self.buf, self.limits, self.count = buf, limits, 0
        formats = _LITTLE if little else _BIG
        self.implicit_header, self.explicit_header, self.long_length = formats[:3]
        self.delimiter = formats[3]

    def top(self, pos: int, size: int, implicit: bool) -> int:
        """Walk the top-level dataset; returns where it ends (before trailing zeros)."""
        return self.dataset(pos, size, size, implicit, 0)

    def dataset(self, pos: int, end: int | None, limit: int, imp: bool, depth: int) -> int:
        """Walk the top-level dataset (depth 0) or a sequence item, which ends at ``end``
        or, with an undefined length (``end`` None), at its Item Delimitation Item."""
        buf, implicit_header, explicit_header = self.buf, self.implicit_header, self.explicit_header
        imp = self._detect_implicit(pos, limit, imp, depth)
        stop = limit if end is None else end
        while pos < stop:
            if pos + 8 > stop:
                return self._tail(pos, stop, depth)
            if imp:
                group, element, length = implicit_header(buf, pos)
                vr, value = None, pos + 8
            else:
                group, element, vr, length = explicit_header(buf, pos)
                value = pos + 8
                if vr in LONG_VRS:
                    if pos + 12 > stop:
                        raise self._overflow(stop)
                    length, value = self.long_length(buf, pos + 8)[0], pos + 12
                elif not b"AA" <= vr <= b"ZZ":  # pydicom reads such an element as implicit
                    group, element, length = implicit_header(buf, pos)
                    vr = None
            tag = group << 16 | element
            if tag == _ITEM_END or (depth == 0 and tag == 0 and length == 0):
                return self._delimited(pos, value, end, depth)
            self._count()
            if length != _UNDEFINED and vr is not None and vr not in (b"SQ", b"UN"):
                pos = value + length  # a plain value: skip it
                if pos > stop:
                    raise self._overflow(stop)
            else:
                pos = self._value(tag, vr, int(length), value, stop, imp, depth)
        if end is None and depth > 0:
            raise self._overflow(limit)  # no Item Delimitation Item before the end
        return pos

    def _detect_implicit(self, pos: int, limit: int, imp: bool, depth: int) -> bool:
        """pydicom's check of the first element's VR bytes: at the top level either way, in
        a sequence item only from explicit to implicit VR."""
        if pos + 6 <= limit and (depth == 0 or not imp):
            return not _vr_like(self.buf[pos + 4 : pos + 6])
        return imp

    def _tail(self, pos: int, stop: int, depth: int) -> int:
        """Fewer than 8 bytes left: zero padding at the top level, else a cut."""
        if depth == 0 and not any(self.buf[pos:stop]):
            return pos
        raise self._overflow(stop)

    @staticmethod
    def _delimited(pos: int, after: int, end: int | None, depth: int) -> int:
        """An Item Delimitation Item, or (top level) a zero tag: where the dataset ends."""
        if depth == 0:
            return pos  # zero padding, or a stray delimiter where pydicom stops reading
        if end is None:
            return after
        raise _malformed("an item delimiter ends a defined-length item")

    def _count(self) -> None:
        self.count += 1
        if self.count > self.limits.max_elements:
            raise InvalidInput(
                f"The DICOM file has more than {self.limits.max_elements} data elements and "
                "sequence items; such files are refused to protect the server."
            )

    def _overflow(self, limit: int) -> InvalidInput:
        if limit == len(self.buf):
            return _truncated()
        return _malformed("an element is longer than the sequence item holding it")

    def _value(
        self, tag: int, vr: bytes | None, length: int, pos: int, limit: int, imp: bool, depth: int
    ) -> int:
        """An SQ, UN or implicit VR element, or one of undefined length."""
        if length == _UNDEFINED:
            if self._undefined_is_sequence(tag, vr, pos, limit):
                return self._sequence(pos, None, limit, imp, depth + 1)
            return self._undefined_value(pos, limit)
        end = pos + length
        if end > limit:
            raise self._overflow(limit)
        if vr == b"SQ" or _dictionary_vr(tag) == "SQ":
            self._sequence(pos, end, end, imp, depth + 1)
        elif self._starts_with_item(pos, end):
            # a private value that reads as a sequence: pydicom may parse it as one later
            with contextlib.suppress(_Damaged):  # not a sequence after all: opaque bytes
                self._sequence(pos, end, end, imp, depth + 1)
        return end

    def _starts_with_item(self, pos: int, limit: int) -> bool:
        return pos + 8 <= limit and self.implicit_header(self.buf, pos)[:2] == (0xFFFE, 0xE000)

    def _undefined_is_sequence(self, tag: int, vr: bytes | None, pos: int, limit: int) -> bool:
        if vr in (b"SQ", b"UN"):
            return True
        if vr is not None:
            return False
        known = _dictionary_vr(tag)
        if known is not None:
            return known == "SQ"
        return self._starts_with_item(pos, limit)

    def _sequence(self, pos: int, end: int | None, limit: int, imp: bool, depth: int) -> int:
        if depth > self.limits.max_sequence_depth:
            raise InvalidInput(
                f"The DICOM file nests sequences more than {self.limits.max_sequence_depth} "
                "levels deep; such files are refused to protect the server."
            )
        items = 0
        while end is None or pos < end:
            if pos + 8 > limit:
                raise self._overflow(limit)
            group, element, length = self.implicit_header(self.buf, pos)
            if group << 16 | element == _SEQUENCE_END:
                return pos + 8
            if group << 16 | element != _ITEM:
                raise _malformed("a sequence holds something other than items")
            items += 1
            if items > self.limits.max_sequence_items:
                raise InvalidInput(
                    f"A sequence in the DICOM file has more than "
                    f"{self.limits.max_sequence_items} items; such files are refused to "
                    "protect the server."
                )
            self._count()
            pos += 8
            if length == _UNDEFINED:
                pos = self.dataset(pos, None, limit, imp, depth)
            else:  # an item longer than its sequence is read up to the sequence's end, as
                end_of_item = min(pos + length, limit)  # pydicom does (seen in real files)
                pos = self.dataset(pos, end_of_item, end_of_item, imp, depth)
        return pos

    def _undefined_value(self, pos: int, limit: int) -> int:
        """Encapsulated items up to the delimiter; else (like pydicom) search for it."""
        start = pos
        while pos + 8 <= limit:
            group, element, length = self.implicit_header(self.buf, pos)
            tag = group << 16 | element
            if tag == _SEQUENCE_END:
                return pos + 8
            if tag != _ITEM or pos + 8 + length > limit:
                break
            pos += 8 + length
        found = int(self.buf.find(self.delimiter, start, limit))
        if found < 0 or found + 8 > limit:
            raise _truncated()
        return found + 8


def _formats(order: str) -> tuple[Any, Any, Any, bytes]:
    return (
        struct.Struct(order + "HHL").unpack_from,
        struct.Struct(order + "HH2sH").unpack_from,
        struct.Struct(order + "L").unpack_from,
        struct.pack(order + "HH", 0xFFFE, 0xE0DD),
    )


_LITTLE, _BIG = _formats("<"), _formats(">")


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    """The public dictionary's VR of ``tag`` (memoised: pure, bounded)."""
    return dictionary_VR(tag) if dictionary_has_tag(tag) else None


# -- the pixel module ---------------------------------------------------------------------

_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
_PIXEL_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}


@dataclass(frozen=True)
class _Pixels:
    """The validated Image Pixel module of a dataset."""

    tag: int
    rows: int
    columns: int
    frames: int
    samples: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int

    def options(self) -> dict[str, Any]:
        """pydicom decoding options, so messy header values never reach the decoder."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "number_of_frames": self.frames,
            "samples_per_pixel": self.samples,
            "photometric_interpretation": self.photometric,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": self.pixel_representation,
            "planar_configuration": self.planar_configuration,
        }

    def frame_bytes(self) -> int:
        """Stored bytes of one natively encoded frame (YBR_FULL_422: 2 samples/pixel)."""
        samples = 2 if self.photometric == "YBR_FULL_422" else self.samples
        return self.rows * self.columns * samples * self.bits_allocated // 8

    def decoded_pixel_bytes(self) -> int:
        """Bytes per pixel while decoding (palette: 16-bit RGB from the lookup table)."""
        if self.photometric == "PALETTE COLOR":
            return 6
        return self.samples * max(1, self.bits_allocated // 8)


def _bad_pixels(what: str) -> InvalidInput:
    return InvalidInput(
        f"The DICOM image's pixel module is unusable: {what}. The file cannot be displayed; "
        "export it again from the source system."
    )


def _pixel_module(ds: Dataset) -> _Pixels | None:
    """The validated pixel module, or None for a dataset without pixel data (SR, KO...)."""
    present = [tag for tag in _PIXEL_KEYWORDS if tag in ds]
    if not present:
        return None
    if len(present) > 1:
        raise _bad_pixels("it holds more than one kind of pixel data")
    rows, columns = _int(_get(ds, 0x00280010)), _int(_get(ds, 0x00280011))
    if rows is None or columns is None or not (1 <= rows <= 65535 and 1 <= columns <= 65535):
        raise _bad_pixels("Rows and Columns must be whole numbers from 1 to 65535")
    photometric = _upper(_get(ds, 0x00280004))
    samples = _int(_get(ds, 0x00280002))
    _check_photometric(photometric, samples)
    assert photometric is not None
    samples = samples or (3 if photometric in _COLOUR else 1)
    allocated = _int(_get(ds, 0x00280100))
    _check_bits_allocated(present[0], photometric, allocated)
    assert allocated is not None
    stored = _int(_get(ds, 0x00280101)) or allocated
    high_bit = _int(_get(ds, 0x00280102))
    if not 1 <= stored <= allocated or (high_bit is not None and not 0 <= high_bit < allocated):
        raise _bad_pixels("Bits Stored and High Bit must fit inside Bits Allocated")
    representation = _int(_get(ds, 0x00280103)) or 0
    planar = (_int(_get(ds, 0x00280006)) or 0) if samples > 1 else 0
    if representation not in (0, 1) or planar not in (0, 1):
        raise _bad_pixels("Pixel Representation and Planar Configuration must be 0 or 1")
    frames = _int(_get(ds, 0x00280008))
    if frames is not None and frames < 0:
        raise _bad_pixels("Number of Frames must be a positive whole number")
    return _Pixels(
        present[0], rows, columns, frames or 1, samples, photometric, allocated, stored,
        representation, planar,
    )  # fmt: skip


def _check_photometric(photometric: str | None, samples: int | None) -> None:
    if photometric is None:
        raise _bad_pixels("Photometric Interpretation is missing")
    if photometric not in _MONOCHROME | _COLOUR | {"PALETTE COLOR"}:
        raise Unsupported(
            "The DICOM image's Photometric Interpretation is not one medlabel can display "
            "(monochrome, palette colour, RGB and YBR are); convert the image to RGB."
        )
    wanted = 3 if photometric in _COLOUR else 1
    if samples is not None and samples != wanted:
        raise _bad_pixels("Samples per Pixel does not match the Photometric Interpretation")


def _check_bits_allocated(tag: int, photometric: str, allocated: int | None) -> None:
    if tag == 0x7FE00008:
        allowed: tuple[int, ...] = (32,)
    elif tag == 0x7FE00009:
        allowed = (64,)
    elif photometric in _MONOCHROME:
        allowed = (1, 8, 16, 32)
    else:
        allowed = (8, 16)
    if tag != 0x7FE00010 and photometric not in _MONOCHROME:
        raise _bad_pixels("floating point pixel data must be monochrome")
    if allocated not in allowed:
        raise _bad_pixels("Bits Allocated is not valid for this kind of image")


def _syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    syntax = _text(_get(meta, 0x00020010)) if meta is not None else None
    if syntax is None:
        raise InvalidInput(
            "The DICOM dataset has no Transfer Syntax UID in its file meta, so its pixel data "
            "cannot be interpreted; export it again as a DICOM Part 10 file."
        )
    return syntax


def check_pixel_module(ds: Dataset, limits: DicomLimits) -> None:
    """Refuse pixel data that is nonsense, too large, shorter than declared, or (when
    encapsulated) structurally broken, before anything is decoded (SECURITY 5-8)."""
    _checked(ds, limits)


@dataclass(frozen=True)
class _Plan:
    pixels: _Pixels
    syntax: str
    encapsulated: codestream.Encapsulated | None
    frames: list[range]


def _checked(ds: Dataset, limits: DicomLimits) -> _Plan:
    with _quiet():
        return _plan(ds, limits)


def _plan(ds: Dataset, limits: DicomLimits) -> _Plan:
    pixels = _pixel_module(ds)
    if pixels is None:
        raise Unsupported(
            "The DICOM object has no pixel data (it is a report, a document or a list), "
            "so it is not an image that can be annotated."
        )
    _check_limits(pixels, limits)
    syntax = _syntax(ds)
    value = _get(ds, pixels.tag)
    if not isinstance(value, bytes):
        raise _bad_pixels("the pixel data cannot be read")
    decoder = _decoder(syntax)
    if decoder.is_native:
        _check_native_length(pixels, len(value))
        return _Plan(pixels, syntax, None, [])
    encapsulated = codestream.parse_encapsulated(value)
    frames = codestream.frame_fragments(
        value, encapsulated, pixels.frames, _extended_offsets(ds),
        syntax in codestream.JPEG_SYNTAXES | codestream.J2K_SYNTAXES,
    )  # fmt: skip
    first = codestream.frame_bytes(value, encapsulated, frames[0])
    codestream.check_codestream(syntax, first, _expected(pixels))
    return _Plan(pixels, syntax, encapsulated, frames)


def _check_limits(pixels: _Pixels, limits: DicomLimits) -> None:
    per_frame = pixels.rows * pixels.columns
    total = per_frame * pixels.frames * pixels.decoded_pixel_bytes()
    if (
        per_frame > limits.max_pixels_per_frame
        or pixels.frames > limits.max_frames
        or total > limits.max_total_pixel_bytes
    ):
        raise TooLarge(
            "The DICOM image declares more pixels than accepted (at most "
            f"{limits.max_pixels_per_frame} pixels per frame, {limits.max_frames} frames and "
            f"{limits.max_total_pixel_bytes} decoded bytes); split it or ask an "
            "administrator to raise the limits."
        )


def _check_native_length(pixels: _Pixels, actual: int) -> None:
    expected = math.ceil(pixels.frame_bytes() * pixels.frames)
    if pixels.bits_allocated == 1:
        expected = math.ceil(pixels.rows * pixels.columns * pixels.frames * pixels.samples / 8)
    if actual < expected:
        raise InvalidInput(
            "The DICOM file's Pixel Data is shorter than Rows, Columns, Number of Frames, "
            "Samples per Pixel and Bits Allocated declare: the file is truncated or its "
            "header is wrong. Export it again from the source system."
        )


def _expected(pixels: _Pixels) -> codestream.ExpectedImage:
    return codestream.ExpectedImage(
        pixels.rows, pixels.columns, pixels.samples, pixels.bits_allocated
    )


def _extended_offsets(ds: Dataset) -> list[int] | None:
    raw = _get(ds, 0x7FE00001)
    if not isinstance(raw, bytes) or not raw:
        return None
    if len(raw) % 8:
        raise InvalidInput("The DICOM file's Extended Offset Table is malformed; export it again.")
    return list(struct.unpack(f"<{len(raw) // 8}Q", raw))


def _decoder(syntax: str) -> Any:
    try:
        decoder = get_decoder(UID(syntax))
    except (NotImplementedError, ValueError) as exc:
        raise Unsupported(
            "The DICOM file's transfer syntax (its pixel encoding) is not one medlabel can "
            "decode (uncompressed, RLE, JPEG, JPEG-LS and JPEG 2000 are); convert it."
        ) from exc
    if not decoder.is_available:
        raise Unsupported(
            "No decoder for this DICOM file's pixel encoding is installed; install the "
            "pylibjpeg plugins (pylibjpeg-libjpeg, -openjpeg, -rle)."
        )
    return decoder


# -- instance facts -----------------------------------------------------------------------

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]
_SHARED_GROUPS, _PER_FRAME_GROUPS = 0x52009229, 0x52009230
_PLANE_POSITION, _PLANE_ORIENTATION, _PIXEL_MEASURES = 0x00209113, 0x00209116, 0x00289110
_VALUE_TRANSFORMATION, _FRAME_VOI_LUT = 0x00289145, 0x00289132
_POSITION, _ORIENTATION, _SPACING, _THICKNESS = 0x00200032, 0x00200037, 0x00280030, 0x00180050
_SLOPE, _INTERCEPT, _CENTER, _WIDTH = 0x00281053, 0x00281052, 0x00281050, 0x00281051


@dataclass(frozen=True)
class InstanceInfo:
    """What series assembly and display need from one DICOM instance.

    Values are plain Python numbers and strings, ``None`` when absent or unparseable.
    ``pixel_spacing`` is DICOM's (row spacing, column spacing) in mm; ``spacing_source``
    says where it came from: ``"PixelSpacing"`` (patient plane), ``"functional-groups"``
    (Pixel Measures of an enhanced object), ``"ImagerPixelSpacing"`` (at the detector, not
    corrected for magnification), ``"ultrasound-region"`` (the first region calibrated in
    cm). Enhanced multi-frame objects give ``per_frame_positions``/``per_frame_orientation``
    (one entry per frame) and their first frame's values in ``image_position``/
    ``image_orientation``; rescale and window values come from the top level or, for
    enhanced objects, the shared (else first frame's) functional groups. Pixel fields are
    ``None`` for objects without pixel data.
    """

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_uid: str | None
    series_uid: str | None
    frame_of_reference_uid: str | None
    modality: str | None
    rows: int | None
    columns: int | None
    frames: int | None
    samples_per_pixel: int | None
    photometric: str | None
    bits_allocated: int | None
    bits_stored: int | None
    pixel_representation: int | None
    planar_configuration: int | None
    transfer_syntax: str | None
    image_orientation: Orientation | None
    image_position: Vec3 | None
    pixel_spacing: tuple[float, float] | None
    spacing_source: str | None
    slice_thickness: float | None
    per_frame_positions: tuple[Vec3, ...] | None
    per_frame_orientation: tuple[Orientation, ...] | None
    instance_number: int | None
    acquisition_number: int | None
    echo_number: int | None
    temporal_position: int | None
    number_of_temporal_positions: int | None
    image_type: tuple[str, ...]
    rescale_slope: float | None
    rescale_intercept: float | None
    window_centers: tuple[float, ...]
    window_widths: tuple[float, ...]
    burned_in_annotation: str | None
    frame_time_ms: float | None


def instance_info(ds: Dataset) -> InstanceInfo:
    """The facts of ``ds``; tolerant of missing or malformed optional attributes. Raises
    ``InvalidInput``/``Unsupported`` only for a pixel module that cannot be used."""
    with _quiet():
        pixels = _pixel_module(ds)
        groups = _Groups(ds)
        return InstanceInfo(
            **_identity(ds), **_pixel_facts(pixels), **_plane(ds, groups, pixels),
            **_display(ds, groups),
        )  # fmt: skip


def _identity(ds: Dataset) -> dict[str, Any]:
    meta = getattr(ds, "file_meta", None)
    return {
        "sop_class_uid": _text(_get(ds, 0x00080016)) or _text(_get(meta, 0x00020002)),
        "sop_instance_uid": _text(_get(ds, 0x00080018)),
        "study_uid": _text(_get(ds, 0x0020000D)),
        "series_uid": _text(_get(ds, 0x0020000E)),
        "frame_of_reference_uid": _text(_get(ds, 0x00200052)),
        "modality": _upper(_get(ds, 0x00080060)),
        "transfer_syntax": _text(_get(meta, 0x00020010)),
        "instance_number": _int(_get(ds, 0x00200013)),
        "acquisition_number": _int(_get(ds, 0x00200012)),
        "echo_number": _int(_get(ds, 0x00180086)),
        "temporal_position": _int(_get(ds, 0x00200100)),
        "number_of_temporal_positions": _int(_get(ds, 0x00200105)),
        "image_type": _texts(_get(ds, 0x00080008)),
    }


def _pixel_facts(pixels: _Pixels | None) -> dict[str, Any]:
    return {
        "rows": pixels.rows if pixels else None,
        "columns": pixels.columns if pixels else None,
        "frames": pixels.frames if pixels else None,
        "samples_per_pixel": pixels.samples if pixels else None,
        "photometric": pixels.photometric if pixels else None,
        "bits_allocated": pixels.bits_allocated if pixels else None,
        "bits_stored": pixels.bits_stored if pixels else None,
        "pixel_representation": pixels.pixel_representation if pixels else None,
        "planar_configuration": pixels.planar_configuration if pixels else None,
    }


def _plane(ds: Dataset, groups: _Groups, pixels: _Pixels | None) -> dict[str, Any]:
    """Image Plane facts: top level first, then the functional groups."""
    positions = groups.per_frame(_PLANE_POSITION, _POSITION, _vec3)
    orientations = groups.per_frame(_PLANE_ORIENTATION, _ORIENTATION, _orientation)
    spacing, source = _spacing(ds, groups)
    thickness = _positive(_num(_get(ds, _THICKNESS)))
    return {
        "image_orientation": _orientation(_get(ds, _ORIENTATION))
        or (orientations[0] if orientations else None)
        or _orientation(groups.value(_PLANE_ORIENTATION, _ORIENTATION)),
        "image_position": _vec3(_get(ds, _POSITION))
        or (positions[0] if positions else None)
        or _vec3(groups.value(_PLANE_POSITION, _POSITION)),
        "pixel_spacing": spacing,
        "spacing_source": source,
        "slice_thickness": thickness or _positive(_num(groups.value(_PIXEL_MEASURES, _THICKNESS))),
        "per_frame_positions": positions if _all_frames(positions, pixels) else None,
        "per_frame_orientation": orientations if _all_frames(orientations, pixels) else None,
    }


def _display(ds: Dataset, groups: _Groups) -> dict[str, Any]:
    slope, intercept = _get(ds, _SLOPE), _get(ds, _INTERCEPT)
    if slope is None and intercept is None:
        slope = groups.value(_VALUE_TRANSFORMATION, _SLOPE)
        intercept = groups.value(_VALUE_TRANSFORMATION, _INTERCEPT)
    centers, widths = _windows(ds, groups)
    return {
        "rescale_slope": _num(slope),
        "rescale_intercept": _num(intercept),
        "window_centers": centers,
        "window_widths": widths,
        "burned_in_annotation": _yes_no(_get(ds, 0x00280301)),
        "frame_time_ms": _positive(_num(_get(ds, 0x00181063))),
    }


class _Groups:
    """The shared and per-frame functional groups of an enhanced multi-frame object."""

    def __init__(self, ds: Dataset) -> None:
        self.shared = _item(ds, _SHARED_GROUPS)
        frames = _get(ds, _PER_FRAME_GROUPS)
        self.frames: list[Any] = list(frames) if _multi(frames) else []

    def value(self, macro: int, tag: int) -> Any:
        """``tag`` in the ``macro`` of the shared groups, else of the first frame."""
        shared = _get(_item(self.shared, macro), tag)
        if shared is not None or not self.frames:
            return shared
        return _get(_item(_as_dataset(self.frames[0]), macro), tag)

    def per_frame(self, macro: int, tag: int, parse: Any) -> tuple[Any, ...] | None:
        """One parsed value per frame (per-frame groups, else the shared one repeated)."""
        if not self.frames:
            return None
        shared = parse(_get(_item(self.shared, macro), tag))
        values = []
        for group in self.frames:
            value = parse(_get(_item(_as_dataset(group), macro), tag)) or shared
            if value is None:
                return None
            values.append(value)
        return tuple(values)


def _all_frames(values: tuple[Any, ...] | None, pixels: _Pixels | None) -> bool:
    return values is not None and pixels is not None and len(values) == pixels.frames


def _spacing(ds: Dataset, groups: _Groups) -> tuple[tuple[float, float] | None, str | None]:
    candidates = (
        (_get(ds, _SPACING), "PixelSpacing"),
        (groups.value(_PIXEL_MEASURES, _SPACING), "functional-groups"),
        (_get(ds, 0x00181164), "ImagerPixelSpacing"),
    )
    for raw, source in candidates:
        pair = _pair(raw)
        if pair is not None:
            return pair, source
    regions = _get(ds, 0x00186011)
    for item in regions if _multi(regions) else []:
        region = _as_dataset(item)
        units = (_int(_get(region, 0x00186024)), _int(_get(region, 0x00186026)))
        dx, dy = _num(_get(region, 0x0018602C)), _num(_get(region, 0x0018602E))
        if units == (3, 3) and dx and dy:  # 3: centimetres
            return (abs(dy) * 10.0, abs(dx) * 10.0), "ultrasound-region"
    return None, None


def _windows(ds: Dataset, groups: _Groups) -> tuple[tuple[float, ...], tuple[float, ...]]:
    centers, widths = _get(ds, _CENTER), _get(ds, _WIDTH)
    if centers is None:
        centers = groups.value(_FRAME_VOI_LUT, _CENTER)
        widths = groups.value(_FRAME_VOI_LUT, _WIDTH)
    pairs = [
        (c, w)
        for c, w in zip(_nums(centers), _nums(widths), strict=False)
        if c is not None and w is not None and w > 0
    ]
    return tuple(c for c, _ in pairs), tuple(w for _, w in pairs)


# -- tolerant value access ----------------------------------------------------------------


def _get(ds: Dataset | None, tag: int) -> Any:
    """The value of ``tag`` in ``ds``; None if absent or unreadable."""
    key = BaseTag(tag)
    if ds is None or key not in ds:  # cheaper than pydicom's KeyError path
        return None
    try:
        raw = ds.get_item(key)
        if isinstance(raw, RawDataElement) and raw.value is not None:
            vr = raw.VR if raw.VR not in (None, "UN") else _dictionary_vr(tag)
            if vr in _PLAIN_TEXT_VRS:  # ASCII by definition: no charset, no validation
                return _plain_text(raw.value)
            if vr in _BINARY_VRS:
                return _binary(raw.value, _BINARY_VRS[vr], raw.is_little_endian)
        return ds[key].value
    except Exception:
        return None


_PLAIN_TEXT_VRS = frozenset({"AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}


def _plain_text(value: bytes) -> Any:
    """A raw text value as pydicom gives it: a string, or a list for several values."""
    parts = value.decode("ascii", "replace").split("\\")
    return parts[0] if len(parts) == 1 else parts


def _binary(value: bytes, code: str, little: bool) -> Any:
    count = len(value) // struct.calcsize(code)
    numbers = struct.unpack_from(f"{'<' if little else '>'}{count}{code}", value)
    return None if not numbers else numbers[0] if count == 1 else list(numbers)


def _as_dataset(value: Any) -> Dataset | None:
    return value if isinstance(value, Dataset) else None


def _item(ds: Dataset | None, tag: int) -> Dataset | None:
    value = _get(ds, tag)
    return _as_dataset(value[0]) if _multi(value) and value else None


def _multi(value: Any) -> bool:
    """A multi-valued element value or a sequence (pydicom's are not lists)."""
    return isinstance(value, MutableSequence | tuple | list)


def _first(value: Any) -> Any:
    if _multi(value):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    value = _first(value)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip("\x00 \t\r\n")
    return text or None


def _upper(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text else None


def _texts(value: Any) -> tuple[str, ...]:
    values = value if _multi(value) else [value]
    return tuple(t.upper() for t in (_text(v) for v in values) if t)


def _yes_no(value: Any) -> str | None:
    text = _upper(value)
    return text if text in ("YES", "NO") else None


def _num(value: Any) -> float | None:
    value = _first(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.decode("ascii") if isinstance(value, bytes) else value)
    except (TypeError, ValueError, UnicodeDecodeError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _nums(value: Any) -> list[float | None]:
    values = value if _multi(value) else [] if value is None else [value]
    return [_num(v) for v in values]


def _int(value: Any) -> int | None:
    value = _first(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    number = _num(value)
    return int(number) if number is not None and number.is_integer() else None


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    values = _nums(value)
    if len(values) != count or any(v is None for v in values):
        return None
    return tuple(v for v in values if v is not None)


def _vec3(value: Any) -> Vec3 | None:
    v = _floats(value, 3)
    return (v[0], v[1], v[2]) if v else None


def _orientation(value: Any) -> Orientation | None:
    v = _floats(value, 6)
    return (v[0], v[1], v[2], v[3], v[4], v[5]) if v else None


def _pair(value: Any) -> tuple[float, float] | None:
    v = _floats(value, 2)
    return (v[0], v[1]) if v and v[0] > 0 and v[1] > 0 else None


# -- decoding -----------------------------------------------------------------------------


def decode_frames(
    ds: Dataset, limits: DicomLimits, start: int = 0, count: int | None = None
) -> NDArray[Any]:
    """Frames ``start .. start+count-1`` as ``(n, rows, cols)`` stored values (monochrome:
    no modality LUT, no MONOCHROME1 inversion) or ``(n, rows, cols, 3)`` uint8 RGB (RGB,
    YBR and palette colour). Only the requested frames are decoded."""
    plan = _checked(ds, limits)
    frames = plan.pixels.frames
    count = frames - start if count is None else count
    if start < 0 or count < 1 or start + count > frames:
        raise InvalidInput(
            "The requested frames are outside the image; ask for frames from 0 to the "
            "number of frames minus one."
        )
    indices = range(start, start + count)
    with _quiet():
        try:
            if plan.encapsulated is None:
                return _decode_native(ds, plan, indices)
            return _decode_encapsulated(ds, plan, indices)
        except _PASS_THROUGH:
            raise
        except BaseException as exc:  # Rust decoders panic with a BaseException (pyo3)
            raise InvalidInput(
                "The compressed pixel data is damaged: a frame cannot be decoded. Export the "
                "image again from the source system."
                if plan.encapsulated
                else "The pixel data cannot be decoded as the header describes it; export "
                "the image again from the source system."
            ) from exc


def _decode_native(ds: Dataset, plan: _Plan, indices: range) -> NDArray[Any]:
    decoder, finish = _decoder(plan.syntax), _Finisher(ds, plan.pixels)
    options = {**plan.pixels.options(), "as_rgb": True}
    if len(indices) == plan.pixels.frames:
        arr, props = decoder.as_array(ds, **options)
        pixels = plan.pixels
        shape = (len(indices), pixels.rows, pixels.columns)
        return finish(arr.reshape(shape + ((pixels.samples,) if pixels.samples > 1 else ())), props)
    found = decoder.iter_array(ds, indices=indices, **options)
    return _stack(finish(arr[np.newaxis], props) for arr, props in found)


def _decode_encapsulated(ds: Dataset, plan: _Plan, indices: range) -> NDArray[Any]:
    encapsulated = plan.encapsulated
    assert encapsulated is not None
    value = _get(ds, plan.pixels.tag)
    decoder, finish = _decoder(plan.syntax), _Finisher(ds, plan.pixels)
    options = {**plan.pixels.options(), "number_of_frames": 1, "as_rgb": True}
    options["pixel_keyword"] = _PIXEL_KEYWORDS[plan.pixels.tag]

    def frames() -> Iterator[NDArray[Any]]:
        for index in indices:
            frame = codestream.frame_bytes(value, encapsulated, plan.frames[index])
            codestream.check_codestream(plan.syntax, frame, _expected(plan.pixels))
            arr, props = decoder.as_array(_encapsulate(frame), **options)
            yield finish(arr[np.newaxis], props)

    return _stack(frames())


def _encapsulate(frame: bytes) -> bytes:
    """One frame as encapsulated Pixel Data: an empty Basic Offset Table and one item."""
    padded = frame + b"\x00" * (len(frame) % 2)
    return struct.pack("<HHLHHL", 0xFFFE, 0xE000, 0, 0xFFFE, 0xE000, len(padded)) + padded


def _stack(frames: Iterator[NDArray[Any]]) -> NDArray[Any]:
    parts = list(frames)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Finisher:
    """Turns decoded frames into the output: native byte order; colour as uint8 RGB, the
    same way for every frame (palette: one uint8 table for all indices, built once with
    pydicom's ``apply_color_lut``; 16-bit colour: shifted by Bits Stored)."""

    def __init__(self, ds: Dataset, pixels: _Pixels) -> None:
        self.pixels, self.palette, self.first = pixels, None, 0
        if pixels.photometric == "PALETTE COLOR":
            self.palette, self.first = _palette_table(ds, pixels)

    def __call__(self, arr: NDArray[Any], props: dict[str, Any]) -> NDArray[Any]:
        if arr.dtype.byteorder not in ("=", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if self.palette is not None:
            last = len(self.palette) - 1
            return np.asarray(self.palette[np.clip(arr.astype(np.int64) - self.first, 0, last)])
        if self.pixels.samples == 1:
            return arr
        photometric = str(props.get("photometric_interpretation", self.pixels.photometric))
        if photometric in ("YBR_FULL", "YBR_FULL_422"):
            arr = convert_color_space(arr, photometric, "RGB")
        if arr.dtype != np.uint8 and self.pixels.bits_stored > 8:
            arr = arr >> (self.pixels.bits_stored - 8)
        return np.asarray(np.clip(arr, 0, 255).astype(np.uint8))


def _palette_table(ds: Dataset, pixels: _Pixels) -> tuple[NDArray[np.uint8], int]:
    """RGB (uint8) of every palette index, and the first index the table maps."""
    try:
        descriptor = ds.RedPaletteColorLookupTableDescriptor
        entries, first = int(descriptor[0]) or 65536, int(descriptor[1])
        if pixels.pixel_representation == 0 and first < 0:
            first += 65536  # US/SS descriptor values read as signed
        dtype = np.int32 if first < 0 else np.uint32
        rgb = apply_color_lut(np.arange(first, first + entries, dtype=dtype), ds)[:, :3]
    except Exception as exc:
        raise InvalidInput(
            "The DICOM image's palette colour lookup table is missing or malformed; export "
            "the image again (as RGB)."
        ) from exc
    if rgb.dtype != np.uint8 and int(rgb.max(initial=0)) > 255:
        rgb = rgb >> 8  # 16-bit entries (some writers put 8-bit values in 16-bit entries)
    return np.asarray(rgb.astype(np.uint8)), first


def to_modality_values(frames: NDArray[Any], info: InstanceInfo) -> NDArray[Any]:
    """Apply Rescale Slope/Intercept: int16 when every result is a whole number that fits
    (CT Hounsfield units), else float32. Colour frames are returned unchanged."""
    if frames.ndim == 4 or frames.dtype.kind not in "biuf":
        return frames
    slope = 1.0 if info.rescale_slope is None else info.rescale_slope
    intercept = 0.0 if info.rescale_intercept is None else info.rescale_intercept
    if frames.dtype.kind != "f" and slope.is_integer() and intercept.is_integer():
        low, high = (int(frames.min()), int(frames.max())) if frames.size else (0, 0)
        ends = (low * slope + intercept, high * slope + intercept)
        if min(ends) >= -32768 and max(ends) <= 32767:
            if frames.dtype == np.int16 and slope == 1 and intercept == 0:
                return frames
            wide = frames.astype(np.int32 if frames.dtype.itemsize <= 2 else np.int64)
            return np.asarray((wide * int(slope) + int(intercept)).astype(np.int16))
    out = frames.astype(np.float32)
    out *= np.float32(slope)
    out += np.float32(intercept)
    return out


# -- DICOMDIR -----------------------------------------------------------------------------


def read_dicomdir(path: Path, limits: DicomLimits | None = None) -> list[Path]:
    """The files a DICOMDIR references (in use, existing regular files), in record order.

    Each ReferencedFileID is checked component by component (no empty, ``.`` or ``..``
    components, separators, drive letters or control characters) and the resolved path
    (links followed) must stay inside the DICOMDIR's folder; otherwise the whole DICOMDIR is
    refused (SECURITY.md case 11). pydicom's ``FileSet`` is deliberately not used.
    """
    ds = read_dataset(path, limits or DicomLimits())
    with _quiet():
        if _text(_get(getattr(ds, "file_meta", None), 0x00020002)) != MEDIA_STORAGE_DIRECTORY:
            raise Unsupported("The file is not a DICOMDIR (a DICOM media directory).")
        records = _get(ds, 0x00041220)
        ids = [_file_id(_as_dataset(r)) for r in (records if _multi(records) else [])]
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
    if record is None or _int(_get(record, 0x00041410)) == 0:  # Record In-use Flag: inactive
        return None
    value = _get(record, 0x00041500)
    parts = tuple(str(v) for v in (value if _multi(value) else [value]) if v is not None)
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
