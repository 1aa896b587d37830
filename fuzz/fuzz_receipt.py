"""Fuzz target: receipt and key texts are read, or refused with a ``TelecardAuthError``.

``Receipt.parse``, ``verify_receipt`` (against one fixed key) and the key readers
``VerifyKey.from_text`` and ``SigningKey.from_private_text`` get raw text, receipts built around
fuzzed payloads (some validly signed, so that parsing and verifying reach every field check),
fuzzed JSON fields, edits of a genuine receipt, and key lines. Whatever they accept must be the
one canonical text of what they return: a receipt has exactly one text.

Run under libFuzzer (the first corpus directory is written to, so give a scratch one first)::

    python fuzz/fuzz_receipt.py -max_total_time=60 /tmp/corpus-receipt fuzz/corpus/receipt

``fuzz_one_input`` is importable, so the test suite replays inputs without libFuzzer.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["telecard_auth"]):
    from telecard_auth import (
        MalformedReceipt,
        Receipt,
        ReceiptNotVerified,
        ReceiptSigner,
        SigningKey,
        TelecardAuthError,
        VerifyKey,
        verify_receipt,
    )

__all__ = ["SIGNING_KEY", "VALID_RECEIPT", "VERIFY_KEY", "FuzzFinding", "fuzz_one_input", "main"]

#: The fixed key every fuzzed receipt is checked against (the documentation's sample key).
SIGNING_KEY = SigningKey.from_private_text(
    "tar1-private:r1:p3KNBwbeZo_m6oCSH5BRG4ZZocfCUYA6nX9gUTua72o"
)
VERIFY_KEY = SIGNING_KEY.public_key
#: A genuine receipt, the starting point of the edits.
VALID_RECEIPT = (
    ReceiptSigner(keys=(SIGNING_KEY,))
    .sign(
        code_id="q3Vx0bLk9TzA2mNc",
        provider_id="stc",
        service_id="new_line",
        redeemed_at=datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC),
        customer_ref="3f9a0c1b2d4e5f60718293a4b5c6d7e8",
    )
    .to_text()
)

_FIELDS = (
    "version",
    "code_id",
    "provider_id",
    "service_id",
    "redeemed_at",
    "customer_ref",
    "key_id",
)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: What an edit may put into a receipt or key text: base64url, the separators, and junk.
_EDIT_CHARS = _B64 + ".:=+/ \t\n\x00\u00a0\u200f\u0660\uff10\ud800"
_KEY_PREFIXES = ("tar1-public:", "tar1-private:", "tar1-public", "tar1.", "", "TAR1-PUBLIC:")


class FuzzFinding(AssertionError):
    """A promise broken without an exception: text accepted that is not the canonical form."""


def _require(condition: object, message: str) -> None:
    # Not ``assert``: a finding must not vanish under ``python -O``.
    if not condition:
        raise FuzzFinding(message)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _chars(provider: atheris.FuzzedDataProvider, alphabet: str, most: int) -> str:
    count = provider.ConsumeIntInRange(0, most)
    return "".join(alphabet[provider.ConsumeIntInRange(0, len(alphabet) - 1)] for _ in range(count))


def _json_value(provider: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    match provider.ConsumeIntInRange(0, 9):
        case 0:
            return provider.ConsumeInt(provider.ConsumeIntInRange(1, 16))
        case 1:
            return provider.ConsumeFloat()
        case 2:
            return provider.ConsumeBool()
        case 3:
            return None
        case 4 if depth < 3:  # noqa: PLR2004
            return [
                _json_value(provider, depth + 1) for _ in range(provider.ConsumeIntInRange(0, 3))
            ]
        case 5 if depth < 3:  # noqa: PLR2004
            return {_chars(provider, _B64, 4): _json_value(provider, depth + 1)}
        case 6:
            return _chars(provider, _EDIT_CHARS, 70)
        case 7:
            return "2026-03-01T09:30:15." + _chars(provider, "0123456789Z:+-", 9)
        case _:
            return str(provider.ConsumeUnicode(provider.ConsumeIntInRange(0, 40)))


def _signed_text(payload: bytes, provider: atheris.FuzzedDataProvider) -> str:
    """A receipt text around ``payload``: most often with a genuine signature over it."""
    match provider.ConsumeIntInRange(0, 3):
        case 0 | 1:
            signature = SIGNING_KEY.private_key.sign(payload)
        case 2:
            signature = provider.ConsumeBytes(64)
        case _:
            signature = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 80))
    return f"tar1.{_b64(payload)}.{_b64(signature)}"


def _json_receipt(provider: atheris.FuzzedDataProvider) -> str:
    """Canonical or near-canonical JSON of fuzzed fields, signed with the fixed key."""
    fields: dict[str, object] = json.loads(Receipt.parse(VALID_RECEIPT).payload())
    for name in _FIELDS:
        match provider.ConsumeIntInRange(0, 5):
            case 0:
                fields[name] = _json_value(provider)
            case 1:
                del fields[name]
            case _:
                pass  # most fields stay genuine, so that one bad field is the only fault
    if provider.ConsumeIntInRange(0, 7) == 0:
        fields[_chars(provider, _B64, 8)] = _json_value(provider)
    canonical = provider.ConsumeBool()
    text = json.dumps(
        fields,
        sort_keys=canonical or provider.ConsumeBool(),
        separators=(",", ":") if canonical else (", ", ": "),
        ensure_ascii=canonical or provider.ConsumeBool(),
    )
    if provider.ConsumeIntInRange(0, 7) == 0:  # JSON that Python reads but never writes
        text = text.replace('"version":1', '"version":1' + "0" * 5000, 1)
    return _signed_text(text.encode("utf-8", "surrogatepass"), provider)


def _edited_receipt(provider: atheris.FuzzedDataProvider) -> str:
    """The genuine receipt with a few characters replaced, inserted or deleted."""
    chars = list(VALID_RECEIPT)
    for _ in range(provider.ConsumeIntInRange(1, 4)):
        position = provider.ConsumeIntInRange(0, len(chars))
        char = _EDIT_CHARS[provider.ConsumeIntInRange(0, len(_EDIT_CHARS) - 1)]
        match provider.ConsumeIntInRange(0, 2):
            case 0 if position < len(chars):
                chars[position] = char
            case 1 if position < len(chars):
                del chars[position]
            case _:
                chars.insert(position, char)
    return "".join(chars)


def _key_text(provider: atheris.FuzzedDataProvider) -> str:
    prefix = _KEY_PREFIXES[provider.ConsumeIntInRange(0, len(_KEY_PREFIXES) - 1)]
    key_id = _chars(provider, _B64 + "._:\u0660 ", 34)
    encoded = _chars(provider, _B64 + "=", 45)
    padding = _chars(provider, " \t\n\r\u00a0\u2009\u3000\x0b", 2)
    return padding + f"{prefix}{key_id}:{encoded}" + padding


def _value(data: bytes) -> object:
    """The value one input stands for; its first byte picks how the rest is built.

    Most inputs are the rest as UTF-8 (undecodable bytes become lone surrogates), which keeps
    seeds readable: a seed is the selector byte 0 followed by the text.
    """
    selector, rest = (data[0] % 8, data[1:]) if data else (0, b"")
    provider = atheris.FuzzedDataProvider(rest)
    match selector:
        case 0 | 1 | 2:
            return rest.decode("utf-8", "surrogateescape")
        case 3:
            return _signed_text(
                provider.ConsumeBytes(provider.ConsumeIntInRange(0, 1600)), provider
            )
        case 4:
            return _json_receipt(provider)
        case 5:
            return _edited_receipt(provider)
        case 6:
            return _key_text(provider)
        case _:
            return rest  # bytes: a reader must refuse a non-str too


def _check_receipt(value: object) -> None:
    try:
        receipt = Receipt.parse(value)
    except TelecardAuthError as error:
        _require(isinstance(error, MalformedReceipt), f"parse refused with {error.code}")
    else:
        _require(receipt.to_text() == value, "parse accepted a text that is not canonical")
    try:
        verified = verify_receipt(value, VERIFY_KEY)
    except TelecardAuthError as error:
        refusal = isinstance(error, MalformedReceipt | ReceiptNotVerified)
        _require(refusal, f"verify_receipt refused with {error.code}")
    else:
        _require(verified.to_text() == value, "verify_receipt accepted a non-canonical text")
        _require(verified.key_id == VERIFY_KEY.key_id, "a receipt verified under another key id")


def _check_keys(value: object) -> None:
    line = value.strip() if isinstance(value, str) else value
    try:
        public = VerifyKey.from_text(value)
    except TelecardAuthError as error:
        _require(error.code == "keyring_error", f"VerifyKey.from_text refused with {error.code}")
    else:
        _require(public.to_text() == line, "VerifyKey.from_text accepted a non-canonical line")
    try:
        private = SigningKey.from_private_text(value)
    except TelecardAuthError as error:
        _require(error.code == "keyring_error", f"from_private_text refused with {error.code}")
    else:
        _require(
            private.to_private_text() == line, "from_private_text accepted a non-canonical line"
        )


def fuzz_one_input(data: bytes) -> None:
    """One input: a ``TelecardAuthError`` is an answer; any other exception is a crash."""
    value = _value(data)
    _check_receipt(value)
    _check_keys(value)


def main(argv: list[str] | None = None) -> None:
    """Fuzz under libFuzzer; ``argv`` holds libFuzzer's flags (default: the command line)."""
    atheris.Setup(sys.argv if argv is None else argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
