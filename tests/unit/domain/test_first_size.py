"""The first size from metrics of an instance created without them (``scaling.unsized``).

An instance created while Prometheus had no answer is sized from the fallback
(here ``minAllowed``) and written with no ``scaling-status-change`` time. Its
first metrics-based size is taken at once, without ``pendingScaleUpDuration``
(or ``...Down``), by either predictor; the resize stamps the time, so the next
one waits as usual (Prometheus flapping between no answer and an answer cannot
make a resize storm). The mark is on the Deployment: a restarted operator
reads it back. Each predictor still decides whether it wants a resize at all:
naive scales up only while lagging (as the Go operator did).
"""

from datetime import UTC, datetime, timedelta

import pytest

from konsumerator.domain.scaling import ScalingState, ScalingStatus, decide, stamped, unsized

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EARLIER = T0 - timedelta(seconds=10)
RUNNING = ScalingStatus.RUNNING
SATURATED = ScalingStatus.SATURATED
PSU = ScalingStatus.PENDING_SCALE_UP
PSD = ScalingStatus.PENDING_SCALE_DOWN


@pytest.mark.parametrize(
    ("status", "since", "expected"),
    [
        (RUNNING, None, True),  # created from the fallback
        (RUNNING, EARLIER, False),  # sized from metrics (or created with them)
        (SATURATED, None, False),  # only a pass with metrics says SATURATED
        (PSU, None, False),  # pending: its own rule (no time = long ago)
        (PSD, None, False),
    ],
)
def test_unsized_is_running_without_a_time(
    status: ScalingStatus, since: datetime | None, expected: bool
) -> None:
    assert unsized(ScalingState(status=status, since=since)) is expected


@pytest.mark.parametrize(
    ("since", "comparison", "lagging", "apply", "status", "since_after"),
    [
        # Never sized from metrics: the first size is applied at once, either way, and
        # the time is stamped, so the next resize waits.
        (None, 1, True, True, RUNNING, T0),
        (None, -1, False, True, RUNNING, T0),
        # The metrics ask for the size it has: it is theirs now (stamped, nothing applied).
        (None, 0, False, False, RUNNING, T0),
        # Naive wants no resize (no scale-up without lag, no scale-down while lagging): a
        # decision from metrics all the same, stamped, so a lag that comes minutes later
        # waits pendingScaleUpDuration as for any instance.
        (None, 1, False, False, RUNNING, T0),
        (None, -1, True, False, RUNNING, T0),
        # Sized from metrics before: the pending periods, as always.
        (EARLIER, 1, True, False, PSU, T0),
        (EARLIER, -1, False, False, PSD, T0),
        (EARLIER, 0, False, False, RUNNING, EARLIER),
    ],
)
def test_decide_applies_the_first_size_from_metrics_at_once(
    since: datetime | None,
    comparison: int,
    lagging: bool,
    apply: bool,
    status: ScalingStatus,
    since_after: datetime | None,
) -> None:
    decision = decide(
        state=ScalingState(status=RUNNING, since=since),
        comparison=comparison,
        lagging=lagging,
        cpu_shortage_m=0,
        now=T0,
        pending_up_s=120,
        pending_down_s=600,
    )
    assert (decision.apply, decision.state.status) == (apply, status)
    assert decision.state.since == since_after


def test_stamped_keeps_a_time_it_has() -> None:
    state = ScalingState(status=RUNNING, since=EARLIER)
    assert stamped(state, now=T0) is state
    assert stamped(ScalingState(status=RUNNING, since=None), now=T0).since == T0
