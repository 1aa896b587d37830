"""Shared helpers for the telecard_auth test suite: fixed test values, small issuer and storage
helpers, and the junk values that every argument must refuse.

Import them as ``from tests.helpers import ...``; Hypothesis strategies are in ``tests.strategies``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import pytest

from telecard_auth import (
    Clock,
    CodeIssuer,
    CodeRecord,
    Keyring,
    MemoryStorage,
    Policy,
    SubjectSnapshot,
)

__all__ = [
    "FOUR_HOURS",
    "JUNK",
    "K1_SECRET",
    "K2_SECRET",
    "ONE_MICROSECOND",
    "PSEUDONYM_SECRET",
    "START",
    "dump",
    "junk_cases",
    "make_issuer",
    "other_code",
    "stored_record",
]

#: Where every test's clock starts: an arbitrary, fixed, timezone-aware UTC moment.
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

#: Fixed test secrets (32 bytes each, the minimum the keyring accepts): random-looking bytes made
#: from labels, since the keyring refuses text and patterns as keys.
K1_SECRET = hashlib.sha256(b"telecard-auth test key one").digest()
K2_SECRET = hashlib.sha256(b"telecard-auth test key two").digest()
PSEUDONYM_SECRET = hashlib.sha256(b"telecard-auth test pseudonyms").digest()

#: The default validity of a code.
FOUR_HOURS = timedelta(hours=4)
#: The smallest step of time: what separates "still valid" from "expired".
ONE_MICROSECOND = timedelta(microseconds=1)

#: Junk that no argument of issue, redeem, status or revoke accepts: nothing, a number, a bare
#: object, empty text and a lone surrogate. Each test file extends it with junk of its own.
JUNK: tuple[object, ...] = (None, 0, object(), "", "\ud800")


def unavailable(message: str) -> NoReturn:
    """Skip a test whose server or tool is missing, saying which; under ``CI=true``, fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def make_issuer(
    storage: MemoryStorage, keyring: Keyring, clock: Clock, **settings: Any
) -> CodeIssuer:
    """An issuer over the given parts with a policy built from ``settings``."""
    return CodeIssuer(storage, keyring=keyring, policy=Policy(**settings), clock=clock)


def dump(storage: MemoryStorage) -> tuple[SubjectSnapshot, ...]:
    """Everything the storage holds, for before/after comparisons."""
    return tuple(storage.snapshots())


def stored_record(storage: MemoryStorage, code_id: str) -> CodeRecord:
    """The stored record of ``code_id``, whichever subject holds it."""
    for snapshot in storage.snapshots():
        for record in snapshot.codes:
            if record.code_id == code_id:
                return record
    raise AssertionError(f"no stored code {code_id}")


def other_code(code: str) -> str:
    """A well-formed decimal code that differs from ``code`` in its last digit."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def junk_cases(
    arguments: Iterable[str], junk: Sequence[object], *, optional: Collection[str] = ()
) -> list[pytest.ParameterSet]:
    """``(argument, junk)`` params: each junk value in each argument, None only if not optional."""
    return [
        pytest.param(argument, value, id=f"{argument}-{index}-{type(value).__name__}")
        for argument in arguments
        for index, value in enumerate(junk)
        if not (value is None and argument in optional)
    ]
