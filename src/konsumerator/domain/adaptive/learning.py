"""The learned rate per core: what a consumer really does per core of CPU it used.

``ratePerCore`` is what the user believes; real consumers are often slower (or
faster), and sizing from a wrong rate under-sizes (or wastes) by the difference.
With a CPU-usage query configured (``spec.autoscaler.prometheus.cpuUsage``), the
adaptive predictor estimates the real rate and sizes with it instead.

**When a sample is taken.** Only from an instance that is *saturated*: it falls
behind (consumes less than ``KEEPING_UP`` of its production, with a backlog),
consumes something (not an outage: ``OUTAGE``), and its consumption is not rising
since the previous sync (at most ``FLAT`` above it: a scale-up or a restart that
is still taking effect would under-state the rate). Then more CPU is exactly
what it lacks, and consumption / CPU used is what one core does. A consumer that
keeps up uses less CPU than it has, and its idle overhead would bias the ratio.

**Divided by the CPU actually used, never the request**: pods burst up to their
limit on a node with CPU to spare, and a consumer blocked by a slow downstream
uses less than its request; dividing by the request learned a wrong rate in
both cases (the issue's trial made things worse that way).

**One rate per Consumer**, the ratio of sums over the saturated instances
(Σ consumed / Σ CPU used): instances run the same image on the same kind of
data, so they share one real rate; the ratio of sums weighs each instance by
the CPU it used, so a small instance's noisy ratio cannot swing the estimate,
and one number fits the Consumer's status whatever the instance count.

**Bounded and smoothed.** The configured ``ratePerCore`` is the prior (the
starting point); each sample and the estimate stay within ``LOWER``–``UPPER``
times it, so a lying series cannot make the operator size for a thousandth or
a thousand times the CPU; samples are folded in with an EWMA of weight
``ALPHA``, so one odd sync moves the estimate by at most that share.

**Lying answers pause learning, never sizing.** A failed query, NaN, ±Inf, zero
or negative CPU, more cores than any pod has (``MAX_CORES``) or series of pods
that belong to no instance are not used: the learned rate holds where it was,
and the status says why (``Reason``).

**Which pod is whose.** A Deployment's pods are named
``<deployment>-<pod-template-hash>-<suffix>`` (the ReplicaSet is
``<deployment>-<hash>``, its pods get a generated 5-character suffix), so a pod
belongs to the instance whose Deployment name is its name without the last two
``-`` segments (``instance_of_pod``). That works in both update modes without a
pod watch (the pod cache only exists in in-place mode) and is exact: the
instance ``orders-1`` and the Consumer ``orders-1``'s instance ``orders-1-0``
never collide. It fails only where Kubernetes truncates the generated name (a
Deployment name over about 46 characters): those pods read as unknown.

The state is the Consumer's status (``status.learning``), read back every pass,
so a restarted operator or a new leader goes on from the learned rate.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot
from konsumerator.domain.specs import Autoscaling, Predictor

# The estimate stays within these multiples of the configured ratePerCore (the prior).
LOWER = 0.3
UPPER = 3.0
# The weight of a new sample in the estimate (EWMA).
ALPHA = 0.3
# Falling behind: consuming less than this share of production.
KEEPING_UP = 0.95
# Consuming less than this share of production is an outage, not a CPU limit.
OUTAGE = 0.05
# Not rising: at most this much above the previous sync's consumption.
FLAT = 0.05
# No pod uses more cores than this: a larger figure is a lie (a counter reset, a unit error).
MAX_CORES = 1024.0
# Less than a thousandth of a core is no CPU figure to divide by.
MIN_CORES = 0.001


class State(StrEnum):
    # No CPU-usage query: the configured ratePerCore is used as is.
    OFF = "Off"
    # Learning: the rate moved or held on good data.
    LEARNING = "Learning"
    # The CPU-usage answer cannot be used this sync: the rate holds where it was.
    PAUSED = "Paused"


class Reason(StrEnum):
    NO_CPU_USAGE_QUERY = "NoCpuUsageQuery"
    # A sample was folded in this sync.
    LEARNED = "Learned"
    # No instance was saturated this sync: nothing to learn from, the rate holds.
    NOT_SATURATED = "NotSaturated"
    # The query failed (no answer, rejected, too slow).
    CPU_USAGE_UNAVAILABLE = "CpuUsageUnavailable"
    # It answered, but no saturated instance had a usable CPU figure.
    CPU_USAGE_UNUSABLE = "CpuUsageUnusable"


@dataclass(frozen=True, slots=True)
class Learned:
    """What the status says about learning (``status.learning``)."""

    state: State
    reason: Reason
    message: str
    # The learned rate (msg/s per core); None when learning is off.
    rate_per_core: int | None = None
    # The configured ratePerCore the estimate started from and is bounded by.
    prior: int | None = None
    # How many samples were folded in since the estimate started.
    samples: int = 0
    # When the last sample was folded in.
    learned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One instance in one sync, as far as learning is concerned."""

    name: str
    produced: float  # Σ λ, msg/s
    consumed: float  # Σ consumption, msg/s
    backlog: float  # Σ messages behind
    # Σ consumption in the previous sync; None when unknown (first sync, no state).
    consumed_before: float | None
    # Cores its pods used (the CPU-usage query); None: no usable figure.
    cores: float | None


def instance_of_pod(pod: str) -> str | None:
    """The Deployment a pod belongs to: its name without the hash and the suffix."""
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[0] and parts[1] and parts[2] else None


def usable_cores(value: float) -> bool:
    return math.isfinite(value) and MIN_CORES <= value <= MAX_CORES


@dataclass(frozen=True, slots=True)
class PodTally:
    """The CPU-usage answer by instance, and what was not used."""

    cores: Mapping[str, float]
    # Series whose pod belongs to no instance of this Consumer.
    unknown: int
    # Instances with a series whose value is not a CPU figure (NaN, ≤ 0, huge).
    lying: frozenset[str]


def cores_by_instance(usage: CpuUsage, names: Iterable[str]) -> PodTally:
    """Σ cores per instance (several pods during a rollout); unusable values make the
    instance's figure unusable (a partial sum would under-state its CPU)."""
    wanted = set(names)
    cores: dict[str, float] = {}
    lying: set[str] = set()
    unknown = 0
    for pod, value in usage.by_pod.items():
        name = instance_of_pod(pod)
        if name is None or name not in wanted:
            unknown += 1
        elif not (math.isfinite(value) and 0 <= value <= MAX_CORES):
            lying.add(name)
        else:
            cores[name] = cores.get(name, 0.0) + value
    for name, total in list(cores.items()):
        if name in lying or not usable_cores(total):
            lying.add(name)
            del cores[name]
    return PodTally(cores=cores, unknown=unknown, lying=frozenset(lying))


def _sum(values: Mapping[int, float], partitions: Sequence[int]) -> float:
    total = 0.0
    for p in partitions:
        v = values.get(p)
        if v is not None and math.isfinite(v) and v > 0:
            total += v
    return total


def observe(
    *,
    snapshot: MetricsSnapshot,
    before: MetricsSnapshot | None,
    instances: Sequence[tuple[str, Sequence[int]]],
    cores: Mapping[str, float],
) -> list[Observation]:
    """Each instance's sums for this sync, ``instances`` being (Deployment name, partitions)."""
    found = []
    for name, partitions in instances:
        previous = None
        if before is not None and all(p in before.consumption for p in partitions):
            previous = _sum(before.consumption, partitions)
        found.append(
            Observation(
                name=name,
                produced=_sum(snapshot.production, partitions),
                consumed=_sum(snapshot.consumption, partitions),
                backlog=_sum(snapshot.offset, partitions),
                consumed_before=previous,
                cores=cores.get(name),
            )
        )
    return found


def saturated(o: Observation) -> bool:
    """Falling behind, consuming, and not consuming more than in the previous sync."""
    return (
        o.produced > 0
        and o.backlog >= 1
        and o.produced * OUTAGE <= o.consumed < o.produced * KEEPING_UP
        and o.consumed_before is not None
        and o.consumed <= o.consumed_before * (1 + FLAT)
    )


def bounded(rate: float, *, prior: int) -> float:
    return min(prior * UPPER, max(prior * LOWER, rate))


def sample(observations: Iterable[Observation]) -> tuple[float | None, int, int]:
    """(Σ consumed / Σ cores over saturated instances with a CPU figure, how many were
    saturated, how many of those had one)."""
    consumed = cores = 0.0
    saturated_n = measured = 0
    for o in observations:
        if not saturated(o):
            continue
        saturated_n += 1
        if o.cores is None:
            continue
        measured += 1
        consumed += o.consumed
        cores += o.cores
    return (consumed / cores if measured and cores > 0 else None), saturated_n, measured


def off() -> Learned:
    return Learned(
        state=State.OFF,
        reason=Reason.NO_CPU_USAGE_QUERY,
        message="no spec.autoscaler.prometheus.cpuUsage query: sizing uses the configured"
        " ratePerCore",
    )


def _start(previous: Learned | None, prior: int) -> tuple[float, int, datetime | None]:
    """Where the estimate stands: the previous one, unless the prior changed (a new
    ratePerCore restarts learning from it) or there is none."""
    if previous is None or previous.rate_per_core is None or previous.prior != prior:
        return float(prior), 0, None
    return (
        float(bounded(previous.rate_per_core, prior=prior)),
        previous.samples,
        previous.learned_at,
    )


def learn(
    *,
    previous: Learned | None,
    prior: int,
    usage: CpuUsage | None,
    snapshot: MetricsSnapshot,
    before: MetricsSnapshot | None,
    instances: Sequence[tuple[str, Sequence[int]]],
    now: datetime,
) -> Learned:
    """One sync's learning: the estimate moved by a saturated sample, or held, and why."""
    if usage is None:
        return off()
    rate, samples, learned_at = _start(previous, prior)

    def held(state: State, reason: Reason, message: str) -> Learned:
        return Learned(
            state=state,
            reason=reason,
            message=message,
            rate_per_core=max(1, round(rate)),
            prior=prior,
            samples=samples,
            learned_at=learned_at,
        )

    if usage.problem is not None:
        return held(
            State.PAUSED,
            Reason.CPU_USAGE_UNAVAILABLE,
            f"the cpuUsage query failed: {usage.problem}; the learned rate holds",
        )
    tally = cores_by_instance(usage, (name for name, _ in instances))
    found = observe(snapshot=snapshot, before=before, instances=instances, cores=tally.cores)
    value, saturated_n, measured = sample(found)
    if value is None and saturated_n:
        unusable = saturated_n - measured
        return held(
            State.PAUSED,
            Reason.CPU_USAGE_UNUSABLE,
            f"{unusable} saturated instance(s) without a usable CPU figure ("
            f"{len(tally.lying)} with NaN, zero, negative or over {MAX_CORES:g} cores, "
            f"{tally.unknown} series of pods of no instance); the learned rate holds",
        )
    if value is None:
        return held(
            State.LEARNING,
            Reason.NOT_SATURATED,
            "no instance is saturated (lag growing, consumption flat): nothing to learn"
            " from this sync; the learned rate holds",
        )
    raw = value
    rate = bounded(ALPHA * bounded(raw, prior=prior) + (1 - ALPHA) * rate, prior=prior)
    samples, learned_at = samples + 1, now
    return held(
        State.LEARNING,
        Reason.LEARNED,
        f"{measured} saturated instance(s) consumed {raw:.0f}/s per core used"
        f" (bounded to {LOWER:g}-{UPPER:g}x ratePerCore={prior}, EWMA {ALPHA:g})",
    )


def effective_rate(learned: Learned | None, *, prior: int) -> int | None:
    """The rate to size with, or None for the configured one (``prior``): nothing
    learned yet, learning off, or learned from another ``ratePerCore``."""
    if learned is None or learned.state is State.OFF or learned.rate_per_core is None:
        return None
    if learned.samples == 0 or learned.prior != prior:
        return None
    return round(bounded(learned.rate_per_core, prior=prior))


def for_pass(
    *,
    previous: Learned | None,
    autoscaling: Autoscaling | None,
    snapshot: MetricsSnapshot | None,
    refreshed: bool,
    before: MetricsSnapshot | None,
    instances: Sequence[tuple[str, Sequence[int]]],
    now: datetime,
) -> Learned | None:
    """What the status says about learning after this pass; None without the adaptive
    predictor (the naive one never learns). Only a pass that refreshed metrics learns;
    the others keep what the status holds."""
    if autoscaling is None or autoscaling.predictor is not Predictor.ADAPTIVE:
        return None
    if not autoscaling.learns:
        return off()
    if not refreshed or snapshot is None:
        return previous if previous is not None and previous.state is not State.OFF else None
    return learn(
        previous=previous,
        prior=autoscaling.rate_per_core,
        # A metrics source without the fourth query's answer (a recorded timeline).
        usage=snapshot.cpu_usage or CpuUsage(problem="the metrics source gave no CPU usage"),
        snapshot=snapshot,
        before=before,
        instances=instances,
        now=now,
    )


def sizing_with(autoscaling: Autoscaling, learned: Learned | None) -> Autoscaling:
    """``autoscaling`` sizing with the learned rate, when there is one to use."""
    rate = effective_rate(learned, prior=autoscaling.rate_per_core)
    if rate is None or autoscaling.predictor is not Predictor.ADAPTIVE:
        return autoscaling
    return replace(autoscaling, learned_rate_per_core=rate)
