"""``CodeIssuer`` and ``AsyncCodeIssuer``: the shells around the rules.

A shell reads the clock, loads the subject's snapshot, asks ``_core`` for a decision and commits
it, trying again from a fresh snapshot when a concurrent request committed first. No rule lives
here. Everything but the waiting is shared: each verb becomes a plan (which subject, how to decide)
in ``_Shell``, and the two issuers differ only in whether ``_run`` awaits the storage.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from telecard_auth import _core
from telecard_auth._clock import Clock, SystemClock, ensure_utc
from telecard_auth._errors import (
    ConfigurationError,
    InvalidInput,
    InvalidTime,
    StorageContention,
    StorageError,
    TelecardAuthError,
    driver_detail,
)
from telecard_auth._keyring import Keyring
from telecard_auth._model import (
    CodeState,
    CodeStatus,
    IssuedCode,
    Provider,
    Redemption,
    Service,
    Subject,
)
from telecard_auth._policy import Policy
from telecard_auth._receipt import ReceiptSigner
from telecard_auth._storage import (
    AsyncPurgeReporting,
    AsyncStorage,
    PurgeReporting,
    Storage,
    SubjectSnapshot,
)
from telecard_auth.events import CodeExpired, EventSink, deliver

__all__ = ["AsyncCodeIssuer", "CodeIssuer"]

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


class _Plan(Generic[T]):
    """One request, ready to run: whose snapshot to load and how to decide on it."""

    __slots__ = ("decide", "subject_ref")

    def __init__(
        self, subject_ref: str, decide: Callable[[SubjectSnapshot, datetime], _core.Decision[T]]
    ) -> None:
        self.subject_ref = subject_ref
        self.decide = decide


class _Shell(Generic[S]):
    """What both issuers share: their parts, and turning each verb into a plan."""

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

    def _check_storage(self, storage: object) -> None:
        kind = "an AsyncStorage" if self._asynchronous else "a Storage"
        if not isinstance(storage, AsyncStorage if self._asynchronous else Storage) or any(
            inspect.iscoroutinefunction(getattr(storage, name)) != self._asynchronous
            for name in ("load", "commit", "purge")
        ):
            raise ConfigurationError(reason=f"storage must be {kind} (load, commit, purge)")
        # The optional capability, if there, must be of the same kind as the rest.
        reporting = AsyncPurgeReporting if self._asynchronous else PurgeReporting
        if isinstance(storage, reporting) and (
            inspect.iscoroutinefunction(storage.purge_snapshots) != self._asynchronous
        ):
            awaited = "a coroutine function" if self._asynchronous else "a plain function"
            raise ConfigurationError(reason=f"the storage's purge_snapshots must be {awaited}")

    def _plan_issue(
        self,
        *,
        subject: object,
        provider: object,
        service: object,
        msisdn: object,
        recipient: object,
    ) -> _Plan[IssuedCode]:
        request = _core.prepare_issue(
            self.policy,
            self.keyring,
            subject=subject,
            provider=provider,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
        )
        code = self.policy.code_format.generate()
        code_id = _core.new_code_id()
        return _Plan(
            request.subject_ref,
            lambda snapshot, now: _core.decide_issue(
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
    ) -> _Plan[Redemption]:
        request = _core.prepare_redeem(
            self.policy,
            self.keyring,
            subject=subject,
            provider=provider,
            code=code,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
            request_id=request_id,
        )
        return _Plan(
            request.subject_ref,
            lambda snapshot, now: _core.decide_redeem(
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
        ref, checked_id = _core.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return _Plan(
            ref, lambda snapshot, now: _core.decide_revoke(self.policy, snapshot, checked_id, now)
        )

    def _plan_status(self, subject: object, code_id: object) -> _Plan[CodeStatus]:
        ref, checked_id = _core.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return _Plan(
            ref, lambda snapshot, now: _core.decide_status(self.policy, snapshot, checked_id, now)
        )

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
    def _checked(snapshot: object, plan: _Plan[Any]) -> SubjectSnapshot:
        if not isinstance(snapshot, SubjectSnapshot) or snapshot.subject_ref != plan.subject_ref:
            raise StorageError(reason="load() returned something other than this snapshot")
        return snapshot

    @staticmethod
    def _purge_limit(limit: object) -> int:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise InvalidInput()
        # An exact int (an int subclass's own methods are not called), capped: every storage
        # takes the cap, and a limit larger than it deletes the same, everything that is due.
        exact = operator.index(limit)
        if exact < 1:
            raise InvalidInput()
        return min(exact, MAX_PURGE_LIMIT)

    @staticmethod
    def _expired(deleted: object, now: datetime) -> list[CodeExpired]:
        """One ``CodeExpired`` per code that ``deleted`` (purged snapshots) held unused, expired."""
        if not isinstance(deleted, list | tuple) or not all(
            isinstance(snapshot, SubjectSnapshot) for snapshot in deleted
        ):
            raise StorageError(reason="purge_snapshots() returned something other than snapshots")
        return [
            CodeExpired(
                at=now,
                subject_ref=snapshot.subject_ref,
                code_id=record.code_id,
                provider_id=record.provider_id,
                expired_at=record.expires_at,
            )
            for snapshot in deleted
            for record in snapshot.codes
            if record.state is CodeState.ACTIVE and record.expires_at <= now
        ]

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
        transfer to the person receiving the number. The plaintext code is in the result only.

        Raises ``InvalidInput`` subclasses for malformed arguments, ``NotEligible``,
        ``ServiceNotAllowed`` or ``LiveCodeLimitReached`` when the policy says no.
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
    ) -> Redemption:
        """Use ``code`` once, for ``service``, at ``provider``, on behalf of ``subject`` (R4, R6).

        The code may be typed with Arabic-Indic digits, spaces or hyphens. Bound codes need the
        matching ``msisdn`` or ``recipient``. Every refusal is a ``RedemptionRefused``; a wrong
        code or binding is counted, and the code locks at the policy's attempt limit.

        ``request_id`` (1-64 printable ASCII characters, chosen by the caller) makes a retry
        safe: repeating the same request with the same id returns the first call's
        ``Redemption`` (and receipt) instead of ``CodeAlreadyUsed``; the same id with another
        provider, service, binding or right code of the subject is refused with
        ``RequestConflict``. A wrong code stays ``WrongCode`` (and counts), request id or not.
        Request ids belong to one subject, and retries are recognised for as long as the code's
        record is kept (its expiry plus the policy's ``retention``).
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
        in a deleted subject is reported as one ``events.CodeExpired``, after the deletion: ``at``
        is the time of this purge and ``expired_at`` the code's expiry. That takes a storage with
        ``purge_snapshots`` (``PurgeReporting``), as every storage of this package has; over a
        storage without it, purging works the same but reports no expired codes. Without sinks,
        the storage's plain ``purge`` is called.
        """
        limit = self._purge_limit(limit)
        now = self._now()
        storage = self.storage
        if self.sinks and isinstance(storage, PurgeReporting):
            deleted = self._call(storage.purge_snapshots, now, limit)
            expired = self._expired(deleted, now)
            if expired:
                deliver(self.sinks, expired)
            return len(deleted)
        return self._call(storage.purge, now, limit)

    def _run(self, plan: _Plan[T]) -> T:
        storage = self.storage
        for _ in range(MAX_CONFLICTS):
            now = self._now()
            try:
                loaded = storage.load(plan.subject_ref)
            except TelecardAuthError:
                raise
            except Exception as error:
                raise _storage_error(error) from error
            decision = plan.decide(self._checked(loaded, plan), now)
            if decision.commit is not None:
                try:
                    landed = storage.commit(decision.commit)
                except TelecardAuthError:
                    raise
                except Exception as error:
                    raise _storage_error(error) from error
                if not landed:
                    continue
            if self.sinks and decision.events:
                deliver(self.sinks, decision.events)
            return decision.outcome()
        raise StorageContention()

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
        the deleted subjects is reported as an ``events.CodeExpired``, as ``CodeIssuer.purge``
        does.
        """
        limit = self._purge_limit(limit)
        now = self._now()
        storage = self.storage
        if self.sinks and isinstance(storage, AsyncPurgeReporting):
            deleted = await self._call(storage.purge_snapshots, now, limit)
            expired = self._expired(deleted, now)
            if expired:
                deliver(self.sinks, expired)
            return len(deleted)
        return await self._call(storage.purge, now, limit)

    async def _run(self, plan: _Plan[T]) -> T:
        for _ in range(MAX_CONFLICTS):
            now = self._now()
            snapshot = self._checked(await self._call(self.storage.load, plan.subject_ref), plan)
            decision = plan.decide(snapshot, now)
            if decision.commit is None or await self._call(self.storage.commit, decision.commit):
                if self.sinks and decision.events:
                    deliver(self.sinks, decision.events)
                return decision.outcome()
        raise StorageContention()

    @staticmethod
    async def _call(operation: Callable[..., Awaitable[R]], *arguments: Any) -> R:
        try:
            return await operation(*arguments)
        except TelecardAuthError:
            raise
        except Exception as error:
            raise _storage_error(error) from error
