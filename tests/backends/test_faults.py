"""Injected faults: whatever fails, no code is redeemed twice and no acknowledged redemption lost.

Three kinds of fault, on every backend that has them:

- Random faults from ``FaultyStorage`` (memory, SQLite, Redis, PostgreSQL): before or after any
  ``load``, ``commit`` or ``purge``, a ``ConnectionError``, ``OSError``, ``TimeoutError`` or
  ``StorageError``. The caller must get exactly a ``StorageError`` for each fault, and nothing
  else ever; afterwards every acknowledged redemption is stored, none can be repeated, and a
  redemption whose commit landed although its caller saw an error is answered, on a retry with
  the same request id, with that first redemption (not ``CodeAlreadyUsed``).
- Real connection kills (Redis ``CLIENT KILL``, PostgreSQL ``pg_terminate_backend``) of this
  test's own connections only (named by ``client_name`` / ``application_name``): between calls,
  between a ``load`` and its ``commit``, during a concurrent burst, and of a grown idle pool.
- Real dropped connections (``DroppingProxy``): a commit's request dropped before the server saw
  it, and a commit's answer dropped after the server applied it.

Set ``TELECARD_FAULT_SEED`` to replay another random run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs
import pytest
from tests.backends.conftest import UrlFactory
from tests.backends.faults import (
    OPERATIONS,
    DroppingProxy,
    Fault,
    FaultKind,
    FaultyStorage,
    HookedStorage,
    Position,
)
from tests.backends.workers import close_storage, subject_for

from telecard_auth import (
    CodeAlreadyUsed,
    CodeIssuer,
    CodeState,
    IssuedCode,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    PostgresStorage,
    ReceiptSigner,
    Redemption,
    RedisStorage,
    Storage,
    StorageError,
    Subject,
    storage_from_url,
)
from telecard_auth._core.requests import identity_of

T = TypeVar("T")

SEED = int(os.environ.get("TELECARD_FAULT_SEED", "20260301"))
#: The chance of a fault at each of the two points of each storage call.
RATE = 0.12
#: Subjects of the random-fault run, and the codes each is issued and redeems in turn.
SUBJECTS = 24
ROUNDS = 4
#: The most attempts a caller makes at one request before the test gives up on it.
ATTEMPTS = 40
PROVIDER = "stc"
SERVICE = "new_line"


def seeded(salt: str = "") -> random.Random:
    """The fault schedule's generator, from ``SEED`` and ``salt``."""
    return random.Random(f"{SEED}-{salt}")  # noqa: S311 - fault points, not secrets


def open_storage(url: str) -> Storage:
    """The storage at ``url``, migrated if it has a schema."""
    storage = storage_from_url(url)
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        migrate()
    return storage


@attrs.define
class Kit:
    """What every test here uses: the keyring, the clock, a receipt signer, and open storages."""

    keyring: Keyring
    clock: ManualClock
    #: Signs receipts, so that a replayed redemption is compared receipt and all.
    signer: ReceiptSigner
    opened: list[Storage] = attrs.Factory(list)

    def open(self, url: str) -> Storage:
        """The storage at ``url``, migrated; closed when the test ends."""
        storage = open_storage(url)
        self.opened.append(storage)
        return storage

    def issuer(self, storage: Storage, policy: Policy | None = None) -> CodeIssuer:
        """An issuer over ``storage`` with the kit's keyring, clock and signer."""
        return CodeIssuer(
            storage, keyring=self.keyring, clock=self.clock, policy=policy, signer=self.signer
        )


@pytest.fixture
def kit(keyring: Keyring, clock: ManualClock) -> Iterator[Kit]:
    """The kit; the storages opened through it are closed afterwards."""
    made = Kit(keyring=keyring, clock=clock, signer=ReceiptSigner.generate())
    yield made
    for storage in reversed(made.opened):
        close_storage(storage)


# --- the wrapper itself -----------------------------------------------------------------------


def test_the_faulty_storage_fails_before_or_after_and_records_each_fault(
    keyring: Keyring, clock: ManualClock
) -> None:
    """Before a commit nothing lands, after it the change has landed; each fault is recorded."""
    inner = MemoryStorage()
    subject = subject_for(0)
    ref = keyring.subject_ref(identity_of(subject))
    seen: Counter[tuple[Position, FaultKind]] = Counter()
    for kind in FaultKind:
        for position in Position:
            faulty = FaultyStorage(inner, seeded(), 1.0, kinds=[kind], positions=[position])
            issuer = CodeIssuer(faulty, keyring=keyring, clock=clock)
            version = inner.load(ref).version
            with pytest.raises(StorageError) as caught:
                issuer.issue(subject, PROVIDER)
            (fault,) = faulty.faults
            assert caught.value is fault.error or caught.value.__cause__ is fault.error
            assert isinstance(fault.error, StorageError) == (kind is FaultKind.STORAGE)
            assert (fault.operation, fault.position, fault.kind) == ("load", position, kind)
            assert (None if position is Position.BEFORE else inner.load(ref)) == fault.outcome
            assert version == inner.load(ref).version
            seen[position, kind] += 1

            commits_only = FaultyStorage(
                inner, seeded(), 1.0, positions=[position], operations=["commit"]
            )
            with pytest.raises(StorageError):
                CodeIssuer(commits_only, keyring=keyring, clock=clock).issue(subject, PROVIDER)
            (fault,) = commits_only.faults
            assert fault.change is not None
            landed = position is Position.AFTER
            assert landed == fault.applied
            assert version + landed == inner.load(ref).version
            if landed:
                assert fault.stored() <= {record.code_id for record in inner.load(ref).codes}
            clock.advance(hours=5)  # the codes issued so far expire: no live-code limit
    assert {(position, kind) for position in Position for kind in FaultKind} == set(seen)
    passing = FaultyStorage(inner, seeded(), 0.0)
    assert CodeIssuer(passing, keyring=keyring, clock=clock).issue(subject, PROVIDER)
    assert [] == passing.faults
    assert {"load": 1, "commit": 1} == passing.calls
    with pytest.raises(ValueError, match="probability"):
        FaultyStorage(inner, seeded(), 1.5)


# --- random faults on every backend -----------------------------------------------------------


@attrs.define
class Ledger:
    """What the callers were told, and what the faults did behind their backs."""

    issued: dict[str, tuple[Subject, IssuedCode]] = attrs.Factory(dict)
    request_ids: dict[str, str] = attrs.Factory(dict)
    acknowledged: dict[str, Redemption] = attrs.Factory(dict)
    #: Code ids whose redemption landed while its caller got a StorageError, and was retried.
    recovered: set[str] = attrs.Factory(set)
    errors: Counter[str] = attrs.Factory(Counter)
    calls: Counter[str] = attrs.Factory(Counter)


def attempt(faulty: FaultyStorage, call: Callable[[], T]) -> T | StorageError:
    """Call once: its result, or the ``StorageError`` it raised for the one fault injected.

    Any other exception fails the test, as does a ``StorageError`` that no injected fault explains
    or an injected fault that did not reach the caller.
    """
    before = len(faulty.faults)
    try:
        return_value = call()
    except StorageError as error:
        failure = error
    except Exception as error:
        raise AssertionError(f"{type(error).__name__} escaped instead of StorageError") from error
    else:
        assert before == len(faulty.faults), "an injected fault did not reach the caller"
        return return_value
    assert before + 1 == len(faulty.faults), f"StorageError with no fault injected: {failure!r}"
    fault = faulty.faults[-1]
    if fault.kind is FaultKind.STORAGE:
        assert failure is fault.error
    else:
        assert type(failure) is StorageError
        assert failure.__cause__ is fault.error
    return failure


def until_done(faulty: FaultyStorage, ledger: Ledger, verb: str, call: Callable[[], T]) -> T:
    """Call until it succeeds, as a caller retrying after each ``StorageError`` does."""
    for _ in range(ATTEMPTS):
        ledger.calls[verb] += 1
        outcome = attempt(faulty, call)
        if not isinstance(outcome, StorageError):
            return outcome
        ledger.errors[verb] += 1
    raise AssertionError(f"{verb} failed {ATTEMPTS} times in a row")


def redeemed_by_faults(faults: list[Fault]) -> dict[str, Fault]:
    """Each code id stored as redeemed by a commit that landed but was reported as failed."""
    found: dict[str, Fault] = {}
    for fault in faults:
        for code_id in fault.redeemed():
            found.setdefault(code_id, fault)
    return found


def drive(
    faulty: FaultyStorage, issuer: CodeIssuer, clean: CodeIssuer, clock: ManualClock
) -> Ledger:
    """Issue and redeem through the faulty storage, retrying each request until it succeeds."""
    ledger = Ledger()
    subjects = [subject_for(number) for number in range(SUBJECTS)]
    for round_number in range(ROUNDS):
        for index, subject in enumerate(subjects):
            clock.advance(seconds=1)
            issued = until_done(faulty, ledger, "issue", partial(issuer.issue, subject, PROVIDER))
            ledger.issued[issued.code_id] = (subject, issued)
            request_id = f"fault-{round_number}-{index}"
            ledger.request_ids[issued.code_id] = request_id
            redeem = partial(
                issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=request_id
            )
            redemption: Redemption | None = None
            for _ in range(ATTEMPTS):
                clock.advance(seconds=1)
                ledger.calls["redeem"] += 1
                outcome = attempt(faulty, redeem)
                if not isinstance(outcome, StorageError):
                    redemption = outcome
                    break
                ledger.errors["redeem"] += 1
                # Right after the failure: applied exactly when the commit landed before the fault.
                landed = issued.code_id in redeemed_by_faults(faulty.faults)
                state = clean.status(subject, issued.code_id).state
                assert (CodeState.REDEEMED if landed else CodeState.ACTIVE) is state
            assert redemption is not None, f"redeem failed {ATTEMPTS} times in a row"
            first = redeemed_by_faults(faulty.faults).get(issued.code_id)
            if first is not None:
                # The retry replays the redemption that landed, at its time: applied once.
                assert first.change is not None
                (record,) = [r for r in first.change.codes if r.code_id == issued.code_id]
                assert record.finished_at == redemption.redeemed_at < clock.now()
                ledger.recovered.add(issued.code_id)
            ledger.acknowledged[issued.code_id] = redemption
            ledger.calls["purge"] += 1
            if isinstance(attempt(faulty, issuer.purge), StorageError):
                ledger.errors["purge"] += 1
    return ledger


def check_nothing_lost_or_doubled(
    ledger: Ledger, faulty: FaultyStorage, clean: CodeIssuer, keyring: Keyring
) -> None:
    """Through a clean issuer: every acknowledged redemption stays, none is repeated."""
    inner = faulty.inner
    for code_id, redemption in ledger.acknowledged.items():
        subject, issued = ledger.issued[code_id]
        assert CodeState.REDEEMED is clean.status(subject, code_id).state
        request_id = ledger.request_ids[code_id]
        again = clean.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=request_id)
        assert redemption == again
        with pytest.raises(CodeAlreadyUsed):
            clean.redeem(subject, PROVIDER, issued.code, SERVICE)
        with pytest.raises(CodeAlreadyUsed):
            clean.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=request_id + "-x")
    # Stored: every acknowledged code, plus only codes of commits that landed behind a fault; and
    # redeemed: exactly the acknowledged redemptions, each at the time its caller was told.
    behind_faults = set().union(*(fault.stored() for fault in faulty.faults))
    refs = {keyring.subject_ref(identity_of(subject)) for subject, _ in ledger.issued.values()}
    stored = [record for ref in refs for record in inner.load(ref).codes]
    stored_ids = {record.code_id for record in stored}
    assert set(ledger.issued) <= stored_ids
    assert set() == stored_ids - set(ledger.issued) - behind_faults
    redeemed = {r.code_id: r for r in stored if r.state is CodeState.REDEEMED}
    assert set(ledger.acknowledged) == set(redeemed)
    for code_id, record in redeemed.items():
        assert ledger.acknowledged[code_id].redeemed_at == record.finished_at


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis", "postgres"])
def test_random_faults_lose_no_redemption_and_redeem_nothing_twice(
    backend: str,
    storage_url: UrlFactory,
    kit: Kit,
) -> None:
    """Every call succeeds or raises StorageError; then nothing is lost, nothing is doubled."""
    inner = kit.open(storage_url(backend))
    faulty = FaultyStorage(inner, seeded(backend), RATE)
    # Superseding: a code issued behind a fault (never handed out) cannot block the next.
    policy = Policy(on_live_code_limit="supersede")
    clean = kit.issuer(inner, policy)
    ledger = drive(faulty, kit.issuer(faulty, policy), clean, kit.clock)
    check_nothing_lost_or_doubled(ledger, faulty, clean, kit.keyring)

    census = faulty.census()
    # Shown with ``-rP``: what this run injected and survived.
    kinds = Counter(fault.kind.value for fault in faulty.faults)
    points = Counter(f"{fault.position.value} {fault.operation}" for fault in faulty.faults)
    print(f"faults {len(faulty.faults)}: {sorted(kinds.items())}, at {sorted(points.items())}")
    print(f"calls {dict(ledger.calls)}, StorageErrors {dict(ledger.errors)}")
    print(f"redemptions landed behind a fault, recovered by retry: {len(ledger.recovered)}")
    # Not vacuous: every kind struck, at both points, of every operation; and redemptions landed
    # behind a fault and were recovered by their retry.
    assert SUBJECTS * ROUNDS == len(ledger.acknowledged)
    assert set(FaultKind) == {kind for _, _, kind in census}
    assert {(o, p) for o in OPERATIONS for p in Position} == {(o, p) for o, p, _ in census}
    assert len(ledger.recovered) >= 3
    assert sum(ledger.errors.values()) == len(faulty.faults)


# --- real connection kills -------------------------------------------------------------------


@attrs.frozen
class Named:
    """A storage URL whose connections carry ``name``, and how to kill just those connections."""

    backend: str
    url: str
    #: The same storage without the name: an observer that the kills leave alone.
    plain_url: str
    name: str
    kill: Callable[[], int]


def kill_redis(admin_url: str, name: str) -> int:
    """``CLIENT KILL`` every connection named ``name``; how many were killed."""
    import redis

    client = redis.Redis.from_url(admin_url)
    try:
        clients: list[dict[str, Any]] = client.client_list()
        ids = [entry["id"] for entry in clients if entry.get("name") == name]
        return sum(int(client.client_kill_filter(_id=id_, skipme=True)) for id_ in ids)
    finally:
        client.close()


def kill_postgres(admin_url: str, name: str) -> int:
    """``pg_terminate_backend`` every connection named ``name``, waiting for each to end."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = %s",
            (name,),
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def named(backend: str, storage_url: UrlFactory, request: pytest.FixtureRequest) -> Named:
    """A fresh storage of ``backend`` whose connections this test alone can kill."""
    plain = storage_url(backend)
    options = dict(parse_qsl(urlsplit(plain).query))
    if backend == "redis":
        name = options["prefix"]
        admin: str = request.getfixturevalue("redis_url")
        return Named(
            backend, f"{plain}&client_name={name}", plain, name, partial(kill_redis, admin, name)
        )
    name = options["schema"]
    admin = request.getfixturevalue("postgres_url")
    return Named(
        backend,
        f"{plain}&application_name={name}",
        plain,
        name,
        partial(kill_postgres, admin, name),
    )


#: Kill cycles in the between-calls test: even ones between calls, odd ones within a call.
CYCLES = 6
#: The most calls a test makes after a kill, waiting for the storage to work again.
RECOVERY_LIMIT = 24


class SlowRecovery(AssertionError):
    """More than one call in a row failed after a kill: the storage did not recover promptly."""


def require_prompt_recovery(failed_in_a_row: list[int]) -> None:
    """After each kill, at most the call that met the dead connection failed; the next worked."""
    if any(failed > 1 for failed in failed_in_a_row):
        raise SlowRecovery(f"calls that failed in a row after each kill: {failed_in_a_row}")


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_a_killed_connection_costs_at_most_the_call_it_hit(
    backend: str,
    storage_url: UrlFactory,
    request: pytest.FixtureRequest,
    kit: Kit,
) -> None:
    """Kill between calls, or between a load and its commit: the call fails cleanly, the next works.

    The call that meets the dead connection either succeeds (the client reconnected) or raises
    StorageError having changed nothing; the retry that follows must succeed. Everything but that
    promptness is checked first, so only ``SlowRecovery`` can be the expected failure.
    """
    target = named(backend, storage_url, request)
    storage = kit.open(target.url)
    watcher = kit.issuer(kit.open(target.plain_url))
    kills: list[int] = []
    armed = threading.Event()

    def kill_before_commit(operation: str, position: Position) -> None:
        if armed.is_set() and (operation, position) == ("commit", Position.BEFORE):
            armed.clear()
            kills.append(target.kill())

    issuer = kit.issuer(HookedStorage(storage, kill_before_commit))
    subjects = [subject_for(number) for number in range(CYCLES)]
    codes = [issuer.issue(subject, PROVIDER) for subject in subjects]
    failed_in_a_row: list[int] = []
    for cycle, (subject, issued) in enumerate(zip(subjects, codes, strict=True)):
        kit.clock.advance(seconds=1)
        if cycle % 2:
            armed.set()  # within the call: after its load, before its commit
        else:
            kills.append(target.kill())  # between calls
        redeem = partial(
            issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=f"kill-{cycle}"
        )
        failed = 0
        redemption: Redemption | None = None
        while redemption is None:
            assert failed < RECOVERY_LIMIT, f"no recovery after {failed} failed calls"
            try:
                redemption = redeem()
            except StorageError:
                failed += 1
                # Nothing half-applied: the failed call left the code as it was.
                assert CodeState.ACTIVE is watcher.status(subject, issued.code_id).state
        failed_in_a_row.append(failed)
        assert not armed.is_set()
        assert CodeState.REDEEMED is watcher.status(subject, issued.code_id).state
        assert redemption == redeem()
        with pytest.raises(CodeAlreadyUsed):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
    print(f"calls failed in a row after each kill: {failed_in_a_row}")
    assert CYCLES == len(kills)
    assert all(killed >= 1 for killed in kills), kills
    require_prompt_recovery(failed_in_a_row)


#: The concurrent burst: threads, redemptions each, and how many each makes after the kill.
THREADS = 4
PER_THREAD = 20
AFTER_KILL = 6


@attrs.define
class Burst:
    """Threads redeeming their own codes, retrying each failure, and one kill in the middle."""

    issuer: CodeIssuer
    kill: Callable[[], int]
    work: list[list[tuple[Subject, IssuedCode]]]
    acknowledged: dict[str, tuple[Subject, IssuedCode, str, Redemption]] = attrs.Factory(dict)
    failures: Counter[str] = attrs.Factory(Counter)
    problems: list[BaseException] = attrs.Factory(list)
    kills: list[int] = attrs.Factory(list)
    #: How many redemptions were acknowledged when the kill was made.
    done_at_kill: int = -1
    lock: threading.Lock = attrs.Factory(threading.Lock)
    halfway: threading.Event = attrs.Factory(threading.Event)
    killed: threading.Event = attrs.Factory(threading.Event)

    def run(self) -> None:
        """All threads and the killer, to the end; a thread's failure is raised here."""
        threads = [threading.Thread(target=self.worker, args=(n,)) for n in range(len(self.work))]
        threads.append(threading.Thread(target=self.killer))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60.0)
        assert not any(thread.is_alive() for thread in threads)
        if self.problems:
            raise self.problems[0]

    def worker(self, number: int) -> None:
        """Redeem this thread's codes; the last ``AFTER_KILL`` of them only after the kill."""
        try:
            for index, (subject, issued) in enumerate(self.work[number]):
                if index == len(self.work[number]) - AFTER_KILL:
                    self.halfway.set()
                    assert self.killed.wait(30.0), "the kill never came"
                request_id = f"burst-{number}-{index}"
                redemption = self.redeem(subject, issued, request_id)
                with self.lock:
                    self.acknowledged[issued.code_id] = (subject, issued, request_id, redemption)
        except BaseException as error:  # raised again by run()
            self.problems.append(error)
            self.killed.set()

    def redeem(self, subject: Subject, issued: IssuedCode, request_id: str) -> Redemption:
        """Redeem, retrying with the same request id after each StorageError."""
        for _ in range(ATTEMPTS):
            try:
                return self.issuer.redeem(
                    subject, PROVIDER, issued.code, SERVICE, request_id=request_id
                )
            except StorageError as error:
                with self.lock:
                    self.failures[str(error.details.get("reason", "?"))[:60]] += 1
            time.sleep(0.002)
        raise AssertionError(f"{ATTEMPTS} failures in a row")

    def killer(self) -> None:
        """Once a thread is near its end, kill every connection while the others run on."""
        try:
            self.halfway.wait(30.0)
            with self.lock:
                self.done_at_kill = len(self.acknowledged)
            self.kills.append(self.kill())
        finally:
            self.killed.set()


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_a_kill_during_a_concurrent_burst_loses_nothing(
    backend: str,
    storage_url: UrlFactory,
    request: pytest.FixtureRequest,
    kit: Kit,
) -> None:
    """Threads redeem while every connection is killed; retries recover, nothing is lost."""
    target = named(backend, storage_url, request)
    issuer = kit.issuer(kit.open(target.url))
    watcher = kit.issuer(kit.open(target.plain_url))
    work = [
        [
            (subject, issuer.issue(subject, PROVIDER))
            for subject in (subject_for(t * PER_THREAD + i) for i in range(PER_THREAD))
        ]
        for t in range(THREADS)
    ]
    burst = Burst(issuer, target.kill, work)
    burst.run()
    print(f"killed {burst.kills}; StorageErrors during the burst: {dict(burst.failures)}")
    assert 1 == len(burst.kills)
    assert burst.kills[0] >= 1
    assert 0 < burst.done_at_kill < THREADS * PER_THREAD
    assert THREADS * PER_THREAD == len(burst.acknowledged)
    for code_id, (subject, issued, request_id, redemption) in burst.acknowledged.items():
        status = watcher.status(subject, code_id)
        assert CodeState.REDEEMED is status.state
        assert redemption.redeemed_at == status.finished_at
        assert redemption == watcher.redeem(
            subject, PROVIDER, issued.code, SERVICE, request_id=request_id
        )
        with pytest.raises(CodeAlreadyUsed):
            watcher.redeem(subject, PROVIDER, issued.code, SERVICE)


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_killing_a_grown_idle_pool_costs_at_most_one_call(
    backend: str,
    storage_url: UrlFactory,
    request: pytest.FixtureRequest,
    kit: Kit,
) -> None:
    """Every idle connection of a grown pool is killed: the next call, or the one after, works.

    A busy spell leaves a pool with several idle connections; a database restart or a failover
    ends them all at once, as the kill does here.
    """
    grown = 4
    target = named(backend, storage_url, request)
    storage = kit.open(target.url)
    issuer = kit.issuer(storage)
    subject = subject_for(0)
    issued = issuer.issue(subject, PROVIDER)
    if isinstance(storage, RedisStorage):
        pool = storage.client.connection_pool
        connections = [pool.get_connection() for _ in range(grown)]
        for connection in connections:
            pool.release(connection)
    else:
        assert isinstance(storage, PostgresStorage)
        with (
            storage.pool.connection(),
            storage.pool.connection(),
            storage.pool.connection(),
            storage.pool.connection(),
        ):
            pass
    assert grown <= target.kill()
    failed = 0
    while True:
        assert failed < RECOVERY_LIMIT, f"no recovery after {failed} failed calls"
        try:
            status = issuer.status(subject, issued.code_id)
        except StorageError:
            failed += 1
            continue
        break
    assert CodeState.ACTIVE is status.state
    print(f"calls failed in a row after the kill: {failed}")
    require_prompt_recovery([failed])


# --- real dropped connections ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_a_dropped_commit_surfaces_as_storage_error_and_its_retry_recovers(
    backend: str, storage_url: UrlFactory, kit: Kit
) -> None:
    """A commit's request dropped unsent, or its answer dropped after it was applied.

    Either way the caller gets StorageError. Unsent, nothing changed and the retry redeems; applied,
    the code is redeemed, no other request can redeem it again, and the retry with the same request
    id returns that very redemption, at the time of the failed call.
    """
    url = storage_url(backend)
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with DroppingProxy((parts.hostname, parts.port)) as proxy:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
        issuer = kit.issuer(kit.open(parts._replace(netloc=netloc).geturl()))
        watcher = kit.issuer(kit.open(url))
        subject = subject_for(0)
        for position in Position:
            issued = issuer.issue(subject, PROVIDER)
            request_id = f"drop-{position.value}"
            redeem = partial(
                issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=request_id
            )
            failed_at = kit.clock.advance(seconds=1)
            proxy.arm(issued.code_id.encode(), position)
            with pytest.raises(StorageError):
                redeem()
            assert not proxy.armed
            assert 1 == proxy.drops[position]
            applied = position is Position.AFTER
            state = watcher.status(subject, issued.code_id).state
            assert (CodeState.REDEEMED if applied else CodeState.ACTIVE) is state
            if applied:
                with pytest.raises(CodeAlreadyUsed):
                    watcher.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="another")
            retried_at = kit.clock.advance(seconds=1)
            retried = redeem()  # the next call, on a new connection
            assert (failed_at if applied else retried_at) == retried.redeemed_at
            assert CodeState.REDEEMED is watcher.status(subject, issued.code_id).state
            assert retried == redeem()
            with pytest.raises(CodeAlreadyUsed):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE)


@pytest.mark.parametrize("client", ["url", "client"])
def test_a_dropped_redis_answer_is_never_answered_as_already_used(
    client: str, storage_url: UrlFactory, kit: Kit
) -> None:
    """A redemption without request id whose answer is dropped: StorageError, never a refusal.

    ``RedisStorage`` takes a URL or a ``redis.Redis``. Built from a URL (redis-py's pool from
    ``from_url`` does not retry), the dropped answer surfaces as StorageError. Built directly,
    redis-py's default ``Retry`` would re-send the script on a new connection, where it fails its
    compare-and-set on its own write; the storage sends a commit once, outside those retries.
    """
    import redis

    url = storage_url("redis")
    parts = urlsplit(url)
    prefix = dict(parse_qsl(parts.query))["prefix"]
    assert parts.hostname is not None
    assert parts.port is not None
    with DroppingProxy((parts.hostname, parts.port)) as proxy:
        if client == "url":
            storage = kit.open(parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl())
        else:
            direct = RedisStorage(redis.Redis(host="127.0.0.1", port=proxy.port), prefix=prefix)
            kit.opened.append(direct)
            direct.migrate()
            storage = direct
        issuer = kit.issuer(storage)
        watcher = kit.issuer(kit.open(url))
        subject = subject_for(0)
        issued = issuer.issue(subject, PROVIDER)
        proxy.arm(issued.code_id.encode(), Position.AFTER)
        try:
            redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        except StorageError:
            pass  # what the caller must get when it cannot know
        else:
            # Also right: the call made the redemption and says so.
            assert issued.code_id == redemption.code_id
        assert 1 == proxy.drops[Position.AFTER]
        assert CodeState.REDEEMED is watcher.status(subject, issued.code_id).state
