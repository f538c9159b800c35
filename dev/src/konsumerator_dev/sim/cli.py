"""``konsumerator-dev sim run|demo|trace-csv``: the workload simulator and the one-command demo.

``run`` plays a Kafka topic for a Consumer in a cluster: it reads the
Deployments the operator made, consumes with the CPU they were given, and
serves kafka_exporter-style metrics for Prometheus to scrape::

    konsumerator-dev sim run --kubeconfig K --consumer examples/consumer.yaml \\
        --trace incident --listen 127.0.0.1:9400 --speed 10

``demo`` is ``make demo``: local cluster, a real Kafka broker with real consumer processes
(``--simulator``: the simulator), CRD, operator, the sample Consumer, and a live view, until
Ctrl-C (or ``--duration``).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar

import click

from konsumerator.simulating import InputError
from konsumerator_dev import clikit
from konsumerator_dev.sim import model as sim_model
from konsumerator_dev.sim import traces
from konsumerator_dev.sim.workload import EXAMPLE, DemoOptions, Workload, build_trace

F = TypeVar("F", bound=Callable[..., Any])


def _workload_options(command: F) -> F:
    """The workload options shared by ``run`` and ``demo`` (the fields of :class:`Workload`)."""
    options = [
        click.option(
            "--trace",
            default="incident",
            show_default=True,
            help=", ".join(traces.TRACES),
        ),
        click.option(
            "--trace-csv", help="rates from a CSV: header t,<partition>|*  (overrides --trace)"
        ),
        click.option("--base-rate", type=float, default=1000.0, help="msg/s per partition"),
        click.option(
            "--true-rate-per-core", type=float, help="default: the Consumer's ratePerCore"
        ),
        click.option(
            "--restart", type=float, default=10.0, help="seconds without consumption per restart"
        ),
        click.option("--speed", type=float, default=1.0, help="compress the trace's schedule"),
        click.option("--seed", type=int, default=0),
        click.option("--at", type=float, help="incident/burst start, trace seconds"),
        click.option("--length", type=float, help="incident/burst length, trace seconds"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


CONSUMER = click.option(
    "--consumer", default=str(EXAMPLE), show_default=True, help="the Consumer YAML"
)


@click.group(help="The workload simulator and the one-command demo")
def sim() -> None:
    pass


@sim.command("run", help="simulate a topic and its consumers for a cluster")
@click.option("--kubeconfig", required=True)
@CONSUMER
@click.option("--listen", default="127.0.0.1:9400", help="HOST:PORT for /metrics")
@click.option("--topic", help="topic label (default: the Consumer's metadata.name)")
@click.option("--group", help="consumergroup label (default: the Consumer's metadata.name)")
@click.option("--container", help="the consuming container (default: the template's first)")
@_workload_options
def run_cmd(
    *,
    kubeconfig: str,
    consumer: str,
    listen: str,
    topic: str | None,
    group: str | None,
    container: str | None,
    **workload: Any,
) -> int:
    return _guarded(
        lambda: _run(
            kubeconfig=kubeconfig,
            consumer=consumer,
            listen=listen,
            topic=topic,
            group=group,
            container=container,
            workload=Workload(**workload),
        )
    )


@sim.command("demo", help="make demo: cluster, real Kafka (or --simulator), operator, live view")
@click.option(
    "--simulator",
    is_flag=True,
    help="a simulated topic instead of a real Kafka broker (no Java or Maven needed)",
)
@click.option("--name", default="demo", show_default=True, help="testenv cluster name")
@CONSUMER
@click.option("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
@click.option("--once-per", type=float, help="print a frame every N s instead of refreshing")
@click.option("--refresh", type=float, default=2.0, help="seconds between screen refreshes")
@click.option("--keep", is_flag=True, help="leave the cluster running at the end")
@_workload_options
def demo_cmd(**options: Any) -> int:
    chosen = DemoOptions(**options)
    if chosen.simulator:
        from konsumerator_dev.sim import demo

        return _guarded(lambda: demo.main(chosen))
    from konsumerator_dev.sim import kafkademo

    return _guarded(lambda: kafkademo.main(chosen))


_ALL_TRACES = {**traces.TRACES, "flapping": traces.flapping, **traces.INVENTED}


@sim.command("trace-csv", help="write a generated trace as `konsumerator score` reads it")
@click.argument("name", type=click.Choice(sorted(_ALL_TRACES)))
@click.option("--partitions", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--step", type=click.FloatRange(min=1), default=60.0, show_default=True)
def trace_csv_cmd(*, name: str, partitions: int, seed: int, step: float) -> int:
    """Stalls (incident, long-outage) are the consumers', so the CSV cannot carry them."""
    trace = _ALL_TRACES[name](seed=seed)
    sys.stdout.write(traces.to_csv(trace, num_partitions=partitions, step_s=step))
    return 0


def _guarded(action: Callable[[], int]) -> int:
    try:
        return action()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(
    *,
    kubeconfig: str,
    consumer: str,
    listen: str,
    topic: str | None,
    group: str | None,
    container: str | None,
    workload: Workload,
) -> int:
    from konsumerator_dev.sim import live

    doc, config = live.read_consumer(consumer)
    default_label = live.topic_name(doc, config)
    autoscaling = config.autoscaling
    true_rate = workload.true_rate_per_core or (
        autoscaling.rate_per_core if autoscaling else 1000.0
    )
    trace = build_trace(
        name=workload.trace,
        csv_path=workload.trace_csv,
        base_rate=workload.base_rate,
        num_partitions=config.num_partitions,
        seed=workload.seed,
        at_s=workload.at,
        length_s=workload.length,
    )
    model = sim_model.Model(
        trace=trace,
        num_partitions=config.num_partitions,
        true_rate_per_core=true_rate,
        restart_s=workload.restart,
        time_scale=workload.speed,
    )
    simulator = live.LiveSim(
        model=model,
        config=config,
        list_deployments=live.kube_lister(kubeconfig=kubeconfig, namespace=config.namespace),
        container=container,
    )
    endpoint = live.Endpoint.parse(listen)
    stop_http = simulator.serve(
        listen=endpoint, topic=topic or default_label, group=group or default_label
    )
    print(
        f"simulating {config.num_partitions} partitions of {config.namespace}/{config.name}"
        f" ({trace.name}: {trace.description}) on http://{endpoint.host}:{endpoint.port}/metrics",
        flush=True,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        simulator.run(stop=stop)
    finally:
        stop_http()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``sim`` on ``argv``; its exit status (2 for bad input, as before)."""
    return clikit.invoke(sim, argv, prog_name="konsumerator-dev sim")
