"""Tests for the end-to-end demonstration that ``make demo`` runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from telecard_auth import MemoryStorage, SQLiteStorage
from telecard_auth._demo import run_demo


def _walk(storage: MemoryStorage | SQLiteStorage) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = run_demo(storage, lines.append)
    return status, lines


def test_every_step_of_the_walk_behaves_as_the_rules_say() -> None:
    status, lines = _walk(MemoryStorage())
    assert 0 == status
    checks = [line.strip() for line in lines if line.strip().startswith("[")]
    assert 8 == len(checks)
    assert all(check.startswith("[OK  ]") for check in checks)
    text = "\n".join(lines)
    for expected in (
        "code_already_used",
        "wrong_code",
        "code_expired",
        "tar1.",
        "typed as '",
        "سارت",
    ):
        assert expected in text
    (typed,) = [line for line in lines if "typed as '" in line]
    assert re.search("[٠-٩]{4} [٠-٩]{4}", typed)
    assert "Every step behaved as the rules say." == lines[-2]


def test_the_walk_runs_on_sqlite(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "demo.db")
    storage.migrate()
    try:
        assert 0 == _walk(storage)[0]
        assert 0 == _walk(storage)[0]  # a second walk over the same file: fresh keys, fresh codes
    finally:
        storage.close()


def test_the_command_runs_the_walk_on_the_embedded_default(tmp_path: Path) -> None:
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
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "telecard_auth", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status == result.returncode
    assert "Traceback" not in result.stderr
