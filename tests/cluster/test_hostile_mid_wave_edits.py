"""Hostile review: bad objects arriving while a creation wave is in flight.

Aspects tested (a 120-instance wave, replicas 0, an in-process operator): once part of the
wave exists, the Consumer is edited to a spec the CRD accepts and the operator cannot
honour (``spec.namespace`` naming another namespace), and a Consumer too deep to decode is
created next to it. Then:

* the edited Consumer ends with ``Ready=False, reason=InvalidSpec`` for its new generation
  (naming ``spec.namespace``), and keeps it: the pass that was in flight does not overwrite
  it with a status of the old generation;
* no Deployment appears anywhere but in the Consumer's own namespace, and none is created
  after the refusal has been reported (the new spec is not half-applied);
* the deep Consumer is reported ``UndecodableObject``, and a third, good Consumer created
  meanwhile converges.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from operating import (
    MANAGED_SELECTOR,
    condition,
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PARTITIONS = 120
LEVELS = 1_100


def _ours(cluster: Cluster, namespace: str | None = None) -> list[dict[str, Any]]:
    where = f"/namespaces/{namespace}" if namespace else ""
    path = f"/apis/apps/v1{where}/deployments?labelSelector={MANAGED_SELECTOR}"
    items: list[dict[str, Any]] = cluster.api("GET", path)["items"]
    return items


def _surge(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [d for d in _ours(cluster, namespace) if d["metadata"]["name"].startswith("surge-")]


def _create_deep(cluster: Cluster, namespace: str, name: str) -> None:
    manifest = consumer(name, namespace, num_partitions=2, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["nested"] = "@@deep@@"
    body = json.dumps(manifest).replace('"@@deep@@"', "[" * LEVELS + "]" * LEVELS)
    response = cluster.request("POST", consumer_path(namespace), body.encode())
    assert response.ok, response.text[:500]


def _deep_ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl(
        "get",
        f"{keys.PLURAL}.{keys.GROUP}",
        name,
        "-n",
        namespace,
        "-o",
        "jsonpath={.status.conditions}",
    ).stdout
    found: dict[str, Any] = {c["type"]: c for c in json.loads(out or "[]")}.get("Ready", {})
    return found


def test_a_spec_turned_bad_mid_wave_is_refused_for_its_generation_and_not_half_applied(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer("surge", namespace, num_partitions=PARTITIONS, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    with in_process_operator(cluster):
        cluster.apply(manifest)
        wait_until(
            lambda: len(_ours(cluster, namespace)) >= 10,
            timeout=60,
            what="a part of the wave to exist",
            interval=0.02,
        )
        cluster.api(
            "PATCH", consumer_path(namespace, "surge"), {"spec": {"namespace": "elsewhere"}}
        )
        _create_deep(cluster, namespace, "abyss")
        cluster.apply(consumer("calm", namespace, num_partitions=1, per_instance=1))

        refused = eventually(
            lambda: get_consumer(cluster, namespace, "surge"),
            lambda o: (
                (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
                and condition(o, "Ready").get("reason") == "InvalidSpec"
            ),
            timeout=90,
            what="the edited Consumer to be refused for its new generation",
        )
        assert "spec.namespace" in condition(refused, "Ready")["message"]
        count = len(_surge(cluster, namespace))
        eventually(
            lambda: get_consumer(cluster, namespace, "calm"),
            lambda o: converged(o, 1),
            timeout=60,
            what="the good Consumer to converge meanwhile",
        )
        ready = eventually(
            lambda: _deep_ready(cluster, namespace, "abyss"),
            lambda r: r.get("reason") == "UndecodableObject",
            timeout=60,
            what="the deep Consumer to be reported",
        )
        assert ready["status"] == "False"
        time.sleep(3)  # what a late write of the old pass would need to show up
        later = get_consumer(cluster, namespace, "surge")

    assert later["metadata"]["generation"] == 2
    assert (later.get("status") or {}).get("observedGeneration") == 2
    assert condition(later, "Ready")["reason"] == "InvalidSpec"
    assert len(_surge(cluster, namespace)) == count
    assert not [d for d in _ours(cluster) if d["metadata"]["namespace"] == "elsewhere"]
