"""The ``keys`` commands: ``keys rotate``, ``keys move`` and ``keys public``.

Each reads the key file, and ``rotate`` and ``move`` write it back; no key is ever lost on the
way (``save_keys`` replaces the file in one rename).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import attrs

from telecard_auth._issuer import CodeIssuer
from telecard_auth.cli._errors import InvalidArgument, NoRotation, UsageError
from telecard_auth.cli._output import Line, Outcome, Text
from telecard_auth.cli._settings import PROG, Settings
from telecard_auth.keys import save_keys

__all__ = [
    "MOVE_FIELDS",
    "PSEUDONYM_STEP_FIELDS",
    "PUBLIC_FIELDS",
    "ROTATE_FIELDS",
    "move",
    "public",
    "rotate",
]

#: The fields of each command's answer (its --json object), in order: what --print may name.
ROTATE_FIELDS = ("hmac_key_id", "signing_key_id", "hmac_key_ids", "signing_key_ids", "jwks")
#: ``keys rotate --pseudonym`` takes another step, with another answer.
PSEUDONYM_STEP_FIELDS = ("pseudonym_key_ids", "standby")
MOVE_FIELDS = ("moved", "scanned", "retired")
PUBLIC_FIELDS = ("keys", "current")


def rotate(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``keys rotate``: a new current key of each kind asked for, or a pseudonym key step."""
    if args.pseudonym:
        if args.hmac or args.signing:
            raise UsageError(
                detail="--pseudonym is a step of its own: rotate --hmac or --signing apart",
                prog=f"{PROG} keys rotate",
            )
        return _pseudonym_step(settings)
    both = not args.hmac and not args.signing
    current = settings.keys()
    rotated = current.rotated(
        datetime.now(UTC), hmac=both or args.hmac, signing=both or args.signing
    )
    save_keys(settings.keys_path, rotated)
    new_hmac = rotated.keyring.current.key_id if rotated.keyring != current.keyring else None
    new_signing = rotated.signer.current.key_id if rotated.signer != current.signer else None
    lines: list[Line] = []
    if new_hmac is not None:
        lines.append((Text("new HMAC key", "مفتاح HMAC الجديد"), new_hmac))
    if new_signing is not None:
        lines.append((Text("new receipt signing key", "مفتاح توقيع الإيصالات الجديد"), new_signing))
        lines.append(
            Text(
                f"Publish the new public JWK Set to the operators ({PROG} keys public --jwks);"
                " the old keys in it still verify old receipts.",
                f"انشر مجموعة المفاتيح العامة الجديدة للمشغلين ({PROG} keys public --jwks)؛"
                " وتبقى المفاتيح القديمة فيها صالحة للتحقق من الإيصالات القديمة.",
            )
        )
    lines.append(
        Text(
            "No key was removed: codes issued before the rotation can still be redeemed.",
            "لم يُحذف أي مفتاح: الرموز الصادرة قبل التدوير ما زالت صالحة للاستخدام.",
        )
    )
    data = {
        "hmac_key_id": new_hmac,
        "signing_key_id": new_signing,
        "hmac_key_ids": [key.key_id for key in rotated.keyring.keys],
        "signing_key_ids": [key.key_id for key in rotated.signer.keys],
        "jwks": rotated.public_jwks() if new_signing is not None else None,
    }
    return Outcome(data=data, lines=lines)


def _pseudonym_step(settings: Settings) -> Outcome:
    current = settings.keys()
    ring = current.keyring
    if len(ring.pseudonym_keys) == 2 and not ring.pseudonym_standby:  # noqa: PLR2004
        raise InvalidArgument(
            option="--pseudonym",
            reason="the newer pseudonym key is current already; run 'keys move' next",
        )
    stepped = current.with_pseudonym_step(datetime.now(UTC))
    save_keys(settings.keys_path, stepped)
    new = stepped.keyring.newest_pseudonym_key_id
    if stepped.keyring.pseudonym_standby:
        line = Text(
            f"Added pseudonym key {new} in standby. Copy the key file to every node, then run"
            " 'keys rotate --pseudonym' again to make it current.",
            f"أُضيف مفتاح الأسماء المستعارة {new} احتياطيًا. انسخ ملف المفاتيح إلى كل العُقد، ثم"
            " نفّذ 'keys rotate --pseudonym' مرة أخرى لاعتماده.",
        )
    else:
        line = Text(
            f"Pseudonym key {new} is current: new customers are filed under it. Copy the key file"
            " to every node, then run 'keys move'.",
            f"أصبح مفتاح الأسماء المستعارة {new} معتمدًا: يُحفظ العملاء الجدد به. انسخ ملف"
            " المفاتيح إلى كل العُقد، ثم نفّذ 'keys move'.",
        )
    data = {
        "pseudonym_key_ids": [key.key_id for key in stepped.keyring.pseudonym_keys],
        "standby": stepped.keyring.pseudonym_standby,
    }
    return Outcome(data=data, lines=[line])


def move(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``keys move``: every customer filed under the new pseudonym key, then the old one retired."""
    keys = settings.keys()
    ring = keys.keyring
    if len(ring.pseudonym_keys) == 1:
        raise NoRotation()
    older = ring.pseudonym_keys[0].key_id
    moved = scanned = 0
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=ring, signer=keys.signer)
        while True:
            progress = issuer.move_subjects(args.batch_size)
            moved += progress.moved
            scanned += progress.scanned
            if progress.done:
                break
    save_keys(settings.keys_path, attrs.evolve(keys, keyring=ring.without_pseudonym_key(older)))
    data = {"moved": moved, "scanned": scanned, "retired": older}
    line = Text(
        f"Moved {moved} customer(s) to the new pseudonym key ({scanned} looked at) and retired"
        f" {older}. Copy the key file to every node.",
        f"نُقل {moved} من العملاء إلى مفتاح الأسماء المستعارة الجديد (فُحص {scanned}) وأُلغي"
        f" المفتاح {older}. انسخ ملف المفاتيح إلى كل العُقد.",
    )
    return Outcome(data=data, lines=[line])


def public(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``keys public``: the receipt keys' public halves, oldest first, for the operators."""
    jwks = settings.keys().public_jwks()
    current = jwks["keys"][-1]["kid"]
    if args.jwks:
        # The JWK Set itself, whatever the language: made to be saved or served to operators.
        return Outcome(data=jwks, lines=[json.dumps(jwks, indent=2)])
    lines: list[Line] = [
        (
            Text("receipt key", "مفتاح الإيصالات"),
            f"{jwk['kid']}{' (current)' if jwk['kid'] == current else ''}",
        )
        for jwk in jwks["keys"]
    ]
    lines.append(
        Text(
            f"For operators: {PROG} keys public --jwks > jwks.json",
            f"للمشغلين: {PROG} keys public --jwks > jwks.json",
        )
    )
    return Outcome(data={"keys": jwks["keys"], "current": current}, lines=lines)
