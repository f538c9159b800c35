"""The adaptive policy's rules: when a proposed size replaces the current one.

Each rule is a small named function, and ``decide`` asks them in order; the
name of the rule that decided goes into the explanation (``Verdict.rule``):

* ``hold_peak``: size for the peak need of the recent window, not the need
  of this instant, so a dip between two peaks is not a reason to shrink;
* ``urgent``: skip ``pendingScaleUpDuration`` when, at the current growth
  rate, the lag will cross ``tolerableLag`` before it ends;
* ``gap_elapsed``: never resize an instance twice within ``R`` plus one sync
  (the actuation time, then one fresh observation of its effect), so a stall
  that no CPU fixes cannot cause a resize storm;
* ``drained``: scale down only once the backlog is drained (at most one
  actuation's worth, ``λ·R``, per partition);
* ``beyond_band``: scale down only when that saves more than the hysteresis
  band (``band``: ``HYSTERESIS`` + R/T) of the current CPU;
* ``drain_over``: a scale-down once the backlog the last scale-up was for is
  drained skips the pending period and the dwell: it goes straight to the need;
* ``settled``: after a scale-up that found the CPU short for production, no
  scale-down within ``SETTLE_S`` to no more CPU per msg/s of need than was
  short (no up-down-up);
* ``dwelt``: scale down only ``pendingScaleDownDuration`` after the last resize
  (the minimum dwell), on top of the pending period itself;
* ``outage``: no scale-up while the instance consumes (almost) nothing of
  what its CPU could: a downstream outage or a crash, which no CPU fixes;
  the drain that follows scales up at once (the lag is past
  ``tolerableLag`` by then: ``urgent``);
* ``at_cap``: under ``Recreate``, an outage whose drain will want the
  policy's cap (its size already within the band of ``maxAllowed``: no later
  need asks for another restart) goes to the cap at once: the restart costs
  nothing while nothing is consumed, and at the drain's start it cost R of the
  drain;
* ``ineffective``: when the last scale-up did not raise throughput (a
  single-threaded consumer, a slow downstream), stop adding CPU: more
  partitions or parallelism are needed, not more cores;
* ``bursting``: a scale-up that is not urgent waits while the node lends the
  pods CPU beyond their request (``lends``) and their limit covers the need: a
  larger request buys a guarantee, not throughput (under Recreate at the price
  of a restart as well);
* ``spike``: in place, a scale-up that is not urgent waits (its pending period
  starts again) while only the held peak asks for it, not the need of this
  pass: a one-minute spike held in the peak window outlasted
  ``pendingScaleUpDuration``; one that has waited it out (``pending_up``) is
  sized for the need of this pass (``Verdict.now_sized``), not for the spike
  still held;
* ``ride_share``: in place, an instance that keeps up asks for a scale-up only
  once production passes its request by ``RIDE_MARGIN``, so that a node that
  lends CPU shows it (held to λ/u, the pods never consumed beyond their request);
* ``first``: an instance created without metrics (``scaling.unsized``) takes its
  first size from them without a pending period, as under naive.

Scale-up does not wait for ``tolerableLag``: the headroom term of the demand
(``demand``; ``headroom_share``: the restart term sizes a scale-up but never
asks for one) asks for more as soon as the utilisation passes ``u``, and the
scale-up then goes through ``pendingScaleUpDuration`` (or not, when urgent).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import msgspec

from konsumerator.domain.adaptive import demand
from konsumerator.domain.adaptive.demand import Demand
from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.scaling import ScalingState, ScalingStatus, restarted, settle, unsized
from konsumerator.domain.specs import Autoscaling
from konsumerator.domain.stamps import age_s

# Scale down only when it saves more than this share of the current CPU, plus R/T
# (``band``): a resize that restarts pods must save more than one that does not.
HYSTERESIS = 0.05
# The recent peak is held over this many syncs (``Knobs.peak_window_s``).
PEAK_WINDOW_SYNCS = 4
# After a scale-up that found the CPU short for production itself, no scale-down back
# to the size that was short within this long (``settled``): an up-down-up within it
# is the oscillation the scorecard counts.
SETTLE_S = 1800.0
# The remembered peak is rewritten only when the need exceeds it by more than
# this share (or it expired): rising traffic would otherwise write the
# Deployment's annotation on every sync. Sizing uses max(need, peak), so the
# remembered value trails the true peak by at most this share.
PEAK_STEP = 0.05
_MAX_RATE = 2**62


@dataclass(frozen=True, slots=True)
class Knobs:
    """The policy's parameters, resolved from the Consumer."""

    utilization: float
    actuation_s: float
    recovery_s: float
    tolerable_lag_s: float | None
    min_sync_s: float
    pending_up_s: float
    pending_down_s: float

    @property
    def min_gap_s(self) -> float:
        return self.actuation_s + self.min_sync_s

    @property
    def peak_window_s(self) -> float:
        # A few syncs: enough to size for the minute-to-minute noise of rate(),
        # short enough not to hold a passed peak. A scale-down waits
        # pendingScaleDownDuration on top (a lower need for the whole of it), so
        # holding the peak that long as well paid for the same caution twice.
        return PEAK_WINDOW_SYNCS * self.min_sync_s

    @property
    def band(self) -> float:
        return band(actuation_s=self.actuation_s, recovery_s=self.recovery_s)


# A msgspec Struct (frozen, hashable), built in C: see ``memory.Memory``.
class Verdict(msgspec.Struct, frozen=True, gc=False):
    apply: bool
    state: ScalingState
    rule: str
    # In place, a scale-up that waited out ``pendingScaleUpDuration`` goes to the need
    # of this pass (``Sized.now_up_rate``), not to the held peak (``spike``).
    now_sized: bool = False


def hold_peak(
    *, need: float, memory: Memory | None, now: datetime, window_s: float
) -> tuple[float, Memory]:
    """The production need to size for (the recent peak or more), and the memory to keep.

    A sliding maximum in two buckets of half the window: ``peak_rate`` since
    ``peak_at`` and ``previous_peak`` in the half before. When the current half
    is over it becomes the previous one (or nothing, after a whole window
    without a pass), so a peak is held for between half a window and a whole one.
    The current bucket is rewritten only when the need exceeds it by more than
    ``PEAK_STEP``: rising traffic would otherwise write the Deployment's
    annotation on every sync.
    """
    memory = memory or Memory()
    half = window_s / 2
    age = age_s(memory.peak_at, now=now)
    if age >= half:
        previous = memory.peak_rate if age < window_s else 0
        memory = memory.with_peak(peak_rate=_ceil(need), peak_at=now, previous_peak=previous)
    elif need > memory.peak_rate * (1 + PEAK_STEP):
        memory = memory.with_peak(
            peak_rate=_ceil(need), peak_at=memory.peak_at, previous_peak=memory.previous_peak
        )
    return max(need, float(memory.peak_rate), float(memory.previous_peak)), memory


def _ceil(value: float) -> int:
    return min(_MAX_RATE, math.ceil(value)) if math.isfinite(value) else _MAX_RATE


def urgent(
    *,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    tolerable_lag_s: float | None,
    horizon_s: float,
    capacity: float | None = None,
) -> bool:
    """Whether some partition's lag reaches ``tolerableLag`` within ``horizon_s``.

    The lag (seconds of production behind) grows by (λ − consumed)/λ per
    second; a partition with no consumption sample is taken as consuming
    nothing, the case urgency is for. Until consumption reflects the current
    size (not ``observed``: the rate() window still holds the last restart's
    R without consumption), the caller passes ``capacity``, what the current
    CPU consumes (msg/s, shared in proportion to production): a partition is
    taken to consume at least its share of it. Read as growth, a restart's
    pause asked for the next restart.
    """
    total = sum(max(0.0, snapshot.production.get(p) or 0.0) for p in partitions)
    if tolerable_lag_s is None:
        return False
    for p in partitions:
        lam = snapshot.production.get(p) or 0.0
        if lam <= 0:
            continue
        lag = max(0.0, snapshot.offset.get(p) or 0.0) / lam
        consumed = snapshot.consumption.get(p) or 0.0
        if capacity is not None:
            consumed = max(consumed, min(lam, capacity * lam / total))
        growth = (lam - consumed) / lam
        if lag + max(0.0, growth) * horizon_s >= tolerable_lag_s:
            return True
    return False


def drained(*, snapshot: MetricsSnapshot, partitions: Sequence[int], actuation_s: float) -> bool:
    """Whether no partition is behind by more than one actuation's worth (λ·R)."""
    for p in partitions:
        behind = snapshot.offset.get(p) or 0.0
        if behind > (snapshot.production.get(p) or 0.0) * actuation_s and behind >= 1:
            return False
    return True


# A backlog of at most this many seconds of production is empty: what a consumer
# that keeps up has in flight (``emptied``).
EMPTY_S = 5.0


def emptied(*, snapshot: MetricsSnapshot, partitions: Sequence[int]) -> bool:
    """Whether no partition is behind by more than ``EMPTY_S`` of its production.

    A scale-down at the end of a drain (``drain_over``) waits for this, not just
    for ``drained``: under Recreate its own restart adds λ·R behind, and on top
    of a backlog of λ·R that reached ``tolerableLag`` (R = 30 s, 1 min) and
    asked for the scale-up back.
    """
    return drained(snapshot=snapshot, partitions=partitions, actuation_s=EMPTY_S)


def gap_elapsed(*, memory: Memory | None, now: datetime, min_gap_s: float) -> bool:
    return age_s(memory.resized_at if memory else None, now=now) >= min_gap_s


def dwelt(*, memory: Memory | None, now: datetime, dwell_s: float) -> bool:
    return age_s(memory.resized_at if memory else None, now=now) >= dwell_s


# A scale-up is judged once the rate() window (a minute) after its actuation has
# passed: R + this; it was effective if throughput rose by at least EFFECTIVE_SHARE of
# what the added CPU should have given (a consumer that scales with CPU gives all of it).
JUDGE_AFTER_S = 60.0
EFFECTIVE_SHARE = 0.5
# A scale-up adding less than this share of CPU the pods can use is not judged: its
# effect is noise (or nothing: a limit that did not rise).
JUDGED_FROM = 0.2
# Keeping up: consumption within this share of production.
KEEPING_UP = 0.95
# Consuming less than this share of production is an outage, not a throughput limit.
OUTAGE = 0.05


class Effect(StrEnum):
    """What the last scale-up did to the instance's throughput."""

    # It rose, the instance keeps up, or there is nothing to judge.
    EFFECTIVE = "effective"
    # Not risen yet, and too early to tell (its rate() window has not passed).
    JUDGING = "judging"
    # Not risen, a rate() window after the actuation: more CPU does not help.
    INEFFECTIVE = "ineffective"


def usable_rise(*, memory: Memory, cpu_m: int, limit_m: int) -> float:
    """The share by which the last scale-up raised the CPU the pods can use.

    Pods use their request on a busy node and burst to their limit on a spare one;
    which binds is not known here, so the rise is the smaller of the two: with
    limits rounded to whole cores, 1400m -> 1800m keeps a 2-core limit, and pods
    that already used 2 cores gain nothing, so their flat throughput says nothing
    about whether more CPU helps. A limit unknown then or now (0: none) leaves the
    request's rise.
    """
    added = cpu_m / memory.cpu_before_m - 1 if memory.cpu_before_m > 0 else 0.0
    if memory.limit_before_m > 0 and limit_m > 0:
        added = min(added, limit_m / memory.limit_before_m - 1)
    return added


def effect(
    *,
    memory: Memory | None,
    consumed: float,
    produced: float,
    cpu_m: int,
    now: datetime,
    knobs: Knobs,
    limit_m: int = 0,
) -> Effect:
    """Whether the last scale-up raised throughput while the instance still falls behind.

    An instance that keeps up, or whose throughput rose by at least
    ``EFFECTIVE_SHARE`` of what the added CPU (``usable_rise``: ``cpu_m`` and the
    limit ``limit_m`` against the CPU before) should give, is fine; so is a scale-up
    of less than ``JUDGED_FROM``, one whose CPU limit did not rise included: it is
    inconclusive, never evidence that more CPU does not help.
    Otherwise it is too early to tell until the rate() window after the
    actuation (R + ``JUDGE_AFTER_S``) has passed, and then the scale-up was
    ineffective; once found so, it stays so until the
    instance keeps up or throughput rises. Consuming (almost) nothing is an
    outage (or a restart), not a limit, and is never judged ineffective.
    """
    if memory is None or memory.throughput_before <= 0 or consumed >= produced * KEEPING_UP:
        return Effect.EFFECTIVE
    added = usable_rise(memory=memory, cpu_m=cpu_m, limit_m=limit_m)
    if added < JUDGED_FROM:
        return Effect.EFFECTIVE
    if consumed < produced * OUTAGE:
        # Nothing consumed at all: a downstream outage (or the pods restarting), not a
        # throughput limit. The CPU for the drain that follows is worth having ready.
        return Effect.EFFECTIVE
    if consumed >= memory.throughput_before * (1 + EFFECTIVE_SHARE * added):
        return Effect.EFFECTIVE
    if memory.ineffective or age_s(memory.resized_at, now=now) >= knobs.actuation_s + JUDGE_AFTER_S:
        return Effect.INEFFECTIVE
    return Effect.JUDGING


def outage(*, consumed: float, cpu_m: int, rate_per_core: float) -> bool:
    """Whether the instance consumes less than ``OUTAGE`` of what its CPU could give.

    Then CPU is not what holds it back (a stalled downstream, a crash loop, pods
    restarting): adding some only costs, and the backlog it builds is drained
    once consumption resumes. Measured against the CPU it has, not against
    production, so a badly under-sized instance (consuming all its CPU gives)
    is never taken for one in an outage.
    """
    return cpu_m > 0 and consumed < OUTAGE * cpu_m / 1000 * rate_per_core


def band(*, actuation_s: float, recovery_s: float) -> float:
    """The share of the current CPU a scale-down must save: ``HYSTERESIS + R/T``.

    A resize stops consumption for R, R/T of the recovery budget: a restart
    (R = 30 s, T = 5 m) must save 15 %, an in-place resize (R = 5 s) 6.7 %.
    """
    return min(0.9, HYSTERESIS + actuation_s / max(1.0, recovery_s))


def worth_a_step(*, current_cpu_m: int, proposed_cpu_m: int) -> bool:
    """Whether a scale-up that is not urgent adds more than ``HYSTERESIS`` of the CPU.

    The headroom (u) leaves that much to spare anyway, and a smaller step,
    taken for the noise of a few syncs, was often given back by the next
    scale-down: an up-down-up (a step up in place: 1 in 6 h). Urgent ones
    always go.
    """
    return proposed_cpu_m > current_cpu_m * (1 + HYSTERESIS)


def drain_share(*, actuation_s: float, recovery_s: float) -> float:
    """The share of a scale-up that must be for a backlog for ``drain_over`` to give it back.

    When a resize restarts the pods (R/T at least ``HYSTERESIS``) a scale-up
    carries its restart's backlog (``demand.restart_need``, R/T of the need)
    and the backlog: more than ``HYSTERESIS`` of it is given back once
    drained, else the band (5 % + R/T) held it as long as production stayed
    (17 % above the need on a step up). In place a resize is cheap and the
    drain ends within the burst it was for: only a scale-up mostly for a
    backlog (an outage's) is given back at once, the rest waits for
    ``pendingScaleDownDuration``, which ends a burst with one scale-down.
    """
    return HYSTERESIS if actuation_s / max(1.0, recovery_s) >= HYSTERESIS else 0.5


def beyond_band(*, current_cpu_m: int, proposed_cpu_m: int, band: float) -> bool:
    return proposed_cpu_m < current_cpu_m * (1 - band)


def short_for_production(
    *,
    consumed: float,
    produced: float,
    drained: bool,
    production_need: float,
    backlog_need: float,
    observed: bool = True,
) -> bool:
    """Whether a scale-up finds the CPU short for production itself.

    It consumes less than is produced while behind (not ``drained``): the lag is
    growing. Not when the scale-up is mostly a backlog's: after an outage,
    consumption ramps up from nothing in the rate() window, which says nothing
    about whether the size keeps up with production. Nor when consumption does
    not reflect the current size yet (not ``observed``).
    """
    growing = produced > 0 and consumed < produced and not drained
    return (
        observed
        and growing
        and not for_backlog(production_need=production_need, backlog_need=backlog_need)
    )


def observed(*, memory: Memory | None, now: datetime, actuation_s: float) -> bool:
    """Whether consumption now reflects the instance's current size.

    Consumption is a rate() over a window (``JUDGE_AFTER_S``): within R + that
    window of the last resize it still counts the actuation (a restart consumes
    nothing for R), so a size cannot be found short for production then. Under
    Recreate every resize of a scale-up storm looked short that way, and
    ``settled`` then held the peak of the storm for ``SETTLE_S``.
    """
    return age_s(memory.resized_at if memory else None, now=now) >= actuation_s + JUDGE_AFTER_S


def for_backlog(*, production_need: float, backlog_need: float) -> bool:
    """Whether a scale-up is mostly for a backlog (an outage's) rather than for production."""
    return backlog_need > production_need


def drain_sized(
    *, production_need: float, backlog_need: float, restart_need: float, share: float = HYSTERESIS
) -> bool:
    """Whether a scale-up is sized partly for a backlog: more than ``HYSTERESIS`` of it.

    Its CPU beyond the production need is given back once that backlog is
    drained (``drain_over``). Held to ``band`` instead, a scale-up for a
    production step plus the backlog the step built kept up to 5 % + R/T more
    CPU than the need for as long as the step lasted (17 % on a step up under
    Recreate).
    """
    backlog = backlog_need + restart_need
    return backlog > share * (production_need + backlog)


def drain_over(*, memory: Memory | None, drained: bool, production_need: float = 0.0) -> bool:
    """Whether a scale-down is the end of a drain: no pending period for it.

    The last scale-up was sized partly for a backlog (``Memory.for_backlog``,
    ``drain_sized``) and it is drained: the CPU beyond the production need only
    waits to be given back. A drained backlog does not come back by itself, so
    this is no transient dip that ``pendingScaleDownDuration`` guards against,
    nor noise that the hysteresis band is for: the scale-down goes straight to
    the need (the recent peak of production held) when it saves more than
    ``HYSTERESIS``. Only while the production need (``production_need``, the
    recent peak) is not below the one the scale-up was sized for
    (``Memory.up_need``) by more than ``HYSTERESIS``: a fall of production
    itself (a burst is over) is what ``pendingScaleDownDuration`` is for.
    """
    if not drained or memory is None or not memory.for_backlog:
        return False
    return production_need >= memory.up_need * (1 - HYSTERESIS)


def settled(
    *,
    memory: Memory | None,
    now: datetime,
    proposed_cpu_m: int,
    production_need: float,
    lent: bool = False,
    proposed_limit_m: int = 0,
) -> bool:
    """Whether a scale-down may go where it proposes, given the last scale-up.

    After a scale-up that found the CPU short for production itself
    (``Memory.short_need``: the production need then; ``cpu_before_m``: the CPU
    that was short), a scale-down within ``SETTLE_S`` to no more CPU per msg/s
    of need than that would be an up-down-up: that size was just seen too
    small (consumers slower than ``ratePerCore`` says look just like this).
    A scale-down because the need fell (a burst is over) leaves more CPU per
    msg/s than was short (by more than ``HYSTERESIS``: not noise), and is allowed.
    On a node that lends CPU (``lent``) the pods were short at their limit, not
    their request: the proposed limit (``proposed_limit_m``) is measured against
    the limit before (``Memory.limit_before_m``), or a scale-down to a smaller
    request under the same whole-core limit went back to what was short.
    """
    if memory is None or memory.short_need <= 0 or memory.cpu_before_m <= 0:
        return True
    if age_s(memory.resized_at, now=now) >= SETTLE_S:
        return True
    cpu_m, before_m = proposed_cpu_m, memory.cpu_before_m
    if lent and memory.limit_before_m > 0 and proposed_limit_m > 0:
        cpu_m, before_m = proposed_limit_m, memory.limit_before_m
    more = cpu_m * memory.short_need
    return more > before_m * production_need * (1 + HYSTERESIS)


def lends(*, consumed: float, cpu_m: int, rate_per_core: float) -> bool:
    """Whether the instance consumes more than its request can: the node lends it CPU.

    By more than ``HYSTERESIS``, so rounding and the rate() window are no
    evidence. On a busy node consumption is capped by the request and this is
    never true. Seen most often while a restart's backlog drains, at whatever
    CPU the pods can get (``Memory.lent`` keeps it).
    """
    if cpu_m <= 0 or rate_per_core <= 0:
        return False
    return consumed > cpu_m / 1000 * rate_per_core * (1 + HYSTERESIS)


def bursting(
    *,
    lent: bool,
    trigger: float,
    limit_m: int,
    rate_per_core: float,
) -> bool:
    """Whether a scale-up that is not urgent waits because the node lends the pods CPU.

    The node was seen lending CPU beyond the request (``lends``, kept in
    ``Memory.lent``) and the limit (``limit_m``; 0 when there is none) can give
    what the need (``trigger``) asks for: a larger request would buy a
    guarantee, not throughput. Under Recreate that guarantee costs a restart
    and λ·R behind now; in place it costs the CPU requested, what is paid for
    (in place the lending shows because an instance that keeps up asks for a
    scale-up only past its request: ``ride_share``). If the node gets busy, the
    pods fall back to their request, the lag grows and ``urgent`` scales up
    (sized for the need; ``lent`` is then cleared unless seen again).
    The update mode does not decide (it did until in place rode the limit too).
    """
    if not lent or rate_per_core <= 0:
        return False
    return limit_m <= 0 or trigger <= limit_m / 1000 * rate_per_core


# ``scaling.unsized``: the fallback's size was chosen by no metrics, so the first one
# does not wait for the pending period (the resize stamps a time: only the first).
FIRST = "first: sized from metrics for the first time (created without them)"


def _pending(state: ScalingState, status: ScalingStatus, now: datetime) -> ScalingState:
    if state.status is status:
        return restarted(state, now=now)
    return msgspec.structs.replace(state, status=status, since=now)


def _elapsed(state: ScalingState, now: datetime, period_s: float) -> bool:
    return period_s <= 0 or age_s(state.since, now=now) >= period_s


# A msgspec Struct (frozen, hashable), built in C: see ``memory.Memory``.
class Situation(msgspec.Struct, frozen=True, gc=False):
    """What one pass knows about one instance, for ``decide``."""

    state: ScalingState
    comparison: int  # +1 more, -1 less, 0 the same (as ``rules.compare``)
    current_cpu_m: int
    proposed_cpu_m: int
    lagging: bool
    urgent: bool
    drained: bool
    cpu_shortage_m: int
    now: datetime
    effect: "Effect" = Effect.EFFECTIVE
    outage: bool = False
    settled: bool = True
    emptied: bool = True
    production_need: float = 0.0  # the recent peak sized for (``drain_over``)
    bursting: bool = False  # consuming beyond the request, the limit enough (``bursting``)
    # A scale-down's CPU sized with the restart term (``Sized.rate``), which decides
    # whether it saves enough (the bands); it goes to ``proposed_cpu_m``, the headroom
    # (``Sized.down_rate``). 0: the same as ``proposed_cpu_m``.
    banded_cpu_m: int = 0
    # Only the held peak asks for more: the need of this pass (``Sized.now_asks``)
    # fits the current CPU (``spike``).
    spike: bool = False
    # In an outage under Recreate, the drain's size is within the band of the policy's
    # cap and the proposal is the cap (``at_cap``).
    at_cap: bool = False

    @property
    def band_cpu_m(self) -> int:
        """The CPU a scale-down's savings are measured with (``beyond_band``)."""
        return self.banded_cpu_m or self.proposed_cpu_m


def _up(s: Situation, knobs: Knobs) -> Verdict:
    state, now = s.state, s.now
    saturated = s.lagging and s.cpu_shortage_m > 0
    if state.status is ScalingStatus.SATURATED and saturated:
        return Verdict(apply=False, state=state, rule="saturated: the limits withhold more")
    if not gap_elapsed(memory=state.memory, now=now, min_gap_s=knobs.min_gap_s):
        return Verdict(
            apply=False,
            state=_pending(state, ScalingStatus.PENDING_SCALE_UP, now),
            rule=f"gap_elapsed: less than R+minSyncPeriod={knobs.min_gap_s:g}s since last resize",
        )
    if s.effect is Effect.INEFFECTIVE:
        return Verdict(
            apply=False,
            state=settle(state, saturated=saturated, now=now),
            rule="ineffective: the last scale-up did not raise throughput; more CPU will not"
            " help, more partitions or consumer parallelism are needed",
        )
    if s.effect is Effect.JUDGING:
        return Verdict(
            apply=False,
            state=_pending(state, ScalingStatus.PENDING_SCALE_UP, now),
            rule="judging: the last scale-up has not raised throughput yet",
        )
    if s.outage and s.at_cap:
        return Verdict(
            apply=True,
            state=settle(state, saturated=saturated, now=now),
            rule="at_cap: an outage whose drain wants maxAllowed (within the band);"
            " restarted now, while nothing is consumed, not at the drain's start",
        )
    if s.outage:
        return Verdict(
            apply=False,
            state=_pending(state, ScalingStatus.PENDING_SCALE_UP, now),
            rule="outage: consuming almost nothing of what its CPU could; more CPU will not help",
        )
    if s.urgent:
        return Verdict(
            apply=True,
            state=settle(state, saturated=saturated, now=now),
            rule=f"urgent: lag reaches tolerableLag within {knobs.pending_up_s:g}s",
        )
    if s.bursting:
        return Verdict(
            apply=False,
            state=settle(state, saturated=saturated, now=now),
            rule="bursting: consuming beyond the request, within the limit; not urgent",
        )
    cheap = resizes_cheaply(knobs)
    if s.spike and cheap:
        # Not urgent (that returned above): a spike of a minute or two, held in the
        # peak window (``hold_peak``), is no sustained rise. The pending period starts
        # again, so it counts only passes whose own need asks for more.
        return Verdict(
            apply=False,
            state=settle(state, saturated=saturated, now=now),
            rule="spike: only the held peak asks for more, not the need of this pass",
        )
    if not s.urgent and not worth_a_step(
        current_cpu_m=s.current_cpu_m, proposed_cpu_m=s.proposed_cpu_m
    ):
        return Verdict(
            apply=False,
            state=settle(state, saturated=saturated, now=now),
            rule=f"worth_a_step: adds no more than {HYSTERESIS:.0%} and is not urgent",
        )
    if state.status is ScalingStatus.PENDING_SCALE_UP and _elapsed(state, now, knobs.pending_up_s):
        return Verdict(
            apply=True,
            state=settle(state, saturated=saturated, now=now),
            rule="pending_up: needed more for pendingScaleUpDuration",
            now_sized=cheap,
        )
    if knobs.pending_up_s <= 0:
        return Verdict(
            apply=True,
            state=settle(state, saturated=saturated, now=now),
            rule="pending_up: 0s",
            now_sized=cheap,
        )
    if unsized(state):
        return Verdict(apply=True, state=settle(state, saturated=saturated, now=now), rule=FIRST)
    return Verdict(
        apply=False,
        state=_pending(state, ScalingStatus.PENDING_SCALE_UP, now),
        rule="pending_up: waiting for pendingScaleUpDuration",
    )


def resizes_cheaply(knobs: Knobs) -> bool:
    """Whether a resize restarts nothing (in place: R/T below ``HYSTERESIS``), for ``spike``.

    Only then does a scale-up wait for the need of the pass itself and go to it
    (``spike``). Under Recreate the held peak keeps both deciding and sizing: a
    scale-up delayed on a rising trace came later and, sized for a pass that was
    itself a noisy high, one step bigger, and the 15 % band kept that step (a
    restart to give back 100m is not worth it): diurnal on a node with CPU to spare,
    seed 1, 1350m instead of 1250m for 12 h (+1.1 % core-hours). In place no trace
    of the scorecard got costlier (docs/adaptive.md).
    """
    return knobs.actuation_s / knobs.recovery_s < HYSTERESIS


def quiet_from(*, memory: Memory | None, now: datetime, cpu_before_m: int) -> int:
    """What a scale-up remembers as ``Memory.quiet_from_m``: where its run of scale-ups began.

    A scale-up after another (``Memory.cpu_before_m`` is set by scale-ups only)
    continues that run and keeps its value. The first of a run that follows
    ``SETTLE_S`` without a resize (or none known) remembers the CPU it starts from,
    ``cpu_before_m``, which served the instance all that time; any other gives 0:
    the instance was resized within the window before, so the rise may be a
    pattern (``after_up``).
    """
    if memory is not None and memory.cpu_before_m > 0:
        return memory.quiet_from_m
    if age_s(memory.resized_at if memory else None, now=now) >= SETTLE_S:
        return cpu_before_m
    return 0


def after_up(
    *, memory: Memory | None, now: datetime, knobs: Knobs, proposed_cpu_m: int = 0
) -> bool:
    """Whether a scale-down would follow a scale-up by less than ``SETTLE_S``, in place.

    Any scale-up then (an up-down-up) would be the oscillation the target
    forbids; in place, where a resize is cheap, the dwell after a scale-up is
    the whole window. ``Memory.cpu_before_m`` is set by a scale-up only.

    Not after a run of scale-ups that began after ``SETTLE_S`` without a resize
    (``Memory.quiet_from_m``: an isolated rise, a single burst) when the scale-down
    goes no lower than the CPU the instance had through that quiet period
    (``proposed_cpu_m``): an up-down-up needs a second rise within the window,
    and none was seen in the window before this one. Held, a 10-minute burst kept
    its CPU 30 minutes after its scale-up instead of ``pendingScaleDownDuration``
    after its end (``burst`` in place: 1.14x -> 1.32x the oracle's CPU). An
    instance resized within the window before the run (a flapping or sawtooth
    rate, or one just created) is held the whole window, and so is a scale-down
    below where the run began (production fell below its level before the rise).
    """
    if memory is None or memory.cpu_before_m <= 0:
        return False
    if knobs.actuation_s / knobs.recovery_s >= HYSTERESIS:
        return False
    if 0 < memory.quiet_from_m <= proposed_cpu_m:
        return False
    return age_s(memory.resized_at, now=now) < SETTLE_S


def _down(s: Situation, knobs: Knobs) -> Verdict:
    state, now = s.state, s.now
    steady = settle(state, saturated=s.lagging and s.cpu_shortage_m > 0, now=now)
    if s.lagging or not s.drained:
        return Verdict(apply=False, state=steady, rule="drained: backlog not drained yet")
    if (
        drain_over(memory=state.memory, drained=s.drained, production_need=s.production_need)
        and s.emptied
        and s.settled
        and beyond_band(current_cpu_m=s.current_cpu_m, proposed_cpu_m=s.band_cpu_m, band=HYSTERESIS)
    ):
        return Verdict(
            apply=True,
            state=settle(state, saturated=False, now=now),
            rule="drain_over: the backlog scaled up for is drained",
        )
    if after_up(memory=state.memory, now=now, knobs=knobs, proposed_cpu_m=s.proposed_cpu_m):
        return Verdict(
            apply=False,
            state=steady,
            rule=f"after_up: scaled up less than {SETTLE_S:g}s ago (no up-down-up)",
        )
    if not beyond_band(current_cpu_m=s.current_cpu_m, proposed_cpu_m=s.band_cpu_m, band=knobs.band):
        return Verdict(
            apply=False, state=steady, rule=f"beyond_band: saves less than {knobs.band:.1%}"
        )
    if not s.settled:
        return Verdict(
            apply=False,
            state=steady,
            rule=f"settled: back to the size found short less than {SETTLE_S:g}s ago",
        )
    pending = _pending(state, ScalingStatus.PENDING_SCALE_DOWN, now)
    if not dwelt(memory=state.memory, now=now, dwell_s=knobs.pending_down_s):
        return Verdict(
            apply=False, state=pending, rule="dwelt: resized less than pendingScaleDown ago"
        )
    if unsized(state):
        return Verdict(apply=True, state=settle(state, saturated=False, now=now), rule=FIRST)
    if _elapsed(pending, now, knobs.pending_down_s):
        return Verdict(
            apply=True,
            state=settle(state, saturated=False, now=now),
            rule="pending_down: needed less for pendingScaleDownDuration",
        )
    return Verdict(
        apply=False, state=pending, rule="pending_down: waiting for pendingScaleDownDuration"
    )


def decide(situation: Situation, *, knobs: Knobs) -> Verdict:
    """Next state, whether the proposal is applied now, and the rule that said so."""
    if situation.comparison > 0:
        return _up(situation, knobs)
    if situation.comparison < 0:
        return _down(situation, knobs)
    saturated = situation.lagging and situation.cpu_shortage_m > 0
    return Verdict(
        apply=False,
        state=settle(situation.state, saturated=saturated, now=situation.now),
        rule="right-sized",
    )


# ``knobs_for`` by Autoscaling object (held, so its id is not reused while remembered):
# it is asked several times per instance of every pass that refreshes metrics, and a
# Consumer's passes share one Autoscaling until its spec (or learned rate) changes.
# Both are frozen, so the one Knobs is shared. Bounded.
_KNOBS: dict[int, tuple[Autoscaling, Knobs]] = {}
_MAX_KNOBS = 64


def knobs_for(autoscaling: Autoscaling) -> Knobs:
    known = _KNOBS.get(id(autoscaling))
    if known is not None and known[0] is autoscaling:
        return known[1]
    knobs = Knobs(
        utilization=autoscaling.target_utilization,
        actuation_s=autoscaling.actuation_s,
        recovery_s=max(1.0, autoscaling.recovery_s),
        tolerable_lag_s=autoscaling.tolerable_lag_s,
        min_sync_s=autoscaling.min_sync_period_s,
        pending_up_s=autoscaling.pending_up_s,
        pending_down_s=autoscaling.pending_down_s,
    )
    if len(_KNOBS) >= _MAX_KNOBS:
        _KNOBS.clear()
    _KNOBS[id(autoscaling)] = (autoscaling, knobs)
    return knobs


# A msgspec Struct (frozen, hashable), built in C: see ``memory.Memory``.
class Sized(msgspec.Struct, frozen=True, gc=False):
    """The rate an instance is sized for this pass, and how it was found."""

    rate: int  # msg/s, what ``prediction.size_for_rate`` turns into CPU
    demand: Demand
    # msg/s a scale-up is sized for: ``rate`` plus its own restart's backlog
    # (``demand.restart_need``); ``rate`` decides whether to scale up at all.
    up_rate: int
    peak: float  # the production need sized for (≥ the demand's)
    memory: Memory
    # msg/s below which the CPU is short (``trigger``): the headroom alone, without
    # the restart term; equal to ``rate`` when the headroom term is the larger one.
    trigger: int = 0
    # msg/s beyond which a scale-up is asked for: ``trigger``, or less headroom while
    # an in-place instance keeps up (``ride_share``); 0: the same as ``trigger``.
    ride: int = 0
    # ``asks`` and ``up_rate`` for the need of this pass alone, without the held peak
    # (``spike``); 0: the same as ``asks`` and ``up_rate``.
    now_asks: int = 0
    now_up_rate: int = 0
    # ``ride`` applies to an instance that is behind, within its ``room`` (explanation).
    room: bool = False

    @property
    def asks(self) -> int:
        """The rate whose CPU the current size is compared with, to scale up."""
        return self.ride or self.trigger

    @property
    def down_rate(self) -> int:
        """The rate a scale-down goes to: the headroom alone (``trigger``).

        Whether to scale down is still decided with the restart term (``rate``:
        the bands measure the savings of a scale-down sized for it, so a size
        between λ/u and λ·(1 + R/T) plus the band stays right-sized and a rise of
        a few % that was scaled up for, sized for its restart, is not given back
        the moment it passes). Once one goes, it goes to λ/u: like a scale-up
        (``headroom_share``), a scale-down that restarts the pods leaves λ·R
        behind (the lag R, under ``tolerableLag`` when R is), which the headroom
        drains within R/(1/u − 1), and below λ/u nothing asks for more. Sized
        for λ·(1 + R/T), a scale-down under Recreate kept R/T (10 %) more than
        the headroom for as long as production stayed, and with ±5 % noise often
        one more 100m step: after a burst or an outage's drain, 1200m instead of
        1100m for the rest of the day (``burst`` 1.23x, ``incident`` 1.21x the
        oracle's CPU). In place the two are the same.
        """
        return self.trigger


def size(
    *,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    autoscaling: Autoscaling,
    memory: Memory | None,
    now: datetime,
    knobs: Knobs | None = None,
    keeping_up: bool | None = None,
    request_rate: float | None = None,
) -> Sized:
    """The demand (``demand.instance_demand``) with the recent peak held (``hold_peak``).

    ``knobs`` (``knobs_for(autoscaling)``) and ``keeping_up`` (``drained`` with their
    ``actuation_s``): given by a caller that has them already, found otherwise.
    ``request_rate``: msg/s the instance's CPU request gives (at the rate per core it is
    sized with); with it, an in-place instance behind by less than its ``room`` rides
    as one that keeps up (``ride_share``). None: unknown (a creation), no room."""
    if knobs is None:
        knobs = knobs_for(autoscaling)
    if keeping_up is None:
        keeping_up = drained(
            snapshot=snapshot, partitions=partitions, actuation_s=knobs.actuation_s
        )
    found = demand.instance_demand(
        snapshot=snapshot,
        partitions=partitions,
        utilization=knobs.utilization,
        recovery_s=knobs.recovery_s,
        actuation_s=knobs.actuation_s,
    )
    peak, kept = hold_peak(
        need=found.production_need, memory=memory, now=now, window_s=knobs.peak_window_s
    )
    roomy = (
        not keeping_up
        and request_rate is not None
        and resizes_cheaply(knobs)
        and room(
            snapshot=snapshot,
            partitions=partitions,
            tolerable_lag_s=knobs.tolerable_lag_s,
            request_rate=request_rate,
        )
    )
    sized = sized_for_peak(
        found=found, peak=peak, memory=kept, knobs=knobs, keeping_up=keeping_up or roomy
    )
    return msgspec.structs.replace(sized, room=True) if roomy and sized.ride else sized


def sized_for_peak(
    *, found: Demand, peak: float, memory: Memory, knobs: Knobs, keeping_up: bool
) -> Sized:
    """``size``'s answer once the peak to size for is known (``hold_peak``): its rates
    read of the demand the backlog's and restart's needs (and the production need for
    the need of this pass alone, ``now_asks``, ``now_up_rate``), nothing else."""
    total = peak + found.backlog_need
    share, ride = _shares(knobs, keeping_up=keeping_up)
    return Sized(
        rate=_ceil(total),
        demand=found,
        up_rate=_ceil(total + found.restart_need),
        peak=peak,
        memory=memory,
        trigger=_ceil(peak * share + found.backlog_need),
        ride=_ceil(peak * share * ride + found.backlog_need) if ride < 1 else 0,
        now_asks=_ceil(found.production_need * share * min(1.0, ride) + found.backlog_need),
        now_up_rate=_ceil(found.production_need + found.backlog_need + found.restart_need),
    )


# ``_shares`` of the last knobs object asked (by identity; the caller holds the knobs of
# a Consumer for its passes, ``rules``): (knobs, headroom share, ride shares by keeping_up).
_SHARES: list[tuple[Knobs, float, tuple[float, float]]] = []


def _shares(knobs: Knobs, *, keeping_up: bool) -> tuple[float, float]:
    """``headroom_share`` and ``ride_share`` of ``knobs`` (functions of them alone), asked
    for every instance of every refreshing pass: found once per knobs object."""
    last = _SHARES[0] if _SHARES else None
    if last is None or last[0] is not knobs:
        share = headroom_share(
            utilization=knobs.utilization,
            actuation_s=knobs.actuation_s,
            recovery_s=knobs.recovery_s,
        )
        rides = tuple(
            ride_share(
                utilization=knobs.utilization,
                actuation_s=knobs.actuation_s,
                recovery_s=knobs.recovery_s,
                keeping_up=up,
            )
            for up in (False, True)
        )
        last = (knobs, share, (rides[0], rides[1]))
        _SHARES[:] = [last]
    return last[1], last[2][keeping_up]


# In place, while an instance keeps up, a scale-up waits until production passes
# what its request gives by this share: twice the margin ``lends`` asks for, so a node
# that lends the pods CPU shows it (``ride_share``).
RIDE_MARGIN = 2 * HYSTERESIS


def ride_share(
    *, utilization: float, actuation_s: float, recovery_s: float, keeping_up: bool
) -> float:
    """The share of the headroom trigger (``trigger``) that asks for a scale-up.

    In place (a resize restarts nothing: R/T below ``HYSTERESIS``) and while the
    instance keeps up (``drained``), the headroom λ/u is not bought before it is
    used: a scale-up is asked for once production passes the request by
    ``RIDE_MARGIN`` (u/(1 + margin) of λ/u). On a node with no CPU to spare the
    lag shows first (within λ·R the instance no longer keeps up), the headroom
    trigger returns and the scale-up goes as before, a few seconds of lag later
    (urgent when it grows fast). On a node that lends the pods CPU they consume
    beyond their request (``lends``), and ``bursting`` holds the scale-up while
    their limit covers λ/u: the request, what is paid for, stays what it was.
    Held to λ/u, the consumption never passed the request, so the lending was
    never seen: naive, which requests λ, rode the limit and was cheaper.
    Under Recreate (a guarantee costs a restart) and while behind: 1, the
    headroom trigger itself.
    """
    if not keeping_up or actuation_s / max(1.0, recovery_s) >= HYSTERESIS:
        return 1.0
    return utilization / (1 + RIDE_MARGIN)


# In place, an instance behind by at most this share of ``tolerableLag`` still rides
# (``room``): a scale-up is asked for once production passes its request by
# ``RIDE_MARGIN``, or once the lag passes this.
ROOM = 0.5


def room(
    *,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    tolerable_lag_s: float | None,
    request_rate: float,
) -> bool:
    """Whether an in-place instance that is behind rides as one that keeps up (``ride_share``).

    Every partition's lag is within ``ROOM`` of ``tolerableLag``, and the instance
    consumes what its request gives (at least ``1 − HYSTERESIS`` of the smaller of
    ``request_rate`` and production): its lag is production passing the request, not a
    consumer slower than ``ratePerCore`` says, and the ride level reads the request
    right. Then a lag of a few seconds does not make the headroom λ/u ask for a
    scale-up: on ``noisy`` (±30 % a minute) each minute above the request left more
    than λ·R behind, and λ/u of such a minute (plus its backlog) bought 100m-400m for
    half an hour or more (1.178x the oracle's CPU, 1.149x now). A sustained rise
    still scales up: past the ride level as soon as ``pendingScaleUpDuration`` has
    passed, below it once the lag passes the room (the headroom decides again), and at
    once when the lag would reach ``tolerableLag`` within the pending period
    (``urgent``). Slower consumers (consuming less than the request gives) have no
    room: their lag is what the headroom is for (``diurnal-slow``: V tol 126 -> 152
    partition-minutes without this condition). No ``tolerableLag``: no room.
    """
    if not tolerable_lag_s:
        return False
    produced = consumed = 0.0
    for p in partitions:
        lam = snapshot.production.get(p) or 0.0
        if lam <= 0:
            continue
        behind = max(0.0, snapshot.offset.get(p) or 0.0)
        if behind > lam * ROOM * tolerable_lag_s:
            return False
        produced += lam
        consumed += max(0.0, snapshot.consumption.get(p) or 0.0)
    return consumed >= (1 - HYSTERESIS) * min(request_rate, produced)


def headroom_share(*, utilization: float, actuation_s: float, recovery_s: float) -> float:
    """The share of the production need that decides a scale-up (``trigger``): λ/u of it.

    The restart term (λ·(1 + R/T)) pays for the backlog a resize leaves; it is
    the cost of a resize, so it sizes one when one is made, and never makes one
    by itself. Asked for in steady state as well, an instance that keeps up
    with headroom to spare (λ/u) was restarted only to be sized for its restart
    (steady under Recreate: 1.2x the oracle's CPU, where in place it holds 1.1x).
    A restart with headroom u alone leaves λ·R (the lag R, under
    ``tolerableLag`` when R is), drained within R/(1/u − 1). In place (R/T
    below 1/u − 1) the two are the same.
    """
    headroom = 1 / utilization
    return min(1.0, headroom / max(headroom, 1 + actuation_s / max(1.0, recovery_s)))


def _rate_source(autoscaling: Autoscaling) -> str:
    """The rate per core the CPU was computed from, and where it came from."""
    learned = autoscaling.learned_rate_per_core
    if learned is None:
        return f"ratePerCore={autoscaling.rate_per_core} (configured)"
    return f"ratePerCore={learned} (learned; configured {autoscaling.rate_per_core})"


def _up_part(sized: Sized, *, up: bool) -> str:
    """The restart a scale-up is sized for, when it is one and that adds anything."""
    if not up or sized.up_rate <= sized.rate:
        return ""
    return f" +min(backlog,lambda*R)/T={sized.demand.restart_need:.0f}/s -> {sized.up_rate}/s"


def _now_part(sized: Sized, now_sized: bool) -> str:
    """A scale-up sized for the need of this pass (``spike``), when the held peak was more."""
    if not now_sized or not sized.now_up_rate or sized.now_up_rate >= sized.up_rate:
        return ""
    return f" (pending_up: sized for this pass's need, not the held peak: {sized.now_up_rate}/s)"


def _trigger_part(sized: Sized, *, down: bool = False) -> str:
    """What decides a scale-up, when the restart term made the size larger than that,
    or when an in-place instance that keeps up asks for less (``ride_share``); for a
    scale-down, the headroom level it is sized for (``Sized.down_rate``)."""
    if down and sized.down_rate < sized.rate:
        return f" (scale down to lambda/u+backlog={sized.down_rate}/s)"
    if sized.ride and sized.ride < sized.trigger:
        how = f"lag within {ROOM:g}*tolerableLag" if sized.room else "keeping up"
        return (
            f" (in place, {how}: scale up once lambda/{1 + RIDE_MARGIN:g}={sized.ride}/s"
            " passes the request)"
        )
    if sized.trigger >= sized.rate:
        return ""
    return f" (scale up beyond lambda/u+backlog={sized.trigger}/s)"


def explain(
    *,
    sized: Sized,
    autoscaling: Autoscaling,
    cpu_m: int,
    rule: str,
    up: bool = False,
    down: bool = False,
    now_sized: bool = False,
) -> str:
    """Every input of the decision, so that a user can redo it by hand."""
    d, k = sized.demand, knobs_for(autoscaling)
    return (
        f"adaptive: lambda={d.production:.0f}/s backlog={d.backlog:.0f} T={k.recovery_s:g}s "
        f"u={k.utilization:g} R={k.actuation_s:g}s {_rate_source(autoscaling)} "
        f"term={d.term.value} need=max(lambda/u,lambda(1+R/T))"
        f"={d.production_need:.0f}/s peak={sized.peak:.0f}/s "
        f"+max(0,backlog-lambda*R)/T={d.backlog_need:.0f}/s -> {sized.rate}/s"
        f"{_trigger_part(sized, down=down)}{_up_part(sized, up=up)}{_now_part(sized, now_sized)}"
        f" = {cpu_m}m; "
        f"rule {rule}"
    )
