"""Tests for signed redemption receipts: JWTs signed with EdDSA, strict verification, Ed25519 JWKs,
key rotation, and verification offline in another process with nothing but the public JWK Set.

Malicious tokens are made here by hand (base64url, JSON and the real private key), so that in each
one only the property under test is wrong: a refusal then shows that property is checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import re
import string
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
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
from telecard_auth._core.errors import (
    MalformedReceipt,
    ReceiptMismatch,
    ReceiptNotVerified,
    UnknownSigningKey,
)
from telecard_auth._core.receipt import (
    DEFAULT_ISSUER,
    MAX_RECEIPT_LENGTH,
    RECEIPT_TYPE,
    Receipt,
    ReceiptSigner,
    SigningKey,
    VerifyKey,
    verify_receipt,
)
from telecard_auth._core.requests import identity_of
from telecard_auth.keys import KeySet

# --- fixed test values ----------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    """Unpadded base64url, computed here independently of the library."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: Mapping[str, Any]) -> bytes:
    """Compact JSON, members in the order given."""
    return json.dumps(value, separators=(",", ":")).encode()


#: Two fixed private keys (test values only, random-looking: a patterned seed such as
#: ``bytes(range(32))`` is refused) and their public halves, worked out once with another tool.
R1_SEED = hashlib.sha256(b"telecard-auth test receipt key r1").digest()
R2_SEED = hashlib.sha256(b"telecard-auth test receipt key r2").digest()
R1_X = "XA278EpkPc7TSI8U5O3P8Hqf0dCEvB_q258kPq7I5tM"
R2_X = "Js6ik7sdgVUeRZdbwGZyDOQeSLdRj3E1Q66CSA_Q2jA"
R1_D = _b64(R1_SEED)

CODE_ID = "q3Vx0bLk9TzA2mNc"
CUSTOMER = "3f9a0c1b2d4e5f60718293a4b5c6d7e8"

#: The facts of one sample redemption, as ``ReceiptSigner.sign`` takes them.
FIELDS: dict[str, Any] = {
    "code_id": CODE_ID,
    "provider_id": "mobily",
    "service_id": "lost_sim_replacement",
    "customer_ref": CUSTOMER,
    "issued_at": datetime(2026, 3, 1, 9, 0, 5, 999999, tzinfo=UTC),
    "redeemed_at": datetime(2026, 3, 1, 9, 30, 15, 250001, tzinfo=UTC),
}
#: The header every receipt signed with r1 has, member for member.
HEADER: dict[str, Any] = {"alg": "EdDSA", "kid": "r1", "typ": "telecard-receipt+jwt"}
#: The claims of the sample redemption: times in whole seconds (2026-03-01T09:30:15Z, 09:00:05Z).
CLAIMS: dict[str, Any] = {
    "iss": "telecard-auth",
    "sub": CUSTOMER,
    "aud": "mobily",
    "iat": 1772357415,
    "jti": CODE_ID,
    "service": "lost_sim_replacement",
    "code_issued_at": 1772355605,
    "bindings": [],
}


def _r1() -> SigningKey:
    return SigningKey(key_id="r1", private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED))


def _r2() -> SigningKey:
    return SigningKey(key_id="r2", private_key=Ed25519PrivateKey.from_private_bytes(R2_SEED))


def _signer(*keys: SigningKey, issuer: str = DEFAULT_ISSUER) -> ReceiptSigner:
    return ReceiptSigner(keys=keys or (_r1(),), issuer=issuer)


def _receipt(signer: ReceiptSigner | None = None, **changes: Any) -> Receipt:
    return (signer or _signer()).sign(**{**FIELDS, **changes})


def _part(value: Mapping[str, Any] | bytes) -> str:
    """One base64url part: of raw bytes, or of a JSON object written compactly."""
    return _b64(value if isinstance(value, bytes) else _json(value))


def _signature(signing_input: str, seed: bytes = R1_SEED) -> str:
    raw = Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input.encode("ascii"))
    return _b64(raw)


def _forge(
    header: Mapping[str, Any] | bytes = HEADER,
    claims: Mapping[str, Any] | bytes = CLAIMS,
    *,
    seed: bytes = R1_SEED,
) -> str:
    """A token put together by hand and signed properly with the real private key ``seed``."""
    signing_input = f"{_part(header)}.{_part(claims)}"
    return f"{signing_input}.{_signature(signing_input, seed)}"


def _with_parts(header: str, payload: str, seed: bytes = R1_SEED) -> str:
    """A token of two base64url texts as given (canonical or not), signed properly."""
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_signature(signing_input, seed)}"


def _hmac_token(header: Mapping[str, Any], key: bytes) -> str:
    """The algorithm-confusion forgery: an HS256 "signature" keyed with public key material."""
    signing_input = f"{_part(header)}.{_part(CLAIMS)}"
    mac = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _header_with(**changes: Any) -> dict[str, Any]:
    """The receipt header with members changed; a member given as ``...`` is left out."""
    return {
        name: value
        for name, value in {**HEADER, **changes}.items()
        if value is not ...  # the Ellipsis marks a member to drop
    }


def _claims_with(**changes: Any) -> dict[str, Any]:
    """The sample claims with members changed; a member given as ``...`` is left out."""
    return {name: value for name, value in {**CLAIMS, **changes}.items() if value is not ...}


def _loose(text: str) -> str:
    """``text`` with the unused low bit of its last character set: other text, the same bytes."""
    assert len(text) % 4 in (2, 3), "the last character of this part has no unused bits"
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    loose = text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]
    assert _unb64(loose) == _unb64(text)
    assert loose != text
    return loose


SAMPLE = _receipt()
SIGNER = _signer()
TOKEN = SAMPLE.token
TOKEN_HEADER, TOKEN_PAYLOAD, TOKEN_SIGNATURE = TOKEN.split(".")
#: The public JWK Set of r1 alone, and of r1 and r2, as an operator parses them from JSON.
JWKS: dict[str, Any] = json.loads(json.dumps(_signer().public_jwks()))
JWKS_BOTH: dict[str, Any] = json.loads(json.dumps(_signer(_r1(), _r2()).public_jwks()))
#: Every refusal verify_receipt documents: nothing else may come out of it for any token.
REFUSALS = (MalformedReceipt, UnknownSigningKey, ReceiptNotVerified, ReceiptMismatch)

#: The receipt ``TOKEN`` must read back as, field for field.
EXPECTED = Receipt(
    token=TOKEN,
    key_id="r1",
    issuer="telecard-auth",
    customer_ref=CUSTOMER,
    provider_id="mobily",
    code_id=CODE_ID,
    service_id="lost_sim_replacement",
    issued_at=datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC),
    redeemed_at=datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC),
    bindings=(),
    reference=None,
)


#: Stands for "the keys of the sample" where a test gives none (None itself is junk to test).
_SAMPLE_KEYS: Any = object()


def _verify(token: object, keys: Any = _SAMPLE_KEYS, **options: Any) -> Receipt:
    """``verify_receipt`` with the r1 key set and audience mobily unless told otherwise."""
    options.setdefault("audience", "mobily")
    return verify_receipt(token, JWKS if keys is _SAMPLE_KEYS else keys, **options)


def _refusal(token: object, keys: Any = _SAMPLE_KEYS, **options: Any) -> TelecardAuthError:
    """The error verifying ``token`` ends in; the test fails if it verifies."""
    with pytest.raises(TelecardAuthError) as caught:
        _verify(token, keys, **options)
    return caught.value


def _outcome(token: object, keys: Any = _SAMPLE_KEYS) -> type[TelecardAuthError] | None:
    """Which documented refusal verifying ``token`` ends in, or ``None`` if it verifies.

    Any exception but the four refusals escapes and fails the test.
    """
    try:
        _verify(token, SIGNER if keys is _SAMPLE_KEYS else keys)
    except REFUSALS as error:
        return type(error)
    return None


# --- strategies -----------------------------------------------------------------------------------

_TOKEN_CHARS = string.ascii_letters + string.digits + "._~:+/=-"


def tokens() -> st.SearchStrategy[str]:
    """Valid receipt text claims: 1-64 characters of the token alphabet."""
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
    issued_at = draw(aware_datetimes())
    fields: dict[str, Any] = {
        "code_id": draw(tokens()),
        "provider_id": draw(st.one_of(provider_ids(), tokens())),
        "service_id": draw(st.one_of(service_ids(), tokens())),
        "customer_ref": draw(pseudonyms()),
        "issued_at": issued_at,
        "redeemed_at": issued_at + draw(_spans()),
        "bindings": draw(st.lists(st.sampled_from(["msisdn", "recipient"]), unique=True)),
    }
    reference = draw(st.none() | st.text(alphabet=string.printable[:95], min_size=1, max_size=64))
    if reference is not None:
        fields["reference"] = reference
    return fields


def _spans() -> st.SearchStrategy[timedelta]:
    return st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=4))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
_B64_PARTS = st.binary(max_size=400).map(_b64)


# --- the token ------------------------------------------------------------------------------------


def test_token_is_a_compact_jws_of_the_header_and_the_claims() -> None:
    """Three base64url parts: exactly the receipt header, the claims, a 64-byte signature."""
    assert TOKEN.count(".") == 2
    assert "=" not in TOKEN
    assert _json(HEADER) == _unb64(TOKEN_HEADER)
    claims = json.loads(_unb64(TOKEN_PAYLOAD))
    assert CLAIMS == claims
    assert [int, int] == [type(claims["iat"]), type(claims["code_issued_at"])]
    assert 64 == len(_unb64(TOKEN_SIGNATURE))
    assert TOKEN == str(SAMPLE)


def test_token_is_what_this_test_builds_by_hand() -> None:
    """Compact JSON of header and claims, signed with plain Ed25519: the same text, exactly."""
    assert _forge() == TOKEN


def test_signature_is_plain_ed25519_over_the_signing_input() -> None:
    """The signature checks with the bare cryptography API over ``header.payload``."""
    public = Ed25519PublicKey.from_public_bytes(_unb64(R1_X))
    signing_input = f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}".encode("ascii")
    public.verify(_unb64(TOKEN_SIGNATURE), signing_input)  # raises InvalidSignature if not


def test_round_trip() -> None:
    """verify_receipt reads back a receipt equal to the one signed, field for field."""
    assert EXPECTED == SAMPLE
    assert SAMPLE == _verify(TOKEN)
    assert SAMPLE == _verify(TOKEN, JWKS_BOTH)


def test_receipt_type_and_issuer_constants() -> None:
    """The typ header and the default issuer are the documented ones."""
    assert "telecard-receipt+jwt" == RECEIPT_TYPE
    assert "telecard-auth" == DEFAULT_ISSUER
    assert 2048 == MAX_RECEIPT_LENGTH


def test_bindings_and_reference_are_claims() -> None:
    """Proved bindings (sorted, whatever order given) and the operator's reference are signed."""
    receipt = _receipt(bindings=["recipient", "msisdn"], reference="riyadh branch #4")
    claims = json.loads(_unb64(receipt.token.split(".")[1]))
    assert _claims_with(bindings=["msisdn", "recipient"], reference="riyadh branch #4") == claims
    assert ("msisdn", "recipient") == receipt.bindings
    assert "riyadh branch #4" == receipt.reference
    assert receipt == _verify(receipt.token)


def test_the_issuer_is_the_iss_claim() -> None:
    """A signer's issuer goes into iss, and a verifier may require it."""
    signer = _signer(issuer="https://sim-codes.example.sa")
    receipt = _receipt(signer)
    assert "https://sim-codes.example.sa" == json.loads(_unb64(receipt.token.split(".")[1]))["iss"]
    assert receipt == _verify(receipt.token, issuer="https://sim-codes.example.sa")


@pytest.mark.parametrize("issuer", ["", "has space", "x" * 256, "إصدار", 7, None], ids=repr)
def test_the_issuer_must_be_printable_ascii(issuer: Any) -> None:
    """An issuer a claim cannot hold is refused when the signer is made."""
    with pytest.raises(KeyringError):
        ReceiptSigner(keys=(_r1(),), issuer=issuer)


@pytest.mark.parametrize(
    ("issued_at", "redeemed_at", "expected_iat"),
    [
        (START, datetime(2026, 3, 1, 9, 30, 15, 999999, tzinfo=UTC), 1772357415),
        (START, datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC), 1772357415),
        (
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
            0,
        ),
        (START, datetime(8999, 12, 31, 23, 59, 59, tzinfo=UTC), 221845391999),
    ],
)
def test_times_are_whole_seconds(
    issued_at: datetime, redeemed_at: datetime, expected_iat: int
) -> None:
    """iat is the redemption's second, cut (not rounded), down to 1970 and up to 8999."""
    receipt = _receipt(issued_at=issued_at, redeemed_at=redeemed_at)
    assert expected_iat == json.loads(_unb64(receipt.token.split(".")[1]))["iat"]
    assert redeemed_at.replace(microsecond=0) == receipt.redeemed_at
    assert receipt == _verify(receipt.token)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 221845391999),
        (datetime(5000, 1, 1, 0, 0, 0, 999999, tzinfo=UTC), 95617584000),
        (datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), None),
    ],
)
def test_times_are_cut_to_their_second_exactly(moment: datetime, expected: int | None) -> None:
    """A time's second is its floor, exactly, at any size: no float rounding, no cut toward 0."""
    if expected is None:
        with pytest.raises(MalformedReceipt):
            _receipt(issued_at=moment, redeemed_at=moment)
        return
    receipt = _receipt(issued_at=moment, redeemed_at=moment)
    assert expected == json.loads(_unb64(receipt.token.split(".")[1]))["iat"]
    assert moment.replace(microsecond=0) == receipt.redeemed_at


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1969, 12, 31, 23, 59, 58, tzinfo=UTC),
        datetime(9000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_times_outside_the_numeric_date_range_are_refused(moment: datetime) -> None:
    """Before 1970 or from year 9000 on, a time cannot be a claim."""
    with pytest.raises(MalformedReceipt):
        _receipt(issued_at=moment, redeemed_at=moment)


def test_times_are_kept_in_utc() -> None:
    """An aware time in another zone is the same instant in UTC, and signs the same token."""
    riyadh = timezone(timedelta(hours=3))
    receipt = _receipt(
        issued_at=FIELDS["issued_at"].astimezone(riyadh),
        redeemed_at=FIELDS["redeemed_at"].astimezone(riyadh),
    )
    assert UTC == receipt.redeemed_at.tzinfo
    assert TOKEN == receipt.token


@given(naive_datetimes())
def test_naive_times_are_refused(moment: datetime) -> None:
    """A time without a timezone cannot go into a receipt, as either time."""
    with pytest.raises(InvalidTime):
        _receipt(redeemed_at=moment)
    with pytest.raises(InvalidTime):
        _receipt(issued_at=moment)


@pytest.mark.parametrize("value", ["2026-03-01T09:30:15Z", 1772357415, None], ids=repr)
def test_times_must_be_datetimes(value: object) -> None:
    """A time given as text or a number is refused."""
    with pytest.raises(InvalidTime):
        _receipt(redeemed_at=value)


@given(receipt_fields())
def test_any_receipt_round_trips(fields: dict[str, Any]) -> None:
    """Any valid receipt: a short ASCII token of three parts that verifies back exactly."""
    receipt = _signer().sign(**fields)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", receipt.token)
    assert len(receipt.token) <= MAX_RECEIPT_LENGTH
    assert receipt == _verify(receipt.token, audience=fields["provider_id"])
    assert fields["redeemed_at"].astimezone(UTC).replace(microsecond=0) == receipt.redeemed_at
    assert tuple(sorted(fields["bindings"])) == receipt.bindings


def test_longest_receipt_is_within_the_cap() -> None:
    """Every claim at its longest still makes a token within the length cap."""
    longest = SigningKey(key_id="k" * 32, private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED))
    signer = ReceiptSigner(keys=(longest,), issuer="i" * 255)
    receipt = signer.sign(
        code_id="c" * 64,
        provider_id="p" * 64,
        service_id="s" * 64,
        customer_ref="a" * 64,
        issued_at=datetime(8999, 12, 31, 23, 59, 59, tzinfo=UTC),
        redeemed_at=datetime(8999, 12, 31, 23, 59, 59, tzinfo=UTC),
        bindings=["msisdn", "recipient"],
        reference="r" * 64,
    )
    assert len(receipt.token) <= MAX_RECEIPT_LENGTH
    assert receipt == verify_receipt(receipt.token, longest.public_key, audience="p" * 64)


@pytest.mark.parametrize(
    ("name", "value", "claim"),
    [
        ("code_id", "", "jti"),
        ("code_id", "c" * 65, "jti"),
        ("code_id", "q3Vx 0bLk", "jti"),
        ("code_id", "رمز", "jti"),
        ("code_id", 12345, "jti"),
        ("code_id", None, "jti"),
        ("provider_id", "st\nc", "aud"),
        ("provider_id", b"stc", "aud"),
        ("service_id", "new line", "service"),
        ("service_id", "new_line\x00", "service"),
        ("customer_ref", "1000000008", "sub"),
        ("customer_ref", "2129040479", "sub"),
        ("customer_ref", "", "sub"),
        ("customer_ref", CUSTOMER * 3, "sub"),
        ("bindings", ["pin"], "bindings"),
        ("bindings", ["msisdn", "msisdn"], "bindings"),
        ("bindings", "msisdn", "bindings"),
        ("bindings", None, "bindings"),
        ("bindings", ["msisdn", 1], "bindings"),
        ("reference", "", "reference"),
        ("reference", "r" * 65, "reference"),
        ("reference", "فرع", "reference"),
        ("reference", "line\nbreak", "reference"),
        ("reference", 12, "reference"),
        ("issued_at", FIELDS["redeemed_at"] + timedelta(seconds=1), "code_issued_at"),
    ],
)
def test_sign_refuses_facts_a_receipt_cannot_hold(name: str, value: Any, claim: str) -> None:
    """A fact a claim cannot hold is a MalformedReceipt naming the claim; no ID number gets in."""
    with pytest.raises(MalformedReceipt) as caught:
        _receipt(**{name: value})
    assert "malformed_receipt" == caught.value.code
    assert claim in caught.value.details["reason"]


def test_code_issued_in_the_second_of_redemption_is_fine() -> None:
    """code_issued_at may equal iat: a code redeemed within the second it was issued."""
    receipt = _receipt(issued_at=FIELDS["redeemed_at"])
    assert receipt.issued_at == receipt.redeemed_at
    assert receipt == _verify(receipt.token)


# --- determinism ----------------------------------------------------------------------------------


def test_signing_is_deterministic() -> None:
    """The same facts and key give the same token, from any signer instance."""
    again = _receipt(_signer(_r1()))
    assert SAMPLE == again
    assert TOKEN == again.token
    assert TOKEN == _receipt(_signer(_r1()).with_key(_r2()), key_id="r1").token


@given(receipt_fields())
def test_signing_any_receipt_twice_gives_one_token(fields: dict[str, Any]) -> None:
    """Answering one redemption twice hands back one token."""
    signer = _signer()
    assert signer.sign(**fields).token == signer.sign(**fields).token


def test_different_facts_give_different_tokens() -> None:
    """Each fact changes the claims and so the signature: nothing is left unsigned."""
    changes: dict[str, Any] = {
        "code_id": CODE_ID[:-1] + "d",
        "provider_id": "stc",
        "service_id": "new_line",
        "customer_ref": CUSTOMER[:-1] + "9",
        "issued_at": FIELDS["issued_at"] + timedelta(seconds=1),
        "redeemed_at": FIELDS["redeemed_at"] + timedelta(seconds=1),
        "bindings": ["msisdn"],
        "reference": "branch-12",
    }
    signatures = {TOKEN_SIGNATURE}
    for name, value in changes.items():
        signatures.add(_receipt(**{name: value}).token.split(".")[2])
    assert len(changes) + 1 == len(signatures)


def test_a_retried_redemption_gets_the_same_token(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A retry with the same request id gets the very token, even after the signer rotated."""
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock, signer=_signer())
    issued = issuer.issue(citizen, "stc")
    clock.advance(minutes=5)
    first = issuer.redeem(citizen, "stc", issued.code, "new_line", request_id="req-1")
    clock.advance(minutes=1)
    again = issuer.redeem(citizen, "stc", issued.code, "new_line", request_id="req-1")
    rotated = CodeIssuer(storage, keyring=keyring, clock=clock, signer=_signer(_r1(), _r2()))
    after_rotation = rotated.redeem(citizen, "stc", issued.code, "new_line", request_id="req-1")
    assert first.receipt is not None
    assert again.receipt is not None
    assert after_rotation.receipt is not None
    assert first.receipt.token == again.receipt.token == after_rotation.receipt.token
    assert "r1" == after_rotation.receipt.key_id


# --- the header -----------------------------------------------------------------------------------

R1_RAW_PUBLIC = _unb64(R1_X)
_MALFORMED = (MalformedReceipt, "malformed_receipt")

HEADER_REFUSALS = [
    pytest.param(f"{_part(_header_with(alg='none'))}.{_part(CLAIMS)}.", "3 base64url", id="none"),
    pytest.param(_forge(_header_with(alg="none")), "EdDSA", id="none-signed"),
    pytest.param(
        f"{_part(_header_with(alg='none'))}.{_part(CLAIMS)}.{TOKEN_SIGNATURE}",
        "EdDSA",
        id="none-genuine-signature",
    ),
    pytest.param(_hmac_token(_header_with(alg="HS256"), R1_RAW_PUBLIC), "EdDSA", id="HS256-raw"),
    pytest.param(_hmac_token(_header_with(alg="HS256"), R1_X.encode()), "EdDSA", id="HS256-x"),
    pytest.param(_hmac_token(_header_with(alg="HS512"), R1_RAW_PUBLIC), "EdDSA", id="HS512"),
    pytest.param(_forge(_header_with(alg="RS256")), "EdDSA", id="RS256"),
    pytest.param(_forge(_header_with(alg="ES256")), "EdDSA", id="ES256"),
    pytest.param(_forge(_header_with(alg="eddsa")), "EdDSA", id="eddsa"),
    pytest.param(_forge(_header_with(alg="EDDSA")), "EdDSA", id="EDDSA"),
    pytest.param(_forge(_header_with(alg="Ed25519")), "EdDSA", id="Ed25519"),
    pytest.param(_forge(_header_with(alg=...)), "EdDSA", id="alg-missing"),
    pytest.param(_forge(_header_with(alg=None)), "EdDSA", id="alg-null"),
    pytest.param(_forge(_header_with(alg=["EdDSA"])), "EdDSA", id="alg-list"),
    pytest.param(
        _forge(_header_with(jwk=_r1().public_key.to_jwk())), "holds jwk", id="jwk-own-key"
    ),
    pytest.param(
        _forge(_header_with(jwk=SigningKey.generate("r1").public_key.to_jwk())),
        "holds jwk",
        id="jwk-other-key",
    ),
    pytest.param(
        _forge(_header_with(jku="https://attacker.example/jwks.json")), "holds jku", id="jku"
    ),
    pytest.param(_forge(_header_with(x5u="https://attacker.example/c.pem")), "x5u", id="x5u"),
    pytest.param(_forge(_header_with(x5c=["MIIB"])), "holds x5c", id="x5c"),
    pytest.param(_forge(_header_with(x5t="AAAA")), "holds x5t", id="x5t"),
    pytest.param(_forge(_header_with(**{"x5t#S256": "AAAA"})), "x5t#S256", id="x5t#S256"),
    pytest.param(_forge(_header_with(crit=["exp"])), "holds crit", id="crit"),
    pytest.param(_forge(_header_with(crit=[])), "holds crit", id="crit-empty"),
    pytest.param(_forge(_header_with(cty="JWT")), "never have", id="cty"),
    pytest.param(_forge(_header_with(b64=False)), "never have", id="b64-false"),
    pytest.param(_forge(_header_with(zip="DEF")), "never have", id="zip"),
    pytest.param(_forge(_header_with(extra="x")), "never have", id="unknown-member"),
    pytest.param(_forge(_header_with(typ=...)), "typ", id="typ-missing"),
    pytest.param(_forge(_header_with(typ="JWT")), "typ", id="typ-JWT"),
    pytest.param(_forge(_header_with(typ="telecard-receipt")), "typ", id="typ-short"),
    pytest.param(_forge(_header_with(typ="telecard-receipt+jwt ")), "typ", id="typ-space"),
    pytest.param(_forge(_header_with(typ="application/jwt")), "typ", id="typ-application-jwt"),
    pytest.param(_forge(_header_with(typ="text/" + RECEIPT_TYPE)), "typ", id="typ-text/"),
    pytest.param(_forge(_header_with(typ="application/")), "typ", id="typ-application/-only"),
    pytest.param(
        _forge(_header_with(typ="application/application/" + RECEIPT_TYPE)),
        "typ",
        id="typ-application/-twice",
    ),
    pytest.param(_forge(_header_with(typ=None)), "typ", id="typ-null"),
    pytest.param(_forge(_header_with(typ=["telecard-receipt+jwt"])), "typ", id="typ-list"),
    pytest.param(_forge(_header_with(kid=...)), "kid", id="kid-missing"),
    pytest.param(_forge(_header_with(kid="")), "kid", id="kid-empty"),
    pytest.param(_forge(_header_with(kid="k" * 33)), "kid", id="kid-long"),
    pytest.param(_forge(_header_with(kid="../r1")), "kid", id="kid-path"),
    pytest.param(_forge(_header_with(kid="r1\n")), "kid", id="kid-newline"),
    pytest.param(_forge(_header_with(kid=1)), "kid", id="kid-number"),
    pytest.param(_forge(_header_with(kid=None)), "kid", id="kid-null"),
    pytest.param(_forge(_json(HEADER)[:-1] + b',"alg":"EdDSA"}'), "JSON", id="duplicate-alg"),
    pytest.param(_forge(_json(HEADER)[:-1] + b',"kid":"r2"}'), "JSON", id="duplicate-kid"),
    pytest.param(
        _forge(b'{"alg":"none","alg":"EdDSA","kid":"r1","typ":"telecard-receipt+jwt"}'),
        "JSON",
        id="duplicate-alg-none-first",
    ),
    pytest.param(_forge(b'["EdDSA","r1"]'), "JSON", id="header-array"),
    pytest.param(_forge(b'"EdDSA"'), "JSON", id="header-string"),
    pytest.param(_forge(b"null"), "JSON", id="header-null"),
    pytest.param(_forge(b"{}"), "EdDSA", id="header-empty-object"),
    pytest.param(_forge(b"\xff\xfe{}"), "JSON", id="header-not-utf8"),
    pytest.param(_forge(_json(HEADER)[:-1] + b',"n":NaN}'), "JSON", id="header-nan"),
    pytest.param(_forge(_json(HEADER) + b"{}"), "JSON", id="header-trailing"),
]


@pytest.mark.parametrize(("token", "reason"), HEADER_REFUSALS)
def test_headers_a_receipt_never_has_are_refused(token: str, reason: str) -> None:
    """Each header fault, in a token signed with the real key, is a MalformedReceipt for it."""
    error = _refusal(token)
    assert _MALFORMED == (type(error), error.code)
    assert reason in error.details["reason"]


def test_hs256_confusion_is_refused_with_every_key_form() -> None:
    """HS256 keyed with the key as an operator holds it (raw, x, JWK JSON, PEM) is refused."""
    jwk = JWKS["keys"][0]
    pem = Ed25519PublicKey.from_public_bytes(R1_RAW_PUBLIC).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    for key in (R1_RAW_PUBLIC, R1_X.encode(), _json(jwk), json.dumps(jwk).encode(), pem):
        for keys in (JWKS, _signer(), _r1().public_key, [_r1().public_key]):
            error = _refusal(_hmac_token(_header_with(alg="HS256"), key), keys)
            assert _MALFORMED == (type(error), error.code)


@pytest.mark.parametrize(
    "typ",
    [
        "TELECARD-RECEIPT+JWT",
        "Telecard-Receipt+JWT",
        "telecard-receipt+JWT",
        "application/telecard-receipt+jwt",
        "Application/TELECARD-RECEIPT+JWT",
    ],
)
def test_typ_is_compared_as_a_media_type(typ: str) -> None:
    """typ is a media type (RFC 7515 §4.1.9): any case, with or without application/, verifies."""
    token = _forge(_header_with(typ=typ))
    assert attrs.evolve(EXPECTED, token=token) == _verify(token)


def test_header_member_order_and_spacing_do_not_matter() -> None:
    """A header another library wrote (other order, spaces) verifies."""
    header = b'{ "typ" : "telecard-receipt+jwt",\n "kid": "r1", "alg": "EdDSA" }'
    token = _forge(header)
    assert attrs.evolve(EXPECTED, token=token) == _verify(token)


def test_kid_not_among_the_keys_is_an_unknown_signing_key() -> None:
    """A kid none of the keys has is UnknownSigningKey, which does not repeat the token's kid."""
    for keys in (JWKS, _signer(), _r1().public_key, [_r1().public_key], ()):
        error = _refusal(_forge(_header_with(kid="kid-Zq9")), keys)
        assert (UnknownSigningKey, "unknown_signing_key") == (type(error), error.code)
        assert {} == dict(error.details)
        assert "kid-Zq9" not in error.message_en
        assert "kid-Zq9" not in error.message_ar


def test_kid_of_another_key_is_not_verified() -> None:
    """r1's signature under r2's kid: the key named does not verify it."""
    for keys in (JWKS_BOTH, _signer(_r1(), _r2()), [_r2().public_key]):
        error = _refusal(_forge(_header_with(kid="r2")), keys)
        assert (ReceiptNotVerified, "receipt_not_verified") == (type(error), error.code)


def test_another_key_under_the_same_kid_is_not_verified() -> None:
    """A verify key with the receipt's kid but other key bytes: not verified, not unknown."""
    impostor = SigningKey.generate("r1").public_key
    for keys in (impostor, [impostor], {"keys": [impostor.to_jwk()]}):
        error = _refusal(TOKEN, keys)
        assert (ReceiptNotVerified, "receipt_not_verified") == (type(error), error.code)


# --- the encoding ---------------------------------------------------------------------------------


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)


#: Claims whose base64url holds '-' and '_', so that their standard-alphabet spelling differs.
ODD_CLAIMS = _claims_with(note="??>>~~")


ENCODING_REFUSALS = [
    pytest.param("", "3 base64url", id="empty"),
    pytest.param("..", "3 base64url", id="dots"),
    pytest.param(f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}", "3 base64url", id="2-parts"),
    pytest.param(f"{TOKEN}.{TOKEN_SIGNATURE}", "3 base64url", id="4-parts"),
    pytest.param(f"{TOKEN}.", "3 base64url", id="trailing-dot"),
    pytest.param(f"{TOKEN_HEADER}..{TOKEN_SIGNATURE}", "3 base64url", id="empty-payload"),
    pytest.param(f".{TOKEN_PAYLOAD}.{TOKEN_SIGNATURE}", "3 base64url", id="empty-header"),
    pytest.param(f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.", "3 base64url", id="empty-signature"),
    pytest.param(" " + TOKEN, "3 base64url", id="leading-space"),
    pytest.param(TOKEN + "\n", "3 base64url", id="trailing-newline"),
    pytest.param(TOKEN + "\r\n", "3 base64url", id="crlf"),
    pytest.param(TOKEN[:20] + "\x00" + TOKEN[20:], "3 base64url", id="nul"),
    pytest.param(TOKEN[:20] + "ك" + TOKEN[21:], "3 base64url", id="arabic-letter"),
    pytest.param(TOKEN[:30] + "٣" + TOKEN[31:], "3 base64url", id="arabic-indic-digit"),
    pytest.param(TOKEN.replace("e", "\uff45", 1), "3 base64url", id="fullwidth"),
    pytest.param(TOKEN[:10] + "\u200b" + TOKEN[10:], "3 base64url", id="zero-width"),
    pytest.param(TOKEN[:10] + "\ud800" + TOKEN[10:], "3 base64url", id="lone-surrogate"),
    pytest.param(f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.{_padded(TOKEN_SIGNATURE)}", "3", id="pad-sig"),
    pytest.param(_with_parts(_padded(TOKEN_HEADER), TOKEN_PAYLOAD), "3", id="pad-header"),
    pytest.param(_with_parts(TOKEN_HEADER, _padded(TOKEN_PAYLOAD)), "3", id="pad-payload"),
    pytest.param(
        f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.{_loose(TOKEN_SIGNATURE)}", "signature", id="loose-sig"
    ),
    pytest.param(_with_parts(_loose(TOKEN_HEADER), TOKEN_PAYLOAD), "header", id="loose-header"),
    pytest.param(_with_parts(TOKEN_HEADER, _loose(TOKEN_PAYLOAD)), "claims", id="loose-payload"),
    pytest.param(
        f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.{TOKEN_SIGNATURE.replace('-', '+').replace('_', '/')}",
        "3 base64url",
        id="standard-alphabet-signature",
    ),
    pytest.param(
        _with_parts(TOKEN_HEADER, base64.b64encode(_json(ODD_CLAIMS)).decode().rstrip("=")),
        "3 base64url",
        id="standard-alphabet-payload",
    ),
    pytest.param(_with_parts(TOKEN_HEADER, TOKEN_PAYLOAD + "AAA"), "claims", id="payload-length"),
    pytest.param(_with_parts(TOKEN_HEADER + "AAA", TOKEN_PAYLOAD), "header", id="header-length"),
    pytest.param(f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.{_b64(bytes(63))}", "signature", id="sig-63"),
    pytest.param(f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.{_b64(bytes(65))}", "signature", id="sig-65"),
    pytest.param(f"{TOKEN_HEADER}.{TOKEN_PAYLOAD}.{TOKEN_SIGNATURE}A", "signature", id="sig-char"),
]


@pytest.mark.parametrize(("token", "reason"), ENCODING_REFUSALS)
def test_tokens_not_in_the_one_compact_spelling_are_refused(token: str, reason: str) -> None:
    """Padding, unused bits, the standard alphabet, a part too many or too few: malformed."""
    error = _refusal(token)
    assert _MALFORMED == (type(error), error.code)
    assert reason in error.details["reason"]


def test_the_standard_alphabet_cases_are_not_vacuous() -> None:
    """The signature and ODD_CLAIMS hold '-' or '_': their standard-alphabet spellings differ."""
    for text in (TOKEN_SIGNATURE, _part(ODD_CLAIMS)):
        standard = text.replace("-", "+").replace("_", "/")
        assert standard != text
        assert base64.b64decode(_padded(standard)) == _unb64(text)
    assert attrs.evolve(EXPECTED, token=_forge(HEADER, ODD_CLAIMS)) == _verify(
        _forge(HEADER, ODD_CLAIMS)
    )


def _token_of_length(length: int) -> str:
    """A properly signed token exactly ``length`` characters long (padded with an extra claim)."""
    for spaces in range(4):
        header = b'{"alg":"EdDSA","kid":"r1",' + b" " * spaces + b'"typ":"telecard-receipt+jwt"}'
        shortest = len(_forge(header, _claims_with(filler="")))
        for filler in range(max(0, (length - shortest) * 3 // 4 - 8), length):
            token = _forge(header, _claims_with(filler="f" * filler))
            if len(token) == length:
                return token
            if len(token) > length:
                break
    raise AssertionError(f"no token of {length} characters")  # pragma: no cover


def test_length_cap_is_exact() -> None:
    """A genuine token of exactly the cap verifies; one character more is refused for length."""
    at_cap = _token_of_length(MAX_RECEIPT_LENGTH)
    over = _token_of_length(MAX_RECEIPT_LENGTH + 1)
    assert MAX_RECEIPT_LENGTH == len(at_cap)
    assert "mobily" == _verify(at_cap).provider_id
    error = _refusal(over)
    assert _MALFORMED == (type(error), error.code)
    assert str(MAX_RECEIPT_LENGTH) in error.details["reason"]
    huge = _refusal(f"{TOKEN_HEADER}.{'A' * 100_000}.{TOKEN_SIGNATURE}")
    assert _MALFORMED == (type(huge), huge.code)


@pytest.mark.parametrize(
    "token",
    [None, 0, 1.5, True, TOKEN.encode(), bytearray(TOKEN.encode()), [TOKEN], {"t": TOKEN}, SAMPLE],
    ids=lambda value: type(value).__name__,
)
def test_only_text_is_a_token(token: object) -> None:
    """Bytes, numbers, containers and receipts themselves are malformed, never a TypeError."""
    error = _refusal(token)
    assert _MALFORMED == (type(error), error.code)


def test_a_str_subclass_is_read_as_plain_text() -> None:
    """A str subclass that lies about itself is read by its characters."""

    class Sly(str):
        __slots__ = ()

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 0

    assert SAMPLE == _verify(Sly(TOKEN))
    assert type(_verify(Sly(TOKEN)).token) is str


# --- tampering ------------------------------------------------------------------------------------


def _flipped(text: str, bit: int) -> str:
    raw = bytearray(_unb64(text))
    raw[bit // 8] ^= 1 << (bit % 8)
    return _b64(bytes(raw))


@pytest.mark.parametrize("part", ["header", "payload", "signature"])
def test_every_bit_flip_is_refused(part: str) -> None:
    """Any one bit of any part flipped, re-encoded cleanly, not re-signed: refused as documented."""
    index = ["header", "payload", "signature"].index(part)
    parts = TOKEN.split(".")
    seen: set[type[TelecardAuthError] | None] = set()
    for bit in range(len(_unb64(parts[index])) * 8):
        forged = list(parts)
        forged[index] = _flipped(parts[index], bit)
        seen.add(_outcome(".".join(forged)))
    assert None not in seen
    expected = {
        "header": {MalformedReceipt, ReceiptNotVerified, UnknownSigningKey},
        "payload": {ReceiptNotVerified},
        "signature": {ReceiptNotVerified},
    }[part]
    assert expected == seen


#: Characters of a token: base64url and the dot.
TEXT_ALPHABET = string.ascii_letters + string.digits + "-_."


def test_every_character_substitution_is_refused() -> None:
    """Every position of the token, replaced by each of several characters: never accepted."""
    seen: set[type[TelecardAuthError] | None] = set()
    for position, char in enumerate(TOKEN):
        index = TEXT_ALPHABET.index(char)
        for replacement in {
            TEXT_ALPHABET[(index + 1) % len(TEXT_ALPHABET)],
            TEXT_ALPHABET[(index + 17) % len(TEXT_ALPHABET)],
            "A" if char != "A" else "B",
            "=",
            " ",
        }:
            seen.add(_outcome(TOKEN[:position] + replacement + TOKEN[position + 1 :]))
    assert None not in seen
    assert {MalformedReceipt, ReceiptNotVerified} <= seen


def test_every_deletion_and_insertion_is_refused() -> None:
    """Removing any one character, or inserting one anywhere, is never accepted."""
    for position in range(len(TOKEN) + 1):
        if position < len(TOKEN):
            assert _outcome(TOKEN[:position] + TOKEN[position + 1 :]) is not None, position
        for extra in "A_.":
            assert _outcome(TOKEN[:position] + extra + TOKEN[position:]) is not None, position


@given(st.data())
def test_random_edits_are_refused(data: st.DataObject) -> None:
    """Any text edit (any Unicode, anywhere, any length) is refused, and only as documented."""
    start = data.draw(st.integers(min_value=0, max_value=len(TOKEN)))
    end = data.draw(st.integers(min_value=start, max_value=len(TOKEN)))
    forged = TOKEN[:start] + data.draw(st.text(max_size=8)) + TOKEN[end:]
    if forged != TOKEN:
        assert _outcome(forged) is not None


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_a_changed_claim_under_the_genuine_signature_is_not_verified(name: str) -> None:
    """Change one claim to another valid value, keep header and signature: not authentic."""
    other: dict[str, Any] = {
        "iss": "other-platform",
        "sub": CUSTOMER[::-1],
        "aud": "stc",
        "iat": CLAIMS["iat"] + 1,
        "jti": CODE_ID[::-1],
        "service": "new_line",
        "code_issued_at": CLAIMS["code_issued_at"] - 1,
        "bindings": ["msisdn"],
    }
    forged = f"{TOKEN_HEADER}.{_part(_claims_with(**{name: other[name]}))}.{TOKEN_SIGNATURE}"
    for keys in (JWKS, JWKS_BOTH, _signer(), _r1().public_key):
        error = _refusal(forged, keys, audience="stc" if name == "aud" else "mobily")
        assert (ReceiptNotVerified, "receipt_not_verified") == (type(error), error.code)


# --- the claims -----------------------------------------------------------------------------------

CLAIM_REFUSALS = [
    *(pytest.param(_claims_with(**{name: ...}), name, id=f"{name}-missing") for name in CLAIMS),
    pytest.param(_claims_with(iat=1772357415.0), "iat", id="iat-float"),
    pytest.param(_claims_with(iat="1772357415"), "iat", id="iat-str"),
    pytest.param(_claims_with(iat=True), "iat", id="iat-bool"),
    pytest.param(_claims_with(iat=None), "iat", id="iat-null"),
    pytest.param(_claims_with(iat=-1), "iat", id="iat-negative"),
    pytest.param(_claims_with(iat=221845392000), "iat", id="iat-year-9000"),
    pytest.param(_claims_with(iat=10**30), "iat", id="iat-huge"),
    pytest.param(_claims_with(iat=[1772357415]), "iat", id="iat-list"),
    pytest.param(_claims_with(code_issued_at=1772355605.5), "code_issued_at", id="issued-float"),
    pytest.param(_claims_with(code_issued_at="1772355605"), "code_issued_at", id="issued-str"),
    pytest.param(_claims_with(code_issued_at=False), "code_issued_at", id="issued-bool"),
    pytest.param(_claims_with(code_issued_at=1772357416), "code_issued_at", id="issued-after"),
    pytest.param(_claims_with(aud=["mobily", "stc"]), "aud", id="aud-list-of-two"),
    pytest.param(_claims_with(aud=["mobily", "mobily"]), "aud", id="aud-list-repeated"),
    pytest.param(_claims_with(aud=[]), "aud", id="aud-list-empty"),
    pytest.param(_claims_with(aud=[5]), "aud", id="aud-list-of-number"),
    pytest.param(_claims_with(aud=[["mobily"]]), "aud", id="aud-list-nested"),
    pytest.param(_claims_with(aud=["mob ily"]), "aud", id="aud-list-bad-id"),
    pytest.param(_claims_with(aud={"mobily": True}), "aud", id="aud-object"),
    pytest.param(_claims_with(aud=""), "aud", id="aud-empty"),
    pytest.param(_claims_with(aud="mob ily"), "aud", id="aud-space"),
    pytest.param(_claims_with(aud=5), "aud", id="aud-number"),
    pytest.param(_claims_with(sub="1000000008"), "identity number", id="sub-national-id"),
    pytest.param(_claims_with(sub="2129040479"), "identity number", id="sub-iqama"),
    pytest.param(_claims_with(sub="7000000001"), "identity number", id="sub-unified-number"),
    pytest.param(_claims_with(sub=""), "sub", id="sub-empty"),
    pytest.param(_claims_with(sub="a" * 65), "sub", id="sub-long"),
    pytest.param(_claims_with(sub="3f9a\n0c1b"), "sub", id="sub-newline"),
    pytest.param(_claims_with(sub=1000000008), "sub", id="sub-number"),
    pytest.param(_claims_with(jti=12345), "jti", id="jti-number"),
    pytest.param(_claims_with(jti="q3Vx 0bLk"), "jti", id="jti-space"),
    pytest.param(_claims_with(jti="c" * 65), "jti", id="jti-long"),
    pytest.param(_claims_with(service={"id": "new_line"}), "service", id="service-object"),
    pytest.param(_claims_with(service="new line"), "service", id="service-space"),
    pytest.param(_claims_with(iss=""), "iss", id="iss-empty"),
    pytest.param(_claims_with(iss="has space"), "iss", id="iss-space"),
    pytest.param(_claims_with(iss="i" * 256), "iss", id="iss-long"),
    pytest.param(_claims_with(iss=7), "iss", id="iss-number"),
    pytest.param(_claims_with(bindings=["pin"]), "bindings", id="bindings-unknown"),
    pytest.param(_claims_with(bindings=["msisdn", "msisdn"]), "bindings", id="bindings-repeated"),
    pytest.param(_claims_with(bindings="msisdn"), "bindings", id="bindings-str"),
    pytest.param(_claims_with(bindings=None), "bindings", id="bindings-null"),
    pytest.param(_claims_with(bindings=[1]), "bindings", id="bindings-number"),
    pytest.param(_claims_with(bindings={"msisdn": True}), "bindings", id="bindings-object"),
    pytest.param(_claims_with(bindings=["MSISDN"]), "bindings", id="bindings-upper"),
    pytest.param(_claims_with(reference=None), "reference", id="reference-null"),
    pytest.param(_claims_with(reference=""), "reference", id="reference-empty"),
    pytest.param(_claims_with(reference="r" * 65), "reference", id="reference-long"),
    pytest.param(_claims_with(reference="فرع"), "reference", id="reference-arabic"),
    pytest.param(_claims_with(reference=12), "reference", id="reference-number"),
    pytest.param(_json(CLAIMS)[:-1] + b',"aud":"stc"}', "JSON", id="duplicate-aud"),
    pytest.param(_json(CLAIMS)[:-1] + b',"iat":1772357415}', "JSON", id="duplicate-iat-same"),
    pytest.param(_json(_claims_with(x={"a": 1}))[:-2] + b',"a":2}}', "JSON", id="duplicate-nested"),
    pytest.param(b"[]", "JSON", id="claims-array"),
    pytest.param(b'"claims"', "JSON", id="claims-string"),
    pytest.param(b"null", "JSON", id="claims-null"),
    pytest.param(b"{}", "sub", id="claims-empty"),
    pytest.param(b"\xff\xfe", "JSON", id="claims-not-utf8"),
    pytest.param(_json(CLAIMS)[:-1], "JSON", id="claims-truncated"),
    pytest.param(_json(CLAIMS) + b"{}", "JSON", id="claims-trailing"),
    pytest.param(_json(CLAIMS)[:-1] + b',"x":NaN}', "JSON", id="claims-nan"),
    pytest.param(_json(CLAIMS)[:-1] + b',"x":-Infinity}', "JSON", id="claims-infinity"),
    pytest.param(b"[" * 1300, "JSON", id="claims-deep"),
    pytest.param(
        _json(CLAIMS).replace(b'"mobily"', '"موبايلي"'.encode("utf-16")), "JSON", id="utf-16"
    ),
]


@pytest.mark.parametrize(("claims", "reason"), CLAIM_REFUSALS)
def test_claims_a_receipt_never_has_are_refused(
    claims: dict[str, Any] | bytes, reason: str
) -> None:
    """Each claim fault, in a token signed with the real key, is a MalformedReceipt naming it."""
    error = _refusal(_forge(HEADER, claims))
    assert _MALFORMED == (type(error), error.code)
    assert reason in error.details["reason"]


@pytest.mark.parametrize(
    ("options", "claim"),
    [
        ({"audience": "stc"}, "aud"),
        ({"audience": "Mobily"}, "aud"),
        ({"service": "new_line"}, "service"),
        ({"issuer": "https://other.example"}, "iss"),
        ({"audience": "stc", "service": "new_line", "issuer": "x"}, "aud"),
    ],
)
def test_an_authentic_receipt_for_another_use_is_a_mismatch(
    options: dict[str, str], claim: str
) -> None:
    """Wrong audience, service or issuer: ReceiptMismatch naming the claim, never its value."""
    error = _refusal(TOKEN, **options)
    assert (ReceiptMismatch, "receipt_mismatch") == (type(error), error.code)
    assert {"claim": claim} == dict(error.details)
    assert isinstance(error, ReceiptNotVerified)
    assert "mobily" not in str(error)


def test_the_right_service_and_issuer_verify() -> None:
    """Requiring the service and issuer the receipt has changes nothing."""
    assert SAMPLE == _verify(TOKEN, service="lost_sim_replacement", issuer="telecard-auth")


@pytest.mark.parametrize(
    "options",
    [
        {"audience": None},
        {"audience": 5},
        {"audience": b"mobily"},
        {"audience": ""},
        {"audience": ["mobily"]},
        {"service": 5},
        {"service": b"new_line"},
        {"issuer": 7},
    ],
    ids=repr,
)
def test_an_audience_service_or_issuer_not_text_is_a_configuration_error(
    options: dict[str, Any],
) -> None:
    """The verifier's own settings are checked first: a ConfigurationError, not a refusal."""
    for token in (TOKEN, "junk"):
        error = _refusal(token, **options)
        assert (ConfigurationError, "configuration_error") == (type(error), error.code)


CLAIM_VARIANTS = [
    pytest.param(_claims_with(exp=1, nbf=9999999999, extra={"nested": [1, None]}), id="extra"),
    pytest.param(dict(reversed(CLAIMS.items())), id="reversed"),
    pytest.param(json.dumps(CLAIMS, indent=2).encode(), id="indented"),
    pytest.param(json.dumps(_claims_with(note="موبايلي"), ensure_ascii=False).encode(), id="utf-8"),
    pytest.param(json.dumps(_claims_with(note="موبايلي")).encode(), id="ascii-escapes"),
    pytest.param(_json(CLAIMS).replace(b'"mobily"', b'"\\u006dobily"'), id="escaped-aud"),
    pytest.param(b" \n" + _json(CLAIMS) + b"\n", id="whitespace-around"),
    pytest.param(_claims_with(aud=["mobily"]), id="aud-array-of-one"),
]


@pytest.mark.parametrize("claims", CLAIM_VARIANTS)
def test_claims_serialised_another_way_verify(claims: dict[str, Any] | bytes) -> None:
    """Unknown claims, other order, spacing and escapes (other libraries' JSON) verify the same."""
    token = _forge(HEADER, claims)
    assert attrs.evolve(EXPECTED, token=token) == _verify(token)


def test_bindings_in_any_order_read_sorted() -> None:
    """A token listing bindings out of order reads back sorted."""
    token = _forge(HEADER, _claims_with(bindings=["recipient", "msisdn"]))
    assert ("msisdn", "recipient") == _verify(token).bindings


@given(st.dictionaries(st.sampled_from([*sorted(CLAIMS), "reference"]), _JSON_VALUES))
@settings(max_examples=200)
def test_claims_of_any_json_value_are_read_or_refused_as_malformed(
    changes: dict[str, object],
) -> None:
    """Any claim replaced by any JSON value, signed properly: read exactly, or MalformedReceipt."""
    claims = {**CLAIMS, **changes}
    token = _forge(HEADER, claims)
    audience = claims["aud"] if isinstance(claims["aud"], str) and claims["aud"] else "x"
    try:
        receipt = _verify(token, audience=audience)
    except (MalformedReceipt, ReceiptMismatch):
        return
    assert claims["sub"] == receipt.customer_ref
    assert claims["iat"] == int(receipt.redeemed_at.timestamp())
    assert claims["code_issued_at"] == int(receipt.issued_at.timestamp())
    assert tuple(sorted(claims["bindings"])) == receipt.bindings
    assert claims.get("reference") == receipt.reference


# --- what verify_receipt may raise ----------------------------------------------------------------


@given(st.text(max_size=400))
def test_any_text_is_refused_only_as_documented(text: str) -> None:
    """Arbitrary text: one of the four documented refusals, never another exception."""
    with pytest.raises(REFUSALS):
        _verify(text)


@given(_B64_PARTS, _B64_PARTS, _B64_PARTS)
def test_any_three_base64url_parts_are_refused_only_as_documented(
    header: str, payload: str, signature: str
) -> None:
    """Arbitrary bytes in each of the three parts: a documented refusal, never another exception."""
    with pytest.raises(REFUSALS):
        _verify(f"{header}.{payload}.{signature}")


@given(st.binary(max_size=600))
def test_any_payload_bytes_signed_properly_are_refused_only_as_documented(payload: bytes) -> None:
    """Arbitrary claim bytes under the genuine header and a valid signature: malformed."""
    with pytest.raises(MalformedReceipt):
        _verify(_forge(HEADER, payload))


@given(
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "jwk", "crit", "cty", "b64", "x5c", ""]),
        _JSON_VALUES,
    )
)
def test_any_header_signed_properly_is_refused_only_as_documented(
    changes: dict[str, object],
) -> None:
    """Any header members of any JSON value: verified only if still a receipt header."""
    header = {**HEADER, **changes}
    try:
        receipt = _verify(_forge(header))
    except REFUSALS:
        return
    assert header.keys() == HEADER.keys()
    assert "EdDSA" == header["alg"]
    assert "r1" == header["kid"] == receipt.key_id
    assert isinstance(header["typ"], str)
    assert RECEIPT_TYPE == header["typ"].lower().removeprefix("application/")


def test_refusals_are_their_own_families() -> None:
    """Malformed input is InvalidInput; not verified, unknown key and mismatch are one family."""
    assert issubclass(MalformedReceipt, InvalidInput)
    assert issubclass(MalformedReceipt, ValueError)
    assert not issubclass(MalformedReceipt, ReceiptNotVerified)
    assert issubclass(UnknownSigningKey, ReceiptNotVerified)
    assert issubclass(ReceiptMismatch, ReceiptNotVerified)
    assert issubclass(ReceiptNotVerified, TelecardAuthError)
    for family in (InvalidInput, ValueError, NotPermitted, RedemptionRefused, ConfigurationError):
        assert not issubclass(ReceiptNotVerified, family)


def _refusals_of_every_kind() -> Iterator[TelecardAuthError]:
    yield _refusal(_forge(_header_with(alg="none")))
    yield _refusal(_forge(_header_with(jwk=JWKS["keys"][0])))
    yield _refusal(_forge(HEADER, _claims_with(sub="1000000008")))
    yield _refusal(_forge(HEADER, _claims_with(bindings=["pin"])))
    yield _refusal(_forge(HEADER, _json(CLAIMS)[:-1] + b',"aud":"stc"}'))
    yield _refusal(TOKEN + "=")
    yield _refusal(TOKEN[:-3] + ("AAA" if TOKEN[-3:] != "AAA" else "BAA"))
    yield _refusal(f"{TOKEN_HEADER}.{_part(_claims_with(service='new_line'))}.{TOKEN_SIGNATURE}")
    yield _refusal(TOKEN, audience="stc")
    yield _refusal(TOKEN, service="new_line")
    yield _refusal(_forge(_header_with(kid="kid-Zq9")))
    yield _refusal("x" * 5000)


def test_no_refusal_repeats_the_token() -> None:
    """No message, detail or repr of a refusal holds any part of the token or a claim's value."""
    secrets_shown = [TOKEN_HEADER[:16], TOKEN_PAYLOAD[:16], TOKEN_SIGNATURE[:16]]
    secrets_shown += [TOKEN_PAYLOAD[40:56], TOKEN_SIGNATURE[40:56], CODE_ID, CUSTOMER, "xxxxxxxx"]
    secrets_shown += ["1000000008", "lost_sim_replacement", "mobily", "pin", "kid-Zq9"]
    for error in _refusals_of_every_kind():
        texts = [str(error), repr(error), error.message_en, error.message_ar]
        texts += [json.dumps(error.to_dict(), ensure_ascii=False)]
        texts += [str(value) for value in error.details.values()]
        assert [] == [shown for shown in secrets_shown for text in texts if shown in text], error
        assert len(str(error)) < 400


# --- verify keys: the forms ``keys`` takes --------------------------------------------------------


def _private_key_set() -> dict[str, Any]:
    """The private JWK Set of a key set whose receipt key is r1 (oct keys k1 and p1 beside it)."""
    keys = KeySet(keyring=Keyring.generate("k1", "p1"), signer=_signer(), added_at={})
    document: dict[str, Any] = json.loads(json.dumps(keys.to_jwks()))
    assert {"oct", "OKP"} == {jwk["kty"] for jwk in document["keys"]}
    return document


KEY_FORMS: list[Any] = [
    pytest.param(lambda: JWKS, id="public-jwks"),
    pytest.param(lambda: JWKS_BOTH, id="public-jwks-two-keys"),
    pytest.param(lambda: _signer().public_jwks(), id="public-jwks-unparsed"),
    pytest.param(_private_key_set, id="private-jwks"),
    pytest.param(lambda: {"keys": [{"kty": "oct", "k": "AAAA"}, JWKS["keys"][0]]}, id="with-oct"),
    pytest.param(
        lambda: {"keys": [{"kty": "OKP", "crv": "X25519", "x": R2_X}, *JWKS["keys"]]},
        id="with-x25519",
    ),
    pytest.param(
        lambda: {"keys": [{**JWKS_BOTH["keys"][1], "use": "enc"}, *JWKS["keys"]]},
        id="with-encryption-key",
    ),
    pytest.param(lambda: {"keys": JWKS["keys"], "comment": "extra"}, id="extra-members"),
    pytest.param(_signer, id="signer"),
    pytest.param(lambda: _signer(_r1(), _r2()), id="signer-two-keys"),
    pytest.param(lambda: _r1().public_key, id="verify-key"),
    pytest.param(lambda: [_r1().public_key], id="list"),
    pytest.param(lambda: [_r2().public_key, _r1().public_key], id="list-two-keys"),
    pytest.param(lambda: (_r1().public_key, _r1().public_key), id="tuple-same-key-twice"),
    pytest.param(lambda: {_r1().public_key, _r2().public_key}, id="set"),
    pytest.param(lambda: (key for key in (_r2().public_key, _r1().public_key)), id="generator"),
    pytest.param(lambda: _signer(_r1(), _r2()).verify_keys(), id="verify-keys"),
]


@pytest.mark.parametrize("keys", KEY_FORMS)
def test_keys_in_every_documented_form_verify(keys: Callable[[], Any]) -> None:
    """A public or private JWK Set, a signer, a verify key or several: all verify the sample."""
    assert SAMPLE == verify_receipt(TOKEN, keys(), audience="mobily")


class _Broken:
    def __iter__(self) -> Iterator[VerifyKey]:
        raise RuntimeError("the caller's iterable is broken")


NOT_KEYS: list[Any] = [
    pytest.param(None, id="None"),
    pytest.param(42, id="int"),
    pytest.param(json.dumps(JWKS), id="jwks-as-json-text"),
    pytest.param(json.dumps(JWKS).encode(), id="jwks-as-bytes"),
    pytest.param(R1_X, id="x-text"),
    pytest.param(_r1(), id="signing-key"),
    pytest.param(Ed25519PrivateKey.from_private_bytes(R1_SEED), id="private-key"),
    pytest.param(Ed25519PublicKey.from_public_bytes(_unb64(R1_X)), id="bare-public-key"),
    pytest.param([JWKS["keys"][0]], id="list-of-jwks"),
    pytest.param([_r1().public_key, None], id="list-with-none"),
    pytest.param([_r1()], id="list-of-signing-keys"),
    pytest.param(_Broken(), id="broken-iterable"),
    pytest.param({}, id="empty-mapping"),
    pytest.param({"keys": []}, id="empty-jwks"),
    pytest.param({"keys": "r1"}, id="keys-not-a-list"),
    pytest.param({"keys": {"r1": JWKS["keys"][0]}}, id="keys-a-mapping"),
    pytest.param(JWKS["keys"][0], id="one-jwk-not-a-set"),
    pytest.param({"r1": _r1().public_key}, id="mapping-of-verify-keys"),
    pytest.param({"keys": [{"kty": "oct", "kid": "k1", "k": R1_D}]}, id="only-oct"),
    pytest.param({"keys": [{**JWKS["keys"][0], "crv": "Ed448"}]}, id="only-ed448"),
    pytest.param({"keys": [{**JWKS["keys"][0], "x": R1_X[:-1]}]}, id="short-x"),
    pytest.param({"keys": [{**JWKS["keys"][0], "kid": "r 1"}]}, id="bad-kid"),
    pytest.param({1: "r1"}, id="mapping-with-int-names"),
    pytest.param({"keys": ["junk", 5, *JWKS["keys"]]}, id="with-non-objects"),
    pytest.param(
        {"keys": [JWKS["keys"][0], {**JWKS_BOTH["keys"][1], "kid": "r1"}]}, id="one-kid-two-keys"
    ),
    pytest.param({"keys": [{**JWKS["keys"][0], "use": None}]}, id="use-null"),
]


@pytest.mark.parametrize("keys", NOT_KEYS)
def test_things_that_are_not_keys_are_a_keyring_error(keys: Any) -> None:
    """Key texts, private keys, empty or key-less sets, junk: a KeyringError, never a TypeError."""
    error = _refusal(TOKEN, keys)
    assert (KeyringError, "keyring_error") == (type(error), error.code)
    assert R1_D not in str(error)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(lambda: [_r1().public_key, SigningKey.generate("r1").public_key], id="list"),
        pytest.param(
            lambda: {"keys": [*JWKS["keys"], SigningKey.generate("r1").public_key.to_jwk()]},
            id="jwks",
        ),
        pytest.param(
            lambda: {"keys": [{**JWKS_BOTH["keys"][1], "kid": "r1"}, *JWKS["keys"]]},
            id="jwks-r2-under-r1",
        ),
    ],
)
def test_two_different_keys_under_one_kid_are_a_keyring_error(keys: Callable[[], Any]) -> None:
    """Ambiguous keys are a configuration error, not a guess, even if one of them verifies."""
    error = _refusal(TOKEN, keys())
    assert (KeyringError, "keyring_error") == (type(error), error.code)


# --- JWKs -----------------------------------------------------------------------------------------

R1_PUBLIC_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "kid": "r1",
    "use": "sig",
    "alg": "EdDSA",
    "x": R1_X,
}
R1_PRIVATE_JWK = {**R1_PUBLIC_JWK, "d": R1_D}


def test_jwks_of_a_key_have_their_documented_members() -> None:
    """The private JWK is the public one plus d (RFC 8037); both are exactly these members."""
    assert R1_PRIVATE_JWK == _r1().to_jwk()
    assert R1_PUBLIC_JWK == _r1().public_key.to_jwk()
    assert {"keys": [R1_PUBLIC_JWK]} == _signer().public_jwks()


def test_jwks_round_trip() -> None:
    """from_jwk(to_jwk()) gives the same key, private or public, through JSON text too."""
    for key in (_r1(), _r2(), SigningKey.generate("any.id_9-Z")):
        assert key == SigningKey.from_jwk(key.to_jwk())
        assert key == SigningKey.from_jwk(json.loads(json.dumps(key.to_jwk())))
        assert key.public_key == VerifyKey.from_jwk(key.public_key.to_jwk())
        assert hash(key.public_key) == hash(VerifyKey.from_jwk(key.public_key.to_jwk()))
        assert hash(key) == hash(SigningKey.from_jwk(key.to_jwk()))


def test_a_private_jwk_read_as_a_verify_key_gives_its_public_half() -> None:
    """VerifyKey.from_jwk of a private JWK is the public key, and writes no d back."""
    public = VerifyKey.from_jwk(R1_PRIVATE_JWK)
    assert _r1().public_key == public
    assert "d" not in public.to_jwk()
    assert (_r2().public_key,) == VerifyKey.from_jwks({"keys": [_r2().to_jwk()]})


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "OKP", "crv": "Ed25519", "kid": "r1", "x": R1_X},
        {**R1_PUBLIC_JWK, "alg": "Ed25519"},
        {**R1_PUBLIC_JWK, "key_ops": ["verify"], "role": "receipt", "added_at": "x"},
    ],
    ids=["minimal", "alg-Ed25519", "extra-members"],
)
def test_jwks_other_tools_write_are_read(jwk: dict[str, Any]) -> None:
    """use and alg may be left out (or alg be the fully specified Ed25519); extras are ignored."""
    assert _r1().public_key == VerifyKey.from_jwk(jwk)
    assert _r1() == SigningKey.from_jwk({**jwk, "d": R1_D})


def test_a_private_jwk_whose_halves_disagree_is_refused() -> None:
    """x that is not the public half of d: a file that would sign what its own set refuses."""
    jwk = {**R1_PRIVATE_JWK, "x": R2_X}
    with pytest.raises(KeyringError) as caught:
        SigningKey.from_jwk(jwk)
    assert "x is not the public half of its d" in caught.value.details["reason"]
    assert R1_D not in str(caught.value)


def test_a_private_jwk_whose_halves_disagree_is_no_verify_key() -> None:
    """Read as a verify key, a private JWK whose x is not d's public half is refused too."""
    with pytest.raises(KeyringError):
        VerifyKey.from_jwk({**R1_PRIVATE_JWK, "x": R2_X})


def _non_canonical(text: str) -> dict[str, str]:
    """Spellings of ``text`` (a 32-byte key) that are not its one canonical base64url."""
    assert 43 == len(text)
    return {
        "padded": _padded(text),
        "unused bits": _loose(text),
        "plus sign": "+" + text[1:],
        "slash": "/" + text[1:],
        "short": text[:-1],
        "long": text + "A",
        "31 bytes": _b64(_unb64(text)[:31]),
        "33 bytes": _b64(_unb64(text) + b"\x01"),
        "inner newline": text[:20] + "\n" + text[20:],
        "surrounding space": f" {text} ",
        "arabic-indic digit": text[:-1] + "٨",
        "empty": "",
    }


BAD_JWKS: dict[str, dict[str, Any]] = {
    "kty oct": {"kty": "oct"},
    "kty EC": {"kty": "EC"},
    "kty RSA": {"kty": "RSA"},
    "kty okp": {"kty": "okp"},
    "kty missing": {"kty": ...},
    "kty list": {"kty": ["OKP"]},
    "crv X25519": {"crv": "X25519"},
    "crv Ed448": {"crv": "Ed448"},
    "crv ed25519": {"crv": "ed25519"},
    "crv missing": {"crv": ...},
    "use enc": {"use": "enc"},
    "use SIG": {"use": "SIG"},
    "alg ES256": {"alg": "ES256"},
    "alg none": {"alg": "none"},
    "alg HS256": {"alg": "HS256"},
    "alg eddsa": {"alg": "eddsa"},
    "x missing": {"x": ...},
    "x number": {"x": 5},
    "kid missing": {"kid": ...},
    "kid empty": {"kid": ""},
    "kid long": {"kid": "k" * 33},
    "kid space": {"kid": "r 1"},
    "kid number": {"kid": 1},
    "x standard alphabet": {"x": R1_X.replace("_", "/")},
    **{f"x {name}": {"x": value} for name, value in _non_canonical(R1_X).items()},
}


@pytest.mark.parametrize("changes", list(BAD_JWKS.values()), ids=list(BAD_JWKS))
def test_jwks_that_are_not_ed25519_signing_keys_are_refused(changes: dict[str, Any]) -> None:
    """Wrong kty, crv, use or alg; x of the wrong length or spelling; a bad kid: KeyringError."""
    public = {k: v for k, v in {**R1_PUBLIC_JWK, **changes}.items() if v is not ...}
    private = {k: v for k, v in {**R1_PRIVATE_JWK, **changes}.items() if v is not ...}
    with pytest.raises(KeyringError):
        VerifyKey.from_jwk(public)
    with pytest.raises(KeyringError):
        VerifyKey.from_jwk(private)
    with pytest.raises(KeyringError) as caught:
        SigningKey.from_jwk(private)
    assert R1_D not in str(caught.value)
    assert R1_D[:12] not in repr(caught.value)


BAD_DS: dict[str, Any] = {
    **_non_canonical(R1_D),
    "missing": ...,
    "number": 5,
    "null": None,
    "x instead": R1_X,
}


@pytest.mark.parametrize("d", list(BAD_DS.values()), ids=list(BAD_DS))
def test_private_jwks_with_a_bad_d_are_refused(d: Any) -> None:
    """d missing, of the wrong length or not in the one canonical spelling: a KeyringError."""
    jwk = {k: v for k, v in {**R1_PRIVATE_JWK, "d": d}.items() if v is not ...}
    with pytest.raises(KeyringError) as caught:
        SigningKey.from_jwk(jwk)
    assert R1_D not in str(caught.value)
    assert R1_D[:12] not in str(caught.value)


@pytest.mark.parametrize(
    "jwk",
    [None, "{}", json.dumps(R1_PRIVATE_JWK), b"{}", [R1_PUBLIC_JWK], 5, {1: "OKP"}],
    ids=repr,
)
def test_jwks_must_be_json_objects(jwk: Any) -> None:
    """A JWK is a mapping with text names: JSON text, lists and numbers are refused."""
    with pytest.raises(KeyringError):
        VerifyKey.from_jwk(jwk)
    with pytest.raises(KeyringError):
        SigningKey.from_jwk(jwk)


def _names(value: object) -> set[str]:
    """Every member name anywhere in a JSON value."""
    if isinstance(value, Mapping):
        return set(value) | {name for member in value.values() for name in _names(member)}
    if isinstance(value, list):
        return {name for member in value for name in _names(member)}
    return set()


def test_public_jwks_hold_nothing_private() -> None:
    """The set operators are given has no d (nor k) anywhere, and no private key bytes."""
    signer = _signer(_r1(), _r2()).with_key(SigningKey.generate("r3"), current=False)
    jwks = signer.public_jwks()
    assert not _names(jwks) & {"d", "k", "p", "q", "dp", "dq", "qi"}
    assert {"OKP"} == {jwk["kty"] for jwk in jwks["keys"]}
    text = json.dumps(jwks)
    assert R1_D not in text
    assert _b64(R2_SEED) not in text
    assert ["r1", "r3", "r2"] == [jwk["kid"] for jwk in jwks["keys"]]


# --- key ids and weak keys ------------------------------------------------------------------------

BAD_KEY_IDS: list[object] = ["", "a" * 33, "k 1", "k/1", "k:1", "k1\n", "ك1", "\uff4b1", 1, None]


@pytest.mark.parametrize("key_id", BAD_KEY_IDS, ids=repr)
def test_key_ids_follow_the_keyring_rule(key_id: object) -> None:
    """Receipt key ids obey the HMAC keyring's rule: both refuse the same ids, as does a JWK."""
    public = Ed25519PublicKey.from_public_bytes(_unb64(R1_X))
    with pytest.raises(KeyringError):
        HmacKey(key_id=key_id, secret=R1_SEED)  # type: ignore[arg-type]
    with pytest.raises(KeyringError):
        SigningKey(key_id=key_id, private_key=Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(KeyringError):
        VerifyKey(key_id=key_id, public_key=public)  # type: ignore[arg-type]
    with pytest.raises(KeyringError):
        VerifyKey.from_jwk({**R1_PUBLIC_JWK, "kid": key_id})
    error = _refusal(_forge(_header_with(kid=key_id)))
    assert _MALFORMED == (type(error), error.code)


@given(key_ids())
def test_valid_key_ids_agree_with_the_keyring(key_id: str) -> None:
    """Every id an HmacKey accepts, a SigningKey accepts, and it signs receipts that name it."""
    assert key_id == HmacKey(key_id=key_id, secret=R1_SEED).key_id
    key = SigningKey(key_id=key_id, private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED))
    assert key == SigningKey.from_jwk(key.to_jwk())
    assert key.public_key == VerifyKey.from_jwk(key.public_key.to_jwk())
    receipt = _receipt(_signer(key))
    assert key_id == _verify(receipt.token, {"keys": [key.public_key.to_jwk()]}).key_id


WEAK_SEEDS: dict[str, bytes] = {
    "zeros": bytes(32),
    "ones": b"\xff" * 32,
    "counting up": bytes(range(32)),
    "counting down": bytes(range(255, 191, -2)),
    "short pattern": b"\x8a\x13\xf0" * 10 + b"\x8a\x13",
    "few values": bytes([0, 7, 9, 200] * 3 + [7, 0, 200, 9] * 5),
    "password": b"correct horse battery staple 123",
}


@pytest.mark.parametrize("seed", list(WEAK_SEEDS.values()), ids=list(WEAK_SEEDS))
def test_weak_private_keys_are_refused(seed: bytes) -> None:
    """A placeholder or a password as a key: refused as a key and as a JWK's d."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    with pytest.raises(KeyringError, match="not random"):
        SigningKey(key_id="r1", private_key=private)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {**R1_PUBLIC_JWK, "x": _b64(public), "d": _b64(seed)}
    with pytest.raises(KeyringError, match="not random") as caught:
        SigningKey.from_jwk(jwk)
    assert _b64(seed) not in str(caught.value)


@pytest.mark.parametrize(
    "value", [None, b"\x00" * 32, Ed25519PrivateKey.generate().public_key(), "key"], ids=repr
)
def test_signing_key_needs_an_ed25519_private_key(value: object) -> None:
    """Only an Ed25519PrivateKey signs."""
    with pytest.raises(KeyringError):
        SigningKey(key_id="r1", private_key=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [None, bytes(32), Ed25519PrivateKey.generate(), R1_X, _r1().public_key], ids=repr
)
def test_verify_key_needs_an_ed25519_public_key(value: object) -> None:
    """Only an Ed25519PublicKey verifies."""
    with pytest.raises(KeyringError):
        VerifyKey(key_id="r1", public_key=value)  # type: ignore[arg-type]


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
    """A signing key or signer in a log shows ids only; a verify key shows its public x."""
    hidden = [R1_D, R1_SEED.hex(), _b64(R2_SEED), R2_SEED.hex()]
    assert "SigningKey(key_id='r1')" == repr(_r1())
    shown = [repr(_r1()), str(_r1()), repr(_signer(_r1(), _r2())), str(_signer(_r1(), _r2()))]
    assert [] == [secret for secret in hidden for text in shown if secret in text]
    assert f"VerifyKey(key_id='r1', public_key='{R1_X}')" == repr(_r1().public_key)


def test_receipt_repr_leaves_the_token_out() -> None:
    """repr shows the facts, not the token."""
    shown = repr(SAMPLE)
    assert TOKEN_SIGNATURE[:16] not in shown
    assert TOKEN_PAYLOAD[:16] not in shown
    assert "token" not in shown
    assert CODE_ID in shown
    assert "'r1'" in shown


def test_receipts_pickle() -> None:
    """A receipt crosses process boundaries intact, and its token still verifies."""
    restored = pickle.loads(pickle.dumps(SAMPLE))  # noqa: S301 - our own object
    assert SAMPLE == restored
    assert restored == _verify(restored.token)


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
    assert "r2" == json.loads(_unb64(new.token.split(".")[0]))["kid"]
    assert old == _verify(old.token, rotated.public_jwks())
    assert new == _verify(new.token, rotated.public_jwks())
    with pytest.raises(UnknownSigningKey):
        _verify(new.token, before.public_jwks())

    retired = rotated.without_key("r1")
    assert ("r2",) == tuple(key.key_id for key in retired.keys)
    assert new == _verify(new.token, retired.public_jwks())
    with pytest.raises(UnknownSigningKey):
        _verify(old.token, retired.public_jwks())


def test_a_standby_key_signs_nothing_until_it_is_made_current() -> None:
    """with_key(current=False) publishes a key first; with_current makes it sign, dropping none."""
    standby = _signer().with_key(_r2(), current=False)
    assert "r1" == standby.current.key_id
    assert "r1" == standby.sign(**FIELDS).key_id
    assert ["r2", "r1"] == [jwk["kid"] for jwk in standby.public_jwks()["keys"]]

    promoted = standby.with_current("r2")
    signed = promoted.sign(**FIELDS)
    assert "r2" == signed.key_id
    assert signed == _verify(signed.token, standby.public_jwks())
    assert {"r1", "r2"} == {key.key_id for key in promoted.keys}
    assert "r1" == promoted.with_current("r1").current.key_id


@pytest.mark.parametrize("key_id", ["r9", "", 2, None])
def test_with_current_refuses_a_key_it_does_not_hold(key_id: Any) -> None:
    """Only a held key can become current; anything else is a KeyringError."""
    with pytest.raises(KeyringError):
        _signer(_r1(), _r2()).with_current(key_id)


def test_sign_with_a_key_id_uses_that_key_while_it_is_held() -> None:
    """sign(key_id=...) signs with that key if held, else with the current key."""
    signer = _signer(_r1(), _r2())
    assert "r1" == signer.sign(**FIELDS, key_id="r1").key_id
    assert "r2" == signer.sign(**FIELDS, key_id="r9").key_id
    assert "r2" == signer.sign(**FIELDS).key_id
    with pytest.raises(KeyringError):
        signer.sign(**FIELDS, key_id=1)  # type: ignore[arg-type]


def test_rotated_receipt_differs_only_in_key_and_signature() -> None:
    """The same redemption signed after rotation names the new key and carries a new signature."""
    new = _receipt(_signer(_r1(), _r2()))
    assert attrs.evolve(new, key_id="r1", token=TOKEN) == SAMPLE
    assert new.token.split(".")[1] == TOKEN_PAYLOAD
    assert new.token.split(".")[2] != TOKEN_SIGNATURE


def test_cannot_add_a_key_with_a_used_id() -> None:
    """Key ids are unique in a signer, even for the same key."""
    with pytest.raises(KeyringError):
        _signer().with_key(SigningKey.generate("r1"))
    with pytest.raises(KeyringError):
        _signer().with_key(_r1())
    with pytest.raises(KeyringError):
        _signer().with_key(_r1(), current=False)


def test_cannot_retire_the_last_key() -> None:
    """A signer always has a key to sign with."""
    with pytest.raises(KeyringError):
        _signer().without_key("r1")
    with pytest.raises(KeyringError):
        _signer(_r1(), _r2()).without_key("r1").without_key("r2")


@pytest.mark.parametrize("key_id", ["r3", "", 3, None])
def test_cannot_retire_a_key_not_held(key_id: Any) -> None:
    """Retiring a mistyped id is an error, not a silent no-op."""
    with pytest.raises(KeyringError):
        _signer(_r1(), _r2()).without_key(key_id)


@pytest.mark.parametrize(
    "keys", [(), [], None, (_r1().public_key,), ("r1",), _r1(), (_r1(), None)], ids=repr
)
def test_signer_needs_signing_keys(keys: Any) -> None:
    """A signer is built from one or more SigningKey, nothing else."""
    with pytest.raises(KeyringError):
        ReceiptSigner(keys=keys)


def test_generate() -> None:
    """generate makes a one-key signer with fresh random keys."""
    first, second = ReceiptSigner.generate(), ReceiptSigner.generate("r7")
    assert "r1" == first.current.key_id
    assert "r7" == second.current.key_id
    assert first.public_jwks()["keys"][0]["x"] != second.public_jwks()["keys"][0]["x"]
    receipt = second.sign(**FIELDS)
    assert receipt == _verify(receipt.token, second.public_jwks())
    with pytest.raises(UnknownSigningKey):
        _verify(receipt.token, first.public_jwks())
    with pytest.raises(ReceiptNotVerified):
        _verify(receipt.token, ReceiptSigner.generate("r7").public_jwks())


# --- redemptions ----------------------------------------------------------------------------------


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
    claims = _unb64(receipt.token.split(".")[1]).decode("ascii")
    for text in (claims, receipt.token, repr(receipt)):
        assert citizen.identifier not in text
        assert issued.code not in text
    assert redemption.customer_ref == receipt.customer_ref
    assert receipt == verify_receipt(receipt.token, JWKS, audience="stc", service="new_line")


def test_a_bound_redemption_lists_its_bindings_and_reference(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """A number transfer bound to a number and a recipient says both were proved, and by whom."""
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock, signer=_signer())
    issued = issuer.issue(
        citizen, "zain", service="number_transfer", msisdn="0551234567", recipient=resident
    )
    clock.advance(minutes=3, microseconds=500)
    receipt = issuer.redeem(
        citizen,
        "zain",
        issued.code,
        "number_transfer",
        msisdn="0551234567",
        recipient=resident,
        reference="branch-12",
    ).receipt
    assert receipt is not None
    claims = json.loads(_unb64(receipt.token.split(".")[1]))
    assert ["msisdn", "recipient"] == claims["bindings"]
    assert "branch-12" == claims["reference"]
    assert issued.code_id == claims["jti"]
    assert int(START.timestamp()) == claims["code_issued_at"]
    assert int(START.timestamp()) + 180 == claims["iat"]
    assert receipt == verify_receipt(receipt.token, JWKS, audience="zain")


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
    verified = []
    for redemption, provider in zip(redemptions, ("stc", "stc", "mobily"), strict=True):
        assert redemption.receipt is not None
        verified.append(verify_receipt(redemption.receipt.token, JWKS, audience=provider))
    assert [redemption.customer_ref for redemption in redemptions] == [
        receipt.customer_ref for receipt in verified
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
    """For any customer and any two operators, the receipts' subs differ."""
    keyring, clock = Keyring.generate(), ManualClock(START)
    issuer = CodeIssuer(MemoryStorage(), keyring=keyring, clock=clock, signer=_signer())
    refs = set()
    for provider in providers:
        issued = issuer.issue(subject, provider)
        receipt = issuer.redeem(subject, provider, issued.code, "new_line").receipt
        assert receipt is not None
        refs.add(verify_receipt(receipt.token, JWKS, audience=provider.id).customer_ref)
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
    forbidden |= {"0551234567", "req-0001", "req-0002"}
    for identity in (identity_of(citizen), identity_of(resident)):
        forbidden.add(keyring.subject_ref(identity))
        forbidden.add(keyring.audit_ref(identity))
    texts = []
    for redemption in outputs:
        receipt = redemption.receipt
        assert receipt is not None
        claims = _unb64(receipt.token.split(".")[1]).decode("ascii")
        texts += [repr(redemption), repr(receipt), receipt.token, claims]
    assert [] == sorted({secret for secret in forbidden for text in texts if secret in text})


# --- another process, public JWK Set only ---------------------------------------------------------

_CHILD = """
import json, sys
from telecard_auth import verify_receipt

request = json.loads(sys.stdin.read())
try:
    receipt = verify_receipt(request["token"], request["jwks"], audience=request["audience"])
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


def _in_child(token: str, jwks: Mapping[str, Any], audience: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _CHILD],
        input=json.dumps({"token": token, "jwks": jwks, "audience": audience}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_another_process_verifies_with_the_public_jwks_only() -> None:
    """An operator's process, handed the public JWK Set as JSON and a token, verifies it."""
    signer = _signer(_r1(), _r2())
    receipt = signer.sign(**FIELDS)
    jwks = signer.public_jwks()
    assert "d" not in _names(jwks)
    assert (
        0,
        {
            "code_id": CODE_ID,
            "provider_id": "mobily",
            "service_id": "lost_sim_replacement",
            "redeemed_at": "2026-03-01T09:30:15+00:00",
            "customer_ref": CUSTOMER,
            "key_id": "r2",
        },
    ) == _in_child(receipt.token, jwks, "mobily")


def test_another_process_refuses_forgeries() -> None:
    """The operator's process refuses a forged claim, an unknown key, a cut token, another use."""
    forged = f"{TOKEN_HEADER}.{_part(_claims_with(service='new_line'))}.{TOKEN_SIGNATURE}"
    r2_only = _signer(_r2()).public_jwks()
    assert (1, {"error": "receipt_not_verified"}) == _in_child(forged, JWKS, "mobily")
    assert (1, {"error": "unknown_signing_key"}) == _in_child(TOKEN, r2_only, "mobily")
    assert (1, {"error": "malformed_receipt"}) == _in_child(TOKEN[:-1], JWKS, "mobily")
    assert (1, {"error": "receipt_mismatch"}) == _in_child(TOKEN, JWKS, "stc")


_PLAIN_CHILD = """
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

jwks = json.loads(sys.argv[1])
header, payload, signature = sys.stdin.read().split(".")
fields = json.loads(unb64(header))
assert fields["alg"] == "EdDSA" and fields["typ"] == "telecard-receipt+jwt"
[jwk] = [key for key in jwks["keys"] if key["kid"] == fields["kid"]]
key = Ed25519PublicKey.from_public_bytes(unb64(jwk["x"]))
key.verify(unb64(signature), f"{header}.{payload}".encode())
claims = json.loads(unb64(payload))
print(claims["jti"], claims["iat"], "telecard_auth" in sys.modules)
"""


def test_format_verifies_without_the_library() -> None:
    """The documented format is enough: base64, JSON and Ed25519 verify a receipt, no library."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _PLAIN_CHILD, json.dumps(JWKS)],
        input=TOKEN,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "" == result.stderr
    assert f"{CODE_ID} 1772357415 False\n" == result.stdout
