"""The PostgreSQL storages' connections: their pool's watch, their liveness, and their errors.

What ``postgres.py`` builds on, kept apart so that each module reads in one sitting:

- ``Watch`` and the watched connection classes: how the pool's latest attempt to connect ended,
  so that a pool timeout can say why without opening a connection of its own.
- ``checked_out`` (sync) and ``async_checked_out``: a connection from the pool that is still
  alive. An idle connection whose server ended it (a restart, a failover, an administrator's
  ``pg_terminate_backend``) has the server's farewell, or the end of the stream, waiting on its
  socket: it is discarded unused, before anything is sent on it, and the next one taken; no round
  trip is spent on a connection that is alive. A connection that meets a read-only server (a
  standby) is closed instead of going back to the pool.
- ``StorageErrors``: the one place psycopg's errors become ``StorageError``. Once a change has
  been sent (``sent``), an error that is not the server's own refusal of the statement leaves its
  outcome unknown: ``StorageOutcomeUnknown``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from telecard_auth._core.errors import ConfigurationError, StorageError
from telecard_auth._core.text import clip, driver_reason, passwords_in

logger = logging.getLogger("telecard_auth.postgres")

#: Seconds between two diagnoses of "no connection" that one storage logs.
DIAGNOSIS_INTERVAL = 30.0

#: SQLSTATE classes of a server that cannot be reached, or ended the session: connection
#: exceptions, refused authorization, a database that does not exist, a server shutting down.
_UNREACHABLE_STATES = ("08", "28", "3D", "57P")

#: The ``target_session_attrs`` a storage may be given: each lands on a server that takes writes.
#: ``read-only``, ``standby`` and ``prefer-standby`` would make every commit fail.
WRITABLE_SESSIONS = frozenset({"any", "read-write", "primary"})

AnyPool = ConnectionPool[Any] | AsyncConnectionPool[Any]


def conninfo_problem(error: Exception, conninfo: str) -> str:
    """What is wrong with ``conninfo``, in libpq's words unless they might give a password away."""
    if isinstance(error, UnicodeError):
        return "it is not valid UTF-8 text once percent-decoded"
    secrets = passwords_in(conninfo)
    reason = driver_reason(error, secrets)
    # libpq quotes the token it stumbled on, which may be a piece of the password.
    if reason is None or (secrets and '"' in reason):
        return "libpq cannot parse it (its message is withheld, as it may quote the password)"
    return reason


def check_sessions(params: Mapping[str, object], server: str) -> None:
    """Refuse a ``target_session_attrs`` that may settle on a standby; warn of a host list that
    does not say (libpq would take the first host that answers, a standby perhaps)."""
    wanted = params.get("target_session_attrs", "any")
    if wanted not in WRITABLE_SESSIONS:
        # libpq would pick a standby, or reject the value only when the pool connects.
        raise ConfigurationError(
            reason="target_session_attrs must be read-write, primary or any: the storage writes"
        )
    if wanted == "any" and "," in str(params.get("host") or params.get("hostaddr") or ""):
        logger.warning(
            "%s: a host list without target_session_attrs=read-write may connect to a standby,"
            " where every commit fails",
            server,
        )


def reason_for(error: psycopg.Error) -> str:
    """Fixed words for what went wrong: a message never carries the driver's own."""
    if isinstance(error, psycopg.errors.UndefinedTable):
        return "the schema is missing; call migrate() first"
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return "the database is read-only (a standby, not the primary)"
    # No SQLSTATE: the client failed before the server answered (refused, lost, timed out).
    if error.sqlstate is None or error.sqlstate.startswith(_UNREACHABLE_STATES):
        return "the database cannot be reached"
    return "the database failed the statement"


def outcome_unknown(error: psycopg.Error) -> bool:
    """Whether ``error``, met after a change was sent, leaves unknown whether it was applied.

    Known only when the server refused the statement itself: an ``ERROR`` answer ends the
    statement's transaction, and nothing of it is kept. Anything else (the connection lost, the
    session ended by the server with ``FATAL``, perhaps while it waited for its synchronous
    standby after committing locally) and the change may have been applied, or not.
    """
    if not isinstance(error, psycopg.OperationalError) or isinstance(error, PoolTimeout):
        # Refused by the client before sending (adapting a parameter), or no connection at all.
        return False
    return error.diag.severity_nonlocalized != "ERROR"


def lost_connection(error: psycopg.Error) -> bool:
    """Whether ``error`` says the connection, or the server behind it, is gone."""
    # OperationalError: the server closed or ended the connection, or it could not be used.
    # A pool timeout is one too, but it says the pool is busy, not that a connection is dead.
    return isinstance(error, psycopg.OperationalError) and not isinstance(error, PoolTimeout)


def server_name(conninfo: str) -> str:
    """``PostgreSQL role@host:port,host:port/database``, from what ``conninfo`` names (never its
    password). For ``StorageError.detail``: a log must say which server failed."""
    params = conninfo_to_dict(conninfo)
    hosts = str(params.get("host") or params.get("hostaddr") or "").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) == 1:
        ports *= len(hosts)
    places = [f"{host}:{port}" if port else host for host, port in zip(hosts, ports, strict=False)]
    return _described(params.get("user"), ",".join(places), params.get("dbname"))


def connected_server(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> str:
    """``server_name`` of the one server ``connection`` reached (of a host list, which one)."""
    info = connection.info
    return _described(info.user, f"{info.host}:{info.port}", info.dbname)


def _described(user: object, place: str, dbname: object) -> str:
    where = f"{user}@" if user else ""
    where += f"{place}{f'/{dbname}' if dbname else ''}"
    return f"PostgreSQL {clip(where, 200)}" if where.strip(":@,") else "PostgreSQL"


class Watch:
    """How the pool's latest attempt to connect ended, and when the pool was last diagnosed.

    The pool knows why it has no connection to give (its attempts fail, or every connection is
    busy) but its timeout says only that it timed out. Its connection class reports each attempt
    here, so a timeout can say why at once, without opening a connection of its own.
    """

    def __init__(self, server: str, secrets: tuple[str, ...]) -> None:
        self._server = server
        self._secrets = secrets
        self._lock = threading.Lock()
        self._failure: tuple[float, str] | None = None
        self._running = 0
        self._logged_at = -math.inf

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """Around one of the pool's attempts to connect: note how it ended."""
        with self._lock:
            self._running += 1
        try:
            yield
        except psycopg.Error as error:
            said = driver_reason(error, self._secrets) or "(withheld: it repeats a password)"
            failure = (time.monotonic(), said)
            with self._lock:
                self._failure = failure
            raise
        else:
            with self._lock:
                self._failure = None
        finally:
            with self._lock:
                self._running -= 1

    def diagnose(self, stats: Mapping[str, int], timeout: float) -> str:
        """Why no connection came within ``timeout``, from what is known; logged now and then.

        Reads memory only (the pool's counters and the latest attempt): it runs on the
        request path, where it must neither wait nor connect.
        """
        now = time.monotonic()
        with self._lock:
            failure, running = self._failure, self._running
            log = now - self._logged_at >= DIAGNOSIS_INTERVAL
            if log:
                self._logged_at = now
        if failure is not None:
            why = f"the pool's latest attempt to connect, {now - failure[0]:.1f} s ago, failed: "
            why += failure[1]
        elif running:
            why = f"{running} attempt(s) to connect still running"
        else:
            why = "every connection is in use"
        # The pool's own counters (psycopg_pool's get_stats): no lock, no I/O.
        diagnosis = (
            f"no connection within {timeout:g} s; {why} (pool: {stats.get('pool_size', '?')} of "
            f"at most {stats.get('pool_max', '?')} connections open or opening, "
            f"{stats.get('pool_available', '?')} idle)"
        )
        if log:
            logger.warning("%s: %s", self._server, diagnosis)
        return diagnosis


def watched_connection(watch: Watch) -> type[psycopg.Connection[TupleRow]]:
    """A connection class for the pool that reports each of its attempts to ``watch``."""

    class WatchedConnection(psycopg.Connection[TupleRow]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            with watch.attempt():
                return super().connect(conninfo, **kwargs)

    return WatchedConnection


def watched_async_connection(watch: Watch) -> type[psycopg.AsyncConnection[TupleRow]]:
    """``watched_connection`` for the asyncio pool."""

    class WatchedAsyncConnection(psycopg.AsyncConnection[TupleRow]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            with watch.attempt():
                return await super().connect(conninfo, **kwargs)

    return WatchedAsyncConnection


def alive(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection can carry a statement, by looking at it: no I/O, no wait.

    Idle, a connection has nothing to read until it sends something. If its socket is readable,
    the server has said goodbye (``FATAL``: terminated, shutting down) or the stream has ended
    (the server's process died, and its machine's kernel closed the connection): sending a change
    on it would only lose the change's answer.
    """
    if connection.closed or connection.broken:
        return False
    try:
        ready, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not ready


def _too_many_dead(server: str, tries: int) -> StorageError:
    return StorageError(
        reason="the database cannot be reached",
        detail=f"{server}: {tries} connections in a row from the pool were dead",
    )


@contextlib.contextmanager
def checked_out(
    pool: ConnectionPool[Any], errors: StorageErrors, tries: int
) -> Iterator[psycopg.Connection[Any]]:
    """A live connection of ``pool``, taking up to ``tries`` (dead ones are discarded unsent).

    ``errors`` learns which server the connection reached. A connection whose statement meets a
    read-only server is closed, so the pool replaces it.
    """
    for _ in range(tries):
        with pool.connection() as connection:
            if not alive(connection):
                # Closed, the pool throws it away when it comes back, and opens another.
                connection.close()
                continue
            errors.server = connected_server(connection)
            try:
                yield connection
            except psycopg.errors.ReadOnlySqlTransaction:
                connection.close()
                raise
            return
    raise _too_many_dead(errors.server, tries)


@contextlib.asynccontextmanager
async def async_checked_out(
    pool: AsyncConnectionPool[Any], errors: StorageErrors, tries: int
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """``checked_out`` for the asyncio pool."""
    for _ in range(tries):
        async with pool.connection() as connection:
            if not alive(connection):
                await connection.close()
                continue
            errors.server = connected_server(connection)
            try:
                yield connection
            except psycopg.errors.ReadOnlySqlTransaction:
                await connection.close()
                raise
            return
    raise _too_many_dead(errors.server, tries)


#: Turns a psycopg error into a ``StorageError``: ``(error, pool, server, sent)``.
Convert = Callable[[psycopg.Error, AnyPool | None, str, bool], StorageError]


class StorageErrors:
    """The one place psycopg's errors become ``StorageError``, for every call of both storages.

    The sync storage enters it with ``with``, the async one with ``async with``. After a lost
    connection it first has ``pool`` replace its dead idle connections (``pool.check``, awaited
    in the async storage); after a read-only server, it drains the pool (psycopg_pool 3.3 and
    later): its other connections went to the same server. ``server`` names the server of the
    call's connection once it has one; ``sent`` is set once a change has been handed to it.
    """

    def __init__(self, convert: Convert, pool: AnyPool | None, server: str) -> None:
        self._convert = convert
        self._pool = pool
        self.server = server
        self.sent = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if not isinstance(error, psycopg.Error):
            return
        if isinstance(self._pool, ConnectionPool):
            # The failing call pays for it, not every call (as a check on checkout would).
            with contextlib.suppress(Exception):
                if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
                    getattr(self._pool, "drain", self._pool.check)()
                elif lost_connection(error):
                    self._pool.check()
        raise self._convert(error, self._pool, self.server, self.sent) from error

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if isinstance(error, psycopg.Error) and isinstance(self._pool, AsyncConnectionPool):
            with contextlib.suppress(Exception):
                if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
                    await getattr(self._pool, "drain", self._pool.check)()
                elif lost_connection(error):
                    await self._pool.check()
        self.__exit__(kind, error, traceback)
