"""The shipped asyncio storage contract suite, run against the four async backends.

Each class builds its async storage from a URL of the ``storage_url`` factory (a fresh SQLite
file, Redis key prefix or PostgreSQL schema, removed after the test), and migrates and closes it
through the test's ``portal``. Every test of the synchronous contract runs again here, with
``AsyncCodeIssuer``; Redis and PostgreSQL tests skip without a server, and fail under ``CI=true``.
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

from telecard_auth import AsyncRedisStorage, AsyncStorage, Storage, async_storage_from_url
from telecard_auth.testing import AsyncStorageContract, BlockingStorage, Portal

#: The ``storage_url`` fixture of ``tests/backends/conftest.py``: backend name to fresh URL.
UrlFactory = Callable[[str], str]


def opened(url: str, portal: Portal) -> Iterator[AsyncStorage]:
    """The async storage at ``url``, migrated where it has a schema, closed after the test."""
    storage = async_storage_from_url(url)
    try:
        migrate = getattr(storage, "migrate", None)
        if migrate is not None:
            portal.call(migrate)
        yield storage
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            portal.call(close)


class TestAsyncMemoryStorage(AsyncStorageContract):
    """The async contract on ``memory://``."""

    @pytest.fixture
    def async_storage(self, storage_url: UrlFactory, portal: Portal) -> Iterator[AsyncStorage]:
        """A fresh in-memory async storage."""
        yield from opened(storage_url("memory"), portal)


class TestAsyncSQLiteStorage(AsyncStorageContract):
    """The async contract on a fresh SQLite file, each call on a worker thread."""

    @pytest.fixture
    def async_storage(self, storage_url: UrlFactory, portal: Portal) -> Iterator[AsyncStorage]:
        """A migrated async SQLite storage in a new file."""
        yield from opened(storage_url("sqlite"), portal)


class TestAsyncRedisStorage(AsyncStorageContract):
    """The async contract on Redis (``redis.asyncio``), under a fresh key prefix; where a test
    deletes a subject, Redis expires its key by itself."""

    @pytest.fixture
    def async_storage(self, storage_url: UrlFactory, portal: Portal) -> Iterator[AsyncStorage]:
        """An async Redis storage under a new key prefix, its script loaded."""
        yield from opened(storage_url("redis"), portal)

    def vanish(self, storage: Storage, subject_ref: str, now: datetime) -> None:
        """Let Redis expire the subject's key by itself."""
        assert isinstance(storage, BlockingStorage)
        assert isinstance(storage.async_storage, AsyncRedisStorage)
        expire_redis_key(REDIS_URL, storage.async_storage.key(subject_ref))
        assert 0 == storage.load(subject_ref).version


class TestAsyncPostgresStorage(AsyncStorageContract):
    """The async contract on PostgreSQL (psycopg's async pool), in a fresh schema."""

    @pytest.fixture
    def async_storage(self, storage_url: UrlFactory, portal: Portal) -> Iterator[AsyncStorage]:
        """A migrated async PostgreSQL storage in a new schema."""
        yield from opened(storage_url("postgres"), portal)
