"""Real Redis servers on loopback ports, started and stopped by the tests: a cluster of three
primaries and three replicas, and one primary with one replica (no cluster).

Each server is a ``redis-server`` subprocess of this test run, bound to 127.0.0.1, with no
persistence, in a temporary directory; it is stopped by its process id. Waiting is polling for a
state (``cluster_state:ok``, a replica in sync) with a deadline, never a sleep for its own sake.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: How long the cluster takes to see a node as failed (``cluster-node-timeout``), in ms.
NODE_TIMEOUT_MS = 1000
#: The longest any wait for a server state lasts.
DEADLINE = 60.0
_POLL = 0.05


def binaries() -> tuple[str, str] | None:
    """``redis-server`` and ``redis-cli``, or ``None`` if either is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, cli) if server and cli else None


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports that are free, each with its cluster bus port (+10000) free too."""
    chosen: list[int] = []
    generator = random.Random()  # noqa: S311 - picking ports, not secrets
    while len(chosen) < count:
        port = generator.randrange(20000, 55000)
        if port in chosen or port + 10000 in chosen:
            continue
        if all(_free(candidate) for candidate in (port, port + 10000)):
            chosen.append(port)
    return chosen


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(what: str, check: Callable[[], bool], deadline: float = DEADLINE) -> float:
    """Poll ``check`` until it holds; how long that took. Fails after ``deadline`` seconds."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return time.monotonic() - started
        if time.monotonic() - started > deadline:
            raise AssertionError(f"gave up waiting for {what} after {deadline} s")
        time.sleep(_POLL)


@attrs.define
class Server:
    """One ``redis-server`` process on a loopback port."""

    port: int
    folder: Path
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> None:
        """Start the server (again, after a kill: same port, same files) and wait for PING."""
        log = (self.folder / f"redis-{self.port}.log").open("ab")
        arguments = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "no",
            "--save",
            "",
            "--dir",
            str(self.folder),
            "--daemonize",
            "no",
            # A replica that (re)joins syncs at once, not after 5 s of waiting for others.
            "--repl-diskless-sync-delay",
            "0",
            # DEBUG SLEEP, from loopback only: the tests stall a server to lose an answer.
            "--enable-debug-command",
            "local",
            *self.extra,
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            arguments, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        log.close()
        wait_for(f"redis-server on port {self.port}", lambda: bool(self.client().ping()))

    def client(self) -> Any:
        """A plain ``redis.Redis`` of this one server (no cluster routing), short timeouts; typed
        ``Any``, as redis-py's ``execute_command`` is untyped."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=2
        )

    def info(self, section: str) -> dict[str, object]:
        """``INFO section`` of this server."""
        with contextlib.closing(self.client()) as client:
            return dict(client.info(section))

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server, by its process id, and reap it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server, by its process id: SIGTERM, then SIGKILL if it lingers."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def stall(self, seconds: float) -> threading.Thread:
        """Block the server for ``seconds`` (``DEBUG SLEEP``, sent from a thread, which is
        returned); return once it is asleep: a ``PING`` goes unanswered."""

        def sleep() -> None:
            with contextlib.closing(self.client()) as client:
                client.execute_command("DEBUG", "SLEEP", seconds)

        def asleep() -> bool:
            probe = redis.Redis(
                host="127.0.0.1",
                port=self.port,
                socket_timeout=0.05,
                socket_connect_timeout=1,
                retry=Retry(NoBackoff(), 0),  # redis-py would try again until the server woke
            )
            try:
                probe.ping()
            except redis.TimeoutError:
                return True
            finally:
                probe.close()
            return False

        thread = threading.Thread(target=sleep, name=f"stall-{self.port}")
        thread.start()
        wait_for(f"redis-server on port {self.port} to stall", asleep, 5)
        return thread

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's log, for a failure message."""
        path = self.folder / f"redis-{self.port}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@attrs.define
class Cluster:
    """A Redis Cluster of three primaries with one replica each, on loopback ports."""

    servers: list[Server]
    binary: str

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def server(self, port: int) -> Server:
        """The server on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def roles(self) -> dict[int, tuple[str, int | None]]:
        """What each live node says it is: ("master", None) or ("slave", its primary's port)."""
        found: dict[int, tuple[str, int | None]] = {}
        for server in self.servers:
            if not server.alive:
                continue
            info = server.info("replication")
            if info["role"] == "master":
                found[server.port] = ("master", None)
            else:
                found[server.port] = ("slave", int(str(info["master_port"])))
        return found

    def keyslot(self, key: str) -> int:
        """``key``'s slot, as a live node computes it."""
        live = next(server for server in self.servers if server.alive)
        with contextlib.closing(live.client()) as opened:
            client: Any = opened
            return int(client.execute_command("CLUSTER", "KEYSLOT", key))

    def primary_of(self, key: str) -> Server:
        """The server that owns ``key``'s slot, as a live node sees it."""
        slot = self.keyslot(key)
        live = next(server for server in self.servers if server.alive)
        with contextlib.closing(live.client()) as opened:
            client: Any = opened
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.server(int(primary[1]))
        raise AssertionError(f"no node owns slot {slot}")

    def primaries(self) -> dict[int, list[tuple[int, int]]]:
        """Each primary's port and the slot ranges it serves, as a live node sees them."""
        live = next(server for server in self.servers if server.alive)
        owned: dict[int, list[tuple[int, int]]] = {}
        with contextlib.closing(live.client()) as opened:
            client: Any = opened
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                owned.setdefault(int(primary[1]), []).append((int(start), int(end)))
        return owned

    def fail_over(self, victim: Server) -> tuple[float, float, float]:
        """SIGKILL the primary ``victim``, wait until the cluster promotes its replica, and start
        ``victim`` again, which rejoins as that replica's replica. When the kill was
        (``time.monotonic()``, the same clock in every process of the machine), and the seconds
        from it to the promotion and to the restarted server answering."""
        (replica,) = [port for port, (_, of) in self.roles().items() if of == victim.port]
        victim.kill()
        killed_at = time.monotonic()
        promoted = wait_for(
            "the replica's promotion",
            lambda: self.server(replica).info("replication")["role"] == "master",
        )
        victim.start(self.binary)
        return killed_at, promoted, time.monotonic() - killed_at

    def rejoined(self, server: Server) -> bool:
        """Whether ``server`` is a replica whose link to its primary is up and whose full sync is
        done (it may be a write or two behind: the clients never stop)."""
        info = server.info("replication")
        return (
            info["role"] == "slave"
            and info.get("master_link_status") == "up"
            and info.get("master_sync_in_progress") == 0
        )

    def healthy(self) -> bool:
        """Every node live and agreeing the cluster is ok, all slots served, three primaries with
        one replica each, every replica's link up and in step with its primary."""
        for server in self.servers:
            if not server.alive:
                return False
            with contextlib.closing(server.client()) as opened:
                client: Any = opened
                info = client.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or "cluster_slots_ok:16384" not in text:
                return False
        roles = self.roles()
        primaries = sorted(port for port, (role, _) in roles.items() if role == "master")
        replicas = sorted(of for role, of in roles.values() if role == "slave" and of is not None)
        if len(primaries) != len(self.servers) // 2 or replicas != primaries:
            return False
        return all(self._in_step(port) for port, (role, _) in roles.items() if role == "slave")

    def _in_step(self, port: int) -> bool:
        info = self.server(port).info("replication")
        primary = self.server(int(str(info["master_port"]))).info("replication")
        return (
            info.get("master_link_status") == "up"
            and info.get("master_sync_in_progress") == 0
            and info.get("slave_repl_offset") == primary.get("master_repl_offset")
        )

    def wait_healthy(self, deadline: float = DEADLINE) -> float:
        """Wait until ``healthy``; how long that took."""
        return wait_for("a healthy cluster", self.healthy, deadline)

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def running_cluster(folder: Path) -> Iterator[Cluster]:
    """Start six servers, join them into a cluster with ``redis-cli --cluster create``, wait until
    it is healthy, and stop every server afterwards."""
    found = binaries()
    assert found is not None
    binary, cli = found
    servers = [
        Server(
            port,
            folder,
            (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
            ),
        )
        for port in free_ports(6)
    ]
    cluster = Cluster(servers, binary)
    try:
        for server in servers:
            server.start(binary)
        created = subprocess.run(  # noqa: S603 - our own binary and arguments
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{server.port}" for server in servers),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == created.returncode, created.stdout + created.stderr
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()


@attrs.define
class Replicated:
    """One Redis primary with one replica (no cluster), on loopback ports."""

    primary: Server
    replica: Server

    @property
    def url(self) -> str:
        """The primary's ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.primary.port}/0"


@contextlib.contextmanager
def running_replicated(folder: Path) -> Iterator[Replicated]:
    """Start a primary and a replica of it, wait until the replica is in sync, stop both after."""
    found = binaries()
    assert found is not None
    binary = found[0]
    primary_port, replica_port = free_ports(2)
    pair = Replicated(
        Server(primary_port, folder),
        Server(replica_port, folder, ("--replicaof", "127.0.0.1", str(primary_port))),
    )
    try:
        pair.primary.start(binary)
        pair.replica.start(binary)
        wait_for(
            "the replica to sync",
            lambda: pair.replica.info("replication").get("master_link_status") == "up",
        )
        yield pair
    finally:
        pair.replica.stop()
        pair.primary.stop()
