"""The shipped contract suites on a PostgreSQL primary and its synchronous standby.

Each storage is built from the pair's multi-host URL (``postgresql://127.0.0.1:P,127.0.0.1:S/
postgres?target_session_attrs=read-write``) in a fresh schema: libpq settles on the primary, and
every commit is acknowledged only once the standby has flushed it. Sync and asyncio alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

# Rewrite the suite's asserts for readable failures; too late (and so skipped) if already imported.
if "telecard_auth.testing" not in sys.modules:
    pytest.register_assert_rewrite("telecard_auth.testing")

from telecard_auth import (
    AsyncPostgresStorage,
    AsyncStorage,
    PostgresStorage,
    Storage,
    async_storage_from_url,
    storage_from_url,
)
from telecard_auth.testing import AsyncStorageContract, Portal, StorageContract


class TestReplicatedPostgresStorage(StorageContract):
    """The contract through the pair's host list, on the primary, with a synchronous standby."""

    @pytest.fixture
    def storage(self, replicated_url: str) -> Iterator[Storage]:
        """A migrated PostgresStorage in a new schema of the pair."""
        storage = storage_from_url(replicated_url)
        assert isinstance(storage, PostgresStorage)
        try:
            storage.migrate()
            yield storage
        finally:
            storage.close()


class TestAsyncReplicatedPostgresStorage(AsyncStorageContract):
    """The asyncio contract through the pair's host list (psycopg's async pool)."""

    @pytest.fixture
    def async_storage(self, replicated_url: str, portal: Portal) -> Iterator[AsyncStorage]:
        """A migrated AsyncPostgresStorage in a new schema of the pair."""
        storage = async_storage_from_url(replicated_url)
        assert isinstance(storage, AsyncPostgresStorage)
        try:
            portal.call(storage.migrate)
            yield storage
        finally:
            portal.call(storage.close)
