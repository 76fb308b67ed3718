"""Tolerant access to DICOM element values: ``None`` for anything absent or unreadable.

Plain text and binary numbers are read from the raw bytes (no character set, no pydicom
validation); other values go through pydicom's conversion, whose failures become ``None``.
Call these inside ``dicom_limits.quiet`` (pydicom warns about invalid values, quoting them).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import MutableSequence
from typing import Any

from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]


@functools.lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str | None:
    """The public dictionary's VR of ``tag`` (memoised: pure, bounded)."""
    return dictionary_VR(tag) if dictionary_has_tag(tag) else None


def get_value(ds: Dataset | None, tag: int) -> Any:
    """The value of ``tag`` in ``ds``; None if absent or unreadable."""
    key = BaseTag(tag)
    if ds is None or key not in ds:  # cheaper than pydicom's KeyError path
        return None
    try:
        raw = ds.get_item(key)
        if isinstance(raw, RawDataElement) and raw.value is not None:
            vr = raw.VR if raw.VR not in (None, "UN") else dictionary_vr(tag)
            if vr in _PLAIN_TEXT_VRS:  # ASCII by definition: no charset, no validation
                return _plain_text(raw.value)
            if vr in _BINARY_VRS:
                return _binary(raw.value, _BINARY_VRS[vr], raw.is_little_endian)
        return ds[key].value
    except Exception:
        return None


_PLAIN_TEXT_VRS = frozenset({"AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}


def _plain_text(value: bytes) -> Any:
    """A raw text value as pydicom gives it: a string, or a list for several values."""
    parts = value.decode("ascii", "replace").split("\\")
    return parts[0] if len(parts) == 1 else parts


def _binary(value: bytes, code: str, little: bool) -> Any:
    count = len(value) // struct.calcsize(code)
    numbers = struct.unpack_from(f"{'<' if little else '>'}{count}{code}", value)
    return None if not numbers else numbers[0] if count == 1 else list(numbers)


def as_dataset(value: Any) -> Dataset | None:
    return value if isinstance(value, Dataset) else None


def first_item(ds: Dataset | None, tag: int) -> Dataset | None:
    value = get_value(ds, tag)
    return as_dataset(value[0]) if is_multi(value) and value else None


def is_multi(value: Any) -> bool:
    """A multi-valued element value or a sequence (pydicom's are not lists)."""
    return isinstance(value, MutableSequence | tuple | list)


def first_value(value: Any) -> Any:
    if is_multi(value):
        return value[0] if value else None
    return value


def as_text(value: Any) -> str | None:
    value = first_value(value)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip("\x00 \t\r\n")
    return text or None


def as_upper(value: Any) -> str | None:
    text = as_text(value)
    return text.upper() if text else None


def as_texts(value: Any) -> tuple[str, ...]:
    values = value if is_multi(value) else [value]
    return tuple(t.upper() for t in (as_text(v) for v in values) if t)


def as_yes_no(value: Any) -> str | None:
    text = as_upper(value)
    return text if text in ("YES", "NO") else None


def as_number(value: Any) -> float | None:
    value = first_value(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.decode("ascii") if isinstance(value, bytes) else value)
    except (TypeError, ValueError, UnicodeDecodeError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def as_numbers(value: Any) -> list[float | None]:
    values = value if is_multi(value) else [] if value is None else [value]
    return [as_number(v) for v in values]


def as_int(value: Any) -> int | None:
    value = first_value(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    number = as_number(value)
    return int(number) if number is not None and number.is_integer() else None


def positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def as_floats(value: Any, count: int) -> tuple[float, ...] | None:
    values = as_numbers(value)
    if len(values) != count or any(v is None for v in values):
        return None
    return tuple(v for v in values if v is not None)


def as_vec3(value: Any) -> Vec3 | None:
    v = as_floats(value, 3)
    return (v[0], v[1], v[2]) if v else None


def as_orientation(value: Any) -> Orientation | None:
    v = as_floats(value, 6)
    return (v[0], v[1], v[2], v[3], v[4], v[5]) if v else None


def as_pair(value: Any) -> tuple[float, float] | None:
    v = as_floats(value, 2)
    return (v[0], v[1]) if v and v[0] > 0 and v[1] > 0 else None
