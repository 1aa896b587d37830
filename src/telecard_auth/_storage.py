"""The storage contract: what is stored, and the three operations every backend provides.

Storage knows no rule. All state that a rule reads or writes belongs to one subject (identified by
the keyed pseudonym ``subject_ref``) and is read as one ``SubjectSnapshot``. The core decides, and
the subject's whole new state goes back as one ``Commit`` that the backend applies only if nobody
else committed for that subject in between (compare-and-set on a per-subject version). That is the
whole concurrency story: a code is redeemed at most once because two redeemers cannot both commit
on one version. Each commit is one statement (SQL) or one script (Redis), so it is atomic and
durable by the backend's own guarantees.

Nothing stored is secret or personal: codes are HMAC digests, subjects, mobile numbers and
recipients are keyed pseudonyms.

One capability is optional: ``PurgeReporting`` (``AsyncPurgeReporting`` for asyncio). A backend
that has it also offers ``purge_snapshots``, which deletes exactly what ``purge`` deletes and
returns the deleted subjects' snapshots, so that the issuer can tell its event sinks which codes
expired unused (``events.CodeExpired``). Every backend of this package has it; a backend without it
still works everywhere, and its purges simply report no expired codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Self, runtime_checkable

import attrs

from telecard_auth._model import CodeState

__all__ = [
    "AsyncPurgeReporting",
    "AsyncStorage",
    "AsyncStorageBackend",
    "CodeRecord",
    "Commit",
    "FailureLog",
    "PurgeReporting",
    "Storage",
    "StorageBackend",
    "SubjectSnapshot",
]


@attrs.frozen(kw_only=True)
class CodeRecord:
    """One issued code as stored: its digest, never the code.

    ``state`` is one of ``ACTIVE``, ``REDEEMED``, ``REVOKED``, ``LOCKED`` and ``SUPERSEDED``;
    expiry is derived from ``expires_at`` and the time of asking, never stored. A redemption
    made with a request id stores that id's keyed pseudonym (``request_ref``) and one of the
    request's other inputs (``request_inputs``), so a retry is recognised; ``receipt_key_id``
    names the key that signed its receipt, so a retry gets the very same receipt.
    """

    code_id: str
    subject_ref: str
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


@attrs.frozen(kw_only=True)
class FailureLog:
    """The recent wrong attempts of one subject at one provider, oldest first.

    It is kept per subject and provider, not per code, so issuing a new code does not reset it.
    """

    provider_id: str
    failures: tuple[datetime, ...] = ()


@attrs.frozen(kw_only=True)
class SubjectSnapshot:
    """Everything stored for one subject, as of one ``version``.

    ``version`` is 0 for a subject with nothing stored and grows by one with each commit.
    ``keep_until`` is the value of the last commit, for backends that read it back cheaply, and
    ``None`` otherwise; the rules never depend on it.
    """

    subject_ref: str
    version: int = 0
    codes: tuple[CodeRecord, ...] = ()
    failure_logs: tuple[FailureLog, ...] = ()
    keep_until: datetime | None = None

    def failure_log(self, provider_id: str) -> FailureLog:
        """The failure log for ``provider_id`` (empty if there is none)."""
        for log in self.failure_logs:
            if log.provider_id == provider_id:
                return log
        return FailureLog(provider_id=provider_id)


@attrs.frozen(kw_only=True)
class Commit:
    """The complete new state of one subject, valid only on top of ``expected_version``.

    ``codes`` and ``failure_logs`` replace everything stored for the subject: a record left out is
    deleted (the core drops records past their retention this way). ``written_at`` is the time of
    the decision and ``keep_until`` the moment after which nothing of the subject matters any more;
    ``purge`` removes subjects past it, and backends with native expiry expire the subject's data
    ``keep_until - written_at`` after writing it. ``stored_keep_until`` is the snapshot's own
    ``keep_until``: when the two are equal a backend may leave the stored value (and any index on
    it) untouched, since the compare-and-set proves the stored row is that snapshot's.
    """

    subject_ref: str
    expected_version: int
    codes: tuple[CodeRecord, ...]
    failure_logs: tuple[FailureLog, ...]
    written_at: datetime
    keep_until: datetime
    stored_keep_until: datetime | None = None


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
        """Store ``change`` if and only if the subject is still at ``change.expected_version``.

        Atomicity: compare-and-set. Either the stored version equals ``expected_version`` (0 for a
        subject with nothing stored) and the subject's state becomes exactly the change, at version
        ``expected_version + 1``, durably, before this returns ``True``; or nothing changes and it
        returns ``False``. Under any number of concurrent callers (threads, processes, machines)
        at most one commit succeeds per version.
        """
        ...

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` subjects whose ``keep_until`` is at or before ``now``.

        Returns how many were deleted; call again until it returns 0. A subject whose state is
        committed again while a purge runs is never deleted with its new state: a commit either
        lands first (and moves ``keep_until`` on) or fails its compare-and-set and starts over
        from an empty subject. Backends whose data expires by itself may return 0.

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
    that expired unused (``events.CodeExpired``) to the issuer's event sinks. The issuer uses it
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
class StorageBackend(Storage, PurgeReporting, Protocol):
    """What ``storage_from_url`` builds, and every backend of this package is.

    A ``Storage`` with ``purge_snapshots``, plus the life cycle: ``migrate()`` creates or upgrades
    whatever the backend keeps (a schema, loaded scripts; nothing for memory), and ``close()``
    releases connections. Used as a context manager, it closes on leaving the block. Code written
    against this protocol runs on every URL, ``memory://`` included. A storage of one's own needs
    only ``Storage``.
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
class AsyncStorageBackend(AsyncStorage, AsyncPurgeReporting, Protocol):
    """``StorageBackend`` for asyncio: what ``async_storage_from_url`` builds."""

    async def migrate(self) -> None:
        """See ``StorageBackend.migrate``."""
        ...

    async def close(self) -> None:
        """See ``StorageBackend.close``."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
