"""A PostgreSQL primary and its synchronous standby for the replicated tests, and fresh schemas.

The pair is built once per session from the server programs on the machine (see ``pair.py``)
and stopped at its end. Without those programs (or psycopg) the tests skip with the reason; with
``CI=true`` a missing piece fails the run instead: CI never passes by skipping. A pair that cannot
be built although everything is there fails either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.backends.replicated.pair import Missing, Pair, build_pair, check_machine
from tests.helpers import unavailable


def require_pair() -> None:
    """Return if a pair can be built here; else a skip (a failure under CI=true)."""
    try:
        import psycopg  # noqa: F401 - the 'postgres' extra must be there
    except ImportError as error:
        unavailable(f"psycopg (the 'postgres' extra) is not installed ({error})")
    try:
        check_machine()
    except Missing as error:
        unavailable(f"no PostgreSQL primary and standby can be built here: {error}")


def new_pair() -> Pair:
    """A freshly built primary and synchronous standby, or a skip (a failure under CI=true)."""
    require_pair()
    return build_pair()


@pytest.fixture(scope="session")
def pg_pair() -> Iterator[Pair]:
    """The session's primary and synchronous standby, on free loopback ports."""
    pair = new_pair()
    yield pair
    pair.close()


def run_on(url: str, statement: str) -> None:
    """Run one statement, in autocommit, on the server ``url`` names."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement.encode())


@pytest.fixture
def replicated_url(pg_pair: Pair) -> Iterator[str]:
    """The multi-host URL of the pair, in a fresh schema, removed after the test."""
    name = "t" + uuid.uuid4().hex[:12]
    run_on(pg_pair.url(), f"CREATE SCHEMA {name}")
    yield pg_pair.url(options=f"schema={name}")
    run_on(pg_pair.url(), f"DROP SCHEMA {name} CASCADE")
