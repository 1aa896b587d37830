"""async_storage_from_url: the URLs of storage_from_url, the asyncio flavour of each backend."""

from __future__ import annotations

import pytest

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    AsyncPostgresStorage,
    AsyncRedisStorage,
    AsyncSQLiteStorage,
    CodeIssuer,
    ConfigurationError,
    InvalidStorageUrl,
    Keyring,
    MemoryStorage,
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
    redis = async_storage_from_url("redis://127.0.0.1:6390/0?prefix=tenant")
    postgres = async_storage_from_url("postgresql://127.0.0.1:5432/test?schema=audit")
    assert isinstance(sqlite, AsyncSQLiteStorage)
    assert isinstance(redis, AsyncRedisStorage)
    assert isinstance(postgres, AsyncPostgresStorage)
    assert ("normal", "tenant:{r}", "audit") == (
        sqlite.sync.synchronous,
        redis.key("r"),
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


def test_issuers_refuse_the_other_flavour_of_storage() -> None:
    """CodeIssuer wants a Storage and AsyncCodeIssuer an AsyncStorage; a mix-up fails at once."""
    keyring = Keyring.generate()
    with pytest.raises(ConfigurationError):
        CodeIssuer(AsyncMemoryStorage(), keyring=keyring)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncCodeIssuer(MemoryStorage(), keyring=keyring)  # type: ignore[arg-type]
