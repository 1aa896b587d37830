"""SQLite storage: the embedded default, one file shared safely by threads and processes.

Durability choices, and why:

- ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers, so
  many redeemers in many processes share one file.
- ``synchronous=FULL`` (the default): every commit is flushed to disk before it is acknowledged,
  so an acknowledged redemption survives a process kill *and* a power cut. ``"normal"`` trades
  the power-cut guarantee for speed: commits survive a killed process but the last ones may be
  lost if the machine itself stops.
- One row per subject: ``(subject_ref, version, incarnation, keep_until, state)``, the last being
  the state document. Each state change is one statement in its own transaction (autocommit): an
  ``INSERT … ON CONFLICT DO NOTHING`` for a new subject (which stores the commit's incarnation),
  an ``UPDATE … WHERE version = ? AND incarnation = ?`` otherwise, so the compare-and-set is on
  both. SQLite serialises writers; ``busy_timeout`` makes a writer wait its turn instead of failing.
- One connection per thread (and per process: a connection is never used across ``fork``).
- ``purge`` and ``purge_snapshots`` are one short ``DELETE`` each, bounded by their limit;
  ``purge_snapshots`` reads the deleted rows back with ``RETURNING`` (SQLite 3.35 or later).
- ``scan_subjects`` reads a page of rows in ``subject_ref`` order through the primary key, one
  ``SELECT`` a page; its cursor is the last ``subject_ref`` of a full page.

Both storages are built the same way (``_SQLiteFile``); the asyncio one runs the sync one's calls
on a worker thread of its own, so every sqlite3 error becomes ``StorageError`` in one place
(``SQLiteStorage._as_storage_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from telecard_auth._core.errors import ConfigurationError, StorageError
from telecard_auth._core.text import clip, driver_detail, plain
from telecard_auth._storage.codec import (
    decode_deleted,
    decode_state,
    encode_state,
    from_micros,
    micros,
)
from telecard_auth._storage.protocol import Commit, SubjectSnapshot

__all__ = ["AsyncSQLiteStorage", "SQLiteStorage"]

R = TypeVar("R")

#: The schema this release reads and writes.
SCHEMA_VERSION = 2

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE telecard_subjects (
            subject_ref TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            keep_until INTEGER NOT NULL,
            state TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX telecard_subjects_keep_until ON telecard_subjects (keep_until)",
    ),
    # Rows written before it hold incarnation '': their subjects keep working at their version.
    2: ("ALTER TABLE telecard_subjects ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''",),
}

_LOAD = (
    "SELECT version, incarnation, state, keep_until FROM telecard_subjects WHERE subject_ref = ?"
)
_INSERT = (
    "INSERT INTO telecard_subjects (subject_ref, version, incarnation, keep_until, state)"
    " VALUES (?, 1, ?, ?, ?) ON CONFLICT (subject_ref) DO NOTHING"
)
_UPDATE = (
    "UPDATE telecard_subjects SET version = version + 1, keep_until = ?, state = ?"
    " WHERE subject_ref = ? AND version = ? AND incarnation = ?"
)
# When keep_until has not moved, leaving it out spares its index a delete and an insert.
_UPDATE_STATE = (
    "UPDATE telecard_subjects SET version = version + 1, state = ?"
    " WHERE subject_ref = ? AND version = ? AND incarnation = ?"
)
_PURGE = (
    "DELETE FROM telecard_subjects WHERE subject_ref IN"
    " (SELECT subject_ref FROM telecard_subjects WHERE keep_until <= ? LIMIT ?)"
)
# The same deletion, reading each deleted row back as it was.
_PURGE_RETURNING = _PURGE + " RETURNING subject_ref, version, incarnation, state, keep_until"
# A page of subjects in primary-key order: a range of the key, however far the walk has gone.
_SCAN_FIRST = (
    "SELECT subject_ref, version, incarnation, state, keep_until FROM telecard_subjects"
    " ORDER BY subject_ref LIMIT ?"
)
_SCAN_AFTER = (
    "SELECT subject_ref, version, incarnation, state, keep_until FROM telecard_subjects"
    " WHERE subject_ref > ? ORDER BY subject_ref LIMIT ?"
)


class _SQLiteFile:
    """The file and how it is written: the settings of both SQLite storages, checked once."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["full", "normal"] = "full",
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(synchronous, str) or plain(synchronous) not in ("full", "normal"):
            raise ConfigurationError(reason="synchronous must be 'full' or 'normal'")
        try:
            where = os.fspath(path)
        except TypeError:
            raise ConfigurationError(reason="the SQLite path must be a str or a path") from None
        if not isinstance(where, str) or "\x00" in plain(where):
            raise ConfigurationError(reason="the SQLite path must be text without NUL characters")
        self.path = plain(where)
        self.synchronous = cast(Literal["full", "normal"], plain(synchronous))
        self._timeout = timeout
        self._start()

    def _start(self) -> None:
        """Set up what the calls wait on: a connection per thread, or one worker thread."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, synchronous={self.synchronous!r})"


class SQLiteStorage(_SQLiteFile):
    """Storage in one SQLite file. Call ``migrate()`` once to create or upgrade the schema.

    >>> import tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> storage = SQLiteStorage(pathlib.Path(folder) / "codes.db")
    >>> storage.migrate()
    >>> storage.load("nobody").version
    0
    >>> storage.close()
    """

    def _start(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()

    @contextlib.contextmanager
    def _as_storage_errors(self, *, opening: bool = False) -> Iterator[None]:
        """The one place sqlite3's errors become ``StorageError``: fixed words in its messages,
        the driver's (and the file's name) in ``detail``."""
        try:
            yield
        except sqlite3.Error as error:
            # sqlite3 rarely names the file; the log that reads this needs to know which one.
            detail = driver_detail(f"SQLite {clip(self.path, 200)}", error)
            raise StorageError(reason=_reason(error, opening=opening), detail=detail) from error

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A forked child must not touch its parent's connections: start afresh.
            self._local = threading.local()
            self._connections = []
            self._pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._open()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _open(self) -> sqlite3.Connection:
        with self._as_storage_errors(opening=True):
            connection = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._set_wal(connection)
                connection.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            except BaseException:
                connection.close()
                raise
        return connection

    def _set_wal(self, connection: sqlite3.Connection) -> None:
        # Switching a file to WAL needs an exclusive lock, and SQLite reports "locked" at once
        # rather than through the busy handler while another connection writes: wait here.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to date. Safe to call at every start."""
        connection = self._connection()
        with self._as_storage_errors():
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS telecard_schema (version INTEGER NOT NULL)"
                )
                row = connection.execute("SELECT max(version) FROM telecard_schema").fetchone()
                current = row[0] or 0
                if current > SCHEMA_VERSION:
                    raise StorageError(
                        reason=f"the database schema {current} is newer than this release's"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[version]:
                        connection.execute(statement)
                    connection.execute(
                        "INSERT INTO telecard_schema (version) VALUES (?)", (version,)
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Everything stored for ``subject_ref``; see ``Storage.load``."""
        with self._as_storage_errors():
            row = self._connection().execute(_LOAD, (subject_ref,)).fetchone()
        if row is None:
            return SubjectSnapshot(subject_ref=subject_ref)
        version, incarnation, state, keep_until = row
        return decode_state(subject_ref, version, incarnation, state, from_micros(keep_until))

    def commit(self, change: Commit) -> bool:
        """One statement, one transaction, compare-and-set; see ``Storage.commit``."""
        with self._as_storage_errors():
            cursor = self._connection().execute(*_commit_statement(change))
        return cursor.rowcount == 1

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` subjects past their ``keep_until``; one short statement."""
        with self._as_storage_errors():
            cursor = self._connection().execute(_PURGE, (micros(now), limit))
        return cursor.rowcount

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """``purge``, returning the deleted rows; see ``PurgeReporting.purge_snapshots``.

        One statement, ``DELETE … RETURNING``: the rows returned are exactly the rows deleted,
        as they were, and a commit cannot land between reading a row and deleting it.
        """
        with self._as_storage_errors():
            rows = self._connection().execute(_PURGE_RETURNING, (micros(now), limit)).fetchall()
        return [
            decode_deleted(subject_ref, version, incarnation, state, from_micros(keep_until))
            for subject_ref, version, incarnation, state, keep_until in rows
        ]

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """A page of stored subjects in ``subject_ref`` order; see ``SubjectScanning``.

        One ``SELECT`` through the primary key; the cursor is the last ``subject_ref`` of a full
        page, and ``None`` after a short one.
        """
        with self._as_storage_errors():
            rows = self._connection().execute(*_scan_statement(after, limit)).fetchall()
        page = [
            decode_state(subject_ref, version, incarnation, state, from_micros(keep_until))
            for subject_ref, version, incarnation, state, keep_until in rows
        ]
        return page, _resume_after(page, limit)

    def close(self) -> None:
        """Close every connection this storage opened (in this process)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _commit_statement(change: Commit) -> tuple[str, tuple[Any, ...]]:
    """The compare-and-set statement that writes ``change``, with its parameters."""
    state = encode_state(change)
    keep_until = micros(change.keep_until)
    if change.expected_version == 0:
        return _INSERT, (change.subject_ref, change.incarnation, keep_until, state)
    token = (change.subject_ref, change.expected_version, change.incarnation)
    if change.keep_until == change.stored_keep_until:
        return _UPDATE_STATE, (state, *token)
    return _UPDATE, (keep_until, state, *token)


def _scan_statement(after: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The ``SELECT`` of the page after ``after`` (from the first subject if ``None``)."""
    return (_SCAN_FIRST, (limit,)) if after is None else (_SCAN_AFTER, (after, limit))


def _resume_after(page: list[SubjectSnapshot], limit: int) -> str | None:
    """Where the page after ``page`` starts: after its last subject if it is full, else nowhere."""
    return page[-1].subject_ref if page and len(page) >= limit else None


def _reason(error: sqlite3.Error, *, opening: bool) -> str:
    """Fixed words for what went wrong: a message never carries the driver's own."""
    if opening:
        return "the database file cannot be opened"
    if "no such table" in str(error):
        return "the schema is missing; call migrate() first"
    return "the database failed the operation"


class AsyncSQLiteStorage(_SQLiteFile):
    """``SQLiteStorage`` for asyncio: every call runs on the storage's own worker thread.

    SQLite has no asynchronous interface, so calls leave the event loop for one dedicated thread
    (with its own connection). One thread is enough: SQLite serialises writers anyway, and more
    threads would only contend for the interpreter lock. ``sync`` is the underlying
    ``SQLiteStorage``.
    """

    def _start(self) -> None:
        self.sync = SQLiteStorage(self.path, synchronous=self.synchronous, timeout=self._timeout)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telecard-sqlite")
        self._closed = False

    async def _call(self, function: Callable[..., R], *arguments: Any) -> R:
        if self._closed:
            raise StorageError(reason="the storage is closed")
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *arguments)

    async def migrate(self) -> None:
        """See ``SQLiteStorage.migrate``."""
        await self._call(self.sync.migrate)

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``Storage.load``."""
        return await self._call(self.sync.load, subject_ref)

    async def commit(self, change: Commit) -> bool:
        """See ``Storage.commit``."""
        return await self._call(self.sync.commit, change)

    async def purge(self, now: datetime, limit: int) -> int:
        """See ``Storage.purge``."""
        return await self._call(self.sync.purge, now, limit)

    async def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``SQLiteStorage.purge_snapshots``."""
        return await self._call(self.sync.purge_snapshots, now, limit)

    async def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``SQLiteStorage.scan_subjects``."""
        return await self._call(self.sync.scan_subjects, after, limit)

    async def close(self) -> None:
        """Close the worker's connection and stop the worker; closing twice is harmless."""
        if not self._closed:
            await self._call(self.sync.close)
            self._closed = True
            self._worker.shutdown(wait=False)

    async def __aenter__(self) -> AsyncSQLiteStorage:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
