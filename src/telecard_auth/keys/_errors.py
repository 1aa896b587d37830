"""The errors of key files: each a ``ConfigurationError``, each refusing a file another user could
have written or that is not a key file, the way OpenSSH refuses ``authorized_keys``."""

from __future__ import annotations

from telecard_auth._core.errors import ConfigurationError

__all__ = [
    "KeyDirectoryNotOwned",
    "KeyDirectoryShared",
    "KeyDirectoryWritable",
    "KeyFileExposed",
    "KeyFileNotOwned",
    "KeyFileNotWritten",
    "KeyFileSymlink",
    "KeyFileUnreadable",
    "NotInitialized",
]


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
