"""Tests for the pytest plugin: found through its entry point, fixtures that work, fresh per test.

Most tests write a small project with pytest's own ``pytester`` and run pytest on it, as a
service's test suite would; its ``pytest.ini`` is strict (``filterwarnings = error``,
``--strict-markers``, ``--import-mode=importlib``), so a warning from the plugin fails it.
"""

from __future__ import annotations

import importlib.metadata
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telecard_auth import (
    CodeIssuer,
    Keyring,
    ManualClock,
    MemoryStorage,
    SubjectKind,
    luhn_valid,
)
from telecard_auth import pytest_plugin as plugin
from telecard_auth._core.keyring import weakness
from telecard_auth._core.requests import identity_of
from telecard_auth.pytest_plugin import MakeTelecardIssuer, MakeTelecardSubject

pytest_plugins = ["pytester"]

#: The page whose ``py`` blocks are pytest modules, each named by its first line.
TESTING_PAGE = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
PYTEST_MODULE_BLOCK = re.compile(r"^```py\n# (test_\w+)\.py\n(.*?)^```$", re.MULTILINE | re.DOTALL)

FIXTURES = (
    "telecard_clock",
    "telecard_keyring",
    "telecard_storage",
    "telecard_async_storage",
    "telecard_signer",
    "telecard_events",
    "telecard_policy",
    "make_telecard_issuer",
    "telecard_issuer",
    "telecard_async_issuer",
    "make_telecard_subject",
)

STRICT_INI = """
[pytest]
addopts = --strict-markers --strict-config --import-mode=importlib -p no:cacheprovider
filterwarnings = error
xfail_strict = true
"""

SERVICE_TESTS = '''
"""A service's own tests, each using the plugin's fixtures in one line."""

import asyncio
import json
from datetime import timedelta

import pytest

from telecard_auth import (
    CodeExpired,
    CodeLocked,
    ManualClock,
    Policy,
    WrongCode,
    events,
    verify_receipt,
)


def wrong(code):
    return code[:-1] + ("1" if code[-1] == "0" else "0")


def test_issue_redeem_and_verify_the_receipt(
    telecard_issuer, telecard_signer, make_telecard_subject
):
    customer = make_telecard_subject()
    issued = telecard_issuer.issue(customer, "stc")
    redemption = telecard_issuer.redeem(customer, "stc", issued.code, "new_line")
    operator_jwks = json.loads(json.dumps(telecard_signer.public_jwks()))  # as published
    receipt = verify_receipt(redemption.receipt.token, operator_jwks, audience="stc")
    assert (receipt.code_id, receipt.provider_id, receipt.service_id) == (
        issued.code_id,
        "stc",
        "new_line",
    )


def test_events_are_collected(telecard_issuer, telecard_events, make_telecard_subject):
    customer = make_telecard_subject()
    issued = telecard_issuer.issue(customer, "stc")
    with pytest.raises(WrongCode):
        telecard_issuer.redeem(customer, "stc", wrong(issued.code), "new_line")
    telecard_issuer.redeem(customer, "stc", issued.code, "new_line")
    kinds = [event.kind for event in telecard_events.events]
    assert kinds == ["code_issued", "redemption_refused", "code_redeemed"]
    [redeemed] = telecard_events.of_type(events.CodeRedemption)
    assert redeemed.code_id == issued.code_id
    assert redeemed.receipt_key_id == "r1"


def test_the_clock_starts_at_the_documented_time(telecard_clock, telecard_issuer,
                                                 make_telecard_subject):
    assert telecard_clock.now() == ManualClock.DEFAULT_START
    assert telecard_clock.now().isoformat() == "2026-01-01T00:00:00+00:00"
    issued = telecard_issuer.issue(make_telecard_subject(), "zain")
    assert issued.issued_at == ManualClock.DEFAULT_START


def test_a_code_expires_when_the_clock_moves(
    telecard_issuer, telecard_clock, make_telecard_subject
):
    customer = make_telecard_subject("resident")
    issued = telecard_issuer.issue(customer, "mobily")
    telecard_clock.advance(hours=4)
    with pytest.raises(CodeExpired):
        telecard_issuer.redeem(customer, "mobily", issued.code, "new_line")


def test_a_code_locks_after_the_attempt_limit(
    telecard_issuer, telecard_policy, make_telecard_subject
):
    customer = make_telecard_subject()
    issued = telecard_issuer.issue(customer, "stc")
    for _ in range(telecard_policy.max_failed_attempts):
        with pytest.raises(WrongCode):
            telecard_issuer.redeem(customer, "stc", wrong(issued.code), "new_line")
    with pytest.raises(CodeLocked):
        telecard_issuer.redeem(customer, "stc", issued.code, "new_line")


def test_the_async_issuer_shares_storage_clock_signer_and_events(
    telecard_issuer, telecard_async_issuer, telecard_clock, telecard_signer, telecard_events,
    make_telecard_subject,
):
    customer = make_telecard_subject("company")
    issued = telecard_issuer.issue(customer, "zain")
    telecard_clock.advance(minutes=30)

    async def at_the_counter():
        return await telecard_async_issuer.redeem(customer, "zain", issued.code, "new_line")

    redemption = asyncio.run(at_the_counter())
    assert redemption.code_id == issued.code_id
    assert redemption.redeemed_at == ManualClock.DEFAULT_START + timedelta(minutes=30)
    assert verify_receipt(redemption.receipt.token, telecard_signer, audience="zain") == (
        redemption.receipt
    )
    assert [e.kind for e in telecard_events.events] == ["code_issued", "code_redeemed"]


def test_the_factory_overrides_one_part_and_shares_the_rest(
    make_telecard_issuer, telecard_issuer, telecard_events, make_telecard_subject
):
    hourly = make_telecard_issuer(policy=Policy(ttl=timedelta(hours=1)), events=())
    customer = make_telecard_subject("government")
    issued = hourly.issue(customer, "stc")
    assert issued.expires_at - issued.issued_at == timedelta(hours=1)
    assert telecard_events.events == []
    assert telecard_issuer.redeem(customer, "stc", issued.code, "new_line").code_id == (
        issued.code_id
    )
'''

FRESH_TESTS = """
import pytest

from telecard_auth import ManualClock

SEEN = []


@pytest.mark.parametrize("run", [1, 2])
def test_each_run_starts_clean(run, telecard_issuer, telecard_clock, telecard_events,
                               telecard_storage, telecard_keyring, telecard_signer,
                               make_telecard_subject):
    assert telecard_clock.now() == ManualClock.DEFAULT_START
    assert telecard_events.events == []
    assert list(telecard_storage.snapshots()) == []
    customer = make_telecard_subject()
    assert customer.identifier == "1000000016"

    telecard_issuer.issue(customer, "stc")
    telecard_clock.advance(hours=5)
    SEEN.append((telecard_issuer, telecard_keyring, telecard_signer))
    issuers, keyrings, signers = zip(*SEEN)
    assert len({id(issuer) for issuer in issuers}) == len(SEEN)
    assert len({keyring.current.secret for keyring in keyrings}) == len(SEEN)
    assert len({keyring.pseudonym_key.secret for keyring in keyrings}) == len(SEEN)
    assert ["p1"] == [key.key_id for key in telecard_keyring.pseudonym_keys]
    assert len({signer.public_jwks()["keys"][0]["x"] for signer in signers}) == len(SEEN)
"""


def _write_project(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makeini(STRICT_INI)
    pytester.makepyfile(**{name: textwrap.dedent(text) for name, text in files.items()})


def test_pytest_finds_the_plugin_through_its_entry_point(request: pytest.FixtureRequest) -> None:
    """The pytest11 entry point telecard_auth names the module, and this session loaded it."""
    [entry_point] = importlib.metadata.entry_points(group="pytest11", name="telecard_auth")
    assert "telecard_auth.pytest_plugin" == entry_point.value
    assert plugin is request.config.pluginmanager.get_plugin("telecard_auth")


def test_the_plugin_defines_fixtures_and_no_hook() -> None:
    """The module holds no pytest_* hook: a session that never uses its fixtures is unchanged."""
    assert [] == [name for name in vars(plugin) if name.startswith("pytest_")]


def test_fixtures_are_listed_with_their_documentation(pytester: pytest.Pytester) -> None:
    """pytest --fixtures, in a project with no conftest, lists every fixture and its first line."""
    pytester.makeini(STRICT_INI)
    result = pytester.runpytest_subprocess("--fixtures")
    output = result.stdout.str()
    assert [] == [name for name in FIXTURES if f"\n{name} -- " not in output]
    result.stdout.fnmatch_lines(
        [
            "*fixtures defined from telecard_auth.pytest_plugin*",
            "telecard_clock -- *",
            "    A ManualClock at 2026-01-01 00:00:00 UTC that moves only when the test moves it.",
        ]
    )
    assert pytest.ExitCode.OK == result.ret


def test_a_service_suite_uses_the_fixtures(pytester: pytest.Pytester) -> None:
    """A generated test module issues, redeems, verifies, expires and locks codes, and passes."""
    _write_project(pytester, test_service=SERVICE_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=7)


def test_fixtures_are_fresh_in_every_test(pytester: pytest.Pytester) -> None:
    """Whichever test runs second sees a clock at the start, no events or data, and new keys."""
    _write_project(pytester, test_fresh=FRESH_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_overriding_a_fixture_rewires_the_issuers(pytester: pytest.Pytester) -> None:
    """A project's own telecard_clock and telecard_policy reach both issuer fixtures."""
    conftest = """
        from datetime import UTC, datetime, timedelta

        import pytest

        from telecard_auth import ManualClock, Policy


        @pytest.fixture
        def telecard_clock():
            return ManualClock(datetime(2030, 6, 1, 12, 0, tzinfo=UTC))


        @pytest.fixture
        def telecard_policy():
            return Policy(ttl=timedelta(hours=1))
    """
    tests = """
        import asyncio
        from datetime import UTC, datetime, timedelta

        NOON = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


        def test_sync(telecard_issuer, make_telecard_subject):
            issued = telecard_issuer.issue(make_telecard_subject(), "stc")
            assert (issued.issued_at, issued.expires_at) == (NOON, NOON + timedelta(hours=1))


        def test_async(telecard_async_issuer, make_telecard_subject):
            issued = asyncio.run(telecard_async_issuer.issue(make_telecard_subject(), "stc"))
            assert (issued.issued_at, issued.expires_at) == (NOON, NOON + timedelta(hours=1))
    """
    _write_project(pytester, conftest=conftest, test_override=tests)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_fixtures_live_beside_a_projects_own(pytester: pytest.Pytester) -> None:
    """A project's clock, keyring and issuer fixtures and telecard_auth.testing's stay its own."""
    conftest = """
        import pytest

        pytest_plugins = ["telecard_auth.testing"]


        @pytest.fixture
        def issuer():
            return "the project's issuer"
    """
    tests = """
        from telecard_auth import CodeIssuer, ManualClock
        from telecard_auth.testing import START


        def test_both(issuer, clock, keyring, telecard_issuer, telecard_clock, telecard_keyring):
            assert issuer == "the project's issuer"
            assert isinstance(telecard_issuer, CodeIssuer)
            assert clock.now() == START
            assert telecard_clock.now() == ManualClock.DEFAULT_START
            assert telecard_issuer.clock is telecard_clock
            assert keyring is not telecard_keyring
            assert telecard_issuer.keyring is telecard_keyring
    """
    _write_project(pytester, conftest=conftest, test_beside=tests)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    """With -p no:telecard_auth, the fixtures do not exist."""
    _write_project(pytester, test_off="def test_off(telecard_issuer):\n    pass\n")
    result = pytester.runpytest("-p", "no:telecard_auth")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'telecard_issuer' not found*"])


def test_the_documented_test_modules_pass(pytester: pytest.Pytester) -> None:
    """Every pytest module shown in docs/testing.md runs, and each of its tests passes."""
    blocks = PYTEST_MODULE_BLOCK.findall(TESTING_PAGE.read_text(encoding="utf-8"))
    modules = dict(blocks)
    assert len(blocks) == len(modules) >= 3
    _write_project(pytester, **modules)
    reports = pytester.inline_run()
    passed, skipped, failed = reports.listoutcomes()
    assert ([], []) == (skipped, failed)
    documented = {
        (f"{name}.py", test)
        for name, source in blocks
        for test in re.findall(r"^def (test_\w+)", source, re.MULTILINE)
    }
    ran = {(report.nodeid.split("::")[0], report.nodeid.split("::")[-1]) for report in passed}
    assert set() == documented - ran
    assert any(report.nodeid.startswith("test_my_storage.py::TestMyStorage::") for report in passed)


def test_issuer_fixture_is_wired_to_the_other_fixtures(
    telecard_issuer: CodeIssuer,
    telecard_storage: MemoryStorage,
    telecard_keyring: Keyring,
    telecard_clock: ManualClock,
    make_telecard_subject: MakeTelecardSubject,
) -> None:
    """telecard_issuer stores in telecard_storage, with telecard_keyring, at telecard_clock."""
    telecard_clock.set(datetime(2026, 5, 1, 8, 0, tzinfo=UTC))
    issued = telecard_issuer.issue(make_telecard_subject(), "stc")
    [snapshot] = telecard_storage.snapshots()
    [record] = snapshot.codes
    assert issued.code_id == record.code_id
    assert telecard_keyring.current.key_id == record.key_id
    assert datetime(2026, 5, 1, 8, 0, tzinfo=UTC) == record.issued_at


def test_keyring_fixture_holds_fresh_random_keys_and_files_subjects_under_p1(
    telecard_issuer: CodeIssuer,
    telecard_storage: MemoryStorage,
    telecard_keyring: Keyring,
    make_telecard_subject: MakeTelecardSubject,
) -> None:
    """telecard_keyring has one HMAC key k1 and one pseudonym key p1, not in standby, each of
    random bytes of its own; subjects are filed and sealed under p1."""
    assert (["k1"], ["p1"], False) == (
        [key.key_id for key in telecard_keyring.keys],
        [key.key_id for key in telecard_keyring.pseudonym_keys],
        telecard_keyring.pseudonym_standby,
    )
    secrets = (telecard_keyring.current.secret, telecard_keyring.pseudonym_key.secret)
    assert (None, None) == tuple(weakness(secret) for secret in secrets)
    assert secrets[0] != secrets[1]
    customer = make_telecard_subject()
    telecard_issuer.issue(customer, "stc")
    [snapshot] = telecard_storage.snapshots()
    identity = identity_of(customer)
    assert telecard_keyring.subject_ref(identity, "p1") == snapshot.subject_ref
    assert ("p1", identity) == telecard_keyring.unseal(snapshot.identity, snapshot.subject_ref)


def test_make_telecard_issuer_defaults_to_the_fixtures(
    make_telecard_issuer: MakeTelecardIssuer,
    telecard_issuer: CodeIssuer,
) -> None:
    """An issuer made without arguments has the same parts as telecard_issuer."""
    made = make_telecard_issuer()
    assert made is not telecard_issuer
    assert (
        telecard_issuer.storage,
        telecard_issuer.keyring,
        telecard_issuer.policy,
        telecard_issuer.clock,
        telecard_issuer.signer,
        telecard_issuer.sinks,
    ) == (made.storage, made.keyring, made.policy, made.clock, made.signer, made.sinks)


@pytest.mark.parametrize("kind", list(SubjectKind))
def test_make_telecard_subject_makes_valid_distinct_subjects(
    make_telecard_subject: MakeTelecardSubject, kind: SubjectKind
) -> None:
    """Every subject of a kind is of that kind, valid under its rules, and new within the test."""
    subjects = [make_telecard_subject(kind.value) for _ in range(50)]
    identifiers = [subject.identifier for subject in subjects]
    assert {kind} == {subject.kind for subject in subjects}
    assert 50 == len(set(identifiers))
    assert all(len(identifier) == 10 and identifier.isascii() for identifier in identifiers)
    if kind in (SubjectKind.CITIZEN, SubjectKind.RESIDENT):
        first = "1" if kind is SubjectKind.CITIZEN else "2"
        assert all(identifier[0] == first and luhn_valid(identifier) for identifier in identifiers)
    else:
        assert all(identifier.startswith("7") for identifier in identifiers)


def test_make_telecard_subject_numbers_subjects_across_kinds(
    make_telecard_subject: MakeTelecardSubject,
) -> None:
    """A company and a government body made in one test never share an identifier."""
    company = make_telecard_subject(SubjectKind.COMPANY)
    government = make_telecard_subject(SubjectKind.GOVERNMENT)
    assert ("7000000001", "7000000002") == (company.identifier, government.identifier)


def test_make_telecard_subject_refuses_an_unknown_kind(
    make_telecard_subject: MakeTelecardSubject,
) -> None:
    """A kind that is not a SubjectKind value is a ValueError, not a subject of some other kind."""
    with pytest.raises(ValueError, match="alien"):
        make_telecard_subject("alien")
