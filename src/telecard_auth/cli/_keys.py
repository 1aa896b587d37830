"""The ``keys`` commands: ``keys rotate``, ``keys move`` and ``keys public``.

Each reads the key file, and ``rotate`` and ``move`` write it back; no key is ever lost on the
way (``write_key_file`` replaces the file in one rename).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import attrs

from telecard_auth._issuer import CodeIssuer
from telecard_auth.cli._errors import InvalidArgument, NoRotation, UsageError
from telecard_auth.cli._keyfile import write_key_file
from telecard_auth.cli._output import PUBLIC_KEY, Line, Outcome, Text
from telecard_auth.cli._settings import PROG, Settings

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
ROTATE_FIELDS = ("hmac_key_id", "signing_key_id", "public_key", "hmac_key_ids", "signing_key_ids")
#: ``keys rotate --pseudonym`` takes another step, with another answer.
PSEUDONYM_STEP_FIELDS = ("pseudonym_key_ids", "standby")
MOVE_FIELDS = ("moved", "scanned", "retired")
PUBLIC_FIELDS = ("public_keys", "current")


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
    write_key_file(settings.keys_path, rotated)
    new_hmac = rotated.keyring.current.key_id if rotated.keyring != current.keyring else None
    new_signing = rotated.signer.current.key_id if rotated.signer != current.signer else None
    public = rotated.signer.current.public_key.to_text()
    lines: list[Line] = []
    if new_hmac is not None:
        lines.append((Text("new HMAC key", "مفتاح HMAC الجديد"), new_hmac))
    if new_signing is not None:
        lines.append((Text("new receipt signing key", "مفتاح توقيع الإيصالات الجديد"), new_signing))
        lines.append((PUBLIC_KEY, public))
        lines.append(
            Text(
                "Give the operators the new public receipt key; the old ones still verify old"
                " receipts.",
                "سلّم المشغلين مفتاح الإيصالات العام الجديد؛ وتبقى المفاتيح القديمة صالحة للتحقق"
                " من الإيصالات القديمة.",
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
        "public_key": public if new_signing is not None else None,
        "hmac_key_ids": [key.key_id for key in rotated.keyring.keys],
        "signing_key_ids": [key.key_id for key in rotated.signer.keys],
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
    stepped = current.with_pseudonym_step()
    write_key_file(settings.keys_path, stepped)
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
    write_key_file(
        settings.keys_path, attrs.evolve(keys, keyring=ring.without_pseudonym_key(older))
    )
    data = {"moved": moved, "scanned": scanned, "retired": older}
    line = Text(
        f"Moved {moved} customer(s) to the new pseudonym key ({scanned} looked at) and retired"
        f" {older}. Copy the key file to every node.",
        f"نُقل {moved} من العملاء إلى مفتاح الأسماء المستعارة الجديد (فُحص {scanned}) وأُلغي"
        f" المفتاح {older}. انسخ ملف المفاتيح إلى كل العُقد.",
    )
    return Outcome(data=data, lines=[line])


def public(_args: argparse.Namespace, settings: Settings) -> Outcome:
    """``keys public``: the public receipt key lines, oldest first, for the operators."""
    public = [key.to_text() for key in settings.keys().signer.verify_keys()]
    # Bare lines, oldest first, whatever the language: made to be saved to a file for operators.
    return Outcome(data={"public_keys": public, "current": public[-1]}, lines=list(public))
