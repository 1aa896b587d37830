"""Storage benchmark: what the library costs on top of each backend's raw driver.

For every backend it times, side by side and interleaved round by round:

- **library**: issue + redeem pairs through ``CodeIssuer`` (default ``Policy``, ``ManualClock``);
- **floor**: the raw driver sending the very same statements (SQL) or commands (Redis) that the
  library sends for one pair, with pre-built parameters and pre-encoded state documents; for the
  memory backend, the dict and lock work plus the two HMAC-SHA256 and the ``secrets`` draw.

A third side, **adapter**, calls the backend's ``load`` and ``commit`` with the core's commits
built beforehand: it splits the gap between the storage adapter and the rules.

The ratio library / floor is what the library adds. Each figure is the median of several rounds;
the ratio is the median of the per-round ratios, each taken from a library round and a floor round
run back to back, so that the noise of a shared machine hits both alike.

In the same rotation, for the new-subject variant, it times the asyncio shell: issue + redeem pairs
through ``AsyncCodeIssuer`` on one event loop, with 1 task and with 64 concurrent tasks (each task
on fresh subjects of its own), over one async storage per backend with its own pool, connections or
worker threads (for PostgreSQL, also with a larger pool: ``--postgres-pool``). Each async figure
stands next to the sync single-connection library figure of the same rounds; for Redis and
PostgreSQL the raw asyncio driver with 64 tasks is timed too, as the async floor. The CPU time the
process spends per pair shows whether the event loop (one core at most) is what limits the run.

It also times redemption alone on SQLite and PostgreSQL with a small and a large table already
stored (1,000 and 1,000,000 subjects; ``--quick``: 100,000), to show whether a redemption slows
down as the table grows.

Usage: ``python benchmarks/storage.py [--quick] [--json out.json] [--profile]``. Servers come from
``TELECARD_TEST_POSTGRES_URL`` and ``TELECARD_TEST_REDIS_URL`` (defaults: the local ones on
127.0.0.1); a backend whose server does not answer is skipped with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import hashlib
import hmac
import json
import math
import os
import platform
import pstats
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    AsyncStorage,
    CodeIssuer,
    Commit,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    Storage,
    Subject,
    WrongCode,
    luhn_valid,
)
from telecard_auth._storage.codec import encode_state, micros
from telecard_auth._storage.sqlite import (
    _INSERT,
    _LOAD,
    _UPDATE,
    _UPDATE_STATE,
    AsyncSQLiteStorage,
    SQLiteStorage,
)

POSTGRES_URL = os.environ.get("TELECARD_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TELECARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BACKENDS = ("memory", "sqlite-full", "sqlite-normal", "redis", "postgres")
VARIANTS = ("new-subject", "returning-subject")
PROVIDER = "stc"
SERVICE = "new_line"
#: A ratio above this gets a cProfile breakdown when ``--profile`` is given.
PROFILE_THRESHOLD = 1.5
#: Moving the clock this far between scale rounds drops the previous round's records.
SCALE_CLOCK_STEP_HOURS = 29
_SEP = b"\x1f"
#: Concurrent tasks on the one event loop in the concurrent async rounds.
TASKS = 64
#: The target for Redis and PostgreSQL: async with ``TASKS`` tasks at this many times sync.
ASYNC_TARGET = 3.0
ASYNC_TARGET_BACKENDS = ("redis", "postgres")
#: ``AsyncPostgresStorage``'s default pool size, and the larger one measured beside it.
POSTGRES_DEFAULT_POOL = 16
POSTGRES_LARGER_POOL = 32
#: How long the warm-up may take to grow a connection pool to its full size.
POOL_WARM_SECONDS = 5.0

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure."""

    rounds: int
    round_seconds: float
    min_pairs: int
    max_pairs: int
    scale_small: int
    scale_large: int
    scale_rounds: int
    scale_batch: int
    #: The least each task does in a concurrent async round.
    min_pairs_per_task: int


FULL = Settings(
    rounds=9,
    round_seconds=0.6,
    min_pairs=20,
    max_pairs=20_000,
    scale_small=1_000,
    scale_large=1_000_000,
    scale_rounds=11,
    scale_batch=400,
    min_pairs_per_task=8,
)
QUICK = Settings(
    rounds=3,
    round_seconds=0.08,
    min_pairs=5,
    max_pairs=2_000,
    scale_small=1_000,
    scale_large=100_000,
    scale_rounds=3,
    scale_batch=100,
    min_pairs_per_task=2,
)


# --- inputs -----------------------------------------------------------------------------------


class Citizens:
    """Fresh, valid, never repeated citizens: ``1`` + 8 digits + a Luhn check digit."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, count: int) -> list[Subject]:
        """``count`` citizens nobody has used yet in this run."""
        subjects = []
        for _ in range(count):
            body = f"1{self._next:08d}"
            self._next += 1
            check = next(d for d in "0123456789" if luhn_valid(body + d))
            subjects.append(Subject.citizen(body + check))
        return subjects


def fresh_refs(count: int) -> list[str]:
    """Random subject pseudonyms in the library's format (128 bits, hex)."""
    return [secrets.token_hex(16) for _ in range(count)]


class _Recorder(MemoryStorage):
    """A memory storage that keeps every commit, to capture the documents the library writes."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[Commit] = []

    def commit(self, change: Commit) -> bool:
        self.commits.append(change)
        return super().commit(change)


@dataclass(frozen=True)
class Write:
    """One commit the library makes, pre-encoded for each backend's floor."""

    document: str
    keep_until: datetime
    keep_micros: int
    keep_ms: int
    #: The commit leaves keep_until as stored, so the SQL backends send their shorter UPDATE.
    keeps_stored: bool
    #: The subject's incarnation, half of the compare-and-set token (with the version).
    incarnation: str

    @classmethod
    def of(cls, change: Commit) -> Write:
        """The document and expiry forms of ``change``, computed as the backends compute them."""
        seconds = (change.keep_until - change.written_at).total_seconds()
        return cls(
            document=encode_state(change),
            keep_until=change.keep_until,
            keep_micros=micros(change.keep_until),
            keep_ms=max(1, math.ceil(seconds * 1000)),
            keeps_stored=change.keep_until == change.stored_keep_until,
            incarnation=change.incarnation,
        )


@dataclass(frozen=True)
class Documents:
    """The four writes of a new subject's pair, then of the same subject coming back."""

    new_issue: Write
    new_redeem: Write
    returning_issue: Write
    returning_redeem: Write
    #: The same four, as the ``Commit`` objects the core handed to storage.
    commits: tuple[Commit, ...]


def capture_documents(keyring: Keyring, citizens: Citizens) -> Documents:
    """Run the library once on a recording storage and keep the documents it writes."""
    recorder = _Recorder()
    issuer = CodeIssuer(recorder, keyring=keyring, policy=Policy(), clock=ManualClock())
    (subject,) = citizens.take(1)
    for _ in range(2):
        issued = issuer.issue(subject, PROVIDER)
        issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
    new_issue, new_redeem, returning_issue, returning_redeem = recorder.commits
    return Documents(
        new_issue=Write.of(new_issue),
        new_redeem=Write.of(new_redeem),
        returning_issue=Write.of(returning_issue),
        returning_redeem=Write.of(returning_redeem),
        commits=tuple(recorder.commits),
    )


def filler_states(keyring: Keyring, citizens: Citizens, count: int) -> list[tuple[int, Write]]:
    """``count`` realistic stored states (version, write), made by the library and its codec.

    A mix of what a table holds: a code just issued, a code used, a code used after a wrong
    attempt (so a failure log is kept), and a subject who came back for a second code.
    """
    recorder = _Recorder()
    clock = ManualClock()
    issuer = CodeIssuer(recorder, keyring=keyring, policy=Policy(), clock=clock)
    states: list[tuple[int, Write]] = []
    for index, subject in enumerate(citizens.take(count)):
        issued = issuer.issue(subject, PROVIDER, service=SERVICE if index % 3 else None)
        scenario = index % 4
        if scenario >= 1:
            if scenario == 2:  # noqa: PLR2004 - the scenarios are numbered
                wrong = "00000000" if issued.code != "00000000" else "11111111"
                try:
                    issuer.redeem(subject, PROVIDER, wrong, SERVICE)
                except WrongCode:
                    clock.advance(seconds=1)
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        if scenario == 3:  # noqa: PLR2004 - the scenarios are numbered
            issuer.issue(subject, PROVIDER)
        snapshot = recorder.load(recorder.commits[-1].subject_ref)
        states.append((snapshot.version, Write.of(recorder.commits[-1])))
        clock.advance(seconds=7)
    return states


# --- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What one timed stretch cost: wall and process CPU seconds, and how busy the machine was."""

    wall: float
    #: CPU seconds of this process, all its threads.
    cpu: float
    #: The share of all the machine's CPUs busy meanwhile, every process counted (Linux only).
    busy: float | None


def _jiffies() -> tuple[int, int] | None:
    """Busy and total CPU ticks of the whole machine since boot, from ``/proc/stat``, or None."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
        ticks = [int(value) for value in first.split()[1:9]]
    except (OSError, ValueError):
        return None
    total = sum(ticks)  # user nice system idle iowait irq softirq steal
    return total - ticks[3] - ticks[4], total


class Stopwatch:
    """Starts when made; ``stop`` gives the ``Sample`` of the stretch since."""

    def __init__(self) -> None:
        self._ticks = _jiffies()
        self._cpu = time.process_time()
        self._start = time.perf_counter()

    def stop(self) -> Sample:
        """The wall and CPU time since the start, and the machine's busy share."""
        wall = time.perf_counter() - self._start
        cpu = time.process_time() - self._cpu
        ticks, busy = _jiffies(), None
        if self._ticks is not None and ticks is not None and ticks[1] > self._ticks[1]:
            busy = (ticks[0] - self._ticks[0]) / (ticks[1] - self._ticks[1])
        return Sample(wall, cpu, busy)


# --- the two sides of a round -----------------------------------------------------------------


def pair(issuer: CodeIssuer, subject: Subject) -> None:
    """One issue and its redemption, through the library."""
    issued = issuer.issue(subject, PROVIDER)
    issuer.redeem(subject, PROVIDER, issued.code, SERVICE)


def library_round(
    issuer: CodeIssuer,
    citizens: Citizens,
    count: int,
    *,
    returning: bool,
    samples: list[Sample] | None = None,
) -> float:
    """Seconds for ``count`` pairs through the library, each for a subject of its own.

    With ``samples``, the ``Sample`` of the timed part (CPU time, machine load) is added to it.
    """
    subjects = citizens.take(count)
    if returning:
        for subject in subjects:
            pair(issuer, subject)
    gc.collect()
    stopwatch = Stopwatch()
    for subject in subjects:
        pair(issuer, subject)
    sample = stopwatch.stop()
    if samples is not None:
        samples.append(sample)
    return sample.wall


def adapter_round(storage: Storage, documents: Documents, count: int, *, returning: bool) -> float:
    """Seconds for ``count`` pairs' worth of ``load`` and ``commit`` calls, without the core.

    The commits are the core's own, built beforehand for each subject: what is timed is the
    backend adapter (encoding, decoding, connection handling) on top of the driver.
    """
    refs = fresh_refs(count)
    first, second, third, fourth = documents.commits
    if returning:
        for ref in refs:
            storage.commit(attrs.evolve(first, subject_ref=ref))
            storage.commit(attrs.evolve(second, subject_ref=ref))
        first, second = third, fourth
    steps = [
        (ref, attrs.evolve(first, subject_ref=ref), attrs.evolve(second, subject_ref=ref))
        for ref in refs
    ]
    load, commit = storage.load, storage.commit
    gc.collect()
    start = time.perf_counter()
    for ref, issue, redeem in steps:
        load(ref)
        if not commit(issue):
            raise FloorFailed(ref)
        load(ref)
        if not commit(redeem):
            raise FloorFailed(ref)
    return time.perf_counter() - start


class Floor:
    """The raw driver work behind one library pair. Subclasses fill in ``seed`` and ``run``."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def seed(self, refs: list[str]) -> None:
        """Store ``refs`` as subjects that have used one code already (version 2)."""
        raise NotImplementedError

    def run(self, refs: list[str], *, returning: bool) -> float:
        """Seconds for the statements of one pair for each subject in ``refs``.

        Parameters are built before the clock starts; only the driver calls are timed.
        """
        raise NotImplementedError

    def writes(self, *, returning: bool) -> tuple[Write, Write, int]:
        """The issue and redeem writes of a pair, and the version the subject starts at."""
        docs = self.documents
        if returning:
            return docs.returning_issue, docs.returning_redeem, 2
        return docs.new_issue, docs.new_redeem, 0

    def timed_round(self, count: int, *, returning: bool) -> float:
        """Seconds for ``count`` pairs' worth of raw driver work, each for a subject of its own."""
        refs = fresh_refs(count)
        if returning:
            self.seed(refs)
        gc.collect()
        return self.run(refs, returning=returning)

    def close(self) -> None:
        """Release whatever the floor opened."""


class FloorFailed(RuntimeError):
    """A floor statement did not do what the library's would have done."""


class MemoryFloor(Floor):
    """A dict under a lock, two HMAC-SHA256 and one ``secrets`` draw per pair."""

    def __init__(self, documents: Documents, keyring: Keyring) -> None:
        super().__init__(documents)
        self.secret = keyring.current.secret
        self.store: dict[str, tuple[int, bytes]] = {}
        self.lock = threading.Lock()

    def seed(self, refs: list[str]) -> None:
        with self.lock:
            for ref in refs:
                self.store[ref] = (2, b"")

    def _set(self, ref: str, expected: int, digest: bytes) -> None:
        with self.lock:
            current = self.store.get(ref)
            if (0 if current is None else current[0]) != expected:
                raise FloorFailed(ref)
            self.store[ref] = (expected + 1, digest)

    def run(self, refs: list[str], *, returning: bool) -> float:
        secret, store, lock = self.secret, self.store, self.lock
        provider = PROVIDER.encode()
        start = time.perf_counter()
        for ref in refs:
            code = f"{secrets.randbelow(100_000_000):08d}"
            with lock:
                entry = store.get(ref)
            version = 0 if entry is None else entry[0]
            message = _SEP.join((b"code", ref.encode(), provider, code.encode()))
            self._set(ref, version, hmac.digest(secret, message, hashlib.sha256))
            with lock:
                stored = store[ref]
            if not hmac.compare_digest(hmac.digest(secret, message, hashlib.sha256), stored[1]):
                raise FloorFailed(ref)
            self._set(ref, stored[0], stored[1])
        return time.perf_counter() - start


class SQLiteFloor(Floor):
    """``sqlite3`` on the same file: SELECT, INSERT (or UPDATE), SELECT, UPDATE."""

    def __init__(self, documents: Documents, path: str, synchronous: str) -> None:
        super().__init__(documents)
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self.connection.execute("PRAGMA busy_timeout = 30000")

    def seed(self, refs: list[str]) -> None:
        write = self.documents.new_redeem
        rows = [(ref, write.incarnation, write.keep_micros, write.document) for ref in refs]
        self.connection.execute("BEGIN")
        self.connection.executemany(
            "INSERT INTO telecard_subjects (subject_ref, version, incarnation, keep_until, state)"
            " VALUES (?, 2, ?, ?, ?)",
            rows,
        )
        self.connection.execute("COMMIT")

    def run(self, refs: list[str], *, returning: bool) -> float:
        issue, redeem, base = self.writes(returning=returning)
        # The very statements the library sends: the shorter UPDATE where keep_until stays.
        first = (_UPDATE_STATE if issue.keeps_stored else _UPDATE) if returning else _INSERT
        second = _UPDATE_STATE if redeem.keeps_stored else _UPDATE

        def update_parameters(write: Write, ref: str, version: int) -> tuple[Any, ...]:
            token = (ref, version, write.incarnation)
            if write.keeps_stored:
                return (write.document, *token)
            return (write.keep_micros, write.document, *token)

        steps = [
            (
                (ref,),
                update_parameters(issue, ref, base)
                if returning
                else (ref, issue.incarnation, issue.keep_micros, issue.document),
                update_parameters(redeem, ref, base + 1),
            )
            for ref in refs
        ]
        execute = self.connection.execute
        start = time.perf_counter()
        for load, write, update in steps:
            execute(_LOAD, load).fetchone()
            if execute(first, write).rowcount != 1:
                raise FloorFailed(load[0])
            execute(_LOAD, load).fetchone()
            if execute(second, update).rowcount != 1:
                raise FloorFailed(load[0])
        return time.perf_counter() - start

    def close(self) -> None:
        self.connection.close()


# --- the asyncio sides ------------------------------------------------------------------------


@dataclass(frozen=True)
class AsyncFloor:
    """The raw asyncio driver work behind one pair: ``prepare`` (untimed), then ``pair``."""

    prepare: Callable[[str], Any]
    pair: Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class AsyncSetup:
    """One async storage over the backend's data, and what the output says about it."""

    storage: AsyncStorage
    #: Short, for the table: how the storage reaches its backend.
    connections: str
    #: The whole setting, for the output and the JSON file.
    setting: str
    close: Callable[[], Coroutine[Any, Any, None]]
    floor: AsyncFloor | None = None
    pool_max_size: int | None = None
    pool_size: Callable[[], int] | None = None


async def _nothing() -> None:
    """Nothing to close."""


async def async_pair(issuer: AsyncCodeIssuer, subject: Subject) -> None:
    """One issue and its redemption, through the asyncio shell."""
    issued = await issuer.issue(subject, PROVIDER)
    await issuer.redeem(subject, PROVIDER, issued.code, SERVICE)


async def _concurrently(
    tasks: int,
    work: Callable[[T], Awaitable[None]],
    items: Sequence[T],
    profiler: cProfile.Profile | None = None,
) -> Sample:
    """The cost of ``items`` dealt out to ``tasks`` tasks, each working through its share."""

    async def worker(share: Sequence[T]) -> None:
        for item in share:
            await work(item)

    shares = [items[index::tasks] for index in range(tasks)]
    if profiler is not None:
        profiler.enable()
    stopwatch = Stopwatch()
    await asyncio.gather(*(worker(share) for share in shares))
    sample = stopwatch.stop()
    if profiler is not None:
        profiler.disable()
    return sample


@dataclass
class AsyncSide:
    """One series of async rounds: the library (or, ``raw``, the driver) with ``tasks`` tasks."""

    setup: AsyncSetup
    issuer: AsyncCodeIssuer
    tasks: int
    raw: bool = False
    count: int = 0
    samples: list[Sample] = field(default_factory=list)

    def timed(
        self,
        runner: asyncio.Runner,
        citizens: Citizens,
        count: int,
        profiler: cProfile.Profile | None = None,
    ) -> Sample:
        """The cost of ``count`` pairs, each on a fresh subject."""
        if self.raw:
            floor = self.setup.floor
            if floor is None:
                raise ValueError("this setup has no async floor")
            steps = [floor.prepare(ref) for ref in fresh_refs(count)]
            gc.collect()
            return runner.run(_concurrently(self.tasks, floor.pair, steps, profiler))
        issuer = self.issuer

        async def work(subject: Subject) -> None:
            await async_pair(issuer, subject)

        subjects = citizens.take(count)
        gc.collect()
        return runner.run(_concurrently(self.tasks, work, subjects, profiler))

    def timed_round(self, runner: asyncio.Runner, citizens: Citizens) -> float:
        """One measured round of ``count`` pairs; keeps its ``Sample``."""
        sample = self.timed(runner, citizens, self.count)
        self.samples.append(sample)
        return sample.wall


@dataclass
class AsyncGroup:
    """The async sides over one setup: 1 task, ``TASKS`` tasks and, if any, the raw driver."""

    setup: AsyncSetup
    one: AsyncSide
    many: AsyncSide
    raw: AsyncSide | None

    @classmethod
    def of(cls, setup: AsyncSetup, keyring: Keyring) -> AsyncGroup:
        """The sides over ``setup``, sharing one ``AsyncCodeIssuer``."""
        issuer = AsyncCodeIssuer(
            setup.storage, keyring=keyring, policy=Policy(), clock=ManualClock()
        )
        raw = None if setup.floor is None else AsyncSide(setup, issuer, TASKS, raw=True)
        return cls(setup, AsyncSide(setup, issuer, 1), AsyncSide(setup, issuer, TASKS), raw)

    def sides(self) -> list[AsyncSide]:
        """The sides in measuring order."""
        return [self.one, self.many] + ([] if self.raw is None else [self.raw])


# --- backends ---------------------------------------------------------------------------------


@dataclass
class Result:
    """One backend and variant, measured."""

    backend: str
    variant: str
    pairs_per_round: int
    rounds: int
    library_ops_per_s: float
    floor_ops_per_s: float
    ratio: float
    ratio_min: float
    ratio_max: float
    adapter_ops_per_s: float
    adapter_ratio: float
    profile: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Backend:
    """A library storage and the matching floor, with what it takes to tear both down."""

    name: str
    storage: Storage
    floor: Floor
    cleanup: Callable[[], None]
    #: Each opens (inside the event loop) one async storage over the same data.
    async_setups: list[Callable[[], Coroutine[Any, Any, AsyncSetup]]] = field(default_factory=list)


class Unavailable(Exception):
    """A server did not answer: the backend is skipped."""


def _sqlite_backend(name: str, synchronous: str, folder: Path, documents: Documents) -> Backend:
    path = str(folder / f"{name}.db")
    storage = SQLiteStorage(path, synchronous="full" if synchronous == "full" else "normal")
    storage.migrate()
    floor = SQLiteFloor(documents, path, synchronous)

    def cleanup() -> None:
        floor.close()
        storage.close()

    async def open_async() -> AsyncSetup:
        store = AsyncSQLiteStorage(path, synchronous="full" if synchronous == "full" else "normal")
        return AsyncSetup(
            storage=store,
            connections="1 thread",
            setting="AsyncSQLiteStorage: the storage's own worker thread (one connection),"
            " the same file",
            close=store.close,
        )

    return Backend(name, storage, floor, cleanup, [open_async])


def _memory_backend(name: str, documents: Documents, keyring: Keyring) -> Backend:
    async def open_async() -> AsyncSetup:
        return AsyncSetup(
            storage=AsyncMemoryStorage(),
            connections="in-process",
            setting="AsyncMemoryStorage: no I/O, so its tasks never wait for one another",
            close=_nothing,
        )

    floor = MemoryFloor(documents, keyring)
    return Backend(name, MemoryStorage(), floor, lambda: None, [open_async])


#: The commit script's ARGV: expected version, incarnation, document, keep_until (µs), expiry (ms).
RedisArgs = tuple[str, str, str, int, int]
#: The fields ``RedisStorage.load`` reads.
REDIS_FIELDS = ["v", "d", "k", "i"]


def _redis_script_args(storage: Any, documents: Documents) -> Callable[[int, Write], RedisArgs]:
    """How the Redis floor builds the commit script's ARGV, checked against ``storage``'s own."""
    grace_ms = math.ceil(storage.expiry_grace / timedelta(milliseconds=1))

    def script_args(version: int, write: Write) -> RedisArgs:
        return (
            str(version),
            write.incarnation,
            write.document,
            write.keep_micros,
            write.keep_ms + grace_ms,
        )

    # The floor sends what the library sends: the library's arguments for the same commits.
    writes = (
        documents.new_issue,
        documents.new_redeem,
        documents.returning_issue,
        documents.returning_redeem,
    )
    for change, write in zip(documents.commits, writes, strict=True):
        library = [str(argument) for argument in storage._arguments(change)]
        floor = [str(argument) for argument in script_args(change.expected_version, write)]
        if library != floor:
            raise FloorFailed(f"the floor's script arguments {floor} are not {library}")
    return script_args


def _redis_backend(name: str, documents: Documents) -> Backend:
    import redis  # noqa: PLC0415 - the client library is needed only for this backend

    from telecard_auth._storage.redis import COMMIT_SCRIPT, RedisStorage  # noqa: PLC0415

    probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        probe.ping()
    except redis.RedisError as error:
        raise Unavailable(f"Redis at {REDIS_URL}: {error}") from error
    finally:
        probe.close()
    prefix = "bench" + uuid.uuid4().hex[:12]
    storage = RedisStorage(redis.Redis.from_url(REDIS_URL), prefix=prefix)
    storage.migrate()
    client = redis.Redis.from_url(REDIS_URL)
    sha = str(client.script_load(COMMIT_SCRIPT))
    script_args = _redis_script_args(storage, documents)

    class RedisFloor(Floor):
        """redis-py: HMGET, EVALSHA, HMGET, EVALSHA."""

        def seed(self, refs: list[str]) -> None:
            # What the commit script leaves behind for the pair's second write.
            _, incarnation, document, keep_until, expiry_ms = script_args(
                1, self.documents.new_redeem
            )
            with client.pipeline(transaction=False) as pipe:
                for ref in refs:
                    key = storage.key(ref)
                    pipe.hset(
                        key, mapping={"v": "2", "i": incarnation, "d": document, "k": keep_until}
                    )
                    pipe.pexpire(key, expiry_ms)
                pipe.execute()

        def run(self, refs: list[str], *, returning: bool) -> float:
            issue, redeem, base = self.writes(returning=returning)
            steps = [
                (storage.key(ref), script_args(base, issue), script_args(base + 1, redeem))
                for ref in refs
            ]
            hmget, evalsha = client.hmget, client.evalsha
            start = time.perf_counter()
            for key, first, second in steps:
                hmget(key, REDIS_FIELDS)
                if evalsha(sha, 1, key, *first) != 1:
                    raise FloorFailed(key)
                hmget(key, REDIS_FIELDS)
                if evalsha(sha, 1, key, *second) != 1:
                    raise FloorFailed(key)
            return time.perf_counter() - start

        def close(self) -> None:
            client.close()

    def cleanup() -> None:
        floor.close()
        storage.close()
        sweeper = redis.Redis.from_url(REDIS_URL)
        try:
            batch: list[bytes] = []
            for key in sweeper.scan_iter(match=f"{prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:  # noqa: PLR2004 - a batch size
                    sweeper.delete(*batch)
                    batch = []
            if batch:
                sweeper.delete(*batch)
        finally:
            sweeper.close()

    async def open_async() -> AsyncSetup:
        import redis.asyncio  # noqa: PLC0415 - the client library is needed only for this backend

        from telecard_auth._storage.redis import AsyncRedisStorage  # noqa: PLC0415

        async_client = redis.asyncio.Redis.from_url(REDIS_URL)
        store = AsyncRedisStorage(async_client, prefix=prefix)
        await store.migrate()
        async_sha = str(await async_client.script_load(COMMIT_SCRIPT))
        issue, redeem = documents.new_issue, documents.new_redeem

        def prepare(ref: str) -> tuple[str, RedisArgs, RedisArgs]:
            return store.key(ref), script_args(0, issue), script_args(1, redeem)

        async def raw_pair(step: tuple[str, RedisArgs, RedisArgs]) -> None:
            key, first, second = step
            await async_client.hmget(key, REDIS_FIELDS)
            if await async_client.evalsha(async_sha, 1, key, *first) != 1:
                raise FloorFailed(key)
            await async_client.hmget(key, REDIS_FIELDS)
            if await async_client.evalsha(async_sha, 1, key, *second) != 1:
                raise FloorFailed(key)

        return AsyncSetup(
            storage=store,
            connections=f"<={TASKS} conns",
            setting="AsyncRedisStorage over one redis.asyncio client, whose pool opens a"
            f" connection per concurrent command (up to {TASKS}); the same key prefix",
            close=store.close,
            floor=AsyncFloor(prepare, raw_pair),
        )

    floor = RedisFloor(documents)
    return Backend(name, storage, floor, cleanup, [open_async])


def _postgres_schema(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL schema and the function that drops it."""
    import psycopg  # noqa: PLC0415 - the client library is needed only for this backend
    from psycopg import sql  # noqa: PLC0415

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        raise Unavailable(f"PostgreSQL at {url}: {error}") from error
    schema = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )

    return schema, drop


def _postgres_async(
    schema: str, documents: Documents, max_size: int
) -> Callable[[], Coroutine[Any, Any, AsyncSetup]]:
    """An ``AsyncPostgresStorage`` on ``schema`` with a pool of ``max_size``, and its floor."""
    from telecard_auth._storage.postgres import AsyncPostgresStorage  # noqa: PLC0415

    async def open_async() -> AsyncSetup:
        store = AsyncPostgresStorage(POSTGRES_URL, schema=schema, max_size=max_size)
        await store.load(fresh_refs(1)[0])  # opens the pool
        pool = store.pool
        issue, redeem = documents.new_issue, documents.new_redeem
        # The very statements the library sends: the shorter UPDATE where keep_until stays.
        load, insert, update = (
            store._statements[key]
            for key in ("_load", "_insert", "_update_state" if redeem.keeps_stored else "_update")
        )

        def prepare(ref: str) -> tuple[tuple[str], tuple[Any, ...], tuple[Any, ...]]:
            token = (ref, 1, redeem.incarnation)
            second: tuple[Any, ...] = (
                (redeem.document, *token)
                if redeem.keeps_stored
                else (redeem.keep_until, redeem.document, *token)
            )
            return ((ref,), (ref, issue.incarnation, issue.keep_until, issue.document), second)

        async def raw_pair(step: tuple[tuple[str], tuple[Any, ...], tuple[Any, ...]]) -> None:
            # One pool checkout per statement, as the storage does it.
            key, first, second = step
            async with pool.connection() as connection:
                await (await connection.execute(load, key)).fetchone()
            async with pool.connection() as connection:
                if (await connection.execute(insert, first)).rowcount != 1:
                    raise FloorFailed(key[0])
            async with pool.connection() as connection:
                await (await connection.execute(load, key)).fetchone()
            async with pool.connection() as connection:
                if (await connection.execute(update, second)).rowcount != 1:
                    raise FloorFailed(key[0])

        default = " (the library's default)" if max_size == POSTGRES_DEFAULT_POOL else ""
        return AsyncSetup(
            storage=store,
            connections=f"pool {max_size}",
            setting=f"AsyncPostgresStorage: psycopg AsyncConnectionPool min_size=1"
            f" max_size={max_size}{default}, grown to full size before measuring; the same schema",
            close=store.close,
            floor=AsyncFloor(prepare, raw_pair),
            pool_max_size=max_size,
            pool_size=lambda: pool.get_stats().get("pool_size", 0),
        )

    return open_async


def _postgres_backend(name: str, documents: Documents, pools: Sequence[int]) -> Backend:
    import psycopg  # noqa: PLC0415 - the client library is needed only for this backend
    from psycopg import sql  # noqa: PLC0415

    from telecard_auth._storage.postgres import PostgresStorage  # noqa: PLC0415

    schema, drop = _postgres_schema(POSTGRES_URL)
    try:
        storage = PostgresStorage(POSTGRES_URL, schema=schema)
        storage.migrate()
    except BaseException:
        drop()
        raise
    connection = psycopg.connect(POSTGRES_URL, autocommit=True)
    # The library's own statements, rendered once: the driver sends exactly these.
    load = storage._load.as_bytes(connection)
    insert = storage._insert.as_bytes(connection)
    update = storage._update.as_bytes(connection)
    update_state = storage._update_state.as_bytes(connection)
    seed_statement = sql.SQL(
        "INSERT INTO {}.telecard_subjects (subject_ref, version, incarnation, keep_until, state)"
        " VALUES (%s, 2, %s, %s, %s)"
    ).format(sql.Identifier(schema))

    class PostgresFloor(Floor):
        """psycopg on one connection: SELECT, INSERT (or UPDATE), SELECT, UPDATE."""

        def seed(self, refs: list[str]) -> None:
            write = self.documents.new_redeem
            with connection.cursor() as cursor:
                cursor.executemany(
                    seed_statement,
                    [(ref, write.incarnation, write.keep_until, write.document) for ref in refs],
                )

        def run(self, refs: list[str], *, returning: bool) -> float:
            issue, redeem, base = self.writes(returning=returning)

            def update_parameters(write: Write, ref: str, version: int) -> tuple[Any, ...]:
                token = (ref, version, write.incarnation)
                if write.keeps_stored:
                    return (write.document, *token)
                return (write.keep_until, write.document, *token)

            steps: list[tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = [
                (
                    (ref,),
                    update_parameters(issue, ref, base)
                    if returning
                    else (ref, issue.incarnation, issue.keep_until, issue.document),
                    update_parameters(redeem, ref, base + 1),
                )
                for ref in refs
            ]
            # The very statements the library sends: the shorter UPDATE where keep_until stays.
            first = (update_state if issue.keeps_stored else update) if returning else insert
            last = update_state if redeem.keeps_stored else update
            with connection.cursor() as cursor:
                execute, fetchone = cursor.execute, cursor.fetchone
                start = time.perf_counter()
                for key, write, second in steps:
                    execute(load, key)
                    fetchone()
                    execute(first, write)
                    if cursor.rowcount != 1:
                        raise FloorFailed(key[0])
                    execute(load, key)
                    fetchone()
                    execute(last, second)
                    if cursor.rowcount != 1:
                        raise FloorFailed(key[0])
                return time.perf_counter() - start

        def close(self) -> None:
            connection.close()

    floor = PostgresFloor(documents)

    def cleanup() -> None:
        floor.close()
        storage.close()
        drop()

    setups = [_postgres_async(schema, documents, size) for size in pools]
    return Backend(name, storage, floor, cleanup, setups)


def make_backend(
    name: str,
    folder: Path,
    documents: Documents,
    keyring: Keyring,
    postgres_pools: Sequence[int] = (POSTGRES_DEFAULT_POOL,),
) -> Backend:
    """Build the named backend, or raise ``Unavailable``."""
    if name == "memory":
        return _memory_backend(name, documents, keyring)
    if name in ("sqlite-full", "sqlite-normal"):
        return _sqlite_backend(name, name.split("-")[1], folder, documents)
    if name == "redis":
        return _redis_backend(name, documents)
    if name == "postgres":
        return _postgres_backend(name, documents, postgres_pools)
    raise ValueError(name)


# --- measuring --------------------------------------------------------------------------------


def calibrate(issuer: CodeIssuer, citizens: Citizens, settings: Settings) -> int:
    """Pairs per round: as many as the library does in ``round_seconds``, within the bounds."""
    done, start = 0, time.perf_counter()
    budget = settings.round_seconds / 2
    while done < settings.min_pairs or time.perf_counter() - start < budget:
        for subject in citizens.take(5):
            pair(issuer, subject)
        done += 5
    rate = done / (time.perf_counter() - start)
    return max(settings.min_pairs, min(settings.max_pairs, int(rate * settings.round_seconds)))


def calibrate_async(
    side: AsyncSide, runner: asyncio.Runner, citizens: Citizens, settings: Settings
) -> int:
    """Pairs per round for ``side``: what it does in ``round_seconds``, a multiple of its tasks.

    The first rounds warm it up: connections opened, statements prepared and, where the tasks
    outnumber a pool's connections, the pool grown to its full size.
    """
    least = max(settings.min_pairs, side.tasks * settings.min_pairs_per_task)
    side.timed(runner, citizens, least)
    setup = side.setup
    if setup.pool_size is not None and setup.pool_max_size is not None:
        deadline = time.perf_counter() + POOL_WARM_SECONDS
        while (
            side.tasks > setup.pool_max_size
            and setup.pool_size() < setup.pool_max_size
            and time.perf_counter() < deadline
        ):
            side.timed(runner, citizens, least)
    done, seconds = 0, 0.0
    while done < least or seconds < settings.round_seconds / 2:
        done, seconds = done + least, seconds + side.timed(runner, citizens, least).wall
    pairs = max(least, min(settings.max_pairs, int(done / seconds * settings.round_seconds)))
    return math.ceil(pairs / side.tasks) * side.tasks


@dataclass
class AsyncResult:
    """The asyncio shell over one backend (one async storage setting), beside its sync figure."""

    backend: str
    sync_backend: str
    connections: str
    setting: str
    pool_max_size: int | None
    #: Connections the pool held once measured (PostgreSQL).
    pool_size: int | None
    tasks: int
    rounds: int
    pairs_per_round_1: int
    pairs_per_round_64: int
    async_1_ops_per_s: float
    async_64_ops_per_s: float
    #: The sync single-connection library figure (new-subject) of the very same rounds.
    sync_ops_per_s: float
    #: Median of the per-round ratios async (64 tasks) / sync, with the spread.
    async_64_over_sync: float
    async_64_over_sync_min: float
    async_64_over_sync_max: float
    async_1_over_sync: float
    #: The process's CPU time per pair (all threads).
    sync_cpu_us_per_pair: float
    async_1_cpu_us_per_pair: float
    async_64_cpu_us_per_pair: float
    #: CPU seconds / wall seconds in the 64-task rounds: 1.0 is one core kept busy.
    async_64_cpu_share: float
    #: The share of all the machine's CPUs busy (this process, the servers, anyone else).
    sync_machine_busy: float | None
    async_64_machine_busy: float | None
    #: The async_64 / sync ratio that one core allows at ``async_64_cpu_us_per_pair``.
    async_64_ceiling_over_sync: float
    #: The raw asyncio driver with 64 tasks on the same client or pool (Redis, PostgreSQL).
    async_64_floor_ops_per_s: float | None
    target: float | None
    target_met: bool | None
    profile: list[dict[str, Any]] = field(default_factory=list)
    profile_categories: list[dict[str, Any]] = field(default_factory=list)


def _median_or_none(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def summarize_async(
    name: str, group: AsyncGroup, library: Sequence[Sample], count: int
) -> AsyncResult:
    """The async figures of one setup, each per-round ratio against the sync round beside it."""
    setup, one, many, raw = group.setup, group.one, group.many, group.raw
    sync_rates = [count / sample.wall for sample in library]
    one_rates = [one.count / sample.wall for sample in one.samples]
    many_rates = [many.count / sample.wall for sample in many.samples]
    ratios = [fast / slow for fast, slow in zip(many_rates, sync_rates, strict=True)]
    sync_ops = statistics.median(sync_rates)
    many_cpu = statistics.median(sample.cpu / many.count for sample in many.samples) * 1e6
    ratio = statistics.median(ratios)
    target = ASYNC_TARGET if name in ASYNC_TARGET_BACKENDS else None
    return AsyncResult(
        backend=f"{name}-async",
        sync_backend=name,
        connections=setup.connections,
        setting=setup.setting,
        pool_max_size=setup.pool_max_size,
        pool_size=None if setup.pool_size is None else setup.pool_size(),
        tasks=many.tasks,
        rounds=len(library),
        pairs_per_round_1=one.count,
        pairs_per_round_64=many.count,
        async_1_ops_per_s=statistics.median(one_rates),
        async_64_ops_per_s=statistics.median(many_rates),
        sync_ops_per_s=sync_ops,
        async_64_over_sync=ratio,
        async_64_over_sync_min=min(ratios),
        async_64_over_sync_max=max(ratios),
        async_1_over_sync=statistics.median(
            single / sync for single, sync in zip(one_rates, sync_rates, strict=True)
        ),
        sync_cpu_us_per_pair=statistics.median(sample.cpu / count for sample in library) * 1e6,
        async_1_cpu_us_per_pair=statistics.median(sample.cpu / one.count for sample in one.samples)
        * 1e6,
        async_64_cpu_us_per_pair=many_cpu,
        async_64_cpu_share=statistics.median(sample.cpu / sample.wall for sample in many.samples),
        sync_machine_busy=_median_or_none([sample.busy for sample in library]),
        async_64_machine_busy=_median_or_none([sample.busy for sample in many.samples]),
        async_64_ceiling_over_sync=1e6 / many_cpu / sync_ops,
        async_64_floor_ops_per_s=None
        if raw is None
        else statistics.median(raw.count / sample.wall for sample in raw.samples),
        target=target,
        target_met=None if target is None else ratio >= target,
    )


def measure(
    backend: Backend,
    issuer: CodeIssuer,
    *,
    citizens: Citizens,
    settings: Settings,
    count: int,
    variant: str,
    runner: asyncio.Runner | None = None,
    groups: Sequence[AsyncGroup] = (),
) -> tuple[Result, list[AsyncResult]]:
    """Interleaved library, adapter, floor and async rounds (the order rotates); medians of them.

    The async sides of ``groups`` join the rotation, so each async round runs beside a sync
    library round of the same round index.
    """
    returning = variant == "returning-subject"
    library_samples: list[Sample] = []
    sides: list[Callable[[], float]] = [
        lambda: library_round(
            issuer, citizens, count, returning=returning, samples=library_samples
        ),
        lambda: adapter_round(backend.storage, backend.floor.documents, count, returning=returning),
        lambda: backend.floor.timed_round(count, returning=returning),
    ]
    for group in groups:
        if runner is None:
            raise ValueError("async sides need the event loop's runner")
        for async_side in group.sides():
            async_side.samples.clear()
            sides.append(functools.partial(async_side.timed_round, runner, citizens))
    seconds: list[list[float]] = [[] for _ in sides]
    for index in range(settings.rounds):
        for offset in range(len(sides)):
            side = (index + offset) % len(sides)
            seconds[side].append(sides[side]())
    library, adapter, floor = seconds[:3]
    ratios = [lib / flo for lib, flo in zip(library, floor, strict=True)]
    result = Result(
        backend=backend.name,
        variant=variant,
        pairs_per_round=count,
        rounds=settings.rounds,
        library_ops_per_s=statistics.median(count / value for value in library),
        floor_ops_per_s=statistics.median(count / value for value in floor),
        ratio=statistics.median(ratios),
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        adapter_ops_per_s=statistics.median(count / value for value in adapter),
        adapter_ratio=statistics.median(ada / flo for ada, flo in zip(adapter, floor, strict=True)),
    )
    extra = [summarize_async(backend.name, group, library_samples, count) for group in groups]
    return result, extra


def profile_library(issuer: CodeIssuer, citizens: Citizens, count: int) -> list[dict[str, Any]]:
    """cProfile of ``count`` library pairs: the functions with the most time of their own."""
    subjects = citizens.take(count)
    profiler = cProfile.Profile()
    profiler.enable()
    for subject in subjects:
        pair(issuer, subject)
    profiler.disable()
    return _top_functions(pstats.Stats(profiler), count)


def _top_functions(stats: pstats.Stats, count: int) -> list[dict[str, Any]]:
    """The 15 functions with the most time of their own, per pair."""
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values())
    rows = []
    for (filename, line, function), entry in table.items():
        _, calls, own, cumulative, _ = entry
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({function})",
                "calls_per_pair": round(calls / count, 2),
                "own_share": round(own / total, 4),
                "own_us_per_pair": round(own / count * 1e6, 2),
                "cumulative_us_per_pair": round(cumulative / count * 1e6, 2),
            }
        )
    rows.sort(key=lambda row: row["own_us_per_pair"], reverse=True)
    return rows[:15]


def profile_async(
    side: AsyncSide, runner: asyncio.Runner, citizens: Citizens
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """cProfile of one round of ``side``: the top functions, and the time by category.

    The timer is the wall clock (cheap, so the profile stays close to the real run); where the
    loop is busy all the time (cpu/wall near 1.0) that is its CPU time. Only the event loop's
    thread is profiled: with SQLite's worker threads, its time includes waiting for them and
    for the GIL.
    """
    profiler = cProfile.Profile()
    side.timed(runner, citizens, side.count, profiler)
    stats = pstats.Stats(profiler)
    return _top_functions(stats, side.count), profile_categories(stats, side.count)


#: The modules of ``telecard_auth`` that hold the rules and the shells; the rest is storage.
RULE_MODULES = frozenset(
    {
        "_core.py",
        "_issuer.py",
        "_policy.py",
        "_model.py",
        "_keyring.py",
        "_normalize.py",
        "_clock.py",
        "_errors.py",
    }
)
#: asyncio's building blocks that drivers call, as opposed to the loop's own scheduling.
ASYNCIO_PRIMITIVES = frozenset({"streams.py", "locks.py", "timeouts.py", "queues.py"})
UNATTRIBUTED = "other (unattributed)"


def _category(key: tuple[str, int, str]) -> str | None:
    """The category of a profiled function by where it lives, or None to ask its callers."""
    filename, _, function = key
    path = filename.replace("\\", "/")
    name = path.rsplit("/", 1)[-1]
    if filename == "~":  # a builtin: only system calls are categories of their own
        if "select.epoll" in function:
            return "epoll: waiting (idle when nothing is ready)"
        if "_socket.socket" in function:
            return "socket send/recv (system calls)"
        return None
    if "/telecard_auth/" in path:
        if name in RULE_MODULES:
            return "library: rules and issuer"
        return "library: storage adapter and codec"
    if "/redis/" in path:
        return "driver: redis-py"
    if "/psycopg/" in path or "/psycopg_pool/" in path:
        return "driver: psycopg and psycopg_pool"
    if "/asyncio/" in path:
        if name in ASYNCIO_PRIMITIVES or function == "wait_for":
            return "asyncio: streams, locks, timeouts"
        return "asyncio: event loop and tasks"
    if path.endswith("/selectors.py"):
        return "asyncio: event loop and tasks"
    if path.endswith("benchmarks/storage.py"):
        return "benchmark"
    return None


def profile_categories(stats: pstats.Stats, count: int) -> list[dict[str, Any]]:
    """Own time by category: library, driver, asyncio, system calls.

    A function of no category (the standard library, builtins, generated code) is charged to
    its callers, in proportion to the time it spent on behalf of each, up to the nearest one
    that has a category: ``json`` called by the codec is the codec's, ``hmac`` the rules'.
    """
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[tuple[str, int, str], dict[str, float]] = {}

    def shares(
        key: tuple[str, int, str], seen: frozenset[tuple[str, int, str]]
    ) -> dict[str, float]:
        category = _category(key)
        if category is not None:
            return {category: 1.0}
        if key in memo:
            return memo[key]
        callers: dict[tuple[str, int, str], Any] = table[key][4] if key in table else {}
        edges = [
            (caller, edge[2] if isinstance(edge, tuple) else 0.0)
            for caller, edge in callers.items()
            if caller in table and caller not in seen
        ]
        total = sum(weight for _, weight in edges)
        result: dict[str, float] = defaultdict(float)
        for caller, weight in edges:
            part = weight / total if total > 0 else 1 / len(edges)
            for name, share in shares(caller, seen | {key}).items():
                result[name] += part * share
        if not edges:
            result[UNATTRIBUTED] = 1.0
        if len(edges) == len(callers):  # a result cut short by a cycle is not kept
            memo[key] = dict(result)
        return dict(result)

    seconds: dict[str, float] = defaultdict(float)
    for key, entry in table.items():
        for name, share in shares(key, frozenset()).items():
            seconds[name] += entry[2] * share
    total = sum(seconds.values()) or 1.0
    rows: list[dict[str, Any]] = [
        {
            "category": name,
            "share": round(value / total, 4),
            "us_per_pair_profiled": round(value / count * 1e6, 1),
        }
        for name, value in seconds.items()
    ]
    rows.sort(key=lambda row: row["share"], reverse=True)
    return rows


def _short(filename: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def run_backend(
    name: str,
    *,
    folder: Path,
    documents: Documents,
    keyring: Keyring,
    citizens: Citizens,
    settings: Settings,
    profile: bool,
    runner: asyncio.Runner,
    postgres_pools: Sequence[int] = (POSTGRES_DEFAULT_POOL,),
) -> tuple[list[Result], list[AsyncResult]]:
    """Both variants of one backend, the async sides in the first one's rotation; its teardown."""
    backend = make_backend(name, folder, documents, keyring, postgres_pools)
    setups: list[AsyncSetup] = []
    try:
        issuer = CodeIssuer(backend.storage, keyring=keyring, policy=Policy(), clock=ManualClock())
        count = calibrate(issuer, citizens, settings)
        for returning in (False, True):  # warm the floor: caches, prepared statements
            backend.floor.timed_round(settings.min_pairs, returning=returning)
        for open_async in backend.async_setups:
            setups.append(runner.run(open_async()))
        groups = [AsyncGroup.of(setup, keyring) for setup in setups]
        for group in groups:
            for side in group.sides()[::-1]:  # the concurrent sides first: they grow the pool
                side.count = calibrate_async(side, runner, citizens, settings)
        results: list[Result] = []
        async_results: list[AsyncResult] = []
        for variant in VARIANTS:
            result, extra = measure(
                backend,
                issuer,
                citizens=citizens,
                settings=settings,
                count=count,
                variant=variant,
                runner=runner,
                groups=groups if variant == "new-subject" else (),
            )
            print(
                f"  {name:14} {variant:18} library {result.library_ops_per_s:9,.0f}/s"
                f"  adapter {result.adapter_ops_per_s:9,.0f}/s"
                f"  floor {result.floor_ops_per_s:9,.0f}/s  ratio {result.ratio:5.2f}",
                flush=True,
            )
            for entry in extra:
                print(
                    f"  {name:14} {'async, ' + entry.connections:18}"
                    f" 1 task {entry.async_1_ops_per_s:9,.0f}/s"
                    f"  {TASKS} tasks {entry.async_64_ops_per_s:9,.0f}/s"
                    f"  sync {entry.sync_ops_per_s:9,.0f}/s"
                    f"  {TASKS}/sync {entry.async_64_over_sync:5.2f}",
                    flush=True,
                )
            results.append(result)
            async_results.extend(extra)
        if profile and any(result.ratio > PROFILE_THRESHOLD for result in results):
            results[0].profile = profile_library(issuer, citizens, count)
        if profile:
            for group, entry in zip(groups, async_results, strict=True):
                entry.profile, entry.profile_categories = profile_async(
                    group.many, runner, citizens
                )
                wall_per_pair = 1e6 / entry.async_64_ops_per_s  # unprofiled
                for row in entry.profile_categories:
                    row["us_per_pair_estimated"] = round(row["share"] * wall_per_pair, 1)
        return results, async_results
    finally:
        try:
            for setup in reversed(setups):
                runner.run(setup.close())
        finally:
            backend.cleanup()


# --- redemption at scale ----------------------------------------------------------------------


@dataclass
class ScaleResult:
    """Redemption cost on a small and on a large table, measured in alternation."""

    backend: str
    subjects_small: int
    subjects_large: int
    redeem_us_small: float
    redeem_us_large: float
    ratio: float
    rounds: int
    redeems_per_round: int
    load_seconds: float
    note: str


def _filler_rows(
    count: int, states: Sequence[tuple[int, Write]], *, micros_keep: bool
) -> Iterator[tuple[str, int, str, Any, str]]:
    """``count`` rows (subject_ref, version, incarnation, keep_until, state) in primary-key
    order."""
    for index, ref in enumerate(sorted(fresh_refs(count))):
        version, write = states[index % len(states)]
        keep: Any = write.keep_micros if micros_keep else write.keep_until
        yield ref, version, write.incarnation, keep, write.document


def _scale_round(issuer: CodeIssuer, clock: ManualClock, subjects: list[Subject]) -> float:
    """Microseconds per redemption of a code issued (untimed) just before, one per subject."""
    clock.advance(hours=SCALE_CLOCK_STEP_HOURS)
    codes = [issuer.issue(subject, PROVIDER).code for subject in subjects]
    gc.collect()
    start = time.perf_counter()
    for subject, code in zip(subjects, codes, strict=True):
        issuer.redeem(subject, PROVIDER, code, SERVICE)
    return (time.perf_counter() - start) / len(subjects) * 1e6


def _alternate(
    sides: list[tuple[CodeIssuer, ManualClock, list[Subject]]], rounds: int
) -> tuple[float, float]:
    """Median microseconds per redemption on each side, the order alternating by round."""
    timings: list[list[float]] = [[], []]
    for index in range(rounds):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for side in order:
            timings[side].append(_scale_round(*sides[side]))
    return statistics.median(timings[0]), statistics.median(timings[1])


def scale_sqlite(
    folder: Path,
    keyring: Keyring,
    citizens: Citizens,
    settings: Settings,
    states: list[tuple[int, Write]],
) -> ScaleResult:
    """SQLite (synchronous=normal) with a small and a large table."""
    sides = []
    storages = []
    load_seconds = 0.0
    try:
        for size in (settings.scale_small, settings.scale_large):
            path = folder / f"scale-{size}.db"
            storage = SQLiteStorage(path, synchronous="normal")
            storages.append(storage)
            storage.migrate()
            start = time.perf_counter()
            bulk = sqlite3.connect(path, isolation_level=None)
            bulk.execute("PRAGMA synchronous = OFF")
            bulk.execute("BEGIN")
            bulk.executemany(
                "INSERT INTO telecard_subjects"
                " (subject_ref, version, incarnation, keep_until, state) VALUES (?, ?, ?, ?, ?)",
                _filler_rows(size - settings.scale_batch, states, micros_keep=True),
            )
            bulk.execute("COMMIT")
            bulk.execute("ANALYZE")
            bulk.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            bulk.close()
            load_seconds += time.perf_counter() - start
            clock = ManualClock()
            issuer = CodeIssuer(storage, keyring=keyring, policy=Policy(), clock=clock)
            sides.append((issuer, clock, citizens.take(settings.scale_batch)))
        small, large = _alternate(sides, settings.scale_rounds)
    finally:
        for storage in storages:
            storage.close()
    return ScaleResult(
        backend="sqlite-scale",
        subjects_small=settings.scale_small,
        subjects_large=settings.scale_large,
        redeem_us_small=small,
        redeem_us_large=large,
        ratio=large / small,
        rounds=settings.scale_rounds,
        redeems_per_round=settings.scale_batch,
        load_seconds=load_seconds,
        note="synchronous=normal, so that fsync latency does not hide the cost of the table",
    )


def scale_postgres(
    keyring: Keyring, citizens: Citizens, settings: Settings, states: list[tuple[int, Write]]
) -> ScaleResult:
    """PostgreSQL with a small and a large table, each in a schema of its own."""
    import psycopg  # noqa: PLC0415 - the client library is needed only for this backend
    from psycopg import sql  # noqa: PLC0415

    from telecard_auth._storage.postgres import PostgresStorage  # noqa: PLC0415

    drops: list[Callable[[], None]] = []
    storages: list[PostgresStorage] = []
    sides = []
    load_seconds = 0.0
    try:
        for size in (settings.scale_small, settings.scale_large):
            schema, drop = _postgres_schema(POSTGRES_URL)
            drops.append(drop)
            storage = PostgresStorage(POSTGRES_URL, schema=schema)
            storages.append(storage)
            storage.migrate()
            table = sql.SQL("{}.telecard_subjects").format(sql.Identifier(schema))
            start = time.perf_counter()
            with psycopg.connect(POSTGRES_URL) as connection:
                with (
                    connection.cursor() as cursor,
                    cursor.copy(
                        sql.SQL(
                            "COPY {} (subject_ref, version, incarnation, keep_until, state)"
                            " FROM STDIN"
                        ).format(table)
                    ) as copy,
                ):
                    for row in _filler_rows(size - settings.scale_batch, states, micros_keep=False):
                        copy.write_row(row)
                connection.commit()
                connection.autocommit = True
                connection.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
                try:
                    connection.execute("CHECKPOINT")
                except psycopg.Error as error:
                    print(f"  (no CHECKPOINT after the load: {error})")
            load_seconds += time.perf_counter() - start
            clock = ManualClock()
            issuer = CodeIssuer(storage, keyring=keyring, policy=Policy(), clock=clock)
            sides.append((issuer, clock, citizens.take(settings.scale_batch)))
        small, large = _alternate(sides, settings.scale_rounds)
    finally:
        for storage in storages:
            storage.close()
        for drop in drops:
            drop()
    return ScaleResult(
        backend="postgres-scale",
        subjects_small=settings.scale_small,
        subjects_large=settings.scale_large,
        redeem_us_small=small,
        redeem_us_large=large,
        ratio=large / small,
        rounds=settings.scale_rounds,
        redeems_per_round=settings.scale_batch,
        load_seconds=load_seconds,
        note="synchronous_commit as the server has it",
    )


# --- report -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    details: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }
    details["load_average_at_start"] = _load_average()
    return details


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the platform has them."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def print_tables(
    results: list[Result], scale: list[ScaleResult], async_results: Sequence[AsyncResult] = ()
) -> None:
    """The figures as plain tables."""
    print()
    header = (
        f"{'backend':14} {'variant':18} {'pairs/round':>11} {'library ops/s':>14}"
        f" {'floor ops/s':>12} {'ratio':>6} {'(min-max)':>11}"
        f" {'adapter ops/s':>14} {'adapter/floor':>13}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        print(
            f"{result.backend:14} {result.variant:18} {result.pairs_per_round:>11,}"
            f" {result.library_ops_per_s:>14,.0f} {result.floor_ops_per_s:>12,.0f}"
            f" {result.ratio:>6.2f} {result.ratio_min:>5.2f}-{result.ratio_max:<5.2f}"
            f" {result.adapter_ops_per_s:>14,.0f} {result.adapter_ratio:>13.2f}"
        )
    if async_results:
        print_async_table(async_results)
    if scale:
        print()
        header = (
            f"{'backend':15} {'subjects':>19} {'redeem us (small)':>18}"
            f" {'redeem us (large)':>18} {'ratio':>6}"
        )
        print(header)
        print("-" * len(header))
        for entry in scale:
            sizes = f"{entry.subjects_small:,} / {entry.subjects_large:,}"
            print(
                f"{entry.backend:15} {sizes:>19} {entry.redeem_us_small:>18.1f}"
                f" {entry.redeem_us_large:>18.1f} {entry.ratio:>6.2f}"
            )
    for result in results:
        if result.profile:
            print(f"\nprofile: {result.backend} (library, {result.variant}), per pair:")
            for row in result.profile:
                print(
                    f"  {row['own_us_per_pair']:8.2f} us own {row['own_share']:6.1%}"
                    f"  {row['cumulative_us_per_pair']:9.2f} us cum"
                    f"  x{row['calls_per_pair']:<6} {row['function']}"
                )


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{share:.0%}"


def print_async_table(async_results: Sequence[AsyncResult]) -> None:
    """The asyncio figures beside the sync ones, the settings, the target and the profiles."""
    print()
    header = (
        f"{'backend':19} {'connections':11} {'1 task/s':>9} {f'{TASKS} tasks/s':>11}"
        f" {'sync/s':>8} {f'{TASKS}/sync':>7} {'(min-max)':>11} {'floor 64/s':>10}"
        f" {'cpu us/pair sync|1|64':>21} {'cpu/wall':>8} {'ceiling':>7} {'busy sync|64':>12}"
    )
    print(header)
    print("-" * len(header))
    for entry in async_results:
        floor = entry.async_64_floor_ops_per_s
        cpu = (
            f"{entry.sync_cpu_us_per_pair:.0f} | {entry.async_1_cpu_us_per_pair:.0f}"
            f" | {entry.async_64_cpu_us_per_pair:.0f}"
        )
        busy = f"{_percent(entry.sync_machine_busy)} | {_percent(entry.async_64_machine_busy)}"
        print(
            f"{entry.backend:19} {entry.connections:11} {entry.async_1_ops_per_s:>9,.0f}"
            f" {entry.async_64_ops_per_s:>11,.0f} {entry.sync_ops_per_s:>8,.0f}"
            f" {entry.async_64_over_sync:>7.2f}"
            f" {entry.async_64_over_sync_min:>5.2f}-{entry.async_64_over_sync_max:<5.2f}"
            f" {'-' if floor is None else f'{floor:,.0f}':>10} {cpu:>21}"
            f" {entry.async_64_cpu_share:>8.2f} {entry.async_64_ceiling_over_sync:>7.2f}"
            f" {busy:>12}"
        )
    print("\nasync settings (one event loop; the sync side is one connection):")
    for entry in async_results:
        pool = (
            "" if entry.pool_size is None else f" [{entry.pool_size} connections open at the end]"
        )
        print(f"  {entry.backend} ({entry.connections}): {entry.setting}{pool}")
    targets = [entry for entry in async_results if entry.target is not None]
    if targets:
        print(f"\ntarget: with {TASKS} tasks at least {ASYNC_TARGET:.0f}x the sync throughput")
        for entry in targets:
            verdict = "met" if entry.target_met else "NOT met"
            print(
                f"  {entry.sync_backend:10} ({entry.connections}): {entry.async_64_over_sync:.2f}x"
                f" -> {verdict}; one core allows {entry.async_64_ceiling_over_sync:.2f}x"
                f" at {entry.async_64_cpu_us_per_pair:.0f} us CPU per pair"
            )
    for entry in async_results:
        if entry.profile_categories:
            print(
                f"\nprofile: {entry.backend} ({entry.connections}), {TASKS} tasks, own time by"
                " category (profiled us/pair; share; share x unprofiled wall time per pair):"
            )
            for row in entry.profile_categories:
                print(
                    f"  {row['us_per_pair_profiled']:8.1f} us {row['share']:6.1%}"
                    f"  ~{row['us_per_pair_estimated']:6.1f} us  {row['category']}"
                )
            print("  top functions by own time, per pair (profiled):")
            for row in entry.profile[:10]:
                print(
                    f"  {row['own_us_per_pair']:8.2f} us own {row['own_share']:6.1%}"
                    f"  x{row['calls_per_pair']:<6} {row['function']}"
                )


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its floats cut to a sensible precision for the JSON file."""
    return {
        key: round(value, 1 if key.endswith("ops_per_s") else 3)
        if isinstance(value, float)
        else value
        for key, value in entry.items()
    }


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked; adds ``names`` (backends) and ``postgres_pools``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, short rounds (CI)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of {','.join(BACKENDS)}",
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the table-size runs")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"cProfile the library where the ratio exceeds {PROFILE_THRESHOLD},"
        f" and every backend's async run with {TASKS} tasks",
    )
    parser.add_argument(
        "--postgres-pool",
        type=int,
        default=POSTGRES_LARGER_POOL,
        metavar="N",
        help=f"also measure AsyncPostgresStorage with a pool of max_size N (default"
        f" {POSTGRES_LARGER_POOL}; 0: only the default {POSTGRES_DEFAULT_POOL})",
    )
    options = parser.parse_args(argv)
    if not 0 <= options.postgres_pool <= TASKS:
        parser.error(f"--postgres-pool takes 0 to {TASKS}")
    options.postgres_pools = [POSTGRES_DEFAULT_POOL] + (
        [options.postgres_pool] if options.postgres_pool not in (0, POSTGRES_DEFAULT_POOL) else []
    )
    options.names = [name.strip() for name in options.backends.split(",") if name.strip()]
    unknown = set(options.names) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables; write the JSON file if asked."""
    options = parse_arguments(argv)
    settings = QUICK if options.quick else FULL
    names: list[str] = options.names

    started = time.perf_counter()
    details = machine()
    print(f"{details['python']} on {details['platform']}, {details['cpu_count']} CPUs")
    keyring = Keyring.generate()
    citizens = Citizens()
    documents = capture_documents(keyring, citizens)
    print(
        "state documents: "
        f"{len(documents.new_issue.document)}/{len(documents.new_redeem.document)} bytes (new),"
        f" {len(documents.returning_issue.document)}/"
        f"{len(documents.returning_redeem.document)} bytes (returning)"
    )
    results: list[Result] = []
    async_results: list[AsyncResult] = []
    scale: list[ScaleResult] = []
    skipped: list[dict[str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="telecard-bench-") as temporary,
        asyncio.Runner() as runner,  # the one event loop of every async side
    ):
        folder = Path(temporary)
        for name in names:
            try:
                sync_part, async_part = run_backend(
                    name,
                    folder=folder,
                    documents=documents,
                    keyring=keyring,
                    citizens=citizens,
                    settings=settings,
                    profile=options.profile,
                    runner=runner,
                    postgres_pools=options.postgres_pools,
                )
                results.extend(sync_part)
                async_results.extend(async_part)
            except Unavailable as error:
                print(f"  {name}: skipped, {error}")
                skipped.append({"backend": name, "reason": str(error)})
        if not options.no_scale:
            states = filler_states(keyring, citizens, 512)
            if "sqlite-full" in names or "sqlite-normal" in names:
                scale.append(scale_sqlite(folder, keyring, citizens, settings, states))
                print(f"  sqlite-scale   ratio {scale[-1].ratio:.2f}", flush=True)
            if "postgres" in names and not any(s["backend"] == "postgres" for s in skipped):
                try:
                    scale.append(scale_postgres(keyring, citizens, settings, states))
                    print(f"  postgres-scale ratio {scale[-1].ratio:.2f}", flush=True)
                except Unavailable as error:
                    skipped.append({"backend": "postgres-scale", "reason": str(error)})
    total = time.perf_counter() - started
    details["load_average_at_end"] = _load_average()
    print_tables(results, scale, async_results)
    print(f"\ntotal time {total:.1f} s")
    if options.json is not None:
        report = {
            "machine": details,
            "settings": {"quick": options.quick, **asdict(settings)},
            "results": [_rounded(asdict(result)) for result in results]
            + [_rounded(asdict(entry)) for entry in async_results]
            + [_rounded(asdict(entry)) for entry in scale],
            "skipped": skipped,
            "total_seconds": round(total, 1),
        }
        options.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"written to {options.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
