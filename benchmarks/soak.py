"""Load and soak: several processes issue and redeem at full speed, then every invariant is checked.

Usage::

    python benchmarks/soak.py --backend URL --workers N --minutes M [--seed S]
    python benchmarks/soak.py --chaos ENGINE --workers N --minutes M [--failover-every S] …

``URL`` is any storage URL the library accepts (``sqlite:///soak.db``, ``redis://…``,
``postgresql://…``); the SQL schema is created first. ``--minutes`` may be fractional.
``--chaos`` (``redis-cluster`` or ``postgres``) runs the chaos soak instead, on servers of its own
that it kills every minute: see ``benchmarks/chaos.py``.

Each worker process runs its own ``CodeIssuer`` over the shared backend with one common keyring and
a realistic mix of traffic:

- it issues a code for a customer at a random operator: one of its own customers, or, one time in
  five, one of a few customers shared by every worker, so that workers collide;
- one time in ten, the customer keeps the code and comes back with it between half an hour and
  six hours later in service time: a third of those codes have expired by then, and customers who
  keep codes reach the live-code limit;
- one time in ten, it first types a wrong code;
- it redeems the right code with a fresh request id and the reference of one of a hundred
  agents, which the ``CodeRedemption`` audit event must carry (one time in two hundred, it first
  tries an invalid reference, which must be refused as such);
- one time in twenty, it retries: the same request again, which must return the very same
  redemption, or the same code without a request id, which must be refused as already used;
- one visit in a hundred is a guessed customer's (a company of its own, new each time): a guesser
  locks two of its codes in turn with five wrong guesses each, which spends its failure budget at
  that operator; the locked code is then refused as budget exhausted, the customer asks anew and
  gets a recovery code (so the ``CodeIssuance`` event says), one more wrong guess is refused, and
  the recovery code is redeemed.

Time moves: every process reads one clock, which runs from a fixed start at a constant multiple of
real time, so that the run covers up to 20 hours of the service: codes expire, and failure
budgets fill and drain.

At the end the parent checks, over everything the workers were told:

- every acknowledged redemption is recorded as redeemed, for the service it was acknowledged for;
- no code was acknowledged as redeemed by two different requests;
- every retry with the same request id got the same redemption;
- every redemption's audit event carried its reference, and every guessed customer's visit went
  as the rules say (in the worker, as it happens).

The last line printed is a JSON summary with the keys ``operations``, ``errors`` (unexpected
exceptions by kind), ``refusals`` (the library's refusals by code), ``redemptions_acknowledged``,
``recovery_redemptions`` (recovery codes redeemed), ``p50_ms``, ``p99_ms`` and
``invariant_violations``. The exit status is 0 only when there were neither errors nor violations.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import multiprocessing.pool
import os
import random
import secrets
import statistics
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telecard_auth import (
    CodeIssuer,
    CodeState,
    HmacKey,
    IssuedCode,
    Keyring,
    Policy,
    Redemption,
    Subject,
    TelecardAuthError,
    luhn_valid,
    storage_from_url,
)
from telecard_auth.events import AuditEvent, CodeIssuance, CodeRedemption

#: Where the simulated service time starts.
START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
#: The longest stretch of service time a run covers: within retention, so no record is purged.
SIMULATED = timedelta(hours=20)
PROVIDERS = ("stc", "mobily", "zain", "virgin", "lebara", "salam", "redbull", "friendi")
SERVICES = ("activation_for_actual_user", "lost_sim_replacement", "new_line")
SHARED_CUSTOMERS = 40
OWN_CUSTOMERS = 5_000
#: Most codes one worker's customers keep for later at once.
MAX_KEPT = 2_000
#: Agents whose references redemptions carry.
AGENTS = 100
#: What ``Heard.references`` gives for a redemption it heard nothing of.
UNHEARD = "(no event)"


#: Refusal codes that mean the storage failed, not the rules: counted as errors.
STORAGE_FAILURES = ("storage_error", "storage_contention")


def agent_of(request_id: str) -> str:
    """The agent whose reference a request carries: the same for every retry of the request."""
    return f"agent-{zlib.crc32(request_id.encode()) % AGENTS}"


class ScaledClock:
    """Service time: ``START`` plus real time since ``origin`` (epoch seconds), times ``speed``."""

    def __init__(self, origin: float, speed: float) -> None:
        self.origin = origin
        self.speed = speed

    def now(self) -> datetime:
        """The current service time."""
        return START + timedelta(seconds=(time.time() - self.origin) * self.speed)


@dataclass
class Ack:
    """A redemption the library acknowledged: what must be found redeemed afterwards."""

    customer: str
    code_id: str
    service_id: str
    request_id: str


@dataclass
class WorkerReport:
    """What one worker did and saw."""

    operations: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    acks: list[Ack] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    recovery_redemptions: int = 0


class Heard:
    """An event sink that keeps what the soak checks: the reference of each redemption (until
    it is checked) and the ids of the recovery codes issued."""

    def __init__(self) -> None:
        self.references: dict[str, str | None] = {}
        self.recovery: set[str] = set()

    def emit(self, event: AuditEvent) -> None:
        """Note a redemption's reference or a recovery code's id."""
        if isinstance(event, CodeRedemption) and event.code_id is not None:
            self.references[event.code_id] = event.reference
        elif isinstance(event, CodeIssuance) and event.recovery and event.code_id is not None:
            self.recovery.add(event.code_id)


def national_ids(first: str, count: int, skip: int = 0) -> list[str]:
    """``count`` valid ten-digit identifiers starting with ``first`` (Luhn check digit)."""
    found: list[str] = []
    number = skip * 10
    while len(found) < count:
        candidate = f"{first}{number:09d}"
        number += 1
        if luhn_valid(candidate):
            found.append(candidate)
    return found


def _keyring(secret: bytes, pseudonym_secret: bytes) -> Keyring:
    return Keyring(
        keys=(HmacKey(key_id="k1", secret=secret),),
        pseudonym_keys=(HmacKey(key_id="p1", secret=pseudonym_secret),),
    )


class Worker:
    """One process's traffic against the shared backend."""

    def __init__(self, index: int, config: dict[str, Any]) -> None:
        self.index = index
        self.rng = random.Random(config["seed"] * 1000 + index)  # noqa: S311 - traffic, not keys
        self.deadline = config["deadline"]
        self.storage = storage_from_url(config["url"])
        self.heard = Heard()
        self.issuer = CodeIssuer(
            self.storage,
            keyring=_keyring(config["secret"], config["pseudonym_secret"]),
            policy=Policy(),
            clock=ScaledClock(config["origin"], config["speed"]),
            events=self.heard,
        )
        self.own = national_ids("1", OWN_CUSTOMERS, skip=(index + 1) * OWN_CUSTOMERS)
        self.shared = national_ids("2", SHARED_CUSTOMERS)
        self.report = WorkerReport()
        self.requests = 0
        #: Guessed customers so far: each visit's customer is a company of its own.
        self.guessed = 0
        self.clock = self.issuer.clock
        #: Codes customers kept, by the service time they come back: (time, count, visit).
        self.kept: list[tuple[datetime, int, tuple[Subject, str, str]]] = []

    def timed(self, action: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one library call; time it; return its result or the refusal it raised."""
        began = time.perf_counter()
        try:
            return action(*args, **kwargs)
        except TelecardAuthError as error:
            if error.code in STORAGE_FAILURES:
                self.report.errors[error.code] += 1
            else:
                self.report.refusals[error.code] += 1
            return error
        except Exception as error:  # counted: the soak goes on
            self.report.errors[type(error).__name__] += 1
            return error
        finally:
            self.report.operations += 1
            self.report.latencies_ms.append((time.perf_counter() - began) * 1000)

    def request_id(self) -> str:
        """A request id no other request of the run uses."""
        self.requests += 1
        return f"w{self.index}-{self.requests}"

    def redeem(
        self, subject: Subject, provider: str, code: str, service: str, request_id: str
    ) -> object:
        """Redeem with a request id and an agent's reference; the audit event must carry it.

        A request's reference is part of it: a retry of the request names the same agent.
        """
        reference = agent_of(request_id)
        result = self.timed(
            self.issuer.redeem,
            subject,
            provider,
            code,
            service,
            request_id=request_id,
            reference=reference,
        )
        if isinstance(result, Redemption):
            heard = self.heard.references.pop(result.code_id, UNHEARD)
            if heard != reference:
                self.report.violations.append(
                    f"redemption of {result.code_id} with reference {reference!r} was heard"
                    f" with {heard!r}"
                )
        return result

    def unexpected(self, result: object, what: str) -> None:
        """``result`` broke a rule: a violation, unless the storage failed (counted as an error)."""
        if not (isinstance(result, TelecardAuthError) and result.code in STORAGE_FAILURES):
            self.report.violations.append(f"{what}: {result!r}")

    def expect(self, result: object, wanted: str, what: str) -> bool:
        """Whether ``result`` is the refusal ``wanted`` (an error code); if not, ``unexpected``."""
        if isinstance(result, TelecardAuthError) and result.code == wanted:
            return True
        self.unexpected(result, f"{what}, not {wanted}")
        return False

    def guessed_visit(self) -> None:
        """A guessed customer: the budget spent by guesses, then a recovery code redeemed."""
        self.guessed += 1
        subject = Subject.company(f"7{self.index:03d}{self.guessed:06d}")
        provider = self.rng.choice(PROVIDERS)
        where = f"guessed customer {subject.identifier} at {provider}"
        locked: IssuedCode | None = None
        # A code locks after 5 wrong guesses, each counted: two codes spend the budget of 10.
        for _ in range(2):
            issued = self.timed(self.issuer.issue, subject, provider)
            if not isinstance(issued, IssuedCode):
                return
            locked = issued
            wrong = f"{(int(issued.code) + 1) % 10**8:08d}"
            for _ in range(5):
                guess = self.timed(self.issuer.redeem, subject, provider, wrong, "new_line")
                if not self.expect(guess, "wrong_code", f"{where}: a guess"):
                    return
        assert locked is not None  # noqa: S101 - the loop ran
        # The budget is spent: only a recovery code is compared, and there is none yet.
        late = self.timed(self.issuer.redeem, subject, provider, locked.code, "new_line")
        if not self.expect(late, "failure_budget_exhausted", f"{where}: a locked code"):
            return
        recovery = self.timed(self.issuer.issue, subject, provider)
        if not isinstance(recovery, IssuedCode):
            self.unexpected(recovery, f"{where}: asking anew")
            return
        if recovery.code_id not in self.heard.recovery:
            self.report.violations.append(f"{where}: {recovery.code_id} is no recovery code")
            return
        self.heard.recovery.discard(recovery.code_id)
        wrong = f"{(int(recovery.code) + 1) % 10**8:08d}"
        guess = self.timed(self.issuer.redeem, subject, provider, wrong, "new_line")
        if not self.expect(guess, "wrong_code", f"{where}: a guess at the recovery code"):
            return
        request_id = self.request_id()
        used = self.redeem(subject, provider, recovery.code, "new_line", request_id)
        if isinstance(used, Redemption):
            self.report.recovery_redemptions += 1
            self.report.acks.append(Ack(subject.identifier, used.code_id, "new_line", request_id))
        else:
            self.unexpected(used, f"{where}: the recovery code")

    def visit(self) -> None:
        """One customer's visit: a code, maybe a wrong attempt, a redemption, maybe a retry."""
        rng = self.rng
        if rng.random() < 0.01:  # noqa: PLR2004 - the mix
            self.guessed_visit()
            return
        service = rng.choice(SERVICES)
        if self.kept and self.kept[0][0] <= self.clock.now() and rng.random() < 0.1:  # noqa: PLR2004
            subject, provider, code = heapq.heappop(self.kept)[2]
        else:
            pool = self.shared if rng.random() < 0.2 else self.own  # noqa: PLR2004 - the mix
            subject = _subject(rng.choice(pool))
            provider = rng.choice(PROVIDERS)
            issued = self.timed(self.issuer.issue, subject, provider)
            if isinstance(issued, BaseException):
                return
            code = issued.code
            if rng.random() < 0.1 and len(self.kept) < MAX_KEPT:  # noqa: PLR2004 - the mix
                later = issued.issued_at + timedelta(minutes=rng.uniform(30, 360))
                heapq.heappush(self.kept, (later, self.requests, (subject, provider, code)))
                self.requests += 1
                return
        if rng.random() < 0.1:  # noqa: PLR2004 - the mix
            wrong = f"{(int(code) + 1 + rng.randrange(10**7)) % 10**8:08d}"
            self.timed(self.issuer.redeem, subject, provider, wrong, service)
        if rng.random() < 0.005:  # noqa: PLR2004 - the mix
            invalid = self.timed(
                self.issuer.redeem, subject, provider, code, service, reference="agent 7"
            )
            self.expect(invalid, "invalid_reference", "a reference with a space")
        request_id = self.request_id()
        first = self.redeem(subject, provider, code, service, request_id)
        if not isinstance(first, Redemption):
            return
        self.report.acks.append(Ack(subject.identifier, first.code_id, service, request_id))
        if rng.random() < 0.05:  # noqa: PLR2004 - the mix
            if rng.random() < 0.5:  # noqa: PLR2004 - half of the retries repeat the request
                again = self.timed(
                    self.issuer.redeem,
                    subject,
                    provider,
                    code,
                    service,
                    request_id=request_id,
                    reference=agent_of(request_id),
                )
                if again != first:
                    self.report.violations.append(
                        f"retry of {request_id} got {again!r}, not the first redemption"
                    )
            else:
                again = self.timed(self.issuer.redeem, subject, provider, code, service)
                if isinstance(again, Redemption):
                    self.report.violations.append(
                        f"code {first.code_id} was redeemed again without its request id"
                    )

    def run(self) -> WorkerReport:
        """Visits until the deadline."""
        try:
            while time.time() < self.deadline:
                self.visit()
        finally:
            close = getattr(self.storage, "close", None)
            if close is not None:
                close()
        return self.report


def _work(index: int, config: dict[str, Any]) -> WorkerReport:
    return Worker(index, config).run()


def _subject(customer: str) -> Subject:
    if customer[0] == "7":
        return Subject.company(customer)
    return Subject.resident(customer) if customer[0] == "2" else Subject.citizen(customer)


def _audit(config: dict[str, Any], acks: list[Ack]) -> list[str]:
    """The acknowledged redemptions in ``acks`` that storage does not hold as redeemed."""
    storage = storage_from_url(config["url"])
    violations = []
    try:
        auditor = CodeIssuer(
            storage,
            keyring=_keyring(config["secret"], config["pseudonym_secret"]),
            clock=ScaledClock(config["origin"], config["speed"]),
        )
        for ack in acks:
            try:
                status = auditor.status(_subject(ack.customer), ack.code_id)
            except TelecardAuthError as error:
                violations.append(f"acknowledged redemption of {ack.code_id}: {error.code}")
                continue
            if (status.state, status.redeemed_service_id) != (CodeState.REDEEMED, ack.service_id):
                violations.append(
                    f"acknowledged redemption of {ack.code_id} for {ack.service_id} is stored as"
                    f" {status.state.value} for {status.redeemed_service_id}"
                )
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            close()
    return violations


def check(
    config: dict[str, Any], reports: list[WorkerReport], pool: multiprocessing.pool.Pool, size: int
) -> list[str]:
    """Every invariant over everything the workers were told; the violations found."""
    violations = [violation for report in reports for violation in report.violations]
    by_code: dict[str, set[str]] = {}
    for report in reports:
        for ack in report.acks:
            by_code.setdefault(ack.code_id, set()).add(ack.request_id)
    violations += [
        f"code {code_id} was acknowledged to {len(requests)} requests"
        for code_id, requests in by_code.items()
        if len(requests) > 1
    ]
    acks = [ack for report in reports for ack in report.acks]
    chunks = [(config, acks[start::size]) for start in range(size)]
    for found in pool.starmap(_audit, chunks):
        violations += found
    return violations


def soak(url: str, workers: int, minutes: float, seed: int) -> dict[str, Any]:
    """Run the soak; return the summary."""
    storage = storage_from_url(url)
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        migrate()
    close = getattr(storage, "close", None)
    if close is not None:
        close()
    seconds = minutes * 60
    origin = time.time()
    config = {
        "url": url,
        "seed": seed,
        "secret": secrets.token_bytes(32),
        "pseudonym_secret": secrets.token_bytes(32),
        "origin": origin,
        "speed": SIMULATED.total_seconds() / max(seconds, 1.0),
        "deadline": origin + seconds,
    }
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        reports = pool.starmap(_work, [(index, config) for index in range(workers)])
        violations = check(config, reports, pool, workers)
    latencies = sorted(ms for report in reports for ms in report.latencies_ms)
    errors: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    for report in reports:
        errors.update(report.errors)
        refusals.update(report.refusals)
    for violation in violations[:20]:
        print("violation:", violation, file=sys.stderr)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "backend": url.split(":", 1)[0],
        "workers": workers,
        "minutes": minutes,
        "operations": sum(report.operations for report in reports),
        "redemptions_acknowledged": sum(len(report.acks) for report in reports),
        "recovery_redemptions": sum(report.recovery_redemptions for report in reports),
        "operations_per_s": round(sum(report.operations for report in reports) / seconds, 1),
        "errors": dict(errors),
        "refusals": dict(refusals),
        "p50_ms": round(quantiles[49], 3),
        "p99_ms": round(quantiles[98], 3),
        "invariant_violations": len(violations),
    }


def chaos(engine: str, **options: Any) -> dict[str, Any]:
    """The chaos soak (``benchmarks/chaos.py``), which needs the project's test helpers too."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.chaos import chaos as run  # noqa: PLC0415 - only for --chaos, after the path

    return run(engine, **options)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the soak, print the summary as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--backend", help="storage URL, e.g. sqlite:///soak.db")
    where.add_argument(
        "--chaos",
        choices=("redis-cluster", "postgres"),
        help="run the chaos soak on servers of its own, killing a primary every minute",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    chaos_options = parser.add_argument_group("chaos soak")
    chaos_options.add_argument(
        "--failover-every", type=float, default=60.0, metavar="SECONDS", help="(default 60)"
    )
    chaos_options.add_argument(
        "--replicas", type=int, default=1, help="redis-cluster: replicas each commit waits for"
    )
    chaos_options.add_argument(
        "--standby", choices=("sync", "async"), default="sync", help="postgres: the standby"
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.minutes <= 0 or args.failover_every <= 0 or args.replicas < 0:
        parser.error(
            "--workers must be at least 1, --minutes and --failover-every positive,"
            " --replicas at least 0"
        )
    if args.chaos:
        summary = chaos(
            args.chaos,
            workers=args.workers,
            minutes=args.minutes,
            every=args.failover_every,
            replicas=args.replicas,
            standby=args.standby,
            seed=args.seed,
        )
        print(json.dumps(summary, sort_keys=True))
        return 0 if not summary["violations"] else 1
    summary = soak(args.backend, args.workers, args.minutes, args.seed)
    print(json.dumps(summary, sort_keys=True))
    return 0 if not summary["errors"] and not summary["invariant_violations"] else 1


if __name__ == "__main__":
    sys.exit(main())
