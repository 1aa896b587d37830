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

Several servers: ``conninfo`` may name a libpq host list, such as
``postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write``; libpq tries the hosts in turn
and connects only to one that takes writes, so after a failover new connections find the new
primary. ``target_session_attrs`` values that could land on a standby are refused.

Lost connections: the pool does not test a connection with a round trip when it hands one out.
It looks instead (``postgres_pool.alive``): an idle connection that the server ended (a restart,
a failover, an administrator's ``pg_terminate_backend``, a killed server) has something to read,
and is discarded before anything is sent on it; the call takes the next one. A call that still
meets a dead connection fails, and before it raises, the pool checks every idle connection and
replaces the dead ones (``ConnectionPool.check``). A connection that finds its server read-only
(a standby) is closed, and the pool drained (psycopg_pool 3.3 and later).

Unknown outcomes: a commit is one statement in its own transaction, so sending the statement is
sending the commit. An error before it is sent (no live connection, a pool timeout) is a plain
``StorageError``: nothing was applied. So is the server's refusal of it (an ``ERROR`` answer,
such as a failed constraint or a read-only server): its transaction is rolled back. Once it is
sent, any other end (the connection lost, the session ended with ``FATAL``, perhaps after the
server committed locally while it waited for its synchronous standby) is
``StorageOutcomeUnknown``: the change may have landed. The storage never sends a commit twice;
the caller retries the request with the same request id, which finds the landed change.

No connection within ``timeout``: the call fails at once with ``StorageError`` ("no database
connection became free within N s"), and no connection is opened to find out why: under load, a
connection per timed-out call would add to the very load that caused it. The pool's own attempts
tell instead: the storage's connection class notes how the pool's latest attempt to connect
ended, and the error's ``detail`` says that (its driver message, how long ago) with the pool's
counters (connections open or opening, idle). The same diagnosis is logged as a warning on the
``telecard_auth.postgres`` logger, at most once per ``postgres_pool.DIAGNOSIS_INTERVAL`` seconds
per storage.

Both storages are built alike (``_Tables``) and differ only in the waiting: the same statements
run on a ``ConnectionPool`` or, awaited, on an ``AsyncConnectionPool``. psycopg's errors become
``StorageError`` in one place for both (``postgres_pool.StorageErrors``, entered with ``with`` or
``async with``), which also checks the pool after a lost connection and diagnoses a pool timeout.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

    from telecard_auth._storage import postgres_pool as _pool
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    from telecard_auth._core.errors import MissingExtra

    raise MissingExtra(feature="PostgresStorage", extra="postgres") from error

from telecard_auth._core.errors import ConfigurationError, StorageError, StorageOutcomeUnknown
from telecard_auth._core.text import driver_detail, passwords_in
from telecard_auth._storage.codec import decode_deleted, decode_state, encode_state
from telecard_auth._storage.protocol import Commit, SubjectSnapshot

__all__ = ["AsyncPostgresStorage", "PostgresStorage"]

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
            params = conninfo_to_dict(conninfo)
        except (psycopg.Error, UnicodeError) as error:
            problem = _pool.conninfo_problem(error, conninfo)
            raise ConfigurationError(reason=f"the PostgreSQL connection info: {problem}") from None
        self._server = _pool.server_name(conninfo)
        _pool.check_sessions(params, self._server)
        self.schema = schema
        self._conninfo = conninfo
        self._timeout = timeout
        # Idle connections a call may find dead, one after another, before a live one.
        self._tries = max_size + 1
        self._secrets = passwords_in(conninfo)
        self._watch = _pool.Watch(self._server, self._secrets)
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

    def _as_storage_errors(self, pool: _pool.AnyPool | None = None) -> _pool.StorageErrors:
        """The funnel of psycopg's errors, around a call on ``pool`` (or on no pool at all)."""
        return _pool.StorageErrors(self._storage_error, pool, self._server)

    def _storage_error(
        self, error: psycopg.Error, pool: _pool.AnyPool | None, server: str, sent: bool
    ) -> StorageError:
        """``error`` as a ``StorageError``: fixed words in its messages, the driver's in ``detail``.

        Only ``StorageErrors`` calls it. A pool timeout is answered at once; its ``detail`` is
        the diagnosis of ``pool``. After a change was ``sent`` to ``server``, an error that is not
        the server's refusal of it is ``StorageOutcomeUnknown``: the change may have landed.
        """
        if isinstance(error, PoolTimeout):
            stats = pool.get_stats() if pool is not None else {}
            return StorageError(
                reason=f"no database connection became free within {self._timeout:g} s",
                detail=f"{self._server}: {self._watch.diagnose(stats, self._timeout)}",
            )
        detail = driver_detail(server, error, self._secrets)
        if sent and _pool.outcome_unknown(error):
            return StorageOutcomeUnknown(
                reason="the connection to the database ended before it answered", detail=detail
            )
        return StorageError(reason=_pool.reason_for(error), detail=detail)

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
                connection_class=_pool.watched_connection(self._watch),
                open=True,
                name="telecard-auth",
                **pool_settings,
            )

    def _execute(
        self, statement: bytes, parameters: tuple[Any, ...], *, change: bool = False
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement in its own transaction: its row count, and the rows it returned.

        A ``change`` whose answer never comes is ``StorageOutcomeUnknown``; see ``commit``.
        """
        with (
            self._as_storage_errors(self.pool) as errors,
            _pool.checked_out(self.pool, errors, self._tries) as connection,
        ):
            errors.sent = change
            cursor = connection.execute(statement, parameters)
            return cursor.rowcount, cursor.fetchall() if cursor.description else []

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to date. Safe to call at every start."""
        with (
            self._as_storage_errors(self.pool) as errors,
            _pool.checked_out(self.pool, errors, self._tries) as connection,
        ):
            self._migrate_on(connection)

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """One primary-key ``SELECT``; see ``Storage.load``."""
        _, rows = self._execute(self._statements["_load"], (subject_ref,))
        return self._snapshot(subject_ref, rows)

    def commit(self, change: Commit) -> bool:
        """One statement, one transaction, compare-and-set; see ``Storage.commit``.

        Raises ``StorageError`` when nothing was applied (no live connection, or the server
        refused the statement), and ``StorageOutcomeUnknown`` when the statement was sent but
        its answer never came: it may have been applied. The commit is never sent twice.
        """
        count, _ = self._execute(*self._commit_statement(change), change=True)
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
            connection_class=_pool.watched_async_connection(self._watch),
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
        self, statement: bytes, parameters: tuple[Any, ...], *, change: bool = False
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """See ``PostgresStorage._execute``."""
        async with (
            self._as_storage_errors(self.pool) as errors,
            _pool.async_checked_out(await self._open_pool(), errors, self._tries) as connection,
        ):
            errors.sent = change
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
        count, _ = await self._execute(*self._commit_statement(change), change=True)
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
