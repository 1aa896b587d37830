"""Node's jose, as an operator on Node would use it, against our receipts: it verifies them with
the public JWK Set alone, refuses every forgery, and signs tokens that ``verify_receipt`` reads
back. The scripts are ``node/verify.mjs`` and ``node/sign.mjs``; jose is installed by the ``node``
fixture (``conftest.py``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from tests.interop.conftest import HEADER, Issued, Node
from tests.interop.forgeries import ATTACKS, Forgery

from telecard_auth import verify_receipt

pytestmark = pytest.mark.interop

#: The error code jose refuses each attack with.
REFUSALS = {
    "tampered": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
    "wrong_audience": "ERR_JWT_CLAIM_VALIDATION_FAILED",
    "alg_none": "ERR_JOSE_ALG_NOT_ALLOWED",
    "hs256_public_key": "ERR_JOSE_ALG_NOT_ALLOWED",
}


def verify(node: Node, jwks: Mapping[str, Any], token: str, audience: str) -> dict[str, Any]:
    """What ``verify.mjs`` answers: ``{"header", "claims"}``, or ``{"error": code}``."""
    ran = node.run("verify.mjs", {"jwks": jwks, "token": token, "audience": audience})
    assert ran.returncode in (0, 1), ran.stderr
    answer: dict[str, Any] = json.loads(ran.stdout)
    assert ran.returncode == ("error" in answer), answer
    return answer


def sign(node: Node, private_jwk: Mapping[str, Any], header: Mapping[str, Any], claims: Any) -> str:
    """A token jose signs with the private JWK, under ``header``."""
    ran = node.run("sign.mjs", {"jwk": private_jwk, "header": header, "claims": claims})
    assert 0 == ran.returncode, ran.stderr
    return ran.stdout


def test_the_refusals_cover_every_attack() -> None:
    """The table names an error for each attack, and no other."""
    assert sorted(ATTACKS) == sorted(REFUSALS)


def test_verifies_a_receipt_with_the_public_key_set_alone(node: Node, issued: Issued) -> None:
    """jose accepts the token and reads the header and claims the receipt must carry."""
    answer = verify(node, issued.jwks, issued.token, issued.audience)
    assert {"header": HEADER, "claims": issued.claims} == answer


def test_refuses_a_forgery(node: Node, forgery: Forgery) -> None:
    """jose refuses the forged token with the error for its attack."""
    answer = verify(node, forgery.jwks, forgery.token, forgery.audience)
    assert {"error": REFUSALS[forgery.attack]} == answer


def test_signs_a_token_that_verify_receipt_reads_back(node: Node, issued: Issued) -> None:
    """A token jose signs with our signing key's JWK and our claims verifies as our receipt."""
    token = sign(node, issued.signing_jwk, HEADER, issued.claims)
    read = verify_receipt(token, issued.jwks, audience=issued.audience)
    assert attrs.evolve(issued.receipt, token=token) == read
