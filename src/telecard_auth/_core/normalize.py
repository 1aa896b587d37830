"""Turning what people type into the one canonical string the rules compare.

People type digits in Arabic-Indic (U+0660-0669) or Extended Arabic-Indic (U+06F0-06F9) script, with
spaces, hyphens and direction marks mixed in. Exactly those two digit sets are translated and
exactly those separators removed; the result is then checked against ASCII ``[0-9]``. ``int()``,
``str.isdigit()`` and ``\\d`` accept other scripts, superscripts, signs and underscores, so nothing
here relies on them, and identifiers stay strings throughout.
"""

from __future__ import annotations

import re

from telecard_auth._core.errors import InvalidInput, InvalidMsisdn
from telecard_auth._core.text import plain

__all__ = ["MAX_INPUT_LENGTH", "fold_digits", "luhn_valid", "normalize_msisdn"]

#: Longest raw input accepted anywhere, separators included; longer input is refused unread.
MAX_INPUT_LENGTH = 64

_ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"
_EXTENDED_ARABIC_INDIC = "۰۱۲۳۴۵۶۷۸۹"
# Space, no-break space, hyphen-minus, hyphen, non-breaking hyphen, LRM, RLM, Arabic letter mark.
_SEPARATORS = " \u00a0-\u2010\u2011\u200e\u200f\u061c"

_FOLD = str.maketrans(
    _ARABIC_INDIC + _EXTENDED_ARABIC_INDIC,
    "0123456789" * 2,
    _SEPARATORS,
)

_MSISDN = re.compile(r"(?:\+966|00966|966|0)?(5[0-9]{8})", re.ASCII)


def fold_digits(text: str) -> str:
    """Translate Arabic-Indic digits to ASCII and drop spaces, hyphens and direction marks.

    Nothing else changes: the caller still validates the result against ASCII patterns. The
    result is always a plain ``str``; anything but text is ``InvalidInput``.

    >>> fold_digits("١٠٠٠ ٠٠٠-٠٠٨")
    '1000000008'
    """
    if not isinstance(text, str):
        raise InvalidInput()
    # str.translate, not text.translate: a str subclass cannot step in, and the result is a str.
    return str.translate(text, _FOLD)


def luhn_valid(digits: object) -> bool:
    """True when ``digits`` is a string of ASCII digits that passes the Luhn (mod 10) check.

    The rightmost digit is the check digit; every second digit leftwards from it is doubled.
    Anything else (an empty string, any character but ``0``-``9``, a value that is not text) is
    simply not valid: ``False``, never an error. Fold other digit scripts first (``fold_digits``).

    >>> luhn_valid("1000000008"), luhn_valid("1234567890"), luhn_valid("١٠٠٠٠٠٠٠٠٨")
    (True, False, False)
    """
    if not isinstance(digits, str):
        return False
    text = plain(digits)
    # Among ASCII characters, isdigit() is true for 0-9 only.
    if not text or not text.isascii() or not text.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(text)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:  # noqa: PLR2004 - the Luhn rule: subtract 9 from a doubled digit
                value -= 9
        total += value
    return total % 10 == 0


def normalize_msisdn(text: object) -> str:
    """Return the canonical E.164 form (``+9665nnnnnnnn``) of a Saudi mobile number.

    Accepts ``05nnnnnnnn``, ``5nnnnnnnn``, ``+9665nnnnnnnn``, ``009665nnnnnnnn`` and
    ``9665nnnnnnnn`` (``n`` a digit), in either Arabic-Indic digit set, with spaces, hyphens or
    direction marks.
    The operator is never inferred from the prefix: numbers move between operators.

    >>> normalize_msisdn("٠٥٥ ١٢٣ ٤٥٦٧")
    '+966551234567'
    """
    if not isinstance(text, str) or len(text) > MAX_INPUT_LENGTH:
        raise InvalidMsisdn()
    match = _MSISDN.fullmatch(fold_digits(text))
    if match is None:
        raise InvalidMsisdn()
    return "+966" + match.group(1)
