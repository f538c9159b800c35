"""The autoscaling scorecard: how good are the sizing decisions, next to the alternatives?

The model, the policies and the score are the product's (``konsumerator.scoring``,
what ``konsumerator score`` runs on a user's trace); this module plays them on
a suite of synthetic trace generators (``konsumerator_dev.sim.traces``: they
imitate production shapes, they are not recorded production traces), in
virtual time, with no cluster:

* ``naive``: the operator's reconcile pass with the Go operator's predictor;
* ``adaptive``: the same pass with ``predictor: adaptive``;
* ``static-peak``: each instance fixed at the oracle's peak CPU for that trace;
* ``oracle``: knows the present demand exactly (not the future), actuates
  instantly and without restarts; the lower bound on cost with no avoidable
  SLO breach.

Each trace is played with several seeds (the noise differs) and the table shows
the mean and the spread (min..max); with both CPU models (consumers limited to
their request on a contended node, or bursting to their limit on a spare one)
and both update modes (Recreate: a resize restarts the pods; InPlaceOrRecreate:
no restart, effective 5 s later). A published cost puts CPU, violations and restarts on one scale,
and a Pareto plot shows A/A_oracle against V tol.

Output, under ``bench/results/autoscaling/``: ``scorecard.md`` and the plots;
``--publish`` copies them to ``docs/scorecard/``. Deterministic for the seeds::

    make scorecard [SCORECARD_ARGS=--publish]
"""

from __future__ import annotations

import importlib
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec
from konsumerator.scoring import command as scoring
from konsumerator.scoring.model import CpuModel, Workload
from konsumerator.scoring.play import OSCILLATION_WINDOW_S, OracleRuns, Score, play
from konsumerator.scoring.play import oscillations as _oscillations
from konsumerator.scoring.policies import Oracle, PipelinePolicy, Policy, Scenario, StaticPeak
from konsumerator.simulating import load_consumer
from konsumerator_dev import clikit
from konsumerator_dev.paths import REPO as ROOT
from konsumerator_dev.sim import traces as sim_traces

# The traces of the published scorecard (the rest are played when named).
PUBLISHED = ("steady", "diurnal", "burst", "incident", "skewed", "flapping", "diurnal-slow")
RESULTS = ROOT / "bench" / "results" / "autoscaling"
DOCS = ROOT / "docs" / "scorecard"

# The published prices: what one core-hour, one partition-minute with lag beyond
# tolerableLag and one restart cost. Arbitrary but fixed, so that policies that trade
# one for another can be ranked on one number; change them to yours.
PRICE_CORE_HOUR = 0.05
PRICE_VIOLATION_MIN = 0.10
PRICE_RESTART = 0.02

# One oracle run per trace, seed and true rate: the oracle has no restarts and no CPU
# limit, so the update mode and the CPU model change nothing for it (or static-peak).
_ORACLES = OracleRuns(
    key=lambda s: (s.name, getattr(s.trace, "seed", 0), s.true_rate_per_core, s.dt_s)
)


def Upstream() -> PipelinePolicy:
    return PipelinePolicy("naive")


def _static_peak() -> StaticPeak:
    return StaticPeak(_ORACLES.peak)


POLICIES: dict[str, Callable[[], Policy]] = {
    "naive": Upstream,
    "adaptive": lambda: PipelinePolicy("adaptive"),
    "static-peak": _static_peak,
    "oracle": Oracle,
}
# Asked by name only (``--policies``): the adaptive predictor learning the rate per core
# from the model's CPU-usage series, as with spec.autoscaler.prometheus.cpuUsage.
EXTRA_POLICIES: dict[str, Callable[[], Policy]] = {
    "adaptive-learned": lambda: PipelinePolicy("adaptive", learn=True),
}


def policy_factory(name: str) -> Callable[[], Policy]:
    if name in POLICIES:
        return POLICIES[name]
    if name in EXTRA_POLICIES:
        return EXTRA_POLICIES[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        factory: Callable[[], Policy] = getattr(importlib.import_module(module), attr)
        return factory
    raise SystemExit(f"unknown policy {name!r}: one of {', '.join(POLICIES)} or module:Class")


def score_one(*, scenario: Scenario, name: str) -> Score:
    if name == "oracle":
        return _ORACLES.run(scenario)[1]
    return play(scenario=scenario, policy=policy_factory(name)())


def load_config(path: Path) -> tuple[manifests.Source, ConsumerSpec]:
    return load_consumer(path.read_text(), source=str(path))


def suite(
    *,
    source: manifests.Source,
    spec: ConsumerSpec,
    seed: int,
    restart_s: float,
    dt_s: float,
    base_rate: float,
    csv: Path | None,
    only: Sequence[str] | None,
    cpu_model: CpuModel = CpuModel.REQUEST,
    update_mode: scoring.UpdateMode | None = None,
) -> list[Scenario]:
    n = spec.num_partitions
    traces: list[tuple[str, Workload, float]] = [
        ("steady", sim_traces.steady(base_rate=base_rate, seed=seed), 1.0),
        ("diurnal", sim_traces.diurnal(base_rate=base_rate, seed=seed), 1.0),
        ("burst", sim_traces.burst(base_rate=base_rate, seed=seed), 1.0),
        ("incident", sim_traces.incident(base_rate=base_rate, seed=seed), 1.0),
        ("skewed", sim_traces.skewed(base_rate=base_rate, num_partitions=n, seed=seed), 1.0),
        ("flapping", sim_traces.flapping(base_rate=base_rate, seed=seed), 1.0),
        # Consumers 20% slower than the Consumer's ratePerCore says, as in real life.
        ("diurnal-slow", sim_traces.diurnal(base_rate=base_rate, seed=seed), 0.8),
    ]
    wanted = set(only or ())
    if "invented" in wanted:
        wanted |= set(sim_traces.INVENTED)
    for name, make in sim_traces.INVENTED.items():
        # Not in the published suite: played only when asked for by name.
        if name in wanted:
            traces.append((name, make(seed=seed), 1.0))
    if csv is not None:
        traces.append((csv.stem, sim_traces.from_csv(csv.read_text(), name=csv.stem), 1.0))
    return [
        scoring.scenario(
            source=source,
            spec=spec,
            trace=trace,
            name=name,
            options=scoring.Options(
                true_rate_factor=factor,
                restart_s=restart_s,
                dt_s=dt_s,
                cpu_model=cpu_model,
                update_mode=update_mode,
            ),
        )
        for name, trace, factor in traces
        if not only or name in wanted or name not in PUBLISHED
    ]


# -- output -------------------------------------------------------------------------------------


def cost(s: Score) -> float:
    return (
        s.core_hours * PRICE_CORE_HOUR
        + s.v_tolerable_min * PRICE_VIOLATION_MIN
        + s.restarts * PRICE_RESTART
    )


COLUMNS: tuple[tuple[str, str, Callable[[Score], float | None], str], ...] = (
    (
        "V crit",
        "SLO violation, lag > criticalLag (partition-min)",
        lambda s: s.v_critical_min,
        ".1f",
    ),
    (
        "V tol",
        "strict SLO violation, lag > tolerableLag (partition-min)",
        lambda s: s.v_tolerable_min,
        ".1f",
    ),
    ("S", "lag severity beyond criticalLag (lag-min·min)", lambda s: s.severity / 3600, ".1f"),
    ("A", "allocated CPU, requests (core-h)", lambda s: s.core_hours, ".2f"),
    ("O", "over-provisioned (core-h)", lambda s: s.over_core_hours, ".2f"),
    ("U", "under-provisioned, stalls excluded (core-h)", lambda s: s.under_core_hours, ".2f"),
    ("restarts", "restarts caused by scaling", lambda s: s.restarts, ".0f"),
    ("resizes", "resizes", lambda s: s.resizes, ".0f"),
    (
        "osc",
        f"up→down→up of one instance within {OSCILLATION_WINDOW_S / 60:g} min",
        lambda s: s.oscillations,
        ".0f",
    ),
    ("cost", "published cost, $ (see the prices below)", cost, ".2f"),
)


def _cell(values: Sequence[float | None], fmt: str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    mean = format(statistics.fmean(known), fmt)
    low, high = min(known), max(known)
    if len(known) == 1 or format(low, fmt) == format(high, fmt):
        return mean
    return f"{mean} ({format(low, fmt)}–{format(high, fmt)})"


def table(results: Mapping[str, Mapping[str, Sequence[Score]]]) -> str:
    """One row per trace and policy: the mean over the seeds (min–max when they differ)."""
    header = ["trace", "policy", *(c for c, _, _, _ in COLUMNS), "eff"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
    ]
    for trace, by_policy in results.items():
        oracle = by_policy.get("oracle")
        oracle_a = statistics.fmean(s.core_hours for s in oracle) if oracle else None
        for policy, scores in by_policy.items():
            a = statistics.fmean(s.core_hours for s in scores)
            eff = f"{oracle_a / a:.2f}" if oracle_a and a else "-"
            cells = [
                trace,
                policy,
                *(_cell([get(s) for s in scores], f) for _, _, get, f in COLUMNS),
            ]
            lines.append("| " + " | ".join([*cells, eff]) + " |")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Setting:
    title: str
    cpu_model: CpuModel
    update_mode: scoring.UpdateMode


SETTINGS = (
    Setting(
        "CPU request (a contended node), Recreate", CpuModel.REQUEST, scoring.UpdateMode.RECREATE
    ),
    Setting(
        "CPU limit (a node with CPU to spare), Recreate",
        CpuModel.LIMIT,
        scoring.UpdateMode.RECREATE,
    ),
    Setting(
        "CPU request, in-place resize (InPlaceOrRecreate)",
        CpuModel.REQUEST,
        scoring.UpdateMode.IN_PLACE_OR_RECREATE,
    ),
    Setting(
        "CPU limit (a node with CPU to spare), in-place resize (InPlaceOrRecreate)",
        CpuModel.LIMIT,
        scoring.UpdateMode.IN_PLACE_OR_RECREATE,
    ),
)


def report(
    *,
    sections: Mapping[str, Mapping[str, Mapping[str, Sequence[Score]]]],
    scenarios: Sequence[Scenario],
    args: Any,
) -> str:
    config = scenarios[0].config
    a = config.autoscaling
    assert a is not None
    bounds = config.policies.get(scenarios[0].container)
    traces = "\n".join(
        f"- `{s.name}`: {getattr(s.trace, 'description', '')}; {s.trace.duration_s / 3600:g} h,"
        f" consumers do {s.true_rate_per_core:g} msg/s per core"
        for s in scenarios
    )
    legend = "\n".join(f"- **{c}**: {text}" for c, text, _, _ in COLUMNS)
    tables = "\n\n".join(f"### {title}\n\n{table(results)}" for title, results in sections.items())
    return f"""# Autoscaling scorecard

Generated by `konsumerator-dev bench scorecard` (seeds {args.seed}..{args.seed + args.seeds - 1};
each cell is the mean over the seeds, with the min–max spread where they differ).
Every policy replays the same trace through the same consumption model in
virtual time (`konsumerator.scoring`, the model `konsumerator score` uses on
your own trace): consumption = min(backlog + produced, truePerCoreRate × CPU of
the consuming container), where the CPU is the container's request on a
contended node or its limit on a node with CPU to spare (the two bounds of
real life); a pod-template change costs {args.restart:g} s with zero consumption
under Recreate; in place a resize restarts nothing and takes effect 5 s later.

Consumer: `{args.consumer}` ({config.num_partitions} partitions,
{config.per_instance} per instance), ratePerCore {a.rate_per_core}, minSyncPeriod
{a.min_sync_period_s:g} s, pendingScaleUp {a.pending_up_s:g} s, pendingScaleDown
{a.pending_down_s:g} s, tolerableLag {a.tolerable_lag_s:g} s, criticalLag
{a.critical_lag_s:g} s, recoveryTime {a.recovery_s:g} s, CPU
{bounds.min_cpu_m if bounds else "-"}m..{bounds.max_cpu_m if bounds else "-"}m per
instance. Production {args.base_rate:g} msg/s per partition before shaping;
Prometheus is emulated as `rate()` over the last minute; step {args.dt:g} s.

{tables}

![Pareto: CPU against violations](pareto.png)

{legend}
- **eff**: efficiency A_oracle / A (the oracle needs this share of the policy's CPU)

Published prices: {PRICE_CORE_HOUR:g} $ per core-hour, {PRICE_VIOLATION_MIN:g} $ per
partition-minute beyond tolerableLag, {PRICE_RESTART:g} $ per restart.

Traces (synthetic generators, not recorded production traces):
{traces}

Policies: `naive` is the operator's pass with the Go operator's predictor;
`adaptive` the same pass with `predictor: adaptive`; `static-peak` fixes each
instance at the oracle's peak CPU for that trace; `oracle` knows the present
demand exactly (not the future) and gives each instance, every step and without
restarts, the CPU that consumes all that is available (up to maxAllowed).
Violations the oracle also has are the physical floor (a stall consumes nothing
whatever the CPU); a stalled partition needs no CPU, so stalls count as neither
over- nor under-provisioning need.
"""


def pareto(*, results: Mapping[str, Mapping[str, Sequence[Score]]], path: Path, title: str) -> None:
    """A/A_oracle against V tol, one point per trace and policy (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = dict(zip(POLICIES, ("o", "s", "^", "*"), strict=False))
    # One colour per policy (not per point), so that the legend reads right.
    colours = {name: f"C{i}" for i, name in enumerate(POLICIES)}
    for trace, by_policy in results.items():
        oracle = by_policy.get("oracle")
        if not oracle:
            continue
        oracle_a = statistics.fmean(s.core_hours for s in oracle)
        for policy, scores in by_policy.items():
            x = statistics.fmean(s.core_hours for s in scores) / oracle_a
            y = statistics.fmean(s.v_tolerable_min for s in scores)
            ax.scatter(
                x,
                y + 0.1,
                marker=markers.get(policy, "x"),
                color=colours.get(policy, "k"),
                label=policy,
            )
            ax.annotate(trace, (x, y + 0.1), fontsize=7, xytext=(3, 3), textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="upper right")
    ax.set_yscale("log")
    ax.set_xlabel("allocated CPU / oracle's (A / A_oracle)")
    ax.set_ylabel("V tol + 0.1 (partition-min, log)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    lag_ax.set_title(f"{trace}: {getattr(scenario.trace, 'description', '')}")
    lag_ax.legend(loc="upper right")
    cpu_ax.set_ylabel("allocated CPU (cores)")
    cpu_ax.set_xlabel("hours")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command("scorecard", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--consumer", default="examples/consumer.yaml")
@click.option("--policies", default="naive,adaptive,static-peak,oracle")
@click.option(
    "--traces",
    help="comma-separated subset of the suite; also the invented traces by name"
    f" ({', '.join(sim_traces.INVENTED)}) or all of them as 'invented'",
)
@click.option(
    "--trace-csv", type=click.Path(path_type=Path), help="add a trace from a CSV (t,<partition>|*)"
)
@click.option("--seed", type=int, default=1, help="the first seed")
@click.option("--seeds", type=int, default=3, help="how many seeds per trace")
@click.option("--settings", default="0,1,2,3", help="which of the CPU model/update mode settings")
@click.option("--restart", type=float, default=30.0, help="seconds per restart")
@click.option("--dt", type=float, default=2.0, help="model step, seconds")
@click.option("--base-rate", type=float, default=1000.0, help="msg/s per partition")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS)
@click.option("--no-plots", is_flag=True)
@click.option("--publish", is_flag=True, help="copy the report and plots to docs/")
def main(**options: Any) -> int:
    args = SimpleNamespace(**options)
    source, spec = load_config(ROOT / args.consumer)
    names = args.policies.split(",")
    for name in names:
        policy_factory(name)
    args.out.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict[str, dict[str, list[Score]]]] = {}
    started = time.perf_counter()
    first: list[Scenario] = []
    for index in (int(i) for i in args.settings.split(",")):
        setting = SETTINGS[index]
        results: dict[str, dict[str, list[Score]]] = sections.setdefault(setting.title, {})
        for seed in range(args.seed, args.seed + args.seeds):
            scenarios = suite(
                source=source,
                spec=spec,
                seed=seed,
                restart_s=args.restart,
                dt_s=args.dt,
                base_rate=args.base_rate,
                csv=args.trace_csv,
                only=args.traces.split(",") if args.traces else None,
                cpu_model=setting.cpu_model,
                update_mode=setting.update_mode,
            )
            first = first or scenarios
            for scenario in scenarios:
                by_policy = results.setdefault(scenario.name, {})
                for name in names:
                    t0 = time.perf_counter()
                    by_policy.setdefault(name, []).append(score_one(scenario=scenario, name=name))
                    print(
                        f"{index} {seed} {scenario.name:<14} {name:<12}"
                        f" {time.perf_counter() - t0:5.1f}s",
                        file=sys.stderr,
                        flush=True,
                    )
                if not args.no_plots and index == 0 and seed == args.seed:
                    plot(
                        trace=scenario.name,
                        by_policy={p: s[-1] for p, s in by_policy.items()},
                        scenario=scenario,
                        path=args.out / f"{scenario.name}.png",
                    )
        if not args.no_plots and index == 0:
            pareto(results=results, path=args.out / "pareto.png", title=setting.title)
    text = report(sections=sections, scenarios=first, args=args)
    (args.out / "scorecard.md").write_text(text)
    print(text)
    print(f"\nin {time.perf_counter() - started:.1f}s; results in {args.out}", file=sys.stderr)
    if args.publish:
        DOCS.mkdir(parents=True, exist_ok=True)
        (DOCS / "scorecard.md").write_text(
            text.replace("\nTraces (", "\n![incident](incident.png)\n\nTraces (")
        )
        for png in ("incident.png", "pareto.png"):
            if (args.out / png).exists():
                shutil.copy(args.out / png, DOCS / png)
        print(f"published to {DOCS}", file=sys.stderr)
    return 0


__all__ = ["OSCILLATION_WINDOW_S", "Score", "_oscillations", "play"]

if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench scorecard")
