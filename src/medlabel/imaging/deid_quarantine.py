"""Why an instance's pixels may show burned-in text: the quarantine reasons.

The attribute allowlist cannot clean pixels. An instance with one of these reasons is kept
away from annotators until a reviewer has redacted or released it (SECURITY.md 0.2, case 15).
The reasons, always in this order:

``burned_in_annotation``
    Burned In Annotation (0028,0301) is ``YES``.
``secondary_capture``
    A Secondary Capture SOP class, or Conversion Type (0008,0064) is present.
``screen_capture``
    Image Type holds ``SCREEN SAVE``, or is ``DERIVED\\SECONDARY`` without any image
    geometry (no Image Orientation/Position (Patient), Pixel Spacing or functional groups).
``ultrasound``
    Modality ``US`` or an ultrasound SOP class (ultrasound is routinely annotated on screen).
``encapsulated_document``
    An Encapsulated Document SOP class or an Encapsulated Document (0042,0011) element (the
    document itself is never copied).
``visible_light``
    A visible light SOP class (photographs, endoscopy, microscopy; faces and labels).
``slide_label``
    A whole slide image whose Image Type names a ``LABEL`` or ``OVERVIEW`` image.

Absence of Burned In Annotation never counts as ``NO``: screen captures rarely set it.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from medlabel.imaging import deid_values as values

_SECONDARY_CAPTURE = frozenset(
    "1.2.840.10008.5.1.4.1.1." + suffix for suffix in ("7", "7.1", "7.2", "7.3", "7.4")
)
_ULTRASOUND = frozenset(
    "1.2.840.10008.5.1.4.1.1." + suffix for suffix in ("3", "3.1", "6", "6.1", "6.2", "6.3")
)
_ENCAPSULATED_DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."
_VISIBLE_LIGHT_PREFIX = "1.2.840.10008.5.1.4.1.1.77.1."
_WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"
_GEOMETRY = (
    Tag(0x0020, 0x0037),  # ImageOrientationPatient
    Tag(0x0020, 0x0032),  # ImagePositionPatient
    Tag(0x0028, 0x0030),  # PixelSpacing
    Tag(0x5200, 0x9229),  # SharedFunctionalGroupsSequence
    Tag(0x5200, 0x9230),  # PerFrameFunctionalGroupsSequence
)
_BURNED_IN = Tag(0x0028, 0x0301)
_CONVERSION_TYPE = Tag(0x0008, 0x0064)
_IMAGE_TYPE = Tag(0x0008, 0x0008)
_MODALITY = Tag(0x0008, 0x0060)
_SOP_CLASS = Tag(0x0008, 0x0016)
_ENCAPSULATED_DOCUMENT = Tag(0x0042, 0x0011)


def _strings(ds: Dataset, tag: BaseTag) -> list[str]:
    if tag not in ds:
        return []
    found = values.strings(ds.get_item(tag), "CS", "latin_1")
    return [value.upper() for value in found or []]


def _screen_capture(ds: Dataset) -> bool:
    image_type = _strings(ds, _IMAGE_TYPE)
    if any("SCREEN SAVE" in value for value in image_type):
        return True
    secondary = image_type[:2] == ["DERIVED", "SECONDARY"]
    return secondary and not any(tag in ds for tag in _GEOMETRY)


def quarantine_reasons(ds: Dataset) -> tuple[str, ...]:
    """The reasons, in the order of the module docstring; empty if there is none."""
    sop_class = next(iter(_strings(ds, _SOP_CLASS)), "")
    image_type = _strings(ds, _IMAGE_TYPE)
    checks = (
        ("burned_in_annotation", _strings(ds, _BURNED_IN)[:1] == ["YES"]),
        ("secondary_capture", sop_class in _SECONDARY_CAPTURE or _CONVERSION_TYPE in ds),
        ("screen_capture", _screen_capture(ds)),
        ("ultrasound", _strings(ds, _MODALITY)[:1] == ["US"] or sop_class in _ULTRASOUND),
        (
            "encapsulated_document",
            sop_class.startswith(_ENCAPSULATED_DOCUMENT_PREFIX) or _ENCAPSULATED_DOCUMENT in ds,
        ),
        (
            "visible_light",
            sop_class.startswith(_VISIBLE_LIGHT_PREFIX) and sop_class != _WHOLE_SLIDE,
        ),
        (
            "slide_label",
            sop_class == _WHOLE_SLIDE and bool({"LABEL", "OVERVIEW"} & set(image_type)),
        ),
    )
    return tuple(reason for reason, applies in checks if applies)
