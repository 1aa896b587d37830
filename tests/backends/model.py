"""A small reference model of the issuer's rules, for the model-based test.

It is written from the rules as documented (``CodeIssuer``, ``Policy``, the errors and the list of
changes of security issue 12), not from the library's code: it never imports ``telecard_auth``'s
core. It keeps plaintext codes (the library keeps digests), so "the typed code matches a record"
is plain equality of codes for the same subject and provider; subjects and recipients are names.
Every verb returns the outcome the library must give: a ``Refused`` naming the error class and
its data, an ``Issued``, a ``Redeemed``, a ``CodeStatus`` or a count; and it appends to ``events``
the audit events the call must emit, as ``Event`` tuples.

The rules it holds, beside validity, single use and the live-code limit:

- A wrong code is charged (to every live code compared and to the failure budget at that
  provider) only when it was compared with at least one live code of the subject there;
  otherwise it is ``WrongCode`` and nothing is stored.
- Recovery: while the budget at a provider is spent, a code issued there is a recovery code if
  fewer than ``recovery_codes`` were issued there in the window. While the budget is spent only
  recovery codes are compared: a wrong code is charged to the live recovery codes only (never to
  the budget), and they lock after ``recovery_attempts``; with none live, the redemption is
  ``FailureBudgetExhausted`` before any comparison.
- A number transfer: issuing for it needs a recipient (another person), and only it may name
  one; redeeming a code that names no recipient for a transfer is ``TransferNotBound``
  (uncounted). A bound code needs its recipient presented (``BindingRequired``, uncounted) and
  the right one (``BindingMismatch``, counted against that code and, outside recovery, the budget).
- Request ids belong to one subject at one provider: a retry repeats the code, service,
  recipient and reference exactly; the same id with another right code or other inputs is
  ``RequestConflict``.
- A reference is 1-64 printable ASCII characters (else ``InvalidReference``) and shows in
  events (and in receipts), stored only within a request id's inputs.

What storage keeps is modelled too, because it is visible: a subject's records past expiry plus
``retention`` are dropped whenever that subject's state is written, each write moves the
subject's version on by one, and ``purge`` deletes a whole subject once nothing of it matters
(``keep_until``, computed at its last write). A dropped code answers ``UnknownCode`` to
``status`` and ``revoke``, and is a wrong code to ``redeem``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from telecard_auth import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    CodeState,
    CodeStatus,
    CodeSuperseded,
    FailureBudgetExhausted,
    InvalidBinding,
    InvalidReference,
    LiveCodeLimitReached,
    RequestConflict,
    ServiceMismatch,
    TelecardAuthError,
    TransferNotBound,
    UnknownCode,
    WrongCode,
)

__all__ = ["Event", "Issued", "Model", "ModelCode", "Outcome", "Redeemed", "Refused", "Rules"]

#: A reference or request id: 1-64 printable ASCII characters, no spaces.
_TOKEN = re.compile(r"[!-~]{1,64}", re.ASCII)


@dataclass(frozen=True)
class Rules:
    """The numbers of the policy under test."""

    services: tuple[str, ...]
    ttl: timedelta
    ttl_by_service: Mapping[str, timedelta]
    max_failed_attempts: int
    failure_budget: int
    failure_window: timedelta
    max_live_codes: int
    supersede: bool
    retention: timedelta
    recovery_codes: int
    recovery_attempts: int
    transfer_services: frozenset[str]

    def ttl_for(self, service: str | None) -> timedelta:
        """A service's validity; an unbound code lives as long as the longest of them."""
        if service is None:
            return max(self.ttl_for(one) for one in self.services)
        return self.ttl_by_service.get(service, self.ttl)


@dataclass(frozen=True)
class Refused:
    """The call raises exactly ``error`` (not a subclass), with exactly these data details."""

    error: type[TelecardAuthError]
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Issued:
    """What ``issue`` returns, the plaintext code aside."""

    code_id: str
    provider: str
    service: str | None
    issued_at: datetime
    expires_at: datetime
    superseded: tuple[str, ...]


@dataclass(frozen=True)
class Redeemed:
    """What ``redeem`` returns (the customer's pseudonym and receipt aside)."""

    code_id: str
    provider: str
    service: str
    issued_at: datetime
    redeemed_at: datetime


Outcome = Refused | Issued | Redeemed | CodeStatus | int

#: An audit event, its kind first, then what identifies it (times and pseudonyms aside):
#: ``("issued", provider, code id, service, expires at, recovery)``,
#: ``("superseded", provider, code id, superseded by)``,
#: ``("redeemed", provider, code id, service, request id, reference)``,
#: ``("refused", provider, code id or None, reason, service, reference)``,
#: ``("locked", provider, code id, failed attempts)``, ``("revoked", provider, code id)``.
Event = tuple[object, ...]


@dataclass
class ModelCode:
    """One issued code as the model sees it; ``stored`` turns False when storage drops it."""

    code_id: str
    subject: str
    provider: str
    code: str
    service: str | None
    recipient: str | None
    issued_at: datetime
    expires_at: datetime
    recovery: bool = False
    state: CodeState = CodeState.ACTIVE
    failed_attempts: int = 0
    finished_at: datetime | None = None
    redeemed_service: str | None = None
    #: ``(request id, service, recipient)`` of the redemption that used it with a request id.
    request: tuple[str, str, str | None, str | None] | None = None
    stored: bool = True


@dataclass
class Log:
    """A subject's recent wrong attempts and recovery codes at one provider."""

    failures: list[datetime] = field(default_factory=list)
    recoveries: list[datetime] = field(default_factory=list)

    def last(self) -> datetime:
        """The latest moment the log remembers."""
        return max(self.failures[-1:] + self.recoveries[-1:])


_REFUSED_STATES: dict[CodeState, type[TelecardAuthError]] = {
    CodeState.REDEEMED: CodeAlreadyUsed,
    CodeState.REVOKED: CodeRevoked,
    CodeState.LOCKED: CodeLocked,
    CodeState.SUPERSEDED: CodeSuperseded,
}


class Model:
    """Subjects' codes (in issue order), logs per subject and provider, versions, and the time."""

    def __init__(self, rules: Rules, now: datetime) -> None:
        self.rules = rules
        self.now = now
        self.codes: list[ModelCode] = []
        self.logs: dict[tuple[str, str], Log] = {}
        #: The ``keep_until`` of each subject's last write; absent when nothing is stored.
        self.keep_until: dict[str, datetime] = {}
        #: Writes since each stored subject was created: its version in storage.
        self.versions: dict[str, int] = {}
        #: How many times each subject was created in storage (its lives, each a new incarnation).
        self.lives: dict[str, int] = {}
        #: ``(code id, expiry, purge time)`` of each unused code deleted by purges so far.
        self.purged_unused: set[tuple[str, datetime, datetime]] = set()
        #: The audit events of the calls so far; the test takes them after each call.
        self.events: list[Event] = []

    # --- reading --------------------------------------------------------------------------

    def stored(self, subject: str) -> list[ModelCode]:
        """The subject's stored codes, oldest issue first."""
        return [code for code in self.codes if code.subject == subject and code.stored]

    def find(self, subject: str, code_id: str) -> ModelCode | None:
        """The subject's stored code with this id, if any."""
        return next((code for code in self.stored(subject) if code.code_id == code_id), None)

    def is_live(self, code: ModelCode) -> bool:
        """Active and not yet expired."""
        return code.stored and code.state is CodeState.ACTIVE and self.now < code.expires_at

    def limit(self, code: ModelCode) -> int:
        """Wrong attempts after which ``code`` locks: fewer for a recovery code."""
        return self.rules.recovery_attempts if code.recovery else self.rules.max_failed_attempts

    def status_of(self, code: ModelCode) -> CodeStatus:
        """The status the library reports for a stored code, expiry derived from the time."""
        state = code.state
        if state is CodeState.ACTIVE and self.now >= code.expires_at:
            state = CodeState.EXPIRED
        left = self.limit(code) - code.failed_attempts
        return CodeStatus(
            code_id=code.code_id,
            provider_id=code.provider,
            state=state,
            service_id=code.service,
            issued_at=code.issued_at,
            expires_at=code.expires_at,
            failed_attempts=code.failed_attempts,
            attempts_left=max(left, 0) if state is CodeState.ACTIVE else 0,
            finished_at=code.finished_at,
            redeemed_service_id=code.redeemed_service,
        )

    def recent(self, moments: list[datetime]) -> list[datetime]:
        """The moments inside the sliding window that ends now."""
        start = self.now - self.rules.failure_window
        return [moment for moment in moments if moment > start]

    def log(self, subject: str, provider: str) -> Log:
        """The subject's log at the provider (empty if nothing is kept)."""
        return self.logs.get((subject, provider), Log())

    def budget_spent(self, subject: str, provider: str) -> bool:
        """Whether the subject's wrong attempts at the provider fill the budget's window."""
        failures = self.recent(self.log(subject, provider).failures)
        return len(failures) >= self.rules.failure_budget

    # --- the verbs ------------------------------------------------------------------------

    def issue(
        self,
        subject: str,
        provider: str,
        service: str | None,
        *,
        recipient: str | None,
        code_id: str,
        code: str,
    ) -> Outcome:
        """Issue ``code`` (as drawn by the library) under ``code_id``, or refuse."""
        rules = self.rules
        transfer = service in rules.transfer_services
        if transfer != (recipient is not None) or recipient == subject:
            return Refused(InvalidBinding)
        live = [one for one in self.stored(subject) if self.is_live(one)]
        superseded: list[ModelCode] = []
        if len(live) >= rules.max_live_codes:
            if not rules.supersede:
                next_free = min(one.expires_at for one in live)
                seconds = max(1, -((self.now - next_free) // timedelta(seconds=1)))
                return Refused(
                    LiveCodeLimitReached,
                    {"limit": rules.max_live_codes, "next_free": next_free, "retry_after": seconds},
                )
            # Oldest first; a stable sort keeps codes of one instant in issue order.
            oldest = sorted(live, key=lambda one: one.issued_at)
            superseded = oldest[: len(live) - rules.max_live_codes + 1]
            for old in superseded:
                old.state = CodeState.SUPERSEDED
                old.finished_at = self.now
                self.events.append(("superseded", old.provider, old.code_id, code_id))
        recovery = False
        if self.budget_spent(subject, provider):
            log = self.logs.setdefault((subject, provider), Log())
            if len(self.recent(log.recoveries)) < rules.recovery_codes:
                recovery = True
                log.recoveries.append(self.now)
        new = ModelCode(
            code_id=code_id,
            subject=subject,
            provider=provider,
            code=code,
            service=service,
            recipient=recipient,
            issued_at=self.now,
            expires_at=self.now + rules.ttl_for(service),
            recovery=recovery,
        )
        self.codes.append(new)
        self.events.append(("issued", provider, code_id, service, new.expires_at, recovery))
        self._write(subject)
        return Issued(
            code_id=code_id,
            provider=provider,
            service=service,
            issued_at=new.issued_at,
            expires_at=new.expires_at,
            superseded=tuple(old.code_id for old in superseded),
        )

    def redeem(
        self,
        subject: str,
        provider: str,
        code: str,
        service: str,
        *,
        recipient: str | None = None,
        request_id: str | None = None,
        reference: str | None = None,
    ) -> Outcome:
        """Use ``code`` once, at the provider it was issued for, for one service, in time."""
        if reference is not None and not _TOKEN.fullmatch(reference):
            return Refused(InvalidReference)
        here = [one for one in self.stored(subject) if one.provider == provider]
        inputs = (request_id, service, recipient, reference)

        def refuse(
            error: type[TelecardAuthError], code_id: str | None = None, **details: object
        ) -> Refused:
            self.events.append(("refused", provider, code_id, error.code, service, reference))
            return Refused(error, details)

        prior = None
        if request_id is not None:
            prior = next(
                (one for one in here if one.request and one.request[0] == request_id), None
            )
            # A retry: the request id's own code typed again, with the same inputs.
            if prior is not None and prior.code == code:
                if prior.request != inputs:
                    return refuse(RequestConflict, prior.code_id)
                assert prior.finished_at is not None
                return Redeemed(
                    prior.code_id, provider, service, prior.issued_at, prior.finished_at
                )
        recovering = self.budget_spent(subject, provider)
        candidates = [one for one in here if one.recovery] if recovering else here
        live = [one for one in candidates if self.is_live(one)]
        if recovering and not live:
            # Refused before any comparison: a locked-out guesser learns nothing.
            failures = self.recent(self.log(subject, provider).failures)
            retry_at = failures[-self.rules.failure_budget] + self.rules.failure_window
            seconds = max(1, -((self.now - retry_at) // timedelta(seconds=1)))
            return refuse(FailureBudgetExhausted, retry_at=retry_at, retry_after=seconds)
        matching = [one for one in candidates if one.code == code]
        if not matching:
            if not live:
                return refuse(WrongCode)  # it could not have succeeded: counted nowhere
            refused = refuse(WrongCode)
            self._charge(subject, provider, live, budget=not recovering)
            return refused
        # Should two records share a code, the live one wins, then the newest (first of equals).
        record = max(matching, key=lambda one: (self.is_live(one), one.issued_at))
        if prior is not None:
            return refuse(RequestConflict, record.code_id)
        unusable = self._unusable(record, service)
        if unusable is not None:
            error, details = unusable
            return refuse(error, record.code_id, **details)
        if record.recipient is not None:
            if recipient is None:
                return refuse(BindingRequired, record.code_id, binding="recipient")
            if recipient != record.recipient:
                refused = refuse(BindingMismatch, record.code_id, binding="recipient")
                self._charge(subject, provider, [record], budget=not recovering)
                return refused
        record.state = CodeState.REDEEMED
        record.finished_at = self.now
        record.redeemed_service = service
        if request_id is not None:
            record.request = (request_id, service, recipient, reference)
        self.events.append(("redeemed", provider, record.code_id, service, request_id, reference))
        self._write(subject)
        return Redeemed(record.code_id, provider, service, record.issued_at, self.now)

    def _unusable(
        self, record: ModelCode, service: str
    ) -> tuple[type[TelecardAuthError], dict[str, object]] | None:
        """Why the right code ``record`` cannot serve ``service`` now; never counted."""
        rules, now = self.rules, self.now
        if record.state in _REFUSED_STATES:
            return _REFUSED_STATES[record.state], {}
        if now >= record.expires_at:
            return CodeExpired, {"expired_at": record.expires_at}
        if record.service is not None and record.service != service:
            return ServiceMismatch, {}
        if service in rules.transfer_services and record.recipient is None:
            return TransferNotBound, {}
        deadline = min(record.expires_at, record.issued_at + rules.ttl_for(service))
        if now >= deadline:
            return CodeExpired, {"expired_at": deadline}
        return None

    def _charge(self, subject: str, provider: str, codes: list[ModelCode], *, budget: bool) -> None:
        """One wrong attempt on each of ``codes`` (locking at its limit) and, with ``budget``, on
        the subject's failure budget at the provider."""
        for one in codes:
            one.failed_attempts += 1
            if one.failed_attempts >= self.limit(one):
                one.state = CodeState.LOCKED
                one.finished_at = self.now
                self.events.append(("locked", provider, one.code_id, one.failed_attempts))
        if budget:
            self.logs.setdefault((subject, provider), Log()).failures.append(self.now)
        self._write(subject)

    def revoke(self, subject: str, code_id: str) -> Outcome:
        """Cancel a live code; an unusable one is left as it is, a used one refuses."""
        record = self.find(subject, code_id)
        if record is None:
            return Refused(UnknownCode)
        if record.state is CodeState.REDEEMED:
            return Refused(CodeAlreadyUsed)
        if self.is_live(record):
            record.state = CodeState.REVOKED
            record.finished_at = self.now
            self.events.append(("revoked", record.provider, code_id))
            self._write(subject)
        return self.status_of(record)

    def status(self, subject: str, code_id: str) -> Outcome:
        """The state of one of the subject's stored codes."""
        record = self.find(subject, code_id)
        return Refused(UnknownCode) if record is None else self.status_of(record)

    def purge(self) -> int:
        """Delete every subject whose ``keep_until`` has come; how many were deleted.

        Each code deleted while still active (and so expired) is noted in ``purged_unused``.
        """
        done = [subject for subject, until in self.keep_until.items() if until <= self.now]
        for subject in done:
            for code in self.stored(subject):
                code.stored = False
                if code.state is CodeState.ACTIVE:
                    self.purged_unused.add((code.code_id, code.expires_at, self.now))
            for key in [key for key in self.logs if key[0] == subject]:
                del self.logs[key]
            del self.keep_until[subject]
            del self.versions[subject]
        return len(done)

    # --- storage --------------------------------------------------------------------------

    def _write(self, subject: str) -> None:
        """The subject's state is written: records past retention and logs past the window go,
        ``keep_until`` is set, the version moves on."""
        rules, now = self.rules, self.now
        keep = [now]
        for code in self.stored(subject):
            if code.expires_at + rules.retention <= now:
                code.stored = False
            else:
                keep.append(code.expires_at + rules.retention)
        for (owner, provider), log in list(self.logs.items()):
            if owner == subject:
                if log.last() + rules.failure_window <= now:
                    del self.logs[owner, provider]
                else:
                    keep.append(log.last() + rules.failure_window)
        self.keep_until[subject] = max(keep)
        if subject not in self.versions:
            self.lives[subject] = self.lives.get(subject, 0) + 1
        self.versions[subject] = self.versions.get(subject, 0) + 1

    def boundaries(self) -> list[datetime]:
        """Every moment at which some answer changes: expiries, service deadlines, windows, ends."""
        rules = self.rules
        moments = list(self.keep_until.values())
        for code in self.codes:
            if code.stored:
                moments.append(code.expires_at)
                moments.append(code.expires_at + rules.retention)
                moments.extend(code.issued_at + rules.ttl_for(one) for one in rules.services)
        for log in self.logs.values():
            moments.extend(moment + rules.failure_window for moment in log.failures)
            moments.extend(moment + rules.failure_window for moment in log.recoveries)
        return sorted(set(moments))
