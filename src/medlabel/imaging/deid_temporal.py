"""Dates, date-times, times and ages under Retain Longitudinal Temporal Information with
Modified Dates and Retain Patient Characteristics (PS3.15 E.3.6, E.3.7).

Conventions:

- A patient's dates all move by the same whole number of days (``DeidKeys.date_shift_days``),
  so every interval between two of them is kept exactly, and so is every date + time pair:
  times (TM) are kept as they are, and a date-time (DT) keeps its time of day, fraction and
  UTC offset while its date part moves. Shifting by whole days never crosses midnight.
- A DT given to the year (``YYYY``) or month (``YYYYMM``) is shifted from its first day and
  written back with the same precision.
- Values are parsed strictly; a value that is not a valid DA/DT/TM/AS (``20231340``,
  ``"yesterday"``) gives ``None`` and the caller drops the attribute. The legacy ACR-NEMA
  forms ``YYYY.MM.DD`` and ``HH:MM:SS`` are read and written back in the DICOM form.
- Ages over 89 years are written as ``090Y`` (HIPAA Safe Harbor: "ages over 89" aggregate
  to 90 or older). Ages in days, weeks or months are never that old (``999M`` is 83 years).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

_DA = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DA_LEGACY = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_DT = re.compile(
    r"(?P<y>\d{4})(?:(?P<m>\d{2})(?:(?P<d>\d{2})"
    r"(?P<time>(?P<hh>\d{2})(?:(?P<mm>\d{2})(?:(?P<ss>\d{2})(?P<frac>\.\d{1,6})?)?)?)?)?)?"
    r"(?P<tz>[+-]\d{4})?"
)
_TM = re.compile(r"(\d{2})(?:(\d{2})(?:(\d{2})(\.\d{1,6})?)?)?")
_TM_LEGACY = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?")
_AS = re.compile(r"(\d{3})([DWMY])")
MAX_AGE_YEARS = 89
CAPPED_AGE = "090Y"


def _shift(day: date, days: int) -> date | None:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return None


def _date(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def shift_date(value: str, days: int) -> str | None:
    """A DA value moved by ``days``; ``""`` stays ``""``; ``None`` if not a valid date."""
    if value == "":
        return ""
    match = _DA.fullmatch(value) or _DA_LEGACY.fullmatch(value)
    if match is None:
        return None
    parsed = _date(*match.groups())
    moved = _shift(parsed, days) if parsed else None
    return None if moved is None else f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"


def _valid_time(hh: str | None, mm: str | None, ss: str | None) -> bool:
    limits = ((hh, 24), (mm, 60), (ss, 61))  # 60 is a leap second
    return all(part is None or int(part) < limit for part, limit in limits)


def _valid_offset(tz: str | None) -> bool:
    if tz is None:
        return True
    hours, minutes = int(tz[1:3]), int(tz[3:5])
    return hours <= 14 and minutes < 60


def shift_datetime(value: str, days: int) -> str | None:
    """A DT value with its date part moved by ``days`` and the rest kept; see the module."""
    if value == "":
        return ""
    match = _DT.fullmatch(value)
    if match is None:
        return None
    g = match.groupdict()
    if not _valid_time(g["hh"], g["mm"], g["ss"]) or not _valid_offset(g["tz"]):
        return None
    parsed = _date(g["y"], g["m"] or "01", g["d"] or "01")
    moved = _shift(parsed, days) if parsed else None
    if moved is None:
        return None
    head = f"{moved.year:04d}"
    head += f"{moved.month:02d}" if g["m"] else ""
    head += f"{moved.day:02d}" if g["d"] else ""
    return head + (g["time"] or "") + (g["tz"] or "")


def clean_time(value: str) -> str | None:
    """A valid TM value as it is (legacy ``HH:MM:SS`` rewritten); ``None`` if invalid."""
    if value == "":
        return ""
    match = _TM.fullmatch(value)
    if match is not None:
        hh, mm, ss, _ = match.groups()
        return value if _valid_time(hh, mm, ss) else None
    legacy = _TM_LEGACY.fullmatch(value)
    if legacy is None or not _valid_time(*legacy.groups()[:3]):
        return None
    hh, mm, ss, frac = legacy.groups()
    return hh + mm + (ss or "") + (frac or "")


def cap_age(value: str) -> str | None:
    """An AS value with ages over 89 years written as ``090Y``; ``None`` if invalid."""
    if value == "":
        return ""
    match = _AS.fullmatch(value)
    if match is None:
        return None
    number, unit = match.groups()
    if unit == "Y" and int(number) > MAX_AGE_YEARS:
        return CAPPED_AGE
    return value
