"""Multi-host PostgreSQL URLs: libpq host lists, each host checked as a single one is.

``postgresql://h1:p1,h2:p2/db?target_session_attrs=read-write`` reaches libpq as written. A list
is refused, before any backend is built, when any one of its hosts or ports would be refused on
its own, when its ports or ``hostaddr`` values cannot be matched to its hosts (libpq would find
out only when connecting), or when ``target_session_attrs`` would let libpq settle on a standby.
None of these tests connects anywhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("psycopg")

from telecard_auth import (
    AsyncPostgresStorage,
    ConfigurationError,
    InvalidStorageUrl,
    PostgresStorage,
    StorageError,
    async_storage_from_url,
    storage_from_url,
)

FACTORIES = [
    pytest.param(storage_from_url, id="sync"),
    pytest.param(async_storage_from_url, id="async"),
]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql://app@127.0.0.1:5432,[::1]:5433/db?target_session_attrs=read-write",
            {
                "user": "app",
                "host": "127.0.0.1,::1",
                "port": "5432,5433",
                "dbname": "db",
                "target_session_attrs": "read-write",
            },
            id="ipv4-and-ipv6",
        ),
        pytest.param(
            "postgresql://a.example.invalid,b.example.invalid,c.example.invalid/db"
            "?port=5432&target_session_attrs=primary",
            {
                "host": "a.example.invalid,b.example.invalid,c.example.invalid",
                "port": "5432",
                "dbname": "db",
                "target_session_attrs": "primary",
            },
            id="three-hosts-one-port",
        ),
        pytest.param(
            "postgresql:///db?host=a.example.invalid,b.example.invalid&port=5432,5433"
            "&target_session_attrs=any",
            {
                "host": "a.example.invalid,b.example.invalid",
                "port": "5432,5433",
                "dbname": "db",
                "target_session_attrs": "any",
            },
            id="host-and-port-options",
        ),
        pytest.param(
            "postgresql://a.example.invalid,b.example.invalid/db?hostaddr=10.0.0.1,10.0.0.2",
            {
                "host": "a.example.invalid,b.example.invalid",
                "port": ",",
                "hostaddr": "10.0.0.1,10.0.0.2",
                "dbname": "db",
            },
            id="hostaddr-each",
        ),
    ],
)
def test_host_lists_reach_libpq_as_written(url: str, expected: dict[str, str]) -> None:
    """A host list, its ports and target_session_attrs reach libpq as they read (no connection)."""
    from psycopg.conninfo import conninfo_to_dict

    storage = async_storage_from_url(url)
    assert isinstance(storage, AsyncPostgresStorage)
    assert expected == conninfo_to_dict(storage.pool.conninfo)  # type: ignore[arg-type]


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The PostgreSQL storages the factories try to build, by class name; none is really built."""
    import telecard_auth._storage.postgres as module

    calls: list[str] = []
    for name in ("PostgresStorage", "AsyncPostgresStorage"):

        def record(*args: Any, _name: str = name, **kwargs: Any) -> object:
            calls.append(_name)
            return object()

        monkeypatch.setattr(module, name, record)
    return calls


PG = "postgresql://127.0.0.1:5432"

REFUSED = [
    # Each host of a list, wherever it stands, is checked as a single host is.
    pytest.param(f"{PG},127.1:5432/db", id="second-host-short-ipv4"),
    pytest.param(f"{PG},0x7f.1:5432/db", id="second-host-hex-ipv4"),
    pytest.param(f"{PG},\uff11\uff12\uff17.0.0.1:5432/db", id="second-host-fullwidth"),
    pytest.param(f"{PG},h\u00e9.example:5432/db", id="second-host-not-ascii"),
    pytest.param(f"{PG},[::1]x:5432/db", id="second-host-after-bracket"),
    pytest.param(f"{PG},[v1.x]:5432/db", id="second-host-ipvfuture"),
    pytest.param(f"{PG},%2Ftmp%2Cevil.example/db", id="second-host-hidden-list"),
    pytest.param(f"{PG},127.0.0.1%00:5432/db", id="second-host-escaped-nul"),
    pytest.param(f"{PG},127.0.0.1:5432,127.0.0.1:+5432/db", id="third-port-sign"),
    pytest.param(f"{PG},127.0.0.1:0/db", id="second-port-zero"),
    pytest.param(f"{PG},127.0.0.1:99999/db", id="second-port-too-big"),
    pytest.param(f"{PG},127.0.0.1:\u0665\u0664\u0663\u0662/db", id="second-port-arabic"),
    pytest.param(f"{PG},127.0.0.1:5432:1/db", id="second-port-two-colons"),
    pytest.param(f"{PG},,127.0.0.1:5432/db", id="empty-host-in-the-middle"),
    pytest.param("postgresql:///db?host=127.0.0.1,127.1", id="query-second-host-short-ipv4"),
    pytest.param("postgresql:///db?host=127.0.0.1,127.0.0.2&port=5432,%2B5432", id="query-port"),
    # Ports and hostaddr values that libpq cannot match to the hosts.
    pytest.param("postgresql:///db?host=127.0.0.1,127.0.0.2&port=1,2,3", id="more-ports"),
    pytest.param("postgresql:///db?host=127.0.0.1,127.0.0.2,127.0.0.3&port=1,2", id="fewer-ports"),
    pytest.param(
        "postgresql://a.example.invalid,b.example.invalid/db?hostaddr=10.0.0.1", id="one-hostaddr"
    ),
    pytest.param(f"{PG}/db?hostaddr=10.0.0.1,10.0.0.2", id="two-hostaddrs-one-host"),
    # A session libpq may settle on that is, or may be, a standby: every commit would fail.
    pytest.param(f"{PG},127.0.0.2:5432/db?target_session_attrs=read-only", id="read-only"),
    pytest.param(f"{PG},127.0.0.2:5432/db?target_session_attrs=standby", id="standby"),
    pytest.param(f"{PG},127.0.0.2:5432/db?target_session_attrs=prefer-standby", id="prefer"),
    pytest.param(f"{PG}/db?target_session_attrs=READ-WRITE", id="upper-case"),
    pytest.param(f"{PG}/db?target_session_attrs=", id="empty"),
    pytest.param(f"{PG}/db?target_session_attrs=Zq7secret", id="unknown"),
]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("url", REFUSED)
def test_bad_host_lists_are_refused_before_any_backend_is_built(
    url: str, factory: Callable[[str], object], built: list[str]
) -> None:
    """Any one bad host, port or session setting refuses the whole URL; nothing is built."""
    with pytest.raises(InvalidStorageUrl) as caught:
        factory(url)
    error = caught.value
    shown = " ".join((str(error), repr(error), error.message("ar")))
    assert ("invalid_storage_url", [], False) == (error.code, built, "Zq7secret" in shown)


@pytest.mark.parametrize("backend", [PostgresStorage, AsyncPostgresStorage])
@pytest.mark.parametrize(
    "conninfo",
    [
        "host=127.0.0.1,127.0.0.2 port=1 target_session_attrs=standby",
        "postgresql://127.0.0.1:1,127.0.0.2:1/db?target_session_attrs=prefer-standby",
    ],
)
def test_a_storage_built_directly_refuses_a_standby_session(
    backend: Callable[..., object], conninfo: str
) -> None:
    """Connection info that lets libpq settle on a standby is a ConfigurationError at once."""
    with pytest.raises(ConfigurationError) as caught:
        backend(conninfo, schema="t")
    assert (
        "target_session_attrs must be read-write, primary or any: the storage writes"
        == caught.value.details["reason"]
    )


def test_a_storage_error_names_every_host_of_the_list_for_the_logs() -> None:
    """Where no host answers, ``detail`` names each host with its port; the message names none."""
    url = "postgresql://app@127.0.0.1:1,127.0.0.2:1/db?target_session_attrs=read-write"
    with (
        PostgresStorage(url, schema="t", timeout=0.3) as storage,
        pytest.raises(StorageError) as caught,
    ):
        storage.load("someone")
    error = caught.value
    assert error.detail is not None
    assert "PostgreSQL app@127.0.0.1:1,127.0.0.2:1/db" == error.detail.partition(": ")[0]
    assert re.search(r"127\.0\.0\.[12]", error.message_en + error.message_ar) is None


@pytest.mark.parametrize(
    ("query", "warned"),
    [("", True), ("?target_session_attrs=any", True), ("?target_session_attrs=read-write", False)],
)
def test_a_host_list_that_may_settle_on_a_standby_is_logged(
    query: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A host list without read-write or primary is built, with a warning naming the hosts."""
    url = f"postgresql://a.example.invalid:5432,b.example.invalid:5433/db{query}"
    with caplog.at_level(logging.WARNING, "telecard_auth.postgres"):
        async_storage_from_url(url)
    expected = (
        [
            "PostgreSQL a.example.invalid:5432,b.example.invalid:5433/db: a host list without"
            " target_session_attrs=read-write may connect to a standby, where every commit fails"
        ]
        if warned
        else []
    )
    assert expected == [
        r.getMessage() for r in caplog.records if r.name == "telecard_auth.postgres"
    ]
