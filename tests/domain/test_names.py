"""Validation and comparison of human-entered names (SECURITY.md case 33)."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medlabel.domain.errors import InvalidInput
from medlabel.domain.names import (
    KEY_RE,
    check_slug,
    check_username,
    clean_text,
    fold,
    slugify_key,
)

FORBIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn"}


def problem(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, object]:
    [error] = exc.value.errors
    return error


# ---- clean_text -----------------------------------------------------------------------------


def test_clean_text_normalises_to_nfc_and_strips() -> None:
    assert clean_text("  Le\u0301sion \n", field="name", max_len=10) == "L\u00e9sion"
    assert clean_text("\ufb01le", field="name", max_len=10) == "\ufb01le"  # NFC keeps ligatures
    assert clean_text("<script>", field="name", max_len=10) == "<script>"  # not our job to encode


@pytest.mark.parametrize(
    "char",
    [
        "\u0000",
        "\u0007",
        "\u001b",
        "\u007f",
        "\u202e",
        "\u200b",
        "\u200d",
        "\u2066",
        "\ufeff",
        "\u00ad",
        "\ud800",
        "\ue000",
        "\U000f0000",
        "\u0378",
        "\r",
        "\n",
        "\t",
    ],
)
def test_clean_text_rejects_control_format_and_unassigned_characters(char: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        clean_text(f"a{char}b", field="classes[0].name", max_len=10)
    code = f"U+{ord(char):04X}"
    assert problem(exc) == {
        "field": "classes[0].name",
        "problem": "forbidden_character",
        "char": code,
    }
    assert code in exc.value.detail and "classes[0].name" in exc.value.detail


def test_multiline_text_allows_only_newline_and_tab() -> None:
    assert clean_text("a\n\tb", field="d", max_len=10, multiline=True) == "a\n\tb"
    for char in ("\r", "\u0000", "\u202e", "\u000b"):
        with pytest.raises(InvalidInput):
            clean_text(f"a{char}b", field="d", max_len=10, multiline=True)


def test_clean_text_length_limits_count_after_normalising() -> None:
    assert clean_text("e\u0301" * 3, field="n", max_len=3) == "\u00e9" * 3
    with pytest.raises(InvalidInput) as exc:
        clean_text("abcd", field="n", max_len=3)
    assert problem(exc) == {"field": "n", "problem": "too_long", "max_length": 3}
    with pytest.raises(InvalidInput) as exc:
        clean_text("   ", field="n", max_len=3)
    assert problem(exc) == {"field": "n", "problem": "too_short", "min_length": 1}
    assert clean_text("   ", field="n", max_len=3, min_len=0) == ""
    with pytest.raises(InvalidInput) as exc:
        clean_text("ab", field="n", max_len=9, min_len=3)
    assert "at least 3" in exc.value.detail
    with pytest.raises(InvalidInput):
        clean_text("x" * 1_000_000, field="n", max_len=128)


@settings(deadline=None, max_examples=300)
@given(st.text(), st.booleans())
def test_clean_text_output_is_always_safe(value: str, multiline: bool) -> None:
    try:
        out = clean_text(value, field="f", max_len=50, min_len=1, multiline=multiline)
    except InvalidInput as exc:
        assert exc.errors and exc.errors[0]["field"] == "f"
        return
    allowed = {"\n", "\t"} if multiline else set()
    assert all(unicodedata.category(c) not in FORBIDDEN or c in allowed for c in out)
    assert "\x00" not in out
    assert unicodedata.is_normalized("NFC", out)
    assert out == out.strip() and 1 <= len(out) <= 50
    assert clean_text(out, field="f", max_len=50, multiline=multiline) == out  # idempotent


@settings(deadline=None)
@given(
    st.characters(categories=["Cc", "Cf", "Co"], exclude_characters="\n\t"),
    st.text(alphabet=string.ascii_letters, min_size=1),
    st.booleans(),
)
def test_clean_text_rejects_any_inner_invisible_character(
    bad: str, word: str, multiline: bool
) -> None:
    with pytest.raises(InvalidInput) as exc:
        clean_text(f"{word}{bad}{word}", field="f", max_len=10_000, multiline=multiline)
    assert problem(exc)["char"] == f"U+{ord(bad):04X}"


# ---- fold ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "LIVER",
        "liver",
        "L\u0456ver",
        "\uff2c\uff49\uff56\uff45\uff52",
        "L\u00edv\u00e9r",
        "Li\u03bder",
        "  Liver ",
        "Li\u0301ver",
        "LIV\u0415R",
    ],
)
def test_fold_makes_look_alikes_collide(variant: str) -> None:
    assert fold(variant) == fold("Liver") == "liver"


def test_fold_keeps_different_names_apart() -> None:
    names = ["Liver", "Livers", "Lung", "Left lung", "Leftlung", "Kidney 2", "Kidney 3"]
    assert len({fold(n) for n in names}) == len(names)
    assert fold("Left   lung\t") == "left lung"
    assert fold("Stra\u00dfe") == fold("STRASSE")


LOOKALIKES = str.maketrans(
    "aeopcxyikmh", "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0456\u043a\u043c\u043d"
)


@settings(deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=40))
def test_fold_ignores_case_spacing_and_cyrillic_homoglyphs(name: str) -> None:
    expected = fold(name)
    assert fold(name.upper()) == expected
    assert fold(name.translate(LOOKALIKES)) == expected
    assert fold(name.translate(LOOKALIKES).upper()) == expected
    assert fold(f"  {name}  ") == expected
    assert expected == " ".join(expected.split())


# ---- slugs, usernames, keys -----------------------------------------------------------------


@pytest.mark.parametrize("slug", ["a", "chest-ct", "ct-2024-v2", "x" * 64, "0"])
def test_valid_slugs(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize(
    "slug",
    ["", "Chest", "-a", "a-", "a_b", "a b", "x" * 65, "a\u0000", "caf\u00e9", "a/b", "../x", "a\n"],
)
def test_invalid_slugs(slug: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_slug(slug, field="project.slug")
    assert problem(exc)["field"] == "project.slug"
    assert problem(exc)["problem"] == "pattern"


@pytest.mark.parametrize("name", ["bob", "jane.doe", "a_b-c", "x" * 64, "r2d"])
def test_valid_usernames(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize(
    "name",
    ["ab", "Bob", ".bob", "bob.", "bo b", "x" * 65, "b\u00f6b", "bob\u0000", "b@b"],
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_username(name)


@settings(deadline=None)
@given(st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", fullmatch=True))
def test_every_slug_matching_the_rule_is_accepted(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Lung nodule", "lung_nodule"),
        ("  Ground-glass opacity ", "ground_glass_opacity"),
        ("L\u00e9sion", "lesion"),
        ("123", "c_123"),
        ("", "c_e3b0c44298fc"),
        ("<script>alert(1)</script>", "script_alert_1_script"),
    ],
)
def test_slugify_key(name: str, key: str) -> None:
    assert slugify_key(name) == key


def test_names_without_latin_letters_get_distinct_keys() -> None:
    liver, lung = slugify_key("\u809d\u81d3"), slugify_key("\u80ba")  # Japanese "liver", "lung"
    assert liver.startswith("c_") and lung.startswith("c_") and liver != lung
    assert slugify_key("\u809d\u81d3") == liver  # stable


def test_line_separators_are_refused_in_names_but_kept_in_multiline_text() -> None:
    with pytest.raises(InvalidInput):
        clean_text("Lung\u2028nodule", field="name", max_len=100)
    assert clean_text("a\u2029b", field="description", max_len=100, multiline=True) == "a\u2029b"


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=200))
def test_slugify_key_always_gives_a_valid_key(name: str) -> None:
    key = slugify_key(name)
    assert KEY_RE.fullmatch(key), key
    assert slugify_key(name) == key
