"""Read photographs (PNG, JPEG, single-page TIFF) into upright pixels with no metadata.

Rules
-----
- Only the PNG, JPEG and TIFF decoders of Pillow are tried (no format sniffing across
  Pillow's other plugins, some of which had bombs of their own). Multi-page and pyramidal
  TIFFs are Unsupported here: slides go through :mod:`medlabel.imaging.slide`.
- Size is checked before decoding (SECURITY case 19): ``PhotoLimits.max_pixels`` and
  Pillow's own ``Image.MAX_IMAGE_PIXELS`` (kept as it is; never raised here). Pillow's
  ``DecompressionBombWarning`` is turned into an error inside a ``warnings`` context that
  wraps only the open/decode calls, and both it and ``DecompressionBombError`` become
  TooLarge. Other Pillow warnings in that context (e.g. corrupt EXIF) are ignored: the
  metadata they are about is dropped anyway.
- The EXIF/TIFF Orientation tag is applied, so row 0 is the top of the picture as the
  photographer saw it and annotations map to the stored (upright) pixels.
- All metadata is dropped: EXIF (camera serials, GPS, dates), XMP, IPTC, text chunks, ICC
  profiles. Colours are taken as sRGB, which is what cameras and fundus/dermoscopy devices
  write in practice; an image with a non-sRGB profile is not converted (a known limitation).
- Pixel types: 1-bit and 8-bit grey -> uint8; 16-bit grey -> uint16 (Pillow's "I;16*", or
  "I" when its values fit 0..65535); palette, CMYK and YCbCr -> RGB uint8. 16-bit-per-channel
  RGB is reduced to 8 bits by Pillow itself. Float images are Unsupported.
- Alpha: composited onto black, ``round(value * alpha / 255)``; a fully opaque alpha channel
  is simply dropped. Black is the background of fundus, dermoscopy and endoscopy photos and
  of DICOM padding, so transparent areas look like "no image" rather than like tissue.
- Truncated or corrupt image data is InvalidInput; a file none of the decoders recognise is
  Unsupported.

Output: ``pixels`` of shape ``(1, rows, columns)`` (grey) or ``(1, rows, columns, 3)`` (RGB),
read-only, with ``geometry = planar(columns, rows)`` in pixel units (no millimetres).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.domain.geometry import Geometry, planar

_FORMATS = ("PNG", "JPEG", "TIFF")
_GREY16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_TO_RGB_MODES = {"P", "PA", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"}

Photometric = Literal["MONOCHROME2", "RGB"]


@dataclass(frozen=True)
class PhotoLimits:
    """``max_pixels`` caps rows x columns; Pillow's MAX_IMAGE_PIXELS applies as well."""

    max_pixels: int = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (~ 9459 x 9459)


@dataclass(frozen=True, eq=False)
class Photo:
    pixels: NDArray[Any]
    photometric: Photometric
    source_format: str
    geometry: Geometry

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def columns(self) -> int:
        return int(self.pixels.shape[2])


def read_photo(path: str | Path, limits: PhotoLimits | None = None) -> Photo:
    """Decode a PNG, JPEG or single-page TIFF within ``limits`` (see the module rules)."""
    limits = limits or PhotoLimits()
    with _bomb_guard(), _decode_errors(), Image.open(path, formats=_FORMATS) as image:
        source_format = str(image.format)
        _check_size(image, limits)
        _check_single_page(image)
        image.load()
        upright = ImageOps.exif_transpose(image)
    pixels, photometric = _to_array(upright)
    pixels.flags.writeable = False
    rows, columns = pixels.shape[1], pixels.shape[2]
    return Photo(
        pixels=pixels,
        photometric=photometric,
        source_format=source_format,
        geometry=planar(columns, rows),
    )


@contextmanager
def _bomb_guard() -> Iterator[None]:
    """DecompressionBombWarning/Error -> TooLarge, only around the Pillow calls."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise TooLarge(
            f"The image has more pixels than the decoder allows ({Image.MAX_IMAGE_PIXELS}); "
            "it may be a decompression bomb. Downscale it before uploading."
        ) from exc


@contextmanager
def _decode_errors() -> Iterator[None]:
    try:
        yield
    except UnidentifiedImageError as exc:
        raise Unsupported(
            "The file is not a PNG, JPEG or TIFF image; convert it to one of those."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(
            "The image data is truncated or corrupt and cannot be decoded; export it again."
        ) from exc


def _check_size(image: Image.Image, limits: PhotoLimits) -> None:
    columns, rows = image.size
    if columns < 1 or rows < 1:
        raise InvalidInput(f"The image has no pixels ({columns} x {rows}).")
    if columns * rows > limits.max_pixels:
        raise TooLarge(
            f"The image has {columns} x {rows} pixels, above the limit of {limits.max_pixels}; "
            "downscale it, or upload it as a slide if it is a whole-slide image."
        )


def _check_single_page(image: Image.Image) -> None:
    if int(getattr(image, "n_frames", 1)) > 1:
        raise Unsupported(
            "Multi-page or pyramidal images are not photos; upload a single image, or a "
            "whole-slide image in a slide format."
        )


def _to_array(image: Image.Image) -> tuple[NDArray[Any], Photometric]:
    mode = image.mode
    if mode in _TO_RGB_MODES:
        has_alpha = mode in {"PA"} or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in {"1", "L"}:
        return np.asarray(image.convert("L"))[np.newaxis], "MONOCHROME2"
    if mode in {"LA", "La"}:
        return _drop_alpha(np.asarray(image.convert("LA")))[np.newaxis], "MONOCHROME2"
    if mode in _GREY16_MODES:
        return np.asarray(image).astype(np.uint16)[np.newaxis], "MONOCHROME2"
    if mode == "I":
        values = np.asarray(image)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise Unsupported("32-bit grey images are not supported; save as 16-bit.")
        return values.astype(np.uint16)[np.newaxis], "MONOCHROME2"
    if mode in {"RGB", "RGBA", "RGBa"}:
        return _drop_alpha(np.asarray(image.convert("RGBA")))[np.newaxis], "RGB"
    raise Unsupported(f"Images of Pillow mode {mode} are not supported; save as 8-bit RGB.")


def _drop_alpha(values: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Composite colour+alpha (last axis) onto black; drop an all-opaque alpha channel."""
    colour, alpha = values[..., :-1], values[..., -1:]
    if bool(np.all(alpha == 255)):
        out = np.ascontiguousarray(colour)
    else:
        t = colour.astype(np.uint16) * alpha + 128
        out = ((t + (t >> 8)) >> 8).astype(np.uint8)  # exactly round(c * a / 255)
    return out[..., 0] if out.shape[-1] == 1 else out
