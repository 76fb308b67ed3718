"""Shared pieces of the request and response models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from medlabel.domain.errors import InvalidInput, PreconditionRequired


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused (no mass assignment), NaN/inf too, and no
    string anywhere in the body may contain NUL (PostgreSQL cannot store it)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _contains_nul(value):
            raise PydanticCustomError(
                "forbidden_character",
                "contains the control character {char}; remove it and send plain text",
                {"char": "U+0000"},
            )
        return value


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_contains_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    return False


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserOut(ResponseModel):
    username: str
    display_name: str
    is_admin: bool
    is_active: bool


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat(timespec="seconds") + "Z" if ts else None


_ETAG_VERSION = re.compile(r'^(?:W/)?"v(\d{1,9})"$')


def base_version(if_match: str | None, body_version: int | None) -> int:
    """The version an edit builds on, from ``If-Match: "v3"`` or the body's ``base_version``."""
    header_version = None
    if if_match is not None:
        match = _ETAG_VERSION.fullmatch(if_match.strip())
        if match is None:
            raise InvalidInput('If-Match must be the ETag you read, e.g. "v3".')
        header_version = int(match.group(1))
    if header_version is not None and body_version is not None and header_version != body_version:
        raise InvalidInput("If-Match and base_version disagree; send one of them.")
    version = header_version if header_version is not None else body_version
    if version is None:
        raise PreconditionRequired(
            "Say which version your edit builds on: send If-Match with the ETag you read "
            '(e.g. "v3") or base_version in the body (0 for the first version).'
        )
    return version


def etag(version: int) -> str:
    return f'"v{version}"'
