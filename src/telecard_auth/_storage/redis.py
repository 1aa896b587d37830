"""Redis storage (extra ``redis``): one hash per subject, changed only by Lua scripts.

Layout: ``<prefix>:{<subject_ref>}`` is a hash holding ``v`` (the version), ``i`` (the
incarnation), ``d`` (the state document) and ``k`` (``Commit.keep_until``, in whole microseconds
since the Unix epoch). The braces are a hash tag: everything about one subject lives on one cluster
slot, and so will any key added beside it later.

Loading is one ``HMGET``; committing is one ``EVALSHA`` of ``lua/commit.lua``, loaded once per
server and called by its SHA (reloaded, on the same connection, if the server forgot it). The
script compares and sets on both ``v`` and ``i``: a commit at version 0 lands only on a key with
no ``v`` and stores the commit's incarnation; any other lands only where ``v`` and ``i`` both
match (a hash written before ``i`` was stored reads as incarnation ``""``). A key that expired by
itself is gone, so the subject's next creation brings a new incarnation, and a request that read
the old key can no longer commit, however many commits the new one has had.

A commit is sent once, never again. redis-py retries a command whose connection failed (a
``redis.Redis`` built directly does, by default; one from a URL with ``retry_on_timeout`` does
on a timeout), and a compare-and-set re-sent after its answer was lost fails on its own write:
the issuer would refuse the very redemption that landed. So each commit takes a connection from
the client's pool and runs the script on it outside redis-py's retry loop; if the connection
fails, the caller gets ``StorageError`` (retrying with the same ``request_id`` then returns the
redemption that landed). Loads and purges still follow the client's retry settings: repeating
them is harmless. A client without a connection pool (``redis.cluster.RedisCluster``) runs the
commit through the client itself: give such a client ``retry=Retry(NoBackoff(), 0)``.

Purging: ``purge`` and ``purge_snapshots`` walk the prefix's keys with ``SCAN`` (``MATCH
<prefix>:{*}``) and hand each key to ``lua/purge.lua``, which deletes it only if its ``k`` is at or
before ``now``, checked and deleted atomically, and returns what the hash held. A commit that lands
first moves ``k`` on, so the key is not deleted; one that comes after finds no version and starts
over from an empty subject, exactly as on the SQL backends. One key per script call keeps it
Redis Cluster safe. The storage object remembers where its ``SCAN`` stopped, so successive calls
move on through the keyspace; a call ends once it has deleted ``limit`` subjects, or once it has
scanned one whole ``SCAN`` cycle (from cursor 0 back to 0), so a call that returns less than
``limit`` has looked at every key. ``SCAN`` walks the whole database, other applications' keys
too, so a database of its own keeps purges short. Keys written before ``k`` was stored are left to
expire by themselves.

Scanning: ``scan_subjects`` is one ``SCAN`` (the same ``MATCH``, ``COUNT`` the page's limit) from
the cursor it is given, then the fields of every key found, read in one pipelined round trip; keys
that hold no version (expired meanwhile, or not written by this library) are skipped. The cursor
is Redis's own, as a decimal string. ``SCAN`` returns every key present for the whole walk, and
may return one more than once if the keyspace shrinks meanwhile (Redis resizes its table after
many deletions).

Native expiry stays as the backstop: every commit sets the key to expire ``keep_until - written_at
+ expiry_grace`` after writing it (``expiry_grace``: one hour unless told otherwise). A purge that
runs within the grace period deletes the subject itself, and so reports its expired codes
(``CodeIssuer.purge`` with event sinks); a subject nobody purges still goes, at the end of the
grace period, without a report. Expiry runs on the Redis server's clock, from the moment of each
write; with ``expiry_grace=timedelta(0)`` a key expires at its ``keep_until`` itself, and a purge
finds only what has not expired yet. Storage URLs take the grace period as ``?expiry_grace=``, in
seconds.

Both storages run the same operations, each written once as a generator of steps (calls to
redis-py): ``RedisStorage`` blocks on each step's answer, ``AsyncRedisStorage`` awaits it, and
redis-py's errors become ``StorageError`` in one place for both.

Durability is the server's: an acknowledged redemption survives a Redis restart only if the server
persists every write (``appendonly yes`` with ``appendfsync always``), or replicates it before
answering. Configure the server accordingly where that guarantee is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from importlib.resources import files
from typing import Any, ClassVar, Generic, TypeVar, cast

try:
    import redis
    import redis.asyncio
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    from telecard_auth._core.errors import MissingExtra

    raise MissingExtra(feature="RedisStorage", extra="redis") from error

from telecard_auth._core.errors import ConfigurationError, StorageError
from telecard_auth._core.text import clip, driver_detail, driver_reason, passwords_in
from telecard_auth._storage.codec import (
    decode_deleted,
    decode_state,
    encode_state,
    from_micros,
    micros,
)
from telecard_auth._storage.protocol import Commit, SubjectSnapshot

__all__ = [
    "COMMIT_SCRIPT",
    "DEFAULT_EXPIRY_GRACE",
    "PURGE_SCRIPT",
    "AsyncRedisStorage",
    "RedisStorage",
]

#: The compare-and-set script, shipped as a package resource.
_LUA = files("telecard_auth._storage").joinpath("lua")
COMMIT_SCRIPT = _LUA.joinpath("commit.lua").read_text(encoding="utf-8")
#: The script that deletes one subject if it is due and returns what it held.
PURGE_SCRIPT = _LUA.joinpath("purge.lua").read_text(encoding="utf-8")
_COMMIT_SHA = hashlib.sha1(COMMIT_SCRIPT.encode("utf-8"), usedforsecurity=False).hexdigest()
#: How long a subject's key outlives its ``keep_until`` before Redis expires it by itself.
DEFAULT_EXPIRY_GRACE = timedelta(hours=1)
#: How many keys one ``SCAN`` call is asked to look at.
SCAN_COUNT = 1000
_FIELDS = ("v", "d", "k", "i")
_MILLISECOND = timedelta(milliseconds=1)

Key = bytes | str
R = TypeVar("R")
Client = TypeVar("Client", bound="redis.Redis | redis.asyncio.Redis")
#: One step of an operation: a call to redis-py. Its answer (awaited, by the async storage) is
#: sent back into the operation, and what it raises is raised there.
Step = Callable[[], Any]
#: An operation written once for both storages: the steps it takes, then what it returns.
Steps = Generator[Step, Any, R]


def _text(value: Key) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a ``SCAN MATCH`` pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class _Scan:
    """One purge's walk through the keys: where ``SCAN`` stands, and the keys it gave not yet seen.

    A walk resumes where the last one stopped. It is over when the keys in hand are used up and
    it has scanned a whole cycle: from cursor 0 until ``SCAN`` answers cursor 0 again.
    """

    def __init__(self, cursor: int, pending: Sequence[Key]) -> None:
        self.cursor = cursor
        self.keys: deque[Key] = deque(pending)
        self._from_start = False

    def next_key(self) -> Key | None:
        """The next key to look at, or ``None`` when a ``SCAN`` is needed (or the walk is over)."""
        return self.keys.popleft() if self.keys else None

    @property
    def over(self) -> bool:
        """Whether a whole cycle has been scanned and every key it gave was looked at."""
        return not self.keys and self.cursor == 0 and self._from_start

    def scan_from(self) -> int:
        """The cursor to ``SCAN`` from next."""
        if self.cursor == 0:
            self._from_start = True
        return self.cursor

    def scanned(self, answer: tuple[int | bytes | str, list[Key]]) -> None:
        """Take in what ``SCAN`` answered: the next cursor and a batch of keys."""
        cursor, keys = answer
        self.cursor = int(cursor)
        self.keys.extend(keys)

    def state(self) -> tuple[int, tuple[Key, ...]]:
        """Where the next walk resumes."""
        return self.cursor, tuple(self.keys)


class _RedisLayout(Generic[Client]):
    """All that both Redis storages share: their settings, where a subject lives, what the
    scripts are given, and every operation, written once as steps (see ``Steps``).

    The twins differ only in how they wait on a step: ``RedisStorage`` blocks on it,
    ``AsyncRedisStorage`` awaits it. Either way redis-py's errors leave as ``StorageError``, in
    one place: ``_as_storage_errors``.
    """

    #: The client class that a URL builds.
    _client_class: ClassVar[type[Any]]

    def __init__(
        self,
        client: Client | str,
        *,
        prefix: str = "telecard",
        expiry_grace: timedelta = DEFAULT_EXPIRY_GRACE,
    ) -> None:
        if not isinstance(expiry_grace, timedelta) or expiry_grace < timedelta(0):
            raise ConfigurationError(reason="expiry_grace must be a timedelta of zero or more")
        self.prefix = prefix
        self.expiry_grace = expiry_grace
        self._grace_ms = math.ceil(expiry_grace / _MILLISECOND)
        self._pattern = _glob_escape(prefix) + ":{*}"
        self._scan_state: tuple[int, tuple[Key, ...]] = (0, ())
        self.client: Client = (
            _client(client, self._client_class.from_url) if isinstance(client, str) else client
        )
        self._describe(client if isinstance(client, str) else None)
        # A Script or an AsyncScript: called, it answers or gives what to await.
        self._commit: Any = self.client.register_script(COMMIT_SCRIPT)
        self._purge: Any = self.client.register_script(PURGE_SCRIPT)
        self._pool = _pool_of(self.client)

    def key(self, subject_ref: str) -> str:
        """The hash that holds everything about ``subject_ref``."""
        return f"{self.prefix}:{{{subject_ref}}}"

    def _subject_ref(self, key: Key) -> str:
        return _text(key)[len(self.prefix) + 2 : -1]

    def _describe(self, url: str | None) -> None:
        """Note the server's address for ``StorageError.detail``, and the passwords it must not
        repeat: the URL's and the client's own."""
        settings = getattr(getattr(self.client, "connection_pool", None), "connection_kwargs", {})
        settings = settings if isinstance(settings, dict) else {}
        password = settings.get("password")
        found = passwords_in(url) if url is not None else ()
        self._secrets = (*found, password) if isinstance(password, str) else found
        user = f"{settings['username']}@" if settings.get("username") else ""
        place = settings.get("path") or f"{settings.get('host', '')}:{settings.get('port', '')}"
        where = f"{user}{place}/{settings.get('db', 0)}" if settings else ""
        self._server = f"Redis {clip(where, 200)}" if where else "Redis"

    @contextlib.contextmanager
    def _as_storage_errors(self) -> Iterator[None]:
        """The one place redis-py's errors become ``StorageError``: fixed words in its messages,
        the driver's in ``detail``."""
        try:
            yield
        except redis.RedisError as error:
            detail = driver_detail(self._server, error, self._secrets)
            raise StorageError(reason=_reason(error), detail=detail) from error

    @staticmethod
    def _hang_up(connection: Any) -> Any:
        """Drop ``connection``, whose answer may still be on its way (the waiting is the twin's)."""
        raise NotImplementedError

    # --- the operations, as steps ----------------------------------------------------------

    def _migrate_steps(self) -> Steps[None]:
        yield partial(self.client.script_load, COMMIT_SCRIPT)
        yield partial(self.client.script_load, PURGE_SCRIPT)

    def _load_steps(self, subject_ref: str) -> Steps[SubjectSnapshot]:
        held = yield partial(self.client.hmget, self.key(subject_ref), _FIELDS)
        return self._snapshot(subject_ref, held)

    def _commit_steps(self, change: Commit) -> Steps[bool]:
        key = self.key(change.subject_ref)
        arguments = self._arguments(change)
        if self._pool is None:
            return bool((yield partial(self._commit, keys=[key], args=arguments)))
        return bool((yield from self._commit_once(*self._pool, key, arguments)))

    def _commit_once(
        self, pool: Any, checkout: tuple[str, ...], key: str, arguments: list[Any]
    ) -> Steps[Any]:
        """Run the commit script once on a connection of ``pool``, outside redis-py's retries."""
        connection = yield partial(pool.get_connection, *checkout)
        try:
            yield partial(connection.send_command, *_evalsha(key, arguments))
            try:
                return (yield connection.read_response)
            except redis.exceptions.NoScriptError:
                pass  # the server ran nothing: it has lost the script (a restart, SCRIPT FLUSH)
            yield partial(connection.send_command, "SCRIPT", "LOAD", COMMIT_SCRIPT)
            yield connection.read_response
            yield partial(connection.send_command, *_evalsha(key, arguments))
            return (yield connection.read_response)
        except redis.ResponseError:
            raise  # the server answered: the connection is in step
        except BaseException:
            # Broken off mid-command (a failure, a cancelled task): an answer may still be on its
            # way, so the connection is never used again.
            with contextlib.suppress(Exception):
                yield partial(self._hang_up, connection)
            raise
        finally:
            yield partial(pool.release, connection)

    def _purge_steps(self, now: datetime, limit: int) -> Steps[list[SubjectSnapshot]]:
        """``SCAN`` from where the last call stopped, and one purge script call per key found."""
        scan = _Scan(*self._scan_state)
        deleted: list[SubjectSnapshot] = []
        arguments = [micros(now)]
        try:
            while len(deleted) < limit and not scan.over:
                key = scan.next_key()
                if key is None:
                    cursor = scan.scan_from()
                    scan.scanned(
                        (
                            yield partial(
                                self.client.scan, cursor, match=self._pattern, count=SCAN_COUNT
                            )
                        )
                    )
                    continue
                held = yield partial(self._purge, keys=[key], args=arguments)
                if held:
                    deleted.append(self._deleted(key, held))
        finally:
            self._scan_state = scan.state()
        return deleted

    def _scan_steps(
        self, after: str | None, limit: int
    ) -> Steps[tuple[list[SubjectSnapshot], str | None]]:
        """One ``SCAN`` with ``COUNT`` ``limit``, then one pipelined ``HMGET`` per key found."""
        cursor = _scan_cursor(after)
        found, keys = yield partial(self.client.scan, cursor, match=self._pattern, count=limit)
        fields: list[Any] = []
        if keys:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, _FIELDS)
            # execute() gives its connection back to the pool itself, however it ends.
            fields = yield pipe.execute
        return self._page(keys, fields), _next_cursor(found)

    # --- what the steps send and what they read back -----------------------------------------

    def _arguments(self, change: Commit) -> list[Any]:
        keep_ms = max(1, math.ceil((change.keep_until - change.written_at).total_seconds() * 1000))
        return [
            change.expected_version,
            change.incarnation,
            encode_state(change),
            micros(change.keep_until),
            keep_ms + self._grace_ms,
        ]

    @staticmethod
    def _snapshot(subject_ref: str, held: Sequence[Key | None]) -> SubjectSnapshot:
        """The snapshot of a hash whose fields ``_FIELDS`` are ``held``."""
        version, state, keep_until, incarnation = held
        if version is None or state is None:
            return SubjectSnapshot(subject_ref=subject_ref)
        keep = None if keep_until is None else from_micros(int(keep_until))
        return decode_state(subject_ref, int(version), _text(incarnation or ""), state, keep)

    def _deleted(self, key: Key, held: Sequence[Key | None]) -> SubjectSnapshot:
        """The snapshot of the hash the purge script deleted at ``key``."""
        version, state, keep_until, incarnation = held
        ref = self._subject_ref(key)
        if version is None or state is None:  # not written by this library: nothing to report
            return SubjectSnapshot(subject_ref=ref)
        keep = None if keep_until is None else from_micros(int(keep_until))
        return decode_deleted(ref, int(version), _text(incarnation or ""), state, keep)

    def _page(
        self, keys: Sequence[Key], fields: Sequence[Sequence[Key | None]]
    ) -> list[SubjectSnapshot]:
        """The snapshots of the scanned ``keys`` whose ``fields`` hold a version and a state."""
        return [
            self._snapshot(self._subject_ref(key), held)
            for key, held in zip(keys, fields, strict=True)
            if held[0] is not None and held[1] is not None
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"


class _Run(Generic[R]):
    """An operation being run: the step it asks for next, given how the last one ended."""

    def __init__(self, steps: Steps[R]) -> None:
        self._steps = steps
        self._answer: Any = None
        self._failure: BaseException | None = None
        self.result: R

    def next_step(self) -> Step | None:
        """The step to take next, or ``None`` once the operation has returned its ``result``."""
        failure, self._failure = self._failure, None
        try:
            return self._steps.send(self._answer) if failure is None else self._steps.throw(failure)
        except StopIteration as done:
            self.result = done.value
            return None

    def answered(self, answer: Any) -> None:
        """The last step returned ``answer``: the operation gets it back."""
        self._answer = answer

    def failed(self, error: BaseException) -> None:
        """The last step raised ``error``: it is raised in the operation, which may handle it."""
        self._failure = error


def _reason(error: redis.RedisError) -> str:
    """Fixed words for what went wrong: a message never carries the driver's own."""
    if isinstance(error, redis.TimeoutError):
        return "the database did not answer in time"
    if isinstance(error, redis.ConnectionError):
        return "the database cannot be reached"
    if isinstance(error, redis.ResponseError):
        return "the database refused the command"
    return "the database failed"


def _scan_cursor(after: str | None) -> int:
    """The ``SCAN`` cursor that ``after`` (a page's cursor, or ``None`` to start) stands for."""
    if after is None:
        return 0
    try:
        return int(after)
    except (TypeError, ValueError):
        raise StorageError(reason="the scan cursor is not one this storage returned") from None


def _next_cursor(cursor: int | bytes | str) -> str | None:
    """The cursor of the next page, from what ``SCAN`` answered: ``None`` once it is back at 0."""
    return None if int(cursor) == 0 else str(int(cursor))


def _pool_of(client: Any) -> tuple[Any, tuple[str, ...]] | None:
    """The client's connection pool and what its ``get_connection`` takes; ``None`` if it has none.

    redis-py from 5.3 on takes no arguments (and warns about any); before, a command name.
    """
    pool: Any = getattr(client, "connection_pool", None)
    if not callable(getattr(pool, "get_connection", None)) or not callable(
        getattr(pool, "release", None)
    ):
        return None
    try:
        wanted = inspect.signature(pool.get_connection).parameters.get("command_name")
    except (TypeError, ValueError):
        wanted = None
    named = wanted is not None and wanted.default is inspect.Parameter.empty
    return pool, ("EVALSHA",) if named else ()


def _evalsha(key: str, arguments: list[Any]) -> tuple[Any, ...]:
    return ("EVALSHA", _COMMIT_SHA, 1, key, *arguments)


def _client(url: str, factory: Callable[[str], Any]) -> Any:
    try:
        client = factory(url)
        pool = client.connection_pool
        # Building (not opening) a connection checks the URL's options now, not later.
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, redis.RedisError) as error:
        # redis-py's message, clipped; never one that repeats the URL's password.
        why = driver_reason(error, passwords_in(url)) or "redis-py refuses its settings"
        raise ConfigurationError(reason=f"the Redis URL is not valid: {why}") from None
    return client


class RedisStorage(_RedisLayout[redis.Redis]):
    """Storage in Redis. ``client`` is a ``redis.Redis`` or a ``redis://`` / ``rediss://`` URL.

    Keys are named ``<prefix>:{<subject_ref>}``. ``expiry_grace`` is how long a subject's key
    outlives its ``keep_until`` before Redis expires it by itself (default one hour): purge within
    it to have every subject deleted, and its expired codes reported, by ``purge``.

    A commit is never re-sent, whatever the client's ``retry`` setting: see the module's notes.
    """

    _client_class = redis.Redis

    def _run(self, steps: Steps[R]) -> R:
        """Take each step as it comes, blocking until it answers."""
        run = _Run(steps)
        with self._as_storage_errors():
            while (step := run.next_step()) is not None:
                try:
                    run.answered(step())
                except BaseException as error:  # the operation's to handle, or to let through
                    run.failed(error)
        return run.result

    @staticmethod
    def _hang_up(connection: Any) -> None:
        connection.disconnect()

    def migrate(self) -> None:
        """Load the scripts on the server ahead of their first use. There is no schema."""
        self._run(self._migrate_steps())

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """One ``HMGET``; see ``Storage.load``."""
        return self._run(self._load_steps(subject_ref))

    def commit(self, change: Commit) -> bool:
        """One script call, compare-and-set, sent once; see ``Storage.commit``."""
        return self._run(self._commit_steps(change))

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` subjects past their ``keep_until``; see the module's notes."""
        return len(self.purge_snapshots(now, limit))

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """``purge``, returning what it deleted; see ``PurgeReporting.purge_snapshots``.

        ``SCAN`` from where the last call stopped, and one purge script call per key found.
        """
        return self._run(self._purge_steps(now, limit))

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """A page of stored subjects, in no particular order; see ``SubjectScanning``.

        One ``SCAN`` with ``COUNT`` ``limit``, then one pipelined ``HMGET`` per key found.
        """
        return self._run(self._scan_steps(after, limit))

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def __enter__(self) -> RedisStorage:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncRedisStorage(_RedisLayout[redis.asyncio.Redis]):
    """``RedisStorage`` for asyncio (``redis.asyncio``): the same keys, scripts and documents.

    A commit is never re-sent, as with ``RedisStorage``.
    """

    _client_class = redis.asyncio.Redis

    async def _run(self, steps: Steps[R]) -> R:
        """Take each step as it comes, awaiting its answer."""
        run = _Run(steps)
        with self._as_storage_errors():
            while (step := run.next_step()) is not None:
                try:
                    run.answered(await step())
                except BaseException as error:  # a cancellation too: the commit cleans up
                    run.failed(error)
        return run.result

    @staticmethod
    def _hang_up(connection: Any) -> Awaitable[None]:
        # Cancelled, it must not wait for a stream that may never drain.
        return cast(Awaitable[None], connection.disconnect(nowait=True))

    async def migrate(self) -> None:
        """See ``RedisStorage.migrate``."""
        await self._run(self._migrate_steps())

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``RedisStorage.load``."""
        return await self._run(self._load_steps(subject_ref))

    async def commit(self, change: Commit) -> bool:
        """See ``RedisStorage.commit``."""
        return await self._run(self._commit_steps(change))

    async def purge(self, now: datetime, limit: int) -> int:
        """See ``RedisStorage.purge``."""
        return len(await self.purge_snapshots(now, limit))

    async def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``RedisStorage.purge_snapshots``."""
        return await self._run(self._purge_steps(now, limit))

    async def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``RedisStorage.scan_subjects``."""
        return await self._run(self._scan_steps(after, limit))

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisStorage:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
