"""The shipped contract suites, sync and asyncio, on a real Redis Cluster of three primaries and
three replicas: without durable acknowledgements, and with ``replicas=1`` (every commit, and every
load, confirmed by the slot's replica with ``WAIT``).

Each test gets a fresh key prefix (its subjects spread over every shard), deleted afterwards.
Where a test deletes a subject, the cluster expires the key by itself. The redemption race runs
100 rounds here (200 on one Redis server): the cluster adds no code path to it, only network hops.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

# Rewrite the suite's asserts for readable failures; too late (and so skipped) if already imported.
if "telecard_auth.testing" not in sys.modules:
    pytest.register_assert_rewrite("telecard_auth.testing")

from tests.backends.cluster.conftest import ClusterUrl, expire_cluster_key
from tests.backends.cluster.servers import Cluster

from telecard_auth import Storage, async_storage_from_url, storage_from_url
from telecard_auth._storage.protocol import AsyncStorage
from telecard_auth._storage.redis_cluster import AsyncRedisClusterStorage, RedisClusterStorage
from telecard_auth.testing import AsyncStorageContract, BlockingStorage, Portal, StorageContract

RACE_ROUNDS = 100


class TestRedisClusterStorage(StorageContract):
    """The contract on a Redis Cluster, built from a ``redis+cluster://`` URL."""

    race_rounds = RACE_ROUNDS
    options: dict[str, object] = {}  # noqa: RUF012 - read, never changed

    @pytest.fixture
    def storage(self, cluster_url: ClusterUrl) -> Iterator[Storage]:
        """A cluster storage under a new key prefix, its scripts loaded on every primary."""
        storage = storage_from_url(cluster_url(**self.options))
        assert isinstance(storage, RedisClusterStorage)
        try:
            storage.migrate()
            yield storage
        finally:
            storage.close()

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: Cluster) -> None:
        self.cluster = redis_cluster

    def vanish(self, storage: Storage, subject_ref: str, now: datetime) -> None:
        """Let the cluster expire the subject's key by itself."""
        assert isinstance(storage, RedisClusterStorage)
        expire_cluster_key(self.cluster, storage.key(subject_ref))
        assert 0 == storage.load(subject_ref).version


class TestRedisClusterStorageWithReplicas(TestRedisClusterStorage):
    """The contract on a Redis Cluster with ``replicas=1``: each commit and load waits for the
    replica of its slot."""

    options = {"replicas": 1, "replica_timeout": 5}  # noqa: RUF012 - read, never changed


class TestAsyncRedisClusterStorage(AsyncStorageContract):
    """The async contract on a Redis Cluster (``redis.asyncio.cluster``)."""

    race_rounds = RACE_ROUNDS
    options: dict[str, object] = {}  # noqa: RUF012 - read, never changed

    @pytest.fixture
    def async_storage(self, cluster_url: ClusterUrl, portal: Portal) -> Iterator[AsyncStorage]:
        """An async cluster storage under a new key prefix, its scripts loaded."""
        storage = async_storage_from_url(cluster_url(**self.options))
        assert isinstance(storage, AsyncRedisClusterStorage)
        try:
            portal.call(storage.migrate)
            yield storage
        finally:
            portal.call(storage.close)

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: Cluster) -> None:
        self.cluster = redis_cluster

    def vanish(self, storage: Storage, subject_ref: str, now: datetime) -> None:
        """Let the cluster expire the subject's key by itself."""
        assert isinstance(storage, BlockingStorage)
        assert isinstance(storage.async_storage, AsyncRedisClusterStorage)
        expire_cluster_key(self.cluster, storage.async_storage.key(subject_ref))
        assert 0 == storage.load(subject_ref).version


class TestAsyncRedisClusterStorageWithReplicas(TestAsyncRedisClusterStorage):
    """The async contract on a Redis Cluster with ``replicas=1``."""

    options = {"replicas": 1, "replica_timeout": 5}  # noqa: RUF012 - read, never changed
