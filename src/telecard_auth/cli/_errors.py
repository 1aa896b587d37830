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
    "KeyDirectoryNotOwned",
    "KeyDirectoryShared",
    "KeyDirectoryWritable",
    "KeyFileExists",
    "KeyFileExposed",
    "KeyFileNotOwned",
    "KeyFileNotWritten",
    "KeyFileSymlink",
    "KeyFileUnreadable",
    "NoRotation",
    "NotInitialized",
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

    def __init__(self, *, path: str) -> None:
        self._format(path=path)


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

    def __init__(self, *, path: str, mode: str) -> None:
        self._format(path=path, mode=mode)


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

    def __init__(self, *, path: str) -> None:
        self._format(path=path)


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

    def __init__(self, *, path: str, owner: int, uid: int) -> None:
        self._format(path=path, owner=owner, uid=uid)


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

    def __init__(self, *, directory: str, path: str, mode: str) -> None:
        self._format(directory=directory, path=path, mode=mode)


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

    def __init__(self, *, directory: str, path: str, owner: int, uid: int) -> None:
        self._format(directory=directory, path=path, owner=owner, uid=uid)


class KeyFileUnreadable(ConfigurationError):
    """The key file exists but cannot be read or is not a key file of a known format."""

    code = "key_file_unreadable"
    template_en = "The key file {path} cannot be used: {reason}."
    template_ar = "تعذّر استخدام ملف المفاتيح {path} (التفاصيل بالإنجليزية): {reason}."

    def __init__(self, *, path: str, reason: str) -> None:
        self._format(path=path, reason=reason)


class KeyFileNotWritten(ConfigurationError):
    """The key file could not be written; the old one, if any, is unchanged."""

    code = "key_file_not_written"
    template_en = "The key file {path} could not be written: {reason}."
    template_ar = "تعذّرت كتابة ملف المفاتيح {path} (التفاصيل بالإنجليزية): {reason}."

    def __init__(self, *, path: str, reason: str) -> None:
        self._format(path=path, reason=reason)


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
