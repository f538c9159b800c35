"""The Kafka tier's stack: a real broker, our lag exporter, the cluster's real Prometheus.

The queries of ``examples/consumer.yaml`` (written for kafka_exporter) are run unchanged
through Prometheus against lag that a real consumer group left on a real topic.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition
from operating import eventually

from konsumerator_dev.testenv import Cluster, kafkatools

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consumer.yaml"


def _example_queries() -> dict[str, str]:
    prometheus = yaml.safe_load(EXAMPLE.read_text())["spec"]["autoscaler"]["prometheus"]
    return {kind: prometheus[kind]["query"] for kind in ("offset", "production", "consumption")}


def _by_partition(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]["partition"]: float(r["value"][1]) for r in result}


def _consume_and_commit(bootstrap: str, *, group: str, topic: str, partition: int, n: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 3,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        seen = 0
        while seen < n:
            message = consumer.poll(5)
            assert message is not None, "no message within 5s"
            if message.error() is None:
                seen += 1
                if seen == n:
                    consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


def test_example_queries_read_real_lag_through_prometheus(cluster: Cluster, kafka: str) -> None:
    # the example's queries name topic "orders" and group "orders": use exactly those
    kafkatools.create_topic(kafka, "orders", 3)
    client = kafkatools.admin(kafka)
    with kafkatools.SteadyProducer(kafka, "orders", partitions=3, rate=5):
        eventually(
            lambda: kafkatools.latest_offsets(client, "orders", 3),
            lambda latest: min(latest.values()) >= 20,
            timeout=60,
            what="20 messages in every partition",
        )
        _consume_and_commit(kafka, group="orders", topic="orders", partition=0, n=10)
        _consume_and_commit(kafka, group="orders", topic="orders", partition=1, n=20)
        queries = _example_queries()

        # the job is scraped (a query of a down target would still answer "success")
        up = eventually(
            lambda: cluster.prometheus_query('up{job="kafka"}'),
            lambda r: bool(r) and r[0]["value"][1] == "1",
            timeout=30,
            what="Prometheus to scrape the lag exporter",
        )
        assert up
        lag = eventually(
            lambda: _by_partition(cluster.prometheus_query(queries["offset"])),
            lambda found: set(found) == {"0", "1"},
            timeout=30,
            what="lag of partitions 0 and 1 (the committed ones)",
        )
        # the producer keeps going: partition 0 is at least 10 behind, partition 1 at least 0
        assert lag["0"] >= 10
        assert lag["1"] >= 0
        assert lag["0"] > lag["1"] - 10  # 0 committed fewer of about as many messages
        production = eventually(
            lambda: _by_partition(cluster.prometheus_query(queries["production"])),
            lambda found: set(found) == {"0", "1", "2"} and min(found.values()) > 0,
            timeout=90,
            what="a production rate for every partition",
        )
        assert all(0 < rate < 50 for rate in production.values()), production
        consumption = _by_partition(cluster.prometheus_query(queries["consumption"]))
        assert set(consumption) <= {"0", "1"}
        assert all(rate >= 0 for rate in consumption.values())


def test_exporter_never_reports_negative_lag_and_picks_up_new_topics(
    cluster: Cluster, kafka: str
) -> None:
    kafkatools.create_topic(kafka, "fresh-topic", 2)
    target = f"http://{cluster.kafka_exporter_target}/metrics"

    def exposition() -> str:
        with urllib.request.urlopen(target, timeout=5) as response:
            return str(response.read().decode())

    text = eventually(
        exposition,
        lambda t: 'topic="fresh-topic"' in t,
        timeout=15,  # the exporter re-reads topics every second
        what="the new topic in the exporter's /metrics",
    )
    assert 'kafka_topic_partition_current_offset{partition="1",topic="fresh-topic"} 0.0' in text
    for value in re.findall(r"^kafka_consumergroup_lag\{[^}]*\} (\S+)$", text, re.MULTILINE):
        assert float(value) >= 0
