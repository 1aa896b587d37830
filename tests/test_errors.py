"""Tests for the error tree: stable codes, families, bilingual messages, safe formatting."""

from __future__ import annotations

import copy
import pickle
import re
import string
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import telecard_auth
from telecard_auth import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    ConfigurationError,
    FailureBudgetExhausted,
    InvalidBinding,
    InvalidIdentifier,
    InvalidInput,
    InvalidMsisdn,
    InvalidPolicy,
    InvalidTime,
    KeyringError,
    LiveCodeLimitReached,
    MalformedCode,
    NotEligible,
    NotPermitted,
    Policy,
    RedemptionRefused,
    ServiceMismatch,
    ServiceNotAllowed,
    StorageContention,
    StorageError,
    TelecardAuthError,
    UnknownCode,
    UnknownProvider,
    UnknownService,
    UnknownSubjectKind,
    WrongCode,
)

#: Every public error class, found from the package's public surface.
ERRORS: list[type[TelecardAuthError]] = [
    value
    for value in (getattr(telecard_auth, name) for name in telecard_auth.__all__)
    if isinstance(value, type) and issubclass(value, TelecardAuthError)
]
_ARABIC_LETTER = re.compile("[\u0621-\u064a]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

_FAMILIES: list[tuple[type[TelecardAuthError], tuple[type[Exception], ...]]] = [
    (InvalidInput, (ValueError,)),
    (InvalidIdentifier, (InvalidInput, ValueError)),
    (InvalidMsisdn, (InvalidInput, ValueError)),
    (MalformedCode, (InvalidInput, ValueError)),
    (UnknownProvider, (InvalidInput, ValueError)),
    (UnknownSubjectKind, (InvalidInput, ValueError)),
    (UnknownService, (InvalidInput, ValueError)),
    (InvalidBinding, (InvalidInput, ValueError)),
    (BindingRequired, (InvalidInput, ValueError)),
    (InvalidTime, (InvalidInput, ValueError)),
    (NotEligible, (NotPermitted,)),
    (ServiceNotAllowed, (NotPermitted,)),
    (LiveCodeLimitReached, (NotPermitted,)),
    (WrongCode, (RedemptionRefused,)),
    (CodeExpired, (RedemptionRefused,)),
    (CodeAlreadyUsed, (RedemptionRefused,)),
    (CodeRevoked, (RedemptionRefused,)),
    (CodeLocked, (RedemptionRefused,)),
    (FailureBudgetExhausted, (RedemptionRefused,)),
    (ServiceMismatch, (RedemptionRefused,)),
    (BindingMismatch, (RedemptionRefused,)),
    (UnknownCode, (LookupError,)),
    (ConfigurationError, (ValueError,)),
    (InvalidPolicy, (ConfigurationError, ValueError)),
    (KeyringError, (ConfigurationError, ValueError)),
    (StorageContention, (StorageError,)),
]


def _ids(error_class: type[TelecardAuthError]) -> str:
    return error_class.__name__


# --- the tree ------------------------------------------------------------------------------------


def test_every_error_is_public() -> None:
    """Every error class of the errors module is exported from the package."""
    import telecard_auth
    from telecard_auth._core import errors as _errors

    classes = {name for name in _errors.__all__ if name != "clip"}
    assert classes == {error.__name__ for error in ERRORS}
    assert classes <= set(telecard_auth.__all__)


def test_codes_are_unique() -> None:
    """No two error classes share a machine code."""
    codes = [error.code for error in ERRORS]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_code_is_stable_snake_case(error_class: type[TelecardAuthError]) -> None:
    """Each class defines its own non-empty lowercase snake_case code."""
    assert "code" in vars(error_class)
    assert re.fullmatch(r"[a-z][a-z_]*[a-z]", error_class.code, re.ASCII)


@pytest.mark.parametrize(
    ("error_class", "code"),
    [
        (TelecardAuthError, "telecard_auth_error"),
        (InvalidIdentifier, "invalid_identifier"),
        (InvalidMsisdn, "invalid_msisdn"),
        (MalformedCode, "malformed_code"),
        (UnknownProvider, "unknown_provider"),
        (UnknownSubjectKind, "unknown_subject_kind"),
        (WrongCode, "wrong_code"),
        (CodeExpired, "code_expired"),
        (CodeLocked, "code_locked"),
        (LiveCodeLimitReached, "live_code_limit"),
        (InvalidPolicy, "invalid_policy"),
        (KeyringError, "keyring_error"),
    ],
)
def test_documented_codes(error_class: type[TelecardAuthError], code: str) -> None:
    """The codes callers branch on have their documented values."""
    assert code == error_class.code


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_templates_in_both_languages(error_class: type[TelecardAuthError]) -> None:
    """Each class has a non-empty English template and an Arabic one written in Arabic letters."""
    assert error_class.template_en.strip()
    assert error_class.template_ar.strip()
    assert _ARABIC_LETTER.search(error_class.template_ar)
    assert not _ARABIC_LETTER.search(error_class.template_en)


@pytest.mark.parametrize(
    ("error_class", "bases"), _FAMILIES, ids=[c.__name__ for c, _ in _FAMILIES]
)
def test_families(error_class: type[TelecardAuthError], bases: tuple[type[Exception], ...]) -> None:
    """Each class belongs to its family and to the builtin exception that fits."""
    for base in bases:
        assert issubclass(error_class, base)


def test_families_do_not_overlap() -> None:
    """No class is in two of the families input / not permitted / refused / configuration."""
    families = (InvalidInput, NotPermitted, RedemptionRefused, ConfigurationError, StorageError)
    for error_class in ERRORS:
        assert sum(issubclass(error_class, family) for family in families) <= 1


@pytest.mark.parametrize(
    "error_class",
    [NotPermitted, NotEligible, RedemptionRefused, WrongCode, CodeExpired, StorageError],
    ids=_ids,
)
def test_refusals_are_not_value_errors(error_class: type[TelecardAuthError]) -> None:
    """A refused redemption or a storage failure is not a malformed value."""
    assert not issubclass(error_class, ValueError)


def test_catching_by_builtin() -> None:
    """An unknown provider can be caught as a ValueError, an unknown code as a LookupError."""
    with pytest.raises(ValueError, match="Unknown service provider"):
        raise UnknownProvider()
    with pytest.raises(LookupError):
        raise UnknownCode()


# --- messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_every_error_can_be_raised_without_details(error_class: type[TelecardAuthError]) -> None:
    """A missing template detail becomes '?', never a KeyError; no placeholder is left."""
    error = error_class()
    assert error.message_en
    assert error.message_ar
    assert not _PLACEHOLDER.search(error.message_en)
    assert not _PLACEHOLDER.search(error.message_ar)
    assert {} == dict(error.details)


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_str_holds_both_languages(error_class: type[TelecardAuthError]) -> None:
    """str() is the English message, a bar, and the Arabic message."""
    error = error_class()
    assert f"{error.message_en} | {error.message_ar}" == str(error)
    assert _ARABIC_LETTER.search(str(error))


def test_message_exact() -> None:
    """Details fill both templates."""
    error = BindingMismatch(binding="mobile number", binding_ar="رقم الجوال")
    english = "The mobile number does not match the one this code was issued for."
    arabic = "رقم الجوال لا يطابق ما صدر الرمز له."
    assert english == error.message_en
    assert arabic == error.message_ar
    assert f"{english} | {arabic}" == str(error)
    assert (english,) == error.args


def test_message_by_language() -> None:
    """message('ar') is Arabic, message('en') and any other language are English."""
    error = UnknownService()
    assert error.message_ar == error.message("ar")
    assert error.message_en == error.message("en")
    assert error.message_en == error.message()
    assert error.message_en == error.message("fr")


def test_missing_detail_is_a_question_mark() -> None:
    """A template detail the raising site forgot shows as '?'."""
    error = InvalidIdentifier(kind="citizen")
    assert "The citizen identifier is not valid: ?." == error.message_en
    assert "رقم الهوية (?) غير صحيح: ?." == error.message_ar


def test_a_long_provider_id_is_not_echoed() -> None:
    """A very long unknown provider id gets the fixed message, short, with none of it."""
    with pytest.raises(UnknownProvider) as caught:
        Policy().provider("x" * 10_000)
    assert "Unknown service provider; it must be one of the policy's providers." == (
        caught.value.message_en
    )
    assert len(str(caught.value)) < 200


@given(st.one_of(st.text(max_size=5_000), st.binary(max_size=50), st.integers()))
def test_any_unknown_service_id_gets_the_same_message(value: object) -> None:
    """Whatever the unknown service id, text or not, the message is one and there are no details."""
    assume(value not in {service.id for service in Policy().services})
    with pytest.raises(UnknownService) as caught:
        Policy().service(value)
    assert "Unknown service; it must be one of the policy's services." == caught.value.message_en
    assert {} == dict(caught.value.details)


@given(st.text(max_size=40))
def test_a_detail_is_shown_as_given(detail: str) -> None:
    """A detail that a template names is shown as the raising site gave it."""
    assert f"The policy is not valid: {detail}." == InvalidPolicy(reason=detail).message_en


def test_braces_in_a_detail_are_not_formatted() -> None:
    """A detail holding template syntax is shown literally, never expanded."""
    error = InvalidPolicy(reason="{reason}{0}")
    assert "The policy is not valid: {reason}{0}." == error.message_en


def test_datetime_detail_shown_to_the_second() -> None:
    """Datetimes are shown in ISO form to the second."""
    error = CodeExpired(expired_at=datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=UTC))
    assert "The code expired at 2026-03-01T13:00:00+00:00; ask for a new code." == (
        error.message_en
    )


def test_details_are_kept_and_read_only() -> None:
    """details holds the raw values and cannot be changed."""
    error = LiveCodeLimitReached(limit=3, next_free="soon")
    assert {"limit": 3, "next_free": "soon"} == dict(error.details)
    with pytest.raises(TypeError):
        error.details["limit"] = 4  # type: ignore[index]


def test_repr_names_class_code_and_details() -> None:
    """repr shows the class, the code and the details."""
    assert "LiveCodeLimitReached(code='live_code_limit', details={'limit': 3})" == repr(
        LiveCodeLimitReached(limit=3)
    )


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_templates_use_only_simple_placeholders(error_class: type[TelecardAuthError]) -> None:
    """Placeholders are bare names: no attribute access, indexing or format specs to go wrong."""
    for template in (error_class.template_en, error_class.template_ar):
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        assert all(re.fullmatch(r"[a-z_]+", name, re.ASCII) for name in fields)


# --- errors cross process boundaries -------------------------------------------------------------


def test_errors_survive_pickling() -> None:
    """An error raised in a worker process arrives intact: same class, code, details, message."""
    for error_class in ERRORS:
        error = error_class(reason="test", provider="stc")
        restored = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
        assert type(error) is type(restored)
        assert error.code == restored.code
        assert dict(error.details) == dict(restored.details)
        assert str(error) == str(restored)


def test_errors_can_be_copied() -> None:
    """copy.copy() of an error (as done by some frameworks) works and keeps the details."""
    error = LiveCodeLimitReached(limit=3, next_free="soon")
    copied = copy.copy(error)
    assert dict(error.details) == dict(copied.details)
    assert str(error) == str(copied)


def test_times_in_details_are_typed_attributes() -> None:
    """expired_at and retry_after read the details as datetimes, and survive pickling."""
    moment = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    expired = CodeExpired(expired_at=moment)
    budget = FailureBudgetExhausted(retry_after=moment)
    expired_again = pickle.loads(pickle.dumps(expired))  # noqa: S301 - our own object
    budget_again = pickle.loads(pickle.dumps(budget))  # noqa: S301 - our own object
    assert moment == expired.expired_at == expired_again.expired_at
    assert moment == budget.retry_after == budget_again.retry_after
    # A raising site that passed something else, or nothing, gives None rather than a wrong type.
    assert FailureBudgetExhausted(retry_after="soon").retry_after is None
    assert CodeExpired().expired_at is None
