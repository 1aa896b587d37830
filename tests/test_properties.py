"""Properties of issue and redeem over generated subjects, providers, services, times and input.

Each example builds its own issuer over fresh memory storage and a manual clock (function-scoped
fixtures would be shared between examples).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.helpers import (
    FOUR_HOURS,
    K1_SECRET,
    ONE_MICROSECOND,
    PSEUDONYM_SECRET,
    START,
    dump,
    other_code,
)
from tests.strategies import eligible_subjects, human_renderings

from telecard_auth import (
    DEFAULT_SERVICES,
    SAUDI_PROVIDERS,
    CodeAlreadyUsed,
    CodeExpired,
    CodeIssuer,
    CodeLocked,
    CodeState,
    FailureBudgetExhausted,
    HmacKey,
    InvalidInput,
    Keyring,
    ManualClock,
    MemoryStorage,
    NotPermitted,
    Policy,
    Provider,
    Service,
    Subject,
    SubjectKind,
    TelecardAuthError,
    WrongCode,
)

OWNER = Subject.citizen("1000000008")
KEYRING = Keyring(
    keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
    pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
)

# --- strategies --------------------------------------------------------------------------------

subjects = eligible_subjects()
providers: st.SearchStrategy[Provider] = st.sampled_from(SAUDI_PROVIDERS)
services: st.SearchStrategy[Service] = st.sampled_from(DEFAULT_SERVICES)
provider_pairs = st.permutations(SAUDI_PROVIDERS).map(lambda order: (order[0], order[1]))

anything: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=20),
    st.text(max_size=80),
    st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩ -+", max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.sampled_from(["stc", "mobily", "new_line", "number_transfer", "0551234567", "1000000008"]),
    st.sampled_from(SAUDI_PROVIDERS),
    st.sampled_from(DEFAULT_SERVICES),
)


def recipient_for(subject: Subject, service: Service) -> Subject | None:
    """The recipient a code for ``service`` must name: one for a number transfer, else none."""
    if service.id not in Policy().transfer_services:
        return None
    return Subject.resident("2129040479") if subject.kind is not SubjectKind.RESIDENT else OWNER


def fresh(policy: Policy | None = None) -> tuple[CodeIssuer, MemoryStorage, ManualClock]:
    """A new issuer over new storage and a new manual clock at START."""
    storage = MemoryStorage()
    clock = ManualClock(START)
    return CodeIssuer(storage, keyring=KEYRING, policy=policy, clock=clock), storage, clock


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=60)
@given(
    subject=subjects,
    provider=providers,
    service=services,
    bound=st.booleans(),
    by_object=st.booleans(),
    data=st.data(),
)
def test_issue_then_redeem_succeeds_exactly_once(
    *,
    subject: Subject,
    provider: Provider,
    service: Service,
    bound: bool,
    by_object: bool,
    data: st.DataObject,
) -> None:
    """Any eligible subject redeems a fresh code once, however typed; the second time is refused."""
    # A code for a number transfer is bound to that service and names its recipient, as it must.
    issuer, _storage, clock = fresh()
    recipient = recipient_for(subject, service)
    issued = issuer.issue(
        subject,
        provider if by_object else provider.id,
        service=service if bound or recipient else None,
        recipient=recipient,
    )
    # As many separators as the code has gaps (ends included): one may stand in every gap.
    typed = data.draw(
        human_renderings(issued.code, max_separators=len(issued.code) + 1), label="typed"
    )
    elapsed = data.draw(
        st.timedeltas(min_value=timedelta(0), max_value=FOUR_HOURS - ONE_MICROSECOND)
    )
    clock.advance(elapsed)
    redemption = issuer.redeem(subject, provider.id, typed, service.id, recipient=recipient)
    assert (issued.code_id, provider, service) == (
        redemption.code_id,
        redemption.provider,
        redemption.service,
    )
    with pytest.raises(CodeAlreadyUsed):
        issuer.redeem(subject, provider.id, issued.code, service.id, recipient=recipient)
    assert CodeState.REDEEMED == issuer.status(subject, issued.code_id).state


@settings(max_examples=60)
@given(
    subject=subjects,
    provider=providers,
    service=services,
    late=st.timedeltas(min_value=FOUR_HOURS, max_value=timedelta(days=400)),
)
def test_code_never_redeems_after_its_ttl(
    subject: Subject, provider: Provider, service: Service, late: timedelta
) -> None:
    """Any advance of at least the TTL makes the right code CodeExpired."""
    issuer, _storage, clock = fresh()
    issued = issuer.issue(subject, provider)
    clock.advance(late)
    with pytest.raises(CodeExpired):
        issuer.redeem(subject, provider, issued.code, service)
    assert CodeState.EXPIRED == issuer.status(subject, issued.code_id).state


@settings(max_examples=60)
@given(subject=subjects, pair=provider_pairs, service=services)
def test_code_never_redeems_at_another_provider(
    subject: Subject, pair: tuple[Provider, Provider], service: Service
) -> None:
    """A code for one provider is a wrong code at every other provider, and stores nothing there."""
    # No live code of the subject at that provider was compared: nothing is charged (finding 2).
    issued_for, presented_at = pair
    issuer, storage, _clock = fresh()
    recipient = recipient_for(subject, service)
    bound = service if recipient else None
    issued = issuer.issue(subject, issued_for, service=bound, recipient=recipient)
    before = dump(storage)
    with pytest.raises(WrongCode):
        issuer.redeem(subject, presented_at, issued.code, service, recipient=recipient)
    assert before == dump(storage)
    redemption = issuer.redeem(subject, issued_for, issued.code, service, recipient=recipient)
    assert issued.code_id == redemption.code_id


@settings(max_examples=60)
@given(
    subject=subjects,
    provider=providers,
    guess=st.text(alphabet="0123456789", min_size=8, max_size=8),
)
def test_random_wrong_code_never_redeems(subject: Subject, provider: Provider, guess: str) -> None:
    """Any 8-digit guess other than the code is WrongCode and counted once."""
    issuer, _storage, _clock = fresh()
    issued = issuer.issue(subject, provider)
    assume(guess != issued.code)
    with pytest.raises(WrongCode):
        issuer.redeem(subject, provider, guess, "new_line")
    assert 1 == issuer.status(subject, issued.code_id).failed_attempts


@settings(max_examples=80)
@given(
    max_failed=st.integers(min_value=1, max_value=6),
    budget=st.integers(min_value=1, max_value=8),
    wrong=st.integers(min_value=0, max_value=10),
    subject=subjects,
)
def test_wrong_guesses_follow_the_attempt_and_budget_model(
    max_failed: int, budget: int, wrong: int, subject: Subject
) -> None:
    """After k wrong guesses the right code is refused by budget, lock, or else accepted."""
    # Only a guess compared with a live code is charged, to the code and to the budget: once the
    # code is locked, further guesses are wrong codes that cost nothing (finding 2), so the
    # budget is spent only if it is no larger than the code's attempts.
    # No recovery code is issued here; its attempts only have to fit within max_failed.
    policy = Policy(max_failed_attempts=max_failed, failure_budget=budget, recovery_attempts=1)
    issuer, storage, _clock = fresh(policy)
    issued = issuer.issue(subject, "stc")
    guess = other_code(issued.code)
    outcomes = []
    for _ in range(wrong):
        with pytest.raises((WrongCode, FailureBudgetExhausted)) as caught:
            issuer.redeem(subject, "stc", guess, "new_line")
        outcomes.append(type(caught.value))
    counted = min(wrong, max_failed, budget)
    spent = budget <= max_failed and wrong >= budget
    refused_by_budget = wrong - budget if spent else 0
    assert [WrongCode] * (wrong - refused_by_budget) + [
        FailureBudgetExhausted
    ] * refused_by_budget == outcomes
    status = issuer.status(subject, issued.code_id)
    assert counted == status.failed_attempts
    assert max_failed - counted == status.attempts_left
    (snapshot,) = dump(storage)
    assert counted == sum(len(log.failures) for log in snapshot.failure_logs)
    if spent:
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, "stc", issued.code, "new_line")
    elif wrong >= max_failed:
        assert CodeState.LOCKED == status.state
        with pytest.raises(CodeLocked):
            issuer.redeem(subject, "stc", issued.code, "new_line")
    else:
        assert issued.code_id == issuer.redeem(subject, "stc", issued.code, "new_line").code_id


@settings(max_examples=150)
@given(
    subject=st.one_of(subjects, anything),
    provider=st.one_of(providers, anything),
    service=st.one_of(st.none(), services, anything),
    msisdn=st.one_of(st.none(), anything),
    recipient=st.one_of(st.none(), subjects, anything),
)
def test_issue_with_anything_raises_only_library_errors(
    subject: Any, provider: Any, service: Any, msisdn: Any, recipient: Any
) -> None:
    """Whatever is passed, issue succeeds or raises a TelecardAuthError that stored nothing."""
    issuer, storage, _clock = fresh()
    refusal: TelecardAuthError | None = None
    try:
        issuer.issue(subject, provider, service=service, msisdn=msisdn, recipient=recipient)
    except TelecardAuthError as error:
        refusal = error
    if refusal is None:
        assert 1 == len(dump(storage))
    else:
        assert isinstance(refusal, InvalidInput | NotPermitted)
        assert () == dump(storage)


@settings(max_examples=150)
@given(
    subject=st.one_of(st.just(OWNER), subjects, anything),
    provider=st.one_of(providers, anything),
    code=st.one_of(st.just("the code"), anything),
    service=st.one_of(services, anything),
    msisdn=st.one_of(st.none(), anything),
    recipient=st.one_of(st.none(), subjects, anything),
)
def test_redeem_with_anything_raises_only_library_errors(
    *, subject: Any, provider: Any, code: Any, service: Any, msisdn: Any, recipient: Any
) -> None:
    """Whatever is passed, redeem succeeds or raises a TelecardAuthError; bad input stores none."""
    issuer, storage, _clock = fresh()
    issued = issuer.issue(OWNER, "stc")
    if code == "the code":
        code = issued.code
    before = dump(storage)
    refusal: TelecardAuthError | None = None
    try:
        issuer.redeem(subject, provider, code, service, msisdn=msisdn, recipient=recipient)
    except TelecardAuthError as error:
        refusal = error
    if refusal is None:
        assert CodeState.REDEEMED == issuer.status(OWNER, issued.code_id).state
    elif isinstance(refusal, InvalidInput | NotPermitted):
        assert before == dump(storage)


@settings(max_examples=100)
@given(subject=st.one_of(subjects, anything), code_id=anything)
def test_lookups_with_anything_raise_only_library_errors(subject: Any, code_id: Any) -> None:
    """status and revoke of anything raise a TelecardAuthError and store nothing."""
    issuer, storage, _clock = fresh()
    issuer.issue(Subject.citizen("1000000008"), "stc")
    before = dump(storage)
    for operation in (issuer.status, issuer.revoke):
        with pytest.raises(TelecardAuthError):
            operation(subject, code_id)
    assert before == dump(storage)
