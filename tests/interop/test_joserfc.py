"""joserfc, as an operator on Python would use it, against our receipts: it verifies them with the
public JWK Set alone, refuses every forgery, and signs tokens that ``verify_receipt`` reads back.

joserfc warns that "EdDSA" is deprecated by RFC 9864, which names the fully specified "Ed25519"
instead; receipts say "EdDSA", the name every JOSE library knows, so the warning is let through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    InvalidClaimError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet, OKPKey
from tests.interop.conftest import HEADER, Issued
from tests.interop.forgeries import ATTACKS, Forgery

from telecard_auth import verify_receipt

pytestmark = [
    pytest.mark.interop,
    pytest.mark.filterwarnings("ignore:EdDSA is deprecated:joserfc.errors.SecurityWarning"),
]

#: The error joserfc raises for each attack.
REFUSALS: dict[str, type[JoseError]] = {
    "tampered": BadSignatureError,
    "wrong_audience": InvalidClaimError,
    "alg_none": UnsupportedAlgorithmError,
    "hs256_public_key": UnsupportedAlgorithmError,
}


def verify(jwks: Mapping[str, Any], token: str, audience: str) -> tuple[dict[str, Any], Any]:
    """An operator's check: keys from the set by kid, EdDSA only, its own id as the audience."""
    parsed: Any = jwks  # as json.load gives it
    decoded = jwt.decode(token, KeySet.import_key_set(parsed), algorithms=["EdDSA"])
    jwt.JWTClaimsRegistry(aud={"essential": True, "value": audience}).validate(decoded.claims)
    return dict(decoded.header), decoded.claims


def sign(private_jwk: Mapping[str, Any], header: Mapping[str, Any], claims: Any) -> str:
    """A token joserfc signs with the private JWK, under ``header``."""
    key = OKPKey.import_key(dict(private_jwk))
    return jwt.encode(dict(header), claims, key, algorithms=[header["alg"]])


def test_the_refusals_cover_every_attack() -> None:
    """The table names an error for each attack, and no other."""
    assert sorted(ATTACKS) == sorted(REFUSALS)


def test_verifies_a_receipt_with_the_public_key_set_alone(issued: Issued) -> None:
    """joserfc accepts the token and reads the header and claims the receipt must carry."""
    header, claims = verify(issued.jwks, issued.token, issued.audience)
    assert HEADER == header
    assert issued.claims == claims


def test_refuses_a_forgery(forgery: Forgery) -> None:
    """joserfc refuses the forged token with the error for its attack."""
    with pytest.raises(JoseError) as refused:
        verify(forgery.jwks, forgery.token, forgery.audience)
    assert REFUSALS[forgery.attack] is type(refused.value)


def test_signs_a_token_that_verify_receipt_reads_back(issued: Issued) -> None:
    """A token joserfc signs with our signing key's JWK and our claims verifies as our receipt."""
    token = sign(issued.signing_jwk, HEADER, issued.claims)
    read = verify_receipt(token, issued.jwks, audience=issued.audience)
    assert attrs.evolve(issued.receipt, token=token) == read
