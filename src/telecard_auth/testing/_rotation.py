"""Pseudonym key rotation: the mover, nodes in standby beside nodes moving, and redemptions
racing the mover. A storage without ``scan_subjects`` skips them.
"""

# Test code: assert is the point, numbers are the boundaries under test, asserts read
# `expected == actual`.
# ruff: noqa: S101, PLR2004, SIM300

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import CodeAlreadyUsed, KeyringError, WrongCode
from telecard_auth._core.keyring import HmacKey, Keyring
from telecard_auth._core.model import CodeState, Redemption
from telecard_auth._core.policy import Policy
from telecard_auth._issuer import CodeIssuer, MoveProgress
from telecard_auth._storage.protocol import Storage, SubjectScanning
from telecard_auth.testing._base import ContractBase
from telecard_auth.testing._helpers import (
    OTHER_PROVIDER,
    PROVIDER,
    SERVICE,
    THREADS,
    IssuerFactory,
    _citizen,
    _filed,
    _kinds,
    _other_code,
    _together,
)


class PseudonymRotationTests(ContractBase):
    """A new pseudonym key files every subject anew, and nothing is lost on the way."""

    def _scanning(self, storage: Storage) -> SubjectScanning:
        """``storage`` as a ``SubjectScanning``; a storage without ``scan_subjects`` skips."""
        if not isinstance(storage, SubjectScanning):
            pytest.skip("the storage has no scan_subjects (the optional SubjectScanning)")
        return storage

    def test_pseudonym_key_rotation_moves_every_subject(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        clock: ManualClock,
    ) -> None:
        """A new pseudonym key files every subject anew: on its next write, or by the mover.

        Nothing is lost on the way: codes, attempts, failures and used codes keep their state,
        and once the older key retires everything still works.
        """
        self._scanning(storage)
        before = make_issuer(policy)
        subjects = [_citizen(n) for n in range(6)]
        issued = {n: before.issue(subject, PROVIDER) for n, subject in enumerate(subjects)}
        spare = {n: before.issue(subjects[n], OTHER_PROVIDER) for n in range(3)}
        used = before.redeem(subjects[0], PROVIDER, issued[0].code, SERVICE, request_id="used")
        with pytest.raises(WrongCode):
            before.redeem(subjects[1], PROVIDER, _other_code(policy, issued[1].code), SERVICE)
        clock.advance(minutes=5)
        rotated = keyring.with_pseudonym_key(HmacKey.generate("p2"))
        after = make_issuer(policy, keyring=rotated)
        assert CodeState.ACTIVE == after.status(subjects[2], issued[2].code_id).state
        after.redeem(subjects[2], PROVIDER, issued[2].code, SERVICE)
        old_ref = _filed(keyring, subjects[2])
        assert (True, ()) == (storage.load(old_ref).moved, storage.load(old_ref).codes)
        assert 0 < storage.load(_filed(rotated, subjects[2])).version
        progress = [after.move_subjects(limit=2)]
        while not progress[-1].done:
            progress.append(after.move_subjects(limit=2))
        assert 5 == sum(step.moved for step in progress)
        assert MoveProgress(moved=0, scanned=progress[0].scanned, done=True).moved == (
            after.move_subjects().moved
        )
        for subject in subjects:
            old = storage.load(_filed(keyring, subject))
            assert (True, (), ()) == (old.moved, old.codes, old.failure_logs)
        retired = make_issuer(policy, keyring=rotated.without_pseudonym_key("p1"))
        with pytest.raises(CodeAlreadyUsed):
            retired.redeem(subjects[0], PROVIDER, issued[0].code, SERVICE)
        retry = retired.redeem(subjects[0], PROVIDER, issued[0].code, SERVICE, request_id="used")
        assert (used.code_id, used.redeemed_at) == (retry.code_id, retry.redeemed_at)
        assert 1 == retired.status(subjects[1], issued[1].code_id).failed_attempts
        log = storage.load(_filed(rotated, subjects[1])).failure_log(PROVIDER)
        assert 1 == len(log.failures)
        for n in (1, 3, 4, 5):
            assert (
                issued[n].code_id
                == retired.redeem(subjects[n], PROVIDER, issued[n].code, SERVICE).code_id
            )
        for n, code in spare.items():
            redeemed = retired.redeem(subjects[n], OTHER_PROVIDER, code.code, SERVICE)
            assert code.code_id == redeemed.code_id

    def test_nodes_in_standby_and_nodes_moving_share_every_subject(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
    ) -> None:
        """During a rollout, a node with the new key in standby and one with it current agree."""
        standby_ring = keyring.with_pseudonym_key(HmacKey.generate("p2"), current=False)
        moving_ring = standby_ring.with_current_pseudonym_key("p2")
        old_node = make_issuer(policy, keyring=standby_ring)
        new_node = make_issuer(policy, keyring=moving_ring)
        a, b = _citizen(1), _citizen(2)
        # a: filed by the old node under p1, moved by the new node, then used by the old node.
        first_a = old_node.issue(a, PROVIDER)
        assert 0 < storage.load(_filed(keyring, a)).version
        second_a = new_node.issue(a, PROVIDER)
        assert storage.load(_filed(keyring, a)).moved
        assert first_a.code_id == old_node.redeem(a, PROVIDER, first_a.code, SERVICE).code_id
        with pytest.raises(CodeAlreadyUsed):
            new_node.redeem(a, PROVIDER, first_a.code, SERVICE)
        assert second_a.code_id == old_node.redeem(a, PROVIDER, second_a.code, SERVICE).code_id
        # b: filed by the new node under p2; the old node finds it there, and never files it again.
        first_b = new_node.issue(b, PROVIDER)
        assert CodeState.ACTIVE == old_node.status(b, first_b.code_id).state
        second_b = old_node.issue(b, PROVIDER)
        assert first_b.code_id == old_node.redeem(b, PROVIDER, first_b.code, SERVICE).code_id
        assert second_b.code_id == new_node.redeem(b, PROVIDER, second_b.code, SERVICE).code_id
        assert storage.load(_filed(keyring, b)).moved
        with pytest.raises(KeyringError):
            old_node.move_subjects()

    @pytest.mark.usefixtures("interleaved")
    def test_redemptions_racing_the_move_to_a_new_pseudonym_key(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """Nodes with the new key in standby and current redeem while the mover runs.

        Every code is redeemed exactly once, none is lost or left unusable, and afterwards every
        subject lives under the new key alone.
        """
        self._scanning(storage)
        standby_ring = keyring.with_pseudonym_key(HmacKey.generate("p2"), current=False)
        moving_ring = standby_ring.with_current_pseudonym_key("p2")
        before, old_node = make_issuer(policy), make_issuer(policy, keyring=standby_ring)
        new_node = make_issuer(policy, keyring=moving_ring)
        per_round = (THREADS - 1) // 2
        for round_ in range(max(1, self.race_rounds // 20)):
            subjects = [_citizen(1000 * round_ + n) for n in range(per_round)]
            issued = [before.issue(subject, PROVIDER) for subject in subjects]
            kept = [before.issue(subject, OTHER_PROVIDER) for subject in subjects]

            def move() -> int:
                moved = 0
                while not (progress := new_node.move_subjects(limit=3)).done:
                    moved += progress.moved
                return moved + progress.moved

            redeemers = [
                partial(node.redeem, subject, PROVIDER, code.code, SERVICE)
                for subject, code in zip(subjects, issued, strict=True)
                for node in (old_node, new_node)
            ]
            outcomes = _together(race_pool, [move, *redeemers])
            assert {Redemption: per_round, CodeAlreadyUsed: per_round} == _kinds(outcomes[1:])
            while not new_node.move_subjects().done:
                pass
            for subject, code, spare in zip(subjects, issued, kept, strict=True):
                old = storage.load(_filed(keyring, subject))
                assert (True, ()) == (old.moved, old.codes)
                assert CodeState.REDEEMED == new_node.status(subject, code.code_id).state
                assert (
                    spare.code_id
                    == new_node.redeem(subject, OTHER_PROVIDER, spare.code, SERVICE).code_id
                )
