"""Races of 32 threads on one storage: compare-and-set, purges, loads, redemptions, retries,
guesses and issues, each repeated ``race_rounds`` times or a fraction of it.
"""

# Test code: assert is the point, numbers are the boundaries under test, asserts read
# `expected == actual`.
# ruff: noqa: S101, PLR2004, SIM300

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

import attrs
import pytest

from telecard_auth._core.errors import CodeAlreadyUsed, LiveCodeLimitReached, WrongCode
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import CodeState, IssuedCode, Redemption, SignedRedemption
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner, verify_receipt
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import CodeRecord, FailureLog, Storage, SubjectSnapshot
from telecard_auth.testing._base import ContractBase
from telecard_auth.testing._helpers import (
    PROVIDER,
    SERVICE,
    START,
    THREADS,
    IssuerFactory,
    LostCommits,
    _canonical,
    _citizen,
    _commit,
    _filed,
    _kinds,
    _other_code,
    _read,
    _record,
    _record_of,
    _ref,
    _stored,
    _together,
)


class RaceTests(ContractBase):
    """Many threads at once: each change lands once, and nothing is lost or mixed."""

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_commits_at_one_version_land_once(
        self, storage: Storage, race_pool: ThreadPoolExecutor
    ) -> None:
        """32 threads commit on one version, creating and updating: exactly one lands each time."""
        for round_ in range(max(1, self.race_rounds // 10)):
            ref = _ref(f"race{round_}")
            for version in (0, 1):
                changes = [
                    _commit(ref, version, [_record(f"v{version}-t{n}")]) for n in range(THREADS)
                ]
                outcomes = _together(
                    race_pool, [partial(storage.commit, change) for change in changes]
                )
                assert 1 == outcomes.count(True)
                assert THREADS - 1 == outcomes.count(False)
                assert _stored(changes[outcomes.index(True)]) == _read(storage, ref)

    @pytest.mark.usefixtures("interleaved")
    def test_purge_snapshots_never_delete_a_concurrent_commit(
        self, storage: Storage, race_pool: ThreadPoolExecutor
    ) -> None:
        """Commits race purges of their due subjects: each either lands or is purged, not both.

        A commit that moves keep_until on and lands keeps its subject; one that fails does so
        only because the purge deleted the subject, which it then reports as it was before.
        """
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)

        def purge(into: list[SubjectSnapshot]) -> int:
            # Small batches, so that the purge and the commits interleave.
            while batch := reporting.purge_snapshots(now, 3):
                into.extend(batch)
            return len(into)

        for round_ in range(max(1, self.race_rounds // 20)):
            refs = [_ref(f"race{round_}-{n}") for n in range(THREADS - 1)]
            for ref in refs:
                assert storage.commit(_commit(ref, 0, [_record("old")], keep_until=now))
            purged: list[SubjectSnapshot] = []
            moves = [
                partial(
                    storage.commit,
                    _commit(ref, 1, [_record("new")], keep_until=now + timedelta(hours=1)),
                )
                for ref in refs
            ]
            outcomes = _together(race_pool, [partial(purge, purged), *moves])
            landed = {ref for ref, outcome in zip(refs, outcomes[1:], strict=True) if outcome}
            deleted = {snapshot.subject_ref: snapshot for snapshot in purged}
            assert len(purged) == len(deleted)
            assert (set(refs), set()) == (landed | set(deleted), landed & set(deleted))
            for ref in refs:
                expected = (2, "new") if ref in landed else (0, None)
                loaded = storage.load(ref)
                assert expected == (loaded.version, next((r.code_id for r in loaded.codes), None))
            for snapshot in deleted.values():
                assert (1, ("old",)) == (
                    snapshot.version,
                    tuple(r.code_id for r in snapshot.codes),
                )

    @pytest.mark.usefixtures("interleaved")
    def test_load_never_mixes_versions(
        self, storage: Storage, race_pool: ThreadPoolExecutor
    ) -> None:
        """Loads racing commits see each version whole: the records and logs of that version."""
        ref = _ref("a")
        written = threading.Event()
        commits = max(20, self.race_rounds)

        def state(version: int) -> tuple[list[CodeRecord], list[FailureLog]]:
            # Version n holds n % 3 + 1 codes and n % 4 + 1 failures, every one of them marked n.
            codes = [_record(f"c{n}", failed_attempts=version) for n in range(version % 3 + 1)]
            moment = START + timedelta(microseconds=version)
            failures = (moment,) * (version % 4 + 1)
            return codes, [FailureLog(provider_id=PROVIDER, failures=failures)]

        def write() -> int:
            try:
                ready.wait(timeout=60)
                for version in range(commits):
                    codes, logs = state(version + 1)
                    assert storage.commit(_commit(ref, version, codes, logs)) is True
                    time.sleep(0)  # let the readers in between two commits
            finally:
                written.set()
            return commits

        def read() -> int:
            loads = 0
            while True:
                snapshot = storage.load(ref)
                loads += 1
                if snapshot.version:
                    codes, logs = state(snapshot.version)
                    loaded = _canonical(snapshot)
                    assert (codes, logs) == (list(loaded.codes), list(loaded.failure_logs))
                else:
                    assert SubjectSnapshot(subject_ref=ref) == snapshot
                if loads == 1:
                    ready.wait(timeout=60)
                elif written.is_set():
                    return loads

        # The writer starts once every reader has loaded; the readers stop once it is done.
        ready = threading.Barrier(4)
        outcomes = _together(race_pool, [write, read, read, read])
        assert [int] * 4 == [type(outcome) for outcome in outcomes]

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_redeemers_redeem_a_code_once(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 threads redeem one code together, race_rounds times: one wins, 31 already used."""
        lost = LostCommits()
        issuer = make_issuer(policy, lost)
        for round_ in range(self.race_rounds):
            subject = _citizen(round_)
            issued = issuer.issue(subject, PROVIDER)
            redeem = partial(issuer.redeem, subject, PROVIDER, issued.code, SERVICE)
            outcomes = _together(race_pool, [redeem] * THREADS)
            assert {Redemption: 1, CodeAlreadyUsed: THREADS - 1} == _kinds(outcomes)
            record = _record_of(storage, _filed(keyring, subject), issued.code_id)
            assert (CodeState.REDEEMED, 0) == (record.state, record.failed_attempts)
        assert 0 < lost.count

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_retries_of_one_request_get_one_receipt(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 threads retry one idempotent redemption together: one receipt, identical for all."""
        lost = LostCommits()
        signer = ReceiptSigner.generate()
        issuer = make_issuer(policy, lost, signer=signer)
        for round_ in range(max(1, self.race_rounds // 10)):
            subject = _citizen(round_)
            issued = issuer.issue(subject, PROVIDER)
            retry = partial(
                issuer.redeem, subject, PROVIDER, issued.code, SERVICE, request_id=f"req-{round_}"
            )
            outcomes = _together(race_pool, [retry] * THREADS)
            assert {SignedRedemption: THREADS} == _kinds(outcomes)
            assert 1 == len(set(outcomes))
            (receipt,) = {
                outcome.receipt for outcome in outcomes if isinstance(outcome, Redemption)
            }
            assert receipt is not None
            verify_receipt(receipt.token, signer.verify_keys(), audience=receipt.provider_id)
            record = _record_of(storage, _filed(keyring, subject), issued.code_id)
            assert (CodeState.REDEEMED, 0) == (record.state, record.failed_attempts)
        assert 0 < lost.count

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_wrong_guesses_lock_at_exactly_the_limit(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 wrong guesses at once with a limit of 5: 5 attempts counted, the code LOCKED.

        The other 27 met no live code: refused alike, but counted nowhere.
        """
        policy = attrs.evolve(
            policy, max_failed_attempts=5, failure_budget=1000, accept_guess_risk=True
        )
        lost = LostCommits()
        issuer = make_issuer(policy, lost)
        for round_ in range(max(1, self.race_rounds // 20)):
            subject = _citizen(round_)
            issued = issuer.issue(subject, PROVIDER)
            guess = partial(
                issuer.redeem, subject, PROVIDER, _other_code(policy, issued.code), SERVICE
            )
            assert {WrongCode: THREADS} == _kinds(_together(race_pool, [guess] * THREADS))
            snapshot = storage.load(_filed(keyring, subject))
            (record,) = snapshot.codes
            assert (CodeState.LOCKED, 5) == (record.state, record.failed_attempts)
            # Once the code locked, no guess met a live code: none was counted on the budget.
            assert 5 == len(snapshot.failure_log(PROVIDER).failures)
        assert 0 < lost.count

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_issues_respect_the_live_code_limit(
        self,
        storage: Storage,
        make_issuer: IssuerFactory[CodeIssuer],
        keyring: Keyring,
        policy: Policy,
        race_pool: ThreadPoolExecutor,
    ) -> None:
        """32 issues at once for one subject: exactly max_live_codes codes, all of them stored."""
        lost = LostCommits()
        issuer = make_issuer(policy, lost)
        limit = policy.max_live_codes
        for round_ in range(max(1, self.race_rounds // 20)):
            subject = _citizen(round_)
            outcomes = _together(race_pool, [partial(issuer.issue, subject, PROVIDER)] * THREADS)
            assert {IssuedCode: limit, LiveCodeLimitReached: THREADS - limit} == _kinds(outcomes)
            issued = {outcome.code_id for outcome in outcomes if isinstance(outcome, IssuedCode)}
            stored = storage.load(_filed(keyring, subject)).codes
            assert issued == {record.code_id for record in stored}
        assert 0 < lost.count
