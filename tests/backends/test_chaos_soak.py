"""The chaos soak's own checks are not blind: its read-back finds a lost or wrong acknowledgement,
and its verdict counts what breaks the library's promise on each kind of deployment.

The soak itself runs on real replicated servers (tests/backends/cluster/test_cluster_chaos.py,
tests/backends/replicated/test_chaos.py); these tests feed its parts what a failover would leave.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from tests.backends.chaos_runs import chaos_module
from tests.backends.workers import subject_for

from telecard_auth import SQLiteStorage

chaos = chaos_module()


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "url": f"sqlite:///{tmp_path / 'chaos.db'}",
        "secret": hashlib.sha256(b"chaos key").digest(),
        "pseudonym_secret": hashlib.sha256(b"chaos pseudonyms").digest(),
    }


def _ack(customer: int, code: str, code_id: str, request_id: str, redeemed_at: str) -> Any:
    return chaos.Ack(customer, "stc", code, "new_line", request_id, code_id, redeemed_at, 0.0, 0.0)


def test_the_read_back_finds_lost_and_otherwise_answered_redemptions(tmp_path: Path) -> None:
    """Stored as acknowledged: neither list; unused, gone or the rival's: lost; another time:
    answered otherwise."""
    config = _config(tmp_path)
    with SQLiteStorage(config["url"].removeprefix("sqlite:///")) as storage:
        storage.migrate()
    issuer = chaos._issuer(config)
    codes = [issuer.issue(subject_for(n), "stc") for n in range(4)]
    kept = issuer.redeem(subject_for(0), "stc", codes[0].code, "new_line", request_id="r0")
    rival = issuer.redeem(subject_for(1), "stc", codes[1].code, "new_line", request_id="r1-rival")
    moved = issuer.redeem(subject_for(3), "stc", codes[3].code, "new_line", request_id="r3")
    chaos._close(issuer)
    acks = [
        _ack(0, codes[0].code, kept.code_id, "r0", kept.redeemed_at.isoformat()),
        _ack(1, codes[1].code, rival.code_id, "r1", rival.redeemed_at.isoformat()),
        _ack(2, codes[2].code, codes[2].code_id, "r2", kept.redeemed_at.isoformat()),
        _ack(2, codes[2].code, "no-such-code", "r2b", kept.redeemed_at.isoformat()),
        _ack(3, codes[3].code, moved.code_id, "r3", "2026-01-01T00:00:00+00:00"),
    ]
    lost, otherwise = chaos._read_back(config, acks)
    assert ([codes[1].code_id, codes[2].code_id, "no-such-code"], [moved.code_id]) == (
        lost,
        otherwise,
    )


class _Servers:
    url = "unused"

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self.setting = "durable" if durable else "not durable"

    def fail_over(self, turn: int) -> Any:
        raise AssertionError("not called")

    def touched(self, failover: Any, ack: Any) -> bool:
        return bool(ack.customer % 2)  # odd customers live on the killed primary


def _report(**fields: Any) -> Any:
    report = chaos.Report()
    for name, value in fields.items():
        setattr(report, name, value)
    return report


def _timed(customer: int, code_id: str, sent: float, answered: float) -> Any:
    return chaos.Ack(customer, "stc", "1", "new_line", "r", code_id, "t", sent, answered)


FAILOVER_AT = 100.0


def _summary(durable: bool, lost: list[str], doubles: list[str], **report: Any) -> dict[str, Any]:
    acks = [
        _timed(1, "c1", 90.0, 91.0),  # before the kill
        _timed(2, "c2", 101.0, 101.5),  # after it, but on a primary not killed
        _timed(3, "c3", 101.0, 103.0),
        _timed(5, "c5", 100.5, 102.5),  # the first acknowledged on the killed primary's data
    ]
    failover = chaos.Failover(FAILOVER_AT, 1.5, 4.0)
    reports = [_report(operations=9, acks=acks, doubles=doubles, **report)]
    summary: dict[str, Any] = chaos.summarize(_Servers(durable), [failover], reports, [(lost, [])])
    return summary


def test_the_verdict_and_the_recovery_time() -> None:
    """Recovery is from the kill to the first acknowledgement on the killed primary's data."""
    summary = _summary(True, [], [])
    assert (0, 2.5, 1.5, 4, 1) == (
        summary["violations"],
        summary["recovery_s"]["max"],
        summary["promotion_s"]["p50"],
        summary["redemptions_acknowledged"],
        summary["failovers"],
    )


@pytest.mark.parametrize(
    ("durable", "lost", "doubles", "violations"),
    [
        pytest.param(True, ["c3"], [], 1, id="durable-lost"),
        pytest.param(True, ["c3"], ["c3"], 2, id="durable-lost-then-doubled"),
        pytest.param(False, ["c3"], [], 0, id="not-durable-lost-is-counted-only"),
        pytest.param(False, ["c3"], ["c3"], 0, id="not-durable-double-after-a-loss"),
        pytest.param(False, [], ["c3"], 1, id="not-durable-double-without-a-loss"),
    ],
)
def test_what_counts_against_each_kind_of_deployment(
    durable: bool, lost: list[str], doubles: list[str], violations: int
) -> None:
    """Durable acknowledgements: every loss or double breaks the promise; otherwise a loss is
    reported, and only a double that follows a loss is explained."""
    summary = _summary(durable, lost, doubles)
    assert (violations, len(lost), len(doubles)) == (
        summary["violations"],
        summary["lost_acknowledged"],
        summary["double_redemptions"],
    )


def test_a_failover_nothing_recovered_from_and_a_foreign_error_are_violations() -> None:
    """No acknowledgement on the killed primary's data after the kill, or an error that is not
    the library's: each counts."""
    failover = chaos.Failover(FAILOVER_AT, 1.5, 4.0)
    reports = [
        _report(
            acks=[_timed(1, "c1", 90.0, 91.0), _timed(2, "c2", 101.0, 102.0)],
            unexpected=["redis.exceptions.ConnectionError"],
        )
    ]
    summary = chaos.summarize(_Servers(True), [failover], reports, [([], [])])
    assert (2, {"p50": None, "max": None}, {"redis.exceptions.ConnectionError": 1}) == (
        summary["violations"],
        summary["recovery_s"],
        summary["unexpected"],
    )
