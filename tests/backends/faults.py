"""Fault injection for the backend tests: a storage that fails on purpose, and a proxy that drops.

- ``FaultyStorage`` wraps any ``Storage``. Before or after each ``load``, ``commit`` and ``purge``
  it may, at random (a seeded ``random.Random``), raise one of the errors a storage can let out:
  a plain ``ConnectionError`` (the connection dropped), ``OSError`` or ``TimeoutError`` (what a
  hand-written backend might let escape; the issuer must turn them into ``StorageError``), or the
  library's own ``StorageError``. A fault *after* a call means the inner call ran: after a
  ``commit`` the change HAS been applied but the caller sees an error, the dangerous case. Every
  injected fault is recorded, with the change it interrupted and what the inner call returned.
- ``HookedStorage`` calls a function before and after each operation (to kill a connection
  between a ``load`` and its ``commit``, say) and passes everything else through.
- ``DroppingProxy`` is a TCP proxy on the loopback interface between a client library and a real
  server. Armed with a marker, it drops the connection at the next request that carries it:
  before forwarding it (the server never sees it) or after the server answered (the server
  applied it, the client never hears so). Everything else passes through untouched.
"""

from __future__ import annotations

import contextlib
import enum
import random
import select
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import TypeVar

import attrs

from telecard_auth import CodeState, Commit, Storage, StorageError, SubjectSnapshot

__all__ = [
    "OPERATIONS",
    "DroppingProxy",
    "Fault",
    "FaultKind",
    "FaultyStorage",
    "HookedStorage",
    "Position",
]

R = TypeVar("R")

#: The operations of the ``Storage`` protocol, each a point where faults are injected.
OPERATIONS = ("load", "commit", "purge")


class Position(enum.Enum):
    """Where a fault strikes: before the inner call runs, or after it returned."""

    BEFORE = "before"
    AFTER = "after"


class FaultKind(enum.Enum):
    """What an injected fault raises."""

    #: A dropped connection: ``ConnectionError``.
    CONNECTION = "connection"
    #: Any other I/O failure: ``OSError``.
    OS = "os"
    #: A call that timed out: ``TimeoutError``.
    TIMEOUT = "timeout"
    #: The library's own ``StorageError``, as a conforming backend raises it.
    STORAGE = "storage"

    def error(self, operation: str, position: Position) -> Exception:
        """A fresh exception of this kind, saying where it was injected."""
        where = f"injected {self.value} fault {position.value} {operation}"
        if self is FaultKind.CONNECTION:
            return ConnectionError(f"{where}: connection dropped")
        if self is FaultKind.OS:
            return OSError(f"{where}: I/O error")
        if self is FaultKind.TIMEOUT:
            return TimeoutError(f"{where}: timed out")
        return StorageError(reason=where)


@attrs.frozen
class Fault:
    """One injected fault: where it struck, what it raised, and what it interrupted.

    ``change`` is the commit that was being made (``None`` for a ``load`` or a ``purge``);
    ``outcome`` is what the inner call returned, for a fault after it (``None`` before).
    """

    operation: str
    position: Position
    kind: FaultKind
    error: Exception
    subject_ref: str | None = None
    change: Commit | None = None
    outcome: object = None

    @property
    def applied(self) -> bool:
        """Whether the interrupted call changed the stored state: a commit that landed."""
        return self.operation == "commit" and self.outcome is True

    def redeemed(self) -> frozenset[str]:
        """The code ids this fault's applied change stored as redeemed (none if not applied)."""
        if not self.applied or self.change is None:
            return frozenset()
        return frozenset(r.code_id for r in self.change.codes if r.state is CodeState.REDEEMED)

    def stored(self) -> frozenset[str]:
        """Every code id this fault's applied change stored (none if not applied)."""
        if not self.applied or self.change is None:
            return frozenset()
        return frozenset(record.code_id for record in self.change.codes)


class FaultyStorage:
    """A ``Storage`` that fails at random before or after each call to ``inner``.

    At each of the two points of each call, a fault strikes with probability ``rate``; its kind is
    drawn uniformly from ``kinds``. Only ``operations`` and ``positions`` listed are eligible. Set
    ``rate`` to 0 to pass everything through. Safe to share between threads.
    """

    def __init__(
        self,
        inner: Storage,
        rng: random.Random,
        rate: float,
        *,
        kinds: Iterable[FaultKind] = tuple(FaultKind),
        positions: Iterable[Position] = tuple(Position),
        operations: Iterable[str] = OPERATIONS,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate is a probability, from 0 to 1")
        self.inner = inner
        self.rng = rng
        self.rate = rate
        self.kinds = tuple(kinds)
        self.positions = frozenset(positions)
        self.operations = frozenset(operations)
        if not self.kinds or not self.positions or not self.operations <= set(OPERATIONS):
            raise ValueError("faults need at least one kind and position, and known operations")
        #: Every fault injected so far, in order.
        self.faults: list[Fault] = []
        #: How many times each operation was called.
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """The inner snapshot, unless a fault strikes before or after the read."""
        return self._call("load", lambda: self.inner.load(subject_ref), subject_ref, None)

    def commit(self, change: Commit) -> bool:
        """The inner compare-and-set, unless a fault strikes before it or after it landed."""
        return self._call("commit", lambda: self.inner.commit(change), change.subject_ref, change)

    def purge(self, now: datetime, limit: int) -> int:
        """The inner purge, unless a fault strikes before or after it."""
        return self._call("purge", lambda: self.inner.purge(now, limit), None, None)

    def census(self) -> Counter[tuple[str, Position, FaultKind]]:
        """How many faults struck each operation, at each position, of each kind."""
        with self._lock:
            return Counter((fault.operation, fault.position, fault.kind) for fault in self.faults)

    def _call(
        self, operation: str, run: Callable[[], R], subject_ref: str | None, change: Commit | None
    ) -> R:
        with self._lock:
            self.calls[operation] += 1
        self._strike(operation, Position.BEFORE, subject_ref, change, None)
        outcome = run()
        self._strike(operation, Position.AFTER, subject_ref, change, outcome)
        return outcome

    def _strike(
        self,
        operation: str,
        position: Position,
        subject_ref: str | None,
        change: Commit | None,
        outcome: object,
    ) -> None:
        if operation not in self.operations or position not in self.positions:
            return
        with self._lock:
            if self.rng.random() >= self.rate:
                return
            kind = self.rng.choice(self.kinds)
            error = kind.error(operation, position)
            self.faults.append(
                Fault(operation, position, kind, error, subject_ref, change, outcome)
            )
        raise error

    def __repr__(self) -> str:
        return f"FaultyStorage({self.inner!r}, rate={self.rate}, faults={len(self.faults)})"


#: Called as ``hook(operation, position)`` around each call of a ``HookedStorage``.
Hook = Callable[[str, Position], None]


class HookedStorage:
    """A ``Storage`` that calls ``hook(operation, position)`` before and after each inner call."""

    def __init__(self, inner: Storage, hook: Hook) -> None:
        self.inner = inner
        self.hook = hook

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """The inner snapshot, between two calls of the hook."""
        return self._call("load", lambda: self.inner.load(subject_ref))

    def commit(self, change: Commit) -> bool:
        """The inner compare-and-set, between two calls of the hook."""
        return self._call("commit", lambda: self.inner.commit(change))

    def purge(self, now: datetime, limit: int) -> int:
        """The inner purge, between two calls of the hook."""
        return self._call("purge", lambda: self.inner.purge(now, limit))

    def _call(self, operation: str, run: Callable[[], R]) -> R:
        self.hook(operation, Position.BEFORE)
        outcome = run()
        self.hook(operation, Position.AFTER)
        return outcome


class DroppingProxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``upstream`` that drops connections on demand.

    ``arm(marker, position)`` makes the next client request containing ``marker`` end its
    connection: ``BEFORE`` drops the request unsent; ``AFTER`` forwards it, waits for the server's
    first answer, discards it and drops the connection. ``drops`` counts the drops by position.
    Use it as a context manager; closing stops every connection and thread.
    """

    #: How long the proxy waits for the server's answer to a request it forwarded (seconds).
    ANSWER_TIMEOUT = 10.0

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.drops: Counter[Position] = Counter()
        self._armed: tuple[bytes, Position] | None = None
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._start(self._accept)

    def arm(self, marker: bytes, position: Position) -> None:
        """Drop the connection at the next request that contains ``marker``."""
        if not marker:
            raise ValueError("the marker cannot be empty")
        with self._lock:
            self._armed = (marker, position)

    @property
    def armed(self) -> bool:
        """Whether a drop is still waiting for its request."""
        with self._lock:
            return self._armed is not None

    def close(self) -> None:
        """Stop accepting, close every connection and wait for the threads."""
        with self._lock:
            self._closed = True
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            _shut(sock)
        for thread in list(self._threads):
            thread.join(5.0)

    def __enter__(self) -> DroppingProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream, timeout=5.0)
            except OSError:
                _shut(client)
                continue
            server.settimeout(None)
            with self._lock:
                if self._closed:
                    _shut(client)
                    _shut(server)
                    return
                self._sockets |= {client, server}
            self._start(partial(self._pump, client, server))

    def _take(self, data: bytes) -> Position | None:
        with self._lock:
            if self._armed is None or self._armed[0] not in data:
                return None
            position = self._armed[1]
            self._armed = None
            self.drops[position] += 1
            return position

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [])
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    drop = self._take(data)
                    if drop is Position.BEFORE:
                        return
                    server.sendall(data)
                    if drop is Position.AFTER:
                        # The server answers only once it has run the request: then drop.
                        server.settimeout(self.ANSWER_TIMEOUT)
                        server.recv(65536)
                        return
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
        except (OSError, ValueError):
            return  # a socket closed under us: the connection ends either way
        finally:
            with self._lock:
                self._sockets -= {client, server}
            _shut(client)
            _shut(server)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
