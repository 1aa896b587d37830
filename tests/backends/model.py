"""A small reference model of the issuer's rules, for the model-based test.

It is written from the rules as documented (``CodeIssuer``, ``Policy``, the errors), not from the
library's code: it never imports ``telecard_auth._core``. It keeps plaintext codes (the library
keeps digests), so "the typed code matches a record" is plain equality of codes for the same
subject and provider. Every verb returns the outcome the library must give: a ``Refused`` naming
the error class and its details, an ``Issued``, a ``Redeemed``, a ``CodeStatus`` or a count.

What storage keeps is modelled too, because it is visible: a subject's records past expiry plus
``retention`` are dropped whenever that subject's state is written, and ``purge`` deletes a whole
subject once nothing of it matters (``keep_until``, computed at its last write). A dropped code
answers ``UnknownCode`` to ``status`` and ``revoke``, and is a wrong code to ``redeem``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from telecard_auth import (
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    CodeState,
    CodeStatus,
    CodeSuperseded,
    FailureBudgetExhausted,
    LiveCodeLimitReached,
    RequestConflict,
    ServiceMismatch,
    TelecardAuthError,
    UnknownCode,
    WrongCode,
)

__all__ = ["Issued", "Model", "ModelCode", "Outcome", "Redeemed", "Refused", "Rules"]


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

    def ttl_for(self, service: str | None) -> timedelta:
        """A service's validity; an unbound code lives as long as the longest of them."""
        if service is None:
            return max(self.ttl_for(one) for one in self.services)
        return self.ttl_by_service.get(service, self.ttl)


@dataclass(frozen=True)
class Refused:
    """The call raises exactly ``error`` (not a subclass), with exactly these details."""

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
    """What ``redeem`` returns (the subject's pseudonym and receipt aside)."""

    code_id: str
    provider: str
    service: str
    issued_at: datetime
    redeemed_at: datetime


Outcome = Refused | Issued | Redeemed | CodeStatus | int


@dataclass
class ModelCode:
    """One issued code as the model sees it; ``stored`` turns False when storage drops it."""

    code_id: str
    subject: str
    provider: str
    code: str
    service: str | None
    issued_at: datetime
    expires_at: datetime
    state: CodeState = CodeState.ACTIVE
    failed_attempts: int = 0
    finished_at: datetime | None = None
    redeemed_service: str | None = None
    #: ``(request id, provider, service)`` of the redemption that used it with a request id.
    request: tuple[str, str, str] | None = None
    stored: bool = True


_REFUSED_STATES: dict[CodeState, type[TelecardAuthError]] = {
    CodeState.REDEEMED: CodeAlreadyUsed,
    CodeState.REVOKED: CodeRevoked,
    CodeState.LOCKED: CodeLocked,
    CodeState.SUPERSEDED: CodeSuperseded,
}


class Model:
    """Subjects' codes (in issue order), failure times per subject and provider, and the time."""

    def __init__(self, rules: Rules, now: datetime) -> None:
        self.rules = rules
        self.now = now
        self.codes: list[ModelCode] = []
        self.failures: dict[tuple[str, str], list[datetime]] = {}
        #: The ``keep_until`` of each subject's last write; absent when nothing is stored.
        self.keep_until: dict[str, datetime] = {}
        #: ``(code id, expiry, purge time)`` of each unused code deleted by purges so far.
        self.purged_unused: set[tuple[str, datetime, datetime]] = set()

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

    def status_of(self, code: ModelCode) -> CodeStatus:
        """The status the library reports for a stored code, expiry derived from the time."""
        state = code.state
        if state is CodeState.ACTIVE and self.now >= code.expires_at:
            state = CodeState.EXPIRED
        left = self.rules.max_failed_attempts - code.failed_attempts
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

    def recent_failures(self, subject: str, provider: str) -> list[datetime]:
        """Wrong attempts of the subject at the provider inside the sliding window."""
        start = self.now - self.rules.failure_window
        return [moment for moment in self.failures.get((subject, provider), []) if moment > start]

    # --- the verbs ------------------------------------------------------------------------

    def issue(
        self, subject: str, provider: str, service: str | None, code_id: str, code: str
    ) -> Outcome:
        """Issue ``code`` (as drawn by the library) under ``code_id``, or refuse at the limit."""
        rules = self.rules
        live = [one for one in self.stored(subject) if self.is_live(one)]
        superseded: list[ModelCode] = []
        if len(live) >= rules.max_live_codes:
            if not rules.supersede:
                next_free = min(one.expires_at for one in live)
                return Refused(
                    LiveCodeLimitReached, {"limit": rules.max_live_codes, "next_free": next_free}
                )
            # Oldest first; a stable sort keeps codes of one instant in issue order.
            oldest = sorted(live, key=lambda one: one.issued_at)
            superseded = oldest[: len(live) - rules.max_live_codes + 1]
            for old in superseded:
                old.state = CodeState.SUPERSEDED
                old.finished_at = self.now
        new = ModelCode(
            code_id=code_id,
            subject=subject,
            provider=provider,
            code=code,
            service=service,
            issued_at=self.now,
            expires_at=self.now + rules.ttl_for(service),
        )
        self.codes.append(new)
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
        self, subject: str, provider: str, code: str, service: str, request_id: str | None
    ) -> Outcome:
        """Use ``code`` once, at the provider it was issued for, for one service, in time."""
        rules, now = self.rules, self.now
        codes = self.stored(subject)
        prior = None
        if request_id is not None:
            prior = next(
                (one for one in codes if one.request and one.request[0] == request_id), None
            )
            # A retry: the request id's own code, typed again at its provider.
            if prior is not None and prior.provider == provider and prior.code == code:
                if prior.request != (request_id, provider, service):
                    return Refused(RequestConflict)
                assert prior.finished_at is not None
                return Redeemed(
                    prior.code_id, provider, service, prior.issued_at, prior.finished_at
                )
        # An exhausted budget refuses before the code is even compared.
        recent = self.recent_failures(subject, provider)
        if len(recent) >= rules.failure_budget:
            retry_after = recent[-rules.failure_budget] + rules.failure_window
            return Refused(FailureBudgetExhausted, {"retry_after": retry_after})
        matching = [one for one in codes if one.provider == provider and one.code == code]
        if not matching:
            # A wrong code counts against every live code there, and against the budget.
            for one in codes:
                if one.provider == provider and self.is_live(one):
                    one.failed_attempts += 1
                    if one.failed_attempts >= rules.max_failed_attempts:
                        one.state = CodeState.LOCKED
                        one.finished_at = now
            self.failures.setdefault((subject, provider), []).append(now)
            self._write(subject)
            return Refused(WrongCode)
        # Should two records share a code, the live one wins, then the newest (first of equals).
        record = max(matching, key=lambda one: (self.is_live(one), one.issued_at))
        if prior is not None:
            return Refused(RequestConflict)
        if record.state in _REFUSED_STATES:
            return Refused(_REFUSED_STATES[record.state])
        if now >= record.expires_at:
            return Refused(CodeExpired, {"expired_at": record.expires_at})
        if record.service is not None and record.service != service:
            return Refused(ServiceMismatch)
        deadline = min(record.expires_at, record.issued_at + rules.ttl_for(service))
        if now >= deadline:
            return Refused(CodeExpired, {"expired_at": deadline})
        record.state = CodeState.REDEEMED
        record.finished_at = now
        record.redeemed_service = service
        if request_id is not None:
            record.request = (request_id, provider, service)
        self._write(subject)
        return Redeemed(record.code_id, provider, service, record.issued_at, now)

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
            for key in [key for key in self.failures if key[0] == subject]:
                del self.failures[key]
            del self.keep_until[subject]
        return len(done)

    # --- storage --------------------------------------------------------------------------

    def _write(self, subject: str) -> None:
        """The subject's state is written: records past retention go, ``keep_until`` is set."""
        rules, now = self.rules, self.now
        keep = [now]
        for code in self.stored(subject):
            if code.expires_at + rules.retention <= now:
                code.stored = False
            else:
                keep.append(code.expires_at + rules.retention)
        for (owner, provider), moments in list(self.failures.items()):
            if owner == subject:
                if moments[-1] + rules.failure_window <= now:
                    del self.failures[owner, provider]
                else:
                    keep.append(moments[-1] + rules.failure_window)
        self.keep_until[subject] = max(keep)

    def boundaries(self) -> list[datetime]:
        """Every moment at which some answer changes: expiries, service deadlines, windows, ends."""
        rules = self.rules
        moments = list(self.keep_until.values())
        for code in self.codes:
            if code.stored:
                moments.append(code.expires_at)
                moments.append(code.expires_at + rules.retention)
                moments.extend(code.issued_at + rules.ttl_for(one) for one in rules.services)
        for log in self.failures.values():
            moments.extend(moment + rules.failure_window for moment in log)
        return sorted(set(moments))
