"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medlabel.domain.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1024

# The most common passwords that pass the length rule; a breached-password list can be
# configured later, but these are refused everywhere.
_COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiop12",
        "passwordpassword",
        "iloveyou1234",
        "administrator",
        "changemechangeme",
        "letmeinletmein",
        "welcome12345",
        "medlabel1234",
        "1234567890123",
        "qwerty123456",
        "password12345",
        "abc123456789",
        "000000000000",
    }
)


class Passwords:
    def __init__(
        self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 2
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against when the user does not exist, so both cases cost the same.
        self._dummy = self._hasher.hash("medlabel-dummy-password-for-timing")

    def hash(self, password: str) -> str:
        return str(self._hasher.hash(password))

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored_hash or self._dummy, password)) and (
                stored_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return bool(self._hasher.check_needs_rehash(stored_hash))


def check_policy(password: str, *, username: str) -> None:
    """Raise InvalidInput unless the password is long, not common and not the username."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"The password is too short: use at least {MIN_LENGTH} characters "
            "(a passphrase of several words works well).",
            errors=[{"field": "password", "problem": "too_short", "min_length": MIN_LENGTH}],
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            f"The password is longer than {MAX_LENGTH} characters.",
            errors=[{"field": "password", "problem": "too_long"}],
        )
    lowered = password.casefold()
    if lowered in _COMMON or len(set(password)) < 4:
        raise InvalidInput(
            "This password is too common or too repetitive; choose another.",
            errors=[{"field": "password", "problem": "too_common"}],
        )
    if username.casefold() in lowered:
        raise InvalidInput(
            "The password must not contain the username.",
            errors=[{"field": "password", "problem": "contains_username"}],
        )
