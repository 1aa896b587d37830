"""Where a subject is filed, as steps: the part of the shells that finds a subject's snapshot.

A subject is filed under the keyed pseudonym of its identity made with the filing pseudonym key.
While a second pseudonym key is held (a rotation), a subject may be filed under either, and a
subject found under the older key moves to the newer one: its state there is first frozen (a
commit that marks it ``moved``, so that nobody writes it again), then re-created under the newer
key, then emptied. Every step is one compare-and-set on one subject's key, so the move needs no
transaction across keys, and a request that loses a race starts over and finds the subject where
it now is.

Steps are ``_Load``, ``_Put`` and ``_Scan`` values yielded by generators; the issuers perform
them, with a plain call or awaited.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator
from datetime import datetime
from typing import Any, TypeVar

import attrs

from telecard_auth._core import rules as _rules
from telecard_auth._core.errors import (
    StorageError,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.policy import Policy
from telecard_auth._storage.protocol import (
    AsyncStorage,
    Commit,
    Storage,
    SubjectSnapshot,
)

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", Storage, AsyncStorage)


def new_incarnation() -> str:
    """A random id for a subject's new life in storage (64 bits): never the same twice."""
    return secrets.token_hex(8)


class _Load:
    """A step: load the snapshot filed under ``subject_ref``."""

    __slots__ = ("subject_ref",)

    def __init__(self, subject_ref: str) -> None:
        self.subject_ref = subject_ref


class _Put:
    """A step: commit ``change``; the answer is whether it landed."""

    __slots__ = ("change",)

    def __init__(self, change: Commit) -> None:
        self.change = change


class _Scan:
    """A step: a page of stored subjects after ``cursor``."""

    __slots__ = ("cursor", "limit")

    def __init__(self, cursor: str | None, limit: int) -> None:
        self.cursor = cursor
        self.limit = limit


_Step = _Load | _Put | _Scan
_Steps = Generator[_Step, Any, T]


class _Frozen:
    """A subject's frozen state under an older key, to empty once it lives under the newer."""

    __slots__ = ("incarnation", "subject_ref", "version")

    def __init__(self, subject_ref: str, version: int, incarnation: str) -> None:
        self.subject_ref = subject_ref
        self.version = version
        self.incarnation = incarnation


#: A subject's compare-and-set token as read: its key, version and incarnation.
_Token = tuple[str, int, str]


def _token(snapshot: SubjectSnapshot) -> _Token:
    return snapshot.subject_ref, snapshot.version, snapshot.incarnation


class _Found:
    """Where ``_find`` found the subject: the snapshot to decide on, the frozen state to empty
    once the decision lands under the newer key, and the tokens of what was read under two keys
    (``seen``), which a decision that writes nothing must find unchanged."""

    __slots__ = ("frozen", "seen", "snapshot")

    def __init__(
        self,
        snapshot: SubjectSnapshot,
        frozen: _Frozen | None = None,
        seen: tuple[_Token, ...] = (),
    ) -> None:
        self.snapshot = snapshot
        self.frozen = frozen
        self.seen = seen


class Filing:
    """Finding and moving subjects, as steps; mixed into the shells, which hold these parts."""

    keyring: Keyring
    policy: Policy

    def _unchanged(self, seen: tuple[_Token, ...]) -> _Steps[bool]:
        """Whether every subject in ``seen`` still has the token it was read with.

        Tokens never repeat, so each was unchanged from its first read to its second; the reads
        overlap in time, so at one moment all of them held what was decided on.
        """
        for ref, version, incarnation in seen:
            again = self._checked((yield _Load(ref)), ref)
            if (again.version, again.incarnation) != (version, incarnation):
                return False
        return True

    def _find(self, identity: str, now: datetime) -> _Steps[_Found | None]:
        """Where the subject is filed: the snapshot to decide on, what to empty after a move and
        what was read to find it; ``None`` when a step of a move lost a race (start over)."""
        keyring = self.keyring
        filing = keyring.filing_key_id
        ref = keyring.subject_ref(identity, filing)
        snapshot = self._checked((yield _Load(ref)), ref)
        if len(keyring.pseudonym_keys) == 1:
            if snapshot.version:
                return _Found(snapshot)
            return _Found(self._fresh(identity, ref, filing))
        newest = keyring.newest_pseudonym_key_id
        if filing == newest:
            return (yield from self._find_moving(identity, snapshot, now))
        # The newer key is in standby: nothing is filed under it here, but other nodes may have
        # made it current already, and a subject may live there.
        if snapshot.version and not snapshot.moved:
            return _Found(snapshot)
        new_ref = keyring.subject_ref(identity, newest)
        there = self._checked((yield _Load(new_ref)), new_ref)
        if there.version:
            return _Found(there)
        seen = (_token(snapshot), _token(there))
        if snapshot.moved:
            return self._unfrozen(identity, new_ref, snapshot, now, seen)
        return _Found(self._fresh(identity, ref, filing), seen=seen)

    def _find_moving(
        self, identity: str, snapshot: SubjectSnapshot, now: datetime
    ) -> _Steps[_Found | None]:
        """``_find`` once the newer key files subjects; ``snapshot`` is what it holds."""
        if snapshot.version:
            return _Found(snapshot)
        keyring = self.keyring
        newer = snapshot.subject_ref
        older = next(key for key in keyring.lookup_key_ids() if key != keyring.filing_key_id)
        old_ref = keyring.subject_ref(identity, older)
        old = self._checked((yield _Load(old_ref)), old_ref)
        if old.version == 0:
            # Claim the older name first, so that a node still filing there cannot create the
            # subject beside this one: whoever commits there first decides where it lives.
            claim = Commit(
                subject_ref=old_ref,
                expected_version=0,
                incarnation=new_incarnation(),
                codes=(),
                failure_logs=(),
                written_at=now,
                # Kept while a node filing under the older key may still come: purged later.
                keep_until=now + self.policy.retention,
                moved=True,
            )
            if not (yield _Put(claim)):
                return None
            seen = ((old_ref, 1, claim.incarnation), _token(snapshot))
            return _Found(self._fresh(identity, newer, keyring.filing_key_id), seen=seen)
        if not old.moved:
            # Freeze it: from this commit on, nobody writes the older state again.
            frozen = attrs.evolve(_rules.next_commit(self.policy, old, now), moved=True)
            if not (yield _Put(frozen)):
                return None
            old = SubjectSnapshot(
                subject_ref=old_ref,
                version=old.version + 1,
                incarnation=old.incarnation,
                codes=frozen.codes,
                failure_logs=frozen.failure_logs,
                keep_until=frozen.keep_until,
                identity=frozen.identity,
                moved=True,
            )
        return self._unfrozen(identity, newer, old, now, (_token(old), _token(snapshot)))

    def _unfrozen(
        self,
        identity: str,
        new_ref: str,
        frozen: SubjectSnapshot,
        now: datetime,
        seen: tuple[_Token, ...],
    ) -> _Found:
        """The subject to create under ``new_ref`` from its frozen state under the older key."""
        fresh = self._fresh(identity, new_ref, self.keyring.newest_pseudonym_key_id)
        due = frozen.keep_until is not None and frozen.keep_until <= now
        if due or not (frozen.codes or frozen.failure_logs):
            return _Found(fresh, seen=seen)
        moved = attrs.evolve(fresh, codes=frozen.codes, failure_logs=frozen.failure_logs)
        emptied = _Frozen(frozen.subject_ref, frozen.version, frozen.incarnation)
        return _Found(moved, emptied, seen)

    def _empty(self, frozen: _Frozen, now: datetime) -> _Steps[None]:
        """Empty a frozen state once the subject lives under the newer key (best effort: a
        purge removes it anyway once it is due)."""
        yield _Put(
            Commit(
                subject_ref=frozen.subject_ref,
                expected_version=frozen.version,
                incarnation=frozen.incarnation,
                codes=(),
                failure_logs=(),
                written_at=now,
                keep_until=now,
                moved=True,
            )
        )

    def _fresh(self, identity: str, ref: str, key_id: str) -> SubjectSnapshot:
        """A subject with nothing stored, ready to be created under ``ref``."""
        return SubjectSnapshot(
            subject_ref=ref,
            incarnation=new_incarnation(),
            identity=self.keyring.seal(identity, ref, key_id),
        )

    @staticmethod
    def _checked(snapshot: object, subject_ref: str) -> SubjectSnapshot:
        if not isinstance(snapshot, SubjectSnapshot) or snapshot.subject_ref != subject_ref:
            raise StorageError(reason="load() returned something other than this snapshot")
        return snapshot
