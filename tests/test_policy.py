"""Tests for the code format and the policy: every knob's validation and every lookup."""

from __future__ import annotations

import contextlib
import string
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.helpers import FOUR_HOURS, K1_SECRET, ONE_MICROSECOND, PSEUDONYM_SECRET, START
from tests.strategies import (
    ACCEPTED_SEPARATORS,
    code_formats,
    codes_for,
    company_numbers,
    human_renderings,
    junk_text,
    non_str_values,
    provider_ids,
    service_ids,
    subject_kinds,
)

from telecard_auth import (
    ADDITIONAL_SIM,
    DEFAULT_SERVICES,
    NEW_LINE,
    NUMBER_TRANSFER,
    SAUDI_PROVIDERS,
    CodeFormat,
    CodeIssuer,
    FailureBudgetExhausted,
    HmacKey,
    InvalidPolicy,
    Keyring,
    LiveCodeLimitReached,
    MalformedCode,
    ManualClock,
    MemoryStorage,
    Policy,
    Provider,
    Service,
    Subject,
    SubjectKind,
    UnknownProvider,
    UnknownService,
    WrongCode,
    default_government_id_validator,
)
from telecard_auth._core.policy import GuessRisk

#: Crockford's base-32 alphabet: digits and upper-case letters without I, L, O, U.
BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# --- CodeFormat: shape and strength --------------------------------------------------------------


def test_default_code_format() -> None:
    """The default is 8 decimal digits: 10^8 codes, about 26.6 bits."""
    code_format = CodeFormat()
    assert (8, "0123456789") == (code_format.length, code_format.alphabet)
    assert 26.6 == code_format.bits
    assert 10**8 == code_format.combinations
    assert CodeFormat.MIN_COMBINATIONS == code_format.combinations


@pytest.mark.parametrize("length", [6, 7])
def test_short_decimal_formats_are_refused(length: int) -> None:
    """6 and 7 decimal digits are too few codes to stay unguessable."""
    with pytest.raises(InvalidPolicy) as excinfo:
        CodeFormat(length=length)
    assert "invalid_policy" == excinfo.value.code
    assert f"give only {10**length} codes" in excinfo.value.details["reason"]


@pytest.mark.parametrize("length", [6, 7])
def test_short_format_message_names_the_number_of_codes(length: int) -> None:
    """The message people read explains the refusal: how many codes, and how many are needed."""
    with pytest.raises(InvalidPolicy) as excinfo:
        CodeFormat(length=length)
    message = str(excinfo.value)
    assert f"{10**length} codes" in message
    assert str(CodeFormat.MIN_COMBINATIONS) in message


def test_six_character_base32_is_accepted() -> None:
    """6 characters of base 32 give 2^30 codes (30 bits), above the floor."""
    code_format = CodeFormat(length=6, alphabet=BASE32)
    assert 2**30 == code_format.combinations
    assert 30.0 == code_format.bits


@pytest.mark.parametrize(
    ("alphabet", "shortest"),
    [("01", 27), ("0123456789", 8), (BASE32, 6), (string.ascii_letters + string.digits, 5)],
)
def test_strength_floor_boundary(alphabet: str, shortest: int) -> None:
    """The shortest length reaching 10^8 codes is accepted; one character less is refused."""
    assert shortest == CodeFormat(length=shortest, alphabet=alphabet).length
    with pytest.raises(InvalidPolicy):
        CodeFormat(length=shortest - 1, alphabet=alphabet)


@pytest.mark.parametrize(
    "alphabet",
    [
        "",
        "0",
        "00123456789",
        "0123456789" + "9",
        "٠١٢٣٤٥٦٧٨٩",
        "0123456789é",
        "0123456789-",
        "-0123456789",
        "0123456789 ",
        "01234 56789",
        "0123456789\t",
        "0123456789\x00",
        None,
        b"0123456789",
        list("0123456789"),
    ],
)
def test_bad_alphabets_are_refused(alphabet: object) -> None:
    """Alphabets must be 2+ distinct printable ASCII characters without '-' or ' '."""
    with pytest.raises(InvalidPolicy) as excinfo:
        CodeFormat(length=12, alphabet=alphabet)  # type: ignore[arg-type]
    assert "invalid_policy" == excinfo.value.code


@pytest.mark.parametrize("length", [0, -1, -8, True, False, 33, 100, "8", 8.0, None])
def test_bad_lengths_are_refused(length: object) -> None:
    """Length is a whole number from 1 to 32; bools, floats and strings are refused."""
    with pytest.raises(InvalidPolicy) as excinfo:
        CodeFormat(length=length, alphabet=BASE32)  # type: ignore[arg-type]
    assert "invalid_policy" == excinfo.value.code


def test_longest_length_is_accepted() -> None:
    """32 characters is the longest code."""
    assert 32 == CodeFormat(length=32).length


# --- CodeFormat: generate and normalize ----------------------------------------------------------


@given(code_formats())
def test_generated_codes_fit_their_format(code_format: CodeFormat) -> None:
    """generate() gives codes of the right length from the alphabet that normalize() accepts."""
    for _ in range(10):
        code = code_format.generate()
        assert code_format.length == len(code)
        assert set(code) <= set(code_format.alphabet)
        assert code == code_format.normalize(code)


def test_default_codes_use_every_digit_in_every_position() -> None:
    """Over many draws, each of the 10 digits turns up in each of the 8 positions."""
    code_format = CodeFormat()
    seen = [Counter[str]() for _ in range(8)]
    for _ in range(2000):
        for position, char in enumerate(code_format.generate()):
            seen[position][char] += 1
    assert [set("0123456789")] * 8 == [set(counter) for counter in seen]


def test_base32_codes_use_every_character() -> None:
    """Over many draws, every character of a base-32 alphabet turns up."""
    code_format = CodeFormat(length=6, alphabet=BASE32)
    chars = set("".join(code_format.generate() for _ in range(500)))
    assert set(BASE32) == chars


@given(code_formats().flatmap(lambda fmt: st.tuples(st.just(fmt), codes_for(fmt))))
def test_normalize_accepts_any_code_of_the_format(pair: tuple[CodeFormat, str]) -> None:
    """Every string of the right length from the alphabet is a code of the format."""
    code_format, code = pair
    assert code == code_format.normalize(code)


@given(
    st.text(alphabet="0123456789", min_size=8, max_size=8).flatmap(
        lambda code: st.tuples(st.just(code), human_renderings(code))
    )
)
def test_normalize_folds_what_people_type(pair: tuple[str, str]) -> None:
    """Arabic-Indic digits and separators in a typed code are folded to the canonical code."""
    code, typed = pair
    assert code == CodeFormat().normalize(typed)


@pytest.mark.parametrize(
    "typed",
    ["١٢٣٤٥٦٧٨", "۱۲۳۴۵۶۷۸", "١٢٣٤ ٥٦٧٨", "1234-5678", "\u200f1234 5678\u200e", "12٣4۵678"],
)
def test_normalize_examples(typed: str) -> None:
    """The documented forms of the code 12345678 are accepted."""
    assert "12345678" == CodeFormat().normalize(typed)


@pytest.mark.parametrize("separator", ACCEPTED_SEPARATORS)
def test_normalize_strips_each_separator(separator: str) -> None:
    """Every accepted separator may split a code."""
    assert "12345678" == CodeFormat().normalize(f"1234{separator}5678")


def test_normalize_uppercases_for_an_uppercase_alphabet() -> None:
    """A single-case alphabet forgives the other case."""
    code_format = CodeFormat(length=6, alphabet=BASE32)
    assert "ABCDEF" == code_format.normalize("abcdef")
    assert "A1B2C3" == code_format.normalize("a1b-2c3")


def test_normalize_lowercases_for_a_lowercase_alphabet() -> None:
    """An all-lowercase alphabet forgives upper case too."""
    code_format = CodeFormat(length=6, alphabet=BASE32.lower())
    assert "abcdef" == code_format.normalize("ABCDEF")


def test_normalize_keeps_case_for_a_mixed_case_alphabet() -> None:
    """A mixed-case alphabet is case-sensitive: both cases are distinct codes."""
    code_format = CodeFormat(length=5, alphabet=string.ascii_letters)
    assert ("ABCDE", "abcde") == (code_format.normalize("ABCDE"), code_format.normalize("abcde"))


@pytest.mark.parametrize(
    ("alphabet", "typed"),
    [
        (string.ascii_uppercase, "\ufb00abcd"),  # 'ﬀ'.upper() is 'FF'
        (string.ascii_uppercase, "stra\u00dfe"),  # 'ß'.upper() is 'SS'
        (string.ascii_lowercase, "\u212aabcde"),  # Kelvin sign .lower() is 'k'
        (string.ascii_lowercase, "\u0130abcde"),  # 'İ'.lower() is 'i̇'
    ],
)
def test_normalize_case_folding_stays_ascii(alphabet: str, typed: str) -> None:
    """Case folding never turns a non-ASCII character into alphabet characters."""
    code_format = CodeFormat(length=6, alphabet=alphabet)
    with pytest.raises(MalformedCode):
        code_format.normalize(typed)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "1234567",
        "123456789",
        "1234567a",
        "12345678".ljust(65),
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",  # fullwidth
        "\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e",  # Devanagari
        "1234567\u00b2",
        "1234_5678",
        "+12345678",
        "12345678\x00",
        "12345678\n",
        "1234\u200b5678",
        "1234.5678",
    ],
)
def test_normalize_refuses(typed: str) -> None:
    """Wrong lengths, foreign characters and junk are MalformedCode."""
    with pytest.raises(MalformedCode) as excinfo:
        CodeFormat().normalize(typed)
    error = excinfo.value
    assert "malformed_code" == error.code
    assert {"length": 8, "alphabet": "0123456789"} == dict(error.details)


@pytest.mark.parametrize("value", [12345678, None, b"12345678", 1.2345678e7, ["12345678"]])
def test_normalize_refuses_non_str(value: object) -> None:
    """Ints, None, bytes and floats are MalformedCode, never converted."""
    with pytest.raises(MalformedCode) as excinfo:
        CodeFormat().normalize(value)
    assert "malformed_code" == excinfo.value.code


@given(st.one_of(junk_text(), non_str_values()))
def test_normalize_refuses_junk(value: object) -> None:
    """Junk text and non-strings never pass as a code."""
    with pytest.raises(MalformedCode):
        CodeFormat().normalize(value)


@given(code_formats())
def test_normalize_refuses_wrong_length(code_format: CodeFormat) -> None:
    """One character too few or too many is refused for any format."""
    code = code_format.generate()
    for typed in (code[:-1], code + code[0]):
        with pytest.raises(MalformedCode):
            code_format.normalize(typed)


# --- Policy: defaults ----------------------------------------------------------------------------


def test_policy_defaults_follow_the_regulator() -> None:
    """The default policy: 8 operators, 4 services, all kinds, 4 hours, 5/10/24h/3 limits,
    2 recovery codes of 2 attempts each."""
    policy = Policy()
    assert SAUDI_PROVIDERS == policy.providers
    assert DEFAULT_SERVICES == policy.services
    assert frozenset(SubjectKind) == policy.eligible_kinds
    assert policy.services_by_kind is None
    assert FOUR_HOURS == policy.ttl
    assert {} == dict(policy.ttl_by_service)
    assert CodeFormat() == policy.code_format
    assert (5, 10, timedelta(hours=24), 3) == (
        policy.max_failed_attempts,
        policy.failure_budget,
        policy.failure_window,
        policy.max_live_codes,
    )
    assert (2, 2) == (policy.recovery_codes, policy.recovery_attempts)
    assert frozenset({"number_transfer"}) == policy.transfer_services
    assert default_government_id_validator is policy.government_id_validator


def test_policy_is_frozen() -> None:
    """A policy cannot be changed after it is built."""
    policy = Policy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.ttl = timedelta(hours=8)  # type: ignore[misc]


def test_policy_copies_its_mappings() -> None:
    """Changing the dict a policy was built from does not change the policy."""
    overrides = {"new_line": timedelta(hours=1)}
    policy = Policy(ttl_by_service=overrides)
    overrides["new_line"] = timedelta(hours=9)
    assert timedelta(hours=1) == policy.ttl_for("new_line")
    with pytest.raises(TypeError):
        policy.ttl_by_service["new_line"] = timedelta(hours=9)  # type: ignore[index]


def test_policy_accepts_any_iterables() -> None:
    """Lists, generators and sets are converted to tuples and frozensets."""
    policy = Policy(
        providers=[SAUDI_PROVIDERS[0]],
        services=(service for service in DEFAULT_SERVICES),
        eligible_kinds={SubjectKind.CITIZEN},
        transfer_services=["number_transfer"],
    )
    assert (SAUDI_PROVIDERS[0],) == policy.providers
    assert DEFAULT_SERVICES == policy.services
    assert frozenset({SubjectKind.CITIZEN}) == policy.eligible_kinds
    assert frozenset({"number_transfer"}) == policy.transfer_services


# --- Policy: validation --------------------------------------------------------------------------

_FOREIGN_STC = Provider(id="stc", name_en="Not STC", name_ar="ليست الاتصالات")

_BAD_SETTINGS: list[tuple[str, Any]] = [
    ("ttl", timedelta(0)),
    ("ttl", timedelta(seconds=-1)),
    ("ttl", 14400),
    ("ttl", "4h"),
    ("ttl", None),
    ("failure_window", timedelta(0)),
    ("failure_window", 86400),
    ("max_failed_attempts", 0),
    ("max_failed_attempts", -1),
    ("max_failed_attempts", True),
    ("max_failed_attempts", 1.5),
    ("max_failed_attempts", "5"),
    ("failure_budget", 0),
    ("failure_budget", True),
    ("max_live_codes", 0),
    ("max_live_codes", False),
    ("recovery_codes", -1),
    ("recovery_codes", True),
    ("recovery_codes", False),
    ("recovery_codes", 1.0),
    ("recovery_codes", "2"),
    ("recovery_codes", None),
    ("recovery_codes", 10**9 + 1),
    ("recovery_attempts", 0),
    ("recovery_attempts", -1),
    ("recovery_attempts", True),
    ("recovery_attempts", 2.0),
    ("recovery_attempts", "2"),
    ("recovery_attempts", None),
    ("recovery_attempts", 6),
    ("ttl_by_service", {"no_such_service": timedelta(hours=1)}),
    ("ttl_by_service", {"new_line": timedelta(0)}),
    ("ttl_by_service", {"new_line": 3600}),
    ("ttl_by_service", {1: timedelta(hours=1)}),
    ("ttl_by_service", [("new_line", timedelta(hours=1))]),
    ("ttl_by_service", None),
    ("services_by_kind", {SubjectKind.CITIZEN: {"no_such_service"}}),
    ("services_by_kind", {"citizen": {"new_line"}}),
    ("services_by_kind", {SubjectKind.CITIZEN: "new_line"}),
    ("services_by_kind", {SubjectKind.CITIZEN: {1}}),
    ("services_by_kind", [(SubjectKind.CITIZEN, {"new_line"})]),
    ("transfer_services", {"no_such_service"}),
    ("transfer_services", "number_transfer"),
    ("transfer_services", {1}),
    ("transfer_services", None),
    ("providers", ()),
    ("providers", []),
    ("providers", None),
    ("providers", "stc"),
    ("providers", ("stc", "zain")),
    ("providers", SAUDI_PROVIDERS[0]),
    ("providers", (SAUDI_PROVIDERS[0], SAUDI_PROVIDERS[0])),
    ("providers", (SAUDI_PROVIDERS[0], _FOREIGN_STC)),
    ("providers", (SAUDI_PROVIDERS[0], NEW_LINE)),
    ("services", ()),
    ("services", "new_line"),
    ("services", (NEW_LINE, NEW_LINE)),
    ("services", (NEW_LINE, SAUDI_PROVIDERS[0])),
    ("eligible_kinds", frozenset()),
    ("eligible_kinds", ()),
    ("eligible_kinds", "citizen"),
    ("eligible_kinds", {"citizen"}),
    ("eligible_kinds", None),
    ("eligible_kinds", SubjectKind.CITIZEN),
    ("government_id_validator", None),
    ("government_id_validator", "7[0-9]{9}"),
    ("government_id_validator", True),
    ("code_format", None),
    ("code_format", 8),
    ("code_format", "0123456789"),
]


@pytest.mark.parametrize(("setting", "value"), _BAD_SETTINGS)
def test_bad_settings_are_refused(setting: str, value: Any) -> None:
    """Every knob refuses values out of range, of the wrong type, or naming unknown services."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(**{setting: value})
    assert "invalid_policy" == excinfo.value.code


def test_unknown_service_ids_are_named() -> None:
    """The refusal names the service ids the catalogue does not hold."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(transfer_services={"gift"})
    assert "unknown service ids: gift" == excinfo.value.details["reason"]


def test_overrides_must_name_services_of_this_catalogue() -> None:
    """A per-service ttl for a service removed from the catalogue is refused."""
    with pytest.raises(InvalidPolicy):
        Policy(
            services=(NEW_LINE,),
            transfer_services=(),
            ttl_by_service={"number_transfer": FOUR_HOURS},
        )


def test_extra_services_can_be_configured() -> None:
    """A catalogue with the regulator's extra services accepts overrides for them."""
    policy = Policy(
        services=(*DEFAULT_SERVICES, ADDITIONAL_SIM),
        ttl_by_service={"additional_sim": timedelta(hours=2)},
    )
    assert ADDITIONAL_SIM is policy.service("additional_sim")
    assert timedelta(hours=2) == policy.ttl_for("additional_sim")


@pytest.mark.parametrize(
    "setting", ["max_failed_attempts", "failure_budget", "max_live_codes", "recovery_attempts"]
)
def test_one_is_the_smallest_count(setting: str) -> None:
    """1 is a valid count for every limit."""
    settings: dict[str, Any] = {setting: 1, "recovery_attempts": 1}
    assert 1 == getattr(Policy(**settings), setting)


# --- Policy: recovery codes ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 23])
def test_recovery_codes_take_zero_and_up(count: int) -> None:
    """Any whole number of recovery codes from 0 (recovery off) is taken as given."""
    assert count == Policy(recovery_codes=count).recovery_codes


def test_recovery_codes_reach_a_billion() -> None:
    """10^9 recovery codes is the largest count, accepted with its (huge) guess risk."""
    policy = Policy(recovery_codes=10**9, accept_guess_risk=True)
    assert 10**9 == policy.recovery_codes
    with pytest.raises(InvalidPolicy, match=r"recovery_codes must be a whole number from 0 to"):
        Policy(recovery_codes=10**9 + 1, accept_guess_risk=True)


@pytest.mark.parametrize("attempts", [1, 2, 3, 5])
def test_recovery_attempts_run_from_one_to_max_failed_attempts(attempts: int) -> None:
    """A recovery code may allow from 1 attempt up to as many as an ordinary code."""
    assert attempts == Policy(recovery_attempts=attempts).recovery_attempts


def test_recovery_attempts_follow_a_larger_max_failed_attempts() -> None:
    """The ceiling is max_failed_attempts: raise that and recovery codes may allow as many."""
    policy = Policy(max_failed_attempts=10**9, recovery_attempts=10**9, accept_guess_risk=True)
    assert (10**9, 10**9) == (policy.max_failed_attempts, policy.recovery_attempts)


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"recovery_attempts": 6}, "recovery_attempts cannot exceed max_failed_attempts"),
        (
            {"max_failed_attempts": 3, "recovery_attempts": 4},
            "recovery_attempts cannot exceed max_failed_attempts",
        ),
        (
            {"max_failed_attempts": 1, "recovery_attempts": 2},
            "recovery_attempts cannot exceed max_failed_attempts",
        ),
        ({"recovery_codes": -1}, "recovery_codes must be a whole number from 0 to 10^9"),
        ({"recovery_codes": True}, "recovery_codes must be a whole number from 0 to 10^9"),
        ({"recovery_codes": 10**9 + 1}, "recovery_codes must be a whole number from 0 to 10^9"),
    ],
)
def test_recovery_refusals_say_why(settings: dict[str, Any], reason: str) -> None:
    """Each refused recovery setting is InvalidPolicy naming the setting and its range, even
    with accept_guess_risk (it accepts a risk, not a malformed policy)."""
    for accept in (False, True):
        with pytest.raises(InvalidPolicy) as excinfo:
            Policy(**settings, accept_guess_risk=accept)
        assert reason == excinfo.value.details["reason"]


@pytest.mark.parametrize("value", [True, False, -1, 0, 10**9 + 1, 1.0, "1", None])
def test_recovery_attempts_refuse_what_is_not_a_count(value: object) -> None:
    """recovery_attempts is a whole number of at least 1: bools, zero, negatives, floats,
    text, None and counts past 10^9 are refused, whatever max_failed_attempts allows."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(max_failed_attempts=10**9, recovery_attempts=value, accept_guess_risk=True)  # type: ignore[arg-type]
    assert "invalid_policy" == excinfo.value.code
    assert "recovery_attempts" in excinfo.value.details["reason"]


def test_lowering_max_failed_attempts_below_recovery_attempts_is_refused() -> None:
    """Evolving a policy so that a recovery code would allow more attempts than any code is
    refused, as building it would be."""
    with pytest.raises(InvalidPolicy, match="recovery_attempts cannot exceed"):
        attrs.evolve(Policy(), max_failed_attempts=1)
    assert 1 == attrs.evolve(Policy(), max_failed_attempts=1, recovery_attempts=1).recovery_attempts


# --- Policy: lookups -----------------------------------------------------------------------------


@given(provider_ids())
def test_provider_lookup_by_id_and_object(provider_id: str) -> None:
    """A provider is found by its id and by the registered object itself."""
    policy = Policy()
    found = policy.provider(provider_id)
    assert provider_id == found.id
    assert found is policy.provider(found)


@pytest.mark.parametrize("value", ["etisalat", "STC", " stc", "stc ", "", _FOREIGN_STC])
def test_unknown_provider(value: object) -> None:
    """Unknown ids, other spellings and a look-alike Provider object are UnknownProvider."""
    with pytest.raises(UnknownProvider) as excinfo:
        Policy().provider(value)
    assert "unknown_provider" == excinfo.value.code


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "NoneType"), (5, "int"), (b"stc", "bytes"), (NEW_LINE, "Service")]
)
def test_provider_lookup_of_non_str(value: object, shown: str) -> None:
    """Values that are neither ids nor Providers are UnknownProvider, which repeats none."""
    with pytest.raises(UnknownProvider) as excinfo:
        Policy().provider(value)
    assert {} == dict(excinfo.value.details)
    assert shown not in excinfo.value.message_en


def test_provider_outside_a_narrow_registry_is_unknown() -> None:
    """A policy with only STC does not know Zain, by id or by object."""
    policy = Policy(providers=(SAUDI_PROVIDERS[0],))
    for value in ("zain", SAUDI_PROVIDERS[2]):
        with pytest.raises(UnknownProvider):
            policy.provider(value)


@given(service_ids())
def test_service_lookup_by_id_and_object(service_id: str) -> None:
    """A service is found by its id and by the catalogued object itself."""
    policy = Policy()
    found = policy.service(service_id)
    assert service_id == found.id
    assert found is policy.service(found)


@pytest.mark.parametrize(
    "value",
    [
        "additional_sim",  # exists, but not in the default catalogue
        "New_Line",
        "",
        None,
        5,
        Service(id="new_line", name_en="Something else", name_ar="شيء آخر"),
        SAUDI_PROVIDERS[0],
    ],
)
def test_unknown_service(value: object) -> None:
    """Ids outside the catalogue, look-alike Service objects and non-ids are UnknownService."""
    with pytest.raises(UnknownService) as excinfo:
        Policy().service(value)
    assert "unknown_service" == excinfo.value.code


# --- Policy: ttl and services per kind -----------------------------------------------------------


def test_ttl_for_defaults_and_overrides() -> None:
    """ttl_for gives the override where there is one and the default ttl elsewhere."""
    policy = Policy(ttl_by_service={"number_transfer": timedelta(hours=1)})
    assert timedelta(hours=1) == policy.ttl_for("number_transfer")
    assert FOUR_HOURS == policy.ttl_for("new_line")
    assert FOUR_HOURS == policy.ttl_for(None)


@given(subject_kinds())
def test_longest_ttl_default(kind: SubjectKind) -> None:
    """Without overrides every kind's longest validity is the 4-hour ttl."""
    assert FOUR_HOURS == Policy().longest_ttl(kind)


@given(subject_kinds())
def test_longest_ttl_with_a_longer_override(kind: SubjectKind) -> None:
    """A per-service ttl longer than the default is the longest for kinds allowed that service."""
    policy = Policy(ttl_by_service={"new_line": timedelta(hours=6)})
    assert timedelta(hours=6) == policy.longest_ttl(kind)


@given(subject_kinds())
def test_longest_ttl_ignores_a_shorter_override(kind: SubjectKind) -> None:
    """A shorter per-service ttl does not shorten the longest validity."""
    policy = Policy(ttl_by_service={"number_transfer": timedelta(hours=1)})
    assert FOUR_HOURS == policy.longest_ttl(kind)


def test_longest_ttl_follows_services_by_kind() -> None:
    """A kind restricted to some services gets the longest ttl among those services only."""
    policy = Policy(
        ttl=timedelta(hours=4),
        ttl_by_service={"number_transfer": timedelta(hours=1), "new_line": timedelta(hours=8)},
        services_by_kind={
            SubjectKind.CITIZEN: {"new_line", "number_transfer"},
            SubjectKind.COMPANY: {"number_transfer"},
            SubjectKind.RESIDENT: {"lost_sim_replacement"},
        },
    )
    assert timedelta(hours=8) == policy.longest_ttl(SubjectKind.CITIZEN)
    assert timedelta(hours=1) == policy.longest_ttl(SubjectKind.COMPANY)
    assert timedelta(hours=4) == policy.longest_ttl(SubjectKind.RESIDENT)
    # A kind left out gets no services; an unbound code for it lives the default ttl.
    assert timedelta(hours=4) == policy.longest_ttl(SubjectKind.GOVERNMENT)


@given(subject_kinds())
def test_services_for_default(kind: SubjectKind) -> None:
    """Without services_by_kind every kind may use every catalogued service."""
    assert frozenset(service.id for service in DEFAULT_SERVICES) == Policy().services_for(kind)


def test_services_for_restricted() -> None:
    """services_by_kind gives each listed kind its set and leaves out kinds it does not list."""
    policy = Policy(
        services_by_kind={
            SubjectKind.CITIZEN: {"new_line", "number_transfer"},
            SubjectKind.COMPANY: frozenset({"new_line"}),
        }
    )
    assert frozenset({"new_line", "number_transfer"}) == policy.services_for(SubjectKind.CITIZEN)
    assert frozenset({"new_line"}) == policy.services_for(SubjectKind.COMPANY)
    assert frozenset() == policy.services_for(SubjectKind.RESIDENT)
    assert frozenset() == policy.services_for(SubjectKind.GOVERNMENT)


def test_services_for_follows_the_catalogue() -> None:
    """A bigger catalogue is offered to every kind by default."""
    policy = Policy(services=(*DEFAULT_SERVICES, ADDITIONAL_SIM))
    assert "additional_sim" in policy.services_for(SubjectKind.RESIDENT)
    assert NUMBER_TRANSFER.id in policy.services_for(SubjectKind.RESIDENT)


# --- government identifiers ----------------------------------------------------------------------


@given(company_numbers())
def test_default_government_validator_accepts_unified_number_shape(identifier: str) -> None:
    """The assumed government identifier is 10 digits starting with 7."""
    assert default_government_id_validator(identifier) is True


@pytest.mark.parametrize(
    "identifier",
    [
        "1000000008",
        "700000000",
        "70000000000",
        "",
        "MOI",
        "7000000000\n",
        "\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10",  # fullwidth
        "\u096d\u0966\u0966\u0966\u0966\u0966\u0966\u0966\u0966\u0966",  # Devanagari
    ],
)
def test_default_government_validator_refuses(identifier: str) -> None:
    """Other shapes and non-ASCII digits are not government identifiers."""
    assert default_government_id_validator(identifier) is False


def test_government_validator_is_pluggable() -> None:
    """A deployment may pass its own validator."""

    def ministries_only(identifier: str) -> bool:
        return identifier.startswith("MOI")

    assert (
        ministries_only is Policy(government_id_validator=ministries_only).government_id_validator
    )


# --- Policy: guess risk --------------------------------------------------------------------------

#: A day in microseconds, to count the guess-risk formula's windows independently.
_DAY_US = 24 * 60 * 60 * 10**6
_CITIZEN = Subject.citizen("1000000008")
_KEYRING = Keyring(
    keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
    pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
)


def _windows_in_a_day(window: timedelta, longest_ttl: timedelta = timedelta(0)) -> int:
    """ceil((24 h + longest_ttl) / window), in whole microseconds: the windows of a day, and
    with a TTL those whose codes are still live in it."""
    window_us = window // ONE_MICROSECOND
    span_us = _DAY_US + longest_ttl // ONE_MICROSECOND
    return (span_us + window_us - 1) // window_us


def _longest_ttl(policy: Policy) -> timedelta:
    """The longest validity of any code the policy issues, whatever the subject's kind."""
    return max(policy.longest_ttl(kind) for kind in SubjectKind)


def _expected(policy: Policy) -> tuple[float, float]:
    """``(per_code, per_subject_per_day)`` straight from the documented formula."""
    combinations = len(policy.code_format.alphabet) ** policy.code_format.length
    guesses = policy.failure_budget * _windows_in_a_day(policy.failure_window)
    recovery_windows = _windows_in_a_day(policy.failure_window, _longest_ttl(policy))
    recovery = policy.recovery_codes * recovery_windows * policy.recovery_attempts
    tries = len(policy.providers) * (guesses * policy.max_live_codes + recovery)
    return (
        min(1.0, policy.max_failed_attempts / combinations),
        min(1.0, tries / combinations),
    )


def _risk(**settings: Any) -> GuessRisk:
    """The guess risk of a policy built from ``settings``, accepted whatever it is."""
    return Policy(**settings, accept_guess_risk=True).guess_risk


def _within_limits(risk: GuessRisk) -> bool:
    return (
        risk.per_code <= Policy.MAX_GUESS_CHANCE_PER_CODE
        and risk.per_subject_per_day <= Policy.MAX_GUESS_CHANCE_PER_SUBJECT_DAY
    )


_provider_sets = st.lists(st.sampled_from(SAUDI_PROVIDERS), min_size=1, unique=True).map(tuple)
_windows = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30))


@st.composite
def _risk_settings(draw: st.DrawFn) -> dict[str, Any]:
    """Policy settings that change the guess risk, over wide ranges, risky ones included."""
    settings: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {
                "max_failed_attempts": st.integers(min_value=1, max_value=1000),
                "failure_budget": st.integers(min_value=1, max_value=1000),
                "failure_window": _windows,
                "ttl": _windows,
                "max_live_codes": st.integers(min_value=1, max_value=50),
                "recovery_codes": st.integers(min_value=0, max_value=100),
                "providers": _provider_sets,
                "code_format": code_formats(),
            }
        )
    )
    most = settings["max_failed_attempts"]
    settings["recovery_attempts"] = draw(st.integers(min_value=1, max_value=most))
    return settings


def test_default_guess_risk() -> None:
    """The default: 5 / 10^8 per code; 8 providers x (10 guesses x 3 live codes + 2 recovery
    codes x ceil(28 h / 24 h) windows x 2 attempts) = 304 tries / 10^8 per day, 1 in 328,947."""
    risk = Policy().guess_risk
    assert (10**8, 5, 8, 10, 3, 2 * 2 * 2, 304) == (
        risk.combinations,
        risk.max_failed_attempts,
        risk.providers,
        risk.guesses_per_day,
        risk.codes_tested_per_guess,
        risk.recovery_tries_per_day,
        risk.tries_per_day,
    )
    assert 5 / 10**8 == risk.per_code == 5e-8
    assert 304 / 10**8 == risk.per_subject_per_day == 3.04e-6
    assert _expected(Policy()) == (risk.per_code, risk.per_subject_per_day)
    assert (20_000_000, 328_947) == (risk.per_code_one_in, risk.per_subject_per_day_one_in)


def test_recovery_codes_add_their_tries_to_the_daily_figure() -> None:
    """Without recovery codes the default's daily figure is 8 x 10 x 3 = 240 tries; each
    recovery code a window allows adds recovery_attempts tries per provider, for every window
    whose codes can be live in the day (2 of 24 hours in 24 h + the 4-hour TTL)."""
    off = Policy(recovery_codes=0).guess_risk
    assert (0, 240, 416_666) == (
        off.recovery_tries_per_day,
        off.tries_per_day,
        off.per_subject_per_day_one_in,
    )
    assert Policy().guess_risk.per_code == off.per_code
    more = Policy(recovery_codes=5, recovery_attempts=3).guess_risk
    assert (5 * 2 * 3, 8 * (30 + 30)) == (more.recovery_tries_per_day, more.tries_per_day)
    halved = Policy(failure_window=timedelta(hours=12)).guess_risk
    assert (2 * 3 * 2, 8 * (20 * 3 + 12)) == (
        halved.recovery_tries_per_day,
        halved.tries_per_day,
    )


def test_default_guess_risk_is_well_within_the_limits() -> None:
    """The default policy is 20 times under the per-code limit and over 3 times under the daily
    one; it stays within both with 3 times its failure budget or its live codes, not 4."""
    risk = Policy().guess_risk
    assert 20 * risk.per_code == pytest.approx(Policy.MAX_GUESS_CHANCE_PER_CODE)
    assert 3 * risk.per_subject_per_day < Policy.MAX_GUESS_CHANCE_PER_SUBJECT_DAY
    assert 4 * risk.per_subject_per_day > Policy.MAX_GUESS_CHANCE_PER_SUBJECT_DAY
    assert _within_limits(Policy(failure_budget=30).guess_risk)
    assert _within_limits(Policy(max_live_codes=9).guess_risk)
    assert not _within_limits(_risk(failure_budget=40))
    assert not _within_limits(_risk(max_live_codes=12))


def test_guess_risk_summary() -> None:
    """str() gives both figures as "1 in N" with the numbers they come from, recovery tries
    included."""
    text = str(Policy().guess_risk)
    assert (
        "worst-case chance of a guessed code: "
        "1 in 20,000,000 per code (5 attempts over 100,000,000 codes); "
        "1 in 328,947 per subject per day "
        "(8 providers x (10 wrong guesses x 3 live codes + 8 recovery tries) = 304 tries "
        "over 100,000,000 codes)"
    ) == text
    assert "+ 0 recovery tries) = 240 tries" in str(Policy(recovery_codes=0).guess_risk)


def test_thresholds() -> None:
    """The documented limits: one in a million per code, one in 100,000 per subject per day."""
    assert 1e-6 == Policy.MAX_GUESS_CHANCE_PER_CODE
    assert 1e-5 == Policy.MAX_GUESS_CHANCE_PER_SUBJECT_DAY


@pytest.mark.parametrize(
    ("window", "windows"),
    [
        (timedelta(hours=24), 1),
        (timedelta(hours=24) - ONE_MICROSECOND, 2),
        (timedelta(hours=25), 1),
        (timedelta(days=30), 1),
        (timedelta(hours=12), 2),
        (timedelta(hours=7), 4),
        (timedelta(hours=6), 4),
        (timedelta(hours=5), 5),
        (timedelta(hours=1), 24),
        (timedelta(seconds=7), 12_343),
    ],
)
def test_guesses_per_day_counts_every_window_a_day_can_hold(
    window: timedelta, windows: int
) -> None:
    """The budget refills each window: a day holds ceil(24 h / window) windows' worth."""
    risk = _risk(failure_window=window, failure_budget=3)
    assert 3 * windows == risk.guesses_per_day


@pytest.mark.parametrize(
    "settings",
    [
        {"ttl": timedelta(minutes=5)},
        {"ttl": timedelta(hours=24)},
        {
            "ttl_by_service": {
                "new_line": timedelta(hours=20),
                "number_transfer": timedelta(hours=1),
            }
        },
        {"retention": timedelta(days=90)},
        {"services": (*DEFAULT_SERVICES, ADDITIONAL_SIM)},
        {"eligible_kinds": {SubjectKind.CITIZEN}},
    ],
)
def test_guess_risk_ignores_retention_catalogue_and_ttl_within_a_window(
    settings: dict[str, Any],
) -> None:
    """A code's validity does not bound re-issues (locking frees a slot at once), and a TTL
    that keeps 24 h + TTL within the same number of windows adds no recovery window."""
    assert Policy().guess_risk == Policy(**settings).guess_risk


@pytest.mark.parametrize(
    ("settings", "recovery_windows"),
    [
        ({"ttl": timedelta(hours=24) + ONE_MICROSECOND}, 3),
        ({"ttl_by_service": {"new_line": timedelta(days=2)}}, 3),
        ({"ttl": timedelta(days=30)}, 31),
        ({"ttl": timedelta(minutes=5), "failure_window": timedelta(hours=12)}, 3),
        ({"ttl": timedelta(hours=12), "failure_window": timedelta(hours=12)}, 3),
        ({"ttl": timedelta(hours=13), "failure_window": timedelta(hours=12)}, 4),
    ],
)
def test_a_longer_ttl_adds_the_recovery_windows_it_keeps_codes_live_for(
    settings: dict[str, Any], recovery_windows: int
) -> None:
    """A recovery code issued up to its TTL before a day starts is live in it: R counts the
    windows of 24 h + the longest TTL, ceil((24 h + T) / failure_window), not those of 24 h."""
    risk = _risk(**settings)
    assert 2 * recovery_windows * 2 == risk.recovery_tries_per_day
    # The ordinary part counts wrong guesses inside the day: no TTL moves it.
    without_ttl = {key: value for key, value in settings.items() if "ttl" not in key}
    assert _risk(**without_ttl).guesses_per_day == risk.guesses_per_day


@pytest.mark.parametrize(
    ("settings", "per_code", "per_day"),
    [
        ({"max_failed_attempts": 100}, 1e-6, 3.04e-6),
        ({"failure_budget": 39}, 5e-8, 1000e-8),
        ({"failure_budget": 41, "recovery_codes": 0}, 5e-8, 984e-8),
        ({"max_live_codes": 11}, 5e-8, 944e-8),
        ({"failure_window": timedelta(hours=8)}, 5e-8, 848e-8),
        ({"failure_window": timedelta(hours=6), "recovery_codes": 0}, 5e-8, 960e-8),
        ({"providers": SAUDI_PROVIDERS[:1]}, 5e-8, 38e-8),
        ({"code_format": CodeFormat(length=10)}, 5e-10, 3.04e-8),
        ({"code_format": CodeFormat(length=6, alphabet=BASE32)}, 5 / 2**30, 304 / 2**30),
        ({"failure_budget": 25, "max_live_codes": 5, "recovery_codes": 0}, 5e-8, 1e-5),
        ({"recovery_codes": 23}, 5e-8, 976e-8),
        ({"recovery_codes": 9, "recovery_attempts": 5}, 5e-8, 960e-8),
    ],
)
def test_guess_risk_examples(settings: dict[str, Any], per_code: float, per_day: float) -> None:
    """Worked figures of policies within the limits, each built without accepting any risk."""
    risk = Policy(**settings).guess_risk
    assert pytest.approx(per_code, rel=1e-12) == risk.per_code
    assert pytest.approx(per_day, rel=1e-12) == risk.per_subject_per_day


@pytest.mark.parametrize(
    ("safe", "unsafe"),
    [
        ({"max_failed_attempts": 100}, {"max_failed_attempts": 101}),
        ({"failure_budget": 39}, {"failure_budget": 40}),
        ({"failure_budget": 39}, {"failure_budget": 50}),
        ({"max_live_codes": 11}, {"max_live_codes": 12}),
        ({"failure_window": timedelta(hours=8)}, {"failure_window": timedelta(hours=7)}),
        (
            {"failure_window": timedelta(hours=8)},
            {"failure_window": timedelta(hours=8) - ONE_MICROSECOND},
        ),
        (
            {"failure_budget": 25, "max_live_codes": 5, "recovery_codes": 0},
            {
                "failure_budget": 25,
                "max_live_codes": 5,
                "recovery_codes": 0,
                "failure_window": timedelta(hours=23),
            },
        ),
        # The recovery allowance alone takes a policy over the daily limit.
        ({"failure_budget": 41, "recovery_codes": 0}, {"failure_budget": 41}),
        ({"recovery_codes": 23}, {"recovery_codes": 24}),
        (
            {"recovery_codes": 11, "recovery_attempts": 4},
            {"recovery_codes": 12, "recovery_attempts": 4},
        ),
        (
            {"recovery_codes": 9, "recovery_attempts": 5},
            {"recovery_codes": 10, "recovery_attempts": 5},
        ),
        # A longer TTL alone: one more window of recovery codes is live in the day.
        (
            {"recovery_codes": 23, "ttl": timedelta(hours=24)},
            {"recovery_codes": 23, "ttl": timedelta(hours=24) + ONE_MICROSECOND},
        ),
        (
            {"failure_budget": 1000, "code_format": CodeFormat(length=10)},
            {"failure_budget": 1000},
        ),
    ],
)
def test_guess_risk_threshold_boundary(safe: dict[str, Any], unsafe: dict[str, Any]) -> None:
    """At or just under a limit the policy builds; just over it is refused unless accepted."""
    assert _within_limits(Policy(**safe).guess_risk)
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(**unsafe)
    assert "invalid_policy" == excinfo.value.code
    accepted = Policy(**unsafe, accept_guess_risk=True)
    assert accepted.accept_guess_risk is True
    assert not _within_limits(accepted.guess_risk)
    assert _expected(accepted) == (
        accepted.guess_risk.per_code,
        accepted.guess_risk.per_subject_per_day,
    )


def test_refusal_per_subject_per_day_names_figure_limit_and_flag() -> None:
    """The reason states the daily figure, where it comes from, the limit and the way out."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(failure_budget=1000)
    reason = excinfo.value.details["reason"]
    assert reason.startswith("the worst-case chance that one subject's live code is guessed")
    assert "1 in 4,155 (0.000241: 8 providers x (1000 wrong guesses a day" in reason
    assert "at each x 3 live codes + 8 recovery tries) over 100,000,000 codes)" in reason
    assert "above the limit of 1 in 100,000 (1e-05)" in reason
    assert "failure_budget" in reason
    assert "failure_window" in reason
    assert "recovery_codes" in reason
    assert "recovery_attempts" in reason
    assert reason.endswith("or pass accept_guess_risk=True to accept the risk")
    assert "before it locks" not in reason
    assert reason in excinfo.value.message_en
    assert reason in excinfo.value.message_ar


@pytest.mark.parametrize(
    "settings",
    [
        {"failure_budget": 40},
        {"recovery_codes": 24},
        {"recovery_codes": 10, "recovery_attempts": 5},
        {"max_live_codes": 12},
        {"recovery_codes": 2, "ttl": timedelta(days=30)},
    ],
)
def test_a_recovery_allowance_over_the_daily_limit_is_refused_unless_accepted(
    settings: dict[str, Any],
) -> None:
    """Settings within the daily limit without recovery codes, taken over it by their recovery
    tries: refused, naming the recovery tries and settings, unless the risk is accepted."""
    assert _within_limits(Policy(**{**settings, "recovery_codes": 0}).guess_risk)
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(**settings)
    reason = excinfo.value.details["reason"]
    accepted = Policy(**settings, accept_guess_risk=True)
    risk = accepted.guess_risk
    assert risk.per_subject_per_day > Policy.MAX_GUESS_CHANCE_PER_SUBJECT_DAY
    assert risk.per_code <= Policy.MAX_GUESS_CHANCE_PER_CODE
    assert f"+ {risk.recovery_tries_per_day} recovery tries)" in reason
    assert "recovery_codes, recovery_attempts" in reason
    assert "one code is guessed before it locks" not in reason


def test_refusal_per_code_names_figure_limit_and_flag() -> None:
    """The reason states the per-code figure, the limit and the flag; the daily part is absent."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(max_failed_attempts=101)
    reason = excinfo.value.details["reason"]
    assert reason.startswith("the worst-case chance that one code is guessed before it locks")
    assert "1 in 990,099 (1.01e-06: 101 attempts over 100,000,000 codes)" in reason
    assert "above the limit of 1 in 1,000,000 (1e-06)" in reason
    assert "max_failed_attempts" in reason
    assert "in a day" not in reason
    assert reason.endswith("or pass accept_guess_risk=True to accept the risk")


def test_refusal_names_both_figures_when_both_are_too_high() -> None:
    """Both limits broken: both figures are named, and the flag once."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(max_failed_attempts=200, failure_budget=50)
    reason = excinfo.value.details["reason"]
    assert "1 in 500,000 (2e-06: 200 attempts" in reason
    assert "1 in 79,113 (1.26e-05: 8 providers x (50 wrong guesses" in reason
    assert 1 == reason.count("accept_guess_risk=True")


def test_accepted_policy_still_reports_its_risk() -> None:
    """accept_guess_risk=True builds the policy; guess_risk gives the same figures."""
    policy = Policy(failure_budget=1000, accept_guess_risk=True)
    risk = policy.guess_risk
    assert (1000, 8, 24_064) == (
        risk.guesses_per_day,
        risk.recovery_tries_per_day,
        risk.tries_per_day,
    )
    assert 24_064 / 10**8 == risk.per_subject_per_day
    assert 4_155 == risk.per_subject_per_day_one_in
    assert 1000 == policy.failure_budget


def test_accepting_a_safe_policy_changes_nothing_but_the_flag() -> None:
    """The flag on a policy within the limits is harmless: same settings, same figures."""
    accepted = Policy(accept_guess_risk=True)
    assert Policy().guess_risk == accepted.guess_risk
    assert attrs.evolve(accepted, accept_guess_risk=False) == Policy()
    assert Policy().accept_guess_risk is False


def test_evolve_keeps_the_flag() -> None:
    """Evolving an accepted policy stays accepted; evolving a default one is checked again."""
    accepted = Policy(accept_guess_risk=True)
    assert 1000 == attrs.evolve(accepted, failure_budget=1000).failure_budget
    with pytest.raises(InvalidPolicy):
        attrs.evolve(Policy(), failure_budget=1000)


@pytest.mark.parametrize("value", [1, 0, "True", "yes", "", None, 1.0, [True]])
def test_accept_guess_risk_must_be_a_bool(value: object) -> None:
    """Only True or False decide to accept a risk; truthy values are refused."""
    with pytest.raises(InvalidPolicy) as excinfo:
        Policy(accept_guess_risk=value)  # type: ignore[arg-type]
    assert "accept_guess_risk must be True or False" == excinfo.value.details["reason"]


def test_flag_is_checked_even_for_a_safe_policy() -> None:
    """A non-bool flag is refused whatever the figures."""
    with pytest.raises(InvalidPolicy):
        Policy(failure_budget=1, accept_guess_risk="no")  # type: ignore[arg-type]


def test_figures_cap_at_one() -> None:
    """More tries than codes give a chance of 1, "1 in 1", not more."""
    risk = _risk(
        max_failed_attempts=10**9,
        failure_budget=10**6,
        failure_window=timedelta(seconds=1),
    )
    assert (1.0, 1.0) == (risk.per_code, risk.per_subject_per_day)
    assert (1, 1) == (risk.per_code_one_in, risk.per_subject_per_day_one_in)
    assert 10**6 * 86_400 == risk.guesses_per_day


def test_guess_risk_is_a_frozen_value() -> None:
    """GuessRisk is immutable, equal by value, and its figures follow from its counts."""
    risk = GuessRisk(
        combinations=10**8,
        max_failed_attempts=5,
        providers=8,
        guesses_per_day=10,
        codes_tested_per_guess=3,
        recovery_tries_per_day=8,
    )
    assert Policy().guess_risk == risk
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        risk.per_code = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        GuessRisk(  # type: ignore[call-arg]
            combinations=10**8,
            max_failed_attempts=5,
            providers=8,
            guesses_per_day=10,
            codes_tested_per_guess=3,
            per_code=0.0,
        )


@pytest.mark.parametrize(
    "field",
    [
        "combinations",
        "max_failed_attempts",
        "providers",
        "guesses_per_day",
        "codes_tested_per_guess",
    ],
)
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "3"])
def test_guess_risk_counts_are_whole_positive_numbers(field: str, value: object) -> None:
    """A GuessRisk built by hand refuses counts that are not whole numbers of at least 1."""
    counts: dict[str, Any] = {
        "combinations": 10**8,
        "max_failed_attempts": 5,
        "providers": 8,
        "guesses_per_day": 10,
        "codes_tested_per_guess": 3,
    }
    with pytest.raises(InvalidPolicy):
        GuessRisk(**{**counts, field: value})


def test_guess_risk_recovery_tries_default_to_none() -> None:
    """A GuessRisk built by hand without recovery tries counts none: P x G x L tries."""
    risk = GuessRisk(
        combinations=10**8,
        max_failed_attempts=5,
        providers=8,
        guesses_per_day=10,
        codes_tested_per_guess=3,
    )
    assert (0, 240, 2.4e-6) == (
        risk.recovery_tries_per_day,
        risk.tries_per_day,
        risk.per_subject_per_day,
    )
    assert Policy(recovery_codes=0).guess_risk == risk


@pytest.mark.parametrize("value", [-1, True, False, 1.5, "3", None, 10**100 + 1])
def test_guess_risk_recovery_tries_are_whole_numbers_from_zero(value: object) -> None:
    """recovery_tries_per_day is a whole number from 0 to 10^100; anything else is refused."""
    with pytest.raises(InvalidPolicy) as excinfo:
        GuessRisk(
            combinations=10**8,
            max_failed_attempts=5,
            providers=8,
            guesses_per_day=10,
            codes_tested_per_guess=3,
            recovery_tries_per_day=value,  # type: ignore[arg-type]
        )
    assert (
        "recovery_tries_per_day must be a whole number from 0 to 10^100"
        == excinfo.value.details["reason"]
    )


@given(_risk_settings())
def test_guess_risk_follows_the_formula(settings: dict[str, Any]) -> None:
    """Any policy's figures are the formula's, in [0, 1], and consistent with one another."""
    policy = Policy(**settings, accept_guess_risk=True)
    risk = policy.guess_risk
    assert _expected(policy) == (risk.per_code, risk.per_subject_per_day)
    assert 0.0 < risk.per_code <= 1.0
    assert 0.0 < risk.per_subject_per_day <= 1.0
    assert risk.combinations == policy.code_format.combinations
    assert risk.tries_per_day == risk.providers * (
        risk.guesses_per_day * risk.codes_tested_per_guess + risk.recovery_tries_per_day
    )
    recovery_windows = _windows_in_a_day(policy.failure_window, _longest_ttl(policy))
    assert risk.recovery_tries_per_day == (
        policy.recovery_codes * recovery_windows * policy.recovery_attempts
    )
    # A day's guesses meet at least one code as often as the lock or the budget allows.
    fewest = min(risk.max_failed_attempts, risk.guesses_per_day)
    assert min(1.0, fewest / risk.combinations) <= risk.per_subject_per_day
    if risk.guesses_per_day >= risk.max_failed_attempts:
        # A day's budget can use up a code's attempts: the daily figure covers a whole code.
        assert risk.per_code <= risk.per_subject_per_day
    # "1 in N" never shows better odds than the figure.
    assert 1 / risk.per_code_one_in >= risk.per_code
    assert 1 / risk.per_subject_per_day_one_in >= risk.per_subject_per_day


@given(_risk_settings())
def test_policy_is_refused_exactly_when_a_figure_is_over_its_limit(
    settings: dict[str, Any],
) -> None:
    """Without the flag a policy builds if and only if both figures are within the limits."""
    risk = _risk(**settings)
    if _within_limits(risk):
        assert risk == Policy(**settings).guess_risk
    else:
        with pytest.raises(InvalidPolicy) as excinfo:
            Policy(**settings)
        assert "accept_guess_risk=True" in excinfo.value.details["reason"]


def _looser(setting: str, settings: dict[str, Any], data: st.DataObject) -> Any:
    """A value of ``setting`` at least as loose as in ``settings``: a count as big (recovery
    attempts up to max_failed_attempts), more providers."""
    current = settings[setting]
    if setting == "providers":
        more = data.draw(_provider_sets, label="more providers")
        return tuple(dict.fromkeys((*current, *more)))
    most = settings["max_failed_attempts"] if setting == "recovery_attempts" else current + 1000
    return data.draw(st.integers(min_value=current, max_value=most), label="more")


@pytest.mark.parametrize(
    "setting",
    [
        "max_failed_attempts",
        "failure_budget",
        "max_live_codes",
        "recovery_codes",
        "recovery_attempts",
        "providers",
    ],
)
@given(settings=_risk_settings(), data=st.data())
def test_looser_settings_never_lower_the_risk(
    setting: str, settings: dict[str, Any], data: st.DataObject
) -> None:
    """More attempts, budget, live codes, recovery codes or attempts, or providers never lower
    either figure."""
    looser = {**settings, setting: _looser(setting, settings, data)}
    before, after = _risk(**settings), _risk(**looser)
    assert before.per_code <= after.per_code
    assert before.per_subject_per_day <= after.per_subject_per_day


@given(settings=_risk_settings(), data=st.data())
def test_shorter_window_never_lowers_the_risk(
    settings: dict[str, Any], data: st.DataObject
) -> None:
    """A shorter failure window lets the budget refill more often: never a lower daily figure."""
    window = data.draw(
        st.timedeltas(min_value=timedelta(seconds=1), max_value=settings["failure_window"]),
        label="shorter window",
    )
    shorter = {**settings, "failure_window": window}
    before, after = _risk(**settings), _risk(**shorter)
    assert before.per_code == after.per_code
    assert before.guesses_per_day <= after.guesses_per_day
    assert before.per_subject_per_day <= after.per_subject_per_day


@given(settings=_risk_settings(), data=st.data())
def test_longer_ttl_never_lowers_the_risk(settings: dict[str, Any], data: st.DataObject) -> None:
    """A longer TTL keeps recovery codes live into more of a day: never a lower daily figure;
    the per-code figure and the ordinary guesses do not move."""
    ttl = data.draw(
        st.timedeltas(min_value=settings["ttl"], max_value=Policy.MAX_DURATION), label="longer ttl"
    )
    before, after = _risk(**settings), _risk(**{**settings, "ttl": ttl})
    assert before.per_code == after.per_code
    assert before.guesses_per_day == after.guesses_per_day
    assert before.recovery_tries_per_day <= after.recovery_tries_per_day
    assert before.per_subject_per_day <= after.per_subject_per_day


@given(settings=_risk_settings(), extra=st.integers(min_value=1, max_value=8))
def test_longer_codes_lower_the_risk(settings: dict[str, Any], extra: int) -> None:
    """Each extra character divides both figures by the alphabet size (until the cap of 1)."""
    code_format = settings["code_format"]
    assume(code_format.length + extra <= 32)
    longer = CodeFormat(length=code_format.length + extra, alphabet=code_format.alphabet)
    before, after = _risk(**settings), _risk(**{**settings, "code_format": longer})
    assert after.per_code < before.per_code
    assert after.per_subject_per_day <= before.per_subject_per_day
    if before.per_subject_per_day < 1.0:
        assert after.per_subject_per_day < before.per_subject_per_day


# --- the bound against the rules: what redeem really lets an attacker try ------------------------


def _fresh_issuer(policy: Policy) -> tuple[CodeIssuer, ManualClock]:
    clock = ManualClock(START)
    return CodeIssuer(MemoryStorage(), keyring=_KEYRING, policy=policy, clock=clock), clock


def _tries(issuer: CodeIssuer, code_ids: list[str]) -> int:
    """Wrong guesses charged to the subject's codes: comparisons with a live code."""
    return sum(issuer.status(_CITIZEN, code_id).failed_attempts for code_id in code_ids)


def _a_wrong_code(issued: list[str]) -> str:
    """A well-formed code that is none of the codes issued so far."""
    return next(f"{n:08d}" for n in range(len(issued) + 1) if f"{n:08d}" not in issued)


def _guess(issuer: CodeIssuer, provider: str, codes: list[str]) -> None:
    """One wrong guess at ``provider`` that is compared with a live code (and so charged)."""
    with pytest.raises(WrongCode):
        issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")


def _locked_out(issuer: CodeIssuer, provider: str, codes: list[str]) -> None:
    """The budget at ``provider`` is spent and no recovery code is live there: no comparison."""
    with pytest.raises(FailureBudgetExhausted):
        issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")


def _issue(issuer: CodeIssuer, provider: str, codes: list[str], code_ids: list[str]) -> None:
    """Issue the citizen a code at ``provider``, noting the code and its id."""
    issued = issuer.issue(_CITIZEN, provider)
    codes.append(issued.code)
    code_ids.append(issued.code_id)


def _spend_budget(
    issuer: CodeIssuer, policy: Policy, provider: str, codes: list[str], code_ids: list[str]
) -> None:
    """Spend the whole budget at ``provider`` at once, the customer holding every live code the
    limit allows there before each guess (re-issuing the locked ones), then revoke the rest."""
    here: list[str] = []
    for _ in range(policy.failure_budget):
        with contextlib.suppress(LiveCodeLimitReached):
            while True:
                _issue(issuer, provider, codes, here)
        _guess(issuer, provider, codes)
    _locked_out(issuer, provider, codes)
    for code_id in here:
        issuer.revoke(_CITIZEN, code_id)
    code_ids.extend(here)


def _recover(
    issuer: CodeIssuer, policy: Policy, provider: str, codes: list[str], code_ids: list[str]
) -> None:
    """With the budget at ``provider`` spent and no live code there, take every recovery code
    the window allows and every wrong guess each allows."""
    for _ in range(policy.recovery_codes):
        _issue(issuer, provider, codes, code_ids)
        for _ in range(policy.recovery_attempts):
            _guess(issuer, provider, codes)
    _locked_out(issuer, provider, codes)


def _carried(policy: Policy) -> dict[str, int]:
    """Recovery codes each provider carries into the day, issued just before it starts: a
    window's allowance, when 24 h + the TTL spans one window more than 24 h (the window being at
    least the TTL). They are all live as the day starts, so at most ``max_live_codes`` in all."""
    window = policy.failure_window
    if _windows_in_a_day(window, _longest_ttl(policy)) == _windows_in_a_day(window):
        return {}
    room = policy.max_live_codes
    carried = {}
    for provider in policy.providers:
        carried[provider.id] = min(policy.recovery_codes, room)
        room -= carried[provider.id]
    return {provider: count for provider, count in carried.items() if count}


def _worst_day(policy: Policy) -> dict[str, int]:
    """Tries charged at each provider in the 24 hours from ``day``, in the worst schedule the
    rules allow when the failure window is at least the longest TTL.

    Providers that carry recovery codes into the day (``_carried``) spend their budget one
    window before the day, take those codes one TTL before it, and have them guessed as the
    day starts; their recovery codes then come one window after each other. In the day, every
    provider has its whole budget spent at the start of each window, the customer holding all
    the live codes allowed there before every guess (re-issuing the locked ones, revoking the
    rest when the attacker moves on); the other providers then take every recovery code the
    window allows, each guessed until it locks. A microsecond separates the carried codes'
    guesses from the refilled budget.
    """
    issuer, clock = _fresh_issuer(policy)
    window, ttl = policy.failure_window, _longest_ttl(policy)
    carried = _carried(policy)
    shift = ONE_MICROSECOND if carried else timedelta(0)
    day = START + window + ttl
    end = day + timedelta(hours=24)
    first_recovery = day - ttl + ONE_MICROSECOND
    steps: list[tuple[datetime, int, int, str]] = []
    for order, provider in enumerate(policy.providers):
        if provider.id in carried:
            steps += [
                (day - window + shift, 0, order, "spend before"),
                (first_recovery, 1, order, "carry"),
                (day, 2, order, "guess carried"),
            ]
            moment = first_recovery + window
            while moment < end:
                steps.append((moment, 1, order, "recover"))
                moment += window
        moment = day + shift
        while moment < end:
            steps.append((moment, 0, order, "spend"))
            if provider.id not in carried:
                steps.append((moment, 1, order, "recover"))
            moment += window
    codes: list[str] = []
    counted: dict[str, list[str]] = {provider.id: [] for provider in policy.providers}
    for moment, _, order, step in sorted(steps):
        clock.set(moment)
        provider_id = policy.providers[order].id
        if step == "spend before":
            _spend_budget(issuer, policy, provider_id, codes, [])
        elif step == "carry":
            for _ in range(carried[provider_id]):
                _issue(issuer, provider_id, codes, counted[provider_id])
        elif step == "guess carried":
            # Untouched before the day, and recovery codes: their attempts are all in the day.
            left = [
                issuer.status(_CITIZEN, code_id).attempts_left for code_id in counted[provider_id]
            ]
            assert [policy.recovery_attempts] * carried[provider_id] == left
            for _ in range(policy.recovery_attempts):
                _guess(issuer, provider_id, codes)
        elif step == "spend":
            _spend_budget(issuer, policy, provider_id, codes, counted[provider_id])
        else:
            _recover(issuer, policy, provider_id, codes, counted[provider_id])
    assert clock.now() < end
    return {provider: _tries(issuer, code_ids) for provider, code_ids in counted.items()}


def test_default_bound_is_reached_at_one_provider_and_not_at_all_eight() -> None:
    """The default's 38 tries a provider are reached: 2 recovery codes issued just before the
    day, guessed inside it, 10 wrong guesses x 3 live codes, 2 more recovery codes a window
    later. Its 304 tries a day are not: they need the 16 carried codes of all 8 providers live
    together as the day starts, and a subject holds at most 3 live codes; the most any day
    reaches is 304 - 2 x (16 - 3) = 278. The bound is safe, and 26 tries loose."""
    policy = Policy()
    reached = _worst_day(policy)
    assert {"stc": 38, "mobily": 36} | {p.id: 34 for p in policy.providers[2:]} == reached
    risk = policy.guess_risk
    assert risk.guesses_per_day * risk.codes_tested_per_guess + risk.recovery_tries_per_day == 38
    assert (278, 304) == (sum(reached.values()), risk.tries_per_day)


def test_recovery_codes_carried_into_the_day_break_the_old_figure() -> None:
    """The old formula counted recovery codes issued inside the 24 hours only, 272 / 8 = 34
    tries a provider; with those issued one TTL before, one provider takes 38 in one day,
    exactly its bound now (one provider carries its 2 codes within the live-code limit)."""
    policy = Policy(providers=SAUDI_PROVIDERS[:1])
    reached = _worst_day(policy)["stc"]
    risk = policy.guess_risk
    within_the_day = policy.recovery_codes * _windows_in_a_day(policy.failure_window)
    old = (
        risk.guesses_per_day * risk.codes_tested_per_guess
        + within_the_day * policy.recovery_attempts
    )
    assert (34, 38, 38) == (old, reached, risk.tries_per_day)


@settings(max_examples=40, deadline=None)
@given(
    providers=st.integers(min_value=1, max_value=3),
    attempts=st.integers(min_value=1, max_value=4),
    budget=st.integers(min_value=1, max_value=4),
    window=st.sampled_from(
        [
            timedelta(hours=24),
            timedelta(hours=24) - ONE_MICROSECOND,
            timedelta(hours=30),
            timedelta(hours=7),
            timedelta(hours=5),
            timedelta(hours=1),
        ]
    ),
    live=st.integers(min_value=1, max_value=3),
    recovery=st.integers(min_value=0, max_value=3),
    ttl=st.sampled_from([timedelta(minutes=30), FOUR_HOURS]),
    data=st.data(),
)
def test_the_worst_day_falls_short_of_the_bound_only_by_the_live_code_limit(
    *,
    providers: int,
    attempts: int,
    budget: int,
    window: timedelta,
    live: int,
    recovery: int,
    ttl: timedelta,
    data: st.DataObject,
) -> None:
    """For any limits with a failure window at least the TTL, the worst day charges
    ``tries_per_day`` less the recovery tries of carried codes beyond the live-code limit:
    exactly the bound when P x recovery_codes carried codes fit in max_live_codes, or when
    24 h + TTL spans no more windows than 24 h (nothing to carry)."""
    assume(window >= ttl)
    policy = Policy(
        providers=SAUDI_PROVIDERS[:providers],
        max_failed_attempts=attempts,
        failure_budget=budget,
        failure_window=window,
        max_live_codes=live,
        recovery_codes=recovery,
        recovery_attempts=data.draw(st.integers(1, attempts), label="recovery attempts"),
        ttl=ttl,
        retention=timedelta(days=2),
        accept_guess_risk=True,
    )
    risk = policy.guess_risk
    extra_windows = _windows_in_a_day(window, ttl) - _windows_in_a_day(window)
    wanted = providers * recovery * extra_windows
    held_back = max(0, wanted - live)
    reached = _worst_day(policy)
    assert risk.tries_per_day - policy.recovery_attempts * held_back == sum(reached.values())
    per_provider = risk.guesses_per_day * risk.codes_tested_per_guess + risk.recovery_tries_per_day
    assert all(tries <= per_provider for tries in reached.values())
    if recovery <= live:
        # The first provider carries all its codes: the bound of one provider is reached.
        assert per_provider == max(reached.values())


#: A day of a customer who holds as many codes as allowed and an attacker guessing at them:
#: ``fill`` issues codes at a provider up to the live-code limit, ``guess`` tries a wrong code
#: there, ``revoke`` cancels one code, ``wait`` moves the clock on by some minutes.
_actions = st.lists(
    st.tuples(
        st.sampled_from(["fill", "guess", "guess", "guess", "guess", "revoke", "wait"]),
        st.integers(min_value=0, max_value=6 * 60),
    ),
    min_size=10,
    max_size=150,
)


@settings(max_examples=60, deadline=None)
@given(
    attempts=st.integers(min_value=1, max_value=4),
    budget=st.integers(min_value=1, max_value=4),
    window=st.sampled_from([timedelta(hours=hours) for hours in (1, 5, 7, 24, 30)]),
    live=st.integers(min_value=1, max_value=3),
    recovery=st.integers(min_value=0, max_value=3),
    ttl=st.sampled_from([timedelta(minutes=30), FOUR_HOURS]),
    actions=_actions,
    data=st.data(),
)
def test_no_day_of_the_rules_exceeds_the_bound(
    *,
    attempts: int,
    budget: int,
    window: timedelta,
    live: int,
    recovery: int,
    ttl: timedelta,
    actions: list[tuple[str, int]],
    data: st.DataObject,
) -> None:
    """Any mix of issues, revocations, waits and wrong guesses over a day, at three providers,
    charges no more tries than the bound: G x L + R per provider, P x (G x L + R) in all."""
    policy = Policy(
        providers=SAUDI_PROVIDERS[:3],
        max_failed_attempts=attempts,
        failure_budget=budget,
        failure_window=window,
        max_live_codes=live,
        recovery_codes=recovery,
        recovery_attempts=data.draw(st.integers(1, attempts), label="recovery attempts"),
        ttl=ttl,
        retention=timedelta(days=2),
        accept_guess_risk=True,
    )
    risk = policy.guess_risk
    issuer, clock = _fresh_issuer(policy)
    end = START + timedelta(hours=24)
    code_ids: dict[str, list[str]] = {provider.id: [] for provider in policy.providers}
    codes: list[str] = []
    for action, argument in actions:
        if action == "wait":
            if clock.now() + timedelta(minutes=argument) >= end:
                break
            clock.advance(minutes=argument)
            continue
        if action == "revoke":
            everyone = [code_id for ids in code_ids.values() for code_id in ids]
            if everyone:
                issuer.revoke(_CITIZEN, everyone[argument % len(everyone)])
            continue
        provider = policy.providers[argument % len(policy.providers)].id
        if action == "fill":
            with contextlib.suppress(LiveCodeLimitReached):
                for _ in range(policy.max_live_codes):
                    issued = issuer.issue(_CITIZEN, provider)
                    code_ids[provider].append(issued.code_id)
                    codes.append(issued.code)
        else:
            with pytest.raises((WrongCode, FailureBudgetExhausted)):
                issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")
    per_provider = [_tries(issuer, ids) for ids in code_ids.values()]
    most = risk.guesses_per_day * risk.codes_tested_per_guess + risk.recovery_tries_per_day
    assert all(tries <= most for tries in per_provider)
    assert sum(per_provider) <= risk.tries_per_day


# --- what happens at the live-code limit, and when an old key may retire ---------------------


def test_the_live_code_limit_refuses_by_default_and_may_supersede() -> None:
    assert "refuse" == Policy().on_live_code_limit
    assert "supersede" == Policy(on_live_code_limit="supersede").on_live_code_limit


@pytest.mark.parametrize("action", ["Supersede", "replace", "", None, 1, ["refuse"], b"refuse"])
def test_an_unknown_live_code_limit_action_is_refused(action: object) -> None:
    with pytest.raises(InvalidPolicy, match="on_live_code_limit"):
        Policy(on_live_code_limit=action)  # type: ignore[arg-type]


def test_an_old_key_retires_after_the_longest_life_of_a_code_and_its_retention() -> None:
    assert timedelta(hours=28) == Policy().key_retirement_delay
    longer = Policy(
        ttl_by_service={"number_transfer": timedelta(hours=10)}, retention=timedelta(hours=2)
    )
    assert timedelta(hours=12) == longer.key_retirement_delay


def test_transfer_services_default_follows_the_catalogue() -> None:
    """Number transfer binds to a recipient by default only when the catalogue has it."""
    assert frozenset({"number_transfer"}) == Policy().transfer_services
    assert frozenset() == Policy(services=(NEW_LINE,)).transfer_services
    custom = Policy(services=(NEW_LINE, NUMBER_TRANSFER), transfer_services={"new_line"})
    assert frozenset({"new_line"}) == custom.transfer_services
    with pytest.raises(InvalidPolicy):
        Policy(services=(NEW_LINE,), transfer_services={"number_transfer"})
