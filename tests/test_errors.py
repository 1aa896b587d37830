"""Tests for the error tree: stable codes, families, bilingual messages, safe formatting."""

from __future__ import annotations

import copy
import inspect
import pickle
import re
import string
import typing
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import telecard_auth
import telecard_auth.cli
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
#: The command line's own errors: their messages are built the same way.
CLI_ERRORS: list[type[TelecardAuthError]] = [
    value
    for value in (getattr(telecard_auth.cli, name) for name in telecard_auth.cli.__all__)
    if isinstance(value, type) and issubclass(value, TelecardAuthError)
]
_ARABIC_LETTER = re.compile("[\u0621-\u064a]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
MOMENT = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)

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


def _fields(error_class: type[TelecardAuthError]) -> dict[str, object]:
    """The fields ``error_class`` declares, each with a value of its type (text names its field)."""
    hints = typing.get_type_hints(error_class.__init__)
    samples: dict[object, object] = {int: 7, datetime: MOMENT}
    return {
        name: samples.get(hints[name], f"<{name}>")
        for name in inspect.signature(error_class).parameters
    }


def _built(error_class: type[TelecardAuthError]) -> TelecardAuthError:
    """An instance of ``error_class`` built with exactly the fields it declares."""
    return error_class(**_fields(error_class))


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# --- the tree ------------------------------------------------------------------------------------


def test_every_error_is_public() -> None:
    """Every error class of the errors module is exported from the package."""
    import telecard_auth
    from telecard_auth._core import errors as _errors

    classes = set(_errors.__all__)
    assert classes == {error.__name__ for error in ERRORS}
    assert classes <= set(telecard_auth.__all__)


def test_the_errors_module_holds_only_errors() -> None:
    """The errors module defines no public function: its text helpers live in ``text``."""
    from telecard_auth._core import errors as _errors

    functions = [name for name, value in vars(_errors).items() if inspect.isfunction(value)]
    assert [] == [name for name in functions if not name.startswith("_")]


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


@pytest.mark.parametrize("error_class", ERRORS + CLI_ERRORS, ids=_ids)
def test_each_error_declares_the_fields_of_its_messages(
    error_class: type[TelecardAuthError],
) -> None:
    """__init__ takes typed keyword-only fields; each placeholder of each template is one of them,
    and built with exactly them both messages are complete, each placeholder showing its field."""
    parameters = inspect.signature(error_class).parameters.values()
    assert [] == [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert [] == [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    fields = _fields(error_class)
    placeholders = _placeholders(error_class.template_en) | _placeholders(error_class.template_ar)
    assert set() == placeholders - set(fields)
    # Only a storage error's driver text and the seconds to wait are fields no message shows.
    hidden = {"detail"} if issubclass(error_class, StorageError) else {"retry_after"} & set(fields)
    assert hidden == set(fields) - placeholders
    error = error_class(**fields)
    for message, template in (
        (error.message_en, error_class.template_en),
        (error.message_ar, error_class.template_ar),
    ):
        assert not _PLACEHOLDER.search(message)
        assert all(
            str(fields[name]) in message
            for name in _placeholders(template)
            if isinstance(fields[name], str)
        )
    kept = placeholders | (hidden - {"detail"})
    assert {name: fields[name] for name in kept} == dict(error.details)


@pytest.mark.parametrize("error_class", [c for c in ERRORS + CLI_ERRORS if _fields(c)], ids=_ids)
def test_a_missing_or_unknown_field_is_refused(error_class: type[TelecardAuthError]) -> None:
    """A field left out or not declared is a TypeError (and a mypy error): never a gap shown."""
    fields = _fields(error_class)
    for left_out in fields:
        if inspect.signature(error_class).parameters[left_out].default is inspect.Parameter.empty:
            with pytest.raises(TypeError):
                error_class(**{name: value for name, value in fields.items() if name != left_out})
    with pytest.raises(TypeError):
        error_class(**{**fields, "provider": "stc"})


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_str_holds_both_languages(error_class: type[TelecardAuthError]) -> None:
    """str() is the English message, a bar, and the Arabic message."""
    error = _built(error_class)
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


def test_each_language_shows_its_own_fields() -> None:
    """The English message shows the English fields, the Arabic message the Arabic ones."""
    error = InvalidIdentifier(
        kind="citizen", kind_ar="مواطن", reason="it must be 10 digits", reason_ar="يجب أن يتكوّن"
    )
    assert "The citizen identifier is not valid: it must be 10 digits." == error.message_en
    assert "رقم الهوية (مواطن) غير صحيح: يجب أن يتكوّن." == error.message_ar


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
    """Datetimes are shown for people in Riyadh time, to the minute (or second if any)."""
    error = CodeExpired(expired_at=datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=UTC))
    assert "The code expired at 1 March 2026, 16:00 Riyadh time; ask for a new code." == (
        error.message_en
    )


def test_details_are_kept_and_read_only() -> None:
    """details holds the raw values and cannot be changed."""
    error = LiveCodeLimitReached(limit=3, next_free=MOMENT, retry_after=60)
    assert {"limit": 3, "next_free": MOMENT, "retry_after": 60} == dict(error.details)
    with pytest.raises(TypeError):
        error.details["limit"] = 4  # type: ignore[index]


def test_repr_names_class_code_and_details() -> None:
    """repr shows the class, the code and the details."""
    assert "MalformedCode(code='malformed_code', details={'length': 8, 'alphabet': '0-9'})" == repr(
        MalformedCode(length=8, alphabet="0-9")
    )


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_templates_use_only_simple_placeholders(error_class: type[TelecardAuthError]) -> None:
    """Placeholders are bare names: no attribute access, indexing or format specs to go wrong."""
    for template in (error_class.template_en, error_class.template_ar):
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        assert all(re.fullmatch(r"[a-z_]+", name, re.ASCII) for name in fields)


# --- errors cross process boundaries -------------------------------------------------------------


@pytest.mark.parametrize("error_class", ERRORS + CLI_ERRORS, ids=_ids)
def test_errors_survive_pickling(error_class: type[TelecardAuthError]) -> None:
    """An error raised in a worker process arrives intact: same class, code, details, message.

    Pickling calls the class with its details (and a storage error's detail) as keywords."""
    error = _built(error_class)
    restored = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(error) is type(restored)
    assert error.code == restored.code
    assert dict(error.details) == dict(restored.details)
    assert str(error) == str(restored)
    assert error.args == restored.args
    assert getattr(error, "detail", None) == getattr(restored, "detail", None)


def test_errors_can_be_copied() -> None:
    """copy.copy() of an error (as done by some frameworks) works and keeps the details."""
    error = LiveCodeLimitReached(limit=3, next_free=MOMENT, retry_after=60)
    copied = copy.copy(error)
    assert dict(error.details) == dict(copied.details)
    assert str(error) == str(copied)


def test_times_in_details_are_typed_attributes() -> None:
    """expired_at and retry_at read the details as datetimes, and survive pickling."""
    moment = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    expired = CodeExpired(expired_at=moment)
    budget = FailureBudgetExhausted(retry_at=moment, retry_after=60)
    expired_again = pickle.loads(pickle.dumps(expired))  # noqa: S301 - our own object
    budget_again = pickle.loads(pickle.dumps(budget))  # noqa: S301 - our own object
    assert moment == expired.expired_at == expired_again.expired_at
    assert moment == budget.retry_at == budget_again.retry_at
