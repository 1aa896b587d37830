"""Tests for the end-to-end demonstration that ``make demo`` runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from telecard_auth import MemoryStorage, SQLiteStorage
from telecard_auth.cli._demo import run_demo


def _walk(storage: MemoryStorage | SQLiteStorage) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = run_demo(storage, lines.append)
    return status, lines


def test_every_step_of_the_walk_behaves_as_the_rules_say() -> None:
    """Each of the walk's checks passes and every refusal it shows is there, in both languages."""
    status, lines = _walk(MemoryStorage())
    assert 0 == status
    checks = [line.strip() for line in lines if line.strip().startswith("[")]
    assert 11 == len(checks)
    assert all(check.startswith("[OK  ]") for check in checks)
    text = "\n".join(lines)
    for expected in (
        "code_already_used",
        "wrong_code",
        "transfer_not_bound",
        "naming the person who receives the number",
        "code_expired",
        "signed receipt (a JWT): eyJ",
        "typed as '",
        "سارت",
    ):
        assert expected in text
    (typed,) = [line for line in lines if "typed as '" in line]
    assert re.search("[٠-٩]{4} [٠-٩]{4}", typed)
    assert "Every step behaved as the rules say." == lines[-2]


def test_the_walk_shows_the_customer_pseudonym_never_the_id() -> None:
    """STC's redemption names the customer by her per-operator pseudonym (``customer_ref``),
    and no line shows her identity number."""
    status, lines = _walk(MemoryStorage())
    assert 0 == status
    (shown,) = [line for line in lines if "STC knows the customer as" in line]
    assert re.fullmatch(r"\s*-> STC knows the customer as [0-9a-f]{32}, never by her ID", shown)
    assert not [line for line in lines if "1000000008" in line or "2129040479" in line]


def test_the_walk_runs_on_sqlite(tmp_path: Path) -> None:
    """The walk passes on SQLite, twice over one file: fresh keys, fresh codes each time."""
    storage = SQLiteStorage(tmp_path / "demo.db")
    storage.migrate()
    try:
        assert 0 == _walk(storage)[0]
        assert 0 == _walk(storage)[0]  # a second walk over the same file: fresh keys, fresh codes
    finally:
        storage.close()


def test_the_command_runs_the_walk_on_the_embedded_default(tmp_path: Path) -> None:
    """``telecard-auth demo`` (what ``make demo`` runs) walks on its own SQLite file and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "telecard_auth", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    assert "SQLiteStorage('telecard-demo.db'" in result.stdout
    assert (tmp_path / "telecard-demo.db").exists()


@pytest.mark.parametrize(
    ("arguments", "status"),
    [(["demo", "--storage"], 2), (["walk"], 2), (["demo", "--storage", "nosuch://x"], 6)],
)
def test_the_command_refuses_bad_arguments(arguments: list[str], status: int) -> None:
    """A bad command line or storage URL is refused with its exit status and no traceback."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "telecard_auth", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status == result.returncode
    assert "Traceback" not in result.stderr
