"""Tests for signed redemption receipts: signing, text forms, parsing, tampering, key rotation,
and verification offline in another process with nothing but the public key."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import re
import string
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers import START
from tests.strategies import (
    aware_datetimes,
    eligible_subjects,
    key_ids,
    naive_datetimes,
    provider_ids,
    service_ids,
)

from telecard_auth import (
    SAUDI_PROVIDERS,
    CodeIssuer,
    ConfigurationError,
    HmacKey,
    InvalidInput,
    InvalidTime,
    Keyring,
    KeyringError,
    ManualClock,
    MemoryStorage,
    NotPermitted,
    Provider,
    RedemptionRefused,
    Subject,
    TelecardAuthError,
)
from telecard_auth._core.errors import MalformedReceipt, ReceiptNotVerified, UnknownSigningKey
from telecard_auth._core.receipt import (
    MAX_RECEIPT_LENGTH,
    RECEIPT_VERSION,
    Receipt,
    ReceiptSigner,
    SigningKey,
    VerifyKey,
    verify_receipt,
)
from telecard_auth._core.requests import identity_of

# --- fixed test values ----------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    """Unpadded base64url, computed here independently of the library."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: Two fixed private keys (test values only, random-looking: a patterned seed such as
#: ``bytes(range(32))`` is refused), their texts and their public key texts.
R1_SEED = hashlib.sha256(b"telecard-auth test receipt key r1").digest()
R2_SEED = hashlib.sha256(b"telecard-auth test receipt key r2").digest()
R1_PRIVATE = "tar1-private:r1:" + _b64(R1_SEED)
R2_PRIVATE = "tar1-private:r2:" + _b64(R2_SEED)
R1_PUBLIC = "tar1-public:r1:XA278EpkPc7TSI8U5O3P8Hqf0dCEvB_q258kPq7I5tM"

#: The fields of one sample redemption.
FIELDS: dict[str, Any] = {
    "code_id": "q3Vx0bLk9TzA2mNc",
    "provider_id": "mobily",
    "service_id": "lost_sim_replacement",
    "redeemed_at": datetime(2026, 3, 1, 9, 30, 15, 250001, tzinfo=UTC),
    "customer_ref": "3f9a0c1b2d4e5f60718293a4b5c6d7e8",
}

#: Alternative valid values for each field of the payload, to tamper with one at a time.
OTHER_VALUES: dict[str, Any] = {
    "code_id": "q3Vx0bLk9TzA2mNd",
    "provider_id": "stc",
    "service_id": "new_line",
    "redeemed_at": "2026-03-01T09:30:15.250002Z",
    "customer_ref": "3f9a0c1b2d4e5f60718293a4b5c6d7e9",
    "key_id": "r2",
}

#: Characters of a receipt's text form: base64url and the dot.
TEXT_ALPHABET = string.ascii_letters + string.digits + "-_."
_HEADER_SAFE = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_TOKEN_CHARS = string.ascii_letters + string.digits + "._~:+/=-"


def _r1() -> SigningKey:
    return SigningKey.from_private_text(R1_PRIVATE)


def _r2() -> SigningKey:
    return SigningKey.from_private_text(R2_PRIVATE)


def _signer(*keys: SigningKey) -> ReceiptSigner:
    return ReceiptSigner(keys=keys or (_r1(),))


def _receipt(signer: ReceiptSigner | None = None, **changes: Any) -> Receipt:
    return (signer or _signer()).sign(**{**FIELDS, **changes})


def _text(payload: bytes, signature: bytes) -> str:
    """A receipt text put together by hand from raw payload and signature bytes."""
    return f"tar1.{_b64(payload)}.{_b64(signature)}"


def _canonical(fields: dict[str, object]) -> bytes:
    """Canonical payload bytes, computed here independently of the library."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")


def _outcome(
    text: object, keys: VerifyKey | Ed25519PublicKey | tuple[VerifyKey, ...]
) -> type[TelecardAuthError] | None:
    """Which refusal verifying ``text`` ends in, or ``None`` if it verifies.

    Any exception other than the two refusals escapes and fails the test.
    """
    try:
        verify_receipt(text, keys)
    except MalformedReceipt:
        return MalformedReceipt
    except ReceiptNotVerified:
        return ReceiptNotVerified
    return None


SAMPLE = _receipt()
SAMPLE_TEXT = SAMPLE.to_text()
SAMPLE_PAYLOAD = SAMPLE.payload()
KEYS = _signer().verify_keys()


# --- strategies -----------------------------------------------------------------------------------


def tokens() -> st.SearchStrategy[str]:
    """Valid receipt text fields: 1-64 characters of the token alphabet."""
    return st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=64)


def pseudonyms() -> st.SearchStrategy[str]:
    """Customer pseudonyms: the keyring's 32 hex characters, or any token but 10 bare digits."""
    return st.one_of(
        st.binary(min_size=16, max_size=16).map(bytes.hex),
        tokens().filter(lambda value: not re.fullmatch(r"[0-9]{10}", value)),
    )


@st.composite
def receipt_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for ``ReceiptSigner.sign``: any valid receipt."""
    return {
        "code_id": draw(tokens()),
        "provider_id": draw(st.one_of(provider_ids(), tokens())),
        "service_id": draw(st.one_of(service_ids(), tokens())),
        "redeemed_at": draw(aware_datetimes()),
        "customer_ref": draw(pseudonyms()),
    }


# --- round trip -----------------------------------------------------------------------------------


def test_round_trip() -> None:
    """A receipt's text parses back to an equal receipt, which verifies with the public key."""
    parsed = Receipt.parse(SAMPLE_TEXT)
    assert SAMPLE == parsed
    assert SAMPLE.signature == parsed.signature
    parsed.verify(KEYS)
    assert SAMPLE == verify_receipt(SAMPLE_TEXT, VerifyKey.from_text(R1_PUBLIC))


def test_receipt_holds_the_fields_signed() -> None:
    """The receipt carries the redemption's fields, the format version and the key id."""
    assert 1 == RECEIPT_VERSION == SAMPLE.version
    assert "q3Vx0bLk9TzA2mNc" == SAMPLE.code_id
    assert "mobily" == SAMPLE.provider_id
    assert "lost_sim_replacement" == SAMPLE.service_id
    assert datetime(2026, 3, 1, 9, 30, 15, 250001, tzinfo=UTC) == SAMPLE.redeemed_at
    assert "3f9a0c1b2d4e5f60718293a4b5c6d7e8" == SAMPLE.customer_ref
    assert "r1" == SAMPLE.key_id
    assert 64 == len(SAMPLE.signature)


def test_payload_is_canonical_json() -> None:
    """The signed bytes: compact JSON, sorted keys, ASCII, UTC time to the microsecond."""
    expected = (
        b'{"code_id":"q3Vx0bLk9TzA2mNc","customer_ref":"3f9a0c1b2d4e5f60718293a4b5c6d7e8",'
        b'"key_id":"r1","provider_id":"mobily","redeemed_at":"2026-03-01T09:30:15.250001Z",'
        b'"service_id":"lost_sim_replacement","version":1}'
    )
    assert expected == SAMPLE_PAYLOAD


def test_text_form_is_prefix_payload_signature() -> None:
    """The text is ``tar1.`` + base64url(payload) + ``.`` + base64url(signature), unpadded."""
    prefix, payload, signature = SAMPLE_TEXT.split(".")
    assert "tar1" == prefix
    assert SAMPLE_PAYLOAD == _unb64(payload)
    assert SAMPLE.signature == _unb64(signature)
    assert "=" not in SAMPLE_TEXT


def test_signature_is_plain_ed25519_over_the_payload() -> None:
    """The signature checks with the bare cryptography API, no library code involved."""
    public = Ed25519PrivateKey.from_private_bytes(R1_SEED).public_key()
    public.verify(SAMPLE.signature, SAMPLE_PAYLOAD)  # raises InvalidSignature if not


@given(receipt_fields())
def test_any_receipt_round_trips(fields: dict[str, Any]) -> None:
    """Any valid receipt: its text is short, header-safe ASCII and parses back exactly."""
    receipt = _signer().sign(**fields)
    text = receipt.to_text()
    assert text.isascii()
    assert _HEADER_SAFE.fullmatch(text)
    assert len(text) <= MAX_RECEIPT_LENGTH
    parsed = verify_receipt(text, KEYS)
    assert receipt == parsed
    assert fields["redeemed_at"] == parsed.redeemed_at
    assert UTC == parsed.redeemed_at.tzinfo
    assert fields["redeemed_at"].astimezone(UTC).microsecond == parsed.redeemed_at.microsecond
    assert text == parsed.to_text()


def test_longest_receipt_is_within_the_cap() -> None:
    """Every field at its longest still makes a receipt well under the length cap."""
    longest = SigningKey(key_id="k" * 32, private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED))
    receipt = _signer(longest).sign(
        code_id="c" * 64,
        provider_id="p" * 64,
        service_id="s" * 64,
        redeemed_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        customer_ref="a" * 64,
    )
    assert len(receipt.to_text()) < MAX_RECEIPT_LENGTH // 2
    assert receipt == verify_receipt(receipt.to_text(), longest.public_key)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        START,
    ],
)
def test_extreme_times_round_trip(moment: datetime) -> None:
    """Years before 1000 and the last representable microsecond survive the text form."""
    receipt = _receipt(redeemed_at=moment)
    assert moment == verify_receipt(receipt.to_text(), KEYS).redeemed_at


def test_times_are_kept_in_utc() -> None:
    """An aware time in another zone is stored as the same instant in UTC, and signs the same."""
    riyadh = timezone(timedelta(hours=3))
    local = datetime(2026, 3, 1, 12, 30, 15, 250001, tzinfo=riyadh)
    receipt = _receipt(redeemed_at=local)
    assert UTC == receipt.redeemed_at.tzinfo
    assert datetime(2026, 3, 1, 9, 30, 15, 250001) == receipt.redeemed_at.replace(tzinfo=None)
    assert SAMPLE_TEXT == receipt.to_text()


@given(naive_datetimes())
def test_naive_times_are_refused(moment: datetime) -> None:
    """A time without a timezone cannot go into a receipt."""
    with pytest.raises(InvalidTime):
        _receipt(redeemed_at=moment)


# --- determinism ----------------------------------------------------------------------------------


def test_signing_is_deterministic() -> None:
    """The same fields and key give the same receipt, byte for byte, from any signer instance."""
    again = _receipt(_signer(SigningKey.from_private_text(R1_PRIVATE)))
    assert SAMPLE == again
    assert SAMPLE.signature == again.signature
    assert SAMPLE_TEXT == again.to_text()


@given(receipt_fields())
def test_signing_any_receipt_twice_gives_one_text(fields: dict[str, Any]) -> None:
    """Answering one redemption twice hands back one receipt text."""
    signer = _signer()
    assert signer.sign(**fields).to_text() == signer.sign(**fields).to_text()


def test_different_fields_give_different_signatures() -> None:
    """Each field changes the signature: nothing signed is left out of the payload."""
    changes: dict[str, Any] = {
        name: OTHER_VALUES[name]
        for name in ("code_id", "provider_id", "service_id", "customer_ref")
    }
    changes["redeemed_at"] = FIELDS["redeemed_at"] + timedelta(microseconds=1)
    for name, value in changes.items():
        assert SAMPLE.signature != _receipt(**{name: value}).signature, name


# --- tampering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OTHER_VALUES))
def test_changing_any_field_fails_verification(name: str) -> None:
    """Change one field of the payload, re-encode it, keep the signature: not authentic."""
    fields = json.loads(SAMPLE_PAYLOAD)
    assert OTHER_VALUES[name] != fields[name]
    fields[name] = OTHER_VALUES[name]
    forged = _text(_canonical(fields), SAMPLE.signature)
    receipt = Receipt.parse(forged)  # well formed
    assert OTHER_VALUES[name] == json.loads(receipt.payload())[name]
    # Against the right key, whichever key id the forgery names.
    with pytest.raises(ReceiptNotVerified) as caught:
        receipt.verify(Ed25519PrivateKey.from_private_bytes(R1_SEED).public_key())
    assert ReceiptNotVerified is type(caught.value)
    # Against a signer that also holds r2, so a forged key id still finds a key.
    with pytest.raises(ReceiptNotVerified) as caught:
        receipt.verify(_signer(_r1(), _r2()).verify_keys())
    assert ReceiptNotVerified is type(caught.value)
    assert "receipt_not_verified" == caught.value.code


@pytest.mark.parametrize("name", ["code_id", "provider_id", "service_id", "customer_ref"])
def test_evolved_receipt_fails_verification(name: str) -> None:
    """A receipt object changed after signing no longer verifies."""
    changed = attrs.evolve(SAMPLE, **{name: OTHER_VALUES[name]})
    with pytest.raises(ReceiptNotVerified):
        changed.verify(KEYS)


def test_changed_time_fails_verification() -> None:
    """Moving the time by one microsecond breaks the signature."""
    changed = attrs.evolve(SAMPLE, redeemed_at=SAMPLE.redeemed_at + timedelta(microseconds=1))
    with pytest.raises(ReceiptNotVerified):
        changed.verify(KEYS)


def test_changed_version_is_refused() -> None:
    """A receipt claiming another format version does not parse."""
    fields = json.loads(SAMPLE_PAYLOAD)
    fields["version"] = 2
    with pytest.raises(MalformedReceipt):
        Receipt.parse(_text(_canonical(fields), SAMPLE.signature))


def test_every_character_substitution_is_refused() -> None:
    """Every position of the text, replaced by each of several characters: never accepted."""
    seen: set[type[TelecardAuthError]] = set()
    tried = 0
    for position, char in enumerate(SAMPLE_TEXT):
        index = TEXT_ALPHABET.index(char)
        for replacement in {
            TEXT_ALPHABET[(index + 1) % len(TEXT_ALPHABET)],
            TEXT_ALPHABET[(index + 17) % len(TEXT_ALPHABET)],
            "A" if char != "A" else "B",
            "=",
            " ",
        }:
            forged = SAMPLE_TEXT[:position] + replacement + SAMPLE_TEXT[position + 1 :]
            outcome = _outcome(forged, KEYS)
            assert outcome is not None, (position, replacement)
            seen.add(outcome)
            tried += 1
    assert tried >= 4 * len(SAMPLE_TEXT)
    assert {MalformedReceipt, ReceiptNotVerified} == seen


def test_every_deletion_and_insertion_is_refused() -> None:
    """Removing any one character, or inserting one anywhere, is never accepted."""
    for position in range(len(SAMPLE_TEXT) + 1):
        if position < len(SAMPLE_TEXT):
            assert _outcome(SAMPLE_TEXT[:position] + SAMPLE_TEXT[position + 1 :], KEYS)
        for extra in "A_.":
            assert _outcome(SAMPLE_TEXT[:position] + extra + SAMPLE_TEXT[position:], KEYS)


def test_every_bit_flip_of_payload_and_signature_is_refused() -> None:
    """Flipping any single bit of the payload or of the signature, re-encoded cleanly, fails."""
    outcomes: list[type[TelecardAuthError] | None] = []
    for bit in range(len(SAMPLE_PAYLOAD) * 8):
        flipped = bytearray(SAMPLE_PAYLOAD)
        flipped[bit // 8] ^= 1 << (bit % 8)
        outcomes.append(_outcome(_text(bytes(flipped), SAMPLE.signature), KEYS))
    for bit in range(len(SAMPLE.signature) * 8):
        flipped = bytearray(SAMPLE.signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        outcome = _outcome(_text(SAMPLE_PAYLOAD, bytes(flipped)), KEYS)
        assert ReceiptNotVerified is outcome
        outcomes.append(outcome)
    assert None not in outcomes
    assert (len(SAMPLE_PAYLOAD) + 64) * 8 == len(outcomes)


def test_non_canonical_base64_of_the_same_bytes_is_refused() -> None:
    """Unused low bits in a segment's last character would give a second text for one receipt."""
    _, payload, signature = SAMPLE_TEXT.split(".")
    # 64 signature bytes fill 2 bits of the last of 86 characters; its lowest bit is unused.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    loose = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    assert _unb64(loose) == _unb64(signature)
    assert loose != signature
    with pytest.raises(MalformedReceipt):
        Receipt.parse(f"tar1.{payload}.{loose}")


@given(st.data())
def test_random_edits_are_refused(data: st.DataObject) -> None:
    """Any text edit (any Unicode, anywhere, any length) is refused, and only as documented."""
    start = data.draw(st.integers(min_value=0, max_value=len(SAMPLE_TEXT)))
    end = data.draw(st.integers(min_value=start, max_value=len(SAMPLE_TEXT)))
    inserted = data.draw(st.text(max_size=8))
    forged = SAMPLE_TEXT[:start] + inserted + SAMPLE_TEXT[end:]
    if forged != SAMPLE_TEXT:
        assert _outcome(forged, KEYS) is not None


# --- junk to parse --------------------------------------------------------------------------------


def _payload_with(**changes: object) -> bytes:
    fields = json.loads(SAMPLE_PAYLOAD)
    fields.update(changes)
    return _canonical(fields)


_SIG = SAMPLE.signature
_PAYLOAD_B64 = _b64(SAMPLE_PAYLOAD)
_SIG_B64 = _b64(_SIG)

JUNK_TYPES: list[object] = [
    None,
    0,
    1.5,
    True,
    SAMPLE_TEXT.encode(),
    bytearray(SAMPLE_TEXT.encode()),
    [SAMPLE_TEXT],
    {"receipt": SAMPLE_TEXT},
    SAMPLE,
    object(),
]

JUNK_TEXT: dict[str, str] = {
    "empty": "",
    "huge": "tar1." + "A" * 100_000 + "." + _SIG_B64,
    "leading space": " " + SAMPLE_TEXT,
    "trailing newline": SAMPLE_TEXT + "\n",
    "crlf": SAMPLE_TEXT + "\r\n",
    "nul": SAMPLE_TEXT[:20] + "\x00" + SAMPLE_TEXT[20:],
    "tab": SAMPLE_TEXT[:20] + "\t" + SAMPLE_TEXT[20:],
    "arabic letter": SAMPLE_TEXT[:20] + "ك" + SAMPLE_TEXT[21:],
    "arabic-indic digit": SAMPLE_TEXT[:30] + "٣" + SAMPLE_TEXT[31:],
    "fullwidth": SAMPLE_TEXT.replace("t", "\uff54", 1),
    "zero width": SAMPLE_TEXT[:10] + "\u200b" + SAMPLE_TEXT[10:],
    "lone surrogate": SAMPLE_TEXT[:10] + "\ud800" + SAMPLE_TEXT[10:],
    "upper prefix": "TAR1" + SAMPLE_TEXT[4:],
    "other version prefix": "tar2" + SAMPLE_TEXT[4:],
    "no prefix": SAMPLE_TEXT[5:],
    "prefix only": "tar1.",
    "empty parts": "tar1..",
    "empty signature": f"tar1.{_PAYLOAD_B64}.",
    "empty payload": f"tar1..{_SIG_B64}",
    "no signature": f"tar1.{_PAYLOAD_B64}",
    "extra part": SAMPLE_TEXT + "." + _SIG_B64,
    "padding": f"tar1.{_PAYLOAD_B64}.{_SIG_B64}==",
    "padded payload": "tar1." + base64.urlsafe_b64encode(SAMPLE_PAYLOAD).decode() + "." + _SIG_B64,
    "standard alphabet": "tar1."
    + base64.b64encode(SAMPLE_PAYLOAD).decode().rstrip("=")
    + "."
    + base64.b64encode(_SIG).decode().rstrip("="),
    "impossible length": f"tar1.{_PAYLOAD_B64}A.{_SIG_B64}",
    "short signature": _text(SAMPLE_PAYLOAD, _SIG[:63]),
    "long signature": _text(SAMPLE_PAYLOAD, _SIG + b"\x00"),
    "not json": _text(b"code_id=q3Vx0bLk9TzA2mNc", _SIG),
    "json array": _text(b"[1,2,3]", _SIG),
    "json string": _text(b'"tar1"', _SIG),
    "json null": _text(b"null", _SIG),
    "deep nesting": _text(b"[" * 1400, _SIG),
    "deep object": _text(b'{"a":' * 250, _SIG),
    "truncated json": _text(SAMPLE_PAYLOAD[:-1], _SIG),
    "trailing json": _text(SAMPLE_PAYLOAD + b"{}", _SIG),
    "not ascii": _text(SAMPLE_PAYLOAD.replace(b"mobily", "موبايلي".encode()), _SIG),
    "latin-1 byte": _text(SAMPLE_PAYLOAD.replace(b"mobily", b"mob\xefly"), _SIG),
    "spaces in json": _text(json.dumps(json.loads(SAMPLE_PAYLOAD), sort_keys=True).encode(), _SIG),
    "unsorted keys": _text(
        json.dumps(
            dict(reversed(json.loads(SAMPLE_PAYLOAD).items())), separators=(",", ":")
        ).encode(),
        _SIG,
    ),
    "duplicate key": _text(SAMPLE_PAYLOAD[:-1] + b',"version":1}', _SIG),
    "escaped character": _text(SAMPLE_PAYLOAD.replace(b'"r1"', b'"\\u00721"'), _SIG),
    "extra field": _text(_payload_with(extra="x"), _SIG),
    "identity number field": _text(_payload_with(national_id="1000000008"), _SIG),
    "missing field": _text(
        _canonical({k: v for k, v in json.loads(SAMPLE_PAYLOAD).items() if k != "service_id"}),
        _SIG,
    ),
    "no fields": _text(b"{}", _SIG),
    "version as text": _text(_payload_with(version="1"), _SIG),
    "version as bool": _text(_payload_with(version=True), _SIG),
    "version as float": _text(_payload_with(version=1.0), _SIG),
    "version zero": _text(_payload_with(version=0), _SIG),
    "version nan": _text(SAMPLE_PAYLOAD.replace(b'"version":1', b'"version":NaN'), _SIG),
    "code id as number": _text(_payload_with(code_id=12345), _SIG),
    "code id null": _text(_payload_with(code_id=None), _SIG),
    "code id empty": _text(_payload_with(code_id=""), _SIG),
    "code id too long": _text(_payload_with(code_id="c" * 65), _SIG),
    "code id with space": _text(_payload_with(code_id="q3Vx 0bLk"), _SIG),
    "provider as list": _text(_payload_with(provider_id=["stc"]), _SIG),
    "service as object": _text(_payload_with(service_id={"id": "new_line"}), _SIG),
    "customer is an id number": _text(_payload_with(customer_ref="1000000008"), _SIG),
    "customer with newline": _text(_payload_with(customer_ref="3f9a\n0c1b"), _SIG),
    "subject_ref of the last format": _text(
        _canonical(
            {
                **{k: v for k, v in json.loads(SAMPLE_PAYLOAD).items() if k != "customer_ref"},
                "subject_ref": FIELDS["customer_ref"],
            }
        ),
        _SIG,
    ),
    "key id too long": _text(_payload_with(key_id="k" * 33), _SIG),
    "key id with colon": _text(_payload_with(key_id="r:1"), _SIG),
    "key id as number": _text(_payload_with(key_id=1), _SIG),
    "time as microseconds": _text(_payload_with(redeemed_at=1772357415250001), _SIG),
    "naive time": _text(_payload_with(redeemed_at="2026-03-01T09:30:15.250001"), _SIG),
    "offset time": _text(_payload_with(redeemed_at="2026-03-01T12:30:15.250001+03:00"), _SIG),
    "utc as offset": _text(_payload_with(redeemed_at="2026-03-01T09:30:15.250001+00:00"), _SIG),
    "lowercase z": _text(_payload_with(redeemed_at="2026-03-01T09:30:15.250001z"), _SIG),
    "no microseconds": _text(_payload_with(redeemed_at="2026-03-01T09:30:15Z"), _SIG),
    "milliseconds": _text(_payload_with(redeemed_at="2026-03-01T09:30:15.250Z"), _SIG),
    "space separator": _text(_payload_with(redeemed_at="2026-03-01 09:30:15.250001Z"), _SIG),
    "impossible date": _text(_payload_with(redeemed_at="2026-02-30T09:30:15.250001Z"), _SIG),
    "hour 24": _text(_payload_with(redeemed_at="2026-03-01T24:00:00.000000Z"), _SIG),
    "year zero": _text(_payload_with(redeemed_at="0000-01-01T00:00:00.000000Z"), _SIG),
    "arabic digits in time": _text(_payload_with(redeemed_at="٢٠٢٦-03-01T09:30:15.250001Z"), _SIG),
}


@pytest.mark.parametrize("value", JUNK_TYPES, ids=lambda value: type(value).__name__)
def test_parse_refuses_non_text(value: object) -> None:
    """Only str is a receipt text: bytes, numbers, containers and receipts themselves are not."""
    with pytest.raises(MalformedReceipt) as caught:
        Receipt.parse(value)
    assert "malformed_receipt" == caught.value.code
    with pytest.raises(MalformedReceipt):
        verify_receipt(value, KEYS)


@pytest.mark.parametrize("text", list(JUNK_TEXT.values()), ids=list(JUNK_TEXT))
def test_parse_refuses_junk_text(text: str) -> None:
    """Anything but the exact form ``to_text`` writes is malformed, and the message says why."""
    with pytest.raises(MalformedReceipt) as caught:
        Receipt.parse(text)
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert isinstance(error, ValueError)
    assert error.details["reason"]
    assert error.details["reason_ar"]
    # The message names the problem, never the receipt.
    assert len(str(error)) < 300
    assert _PAYLOAD_B64[:24] not in str(error)
    assert _SIG_B64[:24] not in str(error)


def test_length_cap_is_exact() -> None:
    """A text of exactly the cap is judged on its form; one character more is refused for length."""
    filler = MAX_RECEIPT_LENGTH - len("tar1..") - len(_SIG_B64)
    at_cap = f"tar1.{'A' * filler}.{_SIG_B64}"
    over = f"tar1.{'A' * (filler + 1)}.{_SIG_B64}"
    assert MAX_RECEIPT_LENGTH == len(at_cap)
    with pytest.raises(MalformedReceipt) as at:
        Receipt.parse(at_cap)
    with pytest.raises(MalformedReceipt) as beyond:
        Receipt.parse(over)
    assert "1 to 2048" not in at.value.message_en
    assert "1 to 2048" in beyond.value.message_en


@given(st.text(max_size=300))
def test_any_text_is_refused_as_malformed(text: str) -> None:
    """Arbitrary text is malformed, never another exception."""
    with pytest.raises(MalformedReceipt):
        Receipt.parse(text)


@given(st.binary(max_size=600), st.binary(min_size=64, max_size=64))
def test_any_payload_bytes_are_refused_as_malformed(payload: bytes, signature: bytes) -> None:
    """Arbitrary bytes in the payload slot are malformed, never another exception."""
    with pytest.raises(MalformedReceipt):
        Receipt.parse(_text(payload, signature))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(sorted(json.loads(SAMPLE_PAYLOAD))), _JSON_VALUES))
def test_wrong_typed_fields_are_refused_as_malformed(changes: dict[str, object]) -> None:
    """Any field replaced by any JSON value: well formed only if every field is still valid."""
    fields = {**json.loads(SAMPLE_PAYLOAD), **changes}
    text = _text(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode(), _SIG)
    try:
        receipt = Receipt.parse(text)
    except MalformedReceipt:
        return
    # Whatever parsed must be exactly what was sent, and still only verifies if unchanged.
    assert json.loads(receipt.payload()) == fields
    assert (receipt == SAMPLE) == (_outcome(text, KEYS) is None)


def test_nothing_but_malformed_receipt_escapes_parse() -> None:
    """MalformedReceipt is an InvalidInput and a ValueError; it is not a refusal of a code."""
    assert issubclass(MalformedReceipt, InvalidInput)
    assert issubclass(MalformedReceipt, ValueError)
    assert not issubclass(MalformedReceipt, ReceiptNotVerified)


# --- building receipts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("code_id", ""),
        ("code_id", "c" * 65),
        ("code_id", "q3Vx 0bLk"),
        ("code_id", "رمز"),
        ("code_id", 12345),
        ("code_id", None),
        ("provider_id", "st\nc"),
        ("provider_id", b"stc"),
        ("service_id", "new line"),
        ("service_id", "new_line\x00"),
        ("customer_ref", "1000000008"),
        ("customer_ref", "2129040479"),
        ("customer_ref", ""),
        ("customer_ref", "3f9a0c1b2d4e5f60718293a4b5c6d7e8" * 3),
    ],
)
def test_sign_refuses_fields_a_receipt_cannot_hold(name: str, value: Any) -> None:
    """Bad field values are MalformedReceipt at signing; a bare ID number never gets in."""
    with pytest.raises(MalformedReceipt) as caught:
        _receipt(**{name: value})
    assert name in caught.value.message_en


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("version", 2),
        ("version", 0),
        ("version", True),
        ("version", "1"),
        ("key_id", ""),
        ("key_id", "k" * 33),
        ("key_id", "r 1"),
        ("signature", b""),
        ("signature", bytes(63)),
        ("signature", bytes(65)),
        ("signature", bytearray(64)),
        ("signature", "x" * 64),
    ],
)
def test_receipt_refuses_bad_values(name: str, value: Any) -> None:
    """An invalid Receipt never exists: version, key id and signature are checked when built."""
    with pytest.raises(MalformedReceipt):
        attrs.evolve(SAMPLE, **{name: value})


def test_redeemed_at_must_be_a_datetime() -> None:
    """A time given as text or a number is refused."""
    for value in ("2026-03-01T09:30:15.250001Z", 1772357415.25):
        with pytest.raises(InvalidTime):
            _receipt(redeemed_at=value)


def test_repr_leaves_the_signature_out() -> None:
    """repr shows the fields, not the signature bytes."""
    shown = repr(SAMPLE)
    assert "signature" not in shown
    assert "q3Vx0bLk9TzA2mNc" in shown
    assert "'r1'" in shown


def test_receipts_pickle() -> None:
    """A receipt crosses process boundaries intact."""
    restored = pickle.loads(pickle.dumps(SAMPLE))  # noqa: S301 - our own object
    assert SAMPLE == restored
    restored.verify(KEYS)


def test_receipt_of_a_real_redemption_carries_no_identity_number(
    issuer: CodeIssuer, citizen: Subject
) -> None:
    """End to end: issue, redeem, sign; the receipt names the subject by pseudonym only."""
    issued = issuer.issue(citizen, "stc")
    redemption = CodeIssuer(
        issuer.storage, keyring=issuer.keyring, clock=issuer.clock, signer=_signer()
    ).redeem(citizen, "stc", issued.code, "new_line")
    receipt = redemption.receipt
    assert receipt is not None
    text = receipt.to_text()
    decoded = _unb64(text.split(".")[1]).decode("ascii")
    assert citizen.identifier not in decoded
    assert citizen.identifier not in text
    assert issued.code not in decoded
    assert redemption.customer_ref == receipt.customer_ref
    assert issued.code_id == verify_receipt(text, KEYS).code_id


def _stored_values(storage: MemoryStorage) -> set[str]:
    """Every digest and sealed identity that storage holds, as the text a receipt could show."""
    values: set[str] = set()
    for snapshot in storage.snapshots():
        if snapshot.identity is not None:
            values.add(snapshot.identity)
        for record in snapshot.codes:
            values.add(record.digest.hex())
            kept = (record.msisdn_ref, record.recipient_ref, record.request_ref)
            values |= {value for value in (*kept, record.request_inputs) if value is not None}
    return values


def test_customer_ref_is_one_per_operator(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Receipts and redemptions name a customer alike at one operator, otherwise at another."""
    # Neither pseudonym is the key under which storage files the customer.
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock, signer=_signer())
    redemptions = []
    for provider in ("stc", "stc", "mobily"):
        issued = issuer.issue(citizen, provider)
        redemptions.append(issuer.redeem(citizen, provider, issued.code, "new_line"))
        clock.advance(minutes=1)
    first, again, elsewhere = redemptions
    identity = identity_of(citizen)
    assert keyring.customer_ref(identity, "stc") == first.customer_ref == again.customer_ref
    assert keyring.customer_ref(identity, "mobily") == elsewhere.customer_ref
    assert first.customer_ref != elsewhere.customer_ref
    receipts = [redemption.receipt for redemption in redemptions]
    assert [redemption.customer_ref for redemption in redemptions] == [
        verify_receipt(receipt.to_text(), KEYS).customer_ref for receipt in receipts if receipt
    ]
    storage_key = keyring.subject_ref(identity)
    assert {snapshot.subject_ref for snapshot in storage.snapshots()} == {storage_key}
    assert storage_key not in {first.customer_ref, elsewhere.customer_ref}


@given(
    subject=eligible_subjects(),
    providers=st.lists(st.sampled_from(SAUDI_PROVIDERS), min_size=2, max_size=2, unique=True),
)
@settings(max_examples=25)
def test_no_two_operators_see_one_customer_under_one_pseudonym(
    subject: Subject, providers: list[Provider]
) -> None:
    """For any customer and any two operators, the receipts' customer refs differ."""
    keyring, clock = Keyring.generate(), ManualClock(START)
    issuer = CodeIssuer(MemoryStorage(), keyring=keyring, clock=clock, signer=_signer())
    refs = set()
    for provider in providers:
        issued = issuer.issue(subject, provider)
        receipt = issuer.redeem(subject, provider, issued.code, "new_line").receipt
        assert receipt is not None
        refs.add(verify_receipt(receipt.to_text(), KEYS).customer_ref)
    assert 2 == len(refs)
    assert keyring.subject_ref(identity_of(subject)) not in refs


def test_receipts_hold_no_storage_key_and_no_stored_digest(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """A receipt and a redemption hold no storage key, the recipient's included, and no digest."""
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock, signer=_signer())
    transfer = issuer.issue(
        citizen, "zain", service="number_transfer", msisdn="0551234567", recipient=resident
    )
    plain = issuer.issue(citizen, "stc", service="new_line")
    outputs = [
        issuer.redeem(
            citizen,
            "zain",
            transfer.code,
            "number_transfer",
            msisdn="0551234567",
            recipient=resident,
            request_id="req-0001",
            reference="branch-12",
        ),
        issuer.redeem(citizen, "stc", plain.code, "new_line", request_id="req-0002"),
    ]
    stored = _stored_values(storage)
    # Two code digests, one sealed identity, and the digests of a mobile number, a recipient,
    # two request ids and their inputs.
    assert 2 + 1 + 2 + 2 * 2 == len(stored)
    forbidden = stored | {transfer.code, plain.code, citizen.identifier, resident.identifier}
    for identity in (identity_of(citizen), identity_of(resident)):
        forbidden.add(keyring.subject_ref(identity))
        forbidden.add(keyring.audit_ref(identity))
    texts = []
    for redemption in outputs:
        receipt = redemption.receipt
        assert receipt is not None
        payload = _unb64(receipt.to_text().split(".")[1]).decode("ascii")
        texts += [repr(redemption), repr(receipt), receipt.to_text(), payload]
    assert [] == sorted({secret for secret in forbidden for text in texts if secret in text})


# --- verification keys ----------------------------------------------------------------------------


def test_wrong_key_with_the_same_id_fails() -> None:
    """Another key under the same id is a bad signature, not an unknown key."""
    impostor = SigningKey.generate("r1").public_key
    with pytest.raises(ReceiptNotVerified) as caught:
        SAMPLE.verify(impostor)
    assert ReceiptNotVerified is type(caught.value)
    with pytest.raises(ReceiptNotVerified) as caught:
        SAMPLE.verify((impostor,))
    assert ReceiptNotVerified is type(caught.value)


def test_wrong_bare_public_key_fails() -> None:
    """A bare public key skips the id check but must still match the signature."""
    with pytest.raises(ReceiptNotVerified):
        SAMPLE.verify(Ed25519PrivateKey.generate().public_key())
    SAMPLE.verify(Ed25519PrivateKey.from_private_bytes(R1_SEED).public_key())


def test_bare_public_key_ignores_the_key_id() -> None:
    """With a bare public key, a receipt signed under any id verifies if the key matches."""
    renamed = SigningKey(
        key_id="anything", private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED)
    )
    receipt = _receipt(_signer(renamed))
    receipt.verify(Ed25519PrivateKey.from_private_bytes(R1_SEED).public_key())
    with pytest.raises(UnknownSigningKey):
        receipt.verify(VerifyKey.from_text(R1_PUBLIC))


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(lambda: _r2().public_key, id="one key, other id"),
        pytest.param(lambda: (), id="no keys"),
        pytest.param(lambda: [_r2().public_key], id="list without the id"),
        pytest.param(lambda: iter([_r2().public_key]), id="iterator without the id"),
    ],
)
def test_key_id_not_given_is_unknown(keys: Callable[[], Any]) -> None:
    """When no key given has the receipt's key id, the error says so and names the id."""
    with pytest.raises(UnknownSigningKey) as caught:
        SAMPLE.verify(keys())
    error = caught.value
    assert isinstance(error, ReceiptNotVerified)
    assert "unknown_signing_key" == error.code
    assert {"key_id": "r1"} == dict(error.details)
    assert "r1" in error.message_en
    assert "r1" in error.message_ar


def test_keys_are_picked_by_id_from_any_iterable() -> None:
    """Lists, tuples, generators and sets of keys all work; the key with the id is used."""
    r1, r2 = _r1().public_key, _r2().public_key
    for keys in ([r2, r1], (r1, r2), {r1, r2}, (key for key in (r2, r1))):
        SAMPLE.verify(keys)
    SAMPLE.verify([r1, r1])  # the same key twice is harmless


def test_two_different_keys_with_one_id_are_refused() -> None:
    """Ambiguous keys are a configuration error, not a guess."""
    impostor = SigningKey.generate("r1").public_key
    with pytest.raises(KeyringError):
        SAMPLE.verify([VerifyKey.from_text(R1_PUBLIC), impostor])


@pytest.mark.parametrize(
    "keys",
    [
        None,
        R1_PUBLIC,
        R1_PUBLIC.encode(),
        42,
        [R1_PUBLIC],
        [VerifyKey.from_text(R1_PUBLIC), None],
        {"r1": VerifyKey.from_text(R1_PUBLIC)},
        _r1(),
        Ed25519PrivateKey.from_private_bytes(R1_SEED),
        _signer(),
    ],
    ids=lambda keys: type(keys).__name__,
)
def test_verify_refuses_things_that_are_not_keys(keys: Any) -> None:
    """Key texts, private keys, signers and other junk are a KeyringError, never a TypeError."""
    with pytest.raises(KeyringError):
        SAMPLE.verify(keys)


def test_receipt_not_verified_is_its_own_family() -> None:
    """A forged receipt is neither malformed input nor a refused code, nor a configuration error."""
    assert issubclass(UnknownSigningKey, ReceiptNotVerified)
    assert issubclass(ReceiptNotVerified, TelecardAuthError)
    for family in (InvalidInput, ValueError, NotPermitted, RedemptionRefused, ConfigurationError):
        assert not issubclass(ReceiptNotVerified, family)


def test_not_verified_message_names_no_receipt_text() -> None:
    """The refusal of a forged receipt repeats none of it."""
    forged = SAMPLE_TEXT[:-3] + ("AAA" if SAMPLE_TEXT[-3:] != "AAA" else "BAA")
    with pytest.raises(ReceiptNotVerified) as caught:
        verify_receipt(forged, KEYS)
    assert _PAYLOAD_B64[:24] not in str(caught.value)
    assert "q3Vx0bLk9TzA2mNc" not in str(caught.value)


# --- rotation -------------------------------------------------------------------------------------


def test_rotation() -> None:
    """Add a key: new receipts use it, older ones still verify; retire the old key: they fail."""
    before = _signer()
    old = before.sign(**FIELDS)
    rotated = before.with_key(_r2())
    assert ("r1",) == tuple(key.key_id for key in before.keys)  # the original is unchanged
    assert ("r1", "r2") == tuple(key.key_id for key in rotated.verify_keys())
    assert "r2" == rotated.current.key_id

    new = rotated.sign(**FIELDS)
    assert "r2" == new.key_id
    assert "r1" == old.key_id
    assert old == verify_receipt(old.to_text(), rotated.verify_keys())
    assert new == verify_receipt(new.to_text(), rotated.verify_keys())
    with pytest.raises(UnknownSigningKey):
        verify_receipt(new.to_text(), before.verify_keys())

    retired = rotated.without_key("r1")
    assert ("r2",) == tuple(key.key_id for key in retired.keys)
    assert new == verify_receipt(new.to_text(), retired.verify_keys())
    with pytest.raises(UnknownSigningKey) as caught:
        verify_receipt(old.to_text(), retired.verify_keys())
    assert "r1" == caught.value.details["key_id"]


def test_a_standby_key_signs_nothing_until_it_is_made_current() -> None:
    """with_key(current=False) publishes a key first; with_current makes it sign, dropping none."""
    standby = _signer().with_key(_r2(), current=False)
    assert "r1" == standby.current.key_id
    assert "r1" == standby.sign(**FIELDS).key_id
    assert {"r1", "r2"} == {key.key_id for key in standby.verify_keys()}

    promoted = standby.with_current("r2")
    signed = promoted.sign(**FIELDS)
    assert "r2" == signed.key_id
    assert signed == verify_receipt(signed.to_text(), standby.verify_keys())
    assert {"r1", "r2"} == {key.key_id for key in promoted.keys}
    assert "r1" == promoted.with_current("r1").current.key_id


@pytest.mark.parametrize("key_id", ["r9", "", 2, None])
def test_with_current_refuses_a_key_it_does_not_hold(key_id: Any) -> None:
    """Only a held key can become current; anything else is a KeyringError."""
    with pytest.raises(KeyringError):
        _signer(_r1(), _r2()).with_current(key_id)


def test_rotated_receipt_differs_only_in_key_and_signature() -> None:
    """The same redemption signed after rotation names the new key and carries a new signature."""
    old = _receipt()
    new = _receipt(_signer(_r1(), _r2()))
    assert attrs.evolve(new, key_id="r1", signature=old.signature) == old
    assert old.signature != new.signature


def test_cannot_add_a_key_with_a_used_id() -> None:
    """Key ids are unique in a signer, even for the same key."""
    with pytest.raises(KeyringError):
        _signer().with_key(SigningKey.generate("r1"))
    with pytest.raises(KeyringError):
        _signer().with_key(_r1())


def test_cannot_retire_the_last_key() -> None:
    """A signer always has a key to sign with."""
    with pytest.raises(KeyringError):
        _signer().without_key("r1")
    with pytest.raises(KeyringError):
        _signer(_r1(), _r2()).without_key("r1").without_key("r2")


def test_cannot_retire_a_key_not_held() -> None:
    """Retiring a mistyped id is an error, not a silent no-op."""
    with pytest.raises(KeyringError):
        _signer(_r1(), _r2()).without_key("r3")


@pytest.mark.parametrize("keys", [(), [], None, (_r1().public_key,), ("r1",), _r1()])
def test_signer_needs_signing_keys(keys: Any) -> None:
    """A signer is built from one or more SigningKey, nothing else."""
    with pytest.raises(KeyringError):
        ReceiptSigner(keys=keys)


def test_generate() -> None:
    """generate makes a one-key signer with fresh random keys."""
    first, second = ReceiptSigner.generate(), ReceiptSigner.generate("r7")
    assert "r1" == first.current.key_id
    assert "r7" == second.current.key_id
    assert first.current.public_key.to_text() != second.current.public_key.to_text()
    receipt = second.sign(**FIELDS)
    assert receipt == verify_receipt(receipt.to_text(), second.verify_keys())
    with pytest.raises(UnknownSigningKey):
        receipt.verify(first.verify_keys())


# --- key text forms -------------------------------------------------------------------------------


def test_key_texts() -> None:
    """Private and public key texts have their documented forms and round trip."""
    key = _r1()
    assert R1_PRIVATE == key.to_private_text()
    assert R1_PUBLIC == key.public_key.to_text()
    assert key == SigningKey.from_private_text(key.to_private_text())
    assert key.public_key == VerifyKey.from_text(R1_PUBLIC)
    assert hash(key.public_key) == hash(VerifyKey.from_text(R1_PUBLIC))
    assert hash(key) == hash(SigningKey.from_private_text(R1_PRIVATE))
    assert re.fullmatch(r"tar1-public:r1:[A-Za-z0-9_-]{43}", R1_PUBLIC)


def test_key_texts_allow_surrounding_whitespace() -> None:
    """A line read from a file with its newline still reads."""
    assert _r1() == SigningKey.from_private_text(f"  {R1_PRIVATE}\n")
    assert _r1().public_key == VerifyKey.from_text(f"{R1_PUBLIC}\r\n")


@given(key_ids())
def test_any_key_id_round_trips(key_id: str) -> None:
    """Every valid key id survives both key texts and signs receipts that name it."""
    key = SigningKey(key_id=key_id, private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED))
    assert key == SigningKey.from_private_text(key.to_private_text())
    assert key.public_key == VerifyKey.from_text(key.public_key.to_text())
    receipt = _receipt(_signer(key))
    assert key_id == verify_receipt(receipt.to_text(), key.public_key).key_id


def test_key_equality() -> None:
    """Keys are equal by id and key bytes."""
    r1 = _r1()
    renamed = SigningKey(key_id="r9", private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED))
    assert r1 != renamed
    assert r1 != _r2()
    assert r1.public_key != renamed.public_key
    assert r1.public_key != attrs.evolve(_r2().public_key, key_id="r1")
    assert r1.public_key == VerifyKey(key_id="r1", public_key=r1.private_key.public_key())


def test_repr_never_shows_the_private_key() -> None:
    """A signing key or signer in a log shows ids only."""
    secret = R1_PRIVATE.rsplit(":", 1)[1]
    assert "SigningKey(key_id='r1')" == repr(_r1())
    assert secret not in repr(_signer(_r1(), _r2()))
    assert secret not in str(_r1())


BAD_KEY_IDS: list[object] = ["", "a" * 33, "k 1", "k/1", "k:1", "k1\n", "ك1", "\uff4b1", 1, None]


@pytest.mark.parametrize("key_id", BAD_KEY_IDS, ids=repr)
def test_key_ids_follow_the_keyring_rule(key_id: object) -> None:
    """Receipt key ids obey the HMAC keyring's rule: both refuse the same ids."""
    with pytest.raises(KeyringError):
        HmacKey(key_id=key_id, secret=R1_SEED)  # type: ignore[arg-type]
    with pytest.raises(KeyringError):
        SigningKey(key_id=key_id, private_key=Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(KeyringError):
        VerifyKey(key_id=key_id, public_key=_r1().private_key.public_key())  # type: ignore[arg-type]


@given(key_ids())
def test_valid_key_ids_agree_with_the_keyring(key_id: str) -> None:
    """Every id an HmacKey accepts, a SigningKey accepts too."""
    assert key_id == HmacKey(key_id=key_id, secret=R1_SEED).key_id
    assert key_id == SigningKey(key_id=key_id, private_key=Ed25519PrivateKey.generate()).key_id


@pytest.mark.parametrize(
    "value", [None, b"\x00" * 32, Ed25519PrivateKey.generate().public_key(), "key"], ids=repr
)
def test_signing_key_needs_an_ed25519_private_key(value: object) -> None:
    """Only an Ed25519PrivateKey signs."""
    with pytest.raises(KeyringError):
        SigningKey(key_id="r1", private_key=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [None, bytes(32), Ed25519PrivateKey.generate(), R1_PUBLIC], ids=repr
)
def test_verify_key_needs_an_ed25519_public_key(value: object) -> None:
    """Only an Ed25519PublicKey verifies."""
    with pytest.raises(KeyringError):
        VerifyKey(key_id="r1", public_key=value)  # type: ignore[arg-type]


_PRIVATE_B64 = R1_PRIVATE.rsplit(":", 1)[1]
_PUBLIC_B64 = R1_PUBLIC.rsplit(":", 1)[1]

JUNK_KEY_TEXTS: dict[str, object] = {
    "none": None,
    "bytes": R1_PRIVATE.encode(),
    "number": 42,
    "empty": "",
    "spaces": "   ",
    "huge": R1_PRIVATE + "A" * 100_000,
    "no prefix": "r1:" + _PRIVATE_B64,
    "wrong prefix": "tar2-private:r1:" + _PRIVATE_B64,
    "upper prefix": "TAR1-PRIVATE:r1:" + _PRIVATE_B64,
    "no key id": "tar1-private::" + _PRIVATE_B64,
    "key id too long": f"tar1-private:{'k' * 33}:" + _PRIVATE_B64,
    "key id with space": "tar1-private:r 1:" + _PRIVATE_B64,
    "arabic key id": "tar1-private:ك1:" + _PRIVATE_B64,
    "missing key": "tar1-private:r1:",
    "short key": "tar1-private:r1:" + _PRIVATE_B64[:-1],
    "long key": "tar1-private:r1:" + _PRIVATE_B64 + "A",
    "padded key": "tar1-private:r1:" + _PRIVATE_B64 + "=",
    "non-canonical last character": "tar1-private:r1:" + _PRIVATE_B64[:-1] + "9",
    "standard alphabet": "tar1-private:r1:" + _PRIVATE_B64[:-2] + "+/",
    "inner newline": "tar1-private:r1:" + _PRIVATE_B64[:20] + "\n" + _PRIVATE_B64[20:],
    "nul": R1_PRIVATE + "\x00",
    "arabic-indic digit": R1_PRIVATE[:-1] + "٨",
    "extra part": R1_PRIVATE + ":x",
    "public text": R1_PUBLIC,
}


@pytest.mark.parametrize("text", list(JUNK_KEY_TEXTS.values()), ids=list(JUNK_KEY_TEXTS))
def test_junk_private_key_text_is_a_keyring_error(text: object) -> None:
    """A bad private key text is a KeyringError whose message never repeats the key."""
    with pytest.raises(KeyringError) as caught:
        SigningKey.from_private_text(text)
    assert _PRIVATE_B64[:12] not in str(caught.value)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("text", list(JUNK_KEY_TEXTS.values()), ids=list(JUNK_KEY_TEXTS))
def test_junk_public_key_text_is_a_keyring_error(text: object) -> None:
    """The same junk, made public, is refused as a public key text too."""
    if isinstance(text, str):
        text = text.replace("tar1-private:", "tar1-public:").replace(_PRIVATE_B64, _PUBLIC_B64)
        if text == R1_PUBLIC:  # the "public text" case: hand it a private text instead
            text = R1_PRIVATE
    with pytest.raises(KeyringError):
        VerifyKey.from_text(text)


def test_texts_of_the_other_kind_are_refused_with_a_reason() -> None:
    """A private key given as a public one (or back) is refused, saying which it is."""
    with pytest.raises(KeyringError, match="private key") as caught:
        VerifyKey.from_text(R1_PRIVATE)
    assert _PRIVATE_B64[:12] not in str(caught.value)
    with pytest.raises(KeyringError, match="public key"):
        SigningKey.from_private_text(R1_PUBLIC)


# --- another process, public key only -------------------------------------------------------------

_CHILD = """
import json, sys
from telecard_auth._core.receipt import VerifyKey, verify_receipt

key = VerifyKey.from_text(sys.argv[1])
try:
    receipt = verify_receipt(sys.stdin.read(), key)
except Exception as error:
    print(json.dumps({"error": getattr(error, "code", type(error).__name__)}))
    sys.exit(1)
print(json.dumps({
    "code_id": receipt.code_id,
    "provider_id": receipt.provider_id,
    "service_id": receipt.service_id,
    "redeemed_at": receipt.redeemed_at.isoformat(),
    "customer_ref": receipt.customer_ref,
    "key_id": receipt.key_id,
}))
"""


def _in_child(public_text: str, receipt_text: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _CHILD, public_text],
        input=receipt_text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_verifies_in_another_process_with_the_public_key_only() -> None:
    """An operator's process, handed one public key line and the receipt text, verifies it."""
    signer = _signer(_r1(), _r2())
    receipt = signer.sign(**FIELDS)
    public_text = signer.current.public_key.to_text()
    assert "private" not in public_text
    returncode, answer = _in_child(public_text, receipt.to_text())
    assert 0 == returncode
    assert {
        "code_id": FIELDS["code_id"],
        "provider_id": "mobily",
        "service_id": "lost_sim_replacement",
        "redeemed_at": "2026-03-01T09:30:15.250001+00:00",
        "customer_ref": FIELDS["customer_ref"],
        "key_id": "r2",
    } == answer


def test_another_process_refuses_a_tampered_receipt() -> None:
    """The operator's process refuses a forged receipt and an unknown key."""
    fields = json.loads(SAMPLE_PAYLOAD)
    fields["service_id"] = "new_line"
    forged = _text(_canonical(fields), SAMPLE.signature)
    assert (1, {"error": "receipt_not_verified"}) == _in_child(R1_PUBLIC, forged)
    r2_public = _r2().public_key.to_text()
    assert (1, {"error": "unknown_signing_key"}) == _in_child(r2_public, SAMPLE_TEXT)
    assert (1, {"error": "malformed_receipt"}) == _in_child(R1_PUBLIC, SAMPLE_TEXT[:-1])


_PLAIN_CHILD = """
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

prefix, key_id, key = sys.argv[1].split(":")
version, payload, signature = sys.stdin.read().split(".")
assert prefix == "tar1-public" and version == "tar1"
Ed25519PublicKey.from_public_bytes(unb64(key)).verify(unb64(signature), unb64(payload))
fields = json.loads(unb64(payload))
assert fields["key_id"] == key_id
print(fields["code_id"], fields["redeemed_at"], "telecard_auth" in sys.modules)
"""


def test_format_verifies_without_the_library() -> None:
    """The documented format is enough: base64, JSON and Ed25519 verify a receipt, no library."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _PLAIN_CHILD, R1_PUBLIC],
        input=SAMPLE_TEXT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "" == result.stderr
    assert f"{FIELDS['code_id']} 2026-03-01T09:30:15.250001Z False\n" == result.stdout


def test_a_receipt_from_the_issuer_verifies_in_another_process_and_no_tamper_passes() -> None:
    """End to end: redeem through CodeIssuer; the operator verifies with the public key only."""
    signer = ReceiptSigner.generate("r1")
    clock = ManualClock(datetime(2026, 3, 1, 9, 0, 0, 123_456, tzinfo=UTC))
    issuer = CodeIssuer(MemoryStorage(), keyring=Keyring.generate(), clock=clock, signer=signer)
    customer = Subject.citizen("1000000008")
    issued = issuer.issue(customer, "zain")
    clock.advance(minutes=12)
    redemption = issuer.redeem(customer, "zain", issued.code, "lost_sim_replacement")
    receipt = redemption.receipt
    assert receipt is not None
    returncode, answer = _in_child(signer.current.public_key.to_text(), receipt.to_text())
    assert 0 == returncode
    assert {
        "code_id": issued.code_id,
        "provider_id": "zain",
        "service_id": "lost_sim_replacement",
        "redeemed_at": clock.now().isoformat(),
        "customer_ref": redemption.customer_ref,
        "key_id": "r1",
    } == answer
    assert customer.identifier not in receipt.to_text()
    fields = json.loads(receipt.payload())
    for name, value in fields.items():
        changed = dict(fields, **{name: value + 1 if isinstance(value, int) else value + "x"})
        forged = _text(_canonical(changed), receipt.signature)
        code, _ = _in_child(signer.current.public_key.to_text(), forged)
        assert 1 == code, name
