"""Fuzz target: receipt tokens are verified or refused as documented; receipt JWKs, read or refused.

``verify_receipt`` (against one fixed JWK Set, for the audience ``stc``) gets raw text, three
fuzzed base64url parts (most often with a genuine signature over them, so that the header and
claim checks are reached), fuzzed headers and fuzzed claims signed with the fixed key, and edits
of a genuine token. The JWK readers (``VerifyKey.from_jwk``, ``SigningKey.from_jwk``,
``VerifyKey.from_jwks``, and a JWK Set as ``verify_receipt``'s keys) get fuzzed JWKs, and any
input text that is a JSON object.

Promises checked besides "no other exception":

* ``verify_receipt`` refuses only with ``MalformedReceipt``, ``UnknownSigningKey``,
  ``ReceiptNotVerified`` or ``ReceiptMismatch``;
* a token it accepts is three canonical base64url parts, its header is exactly ``alg`` EdDSA,
  ``kid`` r1 and the receipt ``typ``, its signature verifies with the bare cryptography API, its
  claims are what the receipt says, the receipt's facts signed again give the same facts, and
  shown to another operator it is a ``ReceiptMismatch`` on ``aud``;
* the JWK readers refuse only with ``KeyringError``; a JWK they accept holds the very ``x`` (and
  ``d``, whose public half ``x`` is) that they write back; only the genuine public key verifies.

Run under libFuzzer (the first corpus directory is written to, so give a scratch one first)::

    python fuzz/fuzz_receipt.py -max_total_time=60 /tmp/corpus-receipt fuzz/corpus/receipt

``fuzz_one_input`` is importable, so the test suite replays inputs without libFuzzer.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import atheris

with atheris.instrument_imports(include=["telecard_auth"]):
    import attrs
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from telecard_auth import (
        MalformedReceipt,
        ReceiptMismatch,
        ReceiptNotVerified,
        ReceiptSigner,
        SigningKey,
        TelecardAuthError,
        UnknownSigningKey,
        VerifyKey,
        verify_receipt,
    )
    from telecard_auth._core.receipt import RECEIPT_TYPE

__all__ = [
    "AUDIENCE",
    "JWKS",
    "PRIVATE_JWK",
    "SIGNING_KEY",
    "VALID_TOKEN",
    "FuzzFinding",
    "fuzz_one_input",
    "main",
]

#: The fixed key every fuzzed token is signed with and checked against (the documentation's
#: sample key: its ``x`` is the one in ``VerifyKey``'s example).
PRIVATE_JWK: dict[str, str] = {
    "kty": "OKP",
    "crv": "Ed25519",
    "kid": "r1",
    "use": "sig",
    "alg": "EdDSA",
    "x": "he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I",
    "d": "p3KNBwbeZo_m6oCSH5BRG4ZZocfCUYA6nX9gUTua72o",
}
SIGNING_KEY = SigningKey.from_jwk(PRIVATE_JWK)
_PUBLIC = SIGNING_KEY.private_key.public_key()
#: The public JWK Set the verifier holds.
JWKS: dict[str, Any] = {"keys": [SIGNING_KEY.public_key.to_jwk()]}
#: The operator every token is verified for, and another one.
AUDIENCE = "stc"
_OTHER_AUDIENCE = "mobily"
#: A genuine token, the starting point of the edits.
VALID_TOKEN = (
    ReceiptSigner(keys=(SIGNING_KEY,))
    .sign(
        code_id="q3Vx0bLk9TzA2mNc",
        provider_id=AUDIENCE,
        service_id="number_transfer",
        customer_ref="3f9a0c1b2d4e5f60718293a4b5c6d7e8",
        issued_at=datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC),
        redeemed_at=datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC),
        bindings=["msisdn", "recipient"],
        reference="riyadh-branch-4",
    )
    .token
)
_HEADER: dict[str, Any] = {"alg": "EdDSA", "kid": "r1", "typ": RECEIPT_TYPE}
_CLAIMS: dict[str, Any] = json.loads(
    base64.urlsafe_b64decode(VALID_TOKEN.split(".")[1] + "==").decode()
)
_REFUSALS = (MalformedReceipt, UnknownSigningKey, ReceiptNotVerified, ReceiptMismatch)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: What an edit may put into a token or key text: base64url, the separator, and junk.
_EDIT_CHARS = _B64 + ".=+/ \t\n\x00\u00a0\u200f\u0660\uff10\ud800"
#: Header member names: the receipt's, the refused ones, other registered ones, odd ones.
_HEADER_NAMES = ("alg", "kid", "typ", "jwk", "jku", "x5u", "x5c", "x5t", "crit", "cty", "b64", "")
#: Values a header member is likeliest to be tried with.
_HEADER_VALUES = (
    "EdDSA",
    "none",
    "HS256",
    "RS256",
    "ES256",
    "eddsa",
    "Ed25519",
    "r1",
    "r2",
    RECEIPT_TYPE,
    RECEIPT_TYPE.upper(),
    "JWT",
    "application/" + RECEIPT_TYPE,
)
#: JWK member names, and values each is likeliest to be tried with.
_JWK_VALUES: dict[str, tuple[str, ...]] = {
    "kty": ("OKP", "oct", "EC", "okp"),
    "crv": ("Ed25519", "X25519", "Ed448", "ed25519"),
    "use": ("sig", "enc", "SIG"),
    "alg": ("EdDSA", "Ed25519", "HS256", "none"),
    "kid": ("r1", "r2", "", "r 1", "k" * 33),
    "x": (PRIVATE_JWK["x"], PRIVATE_JWK["d"]),
    "d": (PRIVATE_JWK["d"], PRIVATE_JWK["x"]),
}


class FuzzFinding(AssertionError):
    """A promise broken without an exception: something accepted that must not be."""


def _require(condition: object, message: str) -> None:
    # Not ``assert``: a finding must not vanish under ``python -O``.
    if not condition:
        raise FuzzFinding(message)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pick(provider: atheris.FuzzedDataProvider, values: tuple[Any, ...]) -> Any:
    return values[provider.ConsumeIntInRange(0, len(values) - 1)]


def _chars(provider: atheris.FuzzedDataProvider, alphabet: str, most: int) -> str:
    count = provider.ConsumeIntInRange(0, most)
    return "".join(alphabet[provider.ConsumeIntInRange(0, len(alphabet) - 1)] for _ in range(count))


def _json_value(provider: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    match provider.ConsumeIntInRange(0, 10):
        case 0:
            return provider.ConsumeInt(provider.ConsumeIntInRange(1, 16))
        case 1:
            return provider.ConsumeIntInRange(0, 2**38)  # NumericDate-sized, both sides of 8999
        case 2:
            return provider.ConsumeFloat()
        case 3:
            return provider.ConsumeBool()
        case 4:
            return None
        case 5 if depth < 3:  # noqa: PLR2004
            return [
                _json_value(provider, depth + 1) for _ in range(provider.ConsumeIntInRange(0, 3))
            ]
        case 6 if depth < 3:  # noqa: PLR2004
            return {_chars(provider, _B64, 4): _json_value(provider, depth + 1)}
        case 7:
            return _chars(provider, _EDIT_CHARS, 70)
        case 8:
            return [_pick(provider, ("msisdn", "recipient", "pin", "MSISDN", AUDIENCE))]
        case _:
            return str(provider.ConsumeUnicode(provider.ConsumeIntInRange(0, 40)))


def _dumps(members: list[tuple[str, object]], provider: atheris.FuzzedDataProvider) -> bytes:
    """JSON of ``members`` (names may repeat), compact or spaced, ASCII or UTF-8."""
    spaced = provider.ConsumeBool()
    ascii_only = provider.ConsumeBool()
    comma, colon = (", ", ": ") if spaced else (",", ":")

    def one(value: object) -> str:
        return json.dumps(value, ensure_ascii=ascii_only, separators=(comma, colon))

    text = "{" + comma.join(f"{one(name)}{colon}{one(value)}" for name, value in members) + "}"
    return text.encode("utf-8", "surrogatepass")


def _fuzzed_members(
    base: Mapping[str, Any],
    names: tuple[str, ...],
    provider: atheris.FuzzedDataProvider,
    values: tuple[Any, ...] = (),
) -> list[tuple[str, object]]:
    """``base``'s members, a few changed, dropped, added or repeated; most stay genuine."""
    members = list(base.items())
    for _ in range(provider.ConsumeIntInRange(0, 3)):
        name = _pick(provider, names)
        match provider.ConsumeIntInRange(0, 5):
            case 0:
                members = [(key, value) for key, value in members if key != name]
            case 1 if values:  # replaced with a likely value
                members = [(key, value) for key, value in members if key != name]
                members.append((name, _pick(provider, values)))
            case 2 if values:  # repeated with a likely value
                members.append((name, _pick(provider, values)))
            case 3:
                members.append((name, dict(base).get(name)))  # a repeat of the genuine value
            case _:
                members = [(key, value) for key, value in members if key != name]
                members.append((name, _json_value(provider)))
    if provider.ConsumeBool():
        members.reverse()
    return members


def _signed(header: str, payload: str, provider: atheris.FuzzedDataProvider) -> str:
    """A token of two encoded parts: most often with a genuine signature over them."""
    match provider.ConsumeIntInRange(0, 4):
        case 0 | 1 | 2:
            signature = SIGNING_KEY.private_key.sign(f"{header}.{payload}".encode("ascii"))
        case 3:
            signature = provider.ConsumeBytes(64)
        case _:
            signature = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 80))
    return f"{header}.{payload}.{_b64(signature)}"


def _fuzzed_parts(provider: atheris.FuzzedDataProvider) -> str:
    """Fuzzed bytes in the header (or the genuine header) and the claims, then signed."""
    header = VALID_TOKEN.split(".")[0]
    if provider.ConsumeBool():
        header = _b64(provider.ConsumeBytes(provider.ConsumeIntInRange(0, 200)))
    payload = _b64(provider.ConsumeBytes(provider.ConsumeIntInRange(0, 1400)))
    return _signed(header, payload, provider)


def _fuzzed_claims(provider: atheris.FuzzedDataProvider) -> str:
    """The genuine header, and claims with a few members changed, signed."""
    names = (*_CLAIMS, "exp", "nbf", "x")
    claims = _dumps(_fuzzed_members(_CLAIMS, names, provider), provider)
    return _signed(VALID_TOKEN.split(".")[0], _b64(claims), provider)


def _fuzzed_header(provider: atheris.FuzzedDataProvider) -> str:
    """A header with a few members changed, and the genuine claims, signed."""
    header = _dumps(_fuzzed_members(_HEADER, _HEADER_NAMES, provider, _HEADER_VALUES), provider)
    return _signed(_b64(header), VALID_TOKEN.split(".")[1], provider)


def _edited_token(provider: atheris.FuzzedDataProvider) -> str:
    """The genuine token with a few characters replaced, inserted or deleted."""
    chars = list(VALID_TOKEN)
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


def _key_text(provider: atheris.FuzzedDataProvider, genuine: str) -> object:
    """A value for ``x`` or ``d``: the genuine text edited, other base64url, or any JSON value."""
    match provider.ConsumeIntInRange(0, 3):
        case 0:
            chars = list(genuine)
            position = provider.ConsumeIntInRange(0, len(chars) - 1)
            chars[position] = _EDIT_CHARS[provider.ConsumeIntInRange(0, len(_EDIT_CHARS) - 1)]
            return "".join(chars)
        case 1:
            return genuine + _chars(provider, "=A \n", 2)
        case 2:
            return _chars(provider, _B64, 45)
        case _:
            return _json_value(provider)


def _fuzzed_jwk(provider: atheris.FuzzedDataProvider) -> dict[str, object]:
    """The private JWK with a few members changed or dropped."""
    jwk: dict[str, object] = dict(PRIVATE_JWK)
    for name, values in _JWK_VALUES.items():
        match provider.ConsumeIntInRange(0, 6):
            case 0:
                del jwk[name]
            case 1:
                jwk[name] = _pick(provider, values)
            case 2 if name in ("x", "d"):
                jwk[name] = _key_text(provider, PRIVATE_JWK[name])
            case 3:
                jwk[name] = _json_value(provider)
            case _:
                pass
    return jwk


def _value(data: bytes) -> object:
    """The value one input stands for; its first byte picks how the rest is built.

    Most inputs are the rest as UTF-8 (undecodable bytes become lone surrogates), which keeps
    seeds readable: a seed is the selector byte 0 followed by the text.
    """
    selector, rest = (data[0] % 9, data[1:]) if data else (0, b"")
    provider = atheris.FuzzedDataProvider(rest)
    match selector:
        case 0 | 1 | 2:
            return rest.decode("utf-8", "surrogateescape")
        case 3:
            return _fuzzed_parts(provider)
        case 4:
            return _fuzzed_claims(provider)
        case 5:
            return _edited_token(provider)
        case 6:
            return _fuzzed_jwk(provider)
        case 7:
            return _fuzzed_header(provider)
        case _:
            return rest  # bytes: a reader must refuse a non-str too


def _check_accepted(token: str, receipt: Any) -> None:
    """What must hold of a token verify_receipt accepted."""
    _require(receipt.token == token, "the receipt's token is not the token verified")
    parts = token.split(".")
    _require(len(parts) == 3, "a token of other than 3 parts verified")  # noqa: PLR2004
    _require(all(_b64(_unb64(part)) == part for part in parts), "non-canonical base64url verified")
    header = json.loads(_unb64(parts[0]))
    _require(set(header) == {"alg", "kid", "typ"}, "a header with other members verified")
    _require(header["alg"] == "EdDSA", "a header with another alg verified")
    _require(header["kid"] == receipt.key_id == "r1", "a header with another kid verified")
    kind = header["typ"].lower().removeprefix("application/")
    _require(kind == RECEIPT_TYPE, "a header with another typ verified")
    try:
        _PUBLIC.verify(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        _require(False, "a token whose signature does not verify was accepted")
    claims = json.loads(_unb64(parts[1]))
    said = {
        "iss": receipt.issuer,
        "sub": receipt.customer_ref,
        "aud": receipt.provider_id,
        "jti": receipt.code_id,
        "service": receipt.service_id,
        "iat": int(receipt.redeemed_at.timestamp()),
        "code_issued_at": int(receipt.issued_at.timestamp()),
        "bindings": list(receipt.bindings),
    }
    found = {name: claims.get(name) for name in said}
    found["bindings"] = sorted(found["bindings"])
    if isinstance(found["aud"], list) and len(found["aud"]) == 1:
        found["aud"] = found["aud"][0]  # an audience may be an array of one (RFC 7519 §4.1.3)
    _require(found == said, "the receipt does not say what the claims say")
    _require(claims.get("reference") == receipt.reference, "the reference was misread")
    _require(type(claims["iat"]) is int, "a non-integer iat verified")
    _require(receipt.provider_id == AUDIENCE, "a receipt for another audience verified")
    again = ReceiptSigner(keys=(SIGNING_KEY,), issuer=receipt.issuer).sign(
        code_id=receipt.code_id,
        provider_id=receipt.provider_id,
        service_id=receipt.service_id,
        customer_ref=receipt.customer_ref,
        issued_at=receipt.issued_at,
        redeemed_at=receipt.redeemed_at,
        bindings=receipt.bindings,
        reference=receipt.reference,
    )
    _require(attrs.evolve(again, token=token) == receipt, "the facts do not survive re-signing")
    try:
        verify_receipt(token, JWKS, audience=_OTHER_AUDIENCE)
    except ReceiptMismatch as error:
        _require(dict(error.details) == {"claim": "aud"}, "the mismatch names another claim")
    else:
        _require(False, "a receipt verified for two audiences")


def _check_token(value: object) -> None:
    try:
        receipt = verify_receipt(value, JWKS, audience=AUDIENCE)
    except TelecardAuthError as error:
        _require(type(error) in _REFUSALS, f"verify_receipt refused with {error.code}")
        return
    _require(isinstance(value, str), "a token that is not text verified")
    assert isinstance(value, str)  # noqa: S101 - narrowing for the type checker
    _check_accepted(value, receipt)


def _keyring_error(call: Any, value: object) -> Any:
    """``call(value)``, or ``None`` if it refused with a KeyringError (anything else escapes)."""
    try:
        return call(value)
    except TelecardAuthError as error:
        _require(error.code == "keyring_error", f"{call.__qualname__} refused with {error.code}")
        return None


def _check_jwk(value: Mapping[str, Any]) -> None:
    public = _keyring_error(VerifyKey.from_jwk, value)
    if public is not None:
        _require(public.to_jwk()["x"] == value["x"], "VerifyKey.from_jwk changed x")
        _require(public.key_id == value["kid"], "VerifyKey.from_jwk changed kid")
        _require(
            VerifyKey.from_jwk(public.to_jwk()) == public, "a verify key's JWK reads back other"
        )
    private = _keyring_error(SigningKey.from_jwk, value)
    if private is not None:
        written = private.to_jwk()
        _require(written["d"] == value["d"], "SigningKey.from_jwk changed d")
        _require(written["x"] == value["x"], "SigningKey.from_jwk changed x")
        half = Ed25519PrivateKey.from_private_bytes(_unb64(value["d"])).public_key()
        _require(half.public_bytes_raw() == _unb64(value["x"]), "x is not the public half of d")
        _require(SigningKey.from_jwk(written) == private, "a signing key's JWK reads back other")
        _require(public is not None, "a private JWK read as a signing key but not as a verify key")
    jwks = {"keys": [value]}
    _keyring_error(VerifyKey.from_jwks, jwks)
    try:
        verify_receipt(VALID_TOKEN, jwks, audience=AUDIENCE)
    except TelecardAuthError as error:
        known = ("keyring_error", "unknown_signing_key", "receipt_not_verified")
        _require(error.code in known, f"verify_receipt with a fuzzed key refused with {error.code}")
    else:
        _require(value.get("x") == PRIVATE_JWK["x"], "a key that did not sign verified the token")


def fuzz_one_input(data: bytes) -> None:
    """One input: a documented ``TelecardAuthError`` is an answer; anything else is a crash."""
    value = _value(data)
    if isinstance(value, dict):
        _check_jwk(value)
        return
    _check_token(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return
        if isinstance(parsed, dict):
            _check_jwk(parsed)
            _keyring_error(VerifyKey.from_jwks, parsed)


def main(argv: list[str] | None = None) -> None:
    """Fuzz under libFuzzer; ``argv`` holds libFuzzer's flags (default: the command line)."""
    atheris.Setup(sys.argv if argv is None else argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
