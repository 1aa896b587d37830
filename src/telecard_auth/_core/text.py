"""Text made safe to keep, compare and show: plain ``str``, clipped echoes, drivers' words.

Entry points turn what callers give into exact ``str`` (``plain``, ``plain_text``); what reaches a
message or a log line is clipped and escaped (``clip``); what a storage driver says is cut to one
line, with any password it repeats withheld (``driver_reason``, ``driver_detail``,
``passwords_in``). Messages are said in English or Arabic (``language``, ``preferred_language``),
and the times they show are written for people, in Riyadh time unless another zone is asked for
(``moment_for_people``); machines get UTC (``utc_iso``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from urllib.parse import unquote

__all__ = [
    "RIYADH",
    "clip",
    "driver_detail",
    "driver_reason",
    "json_value",
    "language",
    "moment_for_people",
    "passwords_in",
    "plain",
    "plain_text",
    "preferred_language",
    "utc_iso",
]

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


# --- languages and times for people ----------------------------------------------------------

#: Saudi Arabia's time zone: UTC+3 all year (the kingdom keeps no daylight saving time). Messages
#: show times in it unless another zone is asked for.
RIYADH = timezone(timedelta(hours=3), "Asia/Riyadh")

_ENGLISH, _ARABIC = "en", "ar"
#: An HTTP language range (RFC 9110 §12.5.4, RFC 4647 §2.1) and its weight (``q=``, at most three
#: decimals, case-insensitive).
_LANGUAGE_RANGE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*", re.ASCII)
_WEIGHT = re.compile(r"[qQ]=(?P<q>0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)", re.ASCII)
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTHS_AR = (
    "يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو",
    "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر",
)  # fmt: skip


def language(tag: str | None) -> str:
    """``"ar"`` for a language tag whose primary subtag is Arabic, else ``"en"``.

    BCP 47 tags in any case, with ``-`` or ``_`` between subtags; anything else (another
    language, an empty or malformed tag, ``None``) falls back to English.

    >>> [language(tag) for tag in ("ar", "ar-SA", "AR", "ar_SA", "en-US", "fr", "", None)]
    ['ar', 'ar', 'ar', 'ar', 'en', 'en', 'en', 'en']
    """
    if not isinstance(tag, str):
        return _ENGLISH
    primary = re.split(r"[-_]", plain(tag).strip(), maxsplit=1)[0]
    return _ARABIC if primary.lower() == _ARABIC else _ENGLISH


def preferred_language(accept_language: str | None) -> str:
    """``"ar"`` or ``"en"``, whichever an HTTP ``Accept-Language`` header prefers.

    Each language range counts with its weight (``q``, 1 if not given; RFC 9110 §12.5.4); the
    heaviest Arabic or English range wins, and of equal weights the first in the header. ``*``,
    ranges of other languages, ranges weighted 0 and malformed parts are passed over; with
    nothing left, or no header at all, the answer is English.

    >>> preferred_language("ar-SA,ar;q=0.9,en;q=0.8"), preferred_language("en-US,ar;q=0.5")
    ('ar', 'en')
    >>> preferred_language("fr, ar;q=0.1"), preferred_language("*"), preferred_language(None)
    ('ar', 'en', 'en')
    """
    if not isinstance(accept_language, str):
        return _ENGLISH
    chosen, heaviest = _ENGLISH, 0.0
    for part in plain(accept_language).split(","):
        found = _weighted(part)
        if found is not None and found[1] > heaviest:
            chosen, heaviest = found
    return chosen


def _weighted(part: str) -> tuple[str, float] | None:
    """The language (``"ar"`` or ``"en"``) and weight of one part of the header, or ``None`` if
    it is malformed, ``*``, another language or weighted 0."""
    tag, weighted, weight_text = (piece.strip(" \t") for piece in part.partition(";"))
    if not _LANGUAGE_RANGE.fullmatch(tag):
        return None
    weight = 1.0
    if weighted:
        # One parameter, q; a second ";" fails the match too.
        match = _WEIGHT.fullmatch(weight_text)
        if match is None:
            return None
        weight = float(match.group("q"))
    primary = tag.split("-", 1)[0].lower()
    if primary not in (_ARABIC, _ENGLISH) or weight <= 0:
        return None
    return primary, weight


def moment_for_people(moment: datetime, lang: str = _ENGLISH, zone: tzinfo = RIYADH) -> str:
    """``moment`` as a person reads it, in ``zone`` (Riyadh by default), in English or Arabic.

    The date with the month's name, then the time on the 24-hour clock (seconds only when there
    are any), then the zone: Riyadh by name, UTC as such, any other zone by its offset from UTC.
    Digits are Western, as Saudi services write times.

    >>> moment = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    >>> moment_for_people(moment)
    '25 November 2026, 13:00 Riyadh time'
    >>> moment_for_people(moment, "ar")
    '25 نوفمبر 2026، الساعة 13:00 بتوقيت الرياض'
    >>> moment_for_people(moment, "en", timezone(timedelta(hours=5, minutes=30)))
    '25 November 2026, 15:30 UTC+05:30'
    >>> moment_for_people(moment, "ar", UTC)
    '25 نوفمبر 2026، الساعة 10:00 بالتوقيت العالمي'
    """
    try:
        local = _aware(moment).astimezone(zone)
    except OverflowError:  # the first or last days a datetime can hold, moved out of range
        return utc_iso(moment)
    clock = f"{local:%H:%M:%S}" if local.second else f"{local:%H:%M}"
    zone_en, zone_ar = _zone_names(local, zone)
    if language(lang) == _ARABIC:
        return f"{local.day} {_MONTHS_AR[local.month - 1]} {local.year}، الساعة {clock} {zone_ar}"
    return f"{local.day} {_MONTHS_EN[local.month - 1]} {local.year}, {clock} {zone_en}"


def _zone_names(local: datetime, zone: tzinfo) -> tuple[str, str]:
    """How the English and the Arabic message name ``zone`` after a time of day."""
    if zone is RIYADH or getattr(zone, "key", None) == "Asia/Riyadh":  # zoneinfo's name for it
        return "Riyadh time", "بتوقيت الرياض"
    offset = local.utcoffset() or timedelta(0)
    if not offset:
        return "UTC", "بالتوقيت العالمي"
    sign = "-" if offset < timedelta(0) else "+"
    minutes, seconds = divmod(int(abs(offset).total_seconds()), 60)
    named = f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}" + (f":{seconds:02d}" * bool(seconds))
    return named, f"بتوقيت {named}"


def utc_iso(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601 with ``Z``, as machines read it (microseconds if any).

    >>> utc_iso(datetime(2026, 11, 25, 13, 0, tzinfo=RIYADH))
    '2026-11-25T10:00:00Z'
    """
    try:
        moment = _aware(moment).astimezone(UTC)
    except OverflowError:  # out of range in UTC: shown with the offset it has
        return moment.isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _aware(moment: datetime) -> datetime:
    # The library never keeps a naive time; one given by hand is taken to be UTC, not local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def json_value(value: object) -> object:
    """A value as a JSON answer holds it: a time in UTC (``utc_iso``); text, a number, a truth
    value or nothing as it is; anything else by its type's name only, as ``clip`` shows it."""
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, str):
        return plain(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return clip(value)
