"""The storage contract: what is stored, and the three operations every backend provides.

Storage knows no rule. All state that a rule reads or writes belongs to one subject (filed under
the keyed pseudonym ``subject_ref``) and is read as one ``SubjectSnapshot``. The core decides, and
the subject's whole new state goes back as one ``Commit`` that the backend applies only if nobody
else committed for that subject in between: compare-and-set on the pair (``incarnation``,
``version``). That is the whole concurrency story: a code is redeemed at most once because two
redeemers cannot both commit on one token. Each commit is one statement (SQL) or one script
(Redis), so it is atomic and durable by the backend's own guarantees.

The token never repeats for a subject. ``version`` counts commits from 1, and starts again when a
subject is deleted (by ``purge``, or by a backend's own expiry) and created anew; ``incarnation``
is a random id chosen when the subject is created, so a request that loaded the subject before it
was deleted can never commit over its new life, even once the versions meet again.

Nothing stored is secret or personal: codes are HMAC digests, subjects are keyed pseudonyms, the
subject's identity is sealed (encrypted and authenticated) under a key the storage never sees, and
mobile numbers, recipients and request ids are keyed digests.

Two capabilities are optional. ``PurgeReporting`` (``AsyncPurgeReporting`` for asyncio): a backend
that has it also offers ``purge_snapshots``, which deletes exactly what ``purge`` deletes and
returns the deleted subjects' snapshots, so that the issuer can tell its event sinks which codes
expired unused (``events.CodeExpiry``). ``SubjectScanning`` (``AsyncSubjectScanning``): a backend
that has it lists every stored subject in pages, which is how ``CodeIssuer.move_subjects`` finds
the subjects still filed under an old pseudonym key. Every backend of this package has both; a
backend without them still works everywhere: its purges report no expired codes, and its subjects
move to a new pseudonym key only when they are next written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Self, runtime_checkable

import attrs

from telecard_auth._core.model import CodeState

__all__ = [
    "AsyncPurgeReporting",
    "AsyncStorage",
    "AsyncStorageBackend",
    "AsyncSubjectScanning",
    "CodeRecord",
    "Commit",
    "FailureLog",
    "PurgeReporting",
    "Storage",
    "StorageBackend",
    "SubjectScanning",
    "SubjectSnapshot",
]


@attrs.frozen(kw_only=True)
class CodeRecord:
    """One issued code as stored: its digest, never the code.

    ``state`` is one of ``ACTIVE``, ``REDEEMED``, ``REVOKED``, ``LOCKED`` and ``SUPERSEDED``;
    expiry is derived from ``expires_at`` and the time of asking, never stored. ``digest``,
    ``msisdn_ref``, ``recipient_ref``, ``request_ref`` and ``request_inputs`` are keyed digests
    under the HMAC key ``key_id``, bound to this record's subject and provider. A redemption made
    with a request id stores that id's digest (``request_ref``) and one of the request's other
    inputs (``request_inputs``), so a retry is recognised; ``receipt_key_id`` names the key that
    signed its receipt, so a retry gets the very same receipt. ``recovery`` marks a code issued
    while the subject's failure budget at the provider was spent (see ``Policy.recovery_codes``).
    """

    code_id: str
    provider_id: str
    key_id: str
    digest: bytes
    issued_at: datetime
    expires_at: datetime
    service_id: str | None = None
    msisdn_ref: str | None = None
    recipient_ref: str | None = None
    state: CodeState = CodeState.ACTIVE
    failed_attempts: int = 0
    finished_at: datetime | None = None
    redeemed_service_id: str | None = None
    request_ref: str | None = None
    request_inputs: str | None = None
    receipt_key_id: str | None = None
    recovery: bool = False


@attrs.frozen(kw_only=True)
class FailureLog:
    """The recent wrong attempts of one subject at one provider, oldest first.

    It is kept per subject and provider, not per code, so issuing a new code does not reset it.
    ``recoveries`` are the times recovery codes were issued there (see ``Policy.recovery_codes``).
    """

    provider_id: str
    failures: tuple[datetime, ...] = ()
    recoveries: tuple[datetime, ...] = ()


@attrs.frozen(kw_only=True)
class SubjectSnapshot:
    """Everything stored for one subject, as of one (``incarnation``, ``version``).

    ``version`` is 0 and ``incarnation`` empty for a subject with nothing stored; ``version`` grows
    by one with each commit. ``keep_until`` is the value of the last commit, for backends that read
    it back cheaply, and ``None`` otherwise; the rules never depend on it. ``identity`` and
    ``moved`` are what the last commit stored, kept as they came: the subject's identity sealed
    under the pseudonym key that files it, and whether the subject was moved to a newer pseudonym
    key (its state here is then frozen, and the subject lives under its new ``subject_ref``).
    """

    subject_ref: str
    version: int = 0
    incarnation: str = ""
    codes: tuple[CodeRecord, ...] = ()
    failure_logs: tuple[FailureLog, ...] = ()
    keep_until: datetime | None = None
    identity: str | None = None
    moved: bool = False

    def failure_log(self, provider_id: str) -> FailureLog:
        """The failure log for ``provider_id`` (empty if there is none)."""
        for log in self.failure_logs:
            if log.provider_id == provider_id:
                return log
        return FailureLog(provider_id=provider_id)


@attrs.frozen(kw_only=True)
class Commit:
    """The complete new state of one subject, valid only on top of its compare-and-set token.

    The token is (``incarnation``, ``expected_version``). With ``expected_version`` 0 the commit
    creates the subject, which must have nothing stored, and ``incarnation`` is the new subject's
    own (random, never used before for it); otherwise the stored incarnation and version must both
    equal the commit's. ``codes`` and ``failure_logs`` replace everything stored for the subject:
    a record left out is deleted (the core drops records past their retention this way).
    ``identity`` and ``moved`` are stored as they are, for ``load`` to give back.

    ``written_at`` is the time of the decision and ``keep_until`` the moment after which nothing of
    the subject matters any more; ``purge`` removes subjects past it, and backends with native
    expiry expire the subject's data ``keep_until - written_at`` after writing it.
    ``stored_keep_until`` is the snapshot's own ``keep_until``: when the two are equal a backend
    may leave the stored value (and any index on it) untouched, since the compare-and-set proves
    the stored row is that snapshot's.
    """

    subject_ref: str
    expected_version: int
    incarnation: str
    codes: tuple[CodeRecord, ...]
    failure_logs: tuple[FailureLog, ...]
    written_at: datetime
    keep_until: datetime
    stored_keep_until: datetime | None = None
    identity: str | None = None
    moved: bool = False


@runtime_checkable
class Storage(Protocol):
    """What a backend provides. Prove an implementation with the contract test suite.

    Both operations may raise ``StorageError`` (with the driver's exception chained) and nothing
    else; a failed ``commit`` must leave nothing of the change behind.
    """

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Everything stored for ``subject_ref``, read consistently at one version.

        Atomicity: the records and logs returned all belong to the returned ``version``; a
        commit that lands halfway through the read is either wholly visible or not at all.
        """
        ...

    def commit(self, change: Commit) -> bool:
        """Store ``change`` if and only if the subject still has the change's token.

        Atomicity: compare-and-set. Either the token matches and the subject's state becomes
        exactly the change, at version ``expected_version + 1``, durably, before this returns
        ``True``; or nothing changes and it returns ``False``. The token matches when
        ``expected_version`` is 0 and nothing is stored for the subject (the change's
        ``incarnation`` is then stored with it), or when the stored version equals
        ``expected_version`` and the stored incarnation equals ``change.incarnation``. Under any
        number of concurrent callers (threads, processes, machines) at most one commit succeeds
        per token.
        """
        ...

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` subjects whose ``keep_until`` is at or before ``now``.

        Returns how many were deleted; call again until it returns 0. A subject whose state is
        committed again while a purge runs is never deleted with its new state: a commit either
        lands first (and moves ``keep_until`` on) or fails its compare-and-set and starts over
        from an empty subject. Backends whose data expires by itself may return 0; a subject
        they expire is gone exactly as a purged one is, and a later creation of it takes a new
        incarnation.

        A backend may also offer ``purge_snapshots`` (``PurgeReporting``): the same deletion,
        returning what was deleted.
        """
        ...


@runtime_checkable
class AsyncStorage(Protocol):
    """``Storage`` for asyncio: the same three operations with the same contracts, awaited.

    Prove an implementation with ``telecard_auth.testing.AsyncStorageContract``.
    """

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``Storage.load``."""
        ...

    async def commit(self, change: Commit) -> bool:
        """See ``Storage.commit``."""
        ...

    async def purge(self, now: datetime, limit: int) -> int:
        """See ``Storage.purge``."""
        ...


@runtime_checkable
class PurgeReporting(Protocol):
    """An optional capability of a ``Storage``: a purge that returns what it deleted.

    A ``Storage`` that also has ``purge_snapshots`` lets ``CodeIssuer.purge`` report every code
    that expired unused (``events.CodeExpiry``) to the issuer's event sinks. The issuer uses it
    only when it has sinks; otherwise, and for a storage without it, it calls ``purge``.
    """

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """Delete exactly as ``purge`` does, and return the snapshots of the subjects deleted.

        The same subjects (``keep_until`` at or before ``now``), the same bounded batch of at most
        ``limit``, and the same guarantee: a subject committed concurrently is never deleted with
        its new state. Each snapshot is the subject's state as it was when deleted, equal to what
        ``load`` returned just before (``keep_until`` may be ``None`` as in ``load``); the list
        has one snapshot per deleted subject, in no particular order, so its length is what
        ``purge`` would have returned. Call again until it returns an empty list. May raise
        ``StorageError`` and nothing else.
        """
        ...


@runtime_checkable
class AsyncPurgeReporting(Protocol):
    """``PurgeReporting`` for an ``AsyncStorage``: ``purge_snapshots``, awaited."""

    async def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``PurgeReporting.purge_snapshots``."""
        ...


@runtime_checkable
class SubjectScanning(Protocol):
    """An optional capability of a ``Storage``: every stored subject, a page at a time.

    ``CodeIssuer.move_subjects`` uses it to find the subjects still filed under an old pseudonym
    key once a new one is current (see the rotation procedure in the documentation).
    """

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """A page of about ``limit`` stored subjects, and where the next page starts (``None``:
        no more).

        ``after`` is ``None`` for the first page and the returned cursor for the next ones; a
        page may hold somewhat more or fewer than ``limit`` (a Redis ``SCAN`` decides its own
        batches), even none before the walk ends. Every
        subject stored for the whole walk is returned at least once; one created or deleted
        during the walk may or may not be. Each snapshot is what ``load`` would return. May raise
        ``StorageError`` and nothing else.
        """
        ...


@runtime_checkable
class AsyncSubjectScanning(Protocol):
    """``SubjectScanning`` for an ``AsyncStorage``: ``scan_subjects``, awaited."""

    async def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``SubjectScanning.scan_subjects``."""
        ...


@runtime_checkable
class StorageBackend(Storage, PurgeReporting, SubjectScanning, Protocol):
    """What ``storage_from_url`` builds, and every backend of this package is.

    A ``Storage`` with ``purge_snapshots`` and ``scan_subjects``, plus the life cycle:
    ``migrate()`` creates or upgrades whatever the backend keeps (a schema, loaded scripts;
    nothing for memory), and ``close()`` releases connections. Used as a context manager, it
    closes on leaving the block. Code written against this protocol runs on every URL,
    ``memory://`` included. A storage of one's own needs only ``Storage``.
    """

    def migrate(self) -> None:
        """Create or upgrade what the backend needs; safe to call on every start."""
        ...

    def close(self) -> None:
        """Release the backend's connections; the storage is not used afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class AsyncStorageBackend(AsyncStorage, AsyncPurgeReporting, AsyncSubjectScanning, Protocol):
    """``StorageBackend`` for asyncio: what ``async_storage_from_url`` builds."""

    async def migrate(self) -> None:
        """See ``StorageBackend.migrate``."""
        ...

    async def close(self) -> None:
        """See ``StorageBackend.close``."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
