"""How the storage runs on a real Redis Cluster, read behind its back: one slot per subject, walks
over every primary, redirections, and what a commit whose answer is lost, or that too few
replicas confirm, answers. Also ``replicas`` on a plain Redis primary with one replica.

Servers are stalled with ``DEBUG SLEEP`` (shorter than the cluster's node timeout, so no failover
starts) to lose an answer for certain: the client gives up first, the server then runs the
command it had already received.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from tests.backends.cluster.conftest import ClusterUrl
from tests.backends.cluster.servers import Cluster, Replicated, Server, wait_for
from tests.backends.faults import HookedStorage, Position
from tests.backends.workers import subject_for
from tests.helpers import START

from telecard_auth import (
    CodeIssuer,
    CodeState,
    Commit,
    Keyring,
    ManualClock,
    RedisStorage,
    StorageError,
    StorageOutcomeUnknown,
    async_storage_from_url,
    storage_from_url,
)
from telecard_auth._core.requests import identity_of
from telecard_auth._storage.redis_cluster import AsyncRedisClusterStorage, RedisClusterStorage

PROVIDER = "mobily"
SERVICE = "new_line"
NOW = START + timedelta(days=2)


def commit_of(ref: str, *, keep_until: Any = None, version: int = 0) -> Commit:
    """A commit of ``ref`` with nothing in it at ``version``, kept until ``keep_until`` (a day
    after START by default); its incarnation is ``inc-<ref>``."""
    return Commit(
        subject_ref=ref,
        expected_version=version,
        incarnation=f"inc-{ref}",
        codes=(),
        failure_logs=(),
        written_at=START,
        keep_until=keep_until or START + timedelta(days=1),
    )


@pytest.fixture
def storage(cluster_url: ClusterUrl) -> Iterator[RedisClusterStorage]:
    """A cluster storage under a fresh prefix, its scripts loaded."""
    built = storage_from_url(cluster_url())
    assert isinstance(built, RedisClusterStorage)
    built.migrate()
    yield built
    built.close()


def evalsha_calls(server: Server) -> int:
    """How many ``EVALSHA`` the server has run a script for (not counting those it answered with
    an error, such as ``NOSCRIPT`` from a promoted replica that had not loaded it yet)."""
    stats = server.info("commandstats").get("cmdstat_evalsha", {})
    if not isinstance(stats, dict):
        return 0
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


def node_id(server: Server) -> str:
    """The server's cluster node id."""
    with contextlib.closing(server.client()) as client:
        answer: Any = client.execute_command("CLUSTER", "MYID")
    return answer.decode() if isinstance(answer, bytes) else str(answer)


# --- slots and walks ----------------------------------------------------------------------------


def test_each_subject_is_on_one_slot_and_subjects_spread_over_every_primary(
    storage: RedisClusterStorage, redis_cluster: Cluster
) -> None:
    """A key's slot is its hash tag's slot; 30 subjects land on all three primaries."""
    refs = [f"s{n}" for n in range(30)]
    for ref in refs:
        assert storage.commit(commit_of(ref))
    assert [redis_cluster.keyslot("{" + ref + "}") for ref in refs] == [
        redis_cluster.keyslot(storage.key(ref)) for ref in refs
    ]
    holders = {redis_cluster.primary_of(storage.key(ref)).port for ref in refs}
    primaries = {port for port, (role, _) in redis_cluster.roles().items() if role == "master"}
    assert primaries == holders


def test_scan_subjects_walks_every_primary_and_resumes_from_its_cursors(
    storage: RedisClusterStorage,
) -> None:
    """Pages of 4 from each primary in turn: every subject at least once, cursors of our own."""
    refs = {f"s{n}" for n in range(40)}
    for ref in refs:
        assert storage.commit(commit_of(ref))
    seen, cursors, cursor = [], [], None
    while True:
        page, cursor = storage.scan_subjects(cursor, 4)
        seen += [snapshot.subject_ref for snapshot in page]
        if cursor is None:
            break
        cursors.append(cursor)
    assert refs == set(seen)
    assert [4] * len(cursors) == [len(cursor.split(".")) for cursor in cursors]
    # The first page again, from a cursor of another slot layout: the walk starts over.
    other = ".".join(["0" * 8, *cursors[0].split(".")[1:]])
    assert storage.scan_subjects(None, 4) == storage.scan_subjects(other, 4)


@pytest.mark.parametrize("cursor", ["", "0", "12", "next", "a.b.c.d", "0000000g.0.00000000.0"])
def test_a_cursor_the_storage_never_gave_is_a_storage_error(
    storage: RedisClusterStorage, cursor: str
) -> None:
    """A cursor not of the storage's own form is StorageError, before anything is scanned."""
    with pytest.raises(StorageError) as caught:
        storage.scan_subjects(cursor, 10)
    assert "the scan cursor is not one this storage returned" == caught.value.details["reason"]


def test_purge_walks_every_primary_in_bounded_batches(storage: RedisClusterStorage) -> None:
    """Due subjects on three primaries go 7 at a time, each reported once; those not due stay."""
    due = {f"due{n}" for n in range(30)}
    for ref in due:
        assert storage.commit(commit_of(ref, keep_until=START))
    for n in range(5):
        assert storage.commit(commit_of(f"later{n}", keep_until=NOW + timedelta(days=1)))
    reported: list[str] = []
    while batch := storage.purge_snapshots(NOW, 7):
        assert len(batch) <= 7
        reported += [snapshot.subject_ref for snapshot in batch]
    assert (due, 30, 0) == (set(reported), len(reported), storage.purge(NOW, 100))
    assert [1] * 5 == [storage.load(f"later{n}").version for n in range(5)]


# --- redirections ------------------------------------------------------------------------------


def test_a_commit_follows_ask_to_the_node_its_slot_is_moving_to(
    cluster_url: ClusterUrl, redis_cluster: Cluster
) -> None:
    """A commit to a migrating slot follows ASK and lands once on the importing node."""
    storage = storage_from_url(cluster_url(replicas=1, replica_timeout=5))
    assert isinstance(storage, RedisClusterStorage)
    ref = f"ask-{uuid.uuid4().hex}"
    key = storage.key(ref)
    source = redis_cluster.primary_of(key)
    primaries = [port for port, (role, _) in redis_cluster.roles().items() if role == "master"]
    target = redis_cluster.server(next(port for port in primaries if port != source.port))
    slot = redis_cluster.keyslot(key)
    with contextlib.ExitStack() as stack:
        to: Any = target.client()
        back: Any = source.client()
        stack.callback(to.close)
        stack.callback(back.close)
        to.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
        stack.callback(to.execute_command, "CLUSTER", "SETSLOT", slot, "STABLE")
        back.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
        stack.callback(back.execute_command, "CLUSTER", "SETSLOT", slot, "STABLE")
        before = evalsha_calls(target)
        try:
            assert storage.commit(commit_of(ref))
            assert 1 == storage.load(ref).version
            assert before + 2 == evalsha_calls(target)  # the commit, and the load
            assert 1 == to.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            assert 0 == back.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
        finally:
            pipe = to.pipeline(transaction=False)
            pipe.execute_command("ASKING")
            pipe.delete(key)
            pipe.execute()
            storage.close()


def test_after_a_failover_commits_follow_moved_and_scans_go_on(
    cluster_url: ClusterUrl, redis_cluster: Cluster
) -> None:
    """After a manual failover commits follow MOVED and land once; a walk still lists all."""
    redis_cluster.wait_healthy()
    url = cluster_url()
    storage = storage_from_url(url)
    async_storage = async_storage_from_url(url)
    assert isinstance(storage, RedisClusterStorage)
    assert isinstance(async_storage, AsyncRedisClusterStorage)
    refs = [f"s{n}" for n in range(30)]
    for ref in refs:
        assert storage.commit(commit_of(ref))
    seen = []
    page, cursor = storage.scan_subjects(None, 4)
    seen += [snapshot.subject_ref for snapshot in page]
    assert cursor is not None
    old = redis_cluster.primary_of(storage.key("moved"))
    loop = asyncio.new_event_loop()
    try:
        assert 0 == loop.run_until_complete(async_storage.load("moved")).version
        (replica,) = [p for p, (_, of) in redis_cluster.roles().items() if of == old.port]
        with contextlib.closing(redis_cluster.server(replica).client()) as opened:
            client: Any = opened
            client.execute_command("CLUSTER", "FAILOVER")
        wait_for("the manual failover", lambda: old.info("replication")["role"] == "slave")
        redis_cluster.wait_healthy()
        new = redis_cluster.server(replica)
        before = evalsha_calls(new)
        assert storage.commit(commit_of("moved"))
        assert loop.run_until_complete(async_storage.commit(commit_of("moved", version=1)))
        assert before + 2 == evalsha_calls(new)
        assert 2 == storage.load("moved").version
        while cursor is not None:
            page, cursor = storage.scan_subjects(cursor, 4)
            seen += [snapshot.subject_ref for snapshot in page]
        assert {*refs, "moved"} == set(seen)
    finally:
        loop.run_until_complete(async_storage.close())
        loop.close()
        storage.close()


# --- outcomes that are not known ----------------------------------------------------------------


def test_a_commit_whose_answer_is_lost_is_outcome_unknown_and_never_sent_again(
    cluster_url: ClusterUrl, redis_cluster: Cluster
) -> None:
    """A commit whose answer is lost is StorageOutcomeUnknown, runs once, and its retry replays."""
    url = cluster_url(socket_timeout=0.2)
    keyring = Keyring.generate()
    clock = ManualClock(START)
    subject = subject_for(7)
    inner = storage_from_url(url)
    assert isinstance(inner, RedisClusterStorage)
    primary = redis_cluster.primary_of(inner.key(keyring.subject_ref(identity_of(subject))))
    stalled: list[Any] = []

    def stall(operation: str, position: Position) -> None:
        if operation == "commit" and position is Position.BEFORE and stalled == [None]:
            stalled[0] = primary.stall(0.6)

    issuer = CodeIssuer(HookedStorage(inner, stall), keyring=keyring, clock=clock)
    watcher = CodeIssuer(storage_from_url(url), keyring=keyring, clock=clock)
    try:
        issued = issuer.issue(subject, PROVIDER)
        before = evalsha_calls(primary)
        stalled.append(None)
        first = clock.advance(seconds=1)
        with pytest.raises(StorageOutcomeUnknown) as caught:
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="lost-answer")
        stalled[0].join(10)
        assert "the answer was lost after it was sent" == caught.value.details["reason"]
        assert before + 1 == evalsha_calls(primary)
        assert CodeState.REDEEMED is watcher.status(subject, issued.code_id).state
        clock.advance(seconds=1)
        retried = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="lost-answer")
        assert (first, before + 1) == (retried.redeemed_at, evalsha_calls(primary))
    finally:
        inner.close()
        watcher.storage.close()  # type: ignore[attr-defined]


def test_an_async_commit_whose_answer_is_lost_landed_and_a_resend_is_refused(
    cluster_url: ClusterUrl, redis_cluster: Cluster
) -> None:
    """asyncio: a lost answer is StorageOutcomeUnknown; the commit landed; a re-send is refused."""
    url = cluster_url(socket_timeout=0.2)
    storage = async_storage_from_url(url)
    assert isinstance(storage, AsyncRedisClusterStorage)
    change = commit_of("async-lost")
    primary = redis_cluster.primary_of(storage.key(change.subject_ref))

    async def scenario() -> tuple[str, int, bool, int]:
        async with storage:
            await storage.migrate()
            await storage.load("warm-up")  # the slot map, and a connection, before the stall
            sleeper = primary.stall(0.6)
            try:
                await storage.commit(change)
            except StorageOutcomeUnknown as error:
                reason = error.details["reason"]
            sleeper.join(10)
            version = (await storage.load(change.subject_ref)).version
            again = await storage.commit(change)
            return reason, version, again, (await storage.load(change.subject_ref)).version

    assert ("the answer was lost after it was sent", 1, False, 1) == asyncio.run(scenario())


def _replica_of(cluster: Cluster, primary: Server) -> Server:
    (port,) = [port for port, (_, of) in cluster.roles().items() if of == primary.port]
    return cluster.server(port)


def test_a_replica_that_does_not_confirm_makes_the_outcome_unknown(
    cluster_url: ClusterUrl, redis_cluster: Cluster
) -> None:
    """A replica that does not confirm: StorageOutcomeUnknown, and no replay until it does."""
    url = cluster_url(replicas=1, replica_timeout=0.1)
    keyring, clock, subject = Keyring.generate(), ManualClock(START), subject_for(3)
    inner = storage_from_url(url)
    assert isinstance(inner, RedisClusterStorage)
    primary = redis_cluster.primary_of(inner.key(keyring.subject_ref(identity_of(subject))))
    replica = _replica_of(redis_cluster, primary)
    stalled: list[Any] = []

    def stall(operation: str, position: Position) -> None:
        if operation == "commit" and position is Position.BEFORE and stalled == [None]:
            stalled[0] = replica.stall(0.6)

    issuer = CodeIssuer(HookedStorage(inner, stall), keyring=keyring, clock=clock)
    try:
        issued = issuer.issue(subject, PROVIDER)
        stalled.append(None)
        first = clock.advance(seconds=1)
        with pytest.raises(StorageOutcomeUnknown) as caught:
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="r")
        assert "too few replicas confirmed it in time" == caught.value.details["reason"]
        clock.advance(seconds=1)
        with pytest.raises(StorageError) as refused:
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="r")
        assert "storage_error" == refused.value.code
        stalled[0].join(10)
        clock.advance(seconds=1)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="r")
        assert first == redemption.redeemed_at
    finally:
        inner.close()


def test_a_replica_that_does_not_confirm_an_async_commit(
    cluster_url: ClusterUrl, redis_cluster: Cluster
) -> None:
    """asyncio: a replica that does not confirm makes a commit unknown and its load fail."""
    storage = async_storage_from_url(cluster_url(replicas=1, replica_timeout=0.1))
    assert isinstance(storage, AsyncRedisClusterStorage)
    replica = _replica_of(redis_cluster, redis_cluster.primary_of(storage.key("few")))

    async def scenario() -> tuple[str, str, int]:
        async with storage:
            await storage.load("warm-up")
            sleeper = replica.stall(0.6)
            try:
                await storage.commit(commit_of("few"))
            except StorageOutcomeUnknown as error:
                unknown = error.code
            try:
                await storage.load("few")
            except StorageError as error:
                refused = error.code
            sleeper.join(10)
            return unknown, refused, (await storage.load("few")).version

    assert ("storage_outcome_unknown", "storage_error", 1) == asyncio.run(scenario())


# --- a plain Redis primary with a replica -------------------------------------------------------


def test_replicas_on_a_redis_primary_confirm_each_redemption_on_its_replica(
    replicated_redis: Replicated,
) -> None:
    """redis:// with replicas=1: once a redemption is acknowledged, the replica holds it."""
    prefix = "r" + uuid.uuid4().hex[:12]
    storage = storage_from_url(f"{replicated_redis.url}?prefix={prefix}&replicas=1")
    assert isinstance(storage, RedisStorage)
    keyring, clock = Keyring.generate(), ManualClock(START)
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock)
    replica = replicated_redis.replica.client()
    try:
        for n in range(5):
            subject = subject_for(n)
            issued = issuer.issue(subject, PROVIDER)
            redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=f"q{n}")
            key = storage.key(keyring.subject_ref(identity_of(subject)))
            assert [b"2"] == replica.hmget(key, ["v"])
            assert redemption == issuer.redeem(
                subject, PROVIDER, issued.code, SERVICE, request_id=f"q{n}"
            )
    finally:
        replica.close()
        storage.close()


def test_replicas_on_an_async_redis_primary_confirm_each_commit(
    replicated_redis: Replicated,
) -> None:
    """asyncio redis:// with replicas=1: an acknowledged commit is on the replica already."""
    prefix = "r" + uuid.uuid4().hex[:12]
    storage = async_storage_from_url(f"{replicated_redis.url}?prefix={prefix}&replicas=1")
    replica = replicated_redis.replica.client()

    async def scenario() -> list[object]:
        async with storage:
            await storage.migrate()
            landed = await storage.commit(commit_of("a"))
            held = replica.hmget(storage.key("a"), ["v", "i"])  # type: ignore[attr-defined]
            again = await storage.commit(commit_of("a"))
            return [landed, held, again, (await storage.load("a")).version]

    try:
        assert [True, [b"1", b"inc-a"], False, 1] == asyncio.run(scenario())
    finally:
        replica.close()


def test_a_lost_answer_from_a_redis_primary_is_outcome_unknown(
    replicated_redis: Replicated,
) -> None:
    """redis://: a commit whose answer is lost is StorageOutcomeUnknown and runs once."""
    prefix = "r" + uuid.uuid4().hex[:12]
    storage = storage_from_url(
        f"{replicated_redis.url}?prefix={prefix}&replicas=1&replica_timeout=0.1&socket_timeout=0.2"
    )
    primary = replicated_redis.primary
    try:
        storage.migrate()
        assert 0 == storage.load("lost").version
        before = evalsha_calls(primary)
        sleeper = primary.stall(0.6)
        with pytest.raises(StorageOutcomeUnknown) as caught:
            storage.commit(commit_of("lost"))
        sleeper.join(10)
        assert "the answer was lost after it was sent" == caught.value.details["reason"]
        assert (before + 1, 1) == (evalsha_calls(primary), storage.load("lost").version)
    finally:
        storage.close()


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:1/0?replicas=1", "redis+cluster://127.0.0.1:1,127.0.0.1:2?replicas=1"],
    ids=["redis", "cluster"],
)
def test_a_commit_that_cannot_be_sent_is_a_plain_storage_error(url: str) -> None:
    """Nothing listens: the commit was never sent, so the error says nothing was applied."""
    storage = storage_from_url(url)
    with pytest.raises(StorageError) as caught:
        storage.commit(commit_of("nowhere"))
    assert ("storage_error", "the database cannot be reached") == (
        caught.value.code,
        caught.value.details["reason"],
    )
    storage.close()
