"""argon2id with the production parameters, and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from medlabel.domain.errors import InvalidInput
from medlabel.services.passwords import Passwords, check_policy
from medlabel.settings import Settings


def test_production_defaults_hash_with_argon2id_64_mib() -> None:
    settings = Settings()
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    stored = passwords.hash("a long enough passphrase")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=2$")
    # An independent verifier (argon2-cffi's own, with its defaults) accepts the hash.
    assert PasswordHasher().verify(stored, "a long enough passphrase")
    assert passwords.verify(stored, "a long enough passphrase")
    assert not passwords.verify(stored, "a long enough passphrasE")


def test_unknown_users_are_checked_against_a_dummy_hash() -> None:
    passwords = Passwords(time_cost=1, memory_kib=8192, parallelism=1)
    assert passwords.verify(None, "medlabel-dummy-password-for-timing") is False
    assert passwords.verify("not a hash", "whatever") is False


def test_weaker_stored_hashes_are_flagged_for_rehash() -> None:
    weak = Passwords(time_cost=1, memory_kib=8192, parallelism=1)
    strong = Passwords()
    assert strong.needs_rehash(weak.hash("rehash me on next login"))
    assert not strong.needs_rehash(strong.hash("rehash me on next login"))


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("eleven char", "too_short"),
        ("x" * 1025, "too_long"),
        ("PASSWORD1234", "too_common"),
        ("abababababababab", "too_common"),
        ("my-name-is-annotator7-ok", "contains_username"),
    ],
)
def test_policy_refusals(password: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_policy(password, username="Annotator7")
    assert exc.value.errors[0]["problem"] == problem


def test_policy_accepts_a_passphrase() -> None:
    check_policy("correct horse battery staple", username="annotator7")
