"""Hostile review: typed objects made too deep to decode through their ``managedFields``.

The projections assumed the kinds the API server types (Deployments, Leases, pods,
ReplicaSets) are never deep: they have no free-form part. They have one:
``metadata.managedFields[].fieldsV1``, which anyone who may update the object can write,
and which the API server accepts thousands of levels deep (measured: 3,000 levels, 26 KB,
stored and served back). Python decoders recurse per level, even to skip a value the
projection never reads, and give up past about a thousand.

Aspects tested (a real apiserver, an in-process operator):

* the guest-mode leader's Lease given a managedFields entry 3,000 levels deep: the
  operator keeps leading (its renewals go on, same holder) and keeps reconciling: a
  ConfigMap changed afterwards is reconciled;
* an instance's Deployment given such an entry in the same write that changes its image
  (a hand edit the operator must revert, compatibility row 60): the image is reverted;
* a Consumer given such an entry in the same write that grows ``numPartitions``: it is
  reconciled (before, its metadata counted as too deep: ``UndecodableObject``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import (
    condition,
    configmap_annotations,
    consumer,
    consumer_path,
    consumer_spec,
    container,
    converged,
    eventually,
    get_consumer,
    guest_configmap,
    in_process_operator,
    managed,
)

from konsumerator.domain import keys
from konsumerator.kube import scanning
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = pytest.mark.cluster

LEVELS = 3_000
STATUS = keys.STATUS_PREFIX


def _deep_managed_fields(obj: dict[str, Any], *, extra: dict[str, Any] | None = None) -> str:
    """A merge patch adding a managedFields entry of another manager whose ``fieldsV1`` nests
    ``LEVELS`` levels (built as text: Python's own json cannot build it either), plus
    ``extra`` merged in."""
    entries = obj["metadata"]["managedFields"]
    hostile = dict(entries[0], manager="hostile", fieldsV1="@@deep@@")
    patch: dict[str, Any] = {**(extra or {})}
    patch["metadata"] = {**patch.get("metadata", {}), "managedFields": [*entries, hostile]}
    deep = '{"f:metadata":{"f:annotations":' + '{"f:a":' * LEVELS + "{}" + "}" * LEVELS + "}}"
    return json.dumps(patch).replace('"@@deep@@"', deep)


def _read(cluster: Cluster, path: str) -> dict[str, Any]:
    """GET one object, its ``metadata.managedFields`` left out (Python's json cannot decode
    the deep entry; ``scanning`` splits without recursing)."""
    response = cluster.request("GET", path)
    assert response.ok, response.text[:300]
    parts = scanning.members(response.text.encode())
    meta = scanning.members(parts["metadata"])
    meta.pop("managedFields", None)
    obj = {k: json.loads(v) for k, v in parts.items() if k != "metadata"}
    obj["metadata"] = {k: json.loads(v) for k, v in meta.items()}
    return obj


def test_a_lease_too_deep_to_decode_does_not_stop_the_leader(
    cluster: Cluster, namespace: str
) -> None:
    lease_path = (
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
        f"{keys.lease_name(namespace=namespace)}"
    )
    cluster.apply(
        guest_configmap("calm", namespace, consumer_spec("calm", namespace, num_partitions=1))
    )
    with in_process_operator(cluster, namespace=namespace, leader_elect=True) as op:
        eventually(
            lambda: configmap_annotations(cluster, namespace, "calm"),
            lambda a: a.get(f"{STATUS}expected") == "1" and a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="the guest to converge",
        )
        lease = cluster.api("GET", lease_path)
        response = cluster.request("PATCH", lease_path, _deep_managed_fields(lease))
        assert response.ok, response.text[:300]
        stored = cluster.request("GET", lease_path).text
        assert stored.count('"f:a"') == LEVELS, "the apiserver keeps the deep entry"
        edited = _read(cluster, lease_path)["spec"]["renewTime"]
        # Two renewals after the edit (every 2 s): the leader went on reading its Lease.
        renewals: list[str] = []

        def renewed() -> bool:
            spec = _read(cluster, lease_path)["spec"]
            if spec["renewTime"] != edited and spec["renewTime"] not in renewals:
                renewals.append(spec["renewTime"])
            return len(renewals) >= 2 or not op.alive

        wait_until(renewed, timeout=30, what="two Lease renewals after the edit")
        assert op.alive, f"the operator ended: {op.error!r}"
        cluster.apply(
            guest_configmap(
                "calm",
                namespace,
                consumer_spec("calm", namespace, num_partitions=2, per_instance=1),
            )
        )
        eventually(
            lambda: configmap_annotations(cluster, namespace, "calm"),
            lambda a: a.get(f"{STATUS}expected") == "2" and a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="a change after the edit to be reconciled",
        )
        holder = _read(cluster, lease_path)["spec"]
        assert op.alive
    assert holder["holderIdentity"] == lease["spec"]["holderIdentity"]


@pytest.mark.usefixtures("crd")
def test_an_instance_too_deep_to_decode_is_still_repaired(cluster: Cluster, namespace: str) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("deep", namespace, num_partitions=1, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "deep"),
            lambda o: converged(o, 1),
            timeout=60,
            what="the Consumer to converge",
        )
        [(name, d)] = managed(cluster, namespace).items()
        image = container(d)["image"]
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        edit = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "consumer", "image": "evil.invalid/x:1"}]}
                }
            }
        }
        response = cluster.request("PATCH", path, _deep_managed_fields(d, extra=edit))
        assert response.ok, response.text[:300]
        repaired = eventually(
            lambda: _read(cluster, path),
            lambda obj: container(obj)["image"] == image,
            timeout=30,
            what="the hand-edited image to be reverted",
        )
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "deep"),
            lambda o: converged(o, 1),
            timeout=30,
            what="the Consumer to be Ready again after the repair",
        )
    assert condition(obj, "Ready")["reason"] == "Reconciled"
    assert repaired["metadata"]["uid"] == d["metadata"]["uid"]


@pytest.mark.usefixtures("crd")
def test_a_consumer_with_deep_managed_fields_is_reconciled_not_quarantined(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("meta", namespace, num_partitions=1, per_instance=1))
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "meta"),
            lambda o: converged(o, 1),
            timeout=60,
            what="the Consumer to converge",
        )
        path = consumer_path(namespace, "meta")
        grow = {"spec": {"numPartitions": 2}}
        response = cluster.request("PATCH", path, _deep_managed_fields(obj, extra=grow))
        assert response.ok, response.text[:300]
        grown = eventually(
            lambda: _read(cluster, path),
            lambda o: converged(o, 2),
            timeout=60,
            what="the edit made with the deep entry to be reconciled",
        )
    assert condition(grown, "Ready")["reason"] == "Reconciled"
