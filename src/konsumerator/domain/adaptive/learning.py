"""The learned rate per core: what a consumer really does per core of CPU it used.

``ratePerCore`` is what the user believes; real consumers are often slower (or
faster), and sizing from a wrong rate under-sizes (or wastes) by the difference.
With a CPU-usage query configured (``spec.autoscaler.prometheus.cpuUsage``), the
adaptive predictor estimates the real rate and sizes with it instead.

**When a sample is taken.** Only from an instance that is *saturated*: it is at
capacity, either falling behind (consumes less than ``KEEPING_UP`` of its
production, with a backlog) or *backlogged* (a backlog of at least ``BACKLOG_S``
seconds of its consumption that is not shrinking, by more than ``FLAT``, since
the previous sync: a Kafka consumer with a real backlog consumes as fast as it
can, so one whose capacity equals its production, keeping a flat backlog for
ever, is at capacity although it consumes all that is produced), it
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

**Which pod is whose.** In place, the pod cache's owner chain (pod -> ReplicaSet ->
Deployment, checked by UID) says it for every pod it holds. Otherwise, and for a pod
the cache no longer holds (one restarted within the query's window), the name says
it: Kubernetes names a Deployment's pod ``<generateName><5 characters>``, the
generateName being the ReplicaSet's name ``<deployment>-<pod-template-hash>`` and a
``-``, cut to 58 characters (the apiserver's ``SimpleNameGenerator``: 63 minus the 5
random ones). Under 63 characters a pod name was not cut, so its Deployment is its
name without the last two ``-`` segments, exactly: the instance ``orders-1`` and the
Consumer ``orders-1``'s instance ``orders-1-0`` never collide. A 63-character name
may have been cut (a Deployment name over about 46 characters): its first 58
characters are then matched against each instance's ``<deployment>-<hash>-``
(``PodNames``), never its segments, which a cut may have moved. Two instances
whose names share those 58 characters (a Consumer ``spec.name`` of 53 characters
or more, with enough instances) cannot be told apart by name: their pods are
*ambiguous*, their CPU is not used, and the status says so (``AmbiguousPodNames``)
rather than guess. A series that carries a ``namespace`` label is used only when it
is the Consumer's namespace: a same-named Consumer elsewhere has the same pod names.

**No previous sync, no sample.** "Not rising" compares with the previous sync's
consumption: the status's ``lastSyncState``, else the operator's memory of its last
refresh. With neither (the first sync, a new leader after a status too large to
hold ``lastSyncState``), one sync is skipped (``NoPreviousSync``) and learning
resumes from the next.

The state is the Consumer's status (``status.learning``), read back every pass,
so a restarted operator or a new leader goes on from the learned rate.
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

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
# Not rising: at most this much above the previous sync's consumption (and not
# shrinking: a backlog at most this much below the previous sync's).
FLAT = 0.05
# A backlog of this many seconds of consumption is one the consumer cannot empty
# between two samples of it: with it, the consumer never waits for messages, so its
# CPU has no idle overhead to bias the ratio (the seconds are well above a sync).
BACKLOG_S = 30.0
# No pod uses more cores than this: a larger figure is a lie (a counter reset, a unit error).
MAX_CORES = 1024.0
# Less than a thousandth of a core is no CPU figure to divide by.
MIN_CORES = 0.001
# Kubernetes' generated names (apiserver ``names.SimpleNameGenerator``): the
# generateName cut to 63 - 5 characters, then 5 random ones.
GENERATED_BASE = 58
SUFFIX = 5
# A pod-template-hash is a uint32's decimal digits, each encoded in this alphabet
# (apimachinery ``rand.SafeEncodeString``): at most 10 characters, never a 0, 1 or
# 3, so an instance index such as "-10" can never be read as a cut hash.
HASH_MAX = 10
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# The random suffix uses the same alphabet; any 5 letters or digits are taken (the
# scoring model names its pods "-model").
_SUFFIX = re.compile(r"[a-z0-9]{5}")
_HASH = re.compile(f"[{HASH_ALPHABET}]{{1,{HASH_MAX}}}")
_CUT_HASH = re.compile(f"[{HASH_ALPHABET}]{{0,10}}|[{HASH_ALPHABET}]{{1,10}}-")
_NO_PODS: Mapping[str, str] = MappingProxyType({})


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
    # Falling behind, but the previous sync's consumption is unknown (first sync, or
    # no lastSyncState and no memory of it): one sync skipped, the rate holds.
    NO_PREVIOUS_SYNC = "NoPreviousSync"
    # The query failed (no answer, rejected, too slow).
    CPU_USAGE_UNAVAILABLE = "CpuUsageUnavailable"
    # It answered, but no saturated instance had a usable CPU figure.
    CPU_USAGE_UNUSABLE = "CpuUsageUnusable"
    # The saturated instances' pods cannot be told apart by name (cut names).
    AMBIGUOUS_POD_NAMES = "AmbiguousPodNames"


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
    # Σ messages behind in the previous sync; None when unknown.
    backlog_before: float | None = None


def generated_pod_name(*, deployment: str, template_hash: str, suffix: str) -> str:
    """The name Kubernetes gives a Deployment's pod (see the module docstring)."""
    return f"{deployment}-{template_hash}-"[:GENERATED_BASE] + suffix


def instance_of_pod(pod: str) -> str | None:
    """The Deployment of an uncut pod name: its name without the hash and the suffix."""
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[0] and parts[1] and parts[2] else None


def _hash_prefix(rest: str) -> bool:
    """Whether ``rest`` is what a cut leaves of ``<pod-template-hash>-``."""
    return _CUT_HASH.fullmatch(rest) is not None


class PodNames:
    """Which of one Consumer's instances a pod name can be of.

    O(1) per pod, whatever the instance count: one set lookup, and for a cut name
    one dict lookup and at most ``HASH_MAX + 1`` prefix lookups.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(names)
        # Instance names cut within themselves (58 characters or more), by the cut.
        self._cut: dict[str, list[str]] = {}
        for name in self._names:
            if len(name) + 1 >= GENERATED_BASE:
                self._cut.setdefault(f"{name}-"[:GENERATED_BASE], []).append(name)

    def owners(self, pod: str) -> tuple[str, ...]:
        """Every instance whose pod may bear this name: none, one, or several (ambiguous,
        in name order)."""
        if len(pod) != GENERATED_BASE + SUFFIX:
            # Not cut (or no generated name at all, as the scoring model's): exact, and
            # only with a pod-template-hash between name and suffix. Any pod of the
            # namespace the query selects may bear "<instance>-<x>-<y>": a CronJob named
            # like an instance has pods "<instance>-<minutes since 1970>-<suffix>", whose
            # digits (0, 1, 3) no hash has; counted, its CPU lowered the learned rate.
            parts = pod.rsplit("-", 2)
            if len(parts) != 3 or _HASH.fullmatch(parts[1]) is None:
                return ()
            return (parts[0],) if parts[0] in self._names else ()
        # Maybe cut, so the last two segments may not be hash and suffix: another
        # Consumer's "<name>-1-0-<hash>" cut after "-0-" would read as "<name>-1".
        # Matching the 58 characters covers the uncut 63-character name too.
        if not _SUFFIX.fullmatch(pod[GENERATED_BASE:]):
            return ()
        base = pod[:GENERATED_BASE]
        found = list(self._cut.get(base, ()))
        # A shorter name: base = <name>-<what the cut leaves of "<hash>-">.
        dash = base.find("-", GENERATED_BASE - HASH_MAX - 2)
        while dash != -1:
            name = base[:dash]
            if name in self._names and _hash_prefix(base[dash + 1 :]):
                found.append(name)
            dash = base.find("-", dash + 1)
        return tuple(found) if len(found) < 2 else tuple(sorted(set(found)))


def usable_cores(value: float) -> bool:
    return math.isfinite(value) and MIN_CORES <= value <= MAX_CORES


@dataclass(frozen=True, slots=True)
class PodTally:
    """The CPU-usage answer by instance, and what was not used."""

    cores: Mapping[str, float]
    # Series whose pod belongs to no instance of this Consumer (another namespace's
    # included).
    unknown: int
    # Instances with a series whose value is not a CPU figure (NaN, ≤ 0, huge).
    lying: frozenset[str]
    # Instances with a pod whose name is also another instance's (cut names).
    ambiguous: frozenset[str] = frozenset()


def _owners(
    key: str, *, names: PodNames, owned: Mapping[str, str], namespace: str | None
) -> tuple[str, ...]:
    """The instances a series' pod (``[namespace/]pod``) can be of."""
    where, _, pod = key.rpartition("/")
    if where and namespace is not None and where != namespace:
        return ()
    known = owned.get(pod)
    return (known,) if known is not None else names.owners(pod)


def cores_by_instance(
    usage: CpuUsage,
    names: Iterable[str],
    *,
    owned: Mapping[str, str] = _NO_PODS,
    namespace: str | None = None,
) -> PodTally:
    """Σ cores per instance (several pods during a rollout or a restart within the
    window: ``rate()`` gives each its share of the window, so their sum is the
    instance's); unusable values or an ambiguous pod make the instance's figure
    unusable (a partial sum would under-state its CPU). ``owned``: pod name ->
    instance, from the pod cache's owner chain (in place)."""
    pod_names = PodNames(names)
    cores: dict[str, float] = {}
    lying: set[str] = set()
    ambiguous: set[str] = set()
    unknown = 0
    for key, value in usage.by_pod.items():
        owners = _owners(key, names=pod_names, owned=owned, namespace=namespace)
        if not owners:
            unknown += 1
        elif len(owners) > 1:
            ambiguous.update(owners)
        elif not (math.isfinite(value) and 0 <= value <= MAX_CORES):
            lying.add(owners[0])
        else:
            cores[owners[0]] = cores.get(owners[0], 0.0) + value
    for name, total in list(cores.items()):
        if name in lying or name in ambiguous or not usable_cores(total):
            if name not in ambiguous:
                lying.add(name)
            del cores[name]
    return PodTally(
        cores=cores, unknown=unknown, lying=frozenset(lying), ambiguous=frozenset(ambiguous)
    )


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
        previous = backlog_before = None
        if before is not None and all(p in before.consumption for p in partitions):
            previous = _sum(before.consumption, partitions)
        if before is not None and all(p in before.offset for p in partitions):
            backlog_before = _sum(before.offset, partitions)
        found.append(
            Observation(
                name=name,
                produced=_sum(snapshot.production, partitions),
                consumed=_sum(snapshot.consumption, partitions),
                backlog=_sum(snapshot.offset, partitions),
                consumed_before=previous,
                cores=cores.get(name),
                backlog_before=backlog_before,
            )
        )
    return found


def behind(o: Observation) -> bool:
    """Falling behind and consuming (not an outage)."""
    return (
        o.produced > 0
        and o.backlog >= 1
        and o.produced * OUTAGE <= o.consumed < o.produced * KEEPING_UP
    )


def backlogged(o: Observation) -> bool:
    """At capacity though keeping up: a backlog of at least ``BACKLOG_S`` seconds of
    its consumption, not shrinking since the previous sync, and consuming (not an
    outage). A consumer with such a backlog consumes as fast as it can."""
    return (
        o.produced > 0
        and o.consumed >= o.produced * OUTAGE
        and o.backlog >= max(1.0, o.consumed * BACKLOG_S)
        and o.backlog_before is not None
        and o.backlog >= o.backlog_before * (1 - FLAT)
    )


def at_capacity(o: Observation) -> bool:
    """Consuming as fast as it can: falling behind, or backlogged."""
    return behind(o) or backlogged(o)


def saturated(o: Observation) -> bool:
    """At capacity, consuming, and not consuming more than in the previous sync."""
    return (
        at_capacity(o)
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


def written_by_us(rate_per_core: int, *, prior: int) -> bool:
    """Whether ``rate_per_core`` is one this operator could have written for ``prior``:
    within ``LOWER``-``UPPER`` of it (as rounded when written)."""
    return max(1, math.floor(prior * LOWER)) <= rate_per_core <= math.ceil(prior * UPPER)


def _resumed(previous: Learned | None, prior: int) -> tuple[Learned | None, str]:
    """The previous learning to go on from, or None to start from ``prior``, and what
    the status then says about it.

    ``status.learning`` is read back every pass, and anyone with access to the status
    (a user, a restored backup) may have written it: a rate outside the bounds of its
    ``configuredRatePerCore`` cannot be this operator's, and is not clamped to a bound
    (a third of the CPU, or three times it) but dropped; a rate learned for another
    ``ratePerCore`` restarts from the new one.
    """
    if previous is None or previous.rate_per_core is None:
        return None, ""
    if previous.prior != prior:
        if previous.prior is None or previous.samples == 0:
            return None, ""
        return None, (
            f"; learning restarted from ratePerCore={prior} (the learned"
            f" {previous.rate_per_core} was for ratePerCore={previous.prior})"
        )
    if not written_by_us(previous.rate_per_core, prior=prior):
        return None, (
            f"; status.learning.ratePerCore={previous.rate_per_core} was outside"
            f" {LOWER:g}-{UPPER:g}x ratePerCore={prior} (not written by the operator):"
            " dropped, learning restarted from ratePerCore"
        )
    return previous, ""


def _start(previous: Learned | None, prior: int) -> tuple[float, int, datetime | None]:
    """Where the estimate stands: the previous one (``_resumed``), else the prior."""
    if previous is None or previous.rate_per_core is None:
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
    owned: Mapping[str, str] = _NO_PODS,
    namespace: str | None = None,
) -> Learned:
    """One sync's learning: the estimate moved by a saturated sample, or held, and why.

    ``owned``: pod name -> instance from the owner chain (in place); ``namespace``:
    the Consumer's, for series that carry a ``namespace`` label."""
    if usage is None:
        return off()
    previous, dropped = _resumed(previous, prior)
    rate, samples, learned_at = _start(previous, prior)

    def held(state: State, reason: Reason, message: str) -> Learned:
        return Learned(
            state=state,
            reason=reason,
            message=message + dropped,
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
    tally = cores_by_instance(
        usage, (name for name, _ in instances), owned=owned, namespace=namespace
    )
    found = observe(snapshot=snapshot, before=before, instances=instances, cores=tally.cores)
    value, saturated_n, measured = sample(found)
    if value is None:
        return held(*_why_not(found, tally=tally, saturated_n=saturated_n, measured=measured))
    raw = value
    rate = bounded(ALPHA * bounded(raw, prior=prior) + (1 - ALPHA) * rate, prior=prior)
    samples, learned_at = samples + 1, now
    return held(
        State.LEARNING,
        Reason.LEARNED,
        f"{measured} saturated instance(s) consumed {raw:.0f}/s per core used"
        f" (bounded to {LOWER:g}-{UPPER:g}x ratePerCore={prior}, EWMA {ALPHA:g})"
        + _left_out(tally.ambiguous),
    )


def _named(names: Iterable[str], *, most: int = 3) -> str:
    """A few names, and how many more: the message stays bounded."""
    listed = sorted(names)
    shown = ", ".join(listed[:most])
    return shown + (f" and {len(listed) - most} more" if len(listed) > most else "")


def _left_out(ambiguous: frozenset[str]) -> str:
    if not ambiguous:
        return ""
    return (
        f"; left out: {_named(ambiguous)}, whose pods' names Kubernetes cut to the same"
        f" {GENERATED_BASE} characters"
    )


def _why_not(
    found: Sequence[Observation], *, tally: PodTally, saturated_n: int, measured: int
) -> tuple[State, Reason, str]:
    """Why this sync gave no sample (``sample`` found none)."""
    unmeasured = [o.name for o in found if saturated(o) and o.cores is None]
    if saturated_n and any(name in tally.ambiguous for name in unmeasured):
        return (
            State.PAUSED,
            Reason.AMBIGUOUS_POD_NAMES,
            f"the pods of {_named(tally.ambiguous)} cannot be told apart: Kubernetes cut"
            f" their names to the same {GENERATED_BASE} characters (a long spec.name);"
            " their CPU is not used, and the learned rate holds."
            " A shorter spec.name, or updateMode InPlaceOrRecreate (the pod cache's"
            " owner chain), lets learning tell them apart",
        )
    if saturated_n:
        return (
            State.PAUSED,
            Reason.CPU_USAGE_UNUSABLE,
            f"{saturated_n - measured} saturated instance(s) without a usable CPU figure ("
            f"{len(tally.lying)} with NaN, zero, negative or over {MAX_CORES:g} cores, "
            f"{tally.unknown} series of pods of no instance); the learned rate holds",
        )
    if any(o.consumed_before is None and at_capacity(o) for o in found):
        return (
            State.LEARNING,
            Reason.NO_PREVIOUS_SYNC,
            "instances are at capacity, but the previous sync's consumption is unknown"
            " (the first sync, or no lastSyncState after a restart): flat cannot be told"
            " from rising, so this sync gives no sample; learning resumes from the next."
            " The learned rate holds",
        )
    return (
        State.LEARNING,
        Reason.NOT_SATURATED,
        "no instance is saturated (at capacity: falling behind, or a backlog that does not"
        " shrink; consumption flat): nothing to learn"
        " from this sync; the learned rate holds",
    )


def effective_rate(learned: Learned | None, *, prior: int) -> int | None:
    """The rate to size with, or None for the configured one (``prior``): nothing
    learned yet, learning off, or learned from another ``ratePerCore``."""
    if learned is None or learned.state is State.OFF or learned.rate_per_core is None:
        return None
    if learned.samples == 0 or learned.prior != prior:
        return None
    if not written_by_us(learned.rate_per_core, prior=prior):
        return None  # someone else's (``_resumed``): the next refresh says so
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
    owned: Mapping[str, str] = _NO_PODS,
    namespace: str | None = None,
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
        owned=owned,
        namespace=namespace,
    )


def sizing_with(autoscaling: Autoscaling, learned: Learned | None) -> Autoscaling:
    """``autoscaling`` sizing with the learned rate, when there is one to use."""
    rate = effective_rate(learned, prior=autoscaling.rate_per_core)
    if rate is None or autoscaling.predictor is not Predictor.ADAPTIVE:
        return autoscaling
    return replace(autoscaling, learned_rate_per_core=rate)
