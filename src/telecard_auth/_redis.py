"""Redis storage (extra ``redis``): one hash per subject, changed only by one Lua script.

Layout: ``<prefix>:{<subject_ref>}`` is a hash holding ``v`` (the version) and ``d`` (the state
document). The braces are a hash tag: everything about one subject lives on one cluster slot, and
so will any key added beside it later. The key expires when nothing of the subject matters any more
(``Commit.keep_until``), so Redis purges by itself and ``purge`` has nothing to do.

Loading is one ``HMGET``; committing is one ``EVALSHA`` of ``lua/commit.lua``, loaded once per
server and called by its SHA (redis-py reloads it if the server forgot it).

Durability is the server's: an acknowledged redemption survives a Redis restart only if the server
persists every write (``appendonly yes`` with ``appendfsync always``), or replicates it before
answering. Configure the server accordingly where that guarantee is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from importlib.resources import files
from typing import Any

try:
    import redis
    import redis.asyncio
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    from telecard_auth._errors import MissingExtra

    raise MissingExtra(backend="Redis", extra="redis") from error

from telecard_auth._codec import decode_state, encode_state
from telecard_auth._errors import ConfigurationError, StorageError
from telecard_auth._storage import Commit, SubjectSnapshot

__all__ = ["COMMIT_SCRIPT", "AsyncRedisStorage", "RedisStorage"]

#: The compare-and-set script, shipped as a package resource.
COMMIT_SCRIPT = files("telecard_auth").joinpath("lua/commit.lua").read_text(encoding="utf-8")


class _Layout:
    """Where a subject lives and what the script is given: shared by both Redis storages."""

    prefix: str

    def key(self, subject_ref: str) -> str:
        """The hash that holds everything about ``subject_ref``."""
        return f"{self.prefix}:{{{subject_ref}}}"

    @staticmethod
    def _arguments(change: Commit) -> list[Any]:
        keep_ms = max(1, math.ceil((change.keep_until - change.written_at).total_seconds() * 1000))
        return [change.expected_version, encode_state(change), keep_ms]

    @staticmethod
    def _snapshot(
        subject_ref: str, version: bytes | str | None, state: bytes | str | None
    ) -> SubjectSnapshot:
        if version is None or state is None:
            return SubjectSnapshot(subject_ref=subject_ref)
        return decode_state(subject_ref, int(version), state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"


def _client(url: str, factory: Callable[[str], Any]) -> Any:
    try:
        client = factory(url)
        pool = client.connection_pool
        # Building (not opening) a connection checks the URL's options now, not later.
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(reason=f"the Redis URL is not valid: {error}") from None
    return client


class RedisStorage(_Layout):
    """Storage in Redis. ``client`` is a ``redis.Redis`` or a ``redis://`` / ``rediss://`` URL."""

    def __init__(self, client: redis.Redis | str, *, prefix: str = "telecard") -> None:
        self.client: redis.Redis = (
            _client(client, redis.Redis.from_url) if isinstance(client, str) else client
        )
        self.prefix = prefix
        self._commit = self.client.register_script(COMMIT_SCRIPT)

    def migrate(self) -> None:
        """Load the script on the server ahead of the first commit. There is no schema."""
        try:
            self.client.script_load(COMMIT_SCRIPT)
        except redis.RedisError as error:
            raise StorageError(reason=f"Redis: {error}") from error

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """One ``HMGET``; see ``Storage.load``."""
        try:
            version, state = self.client.hmget(self.key(subject_ref), ["v", "d"])
        except redis.RedisError as error:
            raise StorageError(reason=f"Redis: {error}") from error
        return self._snapshot(subject_ref, version, state)

    def commit(self, change: Commit) -> bool:
        """One script call, compare-and-set; see ``Storage.commit``."""
        arguments = self._arguments(change)
        try:
            return bool(self._commit(keys=[self.key(change.subject_ref)], args=arguments))
        except redis.RedisError as error:
            raise StorageError(reason=f"Redis: {error}") from error

    def purge(self, now: datetime, limit: int) -> int:
        """Nothing to do: each subject's key expires by itself at its ``keep_until``."""
        return 0

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def __enter__(self) -> RedisStorage:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncRedisStorage(_Layout):
    """``RedisStorage`` for asyncio (``redis.asyncio``): the same keys, script and documents."""

    def __init__(self, client: redis.asyncio.Redis | str, *, prefix: str = "telecard") -> None:
        self.client: redis.asyncio.Redis = (
            _client(client, redis.asyncio.Redis.from_url) if isinstance(client, str) else client
        )
        self.prefix = prefix
        self._commit = self.client.register_script(COMMIT_SCRIPT)

    async def migrate(self) -> None:
        """See ``RedisStorage.migrate``."""
        try:
            await self.client.script_load(COMMIT_SCRIPT)
        except redis.RedisError as error:
            raise StorageError(reason=f"Redis: {error}") from error

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``RedisStorage.load``."""
        try:
            version, state = await self.client.hmget(self.key(subject_ref), ["v", "d"])
        except redis.RedisError as error:
            raise StorageError(reason=f"Redis: {error}") from error
        return self._snapshot(subject_ref, version, state)

    async def commit(self, change: Commit) -> bool:
        """See ``RedisStorage.commit``."""
        arguments = self._arguments(change)
        try:
            return bool(await self._commit(keys=[self.key(change.subject_ref)], args=arguments))
        except redis.RedisError as error:
            raise StorageError(reason=f"Redis: {error}") from error

    async def purge(self, now: datetime, limit: int) -> int:
        """See ``RedisStorage.purge``."""
        return 0

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisStorage:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
