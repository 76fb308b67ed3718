"""The bounded walk over a DICOM dataset's element headers, before pydicom reads it.

``HeaderWalk`` visits every element *header* of the file (values are skipped, never read):
every defined length must fit inside its container and the file, undefined lengths must
end in a delimiter, sequences may nest at most ``max_sequence_depth`` deep, hold at most
``max_sequence_items`` items and the file at most ``max_elements`` elements and items. So
a declared length of 0xFFFFFFF0 in a small file, a truncated file, 10,000 nested sequences
or 10^6 items are refused without allocating, recursing or building objects.
``BoundedReader`` then lets pydicom read only the checked bytes.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any, BinaryIO

from medlabel.domain.errors import InvalidInput
from medlabel.imaging.dicom_limits import Damaged, DicomLimits, malformed, truncated
from medlabel.imaging.dicom_values import dictionary_vr
from medlabel.imaging.sniff import LONG_VRS

_ITEM, _ITEM_END, _SEQUENCE_END, _UNDEFINED = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD, 0xFFFFFFFF


class BoundedReader:
    """A read-only file view whose ``read(n)`` never asks for more than is left before
    ``end`` (so nothing preallocates a declared length)."""

    def __init__(self, fh: BinaryIO, end: int) -> None:
        self._fh, self._end = fh, end

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._end - self._fh.tell())
        return self._fh.read(left if size is None or size < 0 else min(size, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


def vr_like(vr: bytes) -> bool:
    return 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B


class HeaderWalk:
    """Walks element headers (never values) of a dataset, checking lengths and limits.

    It follows pydicom's reading rules: explicit VR with a per-element fallback to implicit
    for VR bytes that are not letters, implicit VR detection at the start of the dataset
    and of each sequence item, VR UN and unknown tags of undefined length read as
    sequences, undefined-length values as encapsulated items or up to a Sequence
    Delimitation Item. Plain elements take the inlined fast path of ``dataset``.
    """

    def __init__(self, buf: Any, little: bool, limits: DicomLimits) -> None:
        self.buf, self.limits, self.count = buf, limits, 0
        formats = _LITTLE if little else _BIG
        self.implicit_header, self.explicit_header, self.long_length = formats[:3]
        self.delimiter = formats[3]

    def top(self, pos: int, size: int, implicit: bool) -> int:
        """Walk the top-level dataset; returns where it ends (before trailing zeros)."""
        return self.dataset(pos, size, size, implicit, 0)

    def dataset(self, pos: int, end: int | None, limit: int, imp: bool, depth: int) -> int:
        """Walk the top-level dataset (depth 0) or a sequence item, which ends at ``end``
        or, with an undefined length (``end`` None), at its Item Delimitation Item."""
        buf, implicit_header, explicit_header = self.buf, self.implicit_header, self.explicit_header
        imp = self._detect_implicit(pos, limit, imp, depth)
        stop = limit if end is None else end
        while pos < stop:
            if pos + 8 > stop:
                return self._tail(pos, stop, depth)
            if imp:
                group, element, length = implicit_header(buf, pos)
                vr, value = None, pos + 8
            else:
                group, element, vr, length = explicit_header(buf, pos)
                value = pos + 8
                if vr in LONG_VRS:
                    if pos + 12 > stop:
                        raise self._overflow(stop)
                    length, value = self.long_length(buf, pos + 8)[0], pos + 12
                elif not b"AA" <= vr <= b"ZZ":  # pydicom reads such an element as implicit
                    group, element, length = implicit_header(buf, pos)
                    vr = None
            tag = group << 16 | element
            if tag == _ITEM_END or (depth == 0 and tag == 0 and length == 0):
                return self._delimited(pos, value, end, depth)
            self._count()
            if length != _UNDEFINED and vr is not None and vr not in (b"SQ", b"UN"):
                pos = value + length  # a plain value: skip it
                if pos > stop:
                    raise self._overflow(stop)
            else:
                pos = self._value(tag, vr, int(length), value, stop, imp, depth)
        if end is None and depth > 0:
            raise self._overflow(limit)  # no Item Delimitation Item before the end
        return pos

    def _detect_implicit(self, pos: int, limit: int, imp: bool, depth: int) -> bool:
        """pydicom's check of the first element's VR bytes: at the top level either way, in
        a sequence item only from explicit to implicit VR."""
        if pos + 6 <= limit and (depth == 0 or not imp):
            return not vr_like(self.buf[pos + 4 : pos + 6])
        return imp

    def _tail(self, pos: int, stop: int, depth: int) -> int:
        """Fewer than 8 bytes left: zero padding at the top level, else a cut."""
        if depth == 0 and not any(self.buf[pos:stop]):
            return pos
        raise self._overflow(stop)

    @staticmethod
    def _delimited(pos: int, after: int, end: int | None, depth: int) -> int:
        """An Item Delimitation Item, or (top level) a zero tag: where the dataset ends."""
        if depth == 0:
            return pos  # zero padding, or a stray delimiter where pydicom stops reading
        if end is None:
            return after
        raise malformed("an item delimiter ends a defined-length item")

    def _count(self) -> None:
        self.count += 1
        if self.count > self.limits.max_elements:
            raise InvalidInput(
                f"The DICOM file has more than {self.limits.max_elements} data elements and "
                "sequence items; such files are refused to protect the server."
            )

    def _overflow(self, limit: int) -> InvalidInput:
        if limit == len(self.buf):
            return truncated()
        return malformed("an element is longer than the sequence item holding it")

    def _value(
        self, tag: int, vr: bytes | None, length: int, pos: int, limit: int, imp: bool, depth: int
    ) -> int:
        """An SQ, UN or implicit VR element, or one of undefined length."""
        if length == _UNDEFINED:
            if self._undefined_is_sequence(tag, vr, pos, limit):
                return self._sequence(pos, None, limit, imp, depth + 1)
            return self._undefined_value(pos, limit)
        end = pos + length
        if end > limit:
            raise self._overflow(limit)
        if vr == b"SQ" or dictionary_vr(tag) == "SQ":
            self._sequence(pos, end, end, imp, depth + 1)
        elif self._starts_with_item(pos, end):
            # a private value that reads as a sequence: pydicom may parse it as one later
            with contextlib.suppress(Damaged):  # not a sequence after all: opaque bytes
                self._sequence(pos, end, end, imp, depth + 1)
        return end

    def _starts_with_item(self, pos: int, limit: int) -> bool:
        return pos + 8 <= limit and self.implicit_header(self.buf, pos)[:2] == (0xFFFE, 0xE000)

    def _undefined_is_sequence(self, tag: int, vr: bytes | None, pos: int, limit: int) -> bool:
        if vr in (b"SQ", b"UN"):
            return True
        if vr is not None:
            return False
        known = dictionary_vr(tag)
        if known is not None:
            return known == "SQ"
        return self._starts_with_item(pos, limit)

    def _sequence(self, pos: int, end: int | None, limit: int, imp: bool, depth: int) -> int:
        if depth > self.limits.max_sequence_depth:
            raise InvalidInput(
                f"The DICOM file nests sequences more than {self.limits.max_sequence_depth} "
                "levels deep; such files are refused to protect the server."
            )
        items = 0
        while end is None or pos < end:
            if pos + 8 > limit:
                raise self._overflow(limit)
            group, element, length = self.implicit_header(self.buf, pos)
            if group << 16 | element == _SEQUENCE_END:
                return pos + 8
            if group << 16 | element != _ITEM:
                raise malformed("a sequence holds something other than items")
            items += 1
            if items > self.limits.max_sequence_items:
                raise InvalidInput(
                    f"A sequence in the DICOM file has more than "
                    f"{self.limits.max_sequence_items} items; such files are refused to "
                    "protect the server."
                )
            self._count()
            pos += 8
            if length == _UNDEFINED:
                pos = self.dataset(pos, None, limit, imp, depth)
            else:  # an item longer than its sequence is read up to the sequence's end, as
                end_of_item = min(pos + length, limit)  # pydicom does (seen in real files)
                pos = self.dataset(pos, end_of_item, end_of_item, imp, depth)
        return pos

    def _undefined_value(self, pos: int, limit: int) -> int:
        """Encapsulated items up to the delimiter; else (like pydicom) search for it."""
        start = pos
        while pos + 8 <= limit:
            group, element, length = self.implicit_header(self.buf, pos)
            tag = group << 16 | element
            if tag == _SEQUENCE_END:
                return pos + 8
            if tag != _ITEM or pos + 8 + length > limit:
                break
            pos += 8 + length
        found = int(self.buf.find(self.delimiter, start, limit))
        if found < 0 or found + 8 > limit:
            raise truncated()
        return found + 8


def _formats(order: str) -> tuple[Any, Any, Any, bytes]:
    return (
        struct.Struct(order + "HHL").unpack_from,
        struct.Struct(order + "HH2sH").unpack_from,
        struct.Struct(order + "L").unpack_from,
        struct.pack(order + "HH", 0xFFFE, 0xE0DD),
    )


_LITTLE, _BIG = _formats("<"), _formats(">")
