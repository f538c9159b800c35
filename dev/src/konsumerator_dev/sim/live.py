"""The simulator as a live process: a fake Kafka topic that the operator really scales.

The pods of a local (KWOK) cluster run nothing, so this process stands in for
both the topic and its consumers. Once a second it lists the Consumer's
Deployments from the API server and hands the model
(:mod:`konsumerator_dev.sim.model`) what it sees: which partitions each
Deployment owns (its partition annotation), the CPU request of the container
that consumes, and a fingerprint of the pod template (a change restarts the
consumer). Between polls it advances the model in small steps of wall time.

It exports what kafka_exporter would, per partition, so the queries a user
writes against a real Kafka work unchanged against it::

    kafka_topic_partition_current_offset{topic, partition}
    kafka_consumergroup_current_offset{consumergroup, topic, partition}
    kafka_consumergroup_lag{consumergroup, topic, partition}

and what cAdvisor would for the consuming pods (one per instance, named like a
Deployment's pod), so a ``cpuUsage`` query lets the adaptive predictor learn the rate
per core::

    container_cpu_usage_seconds_total{pod}

plus ``konsumerator_sim_*`` gauges (true backlog, rates, allocated CPU,
restarts) for people and tests. ``--speed`` compresses the trace's schedule
(see the model's "Time scale"); rates stay per real second, so Prometheus's
``rate()`` and the operator agree with the model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from konsumerator.api.v1 import to_config
from konsumerator.domain import keys
from konsumerator.domain.specs import ConsumerConfig
from konsumerator.scoring.deployments import instances_from, worker_container
from konsumerator.scoring.model import POD_SUFFIX, Model
from konsumerator.simulating import load_consumer


def read_consumer(path: str | Path) -> tuple[dict[str, Any], ConsumerConfig]:
    """The Consumer document (as written) and its planner view; InputError when invalid."""
    import yaml

    text = Path(path).read_text()
    source, spec = load_consumer(text, source=str(path))
    doc = yaml.safe_load(text)
    return doc, to_config(spec, paused=keys.DISABLE_AUTOSCALER in source.annotations)


def topic_name(doc: Mapping[str, Any], config: ConsumerConfig) -> str:
    """The topic and consumer-group label: the Consumer's own name (``orders`` in the sample)."""
    return str((doc.get("metadata") or {}).get("name") or config.name)


class KafkaExporterCollector(Collector):
    """kafka_exporter's metric names, read from the model at scrape time."""

    def __init__(self, *, sim: LiveSim, topic: str, group: str) -> None:
        self._sim = sim
        self._topic = topic
        self._group = group

    def collect(self) -> Iterator[Metric]:
        with self._sim.lock:
            model = self._sim.model
            rows = [
                (str(p), part.produced, part.consumed, part.production_rate)
                for p, part in enumerate(model.partitions)
            ]
            allocation = {i.name: (i.cpu_m, model.restarting(i.name)) for i in model.instances()}
            restarts = model.restarts
            trace_t = model.trace_t
            used = dict(model.cpu_seconds)
        topic_offset = GaugeMetricFamily(
            "kafka_topic_partition_current_offset",
            "Current Offset of a Broker at Topic/Partition",
            labels=["topic", "partition"],
        )
        group_offset = GaugeMetricFamily(
            "kafka_consumergroup_current_offset",
            "Current Offset of a ConsumerGroup at Topic/Partition",
            labels=["consumergroup", "topic", "partition"],
        )
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag",
            "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
            labels=["consumergroup", "topic", "partition"],
        )
        rate = GaugeMetricFamily(
            "konsumerator_sim_production_rate",
            "Messages/s the trace produces into the partition now",
            labels=["topic", "partition"],
        )
        for p, produced, consumed, production_rate in rows:
            head, done = int(produced), int(consumed)
            topic_offset.add_metric([self._topic, p], head)
            group_offset.add_metric([self._group, self._topic, p], done)
            lag.add_metric([self._group, self._topic, p], head - done)
            rate.add_metric([self._topic, p], production_rate)
        cpu = GaugeMetricFamily(
            "konsumerator_sim_allocated_cpu_millicores",
            "CPU request of the consuming container, as the simulator read it",
            labels=["deployment", "restarting"],
        )
        for name, (cpu_m, restarting) in sorted(allocation.items()):
            cpu.add_metric([name, str(restarting).lower()], cpu_m)
        usage = CounterMetricFamily(
            "container_cpu_usage_seconds",
            "CPU-seconds the instance's consuming pod used (cAdvisor's name)",
            labels=["pod"],
        )
        for name, seconds in sorted(used.items()):
            usage.add_metric([f"{name}{POD_SUFFIX}"], seconds)
        yield from (topic_offset, group_offset, lag, rate, cpu, usage)
        yield GaugeMetricFamily(
            "konsumerator_sim_restarts", "Pod-template changes of running instances", restarts
        )
        yield GaugeMetricFamily("konsumerator_sim_trace_seconds", "Trace time", trace_t)


ListDeployments = Callable[[], Sequence[Mapping[str, Any]]]


def kube_lister(*, kubeconfig: str, namespace: str) -> ListDeployments:
    """A function listing the namespace's Deployments through the API server."""
    import httpx2
    from lightkube.config import client_adapter

    from konsumerator.kube.connecting import load_config

    config = load_config(kubeconfig=kubeconfig)
    params = client_adapter.ConnectionParams(timeout=httpx2.Timeout(10.0), trust_env=False)
    http = client_adapter.Client(config, params)
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"

    def list_deployments() -> Sequence[Mapping[str, Any]]:
        response = http.get(path)
        response.raise_for_status()
        items: list[Mapping[str, Any]] = response.json().get("items") or []
        return items

    return list_deployments


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        host, _, port = text.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"--listen: expected HOST:PORT, got {text!r}")
        return cls(host=host or "127.0.0.1", port=int(port))


class LiveSim:
    """The model driven by wall time and the cluster's Deployments."""

    def __init__(
        self,
        *,
        model: Model,
        config: ConsumerConfig,
        list_deployments: ListDeployments,
        container: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.config = config
        self.container = container or worker_container(config)
        self.lock = threading.Lock()
        self.poll_errors = 0
        self.last_error: str | None = None
        self._list = list_deployments
        self._clock = clock
        self._last = clock()

    def tick(self) -> None:
        """Advance the model to now, in steps of at most a second."""
        now = self._clock()
        elapsed, self._last = now - self._last, now
        with self.lock:
            while elapsed > 1e-9:
                step = min(1.0, elapsed)
                self.model.advance(dt=step)
                elapsed -= step

    def poll(self) -> list[str]:
        """Read the Deployments and allocate; returns the instances that restarted."""
        try:
            items = self._list()
        except Exception as exc:  # a flaky API server must not stop the topic
            self.poll_errors += 1
            self.last_error = str(exc)
            return []
        instances = instances_from(items, config=self.config, container=self.container)
        self.tick()
        with self.lock:
            return self.model.allocate(instances)

    def serve(self, *, listen: Endpoint, topic: str, group: str) -> Callable[[], None]:
        """Start the /metrics endpoint; returns a function that stops it."""
        registry = CollectorRegistry()
        registry.register(KafkaExporterCollector(sim=self, topic=topic, group=group))
        server, thread = start_http_server(listen.port, addr=listen.host, registry=registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop

    def run(self, *, stop: threading.Event, poll_s: float = 1.0, tick_s: float = 0.2) -> None:
        """Poll and tick until ``stop`` is set."""
        next_poll = 0.0
        while not stop.is_set():
            now = self._clock()
            if now >= next_poll:
                self.poll()
                next_poll = now + poll_s
            self.tick()
            stop.wait(tick_s)

    def start(self, *, poll_s: float = 1.0) -> Callable[[], None]:
        """Run in a daemon thread; returns a function that stops it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, kwargs={"stop": stop, "poll_s": poll_s}, name="sim", daemon=True
        )
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)

        return halt
