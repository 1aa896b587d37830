"""The rules as pure functions: ``telecard_auth._core.rules`` decides on snapshots built by hand.

Each case builds one subject's snapshot with chosen code states, failure logs and times, asks a
``decide_*`` function for its decision and checks all of it: the commit (or none), the error and
the audit events. No storage, no clock and no issuer are involved; the issuer's own tests check
the same rules end to end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from tests.helpers import FOUR_HOURS, K1_SECRET, ONE_MICROSECOND, PSEUDONYM_SECRET, START

from telecard_auth import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRecord,
    CodeRevoked,
    CodeState,
    CodeSuperseded,
    FailureBudgetExhausted,
    FailureLog,
    HmacKey,
    IssuedCode,
    Keyring,
    LiveCodeLimitReached,
    Policy,
    Redemption,
    RequestConflict,
    ServiceMismatch,
    Subject,
    SubjectSnapshot,
    TelecardAuthError,
    TransferNotBound,
    UnknownCode,
    WrongCode,
    events,
    normalize_msisdn,
)
from telecard_auth._core.requests import (
    identity_of,
    prepare_issue,
    prepare_lookup,
    prepare_redeem,
)
from telecard_auth._core.rules import (
    Decision,
    decide_issue,
    decide_redeem,
    decide_revoke,
    decide_status,
)

POLICY = Policy()
KEYRING = Keyring(
    keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
    pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
)
CITIZEN = Subject.citizen("1000000008")
RESIDENT = Subject.resident("2129040479")
COMPANY = Subject.company("7000000001")
IDENTITY = identity_of(CITIZEN)
AUDIT_REF = KEYRING.audit_ref(IDENTITY)
SUBJECT_REF = KEYRING.subject_ref(IDENTITY)

#: The code of every record unless a case says otherwise, another code, and one that is no one's.
RIGHT, OTHER, WRONG = "12345678", "23456789", "99999999"
MSISDN = "0551234567"
#: When a decision is made unless a case says otherwise: an hour into the life of a code of START.
NOW = START + timedelta(hours=1)
WINDOW = POLICY.failure_window
#: The default budget of 10 wrong attempts, spent in the first ten minutes (within the window).
SPENT = tuple(START + timedelta(minutes=minute) for minute in range(10))
ACTIVE, REDEEMED, REVOKED = CodeState.ACTIVE, CodeState.REDEEMED, CodeState.REVOKED
LOCKED, SUPERSEDED, EXPIRED = CodeState.LOCKED, CodeState.SUPERSEDED, CodeState.EXPIRED
#: A policy whose lost-SIM replacement allows one hour, so that unbound codes have two deadlines.
SHORT = Policy(ttl_by_service={"lost_sim_replacement": timedelta(hours=1)})


def record(
    code_id: str = "a",
    *,
    code: str = RIGHT,
    provider: str = "stc",
    issued: datetime = START,
    state: CodeState = ACTIVE,
    attempts: int = 0,
    recovery: bool = False,
    service: str | None = None,
    msisdn: str | None = None,
    recipient: Subject | None = None,
) -> CodeRecord:
    """A stored code of the citizen valid four hours, its digests made as the issuer makes them."""

    def bound(domain: str, value: str | None) -> str | None:
        """The digest of a binding, as stored on the record."""
        if value is None:
            return None
        return KEYRING.record_digest("k1", domain, IDENTITY, provider, value)

    digest = KEYRING.code_digest("k1", IDENTITY, provider, code)
    assert digest is not None
    return CodeRecord(
        code_id=code_id,
        provider_id=provider,
        key_id="k1",
        digest=digest,
        issued_at=issued,
        expires_at=issued + FOUR_HOURS,
        service_id=service,
        msisdn_ref=bound("msisdn", None if msisdn is None else normalize_msisdn(msisdn)),
        recipient_ref=bound("recipient", None if recipient is None else identity_of(recipient)),
        state=state,
        failed_attempts=attempts,
        finished_at=None if state is ACTIVE else issued,
        recovery=recovery,
    )


def snapshot(
    *codes: CodeRecord,
    failures: tuple[datetime, ...] = (),
    recoveries: tuple[datetime, ...] = (),
) -> SubjectSnapshot:
    """The citizen at version 7 of the life "life-1", with a failure log at stc if one is given."""
    logs: tuple[FailureLog, ...] = ()
    if failures or recoveries:
        logs = (FailureLog(provider_id="stc", failures=failures, recoveries=recoveries),)
    return SubjectSnapshot(
        subject_ref=SUBJECT_REF, version=7, incarnation="life-1", codes=codes, failure_logs=logs
    )


#: The citizen with nothing stored.
NOTHING = SubjectSnapshot(subject_ref=SUBJECT_REF)
#: A live ordinary code, and a live recovery code issued once the budget was spent.
ORDINARY = record("a")
RESCUE = record("r", code=OTHER, recovery=True, issued=START + timedelta(minutes=10))
#: A live code digested with an HMAC key since retired ("k0" is not in ``KEYRING``): void.
VOID = attrs.evolve(record("v"), key_id="k0")


def redeem(
    state: SubjectSnapshot,
    *,
    code: str = RIGHT,
    now: datetime = NOW,
    provider: str = "stc",
    service: str = "new_line",
    msisdn: str | None = None,
    recipient: Subject | None = None,
    request_id: str | None = None,
    reference: str | None = None,
    policy: Policy = POLICY,
) -> Decision[Redemption]:
    """The decision on the citizen's redemption request against ``state``."""
    request = prepare_redeem(
        policy,
        KEYRING,
        subject=CITIZEN,
        provider=provider,
        code=code,
        service=service,
        msisdn=msisdn,
        recipient=recipient,
        request_id=request_id,
        reference=reference,
    )
    return decide_redeem(policy, KEYRING, request, state, now)


def issue(
    state: SubjectSnapshot, *, now: datetime = NOW, policy: Policy = POLICY
) -> Decision[IssuedCode]:
    """The decision on issuing the citizen the code ``RIGHT`` (id "new") at stc."""
    request = prepare_issue(
        policy, KEYRING, subject=CITIZEN, provider="stc", service=None, msisdn=None, recipient=None
    )
    return decide_issue(policy, KEYRING, request, state, now, code=RIGHT, code_id="new")


#: What a decision does: its error's type (or None), whether it commits, and its events.
Summary = tuple[type[TelecardAuthError] | None, bool, tuple[Any, ...]]


def summary(decision: Decision[Any]) -> Summary:
    """What a decision does: its error's type (or None), whether it commits, and its events."""
    error = None if decision.error is None else type(decision.error)
    return error, decision.commit is not None, decision.events


def after(decision: Decision[Any], state: SubjectSnapshot) -> dict[str, tuple[CodeState, int]]:
    """Each code's state and failed attempts once the decision's commit, if any, has landed."""
    codes = state.codes if decision.commit is None else decision.commit.codes
    return {stored.code_id: (stored.state, stored.failed_attempts) for stored in codes}


def failures_after(decision: Decision[Any], state: SubjectSnapshot) -> tuple[datetime, ...]:
    """The failures logged at stc once the decision's commit, if any, has landed."""
    logs = state.failure_logs if decision.commit is None else decision.commit.failure_logs
    return next((log.failures for log in logs if log.provider_id == "stc"), ())


def refused(
    reason: str,
    code_id: str | None = None,
    *,
    now: datetime = NOW,
    service: str = "new_line",
    reference: str | None = None,
) -> events.RedemptionRefusal:
    """The refusal event at stc for ``reason``."""
    return events.RedemptionRefusal(
        at=now,
        audit_ref=AUDIT_REF,
        code_id=code_id,
        provider_id="stc",
        reason=reason,
        service_id=service,
        reference=reference,
    )


def redeemed(
    code_id: str,
    *,
    now: datetime = NOW,
    provider: str = "stc",
    service: str = "new_line",
    request_id: str | None = None,
) -> events.CodeRedemption:
    """The event of ``code_id`` redeemed, without a receipt."""
    return events.CodeRedemption(
        at=now,
        audit_ref=AUDIT_REF,
        code_id=code_id,
        provider_id=provider,
        service_id=service,
        request_id=request_id,
    )


def locked(code_id: str, attempts: int) -> events.CodeLockout:
    """The event of ``code_id`` locked at stc after ``attempts`` wrong attempts."""
    return events.CodeLockout(
        at=NOW, audit_ref=AUDIT_REF, code_id=code_id, provider_id="stc", failed_attempts=attempts
    )


# --- wrong codes: charged only when compared with a live code ------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(NOTHING, id="nothing-stored"),
        pytest.param(snapshot(record(provider="mobily")), id="live-code-at-another-provider"),
        pytest.param(snapshot(record(state=LOCKED, attempts=5)), id="locked"),
        pytest.param(snapshot(record(state=REDEEMED)), id="redeemed"),
        pytest.param(snapshot(record(state=REVOKED)), id="revoked"),
        pytest.param(snapshot(record(state=SUPERSEDED)), id="superseded"),
        pytest.param(snapshot(record(issued=NOW - FOUR_HOURS)), id="expired-this-instant"),
        pytest.param(snapshot(record(state=LOCKED), failures=SPENT[:9]), id="budget-one-short"),
        pytest.param(snapshot(VOID), id="live-code-of-a-retired-key"),
        pytest.param(snapshot(VOID, failures=SPENT[:9]), id="retired-key-budget-one-short"),
    ],
)
def test_wrong_code_compared_with_no_live_code_changes_nothing(state: SubjectSnapshot) -> None:
    """A wrong code that meets no live code at the provider: no commit, WrongCode, one refusal."""
    assert (WrongCode, False, (refused("wrong_code"),)) == summary(redeem(state, code=WRONG))


def test_a_code_of_a_retired_key_never_matches_and_is_never_charged() -> None:
    """Its own code typed is WrongCode, uncounted; beside a live code of a held key, a guess
    charges that code and the budget, never the void one."""
    assert (WrongCode, False, (refused("wrong_code"),)) == summary(redeem(snapshot(VOID)))
    state = snapshot(VOID, record("b", code=OTHER))
    decision = redeem(state, code=RIGHT)
    assert (WrongCode, True, (refused("wrong_code"),)) == summary(decision)
    assert {"v": (ACTIVE, 0), "b": (ACTIVE, 1)} == after(decision, state)
    assert (NOW,) == failures_after(decision, state)


def test_wrong_code_charges_every_live_code_at_the_provider_and_the_budget() -> None:
    """A wrong code charges each live stc code and stc's budget once, on the snapshot's token."""
    state = snapshot(
        record("a"),
        record("b", code=OTHER, attempts=2),
        record("m", provider="mobily"),
        record("u", state=REDEEMED),
        record("x", issued=NOW - FOUR_HOURS),
        failures=(START,),
    )
    decision = redeem(state, code=WRONG)
    assert (WrongCode, True, (refused("wrong_code"),)) == summary(decision)
    assert decision.commit is not None
    token = (decision.commit.subject_ref, decision.commit.expected_version)
    assert (SUBJECT_REF, 7, "life-1") == (*token, decision.commit.incarnation)
    expected = {
        "a": (ACTIVE, 1),
        "b": (ACTIVE, 3),
        "m": (ACTIVE, 0),
        "u": (REDEEMED, 0),
        "x": (ACTIVE, 0),
    }
    assert expected == after(decision, state)
    assert (START, NOW) == failures_after(decision, state)


@pytest.mark.parametrize(
    ("recovery", "failures", "before", "state", "extra"),
    [
        pytest.param(False, (), 3, ACTIVE, (), id="ordinary-below-the-limit"),
        pytest.param(False, (), 4, LOCKED, (locked("a", 5),), id="ordinary-at-the-limit"),
        pytest.param(True, SPENT, 0, ACTIVE, (), id="recovery-below-the-limit"),
        pytest.param(True, SPENT, 1, LOCKED, (locked("a", 2),), id="recovery-at-the-limit"),
        pytest.param(True, (), 1, LOCKED, (locked("a", 2),), id="recovery-once-budget-freed"),
    ],
)
def test_charged_code_locks_at_its_attempt_limit(
    recovery: bool,
    failures: tuple[datetime, ...],
    before: int,
    state: CodeState,
    extra: tuple[events.CodeLockout, ...],
) -> None:
    """A code locks at max_failed_attempts (5), a recovery code at recovery_attempts (2)."""
    decision = redeem(
        snapshot(record(attempts=before, recovery=recovery), failures=failures), code=WRONG
    )
    assert (WrongCode, True, (refused("wrong_code"), *extra)) == summary(decision)
    assert decision.commit is not None
    (charged,) = decision.commit.codes
    finished = NOW if state is LOCKED else None
    assert (state, before + 1, finished) == (
        charged.state,
        charged.failed_attempts,
        charged.finished_at,
    )


# --- recovery: the budget spent, only recovery codes are compared ------------------------------


@pytest.mark.parametrize(
    ("codes", "typed", "error", "expected"),
    [
        pytest.param(
            (ORDINARY, RESCUE), OTHER, None, {"a": (ACTIVE, 0), "r": (REDEEMED, 0)}, id="redeems"
        ),
        pytest.param(
            (ORDINARY, RESCUE),
            RIGHT,
            WrongCode,
            {"a": (ACTIVE, 0), "r": (ACTIVE, 1)},
            id="right-ordinary-code-is-wrong",
        ),
        pytest.param(
            (ORDINARY, RESCUE),
            WRONG,
            WrongCode,
            {"a": (ACTIVE, 0), "r": (ACTIVE, 1)},
            id="wrong-code",
        ),
        pytest.param(
            (ORDINARY, attrs.evolve(RESCUE, failed_attempts=1)),
            WRONG,
            WrongCode,
            {"a": (ACTIVE, 0), "r": (LOCKED, 2)},
            id="locks-at-recovery-attempts",
        ),
    ],
)
def test_in_recovery_only_live_recovery_codes_are_compared_and_charged(
    codes: tuple[CodeRecord, ...],
    typed: str,
    error: type[TelecardAuthError] | None,
    expected: dict[str, tuple[CodeState, int]],
) -> None:
    """Budget spent: a right recovery code redeems; others charge recovery codes, not the budget."""
    state = snapshot(*codes, failures=SPENT)
    decision = redeem(state, code=typed)
    assert (error, True) == summary(decision)[:2]
    assert expected == after(decision, state)
    assert SPENT == failures_after(decision, state)


@pytest.mark.parametrize(
    ("codes", "typed", "failures", "policy", "retry_after"),
    [
        pytest.param((ORDINARY,), RIGHT, SPENT, POLICY, START + WINDOW, id="right-ordinary-code"),
        pytest.param((ORDINARY,), WRONG, SPENT, POLICY, START + WINDOW, id="wrong-code"),
        pytest.param(
            (ORDINARY, attrs.evolve(RESCUE, state=LOCKED, failed_attempts=2)),
            OTHER,
            SPENT,
            POLICY,
            START + WINDOW,
            id="recovery-code-locked",
        ),
        pytest.param(
            (attrs.evolve(RESCUE, issued_at=NOW - FOUR_HOURS, expires_at=NOW),),
            OTHER,
            SPENT,
            POLICY,
            START + WINDOW,
            id="recovery-code-expired-this-instant",
        ),
        pytest.param(
            (attrs.evolve(RESCUE, state=REDEEMED),),
            OTHER,
            SPENT,
            POLICY,
            START + WINDOW,
            id="recovery-code-used",
        ),
        pytest.param(
            (attrs.evolve(RESCUE, key_id="k0"),),
            OTHER,
            SPENT,
            POLICY,
            START + WINDOW,
            id="recovery-code-of-a-retired-key",
        ),
        pytest.param(
            (),
            WRONG,
            (NOW - WINDOW, *SPENT),
            POLICY,
            START + WINDOW,
            id="older-failure-left-the-window",
        ),
        pytest.param(
            (),
            WRONG,
            SPENT[:5],
            Policy(failure_budget=3),
            SPENT[2] + WINDOW,
            id="budget-lowered-since",
        ),
    ],
)
def test_budget_spent_without_live_recovery_code_refuses_before_comparing(
    codes: tuple[CodeRecord, ...],
    typed: str,
    failures: tuple[datetime, ...],
    policy: Policy,
    retry_after: datetime,
) -> None:
    """Budget spent, no live recovery code: FailureBudgetExhausted, uncounted, with retry_after."""
    decision = redeem(snapshot(*codes, failures=failures), code=typed, policy=policy)
    expected = (FailureBudgetExhausted, False, (refused("failure_budget_exhausted"),))
    assert expected == summary(decision)
    assert isinstance(decision.error, FailureBudgetExhausted)
    assert retry_after == decision.error.retry_at


@pytest.mark.parametrize(
    ("now", "error"),
    [
        pytest.param(START + WINDOW - ONE_MICROSECOND, FailureBudgetExhausted, id="just-before"),
        pytest.param(START + WINDOW, None, id="at-retry-after"),
    ],
)
def test_budget_frees_exactly_when_its_oldest_failure_leaves_the_window(
    now: datetime, error: type[TelecardAuthError] | None
) -> None:
    """An ordinary code is refused until retry_after and redeems from that very instant."""
    state = snapshot(record(issued=now - timedelta(hours=1)), failures=SPENT)
    assert (error, error is None) == summary(redeem(state, now=now))[:2]


# --- issuing while the budget is spent: recovery codes -----------------------------------------

#: Two recovery codes issued earlier, within the window.
RECOVERED = (START + timedelta(minutes=10), START + timedelta(minutes=20))


@pytest.mark.parametrize(
    ("failures", "recoveries", "policy", "recovery", "logged"),
    [
        pytest.param(SPENT[:9], (), POLICY, False, (), id="budget-not-spent"),
        pytest.param(SPENT, (), POLICY, True, (NOW,), id="first-recovery-code"),
        pytest.param(SPENT, RECOVERED[:1], POLICY, True, (*RECOVERED[:1], NOW), id="second"),
        pytest.param(SPENT, RECOVERED, POLICY, False, RECOVERED, id="allowance-used"),
        pytest.param(
            SPENT,
            (NOW - WINDOW, RECOVERED[1]),
            POLICY,
            True,
            (RECOVERED[1], NOW),
            id="one-left-the-window-this-instant",
        ),
        pytest.param(SPENT, (), Policy(recovery_codes=0), False, (), id="recovery-off"),
    ],
)
def test_issue_while_budget_spent_makes_recovery_codes_while_the_allowance_lasts(
    failures: tuple[datetime, ...],
    recoveries: tuple[datetime, ...],
    policy: Policy,
    recovery: bool,
    logged: tuple[datetime, ...],
) -> None:
    """Issued with the budget spent, a code is a recovery code while the allowance lasts."""
    decision = issue(snapshot(failures=failures, recoveries=recoveries), policy=policy)
    assert decision.commit is not None
    (new,) = decision.commit.codes
    (log,) = decision.commit.failure_logs
    assert (recovery, logged, failures) == (new.recovery, log.recoveries, log.failures)
    event = events.CodeIssuance(
        at=NOW,
        audit_ref=AUDIT_REF,
        code_id="new",
        provider_id="stc",
        service_id=None,
        expires_at=NOW + FOUR_HOURS,
        key_id="k1",
        recovery=recovery,
    )
    assert (None, True, (event,)) == summary(decision)


@pytest.mark.parametrize(
    ("now", "error"),
    [
        pytest.param(START + FOUR_HOURS - ONE_MICROSECOND, LiveCodeLimitReached, id="just-before"),
        pytest.param(START + FOUR_HOURS, None, id="first-expiry"),
    ],
)
def test_live_code_limit_frees_exactly_at_the_first_expiry(
    now: datetime, error: type[TelecardAuthError] | None
) -> None:
    """At 3 live codes issuing is refused, uncommitted, until the first expiry, then allowed."""
    minute = timedelta(minutes=1)
    codes = [record(code_id, issued=START + n * minute) for n, code_id in enumerate("abc")]
    decision = issue(snapshot(*codes), now=now)
    assert (error, error is None) == summary(decision)[:2]
    if isinstance(decision.error, LiveCodeLimitReached):
        assert (3, START + FOUR_HOURS) == (
            decision.error.details["limit"],
            decision.error.details["next_free"],
        )
        assert () == decision.events


def test_supersede_at_the_limit_replaces_the_oldest_live_code() -> None:
    """Under "supersede", the oldest live code is committed SUPERSEDED, with its event first."""
    policy = Policy(on_live_code_limit="supersede")
    state = snapshot(*(record(code_id, issued=START) for code_id in "abc"))
    decision = issue(state, policy=policy)
    superseded = events.CodeSupersession(
        at=NOW, audit_ref=AUDIT_REF, code_id="a", provider_id="stc", superseded_by="new"
    )
    assert (None, True, superseded) == (*summary(decision)[:2], decision.events[0])
    assert decision.commit is not None
    states = {stored.code_id: stored.state for stored in decision.commit.codes}
    assert {"a": SUPERSEDED, "b": ACTIVE, "c": ACTIVE, "new": ACTIVE} == states


# --- right codes that cannot serve, transfers and bindings ---------------------------------------


@pytest.mark.parametrize(
    ("stored", "service", "error"),
    [
        pytest.param(record(state=REDEEMED), "new_line", CodeAlreadyUsed, id="redeemed"),
        pytest.param(record(state=REVOKED), "new_line", CodeRevoked, id="revoked"),
        pytest.param(record(state=LOCKED, attempts=5), "new_line", CodeLocked, id="locked"),
        pytest.param(record(state=SUPERSEDED), "new_line", CodeSuperseded, id="superseded"),
        pytest.param(record(service="new_line"), "lost_sim_replacement", ServiceMismatch, id="svc"),
        pytest.param(record(), "number_transfer", TransferNotBound, id="unbound-for-a-transfer"),
        pytest.param(
            record(service="number_transfer"),
            "number_transfer",
            TransferNotBound,
            id="transfer-code-without-recipient",
        ),
    ],
)
def test_right_code_that_cannot_serve_is_refused_uncounted(
    stored: CodeRecord, service: str, error: type[TelecardAuthError]
) -> None:
    """A right code that cannot serve the request: no commit, its error, one refusal naming it."""
    decision = redeem(snapshot(stored), service=service)
    assert (error, False, (refused(error.code, "a", service=service),)) == summary(decision)


#: A bystander: a live code at stc that a binding mismatch of another code must not charge.
BYSTANDER = record("b", code=OTHER)
#: A code bound to a mobile number, one bound to a transfer's recipient, and another number.
TO_NUMBER = record(msisdn=MSISDN)
TO_RESIDENT = record(service="number_transfer", recipient=RESIDENT)
ELSEWHERE = "0557654321"


@pytest.mark.parametrize(
    ("stored", "failures", "given", "error", "attempts", "logged"),
    [
        pytest.param(TO_NUMBER, (), {}, BindingRequired, 0, (), id="number-missing"),
        pytest.param(TO_NUMBER, (), {"msisdn": ELSEWHERE}, BindingMismatch, 1, (NOW,), id="other"),
        pytest.param(TO_NUMBER, (), {"msisdn": "+966551234567"}, None, 0, (), id="number"),
        pytest.param(TO_RESIDENT, (), {}, BindingRequired, 0, (), id="recipient-missing"),
        pytest.param(TO_RESIDENT, (), {"recipient": COMPANY}, BindingMismatch, 1, (NOW,), id="to"),
        pytest.param(TO_RESIDENT, (), {"recipient": RESIDENT}, None, 0, (), id="recipient"),
        pytest.param(
            attrs.evolve(TO_NUMBER, recovery=True),
            SPENT,
            {"msisdn": ELSEWHERE},
            BindingMismatch,
            1,
            SPENT,
            id="other-number-in-recovery",
        ),
    ],
)
def test_bindings_missing_are_uncounted_and_mismatched_are_charged_to_the_code(
    *,
    stored: CodeRecord,
    failures: tuple[datetime, ...],
    given: dict[str, Any],
    error: type[TelecardAuthError] | None,
    attempts: int,
    logged: tuple[datetime, ...],
) -> None:
    """Missing binding: uncounted; wrong one: charged to its code (and budget unless recovering)."""
    service = stored.service_id or "new_line"
    state = snapshot(stored, BYSTANDER, failures=failures)
    decision = redeem(state, service=service, **given)
    event = (
        redeemed("a", service=service)
        if error is None
        else refused(error.code, "a", service=service)
    )
    assert (error, error is not BindingRequired, (event,)) == summary(decision)
    assert (attempts, 0) == tuple(count for _, count in after(decision, state).values())
    assert logged == failures_after(decision, state)


def test_binding_mismatch_at_the_limit_locks_the_code() -> None:
    """A fifth wrong mobile number locks the bound code, with its event."""
    state = snapshot(record(msisdn=MSISDN, attempts=4))
    decision = redeem(state, msisdn=ELSEWHERE)
    expected = (BindingMismatch, True, (refused("binding_mismatch", "a"), locked("a", 5)))
    assert expected == summary(decision)


# --- request ids: scoped to the subject and the provider ---------------------------------------

FIRST_STATE = snapshot(record("a"), record("b", code=OTHER), record("m", provider="mobily"))
FIRST = redeem(FIRST_STATE, request_id="req-1")


def _after_first() -> SubjectSnapshot:
    """The citizen once ``FIRST`` (a redeemed at stc under the id req-1) has landed."""
    commit = FIRST.commit
    assert commit is not None
    return attrs.evolve(
        FIRST_STATE,
        version=commit.expected_version + 1,
        codes=commit.codes,
        failure_logs=commit.failure_logs,
    )


AFTER_FIRST = _after_first()
#: The stc service other than the first redemption's.
LOST = "lost_sim_replacement"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            {"provider": "mobily", "request_id": "req-1"},
            (None, True, (redeemed("m", provider="mobily", request_id="req-1"),)),
            id="same-id-at-another-provider",
        ),
        pytest.param(
            {"service": LOST, "request_id": "req-1"},
            (RequestConflict, False, (refused("request_conflict", "a", service=LOST),)),
            id="other-service",
        ),
        pytest.param(
            {"msisdn": MSISDN, "request_id": "req-1"},
            (RequestConflict, False, (refused("request_conflict", "a"),)),
            id="other-binding",
        ),
        pytest.param(
            {"code": OTHER, "request_id": "req-1"},
            (RequestConflict, False, (refused("request_conflict", "b"),)),
            id="another-right-code",
        ),
        pytest.param(
            {"code": WRONG, "request_id": "req-1"},
            (WrongCode, True, (refused("wrong_code"),)),
            id="wrong-code",
        ),
        pytest.param(
            {"request_id": "req-2"},
            (CodeAlreadyUsed, False, (refused("code_already_used", "a"),)),
            id="another-id",
        ),
    ],
)
def test_request_id_belongs_to_one_redemption_at_one_provider(
    given: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    """After req-1 at stc, other inputs conflict; the same id at mobily is a request of its own."""
    assert expected == summary(redeem(AFTER_FIRST, **given))


def test_retry_with_the_same_request_id_gets_the_same_redemption() -> None:
    """The exact retry of req-1, later, gets the first Redemption back: no commit, no event."""
    retry = redeem(AFTER_FIRST, request_id="req-1", now=NOW + timedelta(minutes=5))
    assert (None, False, ()) == summary(retry)
    assert FIRST.result == retry.result
    assert FIRST.result is not None


# --- the caller's reference, copied into the events --------------------------------------------


@pytest.mark.parametrize(
    ("state", "code", "kinds"),
    [
        pytest.param(snapshot(ORDINARY), RIGHT, [events.CodeRedemption], id="redeemed"),
        pytest.param(snapshot(ORDINARY), WRONG, [events.RedemptionRefusal], id="charged"),
        pytest.param(NOTHING, WRONG, [events.RedemptionRefusal], id="uncounted"),
        pytest.param(
            snapshot(record(attempts=4)),
            WRONG,
            [events.RedemptionRefusal, events.CodeLockout],
            id="locked",
        ),
        pytest.param(
            snapshot(ORDINARY, failures=SPENT), RIGHT, [events.RedemptionRefusal], id="budget"
        ),
        pytest.param(
            snapshot(record(state=REDEEMED)), RIGHT, [events.RedemptionRefusal], id="used"
        ),
    ],
)
def test_reference_is_copied_into_every_redemption_event(
    state: SubjectSnapshot, code: str, kinds: list[type[events.AuditEvent]]
) -> None:
    """The caller's reference is in the event of every outcome: redeemed, refused or charged."""
    decision = redeem(state, code=code, reference="branch-7/agent-42")
    assert kinds == [type(event) for event in decision.events]
    told = [
        event.reference
        for event in decision.events
        if isinstance(event, events.CodeRedemption | events.RedemptionRefusal)
    ]
    assert ["branch-7/agent-42"] == told


# --- expiry at exact instants --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "service", "expired_at"),
    [
        pytest.param(START + FOUR_HOURS - ONE_MICROSECOND, "new_line", None, id="before-expiry"),
        pytest.param(START + FOUR_HOURS, "new_line", START + FOUR_HOURS, id="at-expiry"),
        pytest.param(
            START + timedelta(hours=1) - ONE_MICROSECOND,
            "lost_sim_replacement",
            None,
            id="before-service-ttl",
        ),
        pytest.param(
            START + timedelta(hours=1),
            "lost_sim_replacement",
            START + timedelta(hours=1),
            id="at-service-ttl",
        ),
        pytest.param(START + timedelta(hours=1), "new_line", None, id="other-service-at-1h"),
    ],
)
def test_right_code_expires_exactly_at_its_deadline(
    now: datetime, service: str, expired_at: datetime | None
) -> None:
    """A right code redeems until its deadline (expiry or service TTL), then is CodeExpired."""
    decision = redeem(snapshot(ORDINARY), now=now, service=service, policy=SHORT)
    if expired_at is None:
        assert (None, True, (redeemed("a", now=now, service=service),)) == summary(decision)
    else:
        refusal = refused("code_expired", "a", now=now, service=service)
        assert (CodeExpired, False, (refusal,)) == summary(decision)
        assert isinstance(decision.error, CodeExpired)
        assert expired_at == decision.error.expired_at


@pytest.mark.parametrize(
    ("now", "state", "left"),
    [
        pytest.param(START + FOUR_HOURS - ONE_MICROSECOND, ACTIVE, 5, id="before-expiry"),
        pytest.param(START + FOUR_HOURS, EXPIRED, 0, id="at-expiry"),
    ],
)
def test_status_derives_expiry_at_the_exact_instant(
    now: datetime, state: CodeState, left: int
) -> None:
    """status is ACTIVE until expires_at - 1µs and EXPIRED from expires_at; it never commits."""
    request = prepare_lookup(POLICY, KEYRING, CITIZEN, "a")
    decision = decide_status(POLICY, request, snapshot(ORDINARY), now)
    assert decision.result is not None
    assert (None, state, left) == (
        decision.commit,
        decision.result.state,
        decision.result.attempts_left,
    )


@pytest.mark.parametrize(
    ("now", "state", "commits"),
    [
        pytest.param(START + FOUR_HOURS - ONE_MICROSECOND, REVOKED, True, id="before-expiry"),
        pytest.param(START + FOUR_HOURS, EXPIRED, False, id="at-expiry"),
    ],
)
def test_revoke_takes_effect_until_the_exact_instant_of_expiry(
    now: datetime, state: CodeState, commits: bool
) -> None:
    """revoke cancels a code until expires_at - 1µs; from expires_at it is EXPIRED, unchanged."""
    request = prepare_lookup(POLICY, KEYRING, CITIZEN, "a")
    decision = decide_revoke(POLICY, request, snapshot(ORDINARY), now)
    assert decision.result is not None
    revoked = events.CodeRevocation(at=now, audit_ref=AUDIT_REF, code_id="a", provider_id="stc")
    expected_events = (revoked,) if commits else ()
    assert (None, commits, expected_events) == summary(decision)
    assert state == decision.result.state


@pytest.mark.parametrize(
    ("decide", "code_id", "stored", "error", "state", "left"),
    [
        pytest.param(decide_status, "zz", ORDINARY, UnknownCode, None, None, id="status-unknown"),
        pytest.param(decide_revoke, "zz", ORDINARY, UnknownCode, None, None, id="revoke-unknown"),
        pytest.param(
            decide_revoke, "a", record(state=REDEEMED), CodeAlreadyUsed, None, None, id="used"
        ),
        pytest.param(decide_revoke, "a", record(state=LOCKED), None, LOCKED, 0, id="locked"),
        pytest.param(decide_revoke, "a", record(state=REVOKED), None, REVOKED, 0, id="revoked"),
        pytest.param(
            decide_status, "a", record(recovery=True, attempts=1), None, ACTIVE, 1, id="recovery"
        ),
    ],
)
def test_lookups_that_change_nothing(
    *,
    decide: Any,
    code_id: str,
    stored: CodeRecord,
    error: type[TelecardAuthError] | None,
    state: CodeState | None,
    left: int | None,
) -> None:
    """Unknown ids, used codes and finished codes: no commit, no event, an error or a status."""
    request = prepare_lookup(POLICY, KEYRING, CITIZEN, code_id)
    decision: Decision[Any] = decide(POLICY, request, snapshot(stored), NOW)
    assert (error, False, ()) == summary(decision)
    status = decision.result
    shown = None if status is None else (status.state, status.attempts_left)
    assert (None if state is None else (state, left)) == shown
