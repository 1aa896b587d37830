"""The exception tree: one root, a family per kind of answer, a class per reason.

Every error carries a stable machine ``code`` and a message in English and in Arabic, built from
the fields its ``__init__`` declares, keyword-only and typed, so that the type checker names a
field a raising site forgot. Messages never repeat a caller's value back (a code, an identity
number, a provider or service id): they name what is wrong, not the value. Nor do they repeat a
storage driver's text, which names hosts, ports, databases, roles and paths:
``StorageError.detail`` keeps that for server logs.

For HTTP: ``http_status``, ``retry_after`` (seconds) and ``to_dict()`` (``docs/errors.md``).
Times show in Riyadh time unless ``message()`` names a zone; ``details`` keep UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from types import MappingProxyType
from typing import Any, ClassVar

# As a module: the errors module defines (and imports) no public function.
from telecard_auth._core import text as _text

__all__ = [
    "BindingMismatch",
    "BindingRequired",
    "CodeAlreadyUsed",
    "CodeExpired",
    "CodeLocked",
    "CodeRevoked",
    "CodeSuperseded",
    "ConfigurationError",
    "FailureBudgetExhausted",
    "InvalidBinding",
    "InvalidIdentifier",
    "InvalidInput",
    "InvalidMsisdn",
    "InvalidPolicy",
    "InvalidReference",
    "InvalidRequestId",
    "InvalidStorageUrl",
    "InvalidTime",
    "KeyringError",
    "LiveCodeLimitReached",
    "MalformedCode",
    "MalformedReceipt",
    "MissingExtra",
    "NotEligible",
    "NotPermitted",
    "ReceiptMismatch",
    "ReceiptNotVerified",
    "RedemptionRefused",
    "RequestConflict",
    "ServiceMismatch",
    "ServiceNotAllowed",
    "StorageContention",
    "StorageError",
    "StorageOutcomeUnknown",
    "TelecardAuthError",
    "TransferNotBound",
    "UnknownCode",
    "UnknownProvider",
    "UnknownService",
    "UnknownSigningKey",
    "UnknownSubjectKind",
    "WrongCode",
]


class TelecardAuthError(Exception):
    """Root of every error the library raises on purpose.

    ``code`` is stable across releases and safe to branch on or log; ``http_status`` is what a
    service answers with; ``message_en`` and ``message_ar`` are for people; ``details`` holds the
    values the messages were built from, and ``to_dict()`` all of it as JSON. Each class's
    ``__init__`` declares those values, keyword-only and typed, so a raising site that forgets
    or misspells one fails the type check instead of showing a gap to a customer.

    >>> try:
    ...     raise UnknownProvider()
    ... except TelecardAuthError as error:
    ...     error.code
    'unknown_provider'
    """

    code: ClassVar[str] = "telecard_auth_error"
    #: The HTTP status that answers this error: 500 unless its family or class says otherwise.
    http_status: ClassVar[int] = 500
    template_en: ClassVar[str] = "The request could not be completed."
    template_ar: ClassVar[str] = "تعذّر إتمام الطلب."

    details: Mapping[str, Any]
    message_en: str
    message_ar: str

    def __init__(self) -> None:
        self._format()

    def _format(self, **fields: object) -> None:
        """Build ``details`` and both messages: a subclass's ``__init__`` calls this with exactly
        the fields its templates name (and any its messages leave out, such as ``retry_after``)."""
        self.details = MappingProxyType(fields)
        self.message_en = self._render("en", _text.RIYADH)
        self.message_ar = self._render("ar", _text.RIYADH)
        super().__init__(self.message_en)

    def _render(self, lang: str, zone: tzinfo) -> str:
        """The message in ``lang`` (``"en"`` or ``"ar"``), its times shown in ``zone``."""
        show = _text.moment_for_people
        shown = {
            name: show(value, lang, zone) if isinstance(value, datetime) else value
            for name, value in self.details.items()
        }
        return (self.template_ar if lang == "ar" else self.template_en).format_map(shown)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (pools, queues): the details are the keyword arguments
        # of __init__, so the error is built again as it was raised.
        return (_rebuild, (type(self), dict(self.details)))

    @property
    def retry_after(self) -> int | None:
        """Whole seconds from the refusal until the same request may succeed, for the HTTP
        ``Retry-After`` header; ``None`` (the default) when waiting alone does not help."""
        return None

    def message(self, lang: str = "en", *, zone: tzinfo | None = None) -> str:
        """The message for people in ``lang``, a BCP 47 tag: Arabic for any ``ar`` tag (``ar``,
        ``ar-SA``, ``ar_SA``), English for any other. Times show in ``zone``, Riyadh by default.

        >>> from datetime import UTC
        >>> error = CodeExpired(expired_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
        >>> error.message("ar-SA")
        'انتهت صلاحية الرمز في 25 نوفمبر 2026، الساعة 13:00 بتوقيت الرياض؛ اطلب رمزًا جديدًا.'
        >>> error.message("en", zone=UTC)
        'The code expired at 25 November 2026, 10:00 UTC; ask for a new code.'
        """
        chosen = _text.language(lang)
        if zone is None:
            return self.message_ar if chosen == "ar" else self.message_en
        return self._render(chosen, zone)

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON object: ``code``, ``status`` (``http_status``), ``message`` in
        both languages, ``details`` (times in UTC, ISO 8601 with ``Z``) and, only when waiting
        helps, ``retry_after``.

        Built from ``details``: never ``StorageError.detail`` (a driver's words, for logs).

        >>> moment = datetime(2026, 11, 25, 13, 0, tzinfo=_text.RIYADH)
        >>> LiveCodeLimitReached(limit=3, next_free=moment, retry_after=600).to_dict()["details"]
        {'limit': 3, 'next_free': '2026-11-25T10:00:00Z', 'retry_after': 600}
        """
        answer: dict[str, Any] = {
            "code": self.code,
            "status": self.http_status,
            "message": {"en": self.message_en, "ar": self.message_ar},
            "details": {name: _text.json_value(v) for name, v in self.details.items()},
        }
        if self.retry_after is not None:
            answer["retry_after"] = self.retry_after
        return answer

    def __str__(self) -> str:
        return f"{self.message_en} | {self.message_ar}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, details={dict(self.details)!r})"


def _rebuild(cls: Callable[..., TelecardAuthError], details: dict[str, Any]) -> TelecardAuthError:
    # A callable, not type[TelecardAuthError]: each class's own __init__ takes the details.
    return cls(**details)


# --- input: the caller sent something that is not well formed -------------------------------


class InvalidInput(TelecardAuthError, ValueError):
    """A value given to the library is malformed; nothing was stored or changed."""

    code = "invalid_input"
    http_status = 400
    template_en = "A value in the request is not valid."
    template_ar = "إحدى القيم في الطلب غير صحيحة."


class InvalidIdentifier(InvalidInput):
    """A national ID, Iqama, unified number or government identifier is not valid."""

    code = "invalid_identifier"
    template_en = "The {kind} identifier is not valid: {reason}."
    template_ar = "رقم الهوية ({kind_ar}) غير صحيح: {reason_ar}."

    def __init__(self, *, kind: str, kind_ar: str, reason: str, reason_ar: str) -> None:
        self._format(kind=kind, kind_ar=kind_ar, reason=reason, reason_ar=reason_ar)


class InvalidMsisdn(InvalidInput):
    """A mobile number is not a Saudi mobile number in one of the accepted forms."""

    code = "invalid_msisdn"
    template_en = "The mobile number is not a valid Saudi mobile number."
    template_ar = "رقم الجوال ليس رقم جوال سعوديًا صحيحًا."


class MalformedCode(InvalidInput):
    """The code typed cannot be a code of this policy's format (length or characters)."""

    code = "malformed_code"
    template_en = "The code must be {length} characters from: {alphabet}."
    template_ar = "يجب أن يتكوّن الرمز من {length} خانات من: {alphabet}."

    def __init__(self, *, length: int, alphabet: str) -> None:
        self._format(length=length, alphabet=alphabet)


class UnknownProvider(InvalidInput):
    """The provider is not in the policy's provider registry.

    The message does not repeat the value given: it may be anything a caller typed (a code in
    the wrong field, control characters), and it would reach logs and clients as it came.
    """

    code = "unknown_provider"
    template_en = "Unknown service provider; it must be one of the policy's providers."
    template_ar = "مزود الخدمة غير معروف؛ يجب أن يكون أحد مزودي الخدمة في السياسة."


class UnknownSubjectKind(InvalidInput):
    """The kind of customer is not one the library knows."""

    code = "unknown_subject_kind"
    template_en = "Unknown kind of customer; it must be citizen, resident, government or company."
    template_ar = "نوع العميل غير معروف؛ يجب أن يكون مواطنًا أو مقيمًا أو جهة حكومية أو شركة."


class UnknownService(InvalidInput):
    """The service is not in the policy's service catalogue.

    As with ``UnknownProvider``, the message does not repeat the value given.
    """

    code = "unknown_service"
    template_en = "Unknown service; it must be one of the policy's services."
    template_ar = "الخدمة غير معروفة؛ يجب أن تكون إحدى خدمات السياسة."


class InvalidBinding(InvalidInput):
    """A binding asked for at issuance is not allowed (for example a recipient without transfer)."""

    code = "invalid_binding"
    template_en = "The code cannot be bound this way: {reason}."
    template_ar = "لا يمكن ربط الرمز بهذه الطريقة: {reason_ar}."

    def __init__(self, *, reason: str, reason_ar: str) -> None:
        self._format(reason=reason, reason_ar=reason_ar)


class BindingRequired(InvalidInput):
    """The code is bound to a mobile number or recipient that the redemption did not present."""

    code = "binding_required"
    template_en = "This code is bound to a {binding}; present it to redeem the code."
    template_ar = "هذا الرمز مرتبط بـ{binding_ar}؛ يجب تقديمه لاستخدام الرمز."

    def __init__(self, *, binding: str, binding_ar: str) -> None:
        self._format(binding=binding, binding_ar=binding_ar)


class InvalidTime(InvalidInput):
    """A time is naive (no timezone) or a clock was asked to go backwards."""

    code = "invalid_time"
    template_en = "Invalid time: {reason}."
    template_ar = "وقت غير صحيح: {reason_ar}."

    def __init__(self, *, reason: str, reason_ar: str) -> None:
        self._format(reason=reason, reason_ar=reason_ar)


class InvalidRequestId(InvalidInput):
    """A redemption's ``request_id`` is not 1-64 printable ASCII characters."""

    code = "invalid_request_id"
    template_en = "The request id must be 1 to 64 printable ASCII characters."
    template_ar = "يجب أن يكون معرّف الطلب من 1 إلى 64 حرفًا مطبوعًا من حروف ASCII."


class InvalidReference(InvalidInput):
    """A redemption's ``reference`` (the operator's agent or branch) is not 1-64 printable ASCII
    characters."""

    code = "invalid_reference"
    template_en = "The reference must be 1 to 64 printable ASCII characters."
    template_ar = "يجب أن يكون المرجع من 1 إلى 64 حرفًا مطبوعًا من حروف ASCII."


class MalformedReceipt(InvalidInput):
    """A redemption receipt, or a value to build one from, is not of the receipt's form.

    The message names what is wrong, never the receipt's text.
    """

    code = "malformed_receipt"
    template_en = "The receipt is not well formed: {reason}."
    template_ar = "الإيصال غير سليم البنية: {reason_ar}."

    def __init__(self, *, reason: str, reason_ar: str) -> None:
        self._format(reason=reason, reason_ar=reason_ar)


# --- not permitted: the request is well formed but the policy says no -----------------------


class NotPermitted(TelecardAuthError):
    """The policy does not allow this subject to do this; nothing was stored or changed."""

    code = "not_permitted"
    http_status = 403
    template_en = "The request is not permitted."
    template_ar = "الطلب غير مسموح به."


class NotEligible(NotPermitted):
    """This kind of subject may not get codes under the policy."""

    code = "not_eligible"
    template_en = "A {kind} is not eligible for SIM authentication codes."
    template_ar = "فئة ({kind_ar}) غير مؤهلة للحصول على رمز توثيق بطاقات الاتصال."

    def __init__(self, *, kind: str, kind_ar: str) -> None:
        self._format(kind=kind, kind_ar=kind_ar)


class ServiceNotAllowed(NotPermitted):
    """The policy does not allow this service for this kind of subject."""

    code = "service_not_allowed"
    template_en = "The service {service} is not available to a {kind}."
    template_ar = "الخدمة ({service_ar}) غير متاحة لفئة ({kind_ar})."

    def __init__(self, *, service: str, service_ar: str, kind: str, kind_ar: str) -> None:
        self._format(service=service, service_ar=service_ar, kind=kind, kind_ar=kind_ar)


class LiveCodeLimitReached(NotPermitted):
    """The subject already holds as many live codes as the policy allows.

    A place frees by itself when the first live code expires (``next_free``, UTC), so the error
    carries ``retry_after``: the whole seconds from the refusal until then. A limit on codes held,
    not on the rate of requests: 403, with ``Retry-After``.
    """

    code = "live_code_limit"
    template_en = (
        "You already have {limit} valid codes; use or cancel one, or wait until {next_free}."
    )
    template_ar = "لديك {limit} رموز صالحة بالفعل؛ استخدم أحدها أو ألغِه، أو انتظر حتى {next_free}."

    def __init__(self, *, limit: int, next_free: datetime, retry_after: int) -> None:
        self._format(limit=limit, next_free=next_free, retry_after=retry_after)

    @property
    def next_free(self) -> datetime:
        """When the first live code expires (UTC); ``details["next_free"]``, typed."""
        next_free: datetime = self.details["next_free"]
        return next_free

    @property
    def retry_after(self) -> int:
        """Whole seconds from the refusal until ``next_free``, at least 1."""
        return int(self.details["retry_after"])


# --- redemption refused: the agent's attempt to use a code failed ---------------------------


class RedemptionRefused(TelecardAuthError):
    """The code cannot be used for this request. Catch this family to answer any refusal."""

    code = "redemption_refused"
    http_status = 403
    template_en = "The code cannot be used."
    template_ar = "لا يمكن استخدام الرمز."


class WrongCode(RedemptionRefused):
    """No code of this subject for this provider matches what was typed.

    The message does not say whether the code exists for another provider: a guess aims at one
    subject and one provider only.
    """

    code = "wrong_code"
    template_en = "The code is wrong, or it was not issued for this service provider."
    template_ar = "الرمز غير صحيح، أو لم يصدر لمزود الخدمة هذا."


class CodeExpired(RedemptionRefused):
    """The code was right but its validity ended."""

    code = "code_expired"
    http_status = 410
    template_en = "The code expired at {expired_at}; ask for a new code."
    template_ar = "انتهت صلاحية الرمز في {expired_at}؛ اطلب رمزًا جديدًا."

    def __init__(self, *, expired_at: datetime) -> None:
        self._format(expired_at=expired_at)

    @property
    def expired_at(self) -> datetime:
        """When the code's validity ended (UTC); ``details["expired_at"]``, typed."""
        expired_at: datetime = self.details["expired_at"]
        return expired_at


class CodeAlreadyUsed(RedemptionRefused):
    """The code was right but it has already been used once."""

    code = "code_already_used"
    http_status = 409
    template_en = "The code has already been used; each code is good for one service only."
    template_ar = "تم استخدام الرمز من قبل؛ كل رمز صالح لخدمة واحدة فقط."


class CodeRevoked(RedemptionRefused):
    """The code was right but the customer cancelled it."""

    code = "code_revoked"
    http_status = 410
    template_en = "The code was cancelled by its owner."
    template_ar = "ألغى صاحب الرمز هذا الرمز."


class CodeLocked(RedemptionRefused):
    """Too many wrong attempts were made against this code; it can no longer be used."""

    code = "code_locked"
    http_status = 429
    template_en = "The code is locked after too many wrong attempts; ask for a new code."
    template_ar = "تم قفل الرمز بعد محاولات خاطئة كثيرة؛ اطلب رمزًا جديدًا."


class FailureBudgetExhausted(RedemptionRefused):
    """Too many wrong attempts for this subject at this provider; redemption waits until later.

    ``retry_at`` is when a place in the failure window frees (UTC), ``retry_after`` the whole
    seconds from the refusal until then.
    """

    code = "failure_budget_exhausted"
    http_status = 429
    template_en = (
        "Too many wrong attempts for this customer at this provider; try again after {retry_at}."
    )
    template_ar = "محاولات خاطئة كثيرة لهذا العميل لدى هذا المزود؛ حاول مرة أخرى بعد {retry_at}."

    def __init__(self, *, retry_at: datetime, retry_after: int) -> None:
        self._format(retry_at=retry_at, retry_after=retry_after)

    @property
    def retry_at(self) -> datetime:
        """When a place in the failure window frees (UTC); ``details["retry_at"]``, typed."""
        retry_at: datetime = self.details["retry_at"]
        return retry_at

    @property
    def retry_after(self) -> int:
        """Whole seconds from the refusal until ``retry_at``, at least 1."""
        return int(self.details["retry_after"])


class ServiceMismatch(RedemptionRefused):
    """The code was issued for another service than the one asked for."""

    code = "service_mismatch"
    template_en = "This code was issued for another service."
    template_ar = "صدر هذا الرمز لخدمة أخرى."


class BindingMismatch(RedemptionRefused):
    """The mobile number or recipient presented is not the one the code is bound to."""

    code = "binding_mismatch"
    template_en = "The {binding} does not match the one this code was issued for."
    template_ar = "{binding_ar} لا يطابق ما صدر الرمز له."

    def __init__(self, *, binding: str, binding_ar: str) -> None:
        self._format(binding=binding, binding_ar=binding_ar)


class TransferNotBound(RedemptionRefused):
    """A number transfer was asked for with a code that does not name its recipient.

    A transfer to another person is made only with a code the customer asked for that transfer,
    naming the person receiving the number; the right code is not counted as a guess.
    """

    code = "transfer_not_bound"
    template_en = (
        "A number transfer needs a code issued for it that names the recipient; ask for a new code."
    )
    template_ar = "يحتاج نقل الرقم إلى رمز صادر له يحدد المستلم؛ اطلب رمزًا جديدًا."


class CodeSuperseded(RedemptionRefused):
    """The code was right but a newer code replaced it (the policy supersedes at its limit)."""

    code = "code_superseded"
    http_status = 410
    template_en = "A newer code replaced this code; use the newest code."
    template_ar = "حلّ رمز أحدث محل هذا الرمز؛ استخدم أحدث رمز."


class RequestConflict(RedemptionRefused):
    """The request id was already used for a redemption with other inputs.

    A retry must repeat the same code, provider, service and bindings; anything else needs a
    request id of its own.
    """

    code = "request_conflict"
    http_status = 409
    template_en = "This request id was already used for another redemption."
    template_ar = "استُخدم معرّف الطلب هذا من قبل لعملية استخدام أخرى."


# --- receipt not verified: the receipt is well formed but not authentic ---------------------


class ReceiptNotVerified(TelecardAuthError):
    """A redemption receipt's signature does not verify: it was altered, or another key signed it.

    Catch this family to refuse any receipt that is not authentic.
    """

    code = "receipt_not_verified"
    http_status = 403
    template_en = "The receipt is not authentic: it was altered or signed with another key."
    template_ar = "الإيصال غير موثوق: عُدّل بعد توقيعه أو وُقّع بمفتاح آخر."


class UnknownSigningKey(ReceiptNotVerified):
    """The receipt's ``kid`` names none of the keys given; the message does not repeat it."""

    code = "unknown_signing_key"
    template_en = (
        "The receipt was signed with a key that is not among the keys given; fetch the issuer's"
        " current public JWK Set."
    )
    template_ar = (
        "وُقّع الإيصال بمفتاح ليس من المفاتيح المعطاة للتحقق؛ احصل على أحدث مجموعة مفاتيح عامة"
        " من المُصدِر."
    )


class ReceiptMismatch(ReceiptNotVerified):
    """An authentic receipt for another operator, service or issuer; ``claim`` names which."""

    code = "receipt_mismatch"
    template_en = "The receipt was made for another use: its {claim} claim is not the expected one."
    template_ar = "لم يصدر الإيصال لهذا الاستخدام: قيمة {claim} فيه ليست المتوقعة."

    def __init__(self, *, claim: str) -> None:
        self._format(claim=claim)


# --- lookups ---------------------------------------------------------------------------------


class UnknownCode(TelecardAuthError, LookupError):
    """No code with this id belongs to this subject."""

    code = "unknown_code"
    http_status = 404
    template_en = "No such code for this customer."
    template_ar = "لا يوجد رمز بهذا المعرّف لهذا العميل."


# --- configuration: the library was set up wrongly ------------------------------------------


class ConfigurationError(TelecardAuthError, ValueError):
    """The library was configured with unsafe or inconsistent settings."""

    code = "configuration_error"
    http_status = 500
    template_en = "The configuration is not valid: {reason}."
    template_ar = "الإعدادات غير صحيحة (التفاصيل بالإنجليزية): {reason}."

    def __init__(self, *, reason: str) -> None:
        self._format(reason=reason)


class MissingExtra(ConfigurationError):
    """Something was asked for whose optional dependencies are not installed.

    A storage backend without its client library, or the contract suites without pytest.
    ``feature`` names it as code spells it (``RedisStorage``, ``telecard_auth.testing``), the same
    in both languages; ``extra`` is what to install.

    >>> MissingExtra(feature="telecard_auth.testing", extra="testing").message_en
    "telecard_auth.testing needs optional dependencies ...: pip install 'telecard-auth[testing]'."
    """

    code = "missing_extra"
    template_en = (
        "{feature} needs optional dependencies that are not installed:"
        " pip install 'telecard-auth[{extra}]'."
    )
    template_ar = (
        "يحتاج {feature} إلى مكتبات اختيارية غير مثبّتة: pip install 'telecard-auth[{extra}]'."
    )

    def __init__(self, *, feature: str, extra: str) -> None:
        self._format(feature=feature, extra=extra)


class InvalidStorageUrl(ConfigurationError):
    """A storage URL is malformed or names a scheme no backend serves."""

    code = "invalid_storage_url"
    template_en = "The storage URL is not valid: {reason}."
    template_ar = "رابط التخزين غير صحيح (التفاصيل بالإنجليزية): {reason}."


class InvalidPolicy(ConfigurationError):
    """A policy setting is out of range, inconsistent, or too weak to be safe."""

    code = "invalid_policy"
    template_en = "The policy is not valid: {reason}."
    template_ar = "السياسة غير صحيحة (التفاصيل بالإنجليزية): {reason}."


class KeyringError(ConfigurationError):
    """A key is missing, too short, or duplicated."""

    code = "keyring_error"
    template_en = "The keyring is not valid: {reason}."
    template_ar = "حلقة المفاتيح غير صحيحة (التفاصيل بالإنجليزية): {reason}."


# --- storage ---------------------------------------------------------------------------------


class StorageError(TelecardAuthError):
    """The storage backend failed; the change was not applied. The driver error is chained.

    ``reason`` (in both messages) is fixed words, such as "the database cannot be reached", never
    the driver's, which name hosts, ports, roles and paths. What the driver said is on ``detail``,
    for server logs only: in no message, ``str()``, ``repr()``, ``args`` or ``details``, and kept
    across pickling. Log it; never answer with it.

    >>> error = StorageError(reason="the database cannot be reached", detail="PostgreSQL: …")
    >>> error.message_en
    'The storage failed: the database cannot be reached.'
    >>> error.detail
    'PostgreSQL: …'
    """

    code = "storage_error"
    http_status = 503
    template_en = "The storage failed: {reason}."
    template_ar = "تعذّر الوصول إلى التخزين (التفاصيل بالإنجليزية): {reason}."

    #: What the driver said (``None`` if nothing): for server logs, never for clients.
    detail: str | None

    def __init__(self, *, reason: str, detail: str | None = None) -> None:
        self._format(reason=reason)
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), {**self.details, "detail": self.detail}))


class StorageOutcomeUnknown(StorageError):
    """A change was sent but its outcome is unknown (the connection broke before the answer, or
    too few replicas confirmed it in time): it may have landed. Retry with the same request id."""

    code = "storage_outcome_unknown"
    template_en = (
        "The storage did not confirm the change ({reason}); retry with the same request id."
    )
    template_ar = "لم يؤكد التخزين التغيير ({reason})؛ أعد الطلب بمعرّف الطلب نفسه."


class StorageContention(StorageError):
    """Too many concurrent changes to one subject's codes; the request was not applied."""

    code = "storage_contention"
    template_en = "Too many simultaneous requests for this customer; try again."
    template_ar = "طلبات متزامنة كثيرة لهذا العميل؛ حاول مرة أخرى."

    def __init__(self, *, detail: str | None = None) -> None:
        self._format()
        self.detail = detail
