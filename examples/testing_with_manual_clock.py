"""How a service's tests drive time: a ``ManualClock`` moves on command, and nothing sleeps.

Give the issuer a ``ManualClock`` in the test, and four hours, or a whole day, pass in one call:
``clock.advance(hours=4)``. The tests below are an ordinary pytest module; copy the fixtures into
your own ``conftest.py``. Run them with pytest, or run this file::

    python examples/testing_with_manual_clock.py
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from telecard_auth import (
    CodeExpired,
    CodeIssuer,
    CodeLocked,
    CodeState,
    FailureBudgetExhausted,
    InvalidTime,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    Subject,
    WrongCode,
)

START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """The time every test starts at; it moves only when the test moves it."""
    return ManualClock(START)


@pytest.fixture
def issuer(clock: ManualClock) -> CodeIssuer:
    """An issuer that reads the manual clock, over fresh in-memory storage."""
    return CodeIssuer(MemoryStorage(), keyring=Keyring.generate(), clock=clock)


@pytest.fixture
def customer() -> Subject:
    """A citizen, authenticated by the national SSO."""
    return Subject.citizen("1000000008")


def wrong(code: str) -> str:
    """A well-formed code that is not ``code``: its last digit moved on by one."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def test_a_code_is_good_for_four_hours_and_not_a_moment_longer(
    issuer: CodeIssuer, clock: ManualClock, customer: Subject
) -> None:
    """Redeemed a microsecond before the fourth hour ends; refused when it has ended."""
    early = issuer.issue(customer, "stc")
    late = issuer.issue(customer, "stc")

    clock.advance(hours=4, microseconds=-1)
    assert early.code_id == issuer.redeem(customer, "stc", early.code, "new_line").code_id

    clock.advance(microseconds=1)
    assert START + timedelta(hours=4) == late.expires_at == clock.now()
    with pytest.raises(CodeExpired) as refused:
        issuer.redeem(customer, "stc", late.code, "new_line")
    assert "code_expired" == refused.value.code
    assert refused.value.message_ar.startswith("انتهت صلاحية الرمز")


def test_status_says_expired_once_the_clock_passes_the_expiry(
    issuer: CodeIssuer, clock: ManualClock, customer: Subject
) -> None:
    """Expiry is derived from the clock: nothing runs in the background to mark the code."""
    issued = issuer.issue(customer, "zain")
    assert issuer.status(customer, issued.code_id).state is CodeState.ACTIVE
    clock.advance(hours=4)
    assert issuer.status(customer, issued.code_id).state is CodeState.EXPIRED


def test_five_wrong_attempts_lock_the_code(issuer: CodeIssuer, customer: Subject) -> None:
    """After the policy's five wrong attempts, even the right code is refused."""
    issued = issuer.issue(customer, "mobily")
    for _ in range(Policy().max_failed_attempts):
        with pytest.raises(WrongCode):
            issuer.redeem(customer, "mobily", wrong(issued.code), "new_line")
    with pytest.raises(CodeLocked):
        issuer.redeem(customer, "mobily", issued.code, "new_line")


def test_a_spent_failure_budget_leaves_recovery_codes_until_a_day_later(
    issuer: CodeIssuer, clock: ManualClock, customer: Subject
) -> None:
    """Ten wrong attempts at one operator spend the budget there for 24 hours.

    Meanwhile only a code asked for since (a recovery code, with two attempts of its own) is
    compared; once the window has moved on, ordinary codes work again.
    """
    for _ in range(2):  # two codes, each locked by five wrong attempts: ten in all
        issued = issuer.issue(customer, "stc")
        for _ in range(5):
            clock.advance(minutes=1)
            with pytest.raises(WrongCode):
                issuer.redeem(customer, "stc", wrong(issued.code), "new_line")

    recovery = issuer.issue(customer, "stc")  # the customer authenticates again and asks anew
    assert 2 == issuer.status(customer, recovery.code_id).attempts_left
    assert recovery.code_id == issuer.redeem(customer, "stc", recovery.code, "new_line").code_id

    with pytest.raises(FailureBudgetExhausted) as refused:  # no live recovery code left
        issuer.redeem(customer, "stc", wrong(recovery.code), "new_line")
    retry_at = refused.value.retry_at
    assert START + timedelta(minutes=1) + timedelta(hours=24) == retry_at

    clock.set(retry_at)  # a day passes in one call
    again = issuer.issue(customer, "stc")  # an ordinary code: the budget is no longer spent
    assert 5 == issuer.status(customer, again.code_id).attempts_left
    assert again.code_id == issuer.redeem(customer, "stc", again.code, "new_line").code_id


def test_a_manual_clock_never_goes_back(clock: ManualClock) -> None:
    """Moving the clock backwards is refused, so a test cannot undo an expiry by mistake."""
    clock.advance(hours=1)
    with pytest.raises(InvalidTime):
        clock.set(START)
    with pytest.raises(InvalidTime):
        clock.advance(hours=-1)
    assert START + timedelta(hours=1) == clock.now()


if __name__ == "__main__":
    # pytest runs in a fresh interpreter: in this one the library is imported already, too early
    # for pytest to rewrite the asserts of its plugin. No .pytest_cache is left behind.
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    sys.exit(subprocess.call(command))  # noqa: S603 (this interpreter, this file)
