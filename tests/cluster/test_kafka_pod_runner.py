"""The pod runner: a real consumer process per Running pod, under the pod's CPU limit.

KWOK marks pods Running without running them; the runner gives each managed pod on the KWOK
node a process of the example consumer with the pod's env, puts it under the pod's CPU limit
(a CPU cgroup where one is writable), changes the limit in place when the pod is resized,
and stops the process when the pod goes away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operating import eventually

from konsumerator_dev.testenv import Cluster, kafkatools, wait_until
from konsumerator_dev.testenv.cpulimit import CgroupV1, CgroupV2, Limiter
from konsumerator_dev.testenv.podrunner import PodRunner

#: Long enough to see the stall on a busy machine, where a stopped process shows as such
#: only once it gets a core (and, under its quota, its next CFS period).
STALL_S = 10.0


def _deployment(name: str, *, topic: str, limit: str, request: str) -> dict[str, Any]:
    env = {
        "KONSUMERATOR_PARTITION": "0,1",
        "KONSUMERATOR_INSTANCE": "0",
        "KAFKA_BROKERS": "kafka.invalid:9092",  # replaced by the runner with the local broker
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP": topic,
        "WORK_MS_PER_MESSAGE": "1",
        "COMMIT_INTERVAL_SECONDS": "0.5",
    }
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
                            "name": "consumer",
                            "image": "registry.invalid/example-consumer:dev",
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "resources": {
                                "limits": {"cpu": limit, "memory": "256Mi"},
                                "requests": {"cpu": request, "memory": "256Mi"},
                            },
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
def runner(cluster: Cluster, kafka: str, namespace: str) -> Iterator[PodRunner]:
    with PodRunner(cluster, overrides={"KAFKA_BROKERS": kafka}, namespace=namespace) as running:
        yield running
    assert not running.processes(), "the runner left processes behind"


def _quota_of(limiter: Limiter, key: str) -> str:
    """The limit the kernel holds for ``key``, as its cgroup file says."""
    if isinstance(limiter, CgroupV1):
        return (limiter.root / key / "cpu.cfs_quota_us").read_text().strip()
    assert isinstance(limiter, CgroupV2)
    return (limiter.root / key / "cpu.max").read_text().split()[0]


def _members(limiter: Limiter, key: str) -> set[int]:
    assert isinstance(limiter, CgroupV1 | CgroupV2)
    return {int(pid) for pid in (limiter.root / key / "cgroup.procs").read_text().split()}


def _state(pid: int) -> str:
    """The process state letter from /proc (``T``: stopped by a signal)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()[0]


def test_pod_gets_a_consumer_under_its_cpu_limit_resized_in_place_and_stopped_with_it(
    cluster: Cluster, kafka: str, namespace: str, runner: PodRunner
) -> None:
    # this machine kind has a writable cgroup v1 cpu hierarchy (kubelet's mechanism); a
    # machine without one would get the user-space fallback, which this test does not cover
    assert isinstance(runner.limiter, CgroupV1 | CgroupV2), runner.limiter.description
    topic = f"runner-{namespace}"
    kafkatools.create_topic(kafka, topic, 2)
    cluster.apply(_deployment("orders", topic=topic, limit="300m", request="100m"), namespace)

    found = eventually(
        runner.processes, lambda procs: len(procs) == 1, timeout=60, what="one consumer process"
    )
    ((pod_name, (pod, proc)),) = found.items()
    assert pod.env["KONSUMERATOR_PARTITION"] == "0,1"
    assert proc.alive()
    assert _quota_of(runner.limiter, pod.uid) == "30000"  # 300m of every 100 ms period
    assert proc.pid in _members(runner.limiter, pod.uid)

    # it consumes with the pod's env: its group commits on both of its partitions
    with kafkatools.SteadyProducer(kafka, topic, partitions=2, rate=20):
        client = kafkatools.admin(kafka)
        eventually(
            lambda: kafkatools.committed_offsets(client, topic, topic, 2),
            lambda committed: min(committed.values()) > 0,
            timeout=60,
            what="commits on partitions 0 and 1",
        )

    # a stall (the demo's downstream outage) freezes the process, and it goes on afterwards
    # SIGSTOP is delivered when the process next runs (a throttled or waiting one a moment
    # later), so the stopped state is waited for, within the stall
    runner.stall(STALL_S)
    wait_until(lambda: _state(proc.pid) == "T", timeout=STALL_S, what="the stall to stop it")
    wait_until(lambda: _state(proc.pid) != "T", timeout=30, what="the stall to end")

    # an in-place resize (the pod's resize subresource) changes the quota, not the process
    patch = {"spec": {"containers": [{"name": "consumer", "resources": {
        "limits": {"cpu": "600m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }}]}}  # fmt: skip
    response = cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{pod_name}/resize",
        patch,
        content_type="application/strategic-merge-patch+json",
    )
    assert response.ok, response.text
    wait_until(
        lambda: _quota_of(runner.limiter, pod.uid) == "60000",
        timeout=30,
        what="the quota of the resized pod",
    )
    (_, same_proc), *_ = runner.processes().values()
    assert same_proc.pid == proc.pid
    assert proc.alive()

    # a resize the node refuses (Infeasible, from the KWOK stages) is not applied: the
    # runner follows what the pod's status reports as actuated, as a container runtime does
    too_big = {"spec": {"containers": [{"name": "consumer", "resources": {
        "limits": {"cpu": "18", "memory": "256Mi"},
        "requests": {"cpu": "17", "memory": "256Mi"},
    }}]}}  # fmt: skip
    response = cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{pod_name}/resize",
        too_big,
        content_type="application/strategic-merge-patch+json",
    )
    assert response.ok, response.text
    path = f"/api/v1/namespaces/{namespace}/pods/{pod_name}"
    eventually(
        lambda: cluster.api("GET", path)["status"].get("conditions") or [],
        lambda conditions: any(c.get("reason") == "Infeasible" for c in conditions),
        timeout=30,
        what="the node to refuse the resize",
    )
    seen = runner.passes
    wait_until(lambda: runner.passes >= seen + 2, timeout=30, what="two runner passes")
    assert _quota_of(runner.limiter, pod.uid) == "60000"

    cluster.kubectl("delete", "deployment", "orders", "-n", namespace, "--wait=false")
    wait_until(lambda: not proc.alive(), timeout=60, what="the consumer to stop with its pod")
    assert not runner.processes()


def test_a_stall_holds_the_process_of_a_replacing_pod_until_it_ends(
    cluster: Cluster, kafka: str, namespace: str, runner: PodRunner
) -> None:
    # a downstream outage outlives a pod: the operator resizing a stalled instance replaces its
    # pod, and the new process must stay frozen (no progress, lag keeps rising) until it ends
    topic = f"replaced-{namespace}"
    kafkatools.create_topic(kafka, topic, 2)
    cluster.apply(_deployment("orders", topic=topic, limit="300m", request="100m"), namespace)
    first = eventually(
        runner.processes, lambda procs: len(procs) == 1, timeout=60, what="one consumer process"
    )
    ((old_pod, (_, old)),) = first.items()

    runner.stall(STALL_S * 60)  # ended below, by end_stall
    wait_until(lambda: _state(old.pid) == "T", timeout=STALL_S, what="the stall to stop it")

    resized = _deployment("orders", topic=topic, limit="400m", request="100m")
    cluster.apply(resized, namespace)  # a new pod template: a rollout replaces the pod
    replaced = eventually(
        runner.processes,
        lambda procs: len(procs) == 1 and old_pod not in procs,
        timeout=60,
        what="the replacing pod's consumer process",
    )
    ((_, (_, new)),) = replaced.items()
    wait_until(lambda: _state(new.pid) == "T", timeout=STALL_S, what="the stall to stop it")

    runner.end_stall()
    wait_until(lambda: _state(new.pid) != "T", timeout=30, what="the stall to end")
    assert new.alive()
