"""Reading element values tolerantly, without pydicom's value conversion.

pydicom converts a raw element on first access and warns (or raises) on invalid values and
on undecodable text. Hostile and broken files are normal input here, so the de-identifier
reads the encoded bytes itself and never triggers that conversion:

- Text is decoded with the Specific Character Set's Python codec when it is a known single
  value, else as Latin-1, always with replacement characters for invalid bytes; NUL bytes
  and unknown or ISO 2022 character sets never raise. What is kept of text is cleaned
  through an ASCII vocabulary anyway, so exotic text is dropped rather than understood.
- Binary numbers are unpacked with the byte order of the source, so values from a big
  endian file come out as plain numbers; OB/OW/OF/... values are returned as bytes in the
  source byte order (``deid_copy`` swaps them).
- Elements that pydicom already converted (a caller read them) are read from their value.

Every function returns ``None`` for a value it cannot read; the caller drops the element.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterable
from typing import Any

from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

Element = DataElement | RawDataElement

NUMBER_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "L",
    "SL": "l",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
# Text VRs whose value is one string that may contain backslashes.
SINGLE_VALUED_TEXT = frozenset({"ST", "LT", "UT", "UR"})
_PADDING = " \x00"
UNDEFINED_LENGTH = 0xFFFFFFFF


def text_codec(charset_values: list[str]) -> str:
    """The Python codec for one dataset's text: the Specific Character Set's when it is a
    single known term, ISO-2022-JP-2 (which follows the escape sequences of Japanese,
    Korean and Chinese code extensions) for several ISO 2022 terms, else Latin-1 (which
    decodes any byte)."""
    terms = [term.strip() for term in charset_values]
    if len(terms) > 1 and any(term.startswith("ISO 2022") for term in terms):
        return "iso2022_jp_2"
    if len(terms) == 1 and terms[0] in python_encoding:
        name = python_encoding[terms[0]]
        try:
            codecs.lookup(name)
        except LookupError:
            return "latin_1"
        return name
    return "latin_1"


def is_raw(elem: Element) -> bool:
    return isinstance(elem, RawDataElement)


def encoded_vr(elem: Element) -> str | None:
    """The VR the file states for ``elem`` (``None`` for implicit VR raw elements)."""
    return elem.VR if elem.VR else None


def is_undefined_length(elem: Element) -> bool:
    if isinstance(elem, RawDataElement):
        return elem.length == UNDEFINED_LENGTH
    return bool(elem.is_undefined_length)


def raw_bytes(elem: Element) -> bytes | None:
    """The encoded value bytes of a raw element (``b""`` for an empty one)."""
    if isinstance(elem, RawDataElement):
        value = elem.value
        return bytes(value) if value is not None else b""
    return None


def _flatten(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _as_text(item: Any, codec: str) -> str:
    if isinstance(item, bytes):
        return item.decode(codec, errors="replace")
    if isinstance(item, PersonName):
        return str(item)
    original = getattr(item, "original_string", None)
    return str(original) if isinstance(original, str) else str(item)


def strings(elem: Element, vr: str, codec: str) -> list[str] | None:
    """The values of a string VR element, each stripped of padding; ``[]`` when empty."""
    data = raw_bytes(elem)
    if data is not None:
        text = data.decode(codec, errors="replace")
        parts: Iterable[str] = [text] if vr in SINGLE_VALUED_TEXT else text.split("\\")
    else:
        items = _flatten(elem.value)
        if len(items) == 1 and isinstance(items[0], bytes):
            text = items[0].decode(codec, errors="replace")
            parts = [text] if vr in SINGLE_VALUED_TEXT else text.split("\\")
        else:
            parts = [_as_text(item, codec) for item in items]
    values = [part.strip(_PADDING) for part in parts]
    return [] if values == [""] else values


def numbers(elem: Element, vr: str, little_endian: bool) -> list[int | float] | None:
    """The values of a binary number element (US, SS, UL, SL, FL, FD, UV, SV)."""
    data = raw_bytes(elem)
    if data is None:
        items = _flatten(elem.value)
        if len(items) == 1 and isinstance(items[0], bytes):
            data = items[0]
        elif all(isinstance(item, int | float) for item in items):
            return list(items)
        else:
            return None
    code = NUMBER_FORMATS[vr]
    size = struct.calcsize("<" + code)
    if len(data) % size:
        return None
    order = "<" if little_endian else ">"
    return list(struct.unpack(f"{order}{len(data) // size}{code}", data))


def tags(elem: Element, little_endian: bool) -> list[int] | None:
    """The values of an AT element as 32-bit tag numbers."""
    data = raw_bytes(elem)
    if data is None:
        items = _flatten(elem.value)
        if all(isinstance(item, int) for item in items):
            return [int(item) for item in items]
        if len(items) == 1 and isinstance(items[0], bytes):
            data = items[0]
        else:
            return None
    if len(data) % 4:
        return None
    order = "<" if little_endian else ">"
    halves = struct.unpack(f"{order}{len(data) // 2}H", data)
    return [halves[i] << 16 | halves[i + 1] for i in range(0, len(halves), 2)]


def binary(elem: Element) -> bytes | None:
    """The bytes of an OB/OW/OF/OD/OL/OV element, in the source byte order."""
    data = raw_bytes(elem)
    if data is not None:
        return data
    value = elem.value
    if value is None:
        return b""
    return bytes(value) if isinstance(value, bytes | bytearray) else None
