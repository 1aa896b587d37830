"""Issue a code and redeem it, end to end, on SQLite, with a receipt the operator can verify.

Two sides meet here. The issuing platform holds the keys: a ``Keyring`` that turns codes and
identity numbers into keyed hashes, and a ``ReceiptSigner`` that signs every redemption. The
operator holds one line of text, the signer's public key, and with it alone checks any receipt.
Run it::

    python examples/quickstart.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from telecard_auth import (
    CodeIssuer,
    Keyring,
    ReceiptSigner,
    Storage,
    Subject,
    VerifyKey,
    storage_from_url,
    verify_receipt,
)


def main() -> int:
    """Run the walk; the exit status is 0 when the receipt verified with the public key."""
    with (
        tempfile.TemporaryDirectory() as folder,
        storage_from_url(f"sqlite:///{Path(folder) / 'codes.db'}") as storage,
    ):
        storage.migrate()  # creates the schema; safe to call on every start
        return walk(storage)


def walk(storage: Storage) -> int:
    """Issue, redeem and verify over ``storage``."""
    # In production both come from a secret store, never from the database's side.
    keyring = Keyring.generate()
    signer = ReceiptSigner.generate("r1")
    issuer = CodeIssuer(storage, keyring=keyring, signer=signer)

    # The platform: the national SSO has authenticated this citizen, who asks for a code for STC.
    customer = Subject.citizen("1000000008")
    issued = issuer.issue(customer, "stc")
    expiry = issued.expires_at
    print(
        f"issued code {issued.display} for {issued.provider.name_en}, good until {expiry:%H:%M} UTC"
    )

    # STC's agent types the code the customer hands over, for one service.
    redemption = issuer.redeem(customer, "stc", issued.code, "new_line")
    assert redemption.receipt is not None  # the issuer has a signer, so every redemption has one
    receipt_text = redemption.receipt.to_text()
    print(f"redeemed for {redemption.service.name_en}; receipt {receipt_text[:24]}…")

    # The operator: nothing but the published public key line and the receipt's text.
    public_line = signer.current.public_key.to_text()
    checked = verify_receipt(receipt_text, VerifyKey.from_text(public_line))
    print(
        f"receipt verified with key {checked.key_id}: {checked.service_id} at {checked.provider_id}"
    )
    return 0 if checked.code_id == issued.code_id else 1


if __name__ == "__main__":
    sys.exit(main())
