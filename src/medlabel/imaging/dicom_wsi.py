"""DICOM whole-slide images (VL Whole Slide Microscopy Image Storage) as ``slide`` items.

A DICOM WSI is a *series*: one instance per pyramid level (``VOLUME`` images, each a tiled
multi-frame image whose frames are the tiles), plus ``LABEL``, ``OVERVIEW`` and ``THUMBNAIL``
images. Ingest handles it in two steps:

1. **Per instance, in the ingest sandbox** (:func:`scan_volume`): after the ordinary DICOM
   de-identification, a ``LABEL`` or ``OVERVIEW`` instance (a photo of the glass label,
   which shows names and barcodes) and a ``THUMBNAIL`` (the viewer's overview comes from the
   pyramid, as for SVS) are *dropped*: nothing of them is stored, and the ingest report says
   why (:func:`dropped_reason`). A ``VOLUME`` instance is checked (below) and stored as its
   de-identified DICOM file only, with a small *tile index* blob (the byte range of every
   tile in that file); its tiles are not decoded and no frames blob is written.
2. **Per series, when items are built** (:func:`plan_pyramid`, :func:`build_pyramid`): the
   series' ``VOLUME`` instances become one pyramid, largest first; each level's tiles are
   copied, byte for byte, from the de-identified instances into a new **pyramidal tiled
   TIFF** (one IFD per level, only structural tags), the same kind of file that
   ``slide_sanitize`` stores for SVS uploads, so the Deep Zoom endpoints serve it through
   OpenSlide unchanged. The TIFF is opened with OpenSlide and checked before it is stored;
   it is a content-addressed blob and is fully determined by the de-identified instances, so
   re-ingesting the same files finds the same item.

Accepted ``VOLUME`` instances
-----------------------------
- ``DimensionOrganizationType`` ``TILED_FULL`` (or a single frame holding the whole matrix),
  one focal plane and one optical path; ``TILED_SPARSE`` and z-stacks are ``Unsupported``.
- Transfer syntax JPEG Baseline (tiles copied as TIFF JPEG tiles; the colour transform is
  read from the first tile's markers, as libjpeg reads it: JFIF or Adobe transform 1 is
  YCbCr, Adobe transform 0 or component ids ``R G B`` is RGB) or Explicit VR Little Endian
  with 8-bit interleaved RGB (tiles copied uncompressed). Every other encoding (JPEG 2000,
  JPEG-LS, JPEG XL, RLE ...) is ``Unsupported``: convert to JPEG baseline tiles.
- One fragment per frame (what the standard recommends for tiled images).
- ``SlideLimits``: the total pixel matrix is checked like an SVS level 0, and a level has at
  most 2**23 tiles.
- Every tile is checked before it is indexed: a JPEG tile must start with SOI, end with EOI,
  declare the DICOM tile size and 3 components, and have the first tile's colour transform.

Quarantine reasons (besides those of ``deid_quarantine``)
--------------------------------------------------------
``slide_label_in_image``
    Specimen Label In Image (0048,0010) is ``YES``: the pyramid itself shows the label.
``slide_tile_metadata``
    A JPEG tile holds COM or APPn segments (EXIF, XMP, comments; JFIF, ICC and Adobe are
    fine): they are copied with the tiles, as for SVS.

Geometry and metadata: spacing comes from Pixel Spacing (shared functional groups, mm, DICOM
order row/column) and the objective power from the Optical Path Sequence; the item's
geometry is planar ``(TotalPixelMatrixColumns, TotalPixelMatrixRows, 1)``.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
from numpy.typing import NDArray

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.domain.geometry import planar
from medlabel.imaging.slide import SlideInfo, SlideLimits, open_slide

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from medlabel.storage.blobs import BlobStore

WSI_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.77.1.6"
JPEG_BASELINE: Final = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE: Final = "1.2.840.10008.1.2.1"
MAX_TILES: Final = 1 << 23
INDEX_VERSION: Final = "wsi-tiles:v1"
_PIXEL_DATA: Final = 0x7FE00010
_COMPRESSION_NONE, _COMPRESSION_JPEG = 1, 7
_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR = 2, 6
_KEPT_FLAVOURS: Final = frozenset({"VOLUME"})
_DROPPED: Final = {
    "LABEL": (
        "a whole-slide label image (a photo of the glass label, which may show names and "
        "barcodes): dropped, never stored"
    ),
    "OVERVIEW": (
        "a whole-slide overview (macro) image, which usually shows the glass label: "
        "dropped, never stored"
    ),
    "THUMBNAIL": (
        "a whole-slide thumbnail image: dropped, never stored (the viewer's overview is "
        "built from the pyramid)"
    ),
}


def is_wsi(sop_class_uid: str | None) -> bool:
    return sop_class_uid == WSI_SOP_CLASS


def image_flavour(image_type: Sequence[str] | None) -> str:
    """Value 3 of Image Type (``VOLUME``, ``LABEL``, ``OVERVIEW``, ``THUMBNAIL``), upper case."""
    values = [str(v).strip().upper() for v in image_type or ()]
    return values[2] if len(values) > 2 else ""


def dropped_reason(image_type: Sequence[str] | None) -> str | None:
    """Why a WSI instance is not stored, or ``None`` for a pyramid level (``VOLUME``)."""
    flavour = image_flavour(image_type)
    if flavour in _KEPT_FLAVOURS:
        return None
    return _DROPPED.get(
        flavour,
        "a whole-slide image that Image Type does not mark as a pyramid level (VOLUME): "
        "dropped, never stored",
    )


# -- one instance ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WsiLevel:
    """One stored pyramid level: what the series builder needs (JSON-able via to_dict)."""

    width: int  # TotalPixelMatrixColumns
    height: int  # TotalPixelMatrixRows
    tile_width: int  # Columns
    tile_height: int  # Rows
    tiles: int
    compression: int  # TIFF Compression of the copied tiles: 7 (JPEG) or 1 (none)
    photometric: int  # TIFF PhotometricInterpretation: 6 (YCbCr) or 2 (RGB)
    subsampling: tuple[int, int] | None  # TIFF YCbCrSubsampling (from the JPEG header)
    spacing_mm: tuple[float, float] | None  # (x, y): column spacing, row spacing
    objective_power: float | None
    tiles_sha256: str = ""  # the tile index blob

    @property
    def grid(self) -> tuple[int, int]:
        return -(-self.width // self.tile_width), -(-self.height // self.tile_height)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "tile_width": self.tile_width,
            "tile_height": self.tile_height,
            "tiles": self.tiles,
            "compression": self.compression,
            "photometric": self.photometric,
            "subsampling": list(self.subsampling) if self.subsampling else None,
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
            "objective_power": self.objective_power,
            "tiles_sha256": self.tiles_sha256,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WsiLevel:
        sub, spacing = d.get("subsampling"), d.get("spacing_mm")
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            tile_width=int(d["tile_width"]),
            tile_height=int(d["tile_height"]),
            tiles=int(d["tiles"]),
            compression=int(d["compression"]),
            photometric=int(d["photometric"]),
            subsampling=(int(sub[0]), int(sub[1])) if sub else None,
            spacing_mm=(float(spacing[0]), float(spacing[1])) if spacing else None,
            objective_power=d.get("objective_power"),
            tiles_sha256=str(d.get("tiles_sha256") or ""),
        )


@dataclass(frozen=True)
class ScannedVolume:
    level: WsiLevel
    offsets: NDArray[np.uint64]  # of each tile in the de-identified file, frame order
    lengths: NDArray[np.uint64]
    reasons: tuple[str, ...]

    def index_bytes(self) -> bytes:
        return index_bytes(self.offsets, self.lengths)


def index_bytes(offsets: NDArray[np.uint64], lengths: NDArray[np.uint64]) -> bytes:
    """The tile index blob: little-endian uint64 (offset, length) pairs, in frame order."""
    return np.stack([offsets, lengths], axis=1).astype("<u8").tobytes()


def read_index(data: bytes, tiles: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    pairs = np.frombuffer(data, dtype="<u8")
    if pairs.size != 2 * tiles:
        raise InvalidInput("A stored whole-slide tile index does not match its level.")
    pairs = pairs.reshape(tiles, 2).astype(np.uint64)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def _unsupported(what: str) -> Unsupported:
    return Unsupported(f"This DICOM whole-slide image {what}; it cannot be ingested as a slide.")


def _damaged(what: str) -> InvalidInput:
    return InvalidInput(f"The DICOM whole-slide image is damaged: {what}. Export it again.")


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value in (None, "") and default is not None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise _damaged(f"{keyword} is missing or not a number") from exc
    if number < 0:
        raise _damaged(f"{keyword} is negative")
    return number


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip().upper() if value is not None else ""


def _objective_power(ds: Dataset) -> float | None:
    try:
        value = float(ds.OpticalPathSequence[0].ObjectiveLensPower)
    except (AttributeError, IndexError, TypeError, ValueError, KeyError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def scan_volume(
    ds: Dataset,
    file_bytes: bytes,
    pixel_spacing: tuple[float, float] | None,
    limits: SlideLimits | None = None,
) -> ScannedVolume:
    """Check a de-identified ``VOLUME`` instance (read from ``file_bytes``, our own output)
    and index its tiles; see the module for what is accepted. ``pixel_spacing`` is
    ``instance_info``'s (DICOM order: row, column; mm)."""
    from medlabel.imaging.dicom_limits import quiet

    limits = limits or SlideLimits()
    with quiet():
        return _scan(ds, file_bytes, pixel_spacing, limits)


def _scan(
    ds: Dataset,
    file_bytes: bytes,
    pixel_spacing: tuple[float, float] | None,
    limits: SlideLimits,
) -> ScannedVolume:
    width, height, tile_w, tile_h, frames = _layout(ds, limits)
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    photometric = _text(ds, "PhotometricInterpretation")
    element = ds.get_item(_PIXEL_DATA)
    value_at = getattr(element, "value_tell", None)
    if element is None or not isinstance(value_at, int):
        raise _damaged("it has no Pixel Data")
    uncompressed = WsiLevel(
        width=width,
        height=height,
        tile_width=tile_w,
        tile_height=tile_h,
        tiles=frames,
        compression=_COMPRESSION_NONE,
        photometric=_PHOTOMETRIC_RGB,
        subsampling=None,
        spacing_mm=_spacing(pixel_spacing),
        objective_power=_objective_power(ds),
    )
    reasons = ["slide_label_in_image"] if _text(ds, "SpecimenLabelInImage") == "YES" else []
    if syntax == EXPLICIT_LE:
        if photometric != "RGB":
            raise _unsupported("is uncompressed but not RGB")
        size = tile_w * tile_h * 3
        if len(file_bytes) < value_at + size * frames:
            raise _damaged("its Pixel Data is shorter than its tiles")
        offsets = value_at + size * np.arange(frames, dtype=np.uint64)
        lengths = np.full(frames, size, np.uint64)
        return ScannedVolume(uncompressed, offsets.astype(np.uint64), lengths, tuple(reasons))
    if syntax != JPEG_BASELINE:
        raise _unsupported(
            "is encoded with a transfer syntax other than JPEG baseline or uncompressed RGB "
            "(convert its tiles to JPEG baseline)"
        )
    if photometric not in ("YBR_FULL_422", "YBR_FULL", "RGB"):
        raise _unsupported("has a photometric interpretation other than YBR_FULL(_422) or RGB")
    offsets, lengths = _jpeg_fragments(file_bytes, value_at, frames)
    colour, subsampling, metadata = _check_jpeg_tiles(file_bytes, offsets, lengths, tile_w, tile_h)
    if metadata:
        reasons.append("slide_tile_metadata")
    level = replace(
        uncompressed,
        compression=_COMPRESSION_JPEG,
        photometric=colour,
        subsampling=subsampling if colour == _PHOTOMETRIC_YCBCR else None,
    )
    return ScannedVolume(level, offsets, lengths, tuple(reasons))


def _layout(ds: Dataset, limits: SlideLimits) -> tuple[int, int, int, int, int]:
    """(width, height, tile width, tile height, frames), checked (see the module)."""
    width, height = _int(ds, "TotalPixelMatrixColumns"), _int(ds, "TotalPixelMatrixRows")
    tile_w, tile_h = _int(ds, "Columns"), _int(ds, "Rows")
    frames = _int(ds, "NumberOfFrames", 1)
    if min(width, height, tile_w, tile_h, frames) < 1:
        raise _damaged("its pixel matrix or tile size is empty")
    if max(width, height) > limits.max_side_px or width * height > limits.max_level0_pixels:
        raise TooLarge(
            f"The slide level is {width} x {height} pixels, above the limit "
            f"({limits.max_side_px} per side, {limits.max_level0_pixels} in all)."
        )
    organisation = _text(ds, "DimensionOrganizationType")
    whole = frames == 1 and (tile_w, tile_h) == (width, height)
    if organisation != "TILED_FULL" and not whole:
        raise _unsupported(
            "is not organised TILED_FULL (TILED_SPARSE tiles are positioned one by one)"
        )
    if _int(ds, "TotalPixelMatrixFocalPlanes", 1) > 1 or _int(ds, "NumberOfOpticalPaths", 1) > 1:
        raise _unsupported("has several focal planes or optical paths")
    cols, rows = -(-width // tile_w), -(-height // tile_h)
    if cols * rows > MAX_TILES:
        raise TooLarge(f"A slide level has {cols * rows} tiles, above the limit of {MAX_TILES}.")
    if frames != cols * rows:
        raise _damaged("Number of Frames does not match the tiles of its total pixel matrix")
    if (
        _int(ds, "SamplesPerPixel", 0) != 3
        or _int(ds, "BitsAllocated", 0) != 8
        or _int(ds, "PlanarConfiguration", 0) != 0
    ):
        raise _unsupported("is not 8-bit interleaved colour")
    return width, height, tile_w, tile_h, frames


def _spacing(pixel_spacing: tuple[float, float] | None) -> tuple[float, float] | None:
    if not pixel_spacing or len(pixel_spacing) != 2:
        return None
    row, column = (float(v) for v in pixel_spacing)
    if not all(math.isfinite(v) and v > 0 for v in (row, column)):
        return None
    return column, row


def _jpeg_fragments(
    data: bytes, value_at: int, frames: int
) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """(offset, length) in ``data`` of each frame's single fragment."""
    from medlabel.imaging import codestream

    value = memoryview(data)[value_at:]
    encapsulated = codestream.parse_encapsulated(cast("bytes", value))  # a view: no copy
    if len(encapsulated.fragments) != frames:
        raise _unsupported("does not store exactly one fragment per frame")
    if encapsulated.basic_offsets:
        expected = list(encapsulated.item_offsets)
        if list(encapsulated.basic_offsets) != expected:
            raise _damaged("its Basic Offset Table does not point at its fragments")
    pairs = np.asarray(encapsulated.fragments, dtype=np.uint64).reshape(frames, 2)
    return pairs[:, 0] + np.uint64(value_at), pairs[:, 1].copy()


def _check_jpeg_tiles(
    data: bytes,
    offsets: NDArray[np.uint64],
    lengths: NDArray[np.uint64],
    tile_w: int,
    tile_h: int,
) -> tuple[int, tuple[int, int] | None, bool]:
    """Every tile's header: size, components, end marker and colour transform agree.
    Returns the TIFF photometric, the YCbCr subsampling and whether metadata segments exist."""
    from medlabel.imaging import codestream

    view = memoryview(data)
    first: tuple[int, tuple[int, int] | None] | None = None
    metadata = False
    for offset, length in zip(offsets.tolist(), lengths.tolist(), strict=True):
        head = bytes(view[offset : offset + min(length, 1 << 16)])
        header = codestream.jpeg_header(head)
        if (header.rows, header.columns) != (tile_h, tile_w) or header.components != 3:
            raise _damaged("a tile's JPEG header disagrees with Rows, Columns or Samples")
        if header.precision != 8:
            raise _damaged("a tile is not 8-bit JPEG")
        if b"\xff\xd9" not in view[offset + max(0, length - 10) : offset + length].tobytes():
            raise _damaged("a JPEG tile is cut off (it has no end marker)")
        markers = _jpeg_markers(head)
        if first is None:
            first = markers[:2]
        elif markers[:2] != first:
            raise _unsupported("mixes JPEG tiles of different colour encodings")
        metadata = metadata or markers[2]
    assert first is not None
    return first[0], first[1], metadata


def _jpeg_markers(data: bytes) -> tuple[int, tuple[int, int] | None, bool]:
    """(TIFF photometric, YCbCr subsampling, has text segments) of a JPEG stream's header,
    following libjpeg's rules for the colour transform: JFIF is YCbCr, then an Adobe
    segment's transform (0: RGB), then component ids ``R G B``; YCbCr otherwise."""
    segments = dict.fromkeys(("jfif", "adobe", "sof"), b"")
    text = False
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):
            break
        if marker == 0xFF or 0xD0 <= marker <= 0xD8 or marker == 0x01:
            pos += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE0 and body[:5] == b"JFIF\0":
            segments["jfif"] = body
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            segments["adobe"] = body
        elif marker in (0xC0, 0xC1):
            segments["sof"] = body
        text = text or marker == 0xFE or (0xE1 <= marker <= 0xEF and marker not in (0xE2, 0xEE))
        pos += 2 + length
    sof = segments["sof"]
    comps = sof[5] if len(sof) >= 6 else 0
    ids = tuple(sof[6 + 3 * i] for i in range(comps)) if len(sof) >= 6 + 3 * comps else ()
    if segments["jfif"]:
        rgb = False
    elif segments["adobe"]:
        rgb = segments["adobe"][11] == 0
    else:
        rgb = ids == (82, 71, 66)
    return (_PHOTOMETRIC_RGB if rgb else _PHOTOMETRIC_YCBCR), _sampling(sof), text


def _sampling(sof: bytes) -> tuple[int, int] | None:
    """YCbCr subsampling (luma over chroma factors) from a SOF segment's body."""
    if len(sof) < 6 + 3 * 3 or sof[5] != 3:
        return None
    (h0, v0), (h1, v1) = ((sof[7 + 3 * i] >> 4, sof[7 + 3 * i] & 15) for i in range(2))
    if min(h0, v0, h1, v1) < 1 or h0 % h1 or v0 % v1:
        return None
    return h0 // h1, v0 // v1


# -- the series -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PyramidPlan:
    members: tuple[str, ...]  # instance keys, level 0 first
    ignored: tuple[str, ...]  # VOLUME instances that fit no level (duplicate size, other shape)


def plan_pyramid(levels: Sequence[tuple[str, WsiLevel]]) -> PyramidPlan:
    """The pyramid of a series: the largest level first, then every smaller level whose
    shape is a downsample of it (within a pixel of rounding); a second level of the same
    size, or one of another aspect ratio, is ignored (listed, not used)."""
    ordered = sorted(levels, key=lambda kv: (-kv[1].width * kv[1].height, -kv[1].width, kv[0]))
    if not ordered:
        return PyramidPlan((), ())
    base = ordered[0][1]
    members, ignored = [ordered[0][0]], []
    last = base
    for key, level in ordered[1:]:
        factor = base.width / level.width
        fits = abs(base.height / factor - level.height) <= 1.0 + 1e-9
        if fits and level.width < last.width and level.height < last.height:
            members.append(key)
            last = level
        else:
            ignored.append(key)
    return PyramidPlan(tuple(members), tuple(ignored))


@dataclass(frozen=True)
class BuiltSlide:
    source_sha256: str  # the pyramidal TIFF blob
    info: SlideInfo  # as OpenSlide reads it, with DICOM's spacing and objective power


def build_pyramid(
    blobs: BlobStore, levels: Sequence[tuple[str, WsiLevel]], limits: SlideLimits | None = None
) -> BuiltSlide:
    """Write the pyramidal TIFF of ``levels`` (de-identified instance blob, its level; level 0
    first) into the blob store (not synced) and check it with OpenSlide."""
    limits = limits or SlideLimits()
    with tempfile.TemporaryDirectory(dir=blobs.root) as tmp:
        out = Path(tmp) / "slide.tiff"
        sources = []
        for blob, level in levels:
            offsets, lengths = read_index(blobs.read_bytes(level.tiles_sha256), level.tiles)
            sources.append((blobs.path(blob), level, offsets, lengths))
        write_pyramid(out, sources)
        info = open_slide(out, limits)
        expected = [(level.width, level.height) for _, level in levels]
        if list(info.level_dimensions) != expected or info.associated_image_names:
            raise Unsupported(
                "The DICOM whole-slide image's pyramid could not be rebuilt as a tiled TIFF "
                "(OpenSlide reads another level layout)."
            )
        with out.open("rb") as fh:
            sha = blobs.put_chunks(iter(lambda: fh.read(1 << 20), b""), sync=False)
    return BuiltSlide(sha, _dicom_info(info, levels[0][1]))


def _dicom_info(info: SlideInfo, base: WsiLevel) -> SlideInfo:
    spacing = base.spacing_mm
    mpp = (spacing[0] * 1000.0, spacing[1] * 1000.0) if spacing else (None, None)
    return replace(
        info,
        vendor="dicom",
        mpp_x=mpp[0],
        mpp_y=mpp[1],
        objective_power=base.objective_power,
        geometry=planar(base.width, base.height, pixel_spacing_mm=spacing),
    )


# -- writing the TIFF -----------------------------------------------------------------------

_Source = tuple[Path, WsiLevel, NDArray[np.uint64], NDArray[np.uint64]]


def _rational(value: float) -> bytes:
    fraction = Fraction(value).limit_denominator(1 << 20)
    numerator, denominator = fraction.numerator, fraction.denominator
    while numerator >= 1 << 32:
        numerator, denominator = numerator >> 1, max(1, denominator >> 1)
    return struct.pack("<II", numerator, denominator)


def _level_values(level: WsiLevel, index: int) -> list[tuple[int, int, int, bytes]]:
    values = [
        (254, 4, 1, struct.pack("<I", 0 if index == 0 else 1)),  # reduced resolution
        (256, 4, 1, struct.pack("<I", level.width)),
        (257, 4, 1, struct.pack("<I", level.height)),
        (258, 3, 3, struct.pack("<3H", 8, 8, 8)),
        (259, 3, 1, struct.pack("<H", level.compression)),
        (262, 3, 1, struct.pack("<H", level.photometric)),
        (277, 3, 1, struct.pack("<H", 3)),
        (284, 3, 1, struct.pack("<H", 1)),
        (322, 4, 1, struct.pack("<I", level.tile_width)),
        (323, 4, 1, struct.pack("<I", level.tile_height)),
    ]
    if level.photometric == _PHOTOMETRIC_YCBCR and level.subsampling:
        values.append((530, 3, 2, struct.pack("<2H", *level.subsampling)))
    if level.spacing_mm:  # pixels per centimetre
        values += [
            (282, 5, 1, _rational(10.0 / level.spacing_mm[0])),
            (283, 5, 1, _rational(10.0 / level.spacing_mm[1])),
            (296, 3, 1, struct.pack("<H", 3)),
        ]
    return values


def write_pyramid(out: Path, sources: Sequence[_Source]) -> None:
    """A little-endian tiled TIFF (BigTIFF beyond 4 GiB): one IFD per level, in order, then
    each level's tiles copied from its file, in frame (row-major) order."""
    from medlabel.imaging.slide_sanitize import _Format, _ifd_bytes, _tile_values

    if not sources:
        raise InvalidInput("A slide needs at least one pyramid level.")
    spans = [_span(offsets, lengths) for _, _, offsets, lengths in sources]
    total = sum(end - start for start, end in spans)
    fmt = _Format("<", big=total >= (1 << 32) - (1 << 24))
    header = 16 if fmt.big else 8
    blank = [
        _ifd_bytes(
            fmt, _level_values(level, i) + _tile_values(fmt, offsets, lengths), 0, 0
        )  # same size as the final IFD: only offsets differ
        for i, (_, level, offsets, lengths) in enumerate(sources)
    ]
    starts = np.cumsum([header, *(len(b) for b in blank)]).tolist()
    data_at = starts[-1] + starts[-1] % 2
    blocks = [
        struct.pack("<2sHHHQ", b"II", 43, 8, 0, header)
        if fmt.big
        else struct.pack("<2sHI", b"II", 42, header)
    ]
    position = data_at
    for i, ((_, level, offsets, lengths), (start, end)) in enumerate(
        zip(sources, spans, strict=True)
    ):
        moved = offsets - np.uint64(start) + np.uint64(position)
        values = _level_values(level, i) + _tile_values(fmt, moved, lengths)
        next_at = starts[i + 1] if i + 1 < len(sources) else 0
        blocks.append(_ifd_bytes(fmt, values, starts[i], next_at))
        position += end - start
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "xb") as dst:
            dst.write(b"".join(blocks).ljust(data_at, b"\0"))
            dst.flush()
            for (path, _, _, _), (start, end) in zip(sources, spans, strict=True):
                _copy(path, dst.fileno(), start, end)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _span(offsets: NDArray[np.uint64], lengths: NDArray[np.uint64]) -> tuple[int, int]:
    """The byte range holding every tile of a level (tiles are in file order; the bytes
    between them are the 8-byte item headers of the encapsulated Pixel Data)."""
    ends = offsets + lengths
    if len(offsets) == 0 or np.any(offsets[1:] < ends[:-1]):
        raise InvalidInput("A stored whole-slide tile index is not in file order.")
    return int(offsets[0]), int(ends[-1])


def _copy(path: Path, dst: int, at: int, end: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size < end:
            raise InvalidInput("A stored whole-slide instance is shorter than its tile index.")
        while at < end:
            n = min(end - at, 1 << 23)
            try:
                copied = os.copy_file_range(fd, dst, n, at)
            except OSError:  # another file system, an old kernel: copy through memory
                copied = os.write(dst, os.pread(fd, n, at))
            if copied <= 0:
                raise InvalidInput("A stored whole-slide instance shrank while it was copied.")
            at += copied
    finally:
        os.close(fd)
