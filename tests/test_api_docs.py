"""The API reference names every public name, so a new export cannot go undocumented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import telecard_auth
from telecard_auth import events

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _documented(name: str, text: str) -> bool:
    # A directive naming it (autoclass, autofunction, autoexception, data, ...), or a member of
    # telecard_auth.events, which the page documents whole with `automodule` (members by default).
    directive = re.compile(rf"^\.\. [a-z:]+:: (telecard_auth\.)?{re.escape(name)}\b", re.MULTILINE)
    return bool(directive.search(text)) or name in events.__all__


@pytest.mark.parametrize("name", telecard_auth.__all__)
def test_every_public_name_is_in_the_api_reference(name: str) -> None:
    """Each name of telecard_auth.__all__ has its entry in docs/api.md."""
    assert _documented(name, API_PAGE.read_text(encoding="utf-8"))


def test_the_check_notices_a_missing_name() -> None:
    """A name the page does not mention is reported as undocumented."""
    text = API_PAGE.read_text(encoding="utf-8")
    assert not _documented("NotARealExport", text)
    assert _documented("CodeIssuer", text)
    assert "automodule:: telecard_auth.events" in text
