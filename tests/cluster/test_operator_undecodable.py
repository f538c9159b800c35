"""A Consumer the API server accepts but msgspec cannot decode affects only itself.

Its ``deploymentTemplate`` keeps unknown fields, so the API server stores ~1,100 nested
lists (2 KB); decoding that recursed past Python's limit, and one such Consumer used to make
every LIST and watch of Consumers fail, cluster-wide, forever.

Aspects tested:

* with the operator reconciling a good Consumer, a deep one is created and the good one
  changed at the same moment: the change is reconciled (its Deployments appear) and a third
  Consumer created afterwards is reconciled too;
* the deep Consumer gets ``Ready=False, reason=UndecodableObject`` naming ``spec`` and the
  limit, and a Warning Event; nothing is created for it;
* a restarted operator starts (its caches sync with the deep Consumer listed) and goes on
  reconciling the good ones.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

LEVELS = 1_100


def _create_deep(cluster: Cluster, namespace: str, name: str) -> None:
    """POST a Consumer with LEVELS nested lists in its template (spliced in as bytes:
    ``json.dumps`` recurses out at that depth)."""
    manifest = consumer(name, namespace, num_partitions=2, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["nested"] = "@@deep@@"
    body = json.dumps(manifest).replace('"@@deep@@"', "[" * LEVELS + "]" * LEVELS)
    response = cluster.request("POST", consumer_path(namespace), body.encode())
    assert response.ok, f"the API server refused the deep Consumer: {response.text[:500]}"


def _conditions(cluster: Cluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """The Consumer's conditions, read by kubectl (the test's own JSON decoder would
    recurse out on the object, too)."""
    out = cluster.kubectl(
        "get",
        f"{keys.PLURAL}.{keys.GROUP}",
        name,
        "-n",
        namespace,
        "-o",
        "jsonpath={.status.conditions}",
    ).stdout
    return {c["type"]: c for c in json.loads(out or "[]")}


def test_a_consumer_too_deep_to_decode_is_reported_and_stops_nobody(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(consumer("good", namespace, num_partitions=2, per_instance=1))
    with in_process_operator(cluster):
        eventually(
            lambda: get_consumer(cluster, namespace, "good"),
            lambda obj: converged(obj, 2),
            timeout=60,
            what="the good Consumer to converge",
        )
        _create_deep(cluster, namespace, "deep")
        cluster.api("PATCH", consumer_path(namespace, "good"), {"spec": {"numPartitions": 3}})
        cluster.apply(consumer("later", namespace, num_partitions=1, per_instance=1))

        for name, expected in (("good", 3), ("later", 1)):
            eventually(
                lambda name=name: get_consumer(cluster, namespace, name),
                lambda obj, expected=expected: converged(obj, expected),
                timeout=60,
                what=f"Consumer {name} to be reconciled with the deep Consumer present",
            )
        ready = eventually(
            lambda: _conditions(cluster, namespace, "deep").get("Ready", {}),
            lambda ready: ready.get("reason") == "UndecodableObject",
            timeout=60,
            what="Ready=False UndecodableObject on the deep Consumer",
        )
        warnings = eventually(
            lambda: events(cluster, namespace, involved="deep"),
            lambda evs: any(e["reason"] == "UndecodableObject" for e in evs),
            timeout=30,
            what="an UndecodableObject Event on the deep Consumer",
        )

    assert ready["status"] == "False"
    assert ready["message"].startswith("spec nests more than 64 levels of JSON")
    [warning] = [e for e in warnings if e["reason"] == "UndecodableObject"]
    assert warning["type"] == "Warning"
    assert "spec nests more than 64 levels" in warning["message"]
    assert sorted(managed(cluster, namespace)) == [
        "good-consumer-0",
        "good-consumer-1",
        "good-consumer-2",
        "later-consumer-0",
    ]

    # A restart lists the deep Consumer with the others: the caches must still sync
    # (start() waits for that) and the good Consumers must still be reconciled.
    with in_process_operator(cluster):
        cluster.api("PATCH", consumer_path(namespace, "later"), {"spec": {"numPartitions": 2}})
        eventually(
            lambda: get_consumer(cluster, namespace, "later"),
            lambda obj: converged(obj, 2),
            timeout=60,
            what="the restarted operator to reconcile a good Consumer",
        )
    assert not any(n.startswith("deep-") for n in managed(cluster, namespace))
