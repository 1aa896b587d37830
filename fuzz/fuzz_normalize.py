"""Fuzz target: the normalisers and identity constructors answer any input with a result or a
``TelecardAuthError``, and what they accept has the canonical form they promise.

Run under libFuzzer (the first corpus directory is written to, so give a scratch one first)::

    python fuzz/fuzz_normalize.py -max_total_time=60 /tmp/corpus-normalize fuzz/corpus/normalize

``fuzz_one_input`` is importable, so the test suite replays inputs without libFuzzer.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["telecard_auth"]):
    from telecard_auth import (
        CodeFormat,
        Subject,
        TelecardAuthError,
        fold_digits,
        normalize_msisdn,
    )

__all__ = ["FORMATS", "INTERESTING", "FuzzFinding", "fuzz_one_input", "main"]

#: Characters the rules treat specially, and their lookalikes: drawn often so the fuzzer reaches
#: the accepting paths (valid numbers, codes) as well as every refusal near them.
INTERESTING = (
    "0123456789"
    + "".join(chr(0x0660 + digit) for digit in range(10))  # Arabic-Indic
    + "".join(chr(0x06F0 + digit) for digit in range(10))  # Extended Arabic-Indic
    + " \u00a0-\u2010\u2011\u200e\u200f\u061c"  # the separators the library drops
    + "+_.,/"  # signs and what int() forgives
    + "\u0966\u09e6\uff10\uff15\U0001d7ce\u07c0"  # other scripts' decimal digits (Nd)
    + "\u00b2\u00b9\u2070\u2460\u2167\u00bd\u3007OolI"  # lookalikes that are not Nd
    + "\x00\t\n\x7f\u200b\u202a\u202e\u2066\u2069\ufeff\u3000\u2009\u202f\u2212\u0301"
    + "\ud800\udfff"  # lone surrogates
    + "ABCXYZabcxyz"
)

_PREFIXES = ("", "0", "5", "05", "+966", "00966", "966", "1", "2", "7", "+", "٠٥", "۰۵")

#: Formats whose ``normalize`` takes each path: digits, one case folded, case-sensitive.
FORMATS = (
    CodeFormat(),
    CodeFormat(length=6, alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ"),
    CodeFormat(length=6, alphabet="abcdefghjkmnpqrstuvwxyz23456789"),
    CodeFormat(length=5, alphabet="abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"),
)

_CANONICAL_MSISDN = re.compile(r"\+9665[0-9]{8}", re.ASCII)
_TEN_DIGITS = re.compile(r"[0-9]{10}", re.ASCII)
_GOVERNMENT = re.compile(r"[0-9A-Z]{1,32}", re.ASCII)
#: What ``fold_digits`` translates or drops: none of it may survive folding.
_FOLDED_AWAY = frozenset(
    "".join(chr(0x0660 + digit) + chr(0x06F0 + digit) for digit in range(10))
    + " \u00a0-\u2010\u2011\u200e\u200f\u061c"
)

_TEN_DIGIT_KINDS: tuple[tuple[Callable[[str], Subject], str], ...] = (
    (Subject.citizen, "1"),
    (Subject.resident, "2"),
    (Subject.company, "7"),
)


class FuzzFinding(AssertionError):
    """A promise broken without an exception: an accepted value is not in its canonical form."""


def _require(condition: object, message: str) -> None:
    # Not ``assert``: a finding must not vanish under ``python -O``.
    if not condition:
        raise FuzzFinding(message)


def _value(data: bytes) -> object:
    """The value one input stands for; its first byte picks how the rest is read.

    Most inputs are the rest as UTF-8 (undecodable bytes become lone surrogates), which keeps
    seeds readable: a seed is the selector byte 0 followed by the text.
    """
    selector, rest = (data[0] % 8, data[1:]) if data else (0, b"")
    provider = atheris.FuzzedDataProvider(rest)
    match selector:
        case 0 | 1 | 2:
            return rest.decode("utf-8", "surrogateescape")
        case 3:
            return str(provider.ConsumeUnicode(provider.remaining_bytes()))
        case 4:
            return str(provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes()))
        case 5 | 6:
            # Interesting characters, behind a likely prefix for selector 5.
            prefix = _PREFIXES[provider.ConsumeIntInRange(0, len(_PREFIXES) - 1)]
            picks = [
                provider.ConsumeIntInRange(0, len(INTERESTING) - 1)
                for _ in range(provider.ConsumeIntInRange(0, 70))
            ]
            text = "".join(INTERESTING[pick] for pick in picks)
            return prefix + text if selector == 5 else text  # noqa: PLR2004
        case _:
            return rest  # bytes: every check below must refuse a non-str too


def _check_fold(text: str) -> None:
    folded = fold_digits(text)
    _require(not _FOLDED_AWAY & set(folded), "fold_digits left a character it folds")
    _require(len(folded) <= len(text), "fold_digits made the text longer")
    _require(fold_digits(folded) == folded, "fold_digits is not idempotent")


def _check_msisdn(value: object) -> None:
    try:
        canonical = normalize_msisdn(value)
    except TelecardAuthError as error:
        _require(error.code == "invalid_msisdn", f"normalize_msisdn refused with {error.code}")
        return
    _require(_CANONICAL_MSISDN.fullmatch(canonical), "normalize_msisdn gave a non-canonical form")
    _require(normalize_msisdn(canonical) == canonical, "normalize_msisdn is not idempotent")


def _check_subjects(value: object) -> None:
    for build, first in _TEN_DIGIT_KINDS:
        try:
            subject = build(value)  # type: ignore[arg-type]
        except TelecardAuthError as error:
            _require(error.code == "invalid_identifier", f"a subject refused with {error.code}")
            continue
        _require(_TEN_DIGITS.fullmatch(subject.identifier), "an identifier is not 10 ASCII digits")
        _require(subject.identifier.startswith(first), "an identifier has the wrong first digit")
    try:
        body = Subject.government(value)  # type: ignore[arg-type]
    except TelecardAuthError as error:
        _require(error.code == "invalid_identifier", f"a government refused with {error.code}")
    else:
        _require(_GOVERNMENT.fullmatch(body.identifier), "a government identifier is not canonical")


def _check_codes(value: object) -> None:
    for code_format in FORMATS:
        try:
            code = code_format.normalize(value)
        except TelecardAuthError as error:
            _require(error.code == "malformed_code", f"normalize refused with {error.code}")
            continue
        _require(len(code) == code_format.length, "a normalised code has the wrong length")
        _require(set(code) <= set(code_format.alphabet), "a normalised code left its alphabet")
        _require(code_format.normalize(code) == code, "normalize is not idempotent")


def fuzz_one_input(data: bytes) -> None:
    """One input: a ``TelecardAuthError`` is an answer; any other exception is a crash."""
    value = _value(data)
    if isinstance(value, str):
        _check_fold(value)
    _check_msisdn(value)
    _check_subjects(value)
    _check_codes(value)


def main(argv: list[str] | None = None) -> None:
    """Fuzz under libFuzzer; ``argv`` holds libFuzzer's flags (default: the command line)."""
    atheris.Setup(sys.argv if argv is None else argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
