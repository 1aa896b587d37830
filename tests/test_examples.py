"""Every example in ``examples/`` runs as a script, exits 0 and says what it showed.

The examples' own tests (the storage contract of ``examples/test_custom_storage.py`` and the HTTP
service's ``examples/http_service/test_app.py``) are collected from ``examples/`` directly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, folder: Path) -> str:
    """Run ``examples/<script>`` in ``folder`` with this interpreter; check it; its output."""
    completed = subprocess.run(  # noqa: S603 (this interpreter, a file of this repository)
        [sys.executable, str(EXAMPLES / script)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert (0, "") == (completed.returncode, completed.stderr), completed.stdout
    assert [] == list(folder.iterdir())  # every example cleans up after itself
    return completed.stdout


def test_quickstart_redeems_a_code_and_verifies_its_receipt(tmp_path: Path) -> None:
    """Issue, redeem on SQLite, and a receipt verified with the public JWK Set alone."""
    lines = run("quickstart.py", tmp_path).splitlines()
    assert 3 == len(lines)
    assert lines[0].startswith("issued code ")
    assert " for STC, good until " in lines[0]
    assert lines[1].startswith("redeemed for New SIM (new line); receipt eyJ")
    assert "receipt verified with key r1: new_line at stc" == lines[2]


def test_custom_storage_serves_an_issuer_and_stores_nothing_in_the_clear(tmp_path: Path) -> None:
    """The JSON file storage redeems a code and its file holds neither the code nor the ID."""
    lines = run("custom_storage.py", tmp_path).splitlines()
    assert 2 == len(lines)
    assert lines[0].startswith("redeemed code ")
    assert lines[0].endswith(" at Mobily")
    assert lines[1].endswith("code or ID in clear: False")


def test_manual_clock_example_runs_its_tests(tmp_path: Path) -> None:
    """Run as a script, the manual clock example runs its five tests with pytest; all pass."""
    output = run("testing_with_manual_clock.py", tmp_path)
    assert "5 passed" in output
    assert "failed" not in output
    assert "error" not in output


def test_http_service_walks_through_issue_redeem_and_retry(tmp_path: Path) -> None:
    """The HTTP service, in process: 201, 200 and the same 200 on retry, 409 without the key."""
    lines = run("http_service/app.py", tmp_path).splitlines()
    assert 4 == len(lines)
    assert lines[0].startswith("POST /codes -> 201, code ")
    assert [
        "POST /redemptions -> 200, retried -> 200",
        "without the Idempotency-Key -> 409 code_already_used",
        "receipt verified with the public key: new_line at stc",
    ] == lines[1:]


@pytest.mark.parametrize(
    "test_module", ["test_custom_storage.py", "http_service/test_app.py"], ids=str
)
def test_the_examples_tests_are_collected(test_module: str, pytestconfig: pytest.Config) -> None:
    """The examples' test modules are in the suite's test paths, so ``pytest`` runs them."""
    roots = [Path(pytestconfig.rootpath, path) for path in pytestconfig.getini("testpaths")]
    assert any((EXAMPLES / test_module).is_relative_to(root) for root in roots)
