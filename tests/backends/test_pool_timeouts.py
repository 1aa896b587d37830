"""A PostgreSQL pool that times out answers at once, and opens no connection to say why.

The server is a loopback port that accepts every connection and closes it straight away, counting
them: the pool's own attempts fail there, so no connection ever becomes free. Every connection
the port saw beyond the pool's own attempts (``connections_num`` in the pool's stats) was opened
by the library to diagnose a timeout: at most one per ``DIAGNOSIS_INTERVAL`` is allowed, however
many calls time out together. The calls are loads and scans (``scan_subjects``), half and half:
both take their connection from the same pool.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from telecard_auth import StorageError

pytest.importorskip("psycopg")

from telecard_auth import AsyncPostgresStorage, PostgresStorage

#: Calls that time out together.
CALLS = 8
#: How long the pool waits for a connection.
TIMEOUT = 0.2
#: What libpq says when the server hangs up: the diagnosis must carry the pool's own failure.
HUNG_UP = "server closed the connection unexpectedly"


class Listener:
    """A loopback port that accepts each connection, closes it at once, and counts it."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        port = self._socket.getsockname()[1]
        # One TCP connection per attempt: no SSL or GSS negotiation to retry without.
        self.url = (
            f"postgresql://role@127.0.0.1:{port}/db?sslmode=disable&gssencmode=disable"
            "&connect_timeout=2"
        )

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._take()
        self._socket.setblocking(False)
        while self._take():  # whatever still waits in the backlog counts too
            pass

    def _take(self) -> bool:
        try:
            connection, _ = self._socket.accept()
        except (TimeoutError, BlockingIOError):
            return False
        connection.close()
        self.accepted += 1
        return True

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


def _call_together(storage: PostgresStorage) -> list[StorageError]:
    """``CALLS`` loads and scans at once, each on its own thread; the StorageError each raised."""
    errors: list[StorageError] = []
    start = threading.Barrier(CALLS)

    def call(index: int) -> None:
        start.wait()
        try:
            if index % 2:
                storage.scan_subjects(None, 10)
            else:
                storage.load("someone")
        except StorageError as error:
            errors.append(error)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(CALLS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


async def _call_together_async(storage: AsyncPostgresStorage) -> list[StorageError]:
    """``CALLS`` loads and scans at once on one event loop; the StorageError each one raised."""
    calls = [
        storage.scan_subjects(None, 10) if index % 2 else storage.load("someone")
        for index in range(CALLS)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    await storage.close()
    return [result for result in results if isinstance(result, StorageError)]


def _check(errors: list[StorageError], listener: Listener, pool_attempts: int) -> None:
    reason = f"no database connection became free within {TIMEOUT:g} s"
    assert CALLS == len(errors)
    assert listener.accepted >= pool_attempts >= 1
    assert listener.accepted - pool_attempts <= 1
    for error in errors:
        assert reason == error.details["reason"]
        assert error.detail is not None
        assert HUNG_UP in error.detail


def test_concurrent_timeouts_open_no_connection_of_their_own() -> None:
    """Many calls timing out at once: each answers, none connects to find out why."""
    with Listener() as listener:
        storage = PostgresStorage(listener.url, schema="t", timeout=TIMEOUT)
        errors = _call_together(storage)
        storage.close()
    _check(errors, listener, storage.pool.get_stats()["connections_num"])


def test_concurrent_async_timeouts_open_no_connection_of_their_own() -> None:
    """The same for AsyncPostgresStorage: no connection of its own on a timeout."""
    with Listener() as listener:
        storage = AsyncPostgresStorage(listener.url, schema="t", timeout=TIMEOUT)
        errors = asyncio.run(_call_together_async(storage))
    _check(errors, listener, storage.pool.get_stats()["connections_num"])


def test_the_diagnosis_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """Many timeouts within one interval log one warning, which carries the pool's failure."""
    with Listener() as listener, caplog.at_level(logging.WARNING, "telecard_auth.postgres"):
        storage = PostgresStorage(listener.url, schema="t", timeout=TIMEOUT)
        errors = _call_together(storage)
        storage.close()
    records = [record for record in caplog.records if record.name == "telecard_auth.postgres"]
    assert CALLS == len(errors)
    assert 1 == len(records)
    assert HUNG_UP in records[0].getMessage()
