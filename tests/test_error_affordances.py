"""What an HTTP service needs from an error: its status, when to retry, JSON, language and time.

Each error has an ``http_status`` (the table in docs/errors.md), a ``retry_after`` in whole
seconds where waiting helps, ``to_dict()`` for a JSON answer that never holds a driver's text, a
``message`` for any language tag, and times shown for people in Riyadh time or a given zone. The
command line prints its help when called with nothing, and stops quietly when its reader goes away.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import typing
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import K1_SECRET, PSEUDONYM_SECRET, START, other_code

import telecard_auth
from telecard_auth import (
    RIYADH,
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeIssuer,
    CodeLocked,
    CodeRevoked,
    CodeSuperseded,
    ConfigurationError,
    FailureBudgetExhausted,
    HmacKey,
    InvalidInput,
    InvalidPolicy,
    Keyring,
    LiveCodeLimitReached,
    MalformedReceipt,
    ManualClock,
    MemoryStorage,
    NotEligible,
    NotPermitted,
    Policy,
    ReceiptNotVerified,
    RedemptionRefused,
    RequestConflict,
    ServiceMismatch,
    StorageContention,
    StorageError,
    Subject,
    TelecardAuthError,
    TransferNotBound,
    UnknownCode,
    UnknownProvider,
    UnknownSigningKey,
    WrongCode,
    preferred_language,
)
from telecard_auth.cli import main

ERRORS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
MOMENT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
#: Every status the table in docs/errors.md uses.
STATUSES = frozenset({400, 403, 404, 409, 410, 429, 500, 503})
#: The families, most specific first, as the table names them ("(root)" for the root).
FAMILIES: tuple[type[TelecardAuthError], ...] = (
    InvalidInput,
    NotPermitted,
    RedemptionRefused,
    ReceiptNotVerified,
    UnknownCode,
    ConfigurationError,
    StorageError,
)
INDIA = timezone(timedelta(hours=5, minutes=30))
HEAD = shutil.which("head") or "head"
DRIVER_TEXT = "PostgreSQL db.internal:5432 role app password=hunter2: connection refused"


def _library_errors() -> list[type[TelecardAuthError]]:
    """The error classes of the ``telecard_auth`` package: the subclasses of its root, reachable
    from ``telecard_auth.__all__``, defined by the package itself or its private modules.

    The command line's and the key file's own errors (``telecard_auth.cli``,
    ``telecard_auth.keys``) are left out, as docs/errors.md says; so are tests' own classes.
    """
    found: list[type[TelecardAuthError]] = []
    waiting = [telecard_auth.TelecardAuthError]
    while waiting:
        error_class = waiting.pop(0)
        module = error_class.__module__
        if error_class not in found and (
            module == "telecard_auth" or module.startswith("telecard_auth._")
        ):
            found.append(error_class)
        waiting.extend(error_class.__subclasses__())
    return found


ERRORS = _library_errors()
#: The classes whose errors carry a ``retry_after`` of their own.
RETRYING = [c for c in ERRORS if c.retry_after is not TelecardAuthError.retry_after]


def _ids(error_class: type[TelecardAuthError]) -> str:
    return error_class.__name__


def _built(error_class: type[TelecardAuthError]) -> TelecardAuthError:
    """An instance of ``error_class`` with a value of its type for each field it declares."""
    hints = typing.get_type_hints(error_class.__init__)
    samples: dict[object, object] = {int: 7, datetime: MOMENT, str | None: DRIVER_TEXT}
    fields = {
        name: samples.get(hints[name], f"<{name}>")
        for name in inspect.signature(error_class).parameters
    }
    return error_class(**fields)


def _keyring() -> Keyring:
    return Keyring(
        keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
        pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
    )


def _family(error_class: type[TelecardAuthError]) -> str:
    return next((f.__name__ for f in FAMILIES if issubclass(error_class, f)), "(root)")


# --- HTTP status ---------------------------------------------------------------------------------


def test_the_walk_finds_the_public_errors() -> None:
    """The walk finds every error class that telecard_auth.__all__ names."""
    public = {
        value
        for value in (getattr(telecard_auth, name) for name in telecard_auth.__all__)
        if isinstance(value, type) and issubclass(value, TelecardAuthError)
    }
    assert set() == public - set(ERRORS)


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_every_error_has_a_status_of_the_table(error_class: type[TelecardAuthError]) -> None:
    """Each error class has an int http_status, one of the statuses the table uses."""
    assert int is type(error_class.http_status)
    assert error_class.http_status in STATUSES


@pytest.mark.parametrize(
    ("error_class", "status"),
    [
        (TelecardAuthError, 500),
        (InvalidInput, 400),
        (UnknownProvider, 400),
        (MalformedReceipt, 400),
        (BindingRequired, 400),
        (NotPermitted, 403),
        (NotEligible, 403),
        (LiveCodeLimitReached, 403),
        (RedemptionRefused, 403),
        (WrongCode, 403),
        (ServiceMismatch, 403),
        (BindingMismatch, 403),
        (TransferNotBound, 403),
        (UnknownCode, 404),
        (CodeAlreadyUsed, 409),
        (RequestConflict, 409),
        (CodeExpired, 410),
        (CodeRevoked, 410),
        (CodeSuperseded, 410),
        (CodeLocked, 429),
        (FailureBudgetExhausted, 429),
        (ReceiptNotVerified, 403),
        (UnknownSigningKey, 403),
        (ConfigurationError, 500),
        (InvalidPolicy, 500),
        (StorageError, 503),
        (StorageContention, 503),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else str(value),
)
def test_status(error_class: type[TelecardAuthError], status: int) -> None:
    """Each class answers with its documented HTTP status."""
    assert status == error_class.http_status


# --- the table in docs/errors.md -----------------------------------------------------------------

_ROW = re.compile(r"^\| `(?P<code>\w+)` \| `(?P<name>\w+)` \|(?P<rest>.*)\|$", re.MULTILINE)


def _table() -> dict[str, tuple[str, str, int, str, frozenset[str]]]:
    """The rows of the table in docs/errors.md: class name to (code, family, status, Retry-After,
    details)."""
    rows: dict[str, tuple[str, str, int, str, frozenset[str]]] = {}
    for row in _ROW.finditer(ERRORS_PAGE.read_text(encoding="utf-8")):
        family, status, retry, details = (cell.strip() for cell in row["rest"].split("|"))
        assert row["name"] not in rows, f"{row['name']} is listed twice"
        fields = frozenset(re.findall(r"`(\w+)`", details))
        rows[row["name"]] = (row["code"], family.strip("`"), int(status), retry, fields)
    return rows


def test_the_table_lists_exactly_the_library_errors() -> None:
    """docs/errors.md has one row for each error class of the package, and no other."""
    assert sorted(error.__name__ for error in ERRORS) == sorted(_table())


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_the_table_row_is_what_the_class_has(error_class: type[TelecardAuthError]) -> None:
    """Each row gives the class's code, family, HTTP status, Retry-After and details."""
    fields = frozenset(inspect.signature(error_class).parameters) - {"detail"}
    retry = "yes" if error_class in RETRYING else "no"
    expected = (error_class.code, _family(error_class), error_class.http_status, retry, fields)
    assert expected == _table().get(error_class.__name__)


# --- retry_after ---------------------------------------------------------------------------------


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_retry_after_only_where_waiting_helps(error_class: type[TelecardAuthError]) -> None:
    """retry_after is None except for the live-code limit and the failure budget."""
    expected = 7 if error_class in (LiveCodeLimitReached, FailureBudgetExhausted) else None
    assert expected == _built(error_class).retry_after


def test_retry_after_through_the_issuer_when_the_budget_is_spent() -> None:
    """Budget spent: retry_after is the seconds, rounded up, until the oldest failure leaves."""
    policy = Policy(failure_budget=3, failure_window=timedelta(hours=1), accept_guess_risk=True)
    clock = ManualClock(START)
    issuer = CodeIssuer(MemoryStorage(), keyring=_keyring(), policy=policy, clock=clock)
    citizen = Subject.citizen("1000000008")
    issued = issuer.issue(citizen, "stc")
    failures = []
    for _ in range(policy.failure_budget):
        failures.append(clock.advance(minutes=7, seconds=0.25))
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    refused_at = clock.advance(minutes=3, seconds=10.5)
    with pytest.raises(FailureBudgetExhausted) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    retry_at = failures[0] + policy.failure_window
    seconds = math.ceil((retry_at - refused_at).total_seconds())
    assert (retry_at, seconds) == (caught.value.retry_at, caught.value.retry_after)
    assert (429, seconds) == (
        caught.value.to_dict()["status"],
        caught.value.to_dict()["retry_after"],
    )


def test_retry_after_through_the_issuer_at_the_live_code_limit() -> None:
    """Live-code limit: retry_after is the seconds, rounded up, until the first code expires."""
    clock = ManualClock(START)
    issuer = CodeIssuer(MemoryStorage(), keyring=_keyring(), policy=Policy(), clock=clock)
    citizen = Subject.citizen("1000000008")
    first = issuer.issue(citizen, "stc")
    for _ in range(Policy().max_live_codes - 1):
        clock.advance(seconds=0.4)
        issuer.issue(citizen, "stc")
    refused_at = clock.advance(minutes=1)
    with pytest.raises(LiveCodeLimitReached) as caught:
        issuer.issue(citizen, "stc")
    seconds = math.ceil((first.expires_at - refused_at).total_seconds())
    assert (first.expires_at, seconds) == (caught.value.next_free, caught.value.retry_after)


def test_retry_after_survives_pickling() -> None:
    """An error that crosses a process boundary keeps its retry_after and its times."""
    budget = FailureBudgetExhausted(retry_at=MOMENT, retry_after=90)
    limit = LiveCodeLimitReached(limit=3, next_free=MOMENT, retry_after=600)
    budget_again = pickle.loads(pickle.dumps(budget))  # noqa: S301 - our own object
    limit_again = pickle.loads(pickle.dumps(limit))  # noqa: S301 - our own object
    assert (90, MOMENT) == (budget_again.retry_after, budget_again.retry_at)
    assert (600, MOMENT) == (limit_again.retry_after, limit_again.next_free)
    assert budget.to_dict() == budget_again.to_dict()


# --- to_dict -------------------------------------------------------------------------------------


@pytest.mark.parametrize("error_class", ERRORS, ids=_ids)
def test_to_dict_is_json(error_class: type[TelecardAuthError]) -> None:
    """to_dict() of any error goes through json.dumps and back unchanged, with its usual keys."""
    error = _built(error_class)
    answer = error.to_dict()
    keys = {"code", "status", "message", "details"} | (
        {"retry_after"} if error.retry_after is not None else set()
    )
    assert answer == json.loads(json.dumps(answer))
    assert keys == set(answer)
    assert (error.code, error.http_status) == (answer["code"], answer["status"])
    assert {"en": error.message_en, "ar": error.message_ar} == answer["message"]


@pytest.mark.parametrize(
    ("error", "details"),
    [
        (CodeExpired(expired_at=MOMENT), {"expired_at": "2026-11-25T10:00:00Z"}),
        (
            CodeExpired(expired_at=datetime(2026, 11, 25, 13, 0, 0, 250000, tzinfo=RIYADH)),
            {"expired_at": "2026-11-25T10:00:00.250000Z"},
        ),
        (
            FailureBudgetExhausted(retry_at=MOMENT, retry_after=1),
            {"retry_at": "2026-11-25T10:00:00Z", "retry_after": 1},
        ),
        (
            LiveCodeLimitReached(limit=3, next_free=MOMENT, retry_after=5),
            {"limit": 3, "next_free": "2026-11-25T10:00:00Z", "retry_after": 5},
        ),
        (WrongCode(), {}),
        (StorageError(reason="the storage is closed"), {"reason": "the storage is closed"}),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_to_dict_details(error: TelecardAuthError, details: dict[str, object]) -> None:
    """Details keep their values, times in UTC, ISO 8601 with Z."""
    assert details == error.to_dict()["details"]


@pytest.mark.parametrize(
    "error",
    [
        StorageError(reason="the database cannot be reached", detail=DRIVER_TEXT),
        StorageContention(detail=DRIVER_TEXT),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_drivers_text_is_never_in_to_dict(error: StorageError) -> None:
    """StorageError.detail (hosts, ports, roles, passwords) is in no part of to_dict()."""
    shown = json.dumps(error.to_dict(), ensure_ascii=False)
    assert DRIVER_TEXT == error.detail
    assert [] == [part for part in ("db.internal", "5432", "hunter2", "role") if part in shown]


# --- languages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "arabic"),
    [
        ("ar", True),
        ("ar-SA", True),
        ("AR", True),
        ("ar_SA", True),
        (" ar-sa ", True),
        ("ar-Arab-EG", True),
        ("en", False),
        ("en-US", False),
        ("fr", False),
        ("arz", False),
        ("", False),
        ("-ar", False),
    ],
)
def test_message_takes_a_language_tag(tag: str, arabic: bool) -> None:
    """Any tag whose primary subtag is ar gives Arabic; any other, English."""
    error = WrongCode()
    assert (error.message_ar if arabic else error.message_en) == error.message(tag)


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("ar-SA,ar;q=0.9,en;q=0.8", "ar"),
        ("en-US,ar;q=0.5", "en"),
        ("fr, ar;q=0.1", "ar"),
        ("fr-CA, fr;q=0.9, en;q=0.2, ar;q=0.1", "en"),
        ("*", "en"),
        ("*, ar;q=0.5", "ar"),
        ("en, ar", "en"),
        ("ar, en", "ar"),
        ("ar;q=0.5, en;q=0.5", "ar"),
        ("en;q=0.500, ar;q=0.501", "ar"),
        ("AR-sa", "ar"),
        ("ar ; q=0.9", "ar"),
        ("ar;Q=0.9", "ar"),
        ("ar;q=0", "en"),
        ("en;q=0, ar", "ar"),
        ("ar;q=1.5", "en"),
        ("ar;q=0.1234", "en"),
        ("ar;q=", "en"),
        ("ar;level=1", "en"),
        ("ar;q=0.9;q=0.8", "en"),
        ("ar_SA", "en"),
        ("ar-", "en"),
        ("abcdefghi", "en"),
        (",,, ,ar", "ar"),
        ("", "en"),
        (None, "en"),
        ("\x00\n;;;==", "en"),
    ],
)
def test_preferred_language(header: str | None, chosen: str) -> None:
    """The heaviest Arabic or English range wins, the first of equals; the rest are passed over."""
    assert chosen == preferred_language(header)


@given(st.text(max_size=300))
def test_preferred_language_never_raises(header: str) -> None:
    """Any text at all gets an answer, Arabic or English."""
    assert preferred_language(header) in ("ar", "en")


# --- times for people ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "zone", "message"),
    [
        (
            "en",
            None,
            "The code expired at 25 November 2026, 13:00 Riyadh time; ask for a new code.",
        ),
        (
            "ar",
            None,
            "انتهت صلاحية الرمز في 25 نوفمبر 2026، الساعة 13:00 بتوقيت الرياض؛ اطلب رمزًا جديدًا.",
        ),
        ("en", UTC, "The code expired at 25 November 2026, 10:00 UTC; ask for a new code."),
        (
            "ar",
            UTC,
            "انتهت صلاحية الرمز في 25 نوفمبر 2026، الساعة 10:00 بالتوقيت العالمي؛ اطلب رمزًا جديدًا.",
        ),
        (
            "en",
            INDIA,
            "The code expired at 25 November 2026, 15:30 UTC+05:30; ask for a new code.",
        ),
        (
            "ar",
            INDIA,
            "انتهت صلاحية الرمز في 25 نوفمبر 2026، الساعة 15:30 بتوقيت UTC+05:30؛ اطلب رمزًا جديدًا.",
        ),
        (
            "en",
            timezone(timedelta(hours=-4)),
            "The code expired at 25 November 2026, 06:00 UTC-04:00; ask for a new code.",
        ),
        (
            "en",
            RIYADH,
            "The code expired at 25 November 2026, 13:00 Riyadh time; ask for a new code.",
        ),
    ],
)
def test_a_time_is_shown_in_the_zone(lang: str, zone: tzinfo | None, message: str) -> None:
    """Riyadh time by default, else the zone asked for, named by its offset; both languages."""
    assert message == CodeExpired(expired_at=MOMENT).message(lang, zone=zone)


@pytest.mark.parametrize(
    ("error", "english", "arabic"),
    [
        (
            FailureBudgetExhausted(retry_at=MOMENT + timedelta(seconds=30.5), retry_after=1),
            "try again after 25 November 2026, 13:00:30 Riyadh time.",
            "حاول مرة أخرى بعد 25 نوفمبر 2026، الساعة 13:00:30 بتوقيت الرياض.",
        ),
        (
            LiveCodeLimitReached(limit=3, next_free=MOMENT + timedelta(days=37), retry_after=1),
            "or wait until 1 January 2027, 13:00 Riyadh time.",
            "أو انتظر حتى 1 يناير 2027، الساعة 13:00 بتوقيت الرياض.",
        ),
    ],
    ids=lambda error: type(error).__name__,
)
def test_every_time_in_a_message_is_for_people(
    error: TelecardAuthError, english: str, arabic: str
) -> None:
    """Retry and next-free times are shown as expiry is: seconds only when there are any."""
    assert (True, True) == (error.message_en.endswith(english), error.message_ar.endswith(arabic))
    assert f"{error.message_en} | {error.message_ar}" == str(error)


def test_machine_fields_stay_utc() -> None:
    """Attributes and details keep the UTC datetime given, whatever the messages show."""
    error = CodeExpired(expired_at=MOMENT)
    assert (MOMENT, MOMENT, UTC) == (error.expired_at, error.details["expired_at"], MOMENT.tzinfo)


# --- the command line ----------------------------------------------------------------------------


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "telecard_auth", *arguments]


def test_no_arguments_print_the_help_and_exit_with_the_usage_status(tmp_path: Path) -> None:
    """With nothing to do, the command prints its full help on stdout and exits 2."""
    run = subprocess.run(  # noqa: S603 - our own interpreter and module
        _command(), cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert (2, "") == (run.returncode, run.stderr)
    assert run.stdout.startswith("usage: telecard-auth")
    assert all(command in run.stdout for command in ("issue", "redeem", "demo", "receipt"))


def test_no_arguments_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """main([]) prints the same help as --help, and returns 2."""
    assert 2 == main([])
    shown = capsys.readouterr()
    assert 0 == main(["--help"])
    assert (shown.out, "") == (capsys.readouterr().out, shown.err)


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    """`telecard-auth demo | head -1`: head shows the first line, the command writes no error."""
    demo = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        _command("demo"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert demo.stdout is not None
    assert demo.stderr is not None
    head = subprocess.Popen(  # noqa: S603 - the system's head, found on PATH
        [HEAD, "-1"], stdin=demo.stdout, stdout=subprocess.PIPE
    )
    demo.stdout.close()  # head is the only reader now, as in a shell's pipeline
    first, _ = head.communicate(timeout=120)
    errors = demo.stderr.read()
    demo.stderr.close()
    status = demo.wait(timeout=120)
    assert (b"", 1, 0) == (errors, first.count(b"\n"), head.returncode)
    # The demo may have written all it had before head stopped reading; if not, it ends as 141.
    assert status in (0, 141)


def test_a_pipe_closed_before_any_output_gives_status_141(tmp_path: Path) -> None:
    """A reader gone before the first line: exit status 141, and nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run(  # noqa: S603 - our own interpreter and module
            _command("demo"),
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (141, b"") == (run.returncode, run.stderr)
