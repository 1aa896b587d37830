"""``CodeIssuer``: the synchronous shell around the rules.

It reads the clock, loads the subject's snapshot, asks ``_core`` for a decision and commits it,
trying again from a fresh snapshot when a concurrent request committed first. No rule lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from telecard_auth import _core
from telecard_auth._clock import Clock, SystemClock, ensure_utc
from telecard_auth._errors import (
    ConfigurationError,
    InvalidInput,
    StorageContention,
    StorageError,
    TelecardAuthError,
)
from telecard_auth._keyring import Keyring
from telecard_auth._model import CodeStatus, IssuedCode, Provider, Redemption, Service, Subject
from telecard_auth._policy import Policy
from telecard_auth._storage import Storage, SubjectSnapshot

__all__ = ["CodeIssuer"]

T = TypeVar("T")
R = TypeVar("R")

#: How many times one request re-reads and re-decides after losing a compare-and-set race.
MAX_CONFLICTS = 64


class CodeIssuer:
    """Issues and redeems SIM authentication codes under a policy, over a storage.

    >>> from telecard_auth import Keyring, ManualClock, MemoryStorage, Subject
    >>> issuer = CodeIssuer(MemoryStorage(), keyring=Keyring.generate(), clock=ManualClock())
    >>> customer = Subject.citizen("1000000008")
    >>> issued = issuer.issue(customer, "stc")
    >>> issuer.redeem(customer, "stc", issued.code, "new_line").service.id
    'new_line'
    """

    def __init__(
        self,
        storage: Storage,
        *,
        keyring: Keyring,
        policy: Policy | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(storage, Storage):
            raise ConfigurationError(reason="storage must provide load() and commit()")
        if not isinstance(keyring, Keyring):
            raise ConfigurationError(reason="keyring must be a Keyring")
        policy = Policy() if policy is None else policy
        if not isinstance(policy, Policy):
            raise ConfigurationError(reason="policy must be a Policy")
        clock = SystemClock() if clock is None else clock
        if not isinstance(clock, Clock):
            raise ConfigurationError(reason="clock must provide now()")
        self.storage = storage
        self.keyring = keyring
        self.policy = policy
        self.clock = clock

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
        return self._run(
            request.subject_ref,
            lambda snapshot, now: _core.decide_issue(
                self.policy, self.keyring, request, snapshot, now, code=code, code_id=code_id
            ),
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
    ) -> Redemption:
        """Use ``code`` once, for ``service``, at ``provider``, on behalf of ``subject`` (R4, R6).

        The code may be typed with Arabic-Indic digits, spaces or hyphens. Bound codes need the
        matching ``msisdn`` or ``recipient``. Every refusal is a ``RedemptionRefused``; a wrong
        code or binding is counted, and the code locks at the policy's attempt limit.
        """
        request = _core.prepare_redeem(
            self.policy,
            self.keyring,
            subject=subject,
            provider=provider,
            code=code,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
        )
        return self._run(
            request.subject_ref,
            lambda snapshot, now: _core.decide_redeem(
                self.policy, self.keyring, request, snapshot, now
            ),
        )

    def revoke(self, subject: Subject, code_id: str) -> CodeStatus:
        """Cancel one of ``subject``'s live codes; returns its status afterwards."""
        ref = _core.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return self._run(
            ref, lambda snapshot, now: _core.decide_revoke(self.policy, snapshot, code_id, now)
        )

    def status(self, subject: Subject, code_id: str) -> CodeStatus:
        """The state of one of ``subject``'s codes: active, expired, redeemed, revoked or locked."""
        ref = _core.prepare_lookup(self.policy, self.keyring, subject, code_id)
        return self._run(
            ref, lambda snapshot, now: _core.decide_status(self.policy, snapshot, code_id, now)
        )

    def purge(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` subjects whose data no longer matters; returns how many.

        A subject's data matters until its last code's expiry plus the policy's ``retention``,
        and until its last wrong attempt has left the failure window. Call in a loop until it
        returns 0; each call is one bounded batch that never blocks redeemers for long.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInput()
        now = ensure_utc(self._read_clock(), what="the clock's time")
        return self._storage_call(self.storage.purge, now, limit)

    def _run(
        self, subject_ref: str, decide: Callable[[SubjectSnapshot, datetime], _core.Decision[T]]
    ) -> T:
        for _ in range(MAX_CONFLICTS):
            now = ensure_utc(self._read_clock(), what="the clock's time")
            snapshot = self._storage_call(self.storage.load, subject_ref)
            if not isinstance(snapshot, SubjectSnapshot) or snapshot.subject_ref != subject_ref:
                raise StorageError(reason="load() returned something other than this snapshot")
            decision = decide(snapshot, now)
            if decision.commit is None or self._storage_call(self.storage.commit, decision.commit):
                return decision.outcome()
        raise StorageContention()

    def _read_clock(self) -> object:
        try:
            return self.clock.now()
        except Exception as error:
            raise ConfigurationError(reason="the clock failed") from error

    @staticmethod
    def _storage_call(operation: Callable[..., R], *arguments: object) -> R:
        # Backends raise StorageError themselves; this catches what a hand-written one lets out.
        try:
            return operation(*arguments)
        except TelecardAuthError:
            raise
        except Exception as error:
            raise StorageError(reason=type(error).__name__) from error

    def __repr__(self) -> str:
        return f"CodeIssuer(storage={self.storage!r}, policy=..., clock={self.clock!r})"
