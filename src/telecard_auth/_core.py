"""The rules of the service, in one place, as pure functions.

Everything that decides whether a code is issued, accepted, refused, counted or locked lives in
this module: eligibility (R1), provider binding (R2), validity (R3), single use for one service
(R4, R5), attempt limits, the failure budget and the mobile-number and recipient bindings.

Nothing here reads a clock, touches storage or draws randomness. A shell (``CodeIssuer``) reads the
clock, loads the subject's snapshot, calls a ``decide_*`` function and commits what it returns.
Refusals that change nothing are raised here directly; refusals that must be recorded (a wrong
attempt is counted) come back as a ``Decision`` holding both the commit and the error.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime
from typing import Generic, TypeVar

import attrs

from telecard_auth import events as audit
from telecard_auth._errors import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    CodeSuperseded,
    ConfigurationError,
    FailureBudgetExhausted,
    InvalidBinding,
    InvalidIdentifier,
    InvalidInput,
    InvalidRequestId,
    LiveCodeLimitReached,
    NotEligible,
    RequestConflict,
    ServiceMismatch,
    ServiceNotAllowed,
    TelecardAuthError,
    UnknownCode,
    WrongCode,
    plain,
)
from telecard_auth._keyring import Keyring
from telecard_auth._model import (
    CodeState,
    CodeStatus,
    IssuedCode,
    Provider,
    Redemption,
    Service,
    Subject,
    SubjectKind,
)
from telecard_auth._normalize import MAX_INPUT_LENGTH, normalize_msisdn
from telecard_auth._policy import Policy
from telecard_auth._receipt import ReceiptSigner
from telecard_auth._storage import CodeRecord, Commit, FailureLog, SubjectSnapshot

T = TypeVar("T")

_MSISDN_BINDING = ("mobile number", "رقم الجوال")
_RECIPIENT_BINDING = ("recipient", "هوية المستلم")
#: A request id: 1-64 printable ASCII characters, no spaces.
_REQUEST_ID = re.compile(r"[!-~]{1,64}", re.ASCII)


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


@attrs.frozen(kw_only=True)
class IssueRequest:
    """An issue request after validation: everything ``decide_issue`` needs but the snapshot."""

    subject_ref: str
    kind: SubjectKind
    provider: Provider
    service: Service | None
    msisdn_ref: str | None
    recipient_ref: str | None


@attrs.frozen(kw_only=True)
class RedeemRequest:
    """A redemption after validation and normalisation of every input."""

    subject_ref: str
    provider: Provider
    service: Service
    code: str = attrs.field(repr=False)
    msisdn_ref: str | None
    recipient_ref: str | None
    request_id: str | None = None
    request_ref: str | None = None
    request_inputs: str | None = None


# --- preparing requests: validation that needs no storage -----------------------------------


def new_code_id() -> str:
    """A random, meaningless id for a new code (96 bits, URL-safe)."""
    return secrets.token_urlsafe(12)


def subject_ref(keyring: Keyring, subject: Subject) -> str:
    """The keyed pseudonym under which everything about ``subject`` is stored."""
    return keyring.pseudonym("subject", f"{subject.kind.value}:{subject.identifier}")


def check_subject(policy: Policy, subject: object) -> Subject:
    """Refuse a subject the policy does not serve (R1); return it typed."""
    if not isinstance(subject, Subject):
        raise InvalidInput()
    kind = subject.kind
    if kind not in policy.eligible_kinds:
        raise NotEligible(kind=kind.label_en, kind_ar=kind.label_ar)
    check_identifier(policy, subject)
    return subject


def check_identifier(policy: Policy, subject: Subject) -> None:
    """Refuse a government body whose identifier the policy's validator does not recognise."""
    kind = subject.kind
    if kind is SubjectKind.GOVERNMENT:
        try:
            valid = bool(policy.government_id_validator(subject.identifier))
        except Exception as error:
            raise ConfigurationError(reason="the government id validator failed") from error
        if not valid:
            raise InvalidIdentifier(
                kind=kind.label_en,
                kind_ar=kind.label_ar,
                reason="this policy does not recognise it",
                reason_ar="لا تعترف به السياسة",
            )


def check_service(policy: Policy, kind: SubjectKind, value: object) -> Service:
    """The catalogue's service for ``value``, if this kind of subject may use it (R5)."""
    service = policy.service(value)
    if service.id not in policy.services_for(kind):
        raise ServiceNotAllowed(
            service=service.name_en,
            service_ar=service.name_ar,
            kind=kind.label_en,
            kind_ar=kind.label_ar,
        )
    return service


def _msisdn_ref(keyring: Keyring, msisdn: object) -> str | None:
    if msisdn is None:
        return None
    return keyring.pseudonym("msisdn", normalize_msisdn(msisdn))


def _recipient_ref(policy: Policy, keyring: Keyring, recipient: object) -> str | None:
    if recipient is None:
        return None
    if not isinstance(recipient, Subject):
        raise InvalidBinding(
            reason="a recipient must be a Subject", reason_ar="يجب أن يكون المستلم عميلًا"
        )
    # The recipient receives a number, not a code: eligibility is not theirs to meet.
    check_identifier(policy, recipient)
    return subject_ref(keyring, recipient)


def prepare_issue(
    policy: Policy,
    keyring: Keyring,
    *,
    subject: object,
    provider: object,
    service: object,
    msisdn: object,
    recipient: object,
) -> IssueRequest:
    """Validate an issue request. ``service``, ``msisdn`` and ``recipient`` may be ``None``."""
    checked = check_subject(policy, subject)
    kind = checked.kind
    resolved_provider = policy.provider(provider)
    if not policy.services_for(kind):
        # A code that no service would accept is no code at all.
        raise NotEligible(kind=kind.label_en, kind_ar=kind.label_ar)
    resolved_service = None if service is None else check_service(policy, kind, service)
    ref = subject_ref(keyring, checked)
    recipient_ref = _recipient_ref(policy, keyring, recipient)
    if recipient_ref is not None:
        if resolved_service is None or resolved_service.id not in policy.transfer_services:
            raise InvalidBinding(
                reason="only a code for a number transfer can name a recipient",
                reason_ar="لا يُربط بمستلم إلا رمز نقل الرقم",
            )
        if recipient_ref == ref:
            raise InvalidBinding(
                reason="the recipient must be another person",
                reason_ar="يجب أن يكون المستلم شخصًا آخر",
            )
    return IssueRequest(
        subject_ref=ref,
        kind=kind,
        provider=resolved_provider,
        service=resolved_service,
        msisdn_ref=_msisdn_ref(keyring, msisdn),
        recipient_ref=recipient_ref,
    )


def prepare_redeem(
    policy: Policy,
    keyring: Keyring,
    *,
    subject: object,
    provider: object,
    code: object,
    service: object,
    msisdn: object,
    recipient: object,
    request_id: object = None,
) -> RedeemRequest:
    """Validate and normalise a redemption. A malformed code is refused here, uncounted.

    A ``request_id`` makes the redemption idempotent: its pseudonym, and one of the other inputs
    (provider, service, bindings), are stored with the redeemed code.
    """
    checked = check_subject(policy, subject)
    resolved_provider = policy.provider(provider)
    resolved_service = check_service(policy, checked.kind, service)
    normalized = policy.code_format.normalize(code)
    msisdn_ref = _msisdn_ref(keyring, msisdn)
    recipient_ref = _recipient_ref(policy, keyring, recipient)
    request_ref = request_inputs = None
    if request_id is not None:
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            raise InvalidRequestId()
        # Plain text from here on: it is repr()'d below and handed back in events.
        request_id = plain(request_id)
        request_ref = keyring.pseudonym("request", request_id)
        inputs = (request_id, resolved_provider.id, resolved_service.id, msisdn_ref, recipient_ref)
        request_inputs = keyring.pseudonym("request-inputs", repr(inputs))
    return RedeemRequest(
        subject_ref=subject_ref(keyring, checked),
        provider=resolved_provider,
        service=resolved_service,
        code=normalized,
        msisdn_ref=msisdn_ref,
        recipient_ref=recipient_ref,
        request_id=request_id,
        request_ref=request_ref,
        request_inputs=request_inputs,
    )


def prepare_lookup(
    policy: Policy, keyring: Keyring, subject: object, code_id: object
) -> tuple[str, str]:
    """Validate a status or revoke request; return the subject's pseudonym and the code id."""
    checked = check_subject(policy, subject)
    if not isinstance(code_id, str):
        raise UnknownCode()
    # Plain text, so that comparing it with stored ids calls nothing of a str subclass.
    code_id = plain(code_id)
    if not 0 < len(code_id) <= MAX_INPUT_LENGTH:
        raise UnknownCode()
    return subject_ref(keyring, checked), code_id


# --- the rules --------------------------------------------------------------------------------


def is_live(record: CodeRecord, now: datetime) -> bool:
    """A code is live while it is active and its validity has not ended (R3)."""
    return record.state is CodeState.ACTIVE and now < record.expires_at


def status_of(policy: Policy, record: CodeRecord, now: datetime) -> CodeStatus:
    """The state of ``record`` at ``now``, expiry derived from time."""
    state = record.state
    if state is CodeState.ACTIVE and now >= record.expires_at:
        state = CodeState.EXPIRED
    left = policy.max_failed_attempts - record.failed_attempts if state is CodeState.ACTIVE else 0
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


def next_state(
    policy: Policy,
    snapshot: SubjectSnapshot,
    now: datetime,
    *,
    codes: tuple[CodeRecord, ...] = (),
    failure_log: FailureLog | None = None,
) -> Commit:
    """The subject's whole state after replacing ``codes`` and ``failure_log``, as a commit.

    Records past their retention and failures outside the window are dropped here, so storage
    never grows with a subject's history, and ``keep_until`` says when the rest stops mattering.
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
    if logs:
        window_start = now - policy.failure_window
        logs = tuple(log for log in logs if log.failures and log.failures[-1] > window_start)
    # Nothing matters after the last record's retention ends and the last failure leaves the window.
    keep_until = now
    for record in kept:
        keep_until = max(keep_until, record.expires_at + policy.retention)
    for log in logs:
        keep_until = max(keep_until, log.failures[-1] + policy.failure_window)
    return Commit(
        subject_ref=snapshot.subject_ref,
        expected_version=snapshot.version,
        codes=tuple(kept),
        failure_logs=logs,
        written_at=now,
        keep_until=keep_until,
        stored_keep_until=snapshot.keep_until,
    )


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
    With ``observed`` false (nobody listens), the decision carries no events.
    """
    live = [record for record in snapshot.codes if is_live(record, now)]
    superseded: list[CodeRecord] = []
    if len(live) >= policy.max_live_codes:
        if policy.on_live_code_limit != "supersede":
            raise LiveCodeLimitReached(
                limit=policy.max_live_codes, next_free=min(record.expires_at for record in live)
            )
        # Oldest first; codes issued at the same instant stay in the order they were issued.
        live.sort(key=lambda record: record.issued_at)
        superseded = [
            _changed(record, state=CodeState.SUPERSEDED, finished_at=now)
            for record in live[: len(live) - policy.max_live_codes + 1]
        ]
    service = request.service
    lifetime = policy.ttl_for(service.id) if service else policy.longest_ttl(request.kind)
    key_id = keyring.current.key_id
    digest = keyring.code_digest(key_id, request.subject_ref, request.provider.id, code)
    assert digest is not None  # noqa: S101 - the current key is always in the ring
    record = CodeRecord(
        code_id=code_id,
        subject_ref=request.subject_ref,
        provider_id=request.provider.id,
        key_id=key_id,
        digest=digest,
        issued_at=now,
        expires_at=now + lifetime,
        service_id=service.id if service else None,
        msisdn_ref=request.msisdn_ref,
        recipient_ref=request.recipient_ref,
    )
    issued = IssuedCode(
        code=code,
        code_id=code_id,
        provider=request.provider,
        service=service,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        superseded_code_ids=tuple(old.code_id for old in superseded),
    )
    if not observed:
        return Decision(next_state(policy, snapshot, now, codes=(*superseded, record)), issued)
    events: list[audit.AuditEvent] = [
        audit.CodeSuperseded(
            at=now,
            subject_ref=old.subject_ref,
            code_id=old.code_id,
            provider_id=old.provider_id,
            superseded_by=code_id,
        )
        for old in superseded
    ]
    events.append(
        audit.CodeIssued(
            at=now,
            subject_ref=record.subject_ref,
            code_id=code_id,
            provider_id=record.provider_id,
            service_id=record.service_id,
            expires_at=record.expires_at,
            key_id=key_id,
        )
    )
    return Decision(
        next_state(policy, snapshot, now, codes=(*superseded, record)), issued, events=tuple(events)
    )


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
    """``record`` in a new state (what ``attrs.evolve`` does, at half the cost on a hot path).

    Only a live record changes state, so the fields a finished record carries start empty.
    """
    return CodeRecord(
        code_id=record.code_id,
        subject_ref=record.subject_ref,
        provider_id=record.provider_id,
        key_id=record.key_id,
        digest=record.digest,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        service_id=record.service_id,
        msisdn_ref=record.msisdn_ref,
        recipient_ref=record.recipient_ref,
        state=state,
        failed_attempts=record.failed_attempts if failed_attempts is None else failed_attempts,
        finished_at=finished_at,
        redeemed_service_id=redeemed_service_id,
        request_ref=request_ref,
        request_inputs=request_inputs,
        receipt_key_id=receipt_key_id,
    )


def _recent_failures(policy: Policy, log: FailureLog, now: datetime) -> tuple[datetime, ...]:
    start = now - policy.failure_window
    return tuple(moment for moment in log.failures if moment > start)


def _refusal(
    request: RedeemRequest, now: datetime, error: TelecardAuthError, code_id: str | None
) -> audit.RedemptionRefused:
    return audit.RedemptionRefused(
        at=now,
        subject_ref=request.subject_ref,
        code_id=code_id,
        provider_id=request.provider.id,
        reason=error.code,
        service_id=request.service.id,
    )


def _refuse(
    request: RedeemRequest, now: datetime, error: TelecardAuthError, code_id: str | None = None
) -> Decision[Redemption]:
    """A refusal that changes nothing: no commit, the error and its event."""
    return Decision(None, error=error, events=(_refusal(request, now, error, code_id),))


def _charge_failure(
    policy: Policy,
    request: RedeemRequest,
    snapshot: SubjectSnapshot,
    *,
    charged: list[CodeRecord],
    recent: tuple[datetime, ...],
    now: datetime,
    error: TelecardAuthError,
    code_id: str | None,
) -> Decision[Redemption]:
    """Count one wrong attempt: on each charged code (locking at the limit) and on the budget."""
    updated = []
    events: list[audit.AuditEvent] = [_refusal(request, now, error, code_id)]
    for record in charged:
        attempts = record.failed_attempts + 1
        if attempts >= policy.max_failed_attempts:
            updated.append(
                _changed(record, state=CodeState.LOCKED, finished_at=now, failed_attempts=attempts)
            )
            events.append(
                audit.CodeLocked(
                    at=now,
                    subject_ref=record.subject_ref,
                    code_id=record.code_id,
                    provider_id=record.provider_id,
                    failed_attempts=attempts,
                )
            )
        else:
            # A charged record is live: still active, with nothing of a finished code set.
            updated.append(
                _changed(record, state=record.state, finished_at=None, failed_attempts=attempts)
            )
    log = FailureLog(
        provider_id=request.provider.id, failures=(*recent, now)[-policy.failure_budget :]
    )
    return Decision(
        next_state(policy, snapshot, now, codes=tuple(updated), failure_log=log),
        error=error,
        events=tuple(events),
    )


def _matches(keyring: Keyring, request: RedeemRequest, record: CodeRecord) -> bool:
    digest = keyring.code_digest(
        record.key_id, request.subject_ref, request.provider.id, request.code
    )
    # A record whose key was retired can no longer match: its code is void.
    return digest is not None and hmac.compare_digest(digest, record.digest)


def _find_match(
    keyring: Keyring, request: RedeemRequest, candidates: list[CodeRecord], now: datetime
) -> CodeRecord | None:
    """The record whose digest matches the typed code, compared in constant time.

    Every candidate is compared. Should two records ever share a code, the live one wins.
    """
    digests: dict[str, bytes | None] = {}
    best: CodeRecord | None = None
    for record in candidates:
        if record.key_id not in digests:
            digests[record.key_id] = keyring.code_digest(
                record.key_id, request.subject_ref, request.provider.id, request.code
            )
        digest = digests[record.key_id]
        # A record whose key was retired can no longer match: its code is void.
        if digest is not None and hmac.compare_digest(digest, record.digest):
            rank = (is_live(record, now), record.issued_at)
            if best is None or rank > (is_live(best, now), best.issued_at):
                best = record
    return best


def _redemption(
    request: RedeemRequest, record: CodeRecord, signer: ReceiptSigner | None
) -> Redemption:
    """What ``redeem`` returns for a redeemed ``record``: the same for a first call and a retry."""
    redeemed_at = record.finished_at
    assert redeemed_at is not None  # noqa: S101 - a redeemed record has its time
    receipt = None
    if signer is not None:
        receipt = signer.sign(
            code_id=record.code_id,
            provider_id=record.provider_id,
            service_id=request.service.id,
            redeemed_at=redeemed_at,
            subject_ref=record.subject_ref,
            key_id=record.receipt_key_id,
        )
    return Redemption(
        code_id=record.code_id,
        subject_ref=record.subject_ref,
        provider=request.provider,
        service=request.service,
        issued_at=record.issued_at,
        redeemed_at=redeemed_at,
        receipt=receipt,
    )


_REFUSED_STATES: dict[CodeState, type[TelecardAuthError]] = {
    CodeState.REDEEMED: CodeAlreadyUsed,
    CodeState.REVOKED: CodeRevoked,
    CodeState.LOCKED: CodeLocked,
    CodeState.SUPERSEDED: CodeSuperseded,
}


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

    Order matters: a retry of a redemption already made under the same request id gets that
    redemption back; an exhausted failure budget refuses before the code is even compared, so a
    locked-out guesser learns nothing; a wrong code is counted against every live code of this
    subject at this provider and against the budget; a right code that cannot be used is refused
    without counting, since it is not a guess.
    """
    provider_id = request.provider.id
    prior = None
    if request.request_ref is not None:
        prior = next((r for r in snapshot.codes if r.request_ref == request.request_ref), None)
        # Only a code already used can answer a retry, so comparing it tells a guesser nothing.
        if (
            prior is not None
            and prior.provider_id == provider_id
            and _matches(keyring, request, prior)
        ):
            assert prior.request_inputs is not None  # noqa: S101 - stored with request_ref
            assert request.request_inputs is not None  # noqa: S101 - made with request_ref
            if not hmac.compare_digest(prior.request_inputs, request.request_inputs):
                return _refuse(request, now, RequestConflict(), prior.code_id)
            return Decision(None, _redemption(request, prior, signer))

    recent = _recent_failures(policy, snapshot.failure_log(provider_id), now)
    if len(recent) >= policy.failure_budget:
        retry_after = recent[len(recent) - policy.failure_budget] + policy.failure_window
        return _refuse(request, now, FailureBudgetExhausted(retry_after=retry_after))

    candidates = [record for record in snapshot.codes if record.provider_id == provider_id]
    record = _find_match(keyring, request, candidates, now)
    if record is None:
        live = [candidate for candidate in candidates if is_live(candidate, now)]
        return _charge_failure(
            policy,
            request,
            snapshot,
            charged=live,
            recent=recent,
            now=now,
            error=WrongCode(),
            code_id=None,
        )
    if prior is not None:
        # This request id already redeemed another code: a retry repeats its inputs exactly.
        return _refuse(request, now, RequestConflict(), record.code_id)

    refused = _REFUSED_STATES.get(record.state)
    if refused is not None:
        return _refuse(request, now, refused(), record.code_id)
    if now >= record.expires_at:
        return _refuse(request, now, CodeExpired(expired_at=record.expires_at), record.code_id)
    service = request.service
    if record.service_id is not None and record.service_id != service.id:
        return _refuse(request, now, ServiceMismatch(), record.code_id)
    deadline = min(record.expires_at, record.issued_at + policy.ttl_for(service.id))
    if now >= deadline:
        return _refuse(request, now, CodeExpired(expired_at=deadline), record.code_id)

    for bound, presented, (label, label_ar) in (
        (record.msisdn_ref, request.msisdn_ref, _MSISDN_BINDING),
        (record.recipient_ref, request.recipient_ref, _RECIPIENT_BINDING),
    ):
        if bound is None:
            continue
        if presented is None:
            raise BindingRequired(binding=label, binding_ar=label_ar)
        if not hmac.compare_digest(bound, presented):
            return _charge_failure(
                policy,
                request,
                snapshot,
                charged=[record],
                recent=recent,
                now=now,
                error=BindingMismatch(binding=label, binding_ar=label_ar),
                code_id=record.code_id,
            )

    redeemed = _changed(
        record,
        state=CodeState.REDEEMED,
        finished_at=now,
        redeemed_service_id=service.id,
        request_ref=request.request_ref,
        request_inputs=request.request_inputs,
        receipt_key_id=None if signer is None else signer.current.key_id,
    )
    if not observed:
        return Decision(
            next_state(policy, snapshot, now, codes=(redeemed,)),
            _redemption(request, redeemed, signer),
        )
    event = audit.CodeRedeemed(
        at=now,
        subject_ref=record.subject_ref,
        code_id=record.code_id,
        provider_id=provider_id,
        service_id=service.id,
        receipt_key_id=redeemed.receipt_key_id,
        request_id=request.request_id,
    )
    return Decision(
        next_state(policy, snapshot, now, codes=(redeemed,)),
        _redemption(request, redeemed, signer),
        events=(event,),
    )


def _find_by_id(snapshot: SubjectSnapshot, code_id: str) -> CodeRecord:
    for record in snapshot.codes:
        if record.code_id == code_id:
            return record
    raise UnknownCode()


def decide_status(
    policy: Policy, snapshot: SubjectSnapshot, code_id: str, now: datetime
) -> Decision[CodeStatus]:
    """The state of one of the subject's codes; changes nothing."""
    return Decision(None, status_of(policy, _find_by_id(snapshot, code_id), now))


def decide_revoke(
    policy: Policy, snapshot: SubjectSnapshot, code_id: str, now: datetime
) -> Decision[CodeStatus]:
    """Cancel a live code. Revoking a code that is already unusable changes nothing.

    A used code cannot be revoked: the service it served has happened.
    """
    record = _find_by_id(snapshot, code_id)
    if record.state is CodeState.REDEEMED:
        raise CodeAlreadyUsed()
    if not is_live(record, now):
        return Decision(None, status_of(policy, record, now))
    revoked = _changed(record, state=CodeState.REVOKED, finished_at=now)
    event = audit.CodeRevoked(
        at=now,
        subject_ref=record.subject_ref,
        code_id=record.code_id,
        provider_id=record.provider_id,
    )
    return Decision(
        next_state(policy, snapshot, now, codes=(revoked,)),
        status_of(policy, revoked, now),
        events=(event,),
    )
