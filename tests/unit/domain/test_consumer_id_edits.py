"""A hand-edited ``consumer-id`` naming an instance the Consumer does not have is planned
as the full path plans it, in a pass that does not refresh metrics too.

The planner keeps what it decided for each instance between passes and, in a pass whose
Deployments barely changed, re-checks only the instances whose Deployment object changed
(``planning._kept_again``, ``_changed``). Anyone who may edit a Deployment may write any
``consumer-id`` into it; an index at or past the Consumer's instance count names no
instance (the Deployment is redundant). The edit is a watch event, so the very next pass
comes within ``minSyncPeriod``, without a refresh: the shortcut's path.
"""

from __future__ import annotations

import copy

import pytest
from support.consumers import ConsumerBuilder
from support.replays import restart_operator

from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot

PARTITIONS = 4
STEADY = MetricsSnapshot(
    production=dict.fromkeys(range(PARTITIONS), 500.0),
    consumption=dict.fromkeys(range(PARTITIONS), 500.0),
    offset=dict.fromkeys(range(PARTITIONS), 0.0),
)


def _edited_pass(consumer_id: str, *, full: bool) -> object:
    certificate.forget_all()
    replay = ConsumerBuilder(partitions=PARTITIONS, rate_per_core=1000, max_cpu="4").replay()
    try:
        replay.step(advance_s=31.0, metrics=STEADY)  # creates, refreshing
        replay.step(advance_s=10.0, metrics=STEADY)  # within minSyncPeriod: kept
        body = copy.deepcopy(replay.cluster._bodies["orders-1"])
        body["metadata"]["annotations"][keys.CONSUMER_ID] = consumer_id
        replay.cluster.apply(body)
        if full:  # what a pass decides with no planner memory: the full path
            restart_operator(replay)
        done = replay.step(advance_s=10.0, metrics=STEADY)
        return (
            [(a.name, a.action, a.body) for a in done.plan.applies],
            [d.name for d in done.plan.deletes],
            done.status,
        )
    finally:
        replay.close()
        certificate.forget_all()


@pytest.mark.parametrize(
    "consumer_id",
    [
        "-1",
        "abc",
        "4",
        "5",
        "1000000",
    ],
)
def test_a_consumer_id_naming_no_instance_is_planned_as_the_full_path_plans_it(
    consumer_id: str,
) -> None:
    full = _edited_pass(consumer_id, full=True)
    assert repr(_edited_pass(consumer_id, full=False)) == repr(full)
