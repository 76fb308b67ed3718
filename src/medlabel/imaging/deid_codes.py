"""Coded concepts under Clean Structured Content: what of a code sequence item may stay.

A code (Code Value, Coding Scheme Designator, Code Meaning) is how SEG, SR and the
functional groups say *what* something is, so it is kept, but each of its three texts could
carry a name in a hand-made or hostile file. The rules:

- Coding Scheme Designator and Code Value are kept when they are *code-shaped*: 1 to 16
  characters of letters, digits and ``. _ - : [ ] { } ' / * ^`` with no space. A Code Value
  that is not in the standard's concept dictionary (a code of a ``99...`` private scheme,
  ``SRT``, ``TEST``) must also contain a digit or be a common unit (``cm``, ``mm2``,
  ``{ratio}``), so a bare word such as a surname is not taken for a code. Any UCUM code is
  code-shaped by itself.
- Code Meaning is kept when the code is in the standard's concept dictionary (PS3.16, as
  shipped with pydicom: DCM, SCT, UCUM, LN, FMA, NCIt, RADLEX, ...) and the meaning is one of
  the dictionary's (letter case and spaces aside); a known code with another meaning gets the
  dictionary's. For an unknown code the meaning is cleaned through the descriptor
  vocabulary; when nothing is left, the (vetted) Code Value stands in for it.
- An item whose Code Value or designator is not code-shaped is dropped as a whole, and so
  is one coded by Long Code Value or URN Code Value only (neither is copied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import cast

from medlabel.imaging.deid_vocabulary import clean_descriptor

_CODE_SHAPED = re.compile(r"[A-Za-z0-9._\-:\[\]{}'/*^%]{1,16}")
_HAS_DIGIT = re.compile(r"\d")
# Units a private scheme may spell without a digit (UCUM spellings, case-sensitive).
_UNITS = frozenset(
    {
        *("mm", "cm", "m", "um", "mm2", "cm2", "m2", "mm3", "cm3", "ml", "mL", "l", "L"),
        *("s", "ms", "us", "min", "h", "d", "wk", "mo", "a", "%", "deg", "rad", "{ratio}"),
        *("kg", "g", "mg", "Bq", "kBq", "MBq", "GBq", "mCi", "[hnsf'U]", "{counts}", "Sv"),
        *("mSv", "Gy", "mGy", "kV", "mA", "mAs", "T", "Hz", "kHz", "MHz", "cm/s", "mm/s"),
        *("m/s", "mmHg", "/min", "{beats}/min", "mL/s", "g/mL", "mg/mL", "1"),
    }
)
MAX_MEANING_CHARS = 64  # LO


@dataclass(frozen=True)
class CleanCode:
    """The kept parts of one code item."""

    value: str
    scheme: str
    meaning: str


@cache
def _dictionary() -> dict[tuple[str, str], tuple[str, ...]]:
    """(scheme, code value) -> the standard meanings, from pydicom's PS3.16 tables.

    Built on first use (about half a second), not at import time.
    """
    from pydicom.sr._concepts_dict import concepts

    schemes = cast(dict[str, dict[str, dict[str, tuple[str, list[int]]]]], concepts)
    table: dict[tuple[str, str], list[str]] = {}
    for scheme, by_keyword in schemes.items():
        for codes in by_keyword.values():
            for value, (meaning, _cids) in codes.items():
                table.setdefault((scheme, value), []).append(meaning)
    return {key: tuple(meanings) for key, meanings in table.items()}


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _value_ok(value: str, scheme: str) -> bool:
    if _CODE_SHAPED.fullmatch(value) is None:
        return False
    if (scheme, value) in _dictionary() or scheme == "UCUM" or value in _UNITS:
        return True
    return _HAS_DIGIT.search(value) is not None


def _meaning(value: str, scheme: str, meaning: str) -> str:
    standard = [m for m in _dictionary().get((scheme, value), ()) if m.isascii()]
    if standard:
        wanted = _normal(meaning)
        return next((m for m in standard if _normal(m) == wanted), standard[0])[:MAX_MEANING_CHARS]
    cleaned = clean_descriptor(meaning, MAX_MEANING_CHARS)
    return cleaned or value


def clean_code(value: str, scheme: str, meaning: str) -> CleanCode | None:
    """The kept code, or ``None`` when the item must go; see the module for the rules."""
    if _CODE_SHAPED.fullmatch(scheme) is None or not _value_ok(value, scheme):
        return None
    return CleanCode(value=value, scheme=scheme, meaning=_meaning(value, scheme, meaning))
