"""The storage contract suites, for anyone who writes or ships a storage backend.

``StorageContract`` is a pytest base class: subclass it in a test module, override the one fixture
``storage`` so that it returns a fresh, empty storage (``yield`` it to clean up afterwards), and
every test of the class runs against that backend: the three operations of the ``Storage``
protocol one by one, the issuer's rules through the storage, and races of 32 threads. Each thread
may call the same storage object, so the backend must be thread-safe::

    # test_my_storage.py
    import pytest
    from telecard_auth.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            storage = MyStorage("...")
            storage.migrate()
            yield storage
            storage.close()

``AsyncStorageContract`` runs the same tests on an ``AsyncStorage``, with ``AsyncCodeIssuer``.
Override its one fixture ``async_storage``; it stays a plain (synchronous) fixture, and awaits
through ``portal``, an event loop running in a background thread for the length of the test::

    # test_my_async_storage.py
    import pytest
    from telecard_auth.testing import AsyncStorageContract

    class TestMyAsyncStorage(AsyncStorageContract):
        @pytest.fixture
        def async_storage(self, portal):
            storage = MyAsyncStorage("...")
            portal.call(storage.migrate)
            yield storage
            portal.call(storage.close)

Every test of ``StorageContract`` then calls the storage and the issuer through blocking facades
(``BlockingStorage``, ``BlockingIssuer``) that run each call as a coroutine on the portal's loop:
when the 32 threads of a race call at once, 32 coroutines run at once on that one loop, so the
storage must stand concurrent use by many tasks (not by many threads). Tests of the asyncio side
itself follow: races of 32 tasks gathered on the loop, and the manual clock driving expiry.

Class attributes tune both suites: ``purges = False`` for a backend whose data only expires by
itself (its ``purge`` deletes nothing and returns 0), ``race_rounds`` for how often the redemption
race is repeated (and how many commits the loads race, at least 20). The fixtures ``clock``,
``keyring``, ``policy``, ``issuer`` and ``make_issuer`` can be overridden the same way; the tests
name the default catalogue's providers ``stc`` and ``mobily`` and its services ``new_line`` and
``number_transfer``, so an overridden policy must keep those.

The optional ``PurgeReporting`` capability (``purge_snapshots``) has tests of its own, and a test
that the issuer reports each code that expired unused as ``events.CodeExpiry`` when it purges;
for a storage without ``purge_snapshots`` the former skip and the latter checks that nothing is
reported.

The module-level fixtures ``clock``, ``keyring`` and ``portal`` serve other tests
(``pytest_plugins = ["telecard_auth.testing"]`` in a ``conftest.py``). For detailed assertion
messages, call ``pytest.register_assert_rewrite("telecard_auth.testing")`` in ``conftest.py``
before importing this module. The package itself never imports it: it needs pytest.
"""

# Test code: assert is the point, numbers are the boundaries under test, asserts read
# `expected == actual`.
# ruff: noqa: S101, PLR2004, SIM300

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, Protocol, TypeVar

import attrs
import pytest

from telecard_auth import events as audit
from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    CodeSuperseded,
    ConfigurationError,
    FailureBudgetExhausted,
    InvalidBinding,
    InvalidReference,
    InvalidRequestId,
    KeyringError,
    LiveCodeLimitReached,
    RequestConflict,
    TelecardAuthError,
    TransferNotBound,
    UnknownCode,
    UnknownSigningKey,
    WrongCode,
)
from telecard_auth._core.keyring import HmacKey, Keyring
from telecard_auth._core.model import (
    CodeState,
    CodeStatus,
    IssuedCode,
    Provider,
    Redemption,
    Service,
    Subject,
)
from telecard_auth._core.normalize import luhn_valid
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner, SigningKey
from telecard_auth._core.rules import identity_of, next_commit
from telecard_auth._issuer import AsyncCodeIssuer, CodeIssuer, MoveProgress
from telecard_auth._storage.protocol import (
    AsyncPurgeReporting,
    AsyncStorage,
    AsyncSubjectScanning,
    CodeRecord,
    Commit,
    FailureLog,
    PurgeReporting,
    Storage,
    SubjectScanning,
    SubjectSnapshot,
)
from telecard_auth.events import EventSink

__all__ = [
    "START",
    "AsyncStorageContract",
    "BlockingIssuer",
    "BlockingStorage",
    "IssuerFactory",
    "LostCommits",
    "Portal",
    "StorageContract",
    "blocking_storage",
    "clock",
    "keyring",
    "portal",
]

P = ParamSpec("P")
T = TypeVar("T")
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


# --- asyncio ----------------------------------------------------------------------------------


class Portal:
    """An asyncio event loop running in a background thread, for synchronous code to call into.

    ``call`` runs a coroutine function on the loop and blocks until it returns (or raises);
    calls made from many threads at once run as concurrent tasks of the one loop. ``close``
    cancels what is still running, shuts the loop down, and raises the errors the loop reported
    meanwhile (an exception no one retrieved, a failing callback), so that they fail the test.

    >>> async def double(n: int) -> int:
    ...     return 2 * n
    >>> with Portal() as portal:
    ...     portal.call(double, 21)
    42
    """

    def __init__(self, *, timeout: float = 120.0) -> None:
        #: How long ``call`` waits for a result before it cancels the call.
        self.timeout = timeout
        self._errors: list[str] = []
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._report)
        self._thread = threading.Thread(target=self._serve, name="contract-portal", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            asyncio.set_event_loop(None)

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        self._errors.append(f"{context.get('message')}: {error!r}")
        loop.default_exception_handler(context)

    def call(self, function: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``function(*args, **kwargs)`` on the loop and return its result or raise its error.

        Raises ``TimeoutError`` (and cancels the call) after ``timeout`` seconds.
        """
        if self._closed:
            raise RuntimeError("the portal is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("Portal.call on the portal's own loop would wait for itself")

        async def run() -> T:
            return await function(*args, **kwargs)

        coroutine = run()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop closed meanwhile
            coroutine.close()
            raise
        done, _ = wait([future], timeout=self.timeout)
        if not done:
            future.cancel()
            raise TimeoutError(f"{function!r} did not finish within {self.timeout} s")
        return future.result()

    async def _shut_down(self) -> None:
        # What asyncio.run does on the way out, except that leftover errors are kept, not logged.
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        self._errors += [
            f"a task left running failed: {outcome!r}"
            for outcome in outcomes
            if isinstance(outcome, Exception)
        ]
        await self._loop.shutdown_asyncgens()
        await self._loop.shutdown_default_executor()

    def close(self) -> None:
        """Cancel the tasks still running, stop and close the loop; raise what the loop reported."""
        if self._closed:
            return
        try:
            self.call(self._shut_down)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
        if self._errors:
            raise AssertionError("the event loop reported: " + "; ".join(self._errors))

    def __enter__(self) -> Portal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Portal(closed={self._closed})"


@pytest.fixture
def portal() -> Iterator[Portal]:
    """An event loop in a background thread for the length of the test; see ``Portal``."""
    with Portal() as running:
        yield running


class BlockingStorage:
    """A ``Storage`` over an ``AsyncStorage``: each call is awaited on the portal's loop.

    Calls from many threads at once run as as many concurrent tasks on that one loop.
    """

    def __init__(self, async_storage: AsyncStorage, portal: Portal) -> None:
        self.async_storage = async_storage
        self.portal = portal

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``Storage.load``."""
        return self.portal.call(self.async_storage.load, subject_ref)

    def commit(self, change: Commit) -> bool:
        """See ``Storage.commit``."""
        return self.portal.call(self.async_storage.commit, change)

    def purge(self, now: datetime, limit: int) -> int:
        """See ``Storage.purge``."""
        return self.portal.call(self.async_storage.purge, now, limit)

    def __repr__(self) -> str:
        return f"BlockingStorage({self.async_storage!r})"


class _BlockingPurgeReportingStorage(BlockingStorage):
    """A ``BlockingStorage`` over an ``AsyncPurgeReporting`` storage: it reports purges too."""

    async_storage: Any

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``PurgeReporting.purge_snapshots``."""
        result: list[SubjectSnapshot] = self.portal.call(
            self.async_storage.purge_snapshots, now, limit
        )
        return result


class _BlockingScanningStorage(BlockingStorage):
    """A ``BlockingStorage`` over an ``AsyncSubjectScanning`` storage: it lists subjects too."""

    async_storage: Any

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``SubjectScanning.scan_subjects``."""
        result: tuple[list[SubjectSnapshot], str | None] = self.portal.call(
            self.async_storage.scan_subjects, after, limit
        )
        return result


def blocking_storage(async_storage: AsyncStorage, portal: Portal) -> BlockingStorage:
    """A ``BlockingStorage`` over ``async_storage``, with the optional capabilities it has.

    The facade has ``purge_snapshots`` and ``scan_subjects`` exactly when the async storage has
    them, so that the tests (and the issuer) see the capabilities the async storage really has.
    """
    bases: list[type[BlockingStorage]] = []
    if isinstance(async_storage, AsyncPurgeReporting):
        bases.append(_BlockingPurgeReportingStorage)
    if isinstance(async_storage, AsyncSubjectScanning):
        bases.append(_BlockingScanningStorage)
    if not bases:
        return BlockingStorage(async_storage, portal)
    facade: type[BlockingStorage] = (
        bases[0] if len(bases) == 1 else type("_BlockingFullStorage", tuple(bases), {})
    )
    return facade(async_storage, portal)


class BlockingIssuer:
    """``CodeIssuer``'s verbs over an ``AsyncCodeIssuer``, each call awaited on the portal's loop.

    ``storage`` is a ``BlockingStorage`` over the async issuer's storage; ``keyring``, ``policy``
    and ``clock`` are the async issuer's own.
    """

    def __init__(self, async_issuer: AsyncCodeIssuer, portal: Portal) -> None:
        self.async_issuer = async_issuer
        self.portal = portal
        self.storage = blocking_storage(async_issuer.storage, portal)
        self.keyring = async_issuer.keyring
        self.policy = async_issuer.policy
        self.clock = async_issuer.clock
        self.signer = async_issuer.signer

    def issue(
        self,
        subject: Subject,
        provider: Provider | str,
        *,
        service: Service | str | None = None,
        msisdn: str | None = None,
        recipient: Subject | None = None,
    ) -> IssuedCode:
        """See ``CodeIssuer.issue``."""
        return self.portal.call(
            self.async_issuer.issue,
            subject,
            provider,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
        )

    def redeem(
        self,
        subject: Subject,
        provider: Provider | str,
        code: str,
        service: Service | str,
        *,
        msisdn: str | None = None,
        recipient: Subject | None = None,
        request_id: str | None = None,
        reference: str | None = None,
    ) -> Redemption:
        """See ``CodeIssuer.redeem``."""
        return self.portal.call(
            self.async_issuer.redeem,
            subject,
            provider,
            code,
            service,
            msisdn=msisdn,
            recipient=recipient,
            request_id=request_id,
            reference=reference,
        )

    def revoke(self, subject: Subject, code_id: str) -> CodeStatus:
        """See ``CodeIssuer.revoke``."""
        return self.portal.call(self.async_issuer.revoke, subject, code_id)

    def status(self, subject: Subject, code_id: str) -> CodeStatus:
        """See ``CodeIssuer.status``."""
        return self.portal.call(self.async_issuer.status, subject, code_id)

    def purge(self, limit: int = 1000) -> int:
        """See ``CodeIssuer.purge``."""
        return self.portal.call(self.async_issuer.purge, limit)

    def move_subjects(self, limit: int = 1000) -> MoveProgress:
        """See ``CodeIssuer.move_subjects``."""
        return self.portal.call(self.async_issuer.move_subjects, limit)

    def __repr__(self) -> str:
        return f"BlockingIssuer({self.async_issuer!r})"


class _AsyncCounting:
    """``_Counting`` for an ``AsyncStorage``: after each load it lets the other tasks run."""

    def __init__(self, inner: AsyncStorage, lost: LostCommits) -> None:
        self.inner = inner
        self.lost = lost

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        snapshot = await self.inner.load(subject_ref)
        await asyncio.sleep(0)
        return snapshot

    async def commit(self, change: Commit) -> bool:
        landed = await self.inner.commit(change)
        if not landed:
            self.lost.add()
        return landed

    async def purge(self, now: datetime, limit: int) -> int:
        return await self.inner.purge(now, limit)


async def _gathered(actions: list[Callable[[], Awaitable[object]]]) -> list[object]:
    """Run the actions as concurrent tasks; each gives its result or the error it raised.

    As in ``_together``, errors other than ``TelecardAuthError`` propagate and fail the test.
    """

    async def run(action: Callable[[], Awaitable[object]]) -> object:
        try:
            return await action()
        except TelecardAuthError as error:
            return error

    return list(await asyncio.gather(*(run(action) for action in actions)))


# --- the contract -----------------------------------------------------------------------------


class StorageContract:
    """Every test a ``Storage`` must pass. Subclass it and override the ``storage`` fixture.

    ::

        class TestRedisStorage(StorageContract):
            @pytest.fixture
            def storage(self):
                storage = RedisStorage("redis://127.0.0.1:6379/0", prefix="test")
                yield storage
                storage.close()
    """

    #: Whether ``purge`` deletes subjects itself. ``False`` for a backend whose data only expires
    #: by itself: its ``purge`` returns 0, and its ``purge_snapshots``, if it has one, returns
    #: nothing. Every backend of this package purges (Redis too, ahead of its keys' own expiry).
    purges: ClassVar[bool] = True
    #: How many times the redemption race is run; the other races run a tenth or twentieth of it.
    race_rounds: ClassVar[int] = 200

    # --- fixtures: override any of them ------------------------------------------------------

    @pytest.fixture
    def storage(self) -> Storage:
        """The storage under test, fresh and empty: every subclass overrides this fixture."""
        pytest.fail(
            f"{type(self).__name__} must override the 'storage' fixture of StorageContract",
            pytrace=False,
        )

    @pytest.fixture
    def clock(self) -> ManualClock:
        """A manual clock at ``START``; it moves only when a test moves it."""
        return ManualClock(START)

    @pytest.fixture
    def keyring(self) -> Keyring:
        """A keyring with one fresh random key and a fresh pseudonym secret."""
        return Keyring.generate()

    @pytest.fixture
    def policy(self) -> Policy:
        """The default policy; an override must keep the default providers and services."""
        return Policy()

    @pytest.fixture
    def issuer(
        self, storage: Storage, keyring: Keyring, policy: Policy, clock: ManualClock
    ) -> CodeIssuer:
        """An issuer over the storage under test."""
        return CodeIssuer(storage, keyring=keyring, policy=policy, clock=clock)

    @pytest.fixture
    def make_issuer(
        self, storage: Storage, keyring: Keyring, clock: ManualClock
    ) -> IssuerFactory[CodeIssuer]:
        """Builds issuers over the storage under test, for tests that need another policy."""
        ring = keyring

        def build(
            policy: Policy,
            lost: LostCommits | None = None,
            *,
            signer: ReceiptSigner | None = None,
            events: Sequence[EventSink] = (),
            keyring: Keyring | None = None,
        ) -> CodeIssuer:
            inner: Storage = storage if lost is None else _Counting(storage, lost)
            return CodeIssuer(
                inner,
                keyring=ring if keyring is None else keyring,
                policy=policy,
                clock=clock,
                signer=signer,
                events=events,
            )

        return build

    @pytest.fixture
    def subject(self) -> Subject:
        """A citizen with a valid national ID."""
        return _citizen(1)

    def vanish(self, storage: Storage, subject_ref: str, now: datetime) -> None:
        """Delete the subject ``subject_ref``, due at ``now``, as the backend deletes subjects.

        ``purge`` by default. A backend whose data also expires by itself overrides this to let
        the subject expire that way (the Redis suites of this package do), so that every test
        that deletes a subject holds for that path too.
        """
        if not self.purges:
            pytest.skip("the storage deletes nothing itself; override vanish() to expire data")
        while storage.purge(now, 1000):
            pass
        assert 0 == storage.load(subject_ref).version

    @pytest.fixture(scope="class")
    @classmethod
    def race_pool(cls) -> Iterator[ThreadPoolExecutor]:
        """One worker per racing thread, kept for the whole class."""
        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="contract") as pool:
            yield pool

    @pytest.fixture
    def interleaved(self) -> Iterator[None]:
        """Switch threads far more often than usual, so that pure-Python backends interleave."""
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        yield
        sys.setswitchinterval(previous)

    # --- load --------------------------------------------------------------------------------

    def test_load_of_unknown_subject_is_empty_at_version_zero(self, storage: Storage) -> None:
        """Loading a subject with nothing stored gives version 0, no codes and no logs."""
        assert SubjectSnapshot(subject_ref=_ref("nobody")) == _read(storage, _ref("nobody"))

    # --- commit ------------------------------------------------------------------------------

    def test_commit_at_version_zero_creates_the_subject(self, storage: Storage) -> None:
        """A commit at version 0 on an unknown subject lands and is loaded back at version 1."""
        change = _commit(_ref("a"), 0, [_record("c1")])
        assert storage.commit(change) is True
        assert _stored(change) == _read(storage, _ref("a"))

    def test_second_commit_at_version_zero_fails_and_keeps_the_first(
        self, storage: Storage
    ) -> None:
        """Two creations of one subject: the second returns False and the first state stays."""
        first = _commit(_ref("a"), 0, [_record("first")])
        second = _commit(_ref("a"), 0, [_record("second")])
        assert (True, False) == (storage.commit(first), storage.commit(second))
        assert _stored(first) == _read(storage, _ref("a"))

    def test_commit_at_current_version_replaces_the_whole_state(self, storage: Storage) -> None:
        """A commit at the stored version replaces every record and log and adds one to it."""
        ref = _ref("a")
        old_logs = [
            FailureLog(provider_id=PROVIDER, failures=(START,)),
            FailureLog(provider_id=OTHER_PROVIDER, failures=(START,)),
        ]
        kept, dropped = _record("kept"), _record("dropped")
        assert storage.commit(_commit(ref, 0, [kept, dropped], old_logs)) is True
        changed = attrs.evolve(kept, failed_attempts=2)
        new_log = FailureLog(provider_id=OTHER_PROVIDER, failures=(START, START + _MICROSECOND))
        change = _commit(ref, 1, [changed, _record("added")], [new_log])
        assert storage.commit(change) is True
        assert _canonical(_stored(change)) == _canonical(storage.load(ref))

    def test_commit_of_an_empty_state_keeps_counting_versions(self, storage: Storage) -> None:
        """Committing no records and no logs leaves an empty subject one version further on."""
        ref = _ref("a")
        assert storage.commit(_commit(ref, 0, [_record("c1")])) is True
        assert storage.commit(_commit(ref, 1)) is True
        assert SubjectSnapshot(subject_ref=ref, version=2, incarnation=INCARNATION) == _read(
            storage, ref
        )
        assert storage.commit(_commit(ref, 2, [_record("c2")])) is True
        assert 3 == storage.load(ref).version

    def test_versions_grow_by_one_per_commit(self, storage: Storage) -> None:
        """Each successful commit moves the version on by exactly one."""
        ref = _ref("a")
        versions = []
        for version in range(5):
            assert storage.commit(_commit(ref, version, [_record(f"c{version}")])) is True
            versions.append(storage.load(ref).version)
        assert [1, 2, 3, 4, 5] == versions

    def test_stale_or_future_version_fails_and_changes_nothing(self, storage: Storage) -> None:
        """A commit at any version but the stored one returns False and leaves the state alone."""
        ref = _ref("a")
        assert storage.commit(_commit(ref, 0, [_record("c1")])) is True
        current = _commit(ref, 1, [_record("c2")])
        assert storage.commit(current) is True
        intruder = [_record("intruder")]
        outcomes = [storage.commit(_commit(ref, version, intruder)) for version in (0, 1, 3, 7)]
        assert [False, False, False, False] == outcomes
        assert _stored(current) == _read(storage, ref)

    def test_subjects_are_independent(self, storage: Storage) -> None:
        """Commits on one subject neither see nor change another subject's state or version."""
        a, b = _ref("a"), _ref("b")
        first_a, first_b = _commit(a, 0, [_record("a1")]), _commit(b, 0, [_record("b1")])
        assert (True, True) == (storage.commit(first_a), storage.commit(first_b))
        second_a = _commit(a, 1, [_record("a2")])
        assert storage.commit(second_a) is True
        assert storage.commit(_commit(b, 2, [_record("b-stale")])) is False
        assert (_stored(second_a), _stored(first_b)) == (_read(storage, a), _read(storage, b))

    def test_commit_needs_the_stored_incarnation_too(self, storage: Storage) -> None:
        """A commit at the stored version but with another incarnation fails, changing nothing."""
        ref = _ref("a")
        first = _commit(ref, 0, [_record("c1")], incarnation="inc-a")
        assert storage.commit(first) is True
        assert "inc-a" == storage.load(ref).incarnation
        for other in ("inc-b", "", "inc-a "):
            assert storage.commit(_commit(ref, 1, [_record("x")], incarnation=other)) is False
        assert _stored(first) == _read(storage, ref)
        second = _commit(ref, 1, [_record("c2")], incarnation="inc-a")
        assert storage.commit(second) is True
        assert _stored(second) == _read(storage, ref)

    def test_a_stale_commit_never_lands_on_a_subject_created_anew(self, storage: Storage) -> None:
        """Deleted and created anew up to the same version, a subject refuses its old life's commit.

        The compare-and-set token never repeats: a request that loaded the subject before it was
        deleted (by purge, or by the backend's own expiry) cannot overwrite what came after.
        """
        ref = _ref("a")
        due = START + timedelta(days=3)
        for version in (0, 1):
            change = _commit(ref, version, [_record(f"old-{version}")], incarnation="old")
            assert storage.commit(attrs.evolve(change, keep_until=due)) is True
        stale = _commit(ref, 2, [_record("stale")], incarnation="old")
        self.vanish(storage, ref, due)
        for version in (0, 1):
            change = _commit(ref, version, [_record(f"new-{version}")], incarnation="new")
            assert storage.commit(change) is True
        assert (2, "new") == (storage.load(ref).version, storage.load(ref).incarnation)
        assert storage.commit(stale) is False
        assert _stored(change) == _read(storage, ref)

    def test_identity_and_moved_round_trip(self, storage: Storage) -> None:
        """The sealed identity and the moved mark come back as committed, and change with it."""
        ref = _ref("a")
        sealed = attrs.evolve(_commit(ref, 0, [_record("c1")]), identity="p1.c2VhbGVk-_x")
        assert storage.commit(sealed) is True
        assert ("p1.c2VhbGVk-_x", False) == (storage.load(ref).identity, storage.load(ref).moved)
        frozen = attrs.evolve(
            _commit(ref, 1, [_record("c1")]), identity=sealed.identity, moved=True
        )
        assert storage.commit(frozen) is True
        assert _stored(frozen) == _read(storage, ref)
        emptied = _commit(ref, 2)
        assert storage.commit(emptied) is True
        assert (None, False) == (storage.load(ref).identity, storage.load(ref).moved)

    def test_scan_subjects_lists_every_subject_once(self, storage: Storage) -> None:
        """Page after page, scan_subjects gives every stored subject once, as load gives it."""
        if not isinstance(storage, SubjectScanning):
            pytest.skip("the storage has no scan_subjects (the optional SubjectScanning)")
        refs = [_ref(f"scan{n}") for n in range(7)]
        for ref in refs:
            assert storage.commit(_commit(ref, 0, [_record(ref[:8])])) is True
        assert storage.commit(_commit(refs[0], 1, [_record("again")])) is True
        for limit in (1, 2, 3, 100):
            seen: list[SubjectSnapshot] = []
            cursor: str | None = None
            for _ in range(100):
                page, cursor = storage.scan_subjects(cursor, limit)
                seen += page
                if cursor is None:
                    break
            assert sorted(refs) == sorted(snapshot.subject_ref for snapshot in seen)
            assert [_canonical(storage.load(s.subject_ref)) for s in seen] == [
                _canonical(s) for s in seen
            ]

    def test_every_field_round_trips_exactly(self, storage: Storage) -> None:
        """Every field of every record and log comes back equal, datetimes aware UTC with µs."""
        ref = _ref("a")
        when = START + timedelta(minutes=7, microseconds=999_998)
        bare = _record(
            "bare-Zz_-9",
            provider_id=OTHER_PROVIDER,
            key_id="key.2026-03_b",
            digest=bytes(32),
            issued_at=when,
            expires_at=when + timedelta(hours=4, microseconds=1),
        )
        full = [
            _record(
                f"full-{state.value}",
                digest=bytes(range(255, 223, -1)),
                issued_at=START,
                expires_at=START + timedelta(hours=1, microseconds=123_457),
                service_id=TRANSFER,
                msisdn_ref=_ref("msisdn"),
                recipient_ref=_ref("recipient"),
                state=state,
                failed_attempts=index * 3,
                finished_at=when + timedelta(microseconds=index),
                redeemed_service_id=SERVICE if state is CodeState.REDEEMED else None,
                request_ref=_ref("request") if state is CodeState.REDEEMED else None,
                request_inputs=_ref("inputs") if state is CodeState.REDEEMED else None,
                receipt_key_id="r1.2026-03" if state is CodeState.REDEEMED else None,
                recovery=index % 2 == 1,
            )
            for index, state in enumerate(_STORED_STATES)
        ]
        logs = [
            FailureLog(provider_id=PROVIDER, failures=(START,)),
            FailureLog(
                provider_id=OTHER_PROVIDER,
                failures=tuple(when + timedelta(seconds=n, microseconds=n) for n in range(10)),
                recoveries=(when, when + timedelta(hours=2, microseconds=7)),
            ),
        ]
        change = attrs.evolve(
            _commit(ref, 0, [bare, *full], logs), identity="p1.sealed-identity_Zz-09"
        )
        assert storage.commit(change) is True
        loaded = storage.load(ref)
        assert _canonical(_stored(change)) == _canonical(loaded)
        offsets = {(moment.tzinfo is not None, moment.utcoffset()) for moment in _moments(loaded)}
        assert {(True, timedelta(0))} == offsets
        assert {bytes} == {type(record.digest) for record in loaded.codes}

    def test_failures_keep_their_order(self, storage: Storage) -> None:
        """A failure log's moments come back oldest first, as committed."""
        ref = _ref("a")
        failures = tuple(START + timedelta(microseconds=n) for n in (1, 2, 10, 100, 999_999))
        log = FailureLog(provider_id=PROVIDER, failures=failures)
        assert storage.commit(_commit(ref, 0, logs=[log])) is True
        assert failures == storage.load(ref).failure_log(PROVIDER).failures

    # --- purge -------------------------------------------------------------------------------

    def test_purge_deletes_subjects_kept_until_now_or_earlier(self, storage: Storage) -> None:
        """purge removes subjects with keep_until <= now, keeps later ones, returns the count."""
        now = START + timedelta(days=1)
        keep = {"past": now - timedelta(seconds=1), "now": now, "later": now + _MICROSECOND}
        for name, keep_until in keep.items():
            change = _commit(_ref(name), 0, [_record(name)], keep_until=keep_until)
            assert storage.commit(change) is True
        if self.purges:
            assert 2 == storage.purge(now, 100)
            versions = {name: storage.load(_ref(name)).version for name in keep}
            assert {"past": 0, "now": 0, "later": 1} == versions
            # A purged subject starts over: its old version is gone, version 0 creates it anew.
            assert storage.commit(_commit(_ref("now"), 1)) is False
            assert storage.commit(_commit(_ref("now"), 0)) is True
        else:
            assert 0 == storage.purge(now, 100)
        assert 1 == storage.load(_ref("later")).version

    def test_keep_until_reads_back_as_committed_or_not_at_all(self, storage: Storage) -> None:
        """load().keep_until is None or the last commit's, also when a commit leaves it as is."""
        ref = _ref("keeper")
        first = _commit(ref, 0, [_record("a")], keep_until=START + timedelta(hours=30))
        assert storage.commit(first) is True
        read = storage.load(ref).keep_until
        assert read in (None, first.keep_until)
        same = attrs.evolve(
            _commit(ref, 1, [_record("a"), _record("b")], keep_until=first.keep_until),
            stored_keep_until=read,
        )
        assert storage.commit(same) is True
        assert storage.load(ref).keep_until in (None, first.keep_until)
        moved = attrs.evolve(
            _commit(ref, 2, keep_until=START + timedelta(hours=40)), stored_keep_until=read
        )
        assert storage.commit(moved) is True
        assert storage.load(ref).keep_until in (None, moved.keep_until)
        if self.purges:
            # The moved keep_until is what purge obeys.
            assert 0 == storage.purge(START + timedelta(hours=39), 10)
            assert 1 == storage.purge(START + timedelta(hours=40), 10)

    def test_purge_honours_its_limit(self, storage: Storage) -> None:
        """purge deletes at most ``limit`` subjects per call and returns 0 when none are left."""
        now = START + timedelta(days=1)
        names = [f"old{n}" for n in range(5)]
        for name in [*names, "young"]:
            keep_until = now + timedelta(hours=1) if name == "young" else now
            change = _commit(_ref(name), 0, [_record(name)], keep_until=keep_until)
            assert storage.commit(change) is True
        if self.purges:
            assert [2, 2, 1, 0] == [storage.purge(now, 2) for _ in range(4)]
            assert [0] * 5 == [storage.load(_ref(name)).version for name in names]
        else:
            assert 0 == storage.purge(now, 2)
        assert 1 == storage.load(_ref("young")).version

    # --- purge_snapshots (the optional PurgeReporting) ----------------------------------------

    @staticmethod
    def _reporting(storage: Storage) -> PurgeReporting:
        """``storage`` as a ``PurgeReporting``; a storage without ``purge_snapshots`` skips."""
        if not isinstance(storage, PurgeReporting):
            pytest.skip("the storage has no purge_snapshots (the optional PurgeReporting)")
        return storage

    def test_purge_snapshots_return_each_deleted_subject_as_it_was(self, storage: Storage) -> None:
        """purge_snapshots deletes what purge would and returns those subjects as loaded before."""
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)
        keep = {"past": now - timedelta(seconds=1), "now": now, "later": now + _MICROSECOND}
        for name, keep_until in keep.items():
            ref = _ref(name)
            assert storage.commit(_commit(ref, 0, [_record(f"{name}-1")])) is True
            # The second commit moves keep_until earlier: the last commit's is what counts.
            records = [
                _record(f"{name}-1", failed_attempts=1),
                _record(f"{name}-2", state=CodeState.REDEEMED, finished_at=START),
            ]
            log = FailureLog(provider_id=PROVIDER, failures=(START, START + _MICROSECOND))
            change = _commit(ref, 1, records, [log], keep_until=keep_until)
            assert storage.commit(change) is True
        before = {name: storage.load(_ref(name)) for name in keep}
        if self.purges:
            returned = reporting.purge_snapshots(now, 100)
            deleted = {snapshot.subject_ref: snapshot for snapshot in returned}
            assert {_ref("past"), _ref("now")} == set(deleted)
            for name in ("past", "now"):
                snapshot = deleted[_ref(name)]
                assert _canonical(before[name]) == _canonical(snapshot)
                assert (2, 2) == (snapshot.version, len(snapshot.codes))
                assert snapshot.keep_until in (None, keep[name])
            versions = {name: storage.load(_ref(name)).version for name in keep}
            assert {"past": 0, "now": 0, "later": 2} == versions
        assert [] == reporting.purge_snapshots(now, 100)
        assert before["later"] == storage.load(_ref("later"))

    def test_purge_snapshots_honour_the_limit(self, storage: Storage) -> None:
        """purge_snapshots returns at most ``limit`` subjects per call, each once, then none."""
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)
        names = [f"old{n}" for n in range(5)]
        for name in [*names, "young"]:
            keep_until = now + timedelta(hours=1) if name == "young" else now
            change = _commit(_ref(name), 0, [_record(name)], keep_until=keep_until)
            assert storage.commit(change) is True
        before = {_ref(name): _canonical(storage.load(_ref(name))) for name in names}
        if self.purges:
            batches = [reporting.purge_snapshots(now, 2) for _ in range(4)]
            assert [2, 2, 1, 0] == [len(batch) for batch in batches]
            returned = [snapshot for batch in batches for snapshot in batch]
            assert sorted(before) == sorted(snapshot.subject_ref for snapshot in returned)
            assert before == {snapshot.subject_ref: _canonical(snapshot) for snapshot in returned}
            assert [0] * 5 == [storage.load(_ref(name)).version for name in names]
        else:
            assert [] == reporting.purge_snapshots(now, 2)
        assert 1 == storage.load(_ref("young")).version

    def test_purge_snapshots_see_the_last_commit(self, storage: Storage) -> None:
        """A due subject committed again is kept if its keep_until moved on, else purged as new."""
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)
        moved, still = _ref("moved"), _ref("still")
        for ref in (moved, still):
            assert storage.commit(_commit(ref, 0, [_record("old")], keep_until=now)) is True
        # Both subjects are due; each is committed again before the purge runs.
        later = _commit(moved, 1, [_record("new")], keep_until=now + _MICROSECOND)
        again = _commit(still, 1, [_record("new")], keep_until=now)
        assert (True, True) == (storage.commit(later), storage.commit(again))
        if self.purges:
            (deleted,) = reporting.purge_snapshots(now, 100)
            assert _canonical(_stored(again)) == _canonical(deleted)
            assert (0, 2) == (storage.load(still).version, storage.load(moved).version)
        else:
            assert [] == reporting.purge_snapshots(now, 100)
        assert _stored(later) == _read(storage, moved)

    # --- the issuer's rules through the storage ----------------------------------------------

    def test_code_is_redeemed_once(
        self, issuer: CodeIssuer, storage: Storage, subject: Subject, clock: ManualClock
    ) -> None:
        """A code redeems once, is stored as REDEEMED, and a second attempt is CodeAlreadyUsed."""
        issued = issuer.issue(subject, PROVIDER)
        clock.advance(minutes=1)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        assert (issued.code_id, SERVICE, clock.now()) == (
            redemption.code_id,
            redemption.service.id,
            redemption.redeemed_at,
        )
        record = _record_of(storage, _filed(issuer.keyring, subject), issued.code_id)
        assert (CodeState.REDEEMED, clock.now(), SERVICE) == (
            record.state,
            record.finished_at,
            record.redeemed_service_id,
        )
        with pytest.raises(CodeAlreadyUsed):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)

    def test_code_is_refused_at_another_provider(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """A code issued for one provider is a wrong code at another and still good at its own."""
        issued = issuer.issue(subject, PROVIDER)
        with pytest.raises(WrongCode):
            issuer.redeem(subject, OTHER_PROVIDER, issued.code, SERVICE)
        assert issued.code_id == issuer.redeem(subject, PROVIDER, issued.code, SERVICE).code_id

    def test_code_typed_in_arabic_indic_digits_is_accepted(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """The code typed with Arabic-Indic digits, a space and a hyphen redeems."""
        issued = issuer.issue(subject, PROVIDER)
        typed = issued.code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        typed = f"{typed[:2]} {typed[2:4]}-{typed[4:]}"
        assert issued.code_id == issuer.redeem(subject, PROVIDER, typed, SERVICE).code_id

    def test_code_expires_exactly_at_its_ttl(
        self, issuer: CodeIssuer, policy: Policy, subject: Subject, clock: ManualClock
    ) -> None:
        """A code is good one microsecond before issued_at + TTL and expired at that moment."""
        early = issuer.issue(subject, PROVIDER, service=SERVICE)
        late = issuer.issue(subject, PROVIDER, service=SERVICE)
        assert early.issued_at + policy.ttl_for(SERVICE) == early.expires_at
        clock.set(early.expires_at - _MICROSECOND)
        assert early.code_id == issuer.redeem(subject, PROVIDER, early.code, SERVICE).code_id
        clock.set(late.expires_at)
        with pytest.raises(CodeExpired):
            issuer.redeem(subject, PROVIDER, late.code, SERVICE)

    def test_code_locks_after_max_failed_attempts(
        self, make_issuer: IssuerFactory[CodeIssuer], policy: Policy, subject: Subject
    ) -> None:
        """Wrong guesses up to the limit lock the code, and then the right code is CodeLocked."""
        policy = attrs.evolve(policy, failure_budget=1000, accept_guess_risk=True)
        issuer = make_issuer(policy)
        issued = issuer.issue(subject, PROVIDER)
        guess = _other_code(policy, issued.code)
        for _ in range(policy.max_failed_attempts - 1):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, guess, SERVICE)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.ACTIVE, 1) == (status.state, status.attempts_left)
        with pytest.raises(WrongCode):
            issuer.redeem(subject, PROVIDER, guess, SERVICE)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.LOCKED, policy.max_failed_attempts) == (
            status.state,
            status.failed_attempts,
        )
        with pytest.raises(CodeLocked):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)

    def test_failure_budget_survives_a_new_code(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Wrong guesses are stored per subject and provider: a new code does not reset them."""
        policy = attrs.evolve(policy, failure_budget=3, max_failed_attempts=5, recovery_codes=0)
        issuer = make_issuer(policy)
        first = issuer.issue(subject, PROVIDER)
        moments = []
        for _ in range(3):
            moments.append(clock.advance(seconds=1, microseconds=1))
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, first.code), SERVICE)
        second = issuer.issue(subject, PROVIDER)
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, second.code, SERVICE)
        stored = storage.load(_filed(issuer.keyring, subject)).failure_log(PROVIDER)
        assert tuple(moments) == stored.failures

    def test_live_code_limit(self, issuer: CodeIssuer, policy: Policy, subject: Subject) -> None:
        """A subject holds at most max_live_codes live codes; using one frees a place."""
        codes = [issuer.issue(subject, PROVIDER) for _ in range(policy.max_live_codes)]
        with pytest.raises(LiveCodeLimitReached):
            issuer.issue(subject, PROVIDER)
        issuer.redeem(subject, PROVIDER, codes[0].code, SERVICE)
        assert PROVIDER == issuer.issue(subject, PROVIDER).provider.id

    def test_revoked_code_is_refused(
        self, issuer: CodeIssuer, subject: Subject, clock: ManualClock
    ) -> None:
        """A revoked code is stored as REVOKED and refused with CodeRevoked."""
        issued = issuer.issue(subject, PROVIDER)
        clock.advance(minutes=5)
        revoked = issuer.revoke(subject, issued.code_id)
        assert (CodeState.REVOKED, clock.now()) == (revoked.state, revoked.finished_at)
        with pytest.raises(CodeRevoked):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        assert CodeState.REVOKED == issuer.status(subject, issued.code_id).state

    def test_status_follows_the_code(
        self, issuer: CodeIssuer, policy: Policy, subject: Subject, clock: ManualClock
    ) -> None:
        """Status reads ACTIVE, then REDEEMED or EXPIRED as the stored record and time say."""
        used = issuer.issue(subject, PROVIDER)
        idle = issuer.issue(subject, PROVIDER)
        status = issuer.status(subject, used.code_id)
        assert (CodeState.ACTIVE, policy.max_failed_attempts, used.expires_at) == (
            status.state,
            status.attempts_left,
            status.expires_at,
        )
        issuer.redeem(subject, PROVIDER, used.code, SERVICE)
        status = issuer.status(subject, used.code_id)
        assert (CodeState.REDEEMED, SERVICE) == (status.state, status.redeemed_service_id)
        clock.set(idle.expires_at)
        assert CodeState.EXPIRED == issuer.status(subject, idle.code_id).state
        with pytest.raises(UnknownCode):
            issuer.status(subject, "no-such-code")

    def test_mobile_number_binding(self, issuer: CodeIssuer, subject: Subject) -> None:
        """A code bound to a mobile number needs that number, in any accepted form."""
        issued = issuer.issue(subject, PROVIDER, msisdn="0512345678")
        with pytest.raises(BindingRequired):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        with pytest.raises(BindingMismatch):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE, msisdn="0598765432")
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, msisdn="+966512345678")
        assert issued.code_id == redemption.code_id

    def test_recipient_binding(self, issuer: CodeIssuer, subject: Subject) -> None:
        """A number-transfer code bound to a recipient is refused for anyone else."""
        recipient, stranger = _resident(1), _resident(2)
        issued = issuer.issue(subject, PROVIDER, service=TRANSFER, recipient=recipient)
        with pytest.raises(BindingMismatch):
            issuer.redeem(subject, PROVIDER, issued.code, TRANSFER, recipient=stranger)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, TRANSFER, recipient=recipient)
        assert issued.code_id == redemption.code_id

    def test_issuer_purge_removes_a_subject_once_nothing_matters(
        self, issuer: CodeIssuer, policy: Policy, clock: ManualClock, subject: Subject
    ) -> None:
        """CodeIssuer.purge keeps a subject until expiry plus retention, then it is gone."""
        storage = issuer.storage
        issued = issuer.issue(subject, PROVIDER)
        ref = _filed(issuer.keyring, subject)
        clock.set(issued.expires_at + policy.retention - _MICROSECOND)
        assert 0 == issuer.purge()
        assert 1 == storage.load(ref).version
        clock.advance(microseconds=1)
        if self.purges:
            assert [1, 0] == [issuer.purge(), issuer.purge()]
            assert SubjectSnapshot(subject_ref=ref) == storage.load(ref)
            with pytest.raises(UnknownCode):
                issuer.status(subject, issued.code_id)
        else:
            assert 0 == issuer.purge()

    def test_purge_reports_each_code_that_expired_unused(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
    ) -> None:
        """Purging tells the sinks of every code that expired unused, once, and of nothing else.

        Redeemed, revoked, locked and superseded codes are not reported; nor is anything before
        the subject is deleted, nor again by a later purge. Over a storage without
        ``purge_snapshots``, purging reports nothing.
        """
        sink = audit.CollectingSink()
        strict = attrs.evolve(policy, max_failed_attempts=2, on_live_code_limit="supersede")
        issuer = make_issuer(strict, events=[sink])
        unused = self._codes_in_every_state(issuer, clock)
        assert len({expired_at for _, _, expired_at in unused.values()}) > 1

        # Every code has expired, but every subject is still kept: nothing is deleted or reported.
        last_expiry = max(expired_at for _, _, expired_at in unused.values())
        clock.set(last_expiry + _MICROSECOND)
        sink.clear()
        assert 0 == issuer.purge()
        assert [] == sink.events
        # Past every retention and failure window: each subject goes, and its unused codes with it.
        clock.set(last_expiry + strict.retention + strict.failure_window)
        purged = []
        for _ in range(100):
            purged.append(issuer.purge(limit=2))
            if purged[-1] == 0:
                break
        expired = sink.of_type(audit.CodeExpiry)
        assert len(expired) == len(sink.events)
        if self.purges:
            assert 6 == sum(purged)
            assert all(count <= 2 for count in purged)
        if self.purges and isinstance(issuer.storage, PurgeReporting):
            assert len(unused) == len(expired)
            assert unused == {
                event.code_id: (event.audit_ref, event.provider_id, event.expired_at)
                for event in expired
            }
            assert {clock.now()} == {event.at for event in expired}
        else:
            assert [] == expired
        sink.clear()
        assert (0, []) == (issuer.purge(), sink.events)

    @staticmethod
    def _codes_in_every_state(
        issuer: CodeIssuer, clock: ManualClock
    ) -> dict[str, tuple[str, str, datetime]]:
        """Six subjects' codes, redeemed, revoked, locked, superseded and left unused.

        The issuer's policy supersedes at its live-code limit and locks at its attempt limit.
        Returns the codes left unused: code id to audit pseudonym, provider id and expiry.
        """
        policy = issuer.policy
        unused: dict[str, tuple[str, str, datetime]] = {}

        def leave(subject: Subject, issued: IssuedCode) -> None:
            audit_ref = issuer.keyring.audit_ref(identity_of(subject))
            unused[issued.code_id] = (audit_ref, issued.provider.id, issued.expires_at)

        redeemer, revoker, guesser, superseder, idler, mixed = (_citizen(n) for n in range(6))
        used = issuer.issue(redeemer, PROVIDER)
        issuer.redeem(redeemer, PROVIDER, used.code, SERVICE)
        clock.advance(minutes=1)
        issuer.revoke(revoker, issuer.issue(revoker, PROVIDER).code_id)
        clock.advance(minutes=1)
        guessed = issuer.issue(guesser, PROVIDER)
        for _ in range(policy.max_failed_attempts):
            with pytest.raises(WrongCode):
                issuer.redeem(guesser, PROVIDER, _other_code(policy, guessed.code), SERVICE)
        assert CodeState.LOCKED == issuer.status(guesser, guessed.code_id).state
        live = []
        for _ in range(policy.max_live_codes + 1):
            clock.advance(minutes=1)
            live.append(issuer.issue(superseder, PROVIDER))
        assert (live[0].code_id,) == live[-1].superseded_code_ids
        for issued in live[1:]:
            leave(superseder, issued)
        clock.advance(minutes=1, microseconds=3)
        leave(idler, issuer.issue(idler, OTHER_PROVIDER, service=SERVICE))
        clock.advance(minutes=1)
        leave(idler, issuer.issue(idler, PROVIDER))
        spent = issuer.issue(mixed, PROVIDER)
        leave(mixed, issuer.issue(mixed, OTHER_PROVIDER))
        issuer.redeem(mixed, PROVIDER, spent.code, SERVICE)
        return unused

    # --- a rogue operator, a stalled request, a careless integrator ---------------------------

    def test_a_stalled_request_cannot_erase_an_acknowledged_redemption(
        self,
        issuer: CodeIssuer,
        storage: Storage,
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """A request that loaded the subject before it was deleted cannot undo what came after."""
        ref = _filed(issuer.keyring, subject)
        first, second = issuer.issue(subject, PROVIDER), issuer.issue(subject, PROVIDER)
        stalled = storage.load(ref)
        assert 2 == stalled.version
        # The request stalls; meanwhile the subject stops mattering, is deleted, and lives again.
        clock.set(max(first.expires_at, second.expires_at) + policy.retention)
        self.vanish(storage, ref, clock.now())
        again = issuer.issue(subject, PROVIDER)
        acknowledged = issuer.redeem(subject, PROVIDER, again.code, SERVICE, request_id="ack-1")
        assert 2 == storage.load(ref).version
        # The stalled request wakes up and commits what it decided on its old snapshot.
        assert storage.commit(next_commit(policy, stalled, clock.now())) is False
        assert CodeState.REDEEMED == issuer.status(subject, again.code_id).state
        retried = issuer.redeem(subject, PROVIDER, again.code, SERVICE, request_id="ack-1")
        assert acknowledged == retried

    def test_a_wrong_code_that_meets_no_live_code_is_counted_nowhere(
        self,
        issuer: CodeIssuer,
        storage: Storage,
        policy: Policy,
        subject: Subject,
    ) -> None:
        """Guesses at a customer with no live code at the provider: refused alike, nothing stored.

        So nobody can lock a customer out before a code exists, nor fill storage with guesses.
        """
        ref = _filed(issuer.keyring, subject)
        for _ in range(policy.failure_budget * 2):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, "12345678", SERVICE)
        assert 0 == storage.load(ref).version
        used = issuer.issue(subject, PROVIDER)
        elsewhere = issuer.issue(subject, OTHER_PROVIDER)
        issuer.redeem(subject, PROVIDER, used.code, SERVICE)
        before = storage.load(ref)
        for _ in range(policy.failure_budget * 2):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, used.code), SERVICE)
        assert before == storage.load(ref)
        assert 0 == issuer.status(subject, elsewhere.code_id).failed_attempts
        fresh = issuer.issue(subject, PROVIDER)
        assert fresh.code_id == issuer.redeem(subject, PROVIDER, fresh.code, SERVICE).code_id

    def test_a_customer_whose_budget_is_spent_gets_recovery_codes(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Budget spent: only codes asked for since are compared, each with its own small limit.

        At most ``recovery_codes`` per window; later codes wait, like the older ones, until the
        budget frees.
        """
        sink = audit.CollectingSink()
        policy = attrs.evolve(
            policy, failure_budget=4, failure_window=timedelta(hours=2), accept_guess_risk=True
        )
        issuer = make_issuer(policy, events=[sink])
        old = issuer.issue(subject, PROVIDER)
        for _ in range(policy.failure_budget):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, old.code), SERVICE)
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, old.code, SERVICE)
        # The customer authenticates again and asks for a code: a recovery code.
        recovery = issuer.issue(subject, PROVIDER)
        flagged = {event.code_id: event.recovery for event in sink.of_type(audit.CodeIssuance)}
        assert (False, True) == (flagged[old.code_id], flagged[recovery.code_id])
        with pytest.raises(WrongCode):
            issuer.redeem(subject, PROVIDER, _other_code(policy, recovery.code), SERVICE)
        status = issuer.status(subject, recovery.code_id)
        assert (CodeState.ACTIVE, policy.recovery_attempts - 1) == (
            status.state,
            status.attempts_left,
        )
        assert policy.failure_budget == issuer.status(subject, old.code_id).failed_attempts
        assert recovery.code_id == issuer.redeem(subject, PROVIDER, recovery.code, SERVICE).code_id
        # A second one, guessed at until it locks.
        second = issuer.issue(subject, PROVIDER)
        for _ in range(policy.recovery_attempts):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, second.code), SERVICE)
        assert CodeState.LOCKED == issuer.status(subject, second.code_id).state
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, second.code, SERVICE)
        # The allowance is spent: the next code is an ordinary one, good once the budget frees.
        third = issuer.issue(subject, PROVIDER)
        assert not {e.code_id: e.recovery for e in sink.of_type(audit.CodeIssuance)}[third.code_id]
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, third.code, SERVICE)
        clock.advance(policy.failure_window)
        assert third.code_id == issuer.redeem(subject, PROVIDER, third.code, SERVICE).code_id

    def test_request_ids_belong_to_one_provider(self, issuer: CodeIssuer, subject: Subject) -> None:
        """Two operators may use one request id for one customer; neither learns of the other."""
        at_one = issuer.issue(subject, PROVIDER)
        at_other = issuer.issue(subject, OTHER_PROVIDER)
        first = issuer.redeem(subject, PROVIDER, at_one.code, SERVICE, request_id="shared-1")
        other = issuer.redeem(
            subject, OTHER_PROVIDER, at_other.code, SERVICE, request_id="shared-1"
        )
        assert (at_one.code_id, at_other.code_id) == (first.code_id, other.code_id)
        again = issuer.redeem(subject, PROVIDER, at_one.code, SERVICE, request_id="shared-1")
        assert first == again

    def test_a_number_transfer_always_names_its_recipient(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """No transfer code without a recipient; a code that names none cannot serve a transfer."""
        with pytest.raises(InvalidBinding):
            issuer.issue(subject, PROVIDER, service=TRANSFER)
        unbound = issuer.issue(subject, PROVIDER)
        for recipient in (None, _resident(1)):
            with pytest.raises(TransferNotBound):
                issuer.redeem(subject, PROVIDER, unbound.code, TRANSFER, recipient=recipient)
        status = issuer.status(subject, unbound.code_id)
        assert (CodeState.ACTIVE, 0) == (status.state, status.failed_attempts)
        assert unbound.code_id == issuer.redeem(subject, PROVIDER, unbound.code, SERVICE).code_id

    def test_what_leaves_the_issuer_never_names_the_storage_key(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        storage: Storage,
        policy: Policy,
        subject: Subject,
    ) -> None:
        """Receipts, redemptions and events carry per-operator and audit pseudonyms only.

        None of them is the key storage files the customer or the recipient under, or any value
        stored beside it; each operator gets its own pseudonym of the customer.
        """
        sink, signer = audit.CollectingSink(), ReceiptSigner.generate()
        issuer = make_issuer(policy, signer=signer, events=[sink])
        recipient = _resident(7)
        here, there = issuer.issue(subject, PROVIDER), issuer.issue(subject, OTHER_PROVIDER)
        moving = issuer.issue(subject, PROVIDER, service=TRANSFER, recipient=recipient)
        done = [
            issuer.redeem(subject, PROVIDER, here.code, SERVICE, request_id="q-1"),
            issuer.redeem(subject, OTHER_PROVIDER, there.code, SERVICE, reference="branch-9"),
            issuer.redeem(subject, PROVIDER, moving.code, TRANSFER, recipient=recipient),
        ]
        with pytest.raises(WrongCode):
            issuer.redeem(subject, PROVIDER, "12345678", SERVICE, reference="agent-7")
        keyring = issuer.keyring
        filed = {_filed(keyring, subject), _filed(keyring, recipient)}
        stored = {
            value
            for record in storage.load(_filed(keyring, subject)).codes
            for value in (
                record.msisdn_ref,
                record.recipient_ref,
                record.request_ref,
                record.request_inputs,
            )
            if value is not None
        }
        assert 2 <= len(stored)
        receipts = [redemption.receipt for redemption in done]
        outside = repr(
            [
                *(redemption.customer_ref for redemption in done),
                *(receipt.to_text() for receipt in receipts if receipt is not None),
                *(event.fields() for event in sink.events),
            ]
        )
        assert [] == [value for value in filed | stored if value in outside]
        customer = {redemption.provider.id: redemption.customer_ref for redemption in done}
        assert customer[PROVIDER] != customer[OTHER_PROVIDER]
        assert done[0].customer_ref == done[2].customer_ref
        (audit_ref,) = {event.audit_ref for event in sink.events}
        assert audit_ref not in customer.values()
        references = [
            event.reference
            for event in sink.events
            if isinstance(event, audit.CodeRedemption | audit.RedemptionRefusal)
        ]
        assert [None, "branch-9", None, "agent-7"] == references

    def test_references_are_checked_before_anything_is_stored(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """A reference that is not 1-64 printable ASCII characters is refused, the code kept."""
        issued = issuer.issue(subject, PROVIDER)
        bad: list[Any] = ["", "a b", "x" * 65, "فرع", "agent\n", 7]
        for reference in bad:
            with pytest.raises(InvalidReference):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE, reference=reference)
        assert CodeState.ACTIVE == issuer.status(subject, issued.code_id).state

    # --- pseudonym key rotation ------------------------------------------------------------------

    def _scanning(self, storage: Storage) -> SubjectScanning:
        if not isinstance(storage, SubjectScanning):
            pytest.skip("the storage has no scan_subjects (the optional SubjectScanning)")
        return storage

    def test_pseudonym_key_rotation_moves_every_subject(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
    ) -> None:
        """A new pseudonym key files every subject anew: on its next write, or by the mover.

        Nothing is lost on the way: codes, attempts, failures and used codes keep their state,
        and once the older key retires everything still works.
        """
        self._scanning(storage)
        before = make_issuer(policy)
        subjects = [_citizen(n) for n in range(6)]
        issued = {n: before.issue(subject, PROVIDER) for n, subject in enumerate(subjects)}
        spare = {n: before.issue(subjects[n], OTHER_PROVIDER) for n in range(3)}
        used = before.redeem(subjects[0], PROVIDER, issued[0].code, SERVICE, request_id="used")
        with pytest.raises(WrongCode):
            before.redeem(subjects[1], PROVIDER, _other_code(policy, issued[1].code), SERVICE)
        clock.advance(minutes=5)
        rotated = keyring.with_pseudonym_key(HmacKey.generate("p2"))
        after = make_issuer(policy, keyring=rotated)
        assert CodeState.ACTIVE == after.status(subjects[2], issued[2].code_id).state
        after.redeem(subjects[2], PROVIDER, issued[2].code, SERVICE)
        old_ref = _filed(keyring, subjects[2])
        assert (True, ()) == (storage.load(old_ref).moved, storage.load(old_ref).codes)
        assert 0 < storage.load(_filed(rotated, subjects[2])).version
        progress = [after.move_subjects(limit=2)]
        while not progress[-1].done:
            progress.append(after.move_subjects(limit=2))
        assert 5 == sum(step.moved for step in progress)
        assert MoveProgress(moved=0, scanned=progress[0].scanned, done=True).moved == (
            after.move_subjects().moved
        )
        for subject in subjects:
            old = storage.load(_filed(keyring, subject))
            assert (True, (), ()) == (old.moved, old.codes, old.failure_logs)
        retired = make_issuer(policy, keyring=rotated.without_pseudonym_key("p1"))
        with pytest.raises(CodeAlreadyUsed):
            retired.redeem(subjects[0], PROVIDER, issued[0].code, SERVICE)
        retry = retired.redeem(subjects[0], PROVIDER, issued[0].code, SERVICE, request_id="used")
        assert (used.code_id, used.redeemed_at) == (retry.code_id, retry.redeemed_at)
        assert 1 == retired.status(subjects[1], issued[1].code_id).failed_attempts
        log = storage.load(_filed(rotated, subjects[1])).failure_log(PROVIDER)
        assert 1 == len(log.failures)
        for n in (1, 3, 4, 5):
            assert (
                issued[n].code_id
                == retired.redeem(subjects[n], PROVIDER, issued[n].code, SERVICE).code_id
            )
        for n, code in spare.items():
            redeemed = retired.redeem(subjects[n], OTHER_PROVIDER, code.code, SERVICE)
            assert code.code_id == redeemed.code_id

    def test_nodes_in_standby_and_nodes_moving_share_every_subject(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
    ) -> None:
        """During a rollout, a node with the new key in standby and one with it current agree."""
        standby_ring = keyring.with_pseudonym_key(HmacKey.generate("p2"), current=False)
        moving_ring = standby_ring.with_current_pseudonym_key("p2")
        old_node = make_issuer(policy, keyring=standby_ring)
        new_node = make_issuer(policy, keyring=moving_ring)
        a, b = _citizen(1), _citizen(2)
        # a: filed by the old node under p1, moved by the new node, then used by the old node.
        first_a = old_node.issue(a, PROVIDER)
        assert 0 < storage.load(_filed(keyring, a)).version
        second_a = new_node.issue(a, PROVIDER)
        assert storage.load(_filed(keyring, a)).moved
        assert first_a.code_id == old_node.redeem(a, PROVIDER, first_a.code, SERVICE).code_id
        with pytest.raises(CodeAlreadyUsed):
            new_node.redeem(a, PROVIDER, first_a.code, SERVICE)
        assert second_a.code_id == old_node.redeem(a, PROVIDER, second_a.code, SERVICE).code_id
        # b: filed by the new node under p2; the old node finds it there, and never files it again.
        first_b = new_node.issue(b, PROVIDER)
        assert CodeState.ACTIVE == old_node.status(b, first_b.code_id).state
        second_b = old_node.issue(b, PROVIDER)
        assert first_b.code_id == old_node.redeem(b, PROVIDER, first_b.code, SERVICE).code_id
        assert second_b.code_id == new_node.redeem(b, PROVIDER, second_b.code, SERVICE).code_id
        assert storage.load(_filed(keyring, b)).moved
        with pytest.raises(KeyringError):
            old_node.move_subjects()

    # --- concurrency -------------------------------------------------------------------------

    # --- trust and audit: receipts, idempotent retries, supersede, events, key rotation --------

    def test_retry_with_the_same_request_id_gets_the_same_redemption(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """A retry with the same request id and inputs: the same redemption and receipt."""
        signer = ReceiptSigner.generate()
        issuer = make_issuer(policy, signer=signer)
        issued = issuer.issue(subject, PROVIDER)
        first = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="visit-0001")
        clock.advance(minutes=3)
        again = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="visit-0001")
        assert first == again
        assert first.receipt is not None
        assert again.receipt is not None
        assert first.receipt.to_text() == again.receipt.to_text()
        first.receipt.verify(signer.verify_keys())
        assert (clock.now() - timedelta(minutes=3), issued.code_id) == (
            first.receipt.redeemed_at,
            first.receipt.code_id,
        )
        for request_id in ("visit-0002", None):
            with pytest.raises(CodeAlreadyUsed):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=request_id)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.REDEEMED, 0) == (status.state, status.failed_attempts)

    def test_same_request_id_with_other_inputs_is_refused(
        self, make_issuer: IssuerFactory[CodeIssuer], policy: Policy, subject: Subject
    ) -> None:
        """The same request id with another service, code or binding is a RequestConflict."""
        issuer = make_issuer(policy)
        issued = issuer.issue(subject, PROVIDER)
        other = issuer.issue(subject, PROVIDER)
        issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="visit-1")
        conflicting: list[dict[str, Any]] = [
            {"code": issued.code, "service": "lost_sim_replacement"},
            {"code": issued.code, "service": SERVICE, "msisdn": "0551234567"},
            {"code": other.code, "service": SERVICE},
        ]
        for inputs in conflicting:
            with pytest.raises(RequestConflict):
                issuer.redeem(subject, PROVIDER, request_id="visit-1", **inputs)
        assert CodeState.ACTIVE == issuer.status(subject, other.code_id).state
        redeemed = issuer.redeem(subject, PROVIDER, other.code, SERVICE, request_id="visit-2")
        assert other.code_id == redeemed.code_id

    def test_request_ids_are_checked_before_anything_is_stored(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """A request id that is not 1-64 printable ASCII characters is refused, the code kept."""
        issued = issuer.issue(subject, PROVIDER)
        bad: list[Any] = ["", " ", "a b", "x" * 65, "طلب", "id\x00", "tab\t", 7, b"id", ["id"]]
        for request_id in bad:
            with pytest.raises(InvalidRequestId):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=request_id)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.ACTIVE, 0) == (status.state, status.failed_attempts)

    def test_superseding_policy_replaces_the_oldest_live_code(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """At the limit, a superseding policy retires the oldest live code in the same change."""
        issuer = make_issuer(attrs.evolve(policy, on_live_code_limit="supersede"))
        older = []
        for _ in range(policy.max_live_codes):
            older.append(issuer.issue(subject, PROVIDER))
            clock.advance(minutes=1)
        newest = issuer.issue(subject, OTHER_PROVIDER)
        assert (older[0].code_id,) == newest.superseded_code_ids
        status = issuer.status(subject, older[0].code_id)
        assert (CodeState.SUPERSEDED, clock.now()) == (status.state, status.finished_at)
        with pytest.raises(CodeSuperseded):
            issuer.redeem(subject, PROVIDER, older[0].code, SERVICE)
        assert CodeState.SUPERSEDED == issuer.revoke(subject, older[0].code_id).state
        for issued in (*older[1:], newest):
            assert CodeState.ACTIVE == issuer.status(subject, issued.code_id).state
        redeemed = issuer.redeem(subject, OTHER_PROVIDER, newest.code, SERVICE)
        assert newest.code_id == redeemed.code_id

    def test_events_tell_what_happened(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Each change gives its event, after it landed; no event holds a code or the ID."""
        sink = audit.CollectingSink()
        strict = attrs.evolve(policy, max_failed_attempts=2, on_live_code_limit="supersede")
        issuer = make_issuer(strict, events=[sink])
        used = issuer.issue(subject, PROVIDER, service=SERVICE)
        issuer.redeem(subject, PROVIDER, used.code, SERVICE, request_id="r-1")
        with pytest.raises(CodeAlreadyUsed):
            issuer.redeem(subject, PROVIDER, used.code, SERVICE)
        guessed = issuer.issue(subject, PROVIDER)
        for _ in range(2):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(strict, guessed.code), SERVICE)
        cancelled = issuer.issue(subject, OTHER_PROVIDER)
        issuer.revoke(subject, cancelled.code_id)
        live = [issuer.issue(subject, PROVIDER) for _ in range(strict.max_live_codes)]
        newest = issuer.issue(subject, PROVIDER)
        expected: list[tuple[type[audit.AuditEvent], str | None]] = [
            (audit.CodeIssuance, used.code_id),
            (audit.CodeRedemption, used.code_id),
            (audit.RedemptionRefusal, used.code_id),
            (audit.CodeIssuance, guessed.code_id),
            (audit.RedemptionRefusal, None),
            (audit.RedemptionRefusal, None),
            (audit.CodeLockout, guessed.code_id),
            (audit.CodeIssuance, cancelled.code_id),
            (audit.CodeRevocation, cancelled.code_id),
            *[(audit.CodeIssuance, issued.code_id) for issued in live],
            (audit.CodeSupersession, live[0].code_id),
            (audit.CodeIssuance, newest.code_id),
        ]
        assert expected == [(type(event), event.code_id) for event in sink.events]
        refusals = sink.of_type(audit.RedemptionRefusal)
        assert ["code_already_used", "wrong_code", "wrong_code"] == [e.reason for e in refusals]
        assert {clock.now()} == {event.at for event in sink.events}
        (redeemed,) = sink.of_type(audit.CodeRedemption)
        assert ("r-1", SERVICE) == (redeemed.request_id, redeemed.service_id)
        (superseded,) = sink.of_type(audit.CodeSupersession)
        assert newest.code_id == superseded.superseded_by
        text = repr([event.fields() for event in sink.events])
        plaintexts = [subject.identifier, used.code, guessed.code, newest.code]
        assert [] == [secret for secret in plaintexts if secret in text]

    def test_a_failing_sink_never_undoes_a_change(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        subject: Subject,
    ) -> None:
        """A sink that raises: the code is issued and redeemed all the same, other sinks hear."""

        class Broken:
            def emit(self, event: audit.AuditEvent) -> None:
                raise RuntimeError("the sink is down")

        sink = audit.CollectingSink()
        issuer = make_issuer(policy, events=[Broken(), sink])
        issued = issuer.issue(subject, PROVIDER)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        assert issued.code_id == redemption.code_id
        record = _record_of(storage, _filed(keyring, subject), issued.code_id)
        assert CodeState.REDEEMED == record.state
        assert [audit.CodeIssuance, audit.CodeRedemption] == [type(e) for e in sink.events]

    def test_key_rotation_end_to_end(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Add a key, use it, keep the old one verifying, retire it once nothing depends on it."""
        signer = ReceiptSigner.generate("r1")
        before = make_issuer(policy, signer=signer)
        keyring = before.keyring
        ref = _filed(keyring, subject)
        old_code = before.issue(subject, PROVIDER)
        spent = before.issue(subject, OTHER_PROVIDER)
        old_receipt = before.redeem(subject, OTHER_PROVIDER, spent.code, SERVICE, request_id="a")
        assert old_receipt.receipt is not None
        assert "r1" == old_receipt.receipt.key_id
        # Rotation: a new HMAC key and a new signing key become current together.
        clock.advance(hours=1)
        rotated_at = clock.now()
        ring = keyring.with_key(HmacKey.generate("k2"))
        signer2 = signer.with_key(SigningKey.generate("r2"))
        after = make_issuer(policy, signer=signer2, keyring=ring)
        new_code = after.issue(subject, PROVIDER)
        keys = {record.code_id: record.key_id for record in storage.load(ref).codes}
        assert ("k1", "k2") == (keys[old_code.code_id], keys[new_code.code_id])
        # A retry after the rotation still gets the receipt the first call got.
        assert old_receipt == after.redeem(
            subject, OTHER_PROVIDER, spent.code, SERVICE, request_id="a"
        )
        # The code made under k1 still redeems; its receipt is signed with r2; both verify.
        redeemed = after.redeem(subject, PROVIDER, old_code.code, SERVICE)
        assert redeemed.receipt is not None
        assert "r2" == redeemed.receipt.key_id
        for receipt in (old_receipt.receipt, redeemed.receipt):
            receipt.verify(signer2.verify_keys())
        # Retire k1 once every code it made has expired and its record's retention has ended.
        leftover = before.issue(subject, "zain")
        clock.set(rotated_at + policy.key_retirement_delay)
        with pytest.raises(CodeExpired):
            after.redeem(subject, "zain", leftover.code, SERVICE)
        retired = make_issuer(
            policy, signer=signer2.without_key("r1"), keyring=ring.without_key("k1")
        )
        assert [] == [
            r.code_id
            for r in storage.load(ref).codes
            if r.key_id == "k1" and r.state is CodeState.ACTIVE and clock.now() < r.expires_at
        ]
        fresh = retired.issue(subject, PROVIDER)
        final = retired.redeem(subject, PROVIDER, fresh.code, SERVICE)
        assert final.receipt is not None
        assert "r2" == final.receipt.key_id
        # Operators keep old public keys for as long as old receipts must be provable.
        old_receipt.receipt.verify(signer2.verify_keys())
        with pytest.raises(UnknownSigningKey):
            old_receipt.receipt.verify(signer2.without_key("r1").verify_keys())

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_commits_at_one_version_land_once(
        self, storage: Storage, race_pool: ThreadPoolExecutor
    ) -> None:
        """32 threads commit on one version, creating and updating: exactly one lands each time."""
        for round_ in range(max(1, self.race_rounds // 10)):
            ref = _ref(f"race{round_}")
            for version in (0, 1):
                changes = [
                    _commit(ref, version, [_record(f"v{version}-t{n}")]) for n in range(THREADS)
                ]
                outcomes = _together(
                    race_pool, [partial(storage.commit, change) for change in changes]
                )
                assert 1 == outcomes.count(True)
                assert THREADS - 1 == outcomes.count(False)
                assert _stored(changes[outcomes.index(True)]) == _read(storage, ref)

    @pytest.mark.usefixtures("interleaved")
    def test_purge_snapshots_never_delete_a_concurrent_commit(
        self, storage: Storage, race_pool: ThreadPoolExecutor
    ) -> None:
        """Commits race purges of their due subjects: each either lands or is purged, not both.

        A commit that moves keep_until on and lands keeps its subject; one that fails does so
        only because the purge deleted the subject, which it then reports as it was before.
        """
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)

        def purge(into: list[SubjectSnapshot]) -> int:
            # Small batches, so that the purge and the commits interleave.
            while batch := reporting.purge_snapshots(now, 3):
                into.extend(batch)
            return len(into)

        for round_ in range(max(1, self.race_rounds // 20)):
            refs = [_ref(f"race{round_}-{n}") for n in range(THREADS - 1)]
            for ref in refs:
                assert storage.commit(_commit(ref, 0, [_record("old")], keep_until=now))
            purged: list[SubjectSnapshot] = []
            moves = [
                partial(
                    storage.commit,
                    _commit(ref, 1, [_record("new")], keep_until=now + timedelta(hours=1)),
                )
                for ref in refs
            ]
            outcomes = _together(race_pool, [partial(purge, purged), *moves])
            landed = {ref for ref, outcome in zip(refs, outcomes[1:], strict=True) if outcome}
            deleted = {snapshot.subject_ref: snapshot for snapshot in purged}
            assert len(purged) == len(deleted)
            assert (set(refs), set()) == (landed | set(deleted), landed & set(deleted))
            for ref in refs:
                expected = (2, "new") if ref in landed else (0, None)
                loaded = storage.load(ref)
                assert expected == (loaded.version, next((r.code_id for r in loaded.codes), None))
            for snapshot in deleted.values():
                assert (1, ("old",)) == (
                    snapshot.version,
                    tuple(r.code_id for r in snapshot.codes),
                )

    @pytest.mark.usefixtures("interleaved")
    def test_load_never_mixes_versions(
        self, storage: Storage, race_pool: ThreadPoolExecutor
    ) -> None:
        """Loads racing commits see each version whole: the records and logs of that version."""
        ref = _ref("a")
        written = threading.Event()
        commits = max(20, self.race_rounds)

        def state(version: int) -> tuple[list[CodeRecord], list[FailureLog]]:
            # Version n holds n % 3 + 1 codes and n % 4 + 1 failures, every one of them marked n.
            codes = [_record(f"c{n}", failed_attempts=version) for n in range(version % 3 + 1)]
            moment = START + timedelta(microseconds=version)
            failures = (moment,) * (version % 4 + 1)
            return codes, [FailureLog(provider_id=PROVIDER, failures=failures)]

        def write() -> int:
            try:
                ready.wait(timeout=60)
                for version in range(commits):
                    codes, logs = state(version + 1)
                    assert storage.commit(_commit(ref, version, codes, logs)) is True
                    time.sleep(0)  # let the readers in between two commits
            finally:
                written.set()
            return commits

        def read() -> int:
            loads = 0
            while True:
                snapshot = storage.load(ref)
                loads += 1
                if snapshot.version:
                    codes, logs = state(snapshot.version)
                    loaded = _canonical(snapshot)
                    assert (codes, logs) == (list(loaded.codes), list(loaded.failure_logs))
                else:
                    assert SubjectSnapshot(subject_ref=ref) == snapshot
                if loads == 1:
                    ready.wait(timeout=60)
                elif written.is_set():
                    return loads

        # The writer starts once every reader has loaded; the readers stop once it is done.
        ready = threading.Barrier(4)
        outcomes = _together(race_pool, [write, read, read, read])
        assert [int] * 4 == [type(outcome) for outcome in outcomes]

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_redeemers_redeem_a_code_once(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 threads redeem one code together, race_rounds times: one wins, 31 already used."""
        lost = LostCommits()
        issuer = make_issuer(policy, lost)
        for round_ in range(self.race_rounds):
            subject = _citizen(round_)
            issued = issuer.issue(subject, PROVIDER)
            redeem = partial(issuer.redeem, subject, PROVIDER, issued.code, SERVICE)
            outcomes = _together(race_pool, [redeem] * THREADS)
            assert {Redemption: 1, CodeAlreadyUsed: THREADS - 1} == _kinds(outcomes)
            record = _record_of(storage, _filed(keyring, subject), issued.code_id)
            assert (CodeState.REDEEMED, 0) == (record.state, record.failed_attempts)
        assert 0 < lost.count

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_retries_of_one_request_get_one_receipt(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 threads retry one idempotent redemption together: one receipt, identical for all."""
        lost = LostCommits()
        signer = ReceiptSigner.generate()
        issuer = make_issuer(policy, lost, signer=signer)
        for round_ in range(max(1, self.race_rounds // 10)):
            subject = _citizen(round_)
            issued = issuer.issue(subject, PROVIDER)
            retry = partial(
                issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=f"req-{round_}"
            )
            outcomes = _together(race_pool, [retry] * THREADS)
            assert {Redemption: THREADS} == _kinds(outcomes)
            assert 1 == len(set(outcomes))
            (receipt,) = {
                outcome.receipt for outcome in outcomes if isinstance(outcome, Redemption)
            }
            assert receipt is not None
            receipt.verify(signer.verify_keys())
            record = _record_of(storage, _filed(keyring, subject), issued.code_id)
            assert (CodeState.REDEEMED, 0) == (record.state, record.failed_attempts)
        assert 0 < lost.count

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_wrong_guesses_lock_at_exactly_the_limit(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 wrong guesses at once with a limit of 5: 5 attempts counted, the code LOCKED.

        The other 27 met no live code: refused alike, but counted nowhere.
        """
        policy = attrs.evolve(
            policy, max_failed_attempts=5, failure_budget=1000, accept_guess_risk=True
        )
        lost = LostCommits()
        issuer = make_issuer(policy, lost)
        for round_ in range(max(1, self.race_rounds // 20)):
            subject = _citizen(round_)
            issued = issuer.issue(subject, PROVIDER)
            guess = partial(
                issuer.redeem, subject, PROVIDER, _other_code(policy, issued.code), SERVICE
            )
            assert {WrongCode: THREADS} == _kinds(_together(race_pool, [guess] * THREADS))
            snapshot = storage.load(_filed(keyring, subject))
            (record,) = snapshot.codes
            assert (CodeState.LOCKED, 5) == (record.state, record.failed_attempts)
            # Once the code locked, no guess met a live code: none was counted on the budget.
            assert 5 == len(snapshot.failure_log(PROVIDER).failures)
        assert 0 < lost.count

    @pytest.mark.usefixtures("interleaved")
    def test_redemptions_racing_the_move_to_a_new_pseudonym_key(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """Nodes with the new key in standby and current redeem while the mover runs.

        Every code is redeemed exactly once, none is lost or left unusable, and afterwards every
        subject lives under the new key alone.
        """
        self._scanning(storage)
        standby_ring = keyring.with_pseudonym_key(HmacKey.generate("p2"), current=False)
        moving_ring = standby_ring.with_current_pseudonym_key("p2")
        before, old_node = make_issuer(policy), make_issuer(policy, keyring=standby_ring)
        new_node = make_issuer(policy, keyring=moving_ring)
        per_round = (THREADS - 1) // 2
        for round_ in range(max(1, self.race_rounds // 20)):
            subjects = [_citizen(1000 * round_ + n) for n in range(per_round)]
            issued = [before.issue(subject, PROVIDER) for subject in subjects]
            kept = [before.issue(subject, OTHER_PROVIDER) for subject in subjects]

            def move() -> int:
                moved = 0
                while not (progress := new_node.move_subjects(limit=3)).done:
                    moved += progress.moved
                return moved + progress.moved

            redeemers = [
                partial(node.redeem, subject, PROVIDER, code.code, SERVICE)
                for subject, code in zip(subjects, issued, strict=True)
                for node in (old_node, new_node)
            ]
            outcomes = _together(race_pool, [move, *redeemers])
            assert {Redemption: per_round, CodeAlreadyUsed: per_round} == _kinds(outcomes[1:])
            while not new_node.move_subjects().done:
                pass
            for subject, code, spare in zip(subjects, issued, kept, strict=True):
                old = storage.load(_filed(keyring, subject))
                assert (True, ()) == (old.moved, old.codes)
                assert CodeState.REDEEMED == new_node.status(subject, code.code_id).state
                assert (
                    spare.code_id
                    == new_node.redeem(subject, OTHER_PROVIDER, spare.code, SERVICE).code_id
                )

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_issues_respect_the_live_code_limit(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 issues at once for one subject: exactly max_live_codes codes, all of them stored."""
        lost = LostCommits()
        issuer = make_issuer(policy, lost)
        limit = policy.max_live_codes
        for round_ in range(max(1, self.race_rounds // 20)):
            subject = _citizen(round_)
            outcomes = _together(race_pool, [partial(issuer.issue, subject, PROVIDER)] * THREADS)
            assert {IssuedCode: limit, LiveCodeLimitReached: THREADS - limit} == _kinds(outcomes)
            issued = {outcome.code_id for outcome in outcomes if isinstance(outcome, IssuedCode)}
            stored = storage.load(_filed(keyring, subject)).codes
            assert issued == {record.code_id for record in stored}
        assert 0 < lost.count


class AsyncStorageContract(StorageContract):
    """Every test an ``AsyncStorage`` must pass. Subclass it and override ``async_storage``.

    The tests of ``StorageContract`` run on the async storage through ``BlockingStorage``, and
    through ``BlockingIssuer`` over an ``AsyncCodeIssuer``; the tests below await it directly.

    ::

        class TestAsyncRedisStorage(AsyncStorageContract):
            @pytest.fixture
            def async_storage(self, portal):
                storage = AsyncRedisStorage("redis://127.0.0.1:6379/0", prefix="test")
                portal.call(storage.migrate)
                yield storage
                portal.call(storage.close)
    """

    # --- fixtures: override async_storage ----------------------------------------------------

    @pytest.fixture
    def async_storage(self) -> AsyncStorage:
        """The async storage under test, fresh and empty: every subclass overrides this fixture."""
        pytest.fail(
            f"{type(self).__name__} must override the 'async_storage' fixture of"
            " AsyncStorageContract",
            pytrace=False,
        )

    @pytest.fixture
    def portal(self) -> Iterator[Portal]:
        """The event loop of this test, in a background thread; see ``Portal``."""
        with Portal() as running:
            yield running

    @pytest.fixture
    def storage(self, async_storage: AsyncStorage, portal: Portal) -> BlockingStorage:
        """The async storage under test behind a blocking facade, for the inherited tests."""
        return blocking_storage(async_storage, portal)

    @pytest.fixture
    def make_issuer(
        self, async_storage: AsyncStorage, portal: Portal, keyring: Keyring, clock: ManualClock
    ) -> IssuerFactory[BlockingIssuer]:
        """Builds ``AsyncCodeIssuer``s over the async storage, behind blocking facades."""
        ring = keyring

        def build(
            policy: Policy,
            lost: LostCommits | None = None,
            *,
            signer: ReceiptSigner | None = None,
            events: Sequence[EventSink] = (),
            keyring: Keyring | None = None,
        ) -> BlockingIssuer:
            inner = async_storage if lost is None else _AsyncCounting(async_storage, lost)
            issuer = AsyncCodeIssuer(
                inner,
                keyring=ring if keyring is None else keyring,
                policy=policy,
                clock=clock,
                signer=signer,
                events=events,
            )
            return BlockingIssuer(issuer, portal)

        return build

    @pytest.fixture
    def issuer(self, make_issuer: IssuerFactory[BlockingIssuer], policy: Policy) -> BlockingIssuer:
        """An ``AsyncCodeIssuer`` over the async storage, behind a blocking facade."""
        return make_issuer(policy)

    # --- asyncio itself ----------------------------------------------------------------------

    def test_each_issuer_refuses_the_other_kind_of_storage(
        self, async_storage: AsyncStorage, storage: BlockingStorage, keyring: Keyring
    ) -> None:
        """AsyncCodeIssuer refuses a synchronous Storage, and CodeIssuer this AsyncStorage."""
        # The issuers are typed to refuse these; the test is that they refuse them when run, too.
        with pytest.raises(ConfigurationError):
            AsyncCodeIssuer(storage, keyring=keyring)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            CodeIssuer(async_storage, keyring=keyring)  # type: ignore[arg-type]

    def test_manual_clock_drives_async_expiry(
        self, issuer: BlockingIssuer, clock: ManualClock, subject: Subject, portal: Portal
    ) -> None:
        """AsyncCodeIssuer reads the ManualClock: a code is good 1 µs before its TTL, not at it."""
        native = issuer.async_issuer
        ends = clock.now() + native.policy.ttl_for(SERVICE)
        early = portal.call(native.issue, subject, PROVIDER, service=SERVICE)
        late = portal.call(native.issue, subject, PROVIDER, service=SERVICE)
        assert (ends, ends) == (early.expires_at, late.expires_at)
        clock.set(early.expires_at - _MICROSECOND)
        redemption = portal.call(native.redeem, subject, PROVIDER, early.code, SERVICE)
        assert (early.code_id, clock.now()) == (redemption.code_id, redemption.redeemed_at)
        clock.set(late.expires_at)
        assert CodeState.EXPIRED == portal.call(native.status, subject, late.code_id).state
        with pytest.raises(CodeExpired):
            portal.call(native.redeem, subject, PROVIDER, late.code, SERVICE)

    def test_tasks_redeem_a_code_once(
        self,
        async_storage: AsyncStorage,
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
        portal: Portal,
    ) -> None:
        """32 tasks on one loop redeem one code together, race_rounds times: one wins each time."""
        lost = LostCommits()
        counting = _AsyncCounting(async_storage, lost)
        issuer = AsyncCodeIssuer(counting, keyring=keyring, policy=policy, clock=clock)

        async def race(round_: int) -> tuple[Counter[type], CodeState, int]:
            subject = _citizen(round_)
            issued = await issuer.issue(subject, PROVIDER)
            redeem = partial(issuer.redeem, subject, PROVIDER, issued.code, SERVICE)
            outcomes = await _gathered([redeem] * THREADS)
            (record,) = (await async_storage.load(_filed(keyring, subject))).codes
            return _kinds(outcomes), record.state, record.failed_attempts

        expected = ({Redemption: 1, CodeAlreadyUsed: THREADS - 1}, CodeState.REDEEMED, 0)
        for round_ in range(self.race_rounds):
            assert expected == portal.call(race, round_)
        assert 0 < lost.count

    def test_tasks_retrying_one_request_get_one_receipt(
        self,
        async_storage: AsyncStorage,
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
        portal: Portal,
    ) -> None:
        """32 tasks retry one idempotent redemption together: one receipt, identical for all."""
        lost = LostCommits()
        counting = _AsyncCounting(async_storage, lost)
        signer = ReceiptSigner.generate()
        issuer = AsyncCodeIssuer(
            counting, keyring=keyring, policy=policy, clock=clock, signer=signer
        )

        async def race(round_: int) -> tuple[Counter[type], int, CodeState]:
            subject = _citizen(round_)
            issued = await issuer.issue(subject, PROVIDER)
            retry = partial(
                issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=f"r{round_}"
            )
            outcomes = await _gathered([retry] * THREADS)
            (record,) = (await async_storage.load(_filed(keyring, subject))).codes
            return _kinds(outcomes), len(set(outcomes)), record.state

        for round_ in range(max(1, self.race_rounds // 10)):
            assert ({Redemption: THREADS}, 1, CodeState.REDEEMED) == portal.call(race, round_)
        assert 0 < lost.count

    def test_tasks_guessing_wrong_lock_the_code_at_exactly_the_limit(
        self,
        async_storage: AsyncStorage,
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
        portal: Portal,
    ) -> None:
        """32 wrong guesses as tasks at once with a limit of 5: 5 attempts counted, code LOCKED."""
        policy = attrs.evolve(
            policy, max_failed_attempts=5, failure_budget=1000, accept_guess_risk=True
        )
        lost = LostCommits()
        counting = _AsyncCounting(async_storage, lost)
        issuer = AsyncCodeIssuer(counting, keyring=keyring, policy=policy, clock=clock)

        async def race(round_: int) -> tuple[Counter[type], CodeState, int, int]:
            subject = _citizen(round_)
            issued = await issuer.issue(subject, PROVIDER)
            wrong = _other_code(policy, issued.code)
            guess = partial(issuer.redeem, subject, PROVIDER, wrong, SERVICE)
            outcomes = await _gathered([guess] * THREADS)
            snapshot = await async_storage.load(_filed(keyring, subject))
            (record,) = snapshot.codes
            failures = snapshot.failure_log(PROVIDER).failures
            return _kinds(outcomes), record.state, record.failed_attempts, len(failures)

        expected = ({WrongCode: THREADS}, CodeState.LOCKED, 5, 5)
        for round_ in range(max(1, self.race_rounds // 20)):
            assert expected == portal.call(race, round_)
        assert 0 < lost.count
