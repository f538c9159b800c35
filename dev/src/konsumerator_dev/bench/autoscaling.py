"""The autoscaling scorecard: how good are the sizing decisions, next to the alternatives?

Every policy plays the same production trace against the same consumption
model (``konsumerator_dev.sim.model``: consumption = min(backlog + produced,
truePerCoreRate × CPU), a pod-template change costs ``--restart`` seconds of
zero consumption, an in-place resize none but ``--resize`` seconds of actuation
delay), in virtual time, with no cluster:

* ``upstream-inplace`` and ``upstream-recreate``: the operator's own reconcile
  pass (``Pipeline``) exactly as it runs, against an in-memory cluster (the
  pieces of ``konsumerator.simulating``), with ``spec.autoscaler.updateMode``
  set to ``InPlaceOrRecreate`` or ``Recreate``. Metrics are refreshed every
  ``minSyncPeriod`` from what Prometheus would answer: ``rate()`` over the
  last minute and the lag now. Each write that changes a pod template
  restarts that instance; a new size recorded as the Deployment's target
  (in-place mode) resizes its running pod instead. ``upstream`` runs the
  Consumer's own updateMode.
* ``static-peak``: each instance fixed at the highest CPU the oracle ever
  gives it (rounded up to ``cpuIncrement``): never resized, never late
  because of it; the upper bound on cost.
* ``oracle``: knows the demand and actuates instantly, without restarts,
  giving each instance exactly the CPU that consumes everything available
  in the step (capped at the container's ``maxAllowed``, the physical
  ceiling c_max): the lower bound on cost with no avoidable SLO breach.
* any other policy, by name: ``--policies upstream,mypkg.mod:MyPolicy``
  (a class with ``allocate(model=, scenario=)``, see :class:`Policy`).

Per trace and policy it reports:

* V: SLO-violation partition-minutes, Σ_p ∫ 1[lag_time_p > SLO] dt, with SLO
  = criticalLag, and the strict variant with SLO = tolerableLag;
  lag_time_p is the backlog in seconds of the partition's current production;
* S: lag severity, Σ_p ∫ max(0, lag_time_p − criticalLag) dt (lag-seconds ×
  seconds, shown in lag-min·min);
* A: allocated CPU core-hours of the consuming container (sidecars pinned by
  policy cost every policy the same and are left out), and over-/under-
  provisioned core-hours O and U against the Theodolite demand
  need = (λ + backlog / recoveryTime) / truePerCoreRate;
* restarts caused by scaling (template changes of running instances),
  resizes (CPU changes of running instances, in place or through a restart)
  and up-down oscillations (up → down → up within 10 minutes, per instance);
* efficiency = A_oracle / A.

Output, under ``bench/results/autoscaling/``: ``scorecard.md`` (the table and
the parameters) and one PNG per trace (worst partition's lag and total
allocated CPU over time, per policy). ``--publish`` also copies the table and
the incident plot to ``docs/scorecard/``. Deterministic for a seed; the full
suite takes well under a minute on 2 cores::

    make scorecard [SCORECARD_ARGS=--publish]
"""

from __future__ import annotations

import importlib
import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import click

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec, to_config
from konsumerator.domain import keys
from konsumerator.domain.metrics import refresh_due
from konsumerator.domain.specs import ConsumerConfig, Owner, UpdateMode
from konsumerator.simulating import START, Replay, load_consumer
from konsumerator_dev import clikit
from konsumerator_dev.paths import REPO as ROOT
from konsumerator_dev.sim import model as sim
from konsumerator_dev.sim import traces as sim_traces
from konsumerator_dev.sim.live import instances_from, worker_container

RESULTS = ROOT / "bench" / "results" / "autoscaling"
DOCS = ROOT / "docs" / "scorecard"
OSCILLATION_WINDOW_S = 600.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row group of the scorecard: a trace played against a Consumer."""

    name: str
    trace: sim_traces.Trace
    config: ConsumerConfig
    owner: Owner
    # The Consumer as read from its file: what the operator's pass starts from.
    source: manifests.Source
    spec: ConsumerSpec
    true_rate_per_core: float
    restart_s: float
    dt_s: float
    container: str = field(default="")
    # The kubelet's actuation delay of an in-place resize.
    resize_s: float = 0.0

    @property
    def instances(self) -> list[tuple[str, tuple[int, ...]]]:
        from konsumerator.domain import partitions as partitioning

        assignment = partitioning.assign(
            num_partitions=self.config.num_partitions, per_instance=self.config.per_instance
        )
        return [(f"{self.config.name}-{i}", parts) for i, parts in enumerate(assignment)]

    @property
    def max_cpu_m(self) -> int | None:
        bounds = self.config.policies.get(self.container)
        return bounds.max_cpu_m if bounds is not None else None


class Policy(Protocol):
    """Decides, before each step, which instances run with how much CPU."""

    def allocate(self, *, model: sim.Model, scenario: Scenario) -> Sequence[sim.Instance] | None:
        """The instances to run from now on; None keeps the current ones."""
        ...


class Upstream:
    """The operator's own reconcile pass (``Pipeline``), run every minSyncPeriod, with the
    Consumer's ``updateMode`` or ``update_mode`` instead."""

    def __init__(self, *, update_mode: UpdateMode | None = None) -> None:
        self._replay: Replay | None = None
        self._bodies: dict[str, dict[str, Any]] = {}
        self._update_mode = update_mode

    def _spec(self, spec: ConsumerSpec) -> ConsumerSpec:
        if self._update_mode is None:
            return spec
        autoscaler = spec.autoscaler.model_copy(update={"update_mode": self._update_mode.value})
        return spec.model_copy(update={"autoscaler": autoscaler})

    def allocate(self, *, model: sim.Model, scenario: Scenario) -> Sequence[sim.Instance] | None:
        config = scenario.config
        autoscaling = config.autoscaling
        assert autoscaling is not None
        first = self._replay is None
        if self._replay is None:
            self._replay = Replay(
                source=scenario.source, spec=self._spec(scenario.spec), start=START
            )
        now = START + timedelta(seconds=model.t)
        if not first and not refresh_due(
            synced_at=self._replay.metrics.synced_at,
            now=now,
            min_sync_period_s=autoscaling.min_sync_period_s,
        ):
            return None
        result = self._replay.step(
            advance_s=(now - self._replay.now).total_seconds(), metrics=model.snapshot()
        ).plan
        if not result.applies and not result.deletes:
            return None
        for d in result.deletes:
            self._bodies.pop(d.name, None)
        for a in result.applies:
            self._bodies[a.name] = a.body
        return instances_from(self._bodies.values(), config=config, container=scenario.container)


def _oracle_cpu_m(*, model: sim.Model, scenario: Scenario, parts: Sequence[int]) -> int:
    """CPU that consumes everything available to these partitions in the coming step."""
    t = model.trace_t
    work = 0.0
    for p in parts:
        if scenario.trace.stalled(partition=p, t=t):
            continue
        work += model.partitions[p].backlog + scenario.trace.rate(partition=p, t=t) * scenario.dt_s
    cpu_m = math.ceil(work / (scenario.true_rate_per_core * scenario.dt_s) * 1000 - 1e-9)
    cap = scenario.max_cpu_m
    return min(cpu_m, cap) if cap is not None else cpu_m


class Oracle:
    """Knows the demand, actuates instantly and without restarts."""

    continuous = True

    def allocate(self, *, model: sim.Model, scenario: Scenario) -> Sequence[sim.Instance] | None:
        return [
            sim.Instance(
                name=name,
                partitions=parts,
                cpu_m=_oracle_cpu_m(model=model, scenario=scenario, parts=parts),
                template="oracle",
            )
            for name, parts in scenario.instances
        ]


class StaticPeak:
    """Each instance fixed at the peak CPU the oracle gives it over the trace."""

    def __init__(self) -> None:
        self._fixed: list[sim.Instance] | None = None

    def allocate(self, *, model: sim.Model, scenario: Scenario) -> Sequence[sim.Instance] | None:
        if self._fixed is not None:
            return None
        peak = _peak_oracle_cpu(scenario)
        increment = (
            scenario.config.autoscaling.cpu_increment_m if scenario.config.autoscaling else 1
        )
        self._fixed = [
            sim.Instance(
                name=name,
                partitions=parts,
                cpu_m=-(-peak[name] // increment) * increment,
                template="static",
            )
            for name, parts in scenario.instances
        ]
        return self._fixed


# The oracle's peak per instance, by scenario: static-peak needs the oracle's run,
# and the suite scores the oracle anyway, so it is played once.
_PEAKS: dict[int, tuple[dict[str, int], Score]] = {}


def _oracle_run(scenario: Scenario) -> tuple[dict[str, int], Score]:
    if id(scenario) not in _PEAKS:
        peak = {name: 0 for name, _ in scenario.instances}

        def record(instances: Sequence[sim.Instance]) -> None:
            for i in instances:
                peak[i.name] = max(peak[i.name], i.cpu_m)

        score = play(scenario=scenario, policy=Oracle(), observe=record)
        _PEAKS[id(scenario)] = (peak, score)
    return _PEAKS[id(scenario)]


def _peak_oracle_cpu(scenario: Scenario) -> dict[str, int]:
    return _oracle_run(scenario)[0]


POLICIES: dict[str, Callable[[], Policy]] = {
    "upstream": Upstream,
    "upstream-inplace": lambda: Upstream(update_mode=UpdateMode.IN_PLACE_OR_RECREATE),
    "upstream-recreate": lambda: Upstream(update_mode=UpdateMode.RECREATE),
    "static-peak": StaticPeak,
    "oracle": Oracle,
}


def policy_factory(name: str) -> Callable[[], Policy]:
    if name in POLICIES:
        return POLICIES[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        factory: Callable[[], Policy] = getattr(importlib.import_module(module), attr)
        return factory
    raise SystemExit(f"unknown policy {name!r}: one of {', '.join(POLICIES)} or module:Class")


@dataclass(slots=True)
class Score:
    v_critical_min: float = 0.0
    v_tolerable_min: float = 0.0
    severity: float = 0.0  # lag-seconds x seconds
    core_hours: float = 0.0
    over_core_hours: float = 0.0
    under_core_hours: float = 0.0
    restarts: int = 0
    # None for a policy that resizes continuously and for free (the oracle).
    resizes: int | None = 0
    oscillations: int | None = 0
    # Sampled every 30 s for the plots: (t, worst lag seconds, allocated cores, needed cores).
    series: list[tuple[float, float, float, float]] = field(default_factory=list)


def _oscillations(changes: Sequence[tuple[float, int]]) -> int:
    """Up → down → up within the window, from one instance's (t, direction) resizes."""
    count = 0
    for i in range(len(changes) - 2):
        (t0, d0), (_, d1), (t2, d2) = changes[i], changes[i + 1], changes[i + 2]
        if d0 > 0 and d1 < 0 and d2 > 0 and t2 - t0 <= OSCILLATION_WINDOW_S:
            count += 1
    return count


def play(
    *,
    scenario: Scenario,
    policy: Policy,
    observe: Callable[[Sequence[sim.Instance]], None] | None = None,
) -> Score:
    """Run one policy over the whole trace and score it."""
    trace, config = scenario.trace, scenario.config
    autoscaling = config.autoscaling
    assert autoscaling is not None
    critical = autoscaling.critical_lag_s or math.inf
    tolerable = autoscaling.tolerable_lag_s or math.inf
    recovery = autoscaling.recovery_s
    model = sim.Model(
        trace=trace,
        num_partitions=config.num_partitions,
        true_rate_per_core=scenario.true_rate_per_core,
        restart_s=scenario.restart_s,
        # the oracle actuates instantly by definition
        resize_s=0.0 if getattr(policy, "continuous", False) else scenario.resize_s,
        history_s=60.0,
    )
    score = Score()
    dt = scenario.dt_s
    # A minute of history before the first pass, unscored: the operator takes over a live
    # topic whose Prometheus already has a rate() window (nobody owns it yet, so the
    # previous consumer keeps up, see the model's "Handover").
    while model.t < 60.0:
        model.advance(dt=dt)
    steps = int((trace.duration_s - model.t) / dt)
    current: dict[str, int] = {}
    changes: dict[str, list[tuple[float, int]]] = {}
    sample_every = max(1, int(30 / dt))
    for step in range(steps):
        chosen = policy.allocate(model=model, scenario=scenario)
        if chosen is not None:
            model.allocate(chosen)
            for inst in chosen:
                before = current.get(inst.name)
                if before is not None and inst.cpu_m != before:
                    changes.setdefault(inst.name, []).append(
                        (model.t, 1 if inst.cpu_m > before else -1)
                    )
                current[inst.name] = inst.cpu_m
            if observe is not None:
                observe(chosen)
        model.advance(dt=dt)
        worst = 0.0
        rates = [part.production_rate for part in model.partitions]
        for p, part in enumerate(model.partitions):
            backlog = part.backlog
            if backlog <= 0.5:
                continue
            lag_s = backlog / rates[p] if rates[p] > 0 else math.inf
            worst = max(worst, lag_s)
            if lag_s > critical:
                score.v_critical_min += dt / 60
                score.severity += (min(lag_s, 1e9) - critical) * dt
            if lag_s > tolerable:
                score.v_tolerable_min += dt / 60
        allocated = needed = 0.0
        for inst in model.instances():
            req = inst.cpu_m / 1000
            need = (
                sum(rates[p] + model.partitions[p].backlog / recovery for p in inst.partitions)
                / scenario.true_rate_per_core
            )
            allocated += req
            needed += need
            score.core_hours += req * dt / 3600
            score.over_core_hours += max(0.0, req - need) * dt / 3600
            score.under_core_hours += max(0.0, need - req) * dt / 3600
        if step % sample_every == 0:
            score.series.append((model.t, worst, allocated, needed))
    score.restarts = model.restarts
    if not getattr(policy, "continuous", False):
        score.resizes = model.resizes
        score.oscillations = sum(_oscillations(c) for c in changes.values())
    else:
        score.resizes = score.oscillations = None
    return score


# -- the suite ----------------------------------------------------------------------------------


def load_config(path: Path) -> tuple[manifests.Source, ConsumerSpec]:
    return load_consumer(path.read_text(), source=str(path))


def suite(
    *,
    source: manifests.Source,
    spec: ConsumerSpec,
    seed: int,
    restart_s: float,
    resize_s: float,
    dt_s: float,
    base_rate: float,
    csv: Path | None,
    only: Sequence[str] | None,
) -> list[Scenario]:
    config = to_config(spec, paused=keys.DISABLE_AUTOSCALER in source.annotations)
    owner = Owner(
        api_version=source.api_version, kind=source.kind, name=source.name, uid="scorecard"
    )
    assert config.autoscaling is not None
    believed = float(config.autoscaling.rate_per_core)
    container = worker_container(config)
    n = config.num_partitions
    traces: list[tuple[str, sim_traces.Trace, float]] = [
        ("steady", sim_traces.steady(base_rate=base_rate, seed=seed), believed),
        ("diurnal", sim_traces.diurnal(base_rate=base_rate, seed=seed), believed),
        ("burst", sim_traces.burst(base_rate=base_rate, seed=seed), believed),
        ("incident", sim_traces.incident(base_rate=base_rate, seed=seed), believed),
        ("skewed", sim_traces.skewed(base_rate=base_rate, num_partitions=n, seed=seed), believed),
        # Consumers 20% slower than the Consumer's ratePerCore says, as in real life.
        ("diurnal-slow", sim_traces.diurnal(base_rate=base_rate, seed=seed), believed * 0.8),
    ]
    if csv is not None:
        traces.append((csv.stem, sim_traces.from_csv(csv.read_text(), name=csv.stem), believed))
    return [
        Scenario(
            name=name,
            trace=trace,
            config=config,
            owner=owner,
            source=source,
            spec=spec,
            true_rate_per_core=true_rate,
            restart_s=restart_s,
            resize_s=resize_s,
            dt_s=dt_s,
            container=container,
        )
        for name, trace, true_rate in traces
        if not only or name in only
    ]


# -- output -------------------------------------------------------------------------------------

COLUMNS = (
    ("trace", "trace"),
    ("policy", "policy"),
    ("V crit", "SLO violation, lag > criticalLag (partition-min)"),
    ("V tol", "strict SLO violation, lag > tolerableLag (partition-min)"),
    ("S", "lag severity beyond criticalLag (lag-min·min)"),
    ("A", "allocated CPU (core-h)"),
    ("O", "over-provisioned (core-h)"),
    ("U", "under-provisioned (core-h)"),
    ("restarts", "restarts caused by scaling (pod-template changes of running instances)"),
    ("resizes", "CPU changes of running instances (in place or by a restart)"),
    ("osc", "up→down→up within 10 min"),
    ("eff", "efficiency A_oracle / A"),
)


def table(results: Mapping[str, Mapping[str, Score]]) -> str:
    lines = [
        "| " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    for trace, by_policy in results.items():
        oracle = by_policy.get("oracle")
        for policy, s in by_policy.items():
            eff = f"{oracle.core_hours / s.core_hours:.2f}" if oracle and s.core_hours else "-"
            cells = [
                trace,
                policy,
                f"{s.v_critical_min:.1f}",
                f"{s.v_tolerable_min:.1f}",
                f"{s.severity / 3600:.1f}",
                f"{s.core_hours:.2f}",
                f"{s.over_core_hours:.2f}",
                f"{s.under_core_hours:.2f}",
                str(s.restarts),
                "-" if s.resizes is None else str(s.resizes),
                "-" if s.oscillations is None else str(s.oscillations),
                eff,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(
    *, results: Mapping[str, Mapping[str, Score]], scenarios: Sequence[Scenario], args: Any
) -> str:
    config = scenarios[0].config
    a = config.autoscaling
    assert a is not None
    bounds = config.policies.get(scenarios[0].container)
    traces = "\n".join(
        f"- `{s.name}`: {s.trace.description}; {s.trace.duration_s / 3600:g} h,"
        f" consumers do {s.true_rate_per_core:g} msg/s per core"
        for s in scenarios
    )
    legend = "\n".join(f"- **{c}**: {text}" for c, text in COLUMNS[2:])
    return f"""# Autoscaling scorecard

Generated by `bench/autoscaling.py` (seed {args.seed}). Every policy replays the
same trace through the same consumption model in virtual time: consumption =
min(backlog + produced, truePerCoreRate × CPU of the consuming container); a
pod-template change costs {args.restart:g} s with zero consumption; an in-place resize
costs no consumption and takes effect {args.resize:g} s after the decision (the kubelet's
actuation).

Consumer: `{args.consumer}` ({config.num_partitions} partitions,
{config.per_instance} per instance), ratePerCore {a.rate_per_core}, minSyncPeriod
{a.min_sync_period_s:g} s, pendingScaleUp {a.pending_up_s:g} s, pendingScaleDown
{a.pending_down_s:g} s, tolerableLag {a.tolerable_lag_s:g} s, criticalLag
{a.critical_lag_s:g} s, recoveryTime {a.recovery_s:g} s, CPU
{bounds.min_cpu_m if bounds else "-"}m..{bounds.max_cpu_m if bounds else "-"}m per
instance. Production {args.base_rate:g} msg/s per partition before shaping;
Prometheus is emulated as `rate()` over the last minute; step {args.dt:g} s.

{table(results)}

{legend}

Traces:
{traces}

Policies: `upstream-inplace` and `upstream-recreate` are the operator's reconcile pass as
it runs, with `updateMode: InPlaceOrRecreate` (the default: a new size resizes the
running pods through `pods/resize`, the template keeps its size) and `updateMode:
Recreate` (every new size is a pod-template change: the pods restart, as the Go operator
did);
`static-peak` fixes each instance at the oracle's peak CPU for that trace;
`oracle` gives each instance, every step and without restarts, the CPU that
consumes all that is available (up to maxAllowed). Violations the oracle
also has are the physical floor (a stall consumes nothing whatever the CPU).
"""


def plot(*, trace: str, by_policy: Mapping[str, Score], scenario: Scenario, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = scenario.config.autoscaling
    assert a is not None
    fig, (lag_ax, cpu_ax) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for policy, s in by_policy.items():
        hours = [x[0] / 3600 for x in s.series]
        lag_ax.plot(hours, [x[1] / 60 for x in s.series], label=policy, linewidth=1.2)
        cpu_ax.plot(hours, [x[2] for x in s.series], label=policy, linewidth=1.2)
    for level, name in ((a.critical_lag_s, "criticalLag"), (a.tolerable_lag_s, "tolerableLag")):
        if level:
            lag_ax.axhline(level / 60, color="grey", linestyle=":", linewidth=0.8)
            lag_ax.annotate(name, (0, level / 60), fontsize=8, color="grey", va="bottom")
    lag_ax.set_ylabel("worst partition lag (min)")
    lag_ax.set_title(f"{trace}: {scenario.trace.description}")
    lag_ax.legend(loc="upper right")
    cpu_ax.set_ylabel("allocated CPU (cores)")
    cpu_ax.set_xlabel("hours")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command("scorecard", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--consumer", default="examples/consumer.yaml")
@click.option("--policies", default="upstream-inplace,upstream-recreate,static-peak,oracle")
@click.option("--traces", help="comma-separated subset of the suite")
@click.option(
    "--trace-csv", type=click.Path(path_type=Path), help="add a trace from a CSV (t,<partition>|*)"
)
@click.option("--seed", type=int, default=1)
@click.option("--restart", type=float, default=30.0, help="seconds per restart")
@click.option(
    "--resize", type=float, default=5.0, help="seconds from an in-place resize to its actuation"
)
@click.option("--dt", type=float, default=2.0, help="model step, seconds")
@click.option("--base-rate", type=float, default=1000.0, help="msg/s per partition")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS)
@click.option("--no-plots", is_flag=True)
@click.option("--publish", is_flag=True, help="copy table + one plot to docs/")
def main(**options: Any) -> int:
    args = SimpleNamespace(**options)

    source, spec = load_config(ROOT / args.consumer)
    scenarios = suite(
        source=source,
        spec=spec,
        seed=args.seed,
        restart_s=args.restart,
        resize_s=args.resize,
        dt_s=args.dt,
        base_rate=args.base_rate,
        csv=args.trace_csv,
        only=args.traces.split(",") if args.traces else None,
    )
    policies = [(name, policy_factory(name)) for name in args.policies.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Score]] = {}
    started = time.perf_counter()
    for scenario in scenarios:
        results[scenario.name] = {}
        for name, factory in policies:
            t0 = time.perf_counter()
            if factory is Oracle:
                results[scenario.name][name] = _oracle_run(scenario)[1]
            else:
                results[scenario.name][name] = play(scenario=scenario, policy=factory())
            print(
                f"{scenario.name:<14} {name:<12} {time.perf_counter() - t0:5.1f}s",
                file=sys.stderr,
                flush=True,
            )
        if not args.no_plots:
            plot(
                trace=scenario.name,
                by_policy=results[scenario.name],
                scenario=scenario,
                path=args.out / f"{scenario.name}.png",
            )
    text = report(results=results, scenarios=scenarios, args=args)
    (args.out / "scorecard.md").write_text(text)
    print(table(results))
    print(
        f"\n{len(scenarios)} traces x {len(policies)} policies in "
        f"{time.perf_counter() - started:.1f}s; results in {args.out}",
        file=sys.stderr,
    )
    if args.publish:
        DOCS.mkdir(parents=True, exist_ok=True)
        (DOCS / "scorecard.md").write_text(
            text.replace("\nTraces:", "\n![incident](incident.png)\n\nTraces:")
        )
        if (args.out / "incident.png").exists():
            shutil.copy(args.out / "incident.png", DOCS / "incident.png")
        print(f"published to {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench scorecard")
