"""``AsyncStorageContract``: the whole contract on an ``AsyncStorage``, and races of tasks."""

# Test code: assert is the point, and asserts read `expected == actual`.
# ruff: noqa: S101, SIM300

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from functools import partial

import attrs
import pytest

from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import (
    CodeAlreadyUsed,
    CodeExpired,
    ConfigurationError,
    TelecardAuthError,
    WrongCode,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import CodeState, Redemption, SignedRedemption, Subject
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._issuer import AsyncCodeIssuer, CodeIssuer
from telecard_auth._storage.protocol import AsyncStorage, Commit, SubjectSnapshot
from telecard_auth.events import EventSink
from telecard_auth.testing._contract import StorageContract
from telecard_auth.testing._helpers import (
    _MICROSECOND,
    PROVIDER,
    SERVICE,
    THREADS,
    IssuerFactory,
    LostCommits,
    _citizen,
    _filed,
    _kinds,
    _other_code,
)
from telecard_auth.testing._portal import BlockingIssuer, BlockingStorage, Portal, blocking_storage


class _AsyncCounting:
    """``_Counting`` for an ``AsyncStorage``: after each load it lets the other tasks run."""

    def __init__(self, inner: AsyncStorage, lost: LostCommits) -> None:
        self.inner = inner
        self.lost = lost

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        snapshot = await self.inner.load(subject_ref)
        await asyncio.sleep(0)
        return snapshot

    async def commit(self, change: Commit) -> bool:
        landed = await self.inner.commit(change)
        if not landed:
            self.lost.add()
        return landed

    async def purge(self, now: datetime, limit: int) -> int:
        return await self.inner.purge(now, limit)


async def _gathered(actions: list[Callable[[], Awaitable[object]]]) -> list[object]:
    """Run the actions as concurrent tasks; each gives its result or the error it raised.

    As in ``_together``, errors other than ``TelecardAuthError`` propagate and fail the test.
    """

    async def run(action: Callable[[], Awaitable[object]]) -> object:
        try:
            return await action()
        except TelecardAuthError as error:
            return error

    return list(await asyncio.gather(*(run(action) for action in actions)))


class AsyncStorageContract(StorageContract):
    """Every test an ``AsyncStorage`` must pass. Subclass it and override ``async_storage``.

    The tests of ``StorageContract`` run on the async storage through ``BlockingStorage``, and
    through ``BlockingIssuer`` over an ``AsyncCodeIssuer``; the tests below await it directly.

    ::

        class TestAsyncRedisStorage(AsyncStorageContract):
            @pytest.fixture
            def async_storage(self, portal):
                storage = AsyncRedisStorage("redis://127.0.0.1:6379/0", prefix="test")
                portal.call(storage.migrate)
                yield storage
                portal.call(storage.close)
    """

    # --- fixtures: override async_storage ----------------------------------------------------

    @pytest.fixture
    def async_storage(self) -> AsyncStorage:
        """The async storage under test, fresh and empty: every subclass overrides this fixture."""
        pytest.fail(
            f"{type(self).__name__} must override the 'async_storage' fixture of"
            " AsyncStorageContract",
            pytrace=False,
        )

    @pytest.fixture
    def portal(self) -> Iterator[Portal]:
        """The event loop of this test, in a background thread; see ``Portal``."""
        with Portal() as running:
            yield running

    @pytest.fixture
    def storage(self, async_storage: AsyncStorage, portal: Portal) -> BlockingStorage:
        """The async storage under test behind a blocking facade, for the inherited tests."""
        return blocking_storage(async_storage, portal)

    @pytest.fixture
    def make_issuer(
        self, async_storage: AsyncStorage, portal: Portal, keyring: Keyring, clock: ManualClock
    ) -> IssuerFactory[BlockingIssuer]:
        """Builds ``AsyncCodeIssuer``s over the async storage, behind blocking facades."""
        ring = keyring

        def build(
            policy: Policy,
            lost: LostCommits | None = None,
            *,
            signer: ReceiptSigner | None = None,
            events: Sequence[EventSink] = (),
            keyring: Keyring | None = None,
        ) -> BlockingIssuer:
            inner = async_storage if lost is None else _AsyncCounting(async_storage, lost)
            issuer = AsyncCodeIssuer(
                inner,
                keyring=ring if keyring is None else keyring,
                policy=policy,
                clock=clock,
                signer=signer,
                events=events,
            )
            return BlockingIssuer(issuer, portal)

        return build

    @pytest.fixture
    def issuer(self, make_issuer: IssuerFactory[BlockingIssuer], policy: Policy) -> BlockingIssuer:
        """An ``AsyncCodeIssuer`` over the async storage, behind a blocking facade."""
        return make_issuer(policy)

    # --- asyncio itself ----------------------------------------------------------------------

    def test_each_issuer_refuses_the_other_kind_of_storage(
        self, async_storage: AsyncStorage, storage: BlockingStorage, keyring: Keyring
    ) -> None:
        """AsyncCodeIssuer refuses a synchronous Storage, and CodeIssuer this AsyncStorage."""
        # The issuers are typed to refuse these; the test is that they refuse them when run, too.
        with pytest.raises(ConfigurationError):
            AsyncCodeIssuer(storage, keyring=keyring)  # type: ignore[call-overload]
        with pytest.raises(ConfigurationError):
            CodeIssuer(async_storage, keyring=keyring)  # type: ignore[call-overload]

    def test_manual_clock_drives_async_expiry(
        self, issuer: BlockingIssuer, clock: ManualClock, subject: Subject, portal: Portal
    ) -> None:
        """AsyncCodeIssuer reads the ManualClock: a code is good 1 µs before its TTL, not at it."""
        native = issuer.async_issuer
        ends = clock.now() + native.policy.ttl_for(SERVICE)
        early = portal.call(native.issue, subject, PROVIDER, service=SERVICE)
        late = portal.call(native.issue, subject, PROVIDER, service=SERVICE)
        assert (ends, ends) == (early.expires_at, late.expires_at)
        clock.set(early.expires_at - _MICROSECOND)
        redemption = portal.call(native.redeem, subject, PROVIDER, early.code, SERVICE)
        assert (early.code_id, clock.now()) == (redemption.code_id, redemption.redeemed_at)
        clock.set(late.expires_at)
        assert CodeState.EXPIRED == portal.call(native.status, subject, late.code_id).state
        with pytest.raises(CodeExpired):
            portal.call(native.redeem, subject, PROVIDER, late.code, SERVICE)

    def test_tasks_redeem_a_code_once(
        self,
        async_storage: AsyncStorage,
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
        portal: Portal,
    ) -> None:
        """32 tasks on one loop redeem one code together, race_rounds times: one wins each time."""
        lost = LostCommits()
        counting = _AsyncCounting(async_storage, lost)
        issuer = AsyncCodeIssuer(counting, keyring=keyring, policy=policy, clock=clock)

        async def race(round_: int) -> tuple[Counter[type], CodeState, int]:
            subject = _citizen(round_)
            issued = await issuer.issue(subject, PROVIDER)
            redeem = partial(issuer.redeem, subject, PROVIDER, issued.code, SERVICE)
            outcomes = await _gathered([redeem] * THREADS)
            (record,) = (await async_storage.load(_filed(keyring, subject))).codes
            return _kinds(outcomes), record.state, record.failed_attempts

        expected = ({Redemption: 1, CodeAlreadyUsed: THREADS - 1}, CodeState.REDEEMED, 0)
        for round_ in range(self.race_rounds):
            assert expected == portal.call(race, round_)
        assert 0 < lost.count

    def test_tasks_retrying_one_request_get_one_receipt(
        self,
        async_storage: AsyncStorage,
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
        portal: Portal,
    ) -> None:
        """32 tasks retry one idempotent redemption together: one receipt, identical for all."""
        lost = LostCommits()
        counting = _AsyncCounting(async_storage, lost)
        signer = ReceiptSigner.generate()
        issuer = AsyncCodeIssuer(
            counting, keyring=keyring, policy=policy, clock=clock, signer=signer
        )

        async def race(round_: int) -> tuple[Counter[type], int, CodeState]:
            subject = _citizen(round_)
            issued = await issuer.issue(subject, PROVIDER)
            retry = partial(
                issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=f"r{round_}"
            )
            outcomes = await _gathered([retry] * THREADS)
            (record,) = (await async_storage.load(_filed(keyring, subject))).codes
            return _kinds(outcomes), len(set(outcomes)), record.state

        for round_ in range(max(1, self.race_rounds // 10)):
            assert ({SignedRedemption: THREADS}, 1, CodeState.REDEEMED) == portal.call(race, round_)
        assert 0 < lost.count

    def test_tasks_guessing_wrong_lock_the_code_at_exactly_the_limit(
        self,
        async_storage: AsyncStorage,
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
        portal: Portal,
    ) -> None:
        """32 wrong guesses as tasks at once with a limit of 5: 5 attempts counted, code LOCKED."""
        policy = attrs.evolve(
            policy, max_failed_attempts=5, failure_budget=1000, accept_guess_risk=True
        )
        lost = LostCommits()
        counting = _AsyncCounting(async_storage, lost)
        issuer = AsyncCodeIssuer(counting, keyring=keyring, policy=policy, clock=clock)

        async def race(round_: int) -> tuple[Counter[type], CodeState, int, int]:
            subject = _citizen(round_)
            issued = await issuer.issue(subject, PROVIDER)
            wrong = _other_code(policy, issued.code)
            guess = partial(issuer.redeem, subject, PROVIDER, wrong, SERVICE)
            outcomes = await _gathered([guess] * THREADS)
            snapshot = await async_storage.load(_filed(keyring, subject))
            (record,) = snapshot.codes
            failures = snapshot.failure_log(PROVIDER).failures
            return _kinds(outcomes), record.state, record.failed_attempts, len(failures)

        expected = ({WrongCode: THREADS}, CodeState.LOCKED, 5, 5)
        for round_ in range(max(1, self.race_rounds // 20)):
            assert expected == portal.call(race, round_)
        assert 0 < lost.count
