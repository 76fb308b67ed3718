"""The strict, bounded walk of a Part 10 file that ``deid_fast`` works on.

``walk_part10`` reads the File Meta Information and the top-level data elements of a
little endian file straight from its bytes and returns where each element's value lies.
Nested sequences are walked too (their items and elements), never parsed into objects:
that finds where an undefined-length sequence ends and shows that pydicom reads the
structure the same way.

It accepts only what pydicom (and ``dicom.read_dataset``'s header walk) read exactly like
this, and returns ``None`` for anything else, so that the caller falls back to the
ordinary path (which then accepts, repairs or refuses the file as it always has):

- a ``DICM`` prefix; File Meta Information elements of group 0002 in Explicit VR with known
  VRs, defined lengths and whole numbers of binary values, holding a Transfer Syntax UID
  of Implicit or Explicit VR Little Endian or of a compressed syntax (whose dataset
  pydicom reads as Explicit VR Little Endian), not deflated;
- data elements whose headers fit, whose defined lengths fit inside their container and
  (explicit VR) whose VR is a known one; top-level tags strictly increasing (no command
  set, no group FFFE) and ending exactly at the end of the file or where only zero bytes
  follow (padding seen in real files, which ``dicom.read_dataset`` leaves out too);
- undefined lengths only for sequences (stated ``SQ`` or ``UN``, or in implicit VR an
  attribute whose dictionary VR is SQ or an unknown tag followed by an item: pydicom reads
  all of these as sequences) and for encapsulated Pixel Data at the top level, whose
  fragments (one at least) end exactly at a Sequence Delimitation Item;
- sequences that hold only items and end exactly at their length or at a Sequence
  Delimitation Item, items that end exactly at their length or at an Item Delimitation
  Item; values that the header walk of ``dicom.read_dataset`` looks into (``UN`` or
  implicit VR of a sequence attribute, or starting with an item) must read as sequences;
- at most ``MAX_DEPTH`` levels of nesting and ``MAX_NODES`` elements and items in all,
  below what ``dicom.read_dataset`` and ``deid_copy`` accept.

Items inside an Explicit VR sequence may use Implicit VR, as PS3.5 7.5 allows: like pydicom,
an item is read as implicit when its first element's VR bytes are not letters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
MAX_DEPTH = 16
MAX_NODES = 50_000
UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_DICM = b"DICM"
_META_START = 132
_PIXEL_DATA = 0x7FE00010
_TRANSFER_SYNTAX = 0x0010  # element number in group 0002

# The VRs of PS3.5 6.2 as they are written in a file, and those with a 4-byte length.
_KNOWN_VRS = {v.value.encode("ascii"): v.value for v in VR if len(v.value) == 2}
_LONG_VRS = frozenset(str(v) for v in EXPLICIT_VR_LENGTH_32)
_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "UV": 8, "SV": 8, "AT": 4}
_IMPLICIT = struct.Struct("<HHL").unpack_from
_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_LONG = struct.Struct("<L").unpack_from


class Element(NamedTuple):
    """One top-level data element: ``vr`` is the stated VR (``None`` for implicit VR);
    the value is ``[value, value + length)``; ``end`` is where the next element starts
    (after the Sequence Delimitation Item of an undefined-length sequence)."""

    tag: int
    vr: str | None
    value: int
    length: int
    end: int

    @property
    def undefined_length(self) -> bool:
        return self.length == UNDEFINED


@dataclass(frozen=True, slots=True)
class Part10:
    """What ``walk_part10`` found: the transfer syntax and the top-level elements."""

    transfer_syntax: str
    implicit_vr: bool
    elements: list[Element]


class _Refused(Exception):
    """Not the common case: the caller falls back to the ordinary path."""


@lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str | None:
    """The data dictionary's VR of a tag (repeating groups included), else ``None``."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def vr_like(b0: int, b1: int) -> bool:
    """pydicom's test for explicit VR: both bytes are upper-case letters."""
    return 0x40 < b0 < 0x5B and 0x40 < b1 < 0x5B


def walk_part10(buf: memoryview) -> Part10 | None:
    """The file meta and top-level elements of ``buf`` (a whole Part 10 file, format
    ``B``), or ``None`` when the file is not the common case (see the module)."""
    try:
        start, meta = _file_meta(buf)
        syntax = meta.get(_TRANSFER_SYNTAX, b"").decode("ascii").strip("\x00 ")
        if not _little_endian_syntax(syntax):
            return None
        implicit = syntax == IMPLICIT_VR_LITTLE_ENDIAN
        walk = _Walk(buf)
        elements = walk.top(start, implicit)
    except (_Refused, UnicodeDecodeError):
        return None
    return Part10(transfer_syntax=syntax, implicit_vr=implicit, elements=elements)


@lru_cache(maxsize=64)
def _little_endian_syntax(syntax: str) -> bool:
    """Implicit or Explicit VR Little Endian, or a compressed syntax (pydicom reads its
    dataset as Explicit VR Little Endian)."""
    if syntax in (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN):
        return True
    uid = UID(syntax, validation_mode=config.IGNORE)
    return bool(
        uid.is_valid
        and uid.is_transfer_syntax
        and uid.is_compressed
        and uid != DeflatedExplicitVRLittleEndian
    )


def _file_meta(buf: memoryview) -> tuple[int, dict[int, bytes]]:
    size = len(buf)
    if size < _META_START + 8 or bytes(buf[128:_META_START]) != _DICM:
        raise _Refused
    pos, found = _META_START, {}
    while pos + 8 <= size:
        group, element, raw_vr, length = _EXPLICIT(buf, pos)
        if group != 0x0002:
            break
        vr = _KNOWN_VRS.get(raw_vr)
        if vr is None:
            raise _Refused
        value = pos + 8
        if vr in _LONG_VRS:
            if pos + 12 > size:
                raise _Refused
            length, value = _LONG(buf, pos + 8)[0], pos + 12
        if length == UNDEFINED or value + length > size or element in found:
            raise _Refused
        if length % _NUMBER_SIZES.get(vr, 1):
            raise _Refused  # pydicom fails to read such a file meta
        found[element] = bytes(buf[value : value + length])
        pos = value + length
    if not found or pos + 8 > size:
        raise _Refused
    return pos, found


class _Walk:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.size, self.nodes = buf, len(buf), 0

    def _count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused

    def top(self, pos: int, implicit: bool) -> list[Element]:
        buf, size = self.buf, self.size
        if vr_like(buf[pos + 4], buf[pos + 5]) == implicit:
            raise _Refused  # pydicom would switch encodings (and warn)
        elements: list[Element] = []
        previous = -1
        while pos < size:
            if pos + 4 <= size and _LONG(buf, pos)[0] == 0 and not any(buf[pos:]):
                break  # zero padding after the dataset, which dicom.read_dataset leaves out
            tag, vr, length, value = self._header(pos, size, implicit)
            if tag <= previous or tag >> 16 in (0x0000, 0x0002, 0xFFFE):
                raise _Refused
            previous = tag
            if length == UNDEFINED and tag == _PIXEL_DATA and vr in ("OB", "OW"):
                end = self._fragments(value, size)
            else:
                end = self._value(tag, vr, length, value, size, implicit, 1)
            elements.append(Element(tag, vr, value, length, end))
            pos = end
        return elements

    def _header(self, pos: int, limit: int, implicit: bool) -> tuple[int, str | None, int, int]:
        if pos + 8 > limit:
            raise _Refused
        if implicit:
            group, element, length = _IMPLICIT(self.buf, pos)
            return group << 16 | element, None, length, pos + 8
        group, element, raw_vr, length = _EXPLICIT(self.buf, pos)
        vr = _KNOWN_VRS.get(raw_vr)
        if vr is None:
            raise _Refused  # pydicom reads it as implicit VR or guesses its length
        if vr in _LONG_VRS:
            if pos + 12 > limit:
                raise _Refused
            return group << 16 | element, vr, _LONG(self.buf, pos + 8)[0], pos + 12
        return group << 16 | element, vr, length, pos + 8

    def _value(
        self, tag: int, vr: str | None, length: int, pos: int, limit: int, imp: bool, depth: int
    ) -> int:
        """Where the element whose value starts at ``pos`` ends."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused
        if length == UNDEFINED:
            if not self._undefined_is_sequence(tag, vr, pos, limit):
                raise _Refused  # encapsulated or searched-for values: not handled here
            return self._sequence(pos, None, limit, imp, depth)
        end = pos + length
        if end > limit:
            raise _Refused
        if vr == "SQ" or (vr in (None, "UN") and dictionary_vr(tag) == "SQ"):
            self._sequence(pos, end, end, imp, depth)
        elif vr in (None, "UN") and self._starts_with_item(pos, end):
            self._sequence(pos, end, end, imp, depth)  # as dicom.read_dataset's walk does
        return end

    def _fragments(self, pos: int, limit: int) -> int:
        """Encapsulated Pixel Data: items up to the Sequence Delimitation Item, as pydicom
        reads them (it searches byte by byte for the delimiter when they are not)."""
        first = True
        while pos + 8 <= limit:
            group, element, length = _IMPLICIT(self.buf, pos)
            tag = group << 16 | element
            if tag == _SEQUENCE_END and length == 0 and not first:
                return pos + 8
            if tag != _ITEM or pos + 8 + length > limit:
                break
            self._count()
            pos, first = pos + 8 + length, False
        raise _Refused

    def _undefined_is_sequence(self, tag: int, vr: str | None, pos: int, limit: int) -> bool:
        if vr in ("SQ", "UN"):
            return True  # pydicom reads an undefined-length UN as a sequence
        if vr is not None:
            return False
        known = dictionary_vr(tag)
        return known == "SQ" if known is not None else self._starts_with_item(pos, limit)

    def _starts_with_item(self, pos: int, limit: int) -> bool:
        if pos + 8 > limit:
            return False
        group, element, _ = _IMPLICIT(self.buf, pos)
        return bool(group << 16 | element == _ITEM)

    def _sequence(self, pos: int, end: int | None, limit: int, imp: bool, depth: int) -> int:
        """Walk the items of a sequence; returns where it ends (after its delimiter)."""
        if depth > MAX_DEPTH:
            raise _Refused
        stop = limit if end is None else end
        while end is None or pos < end:
            if pos + 8 > stop:
                raise _Refused
            group, element, length = _IMPLICIT(self.buf, pos)
            tag = group << 16 | element
            if tag == _SEQUENCE_END and end is None and length == 0:
                return pos + 8
            if tag != _ITEM:
                raise _Refused
            self._count()
            pos += 8
            if length == UNDEFINED:
                pos = self._item(pos, None, stop, imp, depth)
            else:
                if pos + length > stop:
                    raise _Refused
                pos = self._item(pos, pos + length, pos + length, imp, depth)
        if pos != end:
            raise _Refused
        return pos

    def _item(self, pos: int, end: int | None, limit: int, imp: bool, depth: int) -> int:
        """Walk the elements of an item; returns where it ends."""
        buf = self.buf
        stop = limit if end is None else end
        if not imp and pos + 6 <= stop and not vr_like(buf[pos + 4], buf[pos + 5]):
            imp = True  # pydicom reads such an item as Implicit VR (PS3.5 7.5)
        while True:
            if end is not None and pos == end:
                return pos
            if pos + 8 > stop:
                raise _Refused
            group, element, length = _IMPLICIT(buf, pos)
            if group << 16 | element == _ITEM_END:
                if end is not None or length != 0:
                    raise _Refused
                return pos + 8
            tag, vr, length, value = self._header(pos, stop, imp)
            if tag >> 16 == 0xFFFE:
                raise _Refused
            pos = self._value(tag, vr, length, value, stop, imp, depth + 1)
