"""The first size from metrics of an instance created without them, in virtual time.

Driven through the operator's own pipeline (``simulating.Replay``): passes 31 s
apart (each refreshes metrics; None: Prometheus has no answer), pendingScaleUp
2 m, pendingScaleDown 10 m, ratePerCore 2000, minAllowed 100m, in both update
modes. The rule itself is tested in ``test_first_size``.
"""

import copy
from types import MappingProxyType
from typing import Any, Literal

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.simulating import Replay

STEP_S = 31.0  # every pass refreshes (minSyncPeriod 30 s)


def metrics(lam: float, *, behind_s: float = 0.0) -> MetricsSnapshot:
    """Both partitions produce ``lam`` msg/s, consumed as fast, ``behind_s`` of it behind."""
    return MetricsSnapshot(
        production=MappingProxyType({0: lam, 1: lam}),
        consumption=MappingProxyType({0: lam, 1: lam}),
        offset=MappingProxyType({0: lam * behind_s, 1: lam * behind_s}),
    )


class Fleet:
    def __init__(
        self,
        *,
        predictor: Literal["adaptive", "naive"],
        mode: Literal["Recreate", "InPlaceOrRecreate"],
        fallback: Literal["min", "max"] = "min",
    ) -> None:
        orders = ConsumerBuilder(
            predictor=predictor,
            update_mode=mode,
            fallback=fallback,
            min_memory="256Mi",
            max_cpu="4",
        )
        self.source, self.spec = orders.load()
        self.replay = Replay(source=self.source, spec=self.spec)
        self.bodies: dict[str, dict[str, Any]] = {}

    def step(self, snapshot: MetricsSnapshot | None) -> list[int]:
        """One pass STEP_S later (None: Prometheus has no answer); each CPU request after it."""
        done = self.replay.step(advance_s=STEP_S, metrics=snapshot)
        for apply in done.plan.applies:
            self.bodies[apply.name] = apply.body
        return self.cpus()

    def cpus(self) -> list[int]:
        observed = sorted(self.replay.cluster.observed(), key=lambda d: d.name)
        return [d.current["consumer"].cpu_req_m or 0 for d in observed]

    def annotation(self, name: str, key: str) -> str | None:
        (d,) = [d for d in self.replay.cluster.observed() if d.name == name]
        return d.annotations.get(key)

    def restart_operator(self) -> None:
        """A new operator process: nothing in memory but what the cluster holds."""
        old = self.replay
        self.replay = Replay(source=old.source, spec=old.spec, start=old.now)
        for body in self.bodies.values():
            self.replay.cluster.apply(body)


MODES = ["Recreate", "InPlaceOrRecreate"]


@pytest.mark.parametrize("mode", MODES)
def test_adaptive_sizes_an_instance_created_without_metrics_in_the_first_refreshed_pass(
    mode: str,
) -> None:
    fleet = Fleet(predictor="adaptive", mode=mode)
    assert fleet.step(None) == [100, 100]  # no answer: minAllowed
    assert fleet.annotation("orders-0", keys.SCALING_STATUS_CHANGE) == ""
    fleet.restart_operator()  # the mark is on the Deployment
    # 1000/s keeps up: the headroom asks for 1000/0.95 -> 600m; at once, not in 2 min.
    first = fleet.step(metrics(1000))
    assert first[0] > 100
    assert first[0] == first[1]
    decision = fleet.annotation("orders-0", keys.SCALING_DECISION) or ""
    assert "rule first" in decision
    assert fleet.annotation("orders-0", keys.SCALING_STATUS_CHANGE) != ""
    # Only the first skips the wait: a rise past the headroom waits again.
    risen = [fleet.step(metrics(1400)) for _ in range(3)]
    assert risen == [first] * 3


@pytest.mark.parametrize("mode", MODES)
def test_prometheus_flapping_skips_the_wait_once(mode: str) -> None:
    fleet = Fleet(predictor="adaptive", mode=mode)
    fleet.step(None)
    first = fleet.step(metrics(1000))
    # No answer, then an answer asking for more, again and again: never at once.
    for lam in (1400, 1800, 2200):
        assert fleet.step(None) == first
        assert fleet.step(metrics(lam)) == first


@pytest.mark.parametrize("mode", MODES)
def test_naive_scales_a_lagging_instance_created_without_metrics_at_once(mode: str) -> None:
    fleet = Fleet(predictor="naive", mode=mode)
    assert fleet.step(None) == [100, 100]
    # Lagging in its first pass with metrics: its first size at once, not after
    # pendingScaleUpDuration.
    sized = fleet.step(metrics(1000, behind_s=120))
    assert sized[0] > 100
    # The next one waits.
    assert fleet.step(metrics(3000, behind_s=120)) == sized


@pytest.mark.parametrize("mode", MODES)
def test_naive_keeping_up_in_its_first_pass_with_metrics_waits_for_a_later_lag(
    mode: str,
) -> None:
    fleet = Fleet(predictor="naive", mode=mode)
    assert fleet.step(None) == [100, 100]
    # Keeping up: naive does not scale up (the Go operator's rule); a decision from
    # metrics all the same, so the mark goes.
    assert fleet.step(metrics(1000)) == [100, 100]
    assert fleet.annotation("orders-0", keys.SCALING_STATUS_CHANGE) != ""
    # A lag minutes later (a stall) waits pendingScaleUpDuration like any other.
    assert fleet.step(metrics(1000, behind_s=120)) == [100, 100]
    assert fleet.annotation("orders-0", keys.SCALING_STATUS) == "PENDING_SCALE_UP"
    assert fleet.annotation("orders-0", keys.SCALING_STATUS) == "PENDING_SCALE_UP"


@pytest.mark.parametrize("predictor", ["adaptive", "naive"])
def test_an_instance_created_large_from_the_fallback_scales_down_at_once(predictor: str) -> None:
    fleet = Fleet(predictor=predictor, mode="Recreate", fallback="max")
    assert fleet.step(None) == [4000, 4000]
    sized = fleet.step(metrics(500))
    assert sized[0] < 4000


@pytest.mark.parametrize("predictor", ["adaptive", "naive"])
def test_an_instance_created_with_metrics_keeps_the_pending_period(predictor: str) -> None:
    fleet = Fleet(predictor=predictor, mode="Recreate")
    created = fleet.step(metrics(500))
    assert fleet.annotation("orders-0", keys.SCALING_STATUS_CHANGE) != ""
    assert fleet.step(metrics(1500, behind_s=120)) == created


def _edit(fleet: Fleet, name: str, **annotations: str | None) -> None:
    """A user's edit of the Deployment's annotations (None: removed)."""
    body = copy.deepcopy(fleet.bodies[name])
    for key, value in annotations.items():
        if value is None:
            body["metadata"]["annotations"].pop(key, None)
        else:
            body["metadata"]["annotations"][key] = value
    fleet.bodies[name] = body
    fleet.replay.cluster.apply(body)


@pytest.mark.parametrize("predictor", ["adaptive", "naive"])
def test_a_paused_instance_created_without_metrics_is_sized_at_once_when_unpaused(
    predictor: str,
) -> None:
    fleet = Fleet(predictor=predictor, mode="Recreate")
    fleet.step(None)
    _edit(fleet, "orders-0", **{keys.DISABLE_AUTOSCALER: "true"})
    lagging = metrics(1000, behind_s=120)
    for _ in range(3):  # paused: never resized, and still never sized from metrics
        assert fleet.step(lagging)[0] == 100
    assert fleet.annotation("orders-0", keys.SCALING_STATUS_CHANGE) == ""
    _edit(fleet, "orders-0", **{keys.DISABLE_AUTOSCALER: None})
    assert fleet.step(lagging)[0] > 100


def test_a_hand_emptied_time_gives_one_resize_without_the_wait() -> None:
    fleet = Fleet(predictor="naive", mode="Recreate")
    sized = fleet.step(metrics(500))
    _edit(fleet, "orders-0", **{keys.SCALING_STATUS_CHANGE: ""})
    lagging = metrics(1000, behind_s=120)
    once = fleet.step(lagging)
    assert once[0] > sized[0]  # at once
    assert once[1] == sized[1]  # its neighbour waits
    assert fleet.step(metrics(3000, behind_s=120))[0] == once[0]  # the next one waits


def test_metrics_that_ask_for_the_fallback_size_make_it_theirs() -> None:
    fleet = Fleet(predictor="naive", mode="Recreate")
    fleet.step(None)
    # 100 msg/s needs 50m: minAllowed, the size it was created with. Stamped now.
    assert fleet.step(metrics(100)) == [100, 100]
    assert fleet.annotation("orders-0", keys.SCALING_STATUS_CHANGE) != ""
    # So a lag later waits for pendingScaleUpDuration like any resize.
    assert fleet.step(metrics(1000, behind_s=120)) == [100, 100]
    assert fleet.annotation("orders-0", keys.SCALING_STATUS) == "PENDING_SCALE_UP"


@pytest.mark.parametrize("predictor", ["adaptive", "naive"])
def test_a_first_scale_down_held_by_the_restart_budget_takes_the_next_turn(
    predictor: str,
) -> None:
    # Two instances, the default budget (10 %): one restart per pass. The one held keeps
    # its first size without the wait: it goes in the next pass, not after
    # pendingScaleDownDuration (10 m, some 20 passes) as a scale-down it entered would.
    fleet = Fleet(predictor=predictor, mode="Recreate", fallback="max")
    assert fleet.step(None) == [4000, 4000]
    first = fleet.step(metrics(500))
    assert sorted(first) == [first[0], 4000]
    assert first[0] < 4000
    assert fleet.step(metrics(500)) == [first[0], first[0]]
