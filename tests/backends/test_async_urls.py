"""async_storage_from_url: the URLs of storage_from_url, the asyncio flavour of each backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    AsyncPostgresStorage,
    AsyncRedisStorage,
    AsyncSQLiteStorage,
    AsyncStorageBackend,
    CodeIssuer,
    Commit,
    ConfigurationError,
    InvalidStorageUrl,
    Keyring,
    MemoryStorage,
    StorageError,
    SubjectSnapshot,
    async_storage_from_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", AsyncMemoryStorage),
        ("sqlite:///codes.db?synchronous=normal", AsyncSQLiteStorage),
        ("redis://127.0.0.1:6390/0?prefix=p", AsyncRedisStorage),
        ("rediss://127.0.0.1:6390/0", AsyncRedisStorage),
        ("postgresql://127.0.0.1:5432/test?schema=s", AsyncPostgresStorage),
    ],
)
def test_each_scheme_builds_its_async_backend(url: str, expected: type) -> None:
    """Every scheme of the table has an asyncio flavour, built without connecting."""
    storage = async_storage_from_url(url)
    assert expected is type(storage)


def test_async_url_options_reach_the_backend() -> None:
    """The library's own options are read the same way for both flavours."""
    sqlite = async_storage_from_url("sqlite:///codes.db?synchronous=normal")
    redis = async_storage_from_url("redis://127.0.0.1:6390/0?prefix=tenant&expiry_grace=5")
    postgres = async_storage_from_url("postgresql://127.0.0.1:5432/test?schema=audit")
    assert isinstance(sqlite, AsyncSQLiteStorage)
    assert isinstance(redis, AsyncRedisStorage)
    assert isinstance(postgres, AsyncPostgresStorage)
    assert ("normal", "tenant:{r}", timedelta(seconds=5), "audit") == (
        sqlite.sync.synchronous,
        redis.key("r"),
        redis.expiry_grace,
        postgres.schema,
    )


@pytest.mark.parametrize(
    "url", ["mysql://x/y", "sqlite://", "redis://127.0.0.1:6379/0?bogus=1", "memory://h", 7]
)
def test_bad_async_urls_are_refused_like_sync_ones(url: object) -> None:
    """A URL the synchronous factory refuses is refused by the async one with the same error."""
    with pytest.raises(InvalidStorageUrl) as caught:
        async_storage_from_url(url)  # type: ignore[arg-type]
    assert "invalid_storage_url" == caught.value.code


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql://[::1]:5432/test",
            {"host": "::1", "port": "5432", "dbname": "test"},
            id="ipv6",
        ),
        pytest.param(
            "postgresql://[fe80::1%25eth0]:5432/test",
            {"host": "fe80::1%eth0", "port": "5432", "dbname": "test"},
            id="ipv6-zone",
        ),
        pytest.param(
            "postgresql://app:p%40ss%3Aw%2Fo%25rd%20x%23@127.0.0.1:5432/test",
            {
                "user": "app",
                "password": "p@ss:w/o%rd x#",
                "host": "127.0.0.1",
                "port": "5432",
                "dbname": "test",
            },
            id="encoded-password",
        ),
        pytest.param(
            "postgresql://h1.example.invalid:5432,h2.example.invalid:5433/test"
            "?target_session_attrs=read-write",
            {
                "host": "h1.example.invalid,h2.example.invalid",
                "port": "5432,5433",
                "dbname": "test",
                "target_session_attrs": "read-write",
            },
            id="host-list",
        ),
        pytest.param(
            "postgresql://h1.example.invalid,h2.example.invalid/test",
            {"host": "h1.example.invalid,h2.example.invalid", "port": ",", "dbname": "test"},
            id="host-list-default-ports",
        ),
        pytest.param(
            "postgresql:///test?host=/var/run/postgresql",
            {"host": "/var/run/postgresql", "dbname": "test"},
            id="unix-socket-in-query",
        ),
        pytest.param(
            "postgresql://app@%2Fvar%2Frun%2Fpostgresql/test",
            {"user": "app", "host": "/var/run/postgresql", "dbname": "test"},
            id="unix-socket-encoded-host",
        ),
        pytest.param(
            "postgresql://:5432/test", {"port": "5432", "dbname": "test"}, id="default-host"
        ),
        pytest.param(
            "postgresql://127.0.0.1/test?hostaddr=127.0.0.1&port=5432",
            {"host": "127.0.0.1", "hostaddr": "127.0.0.1", "port": "5432", "dbname": "test"},
            id="hostaddr-and-port-options",
        ),
        pytest.param(
            "POSTGRES://db.example.invalid/test?schema=s&application_name=a+b%26c",
            {"host": "db.example.invalid", "dbname": "test", "application_name": "a+b&c"},
            id="options-as-libpq-reads-them",
        ),
    ],
)
def test_legitimate_postgres_urls_reach_libpq_as_written(
    url: str, expected: dict[str, str]
) -> None:
    """IPv6, host lists, unix sockets and libpq options reach libpq as they read; no connection."""
    from psycopg.conninfo import conninfo_to_dict

    storage = async_storage_from_url(url)
    assert isinstance(storage, AsyncPostgresStorage)
    conninfo = storage.pool.conninfo
    assert isinstance(conninfo, str)
    assert expected == conninfo_to_dict(conninfo)


def test_issuers_refuse_the_other_flavour_of_storage() -> None:
    """CodeIssuer wants a Storage and AsyncCodeIssuer an AsyncStorage; a mix-up fails at once."""
    keyring = Keyring.generate()
    with pytest.raises(ConfigurationError):
        CodeIssuer(AsyncMemoryStorage(), keyring=keyring)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError):
        AsyncCodeIssuer(MemoryStorage(), keyring=keyring)  # type: ignore[call-overload]


class HalfAsync:
    """A storage whose commit is a coroutine while load and purge are not."""

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """An empty snapshot."""
        return SubjectSnapshot(subject_ref=subject_ref)

    async def commit(self, change: Commit) -> bool:
        """A coroutine where a plain call is expected."""
        return True

    def purge(self, now: datetime, limit: int) -> int:
        """Nothing to purge."""
        return 0


def test_a_storage_mixing_flavours_is_refused() -> None:
    """A storage with some coroutine methods and some plain ones suits neither issuer."""
    keyring = Keyring.generate()
    with pytest.raises(ConfigurationError):
        CodeIssuer(HalfAsync(), keyring=keyring)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError):
        AsyncCodeIssuer(HalfAsync(), keyring=keyring)  # type: ignore[call-overload]


@pytest.mark.parametrize("used", [False, True], ids=["never-used", "used"])
def test_a_closed_async_postgres_storage_stays_closed(
    used: bool, storage_url: Callable[[str], str]
) -> None:
    """After close(), an AsyncPostgresStorage refuses every call instead of reopening a pool."""
    storage = async_storage_from_url(storage_url("postgres"))
    assert isinstance(storage, AsyncPostgresStorage)

    async def scenario() -> None:
        await storage.migrate()
        if used:
            assert 0 == (await storage.load("someone")).version
        await storage.close()
        with pytest.raises(StorageError):
            await storage.load("someone")
        with pytest.raises(StorageError):
            await storage.migrate()

    asyncio.run(scenario())
    assert storage.pool.closed


def test_a_closed_async_sqlite_storage_refuses_calls(tmp_path: Path) -> None:
    """After close(), AsyncSQLiteStorage refuses calls with StorageError; closing twice is fine."""
    storage = async_storage_from_url(f"sqlite:///{tmp_path / 'codes.db'}")
    assert isinstance(storage, AsyncSQLiteStorage)

    async def scenario() -> None:
        await storage.migrate()
        assert 0 == (await storage.load("someone")).version
        await storage.close()
        await storage.close()
        with pytest.raises(StorageError):
            await storage.load("someone")

    asyncio.run(scenario())


def test_every_async_backend_has_the_life_cycle_async_storage_from_url_promises() -> None:
    """Each async backend class is an AsyncStorageBackend (mypy checks the list too)."""
    backends: list[type[AsyncStorageBackend]] = [
        AsyncMemoryStorage,
        AsyncSQLiteStorage,
        AsyncRedisStorage,
        AsyncPostgresStorage,
    ]
    assert all(issubclass(backend, AsyncStorageBackend) for backend in backends)
    assert not issubclass(MemoryStorage, AsyncStorageBackend)


def test_async_memory_storage_takes_the_calls_every_backend_takes() -> None:
    """migrate, close and the async with-block work on memory://, as on every other backend."""
    from telecard_auth import Subject

    async def walk() -> tuple[str, str]:
        async with async_storage_from_url("memory://") as storage:
            await storage.migrate()
            issuer = AsyncCodeIssuer(storage, keyring=Keyring.generate())
            customer = Subject.citizen("1000000008")
            issued = await issuer.issue(customer, "stc")
        await storage.close()
        redeemed = await issuer.redeem(customer, "stc", issued.code, "new_line")
        return issued.code_id, redeemed.code_id

    issued_id, redeemed_id = asyncio.run(walk())
    assert issued_id == redeemed_id
