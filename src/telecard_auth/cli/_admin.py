"""The commands that look after the files and the storage: ``init``, ``migrate`` and ``purge``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from telecard_auth._core.keyring import Keyring
from telecard_auth._issuer import CodeIssuer
from telecard_auth.cli._errors import KeyFileExists
from telecard_auth.cli._output import Line, Outcome, Text
from telecard_auth.cli._settings import PROG, Settings
from telecard_auth.keys import KeySet, refuse_unsafe_place, save_keys

__all__ = ["INIT_FIELDS", "MIGRATE_FIELDS", "PURGE_FIELDS", "init", "migrate", "purge"]

#: The fields of each command's answer (its --json object), in order: what --print may name.
INIT_FIELDS = (
    "key_file",
    "storage",
    "hmac_key_id",
    "signing_key_id",
    "jwks",
    "replaced",
)
MIGRATE_FIELDS = ("storage",)
PURGE_FIELDS = ("deleted", "batches")

_STORAGE = Text("storage", "التخزين")
_KEY_FILE = Text("key file", "ملف المفاتيح")


def init(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``init``: the storage made ready, then a new key file."""
    path = settings.keys_path
    replaced = path.exists() or path.is_symlink()
    if replaced and not args.force:
        raise KeyFileExists(path=str(path))
    refuse_unsafe_place(path)  # nothing is made for a key file that could not be written
    # The storage first: if it cannot be made, no key file is left behind to refuse a retry.
    with settings.storage(create=True):
        pass
    keys = KeySet.generate(datetime.now(UTC))
    save_keys(path, keys)
    lines: list[Line] = [
        (_KEY_FILE, Text(f"{path} (yours alone: mode 0600)", f"{path} (لك وحدك: الصلاحيات 0600)")),
        (
            _STORAGE,
            Text(f"{settings.storage_label()} (ready)", f"{settings.storage_label()} (جاهز)"),
        ),
        (
            Text("for operators", "للمشغلين"),
            Text(
                f"the public JWK Set: {PROG} keys public --jwks > jwks.json",
                f"مجموعة المفاتيح العامة: {PROG} keys public --jwks > jwks.json",
            ),
        ),
    ]
    if replaced:
        lines.append(
            Text(
                "The old key file was replaced: codes issued with it can no longer be redeemed.",
                "استُبدل ملف المفاتيح القديم: لم يعد ممكنًا استخدام الرموز الصادرة به.",
            )
        )
    lines.append(
        Text(
            f"Next: {PROG} issue --kind citizen --id 1000000008 --provider stc",
            f"التالي: {PROG} issue --kind citizen --id 1000000008 --provider stc",
        )
    )
    data = {
        "key_file": str(path),
        "storage": settings.storage_label(),
        "hmac_key_id": keys.keyring.current.key_id,
        "signing_key_id": keys.signer.current.key_id,
        "jwks": keys.public_jwks(),
        "replaced": replaced,
    }
    return Outcome(data=data, lines=lines)


def migrate(_args: argparse.Namespace, settings: Settings) -> Outcome:
    """``migrate``: the storage's schema created or brought up to date."""
    with settings.storage(create=True):
        pass
    label = settings.storage_label()
    return Outcome(
        data={"storage": label},
        lines=[(_STORAGE, Text(f"{label} (ready)", f"{label} (جاهز)"))],
    )


def purge(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``purge``: the records that no longer matter deleted, in batches."""
    with settings.storage() as storage:
        # Purging reads only the records' own deadlines: any keyring will do, so no key file is
        # needed (a cleanup job can run where the keys are not).
        issuer = CodeIssuer(storage, keyring=Keyring.generate())
        deleted = batches = 0
        while True:
            batch = issuer.purge(args.batch_size)
            deleted += batch
            batches += 1
            if args.once or batch < args.batch_size:
                break
    return Outcome(
        data={"deleted": deleted, "batches": batches},
        lines=[
            Text(
                f"Deleted the records of {deleted} customer(s) whose codes no longer matter"
                f" ({batches} batch(es)).",
                f"حُذفت سجلات {deleted} من العملاء لم تعد رموزهم مهمة ({batches} دفعة).",
            )
        ],
    )
