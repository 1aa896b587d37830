"""Cross-process races on the shared backends: SQLite, Redis and PostgreSQL.

A persistent pool of ``WORKERS`` processes (``forkserver`` context) serves every test of this
module. For each test every worker builds its own storage from the test's URL, once; each round the
parent issues a code and hands one redemption to every worker, the workers wait for one another on
a barrier and then redeem at once, and the parent collects and checks the outcomes. Each worker
also counts its commits that lost the compare-and-set, which proves the processes really collided.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import pytest
from tests.backends.conftest import UrlFactory
from tests.backends.workers import (
    REDEEMED,
    close_storage,
    keyring_spec,
    race_worker,
    subject_for,
)
from tests.helpers import START, other_code

from telecard_auth import (
    SAUDI_PROVIDERS,
    CodeIssuer,
    CodeLocked,
    CodeState,
    IssuedCode,
    Keyring,
    ManualClock,
    Policy,
    Storage,
    Subject,
    WrongCode,
    storage_from_url,
)
from telecard_auth._core.requests import identity_of

WORKERS = 32
ROUNDS = 200
GUESS_ROUNDS = 25
SHARED_BACKENDS = ("sqlite", "redis", "postgres")
#: Longest wait for one reply from the pool (seconds); a stuck worker fails the test, not hangs it.
REPLY_TIMEOUT = 120.0
#: A failure budget so large that every wrong guess of a round is counted.
UNBOUNDED_BUDGET = 1000

PROVIDERS = tuple(provider.id for provider in SAUDI_PROVIDERS)


@attrs.define
class Pool:
    """The persistent worker processes and their queues (one inbox each, one shared outbox)."""

    processes: list[multiprocessing.process.BaseProcess]
    inboxes: list[Any]
    outbox: Any
    lost: int = 0

    def replies(self, count: int) -> list[tuple[Any, int, Any]]:
        """``count`` replies; a worker's error report fails the test."""
        got = []
        for _ in range(count):
            try:
                reply = self.outbox.get(timeout=REPLY_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"a worker did not answer within {REPLY_TIMEOUT} s")
            if reply[0] == "error":
                pytest.fail(f"worker {reply[1]} failed: {reply[2]}")
            got.append(reply)
        return got

    def broadcast(self, message: tuple[Any, ...]) -> list[tuple[Any, int, Any]]:
        """Send ``message`` to every worker and collect one reply from each."""
        for inbox in self.inboxes:
            inbox.put(message)
        return self.replies(len(self.inboxes))

    def race(
        self, round_number: int, subject: Subject, provider: str, codes: Sequence[str]
    ) -> list[tuple[int, str]]:
        """Worker ``i`` redeems ``codes[i]``, all at once; ``(pid, outcome)`` per worker.

        Commits the workers lost to one another are added to ``lost``.
        """
        for inbox, code in zip(self.inboxes, codes, strict=True):
            inbox.put(
                (
                    "redeem",
                    round_number,
                    subject.kind.value,
                    subject.identifier,
                    provider,
                    code,
                    "new_line",
                )
            )
        replies = self.replies(len(codes))
        assert {round_number} == {reply[0] for reply in replies}
        self.lost += sum(lost for _, _, (_, lost) in replies)
        return [(pid, outcome) for _, pid, (outcome, _) in replies]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """``WORKERS`` processes started once for the whole module, stopped at its end."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.backends.workers", "sqlite3", "redis", "psycopg"])
    barrier = context.Barrier(WORKERS)
    outbox = context.Queue()
    inboxes = [context.Queue() for _ in range(WORKERS)]
    processes: list[multiprocessing.process.BaseProcess] = [
        context.Process(target=race_worker, args=(inbox, outbox, barrier), daemon=True)
        for inbox in inboxes
    ]
    for process in processes:
        process.start()
    yield Pool(processes=processes, inboxes=inboxes, outbox=outbox)
    for inbox in inboxes:
        inbox.put(None)
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
    for q in (*inboxes, outbox):
        q.close()
        q.join_thread()


@attrs.define
class Setup:
    """The parent's own issuer over the test's storage, with the pool pointed at the same URL."""

    storage: Storage
    issuer: CodeIssuer
    pool: Pool


@contextmanager
def shared(pool: Pool, url: str, keyring: Keyring, **settings: Any) -> Iterator[Setup]:
    """Migrate the storage, build the parent's issuer, and open the storage in every worker.

    The parent and every worker use ``Policy(**settings)``.
    """
    storage = storage_from_url(url)
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        migrate()
    issuer = CodeIssuer(
        storage, keyring=keyring, policy=Policy(**settings), clock=ManualClock(START)
    )
    try:
        ready = pool.broadcast(("open", url, keyring_spec(keyring), settings))
        pool.lost = 0
        assert WORKERS == len({pid for _, pid, _ in ready})
        yield Setup(storage=storage, issuer=issuer, pool=pool)
    finally:
        pool.broadcast(("close",))
        close_storage(storage)


def outcomes(results: list[tuple[int, str]]) -> Counter[str]:
    """How many workers reported each outcome."""
    return Counter(outcome for _, outcome in results)


def issue_round(setup: Setup, round_number: int) -> tuple[Subject, IssuedCode]:
    """A fresh subject and a code issued to it at one of the eight providers."""
    subject = subject_for(round_number)
    return subject, setup.issuer.issue(subject, PROVIDERS[round_number % len(PROVIDERS)])


def failures(setup: Setup, keyring: Keyring, subject: Subject, provider: str) -> int:
    """How many wrong attempts storage holds in the subject's failure log at ``provider``."""
    stored = setup.storage.load(keyring.subject_ref(identity_of(subject)))
    return len(stored.failure_log(provider).failures)


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_one_code_redeemed_by_many_processes_is_redeemed_once(
    pool: Pool, storage_url: UrlFactory, keyring: Keyring, backend: str
) -> None:
    """32 processes redeem one code, 200 rounds: one Redemption and 31 CodeAlreadyUsed each."""
    with shared(pool, storage_url(backend), keyring) as setup:
        for round_number in range(ROUNDS):
            subject, issued = issue_round(setup, round_number)
            results = pool.race(round_number, subject, issued.provider.id, [issued.code] * WORKERS)
            assert WORKERS == len({pid for pid, _ in results})
            assert {REDEEMED: 1, "code_already_used": WORKERS - 1} == outcomes(results)
            status = setup.issuer.status(subject, issued.code_id)
            assert (CodeState.REDEEMED, 0, "new_line") == (
                status.state,
                status.failed_attempts,
                status.redeemed_service_id,
            )
        assert 0 < pool.lost


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_concurrent_wrong_guesses_across_processes_lock_at_exactly_the_limit(
    pool: Pool, storage_url: UrlFactory, keyring: Keyring, backend: str
) -> None:
    """32 processes guess wrong at once: the code locks at exactly 5, and exactly 5 are logged.

    Only a guess compared with a live code is counted (security issue 12): once the code locked,
    the other guesses met no live code and are refused as WrongCode uncounted, where they used
    to fill the failure log (all 32 were logged).
    """
    settings = {"failure_budget": UNBOUNDED_BUDGET, "accept_guess_risk": True}
    with shared(pool, storage_url(backend), keyring, **settings) as setup:
        for round_number in range(GUESS_ROUNDS):
            subject, issued = issue_round(setup, round_number)
            provider = issued.provider.id
            results = pool.race(
                round_number, subject, provider, [other_code(issued.code)] * WORKERS
            )
            assert {"wrong_code": WORKERS} == outcomes(results)
            status = setup.issuer.status(subject, issued.code_id)
            assert (CodeState.LOCKED, 5, 0) == (
                status.state,
                status.failed_attempts,
                status.attempts_left,
            )
            assert 5 == failures(setup, keyring, subject, provider)
            with pytest.raises(CodeLocked):
                setup.issuer.redeem(subject, provider, issued.code, "new_line")
        assert 0 < pool.lost


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_concurrent_wrong_guesses_across_processes_stop_at_the_failure_budget(
    pool: Pool, storage_url: UrlFactory, keyring: Keyring, backend: str
) -> None:
    """Under a budget of 10, exactly 10 of 32 simultaneous guesses are counted; the rest refused.

    The code's own limit (50 here, 5 by default) is set above the budget: since only a guess
    compared with a live code counts (security issue 12), a code locked at 5 would leave nothing
    to count against, and the budget would never be reached.
    """
    settings = {"failure_budget": 10, "max_failed_attempts": 50, "accept_guess_risk": True}
    with shared(pool, storage_url(backend), keyring, **settings) as setup:
        for round_number in range(GUESS_ROUNDS):
            subject, issued = issue_round(setup, round_number)
            provider = issued.provider.id
            results = pool.race(
                round_number, subject, provider, [other_code(issued.code)] * WORKERS
            )
            assert {"wrong_code": 10, "failure_budget_exhausted": WORKERS - 10} == outcomes(results)
            status = setup.issuer.status(subject, issued.code_id)
            assert (CodeState.ACTIVE, 10) == (status.state, status.failed_attempts)
            assert 10 == failures(setup, keyring, subject, provider)
        assert 0 < pool.lost


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_right_code_racing_wrong_guesses_across_processes_is_consistent(
    pool: Pool, storage_url: UrlFactory, keyring: Keyring, backend: str
) -> None:
    """One right and 31 wrong at once: redeemed before the lock, or locked and never redeemed.

    Either way the failure log holds exactly the guesses the code counted: a guess that came
    after the code was redeemed or locked met no live code and is counted nowhere.
    """
    settings = {"failure_budget": UNBOUNDED_BUDGET, "accept_guess_risk": True}
    with shared(pool, storage_url(backend), keyring, **settings) as setup:
        seen = set()
        for round_number in range(GUESS_ROUNDS):
            subject, issued = issue_round(setup, round_number)
            provider = issued.provider.id
            codes = [other_code(issued.code)] * WORKERS
            codes[round_number % WORKERS] = issued.code
            results = pool.race(round_number, subject, provider, codes)
            counts = outcomes(results)
            status = setup.issuer.status(subject, issued.code_id)
            if counts[REDEEMED]:
                assert {REDEEMED: 1, "wrong_code": WORKERS - 1} == counts
                assert CodeState.REDEEMED == status.state
                assert status.failed_attempts < 5
            else:
                assert {"code_locked": 1, "wrong_code": WORKERS - 1} == counts
                assert (CodeState.LOCKED, 5) == (status.state, status.failed_attempts)
            assert status.failed_attempts == failures(setup, keyring, subject, provider)
            seen.add(status.state)
        assert seen <= {CodeState.REDEEMED, CodeState.LOCKED}


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_a_recovery_code_racing_wrong_guesses_across_processes_is_consistent(
    pool: Pool, storage_url: UrlFactory, keyring: Keyring, backend: str
) -> None:
    """Budget spent, a recovery code issued: one right and 31 wrong at once, redeemed or locked.

    While the budget is spent only the recovery code is compared, and it locks after 2 wrong
    guesses; once it is redeemed or locked, every other attempt is FailureBudgetExhausted, the
    right code included. The guesses count against the recovery code only: the budget's log
    stays at its 10 failures, and the ordinary code that spent it is never compared again.
    """
    settings = {"failure_budget": 10, "max_failed_attempts": 50, "accept_guess_risk": True}
    with shared(pool, storage_url(backend), keyring, **settings) as setup:
        seen = set()
        for round_number in range(GUESS_ROUNDS):
            subject, spent = issue_round(setup, round_number)
            provider = spent.provider.id
            for _ in range(10):
                with pytest.raises(WrongCode):
                    setup.issuer.redeem(subject, provider, other_code(spent.code), "new_line")
            recovery = setup.issuer.issue(subject, provider)
            codes = [other_code(recovery.code)] * WORKERS
            codes[round_number % WORKERS] = recovery.code
            results = pool.race(round_number, subject, provider, codes)
            counts = outcomes(results)
            status = setup.issuer.status(subject, recovery.code_id)
            if counts[REDEEMED]:
                guessed = counts["wrong_code"]
                # A Counter: a count of 0 equals a missing outcome.
                assert (
                    Counter(
                        {
                            REDEEMED: 1,
                            "wrong_code": guessed,
                            "failure_budget_exhausted": WORKERS - 1 - guessed,
                        }
                    )
                    == counts
                )
                assert (CodeState.REDEEMED, guessed) == (status.state, status.failed_attempts)
                assert guessed < 2
            else:
                assert {"wrong_code": 2, "failure_budget_exhausted": WORKERS - 2} == counts
                assert (CodeState.LOCKED, 2) == (status.state, status.failed_attempts)
            assert 10 == failures(setup, keyring, subject, provider)
            before = setup.issuer.status(subject, spent.code_id)
            assert (CodeState.ACTIVE, 10) == (before.state, before.failed_attempts)
            seen.add(status.state)
        assert seen <= {CodeState.REDEEMED, CodeState.LOCKED}
