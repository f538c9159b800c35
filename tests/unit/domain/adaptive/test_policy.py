"""The adaptive policy's rules, ``adaptive.policy``.

Aspects tested, table-driven, one table per rule:

* ``hold_peak``: the recent peak is sized for until the window passes; it is
  rewritten only when the need exceeds it by more than ``PEAK_STEP``;
* ``urgent``: the lag reaches tolerableLag within the horizon at the current
  growth rate (or already has); never without a tolerableLag;
* ``drained``: no partition behind by more than λ·R;
* ``gap_elapsed`` / ``dwelt`` / ``beyond_band`` (``band``: 5 % + R/T);
* ``outage``: consuming almost nothing of what the CPU could gives no scale-up;
* ``for_backlog`` / ``drain_over``: the end of a drain scales down at once;
* ``short_for_production`` / ``settled``: no scale-down back to a size just
  found short within ``SETTLE_S`` (no up-down-up);
* ``observed`` / ``urgent`` with ``capacity``: within R + the rate() window
  of a resize, a restart's pause is no growth;
* ``emptied`` / ``drain_sized`` / ``drain_share``: which scale-ups give their
  backlog's CPU back at once, and when;
* ``worth_a_step``: no scale-up of 5 % or less unless urgent;
* ``Sized.down_rate``: a scale-down is sized for the headroom λ/u, not its restart;
* ``headroom_share``: the headroom λ/u alone decides a scale-up, the restart
  term only sizes it;
* ``lends`` / ``bursting``: a node seen lending CPU beyond the request holds a
  scale-up that is not urgent while the limit covers the need;
* ``ride_share``: in place, an instance that keeps up asks for a scale-up only
  once production passes its request by ``RIDE_MARGIN`` (so lending shows);
* ``after_up``: in place, no scale-down within ``SETTLE_S`` of a scale-up (no
  up-down-up within the window), but for the end of a drain and for a return to
  where a run of scale-ups that followed a quiet window began (``quiet_from``);
* ``spike``: in place, a scale-up only the held peak asks for waits (its pending
  period starts again); one that waited is sized for the need of its pass;
* ``knobs_for``: the knobs of a Consumer's autoscaling, found once per Autoscaling
  object and shared (another object, equal or not, gets its own);
* ``decide``: the whole transition table (direction × status × urgent ×
  drained × lagging × time since the last resize × time in the status), with
  the rule that decided.

The virtual-time sequence through the operator's pipeline is in
``test_sequence.py``.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive import policy
from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.scaling import ScalingState, ScalingStatus
from konsumerator.domain.specs import Autoscaling, Predictor

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
KNOBS = policy.Knobs(
    utilization=0.9,
    actuation_s=30.0,
    recovery_s=300.0,
    tolerable_lag_s=60.0,
    min_sync_s=30.0,
    pending_up_s=120.0,
    pending_down_s=600.0,
)
RUNNING = ScalingStatus.RUNNING
SATURATED = ScalingStatus.SATURATED
PSU = ScalingStatus.PENDING_SCALE_UP
PSD = ScalingStatus.PENDING_SCALE_DOWN


def ago(seconds: float | None) -> datetime | None:
    return None if seconds is None else NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("need", "peak", "peak_age", "want_sized", "want_peak", "want_previous", "new_bucket"),
    [
        (500.0, None, None, 500.0, 500, 0, True),  # first observation
        (500.0, 1000, 60, 1000.0, 1000, 0, False),  # a dip: the peak holds
        (1020.0, 1000, 60, 1020.0, 1000, 0, False),  # within the step: not rewritten
        (1100.0, 1000, 60, 1100.0, 1100, 0, False),  # beyond the step: rewritten
        (500.0, 1000, 300, 1000.0, 500, 1000, True),  # half a window: it becomes the previous
        (500.0, 1000, 600, 500.0, 500, 0, True),  # a whole window: forgotten
    ],
)
def test_hold_peak_is_a_sliding_maximum_over_half_to_one_window(
    need: float,
    peak: int | None,
    peak_age: float | None,
    want_sized: float,
    want_peak: int,
    want_previous: int,
    new_bucket: bool,
) -> None:
    memory = None if peak is None else Memory(peak_rate=peak, peak_at=ago(peak_age))
    sized, kept = policy.hold_peak(need=need, memory=memory, now=NOW, window_s=600.0)
    assert sized == pytest.approx(want_sized)
    assert (kept.peak_rate, kept.previous_peak) == (want_peak, want_previous)
    assert (kept.peak_at == NOW) is new_bucket


def snap(
    production: dict[int, float], consumption: dict[int, float], offset: dict[int, float]
) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType(production),
        consumption=MappingProxyType(consumption),
        offset=MappingProxyType(offset),
    )


@pytest.mark.parametrize(
    ("production", "consumption", "offset", "tolerable", "want"),
    [
        (1000.0, 1000.0, 0.0, 60.0, False),  # keeping up
        (1000.0, 500.0, 0.0, 60.0, True),  # +0.5 s/s: 60 s within 120 s
        (1000.0, 800.0, 0.0, 60.0, False),  # +0.2 s/s: 24 s within 120 s
        (1000.0, 800.0, 40_000.0, 60.0, True),  # 40 s behind + 24 s
        (1000.0, 1200.0, 70_000.0, 60.0, True),  # already beyond, even while draining
        (1000.0, 0.0, 0.0, None, False),  # no tolerableLag: never urgent
        (0.0, 0.0, 5.0, 60.0, False),  # nothing produced: no lag in seconds
    ],
)
def test_urgent_when_the_lag_reaches_tolerable_within_the_horizon(
    production: float, consumption: float, offset: float, tolerable: float | None, want: bool
) -> None:
    s = snap({0: production}, {0: consumption}, {0: offset})
    assert (
        policy.urgent(snapshot=s, partitions=[0], tolerable_lag_s=tolerable, horizon_s=120.0)
        is want
    )


def test_a_partition_without_a_consumption_sample_counts_as_consuming_nothing() -> None:
    s = snap({0: 1000.0}, {}, {0: 0.0})
    assert policy.urgent(snapshot=s, partitions=[0], tolerable_lag_s=60.0, horizon_s=120.0)


@pytest.mark.parametrize(
    ("production", "offset", "want"),
    [
        (1000.0, 0.0, True),
        (1000.0, 30_000.0, True),  # one actuation's worth: what a restart leaves
        (1000.0, 30_001.0, False),
        (0.0, 0.5, True),  # less than one message
        (0.0, 10.0, False),  # nothing produced, but still behind
    ],
)
def test_drained_when_no_partition_is_behind_beyond_one_actuation(
    production: float, offset: float, want: bool
) -> None:
    s = snap({0: production}, {}, {0: offset})
    assert policy.drained(snapshot=s, partitions=[0], actuation_s=30.0) is want


@pytest.mark.parametrize(
    ("resized_ago", "want_gap", "want_dwell"),
    [(None, True, True), (10.0, False, False), (60.0, True, False), (600.0, True, True)],
)
def test_gap_and_dwell_are_measured_from_the_last_resize(
    resized_ago: float | None, want_gap: bool, want_dwell: bool
) -> None:
    memory = Memory(resized_at=ago(resized_ago))
    assert policy.gap_elapsed(memory=memory, now=NOW, min_gap_s=KNOBS.min_gap_s) is want_gap
    assert policy.dwelt(memory=memory, now=NOW, dwell_s=KNOBS.pending_down_s) is want_dwell


@pytest.mark.parametrize(
    ("current", "proposed", "band", "want"),
    [
        (1000, 900, 0.15, False),
        (1000, 850, 0.15, False),
        (1000, 800, 0.15, True),
        (1000, 940, 0.067, False),
        (1000, 900, 0.067, True),
    ],
)
def test_scale_down_only_beyond_the_hysteresis_band(
    current: int, proposed: int, band: float, want: bool
) -> None:
    assert policy.beyond_band(current_cpu_m=current, proposed_cpu_m=proposed, band=band) is want


@pytest.mark.parametrize(
    ("actuation_s", "recovery_s", "want"),
    [
        (30.0, 300.0, 0.15),  # a restart: R/T = 10 % of the recovery budget, + 5 %
        (5.0, 300.0, 0.05 + 5 / 300),  # in place: a resize is almost free
        (0.0, 300.0, 0.05),
        (300.0, 300.0, 0.9),  # never more than 90 %: a scale-down stays possible
        (30.0, 0.0, 0.9),  # T = 0 is read as 1 s
    ],
)
def test_the_band_grows_with_what_a_resize_costs(
    actuation_s: float, recovery_s: float, want: float
) -> None:
    assert policy.band(actuation_s=actuation_s, recovery_s=recovery_s) == pytest.approx(want)


# consumed, produced, drained, production need, backlog need -> short for production
SHORT = [
    (1500.0, 3000.0, False, 3300.0, 100.0, True),  # consumes half of production, lag grows
    # consumers 5% slower than ratePerCore: the lag grows slowly, but it grows
    (2080.0, 2187.0, False, 2302.0, 345.0, True),
    (2080.0, 2187.0, True, 2302.0, 0.0, False),  # not behind: noise in the rates
    (2200.0, 2187.0, False, 2302.0, 345.0, False),  # draining: keeps up with production
    (1500.0, 3000.0, False, 3300.0, 5000.0, False),  # mostly a backlog: an outage's drain
    (0.0, 0.0, False, 0.0, 0.0, False),  # nothing produced
]


@pytest.mark.parametrize(("consumed", "produced", "drained", "need", "backlog_need", "want"), SHORT)
def test_short_for_production(
    consumed: float, produced: float, drained: bool, need: float, backlog_need: float, want: bool
) -> None:
    got = policy.short_for_production(
        consumed=consumed,
        produced=produced,
        drained=drained,
        production_need=need,
        backlog_need=backlog_need,
    )
    assert got is want


# seconds since the last scale-up, its short need (0: not short), CPU before it,
# proposed CPU, production need now -> settled
SETTLED = [
    (600.0, 0, 1000, 800, 2000.0, True),  # the last scale-up was not short
    (600.0, 2000, 1000, 1000, 2000.0, False),  # back to the size that was short
    (600.0, 2000, 1000, 900, 1900.0, False),  # less CPU per msg/s than was short
    (600.0, 2000, 1000, 1100, 2000.0, True),  # a trim that stays above it
    (600.0, 2000, 1000, 1040, 2000.0, False),  # 4 % more per msg/s: noise
    (600.0, 6000, 1000, 1000, 2000.0, True),  # the need fell to a third: a burst is over
    (1800.0, 2000, 1000, 1000, 2000.0, True),  # SETTLE_S after the scale-up
    (None, 2000, 1000, 1000, 2000.0, True),  # never resized
]


@pytest.mark.parametrize(("since_s", "short_need", "before", "proposed", "need", "want"), SETTLED)
def test_settled_after_a_scale_up_that_found_the_cpu_short(
    since_s: float | None, short_need: int, before: int, proposed: int, need: float, want: bool
) -> None:
    memory = Memory(resized_at=ago(since_s), cpu_before_m=before, short_need=short_need)
    got = policy.settled(memory=memory, now=NOW, proposed_cpu_m=proposed, production_need=need)
    assert got is want


IN_PLACE_KNOBS = replace(KNOBS, actuation_s=5.0)


@pytest.mark.parametrize(
    ("knobs", "since_s", "cpu_before", "want"),
    [
        (IN_PLACE_KNOBS, 600.0, 1100, True),  # scaled up 10 min ago: a down now could flap
        (IN_PLACE_KNOBS, 1799.0, 1100, True),
        (IN_PLACE_KNOBS, 1800.0, 1100, False),  # 30 min: an up after a down is no up-down-up
        (IN_PLACE_KNOBS, 600.0, 0, False),  # the last resize was a scale-down (or a creation)
        (IN_PLACE_KNOBS, None, 0, False),
        (KNOBS, 600.0, 1100, False),  # Recreate: settled and the band (15 %) as before
    ],
)
def test_after_up_in_place_no_scale_down_within_the_oscillation_window(
    knobs: policy.Knobs, since_s: float | None, cpu_before: int, want: bool
) -> None:
    memory = Memory(resized_at=ago(since_s), cpu_before_m=cpu_before)
    assert policy.after_up(memory=memory, now=NOW, knobs=knobs) is want


@pytest.mark.parametrize(
    ("quiet_from", "proposed", "want"),
    [
        (0, 1100, True),  # the run followed a resize within the window: held
        (1100, 1100, False),  # back to where a run after a quiet window began: goes
        (1100, 1400, False),  # less far down: goes
        (1100, 1000, True),  # below where the run began (production fell further): held
    ],
)
def test_after_up_lets_an_isolated_rise_go_back_to_where_it_began(
    quiet_from: int, proposed: int, want: bool
) -> None:
    """Scaled up 10 minutes ago (a 10-minute burst, over): held the whole window
    before, also when the rise followed half an hour without a resize."""
    memory = Memory(resized_at=ago(600), cpu_before_m=2800, quiet_from_m=quiet_from)
    got = policy.after_up(memory=memory, now=NOW, knobs=IN_PLACE_KNOBS, proposed_cpu_m=proposed)
    assert got is want


@pytest.mark.parametrize(
    ("resized_s", "cpu_before", "kept", "want"),
    [
        (3600.0, 0, 0, 1100),  # the first scale-up after an hour without a resize
        (1800.0, 0, 0, 1100),  # exactly SETTLE_S
        (1799.0, 0, 0, 0),  # a resize within the window before: no quiet start
        (600.0, 0, 0, 0),  # created (or scaled down) 10 minutes ago
        (None, 0, 0, 1100),  # no resize known
        (160.0, 2800, 1100, 1100),  # the next scale-up of the same run keeps where it began
        (160.0, 2800, 0, 0),  # ... and that it did not follow a quiet window
    ],
)
def test_quiet_from_remembers_where_a_run_of_scale_ups_after_a_quiet_window_began(
    resized_s: float | None, cpu_before: int, kept: int, want: int
) -> None:
    memory = Memory(resized_at=ago(resized_s), cpu_before_m=cpu_before, quiet_from_m=kept)
    assert policy.quiet_from(memory=memory, now=NOW, cpu_before_m=1100) == want


def test_quiet_from_without_memory_is_the_cpu_before() -> None:
    assert policy.quiet_from(memory=None, now=NOW, cpu_before_m=1100) == 1100


@pytest.mark.parametrize(
    ("for_backlog", "apply", "rule"),
    [
        (False, False, "after_up"),  # a burst is over 10 min after its scale-up: held
        (True, True, "drain_over"),  # an outage's drain is over: given back at once
    ],
)
def test_in_place_a_scale_down_soon_after_a_scale_up_waits_unless_a_drain_is_over(
    for_backlog: bool, apply: bool, rule: str
) -> None:
    memory = Memory(resized_at=ago(1200), cpu_before_m=1100, for_backlog=for_backlog, up_need=2000)
    state = ScalingState(status=PSD, since=ago(1200), memory=memory)
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=-1,
            current_cpu_m=3000,
            proposed_cpu_m=1100,
            lagging=False,
            urgent=False,
            drained=True,
            cpu_shortage_m=0,
            now=NOW,
            production_need=2000,
        ),
        knobs=IN_PLACE_KNOBS,
    )
    assert verdict.apply is apply
    assert verdict.rule.startswith(rule)


@pytest.mark.parametrize(
    ("lent", "limit_before", "proposed", "proposed_limit", "want"),
    [
        # Short at a 2-core limit from 1200m: 1800m keeps that limit, the size found short.
        (True, 2000, 1800, 2000, False),
        (True, 2000, 1800, 3000, True),  # a larger limit than was short
        (False, 2000, 1800, 2000, True),  # a busy node: the request is what was short
        (True, 0, 1800, 2000, True),  # no limit known then: the request's rule
    ],
)
def test_settled_on_a_lending_node_measures_the_limit_that_was_short(
    lent: bool, limit_before: int, proposed: int, proposed_limit: int, want: bool
) -> None:
    memory = Memory(
        resized_at=ago(600), cpu_before_m=1200, limit_before_m=limit_before, short_need=2445
    )
    got = policy.settled(
        memory=memory,
        now=NOW,
        proposed_cpu_m=proposed,
        production_need=2445,
        lent=lent,
        proposed_limit_m=proposed_limit,
    )
    assert got is want


@pytest.mark.parametrize(
    ("production_need", "backlog_need", "want"),
    [(2000.0, 6000.0, True), (2000.0, 2000.0, False), (2000.0, 100.0, False)],
)
def test_for_backlog_when_the_backlog_asks_more_than_production(
    production_need: float, backlog_need: float, want: bool
) -> None:
    assert policy.for_backlog(production_need=production_need, backlog_need=backlog_need) is want


@pytest.mark.parametrize(
    ("memory", "drained", "want"),
    [
        (Memory(for_backlog=True), True, True),
        (Memory(for_backlog=True), False, False),  # still draining
        (Memory(for_backlog=False), True, False),  # the last scale-up was for production
        (None, True, False),
    ],
)
def test_drain_over(memory: Memory | None, drained: bool, want: bool) -> None:
    assert policy.drain_over(memory=memory, drained=drained) is want


@pytest.mark.parametrize(
    ("for_backlog", "apply", "next_status", "rule"),
    [
        (True, True, RUNNING, "drain_over"),  # straight down, no pending, no dwell
        (False, False, PSD, "dwelt"),
    ],
)
def test_the_end_of_a_drain_scales_down_at_once(
    for_backlog: bool, apply: bool, next_status: ScalingStatus, rule: str
) -> None:
    memory = Memory(resized_at=ago(120), for_backlog=for_backlog)
    state = ScalingState(status=RUNNING, since=ago(120), memory=memory)
    situation = policy.Situation(
        state=state,
        comparison=-1,
        current_cpu_m=4000,
        proposed_cpu_m=1200,
        lagging=False,
        urgent=False,
        drained=True,
        cpu_shortage_m=0,
        now=NOW,
    )
    verdict = policy.decide(situation, knobs=KNOBS)
    assert (verdict.apply, verdict.state.status) == (apply, next_status)
    assert verdict.rule.startswith(rule)


def test_a_scale_down_back_to_a_size_found_short_waits() -> None:
    memory = Memory(resized_at=ago(600), cpu_before_m=1000, short_need=2000)
    state = ScalingState(status=PSD, since=ago(1000), memory=memory)
    situation = policy.Situation(
        state=state,
        comparison=-1,
        current_cpu_m=1500,
        proposed_cpu_m=1000,
        lagging=False,
        urgent=False,
        drained=True,
        cpu_shortage_m=0,
        now=NOW,
        settled=False,
    )
    verdict = policy.decide(situation, knobs=KNOBS)
    assert (verdict.apply, verdict.state.status) == (False, RUNNING)
    assert verdict.rule.startswith("settled")
    assert policy.decide(msgspec.structs.replace(situation, settled=True), knobs=KNOBS).apply


# direction, status, seconds in it, seconds since last resize, urgent, drained, lagging, shortage
#   -> apply, next status, rule
DECIDE = [
    # scale-up: the pending period, unless urgent; never within the minimum gap
    (+1, RUNNING, 1000, None, False, True, False, 0, False, PSU, "pending_up: waiting"),
    (+1, PSU, 60, None, False, True, False, 0, False, PSU, "pending_up: waiting"),
    (+1, PSU, 120, None, False, True, False, 0, True, RUNNING, "pending_up: needed"),
    (+1, RUNNING, 1000, None, True, True, True, 0, True, RUNNING, "urgent"),
    (+1, RUNNING, 1000, 20, True, True, True, 0, False, PSU, "gap_elapsed"),
    (+1, PSU, 1000, 59, True, True, True, 0, False, PSU, "gap_elapsed"),
    (+1, PSU, 1000, 60, True, True, True, 0, True, RUNNING, "urgent"),
    # not lagging is no reason to wait: the headroom asked for more
    (+1, PSD, 1000, None, False, True, False, 0, False, PSU, "pending_up: waiting"),
    # the limits withhold what would fix it
    (+1, SATURATED, 1000, None, True, False, True, 500, False, SATURATED, "saturated"),
    (+1, RUNNING, 1000, None, True, False, True, 500, True, SATURATED, "urgent"),
    # scale-down: drained, beyond the band (see the proposal sizes), dwelt, pending
    (-1, RUNNING, 1000, None, False, False, False, 0, False, RUNNING, "drained"),
    (-1, PSD, 1000, None, False, True, True, 0, False, RUNNING, "drained"),
    (-1, RUNNING, 1000, None, False, True, False, 0, False, PSD, "pending_down: waiting"),
    (-1, PSD, 300, None, False, True, False, 0, False, PSD, "pending_down: waiting"),
    (-1, PSD, 600, None, False, True, False, 0, True, RUNNING, "pending_down: needed"),
    (-1, PSD, 600, 300, False, True, False, 0, False, PSD, "dwelt"),
    (-1, RUNNING, 1000, 300, False, True, False, 0, False, PSD, "dwelt"),
    # the same size: settle
    (0, PSU, 10, None, False, True, False, 0, False, RUNNING, "right-sized"),
    (0, PSD, 10, None, False, True, True, 300, False, SATURATED, "right-sized"),
]


@pytest.mark.parametrize(
    (
        "direction",
        "status",
        "in_status",
        "resized_ago",
        "urgent",
        "drained",
        "lagging",
        "shortage",
        "apply",
        "next_status",
        "rule",
    ),
    DECIDE,
)
def test_decide(
    direction: int,
    status: ScalingStatus,
    in_status: float,
    resized_ago: float | None,
    urgent: bool,
    drained: bool,
    lagging: bool,
    shortage: int,
    apply: bool,
    next_status: ScalingStatus,
    rule: str,
) -> None:
    memory = Memory(peak_rate=1, peak_at=NOW, resized_at=ago(resized_ago))
    state = ScalingState(status=status, since=ago(in_status), memory=memory)
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=direction,
            current_cpu_m=1000,
            proposed_cpu_m={1: 1500, -1: 500, 0: 1000}[direction],
            lagging=lagging,
            urgent=urgent,
            drained=drained,
            cpu_shortage_m=shortage,
            now=NOW,
        ),
        knobs=KNOBS,
    )
    assert (verdict.apply, verdict.state.status) == (apply, next_status)
    assert verdict.rule.startswith(rule)
    # The memory travels with the state (the caller records the resize).
    assert verdict.state.memory == memory
    if verdict.state.status is status and not apply:
        assert verdict.state.since == state.since


def test_a_small_saving_within_the_band_is_not_pending() -> None:
    state = ScalingState(status=PSD, since=ago(1000), memory=Memory())
    verdict = policy.decide(
        msgspec.structs.replace(
            policy.Situation(
                state=state,
                comparison=-1,
                current_cpu_m=1000,
                proposed_cpu_m=900,
                lagging=False,
                urgent=False,
                drained=True,
                cpu_shortage_m=0,
                now=NOW,
            )
        ),
        knobs=KNOBS,
    )
    assert (verdict.apply, verdict.state.status) == (False, RUNNING)
    assert verdict.rule.startswith("beyond_band")


# consumed, produced, throughput before the last scale-up, CPU now (it had 1000m before),
# seconds since it, already found -> effect
EFFECTS = [
    (1000.0, 1000.0, 900, 2000, 10.0, False, policy.Effect.EFFECTIVE),  # keeps up
    (1500.0, 3000.0, 0, 2000, 10.0, False, policy.Effect.EFFECTIVE),  # no scale-up to judge
    (1500.0, 3000.0, 1000, 2000, 10.0, False, policy.Effect.EFFECTIVE),  # half of 2x: enough
    (1450.0, 3000.0, 1000, 2000, 10.0, False, policy.Effect.JUDGING),  # not yet; too early
    (1050.0, 3000.0, 1000, 2000, 89.0, False, policy.Effect.JUDGING),
    (1050.0, 3000.0, 1000, 2000, 90.0, False, policy.Effect.INEFFECTIVE),  # R + rate() window
    (1050.0, 3000.0, 1000, 2000, 10.0, True, policy.Effect.INEFFECTIVE),  # found before: stays
    (2000.0, 3000.0, 1000, 2000, 500.0, True, policy.Effect.EFFECTIVE),  # it rose after all
    (100.0, 3000.0, 1000, 2000, 500.0, False, policy.Effect.EFFECTIVE),  # an outage, not a limit
    # +10% of CPU is not judged: with consumers slower than ratePerCore, one cpuIncrement
    # more gives +10% at best, which a fixed threshold read as "ineffective"
    (1050.0, 3000.0, 1000, 1100, 500.0, False, policy.Effect.EFFECTIVE),
    (1050.0, 3000.0, 1000, 1200, 500.0, False, policy.Effect.EFFECTIVE),  # +20%: +10% is half
    (1050.0, 3000.0, 1000, 1300, 500.0, False, policy.Effect.INEFFECTIVE),  # +30%, +5%
]


@pytest.mark.parametrize(
    ("consumed", "produced", "before", "cpu_m", "since_s", "found", "want"), EFFECTS
)
def test_effect_of_the_last_scale_up(
    consumed: float,
    produced: float,
    before: int,
    cpu_m: int,
    since_s: float,
    found: bool,
    want: policy.Effect,
) -> None:
    memory = Memory(
        resized_at=ago(since_s), throughput_before=before, cpu_before_m=1000, ineffective=found
    )
    got = policy.effect(
        memory=memory, consumed=consumed, produced=produced, cpu_m=cpu_m, now=NOW, knobs=KNOBS
    )
    assert got is want


# The request and the limit before the last scale-up, and now (millicores; 0: no
# limit), what it consumes now (1000/s before, 3000/s produced, long judged) -> effect.
LIMITED_EFFECTS = [
    # 1400m -> 1800m keeps the 2-core limit: pods that used 2 cores gain nothing, so
    # flat throughput is inconclusive, never evidence that more CPU does not help
    (1400, 2000, 1800, 2000, 1000.0, policy.Effect.EFFECTIVE),
    (1000, 2000, 2000, 2000, 1000.0, policy.Effect.EFFECTIVE),
    # the limit rose less than JUDGED_FROM (+12.5%): not judged either
    (2000, 4000, 3000, 4500, 1000.0, policy.Effect.EFFECTIVE),
    # both rose: judged by the smaller rise (+28.6% of request: +14.3% wanted)
    (1400, 2000, 1800, 3000, 1100.0, policy.Effect.INEFFECTIVE),
    (1400, 2000, 1800, 3000, 1150.0, policy.Effect.EFFECTIVE),
    # a limit raised more than the request: the request's rise is what is sure
    (1400, 2000, 2100, 3000, 1200.0, policy.Effect.INEFFECTIVE),
    # no limit known then or now (none, or a memory written before limits were
    # remembered): the request's rise, as before
    (1400, 0, 1800, 2000, 1000.0, policy.Effect.INEFFECTIVE),
    (1400, 2000, 1800, 0, 1000.0, policy.Effect.INEFFECTIVE),
]


@pytest.mark.parametrize(
    ("cpu_before", "limit_before", "cpu_m", "limit_m", "consumed", "want"), LIMITED_EFFECTS
)
def test_a_scale_up_is_judged_by_the_cpu_the_pods_can_use(
    cpu_before: int,
    limit_before: int,
    cpu_m: int,
    limit_m: int,
    consumed: float,
    want: policy.Effect,
) -> None:
    memory = Memory(
        resized_at=ago(500),
        throughput_before=1000,
        cpu_before_m=cpu_before,
        limit_before_m=limit_before,
    )
    got = policy.effect(
        memory=memory,
        consumed=consumed,
        produced=3000.0,
        cpu_m=cpu_m,
        limit_m=limit_m,
        now=NOW,
        knobs=KNOBS,
    )
    assert got is want


millicores = st.integers(min_value=0, max_value=10**7)


@given(cpu_before=millicores, limit_before=millicores, cpu_m=millicores, limit_m=millicores)
def test_the_usable_rise_is_never_more_than_the_request_or_a_known_limit_gave(
    cpu_before: int, limit_before: int, cpu_m: int, limit_m: int
) -> None:
    memory = Memory(cpu_before_m=cpu_before, limit_before_m=limit_before)
    rise = policy.usable_rise(memory=memory, cpu_m=cpu_m, limit_m=limit_m)
    request_rise = cpu_m / cpu_before - 1 if cpu_before else 0.0
    assert rise <= request_rise
    if limit_before and limit_m:
        assert rise <= limit_m / limit_before - 1
        if limit_m <= limit_before:  # a limit that did not rise: never judged
            assert rise < policy.JUDGED_FROM
    else:
        assert rise == request_rise


@pytest.mark.parametrize(
    ("effect", "urgent", "apply", "rule"),
    [
        (policy.Effect.EFFECTIVE, True, True, "urgent"),
        # even when urgent: each scale-up would restart the judging, and a consumer
        # that does not scale with CPU would get scale-ups until maxAllowed
        (policy.Effect.JUDGING, True, False, "judging"),
        (policy.Effect.INEFFECTIVE, True, False, "ineffective"),
    ],
)
def test_no_more_cpu_while_the_last_scale_up_is_judged_or_once_found_ineffective(
    effect: policy.Effect, urgent: bool, apply: bool, rule: str
) -> None:
    state = ScalingState(status=RUNNING, since=ago(1000), memory=Memory(resized_at=ago(100)))
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=1,
            current_cpu_m=1000,
            proposed_cpu_m=2000,
            lagging=True,
            urgent=urgent,
            drained=False,
            cpu_shortage_m=0,
            now=NOW,
            effect=effect,
        ),
        knobs=KNOBS,
    )
    assert verdict.apply is apply
    assert verdict.rule.startswith(rule)


# consumed msg/s, CPU it has, ratePerCore -> in an outage
OUTAGES = [
    (0.0, 1000, 2000, True),  # consuming nothing: a stalled downstream
    (99.0, 1000, 2000, True),  # under 5% of the 2000/s its CPU could give
    (100.0, 1000, 2000, False),  # 5%: CPU may be what limits it
    (2000.0, 1000, 2000, False),  # all its CPU gives: badly under-sized, not an outage
    # production is not the measure: 20x the traffic on a small instance consumes
    # 5% of production and all of its CPU
    (200.0, 100, 2000, False),
    (0.0, 0, 2000, False),  # no CPU request: nothing to compare with
]


@pytest.mark.parametrize(("consumed", "cpu_m", "rate_per_core", "want"), OUTAGES)
def test_outage_is_consuming_almost_nothing_of_what_the_cpu_could(
    consumed: float, cpu_m: int, rate_per_core: int, want: bool
) -> None:
    assert policy.outage(consumed=consumed, cpu_m=cpu_m, rate_per_core=rate_per_core) is want


@pytest.mark.parametrize(
    ("outage", "urgent", "at_cap", "apply", "next_status", "rule"),
    [
        (True, True, False, False, PSU, "outage"),  # no CPU helps while the downstream is out
        (True, False, False, False, PSU, "outage"),
        # the drain will want the cap: restarted to it now, while nothing is consumed
        (True, True, True, True, RUNNING, "at_cap"),
        (True, False, True, True, RUNNING, "at_cap"),
        # the outage over: the drain scales up at once, the lag is past tolerableLag
        (False, True, False, True, RUNNING, "urgent"),
        (False, True, True, True, RUNNING, "urgent"),  # at_cap means nothing without an outage
    ],
)
def test_no_scale_up_during_an_outage_but_to_the_cap(
    outage: bool, urgent: bool, at_cap: bool, apply: bool, next_status: ScalingStatus, rule: str
) -> None:
    state = ScalingState(status=RUNNING, since=ago(1000), memory=Memory(resized_at=ago(1000)))
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=1,
            current_cpu_m=1000,
            proposed_cpu_m=3000,
            lagging=True,
            urgent=urgent,
            drained=False,
            cpu_shortage_m=0,
            now=NOW,
            outage=outage,
            at_cap=at_cap,
        ),
        knobs=KNOBS,
    )
    assert (verdict.apply, verdict.state.status) == (apply, next_status)
    assert verdict.rule.startswith(rule)


@pytest.mark.parametrize(
    ("resized_ago", "R", "want"),
    [
        (None, 30.0, True),  # never resized
        (89, 30.0, False),  # the rate() window still holds the restart
        (90, 30.0, True),  # R + 60 s
        (64, 5.0, False),
        (65, 5.0, True),  # in place: R = 5 s
    ],
)
def test_observed_once_the_rate_window_is_past_the_last_actuation(
    resized_ago: float | None, R: float, want: bool
) -> None:
    memory = Memory(resized_at=ago(resized_ago))
    assert policy.observed(memory=memory, now=NOW, actuation_s=R) is want
    assert policy.observed(memory=None, now=NOW, actuation_s=R)


@pytest.mark.parametrize(
    ("production", "consumption", "offset", "capacity", "want"),
    [
        # consuming half of 3000/s right after a restart, 50 s behind: urgent read as growth
        ({0: 3000.0}, {0: 1500.0}, {0: 150_000.0}, None, True),
        # ... but the CPU there consumes 3500/s: no growth, and 50 s is not 60 s yet
        ({0: 3000.0}, {0: 1500.0}, {0: 150_000.0}, 3500.0, False),
        # already beyond tolerableLag: urgent whatever the capacity
        ({0: 3000.0}, {0: 1500.0}, {0: 200_000.0}, 3500.0, True),
        # a CPU that really is short (2000/s for 3000/s): growth 1/3 s/s -> urgent
        ({0: 3000.0}, {0: 1500.0}, {0: 60_000.0}, 2000.0, True),
        # shared in proportion to production: the hot partition gets 3/4 of 4000/s
        ({0: 3000.0, 1: 1000.0}, {0: 0.0, 1: 0.0}, {0: 150_000.0, 1: 0.0}, 4000.0, False),
        ({0: 3000.0, 1: 1000.0}, {0: 0.0, 1: 0.0}, {0: 150_000.0, 1: 0.0}, 3000.0, True),
    ],
)
def test_urgent_right_after_a_resize_counts_what_the_cpu_consumes(
    production: dict[int, float],
    consumption: dict[int, float],
    offset: dict[int, float],
    capacity: float | None,
    want: bool,
) -> None:
    s = snap(production, consumption, offset)
    got = policy.urgent(
        snapshot=s,
        partitions=sorted(production),
        tolerable_lag_s=60.0,
        horizon_s=120.0,
        capacity=capacity,
    )
    assert got is want


@pytest.mark.parametrize(
    ("production", "offset", "want"),
    [
        (1000.0, 0.0, True),
        (1000.0, 5_000.0, True),  # EMPTY_S of production: in flight
        (1000.0, 5_001.0, False),
        (1000.0, 30_000.0, False),  # drained (λR) but not empty
    ],
)
def test_emptied_when_no_partition_is_behind_beyond_a_few_seconds(
    production: float, offset: float, want: bool
) -> None:
    s = snap({0: production}, {0: production}, {0: offset})
    assert policy.emptied(snapshot=s, partitions=[0]) is want


@pytest.mark.parametrize(
    ("production_need", "backlog_need", "restart_need", "share", "want"),
    [
        (6667.0, 0.0, 400.0, 0.05, True),  # a step's restart backlog: 5.7 %
        (6667.0, 0.0, 200.0, 0.05, False),  # 2.9 %
        (6667.0, 300.0, 100.0, 0.05, True),
        (6667.0, 400.0, 100.0, 0.5, False),  # in place: only a scale-up mostly for a backlog
        (1000.0, 5000.0, 0.0, 0.5, True),  # an outage's drain
        (0.0, 0.0, 0.0, 0.05, False),
    ],
)
def test_drain_sized_when_the_backlog_is_more_than_a_share_of_the_scale_up(
    production_need: float, backlog_need: float, restart_need: float, share: float, want: bool
) -> None:
    got = policy.drain_sized(
        production_need=production_need,
        backlog_need=backlog_need,
        restart_need=restart_need,
        share=share,
    )
    assert got is want


@pytest.mark.parametrize(
    ("R", "T", "want"),
    [
        (30.0, 300.0, policy.HYSTERESIS),  # Recreate: a restart's backlog is 10 % of the need
        (15.0, 300.0, policy.HYSTERESIS),  # R/T = 5 %
        (5.0, 300.0, 0.5),  # in place
        (0.0, 300.0, 0.5),
    ],
)
def test_drain_share_depends_on_what_a_resize_costs(R: float, T: float, want: float) -> None:
    assert policy.drain_share(actuation_s=R, recovery_s=T) == want


@pytest.mark.parametrize(
    ("memory", "need", "want"),
    [
        (Memory(for_backlog=True, up_need=6667), 6667.0, True),
        (Memory(for_backlog=True, up_need=6667), 6400.0, True),  # noise, within 5 %
        (Memory(for_backlog=True, up_need=6667), 6000.0, False),  # production fell: pending
        (Memory(for_backlog=True), 100.0, True),  # an older operator's memory: no floor
        (Memory(for_backlog=False, up_need=6667), 6667.0, False),
    ],
)
def test_drain_over_only_while_production_holds(memory: Memory, need: float, want: bool) -> None:
    assert policy.drain_over(memory=memory, drained=True, production_need=need) is want


@pytest.mark.parametrize(
    ("current", "proposed", "urgent", "apply", "rule"),
    [
        (2200, 2300, False, False, "worth_a_step"),  # +4.5 %
        (2000, 2100, False, False, "worth_a_step"),  # +5 %: not more
        (2000, 2200, False, False, "pending_up: waiting"),  # +10 %: the pending period
        (2200, 2300, True, True, "urgent"),  # urgent ones always go
    ],
)
def test_a_small_scale_up_waits_unless_urgent(
    current: int, proposed: int, urgent: bool, apply: bool, rule: str
) -> None:
    state = ScalingState(status=RUNNING, since=ago(1000), memory=Memory())
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=1,
            current_cpu_m=current,
            proposed_cpu_m=proposed,
            lagging=urgent,
            urgent=urgent,
            drained=True,
            cpu_shortage_m=0,
            now=NOW,
        ),
        knobs=KNOBS,
    )
    assert verdict.apply is apply
    assert verdict.rule.startswith(rule)


@pytest.mark.parametrize(
    ("current", "proposed", "emptied", "apply", "rule"),
    [
        (3600, 3400, True, True, "drain_over"),  # saves 5.6 %: beyond HYSTERESIS is enough
        (3600, 3450, True, False, "beyond_band"),  # 4.2 %
        (3600, 3400, False, False, "beyond_band"),  # not empty yet: its restart would add λR
    ],
)
def test_the_end_of_a_drain_needs_an_empty_backlog_and_saves_beyond_hysteresis(
    current: int, proposed: int, emptied: bool, apply: bool, rule: str
) -> None:
    memory = Memory(resized_at=ago(300), for_backlog=True, up_need=6667)
    state = ScalingState(status=RUNNING, since=ago(300), memory=memory)
    situation = policy.Situation(
        state=state,
        comparison=-1,
        current_cpu_m=current,
        proposed_cpu_m=proposed,
        lagging=False,
        urgent=False,
        drained=True,
        cpu_shortage_m=0,
        now=NOW,
        emptied=emptied,
        production_need=6667.0,
    )
    verdict = policy.decide(situation, knobs=KNOBS)
    assert verdict.apply is apply
    assert verdict.rule.startswith(rule)


@pytest.mark.parametrize("observed", [True, False])
def test_no_size_is_found_short_before_consumption_reflects_it(observed: bool) -> None:
    got = policy.short_for_production(
        consumed=1500.0,
        produced=3000.0,
        drained=False,
        production_need=3300.0,
        backlog_need=100.0,
        observed=observed,
    )
    assert got is observed


@pytest.mark.parametrize(
    ("u", "R", "T", "want"),
    [
        (0.95, 30.0, 300.0, (1 / 0.95) / 1.1),  # Recreate: the restart term is larger
        (0.95, 60.0, 300.0, (1 / 0.95) / 1.2),
        (0.95, 5.0, 300.0, 1.0),  # in place: the headroom is larger, nothing changes
        (0.9, 30.0, 300.0, 1.0),  # 1/u = 1.11 > 1.1
        (0.95, 30.0, 1.0, (1 / 0.95) / 31),  # T below a second reads as one
    ],
)
def test_the_headroom_alone_decides_a_scale_up(u: float, R: float, T: float, want: float) -> None:
    assert policy.headroom_share(utilization=u, actuation_s=R, recovery_s=T) == pytest.approx(want)


@given(
    u=st.floats(0.1, 1.0),
    R=st.floats(0.0, 3600.0),
    T=st.floats(1.0, 86_400.0),
    lam=st.floats(0.0, 1e9),
)
def test_the_trigger_is_the_headroom_need_and_never_more_than_the_size(
    u: float, R: float, T: float, lam: float
) -> None:
    share = policy.headroom_share(utilization=u, actuation_s=R, recovery_s=T)
    need = max(lam / u, lam * (1 + R / T))
    assert 0 < share <= 1
    assert need * share == pytest.approx(lam / u, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("u", "R", "T", "keeping_up", "want"),
    [
        (0.9, 5.0, 300.0, True, 0.9 / 1.1),  # in place, keeping up: λ past the request by 10 %
        (0.95, 5.0, 300.0, True, 0.95 / 1.1),
        (0.9, 5.0, 300.0, False, 1.0),  # behind: the headroom trigger itself
        (0.9, 30.0, 300.0, True, 1.0),  # Recreate: a guarantee costs a restart
        (0.9, 15.0, 300.0, True, 1.0),  # R/T = 5 %: a restart's worth, as Recreate
        (0.9, 14.0, 300.0, True, 0.9 / 1.1),  # R/T just below 5 %
    ],
)
def test_in_place_an_instance_that_keeps_up_asks_for_a_scale_up_past_its_request(
    u: float, R: float, T: float, keeping_up: bool, want: float
) -> None:
    got = policy.ride_share(utilization=u, actuation_s=R, recovery_s=T, keeping_up=keeping_up)
    assert got == pytest.approx(want)


@given(u=st.floats(0.1, 1.0), lam=st.floats(1.0, 1e9))
def test_riding_asks_for_a_scale_up_only_past_the_lending_margin(u: float, lam: float) -> None:
    """λ/u scaled by ``ride_share`` is λ/(1 + 2·HYSTERESIS): a request that gives
    what it asks for has been passed by more than ``lends`` needs to see lending."""
    share = policy.ride_share(utilization=u, actuation_s=5.0, recovery_s=300.0, keeping_up=True)
    asks = lam / u * share
    assert asks * (1 + policy.HYSTERESIS) < lam
    assert asks <= lam / u


@pytest.mark.parametrize(
    ("consumed", "cpu_m", "rate_per_core", "want"),
    [
        (2400.0, 1100, 2000.0, True),  # 2200/s is what the request gives; +9 %
        (2310.0, 1100, 2000.0, False),  # +5 %: rounding and rate() noise, no evidence
        (2200.0, 1100, 2000.0, False),  # what the request gives: a busy node looks so
        (2400.0, 0, 2000.0, False),  # no request known
        (2400.0, 1100, 0.0, False),
    ],
)
def test_lends_when_consuming_beyond_what_the_request_gives(
    consumed: float, cpu_m: int, rate_per_core: float, want: bool
) -> None:
    assert policy.lends(consumed=consumed, cpu_m=cpu_m, rate_per_core=rate_per_core) is want


@pytest.mark.parametrize(
    ("lent", "trigger", "limit_m", "want"),
    [
        (True, 3000.0, 2000, True),  # the 2-core limit gives 4000/s
        (True, 4000.0, 2000, True),  # exactly what the limit gives
        (True, 4100.0, 2000, False),  # beyond the limit: lending cannot cover it
        (True, 9000.0, 0, True),  # no limit
        (False, 3000.0, 2000, False),  # never seen lending
    ],
)
def test_bursting_holds_a_scale_up_within_the_limit_in_either_update_mode(
    lent: bool, trigger: float, limit_m: int, want: bool
) -> None:
    """In place too (it was Recreate only): the request is what is paid for."""
    got = policy.bursting(lent=lent, trigger=trigger, limit_m=limit_m, rate_per_core=2000.0)
    assert got is want


@pytest.mark.parametrize(
    ("bursting", "urgent", "apply", "rule"),
    [
        (True, False, False, "bursting"),  # a guarantee is not worth a restart
        (True, True, True, "urgent"),  # the node got busy: the lag grows
        (False, False, False, "pending_up: waiting"),
    ],
)
def test_a_scale_up_waits_while_the_node_lends_cpu_unless_urgent(
    bursting: bool, urgent: bool, apply: bool, rule: str
) -> None:
    state = ScalingState(status=RUNNING, since=ago(1000), memory=Memory(resized_at=ago(1000)))
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=1,
            current_cpu_m=1100,
            proposed_cpu_m=1400,
            lagging=urgent,
            urgent=urgent,
            drained=not urgent,
            cpu_shortage_m=0,
            now=NOW,
            bursting=bursting,
        ),
        knobs=KNOBS,
    )
    assert verdict.apply is apply
    assert verdict.rule.startswith(rule)


@pytest.mark.parametrize(
    ("actuation_s", "lam", "backlog", "want_rate", "want_down"),
    [
        # Recreate: sized for λ/u + backlog, not λ(1 + R/T) + backlog.
        (30.0, 2040.0, 0.0, 2244, 2148),
        (30.0, 2040.0, 2040.0 * 30 + 60_000, 2444, 2348),  # a backlog beyond λ·R: its term too
        (5.0, 2040.0, 0.0, 2148, 2148),  # in place the headroom is the larger term: the same
    ],
)
def test_a_scale_down_is_sized_for_the_headroom_and_says_so(
    actuation_s: float, lam: float, backlog: float, want_rate: int, want_down: int
) -> None:
    autoscaling = Autoscaling(
        rate_per_core=2000,
        ram_per_core_b=2**28,
        recovery_s=300.0,
        tolerable_lag_s=60.0,
        min_sync_period_s=30.0,
        predictor=Predictor.ADAPTIVE,
        actuation_s=actuation_s,
    )
    snapshot = MetricsSnapshot(
        production=MappingProxyType({0: lam}),
        consumption=MappingProxyType({0: lam}),
        offset=MappingProxyType({0: backlog}),
    )
    sized = policy.size(
        snapshot=snapshot, partitions=[0], autoscaling=autoscaling, memory=None, now=NOW
    )
    assert (sized.rate, sized.down_rate) == (want_rate, want_down)
    text = policy.explain(
        sized=sized, autoscaling=autoscaling, cpu_m=1100, rule="pending_down", down=True
    )
    assert ("(scale down to lambda/u+backlog=" in text) is (want_down < want_rate)


@pytest.mark.parametrize(
    ("banded", "apply", "rule"),
    [
        # Sized with the restart term it would keep 1200m of 1300m: within the 15 % band.
        (1200, False, "beyond_band"),
        (1000, True, "pending_down: needed less"),  # the restart term saves enough: it goes
        (0, True, "pending_down: needed less"),  # nothing else known: the proposal decides
    ],
)
def test_under_recreate_the_restart_term_decides_a_scale_down_the_headroom_sizes_it(
    banded: int, apply: bool, rule: str
) -> None:
    """Under Recreate a scale-down goes to λ/u (``Sized.down_rate``, here 1100m) but
    is decided by the CPU the restart term keeps (``banded_cpu_m``): a scale-up for
    a rise of a few %, sized for its restart, is not given back as soon as it passes."""
    memory = Memory(resized_at=ago(1200))
    state = ScalingState(status=PSD, since=ago(1200), memory=memory)
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=-1,
            current_cpu_m=1300,
            proposed_cpu_m=1100,
            lagging=False,
            urgent=False,
            drained=True,
            cpu_shortage_m=0,
            now=NOW,
            banded_cpu_m=banded,
        ),
        knobs=KNOBS,
    )
    assert verdict.apply is apply
    assert verdict.rule.startswith(rule)


IN_PLACE = replace(KNOBS, actuation_s=5.0)

# status, seconds in it, spike, urgent -> apply, next status, rule, sized for this pass
SPIKES = [
    # only the held peak asks: the pending period starts again
    (RUNNING, 1000, True, False, False, RUNNING, "spike", False),
    (PSU, 60, True, False, False, RUNNING, "spike", False),
    (PSU, 1000, True, False, False, RUNNING, "spike", False),
    # urgent goes, sized for the held peak
    (PSU, 10, True, True, True, RUNNING, "urgent", False),
    # the need of this pass asks too: the pending period counts, and its scale-up is
    # sized for that need
    (RUNNING, 1000, False, False, False, PSU, "pending_up: waiting", False),
    (PSU, 119, False, False, False, PSU, "pending_up: waiting", False),
    (PSU, 120, False, False, True, RUNNING, "pending_up: needed", True),
    (PSU, 10, False, True, True, RUNNING, "urgent", False),
]
# Under Recreate the held peak decides and sizes (``resizes_cheaply``).
SPIKES_RECREATE = [
    (RUNNING, 1000, True, False, False, PSU, "pending_up: waiting", False),
    (PSU, 120, True, False, True, RUNNING, "pending_up: needed", False),
    (PSU, 120, False, False, True, RUNNING, "pending_up: needed", False),
]


@pytest.mark.parametrize(
    (
        "knobs",
        "status",
        "in_status",
        "spike",
        "urgent",
        "apply",
        "next_status",
        "rule",
        "now_sized",
    ),
    [(IN_PLACE, *row) for row in SPIKES] + [(KNOBS, *row) for row in SPIKES_RECREATE],
)
def test_in_place_a_scale_up_only_the_held_peak_asks_for_waits_and_is_then_sized_for_now(
    knobs: policy.Knobs,
    status: ScalingStatus,
    in_status: float,
    spike: bool,
    urgent: bool,
    apply: bool,
    next_status: ScalingStatus,
    rule: str,
    now_sized: bool,
) -> None:
    state = ScalingState(status=status, since=ago(in_status), memory=Memory(resized_at=ago(1000)))
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=1,
            current_cpu_m=1100,
            proposed_cpu_m=1400,
            lagging=urgent,
            urgent=urgent,
            drained=not urgent,
            cpu_shortage_m=0,
            now=NOW,
            spike=spike,
        ),
        knobs=knobs,
    )
    assert (verdict.apply, verdict.state.status) == (apply, next_status)
    assert verdict.rule.startswith(rule)
    assert verdict.now_sized is now_sized


@pytest.mark.parametrize(("knobs", "now_sized"), [(IN_PLACE, True), (KNOBS, False)])
def test_in_place_a_scale_up_without_a_pending_period_is_sized_for_this_pass(
    knobs: policy.Knobs, now_sized: bool
) -> None:
    state = ScalingState(status=RUNNING, since=ago(1000), memory=Memory(resized_at=ago(1000)))
    verdict = policy.decide(
        policy.Situation(
            state=state,
            comparison=1,
            current_cpu_m=1100,
            proposed_cpu_m=1400,
            lagging=False,
            urgent=False,
            drained=True,
            cpu_shortage_m=0,
            now=NOW,
        ),
        knobs=replace(knobs, pending_up_s=0.0),
    )
    assert (verdict.apply, verdict.rule, verdict.now_sized) == (True, "pending_up: 0s", now_sized)


@pytest.mark.parametrize(
    ("actuation_s", "held", "lam", "want_now_asks", "want_now_up", "want_up"),
    [
        # u = 0.9; the held peak (a production need) is 3000/s
        (30.0, 3000, 2000.0, 2223, 2223, 3000),  # Recreate: λ/u asks and sizes
        # in place, keeping up (``ride_share``): λ/1.1 of this pass asks; λ/u sizes it
        (5.0, 3000, 2000.0, 1819, 2223, 3000),
        (30.0, 0, 2000.0, 2223, 2223, 2223),  # nothing held: the same as the held sizes
    ],
)
def test_the_need_of_this_pass_is_sized_without_the_held_peak(
    actuation_s: float, held: int, lam: float, want_now_asks: int, want_now_up: int, want_up: int
) -> None:
    autoscaling = Autoscaling(
        rate_per_core=2000,
        ram_per_core_b=2**28,
        recovery_s=300.0,
        tolerable_lag_s=60.0,
        min_sync_period_s=30.0,
        predictor=Predictor.ADAPTIVE,
        actuation_s=actuation_s,
        target_utilization=0.9,
    )
    memory = Memory(peak_rate=held, peak_at=NOW - timedelta(seconds=10)) if held else None
    sized = policy.size(
        snapshot=snap({0: lam}, {0: lam}, {0: 0.0}),
        partitions=[0],
        autoscaling=autoscaling,
        memory=memory,
        now=NOW,
    )
    assert (sized.now_asks, sized.now_up_rate, sized.up_rate) == (
        want_now_asks,
        want_now_up,
        want_up,
    )
    assert sized.now_asks <= sized.asks
    text = policy.explain(
        sized=sized, autoscaling=autoscaling, cpu_m=1200, rule="pending_up", up=True, now_sized=True
    )
    assert ("sized for this pass's need" in text) is (want_now_up < want_up)


@given(
    lam=st.floats(0.0, 1e7),
    held=st.integers(0, 10**8),
    backlog=st.floats(0.0, 1e9),
    R=st.sampled_from([5.0, 30.0, 120.0]),
)
def test_the_need_of_this_pass_never_asks_or_sizes_more_than_the_held_peak(
    lam: float, held: int, backlog: float, R: float
) -> None:
    autoscaling = Autoscaling(
        rate_per_core=2000,
        ram_per_core_b=2**28,
        recovery_s=300.0,
        tolerable_lag_s=60.0,
        min_sync_period_s=30.0,
        predictor=Predictor.ADAPTIVE,
        actuation_s=R,
    )
    memory = Memory(peak_rate=held, peak_at=NOW - timedelta(seconds=10))
    sized = policy.size(
        snapshot=snap({0: lam}, {0: lam}, {0: backlog}),
        partitions=[0],
        autoscaling=autoscaling,
        memory=memory,
        now=NOW,
    )
    assert 0 <= sized.now_asks <= sized.asks
    assert 0 <= sized.now_up_rate <= sized.up_rate


@given(
    recovery=st.floats(min_value=0, max_value=1e5),
    actuation=st.floats(min_value=0, max_value=600),
    utilization=st.floats(min_value=0.05, max_value=1.0),
    tolerable=st.one_of(st.none(), st.floats(min_value=0, max_value=1e4)),
)
def test_the_knobs_of_an_autoscaling_are_its_fields_found_once_per_object(
    recovery: float, actuation: float, utilization: float, tolerable: float | None
) -> None:
    a = Autoscaling(
        rate_per_core=1000,
        ram_per_core_b=10**9,
        recovery_s=recovery,
        actuation_s=actuation,
        target_utilization=utilization,
        tolerable_lag_s=tolerable,
        predictor=Predictor.ADAPTIVE,
    )
    want = policy.Knobs(
        utilization=utilization,
        actuation_s=actuation,
        recovery_s=max(1.0, recovery),
        tolerable_lag_s=tolerable,
        min_sync_s=a.min_sync_period_s,
        pending_up_s=a.pending_up_s,
        pending_down_s=a.pending_down_s,
    )
    knobs = policy.knobs_for(a)
    assert knobs == want
    assert policy.knobs_for(a) is knobs
    # Another object (a changed spec, or a learned rate) is read, not matched by id.
    changed = replace(a, pending_up_s=a.pending_up_s + 1)
    assert policy.knobs_for(changed) == replace(want, pending_up_s=a.pending_up_s + 1)
    assert policy.knobs_for(a) == want
