"""Redis Cluster storage (extra ``redis``): the layout, scripts and documents of ``RedisStorage``,
on a cluster, through redis-py's cluster clients.

URLs: ``redis+cluster://[user:password@]host:port[,host:port…][/][?options]``, and
``rediss+cluster://…`` for TLS. The hosts are startup nodes: the client asks them for the slot
map, and then talks to every primary itself. The options are those of ``redis://`` (``prefix``,
``expiry_grace``, ``replicas``, ``replica_timeout``, and redis-py's own connection options such as
``socket_timeout``); a cluster has only database 0, so a URL names none.

Slots: a subject's key ``<prefix>:{<subject_ref>}`` hashes on its hash tag, so each subject, and
each script call, is on one slot. ``load`` (with ``replicas`` 0) and the purge script go through
the cluster client, which follows ``MOVED`` and ``ASK`` and retries after connection errors:
repeating them is harmless.

A commit goes to the primary that owns its slot, on a connection of that node's own, outside the
cluster client's retries (which would re-send it after a connection error). What it does with
each answer:

- ``MOVED`` (the slot has another owner, after a failover or a resharding) and ``ASK`` (the slot
  is moving): the node refused to run the script, so nothing ran; the commit is sent to the node
  named (after ``ASKING``, for ``ASK``), at most a few times. ``CLUSTERDOWN`` and ``TRYAGAIN``
  also mean nothing ran: ``StorageError``.
- A connection that fails before the script is sent (the node is down): nothing ran,
  ``StorageError``, and the client refreshes its slot map, so the next call finds the new primary.
- A connection that fails after: ``StorageOutcomeUnknown``, never a re-send.

Why never a re-send: the script is compare-and-set on (incarnation, version). A commit that landed
and is sent again finds its own write, is refused as a conflict, and the issuer reads again: a
redemption with a request id then finds itself and answers as the first would have (safe), but
one without a request id finds its code used and answers ``CodeAlreadyUsed`` for the redemption
that landed, and an issue issues a second code. Nor is the token always safe: a re-sent commit
lands a second time if it creates the subject (version 0) and the subject was purged or expired
in between, bringing back an old state under an incarnation already used, which the token's rule
(incarnations never repeat) forbids. So the library reports the outcome as unknown and lets the
caller retry with the same request id, which is safe both ways.

``replicas``: the ``WAIT`` runs on the connection that ran the commit, so on the primary that owns
the slot, and counts that primary's replicas. A shard whose primary failed has, once its replica
is promoted, no replica until another joins it: with ``replicas=1`` its commits are then
``StorageOutcomeUnknown`` after ``replica_timeout``, every time, until one does (restart the
failed node; it rejoins as a replica of the new primary).

Walks: ``purge`` and ``scan_subjects`` walk every primary with its own ``SCAN``, shard after shard
in slot order. A ``scan_subjects`` cursor names the slot layout (a digest of which slots each shard
holds), the shard (its first slot), its primary (a digest of its address) and that node's
``SCAN`` position. A failover changes the primary, not the shard: the walk goes on with the new
primary from its first key, so keys of that shard may come again. A resharding changes the
layout: the walk starts again from the first shard, and every key may come again. Either way
every subject stored for the whole walk is listed at least once, which is all ``move_subjects``
and ``purge`` need (a repeated key is skipped or found not due).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any, cast
from urllib.parse import unquote, urlsplit

try:
    import redis
    import redis.asyncio.cluster
    import redis.cluster
    from redis.exceptions import AskError, ClusterDownError, MovedError, RedisClusterException
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    from telecard_auth._core.errors import MissingExtra

    raise MissingExtra(feature="RedisClusterStorage", extra="redis") from error

from telecard_auth._core.errors import ConfigurationError, StorageError, StorageOutcomeUnknown
from telecard_auth._core.text import clip, driver_reason, passwords_in
from telecard_auth._storage.redis import (
    COMMIT,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_REPLICA_TIMEOUT,
    LOAD,
    PURGE,
    AsyncRedisStorage,
    Key,
    R,
    RedisStorage,
    Steps,
    Target,
    checkout_of,
)

__all__ = ["AsyncRedisClusterStorage", "RedisClusterStorage"]

#: The slots of a Redis Cluster.
SLOTS = 16384
#: How many ``MOVED`` or ``ASK`` redirections one commit follows before it gives up.
REDIRECTIONS = 5
_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_DEFAULT_PORT = 6379
#: A ``scan_subjects`` cursor: layout digest, first slot of the shard, primary's digest, position.
_CURSOR = re.compile(r"([0-9a-f]{8})\.([0-9]{1,5})\.([0-9a-f]{8})\.([0-9]{1,20})", re.ASCII)
_NODE_FAILURES = (redis.ConnectionError, redis.TimeoutError, ClusterDownError)
Node = Any
Shards = list[tuple[int, Node]]


def _digest(text: str) -> str:
    return hashlib.blake2s(text.encode("utf-8"), digest_size=4).hexdigest()


def _shards(slots: dict[int, list[Node]]) -> tuple[str, Shards]:
    """The cluster's shards in slot order, each as (its first slot, its primary), and a digest of
    which slots each shard holds (not which node serves them: a failover keeps the digest)."""
    runs: dict[str, list[list[int]]] = {}
    primaries: dict[str, Node] = {}
    last: str | None = None
    for slot in range(SLOTS):
        nodes = slots.get(slot)
        name = nodes[0].name if nodes else None
        if name is not None:
            primaries.setdefault(name, nodes[0])  # type: ignore[index]
            held = runs.setdefault(name, [])
            if name == last:
                held[-1][1] = slot
            else:
                held.append([slot, slot])
        last = name
    ordered = sorted(runs.items(), key=lambda item: item[1][0][0])
    layout = _digest(repr([held for _, held in ordered]))
    return layout, [(held[0][0], primaries[name]) for name, held in ordered]


def _resume(cursor: str | None, layout: str, shards: Shards) -> tuple[int, int]:
    """The shard (its index in ``shards``) and ``SCAN`` position that ``cursor`` stands for."""
    if cursor is None:
        return 0, 0
    found = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if found is None:
        raise StorageError(reason="the scan cursor is not one this storage returned")
    digest, first, node, position = found.groups()
    if digest == layout:
        for index, (start, primary) in enumerate(shards):
            if start == int(first):
                # Another primary (a failover): its own SCAN, from its first key.
                return index, int(position) if _digest(primary.name) == node else 0
    return 0, 0  # the slots moved between shards: the walk starts again


def _startup(url: str) -> tuple[str, list[tuple[str, int]]]:
    """The URL redis-py reads (``redis://`` or ``rediss://``, the first node and the options) and
    every node named, as (host, port)."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        known = " or ".join(f"{name}://" for name in _SCHEMES)
        raise ConfigurationError(reason=f"a Redis Cluster URL starts with {known}")
    if parts.path not in ("", "/"):
        raise ConfigurationError(reason="a Redis Cluster has only database 0: name none")
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    items = hostinfo.split(",")
    nodes = [_node(item) for item in items]
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{userinfo}{at}{items[0]}/{query}", nodes


def _node(item: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` as (host, port)."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host or (port and not (port.isascii() and port.isdigit())):
        raise ConfigurationError(reason="each Redis Cluster node needs a host and a port")
    return unquote(host), int(port) if port else _DEFAULT_PORT


def _connection_settings(url: str) -> dict[str, Any]:
    """redis-py's reading of the URL's connection options, checked by building (not opening) a
    connection with them, as ``RedisStorage`` checks its URL."""
    try:
        parse: Any = redis.connection.parse_url
        settings: dict[str, Any] = parse(url)
        options = dict(settings)
        connection_class = options.pop("connection_class", redis.Connection)
        if options.pop("db", 0):
            raise ConfigurationError(reason="a Redis Cluster has only database 0: name none")
        connection_class(**options)
    except (ValueError, TypeError, redis.RedisError) as error:
        why = driver_reason(error, passwords_in(url)) or "redis-py refuses its settings"
        raise ConfigurationError(reason=f"the Redis Cluster URL is not valid: {why}") from None
    return settings


class _ClusterHooks:
    """What a cluster storage does differently: the hooks of ``_RedisLayout``, for a cluster.

    ``_on_key`` finds the primary of a key's slot and follows redirections; ``_scan_once`` walks
    the primaries shard by shard; ``_ready_steps`` has the client learn the slot map first. The
    twins say how to reach a node (``_node_target``, ``_node_call``) and how to refresh the map.
    """

    _driver_errors: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException)
    prefix: str
    replicas: int
    _pattern: str
    _server: str
    _secrets: tuple[str, ...]
    _settings: dict[str, Any]

    # --- what the twins provide ---------------------------------------------------------------

    @property
    def _cluster(self) -> Any:
        raise NotImplementedError

    def _ready(self) -> Any:
        """Learn the slot map, if the client has not yet (a step)."""
        raise NotImplementedError

    def _refresh(self) -> Any:
        """Ask the cluster for its slot map again, after a node failed (a step that never fails)."""
        raise NotImplementedError

    def _node_target(self, node: Node, *, asking: bool) -> Target:
        """A ``Target`` for a script call on ``node``."""
        raise NotImplementedError

    def _node_call(self, node: Node, *args: Any) -> Any:
        """One command on ``node`` (a step)."""
        raise NotImplementedError

    # --- settings ------------------------------------------------------------------------------

    def _describe_cluster(
        self, url: str | None, settings: dict[str, Any], nodes: Iterable[str]
    ) -> None:
        """Note the startup nodes for ``StorageError.detail``, and the passwords it must not
        repeat; refuse a prefix with braces, which would hash every subject to one slot."""
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError(reason="a Redis Cluster prefix cannot hold '{' or '}'")
        password = settings.get("password")
        found = passwords_in(url) if url is not None else ()
        self._secrets = (*found, password) if isinstance(password, str) else found
        user = f"{settings['username']}@" if settings.get("username") else ""
        self._server = f"Redis Cluster {clip(user + ','.join(nodes), 200)}"
        self._settings = settings

    def _socket_timeout(self) -> float | None:
        timeout = self._settings.get("socket_timeout")
        return float(timeout) if isinstance(timeout, int | float) else None

    # --- the hooks -----------------------------------------------------------------------------

    def _ready_steps(self) -> Steps[None]:
        yield self._ready

    def _on_key(self, key: str, run: Callable[[Target], Steps[R]]) -> Steps[R]:
        """Run ``run`` on the primary of ``key``'s slot; follow ``MOVED`` and ``ASK`` (nothing
        ran), refresh the slot map after a node failed."""
        asking: Node = None
        for _ in range(REDIRECTIONS):
            node = asking or self._cluster.get_node_from_key(key)
            try:
                return (yield from run(self._node_target(node, asking=asking is not None)))
            except MovedError:
                asking = None
                yield self._refresh
            except AskError as redirect:
                asking = self._cluster.get_node(host=redirect.host, port=redirect.port)
                if asking is None:
                    yield self._refresh
            except (*_NODE_FAILURES, StorageOutcomeUnknown) as error:
                if not isinstance(error, StorageOutcomeUnknown) or error.__cause__ is not None:
                    yield self._refresh
                raise
        raise StorageError(reason="the database cluster kept moving the subject's slot")

    def _scan_once(self, cursor: str | None, count: int) -> Steps[tuple[str | None, list[Key]]]:
        """One ``SCAN`` on the primary of the shard ``cursor`` is in: the next cursor (the next
        shard's start once this one is done; ``None`` after the last) and the keys."""
        layout, shards = _shards(self._cluster.nodes_manager.slots_cache)
        if not shards:
            return None, []
        index, position = _resume(cursor, layout, shards)
        node = shards[index][1]
        try:
            answer = yield partial(
                self._node_call, node, "SCAN", position, "MATCH", self._pattern, "COUNT", count
            )
        except _NODE_FAILURES:
            yield self._refresh
            raise
        found, keys = int(answer[0]), list(answer[1])
        if found == 0:
            index, found = index + 1, 0
            if index == len(shards):
                return None, keys
        start, primary = shards[index]
        return f"{layout}.{start}.{_digest(primary.name)}.{found}", keys

    def _migrate_steps(self) -> Steps[None]:
        """Load the scripts on every primary (a promoted replica loads them on first use)."""
        yield self._ready
        for node in self._cluster.get_primaries():
            for script in (COMMIT, PURGE, LOAD):
                yield partial(self._node_call, node, "SCRIPT", "LOAD", script.text)


class RedisClusterStorage(_ClusterHooks, RedisStorage):
    """Storage in a Redis Cluster. ``client`` is a ``redis.cluster.RedisCluster`` or a
    ``redis+cluster://`` / ``rediss+cluster://`` URL naming one or more startup nodes.

    Everything else is as for ``RedisStorage``. Built from a URL, the cluster client is made on
    first use (it asks the startup nodes for the slot map then), so building connects nowhere.
    """

    def __init__(
        self,
        client: redis.cluster.RedisCluster | str,
        *,
        prefix: str = "telecard",
        expiry_grace: timedelta = DEFAULT_EXPIRY_GRACE,
        replicas: int = 0,
        replica_timeout: timedelta = DEFAULT_REPLICA_TIMEOUT,
    ) -> None:
        super().__init__(
            cast(Any, client),
            prefix=prefix,
            expiry_grace=expiry_grace,
            replicas=replicas,
            replica_timeout=replica_timeout,
        )

    def _attach(self, client: Any) -> None:
        self._lock = threading.Lock()
        self._client: redis.cluster.RedisCluster | None = None
        if isinstance(client, str):
            first, nodes = _startup(client)
            settings = _connection_settings(first)
            node: Any = redis.cluster.ClusterNode
            others = [node(host, port) for host, port in nodes[1:]]
            self._build: Callable[[], redis.cluster.RedisCluster] = lambda: (
                redis.cluster.RedisCluster.from_url(first, startup_nodes=others)
            )
            self._describe_cluster(client, settings, (f"{h}:{p}" for h, p in nodes))
        elif isinstance(client, redis.cluster.RedisCluster):
            self._client = client
            settings = client.nodes_manager.connection_kwargs
            cluster: Any = client
            self._describe_cluster(None, settings, (n.name for n in cluster.get_nodes()))
        else:
            raise ConfigurationError(reason="RedisClusterStorage takes a RedisCluster or a URL")

    @property
    def client(self) -> redis.cluster.RedisCluster:  # type: ignore[override]
        """The cluster client; built from the URL on first use, when it learns the slot map."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
        return self._client

    @property
    def _cluster(self) -> Any:
        return self.client

    def _ready(self) -> None:
        self._cluster  # noqa: B018 - built on first use

    def _refresh(self) -> None:
        with contextlib.suppress(Exception):
            self.client.nodes_manager.initialize()

    def _node_target(self, node: Node, *, asking: bool) -> Target:
        pool = self.client.get_redis_connection(node).connection_pool
        return Target(pool, checkout_of(pool), asking)

    def _node_call(self, node: Node, *args: Any) -> Any:
        server: Any = self.client.get_redis_connection(node)
        return server.execute_command(*args)

    def close(self) -> None:
        """Close the client's connections (if it was ever built)."""
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> RedisClusterStorage:
        return self


class _NodePool:
    """An asyncio cluster node's connections, as a pool a commit checks one out of."""

    def __init__(self, node: Node) -> None:
        self._node = node

    async def get_connection(self) -> Any:
        connection = self._node.acquire_connection()
        try:
            await connection.connect()  # a node that is down fails here, before anything is sent
        except BaseException:
            self._node.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        self._node.release(connection)


class AsyncRedisClusterStorage(_ClusterHooks, AsyncRedisStorage):
    """``RedisClusterStorage`` for asyncio (``redis.asyncio.cluster.RedisCluster``)."""

    client: redis.asyncio.cluster.RedisCluster  # type: ignore[assignment]

    def __init__(
        self,
        client: redis.asyncio.cluster.RedisCluster | str,
        *,
        prefix: str = "telecard",
        expiry_grace: timedelta = DEFAULT_EXPIRY_GRACE,
        replicas: int = 0,
        replica_timeout: timedelta = DEFAULT_REPLICA_TIMEOUT,
    ) -> None:
        super().__init__(
            cast(Any, client),
            prefix=prefix,
            expiry_grace=expiry_grace,
            replicas=replicas,
            replica_timeout=replica_timeout,
        )

    def _attach(self, client: Any) -> None:
        if isinstance(client, str):
            first, nodes = _startup(client)
            settings = _connection_settings(first)
            others = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in nodes[1:]]
            self.client = redis.asyncio.cluster.RedisCluster.from_url(first, startup_nodes=others)
            self._describe_cluster(client, settings, (f"{h}:{p}" for h, p in nodes))
        elif isinstance(client, redis.asyncio.cluster.RedisCluster):
            self.client = client
            startup: Any = getattr(client.nodes_manager, "startup_nodes", {})
            named = startup.values() if isinstance(startup, dict) else startup
            self._describe_cluster(None, client.connection_kwargs, (n.name for n in named))
        else:
            raise ConfigurationError(
                reason="AsyncRedisClusterStorage takes a RedisCluster or a URL"
            )

    @property
    def _cluster(self) -> Any:
        return self.client

    def _ready(self) -> Any:
        return self._cluster.initialize()

    async def _refresh(self) -> None:
        with contextlib.suppress(Exception):
            await self._cluster.nodes_manager.initialize()

    def _node_target(self, node: Node, *, asking: bool) -> Target:
        return Target(_NodePool(node), (), asking)

    def _node_call(self, node: Node, *args: Any) -> Any:
        return node.execute_command(*args)

    async def __aenter__(self) -> AsyncRedisClusterStorage:
        return self
