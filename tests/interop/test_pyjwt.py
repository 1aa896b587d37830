"""PyJWT, as an operator on Python would use it, against our receipts: it verifies them with the
public JWK Set alone, refuses every forgery, and signs tokens that ``verify_receipt`` reads back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import jwt
import pytest
from tests.interop.conftest import HEADER, Issued
from tests.interop.forgeries import ATTACKS, Forgery

from telecard_auth import verify_receipt

pytestmark = pytest.mark.interop

#: The error PyJWT raises for each attack.
REFUSALS: dict[str, type[jwt.InvalidTokenError]] = {
    "tampered": jwt.InvalidSignatureError,
    "wrong_audience": jwt.InvalidAudienceError,
    "alg_none": jwt.InvalidAlgorithmError,
    "hs256_public_key": jwt.InvalidAlgorithmError,
}


def verify(jwks: Mapping[str, Any], token: str, audience: str) -> tuple[dict[str, Any], Any]:
    """An operator's check: the key the header's kid names in the set, EdDSA only, its own id."""
    key = jwt.PyJWKSet.from_dict(dict(jwks))[jwt.get_unverified_header(token)["kid"]]
    decoded = jwt.decode_complete(token, key, algorithms=["EdDSA"], audience=audience)
    return decoded["header"], decoded["payload"]


def sign(private_jwk: Mapping[str, Any], header: Mapping[str, Any], claims: Any) -> str:
    """A token PyJWT signs with the private JWK, under ``header``."""
    extra = {name: value for name, value in header.items() if name != "alg"}
    return jwt.encode(claims, jwt.PyJWK(dict(private_jwk)), algorithm=header["alg"], headers=extra)


def test_the_refusals_cover_every_attack() -> None:
    """The table names an error for each attack, and no other."""
    assert sorted(ATTACKS) == sorted(REFUSALS)


def test_verifies_a_receipt_with_the_public_key_set_alone(issued: Issued) -> None:
    """PyJWT accepts the token and reads the header and claims the receipt must carry."""
    header, claims = verify(issued.jwks, issued.token, issued.audience)
    assert HEADER == header
    assert issued.claims == claims


def test_refuses_a_forgery(forgery: Forgery) -> None:
    """PyJWT refuses the forged token with the error for its attack."""
    with pytest.raises(jwt.InvalidTokenError) as refused:
        verify(forgery.jwks, forgery.token, forgery.audience)
    assert REFUSALS[forgery.attack] is type(refused.value)


def test_signs_a_token_that_verify_receipt_reads_back(issued: Issued) -> None:
    """A token PyJWT signs with our signing key's JWK and our claims verifies as our receipt."""
    token = sign(issued.signing_jwk, HEADER, issued.claims)
    read = verify_receipt(token, issued.jwks, audience=issued.audience)
    assert attrs.evolve(issued.receipt, token=token) == read
