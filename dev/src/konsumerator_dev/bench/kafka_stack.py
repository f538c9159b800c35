"""Benchmark: what the local Kafka stack costs: start time, memory and CPU under traffic.

Starts (or reuses) a cluster with Kafka (``konsumerator_dev.testenv.up(with_kafka=True)``),
produces ``--rate`` messages/s to each of ``--partitions`` partitions, runs one example
consumer per partition under a CPU limit (the pod runner's limiter), and samples every
process's CPU time and RSS over ``--seconds``. Then stops what it started.

    .venv/bin/konsumerator-dev bench kafka-stack --partitions 2 --rate 20 --work-ms 2
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from konsumerator_dev import clikit
from konsumerator_dev.testenv import cpulimit, kafkatools, process
from konsumerator_dev.testenv.lifecycle import down, up
from konsumerator_dev.testenv.podrunner import CONSUMER_APP
from konsumerator_dev.testenv.process import Proc

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(proc: Proc) -> float:
    """utime + stime of a process (and its reaped children), in seconds."""
    raw = Path(f"/proc/{proc.pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / TICKS


@click.command("kafka-stack", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--name", default="bench-kafka")
@click.option("--partitions", type=int, default=2)
@click.option("--rate", type=float, default=20.0, help="msg/s per partition")
@click.option("--work-ms", type=float, default=2.0)
@click.option("--limit", type=int, default=500, help="CPU limit per consumer (m)")
@click.option("--seconds", type=float, default=30.0)
def main(**options: Any) -> int:
    args = SimpleNamespace(**options)
    started = time.monotonic()
    cluster = up(args.name, with_kafka=True, out=lambda line: None)
    print(f"start (cluster + Prometheus + Kafka + exporter): {time.monotonic() - started:.1f}s")
    consumers: list[Proc] = []
    limiter = cpulimit.detect(f"{args.name}-bench", out=print)
    try:
        topic = f"bench-{os.getpid()}"
        kafkatools.create_topic(cluster.kafka_bootstrap, topic, args.partitions)
        with kafkatools.SteadyProducer(
            cluster.kafka_bootstrap, topic, partitions=args.partitions, rate=args.rate
        ):
            for p in range(args.partitions):
                env = {
                    "KAFKA_BROKERS": cluster.kafka_bootstrap,
                    "KAFKA_TOPIC": topic,
                    "KONSUMERATOR_PARTITION": str(p),
                    "WORK_MS_PER_MESSAGE": str(args.work_ms),
                    "METRICS_PORT": "0",
                }
                log = cluster.logs_dir / f"bench-consumer-{p}.log"
                proc = process.spawn(
                    f"consumer-{p}", [sys.executable, str(CONSUMER_APP)], log, env=env
                )
                limiter.set(f"c{p}", limit_millicores=args.limit, request_millicores=None)
                limiter.attach(f"c{p}", proc.pid)
                consumers.append(proc)
            time.sleep(10)  # past the JIT warm-up and the first commits
            procs = {**cluster.processes(), **{p.name: p for p in consumers}}
            before = {n: cpu_seconds(p) for n, p in procs.items()}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - t0
            after = {n: cpu_seconds(p) for n, p in procs.items()}
        total_rss = total_cpu = 0.0
        print(f"{'process':<26} {'RSS MiB':>8} {'% of a core':>12}")
        for name, proc in procs.items():
            rss = proc.rss_kib()[0] / 1024
            cpu = 100 * (after[name] - before[name]) / wall
            total_rss += rss
            total_cpu += cpu
            print(f"{name:<26} {rss:8.0f} {cpu:12.1f}")
        print(f"{'total':<26} {total_rss:8.0f} {total_cpu:12.1f}")
    finally:
        for proc in consumers:
            process.stop(proc)
        limiter.close()
        down(args.name, out=lambda line: None)
    return 0


if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench kafka-stack")
