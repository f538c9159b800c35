"""Benchmark: the operator at scale against the real local control plane.

One Consumer with 1,000 partitions and 20 Consumers with 100 partitions each
(3,000 Deployments, one partition per instance), all sized from a real
Prometheus that scrapes a synthetic exporter. Reports:

* time from applying the Consumers until every Deployment exists with its
  resources (the planned CPU request on its consumer container);
* API requests by verb during convergence and during a steady-state window,
  from the apiserver's own ``apiserver_request_total`` (all clients, so
  kube-controller-manager's and KWOK's traffic is shown separately by
  resource) and from the operator's ``konsumerator_api_requests_total``;
* Prometheus instant queries per sync (Prometheus's own
  ``prometheus_http_requests_total{handler="/api/v1/query"}``);
* the operator's peak RSS (``VmHWM``).

    make bench-scale                      # full run, 5 min steady state
    make bench-scale BENCH_ARGS="--big 200 --small 5 --consumers-small 2 --steady 60"  # quick

It starts its own cluster (``testenv up --name bench``) and stops it at the end
unless ``--keep``. Timing lives here, not in tests.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import yaml

from konsumerator_dev import clikit
from konsumerator_dev.paths import REPO as ROOT
from konsumerator_dev.testenv import Cluster, MetricsExporter, down, up

SYNC = "30s"


def consumer(
    *, name: str, namespace: str, partitions: int, prometheus: str, replicas: int
) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "consumer.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    spec = doc["spec"]
    spec.update(
        numPartitions=partitions, numPartitionsPerInstance=1, name=name, namespace=namespace
    )
    prom = spec["autoscaler"]["prometheus"]
    prom["address"] = [prometheus]
    prom["minSyncPeriod"] = SYNC
    topic = f'topic="{name}"'
    prom["offset"]["query"] = f"sum by (partition) (bench_lag{{{topic}}})"
    prom["production"]["query"] = f"sum by (partition) (bench_production{{{topic}}})"
    prom["consumption"]["query"] = f"sum by (partition) (bench_production{{{topic}}})"
    spec["resourcePolicy"].pop("globalPolicy", None)
    template = spec["deploymentTemplate"]
    template["replicas"] = replicas
    template["selector"] = {"matchLabels": {"app": name}}
    template["template"]["metadata"]["labels"] = {"app": name}
    return doc


def exposition(topics: dict[str, int]) -> str:
    lines = ["# TYPE bench_production gauge", "# TYPE bench_lag gauge"]
    for topic, partitions in topics.items():
        for p in range(partitions):
            rate = 500 + 37 * (p % 11)
            lines.append(f'bench_production{{topic="{topic}",partition="{p}"}} {rate}')
            lines.append(f'bench_lag{{topic="{topic}",partition="{p}"}} {rate * (p % 3)}')
    return "\n".join(lines) + "\n"


SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.e+-]+)$")


def counters(text: str, metric: str) -> dict[tuple[str, ...], float]:
    out: defaultdict[tuple[str, ...], float] = defaultdict(float)
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(1) != metric:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        out[
            (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        ] += float(m.group(3))
    return out


def prom_queries(cluster: Cluster) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{cluster.prometheus_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def operator_metrics(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body: bytes = r.read()
        return body.decode()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def converged(cluster: Cluster, expected: int) -> int:
    out = cluster.kubectl(
        "get", "deployments", "-A", "-l", "app.kubernetes.io/managed-by=konsumerator", "-o", "json"
    )
    items = json.loads(out.stdout)["items"]
    ready = 0
    for d in items:
        containers = d["spec"]["template"]["spec"]["containers"]
        if containers and containers[0].get("resources", {}).get("requests", {}).get("cpu"):
            ready += 1
    return ready


def diff(
    after: Mapping[tuple[str, ...], float], before: Mapping[tuple[str, ...], float]
) -> dict[str, int]:
    result: dict[str, int] = {}
    for key, value in after.items():
        delta = int(value - before.get(key, 0))
        if delta:
            verb, resource, sub = key
            result[f"{verb} {resource}{'/' + sub if sub else ''}"] = delta
    return dict(sorted(result.items(), key=lambda kv: -kv[1]))


@click.command("scale", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--big", type=int, default=1000, help="partitions of the big Consumer")
@click.option("--small", type=int, default=100, help="partitions of each small one")
@click.option("--consumers-small", type=int, default=20)
@click.option("--replicas", type=int, default=1)
@click.option("--steady", type=float, default=300.0, help="steady-state seconds")
@click.option("--timeout", type=float, default=1800.0)
@click.option("--keep", is_flag=True, help="leave the cluster running")
def main(**options: Any) -> None:
    args = SimpleNamespace(**options)

    # SIGTERM (e.g. from `timeout`) must still run the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    cluster = up("bench")
    print(f"cluster up in {time.monotonic() - t0:.1f}s", flush=True)
    namespace = cluster.create_namespace("bench")
    crd = subprocess.run(
        [sys.executable, "-m", "konsumerator", "crd"], check=True, capture_output=True, text=True
    ).stdout
    cluster.apply(crd)
    topics = {"big": args.big} | {f"small-{i}": args.small for i in range(args.consumers_small)}
    expected = sum(topics.values())
    exporter = MetricsExporter(exposition(topics)).__enter__()
    cluster.set_scrape_targets([exporter.target])
    log = tempfile.NamedTemporaryFile(prefix="operator-", suffix=".log", delete=False)  # noqa: SIM115
    with socket.socket() as probe:  # a free port, so a stray operator can never answer
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    operator = subprocess.Popen(
        [
            sys.executable, "-m", "konsumerator", "run",
            "--kubeconfig", str(cluster.kubeconfig),
            "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
            "--health-probe-bind-address", "0",
            "--max-concurrent-reconciles", "4",
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                operator_metrics(metrics_port)
                break
            except OSError:
                if operator.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"operator did not start; see {log.name}") from None
                time.sleep(0.5)
        before_api = counters(cluster.apiserver_metrics(), "apiserver_request_total")
        before_op = counters(operator_metrics(metrics_port), "konsumerator_api_requests_total")
        before_q = prom_queries(cluster)
        started = time.monotonic()
        for name, partitions in topics.items():
            cluster.apply(
                consumer(
                    name=name,
                    namespace=namespace,
                    partitions=partitions,
                    prometheus=cluster.prometheus_url,
                    replicas=args.replicas,
                )
            )
        done = 0
        while time.monotonic() - started < args.timeout:
            done = converged(cluster, expected)
            print(
                f"  {time.monotonic() - started:6.1f}s  {done}/{expected} Deployments sized",
                flush=True,
            )
            if done >= expected:
                break
            time.sleep(5)
        converge_s = time.monotonic() - started
        mid_api = counters(cluster.apiserver_metrics(), "apiserver_request_total")
        mid_op = counters(operator_metrics(metrics_port), "konsumerator_api_requests_total")
        mid_q = prom_queries(cluster)
        time.sleep(args.steady)
        end_api = counters(cluster.apiserver_metrics(), "apiserver_request_total")
        end_op = counters(operator_metrics(metrics_port), "konsumerator_api_requests_total")
        end_q = prom_queries(cluster)
        rss = peak_rss_mib(operator.pid)
        consumers = len(topics)
        syncs = args.steady / 30.0
        report = {
            "deployments": expected,
            "consumers": consumers,
            "converged": done >= expected,
            "convergence_seconds": round(converge_s, 1),
            "operator_requests_convergence": diff(mid_op, before_op),
            "operator_requests_steady": diff(end_op, mid_op),
            "apiserver_requests_convergence_all_clients": diff(mid_api, before_api),
            "apiserver_requests_steady_all_clients": diff(end_api, mid_api),
            "steady_seconds": args.steady,
            "prometheus_queries_convergence": int(mid_q - before_q),
            "prometheus_queries_steady": int(end_q - mid_q),
            "prometheus_queries_per_consumer_per_sync": round(
                (end_q - mid_q) / consumers / syncs, 2
            ),
            "operator_peak_rss_mib": round(rss, 1),
        }
        print(json.dumps(report, indent=2))
    finally:
        os.killpg(operator.pid, signal.SIGTERM)
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(operator.pid, signal.SIGKILL)
        exporter.__exit__(None, None, None)
        print(f"operator log: {log.name}")
        if not args.keep:
            down("bench")


if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench scale")
