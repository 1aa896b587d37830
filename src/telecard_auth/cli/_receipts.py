"""The ``receipt`` command: ``receipt verify`` checks a redemption receipt as an operator would."""

from __future__ import annotations

import argparse
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
    "redeemed_at",
    "customer_ref",
    "key_id",
    "version",
)


def _public_keys(args: argparse.Namespace) -> list[VerifyKey]:
    lines = [("--public-key", line) for line in args.public_key]
    for name in args.public_key_file:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "it cannot be read as text"
            raise InvalidArgument(option="--public-key-file", reason=reason) from None
        lines += [
            ("--public-key-file", line)
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    keys: list[VerifyKey] = []
    for option, line in lines:
        try:
            keys.append(VerifyKey.from_text(line))
        except KeyringError as error:
            reason = str(error.details.get("reason", "not a public key line"))
            raise InvalidArgument(option=option, reason=reason) from None
    return keys


def verify(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``receipt verify``: the receipt's signature checked, and its fields."""
    text = sys.stdin.read() if args.receipt == STDIN else args.receipt
    if args.public_key or args.public_key_file:
        keys = _public_keys(args)
    else:
        keys = list(settings.keys().signer.verify_keys())
    receipt: Receipt = verify_receipt(text.strip(), keys)
    lines: list[Line] = [
        Text(
            "Authentic: the receipt was signed by the issuer and not changed since.",
            "الإيصال موثوق: وقّعه المُصدِر ولم يُعدَّل بعد توقيعه.",
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
        "redeemed_at": iso(receipt.redeemed_at),
        "customer_ref": receipt.customer_ref,
        "key_id": receipt.key_id,
        "version": receipt.version,
    }
    return Outcome(data=data, lines=lines)
