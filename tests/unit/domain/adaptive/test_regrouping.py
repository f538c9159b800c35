"""Re-grouped partitions (``numPartitionsPerInstance`` changed) under the adaptive predictor.

An instance whose partitions change is rolled out (its pods restart anyway) and sized
afresh. What the adaptive predictor remembered of it (the recent peak, the throughput
before its last scale-up) is of the partitions it had, so it is not carried over: on the
old code instance 0, going from 4 partitions to 2, was rolled out sized for the old 4
partitions' peak (2300m, twice the 1200m its 2 partitions need), held there for
``pendingScaleDownDuration`` and the dwell, and restarted a second time to give it back.
Driven by ``simulating.Replay`` (the operator's own pipeline) in virtual time.
"""

from dataclasses import replace
from types import MappingProxyType

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec
from konsumerator.domain import keys
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.simulating import Replay

ORDERS = ConsumerBuilder(partitions=4, target_utilization_percent=90, critical_lag=None)
# 1000 msg/s per partition, keeping up: a 2-partition instance needs 2000/0.9 = 2223/s,
# 1200m; a 4-partition one 4445/s, 2300m.
STEADY = MetricsSnapshot(
    production=MappingProxyType(dict.fromkeys(range(4), 1000.0)),
    consumption=MappingProxyType(dict.fromkeys(range(4), 1000.0)),
    offset=MappingProxyType(dict.fromkeys(range(4), 0.0)),
)
NEED_M = {1: 600, 2: 1200, 4: 2300}


def _spec(per: int) -> tuple[manifests.Source, ConsumerSpec]:
    return replace(ORDERS, per_instance=per).load()


def _cpu(replay: Replay) -> dict[str, int]:
    return {d.name: d.current["consumer"].cpu_req_m or 0 for d in replay.cluster.observed()}


@pytest.mark.parametrize(("before", "after"), [(4, 2), (2, 1), (2, 4), (1, 2)])
def test_a_regrouped_instance_is_sized_for_its_new_partitions_with_one_restart(
    before: int, after: int
) -> None:
    source, spec = _spec(before)
    replay = Replay(source=source, spec=spec)
    for _ in range(20):
        replay.step(advance_s=31, metrics=STEADY)
    assert set(_cpu(replay).values()) == {NEED_M[before]}
    replay.spec = _spec(after)[1]
    seen: list[dict[str, int]] = []
    for _ in range(50):  # 25 minutes: past pendingScaleDownDuration and the dwell
        replay.step(advance_s=31, metrics=STEADY)
        seen.append(_cpu(replay))
    # Sized for its new group from the rollout on, and never resized again.
    assert all(set(cpu.values()) == {NEED_M[after]} for cpu in seen), seen[0]
    (zero,) = [d for d in replay.cluster.observed() if d.name == "orders-0"]
    assert "rule rollout" in zero.annotations[keys.SCALING_DECISION]
