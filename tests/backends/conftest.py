"""Real servers for the backend tests, and isolated, self-cleaning storages on them.

PostgreSQL and Redis URLs come from ``TELECARD_TEST_POSTGRES_URL`` and ``TELECARD_TEST_REDIS_URL``
(defaults: the local services on 127.0.0.1). Without a server the tests skip with the reason, but
with ``CI=true`` a missing server fails the run: CI never passes by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from tests.helpers import unavailable

POSTGRES_URL = os.environ.get("TELECARD_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TELECARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ("memory", "sqlite", "redis", "postgres")

#: Builds the URL of a fresh, empty, isolated storage of the named backend.
UrlFactory = Callable[[str], str]


def _unavailable(what: str, error: Exception) -> NoReturn:
    unavailable(f"{what} is not reachable ({type(error).__name__}: {error})")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's URL, checked to answer (skip, or fail under CI, otherwise)."""
    try:
        import psycopg
    except ImportError as error:
        _unavailable("psycopg (the 'postgres' extra)", error)
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        _unavailable("PostgreSQL at " + POSTGRES_URL, error)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server's URL, checked to answer (skip, or fail under CI, otherwise)."""
    try:
        import redis
    except ImportError as error:
        _unavailable("redis-py (the 'redis' extra)", error)
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        _unavailable("Redis at " + REDIS_URL, error)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UrlFactory]:
    """A factory of URLs for fresh storages; whatever they created is removed afterwards."""
    cleanups: list[Callable[[], None]] = []

    def make(backend: str) -> str:
        name = "t" + uuid.uuid4().hex[:12]
        if backend == "memory":
            return "memory://"
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        if backend == "redis":
            url: str = request.getfixturevalue("redis_url")
            cleanups.append(lambda: _drop_redis_prefix(url, name))
            return f"{url}?prefix={name}"
        if backend == "postgres":
            url = request.getfixturevalue("postgres_url")
            _run_postgres(url, f"CREATE SCHEMA {name}")
            cleanups.append(lambda: _run_postgres(url, f"DROP SCHEMA {name} CASCADE"))
            return f"{url}?schema={name}"
        raise ValueError(backend)

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


def _run_postgres(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement.encode())


def _drop_redis_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def expire_redis_key(url: str, key: str) -> None:
    """Let the Redis server at ``url`` expire ``key`` by itself, as it does once a subject's grace
    period ends: its time to live is cut to a millisecond, and the server drops it when it is
    next read past that (each read below is such a read)."""
    import time

    import redis

    client = redis.Redis.from_url(url)
    try:
        assert client.pexpire(key, 1)
        deadline = time.monotonic() + 5
        while client.exists(key):
            assert time.monotonic() < deadline, "Redis did not expire the key"
    finally:
        client.close()
