"""A resourcePolicy changed while the adaptive rules hold the instance is applied now.

The rules hold a scale-up during an outage (``outage``: more CPU does not help a
consumer that consumes nothing) and a scale-down while behind (``drained``). Before,
those holds held a correction too: a ``minAllowed`` raised above the instance's request,
or a ``maxAllowed`` lowered below it, waited as long as the outage or the backlog lasted
(found by a hostile review: a whole stall at the old size). Now the size moves into the
new bounds at the next pass (rule ``resourcePolicy``), no further, and the rules go on
from there.

One instance of two partitions (``ratePerCore`` 2000, 1000 msg/s a partition, a pass
every 31 s), kept up for half an hour, then: nothing consumed (an outage) or consuming
half of production (behind: scaled up once, then held by ``gap_elapsed`` and
``judging``, and a lowered ``maxAllowed`` is a scale-down ``drained`` holds), and the
policy changed mid-way.
"""

from __future__ import annotations

import copy
from types import MappingProxyType

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.api import manifests
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.resources import Resources

STEP_S = 31.0
LAM = 1000.0


def _snapshot(*, consumed: float, behind: float) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType({0: LAM, 1: LAM}),
        consumption=MappingProxyType({0: consumed, 1: consumed}),
        offset=MappingProxyType({0: behind, 1: behind}),
    )


def _consumer(replay: object) -> Resources:
    (d,) = replay.cluster.observed()  # type: ignore[attr-defined]
    resources: Resources = d.current["consumer"]
    return resources


@pytest.mark.parametrize("update_mode", ["Recreate", "InPlaceOrRecreate"])
@pytest.mark.parametrize(
    ("situation", "bound", "cpu"),
    [
        ("outage", "minAllowed", "1500m"),  # held: outage (no scale-up)
        ("outage", "maxAllowed", "800m"),  # held: drained (no scale-down while behind)
        ("behind", "maxAllowed", "800m"),  # held: drained
    ],
)
def test_a_policy_changed_while_the_rules_hold_applies_at_the_next_pass(
    update_mode: str, situation: str, bound: str, cpu: str
) -> None:
    certificate.forget_all()
    builder = ConsumerBuilder(
        per_instance=2,
        target_utilization_percent=90,
        restart_time="30s",
        update_mode=update_mode,  # type: ignore[arg-type]
    )
    replay = builder.replay()
    try:
        for _ in range(62):
            replay.step(advance_s=STEP_S, metrics=_snapshot(consumed=LAM, behind=0.0))
        before = _consumer(replay)
        assert before.cpu_req_m is not None
        assert 800 < before.cpu_req_m < 1500, before
        consumed = 0.0 if situation == "outage" else LAM / 2
        behind = 0.0
        for _ in range(6):
            behind += (LAM - consumed) * STEP_S
            replay.step(advance_s=STEP_S, metrics=_snapshot(consumed=consumed, behind=behind))
        held = _consumer(replay)
        if situation == "outage":
            assert held == before, "the rules hold it as it is"
        assert held.cpu_req_m is not None
        assert held.cpu_req_m > 800
        manifest = copy.deepcopy(builder.manifest())
        manifest["spec"]["resourcePolicy"]["containerPolicies"][0][bound]["cpu"] = cpu
        replay.spec = manifests.read(manifest)[1]
        behind += (LAM - consumed) * STEP_S
        replay.step(advance_s=STEP_S, metrics=_snapshot(consumed=consumed, behind=behind))
        after = _consumer(replay)
        assert after.cpu_req_m is not None
        assert after.cpu_lim_m is not None
        if bound == "minAllowed":
            assert after.cpu_req_m == 1500, after  # into the bounds, no further
        else:
            assert after.cpu_lim_m <= 800, after
            assert after.cpu_req_m == 800, after
        (d,) = replay.cluster.observed()
        assert "rule resourcePolicy" in d.annotations[keys.SCALING_DECISION]
    finally:
        replay.close()
        certificate.forget_all()
