"""Talking to the local broker: topics, a steady producer, offsets read from the broker.

Used by the Kafka tests, the demo and the benchmarks. Lag is measured from Kafka's own offsets
(latest minus the group's committed), never from the operator or Prometheus, so a test can
check the operator's story against the broker's.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # not re-exported by name
from confluent_kafka.cimpl import NewPartitions, NewTopic  # not re-exported by name

#: What the group coordinator answers for a few seconds after the broker starts.
_COORDINATOR_STARTING = frozenset(
    {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
    }
)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    client = admin(bootstrap)  # referenced until the futures resolve: a collected client fails them
    for future in client.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)


def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    client = admin(bootstrap)
    for future in client.create_partitions([NewPartitions(topic, total)]).values():
        future.result(timeout=30)


def latest_offsets(client: AdminClient, topic: str, partitions: int) -> dict[int, int]:
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    wanted = {TopicPartition(topic, p): latest for p in range(partitions)}
    return {
        tp.partition: int(f.result(timeout=10).offset)
        for tp, f in client.list_offsets(wanted).items()
    }


def committed_offsets(
    client: AdminClient, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """The group's committed offset per partition; 0 where it has none.

    Retried while the broker answers with a retriable error (the group coordinator is still
    loading its offsets for a few seconds after the broker starts)."""
    for attempt in range(20):
        try:
            return _committed_offsets(client, group, topic, partitions)
        except KafkaException as exc:
            error = exc.args[0]
            if attempt == 19 or not (error.retriable() or error.code() in _COORDINATOR_STARTING):
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _committed_offsets(
    client: AdminClient, group: str, topic: str, partitions: int
) -> dict[int, int]:
    request = [
        ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    ]
    found = dict.fromkeys(range(partitions), 0)
    for future in client.list_consumer_group_offsets(request).values():
        for tp in future.result(timeout=10).topic_partitions or []:
            found[tp.partition] = max(0, int(tp.offset))
    return found


def backlog(client: AdminClient, *, group: str, topic: str, partitions: int) -> int:
    """Messages produced and not yet committed by ``group``, over all partitions."""
    latest = latest_offsets(client, topic, partitions)
    committed = committed_offsets(client, group, topic, partitions)
    return sum(max(0, latest[p] - committed[p]) for p in range(partitions))


class SteadyProducer:
    """Produces ``rate`` messages/s to each partition of ``topic`` from a thread."""

    def __init__(self, bootstrap: str, topic: str, *, partitions: int, rate: float) -> None:
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.sent = 0
        self._rounds = 0  # one message to every partition per round
        self.error: Exception | None = None
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "log_level": 3,
                # partitions added to the topic are known within a second (default: 5 min)
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def set_partitions(self, partitions: int) -> None:
        self.partitions = partitions

    def _run(self) -> None:
        try:
            self._produce_steadily()
        except Exception as exc:  # surfaced by __exit__: a dead producer must fail the test
            self.error = exc

    def _produce_steadily(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self._rounds < due:
                for partition in range(self.partitions):
                    self._produce(partition)
                self._rounds += 1
            self._producer.poll(0)
            self._stop.wait(0.1)
        self._producer.flush(10)

    def _produce(self, partition: int) -> None:
        try:
            self._producer.produce(self.topic, value=b"m" * 64, partition=partition)
            self.sent += 1
        except KafkaException as exc:
            # a partition just added is unknown until the next metadata refresh (<= 1 s)
            if exc.args[0].code() != KafkaError._UNKNOWN_PARTITION:
                raise

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        if self.error is not None and exc is None:
            raise AssertionError(f"the producer failed: {self.error!r}") from self.error
