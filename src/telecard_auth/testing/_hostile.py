"""The promises a rogue operator, a stalled request and a careless integrator put to the test."""

# Test code: assert is the point, numbers are the boundaries under test, asserts read
# `expected == actual`.
# ruff: noqa: S101, PLR2004, SIM300

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

import telecard_auth.events as audit
from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import (
    FailureBudgetExhausted,
    InvalidBinding,
    InvalidReference,
    TransferNotBound,
    WrongCode,
)
from telecard_auth._core.model import CodeState, Subject
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._core.rules import next_commit
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import Storage
from telecard_auth.testing._base import ContractBase
from telecard_auth.testing._helpers import (
    OTHER_PROVIDER,
    PROVIDER,
    SERVICE,
    TRANSFER,
    IssuerFactory,
    _filed,
    _other_code,
    _resident,
)


class HostileCallerTests(ContractBase):
    """What no operator, stale request or careless caller can make the issuer do."""

    def test_a_stalled_request_cannot_erase_an_acknowledged_redemption(
        self,
        issuer: CodeIssuer,
        storage: Storage,
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """A request that loaded the subject before it was deleted cannot undo what came after."""
        ref = _filed(issuer.keyring, subject)
        first, second = issuer.issue(subject, PROVIDER), issuer.issue(subject, PROVIDER)
        stalled = storage.load(ref)
        assert 2 == stalled.version
        # The request stalls; meanwhile the subject stops mattering, is deleted, and lives again.
        clock.set(max(first.expires_at, second.expires_at) + policy.retention)
        self.vanish(storage, ref, clock.now())
        again = issuer.issue(subject, PROVIDER)
        acknowledged = issuer.redeem(subject, PROVIDER, again.code, SERVICE, request_id="ack-1")
        assert 2 == storage.load(ref).version
        # The stalled request wakes up and commits what it decided on its old snapshot.
        assert storage.commit(next_commit(policy, stalled, clock.now())) is False
        assert CodeState.REDEEMED == issuer.status(subject, again.code_id).state
        retried = issuer.redeem(subject, PROVIDER, again.code, SERVICE, request_id="ack-1")
        assert acknowledged == retried

    def test_a_wrong_code_that_meets_no_live_code_is_counted_nowhere(
        self,
        issuer: CodeIssuer,
        storage: Storage,
        policy: Policy,
        subject: Subject,
    ) -> None:
        """Guesses at a customer with no live code at the provider: refused alike, nothing stored.

        So nobody can lock a customer out before a code exists, nor fill storage with guesses.
        """
        ref = _filed(issuer.keyring, subject)
        for _ in range(policy.failure_budget * 2):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, "12345678", SERVICE)
        assert 0 == storage.load(ref).version
        used = issuer.issue(subject, PROVIDER)
        elsewhere = issuer.issue(subject, OTHER_PROVIDER)
        issuer.redeem(subject, PROVIDER, used.code, SERVICE)
        before = storage.load(ref)
        for _ in range(policy.failure_budget * 2):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, used.code), SERVICE)
        assert before == storage.load(ref)
        assert 0 == issuer.status(subject, elsewhere.code_id).failed_attempts
        fresh = issuer.issue(subject, PROVIDER)
        assert fresh.code_id == issuer.redeem(subject, PROVIDER, fresh.code, SERVICE).code_id

    def test_a_customer_whose_budget_is_spent_gets_recovery_codes(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Budget spent: only codes asked for since are compared, each with its own small limit.

        At most ``recovery_codes`` per window; later codes wait, like the older ones, until the
        budget frees.
        """
        sink = audit.CollectingSink()
        policy = attrs.evolve(
            policy, failure_budget=4, failure_window=timedelta(hours=2), accept_guess_risk=True
        )
        issuer = make_issuer(policy, events=[sink])
        old = issuer.issue(subject, PROVIDER)
        for _ in range(policy.failure_budget):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, old.code), SERVICE)
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, old.code, SERVICE)
        # The customer authenticates again and asks for a code: a recovery code.
        recovery = issuer.issue(subject, PROVIDER)
        flagged = {event.code_id: event.recovery for event in sink.of_type(audit.CodeIssuance)}
        assert (False, True) == (flagged[old.code_id], flagged[recovery.code_id])
        with pytest.raises(WrongCode):
            issuer.redeem(subject, PROVIDER, _other_code(policy, recovery.code), SERVICE)
        status = issuer.status(subject, recovery.code_id)
        assert (CodeState.ACTIVE, policy.recovery_attempts - 1) == (
            status.state,
            status.attempts_left,
        )
        assert policy.failure_budget == issuer.status(subject, old.code_id).failed_attempts
        assert recovery.code_id == issuer.redeem(subject, PROVIDER, recovery.code, SERVICE).code_id
        # A second one, guessed at until it locks.
        second = issuer.issue(subject, PROVIDER)
        for _ in range(policy.recovery_attempts):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, second.code), SERVICE)
        assert CodeState.LOCKED == issuer.status(subject, second.code_id).state
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, second.code, SERVICE)
        # The allowance is spent: the next code is an ordinary one, good once the budget frees.
        third = issuer.issue(subject, PROVIDER)
        assert not {e.code_id: e.recovery for e in sink.of_type(audit.CodeIssuance)}[third.code_id]
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, third.code, SERVICE)
        clock.advance(policy.failure_window)
        assert third.code_id == issuer.redeem(subject, PROVIDER, third.code, SERVICE).code_id

    def test_request_ids_belong_to_one_provider(self, issuer: CodeIssuer, subject: Subject) -> None:
        """Two operators may use one request id for one customer; neither learns of the other."""
        at_one = issuer.issue(subject, PROVIDER)
        at_other = issuer.issue(subject, OTHER_PROVIDER)
        first = issuer.redeem(subject, PROVIDER, at_one.code, SERVICE, request_id="shared-1")
        other = issuer.redeem(
            subject, OTHER_PROVIDER, at_other.code, SERVICE, request_id="shared-1"
        )
        assert (at_one.code_id, at_other.code_id) == (first.code_id, other.code_id)
        again = issuer.redeem(subject, PROVIDER, at_one.code, SERVICE, request_id="shared-1")
        assert first == again

    def test_a_number_transfer_always_names_its_recipient(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """No transfer code without a recipient; a code that names none cannot serve a transfer."""
        with pytest.raises(InvalidBinding):
            issuer.issue(subject, PROVIDER, service=TRANSFER)
        unbound = issuer.issue(subject, PROVIDER)
        for recipient in (None, _resident(1)):
            with pytest.raises(TransferNotBound):
                issuer.redeem(subject, PROVIDER, unbound.code, TRANSFER, recipient=recipient)
        status = issuer.status(subject, unbound.code_id)
        assert (CodeState.ACTIVE, 0) == (status.state, status.failed_attempts)
        assert unbound.code_id == issuer.redeem(subject, PROVIDER, unbound.code, SERVICE).code_id

    def test_what_leaves_the_issuer_never_names_the_storage_key(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        storage: Storage,
        policy: Policy,
        subject: Subject,
    ) -> None:
        """Receipts, redemptions and events carry per-operator and audit pseudonyms only.

        None of them is the key storage files the customer or the recipient under, or any value
        stored beside it; each operator gets its own pseudonym of the customer.
        """
        sink, signer = audit.CollectingSink(), ReceiptSigner.generate()
        issuer = make_issuer(policy, signer=signer, events=[sink])
        recipient = _resident(7)
        here, there = issuer.issue(subject, PROVIDER), issuer.issue(subject, OTHER_PROVIDER)
        moving = issuer.issue(subject, PROVIDER, service=TRANSFER, recipient=recipient)
        done = [
            issuer.redeem(subject, PROVIDER, here.code, SERVICE, request_id="q-1"),
            issuer.redeem(subject, OTHER_PROVIDER, there.code, SERVICE, reference="branch-9"),
            issuer.redeem(subject, PROVIDER, moving.code, TRANSFER, recipient=recipient),
        ]
        with pytest.raises(WrongCode):
            issuer.redeem(subject, PROVIDER, "12345678", SERVICE, reference="agent-7")
        keyring = issuer.keyring
        filed = {_filed(keyring, subject), _filed(keyring, recipient)}
        stored = {
            value
            for record in storage.load(_filed(keyring, subject)).codes
            for value in (
                record.msisdn_ref,
                record.recipient_ref,
                record.request_ref,
                record.request_inputs,
            )
            if value is not None
        }
        assert 2 <= len(stored)
        receipts = [redemption.receipt for redemption in done]
        outside = repr(
            [
                *(redemption.customer_ref for redemption in done),
                *(receipt.token for receipt in receipts if receipt is not None),
                *(event.fields() for event in sink.events),
            ]
        )
        assert [] == [value for value in filed | stored if value in outside]
        customer = {redemption.provider.id: redemption.customer_ref for redemption in done}
        assert customer[PROVIDER] != customer[OTHER_PROVIDER]
        assert done[0].customer_ref == done[2].customer_ref
        (audit_ref,) = {event.audit_ref for event in sink.events}
        assert audit_ref not in customer.values()
        references = [
            event.reference
            for event in sink.events
            if isinstance(event, audit.CodeRedemption | audit.RedemptionRefusal)
        ]
        assert [None, "branch-9", None, "agent-7"] == references

    def test_references_are_checked_before_anything_is_stored(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """A reference that is not 1-64 printable ASCII characters is refused, the code kept."""
        issued = issuer.issue(subject, PROVIDER)
        bad: list[Any] = ["", "a b", "x" * 65, "فرع", "agent\n", 7]
        for reference in bad:
            with pytest.raises(InvalidReference):
                issuer.redeem(subject, PROVIDER, issued.code, SERVICE, reference=reference)
        assert CodeState.ACTIVE == issuer.status(subject, issued.code_id).state
