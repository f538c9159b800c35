"""Hostile review: 500 Consumers with a tiny spec each, applied at once.

Many small objects stress what a few big ones do not: the work queue's fairness (every
Consumer must get its passes), the per-Consumer memory of the pipeline and the reporter,
and the status writes (each Consumer's first passes write its status right after its
Deployment events, while the watch may still lag the last status write: a write naming a
stale ``resourceVersion`` would conflict and loop).

Aspects tested (an in-process operator, a real apiserver, 500 Consumers of one instance
each, replicas 0): every Consumer converges (its status counts its one instance, for its
generation); the apiserver refused no status write as a conflict (409); the passes stay
bounded (no Consumer loops: a few passes each, not hundreds).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from operating import (
    alone,
    consumer,
    converged,
    eventually,
    in_process_operator,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

COUNT = 500
# Passes per Consumer, at most: its first (creates), the one its Deployment's event
# wakes, and a few more for events and retries; a loop makes hundreds.
PASSES_EACH = 8


def _manifests(namespace: str) -> str:
    docs: list[dict[str, Any]] = []
    for i in range(COUNT):
        manifest = consumer(f"c{i}", namespace, num_partitions=1, per_instance=1)
        manifest["spec"]["deploymentTemplate"]["replicas"] = 0
        docs.append(manifest)
    return yaml.safe_dump_all(docs)


def _converged(cluster: Cluster, namespace: str) -> int:
    path = f"/apis/{keys.GROUP}/{keys.VERSION}/namespaces/{namespace}/{keys.PLURAL}"
    items: list[dict[str, Any]] = cluster.api("GET", path)["items"]
    return sum(converged(obj, 1) for obj in items)


def test_five_hundred_tiny_consumers_all_converge_without_a_status_conflict(
    cluster: Cluster, namespace: str
) -> None:
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(_manifests(namespace))
        eventually(
            lambda: _converged(cluster, namespace),
            lambda n: n == COUNT,
            timeout=600,
            interval=2.0,
            what=f"all {COUNT} Consumers to converge",
        )
        text = op.metrics()
    # 500 Consumers and their Deployments take kube-controller-manager a while to delete:
    # done here, so that the tests after this one do not run beside it.
    cluster.delete_namespace(namespace, wait=True, timeout=300)
    requests = "konsumerator_api_requests_total"
    status = f"{keys.PLURAL}/status"
    assert metric_sum(text, requests, verb="apply", resource=status) >= COUNT
    assert metric_sum(text, requests, verb="apply", resource=status, code="409") == 0
    assert metric_sum(text, "controller_runtime_reconcile_total") <= PASSES_EACH * COUNT
