"""The Image Pixel module of a DICOM dataset, checked before anything is decoded.

``pixel_module`` refuses nonsense pixel modules; ``checked_plan`` (and the public
``check_pixel_module``) computes the decoded size from the header before allocating,
compares it with the limits and with the Pixel Data actually present, and checks fragments
and codestream headers (``codestream``) before a decoder runs. Every expected failure is a
``MedlabelError`` (``InvalidInput`` 422, ``Unsupported`` 415, ``TooLarge`` 413) whose
message never contains a value from the file.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging import codestream
from medlabel.imaging.dicom_limits import DicomLimits, quiet
from medlabel.imaging.dicom_values import as_int, as_text, as_upper, get_value

_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
PIXEL_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}


@dataclass(frozen=True)
class PixelModule:
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


def pixel_module(ds: Dataset) -> PixelModule | None:
    """The validated pixel module, or None for a dataset without pixel data (SR, KO...)."""
    present = [tag for tag in PIXEL_KEYWORDS if tag in ds]
    if not present:
        return None
    if len(present) > 1:
        raise _bad_pixels("it holds more than one kind of pixel data")
    rows, columns = as_int(get_value(ds, 0x00280010)), as_int(get_value(ds, 0x00280011))
    if rows is None or columns is None or not (1 <= rows <= 65535 and 1 <= columns <= 65535):
        raise _bad_pixels("Rows and Columns must be whole numbers from 1 to 65535")
    photometric = as_upper(get_value(ds, 0x00280004))
    samples = as_int(get_value(ds, 0x00280002))
    _check_photometric(photometric, samples)
    assert photometric is not None
    samples = samples or (3 if photometric in _COLOUR else 1)
    allocated = as_int(get_value(ds, 0x00280100))
    _check_bits_allocated(present[0], photometric, allocated)
    assert allocated is not None
    stored = as_int(get_value(ds, 0x00280101)) or allocated
    high_bit = as_int(get_value(ds, 0x00280102))
    if not 1 <= stored <= allocated or (high_bit is not None and not 0 <= high_bit < allocated):
        raise _bad_pixels("Bits Stored and High Bit must fit inside Bits Allocated")
    representation = as_int(get_value(ds, 0x00280103)) or 0
    planar = (as_int(get_value(ds, 0x00280006)) or 0) if samples > 1 else 0
    if representation not in (0, 1) or planar not in (0, 1):
        raise _bad_pixels("Pixel Representation and Planar Configuration must be 0 or 1")
    frames = as_int(get_value(ds, 0x00280008))
    if frames is not None and frames < 0:
        raise _bad_pixels("Number of Frames must be a positive whole number")
    return PixelModule(
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
    syntax = as_text(get_value(meta, 0x00020010)) if meta is not None else None
    if syntax is None:
        raise InvalidInput(
            "The DICOM dataset has no Transfer Syntax UID in its file meta, so its pixel data "
            "cannot be interpreted; export it again as a DICOM Part 10 file."
        )
    return syntax


def check_pixel_module(ds: Dataset, limits: DicomLimits) -> None:
    """Refuse pixel data that is nonsense, too large, shorter than declared, or (when
    encapsulated) structurally broken, before anything is decoded (SECURITY 5-8)."""
    checked_plan(ds, limits)


@dataclass(frozen=True)
class Plan:
    pixels: PixelModule
    syntax: str
    encapsulated: codestream.Encapsulated | None
    frames: list[range]


def checked_plan(ds: Dataset, limits: DicomLimits) -> Plan:
    with quiet():
        return _plan(ds, limits)


def _plan(ds: Dataset, limits: DicomLimits) -> Plan:
    pixels = pixel_module(ds)
    if pixels is None:
        raise Unsupported(
            "The DICOM object has no pixel data (it is a report, a document or a list), "
            "so it is not an image that can be annotated."
        )
    _check_limits(pixels, limits)
    syntax = _syntax(ds)
    value = get_value(ds, pixels.tag)
    if not isinstance(value, bytes):
        raise _bad_pixels("the pixel data cannot be read")
    decoder = decoder_for(syntax)
    if decoder.is_native:
        _check_native_length(pixels, len(value))
        return Plan(pixels, syntax, None, [])
    encapsulated = codestream.parse_encapsulated(value)
    frames = codestream.frame_fragments(
        value, encapsulated, pixels.frames, _extended_offsets(ds),
        syntax in codestream.JPEG_SYNTAXES | codestream.J2K_SYNTAXES,
    )  # fmt: skip
    first = codestream.frame_bytes(value, encapsulated, frames[0])
    codestream.check_codestream(syntax, first, expected_image(pixels))
    return Plan(pixels, syntax, encapsulated, frames)


def _check_limits(pixels: PixelModule, limits: DicomLimits) -> None:
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


def _check_native_length(pixels: PixelModule, actual: int) -> None:
    expected = math.ceil(pixels.frame_bytes() * pixels.frames)
    if pixels.bits_allocated == 1:
        expected = math.ceil(pixels.rows * pixels.columns * pixels.frames * pixels.samples / 8)
    if actual < expected:
        raise InvalidInput(
            "The DICOM file's Pixel Data is shorter than Rows, Columns, Number of Frames, "
            "Samples per Pixel and Bits Allocated declare: the file is truncated or its "
            "header is wrong. Export it again from the source system."
        )


def expected_image(pixels: PixelModule) -> codestream.ExpectedImage:
    return codestream.ExpectedImage(
        pixels.rows, pixels.columns, pixels.samples, pixels.bits_allocated
    )


def _extended_offsets(ds: Dataset) -> list[int] | None:
    raw = get_value(ds, 0x7FE00001)
    if not isinstance(raw, bytes) or not raw:
        return None
    if len(raw) % 8:
        raise InvalidInput("The DICOM file's Extended Offset Table is malformed; export it again.")
    return list(struct.unpack(f"<{len(raw) // 8}Q", raw))


def decoder_for(syntax: str) -> Any:
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
