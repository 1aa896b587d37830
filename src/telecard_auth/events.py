"""Audit events: what happened to which code, told to the sinks an integrator plugs in.

The issuer builds one event per change it makes and hands them to its sinks with ``deliver`` once
the storage commit that made the change has landed, so an event never reports a change that did
not happen. Seven events exist, each with a stable machine name, its ``kind``:

=========================  ======================  ==============================================
event                      ``kind``                fields beyond the common four
=========================  ======================  ==============================================
``CodeIssuance``           ``code_issued``         ``service_id``, ``expires_at``, ``key_id``,
                                                   ``recovery``
``CodeRedemption``         ``code_redeemed``       ``service_id``, ``receipt_key_id``,
                                                   ``request_id``, ``reference``
``RedemptionRefusal``      ``redemption_refused``  ``reason`` (the error's stable ``code``),
                                                   ``service_id``, ``reference``
``CodeRevocation``         ``code_revoked``        none
``CodeSupersession``       ``code_superseded``     ``superseded_by`` (the new code's id)
``CodeLockout``            ``code_locked``         ``failed_attempts``
``CodeExpiry``             ``code_expired``        ``expired_at`` (found unused at purge)
=========================  ======================  ==============================================

Events are nouns, errors say what went wrong: ``events.CodeExpiry`` reports a code found expired,
``CodeExpired`` is the error a redemption of it raises. The ``kind`` strings are the machine names
logs and dashboards key on; they never change.

What an event carries: the time of the decision (``at``, UTC), the customer's audit pseudonym
(``audit_ref``, hex: a pseudonym of its own, neither the key under which storage files the
customer nor any operator's pseudonym of the customer), the code's random id (``code_id``), the
provider's and service's ids, the id of the key a code's digest was made with, counts, the stable
``code`` of a refusal, and the caller's own request id and reference (an operator's agent or
branch) given at redemption.

What an event never carries, by construction (no field exists that could hold it): a plaintext
code or any part of it, a code's digest, an identity number (national ID, Iqama, unified number,
government identifier), a mobile number, a recipient, a key or any other secret. Event names are
in English and stable; the people-facing messages of errors are not part of an event.

Delivery is synchronous, in-process, best-effort and at most once. A sink that raises never
undoes or blocks the code that was issued or redeemed: ``deliver`` catches the exception, logs it
on the ``telecard_auth.events`` logger, and goes on with the other sinks and the later events; the
event is lost for that sink. A guaranteed trail needs a sink that writes to durable storage itself
(and raises nothing), or reconciliation from storage. A slow sink slows every request: keep sinks
fast, or put a ``QueueSink`` in front of slow work.

>>> from datetime import UTC, datetime
>>> sink = CollectingSink()
>>> deliver(
...     [sink],
...     [
...         CodeRevocation(
...             at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
...             audit_ref="3f9a0c",
...             code_id="q1w2e3",
...             provider_id="stc",
...         )
...     ],
... )
>>> sink.events[0].fields()
{'event': 'code_revoked', 'at': '2026-03-01T09:00:00.000000+00:00', 'audit_ref': '3f9a0c',
 'code_id': 'q1w2e3', 'provider_id': 'stc'}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from queue import Full, Queue
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

import attrs

from telecard_auth._core.errors import ConfigurationError

__all__ = [
    "AUDIT_LOGGER",
    "EVENTS_LOGGER",
    "EVENT_TYPES",
    "AuditEvent",
    "CodeExpiry",
    "CodeIssuance",
    "CodeLockout",
    "CodeRedemption",
    "CodeRevocation",
    "CodeSupersession",
    "CollectingSink",
    "EventSink",
    "Fanout",
    "JsonLinesSink",
    "LoggingSink",
    "QueueSink",
    "RedemptionRefusal",
    "deliver",
]

#: The logger ``LoggingSink`` writes audit events to unless told otherwise.
AUDIT_LOGGER = "telecard_auth.audit"
#: The logger on which a failed delivery to a sink is reported.
EVENTS_LOGGER = "telecard_auth.events"

_log = logging.getLogger(EVENTS_LOGGER)

E = TypeVar("E", bound="AuditEvent")


def _iso(moment: datetime) -> str:
    # Always six fractional digits, so that every time in a log has one shape and sorts as text.
    return moment.isoformat(timespec="microseconds")


_COMMON_FIELDS = ("at", "audit_ref", "code_id", "provider_id")
_FIELD_ORDER: dict[type[AuditEvent], tuple[str, ...]] = {}


def _field_order(event_type: type[AuditEvent]) -> tuple[str, ...]:
    # attrs puts a field a subclass redeclares (a narrower ``code_id``) after the inherited ones;
    # a log reads better with the common fields first, always in the same order. Computing the
    # order twice under a race is harmless: both threads store the same tuple.
    order = _FIELD_ORDER.get(event_type)
    if order is None:
        own = (field.name for field in attrs.fields(event_type))
        order = _COMMON_FIELDS + tuple(name for name in own if name not in _COMMON_FIELDS)
        _FIELD_ORDER[event_type] = order
    return order


@attrs.frozen(kw_only=True)
class AuditEvent:
    """What every event has: when, whose, which code, at which provider.

    ``at`` is the time of the decision, timezone-aware UTC (the issuer's clock). ``audit_ref``
    is the customer's audit pseudonym, never the identity number nor the storage key; it is
    ``None`` only in a ``CodeExpiry`` whose subject's sealed identity could not be opened (its
    pseudonym key was retired). ``code_id`` is the random
    id of the code concerned (``None`` only where no code is, as in a refusal that matched none);
    ``provider_id`` the id of the provider. Events are built by the library and are not validated
    on construction: building one costs next to nothing.
    """

    #: The event's stable machine name; it never changes once released.
    kind: ClassVar[str] = "audit_event"

    at: datetime
    audit_ref: str | None
    code_id: str | None
    provider_id: str | None

    def fields(self) -> dict[str, object]:
        """A flat, JSON-ready mapping of the event: ``event`` (the kind), then every field.

        Times are ISO 8601 text with microseconds; every other value is text, an integer or
        ``None``. Keys come in a fixed order: the common fields first, then the event's own.
        """
        out: dict[str, object] = {"event": self.kind}
        for name in _field_order(type(self)):
            value = getattr(self, name)
            out[name] = _iso(value) if isinstance(value, datetime) else value
        return out


@attrs.frozen(kw_only=True)
class CodeIssuance(AuditEvent):
    """A code was issued. ``at`` is its issue time.

    ``service_id`` is the service the code is bound to (``None`` if unbound), ``expires_at`` the
    end of its validity and ``key_id`` the key its digest was made with. ``recovery`` is true for
    a recovery code: issued while the customer's failure budget at the provider was spent, which
    is worth an alert (someone may be guessing).
    """

    kind: ClassVar[str] = "code_issued"

    code_id: str
    service_id: str | None
    expires_at: datetime
    key_id: str
    recovery: bool = False


@attrs.frozen(kw_only=True)
class CodeRedemption(AuditEvent):
    """A code was used, once, for ``service_id``. ``at`` is the redemption time.

    ``receipt_key_id`` is the key a redemption receipt was signed with (``None`` if no receipt was
    made), ``request_id`` the caller's id for the redemption request and ``reference`` the
    caller's reference (the operator's agent or branch), each if it gave one.
    """

    kind: ClassVar[str] = "code_redeemed"

    code_id: str
    service_id: str
    receipt_key_id: str | None = None
    request_id: str | None = None
    reference: str | None = None


@attrs.frozen(kw_only=True)
class RedemptionRefusal(AuditEvent):
    """An attempt to redeem was refused; ``reason`` is the refusal's stable error ``code``.

    For example ``"wrong_code"``, ``"code_expired"`` or ``"failure_budget_exhausted"``.
    ``code_id`` is the code the attempt matched, or ``None`` when it matched none (a wrong code,
    or a refusal before any code was compared). ``service_id`` is the service asked for and
    ``reference`` the caller's reference (the operator's agent or branch), if it gave one: the
    way to find who is guessing.
    """

    kind: ClassVar[str] = "redemption_refused"

    reason: str
    service_id: str | None
    reference: str | None = None


@attrs.frozen(kw_only=True)
class CodeRevocation(AuditEvent):
    """A live code was cancelled by its owner. ``at`` is the time of cancellation."""

    kind: ClassVar[str] = "code_revoked"

    code_id: str


@attrs.frozen(kw_only=True)
class CodeSupersession(AuditEvent):
    """A live code was replaced by a newer one, ``superseded_by`` (the new code's id)."""

    kind: ClassVar[str] = "code_superseded"

    code_id: str
    superseded_by: str


@attrs.frozen(kw_only=True)
class CodeLockout(AuditEvent):
    """A code was locked after ``failed_attempts`` wrong attempts; it can no longer be used."""

    kind: ClassVar[str] = "code_locked"

    code_id: str
    failed_attempts: int


@attrs.frozen(kw_only=True)
class CodeExpiry(AuditEvent):
    """A code that was never used, revoked or locked was found expired when purging.

    ``at`` is the time of the purge and ``expired_at`` the end of the code's validity. A code's
    expiry is derived from time, never stored, so this event says when it was noticed, not when
    it happened.
    """

    kind: ClassVar[str] = "code_expired"

    code_id: str
    expired_at: datetime


#: Every event type, in a fixed order.
EVENT_TYPES: tuple[type[AuditEvent], ...] = (
    CodeIssuance,
    CodeRedemption,
    RedemptionRefusal,
    CodeRevocation,
    CodeSupersession,
    CodeLockout,
    CodeExpiry,
)


# --- sinks -----------------------------------------------------------------------------------


@runtime_checkable
class EventSink(Protocol):
    """Anything that takes audit events: one method, ``emit``.

    ``emit`` runs on the request's thread, after the change was stored, and should return quickly.
    It may raise: ``deliver`` reports the error and the event is lost for this sink only.
    """

    def emit(self, event: AuditEvent) -> None:
        """Take one event."""
        ...


def _token(value: object) -> str:
    # One event is one line: a caller's value (a request id) can neither break it nor forge a field.
    if value is None:
        return "-"
    text = str(value)
    if text and text.isprintable() and not any(char in text for char in " =\"'\\"):
        return text
    return repr(text)


def _summary(fields: dict[str, object]) -> str:
    words = [str(fields["event"])]
    words.extend(
        f"{name}={_token(value)}" for name, value in fields.items() if name not in ("event", "at")
    )
    return " ".join(words)


class LoggingSink:
    """Writes each event as one record to a stdlib ``logging`` logger.

    The message is the event's kind followed by ``name=value`` for each field but ``at`` (the
    record has its own time): ``code_redeemed audit_ref=… code_id=… provider_id=stc …``. Values
    that are missing show as ``-``; values with spaces, quotes or control characters are quoted,
    so a record is always one line. The structured fields, ``event.fields()``, travel on the
    record as one attribute, ``telecard_auth`` (one namespaced key cannot clash with a
    ``LogRecord`` attribute); a JSON formatter merges them into its output. When the logger is not
    enabled for ``level``, ``emit`` does nothing and costs almost nothing; mind that Python's
    default configuration shows only ``WARNING`` and above, so ``INFO`` records appear once
    logging is configured to show them.

    ``logger`` is a ``logging.Logger`` or a logger name (default ``"telecard_auth.audit"``).

    >>> import io, json
    >>> from datetime import UTC, datetime
    >>> class JsonFormatter(logging.Formatter):
    ...     def format(self, record: logging.LogRecord) -> str:
    ...         line = {"level": record.levelname, "logger": record.name}
    ...         line.update(getattr(record, "telecard_auth", {}))
    ...         return json.dumps(line)
    >>> stream = io.StringIO()
    >>> handler = logging.StreamHandler(stream)
    >>> handler.setFormatter(JsonFormatter())
    >>> logger = logging.getLogger("example.audit")
    >>> logger.addHandler(handler)
    >>> logger.setLevel(logging.INFO)
    >>> event = CodeLockout(
    ...     at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    ...     audit_ref="3f9a0c",
    ...     code_id="q1w2e3",
    ...     provider_id="stc",
    ...     failed_attempts=5,
    ... )
    >>> LoggingSink(logger).emit(event)
    >>> print(stream.getvalue().strip())
    {"level": "INFO", "logger": "example.audit", "event": "code_locked",
     "at": "2026-03-01T09:00:00.000000+00:00", "audit_ref": "3f9a0c", "code_id": "q1w2e3",
     "provider_id": "stc", "failed_attempts": 5}
    >>> logger.removeHandler(handler)

    With ``python-json-logger``, the fields appear nested under the ``"telecard_auth"`` key.
    """

    def __init__(
        self, logger: logging.Logger | str = AUDIT_LOGGER, level: int = logging.INFO
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise ConfigurationError(reason="the audit logger must be a logging.Logger or a name")
        if not isinstance(level, int) or isinstance(level, bool):
            raise ConfigurationError(reason="the audit log level must be an integer")
        self.logger = logger
        self.level = level

    def emit(self, event: AuditEvent) -> None:
        """Log ``event`` as one record, if the logger is enabled for the level."""
        if not self.logger.isEnabledFor(self.level):
            return
        fields = event.fields()
        # No arguments: the summary is the message as it stands, whatever "%" it holds.
        self.logger.log(self.level, _summary(fields), extra={"telecard_auth": fields})

    def __repr__(self) -> str:
        return f"LoggingSink(logger={self.logger.name!r}, level={self.level!r})"


class CollectingSink:
    """Keeps every event in ``events``, in the order received. For tests, the library's and yours.

    Safe to share between threads. Read a stable copy with ``list(sink.events)`` while others may
    still be emitting.

    >>> sink = CollectingSink()
    >>> sink.of_type(CodeIssuance)
    []
    """

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        """Append ``event``."""
        with self._lock:
            self.events.append(event)

    def of_type(self, event_type: type[E]) -> list[E]:
        """The events of one type (subclasses included), in order."""
        with self._lock:
            return [event for event in self.events if isinstance(event, event_type)]

    def clear(self) -> None:
        """Forget every event received so far."""
        with self._lock:
            self.events.clear()

    def __repr__(self) -> str:
        return f"CollectingSink(<{len(self.events)} events>)"


class Fanout:
    """A sink that sends each event to several sinks, in the order given.

    Each sink is isolated as ``deliver`` isolates it: one that raises is reported and skipped for
    that event, and the next sink still gets the event. ``emit`` itself raises no ``Exception``.
    """

    def __init__(self, *sinks: EventSink) -> None:
        for sink in sinks:
            if not isinstance(sink, EventSink):
                raise ConfigurationError(reason="every sink must have an emit(event) method")
        self.sinks: tuple[EventSink, ...] = sinks

    def emit(self, event: AuditEvent) -> None:
        """Send ``event`` to every sink, in order."""
        for sink in self.sinks:
            _emit_one(sink, event)

    def __repr__(self) -> str:
        return f"Fanout({', '.join(repr(sink) for sink in self.sinks)})"


class QueueSink:
    """Puts each event on a ``queue.Queue`` without ever waiting; a worker does the slow part.

    When the queue is full the event is dropped and counted in ``dropped``: the request goes on
    at full speed, and the count tells that the worker fell behind. The worker is the
    integrator's: a thread that takes events from the queue and hands them to a slow or remote
    sink, for example. ``multiprocessing`` queues work too.

    >>> import queue
    >>> sink = QueueSink(queue.Queue(maxsize=1))
    >>> sink.dropped
    0
    """

    def __init__(self, queue: Queue[AuditEvent]) -> None:
        if not callable(getattr(queue, "put_nowait", None)):
            raise ConfigurationError(reason="the queue must have a put_nowait(item) method")
        self.queue = queue
        self.dropped = 0
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        """Put ``event`` on the queue, or drop and count it if the queue is full."""
        try:
            self.queue.put_nowait(event)
        except Full:
            with self._lock:
                self.dropped += 1

    def __repr__(self) -> str:
        return f"QueueSink(dropped={self.dropped})"


class JsonLinesSink:
    """Appends each event to a file as one line of JSON (``event.fields()``), durably.

    The file is opened for appending (created with mode 0600 if new) and each event is one
    ``write`` of one line, so lines of several processes sharing the file never interleave.
    With ``fsync`` (the default) the line is on disk before ``emit`` returns: an event that was
    delivered survives a crash of the machine, at the cost of a disk flush per event. The
    trail is durable, not tamper-evident: whoever can write the file can change it.

    ``close()`` (or a ``with`` block) closes the file; events emitted afterwards raise, and
    ``deliver`` reports them as lost.

    >>> import json, pathlib, tempfile
    >>> from datetime import UTC, datetime
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
    >>> with JsonLinesSink(path) as sink:
    ...     sink.emit(
    ...         CodeRevocation(
    ...             at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    ...             audit_ref="3f9a0c",
    ...             code_id="q1w2e3",
    ...             provider_id="stc",
    ...         )
    ...     )
    >>> json.loads(path.read_text())["event"]
    'code_revoked'
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        if not isinstance(fsync, bool):
            raise ConfigurationError(reason="fsync must be True or False")
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._descriptor: int | None = os.open(path, flags, 0o600)
        except (OSError, TypeError, ValueError) as error:
            raise ConfigurationError(reason="the audit log file cannot be opened") from error
        self.path = os.fspath(path)
        self.fsync = fsync
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        """Append ``event`` as one line, flushed to disk when ``fsync`` is on."""
        line = json.dumps(event.fields(), ensure_ascii=False, separators=(",", ":")) + "\n"
        data = memoryview(line.encode("utf-8"))
        with self._lock:
            if self._descriptor is None:
                raise ValueError("the audit log is closed")
            while data:
                data = data[os.write(self._descriptor, data) :]
            if self.fsync:
                os.fsync(self._descriptor)

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        with self._lock:
            if self._descriptor is not None:
                os.close(self._descriptor)
                self._descriptor = None

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.path!r}, fsync={self.fsync})"


# --- delivery --------------------------------------------------------------------------------


def _report(sink: object, event: AuditEvent, error: Exception) -> None:
    # The report goes through logging, whose handlers may be as broken as the sink was: nothing
    # that fails here may reach the request. If even this fails, the failure is not reported.
    with contextlib.suppress(Exception):
        _log.warning(
            "audit event %s (code_id=%s) was not delivered to sink %s (%s); it is lost for that "
            "sink",
            event.kind,
            _token(getattr(event, "code_id", None)),
            type(sink).__qualname__,
            type(error).__qualname__,
            exc_info=error,
            extra={"telecard_auth": event.fields()},
        )


def _emit_one(sink: EventSink, event: AuditEvent) -> None:
    try:
        sink.emit(event)
    except Exception as error:
        _report(sink, event, error)


def deliver(sinks: Sequence[EventSink], events: Iterable[AuditEvent]) -> None:
    """Send every event to every sink, in order; never let a sink's error reach the caller.

    The issuer calls this after the storage commit that the events describe has landed: the code
    is issued or redeemed whatever a sink does. For each event in turn, each sink gets it in turn.
    An ``Exception`` from a sink is caught and logged at ``WARNING`` on the
    ``telecard_auth.events`` logger, with the sink's type name, the event's kind and code id, the
    exception and its traceback, and the event's fields under the record's ``telecard_auth``
    attribute; the event is then lost for that sink, and delivery goes on with the other sinks and
    the later events. Should logging that report fail too, it is dropped silently.

    Delivery is at most once, in-process and best-effort: nothing is retried or kept. An
    interruption that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) propagates
    at once, and the events not yet delivered are lost.

    With no sinks, ``events`` is not even iterated.
    """
    if not sinks:
        return
    for event in events:
        for sink in sinks:
            _emit_one(sink, event)
