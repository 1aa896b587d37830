"""The commands about codes: ``issue``, ``redeem``, ``status`` and ``revoke``.

Each builds a ``CodeIssuer`` over the key file and the storage, makes one call, and answers with
what the call returned.
"""

from __future__ import annotations

import argparse

from telecard_auth._core.errors import TelecardAuthError
from telecard_auth._core.model import CodeState, CodeStatus, Provider, Service, Subject, SubjectKind
from telecard_auth._issuer import CodeIssuer
from telecard_auth.cli._errors import InvalidArgument
from telecard_auth.cli._output import (
    CODE_ID,
    CUSTOMER_REF,
    PROVIDER,
    REDEEMED_AT,
    SERVICE,
    SIGNING_KEY,
    Line,
    Outcome,
    Text,
    iso,
    when,
    when_json,
)
from telecard_auth.cli._settings import Settings

__all__ = [
    "ISSUE_FIELDS",
    "REDEEM_FIELDS",
    "STATUS_FIELDS",
    "issue",
    "redeem",
    "revoke",
    "status",
]

#: The fields of each command's answer (its --json object), in order: what --print may name.
ISSUE_FIELDS = (
    "code",
    "display",
    "code_id",
    "provider",
    "service",
    "issued_at",
    "expires_at",
    "superseded_code_ids",
)
REDEEM_FIELDS = (
    "code_id",
    "customer_ref",
    "provider",
    "service",
    "issued_at",
    "redeemed_at",
    "receipt",
    "receipt_key_id",
)
STATUS_FIELDS = (
    "code_id",
    "state",
    "provider",
    "service",
    "issued_at",
    "expires_at",
    "failed_attempts",
    "attempts_left",
    "finished_at",
    "redeemed_service",
)

_CODE = Text("code", "الرمز")
_ISSUED_AT = Text("issued at", "وقت الإصدار")
_VALID_UNTIL = Text("valid until", "صالح حتى")
_RECEIPT = Text("receipt", "الإيصال")
_ANY_SERVICE = Text(
    "any (the agent chooses when using it)", "أي خدمة (يختارها الموظف عند الاستخدام)"
)

_STATES = {
    CodeState.ACTIVE: Text("active", "صالح"),
    CodeState.REDEEMED: Text("redeemed", "مُستخدم"),
    CodeState.REVOKED: Text("revoked (cancelled by its owner)", "ملغى (ألغاه صاحبه)"),
    CodeState.LOCKED: Text("locked (too many wrong attempts)", "مقفل (محاولات خاطئة كثيرة)"),
    CodeState.SUPERSEDED: Text(
        "superseded (a newer code replaced it)", "مستبدل (حلّ محله رمز أحدث)"
    ),
    CodeState.EXPIRED: Text("expired", "منتهي الصلاحية"),
}


def _named(thing: Provider | Service) -> Text:
    return Text(f"{thing.name_en} [{thing.id}]", f"{thing.name_ar} [{thing.id}]")


def _provider_named(issuer: CodeIssuer, provider_id: str) -> Text:
    try:
        return _named(issuer.policy.provider(provider_id))
    except TelecardAuthError:
        return Text(provider_id, provider_id)


def _service_named(issuer: CodeIssuer, service_id: str | None) -> Text:
    if service_id is None:
        return Text("-", "-")
    try:
        return _named(issuer.policy.service(service_id))
    except TelecardAuthError:
        return Text(service_id, service_id)


def _subject(kind: str, identifier: str) -> Subject:
    return Subject(kind=SubjectKind(kind), identifier=identifier)


def _recipient(args: argparse.Namespace) -> Subject | None:
    kind, identifier = args.recipient_kind, args.recipient_id
    if kind is None and identifier is None:
        return None
    if kind is None or identifier is None:
        raise InvalidArgument(
            option="--recipient-kind/--recipient-id", reason="give both options, or neither"
        )
    return _subject(kind, identifier)


def issue(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``issue``: a code for the customer, good at one provider."""
    subject = _subject(args.kind, args.id)
    recipient = _recipient(args)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        issued = issuer.issue(
            subject, args.provider, service=args.service, msisdn=args.msisdn, recipient=recipient
        )
    lines: list[Line] = [
        (_CODE, issued.display),
        (CODE_ID, issued.code_id),
        (PROVIDER, _named(issued.provider)),
        (SERVICE, _ANY_SERVICE if issued.service is None else _named(issued.service)),
        (_ISSUED_AT, when(issued.issued_at)),
        (_VALID_UNTIL, when(issued.expires_at)),
    ]
    if issued.superseded_code_ids:
        replaced = ", ".join(issued.superseded_code_ids)
        lines.append((Text("replaced", "حلّ محل"), replaced))
    data = {
        "code": issued.code,
        "display": issued.display,
        "code_id": issued.code_id,
        "provider": issued.provider.id,
        "service": None if issued.service is None else issued.service.id,
        "issued_at": iso(issued.issued_at),
        "expires_at": iso(issued.expires_at),
        "superseded_code_ids": list(issued.superseded_code_ids),
    }
    return Outcome(data=data, lines=lines)


def redeem(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``redeem``: the code used, once, for one service; the answer holds the signed receipt."""
    subject = _subject(args.kind, args.id)
    recipient = _recipient(args)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        redemption = issuer.redeem(
            subject,
            args.provider,
            args.code,
            args.service,
            msisdn=args.msisdn,
            recipient=recipient,
            request_id=args.request_id,
            reference=args.reference,
        )
    text = redemption.receipt.token
    lines: list[Line] = [
        Text(
            f"Accepted: the code is used, once, for {redemption.service.name_en}.",
            f"قُبل الرمز واستُخدم مرة واحدة لخدمة: {redemption.service.name_ar}.",
        ),
        (CODE_ID, redemption.code_id),
        (PROVIDER, _named(redemption.provider)),
        (SERVICE, _named(redemption.service)),
        (_ISSUED_AT, when(redemption.issued_at)),
        (REDEEMED_AT, when(redemption.redeemed_at)),
        (CUSTOMER_REF, redemption.customer_ref),
    ]
    lines += [(SIGNING_KEY, redemption.receipt.key_id), (_RECEIPT, text)]
    data = {
        "code_id": redemption.code_id,
        "customer_ref": redemption.customer_ref,
        "provider": redemption.provider.id,
        "service": redemption.service.id,
        "issued_at": iso(redemption.issued_at),
        "redeemed_at": iso(redemption.redeemed_at),
        "receipt": text,
        "receipt_key_id": redemption.receipt.key_id,
    }
    return Outcome(data=data, lines=lines)


def _status_outcome(issuer: CodeIssuer, status: CodeStatus) -> Outcome:
    attempts = Text(
        f"{status.failed_attempts} wrong, {status.attempts_left} left",
        f"{status.failed_attempts} خاطئة، والمتبقي {status.attempts_left}",
    )
    lines: list[Line] = [
        (CODE_ID, status.code_id),
        (Text("state", "الحالة"), _STATES[status.state]),
        (PROVIDER, _provider_named(issuer, status.provider_id)),
        (
            Text("bound to service", "الخدمة المحددة"),
            _ANY_SERVICE
            if status.service_id is None
            else _service_named(issuer, status.service_id),
        ),
        (_ISSUED_AT, when(status.issued_at)),
        (_VALID_UNTIL, when(status.expires_at)),
        (Text("attempts", "المحاولات"), attempts),
        (Text("finished at", "وقت الانتهاء"), when(status.finished_at)),
        (Text("used for", "استُخدم لخدمة"), _service_named(issuer, status.redeemed_service_id)),
    ]
    data = {
        "code_id": status.code_id,
        "state": status.state.value,
        "provider": status.provider_id,
        "service": status.service_id,
        "issued_at": iso(status.issued_at),
        "expires_at": iso(status.expires_at),
        "failed_attempts": status.failed_attempts,
        "attempts_left": status.attempts_left,
        "finished_at": when_json(status.finished_at),
        "redeemed_service": status.redeemed_service_id,
    }
    return Outcome(data=data, lines=lines)


def status(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``status``: the state of one of the customer's codes."""
    subject = _subject(args.kind, args.id)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        return _status_outcome(issuer, issuer.status(subject, args.code_id))


def revoke(args: argparse.Namespace, settings: Settings) -> Outcome:
    """``revoke``: one of the customer's live codes cancelled; the answer is its state."""
    subject = _subject(args.kind, args.id)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        return _status_outcome(issuer, issuer.revoke(subject, args.code_id))
