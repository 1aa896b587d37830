"""Tests for the code format and the policy: every knob's validation and every lookup."""

from __future__ import annotations

import contextlib
import string
from collections import Counter
from datetime import timedelta
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
from telecard_auth._policy import GuessRisk

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
    """The default policy: 8 operators, 4 services, all kinds, 4 hours, 5/10/24h/3 limits."""
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


@pytest.mark.parametrize("setting", ["max_failed_attempts", "failure_budget", "max_live_codes"])
def test_one_is_the_smallest_count(setting: str) -> None:
    """1 is a valid count for every limit."""
    settings: dict[str, Any] = {setting: 1}
    assert 1 == getattr(Policy(**settings), setting)


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
    keys=(HmacKey(key_id="k1", secret=K1_SECRET),), pseudonym_secret=PSEUDONYM_SECRET
)


def _windows_in_a_day(window: timedelta) -> int:
    """ceil(24 h / window), in whole microseconds."""
    window_us = window // ONE_MICROSECOND
    return (_DAY_US + window_us - 1) // window_us


def _expected(policy: Policy) -> tuple[float, float]:
    """``(per_code, per_subject_per_day)`` straight from the documented formula."""
    combinations = len(policy.code_format.alphabet) ** policy.code_format.length
    guesses = policy.failure_budget * _windows_in_a_day(policy.failure_window)
    tries = len(policy.providers) * guesses * policy.max_live_codes
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

#: Policy settings that change the guess risk, over wide ranges, risky ones included.
_risk_settings = st.fixed_dictionaries(
    {
        "max_failed_attempts": st.integers(min_value=1, max_value=1000),
        "failure_budget": st.integers(min_value=1, max_value=1000),
        "failure_window": _windows,
        "max_live_codes": st.integers(min_value=1, max_value=50),
        "providers": _provider_sets,
        "code_format": code_formats(),
    }
)


def test_default_guess_risk() -> None:
    """The default: 5 / 10^8 per code; 8 providers x 10 guesses x 3 live codes / 10^8 per day."""
    risk = Policy().guess_risk
    assert (10**8, 5, 8, 10, 3, 240) == (
        risk.combinations,
        risk.max_failed_attempts,
        risk.providers,
        risk.guesses_per_day,
        risk.codes_tested_per_guess,
        risk.tries_per_day,
    )
    assert 5 / 10**8 == risk.per_code == 5e-8
    assert 240 / 10**8 == risk.per_subject_per_day == 2.4e-6
    assert _expected(Policy()) == (risk.per_code, risk.per_subject_per_day)
    assert (20_000_000, 416_666) == (risk.per_code_one_in, risk.per_subject_per_day_one_in)


def test_default_guess_risk_is_well_within_the_limits() -> None:
    """The default policy is 20 times under the per-code limit and 4 times under the daily one."""
    risk = Policy().guess_risk
    assert 20 * risk.per_code == pytest.approx(Policy.MAX_GUESS_CHANCE_PER_CODE)
    assert 4 * risk.per_subject_per_day < Policy.MAX_GUESS_CHANCE_PER_SUBJECT_DAY


def test_guess_risk_summary() -> None:
    """str() gives both figures as "1 in N" with the numbers they come from."""
    text = str(Policy().guess_risk)
    assert "1 in 20,000,000 per code (5 attempts over 100,000,000 codes)" in text
    assert "1 in 416,666 per subject per day" in text
    assert "8 providers x 10 wrong guesses x 3 live codes = 240 tries" in text


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
        {"ttl": timedelta(days=30)},
        {"ttl_by_service": {"new_line": timedelta(days=2), "number_transfer": timedelta(hours=1)}},
        {"retention": timedelta(days=90)},
        {"services": (*DEFAULT_SERVICES, ADDITIONAL_SIM)},
        {"eligible_kinds": {SubjectKind.CITIZEN}},
    ],
)
def test_guess_risk_ignores_validity_and_catalogue(settings: dict[str, Any]) -> None:
    """A code's validity does not bound re-issues (locking frees a slot at once): TTL is moot."""
    assert Policy().guess_risk == Policy(**settings).guess_risk


@pytest.mark.parametrize(
    ("settings", "per_code", "per_day"),
    [
        ({"max_failed_attempts": 100}, 1e-6, 2.4e-6),
        ({"failure_budget": 41}, 5e-8, 984e-8),
        ({"max_live_codes": 12}, 5e-8, 960e-8),
        ({"failure_window": timedelta(hours=6)}, 5e-8, 960e-8),
        ({"providers": SAUDI_PROVIDERS[:1]}, 5e-8, 30e-8),
        ({"code_format": CodeFormat(length=10)}, 5e-10, 2.4e-8),
        ({"code_format": CodeFormat(length=6, alphabet=BASE32)}, 5 / 2**30, 240 / 2**30),
        ({"failure_budget": 25, "max_live_codes": 5}, 5e-8, 1e-5),
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
        ({"failure_budget": 41}, {"failure_budget": 42}),
        ({"failure_budget": 40}, {"failure_budget": 50}),
        ({"max_live_codes": 12}, {"max_live_codes": 13}),
        ({"failure_window": timedelta(hours=6)}, {"failure_window": timedelta(hours=5)}),
        (
            {"failure_window": timedelta(hours=6)},
            {"failure_window": timedelta(hours=6) - ONE_MICROSECOND},
        ),
        (
            {"failure_budget": 25, "max_live_codes": 5},
            {"failure_budget": 25, "max_live_codes": 5, "failure_window": timedelta(hours=23)},
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
    assert "1 in 4,166 (0.00024: 8 providers x 1000 wrong guesses a day" in reason
    assert "x 3 live codes over 100,000,000 codes)" in reason
    assert "above the limit of 1 in 100,000 (1e-05)" in reason
    assert "failure_budget" in reason
    assert "failure_window" in reason
    assert reason.endswith("or pass accept_guess_risk=True to accept the risk")
    assert "before it locks" not in reason
    assert reason in excinfo.value.message_en
    assert reason in excinfo.value.message_ar


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
    assert "1 in 83,333 (1.2e-05: 8 providers x 50 wrong guesses" in reason
    assert 1 == reason.count("accept_guess_risk=True")


def test_accepted_policy_still_reports_its_risk() -> None:
    """accept_guess_risk=True builds the policy; guess_risk gives the same figures."""
    policy = Policy(failure_budget=1000, accept_guess_risk=True)
    risk = policy.guess_risk
    assert (1000, 24_000) == (risk.guesses_per_day, risk.tries_per_day)
    assert 24_000 / 10**8 == risk.per_subject_per_day
    assert 4_166 == risk.per_subject_per_day_one_in
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


@given(_risk_settings)
def test_guess_risk_follows_the_formula(settings: dict[str, Any]) -> None:
    """Any policy's figures are the formula's, in [0, 1], and consistent with one another."""
    policy = Policy(**settings, accept_guess_risk=True)
    risk = policy.guess_risk
    assert _expected(policy) == (risk.per_code, risk.per_subject_per_day)
    assert 0.0 < risk.per_code <= 1.0
    assert 0.0 < risk.per_subject_per_day <= 1.0
    assert risk.combinations == policy.code_format.combinations
    assert risk.tries_per_day == (
        risk.providers * risk.guesses_per_day * risk.codes_tested_per_guess
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


@given(_risk_settings)
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


def _looser(setting: str, current: Any, data: st.DataObject) -> Any:
    """A value of ``setting`` at least as loose as ``current``: a count as big, more providers."""
    if setting == "providers":
        more = data.draw(_provider_sets, label="more providers")
        return tuple(dict.fromkeys((*current, *more)))
    return current + data.draw(st.integers(min_value=0, max_value=1000), label="more")


@pytest.mark.parametrize(
    "setting", ["max_failed_attempts", "failure_budget", "max_live_codes", "providers"]
)
@given(settings=_risk_settings, data=st.data())
def test_looser_settings_never_lower_the_risk(
    setting: str, settings: dict[str, Any], data: st.DataObject
) -> None:
    """More attempts, budget, live codes or providers never lower either figure."""
    looser = {**settings, setting: _looser(setting, settings[setting], data)}
    before, after = _risk(**settings), _risk(**looser)
    assert before.per_code <= after.per_code
    assert before.per_subject_per_day <= after.per_subject_per_day


@given(settings=_risk_settings, data=st.data())
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


@given(settings=_risk_settings, extra=st.integers(min_value=1, max_value=8))
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


def test_default_bound_is_reached_by_a_cooperating_customer() -> None:
    """The default's 240 tries a day are reachable: re-issuing after each lock, provider by
    provider, every wrong guess meets 3 live codes. The bound is tight, not just safe."""
    policy = Policy()
    issuer, _clock = _fresh_issuer(policy)
    code_ids: list[str] = []
    codes: list[str] = []
    for provider in policy.providers:
        for _ in range(policy.failure_budget // policy.max_failed_attempts):
            for _ in range(policy.max_live_codes):
                issued = issuer.issue(_CITIZEN, provider)
                code_ids.append(issued.code_id)
                codes.append(issued.code)
            for _ in range(policy.max_failed_attempts):
                with pytest.raises(WrongCode):
                    issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")
    assert policy.guess_risk.tries_per_day == _tries(issuer, code_ids) == 240


def _worst_day(policy: Policy) -> int:
    """Tries charged in a day at which the attacker uses the whole budget at the start of each
    window at every provider, and the customer holds all ``max_live_codes`` codes there before
    every guess (re-issuing the locked ones, revoking the rest when the attacker moves on)."""
    issuer, clock = _fresh_issuer(policy)
    end = START + timedelta(hours=24)
    code_ids: list[str] = []
    codes: list[str] = []
    while clock.now() < end:
        for provider in policy.providers:
            here: list[str] = []
            for _ in range(policy.failure_budget):
                with contextlib.suppress(LiveCodeLimitReached):
                    while True:
                        issued = issuer.issue(_CITIZEN, provider)
                        here.append(issued.code_id)
                        codes.append(issued.code)
                with pytest.raises(WrongCode):
                    issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")
            with pytest.raises(FailureBudgetExhausted):
                issuer.redeem(_CITIZEN, provider, _a_wrong_code(codes), "new_line")
            for code_id in here:
                issuer.revoke(_CITIZEN, code_id)
            code_ids.extend(here)
        clock.set(clock.now() + policy.failure_window)
    return _tries(issuer, code_ids)


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
    ttl=st.sampled_from([timedelta(minutes=30), FOUR_HOURS]),
)
def test_the_bound_is_reached_in_the_worst_day(
    *, providers: int, attempts: int, budget: int, window: timedelta, live: int, ttl: timedelta
) -> None:
    """For any limits, the worst day charges exactly ``tries_per_day``: the bound is tight."""
    policy = Policy(
        providers=SAUDI_PROVIDERS[:providers],
        max_failed_attempts=attempts,
        failure_budget=budget,
        failure_window=window,
        max_live_codes=live,
        ttl=ttl,
        retention=timedelta(days=2),
        accept_guess_risk=True,
    )
    assert policy.guess_risk.tries_per_day == _worst_day(policy)


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
    ttl=st.sampled_from([timedelta(minutes=30), FOUR_HOURS]),
    actions=_actions,
)
def test_no_day_of_the_rules_exceeds_the_bound(
    *,
    attempts: int,
    budget: int,
    window: timedelta,
    live: int,
    ttl: timedelta,
    actions: list[tuple[str, int]],
) -> None:
    """Any mix of issues, revocations, waits and wrong guesses over a day, at three providers,
    charges no more tries than the bound: G x L per provider, P x G x L in all."""
    policy = Policy(
        providers=SAUDI_PROVIDERS[:3],
        max_failed_attempts=attempts,
        failure_budget=budget,
        failure_window=window,
        max_live_codes=live,
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
    assert all(
        tries <= risk.guesses_per_day * risk.codes_tested_per_guess for tries in per_provider
    )
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
