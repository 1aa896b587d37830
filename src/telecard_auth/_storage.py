"""The storage contract: what is stored, and the two operations every backend provides.

Storage knows no rule. All state that a rule reads or writes belongs to one subject (identified by
the keyed pseudonym ``subject_ref``) and is read as one ``SubjectSnapshot``. The core decides, and
the change goes back as one ``Commit`` that the backend applies only if nobody else committed for
that subject in between (compare-and-set on a per-subject version). That is the whole concurrency
story: a code is redeemed at most once because two redeemers cannot both commit on one version.

Nothing stored is secret or personal: codes are HMAC digests, subjects, mobile numbers and
recipients are keyed pseudonyms.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from telecard_auth._model import CodeState

__all__ = ["CodeRecord", "Commit", "FailureLog", "Storage", "SubjectSnapshot"]


@attrs.frozen(kw_only=True)
class CodeRecord:
    """One issued code as stored: its digest, never the code.

    ``state`` is one of ``ACTIVE``, ``REDEEMED``, ``REVOKED`` and ``LOCKED``; expiry is derived
    from ``expires_at`` and the time of asking, never stored.
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
    """

    subject_ref: str
    version: int = 0
    codes: tuple[CodeRecord, ...] = ()
    failure_logs: tuple[FailureLog, ...] = ()

    def failure_log(self, provider_id: str) -> FailureLog:
        """The failure log for ``provider_id`` (empty if there is none)."""
        for log in self.failure_logs:
            if log.provider_id == provider_id:
                return log
        return FailureLog(provider_id=provider_id)


@attrs.frozen(kw_only=True)
class Commit:
    """A change to one subject, valid only on top of ``expected_version``.

    Each record in ``codes`` is inserted or replaces the stored record with the same ``code_id``;
    each log in ``failure_logs`` replaces the stored log of its provider. Nothing else changes.
    """

    subject_ref: str
    expected_version: int
    codes: tuple[CodeRecord, ...] = ()
    failure_logs: tuple[FailureLog, ...] = ()


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
        """Apply ``change`` if and only if the subject is still at ``change.expected_version``.

        Atomicity: compare-and-set. Either the stored version equals ``expected_version`` and the
        whole change is applied and the version becomes ``expected_version + 1``, durably, before
        this returns ``True``; or nothing is applied and it returns ``False``. Under any number of
        concurrent callers (threads, processes, machines) at most one commit succeeds per version.
        """
        ...
