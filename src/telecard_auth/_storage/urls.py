"""``storage_from_url`` and ``async_storage_from_url``: a backend from a URL.

One explicit scheme table serves both: each entry parses its URL once and builds the synchronous
or the asyncio flavour of its backend. A backend's module, and so its client library, is imported
only when its scheme is asked for.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit

from telecard_auth._core.errors import ConfigurationError, InvalidStorageUrl
from telecard_auth._core.text import clip, plain
from telecard_auth._storage.protocol import AsyncStorageBackend, StorageBackend

__all__ = ["async_storage_from_url", "storage_from_url"]

# A URL must name the place it reads as. Drivers part from what a reader sees in many small ways:
# libpq ends a string at NUL and then connects to the local default database; urlsplit deletes
# tabs and newlines; redis-py reads the database with int(), which takes signs, spaces, "_" and
# every script's digits; resolvers read 127.1 and 0x7f.1 as 127.0.0.1 and fold fullwidth text;
# urlsplit splits user@a@b at its last '@' and libpq at its first. So the parts are checked here,
# as each driver will read them, before any backend is built, and reasons never quote the URL.

#: C0 controls, DEL and C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: A '%' that starts no escape; libpq refuses it, quoting the URL.
_STRAY_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?", re.ASCII)
#: A last label that inet_aton reads as a number makes the whole host an IPv4 address.
_NUMBER = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_LAST_PORT = 65535
_REDIS_DB = re.compile(r"[0-9]{1,10}", re.ASCII)
#: Redis keeps at most INT_MAX databases (its ``databases`` setting), numbered from 0.
_LAST_REDIS_DB = 2**31 - 2


class _Option(NamedTuple):
    name: str
    value: str
    #: As the URL has it, handed on to the driver unchanged.
    written: str


class _Authority(NamedTuple):
    user: str | None
    password: str | None
    hosts: list[str]
    ports: list[str]


def _decoded(text: str, *, plus: bool = False) -> str:
    try:
        return (unquote_plus if plus else unquote)(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidStorageUrl(reason="a percent-encoded part of it is not UTF-8 text") from None


def _query(query: str, *, plus: bool) -> list[_Option]:
    """The options of a query, decoded as the driver decodes them: ``plus`` when '+' is a space."""
    options = []
    for written in query.split("&"):
        if not written:
            continue
        name, equals, value = written.partition("=")
        if not equals:
            raise InvalidStorageUrl(reason="an option has no '=' and no value")
        options.append(_Option(_decoded(name, plus=plus), _decoded(value, plus=plus), written))
    names = [option.name for option in options]
    if len(set(names)) < len(names):
        # Drivers disagree on which one counts: redis-py takes the first, libpq the last.
        raise InvalidStorageUrl(reason="an option is given more than once")
    return options


def _options(parts: SplitResult, allowed: set[str]) -> dict[str, str]:
    options = {option.name: option.value for option in _query(parts.query, plus=True)}
    unknown = set(options) - allowed
    if unknown:
        raise InvalidStorageUrl(reason=f"unknown option {clip(sorted(unknown)[0])!r}")
    return options


def _authority(netloc: str, *, sockets: bool = False) -> _Authority:
    """User, password, hosts and ports of ``user:password@host:port,host:port``, decoded and
    checked (``sockets``: see ``_check_host``)."""
    userinfo, at, hostinfo = netloc.rpartition("@")
    if "@" in userinfo:
        # urlsplit splits at the last '@' and libpq at the first: each would see another host.
        raise InvalidStorageUrl(reason="an '@' in its user or password must be written %40")
    user, colon, password = userinfo.partition(":")
    hosts, ports = [], []
    for item in hostinfo.split(","):
        if item.startswith("["):
            inside, closed, rest = item[1:].partition("]")
            host, port = _decoded(inside), rest.removeprefix(":")
            if not closed or not _is_ipv6(host) or rest[:1] not in ("", ":"):
                raise InvalidStorageUrl(
                    reason="its brackets must hold an IPv6 address, followed by a port or nothing"
                )
        else:
            written, _, port = item.partition(":")
            host = _decoded(written)
            if host:
                _check_host(host, sockets=sockets)
        _check_port(port)
        hosts.append(host)
        ports.append(port)
    return _Authority(
        user=_decoded(user) if at else None,
        password=_decoded(password) if colon else None,
        hosts=hosts,
        ports=ports,
    )


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _check_host(host: str, *, sockets: bool = False) -> None:
    """A host name, or an IPv4 address as a resolver reads it; with ``sockets``, a socket path."""
    if sockets and host.startswith(("/", "@")):
        # libpq: a directory holding the server's socket, or an abstract socket's name. It
        # splits hosts at ',' after decoding them, so an encoded one would hide a list.
        if "," in host:
            raise InvalidStorageUrl(reason="its socket path holds a ','")
        return
    if not host.isascii():
        # Resolvers fold what IDNA maps (fullwidth digits, ideographic dots) into other text.
        raise InvalidStorageUrl(reason="its host is not ASCII: write an international name as xn--")
    if not _HOST_NAME.fullmatch(host):
        raise InvalidStorageUrl(reason="its host is not a valid host name")
    if _NUMBER.fullmatch(host.removesuffix(".").rpartition(".")[2]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidStorageUrl(
                reason="its host reads as an IPv4 address: write four numbers 0-255, no leading 0"
            ) from None


def _check_host_option(host: str, *, sockets: bool = False) -> None:
    """A host given as a query option, where an IPv6 address stands without brackets."""
    if ":" not in host or not _is_ipv6(host):
        _check_host(host, sockets=sockets)


def _check_port(port: str) -> None:
    """Empty (the default), or ASCII digits naming a TCP port: not '+5432', '٥٤٣٢' or '%35'."""
    if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= _LAST_PORT):
        raise InvalidStorageUrl(reason="its port must be a number from 1 to 65535 in ASCII digits")


def _given_twice(options: Mapping[str, str], in_url: Mapping[str, object]) -> None:
    """Refuse a query option that names again what the URL itself names (host, port, …)."""
    for name, value in in_url.items():
        if value and name in options:
            raise InvalidStorageUrl(reason=f"its {name} is given twice, in the URL and as ?{name}=")


def _unsplit(parts: SplitResult, options: Sequence[_Option]) -> str:
    """The URL for the driver: as written, less our own options. SplitResult.geturl() would drop
    the '//' of a URL without a host (``postgresql:///db?host=/run/postgresql``)."""
    query = "&".join(option.written for option in options)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


@contextmanager
def _as_url_error() -> Iterator[None]:
    # A backend refusing its settings is, from here, a URL that is not valid.
    try:
        yield
    except InvalidStorageUrl:
        raise
    except ConfigurationError as error:
        raise InvalidStorageUrl(reason=error.details.get("reason", error.code)) from error


def _memory(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._storage.memory import AsyncMemoryStorage, MemoryStorage

    if parts.netloc or parts.path or parts.query:
        raise InvalidStorageUrl(reason="memory:// takes no host, path or options")
    return AsyncMemoryStorage() if asynchronous else MemoryStorage()


def _sqlite(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._storage.sqlite import AsyncSQLiteStorage, SQLiteStorage

    # As in SQLAlchemy: sqlite:///relative/file.db and sqlite:////absolute/file.db.
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:  # noqa: PLR2004
        raise InvalidStorageUrl(reason="use sqlite:///relative/path.db or sqlite:////absolute.db")
    path = parts.path[1:]
    # SQLite would not open the file named: each connection would get its own empty database,
    # or (built with SQLITE_USE_URI, as Debian's is) a URI could open any file or none.
    if path == ":memory:":
        raise InvalidStorageUrl(reason="':memory:' is one database per connection: use memory://")
    if path.startswith("file:"):
        raise InvalidStorageUrl(reason="SQLite reads a path that starts with 'file:' as a URI")
    options = _options(parts, {"synchronous"})
    synchronous = options.get("synchronous", "full")
    if synchronous not in ("full", "normal"):
        raise InvalidStorageUrl(reason="synchronous must be 'full' or 'normal'")
    backend = AsyncSQLiteStorage if asynchronous else SQLiteStorage
    with _as_url_error():
        return backend(path, synchronous=synchronous)  # type: ignore[arg-type]


def _redis(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._storage.redis import AsyncRedisStorage, RedisStorage

    # redis-py reads the query with parse_qs ('+' is a space) and its own options from it
    # (socket_timeout, ssl_ca_certs, …); ours are taken out.
    options = _query(parts.query, plus=True)
    given = {option.name: option.value for option in options}
    settings = _redis_settings(given)
    place = _authority(parts.netloc)
    if len(place.hosts) != 1:
        raise InvalidStorageUrl(reason="a Redis URL names one host; a cluster: redis+cluster://")
    names = {"host": place.hosts[0], "port": place.ports[0]}
    _given_twice(given, {**names, "username": place.user, "password": place.password})
    if given.get("host"):
        _check_host_option(given["host"])
    _check_port(given.get("port", ""))
    _check_redis_db(parts.path, given.get("db", ""))
    url = _unsplit(parts, [o for o in options if o.name not in _REDIS_OPTIONS])
    backend = AsyncRedisStorage if asynchronous else RedisStorage
    with _as_url_error():
        return backend(url, **settings)


#: The query options of Redis URLs that are the storage's, not redis-py's.
_REDIS_OPTIONS = ("prefix", "expiry_grace", "replicas", "replica_timeout")
_REPLICAS = re.compile(r"[0-9]{1,3}", re.ASCII)
#: The longest ``replica_timeout``, in seconds: ``WAIT`` holds a connection that long.
_LONGEST_REPLICA_TIMEOUT = 60


def _redis_settings(given: Mapping[str, str]) -> dict[str, Any]:
    """The storage's own options of a Redis URL, checked: prefix, expiry_grace and the
    durable acknowledgements (``replicas``, ``replica_timeout``)."""
    prefix = given.get("prefix", "telecard")
    if not prefix:
        raise InvalidStorageUrl(reason="prefix cannot be empty")
    settings: dict[str, Any] = {"prefix": prefix}
    if "expiry_grace" in given:
        settings["expiry_grace"] = _seconds(given["expiry_grace"], "expiry_grace")
    if "replicas" in given:
        if not _REPLICAS.fullmatch(given["replicas"]):
            raise InvalidStorageUrl(reason="replicas must be a number 0-999 in ASCII digits")
        settings["replicas"] = int(given["replicas"])
    if "replica_timeout" in given:
        if not settings.get("replicas"):
            raise InvalidStorageUrl(reason="replica_timeout needs replicas=1 or more")
        timeout = _seconds(given["replica_timeout"], "replica_timeout")
        if not timedelta(0) < timeout <= timedelta(seconds=_LONGEST_REPLICA_TIMEOUT):
            raise InvalidStorageUrl(reason="replica_timeout must be more than 0 and at most 60")
        settings["replica_timeout"] = timeout
    return settings


def _redis_cluster(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._storage.redis_cluster import AsyncRedisClusterStorage, RedisClusterStorage

    # Startup nodes, each checked as a redis:// host; the options are redis:// ones, less db.
    options = _query(parts.query, plus=True)
    given = {option.name: option.value for option in options}
    settings = _redis_settings(given)
    place = _authority(parts.netloc)
    if not all(place.hosts):
        raise InvalidStorageUrl(reason="each Redis Cluster node needs a host")
    named = {"username": place.user, "password": place.password}
    _given_twice(given, {"host": True, "port": True, **named})
    if _decoded(parts.path) not in ("", "/") or "db" in given:
        raise InvalidStorageUrl(reason="a Redis Cluster has only database 0: name none")
    if "{" in settings["prefix"] or "}" in settings["prefix"]:
        # A hash tag in the prefix would put every subject on the same slot.
        raise InvalidStorageUrl(reason="a Redis Cluster prefix cannot hold '{' or '}'")
    url = _unsplit(parts, [o for o in options if o.name not in _REDIS_OPTIONS])
    backend = AsyncRedisClusterStorage if asynchronous else RedisClusterStorage
    with _as_url_error():
        return backend(url, **settings)


def _check_redis_db(path: str, option: str) -> None:
    """The path and ``?db=`` are each empty or a database number in ASCII digits, not both.

    redis-py reads either with ``int()``, and quietly keeps database 0 when that fails.
    """
    number = _decoded(path).removeprefix("/")
    for text in (number, option):
        if text and not (_REDIS_DB.fullmatch(text) and int(text) <= _LAST_REDIS_DB):
            raise InvalidStorageUrl(
                reason="the Redis database must be a number from 0 to 2147483646 in ASCII digits"
            )
    if number and option:
        raise InvalidStorageUrl(reason="the Redis database is given twice, as path and as ?db=")


def _seconds(text: str, name: str) -> timedelta:
    """A URL option's number of seconds (0 or more, decimals allowed) as a duration."""
    try:
        seconds = float(text)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(text)
        return timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        raise InvalidStorageUrl(reason=f"{name} must be a number of seconds, 0 or more") from None


def _postgres(parts: SplitResult, asynchronous: bool) -> Any:
    from telecard_auth._storage.postgres import AsyncPostgresStorage, PostgresStorage

    # libpq decodes the query itself ('+' stays '+'): its options go on as written.
    options = _query(parts.query, plus=False)
    given = {option.name: option.value for option in options}
    schema = given.get("schema", "public")
    place = _authority(parts.netloc, sockets=True)
    named = {
        "host": ",".join(place.hosts),
        "port": ",".join(place.ports),
        "user": place.user or "",
        "password": place.password or "",
        "dbname": _decoded(parts.path.removeprefix("/")),
    }
    _given_twice(given, {**named, "host": any(place.hosts), "port": any(place.ports)})
    named |= {name: given[name] for name in named if name in given}
    _check_libpq_options(given, named["host"].split(","), named["port"].split(","))
    conninfo = _unsplit(parts, [option for option in options if option.name != "schema"])
    _check_libpq_reads(conninfo, named)
    backend = AsyncPostgresStorage if asynchronous else PostgresStorage
    with _as_url_error():
        return backend(conninfo, schema=schema)


def _check_libpq_options(given: dict[str, str], hosts: list[str], ports: list[str]) -> None:
    """libpq's comma-separated host, port and hostaddr options, the hosts it will try, and
    which of them it may settle on (``target_session_attrs``)."""
    if len(hosts) > 1 and not all(hosts):
        # libpq reads an empty host in a list as the local socket.
        raise InvalidStorageUrl(reason="its list of hosts holds an empty one")
    for host in filter(None, given.get("host", "").split(",")):
        _check_host_option(host, sockets=True)
    for port in given.get("port", "").split(","):
        _check_port(port)
    # libpq gives one port to every host, or one to each; it would find out only when connecting.
    if len(ports) not in (1, len(hosts)):
        raise InvalidStorageUrl(reason="it names more or fewer ports than hosts")
    addresses = given["hostaddr"].split(",") if "hostaddr" in given else []
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidStorageUrl(reason="its hostaddr must be IP addresses") from None
    if addresses and any(hosts) and len(addresses) != len(hosts):
        raise InvalidStorageUrl(reason="it names more or fewer hostaddr values than hosts")
    if given.get("target_session_attrs", "any") not in ("any", "read-write", "primary"):
        # read-only, standby, prefer-standby: libpq would settle on a standby; commits would fail.
        raise InvalidStorageUrl(reason="target_session_attrs must be read-write, primary or any")


def _check_libpq_reads(conninfo: str, named: dict[str, str]) -> None:
    """Refuse a URL that libpq would read as another place than the one checked here, and
    what it refuses in words that quote the URL."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    if " " in conninfo:
        raise InvalidStorageUrl(reason="a space must be written %20")
    if _STRAY_PERCENT.search(conninfo):
        raise InvalidStorageUrl(reason="a '%' that starts no percent-escape must be written %25")
    try:
        read = conninfo_to_dict(conninfo)
    except (psycopg.Error, UnicodeError):
        return  # the backend refuses it, in libpq's words
    for name, value in named.items():
        if str(read.get(name) or "") != value:
            raise InvalidStorageUrl(reason=f"libpq would read its {name} differently")


#: Scheme to factory. A factory imports its backend, and so its client library, when called.
SCHEMES: dict[str, Callable[[SplitResult, bool], Any]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "rediss": _redis,
    "redis+cluster": _redis_cluster,
    "rediss+cluster": _redis_cluster,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def storage_from_url(url: str) -> StorageBackend:
    """Build the storage a URL names. Call ``migrate()`` once before first use (the SQL backends
    create their schema); ``close()``, or a ``with`` block, releases its connections.

    ==================================  ======================================================
    ``memory://``                       ``MemoryStorage``
    ``sqlite:///codes.db``              ``SQLiteStorage`` (relative path; ``////`` absolute),
                                        option ``?synchronous=normal``
    ``redis://host:6379/0``             ``RedisStorage``; ``rediss://`` for TLS; ``?prefix=``,
                                        ``?expiry_grace=`` (seconds), ``?replicas=`` and
                                        ``?replica_timeout=`` (seconds) to ``WAIT`` for replicas
    ``redis+cluster://h1:p1,h2:p2``     ``RedisClusterStorage`` (Redis Cluster, startup nodes);
                                        ``rediss+cluster://`` for TLS; the same options
    ``postgresql://user@host/db``       ``PostgresStorage``; option ``?schema=``; a host list
                                        ``h1:p1,h2:p2`` with ``?target_session_attrs=read-write``
                                        for a primary and its standbys
    ==================================  ======================================================

    A URL is refused, before anything connects, unless it reads as the place its driver will
    use: no control characters, written or percent-encoded; hosts as names, dotted-quad IPv4 or
    bracketed IPv6; ports and Redis database numbers in ASCII digits; each option given once.

    >>> storage_from_url("memory://")
    MemoryStorage(subjects=0)
    """
    storage: StorageBackend = _build(url, asynchronous=False)
    return storage


def async_storage_from_url(url: str) -> AsyncStorageBackend:
    """The asyncio flavour of the storage a URL names, for ``AsyncCodeIssuer``.

    The same URLs as ``storage_from_url``, giving ``AsyncMemoryStorage``, ``AsyncSQLiteStorage``
    (calls on its own worker thread), ``AsyncRedisStorage`` (``redis.asyncio``),
    ``AsyncRedisClusterStorage`` (``redis.asyncio.cluster``) and ``AsyncPostgresStorage``
    (psycopg's async pool). Their ``migrate()`` and ``close()`` are awaited, and ``async with``
    closes.

    >>> async_storage_from_url("memory://")
    AsyncMemoryStorage(subjects=0)
    """
    storage: AsyncStorageBackend = _build(url, asynchronous=True)
    return storage


def _build(url: object, *, asynchronous: bool) -> Any:
    if not isinstance(url, str):
        raise InvalidStorageUrl(reason="a storage URL is a string")
    url = plain(url)
    try:
        # Drivers encode what they are given: refuse what no encoding can carry (lone surrogates).
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidStorageUrl(reason="it holds characters that are not valid text") from None
    _check_visible(url)
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise InvalidStorageUrl(reason="it cannot be parsed") from error
    factory = SCHEMES.get(parts.scheme.lower())
    if factory is None:
        known = ", ".join(sorted(SCHEMES))
        raise InvalidStorageUrl(reason=f"unknown scheme {clip(parts.scheme)!r}; use one of {known}")
    return factory(parts, asynchronous)


def _check_visible(url: str) -> None:
    """Refuse characters that a reader does not see and a parser drops, cuts at, or acts on."""
    # libpq ends a string at NUL; urlsplit deletes tabs and newlines and strips leading controls.
    if _CONTROL.search(url):
        raise InvalidStorageUrl(reason="it holds a control character")
    # Every driver percent-decodes what it uses (SQLite paths are the exception, refused alike).
    if _CONTROL.search(unquote(url, errors="surrogateescape")):
        raise InvalidStorageUrl(reason="it holds a percent-encoded control character")
    if "#" in url:
        # urlsplit ends the URL at '#', libpq reads on into the database name.
        raise InvalidStorageUrl(reason="a '#' must be written %23: no backend reads a fragment")
