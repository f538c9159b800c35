"""An example Kafka consumer for Konsumerator: consumes exactly the partitions it is given.

Konsumerator runs one Deployment per group of partitions and tells each pod which ones are
its own through ``KONSUMERATOR_PARTITION`` (``"3,4,5"``). So this consumer ``assign()``s those
partitions instead of subscribing: no group rebalances, no partition ever consumed twice, and
a restarted pod resumes from its group's committed offsets.

Environment:

* ``KAFKA_BROKERS``: bootstrap servers (``host:port[,host:port]``); required.
* ``KAFKA_TOPIC``: the topic; required. ``KAFKA_GROUP``: the group its offsets are committed
  under (default: the topic), the ``consumergroup`` label lag exporters report.
* ``KONSUMERATOR_PARTITION``: comma-separated partition numbers; required.
* ``WORK_MS_PER_MESSAGE``: CPU milliseconds spent on each message (default 1), the stand-in for
  real work: throughput is then bounded by the CPU the pod is given.
* ``COMMIT_INTERVAL_SECONDS``: how often offsets are committed (default 1).
* ``METRICS_PORT`` (default 8000; 0 disables) and ``METRICS_ADDRESS`` (default 0.0.0.0):
  Prometheus ``/metrics`` with ``example_consumer_messages_total{topic,partition}`` and the
  process's CPU seconds.

SIGTERM commits what was processed and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from confluent_kafka import OFFSET_STORED, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, start_http_server

log = logging.getLogger("example-consumer")


class ConfigError(ValueError):
    """A missing or malformed environment variable, named in the message."""


@dataclass(frozen=True)
class Config:
    brokers: str
    topic: str
    group: str
    partitions: tuple[int, ...]
    work_seconds: float
    commit_interval: float
    metrics_port: int
    metrics_address: str


def parse_partitions(text: str) -> tuple[int, ...]:
    """``"3,4, 5"`` -> ``(3, 4, 5)``; empty items are ignored, anything else is an error."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("KONSUMERATOR_PARTITION is empty: no partition to consume")
    try:
        partitions = tuple(int(item) for item in items)
    except ValueError:
        raise ConfigError(
            f"KONSUMERATOR_PARTITION={text!r}: expected comma-separated partition numbers"
        ) from None
    if any(p < 0 for p in partitions):
        raise ConfigError(f"KONSUMERATOR_PARTITION={text!r}: partitions are >= 0")
    return tuple(sorted(set(partitions)))


def _number(env: Mapping[str, str], key: str, default: float, *, minimum: float) -> float:
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r}: expected a number") from None
    if value < minimum:
        raise ConfigError(f"{key}={raw!r}: must be >= {minimum:g}")
    return value


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise ConfigError(f"{key} is not set")
    return value


def load_config(env: Mapping[str, str]) -> Config:
    topic = _required(env, "KAFKA_TOPIC")
    return Config(
        brokers=_required(env, "KAFKA_BROKERS"),
        topic=topic,
        group=env.get("KAFKA_GROUP", "").strip() or topic,
        partitions=parse_partitions(_required(env, "KONSUMERATOR_PARTITION")),
        work_seconds=_number(env, "WORK_MS_PER_MESSAGE", 1.0, minimum=0.0) / 1000.0,
        commit_interval=_number(env, "COMMIT_INTERVAL_SECONDS", 1.0, minimum=0.05),
        metrics_port=int(_number(env, "METRICS_PORT", 8000, minimum=0)),
        metrics_address=env.get("METRICS_ADDRESS", "0.0.0.0"),
    )


def burn_cpu(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time (not wall time: a throttled thread waits)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def run(config: Config, stop: list[bool]) -> None:
    messages = Counter(
        "example_consumer_messages",
        "Messages consumed (processed, then committed within COMMIT_INTERVAL_SECONDS)",
        ["topic", "partition"],
    )
    if config.metrics_port:
        start_http_server(config.metrics_port, addr=config.metrics_address)
    consumer = Consumer(
        {
            "bootstrap.servers": config.brokers,
            "group.id": config.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "client.id": f"example-consumer-{'-'.join(map(str, config.partitions))}",
        }
    )
    consumer.assign([TopicPartition(config.topic, p, OFFSET_STORED) for p in config.partitions])
    log.info("consuming %s %s as group %s", config.topic, config.partitions, config.group)
    next_commit = time.monotonic() + config.commit_interval
    pending = False
    try:
        while not stop[0]:
            for message in consumer.consume(num_messages=100, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consume error: %s", error)
                    continue
                burn_cpu(config.work_seconds)
                consumer.store_offsets(message=message)
                messages.labels(config.topic, str(message.partition())).inc()
                pending = True
                if stop[0]:
                    break
            if pending and time.monotonic() >= next_commit:
                _commit(consumer)
                pending = False
                next_commit = time.monotonic() + config.commit_interval
    finally:
        if pending:
            _commit(consumer)
        consumer.close()


def _commit(consumer: Consumer) -> None:
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:  # e.g. nothing stored yet after a rebalance-free restart
        log.warning("commit failed: %s", exc)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return 2
    stop = [False]

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(config, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
