"""Tests for the domain's value objects: subjects, providers, services and issued codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import (
    company_numbers,
    government_identifiers,
    human_renderings,
    iqamas,
    junk_text,
    national_ids,
    non_str_values,
    subject_kinds,
)

from telecard_auth import (
    ACTIVATION_FOR_ACTUAL_USER,
    ADDITIONAL_SIM,
    DEFAULT_SERVICES,
    LOST_SIM_REPLACEMENT,
    NEW_LINE,
    NUMBER_PORTING,
    NUMBER_TRANSFER,
    SAUDI_PROVIDERS,
    InvalidIdentifier,
    InvalidInput,
    InvalidPolicy,
    IssuedCode,
    Provider,
    Service,
    Subject,
    SubjectKind,
    UnknownSubjectKind,
)

_BUILDERS = {
    SubjectKind.CITIZEN: Subject.citizen,
    SubjectKind.RESIDENT: Subject.resident,
    SubjectKind.COMPANY: Subject.company,
    SubjectKind.GOVERNMENT: Subject.government,
}


@st.composite
def _one_digit_changed(
    draw: st.DrawFn, identifiers: st.SearchStrategy[str], *, first: int = 0
) -> str:
    """A 10-digit identifier from ``identifiers`` with one digit, at ``first`` or later, changed."""
    identifier = draw(identifiers)
    position = draw(st.integers(min_value=first, max_value=9))
    shift = draw(st.integers(min_value=1, max_value=9))
    digit = "0123456789"[("0123456789".index(identifier[position]) + shift) % 10]
    return identifier[:position] + digit + identifier[position + 1 :]


# --- SubjectKind ---------------------------------------------------------------------------------


def test_subject_kind_values() -> None:
    """The four kinds of rule R1, with stable string values."""
    assert ["citizen", "resident", "government", "company"] == [kind.value for kind in SubjectKind]


@given(subject_kinds())
def test_subject_kind_parse_accepts_kind_and_value(kind: SubjectKind) -> None:
    """parse() returns the kind for the kind itself and for its string value."""
    assert kind is SubjectKind.parse(kind)
    assert kind is SubjectKind.parse(kind.value)


@pytest.mark.parametrize(
    "value", ["Citizen", "CITIZEN", "citizen ", "", "king", 1, None, b"citizen"]
)
def test_subject_kind_parse_refuses_anything_else(value: object) -> None:
    """Other strings and non-strings are UnknownSubjectKind, not ValueError from the enum."""
    with pytest.raises(UnknownSubjectKind) as excinfo:
        SubjectKind.parse(value)
    assert UnknownSubjectKind is type(excinfo.value)
    assert "unknown_subject_kind" == excinfo.value.code


@pytest.mark.parametrize(
    ("kind", "label_en", "label_ar"),
    [
        (SubjectKind.CITIZEN, "citizen", "مواطن"),
        (SubjectKind.RESIDENT, "resident", "مقيم"),
        (SubjectKind.GOVERNMENT, "government body", "جهة حكومية"),
        (SubjectKind.COMPANY, "company or establishment", "شركة أو مؤسسة"),
    ],
)
def test_subject_kind_labels(kind: SubjectKind, label_en: str, label_ar: str) -> None:
    """Each kind has an English and an Arabic label for messages."""
    assert (label_en, label_ar) == (kind.label_en, kind.label_ar)


# --- Subject: valid identifiers ------------------------------------------------------------------


@pytest.mark.parametrize("national_id", ["1000000008", "1110704341", "1909266858"])
def test_citizen_accepts_brief_examples(national_id: str) -> None:
    """The brief's valid national IDs make citizens."""
    subject = Subject.citizen(national_id)
    assert (SubjectKind.CITIZEN, national_id) == (subject.kind, subject.identifier)


def test_resident_accepts_brief_example() -> None:
    """The brief's valid Iqama makes a resident."""
    subject = Subject.resident("2129040479")
    assert (SubjectKind.RESIDENT, "2129040479") == (subject.kind, subject.identifier)


@pytest.mark.parametrize(
    "typed",
    [
        "١٠٠٠٠٠٠٠٠٨",
        "۱۰۰۰۰۰۰۰۰۸",
        "١٠٠٠ ٠٠٠-٠٠٨",
        "\u200f1000 000 008\u200e",
        "١٠٠0٠۰0٠٠٨",
        " 1000000008 ",
    ],
)
def test_citizen_identifier_is_normalised(typed: str) -> None:
    """Arabic-Indic digits and separators in a national ID are folded to ASCII."""
    assert "1000000008" == Subject.citizen(typed).identifier


@given(national_ids().flatmap(lambda value: st.tuples(st.just(value), human_renderings(value))))
def test_citizen_from_any_rendering(pair: tuple[str, str]) -> None:
    """Any rendering of a valid national ID gives a citizen with the ASCII ID."""
    ascii_id, typed = pair
    assert Subject.citizen(ascii_id) == Subject.citizen(typed)
    assert ascii_id == Subject.citizen(typed).identifier


@given(iqamas().flatmap(lambda value: st.tuples(st.just(value), human_renderings(value))))
def test_resident_from_any_rendering(pair: tuple[str, str]) -> None:
    """Any rendering of a valid Iqama gives a resident with the ASCII number."""
    ascii_id, typed = pair
    assert ascii_id == Subject.resident(typed).identifier


@given(company_numbers())
def test_company_checks_shape_only(number: str) -> None:
    """Any 10-digit number starting with 7 is a company: no check digit is applied."""
    assert number == Subject.company(number).identifier


def test_company_accepts_a_luhn_invalid_number() -> None:
    """A unified number that fails Luhn is still a company (no public check digit)."""
    assert "7000000001" == Subject.company("٧٠٠٠٠٠٠٠٠١").identifier


@given(government_identifiers())
def test_government_accepts_letters_and_digits(identifier: str) -> None:
    """1-32 ASCII letters or digits make a government body, letters folded to upper case."""
    assert identifier.upper() == Subject.government(identifier).identifier


def test_government_identifier_case_does_not_split_a_body() -> None:
    """The same body typed in either case is one subject."""
    assert Subject.government("moi1") == Subject.government("MOI1")


def test_government_identifier_is_normalised() -> None:
    """Arabic-Indic digits and separators in a government identifier are folded."""
    assert "MOI7001" == Subject.government("MOI-٧٠٠١").identifier


@given(subject_kinds())
def test_kind_given_as_string_works(kind: SubjectKind) -> None:
    """Subject(kind=<string value>) parses the kind."""
    identifier = {
        SubjectKind.CITIZEN: "1000000008",
        SubjectKind.RESIDENT: "2129040479",
        SubjectKind.COMPANY: "7000000001",
        SubjectKind.GOVERNMENT: "7001234567",
    }[kind]
    subject = Subject(kind=kind.value, identifier=identifier)
    assert kind is subject.kind
    assert _BUILDERS[kind](identifier) == subject


@pytest.mark.parametrize("kind", ["Citizen", "person", "", None, 1, b"citizen"])
def test_bad_kind_is_unknown_subject_kind(kind: object) -> None:
    """An unknown kind is UnknownSubjectKind, an InvalidInput naming the kinds (not an ID error)."""
    with pytest.raises(UnknownSubjectKind) as excinfo:
        Subject(kind=kind, identifier="1000000008")
    assert isinstance(excinfo.value, InvalidInput)
    assert "unknown_subject_kind" == excinfo.value.code
    assert "citizen, resident, government or company" in excinfo.value.message_en


def test_subject_is_frozen() -> None:
    """A subject cannot be changed after it is built."""
    subject = Subject.citizen("1000000008")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        subject.identifier = "1110704341"  # type: ignore[misc]


def test_subject_input_limit() -> None:
    """An identifier padded with spaces to exactly 64 characters is read; 65 is refused."""
    assert "1000000008" == Subject.citizen("1000000008".ljust(64)).identifier
    with pytest.raises(InvalidIdentifier) as excinfo:
        Subject.citizen("1000000008".ljust(65))
    assert "invalid_identifier" == excinfo.value.code


# --- Subject: refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "identifier", "reason"),
    [
        (SubjectKind.CITIZEN, "1234567890", "its check digit is wrong"),
        (SubjectKind.CITIZEN, "1000000009", "its check digit is wrong"),
        (SubjectKind.CITIZEN, "2129040479", "it must start with 1"),  # a valid Iqama
        (SubjectKind.CITIZEN, "7000000001", "it must start with 1"),
        (SubjectKind.CITIZEN, "0000000000", "it must start with 1"),
        (SubjectKind.CITIZEN, "100000008", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "10000000008", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "100000000O", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "1_000_000_008", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "+1000000008", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "10000000\u00b208", "it must be 10 digits"),
        (
            SubjectKind.CITIZEN,
            "\u0967\u0966\u0966\u0966\u0966\u0966\u0966\u0966\u0966\u096e",
            "it must be 10 digits",
        ),
        (
            SubjectKind.CITIZEN,
            "\uff11\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff18",
            "it must be 10 digits",
        ),
        (SubjectKind.CITIZEN, "1000000008\x00", "it must be 10 digits"),
        (SubjectKind.CITIZEN, "1000000008\n", "it must be 10 digits"),
        (SubjectKind.RESIDENT, "2111111111", "its check digit is wrong"),
        (SubjectKind.RESIDENT, "1000000008", "it must start with 2"),  # a valid national ID
        (SubjectKind.RESIDENT, "212904047", "it must be 10 digits"),
        (SubjectKind.COMPANY, "1000000008", "it must start with 7"),
        (SubjectKind.COMPANY, "700000000", "it must be 10 digits"),
        (SubjectKind.COMPANY, "70000000000", "it must be 10 digits"),
        (SubjectKind.COMPANY, "7OOOOOOOOO", "it must be 10 digits"),
        (SubjectKind.GOVERNMENT, "", "use 1 to 32 letters or digits"),
        (SubjectKind.GOVERNMENT, "A" * 33, "use 1 to 32 letters or digits"),
        (SubjectKind.GOVERNMENT, "gov_1", "use 1 to 32 letters or digits"),
        (SubjectKind.GOVERNMENT, "gov.1", "use 1 to 32 letters or digits"),
        (SubjectKind.GOVERNMENT, "وزارة", "use 1 to 32 letters or digits"),
        (SubjectKind.GOVERNMENT, "\u00e9cole", "use 1 to 32 letters or digits"),
        (SubjectKind.GOVERNMENT, "\u0967\u0968", "use 1 to 32 letters or digits"),
    ],
)
def test_identifier_refusals(kind: SubjectKind, identifier: str, reason: str) -> None:
    """Each kind's rule refuses with InvalidIdentifier and names the reason."""
    with pytest.raises(InvalidIdentifier) as excinfo:
        Subject(kind=kind, identifier=identifier)
    error = excinfo.value
    assert "invalid_identifier" == error.code
    assert reason == error.details["reason"]
    assert f"The {kind.label_en} identifier is not valid: {reason}." == error.message_en


@pytest.mark.parametrize("kind", list(SubjectKind))
@pytest.mark.parametrize("value", [1000000008, 7000000001, None, b"1000000008", 1.0e9, True])
def test_identifier_must_be_text(kind: SubjectKind, value: object) -> None:
    """Ints, None, bytes, floats and bools are refused for every kind, never converted."""
    with pytest.raises(InvalidIdentifier) as excinfo:
        Subject(kind=kind, identifier=value)  # type: ignore[arg-type]
    assert "invalid_identifier" == excinfo.value.code
    assert "it must be text" == excinfo.value.details["reason"]


@given(subject_kinds(), non_str_values())
def test_no_non_str_identifier_is_accepted(kind: SubjectKind, value: object) -> None:
    """No value that is not a str makes a subject of any kind."""
    with pytest.raises(InvalidIdentifier):
        Subject(kind=kind, identifier=value)  # type: ignore[arg-type]


@given(subject_kinds(), junk_text())
def test_junk_identifiers_are_refused(kind: SubjectKind, text: str) -> None:
    """Junk text never makes a subject of any kind."""
    with pytest.raises(InvalidIdentifier):
        Subject(kind=kind, identifier=text)


@given(_one_digit_changed(national_ids()))
def test_single_digit_error_in_national_id_is_refused(wrong: str) -> None:
    """Changing any one digit of a valid national ID makes it an invalid citizen ID."""
    with pytest.raises(InvalidIdentifier):
        Subject.citizen(wrong)


@given(_one_digit_changed(iqamas()))
def test_single_digit_error_in_iqama_is_refused(wrong: str) -> None:
    """Changing any one digit of a valid Iqama makes it an invalid resident number."""
    with pytest.raises(InvalidIdentifier):
        Subject.resident(wrong)


@given(_one_digit_changed(national_ids(), first=1))
def test_refusal_never_echoes_the_identifier(wrong: str) -> None:
    """Neither str() nor repr() of the error contains the identifier that was refused."""
    with pytest.raises(InvalidIdentifier) as excinfo:
        Subject.citizen(wrong)
    assert wrong not in str(excinfo.value)
    assert wrong not in repr(excinfo.value)
    assert wrong not in excinfo.value.details.values()


def test_refusal_has_arabic_message() -> None:
    """The Arabic message names the kind and the reason in Arabic."""
    with pytest.raises(InvalidIdentifier) as excinfo:
        Subject.citizen("1234567890")
    assert "رقم الهوية (مواطن) غير صحيح: رقم التحقق غير صحيح." == excinfo.value.message_ar
    assert excinfo.value.message_ar in str(excinfo.value)


# --- Subject: repr -------------------------------------------------------------------------------


def test_repr_masks_national_id() -> None:
    """repr shows only the last two digits of the national ID."""
    text = repr(Subject.citizen("1000000008"))
    assert "********08" in text
    assert "1000000008" not in text


@given(
    st.one_of(
        national_ids().map(Subject.citizen),
        iqamas().map(Subject.resident),
        company_numbers().map(Subject.company),
    )
)
def test_repr_never_shows_the_full_number(subject: Subject) -> None:
    """No 10-digit identifier appears in repr() or str(); its last two digits do."""
    for text in (repr(subject), str(subject)):
        assert subject.identifier not in text
        assert subject.identifier[:8] not in text
        assert "********" + subject.identifier[-2:] in text


# --- Provider and Service ------------------------------------------------------------------------


@pytest.mark.parametrize("value_object", [Provider, Service])
@pytest.mark.parametrize(
    "bad_id",
    ["", "STC", "Stc", "-stc", "_stc", "st c", "st.c", "a" * 33, "سلام", "stc\n", None, 5, b"stc"],
)
def test_bad_ids_are_refused(value_object: type[Provider | Service], bad_id: object) -> None:
    """Ids are 1-32 lowercase ASCII letters, digits, '_' or '-', not starting with '_' or '-'."""
    with pytest.raises(InvalidPolicy) as excinfo:
        value_object(id=bad_id, name_en="Name", name_ar="اسم")  # type: ignore[arg-type]
    assert "invalid_policy" == excinfo.value.code


@pytest.mark.parametrize("value_object", [Provider, Service])
@pytest.mark.parametrize("good_id", ["a", "0", "a" * 32, "red-bull_2"])
def test_good_ids_are_accepted(value_object: type[Provider | Service], good_id: str) -> None:
    """Ids of the documented shape are accepted as they are."""
    assert good_id == value_object(id=good_id, name_en="Name", name_ar="اسم").id


@pytest.mark.parametrize("value_object", [Provider, Service])
@pytest.mark.parametrize("field", ["name_en", "name_ar"])
@pytest.mark.parametrize("bad_name", ["", "   ", None, 5])
def test_bad_names_are_refused(
    value_object: type[Provider | Service], field: str, bad_name: object
) -> None:
    """Both names must be non-blank strings."""
    names: dict[str, object] = {"name_en": "Name", "name_ar": "اسم", field: bad_name}
    with pytest.raises(InvalidPolicy) as excinfo:
        value_object(id="x", **names)  # type: ignore[arg-type]
    assert "invalid_policy" == excinfo.value.code


def test_saudi_providers() -> None:
    """The default registry holds the three networks and five virtual operators, in order."""
    assert (
        "stc",
        "mobily",
        "zain",
        "virgin",
        "lebara",
        "salam",
        "redbull",
        "friendi",
    ) == tuple(provider.id for provider in SAUDI_PROVIDERS)


@pytest.mark.parametrize("provider", SAUDI_PROVIDERS)
def test_saudi_providers_have_both_names(provider: Provider) -> None:
    """Every operator has an English name and an Arabic name written in Arabic letters."""
    assert provider.name_en.strip()
    assert any("\u0621" <= char <= "\u064a" for char in provider.name_ar)


def test_default_services() -> None:
    """The default catalogue is the article's four services."""
    assert (
        "activation_for_actual_user",
        "lost_sim_replacement",
        "new_line",
        "number_transfer",
    ) == tuple(service.id for service in DEFAULT_SERVICES)
    assert (ACTIVATION_FOR_ACTUAL_USER, LOST_SIM_REPLACEMENT, NEW_LINE, NUMBER_TRANSFER) == (
        DEFAULT_SERVICES
    )


def test_regulator_extra_services_are_not_default() -> None:
    """Additional SIM and number porting exist but are not in the default catalogue."""
    assert ("additional_sim", "number_porting") == (ADDITIONAL_SIM.id, NUMBER_PORTING.id)
    assert ADDITIONAL_SIM not in DEFAULT_SERVICES
    assert NUMBER_PORTING not in DEFAULT_SERVICES


# --- IssuedCode ----------------------------------------------------------------------------------


def _issued(code: str) -> IssuedCode:
    issued_at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    return IssuedCode(
        code=code,
        code_id="c1",
        provider=SAUDI_PROVIDERS[0],
        service=None,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(hours=4),
    )


def test_issued_code_repr_leaves_the_code_out() -> None:
    """Logging an issued code does not leak the plaintext code."""
    assert "73920518" not in repr(_issued("73920518"))


@pytest.mark.parametrize(
    ("code", "display"),
    [("73920518", "7392 0518"), ("ABCDEF", "ABCD EF"), ("123456789012", "1234 5678 9012")],
)
def test_issued_code_display_groups_of_four(code: str, display: str) -> None:
    """display splits the code into groups of four for reading aloud."""
    assert display == _issued(code).display
