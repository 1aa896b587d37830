"""A short soak per backend: several processes at full speed, then every invariant checked.

``benchmarks/soak.py`` does the work; here it runs for half a minute on each backend that is
shared between processes (SQLite, Redis, PostgreSQL), as CI's share of the long soaks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from tests.backends.conftest import UrlFactory

from telecard_auth import CodeIssuer, Subject, storage_from_url

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_a_short_soak_keeps_every_invariant(backend: str, storage_url: UrlFactory) -> None:
    """Two workers for 30 s: no unexpected error, no violation, and every kind of traffic.

    The traffic now includes guessed customers, who spend their failure budget and redeem a
    recovery code, and references on redemptions (one time in two hundred an invalid one).
    """
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
    assert {
        "wrong_code",
        "code_already_used",
        "code_expired",
        "failure_budget_exhausted",
        "invalid_reference",
    } <= set(summary["refusals"])
    assert 0 < summary["recovery_redemptions"] < summary["redemptions_acknowledged"]
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def test_the_audit_finds_a_lost_or_wrong_redemption(tmp_path: Path) -> None:
    """The invariant check is not blind: an acknowledgement storage does not back is reported."""
    soak = _soak_module()
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    config = {
        "url": url,
        "secret": hashlib.sha256(b"soak audit key").digest(),
        "pseudonym_secret": hashlib.sha256(b"soak audit pseudonyms").digest(),
        "origin": time.time(),
        "speed": 1.0,
    }
    storage = storage_from_url(url)
    migrate = getattr(storage, "migrate", None)
    assert migrate is not None
    migrate()
    issuer = CodeIssuer(
        storage,
        keyring=soak._keyring(config["secret"], config["pseudonym_secret"]),
        clock=soak.ScaledClock(config["origin"], 1.0),
    )
    customer = "1000000008"
    used = issuer.issue(Subject.citizen(customer), "stc")
    issuer.redeem(Subject.citizen(customer), "stc", used.code, "new_line")
    unused = issuer.issue(Subject.citizen(customer), "stc")
    close = getattr(storage, "close", None)
    if close is not None:
        close()
    acks = [
        soak.Ack(customer, used.code_id, "new_line", "r1"),
        soak.Ack(customer, used.code_id, "lost_sim_replacement", "r2"),
        soak.Ack(customer, unused.code_id, "new_line", "r3"),
        soak.Ack(customer, "no-such-code", "new_line", "r4"),
    ]
    found = soak._audit(config, acks)
    assert [
        f"acknowledged redemption of {used.code_id} for lost_sim_replacement is stored as"
        " redeemed for new_line",
        f"acknowledged redemption of {unused.code_id} for new_line is stored as active for None",
        "acknowledged redemption of no-such-code: unknown_code",
    ] == found
