"""Whole-slide images through OpenSlide: validated metadata, bounded region reads, handles.

Rules
-----
- Only a whitelist of OpenSlide properties is read: vendor, microns per pixel, objective
  power and the level layout. Everything else (``openslide.comment`` and vendor properties
  hold file names, user ids, dates, barcodes) is never exposed.
- Associated images (``label``, ``macro``, ``thumbnail`` ...) are reported by *name only*
  and no function here returns their pixels: label and macro images photograph the glass
  slide's label, which shows patient names and barcodes (SECURITY case 18). Ingest drops
  them (or quarantines them for a reviewer); the viewer's overview is built from the pyramid.
- Untrusted input (SECURITY case 18): a level-0 side above ``SlideLimits.max_side_px`` or an
  area above ``max_level0_pixels`` is TooLarge before any tile is read; a level layout that
  does not make sense (zero sizes, non-finite downsamples, too many levels) and OpenSlide
  errors while opening or reading (bad IFDs, damaged tiles) are InvalidInput; files OpenSlide
  does not recognise (including TIFFs whose IFD chain loops) are Unsupported. Every read is
  one bounded region (``max_region_pixels``).
- ``read_region`` follows OpenSlide: ``(x, y)`` are level-0 pixel coordinates of the top-left
  corner and ``(w, h)`` the size in pixels *of the requested level*. The result is RGB uint8
  ``(h, w, 3)``, transparent pixels (outside the scanned area) composited onto white, the
  colour of empty glass.
- :class:`SlideHandles` is a bounded, thread-safe LRU of open OpenSlide handles; OpenSlide
  handles are themselves safe to share between threads. A handle evicted while borrowed is
  closed when its last user returns it; a handle that raised an OpenSlide error (which
  leaves it unusable) is dropped from the cache.
- ``openslide`` is imported lazily: the rest of medlabel works without it installed.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.domain.geometry import Geometry, planar

if TYPE_CHECKING:
    from openslide import OpenSlide
    from PIL import Image

_INSTALL_HINT = "pip install openslide-python openslide-bin"


class SlideReader(Protocol):
    """What tile code needs from an open slide (``openslide.OpenSlide`` satisfies it)."""

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]: ...

    @property
    def level_downsamples(self) -> tuple[float, ...]: ...

    def get_best_level_for_downsample(self, downsample: float) -> int: ...

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> Image.Image: ...


@dataclass(frozen=True)
class SlideLimits:
    max_side_px: int = 500_000
    max_level0_pixels: int = 2**36  # ~ 262k x 262k; real slides stay below ~ 2e10
    max_levels: int = 64
    max_region_pixels: int = 2**24  # one read: 4096 x 4096 RGBA = 64 MiB


@dataclass(frozen=True)
class SlideInfo:
    """What the viewer and ingest need; ``geometry`` spacing is mm when mpp is known."""

    vendor: str
    level_count: int
    level_dimensions: tuple[tuple[int, int], ...]  # (width, height) per level
    level_downsamples: tuple[float, ...]
    mpp_x: float | None  # microns per pixel at level 0
    mpp_y: float | None
    objective_power: float | None
    associated_image_names: tuple[str, ...]  # names only: never served (see module doc)
    geometry: Geometry

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp_x": self.mpp_x,
            "mpp_y": self.mpp_y,
            "objective_power": self.objective_power,
            "associated_image_names": list(self.associated_image_names),
            "geometry": self.geometry.to_dict(),
        }


# -- opening ------------------------------------------------------------------------------


def is_slide(path: str | Path) -> bool:
    """True when OpenSlide recognises the file by its content (a tiled TIFF counts)."""
    try:
        import openslide
    except (ImportError, OSError):
        return False
    try:
        return openslide.OpenSlide.detect_format(path) is not None
    except openslide.OpenSlideError:
        return False


def open_slide(
    path: str | Path, limits: SlideLimits | None = None, *, handles: SlideHandles | None = None
) -> SlideInfo:
    """Open and validate a slide; its metadata, without PHI-carrying properties."""
    if handles is not None:
        with handles.borrow(path) as slide:
            return _info(slide)
    with closing(_open_checked(path, limits or SlideLimits())) as slide:
        return _info(slide)


def _open_checked(path: str | Path, limits: SlideLimits) -> OpenSlide:
    try:
        import openslide
    except (ImportError, OSError) as exc:
        raise Unsupported(f"Whole-slide images need OpenSlide: {_INSTALL_HINT}.") from exc
    try:
        if openslide.OpenSlide.detect_format(path) is None:
            raise Unsupported(
                "The file is not a whole-slide image format OpenSlide reads (or its TIFF "
                "directory chain is damaged); convert it to SVS or pyramidal TIFF."
            )
        slide = openslide.OpenSlide(path)
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise Unsupported("OpenSlide does not support this slide's format.") from exc
    except openslide.OpenSlideError as exc:
        raise InvalidInput(
            "The slide file is damaged (OpenSlide could not read its structure); scan or "
            "export it again."
        ) from exc
    try:
        _check_levels(slide.level_dimensions, slide.level_downsamples, limits)
    except Exception:
        slide.close()
        raise
    return slide


def _check_levels(
    dims: tuple[tuple[int, int], ...], downsamples: tuple[float, ...], limits: SlideLimits
) -> None:
    if not 1 <= len(dims) <= limits.max_levels or len(downsamples) != len(dims):
        raise InvalidInput(f"The slide has {len(dims)} levels; 1 to {limits.max_levels} expected.")
    width, height = dims[0]
    if max(width, height) > limits.max_side_px or width * height > limits.max_level0_pixels:
        raise TooLarge(
            f"The slide's full-resolution level is {width} x {height} pixels, above the limit "
            f"({limits.max_side_px} per side, {limits.max_level0_pixels} in all)."
        )
    for (w, h), ds in zip(dims, downsamples, strict=True):
        if w < 1 or h < 1 or not math.isfinite(ds) or ds < 0.99:
            raise InvalidInput("The slide's level layout is invalid (empty level or downsample).")


def _info(slide: OpenSlide) -> SlideInfo:
    props = slide.properties
    mpp_x, mpp_y = _positive(props.get("openslide.mpp-x")), _positive(props.get("openslide.mpp-y"))
    width, height = slide.level_dimensions[0]
    spacing = (mpp_x / 1000.0, mpp_y / 1000.0) if mpp_x and mpp_y else None
    return SlideInfo(
        vendor=str(props.get("openslide.vendor", "unknown")),
        level_count=int(slide.level_count),
        level_dimensions=tuple((int(w), int(h)) for w, h in slide.level_dimensions),
        level_downsamples=tuple(float(d) for d in slide.level_downsamples),
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        objective_power=_positive(props.get("openslide.objective-power")),
        associated_image_names=tuple(sorted(slide.associated_images.keys())),
        geometry=planar(width, height, pixel_spacing_mm=spacing),
    )


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


# -- regions ------------------------------------------------------------------------------


def read_region(
    path: str | Path,
    level: int,
    x: int,
    y: int,
    w: int,
    h: int,
    *,
    limits: SlideLimits | None = None,
    handles: SlideHandles | None = None,
) -> NDArray[np.uint8]:
    """RGB uint8 ``(h, w, 3)`` of a region: ``(x, y)`` at level 0, ``(w, h)`` at ``level``."""
    limits = limits or (handles.limits if handles is not None else SlideLimits())
    if handles is not None:
        with handles.borrow(path) as slide:
            return read_slide_region(slide, level, x, y, w, h, limits)
    with closing(_open_checked(path, limits)) as slide:
        return read_slide_region(slide, level, x, y, w, h, limits)


def read_slide_region(
    slide: SlideReader, level: int, x: int, y: int, w: int, h: int, limits: SlideLimits
) -> NDArray[np.uint8]:
    """:func:`read_region` on an open slide (what :mod:`~medlabel.imaging.dzi` uses)."""
    import openslide

    dims = slide.level_dimensions
    if not 0 <= level < len(dims):
        raise InvalidInput(f"Level {level} does not exist; this slide has {len(dims)} levels.")
    if w < 1 or h < 1 or not (0 <= x < dims[0][0] and 0 <= y < dims[0][1]):
        raise InvalidInput(
            f"The region ({x}, {y}, {w} x {h}) does not start inside the slide "
            f"({dims[0][0]} x {dims[0][1]} at level 0) or is empty."
        )
    if w * h > limits.max_region_pixels:
        raise TooLarge(
            f"A region of {w} x {h} pixels is above the limit of {limits.max_region_pixels}; "
            "request tiles instead."
        )
    try:
        rgba = slide.read_region((x, y), level, (w, h))
    except openslide.OpenSlideError as exc:
        raise InvalidInput("The slide's tile data is damaged and cannot be decoded.") from exc
    return composite_on_white(np.asarray(rgba))


def composite_on_white(rgba: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Non-premultiplied RGBA ``(..., 4)`` -> RGB, ``round(c*a/255 + 255*(1 - a/255))``."""
    colour, alpha = rgba[..., :3], rgba[..., 3:]
    if bool(np.all(alpha == 255)):
        return np.ascontiguousarray(colour)
    t = colour.astype(np.uint16) * alpha + (255 - alpha.astype(np.uint16)) * 255 + 128
    return ((t + (t >> 8)) >> 8).astype(np.uint8)


# -- handle cache -------------------------------------------------------------------------


@dataclass(eq=False)
class _Entry:
    slide: OpenSlide
    users: int = 0
    retired: bool = False


class SlideHandles:
    """A bounded, thread-safe LRU cache of open, validated OpenSlide handles.

    Keys are the file's real path plus its inode, size and mtime, so a replaced file is
    reopened. Use :meth:`borrow` (a context manager); :meth:`close` closes everything.
    """

    def __init__(self, capacity: int = 16, limits: SlideLimits | None = None) -> None:
        if capacity < 1:
            raise ValueError("A slide handle cache needs a capacity of at least 1.")
        self.capacity = capacity
        self.limits = limits or SlideLimits()
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @contextmanager
    def borrow(self, path: str | Path) -> Iterator[OpenSlide]:
        import openslide

        key = _file_key(path)
        entry = self._acquire(key, path)
        try:
            yield entry.slide
        except (openslide.OpenSlideError, InvalidInput):
            self._drop(key, entry)  # an OpenSlide handle is unusable after an error
            raise
        finally:
            self._release(entry)

    def close(self) -> None:
        with self._lock:
            while self._entries:
                self._retire(self._entries.popitem(last=False)[1])

    def _acquire(self, key: tuple[Any, ...], path: str | Path) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.users += 1
                return entry
        fresh = _open_checked(path, self.limits)  # slow: outside the lock
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(fresh)
                fresh_used = True
            else:
                fresh_used = False
            entry.users += 1
            while len(self._entries) > self.capacity:
                self._retire(self._entries.popitem(last=False)[1])
        if not fresh_used:
            fresh.close()  # another thread opened the same file first
        return entry

    def _drop(self, key: tuple[Any, ...], entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
                entry.retired = True

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            if entry.retired and entry.users == 0:
                entry.slide.close()

    @staticmethod
    def _retire(entry: _Entry) -> None:  # caller holds the lock
        entry.retired = True
        if entry.users == 0:
            entry.slide.close()


def _file_key(path: str | Path) -> tuple[Any, ...]:
    real = os.path.realpath(path)
    st = os.stat(real)
    return (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
