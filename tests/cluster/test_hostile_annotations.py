"""Hostile review: one hand-edited annotation on one of our Deployments stops nobody else.

The operator reads its own annotations back from every Deployment it manages
(``ObservedDeployment``: the instance index, the partitions, the saturation level). Anyone
who can edit one such Deployment can put anything there; a value the projection cannot
turn into a number must affect that Deployment's Consumer at most, never the Deployment
watch of the whole operator.

Aspects tested (an in-process operator): after ``konsumerator.lwolf.org/consumer-id`` of
one instance is set to 5,000 digits (past Python's 4,300-digit ``int()`` limit),

* another Consumer created afterwards, in another namespace, still converges;
* a restarted operator still syncs its caches and starts (and reconciles that Consumer).
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
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


def test_an_instance_annotation_of_thousands_of_digits_stops_nobody_else(
    cluster: Cluster, namespace: str
) -> None:
    other = cluster.create_namespace(
        f"{namespace[:50]}-b", labels={"konsumerator.testenv/test": "true"}
    )
    try:
        with in_process_operator(cluster):
            cluster.apply(consumer("scribbled", namespace, num_partitions=2, per_instance=1))
            eventually(
                lambda: get_consumer(cluster, namespace, "scribbled"),
                lambda o: converged(o, 2),
                timeout=60,
                what="the first Consumer to converge",
            )
            cluster.api(
                "PATCH",
                f"/apis/apps/v1/namespaces/{namespace}/deployments/scribbled-consumer-0",
                {"metadata": {"annotations": {keys.CONSUMER_ID: "9" * 5000}}},
            )
            cluster.apply(consumer("bystander", other, num_partitions=2, per_instance=1))
            eventually(
                lambda: get_consumer(cluster, other, "bystander"),
                lambda o: converged(o, 2),
                timeout=30,
                what="a Consumer elsewhere to converge after the scribbled annotation",
            )

        with in_process_operator(cluster):
            cluster.api("PATCH", consumer_path(other, "bystander"), {"spec": {"numPartitions": 3}})
            eventually(
                lambda: get_consumer(cluster, other, "bystander"),
                lambda o: converged(o, 3),
                timeout=60,
                what="the restarted operator to reconcile a Consumer elsewhere",
            )
    finally:
        # Later tests of the session list Deployments cluster-wide while this namespace is
        # being deleted: leave nothing that would stop their operators.
        cluster.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/scribbled-consumer-0",
            {"metadata": {"annotations": {keys.CONSUMER_ID: "0"}}},
        )
        cluster.delete_namespace(other)
