"""The JOSE pieces receipts are made of: base64url, strict JSON, Ed25519 JWKs (RFC 7515/7517/8037).

Only what receipts need, and strict where the standards allow a choice: base64url without padding
and in its one canonical spelling, JSON objects without repeated member names, and Ed25519 keys
of exactly 32 bytes. Nothing here knows what a receipt says.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from telecard_auth._core.errors import KeyringError
from telecard_auth._core.text import plain

__all__ = [
    "KEY_BYTES",
    "NotJson",
    "b64decode",
    "b64encode",
    "compact_json",
    "ed25519_from_jwk",
    "ed25519_jwk",
    "is_ed25519",
    "jwk_members",
    "member",
    "raw_public",
    "strict_json_object",
]

#: Ed25519 keys are 32 bytes, private or public (RFC 8032).
KEY_BYTES = 32


class NotJson(ValueError):
    """Bytes that are not one JSON object under the strict rules; the reason names no value."""


def b64encode(raw: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes | None:
    """The bytes of canonical unpadded base64url ``text``, or ``None``.

    Only the one spelling ``b64encode`` gives back is accepted: unused low bits set, padding, or
    characters outside the alphabet would let two texts carry the same bytes.
    """
    text = plain(text)
    if not text.isascii() or "=" in text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if b64encode(raw) == text else None


def compact_json(value: Mapping[str, Any]) -> bytes:
    """``value`` as compact ASCII JSON, members in the order given: one text for one value."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise NotJson("a member name is repeated")
    return found


def _no_constants(_name: str) -> Any:
    raise NotJson("NaN and Infinity are not JSON")


def strict_json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in UTF-8 ``raw``; ``NotJson`` for anything else.

    A repeated member name is refused (RFC 7515 §5.2 allows refusing it, and two parsers that
    pick different copies are how signed tokens get misread), as are NaN and Infinity.
    """
    try:
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_repeats, parse_constant=_no_constants
        )
    except NotJson:
        raise
    except (ValueError, RecursionError):
        raise NotJson("it is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise NotJson("it is not a JSON object")
    return value


def jwk_members(jwk: object) -> Mapping[str, Any]:
    """``jwk`` if it is a JSON object (a mapping with text names); else ``KeyringError``."""
    if not isinstance(jwk, Mapping) or not all(isinstance(name, str) for name in jwk):
        raise KeyringError(reason="a JWK must be a JSON object")
    return jwk


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519_jwk(
    key_id: str, key: Ed25519PrivateKey | Ed25519PublicKey, *, private: bool
) -> dict[str, str]:
    """The JWK of an Ed25519 key (RFC 8037 §2): its public half, and ``d`` when ``private``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": key_id,
        "use": "sig",
        "alg": "EdDSA",
        "x": b64encode(raw_public(public)),
    }
    if private:
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyringError(reason="a public key has no private half to write")
        jwk["d"] = b64encode(_raw_private(key))
    return jwk


def member(jwk: Mapping[str, Any], name: str) -> object:
    """The member ``name`` of ``jwk``: text as a plain ``str`` (see ``plain``), else as it is."""
    value = jwk.get(name)
    return plain(value) if isinstance(value, str) else value


def _key_bytes(jwk: Mapping[str, Any], name: str) -> bytes:
    text = member(jwk, name)
    raw = b64decode(text) if isinstance(text, str) else None
    if raw is None or len(raw) != KEY_BYTES:
        raise KeyringError(reason=f"the JWK's {name} is not 32 bytes of base64url")
    return raw


def is_ed25519(jwk: Mapping[str, Any]) -> bool:
    """Whether ``jwk`` is an Ed25519 key meant for signatures (``kty`` OKP, ``crv`` Ed25519)."""
    return (
        member(jwk, "kty") == "OKP"
        and member(jwk, "crv") == "Ed25519"
        and ("use" not in jwk or member(jwk, "use") == "sig")
        and ("alg" not in jwk or member(jwk, "alg") in ("EdDSA", "Ed25519"))
    )


def ed25519_from_jwk(
    jwk: Mapping[str, Any], *, private: bool
) -> Ed25519PrivateKey | Ed25519PublicKey:
    """The key an Ed25519 JWK holds: the private key if ``private`` (``d`` needed), else public.

    A private JWK's ``x`` must be the public half of its ``d``: a file whose two halves disagree
    would sign receipts that its own published key set does not verify.
    """
    if not is_ed25519(jwk):
        raise KeyringError(reason="a receipt key is an OKP JWK on the Ed25519 curve, for signing")
    public_raw = _key_bytes(jwk, "x")
    if private or "d" in jwk:
        key = Ed25519PrivateKey.from_private_bytes(_key_bytes(jwk, "d"))
        if raw_public(key.public_key()) != public_raw:
            raise KeyringError(reason="the JWK's x is not the public half of its d")
        if private:
            return key
    try:
        return Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError:
        raise KeyringError(reason="the JWK's x is not an Ed25519 public key") from None
