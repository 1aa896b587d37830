"""A real Redis Cluster (three primaries, three replicas) and a replicated Redis (one primary, one
replica), started on loopback ports once per test session and stopped by process id afterwards.

Without ``redis-server`` and ``redis-cli`` (or redis-py) the tests that need them skip with the
reason; with ``CI=true`` they fail instead: CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from tests.backends.cluster.servers import (
    Cluster,
    Replicated,
    binaries,
    running_cluster,
    running_replicated,
)
from tests.helpers import unavailable

#: Builds the URL of a fresh storage (its own key prefix) on the cluster, with extra options.
ClusterUrl = Callable[..., str]


def require_servers() -> None:
    """Return if the cluster's servers can start here; else a skip (a failure under CI=true)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py (the 'redis' extra) is not installed")
    if binaries() is None:
        unavailable("redis-server and redis-cli, which start the test servers, are not on PATH")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Six ``redis-server`` processes joined into a cluster: 3 primaries, 1 replica each."""
    require_servers()
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def replicated_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    """A Redis primary and its replica, no cluster."""
    require_servers()
    with running_replicated(tmp_path_factory.mktemp("redis-replicated")) as pair:
        yield pair


@pytest.fixture
def cluster_url(redis_cluster: Cluster) -> Iterator[ClusterUrl]:
    """A factory of ``redis+cluster://`` URLs, each under a fresh key prefix whose keys are
    deleted afterwards from every primary; keyword arguments become query options."""
    prefixes: list[str] = []

    def make(**options: object) -> str:
        prefix = "c" + uuid.uuid4().hex[:12]
        prefixes.append(prefix)
        query = "&".join(f"{name}={value}" for name, value in {"prefix": prefix, **options}.items())
        return f"{redis_cluster.url}?{query}"

    yield make
    for prefix in prefixes:
        drop_prefix(redis_cluster, prefix)


def drop_prefix(cluster: Cluster, prefix: str) -> None:
    """Delete every key under ``prefix`` on every live primary."""
    for port, (role, _) in cluster.roles().items():
        if role != "master":
            continue
        with contextlib.closing(cluster.server(port).client()) as client:
            for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
                client.delete(key)


def expire_cluster_key(cluster: Cluster, key: str) -> None:
    """Let the cluster expire ``key`` by itself: its time to live is cut to a millisecond, and
    its primary drops it when it is next read past that (each read below is such a read)."""
    server = cluster.primary_of(key)
    with contextlib.closing(server.client()) as client:
        assert client.pexpire(key, 1)
        deadline = time.monotonic() + 5
        while client.exists(key):
            assert time.monotonic() < deadline, "Redis did not expire the key"
