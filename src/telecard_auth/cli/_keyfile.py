"""The key file: the key material ``init`` writes, and the checks that decide whether to trust it.

A ``KeyFile`` holds the HMAC keys, the pseudonym keys and the receipt signing keys.
``write_key_file`` writes it atomically, owner-only; ``read_key_file`` reads it only if no other
user could have written it, as OpenSSH checks ``authorized_keys``. Both refuse with the errors of
``_errors``, every one a ``ConfigurationError``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from telecard_auth._core.errors import KeyringError
from telecard_auth._core.keyring import MIN_SECRET_BYTES, HmacKey, Keyring
from telecard_auth._core.receipt import ReceiptSigner, SigningKey
from telecard_auth._core.text import clip
from telecard_auth.cli._errors import (
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

__all__ = [
    "KEY_FILE_FORMAT",
    "KeyFile",
    "make_private_directory",
    "read_key_file",
    "refuse_unsafe_place",
    "write_key_file",
]

#: The version of the key file's layout, written in its ``format`` field.
KEY_FILE_FORMAT = 1
# A key file holds a few lines per key; anything much larger is not one.
_LONGEST_KEY_FILE = 1 << 20
# Owners, links and directories are checked where they mean something; elsewhere the key file
# is checked as before (a regular file, and nothing more).
_POSIX = os.name == "posix"
# Never follow a link at the key file's name, and never wait on a FIFO put there (as ssh opens
# authorized_keys): the file is checked before a byte of it is read.
_OPEN_KEY_FILE = os.O_RDONLY | (os.O_NOFOLLOW | os.O_NONBLOCK if _POSIX else 0)
# The mode bits that let group or others write a directory.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def _secret_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@attrs.frozen(kw_only=True)
class KeyFile:
    """The key material in the command's key file: HMAC keys, pseudonym keys, receipt keys.

    ``hmac_added_at`` and ``signing_added_at`` say when each key (by id) was made: a key can be
    retired ``Policy.key_retirement_delay`` after the next one was added.

    >>> from datetime import UTC, datetime
    >>> keys = KeyFile.generate(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    >>> keys.keyring.current.key_id, keys.signer.current.key_id, keys.keyring.pseudonym_key.key_id
    ('k1', 'r1', 'p1')
    >>> rotated = keys.rotated(datetime(2026, 12, 1, tzinfo=UTC), hmac=True, signing=True)
    >>> [key.key_id for key in rotated.keyring.keys], rotated.signer.current.key_id
    (['k1', 'k2'], 'r2')
    >>> rotated.keyring.pseudonym_keys == keys.keyring.pseudonym_keys
    True
    """

    keyring: Keyring
    signer: ReceiptSigner
    hmac_added_at: Mapping[str, datetime] = attrs.field(factory=dict)
    signing_added_at: Mapping[str, datetime] = attrs.field(factory=dict)

    @classmethod
    def generate(cls, now: datetime) -> KeyFile:
        """Fresh key material: HMAC key ``k1``, pseudonym key ``p1``, receipt signing key ``r1``."""
        return cls(
            keyring=Keyring.generate("k1"),
            signer=ReceiptSigner.generate("r1"),
            hmac_added_at={"k1": now},
            signing_added_at={"r1": now},
        )

    def rotated(self, now: datetime, *, hmac: bool, signing: bool) -> KeyFile:
        """A copy with a new newest key of each kind asked for; no key is removed.

        Pseudonym keys rotate apart (``with_pseudonym_step``): subjects must move to a new one.
        """
        keyring, signer = self.keyring, self.signer
        hmac_added, signing_added = dict(self.hmac_added_at), dict(self.signing_added_at)
        if hmac:
            key_id = _next_id("k", [key.key_id for key in keyring.keys])
            secret = secrets.token_bytes(MIN_SECRET_BYTES)
            keyring = keyring.with_key(HmacKey(key_id=key_id, secret=secret))
            hmac_added[key_id] = now
        if signing:
            key_id = _next_id("r", [key.key_id for key in signer.keys])
            signer = signer.with_key(SigningKey.generate(key_id))
            signing_added[key_id] = now
        return KeyFile(
            keyring=keyring,
            signer=signer,
            hmac_added_at=hmac_added,
            signing_added_at=signing_added,
        )

    def with_pseudonym_step(self) -> KeyFile:
        """The next step of a pseudonym key rotation: a new key in standby, then current.

        With one pseudonym key, a new one is added in standby (lookups try it; nothing is filed
        under it). With one in standby, it becomes current. Once it is current, the next step is
        ``keys move``, which retires the older key when every subject has moved.
        """
        ring = self.keyring
        if len(ring.pseudonym_keys) == 1:
            key_id = _next_id("p", [key.key_id for key in ring.pseudonym_keys])
            ring = ring.with_pseudonym_key(HmacKey.generate(key_id), current=False)
        else:
            ring = ring.with_current_pseudonym_key(ring.newest_pseudonym_key_id)
        return attrs.evolve(self, keyring=ring)


def _next_id(prefix: str, taken: Sequence[str]) -> str:
    shape = re.compile(re.escape(prefix) + "([0-9]{1,9})")
    numbers = [int(match.group(1)) for key_id in taken if (match := shape.fullmatch(key_id))]
    number = max(numbers, default=0) + 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"


def _encode_key_file(keys: KeyFile) -> dict[str, Any]:
    def added(moments: Mapping[str, datetime], key_id: str) -> dict[str, str]:
        moment = moments.get(key_id)
        return {} if moment is None else {"added_at": moment.astimezone(UTC).isoformat()}

    return {
        "format": KEY_FILE_FORMAT,
        "comment": (
            "telecard-auth key material. Secret: keep it readable by its owner only, and back it"
            " up; without it no stored code can be redeemed. Keys are oldest first; the last of"
            " each list is current."
        ),
        "hmac_keys": [
            {"id": key.key_id, "secret": _secret_text(key.secret)}
            | added(keys.hmac_added_at, key.key_id)
            for key in keys.keyring.keys
        ],
        "pseudonym_keys": [
            {"id": key.key_id, "secret": _secret_text(key.secret)}
            for key in keys.keyring.pseudonym_keys
        ],
        "pseudonym_standby": keys.keyring.pseudonym_standby,
        "receipt_signing_keys": [
            {"private_key": key.to_private_text()} | added(keys.signing_added_at, key.key_id)
            for key in keys.signer.keys
        ],
    }


class _Malformed(Exception):
    """A key file's content is not of the format; the reason names a field, never a value."""


def _field(document: Mapping[str, Any], name: str, kind: type[Any], where: str = "") -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Malformed(f"{where}{name} is missing or not a {kind.__name__}")
    return value


def _secret_bytes(document: Mapping[str, Any], name: str, where: str = "") -> bytes:
    text = _field(document, name, str, where)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"{where}{name} is not base64") from None


def _added_at(document: Mapping[str, Any], where: str) -> datetime | None:
    if "added_at" not in document:
        return None
    text = _field(document, "added_at", str, where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Malformed(f"{where}added_at is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Malformed(f"{where}added_at has no timezone")
    return moment.astimezone(UTC)


def _entries(document: Mapping[str, Any], name: str) -> list[tuple[str, Mapping[str, Any]]]:
    items = _field(document, name, list)
    if not items:
        raise _Malformed(f"{name} is empty")
    found: list[tuple[str, Mapping[str, Any]]] = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]."
        if not isinstance(item, dict):
            raise _Malformed(f"{name}[{index}] is not an object")
        found.append((where, item))
    return found


def _decode_key_file(document: object) -> KeyFile:
    if not isinstance(document, dict) or "format" not in document:
        raise _Malformed("it is not a telecard-auth key file (it has no format field)")
    version = document["format"]
    if version != KEY_FILE_FORMAT or type(version) is not int:
        raise _Malformed(
            f"its format is {clip(str(version))}, and this release reads format {KEY_FILE_FORMAT}"
        )
    hmac_keys: list[HmacKey] = []
    hmac_added: dict[str, datetime] = {}
    for where, entry in _entries(document, "hmac_keys"):
        key = HmacKey(
            key_id=_field(entry, "id", str, where), secret=_secret_bytes(entry, "secret", where)
        )
        hmac_keys.append(key)
        moment = _added_at(entry, where)
        if moment is not None:
            hmac_added[key.key_id] = moment
    signing_keys: list[SigningKey] = []
    signing_added: dict[str, datetime] = {}
    for where, entry in _entries(document, "receipt_signing_keys"):
        signing = SigningKey.from_private_text(_field(entry, "private_key", str, where))
        signing_keys.append(signing)
        moment = _added_at(entry, where)
        if moment is not None:
            signing_added[signing.key_id] = moment
    if "pseudonym_keys" in document:
        pseudonym_keys = [
            HmacKey(
                key_id=_field(entry, "id", str, where),
                secret=_secret_bytes(entry, "secret", where),
            )
            for where, entry in _entries(document, "pseudonym_keys")
        ]
    else:  # written before pseudonym keys could rotate: one secret, now the key "p1"
        pseudonym_keys = [HmacKey(key_id="p1", secret=_secret_bytes(document, "pseudonym_secret"))]
    standby = document.get("pseudonym_standby", False)
    if not isinstance(standby, bool):
        raise _Malformed("pseudonym_standby is not true or false")
    return KeyFile(
        keyring=Keyring(keys=hmac_keys, pseudonym_keys=pseudonym_keys, pseudonym_standby=standby),
        signer=ReceiptSigner(keys=signing_keys),
        hmac_added_at=hmac_added,
        signing_added_at=signing_added,
    )


def read_key_file(path: str | os.PathLike[str]) -> KeyFile:
    """Load the key material from a key file that ``init`` or ``keys rotate`` wrote.

    On POSIX systems the file is trusted only if no other user could have written it, which is
    what OpenSSH checks of ``authorized_keys``: it is not a symbolic link (``KeyFileSymlink``),
    it belongs to the caller or root (``KeyFileNotOwned``), group and others can neither read nor
    write it (``KeyFileExposed``, as ssh asks of a private key), and every directory from its own
    up to ``/`` belongs to the caller or root (``KeyDirectoryNotOwned``) and is not writable by
    group or others (``KeyDirectoryWritable``), even with the sticky bit, as ``/tmp`` has
    (``KeyDirectoryShared``). Links among the directories are resolved first and the real
    directories checked, as ssh does.
    All of these are ``KeyFileExposed``. A missing file is ``NotInitialized``; one that cannot be
    read or is not a key file is ``KeyFileUnreadable``. Every one is a ``ConfigurationError``.
    """
    where = Path(path)
    return _parsed(_trusted_bytes(where), str(where))


def _trusted_bytes(where: Path) -> bytes:
    """The bytes of the key file at ``where``, read once no other user could have written it."""
    shown = str(where)
    located = _located(where)
    try:
        descriptor = os.open(located, _OPEN_KEY_FILE)
    except FileNotFoundError:
        raise NotInitialized(path=shown) from None
    except PermissionError:
        raise KeyFileUnreadable(path=shown, reason="permission denied") from None
    except OSError as error:
        if _POSIX and error.errno in (errno.ELOOP, errno.EMLINK) and located.is_symlink():
            raise KeyFileSymlink(path=shown) from None
        raise KeyFileUnreadable(path=shown, reason=error.strerror or type(error).__name__) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileUnreadable(path=shown, reason="it is not a regular file")
        if _POSIX:
            _refuse_foreign_file(info, shown)
            _refuse_foreign_directories(located.parent, shown)
        raw = os.read(descriptor, _LONGEST_KEY_FILE + 1)
    except OSError as error:
        raise KeyFileUnreadable(path=shown, reason=error.strerror or type(error).__name__) from None
    finally:
        os.close(descriptor)
    if len(raw) > _LONGEST_KEY_FILE:
        raise KeyFileUnreadable(path=shown, reason="it is far too large to be a key file")
    return raw


def _parsed(raw: bytes, shown: str) -> KeyFile:
    """The key material in ``raw``, the content of the key file ``shown``."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise KeyFileUnreadable(path=shown, reason="it is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        reason = f"it is not valid JSON (line {error.lineno}, column {error.colno})"
        raise KeyFileUnreadable(path=shown, reason=reason) from None
    except RecursionError:
        raise KeyFileUnreadable(path=shown, reason="it is not valid JSON") from None
    try:
        return _decode_key_file(document)
    except _Malformed as error:
        raise KeyFileUnreadable(path=shown, reason=str(error)) from None
    except KeyringError as error:
        reason = str(error.details.get("reason", "a key is not valid"))
        raise KeyFileUnreadable(path=shown, reason=reason) from None


def _located(path: Path) -> Path:
    """``path`` with the links among its directories resolved; its own name is left as it is.

    The key file is opened, and its directories checked, by this name, so what is read is what
    was checked: a link swapped afterwards cannot redirect it.
    """
    if not _POSIX:
        return path
    return Path(os.path.realpath(path.parent)) / path.name


def _trusted_owner(uid: int) -> bool:
    # Root can change anything anyway, so root's files and directories are trusted (as in ssh).
    return uid in (0, os.geteuid())


def _refuse_foreign_file(info: os.stat_result, shown: str) -> None:
    """Refuse a key file that another user owns, or that group or others may read or write."""
    if not _trusted_owner(info.st_uid):
        raise KeyFileNotOwned(path=shown, owner=info.st_uid, uid=os.geteuid())
    if info.st_mode & 0o077:
        raise KeyFileExposed(path=shown, mode=f"{stat.S_IMODE(info.st_mode):04o}")


def _refuse_foreign_directories(directory: Path, shown: str) -> None:
    """Refuse the key file ``shown`` if another user could change ``directory`` or one above it.

    ``directory`` has no links in it (see ``_located``). The walk goes up to ``/``, further than
    ssh's for ``authorized_keys``, which stops at the user's home directory. A sticky directory
    (``/tmp``) is refused as well, as ssh refuses it: others can create names in it.
    """
    for folder in (directory, *directory.parents):
        info = os.stat(folder)
        if not _trusted_owner(info.st_uid):
            raise KeyDirectoryNotOwned(
                directory=str(folder), path=shown, owner=info.st_uid, uid=os.geteuid()
            )
        if info.st_mode & _WRITABLE_BY_OTHERS:
            mode = f"{stat.S_IMODE(info.st_mode):04o}"
            shared = info.st_mode & stat.S_ISVTX
            refusal = KeyDirectoryShared if shared else KeyDirectoryWritable
            raise refusal(directory=str(folder), path=shown, mode=mode)


def refuse_unsafe_place(where: Path) -> None:
    """Refuse to put a key file at ``where`` if it would be refused there once written.

    That is a link at its name, or a directory on the way that another user could change: the
    nearest one that exists and every one above it (those still to be made will be 0700).
    """
    if not _POSIX:
        return
    if where.is_symlink():
        raise KeyFileSymlink(path=str(where))
    existing = where.parent
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent
    _refuse_foreign_directories(Path(os.path.realpath(existing)), str(where))


def make_private_directory(path: Path) -> None:
    """Make ``path`` and every missing directory above it owner-only (0700), whatever the umask.

    Existing directories are left alone. A directory made with the umask's mode (0775 under
    umask 002) would be refused as a key file's directory at the next run.
    """
    if path.is_dir():
        return
    make_private_directory(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if path.is_dir():  # made meanwhile, by someone else: theirs to set
            return
        raise
    path.chmod(0o700)


def write_key_file(path: str | os.PathLike[str], keys: KeyFile) -> None:
    """Write ``keys`` to ``path`` atomically, with mode 0600, in a directory made 0700 if new.

    The text goes to a private temporary file beside ``path``, is flushed to disk, and then
    replaces ``path`` in one rename: a reader sees the old file or the new one, never half.

    On POSIX systems it refuses, before making anything, the places ``read_key_file`` refuses: a
    symbolic link at ``path`` (``KeyFileSymlink``: the link is left alone, never written through)
    and directories another user could change (``KeyDirectoryWritable``, ``KeyDirectoryShared``,
    ``KeyDirectoryNotOwned``). Other failures are ``KeyFileNotWritten``.
    """
    where = Path(path)
    shown = str(where)
    text = json.dumps(_encode_key_file(keys), indent=2) + "\n"
    temporary: str | None = None
    try:
        refuse_unsafe_place(where)  # before a directory is made there
        make_private_directory(where.parent)
        located = _located(where)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{where.name}.", suffix=".tmp", dir=located.parent
        )
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.chmod(temporary, 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # A rename replaces the name itself: it never writes through a link put there meanwhile.
        os.replace(temporary, located)
        temporary = None
        _sync_directory(located.parent)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise KeyFileNotWritten(path=shown, reason=reason) from error
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is: flush it where the OS allows.
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
