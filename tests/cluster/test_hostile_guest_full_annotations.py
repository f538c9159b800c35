"""Hostile review: a guest ConfigMap whose annotations leave no room for the status.

A ConfigMap's annotations share 256 KiB (keys and values). Guest mode writes its status
as ``konsumerator.lwolf.org/status.*`` annotations; a user's annotation that fills the
room (a ``kubectl apply`` last-applied-configuration of a large ConfigMap does) makes every
such write too large for the API server, whatever the operator leaves out.

Aspects tested (an in-process guest-mode operator serving its metrics): a guest whose
own annotations leave 100 bytes, next to a good guest. Its Deployments are still
created (the spec is valid); the status it cannot write is said in a Warning Event on
it (``StatusRefused``, with the apiserver's message naming ``metadata.annotations``);
it is not retried in a hot loop (a handful of passes in 20 s); the good guest
converges, and the operator is alive.
"""

from __future__ import annotations

import time

import pytest
from operating import (
    configmap_annotations,
    consumer_spec,
    events,
    eventually,
    guest_configmap,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

STATUS = keys.STATUS_PREFIX
LIMIT = 256 * 1024
BLOB_KEY = "example.com/blob"
WINDOW_S = 20.0
AT_MOST = 6


def test_a_guest_whose_annotations_leave_no_room_for_the_status_is_told_once_not_looped(
    cluster: Cluster, namespace: str
) -> None:
    full = guest_configmap("full", namespace, consumer_spec("full", namespace, num_partitions=1))
    used = sum(len(k) + len(v) for k, v in full["metadata"]["annotations"].items())
    full["metadata"]["annotations"][BLOB_KEY] = "x" * (LIMIT - used - len(BLOB_KEY) - 100)
    response = cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", full)
    assert response.ok, response.text[:300]
    cluster.apply(
        guest_configmap("good", namespace, consumer_spec("good", namespace, num_partitions=1))
    )
    with in_process_operator(
        cluster, namespace=namespace, metrics_bind=Endpoint("127.0.0.1", 0)
    ) as op:
        eventually(
            lambda: sorted(managed(cluster, namespace)),
            lambda names: names == ["full-consumer-0", "good-consumer-0"],
            timeout=60,
            what="both guests' Deployments",
        )
        eventually(
            lambda: configmap_annotations(cluster, namespace, "good"),
            lambda a: a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="the good guest's status",
        )
        warned = eventually(
            lambda: [
                e for e in events(cluster, namespace, involved="full") if e["type"] == "Warning"
            ],
            bool,
            timeout=60,
            what="a Warning Event on the full guest",
        )

        def passes() -> float:
            return metric_sum(
                op.metrics(), "konsumerator_consumer_reconcile_total", consumer=f"{namespace}/full"
            )

        start = passes()
        time.sleep(WINDOW_S)
        looped = passes() - start
        assert op.alive
    assert looped <= AT_MOST, f"{looped} passes in {WINDOW_S:.0f} s"
    assert [e["reason"] for e in warned] == ["StatusRefused"]
    assert "metadata.annotations" in warned[0]["message"], warned[0]["message"]
