"""``konsumerator-dev testenv build|up|down|status|env``: the local control plane CLI.

Why a CLI next to the pytest fixtures: developers need the same cluster by hand
(``make cluster-up``, then kubectl/Prometheus against it), and ``make test`` must build the
binaries before pytest starts so a cold build is never hidden inside a test timeout.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable

import click

from konsumerator_dev.testenv import kafka, lagexporter
from konsumerator_dev.testenv.build import build
from konsumerator_dev.testenv.cluster import DEFAULT_NAME, Cluster
from konsumerator_dev.testenv.config import cache_root
from konsumerator_dev.testenv.errors import TestenvError
from konsumerator_dev.testenv.lifecycle import down, up
from konsumerator_dev.testenv.state import list_clusters, running_owner


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _print_access(cluster: Cluster, seconds: float) -> None:
    print(
        f"""
cluster {cluster.name!r} ready ({seconds:.1f}s)
  kubeconfig      {cluster.kubeconfig}
  api server      {cluster.api_url}
  prometheus      {cluster.prometheus_url}
  kafka           {cluster.kafka_bootstrap}{"" if cluster.kafka_running() else "   (not started)"}
  lag exporter    http://{cluster.kafka_exporter_target}/metrics   (job "kafka")
  scrape targets  {cluster.targets_file}   (Prometheus file_sd, job "testenv", every 1s)
  kubectl         {cluster.bin_dir / "kubectl"}
  logs            {cluster.logs_dir}/

use it:   eval "$(.venv/bin/konsumerator-dev testenv env --name {cluster.name})"
stop it:  make cluster-down   (konsumerator-dev testenv down --name {cluster.name})""",
        flush=True,
    )


def _status(name: str) -> int:
    try:
        cluster = Cluster.load(name)
    except TestenvError as exc:
        print(exc)
        return 1
    print(f"cluster {name!r}: {cluster.state_dir}")
    total = peak = 0
    for component, proc in cluster.processes().items():
        rss, hwm = proc.rss_kib()
        alive = proc.alive()
        total += rss
        peak += hwm
        port = cluster.ports.get(component, 0)
        state = f"running  rss {rss // 1024:4d} MiB (peak {hwm // 1024} MiB)" if alive else "DEAD"
        print(f"  {component:<24} pid {proc.pid:<8} 127.0.0.1:{port:<6} {state}")
    print(f"  total rss {total // 1024} MiB (sum of peaks {peak // 1024} MiB)")
    print(f"  kubeconfig {cluster.kubeconfig}\n  prometheus {cluster.prometheus_url}")
    return 0


NAME = click.option("--name", default=DEFAULT_NAME, show_default=True, help="cluster name")


@click.group(help=f"Local Kubernetes control plane + Prometheus (cache: {cache_root()})")
def testenv() -> None:
    pass


testenv.add_command(lagexporter.command)


@testenv.command("build", help="build or reuse the binaries; install Prometheus; fetch Kafka")
@click.option("--no-kafka", is_flag=True, help="skip the Kafka broker (needs mvn and java)")
def build_cmd(*, no_kafka: bool) -> int:
    def fetch() -> int:
        _build(with_kafka=not no_kafka)
        return 0

    return _guarded(fetch)


@testenv.command("up", help="start (or reuse) a cluster; builds first if needed")
@NAME
@click.option(
    "--no-kafka",
    is_flag=True,
    help="without the Kafka broker and lag exporter (no java/mvn needed)",
)
def up_cmd(*, name: str, no_kafka: bool) -> int:
    def start() -> int:
        _build(with_kafka=not no_kafka)
        started = time.monotonic()
        cluster = up(name, with_kafka=not no_kafka)
        _print_access(cluster, time.monotonic() - started)
        return 0

    return _guarded(start)


ALL = click.option(
    "--all",
    "every",
    is_flag=True,
    help="every cluster in the cache (down skips those of running pytest sessions)",
)


@testenv.command("down", help="stop a cluster's processes and delete its state")
@NAME
@ALL
def down_cmd(*, name: str, every: bool) -> int:
    def stop() -> int:
        if not every:
            down(name)
        for each in list_clusters() if every else []:
            owner = running_owner(each)
            if owner is None:
                down(each)
            else:  # a live pytest session: it stops its own cluster
                print(f"skipping {each!r}: owned by running process {owner}")
        return 0

    return _guarded(stop)


@testenv.command("status", help="show a cluster's processes, ports and memory")
@NAME
@ALL
def status_cmd(*, name: str, every: bool) -> int:
    names = list_clusters() if every else [name]
    return _guarded(lambda: max((_status(each) for each in names), default=0))


@testenv.command("env", help="print shell exports for a cluster")
@NAME
def env_cmd(*, name: str) -> int:
    def exports() -> int:
        cluster = Cluster.load(name)
        for key, value in cluster.env().items():
            print(f"export {key}={shlex.quote(value)}")
        print(f'export PATH={shlex.quote(str(cluster.bin_dir))}:"$PATH"')
        return 0

    return _guarded(exports)


def _build(*, with_kafka: bool) -> None:
    build()
    if with_kafka:
        kafka.fetch(out=_stderr)


def _guarded(action: Callable[[], int]) -> int:
    """The command's exit status; a testenv failure is one line on stderr, not a traceback."""
    try:
        return action()
    except TestenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
