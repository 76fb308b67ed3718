"""Read NIfTI-1/2 single files (``.nii``, ``.nii.gz``) safely into a volume and its geometry.

What is read and what is not
----------------------------
- Pixels and geometry only. The free-text header fields (``descrip``, ``aux_file``,
  ``intent_name``, ``db_name``) and every header extension are never parsed, kept or exposed:
  they can carry names, dates and scanner notes (SECURITY case 17). The file name is PHI too:
  it is never stored here and never appears in an error message.
- Untrusted input is checked *before* any voxel is read (SECURITY case 17): the header's
  ``dim[]`` product against ``NiftiLimits.max_voxels`` / ``max_data_bytes`` (TooLarge);
  zero, negative or NaN ``pixdim`` and non-finite or singular affines (InvalidInput). A
  ``.nii.gz`` (detected by its magic bytes, not its name) is inflated as a stream into a
  buffer of exactly the size the header declares; at most ``trailing_bytes_allowed`` more
  bytes are pulled to prove the stream ends there, so a gzip bomb is refused (TooLarge) after
  inflating only ``expected + margin`` bytes. A short stream or file is InvalidInput.

Geometry
--------
The affine comes from the ``sform`` when ``sform_code > 0``, else from the ``qform`` when
``qform_code > 0``, else from ``pixdim`` alone (NIfTI's "method 1": a diagonal, origin 0;
nibabel instead flips x and centres the origin, Analyze style). This is nibabel's
``get_best_affine`` order; an sform is the scanner-to-template
mapping a pipeline chose on purpose, so it wins. The affine is scaled to millimetres
following ``xyzt_units`` (metres x1000, microns x0.001; "unknown" is taken as mm, as every
common tool does) and converted from RAS to our LPS by :func:`from_nifti_affine`.

Voxel order and dtype
---------------------
NIfTI stores ``i`` (column) fastest, then ``j`` (row), ``k`` (slice), ``t`` (time): read as a
C array that is exactly ``(t, k, j, i)`` = (timepoints, slices, rows, columns), our frame
order, with no copy. :attr:`NiftiVolume.voxels` keeps that order; :attr:`NiftiVolume.data` is
the ``(i, j, k[, t])`` view nibabel users expect.

dtypes: uint8, int16, uint16 and float32 are kept; int8 becomes int16; wider integers become
the narrowest of uint8/int16/uint16 that holds the values present, else float32 (exact up to
2**24); float64 becomes float32. ``scl_slope``/``scl_inter`` are applied when the slope is
finite and non-zero and the pair is not (1, 0): integral scaling of integer data keeps an
integer type when the scaled values fit uint8/int16/uint16, anything else gives float32.
Complex, RGB and 5D+ images are Unsupported.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.domain.geometry import Geometry, from_nifti_affine

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_SIZES = {348: 1, 540: 2}  # sizeof_hdr -> NIfTI version
_CHUNK_BYTES = 8 * 1024 * 1024
_UNIT_TO_MM = {0: 1.0, 1: 1000.0, 2: 1.0, 3: 0.001}  # xyzt_units & 7: unknown, m, mm, um
_TIME_UNIT_TO_S = {8: 1.0, 16: 1e-3, 24: 1e-6}  # xyzt_units & 0x38: s, ms, us
_KEPT = {np.dtype(t) for t in ("uint8", "int16", "uint16", "float32")}
_SUPPORTED = {
    2: "uint8",
    4: "int16",
    8: "int32",
    16: "float32",
    64: "float64",
    256: "int8",
    512: "uint16",
    768: "uint32",
    1024: "int64",
    1280: "uint64",
}
_NARROW_INTS = (np.dtype("uint8"), np.dtype("int16"), np.dtype("uint16"))

AffineSource = Literal["sform", "qform", "pixdim"]


@dataclass(frozen=True)
class NiftiLimits:
    """Caps applied before allocation. Defaults suit a server; tests pass smaller ones."""

    max_voxels: int = 2**31
    max_data_bytes: int = 4 * 2**30
    max_header_gap_bytes: int = 16 * 2**20  # extensions between header and data (skipped)
    trailing_bytes_allowed: int = 2**20  # bytes a .nii.gz stream may hold after the data


@dataclass(frozen=True)
class NiftiIntent:
    """The intent *code* and its standard name (e.g. 1002 "label"); never ``intent_name``."""

    code: int
    name: str
    params: tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class NiftiVolume:
    """A NIfTI image: geometry (LPS, mm) and read-only voxels ``(t, k, j, i)``."""

    geometry: Geometry
    voxels: NDArray[Any]
    intent: NiftiIntent
    affine_source: AffineSource
    stored_dtype: str
    scaled: bool
    time_step_s: float | None

    @property
    def timepoints(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def data(self) -> NDArray[Any]:
        """The ``(i, j, k)`` view (``(i, j, k, t)`` for 4D), indexed like nibabel's arrays."""
        if self.timepoints == 1:
            return np.asarray(self.voxels[0]).transpose(2, 1, 0)
        return self.voxels.transpose(3, 2, 1, 0)

    def frames(self, timepoint: int = 0) -> NDArray[Any]:
        """The frames of one timepoint, shape ``(slices, rows, columns)``: ``[k, j, i]``."""
        if not 0 <= timepoint < self.timepoints:
            raise InvalidInput(
                f"Timepoint {timepoint} does not exist: this volume has {self.timepoints} "
                f"(0 to {self.timepoints - 1})."
            )
        return np.asarray(self.voxels[timepoint])


@dataclass(frozen=True)
class _Layout:
    shape_tkji: tuple[int, int, int, int]
    dtype: np.dtype[Any]
    data_offset: int
    nbytes: int


def read_nifti(path: str | Path, limits: NiftiLimits | None = None) -> NiftiVolume:
    """Read a single-file NIfTI-1 or NIfTI-2 image (plain or gzip) within ``limits``."""
    limits = limits or NiftiLimits()
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        size = None if compressed else os.fstat(raw.fileno()).st_size
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            header, header_size = _read_header(stream)
            layout = _check_layout(header, header_size, limits)
            affine, source = _affine_mm(header)
            voxels = _read_voxels(stream, layout, limits, size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InvalidInput(
                "The NIfTI file's gzip stream is damaged or truncated; export it again."
            ) from exc
        finally:
            if compressed:
                stream.close()
    values, scaled = _normalize(voxels, *_scaling(header))
    values.flags.writeable = False
    i, j, k = layout.shape_tkji[3], layout.shape_tkji[2], layout.shape_tkji[1]
    return NiftiVolume(
        geometry=from_nifti_affine(affine, (i, j, k)),
        voxels=values,
        intent=_intent(header),
        affine_source=source,
        stored_dtype=layout.dtype.newbyteorder("=").name,
        scaled=scaled,
        time_step_s=_time_step_s(header) if layout.shape_tkji[0] > 1 else None,
    )


# -- header -------------------------------------------------------------------------------


def _read_exact(stream: io.BufferedIOBase, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise InvalidInput(f"The NIfTI file ends inside its {what}; the upload is truncated.")
    return data


def _read_header(stream: io.BufferedIOBase) -> tuple[Any, int]:
    from nibabel.nifti1 import Nifti1Header
    from nibabel.nifti2 import Nifti2Header

    first = _read_exact(stream, 4, "header")
    size = next((s for s in _HEADER_SIZES if s in (_le(first), _be(first))), None)
    if size is None:
        raise Unsupported(
            "The file is not a NIfTI-1 or NIfTI-2 image (its header size field is wrong)."
        )
    block = first + _read_exact(stream, size - 4, "header")
    cls = Nifti1Header if _HEADER_SIZES[size] == 1 else Nifti2Header
    header = cls(binaryblock=block, check=False)  # type: ignore[no-untyped-call]
    magic = bytes(header["magic"]).rstrip(b"\x00")
    if magic not in (b"n+1", b"n+2"):
        kind = "a header/image pair" if magic in (b"ni1", b"ni2") else "not NIfTI (Analyze?)"
        raise Unsupported(f"This NIfTI file is {kind}; upload a single-file .nii or .nii.gz.")
    return header, size


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _be(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _check_layout(header: Any, header_size: int, limits: NiftiLimits) -> _Layout:
    dim = [int(d) for d in header["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dim[1 : ndim + 1]):
        raise InvalidInput(f"The NIfTI dim[] field is invalid ({dim[: ndim + 1]}).")
    sizes = dim[1 : ndim + 1] + [1] * (7 - ndim)
    if any(d > 1 for d in sizes[4:]):
        raise Unsupported("5D+ NIfTI images are not supported; split them into 3D/4D files.")
    count = math.prod(sizes[:4])
    if count > limits.max_voxels:
        raise TooLarge(
            f"The NIfTI header declares {count} voxels, above the limit of "
            f"{limits.max_voxels}; split or downsample the image."
        )
    code = int(header["datatype"])
    if code not in _SUPPORTED:
        raise Unsupported(f"NIfTI datatype {code} is not supported; use an integer or float image.")
    dtype = np.dtype(_SUPPORTED[code]).newbyteorder(header.endianness)
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_data_bytes:
        raise TooLarge(f"The NIfTI image holds {nbytes} bytes, above {limits.max_data_bytes}.")
    _check_pixdim(header, sizes)
    return _Layout(
        shape_tkji=(sizes[3], sizes[2], sizes[1], sizes[0]),
        dtype=dtype,
        data_offset=_data_offset(header, header_size, limits),
        nbytes=nbytes,
    )


def _check_pixdim(header: Any, sizes: list[int]) -> None:
    pixdim = [float(p) for p in header["pixdim"]]
    if not math.isfinite(pixdim[0]):
        raise InvalidInput("The NIfTI qfac (pixdim[0]) is not a number.")
    for axis in (1, 2, 3):
        p = pixdim[axis]
        if sizes[axis - 1] == 1 and p == 0:
            header["pixdim"][axis] = 1.0  # an unused axis of a 2D image: tolerated
        elif not math.isfinite(p) or p <= 0:
            raise InvalidInput(
                f"The NIfTI voxel size pixdim[{axis}] is {p}; it must be a positive number "
                "of millimetres. Fix the header with the tool that wrote it."
            )


def _data_offset(header: Any, header_size: int, limits: NiftiLimits) -> int:
    vox_offset = float(header["vox_offset"])
    if not math.isfinite(vox_offset) or vox_offset < 0:
        raise InvalidInput(f"The NIfTI vox_offset ({vox_offset}) is invalid.")
    minimum = header_size + 4  # the header plus the 4-byte extension flag
    offset = max(int(vox_offset), minimum)  # 0 (seen in the wild) means "right after"
    if offset - minimum > limits.max_header_gap_bytes:
        raise TooLarge(
            f"The NIfTI extensions take {offset - minimum} bytes, above "
            f"{limits.max_header_gap_bytes}; remove them (they are discarded anyway)."
        )
    return offset


def _affine_mm(header: Any) -> tuple[NDArray[np.float64], AffineSource]:
    source: AffineSource
    try:
        if int(header["sform_code"]) > 0:
            affine, source = np.asarray(header.get_sform(), dtype=float), "sform"
        elif int(header["qform_code"]) > 0:
            affine, source = np.asarray(header.get_qform(), dtype=float), "qform"
        else:
            affine, source = np.diag([*header["pixdim"][1:4], 1.0]).astype(float), "pixdim"
    except (ValueError, ArithmeticError) as exc:
        raise InvalidInput("The NIfTI qform quaternion is invalid.") from exc
    if not np.all(np.isfinite(affine)):
        raise InvalidInput(f"The NIfTI {source} holds a NaN or infinite value.")
    if abs(float(np.linalg.det(affine[:3, :3]))) < 1e-12:
        raise InvalidInput(f"The NIfTI {source} is singular (a voxel axis has no extent).")
    affine[:3, :] *= _UNIT_TO_MM.get(int(header["xyzt_units"]) & 0x07, 1.0)
    return affine, source


def _scaling(header: Any) -> tuple[float, float]:
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if math.isnan(slope) or slope == 0:
        return 1.0, 0.0
    if math.isinf(slope) or math.isinf(inter):
        raise InvalidInput("The NIfTI scl_slope/scl_inter is infinite.")
    return slope, 0.0 if math.isnan(inter) else inter


def _intent(header: Any) -> NiftiIntent:
    from nibabel.nifti1 import intent_codes

    code = int(header["intent_code"])
    name = str(intent_codes.label[code]) if code in intent_codes.value_set() else "unknown"
    p = (float(header["intent_p1"]), float(header["intent_p2"]), float(header["intent_p3"]))
    return NiftiIntent(code=code, name=name, params=p)


def _time_step_s(header: Any) -> float | None:
    factor = _TIME_UNIT_TO_S.get(int(header["xyzt_units"]) & 0x38)
    step = float(header["pixdim"][4])
    if factor is None or not math.isfinite(step) or step <= 0:
        return None
    return step * factor


# -- voxels -------------------------------------------------------------------------------


def _read_voxels(
    stream: io.BufferedIOBase, layout: _Layout, limits: NiftiLimits, file_size: int | None
) -> NDArray[Any]:
    position = stream.tell()
    if file_size is not None:  # plain file: seek and check the length without reading
        if file_size < layout.data_offset + layout.nbytes:
            raise InvalidInput(
                f"The NIfTI file is truncated: it holds {max(file_size - layout.data_offset, 0)}"
                f" of the {layout.nbytes} data bytes its header declares."
            )
        stream.seek(layout.data_offset)
    else:
        _discard(stream, layout.data_offset - position)  # extensions: inflated, never kept
    buffer = np.empty(layout.nbytes, dtype=np.uint8)
    view = buffer.data
    filled = 0
    while filled < layout.nbytes:
        n = stream.readinto(view[filled : filled + _CHUNK_BYTES])
        if not n:
            raise InvalidInput(
                f"The NIfTI data is truncated: {filled} of {layout.nbytes} bytes are present."
            )
        filled += n
    if file_size is None and len(stream.read(limits.trailing_bytes_allowed + 1)) > (
        limits.trailing_bytes_allowed
    ):
        raise TooLarge(
            "The .nii.gz stream inflates to more data than its header declares (a possible "
            "gzip bomb); it was refused without inflating it."
        )
    return buffer.view(layout.dtype).reshape(layout.shape_tkji)


def _discard(stream: io.BufferedIOBase, n: int) -> None:
    while n > 0:
        got = len(stream.read(min(n, _CHUNK_BYTES)))
        if not got:
            raise InvalidInput("The NIfTI file ends before its data starts; it is truncated.")
        n -= got


def _normalize(raw: NDArray[Any], slope: float, inter: float) -> tuple[NDArray[Any], bool]:
    """Native byte order, a kept dtype, and scl_slope/scl_inter applied (see module doc)."""
    native = raw.astype(raw.dtype.newbyteorder("="), copy=False)
    if (slope, inter) != (1.0, 0.0):
        return _scaled(native, slope, inter), True
    if native.dtype in _KEPT:
        return native, False
    if native.dtype == np.float64:
        return native.astype(np.float32), False
    target = _fitting_int(native, 1.0, 0.0)
    return native.astype(target if target is not None else np.dtype(np.float32)), False


def _fitting_int(values: NDArray[Any], slope: float, inter: float) -> np.dtype[Any] | None:
    """The narrowest of uint8/int16/uint16 that holds ``values * slope + inter``, if any."""
    if values.dtype.kind not in "iu" or not (slope.is_integer() and inter.is_integer()):
        return None
    lo, hi = int(values.min()), int(values.max())
    ends = sorted((lo * int(slope) + int(inter), hi * int(slope) + int(inter)))
    for dtype in _NARROW_INTS:
        info = np.iinfo(dtype)
        if info.min <= ends[0] and ends[1] <= info.max:
            return dtype
    return None


def _scaled(values: NDArray[Any], slope: float, inter: float) -> NDArray[Any]:
    target = _fitting_int(values, slope, inter)
    out = np.empty(values.shape, dtype=target or np.dtype(np.float32))
    for t in range(values.shape[0]):  # one slice at a time: float64 temporaries stay small
        for k in range(values.shape[1]):
            scaled = values[t, k].astype(np.float64) * slope + inter
            out[t, k] = np.rint(scaled) if target is not None else scaled
    return out
