"""The fake node answers in-place pod resizes as a kubelet does (KWOK stages of the testenv).

Without it nothing in the local cluster can be resized in place: the apiserver refuses a
``pods/resize`` of a running container that reports no ``status.containerStatuses[].resources``
("Pod running on node without support for resize"), and nothing would ever report a resize
as actuated or infeasible. These tests prove the stages on the real apiserver, with a plain
Deployment (no operator).
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import eventually

from konsumerator.domain.quantities import cpu_millis, memory_bytes
from konsumerator_dev.testenv import NODE_ALLOCATABLE, RESIZE_CAPACITY, ApiResponse, Cluster

ORIGINAL = {
    "limits": {"cpu": "1", "memory": "128Mi"},
    "requests": {"cpu": "100m", "memory": "64Mi"},
}


def _deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.invalid/app:dev",
                            "resources": ORIGINAL,
                        }
                    ]
                },
            },
        },
    }


def _pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.api(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{name}"
    )["items"]
    return found


def _running_pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    (pod,) = eventually(
        lambda: _pods(cluster, namespace, name),
        lambda pods: len(pods) == 1 and pods[0].get("status", {}).get("phase") == "Running",
        timeout=60,
        what=f"one Running pod of {name}",
    )
    return pod


def _get(cluster: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    found: dict[str, Any] = cluster.api(
        "GET", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
    )
    return found


def _resize(cluster: Cluster, pod: dict[str, Any], resources: dict[str, Any]) -> ApiResponse:
    """A strategic merge patch of the ``resize`` subresource, merged by container name."""
    meta = pod["metadata"]
    return cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/resize",
        {"spec": {"containers": [{"name": "app", "resources": resources}]}},
        content_type="application/strategic-merge-patch+json",
    )


def _reported(pod: dict[str, Any]) -> Any:
    (status,) = pod["status"]["containerStatuses"]
    return status.get("resources")


def _resize_conditions(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for c in pod["status"].get("conditions") or []
        if c["type"] in ("PodResizePending", "PodResizeInProgress")
    ]


def _replica_sets(cluster: Cluster, namespace: str) -> int:
    items = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets")["items"]
    return len(items)


def test_a_running_pod_reports_its_resources_and_is_resized_in_place(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(_deployment("web"), namespace)
    pod = _running_pod(cluster, namespace, "web")
    # reported when the container runs, as a kubelet does
    assert _reported(pod) == ORIGINAL

    bigger = {"limits": {"cpu": "2", "memory": "256Mi"}, "requests": {"cpu": "500m"}}
    response = _resize(cluster, pod, bigger)
    assert response.ok, response.text
    target = {
        "limits": {"cpu": "2", "memory": "256Mi"},
        "requests": {"cpu": "500m", "memory": "64Mi"},
    }
    resized = eventually(
        lambda: _get(cluster, pod),
        lambda p: _reported(p) == target,
        timeout=60,
        what="the resize acknowledged in the pod's status",
    )
    assert resized["metadata"]["uid"] == pod["metadata"]["uid"]
    assert resized["spec"]["containers"][0]["resources"] == target
    assert resized["status"]["containerStatuses"][0]["restartCount"] == 0
    assert resized["status"]["observedGeneration"] == resized["metadata"]["generation"] == 2
    assert _resize_conditions(resized) == []
    # the Deployment did not roll out: its template and its one ReplicaSet stay
    deployment = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"] == ORIGINAL
    assert _replica_sets(cluster, namespace) == 1

    # and down again, also in place
    response = _resize(cluster, pod, ORIGINAL)
    assert response.ok, response.text
    eventually(
        lambda: _get(cluster, pod),
        lambda p: _reported(p) == ORIGINAL and p["metadata"]["uid"] == pod["metadata"]["uid"],
        timeout=60,
        what="the scale-down acknowledged",
    )


def _over(resource: str, limit: dict[str, str]) -> str:
    """A request for ``resource`` just above ``limit``'s, in the limit's own units."""
    if resource == "cpu":
        return f"{cpu_millis(limit['cpu']) + 1000}m"
    return f"{memory_bytes(limit['memory']) // 2**20 + 1024}Mi"


@pytest.mark.parametrize("resource", ["cpu", "memory"])
def test_a_resize_beyond_what_the_node_can_resize_is_infeasible_until_taken_back(
    cluster: Cluster, namespace: str, resource: str
) -> None:
    cluster.apply(_deployment("big"), namespace)
    pod = _running_pod(cluster, namespace, "big")
    asked = _over(resource, RESIZE_CAPACITY)
    # within the node's allocatable, so the apiserver admits it and the node decides
    parse = cpu_millis if resource == "cpu" else memory_bytes
    assert parse(asked) < parse(NODE_ALLOCATABLE[resource])
    response = _resize(cluster, pod, {"limits": {resource: asked}, "requests": {resource: asked}})
    assert response.ok, response.text

    pending = eventually(
        lambda: _get(cluster, pod),
        lambda p: bool(_resize_conditions(p)),
        timeout=60,
        what="the node's answer to the resize",
    )
    (condition,) = _resize_conditions(pending)
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodResizePending",
        "True",
        "Infeasible",
    )
    requested = pending["spec"]["containers"][0]["resources"]["requests"][resource]
    assert f"{resource}, requested: {requested}" in condition["message"]
    assert condition["observedGeneration"] == pending["metadata"]["generation"]
    assert _reported(pending) == ORIGINAL  # nothing actuated

    # taken back (the spec equals what runs again): nothing is pending any more
    response = _resize(cluster, pod, ORIGINAL)
    assert response.ok, response.text
    settled = eventually(
        lambda: _get(cluster, pod),
        lambda p: not _resize_conditions(p),
        timeout=60,
        what="the pending resize to be dropped",
    )
    assert _reported(settled) == ORIGINAL
    assert settled["metadata"]["uid"] == pod["metadata"]["uid"]


@pytest.mark.parametrize("resource", ["cpu", "memory"])
def test_the_apiserver_refuses_a_resize_beyond_the_node_allocatable(
    cluster: Cluster, namespace: str, resource: str
) -> None:
    # Kubernetes 1.36's PodResizeValidator admission answers this before any node sees it:
    # 403 Forbidden with cause NodeCapacity (a client's "infeasible" comes in two forms)
    cluster.apply(_deployment("huge"), namespace)
    pod = _running_pod(cluster, namespace, "huge")
    asked = _over(resource, NODE_ALLOCATABLE)
    response = _resize(cluster, pod, {"limits": {resource: asked}, "requests": {resource: asked}})
    assert response.status == 403, response.text
    body = response.json()
    assert {"reason": "NodeCapacity"} in body["details"]["causes"]
    assert f"{resource}, requested" in body["message"]
    unchanged = _get(cluster, pod)
    assert unchanged["metadata"]["generation"] == 1
    assert _reported(unchanged) == ORIGINAL


#: Quantities around :data:`RESIZE_CAPACITY` in the notations the apiserver keeps (it stores
#: the canonical form, which is what the stages' jq parser reads): suffixes, plain numbers,
#: millis, decimal and binary SI, exponents.
NOTATIONS = {
    "cpu": ["16", "16001m", "17", "15500m", "1e1", "2e1"],
    "memory": ["128Gi", "131073Mi", "140G", "137438953472", "137438953473", "13e10", "14e10"],
}


@pytest.mark.parametrize("resource", ["cpu", "memory"])
def test_the_node_reads_the_requests_in_every_notation(
    cluster: Cluster, namespace: str, resource: str
) -> None:
    cluster.apply(_deployment("notation"), namespace)
    pod = _running_pod(cluster, namespace, "notation")
    parse = cpu_millis if resource == "cpu" else memory_bytes
    for asked in NOTATIONS[resource]:
        response = _resize(
            cluster, pod, {"limits": {resource: asked}, "requests": {resource: asked}}
        )
        assert response.ok, f"{asked}: {response.text}"
        # both answers (actuated or infeasible) set the status' observedGeneration
        answered = eventually(
            lambda: _get(cluster, pod),
            lambda p: p["status"].get("observedGeneration") == p["metadata"]["generation"],
            timeout=60,
            what=f"the node's answer to {resource} {asked}",
        )
        infeasible = parse(asked) > parse(RESIZE_CAPACITY[resource])
        reasons = [c.get("reason") for c in _resize_conditions(answered)]
        assert reasons == (["Infeasible"] if infeasible else []), asked
        spec = answered["spec"]["containers"][0]["resources"]
        assert (_reported(answered) == spec) is not infeasible, asked
