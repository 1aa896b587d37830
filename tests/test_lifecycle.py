"""A code's life seen through ``status`` and changed by ``revoke``.

States: ACTIVE, EXPIRED (derived from time, never stored), REDEEMED, REVOKED, LOCKED.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.helpers import (
    JUNK,
    ONE_MICROSECOND,
    dump,
    junk_cases,
    make_issuer,
    other_code,
    stored_record,
)

from telecard_auth import (
    CodeAlreadyUsed,
    CodeIssuer,
    CodeRevoked,
    CodeState,
    CodeStatus,
    IssuedCode,
    Keyring,
    ManualClock,
    MemoryStorage,
    NotEligible,
    Subject,
    SubjectKind,
    TelecardAuthError,
    UnknownCode,
    WrongCode,
)


def lock(issuer: CodeIssuer, subject: Subject, issued: IssuedCode) -> None:
    """Lock ``issued`` with as many wrong guesses as the policy allows."""
    for _ in range(issuer.policy.max_failed_attempts):
        with pytest.raises(WrongCode):
            issuer.redeem(subject, issued.provider, other_code(issued.code), "new_line")


# --- status ---------------------------------------------------------------------------------------


def test_status_of_a_new_code_is_active(issuer: CodeIssuer, citizen: Subject) -> None:
    """A fresh code is ACTIVE with every attempt left and nothing finished."""
    issued = issuer.issue(citizen, "zain", service="new_line")
    expected = CodeStatus(
        code_id=issued.code_id,
        provider_id="zain",
        state=CodeState.ACTIVE,
        service_id="new_line",
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        failed_attempts=0,
        attempts_left=5,
        finished_at=None,
        redeemed_service_id=None,
    )
    assert expected == issuer.status(citizen, issued.code_id)


def test_status_of_unbound_code_has_no_service(issuer: CodeIssuer, citizen: Subject) -> None:
    """An unbound code's status names no service."""
    issued = issuer.issue(citizen, "stc")
    assert issuer.status(citizen, issued.code_id).service_id is None


def test_status_changes_nothing(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """Asking for status, even of an expired code, never writes."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    issuer.status(citizen, issued.code_id)
    clock.advance(hours=5)
    issuer.status(citizen, issued.code_id)
    assert before == dump(storage)


def test_expiry_is_derived_from_time(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """ACTIVE until expires_at - 1µs, EXPIRED from expires_at, while storage still says ACTIVE."""
    issued = issuer.issue(citizen, "stc")
    clock.set(issued.expires_at - ONE_MICROSECOND)
    assert CodeState.ACTIVE == issuer.status(citizen, issued.code_id).state
    clock.advance(ONE_MICROSECOND)
    status = issuer.status(citizen, issued.code_id)
    assert (CodeState.EXPIRED, 0, None) == (status.state, status.attempts_left, status.finished_at)
    assert CodeState.ACTIVE == stored_record(storage, issued.code_id).state


def test_status_of_a_redeemed_code(
    issuer: CodeIssuer, clock: ManualClock, citizen: Subject
) -> None:
    """REDEEMED names the service it was used for and when; it stays so after expiry."""
    issued = issuer.issue(citizen, "stc")
    clock.advance(minutes=42)
    issuer.redeem(citizen, "stc", issued.code, "lost_sim_replacement")
    used_at = clock.now()
    clock.advance(hours=10)
    status = issuer.status(citizen, issued.code_id)
    assert CodeState.REDEEMED == status.state
    assert "lost_sim_replacement" == status.redeemed_service_id
    assert used_at == status.finished_at
    assert 0 == status.attempts_left
    assert status.service_id is None


def test_status_of_a_revoked_code(issuer: CodeIssuer, clock: ManualClock, citizen: Subject) -> None:
    """REVOKED records when; it stays REVOKED after the code would have expired."""
    issued = issuer.issue(citizen, "stc")
    clock.advance(minutes=3)
    issuer.revoke(citizen, issued.code_id)
    revoked_at = clock.now()
    clock.advance(hours=10)
    status = issuer.status(citizen, issued.code_id)
    assert (CodeState.REVOKED, revoked_at, None) == (
        status.state,
        status.finished_at,
        status.redeemed_service_id,
    )


def test_status_of_a_locked_code(issuer: CodeIssuer, clock: ManualClock, citizen: Subject) -> None:
    """LOCKED shows every failed attempt and no attempt left; it stays LOCKED after expiry."""
    issued = issuer.issue(citizen, "stc")
    lock(issuer, citizen, issued)
    locked_at = clock.now()
    clock.advance(hours=10)
    status = issuer.status(citizen, issued.code_id)
    assert (CodeState.LOCKED, 5, 0, locked_at) == (
        status.state,
        status.failed_attempts,
        status.attempts_left,
        status.finished_at,
    )


def test_attempts_left_follows_the_policy_limit(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """attempts_left starts at max_failed_attempts."""
    issuer = make_issuer(storage, keyring, clock, max_failed_attempts=7)
    issued = issuer.issue(citizen, "stc")
    assert 7 == issuer.status(citizen, issued.code_id).attempts_left
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    status = issuer.status(citizen, issued.code_id)
    assert (1, 6) == (status.failed_attempts, status.attempts_left)


def test_attempts_left_of_a_recovery_code_follows_recovery_attempts(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A code issued while the budget is spent starts at recovery_attempts and locks at 0."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=1, recovery_attempts=3)
    spent = issuer.issue(citizen, "stc")
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(spent.code), "new_line")
    rescue = issuer.issue(citizen, "stc")
    seen = []
    for _ in range(3):
        status = issuer.status(citizen, rescue.code_id)
        seen.append((status.state, status.failed_attempts, status.attempts_left))
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", other_code(rescue.code), "new_line")
    status = issuer.status(citizen, rescue.code_id)
    seen.append((status.state, status.failed_attempts, status.attempts_left))
    active, locked = CodeState.ACTIVE, CodeState.LOCKED
    assert [(active, 0, 3), (active, 1, 2), (active, 2, 1), (locked, 3, 0)] == seen


# --- revoke ---------------------------------------------------------------------------------------


def test_revoked_code_cannot_be_redeemed(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """Revoking a live code makes it REVOKED; the right code is then CodeRevoked, uncounted."""
    issued = issuer.issue(citizen, "stc")
    clock.advance(minutes=1)
    status = issuer.revoke(citizen, issued.code_id)
    assert (CodeState.REVOKED, clock.now()) == (status.state, status.finished_at)
    assert CodeState.REVOKED == stored_record(storage, issued.code_id).state
    before = dump(storage)
    with pytest.raises(CodeRevoked) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    assert "code_revoked" == caught.value.code
    assert before == dump(storage)


def test_revoking_twice_is_a_no_op(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """A second revoke returns the same status and writes nothing."""
    issued = issuer.issue(citizen, "stc")
    first = issuer.revoke(citizen, issued.code_id)
    before = dump(storage)
    clock.advance(minutes=5)
    assert first == issuer.revoke(citizen, issued.code_id)
    assert before == dump(storage)


def test_revoking_a_redeemed_code_is_already_used(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A used code cannot be revoked: the service has happened."""
    issued = issuer.issue(citizen, "stc")
    issuer.redeem(citizen, "stc", issued.code, "new_line")
    before = dump(storage)
    with pytest.raises(CodeAlreadyUsed) as caught:
        issuer.revoke(citizen, issued.code_id)
    assert "code_already_used" == caught.value.code
    assert before == dump(storage)
    assert CodeState.REDEEMED == issuer.status(citizen, issued.code_id).state


def test_revoking_an_expired_code_changes_nothing(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """An expired code is returned as EXPIRED, not turned into REVOKED."""
    issued = issuer.issue(citizen, "stc")
    clock.set(issued.expires_at)
    before = dump(storage)
    assert CodeState.EXPIRED == issuer.revoke(citizen, issued.code_id).state
    assert before == dump(storage)


def test_revoking_a_locked_code_changes_nothing(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A locked code stays LOCKED when revoked."""
    issued = issuer.issue(citizen, "stc")
    lock(issuer, citizen, issued)
    before = dump(storage)
    assert CodeState.LOCKED == issuer.revoke(citizen, issued.code_id).state
    assert before == dump(storage)


def test_revoking_just_before_expiry_revokes(
    issuer: CodeIssuer, clock: ManualClock, citizen: Subject
) -> None:
    """One microsecond before expiry the code is still live, so revoke takes effect."""
    issued = issuer.issue(citizen, "stc")
    clock.set(issued.expires_at - ONE_MICROSECOND)
    assert CodeState.REVOKED == issuer.revoke(citizen, issued.code_id).state


def test_revoking_one_code_leaves_the_others(issuer: CodeIssuer, citizen: Subject) -> None:
    """Only the named code is revoked."""
    kept = issuer.issue(citizen, "stc")
    gone = issuer.issue(citizen, "stc")
    issuer.revoke(citizen, gone.code_id)
    assert CodeState.ACTIVE == issuer.status(citizen, kept.code_id).state
    assert kept.code_id == issuer.redeem(citizen, "stc", kept.code, "new_line").code_id


# --- lookups that find nothing --------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["status", "revoke"])
def test_another_subjects_code_is_unknown(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    subjects: tuple[Subject, ...],
    operation: str,
) -> None:
    """A code id is looked up among the asking subject's codes only."""
    citizen, resident = subjects[:2]
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(UnknownCode) as caught:
        getattr(issuer, operation)(resident, issued.code_id)
    assert "unknown_code" == caught.value.code
    assert before == dump(storage)
    assert CodeState.ACTIVE == issuer.status(citizen, issued.code_id).state


JUNK_IDS: list[object] = [
    *JUNK,
    1.0,
    b"abc",
    ["abc"],
    {"code_id": "abc"},
    "x" * 65,
    "x" * 1_000_000,
    "no-such-code",
]

JUNK_SUBJECTS: list[object] = [None, "1000000008", 1000000008, b"1000000008", {"id": "x"}, object()]

# What each junk argument is refused with: any code id that is not one is simply not found.
EXPECTED_FOR_JUNK: dict[str, tuple[type[TelecardAuthError], str]] = {
    "code_id": (UnknownCode, "unknown_code"),
    "subject": (TelecardAuthError, "invalid_input"),
}


@pytest.mark.parametrize("operation", ["status", "revoke"])
@pytest.mark.parametrize(
    ("argument", "junk"),
    [*junk_cases(["code_id"], JUNK_IDS), *junk_cases(["subject"], JUNK_SUBJECTS)],
)
def test_junk_argument_to_lookup_is_refused(
    *,
    issuer: CodeIssuer,
    storage: MemoryStorage,
    citizen: Subject,
    operation: str,
    argument: str,
    junk: object,
) -> None:
    """A code id of any other type, empty, huge or absent is UnknownCode; status and revoke take
    a Subject, anything else is InvalidInput. Neither writes."""
    issued = issuer.issue(citizen, "stc")
    arguments: dict[str, Any] = {"subject": citizen, "code_id": issued.code_id}
    arguments[argument] = junk
    refusal, code = EXPECTED_FOR_JUNK[argument]
    before = dump(storage)
    with pytest.raises(refusal) as caught:
        getattr(issuer, operation)(**arguments)
    assert code == caught.value.code
    assert before == dump(storage)


@pytest.mark.parametrize("operation", ["status", "revoke"])
def test_ineligible_kind_cannot_look_up(
    issuer: CodeIssuer, storage: MemoryStorage, company: Subject, operation: str
) -> None:
    """Once a policy drops a kind, its subjects can neither see nor cancel their codes."""
    issued = issuer.issue(company, "stc")
    stricter = make_issuer(
        storage, issuer.keyring, issuer.clock, eligible_kinds={SubjectKind.CITIZEN}
    )
    with pytest.raises(NotEligible) as caught:
        getattr(stricter, operation)(company, issued.code_id)
    assert "not_eligible" == caught.value.code
