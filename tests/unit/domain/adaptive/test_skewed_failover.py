"""A dip shorter than ``pendingScaleDownDuration`` resizes nothing, whatever the clock of
the leader that saw the scale-down's pending period begin.

``domain.stamps`` reads a scaling time more than ``SKEW_S`` (a minute) ahead of the
operator's clock as long ago, so that a time a day ahead (a hand edit) holds no scale-up
back. But the realistic source of a time ahead is a failover from a replica whose clock runs a
few minutes ahead (or an NTP step back). Read as long ago, the ``scaling-status-change``
of a ``PENDING_SCALE_DOWN`` that began a moment ago would end the pending period at the
next pass, and a scale-down would be applied on one pass of observation (Recreate:
1600m -> 600m -> 1800m -> 1600m, three restarts for a 2.5-minute dip). A scale-up waits
less when its start reads as long ago, which is harmless; a scale-down's wait starts
again from now instead (``scaling.restarted``).

The trace: one partition at 1500 msg/s (the instance sized for it and kept for 15
minutes), a dip to 500 msg/s for 2.5 minutes (past the held peak's window, so the
scale-down's pending period begins), then 1500 msg/s again. At the pass where the
pending period begins, its start is written as a leader ``skew`` seconds ahead would
have written it, and the operator fails over (a new pipeline, no in-process memory).
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from support.consumers import ConsumerBuilder
from support.replays import OnePartition, restart_operator

from konsumerator import simulating
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate

PASS_S = 31.0  # every pass refreshes (minSyncPeriod 30s)
DIP = range(30, 35)


def _failover_with_since_ahead(replay: simulating.Replay, *, skew_s: float) -> None:
    name = replay.cluster.observed()[0].name
    body = copy.deepcopy(replay.cluster._bodies[name])
    since = replay.now + timedelta(seconds=skew_s)
    body["metadata"]["annotations"][keys.SCALING_STATUS_CHANGE] = since.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    replay.cluster.apply(body)
    restart_operator(replay)


def _sizes(*, update_mode: str, skew_s: float) -> tuple[int | None, list[tuple[int, int]]]:
    """The pass the pending scale-down began, and (pass, CPU request) at every change."""
    certificate.forget_all()
    replay = ConsumerBuilder(
        partitions=1,
        update_mode=update_mode,  # type: ignore[arg-type]
        rate_per_core=1000,
        max_cpu="4",
    ).replay()
    loop = OnePartition(replay, pass_s=PASS_S)
    began: int | None = None
    sizes: list[tuple[int, int]] = []
    try:
        for i in range(60):
            loop.step(500.0 if i in DIP else 1500.0)
            instance = replay.cluster.observed()[0]
            status = instance.annotations[keys.SCALING_STATUS]
            if began is None and status == "PENDING_SCALE_DOWN":
                began = i
                if skew_s:
                    _failover_with_since_ahead(replay, skew_s=skew_s)
            cpu_m = int(instance.current["consumer"].cpu_req_m)
            if not sizes or sizes[-1][1] != cpu_m:
                sizes.append((i, cpu_m))
    finally:
        replay.close()
        certificate.forget_all()
    return began, sizes


@pytest.mark.parametrize("update_mode", ["Recreate", "InPlaceOrRecreate"])
@pytest.mark.parametrize(
    "skew_s",
    [0.0, 59.0, 120.0, 600.0, 86400.0],
)
def test_a_dip_shorter_than_the_pending_scale_down_resizes_nothing_after_a_skewed_failover(
    update_mode: str, skew_s: float
) -> None:
    began, sizes = _sizes(update_mode=update_mode, skew_s=skew_s)
    assert began is not None, "the dip did not start a pending scale-down: the test is moot"
    assert len(sizes) == 1, f"pending scale-down from pass {began}; sizes (pass, m): {sizes}"
