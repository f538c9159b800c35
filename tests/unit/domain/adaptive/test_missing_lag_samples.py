"""A partition's lag series missing from one refresh is no news that its backlog is gone.

A partition missing from an otherwise good answer is normal (the lag exporter lost it
for a scrape). Read as an empty backlog, the adaptive rules found the drain over and the
pass's need fitting: under Recreate an instance was scaled down right after a scale-up
sized for its backlog, a restart with some 40 s of backlog, and a scale-up's pending
period started again at every gap. The refresh now keeps the partition's last offset
for a refresh or two (``metrics.carry_offsets``).

The trace: two partitions, one instance each; partition 0 alternates 700 and 550 msg/s
(625 on average, as in ``test_recreate_wait_across_restarts``) on a request that consumes 600;
its lag series is missing from one refresh in two (a refresh is due only once more than
``minSyncPeriod``, 30 s, has passed: every other 30 s pass). Partition 1 is steady and
always sampled.
"""

from __future__ import annotations

from datetime import timedelta

from support.consumers import ConsumerBuilder

from konsumerator import simulating
from konsumerator.api import manifests
from konsumerator.domain.metrics import MetricsSnapshot

PASS_S = 30.0
PENDING_UP = timedelta(minutes=2)
PASSES = 80
CONSUMER = ConsumerBuilder(partitions=2, update_mode="Recreate", rate_per_core=1000, max_cpu="4")


def _replay() -> simulating.Replay:
    """The Consumer with ``minSyncPeriod`` 30s, said here (the builder's default may change):
    with 30 s passes the replay refreshes every other pass, the even ones."""
    doc = CONSUMER.manifest()
    doc["spec"]["autoscaler"]["prometheus"]["minSyncPeriod"] = "30s"
    source, spec = manifests.read(doc)
    return simulating.Replay(source=source, spec=spec)


def _sampled(i: int) -> bool:
    """Partition 0's lag in the answer of pass ``i`` (the refreshes are the even passes)."""
    return i < 10 or i % 4 != 0


def _run() -> list[tuple[int, float, int, str | None, bool]]:
    """Per pass: the index, partition 0's real backlog (messages) before the pass, its
    instance's CPU request after it, its scaling status, and whether it was resized."""
    replay = _replay()
    behind = 0.0
    seen = []
    for i in range(PASSES):
        production = 500.0 if i < 10 else (700.0 if i % 2 else 550.0)
        observed = {d.name: d for d in replay.cluster.observed()}
        first = observed.get("orders-0")
        # A consumer drains at most what its CPU request gives (1 msg/s per millicore).
        capacity = first.current["consumer"].cpu_req_m if first is not None else 1e9
        consumed = min(production + behind / PASS_S, capacity)
        behind = max(0.0, behind + (production - consumed) * PASS_S)
        done = replay.step(
            advance_s=PASS_S,
            metrics=MetricsSnapshot(
                production={0: production, 1: 300.0},
                consumption={0: consumed, 1: 300.0},
                offset={0: behind, 1: 0.0} if _sampled(i) else {1: 0.0},
            ),
        )
        after = {d.name: d for d in replay.cluster.observed()}["orders-0"]
        report = done.plan.instances[0]
        seen.append(
            (
                i,
                behind,
                after.current["consumer"].cpu_req_m,
                report.status.name if report.status else None,
                any(a.name == "orders-0" and a.action == "scale" for a in done.plan.applies),
            )
        )
    return seen


def test_a_missing_lag_sample_does_not_scale_down_an_instance_that_is_behind() -> None:
    seen = _run()
    downs = [
        (i, round(behind))
        for (i, behind, cpu, _, resized), (_, _, before, _, _) in zip(seen[1:], seen, strict=False)
        if resized and cpu < before and behind > 5 * 550.0
    ]
    assert downs == [], f"scaled down at (pass, messages behind): {downs}"


def test_a_missing_lag_sample_does_not_start_the_pending_period_again() -> None:
    seen = _run()
    pending_from = next(i for i, _, _, status, _ in seen if status == "PENDING_SCALE_UP")
    scaled_at = next(i for i, _, _, _, resized in seen if resized and i > pending_from)
    allowed = int(PENDING_UP.total_seconds() / PASS_S) + 2
    assert scaled_at - pending_from <= allowed, (pending_from, scaled_at)
