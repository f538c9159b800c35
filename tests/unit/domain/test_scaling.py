"""The scaling state machine, ``scaling.decide``.

Aspects tested:

* The full transition table (status × comparison × lagging × shortage ×
  pending period elapsed) of Go's ``estimateDeploy`` (lwolf/konsumerator
  ``controllers/operator.go``), with the deliberate differences (numbered
  rows of docs/compatibility.md):
  - 11: Gt + lagging in PENDING_SCALE_DOWN moves to PENDING_SCALE_UP (Go had
    no branch and stayed stuck);
  - 12: a pending duration of 0 applies on the first observation (Go never
    applied);
  - 9: SATURATED only while lagging (Go kept Gt + not lagging SATURATED while
    a shortage remained).
* Timestamps: ``since`` changes only when the status changes; a missing
  timestamp reads as "infinitely long ago", and so does one far ahead of the clock, but
  for a pending scale-down's, whose wait starts again now.
* ``ScalingStatus.parse`` of annotation values.
* Sequences in virtual time: scale-up waits for pendingScaleUpDuration,
  scale-down for pendingScaleDownDuration, a need that goes away restarts the
  timer, and the durations are measured from the status change.
"""

from datetime import UTC, datetime, timedelta

import pytest

from konsumerator.domain.scaling import Decision, ScalingState, ScalingStatus, decide

RUNNING = ScalingStatus.RUNNING
SATURATED = ScalingStatus.SATURATED
PSU = ScalingStatus.PENDING_SCALE_UP
PSD = ScalingStatus.PENDING_SCALE_DOWN

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
UP_S = 300.0
DOWN_S = 900.0
LONG_AGO = NOW - timedelta(seconds=1000)  # beyond both pending periods
RECENT = NOW - timedelta(seconds=10)  # within both


def run(status, comparison, lagging, shortage, since, *, up=UP_S, down=DOWN_S) -> Decision:
    return decide(
        state=ScalingState(status=status, since=since),
        comparison=comparison,
        lagging=lagging,
        cpu_shortage_m=shortage,
        now=NOW,
        pending_up_s=up,
        pending_down_s=down,
    )


ALL = (RUNNING, SATURATED, PSU, PSD)

# (status, comparison, lagging, shortage, since) -> (apply, new status)
TABLE = [
    # Eq: settle; SATURATED only while lagging with a shortage.
    *[(s, 0, False, sh, RECENT, False, RUNNING) for s in ALL for sh in (0, 100)],
    *[(s, 0, True, 0, RECENT, False, RUNNING) for s in ALL],
    *[(s, 0, True, 100, RECENT, False, SATURATED) for s in ALL],
    # Gt, not lagging: RUNNING, even from SATURATED with a shortage (difference 9).
    *[(s, 1, False, sh, RECENT, False, RUNNING) for s in ALL for sh in (0, 100)],
    # Gt, lagging.
    (RUNNING, 1, True, 0, RECENT, False, PSU),
    (RUNNING, 1, True, 100, RECENT, False, PSU),
    (PSD, 1, True, 0, RECENT, False, PSU),  # difference 11: Go stayed stuck
    (PSD, 1, True, 0, LONG_AGO, False, PSU),
    (PSU, 1, True, 0, RECENT, False, PSU),  # waiting
    (PSU, 1, True, 0, LONG_AGO, True, RUNNING),  # scale up
    (PSU, 1, True, 100, LONG_AGO, True, SATURATED),  # scale up, still cut
    (PSU, 1, True, 0, None, True, RUNNING),  # no timestamp: infinitely long ago
    (SATURATED, 1, True, 100, RECENT, False, SATURATED),
    (SATURATED, 1, True, 100, LONG_AGO, False, SATURATED),
    (SATURATED, 1, True, 0, RECENT, False, RUNNING),  # the cut is gone
    # Lt, lagging: settle, never scale down while lagging.
    *[(s, -1, True, 0, LONG_AGO, False, RUNNING) for s in ALL],
    *[(s, -1, True, 100, LONG_AGO, False, SATURATED) for s in ALL],
    # Lt, not lagging.
    (RUNNING, -1, False, 0, LONG_AGO, False, PSD),
    (SATURATED, -1, False, 100, LONG_AGO, False, PSD),
    (PSU, -1, False, 0, LONG_AGO, False, PSD),
    (PSD, -1, False, 0, RECENT, False, PSD),  # waiting
    (PSD, -1, False, 0, LONG_AGO, True, RUNNING),  # scale down
    (PSD, -1, False, 100, LONG_AGO, True, RUNNING),  # not lagging: never SATURATED
    (PSD, -1, False, 0, None, True, RUNNING),
]


@pytest.mark.parametrize(
    ("status", "comparison", "lagging", "shortage", "since", "apply", "new_status"),
    TABLE,
    ids=[
        f"{r[0].name}-{'gt' if r[1] > 0 else 'lt' if r[1] < 0 else 'eq'}-"
        f"{'lag' if r[2] else 'nolag'}-short{r[3]}-"
        f"{'none' if r[4] is None else 'old' if r[4] == LONG_AGO else 'recent'}"
        for r in TABLE
    ],
)
def test_transition_table(status, comparison, lagging, shortage, since, apply, new_status):
    decision = run(status, comparison, lagging, shortage, since)
    assert decision.apply is apply
    assert decision.state.status is new_status
    # The timestamp moves exactly when the status changes.
    expected_since = since if new_status is status else NOW
    assert decision.state.since == expected_since


@pytest.mark.parametrize("status", [RUNNING, SATURATED, PSD])
def test_zero_pending_up_applies_on_first_observation(status):
    """Difference 12: Go's guard made a 0 duration mean "never"."""
    decision = run(status, 1, True, 0, RECENT, up=0)
    if status is SATURATED:
        # SATURATED with no shortage first settles to RUNNING (no pending phase needed).
        assert decision == Decision(apply=False, state=ScalingState(RUNNING, NOW))
    else:
        assert decision.apply is True
        assert decision.state.status is RUNNING


@pytest.mark.parametrize("status", [RUNNING, SATURATED, PSU])
def test_zero_pending_down_applies_on_first_observation(status):
    decision = run(status, -1, False, 0, RECENT, down=0)
    assert decision.apply is True
    assert decision.state.status is RUNNING


def test_pending_up_with_zero_duration_applies_even_just_entered():
    decision = run(PSU, 1, True, 0, NOW, up=0)
    assert decision.apply is True


# A start more than a minute ahead of the clock (``domain.stamps``): a scale-up does not
# wait for it; a scale-down's pending period starts again now (a failover from a replica
# whose clock ran ahead must not let a dip resize the instance).
AHEAD = NOW + timedelta(days=1)
SLIGHTLY_AHEAD = NOW + timedelta(seconds=30)  # within the skew: reads as now


@pytest.mark.parametrize(
    ("status", "comparison", "since", "apply", "new_since"),
    [
        (PSU, 1, AHEAD, True, AHEAD),
        (PSD, -1, AHEAD, False, NOW),
        (PSU, 1, SLIGHTLY_AHEAD, False, SLIGHTLY_AHEAD),
        (PSD, -1, SLIGHTLY_AHEAD, False, SLIGHTLY_AHEAD),
    ],
)
def test_a_pending_start_ahead_of_the_clock_never_delays_a_scale_up_nor_rushes_a_scale_down(
    status, comparison, since, apply, new_since
):
    decision = run(status, comparison, comparison > 0, 0, since)
    assert decision.apply is apply
    if not apply:
        assert decision.state == ScalingState(status, new_since)


def test_unchanged_status_keeps_its_timestamp():
    state = ScalingState(status=RUNNING, since=T0)
    decision = decide(
        state=state,
        comparison=0,
        lagging=False,
        cpu_shortage_m=0,
        now=NOW,
        pending_up_s=UP_S,
        pending_down_s=DOWN_S,
    )
    assert decision.state == state


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("RUNNING", RUNNING),
        ("SATURATED", SATURATED),
        ("PENDING_SCALE_UP", PSU),
        ("PENDING_SCALE_DOWN", PSD),
        ("", None),
        ("running", None),
        ("bogus", None),
        (None, None),
    ],
)
def test_status_parse(text, status):
    assert ScalingStatus.parse(text) is status


# --- sequences in virtual time ------------------------------------------------


class Machine:
    """Feeds observations to ``decide`` and keeps the state, like the annotations do."""

    def __init__(self, *, up=UP_S, down=DOWN_S) -> None:
        self.state = ScalingState(status=RUNNING, since=T0)
        self.now = T0
        self.up, self.down = up, down

    def observe(self, *, after_s, comparison, lagging, shortage=0) -> bool:
        self.now += timedelta(seconds=after_s)
        d = decide(
            state=self.state,
            comparison=comparison,
            lagging=lagging,
            cpu_shortage_m=shortage,
            now=self.now,
            pending_up_s=self.up,
            pending_down_s=self.down,
        )
        self.state = d.state
        return d.apply


def test_scale_up_waits_for_pending_period():
    m = Machine()
    assert not m.observe(after_s=60, comparison=1, lagging=True)
    assert m.state == ScalingState(PSU, T0 + timedelta(seconds=60))
    for _ in range(4):  # 4 more minutes: 240s < 300s
        assert not m.observe(after_s=60, comparison=1, lagging=True)
        assert m.state.status is PSU
    assert not m.observe(after_s=59, comparison=1, lagging=True)
    assert m.observe(after_s=1, comparison=1, lagging=True)  # exactly 300s
    assert m.state.status is RUNNING


def test_scale_down_waits_for_pending_period():
    m = Machine()
    assert not m.observe(after_s=60, comparison=-1, lagging=False)
    assert m.state.status is PSD
    assert not m.observe(after_s=899, comparison=-1, lagging=False)
    assert m.observe(after_s=1, comparison=-1, lagging=False)
    assert m.state.status is RUNNING


def test_need_going_away_restarts_the_timer():
    m = Machine()
    m.observe(after_s=0, comparison=1, lagging=True)
    m.observe(after_s=200, comparison=1, lagging=True)
    m.observe(after_s=60, comparison=0, lagging=True)  # caught up: RUNNING again
    assert m.state.status is RUNNING
    assert not m.observe(after_s=60, comparison=1, lagging=True)  # timer restarts here
    assert not m.observe(after_s=299, comparison=1, lagging=True)
    assert m.observe(after_s=1, comparison=1, lagging=True)


def test_lag_returning_during_pending_scale_down_goes_to_pending_scale_up():
    m = Machine()
    m.observe(after_s=0, comparison=-1, lagging=False)
    assert m.state.status is PSD
    assert not m.observe(after_s=60, comparison=1, lagging=True)
    assert m.state.status is PSU
    assert m.observe(after_s=300, comparison=1, lagging=True)


def test_saturated_until_the_lag_is_gone():
    m = Machine()
    m.observe(after_s=0, comparison=1, lagging=True, shortage=500)
    assert m.observe(after_s=300, comparison=1, lagging=True, shortage=500)
    assert m.state.status is SATURATED
    # At the cap, the proposal equals the current size: stays SATURATED.
    assert not m.observe(after_s=60, comparison=0, lagging=True, shortage=800)
    assert m.state.status is SATURATED
    since = m.state.since
    assert not m.observe(after_s=60, comparison=0, lagging=True, shortage=900)
    assert m.state.since == since
    # Lag gone: RUNNING, even if the limits would still cut an estimate.
    assert not m.observe(after_s=60, comparison=0, lagging=False, shortage=900)
    assert m.state.status is RUNNING
