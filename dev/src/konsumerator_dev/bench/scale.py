"""Benchmark: the operator at scale against the real local control plane.

One Consumer with 1,000 partitions and 20 Consumers with 100 partitions each
(3,000 Deployments, one partition per instance) by default, all sized from a real
Prometheus that scrapes a synthetic exporter. For each phase

* converge: from applying the Consumers until every Deployment exists with its
  resources (the planned CPU request on its consumer container);
* settle: ``--settle`` seconds more, and at least until kube-controller-manager
  has created a ReplicaSet for every Deployment and the pods are there
  (``apiserver_storage_objects``; at its default client rate limit that takes
  minutes for 10,000 Deployments): their status changes are not the operator's
  business, few reconciles expected; with ``--freeze-kcm`` kube-controller-manager is
  stopped (SIGSTOP) instead, from the end of ``--settle`` to the end of the run, so
  that its backlog does not stretch the run (the steady window then starts 30 s
  after it stopped);
* steady: ``--steady`` seconds more (a sync every 30 s);

it reports reconciles, operator CPU seconds (``/proc/<pid>/stat``), RSS at the
end, the mean wait of a key for a worker, API requests by verb (the operator's
own ``konsumerator_api_requests_total``, and the apiserver's
``apiserver_request_total`` for all clients, so kube-controller-manager's and
KWOK's traffic is shown too) and Prometheus instant queries; then the peak RSS
(``VmHWM``), the longest wait for a worker (a histogram bound) and a
calibration: the CPU seconds of a fixed Python loop in the bench process, so
the operator's CPU can be compared across machines as a ratio. Per phase it
also gives each Consumer's longest wait for a worker (``waited_s`` of the
operator's ``reconciled`` log lines: from when its key was ready to when a
worker took it) beside the phase's longest pass (a bound from the buckets of the
reconcile histogram, counted within the phase), and whether no Consumer waited more
than one pass for a worker (each longest wait within that bound).

``--profile FILE`` samples the operator with py-spy (the ``bench`` dependency
group) through each phase and writes its collapsed stacks to FILE for the steady
window and beside it, ``FILE`` with ``.converge`` and ``.settle`` before its suffix,
for the other two (``--format raw``: one line per stack with its sample count;
flamegraph tools read it).

    make bench-scale                      # defaults: 1,000 + 20 x 100 partitions
    make bench-scale BENCH_ARGS="--big 1000 --consumers-small 0"   # the issue's 1,000 case
    make bench-scale BENCH_ARGS="--big 0 --small 2000 --consumers-small 5 --replicas 0 --freeze-kcm"
                                          # 10,000 Deployments (replicas 0: no pods)
    make bench-scale BENCH_ARGS="--big 1000 --consumers-small 0 --predictor naive"
                                          # the Consumers' predictor (default: the operator's)
    make bench-scale BENCH_ARGS="--big 200 --small 5 --consumers-small 2 --settle 30 --steady 60"

``--operator-command 'CMD ARGS...'`` runs another operator instead of ours (another
implementation of the same CRD, for a comparison on the same machine), split like a shell
line, with ``{kubeconfig}``, ``{metrics_address}`` (``127.0.0.1:PORT``) and
``{metrics_port}`` replaced in each argument; the same phases, CPU and RSS sampling (by
pid) and request counts apply. Such an operator is taken as started once its metrics
endpoint answers (controller-runtime serves one), its Deployments are counted by
``--deployment-selector``, and convergence is judged from the Deployments alone (its
Consumer status need not carry ``metadata.generation``). Its own API requests are the
client's ``rest_client_requests_total`` by method, when it has no
``konsumerator_api_requests_total``.

It starts its own cluster (``testenv up --name bench``) and stops it at the end
unless ``--keep``. Timing lives here, not in tests.
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import yaml

from konsumerator_dev import clikit
from konsumerator_dev.paths import REPO as ROOT
from konsumerator_dev.testenv import Cluster, MetricsExporter, down, up

SYNC = "30s"
# With --freeze-kcm: how long the steady window starts after kube-controller-manager stopped.
FROZEN_DRAIN_S = 30.0


def consumer(
    *,
    name: str,
    namespace: str,
    partitions: int,
    prometheus: str,
    replicas: int,
    update_mode: str | None = None,
    predictor: str | None = None,
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
    if update_mode is not None:
        spec["autoscaler"]["updateMode"] = update_mode
    # None leaves the field out, as the example does: the CRD's default (adaptive) applies.
    if predictor is not None:
        spec["autoscaler"]["predictor"] = predictor
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
        labels: dict[str, str] = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        # client-go's rest_client_requests_total names the verb "method" (an HTTP method).
        verb = labels.get("verb", labels.get("method", ""))
        out[(verb, labels.get("resource", ""), labels.get("subresource", ""))] += float(m.group(3))
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


def await_scraped(cluster: Cluster, expected: int, timeout: float = 120.0) -> float:
    """Seconds until Prometheus answers with a production series for each of the
    ``expected`` partitions. Without it the Consumers could be applied before the first
    scrape, and their first pass, without an answer, would create every instance from
    the fallback and size it again a sync later: a race of the bench, not a cost of the
    operator (``--scrape-after`` asks for that case on purpose)."""
    start = time.monotonic()
    while True:
        found = cluster.prometheus_query("count(bench_production)")
        if found and int(float(found[0]["value"][1])) >= expected:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise SystemExit(f"Prometheus has not scraped the exporter in {timeout:.0f}s")
        time.sleep(0.5)


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


MANAGED = "app.kubernetes.io/managed-by=konsumerator"


def converged(cluster: Cluster, expected: int, selector: str = MANAGED) -> int:
    """How many managed Deployments have a CPU request on their first container.

    One column, not ``-o json``: at 10,000 Deployments kubectl re-encoding the whole list
    (and this process decoding it) took over a minute of a loaded machine per check.
    """
    column = "custom-columns=CPU:.spec.template.spec.containers[0].resources.requests.cpu"
    out = cluster.kubectl(
        "get", "deployments", "-A", "-l", selector,
        "--no-headers", "-o", column,
    )  # fmt: skip
    return sum(1 for line in out.stdout.splitlines() if line.strip() not in ("", "<none>"))


def reported_missing(cluster: Cluster, namespace: str) -> int | None:
    """The Deployments the Consumers' statuses say are missing (None until each has one)."""
    out = cluster.kubectl("get", "consumers", "-n", namespace, "-o", "json")
    missing = 0
    for obj in json.loads(out.stdout)["items"]:
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        missing += int(status.get("missing", 0)) + int(status.get("outdated", 0))
    return missing


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


def operator_argv(
    *, command: str | None, kubeconfig: Path, metrics_port: int, workers: int
) -> list[str]:
    """The operator's command line: ours, or ``command`` split like a shell line with
    ``{kubeconfig}``, ``{metrics_address}`` and ``{metrics_port}`` replaced in each argument
    (``str.format``, so a literal brace is doubled)."""
    address = f"127.0.0.1:{metrics_port}"
    if command is None:
        return [
            sys.executable, "-m", "konsumerator", "run",
            "--kubeconfig", str(kubeconfig),
            "--metrics-bind-address", address,
            "--health-probe-bind-address", "0",
            "--max-concurrent-reconciles", str(workers),
        ]  # fmt: skip
    argv = [
        arg.format(kubeconfig=str(kubeconfig), metrics_address=address, metrics_port=metrics_port)
        for arg in shlex.split(command)
    ]
    if not argv:
        raise click.BadParameter("empty command", param_hint="--operator-command")
    return argv


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def calibration_seconds() -> float:
    """CPU seconds of a fixed pure-Python loop in this process: the machine's speed in this
    run, so operator CPU can be compared across machines as a ratio to it."""
    started = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i * i % 7
    return time.process_time() - started


def reconciles(text: str) -> int:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("controller_runtime_reconcile_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def queue_waits(text: str) -> tuple[float, float]:
    """(sum of seconds, count) of ``workqueue_queue_duration_seconds``."""
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for part in found:
            if line.startswith(f"workqueue_queue_duration_seconds_{part}{{"):
                found[part] += float(line.rsplit(" ", 1)[1])
    return found["sum"], found["count"]


def longest_queue_wait(text: str, histogram: str = "workqueue_queue_duration_seconds") -> float:
    """The smallest bound of ``histogram`` that holds every sample so far (an upper bound
    of the longest wait for a worker, or with ``workqueue_work_duration_seconds``, of the
    longest pass)."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{histogram}_bucket{{"):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                buckets.append((float(le.group(1)), float(line.rsplit(" ", 1)[1])))
    if not buckets:
        return 0.0
    total = max(count for _, count in buckets)
    return min(bound for bound, count in buckets if count >= total)


def histogram_buckets(text: str, histogram: str) -> dict[float, float]:
    """The cumulative bucket counts of ``histogram`` by upper bound, summed over its labels."""
    buckets: dict[float, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith(f"{histogram}_bucket{{"):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                buckets[float(le.group(1))] += float(line.rsplit(" ", 1)[1])
    return dict(buckets)


def longest_between(before: Mapping[float, float], after: Mapping[float, float]) -> float:
    """The smallest bucket bound that holds every sample taken between two readings of a
    histogram (an upper bound of the longest one; 0 when there was none)."""
    added = {le: count - before.get(le, 0.0) for le, count in after.items()}
    total = max(added.values(), default=0.0)
    if total <= 0:
        return 0.0
    return min(le for le, count in added.items() if count >= total)


def worker_waits(log: Path, *, since: float, until: float) -> dict[str, float]:
    """Each Consumer's longest wait for a worker (``waited_s``) among the operator's
    ``reconciled`` lines logged between the wall-clock times ``since`` and ``until``."""
    longest: dict[str, float] = {}
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") != "reconciled" or "waited_s" not in entry:
            continue
        at = datetime.fromisoformat(entry["timestamp"]).timestamp()
        if since <= at <= until:
            key = entry["consumer"]
            longest[key] = max(longest.get(key, 0.0), float(entry["waited_s"]))
    return dict(sorted(longest.items()))


def stored(text: str, resource: str) -> float:
    """``apiserver_storage_objects`` of ``resource`` (e.g. ``replicasets.apps``)."""
    for line in text.splitlines():
        if line.startswith("apiserver_storage_objects{") and f'resource="{resource}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def settle_until_created(cluster: Cluster, *, replicasets: int, pods: int, timeout: float) -> None:
    """Wait (at most ``timeout``) until the apiserver stores at least that many
    ReplicaSets and pods: kube-controller-manager and KWOK have caught up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = cluster.apiserver_metrics()
        made = stored(text, "replicasets.apps"), stored(text, "pods")
        print(f"  settling: {made[0]:.0f}/{replicasets} ReplicaSets, {made[1]:.0f}/{pods} pods")
        if made[0] >= replicasets and made[1] >= pods:
            return
        time.sleep(10)


class Sample:
    """Every counter the report compares, read at one moment."""

    def __init__(self, *, cluster: Cluster, pid: int, metrics_port: int) -> None:
        self.at = time.monotonic()
        self.wall = time.time()
        self.cpu = cpu_seconds(pid)
        self.rss = rss_mib(pid)
        operator = operator_metrics(metrics_port)
        self.reconciles = reconciles(operator)
        self.longest_pass = longest_queue_wait(operator, "workqueue_work_duration_seconds")
        self.passes = histogram_buckets(operator, "controller_runtime_reconcile_time_seconds")
        self.waits = queue_waits(operator)
        self.operator = counters(operator, "konsumerator_api_requests_total") or counters(
            operator, "rest_client_requests_total"
        )
        self.apiserver = counters(cluster.apiserver_metrics(), "apiserver_request_total")
        self.queries = prom_queries(cluster)


def phase(before: Sample, after: Sample, *, log: Path) -> dict[str, Any]:
    waited, count = (a - b for a, b in zip(after.waits, before.waits, strict=True))
    waits = worker_waits(log, since=before.wall, until=after.wall)
    longest = longest_between(before.passes, after.passes)
    return {
        "seconds": round(after.at - before.at, 1),
        "reconciles": after.reconciles - before.reconciles,
        "operator_cpu_seconds": round(after.cpu - before.cpu, 2),
        "operator_cpu_percent_of_a_core": round(
            100 * (after.cpu - before.cpu) / max(after.at - before.at, 1e-9), 2
        ),
        "operator_rss_mib_at_end": round(after.rss, 1),
        "mean_queue_wait_seconds": round(waited / count, 3) if count else 0.0,
        "longest_wait_for_a_worker_seconds_by_consumer": waits,
        "longest_pass_seconds_at_most_so_far": after.longest_pass,
        # The reconcile histogram's finer buckets, this phase only: a Consumer that waited
        # no longer than this waited at most one pass for a worker.
        "longest_pass_seconds_at_most": longest,
        "no_consumer_waited_more_than_one_pass": all(w <= longest for w in waits.values()),
        "operator_requests": diff(after.operator, before.operator),
        "apiserver_requests_all_clients": diff(after.apiserver, before.apiserver),
        "prometheus_queries": int(after.queries - before.queries),
    }


def profiler(*, pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling ``pid`` for ``seconds`` into ``out`` (None: no profile).

    ``--nonblocking``: the operator is never paused to be sampled, so the CPU figures
    of the window stay the operator's own. ``stop`` ends it early (its output is kept).
    """
    if out is None:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit(f"--profile needs py-spy ({spy}): uv sync --group bench")
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
         "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def phase_file(out: Path | None, phase: str) -> Path | None:
    """Where ``--profile`` writes the stacks of ``phase`` (converge, settle): beside ``out``."""
    return None if out is None else out.with_name(f"{out.stem}.{phase}{out.suffix}")


def stop(spy: subprocess.Popen[bytes] | None) -> None:
    """End a profile started for longer than its phase: py-spy writes its output on SIGINT."""
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()


@click.command("scale", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--big", type=int, default=1000, help="partitions of the big Consumer")
@click.option("--small", type=int, default=100, help="partitions of each small one")
@click.option("--consumers-small", type=int, default=20)
@click.option("--replicas", type=int, default=1)
@click.option(
    "--update-mode",
    type=click.Choice(["InPlaceOrRecreate", "Recreate"]),
    default=None,
    help="the Consumers' updateMode (default: the example's, i.e. the operator's default)",
)
@click.option(
    "--predictor",
    type=click.Choice(["naive", "adaptive"]),
    default=None,
    help="the Consumers' predictor (default: the field left out, i.e. the operator's"
    " default, adaptive)",
)
@click.option(
    "--settle", type=float, default=120.0, help="seconds after convergence (ReplicaSets settle)"
)
@click.option("--steady", type=float, default=180.0, help="steady-state seconds after settling")
@click.option(
    "--scrape-after",
    type=float,
    default=0.0,
    help="Prometheus scrapes the exporter only this many seconds after the Consumers are"
    " applied (0: from the start): the first passes then have no answer, and the instances"
    " are created from the fallback",
)
@click.option("--timeout", type=float, default=1800.0)
@click.option("--workers", type=int, default=4, help="--max-concurrent-reconciles")
@click.option("--keep", is_flag=True, help="leave the cluster running")
@click.option(
    "--cluster",
    default="bench",
    show_default=True,
    help="testenv cluster name (another name lets two benches run side by side)",
)
@click.option(
    "--freeze-kcm",
    is_flag=True,
    help="instead of waiting for kube-controller-manager's ReplicaSets after --settle, stop"
    " it (SIGSTOP) for the steady window: on a loaded machine it makes ~4 per second",
)
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="py-spy the operator through the steady window into this file (collapsed stacks),"
    " and through converge and settle into FILE with .converge / .settle before its suffix",
)
@click.option(
    "--operator-command",
    default=None,
    help="run this operator instead of ours (a shell-like line; {kubeconfig},"
    " {metrics_address}, {metrics_port} are replaced), e.g. another implementation of the"
    " CRD for a comparison on the same machine",
)
@click.option(
    "--deployment-selector",
    default=MANAGED,
    show_default=True,
    help="label selector of the operator's Deployments (convergence counts them)",
)
def main(**options: Any) -> None:
    args = SimpleNamespace(**options)

    # SIGTERM (e.g. from `timeout`) must still run the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    calibration = calibration_seconds()
    t0 = time.monotonic()
    cluster = up(args.cluster)
    print(f"cluster up in {time.monotonic() - t0:.1f}s", flush=True)
    namespace = cluster.create_namespace("bench")
    crd = subprocess.run(
        [sys.executable, "-m", "konsumerator", "crd"], check=True, capture_output=True, text=True
    ).stdout
    cluster.apply(crd)
    topics = {"big": args.big} if args.big else {}
    topics |= {f"small-{i}": args.small for i in range(args.consumers_small)}
    expected = sum(topics.values())
    exporter = MetricsExporter(exposition(topics)).__enter__()
    if not args.scrape_after:
        cluster.set_scrape_targets([exporter.target])
        scraped_in = await_scraped(cluster, expected)
        print(f"Prometheus has every partition's series after {scraped_in:.1f}s", flush=True)
    log = tempfile.NamedTemporaryFile(prefix="operator-", suffix=".log", delete=False)  # noqa: SIM115
    with socket.socket() as probe:  # a free port, so a stray operator can never answer
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    foreign = args.operator_command is not None
    argv = operator_argv(
        command=args.operator_command,
        kubeconfig=cluster.kubeconfig,
        metrics_port=metrics_port,
        workers=args.workers,
    )
    operator = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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

        def sample() -> Sample:
            return Sample(cluster=cluster, pid=operator.pid, metrics_port=metrics_port)

        idle = sample()
        started = idle.at
        spy = profiler(
            pid=operator.pid, seconds=args.timeout, out=phase_file(args.profile, "converge")
        )
        for name, partitions in topics.items():
            cluster.apply(
                consumer(
                    name=name,
                    namespace=namespace,
                    partitions=partitions,
                    prometheus=cluster.prometheus_url,
                    replicas=args.replicas,
                    update_mode=args.update_mode,
                    predictor=args.predictor,
                )
            )
        done = 0
        reported_at = None
        applied = time.monotonic()
        scraping = not args.scrape_after
        while time.monotonic() - started < args.timeout:
            if not scraping and time.monotonic() - applied >= args.scrape_after:
                cluster.set_scrape_targets([exporter.target])
                scraping = True
            # Another operator's status may not carry the generation: its Deployments decide.
            reported = 0 if foreign else reported_missing(cluster, namespace)
            said = "not read (another operator)" if foreign else f"{reported} missing"
            print(f"  {time.monotonic() - started:6.1f}s  the Consumers say: {said}", flush=True)
            # The Consumers' word first (5 small objects); then the Deployments themselves
            # (a list of all of them takes a minute of a loaded apiserver at 10,000).
            if reported == 0:
                reported_at = time.monotonic()
                done = converged(cluster, expected, args.deployment_selector)
                print(f"  {done}/{expected} Deployments sized", flush=True)
                if done >= expected:
                    break
            time.sleep(5)
        if not scraping:  # converged from the fallback alone: the answer comes now
            cluster.set_scrape_targets([exporter.target])
        sized = sample()
        stop(spy)
        spy = profiler(
            pid=operator.pid, seconds=args.timeout, out=phase_file(args.profile, "settle")
        )
        time.sleep(args.settle)
        kcm = cluster.processes()["kube-controller-manager"].pid
        if args.freeze_kcm:
            os.kill(kcm, signal.SIGSTOP)
            time.sleep(FROZEN_DRAIN_S)  # the events it sent last reach the operator
        else:
            settle_until_created(
                cluster, replicasets=expected, pods=expected * args.replicas, timeout=args.timeout
            )
        try:
            settled = sample()
            stop(spy)
            spy = profiler(pid=operator.pid, seconds=args.steady, out=args.profile)
            time.sleep(args.steady)
            end = sample()
            if spy is not None:
                spy.wait()
        finally:
            if args.freeze_kcm:
                os.kill(kcm, signal.SIGCONT)
        rss = peak_rss_mib(operator.pid)
        consumers = len(topics)
        syncs = args.steady / 30.0
        report = {
            "operator": argv[0] if foreign else "konsumerator",
            "deployments": expected,
            "consumers": consumers,
            "replicas": args.replicas,
            "update_mode": args.update_mode or "default",
            "predictor": args.predictor or "default",
            "scrape_after_seconds": args.scrape_after,
            "steady_with_kcm_frozen": args.freeze_kcm,
            "workers": args.workers,
            "converged": done >= expected,
            # Until the Consumers reported it (the check of every Deployment came after);
            # for another operator, until the start of the check that found them all sized.
            "convergence_seconds": round((reported_at or sized.at) - started, 1),
            "calibration_cpu_seconds": round(calibration, 2),
            "operator_cpu_seconds_total": round(end.cpu - idle.cpu, 2),
            "operator_cpu_to_calibration": round((end.cpu - idle.cpu) / calibration, 2),
            "operator_peak_rss_mib": round(rss, 1),
            "longest_queue_wait_seconds_at_most": longest_queue_wait(
                operator_metrics(metrics_port)
            ),
            "phases": {
                "converge": phase(idle, sized, log=Path(log.name)),
                "settle": phase(sized, settled, log=Path(log.name)),
                "steady": phase(settled, end, log=Path(log.name)),
            },
            "prometheus_queries_per_consumer_per_sync": round(
                (end.queries - settled.queries) / consumers / syncs, 2
            ),
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
            down(args.cluster)


if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench scale")
