"""The operator's ``/metrics`` after real reconciles: the Go operator's per-Consumer series.

Aspects tested:

* after a Consumer converges, ``konsumerator_consumer_reconcile_total``,
  ``konsumerator_consumer_reconcile_duration_seconds`` and
  ``konsumerator_consumer_status_update_duration_seconds`` count its passes and status
  writes, ``konsumerator_consumer_deployments_create_total`` its creations, and the error
  series (``..._errors`` without ``_total``, as Go named them) are present at 0;
* shrinking numPartitions counts the rollouts of the instances that stay as updates and the
  instance no longer needed as a delete;
* ``konsumerator_meta_info`` is 1;
* a creation is one request (a create-only apply): no Deployment is read with a GET when
  every name is free.
"""

from __future__ import annotations

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


def test_reconciles_status_writes_and_deployment_writes_are_counted_per_consumer(
    cluster: Cluster, namespace: str
) -> None:
    key = f"{namespace}/counted"
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:

        def value(name: str) -> float:
            return metric_sum(op.metrics(), name, consumer=key)

        cluster.apply(consumer("counted", namespace, num_partitions=6, per_instance=2))
        eventually(
            lambda: get_consumer(cluster, namespace, "counted"),
            lambda obj: converged(obj, 3),
            timeout=60,
            what="the Consumer to converge",
        )
        eventually(
            lambda: value("konsumerator_consumer_deployments_create_total"),
            lambda n: n == 3,
            timeout=30,
            what="three creations counted",
        )
        created = op.metrics()

        # Fewer partitions: instance 2 is deleted, 0 and 1 (same partitions, new
        # KONSUMERATOR_NUM_PARTITIONS) are rolled out.
        cluster.api(
            "PATCH",
            consumer_path(namespace, "counted"),
            {"spec": {"numPartitions": 4}},
        )
        eventually(
            lambda: managed(cluster, namespace),
            lambda found: sorted(found) == ["counted-consumer-0", "counted-consumer-1"],
            timeout=60,
            what="the third instance to be deleted",
        )
        eventually(
            lambda: (
                value("konsumerator_consumer_deployments_delete_total"),
                value("konsumerator_consumer_deployments_update_total"),
            ),
            lambda counts: counts[0] == 1 and counts[1] >= 2,
            timeout=30,
            what="the delete and the rollouts counted",
        )
        text = op.metrics()

    def at(name: str, source: str = created, **labels: str) -> float:
        return metric_sum(source, name, **labels)

    passes = at("konsumerator_consumer_reconcile_total", consumer=key)
    assert passes >= 1
    assert at("konsumerator_consumer_reconcile_duration_seconds_count", consumer=key) == passes
    assert at("konsumerator_consumer_status_update_duration_seconds_count", consumer=key) >= 1
    assert at("konsumerator_consumer_reconcile_errors_total", consumer=key) == 0
    for kind in ("create", "update", "delete"):
        series = f'konsumerator_consumer_deployments_{kind}_errors{{consumer="{key}"}} 0.0'
        assert series in text.splitlines(), kind
    assert at("konsumerator_meta_info") == 1
    # Creations are create-only applies: no GET unless a name is already taken.
    assert at("konsumerator_api_requests_total", verb="get", resource="deployments") == 0
