"""What the command prints: its answer for people, as JSON, or one field of it, and its failures.

A command returns an ``Outcome``: ``data``, the JSON object that ``--json`` prints and ``--print``
picks a field of, and ``lines`` for people, each said in English and Arabic (``Text``). A failure
is one line on stderr, or one JSON object on stdout with ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import attrs

from telecard_auth._core.errors import TelecardAuthError
from telecard_auth._core.text import moment_for_people

__all__ = [
    "CODE_ID",
    "CUSTOMER_REF",
    "PROVIDER",
    "PUBLIC_KEY",
    "REDEEMED_AT",
    "SERVICE",
    "SIGNING_KEY",
    "Line",
    "Outcome",
    "Text",
    "iso",
    "one_line",
    "report",
    "report_error",
    "when",
    "when_json",
]


@attrs.frozen
class Text:
    """One thing said in English and in Arabic."""

    en: str
    ar: str

    def get(self, lang: str) -> str:
        return self.ar if lang == "ar" else self.en


#: A line for people: as it is, said in two languages, or a label and its value.
Line: TypeAlias = str | Text | tuple[Text, str | Text]


@attrs.frozen(kw_only=True)
class Outcome:
    """A command's result: ``data`` for ``--json`` and ``--print``, ``lines`` for people, and the
    exit status."""

    data: dict[str, Any]
    lines: list[Line]
    status: int = 0


def _render(lines: Sequence[Line], lang: str) -> list[str]:
    width = max((len(line[0].en) for line in lines if isinstance(line, tuple)), default=0)
    shown: list[str] = []
    for line in lines:
        if isinstance(line, str):
            shown.append(line)
        elif isinstance(line, Text):
            shown.append(line.get(lang))
        else:
            label, value = line
            text = value if isinstance(value, str) else value.get(lang)
            if lang == "ar":
                shown.append(f"{label.ar}: {text}")
            else:
                shown.append(f"{(label.en + ':').ljust(width + 1)} {text}")
    return shown


def one_line(text: str) -> str:
    """``text`` on one line, its runs of white space made one space."""
    return " ".join(text.split())


def _field_text(value: object, *, as_json: bool) -> str:
    """One field alone, for a shell to capture: a string as it is, null as nothing, else JSON."""
    if as_json:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def report_error(error: TelecardAuthError, *, lang: str, as_json: bool) -> None:
    """Print ``error``: one line on stderr, or one JSON object on stdout.

    The JSON object is ``{"error": ...}`` with ``error.to_dict()`` inside, except that
    ``message`` is the text in ``lang`` and ``messages`` holds both languages.
    """
    message = one_line(error.message(lang))
    if as_json:
        answer = error.to_dict()
        shown = {"code": error.code, "message": message, "messages": answer.pop("message")}
        print(json.dumps({"error": {**shown, **answer}}, ensure_ascii=False))
    else:
        label = "خطأ" if lang == "ar" else "error"
        print(f"{label} [{error.code}]: {message}", file=sys.stderr)


def report(outcome: Outcome, *, lang: str, as_json: bool, field: str | None = None) -> None:
    """Print ``outcome``: one field of it, its JSON object, or its lines for people."""
    if field is not None:
        print(_field_text(outcome.data[field], as_json=as_json))
    elif as_json:
        print(json.dumps(outcome.data, ensure_ascii=False))
    else:
        for line in _render(outcome.lines, lang):
            print(line)


def iso(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601, as the JSON answers give times."""
    return moment.astimezone(UTC).isoformat()


def when(moment: datetime | None) -> Text | str:
    """``moment`` for people, in Riyadh time as the library's messages show it; ``-`` for none.

    ``--json`` and ``--print`` give the same moment in UTC (``iso``), for programs.
    """
    if moment is None:
        return "-"
    return Text(moment_for_people(moment, "en"), moment_for_people(moment, "ar"))


def when_json(moment: datetime | None) -> str | None:
    """``moment`` as ``iso`` gives it, or None."""
    return None if moment is None else iso(moment)


# Labels that several commands show.
CODE_ID = Text("code id", "معرّف الرمز")
PROVIDER = Text("provider", "مزود الخدمة")
SERVICE = Text("service", "الخدمة")
REDEEMED_AT = Text("used at", "وقت الاستخدام")
CUSTOMER_REF = Text("customer pseudonym", "الاسم المستعار للعميل")
SIGNING_KEY = Text("signing key", "مفتاح التوقيع")
PUBLIC_KEY = Text("public receipt key", "مفتاح الإيصالات العام")
