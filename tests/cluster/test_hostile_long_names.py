"""Hostile review: a guest ConfigMap whose name is as long as Kubernetes allows.

A ConfigMap's name may be 253 characters (a DNS subdomain); a guest Consumer's may be at
most 63 (it is the Deployments' ``controller`` label), so such a ConfigMap is refused with
``Ready=False, reason=InvalidSpec`` and a Warning Event saying why. Events are named after
their object, ``<object name>.<hex timestamp>`` (client-go's scheme): 17 characters more
than the name, past the 253 of a DNS subdomain.

Aspects tested (an in-process guest-mode operator, a real apiserver): a ConfigMap named
with 253 characters gets its ``InvalidSpec`` status and its Warning Event, on it (the
apiserver accepts a core/v1 Event's name of 270 characters: the Event is not lost).
"""

from __future__ import annotations

import pytest
from operating import consumer, events, eventually, guest_configmap, in_process_operator

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

LONG = "a" * 200 + "." + "b" * 40 + "-" + "c" * 11


def test_a_guest_configmap_with_the_longest_name_gets_its_warning_event(
    cluster: Cluster, namespace: str
) -> None:
    assert len(LONG) == 253
    spec = consumer("short", namespace, num_partitions=2, per_instance=1)["spec"]
    path = f"/api/v1/namespaces/{namespace}/configmaps/{LONG}"
    ready = f"{keys.STATUS_PREFIX}conditions"
    with in_process_operator(cluster, namespace=namespace):
        cluster.apply(guest_configmap(LONG, namespace, spec))
        eventually(
            lambda: cluster.api("GET", path)["metadata"].get("annotations") or {},
            lambda a: "InvalidSpec" in a.get(ready, ""),
            timeout=60,
            what="the long-named ConfigMap to be refused in its status",
        )
        found = eventually(
            lambda: events(cluster, namespace, involved=LONG),
            bool,
            timeout=30,
            what="the Warning Event on the long-named ConfigMap",
        )
    (event,) = found
    assert event["reason"] == "InvalidSpec"
    assert "metadata.name" in event["message"]
    assert event["involvedObject"]["name"] == LONG
