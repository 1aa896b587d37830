"""Nothing secret or personal at rest: a full dump of storage after a realistic run.

The run issues codes to several subjects of every kind at several providers, binds some to mobile
numbers and recipients, redeems (with request ids and references), revokes, locks and lets some
expire, and makes wrong attempts, some at providers where the subject has no code. Then every
stored snapshot, record and failure log is rendered (``repr`` and ``attrs.asdict``), with the
bytes inside each sealed identity, and searched for every plaintext code, identity number, mobile
number and request id, in every script.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
from telecard_auth._core.requests import identity_of

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
    subjects: list[Subject] = attrs.Factory(list)
    codes: list[IssuedCode] = attrs.Factory(list)
    errors: list[TelecardAuthError] = attrs.Factory(list)
    outputs: list[object] = attrs.Factory(list)
    #: The caller's own values: request ids and references given at redemption.
    labels: list[str] = attrs.Factory(list)
    #: Wrong codes that were compared with no live code, and so charged to nothing.
    uncharged: int = 0

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

    def labelled(self, index: int, step: str) -> tuple[str, str]:
        """A request id and a reference for one redemption, remembered to be searched for."""
        request_id, reference = f"req-{index:03d}-{step}", f"agent-{index:03d}-{step}"
        self.labels += [request_id, reference]
        return request_id, reference


@pytest.fixture
def run(storage: MemoryStorage, keyring: Keyring, clock: ManualClock) -> Run:
    """Drive a day of realistic traffic through one issuer and memory storage."""
    rotated = keyring.with_key(HmacKey(key_id="k2", secret=K2_SECRET))
    early = CodeIssuer(storage, keyring=keyring, clock=clock)
    issuer = CodeIssuer(storage, keyring=rotated, clock=clock)
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
    result = Run(storage=storage, issuer=issuer, subjects=subjects)

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
        request_id, reference = result.labelled(index, "first")
        result.outputs.append(
            issuer.redeem(
                subject,
                first.provider,
                first.code.translate(SCRIPTS[1]),
                "new_line",
                msisdn=mobile,
                request_id=request_id,
                reference=reference,
            )
        )
        # A wrong code where the subject has no code: refused, charged to nothing, stored nowhere.
        result.refused(
            WrongCode, issuer.redeem, subject, providers[(index + 1) % 8], first.code, "new_line"
        )
        result.uncharged += 1
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
            request_id, reference = result.labelled(index, "second")
            result.outputs.append(
                issuer.redeem(
                    subject,
                    second.provider,
                    second.code,
                    "number_transfer",
                    recipient=recipient,
                    request_id=request_id,
                    reference=reference,
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
    return forbidden | set(run.labels)


def sealed_bytes(envelope: str) -> str:
    """The bytes inside a sealed identity (``<key id>.<base64url>``), as text to search.

    Were sealing only an encoding, the identity would show here, though not in the text itself.
    """
    encoded = envelope.partition(".")[2]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("latin-1")


def dump_texts(storage: MemoryStorage) -> list[str]:
    """The repr and asdict rendering of every snapshot, record and failure log in storage, and
    the bytes inside every sealed identity."""
    texts = []
    for snapshot in storage.snapshots():
        texts += [repr(snapshot), repr(attrs.asdict(snapshot, recurse=True))]
        if snapshot.identity is not None:
            texts.append(sealed_bytes(snapshot.identity))
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
    assert any(r.request_ref is not None and r.request_inputs is not None for r in records)
    assert {"k1", "k2"} == {record.key_id for record in records}
    logs = [log for snapshot in run.storage.snapshots() for log in snapshot.failure_logs]
    assert any(log.failures for log in logs)
    assert 15 == len(list(run.storage.snapshots()))


def test_no_code_identity_mobile_number_or_request_id_at_rest(run: Run) -> None:
    """No code, identity number, mobile number, request id or reference is stored, even sealed."""
    # Not in any field, nor inside a sealed identity: the identity is encrypted, not encoded.
    texts = dump_texts(run.storage)
    forbidden = secrets_of(run)
    assert len(forbidden) > 3 * len(run.codes)
    leaks = sorted({secret for secret in forbidden for text in texts if secret in text})
    assert [] == leaks


def test_no_key_material_at_rest(run: Run) -> None:
    """Neither HMAC key, nor the pseudonym key, nor the key that seals identities is stored."""
    texts = dump_texts(run.storage)
    seal_key = hmac.new(PSEUDONYM_SECRET, b"seal", "sha256").digest()
    for secret in (K1_SECRET, K2_SECRET, PSEUDONYM_SECRET, seal_key):
        renderings = (
            repr(secret),
            secret.hex(),
            base64.urlsafe_b64encode(secret).decode().rstrip("="),
            base64.b64encode(secret).decode().rstrip("="),
            secret.decode("latin-1"),
        )
        for rendering in renderings:
            assert not any(rendering in text for text in texts)


def test_every_subject_is_filed_under_its_pseudonym_with_its_identity_sealed(
    run: Run, keyring: Keyring
) -> None:
    """Each subject is filed under its pseudonym, and its sealed identity opens to it."""
    # So the identity is in storage, encrypted: the search for it in the dump is not vacuous.
    numbers = CITIZENS + RESIDENTS + COMPANIES + GOVERNMENT
    opened = []
    for snapshot in run.storage.snapshots():
        found = keyring.unseal(snapshot.identity, snapshot.subject_ref)
        assert found is not None
        key_id, identity = found
        assert "p1" == key_id
        assert keyring.subject_ref(identity) == snapshot.subject_ref
        opened.append(identity.partition(":")[2])
    assert sorted(numbers) == sorted(opened)


def test_no_recipient_is_stored_under_its_storage_key(run: Run, keyring: Keyring) -> None:
    """A recipient is stored as a digest bound to its code, never as the recipient's storage key."""
    storage_keys = {snapshot.subject_ref for snapshot in run.storage.snapshots()}
    records = [record for snapshot in run.storage.snapshots() for record in snapshot.codes]
    bound = {record.recipient_ref for record in records if record.recipient_ref is not None}
    assert len(bound) > 3
    assert set() == bound & storage_keys
    assert set() == bound & {keyring.audit_ref(identity_of(s)) for s in run.subjects}


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


def test_every_charged_attempt_is_logged(run: Run) -> None:
    """The failure logs hold exactly the charged refusals of the run (none has left the window)."""
    # A wrong code is charged only when it was compared with a live code (finding 2): the run's
    # wrong codes at providers where the subject had none are refused and logged nowhere.
    refused = sum(isinstance(e, WrongCode) or e.code == "binding_mismatch" for e in run.errors)
    logged = sum(
        len(log.failures) for snapshot in run.storage.snapshots() for log in snapshot.failure_logs
    )
    assert run.uncharged > 0
    assert refused - run.uncharged == logged
    assert timedelta(hours=24) > run.issuer.clock.now() - run.codes[0].issued_at


def test_the_search_finds_a_planted_leak(run: Run, clock: ManualClock) -> None:
    """The dump search is not blind: every kind of leak planted in stored fields is found."""
    # A code, an ID, a request id, and an identity merely encoded where a sealed one belongs.
    planted = run.codes[0]
    snapshot = next(iter(run.storage.snapshots()))
    encoded = base64.urlsafe_b64encode(f"citizen:{CITIZENS[2]}".encode()).decode()
    leaky = CodeRecord(
        code_id=planted.code,
        provider_id="stc",
        key_id="k1",
        digest=b"x",
        issued_at=clock.now(),
        expires_at=clock.now(),
        service_id=CITIZENS[0].translate(SCRIPTS[1]),
        request_ref=run.labels[0],
    )
    change = Commit(
        subject_ref=snapshot.subject_ref,
        expected_version=snapshot.version,
        incarnation=snapshot.incarnation,
        codes=(*snapshot.codes, leaky),
        failure_logs=snapshot.failure_logs,
        written_at=clock.now(),
        keep_until=clock.now(),
        identity=f"p1.{encoded.rstrip('=')}",
    )
    assert run.storage.commit(change)
    texts = dump_texts(run.storage)
    found = {secret for secret in secrets_of(run) for text in texts if secret in text}
    planted_values = {planted.code, CITIZENS[0].translate(SCRIPTS[1]), run.labels[0], CITIZENS[2]}
    assert planted_values <= found
    assert CITIZENS[2] not in repr(snapshot) + repr(change)
