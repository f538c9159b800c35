"""The operator against real Kafka: real lag, real consumer processes, real CPU limits.

A steady producer writes to a topic; the pod runner gives every pod of the Consumer's
Deployments a real consumer process (the example consumer, under the pod's CPU limit). Lag is
read by the operator through the lag exporter and Prometheus, and checked by the tests from
the broker's own offsets. Assertions are about direction and bounds, never exact values: under
load the backlog never reaches 0 (its floor is production x commit interval).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    consumer,
    container,
    deployments,
    eventually,
    in_process_operator,
    install_crd,
    managed,
)

from konsumerator.domain import keys
from konsumerator.domain.quantities import cpu_millis
from konsumerator_dev.sim.demo import pod_resources
from konsumerator_dev.testenv import Cluster, kafkatools, wait_until
from konsumerator_dev.testenv.podrunner import PodRunner

#: Each message costs this much CPU: a consumer limited to 500m handles 250 messages/s.
WORK_MS = 2
RATE_PER_CORE = 1000 // WORK_MS
#: Messages/s produced to each partition: 40 messages/s need 80m, so 100m (minAllowed).
PRODUCTION = 20
#: maxAllowed of the Consumers below: an instance at it cannot be scaled up.
MAX_CPU_M = 500
#: Longer than any wait of the stalled part of a test: the test ends the stall itself.
STALL_S = 600.0


def _kafka_consumer(
    name: str, namespace: str, cluster: Cluster, *, topic: str, **kw: Any
) -> dict[str, Any]:
    manifest = consumer(
        name,
        namespace,
        prometheus_url=cluster.prometheus_url,
        topic=topic,
        pending_up="5s",
        pending_down="8s",
        min_cpu="100m",
        max_cpu=f"{MAX_CPU_M}m",
        **kw,
    )
    manifest["spec"]["autoscaler"]["prometheus"].update(
        {
            "minSyncPeriod": "2s",
            "tolerableLag": "3s",
            "criticalLag": "1h",
            "recoveryTime": "10s",
            "ratePerCore": RATE_PER_CORE,
            "cpuIncrement": "100m",
        }
    )
    app_env = {
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP": topic,
        "WORK_MS_PER_MESSAGE": str(WORK_MS),
        "COMMIT_INTERVAL_SECONDS": "0.5",
    }
    template = manifest["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]
    template["env"] += [{"name": k, "value": v} for k, v in app_env.items()]
    return manifest


def _sized(deployment: dict[str, Any], kind: str = "requests") -> int:
    """The CPU the Deployment's pods are given: the in-place target (the default
    updateMode) over the template's."""
    resources = pod_resources(deployment, container=container(deployment)["name"])
    return cpu_millis(resources[kind]["cpu"])


def _cpu_request(deployment: dict[str, Any]) -> int:
    return _sized(deployment)


def _the_pid(runner: PodRunner, *, after: str) -> int:
    """The pid of the instance's one consumer process, two runner passes from now (a pod
    replaced meanwhile would show as a new process, or as two)."""
    seen = runner.passes
    wait_until(lambda: runner.passes >= seen + 2, timeout=30, what=f"two runner passes {after}")
    found = eventually(
        runner.processes, lambda procs: len(procs) == 1, timeout=60, what="one consumer process"
    )
    ((_, proc),) = found.values()
    return proc.pid


@pytest.fixture
def runner(cluster: Cluster, kafka: str, namespace: str) -> Iterator[PodRunner]:
    install_crd(cluster)
    with PodRunner(cluster, overrides={"KAFKA_BROKERS": kafka}, namespace=namespace) as running:
        yield running


def test_stalled_consumer_lag_scales_up_drains_and_scales_back_down(
    cluster: Cluster, kafka: str, namespace: str, runner: PodRunner
) -> None:
    topic = f"stall-{secrets.token_hex(3)}"
    kafkatools.create_topic(kafka, topic, 2)
    client = kafkatools.admin(kafka)

    def backlog() -> int:
        return kafkatools.backlog(client, group=topic, topic=topic, partitions=2)

    with (
        kafkatools.SteadyProducer(kafka, topic, partitions=2, rate=PRODUCTION),
        in_process_operator(cluster),
    ):
        cluster.apply(
            _kafka_consumer(
                "stall", namespace, cluster, topic=topic, num_partitions=2, per_instance=2
            )
        )
        name = "stall-consumer-0"

        def settled() -> bool:
            # one process, for the pod of the Deployment's current template (the first sizing
            # from metrics replaces the pod the fallback resources created)
            procs = runner.processes()
            limit = _sized(deployments(cluster, namespace)[name], "limits")
            return len(procs) == 1 and all(pod.cpu_limit_m == limit for pod, _ in procs.values())

        wait_until(settled, timeout=90, what="one consumer process for the current pod template")
        # keeping up: the group commits on both partitions (the exporter has lag series for
        # committed partitions only) and the backlog stays near its floor
        eventually(
            lambda: kafkatools.committed_offsets(client, topic, topic, 2),
            lambda committed: min(committed.values()) > 0,
            timeout=60,
            what="the consumer's first commits",
        )
        eventually(backlog, lambda b: b < 100, timeout=60, what="the consumer to keep up")
        # at rest, with room to scale up: the lag of the consumer's start (slow on a busy
        # machine) can make the operator resize the instance first, each time with a new pod.
        # And sized from metrics once (a time in scaling-status-change): an instance created
        # before Prometheus answered takes its first size from metrics at once, so a stall
        # seen in its first pass with metrics would skip the pending period checked below.
        rested = eventually(
            lambda: deployments(cluster, namespace)[name],
            lambda d: (
                _cpu_request(d) < MAX_CPU_M
                and d["metadata"]["annotations"].get(keys.SCALING_STATUS) == "RUNNING"
                and bool(d["metadata"]["annotations"].get(keys.SCALING_STATUS_CHANGE))
            ),
            timeout=120,
            what="the instance at rest below maxAllowed",
        )
        before = _cpu_request(rested)
        pid = _the_pid(runner, after="at rest")

        # a downstream stall: the consumer stops making progress, Kafka lag rises. The stall
        # holds every process of the instance, a replacing pod's too (as a real outage would):
        # a pod resized meanwhile must not end it before the lag is there
        runner.stall(STALL_S)
        eventually(
            backlog, lambda b: b > 300, timeout=60, what="Kafka lag to rise during the stall"
        )

        # the operator goes through its pending period, then gives the instance more CPU
        seen: list[str] = []

        def scaled_up() -> dict[str, Any]:
            deployment = deployments(cluster, namespace)[name]
            seen.append(deployment["metadata"]["annotations"].get(keys.SCALING_STATUS, ""))
            return deployment

        up = eventually(
            scaled_up, lambda d: _cpu_request(d) > before, timeout=90, what="a scale-up"
        )
        assert "PENDING_SCALE_UP" in seen, seen
        peak = _cpu_request(up)
        # in place (the default updateMode): the running consumer is resized, not restarted
        assert _the_pid(runner, after="the scale-up") == pid

        # the outage ends: the resized instance drains the backlog, measured from Kafka
        runner.end_stall()
        eventually(backlog, lambda b: b < 100, timeout=90, what="the backlog to drain")

        # with the lag gone the operator gives the CPU back, after its pending period
        down = eventually(
            lambda: deployments(cluster, namespace)[name],
            lambda d: _cpu_request(d) < peak,
            timeout=90,
            what="a scale-down",
        )
        assert _cpu_request(down) >= 100  # minAllowed
        assert _the_pid(runner, after="the scale-down") == pid


def test_new_partitions_get_a_consumer_after_num_partitions_is_raised(
    cluster: Cluster, kafka: str, namespace: str, runner: PodRunner
) -> None:
    topic = f"grow-{secrets.token_hex(3)}"
    kafkatools.create_topic(kafka, topic, 2)
    client = kafkatools.admin(kafka)
    with (
        kafkatools.SteadyProducer(kafka, topic, partitions=2, rate=5) as producer,
        in_process_operator(cluster),
    ):
        cluster.apply(
            _kafka_consumer(
                "grow", namespace, cluster, topic=topic, num_partitions=2, per_instance=1
            )
        )
        eventually(
            runner.processes, lambda p: len(p) == 2, timeout=60, what="two consumer processes"
        )

        # the topic grows first (as an operator of Kafka would), then the Consumer follows
        kafkatools.add_partitions(kafka, topic, 4)
        producer.set_partitions(4)
        cluster.kubectl(
            "patch", "consumer", "grow", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"numPartitions": 4}}',
        )  # fmt: skip
        eventually(
            lambda: managed(cluster, namespace),
            lambda d: len(d) == 4,
            timeout=60,
            what="four instances",
        )
        # one process per instance (a rollout of the old instances may overlap for a moment)
        eventually(
            lambda: sorted(p.env["KONSUMERATOR_PARTITION"] for p, _ in runner.processes().values()),
            lambda assigned: assigned == ["0", "1", "2", "3"],
            timeout=60,
            what="consumer processes for partitions 0, 1, 2 and 3",
        )

        # the new partitions are consumed: their group commits, measured from Kafka
        eventually(
            lambda: kafkatools.committed_offsets(client, topic, topic, 4),
            lambda committed: committed[2] > 0 and committed[3] > 0,
            timeout=60,
            what="commits on the new partitions 2 and 3",
        )
