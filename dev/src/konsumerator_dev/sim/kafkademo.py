"""``make demo`` on a real Kafka broker: real lag, real consumer processes, real CPU limits.

One command, on a machine with Java and Maven (``hack/prereqs.sh --kafka``):

1. build (or reuse) the control plane and fetch the broker; start the local cluster ``demo``
   with Prometheus, the Kafka broker and the lag exporter (``konsumerator_dev.testenv``);
2. create topic ``orders`` and produce to every partition at a steady rate;
3. install the CRD, start the operator, apply ``examples/consumer.yaml`` sized for a 2-core
   machine (:func:`kafka_demo_consumer`: its queries unchanged but for a shorter rate window);
4. run a real consumer process (``examples/consumer-app``) for every Running pod, under the
   pod's CPU limit (``konsumerator_dev.testenv.podrunner``);
5. after about a minute, a downstream outage freezes every consumer for a minute; lag read
   from Kafka grows, the operator scales up after its pending period, the backlog drains when
   the outage ends, and the operator scales back down;
6. refresh the screen: each instance's lag as Kafka reports it, its CPU, scaling state and
   consumption, its consumer's process id and restarts, and the operator's changes. Ctrl-C
   (or ``--duration``) stops everything.

The CPU shown is what the instance's running consumer process is held to (the pod's
actuated resources, which the pod runner applies), not the Deployment's template: with
in-place resize the template keeps its size while the pods are resized. A restart is a new
consumer process for an instance that already had one (:class:`Restarts`), whatever caused
it (a rollout, a crash), so an in-place resize shows as a CPU change with the same pid.

``--simulator`` runs the previous demo instead (no Java needed): a simulated topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from konsumerator.domain import keys
from konsumerator_dev.sim import live
from konsumerator_dev.sim.demo import (
    DEMO_AUTOSCALER,
    DEMO_PROMETHEUS,
    DEMO_RATE_WINDOW,
    INCIDENT_AT_S,
    INCIDENT_LENGTH_S,
    demo_consumer,
    pod_resources,
    run,
    stop_operator,
)
from konsumerator_dev.sim.screen import Row, View, display, mmss, screen
from konsumerator_dev.sim.workload import DemoOptions

#: Sized for a shared 2-core machine: 4 consumers at 5 msg/s and 10 ms of CPU per message use
#: 20% of a core together. Steady traffic needs 50m each (minAllowed 100m leaves headroom);
#: a minute's outage makes the backlog need more than 100m to drain within recoveryTime.
PARTITIONS = 4
PRODUCTION = 5.0
WORK_MS = 10
CONSUMER_CPU: Mapping[str, str] = {"min": "100m", "max": "500m"}
KAFKA_PROMETHEUS: Mapping[str, str] = {"tolerableLag": "20s", "recoveryTime": "30s"}


def kafka_demo_consumer(doc: Mapping[str, Any], *, prometheus_url: str) -> dict[str, Any]:
    """The sample Consumer for the real-Kafka demo: same queries, small enough for 2 cores."""
    out = demo_consumer(doc, prometheus_url=prometheus_url)
    spec = out["spec"]
    spec["numPartitions"] = PARTITIONS
    spec["numPartitionsPerInstance"] = 1
    prometheus = spec["autoscaler"]["prometheus"]
    prometheus.update(KAFKA_PROMETHEUS)
    prometheus["ratePerCore"] = 1000 // WORK_MS
    prometheus["cpuIncrement"] = "50m"
    first = spec["deploymentTemplate"]["template"]["spec"]["containers"][0]
    topic = _label(prometheus["offset"]["query"], "topic")
    group = _label(prometheus["offset"]["query"], "consumergroup")
    app_env = {
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP": group,
        "WORK_MS_PER_MESSAGE": str(WORK_MS),
        "COMMIT_INTERVAL_SECONDS": "1",
    }
    first["env"] = [e for e in first.get("env") or [] if e.get("name") not in app_env] + [
        {"name": k, "value": v} for k, v in app_env.items()
    ]
    for policy in spec.get("resourcePolicy", {}).get("containerPolicies") or []:
        if policy.get("containerName") == first["name"]:
            policy["minAllowed"]["cpu"] = CONSUMER_CPU["min"]
            policy["maxAllowed"]["cpu"] = CONSUMER_CPU["max"]
    return out


def _label(query: str, name: str) -> str:
    """The value of label ``name`` in a PromQL selector (``topic="orders"`` -> ``orders``)."""
    marker = f'{name}="'
    start = query.index(marker) + len(marker)
    return query[start : query.index('"', start)]


@dataclass
class Offsets:
    """Kafka's offsets at one frame, and the consumption rates since the previous one."""

    latest: Mapping[int, int]
    committed: Mapping[int, int]
    at: float
    consumed_rate: dict[int, float] = field(default_factory=dict)

    def since(self, before: Offsets | None) -> Offsets:
        if before is not None and self.at > before.at:
            span = self.at - before.at
            self.consumed_rate = {
                p: max(0.0, (c - before.committed.get(p, c)) / span)
                for p, c in self.committed.items()
            }
        return self


@dataclass(frozen=True, slots=True)
class Process:
    """One running consumer process, as the pod runner holds it."""

    pod: str
    pid: int
    cpu_request_m: int | None
    cpu_limit_m: int | None

    @property
    def deployment(self) -> str:
        """The Deployment of the pod (``<deployment>-<replicaset hash>-<suffix>``)."""
        return self.pod.rsplit("-", 2)[0]


class Restarts:
    """Counts, per instance, consumer processes that replaced one it already had.

    The first process of an instance is its start, not a restart; every process id seen
    after it is one restart (during a rollout the old and the new process briefly run side
    by side: the new one still counts once).
    """

    def __init__(self) -> None:
        self._seen: dict[str, set[int]] = {}

    def observe(self, instance: str, pids: Sequence[int]) -> int:
        seen = self._seen.setdefault(instance, set())
        seen.update(pids)
        return max(0, len(seen) - 1)

    @property
    def total(self) -> int:
        return sum(max(0, len(s) - 1) for s in self._seen.values())


def _m(millicores: int | None) -> str:
    return "-" if millicores is None else f"{millicores}m"


def rows_from_kafka(
    deployments: Sequence[Mapping[str, Any]],
    *,
    offsets: Offsets,
    production: float,
    container: str,
    now: float,
    processes: Sequence[Process] = (),
    restarts: Restarts | None = None,
) -> tuple[list[Row], int]:
    """One row per managed Deployment, lag from Kafka's offsets; and total CPU requests (m).

    CPU comes from the instance's newest running process (what its pod's status reports as
    actuated), else from the size the Deployment's pods are given (no process yet)."""
    from konsumerator.domain import partitions as partitioning
    from konsumerator.domain.rendering import parse_time
    from konsumerator.domain.resources import from_strings

    rows: list[Row] = []
    total_cpu_m = 0
    for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
        annotations = d["metadata"].get("annotations") or {}
        parts = partitioning.parse_list(annotations.get(keys.PARTITION, "")) or ()
        if not parts:
            continue
        res = pod_resources(d, container=container)
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        cpu = f"{requests.get('cpu', '-')}/{limits.get('cpu', '-')}"
        cpu_m = from_strings(requests=requests, limits=limits).cpu_req_m or 0
        mine = sorted(
            (p for p in processes if p.deployment == d["metadata"]["name"]), key=lambda p: p.pid
        )
        if mine:
            newest = mine[-1]  # pids grow: a rollout's new process is the last one
            cpu = f"{_m(newest.cpu_request_m)}/{_m(newest.cpu_limit_m)}"
            cpu_m = newest.cpu_request_m or 0
        total_cpu_m += cpu_m
        pids = [p.pid for p in mine]
        behind = {p: max(0, offsets.latest.get(p, 0) - offsets.committed.get(p, 0)) for p in parts}
        changed = parse_time(annotations.get(keys.SCALING_STATUS_CHANGE))
        rows.append(
            Row(
                name=d["metadata"]["name"],
                partitions=",".join(str(p) for p in parts),
                lag_msgs=float(sum(behind.values())),
                lag_s=max(behind.values()) / production if production > 0 else 0.0,
                cpu=cpu,
                memory=str(requests.get("memory", "-")),
                status=annotations.get(keys.SCALING_STATUS, "-"),
                since=mmss(now - changed.timestamp()) if changed is not None else "-",
                consuming=f"{sum(offsets.consumed_rate.get(p, 0.0) for p in parts):,.1f} msg/s",
                pid=",".join(str(pid) for pid in pids) or "-",
                restarts=(
                    restarts.observe(d["metadata"]["name"], pids) if restarts is not None else None
                ),
            )
        )
    return rows, total_cpu_m


def _indent(line: str) -> None:
    print(f"        {line}", flush=True)


def phase(t: float, *, at: float, length: float, lag_s: float) -> str:
    """What the demo is showing now; ``lag_s`` is the worst instance's lag in seconds of
    production (after the outage, below a second means the backlog is gone)."""
    if t < at:
        return f"steady traffic; a downstream outage starts at {mmss(at)}"
    if t < at + length:
        return f"OUTAGE: every consumer is stalled until {mmss(at + length)}"
    if lag_s >= 1.0:
        return "outage over: consumers drain the backlog"
    return "backlog drained: consumers keep up with production"


class KafkaDemo:
    """Everything the real-Kafka demo starts, so that everything can be stopped."""

    def __init__(self, args: DemoOptions) -> None:
        self.args = args
        self.cluster: Any = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.runner: Any = None
        self.producer: Any = None
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[demo {time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def start(self) -> None:
        from konsumerator.cli import crd_text
        from konsumerator_dev.testenv import kafka, kafkatools
        from konsumerator_dev.testenv.build import build
        from konsumerator_dev.testenv.lifecycle import up
        from konsumerator_dev.testenv.podrunner import PodRunner

        args = self.args
        self.say("1/6 control-plane binaries, Prometheus and the Kafka broker (fetched once)")
        build(out=_indent)
        kafka.fetch(out=_indent)
        self.say(f"2/6 starting cluster {args.name!r} with Prometheus, Kafka and the lag exporter")
        self.cluster = cluster = up(args.name, with_kafka=True, out=_indent)

        doc, _ = live.read_consumer(args.consumer)
        consumer = kafka_demo_consumer(doc, prometheus_url=cluster.prometheus_url)
        query = consumer["spec"]["autoscaler"]["prometheus"]["offset"]["query"]
        self.topic, self.group = _label(query, "topic"), _label(query, "consumergroup")
        self.namespace = consumer["spec"]["namespace"]
        self.container = consumer["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][
            0
        ]["name"]
        kafkatools.create_topic(cluster.kafka_bootstrap, self.topic, PARTITIONS)
        self.producer = kafkatools.SteadyProducer(
            cluster.kafka_bootstrap, self.topic, partitions=PARTITIONS, rate=PRODUCTION
        ).__enter__()
        self.say(
            f"3/6 topic {self.topic!r}: {PARTITIONS} partitions, {PRODUCTION:g} msg/s each; "
            f"consumers spend {WORK_MS} ms of CPU per message"
        )

        self.say("4/6 installing the Consumer CRD and starting the operator")
        cluster.kubectl("apply", "-f", "-", input=crd_text())
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{keys.PLURAL}.{keys.GROUP}",
            "--timeout=60s",
        )
        log_dir = cluster.state_dir.parent.parent / "demo-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.operator_log = log_dir / "operator.log"
        with self.operator_log.open("wb") as log:
            self.operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "konsumerator",
                    "run",
                    f"--kubeconfig={cluster.kubeconfig}",
                    "--metrics-bind-address=0",
                    "--health-probe-bind-address=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.say(f"        operator log: {self.operator_log}")

        self.say("5/6 the pod runner: a real consumer process for every Running pod")
        self.runner = PodRunner(
            cluster,
            overrides={"KAFKA_BROKERS": cluster.kafka_bootstrap},
            namespace=self.namespace,
            out=lambda line: None,
        ).start()
        self.say(f"        CPU limits: {self.runner.limiter.description}")

        timings = {
            **DEMO_AUTOSCALER,
            **DEMO_PROMETHEUS,
            **KAFKA_PROMETHEUS,
            "rate()": f"[{DEMO_RATE_WINDOW}]",
        }
        self.say(
            f"6/6 applying {args.consumer} ({PARTITIONS} partitions, ratePerCore "
            f"{1000 // WORK_MS}): " + ", ".join(f"{k} {v}" for k, v in timings.items())
        )
        cluster.apply(yaml.safe_dump(consumer, sort_keys=False))

    def watch(self) -> None:
        from konsumerator_dev.testenv import kafkatools

        args, cluster = self.args, self.cluster
        assert self.operator is not None
        client = kafkatools.admin(cluster.kafka_bootstrap)
        at = args.at if args.at is not None else INCIDENT_AT_S
        length = args.length if args.length is not None else INCIDENT_LENGTH_S
        view = View()
        began = time.monotonic()
        every = args.once_per or args.refresh
        interactive = args.once_per is None and sys.stdout.isatty()
        stalled = False
        previous: Offsets | None = None
        restarts = Restarts()
        with display(interactive=interactive) as shown:
            while args.duration is None or time.monotonic() - began < args.duration:
                if self.operator.poll() is not None:
                    raise RuntimeError(f"the operator exited; see {self.operator_log}")
                t = time.monotonic() - began
                if not stalled and t >= at:
                    self.runner.stall(length)
                    stalled = True
                items = cluster.api(
                    "GET", f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
                )["items"]
                managed = [
                    d
                    for d in items
                    if (d["metadata"].get("labels") or {}).get(keys.LABEL_MANAGED_BY)
                    == keys.MANAGED_BY_VALUE
                ]
                offsets = Offsets(
                    latest=kafkatools.latest_offsets(client, self.topic, PARTITIONS),
                    committed=kafkatools.committed_offsets(
                        client, self.group, self.topic, PARTITIONS
                    ),
                    at=time.monotonic(),
                ).since(previous)
                previous = offsets
                running = [
                    Process(
                        pod=name,
                        pid=proc.pid,
                        cpu_request_m=pod.cpu_request_m,
                        cpu_limit_m=pod.cpu_limit_m,
                    )
                    for name, (pod, proc) in self.runner.processes().items()
                ]
                rows, cpu_m = rows_from_kafka(
                    managed,
                    offsets=offsets,
                    production=PRODUCTION,
                    container=self.container,
                    now=time.time(),
                    processes=running,
                    restarts=restarts,
                )
                view.observe(t=t, rows=rows, total_cpu_m=cpu_m)
                consumers = cluster.kubectl(
                    "get", keys.PLURAL, "-n", self.namespace, check=False
                ).stdout
                header = (
                    f"Konsumerator demo on real Kafka · cluster {args.name!r} · {mmss(t)} · "
                    f"{len(running)} consumer processes, {restarts.total} restarts"
                    f"{' · Ctrl-C stops everything' if args.duration is None else ''}"
                )
                frame = screen(
                    header=header,
                    consumers=consumers,
                    rows=rows,
                    view=view,
                    phase=phase(
                        t, at=at, length=length, lag_s=max((r.lag_s for r in rows), default=0.0)
                    ),
                )
                shown.show(frame, at=t)
                time.sleep(every)

    def stop(self) -> None:
        from konsumerator_dev.testenv.lifecycle import down

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        if self.operator is not None:
            stop_operator(self.operator, say=self.say)
        if self.runner is not None:
            self.say("stopping the consumer processes")
            self.runner.close()
        if self.producer is not None:
            self.producer.__exit__(None, None, None)
        if self.cluster is not None:
            if self.args.keep:
                self.say(f"leaving cluster {self.args.name!r} running (--keep)")
            else:
                self.say(f"stopping cluster {self.args.name!r}")
                down(self.args.name, out=lambda line: print(f"        {line}", flush=True))
        self.say("done")


def main(args: DemoOptions) -> int:
    return run(lambda: KafkaDemo(args), once_per=args.once_per)
