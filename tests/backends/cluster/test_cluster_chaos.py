"""The chaos soak on a Redis Cluster: worker processes issue and redeem while a primary is
SIGKILLed every 12 seconds, and nothing acknowledged is lost or doubled with ``replicas=1``.

``benchmarks/soak.py --chaos redis-cluster`` does the work on a cluster of its own (three
primaries, three replicas, on loopback ports), as CI's share of the five-minute chaos soak.
"""

from __future__ import annotations

from tests.backends.chaos_runs import run_chaos
from tests.backends.cluster.conftest import require_servers


def test_primaries_killed_under_load_by_processes_lose_and_double_nothing_acknowledged() -> None:
    """Three worker processes for 30 s, two primaries killed: no violation, every shard back.

    Every acknowledged redemption is read back as redeemed and its request id answers it; no
    code is acknowledged twice; the killed shard acknowledges redemptions again (recovery
    measured for each failover); nothing but the library's own errors reached the workers.
    """
    require_servers()
    summary, done = run_chaos(
        "redis-cluster", "--replicas", "1", "--workers", "3", "--minutes", "0.5",
        "--failover-every", "12",
    )  # fmt: skip
    assert (0, 0) == (done.returncode, summary["violations"]), done.stderr[-3000:]
    assert ("replicas=1", True, 2) == (
        summary["setting"],
        summary["durable"],
        summary["failovers"],
    )
    assert (0, 0, 0, {}) == (
        summary["lost_acknowledged"],
        summary["double_redemptions"],
        summary["answered_otherwise"],
        summary["unexpected"],
    )
    assert summary["redemptions_acknowledged"] > 1_000
    assert 0 < summary["promotion_s"]["p50"]
    assert 0 < summary["recovery_s"]["p50"] <= summary["recovery_s"]["max"] < 12
    assert sum(summary["errors_retried"].values()) > 0  # the kills were felt, and retried
