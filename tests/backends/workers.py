"""Code that runs in child processes of the backend tests.

A child gets a storage URL and the keyring's secrets (as hex) and rebuilds its own storage, keyring
and issuer: nothing is shared with the parent but the database itself. Two entry points:

- ``race_worker``: one member of a persistent pool. It takes messages from its own queue, waits on
  a shared barrier before each redemption so that all members act at once, and puts each outcome on
  a shared result queue.
- ``python -m tests.backends.workers FILE``: the crash child. It redeems the codes listed in the
  JSON file one after another and prints each code id, flushed, right after its redemption
  returned, until the parent kills it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from tests.helpers import START

from telecard_auth import (
    CodeIssuer,
    Commit,
    HmacKey,
    Keyring,
    ManualClock,
    Policy,
    Redemption,
    Storage,
    Subject,
    SubjectKind,
    SubjectSnapshot,
    TelecardAuthError,
    luhn_valid,
    storage_from_url,
)

__all__ = [
    "REDEEMED",
    "CountingStorage",
    "KeyringSpec",
    "close_storage",
    "keyring_from_spec",
    "keyring_spec",
    "luhn_complete",
    "outcome_of",
    "race_worker",
    "redeem_in_order",
    "subject_for",
]

#: What a worker reports for a redemption that succeeded.
REDEEMED = "redeemed"

#: How long a worker waits for the others at the barrier before it gives up (seconds).
BARRIER_TIMEOUT = 60.0

#: A keyring as plain data: ``{"keys": [[key_id, secret_hex], ...], "pseudonym_keys": [[key_id,
#: secret_hex], ...], "pseudonym_standby": bool}``.
KeyringSpec = dict[str, Any]


def keyring_spec(keyring: Keyring) -> KeyringSpec:
    """The keyring's secrets as hex, to hand to a child explicitly."""
    return {
        "keys": [[key.key_id, key.secret.hex()] for key in keyring.keys],
        "pseudonym_keys": [[key.key_id, key.secret.hex()] for key in keyring.pseudonym_keys],
        "pseudonym_standby": keyring.pseudonym_standby,
    }


def _keys(pairs: list[list[str]]) -> tuple[HmacKey, ...]:
    return tuple(HmacKey(key_id=key_id, secret=bytes.fromhex(secret)) for key_id, secret in pairs)


def keyring_from_spec(spec: KeyringSpec) -> Keyring:
    """The keyring that ``keyring_spec`` described."""
    return Keyring(
        keys=_keys(spec["keys"]),
        pseudonym_keys=_keys(spec["pseudonym_keys"]),
        pseudonym_standby=spec["pseudonym_standby"],
    )


def luhn_complete(first_nine: str) -> str:
    """``first_nine`` followed by the one check digit that makes it Luhn-valid."""
    (number,) = [first_nine + d for d in "0123456789" if luhn_valid(first_nine + d)]
    return number


def subject_for(number: int) -> Subject:
    """A different valid subject for every ``number`` below 10^8, cycling through the kinds."""
    serial = f"{number:08d}"
    kind = (SubjectKind.CITIZEN, SubjectKind.RESIDENT, SubjectKind.COMPANY, SubjectKind.GOVERNMENT)[
        number % 4
    ]
    if kind is SubjectKind.CITIZEN:
        return Subject.citizen(luhn_complete("1" + serial))
    if kind is SubjectKind.RESIDENT:
        return Subject.resident(luhn_complete("2" + serial))
    if kind is SubjectKind.COMPANY:
        return Subject.company("70" + serial)
    return Subject.government("71" + serial)


def close_storage(storage: Storage) -> None:
    """Close a storage's connections if it has any to close."""
    close = getattr(storage, "close", None)
    if close is not None:
        close()


class CountingStorage:
    """A storage that passes every call through and counts commits that lost the race."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.lost = 0

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """The inner storage's snapshot."""
        return self.inner.load(subject_ref)

    def commit(self, change: Commit) -> bool:
        """The inner storage's compare-and-set, counting a ``False``."""
        landed = self.inner.commit(change)
        self.lost += not landed
        return landed

    def purge(self, now: datetime, limit: int) -> int:
        """The inner storage's purge."""
        return self.inner.purge(now, limit)

    def take_lost(self) -> int:
        """Commits lost since the last call."""
        lost, self.lost = self.lost, 0
        return lost


def outcome_of(issuer: CodeIssuer, subject: Subject, provider: str, code: str, service: str) -> str:
    """Redeem once: ``REDEEMED``, the refusal's machine code, or a description of anything else."""
    try:
        result = issuer.redeem(subject, provider, code, service)
    except TelecardAuthError as error:
        return error.code
    except Exception as error:  # reported to the parent, which fails the test
        return f"unexpected {type(error).__name__}: {error}"
    return REDEEMED if isinstance(result, Redemption) else f"unexpected result {result!r}"


def race_worker(inbox: Queue[Any], outbox: Queue[Any], barrier: Barrier) -> None:
    """Serve one pool member until told to stop; every message gets exactly one reply.

    Messages: ``("open", url, keyring_spec, settings)`` builds this process's storage and issuer
    once (replacing any earlier one), with ``Policy(**settings)``; ``("redeem", round, kind,
    identifier, provider, code, service)`` waits for every member at the barrier, then redeems
    once; ``("close",)`` closes the storage; ``None`` ends the process. Replies are ``(tag, pid,
    payload)``.
    """
    pid = os.getpid()
    storage: CountingStorage | None = None
    issuer: CodeIssuer | None = None
    while True:
        message = inbox.get()
        if message is None:
            break
        try:
            if message[0] == "open":
                _, url, spec, settings = message
                if storage is not None:
                    close_storage(storage.inner)
                storage = CountingStorage(storage_from_url(url))
                issuer = CodeIssuer(
                    storage,
                    keyring=keyring_from_spec(spec),
                    policy=Policy(**settings),
                    clock=ManualClock(START),
                )
                outbox.put(("ready", pid, repr(storage.inner)))
            elif message[0] == "redeem":
                _, round_number, kind, identifier, provider, code, service = message
                if issuer is None or storage is None:
                    raise RuntimeError("redeem before open")
                subject = Subject(kind=kind, identifier=identifier)
                barrier.wait(BARRIER_TIMEOUT)
                outcome = outcome_of(issuer, subject, provider, code, service)
                outbox.put((round_number, pid, (outcome, storage.take_lost())))
            elif message[0] == "close":
                if storage is not None:
                    close_storage(storage.inner)
                storage = issuer = None
                outbox.put(("closed", pid, None))
            else:
                raise RuntimeError(f"unknown message {message[0]!r}")
        except (Exception, threading.BrokenBarrierError) as error:
            outbox.put(("error", pid, f"{type(error).__name__}: {error}"))
    if storage is not None:
        close_storage(storage.inner)


def redeem_in_order(job: dict[str, Any]) -> None:
    """The crash child's loop: redeem each listed code, then print its id and flush.

    ``job`` holds ``url``, ``keyring`` (a ``KeyringSpec``) and ``items``: lists of ``[kind,
    identifier, provider, code, code_id]``. A line is written only after ``redeem`` returned, so
    every line the parent reads is an acknowledged redemption.
    """
    storage = storage_from_url(job["url"])
    issuer = CodeIssuer(
        storage, keyring=keyring_from_spec(job["keyring"]), clock=ManualClock(START)
    )
    print("ready", flush=True)
    for kind, identifier, provider, code, code_id in job["items"]:
        issuer.redeem(Subject(kind=kind, identifier=identifier), provider, code, "new_line")
        print(code_id, flush=True)
    print("done", flush=True)
    close_storage(storage)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        redeem_in_order(json.load(file))
