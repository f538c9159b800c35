"""``python -m konsumerator.testenv build|up|down|status|env``: the local control plane CLI.

Why a CLI next to the pytest fixtures: developers need the same cluster by hand
(``make cluster-up``, then kubectl/Prometheus against it), and ``make test`` must build the
binaries before pytest starts so a cold build is never hidden inside a test timeout.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from konsumerator.testenv import kafka
from konsumerator.testenv.build import build
from konsumerator.testenv.cluster import (
    DEFAULT_NAME,
    Cluster,
    down,
    list_clusters,
    running_owner,
    up,
)
from konsumerator.testenv.config import cache_root
from konsumerator.testenv.errors import TestenvError


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

use it:   eval "$(python -m konsumerator.testenv env --name {cluster.name})"
stop it:  make cluster-down   (python -m konsumerator.testenv down --name {cluster.name})""",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m konsumerator.testenv",
        description=f"Local Kubernetes control plane + Prometheus (cache: {cache_root()})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build_parser = sub.add_parser(
        "build", help="build or reuse the binaries; install Prometheus; fetch Kafka"
    )
    build_parser.add_argument(
        "--no-kafka", action="store_true", help="skip the Kafka broker (needs mvn and java)"
    )
    for command, text in (
        ("up", "start (or reuse) a cluster; builds first if needed"),
        ("down", "stop a cluster's processes and delete its state"),
        ("status", "show a cluster's processes, ports and memory"),
        ("env", "print shell exports for a cluster"),
    ):
        p = sub.add_parser(command, help=text)
        p.add_argument("--name", default=DEFAULT_NAME, help="cluster name (default: %(default)s)")
        if command == "up":
            p.add_argument(
                "--no-kafka",
                action="store_true",
                help="without the Kafka broker and lag exporter (no java/mvn needed)",
            )
        if command in ("down", "status"):
            p.add_argument(
                "--all",
                action="store_true",
                help="every cluster in the cache (down skips those of running pytest sessions)",
            )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build()
            if not args.no_kafka:
                kafka.fetch(out=_stderr)
        elif args.command == "up":
            build()
            if not args.no_kafka:
                kafka.fetch(out=_stderr)
            started = time.monotonic()
            cluster = up(args.name, with_kafka=not args.no_kafka)
            _print_access(cluster, time.monotonic() - started)
        elif args.command == "down":
            if not args.all:
                down(args.name)
            for name in list_clusters() if args.all else []:
                owner = running_owner(name)
                if owner is None:
                    down(name)
                else:  # a live pytest session: it stops its own cluster
                    print(f"skipping {name!r}: owned by running process {owner}")
        elif args.command == "status":
            names = list_clusters() if args.all else [args.name]
            return max((_status(name) for name in names), default=0)
        elif args.command == "env":
            cluster = Cluster.load(args.name)
            for key, value in cluster.env().items():
                print(f"export {key}={shlex.quote(value)}")
            print(f'export PATH={shlex.quote(str(cluster.bin_dir))}:"$PATH"')
    except TestenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
