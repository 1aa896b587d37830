"""A real backend's failure is a ``StorageError`` whose messages hold no server data.

Each backend is pointed where it fails: PostgreSQL and Redis at a loopback port where nothing
listens, SQLite at a file in a directory that does not exist. Whatever the driver said (host,
port, database, role, path) is on ``StorageError.detail``, for server logs; the messages, ``str()``,
``repr()``, ``args`` and ``details`` hold the library's fixed words only, and no password is
anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.helpers import START

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncPostgresStorage,
    CodeIssuer,
    Commit,
    Keyring,
    ManualClock,
    PostgresStorage,
    StorageError,
    Subject,
    async_storage_from_url,
    storage_from_url,
)

ROLE = "telecard_role"
DATABASE = "telecard_db"
PASSWORD = "pw-never-shown"
#: PostgreSQL where nothing listens (its pool is given 0.2 s to find a connection).
POSTGRES_URL = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:1/{DATABASE}"
#: Redis where nothing listens.
REDIS_URL = f"redis://{ROLE}:{PASSWORD}@127.0.0.1:1/5?prefix=nowhere"


@attrs.frozen
class Case:
    """A backend where it fails, what no message may show, and what the detail must name."""

    storage: Callable[[], Any]
    async_storage: Callable[[], Any]
    hidden: tuple[str, ...]
    kept: tuple[str, ...]


def _case(backend: str, tmp_path: Path) -> Case:
    if backend == "postgres":
        pytest.importorskip("psycopg")
        return Case(
            lambda: PostgresStorage(POSTGRES_URL, schema="t", timeout=0.2),
            lambda: AsyncPostgresStorage(POSTGRES_URL, schema="t", timeout=0.2),
            ("127.0.0.1", "port 1", ":1", ROLE, DATABASE),
            ("127.0.0.1", ":1", ROLE, DATABASE),
        )
    if backend == "redis":
        pytest.importorskip("redis")
        server = ("127.0.0.1", ":1", ROLE, "/5")
        return Case(
            lambda: storage_from_url(REDIS_URL),
            lambda: async_storage_from_url(REDIS_URL),
            server,
            server,
        )
    path = tmp_path / "missing" / "codes.db"
    return Case(
        lambda: storage_from_url(f"sqlite:///{path}"),
        lambda: async_storage_from_url(f"sqlite:///{path}"),
        (str(tmp_path), "missing", "codes.db"),
        (str(path),),
    )


def _commit() -> Commit:
    return Commit(
        subject_ref="someone",
        expected_version=0,
        incarnation="inc-1",
        codes=(),
        failure_logs=(),
        written_at=START,
        keep_until=START + timedelta(days=1),
    )


def _shown(error: StorageError) -> tuple[str, ...]:
    """Every text of the error that a client or a plain log line would see."""
    return (
        error.message_en,
        error.message_ar,
        str(error),
        repr(error),
        *map(str, error.args),
        repr(dict(error.details)),
    )


def _check(error: StorageError, case: Case) -> None:
    for text in _shown(error):
        assert [] == [piece for piece in (*case.hidden, PASSWORD) if piece in text]
    assert error.detail is not None
    assert [] == [piece for piece in case.kept if piece not in error.detail]
    assert PASSWORD not in error.detail


BACKENDS = ("postgres", "redis", "sqlite")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_backend_keeps_server_data_in_detail_only(backend: str, tmp_path: Path) -> None:
    """Every call of a sync storage that fails: fixed messages, the driver's text in detail."""
    case = _case(backend, tmp_path)
    storage = case.storage()
    issuer = CodeIssuer(storage, keyring=Keyring.generate(), clock=ManualClock(START))
    calls: list[Callable[[], object]] = [
        storage.migrate,
        lambda: storage.load("someone"),
        lambda: storage.commit(_commit()),
        lambda: storage.purge(START, 10),
        lambda: storage.purge_snapshots(START, 10),
        lambda: storage.scan_subjects(None, 10),
        lambda: storage.scan_subjects("0", 10),
        lambda: issuer.issue(Subject.company("7000000001"), "zain"),
    ]
    with storage:
        for call in calls:
            with pytest.raises(StorageError) as caught:
                call()
            _check(caught.value, case)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_async_backend_keeps_server_data_in_detail_only(
    backend: str, tmp_path: Path
) -> None:
    """Every call of an async storage that fails: fixed messages, the driver's text in detail."""
    case = _case(backend, tmp_path)
    storage = case.async_storage()
    issuer = AsyncCodeIssuer(storage, keyring=Keyring.generate(), clock=ManualClock(START))
    calls: list[Callable[[], Awaitable[object]]] = [
        storage.migrate,
        lambda: storage.load("someone"),
        lambda: storage.commit(_commit()),
        lambda: storage.purge(START, 10),
        lambda: storage.purge_snapshots(START, 10),
        lambda: storage.scan_subjects(None, 10),
        lambda: storage.scan_subjects("0", 10),
        lambda: issuer.issue(Subject.company("7000000001"), "zain"),
    ]

    async def scenario() -> list[StorageError]:
        failures = []
        async with storage:
            for call in calls:
                with pytest.raises(StorageError) as caught:
                    await call()
                failures.append(caught.value)
        return failures

    for error in asyncio.run(scenario()):
        _check(error, case)
