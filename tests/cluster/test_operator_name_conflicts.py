"""A name conflict that lasts is rechecked on a bounded backoff, never in a hot loop.

Aspects tested (manual mode, an in-process operator serving its metrics): a Consumer whose
only instance's name is held by a user's Deployment (not labelled as ours: the watch never
shows it, so no event can wake the Consumer) is reconciled again with no event at all,
and, once rechecks have started, only a handful of times in a window (the recheck doubles
from 2 s up to 120 s; a hot loop would be hundreds). The user's Deployment is never
written.
"""

from __future__ import annotations

import time

import pytest
from operating import (
    condition,
    consumer,
    eventually,
    get_consumer,
    in_process_operator,
    metric_sum,
    users_deployment,
)

from konsumerator.domain import keys
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

# With rechecks 4 s, 8 s, 16 s... apart once the first has happened, a window this long
# holds at most three; five leaves room for passes woken by the Consumer's own events.
WINDOW_S = 20.0
AT_MOST = 5


def test_a_lasting_name_conflict_is_rechecked_without_an_event_and_without_a_hot_loop(
    cluster: Cluster, namespace: str
) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    cluster.api(
        "POST", path, users_deployment(namespace, "stuck-consumer-0", app="stuck-consumer-0")
    )
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(consumer("stuck", namespace, num_partitions=1, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "stuck"),
            lambda o: condition(o, "Ready").get("reason") == "NameConflict",
            timeout=60,
            what="the Consumer to report the name conflict",
        )

        def passes() -> float:
            return metric_sum(
                op.metrics(), "konsumerator_consumer_reconcile_total", consumer=f"{namespace}/stuck"
            )

        first = passes()
        wait_until(lambda: passes() > first, timeout=60, what="a recheck with no event")
        start = passes()
        time.sleep(WINDOW_S)
        assert passes() - start <= AT_MOST
        obj = get_consumer(cluster, namespace, "stuck")
    assert condition(obj, "Ready")["reason"] == "NameConflict"
    # (Its status is the deployment controller's; nothing of it is ever ours.)
    after = cluster.api("GET", f"{path}/stuck-consumer-0")
    managers = {f["manager"] for f in after["metadata"]["managedFields"]}
    assert keys.FIELD_MANAGER not in managers
    assert "ownerReferences" not in after["metadata"]
