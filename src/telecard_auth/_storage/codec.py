"""One text form of a subject's state, shared by every backend that stores bytes.

A subject's codes and failure logs are stored as one compact JSON document: positional arrays,
times in ISO 8601 (UTC), digests in base64, and the subject's sealed identity and ``moved`` mark.
It holds digests, pseudonyms and sealed text only, never a code or an identity number. ``FORMAT``
is written into each document so that a later release can read old ones. The compare-and-set
token (version and incarnation) is not in the document: backends keep it where their
compare-and-set can read it (a column, a hash field).

Backends that index times (SQLite's and Redis's ``keep_until``) store them as whole microseconds
since the Unix epoch: ``micros`` and ``from_micros``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from telecard_auth._core.errors import StorageError
from telecard_auth._core.model import CodeState
from telecard_auth._storage.protocol import CodeRecord, Commit, FailureLog, SubjectSnapshot

__all__ = ["FORMAT", "decode_deleted", "decode_state", "encode_state", "from_micros", "micros"]

#: Version of the document layout below. Format 1 (before record digests were bound to the
#: subject's identity) is not read: it was never released.
FORMAT = 2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: how SQLite and Redis index times."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(count: int) -> datetime:
    """The UTC moment ``count`` microseconds after the Unix epoch: the inverse of ``micros``."""
    return _EPOCH + timedelta(microseconds=count)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _row(record: CodeRecord) -> list[Any]:
    row: list[Any] = [
        int(record.recovery),
        record.code_id,
        record.provider_id,
        record.key_id,
        base64.b64encode(record.digest).decode("ascii"),
        record.issued_at.isoformat(),
        record.expires_at.isoformat(),
        record.service_id,
        record.msisdn_ref,
        record.recipient_ref,
        record.state.value,
        record.failed_attempts,
        _time(record.finished_at),
        record.redeemed_service_id,
    ]
    # Fields that most records leave empty are written only when one is set.
    if record.request_ref is not None or record.receipt_key_id is not None:
        row += [record.request_ref, record.request_inputs, record.receipt_key_id]
    return row


def _log(log: FailureLog) -> list[Any]:
    row: list[Any] = [log.provider_id, [moment.isoformat() for moment in log.failures]]
    if log.recoveries:
        row.append([moment.isoformat() for moment in log.recoveries])
    return row


def encode_state(change: Commit) -> str:
    """The document for the subject's state after ``change``."""
    document: dict[str, Any] = {
        "f": FORMAT,
        "c": [_row(record) for record in change.codes],
        "l": [_log(log) for log in change.failure_logs],
    }
    if change.identity is not None:
        document["s"] = change.identity
    if change.moved:
        document["m"] = 1
    return json.dumps(document, separators=(",", ":"))


_BASE_FIELDS = 14
_OPTIONAL_FIELDS = 3


def _times(texts: list[str]) -> tuple[datetime, ...]:
    return tuple(datetime.fromisoformat(text) for text in texts)


def _failure_log(row: list[Any]) -> FailureLog:
    provider_id, failures, *rest = row
    if len(rest) > 1:
        raise ValueError("a stored failure log has the wrong number of fields")
    return FailureLog(
        provider_id=provider_id,
        failures=_times(failures),
        recoveries=_times(rest[0]) if rest else (),
    )


def _record(row: list[Any]) -> CodeRecord:
    optional = row[_BASE_FIELDS:]
    if len(optional) not in (0, _OPTIONAL_FIELDS):
        raise ValueError("a stored code has the wrong number of fields")
    request_ref, request_inputs, receipt_key_id = optional or (None, None, None)
    (
        recovery,
        code_id,
        provider_id,
        key_id,
        digest,
        issued_at,
        expires_at,
        service_id,
        msisdn_ref,
        recipient_ref,
        state,
        failed_attempts,
        finished_at,
        redeemed_service_id,
    ) = row[:_BASE_FIELDS]
    return CodeRecord(
        code_id=code_id,
        provider_id=provider_id,
        key_id=key_id,
        digest=base64.b64decode(digest),
        issued_at=datetime.fromisoformat(issued_at),
        expires_at=datetime.fromisoformat(expires_at),
        service_id=service_id,
        msisdn_ref=msisdn_ref,
        recipient_ref=recipient_ref,
        state=CodeState(state),
        failed_attempts=failed_attempts,
        finished_at=_parse_time(finished_at),
        redeemed_service_id=redeemed_service_id,
        request_ref=request_ref,
        request_inputs=request_inputs,
        receipt_key_id=receipt_key_id,
        recovery=bool(recovery),
    )


def decode_state(
    subject_ref: str,
    version: int,
    incarnation: str,
    document: str | bytes,
    keep_until: datetime | None = None,
) -> SubjectSnapshot:
    """The snapshot stored as ``document`` at (``incarnation``, ``version``); ``StorageError`` if
    it is unreadable."""
    try:
        data = json.loads(document)
        if data["f"] != FORMAT:
            raise ValueError("unknown document format")
        identity = data.get("s")
        if identity is not None and not isinstance(identity, str):
            raise TypeError("a sealed identity is text")
        return SubjectSnapshot(
            subject_ref=subject_ref,
            version=version,
            incarnation=incarnation,
            codes=tuple(_record(row) for row in data["c"]),
            failure_logs=tuple(_failure_log(row) for row in data["l"]),
            keep_until=keep_until,
            identity=identity,
            moved=data.get("m") == 1,
        )
    except (ValueError, TypeError, KeyError) as error:
        raise StorageError(reason="a stored record cannot be read") from error


def decode_deleted(
    subject_ref: str,
    version: int,
    incarnation: str,
    document: str | bytes,
    keep_until: datetime | None = None,
) -> SubjectSnapshot:
    """The snapshot of a subject a purge has just deleted, as ``decode_state`` reads it.

    The subject is gone already, so an unreadable document cannot stop the purge: it is reported
    as the subject at ``version`` with no codes and no failure logs, rather than as an error that
    would lose the rest of the batch.
    """
    try:
        return decode_state(subject_ref, version, incarnation, document, keep_until)
    except StorageError:
        return SubjectSnapshot(
            subject_ref=subject_ref,
            version=version,
            incarnation=incarnation,
            keep_until=keep_until,
        )
