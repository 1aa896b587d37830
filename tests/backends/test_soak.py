"""A short soak per backend: several processes at full speed, then every invariant checked.

``benchmarks/soak.py`` does the work; here it runs for half a minute on each backend that is
shared between processes (SQLite, Redis, PostgreSQL), as CI's share of the long soaks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.backends.conftest import UrlFactory

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_a_short_soak_keeps_every_invariant(backend: str, storage_url: UrlFactory) -> None:
    """Two workers for 30 s: no unexpected error, no violation, and every kind of traffic."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [
            sys.executable,
            str(SOAK),
            "--backend",
            storage_url(backend),
            "--workers",
            "2",
            "--minutes",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert ({}, 0) == (summary["errors"], summary["invariant_violations"]), result.stderr
    assert 0 == result.returncode
    assert 1_000 < summary["redemptions_acknowledged"] < summary["operations"]
    assert {"wrong_code", "code_already_used", "code_expired"} <= set(summary["refusals"])
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
