"""Hostile review: a Lease whose ``leaseTransitions`` is at int32's maximum.

``leaseTransitions`` is an int32 the API server keeps as written; each takeover adds one
(as client-go does). A Lease left at 2,147,483,647 (edited by hand, or by a peer that
counts differently) made every takeover a write the API server refuses: the next
candidate could never lead, and with the old leader gone nobody reconciled anything.

Aspects tested (an in-process guest-mode operator with ``--leader-elect``): the Lease
exists, held by a candidate that is gone (a 1 s lease), with ``leaseTransitions`` at
int32's maximum; the operator takes it over, holds it (the count stays a valid int32),
and reconciles a guest ConfigMap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from operating import consumer, eventually, guest_configmap, in_process_operator

from konsumerator.domain import keys
from konsumerator.kube.leases import micro_time
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

INT32_MAX = 2**31 - 1


def test_a_lease_at_the_most_transitions_is_still_taken_over(
    cluster: Cluster, namespace: str
) -> None:
    name = keys.lease_name(namespace=namespace)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    then = datetime.now(UTC) - timedelta(minutes=5)
    cluster.api(
        "POST",
        path,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "holderIdentity": "gone_0000",
                "leaseDurationSeconds": 1,
                "acquireTime": micro_time(then),
                "renewTime": micro_time(then),
                "leaseTransitions": INT32_MAX,
            },
        },
    )
    spec: dict[str, Any] = consumer("led", namespace, num_partitions=1)["spec"]
    cluster.apply(guest_configmap("led", namespace, spec))
    with in_process_operator(cluster, namespace=namespace, leader_elect=True):
        eventually(
            lambda: cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/led"),
            lambda cm: cm["metadata"]["annotations"].get(f"{keys.STATUS_PREFIX}missing") == "0",
            timeout=60,
            what="the guest to be reconciled by the new leader",
        )
        lease = cluster.api("GET", f"{path}/{name}")["spec"]
    assert lease["holderIdentity"] != "gone_0000"
    assert 0 <= lease["leaseTransitions"] <= INT32_MAX
