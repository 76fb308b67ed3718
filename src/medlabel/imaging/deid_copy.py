"""The allowlist rebuild: a new dataset holding only what ``deid_rules`` allows, cleaned.

Walks the source dataset (and, recursively, the items of allowed sequences) and copies each
allowed standard attribute into a *new* dataset, treated by its dictionary VR:

=========================  ==============================================================
UI                         replaced by ``keys.uid`` unless a class UID (kept if valid) or
                           a registered DICOM UID (transfer syntaxes, well-known frames
                           of reference, ...); see ``copy_uid``
DA / DT                    shifted by the patient's days (``deid_temporal``)
TM                         kept when valid
AS                         ages over 89 years become ``090Y``
CS                         kept when every value is a valid code string (upper case,
                           digits, space, ``_``, at most 16 characters); Body Part
                           Examined only as a defined term, Patient's Sex only M/F/O,
                           Content Label cleaned like free text
DS / IS                    kept when every value is a valid decimal / integer string (a
                           finite DS longer than 16 characters is re-formatted to fit)
US SS UL SL FL FD UV SV AT kept (the numbers, re-encoded little endian)
OB OW OF OD OL OV          kept as bytes, byte-swapped when the source is big endian
SH LO ST LT UT UC          cleaned through the descriptor vocabulary
PN AE UR UN                never copied (the patient's name is set by ``deidentify``)
SQ                         items copied with the same allowlist; SR content items of other
                           value types than ``CONTENT_ITEM_VALUE_TYPES`` and code items
                           that are not code-shaped are dropped whole
=========================  ==============================================================

The tables of ``deid_rules`` override this for a few attributes: Type 2 attributes that
are written empty (Accession Number, Study ID, Referring Physician's Name, Patient's Birth
Date, ...) and Type 1 ones written as ``REMOVED`` (Device Serial Number, Software Versions).

An invalid value drops its attribute; it never stops the copy. Sequence depth and the
total number of items are capped while walking (``DeidLimits``). Values are read from
their encoded bytes (``deid_values``), so nothing here makes pydicom warn or raise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID
from pydicom.valuerep import format_number_as_ds
from pydicom.values import convert_SQ

from medlabel.domain.errors import InvalidInput
from medlabel.imaging import deid_rules as rules
from medlabel.imaging import deid_values as values
from medlabel.imaging.deid_codes import clean_code
from medlabel.imaging.deid_keys import DeidKeys
from medlabel.imaging.deid_temporal import cap_age, clean_time, shift_date, shift_datetime
from medlabel.imaging.deid_values import Element
from medlabel.imaging.deid_vocabulary import clean_descriptor

_UID = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*")
_CS = re.compile(r"[A-Z0-9 _]{0,16}")
_DS = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_IS = re.compile(r"[+-]?\d{1,11}")
_CODE_SHAPED = re.compile(r"[A-Za-z0-9._\-:]{1,16}")
TEXT_MAX_CHARS = {"SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "UT": None, "UC": None}
BINARY_WORD = {"OB": 1, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
CODE_KEYWORDS = frozenset({"CodeValue", "CodingSchemeDesignator", "CodeMeaning"})
_CODE_TAGS = (Tag(0x0008, 0x0100), Tag(0x0008, 0x0102), Tag(0x0008, 0x0104))
_VALUE_TYPE = Tag(0x0040, 0xA040)
_CONTENT_SEQUENCE = Tag(0x0040, 0xA730)
_DROP = object()


@dataclass(frozen=True)
class DeidLimits:
    """Caps checked while copying: sequence nesting depth and the total number of items."""

    max_depth: int = 32
    max_items: int = 100_000


@dataclass
class CopyState:
    """What one copy needs and counts (mutable, private to one ``deidentify`` call)."""

    keys: DeidKeys
    shift_days: int
    limits: DeidLimits
    codec: str
    little_endian: bool
    pixel_representation: int
    bits_allocated: int
    items: int = 0
    removed: int = 0


def is_valid_uid(value: str) -> bool:
    """A UID of digits and dots, no empty or zero-led component, at most 64 characters."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def copy_uid(keyword: str, value: str, keys: DeidKeys) -> str | None:
    """The output of one UID value: class UIDs and registered DICOM UIDs as they are (if
    valid), every other UID replaced by ``keys.uid`` (valid or not); ``None`` drops it."""
    if value == "":
        return ""
    if keyword in rules.CLASS_UID_KEYWORDS:
        return value if is_valid_uid(value) else None
    if is_valid_uid(value) and UID(value).name != value:
        return value
    return keys.uid(value)


def _element(tag: BaseTag, vr: str, value: Any, undefined_length: bool = False) -> DataElement:
    return DataElement(
        tag, vr, value, is_undefined_length=undefined_length, validation_mode=config.IGNORE
    )


def _is_candidate(tag: BaseTag) -> bool:
    group = tag.group
    if tag.is_private or tag.element == 0 or group in (0x0000, 0x0002, 0xFFFA, 0xFFFC):
        return False
    curves_or_overlays = 0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E
    variable_pixel_data = 0x7F00 <= group <= 0x7F1E
    return not (curves_or_overlays or variable_pixel_data)


def _resolve_vr(elem: Element, dict_vr: str, state: CopyState) -> str | None:
    """The VR to read ``elem`` with: the stated one if the dictionary allows it, else (for
    implicit VR) the dictionary's, with its ambiguity resolved as PS3.5 Annex A says."""
    options = dict_vr.split(" or ")
    stated = values.encoded_vr(elem)
    if stated is not None and " or " not in stated:
        return stated if stated in options else None
    if len(options) == 1:
        return options[0]
    signed = "SS" if state.pixel_representation else "US"
    data = values.raw_bytes(elem)
    long = data is None or len(data) > 2
    if "OW" in options:
        return "OW" if long or "OB" in options else signed if "SS" in options else "US"
    return signed if "SS" in options else None


def copy_dataset(
    src: Dataset, state: CopyState, depth: int, skip: tuple[BaseTag, ...] = ()
) -> Dataset:
    """A new dataset with the allowed, cleaned attributes of ``src``."""
    if depth > state.limits.max_depth:
        raise InvalidInput(
            f"The DICOM file nests sequences deeper than {state.limits.max_depth} levels; "
            "such files are rejected. Export the image again from the modality or PACS."
        )
    out = Dataset()
    for key in list(src.keys()):
        tag = Tag(key)
        if tag in skip:
            continue
        new = copy_element(tag, src, state, depth)
        if new is None:
            state.removed += 1
        else:
            out.add(new)
    return out


def copy_element(tag: BaseTag, src: Dataset, state: CopyState, depth: int) -> DataElement | None:
    """The cleaned copy of ``src[tag]``, or ``None`` when it is not allowed or not valid."""
    if not _is_candidate(tag):
        return None
    keyword = keyword_for_tag(tag)
    if keyword not in rules.ALLOWED_KEYWORDS or keyword in CODE_KEYWORDS:
        return None
    elem = src.get_item(tag)
    vr = _resolve_vr(elem, dictionary_VR(tag), state)
    if vr is None or vr == "UN":
        return None
    if keyword in rules.ZERO_KEYWORDS:
        return _element(tag, vr, None if vr == "SQ" else "")
    if keyword in rules.DUMMY_KEYWORDS:
        return _element(tag, vr, rules.DUMMY_TEXT)
    if vr == "SQ":
        return _copy_sequence(tag, _items(elem), state, depth)
    value = _copy_value(keyword, vr, elem, state)
    if value is _DROP:
        return None
    undefined = keyword == "PixelData" and values.is_undefined_length(elem)
    return _element(tag, vr, value, undefined_length=undefined)


def _copy_value(keyword: str, vr: str, elem: Element, state: CopyState) -> Any:
    if vr in values.NUMBER_FORMATS:
        numbers = values.numbers(elem, vr, state.little_endian)
        return _DROP if numbers is None else numbers
    if vr == "AT":
        tags = values.tags(elem, state.little_endian)
        return _DROP if tags is None else tags
    if vr in BINARY_WORD:
        return _copy_binary(keyword, vr, elem, state)
    if vr in ("PN", "AE", "UR", "UN", "SQ"):
        return _DROP
    strings = values.strings(elem, vr, state.codec)
    if strings is None:
        return _DROP
    if vr in TEXT_MAX_CHARS:
        return _copy_text(keyword, vr, strings)
    cleaned = [_copy_string(keyword, vr, s, state) for s in strings]
    if any(c is None for c in cleaned):
        return _DROP
    return cleaned[0] if len(cleaned) == 1 else cleaned


def _copy_string(keyword: str, vr: str, value: str, state: CopyState) -> str | None:
    """One value of an ASCII-only string VR, or ``None`` when it is not valid."""
    if vr == "UI":
        return copy_uid(keyword, value, state.keys)
    if vr == "DA":
        return shift_date(value, state.shift_days)
    if vr == "DT":
        return shift_datetime(value, state.shift_days)
    if vr == "TM":
        return clean_time(value)
    if vr == "AS":
        return cap_age(value)
    if vr == "DS":
        return _decimal_string(value)
    if vr == "IS":
        valid = value == "" or (_IS.fullmatch(value) and -(2**31) <= int(value) < 2**31)
        return value if valid else None
    if vr == "CS":
        return _copy_code_string(keyword, value)
    return None


def _decimal_string(value: str) -> str | None:
    """A valid DS value as it is; a valid number longer than DS allows (16 characters),
    as some modalities write, re-formatted to fit; ``None`` for anything else."""
    if value == "":
        return value
    if _DS.fullmatch(value) is None or not math.isfinite(float(value)):
        return None
    return value if len(value) <= 16 else format_number_as_ds(float(value))


def _copy_code_string(keyword: str, value: str) -> str | None:
    if _CS.fullmatch(value) is None:
        return None
    if keyword in rules.CLEANED_CODE_STRING_KEYWORDS:
        return clean_descriptor(value, 16).upper() or rules.DUMMY_TEXT
    if keyword == "BodyPartExamined" and value not in rules.BODY_PART_TERMS:
        return None
    if keyword == "PatientSex" and value not in rules.PATIENT_SEX_TERMS | {""}:
        return None
    return value


def _copy_text(keyword: str, vr: str, strings: list[str]) -> Any:
    if keyword == "CodingSchemeVersion":
        return strings[0] if len(strings) == 1 and _CODE_SHAPED.fullmatch(strings[0]) else _DROP
    if not strings:
        return ""
    limit = TEXT_MAX_CHARS[vr]
    cleaned = [c for c in (clean_descriptor(s, limit) for s in strings) if c]
    if not cleaned:
        return rules.DUMMY_TEXT if keyword in rules.DUMMY_IF_EMPTY_KEYWORDS else _DROP
    return cleaned[0] if len(cleaned) == 1 else cleaned


def _swap_width(keyword: str, vr: str, state: CopyState) -> int:
    if keyword == "PixelData":
        bits = state.bits_allocated
        return bits // 8 if bits in (16, 32, 64) else BINARY_WORD[vr]
    return BINARY_WORD[vr]


def _copy_binary(keyword: str, vr: str, elem: Element, state: CopyState) -> Any:
    data = values.binary(elem)
    if data is None:
        return _DROP
    width = _swap_width(keyword, vr, state)
    if state.little_endian or width == 1:
        return data
    if keyword == "PixelData" and values.is_undefined_length(elem):
        return _DROP  # encapsulated data is never big endian; a broken file
    whole = len(data) - len(data) % width
    swapped = np.frombuffer(data, dtype=f">u{width}", count=whole // width).byteswap()
    return swapped.tobytes() + data[whole:]


def _items(elem: Element) -> Sequence | None:
    """The items of a sequence element, parsed here from its bytes if pydicom has not yet
    (through ``Dataset.__getitem__`` pydicom would look up the character set, and warn on
    an unknown one); the items' own elements stay raw."""
    if isinstance(elem, DataElement):
        return elem.value if isinstance(elem.value, Sequence) else None
    data = values.raw_bytes(elem) or b""
    return convert_SQ(data, elem.is_implicit_VR, elem.is_little_endian, None, elem.value_tell)


def _copy_sequence(
    tag: BaseTag, items: Sequence | None, state: CopyState, depth: int
) -> DataElement | None:
    if items is None:
        return None
    kept: list[Dataset] = []
    for item in items:
        state.items += 1
        if state.items > state.limits.max_items:
            raise InvalidInput(
                f"The DICOM file holds more than {state.limits.max_items} sequence items; "
                "such files are rejected."
            )
        new = copy_item(item, state, depth + 1, content=tag == _CONTENT_SEQUENCE)
        if new is None:
            state.removed += 1
        else:
            kept.append(new)
    return _element(tag, "SQ", Sequence(kept))


def _single_string(item: Dataset, tag: BaseTag, vr: str, state: CopyState) -> str | None:
    if tag not in item:
        return None
    found = values.strings(item.get_item(tag), vr, state.codec)
    return found[0] if found else ""


def copy_item(item: Dataset, state: CopyState, depth: int, content: bool) -> Dataset | None:
    """The cleaned copy of one sequence item, or ``None`` when the whole item must go: an
    SR content item of a value type that is not kept (or, in a Content Sequence, a
    by-reference item without one), or a code item that is not code-shaped."""
    value_type = _single_string(item, _VALUE_TYPE, "CS", state)
    if value_type is None and content:
        return None
    if value_type is not None and value_type not in rules.CONTENT_ITEM_VALUE_TYPES:
        return None
    if not any(tag in item for tag in _CODE_TAGS[:2]):
        return copy_dataset(item, state, depth)
    code = clean_code(
        _single_string(item, _CODE_TAGS[0], "SH", state) or "",
        _single_string(item, _CODE_TAGS[1], "SH", state) or "",
        _single_string(item, _CODE_TAGS[2], "LO", state) or "",
    )
    if code is None:
        return None
    out = copy_dataset(item, state, depth, skip=_CODE_TAGS)
    out.CodeValue, out.CodingSchemeDesignator, out.CodeMeaning = (
        code.value,
        code.scheme,
        code.meaning,
    )
    return out
