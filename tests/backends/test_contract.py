"""The shipped storage contract suite, run against the four backends of this repository.

Each class builds its storage from a URL of the ``storage_url`` factory (a fresh SQLite file, Redis
key prefix or PostgreSQL schema, removed after the test), migrates it and closes it afterwards.
Redis and PostgreSQL tests skip without a server, and fail under ``CI=true``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

# Rewrite the suite's asserts for readable failures; too late (and so skipped) if already imported.
if "telecard_auth.testing" not in sys.modules:
    pytest.register_assert_rewrite("telecard_auth.testing")

from tests.backends.conftest import REDIS_URL, expire_redis_key

from telecard_auth import RedisStorage, Storage, storage_from_url
from telecard_auth.testing import StorageContract

#: The ``storage_url`` fixture of ``tests/backends/conftest.py``: backend name to fresh URL.
UrlFactory = Callable[[str], str]


def opened(url: str) -> Iterator[Storage]:
    """The storage at ``url``, migrated where it has a schema, closed when the test is done."""
    storage = storage_from_url(url)
    try:
        migrate = getattr(storage, "migrate", None)
        if migrate is not None:
            migrate()
        yield storage
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            close()


class TestMemoryStorage(StorageContract):
    """The contract on ``memory://``."""

    @pytest.fixture
    def storage(self, storage_url: UrlFactory) -> Iterator[Storage]:
        """A fresh in-memory storage."""
        yield from opened(storage_url("memory"))


class TestSQLiteStorage(StorageContract):
    """The contract on a fresh SQLite file (WAL, synchronous=FULL)."""

    @pytest.fixture
    def storage(self, storage_url: UrlFactory) -> Iterator[Storage]:
        """A migrated SQLite storage in a new file."""
        yield from opened(storage_url("sqlite"))


class TestRedisStorage(StorageContract):
    """The contract on Redis, under a fresh key prefix: purge deletes ahead of native expiry.

    Where a test deletes a subject, Redis expires its key by itself instead of a purge: the
    contract holds on that path too.
    """

    @pytest.fixture
    def storage(self, storage_url: UrlFactory) -> Iterator[Storage]:
        """A Redis storage under a new key prefix, its script loaded."""
        yield from opened(storage_url("redis"))

    def vanish(self, storage: Storage, subject_ref: str, now: datetime) -> None:
        """Let Redis expire the subject's key by itself."""
        assert isinstance(storage, RedisStorage)
        expire_redis_key(REDIS_URL, storage.key(subject_ref))
        assert 0 == storage.load(subject_ref).version


class TestPostgresStorage(StorageContract):
    """The contract on PostgreSQL, in a fresh schema."""

    @pytest.fixture
    def storage(self, storage_url: UrlFactory) -> Iterator[Storage]:
        """A migrated PostgreSQL storage in a new schema."""
        yield from opened(storage_url("postgres"))
