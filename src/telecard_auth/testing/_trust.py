"""Trust and audit: idempotent retries and their receipts, superseding, events, key rotation."""

# Test code: assert is the point, and asserts read `expected == actual`.
# ruff: noqa: S101, SIM300

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

import telecard_auth.events as audit
from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import (
    CodeAlreadyUsed,
    CodeExpired,
    CodeSuperseded,
    InvalidRequestId,
    RequestConflict,
    UnknownSigningKey,
    WrongCode,
)
from telecard_auth._core.keyring import HmacKey, Keyring
from telecard_auth._core.model import CodeState, Subject
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner, SigningKey, verify_receipt
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import Storage
from telecard_auth.testing._base import ContractBase
from telecard_auth.testing._helpers import (
    OTHER_PROVIDER,
    PROVIDER,
    SERVICE,
    IssuerFactory,
    _filed,
    _other_code,
    _record_of,
)


class TrustAndAuditTests(ContractBase):
    """What an operator and an auditor can rely on: receipts, retries, events, keys."""

    def test_retry_with_the_same_request_id_gets_the_same_redemption(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """A retry with the same request id and inputs: the same redemption and receipt."""
        signer = ReceiptSigner.generate()
        issuer = make_issuer(policy, signer=signer)
        issued = issuer.issue(subject, PROVIDER)
        first = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="visit-0001")
        clock.advance(minutes=3)
        again = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="visit-0001")
        assert first == again
        assert first.receipt is not None
        assert again.receipt is not None
        assert first.receipt.token == again.receipt.token
        verify_receipt(
            first.receipt.token, signer.verify_keys(), audience=first.receipt.provider_id
        )
        # A receipt's times are whole seconds (a JWT's NumericDate), the redemption's exact.
        redeemed_at = clock.now() - timedelta(minutes=3)
        assert (redeemed_at, redeemed_at.replace(microsecond=0), issued.code_id) == (
            first.redeemed_at,
            first.receipt.redeemed_at,
            first.receipt.code_id,
        )
        for request_id in ("visit-0002", None):
            with pytest.raises(CodeAlreadyUsed):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=request_id)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.REDEEMED, 0) == (status.state, status.failed_attempts)

    def test_same_request_id_with_other_inputs_is_refused(
        self, make_issuer: IssuerFactory[CodeIssuer], policy: Policy, subject: Subject
    ) -> None:
        """The same request id with another service, code or binding is a RequestConflict."""
        issuer = make_issuer(policy)
        issued = issuer.issue(subject, PROVIDER)
        other = issuer.issue(subject, PROVIDER)
        issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id="visit-1")
        conflicting: list[dict[str, Any]] = [
            {"code": issued.code, "service": "lost_sim_replacement"},
            {"code": issued.code, "service": SERVICE, "msisdn": "0551234567"},
            {"code": other.code, "service": SERVICE},
        ]
        for inputs in conflicting:
            with pytest.raises(RequestConflict):
                issuer.redeem(subject, PROVIDER, request_id="visit-1", **inputs)
        assert CodeState.ACTIVE == issuer.status(subject, other.code_id).state
        redeemed = issuer.redeem(subject, PROVIDER, other.code, SERVICE, request_id="visit-2")
        assert other.code_id == redeemed.code_id

    def test_request_ids_are_checked_before_anything_is_stored(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """A request id that is not 1-64 printable ASCII characters is refused, the code kept."""
        issued = issuer.issue(subject, PROVIDER)
        bad: list[Any] = ["", " ", "a b", "x" * 65, "طلب", "id\x00", "tab\t", 7, b"id", ["id"]]
        for request_id in bad:
            with pytest.raises(InvalidRequestId):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE, request_id=request_id)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.ACTIVE, 0) == (status.state, status.failed_attempts)

    def test_superseding_policy_replaces_the_oldest_live_code(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """At the limit, a superseding policy retires the oldest live code in the same change."""
        issuer = make_issuer(attrs.evolve(policy, on_live_code_limit="supersede"))
        older = []
        for _ in range(policy.max_live_codes):
            older.append(issuer.issue(subject, PROVIDER))
            clock.advance(minutes=1)
        newest = issuer.issue(subject, OTHER_PROVIDER)
        assert (older[0].code_id,) == newest.superseded_code_ids
        status = issuer.status(subject, older[0].code_id)
        assert (CodeState.SUPERSEDED, clock.now()) == (status.state, status.finished_at)
        with pytest.raises(CodeSuperseded):
            issuer.redeem(subject, PROVIDER, older[0].code, SERVICE)
        assert CodeState.SUPERSEDED == issuer.revoke(subject, older[0].code_id).state
        for issued in (*older[1:], newest):
            assert CodeState.ACTIVE == issuer.status(subject, issued.code_id).state
        redeemed = issuer.redeem(subject, OTHER_PROVIDER, newest.code, SERVICE)
        assert newest.code_id == redeemed.code_id

    def test_events_tell_what_happened(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Each change gives its event, after it landed; no event holds a code or the ID."""
        sink = audit.CollectingSink()
        strict = attrs.evolve(policy, max_failed_attempts=2, on_live_code_limit="supersede")
        issuer = make_issuer(strict, events=[sink])
        used = issuer.issue(subject, PROVIDER, service=SERVICE)
        issuer.redeem(subject, PROVIDER, used.code, SERVICE, request_id="r-1")
        with pytest.raises(CodeAlreadyUsed):
            issuer.redeem(subject, PROVIDER, used.code, SERVICE)
        guessed = issuer.issue(subject, PROVIDER)
        for _ in range(2):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(strict, guessed.code), SERVICE)
        cancelled = issuer.issue(subject, OTHER_PROVIDER)
        issuer.revoke(subject, cancelled.code_id)
        live = [issuer.issue(subject, PROVIDER) for _ in range(strict.max_live_codes)]
        newest = issuer.issue(subject, PROVIDER)
        expected: list[tuple[type[audit.AuditEvent], str | None]] = [
            (audit.CodeIssuance, used.code_id),
            (audit.CodeRedemption, used.code_id),
            (audit.RedemptionRefusal, used.code_id),
            (audit.CodeIssuance, guessed.code_id),
            (audit.RedemptionRefusal, None),
            (audit.RedemptionRefusal, None),
            (audit.CodeLockout, guessed.code_id),
            (audit.CodeIssuance, cancelled.code_id),
            (audit.CodeRevocation, cancelled.code_id),
            *[(audit.CodeIssuance, issued.code_id) for issued in live],
            (audit.CodeSupersession, live[0].code_id),
            (audit.CodeIssuance, newest.code_id),
        ]
        assert expected == [(type(event), event.code_id) for event in sink.events]
        refusals = sink.of_type(audit.RedemptionRefusal)
        assert ["code_already_used", "wrong_code", "wrong_code"] == [e.reason for e in refusals]
        assert {clock.now()} == {event.at for event in sink.events}
        (redeemed,) = sink.of_type(audit.CodeRedemption)
        assert ("r-1", SERVICE) == (redeemed.request_id, redeemed.service_id)
        (superseded,) = sink.of_type(audit.CodeSupersession)
        assert newest.code_id == superseded.superseded_by
        text = repr([event.fields() for event in sink.events])
        plaintexts = [subject.identifier, used.code, guessed.code, newest.code]
        assert [] == [secret for secret in plaintexts if secret in text]

    def test_a_failing_sink_never_undoes_a_change(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        subject: Subject,
    ) -> None:
        """A sink that raises: the code is issued and redeemed all the same, other sinks hear."""

        class Broken:
            def emit(self, event: audit.AuditEvent) -> None:
                raise RuntimeError("the sink is down")

        sink = audit.CollectingSink()
        issuer = make_issuer(policy, events=[Broken(), sink])
        issued = issuer.issue(subject, PROVIDER)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        assert issued.code_id == redemption.code_id
        record = _record_of(storage, _filed(keyring, subject), issued.code_id)
        assert CodeState.REDEEMED == record.state
        assert [audit.CodeIssuance, audit.CodeRedemption] == [type(e) for e in sink.events]

    def test_key_rotation_end_to_end(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Add a key, use it, keep the old one verifying, retire it once nothing depends on it."""
        signer = ReceiptSigner.generate("r1")
        before = make_issuer(policy, signer=signer)
        keyring = before.keyring
        ref = _filed(keyring, subject)
        old_code = before.issue(subject, PROVIDER)
        spent = before.issue(subject, OTHER_PROVIDER)
        old_receipt = before.redeem(subject, OTHER_PROVIDER, spent.code, SERVICE, request_id="a")
        assert old_receipt.receipt is not None
        assert "r1" == old_receipt.receipt.key_id
        # Rotation: a new HMAC key and a new signing key become current together.
        clock.advance(hours=1)
        rotated_at = clock.now()
        ring = keyring.with_key(HmacKey.generate("k2"))
        signer2 = signer.with_key(SigningKey.generate("r2"))
        after = make_issuer(policy, signer=signer2, keyring=ring)
        new_code = after.issue(subject, PROVIDER)
        keys = {record.code_id: record.key_id for record in storage.load(ref).codes}
        assert ("k1", "k2") == (keys[old_code.code_id], keys[new_code.code_id])
        # A retry after the rotation still gets the receipt the first call got.
        assert old_receipt == after.redeem(
            subject, OTHER_PROVIDER, spent.code, SERVICE, request_id="a"
        )
        # The code made under k1 still redeems; its receipt is signed with r2; both verify.
        redeemed = after.redeem(subject, PROVIDER, old_code.code, SERVICE)
        assert redeemed.receipt is not None
        assert "r2" == redeemed.receipt.key_id
        for receipt in (old_receipt.receipt, redeemed.receipt):
            verify_receipt(receipt.token, signer2.verify_keys(), audience=receipt.provider_id)
        # Retire k1 once every code it made has expired and its record's retention has ended.
        leftover = before.issue(subject, "zain")
        clock.set(rotated_at + policy.key_retirement_delay)
        with pytest.raises(CodeExpired):
            after.redeem(subject, "zain", leftover.code, SERVICE)
        retired = make_issuer(
            policy, signer=signer2.without_key("r1"), keyring=ring.without_key("k1")
        )
        assert [] == [
            r.code_id
            for r in storage.load(ref).codes
            if r.key_id == "k1" and r.state is CodeState.ACTIVE and clock.now() < r.expires_at
        ]
        fresh = retired.issue(subject, PROVIDER)
        final = retired.redeem(subject, PROVIDER, fresh.code, SERVICE)
        assert final.receipt is not None
        assert "r2" == final.receipt.key_id
        # Operators keep old public keys for as long as old receipts must be provable.
        verify_receipt(
            old_receipt.receipt.token,
            signer2.verify_keys(),
            audience=old_receipt.receipt.provider_id,
        )
        with pytest.raises(UnknownSigningKey):
            verify_receipt(
                old_receipt.receipt.token,
                signer2.without_key("r1").verify_keys(),
                audience=old_receipt.receipt.provider_id,
            )
