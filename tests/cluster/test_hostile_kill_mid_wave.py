"""Hostile review: SIGKILL of the operator in the middle of a creation wave, then a restart.

Aspects tested (a real ``konsumerator run`` process, killed by pid with no goodbye once
part of a 200-instance wave exists, with a user's Deployment created under one of the
names the wave has not reached yet):

* after the restart every instance name is held exactly once: every instance but the
  user's is a Deployment controlled by the Consumer, with its own instance index;
  nothing else carries our labels (no orphan, no duplicate index);
* the user's Deployment is untouched (no ownerReference, generation 1, no managedFields
  entry of ours) and reported as a NameConflict; the status counts the rest as running.
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import (
    MANAGED_SELECTOR,
    condition,
    consumer,
    deployments,
    eventually,
    get_consumer,
    operator_process,
    users_deployment,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PARTITIONS = 200
BASE = "blitz-consumer"


def _ours(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments?labelSelector={MANAGED_SELECTOR}"
    items: list[dict[str, Any]] = cluster.api("GET", path)["items"]
    return items


def test_a_killed_operator_restarted_mid_wave_leaves_each_instance_exactly_once(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer("blitz", namespace, num_partitions=PARTITIONS, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    users_name = f"{BASE}-{PARTITIONS - 1}"
    with operator_process(cluster) as first:
        cluster.apply(manifest)
        wait_until(
            lambda: len(_ours(cluster, namespace)) >= 20,
            timeout=90,
            what="a part of the wave to exist",
            interval=0.02,
        )
        first.kill()
    made = len(_ours(cluster, namespace))
    assert made < PARTITIONS, "the wave was over before the kill"
    users = cluster.api(
        "POST",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        users_deployment(namespace, users_name, app=BASE),
    )
    uid = get_consumer(cluster, namespace, "blitz")["metadata"]["uid"]

    with operator_process(cluster):
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "blitz"),
            lambda o: (
                condition(o, "Ready").get("reason") == "NameConflict"
                and (o.get("status") or {}).get("running") == PARTITIONS - 1
            ),
            timeout=150,
            what="the restarted operator to finish the wave around the user's Deployment",
        )

    found = deployments(cluster, namespace)
    assert set(found) == {f"{BASE}-{i}" for i in range(PARTITIONS)}
    ours = _ours(cluster, namespace)
    assert len(ours) == PARTITIONS - 1
    indexes = sorted(int(d["metadata"]["annotations"][keys.CONSUMER_ID]) for d in ours)
    assert indexes == list(range(PARTITIONS - 1))
    for d in ours:
        refs = [r for r in d["metadata"].get("ownerReferences") or [] if r.get("controller")]
        assert [r["uid"] for r in refs] == [uid], d["metadata"]["name"]
    kept = found[users_name]["metadata"]
    assert kept["uid"] == users["metadata"]["uid"]
    assert kept.get("ownerReferences") is None
    assert kept["generation"] == 1
    assert keys.FIELD_MANAGER not in {m["manager"] for m in kept.get("managedFields") or []}
    assert condition(obj, "Ready")["message"].endswith(users_name)
