"""Key files: a ``KeySet`` as a private JWK Set on disk, trusted only if no one else could write it.

``save_keys`` writes atomically, owner-only; ``load_keys`` reads a file only if no other user
could have written it, as OpenSSH checks ``authorized_keys``. Both refuse with the errors of
``telecard_auth.keys``, every one a ``ConfigurationError``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

from telecard_auth._core.errors import KeyringError
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
from telecard_auth.keys._set import KeySet

__all__ = ["load_keys", "make_private_directory", "refuse_unsafe_place", "save_keys"]

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


def load_keys(path: str | os.PathLike[str]) -> KeySet:
    """Load the key set from a key file, as ``save_keys`` (or ``telecard-auth init``) wrote it.

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


def _parsed(raw: bytes, shown: str) -> KeySet:
    """The key set in ``raw``, the content of the key file ``shown``."""
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
        return KeySet.from_jwks(document)
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


def save_keys(path: str | os.PathLike[str], keys: KeySet) -> None:
    """Write ``keys`` to ``path`` atomically, with mode 0600, in a directory made 0700 if new.

    The text goes to a private temporary file beside ``path``, is flushed to disk, and then
    replaces ``path`` in one rename: a reader sees the old file or the new one, never half.

    On POSIX systems it refuses, before making anything, the places ``load_keys`` refuses: a
    symbolic link at ``path`` (``KeyFileSymlink``: the link is left alone, never written through)
    and directories another user could change (``KeyDirectoryWritable``, ``KeyDirectoryShared``,
    ``KeyDirectoryNotOwned``). Other failures are ``KeyFileNotWritten``.
    """
    where = Path(path)
    shown = str(where)
    text = json.dumps(keys.to_jwks(), indent=2) + "\n"
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
