"""Failover under load: the primary is killed mid-run, the standby promoted, and clients carry on.

Two pairs of rival threads share one ``PostgresStorage`` built from the pair's multi-host URL. In
each round, one thread of a pair issues a code, then both try to redeem it at once, each with its
own request id, retrying every ``StorageError`` (``StorageOutcomeUnknown`` included) with the same
request id until they hear an answer. Once every pair is under way, the test ``SIGKILL``s the
primary (postmaster and backends at once) and promotes the synchronous standby; the threads carry
on through the same URL, and the run ends once every pair has done as many rounds again.

Then, read back from the new primary: no code has two acknowledged redemptions; every
acknowledged redemption is stored, at the acknowledged time, and a retry with its request id
returns it (so it is that request's redemption, not its rival's); and every round has exactly one
winner. The time from the kill to the first redemption that started after it and was
acknowledged is the recovery time; it and the counts are printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs
import pytest
from tests.backends.replicated.conftest import new_pair, run_on
from tests.backends.replicated.pair import Pair
from tests.backends.workers import subject_for

from telecard_auth import (
    CodeAlreadyUsed,
    CodeIssuer,
    CodeState,
    IssuedCode,
    Keyring,
    ManualClock,
    PostgresStorage,
    Redemption,
    StorageError,
    Subject,
    storage_from_url,
)

T = TypeVar("T")

PROVIDER = "stc"
SERVICE = "new_line"
#: Pairs of rival threads.
PAIRS = 2
#: Rounds every pair completes before the kill, and again after it.
ROUNDS = 25
#: The longest the whole run may take, and the longest one request may keep failing (seconds).
DEADLINE = 90.0
#: Between two attempts at a request that failed (seconds): a retry, not a wait for expiry.
RETRY_PAUSE = 0.01


@attrs.define
class Outcome:
    """What one thread heard for one round's redemption."""

    pair: int
    round: int
    request_id: str
    subject: Subject
    issued: IssuedCode
    #: The redemption acknowledged to the thread, or ``None`` if it heard CodeAlreadyUsed.
    redemption: Redemption | None
    started: float
    ended: float


@attrs.define
class Run:
    """The threads' shared record, and the signals between them and the test."""

    storage: PostgresStorage
    keyring: Keyring
    deadline: float
    lock: threading.Lock = attrs.Factory(threading.Lock)
    outcomes: list[Outcome] = attrs.Factory(list)
    failures: Counter[str] = attrs.Factory(Counter)
    problems: list[BaseException] = attrs.Factory(list)
    rounds: Counter[int] = attrs.Factory(Counter)
    #: When each call that the storage answered (issue or redeem) started and ended.
    answers: list[tuple[float, float]] = attrs.Factory(list)
    stop: threading.Event = attrs.Factory(threading.Event)

    def retried(self, call: Callable[[], T]) -> T:
        """``call``, again after each StorageError, until it answers or the deadline passes."""
        while True:
            started = time.monotonic()
            try:
                answer = call()
            except StorageError as error:
                with self.lock:
                    self.failures[type(error).__name__] += 1
            else:
                with self.lock:
                    self.answers.append((started, time.monotonic()))
                return answer
            if time.monotonic() > self.deadline:
                raise AssertionError("a request kept failing until the deadline")
            time.sleep(RETRY_PAUSE)

    def rivals(self, pair: int) -> None:
        """Run one pair of rival threads until ``stop``; a thread's failure is recorded."""
        clock = ManualClock()
        issuer = CodeIssuer(self.storage, keyring=self.keyring, clock=clock)
        issued: list[tuple[Subject, IssuedCode]] = []
        # Decided once per round, as both threads pass the barrier: they stop together.
        going = [True]

        def decide() -> None:
            going[0] = not self.stop.is_set()

        def finish() -> None:
            clock.advance(seconds=1)
            with self.lock:
                self.rounds[pair] += 1

        start = threading.Barrier(2, action=decide, timeout=DEADLINE)
        end = threading.Barrier(2, action=finish, timeout=DEADLINE)

        def rival(role: str) -> None:
            try:
                for round_ in range(10**6):
                    if role == "a":
                        subject = subject_for(pair * 10**6 + round_)
                        code = self.retried(lambda: issuer.issue(subject, PROVIDER))  # noqa: B023
                        issued.append((subject, code))
                    start.wait()
                    if not going[0]:
                        return
                    self.redeem(issuer, pair, round_, role=role, issued=issued[round_])
                    end.wait()
            except threading.BrokenBarrierError:
                return
            except BaseException as error:  # raised again by the test
                with self.lock:
                    self.problems.append(error)
                start.abort()
                end.abort()

        threads = [threading.Thread(target=rival, args=(role,)) for role in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)

    def redeem(
        self,
        issuer: CodeIssuer,
        pair: int,
        round_: int,
        *,
        role: str,
        issued: tuple[Subject, IssuedCode],
    ) -> None:
        """Redeem, retrying with the same request id; record what was heard."""
        request_id = f"p{pair}-r{round_}-{role}"
        subject, code = issued
        started = time.monotonic()

        def attempt() -> Redemption | None:
            try:
                return issuer.redeem(subject, PROVIDER, code.code, SERVICE, request_id=request_id)
            except CodeAlreadyUsed:
                return None

        redemption = self.retried(attempt)
        outcome = Outcome(
            pair, round_, request_id, subject, code, redemption, started, time.monotonic()
        )
        with self.lock:
            self.outcomes.append(outcome)

    def wait_for_rounds(self, counts: dict[int, int]) -> None:
        """Wait until every pair has done at least ``counts[pair]`` rounds (or one failed)."""
        while time.monotonic() < self.deadline and not self.problems:
            with self.lock:
                if all(self.rounds[pair] >= count for pair, count in counts.items()):
                    return
            time.sleep(0.01)
        if self.problems:
            raise self.problems[0]
        raise AssertionError(f"the pairs did only {dict(self.rounds)} rounds before the deadline")


@pytest.fixture
def own_pair() -> Iterator[Pair]:
    """A primary and synchronous standby of this test's own: it kills the primary."""
    pair = new_pair()
    yield pair
    pair.close()


def test_killing_the_primary_loses_no_acknowledged_redemption_and_doubles_none(
    own_pair: Pair, keyring: Keyring
) -> None:
    """SIGKILL the primary under load and promote its synchronous standby: nothing lost, no double.

    Every acknowledged redemption is on the new primary, as acknowledged; no code is acknowledged
    twice; every round has one winner; and the clients recover through the multi-host URL.
    """
    schema = "t" + uuid.uuid4().hex[:12]
    run_on(own_pair.url(), f"CREATE SCHEMA {schema}")
    storage = storage_from_url(own_pair.url(options=f"schema={schema}"))
    assert isinstance(storage, PostgresStorage)
    storage.migrate()
    run = Run(storage, keyring, time.monotonic() + DEADLINE)
    pairs = [threading.Thread(target=run.rivals, args=(pair,)) for pair in range(PAIRS)]
    for thread in pairs:
        thread.start()
    try:
        run.wait_for_rounds(dict.fromkeys(range(PAIRS), ROUNDS))
        with run.lock:
            at_kill = dict(run.rounds)
        killed_at = time.monotonic()
        own_pair.fail_over()
        promoted_at = time.monotonic()
        run.wait_for_rounds({pair: count + ROUNDS for pair, count in at_kill.items()})
    finally:
        run.stop.set()
        for thread in pairs:
            thread.join(DEADLINE)
    assert [] == run.problems
    storage.close()

    with PostgresStorage(own_pair.primary.url, schema=schema) as reader:
        watcher = CodeIssuer(reader, keyring=keyring, clock=ManualClock())
        winners: Counter[tuple[int, int]] = Counter()
        lost = []
        for outcome in run.outcomes:
            if outcome.redemption is None:
                continue
            winners[outcome.pair, outcome.round] += 1
            status = watcher.status(outcome.subject, outcome.issued.code_id)
            replayed = watcher.redeem(
                outcome.subject,
                PROVIDER,
                outcome.issued.code,
                SERVICE,
                request_id=outcome.request_id,
            )
            if (CodeState.REDEEMED, outcome.redemption.redeemed_at, outcome.redemption) != (
                status.state,
                status.finished_at,
                replayed,
            ):
                lost.append(outcome.request_id)
    rounds = {(outcome.pair, outcome.round) for outcome in run.outcomes}
    doubles = sorted(key for key, count in winners.items() if count > 1)
    after = [o for o in run.outcomes if o.redemption is not None and o.started > killed_at]
    recovery = min(ended for started, ended in run.answers if started > killed_at) - killed_at
    ends = sorted(ended for _, ended in run.answers)
    outage = max(later - earlier for earlier, later in itertools.pairwise(ends))
    print(
        f"\nfailover: {len(run.outcomes)} redemption calls in {len(rounds)} rounds, "
        f"{sum(winners.values())} acknowledged ({len(after)} started after the kill); "
        f"lost {len(lost)}, doubled {len(doubles)}; errors retried {dict(run.failures)}; "
        f"promoted {promoted_at - killed_at:.2f} s after the kill; the first call started "
        f"after the kill was answered {recovery:.2f} s after it; longest time without an "
        f"answer to any client {outage:.2f} s"
    )
    assert ([], []) == (lost, doubles)
    assert ({1}, len(rounds)) == (set(winners.values()), len(winners))
    assert len(after) >= PAIRS * (ROUNDS - 1)
