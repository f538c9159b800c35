"""``make demo``: watch Konsumerator size real Deployments from real Prometheus data.

One command, on a fresh machine of the supported kind:

1. build (or reuse) the control-plane binaries and Prometheus, and start a
   local cluster named ``demo`` (``konsumerator_dev.testenv``);
2. start the workload simulator in this process with the incident trace
   and point the cluster's Prometheus at it;
3. install the CRD, start the operator (``konsumerator run``) as a child
   process, and apply ``examples/consumer.yaml`` with the cluster's
   Prometheus address and timings shortened so the story fits in minutes
   (:func:`demo_consumer`);
4. refresh a screen every couple of seconds: the ``kubectl get consumers``
   row, each instance's lag, CPU, memory and scaling state, the history of
   total lag and CPU as sparklines, and the recent changes the operator made.

The trace keeps traffic steady for about a minute, then stalls every consumer for
a minute (a downstream outage): lag grows, the operator sees it, waits
``pendingScaleUpDuration`` and scales up, the backlog drains, and a minute
after lag is gone it scales back down. Ctrl-C (or ``--duration``) stops
everything this started: the operator, the simulator and the cluster.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import yaml

from konsumerator.domain import keys
from konsumerator.domain.observed import parse_target
from konsumerator_dev.sim import live
from konsumerator_dev.sim import model as sim_model
from konsumerator_dev.sim.screen import Row, View, display, mmss, screen
from konsumerator_dev.sim.workload import DemoOptions, build_trace

# Timings of the demo Consumer: short enough to tell the whole story in ~4 minutes.
DEMO_AUTOSCALER: Mapping[str, str] = {
    # The story told in minutes (scale up after the pending period, back down a minute
    # after the lag is gone) and the README's measured runs are the naive predictor's;
    # the adaptive default keeps a scale-up's CPU for 30 minutes (docs/adaptive.md).
    "predictor": "naive",
    "pendingScaleUpDuration": "20s",
    "pendingScaleDownDuration": "60s",
}
DEMO_PROMETHEUS: Mapping[str, str] = {
    "minSyncPeriod": "10s",
    "tolerableLag": "30s",
    "criticalLag": "3m",
    "recoveryTime": "2m",
}
# Prometheus computes rate() over its window divided by the whole window, so a
# 1m window under-reads a series younger than a minute; 15s (at the testenv's
# 1s scrape interval) is right 15 s after the simulator starts.
DEMO_RATE_WINDOW = "15s"
INCIDENT_AT_S = 75.0
INCIDENT_LENGTH_S = 60.0


def demo_consumer(doc: Mapping[str, Any], *, prometheus_url: str) -> dict[str, Any]:
    """The sample Consumer with the cluster's Prometheus and the demo's short timings."""
    out = copy.deepcopy(dict(doc))
    autoscaler = out["spec"]["autoscaler"]
    autoscaler.update(DEMO_AUTOSCALER)
    prometheus = autoscaler["prometheus"]
    prometheus["address"] = [prometheus_url]
    prometheus.update(DEMO_PROMETHEUS)
    for kind in ("production", "consumption"):
        query = prometheus.get(kind) or {}
        if "query" in query:
            query["query"] = query["query"].replace("[1m]", f"[{DEMO_RATE_WINDOW}]")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pod_resources(deployment: Mapping[str, Any], *, container: str) -> Mapping[str, Any]:
    """The resources ``container``'s pods are sized to: the in-place target the operator
    records on the Deployment (``keys.TARGET_RESOURCES``) when there is one, else the
    pod template's (Recreate: the template is the size)."""
    annotations = deployment["metadata"].get("annotations") or {}
    text = annotations.get(keys.TARGET_RESOURCES)
    target = parse_target(text)
    if target is not None and container in target:
        entry: Mapping[str, Any] = json.loads(text or "{}")[container]
        return entry
    for c in deployment["spec"]["template"]["spec"].get("containers") or []:
        if c.get("name") == container:
            resources: Mapping[str, Any] = c.get("resources") or {}
            return resources
    return {}


def rows_from(
    deployments: Sequence[Mapping[str, Any]], *, model: sim_model.Model, container: str
) -> tuple[list[Row], int]:
    """One row per managed Deployment, lag from the simulated topic; and total CPU (m)."""
    from konsumerator.domain import partitions as partitioning
    from konsumerator.domain.rendering import parse_time
    from konsumerator.domain.resources import from_strings

    rows: list[Row] = []
    total_cpu_m = 0
    wall = time.time()
    for d in sorted(deployments, key=lambda d: _index(d["metadata"]["name"])):
        meta = d["metadata"]
        annotations = meta.get("annotations") or {}
        parts = partitioning.parse_list(annotations.get(keys.PARTITION, "")) or ()
        if not parts:
            continue
        res = pod_resources(d, container=container)
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        total_cpu_m += from_strings(requests=requests, limits=limits).cpu_req_m or 0
        backlog = sum(model.partitions[p].backlog for p in parts if p < len(model.partitions))
        lag_s = max(
            (
                model.partitions[p].backlog / model.partitions[p].production_rate
                for p in parts
                if p < len(model.partitions) and model.partitions[p].production_rate > 0
            ),
            default=0.0,
        )
        consumed = sum(
            model.partitions[p].consumption_rate for p in parts if p < len(model.partitions)
        )
        changed = parse_time(annotations.get(keys.SCALING_STATUS_CHANGE))
        since = mmss(wall - changed.timestamp()) if changed is not None else "-"
        restarting = " (restarting)" if model.restarting(meta["name"]) else ""
        rows.append(
            Row(
                name=meta["name"],
                partitions=",".join(str(p) for p in parts),
                lag_msgs=backlog,
                lag_s=lag_s,
                cpu=f"{requests.get('cpu', '-')}/{limits.get('cpu', '-')}",
                memory=str(requests.get("memory", "-")),
                status=annotations.get(keys.SCALING_STATUS, "-"),
                since=since,
                consuming=f"{consumed:,.0f} msg/s{restarting}",
                restarts=model.restarts_by.get(meta["name"], 0),
            )
        )
    return rows, total_cpu_m


def _index(name: str) -> tuple[int, str]:
    suffix = name.rsplit("-", 1)[-1]
    return (int(suffix) if suffix.isdigit() else -1, name)


class Demo:
    """Everything ``make demo`` starts, so that everything can be stopped."""

    def __init__(self, args: DemoOptions) -> None:
        self.args = args
        self.cluster: Any = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.stop_sim: list[Any] = []
        self.sim: live.LiveSim | None = None
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[demo {time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def start(self) -> None:
        from konsumerator.cli import crd_text
        from konsumerator_dev.testenv.build import build
        from konsumerator_dev.testenv.lifecycle import up

        args = self.args
        self.say("1/6 control-plane binaries and Prometheus (built once, then cached)")
        build(out=lambda line: print(f"        {line}", flush=True))
        self.say(
            f"2/6 starting the local cluster {args.name!r} (etcd, apiserver, KWOK, Prometheus)"
        )
        self.cluster = cluster = up(
            args.name, out=lambda line: print(f"        {line}", flush=True)
        )

        doc, config = live.read_consumer(args.consumer)
        autoscaling = config.autoscaling
        true_rate = args.true_rate_per_core or (
            autoscaling.rate_per_core * 1.1 if autoscaling else 1000.0
        )
        trace = build_trace(
            name=args.trace,
            csv_path=args.trace_csv,
            base_rate=args.base_rate,
            num_partitions=config.num_partitions,
            seed=args.seed,
            at_s=args.at if args.at is not None else INCIDENT_AT_S,
            length_s=args.length if args.length is not None else INCIDENT_LENGTH_S,
        )
        model = sim_model.Model(
            trace=trace,
            num_partitions=config.num_partitions,
            true_rate_per_core=true_rate,
            restart_s=args.restart,
            time_scale=args.speed,
        )
        self.sim = sim = live.LiveSim(
            model=model,
            config=config,
            list_deployments=live.kube_lister(
                kubeconfig=str(cluster.kubeconfig), namespace=config.namespace
            ),
        )
        port = _free_port()
        topic = live.topic_name(doc, config)
        self.stop_sim.append(
            sim.serve(listen=live.Endpoint("127.0.0.1", port), topic=topic, group=topic)
        )
        self.stop_sim.append(sim.start())
        cluster.set_scrape_targets([f"127.0.0.1:{port}"])
        self.say(
            f"3/6 simulator: {config.num_partitions} partitions, trace {sim.model.trace.name!r}"
            f" ({trace.description}), {args.base_rate:g} msg/s each, consumers really do"
            f" {true_rate:g} msg/s per core; Prometheus scrapes 127.0.0.1:{port}"
        )

        self.say("4/6 installing the Consumer CRD")
        cluster.kubectl("apply", "-f", "-", input=crd_text())
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{keys.PLURAL}.{keys.GROUP}",
            "--timeout=60s",
        )

        log_dir = cluster.state_dir.parent.parent / "demo-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.operator_log = log_dir / "operator.log"
        self.say(f"5/6 starting the operator (konsumerator run; log {self.operator_log})")
        with self.operator_log.open("wb") as log:
            self.operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "konsumerator",
                    "run",
                    f"--kubeconfig={cluster.kubeconfig}",
                    "--metrics-bind-address=0",
                    "--health-probe-bind-address=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

        self.say("        waiting for Prometheus to see the topic's production rate")
        query = (
            f'sum(rate(kafka_topic_partition_current_offset{{topic="{topic}"}}'
            f"[{DEMO_RATE_WINDOW}]))"
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            answer = cluster.prometheus_query(query)
            seen = float(answer[0]["value"][1]) if answer else 0.0
            with sim.lock:
                produced = sum(p.production_rate for p in sim.model.partitions)
            if produced > 0 and abs(seen - produced) < 0.1 * produced:
                break
            time.sleep(1)
        if self.operator.poll() is not None:
            raise RuntimeError(f"the operator exited; see {self.operator_log}")

        consumer = demo_consumer(doc, prometheus_url=cluster.prometheus_url)
        timings = {**DEMO_AUTOSCALER, **DEMO_PROMETHEUS, "rate()": f"[{DEMO_RATE_WINDOW}]"}
        self.say(
            f"6/6 applying {args.consumer} with the cluster's Prometheus and demo timings: "
            + ", ".join(f"{k} {v}" for k, v in timings.items())
        )
        cluster.apply(yaml.safe_dump(consumer, sort_keys=False))

    def watch(self) -> None:
        args = self.args
        sim, cluster = self.sim, self.cluster
        assert sim is not None
        assert self.operator is not None
        lister = live.kube_lister(
            kubeconfig=str(cluster.kubeconfig), namespace=sim.config.namespace
        )
        view = View()
        began = time.monotonic()
        every = args.once_per or args.refresh
        interactive = args.once_per is None and sys.stdout.isatty()
        names = {f"{sim.config.name}-{i}" for i in range(sim.config.num_partitions)}
        with display(interactive=interactive) as shown:
            while args.duration is None or time.monotonic() - began < args.duration:
                if self.operator.poll() is not None:
                    raise RuntimeError(f"the operator exited; see {self.operator_log}")
                deployments = [d for d in lister() if d["metadata"]["name"] in names]
                consumers = cluster.kubectl(
                    "get", keys.PLURAL, "-n", sim.config.namespace, check=False
                ).stdout
                with sim.lock:
                    t = sim.model.trace_t
                    rows, cpu_m = rows_from(deployments, model=sim.model, container=sim.container)
                    phase = sim.model.trace.phase(t=t)
                view.observe(t=t, rows=rows, total_cpu_m=cpu_m)
                header = (
                    f"Konsumerator demo · cluster {args.name!r} · trace {sim.model.trace.name!r}"
                    f" at {mmss(t)} · {'Ctrl-C stops everything' if args.duration is None else ''}"
                )
                frame = screen(
                    header=header, consumers=consumers, rows=rows, view=view, phase=phase
                )
                shown.show(frame, at=time.monotonic() - began)
                time.sleep(every)

    def stop(self) -> None:
        from konsumerator_dev.testenv.lifecycle import down

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        if self.operator is not None:
            stop_operator(self.operator, say=self.say)
        if self.stop_sim:
            self.say("stopping the simulator")
        for stop in reversed(self.stop_sim):
            with contextlib.suppress(Exception):
                stop()
        if self.cluster is not None:
            if self.args.keep:
                self.say(f"leaving cluster {self.args.name!r} running (--keep)")
            else:
                self.say(f"stopping cluster {self.args.name!r}")
                down(self.args.name, out=lambda line: print(f"        {line}", flush=True))
        self.say("done")


def stop_operator(proc: subprocess.Popen[bytes], *, say: Callable[[str], None]) -> None:
    """SIGTERM the demo's operator, SIGKILL it after 15 s; nothing if it already ended."""
    if proc.poll() is not None:
        return
    say(f"stopping the operator (pid {proc.pid})")
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _interrupt_once(_signum: int, _frame: object) -> None:
    """Ctrl-C (or SIGTERM, SIGHUP) stops the demo once; repeats (make and uv forward
    the signal too) must not interrupt the cleanup."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


class Runnable(Protocol):
    """What ``run`` drives: the simulator demo and the real-Kafka demo."""

    def start(self) -> None: ...
    def say(self, text: str) -> None: ...
    def watch(self) -> None: ...
    def stop(self) -> None: ...


def run(make: Callable[[], Runnable], *, once_per: float | None) -> int:
    """Start a demo, show it until it ends or Ctrl-C, and always stop what it started."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt_once)
    demo = make()
    code = 0
    try:
        demo.start()
        demo.say("ready: the live view follows" + ("" if once_per else " (Ctrl-C to stop)"))
        time.sleep(1)
        demo.watch()
    except KeyboardInterrupt:
        print()
        demo.say("interrupted: stopping everything the demo started")
    except Exception as exc:
        demo.say(f"error: {exc}")
        code = 1
    finally:
        demo.stop()
    return code


def main(args: DemoOptions) -> int:
    return run(lambda: Demo(args), once_per=args.once_per)
