"""Issue a code and redeem it, end to end, on SQLite, with a receipt the operator can verify.

Two sides meet here. The issuing platform holds the keys: a ``Keyring`` that turns codes and
identity numbers into keyed hashes, and a ``ReceiptSigner`` that signs every redemption. The
operator holds the signer's public JWK Set, a JSON document with nothing secret in it, and with it
alone checks any receipt: a JSON Web Token, which any JOSE library can verify as well. Run it::

    python examples/quickstart.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from telecard_auth import (
    CodeIssuer,
    Keyring,
    ReceiptSigner,
    Storage,
    Subject,
    storage_from_url,
    verify_receipt,
)


def main() -> int:
    """Run the walk; the exit status is 0 when the receipt verified with the public JWK Set."""
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
    token = redemption.receipt.token  # the issuer has a signer, so every redemption has one
    print(f"redeemed for {redemption.service.name_en}; receipt {token[:24]}…")

    # The operator, STC: nothing but the published JWK Set and the receipt's token.
    published = json.dumps(signer.public_jwks())
    checked = verify_receipt(token, json.loads(published), audience="stc")
    print(
        f"receipt verified with key {checked.key_id}: {checked.service_id} at {checked.provider_id}"
    )
    return 0 if checked.code_id == issued.code_id else 1


if __name__ == "__main__":
    sys.exit(main())
