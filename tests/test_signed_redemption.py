"""What an integrator gets without writing it: a receipt typed as present, code ids that parse.

The ``assert_type`` lines are checked by mypy in the gate, and run here as well.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import assert_type

import pytest

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    CodeIssuer,
    Keyring,
    ManualClock,
    MemoryStorage,
    ReceiptSigner,
    Redemption,
    SignedRedemption,
    Subject,
    verify_receipt,
)
from telecard_auth._issuer import shell

START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
CUSTOMER = Subject.citizen("1000000008")


def test_a_signing_issuer_returns_a_signed_redemption() -> None:
    """With a signer, redeem is typed and built as a SignedRedemption, its receipt present."""
    signer = ReceiptSigner.generate()
    issuer = CodeIssuer(
        MemoryStorage(), keyring=Keyring.generate(), clock=ManualClock(START), signer=signer
    )
    issued = issuer.issue(CUSTOMER, "stc", msisdn="0501234567")
    redemption = issuer.redeem(CUSTOMER, "stc", issued.code, "new_line", msisdn="0501234567")
    assert_type(redemption, SignedRedemption)
    assert SignedRedemption is type(redemption)
    receipt = verify_receipt(redemption.receipt.token, signer.public_jwks(), audience="stc")
    assert (issued.code_id, ("msisdn",), START) == (
        receipt.code_id,
        receipt.bindings,
        receipt.issued_at,
    )


def test_an_issuer_without_a_signer_returns_a_plain_redemption() -> None:
    """Without a signer, redeem is typed and built as a Redemption with no receipt."""
    issuer = CodeIssuer(MemoryStorage(), keyring=Keyring.generate(), clock=ManualClock(START))
    issued = issuer.issue(CUSTOMER, "stc")
    redemption = issuer.redeem(CUSTOMER, "stc", issued.code, "new_line")
    assert_type(redemption, Redemption)
    assert (Redemption, None) == (type(redemption), redemption.receipt)


def test_the_async_issuer_is_typed_the_same_way() -> None:
    """AsyncCodeIssuer with a signer awaits to a SignedRedemption, whose reference is signed."""
    issuer = AsyncCodeIssuer(
        AsyncMemoryStorage(),
        keyring=Keyring.generate(),
        clock=ManualClock(START),
        signer=ReceiptSigner.generate(),
    )

    async def visit() -> SignedRedemption:
        issued = await issuer.issue(CUSTOMER, "mobily")
        return await issuer.redeem(CUSTOMER, "mobily", issued.code, "new_line", reference="b-7")

    redemption = asyncio.run(visit())
    assert_type(redemption, SignedRedemption)
    assert "b-7" == redemption.receipt.reference


def test_a_code_id_never_starts_with_a_hyphen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A draw that starts with '-' (one in 64) is drawn again: ids never look like options."""
    draws = iter(["-q3Vx0bLk9TzA2mN", "--3Vx0bLk9TzA2mN", "q3Vx0bLk9TzA2mNc"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _size: next(draws))
    assert "q3Vx0bLk9TzA2mNc" == shell.new_code_id()


def test_code_ids_issued_in_bulk_never_start_with_a_hyphen() -> None:
    """Among 2,000 real ids (about 31 would start with '-' unchecked), none does."""
    starts = {shell.new_code_id()[0] for _ in range(2000)}
    assert "-" not in starts
    assert 40 < len(starts)  # the other 63 characters still start ids
