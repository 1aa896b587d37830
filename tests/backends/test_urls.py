"""``storage_from_url``: each scheme builds the right backend, every bad URL is refused alike,
and client libraries are imported only when their backend is named.

Import behaviour is checked in fresh interpreters (``sys.executable``), where nothing the test
session imported can hide what the package itself pulls in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from telecard_auth import (
    ConfigurationError,
    InvalidStorageUrl,
    MemoryStorage,
    PostgresStorage,
    RedisStorage,
    SQLiteStorage,
    StorageBackend,
    storage_from_url,
)

ROOT = Path(__file__).resolve().parents[2]


def run_python(script: str) -> Any:
    """Run ``script`` in a fresh interpreter and return the JSON it printed last."""
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == completed.returncode, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


# --- each scheme builds the right class -------------------------------------------------------


def test_memory_url_builds_a_fresh_memory_storage() -> None:
    """memory:// builds a MemoryStorage, a new empty one each time."""
    first, second = storage_from_url("memory://"), storage_from_url("memory://")
    assert (MemoryStorage, MemoryStorage) == (type(first), type(second))
    assert first is not second


def test_every_backend_has_the_life_cycle_storage_from_url_promises() -> None:
    """Each backend class is a StorageBackend: mypy checks the list, issubclass the methods."""
    backends: list[type[StorageBackend]] = [
        MemoryStorage,
        SQLiteStorage,
        RedisStorage,
        PostgresStorage,
    ]
    assert all(issubclass(backend, StorageBackend) for backend in backends)
    assert not issubclass(dict, StorageBackend)


def test_memory_storage_takes_the_calls_every_backend_takes() -> None:
    """migrate, close and the with-block work on memory://, as on every other backend."""
    from telecard_auth import CodeIssuer, Keyring, Subject

    with storage_from_url("memory://") as storage:
        storage.migrate()
        issuer = CodeIssuer(storage, keyring=Keyring.generate())
        issued = issuer.issue(Subject.citizen("1000000008"), "stc")
    storage.close()
    # Closing releases nothing: the code is still there to redeem.
    redeemed = issuer.redeem(Subject.citizen("1000000008"), "stc", issued.code, "new_line")
    assert issued.code_id == redeemed.code_id


def test_sqlite_url_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///codes.db is relative to the working directory, with synchronous=full."""
    monkeypatch.chdir(tmp_path)
    storage = storage_from_url("sqlite:///data/codes.db")
    assert isinstance(storage, SQLiteStorage)
    assert ("data/codes.db", "full") == (storage.path, storage.synchronous)
    (tmp_path / "data").mkdir()
    with storage:
        storage.migrate()
    assert (tmp_path / "data" / "codes.db").is_file()


def test_sqlite_url_with_an_absolute_path(tmp_path: Path) -> None:
    """sqlite:////abs/path.db keeps the leading slash: the path is absolute."""
    target = tmp_path / "codes.db"
    url = "sqlite:///" + str(target)
    assert url.startswith("sqlite:////")
    storage = storage_from_url(url)
    assert isinstance(storage, SQLiteStorage)
    assert (str(target), "full") == (storage.path, storage.synchronous)
    assert not target.exists()
    with storage:
        storage.migrate()
    assert target.is_file()


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_sqlite_url_synchronous_option(tmp_path: Path, synchronous: str) -> None:
    """?synchronous=normal|full reaches the storage and the connection's pragma."""
    storage = storage_from_url(f"sqlite:///{tmp_path / 'codes.db'}?synchronous={synchronous}")
    assert isinstance(storage, SQLiteStorage)
    assert synchronous == storage.synchronous
    with storage:
        storage.migrate()
        level = storage._connection().execute("PRAGMA synchronous").fetchone()[0]
    assert {"normal": 1, "full": 2}[synchronous] == level


def test_redis_url_builds_a_plain_client_with_the_default_prefix() -> None:
    """redis://host:port/db builds a RedisStorage on that db, prefix 'telecard', without TLS."""
    import redis

    storage = storage_from_url("redis://127.0.0.1:6390/3")
    assert isinstance(storage, RedisStorage)
    pool = storage.client.connection_pool
    kwargs = pool.connection_kwargs
    assert ("127.0.0.1", 6390, 3) == (kwargs["host"], kwargs["port"], kwargs["db"])
    assert not issubclass(pool.connection_class, redis.SSLConnection)
    assert ("telecard", "telecard:{ref}") == (storage.prefix, storage.key("ref"))
    storage.close()


def test_redis_url_prefix_option() -> None:
    """?prefix= names the key prefix and is not passed on to the client."""
    storage = storage_from_url("redis://127.0.0.1:6390/0?prefix=tenant-a")
    assert isinstance(storage, RedisStorage)
    assert ("tenant-a", "tenant-a:{ref}") == (storage.prefix, storage.key("ref"))
    assert "prefix" not in storage.client.connection_pool.connection_kwargs
    storage.close()


def test_redis_url_expiry_grace_option() -> None:
    """?expiry_grace= is the grace period in seconds (default one hour), not a redis-py option."""
    default = storage_from_url("redis://127.0.0.1:6390/0")
    storage = storage_from_url("redis://127.0.0.1:6390/0?expiry_grace=90.5&socket_timeout=2")
    none = storage_from_url("redis://127.0.0.1:6390/0?prefix=p&expiry_grace=0")
    assert isinstance(default, RedisStorage)
    assert isinstance(storage, RedisStorage)
    assert isinstance(none, RedisStorage)
    assert (timedelta(hours=1), timedelta(seconds=90.5), timedelta(0)) == (
        default.expiry_grace,
        storage.expiry_grace,
        none.expiry_grace,
    )
    kwargs = storage.client.connection_pool.connection_kwargs
    assert ("expiry_grace" not in kwargs, 2.0) == (True, kwargs["socket_timeout"])
    for built in (default, storage, none):
        built.close()


def test_redis_url_passes_the_clients_own_options_on() -> None:
    """redis-py's own query options (timeouts, TLS settings) reach the client unchanged."""
    url = "rediss://127.0.0.1:6390/0?prefix=p&socket_timeout=1.5&ssl_cert_reqs=none"
    storage = storage_from_url(url)
    assert isinstance(storage, RedisStorage)
    kwargs = storage.client.connection_pool.connection_kwargs
    assert (1.5, "none") == (kwargs["socket_timeout"], kwargs["ssl_cert_reqs"])
    storage.close()


def test_rediss_url_uses_tls_without_connecting() -> None:
    """rediss:// builds a client whose pool makes SSL connections; nothing connects yet."""
    import redis

    storage = storage_from_url("rediss://cache.example.invalid:6380/2?prefix=p")
    assert isinstance(storage, RedisStorage)
    pool = storage.client.connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert ("cache.example.invalid", 6380, 2) == (
        pool.connection_kwargs["host"],
        pool.connection_kwargs["port"],
        pool.connection_kwargs["db"],
    )
    assert "p" == storage.prefix
    storage.close()


def _with_scheme(url: str, scheme: str) -> str:
    return scheme + url[url.index("://") :]


def conninfo(storage: PostgresStorage) -> dict[str, Any]:
    """The libpq parameters the storage's pool connects with."""
    from psycopg.conninfo import conninfo_to_dict

    info = storage.pool.conninfo
    assert isinstance(info, str)
    return conninfo_to_dict(info)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_url_schema_option(postgres_url: str, scheme: str) -> None:
    """postgresql:// and postgres:// build a PostgresStorage; ?schema= picks the PG schema."""
    url = _with_scheme(postgres_url, scheme)
    storage = storage_from_url(f"{url}?schema=tenant_a")
    assert isinstance(storage, PostgresStorage)
    with storage:
        assert "tenant_a" == storage.schema
        assert "schema" not in conninfo(storage)


def test_postgres_url_defaults_to_the_public_schema_and_keeps_libpq_options(
    postgres_url: str,
) -> None:
    """Without ?schema= the schema is public; libpq's own options stay in the connection info."""
    storage = storage_from_url(f"{postgres_url}?connect_timeout=5&application_name=telecard")
    assert isinstance(storage, PostgresStorage)
    with storage:
        assert "public" == storage.schema
        options = conninfo(storage)
        assert ("5", "telecard") == (options["connect_timeout"], options["application_name"])


def test_postgres_url_keeps_percent_encoded_libpq_options(postgres_url: str) -> None:
    """A libpq option holding an encoded space or '&' reaches libpq with the same value."""
    storage = storage_from_url(f"{postgres_url}?schema=s&application_name=a%20b%26c")
    assert isinstance(storage, PostgresStorage)
    with storage:
        assert "a b&c" == conninfo(storage)["application_name"]


# --- legitimate forms that the checks on hostile URLs leave alone -------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("redis://[::1]:6379/0", {"host": "::1", "port": 6379, "db": 0}, id="ipv6"),
        pytest.param(
            "rediss://:p%40ss%2Fw%25rd%3A@cache.example.invalid:6380/2?socket_timeout=5",
            {
                "host": "cache.example.invalid",
                "port": 6380,
                "db": 2,
                "password": "p@ss/w%rd:",
                "socket_timeout": 5.0,
            },
            id="rediss-encoded-password-and-option",
        ),
        pytest.param(
            "redis://127.0.0.1:6379?db=3",
            {"host": "127.0.0.1", "port": 6379, "db": 3},
            id="query-db",
        ),
        pytest.param(
            "redis://127.0.0.1:6379/?db=3", {"host": "127.0.0.1", "db": 3}, id="query-db-slash"
        ),
        pytest.param("redis://localhost/15", {"host": "localhost", "db": 15}, id="name-no-port"),
        pytest.param("redis://127.0.0.1:6379/", {"host": "127.0.0.1", "db": None}, id="no-db"),
        pytest.param(
            "redis://cache_1.example.invalid./007",
            {"host": "cache_1.example.invalid.", "db": 7},
            id="fqdn-leading-zeros",
        ),
        pytest.param(
            "redis://10.0.0.1:6379/2147483646", {"host": "10.0.0.1", "db": 2147483646}, id="last-db"
        ),
        pytest.param(
            "redis://[fe80::1%25eth0]:6379/1", {"host": "fe80::1%eth0", "db": 1}, id="ipv6-zone"
        ),
    ],
)
def test_legitimate_redis_urls_reach_the_client_as_written(
    url: str, expected: dict[str, Any]
) -> None:
    """IPv6, TLS, encoded passwords, ?db= and redis-py options are built as they read."""
    storage = storage_from_url(url)
    assert isinstance(storage, RedisStorage)
    kwargs = storage.client.connection_pool.connection_kwargs
    assert expected == {key: kwargs.get(key) for key in expected}
    storage.close()


@pytest.mark.parametrize(
    "path", ["file.db", "files/codes.db", "my%20codes.db", "FILE:codes.db", "a:memory:.db"]
)
def test_legitimate_sqlite_paths_are_taken_as_written(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path that merely resembles a SQLite URI or :memory: is a plain file name."""
    monkeypatch.chdir(tmp_path)
    storage = storage_from_url(f"sqlite:///{path}?synchronous=normal")
    assert isinstance(storage, SQLiteStorage)
    assert (path, "normal") == (storage.path, storage.synchronous)


def test_postgres_host_list_with_libpq_options_connects(storage_url: Any) -> None:
    """A libpq host list with ?target_session_attrs= builds, connects over loopback and works."""
    from urllib.parse import urlsplit

    parts = urlsplit(storage_url("postgres"))
    place = parts.netloc.rpartition("@")[2]
    url = (
        f"{parts.scheme}://{parts.netloc},{place}{parts.path}"
        f"?{parts.query}&target_session_attrs=read-write"
    )
    with storage_from_url(url) as storage:
        assert isinstance(storage, PostgresStorage)
        storage.migrate()
        assert 0 == storage.load("someone").version
        options = conninfo(storage)
    assert (f"{parts.hostname},{parts.hostname}", "read-write") == (
        options["host"],
        options["target_session_attrs"],
    )


# --- every bad URL is InvalidStorageUrl -------------------------------------------------------

BAD_URLS = [
    pytest.param("mysql://user@localhost/db", id="unknown-scheme"),
    pytest.param("", id="empty"),
    pytest.param("codes.db", id="no-scheme"),
    pytest.param("sqlite://", id="sqlite-no-path"),
    pytest.param("sqlite:///", id="sqlite-root-only"),
    pytest.param("sqlite://host/codes.db", id="sqlite-with-host"),
    pytest.param("sqlite:///codes.db?synchronous=off", id="sqlite-synchronous-off"),
    pytest.param("sqlite:///codes.db?synchronous=", id="sqlite-synchronous-blank"),
    pytest.param("sqlite:///codes.db?journal_mode=delete", id="sqlite-unknown-option"),
    pytest.param("sqlite:///codes.db?synchronous", id="sqlite-option-without-value"),
    pytest.param("redis://127.0.0.1:6379/0?bogus=1", id="redis-unknown-option"),
    pytest.param("rediss://127.0.0.1:6379/0?prefix=a&nonsense=2", id="rediss-unknown-option"),
    pytest.param("redis://127.0.0.1:6379/0?prefix=", id="redis-empty-prefix"),
    pytest.param("redis://127.0.0.1:6379/0?expiry_grace=", id="redis-grace-blank"),
    pytest.param("redis://127.0.0.1:6379/0?expiry_grace=1h", id="redis-grace-not-a-number"),
    pytest.param("redis://127.0.0.1:6379/0?expiry_grace=-1", id="redis-grace-negative"),
    pytest.param("redis://127.0.0.1:6379/0?expiry_grace=nan", id="redis-grace-nan"),
    pytest.param("redis://127.0.0.1:6379/0?expiry_grace=inf", id="redis-grace-infinite"),
    pytest.param("redis://127.0.0.1:6379/0?expiry_grace=1e300", id="redis-grace-too-long"),
    pytest.param("postgresql://127.0.0.1:5432/test?nonsense=1", id="postgres-unknown-option"),
    pytest.param("memory://host", id="memory-host"),
    pytest.param("memory:///path", id="memory-path"),
    pytest.param("memory://?size=1", id="memory-option"),
    pytest.param("redis://[::1/0", id="unparsable"),
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_are_invalid_storage_urls(url: str) -> None:
    """Each malformed URL is InvalidStorageUrl, a ConfigurationError, code 'invalid_storage_url'."""
    with pytest.raises(InvalidStorageUrl) as caught:
        storage_from_url(url)
    assert isinstance(caught.value, ConfigurationError)
    assert "invalid_storage_url" == caught.value.code


@pytest.mark.parametrize(
    "value", [None, b"memory://", 42, Path("codes.db"), ["memory://"]], ids=type
)
def test_a_url_that_is_not_text_is_refused(value: object) -> None:
    """A URL must be a str: bytes, paths, numbers and None are InvalidStorageUrl."""
    with pytest.raises(InvalidStorageUrl) as caught:
        storage_from_url(value)  # type: ignore[arg-type]
    assert "invalid_storage_url" == caught.value.code


def test_refusals_do_not_echo_credentials_or_long_input() -> None:
    """A refused URL's message names the problem, not the password, and stays one line long."""
    with pytest.raises(InvalidStorageUrl) as caught:
        storage_from_url("mysql://admin:hunter2-secret@db.internal/codes")
    with pytest.raises(InvalidStorageUrl) as long_scheme:
        storage_from_url("x" * 5000 + "://")
    assert "hunter2" not in str(caught.value)
    assert "mysql" in caught.value.message_en
    assert len(str(long_scheme.value)) < 400


# --- client libraries are imported only when named --------------------------------------------

LOADED = """
import json, sys
DRIVERS = ("sqlite3", "_sqlite3", "redis", "psycopg", "psycopg_pool")
def loaded():
    return sorted(name for name in DRIVERS if name in sys.modules)
"""


def test_drivers_load_only_when_their_backend_is_named(tmp_path: Path) -> None:
    """import telecard_auth loads no driver; each scheme loads its own client and no other."""
    script = (
        LOADED
        + f"""
steps = {{}}
import telecard_auth
steps["import"] = loaded()
telecard_auth.storage_from_url("memory://")
steps["memory"] = loaded()
telecard_auth.storage_from_url("sqlite:///{tmp_path / "codes.db"}")
steps["sqlite"] = loaded()
telecard_auth.storage_from_url("redis://127.0.0.1:1/0").close()
steps["redis"] = loaded()
telecard_auth.PostgresStorage
steps["postgres"] = loaded()
print(json.dumps(steps))
"""
    )
    assert {
        "import": [],
        "memory": [],
        "sqlite": ["_sqlite3", "sqlite3"],
        "redis": ["_sqlite3", "redis", "sqlite3"],
        "postgres": ["_sqlite3", "psycopg", "psycopg_pool", "redis", "sqlite3"],
    } == run_python(script)


MISSING = """
import importlib.abc, json, sys

class Uninstalled(importlib.abc.MetaPathFinder):
    '''Behave as if these distributions were not installed.'''
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError("No module named " + repr(name), name=name)
        return None

BLOCKED = {blocked!r}
if {by_meta_path!r}:
    sys.meta_path.insert(0, Uninstalled())
else:
    for name in BLOCKED:
        sys.modules[name] = None

import telecard_auth
result = {{}}
try:
    telecard_auth.storage_from_url({url!r})
except telecard_auth.MissingExtra as error:
    result = {{
        "type": type(error).__name__,
        "code": error.code,
        "extra": error.details["extra"],
        "configuration_error": isinstance(error, telecard_auth.ConfigurationError),
        "message": error.message_en,
        "cause": type(error.__cause__).__name__,
    }}
try:
    telecard_auth.{attribute}
except telecard_auth.MissingExtra as error:
    result["attribute"] = error.details["extra"]
result["memory_still_works"] = repr(telecard_auth.storage_from_url("memory://"))
print(json.dumps(result))
"""


@pytest.mark.parametrize(
    ("blocked", "by_meta_path", "url", "attribute", "extra"),
    [
        pytest.param(
            ["redis"],
            False,
            "redis://127.0.0.1:1/0",
            "RedisStorage",
            "redis",
            id="redis-modules-none",
        ),
        pytest.param(
            ["redis"], True, "rediss://127.0.0.1:1/0", "RedisStorage", "redis", id="rediss-finder"
        ),
        pytest.param(
            ["psycopg", "psycopg_pool"],
            True,
            "postgresql://127.0.0.1:1/db",
            "PostgresStorage",
            "postgres",
            id="postgres-finder",
        ),
        pytest.param(
            ["psycopg_pool"],
            False,
            "postgres://127.0.0.1:1/db",
            "PostgresStorage",
            "postgres",
            id="pool-missing",
        ),
    ],
)
def test_a_missing_extra_is_named(
    blocked: list[str], by_meta_path: bool, url: str, attribute: str, extra: str
) -> None:
    """Without its client library a backend raises MissingExtra naming the extra to install."""
    script = MISSING.format(
        blocked=blocked, by_meta_path=by_meta_path, url=url, attribute=attribute
    )
    result = run_python(script)
    message = result.pop("message")
    assert {
        "type": "MissingExtra",
        "code": "missing_extra",
        "extra": extra,
        "configuration_error": True,
        "cause": "ModuleNotFoundError",
        "attribute": extra,
        "memory_still_works": "MemoryStorage(subjects=0)",
    } == result
    assert f"pip install 'telecard-auth[{extra}]'" in message
