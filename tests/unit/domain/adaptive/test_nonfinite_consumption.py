"""A consumption sample that is no finite number sizes like a missing one.

The Prometheus parser drops NaN and infinities, and ``simulate``'s loader refuses them,
but a replay built in code (``simulating.Replay``, the scorecard's models) hands the pass
whatever it is given. A scale-up remembers the throughput it starts from as an integer
(``scaling-memory``'s ``before``): ``int(NaN)`` ended the pass with ValueError, and a sum of
two finite samples past the largest float with OverflowError.
"""

from __future__ import annotations

import math

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot

HUGE = 1.5e308  # finite; two of them add up to inf


@pytest.mark.parametrize("update_mode", ["Recreate", "InPlaceOrRecreate"])
@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, HUGE],
    ids=["nan", "inf", "-inf", "two-huge"],
)
def test_a_scale_up_with_a_consumption_that_is_no_finite_number(
    update_mode: str, bad: float
) -> None:
    certificate.forget_all()
    replay = ConsumerBuilder(
        partitions=2,
        per_instance=2,
        update_mode=update_mode,  # type: ignore[arg-type]
        rate_per_core=1000,
        max_cpu="4",
    ).replay()
    try:
        low = MetricsSnapshot(
            production={0: 100.0, 1: 100.0}, consumption={0: 100.0, 1: 100.0}, offset={}
        )
        for _ in range(3):
            replay.step(advance_s=31.0, metrics=low)
        before = int(replay.cluster.observed()[0].current["consumer"].cpu_req_m)
        # Production x10, far behind: an urgent scale-up, remembering what it consumed.
        high = MetricsSnapshot(
            production={0: 1000.0, 1: 1000.0},
            consumption={0: bad, 1: bad if bad == HUGE else 50.0},
            offset={0: 600_000.0, 1: 600_000.0},
        )
        for _ in range(6):
            done = replay.step(advance_s=31.0, metrics=high)
            assert done.status.conditions, "every pass reports"
        instance = replay.cluster.observed()[0]
        assert int(instance.current["consumer"].cpu_req_m) > before
        assert "before=" in instance.annotations[keys.SCALING_MEMORY]
    finally:
        replay.close()
        certificate.forget_all()
