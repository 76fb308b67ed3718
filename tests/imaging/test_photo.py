"""Photo reading: real fundus images, EXIF orientation, bit depths, alpha, bombs, damage."""

from __future__ import annotations

import dataclasses
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.domain.geometry import planar
from medlabel.imaging.photo import Photo, PhotoLimits, read_photo

ORIENTATION = 0x0112


def _sample(samples: Path, name: str) -> Path:
    return samples / "skimage" / name


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height 8-bit grey, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


# -- real files -----------------------------------------------------------------------------


def test_retina_jpeg(samples: Path) -> None:
    path = _sample(samples, "retina.jpg")
    photo = read_photo(path)
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB"))
    assert photo.pixels.shape == (1, 1411, 1411, 3)
    assert photo.pixels.dtype == np.uint8
    assert (photo.photometric, photo.source_format) == ("RGB", "JPEG")
    np.testing.assert_array_equal(photo.pixels[0], expected)
    assert photo.geometry == planar(1411, 1411)
    assert not photo.pixels.flags.writeable


def test_microaneurysms_png(samples: Path) -> None:
    path = _sample(samples, "microaneurysms.png")
    photo = read_photo(path)
    with Image.open(path) as image:
        expected = np.asarray(image)
    assert photo.pixels.shape == (1, 102, 102)
    assert photo.pixels.dtype == np.uint8 and photo.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(photo.pixels[0], expected)
    assert (photo.rows, photo.columns) == (102, 102)


def test_no_metadata_is_exposed(samples: Path, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "Jane Doe, MRN 123"  # ImageDescription
    exif[0x013B] = "Dr. Who"  # Artist
    path = tmp_path / "tagged.jpg"
    with Image.open(_sample(samples, "retina.jpg")) as image:
        image.save(path, exif=exif, comment=b"Jane Doe")
    photo = read_photo(path)
    assert {f.name for f in dataclasses.fields(Photo)} == {
        "pixels",
        "photometric",
        "source_format",
        "geometry",
    }
    assert "Jane" not in repr(photo) and "Who" not in repr(photo)


# -- orientation ----------------------------------------------------------------------------


def test_exif_orientation_6_jpeg_is_rotated_upright(samples: Path, tmp_path: Path) -> None:
    with Image.open(_sample(samples, "retina.jpg")) as image:
        crop = image.crop((100, 300, 400, 500))  # 300 wide, 200 high
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    rotated_path, plain_path = tmp_path / "rot.jpg", tmp_path / "plain.jpg"
    crop.save(rotated_path, exif=exif, quality=95)
    crop.save(plain_path, quality=95)
    photo = read_photo(rotated_path)
    assert photo.pixels.shape == (1, 300, 200, 3)  # rows, columns swapped
    with Image.open(rotated_path) as stored:
        upright = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_array_equal(photo.pixels[0], upright)
    assert read_photo(plain_path).pixels.shape == (1, 200, 300, 3)
    assert photo.geometry == planar(200, 300)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: a[::-1, ::-1]),
        (6, lambda a: np.rot90(a, k=-1)),
        (8, lambda a: np.rot90(a, k=1)),
    ],
)
def test_exif_orientation_is_exact_on_png(
    samples: Path, tmp_path: Path, orientation: int, expected: object
) -> None:
    stored = np.asarray(Image.open(_sample(samples, "microaneurysms.png")))[:40, :70]
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(stored).save(path, exif=exif)
    photo = read_photo(path)
    np.testing.assert_array_equal(photo.pixels[0], expected(stored))  # type: ignore[operator]


# -- pixel types ----------------------------------------------------------------------------


def test_16_bit_png(samples: Path, tmp_path: Path) -> None:
    eight = np.asarray(Image.open(_sample(samples, "microaneurysms.png")))
    sixteen = eight.astype(np.uint16) * 257
    path = tmp_path / "sixteen.png"
    Image.fromarray(sixteen).save(path)
    photo = read_photo(path)
    assert photo.pixels.dtype == np.uint16 and photo.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(photo.pixels[0], sixteen)


def test_16_bit_single_page_tiff(tmp_path: Path) -> None:
    values = (np.arange(30 * 20, dtype=np.uint16) * 97).reshape(20, 30)
    path = tmp_path / "x.tif"
    Image.fromarray(values).save(path)
    photo = read_photo(path)
    assert photo.source_format == "TIFF"
    np.testing.assert_array_equal(photo.pixels[0], values)


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [[[200, 100, 50]]]
    rgba[..., 3] = [[255, 128, 0], [1, 254, 77]]
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    photo = read_photo(path)
    alpha = rgba[..., 3:].astype(float)
    expected = np.floor(rgba[..., :3] * alpha / 255 + 0.5).astype(np.uint8)
    assert photo.photometric == "RGB"
    np.testing.assert_array_equal(photo.pixels[0], expected)


def test_opaque_alpha_is_dropped(samples: Path, tmp_path: Path) -> None:
    rgb = np.asarray(Image.open(_sample(samples, "retina.jpg")).convert("RGB"))[:64, :64]
    path = tmp_path / "opaque.png"
    Image.fromarray(rgb).convert("RGBA").save(path)
    np.testing.assert_array_equal(read_photo(path).pixels[0], rgb)


def test_palette_and_one_bit_images(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 2))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.putpixel((1, 0), 1)
    palette.putpixel((2, 1), 2)
    palette.save(tmp_path / "p.png")
    photo = read_photo(tmp_path / "p.png")
    assert photo.pixels.shape == (1, 2, 4, 3)
    assert tuple(photo.pixels[0, 0, 1]) == (255, 0, 0)
    assert tuple(photo.pixels[0, 1, 2]) == (0, 255, 0)
    bits = Image.new("1", (5, 3))
    bits.putpixel((4, 2), 1)
    bits.save(tmp_path / "b.png")
    binary = read_photo(tmp_path / "b.png")
    assert binary.pixels.dtype == np.uint8 and binary.pixels[0, 2, 4] == 255
    assert int(binary.pixels.sum()) == 255


# -- hostile and broken files ---------------------------------------------------------------


@pytest.mark.parametrize("side", [10_000, 20_000])  # Pillow's warning band, then its error
def test_decompression_bomb_png_header_is_too_large(tmp_path: Path, side: int) -> None:
    assert side * side > Image.MAX_IMAGE_PIXELS  # type: ignore[operator]
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    filters_before = list(warnings.filters)
    with pytest.raises(TooLarge, match="decompression bomb"):
        read_photo(path)
    assert warnings.filters == filters_before


def test_own_pixel_limit(samples: Path) -> None:
    with pytest.raises(TooLarge, match="102 x 102"):
        read_photo(_sample(samples, "microaneurysms.png"), PhotoLimits(max_pixels=100 * 100))


@pytest.mark.parametrize("name", ["retina.jpg", "microaneurysms.png"])
def test_truncated_image_is_invalid(samples: Path, tmp_path: Path, name: str) -> None:
    data = _sample(samples, name).read_bytes()
    path = tmp_path / f"Jane_Doe_cut{Path(name).suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput) as caught:
        read_photo(path)
    assert "Jane" not in str(caught.value)


def test_other_formats_are_unsupported(samples: Path, tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_bytes(b"hello, not an image")
    with pytest.raises(Unsupported):
        read_photo(tmp_path / "x.txt")
    Image.open(_sample(samples, "microaneurysms.png")).save(tmp_path / "x.gif")
    with pytest.raises(Unsupported):
        read_photo(tmp_path / "x.gif")


def test_multi_page_tiff_is_unsupported(tmp_path: Path) -> None:
    pages = [Image.new("L", (8, 8), v) for v in (0, 100, 200)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(Unsupported, match="Multi-page"):
        read_photo(tmp_path / "pages.tif")


def test_float_tiff_is_unsupported(tmp_path: Path) -> None:
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(Unsupported):
        read_photo(tmp_path / "f.tif")
