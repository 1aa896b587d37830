"""The forgeries are the attacks they claim to be, so that a verifier refusing them means
something: each differs from the genuine token only where its attack says, and the HS256 ones
are real HMACs under the public key, which a verifier that let the token pick HS256 would accept."""

from __future__ import annotations

import hashlib
import hmac
import json

import jwt
import pytest
from tests.interop.conftest import Issued
from tests.interop.forgeries import KEY_FORMS, OTHER_PROVIDER, b64decode, forge, public_key_as

pytestmark = pytest.mark.interop


def _parts(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, claims, signature = token.split(".")
    return json.loads(b64decode(header)), json.loads(b64decode(claims)), signature


def test_the_tampered_token_changes_the_service_only(issued: Issued) -> None:
    """The tampered token has the genuine header and signature, and another service."""
    header, claims, signature = _parts(issued.token)
    forged = forge("tampered", issued.token, issued.jwks, issued.audience)
    changed_header, changed_claims, kept_signature = _parts(forged.token)
    assert (header, signature) == (changed_header, kept_signature)
    assert ["service"] == [name for name in claims if claims[name] != changed_claims[name]]


def test_the_wrong_audience_is_another_operator(issued: Issued) -> None:
    """The genuine token, shown to another operator."""
    forged = forge("wrong_audience", issued.token, issued.jwks, issued.audience)
    assert (issued.token, OTHER_PROVIDER) == (forged.token, forged.audience)


def test_alg_none_has_no_signature(issued: Issued) -> None:
    """The alg-none token keeps the claims, says "none", and has an empty signature."""
    header, claims, _signature = _parts(issued.token)
    forged = forge("alg_none", issued.token, issued.jwks, issued.audience)
    assert (header | {"alg": "none"}, claims, "") == _parts(forged.token)


@pytest.mark.parametrize("form", KEY_FORMS)
def test_the_hs256_forgery_is_an_hmac_under_the_public_key(issued: Issued, form: str) -> None:
    """The HS256 token's signature is HMAC-SHA256 of its first two parts, keyed with the public
    key in that form."""
    forged = forge(f"hs256_public_key-{form}", issued.token, issued.jwks, issued.audience)
    signing_input, _dot, signature = forged.token.rpartition(".")
    [jwk] = issued.jwks["keys"]
    mac = hmac.new(public_key_as(form, jwk), signing_input.encode(), hashlib.sha256).digest()
    assert mac == b64decode(signature)
    assert "HS256" == _parts(forged.token)[0]["alg"]


def test_a_verifier_that_lets_the_token_pick_hs256_accepts_the_forgery(issued: Issued) -> None:
    """PyJWT told to accept HS256 with the raw public key as the secret takes the forgery: the
    attack works wherever the algorithm is not pinned to EdDSA."""
    forged = forge("hs256_public_key-raw", issued.token, issued.jwks, issued.audience)
    [jwk] = issued.jwks["keys"]
    secret = public_key_as("raw", jwk)
    claims = jwt.decode(forged.token, secret, algorithms=["HS256"], audience=issued.audience)
    assert issued.claims == claims
