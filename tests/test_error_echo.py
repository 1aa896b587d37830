"""Errors never echo what a caller typed, and keep a storage driver's words out of their messages.

A provider or service id that is not in the policy may be anything a person typed: a code in the
wrong field, a line break and a forged log line, a terminal escape. None of it reaches a message,
``str()`` or ``repr()``. A storage driver's text (hosts, ports, databases, roles, paths) lives on
``StorageError.detail``, for server logs, and nowhere a client reads.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from telecard_auth import (
    CodeIssuer,
    InvalidReference,
    InvalidRequestId,
    Keyring,
    MemoryStorage,
    Policy,
    StorageContention,
    StorageError,
    Subject,
    SubjectSnapshot,
    TelecardAuthError,
    UnknownProvider,
    UnknownService,
)
from telecard_auth._core.text import clip, driver_detail

#: What a caller might send as a provider or service id: a code typed into the wrong field, and
#: text that would forge a log line or drive a terminal.
TYPED = (
    "41038692",
    "stc\nINFO redemption accepted",
    "stc\r\nforged",
    "\x1b[31mred\x1b[0m",
    "zain\u202e\u200f",
)
#: Pieces of ``TYPED`` that must not come back.
TELLTALES = ("41038692", "\n", "\r", "\x1b", "forged", "INFO", "31m", "\u202e", "\u200f")


def _shown(error: TelecardAuthError) -> tuple[str, ...]:
    """Everything an error shows people and logs: its messages, str(), repr() and args."""
    return (error.message_en, error.message_ar, str(error), repr(error), *map(str, error.args))


@pytest.mark.parametrize("typed", TYPED)
@pytest.mark.parametrize("lookup", ["provider", "service"])
def test_an_unknown_id_is_not_echoed(typed: str, lookup: str) -> None:
    """An unknown provider or service id leaves nothing of itself in any text of the error."""
    policy = Policy()
    expected = UnknownProvider if lookup == "provider" else UnknownService
    with pytest.raises(expected) as caught:
        getattr(policy, lookup)(typed)
    for text in _shown(caught.value):
        assert [] == [telltale for telltale in TELLTALES if telltale in text]
    assert {} == dict(caught.value.details)


@pytest.mark.parametrize("typed", TYPED)
def test_an_unknown_id_at_issuance_is_not_echoed(typed: str) -> None:
    """Issuing for a provider or service that does not exist names neither value."""
    issuer = CodeIssuer(MemoryStorage(), keyring=Keyring.generate())
    customer = Subject.citizen("1000000008")
    with pytest.raises(UnknownProvider) as provider:
        issuer.issue(customer, typed)
    with pytest.raises(UnknownService) as service:
        issuer.issue(customer, "stc", service=typed)
    for error in (provider.value, service.value):
        for text in _shown(error):
            assert [] == [telltale for telltale in TELLTALES if telltale in text]


@pytest.mark.parametrize("typed", TYPED[1:])
@pytest.mark.parametrize("argument", ["reference", "request_id"])
def test_a_refused_reference_or_request_id_is_not_echoed(typed: str, argument: str) -> None:
    """A redemption's reference or request id that is not printable ASCII is refused with its
    own error, and nothing of it (a forged log line, an escape) is in any text of the error."""
    issuer = CodeIssuer(MemoryStorage(), keyring=Keyring.generate())
    customer = Subject.citizen("1000000008")
    issued = issuer.issue(customer, "stc")
    expected = InvalidReference if argument == "reference" else InvalidRequestId
    reference, request_id = (typed, None) if argument == "reference" else (None, typed)
    with pytest.raises(expected) as caught:
        issuer.redeem(
            customer, "stc", issued.code, "new_line", reference=reference, request_id=request_id
        )
    assert {} == dict(caught.value.details)
    for text in _shown(caught.value):
        assert [] == [telltale for telltale in TELLTALES if telltale in text]
    assert "active" == issuer.status(customer, issued.code_id).state.value


def test_an_unknown_id_is_named_by_what_it_must_be() -> None:
    """The messages say which list the value must come from, in both languages."""
    with pytest.raises(UnknownProvider) as provider:
        Policy().provider("41038692")
    with pytest.raises(UnknownService) as service:
        Policy().service("41038692")
    assert "Unknown service provider; it must be one of the policy's providers." == (
        provider.value.message_en
    )
    assert "Unknown service; it must be one of the policy's services." == service.value.message_en
    assert "مزود الخدمة غير معروف؛ يجب أن يكون أحد مزودي الخدمة في السياسة." == (
        provider.value.message_ar
    )
    assert "الخدمة غير معروفة؛ يجب أن تكون إحدى خدمات السياسة." == service.value.message_ar


def test_a_service_id_of_the_wrong_type_for_a_ttl_is_not_echoed() -> None:
    """ttl_for refuses a non-text id without naming it or its type."""
    with pytest.raises(UnknownService) as caught:
        Policy().ttl_for(41038692)  # type: ignore[arg-type]
    assert {} == dict(caught.value.details)
    assert "41038692" not in repr(caught.value)


# --- StorageError.detail -----------------------------------------------------------------------

#: What a driver says when it cannot connect: server data that no client may read.
DRIVER_TEXT = 'connection to server at "db01.internal", port 5432 failed: role "payments" denied'


def _storage_error() -> StorageError:
    return StorageError(reason="the database cannot be reached", detail=DRIVER_TEXT)


def test_detail_is_kept_apart_from_every_text_a_client_reads() -> None:
    """detail holds the driver's text; messages, str, repr, args and details do not."""
    error = _storage_error()
    assert DRIVER_TEXT == error.detail
    assert {"reason": "the database cannot be reached"} == dict(error.details)
    for text in _shown(error):
        assert "db01" not in text
        assert "payments" not in text
    assert "The storage failed: the database cannot be reached." == error.message_en


@pytest.mark.parametrize(
    "error",
    [_storage_error(), StorageContention(detail=DRIVER_TEXT)],
    ids=["StorageError", "StorageContention"],
)
def test_detail_survives_pickling_and_copying(error: StorageError) -> None:
    """A storage error from a worker process keeps its detail, its details and its messages."""
    for restored in (
        pickle.loads(pickle.dumps(error)),  # noqa: S301 - our own object
        copy.copy(error),
        copy.deepcopy(error),
    ):
        assert type(error) is type(restored)
        assert DRIVER_TEXT == restored.detail
        assert dict(error.details) == dict(restored.details)
        assert str(error) == str(restored)


def test_detail_is_none_unless_given() -> None:
    """A StorageError raised without a driver's text has no detail, before and after pickling."""
    error = StorageError(reason="the storage is closed")
    assert error.detail is None
    assert pickle.loads(pickle.dumps(error)).detail is None  # noqa: S301 - our own object


def test_a_hand_written_backends_exception_goes_to_detail_only() -> None:
    """An exception a custom storage lets out becomes a StorageError with its text in detail."""

    class Leaky(MemoryStorage):
        def load(self, subject_ref: str) -> SubjectSnapshot:
            raise OSError(f"cannot reach {DRIVER_TEXT}")

    issuer = CodeIssuer(Leaky(), keyring=Keyring.generate())
    with pytest.raises(StorageError) as caught:
        issuer.issue(Subject.citizen("1000000008"), "stc")
    for text in _shown(caught.value):
        assert "db01" not in text
    assert caught.value.detail is not None
    assert f"storage: OSError: cannot reach {DRIVER_TEXT}" == caught.value.detail


def test_driver_detail_is_one_escaped_line_without_the_password() -> None:
    """A driver's text is cut to its first line, control characters escaped, passwords withheld."""
    error = OSError("failed at db01\x1b[2J: reset\nsecond line")
    assert "Redis db01:6379/0: OSError: failed at db01\\x1b[2J: reset" == driver_detail(
        "Redis db01:6379/0", error
    )
    leaking = OSError("password s3cret-pw was refused")
    withheld = driver_detail("PostgreSQL", leaking, ("s3cret-pw",))
    assert "s3cret-pw" not in withheld
    assert withheld.startswith("PostgreSQL: OSError: ")


def test_clip_escapes_what_would_break_a_log_line() -> None:
    """clip shows control and format characters escaped, and printable text as it is."""
    cases = {
        "a\nb": "a\\nb",
        "a\r\nb": "a\\r\\nb",
        "\x1b[0m": "\\x1b[0m",
        "\u200fx": "\\u200fx",
        "plain text, عربي": "plain text, عربي",
    }
    assert cases == {value: clip(value) for value in cases}
