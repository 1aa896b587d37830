"""Concurrency: many threads on one subject's codes over MemoryStorage's compare-and-set.

Threads start together on a barrier. The interpreter's thread switch interval is shortened while
these tests run so that requests really interleave; a counting storage proves that commits did
collide, so the tests exercise the retry path and not a lucky serial order.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from tests.helpers import other_code, stored_record

from telecard_auth import (
    CodeAlreadyUsed,
    CodeIssuer,
    CodeRevoked,
    CodeState,
    CodeStatus,
    Commit,
    FailureBudgetExhausted,
    IssuedCode,
    Keyring,
    LiveCodeLimitReached,
    ManualClock,
    MemoryStorage,
    Policy,
    Redemption,
    Subject,
    TelecardAuthError,
    WrongCode,
)

THREADS = 32
ROUNDS = 200


class CountingStorage(MemoryStorage):
    """Memory storage that counts commits lost to a concurrent writer."""

    def __init__(self) -> None:
        super().__init__()
        self._count_lock = threading.Lock()
        self.lost = 0

    def commit(self, change: Commit) -> bool:
        """Commit, counting a lost compare-and-set."""
        landed = super().commit(change)
        if not landed:
            with self._count_lock:
                self.lost += 1
        return landed


@pytest.fixture(autouse=True)
def interleave() -> Iterator[None]:
    """Switch threads far more often than usual while a race test runs."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Exactly THREADS workers, so that THREADS tasks all reach the barrier."""
    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        yield executor


def together(pool: ThreadPoolExecutor, actions: list[Callable[[], object]]) -> list[object]:
    """Run the actions at once; each returns its result or the TelecardAuthError it raised.

    Any other exception propagates and fails the test.
    """
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], object]) -> object:
        """Wait for every thread, then act."""
        barrier.wait(timeout=30)
        try:
            return action()
        except TelecardAuthError as error:
            return error

    futures = [pool.submit(run, action) for action in actions]
    return [future.result(timeout=60) for future in futures]


def kinds(outcomes: list[object]) -> Counter[type]:
    """How many outcomes of each type."""
    return Counter(type(outcome) for outcome in outcomes)


def make(
    keyring: Keyring, clock: ManualClock, policy: Policy | None = None
) -> tuple[CodeIssuer, CountingStorage]:
    """A fresh issuer over fresh counting storage."""
    storage = CountingStorage()
    return CodeIssuer(storage, keyring=keyring, policy=policy, clock=clock), storage


def test_one_code_redeemed_by_many_threads_is_redeemed_once(
    pool: ThreadPoolExecutor, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """32 threads redeem one code, 200 times: one Redemption and 31 CodeAlreadyUsed every time."""
    collisions = 0
    for _ in range(ROUNDS):
        issuer, storage = make(keyring, clock)
        issued = issuer.issue(citizen, "stc")
        redeem = partial(issuer.redeem, citizen, "stc", issued.code, "new_line")
        outcomes = together(pool, [redeem] * THREADS)
        assert {Redemption: 1, CodeAlreadyUsed: THREADS - 1} == kinds(outcomes)
        record = stored_record(storage, issued.code_id)
        assert (CodeState.REDEEMED, 0) == (record.state, record.failed_attempts)
        collisions += storage.lost
    assert 0 < collisions


def test_concurrent_wrong_guesses_lock_at_exactly_the_limit(
    pool: ThreadPoolExecutor, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """32 simultaneous wrong guesses: the code locks at 5, and only those 5 are logged failures."""
    # A budget so large that it never refuses: far above the guess-risk limit, on purpose.
    policy = Policy(max_failed_attempts=5, failure_budget=1000, accept_guess_risk=True)
    collisions = 0
    for _ in range(40):
        issuer, storage = make(keyring, clock, policy)
        issued = issuer.issue(citizen, "stc")
        guess = other_code(issued.code)
        outcomes = together(
            pool, [partial(issuer.redeem, citizen, "stc", guess, "new_line")] * THREADS
        )
        assert {WrongCode: THREADS} == kinds(outcomes)
        record = stored_record(storage, issued.code_id)
        assert (CodeState.LOCKED, 5) == (record.state, record.failed_attempts)
        (snapshot,) = storage.snapshots()
        assert 5 == len(snapshot.failure_log("stc").failures)
        collisions += storage.lost
    assert 0 < collisions


def test_concurrent_wrong_guesses_never_overrun_the_budget(
    pool: ThreadPoolExecutor, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Under a budget of 3, exactly 3 of 32 simultaneous wrong guesses are counted, 29 refused."""
    policy = Policy(failure_budget=3)
    collisions = 0
    for _ in range(40):
        issuer, storage = make(keyring, clock, policy)
        issued = issuer.issue(citizen, "stc")
        guess = other_code(issued.code)
        outcomes = together(
            pool, [partial(issuer.redeem, citizen, "stc", guess, "new_line")] * THREADS
        )
        assert {WrongCode: 3, FailureBudgetExhausted: THREADS - 3} == kinds(outcomes)
        (snapshot,) = storage.snapshots()
        assert 3 == len(snapshot.failure_log("stc").failures)
        record = stored_record(storage, issued.code_id)
        assert (CodeState.ACTIVE, 3) == (record.state, record.failed_attempts)
        collisions += storage.lost
    assert 0 < collisions


def test_right_code_racing_wrong_guesses_is_consistent(
    pool: ThreadPoolExecutor, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """One right, 31 wrong at once: redeemed before the lock or locked; failures match attempts."""
    policy = Policy(failure_budget=1000, accept_guess_risk=True)
    for _ in range(40):
        issuer, storage = make(keyring, clock, policy)
        issued = issuer.issue(citizen, "stc")
        guess = other_code(issued.code)
        actions: list[Callable[[], object]] = [
            partial(issuer.redeem, citizen, "stc", guess, "new_line")
        ] * (THREADS - 1)
        actions.insert(
            THREADS // 2, partial(issuer.redeem, citizen, "stc", issued.code, "new_line")
        )
        outcomes = together(pool, actions)
        right = outcomes[THREADS // 2]
        record = stored_record(storage, issued.code_id)
        assert THREADS - 1 == kinds(outcomes)[WrongCode]
        if isinstance(right, Redemption):
            assert CodeState.REDEEMED == record.state
            assert record.failed_attempts < 5
        else:
            assert isinstance(right, TelecardAuthError)
            assert "code_locked" == right.code
            assert (CodeState.LOCKED, 5) == (record.state, record.failed_attempts)
        (snapshot,) = storage.snapshots()
        assert record.failed_attempts == len(snapshot.failure_log("stc").failures)


def test_concurrent_issues_respect_the_live_code_limit(
    pool: ThreadPoolExecutor, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """32 simultaneous issues for one subject: exactly 3 codes, 29 LiveCodeLimitReached."""
    for _ in range(40):
        issuer, storage = make(keyring, clock)
        outcomes = together(pool, [partial(issuer.issue, citizen, "stc")] * THREADS)
        assert {IssuedCode: 3, LiveCodeLimitReached: THREADS - 3} == kinds(outcomes)
        (snapshot,) = storage.snapshots()
        assert {o.code_id for o in outcomes if isinstance(o, IssuedCode)} == {
            record.code_id for record in snapshot.codes
        }


def test_revoke_racing_redeem_has_one_winner(
    pool: ThreadPoolExecutor, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Half the threads revoke, half redeem: either one redemption or a revocation, never both."""
    for _ in range(40):
        issuer, storage = make(keyring, clock)
        issued = issuer.issue(citizen, "stc")
        revoke = partial(issuer.revoke, citizen, issued.code_id)
        redeem = partial(issuer.redeem, citizen, "stc", issued.code, "new_line")
        actions: list[Callable[[], object]] = [revoke, redeem] * (THREADS // 2)
        outcomes = together(pool, actions)
        counts = kinds(outcomes)
        state = stored_record(storage, issued.code_id).state
        if state is CodeState.REDEEMED:
            assert {Redemption: 1, CodeAlreadyUsed: THREADS - 1} == counts
        else:
            assert CodeState.REVOKED == state
            assert {CodeStatus: THREADS // 2, CodeRevoked: THREADS // 2} == counts
