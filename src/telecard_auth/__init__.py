"""Issue and redeem Saudi SIM authentication codes.

A code is issued to an authenticated, eligible customer for one mobile operator, is valid for four
hours, and is good for one service, once. This module is the whole public surface.
"""

from typing import TYPE_CHECKING, Any

from telecard_auth._core.clock import Clock, ManualClock, SystemClock
from telecard_auth._core.errors import (
    BindingMismatch,
    BindingRequired,
    CodeAlreadyUsed,
    CodeExpired,
    CodeLocked,
    CodeRevoked,
    CodeSuperseded,
    ConfigurationError,
    FailureBudgetExhausted,
    InvalidBinding,
    InvalidIdentifier,
    InvalidInput,
    InvalidMsisdn,
    InvalidPolicy,
    InvalidReference,
    InvalidRequestId,
    InvalidStorageUrl,
    InvalidTime,
    KeyringError,
    LiveCodeLimitReached,
    MalformedCode,
    MalformedReceipt,
    MissingExtra,
    NotEligible,
    NotPermitted,
    ReceiptMismatch,
    ReceiptNotVerified,
    RedemptionRefused,
    RequestConflict,
    ServiceMismatch,
    ServiceNotAllowed,
    StorageContention,
    StorageError,
    StorageOutcomeUnknown,
    TelecardAuthError,
    TransferNotBound,
    UnknownCode,
    UnknownProvider,
    UnknownService,
    UnknownSigningKey,
    UnknownSubjectKind,
    WrongCode,
)
from telecard_auth._core.keyring import HmacKey, Keyring
from telecard_auth._core.model import (
    ACTIVATION_FOR_ACTUAL_USER,
    ADDITIONAL_SIM,
    DEFAULT_SERVICES,
    LOST_SIM_REPLACEMENT,
    NEW_LINE,
    NUMBER_PORTING,
    NUMBER_TRANSFER,
    SAUDI_PROVIDERS,
    CodeState,
    CodeStatus,
    IssuedCode,
    Provider,
    Redemption,
    Service,
    SignedRedemption,
    Subject,
    SubjectKind,
)
from telecard_auth._core.normalize import fold_digits, luhn_valid, normalize_msisdn
from telecard_auth._core.policy import (
    CodeFormat,
    GuessRisk,
    Policy,
    default_government_id_validator,
)
from telecard_auth._core.receipt import (
    Receipt,
    ReceiptSigner,
    SigningKey,
    VerifyKey,
    verify_receipt,
)
from telecard_auth._core.text import RIYADH, preferred_language
from telecard_auth._issuer import AsyncCodeIssuer, CodeIssuer, MoveProgress
from telecard_auth._storage.memory import AsyncMemoryStorage, MemoryStorage
from telecard_auth._storage.protocol import (
    AsyncPurgeReporting,
    AsyncStorage,
    AsyncStorageBackend,
    AsyncSubjectScanning,
    CodeRecord,
    Commit,
    FailureLog,
    PurgeReporting,
    Storage,
    StorageBackend,
    SubjectScanning,
    SubjectSnapshot,
)
from telecard_auth._storage.urls import async_storage_from_url, storage_from_url
from telecard_auth._version import __version__
from telecard_auth.events import (
    AuditEvent,
    CollectingSink,
    EventSink,
    Fanout,
    JsonLinesSink,
    LoggingSink,
    QueueSink,
)

if TYPE_CHECKING:
    # Named, not in __all__: they need their extras (see the end of this module).
    from telecard_auth._storage.postgres import AsyncPostgresStorage as AsyncPostgresStorage
    from telecard_auth._storage.postgres import PostgresStorage as PostgresStorage
    from telecard_auth._storage.redis import AsyncRedisStorage as AsyncRedisStorage
    from telecard_auth._storage.redis import RedisStorage as RedisStorage
    from telecard_auth._storage.redis_cluster import (
        AsyncRedisClusterStorage as AsyncRedisClusterStorage,
    )
    from telecard_auth._storage.redis_cluster import RedisClusterStorage as RedisClusterStorage
    from telecard_auth._storage.sqlite import AsyncSQLiteStorage, SQLiteStorage

# Backends load their client libraries (sqlite3, redis, psycopg) only when first named.
_BACKENDS = {
    "SQLiteStorage": "telecard_auth._storage.sqlite",
    "AsyncSQLiteStorage": "telecard_auth._storage.sqlite",
    "RedisStorage": "telecard_auth._storage.redis",
    "AsyncRedisStorage": "telecard_auth._storage.redis",
    "RedisClusterStorage": "telecard_auth._storage.redis_cluster",
    "AsyncRedisClusterStorage": "telecard_auth._storage.redis_cluster",
    "PostgresStorage": "telecard_auth._storage.postgres",
    "AsyncPostgresStorage": "telecard_auth._storage.postgres",
}


def __getattr__(name: str) -> Any:
    module = _BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module 'telecard_auth' has no attribute {name!r}")
    import importlib

    # Left where they live: their modules' doctests are found there, whenever they are loaded.
    return getattr(importlib.import_module(module), name)


def _shown_here(thing: Any) -> Any:
    """``thing``, if it is an error, shown in tracebacks as ``telecard_auth.<name>``.

    The private module an error is raised from is the package's business, not the caller's.
    Other classes keep their modules, where their documentation (attribute comments included)
    is read from.
    """
    if isinstance(thing, type) and issubclass(thing, TelecardAuthError):
        thing.__module__ = "telecard_auth"
    return thing


__all__ = [
    "ACTIVATION_FOR_ACTUAL_USER",
    "ADDITIONAL_SIM",
    "DEFAULT_SERVICES",
    "LOST_SIM_REPLACEMENT",
    "NEW_LINE",
    "NUMBER_PORTING",
    "NUMBER_TRANSFER",
    "RIYADH",
    "SAUDI_PROVIDERS",
    "AsyncCodeIssuer",
    "AsyncMemoryStorage",
    "AsyncPurgeReporting",
    "AsyncSQLiteStorage",
    "AsyncStorage",
    "AsyncStorageBackend",
    "AsyncSubjectScanning",
    "AuditEvent",
    "BindingMismatch",
    "BindingRequired",
    "Clock",
    "CodeAlreadyUsed",
    "CodeExpired",
    "CodeFormat",
    "CodeIssuer",
    "CodeLocked",
    "CodeRecord",
    "CodeRevoked",
    "CodeState",
    "CodeStatus",
    "CodeSuperseded",
    "CollectingSink",
    "Commit",
    "ConfigurationError",
    "EventSink",
    "FailureBudgetExhausted",
    "FailureLog",
    "Fanout",
    "GuessRisk",
    "HmacKey",
    "InvalidBinding",
    "InvalidIdentifier",
    "InvalidInput",
    "InvalidMsisdn",
    "InvalidPolicy",
    "InvalidReference",
    "InvalidRequestId",
    "InvalidStorageUrl",
    "InvalidTime",
    "IssuedCode",
    "JsonLinesSink",
    "Keyring",
    "KeyringError",
    "LiveCodeLimitReached",
    "LoggingSink",
    "MalformedCode",
    "MalformedReceipt",
    "ManualClock",
    "MemoryStorage",
    "MissingExtra",
    "MoveProgress",
    "NotEligible",
    "NotPermitted",
    "Policy",
    "Provider",
    "PurgeReporting",
    "QueueSink",
    "Receipt",
    "ReceiptMismatch",
    "ReceiptNotVerified",
    "ReceiptSigner",
    "Redemption",
    "RedemptionRefused",
    "RequestConflict",
    "SQLiteStorage",
    "Service",
    "ServiceMismatch",
    "ServiceNotAllowed",
    "SignedRedemption",
    "SigningKey",
    "Storage",
    "StorageBackend",
    "StorageContention",
    "StorageError",
    "StorageOutcomeUnknown",
    "Subject",
    "SubjectKind",
    "SubjectScanning",
    "SubjectSnapshot",
    "SystemClock",
    "TelecardAuthError",
    "TransferNotBound",
    "UnknownCode",
    "UnknownProvider",
    "UnknownService",
    "UnknownSigningKey",
    "UnknownSubjectKind",
    "VerifyKey",
    "WrongCode",
    "__version__",
    "async_storage_from_url",
    "default_government_id_validator",
    "events",
    "fold_digits",
    "luhn_valid",
    "normalize_msisdn",
    "preferred_language",
    "storage_from_url",
    "verify_receipt",
]

# Redis and PostgreSQL need their extras, so ``from telecard_auth import *`` leaves them out; name
# them (``from telecard_auth import RedisStorage``) to load them. Every other public name is here.
for _name in __all__:
    _shown_here(globals().get(_name))
del _name
