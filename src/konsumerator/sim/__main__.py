"""``python -m konsumerator.sim run|demo``: the workload simulator and the one-command demo.

``run`` plays a Kafka topic for a Consumer in a cluster: it reads the
Deployments the operator made, consumes with the CPU they were given, and
serves kafka_exporter-style metrics for Prometheus to scrape::

    python -m konsumerator.sim run --kubeconfig K --consumer examples/consumer.yaml \\
        --trace incident --listen 127.0.0.1:9400 --speed 10

``demo`` is ``make demo``: local cluster, a real Kafka broker with real consumer processes
(``--simulator``: the simulator), CRD, operator, the sample Consumer, and a live view, until
Ctrl-C (or ``--duration``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from konsumerator.sim import model as sim_model
from konsumerator.simulating import InputError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"


def build_trace(
    *,
    name: str,
    csv_path: str | None,
    base_rate: float,
    num_partitions: int,
    seed: int,
    at_s: float | None,
    length_s: float | None,
) -> sim_model.Trace:
    """A trace of the suite by name (with the incident/burst window if given), or a CSV."""
    if csv_path is not None:
        return sim_model.from_csv(Path(csv_path).read_text(), name=Path(csv_path).stem)
    if name not in sim_model.TRACES:
        raise InputError(f"--trace: unknown trace {name!r} (one of {', '.join(sim_model.TRACES)})")
    kwargs: dict[str, float | int] = {"base_rate": base_rate, "seed": seed}
    if name in ("burst", "incident"):
        if at_s is not None:
            kwargs["at_s"] = at_s
        if length_s is not None:
            kwargs["length_s"] = length_s
    if name == "skewed":
        kwargs["num_partitions"] = num_partitions
    return sim_model.TRACES[name](**kwargs)


def _add_workload_options(p: argparse.ArgumentParser, *, trace: str) -> None:
    p.add_argument(
        "--trace", default=trace, help=f"{', '.join(sim_model.TRACES)} (default: %(default)s)"
    )
    p.add_argument(
        "--trace-csv", help="rates from a CSV: header t,<partition>|*  (overrides --trace)"
    )
    p.add_argument("--base-rate", type=float, default=1000.0, help="msg/s per partition")
    p.add_argument("--true-rate-per-core", type=float, help="default: the Consumer's ratePerCore")
    p.add_argument(
        "--restart", type=float, default=10.0, help="seconds without consumption per restart"
    )
    p.add_argument("--speed", type=float, default=1.0, help="compress the trace's schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--at", type=float, help="incident/burst start, trace seconds")
    p.add_argument("--length", type=float, help="incident/burst length, trace seconds")


def _run(args: argparse.Namespace) -> int:
    from konsumerator.sim import live

    doc, config = live.read_consumer(args.consumer)
    default_label = live.topic_name(doc, config)
    autoscaling = config.autoscaling
    true_rate = args.true_rate_per_core or (autoscaling.rate_per_core if autoscaling else 1000.0)
    trace = build_trace(
        name=args.trace,
        csv_path=args.trace_csv,
        base_rate=args.base_rate,
        num_partitions=config.num_partitions,
        seed=args.seed,
        at_s=args.at,
        length_s=args.length,
    )
    model = sim_model.Model(
        trace=trace,
        num_partitions=config.num_partitions,
        true_rate_per_core=true_rate,
        restart_s=args.restart,
        time_scale=args.speed,
    )
    sim = live.LiveSim(
        model=model,
        config=config,
        list_deployments=live.kube_lister(kubeconfig=args.kubeconfig, namespace=config.namespace),
        container=args.container,
    )
    listen = live.Endpoint.parse(args.listen)
    stop_http = sim.serve(
        listen=listen, topic=args.topic or default_label, group=args.group or default_label
    )
    print(
        f"simulating {config.num_partitions} partitions of {config.namespace}/{config.name}"
        f" ({trace.name}: {trace.description}) on http://{listen.host}:{listen.port}/metrics",
        flush=True,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sim.run(stop=stop)
    finally:
        stop_http()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m konsumerator.sim", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a topic and its consumers for a cluster")
    run.add_argument("--kubeconfig", required=True)
    run.add_argument(
        "--consumer", default=str(EXAMPLE), help="the Consumer YAML (default: %(default)s)"
    )
    run.add_argument("--listen", default="127.0.0.1:9400", help="HOST:PORT for /metrics")
    run.add_argument("--topic", help="topic label (default: the Consumer's metadata.name)")
    run.add_argument("--group", help="consumergroup label (default: the Consumer's metadata.name)")
    run.add_argument("--container", help="the consuming container (default: the template's first)")
    _add_workload_options(run, trace="incident")

    demo = sub.add_parser(
        "demo", help="make demo: cluster, real Kafka (or --simulator), operator, live view"
    )
    demo.add_argument(
        "--simulator",
        action="store_true",
        help="a simulated topic instead of a real Kafka broker (no Java or Maven needed)",
    )
    demo.add_argument("--name", default="demo", help="testenv cluster name (default: %(default)s)")
    demo.add_argument(
        "--consumer", default=str(EXAMPLE), help="the Consumer YAML (default: %(default)s)"
    )
    demo.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: Ctrl-C)"
    )
    demo.add_argument(
        "--once-per", type=float, help="print a frame every N s instead of refreshing"
    )
    demo.add_argument("--refresh", type=float, default=2.0, help="seconds between screen refreshes")
    demo.add_argument("--keep", action="store_true", help="leave the cluster running at the end")
    _add_workload_options(demo, trace="incident")

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.simulator:
            from konsumerator.sim import demo as demo_module

            return demo_module.main(args)
        from konsumerator.sim import kafkademo

        return kafkademo.main(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
