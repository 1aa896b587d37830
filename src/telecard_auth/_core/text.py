"""Text made safe to keep, compare and show: plain ``str``, clipped echoes, drivers' words.

Entry points turn what callers give into exact ``str`` (``plain``, ``plain_text``); what reaches a
message or a log line is clipped and escaped (``clip``); what a storage driver says is cut to one
line, with any password it repeats withheld (``driver_reason``, ``driver_detail``,
``passwords_in``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["clip", "driver_detail", "driver_reason", "passwords_in", "plain", "plain_text"]

_LONGEST_SHOWN = 40
#: Longest message of a client library passed on as the reason of an error.
_LONGEST_REASON = 200


def clip(value: object, longest: int = _LONGEST_SHOWN) -> str:
    """A value made safe to echo in a message or a log: text, and one line's worth at most.

    Text is shown (cut to ``longest`` characters, control and format characters escaped as
    ``\\n``, ``\\x1b``, ``\\u200f``); anything else by its type's name only, so neither ``repr``
    nor ``str`` of a caller's object is ever called. A request's values are not echoed at all
    (see ``UnknownProvider``): this serves configuration values and drivers' text.
    """
    text = plain(value) if isinstance(value, str) else type(value).__name__
    # Junk input echoed back must not turn one line of error into a page.
    cut = text if len(text) <= longest else text[:longest] + "…"
    # A line break or terminal escape in a log line would let the text forge lines of its own.
    return "".join(char if char.isprintable() else _escaped(char) for char in cut)


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def driver_reason(error: BaseException, secrets: tuple[str | None, ...] = ()) -> str | None:
    """A client library's message, made safe to pass on: its first line, clipped.

    ``None`` when it repeats any of ``secrets`` (a password, say, as written or percent-decoded):
    the caller then says what went wrong in its own words.
    """
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else type(error).__name__
    if any(secret and secret in message for secret in secrets):
        return None
    return clip(message, _LONGEST_REASON)


def driver_detail(backend: str, error: BaseException, secrets: tuple[str | None, ...] = ()) -> str:
    """What a storage driver said, for ``StorageError.detail`` (server logs, never a message).

    ``backend: ErrorType: first line``, clipped and escaped as ``driver_reason`` does; a first
    line that repeats one of ``secrets`` is withheld and only the error's type is named.
    """
    said = driver_reason(error, secrets) or "(its message is withheld: it repeats a password)"
    return f"{backend}: {type(error).__name__}: {said}"


#: A password in a connection URL's user info, or a ``password`` keyword or query option.
_PASSWORDS = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:(?P<info>[^@/?#]*)@"
    r"|password\s*=\s*(?P<option>'(?:[^'\\]|\\.)*'|[^\s&#]*)",
    re.IGNORECASE,
)


def passwords_in(url: str) -> tuple[str, ...]:
    """Every password ``url`` (a URL or a libpq ``key=value`` string) holds, as written and
    percent-decoded: what no message may repeat."""
    found: list[str] = []
    for match in _PASSWORDS.finditer(url):
        written = match.group("info") or (match.group("option") or "").strip("'")
        found += [written, unquote(written, errors="replace")]
    return tuple(secret for secret in found if secret)


def plain(text: str) -> str:
    """``text`` as an exact ``str``, without calling any method a ``str`` subclass overrides.

    Entry points turn text into plain ``str`` first, so that a subclass whose ``==``, ``hash()``
    or ``repr()`` raise (or lie) never reaches a comparison, a dict or a message.
    """
    # str.__str__ copies a subclass's characters into a new exact str; it calls nothing of its.
    return text if type(text) is str else str.__str__(text)


def plain_text(value: str) -> str:
    """An attrs converter: text becomes a plain ``str`` (see ``plain``); the rest is unchanged.

    Typed ``str`` to ``str`` so that a field keeps its declared type; anything else passes
    through as it came, for the field's validator to refuse.
    """
    if type(value) is str or not isinstance(value, str):
        return value
    return str.__str__(value)
