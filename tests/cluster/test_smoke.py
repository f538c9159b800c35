"""Smoke tests of the local control plane and Prometheus the cluster tier runs against.

Aspects tested (each proves a piece the operator relies on really works here):

* the apiserver runs the pinned, version-stamped Kubernetes;
* Deployments: the scheduler binds pods to the KWOK node, KWOK makes them Running, and the
  Deployment becomes Available;
* garbage collection: deleting a Deployment removes its ReplicaSet and pods (ownerReferences,
  kcm's garbage collector, KWOK's pod-delete stage);
* CRDs: a CRD installs, and the apiserver rejects a custom object that breaks its OpenAPI
  minimum or its CEL rule;
* RBAC is on: a ServiceAccount token authenticates, is refused (403) what it has no role
  for, and allowed once a RoleBinding grants it;
* Prometheus: a ``file_sd`` target pointing at a test exporter makes its metric queryable
  through the HTTP API within seconds, and Prometheus can be stopped and restarted on the
  same URL mid-run.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from konsumerator_dev.testenv import (
    Cluster,
    MetricsExporter,
    Versions,
    start_prometheus,
    stop_prometheus,
    wait_until,
)

pytestmark = pytest.mark.cluster


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/smoke:1"}]},
            },
        },
    }


def _create_available_deployment(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.api("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", _deployment(name, 3))
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=90s")


def _items(cluster: Cluster, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api("GET", path)["items"]
    return items


def test_apiserver_runs_the_pinned_kubernetes_version(cluster: Cluster) -> None:
    version = cluster.api("GET", "/version")
    assert version["gitVersion"] == Versions.from_env().kubernetes


def test_deployment_with_three_replicas_becomes_available_with_running_pods(
    cluster: Cluster, namespace: str
) -> None:
    _create_available_deployment(cluster, namespace, "web")

    deployment = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert deployment["status"]["availableReplicas"] == 3
    pods = _items(cluster, f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3Dweb")
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-0"}


def test_deleting_a_deployment_garbage_collects_its_replicaset_and_pods(
    cluster: Cluster, namespace: str
) -> None:
    _create_available_deployment(cluster, namespace, "doomed")
    replicasets = f"/apis/apps/v1/namespaces/{namespace}/replicasets"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    assert len(_items(cluster, replicasets)) == 1
    assert len(_items(cluster, pods)) == 3

    cluster.api("DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/doomed")

    wait_until(
        lambda: not _items(cluster, replicasets) and not _items(cluster, pods),
        timeout=60,
        what="the ReplicaSet and pods of a deleted Deployment to be garbage-collected",
    )


_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.testenv.konsumerator.io"},
    "spec": {
        "group": "smoke.testenv.konsumerator.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "minReplicas": {"type": "integer", "minimum": 0},
                                    "maxReplicas": {"type": "integer", "minimum": 1},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.minReplicas <= self.maxReplicas",
                                        "message": "minReplicas must not exceed maxReplicas",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _widget(name: str, min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "smoke.testenv.konsumerator.io/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
    }


def test_crd_installs_and_the_apiserver_rejects_invalid_custom_objects(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(_CRD)
    cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/{_CRD['metadata']['name']}", "--timeout=60s"
    )
    widgets = f"/apis/smoke.testenv.konsumerator.io/v1/namespaces/{namespace}/widgets"

    # Discovery of a fresh CRD can lag its Established condition by a moment.
    wait_until(
        lambda: cluster.request("POST", widgets, _widget("good", 1, 3)).status == 201,
        timeout=30,
        what="a valid Widget to be accepted",
    )
    below_minimum = cluster.request("POST", widgets, _widget("negative", -1, 3))
    breaks_cel_rule = cluster.request("POST", widgets, _widget("inverted", 5, 2))

    assert below_minimum.status == 422, below_minimum.text
    assert "spec.minReplicas" in below_minimum.text
    assert breaks_cel_rule.status == 422, breaks_cel_rule.text
    assert "minReplicas must not exceed maxReplicas" in breaks_cel_rule.text


def test_service_account_token_authenticates_and_rbac_limits_it(
    cluster: Cluster, namespace: str
) -> None:
    token = cluster.service_account_token(namespace, "robot")
    pods = f"/api/v1/namespaces/{namespace}/pods"

    denied = cluster.request("GET", pods, token=token)
    assert denied.status == 403, denied.text  # authenticated (not 401) but not authorised
    assert f"system:serviceaccount:{namespace}:robot" in denied.text
    assert cluster.request("GET", pods, token="not-a-token").status == 401

    cluster.apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {namespace}}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: robot-reads-pods, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects: [{{kind: ServiceAccount, name: robot, namespace: {namespace}}}]
"""
    )
    wait_until(
        lambda: cluster.request("GET", pods, token=token).status == 200,
        timeout=30,
        what="the RoleBinding to grant the ServiceAccount pod reads",
    )
    assert cluster.request("GET", "/api/v1/nodes", token=token).status == 403


def _value(cluster: Cluster, promql: str) -> float | None:
    result = cluster.prometheus_query(promql)
    return float(result[0]["value"][1]) if result else None


def test_file_sd_target_makes_an_exporter_metric_queryable_within_seconds(
    cluster: Cluster, exporter: MetricsExporter
) -> None:
    exporter.set('konsumerator_smoke_lag{topic="orders"} 42\n')
    started = time.monotonic()

    cluster.set_scrape_targets([exporter.target], labels={"suite": "smoke"})

    wait_until(
        lambda: _value(cluster, 'konsumerator_smoke_lag{topic="orders",suite="smoke"}') == 42,
        timeout=30,
        what="the exporter's metric in Prometheus",
    )
    assert time.monotonic() - started < 15
    exporter.set('konsumerator_smoke_lag{topic="orders"} 7\n')
    wait_until(
        lambda: _value(cluster, 'konsumerator_smoke_lag{topic="orders"}') == 7,
        timeout=15,
        what="the new value to be scraped",
    )


def _prometheus_answers(cluster: Cluster) -> bool:
    try:
        with urllib.request.urlopen(f"{cluster.prometheus_url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_prometheus_can_be_stopped_and_restarted_on_the_same_url(
    cluster: Cluster, exporter: MetricsExporter
) -> None:
    exporter.set("konsumerator_smoke_restarts 1\n")
    cluster.set_scrape_targets([exporter.target])
    url = cluster.prometheus_url

    stop_prometheus(cluster)
    assert not cluster.prometheus_running()
    assert not _prometheus_answers(cluster)

    start_prometheus(cluster)
    assert cluster.prometheus_running()
    assert cluster.prometheus_url == url
    wait_until(
        lambda: _value(cluster, "konsumerator_smoke_restarts") == 1,
        timeout=30,
        what="scrapes to resume after a Prometheus restart",
    )
