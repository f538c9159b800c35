"""Hostile review: status fields another writer adds, which the operator's write never removes.

The status is written by server-side apply: the operator owns the fields it applies, and
another manager's fields stay. Two parts of the status are maps by key: ``conditions``
(a list keyed by ``type``) and ``lastSyncState`` (keyed by partition). Another controller
adding its own condition (a policy engine's ``Audited``), or somebody writing partitions
the Consumer does not have, leaves fields no apply of the operator removes. The promise:
a pass with nothing to change writes nothing.

Aspects tested (an in-process CRD-mode operator, manual mode), table-driven over what a
user's status patch adds once the Consumer has converged (a condition of its own type; a
``lastSyncState`` entry for a partition the Consumer does not have): after the pass that
edit wakes, five passes enqueued by hand make no write request at all (the operator's own
request counters), and the user's condition is still there, untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import (
    WRITE_VERBS,
    alone,
    condition,
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    metric_sum,
)

from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

AUDITED = {
    "type": "Audited",
    "status": "True",
    "reason": "PolicyPassed",
    "message": "checked by a policy engine",
    "lastTransitionTime": "2026-12-01T00:00:00Z",
}


FOREIGN = [
    pytest.param("condition", id="a condition of its own type"),
    pytest.param("state", id="a lastSyncState entry of no partition"),
]


@pytest.mark.parametrize("foreign", FOREIGN)
def test_a_foreign_status_field_costs_no_write_per_pass(
    cluster: Cluster, namespace: str, foreign: str
) -> None:
    # The operator is cluster-wide and its request counts are too: earlier tests'
    # Consumers, in namespaces still going, must not add their writes.
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(consumer("foreign", namespace, num_partitions=1))
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "foreign"),
            lambda o: converged(o, 1),
            timeout=60,
            what="the Consumer to converge",
        )

        def passes() -> float:
            return metric_sum(
                op.metrics(),
                "konsumerator_consumer_reconcile_total",
                consumer=f"{namespace}/foreign",
            )

        edited_at = passes()
        edit: dict[str, Any] = (
            {"conditions": [*obj["status"]["conditions"], AUDITED]}
            if foreign == "condition"
            else {
                "lastSyncState": {
                    "7": {"productionRate": 1, "consumptionRate": 1, "messageBehind": 1}
                }
            }
        )
        response = cluster.request(
            "PATCH", consumer_path(namespace, "foreign") + "/status", {"status": edit}
        )
        assert response.ok, response.text[:300]

        # The pass the edit wakes (it may restore what it owns), then a quiet moment.
        eventually(
            lambda: get_consumer(cluster, namespace, "foreign"),
            lambda o: converged(o, 1),
            timeout=30,
            what="the pass the status edit wakes",
        )
        eventually(passes, lambda n: n > edited_at, timeout=30, what="the pass the edit wakes")
        before = op.counts()
        done = passes()
        for i in range(5):
            op.enqueue(namespace, "foreign")
            eventually(
                passes, lambda n, i=i: n >= done + i + 1, timeout=30, what=f"enqueued pass {i}"
            )
        writes = {v: n for v, n in op.counts().items() if v in WRITE_VERBS}
        made = {v: n - before.get(v, 0) for v, n in writes.items() if n - before.get(v, 0)}
        after = get_consumer(cluster, namespace, "foreign")
    assert made == {}, f"writes in passes with nothing to change: {made}"
    if foreign == "condition":
        assert condition(after, "Audited") == AUDITED
