"""The rules of the service, in one place, as pure functions.

Everything that decides whether a code is issued, accepted, refused, counted or locked lives in
this module: eligibility (R1), provider binding (R2), validity (R3), single use for one service
(R4, R5), attempt limits, the failure budget and its recovery codes, and the mobile-number and
recipient bindings.

Nothing here reads a clock, touches storage or draws randomness: the shell (``CodeIssuer``) reads
the clock, draws codes and ids, loads the subject's snapshot, calls a ``decide_*`` function and
commits what it returns. Requests are checked
before anything is loaded (``requests.prepare_*``). ``decide_*`` functions never raise for a
refusal: they return a ``Decision`` holding the commit (if anything changes), the result or the
error, and the audit events, so that a refusal that must be recorded (a wrong attempt is counted)
and one that changes nothing take the same path.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Generic, TypeVar

import attrs

from telecard_auth import events as audit
from telecard_auth._core.errors import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    CodeSuperseded,
    FailureBudgetExhausted,
    LiveCodeLimitReached,
    RequestConflict,
    ServiceMismatch,
    TelecardAuthError,
    TransferNotBound,
    UnknownCode,
    WrongCode,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import (
    CodeState,
    CodeStatus,
    IssuedCode,
    Redemption,
)
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._core.requests import (
    IssueRequest,
    LookupRequest,
    RedeemRequest,
    redemption_for,
)
from telecard_auth._storage.protocol import CodeRecord, Commit, FailureLog, SubjectSnapshot

T = TypeVar("T")

_MSISDN_BINDING = ("mobile number", "رقم الجوال")
_RECIPIENT_BINDING = ("recipient", "هوية المستلم")


@attrs.frozen
class Decision(Generic[T]):
    """What a ``decide_*`` function returns: a change to commit (or none), a result or an error.

    ``events`` tell what the decision did, for the issuer's sinks once the commit has landed.
    """

    commit: Commit | None
    result: T | None = None
    error: TelecardAuthError | None = None
    events: tuple[audit.AuditEvent, ...] = ()

    def outcome(self) -> T:
        """The result, or raise the error; call only once the commit (if any) has landed."""
        if self.error is not None:
            raise self.error
        assert self.result is not None  # noqa: S101 - a Decision holds one or the other
        return self.result


# --- the rules --------------------------------------------------------------------------------


def is_live(record: CodeRecord, now: datetime) -> bool:
    """A code is live while it is active and its validity has not ended (R3)."""
    return record.state is CodeState.ACTIVE and now < record.expires_at


def attempt_limit(policy: Policy, record: CodeRecord) -> int:
    """Wrong attempts after which ``record`` locks: fewer for a recovery code."""
    return policy.recovery_attempts if record.recovery else policy.max_failed_attempts


def status_of(policy: Policy, record: CodeRecord, now: datetime) -> CodeStatus:
    """The state of ``record`` at ``now``, expiry derived from time."""
    state = record.state
    if state is CodeState.ACTIVE and now >= record.expires_at:
        state = CodeState.EXPIRED
    left = (
        attempt_limit(policy, record) - record.failed_attempts if state is CodeState.ACTIVE else 0
    )
    return CodeStatus(
        code_id=record.code_id,
        provider_id=record.provider_id,
        state=state,
        service_id=record.service_id,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        failed_attempts=record.failed_attempts,
        attempts_left=max(left, 0),
        finished_at=record.finished_at,
        redeemed_service_id=record.redeemed_service_id,
    )


def _log_ends(policy: Policy, log: FailureLog) -> datetime | None:
    """When the last thing ``log`` remembers (both lists are oldest first) leaves the window."""
    last = max((*log.failures[-1:], *log.recoveries[-1:]), default=None)
    return None if last is None else last + policy.failure_window


def next_commit(
    policy: Policy,
    snapshot: SubjectSnapshot,
    now: datetime,
    *,
    codes: tuple[CodeRecord, ...] = (),
    failure_log: FailureLog | None = None,
) -> Commit:
    """The subject's whole state after replacing ``codes`` and ``failure_log``, as a commit.

    Records past their retention and logs whose last entry left the window are dropped here, so
    storage never grows with a subject's history, and ``keep_until`` says when the rest stops
    mattering.
    """
    horizon = now - policy.retention
    kept: list[CodeRecord] = []
    if snapshot.codes:
        changed = {record.code_id: record for record in codes}
        for stored in snapshot.codes:
            record = changed.pop(stored.code_id, stored)
            if record.expires_at > horizon:
                kept.append(record)
        kept.extend(changed.values())
    else:
        kept.extend(codes)
    logs = snapshot.failure_logs
    if failure_log is not None:
        logs = (*(log for log in logs if log.provider_id != failure_log.provider_id), failure_log)
    # Nothing matters after the last record's retention ends and the last log leaves the window.
    keep_until = now
    kept_logs = []
    for log in logs:
        ends = _log_ends(policy, log)
        if ends is not None and ends > now:
            kept_logs.append(log)
            keep_until = max(keep_until, ends)
    for record in kept:
        keep_until = max(keep_until, record.expires_at + policy.retention)
    return Commit(
        subject_ref=snapshot.subject_ref,
        expected_version=snapshot.version,
        incarnation=snapshot.incarnation,
        codes=tuple(kept),
        failure_logs=tuple(kept_logs),
        written_at=now,
        keep_until=keep_until,
        stored_keep_until=snapshot.keep_until,
        identity=snapshot.identity,
    )


def _in_window(
    policy: Policy, moments: tuple[datetime, ...], now: datetime
) -> tuple[datetime, ...]:
    start = now - policy.failure_window
    return tuple(moment for moment in moments if moment > start)


def _budget_spent(policy: Policy, log: FailureLog, now: datetime) -> bool:
    return len(_in_window(policy, log.failures, now)) >= policy.failure_budget


def decide_issue(
    policy: Policy,
    keyring: Keyring,
    request: IssueRequest,
    snapshot: SubjectSnapshot,
    now: datetime,
    *,
    code: str,
    code_id: str,
    observed: bool = True,
) -> Decision[IssuedCode]:
    """Issue ``code`` for the request; at the live-code limit, refuse or supersede the oldest.

    The code is valid for the service's TTL when bound to a service; unbound, for the longest TTL
    among the services the subject may use, and redemption then applies the chosen service's TTL.
    Issued while the failure budget at the provider is spent, it is a recovery code if the
    policy's allowance has one left. With ``observed`` false (nobody listens), the decision
    carries no events.
    """
    live = [record for record in snapshot.codes if is_live(record, now)]
    superseded: list[CodeRecord] = []
    if len(live) >= policy.max_live_codes:
        if policy.on_live_code_limit != "supersede":
            error = LiveCodeLimitReached(
                limit=policy.max_live_codes,
                next_free=(free := min(record.expires_at for record in live)),
                retry_after=max(1, -int((now - free).total_seconds() // 1)),  # rounded up
            )
            return Decision(None, error=error)
        # Oldest first; codes issued at the same instant stay in the order they were issued.
        live.sort(key=lambda record: record.issued_at)
        superseded = [
            _changed(record, state=CodeState.SUPERSEDED, finished_at=now)
            for record in live[: len(live) - policy.max_live_codes + 1]
        ]
    log = _recovery_log(policy, snapshot.failure_log(request.provider.id), now)
    record = _new_record(policy, keyring, request, now, code=code, code_id=code_id)
    if log is not None:
        record = attrs.evolve(record, recovery=True)
    issued = IssuedCode(
        code=code,
        code_id=code_id,
        provider=request.provider,
        service=request.service,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        superseded_code_ids=tuple(old.code_id for old in superseded),
    )
    commit = next_commit(policy, snapshot, now, codes=(*superseded, record), failure_log=log)
    if not observed:
        return Decision(commit, issued)
    events: list[audit.AuditEvent] = [
        audit.CodeSupersession(
            at=now,
            audit_ref=request.audit_ref,
            code_id=old.code_id,
            provider_id=old.provider_id,
            superseded_by=code_id,
        )
        for old in superseded
    ]
    events.append(
        audit.CodeIssuance(
            at=now,
            audit_ref=request.audit_ref,
            code_id=code_id,
            provider_id=record.provider_id,
            service_id=record.service_id,
            expires_at=record.expires_at,
            key_id=record.key_id,
            recovery=record.recovery,
        )
    )
    return Decision(commit, issued, events=tuple(events))


def _recovery_log(policy: Policy, log: FailureLog, now: datetime) -> FailureLog | None:
    """The provider's log with a recovery code counted, if this code is to be one; else None."""
    if not _budget_spent(policy, log, now):
        return None
    recent = _in_window(policy, log.recoveries, now)
    if len(recent) >= policy.recovery_codes:
        return None
    return FailureLog(provider_id=log.provider_id, failures=log.failures, recoveries=(*recent, now))


def _new_record(
    policy: Policy,
    keyring: Keyring,
    request: IssueRequest,
    now: datetime,
    *,
    code: str,
    code_id: str,
) -> CodeRecord:
    service = request.service
    lifetime = policy.ttl_for(service.id) if service else policy.longest_ttl(request.kind)
    key_id = keyring.current.key_id
    provider_id = request.provider.id
    digest = keyring.code_digest(key_id, request.identity, provider_id, code)
    assert digest is not None  # noqa: S101 - the current key is always in the ring
    return CodeRecord(
        code_id=code_id,
        provider_id=provider_id,
        key_id=key_id,
        digest=digest,
        issued_at=now,
        expires_at=now + lifetime,
        service_id=service.id if service else None,
        msisdn_ref=_bound(keyring, key_id, request, "msisdn"),
        recipient_ref=_bound(keyring, key_id, request, "recipient"),
    )


def _bound(keyring: Keyring, key_id: str, request: IssueRequest, domain: str) -> str | None:
    value = request.msisdn if domain == "msisdn" else request.recipient
    if value is None:
        return None
    return keyring.record_digest(key_id, domain, request.identity, request.provider.id, value)


def _changed(
    record: CodeRecord,
    *,
    state: CodeState,
    finished_at: datetime | None,
    failed_attempts: int | None = None,
    redeemed_service_id: str | None = None,
    request_ref: str | None = None,
    request_inputs: str | None = None,
    receipt_key_id: str | None = None,
) -> CodeRecord:
    """``record`` in a new state. Only a live record changes state, so the fields a finished
    record carries start empty."""
    return attrs.evolve(
        record,
        state=state,
        failed_attempts=record.failed_attempts if failed_attempts is None else failed_attempts,
        finished_at=finished_at,
        redeemed_service_id=redeemed_service_id,
        request_ref=request_ref,
        request_inputs=request_inputs,
        receipt_key_id=receipt_key_id,
    )


# --- redemption, step by step -------------------------------------------------------------------


def _refusal(
    request: RedeemRequest, now: datetime, error: TelecardAuthError, code_id: str | None
) -> audit.RedemptionRefusal:
    return audit.RedemptionRefusal(
        at=now,
        audit_ref=request.audit_ref,
        code_id=code_id,
        provider_id=request.provider.id,
        reason=error.code,
        service_id=request.service.id,
        reference=request.reference,
    )


def _refuse(
    request: RedeemRequest, now: datetime, error: TelecardAuthError, code_id: str | None = None
) -> Decision[Redemption]:
    """A refusal that changes nothing: no commit, the error and its event."""
    return Decision(None, error=error, events=(_refusal(request, now, error, code_id),))


def _charge(
    policy: Policy,
    request: RedeemRequest,
    snapshot: SubjectSnapshot,
    now: datetime,
    *,
    charged: list[CodeRecord],
    budget: bool,
    error: TelecardAuthError,
    code_id: str | None,
) -> Decision[Redemption]:
    """Count one wrong attempt on each charged code (locking at its limit) and, with ``budget``,
    on the subject's failure budget at the provider."""
    updated = []
    events: list[audit.AuditEvent] = [_refusal(request, now, error, code_id)]
    for record in charged:
        attempts = record.failed_attempts + 1
        if attempts >= attempt_limit(policy, record):
            updated.append(
                _changed(record, state=CodeState.LOCKED, finished_at=now, failed_attempts=attempts)
            )
            events.append(
                audit.CodeLockout(
                    at=now,
                    audit_ref=request.audit_ref,
                    code_id=record.code_id,
                    provider_id=record.provider_id,
                    failed_attempts=attempts,
                )
            )
        else:
            updated.append(
                _changed(record, state=record.state, finished_at=None, failed_attempts=attempts)
            )
    log = None
    if budget:
        old = snapshot.failure_log(request.provider.id)
        failures = (*_in_window(policy, old.failures, now), now)[-policy.failure_budget :]
        log = FailureLog(provider_id=old.provider_id, failures=failures, recoveries=old.recoveries)
    commit = next_commit(policy, snapshot, now, codes=tuple(updated), failure_log=log)
    return Decision(commit, error=error, events=tuple(events))


class _Digests:
    """The typed code's and request's digests under each record's key, each made once."""

    __slots__ = ("_code", "_keyring", "_request", "request")

    def __init__(self, keyring: Keyring, request: RedeemRequest) -> None:
        self._keyring = keyring
        self.request = request
        self._code: dict[str, bytes | None] = {}
        self._request: dict[str, str | None] = {}

    def matches(self, record: CodeRecord) -> bool:
        """Whether the typed code is ``record``'s, compared in constant time."""
        key_id = record.key_id
        if key_id not in self._code:
            request = self.request
            self._code[key_id] = self._keyring.code_digest(
                key_id, request.identity, request.provider.id, request.code
            )
        digest = self._code[key_id]
        # A record whose key was retired can no longer match: its code is void.
        return digest is not None and hmac.compare_digest(digest, record.digest)

    def of(self, record: CodeRecord, domain: str, value: str | None) -> str | None:
        """The digest of ``value`` in ``domain`` as ``record`` would store it."""
        if value is None:
            return None
        request = self.request
        return self._keyring.record_digest(
            record.key_id, domain, request.identity, request.provider.id, value
        )

    def request_ref(self, record: CodeRecord) -> str | None:
        """The request id's digest under ``record``'s key (``None`` without a request id)."""
        if record.key_id not in self._request:
            self._request[record.key_id] = self.of(record, "request", self.request.request_id)
        return self._request[record.key_id]


def _replay(
    digests: _Digests,
    records: list[CodeRecord],
    now: datetime,
    signer: ReceiptSigner | None,
) -> tuple[CodeRecord | None, Decision[Redemption] | None]:
    """The record this request id already redeemed here, and its answer if the code is its own.

    Only a code already used can answer a retry, so comparing it tells a guesser nothing.
    """
    request = digests.request
    if request.request_id is None:
        return None, None
    for record in records:
        ref = record.request_ref
        if ref is not None and hmac.compare_digest(ref, digests.request_ref(record) or ""):
            if not digests.matches(record):
                return record, None
            inputs = digests.of(record, "request-inputs", request.inputs()) or ""
            if not hmac.compare_digest(record.request_inputs or "", inputs):
                return record, _refuse(request, now, RequestConflict(), record.code_id)
            return record, Decision(None, redemption_for(request, record, signer))
    return None, None


def _guessable(keyring: Keyring, record: CodeRecord, now: datetime) -> bool:
    """Whether a guess could hit ``record``: it is live, and its key can still match a code."""
    return is_live(record, now) and keyring.holds(record.key_id)


def _find_match(
    digests: _Digests, candidates: list[CodeRecord], now: datetime
) -> CodeRecord | None:
    """The record whose digest matches the typed code. Every candidate is compared; should two
    records ever share a code, the live one wins."""
    best: CodeRecord | None = None
    for record in candidates:
        if digests.matches(record):
            rank = (is_live(record, now), record.issued_at)
            if best is None or rank > (is_live(best, now), best.issued_at):
                best = record
    return best


_REFUSED_STATES: dict[CodeState, type[TelecardAuthError]] = {
    CodeState.REDEEMED: CodeAlreadyUsed,
    CodeState.REVOKED: CodeRevoked,
    CodeState.LOCKED: CodeLocked,
    CodeState.SUPERSEDED: CodeSuperseded,
}


def _unusable(
    policy: Policy, request: RedeemRequest, record: CodeRecord, now: datetime
) -> TelecardAuthError | None:
    """Why the right code ``record`` cannot serve this request, or ``None``; never counted."""
    refused = _REFUSED_STATES.get(record.state)
    if refused is not None:
        return refused()
    if now >= record.expires_at:
        return CodeExpired(expired_at=record.expires_at)
    service = request.service
    if record.service_id is not None and record.service_id != service.id:
        return ServiceMismatch()
    if service.id in policy.transfer_services and record.recipient_ref is None:
        return TransferNotBound()
    deadline = min(record.expires_at, record.issued_at + policy.ttl_for(service.id))
    if now >= deadline:
        return CodeExpired(expired_at=deadline)
    return None


def _binding_error(digests: _Digests, record: CodeRecord) -> tuple[TelecardAuthError, bool] | None:
    """A binding of ``record`` the request fails: the error and whether it is counted."""
    request = digests.request
    for bound, domain, presented, (label, label_ar) in (
        (record.msisdn_ref, "msisdn", request.msisdn, _MSISDN_BINDING),
        (record.recipient_ref, "recipient", request.recipient, _RECIPIENT_BINDING),
    ):
        if bound is None:
            continue
        if presented is None:
            return BindingRequired(binding=label, binding_ar=label_ar), False
        if not hmac.compare_digest(bound, digests.of(record, domain, presented) or ""):
            return BindingMismatch(binding=label, binding_ar=label_ar), True
    return None


def _accept(
    policy: Policy,
    digests: _Digests,
    record: CodeRecord,
    snapshot: SubjectSnapshot,
    now: datetime,
    *,
    signer: ReceiptSigner | None,
    observed: bool,
) -> Decision[Redemption]:
    request = digests.request
    redeemed = _changed(
        record,
        state=CodeState.REDEEMED,
        finished_at=now,
        redeemed_service_id=request.service.id,
        request_ref=digests.request_ref(record),
        request_inputs=(
            None
            if request.request_id is None
            else digests.of(record, "request-inputs", request.inputs())
        ),
        receipt_key_id=None if signer is None else signer.current.key_id,
    )
    commit = next_commit(policy, snapshot, now, codes=(redeemed,))
    result = redemption_for(request, redeemed, signer)
    if not observed:
        return Decision(commit, result)
    event = audit.CodeRedemption(
        at=now,
        audit_ref=request.audit_ref,
        code_id=record.code_id,
        provider_id=record.provider_id,
        service_id=request.service.id,
        receipt_key_id=redeemed.receipt_key_id,
        request_id=request.request_id,
        reference=request.reference,
    )
    return Decision(commit, result, events=(event,))


def decide_redeem(
    policy: Policy,
    keyring: Keyring,
    request: RedeemRequest,
    snapshot: SubjectSnapshot,
    now: datetime,
    *,
    signer: ReceiptSigner | None = None,
    observed: bool = True,
) -> Decision[Redemption]:
    """Accept the code once, for one service, at the provider it was issued for, in time.

    The steps, in order: a retry of a redemption already made here under the same request id
    gets that redemption back; a spent failure budget leaves only recovery codes to compare with
    (none: refused before any comparison, so a locked-out guesser learns nothing); a wrong code
    is counted against every live code compared and, outside recovery, against the budget, and
    is counted nowhere when no live code was compared (it could not have succeeded); a right code
    that cannot be used is refused uncounted, since it is not a guess; a binding the request fails
    is counted against the code; the rest is accepted.
    """
    provider_id = request.provider.id
    here = [record for record in snapshot.codes if record.provider_id == provider_id]
    digests = _Digests(keyring, request)
    prior, answer = _replay(digests, here, now, signer)
    if answer is not None:
        return answer

    log = snapshot.failure_log(provider_id)
    recovering = _budget_spent(policy, log, now)
    candidates = [record for record in here if record.recovery] if recovering else here
    if recovering and not any(_guessable(keyring, record, now) for record in candidates):
        recent = _in_window(policy, log.failures, now)
        retry_after = recent[len(recent) - policy.failure_budget] + policy.failure_window
        wait = max(1, -int((now - retry_after).total_seconds() // 1))  # whole seconds, rounded up
        return _refuse(request, now, FailureBudgetExhausted(retry_at=retry_after, retry_after=wait))

    record = _find_match(digests, candidates, now)
    if record is None:
        live = [candidate for candidate in candidates if _guessable(keyring, candidate, now)]
        if not live:
            return _refuse(request, now, WrongCode())
        return _charge(
            policy, request, snapshot, now,
            charged=live, budget=not recovering, error=WrongCode(), code_id=None,
        )  # fmt: skip
    if prior is not None:
        # This request id already redeemed another code: a retry repeats its inputs exactly.
        return _refuse(request, now, RequestConflict(), record.code_id)
    unusable = _unusable(policy, request, record, now)
    if unusable is not None:
        return _refuse(request, now, unusable, record.code_id)
    failed = _binding_error(digests, record)
    if failed is not None:
        error, counted = failed
        if not counted:
            return _refuse(request, now, error, record.code_id)
        return _charge(
            policy, request, snapshot, now,
            charged=[record], budget=not recovering, error=error, code_id=record.code_id,
        )  # fmt: skip
    return _accept(policy, digests, record, snapshot, now, signer=signer, observed=observed)


# --- lookups ------------------------------------------------------------------------------------


def _find_by_id(snapshot: SubjectSnapshot, code_id: str) -> CodeRecord | None:
    for record in snapshot.codes:
        if record.code_id == code_id:
            return record
    return None


def decide_status(
    policy: Policy, request: LookupRequest, snapshot: SubjectSnapshot, now: datetime
) -> Decision[CodeStatus]:
    """The state of one of the subject's codes; changes nothing."""
    record = _find_by_id(snapshot, request.code_id)
    if record is None:
        return Decision(None, error=UnknownCode())
    return Decision(None, status_of(policy, record, now))


def decide_revoke(
    policy: Policy, request: LookupRequest, snapshot: SubjectSnapshot, now: datetime
) -> Decision[CodeStatus]:
    """Cancel a live code. Revoking a code that is already unusable changes nothing.

    A used code cannot be revoked: the service it served has happened.
    """
    record = _find_by_id(snapshot, request.code_id)
    if record is None:
        return Decision(None, error=UnknownCode())
    if record.state is CodeState.REDEEMED:
        return Decision(None, error=CodeAlreadyUsed())
    if not is_live(record, now):
        return Decision(None, status_of(policy, record, now))
    revoked = _changed(record, state=CodeState.REVOKED, finished_at=now)
    event = audit.CodeRevocation(
        at=now,
        audit_ref=request.audit_ref,
        code_id=record.code_id,
        provider_id=record.provider_id,
    )
    return Decision(
        next_commit(policy, snapshot, now, codes=(revoked,)),
        status_of(policy, revoked, now),
        events=(event,),
    )
