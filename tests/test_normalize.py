"""Tests for digit folding, the Luhn check and mobile-number normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import (
    ACCEPTED_SEPARATORS,
    ARABIC_INDIC_DIGITS,
    ASCII_DIGITS,
    DIGIT_LOOKALIKES,
    EXTENDED_ARABIC_INDIC_DIGITS,
    FOREIGN_DIGIT_SAMPLES,
    MAX_INPUT_LENGTH,
    ascii_digit_strings,
    ascii_msisdn_forms,
    canonical_msisdns,
    human_renderings,
    junk_characters,
    junk_text,
    luhn_check_digit,
    luhn_identifiers,
    national_ids,
    non_digit_characters,
    non_str_values,
    typed_msisdns,
    with_one_inserted,
)

from telecard_auth import InvalidInput, InvalidMsisdn, fold_digits, luhn_valid, normalize_msisdn
from telecard_auth._core.normalize import MAX_INPUT_LENGTH as LIBRARY_MAX_INPUT_LENGTH

# --- fold_digits ---------------------------------------------------------------------------------


def test_fold_digits_translates_arabic_indic_digits() -> None:
    """The ten Arabic-Indic digits U+0660-0669 become 0-9 in order."""
    assert ASCII_DIGITS == fold_digits(ARABIC_INDIC_DIGITS)


def test_fold_digits_translates_extended_arabic_indic_digits() -> None:
    """The ten Extended Arabic-Indic digits U+06F0-06F9 become 0-9 in order."""
    assert ASCII_DIGITS == fold_digits(EXTENDED_ARABIC_INDIC_DIGITS)


def test_fold_digits_brief_example() -> None:
    """An Arabic-Indic national ID with a space and a hyphen folds to its ASCII digits."""
    assert "1000000008" == fold_digits("١٠٠٠ ٠٠٠-٠٠٨")


@pytest.mark.parametrize("separator", ACCEPTED_SEPARATORS)
def test_fold_digits_drops_each_separator(separator: str) -> None:
    """Every accepted separator (spaces, hyphens, direction marks) is removed wherever it is."""
    assert "0551234567" == fold_digits(f"{separator}055{separator}123{separator}4567{separator}")


def test_fold_digits_leaves_ascii_text_alone() -> None:
    """ASCII digits, letters and '+' pass through unchanged."""
    assert "+966abcXYZ0123456789" == fold_digits("+966abcXYZ0123456789")


@pytest.mark.parametrize("char", list(FOREIGN_DIGIT_SAMPLES + DIGIT_LOOKALIKES + "_+\x00\u200b"))
def test_fold_digits_leaves_other_digits_and_junk_alone(char: str) -> None:
    """Foreign digits, superscripts, '_', '+', NUL and a zero-width space are not translated."""
    assert f"1{char}2" == fold_digits(f"1{char}2")


@given(non_digit_characters())
def test_fold_digits_changes_nothing_outside_its_two_digit_sets(char: str) -> None:
    """fold_digits never translates or drops a character outside the digit sets and separators."""
    assert char == fold_digits(char)


@given(
    ascii_digit_strings(max_size=20).flatmap(
        lambda value: st.tuples(st.just(value), human_renderings(value))
    )
)
def test_fold_digits_undoes_any_human_rendering(pair: tuple[str, str]) -> None:
    """Any mix of the three digit scripts with separators folds back to the ASCII digits."""
    ascii_value, rendered = pair
    assert ascii_value == fold_digits(rendered)


# --- luhn_valid ----------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["1000000008", "1110704341", "1909266858", "2129040479"])
def test_luhn_accepts_brief_examples(identifier: str) -> None:
    """The brief's synthetic valid IDs pass the Luhn check."""
    assert luhn_valid(identifier) is True


@pytest.mark.parametrize("identifier", ["1234567890", "2111111111"])
def test_luhn_refuses_brief_counter_examples(identifier: str) -> None:
    """The brief's invalid IDs fail the Luhn check."""
    assert luhn_valid(identifier) is False


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        # Valid only if the check digit itself were doubled: the wrong positions.
        ("1000000009", False),
        ("1000000008", True),
        ("79927398713", True),  # the classic example, odd length
        ("79927398710", False),
    ],
)
def test_luhn_doubles_from_the_right(identifier: str, expected: bool) -> None:
    """Every second digit is doubled counting leftwards from the check digit, not from the left."""
    assert expected == luhn_valid(identifier)


@given(luhn_identifiers())
def test_luhn_accepts_independently_built_identifiers(identifier: str) -> None:
    """An ID whose check digit was computed by the strategy's own Luhn table passes."""
    assert luhn_valid(identifier) is True


@given(ascii_digit_strings(min_size=9, max_size=9))
def test_luhn_exactly_one_check_digit_fits(payload: str) -> None:
    """For any 9-digit payload exactly one of the ten check digits passes, the computed one."""
    passing = [digit for digit in ASCII_DIGITS if luhn_valid(payload + digit)]
    assert [luhn_check_digit(payload)] == passing


@given(
    national_ids(),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=1, max_value=9),
)
def test_luhn_catches_every_single_digit_error(identifier: str, position: int, shift: int) -> None:
    """Changing any one digit of a valid national ID to any other digit fails the check."""
    changed_digit = str((int(identifier[position]) + shift) % 10)
    changed = identifier[:position] + changed_digit + identifier[position + 1 :]
    assert changed != identifier
    assert luhn_valid(changed) is False


@given(national_ids(), st.integers(min_value=0, max_value=8))
def test_luhn_catches_adjacent_transpositions(identifier: str, position: int) -> None:
    """Swapping two adjacent different digits fails the check, except the known 09/90 blind spot."""
    first, second = identifier[position], identifier[position + 1]
    swapped = identifier[:position] + second + first + identifier[position + 2 :]
    expected = first == second or {first, second} == {"0", "9"}
    assert expected == luhn_valid(swapped)


# --- normalize_msisdn: accepted ----------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "0551234567",
        "551234567",
        "+966551234567",
        "00966551234567",
        "966551234567",
        "055 123 4567",
        "055-123-4567",
        "+966 55 123 4567",
        "\u200e+966551234567\u200f",
        "\u061c0551234567",
        "٠٥٥١٢٣٤٥٦٧",
        "٠٥٥ ١٢٣ ٤٥٦٧",
        "۰۵۵۱۲۳۴۵۶۷",
        "+٩٦٦٥٥١٢٣٤٥٦٧",
        "٠٠٩٦٦٥٥١٢٣٤٥٦٧",
        "٩٦٦ ٥٥١ ٢٣٤ ٥٦٧",
        "٥٥١٢٣٤٥٦٧",
        "05٥1۲3٤5۶7",
    ],
)
def test_normalize_msisdn_accepts_every_form(typed: str) -> None:
    """Each accepted form, in any digit script and with separators, gives the E.164 form."""
    assert "+966551234567" == normalize_msisdn(typed)


@given(ascii_msisdn_forms())
def test_normalize_msisdn_ascii_forms(pair: tuple[str, str]) -> None:
    """Every accepted ASCII form of any mobile number normalises to its canonical form."""
    form, canonical = pair
    assert canonical == normalize_msisdn(form)


@given(typed_msisdns())
def test_normalize_msisdn_as_people_type_it(pair: tuple[str, str]) -> None:
    """Mixed digit scripts and sprinkled separators normalise to the same canonical form."""
    typed, canonical = pair
    assert canonical == normalize_msisdn(typed)


@given(
    ascii_msisdn_forms().flatmap(
        lambda pair: st.tuples(st.just(pair[0]), human_renderings(pair[0], ascii_digits=False))
    )
)
def test_arabic_indic_rendering_normalises_like_ascii(pair: tuple[str, str]) -> None:
    """A number written wholly in Arabic-Indic digits gives what its ASCII form gives."""
    ascii_form, rendered = pair
    assert not set(rendered) & set(ASCII_DIGITS)
    assert normalize_msisdn(ascii_form) == normalize_msisdn(rendered)


@given(canonical_msisdns())
def test_normalize_msisdn_is_idempotent(canonical: str) -> None:
    """The canonical form normalises to itself."""
    assert canonical == normalize_msisdn(canonical)


def test_normalize_msisdn_reads_exactly_the_input_limit() -> None:
    """A valid number padded with spaces to exactly 64 characters is still read."""
    typed = "0551234567".ljust(MAX_INPUT_LENGTH)
    assert 64 == len(typed)
    assert "+966551234567" == normalize_msisdn(typed)


def test_strategy_input_limit_matches_library() -> None:
    """The strategies' idea of the input limit is the library's."""
    assert MAX_INPUT_LENGTH == LIBRARY_MAX_INPUT_LENGTH


# --- normalize_msisdn: refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "0",
        "+",
        "+966",
        "0451234567",  # landline-like prefix
        "0651234567",
        "451234567",
        "+966451234567",
        "+971551234567",  # another country
        "0971551234567",
        "055123456",  # 05 + 7 digits
        "05512345",
        "55123456",  # 5 + 7 digits
        "05512345678",  # one digit too many
        "5512345678",
        "+9660551234567",  # trunk zero kept after the country code
        "966 0 55 123 4567",
        "0966551234567",
        "000966551234567",
        "+00966551234567",
        "++966551234567",
        "966+551234567",
        "0551234567+",
        "+0551234567",
        "O551234567",  # capital letter O
        "055123456l",  # letter l
        "0551234abc",
        "055_123_4567",
        "05512345\u00b27",  # superscript two
        "\u0966\u096b\u096b\u0967\u0968\u0969\u096a\u096b\u096c\u096d",  # Devanagari
        "\u09e6\u09eb\u09eb\u09e7\u09e8\u09e9\u09ea\u09eb\u09ec\u09ed",  # Bengali
        "\uff10\uff15\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth
        "0551234567\x00",
        "\x000551234567",
        "0551234567\n",
        "\t0551234567",
        "055\u200b1234567",  # zero-width space is not an accepted separator
        "055\u20131234567",  # en dash
        "055.123.4567",
        "(055) 123 4567",
        "0551234567".ljust(MAX_INPUT_LENGTH + 1),
        "9" * 1000,
    ],
)
def test_normalize_msisdn_refuses(typed: str) -> None:
    """Wrong prefixes, wrong lengths, letters, foreign digits, signs and junk are refused."""
    with pytest.raises(InvalidMsisdn) as excinfo:
        normalize_msisdn(typed)
    assert "invalid_msisdn" == excinfo.value.code


@pytest.mark.parametrize(
    "value",
    [551234567, 966551234567, 5.51234567e8, b"0551234567", bytearray(b"0551234567"), None, True],
)
def test_normalize_msisdn_refuses_non_str(value: object) -> None:
    """Ints, floats, bytes, None and bools are refused, never converted."""
    with pytest.raises(InvalidMsisdn) as excinfo:
        normalize_msisdn(value)
    assert "invalid_msisdn" == excinfo.value.code


@given(non_str_values())
def test_normalize_msisdn_refuses_any_non_str(value: object) -> None:
    """No value that is not a str is ever accepted."""
    with pytest.raises(InvalidMsisdn):
        normalize_msisdn(value)


@given(junk_text())
def test_normalize_msisdn_refuses_junk(text: str) -> None:
    """Junk text (foreign digits, controls, oversized strings, bare signs) is always refused."""
    with pytest.raises(InvalidMsisdn):
        normalize_msisdn(text)


@given(typed_msisdns().flatmap(lambda pair: with_one_inserted(pair[0], non_digit_characters())))
def test_normalize_msisdn_never_accepts_a_foreign_character(typed: str) -> None:
    """A character outside ASCII digits, the Arabic-Indic sets and separators spoils a number."""
    with pytest.raises(InvalidMsisdn):
        normalize_msisdn(typed)


@given(ascii_msisdn_forms(), st.integers(min_value=1, max_value=20))
def test_normalize_msisdn_refuses_plus_after_the_start(
    pair: tuple[str, str], position: int
) -> None:
    """'+' is accepted only as the first character of the +966 form."""
    form = pair[0]
    index = min(position, len(form))
    with pytest.raises(InvalidMsisdn):
        normalize_msisdn(form[:index] + "+" + form[index:])


@given(canonical_msisdns().flatmap(lambda value: with_one_inserted(value, junk_characters())))
def test_msisdn_error_is_an_invalid_input(typed: str) -> None:
    """The refusal belongs to the InvalidInput family and is a ValueError."""
    with pytest.raises(InvalidMsisdn) as excinfo:
        normalize_msisdn(typed)
    assert isinstance(excinfo.value, InvalidInput)
    assert isinstance(excinfo.value, ValueError)


def test_msisdn_error_does_not_echo_the_number() -> None:
    """The error message never repeats the number that was typed."""
    with pytest.raises(InvalidMsisdn) as excinfo:
        normalize_msisdn("0451234567")
    assert "0451234567" not in str(excinfo.value)
    assert "0451234567" not in repr(excinfo.value)
