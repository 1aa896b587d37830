"""``telecard-auth``: issue, redeem and check SIM authentication codes from a shell.

The command keeps its files in one home directory (``TELECARD_AUTH_HOME``, default
``./.telecard-auth``): ``keys.json``, the key material, readable by its owner only, and
``codes.db``, the SQLite database. ``telecard-auth init`` makes both. Every other command finds
them there, unless ``--keys`` / ``TELECARD_AUTH_KEYS`` or ``--storage`` / ``TELECARD_AUTH_STORAGE``
say otherwise. The reference, with the exit statuses, is ``docs/cli.md``.

Every command answers with lines for people, one JSON object (``--json``), or one field of it
alone (``--print FIELD``), for a shell to capture: ``CODE=$(telecard-auth issue ... --print code)``.

Secrets stay off the command line, where every local user can read them in the process list:
``--code``, ``--id``, ``--recipient-id`` and ``--storage`` accept ``-`` to read the value from
standard input, and the first three fall back to ``TELECARD_AUTH_CODE``, ``TELECARD_AUTH_ID`` and
``TELECARD_AUTH_RECIPIENT_ID``.

Every failure ends in one line on stderr (or one JSON object on stdout with ``--json``) and an
exit status chosen by the error's family:

>>> from telecard_auth import CodeAlreadyUsed, MissingExtra, WrongCode
>>> missing = MissingExtra(feature="RedisStorage", extra="redis")
>>> exit_status(WrongCode()), exit_status(CodeAlreadyUsed()), exit_status(missing)
(4, 4, 6)
>>> exit_status(RuntimeError("anything unexpected"))
1

This module only re-exports. The command is written in modules that each read in one sitting:
``_errors`` (its own errors, the exit statuses), ``_settings`` (options, environment, secrets
from standard input), ``_output`` (texts in two languages, JSON, one field), ``_parser`` and
``_help`` (the command line), the commands (``_codes``: issue, redeem, status, revoke;
``_keys``; ``_receipts``; ``_admin``: init, migrate, purge; ``_demo``), and ``_main``, which
runs one of them. Key files are read and written by ``telecard_auth.keys``.
"""

from __future__ import annotations

from telecard_auth.cli._errors import (
    EXIT_STATUSES,
    DatabaseMissing,
    InvalidArgument,
    KeyFileExists,
    NoRotation,
    UnknownCommand,
    UnknownField,
    UsageError,
    exit_status,
)
from telecard_auth.cli._help import EXAMPLES
from telecard_auth.cli._main import main
from telecard_auth.cli._parser import build_parser
from telecard_auth.cli._settings import (
    DATABASE_NAME,
    DEFAULT_HOME,
    DEMO_DATABASE,
    ENV_CODE,
    ENV_HOME,
    ENV_ID,
    ENV_KEYS,
    ENV_LANG,
    ENV_RECIPIENT_ID,
    ENV_STORAGE,
    KEY_FILE_NAME,
    PROG,
    default_home,
)

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
    "KEY_FILE_NAME",
    "PROG",
    "DatabaseMissing",
    "InvalidArgument",
    "KeyFileExists",
    "NoRotation",
    "UnknownCommand",
    "UnknownField",
    "UsageError",
    "build_parser",
    "default_home",
    "exit_status",
    "main",
]

# Tracebacks, pickles and the docs name each class and function where users find it, as httpx
# does: telecard_auth.cli.KeyFileExists, not the private module it is written in.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type) or callable(_public):
        _public.__module__ = __name__
del _name, _public
