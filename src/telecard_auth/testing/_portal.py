"""The asyncio side: an event loop in a thread (``Portal``), and blocking facades over it.

``BlockingStorage`` and ``BlockingIssuer`` let the synchronous contract run unchanged on an
``AsyncStorage`` and an ``AsyncCodeIssuer``: each call is a coroutine awaited on the portal's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import wait
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import pytest

from telecard_auth._core.model import CodeStatus, IssuedCode, Provider, Redemption, Service, Subject
from telecard_auth._issuer import AsyncCodeIssuer, MoveProgress
from telecard_auth._storage.protocol import (
    AsyncPurgeReporting,
    AsyncStorage,
    AsyncSubjectScanning,
    Commit,
    SubjectSnapshot,
)

P = ParamSpec("P")
T = TypeVar("T")
# Portal.call's signature names them: the API reference shows them where Portal is public.
P.__module__ = T.__module__ = "telecard_auth.testing"


class Portal:
    """An asyncio event loop running in a background thread, for synchronous code to call into.

    ``call`` runs a coroutine function on the loop and blocks until it returns (or raises);
    calls made from many threads at once run as concurrent tasks of the one loop. ``close``
    cancels what is still running, shuts the loop down, and raises the errors the loop reported
    meanwhile (an exception no one retrieved, a failing callback), so that they fail the test.
    ``timeout`` is how long, in seconds, ``call`` waits for a result before it cancels the call.

    >>> async def double(n: int) -> int:
    ...     return 2 * n
    >>> with Portal() as portal:
    ...     portal.call(double, 21)
    42
    """

    def __init__(self, *, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._errors: list[str] = []
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._report)
        self._thread = threading.Thread(target=self._serve, name="contract-portal", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            asyncio.set_event_loop(None)

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        self._errors.append(f"{context.get('message')}: {error!r}")
        loop.default_exception_handler(context)

    def call(self, function: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``function(*args, **kwargs)`` on the loop and return its result or raise its error.

        Raises ``TimeoutError`` (and cancels the call) after ``timeout`` seconds.
        """
        if self._closed:
            raise RuntimeError("the portal is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("Portal.call on the portal's own loop would wait for itself")

        async def run() -> T:
            return await function(*args, **kwargs)

        coroutine = run()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop closed meanwhile
            coroutine.close()
            raise
        done, _ = wait([future], timeout=self.timeout)
        if not done:
            future.cancel()
            raise TimeoutError(f"{function!r} did not finish within {self.timeout} s")
        return future.result()

    async def _shut_down(self) -> None:
        # What asyncio.run does on the way out, except that leftover errors are kept, not logged.
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        self._errors += [
            f"a task left running failed: {outcome!r}"
            for outcome in outcomes
            if isinstance(outcome, Exception)
        ]
        await self._loop.shutdown_asyncgens()
        await self._loop.shutdown_default_executor()

    def close(self) -> None:
        """Cancel the tasks still running, stop and close the loop; raise what the loop reported."""
        if self._closed:
            return
        try:
            self.call(self._shut_down)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
        if self._errors:
            raise AssertionError("the event loop reported: " + "; ".join(self._errors))

    def __enter__(self) -> Portal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Portal(closed={self._closed})"


@pytest.fixture
def portal() -> Iterator[Portal]:
    """An event loop in a background thread for the length of the test; see ``Portal``."""
    with Portal() as running:
        yield running


class BlockingStorage:
    """A ``Storage`` over an ``AsyncStorage``: each call is awaited on the portal's loop.

    Calls from many threads at once run as as many concurrent tasks on that one loop.
    """

    def __init__(self, async_storage: AsyncStorage, portal: Portal) -> None:
        self.async_storage = async_storage
        self.portal = portal

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``Storage.load``."""
        return self.portal.call(self.async_storage.load, subject_ref)

    def commit(self, change: Commit) -> bool:
        """See ``Storage.commit``."""
        return self.portal.call(self.async_storage.commit, change)

    def purge(self, now: datetime, limit: int) -> int:
        """See ``Storage.purge``."""
        return self.portal.call(self.async_storage.purge, now, limit)

    def __repr__(self) -> str:
        return f"BlockingStorage({self.async_storage!r})"


class _BlockingPurgeReportingStorage(BlockingStorage):
    """A ``BlockingStorage`` over an ``AsyncPurgeReporting`` storage: it reports purges too."""

    async_storage: Any

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``PurgeReporting.purge_snapshots``."""
        result: list[SubjectSnapshot] = self.portal.call(
            self.async_storage.purge_snapshots, now, limit
        )
        return result


class _BlockingScanningStorage(BlockingStorage):
    """A ``BlockingStorage`` over an ``AsyncSubjectScanning`` storage: it lists subjects too."""

    async_storage: Any

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``SubjectScanning.scan_subjects``."""
        result: tuple[list[SubjectSnapshot], str | None] = self.portal.call(
            self.async_storage.scan_subjects, after, limit
        )
        return result


def blocking_storage(async_storage: AsyncStorage, portal: Portal) -> BlockingStorage:
    """A ``BlockingStorage`` over ``async_storage``, with the optional capabilities it has.

    The facade has ``purge_snapshots`` and ``scan_subjects`` exactly when the async storage has
    them, so that the tests (and the issuer) see the capabilities the async storage really has.
    """
    bases: list[type[BlockingStorage]] = []
    if isinstance(async_storage, AsyncPurgeReporting):
        bases.append(_BlockingPurgeReportingStorage)
    if isinstance(async_storage, AsyncSubjectScanning):
        bases.append(_BlockingScanningStorage)
    if not bases:
        return BlockingStorage(async_storage, portal)
    facade: type[BlockingStorage] = (
        bases[0] if len(bases) == 1 else type("_BlockingFullStorage", tuple(bases), {})
    )
    return facade(async_storage, portal)


class BlockingIssuer:
    """``CodeIssuer``'s verbs over an ``AsyncCodeIssuer``, each call awaited on the portal's loop.

    ``storage`` is a ``BlockingStorage`` over the async issuer's storage; ``keyring``, ``policy``
    and ``clock`` are the async issuer's own.
    """

    def __init__(self, async_issuer: AsyncCodeIssuer, portal: Portal) -> None:
        self.async_issuer = async_issuer
        self.portal = portal
        self.storage = blocking_storage(async_issuer.storage, portal)
        self.keyring = async_issuer.keyring
        self.policy = async_issuer.policy
        self.clock = async_issuer.clock
        self.signer = async_issuer.signer

    def issue(
        self,
        subject: Subject,
        provider: Provider | str,
        *,
        service: Service | str | None = None,
        msisdn: str | None = None,
        recipient: Subject | None = None,
    ) -> IssuedCode:
        """See ``CodeIssuer.issue``."""
        return self.portal.call(
            self.async_issuer.issue,
            subject,
            provider,
            service=service,
            msisdn=msisdn,
            recipient=recipient,
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
        """See ``CodeIssuer.redeem``."""
        return self.portal.call(
            self.async_issuer.redeem,
            subject,
            provider,
            code,
            service,
            msisdn=msisdn,
            recipient=recipient,
            request_id=request_id,
            reference=reference,
        )

    def revoke(self, subject: Subject, code_id: str) -> CodeStatus:
        """See ``CodeIssuer.revoke``."""
        return self.portal.call(self.async_issuer.revoke, subject, code_id)

    def status(self, subject: Subject, code_id: str) -> CodeStatus:
        """See ``CodeIssuer.status``."""
        return self.portal.call(self.async_issuer.status, subject, code_id)

    def purge(self, limit: int = 1000) -> int:
        """See ``CodeIssuer.purge``."""
        return self.portal.call(self.async_issuer.purge, limit)

    def move_subjects(self, limit: int = 1000) -> MoveProgress:
        """See ``CodeIssuer.move_subjects``."""
        return self.portal.call(self.async_issuer.move_subjects, limit)

    def __repr__(self) -> str:
        return f"BlockingIssuer({self.async_issuer!r})"
