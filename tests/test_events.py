"""Tests for audit events and sinks: what events hold, how sinks take them, how delivery fails."""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import typing
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import START, stored_record
from tests.strategies import aware_datetimes

from telecard_auth import CodeIssuer, ConfigurationError, Keyring, MemoryStorage, Subject
from telecard_auth import events as events_module
from telecard_auth._core import subject_ref
from telecard_auth.events import (
    AUDIT_LOGGER,
    EVENT_TYPES,
    EVENTS_LOGGER,
    AuditEvent,
    CodeExpired,
    CodeIssued,
    CodeLocked,
    CodeRedeemed,
    CodeRevoked,
    CodeSuperseded,
    CollectingSink,
    EventSink,
    Fanout,
    LoggingSink,
    QueueSink,
    RedemptionRefused,
    deliver,
)

REF = "5d1f0c9a8b7e6d5c4b3a291807f6e5d4"
LATER = START + timedelta(hours=4)
ISO_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d")

#: One sample of every event, with the exact ``fields()`` each must give.
SAMPLES: list[tuple[AuditEvent, dict[str, object]]] = [
    (
        CodeIssued(
            at=START,
            subject_ref=REF,
            code_id="c-1",
            provider_id="stc",
            service_id="new_line",
            expires_at=LATER,
            key_id="k1",
        ),
        {
            "event": "code_issued",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "subject_ref": REF,
            "code_id": "c-1",
            "provider_id": "stc",
            "service_id": "new_line",
            "expires_at": "2026-03-01T13:00:00.000000+00:00",
            "key_id": "k1",
        },
    ),
    (
        CodeRedeemed(
            at=START + timedelta(microseconds=7),
            subject_ref=REF,
            code_id="c-1",
            provider_id="stc",
            service_id="new_line",
            receipt_key_id="r1",
            request_id="req-9",
        ),
        {
            "event": "code_redeemed",
            "at": "2026-03-01T09:00:00.000007+00:00",
            "subject_ref": REF,
            "code_id": "c-1",
            "provider_id": "stc",
            "service_id": "new_line",
            "receipt_key_id": "r1",
            "request_id": "req-9",
        },
    ),
    (
        RedemptionRefused(
            at=START,
            subject_ref=REF,
            code_id=None,
            provider_id="zain",
            reason="wrong_code",
            service_id="lost_sim_replacement",
        ),
        {
            "event": "redemption_refused",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "subject_ref": REF,
            "code_id": None,
            "provider_id": "zain",
            "reason": "wrong_code",
            "service_id": "lost_sim_replacement",
        },
    ),
    (
        CodeRevoked(at=START, subject_ref=REF, code_id="c-2", provider_id="mobily"),
        {
            "event": "code_revoked",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "subject_ref": REF,
            "code_id": "c-2",
            "provider_id": "mobily",
        },
    ),
    (
        CodeSuperseded(
            at=START, subject_ref=REF, code_id="c-2", provider_id="stc", superseded_by="c-3"
        ),
        {
            "event": "code_superseded",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "subject_ref": REF,
            "code_id": "c-2",
            "provider_id": "stc",
            "superseded_by": "c-3",
        },
    ),
    (
        CodeLocked(at=START, subject_ref=REF, code_id="c-4", provider_id="stc", failed_attempts=5),
        {
            "event": "code_locked",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "subject_ref": REF,
            "code_id": "c-4",
            "provider_id": "stc",
            "failed_attempts": 5,
        },
    ),
    (
        CodeExpired(
            at=LATER + timedelta(days=30),
            subject_ref=REF,
            code_id="c-5",
            provider_id="stc",
            expired_at=LATER,
        ),
        {
            "event": "code_expired",
            "at": "2026-03-31T13:00:00.000000+00:00",
            "subject_ref": REF,
            "code_id": "c-5",
            "provider_id": "stc",
            "expired_at": "2026-03-01T13:00:00.000000+00:00",
        },
    ),
]
SAMPLE_EVENTS = [event for event, _ in SAMPLES]

#: The exact schema of every event: field names in ``fields()`` order, and their types.
SCHEMAS: dict[type[AuditEvent], dict[str, object]] = {
    CodeIssued: {
        "at": datetime,
        "subject_ref": str,
        "code_id": str,
        "provider_id": str | None,
        "service_id": str | None,
        "expires_at": datetime,
        "key_id": str,
    },
    CodeRedeemed: {
        "at": datetime,
        "subject_ref": str,
        "code_id": str,
        "provider_id": str | None,
        "service_id": str,
        "receipt_key_id": str | None,
        "request_id": str | None,
    },
    RedemptionRefused: {
        "at": datetime,
        "subject_ref": str,
        "code_id": str | None,
        "provider_id": str | None,
        "reason": str,
        "service_id": str | None,
    },
    CodeRevoked: {"at": datetime, "subject_ref": str, "code_id": str, "provider_id": str | None},
    CodeSuperseded: {
        "at": datetime,
        "subject_ref": str,
        "code_id": str,
        "provider_id": str | None,
        "superseded_by": str,
    },
    CodeLocked: {
        "at": datetime,
        "subject_ref": str,
        "code_id": str,
        "provider_id": str | None,
        "failed_attempts": int,
    },
    CodeExpired: {
        "at": datetime,
        "subject_ref": str,
        "code_id": str,
        "provider_id": str | None,
        "expired_at": datetime,
    },
}


def revoked(code_id: str = "c-1") -> CodeRevoked:
    """A small event to deliver."""
    return CodeRevoked(at=START, subject_ref=REF, code_id=code_id, provider_id="stc")


class Recorder:
    """A sink that appends ``(name, event)`` to a shared journal, to see the order of delivery."""

    def __init__(self, name: str, journal: list[tuple[str, AuditEvent]]) -> None:
        self.name = name
        self.journal = journal

    def emit(self, event: AuditEvent) -> None:
        self.journal.append((self.name, event))


class BrokenSink:
    """A sink that raises on every event, or only on the events whose code id is in ``on``."""

    def __init__(self, error: BaseException, on: frozenset[str] | None = None) -> None:
        self.error = error
        self.on = on
        self.received: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        if self.on is None or event.code_id in self.on:
            raise self.error
        self.received.append(event)


class ExplodingHandler(logging.Handler):
    """A logging handler that raises from ``emit`` instead of calling ``handleError``."""

    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("the log pipeline is down")


@pytest.fixture
def exploding_logs() -> Iterator[None]:
    """Every record under the ``telecard_auth`` logger hits a handler that raises."""
    parent = logging.getLogger("telecard_auth")
    handler = ExplodingHandler()
    old_level = parent.level
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        parent.removeHandler(handler)
        parent.setLevel(old_level)


def structured(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields a record carries under ``telecard_auth``."""
    fields = getattr(record, "telecard_auth", None)
    assert isinstance(fields, dict), record
    return fields


def lost_reports(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of failed deliveries."""
    return [record for record in caplog.records if record.name == EVENTS_LOGGER]


# --- events ----------------------------------------------------------------------------------


def test_kinds_are_exact_unique_and_in_a_fixed_order() -> None:
    kinds = [event_type.kind for event_type in EVENT_TYPES]
    assert kinds == [
        "code_issued",
        "code_redeemed",
        "redemption_refused",
        "code_revoked",
        "code_superseded",
        "code_locked",
        "code_expired",
    ]
    assert len(set(kinds)) == len(kinds)
    assert AuditEvent.kind not in kinds


def test_event_types_list_every_public_event() -> None:
    public = {
        value
        for value in (getattr(events_module, name) for name in events_module.__all__)
        if isinstance(value, type) and issubclass(value, AuditEvent) and value is not AuditEvent
    }
    assert public == set(EVENT_TYPES)
    assert set(SCHEMAS) == set(EVENT_TYPES)
    assert {type(event) for event in SAMPLE_EVENTS} == set(EVENT_TYPES)


@pytest.mark.parametrize(("event", "expected"), SAMPLES, ids=lambda value: type(value).__name__)
def test_fields_give_the_kind_then_every_field_in_order(
    event: AuditEvent, expected: dict[str, object]
) -> None:
    fields = event.fields()
    assert fields == expected
    assert list(fields) == list(expected)
    assert json.loads(json.dumps(fields)) == expected


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda value: value.__name__)
def test_schema_is_exactly_the_reviewed_one(event_type: type[AuditEvent]) -> None:
    hints = typing.get_type_hints(event_type)
    names = [field.name for field in attrs.fields(event_type)]
    assert {name: hints[name] for name in names} == SCHEMAS[event_type]
    sample = next(event for event in SAMPLE_EVENTS if type(event) is event_type)
    assert list(sample.fields()) == ["event", *SCHEMAS[event_type]]


_FORBIDDEN_WORDS = {
    "code",
    "plaintext",
    "otp",
    "pin",
    "digest",
    "secret",
    "identifier",
    "identity",
    "national",
    "iqama",
    "unified",
    "msisdn",
    "mobile",
    "phone",
    "recipient",
}


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda value: value.__name__)
def test_no_field_can_hold_a_code_or_an_identity_number(event_type: type[AuditEvent]) -> None:
    # By design: every field is named for an id, a time, a count or a reason; none for a code, a
    # digest, an identity number, a mobile number or a recipient. "code_id" is the code's random id.
    for name, hint in typing.get_type_hints(event_type).items():
        if name == "kind":
            continue
        words = set(name.split("_"))
        assert name == "code_id" or not words & _FORBIDDEN_WORDS, name
        assert name.endswith(("_id", "_ref", "_at", "_by")) or name in {
            "at",
            "reason",
            "failed_attempts",
        }, name
        assert hint in (str, str | None, datetime, int), (name, hint)


def test_events_from_a_real_issue_and_redeem_leak_neither_code_nor_identity_number(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    citizen: Subject,
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued = issuer.issue(citizen, "stc", service="new_line")
    redemption = issuer.redeem(citizen, "stc", issued.code, "new_line")
    ref = subject_ref(keyring, citizen)
    assert redemption.subject_ref == ref
    events: list[AuditEvent] = [
        CodeIssued(
            at=issued.issued_at,
            subject_ref=ref,
            code_id=issued.code_id,
            provider_id=issued.provider.id,
            service_id=issued.service.id if issued.service else None,
            expires_at=issued.expires_at,
            key_id=stored_record(storage, issued.code_id).key_id,
        ),
        CodeRedeemed(
            at=redemption.redeemed_at,
            subject_ref=redemption.subject_ref,
            code_id=redemption.code_id,
            provider_id=redemption.provider.id,
            service_id=redemption.service.id,
        ),
    ]
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    deliver([LoggingSink()], events)
    assert len(caplog.records) == 2
    secrets = (issued.code, citizen.identifier)
    for record, event in zip(caplog.records, events, strict=True):
        message = record.getMessage()
        assert message.startswith(event.kind + " ")
        for text in (message, repr(event)):
            assert not any(secret in text for secret in secrets)
        for name, shown in structured(record).items():
            if name in ("at", "expires_at"):
                # Times only: they parse back as the event's own times.
                assert datetime.fromisoformat(str(shown)) == getattr(event, name)
            else:
                assert not any(secret in str(shown) for secret in secrets), name


_refs = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)
_ids = st.text(min_size=1, max_size=40)
_optional_ids = st.none() | _ids


def _events() -> st.SearchStrategy[AuditEvent]:
    common: dict[str, Any] = {
        "at": aware_datetimes(),
        "subject_ref": _refs,
        "provider_id": _optional_ids,
    }
    return st.one_of(
        st.builds(
            CodeIssued,
            **common,
            code_id=_ids,
            service_id=_optional_ids,
            expires_at=aware_datetimes(),
            key_id=_ids,
        ),
        st.builds(
            CodeRedeemed,
            **common,
            code_id=_ids,
            service_id=_ids,
            receipt_key_id=_optional_ids,
            request_id=_optional_ids,
        ),
        st.builds(
            RedemptionRefused,
            **common,
            code_id=_optional_ids,
            reason=_ids,
            service_id=_optional_ids,
        ),
        st.builds(CodeRevoked, **common, code_id=_ids),
        st.builds(CodeSuperseded, **common, code_id=_ids, superseded_by=_ids),
        st.builds(CodeLocked, **common, code_id=_ids, failed_attempts=st.integers(0, 1000)),
        st.builds(CodeExpired, **common, code_id=_ids, expired_at=aware_datetimes()),
    )


@given(_events())
def test_any_event_serialises_to_json_and_back(event: AuditEvent) -> None:
    fields = event.fields()
    assert json.loads(json.dumps(fields)) == fields
    assert fields["event"] == event.kind
    assert list(fields)[1:5] == ["at", "subject_ref", "code_id", "provider_id"]
    for field in attrs.fields(type(event)):
        value = getattr(event, field.name)
        shown = fields[field.name]
        if isinstance(value, datetime):
            assert isinstance(shown, str)
            assert ISO_MICROSECONDS.fullmatch(shown)
            assert datetime.fromisoformat(shown) == value
        else:
            assert shown == value


def test_events_are_frozen_keyword_only_values() -> None:
    event = revoked()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.code_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CodeRevoked(START, REF, "c-1", "stc")  # type: ignore[call-arg]
    assert event == revoked()
    assert event != revoked("c-2")
    assert hash(event) == hash(revoked())
    # Same fields, another kind: not the same event.
    one: AuditEvent = CodeRevoked(at=START, subject_ref=REF, code_id="c", provider_id="stc")
    other: AuditEvent = CodeSuperseded(
        at=START, subject_ref=REF, code_id="c", provider_id="stc", superseded_by="d"
    )
    assert one != other


# --- LoggingSink -----------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "expected"), SAMPLES, ids=lambda value: type(value).__name__)
def test_logging_sink_writes_one_record_with_the_fields(
    event: AuditEvent, expected: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    LoggingSink().emit(event)
    [record] = caplog.records
    assert record.name == "telecard_auth.audit"
    assert record.levelno == logging.INFO
    assert structured(record) == expected
    assert not record.args
    assert record.exc_info is None


def test_logging_sink_message_names_kind_and_fields_but_no_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    sink = LoggingSink()
    sink.emit(SAMPLE_EVENTS[1])
    sink.emit(SAMPLE_EVENTS[2])
    assert [record.getMessage() for record in caplog.records] == [
        f"code_redeemed subject_ref={REF} code_id=c-1 provider_id=stc service_id=new_line "
        "receipt_key_id=r1 request_id=req-9",
        f"redemption_refused subject_ref={REF} code_id=- provider_id=zain reason=wrong_code "
        "service_id=lost_sim_replacement",
    ]


def test_logging_sink_message_stays_one_line_whatever_a_request_id_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    request_id = "r1\ncode_redeemed code_id=forged %s"
    event = CodeRedeemed(
        at=START,
        subject_ref=REF,
        code_id="c-1",
        provider_id="stc",
        service_id="new_line",
        request_id=request_id,
    )
    LoggingSink().emit(event)
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message.endswith(" request_id=" + repr(request_id))
    assert message.count("code_id=c-1") == 1
    assert structured(record)["request_id"] == request_id


def test_logging_sink_takes_a_logger_or_a_name_and_a_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom.audit")
    by_logger = LoggingSink(logging.getLogger("custom.audit"), level=logging.WARNING)
    by_name = LoggingSink("custom.audit", level=logging.DEBUG)
    assert by_name.logger is by_logger.logger
    by_logger.emit(revoked("a"))
    by_name.emit(revoked("b"))
    assert [
        (record.name, record.levelno, structured(record)["code_id"]) for record in caplog.records
    ] == [
        ("custom.audit", logging.WARNING, "a"),
        ("custom.audit", logging.DEBUG, "b"),
    ]


def test_logging_sink_writes_nothing_below_the_loggers_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=AUDIT_LOGGER)
    LoggingSink().emit(revoked())
    assert caplog.records == []
    LoggingSink(level=logging.ERROR).emit(revoked())
    assert [record.levelno for record in caplog.records] == [logging.ERROR]


@pytest.mark.parametrize(
    ("logger", "level"), [(42, logging.INFO), (None, logging.INFO), (AUDIT_LOGGER, "INFO")]
)
def test_logging_sink_refuses_what_is_not_a_logger_or_a_level(logger: Any, level: Any) -> None:
    with pytest.raises(ConfigurationError):
        LoggingSink(logger, level)


# --- CollectingSink, Fanout, QueueSink -------------------------------------------------------


def test_collecting_sink_keeps_events_in_order_and_by_type() -> None:
    sink = CollectingSink()
    for event in SAMPLE_EVENTS:
        sink.emit(event)
    assert sink.events == SAMPLE_EVENTS
    assert sink.of_type(CodeLocked) == [SAMPLE_EVENTS[5]]
    assert sink.of_type(AuditEvent) == SAMPLE_EVENTS
    sink.clear()
    assert sink.events == []


def test_collecting_sink_loses_nothing_under_threads() -> None:
    sink = CollectingSink()
    threads, per_thread = 8, 400
    barrier = threading.Barrier(threads)

    def work(worker: int) -> None:
        barrier.wait()
        for index in range(per_thread):
            sink.emit(revoked(f"{worker}-{index}"))

    pool = [threading.Thread(target=work, args=(worker,)) for worker in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    ids = [event.code_id for event in sink.events]
    assert len(ids) == threads * per_thread
    for worker in range(threads):
        # Every event of each thread, in the order that thread sent them.
        assert [i for i in ids if i and i.startswith(f"{worker}-")] == [
            f"{worker}-{index}" for index in range(per_thread)
        ]


def test_fanout_sends_each_event_to_every_sink_in_order() -> None:
    journal: list[tuple[str, AuditEvent]] = []
    fanout = Fanout(Recorder("a", journal), Recorder("b", journal), Recorder("c", journal))
    first, second = revoked("1"), revoked("2")
    fanout.emit(first)
    fanout.emit(second)
    assert journal == [
        ("a", first),
        ("b", first),
        ("c", first),
        ("a", second),
        ("b", second),
        ("c", second),
    ]


def test_fanout_isolates_a_raising_sink(caplog: pytest.LogCaptureFixture) -> None:
    before, after = CollectingSink(), CollectingSink()
    fanout = Fanout(before, BrokenSink(ValueError("disk full")), after)
    fanout.emit(revoked())
    assert before.events == after.events == [revoked()]
    [report] = lost_reports(caplog)
    assert "BrokenSink" in report.getMessage()


def test_fanout_refuses_what_is_not_a_sink() -> None:
    with pytest.raises(ConfigurationError):
        Fanout(CollectingSink(), object())  # type: ignore[arg-type]


def test_queue_sink_drops_and_counts_what_does_not_fit() -> None:
    events: queue.Queue[AuditEvent] = queue.Queue(maxsize=2)
    sink = QueueSink(events)
    for index in range(5):
        sink.emit(revoked(str(index)))
    assert sink.dropped == 3
    assert [events.get_nowait().code_id for _ in range(2)] == ["0", "1"]
    assert events.empty()
    sink.emit(revoked("5"))
    assert sink.dropped == 3
    assert events.get_nowait() == revoked("5")


def test_queue_sink_never_waits_on_a_full_queue() -> None:
    class NoWaiting(queue.Queue[AuditEvent]):
        # Every put of queue.Queue goes through put(); a sink must never ask it to block.
        def put(self, item: AuditEvent, block: bool = True, timeout: float | None = None) -> None:
            assert not block, "QueueSink asked the queue to wait"
            super().put(item, block, timeout)

    events = NoWaiting(maxsize=1)
    sink = QueueSink(events)
    sink.emit(revoked("kept"))
    sink.emit(revoked("dropped"))
    assert sink.dropped == 1
    assert events.get_nowait() == revoked("kept")


def test_queue_sink_counts_every_drop_under_threads() -> None:
    capacity, threads, per_thread = 50, 8, 300
    events: queue.Queue[AuditEvent] = queue.Queue(maxsize=capacity)
    sink = QueueSink(events)
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            sink.emit(revoked())

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert events.qsize() == capacity
    assert sink.dropped == threads * per_thread - capacity


def test_queue_sink_refuses_what_is_not_a_queue() -> None:
    with pytest.raises(ConfigurationError):
        QueueSink([])  # type: ignore[arg-type]


def test_every_sink_is_an_event_sink() -> None:
    class Custom:
        def emit(self, event: AuditEvent) -> None:
            pass

    sinks: list[object] = [
        LoggingSink(),
        CollectingSink(),
        Fanout(),
        QueueSink(queue.Queue()),
        Custom(),
    ]
    for sink in sinks:
        assert isinstance(sink, EventSink), sink
    for not_a_sink in (object(), "emit", revoked(), logging.getLogger(AUDIT_LOGGER)):
        assert not isinstance(not_a_sink, EventSink), not_a_sink


# --- deliver ---------------------------------------------------------------------------------


def test_deliver_sends_every_event_to_every_sink_in_order() -> None:
    journal: list[tuple[str, AuditEvent]] = []
    first, second = revoked("1"), revoked("2")
    deliver([Recorder("a", journal), Recorder("b", journal)], iter([first, second]))
    assert journal == [("a", first), ("b", first), ("a", second), ("b", second)]


def test_deliver_survives_a_raising_sink_and_reports_each_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before, after = CollectingSink(), CollectingSink()
    error = RuntimeError("sink is down")
    broken = BrokenSink(error)
    deliver([before, broken, after], SAMPLE_EVENTS)  # must not raise
    assert before.events == SAMPLE_EVENTS
    assert after.events == SAMPLE_EVENTS
    reports = lost_reports(caplog)
    assert len(reports) == len(SAMPLE_EVENTS)
    for report, event in zip(reports, SAMPLE_EVENTS, strict=True):
        assert report.levelno == logging.WARNING
        message = report.getMessage()
        assert "BrokenSink" in message
        assert event.kind in message
        assert "RuntimeError" in message
        assert report.exc_info is not None
        assert report.exc_info[1] is error
        assert structured(report) == event.fields()


def test_deliver_loses_only_the_failed_event_for_the_failing_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = BrokenSink(ValueError("bad moment"), on=frozenset({"2"}))
    other = CollectingSink()
    events = [revoked("1"), revoked("2"), revoked("3")]
    deliver([flaky, other], events)
    assert flaky.received == [revoked("1"), revoked("3")]
    assert other.events == events
    [report] = lost_reports(caplog)
    assert "code_id=2" in report.getMessage()


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), SystemExit(3)])
def test_deliver_lets_interruptions_through(interruption: BaseException) -> None:
    before, after = CollectingSink(), CollectingSink()
    with pytest.raises(type(interruption)):
        deliver([before, BrokenSink(interruption), after], [revoked("1"), revoked("2")])
    assert before.events == [revoked("1")]
    assert after.events == []


def test_deliver_survives_a_logging_handler_that_raises(
    exploding_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The audit record and the report of its loss both go to a handler that raises.
    collected = CollectingSink()
    deliver([LoggingSink(), collected, BrokenSink(OSError("gone"))], SAMPLE_EVENTS)
    assert collected.events == SAMPLE_EVENTS


def test_deliver_with_no_sinks_does_not_touch_the_events() -> None:
    class Untouchable:
        def __iter__(self) -> Iterator[AuditEvent]:
            raise AssertionError("iterated")

    deliver([], Untouchable())


def test_deliver_reports_a_sink_without_emit(caplog: pytest.LogCaptureFixture) -> None:
    collected = CollectingSink()
    deliver([object(), collected], [revoked()])  # type: ignore[list-item]
    assert collected.events == [revoked()]
    [report] = lost_reports(caplog)
    assert "object" in report.getMessage()
    assert "AttributeError" in report.getMessage()


def test_queue_sink_then_worker_delivers_everything_in_order() -> None:
    # The pattern the docs recommend for slow sinks: the request only enqueues, a worker drains.
    events: queue.Queue[AuditEvent] = queue.Queue()
    slow = CollectingSink()

    def worker() -> None:
        while (event := events.get()) is not stop:
            slow.emit(event)

    stop = revoked("stop")
    thread = threading.Thread(target=worker)
    thread.start()
    deliver([QueueSink(events)], SAMPLE_EVENTS)
    events.put(stop)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert slow.events == SAMPLE_EVENTS


def test_json_formatter_picks_up_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    # What the LoggingSink docstring tells integrators to do with a JSON formatter.
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            line: dict[str, object] = {"message": record.getMessage()}
            line.update(getattr(record, "telecard_auth", {}))
            return json.dumps(line)

    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    caplog.handler.setFormatter(JsonFormatter())
    event, expected = SAMPLES[0]
    LoggingSink().emit(event)
    [line] = caplog.text.splitlines()
    payload = json.loads(line)
    assert payload.pop("message").startswith("code_issued ")
    assert payload == expected
