"""Shared fixtures: a manual clock, a fixed keyring, the default policy, memory storage, an issuer.

The fixed values they are built from (``START``, the test secrets) live in ``tests.helpers``.

Hypothesis runs under the "ci" profile (derandomised, no deadline) when ``CI=true``, otherwise
under "dev" (random, no deadline). Time never comes from the machine: tests move the clock.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from tests.helpers import K1_SECRET, PSEUDONYM_SECRET, START

from telecard_auth import (
    CodeIssuer,
    HmacKey,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    Subject,
)

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

CITIZEN_ID = "1000000008"
RESIDENT_ID = "2129040479"
COMPANY_ID = "7000000001"
GOVERNMENT_ID = "7001234567"


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at ``START``; it moves only when a test advances it."""
    return ManualClock(START)


@pytest.fixture
def keyring() -> Keyring:
    """A keyring holding one fixed HMAC key, ``k1``, and one fixed pseudonym key, ``p1``."""
    return Keyring(
        keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
        pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
    )


@pytest.fixture
def policy() -> Policy:
    """The default policy: the regulator's rules."""
    return Policy()


@pytest.fixture
def storage() -> MemoryStorage:
    """An empty in-memory storage."""
    return MemoryStorage()


@pytest.fixture
def issuer(
    storage: MemoryStorage, keyring: Keyring, policy: Policy, clock: ManualClock
) -> CodeIssuer:
    """An issuer over the fixtures above."""
    return CodeIssuer(storage, keyring=keyring, policy=policy, clock=clock)


@pytest.fixture
def citizen() -> Subject:
    """A Saudi citizen with the synthetic national ID 1000000008."""
    return Subject.citizen(CITIZEN_ID)


@pytest.fixture
def resident() -> Subject:
    """A resident with the synthetic Iqama number 2129040479."""
    return Subject.resident(RESIDENT_ID)


@pytest.fixture
def company() -> Subject:
    """A company with a 7-prefixed unified national number."""
    return Subject.company(COMPANY_ID)


@pytest.fixture
def government() -> Subject:
    """A government body with an identifier of the default validator's assumed shape."""
    return Subject.government(GOVERNMENT_ID)


@pytest.fixture
def subjects(
    citizen: Subject, resident: Subject, company: Subject, government: Subject
) -> tuple[Subject, ...]:
    """One subject of each kind."""
    return (citizen, resident, company, government)


@pytest.fixture(params=["citizen", "resident", "company", "government"])
def any_subject(request: pytest.FixtureRequest) -> Subject:
    """Each sample subject in turn, one of every kind."""
    subject: Subject = request.getfixturevalue(request.param)
    return subject
