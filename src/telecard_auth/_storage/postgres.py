"""PostgreSQL storage (extra ``postgres``): psycopg 3 with a connection pool.

One table, one row per subject: ``(subject_ref, version, incarnation, keep_until, state)``.
Loading is one primary-key ``SELECT``; committing is one statement in its own transaction
(autocommit): an ``INSERT … ON CONFLICT DO NOTHING`` for a new subject (which stores the commit's
incarnation), an ``UPDATE … WHERE version = %s AND incarnation = %s`` otherwise, so the
compare-and-set is on both. Both touch a single row through the primary key, so their cost stays
flat however large the table grows. A commit is acknowledged only after PostgreSQL has made it
durable under the server's ``synchronous_commit`` (``on`` by default: flushed to the WAL on disk).

``purge`` deletes in bounded batches and skips rows a redeemer holds locked (``SKIP LOCKED``), so it
never makes a redemption wait. ``purge_snapshots`` is the same statement with ``RETURNING``: it
reads back exactly the rows it deleted, as they were. ``scan_subjects`` reads a page of rows in
``subject_ref`` order through the primary key, one ``SELECT`` a page; its cursor is the last
``subject_ref`` of a full page.

Lost connections: the pool does not test a connection when it hands one out (that would cost a
round trip on every call). When the server ends connections (a restart, a failover, an
administrator's ``pg_terminate_backend``), the call that meets a dead one fails with
``StorageError``, and before it raises, the pool checks every idle connection and replaces the
dead ones (``ConnectionPool.check``): the next call gets a live connection, however many idle
ones the pool held.

No connection within ``timeout``: the call fails at once with ``StorageError`` ("no database
connection became free within N s"), and no connection is opened to find out why: under load, a
connection per timed-out call would add to the very load that caused it. The pool's own attempts
tell instead: the storage's connection class notes how the pool's latest attempt to connect
ended, and the error's ``detail`` says that (its driver message, how long ago) with the pool's
counters (connections open or opening, idle). The same diagnosis is logged as a warning
on the ``telecard_auth.postgres`` logger, at most once per ``DIAGNOSIS_INTERVAL`` seconds per
storage.

Both storages are built alike (``_Tables``) and differ only in the waiting: the same statements
run on a ``ConnectionPool`` or, awaited, on an ``AsyncConnectionPool``. psycopg's errors become
``StorageError`` in one place for both (``_StorageErrors``, entered with ``with`` or ``async
with``), which also checks the pool after a lost connection and diagnoses a pool timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Self

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    from telecard_auth._core.errors import MissingExtra

    raise MissingExtra(feature="PostgresStorage", extra="postgres") from error

from telecard_auth._core.errors import ConfigurationError, StorageError
from telecard_auth._core.text import clip, driver_detail, driver_reason, passwords_in
from telecard_auth._storage.codec import decode_deleted, decode_state, encode_state
from telecard_auth._storage.protocol import Commit, SubjectSnapshot

__all__ = ["AsyncPostgresStorage", "PostgresStorage"]

logger = logging.getLogger("telecard_auth.postgres")

#: Seconds between two diagnoses of "no connection" that one storage logs.
DIAGNOSIS_INTERVAL = 30.0

#: The schema this release reads and writes.
SCHEMA_VERSION = 2

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE {schema}.telecard_subjects (
            subject_ref text PRIMARY KEY,
            version bigint NOT NULL,
            keep_until timestamptz NOT NULL,
            state text NOT NULL
        )""",
        "CREATE INDEX telecard_subjects_keep_until ON {schema}.telecard_subjects (keep_until)",
    ),
    # A constant default: PostgreSQL adds the column without rewriting the table. Rows written
    # before it hold incarnation '': their subjects keep working at their version.
    2: ("ALTER TABLE {schema}.telecard_subjects ADD COLUMN incarnation text NOT NULL DEFAULT ''",),
}

# A fixed key for pg_advisory_xact_lock: concurrent migrate() calls take turns.
_MIGRATION_LOCK = 0x7E1E_CA2D


def _conninfo_problem(error: Exception, conninfo: str) -> str:
    """What is wrong with ``conninfo``, in libpq's words unless they might give a password away."""
    if isinstance(error, UnicodeError):
        return "it is not valid UTF-8 text once percent-decoded"
    secrets = passwords_in(conninfo)
    reason = driver_reason(error, secrets)
    # libpq quotes the token it stumbled on, which may be a piece of the password.
    if reason is None or (secrets and '"' in reason):
        return "libpq cannot parse it (its message is withheld, as it may quote the password)"
    return reason


#: SQLSTATE classes of a server that cannot be reached, or ended the session: connection
#: exceptions, refused authorization, a database that does not exist, a server shutting down.
_UNREACHABLE_STATES = ("08", "28", "3D", "57P")


def _reason(error: psycopg.Error) -> str:
    """Fixed words for what went wrong: a message never carries the driver's own."""
    if isinstance(error, psycopg.errors.UndefinedTable):
        return "the schema is missing; call migrate() first"
    # No SQLSTATE: the client failed before the server answered (refused, lost, timed out).
    if error.sqlstate is None or error.sqlstate.startswith(_UNREACHABLE_STATES):
        return "the database cannot be reached"
    return "the database failed the statement"


class _Watch:
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


def _watched_connection(watch: _Watch) -> type[psycopg.Connection[TupleRow]]:
    """A connection class for the pool that reports each of its attempts to ``watch``."""

    class WatchedConnection(psycopg.Connection[TupleRow]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            with watch.attempt():
                return super().connect(conninfo, **kwargs)

    return WatchedConnection


def _watched_async_connection(watch: _Watch) -> type[psycopg.AsyncConnection[TupleRow]]:
    """``_watched_connection`` for the asyncio pool."""

    class WatchedAsyncConnection(psycopg.AsyncConnection[TupleRow]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            with watch.attempt():
                return await super().connect(conninfo, **kwargs)

    return WatchedAsyncConnection


def _server(conninfo: str) -> str:
    """``PostgreSQL role@host:port/database``, from what ``conninfo`` names (never its password).

    For ``StorageError.detail``: a log must say which server failed, even where libpq does not.
    """
    params = conninfo_to_dict(conninfo)
    user, dbname = params.get("user"), params.get("dbname")
    host, port = params.get("host") or params.get("hostaddr"), params.get("port")
    where = f"{user}@" if user else ""
    where += f"{host or ''}{f':{port}' if port else ''}{f'/{dbname}' if dbname else ''}"
    return f"PostgreSQL {clip(where, 200)}" if where else "PostgreSQL"


def _lost_connection(error: psycopg.Error) -> bool:
    """Whether ``error`` says the connection, or the server behind it, is gone."""
    # OperationalError: the server closed or ended the connection, or it could not be used.
    # A pool timeout is one too, but it says the pool is busy, not that a connection is dead.
    return isinstance(error, psycopg.OperationalError) and not isinstance(error, PoolTimeout)


class _StorageErrors:
    """The one place psycopg's errors become ``StorageError``, for every call of both storages.

    The sync storage enters it with ``with``, the async one with ``async with``: after a lost
    connection it first has ``pool`` replace its dead idle connections (``pool.check``, awaited
    in the async storage), and a pool timeout is diagnosed from ``pool``'s counters.
    """

    def __init__(
        self, tables: _Tables, pool: ConnectionPool[Any] | AsyncConnectionPool[Any] | None
    ) -> None:
        self._tables = tables
        self._pool = pool

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if not isinstance(error, psycopg.Error):
            return
        if _lost_connection(error) and isinstance(self._pool, ConnectionPool):
            # The failing call pays for it, not every call (as a check on checkout would).
            with contextlib.suppress(Exception):
                self._pool.check()
        raise self._tables._storage_error(error, self._pool) from error

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        lost = isinstance(error, psycopg.Error) and _lost_connection(error)
        if lost and isinstance(self._pool, AsyncConnectionPool):
            with contextlib.suppress(Exception):
                await self._pool.check()
        self.__exit__(kind, error, traceback)


class _Tables:
    """All that both PostgreSQL storages share: the settings, checked once, one schema's
    statements and migrations, and the funnel of psycopg's errors (``_as_storage_errors``)."""

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 16,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(conninfo, str):
            raise ConfigurationError(reason="the PostgreSQL connection info must be a str")
        if not isinstance(schema, str) or not schema:
            raise ConfigurationError(reason="the PostgreSQL schema must be a non-empty str")
        try:
            conninfo_to_dict(conninfo)
        except (psycopg.Error, UnicodeError) as error:
            raise ConfigurationError(
                reason=f"the PostgreSQL connection info: {_conninfo_problem(error, conninfo)}"
            ) from None
        self.schema = schema
        self._conninfo = conninfo
        self._timeout = timeout
        self._secrets = passwords_in(conninfo)
        self._server = _server(conninfo)
        self._watch = _Watch(self._server, self._secrets)
        self._names = {"schema": sql.Identifier(schema)}
        self._compose()
        # What both pools are built with; each storage adds its connection class and its name.
        self._start(
            {
                "min_size": min_size,
                "max_size": max_size,
                "timeout": timeout,
                "kwargs": {"autocommit": True},
            }
        )

    def _start(self, pool_settings: dict[str, Any]) -> None:
        """Build the pool, from ``pool_settings`` and the storage's own connection class."""
        raise NotImplementedError

    def _compose(self) -> None:
        """Compose every statement for the schema, and render each to bytes once."""
        table = sql.SQL("{schema}.telecard_subjects").format(**self._names)
        row = sql.SQL("subject_ref, version, incarnation, state, keep_until")
        self._load = sql.SQL(
            "SELECT version, incarnation, state, keep_until FROM {} WHERE subject_ref = %s"
        ).format(table)
        self._insert = sql.SQL(
            "INSERT INTO {} (subject_ref, version, incarnation, keep_until, state)"
            " VALUES (%s, 1, %s, %s, %s) ON CONFLICT (subject_ref) DO NOTHING"
        ).format(table)
        self._update = sql.SQL(
            "UPDATE {} SET version = version + 1, keep_until = %s, state = %s"
            " WHERE subject_ref = %s AND version = %s AND incarnation = %s"
        ).format(table)
        # When keep_until has not moved, leaving it out keeps the update HOT (no index write).
        self._update_state = sql.SQL(
            "UPDATE {} SET version = version + 1, state = %s"
            " WHERE subject_ref = %s AND version = %s AND incarnation = %s"
        ).format(table)
        self._purge = sql.SQL(
            "DELETE FROM {0} WHERE keep_until <= %s AND subject_ref IN"
            " (SELECT subject_ref FROM {0} WHERE keep_until <= %s ORDER BY keep_until"
            " LIMIT %s FOR UPDATE SKIP LOCKED)"
        ).format(table)
        self._purge_returning = self._purge + sql.SQL(" RETURNING {}").format(row)
        # The primary key's own order (the column's collation), so each page is an index range.
        self._scan_first = sql.SQL("SELECT {} FROM {} ORDER BY subject_ref LIMIT %s").format(
            row, table
        )
        self._scan_after = sql.SQL(
            "SELECT {} FROM {} WHERE subject_ref > %s ORDER BY subject_ref LIMIT %s"
        ).format(row, table)
        # Rendered to bytes once: composing a query on every call costs more than sending it.
        try:
            self._statements = {
                name: getattr(self, name).as_bytes(None)
                for name in (
                    "_load",
                    "_insert",
                    "_update",
                    "_update_state",
                    "_purge",
                    "_purge_returning",
                    "_scan_first",
                    "_scan_after",
                )
            }
        except UnicodeError:
            raise ConfigurationError(
                reason="the PostgreSQL schema name cannot be encoded (lone surrogates)"
            ) from None

    def _commit_statement(self, change: Commit) -> tuple[bytes, tuple[Any, ...]]:
        state = encode_state(change)
        if change.expected_version == 0:
            return self._statements["_insert"], (
                change.subject_ref,
                change.incarnation,
                change.keep_until,
                state,
            )
        token = (change.subject_ref, change.expected_version, change.incarnation)
        if change.keep_until == change.stored_keep_until:
            return self._statements["_update_state"], (state, *token)
        return self._statements["_update"], (change.keep_until, state, *token)

    def _scan_statement(self, after: str | None, limit: int) -> tuple[bytes, tuple[Any, ...]]:
        if after is None:
            return self._statements["_scan_first"], (limit,)
        return self._statements["_scan_after"], (after, limit)

    @staticmethod
    def _snapshot(subject_ref: str, rows: list[tuple[Any, ...]]) -> SubjectSnapshot:
        """The snapshot of the rows ``_load`` read: none, or the subject's one row."""
        if not rows:
            return SubjectSnapshot(subject_ref=subject_ref)
        version, incarnation, state, keep_until = rows[0]
        return decode_state(subject_ref, version, incarnation, state, keep_until)

    @staticmethod
    def _deleted(rows: list[tuple[Any, ...]]) -> list[SubjectSnapshot]:
        """The snapshots of the rows ``_purge_returning`` deleted."""
        return [
            decode_deleted(subject_ref, version, incarnation, state, keep_until)
            for subject_ref, version, incarnation, state, keep_until in rows
        ]

    @staticmethod
    def _page(rows: list[tuple[Any, ...]], limit: int) -> tuple[list[SubjectSnapshot], str | None]:
        """The page of ``_scan_first`` or ``_scan_after``: the cursor is the last ``subject_ref``
        of a full page, ``None`` after a short one."""
        page = [
            decode_state(subject_ref, version, incarnation, state, keep_until)
            for subject_ref, version, incarnation, state, keep_until in rows
        ]
        return page, (page[-1].subject_ref if page and len(page) >= limit else None)

    def _as_storage_errors(
        self, pool: ConnectionPool[Any] | AsyncConnectionPool[Any] | None = None
    ) -> _StorageErrors:
        """The funnel of psycopg's errors, around a call on ``pool`` (or on no pool at all)."""
        return _StorageErrors(self, pool)

    def _storage_error(
        self,
        error: psycopg.Error,
        pool: ConnectionPool[Any] | AsyncConnectionPool[Any] | None,
    ) -> StorageError:
        """``error`` as a ``StorageError``: fixed words in its messages, the driver's in ``detail``.

        Only ``_StorageErrors`` calls it. A pool timeout is answered at once; its ``detail`` is
        the diagnosis of ``pool``.
        """
        if isinstance(error, PoolTimeout):
            stats = pool.get_stats() if pool is not None else {}
            return StorageError(
                reason=f"no database connection became free within {self._timeout:g} s",
                detail=f"{self._server}: {self._watch.diagnose(stats, self._timeout)}",
            )
        return StorageError(
            reason=_reason(error), detail=driver_detail(self._server, error, self._secrets)
        )

    def _migrate_on(self, connection: psycopg.Connection[Any]) -> None:
        """Create or upgrade the schema in one transaction; concurrent callers take turns."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {schema}.telecard_schema (version integer NOT NULL)"
                ).format(**self._names)
            )
            row = connection.execute(
                sql.SQL("SELECT max(version) FROM {schema}.telecard_schema").format(**self._names)
            ).fetchone()
            current = (row[0] if row else None) or 0
            if current > SCHEMA_VERSION:
                raise StorageError(
                    reason=f"the database schema {current} is newer than this release's"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    connection.execute(sql.SQL(statement).format(**self._names))
                connection.execute(
                    sql.SQL("INSERT INTO {schema}.telecard_schema (version) VALUES (%s)").format(
                        **self._names
                    ),
                    (version,),
                )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r})"


class PostgresStorage(_Tables):
    """Storage in PostgreSQL. Call ``migrate()`` once to create or upgrade the schema.

    ``conninfo`` is a ``postgresql://`` URL or a libpq connection string; ``schema`` is the
    PostgreSQL schema that holds the tables (it must exist); the pool keeps between ``min_size``
    and ``max_size`` connections.
    """

    def _start(self, pool_settings: dict[str, Any]) -> None:
        with self._as_storage_errors():
            self.pool = ConnectionPool(
                self._conninfo,
                connection_class=_watched_connection(self._watch),
                open=True,
                name="telecard-auth",
                **pool_settings,
            )

    def _execute(
        self, statement: bytes, parameters: tuple[Any, ...]
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement in its own transaction: its row count, and the rows it returned."""
        with self._as_storage_errors(self.pool), self.pool.connection() as connection:
            cursor = connection.execute(statement, parameters)
            return cursor.rowcount, cursor.fetchall() if cursor.description else []

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to date. Safe to call at every start."""
        with self._as_storage_errors(self.pool), self.pool.connection() as connection:
            self._migrate_on(connection)

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """One primary-key ``SELECT``; see ``Storage.load``."""
        _, rows = self._execute(self._statements["_load"], (subject_ref,))
        return self._snapshot(subject_ref, rows)

    def commit(self, change: Commit) -> bool:
        """One statement, one transaction, compare-and-set; see ``Storage.commit``."""
        count, _ = self._execute(*self._commit_statement(change))
        return count == 1

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` subjects past their ``keep_until``, skipping locked rows."""
        count, _ = self._execute(self._statements["_purge"], (now, now, limit))
        return count

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """``purge`` with ``RETURNING``; see ``PurgeReporting.purge_snapshots``.

        One statement: the rows returned are exactly the rows deleted, as they were. A row a
        concurrent commit holds locked is skipped, and once that commit lands it is no longer due.
        """
        _, rows = self._execute(self._statements["_purge_returning"], (now, now, limit))
        return self._deleted(rows)

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """A page of stored subjects in ``subject_ref`` order; see ``SubjectScanning``.

        One ``SELECT`` over a range of the primary key, so each page costs the same however far
        the walk has gone.
        """
        _, rows = self._execute(*self._scan_statement(after, limit))
        return self._page(rows, limit)

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()

    def __enter__(self) -> PostgresStorage:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncPostgresStorage(_Tables):
    """``PostgresStorage`` for asyncio: psycopg's ``AsyncConnectionPool``, the same statements.

    The pool opens on first use; ``close()`` closes it.
    """

    def _start(self, pool_settings: dict[str, Any]) -> None:
        self.pool = AsyncConnectionPool(
            self._conninfo,
            connection_class=_watched_async_connection(self._watch),
            open=False,
            name="telecard-auth-async",
            **pool_settings,
        )
        self._opened = False
        self._closed = False

    async def _open_pool(self) -> AsyncConnectionPool[Any]:
        if self._closed:
            raise StorageError(reason="the storage is closed")
        if not self._opened:
            self._opened = True
            await self.pool.open()
        return self.pool

    async def _execute(
        self, statement: bytes, parameters: tuple[Any, ...]
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """See ``PostgresStorage._execute``."""
        async with (
            self._as_storage_errors(self.pool),
            (await self._open_pool()).connection() as connection,
        ):
            cursor = await connection.execute(statement, parameters)
            return cursor.rowcount, await cursor.fetchall() if cursor.description else []

    async def migrate(self) -> None:
        """See ``PostgresStorage.migrate``; runs once, on a short-lived connection of its own."""
        if self._closed:
            raise StorageError(reason="the storage is closed")
        await asyncio.to_thread(self._migrate_now)

    def _migrate_now(self) -> None:
        with (
            self._as_storage_errors(),
            psycopg.connect(self._conninfo, autocommit=True) as connection,
        ):
            self._migrate_on(connection)

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``PostgresStorage.load``."""
        _, rows = await self._execute(self._statements["_load"], (subject_ref,))
        return self._snapshot(subject_ref, rows)

    async def commit(self, change: Commit) -> bool:
        """See ``PostgresStorage.commit``."""
        count, _ = await self._execute(*self._commit_statement(change))
        return count == 1

    async def purge(self, now: datetime, limit: int) -> int:
        """See ``PostgresStorage.purge``."""
        count, _ = await self._execute(self._statements["_purge"], (now, now, limit))
        return count

    async def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``PostgresStorage.purge_snapshots``."""
        _, rows = await self._execute(self._statements["_purge_returning"], (now, now, limit))
        return self._deleted(rows)

    async def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``PostgresStorage.scan_subjects``."""
        _, rows = await self._execute(*self._scan_statement(after, limit))
        return self._page(rows, limit)

    async def close(self) -> None:
        """Close the pool and its connections; the storage cannot be used afterwards."""
        self._closed = True
        if self._opened:
            await self.pool.close()

    async def __aenter__(self) -> AsyncPostgresStorage:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
