"""Hostile review: a guest ConfigMap that stops being a guest, and bad numbers on a running one.

Guest mode's promise (compatibility row 53): a ConfigMap whose ``managed`` annotation is
false, in any case, is not ours: nothing is written to it and its Deployments are left as
they are. A spec that does not validate is refused naming its field, with nothing
half-applied: the Deployments of the last good spec stay as they are.

Aspects tested (an in-process guest-mode operator, a real apiserver):

* a running guest whose annotation is flipped to `` False `` (odd case, blanks) in the same
  write that shrinks its ``numPartitions`` from 3 to 1: the pass that follows deletes no
  Deployment and writes none, and writes nothing to the ConfigMap; flipped back to managed,
  it converges on the shrunk spec (one Deployment, the one it had, not re-created);
* a running guest edited, one after the other, to ``numPartitions`` 0, -5, ``"ten"``,
  2**70, and ``numPartitionsPerInstance`` 0: each is refused with ``InvalidSpec`` naming
  ``numPartitions``/``numPartitionsPerInstance`` (the good spec is restored between two),
  and its Deployments are never written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from operating import (
    InProcessOperator,
    configmap_annotations,
    consumer_spec,
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
CONDITIONS = f"{STATUS}conditions"


def _cm_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def _configmap(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cm: dict[str, Any] = cluster.api("GET", _cm_path(namespace, name))
    return cm


def _ready(annotations: dict[str, str]) -> dict[str, Any]:
    conditions = json.loads(annotations.get(CONDITIONS, "[]"))
    return next((c for c in conditions if c["type"] == "Ready"), {})


def _ours(d: dict[str, Any]) -> dict[str, Any]:
    """What the operator writes on a Deployment (its spec, labels, annotations, owners and
    its own managed fields, whose time moves with any write of ours); the status is the
    deployment controller's."""
    meta = d["metadata"]
    return {
        "uid": meta["uid"],
        "spec": d.get("spec"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "ownerReferences": meta.get("ownerReferences"),
        "managed": [
            m for m in meta.get("managedFields") or [] if m.get("manager") == keys.FIELD_MANAGER
        ],
    }


def _passes(op: InProcessOperator) -> float:
    return metric_sum(op.metrics(), "controller_runtime_reconcile_total", controller="configmap")


def test_a_guest_unmanaged_and_shrunk_in_one_write_loses_nothing_until_managed_again(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        guest_configmap(
            "flip", namespace, consumer_spec("flip", namespace, num_partitions=3, per_instance=1)
        )
    )
    with in_process_operator(
        cluster, namespace=namespace, metrics_bind=Endpoint("127.0.0.1", 0)
    ) as op:
        eventually(
            lambda: configmap_annotations(cluster, namespace, "flip"),
            lambda a: a.get(f"{STATUS}expected") == "3" and a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="the guest to converge on 3 instances",
        )
        before = {n: _ours(d) for n, d in managed(cluster, namespace).items()}
        assert sorted(before) == [f"flip-consumer-{i}" for i in range(3)]
        passes = _passes(op)
        shrunk = yaml.safe_dump(consumer_spec("flip", namespace, num_partitions=1, per_instance=1))
        cluster.api(
            "PATCH",
            _cm_path(namespace, "flip"),
            {
                "metadata": {"annotations": {keys.MANAGED: " False "}},
                "data": {keys.GUEST_SPEC_KEY: shrunk},
            },
        )
        version = _configmap(cluster, namespace, "flip")["metadata"]["resourceVersion"]
        eventually(
            lambda: _passes(op),
            lambda n: n > passes,
            timeout=30,
            what="a pass of the unmanaged ConfigMap",
        )
        # Another pass of it (asked for directly), in case the first was still the old one's.
        passes = _passes(op)
        op.enqueue(namespace, "flip")
        eventually(lambda: _passes(op), lambda n: n > passes, timeout=30, what="one more pass")
        unmanaged = {n: _ours(d) for n, d in managed(cluster, namespace).items()}
        unwritten = _configmap(cluster, namespace, "flip")["metadata"]["resourceVersion"]

        cluster.api(
            "PATCH",
            _cm_path(namespace, "flip"),
            {"metadata": {"annotations": {keys.MANAGED: "yes"}}},
        )
        after = eventually(
            lambda: configmap_annotations(cluster, namespace, "flip"),
            lambda a: (
                a.get(f"{STATUS}expected") == "1"
                and a.get(f"{STATUS}missing") == "0"
                and _ready(a).get("status") == "True"
                and sorted(managed(cluster, namespace)) == ["flip-consumer-0"]
            ),
            timeout=60,
            what="the guest, managed again, to converge on its shrunk spec",
        )
        last = managed(cluster, namespace)
    assert unmanaged == before, "an unmanaged guest's Deployments are left as they are"
    assert unwritten == version, "nothing is written to an unmanaged ConfigMap"
    assert _ready(after)["reason"] == "Reconciled"
    assert last["flip-consumer-0"]["metadata"]["uid"] == before["flip-consumer-0"]["uid"]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"numPartitions": 0}, "numPartitions"),
    ({"numPartitions": -5}, "numPartitions"),
    ({"numPartitions": "ten"}, "numPartitions"),
    ({"numPartitions": 2**70}, "numPartitions"),
    ({"numPartitionsPerInstance": 0}, "numPartitionsPerInstance"),
]


def test_bad_partition_counts_on_a_running_guest_are_named_and_touch_no_deployment(
    cluster: Cluster, namespace: str
) -> None:
    good = consumer_spec("nums", namespace, num_partitions=2, per_instance=1)
    cluster.apply(guest_configmap("nums", namespace, good))
    with in_process_operator(cluster, namespace=namespace):
        eventually(
            lambda: configmap_annotations(cluster, namespace, "nums"),
            lambda a: a.get(f"{STATUS}expected") == "2" and a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="the guest to converge on 2 instances",
        )
        before = {n: _ours(d) for n, d in managed(cluster, namespace).items()}
        refused: dict[str, dict[str, Any]] = {}
        for change, field in BAD:
            cluster.apply(guest_configmap("nums", namespace, {**good, **change}))
            found = eventually(
                lambda: _ready(configmap_annotations(cluster, namespace, "nums")),
                lambda r, field=field: (
                    r.get("reason") == "InvalidSpec" and f".{field}" in r.get("message", "")
                ),
                timeout=30,
                what=f"{change} to be refused naming {field}",
            )
            refused[json.dumps(change)] = found
            # Back to the good spec between two bad ones, so each refusal is its own.
            cluster.apply(guest_configmap("nums", namespace, good))
            eventually(
                lambda: _ready(configmap_annotations(cluster, namespace, "nums")),
                lambda r: r.get("status") == "True",
                timeout=30,
                what="the good spec to be Ready again",
            )
        after = {n: _ours(d) for n, d in managed(cluster, namespace).items()}
    assert after == before, "no bad spec deletes or writes a Deployment"
    for what, found in refused.items():
        assert found["status"] == "False", what
        assert found["message"].startswith("data.consumer.yaml."), (what, found)
