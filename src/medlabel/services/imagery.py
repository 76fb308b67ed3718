"""What the pixel API serves: windowed renderings, thumbnails and Deep Zoom tiles.

Rendered bytes that are expensive to make (thumbnails, DZI tiles) are cached on disk under
``<data_dir>/cache``; items are immutable, so a cache entry never goes stale.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medlabel.domain.errors import InvalidInput, NotFound
from medlabel.imaging import dzi, render
from medlabel.imaging.slide import SlideHandles
from medlabel.services.pixels import FrameSource
from medlabel.storage.blobs import BlobStore

ImageFormat = Literal["png", "jpeg", "webp"]
_TILE_RE = re.compile(r"^(\d{1,6})_(\d{1,6})\.(jpeg|jpg)$")


@dataclass(frozen=True)
class WindowSpec:
    """A requested window: a named preset / header window, or explicit centre and width."""

    name: str | None = None
    center: float | None = None
    width: float | None = None

    @classmethod
    def parse(cls, name: str | None, center: float | None, width: float | None) -> WindowSpec:
        if (center is None) != (width is None):
            raise InvalidInput("Give both center and width, or neither.")
        if name is not None and center is not None:
            raise InvalidInput("Give a window name or center and width, not both.")
        return cls(name=name, center=center, width=width)

    def tag(self) -> str:
        if self.center is not None:
            return f"c{self.center:g}w{self.width:g}"
        return self.name or "default"


def raw_headers(source: FrameSource, count: int) -> dict[str, str]:
    layout = source.layout
    shape = [count, layout.rows, layout.columns] + ([layout.samples] if layout.samples > 1 else [])
    return {
        "X-Shape": ",".join(map(str, shape)),
        "X-Dtype": layout.dtype.name,
        "X-Byte-Order": "little",
    }


def parse_tile_name(tile: str) -> tuple[int, int]:
    match = _TILE_RE.fullmatch(tile)
    if match is None:
        raise InvalidInput("Tile names look like '3_7.jpeg' (column_row.jpeg).")
    return int(match.group(1)), int(match.group(2))


@dataclass
class OpenItem:
    item_id: int
    content_key: str
    pixel: dict[str, Any]
    geometry: dict[str, Any]
    kind: str
    modality: str
    source_sha256: str | None
    blobs: BlobStore
    cache_root: Path
    slides: SlideHandles | None = None
    _source: FrameSource | None = field(default=None, repr=False)

    def frames(self) -> FrameSource:
        """The frame reader (built once; an OpenItem is cached across requests)."""
        if self._source is None:
            if not self.pixel.get("blobs"):
                raise NotFound(
                    f"Item {self.item_id} has no frames (a whole-slide image is served "
                    "as Deep Zoom tiles)."
                )
            self._source = FrameSource(self.pixel, self.blobs)
        return self._source

    @property
    def photometric(self) -> render.Photometric:
        if int(self.pixel.get("samples", 1)) == 3:
            return "RGB"
        return "MONOCHROME1" if self.pixel.get("invert") else "MONOCHROME2"

    def window_for(self, spec: WindowSpec, frame: np.ndarray) -> render.WindowPreset | None:
        if spec.center is not None and spec.width is not None:
            return render.WindowPreset("explicit", "explicit", spec.center, spec.width)
        windows = self.pixel.get("windows") or []
        name = spec.name
        if name is None:
            if not windows:
                return None if frame.dtype == np.uint8 else render.auto_window(frame)
            first = windows[0]
            return render.WindowPreset("default", first["name"], first["center"], first["width"])
        if name == "auto":
            return render.auto_window(frame)
        for w in windows:
            if w["name"] == name:
                return render.WindowPreset(name, name, w["center"], w["width"])
        return render.preset(name.replace(" ", "_"))

    def render(self, k: int, spec: WindowSpec, fmt: ImageFormat, quality: int) -> bytes:
        frame = self.frames().frame(k)
        photometric = self.photometric
        window = None if photometric == "RGB" else self.window_for(spec, frame)
        display = render.to_display(frame, photometric=photometric, window=window)
        return render.encode(display, fmt, quality)

    def thumbnail(self) -> bytes:
        return self._cached("thumbnail.jpeg", self._make_thumbnail)

    def _make_thumbnail(self) -> bytes:
        if self.kind == "slide":
            return self.dzi_tile(max(0, self._pyramid().max_level - 8), 0, 0)
        source = self.frames()
        frame = source.frame(source.layout.frames // 2)
        window = None if self.photometric == "RGB" else self.window_for(WindowSpec(), frame)
        return render.thumbnail(frame, 256, photometric=self.photometric, window=window)

    # -- Deep Zoom ---------------------------------------------------------------------

    def _size(self) -> tuple[int, int]:
        if self.kind == "slide":
            width, height = self.pixel["slide"]["level_dimensions"][0]
            return int(width), int(height)
        return int(self.pixel["columns"]), int(self.pixel["rows"])

    def _pyramid(self) -> dzi.DziPyramid:
        width, height = self._size()
        return dzi.DziPyramid(width, height)

    def dzi_descriptor(self) -> dict[str, Any]:
        if self.kind not in ("slide", "image"):
            raise InvalidInput("Deep Zoom tiles are served for slides and photos only.")
        return self._pyramid().descriptor_dict()

    def dzi_tile(self, level: int, col: int, row: int) -> bytes:
        self._pyramid().tile_bounds(level, col, row)  # validates before any work
        return self._cached(
            f"dzi/{level}/{col}_{row}.jpeg", lambda: self._render_tile(level, col, row)
        )

    def _render_tile(self, level: int, col: int, row: int) -> bytes:
        if self.kind == "slide":
            if self.slides is None or self.source_sha256 is None:
                raise NotFound("This slide's pixels are not available.")
            with self.slides.borrow(self.blobs.path(self.source_sha256)) as slide:
                return dzi.render_tile(slide, level, col, row)
        frame = self.frames().frame(0)
        window = None if self.photometric == "RGB" else self.window_for(WindowSpec(), frame)
        display = render.to_display(frame, photometric=self.photometric, window=window)
        return dzi.render_tile(np.ascontiguousarray(display), level, col, row)

    def _cached(self, name: str, make: Callable[[], bytes]) -> bytes:
        path = self.cache_root / self.content_key[:2] / self.content_key / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        data = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return data
