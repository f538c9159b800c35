"""Switching 1,000 ``Recreate`` instances between ``adaptive`` and ``naive``: the restarts
of the scale-downs that follow are paced by the restart budget (``domain.disruption``).

Driven by ``simulating.Replay`` (the operator's own pipeline, with its planner memory)
in virtual time, in closed loop: each instance consumes what its request gives (at
``ratePerCore``), at most its production plus its backlog; a restart costs one sync of
consumption. Production is log-normal across instances around 1,340/s with 2 % noise per
sync (seeded). The Consumer leaves ``restartBudgetPercent`` out: the default, 10 %.

Aspects tested:

* switched back to ``naive``, the fleet gives back the adaptive headroom of a few
  hundred instances; no pass restarts more than 100 of them for a scale-down (on the
  old code: 276 in one pass), and all of them are given back within ceil(waiting / 100)
  passes of the first (no instance stays behind in ``PENDING_SCALE_DOWN``);
* the status says how many the budget held (``status.restartsHeld``): none before the
  switch (no field), the pass's count while it binds, 0 once every instance had its turn;
* switched to ``adaptive`` again, the bound holds too, and the fleet settles.
"""

import math
import random
from dataclasses import replace
from types import MappingProxyType
from typing import Literal

from support.consumers import ConsumerBuilder

from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.scaling import ScalingStatus

N = 1000
RATE_PER_CORE = 2000
STEP_S = 31.0
PENDING_DOWN_S = 600.0
ORDERS = ConsumerBuilder(partitions=N, rate_per_core=RATE_PER_CORE)
# The default restartBudgetPercent, 10 % of the instances per pass.
BUDGET = N // 10


class Fleet:
    def __init__(self) -> None:
        self.rng = random.Random(1)
        self.base = {p: self.rng.lognormvariate(math.log(1340), 0.3) for p in range(N)}
        self.replay = ORDERS.replay()
        self.backlog = dict.fromkeys(range(N), 0.0)
        self.cpu: dict[int, int] = {}
        self.held: list[int] = []

    def step(self) -> tuple[int, int]:
        """One sync; the scale-downs and scale-ups it made."""
        production = {p: b * (1 + self.rng.gauss(0, 0.02)) for p, b in self.base.items()}
        consumed = {}
        for p, lam in production.items():
            capacity = self.cpu[p] / 1000 * RATE_PER_CORE if p in self.cpu else lam
            consumed[p] = min(lam + self.backlog[p] / STEP_S, capacity)
            self.backlog[p] = max(0.0, self.backlog[p] + (lam - consumed[p]) * STEP_S)
        done = self.replay.step(
            advance_s=STEP_S,
            metrics=MetricsSnapshot(
                production=MappingProxyType(production),
                consumption=MappingProxyType(consumed),
                offset=MappingProxyType(dict(self.backlog)),
            ),
        )
        # Every step refreshes (STEP_S > minSyncPeriod): the status shows this pass's count.
        assert (done.status.restarts_held or 0) == done.plan.restarts_held
        self.held.append(done.status.restarts_held or 0)
        downs = ups = 0
        for d in self.replay.cluster.observed():
            p = int(d.name.rsplit("-", 1)[1])
            cpu = d.current["consumer"].cpu_req_m or 0
            if p in self.cpu and cpu != self.cpu[p]:
                downs += cpu < self.cpu[p]
                ups += cpu > self.cpu[p]
                self.backlog[p] += production[p] * STEP_S  # the restart's gap
            self.cpu[p] = cpu
        return downs, ups

    def switch_to(self, predictor: Literal["adaptive", "naive"]) -> None:
        self.replay.spec = replace(ORDERS, predictor=predictor).load()[1]

    def waited_too_long(self) -> int:
        """Instances whose scale-down has waited past its pending period and one pass."""
        now = self.replay.now
        return sum(
            d.scaling.status is ScalingStatus.PENDING_SCALE_DOWN
            and d.scaling.since is not None
            and (now - d.scaling.since).total_seconds() > PENDING_DOWN_S + 2 * STEP_S
            for d in self.replay.cluster.observed()
        )


def test_switching_a_thousand_instances_back_and_forth_restarts_at_most_the_budget_per_pass() -> (
    None
):
    fleet = Fleet()
    for _ in range(30):
        fleet.step()
    assert "restartsHeld" not in fleet.replay.status.to_body()
    fleet.switch_to("naive")
    downs = [fleet.step()[0] for _ in range(30)]
    assert max(downs) <= BUDGET, downs
    # The headroom is given back (a few hundred scale-downs), in consecutive passes,
    # as few as the budget allows, once pendingScaleDownDuration is over.
    burst = [i for i, n in enumerate(downs) if n > BUDGET // 2]
    assert sum(downs[i] for i in burst) > 2 * BUDGET
    assert burst == list(range(burst[0], burst[0] + len(burst)))
    assert len(burst) <= math.ceil(sum(downs[i] for i in burst) / BUDGET) + 1
    assert fleet.waited_too_long() == 0
    held = fleet.held[-30:]
    assert max(held) > BUDGET  # more than another pass's worth waited
    assert held[-1] == 0
    assert fleet.replay.status.to_body()["restartsHeld"] == 0
    fleet.switch_to("adaptive")
    again = [fleet.step()[0] for _ in range(30)]
    assert max(again) <= BUDGET
    assert fleet.waited_too_long() == 0
