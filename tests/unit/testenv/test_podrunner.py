"""Which pods get a consumer process, with what env and CPU (the pod runner's pure part)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from konsumerator_dev.testenv.cluster import NODE_NAME
from konsumerator_dev.testenv.podrunner import PodProcess, desired

POD: dict[str, Any] = {
    "metadata": {"uid": "u1", "namespace": "ns", "name": "orders-0-abc"},
    "spec": {
        "nodeName": NODE_NAME,
        "containers": [
            {"name": "sidecar", "env": [{"name": "X", "value": "1"}]},
            {
                "name": "consumer",
                "env": [
                    {"name": "KONSUMERATOR_PARTITION", "value": "0,1"},
                    {"name": "KONSUMERATOR_INSTANCE", "value": "0"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s"}}},
                ],
                "resources": {"limits": {"cpu": "250m"}, "requests": {"cpu": "0.1"}},
            },
        ],
    },
    "status": {"phase": "Running"},
}


def _pod(**changes: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    for path, value in changes.items():
        node = pod
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return pod


def test_running_managed_pod_gets_its_env_and_cpu() -> None:
    assert desired(POD) == PodProcess(
        uid="u1",
        namespace="ns",
        name="orders-0-abc",
        container="consumer",
        env={"KONSUMERATOR_PARTITION": "0,1", "KONSUMERATOR_INSTANCE": "0"},
        cpu_limit_m=250,
        cpu_request_m=100,
    )


@pytest.mark.parametrize(
    ("why", "pod"),
    [
        ("pending", _pod(status__phase="Pending")),
        ("succeeded", _pod(status__phase="Succeeded")),
        ("terminating", _pod(metadata__deletionTimestamp="2026-01-01T00:00:00Z")),
        ("another node", _pod(spec__nodeName="real-node")),
        ("not managed", _pod(spec__containers=[{"name": "c", "env": []}])),
    ],
)
def test_pods_without_a_process(why: str, pod: dict[str, Any]) -> None:
    assert desired(pod) is None, why


def test_pod_without_limits_runs_unlimited() -> None:
    pod = _pod()
    pod["spec"]["containers"][1]["resources"] = {}
    found = desired(pod)
    assert found is not None
    assert (found.cpu_limit_m, found.cpu_request_m) == (None, None)


def test_custom_partition_env_key_marks_the_container() -> None:
    pod = _pod()
    pod["spec"]["containers"][1]["env"][0]["name"] = "MY_PARTITIONS"
    assert desired(pod) is None
    found = desired(pod, partition_env="MY_PARTITIONS")
    assert found is not None
    assert found.env["MY_PARTITIONS"] == "0,1"


def _with_statuses(*statuses: dict[str, Any]) -> dict[str, Any]:
    pod = _pod()
    pod["status"]["containerStatuses"] = list(statuses)
    return pod


def test_the_cpu_applied_is_what_the_status_reports_as_actuated() -> None:
    # the spec asks for 250m; the node (KWOK's stages, standing in for kubelet) still reports
    # 100m: a resize not yet acknowledged, or refused as Infeasible, changes no process
    actuated = {
        "name": "consumer",
        "resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "50m"}},
    }
    found = desired(_with_statuses({"name": "sidecar", "resources": {}}, actuated))
    assert found is not None
    assert (found.cpu_limit_m, found.cpu_request_m) == (100, 50)


@pytest.mark.parametrize(
    "statuses",
    [
        (),
        ({"name": "consumer", "ready": True},),
        ({"name": "sidecar", "resources": {"limits": {"cpu": "1"}}},),
    ],
    ids=["no statuses", "no resources reported", "only another container's"],
)
def test_the_spec_cpu_applies_until_the_status_reports_any(
    statuses: tuple[dict[str, Any], ...],
) -> None:
    found = desired(_with_statuses(*statuses))
    assert found is not None
    assert (found.cpu_limit_m, found.cpu_request_m) == (250, 100)
