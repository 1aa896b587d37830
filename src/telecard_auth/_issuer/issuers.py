"""``CodeIssuer`` and ``AsyncCodeIssuer``: the two shells, one plain and one awaited.

Everything but the waiting is written once (``shell`` and ``filing``): each issuer performs the
same steps, ``CodeIssuer`` with plain calls and ``AsyncCodeIssuer`` awaiting them, so the two
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, cast, overload

from typing_extensions import TypeVar

from telecard_auth._core.errors import (
    ConfigurationError,
    TelecardAuthError,
)
from telecard_auth._core.model import (
    CodeStatus,
    IssuedCode,
    Provider,
    Redemption,
    Service,
    SignedRedemption,
    Subject,
)
from telecard_auth._issuer.filing import _Load, _Put, _Scan, _Steps
from telecard_auth._issuer.shell import MoveProgress, _Plan, _Shell, _storage_error
from telecard_auth._storage.protocol import (
    AsyncPurgeReporting,
    AsyncStorage,
    AsyncSubjectScanning,
    PurgeReporting,
    Storage,
    SubjectScanning,
)
from telecard_auth.events import EventSink, deliver

if TYPE_CHECKING:
    from telecard_auth._core.clock import Clock
    from telecard_auth._core.keyring import Keyring
    from telecard_auth._core.policy import Policy
    from telecard_auth._core.receipt import ReceiptSigner

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", Storage, AsyncStorage)
#: What ``redeem`` returns: a ``SignedRedemption`` from an issuer built with a signer.
Answer_co = TypeVar("Answer_co", bound=Redemption, default=Redemption, covariant=True)


class CodeIssuer(_Shell[Storage], Generic[Answer_co]):
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

    if TYPE_CHECKING:
        # Built with a signer, the issuer's ``redeem`` returns a ``SignedRedemption``.
        @overload
        def __init__(
            self: CodeIssuer[Redemption],
            storage: Storage,
            *,
            keyring: Keyring,
            policy: Policy | None = None,
            clock: Clock | None = None,
            signer: None = None,
            events: EventSink | Sequence[EventSink] = (),
        ) -> None: ...
        @overload
        def __init__(
            self: CodeIssuer[SignedRedemption],
            storage: Storage,
            *,
            keyring: Keyring,
            policy: Policy | None = None,
            clock: Clock | None = None,
            signer: ReceiptSigner,
            events: EventSink | Sequence[EventSink] = (),
        ) -> None: ...
        def __init__(
            self,
            storage: Storage,
            *,
            keyring: Keyring,
            policy: Policy | None = None,
            clock: Clock | None = None,
            signer: ReceiptSigner | None = None,
            events: EventSink | Sequence[EventSink] = (),
        ) -> None: ...

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
    ) -> Answer_co:
        """Use ``code`` once, for ``service``, at ``provider``, on behalf of ``subject`` (R4, R6).

        The code may be typed with Arabic-Indic digits, spaces or hyphens. Bound codes need the
        matching ``msisdn`` or ``recipient``; a number transfer needs a code issued for it. Every
        refusal is a ``RedemptionRefused``; a wrong code or binding is counted when it was
        compared with a live code, and the code locks at the policy's attempt limit.

        ``request_id`` (1-64 printable ASCII characters, chosen by the caller) makes a retry
        safe: repeating the same request with the same id returns the first call's
        ``Redemption`` (and receipt) instead of ``CodeAlreadyUsed``; the same id with another
        service, binding, reference or right code of the subject is refused with
        ``RequestConflict``. A
        wrong code stays ``WrongCode``, request id or not. Request ids belong to one subject at
        one provider (another provider's ids never conflict), and retries are recognised for as
        long as the code's record is kept (its expiry plus the policy's ``retention``).

        ``reference`` (1-64 printable ASCII characters) names the operator's agent or branch; it
        is recorded in the audit events, refusals included, so that a guessing agent can be
        found, and signed into the receipt's ``reference`` claim. It is stored nowhere but as part
        of a keyed digest of a request id's inputs, so a retry must repeat it.
        """
        return cast(
            Answer_co,
            self._run(
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
            ),
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


class AsyncCodeIssuer(_Shell[AsyncStorage], Generic[Answer_co]):
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

    if TYPE_CHECKING:
        # Built with a signer, the issuer's ``redeem`` returns a ``SignedRedemption``.
        @overload
        def __init__(
            self: AsyncCodeIssuer[Redemption],
            storage: AsyncStorage,
            *,
            keyring: Keyring,
            policy: Policy | None = None,
            clock: Clock | None = None,
            signer: None = None,
            events: EventSink | Sequence[EventSink] = (),
        ) -> None: ...
        @overload
        def __init__(
            self: AsyncCodeIssuer[SignedRedemption],
            storage: AsyncStorage,
            *,
            keyring: Keyring,
            policy: Policy | None = None,
            clock: Clock | None = None,
            signer: ReceiptSigner,
            events: EventSink | Sequence[EventSink] = (),
        ) -> None: ...
        def __init__(
            self,
            storage: AsyncStorage,
            *,
            keyring: Keyring,
            policy: Policy | None = None,
            clock: Clock | None = None,
            signer: ReceiptSigner | None = None,
            events: EventSink | Sequence[EventSink] = (),
        ) -> None: ...

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
    ) -> Answer_co:
        """Use a code once; see ``CodeIssuer.redeem``."""
        return cast(
            Answer_co,
            await self._run(
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
            ),
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
