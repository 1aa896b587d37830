"""Tests for audit events and sinks: what events hold (an audit pseudonym, never the storage key),
how sinks take them, how delivery fails."""

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
from tests.helpers import START, other_code
from tests.strategies import aware_datetimes

from telecard_auth import (
    SAUDI_PROVIDERS,
    CodeIssuer,
    ConfigurationError,
    HmacKey,
    IssuedCode,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    Subject,
    TelecardAuthError,
    WrongCode,
)
from telecard_auth import events as events_module
from telecard_auth._core.requests import identity_of
from telecard_auth.events import (
    AUDIT_LOGGER,
    EVENT_TYPES,
    EVENTS_LOGGER,
    AuditEvent,
    CodeExpiry,
    CodeIssuance,
    CodeLockout,
    CodeRedemption,
    CodeRevocation,
    CodeSupersession,
    CollectingSink,
    EventSink,
    Fanout,
    LoggingSink,
    QueueSink,
    RedemptionRefusal,
    deliver,
)

REF = "5d1f0c9a8b7e6d5c4b3a291807f6e5d4"
LATER = START + timedelta(hours=4)
ISO_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d")

#: One sample of every event, with the exact ``fields()`` each must give.
SAMPLES: list[tuple[AuditEvent, dict[str, object]]] = [
    (
        CodeIssuance(
            at=START,
            audit_ref=REF,
            code_id="c-1",
            provider_id="stc",
            service_id="new_line",
            expires_at=LATER,
            key_id="k1",
            recovery=True,
        ),
        {
            "event": "code_issued",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "audit_ref": REF,
            "code_id": "c-1",
            "provider_id": "stc",
            "service_id": "new_line",
            "expires_at": "2026-03-01T13:00:00.000000+00:00",
            "key_id": "k1",
            "recovery": True,
        },
    ),
    (
        CodeRedemption(
            at=START + timedelta(microseconds=7),
            audit_ref=REF,
            code_id="c-1",
            provider_id="stc",
            service_id="new_line",
            receipt_key_id="r1",
            request_id="req-9",
            reference="branch-12",
        ),
        {
            "event": "code_redeemed",
            "at": "2026-03-01T09:00:00.000007+00:00",
            "audit_ref": REF,
            "code_id": "c-1",
            "provider_id": "stc",
            "service_id": "new_line",
            "receipt_key_id": "r1",
            "request_id": "req-9",
            "reference": "branch-12",
        },
    ),
    (
        RedemptionRefusal(
            at=START,
            audit_ref=REF,
            code_id=None,
            provider_id="zain",
            reason="wrong_code",
            service_id="lost_sim_replacement",
            reference="agent-7",
        ),
        {
            "event": "redemption_refused",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "audit_ref": REF,
            "code_id": None,
            "provider_id": "zain",
            "reason": "wrong_code",
            "service_id": "lost_sim_replacement",
            "reference": "agent-7",
        },
    ),
    (
        CodeRevocation(at=START, audit_ref=REF, code_id="c-2", provider_id="mobily"),
        {
            "event": "code_revoked",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "audit_ref": REF,
            "code_id": "c-2",
            "provider_id": "mobily",
        },
    ),
    (
        CodeSupersession(
            at=START, audit_ref=REF, code_id="c-2", provider_id="stc", superseded_by="c-3"
        ),
        {
            "event": "code_superseded",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "audit_ref": REF,
            "code_id": "c-2",
            "provider_id": "stc",
            "superseded_by": "c-3",
        },
    ),
    (
        CodeLockout(at=START, audit_ref=REF, code_id="c-4", provider_id="stc", failed_attempts=5),
        {
            "event": "code_locked",
            "at": "2026-03-01T09:00:00.000000+00:00",
            "audit_ref": REF,
            "code_id": "c-4",
            "provider_id": "stc",
            "failed_attempts": 5,
        },
    ),
    (
        CodeExpiry(
            at=LATER + timedelta(days=30),
            audit_ref=None,
            code_id="c-5",
            provider_id="stc",
            expired_at=LATER,
        ),
        {
            "event": "code_expired",
            "at": "2026-03-31T13:00:00.000000+00:00",
            "audit_ref": None,
            "code_id": "c-5",
            "provider_id": "stc",
            "expired_at": "2026-03-01T13:00:00.000000+00:00",
        },
    ),
]
SAMPLE_EVENTS = [event for event, _ in SAMPLES]

#: The exact schema of every event: field names in ``fields()`` order, and their types.
SCHEMAS: dict[type[AuditEvent], dict[str, object]] = {
    CodeIssuance: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str,
        "provider_id": str | None,
        "service_id": str | None,
        "expires_at": datetime,
        "key_id": str,
        "recovery": bool,
    },
    CodeRedemption: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str,
        "provider_id": str | None,
        "service_id": str,
        "receipt_key_id": str | None,
        "request_id": str | None,
        "reference": str | None,
    },
    RedemptionRefusal: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str | None,
        "provider_id": str | None,
        "reason": str,
        "service_id": str | None,
        "reference": str | None,
    },
    CodeRevocation: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str,
        "provider_id": str | None,
    },
    CodeSupersession: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str,
        "provider_id": str | None,
        "superseded_by": str,
    },
    CodeLockout: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str,
        "provider_id": str | None,
        "failed_attempts": int,
    },
    CodeExpiry: {
        "at": datetime,
        "audit_ref": str | None,
        "code_id": str,
        "provider_id": str | None,
        "expired_at": datetime,
    },
}


def revoked(code_id: str = "c-1") -> CodeRevocation:
    """A small event to deliver."""
    return CodeRevocation(at=START, audit_ref=REF, code_id=code_id, provider_id="stc")


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
    """Each event type has its own stable kind, listed in a fixed order."""
    kinds = [event_type.kind for event_type in EVENT_TYPES]
    assert [
        "code_issued",
        "code_redeemed",
        "redemption_refused",
        "code_revoked",
        "code_superseded",
        "code_locked",
        "code_expired",
    ] == kinds
    assert len(kinds) == len(set(kinds))
    assert AuditEvent.kind not in kinds


def test_event_types_list_every_public_event() -> None:
    """EVENT_TYPES, the schemas and the samples cover exactly the public event classes."""
    public = {
        value
        for value in (getattr(events_module, name) for name in events_module.__all__)
        if isinstance(value, type) and issubclass(value, AuditEvent) and value is not AuditEvent
    }
    assert set(EVENT_TYPES) == public
    assert set(EVENT_TYPES) == set(SCHEMAS)
    assert set(EVENT_TYPES) == {type(event) for event in SAMPLE_EVENTS}


@pytest.mark.parametrize(("event", "expected"), SAMPLES, ids=lambda value: type(value).__name__)
def test_fields_give_the_kind_then_every_field_in_order(
    event: AuditEvent, expected: dict[str, object]
) -> None:
    """fields() is the kind, then every field in the documented order, JSON-ready."""
    fields = event.fields()
    assert expected == fields
    assert list(expected) == list(fields)
    assert expected == json.loads(json.dumps(fields))


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda value: value.__name__)
def test_schema_is_exactly_the_reviewed_one(event_type: type[AuditEvent]) -> None:
    """Every event's fields and their types are exactly the reviewed schema, nothing more."""
    hints = typing.get_type_hints(event_type)
    names = [field.name for field in attrs.fields(event_type)]
    assert SCHEMAS[event_type] == {name: hints[name] for name in names}
    sample = next(event for event in SAMPLE_EVENTS if type(event) is event_type)
    assert ["event", *SCHEMAS[event_type]] == list(sample.fields())


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
    "subject",
    "customer",
    "storage",
    "sealed",
}


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda value: value.__name__)
def test_no_field_can_hold_a_code_or_an_identity_number(event_type: type[AuditEvent]) -> None:
    """No field is named for a code, digest, identity, mobile number, recipient or storage key."""
    # By design: every field is named for an id, a time, a count, a flag or a reason; none for a
    # code, a digest, an identity number, a mobile number, a recipient, the storage key
    # (subject_ref) or an operator's pseudonym (customer_ref). "code_id" is the code's random id;
    # "reference" is the caller's own label for its agent or branch.
    for name, hint in typing.get_type_hints(event_type).items():
        if name == "kind":
            continue
        words = set(name.split("_"))
        assert name == "code_id" or not words & _FORBIDDEN_WORDS, name
        assert name.endswith(("_id", "_ref", "_at", "_by")) or name in {
            "at",
            "reason",
            "failed_attempts",
            "recovery",
            "reference",
        }, name
        assert hint in (str, str | None, datetime, int, bool), (name, hint)
    assert "audit_ref" in attrs.fields_dict(event_type)


def _refs_of(keyring: Keyring, identity: str) -> set[str]:
    """The storage key and every operator's pseudonym of ``identity``: none may be in an event."""
    refs = {keyring.subject_ref(identity, key.key_id) for key in keyring.pseudonym_keys}
    return refs | {keyring.customer_ref(identity, provider.id) for provider in SAUDI_PROVIDERS}


def _stored_values(storage: MemoryStorage) -> set[str]:
    """Every digest and sealed identity that storage holds, as the text an event could show."""
    values: set[str] = set()
    for snapshot in storage.snapshots():
        if snapshot.identity is not None:
            values.add(snapshot.identity)
        for record in snapshot.codes:
            values.add(record.digest.hex())
            kept = (record.msisdn_ref, record.recipient_ref, record.request_ref)
            values |= {value for value in (*kept, record.request_inputs) if value is not None}
    return values


def _refuse(expected: type[TelecardAuthError], call: Any, *args: Any, **kwargs: Any) -> None:
    """Call ``call(*args, **kwargs)``, which must raise ``expected``."""
    with pytest.raises(expected):
        call(*args, **kwargs)


def test_events_of_a_real_run_carry_the_audit_ref_and_never_a_storage_key(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """Every event of every kind, from a real run, names the customer by audit_ref only."""
    # Not the storage key (keyring.subject_ref) of the customer or of the recipient, no
    # operator's customer_ref, no stored digest or sealed identity, no number and no code.
    sink = CollectingSink()
    policy = Policy(on_live_code_limit="supersede")
    issuer = CodeIssuer(storage, keyring=keyring, policy=policy, clock=clock, events=sink)
    issued = [
        issuer.issue(citizen, "stc", service="new_line", msisdn="0551234567"),
        issuer.issue(citizen, "mobily", service="number_transfer", recipient=resident),
        issuer.issue(citizen, "zain"),
    ]
    stc, mobily, zain = issued
    # A wrong guess, then the right code with a request id and a reference.
    _refuse(WrongCode, issuer.redeem, citizen, "stc", other_code(stc.code), "new_line")
    issuer.redeem(
        citizen,
        "stc",
        stc.code,
        "new_line",
        msisdn="0551234567",
        request_id="req-0001",
        reference="branch-12",
    )
    issuer.revoke(citizen, mobily.code_id)

    # Two codes locked at zain, one after the other, spend the failure budget there: the next
    # code issued there is a recovery code.
    def lock(code: IssuedCode) -> None:
        for _ in range(policy.max_failed_attempts):
            _refuse(WrongCode, issuer.redeem, citizen, "zain", other_code(code.code), "new_line")

    lock(zain)
    issued.append(issuer.issue(citizen, "zain"))
    lock(issued[-1])
    issued.append(issuer.issue(citizen, "zain"))
    # Three live codes: one more supersedes the oldest.
    issued += [issuer.issue(citizen, "salam") for _ in range(3)]
    issued.append(issuer.issue(resident, "stc"))
    stored = _stored_values(storage)
    clock.advance(hours=72)
    assert 2 == issuer.purge()

    events = sink.events
    assert {event_type.kind for event_type in EVENT_TYPES} == {event.kind for event in events}
    assert any(isinstance(event, CodeIssuance) and event.recovery for event in events)
    customer, recipient = identity_of(citizen), identity_of(resident)
    # One audit ref per customer, whatever the provider; the recipient's own code has its own.
    theirs = [event for event in events if event.code_id == issued[-1].code_id]
    assert [CodeIssuance, CodeExpiry] == [type(event) for event in theirs]
    assert {keyring.audit_ref(recipient)} == {event.audit_ref for event in theirs}
    ours = [event for event in events if event not in theirs]
    assert {keyring.audit_ref(customer)} == {event.audit_ref for event in ours}
    assert {"stc", "mobily", "zain", "salam"} == {event.provider_id for event in ours}
    # Nine code digests, two sealed identities, and the digests of a mobile number, a recipient,
    # a request id and its inputs.
    assert len(issued) + 6 == len(stored)
    forbidden = _refs_of(keyring, customer) | _refs_of(keyring, recipient) | stored
    forbidden |= {code.code for code in issued}
    forbidden |= {citizen.identifier, resident.identifier, "551234567"}
    shown = [str(value) for event in events for value in event.fields().values()]
    assert [] == sorted({secret for secret in forbidden for text in shown if secret in text})


def test_an_expired_code_of_a_subject_whose_key_is_gone_has_no_audit_ref(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A code found expired under a retired pseudonym key is reported with audit_ref None."""
    issued = CodeIssuer(storage, keyring=keyring, clock=clock).issue(citizen, "stc")
    # The operator retired p1 without moving its subjects first: their identities stay sealed.
    retired = Keyring(keys=keyring.keys, pseudonym_keys=(HmacKey.generate("p2"),))
    sink = CollectingSink()
    clock.advance(hours=72)
    assert 1 == CodeIssuer(storage, keyring=retired, clock=clock, events=sink).purge()
    assert [
        CodeExpiry(
            at=clock.now(),
            audit_ref=None,
            code_id=issued.code_id,
            provider_id="stc",
            expired_at=issued.expires_at,
        )
    ] == sink.events


def test_events_from_a_real_issue_and_redeem_leak_neither_code_nor_identity_number(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logged through LoggingSink, the events of an issue and a redemption show no code or ID."""
    sink = CollectingSink()
    observed = CodeIssuer(storage, keyring=keyring, clock=clock, events=sink)
    issued = observed.issue(citizen, "stc", service="new_line")
    redemption = observed.redeem(citizen, "stc", issued.code, "new_line")
    events = sink.events
    assert [CodeIssuance, CodeRedemption] == [type(event) for event in events]
    assert [keyring.audit_ref(identity_of(citizen))] * 2 == [event.audit_ref for event in events]
    assert redemption.customer_ref != events[1].audit_ref
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    deliver([LoggingSink()], events)
    assert 2 == len(caplog.records)
    secrets = (issued.code, citizen.identifier, keyring.subject_ref(identity_of(citizen)))
    for record, event in zip(caplog.records, events, strict=True):
        message = record.getMessage()
        assert message.startswith(event.kind + " ")
        for text in (message, repr(event)):
            assert not any(secret in text for secret in secrets)
        for name, shown in structured(record).items():
            if name in ("at", "expires_at"):
                # Times only: they parse back as the event's own times.
                assert getattr(event, name) == datetime.fromisoformat(str(shown))
            else:
                assert not any(secret in str(shown) for secret in secrets), name


_refs = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)
_ids = st.text(min_size=1, max_size=40)
_optional_ids = st.none() | _ids


def _events() -> st.SearchStrategy[AuditEvent]:
    common: dict[str, Any] = {
        "at": aware_datetimes(),
        "audit_ref": _refs,
        "provider_id": _optional_ids,
    }
    return st.one_of(
        st.builds(
            CodeIssuance,
            **common,
            code_id=_ids,
            service_id=_optional_ids,
            expires_at=aware_datetimes(),
            key_id=_ids,
            recovery=st.booleans(),
        ),
        st.builds(
            CodeRedemption,
            **common,
            code_id=_ids,
            service_id=_ids,
            receipt_key_id=_optional_ids,
            request_id=_optional_ids,
            reference=_optional_ids,
        ),
        st.builds(
            RedemptionRefusal,
            **common,
            code_id=_optional_ids,
            reason=_ids,
            service_id=_optional_ids,
            reference=_optional_ids,
        ),
        st.builds(CodeRevocation, **common, code_id=_ids),
        st.builds(CodeSupersession, **common, code_id=_ids, superseded_by=_ids),
        st.builds(CodeLockout, **common, code_id=_ids, failed_attempts=st.integers(0, 1000)),
        st.builds(
            CodeExpiry,
            **{**common, "audit_ref": st.none() | _refs},
            code_id=_ids,
            expired_at=aware_datetimes(),
        ),
    )


@given(_events())
def test_any_event_serialises_to_json_and_back(event: AuditEvent) -> None:
    """Any event's fields() survive JSON; times are ISO text with microseconds."""
    fields = event.fields()
    assert fields == json.loads(json.dumps(fields))
    assert event.kind == fields["event"]
    assert ["at", "audit_ref", "code_id", "provider_id"] == list(fields)[1:5]
    for field in attrs.fields(type(event)):
        value = getattr(event, field.name)
        shown = fields[field.name]
        if isinstance(value, datetime):
            assert isinstance(shown, str)
            assert ISO_MICROSECONDS.fullmatch(shown)
            assert value == datetime.fromisoformat(shown)
        else:
            assert value == shown


def test_events_are_frozen_keyword_only_values() -> None:
    """Events cannot change, take keywords only, and compare by kind and fields."""
    event = revoked()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.code_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CodeRevocation(START, REF, "c-1", "stc")  # type: ignore[call-arg]
    assert revoked() == event
    assert revoked("c-2") != event
    assert hash(revoked()) == hash(event)
    # Same fields, another kind: not the same event.
    one: AuditEvent = CodeRevocation(at=START, audit_ref=REF, code_id="c", provider_id="stc")
    other: AuditEvent = CodeSupersession(
        at=START, audit_ref=REF, code_id="c", provider_id="stc", superseded_by="d"
    )
    assert one != other


# --- LoggingSink -----------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "expected"), SAMPLES, ids=lambda value: type(value).__name__)
def test_logging_sink_writes_one_record_with_the_fields(
    event: AuditEvent, expected: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    """One INFO record on the audit logger per event, carrying the event's fields."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    LoggingSink().emit(event)
    [record] = caplog.records
    assert "telecard_auth.audit" == record.name
    assert logging.INFO == record.levelno
    assert expected == structured(record)
    assert not record.args
    assert record.exc_info is None


def test_logging_sink_message_names_kind_and_fields_but_no_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message is the kind and name=value for every field but the time."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    sink = LoggingSink()
    sink.emit(SAMPLE_EVENTS[1])
    sink.emit(SAMPLE_EVENTS[2])
    assert [
        f"code_redeemed audit_ref={REF} code_id=c-1 provider_id=stc service_id=new_line "
        "receipt_key_id=r1 request_id=req-9 reference=branch-12",
        f"redemption_refused audit_ref={REF} code_id=- provider_id=zain reason=wrong_code "
        "service_id=lost_sim_replacement reference=agent-7",
    ] == [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize("field", ["request_id", "reference"])
def test_logging_sink_message_stays_one_line_whatever_a_caller_value_holds(
    field: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request id or reference with a newline or a forged field cannot break the line."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    value = "r1\ncode_redeemed code_id=forged %s"
    event = CodeRedemption(
        at=START,
        audit_ref=REF,
        code_id="c-1",
        provider_id="stc",
        service_id="new_line",
        **{field: value},
    )
    LoggingSink().emit(event)
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert f" {field}={value!r}" in message
    assert 1 == message.count("code_id=c-1")
    assert value == structured(record)[field]


def test_logging_sink_takes_a_logger_or_a_name_and_a_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink writes to the logger given by object or by name, at the level given."""
    caplog.set_level(logging.DEBUG, logger="custom.audit")
    by_logger = LoggingSink(logging.getLogger("custom.audit"), level=logging.WARNING)
    by_name = LoggingSink("custom.audit", level=logging.DEBUG)
    assert by_logger.logger is by_name.logger
    by_logger.emit(revoked("a"))
    by_name.emit(revoked("b"))
    assert [
        ("custom.audit", logging.WARNING, "a"),
        ("custom.audit", logging.DEBUG, "b"),
    ] == [(record.name, record.levelno, structured(record)["code_id"]) for record in caplog.records]


def test_logging_sink_writes_nothing_below_the_loggers_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The logger's level applies: a record below it is not written."""
    caplog.set_level(logging.WARNING, logger=AUDIT_LOGGER)
    LoggingSink().emit(revoked())
    assert [] == caplog.records
    LoggingSink(level=logging.ERROR).emit(revoked())
    assert [logging.ERROR] == [record.levelno for record in caplog.records]


@pytest.mark.parametrize(
    ("logger", "level"), [(42, logging.INFO), (None, logging.INFO), (AUDIT_LOGGER, "INFO")]
)
def test_logging_sink_refuses_what_is_not_a_logger_or_a_level(logger: Any, level: Any) -> None:
    """A logger that is not a Logger or a name, or a level that is not an int, is refused."""
    with pytest.raises(ConfigurationError):
        LoggingSink(logger, level)


# --- CollectingSink, Fanout, QueueSink -------------------------------------------------------


def test_collecting_sink_keeps_events_in_order_and_by_type() -> None:
    """CollectingSink keeps every event in order, filters by type and clears."""
    sink = CollectingSink()
    for event in SAMPLE_EVENTS:
        sink.emit(event)
    assert SAMPLE_EVENTS == sink.events
    assert [SAMPLE_EVENTS[5]] == sink.of_type(CodeLockout)
    assert SAMPLE_EVENTS == sink.of_type(AuditEvent)
    sink.clear()
    assert [] == sink.events


def test_collecting_sink_loses_nothing_under_threads() -> None:
    """Events from many threads at once are all kept, each thread's in its own order."""
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
    assert threads * per_thread == len(ids)
    for worker in range(threads):
        # Every event of each thread, in the order that thread sent them.
        assert [f"{worker}-{index}" for index in range(per_thread)] == [
            i for i in ids if i and i.startswith(f"{worker}-")
        ]


def test_fanout_sends_each_event_to_every_sink_in_order() -> None:
    """Fanout hands each event to its sinks in the order they were given."""
    journal: list[tuple[str, AuditEvent]] = []
    fanout = Fanout(Recorder("a", journal), Recorder("b", journal), Recorder("c", journal))
    first, second = revoked("1"), revoked("2")
    fanout.emit(first)
    fanout.emit(second)
    assert [
        ("a", first),
        ("b", first),
        ("c", first),
        ("a", second),
        ("b", second),
        ("c", second),
    ] == journal


def test_fanout_isolates_a_raising_sink(caplog: pytest.LogCaptureFixture) -> None:
    """A sink that raises inside a Fanout costs the others nothing, and the loss is reported."""
    before, after = CollectingSink(), CollectingSink()
    fanout = Fanout(before, BrokenSink(ValueError("disk full")), after)
    fanout.emit(revoked())
    assert [revoked()] == before.events == after.events
    [report] = lost_reports(caplog)
    assert "BrokenSink" in report.getMessage()


def test_fanout_refuses_what_is_not_a_sink() -> None:
    """Fanout takes sinks only."""
    with pytest.raises(ConfigurationError):
        Fanout(CollectingSink(), object())  # type: ignore[arg-type]


def test_queue_sink_drops_and_counts_what_does_not_fit() -> None:
    """A full queue drops the event and counts it; room again, events flow again."""
    events: queue.Queue[AuditEvent] = queue.Queue(maxsize=2)
    sink = QueueSink(events)
    for index in range(5):
        sink.emit(revoked(str(index)))
    assert 3 == sink.dropped
    assert ["0", "1"] == [events.get_nowait().code_id for _ in range(2)]
    assert events.empty()
    sink.emit(revoked("5"))
    assert 3 == sink.dropped
    assert revoked("5") == events.get_nowait()


def test_queue_sink_never_waits_on_a_full_queue() -> None:
    """QueueSink never asks the queue to block."""

    class NoWaiting(queue.Queue[AuditEvent]):
        # Every put of queue.Queue goes through put(); a sink must never ask it to block.
        def put(self, item: AuditEvent, block: bool = True, timeout: float | None = None) -> None:
            assert not block, "QueueSink asked the queue to wait"
            super().put(item, block, timeout)

    events = NoWaiting(maxsize=1)
    sink = QueueSink(events)
    sink.emit(revoked("kept"))
    sink.emit(revoked("dropped"))
    assert 1 == sink.dropped
    assert revoked("kept") == events.get_nowait()


def test_queue_sink_counts_every_drop_under_threads() -> None:
    """Under many threads, what was queued and what was dropped add up to what was sent."""
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
    assert capacity == events.qsize()
    assert threads * per_thread - capacity == sink.dropped


def test_queue_sink_refuses_what_is_not_a_queue() -> None:
    """QueueSink takes a queue only."""
    with pytest.raises(ConfigurationError):
        QueueSink([])  # type: ignore[arg-type]


def test_every_sink_is_an_event_sink() -> None:
    """The shipped sinks and any object with emit() are EventSinks; nothing else is."""

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
    """deliver hands each event to every sink, event by event."""
    journal: list[tuple[str, AuditEvent]] = []
    first, second = revoked("1"), revoked("2")
    deliver([Recorder("a", journal), Recorder("b", journal)], iter([first, second]))
    assert [("a", first), ("b", first), ("a", second), ("b", second)] == journal


def test_deliver_survives_a_raising_sink_and_reports_each_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising sink loses its events only, each reported with the event and the error."""
    before, after = CollectingSink(), CollectingSink()
    error = RuntimeError("sink is down")
    broken = BrokenSink(error)
    deliver([before, broken, after], SAMPLE_EVENTS)  # must not raise
    assert SAMPLE_EVENTS == before.events
    assert SAMPLE_EVENTS == after.events
    reports = lost_reports(caplog)
    assert len(SAMPLE_EVENTS) == len(reports)
    for report, event in zip(reports, SAMPLE_EVENTS, strict=True):
        assert logging.WARNING == report.levelno
        message = report.getMessage()
        assert "BrokenSink" in message
        assert event.kind in message
        assert "RuntimeError" in message
        assert report.exc_info is not None
        assert report.exc_info[1] is error
        assert event.fields() == structured(report)


def test_deliver_loses_only_the_failed_event_for_the_failing_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that fails on one event still gets the next ones."""
    flaky = BrokenSink(ValueError("bad moment"), on=frozenset({"2"}))
    other = CollectingSink()
    events = [revoked("1"), revoked("2"), revoked("3")]
    deliver([flaky, other], events)
    assert [revoked("1"), revoked("3")] == flaky.received
    assert events == other.events
    [report] = lost_reports(caplog)
    assert "code_id=2" in report.getMessage()


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), SystemExit(3)])
def test_deliver_lets_interruptions_through(interruption: BaseException) -> None:
    """KeyboardInterrupt and SystemExit from a sink stop delivery instead of being reported."""
    before, after = CollectingSink(), CollectingSink()
    with pytest.raises(type(interruption)):
        deliver([before, BrokenSink(interruption), after], [revoked("1"), revoked("2")])
    assert [revoked("1")] == before.events
    assert [] == after.events


def test_deliver_survives_a_logging_handler_that_raises(
    exploding_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A logging handler that raises cannot stop delivery to the other sinks."""
    # The audit record and the report of its loss both go to a handler that raises.
    collected = CollectingSink()
    deliver([LoggingSink(), collected, BrokenSink(OSError("gone"))], SAMPLE_EVENTS)
    assert SAMPLE_EVENTS == collected.events


def test_deliver_with_no_sinks_does_not_touch_the_events() -> None:
    """With no sinks, the events are not even iterated."""

    class Untouchable:
        def __iter__(self) -> Iterator[AuditEvent]:
            raise AssertionError("iterated")

    deliver([], Untouchable())


def test_deliver_reports_a_sink_without_emit(caplog: pytest.LogCaptureFixture) -> None:
    """An object without emit() among the sinks is reported, and the others still get events."""
    collected = CollectingSink()
    deliver([object(), collected], [revoked()])  # type: ignore[list-item]
    assert [revoked()] == collected.events
    [report] = lost_reports(caplog)
    assert "object" in report.getMessage()
    assert "AttributeError" in report.getMessage()


def test_queue_sink_then_worker_delivers_everything_in_order() -> None:
    """The documented pattern for slow sinks: the request enqueues, a worker drains in order."""
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
    assert SAMPLE_EVENTS == slow.events


def test_json_formatter_picks_up_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    """A JSON formatter, as the LoggingSink docstring shows, writes the event's fields."""

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
    assert expected == payload
