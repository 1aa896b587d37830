"""``redis+cluster://`` and ``rediss+cluster://`` URLs, and the ``replicas`` options of every Redis
URL: what they build, and what they refuse before anything is built (the hostile-URL rules of
TA-2026-10, extended to the new schemes). No test here needs a server: building connects nowhere.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers import START

from telecard_auth import (
    AsyncRedisStorage,
    Commit,
    ConfigurationError,
    InvalidStorageUrl,
    RedisStorage,
    StorageError,
    async_storage_from_url,
    storage_from_url,
)
from telecard_auth._storage.redis_cluster import AsyncRedisClusterStorage, RedisClusterStorage

FACTORIES = [
    pytest.param(storage_from_url, id="sync"),
    pytest.param(async_storage_from_url, id="async"),
]
#: Loopback ports where nothing listens.
CLUSTER = "redis+cluster://127.0.0.1:1,127.0.0.1:2"
REDIS = "redis://127.0.0.1:1/0"
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _call(method: Callable[..., Any], *args: object) -> object:
    """Call a storage's method, and run what it returns if that is a coroutine."""
    outcome = method(*args)
    return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome


def _close(storage: object) -> None:
    _call(storage.close)  # type: ignore[attr-defined]


# --- what the URLs build ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        pytest.param(storage_from_url, RedisClusterStorage, id="sync"),
        pytest.param(async_storage_from_url, AsyncRedisClusterStorage, id="async"),
    ],
)
@pytest.mark.parametrize(
    "url",
    [
        CLUSTER,
        CLUSTER + "/",
        CLUSTER + "/?prefix=p",
        "REDIS+CLUSTER://127.0.0.1:1",
        "rediss+cluster://127.0.0.1:1?ssl_cert_reqs=none",
        "redis+cluster://[::1]:1,cache.example.invalid:2,127.0.0.1",
    ],
)
def test_cluster_urls_build_cluster_storages_that_connect_on_first_use(
    url: str, factory: Callable[[str], Any], expected: type
) -> None:
    """Each URL builds its cluster storage at once; its first call finds no node: StorageError."""
    storage = factory(url)
    try:
        assert expected is type(storage)
        with pytest.raises(StorageError) as caught:
            _call(getattr(storage, "load"), "someone")  # noqa: B009 - sync or async
        assert "the database cannot be reached" == caught.value.details["reason"]
    finally:
        _close(storage)


def test_cluster_url_options_reach_the_cluster_client() -> None:
    """Every host is a startup node; user, password, TLS and redis-py options reach the client."""
    url = (
        "rediss+cluster://app:p%40ss@127.0.0.1:1,[::1]:2,127.0.0.1"
        "?prefix=tenant&socket_timeout=2.5&ssl_cert_reqs=none&replicas=1&replica_timeout=0.5"
    )
    storage = async_storage_from_url(url)
    assert isinstance(storage, AsyncRedisClusterStorage)
    client = storage.client
    assert isinstance(client, redis.asyncio.cluster.RedisCluster)
    nodes = {(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()}
    settings = client.connection_kwargs
    assert (
        {("127.0.0.1", 1), ("::1", 2), ("127.0.0.1", 6379)},
        "app",
        "p@ss",
        2.5,
        "none",
        True,
        ("tenant", 1, timedelta(seconds=0.5)),
        [],
    ) == (
        nodes,
        settings["username"],
        settings["password"],
        settings["socket_timeout"],
        settings["ssl_cert_reqs"],
        issubclass(settings["connection_class"], redis.asyncio.SSLConnection),
        (storage.prefix, storage.replicas, storage.replica_timeout),
        [name for name in ("prefix", "replicas", "replica_timeout") if name in settings],
    )
    _close(storage)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", (0, timedelta(seconds=1)), id="default"),
        pytest.param("?replicas=0", (0, timedelta(seconds=1)), id="zero"),
        pytest.param("?replicas=1", (1, timedelta(seconds=1)), id="one-default-timeout"),
        pytest.param("?replicas=2&replica_timeout=0.25", (2, timedelta(seconds=0.25)), id="two"),
        pytest.param("?replicas=1&replica_timeout=60", (1, timedelta(seconds=60)), id="longest"),
        pytest.param(
            "?replicas=1&replica_timeout=0.5&socket_timeout=0.75",
            (1, timedelta(seconds=0.5)),
            id="socket-timeout-longer",
        ),
    ],
)
@pytest.mark.parametrize("base", [REDIS, CLUSTER], ids=["redis", "cluster"])
def test_replicas_options_set_the_durable_acknowledgements(
    query: str, expected: tuple[int, timedelta], base: str
) -> None:
    """``replicas`` and ``replica_timeout`` (seconds) are the storage's, on both schemes."""
    storage = storage_from_url(base + query)
    assert isinstance(storage, RedisStorage)
    assert expected == (storage.replicas, storage.replica_timeout)
    storage.close()


def test_a_redis_storage_refuses_a_cluster_client_and_a_cluster_storage_a_plain_one() -> None:
    """Each storage takes its own kind of client, and says which one is wanted."""
    plain = redis.Redis(host="127.0.0.1", port=1)
    with pytest.raises(ConfigurationError):
        RedisClusterStorage(plain)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncRedisClusterStorage(plain)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RedisClusterStorage("redis://127.0.0.1:1/0")
    cluster = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=1)
    with pytest.raises(ConfigurationError) as caught:
        AsyncRedisStorage(cluster)  # type: ignore[arg-type]
    assert "cluster storage" in caught.value.details["reason"]
    plain.close()


@pytest.mark.parametrize(
    "settings",
    [
        {"replicas": -1},
        {"replicas": True},
        {"replicas": 1.0},
        {"replicas": 1, "replica_timeout": timedelta(0)},
        {"replicas": 1, "replica_timeout": timedelta(seconds=61)},
        {"replicas": 1, "replica_timeout": 0.5},
    ],
    ids=repr,
)
def test_the_constructors_refuse_bad_durability_settings(settings: dict[str, object]) -> None:
    """``replicas`` is a whole number of 0 or more; ``replica_timeout`` a timedelta up to 60 s."""
    for build in (RedisStorage, RedisClusterStorage):
        with pytest.raises(ConfigurationError):
            build(REDIS if build is RedisStorage else CLUSTER, **settings)  # type: ignore[arg-type]


def test_a_cluster_storage_refuses_a_prefix_with_a_hash_tag() -> None:
    """Braces in the prefix would be the hash tag of every key: one slot for every subject."""
    for prefix in ("a{b}", "{", "}"):
        with pytest.raises(ConfigurationError):
            RedisClusterStorage(CLUSTER, prefix=prefix)
        with pytest.raises(ConfigurationError):
            AsyncRedisClusterStorage(CLUSTER, prefix=prefix)


# --- what the URLs refuse -----------------------------------------------------------------------

HOSTILE_CLUSTER = [
    pytest.param(f"{CLUSTER}/0", id="db-path"),
    pytest.param(f"{CLUSTER}/1", id="db-path-one"),
    pytest.param(f"{CLUSTER}?db=0", id="db-option"),
    pytest.param(f"{CLUSTER}/%30", id="db-path-escaped"),
    pytest.param("redis+cluster://", id="no-host"),
    pytest.param("redis+cluster://:7000", id="port-without-host"),
    pytest.param("redis+cluster://127.0.0.1:7000,", id="empty-last-host"),
    pytest.param("redis+cluster://,127.0.0.1:7000", id="empty-first-host"),
    pytest.param("redis+cluster://127.0.0.1:7000,,127.0.0.1:7001", id="empty-middle-host"),
    pytest.param("redis+cluster://127.0.0.1:+7000", id="port-sign"),
    pytest.param("redis+cluster://127.0.0.1:7000,127.0.0.1:\u0667\u0660", id="port-arabic"),
    pytest.param("redis+cluster://127.0.0.1:65536", id="port-too-big"),
    pytest.param("redis+cluster://127.0.0.1:0", id="port-zero"),
    pytest.param("redis+cluster://127.0.0.1:%37000", id="port-escaped"),
    pytest.param("redis+cluster://127.0.0.1:7000x", id="port-suffix"),
    pytest.param("redis+cluster://127.0.0.1:7000:1", id="port-two-colons"),
    pytest.param("redis+cluster://127.0.0.1:7000,127.1:7001", id="host-short-ipv4"),
    pytest.param("redis+cluster://0x7f000001:7000", id="host-hex-ipv4"),
    pytest.param("redis+cluster://127.000.000.001:7000", id="host-leading-zeros"),
    pytest.param("redis+cluster://127\u30020\u30020\u30021:7000", id="host-ideographic-dots"),
    pytest.param("redis+cluster://\uff11\uff12\uff17.0.0.1:7000", id="host-fullwidth"),
    pytest.param("redis+cluster://[v1.x]:7000", id="host-ipvfuture"),
    pytest.param("redis+cluster://a[::1]:7000", id="host-before-bracket"),
    pytest.param("redis+cluster://[::1]x:7000", id="host-after-bracket"),
    pytest.param("redis+cluster://127.0.0.1%00:7000", id="host-escaped-nul"),
    pytest.param("redis+cluster://user@evil.example@127.0.0.1:7000", id="two-at-signs"),
    pytest.param("redis+cluster://:pa%0Ass@127.0.0.1:7000", id="escaped-newline-password"),
    pytest.param("redis+cluster://:p%FF@127.0.0.1:7000", id="password-not-utf8"),
    pytest.param(f"{CLUSTER}?prefix=a%00b", id="escaped-nul-prefix"),
    pytest.param(f"{CLUSTER}?client_name=a%0D%0Ab", id="escaped-crlf-option"),
    pytest.param(f"{CLUSTER}\r\n", id="crlf"),
    pytest.param("redis+cluster://127.0.0.1:7000,127.0.\t0.1:7001", id="tab-in-host"),
    pytest.param(f"{CLUSTER}#x", id="fragment"),
    pytest.param(f"{CLUSTER}?prefix=a&prefix=b", id="prefix-twice"),
    pytest.param(f"{CLUSTER}?socket_timeout=1&socket_timeout=2", id="option-twice"),
    pytest.param(f"{CLUSTER}?socket_timeout", id="option-without-value"),
    pytest.param(f"{CLUSTER}?prefix=", id="empty-prefix"),
    pytest.param(f"{CLUSTER}?host=evil.example", id="host-option"),
    pytest.param(f"{CLUSTER}?port=6379", id="port-option"),
    pytest.param("redis+cluster://app@127.0.0.1:7000?username=root", id="username-twice"),
    pytest.param("redis+cluster://:pw@127.0.0.1:7000?password=other", id="password-twice"),
    pytest.param(f"{CLUSTER}?expiry_grace=-1", id="grace-negative"),
    pytest.param(f"{CLUSTER}?prefix=a%7Bb%7D", id="prefix-with-a-hash-tag"),
    pytest.param("rediss+cluster://127.0.0.1:7000/0", id="rediss-db-path"),
    pytest.param("rediss+cluster://127.1:7000", id="rediss-host-short-ipv4"),
]


def _replicas_cases(base: str, name: str) -> list[Any]:
    return [
        pytest.param(f"{base}?replicas=-1", id=f"{name}-replicas-negative"),
        pytest.param(f"{base}?replicas=%2B1", id=f"{name}-replicas-sign"),
        pytest.param(f"{base}?replicas=1.5", id=f"{name}-replicas-fraction"),
        pytest.param(f"{base}?replicas=\u0661", id=f"{name}-replicas-arabic-indic"),
        pytest.param(f"{base}?replicas=\u00b9", id=f"{name}-replicas-superscript"),
        pytest.param(f"{base}?replicas=1_0", id=f"{name}-replicas-underscore"),
        pytest.param(f"{base}?replicas=+1", id=f"{name}-replicas-space"),
        pytest.param(f"{base}?replicas=1000", id=f"{name}-replicas-too-many"),
        pytest.param(f"{base}?replicas=", id=f"{name}-replicas-blank"),
        pytest.param(f"{base}?replicas=1&replicas=2", id=f"{name}-replicas-twice"),
        pytest.param(f"{base}?replica_timeout=1", id=f"{name}-timeout-without-replicas"),
        pytest.param(f"{base}?replicas=0&replica_timeout=1", id=f"{name}-timeout-zero-replicas"),
        pytest.param(f"{base}?replicas=1&replica_timeout=0", id=f"{name}-timeout-zero"),
        pytest.param(f"{base}?replicas=1&replica_timeout=-1", id=f"{name}-timeout-negative"),
        pytest.param(f"{base}?replicas=1&replica_timeout=nan", id=f"{name}-timeout-nan"),
        pytest.param(f"{base}?replicas=1&replica_timeout=inf", id=f"{name}-timeout-infinite"),
        pytest.param(f"{base}?replicas=1&replica_timeout=60.5", id=f"{name}-timeout-too-long"),
        pytest.param(f"{base}?replicas=1&replica_timeout=1s", id=f"{name}-timeout-unit"),
        pytest.param(f"{base}?replicas=1&replica_timeout=", id=f"{name}-timeout-blank"),
    ]


HOSTILE = HOSTILE_CLUSTER + _replicas_cases(CLUSTER, "cluster") + _replicas_cases(REDIS, "redis")

#: Where the Redis backends live, and the classes the URL factories build.
BACKENDS = {
    "telecard_auth._storage.redis": ("RedisStorage", "AsyncRedisStorage"),
    "telecard_auth._storage.redis_cluster": ("RedisClusterStorage", "AsyncRedisClusterStorage"),
}


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Redis backend the factories try to build, by class name; none is really built."""
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
def test_hostile_redis_urls_are_refused_before_any_backend_is_built(
    url: str, factory: Callable[[str], object], built: list[str]
) -> None:
    """Hostile cluster URLs and bad durability options are refused; nothing is built."""
    with pytest.raises(InvalidStorageUrl) as caught:
        factory(url)
    assert ("invalid_storage_url", []) == (caught.value.code, built)


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"{CLUSTER}?bogus=1", id="cluster-unknown-option"),
        pytest.param(f"{CLUSTER}?read_from_replicas=true", id="cluster-read-from-replicas"),
        pytest.param(f"{CLUSTER}?protocol=9", id="cluster-protocol-out-of-range"),
        pytest.param("rediss+cluster://127.0.0.1:1?ssl_cert_reqs=bogus", id="cluster-cert-reqs"),
        pytest.param(
            f"{CLUSTER}?replicas=1&replica_timeout=2&socket_timeout=1", id="cluster-socket-short"
        ),
        pytest.param(
            f"{REDIS}?replicas=1&replica_timeout=1&socket_timeout=1", id="redis-socket-short"
        ),
    ],
)
def test_settings_the_client_would_refuse_are_refused_when_built(
    url: str, factory: Callable[[str], object]
) -> None:
    """Options redis-py refuses, or a socket_timeout that cuts WAIT short, are refused at once."""
    with pytest.raises(InvalidStorageUrl) as caught:
        factory(url)
    assert "invalid_storage_url" == caught.value.code


SECRET = "Zq7secret"

ECHO_BAITS = [
    pytest.param(f"redis+cluster://:{SECRET}@127.0.0.1:7000/7", id="db-with-password"),
    pytest.param(f"redis+cluster://127.0.0.1:{SECRET}", id="port"),
    pytest.param(f"redis+cluster://127.0.0.1:7000,{SECRET}.0x7f.1:7001", id="host"),
    pytest.param(f"{CLUSTER}?prefix={SECRET}%0D%0Aforged", id="forged-line"),
    pytest.param(f"{CLUSTER}?replicas={SECRET}", id="replicas"),
    pytest.param(f"{CLUSTER}?replicas=1&replica_timeout={SECRET}", id="replica-timeout"),
    pytest.param(f"redis+cluster://:{SECRET}@127.0.0.1:1?protocol=x", id="protocol-password"),
    pytest.param(f"redis+cluster://:{SECRET}@127.0.0.1:1?{SECRET}=1", id="option-name"),
]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("url", ECHO_BAITS)
def test_refusals_of_cluster_urls_never_repeat_them(
    url: str, factory: Callable[[str], object]
) -> None:
    """The reason says what is wrong; no piece of the URL and no control character is in it."""
    with pytest.raises(InvalidStorageUrl) as caught:
        factory(url)
    error = caught.value
    shown = " ".join((str(error), repr(error), error.message("ar")))
    assert (False, False, False) == (
        SECRET in shown,
        "forged" in shown,
        CONTROL.search(shown) is not None,
    )


_JUNK = st.text(alphabet="7a:@,/?#=&%[].+0\x00\t \u0661\uff11", max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["redis+cluster", "rediss+cluster", "REDIS+Cluster"]),
    hosts=st.lists(st.tuples(_JUNK, _JUNK), min_size=1, max_size=3),
    query=_JUNK,
)
def test_any_cluster_url_is_refused_or_built_without_connecting(
    scheme: str, hosts: list[tuple[str, str]], query: str
) -> None:
    """Any junk in a cluster URL is refused, or built as a storage that connects nowhere yet."""
    url = f"{scheme}://" + ",".join(f"127.0.0.1{a}:{b}" for a, b in hosts) + f"?{query}"
    for factory in (storage_from_url, async_storage_from_url):
        try:
            storage = factory(url)
        except InvalidStorageUrl:
            continue
        assert isinstance(storage, RedisClusterStorage | AsyncRedisClusterStorage)
        _close(storage)


# --- a cluster that cannot be reached -----------------------------------------------------------

ROLE, PASSWORD = "telecard_role", "pw-never-shown"


@pytest.mark.parametrize("factory", FACTORIES)
def test_an_unreachable_cluster_keeps_server_data_in_detail_only(
    factory: Callable[[str], Any],
) -> None:
    """Every call: StorageError with fixed words; the nodes on ``detail``; no password anywhere."""
    url = f"redis+cluster://{ROLE}:{PASSWORD}@127.0.0.1:1,127.0.0.1:2?prefix=p&replicas=1"
    storage = factory(url)
    change = Commit(
        subject_ref="someone",
        expected_version=0,
        incarnation="inc-1",
        codes=(),
        failure_logs=(),
        written_at=START,
        keep_until=START + timedelta(days=1),
    )
    calls: list[tuple[str, tuple[object, ...]]] = [
        ("migrate", ()),
        ("load", ("someone",)),
        ("commit", (change,)),
        ("purge", (START, 10)),
        ("purge_snapshots", (START, 10)),
        ("scan_subjects", (None, 10)),
    ]
    failures = []
    for name, args in calls:
        with pytest.raises(StorageError) as caught:
            _call(getattr(storage, name), *args)
        failures.append(caught.value)
    _close(storage)
    for error in failures:
        shown = (
            error.message_en,
            error.message_ar,
            str(error),
            repr(error),
            *map(str, error.args),
            repr(dict(error.details)),
        )
        hidden = ("127.0.0.1", ":1", ROLE, PASSWORD)
        assert [] == [piece for text in shown for piece in hidden if piece in text]
        assert error.detail is not None
        assert "127.0.0.1" in error.detail
        assert PASSWORD not in error.detail
