"""Our own ``verify_receipt``, in the same matrix as the other stacks: it refuses every forgery
with this library's errors (``tests/test_receipt.py`` tests it at length)."""

from __future__ import annotations

import pytest
from tests.interop.forgeries import ATTACKS, Forgery

from telecard_auth import (
    MalformedReceipt,
    ReceiptMismatch,
    ReceiptNotVerified,
    TelecardAuthError,
    verify_receipt,
)

pytestmark = pytest.mark.interop

#: The error ``verify_receipt`` refuses each attack with.
REFUSALS: dict[str, type[TelecardAuthError]] = {
    "tampered": ReceiptNotVerified,
    "wrong_audience": ReceiptMismatch,
    "alg_none": MalformedReceipt,
    "hs256_public_key": MalformedReceipt,
}


def test_the_refusals_cover_every_attack() -> None:
    """The table names an error for each attack, and no other."""
    assert sorted(ATTACKS) == sorted(REFUSALS)


def test_refuses_a_forgery(forgery: Forgery) -> None:
    """``verify_receipt`` refuses the forged token with the error for its attack."""
    with pytest.raises(TelecardAuthError) as refused:
        verify_receipt(forgery.token, forgery.jwks, audience=forgery.audience)
    assert REFUSALS[forgery.attack] is type(refused.value)
