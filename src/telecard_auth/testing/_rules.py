"""The issuer's rules through the storage under test: single use, provider, expiry, attempts,
the failure budget, the live-code limit, revocation, bindings and purging.
"""

# Test code: assert is the point, numbers are the boundaries under test, asserts read
# `expected == actual`.
# ruff: noqa: S101, PLR2004, SIM300

from __future__ import annotations

from datetime import datetime

import attrs
import pytest

import telecard_auth.events as audit
from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    FailureBudgetExhausted,
    LiveCodeLimitReached,
    UnknownCode,
    WrongCode,
)
from telecard_auth._core.model import CodeState, IssuedCode, Subject
from telecard_auth._core.policy import Policy
from telecard_auth._core.requests import identity_of
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import PurgeReporting, Storage, SubjectSnapshot
from telecard_auth.testing._base import ContractBase
from telecard_auth.testing._helpers import (
    _MICROSECOND,
    OTHER_PROVIDER,
    PROVIDER,
    SERVICE,
    TRANSFER,
    IssuerFactory,
    _citizen,
    _filed,
    _other_code,
    _record_of,
    _resident,
)


class IssuerRuleTests(ContractBase):
    """The rules of a code, kept by a ``CodeIssuer`` over the storage under test."""

    def test_code_is_redeemed_once(
        self, issuer: CodeIssuer, storage: Storage, subject: Subject, clock: ManualClock
    ) -> None:
        """A code redeems once, is stored as REDEEMED, and a second attempt is CodeAlreadyUsed."""
        issued = issuer.issue(subject, PROVIDER)
        clock.advance(minutes=1)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        assert (issued.code_id, SERVICE, clock.now()) == (
            redemption.code_id,
            redemption.service.id,
            redemption.redeemed_at,
        )
        record = _record_of(storage, _filed(issuer.keyring, subject), issued.code_id)
        assert (CodeState.REDEEMED, clock.now(), SERVICE) == (
            record.state,
            record.finished_at,
            record.redeemed_service_id,
        )
        with pytest.raises(CodeAlreadyUsed):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)

    def test_code_is_refused_at_another_provider(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """A code issued for one provider is a wrong code at another and still good at its own."""
        issued = issuer.issue(subject, PROVIDER)
        with pytest.raises(WrongCode):
            issuer.redeem(subject, OTHER_PROVIDER, issued.code, SERVICE)
        assert issued.code_id == issuer.redeem(subject, PROVIDER, issued.code, SERVICE).code_id

    def test_code_typed_in_arabic_indic_digits_is_accepted(
        self, issuer: CodeIssuer, subject: Subject
    ) -> None:
        """The code typed with Arabic-Indic digits, a space and a hyphen redeems."""
        issued = issuer.issue(subject, PROVIDER)
        typed = issued.code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        typed = f"{typed[:2]} {typed[2:4]}-{typed[4:]}"
        assert issued.code_id == issuer.redeem(subject, PROVIDER, typed, SERVICE).code_id

    def test_code_expires_exactly_at_its_ttl(
        self, issuer: CodeIssuer, policy: Policy, subject: Subject, clock: ManualClock
    ) -> None:
        """A code is good one microsecond before issued_at + TTL and expired at that moment."""
        early = issuer.issue(subject, PROVIDER, service=SERVICE)
        late = issuer.issue(subject, PROVIDER, service=SERVICE)
        assert early.issued_at + policy.ttl_for(SERVICE) == early.expires_at
        clock.set(early.expires_at - _MICROSECOND)
        assert early.code_id == issuer.redeem(subject, PROVIDER, early.code, SERVICE).code_id
        clock.set(late.expires_at)
        with pytest.raises(CodeExpired):
            issuer.redeem(subject, PROVIDER, late.code, SERVICE)

    def test_code_locks_after_max_failed_attempts(
        self, make_issuer: IssuerFactory[CodeIssuer], policy: Policy, subject: Subject
    ) -> None:
        """Wrong guesses up to the limit lock the code, and then the right code is CodeLocked."""
        policy = attrs.evolve(policy, failure_budget=1000, accept_guess_risk=True)
        issuer = make_issuer(policy)
        issued = issuer.issue(subject, PROVIDER)
        guess = _other_code(policy, issued.code)
        for _ in range(policy.max_failed_attempts - 1):
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, guess, SERVICE)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.ACTIVE, 1) == (status.state, status.attempts_left)
        with pytest.raises(WrongCode):
            issuer.redeem(subject, PROVIDER, guess, SERVICE)
        status = issuer.status(subject, issued.code_id)
        assert (CodeState.LOCKED, policy.max_failed_attempts) == (
            status.state,
            status.failed_attempts,
        )
        with pytest.raises(CodeLocked):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)

    def test_failure_budget_survives_a_new_code(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
        subject: Subject,
    ) -> None:
        """Wrong guesses are stored per subject and provider: a new code does not reset them."""
        policy = attrs.evolve(policy, failure_budget=3, max_failed_attempts=5, recovery_codes=0)
        issuer = make_issuer(policy)
        first = issuer.issue(subject, PROVIDER)
        moments = []
        for _ in range(3):
            moments.append(clock.advance(seconds=1, microseconds=1))
            with pytest.raises(WrongCode):
                issuer.redeem(subject, PROVIDER, _other_code(policy, first.code), SERVICE)
        second = issuer.issue(subject, PROVIDER)
        with pytest.raises(FailureBudgetExhausted):
            issuer.redeem(subject, PROVIDER, second.code, SERVICE)
        stored = storage.load(_filed(issuer.keyring, subject)).failure_log(PROVIDER)
        assert tuple(moments) == stored.failures

    def test_live_code_limit(self, issuer: CodeIssuer, policy: Policy, subject: Subject) -> None:
        """A subject holds at most max_live_codes live codes; using one frees a place."""
        codes = [issuer.issue(subject, PROVIDER) for _ in range(policy.max_live_codes)]
        with pytest.raises(LiveCodeLimitReached):
            issuer.issue(subject, PROVIDER)
        issuer.redeem(subject, PROVIDER, codes[0].code, SERVICE)
        assert PROVIDER == issuer.issue(subject, PROVIDER).provider.id

    def test_revoked_code_is_refused(
        self, issuer: CodeIssuer, subject: Subject, clock: ManualClock
    ) -> None:
        """A revoked code is stored as REVOKED and refused with CodeRevoked."""
        issued = issuer.issue(subject, PROVIDER)
        clock.advance(minutes=5)
        revoked = issuer.revoke(subject, issued.code_id)
        assert (CodeState.REVOKED, clock.now()) == (revoked.state, revoked.finished_at)
        with pytest.raises(CodeRevoked):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        assert CodeState.REVOKED == issuer.status(subject, issued.code_id).state

    def test_status_follows_the_code(
        self, issuer: CodeIssuer, policy: Policy, subject: Subject, clock: ManualClock
    ) -> None:
        """Status reads ACTIVE, then REDEEMED or EXPIRED as the stored record and time say."""
        used = issuer.issue(subject, PROVIDER)
        idle = issuer.issue(subject, PROVIDER)
        status = issuer.status(subject, used.code_id)
        assert (CodeState.ACTIVE, policy.max_failed_attempts, used.expires_at) == (
            status.state,
            status.attempts_left,
            status.expires_at,
        )
        issuer.redeem(subject, PROVIDER, used.code, SERVICE)
        status = issuer.status(subject, used.code_id)
        assert (CodeState.REDEEMED, SERVICE) == (status.state, status.redeemed_service_id)
        clock.set(idle.expires_at)
        assert CodeState.EXPIRED == issuer.status(subject, idle.code_id).state
        with pytest.raises(UnknownCode):
            issuer.status(subject, "no-such-code")

    def test_mobile_number_binding(self, issuer: CodeIssuer, subject: Subject) -> None:
        """A code bound to a mobile number needs that number, in any accepted form."""
        issued = issuer.issue(subject, PROVIDER, msisdn="0512345678")
        with pytest.raises(BindingRequired):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        with pytest.raises(BindingMismatch):
            issuer.redeem(subject, PROVIDER, issued.code, SERVICE, msisdn="0598765432")
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE, msisdn="+966512345678")
        assert issued.code_id == redemption.code_id

    def test_recipient_binding(self, issuer: CodeIssuer, subject: Subject) -> None:
        """A number-transfer code bound to a recipient is refused for anyone else."""
        recipient, stranger = _resident(1), _resident(2)
        issued = issuer.issue(subject, PROVIDER, service=TRANSFER, recipient=recipient)
        with pytest.raises(BindingMismatch):
            issuer.redeem(subject, PROVIDER, issued.code, TRANSFER, recipient=stranger)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, TRANSFER, recipient=recipient)
        assert issued.code_id == redemption.code_id

    def test_issuer_purge_removes_a_subject_once_nothing_matters(
        self, issuer: CodeIssuer, policy: Policy, clock: ManualClock, subject: Subject
    ) -> None:
        """CodeIssuer.purge keeps a subject until expiry plus retention, then it is gone."""
        storage = issuer.storage
        issued = issuer.issue(subject, PROVIDER)
        ref = _filed(issuer.keyring, subject)
        clock.set(issued.expires_at + policy.retention - _MICROSECOND)
        assert 0 == issuer.purge()
        assert 1 == storage.load(ref).version
        clock.advance(microseconds=1)
        if self.purges:
            assert [1, 0] == [issuer.purge(), issuer.purge()]
            assert SubjectSnapshot(subject_ref=ref) == storage.load(ref)
            with pytest.raises(UnknownCode):
                issuer.status(subject, issued.code_id)
        else:
            assert 0 == issuer.purge()

    def test_purge_reports_each_code_that_expired_unused(
        self,
        make_issuer: IssuerFactory[CodeIssuer],
        policy: Policy,
        clock: ManualClock,
    ) -> None:
        """Purging tells the sinks of every code that expired unused, once, and of nothing else.

        Redeemed, revoked, locked and superseded codes are not reported; nor is anything before
        the subject is deleted, nor again by a later purge. Over a storage without
        ``purge_snapshots``, purging reports nothing.
        """
        sink = audit.CollectingSink()
        strict = attrs.evolve(policy, max_failed_attempts=2, on_live_code_limit="supersede")
        issuer = make_issuer(strict, events=[sink])
        unused = self._codes_in_every_state(issuer, clock)
        assert len({expired_at for _, _, expired_at in unused.values()}) > 1

        # Every code has expired, but every subject is still kept: nothing is deleted or reported.
        last_expiry = max(expired_at for _, _, expired_at in unused.values())
        clock.set(last_expiry + _MICROSECOND)
        sink.clear()
        assert 0 == issuer.purge()
        assert [] == sink.events
        # Past every retention and failure window: each subject goes, and its unused codes with it.
        clock.set(last_expiry + strict.retention + strict.failure_window)
        purged = []
        for _ in range(100):
            purged.append(issuer.purge(limit=2))
            if purged[-1] == 0:
                break
        expired = sink.of_type(audit.CodeExpiry)
        assert len(expired) == len(sink.events)
        if self.purges:
            assert 6 == sum(purged)
            assert all(count <= 2 for count in purged)
        if self.purges and isinstance(issuer.storage, PurgeReporting):
            assert len(unused) == len(expired)
            assert unused == {
                event.code_id: (event.audit_ref, event.provider_id, event.expired_at)
                for event in expired
            }
            assert {clock.now()} == {event.at for event in expired}
        else:
            assert [] == expired
        sink.clear()
        assert (0, []) == (issuer.purge(), sink.events)

    @staticmethod
    def _codes_in_every_state(
        issuer: CodeIssuer, clock: ManualClock
    ) -> dict[str, tuple[str, str, datetime]]:
        """Six subjects' codes, redeemed, revoked, locked, superseded and left unused.

        The issuer's policy supersedes at its live-code limit and locks at its attempt limit.
        Returns the codes left unused: code id to audit pseudonym, provider id and expiry.
        """
        policy = issuer.policy
        unused: dict[str, tuple[str, str, datetime]] = {}

        def leave(subject: Subject, issued: IssuedCode) -> None:
            audit_ref = issuer.keyring.audit_ref(identity_of(subject))
            unused[issued.code_id] = (audit_ref, issued.provider.id, issued.expires_at)

        redeemer, revoker, guesser, superseder, idler, mixed = (_citizen(n) for n in range(6))
        used = issuer.issue(redeemer, PROVIDER)
        issuer.redeem(redeemer, PROVIDER, used.code, SERVICE)
        clock.advance(minutes=1)
        issuer.revoke(revoker, issuer.issue(revoker, PROVIDER).code_id)
        clock.advance(minutes=1)
        guessed = issuer.issue(guesser, PROVIDER)
        for _ in range(policy.max_failed_attempts):
            with pytest.raises(WrongCode):
                issuer.redeem(guesser, PROVIDER, _other_code(policy, guessed.code), SERVICE)
        assert CodeState.LOCKED == issuer.status(guesser, guessed.code_id).state
        live = []
        for _ in range(policy.max_live_codes + 1):
            clock.advance(minutes=1)
            live.append(issuer.issue(superseder, PROVIDER))
        assert (live[0].code_id,) == live[-1].superseded_code_ids
        for issued in live[1:]:
            leave(superseder, issued)
        clock.advance(minutes=1, microseconds=3)
        leave(idler, issuer.issue(idler, OTHER_PROVIDER, service=SERVICE))
        clock.advance(minutes=1)
        leave(idler, issuer.issue(idler, PROVIDER))
        spent = issuer.issue(mixed, PROVIDER)
        leave(mixed, issuer.issue(mixed, OTHER_PROVIDER))
        issuer.redeem(mixed, PROVIDER, spent.code, SERVICE)
        return unused
