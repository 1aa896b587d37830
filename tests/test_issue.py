"""Issuing codes: eligibility (R1), providers (R2), validity (R3), services, limits, bindings.

Also the shell's contract around issuing: the clock must be aware, storage failures surface as
``StorageError`` and endless contention as ``StorageContention``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tests.helpers import (
    FOUR_HOURS,
    JUNK,
    ONE_MICROSECOND,
    junk_cases,
    make_issuer,
    other_code,
    stored_record,
)

from telecard_auth import (
    ADDITIONAL_SIM,
    DEFAULT_SERVICES,
    NEW_LINE,
    NUMBER_PORTING,
    NUMBER_TRANSFER,
    SAUDI_PROVIDERS,
    CodeIssuer,
    CodeState,
    Commit,
    ConfigurationError,
    InvalidBinding,
    InvalidIdentifier,
    InvalidMsisdn,
    InvalidTime,
    Keyring,
    LiveCodeLimitReached,
    ManualClock,
    MemoryStorage,
    NotEligible,
    Policy,
    Provider,
    Service,
    ServiceNotAllowed,
    StorageContention,
    StorageError,
    Subject,
    SubjectKind,
    SubjectSnapshot,
    TelecardAuthError,
    UnknownProvider,
    UnknownService,
    WrongCode,
)
from telecard_auth.events import CodeIssuance, CollectingSink

EIGHT_DIGITS = re.compile(r"[0-9]{8}", re.ASCII)


# --- R1: eligibility -------------------------------------------------------------------------


def test_every_kind_is_issued_a_code_by_default(
    issuer: CodeIssuer, any_subject: Subject, clock: ManualClock
) -> None:
    """Citizens, residents, companies and government bodies all get codes under the defaults."""
    issued = issuer.issue(any_subject, "stc")
    assert EIGHT_DIGITS.fullmatch(issued.code) is not None
    assert "stc" == issued.provider.id
    assert issued.service is None
    assert clock.now() == issued.issued_at
    assert clock.now() + FOUR_HOURS == issued.expires_at


@pytest.mark.parametrize("kind", list(SubjectKind))
def test_kind_left_out_of_eligible_kinds_is_not_eligible(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    subjects: tuple[Subject, ...],
    kind: SubjectKind,
) -> None:
    """A policy whose eligible_kinds omit a kind refuses that kind and serves the others."""
    issuer = make_issuer(storage, keyring, clock, eligible_kinds=frozenset(SubjectKind) - {kind})
    for subject in subjects:
        if subject.kind is kind:
            with pytest.raises(NotEligible) as caught:
                issuer.issue(subject, "stc")
            assert "not_eligible" == caught.value.code
        else:
            assert "stc" == issuer.issue(subject, "stc").provider.id
    assert 3 == sum(len(snapshot.codes) for snapshot in storage.snapshots())


def test_kind_without_services_is_not_eligible(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, company: Subject, citizen: Subject
) -> None:
    """services_by_kind leaving a kind with no service makes that kind ineligible."""
    issuer = make_issuer(
        storage,
        keyring,
        clock,
        services_by_kind={SubjectKind.CITIZEN: frozenset({"new_line"})},
    )
    with pytest.raises(NotEligible) as caught:
        issuer.issue(company, "stc")
    assert "not_eligible" == caught.value.code
    assert [] == list(storage.snapshots())
    assert "stc" == issuer.issue(citizen, "stc").provider.id


def test_kind_with_empty_service_set_is_not_eligible(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, resident: Subject
) -> None:
    """An explicitly empty service set for a kind is no service at all."""
    issuer = make_issuer(
        storage, keyring, clock, services_by_kind={SubjectKind.RESIDENT: frozenset()}
    )
    with pytest.raises(NotEligible) as caught:
        issuer.issue(resident, "zain")
    assert "not_eligible" == caught.value.code


def test_service_not_allowed_for_kind_is_refused_at_issue(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, company: Subject
) -> None:
    """Binding a code to a service the kind may not use is ServiceNotAllowed."""
    issuer = make_issuer(
        storage, keyring, clock, services_by_kind={SubjectKind.COMPANY: frozenset({"new_line"})}
    )
    with pytest.raises(ServiceNotAllowed) as caught:
        issuer.issue(company, "stc", service="number_transfer")
    assert "service_not_allowed" == caught.value.code
    assert "new_line" == issuer.issue(company, "stc", service=NEW_LINE).service.id  # type: ignore[union-attr]


def test_government_id_outside_default_scheme_is_invalid(issuer: CodeIssuer) -> None:
    """The default validator accepts only 7-prefixed 10-digit ids for government bodies."""
    body = Subject.government("GOV12345")
    with pytest.raises(InvalidIdentifier) as caught:
        issuer.issue(body, "stc")
    assert "invalid_identifier" == caught.value.code


def test_government_id_rejected_by_custom_validator_is_invalid(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, government: Subject
) -> None:
    """A validator saying no turns even a default-shaped id into InvalidIdentifier."""
    issuer = make_issuer(storage, keyring, clock, government_id_validator=lambda _id: False)
    with pytest.raises(InvalidIdentifier) as caught:
        issuer.issue(government, "stc")
    assert "invalid_identifier" == caught.value.code
    assert [] == list(storage.snapshots())


def test_custom_government_validator_accepts_its_scheme(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock
) -> None:
    """A deployment's own validator lets its scheme through, and the code redeems."""
    issuer = make_issuer(
        storage, keyring, clock, government_id_validator=lambda value: value.startswith("GOV")
    )
    body = Subject.government("GOV12345")
    issued = issuer.issue(body, "mobily")
    assert "new_line" == issuer.redeem(body, "mobily", issued.code, "new_line").service.id
    with pytest.raises(InvalidIdentifier) as caught:
        issuer.issue(Subject.government("7001234567"), "mobily")
    assert "invalid_identifier" == caught.value.code


def test_government_validator_that_raises_is_a_configuration_error(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, government: Subject
) -> None:
    """A validator that blows up is the deployment's mistake: ConfigurationError, cause kept."""

    def broken(_identifier: str) -> bool:
        """A validator whose registry is down."""
        raise KeyError("registry offline")

    issuer = make_issuer(storage, keyring, clock, government_id_validator=broken)
    with pytest.raises(ConfigurationError) as caught:
        issuer.issue(government, "stc")
    assert "configuration_error" == caught.value.code
    assert isinstance(caught.value.__cause__, KeyError)
    assert [] == list(storage.snapshots())


def test_government_validator_is_not_consulted_for_other_kinds(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """Only government bodies go through the government validator."""

    def broken(_identifier: str) -> bool:
        """A validator that must never be consulted."""
        raise AssertionError("must not be called")

    issuer = make_issuer(storage, keyring, clock, government_id_validator=broken)
    assert "stc" == issuer.issue(citizen, "stc").provider.id


def test_identity_typed_in_arabic_indic_digits_is_the_same_subject(
    issuer: CodeIssuer, citizen: Subject
) -> None:
    """A code issued to the ID in Arabic-Indic digits redeems for the same ID in ASCII."""
    issued = issuer.issue(Subject.citizen("١٠٠٠٠٠٠٠٠٨"), "stc")
    assert "new_line" == issuer.redeem(citizen, "stc", issued.code, "new_line").service.id


# --- R2: providers ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", SAUDI_PROVIDERS, ids=lambda provider: provider.id)
def test_each_default_provider_issues_by_id_and_by_object(
    issuer: CodeIssuer, citizen: Subject, provider: Provider
) -> None:
    """Every Saudi operator is known by id and as a Provider object."""
    assert provider == issuer.issue(citizen, provider.id).provider
    assert provider == issuer.issue(citizen, provider).provider


@pytest.mark.parametrize("provider", ["acme", "STC", " stc", "", "ستc"])
def test_unknown_provider_id_is_refused(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, provider: str
) -> None:
    """A provider id outside the registry (case and spaces matter) is UnknownProvider."""
    with pytest.raises(UnknownProvider) as caught:
        issuer.issue(citizen, provider)
    assert "unknown_provider" == caught.value.code
    assert [] == list(storage.snapshots())


def test_provider_object_not_in_registry_is_refused(issuer: CodeIssuer, citizen: Subject) -> None:
    """A Provider object with a registered id but other names is not the registered one."""
    impostor = Provider(id="stc", name_en="Not STC", name_ar="ليست الاتصالات")
    with pytest.raises(UnknownProvider) as caught:
        issuer.issue(citizen, impostor)
    assert "unknown_provider" == caught.value.code


def test_custom_provider_registry_replaces_the_default(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A policy's own provider list is the whole registry."""
    newcomer = Provider(id="newco", name_en="NewCo", name_ar="نيوكو")
    issuer = make_issuer(storage, keyring, clock, providers=(newcomer,))
    assert newcomer == issuer.issue(citizen, "newco").provider
    with pytest.raises(UnknownProvider) as caught:
        issuer.issue(citizen, "stc")
    assert "unknown_provider" == caught.value.code


# --- R3 and R5: validity and services ----------------------------------------------------------


def test_expiry_is_aware_utc(issuer: CodeIssuer, citizen: Subject) -> None:
    """issued_at and expires_at are timezone-aware UTC."""
    issued = issuer.issue(citizen, "stc", service="new_line")
    assert UTC == issued.issued_at.tzinfo
    assert UTC == issued.expires_at.tzinfo
    assert timedelta(0) == issued.expires_at.utcoffset()


def test_clock_in_another_timezone_is_converted_to_utc(
    storage: MemoryStorage, keyring: Keyring, citizen: Subject
) -> None:
    """An aware clock in Riyadh time yields UTC timestamps for the same instant."""
    riyadh = timezone(timedelta(hours=3))
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=riyadh))
    issuer = CodeIssuer(storage, keyring=keyring, clock=clock)
    issued = issuer.issue(citizen, "stc")
    assert datetime(2026, 3, 1, 9, 0, tzinfo=UTC) == issued.issued_at
    assert UTC == issued.issued_at.tzinfo
    assert UTC == issued.expires_at.tzinfo


def test_bound_code_gets_the_service_ttl(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """A code bound to a service with its own TTL expires after that TTL."""
    issuer = make_issuer(
        storage, keyring, clock, ttl_by_service={"number_transfer": timedelta(hours=1)}
    )
    bound = issuer.issue(citizen, "stc", service="number_transfer", recipient=resident)
    other = issuer.issue(citizen, "stc", service="new_line")
    assert clock.now() + timedelta(hours=1) == bound.expires_at
    assert clock.now() + FOUR_HOURS == other.expires_at


def test_unbound_code_lives_for_the_longest_service_ttl(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A longer per-service TTL lengthens the life of an unbound code; a shorter one does not."""
    issuer = make_issuer(
        storage,
        keyring,
        clock,
        ttl_by_service={"new_line": timedelta(hours=6), "number_transfer": timedelta(hours=1)},
    )
    assert clock.now() + timedelta(hours=6) == issuer.issue(citizen, "stc").expires_at


def test_unbound_code_ttl_counts_only_services_the_kind_may_use(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, company: Subject
) -> None:
    """The longest TTL is taken over the kind's own services, not the whole catalogue."""
    issuer = make_issuer(
        storage,
        keyring,
        clock,
        services_by_kind={SubjectKind.COMPANY: frozenset({"new_line"})},
        ttl_by_service={"number_transfer": timedelta(hours=9), "new_line": timedelta(hours=2)},
    )
    assert clock.now() + timedelta(hours=2) == issuer.issue(company, "stc").expires_at


def test_custom_default_ttl(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """The policy's ttl replaces the four hours."""
    issuer = make_issuer(storage, keyring, clock, ttl=timedelta(minutes=30))
    assert clock.now() + timedelta(minutes=30) == issuer.issue(citizen, "stc").expires_at


@pytest.mark.parametrize("service", DEFAULT_SERVICES, ids=lambda service: service.id)
def test_code_can_be_bound_to_each_default_service(
    issuer: CodeIssuer, citizen: Subject, resident: Subject, service: Service
) -> None:
    """Each of the 4 services can be named at issue by object or id (a transfer with recipient)."""
    recipient = resident if service is NUMBER_TRANSFER else None
    assert service == issuer.issue(citizen, "stc", service=service, recipient=recipient).service
    assert service == issuer.issue(citizen, "stc", service=service.id, recipient=recipient).service


@pytest.mark.parametrize("service", ["additional_sim", "number_porting", "sim", "NEW_LINE"])
def test_unknown_service_is_refused_at_issue(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, service: str
) -> None:
    """Services outside the catalogue (including the regulator's extras by default) are unknown."""
    with pytest.raises(UnknownService) as caught:
        issuer.issue(citizen, "stc", service=service)
    assert "unknown_service" == caught.value.code
    assert [] == list(storage.snapshots())


def test_extra_services_work_once_in_the_catalogue(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """ADDITIONAL_SIM and NUMBER_PORTING issue and redeem once added to the catalogue."""
    issuer = make_issuer(
        storage, keyring, clock, services=(*DEFAULT_SERVICES, ADDITIONAL_SIM, NUMBER_PORTING)
    )
    for service in (ADDITIONAL_SIM, NUMBER_PORTING):
        issued = issuer.issue(citizen, "stc", service=service.id)
        assert service == issuer.redeem(citizen, "stc", issued.code, service).service


# --- max_live_codes ----------------------------------------------------------------------------


def test_fourth_live_code_is_refused_with_the_earliest_expiry(
    issuer: CodeIssuer, clock: ManualClock, citizen: Subject
) -> None:
    """Three live codes is the default limit; next_free is when the first of them expires."""
    first = issuer.issue(citizen, "stc")
    clock.advance(minutes=10)
    issuer.issue(citizen, "stc")
    clock.advance(minutes=10)
    issuer.issue(citizen, "stc")
    with pytest.raises(LiveCodeLimitReached) as caught:
        issuer.issue(citizen, "stc")
    assert "live_code_limit" == caught.value.code
    assert first.expires_at == caught.value.details["next_free"]
    assert 3 == caught.value.details["limit"]


def test_live_code_limit_counts_across_providers(issuer: CodeIssuer, citizen: Subject) -> None:
    """The limit is per subject, not per provider."""
    issuer.issue(citizen, "stc")
    issuer.issue(citizen, "mobily")
    issuer.issue(citizen, "zain")
    with pytest.raises(LiveCodeLimitReached) as caught:
        issuer.issue(citizen, "virgin")
    assert "live_code_limit" == caught.value.code


def test_live_code_limit_is_per_subject(
    issuer: CodeIssuer, citizen: Subject, resident: Subject
) -> None:
    """Another subject's codes do not count against this one."""
    for _ in range(3):
        issuer.issue(citizen, "stc")
    assert "stc" == issuer.issue(resident, "stc").provider.id


def test_custom_live_code_limit(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """max_live_codes=1 allows exactly one live code."""
    issuer = make_issuer(storage, keyring, clock, max_live_codes=1)
    only = issuer.issue(citizen, "stc")
    with pytest.raises(LiveCodeLimitReached) as caught:
        issuer.issue(citizen, "stc")
    assert 1 == caught.value.details["limit"]
    assert only.expires_at == caught.value.details["next_free"]


def _fill(issuer: CodeIssuer, subject: Subject) -> list[str]:
    """Issue three codes at stc and check that a fourth is refused; return the codes."""
    codes = [issuer.issue(subject, "stc").code for _ in range(3)]
    with pytest.raises(LiveCodeLimitReached):
        issuer.issue(subject, "stc")
    return codes


def test_redeemed_code_frees_a_slot(issuer: CodeIssuer, citizen: Subject) -> None:
    """Once one of three codes is redeemed, a new code can be issued."""
    codes = _fill(issuer, citizen)
    issuer.redeem(citizen, "stc", codes[1], "new_line")
    assert "stc" == issuer.issue(citizen, "stc").provider.id


def test_revoked_code_frees_a_slot(issuer: CodeIssuer, citizen: Subject) -> None:
    """Once one of three codes is revoked, a new code can be issued."""
    issued = issuer.issue(citizen, "stc")
    _ = [issuer.issue(citizen, "stc") for _ in range(2)]
    with pytest.raises(LiveCodeLimitReached):
        issuer.issue(citizen, "stc")
    assert CodeState.REVOKED == issuer.revoke(citizen, issued.code_id).state
    assert "stc" == issuer.issue(citizen, "stc").provider.id


def test_expired_code_frees_a_slot_exactly_at_expiry(
    issuer: CodeIssuer, clock: ManualClock, citizen: Subject
) -> None:
    """The slot of the earliest code frees at next_free, not a microsecond before."""
    first = issuer.issue(citizen, "stc")
    clock.advance(minutes=1)
    _fill_rest = [issuer.issue(citizen, "stc") for _ in range(2)]
    assert 2 == len(_fill_rest)
    clock.set(first.expires_at - ONE_MICROSECOND)
    with pytest.raises(LiveCodeLimitReached):
        issuer.issue(citizen, "stc")
    clock.set(first.expires_at)
    assert "stc" == issuer.issue(citizen, "stc").provider.id


def test_locked_code_frees_a_slot(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A code locked by wrong guesses no longer counts as live."""
    issuer = make_issuer(storage, keyring, clock, max_live_codes=1, max_failed_attempts=2)
    issued = issuer.issue(citizen, "stc")
    wrong = other_code(issued.code)
    for _ in range(2):
        with pytest.raises(WrongCode):
            issuer.redeem(citizen, "stc", wrong, "new_line")
    assert CodeState.LOCKED == issuer.status(citizen, issued.code_id).state
    assert "stc" == issuer.issue(citizen, "stc").provider.id


# --- the failure budget at issue: recovery codes ----------------------------------------------


def spend_budget(issuer: CodeIssuer, subject: Subject, provider: str) -> None:
    """Spend the budget at ``provider`` with wrong guesses at a new code, each counted."""
    target = issuer.issue(subject, provider)
    for _ in range(issuer.policy.failure_budget):
        with pytest.raises(WrongCode):
            issuer.redeem(subject, provider, other_code(target.code), "new_line")


def test_codes_issued_while_the_budget_is_spent_are_recovery_codes_while_the_allowance_lasts(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """With stc's budget spent, 2 codes there are recovery codes, not the 3rd nor mobily's."""
    sink = CollectingSink()
    policy = Policy(failure_budget=1, max_live_codes=5)
    issuer = CodeIssuer(storage, keyring=keyring, policy=policy, clock=clock, events=[sink])
    spend_budget(issuer, citizen, "stc")
    sink.clear()
    issued = [issuer.issue(citizen, provider) for provider in ("stc", "stc", "stc", "mobily")]
    expected = [True, True, False, False]
    assert expected == [stored_record(storage, code.code_id).recovery for code in issued]
    assert expected == [event.recovery for event in sink.of_type(CodeIssuance)]


def test_recovery_allowance_renews_as_recovery_codes_leave_the_window(
    storage: MemoryStorage, keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A recovery code issued at t uses the allowance until t + failure_window, not at that time."""
    issuer = make_issuer(storage, keyring, clock, failure_budget=2, recovery_codes=1)
    start = clock.now()
    spend_budget(issuer, citizen, "stc")
    clock.set(start + timedelta(hours=1))
    first = issuer.issue(citizen, "stc")
    clock.set(start + timedelta(hours=24))
    spend_budget(issuer, citizen, "stc")
    clock.set(start + timedelta(hours=25) - ONE_MICROSECOND)
    late = issuer.issue(citizen, "stc")
    clock.set(start + timedelta(hours=25))
    renewed = issuer.issue(citizen, "stc")
    flags = [stored_record(storage, code.code_id).recovery for code in (first, late, renewed)]
    assert [True, False, True] == flags


# --- bindings at issue -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msisdn",
    ["0551234567", "551234567", "+966551234567", "00966551234567", "966551234567", "٠٥٥١٢٣٤٥٦٧"],
)
def test_msisdn_binding_accepts_every_form(
    issuer: CodeIssuer, citizen: Subject, msisdn: str
) -> None:
    """A code can be bound to a mobile number given in any accepted form."""
    issued = issuer.issue(citizen, "stc", msisdn=msisdn)
    assert "stc" == issued.provider.id


@pytest.mark.parametrize(
    "msisdn", ["0451234567", "05512345", "+96655123456789", "not a number", "", "٥٥١٢٣٤٥٦٧x"]
)
def test_invalid_msisdn_is_refused_at_issue(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, msisdn: str
) -> None:
    """A mobile number outside the accepted forms is InvalidMsisdn and nothing is stored."""
    with pytest.raises(InvalidMsisdn) as caught:
        issuer.issue(citizen, "stc", msisdn=msisdn)
    assert "invalid_msisdn" == caught.value.code
    assert [] == list(storage.snapshots())


@pytest.mark.parametrize("service", ["number_transfer", NUMBER_TRANSFER])
def test_number_transfer_code_without_recipient_is_invalid(
    issuer: CodeIssuer, storage: MemoryStorage, citizen: Subject, service: object
) -> None:
    """A code for a number transfer must name the person receiving the number; nothing is stored."""
    with pytest.raises(InvalidBinding) as caught:
        issuer.issue(citizen, "stc", service=service)  # type: ignore[arg-type]
    assert "invalid_binding" == caught.value.code
    assert [] == list(storage.snapshots())


def test_recipient_binding_for_number_transfer_is_accepted(
    issuer: CodeIssuer, citizen: Subject, resident: Subject
) -> None:
    """A number-transfer code can name the person receiving the number."""
    issued = issuer.issue(citizen, "stc", service=NUMBER_TRANSFER, recipient=resident)
    assert NUMBER_TRANSFER == issued.service


@pytest.mark.parametrize("service", [None, "new_line", "lost_sim_replacement"])
def test_recipient_without_transfer_service_is_invalid(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    citizen: Subject,
    resident: Subject,
    service: str | None,
) -> None:
    """A recipient needs a code bound to a number transfer."""
    with pytest.raises(InvalidBinding) as caught:
        issuer.issue(citizen, "stc", service=service, recipient=resident)
    assert "invalid_binding" == caught.value.code
    assert [] == list(storage.snapshots())


def test_recipient_equal_to_subject_is_invalid(issuer: CodeIssuer, citizen: Subject) -> None:
    """Nobody transfers a number to themselves, however the ID is typed."""
    for same in (citizen, Subject.citizen("١٠٠٠ ٠٠٠ ٠٠٨")):
        with pytest.raises(InvalidBinding) as caught:
            issuer.issue(citizen, "stc", service="number_transfer", recipient=same)
        assert "invalid_binding" == caught.value.code


def test_transfer_services_knob_allows_recipient_for_other_services(
    storage: MemoryStorage,
    keyring: Keyring,
    clock: ManualClock,
    citizen: Subject,
    resident: Subject,
) -> None:
    """transfer_services decides which services may, and must, name a recipient."""
    issuer = make_issuer(storage, keyring, clock, transfer_services=frozenset({"new_line"}))
    with pytest.raises(InvalidBinding):
        issuer.issue(citizen, "stc", service="new_line")
    issued = issuer.issue(citizen, "stc", service="new_line", recipient=resident)
    assert (
        "new_line"
        == issuer.redeem(citizen, "stc", issued.code, "new_line", recipient=resident).service.id
    )
    with pytest.raises(InvalidBinding):
        issuer.issue(citizen, "stc", service="number_transfer", recipient=resident)


# --- the shell: clock and storage ----------------------------------------------------------------


class NaiveClock:
    """A clock that forgets the timezone."""

    def now(self) -> datetime:
        """A naive datetime."""
        return datetime(2026, 3, 1, 9, 0)


class NotATimeClock:
    """A clock that returns something that is not a datetime."""

    def now(self) -> datetime:
        """A string instead of a datetime."""
        return "2026-03-01T09:00:00+00:00"  # type: ignore[return-value]


@pytest.mark.parametrize("bad_clock", [NaiveClock(), NotATimeClock()], ids=["naive", "str"])
def test_clock_without_aware_datetime_is_invalid_time(
    storage: MemoryStorage, keyring: Keyring, citizen: Subject, bad_clock: object
) -> None:
    """The issuer refuses a naive or non-datetime 'now' with InvalidTime and stores nothing."""
    issuer = CodeIssuer(storage, keyring=keyring, clock=bad_clock)  # type: ignore[call-overload]
    with pytest.raises(InvalidTime) as caught:
        issuer.issue(citizen, "stc")
    assert "invalid_time" == caught.value.code
    assert [] == list(storage.snapshots())


class ExplodingStorage:
    """A hand-written backend that lets a driver error escape from ``operation``."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.inner = MemoryStorage()

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Fail if told to, else delegate."""
        if self.operation == "load":
            raise RuntimeError("connection reset")
        return self.inner.load(subject_ref)

    def commit(self, change: Commit) -> bool:
        """Fail if told to, else delegate."""
        if self.operation == "commit":
            raise RuntimeError("connection reset")
        return self.inner.commit(change)

    def purge(self, now: datetime, limit: int) -> int:
        """Fail if told to, else delegate."""
        if self.operation == "purge":
            raise RuntimeError("connection reset")
        return self.inner.purge(now, limit)


def test_storage_driver_error_in_purge_surfaces_as_storage_error(
    keyring: Keyring, clock: ManualClock
) -> None:
    """A plain exception from a backend's purge becomes StorageError with the cause chained."""
    issuer = CodeIssuer(ExplodingStorage("purge"), keyring=keyring, clock=clock)
    with pytest.raises(StorageError) as caught:
        issuer.purge()
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize("operation", ["load", "commit"])
def test_storage_driver_error_surfaces_as_storage_error(
    keyring: Keyring, clock: ManualClock, citizen: Subject, operation: str
) -> None:
    """A plain exception from a backend becomes StorageError with the original as __cause__."""
    backend = ExplodingStorage(operation)
    issuer = CodeIssuer(backend, keyring=keyring, clock=clock)
    with pytest.raises(StorageError) as caught:
        issuer.issue(citizen, "stc")
    assert "storage_error" == caught.value.code
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert [] == list(backend.inner.snapshots())


class NeverCommits(MemoryStorage):
    """A backend that always loses the compare-and-set."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def commit(self, change: Commit) -> bool:
        """Count the attempt and refuse it."""
        self.attempts += 1
        return False


def test_endless_contention_ends_in_storage_contention(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A commit that never lands gives up with StorageContention after a bounded number of tries."""
    backend = NeverCommits()
    issuer = CodeIssuer(backend, keyring=keyring, clock=clock)
    with pytest.raises(StorageContention) as caught:
        issuer.issue(citizen, "stc")
    assert "storage_contention" == caught.value.code
    assert 1 < backend.attempts <= 1000
    assert [] == list(backend.snapshots())


@pytest.mark.parametrize(
    "build",
    [
        lambda keyring, clock: CodeIssuer(object(), keyring=keyring, clock=clock),  # type: ignore[call-overload]
        lambda keyring, clock: CodeIssuer(MemoryStorage(), keyring="secret", clock=clock),  # type: ignore[call-overload]
        lambda keyring, clock: CodeIssuer(MemoryStorage(), keyring=keyring, policy={}, clock=clock),  # type: ignore[call-overload]
        lambda keyring, clock: CodeIssuer(MemoryStorage(), keyring=keyring, clock=object()),  # type: ignore[call-overload]
        lambda keyring, clock: CodeIssuer(MemoryStorage(), keyring=keyring, signer=keyring),
        lambda keyring, clock: CodeIssuer(MemoryStorage(), keyring=keyring, events=[print]),  # type: ignore[list-item]
        lambda keyring, clock: CodeIssuer(MemoryStorage(), keyring=keyring, events=object()),  # type: ignore[call-overload]
    ],
    ids=["storage", "keyring", "policy", "clock", "signer", "events", "events-type"],
)
def test_issuer_refuses_wrong_parts(
    keyring: Keyring, clock: ManualClock, build: Callable[[Keyring, ManualClock], CodeIssuer]
) -> None:
    """Building an issuer from parts of the wrong type is a ConfigurationError."""
    with pytest.raises(ConfigurationError) as caught:
        build(keyring, clock)
    assert "configuration_error" == caught.value.code


# --- bad input never escapes as anything else, never changes storage ------------------------------

ISSUE_JUNK: list[object] = [
    *JUNK,
    7000000001,
    -1.5,
    False,
    b"1000000008",
    {"id": "1000000008"},
    ["stc"],
    frozenset({"stc"}),
    "y" * 100_000,
    "٥" * 100_000,
    "\x00",
]

EXPECTED_FOR_JUNK = {
    "subject": "invalid_input",
    "provider": "unknown_provider",
    "service": "unknown_service",
    "msisdn": "invalid_msisdn",
    "recipient": "invalid_binding",
}

# None means "no service", "no mobile number" and "no recipient": no junk for those three.
JUNK_CASES = junk_cases(EXPECTED_FOR_JUNK, ISSUE_JUNK, optional={"service", "msisdn", "recipient"})


@pytest.mark.parametrize(("argument", "junk"), JUNK_CASES)
def test_junk_argument_to_issue_is_a_library_error(
    issuer: CodeIssuer,
    storage: MemoryStorage,
    subjects: tuple[Subject, ...],
    argument: str,
    junk: object,
) -> None:
    """Any junk in any argument raises a TelecardAuthError and leaves storage untouched."""
    citizen, resident = subjects[:2]
    issuer.issue(citizen, "stc")
    arguments: dict[str, Any] = {
        "subject": citizen,
        "provider": "stc",
        "service": "number_transfer",
        "msisdn": "0551234567",
        "recipient": resident,
    }
    arguments[argument] = junk
    before = tuple(storage.snapshots())
    with pytest.raises(TelecardAuthError) as caught:
        issuer.issue(**arguments)
    assert EXPECTED_FOR_JUNK[argument] == caught.value.code
    assert before == tuple(storage.snapshots())


def test_subject_given_as_id_string_is_invalid_input(
    issuer: CodeIssuer, storage: MemoryStorage
) -> None:
    """The subject must be a Subject, not the ID it was built from."""
    with pytest.raises(TelecardAuthError) as caught:
        issuer.issue("1000000008", "stc")  # type: ignore[arg-type]
    assert "invalid_input" == caught.value.code
    assert [] == list(storage.snapshots())


class BrokenClock:
    """A clock whose source of time fails."""

    def now(self) -> datetime:
        """Fail as a remote time source might."""
        raise OSError("time source unreachable")


def test_clock_that_raises_is_a_configuration_error(
    storage: MemoryStorage, keyring: Keyring, citizen: Subject
) -> None:
    """A failing clock surfaces as ConfigurationError with the cause chained, storing nothing."""
    issuer = CodeIssuer(storage, keyring=keyring, clock=BrokenClock())
    with pytest.raises(ConfigurationError) as caught:
        issuer.issue(citizen, "stc")
    assert isinstance(caught.value.__cause__, OSError)
    assert [] == list(storage.snapshots())


class ForeignSnapshotStorage(MemoryStorage):
    """A backend whose load answers with another subject's snapshot."""

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """The snapshot of somebody else."""
        return super().load("someone-else")


def test_storage_answering_for_another_subject_is_a_storage_error(
    keyring: Keyring, clock: ManualClock, citizen: Subject
) -> None:
    """A load that returns a snapshot of another subject is refused, never decided on."""
    backend = ForeignSnapshotStorage()
    issuer = CodeIssuer(backend, keyring=keyring, clock=clock)
    with pytest.raises(StorageError):
        issuer.issue(citizen, "stc")
    assert [] == list(backend.snapshots())


def test_recipient_identifier_is_checked_by_the_policy(
    issuer: CodeIssuer, citizen: Subject
) -> None:
    """A government recipient whose identifier the policy does not recognise is refused."""
    with pytest.raises(InvalidIdentifier):
        issuer.issue(citizen, "stc", service=NUMBER_TRANSFER, recipient=Subject.government("GOV1"))
