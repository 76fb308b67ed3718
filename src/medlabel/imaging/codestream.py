"""Encapsulated Pixel Data (PS3.5 A.4) and the codestream headers inside it, checked before
any decoder sees the bytes.

- :func:`parse_encapsulated` walks the items of an encapsulated Pixel Data value: the Basic
  Offset Table and the fragments, each inside the value.
- :func:`frame_fragments` groups fragments into frames from the Extended Offset Table, the
  Basic Offset Table (every entry must point at a fragment, in order, one per frame), one
  fragment per frame, all fragments for one frame, or (JPEG family only) the EOI/EOC marker
  ending a frame; anything else is refused rather than guessed.
- :func:`check_codestream` reads the frame header of a JPEG (SOFn), JPEG-LS (SOF55) or
  JPEG 2000 (SIZ, also inside a JP2 wrapper) codestream, or the RLE header, and refuses it
  when its size, number of components or (JPEG 2000) number of tiles is not what the DICOM
  header declares: a decoder allocates what the codestream declares (SECURITY.md case 8,
  "codestream bombs"). A JPEG-family codestream must also end with its EOI/EOC marker:
  JPEG decoders silently fill the rest of a cut-off image.

Only the headers are parsed; nothing here decodes. Errors are ``InvalidInput`` and, like
every message of the ingest path, never quote a value from the file.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from medlabel.domain.errors import InvalidInput

_ITEM = 0xFFFEE000
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_HEADER = struct.Struct("<HHL")
_MAX_J2K_TILES = 65535  # Isot is 0..65534 (ITU-T T.800 A.4.2)
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD})
_JPEG_SOF = _JPEG_SOF | {0xCE, 0xCF, 0xF7}  # 0xF7: SOF55, JPEG-LS
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"

JPEG_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    }
)
J2K_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
    }
)
RLE_SYNTAX = "1.2.840.10008.1.2.5"


def _damaged(what: str) -> InvalidInput:
    return InvalidInput(
        f"The compressed pixel data is damaged: {what}. Export the image again from the "
        "source system (or send it uncompressed)."
    )


@dataclass(frozen=True)
class Encapsulated:
    """The item structure of an encapsulated Pixel Data value.

    ``fragments`` are ``(value_start, length)`` pairs, positions in the Pixel Data value;
    ``item_offsets`` are the offsets of each fragment's item tag from the first fragment's,
    the unit of the offset tables.
    """

    basic_offsets: tuple[int, ...]
    fragments: tuple[tuple[int, int], ...]
    item_offsets: tuple[int, ...]


def parse_encapsulated(value: bytes) -> Encapsulated:
    """Walk the Basic Offset Table item and the fragment items of ``value``."""
    size = len(value)
    if size < 8:
        raise _damaged("it is too short to hold the Basic Offset Table")
    group, element, length = _HEADER.unpack_from(value, 0)
    if (group << 16 | element) != _ITEM or length == _UNDEFINED or length % 4:
        raise _damaged("the first item is not a valid Basic Offset Table")
    if 8 + length > size:
        raise _damaged("the Basic Offset Table runs past the end of the pixel data")
    offsets = struct.unpack_from(f"<{length // 4}L", value, 8)
    first = pos = 8 + length
    fragments: list[tuple[int, int]] = []
    item_offsets: list[int] = []
    while pos + 8 <= size:
        group, element, length = _HEADER.unpack_from(value, pos)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM or length == _UNDEFINED:
            raise _damaged("a fragment is not a defined-length item")
        if pos + 8 + length > size:
            raise _damaged("a fragment runs past the end of the pixel data")
        fragments.append((pos + 8, length))
        item_offsets.append(pos - first)
        pos += 8 + length
    if not fragments:
        raise _damaged("it holds no fragments")
    return Encapsulated(tuple(offsets), tuple(fragments), tuple(item_offsets))


def frame_fragments(
    value: bytes,
    encapsulated: Encapsulated,
    frames: int,
    extended_offsets: Sequence[int] | None,
    split_at_eoi: bool,
) -> list[range]:
    """The fragment indices of each frame (see the module docstring for the rules)."""
    count = len(encapsulated.fragments)
    if extended_offsets is not None:
        return _from_offsets(encapsulated, list(extended_offsets), frames, "Extended")
    if encapsulated.basic_offsets:
        return _from_offsets(encapsulated, list(encapsulated.basic_offsets), frames, "Basic")
    if count == frames:
        return [range(i, i + 1) for i in range(count)]
    if frames == 1:
        return [range(count)]
    if count > frames and split_at_eoi:
        return _split_at_eoi(value, encapsulated, frames)
    raise _damaged("the number of fragments does not match Number of Frames")


def _from_offsets(
    encapsulated: Encapsulated, offsets: list[int], frames: int, table: str
) -> list[range]:
    if len(offsets) != frames:
        raise _damaged(f"the {table} Offset Table does not list one offset per frame")
    index_of = {offset: i for i, offset in enumerate(encapsulated.item_offsets)}
    starts = [index_of.get(offset, -1) for offset in offsets]
    if starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
        raise _damaged(f"the {table} Offset Table points outside the fragments")
    ends = [*starts[1:], len(encapsulated.fragments)]
    return [range(a, b) for a, b in zip(starts, ends, strict=True)]


def _split_at_eoi(value: bytes, encapsulated: Encapsulated, frames: int) -> list[range]:
    ranges, start = [], 0
    for i, (offset, length) in enumerate(encapsulated.fragments):
        if b"\xff\xd9" in value[max(offset, offset + length - 10) : offset + length]:
            ranges.append(range(start, i + 1))
            start = i + 1
    if len(ranges) != frames or start != len(encapsulated.fragments):
        raise _damaged("its fragments cannot be grouped into Number of Frames frames")
    return ranges


def frame_bytes(value: bytes, encapsulated: Encapsulated, fragments: range) -> bytes:
    """The codestream of one frame: its fragments joined."""
    view = memoryview(value)
    parts = [view[o : o + n] for o, n in (encapsulated.fragments[i] for i in fragments)]
    return b"".join(parts)


@dataclass(frozen=True)
class ExpectedImage:
    """What the DICOM header says one frame is."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int


@dataclass(frozen=True)
class CodestreamHeader:
    rows: int
    columns: int
    components: int
    precision: int
    tiles: int = 1


def check_codestream(syntax: str, frame: bytes, expected: ExpectedImage) -> None:
    """Refuse a frame whose codestream header disagrees with the DICOM header."""
    if syntax == RLE_SYNTAX:
        _check_rle(frame, expected)
        return
    if syntax in JPEG_SYNTAXES:
        header, kind = jpeg_header(frame), "JPEG"
    elif syntax in J2K_SYNTAXES:
        header, kind = j2k_header(frame), "JPEG 2000"
    else:
        return
    if b"\xff\xd9" not in frame[-10:]:  # EOI / EOC: decoders fill a cut-off image silently
        raise _damaged(f"a {kind} codestream is cut off (it has no end marker)")
    if (header.rows, header.columns) != (expected.rows, expected.columns):
        raise _damaged(f"the {kind} codestream declares another image size than Rows/Columns")
    if header.components != expected.samples:
        raise _damaged(f"the {kind} codestream has another number of components")
    if not 1 <= header.precision <= max(expected.bits_allocated, 8):
        raise _damaged(f"the {kind} codestream declares more bits than Bits Allocated")
    if header.tiles > _MAX_J2K_TILES:
        raise _damaged(f"the {kind} codestream declares too many tiles")


def jpeg_header(data: bytes) -> CodestreamHeader:
    """The frame header (SOFn, or SOF55 for JPEG-LS) of a JPEG codestream."""
    if data[:2] != b"\xff\xd8":
        raise _damaged("a frame does not start with a JPEG SOI marker")
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise _damaged("the JPEG header has bytes outside any marker segment")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > size or marker in (0xD9, 0xDA):
            break
        if marker in _JPEG_SOF:
            if length < 8:
                break
            precision, rows, columns, components = struct.unpack_from(">BHHB", data, pos + 4)
            return CodestreamHeader(rows, columns, components, precision)
        pos += 2 + length
    raise _damaged("no JPEG frame header precedes the image data")


def j2k_header(data: bytes) -> CodestreamHeader:
    """The image and tile size (SIZ marker) of a JPEG 2000 codestream (or JP2 file)."""
    if data.startswith(_JP2_SIGNATURE):
        data = _jp2_codestream(data)
    if data[:4] != b"\xff\x4f\xff\x51" or len(data) < 42:
        raise _damaged("a frame does not start with a JPEG 2000 SOC and SIZ marker")
    fields = struct.unpack_from(">HHLLLLLLLLH", data, 4)
    lsiz, _rsiz, xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz = fields
    if csiz < 1 or lsiz != 38 + 3 * csiz or len(data) < 4 + lsiz:
        raise _damaged("the JPEG 2000 SIZ marker is malformed")
    if xo >= xsiz or yo >= ysiz or xt == 0 or yt == 0 or xto > xo or yto > yo:
        raise _damaged("the JPEG 2000 image or tile geometry is invalid")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    precision = max((data[42 + 3 * c] & 0x7F) + 1 for c in range(csiz))
    return CodestreamHeader(ysiz - yo, xsiz - xo, csiz, precision, tiles)


def _jp2_codestream(data: bytes) -> bytes:
    pos, size = 0, len(data)
    while pos + 8 <= size:
        length, box = struct.unpack_from(">L4s", data, pos)
        header = 8
        if length == 1 and pos + 16 <= size:
            (length,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif length == 0:
            length = size - pos
        if length < header:
            break
        if box == b"jp2c":
            return data[pos + header : pos + length]
        pos += length
    raise _damaged("the JP2 file holds no codestream box")


def _check_rle(frame: bytes, expected: ExpectedImage) -> None:
    if len(frame) < 64:
        raise _damaged("an RLE frame is shorter than its 64-byte header")
    header = struct.unpack_from("<16L", frame, 0)
    segments, offsets = header[0], header[1 : 1 + header[0]] if header[0] <= 15 else ()
    wanted = expected.samples * max(1, expected.bits_allocated // 8)
    if segments != wanted or not offsets or offsets[0] != 64:
        raise _damaged("the RLE header lists another number of segments than the image has")
    if any(b <= a for a, b in itertools.pairwise(offsets)) or offsets[-1] >= len(frame):
        raise _damaged("the RLE segment offsets point outside the frame")
