"""The issuer's purge and the ``CodeExpired`` events it reports, over hand-written storages.

The contract suite proves the report on every backend of this package; these tests pin down how
the issuer chooses between ``purge`` and ``purge_snapshots``, and what it does when a storage
without the capability, with a broken one, or with a failing sink is plugged in.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from tests.helpers import FOUR_HOURS, ONE_MICROSECOND

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    AsyncPurgeReporting,
    AsyncStorage,
    CodeIssuer,
    Commit,
    ConfigurationError,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    PurgeReporting,
    Storage,
    StorageError,
    Subject,
    SubjectSnapshot,
    events,
)
from telecard_auth._core.requests import identity_of

#: Past a code's expiry, its record's retention and its subject's failure window.
GONE = FOUR_HOURS + Policy().retention + Policy().failure_window


class PlainStorage:
    """A hand-written storage with the three required operations only (no purge_snapshots)."""

    def __init__(self) -> None:
        self.inner = MemoryStorage()

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Delegate."""
        return self.inner.load(subject_ref)

    def commit(self, change: Commit) -> bool:
        """Delegate."""
        return self.inner.commit(change)

    def purge(self, now: datetime, limit: int) -> int:
        """Delegate."""
        return self.inner.purge(now, limit)


class CountingStorage(PlainStorage):
    """A storage with both purges that records which one the issuer called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def purge(self, now: datetime, limit: int) -> int:
        """Record the call, then purge."""
        self.calls.append("purge")
        return self.inner.purge(now, limit)

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """Record the call, then purge and report."""
        self.calls.append("purge_snapshots")
        return self.inner.purge_snapshots(now, limit)


class BrokenReporting(PlainStorage):
    """A storage whose purge_snapshots raises, or returns what is not a list of snapshots."""

    def __init__(self, returns: object) -> None:
        super().__init__()
        self.returns = returns

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """Fail as told."""
        if isinstance(self.returns, Exception):
            raise self.returns
        return self.returns  # type: ignore[return-value]


class AwaitedReporting(PlainStorage):
    """A synchronous storage whose purge_snapshots is, wrongly, a coroutine function."""

    async def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """A coroutine where a plain call is expected."""
        return []


class PlainReportingAsync:
    """An async storage whose purge_snapshots is, wrongly, a plain function."""

    def __init__(self) -> None:
        self.inner = AsyncMemoryStorage()

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """Delegate."""
        return await self.inner.load(subject_ref)

    async def commit(self, change: Commit) -> bool:
        """Delegate."""
        return await self.inner.commit(change)

    async def purge(self, now: datetime, limit: int) -> int:
        """Delegate."""
        return await self.inner.purge(now, limit)

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """A plain call where a coroutine is expected."""
        return []


def issuer_over(
    storage: Storage, keyring: Keyring, clock: ManualClock, *sinks: events.EventSink
) -> CodeIssuer:
    """A default-policy issuer over ``storage`` that tells ``sinks``."""
    return CodeIssuer(storage, keyring=keyring, clock=clock, events=list(sinks))


def test_every_storage_of_the_package_reports_its_purges() -> None:
    """The memory storages have the optional capability, of the right flavour each."""
    assert isinstance(MemoryStorage(), PurgeReporting)
    assert isinstance(AsyncMemoryStorage(), AsyncPurgeReporting)
    assert not isinstance(PlainStorage(), PurgeReporting)


def test_purge_reports_an_unused_code_once_its_subject_is_deleted(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """One unused code: one CodeExpired at purge, with its audit_ref, expiry and the purge time."""
    sink = events.CollectingSink()
    issuer = issuer_over(MemoryStorage(), keyring, clock, sink)
    issued = issuer.issue(citizen, "stc")
    sink.clear()
    clock.advance(seconds=GONE.total_seconds())
    assert (1, 0) == (issuer.purge(), issuer.purge())
    (event,) = sink.events
    assert isinstance(event, events.CodeExpiry)
    identity = identity_of(citizen)
    assert (keyring.audit_ref(identity), issued.code_id, "stc", issued.expires_at, clock.now()) == (
        event.audit_ref,
        event.code_id,
        event.provider_id,
        event.expired_at,
        event.at,
    )
    assert keyring.subject_ref(identity) != event.audit_ref


def test_without_sinks_the_issuer_calls_plain_purge(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """No sink, nothing to report: the storage's purge is called, never purge_snapshots."""
    storage = CountingStorage()
    issuer = issuer_over(storage, keyring, clock)
    issuer.issue(citizen, "stc")
    clock.advance(seconds=GONE.total_seconds())
    assert (1, ["purge"]) == (issuer.purge(), storage.calls)
    reporting = issuer_over(storage, keyring, clock, events.CollectingSink())
    assert (0, ["purge", "purge_snapshots"]) == (reporting.purge(), storage.calls)


def test_a_storage_without_purge_snapshots_purges_and_reports_nothing(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """An integrator's storage without the capability works as before: deleted, not reported."""
    storage = PlainStorage()
    sink = events.CollectingSink()
    issuer = issuer_over(storage, keyring, clock, sink)
    issuer.issue(citizen, "stc")
    clock.advance(seconds=GONE.total_seconds())
    assert [1, 0] == [issuer.purge(), issuer.purge()]
    assert [] == list(storage.inner.snapshots())
    assert [events.CodeIssuance] == [type(event) for event in sink.events]


@pytest.mark.parametrize(
    "returns",
    [RuntimeError("connection reset"), None, 3, [object()], ("snapshot",)],
    ids=["raises", "none", "a-count", "not-snapshots", "not-snapshots-tuple"],
)
def test_a_broken_purge_snapshots_is_a_storage_error(
    keyring: Keyring, clock: ManualClock, returns: object
) -> None:
    """purge_snapshots raising, or returning what is not snapshots, surfaces as StorageError."""
    issuer = issuer_over(BrokenReporting(returns), keyring, clock, events.CollectingSink())
    with pytest.raises(StorageError) as caught:
        issuer.purge()
    if isinstance(returns, Exception):
        assert caught.value.__cause__ is returns


def test_purge_snapshots_of_the_wrong_flavour_are_refused(keyring: Keyring) -> None:
    """A storage whose purge_snapshots is not of its issuer's flavour is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        CodeIssuer(AwaitedReporting(), keyring=keyring)
    with pytest.raises(ConfigurationError):
        AsyncCodeIssuer(PlainReportingAsync(), keyring=keyring)


def test_a_failing_sink_never_undoes_a_purge(
    keyring: Keyring, clock: ManualClock, citizen: Subject, caplog: pytest.LogCaptureFixture
) -> None:
    """A sink that raises on CodeExpired: the subject is purged all the same, the loss logged."""

    class Broken:
        def emit(self, event: events.AuditEvent) -> None:
            if isinstance(event, events.CodeExpiry):
                raise RuntimeError("the sink is down")

    storage = MemoryStorage()
    sink = events.CollectingSink()
    issuer = issuer_over(storage, keyring, clock, Broken(), sink)
    issuer.issue(citizen, "stc")
    clock.advance(seconds=GONE.total_seconds())
    with caplog.at_level(logging.WARNING, logger=events.EVENTS_LOGGER):
        assert 1 == issuer.purge()
    assert [] == list(storage.snapshots())
    assert 1 == len(sink.of_type(events.CodeExpiry))
    assert "code_expired" in caplog.text


def test_a_code_expiring_at_the_purge_is_reported_and_a_live_one_is_not(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Only codes expired at the purge's time are reported, whatever the storage deletes.

    A hand-written storage may delete a subject earlier than the issuer would; a code still
    valid then has not expired, so no event may say it did. Expiry is at ``expires_at`` itself.
    """

    class Eager(MemoryStorage):
        def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
            return super().purge_snapshots(now + timedelta(days=30), limit)

    sink = events.CollectingSink()
    issuer = issuer_over(Eager(), keyring, clock, sink)
    ending = issuer.issue(citizen, "stc")
    clock.advance(microseconds=1)
    live = issuer.issue(Subject.citizen("1110704341"), "stc")
    clock.set(ending.expires_at)
    assert live.expires_at - ONE_MICROSECOND == clock.now()
    sink.clear()
    assert 2 == issuer.purge()
    assert [ending.code_id] == [event.code_id for event in sink.of_type(events.CodeExpiry)]


def test_async_issuer_reports_like_the_sync_one(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """AsyncCodeIssuer.purge reports the same events over an async storage with the capability."""
    sink = events.CollectingSink()
    storage: AsyncStorage = AsyncMemoryStorage()
    issuer = AsyncCodeIssuer(storage, keyring=keyring, clock=clock, events=[sink])

    async def scenario() -> tuple[list[int], str]:
        issued = await issuer.issue(citizen, "stc")
        clock.advance(seconds=GONE.total_seconds())
        return [await issuer.purge(), await issuer.purge()], issued.code_id

    counts, code_id = asyncio.run(scenario())
    assert [1, 0] == counts
    assert [code_id] == [event.code_id for event in sink.of_type(events.CodeExpiry)]
