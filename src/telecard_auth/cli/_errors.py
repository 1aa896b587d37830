"""The command's own errors, and the exit status each family of errors ends the command with.

Each error is a ``TelecardAuthError``, with a stable ``code``, a message in English and Arabic,
and an ``__init__`` that declares the fields its messages need. Each sits under the library family
that says what went wrong: the command line (``InvalidInput``, exit 2) or the files and settings
the command was given (``ConfigurationError``, exit 6).
"""

from __future__ import annotations

from telecard_auth._core.errors import (
    ConfigurationError,
    InvalidInput,
    NotPermitted,
    ReceiptNotVerified,
    RedemptionRefused,
    StorageError,
    TelecardAuthError,
    UnknownCode,
)

__all__ = [
    "EXIT_STATUSES",
    "INTERRUPTED",
    "UNEXPECTED",
    "DatabaseMissing",
    "Interrupted",
    "InvalidArgument",
    "InvalidSetting",
    "KeyFileExists",
    "NoRotation",
    "Unexpected",
    "UnknownCommand",
    "UnknownField",
    "UsageError",
    "exit_status",
]

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
UNEXPECTED = 1
INTERRUPTED = 130


def exit_status(error: BaseException) -> int:
    """The process exit status for ``error``: its family's (see ``EXIT_STATUSES``), else 1."""
    for family, status in EXIT_STATUSES:
        if isinstance(error, family):
            return status
    return UNEXPECTED


class UsageError(InvalidInput):
    """The command line does not parse: a missing or unknown option, a bad option value."""

    code = "usage"
    template_en = "{detail} (see {prog} --help)"
    template_ar = "استخدام غير صحيح للأمر (التفاصيل بالإنجليزية): {detail} (انظر {prog} --help)"

    def __init__(self, *, detail: str, prog: str) -> None:
        self._format(detail=detail, prog=prog)


class UnknownCommand(InvalidInput):
    """The command line names a command that does not exist."""

    code = "unknown_command"
    template_en = "Unknown command '{command}'; run {prog} --help to see the commands."
    template_ar = "الأمر '{command}' غير معروف؛ شغّل {prog} --help لعرض الأوامر."

    def __init__(self, *, command: str, prog: str) -> None:
        self._format(command=command, prog=prog)


class UnknownField(InvalidInput):
    """``--print`` names a field that the command's answer does not have."""

    code = "unknown_field"
    template_en = "{command} answers with no field '{field}'; its fields are: {fields}."
    template_ar = "لا يتضمن رد {command} الحقل '{field}'؛ حقوله هي: {fields}."

    def __init__(self, *, command: str, field: str, fields: str) -> None:
        self._format(command=command, field=field, fields=fields)


class InvalidArgument(InvalidInput):
    """An option's value parses but cannot be used (a public key line, a pair of options)."""

    code = "invalid_argument"
    template_en = "The value of {option} cannot be used: {reason}."
    template_ar = "لا يمكن استخدام قيمة {option} (التفاصيل بالإنجليزية): {reason}."

    def __init__(self, *, option: str, reason: str) -> None:
        self._format(option=option, reason=reason)


class NoRotation(InvalidInput):
    """``keys move`` was asked for while no pseudonym key rotation is under way."""

    code = "no_rotation"
    template_en = (
        "No pseudonym key rotation is under way: start one with 'keys rotate --pseudonym'."
    )
    template_ar = "لا يجري تدوير لمفتاح الأسماء المستعارة: ابدأه بالأمر 'keys rotate --pseudonym'."


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

    def __init__(self, *, path: str) -> None:
        self._format(path=path)


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

    def __init__(self, *, path: str) -> None:
        self._format(path=path)


class InvalidSetting(ConfigurationError):
    """An environment variable the command reads has a value it cannot use."""

    code = "invalid_setting"
    template_en = "The environment variable {name} must be {expected}."
    template_ar = "يجب أن تكون قيمة متغير البيئة {name}: {expected}."

    def __init__(self, *, name: str, expected: str) -> None:
        self._format(name=name, expected=expected)


class Unexpected(TelecardAuthError):
    """Anything else that went wrong: named by its type alone, shown in full with --debug."""

    code = "internal_error"
    template_en = "Unexpected failure ({kind}); run again with --debug to see where it happened."
    template_ar = "إخفاق غير متوقع ({kind})؛ أعد التشغيل مع --debug لمعرفة موضعه."

    def __init__(self, *, kind: str) -> None:
        self._format(kind=kind)


class Interrupted(TelecardAuthError):
    """The command was interrupted (Ctrl-C)."""

    code = "interrupted"
    template_en = "Interrupted."
    template_ar = "أُوقف الأمر."
