"""What both issuers share: their parts, each verb as a plan, and running a plan as steps.

A shell reads the clock, draws codes and ids, finds where the subject is filed (``filing``),
loads its snapshot, asks the rules for a decision and commits it, trying again from a fresh
snapshot when a concurrent request committed first. No rule lives here.
"""

from __future__ import annotations

import inspect
import operator
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, TypeVar

import attrs

from telecard_auth._core import requests as _requests
from telecard_auth._core import rules as _rules
from telecard_auth._core.clock import Clock, SystemClock, ensure_utc
from telecard_auth._core.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidTime,
    KeyringError,
    StorageContention,
    StorageError,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import (
    CodeState,
    CodeStatus,
    IssuedCode,
    Redemption,
)
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._core.text import driver_detail
from telecard_auth._issuer.filing import (
    Filing,
    _Frozen,
    _Put,
    _Scan,
    _Steps,
)
from telecard_auth._storage.protocol import (
    AsyncPurgeReporting,
    AsyncStorage,
    AsyncSubjectScanning,
    PurgeReporting,
    Storage,
    SubjectScanning,
    SubjectSnapshot,
)
from telecard_auth.events import CodeExpiry, EventSink, deliver

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
    """A random, meaningless id for a new code (96 bits, URL-safe), never starting with ``-``.

    An id that starts with a hyphen reads as an option to every command-line parser (``status
    -q3V…``), so such a draw (one in 64) is drawn again.
    """
    while True:
        code_id = secrets.token_urlsafe(12)
        if not code_id.startswith("-"):
            return code_id


@attrs.frozen(kw_only=True)
class MoveProgress:
    """What one batch of ``move_subjects`` did.

    ``moved`` subjects were re-filed under the newer pseudonym key, out of ``scanned`` looked at;
    ``done`` is true once a whole walk of the storage is over: call until it is.
    """

    moved: int
    scanned: int
    done: bool


class _Plan(Generic[T]):
    """One request, ready to run: whose identity to find and how to decide on its snapshot."""

    __slots__ = ("decide", "identity")

    def __init__(
        self, identity: str, decide: Callable[[SubjectSnapshot, datetime], _rules.Decision[T]]
    ) -> None:
        self.identity = identity
        self.decide = decide


class _Shell(Filing, Generic[S]):
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
        request = _requests.prepare_issue(
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
        request = _requests.prepare_redeem(
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
        request = _requests.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return _Plan(
            request.identity,
            lambda snapshot, now: _rules.decide_revoke(self.policy, request, snapshot, now),
        )

    def _plan_status(self, subject: object, code_id: object) -> _Plan[CodeStatus]:
        request = _requests.prepare_lookup(self.policy, self.keyring, subject, code_id)
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
