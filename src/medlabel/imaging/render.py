"""Window/level and encoding: from stored pixel values to the 8-bit images a browser shows.

Windowing (DICOM PS3.3 C.11.2.1.2, output range 0..255, rounded half up)
-----------------------------------------------------------------------
- ``LINEAR`` (the DICOM default; width >= 1)::

      x <= c - 0.5 - (w-1)/2  -> 0
      x >  c - 0.5 + (w-1)/2  -> 255
      else                    -> ((x - (c - 0.5)) / (w-1) + 0.5) * 255

- ``LINEAR_EXACT`` (width > 0): ``x <= c - w/2 -> 0``, ``x > c + w/2 -> 255``, else
  ``((x - c) / w + 0.5) * 255``.
- ``SIGMOID`` (width > 0): ``255 / (1 + exp(-4 (x - c) / w))``.

``invert=True`` gives ``255 - y`` (MONOCHROME1: low values are white). ``slope``/
``intercept`` (DICOM Rescale Slope/Intercept) are folded into the lookup table, so stored
values are windowed in output units (e.g. HU) without materialising a float image.

Speed: 8- and 16-bit integer input goes through a lookup table indexed by the raw bits
(256 or 65536 entries, built with the same float64 formula, so it equals the float path
exactly); that is one ``take`` per pixel (~0.3 ms for 512 x 512). Tables are memoised
(a small LRU of read-only arrays keyed by every parameter). Other dtypes use the vectorised
float64 formula; NaN maps to 0 (before inversion).

Presets: CT windows from Radiopaedia, "Windowing (CT)" (W = width, L = level = centre, HU).
Bone uses that article's W1800/L400 (other PACS ship W2000/L300; both show cortex and
trabeculae). For MR and everything without a calibrated scale, :func:`auto_window` takes
the 1st-99th percentiles of a strided subsample (at most ``max_samples`` values) of the
frame, or of the whole volume when the volume is passed.

Colour: RGB frames are shown as stored; windows are ignored (DICOM applies VOI LUTs to
monochrome images only, and per-channel windowing would shift hues). 16-bit RGB is reduced
to 8 bits by dropping the low byte.

Encoding trade-offs (512 x 512 8-bit, see bench-peers): PNG is lossless but zlib dominates
the cost, so level 1 is used (~10 % larger than level 6, ~20 % faster); JPEG q90 is ~8x
cheaper than PNG level 1 and visually lossless for review, but lossy (never use it for
masks or measurements); WebP lossy q80 with method 0 is the smallest of the fast settings
but ~10x slower than JPEG. Default: PNG for exact display, JPEG for tiles and thumbnails.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from medlabel.domain.errors import InvalidInput
from medlabel.imaging.png import encode_png

WindowFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
ImageFormat = Literal["png", "jpeg", "webp"]
Photometric = Literal["MONOCHROME1", "MONOCHROME2", "RGB"]

MEDIA_TYPES = MappingProxyType({"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"})
DEFAULT_QUALITY = MappingProxyType({"jpeg": 90, "webp": 80})
_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_LUT_KINDS = {np.dtype(t): np.dtype(u) for t, u in [("uint8", "uint8"), ("int8", "uint8")]}
_LUT_KINDS |= {np.dtype(t): np.dtype("uint16") for t in ("uint16", "int16")}
_SIGMOID_CLIP = 700.0  # exp(700) is finite in float64


@dataclass(frozen=True)
class WindowPreset:
    name: str
    label: str
    center: float
    width: float
    function: WindowFunction = "LINEAR"


CT_PRESETS = MappingProxyType(
    {
        p.name: p
        for p in (
            WindowPreset("soft_tissue", "Soft tissue (W400 L40)", 40.0, 400.0),
            WindowPreset("lung", "Lung (W1500 L-600)", -600.0, 1500.0),
            WindowPreset("bone", "Bone (W1800 L400)", 400.0, 1800.0),
            WindowPreset("brain", "Brain (W80 L40)", 40.0, 80.0),
            WindowPreset("mediastinum", "Mediastinum (W350 L50)", 50.0, 350.0),
            WindowPreset("liver", "Liver (W150 L30)", 30.0, 150.0),
        )
    }
)


def preset(name: str) -> WindowPreset:
    """A CT preset by name (``soft_tissue``, ``lung``, ``bone``, ...)."""
    if name not in CT_PRESETS:
        raise InvalidInput(f"Unknown window preset {name!r}; use one of {sorted(CT_PRESETS)}.")
    return CT_PRESETS[name]


def auto_window(
    values: NDArray[Any],
    *,
    low_percentile: float = 1.0,
    high_percentile: float = 99.0,
    max_samples: int = 65536,
) -> WindowPreset:
    """A window spanning the percentiles of a strided subsample of ``values`` (any shape).

    Integer data gets a LINEAR window mapping the low percentile to 0 and the high one to 255;
    float data (e.g. probabilities in 0..1) a LINEAR_EXACT window, which allows width < 1.
    """
    array = np.asarray(values)
    if array.size == 0 or array.ndim == 0:
        raise InvalidInput("Cannot choose a window for an empty image.")
    step = max(1, math.ceil((array.size / max_samples) ** (1.0 / array.ndim)))
    sample = array[(slice(None, None, step),) * array.ndim].ravel()
    label = f"Auto ({low_percentile:g}th-{high_percentile:g}th percentile)"
    if array.dtype.kind in "biu":
        lo, hi = np.percentile(sample, [low_percentile, high_percentile])
        return WindowPreset("auto", label, (lo + hi) / 2 + 0.5, float(hi - lo) + 1.0)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return WindowPreset("auto", label, 0.5, 1.0, "LINEAR_EXACT")
    lo, hi = np.percentile(sample.astype(np.float64), [low_percentile, high_percentile])
    width = float(hi - lo) if hi > lo else max(abs(float(hi)) * 1e-6, 1e-12)
    return WindowPreset("auto", label, float(lo + hi) / 2, width, "LINEAR_EXACT")


def apply_window(
    frame: NDArray[Any],
    center: float,
    width: float,
    *,
    invert: bool = False,
    function: WindowFunction = "LINEAR",
    slope: float = 1.0,
    intercept: float = 0.0,
) -> NDArray[np.uint8]:
    """Window a monochrome frame (or stack, any shape) to uint8 (see the module doc)."""
    _check_window(center, width, function, slope, intercept)
    array = np.asarray(frame)
    if array.dtype.byteorder not in "=|":
        array = array.astype(array.dtype.newbyteorder("="))
    index_dtype = _LUT_KINDS.get(array.dtype)
    if index_dtype is not None:
        lut = _lut(array.dtype.str, center, width, function, invert, slope, intercept)
        return np.asarray(lut.take(array.view(index_dtype)), dtype=np.uint8)
    values = array.astype(np.float64)  # a fresh array: the float path works in place
    if (slope, intercept) != (1.0, 0.0):
        values *= slope
        values += intercept
    return _window_float(values, center, width, function, invert)


def _check_window(
    center: float, width: float, function: str, slope: float, intercept: float
) -> None:
    if function not in _FUNCTIONS:
        raise InvalidInput(f"Unknown VOI LUT function {function!r}; use one of {_FUNCTIONS}.")
    if not all(math.isfinite(v) for v in (center, width, slope, intercept)):
        raise InvalidInput("Window centre, width, slope and intercept must be finite numbers.")
    minimum = 1.0 if function == "LINEAR" else 0.0
    if width < minimum or width == 0:
        raise InvalidInput(
            f"A {function} window needs a width {'>= 1' if minimum else '> 0'}, not {width}."
        )


@lru_cache(maxsize=64)
def _lut(
    dtype_str: str,
    center: float,
    width: float,
    function: WindowFunction,
    invert: bool,
    slope: float,
    intercept: float,
) -> NDArray[np.uint8]:
    """uint8 output for every raw bit pattern of a 1- or 2-byte integer dtype (read-only)."""
    dtype = np.dtype(dtype_str)
    bits = np.arange(1 << (8 * dtype.itemsize), dtype=_LUT_KINDS[dtype])
    values = bits.view(dtype).astype(np.float64) * slope + intercept
    lut = _window_float(values, center, width, function, invert)
    lut.flags.writeable = False
    return lut


def _window_float(
    x: NDArray[np.float64], c: float, w: float, function: WindowFunction, invert: bool
) -> NDArray[np.uint8]:
    """Window float64 values; ``x`` is overwritten (callers pass a scratch array)."""
    # Clipping the ramp equals DICOM's piecewise rule: the ramp is monotonic, ~0 at the lower
    # threshold and ~255 at the upper one, and rounding absorbs the float error there.
    with np.errstate(over="ignore", invalid="ignore"):
        y = _ramp(x, c, w, function)
    np.nan_to_num(y, copy=False, nan=0.0)
    y += 0.5
    np.floor(y, out=y)
    np.clip(y, 0.0, 255.0, out=y)
    out = y.astype(np.uint8)
    if invert:
        np.subtract(255, out, out=out)
    return out


def _ramp(x: NDArray[np.float64], c: float, w: float, function: str) -> NDArray[np.float64]:
    """The unclipped output (0..255 inside the window), computed in place in ``x``."""
    if function == "LINEAR" and w == 1:
        return np.where(x <= c - 0.5, 0.0, 255.0)
    if function == "SIGMOID":
        x -= c
        x *= -4.0 / w
        np.clip(x, -_SIGMOID_CLIP, _SIGMOID_CLIP, out=x)
        np.exp(x, out=x)
        x += 1.0
        return np.divide(255.0, x, out=x)
    if function == "LINEAR":
        x -= c - 0.5
        x /= w - 1
    else:
        x -= c
        x /= w
    x += 0.5
    x *= 255.0
    return x


def to_display(
    frame: NDArray[Any],
    *,
    photometric: Photometric = "MONOCHROME2",
    window: WindowPreset | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
) -> NDArray[np.uint8]:
    """uint8 pixels to encode: RGB as stored, grey windowed (auto when ``window`` is None).

    Grey uint8 without a window is shown as stored (photos, 8-bit ultrasound), inverted for
    MONOCHROME1.
    """
    array = np.asarray(frame)
    if photometric == "RGB":
        if array.ndim < 3 or array.shape[-1] != 3:
            raise InvalidInput(f"An RGB frame must end with 3 channels, not {array.shape}.")
        if array.dtype == np.uint16:
            return (array >> 8).astype(np.uint8)
        if array.dtype != np.uint8:
            raise InvalidInput(f"RGB frames must be uint8 or uint16, not {array.dtype}.")
        return array
    invert = photometric == "MONOCHROME1"
    if window is None and array.dtype == np.uint8 and (slope, intercept) == (1.0, 0.0):
        return np.asarray(255 - array, dtype=np.uint8) if invert else array
    if window is None:
        window = _rescaled(auto_window(array), slope, intercept)
    return apply_window(
        array,
        window.center,
        window.width,
        invert=invert,
        function=window.function,
        slope=slope,
        intercept=intercept,
    )


def _rescaled(window: WindowPreset, slope: float, intercept: float) -> WindowPreset:
    """A window chosen on stored values, moved to output units (``stored*slope + intercept``)."""
    if slope == 1.0:
        return replace(window, center=window.center + intercept)
    return replace(
        window,
        center=window.center * slope + intercept,
        width=window.width * abs(slope),
        function="LINEAR_EXACT",
    )


def encode(image: NDArray[np.uint8], fmt: ImageFormat = "png", quality: int | None = None) -> bytes:
    """Encode ``(rows, columns)`` grey or ``(rows, columns, 3)`` RGB uint8 pixels."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    ):
        raise InvalidInput(
            f"Only uint8 grey (rows, columns) or RGB (rows, columns, 3) images can be encoded, "
            f"not {array.dtype} {array.shape}; window the frame first."
        )
    if fmt not in MEDIA_TYPES:
        raise InvalidInput(f"Unknown image format {fmt!r}; use one of {sorted(MEDIA_TYPES)}.")
    q = DEFAULT_QUALITY.get(fmt, 0) if quality is None else quality
    if fmt != "png" and not 1 <= q <= 100:
        raise InvalidInput(f"Quality must be between 1 and 100, not {quality}.")
    if fmt == "png":
        return encode_png(array)
    picture = Image.fromarray(np.ascontiguousarray(array))
    out = io.BytesIO()
    if fmt == "jpeg":
        picture.save(out, format="JPEG", quality=q)
    else:
        picture.save(out, format="WEBP", quality=q, method=0, lossless=False)
    return out.getvalue()


def thumbnail(
    frame_or_rgb: NDArray[Any],
    max_size: int = 256,
    *,
    photometric: Photometric | None = None,
    window: WindowPreset | None = None,
    quality: int = 85,
) -> bytes:
    """A JPEG no larger than ``max_size`` on its longer side (aspect ratio kept).

    ``photometric`` defaults to RGB for ``(rows, columns, 3)`` input, else MONOCHROME2.
    """
    if max_size < 1:
        raise InvalidInput(f"A thumbnail needs a size of at least 1 pixel, not {max_size}.")
    array = np.asarray(frame_or_rgb)
    if photometric is None:
        photometric = "RGB" if array.ndim == 3 and array.shape[2] == 3 else "MONOCHROME2"
    if array.ndim != (3 if photometric == "RGB" else 2):
        raise InvalidInput(f"A thumbnail is made of one frame, not an array of {array.shape}.")
    display = to_display(array, photometric=photometric, window=window)
    picture = Image.fromarray(np.ascontiguousarray(display))
    picture.thumbnail((max_size, max_size))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=quality)
    return out.getvalue()
