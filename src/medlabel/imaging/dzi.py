"""Deep Zoom (DZI) pyramid math and tile rendering for slides and large photos.

Conventions (Microsoft Deep Zoom, as OpenSeadragon reads it)
-----------------------------------------------------------
- The highest level ``max_level = ceil(log2(max(width, height)))`` is full resolution;
  level ``L`` is scaled by ``2**-(max_level - L)``: ``ceil(width / 2**(max_level - L))`` by
  ``ceil(height / 2**(max_level - L))``; level 0 is 1 x 1.
- A level is cut into ``tile_size`` tiles; each tile also carries ``overlap`` pixels from
  its neighbours on every side that has one (none at the image edges). Tile ``(col, row)``
  therefore starts at ``col*tile_size - overlap`` (0 for the first column) and is at most
  ``tile_size + 2*overlap`` wide. Defaults: 254 + 1 + 1 = 256 px tiles.

Rendering is pure and deterministic (the service layer caches tiles):
- Arrays (photos, uint8 grey ``(rows, columns)`` or RGB ``(rows, columns, 3)``; window other
  dtypes with :mod:`~medlabel.imaging.render` first): the tile's full-resolution region is
  reduced by the integer factor ``2**(max_level - L)`` with Pillow's ``Image.reduce`` (a box
  filter; partial blocks at the right/bottom edge average the pixels they have). Because
  tile origins are multiples of the factor, every tile equals the same crop of
  ``Image.reduce(factor)`` of the whole image: tiles agree with each other and have no seams.
- Slides (an open ``openslide.OpenSlide`` or anything with its reading methods): the best
  OpenSlide level for the scale is read (RGBA composited on white) and reduced to the tile
  size with a box filter (``reduce`` when the ratio is an integer, ``resize(BOX)`` else).
  At a scale an OpenSlide level has exactly (e.g. full resolution) the tile *is* the region
  OpenSlide returns. A read above ``max_read_pixels`` (a slide without a low-resolution
  level) is Unsupported: ingest must build a pyramid first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from medlabel.domain.errors import InvalidInput, Unsupported
from medlabel.imaging.render import MEDIA_TYPES, encode
from medlabel.imaging.slide import SlideLimits, SlideReader, read_slide_region

TileFormat = Literal["jpeg", "png", "webp"]
DZI_NAMESPACE = "http://schemas.microsoft.com/deepzoom/2008"
DEFAULT_MAX_READ_PIXELS = 2**24


@dataclass(frozen=True)
class DziPyramid:
    width: int
    height: int
    tile_size: int = 254
    overlap: int = 1
    fmt: TileFormat = "jpeg"

    def __post_init__(self) -> None:
        for name in ("width", "height", "tile_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"A DZI {name} must be a positive integer, not {value!r}.")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile_size:
            raise InvalidInput(f"A DZI overlap must be 0 to tile_size - 1, not {self.overlap}.")
        if self.fmt not in MEDIA_TYPES:
            raise InvalidInput(f"Unknown tile format {self.fmt!r}; use {sorted(MEDIA_TYPES)}.")

    @property
    def max_level(self) -> int:
        return (max(self.width, self.height) - 1).bit_length()

    def scale(self, level: int) -> int:
        """Full-resolution pixels per level pixel (a power of two)."""
        self._check_level(level)
        return 1 << (self.max_level - level)

    def level_size(self, level: int) -> tuple[int, int]:
        self._check_level(level)
        shift = self.max_level - level
        return -(-self.width >> shift), -(-self.height >> shift)

    def tile_grid(self, level: int) -> tuple[int, int]:
        """(columns, rows) of tiles at ``level``."""
        w, h = self.level_size(level)
        return -(-w // self.tile_size), -(-h // self.tile_size)

    def tile_bounds(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of a tile in level pixels, overlap included."""
        cols, rows = self.tile_grid(level)
        if not (0 <= col < cols and 0 <= row < rows):
            raise InvalidInput(
                f"Tile ({col}, {row}) does not exist at level {level}: it has {cols} x {rows}."
            )
        w, h = self.level_size(level)
        x, x_size = self._span(col, cols, w)
        y, y_size = self._span(row, rows, h)
        return x, y, x_size, y_size

    def _span(self, index: int, count: int, length: int) -> tuple[int, int]:
        before = self.overlap if index > 0 else 0
        after = self.overlap if index < count - 1 else 0
        start = index * self.tile_size
        return start - before, min(self.tile_size, length - start) + before + after

    def _check_level(self, level: int) -> None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise InvalidInput(f"A DZI level must be an integer, not {level!r}.")
        if not 0 <= level <= self.max_level:
            raise InvalidInput(f"Level {level} does not exist; levels are 0 to {self.max_level}.")

    def descriptor(self) -> str:
        """The ``.dzi`` XML document."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Image xmlns={quoteattr(DZI_NAMESPACE)} Format={quoteattr(self.fmt)} "
            f'Overlap="{self.overlap}" TileSize="{self.tile_size}">'
            f'<Size Width="{self.width}" Height="{self.height}"/></Image>'
        )

    def descriptor_dict(self) -> dict[str, Any]:
        """The same descriptor as OpenSeadragon's inline JSON form (``{"Image": ...}``)."""
        return {
            "Image": {
                "xmlns": DZI_NAMESPACE,
                "Format": self.fmt,
                "Overlap": str(self.overlap),
                "TileSize": str(self.tile_size),
                "Size": {"Width": str(self.width), "Height": str(self.height)},
            }
        }


def dzi_descriptor(
    width: int, height: int, tile_size: int = 254, overlap: int = 1, fmt: TileFormat = "jpeg"
) -> str:
    return DziPyramid(width, height, tile_size, overlap, fmt).descriptor()


def dzi_levels(width: int, height: int) -> tuple[tuple[int, int], ...]:
    """``(width, height)`` of every level, index = level (0 is 1 x 1)."""
    pyramid = DziPyramid(width, height)
    return tuple(pyramid.level_size(level) for level in range(pyramid.max_level + 1))


def tile_bounds(pyramid: DziPyramid, level: int, col: int, row: int) -> tuple[int, int, int, int]:
    return pyramid.tile_bounds(level, col, row)


def render_tile(
    source: SlideReader | NDArray[np.uint8],
    level: int,
    col: int,
    row: int,
    *,
    tile_size: int = 254,
    overlap: int = 1,
    fmt: TileFormat = "jpeg",
    quality: int | None = None,
    max_read_pixels: int = DEFAULT_MAX_READ_PIXELS,
) -> bytes:
    """The encoded tile ``(col, row)`` of DZI ``level`` of a slide or an in-memory image."""
    pixels = tile_pixels(
        source,
        level,
        col,
        row,
        tile_size=tile_size,
        overlap=overlap,
        max_read_pixels=max_read_pixels,
    )
    return encode(pixels, fmt, quality)


def tile_pixels(
    source: SlideReader | NDArray[np.uint8],
    level: int,
    col: int,
    row: int,
    *,
    tile_size: int = 254,
    overlap: int = 1,
    max_read_pixels: int = DEFAULT_MAX_READ_PIXELS,
) -> NDArray[np.uint8]:
    """The tile's pixels before encoding (what :func:`render_tile` encodes)."""
    if isinstance(source, np.ndarray):
        _check_array(source)
        rows, columns = source.shape[:2]
        pyramid = DziPyramid(int(columns), int(rows), tile_size, overlap)
        return _array_tile(source, pyramid, level, col, row)
    width, height = source.level_dimensions[0]
    pyramid = DziPyramid(int(width), int(height), tile_size, overlap)
    return _slide_tile(source, pyramid, level, col, row, max_read_pixels)


def _check_array(image: NDArray[Any]) -> None:
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise InvalidInput(
            f"Tiles are cut from uint8 grey or RGB images, not {image.dtype} {image.shape}; "
            "window the image with medlabel.imaging.render first."
        )


def _full_resolution_box(
    pyramid: DziPyramid, level: int, col: int, row: int
) -> tuple[tuple[int, int, int, int], tuple[int, int], int]:
    """Level-0 ``(x0, y0, w0, h0)`` of a tile, its size in level pixels, and the scale."""
    x, y, w, h = pyramid.tile_bounds(level, col, row)
    scale = pyramid.scale(level)
    x0, y0 = x * scale, y * scale
    w0, h0 = min(w * scale, pyramid.width - x0), min(h * scale, pyramid.height - y0)
    return (x0, y0, w0, h0), (w, h), scale


def _array_tile(
    image: NDArray[np.uint8], pyramid: DziPyramid, level: int, col: int, row: int
) -> NDArray[np.uint8]:
    (x0, y0, w0, h0), size, scale = _full_resolution_box(pyramid, level, col, row)
    region = np.ascontiguousarray(image[y0 : y0 + h0, x0 : x0 + w0])
    if scale == 1:
        return region
    reduced = Image.fromarray(region).reduce(scale)
    if reduced.size != size:  # cannot happen with the box above; guard the invariant
        raise AssertionError(f"reduced tile {reduced.size} != {size}")
    return np.asarray(reduced)


def _slide_tile(
    slide: SlideReader, pyramid: DziPyramid, level: int, col: int, row: int, max_pixels: int
) -> NDArray[np.uint8]:
    (x0, y0, w0, h0), size, scale = _full_resolution_box(pyramid, level, col, row)
    best = int(slide.get_best_level_for_downsample(scale))
    downsample = float(slide.level_downsamples[best])
    read_w, read_h = math.ceil(w0 / downsample), math.ceil(h0 / downsample)
    if read_w * read_h > max_pixels:
        raise Unsupported(
            f"This slide has no resolution level close to 1/{scale}; reading the tile would "
            f"take {read_w} x {read_h} pixels. Build a pyramid for the slide first."
        )
    limits = SlideLimits(max_region_pixels=max_pixels)
    region = read_slide_region(slide, best, x0, y0, read_w, read_h, limits)
    if (read_w, read_h) == size:
        return region
    picture = Image.fromarray(region)
    factor = scale / downsample
    if factor.is_integer() and (-(-read_w // int(factor)), -(-read_h // int(factor))) == size:
        return np.asarray(picture.reduce(int(factor)))
    return np.asarray(picture.resize(size, Image.Resampling.BOX))
