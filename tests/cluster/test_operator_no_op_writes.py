"""A reconcile with nothing to change makes no write request: counted twice.

Aspects tested:

* after a Consumer has converged, reconciles with nothing to change (one enqueued by hand,
  one woken by a user's annotation on a managed Deployment, one by a foreign annotation on
  the Consumer) make no write call: the operator's own request counters
  (``ApiClient.counts``) show no apply/patch/create/update/delete, and no GET either
  (reads come from the caches);
* the apiserver agrees: its ``apiserver_request_total`` shows no APPLY/POST/PUT/DELETE on
  Deployments or Consumers (Consumer status included; Deployment status is kcm's) in that
  window, and exactly the test's own two PATCHes; no new Event is recorded for the Consumer.
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import (
    WRITE_VERBS,
    alone,
    consumer,
    consumer_path,
    converged,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

REQUESTS = "apiserver_request_total"
WRITTEN = (("deployments", ""), (keys.PLURAL, ""), (keys.PLURAL, "status"))


def _apiserver_writes(cluster: Cluster) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total of writes to what the operator writes, by verb.

    Deployments' ``status`` is left out: kcm's deployment controller writes it (the operator
    never does); Consumers' ``status`` is only ever written by the operator.
    """
    text = cluster.apiserver_metrics()
    return {
        (resource, subresource, verb): metric_sum(
            text, REQUESTS, resource=resource, subresource=subresource, verb=verb
        )
        for resource, subresource in (
            ("deployments", ""),
            (keys.PLURAL, ""),
            (keys.PLURAL, "status"),
        )
        for verb in ("APPLY", "POST", "PUT", "PATCH", "DELETE")
    }


def test_reconciles_with_nothing_to_change_make_no_write_request(
    cluster: Cluster, namespace: str
) -> None:
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:

        def reconciles() -> float:
            return metric_sum(op.metrics(), "controller_runtime_reconcile_total")

        def idle() -> bool:
            return metric_sum(op.metrics(), "workqueue_depth") == 0

        cluster.apply(consumer("quiet", namespace, num_partitions=6, per_instance=2))
        eventually(
            lambda: get_consumer(cluster, namespace, "quiet"),
            lambda obj: converged(obj, 3),
            timeout=60,
            what="the Consumer to converge",
        )
        # kcm stamps each Deployment with its revision: that change wakes us once more.
        eventually(
            lambda: managed(cluster, namespace),
            lambda found: all(
                "deployment.kubernetes.io/revision" in d["metadata"].get("annotations", {})
                for d in found.values()
            ),
            timeout=60,
            what="kcm to stamp the Deployments",
        )
        wait_until(idle, timeout=30, what="the operator's queue to drain")

        before = op.counts()
        before_api = _apiserver_writes(cluster)
        before_events = len(events(cluster, namespace, involved="quiet"))
        start = reconciles()

        # 1. a reconcile asked for by hand
        op.enqueue(namespace, "quiet")
        wait_until(lambda: reconciles() >= start + 1, timeout=30, what="reconcile 1")
        # 2. a user's annotation on one of our Deployments (passes the Deployment predicate)
        cluster.api(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/quiet-consumer-1",
            {"metadata": {"annotations": {"example.com/owner": "team-a"}}},
        )
        wait_until(lambda: reconciles() >= start + 2, timeout=30, what="reconcile 2")
        # 3. a foreign annotation on the Consumer (passes the Consumer predicate)
        cluster.api(
            "PATCH",
            consumer_path(namespace, "quiet"),
            {"metadata": {"annotations": {"example.com/ticket": "OPS-1"}}},
        )
        wait_until(lambda: reconciles() >= start + 3, timeout=30, what="reconcile 3")
        wait_until(idle, timeout=30, what="the operator's queue to drain")

        made = op.call(lambda: op.operator.client.counts.since(before))
        after_api = _apiserver_writes(cluster)
        obj = get_consumer(cluster, namespace, "quiet")
        after_events = len(events(cluster, namespace, involved="quiet"))

    writes = {verb: n for verb, n in made.items() if verb in WRITE_VERBS}
    assert writes == {}, made
    assert "get" not in made, made
    delta = {k: after_api[k] - before_api[k] for k in before_api if after_api[k] != before_api[k]}
    assert delta == {
        ("deployments", "", "PATCH"): 1.0,  # the test's annotation
        (keys.PLURAL, "", "PATCH"): 1.0,  # the test's annotation
    }
    assert after_events == before_events
    assert converged(obj, 3)
    found: dict[str, Any] = managed(cluster, namespace)
    assert found["quiet-consumer-1"]["metadata"]["annotations"]["example.com/owner"] == "team-a"
