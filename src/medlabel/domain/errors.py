"""One exception hierarchy for the whole application.

Every error carries the HTTP status it maps to, a stable machine-readable ``code`` and a
message that says what was wrong, on which object, and how to fix it. The web layer maps
these to ``application/problem+json`` responses in one place (``web/errors.py``).
"""

from __future__ import annotations

from typing import Any


class MedlabelError(Exception):
    """Base of all expected errors. Unexpected exceptions become a generic 500."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(MedlabelError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthenticated(MedlabelError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(MedlabelError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(MedlabelError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(MedlabelError):
    status = 409
    code = "conflict"
    title = "Conflict"


class TooLarge(MedlabelError):
    status = 413
    code = "too_large"
    title = "Request too large"


class Unsupported(MedlabelError):
    status = 415
    code = "unsupported"
    title = "Unsupported media type"


class InvalidInput(MedlabelError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class PreconditionRequired(MedlabelError):
    status = 428
    code = "precondition_required"
    title = "Precondition required"


class RateLimited(MedlabelError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})
        self.retry_after_s = retry_after_s
