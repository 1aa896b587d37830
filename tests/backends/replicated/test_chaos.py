"""The chaos soak on PostgreSQL: worker processes issue and redeem while the primary is SIGKILLed
and its synchronous standby promoted every 12 seconds, and nothing acknowledged is lost or doubled.

``benchmarks/soak.py --chaos postgres`` does the work on a pair of its own, rebuilding the dead
server as the new primary's standby after each failover, as CI's share of the five-minute soak.
"""

from __future__ import annotations

from tests.backends.chaos_runs import run_chaos
from tests.backends.replicated.conftest import require_pair


def test_primaries_killed_under_load_by_processes_lose_and_double_nothing_acknowledged() -> None:
    """Three worker processes for 30 s, two failovers: no violation, the clients recover.

    Every acknowledged redemption is read back as redeemed and its request id answers it; no
    code is acknowledged twice; redemptions are acknowledged again after each failover (recovery
    measured); nothing but the library's own errors reached the workers.
    """
    require_pair()
    summary, done = run_chaos(
        "postgres", "--standby", "sync", "--workers", "3", "--minutes", "0.5",
        "--failover-every", "12",
    )  # fmt: skip
    assert (0, 0) == (done.returncode, summary["violations"]), done.stderr[-3000:]
    assert ("standby=sync", True, 2) == (
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
