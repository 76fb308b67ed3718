"""DICOM de-identification on ingest: PS3.15 Annex E as an allowlist rebuild.

``deidentify`` implements the Basic Application Level Confidentiality Profile with the
options Retain Patient Characteristics (ages capped at 90), Retain Longitudinal Temporal
Information with Modified Dates (one date shift per patient), Clean Descriptors, Clean
Structured Content and Clean Graphics (overlays, curves and graphic annotations are removed
entirely, which the option permits). It builds a *new* dataset and copies only attributes
known to be safe (``deid_rules``), cleaned by VR (``deid_copy``); everything else is gone by
construction, whatever a vendor added. The preamble and the File Meta Information are new.

Pixels are copied exactly and not cleaned: ``DeidOutcome.quarantine_reasons`` says why they
may show burned-in text, and the caller must keep such instances away from annotators until
a reviewer has redacted or released them. Burned In Annotation is copied as it is, never set
to ``NO``.

The patient becomes ``DeidKeys.patient_pseudonym(PatientID, IssuerOfPatientID)``, written as
both Patient ID and Patient's Name. A dataset without a Patient ID gets
``DeidKeys.study_pseudonym(StudyInstanceUID)``: one pseudonymous patient per study (its
instances stay together and keep their intervals; separate studies cannot be linked).

Errors are ``InvalidInput`` / ``Unsupported`` with messages that never contain a value from
the file. ``deidentify`` does not read the file: give it what ``pydicom.dcmread`` returned
(``MR_truncated.dcm``-style damage surfaces there or when the pixels are decoded).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from medlabel.domain.errors import InvalidInput, Unsupported
from medlabel.imaging import deid_values as values
from medlabel.imaging.deid_copy import CopyState, DeidLimits, copy_dataset, is_valid_uid
from medlabel.imaging.deid_file import (
    PREAMBLE,
    dataset_bytes,
    new_file_meta,
    output_transfer_syntax,
)
from medlabel.imaging.deid_keys import DeidKeys
from medlabel.imaging.deid_quarantine import quarantine_reasons

__all__ = ["DeidKeys", "DeidLimits", "DeidOutcome", "deidentify", "write_bytes"]

DEIDENTIFICATION_METHOD = "medlabel allowlist rebuild, PS3.15 Annex E Basic Profile"
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113104", "Clean Structured Content Option"),
    ("113103", "Clean Graphics Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_CHARSET = Tag(0x0008, 0x0005)
_SOP_CLASS = Tag(0x0008, 0x0016)
_SOP_INSTANCE = Tag(0x0008, 0x0018)
_PATIENT_ID = Tag(0x0010, 0x0020)
_ISSUER = Tag(0x0010, 0x0021)
_STUDY_UID = Tag(0x0020, 0x000D)
_BITS_ALLOCATED = Tag(0x0028, 0x0100)
_PIXEL_REPRESENTATION = Tag(0x0028, 0x0103)
_PIXEL_DATA = Tag(0x7FE0, 0x0010)


@dataclass(frozen=True)
class DeidOutcome:
    """A de-identified instance.

    ``dataset`` is new (it shares nothing with the input), has ``file_meta`` and a zero
    ``preamble`` set and is ready for ``dcmwrite(..., enforce_file_format=True)`` or
    ``write_bytes``. ``removed_attributes`` counts the elements and SR content items of the
    input, at any depth, that were not copied (a dropped sequence counts once, whatever it
    held); replaced values (UIDs, dates, the patient) are not counted. It is a number for the
    ingest report and never says which values went.
    """

    dataset: Dataset
    patient_pseudonym: str
    quarantine_reasons: tuple[str, ...]
    removed_attributes: int


def _string(ds: Dataset, tag: BaseTag, vr: str, codec: str = "latin_1") -> str:
    if tag not in ds:
        return ""
    found = values.strings(ds.get_item(tag), vr, codec)
    return found[0] if found else ""


def _number(ds: Dataset, tag: BaseTag, little_endian: bool) -> int:
    if tag not in ds:
        return 0
    found = values.numbers(ds.get_item(tag), "US", little_endian)
    return int(found[0]) if found else 0


def _file_meta_string(ds: Dataset, keyword: str) -> str:
    meta = getattr(ds, "file_meta", None)
    tag = Tag(keyword)
    if meta is None or tag not in meta:
        return ""
    found = values.strings(meta.get_item(tag), "UI", "latin_1")
    return found[0] if found else ""


def _sop_class(ds: Dataset) -> str:
    sop_class = _string(ds, _SOP_CLASS, "UI") or _file_meta_string(ds, "MediaStorageSOPClassUID")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise Unsupported(
            "A DICOMDIR (media storage directory) holds no images; upload the image files "
            "it lists instead."
        )
    if not is_valid_uid(sop_class):
        raise InvalidInput(
            "The DICOM dataset has no valid SOP Class UID (0008,0016), so it cannot be "
            "de-identified; export it again from the modality or PACS."
        )
    return sop_class


def _pseudonym(ds: Dataset, keys: DeidKeys, codec: str) -> str:
    patient_id = _string(ds, _PATIENT_ID, "LO", codec)
    if patient_id:
        return keys.patient_pseudonym(patient_id, _string(ds, _ISSUER, "LO", codec))
    study_uid = _string(ds, _STUDY_UID, "UI")
    if study_uid:
        return keys.study_pseudonym(study_uid)
    raise InvalidInput(
        "The DICOM dataset has neither a Patient ID (0010,0020) nor a Study Instance UID "
        "(0020,000D), so it cannot be given a pseudonymous patient; export it again."
    )


def _charset(ds: Dataset) -> list[str]:
    if _CHARSET not in ds:
        return []
    return values.strings(ds.get_item(_CHARSET), "CS", "latin_1") or []


def _method_codes() -> Sequence:
    items = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    return Sequence(items)


def _mark(out: Dataset, pseudonym: str, charset: list[str]) -> None:
    """The patient's pseudonym and the de-identification attributes (PS3.15 E.1.1)."""
    if charset and all(term in python_encoding for term in charset):
        out.SpecificCharacterSet = charset if len(charset) > 1 else charset[0]
    out.PatientName = pseudonym
    out.PatientID = pseudonym
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = DEIDENTIFICATION_METHOD
    out.DeidentificationMethodCodeSequence = _method_codes()
    out.LongitudinalTemporalInformationModified = "MODIFIED"


def _instance_uid(out: Dataset, ds: Dataset, keys: DeidKeys) -> str:
    if "SOPInstanceUID" in out and out.SOPInstanceUID:
        return str(out.SOPInstanceUID)
    original = _string(ds, _SOP_INSTANCE, "UI") or _file_meta_string(
        ds, "MediaStorageSOPInstanceUID"
    )
    if not original:
        raise InvalidInput(
            "The DICOM dataset has no SOP Instance UID (0008,0018); export it again."
        )
    out.SOPInstanceUID = keys.uid(original)
    return str(out.SOPInstanceUID)


def deidentify(ds: Dataset, keys: DeidKeys, limits: DeidLimits | None = None) -> DeidOutcome:
    """De-identify one instance; see the module for what is kept, changed and reported."""
    sop_class = _sop_class(ds)
    charset = _charset(ds)
    codec = values.text_codec(charset)
    little_endian = ds.original_encoding[1] is not False
    pseudonym = _pseudonym(ds, keys, codec)
    state = CopyState(
        keys=keys,
        shift_days=keys.date_shift_days(pseudonym),
        limits=limits or DeidLimits(),
        codec=codec,
        little_endian=little_endian,
        pixel_representation=_number(ds, _PIXEL_REPRESENTATION, little_endian),
        bits_allocated=_number(ds, _BITS_ALLOCATED, little_endian),
    )
    out = copy_dataset(ds, state, depth=0)
    out.SOPClassUID = sop_class
    instance_uid = _instance_uid(out, ds, keys)
    _mark(out, pseudonym, charset)
    encapsulated = _PIXEL_DATA in ds and values.is_undefined_length(ds.get_item(_PIXEL_DATA))
    syntax = output_transfer_syntax(_file_meta_string(ds, "TransferSyntaxUID"), encapsulated)
    out.file_meta = new_file_meta(sop_class, instance_uid, syntax)
    out.preamble = PREAMBLE
    return DeidOutcome(
        dataset=out,
        patient_pseudonym=pseudonym,
        quarantine_reasons=quarantine_reasons(ds),
        removed_attributes=state.removed,
    )


def write_bytes(outcome: DeidOutcome) -> bytes:
    """The de-identified instance as a Part 10 file (``deid_file`` states the layout)."""
    return dataset_bytes(outcome.dataset)
