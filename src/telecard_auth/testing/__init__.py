"""The storage contract suites, for anyone who writes or ships a storage backend.

``StorageContract`` is a pytest base class: subclass it in a test module, override the one fixture
``storage`` so that it returns a fresh, empty storage (``yield`` it to clean up afterwards), and
every test of the class runs against that backend: the three operations of the ``Storage``
protocol one by one, the issuer's rules through the storage, and races of 32 threads. Each thread
may call the same storage object, so the backend must be thread-safe::

    # test_my_storage.py
    import pytest
    from telecard_auth.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            storage = MyStorage("...")
            storage.migrate()
            yield storage
            storage.close()

``AsyncStorageContract`` runs the same tests on an ``AsyncStorage``, with ``AsyncCodeIssuer``.
Override its one fixture ``async_storage``; it stays a plain (synchronous) fixture, and awaits
through ``portal``, an event loop running in a background thread for the length of the test::

    # test_my_async_storage.py
    import pytest
    from telecard_auth.testing import AsyncStorageContract

    class TestMyAsyncStorage(AsyncStorageContract):
        @pytest.fixture
        def async_storage(self, portal):
            storage = MyAsyncStorage("...")
            portal.call(storage.migrate)
            yield storage
            portal.call(storage.close)

Every test of ``StorageContract`` then calls the storage and the issuer through blocking facades
(``BlockingStorage``, ``BlockingIssuer``) that run each call as a coroutine on the portal's loop:
when the 32 threads of a race call at once, 32 coroutines run at once on that one loop, so the
storage must stand concurrent use by many tasks (not by many threads). Tests of the asyncio side
itself follow: races of 32 tasks gathered on the loop, and the manual clock driving expiry.

Class attributes tune both suites: ``purges = False`` for a backend whose data only expires by
itself (its ``purge`` deletes nothing and returns 0), ``race_rounds`` for how often the redemption
race is repeated (and how many commits the loads race, at least 20). The fixtures ``clock``,
``keyring``, ``policy``, ``issuer`` and ``make_issuer`` can be overridden the same way; the tests
name the default catalogue's providers ``stc`` and ``mobily`` and its services ``new_line`` and
``number_transfer``, so an overridden policy must keep those.

The optional ``PurgeReporting`` capability (``purge_snapshots``) has tests of its own, and a test
that the issuer reports each code that expired unused as ``events.CodeExpiry`` when it purges;
for a storage without ``purge_snapshots`` the former skip and the latter checks that nothing is
reported.

The module-level fixtures ``clock``, ``keyring`` and ``portal`` serve other tests
(``pytest_plugins = ["telecard_auth.testing"]`` in a ``conftest.py``). For detailed assertion
messages, call ``pytest.register_assert_rewrite("telecard_auth.testing")`` in ``conftest.py``
before importing this module (it covers the modules the suites are split into). The package itself
never imports it: it needs pytest, which the ``testing`` extra installs
(``pip install 'telecard-auth[testing]'``); without it, importing this module raises
``MissingExtra``.
"""

from telecard_auth._core.errors import MissingExtra

try:
    import pytest  # noqa: F401 - every module of the suites needs it
except ImportError as error:
    raise MissingExtra(feature="telecard_auth.testing", extra="testing") from error

from telecard_auth.testing._async_contract import AsyncStorageContract
from telecard_auth.testing._contract import StorageContract
from telecard_auth.testing._helpers import START, IssuerFactory, LostCommits, clock, keyring
from telecard_auth.testing._portal import (
    BlockingIssuer,
    BlockingStorage,
    Portal,
    blocking_storage,
    portal,
)

__all__ = [
    "START",
    "AsyncStorageContract",
    "BlockingIssuer",
    "BlockingStorage",
    "IssuerFactory",
    "LostCommits",
    "Portal",
    "StorageContract",
    "blocking_storage",
    "clock",
    "keyring",
    "portal",
]

# The names are defined in private modules; reprs, tracebacks and the docs show them here.
for _public in (
    AsyncStorageContract,
    BlockingIssuer,
    BlockingStorage,
    IssuerFactory,
    LostCommits,
    Portal,
    StorageContract,
    blocking_storage,
):
    _public.__module__ = __name__
del _public
