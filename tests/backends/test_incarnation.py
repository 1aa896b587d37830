"""The compare-and-set token is (incarnation, version), on every backend, sync and async alike.

A subject that is deleted (by ``purge``, or on Redis by the key's own expiry) and created again
counts its versions from 1 once more; only the incarnation tells its new life from the old. These
tests drive each backend directly, below the issuer: a commit at the right version but of another
incarnation changes nothing; a request that loaded the subject before it was deleted cannot commit
over its new life once the versions meet again (the stale writer that would erase an acknowledged
redemption); and ``scan_subjects`` walks every stored subject, page by page, exactly once.

The async twin of each backend runs the same scenarios, awaited on one event loop of its own
(``Blocking``), so that each scenario is written once.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs
import pytest
from tests.backends.conftest import BACKENDS, UrlFactory, expire_redis_key
from tests.helpers import START

from telecard_auth import (
    AsyncRedisStorage,
    CodeRecord,
    CodeState,
    Commit,
    RedisStorage,
    StorageError,
    SubjectSnapshot,
    async_storage_from_url,
    storage_from_url,
)
from telecard_auth._storage.codec import FORMAT, micros

T = TypeVar("T")

#: When every commit of these tests stops mattering: ``purge`` at this moment deletes them.
KEEP_UNTIL = START + timedelta(days=1)
#: Subjects stored for the scans.
SUBJECTS = 23
#: Page sizes for the scans: one subject a page, a few, exactly all, more than all.
PAGE_SIZES = (1, 2, 5, SUBJECTS, SUBJECTS + 1, 100)
FLAVOURS = ("sync", "async")


class Blocking:
    """An async storage driven from plain calls, each awaited on the same event loop."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._runner = asyncio.Runner()

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(call)

    def migrate(self) -> None:
        """``migrate``, awaited."""
        self._run(self.inner.migrate())

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """``load``, awaited."""
        snapshot: SubjectSnapshot = self._run(self.inner.load(subject_ref))
        return snapshot

    def commit(self, change: Commit) -> bool:
        """``commit``, awaited."""
        landed: bool = self._run(self.inner.commit(change))
        return landed

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """``purge_snapshots``, awaited."""
        deleted: list[SubjectSnapshot] = self._run(self.inner.purge_snapshots(now, limit))
        return deleted

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """``scan_subjects``, awaited."""
        page: tuple[list[SubjectSnapshot], str | None] = self._run(
            self.inner.scan_subjects(after, limit)
        )
        return page

    def close(self) -> None:
        """``close``, awaited; then the event loop is closed too."""
        try:
            self._run(self.inner.close())
        finally:
            self._runner.close()


@attrs.define
class Backend:
    """A storage under test (sync, or async behind ``Blocking``), and what built it."""

    name: str
    flavour: str
    url: str
    storage_url: UrlFactory
    #: The Redis server's URL, for a client of the test's own ("" for other backends).
    server: str = ""
    storage: Any = None

    def open(self, url: str) -> Any:
        """Another storage of the same backend and flavour at ``url``, migrated."""
        storage: Any
        if self.flavour == "sync":
            storage = storage_from_url(url)
        else:
            storage = Blocking(async_storage_from_url(url))
        storage.migrate()
        return storage

    def redis_key(self, subject_ref: str) -> str:
        """The Redis key of ``subject_ref`` (Redis only)."""
        inner = self.storage if self.flavour == "sync" else self.storage.inner
        assert isinstance(inner, RedisStorage | AsyncRedisStorage)
        return inner.key(subject_ref)


def opened(
    name: str, flavour: str, request: pytest.FixtureRequest, storage_url: UrlFactory
) -> Iterator[Backend]:
    """A fresh isolated storage of ``name`` and ``flavour``, migrated; closed afterwards."""
    url = storage_url(name)
    server = request.getfixturevalue("redis_url") if name == "redis" else ""
    built = Backend(name=name, flavour=flavour, url=url, storage_url=storage_url, server=server)
    built.storage = built.open(url)
    yield built
    built.storage.close()


@pytest.fixture(params=[(name, flavour) for name in BACKENDS for flavour in FLAVOURS], ids="-".join)
def backend(request: pytest.FixtureRequest, storage_url: UrlFactory) -> Iterator[Backend]:
    """Each backend in turn, sync and async."""
    name, flavour = request.param
    yield from opened(name, flavour, request, storage_url)


@pytest.fixture(params=FLAVOURS)
def redis_backend(request: pytest.FixtureRequest, storage_url: UrlFactory) -> Iterator[Backend]:
    """Redis, sync and async."""
    yield from opened("redis", request.param, request, storage_url)


# --- helpers ----------------------------------------------------------------------------------


def ref_of(name: str) -> str:
    """A subject pseudonym shaped like the real ones (32 hex digits)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def record(code_id: str, state: CodeState = CodeState.ACTIVE) -> CodeRecord:
    """A code issued at ``START`` in ``state``."""
    return CodeRecord(
        code_id=code_id,
        provider_id="stc",
        key_id="k1",
        digest=hashlib.sha256(code_id.encode()).digest(),
        issued_at=START,
        expires_at=START + timedelta(hours=4),
        state=state,
        finished_at=None if state is CodeState.ACTIVE else START + timedelta(minutes=5),
        redeemed_service_id="new_line" if state is CodeState.REDEEMED else None,
    )


def commit(ref: str, version: int, incarnation: str, *codes: CodeRecord) -> Commit:
    """A commit on top of (``incarnation``, ``version``) storing ``codes``, kept until
    ``KEEP_UNTIL``."""
    return Commit(
        subject_ref=ref,
        expected_version=version,
        incarnation=incarnation,
        codes=codes,
        failure_logs=(),
        written_at=START,
        keep_until=KEEP_UNTIL,
        stored_keep_until=None if version == 0 else KEEP_UNTIL,
    )


def token(snapshot: SubjectSnapshot) -> tuple[str, int]:
    """The compare-and-set token a snapshot holds."""
    return snapshot.incarnation, snapshot.version


def walk(storage: Any, size: int) -> list[tuple[list[SubjectSnapshot], str | None]]:
    """Every page of a whole ``scan_subjects`` walk with pages of ``size``, with its cursor."""
    pages: list[tuple[list[SubjectSnapshot], str | None]] = []
    cursor: str | None = None
    # Bounded, so that a cursor that never ends fails the test instead of hanging it; a Redis
    # walk is as long as the whole database divided by ``size``.
    for _ in range(1_000_000):
        page, cursor = storage.scan_subjects(cursor, size)
        pages.append((page, cursor))
        if cursor is None:
            return pages
    raise AssertionError("the walk never ended")


# --- (a) the incarnation is half of the token -------------------------------------------------


def test_a_commit_of_another_incarnation_is_refused(backend: Backend) -> None:
    """At the stored version but with another incarnation, a commit is False and changes nothing."""
    storage = backend.storage
    ref = ref_of("a")
    assert storage.commit(commit(ref, 0, "inc-a", record("c1")))
    assert storage.commit(commit(ref, 1, "inc-a", record("c1", CodeState.REDEEMED)))
    before = storage.load(ref)
    assert ("inc-a", 2) == token(before)
    assert (record("c1", CodeState.REDEEMED),) == before.codes

    assert storage.commit(commit(ref, 2, "inc-b", record("c1"))) is False
    assert storage.commit(commit(ref, 2, "", record("c1"))) is False
    # Creating is for a subject with nothing stored, whatever the incarnation.
    assert storage.commit(commit(ref, 0, "inc-a", record("c1"))) is False
    assert storage.commit(commit(ref, 0, "inc-b", record("c1"))) is False
    assert before == storage.load(ref)
    # The right token still lands.
    assert storage.commit(commit(ref, 2, "inc-a"))
    assert ("inc-a", 3) == token(storage.load(ref))


def test_a_new_subject_takes_the_commits_incarnation(backend: Backend) -> None:
    """A creation stores its incarnation: load, purge and scan all give it back."""
    storage = backend.storage
    refs = {ref_of(f"new{n}"): f"inc-{n}" for n in range(3)}
    for ref, incarnation in refs.items():
        assert storage.commit(commit(ref, 0, incarnation))
    assert {ref: (incarnation, 1) for ref, incarnation in refs.items()} == {
        ref: token(storage.load(ref)) for ref in refs
    }
    scanned = [snapshot for page, _ in walk(storage, 100) for snapshot in page]
    assert refs == {snapshot.subject_ref: snapshot.incarnation for snapshot in scanned}
    deleted = storage.purge_snapshots(KEEP_UNTIL, 100)
    assert refs == {snapshot.subject_ref: snapshot.incarnation for snapshot in deleted}


# --- (b) the stale writer ---------------------------------------------------------------------


def delete_by_purge(backend: Backend, ref: str) -> None:
    """Delete ``ref`` the way every backend can: purge it once it no longer matters."""
    (deleted,) = backend.storage.purge_snapshots(KEEP_UNTIL, 100)
    assert (ref, "inc-a", 2) == (deleted.subject_ref, deleted.incarnation, deleted.version)


def delete_by_expiry(backend: Backend, ref: str) -> None:
    """Delete ``ref`` the way Redis does by itself: its key expires."""
    expire_redis_key(backend.server, backend.redis_key(ref))


def stale_writer(backend: Backend, delete: Callable[[Backend, str], None]) -> None:
    """Loaded at (A, 2), deleted, re-created as B and back at version 2: the stale commit fails."""
    storage = backend.storage
    ref = ref_of("stale")
    # The old life: the code is issued, then a request loads the subject at (A, 2).
    assert storage.commit(commit(ref, 0, "inc-a"))
    assert storage.commit(commit(ref, 1, "inc-a", record("c1")))
    stale = storage.load(ref)
    assert ("inc-a", 2) == token(stale)

    delete(backend, ref)
    assert SubjectSnapshot(subject_ref=ref) == storage.load(ref)

    # The new life reaches version 2 again, with a redemption acknowledged.
    assert storage.commit(commit(ref, 0, "inc-b", record("c2")))
    assert storage.commit(commit(ref, 1, "inc-b", record("c2", CodeState.REDEEMED)))
    acknowledged = storage.load(ref)
    assert ("inc-b", 2) == token(acknowledged)

    # The stale request commits what it decided from the old life: refused, nothing changes.
    assert storage.commit(commit(ref, stale.version, stale.incarnation, record("c2"))) is False
    assert acknowledged == storage.load(ref)
    # The new life carries on, and the stale token stays refused at its next version too.
    assert storage.commit(commit(ref, 2, "inc-b", record("c2", CodeState.REDEEMED), record("c3")))
    assert storage.commit(commit(ref, 3, "inc-a", record("c2"))) is False
    assert storage.commit(commit(ref, 2, "inc-a", record("c2"))) is False
    final = storage.load(ref)
    assert ("inc-b", 3) == token(final)
    assert (record("c2", CodeState.REDEEMED), record("c3")) == final.codes


def test_a_stale_writer_cannot_commit_after_a_purge(backend: Backend) -> None:
    """A request that loaded a subject before it was purged cannot commit over its new life.

    This is the lost redemption: the stale request would put back as active a code that the
    subject's new life has redeemed and acknowledged, once the new life is at the same version.
    """
    stale_writer(backend, delete_by_purge)


def test_a_stale_writer_cannot_commit_after_redis_expired_the_key(redis_backend: Backend) -> None:
    """The same after Redis expired the subject's key by itself, without any purge."""
    stale_writer(redis_backend, delete_by_expiry)


# --- (c) scan_subjects ------------------------------------------------------------------------


def neighbours(backend: Backend) -> Iterator[Any]:
    """Storages beside the one under test: other schemas, files or (lookalike) prefixes."""
    yield backend.open(backend.storage_url(backend.name))
    if backend.name == "redis":
        for other in lookalikes(backend):
            yield backend.open(f"{backend.server}?prefix={other}")


def lookalikes(backend: Backend) -> tuple[str, ...]:
    """Redis prefixes that start or end like the storage's own."""
    prefix = backend.url.partition("?prefix=")[2]
    return f"{prefix}x", f"{prefix}:x", f"x{prefix}"


def drop_redis_keys(url: str, *patterns: str) -> None:
    """Delete every Redis key that matches one of the patterns."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def stored(backend: Backend) -> Iterator[dict[str, str]]:
    """``SUBJECTS`` subjects stored, each under an incarnation of its own, and the same refs and
    some others stored beside it; the refs and their incarnations."""
    refs = {ref_of(f"scan{n}"): f"inc-{n}" for n in range(SUBJECTS)}
    for n, (ref, incarnation) in enumerate(refs.items()):
        assert backend.storage.commit(commit(ref, 0, incarnation))
        # Some at a later version, so that a page holds rows at several versions.
        if n % 3 == 0:
            assert backend.storage.commit(commit(ref, 1, incarnation, record(f"c{n}")))
    others = list(neighbours(backend))
    try:
        for other in others:
            for ref in [*refs, ref_of("elsewhere")]:
                assert other.commit(commit(ref, 0, "inc-other"))
        if backend.name == "redis":
            # A hash under the prefix that this library did not write: no version, not a subject.
            import redis

            client = redis.Redis.from_url(backend.server)
            try:
                client.hset(backend.redis_key(ref_of("foreign")), "x", "1")
            finally:
                client.close()
        yield refs
    finally:
        for other in others:
            other.close()
        if backend.name == "redis":
            # The storage's own prefix (and ``<prefix>:x``) is dropped by ``storage_url``.
            drop_redis_keys(backend.server, *(f"{prefix}:*" for prefix in lookalikes(backend)))


@pytest.mark.parametrize("size", PAGE_SIZES)
def test_scan_returns_every_subject_exactly_once(
    backend: Backend, stored: dict[str, str], size: int
) -> None:
    """Over its pages, a walk gives each stored subject once, as load gives it, and nothing else."""
    storage = backend.storage
    pages = walk(storage, size)
    scanned = [snapshot for page, _ in pages for snapshot in page]
    assert sorted(stored) == sorted(snapshot.subject_ref for snapshot in scanned)
    assert stored == {snapshot.subject_ref: snapshot.incarnation for snapshot in scanned}
    for snapshot in scanned:
        assert storage.load(snapshot.subject_ref) == snapshot
    *first, (_, last) = pages
    assert last is None
    assert all(isinstance(cursor, str) for _, cursor in first)
    if backend.name in ("sqlite", "postgres"):
        # In primary-key order; the cursor is the last ref of a full page, None after a short one.
        assert [snapshot.subject_ref for snapshot in scanned] == sorted(stored)
        for page, cursor in pages:
            assert len(page) <= size
            assert cursor == (page[-1].subject_ref if len(page) == size else None)
        assert SUBJECTS // size + 1 == len(pages)
    if backend.name == "redis":
        # Redis's own SCAN cursor, as a decimal string.
        assert all(cursor.isascii() and cursor.isdecimal() for _, cursor in first if cursor)


def test_scan_of_an_empty_storage_finds_nothing(backend: Backend) -> None:
    """Nothing stored: the walk is over at once (on Redis, once SCAN has gone round)."""
    scanned = [snapshot for page, _ in walk(backend.storage, 10) for snapshot in page]
    assert [] == scanned
    if backend.name != "redis":
        assert ([], None) == backend.storage.scan_subjects(None, 10)


# --- Redis: a hash written before ``i`` was stored --------------------------------------------


def test_a_redis_hash_without_an_incarnation_reads_as_the_empty_one(
    redis_backend: Backend,
) -> None:
    """A hash with ``v`` but no ``i`` is incarnation "": commits with "" land there, others fail."""
    import redis

    backend = redis_backend
    storage = backend.storage
    ref = ref_of("legacy")
    key = backend.redis_key(ref)
    client = redis.Redis.from_url(backend.server)
    try:
        document = f'{{"f":{FORMAT},"c":[],"l":[]}}'
        client.hset(key, mapping={"v": "4", "d": document, "k": str(micros(KEEP_UNTIL))})
        client.pexpire(key, 60_000)
        assert ("", 4) == token(storage.load(ref))
        assert storage.commit(commit(ref, 4, "inc-a")) is False
        assert storage.commit(commit(ref, 0, "")) is False
        assert storage.commit(commit(ref, 4, ""))
        assert ("", 5) == token(storage.load(ref))
        assert {b"v": b"5", b"i": b""} == {
            field: value for field, value in client.hgetall(key).items() if field in (b"v", b"i")
        }
    finally:
        client.delete(key)
        client.close()


def test_a_redis_commit_stores_the_incarnation_beside_the_version(
    redis_backend: Backend,
) -> None:
    """The hash holds ``i``: set by the creation, kept by every later commit."""
    import redis

    backend = redis_backend
    ref = ref_of("fields")
    incarnation = uuid.uuid4().hex
    assert backend.storage.commit(commit(ref, 0, incarnation))
    assert backend.storage.commit(commit(ref, 1, incarnation))
    client = redis.Redis.from_url(backend.server)
    try:
        held = client.hmget(backend.redis_key(ref), ["v", "i"])
    finally:
        client.close()
    assert [b"2", incarnation.encode()] == held


def test_a_redis_scan_cursor_that_is_not_a_number_is_a_storage_error(
    redis_backend: Backend,
) -> None:
    """A cursor Redis never gave (not a decimal number) is StorageError, not a driver error."""
    for cursor in ("", "next", "1.5"):
        with pytest.raises(StorageError) as caught:
            redis_backend.storage.scan_subjects(cursor, 10)
        assert "the scan cursor is not one this storage returned" == caught.value.details["reason"]
