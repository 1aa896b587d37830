"""The domain's nouns: subjects, providers, services, and what the issuer hands back.

Every class is a frozen, keyword-only attrs value object, validated when built, so an invalid one
never exists. Identity numbers are masked in ``repr`` and plaintext codes are left out of it.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any

import attrs

from telecard_auth._core.errors import InvalidIdentifier, InvalidPolicy, UnknownSubjectKind
from telecard_auth._core.normalize import MAX_INPUT_LENGTH, fold_digits, luhn_valid
from telecard_auth._core.receipt import Receipt
from telecard_auth._core.text import clip, plain, plain_text

__all__ = [
    "ACTIVATION_FOR_ACTUAL_USER",
    "ADDITIONAL_SIM",
    "DEFAULT_SERVICES",
    "LOST_SIM_REPLACEMENT",
    "NEW_LINE",
    "NUMBER_PORTING",
    "NUMBER_TRANSFER",
    "SAUDI_PROVIDERS",
    "CodeState",
    "CodeStatus",
    "IssuedCode",
    "Provider",
    "Redemption",
    "Service",
    "SignedRedemption",
    "Subject",
    "SubjectKind",
]


class SubjectKind(enum.Enum):
    """Who may hold a code (rule R1): citizens, residents, government bodies and companies."""

    CITIZEN = "citizen"
    RESIDENT = "resident"
    GOVERNMENT = "government"
    COMPANY = "company"

    @property
    def label_en(self) -> str:
        """English name of the kind, for messages."""
        return _KIND_LABELS[self][0]

    @property
    def label_ar(self) -> str:
        """Arabic name of the kind, for messages."""
        return _KIND_LABELS[self][1]

    @classmethod
    def parse(cls, value: object) -> SubjectKind:
        """Accept a ``SubjectKind`` or its string value; anything else is ``UnknownSubjectKind``."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(plain(value))
            except ValueError:
                pass
        raise UnknownSubjectKind()


_KIND_LABELS = {
    SubjectKind.CITIZEN: ("citizen", "مواطن"),
    SubjectKind.RESIDENT: ("resident", "مقيم"),
    SubjectKind.GOVERNMENT: ("government body", "جهة حكومية"),
    SubjectKind.COMPANY: ("company or establishment", "شركة أو مؤسسة"),
}

_TEN_DIGITS = re.compile(r"[0-9]{10}", re.ASCII)
_GOVERNMENT_SHAPE = re.compile(r"[0-9A-Za-z]{1,32}", re.ASCII)
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)


def _refuse(kind: SubjectKind, reason: str, reason_ar: str) -> InvalidIdentifier:
    return InvalidIdentifier(
        kind=kind.label_en, kind_ar=kind.label_ar, reason=reason, reason_ar=reason_ar
    )


def _normalize_identifier(kind: SubjectKind, raw: object) -> str:
    if not isinstance(raw, str):
        raise _refuse(kind, "it must be text", "يجب أن يكون نصًا")
    if len(raw) > MAX_INPUT_LENGTH:
        raise _refuse(kind, "it is far too long", "الرقم طويل جدًا")
    value = fold_digits(raw)
    if kind is SubjectKind.GOVERNMENT:
        # No public scheme exists: only the shape is checked here; the policy's validator decides.
        if not _GOVERNMENT_SHAPE.fullmatch(value):
            raise _refuse(kind, "use 1 to 32 letters or digits", "استخدم من 1 إلى 32 حرفًا أو رقمًا")
        # People type letters in either case; one body must get one pseudonym.
        return value.upper()
    if not _TEN_DIGITS.fullmatch(value):
        raise _refuse(kind, "it must be 10 digits", "يجب أن يتكوّن من 10 أرقام")
    first = {SubjectKind.CITIZEN: "1", SubjectKind.RESIDENT: "2", SubjectKind.COMPANY: "7"}[kind]
    if value[0] != first:
        raise _refuse(kind, f"it must start with {first}", f"يجب أن يبدأ بالرقم {first}")
    # Unified national numbers of companies have no published check digit: shape only.
    if kind is not SubjectKind.COMPANY and not luhn_valid(value):
        raise _refuse(kind, "its check digit is wrong", "رقم التحقق غير صحيح")
    return value


def _parse_kind(value: object) -> SubjectKind:
    return SubjectKind.parse(value)


def _mask(identifier: str) -> str:
    # Two trailing characters tell records apart in a log; a short identifier shows none.
    shown = identifier[-2:] if len(identifier) >= 6 else ""  # noqa: PLR2004
    return repr("*" * (len(identifier) - len(shown)) + shown)


@attrs.frozen(kw_only=True)
class Subject:
    """The authenticated customer asking for or presenting a code.

    The identifier is normalised (Arabic-Indic digits, separators) and validated for its kind:
    citizens (``1…``) and residents (``2…``) have 10 digits with a Luhn check digit; companies have
    a 10-digit unified number starting with ``7``; government bodies have no public scheme, so only
    the shape is checked here and the policy's ``government_id_validator`` decides.

    >>> Subject.citizen("١٠٠٠٠٠٠٠٠٨")
    Subject(kind=<SubjectKind.CITIZEN: 'citizen'>, identifier='********08')
    """

    kind: SubjectKind = attrs.field(converter=_parse_kind)
    identifier: str = attrs.field(repr=_mask)

    def __attrs_post_init__(self) -> None:
        # Normalising needs the kind, so it cannot be a per-field converter.
        object.__setattr__(self, "identifier", _normalize_identifier(self.kind, self.identifier))

    @classmethod
    def citizen(cls, national_id: str) -> Subject:
        """A Saudi citizen, by national ID (10 digits starting with 1)."""
        return cls(kind=SubjectKind.CITIZEN, identifier=national_id)

    @classmethod
    def resident(cls, iqama: str) -> Subject:
        """A resident, by Iqama number (10 digits starting with 2)."""
        return cls(kind=SubjectKind.RESIDENT, identifier=iqama)

    @classmethod
    def company(cls, unified_number: str) -> Subject:
        """A company or establishment, by unified national number (10 digits starting with 7)."""
        return cls(kind=SubjectKind.COMPANY, identifier=unified_number)

    @classmethod
    def government(cls, identifier: str) -> Subject:
        """A government body, by the identifier the deployment's policy recognises."""
        return cls(kind=SubjectKind.GOVERNMENT, identifier=identifier)


def _slug(what: str) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str):
            raise InvalidPolicy(reason=f"a {what} id must be text, not {clip(value)}")
        if not _SLUG.fullmatch(value):
            # Shown clipped: an id of a megabyte must not make a message of one.
            raise InvalidPolicy(
                reason=f"{what} id {clip(value)!r} must be 1-32 lowercase letters, digits, "
                "'_' or '-'"
            )

    return check


def _name(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPolicy(reason=f"{attribute.name} must be a non-empty string")


@attrs.frozen(kw_only=True)
class Provider:
    """A mobile operator (service provider) a code can be issued for (rule R2)."""

    id: str = attrs.field(converter=plain_text, validator=_slug("provider"))
    name_en: str = attrs.field(converter=plain_text, validator=_name)
    name_ar: str = attrs.field(converter=plain_text, validator=_name)


@attrs.frozen(kw_only=True)
class Service:
    """A service a code can be used for, once (rules R4, R5)."""

    id: str = attrs.field(converter=plain_text, validator=_slug("service"))
    name_en: str = attrs.field(converter=plain_text, validator=_name)
    name_ar: str = attrs.field(converter=plain_text, validator=_name)


#: The Saudi operators: three networks and five virtual operators. Replace through the policy.
SAUDI_PROVIDERS: tuple[Provider, ...] = (
    Provider(id="stc", name_en="STC", name_ar="الاتصالات السعودية"),
    Provider(id="mobily", name_en="Mobily", name_ar="موبايلي"),
    Provider(id="zain", name_en="Zain", name_ar="زين"),
    Provider(id="virgin", name_en="Virgin Mobile", name_ar="فيرجن موبايل"),
    Provider(id="lebara", name_en="Lebara", name_ar="ليبارا"),
    Provider(id="salam", name_en="Salam", name_ar="سلام"),
    Provider(id="redbull", name_en="Red Bull Mobile", name_ar="ريد بُل موبايل"),
    Provider(id="friendi", name_en="FRiENDi mobile", name_ar="فرندي موبايل"),
)

ACTIVATION_FOR_ACTUAL_USER = Service(
    id="activation_for_actual_user",
    name_en="SIM activation for the actual user",
    name_ar="تفعيل بطاقة الاتصال للمستخدم الفعلي",
)
LOST_SIM_REPLACEMENT = Service(
    id="lost_sim_replacement",
    name_en="Lost SIM replacement",
    name_ar="إصدار بطاقة بدل فاقد",
)
NEW_LINE = Service(id="new_line", name_en="New SIM (new line)", name_ar="إصدار بطاقة جديدة")
NUMBER_TRANSFER = Service(
    id="number_transfer",
    name_en="Number transfer to another person",
    name_ar="نقل رقم من شخص إلى آخر",
)
#: Listed by the regulator but not by the original article; add to a policy's catalogue to offer.
ADDITIONAL_SIM = Service(id="additional_sim", name_en="Additional SIM", name_ar="شريحة إضافية")
#: Listed by the regulator but not by the original article; add to a policy's catalogue to offer.
NUMBER_PORTING = Service(
    id="number_porting",
    name_en="Moving a number to another provider",
    name_ar="نقل الرقم إلى مزود خدمة آخر",
)

#: The four services of the original article, the default catalogue.
DEFAULT_SERVICES: tuple[Service, ...] = (
    ACTIVATION_FOR_ACTUAL_USER,
    LOST_SIM_REPLACEMENT,
    NEW_LINE,
    NUMBER_TRANSFER,
)


class CodeState(enum.Enum):
    """Where a code is in its life. Storage keeps the first four; ``EXPIRED`` is derived."""

    ACTIVE = "active"
    REDEEMED = "redeemed"
    REVOKED = "revoked"
    LOCKED = "locked"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class IssuedCode:
    """What ``issue`` returns: the plaintext code, shown to the customer once and never stored.

    ``repr`` leaves the code out so that logging the object does not leak it.
    ``superseded_code_ids`` names the older codes this one replaced, when the policy supersedes
    the oldest live code at its limit.
    """

    code: str = attrs.field(repr=False)
    code_id: str
    provider: Provider
    service: Service | None
    issued_at: datetime
    expires_at: datetime
    superseded_code_ids: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """The code in groups of four, easier to read aloud and copy by hand."""
        return " ".join(self.code[i : i + 4] for i in range(0, len(self.code), 4))


@attrs.frozen(kw_only=True)
class Redemption:
    """What a successful ``redeem`` returns: which code was used, where, for what, and when.

    ``customer_ref`` is the customer's pseudonym for this provider: never the identity number,
    never the key under which storage files the customer, and different at every provider, so
    operators cannot link a customer by comparing what they were given. ``receipt`` is the signed
    proof for the operator, when the issuer has a ``ReceiptSigner``.
    A retry with the same ``request_id`` returns an equal ``Redemption``, receipt included.
    """

    code_id: str
    customer_ref: str
    provider: Provider
    service: Service
    issued_at: datetime
    redeemed_at: datetime
    receipt: Receipt | None = None


@attrs.frozen(kw_only=True)
class SignedRedemption(Redemption):
    """What ``redeem`` returns from an issuer with a ``ReceiptSigner``: a receipt is always there.

    The type says so, so that ``redemption.receipt.token`` needs no check for ``None``.
    """

    receipt: Receipt


@attrs.frozen(kw_only=True)
class CodeStatus:
    """What ``status`` and ``revoke`` return: the state of one code at one moment."""

    code_id: str
    provider_id: str
    state: CodeState
    service_id: str | None
    issued_at: datetime
    expires_at: datetime
    failed_attempts: int
    attempts_left: int
    finished_at: datetime | None
    redeemed_service_id: str | None
