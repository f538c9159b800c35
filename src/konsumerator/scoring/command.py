"""What ``konsumerator score`` runs: a Consumer and a trace, every policy, one report.

``--seeds N`` plays the trace as recorded (seed 0) and N-1 variants with
bounded noise (±5 % per partition and minute, a pure function of the seed), and
reports each number's mean with its spread (min..max): one run hides how much
the result depends on where the operator's syncs fall against the trace.

``load`` checks every input before the first step is played and refuses a bad
one with one line naming the file (and row and column, or field) or the
option: the options' ranges (finite numbers only), the Consumer, the trace,
and the work the run would take. Playing costs time in proportion to the
trace's steps times (partitions + a per-step overhead), for each policy and
seed; a run beyond ``MAX_WORK`` (about a quarter of an hour on one core) is
refused up front with what to cut, rather than left to run for hours.
"""

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec, to_config
from konsumerator.domain import keys
from konsumerator.scoring import deployments, files, traces
from konsumerator.scoring.model import CpuModel, Workload
from konsumerator.scoring.play import WARMUP_S, OracleRuns, Score, play
from konsumerator.scoring.policies import Oracle, PipelinePolicy, Policy, Scenario, StaticPeak
from konsumerator.scoring.traces import TableTrace
from konsumerator.simulating import InputError, load_consumer

POLICIES = ("naive", "adaptive", "static-peak", "oracle")
NOISE = 0.05
# Each partition's noise holds for a minute of the trace.
NOISE_PERIOD_S = 60
# From an in-place resize to its actuation (the kubelet's resize of the running
# container); consumption goes on at the old size meanwhile.
RESIZE_S = 5.0


class UpdateMode(StrEnum):
    IN_PLACE_OR_RECREATE = "InPlaceOrRecreate"
    RECREATE = "Recreate"


# A Consumer is a Kubernetes object: the API server stores at most about 1.5 MiB of one.
MAX_CONSUMER_BYTES = 4 << 20
# Steps x (partitions + STEP_OVERHEAD) x policies played x seeds. Measured at
# 40-80 us a unit on one core (a step of one partition costs about as much as
# four more partitions), so this is at most about a quarter of an hour.
MAX_WORK = 10_000_000
STEP_OVERHEAD = 4
# The options' ranges, as the CLI states them.
TRUE_RATE_FACTOR = (0.01, 100.0)
RESTART_S = (0.0, 3600.0)
SEEDS = (1, 100)


class ScoreError(ValueError):
    """A Consumer the trace cannot be scored against; one line for the user."""


class ScoreInputError(ValueError):
    """Any input ``score`` refuses; the message is one line naming the file or option."""


@dataclass(frozen=True, slots=True)
class Options:
    policies: tuple[str, ...] = POLICIES
    # None: as the Consumer says (its spec.autoscaler.updateMode).
    update_mode: UpdateMode | None = None
    true_rate_factor: float = 1.0
    restart_s: float = 30.0
    seeds: int = 1
    cpu_model: CpuModel = CpuModel.REQUEST
    dt_s: float = 2.0


# The JSON fields, in order, and how each is taken from a Score.
FIELDS: tuple[tuple[str, Callable[[Score], float | None]], ...] = (
    ("v_crit", lambda s: s.v_critical_min),
    ("v_tol", lambda s: s.v_tolerable_min),
    ("severity", lambda s: s.severity / 3600),
    ("core_hours", lambda s: s.core_hours),
    ("over", lambda s: s.over_core_hours),
    ("under", lambda s: s.under_core_hours),
    ("restarts", lambda s: s.restarts),
    ("resizes", lambda s: s.resizes),
    ("oscillations", lambda s: s.oscillations),
)


@dataclass(frozen=True, slots=True)
class Noisy:
    """A recorded trace with bounded, seeded noise per partition and minute."""

    base: TableTrace
    seed: int

    @property
    def name(self) -> str:
        return f"{self.base.name} (seed {self.seed})"

    @property
    def duration_s(self) -> float:
        return self.base.duration_s

    def rate(self, *, partition: int, t: float) -> float:
        return self.base.rate(partition=partition, t=t) * (
            1 + NOISE * _unit_noise(self.seed, partition, int(t // NOISE_PERIOD_S))
        )

    def mean_rates(self, *, start: float, end: float) -> Sequence[float]:
        """``model.Stepwise``: the base's mean rates, each minute of the step with its noise
        (a 2 s step lies within one minute: the base's mean times the minute's factor)."""
        pieces = []
        t = start
        while t < end:
            minute = int(t // NOISE_PERIOD_S)
            until = min(end, (minute + 1) * NOISE_PERIOD_S)
            pieces.append((minute, t, until))
            t = until
        if len(pieces) <= 1:
            minute = int(start // NOISE_PERIOD_S)
            return [
                rate * (1 + NOISE * _unit_noise(self.seed, p, minute))
                for p, rate in enumerate(self.base.mean_rates(start=start, end=end))
            ]
        means = [0.0] * self.base.num_partitions
        for minute, lo, hi in pieces:
            rates = self.base.mean_rates(start=lo, end=hi)
            for p, rate in enumerate(rates):
                means[p] += rate * (1 + NOISE * _unit_noise(self.seed, p, minute)) * (hi - lo)
        return [m / (end - start) for m in means]

    def stalled(self, *, partition: int, t: float) -> bool:
        return self.base.stalled(partition=partition, t=t)

    def phase(self, *, t: float) -> str:
        return self.base.phase(t=t)


_MASK = (1 << 64) - 1


def _unit_noise(seed: int, partition: int, k: int) -> float:
    """A deterministic value in [-1, 1) for (seed, partition, k): splitmix64 of the key."""
    x = (seed * 0x9E3779B97F4A7C15 + (partition + 1) * 0xBF58476D1CE4E5B9 + k) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return (x >> 11) / float(1 << 52) - 1.0


def scenario(
    *,
    source: manifests.Source,
    spec: ConsumerSpec,
    trace: Workload,
    options: Options,
    name: str = "trace",
) -> Scenario:
    """The Consumer and the trace as one scenario; refuses a Consumer without autoscaling."""
    if keys.DISABLE_AUTOSCALER in source.annotations:
        raise ScoreError(
            f"metadata.annotations.{keys.DISABLE_AUTOSCALER}: autoscaling is disabled, so no"
            " policy would size anything; remove the annotation to score the trace"
        )
    config = to_config(spec)
    if config.autoscaling is None:
        raise ScoreError(
            "spec.autoscaler.mode: must be prometheus (and autoscaling not disabled)"
            " for a trace to be scored"
        )
    # The operator's pass resizes in place or rolls out as the Consumer's updateMode (or
    # --update-mode) says; a restart costs what the model says, and so does the adaptive
    # predictor's R under Recreate (in place it uses a few seconds, see api.v1).
    update: dict[str, object] = {"restart_time": f"{options.restart_s:g}s"}
    if options.update_mode is not None:
        update["update_mode"] = options.update_mode.value
    spec = spec.model_copy(update={"autoscaler": spec.autoscaler.model_copy(update=update)})
    config = to_config(spec)
    assert config.autoscaling is not None
    return Scenario(
        name=name,
        trace=trace,
        config=config,
        source=source,
        spec=spec,
        true_rate_per_core=config.autoscaling.rate_per_core * options.true_rate_factor,
        restart_s=options.restart_s,
        dt_s=options.dt_s,
        container=deployments.worker_container(config),
        cpu_model=options.cpu_model,
        resize_s=RESIZE_S,
    )


@dataclass(frozen=True, slots=True)
class Job:
    """Everything ``score`` needs, every part of it checked."""

    source: manifests.Source
    spec: ConsumerSpec
    trace: TableTrace
    options: Options


def check_options(options: Options) -> None:
    """Each option within its range; NaN is in no range (click's FloatRange lets it through)."""
    checks: tuple[tuple[str, float, tuple[float, float]], ...] = (
        ("--true-rate-factor", options.true_rate_factor, TRUE_RATE_FACTOR),
        ("--restart-seconds", options.restart_s, RESTART_S),
        ("--seeds", options.seeds, SEEDS),
    )
    for flag, value, (low, high) in checks:
        if not low <= value <= high:  # False for NaN
            raise ScoreInputError(f"{flag}: must be a number from {low:g} to {high:g}, got {value}")
    unknown = [p for p in options.policies if p not in POLICIES]
    if unknown or not options.policies:
        raise ScoreInputError(f"--policy: must be one of {', '.join(POLICIES)}, got {unknown}")


def runs(options: Options) -> int:
    """Plays per seed: one per policy, and the oracle's for static-peak when it is not scored."""
    extra = "static-peak" in options.policies and "oracle" not in options.policies
    return len(options.policies) + int(extra)


def bounds(*, num_partitions: int, options: Options) -> traces.Bounds:
    """How long a trace can be: past the warm-up by a step, within ``MAX_WORK``."""
    per_step = (num_partitions + STEP_OVERHEAD) * runs(options) * options.seeds
    plays = f"{runs(options)} play{'s' if runs(options) > 1 else ''}"
    seeds = f"{options.seeds} seed{'s' if options.seeds > 1 else ''}"
    return traces.Bounds(
        min_duration_s=WARMUP_S + options.dt_s,
        max_duration_s=MAX_WORK // per_step * options.dt_s,
        max_reason=(
            f"with {num_partitions} partitions, {plays} and {seeds} (about a quarter of an"
            " hour of work); score a shorter trace, or fewer --policy or --seeds"
        ),
    )


def load(*, consumer: str, trace: str, options: Options) -> Job:
    """Read and check every input; raises ``ScoreInputError`` (one line) on the first bad one."""
    check_options(options)
    if consumer == files.STDIN and trace == files.STDIN:
        raise ScoreInputError("CONSUMER and TRACE: only one of them can be - (stdin)")
    name = files.describe(consumer)
    try:
        text = files.read_text(consumer, limit=MAX_CONSUMER_BYTES)
        source, spec = load_consumer(text, source=name)
        limits = bounds(num_partitions=spec.num_partitions, options=options)
        if limits.max_duration_s < limits.min_duration_s:
            raise ScoreError(
                f"spec.numPartitions: {spec.num_partitions} partitions are too many to score"
                f" even {limits.min_duration_s:g} s of trace {limits.max_reason}"
            )
        table = traces.read(trace, num_partitions=spec.num_partitions, bounds=limits)
        scenario(source=source, spec=spec, trace=table, options=options)
    except (files.InputFileError, InputError, traces.TraceError) as e:
        raise ScoreInputError(str(e)) from None
    except ScoreError as e:
        raise ScoreInputError(f"{name}: {e}") from None
    return Job(source=source, spec=spec, trace=table, options=options)


def _policy(name: str, oracles: OracleRuns) -> Policy:
    if name == "static-peak":
        return StaticPeak(oracles.peak)
    if name == "oracle":
        return Oracle()
    return PipelinePolicy(name)


def score(
    *, source: manifests.Source, spec: ConsumerSpec, trace: TableTrace, options: Options
) -> dict[str, list[Score]]:
    """Every policy's score, one per seed."""
    results: dict[str, list[Score]] = {name: [] for name in options.policies}
    for seed in range(options.seeds):
        workload: Workload = trace if seed == 0 else Noisy(base=trace, seed=seed)
        played = scenario(source=source, spec=spec, trace=workload, options=options)
        oracles = OracleRuns()
        for name in options.policies:
            if name == "oracle":
                results[name].append(oracles.run(played)[1])
            else:
                results[name].append(play(scenario=played, policy=_policy(name, oracles)))
    return results


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def summary(results: Mapping[str, Sequence[Score]]) -> dict[str, dict[str, object]]:
    """Per policy: each field's mean over the seeds (and its min..max when several)."""
    oracle = results.get("oracle")
    oracle_a = _mean([s.core_hours for s in oracle]) if oracle else None
    out: dict[str, dict[str, object]] = {}
    for name, scores in results.items():
        row: dict[str, object] = {}
        spread: dict[str, list[float]] = {}
        for field, get in FIELDS:
            values = [v for v in (get(s) for s in scores) if v is not None]
            if not values:
                row[field] = None
                continue
            row[field] = round(_mean(values), 3)
            if len(values) > 1:
                spread[field] = [round(min(values), 3), round(max(values), 3)]
        learned = [s.learned_rate_per_core for s in scores if s.learned_rate_per_core]
        if learned:
            # Only for a policy that learned (adaptive, with spec...prometheus.cpuUsage).
            row["learned_rate_per_core"] = round(_mean(learned))
        a = _mean([s.core_hours for s in scores])
        row["efficiency"] = round(oracle_a / a, 3) if oracle_a is not None and a else None
        if spread:
            row["spread"] = spread
        out[name] = row
    return out


def to_json(results: Mapping[str, Sequence[Score]]) -> str:
    # allow_nan=False: a NaN or infinity is a bug to fail on, never a non-JSON token to print.
    return json.dumps({"policies": summary(results)}, sort_keys=False, allow_nan=False)


_COLUMNS = (
    ("policy", None),
    ("V crit", "v_crit"),
    ("V tol", "v_tol"),
    ("S", "severity"),
    ("A", "core_hours"),
    ("O", "over"),
    ("U", "under"),
    ("restarts", "restarts"),
    ("resizes", "resizes"),
    ("osc", "oscillations"),
    ("eff", "efficiency"),
)


def _cell(row: Mapping[str, object], field: str) -> str:
    value = row.get(field)
    if value is None:
        return "-"
    assert isinstance(value, int | float)
    if field in ("core_hours", "over", "under", "efficiency"):
        text = f"{value:.2f}"
    elif field in ("restarts", "resizes", "oscillations"):
        text = f"{value:g}"
    else:
        text = f"{value:.1f}"
    spread = row.get("spread")
    if isinstance(spread, Mapping) and field in spread:
        low, high = spread[field]
        text += f" ({low:g}..{high:g})"
    return text


def to_markdown(results: Mapping[str, Sequence[Score]], *, options: Options) -> str:
    rows = summary(results)
    lines = [
        "| " + " | ".join(c for c, _ in _COLUMNS) + " |",
        "|---|" + "---:|" * (len(_COLUMNS) - 1),
    ]
    for name, row in rows.items():
        cells = [name, *(_cell(row, field) for _, field in _COLUMNS[1:] if field is not None)]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = "as recorded" if options.seeds == 1 else f"{options.seeds} seeds, mean (min..max)"
    mode = options.update_mode.value if options.update_mode else "as the Consumer says"
    lines += [
        "",
        f"V in partition-minutes (lag > criticalLag, > tolerableLag), S in lag-min·min, A, O, U"
        f" in core-hours; {seeds}; update mode {mode}, CPU model"
        f" {options.cpu_model.value}, consumers at {options.true_rate_factor:g}x ratePerCore,"
        f" restart {options.restart_s:g} s. eff = oracle's A / A.",
    ]
    lines += [
        f"{name} learned ratePerCore={row['learned_rate_per_core']} (from the CPU the model's"
        " pods used; configured in the Consumer)."
        for name, row in rows.items()
        if row.get("learned_rate_per_core") is not None
    ]
    return "\n".join(lines) + "\n"
