"""Decoding checked DICOM pixel data into arrays: frames, colour and modality values.

``decode_frames`` decodes only the requested frames, after ``dicom_pixel_module`` checked
the header, the limits and every frame's codestream header; monochrome frames come out as
stored values, colour (RGB, YBR, palette) as uint8 RGB. ``to_modality_values`` applies the
rescale slope and intercept (per frame where an enhanced object's frames differ).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, convert_color_space

from medlabel.domain.errors import InvalidInput
from medlabel.imaging import codestream
from medlabel.imaging.dicom_info import InstanceInfo
from medlabel.imaging.dicom_limits import PASS_THROUGH, DicomLimits, quiet
from medlabel.imaging.dicom_pixel_module import (
    PIXEL_KEYWORDS,
    PixelModule,
    Plan,
    checked_plan,
    decoder_for,
    expected_image,
)
from medlabel.imaging.dicom_values import get_value


def decode_frames(
    ds: Dataset, limits: DicomLimits, start: int = 0, count: int | None = None
) -> NDArray[Any]:
    """Frames ``start .. start+count-1`` as ``(n, rows, cols)`` stored values (monochrome:
    no modality LUT, no MONOCHROME1 inversion) or ``(n, rows, cols, 3)`` uint8 RGB (RGB,
    YBR and palette colour). Only the requested frames are decoded."""
    plan = checked_plan(ds, limits)
    frames = plan.pixels.frames
    count = frames - start if count is None else count
    if start < 0 or count < 1 or start + count > frames:
        raise InvalidInput(
            "The requested frames are outside the image; ask for frames from 0 to the "
            "number of frames minus one."
        )
    indices = range(start, start + count)
    with quiet():
        try:
            if plan.encapsulated is None:
                return _decode_native(ds, plan, indices)
            return _decode_encapsulated(ds, plan, indices)
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # Rust decoders panic with a BaseException (pyo3)
            raise InvalidInput(
                "The compressed pixel data is damaged: a frame cannot be decoded. Export the "
                "image again from the source system."
                if plan.encapsulated
                else "The pixel data cannot be decoded as the header describes it; export "
                "the image again from the source system."
            ) from exc


def _decode_native(ds: Dataset, plan: Plan, indices: range) -> NDArray[Any]:
    decoder, finish = decoder_for(plan.syntax), _Finisher(ds, plan.pixels)
    options = {**plan.pixels.options(), "as_rgb": True}
    if len(indices) == plan.pixels.frames:
        arr, props = decoder.as_array(ds, **options)
        pixels = plan.pixels
        shape = (len(indices), pixels.rows, pixels.columns)
        return finish(arr.reshape(shape + ((pixels.samples,) if pixels.samples > 1 else ())), props)
    found = decoder.iter_array(ds, indices=indices, **options)
    return _stack(finish(arr[np.newaxis], props) for arr, props in found)


def _decode_encapsulated(ds: Dataset, plan: Plan, indices: range) -> NDArray[Any]:
    encapsulated = plan.encapsulated
    assert encapsulated is not None
    value = get_value(ds, plan.pixels.tag)
    decoder, finish = decoder_for(plan.syntax), _Finisher(ds, plan.pixels)
    options = {**plan.pixels.options(), "number_of_frames": 1, "as_rgb": True}
    options["pixel_keyword"] = PIXEL_KEYWORDS[plan.pixels.tag]

    def frames() -> Iterator[NDArray[Any]]:
        for index in indices:
            frame = codestream.frame_bytes(value, encapsulated, plan.frames[index])
            codestream.check_codestream(plan.syntax, frame, expected_image(plan.pixels))
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

    def __init__(self, ds: Dataset, pixels: PixelModule) -> None:
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


def _palette_table(ds: Dataset, pixels: PixelModule) -> tuple[NDArray[np.uint8], int]:
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


def to_modality_values(frames: NDArray[Any], info: InstanceInfo, start: int = 0) -> NDArray[Any]:
    """Apply Rescale Slope/Intercept: int16 when every result is a whole number that fits
    (CT Hounsfield units), else float32. Colour frames are returned unchanged.

    ``frames`` are the frames from ``start`` on (as ``decode_frames`` returns them). When
    ``info.per_frame_rescale`` is set, each frame gets its own slope and intercept and the
    dtype rule holds for the frames given, together: int16 only when every result of every
    frame is a whole number that fits (pass every frame, as ingest does, for one dtype per
    object)."""
    if frames.ndim == 4 or frames.dtype.kind not in "biuf":
        return frames
    if info.per_frame_rescale is not None:
        rescales = info.per_frame_rescale[start : start + len(frames)]
        if start < 0 or len(rescales) != len(frames):
            raise ValueError("frames and per-frame rescale values do not match")
        return _per_frame_values(frames, rescales)
    slope = 1.0 if info.rescale_slope is None else info.rescale_slope
    intercept = 0.0 if info.rescale_intercept is None else info.rescale_intercept
    if frames.dtype.kind != "f" and slope.is_integer() and intercept.is_integer():
        low, high = (int(frames.min()), int(frames.max())) if frames.size else (0, 0)
        ends = (low * slope + intercept, high * slope + intercept)
        if min(ends) >= -32768 and max(ends) <= 32767:
            return _whole_values(frames, int(slope), int(intercept), low, high)
    out = frames.astype(np.float32)
    out *= np.float32(slope)
    out += np.float32(intercept)
    return out


def _whole_values(
    frames: NDArray[Any], slope: int, intercept: int, low: int, high: int
) -> NDArray[Any]:
    """``frames * slope + intercept`` as int16, given that every result fits (``low`` and
    ``high`` are the smallest and largest stored value)."""
    if frames.dtype == np.int16 and slope == 1 and intercept == 0:
        return frames
    if slope == 1 and min(low, intercept) >= -32768 and max(high, intercept) <= 32767:
        # Stored values, intercept and every sum fit int16: one pass, no wide copy.
        return np.asarray(np.add(frames, np.int16(intercept), dtype=np.int16, casting="unsafe"))
    wide = frames.astype(np.int32 if frames.dtype.itemsize <= 2 else np.int64)
    return np.asarray((wide * slope + intercept).astype(np.int16))


def _per_frame_values(
    frames: NDArray[Any], rescales: tuple[tuple[float, float], ...]
) -> NDArray[Any]:
    """Each frame ``k`` as ``frames[k] * slope_k + intercept_k``: int16 when that is whole
    and fits int16 for every frame (checked from each frame's smallest and largest stored
    value), else float32 for all, each frame computed as the single-rescale path would."""
    integral = all(s.is_integer() and c.is_integer() for s, c in rescales)
    if frames.dtype.kind != "f" and frames.size and integral:
        flat = frames.reshape(len(frames), -1)
        lows, highs = flat.min(axis=1).tolist(), flat.max(axis=1).tolist()
        bounds = [
            (int(slope), int(intercept), int(low), int(high))
            for (slope, intercept), low, high in zip(rescales, lows, highs, strict=True)
        ]
        ends = [(low * s + c, high * s + c) for s, c, low, high in bounds]
        if all(min(pair) >= -32768 and max(pair) <= 32767 for pair in ends):
            out = np.empty(frames.shape, np.int16)
            for k, (slope, intercept, low, high) in enumerate(bounds):
                out[k] = _whole_values(frames[k], slope, intercept, low, high)
            return out
    out = frames.astype(np.float32)
    for k, (factor, offset) in enumerate(rescales):
        out[k] *= np.float32(factor)
        out[k] += np.float32(offset)
    return out
