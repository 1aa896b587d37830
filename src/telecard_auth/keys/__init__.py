"""Key material: one format, the JWK Set (RFC 7517), for files, secret managers and operators.

A :class:`KeySet` holds everything an issuing platform keeps secret: the HMAC keys that digest
codes, the pseudonym keys that file customers and name them to operators, and the Ed25519 keys
that sign receipts. Its private form (:meth:`KeySet.to_jwks`) is a JWK Set with ``oct`` and
``OKP`` keys, each with its ``kid``; its public form (:meth:`KeySet.public_jwks`) holds only the
receipt keys' public halves, for operators to verify receipts with any JOSE library.

>>> import json
>>> from datetime import UTC, datetime
>>> from telecard_auth import CodeIssuer, MemoryStorage
>>> keys = KeySet.generate(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
>>> secret = json.dumps(keys.to_jwks())  # what a secret manager keeps
>>> loaded = KeySet.from_jwks(json.loads(secret))
>>> loaded == keys
True
>>> issuer = CodeIssuer(MemoryStorage(), keyring=loaded.keyring, signer=loaded.signer)
>>> jwks = json.dumps(loaded.public_jwks())  # publish this one, to operators

A key file holds the same private JWK Set: :func:`save_keys` writes one (mode 0600, in a
directory no other user can change) and :func:`load_keys` reads it only if no other user could
have written it, as OpenSSH checks ``authorized_keys``.
"""

from __future__ import annotations

from telecard_auth._core.keyring import HmacKey, Keyring
from telecard_auth._core.receipt import ReceiptSigner, SigningKey, VerifyKey
from telecard_auth.keys._errors import (
    KeyDirectoryNotOwned,
    KeyDirectoryShared,
    KeyDirectoryWritable,
    KeyFileExposed,
    KeyFileNotOwned,
    KeyFileNotWritten,
    KeyFileSymlink,
    KeyFileUnreadable,
    NotInitialized,
)
from telecard_auth.keys._file import (
    load_keys,
    make_private_directory,
    refuse_unsafe_place,
    save_keys,
)
from telecard_auth.keys._set import KeySet

__all__ = [
    "HmacKey",
    "KeyDirectoryNotOwned",
    "KeyDirectoryShared",
    "KeyDirectoryWritable",
    "KeyFileExposed",
    "KeyFileNotOwned",
    "KeyFileNotWritten",
    "KeyFileSymlink",
    "KeyFileUnreadable",
    "KeySet",
    "Keyring",
    "NotInitialized",
    "ReceiptSigner",
    "SigningKey",
    "VerifyKey",
    "load_keys",
    "make_private_directory",
    "refuse_unsafe_place",
    "save_keys",
]

# Tracebacks and reprs name the module people import from, not the private one it is written in.
# (The keys of the core keep theirs: they are telecard_auth's, documented there.)
for _defined_here in (
    KeySet,
    load_keys,
    save_keys,
    make_private_directory,
    refuse_unsafe_place,
    KeyDirectoryNotOwned,
    KeyDirectoryShared,
    KeyDirectoryWritable,
    KeyFileExposed,
    KeyFileNotOwned,
    KeyFileNotWritten,
    KeyFileSymlink,
    KeyFileUnreadable,
    NotInitialized,
):
    _defined_here.__module__ = __name__
del _defined_here
