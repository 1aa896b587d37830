"""Shared Hypothesis strategies for the telecard_auth test suite.

Every strategy builds its values independently of the library: check digits are computed here with
our own Luhn table, canonical mobile numbers are assembled here, and "junk" is chosen so that no
rule of the library could ever accept it. Import them as ``from tests.strategies import ...``.

Naming: a strategy named after a noun in the plural (``national_ids()``) draws *valid* values of
that noun; ``junk_*`` and ``non_*`` strategies draw values that must always be refused.
"""

from __future__ import annotations

import hashlib
import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from telecard_auth import (
    DEFAULT_SERVICES,
    SAUDI_PROVIDERS,
    CodeFormat,
    Subject,
    SubjectKind,
)

__all__ = [
    "ACCEPTED_SEPARATORS",
    "ARABIC_INDIC_DIGITS",
    "ASCII_DIGITS",
    "BRIEF_SEPARATORS",
    "DIGIT_LOOKALIKES",
    "EXTENDED_ARABIC_INDIC_DIGITS",
    "FOREIGN_DIGIT_SAMPLES",
    "MAX_INPUT_LENGTH",
    "MOBILE_PREFIXES",
    "ascii_digit_strings",
    "ascii_msisdn_forms",
    "aware_datetimes",
    "canonical_msisdns",
    "code_formats",
    "codes_for",
    "company_numbers",
    "eligible_subjects",
    "fixed_offset_timezones",
    "foreign_digits",
    "government_identifiers",
    "hmac_secrets",
    "human_renderings",
    "iqamas",
    "junk_characters",
    "junk_text",
    "key_ids",
    "luhn_check_digit",
    "luhn_identifiers",
    "mobile_subscriber_numbers",
    "naive_datetimes",
    "national_ids",
    "non_digit_characters",
    "non_str_values",
    "oversized_text",
    "provider_ids",
    "service_ids",
    "short_secrets",
    "subject_kinds",
    "subjects",
    "typed_msisdns",
    "weak_secrets",
    "with_one_inserted",
]

ASCII_DIGITS = "0123456789"
#: U+0660-0669, the digits most Arabic keyboards type.
ARABIC_INDIC_DIGITS = "".join(chr(0x0660 + value) for value in range(10))
#: U+06F0-06F9, the digits Persian and Urdu keyboards type.
EXTENDED_ARABIC_INDIC_DIGITS = "".join(chr(0x06F0 + value) for value in range(10))

#: The separators the brief names: space, hyphen-minus, LRM, RLM, Arabic letter mark.
BRIEF_SEPARATORS = (" ", "-", "\u200e", "\u200f", "\u061c")
#: Every separator the library strips: the brief's, plus no-break space and two Unicode hyphens
#: (U+2010 hyphen, U+2011 non-breaking hyphen), which the library documents as accepted too.
ACCEPTED_SEPARATORS = (*BRIEF_SEPARATORS, "\u00a0", "\u2010", "\u2011")

#: Longest raw input the library reads (mirrors ``telecard_auth._core.normalize.MAX_INPUT_LENGTH``).
MAX_INPUT_LENGTH = 64

#: The ways a Saudi mobile number may start before its nine subscriber digits ``5XXXXXXXX``.
MOBILE_PREFIXES = ("0", "", "+966", "00966", "966")

#: Decimal digits of other scripts that ``int()`` and ``\\d`` accept but the library must not.
FOREIGN_DIGIT_SAMPLES = (
    "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f"  # Devanagari
    "\u09e6\u09e7\u09e8\u09e9\u09ea\u09eb\u09ec\u09ed\u09ee\u09ef"  # Bengali
    "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"  # fullwidth
    "\u0e50\u0e55\u0e59"  # Thai
    "\U0001d7ce\U0001d7d8\U0001d7ff"  # mathematical bold / double-struck / monospace
    "\u07c0\u07c5"  # NKo
)
#: Characters that look like or count as digits for ``str.isdigit()``/``isnumeric()`` but are not.
DIGIT_LOOKALIKES = "\u00b2\u00b3\u00b9\u2070\u2074\u2082\u2460\u2474\u00bd\u2167\u3007"

#: Every character that may appear in an accepted mobile number or decimal code, before folding.
_DIGIT_INPUT_CHARACTERS = frozenset(
    ASCII_DIGITS
    + ARABIC_INDIC_DIGITS
    + EXTENDED_ARABIC_INDIC_DIGITS
    + "+"
    + "".join(ACCEPTED_SEPARATORS)
)
#: Notable refusals, drawn often so they are not left to chance.
_NOTABLE_JUNK = (
    "_",  # int("1_000") == 1000
    "\x00",
    "\t",
    "\n",
    "\r",
    "\x7f",
    "\u200b",  # zero-width space: not one of the accepted separators
    "\ufeff",  # byte order mark
    "\u202f",  # narrow no-break space
    "\u3000",  # ideographic space
    "\u2212",  # minus sign
    "\u2013",  # en dash
    "\uff0d",  # fullwidth hyphen-minus
    ".",
    ",",
    "/",
    "*",
    "#",
    "\u066b",  # Arabic decimal separator
    "\u066c",  # Arabic thousands separator
)


def luhn_check_digit(payload: str) -> str:
    """The Luhn check digit that makes ``payload + digit`` valid, computed without the library.

    Walks the payload from the right; the digit next to the (future) check digit is doubled, then
    every second one, using the table of doubled digits with 9 already subtracted.
    """
    doubled = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = ASCII_DIGITS.index(char)
        total += doubled[value] if index % 2 == 0 else value
    return ASCII_DIGITS[(10 - total % 10) % 10]


def ascii_digit_strings(
    *, min_size: int = 0, max_size: int | None = None
) -> st.SearchStrategy[str]:
    """Strings made only of the ASCII digits 0-9."""
    return st.text(alphabet=ASCII_DIGITS, min_size=min_size, max_size=max_size)


def _luhn_identifier(first: str) -> st.SearchStrategy[str]:
    return ascii_digit_strings(min_size=8, max_size=8).map(
        lambda middle: first + middle + luhn_check_digit(first + middle)
    )


def national_ids() -> st.SearchStrategy[str]:
    """Valid Saudi national IDs: ``1`` + 8 digits + a correct Luhn check digit (ASCII)."""
    return _luhn_identifier("1")


def iqamas() -> st.SearchStrategy[str]:
    """Valid Iqama (resident) numbers: ``2`` + 8 digits + a correct Luhn check digit (ASCII)."""
    return _luhn_identifier("2")


def luhn_identifiers() -> st.SearchStrategy[str]:
    """Valid national IDs or Iqamas (ASCII)."""
    return st.one_of(national_ids(), iqamas())


def company_numbers() -> st.SearchStrategy[str]:
    """Valid unified national numbers of companies: ``7`` + 9 digits, no check digit (ASCII)."""
    return ascii_digit_strings(min_size=9, max_size=9).map(lambda rest: "7" + rest)


def government_identifiers() -> st.SearchStrategy[str]:
    """Identifiers of the shape the model accepts for government bodies.

    1 to 32 ASCII letters or digits; whether a policy recognises them is a separate question.
    """
    return st.text(alphabet=string.ascii_letters + ASCII_DIGITS, min_size=1, max_size=32)


def _subjects_of_every_kind(government: st.SearchStrategy[str]) -> st.SearchStrategy[Subject]:
    """Subjects of every kind, government bodies with identifiers drawn from ``government``."""
    return st.one_of(
        national_ids().map(Subject.citizen),
        iqamas().map(Subject.resident),
        company_numbers().map(Subject.company),
        government.map(Subject.government),
    )


def subjects() -> st.SearchStrategy[Subject]:
    """Valid ``Subject`` objects of every kind, built from the identifier strategies above."""
    return _subjects_of_every_kind(government_identifiers())


def eligible_subjects() -> st.SearchStrategy[Subject]:
    """Subjects of every kind that the default policy issues codes to.

    As ``subjects()``, but government bodies get the identifiers the default policy's validator
    assumes: ``7`` + 9 ASCII digits, the shape of a unified national number.
    """
    return _subjects_of_every_kind(company_numbers())


def subject_kinds() -> st.SearchStrategy[SubjectKind]:
    """Any ``SubjectKind``."""
    return st.sampled_from(SubjectKind)


def mobile_subscriber_numbers() -> st.SearchStrategy[str]:
    """The nine national digits of a Saudi mobile number: ``5`` + 8 ASCII digits."""
    return ascii_digit_strings(min_size=8, max_size=8).map(lambda rest: "5" + rest)


def canonical_msisdns() -> st.SearchStrategy[str]:
    """Saudi mobile numbers in the canonical E.164 form ``+9665XXXXXXXX``."""
    return mobile_subscriber_numbers().map(lambda national: "+966" + national)


@st.composite
def ascii_msisdn_forms(draw: st.DrawFn) -> tuple[str, str]:
    """``(form, canonical)``: a mobile number in one accepted ASCII form and its E.164 form.

    The forms are ``05XXXXXXXX``, ``5XXXXXXXX``, ``+9665XXXXXXXX``, ``009665XXXXXXXX`` and
    ``9665XXXXXXXX``.
    """
    national = draw(mobile_subscriber_numbers())
    prefix = draw(st.sampled_from(MOBILE_PREFIXES))
    return prefix + national, "+966" + national


@st.composite
def human_renderings(
    draw: st.DrawFn,
    value: str,
    *,
    ascii_digits: bool = True,
    separators: bool = True,
    max_separators: int = 8,
) -> str:
    """``value`` as a person might type it, never longer than the 64-character input limit.

    Every ASCII digit is rendered in ASCII, Arabic-Indic (U+0660-0669) or Extended Arabic-Indic
    (U+06F0-06F9) digits, either one script for the whole string or a mix; with
    ``ascii_digits=False`` no ASCII digit is left. Other characters (``+``, letters) are kept.
    With ``separators=True``, up to ``max_separators`` accepted separators (spaces, hyphens,
    direction marks) are sprinkled anywhere, including at both ends.
    """
    scripts = [ARABIC_INDIC_DIGITS, EXTENDED_ARABIC_INDIC_DIGITS]
    if ascii_digits:
        scripts.append(ASCII_DIGITS)
    if draw(st.booleans()):
        whole = draw(st.sampled_from(scripts))
        chosen = [whole] * len(value)
    else:
        chosen = draw(st.lists(st.sampled_from(scripts), min_size=len(value), max_size=len(value)))
    chars = [
        script[ASCII_DIGITS.index(char)] if char in ASCII_DIGITS else char
        for char, script in zip(value, chosen, strict=True)
    ]
    if separators:
        room = max(0, min(MAX_INPUT_LENGTH - len(value), max_separators))
        inserts = draw(
            st.lists(
                st.tuples(
                    st.integers(min_value=0, max_value=len(chars)),
                    st.sampled_from(ACCEPTED_SEPARATORS),
                ),
                max_size=room,
            )
        )
        for position, separator in inserts:
            chars.insert(min(position, len(chars)), separator)
    return "".join(chars)


@st.composite
def typed_msisdns(draw: st.DrawFn, *, ascii_digits: bool = True) -> tuple[str, str]:
    """``(typed, canonical)``: a mobile number in any accepted form, as a person might type it.

    ``typed`` is one of the five accepted forms rendered by ``human_renderings`` (Arabic-Indic
    digits, separators); ``canonical`` is the ``+9665XXXXXXXX`` it must normalise to.
    """
    form, canonical = draw(ascii_msisdn_forms())
    return draw(human_renderings(form, ascii_digits=ascii_digits)), canonical


def foreign_digits() -> st.SearchStrategy[str]:
    """One decimal digit of a script other than ASCII and the two Arabic-Indic sets.

    Devanagari, Bengali, fullwidth, Thai, mathematical... Python's ``int()``, ``isdigit()`` and
    ``\\d`` accept all of them; the library must not.
    """
    return st.one_of(
        st.sampled_from(FOREIGN_DIGIT_SAMPLES),
        st.characters(categories=["Nd"], exclude_characters=_DIGIT_INPUT_CHARACTERS),
    )


def junk_characters() -> st.SearchStrategy[str]:
    """One character that no identifier, mobile number or decimal code may contain.

    Anything except ASCII letters and digits, the two Arabic-Indic digit sets, the accepted
    separators and ``+``: foreign digits, superscripts such as ``²``, ``_``, NUL, control and format
    characters, other spaces and dashes, and arbitrary Unicode.
    """
    return st.one_of(
        foreign_digits(),
        st.sampled_from(DIGIT_LOOKALIKES),
        st.sampled_from(_NOTABLE_JUNK),
        st.characters(
            codec="utf-8", exclude_characters=_DIGIT_INPUT_CHARACTERS | set(string.ascii_letters)
        ),
    )


def non_digit_characters() -> st.SearchStrategy[str]:
    """One character that may never appear in a mobile number or a decimal code.

    ``junk_characters`` plus the ASCII letters (which only government identifiers allow).
    """
    return st.one_of(junk_characters(), st.sampled_from(string.ascii_letters))


@st.composite
def with_one_inserted(draw: st.DrawFn, value: str, characters: st.SearchStrategy[str]) -> str:
    """``value`` with one character drawn from ``characters`` inserted at any position."""
    position = draw(st.integers(min_value=0, max_value=len(value)))
    return value[:position] + draw(characters) + value[position:]


def oversized_text() -> st.SearchStrategy[str]:
    """Text longer than the 64-character input limit, some of it hiding a valid value.

    Valid IDs and mobile numbers padded with accepted separators to 65+ characters, long ASCII
    digit runs, arbitrary long text, and huge (up to 100 000 characters) strings.
    """
    padded = st.builds(
        lambda value, separator, extra: value + separator * (MAX_INPUT_LENGTH + extra - len(value)),
        st.one_of(national_ids(), canonical_msisdns(), st.just("05" + "5" * 8)),
        st.sampled_from(ACCEPTED_SEPARATORS),
        st.integers(min_value=1, max_value=200),
    )
    return st.one_of(
        padded,
        ascii_digit_strings(min_size=MAX_INPUT_LENGTH + 1, max_size=200),
        st.text(min_size=MAX_INPUT_LENGTH + 1, max_size=200),
        st.integers(min_value=1_000, max_value=100_000).map(lambda size: "1" * size),
    )


def junk_text() -> st.SearchStrategy[str]:
    """Text that is never a valid identifier (any kind), mobile number or 8-digit decimal code.

    Valid values with one junk character (foreign digit, ``²``, ``_``, NUL, control...) inserted,
    oversized strings, strings made only of separators and signs, and short strings of foreign
    digits.
    """
    valid = st.one_of(
        national_ids(),
        iqamas(),
        company_numbers(),
        canonical_msisdns(),
        ascii_digit_strings(min_size=8, max_size=8),
    )
    return st.one_of(
        valid.flatmap(lambda value: with_one_inserted(value, junk_characters())),
        oversized_text(),
        st.text(alphabet="".join(ACCEPTED_SEPARATORS) + "+", max_size=12),
        st.text(alphabet=FOREIGN_DIGIT_SAMPLES + DIGIT_LOOKALIKES, min_size=1, max_size=14),
    )


def non_str_values() -> st.SearchStrategy[object]:
    """Values that are not ``str``: ``None``, bools, ints (including valid IDs as ints), floats,
    bytes (including valid numbers as bytes), bytearrays, lists."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([1000000008, 551234567, 966551234567, 12345678]),
        st.floats(allow_nan=False),
        st.binary(max_size=16),
        st.sampled_from([b"1000000008", b"0551234567", b"12345678"]),
        st.binary(max_size=16).map(bytearray),
        st.lists(st.text(max_size=4), max_size=3),
    )


# --- codes -----------------------------------------------------------------------------------

#: Printable ASCII that may be part of a code alphabet: no space, no hyphen (they are separators).
_CODE_ALPHABET_CHARS = "".join(chr(c) for c in range(ord("!"), ord("~") + 1) if chr(c) != "-")


@st.composite
def code_formats(draw: st.DrawFn) -> CodeFormat:
    """Acceptable ``CodeFormat`` objects: distinct printable ASCII characters (no ``-``),
    with the shortest length that reaches 10^8 codes, or longer, up to 32."""
    alphabet = "".join(
        draw(st.lists(st.sampled_from(_CODE_ALPHABET_CHARS), min_size=2, max_size=40, unique=True))
    )
    shortest = 1
    while len(alphabet) ** shortest < CodeFormat.MIN_COMBINATIONS:
        shortest += 1
    length = draw(st.integers(min_value=shortest, max_value=32))
    return CodeFormat(length=length, alphabet=alphabet)


def codes_for(code_format: CodeFormat) -> st.SearchStrategy[str]:
    """Codes of ``code_format``: exactly ``length`` characters from its alphabet."""
    return st.text(
        alphabet=code_format.alphabet, min_size=code_format.length, max_size=code_format.length
    )


# --- policy catalogue --------------------------------------------------------------------------


def provider_ids() -> st.SearchStrategy[str]:
    """Ids of the eight Saudi operators of the default policy."""
    return st.sampled_from([provider.id for provider in SAUDI_PROVIDERS])


def service_ids() -> st.SearchStrategy[str]:
    """Ids of the four services of the default catalogue."""
    return st.sampled_from([service.id for service in DEFAULT_SERVICES])


# --- keys ------------------------------------------------------------------------------------


def hmac_secrets() -> st.SearchStrategy[bytes]:
    """Random-looking secrets of 32 to 64 bytes: what an ``HmacKey`` or a signing key accepts.

    Drawn bytes are stretched with SHAKE-256, so that no draw is a placeholder or a pattern
    (Hypothesis favours zeros and repeats): the keyring refuses those, see ``weak_secrets()``.
    """
    return st.builds(
        lambda seed, size: hashlib.shake_256(seed).digest(size),
        st.binary(max_size=16),
        st.integers(min_value=32, max_value=64),
    )


#: Printable ASCII, space to tilde: the characters of a password typed as a key.
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
_WEAK_SIZES = st.integers(min_value=32, max_value=64)


@st.composite
def _patterned(draw: st.DrawFn) -> bytes:
    """A pattern of 2 bytes up to half the size, repeated (the last repeat may be cut short)."""
    size = draw(_WEAK_SIZES)
    pattern = draw(st.binary(min_size=2, max_size=size // 2))
    return (pattern * size)[:size]


def weak_secrets() -> st.SearchStrategy[bytes]:
    """Secrets of 32 to 64 bytes that are visibly not random: each must be refused as a key.

    One byte repeated; bytes counting up or down in equal steps (modulo 256); a short pattern
    repeated; at most 15 distinct byte values; printable ASCII text (a password or a hex key).
    """
    return st.one_of(
        st.builds(lambda byte, size: bytes([byte]) * size, st.integers(0, 255), _WEAK_SIZES),
        st.builds(
            lambda start, step, size: bytes((start + step * i) % 256 for i in range(size)),
            st.integers(0, 255),
            st.integers(1, 255),
            _WEAK_SIZES,
        ),
        _patterned(),
        st.builds(
            lambda values, picks: bytes(values[pick % len(values)] for pick in picks),
            st.lists(st.integers(0, 255), min_size=1, max_size=15, unique=True),
            st.lists(st.integers(0, 255), min_size=32, max_size=64),
        ),
        st.text(alphabet=_PRINTABLE_ASCII, min_size=32, max_size=64).map(str.encode),
    )


def short_secrets() -> st.SearchStrategy[bytes]:
    """Secrets that are too short to be accepted (0 to 31 bytes)."""
    return st.binary(max_size=31)


def key_ids() -> st.SearchStrategy[str]:
    """Valid key ids: 1-32 characters of A-Z, a-z, 0-9, ``.``, ``_``, ``-``."""
    return st.text(alphabet=string.ascii_letters + ASCII_DIGITS + "._-", min_size=1, max_size=32)


# --- time ------------------------------------------------------------------------------------


def fixed_offset_timezones() -> st.SearchStrategy[timezone]:
    """Fixed-offset timezones from UTC-23:59 to UTC+23:59, UTC itself included."""
    return st.one_of(
        st.just(UTC),
        st.builds(
            timezone,
            st.timedeltas(
                min_value=-timedelta(hours=23, minutes=59),
                max_value=timedelta(hours=23, minutes=59),
            ).map(lambda offset: timedelta(minutes=round(offset.total_seconds() / 60))),
        ),
    )


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes (years 2000-2100) in fixed-offset timezones, UTC included."""
    return st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=fixed_offset_timezones(),
    )


def naive_datetimes() -> st.SearchStrategy[datetime]:
    """Naive datetimes (no timezone), which the library must refuse."""
    return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
