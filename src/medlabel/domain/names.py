"""Validation and comparison of human-entered names (projects, classes, attributes, users).

Rules (SECURITY.md case 33): text is NFC-normalised and stripped; control, format
(bidi overrides, zero-width), surrogate, private-use and unassigned code points are
rejected; lengths are bounded. Names that must be unique are compared after
:func:`fold`, which applies NFKC, case folding and a confusable-skeleton map so that
``"L\\u0456ver"`` (with a Cyrillic small i) or ``"LIVER"`` collide with ``"liver"``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from medlabel.domain.errors import InvalidInput

_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_LINE_BREAKS = frozenset({"Zl", "Zp"})  # U+2028, U+2029: allowed only in multi-line text
_MULTILINE_ALLOWED = frozenset({"\n", "\t"})

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Latin look-alikes from Cyrillic and Greek (the usual homoglyph attacks on Latin names),
# written as escapes so the source itself stays unambiguous; digits that read as letters too.
_CONFUSABLES = str.maketrans(
    "\u0430\u0432\u0435\u0451\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445\u0456\u0457\u0458\u0455\u0501\u0261\u051b\u051d\u04cf\u0438\u043f\u03b1\u03b2\u03b5\u03b7\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03b3\u03c9"
    "01|",
    "abeekmhopctyxiijsdgqwlnnabenikvoptuxywoll",
)


def _offending(value: str, *, multiline: bool) -> str | None:
    for ch in value:
        if multiline and ch in _MULTILINE_ALLOWED:
            continue
        category = unicodedata.category(ch)
        if category in _FORBIDDEN_CATEGORIES or (not multiline and category in _LINE_BREAKS):
            return f"U+{ord(ch):04X}"
    return None


def clean_text(
    value: str, *, field: str, max_len: int, min_len: int = 1, multiline: bool = False
) -> str:
    """Return ``value`` NFC-normalised and stripped, or raise :class:`InvalidInput`."""
    text = unicodedata.normalize("NFC", value).strip()
    bad = _offending(text, multiline=multiline)
    if bad is not None:
        raise InvalidInput(
            f"{field} contains the control or invisible character {bad}; "
            "remove it and send plain text.",
            errors=[{"field": field, "problem": "forbidden_character", "char": bad}],
        )
    if len(text) < min_len:
        raise InvalidInput(
            f"{field} must not be empty."
            if min_len == 1
            else f"{field} must be at least {min_len} characters long.",
            errors=[{"field": field, "problem": "too_short", "min_length": min_len}],
        )
    if len(text) > max_len:
        raise InvalidInput(
            f"{field} is {len(text)} characters long; the limit is {max_len}.",
            errors=[{"field": field, "problem": "too_long", "max_length": max_len}],
        )
    return text


def fold(value: str) -> str:
    """A comparison key: NFKC, case-folded, whitespace-collapsed, confusables mapped."""
    text = unicodedata.normalize("NFKC", value).casefold()
    text = "".join(
        ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn"
    )
    text = text.translate(_CONFUSABLES)
    return " ".join(text.split())


def check_pattern(value: str, pattern: re.Pattern[str], *, field: str, rule: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInput(
            f"{field} {value[:80]!r} is not valid: {rule}.",
            errors=[{"field": field, "problem": "pattern", "rule": rule}],
        )
    return value


def check_slug(value: str, *, field: str = "slug") -> str:
    return check_pattern(
        value,
        SLUG_RE,
        field=field,
        rule="use 1-64 lower-case letters, digits and inner hyphens, e.g. 'chest-ct'",
    )


def check_username(value: str, *, field: str = "username") -> str:
    return check_pattern(
        value,
        USERNAME_RE,
        field=field,
        rule="use 3-64 lower-case letters, digits, '.', '_' or '-', starting and ending "
        "with a letter or digit",
    )


def slugify_key(name: str) -> str:
    """A stable machine key from a display name, e.g. ``'Lung nodule' -> 'lung_nodule'``.

    Names without Latin letters or digits (e.g. Japanese) get ``c_`` and a short hash of
    the NFC name, so two such classes still get distinct keys.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    key = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not key:
        digest = hashlib.sha256(unicodedata.normalize("NFC", name).encode()).hexdigest()
        return f"c_{digest[:12]}"
    if not key[0].isalpha():
        key = f"c_{key}"
    return key[:64]
