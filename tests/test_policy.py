"""Tests for the code format and the policy: every knob's validation and every lookup."""

from __future__ import annotations

import string
from collections import Counter
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import FOUR_HOURS
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
    InvalidPolicy,
    MalformedCode,
    Policy,
    Provider,
    Service,
    SubjectKind,
    UnknownProvider,
    UnknownService,
    default_government_id_validator,
)

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
    """Values that are neither ids nor Providers are UnknownProvider naming their type."""
    with pytest.raises(UnknownProvider) as excinfo:
        Policy().provider(value)
    assert shown == excinfo.value.details["provider"]


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
