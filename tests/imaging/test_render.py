"""Window/level (DICOM PS3.3 C.11.2.1.2) against a literal reference, presets, encoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image

from medlabel.domain.errors import InvalidInput
from medlabel.imaging.nifti import read_nifti
from medlabel.imaging.photo import read_photo
from medlabel.imaging.render import (
    CT_PRESETS,
    MEDIA_TYPES,
    apply_window,
    auto_window,
    encode,
    preset,
    thumbnail,
    to_display,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
ALL_UINT16 = np.arange(65536, dtype=np.int64).astype(np.uint16)
centers = st.floats(min_value=-40000, max_value=40000, allow_nan=False)
widths = st.floats(min_value=1.0, max_value=70000, allow_nan=False)


def reference_linear(x: NDArray[np.float64], c: float, w: float) -> NDArray[np.uint8]:
    """DICOM's LINEAR function, written as the standard states it (ymin 0, ymax 255)."""
    below = x <= c - 0.5 - (w - 1) / 2
    above = x > c - 0.5 + (w - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = ((x - (c - 0.5)) / (w - 1) + 0.5) * (255 - 0) + 0
    y = np.select([below, above], [0.0, 255.0], inside)
    return np.floor(y + 0.5).astype(np.uint8)


def reference_linear_exact(x: NDArray[np.float64], c: float, w: float) -> NDArray[np.uint8]:
    y = np.select([x <= c - w / 2, x > c + w / 2], [0.0, 255.0], ((x - c) / w + 0.5) * 255)
    return np.floor(y + 0.5).astype(np.uint8)


# -- the LUT path equals the standard's formula ---------------------------------------------


@settings(max_examples=60, deadline=None)
@given(center=centers, width=widths)
def test_lut_equals_dicom_linear_for_every_int16(center: float, width: float) -> None:
    expected = reference_linear(ALL_INT16.astype(np.float64), center, width)
    np.testing.assert_array_equal(apply_window(ALL_INT16, center, width), expected)


@settings(max_examples=40, deadline=None)
@given(
    center=centers,
    width=widths,
    slope=st.sampled_from([1.0, 0.5, 2.0, 0.0123]),
    intercept=st.sampled_from([0.0, -1024.0, 3.5]),
)
def test_lut_folds_rescale_for_every_uint16(
    center: float, width: float, slope: float, intercept: float
) -> None:
    x = ALL_UINT16.astype(np.float64) * slope + intercept
    got = apply_window(ALL_UINT16, center, width, slope=slope, intercept=intercept)
    np.testing.assert_array_equal(got, reference_linear(x, center, width))


@settings(max_examples=40, deadline=None)
@given(center=centers, width=st.floats(min_value=0.01, max_value=70000))
def test_linear_exact_lut_equals_reference(center: float, width: float) -> None:
    expected = reference_linear_exact(ALL_INT16.astype(np.float64), center, width)
    got = apply_window(ALL_INT16, center, width, function="LINEAR_EXACT")
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_float_path_equals_lut_path(function: str) -> None:
    for center, width in [(40.0, 400.0), (-600.0, 1500.0), (0.25, 3.0), (100.0, 1.0)]:
        lut = apply_window(ALL_INT16, center, width, function=function)  # type: ignore[arg-type]
        flt = apply_window(ALL_INT16.astype(np.float32), center, width, function=function)  # type: ignore[arg-type]
        np.testing.assert_array_equal(lut, flt)


def test_sigmoid_follows_the_standard() -> None:
    x = ALL_INT16.astype(np.float64)
    expected = 255 / (1 + np.exp(np.clip(-4 * (x - 40) / 400, -700, 700)))
    got = apply_window(ALL_INT16, 40, 400, function="SIGMOID").astype(float)
    assert np.max(np.abs(got - expected)) <= 0.5 + 1e-9


def test_uint8_and_int8_lut() -> None:
    u8 = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(
        apply_window(u8, 128, 64), reference_linear(u8.astype(float), 128, 64)
    )
    i8 = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    np.testing.assert_array_equal(
        apply_window(i8, 0, 50), reference_linear(i8.astype(float), 0, 50)
    )


def test_shape_byte_order_and_non_finite_values() -> None:
    frame = np.array([[-2000, 0, 40], [100, 240, 5000]], dtype=">i2")
    got = apply_window(frame, 40, 400)
    assert got.shape == (2, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, apply_window(frame.astype("<i2"), 40, 400))
    floats = np.array([np.nan, np.inf, -np.inf, 40.0])
    np.testing.assert_array_equal(apply_window(floats, 40, 400), [0, 255, 0, 128])


@pytest.mark.parametrize(
    ("center", "width", "function"),
    [(40, 0.5, "LINEAR"), (40, 0, "LINEAR_EXACT"), (np.nan, 400, "LINEAR"), (40, 400, "GAMMA")],
)
def test_invalid_windows(center: float, width: float, function: str) -> None:
    with pytest.raises(InvalidInput):
        apply_window(ALL_INT16, center, width, function=function)  # type: ignore[arg-type]


# -- presets, auto, MONOCHROME1 -------------------------------------------------------------


def test_ct_presets() -> None:
    table = {name: (p.width, p.center) for name, p in CT_PRESETS.items()}
    assert table == {
        "soft_tissue": (400, 40),
        "lung": (1500, -600),
        "bone": (1800, 400),
        "brain": (80, 40),
        "mediastinum": (350, 50),
        "liver": (150, 30),
    }
    lung = preset("lung")
    hu = np.array([-1400, -1350, -600, 150, 1000], np.int16)
    np.testing.assert_array_equal(apply_window(hu, lung.center, lung.width), [0, 0, 128, 255, 255])
    with pytest.raises(InvalidInput, match="soft_tissue"):
        preset("abdomen-ish")


def test_auto_window_spans_the_percentiles(samples: Path) -> None:
    volume = read_nifti(samples / "itk" / "KmeansTest_T1UCharRaw.nii.gz")
    frame = volume.frames()[30]
    window = auto_window(frame)
    assert window.name == "auto" and window.function == "LINEAR"
    shown = apply_window(frame, window.center, window.width)
    lo, hi = np.percentile(frame, [1, 99])
    assert shown[frame <= lo].max() <= 1 and shown[frame >= hi].min() >= 254
    assert np.mean(shown == 255) < 0.03
    whole = auto_window(volume.frames())  # a volume gives one window for all its slices
    assert whole.width > 1


def test_auto_window_on_floats_and_constants() -> None:
    probabilities = np.linspace(0, 1, 10000).reshape(100, 100)
    window = auto_window(probabilities)
    assert window.function == "LINEAR_EXACT" and 0.9 < window.width < 1.0
    shown = apply_window(probabilities, window.center, window.width, function=window.function)
    assert shown.min() == 0 and shown.max() == 255
    flat = auto_window(np.full((8, 8), 7, np.int16))
    assert flat.width == 1.0
    assert auto_window(np.full((4, 4), np.nan)).width > 0
    with pytest.raises(InvalidInput):
        auto_window(np.zeros((0, 3)))


def test_monochrome1_inverts() -> None:
    frame = np.array([[-1000, 0, 40, 200, 3000]], np.int16)
    normal = apply_window(frame, 40, 400)
    np.testing.assert_array_equal(apply_window(frame, 40, 400, invert=True), 255 - normal)
    window = preset("soft_tissue")
    shown = to_display(frame, photometric="MONOCHROME1", window=window)
    np.testing.assert_array_equal(shown, 255 - normal)
    grey8 = np.array([[0, 10, 255]], np.uint8)
    np.testing.assert_array_equal(to_display(grey8, photometric="MONOCHROME1"), [[255, 245, 0]])
    np.testing.assert_array_equal(to_display(grey8), grey8)


def test_rgb_passes_through_unwindowed(samples: Path) -> None:
    rgb = read_photo(samples / "skimage" / "retina.jpg").pixels[0]
    assert to_display(rgb, photometric="RGB", window=preset("lung")) is rgb
    deep = rgb.astype(np.uint16) * 257
    np.testing.assert_array_equal(to_display(deep, photometric="RGB"), rgb)
    with pytest.raises(InvalidInput):
        to_display(rgb[..., :2], photometric="RGB")


def test_rescale_moves_the_auto_window() -> None:
    stored = (np.arange(4096, dtype=np.uint16) % 2000).reshape(64, 64)
    hu_auto = to_display(stored, intercept=-1024.0)
    np.testing.assert_array_equal(hu_auto, to_display(stored))


# -- encoding -------------------------------------------------------------------------------


def _decode(data: bytes) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def ct_like() -> NDArray[np.uint8]:
    yy, xx = np.mgrid[:512, :512]
    body = (np.hypot(yy - 256, xx - 256) < 200) * 1040 - 1000
    noise = np.random.default_rng(3).normal(0, 20, (512, 512))
    return apply_window((body + noise).astype(np.int16), 40, 400)


def test_png_round_trip_is_exact(ct_like: NDArray[np.uint8], samples: Path) -> None:
    np.testing.assert_array_equal(_decode(encode(ct_like, "png")), ct_like)
    rgb = read_photo(samples / "skimage" / "retina.jpg").pixels[0, :300, :200]
    np.testing.assert_array_equal(_decode(encode(rgb, "png")), rgb)


def test_jpeg_and_webp_are_close(ct_like: NDArray[np.uint8]) -> None:
    jpeg = encode(ct_like, "jpeg")
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert np.mean(np.abs(_decode(jpeg).astype(int) - ct_like)) < 3
    webp = encode(ct_like, "webp")
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    decoded = _decode(webp)
    if decoded.ndim == 3:
        decoded = decoded[..., 0]
    assert np.mean(np.abs(decoded.astype(int) - ct_like)) < 6
    assert len(encode(ct_like, "jpeg", 50)) < len(jpeg)
    assert set(MEDIA_TYPES) == {"png", "jpeg", "webp"}


def test_encode_refuses_what_it_cannot_show(ct_like: NDArray[np.uint8]) -> None:
    with pytest.raises(InvalidInput, match="window"):
        encode(ct_like.astype(np.int16), "png")
    with pytest.raises(InvalidInput):
        encode(ct_like, "gif")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        encode(ct_like, "jpeg", 0)


def test_thumbnail_sizes(samples: Path) -> None:
    retina = read_photo(samples / "skimage" / "retina.jpg").pixels[0]
    with Image.open(io.BytesIO(thumbnail(retina))) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (256, 256), "RGB")
    wide = np.zeros((100, 300), np.int16)
    wide[:, 150:] = 1000
    with Image.open(io.BytesIO(thumbnail(wide, max_size=64))) as image:
        assert (image.size, image.mode) == ((64, 21), "L")
        pixels = np.asarray(image)
        assert pixels[:, :20].max() < 40 and pixels[:, 44:].min() > 215
    with Image.open(io.BytesIO(thumbnail(np.zeros((10, 12), np.uint8)))) as image:
        assert image.size == (12, 10)  # never enlarged
    with pytest.raises(InvalidInput):
        thumbnail(np.zeros((3, 10, 12), np.int16))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.sampled_from([1, 3]), st.integers(0, 2**32 - 1))
def test_our_png_encoder_round_trips_through_pillow(
    rows: int, cols: int, channels: int, seed: int
) -> None:
    from medlabel.imaging.png import encode_png

    rng = np.random.default_rng(seed)
    shape = (rows, cols) if channels == 1 else (rows, cols, 3)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(image))))
    np.testing.assert_array_equal(decoded, image)
