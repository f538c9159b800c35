"""One policy played over one trace, and its score.

Per trace and policy:

* V: SLO-violation partition-minutes, Σ_p ∫ 1[lag_time_p > SLO] dt, with SLO
  = criticalLag (``v_crit``), and the strict variant with SLO = tolerableLag
  (``v_tol``); lag_time_p is the backlog in seconds of the partition's
  current production;
* S: lag severity, Σ_p ∫ max(0, lag_time_p − criticalLag) dt (lag-seconds ×
  seconds; reported in lag-min·min);
* A: allocated CPU core-hours (requests) of the consuming container (sidecars
  pinned by policy cost every policy the same and are left out), and over-
  and under-provisioned core-hours O and U against the demand
  need = (λ + backlog / recoveryTime) / truePerCoreRate; a stalled partition
  needs nothing (no CPU helps while its downstream is out);
* restarts caused by scaling (template changes of running instances),
  resizes, and up-down-up oscillations of one instance within
  ``OSCILLATION_WINDOW_S`` (longer than any pending period, so that they can
  be seen).
"""

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from konsumerator.scoring.model import Instance, Model
from konsumerator.scoring.policies import Oracle, Policy, Scenario

OSCILLATION_WINDOW_S = 1800.0
# A minute of history before the first pass, unscored: the operator takes over a
# live topic whose Prometheus already has a rate() window.
WARMUP_S = 60.0


@dataclass(slots=True)
class Score:
    v_critical_min: float = 0.0
    v_tolerable_min: float = 0.0
    severity: float = 0.0  # lag-seconds x seconds
    core_hours: float = 0.0
    over_core_hours: float = 0.0
    under_core_hours: float = 0.0
    restarts: int = 0
    resizes: int = 0
    # None for a policy that resizes continuously and for free (the oracle).
    oscillations: int | None = 0
    # The rate per core the adaptive predictor learned by the end (a Consumer with a
    # cpuUsage query), None when it learned nothing or does not learn.
    learned_rate_per_core: int | None = None
    # Sampled every 30 s for plots: (t, worst lag seconds, allocated cores, needed cores).
    series: list[tuple[float, float, float, float]] = field(default_factory=list)


def oscillations(changes: Sequence[tuple[float, int]]) -> int:
    """Up → down → up within the window, from one instance's (t, direction) resizes.

    The downs between the two ups may be one resize or several: a scale-down in two
    steps gives the CPU back as surely as one, so it hides no oscillation. Counted once
    per second up (the scale-up that undoes the scale-down)."""
    count = 0
    last_up: float | None = None  # the latest scale-up before the current run of downs
    down_since_up = False
    for t, direction in changes:
        if direction > 0:
            if down_since_up and last_up is not None and t - last_up <= OSCILLATION_WINDOW_S:
                count += 1
            last_up, down_since_up = t, False
        elif direction < 0:
            down_since_up = True
    return count


def _score_step(*, model: Model, scenario: Scenario, score: Score, step: int) -> None:
    autoscaling = scenario.config.autoscaling
    assert autoscaling is not None
    critical = autoscaling.critical_lag_s or math.inf
    tolerable = autoscaling.tolerable_lag_s or math.inf
    dt = scenario.dt_s
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
    t = model.trace_t
    for inst in model.instances():
        req = inst.cpu_m / 1000
        need = (
            sum(
                rates[p] + model.partitions[p].backlog / autoscaling.recovery_s
                for p in inst.partitions
                if not scenario.trace.stalled(partition=p, t=t)
            )
            / scenario.true_rate_per_core
        )
        allocated += req
        needed += need
        score.core_hours += req * dt / 3600
        score.over_core_hours += max(0.0, req - need) * dt / 3600
        score.under_core_hours += max(0.0, need - req) * dt / 3600
    if step % max(1, int(30 / dt)) == 0:
        score.series.append((model.t, worst, allocated, needed))


def play(
    *,
    scenario: Scenario,
    policy: Policy,
    observe: Callable[[Sequence[Instance]], None] | None = None,
) -> Score:
    """Run one policy over the whole trace and score it."""
    config = scenario.config
    model = Model(
        trace=scenario.trace,
        num_partitions=config.num_partitions,
        true_rate_per_core=scenario.true_rate_per_core,
        restart_s=scenario.restart_s,
        history_s=60.0,
        cpu_model=scenario.cpu_model,
        # The oracle actuates instantly.
        resize_s=0.0 if getattr(policy, "continuous", False) else scenario.resize_s,
    )
    score = Score()
    dt = scenario.dt_s
    while model.t < WARMUP_S:
        model.advance(dt=dt)
    current: dict[str, int] = {}
    changes: dict[str, list[tuple[float, int]]] = {}
    for step in range(int((scenario.trace.duration_s - model.t) / dt)):
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
        _score_step(model=model, scenario=scenario, score=score, step=step)
    score.restarts = model.restarts
    score.resizes = sum(len(c) for c in changes.values())
    continuous = getattr(policy, "continuous", False)
    score.oscillations = None if continuous else sum(oscillations(c) for c in changes.values())
    score.learned_rate_per_core = getattr(policy, "learned_rate_per_core", None)
    return score


class OracleRuns:
    """The oracle's score and per-instance peak CPU, played once per scenario.

    static-peak needs the oracle's run, and a suite scores the oracle anyway.
    """

    def __init__(self, key: Callable[[Scenario], Hashable] = id) -> None:
        # What makes two scenarios the same for the oracle (it has no restarts and
        # no CPU limit, so neither the update mode nor the CPU model matter to it).
        self._key = key
        self._runs: dict[Hashable, tuple[dict[str, int], Score, Scenario]] = {}

    def run(self, scenario: Scenario) -> tuple[dict[str, int], Score]:
        key = self._key(scenario)
        if key not in self._runs:
            peak = {name: 0 for name, _ in scenario.instances}

            def record(instances: Sequence[Instance]) -> None:
                for i in instances:
                    peak[i.name] = max(peak[i.name], i.cpu_m)

            score = play(scenario=scenario, policy=Oracle(), observe=record)
            # The scenario is kept so that its id is not reused while cached.
            self._runs[key] = (peak, score, scenario)
        peak, score, _ = self._runs[key]
        return peak, score

    def peak(self, scenario: Scenario) -> dict[str, int]:
        return self.run(scenario)[0]
