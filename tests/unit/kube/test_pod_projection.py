"""The pod projection (``kube.pods``) and how the act step reads a refused resize.

Aspects tested:

* A pod as the API server returns it decodes into its instance (from its
  ReplicaSet's name and hash label), its spec and running resources, and its
  resize conditions; a pod whose owner is not a ReplicaSet with the hash
  suffix belongs to no instance.
* A ReplicaSet decodes into its UID and its controller's UID (the owner chain).
* ``acting.unsupported`` tells a server without ``pods/resize`` from a pod
  that is gone; ``acting.refused`` tells a resize refused for good (invalid,
  beyond the node) from a missing RBAC permission.
"""

import json
from datetime import UTC, datetime

import pytest

from konsumerator.controllers import acting
from konsumerator.domain.pods import Pending
from konsumerator.domain.resources import Resources
from konsumerator.kube.pods import POD_PROJECTOR, REPLICASET_PROJECTOR
from konsumerator.runtime import errors


def pod_json(*, owner: str = "orders-0-5d8f7", hash_value: str = "5d8f7", **status) -> bytes:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "orders-0-5d8f7-abcde",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": "7",
            "labels": {"pod-template-hash": hash_value, "app": "orders"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner,
                    "uid": "rs",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "env": [{"name": "X", "value": "1"}],
                    "resources": {
                        "requests": {"cpu": "2", "memory": "1Gi"},
                        "limits": {"cpu": "2"},
                    },
                }
            ]
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "1"},
                    },
                }
            ],
            **status,
        },
    }
    return json.dumps(doc).encode()


def test_a_pod_decodes_into_its_instance_resources_and_conditions():
    pod = POD_PROJECTOR.decode(
        pod_json(
            conditions=[
                {"type": "Ready", "status": "True"},
                {
                    "type": "PodResizePending",
                    "status": "True",
                    "reason": "Deferred",
                    "lastTransitionTime": "2026-01-01T00:01:00Z",
                },
            ]
        )
    )
    assert (pod.name, pod.namespace, pod.uid, pod.deployment, pod.owner_uid) == (
        "orders-0-5d8f7-abcde",
        "ns",
        "u-1",
        "orders-0",
        "rs",
    )
    assert pod.spec == {"app": Resources(cpu_req_m=2000, mem_req_b=1 << 30, cpu_lim_m=2000)}
    assert pod.actual == {"app": Resources(cpu_req_m=1000, mem_req_b=1 << 30, cpu_lim_m=1000)}
    assert pod.pending is Pending.DEFERRED
    assert pod.pending_since == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert (pod.running, pod.deleting, pod.in_progress) == (True, False, False)
    assert not pod.actuated(pod.spec)


@pytest.mark.parametrize(
    ("owner", "hash_value"),
    [("orders-0-other", "5d8f7"), ("5d8f7", "5d8f7"), ("orders-0-5d8f7", "")],
    ids=["suffix-differs", "nothing-before-the-hash", "no-hash-label"],
)
def test_a_pod_not_made_by_a_deployments_replicaset_belongs_to_no_instance(owner, hash_value):
    assert POD_PROJECTOR.decode(pod_json(owner=owner, hash_value=hash_value)).deployment == ""


def test_a_kubelet_that_reports_no_resources_reads_as_none():
    raw = json.loads(pod_json())
    del raw["status"]["containerStatuses"][0]["resources"]
    pod = POD_PROJECTOR.decode(json.dumps(raw).encode())
    assert pod.actual == {"app": None}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.NotFound(status=404, reason="NotFound", message='pods "x" not found'), False),
        (
            errors.NotFound(
                status=404,
                reason="NotFound",
                message="the server could not find the requested resource",
            ),
            True,
        ),
        (errors.ServerError(status=405, reason="MethodNotAllowed", message=""), True),
        (errors.Invalid(status=422, reason="Invalid", message="Pod QoS is immutable"), False),
    ],
    ids=["pod-gone", "no-subresource", "method-not-allowed", "invalid"],
)
def test_a_server_without_pods_resize_is_told_from_a_missing_pod(error, expected):
    assert acting.unsupported(error) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.Invalid(status=422, reason="Invalid", message="Pod QoS is immutable"), True),
        (
            errors.Forbidden(
                status=403,
                reason="Forbidden",
                message='pods "x" is forbidden: Node didn\'t have enough capacity: cpu',
            ),
            True,
        ),
        (
            errors.Forbidden(
                status=403,
                reason="Forbidden",
                message='pods "x" is forbidden: User "u" cannot patch resource "pods/resize"',
            ),
            False,
        ),
        (errors.ServerError(status=500, reason="InternalError", message="boom"), False),
    ],
    ids=["invalid", "node-capacity", "rbac", "server-error"],
)
def test_a_refused_resize_is_told_from_a_missing_permission(error, expected):
    assert acting.refused(error) is expected


def test_a_replicaset_decodes_into_its_uid_and_its_controller():
    doc = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "orders-0-5d8f7",
            "namespace": "ns",
            "uid": "rs",
            "resourceVersion": "3",
            "ownerReferences": [
                {"kind": "ConfigMap", "name": "x", "uid": "not-controller"},
                {"kind": "Deployment", "name": "orders-0", "uid": "d-1", "controller": True},
            ],
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app"}]}}},
    }
    rs = REPLICASET_PROJECTOR.decode(json.dumps(doc).encode())
    assert (rs.name, rs.namespace, rs.uid, rs.controller_uid) == (
        "orders-0-5d8f7",
        "ns",
        "rs",
        "d-1",
    )
