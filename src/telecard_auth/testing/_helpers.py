"""The contract's constants, builders and race helpers, shared by every group of its tests.

Records, commits and subjects are built at ``START``, a moment with microseconds; ``_together``
starts actions on a thread pool at one barrier, so that they collide.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import attrs
import pytest

from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import TelecardAuthError
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import CodeState, Subject
from telecard_auth._core.normalize import luhn_valid
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._core.requests import identity_of
from telecard_auth._storage.protocol import CodeRecord, Commit, FailureLog, Storage, SubjectSnapshot
from telecard_auth.events import EventSink

I_co = TypeVar("I_co", covariant=True)

#: Where the contract's clock starts. It has microseconds, so a backend must keep them.
START = datetime(2026, 3, 1, 9, 0, 0, 250_001, tzinfo=UTC)

#: How many threads each race runs at once.
THREADS = 32

PROVIDER = "stc"
OTHER_PROVIDER = "mobily"
SERVICE = "new_line"
TRANSFER = "number_transfer"

#: The incarnation the storage-level tests create subjects with, unless they say otherwise.
INCARNATION = "inc-0001"

_MICROSECOND = timedelta(microseconds=1)
#: The states storage keeps; ``EXPIRED`` is derived from time, never stored.
_STORED_STATES = tuple(state for state in CodeState if state is not CodeState.EXPIRED)


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at ``START``; it moves only when a test moves it."""
    return ManualClock(START)


@pytest.fixture
def keyring() -> Keyring:
    """A keyring with one fresh random key and a fresh pseudonym secret."""
    return Keyring.generate()


# --- helpers ----------------------------------------------------------------------------------


def _ref(name: str) -> str:
    """A subject pseudonym shaped like the real ones (32 hex digits)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _national_id(first: str, number: int) -> str:
    """A valid 10-digit ID starting with ``first``, distinct for each ``number``."""
    body = f"{first}{number:08d}"
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def _citizen(number: int) -> Subject:
    return Subject.citizen(_national_id("1", number))


def _resident(number: int) -> Subject:
    return Subject.resident(_national_id("2", number))


def _filed(keyring: Keyring, subject: Subject) -> str:
    """The pseudonym ``subject`` is filed under by the keyring's filing pseudonym key."""
    return keyring.subject_ref(identity_of(subject))


def _record(code_id: str, **changes: Any) -> CodeRecord:
    """An active code record issued at ``START``, with ``changes`` applied."""
    record = CodeRecord(
        code_id=code_id,
        provider_id=PROVIDER,
        key_id="k1",
        digest=hashlib.sha256(code_id.encode()).digest(),
        issued_at=START,
        expires_at=START + timedelta(hours=4),
    )
    return attrs.evolve(record, **changes)


def _commit(
    ref: str,
    version: int,
    codes: Iterable[CodeRecord] = (),
    logs: Iterable[FailureLog] = (),
    *,
    keep_until: datetime | None = None,
    incarnation: str = INCARNATION,
) -> Commit:
    """A commit written at ``START`` and kept for two days unless ``keep_until`` says otherwise."""
    return Commit(
        subject_ref=ref,
        expected_version=version,
        incarnation=incarnation,
        codes=tuple(codes),
        failure_logs=tuple(logs),
        written_at=START,
        keep_until=START + timedelta(days=2) if keep_until is None else keep_until,
    )


def _stored(change: Commit) -> SubjectSnapshot:
    """The snapshot a load must return once ``change`` has landed."""
    return SubjectSnapshot(
        subject_ref=change.subject_ref,
        version=change.expected_version + 1,
        incarnation=change.incarnation,
        codes=change.codes,
        failure_logs=change.failure_logs,
        identity=change.identity,
        moved=change.moved,
    )


def _read(storage: Storage, ref: str) -> SubjectSnapshot:
    """What ``storage`` holds for ``ref``, without the optional ``keep_until`` read-back."""
    return attrs.evolve(storage.load(ref), keep_until=None)


def _canonical(snapshot: SubjectSnapshot) -> SubjectSnapshot:
    """``snapshot`` with codes and logs in a fixed order: storage need not keep their order.

    ``keep_until`` is left out: reading it back is optional (see the test of its own).
    """
    return attrs.evolve(
        snapshot,
        codes=tuple(sorted(snapshot.codes, key=lambda record: record.code_id)),
        failure_logs=tuple(sorted(snapshot.failure_logs, key=lambda log: log.provider_id)),
        keep_until=None,
    )


def _moments(snapshot: SubjectSnapshot) -> list[datetime]:
    """Every datetime in ``snapshot``."""
    found: list[datetime] = []
    for record in snapshot.codes:
        found += [record.issued_at, record.expires_at]
        if record.finished_at is not None:
            found.append(record.finished_at)
    for log in snapshot.failure_logs:
        found += log.failures
    return found


def _other_code(policy: Policy, code: str) -> str:
    """A well-formed code of the policy's format that differs from ``code`` in its last place."""
    alphabet = policy.code_format.alphabet
    return code[:-1] + alphabet[(alphabet.index(code[-1]) + 1) % len(alphabet)]


def _record_of(storage: Storage, ref: str, code_id: str) -> CodeRecord:
    """The stored record ``code_id`` of subject ``ref``."""
    for record in storage.load(ref).codes:
        if record.code_id == code_id:
            return record
    raise AssertionError(f"no stored code {code_id}")


def _kinds(outcomes: Iterable[object]) -> Counter[type]:
    """How many outcomes of each type."""
    return Counter(type(outcome) for outcome in outcomes)


def _together(pool: ThreadPoolExecutor, actions: list[Callable[[], object]]) -> list[object]:
    """Run the actions at once on the pool; each gives its result or the error it raised.

    The pool must have a worker per action. Errors other than ``TelecardAuthError`` (a
    ``StorageError`` too is one) propagate and fail the test.
    """
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], object]) -> object:
        barrier.wait(timeout=60)
        try:
            return action()
        except TelecardAuthError as error:
            return error

    futures = [pool.submit(run, action) for action in actions]
    return [future.result(timeout=120) for future in futures]


class LostCommits:
    """How many commits a race lost to a concurrent writer.

    The races assert that some were lost: proof that their threads or tasks really collided.
    """

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        """Count one more lost commit (from any thread)."""
        with self._lock:
            self.count += 1


class _Counting:
    """A storage wrapper that counts commits lost to a concurrent writer.

    After each load it lets other threads run, widening the window between a load and its commit
    that a broken compare-and-set would lose updates in.
    """

    def __init__(self, inner: Storage, lost: LostCommits) -> None:
        self.inner = inner
        self.lost = lost

    def load(self, subject_ref: str) -> SubjectSnapshot:
        snapshot = self.inner.load(subject_ref)
        time.sleep(0)
        return snapshot

    def commit(self, change: Commit) -> bool:
        landed = self.inner.commit(change)
        if not landed:
            self.lost.add()
        return landed

    def purge(self, now: datetime, limit: int) -> int:
        return self.inner.purge(now, limit)


class IssuerFactory(Protocol[I_co]):
    """The ``make_issuer`` fixture: an issuer over the storage under test, under ``policy``.

    Given ``lost``, the issuer's storage counts there the commits it loses to concurrent writers,
    and lets other threads (or tasks) run after each load. ``signer`` and ``events`` are passed
    to the issuer, and ``keyring`` instead of the ``keyring`` fixture.
    """

    def __call__(
        self,
        policy: Policy,
        lost: LostCommits | None = None,
        *,
        signer: ReceiptSigner | None = None,
        events: Sequence[EventSink] = (),
        keyring: Keyring | None = None,
    ) -> I_co: ...
