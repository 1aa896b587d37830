"""The pytest plugin: fixtures that give a service's own tests telecard-auth in one line each.

Installing telecard-auth registers this module with pytest (entry point group ``pytest11``, plugin
name ``telecard_auth``), so the fixtures need no import and no ``conftest.py``::

    def test_agent_uses_the_code(telecard_issuer, make_telecard_subject):
        customer = make_telecard_subject()
        issued = telecard_issuer.issue(customer, "stc")
        assert telecard_issuer.redeem(customer, "stc", issued.code, "new_line").receipt

Every fixture is function-scoped: each test gets its own clock, keys, storage and events, and
nothing a test does is seen by the next. Every name contains ``telecard_``, so none collides with
a project's own ``clock`` or ``issuer`` fixtures. The fixtures build on one another, and overriding
one (by defining a fixture of the same name in a ``conftest.py`` or test module) rewires every
fixture that depends on it: a ``telecard_policy`` of your own reaches ``telecard_issuer`` and
``telecard_async_issuer``; a ``telecard_clock`` of your own sets another start time.

The plugin defines fixtures and nothing else: no hook, option or marker. A test session that never
asks for them runs as before, at the cost of importing ``telecard_auth`` when pytest starts (it
loads no storage driver and does no I/O). ``pytest -p no:telecard_auth`` turns it off.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from telecard_auth._core.errors import MissingExtra

try:
    import pytest
except ImportError as error:  # imported by hand, outside pytest, without the extra
    raise MissingExtra(feature="telecard_auth.pytest_plugin", extra="testing") from error

from telecard_auth._core.clock import Clock, ManualClock
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import Subject, SubjectKind
from telecard_auth._core.normalize import luhn_valid
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._issuer import AsyncCodeIssuer, CodeIssuer
from telecard_auth._storage.memory import AsyncMemoryStorage, MemoryStorage
from telecard_auth._storage.protocol import Storage
from telecard_auth.events import CollectingSink, EventSink

# The fixtures are found by pytest, never imported: only their types are exported.
__all__ = ["MakeTelecardIssuer", "MakeTelecardSubject"]


class MakeTelecardIssuer(Protocol):
    """The type of the ``make_telecard_issuer`` fixture, for annotating tests."""

    def __call__(
        self,
        *,
        storage: Storage | None = None,
        keyring: Keyring | None = None,
        policy: Policy | None = None,
        clock: Clock | None = None,
        signer: ReceiptSigner | None = None,
        events: EventSink | Sequence[EventSink] | None = None,
    ) -> CodeIssuer: ...


class MakeTelecardSubject(Protocol):
    """The type of the ``make_telecard_subject`` fixture, for annotating tests."""

    def __call__(self, kind: SubjectKind | str = SubjectKind.CITIZEN) -> Subject: ...


@pytest.fixture
def telecard_clock() -> ManualClock:
    """A ManualClock at 2026-01-01 00:00:00 UTC that moves only when the test moves it.

    The start is ``ManualClock.DEFAULT_START``. ``advance(hours=4)`` and ``set(moment)`` move it
    forward; it never goes backwards. Every issuer fixture reads this clock.
    """
    return ManualClock()


@pytest.fixture
def telecard_keyring() -> Keyring:
    """A Keyring with one fresh random HMAC key, ``k1``, and one fresh random pseudonym key, ``p1``.

    New subjects are filed under ``p1``; ``with_pseudonym_key`` starts a rotation, as in production.
    """
    return Keyring.generate()


@pytest.fixture
def telecard_storage() -> MemoryStorage:
    """An empty MemoryStorage; ``snapshots()`` shows everything the issuers stored in it."""
    return MemoryStorage()


@pytest.fixture
def telecard_async_storage(telecard_storage: MemoryStorage) -> AsyncMemoryStorage:
    """An AsyncMemoryStorage over ``telecard_storage``: both see the same codes."""
    return AsyncMemoryStorage(telecard_storage)


@pytest.fixture
def telecard_signer() -> ReceiptSigner:
    """A ReceiptSigner with one fresh Ed25519 key, ``r1``.

    Verify a receipt with ``verify_receipt(receipt.token, telecard_signer, audience="stc")``, or
    hand ``telecard_signer.public_jwks()`` to the code under test, as an operator would get it.
    """
    return ReceiptSigner.generate()


@pytest.fixture
def telecard_events() -> CollectingSink:
    """A CollectingSink that every issuer fixture reports its audit events to.

    ``telecard_events.events`` lists them in order; ``of_type(events.CodeRedemption)`` filters.
    """
    return CollectingSink()


@pytest.fixture
def telecard_policy() -> Policy:
    """The default Policy: four-hour codes of 8 digits, the eight Saudi operators, four services."""
    return Policy()


@pytest.fixture
def make_telecard_issuer(
    *,  # pytest passes fixtures by name
    telecard_storage: MemoryStorage,
    telecard_keyring: Keyring,
    telecard_policy: Policy,
    telecard_clock: ManualClock,
    telecard_signer: ReceiptSigner,
    telecard_events: CollectingSink,
) -> MakeTelecardIssuer:
    """Make a CodeIssuer: ``make_telecard_issuer(policy=..., storage=...)``.

    Each keyword argument left out (or ``None``) is the fixture of the same name:
    ``telecard_storage``, ``telecard_keyring``, ``telecard_policy``, ``telecard_clock``,
    ``telecard_signer`` and ``telecard_events``. Issuers made in one test therefore share
    storage, keys, clock and events, as the nodes of one deployment do. ``events=()`` makes an
    issuer that reports to no sink.
    """

    def make(
        *,
        storage: Storage | None = None,
        keyring: Keyring | None = None,
        policy: Policy | None = None,
        clock: Clock | None = None,
        signer: ReceiptSigner | None = None,
        events: EventSink | Sequence[EventSink] | None = None,
    ) -> CodeIssuer:
        return CodeIssuer(
            telecard_storage if storage is None else storage,
            keyring=telecard_keyring if keyring is None else keyring,
            policy=telecard_policy if policy is None else policy,
            clock=telecard_clock if clock is None else clock,
            signer=telecard_signer if signer is None else signer,
            events=telecard_events if events is None else events,
        )

    return make


@pytest.fixture
def telecard_issuer(make_telecard_issuer: MakeTelecardIssuer) -> CodeIssuer:
    """A CodeIssuer over the telecard_* fixtures: receipts signed, events collected.

    Its storage is ``telecard_storage``, its keys ``telecard_keyring``, its rules
    ``telecard_policy`` and its time ``telecard_clock``; every redemption carries a receipt signed
    by ``telecard_signer``, and every change is reported to ``telecard_events``.
    """
    return make_telecard_issuer()


@pytest.fixture
def telecard_async_issuer(
    *,
    telecard_async_storage: AsyncMemoryStorage,
    telecard_keyring: Keyring,
    telecard_policy: Policy,
    telecard_clock: ManualClock,
    telecard_signer: ReceiptSigner,
    telecard_events: CollectingSink,
) -> AsyncCodeIssuer:
    """An AsyncCodeIssuer wired like ``telecard_issuer``, over ``telecard_async_storage``.

    It shares the storage, keys, policy, clock, signer and events of ``telecard_issuer``, so a code
    issued by one is redeemed by the other. Await it in any event loop (``asyncio.run``, or the
    test's own loop under an async test plugin); the fixture itself is synchronous.
    """
    return AsyncCodeIssuer(
        telecard_async_storage,
        keyring=telecard_keyring,
        policy=telecard_policy,
        clock=telecard_clock,
        signer=telecard_signer,
        events=telecard_events,
    )


def _check_digit(body: str) -> str:
    """``body`` completed with the digit that makes a valid Luhn number."""
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


@pytest.fixture
def make_telecard_subject() -> MakeTelecardSubject:
    """Make a valid synthetic Subject: ``make_telecard_subject("resident")``, a new one each call.

    ``kind`` is a ``SubjectKind`` or its value: ``"citizen"`` (the default), ``"resident"``,
    ``"company"`` or ``"government"``. Within a test, every subject made has an identifier of its
    own: citizens ``1…`` and residents ``2…`` with a correct Luhn check digit, companies and
    government bodies ``7…`` of 10 digits (the shape the default policy accepts). The sequence
    restarts in every test, so the same test always gets the same subjects.
    """
    numbers = itertools.count(1)

    def make(kind: SubjectKind | str = SubjectKind.CITIZEN) -> Subject:
        kind = SubjectKind(kind)
        number = next(numbers)
        if kind is SubjectKind.CITIZEN:
            return Subject.citizen(_check_digit(f"1{number:08d}"))
        if kind is SubjectKind.RESIDENT:
            return Subject.resident(_check_digit(f"2{number:08d}"))
        if kind is SubjectKind.COMPANY:
            return Subject.company(f"7{number:09d}")
        return Subject.government(f"7{number:09d}")

    return make
