"""A small Kafka lag exporter with kafka_exporter's metric names, for the test environment.

Why our own: the queries users write (``examples/consumer.yaml``) are against kafka_exporter's
series, but its code is not available to this project. This process reads the same three facts
from the broker with confluent-kafka's AdminClient and serves them under the same names and
labels, so those queries work unchanged:

* ``kafka_topic_partition_current_offset{topic, partition}``: the partition's latest offset
  (high watermark);
* ``kafka_consumergroup_current_offset{consumergroup, topic, partition}``: the group's
  committed offset;
* ``kafka_consumergroup_lag{consumergroup, topic, partition}``: latest minus committed, never
  negative (a committed offset read just after the latest one can be ahead of it).

Only partitions a group has committed have group series: a consumer that ``assign()``s its
partitions (Konsumerator's consumers do) creates the group with its first commit. The broker is
read every ``--interval`` seconds, topics included, so a new topic or partition shows up within
one interval. When the broker cannot be read, the offset series disappear (a stale value would
look like a consumer that stopped) and ``konsumerator_lag_exporter_up`` is 0.

Run: ``python -m konsumerator_dev.testenv.lagexporter --bootstrap-server HOST:PORT --port N``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType

import click
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # not re-exported by name
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from konsumerator_dev import clikit

log = logging.getLogger("konsumerator.lagexporter")
#: confluent-kafka leaves OffsetSpec.latest unannotated.
_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]

PartitionKey = tuple[str, int]  # (topic, partition)
GroupPartitionKey = tuple[str, str, int]  # (group, topic, partition)


@dataclass(frozen=True)
class Snapshot:
    """What one read of the broker found."""

    #: latest offset (high watermark) per (topic, partition)
    latest: Mapping[PartitionKey, int] = field(default_factory=dict)
    #: committed offset per (group, topic, partition); only offsets >= 0
    committed: Mapping[GroupPartitionKey, int] = field(default_factory=dict)
    brokers: int = 0
    ok: bool = False
    taken_at: float = 0.0


def lag(*, latest: int, committed: int) -> int:
    """Messages the group has yet to consume; never negative."""
    return max(0, latest - committed)


def families(snapshot: Snapshot) -> list[GaugeMetricFamily]:
    """The exposition of one snapshot, with kafka_exporter's names and labels."""
    current = GaugeMetricFamily(
        "kafka_topic_partition_current_offset",
        "Current Offset of a Broker at Topic/Partition",
        labels=["topic", "partition"],
    )
    for (topic, partition), offset in sorted(snapshot.latest.items()):
        current.add_metric([topic, str(partition)], offset)
    group_offset = GaugeMetricFamily(
        "kafka_consumergroup_current_offset",
        "Current Offset of a ConsumerGroup at Topic/Partition",
        labels=["consumergroup", "topic", "partition"],
    )
    group_lag = GaugeMetricFamily(
        "kafka_consumergroup_lag",
        "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
        labels=["consumergroup", "topic", "partition"],
    )
    for (group, topic, partition), committed in sorted(snapshot.committed.items()):
        labels = [group, topic, str(partition)]
        group_offset.add_metric(labels, committed)
        latest = snapshot.latest.get((topic, partition))
        if latest is not None:  # a partition deleted since the commit has no lag
            group_lag.add_metric(labels, lag(latest=latest, committed=committed))
    brokers = GaugeMetricFamily("kafka_brokers", "Number of Brokers in the Kafka Cluster.")
    brokers.add_metric([], snapshot.brokers)
    up = GaugeMetricFamily(
        "konsumerator_lag_exporter_up", "1 if the last read of the broker succeeded."
    )
    up.add_metric([], 1 if snapshot.ok else 0)
    refreshed = GaugeMetricFamily(
        "konsumerator_lag_exporter_last_read_timestamp_seconds",
        "Unix time of the last read of the broker.",
    )
    refreshed.add_metric([], snapshot.taken_at)
    return [current, group_offset, group_lag, brokers, up, refreshed]


class SnapshotCollector(Collector):
    """Serves whatever snapshot the reader thread stored last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot()

    def set(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            snapshot = self._snapshot
        yield from families(snapshot)


def _user_topics(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("__"))


def read(admin: AdminClient, *, timeout: float) -> Snapshot:
    """One read of the broker: metadata, latest offsets, every group's committed offsets."""
    metadata = admin.list_topics(timeout=timeout)
    wanted = {
        TopicPartition(topic, partition): _LATEST
        for topic in _user_topics(metadata.topics)
        for partition in metadata.topics[topic].partitions
    }
    latest: dict[PartitionKey, int] = {}
    if wanted:
        for tp, future in admin.list_offsets(wanted, request_timeout=timeout).items():
            latest[(tp.topic, tp.partition)] = int(future.result().offset)
    groups = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    committed: dict[GroupPartitionKey, int] = {}
    for listing in groups.valid:
        group = str(listing.group_id)
        request = [ConsumerGroupTopicPartitions(group)]
        for future in admin.list_consumer_group_offsets(request, request_timeout=timeout).values():
            for tp in future.result().topic_partitions or []:
                if tp.offset >= 0 and not tp.topic.startswith("__"):
                    committed[(group, tp.topic, tp.partition)] = int(tp.offset)
    return Snapshot(
        latest=latest,
        committed=committed,
        brokers=len(metadata.brokers),
        ok=True,
        taken_at=time.time(),
    )


def run(*, bootstrap: str, port: int, interval: float, stop: threading.Event) -> None:
    collector = SnapshotCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "konsumerator-lag"})
    log.info("serving /metrics on 127.0.0.1:%d, reading %s every %.1fs", port, bootstrap, interval)
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                collector.set(read(admin, timeout=max(1.0, interval * 2)))
            except Exception as exc:  # the broker may be restarting: report, keep serving
                log.warning("reading the broker failed: %s", exc)
                collector.set(Snapshot(ok=False, taken_at=time.time()))
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        server.shutdown()
        thread.join(timeout=5)


@click.command("lag-exporter", help="serve kafka_exporter's consumer-group lag metrics")
@click.option("--bootstrap-server", required=True, help="HOST:PORT of a broker")
@click.option("--port", type=int, required=True, help="port of /metrics on 127.0.0.1")
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="seconds between reads"
)
def command(*, bootstrap_server: str, port: int, interval: float) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(bootstrap=bootstrap_server, port=port, interval=interval, stop=stop)
    return 0


if __name__ == "__main__":
    clikit.run(command, prog_name="python -m konsumerator_dev.testenv.lagexporter")
