"""An instance that falls behind on average is scaled up after its pending period,
under Recreate, even when every other pass alone would not ask for more.

Production alternates 700 and 550 msg/s every pass (625 on average) on a request that
consumes 600: the backlog grows every minute. A rule that starts the pending period
again whenever the need of one pass alone fits the current size (as ``spike`` does in
place, where a resize restarts nothing) would keep it waiting: a version of ``spike``
under Recreate scaled it up 15 minutes after it began to wait, 46 s behind, with a
scaling-status write at every reset.
"""

from datetime import timedelta

from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.metrics import MetricsSnapshot

CONSUMER = ConsumerBuilder(
    partitions=1, rate_per_core=1000, max_cpu="4", max_memory="1Gi", min_sync=None
)
PASS_S = 30.0
PENDING_UP = timedelta(minutes=2)


def test_an_instance_falling_behind_every_minute_is_scaled_up_after_its_pending_period() -> None:
    replay = CONSUMER.replay()
    behind = 0.0
    pending_from: int | None = None
    scaled_at: int | None = None
    try:
        for i in range(60):
            production = 500.0 if i < 10 else (700.0 if i % 2 else 550.0)
            observed = replay.cluster.observed()
            # A consumer drains at most what its CPU request gives (1 msg/s per millicore).
            capacity = observed[0].current["consumer"].cpu_req_m if observed else 1e9
            consumed = min(production + behind / PASS_S, capacity)
            behind = max(0.0, behind + (production - consumed) * PASS_S)
            done = replay.step(
                advance_s=PASS_S,
                metrics=MetricsSnapshot(
                    production={0: production}, consumption={0: consumed}, offset={0: behind}
                ),
            )
            status = replay.cluster.observed()[0].annotations[keys.SCALING_STATUS]
            if pending_from is None and status == "PENDING_SCALE_UP":
                pending_from = i
            if i >= 10 and any(a.action == "scale" for a in done.plan.applies):
                scaled_at = i
                break
    finally:
        replay.close()
    assert pending_from is not None
    # The pending period, and two passes for the sync and the one that applies it.
    allowed = int(PENDING_UP.total_seconds() / PASS_S) + 2
    assert scaled_at is not None, f"pending from pass {pending_from}, never scaled up"
    assert scaled_at - pending_from <= allowed, (
        f"pending from pass {pending_from}, scaled up at pass {scaled_at}"
        f" ({behind:.0f} messages behind, {behind / 625:.0f} s)"
    )
