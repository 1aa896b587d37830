"""Redeeming codes: provider (R2), validity (R3), one use for one service (R4, R5), typed input
(R6), attempt limits, the failure budget, mobile-number and recipient bindings, key rotation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from hashlib import sha256
from typing import Any

import pytest
from tests.helpers import (
    FOUR_HOURS,
    JUNK,
    K1_SECRET,
    K2_SECRET,
    ONE_MICROSECOND,
    PSEUDONYM_SECRET,
    dump,
    junk_cases,
    make_issuer,
    other_code,
    stored_record,
)

from telecard_auth import (
    ADDITIONAL_SIM,
    DEFAULT_SERVICES,
    NUMBER_PORTING,
    SAUDI_PROVIDERS,
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeFormat,
    CodeIssuer,
    CodeLocked,
    CodeState,
    Commit,
    FailureBudgetExhausted,
    HmacKey,
    InvalidMsisdn,
    InvalidTime,
    IssuedCode,
    Keyring,
    MalformedCode,
    ManualClock,
    MemoryStorage,
    NotEligible,
    Provider,
    RedemptionRefused,
    ServiceMismatch,
    ServiceNotAllowed,
    StorageContention,
    StorageError,
    Subject,
    SubjectKind,
    SubjectSnapshot,
    TelecardAuthError,
    TransferNotBound,
    UnknownProvider,
    UnknownService,
    WrongCode,
)
from telecard_auth._core.requests import identity_of


def snapshot_holding(storage: MemoryStorage, code_id: str) -> SubjectSnapshot:
    """The snapshot of the subject that holds ``code_id``."""
    for snapshot in storage.snapshots():
        if any(record.code_id == code_id for record in snapshot.codes):
            return snapshot
    raise AssertionError(f"no stored code {code_id}")


def failures(storage: MemoryStorage, issued: IssuedCode, provider_id: str) -> int:
    """How many failures are logged for the holder of ``issued`` at ``provider_id``."""
    return len(snapshot_holding(storage, issued.code_id).failure_log(provider_id).failures)


# --- the happy path ------------------------------------------------------------------------------


def test_redemption_describes_what_happened(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
) -> None:
    """A redemption names the code, the per-provider customer_ref, provider, service and times."""
    issued = issuer.issue(citizen, "stc")
    clock.advance(minutes=30)
    redemption = issuer.redeem(citizen, "stc", issued.code, "lost_sim_replacement")
    stored = stored_record(storage, issued.code_id)
    assert issued.code_id == redemption.code_id
    assert keyring.customer_ref(identity_of(citizen), "stc") == redemption.customer_ref
    assert snapshot_holding(storage, issued.code_id).subject_ref != redemption.customer_ref
    assert SAUDI_PROVIDERS[0] == redemption.provider
    assert "lost_sim_replacement" == redemption.service.id
    assert issued.issued_at == redemption.issued_at
    assert clock.now() == redemption.redeemed_at
    assert CodeState.REDEEMED == stored.state
    assert clock.now() == stored.finished_at
    assert "lost_sim_replacement" == stored.redeemed_service_id


@pytest.mark.parametrize(
    "service",
    [service for service in DEFAULT_SERVICES if service.id != "number_transfer"],
    ids=lambda service: service.id,
)
def test_unbound_code_redeems_for_any_allowed_service_but_a_transfer(
    issuer: CodeIssuer, any_subject: Subject, service: object
) -> None:
    """Without a service named at issue, the agent picks any allowed service but a transfer."""
    issued = issuer.issue(any_subject, "zain")
    assert service == issuer.redeem(any_subject, "zain", issued.code, service).service  # type: ignore[arg-type]


def test_unbound_code_is_no_transfer_code(
    issuer: CodeIssuer, storage: MemoryStorage, any_subject: Subject
) -> None:
    """An unbound code used for a number transfer is TransferNotBound, uncounted, still usable."""
    issued = issuer.issue(any_subject, "zain")
    before = dump(storage)
    with pytest.raises(TransferNotBound) as caught:
        issuer.redeem(any_subject, "zain", issued.code, "number_transfer")
    assert "transfer_not_bound" == caught.value.code
    assert before == dump(storage)
    assert "new_line" == issuer.redeem(any_subject, "zain", issued.code, "new_line").service.id


def test_provider_object_works_at_redemption(issuer: CodeIssuer, resident: Subject) -> None:
    """The provider may be passed as the registered Provider object."""
    mobily = SAUDI_PROVIDERS[1]
    issued = issuer.issue(resident, mobily)
    assert mobily == issuer.redeem(resident, mobily, issued.code, "new_line").provider


# --- R1 at redemption ----------------------------------------------------------------------------


def test_kind_made_ineligible_after_issue_is_refused_at_redeem(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    company: Subject,
) -> None:
    """A code issued under a policy that later drops the kind cannot be redeemed."""
    issued = issuer.issue(company, "stc")
    stricter = make_issuer(
        storage, keyring, clock, eligible_kinds={SubjectKind.CITIZEN, SubjectKind.RESIDENT}
    )
    before = dump(storage)
    with pytest.raises(NotEligible) as caught:
        stricter.redeem(company, "stc", issued.code, "new_line")
    assert "not_eligible" == caught.value.code
    assert before == dump(storage)


def test_kind_left_without_services_is_refused_at_redeem(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    company: Subject,
) -> None:
    """When a later policy gives the kind no service, every service is refused for it."""
    issued = issuer.issue(company, "stc")
    stricter = make_issuer(
        storage, keyring, clock, services_by_kind={SubjectKind.CITIZEN: {"new_line"}}
    )
    with pytest.raises(ServiceNotAllowed) as caught:
        stricter.redeem(company, "stc", issued.code, "new_line")
    assert "service_not_allowed" == caught.value.code


# --- R2: the provider --------------------------------------------------------------------------


def test_code_for_stc_is_wrong_at_mobily_and_uncounted_without_a_mobily_code(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """An stc code at mobily is WrongCode, silent about stc, uncounted with no live mobily code."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(WrongCode) as caught:
        issuer.redeem(citizen, "mobily", issued.code, "new_line")
    error = caught.value
    assert "wrong_code" == error.code
    for text in (str(error), repr(error), error.message("ar"), repr(dict(error.details))):
        assert issued.code not in text
        assert "stc" not in text.lower()
    assert before == dump(storage)
    assert 0 == failures(storage, issued, "mobily")
    assert 0 == failures(storage, issued, "stc")
    assert 0 == stored_record(storage, issued.code_id).failed_attempts
    assert 5 == issuer.status(citizen, issued.code_id).attempts_left
    assert "stc" == issuer.redeem(citizen, "stc", issued.code, "new_line").provider.id


def test_code_at_wrong_provider_charges_that_providers_live_codes(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """The stc code typed at mobily charges the live mobily code and mobily's budget, not stc's."""
    at_stc = issuer.issue(citizen, "stc")
    at_mobily = issuer.issue(citizen, "mobily")
    if at_stc.code == at_mobily.code:
        pytest.skip("the two random codes coincide (one chance in 10^8)")
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "mobily", at_stc.code, "new_line")
    assert 1 == stored_record(storage, at_mobily.code_id).failed_attempts
    assert 0 == stored_record(storage, at_stc.code_id).failed_attempts
    assert (1, 0) == (failures(storage, at_stc, "mobily"), failures(storage, at_stc, "stc"))


def test_code_of_another_subject_is_wrong(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, resident: Subject
) -> None:
    """A code is good only for the subject it was issued to; a subject without codes gets no row."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(WrongCode):
        issuer.redeem(resident, "stc", issued.code, "new_line")
    assert before == dump(storage)
    assert CodeState.ACTIVE == stored_record(storage, issued.code_id).state
    assert "new_line" == issuer.redeem(citizen, "stc", issued.code, "new_line").service.id


@pytest.mark.parametrize("provider", ["acme", "Mobily", ""])
def test_unknown_provider_at_redeem_is_refused_uncounted(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, provider: str
) -> None:
    """An unknown provider id is UnknownProvider and changes nothing."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(UnknownProvider) as caught:
        issuer.redeem(citizen, provider, issued.code, "new_line")
    assert "unknown_provider" == caught.value.code
    assert before == dump(storage)


def test_provider_removed_from_registry_cannot_redeem(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
) -> None:
    """A provider dropped from the policy is unknown, even for codes issued before."""
    issued = issuer.issue(citizen, "salam")
    without_salam = tuple(p for p in SAUDI_PROVIDERS if p.id != "salam")
    later = make_issuer(storage, keyring, clock, providers=without_salam)
    with pytest.raises(UnknownProvider) as caught:
        later.redeem(citizen, "salam", issued.code, "new_line")
    assert "unknown_provider" == caught.value.code
    assert Provider(id="salam", name_en="Salam", name_ar="سلام") == issued.provider


# --- R3: validity --------------------------------------------------------------------------------


def test_code_is_valid_until_one_microsecond_before_four_hours(
    issuer: CodeIssuer, clock: ManualClock, citizen: Subject
) -> None:
    """At issued_at + 4h - 1µs the code still works."""
    issued = issuer.issue(citizen, "stc")
    clock.set(issued.issued_at + FOUR_HOURS - ONE_MICROSECOND)
    assert clock.now() == issuer.redeem(citizen, "stc", issued.code, "new_line").redeemed_at


def test_code_expires_exactly_at_four_hours(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """At issued_at + 4h the right code is CodeExpired, and the refusal is not counted."""
    issued = issuer.issue(citizen, "stc")
    clock.set(issued.issued_at + FOUR_HOURS)
    before = dump(storage)
    with pytest.raises(CodeExpired) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    assert "code_expired" == caught.value.code
    assert issued.issued_at + FOUR_HOURS == caught.value.expired_at
    assert before == dump(storage)


def test_bound_code_uses_the_service_ttl(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """A code bound to a 1-hour service works until 1h - 1µs and is expired at 1h."""
    issuer = make_issuer(
        storage, keyring, clock, ttl_by_service={"number_transfer": timedelta(hours=1)}
    )
    transfer = partial(issuer.issue, citizen, "stc", service="number_transfer", recipient=resident)
    early, late = transfer(), transfer()
    clock.advance(timedelta(hours=1) - ONE_MICROSECOND)
    redemption = issuer.redeem(citizen, "stc", early.code, "number_transfer", recipient=resident)
    assert "number_transfer" == redemption.service.id
    clock.advance(ONE_MICROSECOND)
    with pytest.raises(CodeExpired) as caught:
        issuer.redeem(citizen, "stc", late.code, "number_transfer", recipient=resident)
    assert late.expires_at == caught.value.expired_at


def test_unbound_code_is_expired_for_a_shorter_ttl_service(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """An unbound code used for a 1-hour service is expired after 1h, though expires_at is 4h."""
    issuer = make_issuer(
        storage, keyring, clock, ttl_by_service={"lost_sim_replacement": timedelta(hours=1)}
    )
    first = issuer.issue(citizen, "stc")
    second = issuer.issue(citizen, "stc")
    assert first.issued_at + FOUR_HOURS == first.expires_at
    clock.advance(timedelta(hours=1) - ONE_MICROSECOND)
    redemption = issuer.redeem(citizen, "stc", first.code, "lost_sim_replacement")
    assert "lost_sim_replacement" == redemption.service.id
    clock.advance(ONE_MICROSECOND)
    before = dump(storage)
    with pytest.raises(CodeExpired) as caught:
        issuer.redeem(citizen, "stc", second.code, "lost_sim_replacement")
    assert second.issued_at + timedelta(hours=1) == caught.value.expired_at
    assert before == dump(storage)
    assert "new_line" == issuer.redeem(citizen, "stc", second.code, "new_line").service.id


def test_longer_service_ttl_lengthens_only_that_service(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """With new_line at 6h an unbound code lives 6h for new_line but 4h for other services."""
    issuer = make_issuer(storage, keyring, clock, ttl_by_service={"new_line": timedelta(hours=6)})
    first = issuer.issue(citizen, "stc")
    second = issuer.issue(citizen, "stc")
    assert first.issued_at + timedelta(hours=6) == first.expires_at
    clock.advance(FOUR_HOURS)
    with pytest.raises(CodeExpired) as caught:
        issuer.redeem(citizen, "stc", first.code, "activation_for_actual_user")
    assert first.issued_at + FOUR_HOURS == caught.value.expired_at
    clock.set(first.issued_at + timedelta(hours=6) - ONE_MICROSECOND)
    assert "new_line" == issuer.redeem(citizen, "stc", first.code, "new_line").service.id
    clock.advance(ONE_MICROSECOND)
    with pytest.raises(CodeExpired) as caught:
        issuer.redeem(citizen, "stc", second.code, "new_line")
    assert second.expires_at == caught.value.expired_at


def test_wrong_code_after_expiry_charges_no_expired_code(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """An expired code is no longer live, so a wrong guess charges neither it nor the budget."""
    issued = issuer.issue(citizen, "stc")
    clock.advance(FOUR_HOURS)
    before = dump(storage)
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    assert before == dump(storage)
    assert 0 == stored_record(storage, issued.code_id).failed_attempts
    assert 0 == failures(storage, issued, "stc")


# --- R4 and R5: one use, one service -------------------------------------------------------------


@pytest.mark.parametrize("again", ["new_line", "lost_sim_replacement"])
def test_second_redemption_is_already_used_and_not_counted(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, again: str
) -> None:
    """A code works once; using it again, for any service, is CodeAlreadyUsed and not a guess."""
    issued = issuer.issue(citizen, "stc")
    issuer.redeem(citizen, "stc", issued.code, "new_line")
    before = dump(storage)
    with pytest.raises(CodeAlreadyUsed) as caught:
        issuer.redeem(citizen, "stc", issued.code, again)
    assert "code_already_used" == caught.value.code
    assert before == dump(storage)
    assert 0 == failures(storage, issued, "stc")


def test_bound_code_refuses_another_service_and_stays_usable(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A code bound to new_line is ServiceMismatch for another service, uncounted, still live."""
    issued = issuer.issue(citizen, "stc", service="new_line")
    before = dump(storage)
    for service in ("lost_sim_replacement", "activation_for_actual_user", "number_transfer"):
        with pytest.raises(ServiceMismatch) as caught:
            issuer.redeem(citizen, "stc", issued.code, service)
        assert "service_mismatch" == caught.value.code
    assert before == dump(storage)
    assert "new_line" == issuer.redeem(citizen, "stc", issued.code, "new_line").service.id


def test_service_not_allowed_for_kind_at_redeem(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, company: Subject
) -> None:
    """A company limited to new_line is refused number_transfer, uncounted, then uses new_line."""
    issuer = make_issuer(
        storage, keyring, clock, services_by_kind={SubjectKind.COMPANY: {"new_line"}}
    )
    issued = issuer.issue(company, "stc")
    before = dump(storage)
    with pytest.raises(ServiceNotAllowed) as caught:
        issuer.redeem(company, "stc", issued.code, "number_transfer")
    assert "service_not_allowed" == caught.value.code
    assert before == dump(storage)
    assert "new_line" == issuer.redeem(company, "stc", issued.code, "new_line").service.id


@pytest.mark.parametrize(
    "service", ["additional_sim", "number_porting", ADDITIONAL_SIM, NUMBER_PORTING, "x"]
)
def test_unknown_service_at_redeem(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, service: object
) -> None:
    """Services outside the catalogue, including the regulator's extras by default, are unknown."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(UnknownService) as caught:
        issuer.redeem(citizen, "stc", issued.code, service)  # type: ignore[arg-type]
    assert "unknown_service" == caught.value.code
    assert before == dump(storage)


def test_extra_service_in_catalogue_redeems_unbound_code(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, resident: Subject
) -> None:
    """Once in the catalogue, NUMBER_PORTING is a service an unbound code can be used for."""
    issuer = make_issuer(storage, keyring, clock, services=(*DEFAULT_SERVICES, NUMBER_PORTING))
    issued = issuer.issue(resident, "lebara")
    assert (
        NUMBER_PORTING == issuer.redeem(resident, "lebara", issued.code, "number_porting").service
    )


# --- R6: the code as typed -----------------------------------------------------------------------

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EXTENDED_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code.translate(ARABIC_INDIC),
        lambda code: code.translate(EXTENDED_ARABIC_INDIC),
        lambda code: f"{code[:4]} {code[4:]}",
        lambda code: f"{code[:4]}-{code[4:]}",
        lambda code: f" {code[:2]}-{code[2:5]} {code[5:]} ",
        lambda code: "\u200f" + code.translate(ARABIC_INDIC) + "\u200e",
        lambda code: "\u061c" + code[:4].translate(EXTENDED_ARABIC_INDIC) + "\u200e" + code[4:],
        lambda code: (
            code[:4].translate(ARABIC_INDIC) + " - " + code[4:].translate(EXTENDED_ARABIC_INDIC)
        ),
    ],
    ids=["arabic-indic", "extended", "space", "hyphen", "mixed-sep", "rlm-lrm", "alm", "scripts"],
)
def test_code_typed_by_a_person_is_accepted(
    issuer: CodeIssuer, citizen: Subject, typed: Any
) -> None:
    """Arabic-Indic digits, spaces, hyphens and direction marks fold to the code."""
    issued = issuer.issue(citizen, "stc")
    as_typed: str = typed(issued.code)
    assert issued.code != as_typed
    assert issued.code_id == issuer.redeem(citizen, "stc", as_typed, "new_line").code_id


def test_display_form_is_accepted(issuer: CodeIssuer, citizen: Subject) -> None:
    """The grouped display form shown to the customer redeems as is."""
    issued = issuer.issue(citizen, "stc")
    assert f"{issued.code[:4]} {issued.code[4:]}" == issued.display
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.display, "new_line").code_id


DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code[:-1],
        lambda code: code + "0",
        lambda code: code[:-1] + "a",
        lambda code: code[:-1] + "²",
        lambda code: code.translate(DEVANAGARI),
        lambda code: code.translate(FULLWIDTH),
        lambda code: code[:4] + "_" + code[4:],
        lambda code: "+" + code,
        lambda code: code[:4] + "\t" + code[4:],
        lambda code: "",
        lambda code: " - ",
        lambda code: code * 20,
    ],
    ids=[
        "short",
        "long",
        "letter",
        "superscript",
        "devanagari",
        "fullwidth",
        "underscore",
        "sign",
        "tab",
        "empty",
        "only-separators",
        "huge",
    ],
)
def test_malformed_code_is_refused_and_not_counted(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, typed: Any
) -> None:
    """A code that cannot be one is MalformedCode, and it is not a failed attempt."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(MalformedCode) as caught:
        issuer.redeem(citizen, "stc", typed(issued.code), "new_line")
    assert "malformed_code" == caught.value.code
    assert before == dump(storage)
    assert 5 == issuer.status(citizen, issued.code_id).attempts_left
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.code, "new_line").code_id


# --- attempt limits ------------------------------------------------------------------------------


def test_five_wrong_guesses_lock_the_code(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """attempts_left counts 5..0; the fifth wrong guess locks; then the right code is CodeLocked."""
    issued = issuer.issue(citizen, "stc")
    wrong = other_code(issued.code)
    assert 5 == issuer.status(citizen, issued.code_id).attempts_left
    for left in (4, 3, 2, 1):
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", wrong, "new_line")
        status = issuer.status(citizen, issued.code_id)
        assert (CodeState.ACTIVE, left) == (status.state, status.attempts_left)
    clock.advance(minutes=1)
    with pytest.raises(WrongCode) as fifth:
        issuer.redeem(citizen, "stc", wrong, "new_line")
    assert "wrong_code" == fifth.value.code
    status = issuer.status(citizen, issued.code_id)
    assert (CodeState.LOCKED, 0, 5) == (status.state, status.attempts_left, status.failed_attempts)
    assert clock.now() == status.finished_at
    with pytest.raises(CodeLocked) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    assert "code_locked" == caught.value.code
    assert 5 == stored_record(storage, issued.code_id).failed_attempts


def test_custom_attempt_limit(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """max_failed_attempts=3 locks at the third wrong guess, not before."""
    issuer = make_issuer(storage, keyring, clock, max_failed_attempts=3)
    issued = issuer.issue(citizen, "stc")
    assert 3 == issuer.status(citizen, issued.code_id).attempts_left
    for _ in range(2):
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    assert CodeState.ACTIVE == issuer.status(citizen, issued.code_id).state
    assert 1 == issuer.status(citizen, issued.code_id).attempts_left
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    assert CodeState.LOCKED == issuer.status(citizen, issued.code_id).state
    with pytest.raises(CodeLocked):
        issuer.redeem(citizen, "stc", issued.code, "new_line")


def test_attempt_limit_of_one(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """max_failed_attempts=1 (recovery_attempts cannot be more) locks at the first wrong guess."""
    issuer = make_issuer(storage, keyring, clock, max_failed_attempts=1, recovery_attempts=1)
    issued = issuer.issue(citizen, "stc")
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    with pytest.raises(CodeLocked):
        issuer.redeem(citizen, "stc", issued.code, "new_line")


def test_four_wrong_guesses_leave_the_code_usable(issuer: CodeIssuer, citizen: Subject) -> None:
    """One below the limit, the right code still works."""
    issued = issuer.issue(citizen, "stc")
    for _ in range(4):
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.code, "new_line").code_id


def test_wrong_guess_charges_every_live_code_at_that_provider_only(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A wrong guess at stc counts on each live stc code of the subject and on no other code."""
    first = issuer.issue(citizen, "stc")
    second = issuer.issue(citizen, "stc")
    elsewhere = issuer.issue(citizen, "mobily")
    guess = next(
        candidate
        for candidate in ("00000000", "11111111", "22222222", "33333333")
        if candidate not in {first.code, second.code}
    )
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", guess, "new_line")
    assert 1 == stored_record(storage, first.code_id).failed_attempts
    assert 1 == stored_record(storage, second.code_id).failed_attempts
    assert 0 == stored_record(storage, elsewhere.code_id).failed_attempts
    assert 1 == failures(storage, first, "stc")
    assert 0 == failures(storage, first, "mobily")


def test_wrong_guess_does_not_charge_finished_codes(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """Redeemed and revoked codes keep their attempt count when a later guess is wrong."""
    used = issuer.issue(citizen, "stc")
    cancelled = issuer.issue(citizen, "stc")
    issuer.redeem(citizen, "stc", used.code, "new_line")
    issuer.revoke(citizen, cancelled.code_id)
    guess = next(
        c for c in ("00000000", "11111111", "22222222") if c not in {used.code, cancelled.code}
    )
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", guess, "new_line")
    assert 0 == stored_record(storage, used.code_id).failed_attempts
    assert 0 == stored_record(storage, cancelled.code_id).failed_attempts


def test_wrong_guess_for_another_subject_is_charged_to_that_subject_only(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, resident: Subject
) -> None:
    """Guesses aim at one subject: the other subject's code is untouched."""
    mine = issuer.issue(citizen, "stc")
    theirs = issuer.issue(resident, "stc")
    with pytest.raises(WrongCode):
        issuer.redeem(resident, "stc", other_code(theirs.code), "new_line")
    assert 0 == stored_record(storage, mine.code_id).failed_attempts
    assert 0 == failures(storage, mine, "stc")


# --- the failure budget --------------------------------------------------------------------------


def exhaust(issuer: CodeIssuer, subject: Subject, target: IssuedCode, count: int) -> None:
    """Make ``count`` wrong guesses compared with the code ``target`` at its provider, so that
    each is charged to it and to the failure budget there; ``target`` must stay live until the
    last guess (which may lock it)."""
    for _ in range(count):
        with pytest.raises(WrongCode):
            issuer.redeem(subject, target.provider, other_code(target.code), "new_line")


def test_guesses_after_the_lock_are_counted_nowhere(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """Once the only code locked, a wrong guess meets no live code: WrongCode, nothing stored."""
    issued = issuer.issue(citizen, "stc")
    for _ in range(5):
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    before = dump(storage)
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(issued.code), "new_line")
    assert before == dump(storage)
    assert 5 == failures(storage, issued, "stc")


def test_exhausted_budget_without_recovery_codes_refuses_even_a_new_right_code(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Recovery off, budget 3 spent: a new right code is refused, uncounted, until retry_after."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3, recovery_codes=0)
    target = issuer.issue(citizen, "stc")
    first_failure = clock.now()
    exhaust(issuer, citizen, target, 1)
    clock.advance(minutes=5)
    exhaust(issuer, citizen, target, 2)
    clock.advance(minutes=5)
    fresh = issuer.issue(citizen, "stc")
    assert not stored_record(storage, fresh.code_id).recovery
    with pytest.raises(FailureBudgetExhausted) as caught:
        issuer.redeem(citizen, "stc", fresh.code, "new_line")
    assert "failure_budget_exhausted" == caught.value.code
    retry_after = first_failure + timedelta(hours=24)
    assert retry_after == caught.value.retry_at
    assert 3 == failures(storage, fresh, "stc")
    assert 0 == stored_record(storage, fresh.code_id).failed_attempts
    clock.set(retry_after)
    later = issuer.issue(citizen, "stc")
    assert later.code_id == issuer.redeem(citizen, "stc", later.code, "new_line").code_id


def test_code_issued_while_the_budget_is_spent_is_a_recovery_code_that_redeems(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """With the budget spent, a new code is a recovery code and redeems; the old one is refused."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3)
    target = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, target, 3)
    rescue = issuer.issue(citizen, "stc")
    assert stored_record(storage, rescue.code_id).recovery
    assert rescue.code_id == issuer.redeem(citizen, "stc", rescue.code, "new_line").code_id
    assert 3 == failures(storage, target, "stc")
    with pytest.raises(FailureBudgetExhausted):
        issuer.redeem(citizen, "stc", target.code, "new_line")


def test_in_recovery_only_recovery_codes_are_compared_and_charged(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """In recovery any other code is charged to the recovery code only, which locks after 2."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3)
    target = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, target, 3)
    rescue = issuer.issue(citizen, "stc")
    if rescue.code == target.code:
        pytest.skip("the two random codes coincide (one chance in 10^8)")
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", target.code, "new_line")
    charged = (stored_record(storage, target.code_id), stored_record(storage, rescue.code_id))
    assert (3, 1) == tuple(record.failed_attempts for record in charged)
    assert 3 == failures(storage, target, "stc")
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", other_code(rescue.code), "new_line")
    status = issuer.status(citizen, rescue.code_id)
    assert (CodeState.LOCKED, 2) == (status.state, status.failed_attempts)
    assert 3 == failures(storage, target, "stc")
    with pytest.raises(FailureBudgetExhausted):
        issuer.redeem(citizen, "stc", rescue.code, "new_line")


def test_budget_refusal_is_not_counted_and_reveals_nothing(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """While exhausted, right and wrong codes get the same answer and nothing is recorded."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3)
    issued = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, issued, 3)
    before = dump(storage)
    answers = []
    for typed in (issued.code, other_code(issued.code)):
        with pytest.raises(FailureBudgetExhausted) as caught:
            issuer.redeem(citizen, "stc", typed, "new_line")
        answers.append(dict(caught.value.details))
    assert answers[0] == answers[1]
    assert before == dump(storage)


def test_budget_frees_exactly_at_retry_after(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """One microsecond before retry_after the ordinary code is refused; at retry_after it works."""
    # 3 per hour is 72 guesses a day: looser than the guess-risk limit, on purpose.
    issuer = make_issuer(
        storage,
        keyring,
        clock,
        failure_budget=3,
        failure_window=timedelta(hours=1),
        accept_guess_risk=True,
    )
    start = clock.now()
    issued = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, issued, 3)
    clock.set(start + timedelta(hours=1) - ONE_MICROSECOND)
    with pytest.raises(FailureBudgetExhausted) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    assert start + timedelta(hours=1) == caught.value.retry_at
    clock.advance(ONE_MICROSECOND)
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.code, "new_line").code_id


def test_budget_window_slides(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Failures leave the window one by one: retry_after follows the oldest one still inside."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3)
    start = clock.now()
    first = issuer.issue(citizen, "stc")
    for hour in range(3):
        clock.set(start + timedelta(hours=hour))
        exhaust(issuer, citizen, first, 1)
    clock.set(start + timedelta(hours=24))
    second = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, second, 1)
    with pytest.raises(FailureBudgetExhausted) as caught:
        issuer.redeem(citizen, "stc", second.code, "new_line")
    assert start + timedelta(hours=25) == caught.value.retry_at
    clock.set(start + timedelta(hours=25))
    exhaust(issuer, citizen, second, 1)
    assert 3 == failures(storage, second, "stc")


def test_lowering_the_budget_later_gives_an_exact_retry_after(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Five logged failures under budget 10, then budget 3: retry when only two remain recent."""
    issuer = make_issuer(storage, keyring, clock)
    start = clock.now()
    issued = issuer.issue(citizen, "stc")
    for minute in range(5):
        clock.set(start + timedelta(minutes=minute))
        exhaust(issuer, citizen, issued, 1)
    stricter = make_issuer(storage, keyring, clock, failure_budget=3)
    with pytest.raises(FailureBudgetExhausted) as caught:
        stricter.redeem(citizen, "stc", "00000000", "new_line")
    retry_after = start + timedelta(minutes=2, hours=24)
    assert retry_after == caught.value.retry_at
    clock.set(retry_after - ONE_MICROSECOND)
    with pytest.raises(FailureBudgetExhausted):
        stricter.redeem(citizen, "stc", "00000000", "new_line")
    clock.set(retry_after)
    fresh = stricter.issue(citizen, "stc")
    assert not stored_record(storage, fresh.code_id).recovery
    exhaust(stricter, citizen, fresh, 1)
    assert 3 == failures(storage, fresh, "stc")


def test_issuing_is_never_blocked_by_the_budget(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """An exhausted budget does not stop issuing: the new code is a recovery code and redeems."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=1)
    target = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, target, 1)
    issued = issuer.issue(citizen, "stc")
    assert "stc" == issued.provider.id
    assert stored_record(storage, issued.code_id).recovery
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.code, "new_line").code_id


def test_budget_is_per_provider(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """An exhausted budget at stc leaves the same subject free at mobily."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3)
    target = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, target, 3)
    with pytest.raises(FailureBudgetExhausted):
        issuer.redeem(citizen, "stc", target.code, "new_line")
    issued = issuer.issue(citizen, "mobily")
    assert not stored_record(storage, issued.code_id).recovery
    assert issued.code_id == issuer.redeem(citizen, "mobily", issued.code, "new_line").code_id


def test_budget_is_per_subject(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """An exhausted budget for one subject leaves another subject free at the same provider."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=3)
    target = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, target, 3)
    with pytest.raises(FailureBudgetExhausted):
        issuer.redeem(citizen, "stc", target.code, "new_line")
    issued = issuer.issue(resident, "stc")
    assert not stored_record(storage, issued.code_id).recovery
    assert issued.code_id == issuer.redeem(resident, "stc", issued.code, "new_line").code_id


def test_default_budget_is_ten_wrong_attempts_a_day(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """By default the 11th attempt in 24 h is refused, whatever the code, with no recovery code."""
    start = clock.now()
    first = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, first, 4)
    second = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, second, 5)
    fresh = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, fresh, 1)
    assert 10 == failures(storage, fresh, "stc")
    with pytest.raises(FailureBudgetExhausted) as caught:
        issuer.redeem(citizen, "stc", fresh.code, "new_line")
    assert start + timedelta(hours=24) == caught.value.retry_at


def test_reissuing_after_lockout_does_not_reset_the_budget(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Reissuing keeps the budget spent: the newest is a recovery code; the older isn't compared."""
    issuer = make_issuer(storage, keyring, clock, max_failed_attempts=2, failure_budget=3)
    locked = issuer.issue(citizen, "stc")
    for _ in range(2):
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", other_code(locked.code), "new_line")
    assert CodeState.LOCKED == issuer.status(citizen, locked.code_id).state
    fresh = issuer.issue(citizen, "stc")
    exhaust(issuer, citizen, fresh, 1)
    newest = issuer.issue(citizen, "stc")
    assert 3 == failures(storage, newest, "stc")
    assert stored_record(storage, newest.code_id).recovery
    if newest.code == fresh.code:
        pytest.skip("the two random codes coincide (one chance in 10^8)")
    with pytest.raises(WrongCode):
        issuer.redeem(citizen, "stc", fresh.code, "new_line")
    assert 3 == failures(storage, newest, "stc")
    assert newest.code_id == issuer.redeem(citizen, "stc", newest.code, "new_line").code_id


# --- bindings ------------------------------------------------------------------------------------

MSISDN_FORMS = [
    "0551234567",
    "551234567",
    "+966551234567",
    "00966551234567",
    "966551234567",
    "٠٥٥١٢٣٤٥٦٧",
    "۰۵۵ ۱۲۳ ۴۵۶۷",
    "+966 55-123-4567",
]


@pytest.mark.parametrize("bound_as", ["0551234567", "+966551234567", "٠٥٥١٢٣٤٥٦٧"])
@pytest.mark.parametrize("presented", MSISDN_FORMS)
def test_msisdn_binding_accepts_any_form_of_the_same_number(
    issuer: CodeIssuer, citizen: Subject, bound_as: str, presented: str
) -> None:
    """The mobile number may be bound and presented in different accepted forms."""
    issued = issuer.issue(citizen, "stc", msisdn=bound_as)
    redemption = issuer.redeem(citizen, "stc", issued.code, "new_line", msisdn=presented)
    assert issued.code_id == redemption.code_id


def test_msisdn_binding_missing_is_required_and_not_counted(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A bound code presented without its number is BindingRequired; nothing is counted."""
    issued = issuer.issue(citizen, "stc", msisdn="0551234567")
    before = dump(storage)
    with pytest.raises(BindingRequired) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    assert "binding_required" == caught.value.code
    assert before == dump(storage)


def test_msisdn_binding_mismatch_is_counted_on_that_code(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A wrong number is BindingMismatch, charged to the bound code and the budget only."""
    bound = issuer.issue(citizen, "stc", msisdn="0551234567")
    bystander = issuer.issue(citizen, "stc")
    with pytest.raises(BindingMismatch) as caught:
        issuer.redeem(citizen, "stc", bound.code, "new_line", msisdn="0557654321")
    assert "binding_mismatch" == caught.value.code
    assert isinstance(caught.value, RedemptionRefused)
    assert 1 == stored_record(storage, bound.code_id).failed_attempts
    assert 0 == stored_record(storage, bystander.code_id).failed_attempts
    assert 1 == failures(storage, bound, "stc")
    assert (
        bound.code_id
        == issuer.redeem(citizen, "stc", bound.code, "new_line", msisdn="+966551234567").code_id
    )


def test_repeated_msisdn_mismatch_locks_the_code(issuer: CodeIssuer, citizen: Subject) -> None:
    """Five wrong numbers lock the bound code like five wrong codes."""
    issued = issuer.issue(citizen, "stc", msisdn="0551234567")
    for _ in range(5):
        with pytest.raises(BindingMismatch):
            issuer.redeem(citizen, "stc", issued.code, "new_line", msisdn="0550000000")
    assert CodeState.LOCKED == issuer.status(citizen, issued.code_id).state
    with pytest.raises(CodeLocked):
        issuer.redeem(citizen, "stc", issued.code, "new_line", msisdn="0551234567")


def test_invalid_msisdn_at_redeem_is_refused_uncounted(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """A malformed number at redemption is InvalidMsisdn and changes nothing."""
    issued = issuer.issue(citizen, "stc", msisdn="0551234567")
    before = dump(storage)
    with pytest.raises(InvalidMsisdn) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line", msisdn="0451234567")
    assert "invalid_msisdn" == caught.value.code
    assert before == dump(storage)


def test_msisdn_presented_for_unbound_code_is_ignored(issuer: CodeIssuer, citizen: Subject) -> None:
    """Presenting a number for a code bound to none does not stop the redemption."""
    issued = issuer.issue(citizen, "stc")
    assert (
        issued.code_id
        == issuer.redeem(citizen, "stc", issued.code, "new_line", msisdn="0551234567").code_id
    )


def test_recipient_binding_right_recipient_succeeds(
    issuer: CodeIssuer, citizen: Subject, resident: Subject
) -> None:
    """A transfer code bound to a recipient redeems with that recipient, however the ID is typed."""
    issued = issuer.issue(citizen, "stc", service="number_transfer", recipient=resident)
    same_person = Subject.resident("٢١٢٩٠٤٠٤٧٩")
    redemption = issuer.redeem(
        citizen, "stc", issued.code, "number_transfer", recipient=same_person
    )
    assert "number_transfer" == redemption.service.id


def test_recipient_binding_missing_is_required(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, resident: Subject
) -> None:
    """A recipient-bound code without a recipient is BindingRequired, uncounted."""
    issued = issuer.issue(citizen, "stc", service="number_transfer", recipient=resident)
    before = dump(storage)
    with pytest.raises(BindingRequired) as caught:
        issuer.redeem(citizen, "stc", issued.code, "number_transfer")
    assert "binding_required" == caught.value.code
    assert before == dump(storage)


def test_recipient_binding_wrong_recipient_is_mismatch(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    citizen: Subject,
    resident: Subject,
    company: Subject,
) -> None:
    """Another recipient is BindingMismatch and counted; the right one still works afterwards."""
    issued = issuer.issue(citizen, "stc", service="number_transfer", recipient=resident)
    with pytest.raises(BindingMismatch) as caught:
        issuer.redeem(citizen, "stc", issued.code, "number_transfer", recipient=company)
    assert "binding_mismatch" == caught.value.code
    assert 1 == stored_record(storage, issued.code_id).failed_attempts
    assert 1 == failures(storage, issued, "stc")
    redemption = issuer.redeem(citizen, "stc", issued.code, "number_transfer", recipient=resident)
    assert issued.code_id == redemption.code_id


def test_code_bound_to_msisdn_and_recipient_needs_both(
    issuer: CodeIssuer, citizen: Subject, resident: Subject
) -> None:
    """With both bindings, each must be presented and right."""
    issued = issuer.issue(
        citizen, "stc", service="number_transfer", msisdn="0551234567", recipient=resident
    )
    with pytest.raises(BindingRequired):
        issuer.redeem(citizen, "stc", issued.code, "number_transfer", msisdn="0551234567")
    with pytest.raises(BindingRequired):
        issuer.redeem(citizen, "stc", issued.code, "number_transfer", recipient=resident)
    redemption = issuer.redeem(
        citizen, "stc", issued.code, "number_transfer", msisdn="551234567", recipient=resident
    )
    assert issued.code_id == redemption.code_id


# --- the code format ----------------------------------------------------------------------------


class Repeating(CodeFormat):
    """A format that always draws the same code, to make two codes collide on purpose."""

    def generate(self) -> str:
        """Always the same code."""
        return "12345678"


def test_reused_code_value_redeems_the_live_code(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Two codes of one value: the newest live one is used first, then the other, then none."""
    issuer = make_issuer(storage, keyring, clock, code_format=Repeating())
    older = issuer.issue(citizen, "stc")
    clock.advance(minutes=1)
    newer = issuer.issue(citizen, "stc")
    assert newer.code_id == issuer.redeem(citizen, "stc", "12345678", "new_line").code_id
    assert older.code_id == issuer.redeem(citizen, "stc", "12345678", "new_line").code_id
    with pytest.raises(CodeAlreadyUsed):
        issuer.redeem(citizen, "stc", "12345678", "new_line")
    again = issuer.issue(citizen, "stc")
    assert again.code_id == issuer.redeem(citizen, "stc", "12345678", "new_line").code_id


def test_longer_code_format_is_issued_and_enforced(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A 10-digit format issues 10 digits and refuses 8 as malformed, uncounted."""
    issuer = make_issuer(storage, keyring, clock, code_format=CodeFormat(length=10))
    issued = issuer.issue(citizen, "stc")
    assert 10 == len(issued.code)
    assert set(issued.code) <= set("0123456789")
    with pytest.raises(MalformedCode) as caught:
        issuer.redeem(citizen, "stc", issued.code[:8], "new_line")
    assert 10 == caught.value.details["length"]
    assert 0 == stored_record(storage, issued.code_id).failed_attempts
    typed = issued.code.translate(EXTENDED_ARABIC_INDIC)
    assert issued.code_id == issuer.redeem(citizen, "stc", typed, "new_line").code_id


def test_single_case_alphabet_forgives_the_other_case(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """An upper-case alphanumeric format accepts the code typed in lower case."""
    alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
    issuer = make_issuer(storage, keyring, clock, code_format=CodeFormat(alphabet=alphabet))
    issued = issuer.issue(citizen, "stc")
    assert set(issued.code) <= set(alphabet)
    typed = issued.code.lower()
    assert issued.code_id == issuer.redeem(citizen, "stc", typed, "new_line").code_id


# --- keyring rotation ----------------------------------------------------------------------------


def test_key_rotation_keeps_old_codes_and_uses_the_new_key(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
) -> None:
    """After adding k2, a k1 code still redeems and new codes are digested with k2."""
    old = issuer.issue(citizen, "stc")
    assert "k1" == stored_record(storage, old.code_id).key_id
    rotated = keyring.with_key(HmacKey(key_id="k2", secret=K2_SECRET))
    after = CodeIssuer(storage, keyring=rotated, clock=clock)
    new = after.issue(citizen, "stc")
    assert "k2" == stored_record(storage, new.code_id).key_id
    assert old.code_id == after.redeem(citizen, "stc", old.code, "new_line").code_id
    assert new.code_id == after.redeem(citizen, "stc", new.code, "new_line").code_id


def test_retired_key_voids_its_codes(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
) -> None:
    """Once k1 is retired, a code issued under it is a wrong code, charged only to the live k2
    code it was compared with, never to the void k1 code; k2 codes still work."""
    old = issuer.issue(citizen, "stc")
    rotated = keyring.with_key(HmacKey(key_id="k2", secret=K2_SECRET))
    middle = CodeIssuer(storage, keyring=rotated, clock=clock)
    new = middle.issue(citizen, "stc")
    retired = CodeIssuer(storage, keyring=rotated.without_key("k1"), clock=clock)
    with pytest.raises(WrongCode):
        retired.redeem(citizen, "stc", old.code, "new_line")
    charged = [stored_record(storage, issued.code_id).failed_attempts for issued in (old, new)]
    assert [0, 1] == charged
    assert 1 == failures(storage, new, "stc")
    assert new.code_id == retired.redeem(citizen, "stc", new.code, "new_line").code_id


def test_a_guess_meeting_only_codes_of_a_retired_key_is_counted_nowhere(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
) -> None:
    """When every live code at the provider was digested with a retired key, no guess can
    match: the old code itself and a wrong one are WrongCode, and nothing is stored."""
    old = issuer.issue(citizen, "stc")
    other = issuer.issue(citizen, "stc")
    rotated = keyring.with_key(HmacKey(key_id="k2", secret=K2_SECRET)).without_key("k1")
    retired = CodeIssuer(storage, keyring=rotated, clock=clock)
    before = dump(storage)
    for typed in (old.code, other.code, other_code(old.code)):
        with pytest.raises(WrongCode):
            retired.redeem(citizen, "stc", typed, "new_line")
    assert before == dump(storage)
    status = retired.status(citizen, old.code_id)
    assert (CodeState.ACTIVE, 0) == (status.state, status.failed_attempts)
    # A code the current key digests is compared, and charged, as before.
    fresh = retired.issue(citizen, "stc")
    with pytest.raises(WrongCode):
        retired.redeem(citizen, "stc", other_code(fresh.code), "new_line")
    assert (0, 1) == (
        stored_record(storage, old.code_id).failed_attempts,
        stored_record(storage, fresh.code_id).failed_attempts,
    )


def test_same_code_under_another_pseudonym_key_is_another_subject(
    issuer: CodeIssuer, storage: MemoryStorage, clock: ManualClock, citizen: Subject
) -> None:
    """Another pseudonym key orphans stored codes: the code is wrong and counted nowhere."""
    issued = issuer.issue(citizen, "stc")
    other = Keyring(
        keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
        pseudonym_keys=(HmacKey(key_id="p1", secret=sha256(PSEUDONYM_SECRET).digest()),),
    )
    before = dump(storage)
    with pytest.raises(WrongCode):
        CodeIssuer(storage, keyring=other, clock=clock).redeem(
            citizen, "stc", issued.code, "new_line"
        )
    assert before == dump(storage)


# --- bad input never escapes as anything else, never changes storage ------------------------------

REDEEM_JUNK: list[object] = [
    *JUNK,
    12345678,
    1.5,
    True,
    b"12345678",
    bytearray(b"12345678"),
    {"code": "12345678"},
    ["12345678"],
    ("stc",),
    {"stc"},
    "x" * 100_000,
    "١" * 100_000,
    "\x00",
]


EXPECTED_FOR_JUNK = {
    "subject": "invalid_input",
    "provider": "unknown_provider",
    "code": "malformed_code",
    "service": "unknown_service",
    "msisdn": "invalid_msisdn",
    "recipient": "invalid_binding",
}

# None is a legitimate absence of a binding (tested above), so it is no junk for those two.
JUNK_CASES = junk_cases(EXPECTED_FOR_JUNK, REDEEM_JUNK, optional={"msisdn", "recipient"})


@pytest.mark.parametrize(("argument", "junk"), JUNK_CASES)
def test_junk_argument_to_redeem_is_a_library_error(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, argument: str, junk: object
) -> None:
    """Any junk in any argument raises a TelecardAuthError and leaves storage untouched."""
    issued = issuer.issue(citizen, "stc", msisdn="0551234567")
    arguments: dict[str, Any] = {
        "subject": citizen,
        "provider": "stc",
        "code": issued.code,
        "service": "new_line",
        "msisdn": "0551234567",
        "recipient": None,
    }
    arguments[argument] = junk
    before = dump(storage)
    with pytest.raises(TelecardAuthError) as caught:
        issuer.redeem(**arguments)
    assert EXPECTED_FOR_JUNK[argument] == caught.value.code
    assert before == dump(storage)


def test_subject_given_as_id_string_is_invalid_input(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject
) -> None:
    """The subject must be a Subject, not the ID it was built from."""
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    with pytest.raises(TelecardAuthError) as caught:
        issuer.redeem("1000000008", "stc", issued.code, "new_line")  # type: ignore[arg-type]
    assert "invalid_input" == caught.value.code
    assert before == dump(storage)


# --- the shell around redemption: clock and storage ----------------------------------------------


class SwitchableStorage(MemoryStorage):
    """Memory storage whose load or commit can be made to fail like a broken driver."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: str | None = None

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Load, unless told to fail."""
        if self.failing == "load":
            raise ConnectionError("server went away")
        return super().load(subject_ref)

    def commit(self, change: Commit) -> bool:
        """Commit, unless told to fail."""
        if self.failing == "commit":
            raise ConnectionError("server went away")
        return super().commit(change)


@pytest.mark.parametrize("failing", ["load", "commit"])
@pytest.mark.parametrize("right", [True, False], ids=["right-code", "wrong-code"])
def test_storage_failure_during_redeem_is_storage_error_and_leaves_nothing(
    keyring: Keyring, clock: ManualClock, citizen: Subject, failing: str, right: bool
) -> None:
    """A driver error while redeeming is StorageError (cause kept); the code is still usable."""
    storage = SwitchableStorage()
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock)
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    storage.failing = failing
    typed = issued.code if right else other_code(issued.code)
    with pytest.raises(StorageError) as caught:
        issuer.redeem(citizen, "stc", typed, "new_line")
    assert "storage_error" == caught.value.code
    assert isinstance(caught.value.__cause__, ConnectionError)
    storage.failing = None
    assert before == dump(storage)
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.code, "new_line").code_id


class SettableClock:
    """A clock a test can point at any value, aware or not."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        """Whatever the test set."""
        return self.moment


def test_naive_clock_at_redeem_is_invalid_time(
    storage: MemoryStorage, keyring: Keyring, citizen: Subject
) -> None:
    """A clock that turns naive after issue makes redeem, status and revoke raise InvalidTime."""
    clock = SettableClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock)
    issued = issuer.issue(citizen, "stc")
    before = dump(storage)
    clock.moment = datetime(2026, 3, 1, 9, 5)
    for call in (
        partial(issuer.redeem, citizen, "stc", issued.code, "new_line"),
        partial(issuer.redeem, citizen, "stc", other_code(issued.code), "new_line"),
        partial(issuer.status, citizen, issued.code_id),
        partial(issuer.revoke, citizen, issued.code_id),
    ):
        with pytest.raises(InvalidTime) as caught:
            call()
        assert "invalid_time" == caught.value.code
    assert before == dump(storage)


class Refusing(MemoryStorage):
    """Memory storage that can be made to lose every compare-and-set."""

    refuse = False

    def commit(self, change: Commit) -> bool:
        """Lose the race when told to, else commit."""
        return False if self.refuse else super().commit(change)


def test_endless_contention_at_redeem_is_storage_contention(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A redemption that never commits ends in StorageContention; the code stays live."""
    storage = Refusing()
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock)
    issued = issuer.issue(citizen, "stc")
    storage.refuse = True
    with pytest.raises(StorageContention) as caught:
        issuer.redeem(citizen, "stc", issued.code, "new_line")
    assert "storage_contention" == caught.value.code
    storage.refuse = False
    assert CodeState.ACTIVE == issuer.status(citizen, issued.code_id).state
    assert issued.code_id == issuer.redeem(citizen, "stc", issued.code, "new_line").code_id
