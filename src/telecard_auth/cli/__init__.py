"""``telecard-auth``: issue, redeem and check SIM authentication codes from a shell.

The command keeps its files in one home directory (``TELECARD_AUTH_HOME``, default
``./.telecard-auth``): ``keys.json``, the key material, readable by its owner only, and
``codes.db``, the SQLite database. ``telecard-auth init`` makes both. Every other command finds
them there, unless ``--keys`` / ``TELECARD_AUTH_KEYS`` or ``--storage`` / ``TELECARD_AUTH_STORAGE``
say otherwise. The reference, with the exit statuses, is ``docs/cli.md``.

Secrets stay off the command line, where every local user can read them in the process list:
``--code``, ``--id``, ``--recipient-id`` and ``--storage`` accept ``-`` to read the value from
standard input, and the first three fall back to ``TELECARD_AUTH_CODE``, ``TELECARD_AUTH_ID`` and
``TELECARD_AUTH_RECIPIENT_ID``.

Every failure ends in one line on stderr (or one JSON object on stdout with ``--json``) and an
exit status chosen by the error's family:

>>> from telecard_auth import CodeExpired, MissingExtra, WrongCode
>>> exit_status(WrongCode()), exit_status(CodeExpired()), exit_status(MissingExtra())
(4, 4, 6)
>>> exit_status(RuntimeError("anything unexpected"))
1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import io
import json
import os
import re
import secrets
import stat
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeAlias
from urllib.parse import urlsplit

import attrs

from telecard_auth._core.errors import (
    ConfigurationError,
    InvalidInput,
    KeyringError,
    NotPermitted,
    ReceiptNotVerified,
    RedemptionRefused,
    StorageError,
    TelecardAuthError,
    UnknownCode,
    clip,
)
from telecard_auth._core.keyring import MIN_SECRET_BYTES, HmacKey, Keyring
from telecard_auth._core.model import (
    DEFAULT_SERVICES,
    SAUDI_PROVIDERS,
    CodeState,
    CodeStatus,
    Provider,
    Service,
    Subject,
    SubjectKind,
)
from telecard_auth._core.receipt import (
    Receipt,
    ReceiptSigner,
    SigningKey,
    VerifyKey,
    verify_receipt,
)
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import StorageBackend
from telecard_auth._storage.sqlite import SQLiteStorage
from telecard_auth._storage.urls import storage_from_url
from telecard_auth._version import __version__
from telecard_auth.cli._demo import run_demo

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_HOME",
    "DEMO_DATABASE",
    "ENV_CODE",
    "ENV_HOME",
    "ENV_ID",
    "ENV_KEYS",
    "ENV_LANG",
    "ENV_RECIPIENT_ID",
    "ENV_STORAGE",
    "EXAMPLES",
    "EXIT_STATUSES",
    "KEY_FILE_FORMAT",
    "KEY_FILE_NAME",
    "PROG",
    "DatabaseMissing",
    "InvalidArgument",
    "KeyDirectoryNotOwned",
    "KeyDirectoryShared",
    "KeyDirectoryWritable",
    "KeyFile",
    "KeyFileExists",
    "KeyFileExposed",
    "KeyFileNotOwned",
    "KeyFileNotWritten",
    "KeyFileSymlink",
    "KeyFileUnreadable",
    "NoRotation",
    "NotInitialized",
    "UnknownCommand",
    "UsageError",
    "build_parser",
    "default_home",
    "exit_status",
    "main",
    "read_key_file",
    "write_key_file",
]

#: The command's name, in help and messages, however it was started.
PROG = "telecard-auth"

#: The directory holding the key file and the database, unless these say otherwise.
ENV_HOME = "TELECARD_AUTH_HOME"
#: The key file, overriding ``$TELECARD_AUTH_HOME/keys.json``; ``--keys`` overrides both.
ENV_KEYS = "TELECARD_AUTH_KEYS"
#: A storage URL, overriding ``$TELECARD_AUTH_HOME/codes.db``; ``--storage`` overrides both.
ENV_STORAGE = "TELECARD_AUTH_STORAGE"
#: ``en`` or ``ar``: the default of ``--lang``.
ENV_LANG = "TELECARD_AUTH_LANG"
#: The code, when ``--code`` is not given: out of the process list and the shell's history.
ENV_CODE = "TELECARD_AUTH_CODE"
#: The customer's identity number, when ``--id`` is not given.
ENV_ID = "TELECARD_AUTH_ID"
#: The recipient's identity number, when ``--recipient-kind`` is given and ``--recipient-id`` not.
ENV_RECIPIENT_ID = "TELECARD_AUTH_RECIPIENT_ID"

#: The home directory when ``TELECARD_AUTH_HOME`` is not set, relative to the working directory.
DEFAULT_HOME = ".telecard-auth"
KEY_FILE_NAME = "keys.json"
DATABASE_NAME = "codes.db"
#: Where ``demo`` keeps its codes unless told otherwise; it starts afresh on each run.
DEMO_DATABASE = "telecard-demo.db"

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
# The value of an option that reads it from standard input instead.
_STDIN = "-"
# One secret, typed or pasted: a storage URL is the longest of them.
_LONGEST_STDIN = 4096

#: Exit status per error family (the first family an error belongs to wins). Success is 0,
#: anything unexpected 1, an interrupt 130.
EXIT_STATUSES: tuple[tuple[type[TelecardAuthError], int], ...] = (
    (InvalidInput, 2),
    (NotPermitted, 3),
    (RedemptionRefused, 4),
    (UnknownCode, 5),
    (ConfigurationError, 6),
    (StorageError, 7),
    (ReceiptNotVerified, 8),
)
_UNEXPECTED = 1
_INTERRUPTED = 130


def exit_status(error: BaseException) -> int:
    """The process exit status for ``error``: its family's (see ``EXIT_STATUSES``), else 1."""
    for family, status in EXIT_STATUSES:
        if isinstance(error, family):
            return status
    return _UNEXPECTED


# --- the command's own errors ------------------------------------------------------------------


class UsageError(InvalidInput):
    """The command line does not parse: a missing or unknown option, a bad option value."""

    code = "usage"
    template_en = "{detail} (see {prog} --help)"
    template_ar = "استخدام غير صحيح للأمر (التفاصيل بالإنجليزية): {detail} (انظر {prog} --help)"


class UnknownCommand(InvalidInput):
    """The command line names a command that does not exist."""

    code = "unknown_command"
    template_en = "Unknown command '{command}'; run {prog} --help to see the commands."
    template_ar = "الأمر '{command}' غير معروف؛ شغّل {prog} --help لعرض الأوامر."


class InvalidArgument(InvalidInput):
    """An option's value parses but cannot be used (a public key line, a pair of options)."""

    code = "invalid_argument"
    template_en = "The value of {option} cannot be used: {reason}."
    template_ar = "لا يمكن استخدام قيمة {option} (التفاصيل بالإنجليزية): {reason}."


class NoRotation(InvalidInput):
    """``keys move`` was asked for while no pseudonym key rotation is under way."""

    code = "no_rotation"
    template_en = (
        "No pseudonym key rotation is under way: start one with 'keys rotate --pseudonym'."
    )
    template_ar = "لا يجري تدوير لمفتاح الأسماء المستعارة: ابدأه بالأمر 'keys rotate --pseudonym'."


class NotInitialized(ConfigurationError):
    """There is no key file where the command looked: ``init`` has not been run."""

    code = "not_initialized"
    template_en = (
        "There is no key file at {path}: run `telecard-auth init` first, or name your key file"
        " with --keys or TELECARD_AUTH_KEYS."
    )
    template_ar = (
        "لا يوجد ملف مفاتيح في {path}: شغّل telecard-auth init أولًا، أو حدّد ملف المفاتيح"
        " عبر --keys أو TELECARD_AUTH_KEYS."
    )


class KeyFileExposed(ConfigurationError):
    """The key file can be read or written by group or others; it is not read (as ssh does).

    Its subclasses are the other ways another user could have written the key file: a link at
    its name, another owner, a directory on the way that others can change.
    """

    code = "key_file_exposed"
    template_en = (
        "The key file {path} is open to group or others (mode {mode}), so it is not used;"
        " make it private with: chmod 600 {path}"
    )
    template_ar = (
        "ملف المفاتيح {path} متاح لغير مالكه (الصلاحيات {mode})، لذا لن يُستخدم؛"
        " اجعله خاصًا بالأمر: chmod 600 {path}"
    )


class KeyFileSymlink(KeyFileExposed):
    """The key file's name is a symbolic link: it is not followed, wherever it leads."""

    code = "key_file_symlink"
    template_en = (
        "The key file {path} is a symbolic link, so it is not used: whoever can change the link"
        " chooses the keys. Name the file itself with --keys or TELECARD_AUTH_KEYS, or move the"
        " file to where the link is."
    )
    template_ar = (
        "ملف المفاتيح {path} رابط رمزي، لذا لن يُستخدم: من يستطيع تغيير الرابط يختار المفاتيح."
        " حدّد الملف نفسه عبر --keys أو TELECARD_AUTH_KEYS، أو انقل الملف إلى مكان الرابط."
    )


class KeyFileNotOwned(KeyFileExposed):
    """The key file belongs to another user: neither the one running the command nor root."""

    code = "key_file_not_owned"
    template_en = (
        "The key file {path} belongs to another user (uid {owner}), so it is not used: it must"
        " be yours (uid {uid}) or root's. If you trust what it holds, have root make it yours:"
        " chown {uid} {path}"
    )
    template_ar = (
        "ملف المفاتيح {path} يملكه مستخدم آخر (uid {owner})، لذا لن يُستخدم: يجب أن يكون ملكك"
        " (uid {uid}) أو ملك root. إن كنت تثق بمحتواه فاطلب من root نقل ملكيته إليك:"
        " chown {uid} {path}"
    )


class KeyDirectoryWritable(KeyFileExposed):
    """A directory on the way to the key file is writable by group or others, sticky or not."""

    code = "key_directory_writable"
    template_en = (
        "The directory {directory}, on the way to the key file {path}, can be written by group or"
        " others (mode {mode}), so the key file is not used: they could put their own in its"
        " place. Keep the key file in a directory that only you and root can change, or run:"
        " chmod go-w {directory}"
    )
    template_ar = (
        "المجلد {directory}، في مسار ملف المفاتيح {path}، قابل للكتابة من المجموعة أو الآخرين"
        " (الصلاحيات {mode})، لذا لن يُستخدم ملف المفاتيح: يمكنهم وضع ملف من عندهم مكانه."
        " احفظ ملف المفاتيح في مجلد لا يغيّره غيرك وغير root، أو شغّل: chmod go-w {directory}"
    )


class KeyDirectoryShared(KeyDirectoryWritable):
    """A directory on the way to the key file is a shared one, such as ``/tmp``: sticky, and
    writable by group or others. Its mode is not the thing to change: the key file moves."""

    code = "key_directory_shared"
    template_en = (
        "The directory {directory}, on the way to the key file {path}, is shared: others can"
        " create files in it (mode {mode}, like /tmp), so the key file is not used. Keep the key"
        " file in a directory that only you and root can change, such as one in your home"
        " directory (set TELECARD_AUTH_HOME or --keys)."
    )
    template_ar = (
        "المجلد {directory}، في مسار ملف المفاتيح {path}، مجلد مشترك: يستطيع الآخرون إنشاء ملفات"
        " فيه (الصلاحيات {mode}، مثل /tmp)، لذا لن يُستخدم ملف المفاتيح. احفظ ملف المفاتيح في مجلد"
        " لا يغيّره غيرك وغير root، كمجلد داخل مجلدك الرئيسي (عبر TELECARD_AUTH_HOME أو --keys)."
    )


class KeyDirectoryNotOwned(KeyFileExposed):
    """A directory on the way to the key file belongs to another user than the caller or root."""

    code = "key_directory_not_owned"
    template_en = (
        "The directory {directory}, on the way to the key file {path}, belongs to another user"
        " (uid {owner}), so the key file is not used: that user could put their own in its"
        " place. Keep the key file in directories that are yours (uid {uid}) or root's, or have"
        " root run: chown {uid} {directory}"
    )
    template_ar = (
        "المجلد {directory}، في مسار ملف المفاتيح {path}، يملكه مستخدم آخر (uid {owner})، لذا لن"
        " يُستخدم ملف المفاتيح: يمكن لذلك المستخدم وضع ملف من عنده مكانه. احفظ ملف المفاتيح في"
        " مجلدات تملكها أنت (uid {uid}) أو root، أو اطلب من root تشغيل: chown {uid} {directory}"
    )


class KeyFileUnreadable(ConfigurationError):
    """The key file exists but cannot be read or is not a key file of a known format."""

    code = "key_file_unreadable"
    template_en = "The key file {path} cannot be used: {reason}."
    template_ar = "تعذّر استخدام ملف المفاتيح {path} (التفاصيل بالإنجليزية): {reason}."


class KeyFileNotWritten(ConfigurationError):
    """The key file could not be written; the old one, if any, is unchanged."""

    code = "key_file_not_written"
    template_en = "The key file {path} could not be written: {reason}."
    template_ar = "تعذّرت كتابة ملف المفاتيح {path} (التفاصيل بالإنجليزية): {reason}."


class KeyFileExists(ConfigurationError):
    """``init`` found a key file and, without ``--force``, leaves it alone."""

    code = "key_file_exists"
    template_en = (
        "A key file already exists at {path}, and init does not replace it. --force replaces"
        " it, after which no code issued with the old keys can ever be redeemed."
    )
    template_ar = (
        "يوجد ملف مفاتيح في {path} بالفعل، ولا يستبدله الأمر init. الخيار --force يستبدله،"
        " وبعدها لا يمكن استخدام أي رمز صدر بالمفاتيح القديمة."
    )


class DatabaseMissing(ConfigurationError):
    """The SQLite database the command was pointed at does not exist."""

    code = "database_missing"
    template_en = (
        "There is no database at {path}: run `telecard-auth init` first"
        " (or `telecard-auth migrate` to create the database alone)."
    )
    template_ar = (
        "لا توجد قاعدة بيانات في {path}: شغّل telecard-auth init أولًا"
        " (أو telecard-auth migrate لإنشاء قاعدة البيانات وحدها)."
    )


class InvalidSetting(ConfigurationError):
    """An environment variable the command reads has a value it cannot use."""

    code = "invalid_setting"
    template_en = "The environment variable {name} must be {expected}."
    template_ar = "يجب أن تكون قيمة متغير البيئة {name}: {expected}."


class _Unexpected(TelecardAuthError):
    code = "internal_error"
    template_en = "Unexpected failure ({kind}); run again with --debug to see where it happened."
    template_ar = "إخفاق غير متوقع ({kind})؛ أعد التشغيل مع --debug لمعرفة موضعه."


class _Interrupted(TelecardAuthError):
    code = "interrupted"
    template_en = "Interrupted."
    template_ar = "أُوقف الأمر."


# --- files ---------------------------------------------------------------------------------------


def default_home() -> Path:
    """``$TELECARD_AUTH_HOME``, or ``./.telecard-auth``, as an absolute path."""
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser().absolute()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _secret_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@attrs.frozen(kw_only=True)
class KeyFile:
    """The key material in the command's key file: HMAC keys, pseudonym keys, receipt keys.

    ``hmac_added_at`` and ``signing_added_at`` say when each key (by id) was made: a key can be
    retired ``Policy.key_retirement_delay`` after the next one was added.

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
        return {} if moment is None else {"added_at": _iso(moment)}

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


def _refuse_unsafe_place(where: Path) -> None:
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


def _private_directory(path: Path) -> None:
    """Make ``path`` and every missing directory above it owner-only (0700), whatever the umask.

    Existing directories are left alone. A directory made with the umask's mode (0775 under
    umask 002) would be refused as a key file's directory at the next run.
    """
    if path.is_dir():
        return
    _private_directory(path.parent)
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
        _refuse_unsafe_place(where)  # before a directory is made there
        _private_directory(where.parent)
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


# --- settings and storage ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Settings:
    home: Path
    keys_path: Path
    storage_url: str | None  # None: the SQLite database in the home directory
    explicit_storage: str | None  # --storage alone, for the demo
    lang: str
    json: bool
    debug: bool

    def keys(self) -> KeyFile:
        return read_key_file(self.keys_path)

    @property
    def database(self) -> Path:
        return self.home / DATABASE_NAME

    def storage_label(self) -> str:
        if self.storage_url is None:
            return f"sqlite:///{self.database}"
        return _redact(self.storage_url)

    @contextmanager
    def storage(self, *, create: bool = False) -> Iterator[StorageBackend]:
        """The storage to use, closed afterwards; ``create`` migrates it (and makes the file)."""
        storage: StorageBackend
        if self.storage_url is None:
            if create:
                _private_directory(self.home)
            elif not self.database.exists():
                raise DatabaseMissing(path=str(self.database))
            storage = SQLiteStorage(self.database)
        else:
            storage = storage_from_url(self.storage_url)
            if isinstance(storage, SQLiteStorage) and not create:
                file = storage.path
                if not file.startswith(("file:", ":memory:")) and not Path(file).exists():
                    raise DatabaseMissing(path=file)
        with storage:
            if create:
                storage.migrate()
            yield storage


def _redact(url: str) -> str:
    """``url`` without its password, for output."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
    except ValueError:
        return url


def _lang_from_environment() -> str:
    value = os.environ.get(ENV_LANG) or "en"
    if value not in ("en", "ar"):
        raise InvalidSetting(name=ENV_LANG, expected="en or ar")
    return value


def _settings(args: argparse.Namespace) -> _Settings:
    home = default_home()
    keys = getattr(args, "keys", None) or os.environ.get(ENV_KEYS) or home / KEY_FILE_NAME
    explicit = getattr(args, "storage", None)
    lang = getattr(args, "lang", None) or _lang_from_environment()
    return _Settings(
        home=home,
        keys_path=Path(keys).expanduser().absolute(),
        storage_url=explicit or os.environ.get(ENV_STORAGE) or None,
        explicit_storage=explicit,
        lang=lang,
        json=bool(getattr(args, "json", False)),
        debug=bool(getattr(args, "debug", False)),
    )


# --- secrets off the command line ----------------------------------------------------------------

# What the command line holds, every local user can read (ps, /proc/PID/cmdline) and the shell
# keeps in its history; standard input and the environment are the caller's own.


def _stdin_readers(args: argparse.Namespace) -> list[str]:
    """The options (and the RECEIPT argument) given as ``-``, in a fixed order."""
    named = [
        ("--storage", "storage"),
        ("--id", "id"),
        ("--code", "code"),
        ("--recipient-id", "recipient_id"),
        ("RECEIPT", "receipt"),
    ]
    return [option for option, dest in named if getattr(args, dest, None) == _STDIN]


def _stdin_line(option: str) -> str:
    """The one line on standard input, without its line ending: the value of ``option``.

    Reasons never quote what was read: it is a code, an identity number or a password.
    """
    stream: TextIO | None = sys.stdin
    if stream is None:
        raise InvalidArgument(option=option, reason="there is no standard input to read")
    try:
        text = stream.read(_LONGEST_STDIN + 1)
    except UnicodeDecodeError:
        raise InvalidArgument(option=option, reason="standard input is not UTF-8 text") from None
    if len(text) > _LONGEST_STDIN:
        raise InvalidArgument(option=option, reason="standard input is too long for one value")
    line = text.removesuffix("\n").removesuffix("\r")
    if "\n" in line or "\r" in line:
        reason = "standard input holds more than one line; give the value alone, on one line"
        raise InvalidArgument(option=option, reason=reason)
    if not line.strip():
        raise InvalidArgument(option=option, reason="standard input is empty")
    return line


def _secret(
    args: argparse.Namespace, option: str, variable: str | None, *, required: bool
) -> str | None:
    """The value of ``option``: as given, from standard input for ``-``, else from ``variable``."""
    dest = option.removeprefix("--").replace("-", "_")
    value: str | None = getattr(args, dest)
    if value == _STDIN:
        return _stdin_line(option)
    if value is None and variable is not None:
        value = os.environ.get(variable) or None  # empty counts as unset
    if value is None and required:
        ways = f"{option} VALUE, {option} - to read it from standard input, or ${variable}"
        raise UsageError(detail=f"{option} is needed: give {ways}", prog=f"{PROG} {args.command}")
    return value


def _read_secrets(args: argparse.Namespace) -> None:
    """Put in ``args`` the values given as ``-`` and those left to environment variables.

    Only one option may read standard input, so that none takes another's value; it is refused
    before anything is read.
    """
    readers = _stdin_readers(args)
    if len(readers) > 1:
        reason = (
            "only one option can read standard input ('-') at a time; give the others in"
            f" {ENV_ID}, {ENV_CODE} or {ENV_RECIPIENT_ID}"
        )
        raise InvalidArgument(option=", ".join(readers), reason=reason)
    if getattr(args, "storage", None) == _STDIN:
        # TELECARD_AUTH_STORAGE is read where the storage is chosen (_settings).
        args.storage = _stdin_line("--storage")
    if hasattr(args, "id"):
        args.id = _secret(args, "--id", ENV_ID, required=True)
    if hasattr(args, "code"):
        args.code = _secret(args, "--code", ENV_CODE, required=True)
    if hasattr(args, "recipient_id"):
        # The variable names the recipient of --recipient-kind; it never makes a code a transfer.
        variable = ENV_RECIPIENT_ID if args.recipient_kind is not None else None
        args.recipient_id = _secret(args, "--recipient-id", variable, required=False)


# --- output --------------------------------------------------------------------------------------


@attrs.frozen
class _Text:
    """One thing said in English and in Arabic."""

    en: str
    ar: str

    def get(self, lang: str) -> str:
        return self.ar if lang == "ar" else self.en


_Line: TypeAlias = str | _Text | tuple[_Text, str | _Text]


@attrs.frozen(kw_only=True)
class _Outcome:
    """A command's result: ``data`` for ``--json``, ``lines`` for people, the exit status."""

    data: dict[str, Any]
    lines: list[_Line]
    status: int = 0


def _render(lines: Sequence[_Line], lang: str) -> list[str]:
    width = max((len(line[0].en) for line in lines if isinstance(line, tuple)), default=0)
    shown: list[str] = []
    for line in lines:
        if isinstance(line, str):
            shown.append(line)
        elif isinstance(line, _Text):
            shown.append(line.get(lang))
        else:
            label, value = line
            text = value if isinstance(value, str) else value.get(lang)
            if lang == "ar":
                shown.append(f"{label.ar}: {text}")
            else:
                shown.append(f"{(label.en + ':').ljust(width + 1)} {text}")
    return shown


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _report_error(error: TelecardAuthError, *, lang: str, as_json: bool) -> None:
    message = _one_line(error.message(lang))
    if as_json:
        print(json.dumps({"error": {"code": error.code, "message": message}}, ensure_ascii=False))
    else:
        label = "خطأ" if lang == "ar" else "error"
        print(f"{label} [{error.code}]: {message}", file=sys.stderr)


def _report(outcome: _Outcome, *, lang: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.data, ensure_ascii=False))
    else:
        for line in _render(outcome.lines, lang):
            print(line)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_json(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


# Labels used by several commands.
_CODE = _Text("code", "الرمز")
_CODE_ID = _Text("code id", "معرّف الرمز")
_PROVIDER = _Text("provider", "مزود الخدمة")
_SERVICE = _Text("service", "الخدمة")
_ISSUED_AT = _Text("issued at", "وقت الإصدار")
_VALID_UNTIL = _Text("valid until", "صالح حتى")
_REDEEMED_AT = _Text("used at", "وقت الاستخدام")
_CUSTOMER_REF = _Text("customer pseudonym", "الاسم المستعار للعميل")
_SIGNING_KEY = _Text("signing key", "مفتاح التوقيع")
_RECEIPT = _Text("receipt", "الإيصال")
_PUBLIC_KEY = _Text("public receipt key", "مفتاح الإيصالات العام")
_STORAGE = _Text("storage", "التخزين")
_KEY_FILE = _Text("key file", "ملف المفاتيح")
_ANY_SERVICE = _Text(
    "any (the agent chooses when using it)", "أي خدمة (يختارها الموظف عند الاستخدام)"
)

_STATES = {
    CodeState.ACTIVE: _Text("active", "صالح"),
    CodeState.REDEEMED: _Text("redeemed", "مُستخدم"),
    CodeState.REVOKED: _Text("revoked (cancelled by its owner)", "ملغى (ألغاه صاحبه)"),
    CodeState.LOCKED: _Text("locked (too many wrong attempts)", "مقفل (محاولات خاطئة كثيرة)"),
    CodeState.SUPERSEDED: _Text(
        "superseded (a newer code replaced it)", "مستبدل (حلّ محله رمز أحدث)"
    ),
    CodeState.EXPIRED: _Text("expired", "منتهي الصلاحية"),
}


def _named(thing: Provider | Service) -> _Text:
    return _Text(f"{thing.name_en} [{thing.id}]", f"{thing.name_ar} [{thing.id}]")


def _provider_named(issuer: CodeIssuer, provider_id: str) -> _Text:
    try:
        return _named(issuer.policy.provider(provider_id))
    except TelecardAuthError:
        return _Text(provider_id, provider_id)


def _service_named(issuer: CodeIssuer, service_id: str | None) -> _Text:
    if service_id is None:
        return _Text("-", "-")
    try:
        return _named(issuer.policy.service(service_id))
    except TelecardAuthError:
        return _Text(service_id, service_id)


# --- commands ------------------------------------------------------------------------------------

_Command: TypeAlias = Callable[[argparse.Namespace, _Settings], _Outcome]


def _subject(kind: str, identifier: str) -> Subject:
    return Subject(kind=SubjectKind(kind), identifier=identifier)


def _recipient(args: argparse.Namespace) -> Subject | None:
    kind, identifier = args.recipient_kind, args.recipient_id
    if kind is None and identifier is None:
        return None
    if kind is None or identifier is None:
        raise InvalidArgument(
            option="--recipient-kind/--recipient-id", reason="give both options, or neither"
        )
    return _subject(kind, identifier)


def _init(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    path = settings.keys_path
    replaced = path.exists() or path.is_symlink()
    if replaced and not args.force:
        raise KeyFileExists(path=str(path))
    _refuse_unsafe_place(path)  # nothing is made for a key file that could not be written
    # The storage first: if it cannot be made, no key file is left behind to refuse a retry.
    with settings.storage(create=True):
        pass
    keys = KeyFile.generate(datetime.now(UTC))
    write_key_file(path, keys)
    public = keys.signer.current.public_key.to_text()
    lines: list[_Line] = [
        (_KEY_FILE, _Text(f"{path} (yours alone: mode 0600)", f"{path} (لك وحدك: الصلاحيات 0600)")),
        (
            _STORAGE,
            _Text(f"{settings.storage_label()} (ready)", f"{settings.storage_label()} (جاهز)"),
        ),
        (_PUBLIC_KEY, public),
    ]
    if replaced:
        lines.append(
            _Text(
                "The old key file was replaced: codes issued with it can no longer be redeemed.",
                "استُبدل ملف المفاتيح القديم: لم يعد ممكنًا استخدام الرموز الصادرة به.",
            )
        )
    lines.append(
        _Text(
            f"Next: {PROG} issue --kind citizen --id 1000000008 --provider stc",
            f"التالي: {PROG} issue --kind citizen --id 1000000008 --provider stc",
        )
    )
    data = {
        "key_file": str(path),
        "storage": settings.storage_label(),
        "hmac_key_id": keys.keyring.current.key_id,
        "signing_key_id": keys.signer.current.key_id,
        "public_key": public,
        "replaced": replaced,
    }
    return _Outcome(data=data, lines=lines)


def _migrate(_args: argparse.Namespace, settings: _Settings) -> _Outcome:
    with settings.storage(create=True):
        pass
    label = settings.storage_label()
    return _Outcome(
        data={"storage": label},
        lines=[(_STORAGE, _Text(f"{label} (ready)", f"{label} (جاهز)"))],
    )


def _issue(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    subject = _subject(args.kind, args.id)
    recipient = _recipient(args)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        issued = issuer.issue(
            subject, args.provider, service=args.service, msisdn=args.msisdn, recipient=recipient
        )
    lines: list[_Line] = [
        (_CODE, issued.display),
        (_CODE_ID, issued.code_id),
        (_PROVIDER, _named(issued.provider)),
        (_SERVICE, _ANY_SERVICE if issued.service is None else _named(issued.service)),
        (_ISSUED_AT, _when(issued.issued_at)),
        (_VALID_UNTIL, _when(issued.expires_at)),
    ]
    if issued.superseded_code_ids:
        replaced = ", ".join(issued.superseded_code_ids)
        lines.append((_Text("replaced", "حلّ محل"), replaced))
    data = {
        "code": issued.code,
        "display": issued.display,
        "code_id": issued.code_id,
        "provider": issued.provider.id,
        "service": None if issued.service is None else issued.service.id,
        "issued_at": _iso(issued.issued_at),
        "expires_at": _iso(issued.expires_at),
        "superseded_code_ids": list(issued.superseded_code_ids),
    }
    return _Outcome(data=data, lines=lines)


def _redeem(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    subject = _subject(args.kind, args.id)
    recipient = _recipient(args)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        redemption = issuer.redeem(
            subject,
            args.provider,
            args.code,
            args.service,
            msisdn=args.msisdn,
            recipient=recipient,
            request_id=args.request_id,
            reference=args.reference,
        )
    receipt = redemption.receipt
    text = None if receipt is None else receipt.to_text()
    lines: list[_Line] = [
        _Text(
            f"Accepted: the code is used, once, for {redemption.service.name_en}.",
            f"قُبل الرمز واستُخدم مرة واحدة لخدمة: {redemption.service.name_ar}.",
        ),
        (_CODE_ID, redemption.code_id),
        (_PROVIDER, _named(redemption.provider)),
        (_SERVICE, _named(redemption.service)),
        (_ISSUED_AT, _when(redemption.issued_at)),
        (_REDEEMED_AT, _when(redemption.redeemed_at)),
        (_CUSTOMER_REF, redemption.customer_ref),
    ]
    if receipt is not None and text is not None:
        lines += [(_SIGNING_KEY, receipt.key_id), (_RECEIPT, text)]
    data = {
        "code_id": redemption.code_id,
        "customer_ref": redemption.customer_ref,
        "provider": redemption.provider.id,
        "service": redemption.service.id,
        "issued_at": _iso(redemption.issued_at),
        "redeemed_at": _iso(redemption.redeemed_at),
        "receipt": text,
        "receipt_key_id": None if receipt is None else receipt.key_id,
    }
    return _Outcome(data=data, lines=lines)


def _status_outcome(issuer: CodeIssuer, status: CodeStatus) -> _Outcome:
    attempts = _Text(
        f"{status.failed_attempts} wrong, {status.attempts_left} left",
        f"{status.failed_attempts} خاطئة، والمتبقي {status.attempts_left}",
    )
    lines: list[_Line] = [
        (_CODE_ID, status.code_id),
        (_Text("state", "الحالة"), _STATES[status.state]),
        (_PROVIDER, _provider_named(issuer, status.provider_id)),
        (
            _Text("bound to service", "الخدمة المحددة"),
            _ANY_SERVICE
            if status.service_id is None
            else _service_named(issuer, status.service_id),
        ),
        (_ISSUED_AT, _when(status.issued_at)),
        (_VALID_UNTIL, _when(status.expires_at)),
        (_Text("attempts", "المحاولات"), attempts),
        (_Text("finished at", "وقت الانتهاء"), _when(status.finished_at)),
        (_Text("used for", "استُخدم لخدمة"), _service_named(issuer, status.redeemed_service_id)),
    ]
    data = {
        "code_id": status.code_id,
        "state": status.state.value,
        "provider": status.provider_id,
        "service": status.service_id,
        "issued_at": _iso(status.issued_at),
        "expires_at": _iso(status.expires_at),
        "failed_attempts": status.failed_attempts,
        "attempts_left": status.attempts_left,
        "finished_at": _when_json(status.finished_at),
        "redeemed_service": status.redeemed_service_id,
    }
    return _Outcome(data=data, lines=lines)


def _status(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    subject = _subject(args.kind, args.id)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        return _status_outcome(issuer, issuer.status(subject, args.code_id))


def _revoke(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    subject = _subject(args.kind, args.id)
    keys = settings.keys()
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, signer=keys.signer)
        return _status_outcome(issuer, issuer.revoke(subject, args.code_id))


def _purge(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    with settings.storage() as storage:
        # Purging reads only the records' own deadlines: any keyring will do, so no key file is
        # needed (a cleanup job can run where the keys are not).
        issuer = CodeIssuer(storage, keyring=Keyring.generate())
        deleted = batches = 0
        while True:
            batch = issuer.purge(args.batch_size)
            deleted += batch
            batches += 1
            if args.once or batch < args.batch_size:
                break
    return _Outcome(
        data={"deleted": deleted, "batches": batches},
        lines=[
            _Text(
                f"Deleted the records of {deleted} customer(s) whose codes no longer matter"
                f" ({batches} batch(es)).",
                f"حُذفت سجلات {deleted} من العملاء لم تعد رموزهم مهمة ({batches} دفعة).",
            )
        ],
    )


def _keys_rotate(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    if args.pseudonym:
        if args.hmac or args.signing:
            raise UsageError(
                detail="--pseudonym is a step of its own: rotate --hmac or --signing apart",
                prog=f"{PROG} keys rotate",
            )
        return _pseudonym_step(settings)
    both = not args.hmac and not args.signing
    current = settings.keys()
    rotated = current.rotated(
        datetime.now(UTC), hmac=both or args.hmac, signing=both or args.signing
    )
    write_key_file(settings.keys_path, rotated)
    new_hmac = rotated.keyring.current.key_id if rotated.keyring != current.keyring else None
    new_signing = rotated.signer.current.key_id if rotated.signer != current.signer else None
    public = rotated.signer.current.public_key.to_text()
    lines: list[_Line] = []
    if new_hmac is not None:
        lines.append((_Text("new HMAC key", "مفتاح HMAC الجديد"), new_hmac))
    if new_signing is not None:
        lines.append(
            (_Text("new receipt signing key", "مفتاح توقيع الإيصالات الجديد"), new_signing)
        )
        lines.append((_PUBLIC_KEY, public))
        lines.append(
            _Text(
                "Give the operators the new public receipt key; the old ones still verify old"
                " receipts.",
                "سلّم المشغلين مفتاح الإيصالات العام الجديد؛ وتبقى المفاتيح القديمة صالحة للتحقق"
                " من الإيصالات القديمة.",
            )
        )
    lines.append(
        _Text(
            "No key was removed: codes issued before the rotation can still be redeemed.",
            "لم يُحذف أي مفتاح: الرموز الصادرة قبل التدوير ما زالت صالحة للاستخدام.",
        )
    )
    data = {
        "hmac_key_id": new_hmac,
        "signing_key_id": new_signing,
        "public_key": public if new_signing is not None else None,
        "hmac_key_ids": [key.key_id for key in rotated.keyring.keys],
        "signing_key_ids": [key.key_id for key in rotated.signer.keys],
    }
    return _Outcome(data=data, lines=lines)


def _pseudonym_step(settings: _Settings) -> _Outcome:
    current = settings.keys()
    ring = current.keyring
    if len(ring.pseudonym_keys) == 2 and not ring.pseudonym_standby:  # noqa: PLR2004
        raise InvalidArgument(
            option="--pseudonym",
            reason="the newer pseudonym key is current already; run 'keys move' next",
        )
    stepped = current.with_pseudonym_step()
    write_key_file(settings.keys_path, stepped)
    new = stepped.keyring.newest_pseudonym_key_id
    if stepped.keyring.pseudonym_standby:
        line = _Text(
            f"Added pseudonym key {new} in standby. Copy the key file to every node, then run"
            " 'keys rotate --pseudonym' again to make it current.",
            f"أُضيف مفتاح الأسماء المستعارة {new} احتياطيًا. انسخ ملف المفاتيح إلى كل العُقد، ثم"
            " نفّذ 'keys rotate --pseudonym' مرة أخرى لاعتماده.",
        )
    else:
        line = _Text(
            f"Pseudonym key {new} is current: new customers are filed under it. Copy the key file"
            " to every node, then run 'keys move'.",
            f"أصبح مفتاح الأسماء المستعارة {new} معتمدًا: يُحفظ العملاء الجدد به. انسخ ملف"
            " المفاتيح إلى كل العُقد، ثم نفّذ 'keys move'.",
        )
    data = {
        "pseudonym_key_ids": [key.key_id for key in stepped.keyring.pseudonym_keys],
        "standby": stepped.keyring.pseudonym_standby,
    }
    return _Outcome(data=data, lines=[line])


def _keys_move(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    keys = settings.keys()
    ring = keys.keyring
    if len(ring.pseudonym_keys) == 1:
        raise NoRotation()
    older = ring.pseudonym_keys[0].key_id
    moved = scanned = 0
    with settings.storage() as storage:
        issuer = CodeIssuer(storage, keyring=ring, signer=keys.signer)
        while True:
            progress = issuer.move_subjects(args.batch_size)
            moved += progress.moved
            scanned += progress.scanned
            if progress.done:
                break
    write_key_file(
        settings.keys_path, attrs.evolve(keys, keyring=ring.without_pseudonym_key(older))
    )
    data = {"moved": moved, "scanned": scanned, "retired": older}
    line = _Text(
        f"Moved {moved} customer(s) to the new pseudonym key ({scanned} looked at) and retired"
        f" {older}. Copy the key file to every node.",
        f"نُقل {moved} من العملاء إلى مفتاح الأسماء المستعارة الجديد (فُحص {scanned}) وأُلغي"
        f" المفتاح {older}. انسخ ملف المفاتيح إلى كل العُقد.",
    )
    return _Outcome(data=data, lines=[line])


def _keys_public(_args: argparse.Namespace, settings: _Settings) -> _Outcome:
    public = [key.to_text() for key in settings.keys().signer.verify_keys()]
    # Bare lines, oldest first, whatever the language: made to be saved to a file for operators.
    return _Outcome(data={"public_keys": public, "current": public[-1]}, lines=list(public))


def _public_keys(args: argparse.Namespace) -> list[VerifyKey]:
    lines = [("--public-key", line) for line in args.public_key]
    for name in args.public_key_file:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "it cannot be read as text"
            raise InvalidArgument(option="--public-key-file", reason=reason) from None
        lines += [
            ("--public-key-file", line)
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    keys: list[VerifyKey] = []
    for option, line in lines:
        try:
            keys.append(VerifyKey.from_text(line))
        except KeyringError as error:
            reason = str(error.details.get("reason", "not a public key line"))
            raise InvalidArgument(option=option, reason=reason) from None
    return keys


def _receipt_verify(args: argparse.Namespace, settings: _Settings) -> _Outcome:
    text = sys.stdin.read() if args.receipt == "-" else args.receipt
    if args.public_key or args.public_key_file:
        keys = _public_keys(args)
    else:
        keys = list(settings.keys().signer.verify_keys())
    receipt: Receipt = verify_receipt(text.strip(), keys)
    lines: list[_Line] = [
        _Text(
            "Authentic: the receipt was signed by the issuer and not changed since.",
            "الإيصال موثوق: وقّعه المُصدِر ولم يُعدَّل بعد توقيعه.",
        ),
        (_CODE_ID, receipt.code_id),
        (_PROVIDER, receipt.provider_id),
        (_SERVICE, receipt.service_id),
        (_REDEEMED_AT, _when(receipt.redeemed_at)),
        (_CUSTOMER_REF, receipt.customer_ref),
        (_SIGNING_KEY, receipt.key_id),
    ]
    data = {
        "verified": True,
        "code_id": receipt.code_id,
        "provider": receipt.provider_id,
        "service": receipt.service_id,
        "redeemed_at": _iso(receipt.redeemed_at),
        "customer_ref": receipt.customer_ref,
        "key_id": receipt.key_id,
        "version": receipt.version,
    }
    return _Outcome(data=data, lines=lines)


def _demo(_args: argparse.Namespace, settings: _Settings) -> _Outcome:
    # Only an explicit --storage counts: TELECARD_AUTH_STORAGE names real data, not a playground.
    url = settings.explicit_storage
    if url is None:
        # The default database belongs to the demo alone: each walk starts from an empty file.
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_DATABASE + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{DEMO_DATABASE}"
    storage = storage_from_url(url)
    transcript: list[str] = []
    with storage:
        storage.migrate()
        status = run_demo(storage, transcript.append if settings.json else print)
    data = {"ok": status == 0, "transcript": transcript}
    # Without --json the walk printed itself as it went.
    return _Outcome(data=data, lines=[], status=status)


# --- the parser ----------------------------------------------------------------------------------

#: Examples per command, shown in its --help; tests check that each one parses.
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "init": (
        ("make the key file and the SQLite database in ./.telecard-auth", f"{PROG} init"),
        (
            "the same, with codes in PostgreSQL",
            f"{PROG} --storage postgresql://telecard@db.example/telecard init",
        ),
    ),
    "migrate": (
        (
            "create or upgrade the schema of another storage",
            f"{PROG} --storage postgresql://telecard@db.example/telecard migrate",
        ),
    ),
    "issue": (
        (
            "a code for a citizen, for STC",
            f"{PROG} issue --kind citizen --id 1000000008 --provider stc",
        ),
        (
            "the identity number may be typed in Arabic-Indic digits",
            f"{PROG} issue --kind citizen --id ١٠٠٠٠٠٠٠٠٨ --provider mobily --service new_line",
        ),
    ),
    "redeem": (
        (
            "the STC agent uses the code for a new line",
            f"{PROG} redeem --kind citizen --id 1000000008 --provider stc"
            " --service new_line --code '4821 0937' --request-id counter-7-visit-1",
        ),
    ),
    "status": (
        (
            "the state of one code",
            f"{PROG} status --kind citizen --id 1000000008 --code-id q3Vx0bLk9TzA2mNc",
        ),
    ),
    "revoke": (
        (
            "the customer cancels a code",
            f"{PROG} revoke --kind citizen --id 1000000008 --code-id q3Vx0bLk9TzA2mNc",
        ),
    ),
    "purge": (
        ("delete every finished record, in batches of 1000", f"{PROG} purge"),
        ("one batch of 100 only (for a cron job)", f"{PROG} purge --batch-size 100 --once"),
    ),
    "keys rotate": (
        ("a new HMAC key and a new receipt signing key", f"{PROG} keys rotate"),
        ("a new receipt signing key only", f"{PROG} keys rotate --signing"),
        ("the next step of a pseudonym key rotation", f"{PROG} keys rotate --pseudonym"),
    ),
    "keys public": (("the public receipt key lines to give operators", f"{PROG} keys public"),),
    "keys move": (("move every customer to the new pseudonym key", f"{PROG} keys move"),),
    "receipt verify": (
        (
            "check a receipt with the operator's copy of the public key",
            f"{PROG} receipt verify tar1.eyJjb2RlX2lkIjoi... --public-key tar1-public:r1:A6EHv...",
        ),
        ("check a receipt with the keys in the key file", f"{PROG} receipt verify tar1.eyJj..."),
    ),
    "demo": (
        ("walk through the rules, end to end, on SQLite", f"{PROG} demo"),
        ("the same walk on Redis", f"{PROG} demo --storage redis://localhost:6379/0"),
    ),
}

_EXIT_TABLE = """\
exit status:
  0  success
  1  unexpected failure (--debug shows where)
  2  usage or invalid input (unknown command or option, bad ID, malformed code or receipt)
  3  not permitted (not eligible, service not allowed, live-code limit)
  4  redemption refused (wrong, expired, used, revoked, locked, superseded code, ...)
  5  unknown code id
  6  configuration (no or unreadable key file, no database, bad storage URL, missing extra)
  7  storage failure
  8  receipt not authentic (altered, or signed with another key)"""

_FILES = f"""\
files and environment:
  {ENV_HOME:<26}  home directory (default: ./{DEFAULT_HOME})
  {ENV_KEYS:<26}  key file (default: $TELECARD_AUTH_HOME/{KEY_FILE_NAME});
  {"":<26}  --keys overrides
  {ENV_STORAGE:<26}  storage URL (default: $TELECARD_AUTH_HOME/{DATABASE_NAME});
  {"":<26}  --storage overrides
  {ENV_LANG:<26}  en or ar: the default of --lang
  {ENV_ID:<26}  the customer's ID, when --id is not given
  {ENV_CODE:<26}  the code, when --code is not given
  {ENV_RECIPIENT_ID:<26}  the recipient's ID, when --recipient-kind is given and
  {"":<26}  --recipient-id is not

keeping secrets off the command line:
  Every local user can read a command line (ps) and the shell keeps it in its history. Give a
  code, an ID or a storage URL with a password in the variables above, or as - to read it from
  standard input (one option at a time), e.g.
    read -rs CODE && printf '%s\\n' "$CODE" | {PROG} redeem ... --code -"""


def _epilog(name: str) -> str:
    lines = ["examples:" if len(EXAMPLES[name]) > 1 else "example:"]
    for comment, command in EXAMPLES[name]:
        lines += [f"  # {comment}", f"  $ {command}"]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises its complaints instead of printing them and exiting."""

    def error(self, message: str) -> NoReturn:
        unknown = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if unknown is not None:
            raise UnknownCommand(command=clip(unknown.group(1)), prog=self.prog)
        raise UsageError(detail=_one_line(message), prog=self.prog)


def _positive(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1, not {clip(text)!r}"
        )
    return value


def _common_options() -> _Parser:
    # Accepted before and after the command. SUPPRESS keeps a subcommand from resetting a value
    # given before it.
    common = _Parser(add_help=False, allow_abbrev=False)
    group = common.add_argument_group("common options")
    hidden = argparse.SUPPRESS
    group.add_argument(
        "--storage",
        metavar="URL",
        default=hidden,
        help="where codes are kept: sqlite:///path.db, postgresql://..., redis://...; - reads it"
        " from standard input, keeping a password out of the process list (default:"
        f" ${ENV_STORAGE}, else $TELECARD_AUTH_HOME/{DATABASE_NAME})",
    )
    group.add_argument(
        "--keys",
        metavar="PATH",
        default=hidden,
        help=f"the key file (default: ${ENV_KEYS}, else $TELECARD_AUTH_HOME/{KEY_FILE_NAME})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=hidden,
        help='print one JSON object on stdout, the result or {"error": {...}}',
    )
    group.add_argument(
        "--lang",
        choices=("en", "ar"),
        default=hidden,
        help=f"language of messages: en (English) or ar (Arabic) (default: ${ENV_LANG}, else en)",
    )
    group.add_argument(
        "--debug", action="store_true", default=hidden, help="on a failure, show the traceback too"
    )
    return common


def _subject_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        required=True,
        choices=[kind.value for kind in SubjectKind],
        help="the kind of customer",
    )
    parser.add_argument(
        "--id",
        metavar="ID",
        help="national ID (citizen, 1...), Iqama (resident, 2...), unified number (company, 7...)"
        " or government identifier; ASCII or Arabic-Indic digits; - reads it from standard input;"
        f" required unless ${ENV_ID} is set",
    )


def _binding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--msisdn", metavar="NUMBER", help="the Saudi mobile number, e.g. 0551234567"
    )
    parser.add_argument(
        "--recipient-kind",
        choices=[kind.value for kind in SubjectKind],
        help="for a number transfer: the kind of the person receiving the number",
    )
    parser.add_argument(
        "--recipient-id",
        metavar="ID",
        help="for a number transfer: that person's identifier; - reads it from standard input;"
        f" given --recipient-kind alone, ${ENV_RECIPIENT_ID} is used",
    )


_PROVIDERS = ", ".join(provider.id for provider in SAUDI_PROVIDERS)
_SERVICES = ", ".join(service.id for service in DEFAULT_SERVICES)


def build_parser() -> argparse.ArgumentParser:
    """The command line parser: common options, then one subcommand (``keys`` and ``receipt``
    have their own)."""
    common = _common_options()
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description=(
            "Issue and redeem Saudi SIM authentication codes.\n"
            "إصدار رموز توثيق بطاقات الاتصال واستخدامها.\n\n"
            f"Start with `{PROG} demo`, then `{PROG} init`. Reference: docs/cli.md."
        ),
        epilog=f"{_EXIT_TABLE}\n\n{_FILES}",
        formatter_class=formatter,
        parents=[common],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    def command(
        name: str, handler: _Command | None, summary: str, description: str, *, under: Any = None
    ) -> argparse.ArgumentParser:
        group = commands if under is None else under
        prog_name = name.rsplit(maxsplit=1)[-1]
        sub: argparse.ArgumentParser = group.add_parser(
            prog_name,
            parents=[common],
            help=summary,
            description=textwrap.fill(description, width=79),
            epilog=_epilog(name) if name in EXAMPLES else None,
            formatter_class=formatter,
            allow_abbrev=False,
        )
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    init = command(
        "init",
        _init,
        "make the key file and the database / إنشاء ملف المفاتيح وقاعدة البيانات",
        "Make the key file (HMAC key k1, pseudonym key p1, receipt signing key r1; mode 0600 in"
        " a 0700 directory) and create the storage's schema. Refuses to replace a key file.",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing key file (codes issued with the old keys become unusable)",
    )
    command(
        "migrate",
        _migrate,
        "create or upgrade the storage schema / إنشاء مخطط التخزين أو ترقيته",
        "Create or upgrade the storage's schema; safe to run again. init does this too; use it"
        " for a new storage with existing keys, or after an upgrade.",
    )

    issue = command(
        "issue",
        _issue,
        "issue a code to a customer for one provider / إصدار رمز لعميل لدى مزود واحد",
        "Issue a code to an authenticated customer for one provider. Prints the code (show it to"
        " the customer once: only its digest is stored), its id and when it expires.",
    )
    _subject_options(issue)
    issue.add_argument("--provider", required=True, help=f"the provider: {_PROVIDERS}")
    issue.add_argument(
        "--service", help=f"bind the code to one service: {_SERVICES} (default: any)"
    )
    _binding_options(issue)

    redeem = command(
        "redeem",
        _redeem,
        "use a code, once, for a service / استخدام رمز مرة واحدة لخدمة",
        "Use a code, once, for one service, at the provider it was issued for. Prints the"
        " redemption and its signed receipt. The code may be typed with spaces, hyphens or"
        " Arabic-Indic digits.",
    )
    _subject_options(redeem)
    redeem.add_argument("--provider", required=True, help=f"the provider: {_PROVIDERS}")
    redeem.add_argument(
        "--code",
        help="the code as the customer gave it; - reads it from standard input; required unless"
        f" ${ENV_CODE} is set",
    )
    redeem.add_argument("--service", required=True, help=f"the service: {_SERVICES}")
    _binding_options(redeem)
    redeem.add_argument(
        "--request-id",
        metavar="ID",
        help="1-64 printable ASCII characters naming this attempt: repeating it with the same"
        " inputs returns the same redemption and receipt instead of 'already used'",
    )
    redeem.add_argument(
        "--reference",
        metavar="REF",
        help="1-64 printable ASCII characters naming the agent or branch: recorded in the audit"
        " events, never stored",
    )

    for name, handler, summary, description in (
        (
            "status",
            _status,
            "show the state of a code / عرض حالة رمز",
            "Show the state of one of a customer's codes.",
        ),
        (
            "revoke",
            _revoke,
            "cancel a code / إلغاء رمز",
            "Cancel one of a customer's live codes; prints its state afterwards.",
        ),
    ):
        lookup = command(name, handler, summary, description)
        _subject_options(lookup)
        lookup.add_argument(
            "--code-id", required=True, metavar="CODE_ID", help="the code id that issue printed"
        )

    purge = command(
        "purge",
        _purge,
        "delete records that no longer matter / حذف السجلات المنتهية",
        "Delete the records of customers whose codes have all expired and passed the retention"
        " period. Runs batches until one comes back short (or one batch with --once). Needs no"
        " key file.",
    )
    purge.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help="customers per batch (default: 1000)",
    )
    purge.add_argument("--once", action="store_true", help="run one batch only")

    keys = command(
        "keys",
        None,
        "rotate keys, print public keys / تدوير المفاتيح وعرض المفاتيح العامة",
        "Manage the key file.",
    )
    keys_commands = keys.add_subparsers(
        dest="keys_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    rotate = command(
        "keys rotate",
        _keys_rotate,
        "add a new current key (both kinds unless one is named)",
        "Add a new HMAC key and/or receipt signing key; the new one becomes current. No key is"
        " removed, so live codes keep working and old receipts keep verifying. Prints the new key"
        " ids and the new public receipt key line.",
        under=keys_commands,
    )
    rotate.add_argument("--hmac", action="store_true", help="add a new HMAC key")
    rotate.add_argument("--signing", action="store_true", help="add a new receipt signing key")
    rotate.add_argument(
        "--pseudonym",
        action="store_true",
        help="the next step of a pseudonym key rotation: add a new key in standby, then (run"
        " again once every node has it) make it current",
    )
    move = command(
        "keys move",
        _keys_move,
        "move every customer to the new pseudonym key, then retire the old one",
        "Once the new pseudonym key is current on every node, move every customer still filed"
        " under the older key, in batches, while the service runs; then remove the older key"
        " from the key file.",
        under=keys_commands,
    )
    move.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help="customers per batch (default: 1000)",
    )
    command(
        "keys public",
        _keys_public,
        "print the public receipt key lines for operators",
        "Print the public receipt key lines, oldest first, one per line: operators verify"
        " receipts with them (receipt verify --public-key-file).",
        under=keys_commands,
    )

    receipt = command(
        "receipt",
        None,
        "verify a redemption receipt / التحقق من إيصال استخدام",
        "Work with redemption receipts.",
    )
    receipt_commands = receipt.add_subparsers(
        dest="receipt_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    verify = command(
        "receipt verify",
        _receipt_verify,
        "check that a receipt is authentic",
        "Check a receipt's signature and print its fields. Uses the public keys given, or else"
        " the key file's.",
        under=receipt_commands,
    )
    verify.add_argument(
        "receipt", metavar="RECEIPT", help="the receipt text (tar1....), or - for stdin"
    )
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="LINE",
        help="a public receipt key line, tar1-public:<id>:...; may be repeated",
    )
    verify.add_argument(
        "--public-key-file",
        action="append",
        default=[],
        metavar="FILE",
        help="a file of public receipt key lines (as keys public prints); may be repeated",
    )

    command(
        "demo",
        _demo,
        "walk through the rules, end to end / عرض توضيحي من البداية إلى النهاية",
        f"Walk through issuing and redeeming codes with throwaway keys and a manual clock. The"
        f" storage is --storage, or the SQLite file {DEMO_DATABASE}, started afresh on each run"
        f" ({ENV_STORAGE} is ignored: the demo never writes into real data).",
    )
    return parser


# --- main --------------------------------------------------------------------------------------

# Code ids are URL-safe base64 and may begin with '-', which argparse takes for an option.
_ID_OPTIONS = frozenset(("--code-id", "--request-id"))
_OPTION_SHAPE = re.compile(r"-[a-zA-Z]|--[a-z]+(?:-[a-z]+)*(?:=.*)?", re.DOTALL)


def _glue(arguments: Sequence[str]) -> list[str]:
    """Write ``--code-id -Abc`` as ``--code-id=-Abc`` so that an id may start with '-'."""
    glued: list[str] = []
    index = 0
    while index < len(arguments):
        token = arguments[index]
        following = arguments[index + 1] if index + 1 < len(arguments) else None
        if (
            token in _ID_OPTIONS
            and following is not None
            and following.startswith("-")
            and not _OPTION_SHAPE.fullmatch(following)
        ):
            glued.append(f"{token}={following}")
            index += 2
        else:
            glued.append(token)
            index += 1
    return glued


def _early_settings(arguments: Sequence[str]) -> tuple[str, bool, bool]:
    """Language, --json and --debug as the raw arguments give them, for failures before parsing."""
    lang: str | None = None
    for index, word in enumerate(arguments):
        value = word.partition("=")[2] if word.startswith("--lang=") else None
        if word == "--lang" and index + 1 < len(arguments):
            value = arguments[index + 1]
        if value in ("en", "ar"):
            lang = value
    if lang is None:
        lang = os.environ.get(ENV_LANG) if os.environ.get(ENV_LANG) in ("en", "ar") else "en"
    return lang or "en", "--json" in arguments, "--debug" in arguments


def _tolerant(stream: TextIO) -> None:
    # Arabic must not turn into a crash on a terminal that cannot show it.
    if isinstance(stream, io.TextIOWrapper) and (stream.encoding or "").lower() not in (
        "utf-8",
        "utf8",
    ):
        stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        _tolerant(stream)
    lang, as_json, debug = _early_settings(arguments)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(_glue(arguments))
        except SystemExit as done:  # --help and --version print, then exit
            return done.code if isinstance(done.code, int) else 0
        _read_secrets(args)
        settings = _settings(args)
        lang, as_json, debug = settings.lang, settings.json, settings.debug
        handler: _Command = args.handler
        outcome = handler(args, settings)
    except TelecardAuthError as error:
        if debug:
            traceback.print_exc()
        _report_error(error, lang=lang, as_json=as_json)
        return exit_status(error)
    except KeyboardInterrupt:
        _report_error(_Interrupted(), lang=lang, as_json=as_json)
        return _INTERRUPTED
    except Exception as error:
        if debug:
            traceback.print_exc()
        _report_error(_Unexpected(kind=type(error).__name__), lang=lang, as_json=as_json)
        return _UNEXPECTED
    _report(outcome, lang=lang, as_json=as_json)
    return outcome.status
