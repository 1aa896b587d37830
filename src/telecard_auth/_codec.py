"""One text form of a subject's state, shared by every backend that stores bytes.

A subject's codes and failure logs are stored as one compact JSON document: positional arrays,
times in ISO 8601 (UTC), digests in base64. It holds digests and pseudonyms only, never a code or an
identity number. ``FORMAT`` is written into each document so that a later release can read old ones.

Backends that index times (SQLite's and Redis's ``keep_until``) store them as whole microseconds
since the Unix epoch: ``micros`` and ``from_micros``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from telecard_auth._errors import StorageError
from telecard_auth._model import CodeState
from telecard_auth._storage import CodeRecord, Commit, FailureLog, SubjectSnapshot

__all__ = ["FORMAT", "decode_deleted", "decode_state", "encode_state", "from_micros", "micros"]

#: Version of the document layout below.
FORMAT = 1

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


def encode_state(change: Commit) -> str:
    """The document for the subject's state after ``change``."""
    logs = [
        [log.provider_id, [moment.isoformat() for moment in log.failures]]
        for log in change.failure_logs
    ]
    codes = [_row(record) for record in change.codes]
    return json.dumps({"f": FORMAT, "c": codes, "l": logs}, separators=(",", ":"))


_BASE_FIELDS = 13
_OPTIONAL_FIELDS = 3


def _record(subject_ref: str, row: list[Any]) -> CodeRecord:
    optional = row[_BASE_FIELDS:]
    if len(optional) not in (0, _OPTIONAL_FIELDS):
        raise ValueError("a stored code has the wrong number of fields")
    request_ref, request_inputs, receipt_key_id = optional or (None, None, None)
    (
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
        subject_ref=subject_ref,
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
    )


def decode_state(
    subject_ref: str, version: int, document: str | bytes, keep_until: datetime | None = None
) -> SubjectSnapshot:
    """The snapshot stored as ``document`` at ``version``; ``StorageError`` if it is unreadable."""
    try:
        data = json.loads(document)
        if data["f"] != FORMAT:
            raise ValueError(f"unknown document format {data['f']!r}")
        return SubjectSnapshot(
            subject_ref=subject_ref,
            version=version,
            codes=tuple(_record(subject_ref, row) for row in data["c"]),
            failure_logs=tuple(
                FailureLog(
                    provider_id=provider_id,
                    failures=tuple(datetime.fromisoformat(moment) for moment in failures),
                )
                for provider_id, failures in data["l"]
            ),
            keep_until=keep_until,
        )
    except (ValueError, TypeError, KeyError) as error:
        raise StorageError(reason="a stored record cannot be read") from error


def decode_deleted(
    subject_ref: str, version: int, document: str | bytes, keep_until: datetime | None = None
) -> SubjectSnapshot:
    """The snapshot of a subject a purge has just deleted, as ``decode_state`` reads it.

    The subject is gone already, so an unreadable document cannot stop the purge: it is reported
    as the subject at ``version`` with no codes and no failure logs, rather than as an error that
    would lose the rest of the batch.
    """
    try:
        return decode_state(subject_ref, version, document, keep_until)
    except StorageError:
        return SubjectSnapshot(subject_ref=subject_ref, version=version, keep_until=keep_until)
