"""The ``receipt`` command: ``receipt verify`` checks a redemption receipt as an operator would."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from telecard_auth._core.errors import KeyringError
from telecard_auth._core.receipt import Receipt, VerifyKey, verify_receipt
from telecard_auth.cli._errors import InvalidArgument
from telecard_auth.cli._output import (
    CODE_ID,
    CUSTOMER_REF,
    PROVIDER,
    REDEEMED_AT,
    SERVICE,
    SIGNING_KEY,
    Line,
    Outcome,
    Text,
    iso,
    when,
)
from telecard_auth.cli._settings import STDIN, Settings

__all__ = ["VERIFY_FIELDS", "verify"]

#: The fields of the answer (its --json object), in order: what --print may name.
VERIFY_FIELDS = (
    "verified",
    "code_id",
    "provider",
    "service",
    "issued_at",
    "redeemed_at",
    "customer_ref",
    "bindings",
    "reference",
    "issuer",
    "key_id",
)


def _jwks(name: str) -> object:
    try:
        return json.loads(Path(name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "it cannot be read as text"
        raise InvalidArgument(option="--jwks", reason=reason) from None
    except (ValueError, RecursionError):
        raise InvalidArgument(option="--jwks", reason="it is not JSON") from None


def verify(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``receipt verify``: the receipt's signature and audience checked, and its fields."""
    token = sys.stdin.read() if args.receipt == STDIN else args.receipt
    if args.jwks is not None:
        try:
            keys: object = VerifyKey.from_jwks(_jwks(args.jwks))
        except KeyringError as error:
            reason = str(error.details.get("reason", "not a JWK Set"))
            raise InvalidArgument(option="--jwks", reason=reason) from None
    else:
        keys = settings.keys().signer
    receipt: Receipt = verify_receipt(
        token.strip(),
        keys,  # type: ignore[arg-type]
        audience=args.provider,
        service=args.service,
    )
    lines: list[Line] = [
        Text(
            "Authentic: the issuer signed this receipt for this provider, unchanged since.",
            "الإيصال موثوق: وقّعه المُصدِر لهذا المزود ولم يُعدَّل بعد توقيعه.",
        ),
        (CODE_ID, receipt.code_id),
        (PROVIDER, receipt.provider_id),
        (SERVICE, receipt.service_id),
        (REDEEMED_AT, when(receipt.redeemed_at)),
        (CUSTOMER_REF, receipt.customer_ref),
        (SIGNING_KEY, receipt.key_id),
    ]
    data = {
        "verified": True,
        "code_id": receipt.code_id,
        "provider": receipt.provider_id,
        "service": receipt.service_id,
        "issued_at": iso(receipt.issued_at),
        "redeemed_at": iso(receipt.redeemed_at),
        "customer_ref": receipt.customer_ref,
        "bindings": list(receipt.bindings),
        "reference": receipt.reference,
        "issuer": receipt.issuer,
        "key_id": receipt.key_id,
    }
    return Outcome(data=data, lines=lines)
