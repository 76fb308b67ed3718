"""Compact, safe transport and storage codecs for labelmap masks.

Array convention (shared by ``masks``, ``raster``, ``interpolate`` and ``mask_stats``):

- A labelmap volume is a numpy array of shape ``(slices, rows, columns)`` = ``(k, j, i)``,
  dtype ``uint8`` or ``uint16``, C order. ``0`` is background; any other value is a label
  value (a class value from the label schema, or an instance id). A 2D image is a volume
  with one slice; a single slice is a ``(rows, columns)`` array.
- On the wire and on disk every multi-byte value is little-endian.

Transport encodings of a block of ``n`` slices of ``rows x columns`` voxels (the body of a
request is binary, never a JSON array):

``raw``
    The voxels in C order (slice, then row, then column), ``n*rows*columns*itemsize`` bytes.
``zlib``
    One zlib stream (RFC 1950, with its header and Adler-32 trailer; what ``zlib.compress``
    writes) of the ``raw`` bytes of the whole block. Nothing may follow the stream.
``rle``
    Run-length pairs over the flattened block in C order: a sequence of little-endian
    ``uint32`` pairs ``(value, run_length)``, 8 bytes per run, nothing else (no header).
    ``run_length >= 1``; ``value < 2**bits`` of the dtype (256 for uint8, 65536 for
    uint16); the run lengths sum to exactly ``n*rows*columns``. Adjacent runs may repeat a
    value (the decoder accepts that); :func:`encode_block` always emits maximal runs.

:func:`decode_block` checks everything before it allocates: the declared size against
``max_voxels`` (:class:`TooLarge`, 413), then the body (:class:`InvalidInput`, 422). A zlib
body is inflated with a bound of one byte more than the expected size, so a "zlib bomb"
never allocates more than the block it claims to be; an RLE body's run lengths are summed
before the output is built with ``np.repeat``.

Per-slice storage (:func:`pack_slice` / :func:`unpack_slice`): an all-zero slice is stored
as nothing (``None``); any other slice as a self-describing blob::

    offset size  field
    0      3     magic b"MLS"
    3      1     format version, 1
    4      1     codec: 1 = zlib (level 1) of the raw little-endian slice bytes,
                        2 = RLE pairs exactly as the ``rle`` transport encoding
    5      1     bits per voxel: 8 (uint8) or 16 (uint16)
    6      4     rows, uint32 little-endian
    10     4     columns, uint32 little-endian
    14     ...   payload

The packer writes whichever of the two payloads is smaller (RLE on a tie); when the RLE
payload is at most 1/1032 of the raw size (deflate's best possible ratio) it does not try
zlib at all. The unpacker
never trusts the header for allocation: it checks magic, version, codec, dtype, rows and
columns against what the caller expects and decodes the payload with the same bounded
decoders as :func:`decode_block`.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import numpy as np
from numpy.typing import DTypeLike, NDArray

from medlabel.domain.errors import InvalidInput, TooLarge

ENCODINGS: Final = ("raw", "zlib", "rle")
DTYPES: Final = ("uint8", "uint16")

SLICE_MAGIC: Final = b"MLS"
SLICE_VERSION: Final = 1
SLICE_CODEC_ZLIB: Final = 1
SLICE_CODEC_RLE: Final = 2
_SLICE_HEADER: Final = struct.Struct("<3sBBBII")
SLICE_HEADER_SIZE: Final = _SLICE_HEADER.size  # 14

_LE_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
}
_BITS: Final[dict[str, int]] = {"uint8": 8, "uint16": 16}
_BINCOUNT_CHUNK: Final = 1 << 22  # np.bincount converts to intp: bound its temporary

Bytes = bytes | bytearray | memoryview


# ---- helpers ----------------------------------------------------------------------------


def _dtype_name(dtype: DTypeLike, *, field: str = "dtype") -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise InvalidInput(
            f"Unsupported mask dtype {dtype!r}; use one of {', '.join(DTYPES)}.",
            errors=[{"field": field, "problem": f"must be one of {', '.join(DTYPES)}"}],
        )
    return name


def _array_dtype_name(arr: NDArray[Any], *, field: str = "mask") -> str:
    name = arr.dtype.name
    if name not in DTYPES:
        raise InvalidInput(
            f"A mask must have dtype {' or '.join(DTYPES)}, not {arr.dtype}; cast it first.",
            errors=[{"field": field, "problem": f"dtype must be one of {', '.join(DTYPES)}"}],
        )
    return name


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise InvalidInput(
            f"{field} must be a positive integer, not {value!r}.",
            errors=[{"field": field, "problem": "must be a positive integer"}],
        )
    return int(value)


def _body_error(detail: str, problem: str) -> InvalidInput:
    return InvalidInput(detail, errors=[{"field": "body", "problem": problem}])


def _as_bytes(data: object) -> memoryview:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput(
            f"Mask data must be bytes, not {type(data).__name__}.",
            errors=[{"field": "body", "problem": "must be binary"}],
        )
    view = memoryview(data)
    if not view.c_contiguous:
        raise InvalidInput(
            "Mask data must be a contiguous buffer.",
            errors=[{"field": "body", "problem": "must be contiguous"}],
        )
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _from_le(buf: Bytes, dtype_name: str, shape: tuple[int, ...]) -> NDArray[Any]:
    """A fresh, writable, native-order C array from little-endian bytes (always a copy)."""
    arr = np.frombuffer(buf, dtype=_LE_DTYPES[dtype_name])
    return arr.astype(np.dtype(dtype_name)).reshape(shape)


def _to_le_bytes(arr: NDArray[Any], dtype_name: str) -> bytes:
    return np.ascontiguousarray(arr, dtype=_LE_DTYPES[dtype_name]).tobytes(order="C")


# ---- the three decoders -----------------------------------------------------------------


def _decode_raw(view: memoryview, dtype_name: str, shape: tuple[int, ...]) -> NDArray[Any]:
    expected = int(np.prod(shape)) * _LE_DTYPES[dtype_name].itemsize
    if len(view) != expected:
        raise _body_error(
            f"A raw {dtype_name} mask of shape {shape} (slices, rows, columns) is {expected} "
            f"bytes, but the body has {len(view)} bytes. Send exactly the voxels in C order.",
            f"expected {expected} bytes, got {len(view)}",
        )
    return _from_le(view, dtype_name, shape)


def _inflate_bounded(view: memoryview, expected: int, what: str) -> bytes:
    """Inflate one zlib stream to exactly ``expected`` bytes, never producing more than
    ``expected + 1`` bytes whatever the stream claims."""
    d = zlib.decompressobj()
    too_long = False
    try:
        out = d.decompress(view, expected + 1)
        too_long = len(out) > expected
        if len(out) == expected and not d.eof:
            # Only the trailer may be left, or more data: inflate at most one more byte.
            too_long = bool(d.decompress(d.unconsumed_tail, 1))
    except zlib.error as exc:
        raise _body_error(
            f"The {what} is not a zlib stream ({exc}). Compress the raw little-endian voxel "
            "bytes with zlib (RFC 1950, e.g. zlib.compress or pako.deflate).",
            "not a zlib stream",
        ) from exc
    if too_long:
        raise _body_error(
            f"The {what} inflates to more than the expected {expected} bytes; it must inflate "
            "to exactly the declared shape times the item size.",
            f"inflates to more than {expected} bytes",
        )
    if not d.eof:
        raise _body_error(
            f"The {what} is a truncated zlib stream: it inflates to {len(out)} bytes before "
            f"it ends, but {expected} bytes are expected. Send the complete stream.",
            f"truncated: {len(out)} of {expected} bytes",
        )
    if len(out) < expected:
        raise _body_error(
            f"The {what} inflates to {len(out)} bytes, but the declared shape needs "
            f"{expected} bytes. Check the declared shape and dtype.",
            f"inflates to {len(out)} bytes, expected {expected}",
        )
    if d.unused_data:
        raise _body_error(
            f"The {what} has {len(d.unused_data)} bytes after the end of its zlib stream; "
            "send one stream and nothing after it.",
            "trailing bytes after the zlib stream",
        )
    return out


def _decode_zlib(
    view: memoryview, dtype_name: str, shape: tuple[int, ...], what: str = "body"
) -> NDArray[Any]:
    expected = int(np.prod(shape)) * _LE_DTYPES[dtype_name].itemsize
    return _from_le(_inflate_bounded(view, expected, what), dtype_name, shape)


def _decode_rle(
    view: memoryview, dtype_name: str, shape: tuple[int, ...], what: str = "body"
) -> NDArray[Any]:
    count = int(np.prod(shape))
    if len(view) % 8:
        raise _body_error(
            f"An RLE {what} is a sequence of 8-byte (value, run_length) uint32 pairs, but it "
            f"has {len(view)} bytes, not a multiple of 8.",
            "length is not a multiple of 8",
        )
    runs = len(view) // 8
    if runs == 0 or runs > count:
        raise _body_error(
            f"The RLE {what} has {runs} runs; a block of {count} voxels needs between 1 and "
            f"{count} runs, each at least one voxel long.",
            f"{runs} runs for {count} voxels",
        )
    pairs = np.frombuffer(view, dtype="<u4").reshape(runs, 2)
    values, lengths = pairs[:, 0], pairs[:, 1]
    zero = np.flatnonzero(lengths == 0)
    if zero.size:
        raise _body_error(
            f"Run {int(zero[0])} of the RLE {what} has length 0; every run must be at least "
            "one voxel long.",
            "run of length 0",
        )
    total = int(lengths.sum(dtype=np.uint64))
    if total != count:
        raise _body_error(
            f"The runs of the RLE {what} sum to {total} voxels, but the declared shape "
            f"{shape} (slices, rows, columns) has {count} voxels.",
            f"runs sum to {total}, expected {count}",
        )
    limit = 1 << _BITS[dtype_name]
    bad = np.flatnonzero(values >= limit)
    if bad.size:
        raise _body_error(
            f"Run {int(bad[0])} of the RLE {what} has value {int(values[bad[0]])}, which does "
            f"not fit {dtype_name} (values must be below {limit}).",
            f"value out of range for {dtype_name}",
        )
    out = np.repeat(values.astype(np.dtype(dtype_name)), lengths.astype(np.intp))
    return out.reshape(shape)


# ---- public API -------------------------------------------------------------------------


def decode_block(
    data: Bytes,
    *,
    encoding: str,
    dtype: str,
    slices: int,
    rows: int,
    columns: int,
    max_voxels: int,
) -> NDArray[Any]:
    """Decode a transport body into a fresh ``(slices, rows, columns)`` array.

    Raises :class:`TooLarge` when ``slices*rows*columns > max_voxels`` (checked before
    anything else is looked at) and :class:`InvalidInput` for an unknown encoding or dtype,
    a bad shape, or a body that is not exactly what the declared shape needs. The result
    is writable, C-contiguous, in native byte order, and never shares memory with ``data``.
    """
    if encoding not in ENCODINGS:
        raise InvalidInput(
            f"Unknown mask encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.",
            errors=[{"field": "encoding", "problem": f"must be one of {', '.join(ENCODINGS)}"}],
        )
    if dtype not in DTYPES:
        raise InvalidInput(
            f"Unknown mask dtype {dtype!r}; use one of {', '.join(DTYPES)}.",
            errors=[{"field": "dtype", "problem": f"must be one of {', '.join(DTYPES)}"}],
        )
    shape = (
        _positive_int(slices, "slices"),
        _positive_int(rows, "rows"),
        _positive_int(columns, "columns"),
    )
    limit = _positive_int(max_voxels, "max_voxels")
    count = shape[0] * shape[1] * shape[2]
    if count > limit:
        raise TooLarge(
            f"A mask block of {shape[0]} x {shape[1]} x {shape[2]} = {count} voxels exceeds "
            f"the limit of {limit} voxels per request; send fewer slices per request.",
            errors=[{"field": "shape", "problem": f"{count} voxels > {limit}"}],
        )
    view = _as_bytes(data)
    if encoding == "raw":
        return _decode_raw(view, dtype, shape)
    if encoding == "zlib":
        return _decode_zlib(view, dtype, shape)
    return _decode_rle(view, dtype, shape)


def rle_encode(arr: NDArray[Any]) -> bytes:
    """Maximal runs over ``arr`` flattened in C order, as ``<u4`` (value, length) pairs."""
    flat = np.ravel(arr, order="C")
    if flat.size == 0:
        return b""
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], starts))
    pairs = np.empty((starts.size, 2), dtype="<u4")
    pairs[:, 0] = flat[starts]
    pairs[:-1, 1] = np.diff(starts)
    pairs[-1, 1] = flat.size - starts[-1]
    return pairs.tobytes()


def encode_block(arr: NDArray[Any], encoding: str, *, level: int = 6) -> bytes:
    """Encode a ``(slices, rows, columns)`` (or ``(rows, columns)``) uint8/uint16 array.

    The inverse of :func:`decode_block`; ``level`` is the zlib level for ``zlib``.
    """
    if encoding not in ENCODINGS:
        raise InvalidInput(
            f"Unknown mask encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.",
            errors=[{"field": "encoding", "problem": f"must be one of {', '.join(ENCODINGS)}"}],
        )
    arr = np.asarray(arr)
    name = _array_dtype_name(arr)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InvalidInput(
            f"A mask block is a non-empty (slices, rows, columns) array, not shape {arr.shape}.",
            errors=[{"field": "mask", "problem": "must be a non-empty 2D or 3D array"}],
        )
    if encoding == "rle":
        return rle_encode(arr)
    raw = _to_le_bytes(arr, name)
    return raw if encoding == "raw" else zlib.compress(raw, level)


def pack_slice(slice2d: NDArray[Any]) -> bytes | None:
    """Pack one ``(rows, columns)`` uint8/uint16 slice for storage; ``None`` if all zero."""
    arr = np.asarray(slice2d)
    name = _array_dtype_name(arr, field="slice")
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidInput(
            f"A slice is a non-empty (rows, columns) array, not shape {arr.shape}.",
            errors=[{"field": "slice", "problem": "must be a non-empty 2D array"}],
        )
    if not arr.any():
        return None
    rows, columns = arr.shape
    rle = rle_encode(arr)
    # Deflate never compresses better than 1032:1, so zlib cannot beat such an RLE payload.
    if len(rle) * 1032 <= arr.nbytes:
        codec, payload = SLICE_CODEC_RLE, rle
    else:
        packed = zlib.compress(_to_le_bytes(arr, name), 1)
        codec, payload = (
            (SLICE_CODEC_RLE, rle) if len(rle) <= len(packed) else (SLICE_CODEC_ZLIB, packed)
        )
    header = _SLICE_HEADER.pack(SLICE_MAGIC, SLICE_VERSION, codec, _BITS[name], rows, columns)
    return header + payload


def unpack_slice(data: Bytes | None, *, rows: int, columns: int, dtype: DTypeLike) -> NDArray[Any]:
    """Unpack a blob written by :func:`pack_slice` into a fresh ``(rows, columns)`` array.

    ``None`` (an all-zero slice) gives zeros. The header must match the expected shape and
    dtype exactly, else :class:`InvalidInput`; the payload is decoded with the bounded
    decoders, so a corrupt blob can never make this allocate more than one slice.
    """
    name = _dtype_name(dtype)
    shape = (_positive_int(rows, "rows"), _positive_int(columns, "columns"))
    if data is None:
        return np.zeros(shape, dtype=np.dtype(name))
    view = _as_bytes(data)
    if len(view) < SLICE_HEADER_SIZE:
        raise _slice_error(
            f"it is {len(view)} bytes, shorter than the {SLICE_HEADER_SIZE}-byte header"
        )
    magic, version, codec, bits, h_rows, h_columns = _SLICE_HEADER.unpack_from(view)
    if magic != SLICE_MAGIC:
        raise _slice_error(f"its magic is {bytes(magic)!r}, not {SLICE_MAGIC!r}")
    if version != SLICE_VERSION:
        raise _slice_error(f"its format version is {version}; this server reads {SLICE_VERSION}")
    if bits != _BITS[name]:
        raise _slice_error(f"it holds {bits}-bit voxels, but {name} was expected")
    if (h_rows, h_columns) != shape:
        raise _slice_error(
            f"it is {h_rows} x {h_columns} (rows x columns), but {shape[0]} x {shape[1]} was "
            "expected"
        )
    payload = view[SLICE_HEADER_SIZE:]
    if codec == SLICE_CODEC_ZLIB:
        return _decode_zlib(payload, name, shape, what="stored slice payload")
    if codec == SLICE_CODEC_RLE:
        return _decode_rle(payload, name, shape, what="stored slice payload")
    raise _slice_error(f"its codec {codec} is unknown (1 = zlib, 2 = rle)")


def _slice_error(why: str) -> InvalidInput:
    return InvalidInput(
        f"The stored mask slice cannot be read: {why}. It was written for another slice or "
        "is corrupt; rewrite the slice.",
        errors=[{"field": "slice", "problem": why}],
    )


def labels_present(arr: NDArray[Any]) -> list[int]:
    """The sorted non-zero values in an integer array (uint8/uint16 by a chunked bincount,
    other integer dtypes by ``np.unique``)."""
    a = np.asarray(arr)
    if a.dtype.name in DTYPES:
        flat = a.reshape(-1)
        bins = 1 << _BITS[a.dtype.name]
        counts = np.zeros(bins, dtype=np.int64)
        for start in range(0, flat.size, _BINCOUNT_CHUNK):
            counts += np.bincount(flat[start : start + _BINCOUNT_CHUNK], minlength=bins)
        return [int(v) for v in np.flatnonzero(counts[1:]) + 1]
    if a.dtype.kind in "iub":
        return [int(v) for v in np.unique(a) if v != 0]
    raise InvalidInput(
        f"Labels are integers; an array of dtype {a.dtype} has no labels.",
        errors=[{"field": "mask", "problem": "must have an integer dtype"}],
    )
