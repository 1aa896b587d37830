"""Settings and secrets: where the command's files are, and values kept off the command line.

The options, then the environment, then the defaults say where the key file and the storage are
and how to answer (``Settings``). A code, an identity number or a storage URL can come from
standard input (``-``) or from an environment variable instead of the command line, where every
local user could read it (``read_secrets``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import attrs

from telecard_auth._storage.protocol import StorageBackend
from telecard_auth._storage.sqlite import SQLiteStorage
from telecard_auth._storage.urls import storage_from_url
from telecard_auth.cli._errors import DatabaseMissing, InvalidArgument, InvalidSetting, UsageError
from telecard_auth.keys import KeySet, load_keys, make_private_directory

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
    "KEY_FILE_NAME",
    "PROG",
    "STDIN",
    "Settings",
    "default_home",
    "early_settings",
    "read_secrets",
    "settings_from",
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

# The value of an option that reads it from standard input instead.
STDIN = "-"
# One secret, typed or pasted: a storage URL is the longest of them.
_LONGEST_STDIN = 4096


def default_home() -> Path:
    """``$TELECARD_AUTH_HOME``, or ``./.telecard-auth``, as an absolute path."""
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser().absolute()


@attrs.frozen(kw_only=True)
class Settings:
    """What the options, the environment and the defaults say, for one run of the command."""

    home: Path
    keys_path: Path
    storage_url: str | None  # None: the SQLite database in the home directory
    explicit_storage: str | None  # --storage alone, for the demo
    lang: str
    json: bool
    debug: bool
    field: str | None = None  # --print FIELD

    @property
    def for_people(self) -> bool:
        """Whether the answer is lines for people, rather than JSON or one field of it."""
        return not self.json and self.field is None

    def keys(self) -> KeySet:
        return load_keys(self.keys_path)

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
                make_private_directory(self.home)
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


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of this run: the options in ``args``, else the environment, else defaults."""
    home = default_home()
    keys = getattr(args, "keys", None) or os.environ.get(ENV_KEYS) or home / KEY_FILE_NAME
    explicit = getattr(args, "storage", None)
    lang = getattr(args, "lang", None) or _lang_from_environment()
    return Settings(
        home=home,
        keys_path=Path(keys).expanduser().absolute(),
        storage_url=explicit or os.environ.get(ENV_STORAGE) or None,
        explicit_storage=explicit,
        lang=lang,
        json=bool(getattr(args, "json", False)),
        debug=bool(getattr(args, "debug", False)),
        field=getattr(args, "print", None),
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
    return [option for option, dest in named if getattr(args, dest, None) == STDIN]


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
    if value == STDIN:
        return _stdin_line(option)
    if value is None and variable is not None:
        value = os.environ.get(variable) or None  # empty counts as unset
    if value is None and required:
        ways = f"{option} VALUE, {option} - to read it from standard input, or ${variable}"
        raise UsageError(detail=f"{option} is needed: give {ways}", prog=f"{PROG} {args.command}")
    return value


def read_secrets(args: argparse.Namespace) -> None:
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
    if getattr(args, "storage", None) == STDIN:
        # TELECARD_AUTH_STORAGE is read where the storage is chosen (settings_from).
        args.storage = _stdin_line("--storage")
    if hasattr(args, "id"):
        args.id = _secret(args, "--id", ENV_ID, required=True)
    if hasattr(args, "code"):
        args.code = _secret(args, "--code", ENV_CODE, required=True)
    if hasattr(args, "recipient_id"):
        # The variable names the recipient of --recipient-kind; it never makes a code a transfer.
        variable = ENV_RECIPIENT_ID if args.recipient_kind is not None else None
        args.recipient_id = _secret(args, "--recipient-id", variable, required=False)


def early_settings(arguments: Sequence[str]) -> tuple[str, bool, bool]:
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
