"""Storage URLs that would quietly point somewhere other than they say are refused, early.

Each URL here reads as one place and would, once a driver parsed it, be another: libpq cuts a
string at NUL and then connects to the local default database; urlsplit drops tabs and newlines;
redis-py reads the database with ``int()``, which takes signs, spaces, underscores and every
script's digits; resolvers read ``127.1`` and ``0x7f.1`` as 127.0.0.1; SQLite reads ``file:`` paths
as URIs; two parsers split ``a@b@c`` at different ``@``. Every one is refused with
``InvalidStorageUrl`` before any backend is built, so nothing is ever connected; the backends are
replaced by a recorder to prove it. A refusal names what is wrong and never repeats the URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from telecard_auth import InvalidStorageUrl, async_storage_from_url, storage_from_url

FACTORIES = [
    pytest.param(storage_from_url, id="sync"),
    pytest.param(async_storage_from_url, id="async"),
]

#: Where each backend class the URL factories build lives.
BACKENDS = {
    "telecard_auth._storage.memory": ("MemoryStorage", "AsyncMemoryStorage"),
    "telecard_auth._storage.sqlite": ("SQLiteStorage", "AsyncSQLiteStorage"),
    "telecard_auth._storage.redis": ("RedisStorage", "AsyncRedisStorage"),
    "telecard_auth._storage.postgres": ("PostgresStorage", "AsyncPostgresStorage"),
}

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

PG = "postgresql://127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"

HOSTILE_POSTGRES = [
    pytest.param("postgresql://\x00@127.0.0.1:5432/test", id="pg-nul-user"),
    pytest.param(f"{PG}/te\x00st", id="pg-nul-dbname"),
    pytest.param("postgresql://%00@127.0.0.1:5432/test", id="pg-escaped-nul-user"),
    pytest.param("postgresql://app:pa%00ss@127.0.0.1:5432/test", id="pg-escaped-nul-password"),
    pytest.param("postgresql://127.0.0.1%00:5432/test", id="pg-escaped-nul-host"),
    pytest.param(f"{PG}/te%00st", id="pg-escaped-nul-dbname"),
    pytest.param(f"{PG}/test?application_name=a%00b", id="pg-escaped-nul-option"),
    pytest.param(f"{PG}/test?schema=a%00b", id="pg-escaped-nul-schema"),
    pytest.param(f"{PG}/te\tst", id="pg-tab-dropped-by-urlsplit"),
    pytest.param(f"{PG}/test\n", id="pg-newline"),
    pytest.param(f"{PG}/test\x7f", id="pg-del"),
    pytest.param(f"{PG}/test\x85", id="pg-c1-nel"),
    pytest.param(f"{PG}/test?application_name=a%0Ab", id="pg-escaped-newline"),
    pytest.param(f"{PG}/te%C2%85st", id="pg-escaped-c1"),
    pytest.param(f"{PG}/test#x", id="pg-fragment-read-as-dbname"),
    pytest.param("postgresql://app@evil.example@127.0.0.1:5432/test", id="pg-two-at-signs"),
    pytest.param(f"{PG}?host=a@evil.example/test", id="pg-at-in-query"),
    pytest.param(f"{PG}/test?host=evil.example", id="pg-host-twice"),
    pytest.param(f"{PG}/test?ho%73t=evil.example", id="pg-escaped-host-twice"),
    pytest.param(f"{PG}/test?port=6543", id="pg-port-twice"),
    pytest.param(f"{PG}/test?dbname=postgres", id="pg-dbname-twice"),
    pytest.param("postgresql://app@127.0.0.1:5432/test?user=postgres", id="pg-user-twice"),
    pytest.param(f"{PG}/test?sslmode=require&sslmode=disable", id="pg-option-twice"),
    pytest.param(f"{PG}/test?schema=a&schema=b", id="pg-schema-twice"),
    pytest.param("postgresql://127.0.0.1:+5432/test", id="pg-port-sign"),
    pytest.param("postgresql://127.0.0.1:5432x/test", id="pg-port-suffix"),
    pytest.param("postgresql://127.0.0.1:%35432/test", id="pg-port-escaped"),
    pytest.param("postgresql://127.0.0.1:\u0665\u0664\u0663\u0662/test", id="pg-port-arabic"),
    pytest.param("postgresql://127.0.0.1:99999/test", id="pg-port-too-big"),
    pytest.param("postgresql://127.0.0.1:0/test", id="pg-port-zero"),
    pytest.param("postgresql://127.0.0.1:5432:1/test", id="pg-port-two-colons"),
    pytest.param("postgresql://127.1:5432/test", id="pg-host-short-ipv4"),
    pytest.param("postgresql://0x7f.1:5432/test", id="pg-host-hex-ipv4"),
    pytest.param("postgresql://0177.0.0.1:5432/test", id="pg-host-octal-ipv4"),
    pytest.param("postgresql://2130706433:5432/test", id="pg-host-integer-ipv4"),
    pytest.param("postgresql://\uff11\uff12\uff17.0.0.1:5432/test", id="pg-host-fullwidth"),
    pytest.param("postgresql://[::1]x:5432/test", id="pg-host-after-bracket"),
    pytest.param("postgresql://[v1.x]:5432/test", id="pg-host-ipvfuture"),
    pytest.param("postgresql://127.0.0.1:5432,/test", id="pg-empty-host-in-list"),
    pytest.param("postgresql://,127.0.0.1:5432/test", id="pg-empty-first-host"),
    pytest.param(f"{PG}?application_name=a@evil.example/test", id="pg-libpq-reads-another-host"),
    pytest.param("postgresql://%2Ftmp%2Cevil.example/test", id="pg-hidden-host-list"),
    pytest.param(f"{PG}/test?hostaddr=127.1", id="pg-hostaddr-short-ipv4"),
    pytest.param("postgresql:///test?host=127.1", id="pg-query-host-short-ipv4"),
    pytest.param("postgresql:///test?port=%2B5432", id="pg-query-port-sign"),
    pytest.param("postgresql://app:p%FF@127.0.0.1:5432/test", id="pg-password-not-utf8"),
    pytest.param(f"{PG}/te st", id="pg-space-libpq-would-quote"),
    pytest.param(f"{PG}/test?application_name=100%", id="pg-stray-percent-libpq-would-quote"),
]

HOSTILE_REDIS = [
    pytest.param(f"{REDIS}/7x", id="redis-db-suffix"),
    pytest.param(f"{REDIS}/+1", id="redis-db-sign"),
    pytest.param(f"{REDIS}/-1", id="redis-db-negative"),
    pytest.param(f"{REDIS}/ 1", id="redis-db-space"),
    pytest.param(f"{REDIS}/1_0", id="redis-db-underscore"),
    pytest.param(f"{REDIS}/\u0667", id="redis-db-arabic-indic"),
    pytest.param(f"{REDIS}/\u00b2", id="redis-db-superscript"),
    pytest.param(f"{REDIS}/1\x00", id="redis-db-trailing-nul"),
    pytest.param(f"{REDIS}/1%00", id="redis-db-escaped-nul"),
    pytest.param(f"{REDIS}/1/0", id="redis-db-two-segments"),
    pytest.param(f"{REDIS}/%2B1", id="redis-db-escaped-sign"),
    pytest.param(f"{REDIS}/1\t0", id="redis-db-tab-dropped-by-urlsplit"),
    pytest.param(f"{REDIS}/99999999999999999999", id="redis-db-huge"),
    pytest.param(f"{REDIS}/2147483647", id="redis-db-past-int-max-index"),
    pytest.param(f"{REDIS}?db=\u0667", id="redis-query-db-arabic-indic"),
    pytest.param(f"{REDIS}?db=%2B1", id="redis-query-db-sign"),
    pytest.param(f"{REDIS}?d%62=7x", id="redis-escaped-query-db"),
    pytest.param(f"{REDIS}/1?db=2", id="redis-db-twice"),
    pytest.param(f"{REDIS}/0?db=0&db=5", id="redis-query-db-repeated"),
    pytest.param("redis://127.0.0.1:+6379/0", id="redis-port-sign"),
    pytest.param("redis://127.0.0.1:\u0666\u0663\u0667\u0669/0", id="redis-port-arabic"),
    pytest.param("redis://127.0.0.1:65536/0", id="redis-port-too-big"),
    pytest.param("redis://127.0.0.1:0/0", id="redis-port-zero"),
    pytest.param("redis://a[::1]:6379/0", id="redis-host-before-bracket"),
    pytest.param("redis://[::1]x:6379/0", id="redis-host-after-bracket"),
    pytest.param("redis://[v1.x]:6379/0", id="redis-host-ipvfuture"),
    pytest.param("redis://127.1:6379/0", id="redis-host-short-ipv4"),
    pytest.param("redis://0x7f000001:6379/0", id="redis-host-hex-ipv4"),
    pytest.param("redis://127.000.000.001:6379/0", id="redis-host-leading-zeros"),
    pytest.param("redis://127\u30020\u30020\u30021:6379/0", id="redis-host-ideographic-dots"),
    pytest.param("redis://cache.example,127.0.0.1:6379/0", id="redis-host-list"),
    pytest.param("redis://user@evil.example@127.0.0.1:6379/0", id="redis-two-at-signs"),
    pytest.param("redis://:pa%0Ass@127.0.0.1:6379/0", id="redis-escaped-newline-password"),
    pytest.param(f"{REDIS}/0?client_name=a%0D%0Ab", id="redis-escaped-crlf-option"),
    pytest.param(f"{REDIS}/0?prefix=a%00b", id="redis-escaped-nul-prefix"),
    pytest.param(f"{REDIS}/0\r\n", id="redis-crlf"),
    pytest.param(f"{REDIS}/0?prefix=a&prefix=b", id="redis-prefix-twice"),
    pytest.param(f"{REDIS}/0?socket_timeout=1&socket_timeout=2", id="redis-option-twice"),
    pytest.param(f"{REDIS}/0?host=evil.example", id="redis-host-twice"),
    pytest.param(f"{REDIS}/0?socket_timeout", id="redis-option-without-value"),
    pytest.param(f"{REDIS}/0#x", id="redis-fragment"),
    pytest.param("redis://:p%FF@127.0.0.1:6379/0", id="redis-password-not-utf8"),
]

HOSTILE_SQLITE_AND_MEMORY = [
    pytest.param("sqlite:///codes.db\x00.x", id="sqlite-nul"),
    pytest.param("sqlite:///codes%00.db", id="sqlite-escaped-nul"),
    pytest.param("sqlite:///co\tdes.db", id="sqlite-tab-dropped-by-urlsplit"),
    pytest.param("sqlite:///codes.db\n", id="sqlite-newline"),
    pytest.param("sqlite:///codes%0A.db", id="sqlite-escaped-newline"),
    pytest.param("sqlite:///codes\x9b.db", id="sqlite-c1-csi"),
    pytest.param("sqlite:///:memory:", id="sqlite-memory-per-connection"),
    pytest.param("sqlite:///file:codes.db", id="sqlite-uri-filename"),
    pytest.param("sqlite:///file:/tmp/elsewhere.db", id="sqlite-uri-absolute"),
    pytest.param("sqlite:///codes.db#x", id="sqlite-fragment"),
    pytest.param(
        "sqlite:///codes.db?synchronous=normal&synchronous=full", id="sqlite-option-twice"
    ),
    pytest.param("\x00memory://", id="memory-leading-nul-stripped-by-urlsplit"),
    pytest.param("memory://\n", id="memory-newline"),
    pytest.param("memory://#x", id="memory-fragment"),
]

HOSTILE = HOSTILE_POSTGRES + HOSTILE_REDIS + HOSTILE_SQLITE_AND_MEMORY


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every backend the factories try to build, by class name; none is really built."""
    import importlib

    calls: list[str] = []
    for module_name, names in BACKENDS.items():
        module = importlib.import_module(module_name)
        for name in names:

            def record(*args: Any, _name: str = name, **kwargs: Any) -> object:
                calls.append(_name)
                return object()

            monkeypatch.setattr(module, name, record)
    return calls


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_urls_are_refused_before_any_backend_is_built(
    url: str, factory: Callable[[str], object], built: list[str]
) -> None:
    """A URL that reads as one place and parses as another is refused; nothing is built."""
    with pytest.raises(InvalidStorageUrl) as caught:
        factory(url)
    assert ("invalid_storage_url", []) == (caught.value.code, built)


SECRET = "Zq7secret"

ECHO_BAITS = [
    pytest.param(f"postgresql://app:{SECRET}%00@127.0.0.1:5432/test", id="pg-password-nul"),
    pytest.param(f"postgresql://\x00{SECRET}@127.0.0.1:5432/test", id="pg-nul-user"),
    pytest.param(f"{PG}/test?application_name={SECRET}%0Aforged", id="pg-forged-line"),
    pytest.param(f"postgresql://127.0.0.1:{SECRET}/test", id="pg-port"),
    pytest.param(f"postgresql://{SECRET}.0x7f.1:5432/test", id="pg-host-ipv4-like"),
    pytest.param(f"{PG}/{SECRET} x", id="pg-space"),
    pytest.param(f"{PG}/test?application_name={SECRET}%zz", id="pg-stray-percent"),
    pytest.param(f"redis://:{SECRET}@127.0.0.1:6379/7x", id="redis-db-with-password"),
    pytest.param(f"{REDIS}/{SECRET}", id="redis-db"),
    pytest.param(f"redis://127.0.0.1:{SECRET}/0", id="redis-port"),
    pytest.param(f"{REDIS}/0?prefix={SECRET}%0D%0Aforged", id="redis-forged-line"),
    pytest.param(f"sqlite:///{SECRET}%00.db", id="sqlite-nul"),
    pytest.param(f"sqlite:///file:{SECRET}.db", id="sqlite-uri"),
]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("url", ECHO_BAITS)
def test_refusals_name_the_problem_without_repeating_the_url(
    url: str, factory: Callable[[str], object], built: list[str]
) -> None:
    """The reason says what is wrong; no piece of the URL and no control character is in it."""
    with pytest.raises(InvalidStorageUrl) as caught:
        factory(url)
    error = caught.value
    shown = " ".join((str(error), repr(error), error.message("ar")))
    assert (False, False, False, []) == (
        SECRET in shown,
        "forged" in shown,
        CONTROL.search(shown) is not None,
        built,
    )
