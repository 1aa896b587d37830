"""The storage's own operations, one by one: load, commit, purge and ``purge_snapshots``."""

# Test code: assert is the point, numbers are the boundaries under test, asserts read
# `expected == actual`.
# ruff: noqa: S101, PLR2004, SIM300

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from telecard_auth._core.model import CodeState
from telecard_auth._storage.protocol import FailureLog, Storage, SubjectScanning, SubjectSnapshot
from telecard_auth.testing._base import ContractBase
from telecard_auth.testing._helpers import (
    _MICROSECOND,
    _STORED_STATES,
    INCARNATION,
    OTHER_PROVIDER,
    PROVIDER,
    SERVICE,
    START,
    TRANSFER,
    _canonical,
    _commit,
    _moments,
    _read,
    _record,
    _ref,
    _stored,
)


class StorageOperationTests(ContractBase):
    """The ``Storage`` protocol called directly: no issuer, no threads."""

    # --- load --------------------------------------------------------------------------------

    def test_load_of_unknown_subject_is_empty_at_version_zero(self, storage: Storage) -> None:
        """Loading a subject with nothing stored gives version 0, no codes and no logs."""
        assert SubjectSnapshot(subject_ref=_ref("nobody")) == _read(storage, _ref("nobody"))

    # --- commit ------------------------------------------------------------------------------

    def test_commit_at_version_zero_creates_the_subject(self, storage: Storage) -> None:
        """A commit at version 0 on an unknown subject lands and is loaded back at version 1."""
        change = _commit(_ref("a"), 0, [_record("c1")])
        assert storage.commit(change) is True
        assert _stored(change) == _read(storage, _ref("a"))

    def test_second_commit_at_version_zero_fails_and_keeps_the_first(
        self, storage: Storage
    ) -> None:
        """Two creations of one subject: the second returns False and the first state stays."""
        first = _commit(_ref("a"), 0, [_record("first")])
        second = _commit(_ref("a"), 0, [_record("second")])
        assert (True, False) == (storage.commit(first), storage.commit(second))
        assert _stored(first) == _read(storage, _ref("a"))

    def test_commit_at_current_version_replaces_the_whole_state(self, storage: Storage) -> None:
        """A commit at the stored version replaces every record and log and adds one to it."""
        ref = _ref("a")
        old_logs = [
            FailureLog(provider_id=PROVIDER, failures=(START,)),
            FailureLog(provider_id=OTHER_PROVIDER, failures=(START,)),
        ]
        kept, dropped = _record("kept"), _record("dropped")
        assert storage.commit(_commit(ref, 0, [kept, dropped], old_logs)) is True
        changed = attrs.evolve(kept, failed_attempts=2)
        new_log = FailureLog(provider_id=OTHER_PROVIDER, failures=(START, START + _MICROSECOND))
        change = _commit(ref, 1, [changed, _record("added")], [new_log])
        assert storage.commit(change) is True
        assert _canonical(_stored(change)) == _canonical(storage.load(ref))

    def test_commit_of_an_empty_state_keeps_counting_versions(self, storage: Storage) -> None:
        """Committing no records and no logs leaves an empty subject one version further on."""
        ref = _ref("a")
        assert storage.commit(_commit(ref, 0, [_record("c1")])) is True
        assert storage.commit(_commit(ref, 1)) is True
        assert SubjectSnapshot(subject_ref=ref, version=2, incarnation=INCARNATION) == _read(
            storage, ref
        )
        assert storage.commit(_commit(ref, 2, [_record("c2")])) is True
        assert 3 == storage.load(ref).version

    def test_versions_grow_by_one_per_commit(self, storage: Storage) -> None:
        """Each successful commit moves the version on by exactly one."""
        ref = _ref("a")
        versions = []
        for version in range(5):
            assert storage.commit(_commit(ref, version, [_record(f"c{version}")])) is True
            versions.append(storage.load(ref).version)
        assert [1, 2, 3, 4, 5] == versions

    def test_stale_or_future_version_fails_and_changes_nothing(self, storage: Storage) -> None:
        """A commit at any version but the stored one returns False and leaves the state alone."""
        ref = _ref("a")
        assert storage.commit(_commit(ref, 0, [_record("c1")])) is True
        current = _commit(ref, 1, [_record("c2")])
        assert storage.commit(current) is True
        intruder = [_record("intruder")]
        outcomes = [storage.commit(_commit(ref, version, intruder)) for version in (0, 1, 3, 7)]
        assert [False, False, False, False] == outcomes
        assert _stored(current) == _read(storage, ref)

    def test_subjects_are_independent(self, storage: Storage) -> None:
        """Commits on one subject neither see nor change another subject's state or version."""
        a, b = _ref("a"), _ref("b")
        first_a, first_b = _commit(a, 0, [_record("a1")]), _commit(b, 0, [_record("b1")])
        assert (True, True) == (storage.commit(first_a), storage.commit(first_b))
        second_a = _commit(a, 1, [_record("a2")])
        assert storage.commit(second_a) is True
        assert storage.commit(_commit(b, 2, [_record("b-stale")])) is False
        assert (_stored(second_a), _stored(first_b)) == (_read(storage, a), _read(storage, b))

    def test_commit_needs_the_stored_incarnation_too(self, storage: Storage) -> None:
        """A commit at the stored version but with another incarnation fails, changing nothing."""
        ref = _ref("a")
        first = _commit(ref, 0, [_record("c1")], incarnation="inc-a")
        assert storage.commit(first) is True
        assert "inc-a" == storage.load(ref).incarnation
        for other in ("inc-b", "", "inc-a "):
            assert storage.commit(_commit(ref, 1, [_record("x")], incarnation=other)) is False
        assert _stored(first) == _read(storage, ref)
        second = _commit(ref, 1, [_record("c2")], incarnation="inc-a")
        assert storage.commit(second) is True
        assert _stored(second) == _read(storage, ref)

    def test_a_stale_commit_never_lands_on_a_subject_created_anew(self, storage: Storage) -> None:
        """Deleted and created anew up to the same version, a subject refuses its old life's commit.

        The compare-and-set token never repeats: a request that loaded the subject before it was
        deleted (by purge, or by the backend's own expiry) cannot overwrite what came after.
        """
        ref = _ref("a")
        due = START + timedelta(days=3)
        for version in (0, 1):
            change = _commit(ref, version, [_record(f"old-{version}")], incarnation="old")
            assert storage.commit(attrs.evolve(change, keep_until=due)) is True
        stale = _commit(ref, 2, [_record("stale")], incarnation="old")
        self.vanish(storage, ref, due)
        for version in (0, 1):
            change = _commit(ref, version, [_record(f"new-{version}")], incarnation="new")
            assert storage.commit(change) is True
        assert (2, "new") == (storage.load(ref).version, storage.load(ref).incarnation)
        assert storage.commit(stale) is False
        assert _stored(change) == _read(storage, ref)

    def test_identity_and_moved_round_trip(self, storage: Storage) -> None:
        """The sealed identity and the moved mark come back as committed, and change with it."""
        ref = _ref("a")
        sealed = attrs.evolve(_commit(ref, 0, [_record("c1")]), identity="p1.c2VhbGVk-_x")
        assert storage.commit(sealed) is True
        assert ("p1.c2VhbGVk-_x", False) == (storage.load(ref).identity, storage.load(ref).moved)
        frozen = attrs.evolve(
            _commit(ref, 1, [_record("c1")]), identity=sealed.identity, moved=True
        )
        assert storage.commit(frozen) is True
        assert _stored(frozen) == _read(storage, ref)
        emptied = _commit(ref, 2)
        assert storage.commit(emptied) is True
        assert (None, False) == (storage.load(ref).identity, storage.load(ref).moved)

    def test_scan_subjects_lists_every_subject(self, storage: Storage) -> None:
        """Page after page, scan_subjects gives every stored subject, as load gives it.

        At least once each: a backend whose walk may repeat a subject (a Redis ``SCAN`` while the
        keyspace shrinks) is within the contract; one that misses a subject is not.
        """
        if not isinstance(storage, SubjectScanning):
            pytest.skip("the storage has no scan_subjects (the optional SubjectScanning)")
        refs = [_ref(f"scan{n}") for n in range(7)]
        for ref in refs:
            assert storage.commit(_commit(ref, 0, [_record(ref[:8])])) is True
        assert storage.commit(_commit(refs[0], 1, [_record("again")])) is True
        for limit in (1, 2, 3, 100):
            seen: list[SubjectSnapshot] = []
            cursor: str | None = None
            # A Redis SCAN walks the whole database, other tenants' keys too, a few slots a page:
            # the bound only stops a walk that never ends.
            for _ in range(100_000):
                page, cursor = storage.scan_subjects(cursor, limit)
                seen += page
                if cursor is None:
                    break
            assert cursor is None
            assert set(refs) == {snapshot.subject_ref for snapshot in seen}
            assert [_canonical(storage.load(s.subject_ref)) for s in seen] == [
                _canonical(s) for s in seen
            ]

    def test_every_field_round_trips_exactly(self, storage: Storage) -> None:
        """Every field of every record and log comes back equal, datetimes aware UTC with µs."""
        ref = _ref("a")
        when = START + timedelta(minutes=7, microseconds=999_998)
        bare = _record(
            "bare-Zz_-9",
            provider_id=OTHER_PROVIDER,
            key_id="key.2026-03_b",
            digest=bytes(32),
            issued_at=when,
            expires_at=when + timedelta(hours=4, microseconds=1),
        )
        full = [
            _record(
                f"full-{state.value}",
                digest=bytes(range(255, 223, -1)),
                issued_at=START,
                expires_at=START + timedelta(hours=1, microseconds=123_457),
                service_id=TRANSFER,
                msisdn_ref=_ref("msisdn"),
                recipient_ref=_ref("recipient"),
                state=state,
                failed_attempts=index * 3,
                finished_at=when + timedelta(microseconds=index),
                redeemed_service_id=SERVICE if state is CodeState.REDEEMED else None,
                request_ref=_ref("request") if state is CodeState.REDEEMED else None,
                request_inputs=_ref("inputs") if state is CodeState.REDEEMED else None,
                receipt_key_id="r1.2026-03" if state is CodeState.REDEEMED else None,
                recovery=index % 2 == 1,
            )
            for index, state in enumerate(_STORED_STATES)
        ]
        logs = [
            FailureLog(provider_id=PROVIDER, failures=(START,)),
            FailureLog(
                provider_id=OTHER_PROVIDER,
                failures=tuple(when + timedelta(seconds=n, microseconds=n) for n in range(10)),
                recoveries=(when, when + timedelta(hours=2, microseconds=7)),
            ),
        ]
        change = attrs.evolve(
            _commit(ref, 0, [bare, *full], logs), identity="p1.sealed-identity_Zz-09"
        )
        assert storage.commit(change) is True
        loaded = storage.load(ref)
        assert _canonical(_stored(change)) == _canonical(loaded)
        offsets = {(moment.tzinfo is not None, moment.utcoffset()) for moment in _moments(loaded)}
        assert {(True, timedelta(0))} == offsets
        assert {bytes} == {type(record.digest) for record in loaded.codes}

    def test_failures_keep_their_order(self, storage: Storage) -> None:
        """A failure log's moments come back oldest first, as committed."""
        ref = _ref("a")
        failures = tuple(START + timedelta(microseconds=n) for n in (1, 2, 10, 100, 999_999))
        log = FailureLog(provider_id=PROVIDER, failures=failures)
        assert storage.commit(_commit(ref, 0, logs=[log])) is True
        assert failures == storage.load(ref).failure_log(PROVIDER).failures

    # --- purge -------------------------------------------------------------------------------

    def test_purge_deletes_subjects_kept_until_now_or_earlier(self, storage: Storage) -> None:
        """purge removes subjects with keep_until <= now, keeps later ones, returns the count."""
        now = START + timedelta(days=1)
        keep = {"past": now - timedelta(seconds=1), "now": now, "later": now + _MICROSECOND}
        for name, keep_until in keep.items():
            change = _commit(_ref(name), 0, [_record(name)], keep_until=keep_until)
            assert storage.commit(change) is True
        if self.purges:
            assert 2 == storage.purge(now, 100)
            versions = {name: storage.load(_ref(name)).version for name in keep}
            assert {"past": 0, "now": 0, "later": 1} == versions
            # A purged subject starts over: its old version is gone, version 0 creates it anew.
            assert storage.commit(_commit(_ref("now"), 1)) is False
            assert storage.commit(_commit(_ref("now"), 0)) is True
        else:
            assert 0 == storage.purge(now, 100)
        assert 1 == storage.load(_ref("later")).version

    def test_keep_until_reads_back_as_committed_or_not_at_all(self, storage: Storage) -> None:
        """load().keep_until is None or the last commit's, also when a commit leaves it as is."""
        ref = _ref("keeper")
        first = _commit(ref, 0, [_record("a")], keep_until=START + timedelta(hours=30))
        assert storage.commit(first) is True
        read = storage.load(ref).keep_until
        assert read in (None, first.keep_until)
        same = attrs.evolve(
            _commit(ref, 1, [_record("a"), _record("b")], keep_until=first.keep_until),
            stored_keep_until=read,
        )
        assert storage.commit(same) is True
        assert storage.load(ref).keep_until in (None, first.keep_until)
        moved = attrs.evolve(
            _commit(ref, 2, keep_until=START + timedelta(hours=40)), stored_keep_until=read
        )
        assert storage.commit(moved) is True
        assert storage.load(ref).keep_until in (None, moved.keep_until)
        if self.purges:
            # The moved keep_until is what purge obeys.
            assert 0 == storage.purge(START + timedelta(hours=39), 10)
            assert 1 == storage.purge(START + timedelta(hours=40), 10)

    def test_purge_honours_its_limit(self, storage: Storage) -> None:
        """purge deletes at most ``limit`` subjects per call and returns 0 when none are left."""
        now = START + timedelta(days=1)
        names = [f"old{n}" for n in range(5)]
        for name in [*names, "young"]:
            keep_until = now + timedelta(hours=1) if name == "young" else now
            change = _commit(_ref(name), 0, [_record(name)], keep_until=keep_until)
            assert storage.commit(change) is True
        if self.purges:
            assert [2, 2, 1, 0] == [storage.purge(now, 2) for _ in range(4)]
            assert [0] * 5 == [storage.load(_ref(name)).version for name in names]
        else:
            assert 0 == storage.purge(now, 2)
        assert 1 == storage.load(_ref("young")).version

    # --- purge_snapshots (the optional PurgeReporting) ----------------------------------------

    def test_purge_snapshots_return_each_deleted_subject_as_it_was(self, storage: Storage) -> None:
        """purge_snapshots deletes what purge would and returns those subjects as loaded before."""
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)
        keep = {"past": now - timedelta(seconds=1), "now": now, "later": now + _MICROSECOND}
        for name, keep_until in keep.items():
            ref = _ref(name)
            assert storage.commit(_commit(ref, 0, [_record(f"{name}-1")])) is True
            # The second commit moves keep_until earlier: the last commit's is what counts.
            records = [
                _record(f"{name}-1", failed_attempts=1),
                _record(f"{name}-2", state=CodeState.REDEEMED, finished_at=START),
            ]
            log = FailureLog(provider_id=PROVIDER, failures=(START, START + _MICROSECOND))
            change = _commit(ref, 1, records, [log], keep_until=keep_until)
            assert storage.commit(change) is True
        before = {name: storage.load(_ref(name)) for name in keep}
        if self.purges:
            returned = reporting.purge_snapshots(now, 100)
            deleted = {snapshot.subject_ref: snapshot for snapshot in returned}
            assert {_ref("past"), _ref("now")} == set(deleted)
            for name in ("past", "now"):
                snapshot = deleted[_ref(name)]
                assert _canonical(before[name]) == _canonical(snapshot)
                assert (2, 2) == (snapshot.version, len(snapshot.codes))
                assert snapshot.keep_until in (None, keep[name])
            versions = {name: storage.load(_ref(name)).version for name in keep}
            assert {"past": 0, "now": 0, "later": 2} == versions
        assert [] == reporting.purge_snapshots(now, 100)
        assert before["later"] == storage.load(_ref("later"))

    def test_purge_snapshots_honour_the_limit(self, storage: Storage) -> None:
        """purge_snapshots returns at most ``limit`` subjects per call, each once, then none."""
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)
        names = [f"old{n}" for n in range(5)]
        for name in [*names, "young"]:
            keep_until = now + timedelta(hours=1) if name == "young" else now
            change = _commit(_ref(name), 0, [_record(name)], keep_until=keep_until)
            assert storage.commit(change) is True
        before = {_ref(name): _canonical(storage.load(_ref(name))) for name in names}
        if self.purges:
            batches = [reporting.purge_snapshots(now, 2) for _ in range(4)]
            assert [2, 2, 1, 0] == [len(batch) for batch in batches]
            returned = [snapshot for batch in batches for snapshot in batch]
            assert sorted(before) == sorted(snapshot.subject_ref for snapshot in returned)
            assert before == {snapshot.subject_ref: _canonical(snapshot) for snapshot in returned}
            assert [0] * 5 == [storage.load(_ref(name)).version for name in names]
        else:
            assert [] == reporting.purge_snapshots(now, 2)
        assert 1 == storage.load(_ref("young")).version

    def test_purge_snapshots_see_the_last_commit(self, storage: Storage) -> None:
        """A due subject committed again is kept if its keep_until moved on, else purged as new."""
        reporting = self._reporting(storage)
        now = START + timedelta(days=1)
        moved, still = _ref("moved"), _ref("still")
        for ref in (moved, still):
            assert storage.commit(_commit(ref, 0, [_record("old")], keep_until=now)) is True
        # Both subjects are due; each is committed again before the purge runs.
        later = _commit(moved, 1, [_record("new")], keep_until=now + _MICROSECOND)
        again = _commit(still, 1, [_record("new")], keep_until=now)
        assert (True, True) == (storage.commit(later), storage.commit(again))
        if self.purges:
            (deleted,) = reporting.purge_snapshots(now, 100)
            assert _canonical(_stored(again)) == _canonical(deleted)
            assert (0, 2) == (storage.load(still).version, storage.load(moved).version)
        else:
            assert [] == reporting.purge_snapshots(now, 100)
        assert _stored(later) == _read(storage, moved)
