"""What every group of contract tests stands on: the class settings, the fixtures and the hooks.

``StorageContract`` is made of groups of tests, one mixin class each; every group inherits
``ContractBase``, so the fixtures a subclass overrides reach every group alike.
"""

# Test code: assert is the point, and asserts read `expected == actual`.
# ruff: noqa: S101, SIM300

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import ClassVar

import pytest

from telecard_auth._core.clock import ManualClock
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import Subject
from telecard_auth._core.policy import Policy
from telecard_auth._core.receipt import ReceiptSigner
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import PurgeReporting, Storage
from telecard_auth.events import EventSink
from telecard_auth.testing._helpers import (
    START,
    THREADS,
    IssuerFactory,
    LostCommits,
    _citizen,
    _Counting,
)


class ContractBase:
    """The settings, fixtures and hooks of ``StorageContract``; override them in a subclass."""

    #: Whether ``purge`` deletes subjects itself. ``False`` for a backend whose data only expires
    #: by itself: its ``purge`` returns 0, and its ``purge_snapshots``, if it has one, returns
    #: nothing. Every backend of this package purges (Redis too, ahead of its keys' own expiry).
    purges: ClassVar[bool] = True
    #: How many times the redemption race is run; the other races run a tenth or twentieth of it.
    race_rounds: ClassVar[int] = 200

    # --- fixtures: override any of them ------------------------------------------------------

    @pytest.fixture
    def storage(self) -> Storage:
        """The storage under test, fresh and empty: every subclass overrides this fixture."""
        pytest.fail(
            f"{type(self).__name__} must override the 'storage' fixture of StorageContract",
            pytrace=False,
        )

    @pytest.fixture
    def clock(self) -> ManualClock:
        """A manual clock at ``START``; it moves only when a test moves it."""
        return ManualClock(START)

    @pytest.fixture
    def keyring(self) -> Keyring:
        """A keyring with one fresh random key and a fresh pseudonym secret."""
        return Keyring.generate()

    @pytest.fixture
    def policy(self) -> Policy:
        """The default policy; an override must keep the default providers and services."""
        return Policy()

    @pytest.fixture
    def issuer(
        self, storage: Storage, keyring: Keyring, policy: Policy, clock: ManualClock
    ) -> CodeIssuer:
        """An issuer over the storage under test."""
        return CodeIssuer(storage, keyring=keyring, policy=policy, clock=clock)

    @pytest.fixture
    def make_issuer(
        self, storage: Storage, keyring: Keyring, clock: ManualClock
    ) -> IssuerFactory[CodeIssuer]:
        """Builds issuers over the storage under test, for tests that need another policy."""
        ring = keyring

        def build(
            policy: Policy,
            lost: LostCommits | None = None,
            *,
            signer: ReceiptSigner | None = None,
            events: Sequence[EventSink] = (),
            keyring: Keyring | None = None,
        ) -> CodeIssuer:
            inner: Storage = storage if lost is None else _Counting(storage, lost)
            return CodeIssuer(
                inner,
                keyring=ring if keyring is None else keyring,
                policy=policy,
                clock=clock,
                signer=signer,
                events=events,
            )

        return build

    @pytest.fixture
    def subject(self) -> Subject:
        """A citizen with a valid national ID."""
        return _citizen(1)

    def vanish(self, storage: Storage, subject_ref: str, now: datetime) -> None:
        """Delete the subject ``subject_ref``, due at ``now``, as the backend deletes subjects.

        ``purge`` by default. A backend whose data also expires by itself overrides this to let
        the subject expire that way (the Redis suites of this package do), so that every test
        that deletes a subject holds for that path too.
        """
        if not self.purges:
            pytest.skip("the storage deletes nothing itself; override vanish() to expire data")
        while storage.purge(now, 1000):
            pass
        assert 0 == storage.load(subject_ref).version

    @pytest.fixture(scope="class")
    @classmethod
    def race_pool(cls) -> Iterator[ThreadPoolExecutor]:
        """One worker per racing thread, kept for the whole class."""
        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="contract") as pool:
            yield pool

    @pytest.fixture
    def interleaved(self) -> Iterator[None]:
        """Switch threads far more often than usual, so that pure-Python backends interleave."""
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        yield
        sys.setswitchinterval(previous)

    @staticmethod
    def _reporting(storage: Storage) -> PurgeReporting:
        """``storage`` as a ``PurgeReporting``; a storage without ``purge_snapshots`` skips."""
        if not isinstance(storage, PurgeReporting):
            pytest.skip("the storage has no purge_snapshots (the optional PurgeReporting)")
        return storage
