"""The chaos soak (``soak.py --chaos``): processes issue and redeem on a replicated deployment
while its primary is killed, again and again, and then every acknowledgement is checked.

Usage::

    python benchmarks/soak.py --chaos redis-cluster [--replicas N] --workers 4 --minutes 5
    python benchmarks/soak.py --chaos postgres [--standby sync|async] --workers 4 --minutes 5

The run starts its own servers on loopback ports, in a temporary directory, with the helpers the
failover tests use (``tests/backends/cluster/servers.py``, ``tests/backends/replicated/pair.py``):
a Redis Cluster of three primaries with one replica each, or a PostgreSQL primary with one
standby. It stops them, by process id, at the end.

Each worker process has its own storage (from the deployment's URL: every node of the cluster,
or both PostgreSQL hosts with ``target_session_attrs=read-write``) and its own customers. For each
customer in turn it issues a code, redeems it with a request id, then tries the same code under
another request id, as a second agent would; every call that fails with a ``StorageError``
(``StorageOutcomeUnknown`` included) is sent again, with the same request id, after a short pause,
until it is answered. Meanwhile the parent kills a primary every ``--failover-every`` seconds (the
first after half of that), each time one that serves the workers' customers:

- Redis Cluster: ``SIGKILL`` a primary, in turn one of each shard; the cluster promotes its
  replica; the killed server is started again and rejoins as the new primary's replica.
- PostgreSQL: ``SIGKILL`` the primary (postmaster and backends), promote the standby, then rebuild
  the dead server as the new primary's standby (``pg_basebackup``) and, with ``--standby sync``,
  make the new primary wait for it again.

Afterwards, every acknowledged redemption is read back through a storage of its own: *lost* if
the code is not redeemed, or its request id's retry does not answer the very redemption
acknowledged. A *double* is a code acknowledged to two request ids. *Recovery* is, for each
failover, the time from the kill to the first redemption acknowledged on the failed primary's
data (on the failed shard, for Redis) among those sent after the kill.

With ``--replicas 1`` (Redis; every commit waits for the shard's replica, ``WAIT``) or ``--standby
sync`` (PostgreSQL), the library promises that no acknowledged redemption is lost and none is
doubled: the run fails otherwise. Without them, losses are counted and reported; a double is then
allowed only on a code whose first redemption was lost.

The last line printed is a JSON summary: ``operations``, ``redemptions_acknowledged``,
``double_redemptions``, ``lost_acknowledged``, ``answered_otherwise``, ``failovers``,
``recovery_s``, ``promotion_s`` and ``rejoined_s`` (``p50`` and ``max``: from the kill to the first
acknowledgement on the failed primary's data, to the promotion, and to the killed server serving
again as the new primary's replica or standby), ``errors_retried`` (StorageErrors by code),
``refusals`` (the library's other refusals by code), ``unexpected`` (anything else raised), and
``violations`` (the exit status is 0 only when there are none).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.pool
import random
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from redis.crc import key_slot
from tests.backends.cluster.servers import running_cluster, wait_for
from tests.backends.replicated.pair import build_pair
from tests.backends.workers import subject_for

from telecard_auth import (
    CodeAlreadyUsed,
    CodeIssuer,
    CodeState,
    HmacKey,
    IssuedCode,
    Keyring,
    Policy,
    Redemption,
    StorageError,
    TelecardAuthError,
    storage_from_url,
)
from telecard_auth._core.requests import identity_of

T = TypeVar("T")

ENGINES = ("redis-cluster", "postgres")
PROVIDERS = ("stc", "mobily", "zain", "virgin", "lebara", "salam", "redbull", "friendi")
SERVICES = ("activation_for_actual_user", "lost_sim_replacement", "new_line")
#: Customers per worker, taken in turn, each with a number of its own.
CUSTOMERS = 2_000
#: The pause before a call that failed with a StorageError is sent again (seconds).
BACKOFF = 0.02
#: Socket timeouts of the workers' storages (seconds): a dead server is noticed this fast.
SOCKET_TIMEOUT = 3
#: How long a commit waits for the replicas it asks for (seconds), with ``--replicas``.
REPLICA_TIMEOUT = 0.5


@dataclass
class Ack:
    """A redemption the library acknowledged to a worker."""

    customer: int
    provider: str
    code: str
    service: str
    request_id: str
    code_id: str
    redeemed_at: str
    #: When the call (its first attempt) was sent and when it was answered (``time.monotonic``).
    sent: float
    answered: float


@dataclass
class Report:
    """What one worker did and heard."""

    operations: int = 0
    acks: list[Ack] = field(default_factory=list)
    #: Codes acknowledged a second time, under the rival request id.
    doubles: list[str] = field(default_factory=list)
    retried: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)


def _keyring(config: dict[str, Any]) -> Keyring:
    return Keyring(
        keys=(HmacKey(key_id="k1", secret=config["secret"]),),
        pseudonym_keys=(HmacKey(key_id="p1", secret=config["pseudonym_secret"]),),
    )


def _issuer(config: dict[str, Any]) -> CodeIssuer:
    policy = Policy(on_live_code_limit="supersede")
    return CodeIssuer(storage_from_url(config["url"]), keyring=_keyring(config), policy=policy)


def _close(issuer: CodeIssuer) -> None:
    close = getattr(issuer.storage, "close", None)
    if close is not None:
        close()


class Worker:
    """One process's customers and what it heard."""

    def __init__(self, index: int, config: dict[str, Any]) -> None:
        # psycopg's pool warns of each connection a failover breaks: here that is the point.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self.index = index
        self.deadline: float = config["deadline"]
        self.rng = random.Random(config["seed"] * 1000 + index)  # noqa: S311 - traffic, not keys
        self.issuer = _issuer(config)
        self.report = Report()

    def answered(self, call: Callable[[], T]) -> T | TelecardAuthError | None:
        """``call()``, sent again after each StorageError until it is answered: its result or
        the library's refusal; ``None`` if the deadline came first."""
        while time.monotonic() < self.deadline:
            self.report.operations += 1
            try:
                return call()
            except StorageError as error:
                self.report.retried[error.code] += 1
            except TelecardAuthError as error:
                return error
            except Exception as error:  # the library let a foreign error through
                self.report.unexpected.append(f"{type(error).__module__}.{type(error).__name__}")
            time.sleep(BACKOFF)
        return None

    def refused(self, outcome: object) -> None:
        if isinstance(outcome, TelecardAuthError):
            self.report.refusals[outcome.code] += 1

    def visit(self, number: int) -> None:
        """Issue a code, redeem it under a request id, then try it under a rival one."""
        customer = self.index * CUSTOMERS + number % CUSTOMERS
        subject = subject_for(customer)
        provider, service = self.rng.choice(PROVIDERS), self.rng.choice(SERVICES)
        issued = self.answered(lambda: self.issuer.issue(subject, provider))
        if not isinstance(issued, IssuedCode):
            self.refused(issued)
            return
        request_id = f"w{self.index}-{number}"
        sent = time.monotonic()
        redemption = self.answered(
            lambda: self.issuer.redeem(
                subject, provider, issued.code, service, request_id=request_id
            )
        )
        if not isinstance(redemption, Redemption):
            self.refused(redemption)
            return
        self.report.acks.append(
            Ack(
                customer,
                provider,
                issued.code,
                service,
                request_id,
                redemption.code_id,
                redemption.redeemed_at.isoformat(),
                sent,
                time.monotonic(),
            )
        )
        rival = self.answered(
            lambda: self.issuer.redeem(
                subject, provider, issued.code, service, request_id=f"{request_id}-rival"
            )
        )
        if isinstance(rival, Redemption):
            self.report.doubles.append(redemption.code_id)
        elif not isinstance(rival, CodeAlreadyUsed):
            self.refused(rival)

    def run(self) -> Report:
        """Visits until the deadline."""
        try:
            number = 0
            while time.monotonic() < self.deadline:
                self.visit(number)
                number += 1
        finally:
            _close(self.issuer)
        return self.report


def _work(index: int, config: dict[str, Any]) -> Report:
    return Worker(index, config).run()


def _read_back(config: dict[str, Any], acks: list[Ack]) -> tuple[list[str], list[str]]:
    """Of ``acks``: the code ids not stored as redeemed (or redeemed under the rival request id),
    and those whose request id's retry answers another redemption than the one acknowledged."""
    issuer = _issuer(config)
    lost, otherwise = [], []
    try:
        for ack in acks:
            subject = subject_for(ack.customer)
            try:
                if issuer.status(subject, ack.code_id).state is not CodeState.REDEEMED:
                    lost.append(ack.code_id)
                    continue
                again = issuer.redeem(
                    subject, ack.provider, ack.code, ack.service, request_id=ack.request_id
                )
            except TelecardAuthError:  # the code is gone, or redeemed under the rival request id
                lost.append(ack.code_id)
                continue
            if (again.code_id, again.redeemed_at.isoformat()) != (ack.code_id, ack.redeemed_at):
                otherwise.append(ack.code_id)
    finally:
        _close(issuer)
    return lost, otherwise


@dataclass
class Failover:
    """One kill: when (``time.monotonic``), how long the promotion and the killed server's return
    as a replica or standby took, and which slots the killed primary served (``None``: all)."""

    killed_at: float
    promotion_s: float
    rejoined_s: float
    slots: list[tuple[int, int]] | None = None


class Deployment(Protocol):
    """Servers the chaos soak runs on and kills."""

    #: The storage URL the workers use.
    url: str
    #: Whether the library promises that no acknowledged redemption is lost here.
    durable: bool
    #: The setting, for the summary (``replicas=1``, ``standby=sync`` …).
    setting: str

    def fail_over(self, turn: int) -> Failover:
        """Kill a primary and bring the deployment back to full strength."""

    def touched(self, failover: Failover, ack: Ack) -> bool:
        """Whether ``ack``'s customer's data was on the primary ``failover`` killed."""


class RedisClusterDeployment:
    """Three primaries with a replica each; kills each shard's primary in turn."""

    def __init__(self, cluster: Any, replicas: int, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.durable = replicas > 0
        self.setting = f"replicas={replicas}"
        options = f"prefix=chaos&socket_timeout={SOCKET_TIMEOUT}&socket_connect_timeout=1"
        if replicas:
            options += f"&replicas={replicas}&replica_timeout={REPLICA_TIMEOUT}"
        self.url = f"{cluster.url}?{options}"
        self.keyring = _keyring(config)
        self.slots: dict[int, int] = {}
        # Names the keys as the workers' storages do (it connects only when used, which it is not).
        self.layout: Any = storage_from_url(self.url)

    def fail_over(self, turn: int) -> Failover:
        """Kill the primary of shard ``turn`` (modulo three), restart it, and wait until it is its
        successor's replica again."""
        owned = self.cluster.primaries()
        port = sorted(owned, key=lambda primary: min(owned[primary]))[turn % len(owned)]
        victim = self.cluster.server(port)
        killed_at, promoted, _ = self.cluster.fail_over(victim)
        wait_for("the killed server to rejoin", lambda: self.cluster.rejoined(victim))
        return Failover(killed_at, promoted, time.monotonic() - killed_at, owned[port])

    def touched(self, failover: Failover, ack: Ack) -> bool:
        """Whether the customer's key is in a slot the killed primary served."""
        slot = self.slots.get(ack.customer)
        if slot is None:
            reference = self.keyring.subject_ref(identity_of(subject_for(ack.customer)))
            slot = int(key_slot(self.layout.key(reference).encode()))
            self.slots[ack.customer] = slot
        assert failover.slots is not None  # noqa: S101 - a cluster failover names its slots
        return any(start <= slot <= end for start, end in failover.slots)


class PostgresDeployment(Deployment):
    """A primary and one standby, synchronous or not; the primary is killed every time."""

    def __init__(self, pair: Any) -> None:
        self.pair = pair  # a tests.backends.replicated.pair.Pair
        self.durable = pair.synchronous
        self.setting = "standby=sync" if pair.synchronous else "standby=async"
        self.url = pair.url(options=f"connect_timeout={SOCKET_TIMEOUT}")

    def fail_over(self, turn: int) -> Failover:
        """Kill the primary, promote the standby, rebuild the dead server as its standby."""
        killed_at = time.monotonic()
        self.pair.fail_over()
        promoted = time.monotonic() - killed_at
        self.pair.rejoin()
        return Failover(killed_at, promoted, time.monotonic() - killed_at)

    def touched(self, failover: Failover, ack: Ack) -> bool:
        """Every customer's data is on the one primary."""
        return True


@contextlib.contextmanager
def deployment(
    engine: str, replicas: int, standby: str, config: dict[str, Any]
) -> Iterator[Deployment]:
    """The engine's servers, started in a temporary directory and stopped at the end."""
    if engine == "redis-cluster":
        with (
            tempfile.TemporaryDirectory(prefix="telecard-chaos-") as folder,
            running_cluster(Path(folder)) as cluster,
        ):
            yield RedisClusterDeployment(cluster, replicas, config)
        return
    pair = build_pair(synchronous=standby == "sync")
    try:
        yield PostgresDeployment(pair)
    finally:
        pair.close()


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


def chaos(
    engine: str,
    *,
    workers: int,
    minutes: float,
    every: float,
    replicas: int = 1,
    standby: str = "sync",
    seed: int = 1,
) -> dict[str, Any]:
    """Run the chaos soak; return the summary."""
    config: dict[str, Any] = {
        "seed": seed,
        "secret": secrets.token_bytes(32),
        "pseudonym_secret": secrets.token_bytes(32),
    }
    seconds = minutes * 60
    with deployment(engine, replicas, standby, config) as servers:
        config["url"] = servers.url
        storage = storage_from_url(servers.url)
        migrate = getattr(storage, "migrate", None)
        if migrate is not None:
            migrate()
        getattr(storage, "close", lambda: None)()
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            # Every worker starts at once: the clock starts once the pool is up.
            pool.map(time.sleep, [0] * workers)
            started = time.monotonic()
            config["deadline"] = started + seconds
            pending = pool.starmap_async(_work, [(index, config) for index in range(workers)])
            failovers: list[Failover] = []
            kill_at = started + every / 2
            while kill_at < config["deadline"]:
                time.sleep(max(0.0, kill_at - time.monotonic()))
                failovers.append(servers.fail_over(len(failovers)))
                kill_at += every
            reports: list[Report] = pending.get(timeout=seconds + 600)
            acks = [ack for report in reports for ack in report.acks]
            chunks = [(config, acks[start::workers]) for start in range(workers)]
            read_back = pool.starmap(_read_back, chunks)
    return summarize(servers, failovers, reports, read_back) | {
        "engine": engine,
        "workers": workers,
        "minutes": minutes,
        "failover_every_s": every,
        "operations_per_s": round(sum(report.operations for report in reports) / seconds, 1),
    }


def summarize(
    servers: Deployment,
    failovers: list[Failover],
    reports: list[Report],
    read_back: list[tuple[list[str], list[str]]],
) -> dict[str, Any]:
    """The figures of a run, and its ``violations``: answers that break a promise the library
    makes on this deployment, anything not the library's own error, and failovers nothing
    recovered from."""
    acks = [ack for report in reports for ack in report.acks]
    lost = [code_id for found, _ in read_back for code_id in found]
    otherwise = [code_id for _, found in read_back for code_id in found]
    recoveries = []
    for failover in failovers:
        after = [
            ack.answered - failover.killed_at
            for ack in acks
            if ack.sent > failover.killed_at and servers.touched(failover, ack)
        ]
        if after:
            recoveries.append(min(after))
    doubles = [code_id for report in reports for code_id in report.doubles]
    unexpected = Counter(name for report in reports for name in report.unexpected)
    retried: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    for report in reports:
        retried.update(report.retried)
        refusals.update(report.refusals)
    # Without durable acknowledgements a lost redemption leaves its code unused: the rival request
    # may then redeem it. Any other double, on any deployment, breaks the promise.
    violations = len(otherwise) + sum(unexpected.values()) + len(set(doubles) - set(lost))
    violations += len(failovers) - len(recoveries)
    if servers.durable:
        violations += len(lost) + len(doubles)
    return {
        "setting": servers.setting,
        "durable": servers.durable,
        "failovers": len(failovers),
        "operations": sum(report.operations for report in reports),
        "redemptions_acknowledged": len(acks),
        "double_redemptions": len(doubles),
        "lost_acknowledged": len(lost),
        "answered_otherwise": len(otherwise),
        "recovery_s": _quantiles(recoveries),
        "promotion_s": _quantiles([failover.promotion_s for failover in failovers]),
        "rejoined_s": _quantiles([failover.rejoined_s for failover in failovers]),
        "errors_retried": dict(retried),
        "refusals": dict(refusals),
        "unexpected": dict(unexpected),
        "violations": violations,
    }
