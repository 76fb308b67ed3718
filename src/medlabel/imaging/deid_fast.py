"""De-identification of the common case straight from the bytes of a Part 10 file.

``deidentify_bytes(data, keys)`` returns exactly the bytes that
``write_bytes(deidentify(dcmread(data), keys))`` returns, about ten times faster, for the
files an ingest mostly sees: images in Explicit or Implicit VR Little Endian with native
Pixel Data, and images with encapsulated (compressed) Pixel Data, which is copied fragment
for fragment. For anything else it returns ``None`` and the caller uses
``deid.deidentify``, which then de-identifies, repairs or refuses the file as always: big
endian and deflated files, objects without Pixel Data, structures that ``deid_fast_walk``
does not accept, several or unknown Specific Character Sets (or one whose encoded text is
not plain ASCII bytes), values whose output would not be ASCII, and every case where the
ordinary path raises (no SOP Class, no patient, a DICOMDIR, the limits).

How: the top-level elements are found in the file's bytes (``deid_fast_walk``). Each one
goes through the allowlist and value rules of ``deid_copy``, whose tables and functions are
imported, never copied: dropped, written empty or as the dummy, or read by ``_copy_value``
(UIDs replaced, dates shifted, ages capped, code strings and numbers checked, descriptors
cleaned) and encoded here as ``pydicom.filewriter`` encodes such values; binary values
(Pixel Data) are copied as they are. Sequences go to ``deid_copy.copy_element`` and are
written by pydicom, one element at a time, as pydicom's reader would have given them. The
patient, the de-identification marks, the quarantine reasons and the File Meta Information
come from ``deid``, ``deid_quarantine`` and ``deid_file`` (the private helpers of ``deid``
are reused on purpose, so that every rule has one source); the marks and the file meta
are written by pydicom once per patient and per SOP class, syntax and UID length, and
reused. Elements are written in tag order, as pydicom writes them.

``tests/imaging/test_deid_fast.py`` checks the byte equality on every sample file, on the
planted-PHI corpus and on generated datasets.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from pydicom.charset import convert_encodings, default_encoding, encode_string, python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_sequence
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32
from pydicom.values import convert_string

from medlabel.domain.errors import MedlabelError
from medlabel.imaging import deid_rules as rules
from medlabel.imaging import deid_values as values
from medlabel.imaging.deid import _charset, _mark, _number, _pseudonym, _sop_class, _string
from medlabel.imaging.deid_copy import (
    _DROP,
    BINARY_WORD,
    CODE_KEYWORDS,
    CopyState,
    DeidLimits,
    _copy_value,
    _is_candidate,
    _resolve_vr,
    copy_element,
)
from medlabel.imaging.deid_fast_walk import UNDEFINED, Element, Part10, walk_part10
from medlabel.imaging.deid_file import (
    PREAMBLE,
    dataset_bytes,
    new_file_meta,
    output_transfer_syntax,
)
from medlabel.imaging.deid_keys import DeidKeys
from medlabel.imaging.deid_quarantine import quarantine_reasons

__all__ = ["FastOutcome", "deidentify_bytes"]

_CHARSET = 0x00080005
_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018
_BITS_ALLOCATED, _PIXEL_REPRESENTATION = 0x00280100, 0x00280103
_PIXEL_DATA = 0x7FE00010
_MEDIA_STORAGE_SOP_INSTANCE = 0x0003  # in group 0002
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_SHORT_HEADER = struct.Struct("<HH2sH").pack
_LONG_HEADER = struct.Struct("<HH2sHL").pack
_SEQUENCE_DELIMITER = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
_ASCII_PROBE = "".join(chr(c) for c in range(0x20, 0x7F))

Chunk = bytes | memoryview


@dataclass(frozen=True)
class FastOutcome:
    """A de-identified instance as a Part 10 file.

    ``file_bytes`` equals ``write_bytes(deidentify(dcmread(data), keys))``; the other fields
    equal those of that ``DeidOutcome`` (``dcmread`` as ``dicom.read_dataset`` does it:
    zero padding after the dataset is not an element). The Pixel Data value is
    ``file_bytes[pixel_offset : pixel_offset + pixel_length]``: the pixels when native,
    the items (without the Sequence Delimitation Item) when encapsulated.
    """

    file_bytes: bytes
    patient_pseudonym: str
    quarantine_reasons: tuple[str, ...]
    removed_attributes: int
    pixel_offset: int
    pixel_length: int


class _Fallback(Exception):
    """Not the common case after all: the caller uses the ordinary path."""


def deidentify_bytes(
    data: bytes | memoryview, keys: DeidKeys, limits: DeidLimits | None = None
) -> FastOutcome | None:
    """De-identify the Part 10 file ``data``, or ``None`` when it is not the common case
    (see the module); never raises for what is in ``data``."""
    buf = memoryview(data)
    if buf.format != "B" or buf.ndim != 1:
        buf = buf.cast("B")
    part = walk_part10(buf)
    if part is None:
        return None
    try:
        return _Run(buf, part, keys, limits or DeidLimits()).outcome()
    except (_Fallback, MedlabelError):
        return None  # the ordinary path decides (and words any refusal)


@lru_cache(maxsize=8192)
def _rule(tag: int) -> tuple[str, str] | None:
    """(keyword, dictionary VR) of an attribute the allowlist may copy, as
    ``deid_copy.copy_element`` decides it; ``None`` for one it drops by its tag."""
    key = BaseTag(tag)
    if not _is_candidate(key):
        return None
    keyword = keyword_for_tag(key)
    if keyword not in rules.ALLOWED_KEYWORDS or keyword in CODE_KEYWORDS:
        return None
    return keyword, str(dictionary_VR(key))


@lru_cache(maxsize=64)
def _ascii_charset(term: str) -> bool:
    """Whether pydicom writes plain ASCII text under this Specific Character Set term as
    the ASCII bytes themselves (ISO 2022 encodings add escape sequences, for instance)."""
    if term not in python_encoding:
        return False
    try:
        encoded = encode_string(_ASCII_PROBE, convert_encodings([term]))
    except (LookupError, ValueError):
        return False
    return encoded == _ASCII_PROBE.encode("ascii")


def _header(tag: int, vr: str, length: int) -> bytes:
    """An Explicit VR Little Endian element header, as ``write_data_element`` writes it."""
    if vr in _LONG_VRS:
        return _LONG_HEADER(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, length)
    if length > 0xFFFF:
        raise _Fallback  # pydicom would write it as UN (and warn)
    return _SHORT_HEADER(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)


def _text_element(tag: int, vr: str, value: Any) -> bytes:
    """A string value (one or a list) as pydicom writes it: values joined by backslashes,
    padded to even length with a space (UI: a NUL). Only ASCII is written here."""
    text = value if isinstance(value, str) else "\\".join(value)
    if not text.isascii():
        raise _Fallback
    encoded = text.encode("ascii")
    if len(encoded) % 2:
        encoded += b"\x00" if vr == "UI" else b" "
    return _header(tag, vr, len(encoded)) + encoded


def _number_element(tag: int, vr: str, numbers: list[Any]) -> bytes:
    """Binary numbers as ``write_numbers`` packs them (including its LUT Descriptor rule:
    the first value of a multi-valued SS descriptor is packed unsigned)."""
    code = values.NUMBER_FORMATS[vr]
    try:
        if code == "h" and tag in _LUT_DESCRIPTORS and len(numbers) > 1:
            packed = struct.pack("<H", numbers[0])
            packed += struct.pack(f"<{len(numbers) - 1}h", *numbers[1:])
        else:
            packed = struct.pack(f"<{len(numbers)}{code}", *numbers)
    except struct.error as exc:
        raise _Fallback from exc  # pydicom raises while writing
    return _header(tag, vr, len(packed)) + packed


def _tag_element(tag: int, tags: list[int]) -> bytes:
    packed = b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in tags)
    return _header(tag, "AT", len(packed)) + packed


def _written(elem: DataElement, encodings: str | list[str]) -> bytes:
    """One element as ``dcmwrite`` writes it into an Explicit VR Little Endian file."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, elem, encodings)
    return fp.getvalue()


@lru_cache(maxsize=256)
def _marks(pseudonym: str, charset: tuple[str, ...]) -> tuple[tuple[int, bytes], ...]:
    """The elements ``deid._mark`` sets (patient pseudonym, character set, the
    de-identification attributes), written by pydicom."""
    out = Dataset()
    _mark(out, pseudonym, list(charset))
    encodings = cast(str | list[str], out.get("SpecificCharacterSet", default_encoding))
    return tuple((int(elem.tag), _written(elem, encodings)) for elem in out)


@lru_cache(maxsize=64)
def _meta_parts(sop_class: str, syntax: UID, uid_length: int) -> tuple[bytes, bytes]:
    """Preamble, prefix and File Meta Information as ``deid_file`` writes them, split
    around the value of Media Storage SOP Instance UID (of ``uid_length`` characters)."""
    placeholder = "9" * uid_length
    empty = Dataset()
    empty.file_meta = new_file_meta(sop_class, placeholder, syntax)
    empty.preamble = PREAMBLE
    written = dataset_bytes(empty)
    pos = 132
    while pos + 8 <= len(written):
        group, element, vr, length = struct.unpack_from("<HH2sH", written, pos)
        header = 12 if vr.decode("ascii") in _LONG_VRS else 8
        if header == 12:
            (length,) = struct.unpack_from("<L", written, pos + 8)
        if (group, element) == (0x0002, _MEDIA_STORAGE_SOP_INSTANCE):
            start = pos + header
            expected = placeholder.encode("ascii") + b"\x00" * (uid_length % 2)
            if written[start : start + length] != expected:
                break
            return written[:start], written[start + length :]
        pos += header + length
    raise AssertionError("deid_file wrote no Media Storage SOP Instance UID")  # pragma: no cover


def _file_head(sop_class: str, instance_uid: str, syntax: UID) -> bytes:
    if not instance_uid.isascii():
        raise _Fallback
    before, after = _meta_parts(sop_class, syntax, len(instance_uid))
    padding = b"\x00" * (len(instance_uid) % 2)
    return before + instance_uid.encode("ascii") + padding + after


class _Run:
    """One call of ``deidentify_bytes``."""

    def __init__(self, buf: memoryview, part: Part10, keys: DeidKeys, limits: DeidLimits):
        self.buf, self.part, self.keys, self.limits = buf, part, keys, limits
        self.implicit = part.implicit_vr
        # The dataset as pydicom reads it (raw elements), for the steps reused from deid;
        # private elements left out: those steps read standard attributes only, and the
        # allowlist drops private ones by their tag.
        self.raws = {el.tag: self._raw(el) for el in part.elements if not el.tag >> 16 & 1}
        self.ds = Dataset({BaseTag(tag): raw for tag, raw in self.raws.items()})
        self.out: dict[int, tuple[Chunk, ...]] = {}
        self.removed = 0

    def _raw(self, el: Element) -> RawDataElement:
        """The element as pydicom's reader yields it (an undefined-length sequence keeps
        its items unparsed here; ``_undefined_sequence`` parses it when it is copied).
        Pixel Data stays a view on ``buf``: only ``_copied`` reads it, to copy it once."""
        if el.length == 0:
            value = cast(bytes | None, empty_value_for_VR(el.vr, raw=True))
        else:
            end = el.end - 8 if el.undefined_length else el.value + el.length
            view = self.buf[el.value : end]
            value = cast(bytes, view) if el.tag == _PIXEL_DATA else bytes(view)
        return RawDataElement(
            BaseTag(el.tag), el.vr, el.length, value, el.value, self.implicit, True
        )

    def outcome(self) -> FastOutcome:
        ds = self.ds
        if _SOP_CLASS not in self.raws or _SOP_INSTANCE not in self.raws:
            raise _Fallback  # the file meta stands in for them: the ordinary path
        charset = _charset(ds)  # first: pydicom may look it up while reading the others
        if len(charset) > 1 or not all(_ascii_charset(term) for term in charset):
            raise _Fallback
        sop_class = _sop_class(ds)
        codec = values.text_codec(charset)
        pseudonym = _pseudonym(ds, self.keys, codec)
        self.state = CopyState(
            keys=self.keys,
            shift_days=self.keys.date_shift_days(pseudonym),
            limits=self.limits,
            codec=codec,
            little_endian=True,
            pixel_representation=_number(ds, BaseTag(_PIXEL_REPRESENTATION), True),
            bits_allocated=_number(ds, BaseTag(_BITS_ALLOCATED), True),
        )
        self.encodings = charset[0] if charset else default_encoding
        for el in self.part.elements:
            self._copy(el)
        if _PIXEL_DATA not in self.out:
            raise _Fallback  # no Pixel Data: not an image, not for this path
        encapsulated = self.raws[_PIXEL_DATA].length == UNDEFINED
        syntax = output_transfer_syntax(self.part.transfer_syntax, encapsulated)
        self.out[_SOP_CLASS] = (_text_element(_SOP_CLASS, "UI", sop_class),)
        instance_uid = self._instance_uid()
        for tag, written in _marks(pseudonym, tuple(charset)):
            self.out[tag] = (written,)
        chunks: list[Chunk] = [_file_head(sop_class, instance_uid, syntax)]
        pixel_offset = -1
        for tag in sorted(self.out):
            parts = self.out[tag]
            if tag == _PIXEL_DATA:
                pixel_offset = sum(len(c) for c in chunks) + len(parts[0])
            chunks.extend(parts)
        pixel_length = len(self.out[_PIXEL_DATA][1])
        return FastOutcome(
            file_bytes=b"".join(chunks),
            patient_pseudonym=pseudonym,
            quarantine_reasons=quarantine_reasons(ds),
            removed_attributes=self.removed + self.state.removed,
            pixel_offset=pixel_offset,
            pixel_length=pixel_length,
        )

    def _instance_uid(self) -> str:
        """``deid._instance_uid``: the copied SOP Instance UID, else the replacement of the
        original (the file meta's is never needed here: the dataset has one)."""
        kept = self.out.get(_SOP_INSTANCE)
        if kept is not None:
            value = bytes(kept[0])[8:].rstrip(b"\x00").decode("ascii")
            if "\\" in value:
                raise _Fallback  # several values: the ordinary path does what it does
            if value:
                return value
        original = _string(self.ds, BaseTag(_SOP_INSTANCE), "UI")
        if not original:
            raise _Fallback
        instance_uid = self.keys.uid(original)
        self.out[_SOP_INSTANCE] = (_text_element(_SOP_INSTANCE, "UI", instance_uid),)
        return instance_uid

    def _copy(self, el: Element) -> None:
        """``deid_copy.copy_element`` for one top-level element, written into ``out``."""
        rule = _rule(el.tag)
        written = None if rule is None else self._copied(el, *rule)
        if written is None:
            self.removed += 1
        else:
            self.out[el.tag] = written

    def _copied(self, el: Element, keyword: str, dict_vr: str) -> tuple[Chunk, ...] | None:
        tag, raw = el.tag, self.raws[el.tag]
        if el.undefined_length and el.vr not in ("OB", "OW"):  # else encapsulated pixels
            return self._sequence(tag, self._undefined_sequence(el))
        if raw.value is None and (raw.VR == "UN" or (raw.VR is None and " or " in dict_vr)):
            raise _Fallback  # pydicom would convert it first (and change its VR)
        vr = _resolve_vr(raw, dict_vr, self.state)
        if vr is None or vr == "UN":
            return None
        if keyword in rules.ZERO_KEYWORDS:
            return (_header(tag, vr, 0),)
        if keyword in rules.DUMMY_KEYWORDS:
            return (_text_element(tag, vr, rules.DUMMY_TEXT),)
        if vr == "SQ":
            return self._sequence(tag, raw)
        if vr in BINARY_WORD:  # kept as they are (the source is little endian)
            data = raw.value or b""
            if len(data) % 2:
                data = bytes(data) + b"\x00"
            if el.undefined_length:  # encapsulated Pixel Data: fragment for fragment
                return _header(tag, vr, UNDEFINED), data, _SEQUENCE_DELIMITER
            return _header(tag, vr, len(data)), data
        value = _copy_value(keyword, vr, raw, self.state)
        if value is _DROP:
            return None
        if vr in values.NUMBER_FORMATS:
            return (_number_element(tag, vr, value),)
        if vr == "AT":
            return (_tag_element(tag, value),)
        return (_text_element(tag, vr, value),)

    def _undefined_sequence(self, el: Element) -> DataElement:
        """The sequence as pydicom's reader yields it: parsed, of undefined length."""
        data = bytes(self.buf[el.value : el.end])
        encodings = self._read_encodings()
        fp = io.BytesIO(data)
        try:
            items = read_sequence(fp, self.implicit, True, UNDEFINED, encodings, el.value)
        except Exception as exc:  # the walk accepted it, so pydicom should read it
            raise _Fallback from exc
        if fp.tell() != len(data):
            raise _Fallback
        return DataElement(BaseTag(el.tag), "SQ", items, el.value, is_undefined_length=True)

    def _read_encodings(self) -> str | list[str]:
        """What pydicom's reader passes to the items of a sequence as their encoding."""
        raw = self.raws.get(_CHARSET)
        if raw is None:
            return default_encoding
        return convert_encodings(convert_string(bytes(raw.value or b""), True))

    def _sequence(self, tag: int, elem: DataElement | RawDataElement) -> tuple[Chunk, ...] | None:
        """A sequence, copied by ``deid_copy.copy_element`` and written by pydicom."""
        key = BaseTag(tag)
        try:
            new = copy_element(key, Dataset({key: elem}), self.state, 0)
            return None if new is None else (_written(new, self.encodings),)
        except MedlabelError:
            raise
        except Exception as exc:  # pydicom could not read or write it
            raise _Fallback from exc
