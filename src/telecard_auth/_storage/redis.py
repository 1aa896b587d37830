"""Redis storage (extra ``redis``): one hash per subject, changed only by Lua scripts.

Layout: ``<prefix>:{<subject_ref>}`` is a hash of ``v`` (version), ``i`` (incarnation), ``d``
(state document) and ``k`` (``keep_until``, whole microseconds since the epoch). The braces are a
hash tag: a subject lives on one cluster slot (``redis_cluster`` runs this layout on a cluster).

Loading is one ``HMGET``; committing one ``EVALSHA`` of ``lua/commit.lua`` (reloaded, on the same
connection, if the server forgot it), compare-and-set on ``v`` and ``i`` (``i`` missing reads as
``""``; version 0 lands only where there is no ``v``). A key that expired by itself is gone, so
the subject's next creation brings a new incarnation.

A commit is sent once, never again: a compare-and-set re-sent after its answer was lost fails on
its own write, and the issuer would refuse the very redemption that landed. So it runs on a
connection of its own, outside redis-py's retries. A connection that fails before it is sent
gives ``StorageError`` (nothing applied); after, ``StorageOutcomeUnknown`` (it may have landed:
a retry with the same ``request_id`` returns it, or makes it). Loads and purges may be retried.

With ``replicas`` N above 0, a commit that landed is followed, on its connection, by ``WAIT N
<replica_timeout>``: fewer confirmations is ``StorageOutcomeUnknown`` (a failover may lose it).
A decision that writes nothing (a retry answered from the redemption it finds) must not rest on
what only the primary holds either, so a load is then ``lua/load.lua`` (``HMGET``, and ``v``
written onto itself, which replicates and changes nothing) and the same ``WAIT``.

Purging walks the prefix's keys with ``SCAN``, resuming where the last call stopped, and hands
each to ``lua/purge.lua``, which deletes it only if its ``k`` is at or before ``now`` (a commit
that lands first moves ``k`` on) and returns what it held; a call that returns less than
``limit`` has scanned a whole cycle. ``scan_subjects`` is one ``SCAN`` from the cursor given (in
decimal), then one pipelined ``HMGET`` per key. Native expiry is the unreported backstop: a key
expires ``keep_until - written_at + expiry_grace`` after its commit (one hour by default).

Every operation is written once as a generator of steps (calls to redis-py): ``RedisStorage``
blocks on each, ``AsyncRedisStorage`` awaits it; redis-py's errors become ``StorageError`` in one
place. A restart keeps what the server persisted (``appendonly yes``, ``appendfsync always``).
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
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, cast

try:
    import redis
    import redis.asyncio
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    from telecard_auth._core.errors import MissingExtra

    raise MissingExtra(feature="RedisStorage", extra="redis") from error

from telecard_auth._core.errors import ConfigurationError, StorageError, StorageOutcomeUnknown
from telecard_auth._core.text import clip, driver_detail, driver_reason, passwords_in
from telecard_auth._storage import codec
from telecard_auth._storage.protocol import Commit, SubjectSnapshot

__all__ = [
    "COMMIT_SCRIPT",
    "DEFAULT_EXPIRY_GRACE",
    "DEFAULT_REPLICA_TIMEOUT",
    "LOAD_SCRIPT",
    "PURGE_SCRIPT",
    "AsyncRedisStorage",
    "RedisStorage",
]

_LUA = files("telecard_auth._storage").joinpath("lua")
#: The compare-and-set script, shipped as a package resource.
COMMIT_SCRIPT = _LUA.joinpath("commit.lua").read_text(encoding="utf-8")
#: The script that deletes one subject if it is due and returns what it held.
PURGE_SCRIPT = _LUA.joinpath("purge.lua").read_text(encoding="utf-8")
#: The load that ``WAIT`` can confirm: the ``HMGET``, and a write that replicates, of nothing.
LOAD_SCRIPT = _LUA.joinpath("load.lua").read_text(encoding="utf-8")
#: How long a subject's key outlives its ``keep_until`` before Redis expires it by itself.
DEFAULT_EXPIRY_GRACE = timedelta(hours=1)
#: How long ``WAIT`` waits for the replicas, when the storage asks for any.
DEFAULT_REPLICA_TIMEOUT = timedelta(seconds=1)
#: The longest ``replica_timeout``: ``WAIT`` holds its connection for that long.
LONGEST_REPLICA_TIMEOUT = timedelta(seconds=60)
#: How many keys one ``SCAN`` call is asked to look at.
SCAN_COUNT = 1000
_FIELDS = ("v", "d", "k", "i")
_MILLISECOND = timedelta(milliseconds=1)
_TOO_FEW_REPLICAS = "too few replicas confirmed it in time"

Key = bytes | str
R = TypeVar("R")
Client = TypeVar("Client")
#: One step of an operation: a call to redis-py. Its answer (awaited, by the async storage) is
#: sent back into the operation, and what it raises is raised there.
Step = Callable[[], Any]
#: An operation written once for both storages: the steps it takes, then what it returns.
Steps = Generator[Step, Any, R]


class Lua(NamedTuple):
    """A script and its SHA1, by which the server runs it once loaded."""

    text: str
    sha: str


def _lua(text: str) -> Lua:
    return Lua(text, hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest())


COMMIT, PURGE, LOAD = _lua(COMMIT_SCRIPT), _lua(PURGE_SCRIPT), _lua(LOAD_SCRIPT)


class Target(NamedTuple):
    """Where one script call runs: a connection pool, what its ``get_connection`` takes, and
    whether the call follows an ``ASK`` redirection (a cluster moving the slot)."""

    pool: Any
    checkout: tuple[str, ...] = ()
    asking: bool = False


def _text(value: Key) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a ``SCAN MATCH`` pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class _Scan:
    """One purge's walk: where ``SCAN`` stands (``cursor``; ``None`` is the start), and the keys
    it gave not yet looked at. It resumes where the last walk stopped, and is ``over`` once those
    keys are used up and it has scanned a whole cycle, from the start back to it."""

    def __init__(self, cursor: str | None, pending: Sequence[Key]) -> None:
        self.cursor = cursor
        self.keys: deque[Key] = deque(pending)
        self.from_start = False

    @property
    def over(self) -> bool:
        """Whether a whole cycle has been scanned and every key it gave was looked at."""
        return not self.keys and self.cursor is None and self.from_start


class _RedisLayout(Generic[Client]):
    """All that the Redis storages share: their settings, where a subject lives, what the
    scripts are given, and every operation, written once as steps (see ``Steps``).

    The twins differ only in how they wait on a step: ``RedisStorage`` blocks on it,
    ``AsyncRedisStorage`` awaits it. Either way redis-py's errors leave as ``StorageError``, in
    one place: ``_as_storage_errors``. A cluster storage overrides the hooks that say where a key
    lives and how a walk goes from node to node (``_ready_steps``, ``_on_key``, ``_scan_once``).
    """

    #: The client class that a URL builds.
    _client_class: ClassVar[type[Any]]
    #: The driver errors that ``_as_storage_errors`` turns into ``StorageError``.
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = (redis.RedisError,)
    client: Client

    def __init__(
        self,
        client: Client | str,
        *,
        prefix: str = "telecard",
        expiry_grace: timedelta = DEFAULT_EXPIRY_GRACE,
        replicas: int = 0,
        replica_timeout: timedelta = DEFAULT_REPLICA_TIMEOUT,
    ) -> None:
        _check_settings(expiry_grace, replicas, replica_timeout)
        self.prefix = prefix
        self.expiry_grace = expiry_grace
        self.replicas = replicas
        self.replica_timeout = replica_timeout
        self._grace_ms = math.ceil(expiry_grace / _MILLISECOND)
        self._wait = ("WAIT", replicas, math.ceil(replica_timeout / _MILLISECOND))
        self._pattern = _glob_escape(prefix) + ":{*}"
        self._scan_state: tuple[str | None, tuple[Key, ...]] = (None, ())
        self._attach(client)
        if replicas:
            timeout = self._socket_timeout()
            if timeout is not None and timeout <= replica_timeout.total_seconds():
                raise ConfigurationError(
                    reason="socket_timeout must be longer than replica_timeout"
                )

    def _attach(self, client: Client | str) -> None:
        """Take ``client``, or build one from a URL, and note what errors may name."""
        self.client = (
            _client(client, self._client_class.from_url) if isinstance(client, str) else client
        )
        self._describe(client if isinstance(client, str) else None)
        pool = _pool_of(self.client)
        if pool is None:
            raise ConfigurationError(
                reason=f"{type(self).__name__} needs a client with a connection pool; "
                "give a Redis Cluster client to the cluster storage"
            )
        self._target = pool
        # The commit script as a redis-py Script, for pipelining it (the benchmarks fill with it).
        self._commit: Any = cast(Any, self.client).register_script(COMMIT_SCRIPT)

    def _socket_timeout(self) -> float | None:
        """The client's ``socket_timeout`` in seconds, if it has one."""
        pool = getattr(self.client, "connection_pool", None)
        settings = getattr(pool, "connection_kwargs", {})
        timeout = settings.get("socket_timeout") if isinstance(settings, dict) else None
        return float(timeout) if isinstance(timeout, int | float) else None

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
        except self._driver_errors as error:
            detail = driver_detail(self._server, error, self._secrets)
            raise StorageError(reason=_reason(error), detail=detail) from error

    def _unknown(self, error: BaseException, why: str) -> StorageOutcomeUnknown:
        """The change was sent and ``error`` broke off what followed: it may have landed."""
        detail = driver_detail(self._server, error, self._secrets)
        return StorageOutcomeUnknown(reason=why, detail=detail)

    @staticmethod
    def _hang_up(connection: Any) -> Any:
        """Drop ``connection``, whose answer may still be on its way (the waiting is the twin's)."""
        raise NotImplementedError

    # --- hooks: where a key lives, how a walk goes --------------------------------------------

    def _ready_steps(self) -> Steps[None]:
        """What runs before each operation: nothing for one server (a cluster learns its slots)."""
        yield from ()

    def _on_key(self, key: str, run: Callable[[Target], Steps[R]]) -> Steps[R]:
        """Run ``run`` on the server that holds ``key`` (a cluster follows its redirections)."""
        return (yield from run(self._target))

    def _scan_once(self, cursor: str | None, count: int) -> Steps[tuple[str | None, list[Key]]]:
        """One ``SCAN`` from ``cursor`` (``None``: the start): the next cursor and the keys."""
        client: Any = self.client
        found, keys = yield partial(
            client.scan, _scan_cursor(cursor), match=self._pattern, count=count
        )
        return _next_cursor(found), list(keys)

    # --- the operations, as steps ----------------------------------------------------------

    def _migrate_steps(self) -> Steps[None]:
        yield from self._ready_steps()
        client: Any = self.client
        for script in (COMMIT, PURGE, LOAD):
            yield partial(client.script_load, script.text)

    def _load_steps(self, subject_ref: str) -> Steps[SubjectSnapshot]:
        yield from self._ready_steps()
        key = self.key(subject_ref)
        if self.replicas:
            held = yield from self._on_key(
                key, lambda target: self._script_once(target, LOAD, key, [], changes=False)
            )
        else:
            client: Any = self.client
            held = yield partial(client.hmget, key, _FIELDS)
        return self._snapshot(subject_ref, held)

    def _commit_steps(self, change: Commit) -> Steps[bool]:
        yield from self._ready_steps()
        key = self.key(change.subject_ref)
        arguments = self._arguments(change)
        landed = yield from self._on_key(
            key, lambda target: self._script_once(target, COMMIT, key, arguments, changes=True)
        )
        return bool(landed)

    def _script_once(
        self, target: Target, script: Lua, key: str, arguments: list[Any], *, changes: bool
    ) -> Steps[Any]:
        """Run ``script`` once on a connection of ``target``, outside redis-py's retries; then,
        with ``replicas``, ``WAIT`` on that connection if the script wrote (a commit that
        landed, a load that found a subject).

        ``changes``: the script is a commit, so a connection lost after sending it, or too few
        replicas, is ``StorageOutcomeUnknown``; for a load, ``StorageError``.
        """
        connection = yield partial(target.pool.get_connection, *target.checkout)
        landed = False
        try:
            answer = yield from self._evalsha(connection, target.asking, script, key, arguments)
            landed = changes and bool(answer)
            confirmed = self.replicas
            if self.replicas and (landed or (not changes and answer[0] is not None)):
                yield partial(connection.send_command, *self._wait)
                confirmed = int((yield connection.read_response))
        except redis.ResponseError as error:  # the server answered: the connection is in step
            if landed:  # it refused the WAIT
                raise self._unknown(error, "its replicas could not be asked") from error
            raise
        except BaseException as error:
            # Broken off mid-command (a failure, a cancelled task): an answer may still be on its
            # way, so the connection is never used again.
            with contextlib.suppress(Exception):
                yield partial(self._hang_up, connection)
            if changes and isinstance(error, self._driver_errors):
                raise self._unknown(error, "the answer was lost after it was sent") from error
            raise
        finally:
            yield partial(target.pool.release, connection)
        if confirmed < self.replicas:
            detail = f"{self._server}: WAIT answered {confirmed} of {self.replicas} replicas"
            if changes:
                raise StorageOutcomeUnknown(reason=_TOO_FEW_REPLICAS, detail=detail)
            raise StorageError(reason=f"the data read: {_TOO_FEW_REPLICAS}", detail=detail)
        return answer

    def _evalsha(
        self, connection: Any, asking: bool, script: Lua, key: str, arguments: list[Any]
    ) -> Steps[Any]:
        """``EVALSHA`` on ``connection``; the script is loaded first if the server forgot it."""
        for attempt in range(2):
            if asking:  # the slot is moving: this node takes the command it sent us here for
                yield partial(connection.send_command, "ASKING")
                yield connection.read_response
            yield partial(connection.send_command, "EVALSHA", script.sha, 1, key, *arguments)
            try:
                return (yield connection.read_response)
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
            # The server ran nothing: it has lost the script (a restart, SCRIPT FLUSH, failover).
            yield partial(connection.send_command, "SCRIPT", "LOAD", script.text)
            yield connection.read_response
        raise AssertionError("unreachable")  # pragma: no cover

    def _purge_key(self, key: Key, arguments: list[Any]) -> Steps[Any]:
        """The purge script on ``key``, through the client (repeating it is harmless)."""
        client: Any = self.client
        try:
            return (yield partial(client.evalsha, PURGE.sha, 1, key, *arguments))
        except redis.exceptions.NoScriptError:
            return (yield partial(client.eval, PURGE.text, 1, key, *arguments))

    def _purge_steps(self, now: datetime, limit: int) -> Steps[list[SubjectSnapshot]]:
        """``SCAN`` from where the last call stopped, and one purge script call per key found."""
        yield from self._ready_steps()
        scan = _Scan(*self._scan_state)
        deleted: list[SubjectSnapshot] = []
        arguments = [codec.micros(now)]
        try:
            while len(deleted) < limit and not scan.over:
                if not scan.keys:
                    scan.from_start |= scan.cursor is None
                    scan.cursor, keys = yield from self._scan_once(scan.cursor, SCAN_COUNT)
                    scan.keys.extend(keys)
                    continue
                key = scan.keys.popleft()
                held = yield from self._purge_key(key, arguments)
                if held:
                    deleted.append(self._deleted(key, held))
        finally:
            self._scan_state = (scan.cursor, tuple(scan.keys))
        return deleted

    def _scan_steps(
        self, after: str | None, limit: int
    ) -> Steps[tuple[list[SubjectSnapshot], str | None]]:
        """One ``SCAN`` with ``COUNT`` ``limit``, then one pipelined ``HMGET`` per key found."""
        yield from self._ready_steps()
        cursor, keys = yield from self._scan_once(after, limit)
        fields: list[Any] = []
        if keys:
            client: Any = self.client
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, _FIELDS)
            # execute() gives its connection back to the pool itself, however it ends.
            fields = yield pipe.execute
        return self._page(keys, fields), cursor

    # --- what the steps send and what they read back -----------------------------------------

    def _arguments(self, change: Commit) -> list[Any]:
        keep_ms = max(1, math.ceil((change.keep_until - change.written_at).total_seconds() * 1000))
        return [
            change.expected_version,
            change.incarnation,
            codec.encode_state(change),
            codec.micros(change.keep_until),
            keep_ms + self._grace_ms,
        ]

    @staticmethod
    def _snapshot(subject_ref: str, held: Sequence[Key | None]) -> SubjectSnapshot:
        """The snapshot of a hash whose fields ``_FIELDS`` are ``held``."""
        version, state, keep_until, incarnation = held
        if version is None or state is None:
            return SubjectSnapshot(subject_ref=subject_ref)
        keep = None if keep_until is None else codec.from_micros(int(keep_until))
        return codec.decode_state(subject_ref, int(version), _text(incarnation or ""), state, keep)

    def _deleted(self, key: Key, held: Sequence[Key | None]) -> SubjectSnapshot:
        """The snapshot of the hash the purge script deleted at ``key``."""
        version, state, keep_until, incarnation = held
        ref = self._subject_ref(key)
        if version is None or state is None:  # not written by this library: nothing to report
            return SubjectSnapshot(subject_ref=ref)
        keep = None if keep_until is None else codec.from_micros(int(keep_until))
        return codec.decode_deleted(ref, int(version), _text(incarnation or ""), state, keep)

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


def _check_settings(expiry_grace: object, replicas: object, replica_timeout: object) -> None:
    if not isinstance(expiry_grace, timedelta) or expiry_grace < timedelta(0):
        raise ConfigurationError(reason="expiry_grace must be a timedelta of zero or more")
    if type(replicas) is not int or replicas < 0:
        raise ConfigurationError(reason="replicas must be a whole number, 0 or more")
    if not isinstance(replica_timeout, timedelta) or not (
        timedelta(0) < replica_timeout <= LONGEST_REPLICA_TIMEOUT
    ):
        raise ConfigurationError(reason="replica_timeout must be more than 0 and at most 60 s")


def _reason(error: BaseException) -> str:
    """Fixed words for what went wrong: a message never carries the driver's own."""
    if isinstance(error, redis.TimeoutError):
        return "the database did not answer in time"
    if isinstance(error, redis.ConnectionError | redis.exceptions.RedisClusterException):
        return "the database cannot be reached"
    if isinstance(error, redis.exceptions.ClusterDownError):
        return "the database cluster is down"
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


def _pool_of(client: Any) -> Target | None:
    """The client's connection pool, as a ``Target``; ``None`` if it has none."""
    pool: Any = getattr(client, "connection_pool", None)
    if not callable(getattr(pool, "get_connection", None)) or not callable(
        getattr(pool, "release", None)
    ):
        return None
    return Target(pool, checkout_of(pool))


def checkout_of(pool: Any) -> tuple[str, ...]:
    """What ``pool.get_connection`` takes: redis-py from 5.3 on, nothing (it warns about any);
    before, a command name."""
    try:
        wanted = inspect.signature(pool.get_connection).parameters.get("command_name")
    except (TypeError, ValueError):
        wanted = None
    named = wanted is not None and wanted.default is inspect.Parameter.empty
    return ("EVALSHA",) if named else ()


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

    ``replicas`` (default 0): how many replicas must confirm each commit, and the data each load
    read, within ``replica_timeout`` (default one second), with ``WAIT``; a commit they do not
    confirm raises ``StorageOutcomeUnknown``. See the module's notes.

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
        """One ``HMGET`` (with ``replicas``, a script and ``WAIT``); see ``Storage.load``."""
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
