"""Guest mode (``--namespace NS``) with nothing but a namespaced ServiceAccount token.

Aspects tested:

* the ServiceAccount's Role grants only namespaced verbs (ConfigMaps, Deployments, Events,
  Leases); with its token, another namespace's ConfigMaps and the cluster-wide list are
  forbidden (403), so the operator really runs without cluster-wide permission;
* the operator (leader-elected on the namespaced Lease ``konsumerator-<NS>``) manages a
  ConfigMap annotated ``konsumerator.lwolf.org/managed``: its Deployments appear with a
  controller ownerReference to the ConfigMap, and the status is written as the
  ``konsumerator.lwolf.org/status.*`` annotations;
* an invalid ConfigMap gets a Warning Event and a ``status.conditions`` annotation naming
  the bad fields, and nothing is created from it;
* a managed ConfigMap in another namespace is ignored.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from operating import (
    consumer_spec,
    events,
    eventually,
    guest_configmap,
    guest_kubeconfig,
    in_process_operator,
    managed,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

STATUS = keys.STATUS_PREFIX


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    name = cluster.create_namespace(
        f"t-guest-other-{secrets.token_hex(3)}", labels={"konsumerator.testenv/test": "true"}
    )
    yield name
    cluster.delete_namespace(name)


def test_guest_mode_runs_with_a_namespaced_token_and_manages_configmap_consumers(
    cluster: Cluster, namespace: str, other_namespace: str, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "guest.kubeconfig"
    token = guest_kubeconfig(cluster, namespace, kubeconfig)

    # The token sees its namespace and nothing else.
    own = cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", token=token)
    assert own.status == 200, own.text
    other = cluster.request("GET", f"/api/v1/namespaces/{other_namespace}/configmaps", token=token)
    assert other.status == 403, other.text
    assert cluster.request("GET", "/api/v1/configmaps", token=token).status == 403
    crd = cluster.request(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", token=token
    )
    assert crd.status == 403

    spec = consumer_spec("payments", namespace, num_partitions=4, per_instance=2)
    cluster.apply(guest_configmap("payments", namespace, spec))
    stray = guest_configmap("stray", other_namespace, consumer_spec("stray", other_namespace))
    cluster.apply(stray)
    invalid_spec = consumer_spec("broken", namespace)
    invalid_spec["numPartitions"] = 0
    invalid_spec["autoscaler"] = {"mode": "prometheus"}
    cluster.apply(guest_configmap("broken", namespace, invalid_spec))

    with in_process_operator(
        cluster, kubeconfig=kubeconfig, namespace=namespace, leader_elect=True
    ):
        found = eventually(
            lambda: managed(cluster, namespace),
            lambda found: len(found) == 2,
            timeout=60,
            what="the guest-mode Deployments",
        )
        cm = eventually(
            lambda: cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/payments"),
            lambda cm: cm["metadata"].get("annotations", {}).get(f"{STATUS}running") == "2",
            timeout=60,
            what="the status annotations of the managed ConfigMap",
        )
        broken = eventually(
            lambda: cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/broken"),
            lambda cm: f"{STATUS}conditions" in cm["metadata"].get("annotations", {}),
            timeout=60,
            what="the status annotation of the invalid ConfigMap",
        )
        warnings = eventually(
            lambda: events(cluster, namespace, involved="broken"),
            lambda evs: any(e["reason"] == "InvalidSpec" for e in evs),
            timeout=30,
            what="an InvalidSpec Event for the invalid ConfigMap",
        )
        lease = cluster.api(
            "GET",
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
            f"{keys.lease_name(namespace=namespace)}",
        )

    assert sorted(found) == ["payments-consumer-0", "payments-consumer-1"]
    for d in found.values():
        [owner] = d["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("ConfigMap", "payments")
        assert owner["uid"] == cm["metadata"]["uid"]
    annotations = cm["metadata"]["annotations"]
    assert annotations[f"{STATUS}expected"] == "2"
    assert annotations[f"{STATUS}missing"] == "0"
    assert annotations[f"{STATUS}outdated"] == "0"
    ready = {c["type"]: c for c in json.loads(annotations[f"{STATUS}conditions"])}["Ready"]
    assert ready["status"] == "True"
    assert lease["spec"]["holderIdentity"]

    conditions = json.loads(broken["metadata"]["annotations"][f"{STATUS}conditions"])
    [bad] = [c for c in conditions if c["type"] == "Ready"]
    assert (bad["status"], bad["reason"]) == ("False", "InvalidSpec")
    assert "data.consumer.yaml.numPartitions" in bad["message"]
    assert "prometheus" in bad["message"]
    [warning] = [e for e in warnings if e["reason"] == "InvalidSpec"]
    assert warning["type"] == "Warning"
    assert "numPartitions" in warning["message"]
    assert not any(n.startswith("broken-") for n in managed(cluster, namespace))
    assert managed(cluster, other_namespace) == {}
    stray_after = cluster.api("GET", f"/api/v1/namespaces/{other_namespace}/configmaps/stray")
    assert not any(k.startswith(STATUS) for k in stray_after["metadata"].get("annotations", {}))
