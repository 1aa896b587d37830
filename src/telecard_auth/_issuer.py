"""``CodeIssuer`` and ``AsyncCodeIssuer``: the shells around the rules.

A shell reads the clock, draws codes and ids, finds where the subject is filed, loads its
snapshot, asks ``_core`` for a decision and commits it, trying again from a fresh snapshot when a
concurrent request committed first. No rule lives here.

Everything but the waiting is written once, as generators of storage steps (``_Load``, ``_Put``):
``CodeIssuer`` performs each step with a plain call and ``AsyncCodeIssuer`` awaits it, so the two
cannot drift apart.

Where a subject is filed: under the keyed pseudonym of its identity made with the filing
pseudonym key. While a second pseudonym key is held (a rotation), a subject may be filed under
either, and a subject found under the older key moves to the newer one: its state there is first
frozen (a commit that marks it ``moved``, so that nobody writes it again), then re-created under
the newer key, then emptied. Every step is one compare-and-set on one subject's key, so the move
needs no transaction across keys, and a request that loses a race starts over and finds the
subject where it now is.
"""

from __future__ import annotations

import inspect
import operator
import secrets
from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import attrs

from telecard_auth._core import rules as _rules
from telecard_auth._core.clock import Clock, SystemClock, ensure_utc
from telecard_auth._core.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidTime,
    KeyringError,
    StorageContention,
    StorageError,
    TelecardAuthError,
    driver_detail,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import (
    CodeState,
    CodeStatus,
    IssuedCode,
    Provider,
    Redemption,
    Service,
    Subject,
)
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._storage.protocol import (
    AsyncPurgeReporting,
    AsyncStorage,
    AsyncSubjectScanning,
    Commit,
    PurgeReporting,
    Storage,
    SubjectScanning,
    SubjectSnapshot,
)
from telecard_auth.events import CodeExpiry, EventSink, deliver

__all__ = ["AsyncCodeIssuer", "CodeIssuer", "MoveProgress"]

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", Storage, AsyncStorage)

#: How many times one request re-reads and re-decides after losing a compare-and-set race.
MAX_CONFLICTS = 64
#: The clock's time must fall in [1970-01-01, 9000-01-01) UTC: storage counts time from the Unix
#: epoch, and a policy's durations (a year at most each) added to any time in range stay far
#: inside what ``datetime`` holds. A clock outside is refused with ``InvalidTime``.
FIRST_YEAR = 1970
END_YEAR = 9000
#: The largest ``purge`` limit passed on to storage; a larger limit means the same: all of them.
MAX_PURGE_LIMIT = 2**31 - 1


def new_code_id() -> str:
    """A random, meaningless id for a new code (96 bits, URL-safe)."""
    return secrets.token_urlsafe(12)


def new_incarnation() -> str:
    """A random id for a subject's new life in storage (64 bits): never the same twice."""
    return secrets.token_hex(8)


@attrs.frozen(kw_only=True)
class MoveProgress:
    """What one batch of ``move_subjects`` did.

    ``moved`` subjects were re-filed under the newer pseudonym key, out of ``scanned`` looked at;
    ``done`` is true once a whole walk of the storage is over: call until it is.
    """

    moved: int
    scanned: int
    done: bool


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


class _Plan(Generic[T]):
    """One request, ready to run: whose identity to find and how to decide on its snapshot."""

    __slots__ = ("decide", "identity")

    def __init__(
        self, identity: str, decide: Callable[[SubjectSnapshot, datetime], _rules.Decision[T]]
    ) -> None:
        self.identity = identity
        self.decide = decide


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


class _Shell(Generic[S]):
    """What both issuers share: their parts, each verb as steps, and the filing of subjects."""

    _asynchronous: bool

    def __init__(
        self,
        storage: S,
        *,
        keyring: Keyring,
        policy: Policy | None = None,
        clock: Clock | None = None,
        signer: ReceiptSigner | None = None,
        events: EventSink | Sequence[EventSink] = (),
    ) -> None:
        self._check_storage(storage)
        if not isinstance(keyring, Keyring):
            raise ConfigurationError(reason="keyring must be a Keyring")
        policy = Policy() if policy is None else policy
        if not isinstance(policy, Policy):
            raise ConfigurationError(reason="policy must be a Policy")
        clock = SystemClock() if clock is None else clock
        if not isinstance(clock, Clock):
            raise ConfigurationError(reason="clock must provide now()")
        if signer is not None and not isinstance(signer, ReceiptSigner):
            raise ConfigurationError(reason="signer must be a ReceiptSigner")
        given: object = events
        candidates = list(given) if isinstance(given, list | tuple) else [given]
        sinks = tuple(sink for sink in candidates if isinstance(sink, EventSink))
        if len(sinks) != len(candidates):
            raise ConfigurationError(reason="events must be an EventSink or a sequence of them")
        self.storage: S = storage
        self.keyring = keyring
        self.policy = policy
        self.clock = clock
        self.signer = signer
        self.sinks: tuple[EventSink, ...] = sinks
        self._move_cursor: str | None = None

    def _check_storage(self, storage: object) -> None:
        kind = "an AsyncStorage" if self._asynchronous else "a Storage"
        if not isinstance(storage, AsyncStorage if self._asynchronous else Storage) or any(
            inspect.iscoroutinefunction(getattr(storage, name)) != self._asynchronous
            for name in ("load", "commit", "purge")
        ):
            raise ConfigurationError(reason=f"storage must be {kind} (load, commit, purge)")
        # The optional capabilities, if there, must be of the same kind as the rest.
        for capability, method in (
            ((AsyncPurgeReporting, PurgeReporting), "purge_snapshots"),
            ((AsyncSubjectScanning, SubjectScanning), "scan_subjects"),
        ):
            wanted = capability[0] if self._asynchronous else capability[1]
            if isinstance(storage, wanted) and (
                inspect.iscoroutinefunction(getattr(storage, method)) != self._asynchronous
            ):
                awaited = "a coroutine function" if self._asynchronous else "a plain function"
                raise ConfigurationError(reason=f"the storage's {method} must be {awaited}")

    # --- the verbs, as plans ----------------------------------------------------------------

    def _plan_issue(
        self,
        *,
        subject: object,
        provider: object,
        service: object,
        msisdn: object,
        recipient: object,
    ) -> _Plan[IssuedCode]:
        request = _rules.prepare_issue(
            self.policy,
            self.keyring,
            subject=subject,
            provider=provider,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
        )
        code = self.policy.code_format.generate()
        code_id = new_code_id()
        return _Plan(
            request.identity,
            lambda snapshot, now: _rules.decide_issue(
                self.policy,
                self.keyring,
                request,
                snapshot,
                now,
                code=code,
                code_id=code_id,
                observed=bool(self.sinks),
            ),
        )

    def _plan_redeem(
        self,
        *,
        subject: object,
        provider: object,
        code: object,
        service: object,
        msisdn: object,
        recipient: object,
        request_id: object,
        reference: object,
    ) -> _Plan[Redemption]:
        request = _rules.prepare_redeem(
            self.policy,
            self.keyring,
            subject=subject,
            provider=provider,
            code=code,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
            request_id=request_id,
            reference=reference,
        )
        return _Plan(
            request.identity,
            lambda snapshot, now: _rules.decide_redeem(
                self.policy,
                self.keyring,
                request,
                snapshot,
                now,
                signer=self.signer,
                observed=bool(self.sinks),
            ),
        )

    def _plan_revoke(self, subject: object, code_id: object) -> _Plan[CodeStatus]:
        request = _rules.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return _Plan(
            request.identity,
            lambda snapshot, now: _rules.decide_revoke(self.policy, request, snapshot, now),
        )

    def _plan_status(self, subject: object, code_id: object) -> _Plan[CodeStatus]:
        request = _rules.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return _Plan(
            request.identity,
            lambda snapshot, now: _rules.decide_status(self.policy, request, snapshot, now),
        )

    def _plan_move(self, identity: str) -> _Plan[bool]:
        """Commit the subject as it is: where it is found under the older key, that moves it."""

        def decide(snapshot: SubjectSnapshot, now: datetime) -> _rules.Decision[bool]:
            if snapshot.version:  # already filed under the newer key: nothing to move
                return _rules.Decision(None, False)
            return _rules.Decision(_rules.next_commit(self.policy, snapshot, now), True)

        return _Plan(identity, decide)

    # --- running a plan -----------------------------------------------------------------------

    def _steps(self, plan: _Plan[T]) -> _Steps[T]:
        for _ in range(MAX_CONFLICTS):
            now = self._now()
            found = yield from self._find(plan.identity, now)
            if found is None:
                continue
            decision = plan.decide(found.snapshot, now)
            if decision.commit is not None:
                if not (yield _Put(decision.commit)):
                    continue
                if found.frozen is not None:
                    yield from self._empty(found.frozen, now)
            elif found.seen and not (yield from self._unchanged(found.seen)):
                # A decision that writes nothing rests on what was read under two keys, at two
                # moments: read them again, and answer only if neither changed in between.
                continue
            if self.sinks and decision.events:
                deliver(self.sinks, decision.events)
            return decision.outcome()
        raise StorageContention()

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

    def _move_steps(self, limit: int) -> _Steps[MoveProgress]:
        keyring = self.keyring
        if len(keyring.pseudonym_keys) == 1:
            return MoveProgress(moved=0, scanned=0, done=True)
        if keyring.pseudonym_standby:
            raise KeyringError(
                reason="subjects move only once the newer pseudonym key is current on every node"
            )
        older = keyring.pseudonym_keys[0].key_id
        moved = scanned = 0
        while moved < limit:
            page, cursor = self._checked_page((yield _Scan(self._move_cursor, limit)))
            scanned += len(page)
            for snapshot in page:
                opened = keyring.unseal(snapshot.identity, snapshot.subject_ref)
                if opened is None or opened[0] != older:
                    continue  # under the newer key already, an empty claim, or not ours
                if snapshot.moved and not (snapshot.codes or snapshot.failure_logs):
                    continue  # moved and emptied
                moved += bool((yield from self._steps(self._plan_move(opened[1]))))
                if snapshot.moved:
                    # Created under the newer key by someone else since it froze: empty it.
                    yield from self._empty(
                        _Frozen(snapshot.subject_ref, snapshot.version, snapshot.incarnation),
                        self._now(),
                    )
            self._move_cursor = cursor
            if cursor is None:
                return MoveProgress(moved=moved, scanned=scanned, done=True)
        return MoveProgress(moved=moved, scanned=scanned, done=False)

    # --- checks -------------------------------------------------------------------------------

    def _now(self) -> datetime:
        try:
            moment = self.clock.now()
        except Exception as error:
            raise ConfigurationError(reason="the clock failed") from error
        if (
            type(moment) is datetime
            and moment.tzinfo is UTC
            and FIRST_YEAR <= moment.year < END_YEAR
        ):
            return moment  # the common case, already checked
        moment = ensure_utc(moment, what="the clock's time")
        if not FIRST_YEAR <= moment.year < END_YEAR:
            # Kept out of the rules: _core may add a policy's durations to any time it is given.
            raise InvalidTime(
                reason=f"the clock's time must be from {FIRST_YEAR} to {END_YEAR - 1}",
                reason_ar=f"يجب أن يكون وقت الساعة بين عامي {FIRST_YEAR} و{END_YEAR - 1}",
            )
        return moment

    @staticmethod
    def _checked(snapshot: object, subject_ref: str) -> SubjectSnapshot:
        if not isinstance(snapshot, SubjectSnapshot) or snapshot.subject_ref != subject_ref:
            raise StorageError(reason="load() returned something other than this snapshot")
        return snapshot

    @staticmethod
    def _checked_page(page: object) -> tuple[list[SubjectSnapshot], str | None]:
        if (
            not isinstance(page, tuple)
            or len(page) != 2  # noqa: PLR2004
            or not isinstance(page[0], list)
            or not all(isinstance(snapshot, SubjectSnapshot) for snapshot in page[0])
            or not (page[1] is None or isinstance(page[1], str))
        ):
            raise StorageError(reason="scan_subjects() returned something other than a page")
        return page[0], page[1]

    @staticmethod
    def _limit(limit: object) -> int:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise InvalidInput()
        # An exact int (an int subclass's own methods are not called), capped: every storage
        # takes the cap, and a limit larger than it deletes the same, everything that is due.
        exact = operator.index(limit)
        if exact < 1:
            raise InvalidInput()
        return min(exact, MAX_PURGE_LIMIT)

    def _expired(self, deleted: object, now: datetime) -> list[CodeExpiry]:
        """One ``CodeExpiry`` per code that ``deleted`` (purged snapshots) held unused, expired.

        A frozen state (``moved``) reports nothing: its codes live on under the newer key.
        """
        if not isinstance(deleted, list | tuple) or not all(
            isinstance(snapshot, SubjectSnapshot) for snapshot in deleted
        ):
            raise StorageError(reason="purge_snapshots() returned something other than snapshots")
        expired = []
        for snapshot in deleted:
            if snapshot.moved:
                continue
            opened = self.keyring.unseal(snapshot.identity, snapshot.subject_ref)
            audit_ref = None if opened is None else self.keyring.audit_ref(opened[1])
            expired += [
                CodeExpiry(
                    at=now,
                    audit_ref=audit_ref,
                    code_id=record.code_id,
                    provider_id=record.provider_id,
                    expired_at=record.expires_at,
                )
                for record in snapshot.codes
                if record.state is CodeState.ACTIVE and record.expires_at <= now
            ]
        return expired

    def __repr__(self) -> str:
        return f"{type(self).__name__}(storage={self.storage!r}, clock={self.clock!r})"


def _storage_error(error: Exception) -> StorageError:
    # Backends raise StorageError themselves; this catches what a hand-written one lets out.
    # Its text may name the backend's host or files: kept on detail, for server logs only.
    return StorageError(
        reason="the storage backend raised an unexpected error",
        detail=driver_detail("storage", error),
    )


class CodeIssuer(_Shell[Storage]):
    """Issues and redeems SIM authentication codes under a policy, over a storage.

    Every verb reads the clock first; a time before 1970 or after 8999 (UTC) is refused with
    ``InvalidTime``, before anything is loaded or stored.

    >>> from telecard_auth import Keyring, ManualClock, MemoryStorage, Subject
    >>> issuer = CodeIssuer(MemoryStorage(), keyring=Keyring.generate(), clock=ManualClock())
    >>> customer = Subject.citizen("1000000008")
    >>> issued = issuer.issue(customer, "stc")
    >>> issuer.redeem(customer, "stc", issued.code, "new_line").service.id
    'new_line'
    """

    _asynchronous = False

    def issue(
        self,
        subject: Subject,
        provider: Provider | str,
        *,
        service: Service | str | None = None,
        msisdn: str | None = None,
        recipient: Subject | None = None,
    ) -> IssuedCode:
        """Issue a code to ``subject`` for ``provider`` (rules R1, R2, R3).

        ``service`` binds the code to one service (otherwise the agent chooses at redemption);
        ``msisdn`` binds it to the mobile number the service is for; ``recipient`` binds a number
        transfer to the person receiving the number, and a code for a number transfer must name
        one. The plaintext code is in the result only.

        Raises ``InvalidInput`` subclasses for malformed arguments, ``NotEligible``,
        ``ServiceNotAllowed`` or ``LiveCodeLimitReached`` when the policy says no. A spent failure
        budget never stops a customer from getting a code: see ``Policy.recovery_codes``.
        """
        return self._run(
            self._plan_issue(
                subject=subject,
                provider=provider,
                service=service,
                msisdn=msisdn,
                recipient=recipient,
            )
        )

    def redeem(
        self,
        subject: Subject,
        provider: Provider | str,
        code: str,
        service: Service | str,
        *,
        msisdn: str | None = None,
        recipient: Subject | None = None,
        request_id: str | None = None,
        reference: str | None = None,
    ) -> Redemption:
        """Use ``code`` once, for ``service``, at ``provider``, on behalf of ``subject`` (R4, R6).

        The code may be typed with Arabic-Indic digits, spaces or hyphens. Bound codes need the
        matching ``msisdn`` or ``recipient``; a number transfer needs a code issued for it. Every
        refusal is a ``RedemptionRefused``; a wrong code or binding is counted when it was
        compared with a live code, and the code locks at the policy's attempt limit.

        ``request_id`` (1-64 printable ASCII characters, chosen by the caller) makes a retry
        safe: repeating the same request with the same id returns the first call's
        ``Redemption`` (and receipt) instead of ``CodeAlreadyUsed``; the same id with another
        service, binding or right code of the subject is refused with ``RequestConflict``. A
        wrong code stays ``WrongCode``, request id or not. Request ids belong to one subject at
        one provider (another provider's ids never conflict), and retries are recognised for as
        long as the code's record is kept (its expiry plus the policy's ``retention``).

        ``reference`` (1-64 printable ASCII characters) names the operator's agent or branch; it
        is recorded in the audit events, refusals included, so that a guessing agent can be
        found, and stored nowhere.
        """
        return self._run(
            self._plan_redeem(
                subject=subject,
                provider=provider,
                code=code,
                service=service,
                msisdn=msisdn,
                recipient=recipient,
                request_id=request_id,
                reference=reference,
            )
        )

    def revoke(self, subject: Subject, code_id: str) -> CodeStatus:
        """Cancel one of ``subject``'s live codes; returns its status afterwards."""
        return self._run(self._plan_revoke(subject, code_id))

    def status(self, subject: Subject, code_id: str) -> CodeStatus:
        """The state of one of ``subject``'s codes: a ``CodeStatus`` with its ``CodeState``."""
        return self._run(self._plan_status(subject, code_id))

    def purge(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` subjects whose data no longer matters; returns how many.

        A subject's data matters until its last code's expiry plus the policy's ``retention``,
        and until its last wrong attempt has left the failure window. Call in a loop until it
        returns 0; each call is one bounded batch that never blocks redeemers for long.
        ``limit`` is a whole number of at least 1 (else ``InvalidInput``); any limit above
        ``MAX_PURGE_LIMIT`` (2^31 - 1) is taken as that, which means the same: all that is due.

        With event sinks, every code still unused (never redeemed, revoked, locked or superseded)
        in a deleted subject is reported as one ``events.CodeExpiry``, after the deletion: ``at``
        is the time of this purge and ``expired_at`` the code's expiry. That takes a storage with
        ``purge_snapshots`` (``PurgeReporting``), as every storage of this package has; over a
        storage without it, purging works the same but reports no expired codes. Without sinks,
        the storage's plain ``purge`` is called.
        """
        limit = self._limit(limit)
        now = self._now()
        storage = self.storage
        if self.sinks and isinstance(storage, PurgeReporting):
            deleted = self._call(storage.purge_snapshots, now, limit)
            expired = self._expired(deleted, now)
            if expired:
                deliver(self.sinks, expired)
            return len(deleted)
        return self._call(storage.purge, now, limit)

    def move_subjects(self, limit: int = 1000) -> MoveProgress:
        """Move up to ``limit`` subjects still filed under the older pseudonym key to the newer.

        The batch mover of a pseudonym key rotation (see ``Keyring.with_pseudonym_key``): call
        it until its ``done`` is true, once the newer key is current on every node; the older key
        can then retire. Subjects move one at a time, each by compare-and-set, while the issuer
        serves requests; a subject that a request moves first is simply skipped. It walks the
        storage with ``scan_subjects`` (``SubjectScanning``), and resumes where the last call
        stopped. With a single pseudonym key there is nothing to move. Raises ``KeyringError``
        while the newer key is in standby, and ``ConfigurationError`` over a storage that
        cannot list its subjects (its subjects move only when written).
        """
        limit = self._limit(limit)
        rotating = len(self.keyring.pseudonym_keys) > 1
        if rotating and not isinstance(self.storage, SubjectScanning):
            raise ConfigurationError(reason="the storage cannot list its subjects (scan_subjects)")
        return self._drive(self._move_steps(limit))

    def _run(self, plan: _Plan[T]) -> T:
        return self._drive(self._steps(plan))

    def _drive(self, steps: _Steps[T]) -> T:
        storage = self.storage
        answer: object = None
        try:
            while True:
                step = steps.send(answer)
                try:
                    if type(step) is _Load:
                        answer = storage.load(step.subject_ref)
                    elif type(step) is _Put:
                        answer = storage.commit(step.change)
                    else:
                        assert isinstance(step, _Scan)  # noqa: S101 - the third kind of step
                        answer = storage.scan_subjects(step.cursor, step.limit)  # type: ignore[attr-defined]
                except TelecardAuthError:
                    raise
                except Exception as error:
                    raise _storage_error(error) from error
        except StopIteration as done:
            result: T = done.value
            return result

    @staticmethod
    def _call(operation: Callable[..., R], *arguments: Any) -> R:
        try:
            return operation(*arguments)
        except TelecardAuthError:
            raise
        except Exception as error:
            raise _storage_error(error) from error


class AsyncCodeIssuer(_Shell[AsyncStorage]):
    """``CodeIssuer`` for asyncio: the same verbs, arguments, results, errors and rules, awaited.

    It needs an ``AsyncStorage`` (see ``async_storage_from_url``). The clock is read directly, so
    a ``ManualClock`` drives it exactly as it drives ``CodeIssuer``.

    >>> import asyncio
    >>> from telecard_auth import AsyncMemoryStorage, Keyring, ManualClock, Subject
    >>> issuer = AsyncCodeIssuer(AsyncMemoryStorage(), keyring=Keyring.generate())
    >>> customer = Subject.citizen("1000000008")
    >>> async def visit() -> str:
    ...     issued = await issuer.issue(customer, "stc")
    ...     return (await issuer.redeem(customer, "stc", issued.code, "new_line")).service.id
    >>> asyncio.run(visit())
    'new_line'
    """

    _asynchronous = True

    async def issue(
        self,
        subject: Subject,
        provider: Provider | str,
        *,
        service: Service | str | None = None,
        msisdn: str | None = None,
        recipient: Subject | None = None,
    ) -> IssuedCode:
        """Issue a code; see ``CodeIssuer.issue``."""
        return await self._run(
            self._plan_issue(
                subject=subject,
                provider=provider,
                service=service,
                msisdn=msisdn,
                recipient=recipient,
            )
        )

    async def redeem(
        self,
        subject: Subject,
        provider: Provider | str,
        code: str,
        service: Service | str,
        *,
        msisdn: str | None = None,
        recipient: Subject | None = None,
        request_id: str | None = None,
        reference: str | None = None,
    ) -> Redemption:
        """Use a code once; see ``CodeIssuer.redeem``."""
        return await self._run(
            self._plan_redeem(
                subject=subject,
                provider=provider,
                code=code,
                service=service,
                msisdn=msisdn,
                recipient=recipient,
                request_id=request_id,
                reference=reference,
            )
        )

    async def revoke(self, subject: Subject, code_id: str) -> CodeStatus:
        """Cancel a live code; see ``CodeIssuer.revoke``."""
        return await self._run(self._plan_revoke(subject, code_id))

    async def status(self, subject: Subject, code_id: str) -> CodeStatus:
        """The state of a code; see ``CodeIssuer.status``."""
        return await self._run(self._plan_status(subject, code_id))

    async def purge(self, limit: int = 1000) -> int:
        """Delete one bounded batch of finished subjects; see ``CodeIssuer.purge``.

        With event sinks and an ``AsyncPurgeReporting`` storage, each code found expired unused in
        the deleted subjects is reported as an ``events.CodeExpiry``, as ``CodeIssuer.purge``
        does.
        """
        limit = self._limit(limit)
        now = self._now()
        storage = self.storage
        if self.sinks and isinstance(storage, AsyncPurgeReporting):
            deleted = await self._call(storage.purge_snapshots, now, limit)
            expired = self._expired(deleted, now)
            if expired:
                deliver(self.sinks, expired)
            return len(deleted)
        return await self._call(storage.purge, now, limit)

    async def move_subjects(self, limit: int = 1000) -> MoveProgress:
        """Move a batch of subjects to the newer pseudonym key; see ``CodeIssuer.move_subjects``."""
        limit = self._limit(limit)
        rotating = len(self.keyring.pseudonym_keys) > 1
        if rotating and not isinstance(self.storage, AsyncSubjectScanning):
            raise ConfigurationError(reason="the storage cannot list its subjects (scan_subjects)")
        return await self._drive(self._move_steps(limit))

    async def _run(self, plan: _Plan[T]) -> T:
        return await self._drive(self._steps(plan))

    async def _drive(self, steps: _Steps[T]) -> T:
        storage = self.storage
        answer: object = None
        try:
            while True:
                step = steps.send(answer)
                try:
                    if type(step) is _Load:
                        answer = await storage.load(step.subject_ref)
                    elif type(step) is _Put:
                        answer = await storage.commit(step.change)
                    else:
                        assert isinstance(step, _Scan)  # noqa: S101 - the third kind of step
                        answer = await storage.scan_subjects(step.cursor, step.limit)  # type: ignore[attr-defined]
                except TelecardAuthError:
                    raise
                except Exception as error:
                    raise _storage_error(error) from error
        except StopIteration as done:
            result: T = done.value
            return result

    @staticmethod
    async def _call(operation: Callable[..., Awaitable[R]], *arguments: Any) -> R:
        try:
            return await operation(*arguments)
        except TelecardAuthError:
            raise
        except Exception as error:
            raise _storage_error(error) from error
