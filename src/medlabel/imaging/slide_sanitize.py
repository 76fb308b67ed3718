"""De-identified copies of whole-slide images: the pyramid byte for byte, nothing else.

A whole-slide image carries identifying data outside its pyramid: the *label* image (a photo
of the glass label, often with the patient's name), the *macro* (overview) image, free text in
the TIFF ImageDescription (Aperio: ``Filename``, ``Date``, ``Time``, ``User``, ``ScanScope
ID`` ...), ASCII tags (DateTime, Artist, HostComputer, DocumentName, PageName, Software with
serial numbers), XMP, IPTC, EXIF and GPS blocks, private tags. Ingest stores the copy that
:func:`sanitize_slide` writes, never the upload (SECURITY.md 0.2 and case 18).

What the copy holds
-------------------
A **new TIFF built from an allowlist**: a fresh header, one IFD per pyramid level holding only
the tags needed to decode it (size, tiling, compression, BitsPerSample, Photometric,
JPEGTables, YCbCr tags, resolution, ICC profile ...), and the level's tiles copied unchanged
(no recompression). Bytes that no kept tag points at are never copied, so removed images,
their IFDs, EXIF sub-IFDs, slack between tiles and data after the last IFD cannot survive.
This is why the upload is not edited in place (unlinking IFDs, zeroing what was unlinked,
padding text with spaces): that is a denylist, which misses what it does not know about,
and costs the same one pass of I/O. Byte order and classic/BigTIFF are kept (classic
becomes BigTIFF only if the copy would not fit in 4 GiB).

- **Aperio SVS**: the tiled directories are the levels, as OpenSlide reads them; the thumbnail
  (second directory), label and macro are removed, and so is a tiled directory described as
  a label or macro. Level 0's ImageDescription becomes its first line (``Aperio Image Library
  v...``: OpenSlide needs the ``Aperio`` prefix), ``medlabel de-identified copy``, and only
  ``AppMag`` and ``MPP`` when they are plain numbers, so objective power and microns per pixel
  are unchanged; the other levels have none. The thumbnail is harmless (a small level 0) but
  is dropped too: the viewer's overview comes from the pyramid, and the rule stays simple:
  only pyramid levels are stored.
- **Generic tiled TIFF**: the levels are the first directory and every tiled directory with the
  reduced-resolution bit of NewSubfileType (what OpenSlide reads); the other directories are
  removed and reported as ``page-<index>``. XResolution/YResolution/ResolutionUnit are kept.
- **Every other format** (MIRAX, Hamamatsu VMS/VMU/NDPI, Leica SCN, Philips TIFF, Ventana BIF,
  Sakura, Trestle, DICOM WSI, anything OpenSlide does not read, and big-endian classic TIFF,
  which OpenSlide 4.0.1 does not read) is ``Unsupported``: their labels live in XML, private
  tags, side files or non-standard offsets that are not rewritten here. Convert them to
  pyramidal TIFF without associated images (e.g. ``vips tiffsave in.ndpi out.tif --tile
  --pyramid --compression jpeg``); DICOM WSI goes through DICOM ingest.

The copy is then opened with OpenSlide: vendor, level dimensions, microns per pixel and
objective power must equal the upload's and no associated image may remain, or the copy is
deleted and ``Unsupported`` raised. It is written to a hidden file next to ``out_path`` and
renamed into place only then: ``out_path`` never holds a partial or unchecked copy. It is not
fsynced: the caller moves it into the blob store, which owns durability.

Quarantine reasons (``SanitizedSlide.quarantine_reasons``, in this order)
-----------------------------------------------------------------------
``slide_scan_area_unknown``
    A generic tiled TIFF: no scanner metadata says which area the pyramid shows, so it may
    include the glass label. A reviewer checks the overview before release.
``slide_tile_metadata``
    JPEGTables or the first tile of a JPEG level holds COM or APPn segments (EXIF, XMP,
    comments; JFIF, ICC and Adobe segments are fine), which are copied with the tiles.

Untrusted input
---------------
``SlideLimits`` are checked by opening the upload with OpenSlide before anything is read here.
Fixed bounds: 1024 directories (a chain that loops or points outside the file is
``InvalidInput``), 4096 entries per directory, 64 MiB per tag value, 2**23 tiles per level
(``TooLarge``). Tiles outside the file or partly overlapping one another are ``InvalidInput``;
tiles sharing one identical byte range stay shared. Old-style JPEG (Compression 6), whose
data is found through offset tags, is ``Unsupported``.

Limitations
-----------
Pixels are not inspected: text in the pyramid itself (a scan that includes the label, pen
marks) stays. JPEG 2000 codestream comments are kept, and only the first tile of each JPEG
level is checked for metadata segments. The ICC profile is kept for colour fidelity (its text
names the scanner or profile, not the patient).
"""

from __future__ import annotations

import itertools
import os
import re
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging.slide import SlideInfo, SlideLimits, open_slide


@dataclass(frozen=True)
class SanitizedSlide:
    path: Path  # the sanitized copy (written to out_path)
    info: SlideInfo  # from slide.open_slide on the sanitized copy
    removed_images: tuple[str, ...]  # e.g. ("thumbnail", "label", "macro")
    quarantine_reasons: tuple[str, ...]  # () unless PHI may remain (see module doc)


_SUPPORTED_VENDORS: Final = ("aperio", "generic-tiff")
_MAX_PAGES: Final = 1024
_MAX_ENTRIES: Final = 4096
_MAX_VALUE_BYTES: Final = 1 << 26
_MAX_TILES: Final = 1 << 23  # 8 bytes each: the offsets fit _MAX_VALUE_BYTES
_COPY_CHUNK: Final = 1 << 23
_TYPE_SIZES: Final = dict(zip(range(1, 14), (1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4), strict=True))
_TYPE_SIZES_BIG: Final = {**_TYPE_SIZES, 16: 8, 17: 8, 18: 8}
_INT_TYPES: Final = {1: "u1", 3: "u2", 4: "u4", 16: "u8"}
# Tags copied verbatim into kept levels: image structure and colour only, never text.
_KEEP_TAGS: Final = frozenset(
    {254, 256, 257, 258, 259, 262, 266, 277, 282, 283, 284, 296, 317, 318, 319, 320, 322}
    | {323, 338, 339, 340, 341, 347, 529, 530, 531, 532, 32997, 32998, 34675}
)
_DESCRIPTION, _TILE_WIDTH, _TILE_OFFSETS, _TILE_BYTE_COUNTS = 270, 322, 324, 325
_APERIO_FIRST_LINE: Final = re.compile(r"Aperio[A-Za-z0-9 ._()-]{0,80}")
_APERIO_NUMBERS: Final = ("AppMag", "MPP")
_NUMBER: Final = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,12})?")
_ASSOCIATED_NAMES: Final = ("label", "macro", "thumbnail")

_Value = tuple[int, int, int, bytes]  # tag, TIFF type, count, value bytes in file byte order


def sanitize_slide(path: Path, out_path: Path, limits: SlideLimits | None = None) -> SanitizedSlide:
    """Write a copy of the slide at ``path`` to ``out_path`` without associated images or text.

    Raises ``Unsupported`` for formats that cannot be de-identified (see the module doc),
    ``InvalidInput`` for damaged or hostile files and ``TooLarge`` beyond ``limits``.
    """
    limits = limits or SlideLimits()
    path, out_path = Path(path), Path(out_path)
    if out_path.resolve() == path.resolve():
        raise ValueError("sanitize_slide writes a new file: out_path must differ from path.")
    vendor = _vendor(path)
    original = open_slide(path, limits)  # TooLarge / InvalidInput before any copying
    partial = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.partial")
    try:
        with _Source(path) as src:
            plan = _plan(src, _read_tiff(src), vendor)
            _write_copy(src, plan, partial)
        info = open_slide(partial, limits)
        _verify(original, info, plan)
        os.replace(partial, out_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return SanitizedSlide(out_path, info, plan.removed, plan.reasons)


def _vendor(path: Path) -> str:
    try:
        import openslide
    except (ImportError, OSError) as exc:
        raise Unsupported(
            "De-identifying slides needs OpenSlide: pip install openslide-python openslide-bin."
        ) from exc
    try:
        vendor = openslide.OpenSlide.detect_format(path)
    except openslide.OpenSlideError:
        vendor = None
    if vendor not in _SUPPORTED_VENDORS:
        raise Unsupported(
            f"This slide format ({vendor or 'not recognised by OpenSlide'}) cannot be "
            "de-identified yet: its label, macro image or identifying metadata cannot be "
            "removed safely. Convert it to pyramidal TIFF (for example `vips tiffsave in out.tif "
            "--tile --pyramid`) and upload that."
        )
    return str(vendor)


def _verify(original: SlideInfo, info: SlideInfo, plan: _Plan) -> None:
    expected = list(original.level_dimensions)
    for dims in plan.removed_levels:
        if dims in expected:
            expected.remove(dims)
    same = (
        info.vendor == original.vendor
        and list(info.level_dimensions) == expected
        and (info.mpp_x, info.mpp_y) == (original.mpp_x, original.mpp_y)
        and info.objective_power == original.objective_power
        and not info.associated_image_names
    )
    if not same:
        raise Unsupported(
            "The slide could not be de-identified without changing its pyramid or metadata "
            f"(vendor {original.vendor}); convert it to pyramidal TIFF and upload that."
        )


# -- reading the TIFF structure -------------------------------------------------------------


def _damaged(why: str) -> InvalidInput:
    return InvalidInput(f"The slide's TIFF structure is damaged ({why}); export the slide again.")


class _Source:
    """Bounds-checked positional reads of the upload."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise _damaged(f"{n} bytes at offset {offset} lie outside the file")
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise _damaged("the file shrank while it was read")
        return data


@dataclass(frozen=True)
class _Format:
    order: Literal["<", ">"]
    big: bool

    @property
    def pointer(self) -> str:
        return "Q" if self.big else "I"

    @property
    def inline(self) -> int:
        return 8 if self.big else 4


@dataclass(frozen=True)
class _Entry:
    tag: int
    type: int
    count: int
    at: int  # file offset of the value bytes (the entry itself when they fit inline)
    nbytes: int  # -1 for a type this module does not know


@dataclass(frozen=True)
class _Page:
    index: int
    entries: dict[int, _Entry]

    @property
    def tiled(self) -> bool:
        return _TILE_WIDTH in self.entries


@dataclass(frozen=True)
class _Tiff:
    fmt: _Format
    pages: tuple[_Page, ...]


def _read_tiff(src: _Source) -> _Tiff:
    """The IFD chain, bounded: a loop, a pointer outside the file or too many pages is refused."""
    head = src.read(0, 16) if src.size >= 16 else src.read(0, 8)
    orders: dict[bytes, Literal["<", ">"]] = {b"II": "<", b"MM": ">"}
    order = orders.get(head[:2])
    magic = struct.unpack(f"{order}H", head[2:4])[0] if order else 0
    if order is None or magic not in (42, 43):
        raise Unsupported("The file is not a TIFF; convert the slide to pyramidal TIFF.")
    fmt = _Format(order, magic == 43)
    if fmt.big and struct.unpack(f"{order}HH", head[4:8]) != (8, 0):
        raise _damaged("bad BigTIFF header")
    offset = struct.unpack(f"{order}{fmt.pointer}", head[8:16] if fmt.big else head[4:8])[0]
    pages: list[_Page] = []
    seen: set[int] = set()
    while offset:
        if offset in seen or len(pages) >= _MAX_PAGES:
            raise _damaged("its directory chain loops or has too many directories")
        seen.add(offset)
        page, offset = _read_ifd(src, fmt, offset, len(pages))
        pages.append(page)
    if not pages:
        raise _damaged("it has no image directory")
    return _Tiff(fmt, tuple(pages))


def _read_ifd(src: _Source, fmt: _Format, offset: int, index: int) -> tuple[_Page, int]:
    count_size, count_code = (8, "Q") if fmt.big else (2, "H")
    entry_size, sizes = (20, _TYPE_SIZES_BIG) if fmt.big else (12, _TYPE_SIZES)
    n = struct.unpack(f"{fmt.order}{count_code}", src.read(offset, count_size))[0]
    if not 1 <= n <= _MAX_ENTRIES:
        raise _damaged(f"directory {index} has {n} entries")
    block = src.read(offset + count_size, n * entry_size + fmt.inline)
    entries: dict[int, _Entry] = {}
    for i in range(n):
        raw = block[i * entry_size : (i + 1) * entry_size]
        tag, kind, count, value = struct.unpack(f"{fmt.order}HH{fmt.pointer}{fmt.inline}s", raw)
        size = sizes.get(kind)
        nbytes = count * size if size is not None else -1
        field_at = offset + count_size + i * entry_size + 4 + fmt.inline
        at = field_at if 0 <= nbytes <= fmt.inline else _unpack_pointer(fmt, value)
        entries.setdefault(tag, _Entry(tag, kind, count, at, nbytes))  # first one wins
    next_offset = _unpack_pointer(fmt, block[-fmt.inline :])
    return _Page(index, entries), next_offset


def _unpack_pointer(fmt: _Format, raw: bytes) -> int:
    return int(struct.unpack(f"{fmt.order}{fmt.pointer}", raw)[0])


def _raw(src: _Source, entry: _Entry) -> bytes:
    if not 0 <= entry.nbytes <= _MAX_VALUE_BYTES:
        raise _damaged(f"tag {entry.tag} has an unknown type or a value that is too long")
    return src.read(entry.at, entry.nbytes)


def _ints(src: _Source, fmt: _Format, page: _Page, tag: int) -> NDArray[np.uint64]:
    entry = page.entries.get(tag)
    if entry is None or entry.type not in _INT_TYPES or entry.count < 1:
        raise _damaged(f"directory {page.index} lacks a readable integer tag {tag}")
    dtype = np.dtype(_INT_TYPES[entry.type]).newbyteorder(fmt.order)
    return np.frombuffer(_raw(src, entry), dtype=dtype).astype(np.uint64)


def _int(src: _Source, fmt: _Format, page: _Page, tag: int, default: int | None = None) -> int:
    if tag not in page.entries and default is not None:
        return default
    return int(_ints(src, fmt, page, tag)[0])


def _text(src: _Source, page: _Page, tag: int = _DESCRIPTION) -> str:
    entry = page.entries.get(tag)
    if entry is None or entry.type != 2:
        return ""
    return _raw(src, entry).split(b"\0", 1)[0].decode("latin-1")


# -- choosing what to keep ------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    page: _Page
    offsets: NDArray[np.uint64]  # 0 where the tile is empty
    byte_counts: NDArray[np.uint64]
    values: tuple[_Value, ...]  # kept tags but the tile offsets and byte counts


@dataclass(frozen=True)
class _Plan:
    fmt: _Format
    levels: tuple[_Level, ...]
    removed: tuple[str, ...]
    removed_levels: tuple[tuple[int, int], ...]  # tiled pages OpenSlide counted as levels
    reasons: tuple[str, ...]


def _plan(src: _Source, tiff: _Tiff, vendor: str) -> _Plan:
    aperio, fmt = vendor == "aperio", tiff.fmt
    levels: list[_Level] = []
    removed: list[str] = []
    removed_levels: list[tuple[int, int]] = []
    for page in tiff.pages:
        name = _associated_name(src, fmt, page, aperio)
        if name is None:
            text = _aperio_description(_text(src, page)) if aperio and not levels else None
            levels.append(_level(src, fmt, page, text))
            continue
        removed.append(name)
        if aperio and page.tiled:  # OpenSlide showed it as a level; it shows no more
            removed_levels.append((_int(src, fmt, page, 256), _int(src, fmt, page, 257)))
    if not levels or levels[0].page.index != 0:
        raise Unsupported(
            "The slide's first image is not a pyramid level, so its pyramid cannot be told "
            "apart from its label images; convert it to pyramidal TIFF."
        )
    reasons = [] if aperio else ["slide_scan_area_unknown"]
    if any(_jpeg_metadata(src, fmt, level) for level in levels):
        reasons.append("slide_tile_metadata")
    return _Plan(fmt, tuple(levels), tuple(removed), tuple(removed_levels), tuple(reasons))


def _associated_name(src: _Source, fmt: _Format, page: _Page, aperio: bool) -> str | None:
    """None for a pyramid level; else the name reported for the removed image."""
    if not aperio:
        if page.tiled and (page.index == 0 or _int(src, fmt, page, 254, 0) & 1):
            return None
        return f"page-{page.index}"
    lines = re.split(r"[\r\n]+", _text(src, page), maxsplit=2)
    described = lines[1].split(" ", 1)[0] if len(lines) > 1 else ""
    if described in _ASSOCIATED_NAMES:
        return described  # an associated image, even where it is tiled
    if page.tiled:
        return None
    return "thumbnail" if page.index == 1 else f"page-{page.index}"


def _aperio_description(text: str) -> str:
    """Level 0's ImageDescription with only what OpenSlide needs; no free text survives."""
    head, *fields = text.split("|")
    first = re.split(r"[\r\n]", head, maxsplit=1)[0].strip()
    if not _APERIO_FIRST_LINE.fullmatch(first):
        first = "Aperio Image Library"
    values: dict[str, str | None] = {}
    for field in fields:  # the last occurrence wins, as in OpenSlide
        name, sep, value = field.partition("=")
        if sep and name.strip() in _APERIO_NUMBERS:
            number = value.strip()
            values[name.strip()] = number if _NUMBER.fullmatch(number) else None
    kept = "".join(f"|{name} = {value}" for name, value in values.items() if value is not None)
    return f"{first}\r\nmedlabel de-identified copy{kept}"


def _level(src: _Source, fmt: _Format, page: _Page, description: str | None) -> _Level:
    width, height = _int(src, fmt, page, 256), _int(src, fmt, page, 257)
    tile_w, tile_h = _int(src, fmt, page, 322), _int(src, fmt, page, 323)
    if min(width, height, tile_w, tile_h) < 1:
        raise _damaged(f"directory {page.index} has an empty image or tile size")
    if _int(src, fmt, page, 259, 1) == 6:
        raise Unsupported(
            "The slide uses old-style JPEG compression (6), whose data cannot be copied "
            "safely; convert it to pyramidal TIFF with JPEG compression."
        )
    planes = _int(src, fmt, page, 277, 1) if _int(src, fmt, page, 284, 1) == 2 else 1
    tiles = -(-width // tile_w) * -(-height // tile_h) * planes
    if tiles > _MAX_TILES:
        raise TooLarge(
            f"Directory {page.index} of the slide has {tiles} tiles, above the limit of "
            f"{_MAX_TILES}; export it with larger tiles (256 x 256 or more)."
        )
    offsets = _ints(src, fmt, page, _TILE_OFFSETS)
    counts = _ints(src, fmt, page, _TILE_BYTE_COUNTS)
    if len(offsets) != tiles or len(counts) != tiles:
        raise _damaged(f"directory {page.index} lists {len(offsets)} tiles, not {tiles}")
    size = np.uint64(src.size)
    offsets = np.where(counts > 0, offsets, np.uint64(0))
    if np.any(offsets > size) or np.any(counts > size) or np.any(offsets + counts > size):
        raise _damaged(f"tile data of directory {page.index} lies outside the file")
    kept = [
        (tag, e.type, e.count, _raw(src, e)) for tag, e in page.entries.items() if tag in _KEEP_TAGS
    ]
    if description is not None:
        text = description.encode("ascii") + b"\0"
        kept.append((_DESCRIPTION, 2, len(text), text))
    return _Level(page, offsets, counts, tuple(kept))


def _jpeg_metadata(src: _Source, fmt: _Format, level: _Level) -> bool:
    """True when JPEGTables or the level's first JPEG tile has COM/APPn (not JFIF/ICC/Adobe)."""
    if _int(src, fmt, level.page, 259, 1) != 7:
        return False
    streams = [value[3] for value in level.values if value[0] == 347]
    nonempty = np.flatnonzero(level.byte_counts)
    if len(nonempty):
        first = int(nonempty[0])
        length = min(int(level.byte_counts[first]), 1 << 16)
        streams.append(src.read(int(level.offsets[first]), length))
    return any(_has_text_segment(stream) for stream in streams)


def _has_text_segment(data: bytes) -> bool:
    pos = 2 if data[:2] == b"\xff\xd8" else len(data)
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more headers
            return False
        if marker == 0xFE or (0xE1 <= marker <= 0xEF and marker not in (0xE2, 0xEE)):
            return True
        if marker == 0xFF:  # fill byte
            pos += 1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


# -- writing the copy -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Tiles:
    """The kept tiles' distinct byte ranges in file order; the copy stores them in that order."""

    starts: NDArray[np.uint64]  # sorted, distinct, not overlapping
    lengths: NDArray[np.uint64]
    placed: tuple[NDArray[np.uint64], ...]  # per level: each tile's offset in the tile data
    total: int

    @classmethod
    def of(cls, levels: tuple[_Level, ...]) -> _Tiles:
        offsets = np.concatenate([level.offsets for level in levels])
        counts = np.concatenate([level.byte_counts for level in levels])
        used = np.flatnonzero(counts > 0)
        order = used[np.argsort(offsets[used])]
        offsets_sorted, counts_sorted = offsets[order], counts[order]
        same = offsets_sorted[1:] == offsets_sorted[:-1]
        fresh = np.concatenate([[True], ~same])
        starts, lengths = offsets_sorted[fresh], counts_sorted[fresh]
        clash = np.any(same & (counts_sorted[1:] != counts_sorted[:-1]))
        if clash or np.any(starts[1:] < starts[:-1] + lengths[:-1]):
            raise _damaged("tiles of the pyramid overlap each other")
        before = np.zeros(len(starts), np.uint64)
        np.cumsum(lengths[:-1], out=before[1:])
        placed = np.zeros(len(offsets), np.uint64)
        placed[order] = before[np.cumsum(fresh) - 1]
        bounds = np.cumsum([0, *(len(level.offsets) for level in levels)]).tolist()
        parts = tuple(placed[a:b] for a, b in itertools.pairwise(bounds))
        return cls(starts, lengths, parts, int(lengths.sum()))

    def moved(self, index: int, level: _Level, data_start: int) -> NDArray[np.uint64]:
        """Level ``index``'s tile offsets in the copy (0 stays 0 for empty tiles)."""
        moved = self.placed[index] + np.uint64(data_start)
        return np.where(level.byte_counts > 0, moved, np.uint64(0))

    def runs(self) -> Iterator[tuple[int, int]]:
        """(source offset, length) of maximal contiguous stretches, in file order."""
        if not len(self.starts):
            return
        ends = self.starts + self.lengths
        breaks = np.flatnonzero(self.starts[1:] != ends[:-1]) + 1
        firsts = np.concatenate([[0], breaks]).tolist()
        lasts = np.concatenate([breaks - 1, [len(self.starts) - 1]]).tolist()
        for first, last in zip(firsts, lasts, strict=True):
            yield int(self.starts[first]), int(ends[last] - self.starts[first])


def _ifd_bytes(fmt: _Format, values: list[_Value], at: int, next_at: int) -> bytes:
    """One IFD at file offset ``at``, its out-of-line values right after it (even offsets)."""
    count_code, count_size, entry_size = ("Q", 8, 20) if fmt.big else ("H", 2, 12)
    extra_at = at + count_size + len(values) * entry_size + fmt.inline
    head = [struct.pack(f"{fmt.order}{count_code}", len(values))]
    extra: list[bytes] = []
    for tag, kind, count, data in sorted(values):
        if len(data) <= fmt.inline:
            field = data.ljust(fmt.inline, b"\0")
        else:
            field = struct.pack(f"{fmt.order}{fmt.pointer}", extra_at)
            extra.append(data + b"\0" * (len(data) % 2))
            extra_at += len(extra[-1])
        head.append(struct.pack(f"{fmt.order}HH{fmt.pointer}", tag, kind, count) + field)
    head.append(struct.pack(f"{fmt.order}{fmt.pointer}", next_at))
    return b"".join(head + extra)


def _tile_values(
    fmt: _Format, offsets: NDArray[np.uint64], counts: NDArray[np.uint64]
) -> list[_Value]:
    kind, dtype = (16, np.dtype("u8")) if fmt.big else (4, np.dtype("u4"))
    dtype = dtype.newbyteorder(fmt.order)
    return [
        (_TILE_OFFSETS, kind, len(offsets), offsets.astype(dtype).tobytes()),
        (_TILE_BYTE_COUNTS, kind, len(counts), counts.astype(dtype).tobytes()),
    ]


def _structure(fmt: _Format, levels: tuple[_Level, ...], tiles: _Tiles) -> bytes:
    """Header and IFDs (with their values), padded to an even length; the tiles follow."""
    header_size = 16 if fmt.big else 8
    blank = [_tile_values(fmt, lv.offsets, lv.byte_counts) for lv in levels]
    sizes = [
        len(_ifd_bytes(fmt, [*lv.values, *b], 0, 0)) for lv, b in zip(levels, blank, strict=True)
    ]
    starts = np.cumsum([header_size, *sizes]).tolist()
    data_start = starts[-1] + starts[-1] % 2
    magic = b"II" if fmt.order == "<" else b"MM"
    if fmt.big:
        blocks = [struct.pack(f"{fmt.order}2sHHHQ", magic, 43, 8, 0, header_size)]
    else:
        blocks = [struct.pack(f"{fmt.order}2sHI", magic, 42, header_size)]
    for i, level in enumerate(levels):
        next_at = starts[i + 1] if i + 1 < len(levels) else 0
        moved = _tile_values(fmt, tiles.moved(i, level, data_start), level.byte_counts)
        blocks.append(_ifd_bytes(fmt, [*level.values, *moved], starts[i], next_at))
    return b"".join(blocks).ljust(data_start, b"\0")


def _write_copy(src: _Source, plan: _Plan, out: Path) -> None:
    tiles = _Tiles.of(plan.levels)
    structure = _structure(plan.fmt, plan.levels, tiles)
    if not plan.fmt.big and len(structure) + tiles.total >= 1 << 32:
        structure = _structure(_Format(plan.fmt.order, big=True), plan.levels, tiles)
    with open(out, "xb") as dst:
        dst.write(structure)
        dst.flush()  # the tiles go straight to the file descriptor, after the structure
        for start, length in tiles.runs():
            _copy_range(src, dst.fileno(), start, start + length)


def _copy_range(src: _Source, dst: int, at: int, end: int) -> None:
    """Append ``[at, end)`` of the upload to ``dst``: in the kernel where it can."""
    while at < end:
        n = min(end - at, _COPY_CHUNK)
        try:
            copied = os.copy_file_range(src.fd, dst, n, at)
        except OSError:  # another file system, an old kernel: copy through memory
            copied = os.write(dst, src.read(at, n))
        if copied <= 0:
            raise _damaged("the file shrank while it was read")
        at += copied
