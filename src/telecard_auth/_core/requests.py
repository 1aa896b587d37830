"""Requests, checked: everything about a request that can be known before storage is read.

``prepare_*`` functions take what a caller gave (any object at all), refuse what is malformed or
not permitted with the request's own error, and return a request of plain, checked values for the
rules (``rules.decide_*``) to decide on. Nothing here reads a clock, touches storage or draws
randomness; the keyring only makes the customer's pseudonyms.
"""

from __future__ import annotations

import re

import attrs

from telecard_auth._core.errors import (
    ConfigurationError,
    InvalidBinding,
    InvalidIdentifier,
    InvalidInput,
    InvalidReference,
    InvalidRequestId,
    NotEligible,
    ServiceNotAllowed,
    UnknownCode,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import (
    Provider,
    Redemption,
    Service,
    SignedRedemption,
    Subject,
    SubjectKind,
)
from telecard_auth._core.normalize import MAX_INPUT_LENGTH, normalize_msisdn
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._core.text import plain
from telecard_auth._storage.protocol import CodeRecord

__all__ = [
    "IssueRequest",
    "LookupRequest",
    "RedeemRequest",
    "check_identifier",
    "check_service",
    "check_subject",
    "identity_of",
    "prepare_issue",
    "prepare_lookup",
    "prepare_redeem",
    "redemption_for",
]

#: A request id or a reference: 1-64 printable ASCII characters, no spaces.
_TOKEN = re.compile(r"[!-~]{1,64}", re.ASCII)


@attrs.frozen(kw_only=True)
class IssueRequest:
    """An issue request after validation: everything ``decide_issue`` needs but the snapshot.

    ``identity`` is the subject's kind and normalised identifier (never stored as such);
    ``msisdn`` and ``recipient`` are the normalised number and the recipient's identity.
    """

    identity: str = attrs.field(repr=False)
    kind: SubjectKind
    provider: Provider
    service: Service | None
    msisdn: str | None = attrs.field(repr=False)
    recipient: str | None = attrs.field(repr=False)
    audit_ref: str


@attrs.frozen(kw_only=True)
class RedeemRequest:
    """A redemption after validation and normalisation of every input."""

    identity: str = attrs.field(repr=False)
    provider: Provider
    service: Service
    code: str = attrs.field(repr=False)
    msisdn: str | None = attrs.field(repr=False)
    recipient: str | None = attrs.field(repr=False)
    request_id: str | None = None
    reference: str | None = None
    customer_ref: str
    audit_ref: str

    def inputs(self) -> str:
        """The request's inputs but the code, as one text: a retry must repeat them exactly.

        The reference is among them: it is signed into the receipt, and a retry gets the very
        receipt the first call got, so a retry naming another agent is another request.
        """
        return repr(
            (
                self.request_id,
                self.provider.id,
                self.service.id,
                self.msisdn,
                self.recipient,
                self.reference,
            )
        )


@attrs.frozen(kw_only=True)
class LookupRequest:
    """A status or revoke request after validation."""

    identity: str = attrs.field(repr=False)
    code_id: str
    audit_ref: str


# --- preparing requests: validation that needs no storage -----------------------------------


def identity_of(subject: Subject) -> str:
    """The one text that names ``subject``: its kind and normalised identifier."""
    return f"{subject.kind.value}:{subject.identifier}"


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


def _msisdn(msisdn: object) -> str | None:
    return None if msisdn is None else normalize_msisdn(msisdn)


def _recipient(policy: Policy, recipient: object) -> str | None:
    if recipient is None:
        return None
    if not isinstance(recipient, Subject):
        raise InvalidBinding(
            reason="a recipient must be a Subject", reason_ar="يجب أن يكون المستلم عميلًا"
        )
    # The recipient receives a number, not a code: eligibility is not theirs to meet.
    check_identifier(policy, recipient)
    return identity_of(recipient)


def _token(value: object, error: type[InvalidInput]) -> str | None:
    """A request id or reference as plain text; ``error`` unless it is 1-64 printable ASCII."""
    if value is None:
        return None
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise error()
    # Plain text from here on: it is repr()'d and handed back in events.
    return plain(value)


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
    """Validate an issue request. ``service``, ``msisdn`` and ``recipient`` may be ``None``.

    A code for a number transfer names its recipient, another person; only such a code may.
    """
    checked = check_subject(policy, subject)
    kind = checked.kind
    resolved_provider = policy.provider(provider)
    if not policy.services_for(kind):
        # A code that no service would accept is no code at all.
        raise NotEligible(kind=kind.label_en, kind_ar=kind.label_ar)
    resolved_service = None if service is None else check_service(policy, kind, service)
    identity = identity_of(checked)
    named = _recipient(policy, recipient)
    transfer = resolved_service is not None and resolved_service.id in policy.transfer_services
    if named is None and transfer:
        raise InvalidBinding(
            reason="a code for a number transfer must name its recipient",
            reason_ar="يجب أن يحدد رمز نقل الرقم المستلم",
        )
    if named is not None and not transfer:
        raise InvalidBinding(
            reason="only a code for a number transfer can name a recipient",
            reason_ar="لا يُربط بمستلم إلا رمز نقل الرقم",
        )
    if named == identity:
        raise InvalidBinding(
            reason="the recipient must be another person",
            reason_ar="يجب أن يكون المستلم شخصًا آخر",
        )
    return IssueRequest(
        identity=identity,
        kind=kind,
        provider=resolved_provider,
        service=resolved_service,
        msisdn=_msisdn(msisdn),
        recipient=named,
        audit_ref=keyring.audit_ref(identity),
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
    reference: object = None,
) -> RedeemRequest:
    """Validate and normalise a redemption. A malformed code is refused here, uncounted.

    A ``request_id`` makes the redemption idempotent at this provider; a ``reference`` names the
    operator's agent or branch in the audit events.
    """
    checked = check_subject(policy, subject)
    resolved_provider = policy.provider(provider)
    resolved_service = check_service(policy, checked.kind, service)
    normalized = policy.code_format.normalize(code)
    identity = identity_of(checked)
    return RedeemRequest(
        identity=identity,
        provider=resolved_provider,
        service=resolved_service,
        code=normalized,
        msisdn=_msisdn(msisdn),
        recipient=_recipient(policy, recipient),
        request_id=_token(request_id, InvalidRequestId),
        reference=_token(reference, InvalidReference),
        customer_ref=keyring.customer_ref(identity, resolved_provider.id),
        audit_ref=keyring.audit_ref(identity),
    )


def prepare_lookup(
    policy: Policy, keyring: Keyring, subject: object, code_id: object
) -> LookupRequest:
    """Validate a status or revoke request."""
    checked = check_subject(policy, subject)
    if not isinstance(code_id, str):
        raise UnknownCode()
    # Plain text, so that comparing it with stored ids calls nothing of a str subclass.
    code_id = plain(code_id)
    if not 0 < len(code_id) <= MAX_INPUT_LENGTH:
        raise UnknownCode()
    identity = identity_of(checked)
    return LookupRequest(identity=identity, code_id=code_id, audit_ref=keyring.audit_ref(identity))


# --- the answer to a redemption ----------------------------------------------------------------


def redemption_for(
    request: RedeemRequest, record: CodeRecord, signer: ReceiptSigner | None
) -> Redemption:
    """What ``redeem`` returns for a redeemed ``record``: the same for a first call and a retry."""
    redeemed_at = record.finished_at
    assert redeemed_at is not None  # noqa: S101 - a redeemed record has its time
    if signer is None:
        return Redemption(
            code_id=record.code_id,
            customer_ref=request.customer_ref,
            provider=request.provider,
            service=request.service,
            issued_at=record.issued_at,
            redeemed_at=redeemed_at,
        )
    bindings = [
        name
        for name, ref in (("msisdn", record.msisdn_ref), ("recipient", record.recipient_ref))
        if ref is not None
    ]
    receipt = signer.sign(
        code_id=record.code_id,
        provider_id=record.provider_id,
        service_id=request.service.id,
        customer_ref=request.customer_ref,
        issued_at=record.issued_at,
        redeemed_at=redeemed_at,
        bindings=bindings,
        reference=request.reference,
        key_id=record.receipt_key_id,
    )
    return SignedRedemption(
        code_id=record.code_id,
        customer_ref=request.customer_ref,
        provider=request.provider,
        service=request.service,
        issued_at=record.issued_at,
        redeemed_at=redeemed_at,
        receipt=receipt,
    )
