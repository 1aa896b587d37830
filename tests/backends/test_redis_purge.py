"""Redis purging, read behind the library's back: ``k``, the keys' lifetime, and the ``SCAN`` walk.

The contract suite proves what every backend must do; these tests pin down how Redis does it. Each
commit stores ``keep_until`` (``k``, whole microseconds since the epoch) and lets the key expire
``keep_until - written_at + expiry_grace`` after writing. ``purge`` walks the prefix's keys with
``SCAN`` across calls, deletes only its own due subjects, and leaves other prefixes, and hashes
written without ``k``, alone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from tests.backends.conftest import UrlFactory

from telecard_auth import (
    AsyncRedisStorage,
    Commit,
    RedisStorage,
    SubjectSnapshot,
    storage_from_url,
)
from telecard_auth._storage.codec import FORMAT, micros
from telecard_auth._storage.redis import SCAN_COUNT
from telecard_auth.testing import START

NOW = START + timedelta(days=1)


def commit_at(ref: str, keep_until: datetime, *, written_at: datetime = START) -> Commit:
    """A first commit of ``ref`` with nothing in it, kept until ``keep_until``; its incarnation
    is ``inc-<ref>``."""
    return Commit(
        subject_ref=ref,
        expected_version=0,
        incarnation=f"inc-{ref}",
        codes=(),
        failure_logs=(),
        written_at=written_at,
        keep_until=keep_until,
    )


def drop(url: str, *patterns: str) -> None:
    """Delete every key matching the patterns."""
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
def storage(storage_url: UrlFactory) -> Iterator[RedisStorage]:
    """A Redis storage under a fresh prefix, its scripts loaded."""
    built = storage_from_url(storage_url("redis"))
    assert isinstance(built, RedisStorage)
    built.migrate()
    yield built
    built.close()


def test_commit_stores_keep_until_and_sets_the_keys_lifetime(
    storage: RedisStorage, redis_url: str
) -> None:
    """``k`` is keep_until in µs; the key expires keep_until - written_at + grace after writing."""
    keep_until = START + timedelta(hours=2, microseconds=7)
    assert storage.commit(commit_at("a", keep_until)) is True
    # A subject written after its own keep_until still outlives it by the grace period.
    assert storage.commit(commit_at("b", START, written_at=START + timedelta(hours=5))) is True
    bare = RedisStorage(redis_url, prefix=storage.prefix, expiry_grace=timedelta(0))
    with bare:
        assert bare.commit(commit_at("c", keep_until)) is True
    client = storage.client
    assert str(micros(keep_until)).encode() == client.hget(storage.key("a"), "k")
    hour, two_hours = 3_600_000, 7_200_000
    lifetimes = [client.pttl(storage.key(ref)) for ref in ("a", "b", "c")]
    expected = [two_hours + hour + 1, hour + 1, two_hours + 1]  # keep_ms is rounded up
    assert all(high - 5_000 < got <= high for got, high in zip(lifetimes, expected, strict=True))
    assert keep_until == storage.load("a").keep_until


def test_purge_walks_more_keys_than_one_scan_returns(storage: RedisStorage) -> None:
    """Thousands of subjects: each limited call moves the walk on; the last finds none left."""
    due = [f"due{n}" for n in range(2 * SCAN_COUNT + 500)]
    kept = [f"kept{n}" for n in range(10)]
    for ref in due:
        assert storage.commit(commit_at(ref, NOW)) is True
    for ref in kept:
        assert storage.commit(commit_at(ref, NOW + timedelta(microseconds=1))) is True
    counts: list[int] = []
    reported: list[SubjectSnapshot] = []
    while not counts or counts[-1]:
        batch = storage.purge_snapshots(NOW, 700)
        reported += batch
        counts.append(len(batch))
    assert [700, 700, 700, 400, 0] == counts
    assert sorted(due) == sorted(snapshot.subject_ref for snapshot in reported)
    assert {1} == {snapshot.version for snapshot in reported}
    assert all(f"inc-{snapshot.subject_ref}" == snapshot.incarnation for snapshot in reported)
    assert [1] * len(kept) == [storage.load(ref).version for ref in kept]
    assert 0 == storage.purge(NOW, 700)


def test_purge_leaves_other_prefixes_and_foreign_hashes_alone(redis_url: str) -> None:
    """Only ``<prefix>:{…}`` keys written with ``k`` are purged; lookalike prefixes are not."""
    name = "t" + uuid.uuid4().hex[:12]
    prefixes = [name, f"{name}:x", f"{name}x", f"{name}[*]?", f"{name}\\"]
    storages = [RedisStorage(redis_url, prefix=prefix) for prefix in prefixes]
    ours, *others = storages
    try:
        for storage in storages:
            assert storage.commit(commit_at("s", NOW)) is True
        # A hash under the prefix written without k (nor i), as before: left to expire.
        document = f'{{"f":{FORMAT},"c":[],"l":[]}}'
        ours.client.hset(ours.key("legacy"), mapping={"v": "3", "d": document})
        ours.client.pexpire(ours.key("legacy"), 60_000)
        assert (1, 0) == (ours.purge(NOW, 100), ours.purge(NOW, 100))
        assert [0, 3] == [ours.load("s").version, ours.load("legacy").version]
        assert "" == ours.load("legacy").incarnation
        assert [1] * len(others) == [other.load("s").version for other in others]
        # Each prefix, glob characters and all, matches its own keys only.
        for index, other in enumerate(others):
            assert (1, 0) == (other.purge(NOW, 100), other.load("s").version)
            assert [1] * (len(others) - index - 1) == [
                rest.load("s").version for rest in others[index + 1 :]
            ]
    finally:
        for storage in storages:
            storage.client.delete(storage.key("s"), storage.key("legacy"))
            storage.close()


def test_a_client_that_decodes_responses_works_the_same(redis_url: str) -> None:
    """With ``decode_responses=True`` keys and replies are text: load and purge still work."""
    import redis

    prefix = "t" + uuid.uuid4().hex[:12]
    storage = RedisStorage(redis.Redis.from_url(redis_url, decode_responses=True), prefix=prefix)
    try:
        storage.migrate()
        change = commit_at("text", NOW)
        assert storage.commit(change) is True
        loaded = storage.load("text")
        assert (1, "inc-text", NOW) == (loaded.version, loaded.incarnation, loaded.keep_until)
        assert ([loaded], None) == storage.scan_subjects(None, 10**6)
        (deleted,) = storage.purge_snapshots(NOW, 10)
        assert ("text", 1, "inc-text", NOW) == (
            deleted.subject_ref,
            deleted.version,
            deleted.incarnation,
            deleted.keep_until,
        )
    finally:
        storage.close()
        drop(redis_url, f"{prefix}:*")


def test_async_purge_walks_more_keys_than_one_scan_returns(redis_url: str) -> None:
    """AsyncRedisStorage walks the keys across calls just as RedisStorage does."""
    prefix = "t" + uuid.uuid4().hex[:12]

    async def scenario() -> list[int]:
        storage = AsyncRedisStorage(redis_url, prefix=prefix)
        try:
            await storage.migrate()
            for n in range(SCAN_COUNT + 200):
                assert await storage.commit(commit_at(f"s{n}", NOW)) is True
            counts: list[int] = []
            while not counts or counts[-1]:
                counts.append(len(await storage.purge_snapshots(NOW, 500)))
            return counts
        finally:
            await storage.close()

    try:
        assert [500, 500, 200, 0] == asyncio.run(scenario())
    finally:
        drop(redis_url, f"{prefix}:*")


@pytest.mark.parametrize("grace", [timedelta(seconds=-1), 3600, None], ids=repr)
def test_expiry_grace_must_be_a_duration_of_zero_or_more(grace: object) -> None:
    """A negative or non-timedelta expiry_grace is refused when the storage is built."""
    from telecard_auth import ConfigurationError

    with pytest.raises(ConfigurationError):
        RedisStorage("redis://127.0.0.1:1/0", expiry_grace=grace)  # type: ignore[arg-type]
