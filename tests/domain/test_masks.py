"""Mask transport and storage codecs: round trips, byte layouts and every rejection."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medlabel.domain.errors import InvalidInput, TooLarge
from medlabel.domain.masks import (
    DTYPES,
    ENCODINGS,
    SLICE_CODEC_RLE,
    SLICE_CODEC_ZLIB,
    SLICE_HEADER_SIZE,
    decode_block,
    encode_block,
    labels_present,
    pack_slice,
    unpack_slice,
)

BIG = 10**9


def decode(data: bytes, encoding: str, dtype: str, shape: tuple[int, int, int]) -> np.ndarray:
    slices, rows, columns = shape
    return decode_block(
        data,
        encoding=encoding,
        dtype=dtype,
        slices=slices,
        rows=rows,
        columns=columns,
        max_voxels=BIG,
    )


def rle(*pairs: int) -> bytes:
    return struct.pack(f"<{len(pairs)}I", *pairs)


@st.composite
def label_blocks(draw: st.DrawFn, ndim: int = 3) -> np.ndarray:
    """Labelmaps with runs (few distinct values) or noise, of both dtypes."""
    dtype = draw(st.sampled_from(DTYPES))
    top = 255 if dtype == "uint8" else 65535
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=9))
    palette = draw(st.lists(st.integers(0, top), min_size=1, max_size=4))
    elements = st.sampled_from([0, *palette]) if draw(st.booleans()) else st.integers(0, top)
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


# ---- transport round trips ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(label_blocks(), st.sampled_from(ENCODINGS))
def test_every_encoding_round_trips(arr: np.ndarray, encoding: str) -> None:
    data = encode_block(arr, encoding)
    assert isinstance(data, bytes)
    out = decode(data, encoding, arr.dtype.name, arr.shape)
    assert out.dtype == arr.dtype
    assert out.shape == arr.shape
    assert np.array_equal(out, arr)
    assert out.flags.writeable
    assert out.flags.c_contiguous


@settings(max_examples=200, deadline=None)
@given(label_blocks())
def test_rle_emits_maximal_runs_that_cover_the_block(arr: np.ndarray) -> None:
    pairs = np.frombuffer(encode_block(arr, "rle"), dtype="<u4").reshape(-1, 2)
    values, lengths = pairs[:, 0], pairs[:, 1]
    assert int(lengths.sum()) == arr.size
    assert np.all(lengths >= 1)
    assert np.all(values[1:] != values[:-1])
    assert np.array_equal(np.repeat(values, lengths), arr.ravel())


def test_byte_layouts_are_little_endian_c_order() -> None:
    arr = np.array([[[1, 2], [3, 258]]], dtype=np.uint16)
    assert encode_block(arr, "raw") == b"\x01\x00\x02\x00\x03\x00\x02\x01"
    assert zlib.decompress(encode_block(arr, "zlib")) == encode_block(arr, "raw")
    u8 = np.array([[[0, 0, 5], [5, 5, 0]]], dtype=np.uint8)
    assert encode_block(u8, "rle") == rle(0, 2, 5, 3, 0, 1)
    assert encode_block(np.array([[65535, 65535]], dtype=np.uint16), "rle") == rle(65535, 2)


def test_the_rle_decoder_accepts_repeated_values_in_adjacent_runs() -> None:
    out = decode(rle(7, 2, 7, 1, 0, 3), "rle", "uint8", (1, 2, 3))
    assert out.tolist() == [[[7, 7, 7], [0, 0, 0]]]


def test_the_result_never_shares_memory_with_the_body() -> None:
    body = bytearray(b"\x01\x02\x03\x04")
    out = decode(bytes(body), "raw", "uint8", (1, 2, 2))
    out[0, 0, 0] = 9
    assert decode(bytes(body), "raw", "uint8", (1, 2, 2))[0, 0, 0] == 1
    view_out = decode_block(
        memoryview(body),
        encoding="raw",
        dtype="uint8",
        slices=1,
        rows=2,
        columns=2,
        max_voxels=4,
    )
    body[0] = 42
    assert view_out[0, 0, 0] == 1


# ---- rejections -----------------------------------------------------------------------


def _invalid(data: bytes, encoding: str, dtype: str, shape: tuple[int, int, int]) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        decode(data, encoding, dtype, shape)
    assert info.value.status == 422
    assert info.value.errors, "every rejection names the field and the problem"
    return info.value


def test_unknown_encoding_and_dtype_list_the_allowed_ones() -> None:
    err = _invalid(b"", "gzip", "uint8", (1, 1, 1))
    assert "raw, zlib, rle" in err.detail
    assert err.errors[0]["field"] == "encoding"
    err = _invalid(b"", "raw", "int16", (1, 1, 1))
    assert "uint8, uint16" in err.detail
    assert err.errors[0]["field"] == "dtype"


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_shape_must_be_positive_integers(bad: object) -> None:
    with pytest.raises(InvalidInput, match="rows must be a positive integer"):
        decode_block(
            b"",
            encoding="raw",
            dtype="uint8",
            slices=1,
            rows=bad,  # type: ignore[arg-type]
            columns=1,
            max_voxels=10,
        )


def test_too_large_is_checked_before_the_body() -> None:
    with pytest.raises(TooLarge) as info:
        decode_block(
            b"not even zlib",
            encoding="zlib",
            dtype="uint16",
            slices=300,
            rows=512,
            columns=512,
            max_voxels=512 * 512 * 299,
        )
    assert info.value.status == 413
    assert "78643200 voxels" in info.value.detail
    # exactly at the limit is fine
    out = decode_block(
        bytes(8), encoding="raw", dtype="uint16", slices=1, rows=2, columns=2, max_voxels=4
    )
    assert out.shape == (1, 2, 2)


@pytest.mark.parametrize("length", [0, 11, 13, 24])
def test_raw_must_have_exactly_the_expected_length(length: int) -> None:
    err = _invalid(bytes(length), "raw", "uint16", (1, 2, 3))
    assert "12 bytes" in err.detail
    assert f"has {length} bytes" in err.detail


def test_rle_length_must_be_a_multiple_of_eight() -> None:
    err = _invalid(rle(1, 6) + b"\x00", "rle", "uint8", (1, 2, 3))
    assert "not a multiple of 8" in err.detail


@pytest.mark.parametrize(("runs", "total"), [((1, 5), 5), ((1, 5, 0, 2), 7), ((1, 4, 2, 1), 5)])
def test_rle_runs_must_sum_to_the_voxel_count(runs: tuple[int, ...], total: int) -> None:
    err = _invalid(rle(*runs), "rle", "uint8", (1, 2, 3))
    assert f"sum to {total} voxels" in err.detail
    assert "6 voxels" in err.detail


def test_rle_sum_is_checked_before_anything_is_allocated() -> None:
    # 2**32 - 1 voxels claimed by one run: rejected from the sum, not by running out of memory
    err = _invalid(rle(1, 2**32 - 1), "rle", "uint8", (1, 2, 3))
    assert f"sum to {2**32 - 1} voxels" in err.detail


def test_rle_rejects_zero_length_runs_and_empty_bodies() -> None:
    assert "length 0" in _invalid(rle(1, 6, 2, 0), "rle", "uint8", (1, 2, 3)).detail
    assert "0 runs" in _invalid(b"", "rle", "uint8", (1, 2, 3)).detail


def test_rle_rejects_more_runs_than_voxels() -> None:
    err = _invalid(rle(*([1, 1] * 7)), "rle", "uint8", (1, 2, 3))
    assert "7 runs" in err.detail


@pytest.mark.parametrize(("dtype", "value"), [("uint8", 256), ("uint16", 65536)])
def test_rle_values_must_fit_the_dtype(dtype: str, value: int) -> None:
    err = _invalid(rle(0, 3, value, 3), "rle", dtype, (1, 2, 3))
    assert f"value {value}" in err.detail
    assert "Run 1" in err.detail
    top = value - 1
    assert decode(rle(0, 3, top, 3), "rle", dtype, (1, 2, 3)).max() == top


def test_garbage_is_not_a_zlib_stream() -> None:
    err = _invalid(b"this is not compressed at all", "zlib", "uint8", (1, 2, 3))
    assert "not a zlib stream" in err.detail


def test_zlib_too_short_and_too_long_report_the_sizes() -> None:
    err = _invalid(zlib.compress(bytes(5)), "zlib", "uint8", (1, 2, 3))
    assert "inflates to 5 bytes" in err.detail
    assert "6 bytes" in err.detail
    err = _invalid(zlib.compress(bytes(7)), "zlib", "uint8", (1, 2, 3))
    assert "more than the expected 6 bytes" in err.detail
    # exactly one byte too many, hidden behind the first bound
    err = _invalid(zlib.compress(bytes(13)), "zlib", "uint16", (1, 2, 3))
    assert "more than the expected 12 bytes" in err.detail


def test_zlib_truncated_stream_and_trailing_bytes_are_rejected() -> None:
    full = zlib.compress(bytes(range(6)))
    err = _invalid(full[:-4], "zlib", "uint8", (1, 2, 3))  # the Adler-32 trailer is missing
    assert "truncated" in err.detail
    err = _invalid(full + b"junk", "zlib", "uint8", (1, 2, 3))
    assert "after the end" in err.detail
    assert decode(full, "zlib", "uint8", (1, 2, 3)).ravel().tolist() == list(range(6))


def _zlib_bomb(size: int) -> bytes:
    comp = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [comp.compress(chunk) for _ in range(size >> 20)]
    return b"".join([*parts, comp.flush()])


def test_a_zlib_bomb_is_rejected_without_inflating_it() -> None:
    bomb = _zlib_bomb(100 << 20)  # 100 MiB of zeros in about 100 kB
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as info:
            decode(bomb, "zlib", "uint8", (1, 10, 10))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than the expected 100 bytes" in info.value.detail
    assert peak < 1 << 20, f"decoding allocated {peak} bytes"


# ---- per-slice storage ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(label_blocks(ndim=2))
def test_pack_unpack_round_trips(arr: np.ndarray) -> None:
    blob = pack_slice(arr)
    rows, columns = arr.shape
    out = unpack_slice(blob, rows=rows, columns=columns, dtype=arr.dtype)
    assert np.array_equal(out, arr)
    assert out.dtype == arr.dtype
    assert out.flags.writeable
    if not arr.any():
        assert blob is None
    else:
        assert blob is not None
        # the smaller of the two codecs is kept
        payload_size = len(blob) - SLICE_HEADER_SIZE
        assert payload_size <= len(encode_block(arr, "rle"))


def test_all_zero_slices_are_stored_as_nothing() -> None:
    assert pack_slice(np.zeros((4, 5), np.uint16)) is None
    out = unpack_slice(None, rows=4, columns=5, dtype="uint16")
    assert out.shape == (4, 5)
    assert out.dtype == np.uint16
    assert not out.any()


def test_the_slice_header_layout() -> None:
    arr = np.zeros((3, 70000), dtype=np.uint16)
    arr[1, 5:9] = 300
    blob = pack_slice(arr)
    assert blob is not None
    magic, version, codec, bits, rows, columns = struct.unpack_from("<3sBBBII", blob)
    assert (magic, version, bits, rows, columns) == (b"MLS", 1, 16, 3, 70000)
    assert codec == SLICE_CODEC_RLE  # three runs beat zlib
    assert blob[SLICE_HEADER_SIZE:] == rle(0, 70005, 300, 4, 0, 139991)


def test_noisy_slices_are_stored_as_zlib() -> None:
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 3, size=(64, 64), dtype=np.uint8)
    blob = pack_slice(arr)
    assert blob is not None
    assert blob[4] == SLICE_CODEC_ZLIB
    assert zlib.decompress(blob[SLICE_HEADER_SIZE:]) == arr.tobytes()
    assert np.array_equal(unpack_slice(blob, rows=64, columns=64, dtype=np.uint8), arr)


def _packed() -> bytes:
    arr = np.zeros((4, 6), np.uint8)
    arr[1:3, 2:5] = 9
    blob = pack_slice(arr)
    assert blob is not None
    return blob


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rows": 5, "columns": 6, "dtype": "uint8"}, "4 x 6"),
        ({"rows": 4, "columns": 7, "dtype": "uint8"}, "but 4 x 7 was expected"),
        ({"rows": 4, "columns": 6, "dtype": "uint16"}, "8-bit voxels"),
    ],
)
def test_unpack_rejects_a_header_that_does_not_match(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle) as info:
        unpack_slice(_packed(), **kwargs)
    assert info.value.errors[0]["field"] == "slice"


def _header(codec: int = SLICE_CODEC_RLE, *, magic: bytes = b"MLS", version: int = 1) -> bytes:
    return struct.pack("<3sBBBII", magic, version, codec, 8, 4, 6)


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (b"MLS", "shorter than the 14-byte header"),
        (_header(magic=b"XYZ") + rle(1, 24), "magic"),
        (_header(version=2) + rle(1, 24), "format version is 2"),
        (_header(7) + rle(1, 24), "codec 7 is unknown"),
        (_header() + rle(1, 20), "sum to 20 voxels"),
        (_header() + rle(1, 24)[:-1], "not a multiple of 8"),
        (_header() + rle(256, 24), "value 256"),
        (_header(SLICE_CODEC_ZLIB) + rle(1, 24), "not a zlib stream"),
        (_header(SLICE_CODEC_ZLIB) + zlib.compress(bytes(23)), "inflates to 23 bytes"),
    ],
)
def test_unpack_rejects_corrupt_blobs(blob: bytes, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        unpack_slice(blob, rows=4, columns=6, dtype="uint8")
    # the same header with a good payload is fine
    assert unpack_slice(_header() + rle(1, 24), rows=4, columns=6, dtype="uint8").all()


def test_unpack_never_inflates_beyond_one_slice() -> None:
    header = struct.pack("<3sBBBII", b"MLS", 1, SLICE_CODEC_ZLIB, 8, 10, 10)
    blob = header + _zlib_bomb(50 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="more than the expected 100 bytes"):
            unpack_slice(blob, rows=10, columns=10, dtype="uint8")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_pack_rejects_what_is_not_a_labelmap_slice() -> None:
    with pytest.raises(InvalidInput, match="dtype"):
        pack_slice(np.ones((2, 2), np.int32))
    with pytest.raises(InvalidInput, match="non-empty"):
        pack_slice(np.ones((1, 2, 2), np.uint8))
    with pytest.raises(InvalidInput, match="dtype"):
        encode_block(np.ones((2, 2), np.float32), "raw")
    with pytest.raises(InvalidInput, match="gzip"):
        encode_block(np.ones((2, 2), np.uint8), "gzip")


# ---- labels present -------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(label_blocks())
def test_labels_present_matches_unique(arr: np.ndarray) -> None:
    assert labels_present(arr) == sorted(int(v) for v in np.unique(arr) if v)


def test_labels_present_examples() -> None:
    assert labels_present(np.zeros((2, 3, 4), np.uint8)) == []
    arr = np.zeros((2, 3, 4), np.uint16)
    arr[0, 0, 0], arr[1, 2, 3] = 65535, 3
    assert labels_present(arr) == [3, 65535]
    assert labels_present(np.array([0, -2, 5], np.int32)) == [-2, 5]
    with pytest.raises(InvalidInput):
        labels_present(np.array([0.5]))
