"""Nothing secret or personal at rest: a full dump of storage after a realistic run.

The run issues codes to several subjects of every kind at several providers, binds some to mobile
numbers and recipients, redeems, revokes, locks and lets some expire, and makes wrong attempts.
Then every stored snapshot, record and failure log is rendered (``repr`` and ``attrs.asdict``)
and searched for every plaintext code, identity number and mobile number, in every script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from tests.helpers import K1_SECRET, K2_SECRET, PSEUDONYM_SECRET, other_code

from telecard_auth import (
    BindingMismatch,
    BindingRequired,
    CodeExpired,
    CodeIssuer,
    CodeLocked,
    CodeRecord,
    CodeRevoked,
    CodeState,
    Commit,
    FailureLog,
    HmacKey,
    IssuedCode,
    Keyring,
    MalformedCode,
    ManualClock,
    MemoryStorage,
    Subject,
    TelecardAuthError,
    UnknownService,
    WrongCode,
)

CITIZENS = ("1000000008", "1110704341", "1909266858", "1122334459", "1555555554")
RESIDENTS = ("2129040479", "2123456788", "2345678904", "2987654320")
COMPANIES = ("7000000001", "7012345678", "7099999999")
GOVERNMENT = ("7001234567", "7100000000", "7555555555")
MOBILES = ("0551234567", "+966501112223", "00966598765432", "٠٥٦٣٣٣٤٤٤٥", "۵۴۴۵۵۵۶۶۶")

SCRIPTS = (
    str.maketrans("", ""),
    str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"),
    str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"),
)
TO_ASCII = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def renderings(digits: str) -> set[str]:
    """``digits`` in ASCII, Arabic-Indic and Extended Arabic-Indic digits."""
    return {digits.translate(table) for table in SCRIPTS}


def mobile_core(typed: str) -> str:
    """The nine digits 5XXXXXXXX that every accepted form of a mobile number contains."""
    digits = "".join(
        char for char in typed.translate(TO_ASCII) if char.isascii() and char.isdigit()
    )
    return digits[-9:]


@attrs.define
class Run:
    """What a realistic run leaves behind, to be searched for."""

    storage: MemoryStorage
    issuer: CodeIssuer
    codes: list[IssuedCode] = attrs.Factory(list)
    errors: list[TelecardAuthError] = attrs.Factory(list)
    outputs: list[object] = attrs.Factory(list)

    def refused(
        self,
        expected: type[TelecardAuthError],
        call: Callable[..., object],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Call ``call(*args, **kwargs)`` and record the ``expected`` error it must raise."""
        with pytest.raises(expected) as caught:
            call(*args, **kwargs)
        self.errors.append(caught.value)


@pytest.fixture
def run(storage: MemoryStorage, keyring: Keyring, clock: ManualClock) -> Run:
    """Drive a day of realistic traffic through one issuer and memory storage."""
    rotated = keyring.with_key(HmacKey(key_id="k2", secret=K2_SECRET))
    early = CodeIssuer(storage, keyring=keyring, clock=clock)
    issuer = CodeIssuer(storage, keyring=rotated, clock=clock)
    result = Run(storage=storage, issuer=issuer)
    subjects = (
        [Subject.citizen(number) for number in CITIZENS]
        + [Subject.resident(number) for number in RESIDENTS]
        + [Subject.company(number) for number in COMPANIES]
        + [Subject.government(number) for number in GOVERNMENT]
    )
    # Some identifiers typed in Arabic-Indic digits, as customers do.
    subjects[1] = Subject.citizen(CITIZENS[1].translate(SCRIPTS[1]))
    subjects[6] = Subject.resident(RESIDENTS[1].translate(SCRIPTS[2]))
    providers = ("stc", "mobily", "zain", "virgin", "lebara", "salam", "redbull", "friendi")

    for index, subject in enumerate(subjects):
        active = early if index % 4 == 0 else issuer
        recipient = subjects[(index + 1) % len(subjects)]
        mobile = MOBILES[index % len(MOBILES)]
        first = active.issue(subject, providers[index % 8], msisdn=mobile)
        second = issuer.issue(
            subject, providers[(index + 3) % 8], service="number_transfer", recipient=recipient
        )
        third = issuer.issue(subject, providers[(index + 5) % 8], service="new_line")
        result.codes += [first, second, third]
        result.outputs += [first, second, third]

        # First code: a wrong number, then redeemed with another form of the right one.
        result.refused(
            BindingMismatch,
            issuer.redeem,
            subject,
            first.provider,
            first.code,
            "new_line",
            msisdn="0599999999",
        )
        result.refused(
            BindingRequired, issuer.redeem, subject, first.provider, first.code, "new_line"
        )
        result.outputs.append(
            issuer.redeem(
                subject, first.provider, first.code.translate(SCRIPTS[1]), "new_line", msisdn=mobile
            )
        )
        # Second code: a wrong recipient, then revoked (or redeemed by the right recipient).
        result.refused(
            BindingMismatch,
            issuer.redeem,
            subject,
            second.provider,
            second.code,
            "number_transfer",
            recipient=subject,
        )
        if index % 2:
            result.outputs.append(issuer.revoke(subject, second.code_id))
            result.refused(
                CodeRevoked,
                issuer.redeem,
                subject,
                second.provider,
                second.code,
                "number_transfer",
                recipient=recipient,
            )
        else:
            result.outputs.append(
                issuer.redeem(
                    subject, second.provider, second.code, "number_transfer", recipient=recipient
                )
            )
        # Third code: locked by wrong guesses for some, left to expire for the others.
        if index % 3 == 0:
            for _ in range(5):
                result.refused(
                    WrongCode,
                    issuer.redeem,
                    subject,
                    third.provider,
                    other_code(third.code),
                    "new_line",
                )
            result.refused(
                CodeLocked, issuer.redeem, subject, third.provider, third.code, "new_line"
            )
        result.refused(MalformedCode, issuer.redeem, subject, "stc", "12", "new_line")
        result.refused(
            UnknownService, issuer.redeem, subject, third.provider, third.code, "number_porting"
        )
        result.outputs += [issuer.status(subject, code.code_id) for code in (first, second, third)]
        clock.advance(minutes=7)

    clock.advance(hours=5)
    for index, subject in enumerate(subjects):
        third = result.codes[3 * index + 2]
        if index % 3:
            result.refused(
                CodeExpired, issuer.redeem, subject, third.provider, third.code, "new_line"
            )
        fresh = issuer.issue(subject, "stc", msisdn=MOBILES[(index + 2) % len(MOBILES)])
        result.codes.append(fresh)
        result.outputs.append(fresh)
    return result


def secrets_of(run: Run) -> set[str]:
    """Every string that must never be found at rest."""
    forbidden: set[str] = set()
    for issued in run.codes:
        forbidden |= renderings(issued.code)
    for number in CITIZENS + RESIDENTS + COMPANIES + GOVERNMENT:
        forbidden |= renderings(number)
    for typed in (*MOBILES, "0599999999"):
        forbidden |= renderings(mobile_core(typed))
        forbidden.add(typed)
    return forbidden


def dump_texts(storage: MemoryStorage) -> list[str]:
    """The repr and asdict rendering of every snapshot, record and failure log in storage."""
    texts = []
    for snapshot in storage.snapshots():
        texts += [repr(snapshot), repr(attrs.asdict(snapshot, recurse=True))]
        items: tuple[CodeRecord | FailureLog, ...] = (*snapshot.codes, *snapshot.failure_logs)
        for item in items:
            texts += [repr(item), repr(attrs.asdict(item)), str(attrs.astuple(item))]
    return texts


def test_the_run_left_every_kind_of_record(run: Run) -> None:
    """The dump is not vacuous: all codes are stored, in every state, with both bindings."""
    records = [record for snapshot in run.storage.snapshots() for record in snapshot.codes]
    assert {issued.code_id for issued in run.codes} == {record.code_id for record in records}
    now = run.issuer.clock.now()
    states = {record.state for record in records}
    assert {CodeState.ACTIVE, CodeState.REDEEMED, CodeState.REVOKED, CodeState.LOCKED} == states
    assert any(r.state is CodeState.ACTIVE and r.expires_at <= now for r in records)
    assert any(r.msisdn_ref is not None for r in records)
    assert any(r.recipient_ref is not None for r in records)
    assert {"k1", "k2"} == {record.key_id for record in records}
    logs = [log for snapshot in run.storage.snapshots() for log in snapshot.failure_logs]
    assert any(log.failures for log in logs)
    assert 15 == len(list(run.storage.snapshots()))


def test_no_code_identity_or_mobile_number_at_rest(run: Run) -> None:
    """No plaintext code, identity number or mobile number appears anywhere in the dump."""
    texts = dump_texts(run.storage)
    forbidden = secrets_of(run)
    assert len(forbidden) > 3 * len(run.codes)
    leaks = sorted({secret for secret in forbidden for text in texts if secret in text})
    assert [] == leaks


def test_no_key_material_at_rest(run: Run) -> None:
    """Neither HMAC secret nor the pseudonym secret is stored."""
    texts = dump_texts(run.storage)
    for secret in (K1_SECRET, K2_SECRET, PSEUDONYM_SECRET):
        for rendering in (repr(secret), secret.decode(), secret.hex()):
            assert not any(rendering in text for text in texts)


def test_digests_are_not_reproducible_without_the_key(run: Run) -> None:
    """A stored digest is keyed: the unkeyed SHA-256 of the code never matches it."""
    records = {r.code_id: r for s in run.storage.snapshots() for r in s.codes}
    for issued in run.codes:
        digest = records[issued.code_id].digest
        assert 32 == len(digest)
        assert hashlib.sha256(issued.code.encode()).digest() != digest


def test_results_and_errors_do_not_echo_secrets(run: Run) -> None:
    """What the library hands back (minus IssuedCode.code itself) never shows a code or an ID."""
    assert len(run.errors) > 50
    forbidden = secrets_of(run)
    texts = [repr(output) for output in run.outputs]
    for error in run.errors:
        texts += [str(error), repr(error), error.message("ar"), repr(dict(error.details))]
    texts += [repr(run.storage), repr(run.issuer), repr(run.issuer.keyring)]
    leaks = sorted({secret for secret in forbidden for text in texts if secret in text})
    assert [] == leaks


def test_every_wrong_attempt_is_logged(run: Run) -> None:
    """The failure logs hold exactly the counted refusals of the run (none has left the window)."""
    counted = sum(isinstance(e, WrongCode) or e.code == "binding_mismatch" for e in run.errors)
    logged = sum(
        len(log.failures) for snapshot in run.storage.snapshots() for log in snapshot.failure_logs
    )
    assert counted == logged
    assert timedelta(hours=24) > run.issuer.clock.now() - run.codes[0].issued_at


def test_the_search_finds_a_planted_leak(run: Run, clock: ManualClock) -> None:
    """The dump search is not blind: a code or ID planted in a stored field is found."""
    planted = run.codes[0]
    snapshot = next(iter(run.storage.snapshots()))
    leaky = CodeRecord(
        code_id=planted.code,
        subject_ref=snapshot.subject_ref,
        provider_id="stc",
        key_id="k1",
        digest=b"x",
        issued_at=clock.now(),
        expires_at=clock.now(),
        service_id=CITIZENS[0].translate(SCRIPTS[1]),
    )
    change = Commit(
        subject_ref=snapshot.subject_ref,
        expected_version=snapshot.version,
        codes=(*snapshot.codes, leaky),
        failure_logs=snapshot.failure_logs,
        written_at=clock.now(),
        keep_until=clock.now(),
    )
    assert run.storage.commit(change)
    texts = dump_texts(run.storage)
    found = {secret for secret in secrets_of(run) for text in texts if secret in text}
    assert {planted.code, CITIZENS[0].translate(SCRIPTS[1])} <= found
