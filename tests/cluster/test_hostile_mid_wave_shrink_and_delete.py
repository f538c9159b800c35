"""Hostile review: a creation wave cut short by its own Consumer.

A wave is cut into passes of at most ``writes_per_pass`` writes (here 5, so a 60-instance
wave takes a dozen passes); the Consumer can change under it between any two of them.

Aspects tested (replicas 0, an in-process CRD-mode operator, a bystander Consumer beside):

* ``numPartitions`` shrunk from 60 to 1 once part of the wave exists: the Consumer ends
  with exactly its instance 0 (the Deployment it first made, not a re-created one) and
  Ready; grown to 3 afterwards it converges on 3;
* the Consumer deleted with ``propagationPolicy: Foreground`` once part of the wave
  exists: the Consumer goes, and with it every Deployment it controlled, including any
  created by a pass that was in flight; the bystander's Deployment is never written.
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    deployments,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PARTITIONS = 60


def _wave(name: str, namespace: str) -> dict[str, Any]:
    manifest = consumer(name, namespace, num_partitions=PARTITIONS, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    return manifest


def _of(cluster: Cluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    prefix = f"{name}-consumer-"
    return {n: d for n, d in managed(cluster, namespace).items() if n.startswith(prefix)}


def _ours(d: dict[str, Any]) -> dict[str, Any]:
    meta = d["metadata"]
    return {
        "uid": meta["uid"],
        "spec": d.get("spec"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "managed": [
            m for m in meta.get("managedFields") or [] if m.get("manager") == keys.FIELD_MANAGER
        ],
    }


def test_partitions_shrunk_to_one_mid_wave_leave_exactly_the_first_instance(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster, writes_per_pass=5):
        cluster.apply(_wave("shrink", namespace))
        wait_until(
            lambda: len(_of(cluster, namespace, "shrink")) >= 5,
            timeout=60,
            what="a part of the wave to exist",
            interval=0.02,
        )
        first = _of(cluster, namespace, "shrink").get("shrink-consumer-0")
        cluster.api("PATCH", consumer_path(namespace, "shrink"), {"spec": {"numPartitions": 1}})
        shrunk = eventually(
            lambda: get_consumer(cluster, namespace, "shrink"),
            lambda o: (
                converged(o, 1)
                and sorted(_of(cluster, namespace, "shrink")) == ["shrink-consumer-0"]
            ),
            timeout=120,
            what="the Consumer to end with its instance 0 only",
        )
        left = _of(cluster, namespace, "shrink")
        cluster.api("PATCH", consumer_path(namespace, "shrink"), {"spec": {"numPartitions": 3}})
        grown = eventually(
            lambda: get_consumer(cluster, namespace, "shrink"),
            lambda o: converged(o, 3),
            timeout=60,
            what="the Consumer to grow back to 3",
        )
    assert (shrunk.get("status") or {}).get("redundant", 0) == 0
    if first is not None:
        assert left["shrink-consumer-0"]["metadata"]["uid"] == first["metadata"]["uid"]
    assert sorted(_of(cluster, namespace, "shrink")) == [f"shrink-consumer-{i}" for i in range(3)]
    assert grown["status"]["expected"] == 3


def test_a_consumer_deleted_in_the_foreground_mid_wave_takes_every_instance_with_it(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster, writes_per_pass=5) as op:
        cluster.apply(consumer("bystander", namespace, num_partitions=1, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "bystander"),
            lambda o: converged(o, 1),
            timeout=60,
            what="the bystander to converge",
        )
        bystander = {n: _ours(d) for n, d in _of(cluster, namespace, "bystander").items()}
        cluster.apply(_wave("doomed", namespace))
        uid = get_consumer(cluster, namespace, "doomed")["metadata"]["uid"]
        wait_until(
            lambda: len(_of(cluster, namespace, "doomed")) >= 5,
            timeout=60,
            what="a part of the wave to exist",
            interval=0.02,
        )
        cluster.api(
            "DELETE",
            consumer_path(namespace, "doomed"),
            {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"},
        )

        def gone() -> bool:
            held = [
                n
                for n, d in deployments(cluster, namespace).items()
                if any(r["uid"] == uid for r in d["metadata"].get("ownerReferences") or [])
            ]
            consumer_left = cluster.request("GET", consumer_path(namespace, "doomed")).status
            return not held and consumer_left == 404

        wait_until(gone, timeout=120, what="the Consumer and all its Deployments to go")
        after = {n: _ours(d) for n, d in _of(cluster, namespace, "bystander").items()}
        assert op.alive
    assert after == bystander, "the bystander's Deployment is never written"
