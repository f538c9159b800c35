"""Benchmark: a real consumer's throughput under two CPU limits enforced by the kernel.

Starts a broker of its own (``konsumerator_dev.testenv.kafka.standalone``), fills one partition,
runs the example consumer (``examples/consumer-app/consumer.py``, ``WORK_MS_PER_MESSAGE`` of CPU
per message) under the pod runner's CPU limiter, and measures messages/s from the group's
committed offsets, first at one limit, then after an in-place change to the other (same
process, as an in-place pod resize). Expect throughput ~ limit / work per message.

    .venv/bin/konsumerator-dev bench consumer-cpu --limits 200 500 --work-ms 2
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # not re-exported by name

from konsumerator_dev import clikit
from konsumerator_dev.testenv import cpulimit, kafka, process
from konsumerator_dev.testenv.podrunner import CONSUMER_APP

TOPIC = "bench"
GROUP = "bench"


def committed(admin: AdminClient) -> int:
    request = [ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, 0)])]
    for future in admin.list_consumer_group_offsets(request).values():
        for tp in future.result().topic_partitions or []:
            return max(0, int(tp.offset))
    return 0


def fill(bootstrap: str, messages: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(messages):
        producer.produce(TOPIC, value=b"x" * 100, partition=0)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)


@click.command("consumer-cpu", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--limits", type=int, nargs=2, default=(200, 500), metavar="MILLICORES")
@click.option("--work-ms", type=float, default=2.0)
@click.option("--seconds", type=float, default=15.0, help="measured per limit")
@click.option("--messages", type=int, default=40_000)
def main(**options: Any) -> int:
    args = SimpleNamespace(**options)
    with tempfile.TemporaryDirectory(prefix="consumer-cpu-") as tmp:
        state = Path(tmp)
        with kafka.standalone(state / "kafka") as bootstrap:
            fill(bootstrap, args.messages)
            limiter = cpulimit.detect(f"bench-{os.getpid()}")
            limiter.set("consumer", limit_millicores=args.limits[0], request_millicores=None)
            env = {
                "KAFKA_BROKERS": bootstrap,
                "KAFKA_TOPIC": TOPIC,
                "KAFKA_GROUP": GROUP,
                "KONSUMERATOR_PARTITION": "0",
                "WORK_MS_PER_MESSAGE": str(args.work_ms),
                "COMMIT_INTERVAL_SECONDS": "0.5",
                "METRICS_PORT": "0",
            }
            argv = [sys.executable, str(CONSUMER_APP)]
            consumer = process.spawn("consumer", argv, state / "consumer.log", env=env)
            admin = AdminClient({"bootstrap.servers": bootstrap})
            try:
                limiter.attach("consumer", consumer.pid)
                process.wait_until(
                    lambda: committed(admin) > 0, timeout=60, what="first commit", watch=[consumer]
                )
                for limit in args.limits:
                    limiter.set("consumer", limit_millicores=limit, request_millicores=None)
                    time.sleep(2.0)  # let the new quota settle
                    throttled0 = limiter.throttled_periods("consumer")
                    start, t0 = committed(admin), time.monotonic()
                    time.sleep(args.seconds)
                    end, t1 = committed(admin), time.monotonic()
                    throttled1 = limiter.throttled_periods("consumer")
                    rate = (end - start) / (t1 - t0)
                    ideal = limit / args.work_ms
                    throttled = (
                        "n/a"
                        if throttled0 is None or throttled1 is None
                        else str(throttled1 - throttled0)
                    )
                    print(
                        f"limit {limit:4d}m  pid {consumer.pid}  {rate:7.1f} msg/s "
                        f"(limit/work = {ideal:.0f} msg/s)  throttled periods {throttled}",
                        flush=True,
                    )
                    if not consumer.alive():
                        print(consumer.log_tail(), file=sys.stderr)
                        return 1
            finally:
                process.stop(consumer)
                limiter.release("consumer")
                limiter.close()
            print(f"enforcement: {limiter.description}")
    return 0


if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench consumer-cpu")
