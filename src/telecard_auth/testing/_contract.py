"""``StorageContract``: every group of contract tests, in one class to subclass."""

from __future__ import annotations

from telecard_auth.testing._hostile import HostileCallerTests
from telecard_auth.testing._operations import StorageOperationTests
from telecard_auth.testing._races import RaceTests
from telecard_auth.testing._rotation import PseudonymRotationTests
from telecard_auth.testing._rules import IssuerRuleTests
from telecard_auth.testing._trust import TrustAndAuditTests


# pytest runs the groups from the last base to the first: the storage's own operations first, the
# races last, so that a broken compare-and-set shows in a plain test before it shows in a race.
class StorageContract(
    RaceTests,
    TrustAndAuditTests,
    PseudonymRotationTests,
    HostileCallerTests,
    IssuerRuleTests,
    StorageOperationTests,
):
    """Every test a ``Storage`` must pass. Subclass it and override the ``storage`` fixture.

    ::

        class TestRedisStorage(StorageContract):
            @pytest.fixture
            def storage(self):
                storage = RedisStorage("redis://127.0.0.1:6379/0", prefix="test")
                yield storage
                storage.close()

    The tests come in groups, one mixin class each: ``StorageOperationTests`` (load, commit,
    purge), ``IssuerRuleTests``, ``HostileCallerTests``, ``PseudonymRotationTests``,
    ``TrustAndAuditTests`` and ``RaceTests``. Their settings, fixtures and the ``vanish`` hook are
    those of ``ContractBase``, which every group inherits.
    """
