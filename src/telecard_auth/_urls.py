"""``storage_from_url`` and ``async_storage_from_url``: a backend from a URL.

One explicit scheme table serves both: each entry parses its URL once and builds the synchronous
or the asyncio flavour of its backend. A backend's module, and so its client library, is imported
only when its scheme is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit

from telecard_auth._errors import ConfigurationError, InvalidStorageUrl, clip, plain
from telecard_auth._storage import AsyncStorageBackend, StorageBackend

__all__ = ["async_storage_from_url", "storage_from_url"]


def _options(parts: SplitResult, allowed: set[str]) -> dict[str, str]:
    try:
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise InvalidStorageUrl(reason="its options cannot be parsed") from None
    unknown = set(options) - allowed
    if unknown:
        raise InvalidStorageUrl(reason=f"unknown option {clip(sorted(unknown)[0])!r}")
    return options


@contextmanager
def _as_url_error() -> Iterator[None]:
    # A backend refusing its settings is, from here, a URL that is not valid.
    try:
        yield
    except InvalidStorageUrl:
        raise
    except ConfigurationError as error:
        raise InvalidStorageUrl(reason=error.details.get("reason", error.code)) from error


def _memory(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._memory import AsyncMemoryStorage, MemoryStorage

    if parts.netloc or parts.path or parts.query:
        raise InvalidStorageUrl(reason="memory:// takes no host, path or options")
    return AsyncMemoryStorage() if asynchronous else MemoryStorage()


def _sqlite(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._sqlite import AsyncSQLiteStorage, SQLiteStorage

    # As in SQLAlchemy: sqlite:///relative/file.db and sqlite:////absolute/file.db.
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:  # noqa: PLR2004
        raise InvalidStorageUrl(reason="use sqlite:///relative/path.db or sqlite:////absolute.db")
    options = _options(parts, {"synchronous"})
    synchronous = options.get("synchronous", "full")
    if synchronous not in ("full", "normal"):
        raise InvalidStorageUrl(reason="synchronous must be 'full' or 'normal'")
    backend = AsyncSQLiteStorage if asynchronous else SQLiteStorage
    with _as_url_error():
        return backend(parts.path[1:], synchronous=synchronous)  # type: ignore[arg-type]


def _redis(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._redis import AsyncRedisStorage, RedisStorage

    # redis-py reads its own options (socket_timeout, ssl_ca_certs, …) from the query string.
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for key, value in pairs if key == "prefix"), "telecard")
    if not prefix:
        raise InvalidStorageUrl(reason="prefix cannot be empty")
    grace = next((value for key, value in pairs if key == "expiry_grace"), None)
    settings: dict[str, Any] = {"prefix": prefix}
    if grace is not None:
        settings["expiry_grace"] = _seconds(grace, "expiry_grace")
    own = ("prefix", "expiry_grace")
    query = urlencode([(k, v) for k, v in pairs if k not in own], quote_via=quote)
    backend = AsyncRedisStorage if asynchronous else RedisStorage
    with _as_url_error():
        return backend(parts._replace(query=query).geturl(), **settings)


def _seconds(text: str, name: str) -> timedelta:
    """A URL option's number of seconds (0 or more, decimals allowed) as a duration."""
    try:
        seconds = float(text)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(text)
        return timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        raise InvalidStorageUrl(reason=f"{name} must be a number of seconds, 0 or more") from None


def _postgres(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._postgres import AsyncPostgresStorage, PostgresStorage

    # Only the library's own option is taken out; libpq options stay in the URL.
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in pairs if key == "schema"), "public")
    query = urlencode([(k, v) for k, v in pairs if k != "schema"], quote_via=quote)
    backend = AsyncPostgresStorage if asynchronous else PostgresStorage
    with _as_url_error():
        return backend(parts._replace(query=query).geturl(), schema=schema)


#: Scheme to factory. A factory imports its backend, and so its client library, when called.
SCHEMES: dict[str, Callable[[SplitResult, bool], Any]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "rediss": _redis,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def storage_from_url(url: str) -> StorageBackend:
    """Build the storage a URL names. Call ``migrate()`` once before first use (the SQL backends
    create their schema); ``close()``, or a ``with`` block, releases its connections.

    ==================================  ======================================================
    ``memory://``                       ``MemoryStorage``
    ``sqlite:///codes.db``              ``SQLiteStorage`` (relative path; ``////`` absolute),
                                        option ``?synchronous=normal``
    ``redis://host:6379/0``             ``RedisStorage``; ``rediss://`` for TLS; ``?prefix=``,
                                        ``?expiry_grace=`` (seconds)
    ``postgresql://user@host/db``       ``PostgresStorage``; option ``?schema=``
    ==================================  ======================================================

    >>> storage_from_url("memory://")
    MemoryStorage(subjects=0)
    """
    storage: StorageBackend = _build(url, asynchronous=False)
    return storage


def async_storage_from_url(url: str) -> AsyncStorageBackend:
    """The asyncio flavour of the storage a URL names, for ``AsyncCodeIssuer``.

    The same URLs as ``storage_from_url``, giving ``AsyncMemoryStorage``, ``AsyncSQLiteStorage``
    (calls on its own worker thread), ``AsyncRedisStorage`` (``redis.asyncio``) and
    ``AsyncPostgresStorage`` (psycopg's async pool). Their ``migrate()`` and ``close()`` are
    awaited, and ``async with`` closes.

    >>> async_storage_from_url("memory://")
    AsyncMemoryStorage(subjects=0)
    """
    storage: AsyncStorageBackend = _build(url, asynchronous=True)
    return storage


def _build(url: object, *, asynchronous: bool) -> Any:
    if not isinstance(url, str):
        raise InvalidStorageUrl(reason="a storage URL is a string")
    url = plain(url)
    try:
        # Drivers encode what they are given: refuse what no encoding can carry (lone surrogates).
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidStorageUrl(reason="it holds characters that are not valid text") from None
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise InvalidStorageUrl(reason="it cannot be parsed") from error
    factory = SCHEMES.get(parts.scheme.lower())
    if factory is None:
        known = ", ".join(sorted(SCHEMES))
        raise InvalidStorageUrl(reason=f"unknown scheme {clip(parts.scheme)!r}; use one of {known}")
    return factory(parts, asynchronous)
