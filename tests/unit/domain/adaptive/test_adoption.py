"""Adopting instances sized before the adaptive predictor (``adaptive.adoption``).

An upgrade flips every Consumer stored without ``predictor`` to ``adaptive`` (the CRD's
default), so the adaptive predictor inherits Deployments sized by ``naive``: production
at ``ratePerCore``, rounded up to ``cpuIncrement``, no headroom. Driven by
``simulating.Replay`` (the operator's own pipeline) in virtual time, ten ``Recreate``
instances (one partition each, consumers doing exactly ``ratePerCore`` per core of
request) run under ``naive`` until steady, then the predictor is switched.

Aspects tested:

* instances that keep up keep their size past ``pendingScaleUpDuration`` (on the old
  code every one of them was restarted in the same pass for headroom alone), and the
  explanation names the rule (``adopted``);
* an adopted instance whose production passes its CPU (falling behind) is scaled up as
  before, sized by the adaptive rules in full (headroom and its restart's backlog), and
  from then on is the adaptive predictor's;
* noise: an adopted instance whose production crosses its CPU on every other sync goes
  ``PENDING_SCALE_UP`` on each crossing and back to running on the next sync that finds
  it under its CPU, and is never restarted (a pending scale-up is cancelled, not left to
  run out);
* an instance the adaptive predictor created keeps the headroom rule (no adoption);
* property: the rate an adopted instance is compared with is never above the adaptive
  one nor below its production, and equals the adaptive one otherwise.
"""

import math
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.adaptive import adoption
from konsumerator.domain.adaptive.demand import Demand, Term
from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.adaptive.policy import EMPTY_S, Sized
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.scaling import ScalingStatus

N = 10
RATE_PER_CORE = 2000
ORDERS = ConsumerBuilder(partitions=N, predictor="naive", rate_per_core=RATE_PER_CORE)
STEP_S = 31.0
# Instance i is sized 500m + 100m·i by naive and produces 99 % of what that gives: it
# keeps up, with less headroom than u = 0.95 asks for (1/u − 1 = 5.3 %).
PRODUCTION = {p: (500 + 100 * p) / 1000 * RATE_PER_CORE * 0.99 for p in range(N)}


class Fleet:
    """The ten instances in closed loop: each consumes what its request gives, at most
    its production plus its backlog; a restarted one consumes nothing for one pass."""

    def __init__(self) -> None:
        self.replay = ORDERS.replay()
        self.production = dict(PRODUCTION)
        self.backlog = dict.fromkeys(range(N), 0.0)
        self.cpu: dict[int, int] = {}
        self.restarts = 0

    def step(self) -> None:
        consumed = {}
        for p, lam in self.production.items():
            capacity = self.cpu.get(p, 0) / 1000 * RATE_PER_CORE if p in self.cpu else lam
            consumed[p] = min(lam + self.backlog[p] / STEP_S, capacity)
            self.backlog[p] = max(0.0, self.backlog[p] + (lam - consumed[p]) * STEP_S)
        self.replay.step(
            advance_s=STEP_S,
            metrics=MetricsSnapshot(
                production=MappingProxyType(dict(self.production)),
                consumption=MappingProxyType(consumed),
                offset=MappingProxyType(dict(self.backlog)),
            ),
        )
        for d in self.replay.cluster.observed():
            p = int(d.name.rsplit("-", 1)[1])
            cpu = d.current["consumer"].cpu_req_m or 0
            if p in self.cpu and cpu != self.cpu[p]:
                self.restarts += 1
                self.backlog[p] += self.production[p] * STEP_S
            self.cpu[p] = cpu

    def switch_to(self, predictor: Literal["adaptive", "naive"]) -> None:
        self.replay.spec = replace(ORDERS, predictor=predictor).load()[1]

    def decision(self, p: int) -> str:
        (d,) = [d for d in self.replay.cluster.observed() if d.name == f"orders-{p}"]
        return d.annotations.get(keys.SCALING_DECISION, "")


def steady_naive_fleet() -> Fleet:
    fleet = Fleet()
    for _ in range(10):
        fleet.step()
    assert fleet.cpu == {p: 500 + 100 * p for p in range(N)}
    fleet.restarts = 0
    return fleet


def test_an_upgrade_restarts_no_instance_that_keeps_up() -> None:
    fleet = steady_naive_fleet()
    fleet.switch_to("adaptive")
    for _ in range(12):  # 6 minutes: three times pendingScaleUpDuration
        fleet.step()
    assert fleet.restarts == 0
    assert fleet.cpu == {p: 500 + 100 * p for p in range(N)}
    assert all(b <= PRODUCTION[p] * 2 for p, b in fleet.backlog.items())
    assert "rule adopted: sized before the adaptive predictor" in fleet.decision(0)


def test_an_adopted_instance_whose_production_passes_its_cpu_is_scaled_up_with_headroom() -> None:
    fleet = steady_naive_fleet()
    fleet.switch_to("adaptive")
    fleet.step()
    fleet.production[3] = 800 / 1000 * RATE_PER_CORE * 1.02  # 1632/s against 800m's 1600/s
    for _ in range(8):
        fleet.step()
    # After pendingScaleUpDuration, sized for λ(1 + R/T) = 1795/s and its restart's
    # backlog: 1813/s -> 907m -> 1000m (naive would have waited for tolerableLag).
    assert fleet.cpu[3] == 1000
    assert "rule pending_up: needed more for pendingScaleUpDuration" in fleet.decision(3)
    assert fleet.restarts == 1
    assert "resizedAt=" in next(
        d.annotations[keys.SCALING_MEMORY]
        for d in fleet.replay.cluster.observed()
        if d.name == "orders-3"
    )
    assert {p: c for p, c in fleet.cpu.items() if p != 3} == {
        p: 500 + 100 * p for p in range(N) if p != 3
    }


def _status(fleet: Fleet, p: int) -> str | None:
    (d,) = [d for d in fleet.replay.cluster.observed() if d.name == f"orders-{p}"]
    return d.annotations.get(keys.SCALING_STATUS)


def test_a_noisy_adopted_instance_is_not_restarted_by_a_pending_scale_up_it_left() -> None:
    fleet = steady_naive_fleet()
    fleet.switch_to("adaptive")
    fleet.step()
    cpu_rate = 800 / 1000 * RATE_PER_CORE  # instance 3: 800m gives 1600/s
    statuses = []
    # 6 minutes (three times pendingScaleUpDuration) of production 1 % over, then 1 %
    # under its CPU: every sync refreshes metrics (STEP_S > minSyncPeriod).
    for i in range(12):
        fleet.production[3] = cpu_rate * (1.01 if i % 2 == 0 else 0.99)
        fleet.step()
        statuses.append(_status(fleet, 3))
    assert statuses[0::2] == [ScalingStatus.PENDING_SCALE_UP.value] * 6
    assert statuses[1::2] == [ScalingStatus.RUNNING.value] * 6
    assert fleet.restarts == 0
    assert fleet.cpu == {p: 500 + 100 * p for p in range(N)}
    assert "rule adopted: sized before the adaptive predictor" in fleet.decision(3)


def test_instances_the_adaptive_predictor_created_keep_the_headroom_rule() -> None:
    fleet = Fleet()
    fleet.switch_to("adaptive")
    fleet.production = dict.fromkeys(range(N), 900.0)
    fleet.step()  # created for 900/0.95 = 948/s: 500m
    assert set(fleet.cpu.values()) == {500}
    fleet.production = dict.fromkeys(range(N), 990.0)  # keeps up, past the high-water mark
    for _ in range(8):
        fleet.step()
    assert set(fleet.cpu.values()) == {600}


def _sized(*, production: float, asks: int, backlog_need: float) -> Sized:
    demand = Demand(
        production=production,
        backlog=0.0,
        production_need=production * 1.1,
        backlog_need=backlog_need,
        restart_need=0.0,
        term=Term.RESTART,
    )
    return Sized(
        rate=asks, demand=demand, up_rate=asks, peak=production * 1.1, memory=Memory(), trigger=asks
    )


NOW = datetime(2026, 1, 1, tzinfo=UTC)


R_S = 30.0  # λ·R under Recreate


@given(
    production=st.floats(min_value=0, max_value=1e9),
    backlog_need=st.floats(min_value=0, max_value=1e9),
    headroom=st.floats(min_value=0.5, max_value=2.0),
    resized=st.booleans(),
    waiting=st.booleans(),
    behind_s=st.floats(min_value=0, max_value=60),
)
def test_the_adopted_rate_lies_between_production_and_the_adaptive_one(
    production: float,
    backlog_need: float,
    headroom: float,
    resized: bool,
    waiting: bool,
    behind_s: float,
) -> None:
    asks = math.ceil((production + backlog_need) * headroom)
    sized = _sized(production=production, asks=asks, backlog_need=backlog_need)
    memory = Memory(resized_at=NOW) if resized else None
    behind = behind_s * production
    snapshot = MetricsSnapshot(production={0: production}, offset={0: behind})
    got = adoption.asks(
        sized=sized,
        memory=memory,
        waiting=waiting,
        snapshot=snapshot,
        partitions=(0,),
        actuation_s=R_S,
    )

    def within(seconds: float) -> bool:
        return behind <= production * seconds or behind < 1

    if resized or not within(R_S) or (waiting and not within(EMPTY_S)):
        assert got == asks
    else:
        assert got <= asks
        assert got >= min(asks, production + backlog_need)


# An adopted instance producing 1,000/s on a CPU that gives 1,000/s, per backlog (in
# seconds of production) and whether a scale-up wait began: compared at its production
# (adopted) or at the adaptive rate, headroom included. Under Recreate λ·R is 30 s.
KEEPS_UP = [
    (0.0, False, True),
    (0.3, True, True),  # a sync 1 % over its CPU: the next one under it ends the wait
    (6.5, False, True),  # Kafka's auto-commit (5 s) and a poll's batch: no wait begins
    (EMPTY_S, True, True),
    (6.5, True, False),  # waiting, and behind by more than in flight: the wait runs out
    (29.0, False, True),
    (31.0, False, False),  # beyond λ·R: the backlog's own term asks
]


@pytest.mark.parametrize(("behind_s", "waiting", "adopted_rate"), KEEPS_UP)
def test_an_adopted_instance_is_kept_while_it_keeps_up_and_a_wait_that_began_runs_out(
    behind_s: float, waiting: bool, adopted_rate: bool
) -> None:
    sized = _sized(production=1000.0, asks=1053, backlog_need=0.0)
    snapshot = MetricsSnapshot(production={0: 1000.0}, offset={0: behind_s * 1000.0})
    got = adoption.asks(
        sized=sized,
        memory=None,
        waiting=waiting,
        snapshot=snapshot,
        partitions=(0,),
        actuation_s=R_S,
    )
    assert got == (1000 if adopted_rate else 1053)


def _memories(fleet: Fleet) -> list[str | None]:
    return [d.annotations.get(keys.SCALING_MEMORY) for d in fleet.replay.cluster.observed()]


def test_switched_back_to_naive_the_memory_goes_and_a_later_switch_adopts_again() -> None:
    fleet = Fleet()
    fleet.switch_to("adaptive")
    fleet.production = dict.fromkeys(range(N), 900.0)
    fleet.step()  # created under adaptive for 900/0.95 = 948/s: 500m
    assert set(fleet.cpu.values()) == {500}
    assert all(_memories(fleet))
    fleet.switch_to("naive")
    fleet.step()
    # One ANNOTATE write: no Deployment explains a size of the predictor it left.
    assert _memories(fleet) == [None] * N
    assert not any(fleet.decision(p) for p in range(N))
    for _ in range(24):  # naive's own 500m for 900/s: nothing to do for 12 minutes
        fleet.step()
    fleet.switch_to("adaptive")
    fleet.production = dict.fromkeys(range(N), 990.0)  # keeps up, 1 % to spare
    for _ in range(12):
        fleet.step()
    assert fleet.restarts == 0
    assert set(fleet.cpu.values()) == {500}
    assert "rule adopted:" in fleet.decision(0)
