"""``policy.room``: in place, an instance behind by less than half of ``tolerableLag``,
consuming what its request gives, rides as one that keeps up (``ride_share``).

Table-driven: which lags and consumptions have room, and which sizes ride on it. In
virtual time, through the operator's pipeline (one instance of 2 partitions, in place,
u 0.95, ratePerCore 2000, tolerableLag 1 m, pendingScaleUp 2 m, a pass every 31 s, a
contended node: each partition consumes what the request gives, at most its production
and backlog): minutes of production above the request but within ``RIDE_MARGIN`` leave
a lag of a few seconds and buy no CPU; a step up right after a scale-down (the hostile
case: the instance just sized small, the rise within the ride margin, so only the lag
can ask) is scaled up once the lag passes the room, by the headroom after
``pendingScaleUpDuration``, with the lag under ``tolerableLag`` throughout.
"""

from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.adaptive import policy
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.specs import Autoscaling, Predictor
from konsumerator.simulating import Replay

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def snap(
    production: dict[int, float], consumption: dict[int, float], offset: dict[int, float]
) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType(production),
        consumption=MappingProxyType(consumption),
        offset=MappingProxyType(offset),
    )


# production, consumption, behind (msg), msg/s the request gives, tolerableLag -> room
ROOMS = [
    # 5.5 s behind, consuming all the request gives (2200/s): a minute above it
    ({0: 1100.0, 1: 1100.0}, {0: 1100.0, 1: 1100.0}, {0: 6000.0, 1: 0.0}, 2200.0, 60.0, True),
    # 30 s behind: at the room's edge, still within
    ({0: 1100.0, 1: 1100.0}, {0: 1100.0, 1: 1100.0}, {0: 33000.0, 1: 0.0}, 2200.0, 60.0, True),
    # 31 s on one partition: beyond half of tolerableLag, the headroom decides
    ({0: 1100.0, 1: 1100.0}, {0: 1100.0, 1: 1100.0}, {0: 0.0, 1: 34100.0}, 2200.0, 60.0, False),
    # consumers slower than ratePerCore says (0.8 of the request): no room
    ({0: 1050.0, 1: 1050.0}, {0: 880.0, 1: 880.0}, {0: 6000.0, 1: 0.0}, 2200.0, 60.0, False),
    # 95 % of what the request gives: rounding and rate() noise, room
    ({0: 1100.0, 1: 1100.0}, {0: 1045.0, 1: 1045.0}, {0: 6000.0, 1: 0.0}, 2200.0, 60.0, True),
    ({0: 1100.0, 1: 1100.0}, {0: 1040.0, 1: 1040.0}, {0: 6000.0, 1: 0.0}, 2200.0, 60.0, False),
    # production below the request, all of it consumed (a backlog left by a spike drains)
    ({0: 1000.0, 1: 1000.0}, {0: 1000.0, 1: 1000.0}, {0: 6000.0, 1: 0.0}, 2400.0, 60.0, True),
    # a partition without production reads as no lag (``urgent`` reads it so too)
    ({0: 1100.0, 1: 0.0}, {0: 1100.0, 1: 0.0}, {0: 6000.0, 1: 90000.0}, 1100.0, 60.0, True),
    # no consumption sample: consuming nothing, no room
    ({0: 1100.0, 1: 1100.0}, {}, {0: 6000.0, 1: 0.0}, 2200.0, 60.0, False),
    # no tolerableLag: nothing says how much lag is fine
    ({0: 1100.0, 1: 1100.0}, {0: 1100.0, 1: 1100.0}, {0: 6000.0, 1: 0.0}, 2200.0, None, False),
    ({0: 1100.0, 1: 1100.0}, {0: 1100.0, 1: 1100.0}, {0: 6000.0, 1: 0.0}, 2200.0, 0.0, False),
]


@pytest.mark.parametrize(
    ("production", "consumption", "offset", "request_rate", "tolerable", "want"), ROOMS
)
def test_room_is_a_lag_within_half_of_tolerable_lag_while_consuming_the_request(
    production: dict[int, float],
    consumption: dict[int, float],
    offset: dict[int, float],
    request_rate: float,
    tolerable: float | None,
    want: bool,
) -> None:
    got = policy.room(
        snapshot=snap(production, consumption, offset),
        partitions=[0, 1],
        tolerable_lag_s=tolerable,
        request_rate=request_rate,
    )
    assert got is want


def _autoscaling(actuation_s: float) -> Autoscaling:
    return Autoscaling(
        rate_per_core=2000,
        ram_per_core_b=2**28,
        recovery_s=300.0,
        tolerable_lag_s=60.0,
        min_sync_period_s=30.0,
        predictor=Predictor.ADAPTIVE,
        actuation_s=actuation_s,
        target_utilization=0.95,
    )


# R, behind (msg, each partition), msg/s the request gives -> rides on its room
SIZES = [
    (5.0, 6000.0, 2200.0, True),  # in place, 5.5 s behind: rides
    (5.0, 40000.0, 2200.0, False),  # 36 s behind: the headroom asks
    (30.0, 6000.0, 2200.0, False),  # Recreate: a scale-up's guarantee costs a restart
    (5.0, 6000.0, None, False),  # the request unknown (a creation)
]


@pytest.mark.parametrize(("actuation_s", "behind", "request_rate", "rides"), SIZES)
def test_an_in_place_instance_within_its_room_asks_at_the_ride_level(
    actuation_s: float, behind: float, request_rate: float | None, rides: bool
) -> None:
    """1100/s each, consuming 1100/s each: λ/u = 2316/s is beyond what 1100m gives
    (2200/s), λ/1.1 = 2000/s is not."""
    sized = policy.size(
        snapshot=snap({0: 1100.0, 1: 1100.0}, {0: 1100.0, 1: 1100.0}, {0: behind, 1: behind}),
        partitions=[0, 1],
        autoscaling=_autoscaling(actuation_s),
        memory=None,
        now=NOW,
        request_rate=request_rate,
    )
    assert (sized.room, sized.asks < sized.trigger) == (rides, rides)
    assert (sized.asks <= 2200) is rides
    text = policy.explain(sized=sized, autoscaling=_autoscaling(actuation_s), cpu_m=1100, rule="x")
    assert ("lag within 0.5*tolerableLag" in text) is rides


# -- in virtual time, through the pipeline --------------------------------------------

IN_PLACE = ConsumerBuilder(
    per_instance=2,
    target_utilization_percent=95,
    restart_time="30s",
    update_mode="InPlaceOrRecreate",
)
STEP_S = 31.0
TOLERABLE_S = 60.0


class Contended:
    """One instance on a busy node: each partition consumes what the request gives
    (ratePerCore 2000, shared by its 2 partitions), at most its production and backlog."""

    def __init__(self) -> None:
        self.replay: Replay = IN_PLACE.replay()
        self.backlog = 0.0  # per partition
        self.cpus: list[int] = []
        self.lags: list[float] = []

    def cpu(self) -> int:
        (d,) = self.replay.cluster.observed()
        return d.current["consumer"].cpu_req_m or 0

    def decision(self) -> str:
        (d,) = self.replay.cluster.observed()
        return d.annotations[keys.SCALING_DECISION]

    def step(self, lam: float) -> int:
        capacity = self.cpu() / 1000 * 2000 / 2 if self.cpus else lam
        consumed = min(capacity, lam + self.backlog / STEP_S)
        self.backlog = max(0.0, self.backlog + (lam - consumed) * STEP_S)
        self.lags.append(self.backlog / lam)
        self.replay.step(
            advance_s=STEP_S,
            metrics=MetricsSnapshot(
                production=MappingProxyType({0: lam, 1: lam}),
                consumption=MappingProxyType({0: consumed, 1: consumed}),
                offset=MappingProxyType({0: self.backlog, 1: self.backlog}),
            ),
        )
        self.cpus.append(self.cpu())
        return self.cpus[-1]


def test_in_place_minutes_above_the_request_within_the_ride_margin_buy_no_cpu() -> None:
    """1100m gives 2200/s. Eight passes (4 minutes) at 1180/s each, 7 % above it, then
    eight at 1000/s, four times: the lag reaches 16 s and drains. λ/u of the high
    passes (2484/s, plus the backlog's drain) asked for 1300m after
    pendingScaleUpDuration, kept 30 minutes (``after_up``); within the room the ride
    level (2·1180/1.1 = 2145/s) fits the request, and nothing is resized."""
    run = Contended()
    assert run.step(1000.0) == 1100
    for _ in range(4):
        for lam in [1180.0] * 8 + [1000.0] * 8:
            run.step(lam)
    assert max(run.lags) > 10.0  # behind by more than λ·R, where the room decides
    assert max(run.lags) < TOLERABLE_S * policy.ROOM
    assert set(run.cpus) == {1100}
    run.replay.close()


@pytest.mark.parametrize("step_to", [1200.0, 1300.0])
def test_in_place_a_step_up_right_after_a_scale_down_is_scaled_up_in_time(
    step_to: float,
) -> None:
    """The hostile case. 36 quiet minutes at 1000/s each, a 10-minute burst at 1400/s
    (a scale-up), back to 1000/s until the scale-down returns to 1100m (the isolated
    rise is over), then at once a step up. At 1200/s each (9 % above what 1100m gives,
    within the ride margin, so only the lag can ask) the lag grows 2.6 s a pass: past
    the room (30 s) the headroom decides again and the scale-up goes after
    pendingScaleUpDuration, not as late as ``urgent`` (50 s of lag); at 1300/s the
    ride level asks at once. The lag stays under tolerableLag throughout."""
    run = Contended()
    for _ in range(70):
        run.step(1000.0)
    for _ in range(20):
        run.step(1400.0)
    assert max(run.cpus) > 1100
    for _ in range(120):
        if run.step(1000.0) == 1100 and run.cpus[-2] > 1100:
            break
    assert run.cpus[-1] == 1100, run.cpus[-5:]
    assert run.cpus[-2] > 1100, run.cpus[-5:]
    stepped = len(run.cpus)
    for _ in range(40):
        if run.step(step_to) > 1100:
            break
    assert run.cpus[-1] > 1100, run.cpus[stepped:]
    assert "rule pending_up" in run.decision()
    assert max(run.lags[stepped:]) < TOLERABLE_S - 10.0
    for _ in range(20):
        run.step(step_to)
    assert max(run.lags) < TOLERABLE_S
    assert run.lags[-1] < 5.0  # drained at the new size
    run.replay.close()


def test_recreate_has_no_room() -> None:
    """Under Recreate a scale-up restarts the pods: the lag beyond λ·R keeps asking at
    λ/u (the same minutes above the request as above scale up)."""
    recreate = replace(IN_PLACE, update_mode="Recreate")
    run = Contended()
    run.replay.close()
    run.replay = recreate.replay()
    run.step(1000.0)
    for _ in range(2):
        for lam in [1180.0] * 8 + [1000.0] * 8:
            run.step(lam)
    assert max(run.cpus) > 1100
