"""The tokens every verifier must refuse, made by hand from a real receipt: JOSE libraries refuse
to make most of them, which is the point.

Four attacks, each on a genuine token:

* ``tampered``: one claim changed (the service), the header and the signature kept;
* ``wrong_audience``: the genuine token, shown to another operator;
* ``alg_none``: the header says ``"alg": "none"`` and the signature is empty;
* ``hs256_public_key``: the header says HS256 and the "signature" is an HMAC keyed with the
  public key, the classic algorithm-confusion attack. The public key is public, so anyone can
  make these; a verifier that let the token choose the algorithm would take the key it holds as
  an HMAC secret and accept. It is tried with each form a verifier might hold the key in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ATTACKS",
    "FORGERIES",
    "KEY_FORMS",
    "OTHER_PROVIDER",
    "Forgery",
    "b64decode",
    "b64encode",
    "forge",
    "public_key_as",
]

#: What each forgery tries; every verifier's table of refusals names these.
ATTACKS = ("tampered", "wrong_audience", "alg_none", "hs256_public_key")
#: The forms of the public key an HS256 forgery is keyed with: the raw 32 bytes, the JWK's ``x``
#: text, the PEM (SubjectPublicKeyInfo), and the JWK as JSON.
KEY_FORMS = ("raw", "x", "pem", "jwk")
#: Every forgery, by name: the attack, and for HS256 the form of the key.
FORGERIES = (*ATTACKS[:-1], *(f"{ATTACKS[-1]}-{form}" for form in KEY_FORMS))
#: The operator a genuine receipt is shown to in the wrong-audience attack.
OTHER_PROVIDER = "mobily"


@attrs.frozen
class Forgery:
    """A token to refuse, what it tries, and what the verifying operator holds: the public JWK
    Set of the genuine receipt's signer, and its own provider id as the audience."""

    name: str
    token: str
    jwks: Mapping[str, Any]
    audience: str

    @property
    def attack(self) -> str:
        """One of ``ATTACKS``."""
        return self.name.split("-")[0]


def b64encode(raw: bytes) -> str:
    """base64url without padding, as JWS writes it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _part(value: Mapping[str, Any]) -> str:
    return b64encode(json.dumps(value, separators=(",", ":")).encode())


def public_key_as(form: str, jwk: Mapping[str, Any]) -> bytes:
    """The public key as a verifier might hold it, in ``form``: a candidate HMAC key."""
    raw = b64decode(jwk["x"])
    if form == "raw":
        return raw
    if form == "x":
        return str(jwk["x"]).encode("ascii")
    if form == "pem":
        public = Ed25519PublicKey.from_public_bytes(raw)
        return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if form == "jwk":
        return json.dumps(jwk, separators=(",", ":")).encode()
    raise ValueError(form)


def forge(name: str, token: str, jwks: Mapping[str, Any], audience: str) -> Forgery:
    """The forgery ``name`` (one of ``FORGERIES``) of the genuine ``token`` for ``audience``,
    whose key set is ``jwks``."""
    header_part, payload_part, signature = token.split(".")
    header = json.loads(b64decode(header_part))
    if name == "tampered":
        claims = json.loads(b64decode(payload_part))
        changed = dict(claims, service="lost_sim_replacement")
        if changed == claims:
            changed["service"] = "new_line"
        return Forgery(name, f"{header_part}.{_part(changed)}.{signature}", jwks, audience)
    if name == "wrong_audience":
        return Forgery(name, token, jwks, OTHER_PROVIDER)
    if name == "alg_none":
        return Forgery(name, f"{_part(dict(header, alg='none'))}.{payload_part}.", jwks, audience)
    attack, form = name.split("-")
    if attack != "hs256_public_key":
        raise ValueError(name)
    [jwk] = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    signing_input = f"{_part(dict(header, alg='HS256'))}.{payload_part}"
    mac = hmac.new(public_key_as(form, jwk), signing_input.encode("ascii"), hashlib.sha256)
    return Forgery(name, f"{signing_input}.{b64encode(mac.digest())}", jwks, audience)
