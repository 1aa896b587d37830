"""Schema handling and failure behaviour of the backends that have one (SQLite, PostgreSQL; Redis
has only its script to load).

``migrate()`` is idempotent and safe to run concurrently; it brings a database of an older schema
(1, before the incarnation column) up to date, and the database works afterwards; before it, every
call says the schema is missing; a database from a newer release is refused; driver failures
surface as ``StorageError`` with the driver's exception chained; and a call that fails leaves
nothing half-applied. The database is inspected and manipulated behind the library's back with
``sqlite3`` and ``psycopg``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from tests.backends.conftest import UrlFactory
from tests.helpers import START

from telecard_auth import (
    CodeIssuer,
    CodeRecord,
    CodeState,
    Commit,
    Keyring,
    ManualClock,
    PostgresStorage,
    RedisStorage,
    SQLiteStorage,
    StorageError,
    Subject,
    storage_from_url,
)
from telecard_auth._storage.codec import encode_state, micros

SQL_BACKENDS = ("sqlite", "postgres")
#: Fresh databases on which two migrations race.
MIGRATION_RACES = 10
#: The schema versions a migrated database has recorded, oldest first.
MIGRATED = [1, 2]
#: A schema version from a later release.
NEWER = 3

#: How the release before incarnations created its schema (version 1), statement for statement.
SCHEMA_1 = {
    "sqlite": (
        "CREATE TABLE telecard_schema (version INTEGER NOT NULL)",
        """CREATE TABLE telecard_subjects (
            subject_ref TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            keep_until INTEGER NOT NULL,
            state TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX telecard_subjects_keep_until ON telecard_subjects (keep_until)",
        "INSERT INTO telecard_schema (version) VALUES (1)",
    ),
    "postgres": (
        "CREATE TABLE @telecard_schema (version integer NOT NULL)",
        """CREATE TABLE @telecard_subjects (
            subject_ref text PRIMARY KEY,
            version bigint NOT NULL,
            keep_until timestamptz NOT NULL,
            state text NOT NULL
        )""",
        "CREATE INDEX telecard_subjects_keep_until ON @telecard_subjects (keep_until)",
        "INSERT INTO @telecard_schema (version) VALUES (1)",
    ),
}


@attrs.define
class Database:
    """A SQL storage's database and a raw connection to it, outside the library.

    In statements given to ``run``, ``@`` stands for the PostgreSQL schema prefix (``schema.``)
    and is dropped for SQLite; ``'@'`` is the schema's name as a string literal; ``?`` is a
    parameter's placeholder.
    """

    backend: str
    url: str
    execute: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    schema: str = ""

    def run(self, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the raw connection, with ``parameters``; its rows."""
        statement = statement.replace("'@'", f"'{self.schema}'")
        statement = statement.replace("@", f"{self.schema}." if self.schema else "")
        if self.backend == "postgres":
            statement = statement.replace("?", "%s")
        return self.execute(statement, parameters)

    def storage(self) -> SQLiteStorage | PostgresStorage:
        """A new storage object on this database."""
        storage = storage_from_url(self.url)
        assert isinstance(storage, SQLiteStorage | PostgresStorage)
        return storage

    def tables(self) -> set[str]:
        """The tables the database holds (in the storage's PG schema)."""
        if self.backend == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            query = "SELECT table_name FROM information_schema.tables WHERE table_schema = '@'"
        return {row[0] for row in self.run(query)}

    def versions(self) -> list[int]:
        """Every row of the schema-version table, in order."""
        return sorted(row[0] for row in self.run("SELECT version FROM @telecard_schema"))

    def columns(self) -> dict[str, tuple[bool, str | None]]:
        """Each column of the subjects table: whether it is NOT NULL, and its default."""
        if self.backend == "sqlite":
            rows = self.run("PRAGMA table_info(telecard_subjects)")
            return {name: (bool(notnull), default) for _, name, _, notnull, default, _ in rows}
        rows = self.run(
            "SELECT column_name, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = '@' AND table_name = 'telecard_subjects'"
        )
        return {name: (nullable == "NO", default) for name, nullable, default in rows}

    def create_schema_1(self) -> None:
        """Create the schema as the release before incarnations did, at version 1."""
        for statement in SCHEMA_1[self.backend]:
            self.run(statement)


def _sqlite_runner(path: str) -> Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    import sqlite3

    def run(statement: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            return connection.execute(statement, parameters).fetchall()
        finally:
            connection.close()

    return run


def _postgres_runner(url: str) -> Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    import psycopg

    def run(statement: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as connection:
            cursor = connection.execute(statement, parameters or None)
            return cursor.fetchall() if cursor.description else []

    return run


def database(backend: str, storage_url: UrlFactory, request: pytest.FixtureRequest) -> Database:
    """A fresh, empty database of ``backend`` with its raw connection."""
    url = storage_url(backend)
    if backend == "sqlite":
        storage = storage_from_url(url)
        assert isinstance(storage, SQLiteStorage)
        return Database(backend=backend, url=url, execute=_sqlite_runner(storage.path))
    server: str = request.getfixturevalue("postgres_url")
    (schema,) = parse_qs(urlsplit(url).query)["schema"]
    return Database(backend=backend, url=url, execute=_postgres_runner(server), schema=schema)


@pytest.fixture(params=SQL_BACKENDS)
def db(request: pytest.FixtureRequest, storage_url: UrlFactory) -> Database:
    """A fresh database of each SQL backend in turn."""
    return database(request.param, storage_url, request)


@pytest.fixture
def opened(db: Database) -> Iterator[Callable[[], SQLiteStorage | PostgresStorage]]:
    """Open storages on ``db``; all are closed after the test."""
    storages: list[SQLiteStorage | PostgresStorage] = []

    def open_one() -> SQLiteStorage | PostgresStorage:
        storages.append(db.storage())
        return storages[-1]

    yield open_one
    for storage in storages:
        storage.close()


def issuer_over(storage: Any, keyring: Keyring) -> CodeIssuer:
    """An issuer over ``storage`` with a manual clock at ``START``."""
    return CodeIssuer(storage, keyring=keyring, clock=ManualClock(START))


def empty_commit(subject_ref: str = "someone", incarnation: str = "inc-1") -> Commit:
    """A first commit for a subject with nothing in it."""
    return Commit(
        subject_ref=subject_ref,
        expected_version=0,
        incarnation=incarnation,
        codes=(),
        failure_logs=(),
        written_at=START,
        keep_until=START + timedelta(days=1),
    )


# --- migrate() --------------------------------------------------------------------------------


def test_migrate_is_idempotent(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage], keyring: Keyring
) -> None:
    """migrate() three times: one schema version row, the tables once, the storage works."""
    storage = opened()
    for _ in range(3):
        storage.migrate()
    opened().migrate()
    assert MIGRATED == db.versions()
    assert {"telecard_schema", "telecard_subjects"} == db.tables()
    issuer = issuer_over(storage, keyring)
    customer = Subject.citizen("1000000008")
    issued = issuer.issue(customer, "stc")
    assert "new_line" == issuer.redeem(customer, "stc", issued.code, "new_line").service.id


def test_redis_migrate_loads_the_scripts_and_is_idempotent(storage_url: UrlFactory) -> None:
    """Redis has no schema: migrate() loads the commit and purge scripts, as often as called."""
    from telecard_auth._storage.redis import COMMIT_SCRIPT, PURGE_SCRIPT

    storage = storage_from_url(storage_url("redis"))
    assert isinstance(storage, RedisStorage)
    shas = [
        hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        for script in (COMMIT_SCRIPT, PURGE_SCRIPT)
    ]
    with storage:
        storage.migrate()
        storage.migrate()
        assert [True, True] == storage.client.script_exists(*shas)


def _race(actions: list[Callable[[], None]]) -> list[BaseException | None]:
    """Run the actions on threads released together; what each raised, or None."""
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException | None] = [None] * len(actions)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            actions[index]()
        except BaseException as error:  # reported to the test below
            errors[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_concurrent_migrations_on_an_empty_database(
    backend: str, storage_url: UrlFactory, request: pytest.FixtureRequest
) -> None:
    """Two threads migrate an empty database at once (two storages, or one shared): both succeed."""
    # The SQLite file already exists in WAL mode, as after any earlier open: on a file that does
    # not exist yet, opening can fail while another connection writes (see the xfail test below).
    for race in range(MIGRATION_RACES):
        db = database(backend, storage_url, request)
        if backend == "sqlite":
            assert [("wal",)] == db.run("PRAGMA journal_mode = WAL")
        first = db.storage()
        second = first if race % 2 else db.storage()
        try:
            assert [None, None] == _race([first.migrate, second.migrate])
            assert MIGRATED == db.versions()
            assert {"telecard_schema", "telecard_subjects"} == db.tables()
            assert first.commit(empty_commit())
            assert 1 == second.load("someone").version
        finally:
            first.close()
            second.close()


def test_opening_a_new_sqlite_file_waits_for_a_concurrent_writer(
    storage_url: UrlFactory, request: pytest.FixtureRequest
) -> None:
    """migrate() on a new file waits its turn behind another writer instead of failing."""
    db = database("sqlite", storage_url, request)
    storage = db.storage()
    import sqlite3

    assert isinstance(storage, SQLiteStorage)
    writer = sqlite3.connect(storage.path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other (x INTEGER)")
    release = threading.Timer(0.2, writer.execute, args=("COMMIT",))
    release.start()
    try:
        storage.migrate()
    finally:
        release.join()
        writer.close()
        storage.close()
    assert MIGRATED == db.versions()


# --- before migrate(), and a newer schema -----------------------------------------------------


def test_calls_before_migrate_say_the_schema_is_missing(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage], keyring: Keyring
) -> None:
    """load, commit and purge before migrate() are StorageError naming the missing schema."""
    storage = opened()
    calls: list[Callable[[], object]] = [
        lambda: storage.load("someone"),
        lambda: storage.commit(empty_commit()),
        lambda: storage.purge(START, 10),
        lambda: storage.scan_subjects(None, 10),
        lambda: issuer_over(storage, keyring).issue(Subject.citizen("1000000008"), "stc"),
    ]
    for call in calls:
        with pytest.raises(StorageError) as caught:
            call()
        assert "storage_error" == caught.value.code
        assert "the schema is missing; call migrate() first" == caught.value.details["reason"]
        assert caught.value.__cause__ is not None
    assert "telecard_subjects" not in db.tables()


def test_a_newer_schema_is_refused_and_left_alone(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """A database already at a later schema version than this release's is refused untouched."""
    db.run("CREATE TABLE @telecard_schema (version INTEGER NOT NULL)")
    db.run("INSERT INTO @telecard_schema (version) VALUES (?)", NEWER)
    storage = opened()
    with pytest.raises(StorageError) as caught:
        storage.migrate()
    assert "newer" in caught.value.details["reason"]
    assert [NEWER] == db.versions()
    assert {"telecard_schema"} == db.tables()


def test_a_newer_schema_is_refused_after_an_upgrade_elsewhere(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """Once another release moved a migrated database on, this release's migrate() refuses it."""
    opened().migrate()
    db.run("INSERT INTO @telecard_schema (version) VALUES (?)", NEWER)
    with pytest.raises(StorageError) as caught:
        opened().migrate()
    assert "newer" in caught.value.details["reason"]
    assert [*MIGRATED, NEWER] == db.versions()


# --- nothing half-applied ---------------------------------------------------------------------


def test_a_failed_migration_leaves_nothing_behind(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """A migration that fails at its last statement rolls back whole, and can then be rerun."""
    # An object that already holds the index's name makes the migration's second statement fail.
    db.run("CREATE TABLE @squatter (x INTEGER)")
    db.run("CREATE INDEX telecard_subjects_keep_until ON @squatter (x)")
    storage = opened()
    with pytest.raises(StorageError) as caught:
        storage.migrate()
    assert caught.value.__cause__ is not None
    assert {"squatter"} == db.tables()
    db.run("DROP INDEX @telecard_subjects_keep_until")
    storage.migrate()
    assert MIGRATED == db.versions()


# --- from schema 1 to schema 2 ----------------------------------------------------------------


def _insert_schema_1_row(db: Database, change: Commit, version: int) -> None:
    """Store ``change`` at ``version`` as the release before incarnations did: no incarnation."""
    keep_until = micros(change.keep_until) if db.backend == "sqlite" else change.keep_until
    db.run(
        "INSERT INTO @telecard_subjects (subject_ref, version, keep_until, state)"
        " VALUES (?, ?, ?, ?)",
        change.subject_ref,
        version,
        keep_until,
        encode_state(change),
    )


def test_a_schema_1_database_is_migrated_and_works(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """migrate() adds the incarnation column to a schema 1 database; its rows read as incarnation
    "" at their version, and the compare-and-set works on them and on new subjects alike."""
    db.create_schema_1()
    old = attrs.evolve(empty_commit("old"), codes=(_code("c1"),))
    _insert_schema_1_row(db, old, 3)
    storage = opened()
    storage.migrate()

    assert MIGRATED == db.versions()
    assert (True, "''") == _default_as_written(db.columns()["incarnation"])
    before = storage.load("old")
    assert ("", 3, old.codes, old.keep_until) == (
        before.incarnation,
        before.version,
        before.codes,
        before.keep_until,
    )
    # The upgraded row takes commits on the token it reads, and only on that one.
    assert storage.commit(_next(old, 3, "inc-x")) is False
    assert storage.commit(_next(old, 3, ""))
    assert ("", 4) == (storage.load("old").incarnation, storage.load("old").version)
    # A new subject stores its incarnation.
    assert storage.commit(empty_commit("new", "inc-new"))
    assert ("inc-new", 1) == (storage.load("new").incarnation, storage.load("new").version)
    page, cursor = storage.scan_subjects(None, 10)
    assert ([("new", "inc-new", 1), ("old", "", 4)], None) == (
        [(snapshot.subject_ref, snapshot.incarnation, snapshot.version) for snapshot in page],
        cursor,
    )
    deleted = storage.purge_snapshots(old.keep_until, 10)
    assert {("new", "inc-new"), ("old", "")} == {
        (snapshot.subject_ref, snapshot.incarnation) for snapshot in deleted
    }
    # Re-created after its purge, the old subject has an incarnation of its own: once back at
    # version 4, the token its schema 1 row last had, ("", 4), still cannot commit.
    assert storage.commit(empty_commit("old", "inc-again"))
    for version in (1, 2, 3):
        assert storage.commit(_next(old, version, "inc-again"))
    assert storage.commit(_next(old, 4, "")) is False
    assert ("inc-again", 4) == (storage.load("old").incarnation, storage.load("old").version)
    opened().migrate()
    assert MIGRATED == db.versions()


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_concurrent_migrations_of_a_schema_1_database(
    backend: str, storage_url: UrlFactory, request: pytest.FixtureRequest
) -> None:
    """Two storages upgrade one schema 1 database at once: both succeed, the column comes once."""
    db = database(backend, storage_url, request)
    if backend == "sqlite":
        db.run("PRAGMA journal_mode = WAL")
    db.create_schema_1()
    first, second = db.storage(), db.storage()
    try:
        assert [None, None] == _race([first.migrate, second.migrate])
        assert MIGRATED == db.versions()
        assert 1 == list(db.columns()).count("incarnation")
        assert first.commit(empty_commit())
        assert "inc-1" == second.load("someone").incarnation
    finally:
        first.close()
        second.close()


def test_a_failed_upgrade_from_schema_1_leaves_it_at_schema_1(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """An upgrade that fails rolls back whole: the database stays at schema 1, and a later
    migrate() upgrades it."""
    db.create_schema_1()
    _insert_schema_1_row(db, empty_commit("old"), 2)
    # A trigger that refuses the ALTER TABLE is not portable; a column already named so is.
    db.run("ALTER TABLE @telecard_subjects ADD COLUMN incarnation INTEGER")
    storage = opened()
    with pytest.raises(StorageError) as caught:
        storage.migrate()
    assert caught.value.__cause__ is not None
    assert [1] == db.versions()
    db.run("ALTER TABLE @telecard_subjects DROP COLUMN incarnation")
    storage.migrate()
    assert MIGRATED == db.versions()
    assert ("", 2) == (storage.load("old").incarnation, storage.load("old").version)


def _default_as_written(column: tuple[bool, str | None]) -> tuple[bool, str | None]:
    """A column's NOT NULL and default, with PostgreSQL's type cast (``''::text``) left out."""
    not_null, default = column
    return not_null, None if default is None else default.removesuffix("::text")


def _code(code_id: str) -> CodeRecord:
    return CodeRecord(
        code_id=code_id,
        provider_id="stc",
        key_id="k1",
        digest=hashlib.sha256(code_id.encode()).digest(),
        issued_at=START,
        expires_at=START + timedelta(hours=4),
    )


def _next(change: Commit, version: int, incarnation: str) -> Commit:
    """``change`` again, on top of (``incarnation``, ``version``)."""
    return attrs.evolve(
        change, expected_version=version, incarnation=incarnation, stored_keep_until=None
    )


def _refuse_writes(db: Database, event: str) -> Callable[[], None]:
    """Install a trigger that makes every ``event`` on the subjects table fail; return its undo."""
    if db.backend == "sqlite":
        db.run(
            f"CREATE TRIGGER refuse BEFORE {event} ON telecard_subjects"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
        undo = "DROP TRIGGER refuse"
    else:
        db.run(
            "CREATE FUNCTION @refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        db.run(
            f"CREATE TRIGGER refuse BEFORE {event} ON @telecard_subjects"
            " FOR EACH ROW EXECUTE FUNCTION @refuse()"
        )
        undo = "DROP FUNCTION @refuse() CASCADE"

    def remove() -> None:
        db.run(undo)

    return remove


def test_a_failed_redemption_leaves_nothing_behind(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage], keyring: Keyring
) -> None:
    """A redemption whose commit fails in the database is StorageError and changes nothing."""
    storage = opened()
    storage.migrate()
    issuer = issuer_over(storage, keyring)
    customer = Subject.citizen("1000000008")
    issued = issuer.issue(customer, "stc")
    before = db.run("SELECT version, state FROM @telecard_subjects")
    undo = _refuse_writes(db, "UPDATE")
    with pytest.raises(StorageError) as caught:
        issuer.redeem(customer, "stc", issued.code, "new_line")
    assert caught.value.__cause__ is not None
    assert before == db.run("SELECT version, state FROM @telecard_subjects")
    undo()
    status = issuer.status(customer, issued.code_id)
    assert (CodeState.ACTIVE, 0) == (status.state, status.failed_attempts)
    assert issued.code_id == issuer.redeem(customer, "stc", issued.code, "new_line").code_id


def test_a_failed_first_issue_leaves_nothing_behind(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage], keyring: Keyring
) -> None:
    """An issue whose insert fails in the database is StorageError and stores nothing."""
    storage = opened()
    storage.migrate()
    issuer = issuer_over(storage, keyring)
    undo = _refuse_writes(db, "INSERT")
    with pytest.raises(StorageError) as caught:
        issuer.issue(Subject.resident("2129040479"), "mobily")
    assert caught.value.__cause__ is not None
    assert [] == db.run("SELECT * FROM @telecard_subjects")
    undo()
    assert "mobily" == issuer.issue(Subject.resident("2129040479"), "mobily").provider.id


def test_an_unreadable_stored_state_is_a_storage_error(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """A row whose state document cannot be decoded is StorageError, with the reason chained."""
    storage = opened()
    storage.migrate()
    assert storage.commit(empty_commit())
    db.run("UPDATE @telecard_subjects SET state = '{not json'")
    with pytest.raises(StorageError) as caught:
        storage.load("someone")
    assert isinstance(caught.value.__cause__, ValueError)


def test_an_unreadable_stored_state_is_purged_and_reported_empty(
    db: Database, opened: Callable[[], SQLiteStorage | PostgresStorage]
) -> None:
    """purge_snapshots deletes a due row it cannot decode and reports it without codes."""
    storage = opened()
    storage.migrate()
    change = empty_commit()
    assert storage.commit(change)
    db.run("UPDATE @telecard_subjects SET state = '{not json'")
    (deleted,) = storage.purge_snapshots(change.keep_until, 10)
    assert ("someone", 1, (), ()) == (
        deleted.subject_ref,
        deleted.version,
        deleted.codes,
        deleted.failure_logs,
    )
    assert deleted.keep_until == change.keep_until
    assert ([], 0) == (db.run("SELECT * FROM @telecard_subjects"), storage.load("someone").version)


# --- driver errors ----------------------------------------------------------------------------


def _all_fail(storage: Any, keyring: Keyring) -> list[BaseException | None]:
    """The ``__cause__`` of the StorageError each storage operation raises."""
    causes: list[BaseException | None] = []
    calls: list[Callable[[], object]] = [
        storage.migrate,
        lambda: storage.load("someone"),
        lambda: storage.commit(empty_commit()),
        lambda: storage.purge(START, 10),
        lambda: storage.purge_snapshots(START, 10),
        lambda: storage.scan_subjects(None, 10),
        lambda: issuer_over(storage, keyring).issue(Subject.company("7000000001"), "zain"),
    ]
    for call in calls:
        with pytest.raises(StorageError) as caught:
            call()
        causes.append(caught.value.__cause__)
    return causes


def test_sqlite_in_a_missing_directory_is_a_storage_error(tmp_path: Path, keyring: Keyring) -> None:
    """A SQLite file in a directory that does not exist: StorageError from sqlite3, no file."""
    import sqlite3

    folder = tmp_path / "missing"
    storage = storage_from_url(f"sqlite:///{folder / 'codes.db'}")
    assert isinstance(storage, SQLiteStorage)
    with storage:
        causes = _all_fail(storage, keyring)
    assert all(isinstance(cause, sqlite3.Error) for cause in causes)
    assert not folder.exists()


def test_postgres_on_a_closed_port_is_a_storage_error(keyring: Keyring) -> None:
    """PostgreSQL at 127.0.0.1:1 (nothing listens): StorageError from psycopg on every call."""
    import psycopg

    storage = PostgresStorage("postgresql://127.0.0.1:1/test", schema="t", timeout=0.5)
    with storage:
        causes = _all_fail(storage, keyring)
    assert all(isinstance(cause, psycopg.Error) for cause in causes)


def test_redis_on_a_closed_port_is_a_storage_error(keyring: Keyring) -> None:
    """Redis at 127.0.0.1:1 (nothing listens): StorageError from redis-py on every call."""
    import redis

    storage = storage_from_url("redis://127.0.0.1:1/0?prefix=nowhere")
    assert isinstance(storage, RedisStorage)
    with storage:
        causes = _all_fail(storage, keyring)
    assert all(isinstance(cause, redis.ConnectionError) for cause in causes)
