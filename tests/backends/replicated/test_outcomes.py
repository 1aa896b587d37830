"""Which PostgreSQL failures leave a commit's outcome unknown, and which say nothing was applied.

A commit is one statement in its own transaction. Not sent (no live connection) or refused by the
server (an ``ERROR`` answer, such as a standby's "read-only"): a plain ``StorageError``, and
nothing changed. Sent, with no answer (the connection cut, the session ended while the primary
waited for its synchronous standby): ``StorageOutcomeUnknown``, and the retry with the same request
id finds out. All of it on the session's primary and synchronous standby (``conftest.py``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from functools import partial
from urllib.parse import parse_qsl, urlsplit

import pytest
from tests.backends.faults import DroppingProxy, HookedStorage, Position
from tests.backends.replicated.conftest import run_on
from tests.backends.replicated.pair import Pair
from tests.backends.workers import subject_for

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncPostgresStorage,
    CodeAlreadyUsed,
    CodeIssuer,
    CodeState,
    Keyring,
    ManualClock,
    PostgresStorage,
    Redemption,
    StorageError,
    StorageOutcomeUnknown,
    Subject,
)

PROVIDER = "stc"
SERVICE = "new_line"
#: The longest a test polls for the server to reach a state (seconds).
PATIENCE = 30.0


def schema_of(url: str) -> str:
    """The ``?schema=`` of a storage URL."""
    return dict(parse_qsl(urlsplit(url).query))["schema"]


def single(port: int, schema: str, options: str = "") -> str:
    """A URL of one server of the pair, in ``schema``."""
    return f"postgresql://postgres@127.0.0.1:{port}/postgres?schema={schema}{options}"


@pytest.fixture
def migrated(replicated_url: str) -> str:
    """``replicated_url``, its schema migrated (so that both servers have the table)."""
    with PostgresStorage(conninfo_of(replicated_url), schema=schema_of(replicated_url)) as storage:
        storage.migrate()
    return replicated_url


@pytest.fixture
def opened() -> Iterator[list[PostgresStorage]]:
    """Storages the test opens, closed when it ends."""
    storages: list[PostgresStorage] = []
    yield storages
    for storage in reversed(storages):
        storage.close()


def opening(opened: list[PostgresStorage], url: str, timeout: float = 30.0) -> PostgresStorage:
    """A storage at ``url``, in the URL's schema, closed when the test ends."""
    storage = PostgresStorage(conninfo_of(url), schema=schema_of(url), timeout=timeout)
    opened.append(storage)
    return storage


def conninfo_of(url: str) -> str:
    """A storage URL less its ``?schema=``: what libpq is given."""
    parts = urlsplit(url)
    query = "&".join(item for item in parts.query.split("&") if not item.startswith("schema="))
    return parts._replace(query=query).geturl()


def test_a_commit_cut_off_while_the_primary_waits_for_its_standby_is_outcome_unknown(
    pg_pair: Pair,
    migrated: str,
    opened: list[PostgresStorage],
    keyring: Keyring,
    clock: ManualClock,
) -> None:
    """The primary committed locally but had no word from its standby when the session ended.

    The call does not return while the standby is silent; when the session is ended, the caller
    gets StorageOutcomeUnknown, the redemption is in fact stored, and the retry with the same
    request id returns it, while another request id hears CodeAlreadyUsed.
    """
    name = f"{schema_of(migrated)}_waiting"
    storage = opening(opened, f"{migrated}&application_name={name}")
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock)
    subject = subject_for(1)
    issued = issuer.issue(subject, PROVIDER)
    failed_at = clock.advance(seconds=1)
    redeem = partial(issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id="r-1")
    outcome: list[BaseException | Redemption] = []

    def call() -> None:
        try:
            outcome.append(redeem())
        except BaseException as error:  # inspected below
            outcome.append(error)

    admin = pg_pair.primary.url
    run_on(admin, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    run_on(admin, "SELECT pg_reload_conf()")
    try:
        caller = threading.Thread(target=call)
        caller.start()
        waited = wait_for_sync_rep(admin, name)
        assert (True, []) == (caller.is_alive(), outcome)
        run_on(admin, f"SELECT pg_terminate_backend({waited}, 5000)")
        caller.join(PATIENCE)
    finally:
        run_on(admin, "ALTER SYSTEM RESET synchronous_standby_names")
        run_on(admin, "SELECT pg_reload_conf()")
    assert not caller.is_alive()
    assert [StorageOutcomeUnknown] == [type(item) for item in outcome]
    assert CodeState.REDEEMED is issuer.status(subject, issued.code_id).state
    clock.advance(seconds=1)
    assert failed_at == redeem().redeemed_at
    with pytest.raises(CodeAlreadyUsed):
        issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="r-2")


def wait_for_sync_rep(admin: str, application_name: str) -> int:
    """The process id of the session ``application_name`` once it waits for its standby."""
    import psycopg

    deadline = time.monotonic() + PATIENCE
    with psycopg.connect(admin, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = %s AND wait_event = 'SyncRep'",
                (application_name,),
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.01)
    raise AssertionError("the commit never waited for the standby")


def test_a_commit_the_standby_refuses_is_a_plain_storage_error(
    pg_pair: Pair,
    migrated: str,
    opened: list[PostgresStorage],
    keyring: Keyring,
    clock: ManualClock,
) -> None:
    """Sent to a standby (a URL without target_session_attrs), a commit is refused: nothing changed.

    The server answered, so the outcome is known: StorageError, not StorageOutcomeUnknown, with a
    reason that says why; the primary still has the code unused, and the same storage keeps
    refusing rather than guessing.
    """
    on_primary = CodeIssuer(opening(opened, migrated), keyring=keyring, clock=clock)
    subject = subject_for(2)
    issued = on_primary.issue(subject, PROVIDER)
    pg_pair.wait_replayed()
    standby = opening(opened, single(pg_pair.standby.port, schema_of(migrated)))
    on_standby = CodeIssuer(standby, keyring=keyring, clock=clock)
    for _ in range(2):
        with pytest.raises(StorageError) as caught:
            on_standby.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="r")
        assert (StorageError, "the database is read-only (a standby, not the primary)") == (
            type(caught.value),
            caught.value.details["reason"],
        )
    assert CodeState.ACTIVE is on_primary.status(subject, issued.code_id).state


def test_a_commit_with_no_connection_to_send_it_on_is_a_plain_storage_error(
    pg_pair: Pair,
    migrated: str,
    opened: list[PostgresStorage],
    keyring: Keyring,
    clock: ManualClock,
) -> None:
    """The server goes away between a redemption's load and its commit: nothing was sent.

    The idle connection the load used is found dead without being used, no other can be opened,
    and the call fails with a plain StorageError; the code is still unused, and the next call,
    once the server is back, redeems it.
    """
    proxy = DroppingProxy(("127.0.0.1", pg_pair.primary.port))
    storage = opening(opened, single(proxy.port, schema_of(migrated)), timeout=1.0)
    cut = threading.Event()

    def cut_before_commit(operation: str, position: Position) -> None:
        if (operation, position) == ("commit", Position.BEFORE) and not cut.is_set():
            cut.set()
            proxy.close()

    issuer = CodeIssuer(HookedStorage(storage, cut_before_commit), keyring=keyring, clock=clock)
    watcher = CodeIssuer(opening(opened, migrated), keyring=keyring, clock=clock)
    subject = subject_for(3)
    issued = watcher.issue(subject, PROVIDER)
    with pytest.raises(StorageError) as caught:
        issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="r")
    assert (StorageError, True) == (type(caught.value), cut.is_set())
    assert CodeState.ACTIVE is watcher.status(subject, issued.code_id).state
    assert SERVICE == watcher.redeem(subject, PROVIDER, issued.code, SERVICE).service.id


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("position", list(Position), ids=lambda p: p.value)
def test_a_commit_whose_answer_never_comes_is_outcome_unknown(
    pg_pair: Pair,
    migrated: str,
    opened: list[PostgresStorage],
    *,
    keyring: Keyring,
    clock: ManualClock,
    flavour: str,
    position: Position,
) -> None:
    """The connection ends once the commit is handed over: StorageOutcomeUnknown, either way.

    Dropped unsent (``before``) or after the server applied it (``after``), the client cannot
    tell which; the retry with the same request id redeems the code, or returns the redemption
    already made, at the failed call's time.
    """
    schema = schema_of(migrated)
    watcher = CodeIssuer(opening(opened, migrated), keyring=keyring, clock=clock)
    subject = subject_for(4)
    issued = watcher.issue(subject, PROVIDER)
    with DroppingProxy(("127.0.0.1", pg_pair.primary.port)) as proxy:
        url = single(proxy.port, schema)
        failed_at = clock.advance(seconds=1)
        proxy.arm(issued.code_id.encode(), position)
        first = attempt(flavour, url, subject, issued.code, keyring=keyring, clock=clock)
        assert (StorageOutcomeUnknown, 1) == (type(first), proxy.drops[position])
        applied = position is Position.AFTER
        expected = CodeState.REDEEMED if applied else CodeState.ACTIVE
        assert expected is watcher.status(subject, issued.code_id).state
        retried_at = clock.advance(seconds=1)
        retried = attempt(flavour, url, subject, issued.code, keyring=keyring, clock=clock)
    assert isinstance(retried, Redemption)
    assert (failed_at if applied else retried_at) == retried.redeemed_at


def attempt(
    flavour: str, url: str, subject: Subject, code: str, *, keyring: Keyring, clock: ManualClock
) -> Redemption | StorageError:
    """One redemption with request id ``r`` through a new storage of ``flavour`` at ``url``."""
    schema, conninfo = schema_of(url), conninfo_of(url)
    if flavour == "sync":
        with PostgresStorage(conninfo, schema=schema) as storage:
            try:
                return CodeIssuer(storage, keyring=keyring, clock=clock).redeem(
                    subject, PROVIDER, code, SERVICE, request_id="r"
                )
            except StorageError as error:
                return error

    async def run() -> Redemption | StorageError:
        async with AsyncPostgresStorage(conninfo, schema=schema) as storage:
            issuer = AsyncCodeIssuer(storage, keyring=keyring, clock=clock)
            try:
                return await issuer.redeem(subject, PROVIDER, code, SERVICE, request_id="r")
            except StorageError as error:
                return error

    return asyncio.run(run())
