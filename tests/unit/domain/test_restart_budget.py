"""The restart budget (``domain.disruption``, ``spec.autoscaler.restartBudgetPercent``).

Aspects tested:

* the arithmetic: ``restartBudgetPercent`` of the instances, rounded up, at least one
  (table, and a property over all percentages and sizes); a budget never admits more
  than its limit and always admits the turns reserved for it (property);
* the order: the instances whose ``pendingScaleDownDuration`` is over, the one that
  entered ``PENDING_SCALE_DOWN`` first first, then by index (table);
* the planner, table-driven over what a pass may do to many instances at once: a
  scale-down under ``Recreate`` and a scale-down in place that falls back to a rollout
  are held beyond the budget; a scale-up, a creation, a template change, a scale-down
  in place and one to a ``maxAllowed`` the user lowered are never held;
* a held instance keeps its size and its ``PENDING_SCALE_DOWN`` since, goes first in the
  next pass, and every instance gets its turn (ceil(waiting / budget) passes);
* a held scale-down gives back nothing to the global pool: a later instance's scale-up
  cannot use the CPU the held one still requests;
* no turn is reserved for an instance the scale rules do not decide (paused).
"""

import copy
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain import disruption, keys
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.planning import Action, Metrics, Plan, plan
from konsumerator.domain.scaling import ScalingState, ScalingStatus
from konsumerator.domain.specs import (
    Autoscaling,
    Bounds,
    ConsumerConfig,
    GlobalPool,
    Owner,
    UpdateMode,
)
from konsumerator.simulating import MemoryCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)
G = 10**9
OWNER = Owner(api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="c", uid="u-1")
N = 10
PSD = ScalingStatus.PENDING_SCALE_DOWN
RUNNING = ScalingStatus.RUNNING


# --- arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "instances", "allowed"),
    [
        (10, 1000, 100),
        (10, 1001, 101),  # rounded up
        (10, 5, 1),  # at least one
        (1, 1, 1),
        (33, 3, 1),  # 0.99 -> 1
        (34, 3, 2),  # 1.02 -> 2
        (100, 7, 7),
        (50, 0, 1),
    ],
)
def test_the_budget_is_a_share_of_the_instances_rounded_up_and_at_least_one(
    percent: int, instances: int, allowed: int
) -> None:
    assert disruption.allowed(percent=percent, instances=instances) == allowed


@given(st.integers(min_value=1, max_value=100), st.integers(min_value=1, max_value=10**6))
def test_the_budget_never_rounds_a_share_down_nor_past_the_instances(
    percent: int, instances: int
) -> None:
    allowed = disruption.allowed(percent=percent, instances=instances)
    assert 1 <= allowed <= instances
    assert allowed * 100 >= percent * instances
    assert (allowed - 1) * 100 < max(100, percent * instances)
    if percent < 100:
        assert allowed <= disruption.allowed(percent=percent + 1, instances=instances)


@given(
    st.integers(min_value=1, max_value=50).flatmap(
        lambda limit: st.tuples(
            st.just(limit),
            st.frozensets(st.integers(min_value=0, max_value=99), max_size=limit),
            st.lists(st.integers(min_value=0, max_value=99), unique=True),
        )
    )
)
def test_a_budget_admits_its_turns_and_never_more_than_its_limit(
    case: tuple[int, frozenset[int], list[int]],
) -> None:
    limit, turns, asking = case
    budget = disruption.RestartBudget(limit=limit, turns=turns)
    admitted = [i for i in asking if budget.admit(i)]
    assert len(admitted) <= limit
    assert set(asking) & turns <= set(admitted)
    assert budget.taken == set(admitted)
    assert budget.held == len(asking) - len(admitted)


def test_a_budget_cannot_reserve_more_turns_than_it_has() -> None:
    with pytest.raises(ValueError, match="cannot reserve"):
        disruption.RestartBudget(limit=1, turns=frozenset({1, 2}))


def _state(status: ScalingStatus, since_s: float | None) -> ScalingState:
    return ScalingState(
        status=status, since=None if since_s is None else T0 + timedelta(seconds=since_s)
    )


@pytest.mark.parametrize(
    ("states", "limit", "turns"),
    [
        pytest.param([(0, PSD, 0), (1, PSD, -60), (2, PSD, -30)], 2, {1, 2}, id="oldest-first"),
        pytest.param([(0, PSD, 0), (1, PSD, None)], 1, {1}, id="unknown-since-is-oldest"),
        pytest.param([(3, PSD, 0), (1, PSD, 0), (2, PSD, 0)], 2, {1, 2}, id="ties-by-index"),
        pytest.param([(0, PSD, 500), (1, PSD, 0)], 2, {1}, id="still-pending-has-no-turn"),
        pytest.param([(0, RUNNING, -900), (1, PSD, 0)], 2, {1}, id="only-pending-scale-downs"),
        pytest.param([], 3, set(), id="nobody-waiting"),
    ],
)
def test_turns_go_to_the_scale_downs_waiting_longest(
    states: list[tuple[int, ScalingStatus, float | None]], limit: int, turns: set[int]
) -> None:
    now = T0 + timedelta(seconds=600)
    found = disruption.turns(
        ((i, _state(status, since)) for i, status, since in states),
        now=now,
        pending_down_s=600,
        limit=limit,
    )
    assert found == turns


# --- the planner -----------------------------------------------------------------------


def config(
    *, mode: UpdateMode = UpdateMode.RECREATE, percent: int = 20, **kw: Any
) -> ConsumerConfig:
    return ConsumerConfig(
        name="c",
        namespace="ns",
        num_partitions=N,
        per_instance=1,
        deployment_template={
            "selector": {"matchLabels": {"app": "c"}},
            "template": {
                "metadata": {"labels": {"app": "c"}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        },
        autoscaling=Autoscaling(
            rate_per_core=1000,
            ram_per_core_b=G,
            recovery_s=600,
            tolerable_lag_s=60,
            min_sync_period_s=30,
            pending_up_s=120,
            pending_down_s=600,
            restart_budget_percent=percent,
        ),
        policies={"app": Bounds(min_cpu_m=100, max_cpu_m=4000)},
        update_mode=mode,
        **kw,
    )


def metrics(rates: Mapping[int, float], *, behind: Mapping[int, float] | None = None) -> Metrics:
    """Production per partition; ``behind``: partitions lagging by so many seconds."""
    lag = behind or {}
    return Metrics(
        snapshot=MetricsSnapshot(
            production=MappingProxyType(dict(rates)),
            consumption=MappingProxyType(dict(rates)),
            offset=MappingProxyType({p: r * lag.get(p, 0.0) for p, r in rates.items()}),
        ),
        refreshed=True,
        synced_at=T0,
    )


def steady(rate: float = 1000.0) -> dict[int, float]:
    return dict.fromkeys(range(N), rate)


class Fleet:
    """Ten instances in the in-memory cluster, one pass at a time, writes applied."""

    def __init__(self, cfg: ConsumerConfig) -> None:
        self.cfg = cfg
        self.cluster = MemoryCluster(owner_uid=OWNER.uid)
        self.now = T0
        self.bodies: dict[str, dict[str, Any]] = {}  # the last written, by name
        first = self.run(metrics(steady()))
        assert [a.action for a in first.applies] == [Action.CREATE] * N

    def run(self, m: Metrics, *, after_s: float = 0, **kw: Any) -> Plan:
        self.now += timedelta(seconds=after_s)
        m = replace(m, synced_at=self.now)
        p = plan(
            config=self.cfg,
            owner=OWNER,
            deployments=self.cluster.observed(),
            metrics=m,
            now=self.now,
            **kw,
        )
        for a in p.applies:
            self.cluster.apply(a.body)
            self.bodies[a.name] = a.body
        return p

    def cpu(self) -> dict[int, int]:
        return {
            d.instance: d.current["app"].cpu_req_m or 0
            for d in self.cluster.observed()
            if d.instance is not None
        }

    def status(self, index: int) -> tuple[ScalingStatus, datetime | None]:
        (d,) = [d for d in self.cluster.observed() if d.instance == index]
        return d.scaling.status, d.scaling.since


def _scale_down(fleet: Fleet) -> list[Plan]:
    """Six instances need less; the pass after pendingScaleDownDuration and the next."""
    low = steady() | dict.fromkeys(range(6), 400.0)
    fleet.run(metrics(low), after_s=60)  # PENDING_SCALE_DOWN
    return [fleet.run(metrics(low), after_s=600 + 30 * i) for i in range(4)]


def _scale_up(fleet: Fleet) -> list[Plan]:
    high = steady() | dict.fromkeys(range(6), 1600.0)
    behind = dict.fromkeys(range(6), 120.0)
    fleet.run(metrics(high, behind=behind), after_s=60)  # PENDING_SCALE_UP
    return [fleet.run(metrics(high, behind=behind), after_s=120 + 30 * i) for i in range(4)]


def _template_change(fleet: Fleet) -> list[Plan]:
    template = dict(fleet.cfg.deployment_template)
    template["template"] = {
        "metadata": {"labels": {"app": "c", "v": "2"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:2"}]},
    }
    fleet.cfg = replace(fleet.cfg, deployment_template=template)
    return [fleet.run(metrics(steady()), after_s=30)]


def _creation(fleet: Fleet) -> list[Plan]:
    fleet.cfg = replace(fleet.cfg, num_partitions=2 * N)
    return [fleet.run(metrics(steady() | dict.fromkeys(range(N, 2 * N), 1000.0)), after_s=30)]


def _max_allowed_lowered(fleet: Fleet) -> list[Plan]:
    """The user lowers ``maxAllowed`` below every instance's size: asked for, not held."""
    fleet.cfg = replace(fleet.cfg, policies={"app": Bounds(min_cpu_m=100, max_cpu_m=500)})
    fleet.run(metrics(steady()), after_s=60)  # PENDING_SCALE_DOWN
    return [fleet.run(metrics(steady()), after_s=600 + 30 * i) for i in range(2)]


def _refused_scale_down(fleet: Fleet) -> list[Plan]:
    """In place, six scale-downs the node refuses: each one's fallback is a restart."""
    low = steady() | dict.fromkeys(range(6), 400.0)
    fleet.run(metrics(low), after_s=60)
    fleet.run(metrics(low), after_s=600)  # resized in place (targets written)
    refused = {f"c-{i}": "pod p: invalid" for i in range(6)}
    return [fleet.run(metrics(low), after_s=1 + i, refused=refused) for i in range(4)]


@pytest.mark.parametrize(
    ("mode", "change", "action", "per_pass"),
    [
        pytest.param(
            UpdateMode.RECREATE, _scale_down, Action.SCALE, [2, 2, 2, 0], id="down-recreate"
        ),
        pytest.param(
            UpdateMode.IN_PLACE_OR_RECREATE,
            _scale_down,
            Action.RESIZE_IN_PLACE,
            [6, 0, 0, 0],
            id="down-in-place-restarts-nothing",
        ),
        pytest.param(
            UpdateMode.IN_PLACE_OR_RECREATE,
            _refused_scale_down,
            Action.ROLLOUT,
            [2, 2, 2, 0],
            id="down-in-place-falling-back",
        ),
        pytest.param(UpdateMode.RECREATE, _scale_up, Action.SCALE, [6, 0, 0, 0], id="up-recreate"),
        pytest.param(
            UpdateMode.RECREATE,
            _max_allowed_lowered,
            Action.SCALE,
            [N, 0],
            id="max-allowed-lowered",
        ),
        pytest.param(UpdateMode.RECREATE, _template_change, Action.ROLLOUT, [N], id="template"),
        pytest.param(UpdateMode.RECREATE, _creation, Action.CREATE, [N], id="creation"),
    ],
)
def test_only_the_restarts_the_operator_chooses_wait_for_the_budget(
    mode: UpdateMode, change: Callable[[Fleet], list[Plan]], action: Action, per_pass: list[int]
) -> None:
    # 20 % of 10 instances: 2 per pass.
    plans = change(Fleet(config(mode=mode)))
    assert [sum(a.action is action for a in p.applies) for p in plans] == per_pass


def test_held_instances_keep_their_size_and_their_place_and_each_gets_its_turn() -> None:
    fleet = Fleet(config())  # 2 per pass
    low = steady() | dict.fromkeys(range(6), 400.0)
    fleet.run(metrics(low | {5: 1000.0}), after_s=60)  # 0-4 PENDING_SCALE_DOWN first
    entered = fleet.status(0)[1]
    fleet.run(metrics(low), after_s=60)  # 5 a minute later
    first = fleet.run(metrics(low), after_s=540)  # 0-4 have waited 600 s, 5 has not
    assert [a.name for a in first.applies] == ["c-0", "c-1"]
    assert first.restarts_held == 3
    # The held ones: their size, PENDING_SCALE_DOWN since they entered it, nothing written.
    assert fleet.cpu()[2] == 1000
    assert fleet.status(2) == (PSD, entered)
    # 5's period is over now too, but 2-4 waited longer: they go first.
    second = fleet.run(metrics(low), after_s=60)
    assert [a.name for a in second.applies] == ["c-2", "c-3"]
    third = fleet.run(metrics(low), after_s=30)
    assert [a.name for a in third.applies] == ["c-4", "c-5"]
    assert third.restarts_held == 0
    assert fleet.cpu() == {i: 400 if i < 6 else 1000 for i in range(N)}


def test_a_scale_up_in_the_same_pass_is_not_counted_against_the_budget() -> None:
    fleet = Fleet(config())
    mixed = steady() | dict.fromkeys(range(4), 400.0)
    fleet.run(metrics(mixed), after_s=60)
    lagging = metrics(
        mixed | dict.fromkeys(range(6, N), 1600.0), behind=dict.fromkeys(range(6, N), 120.0)
    )
    fleet.run(lagging, after_s=480)
    p = fleet.run(lagging, after_s=120)
    downs = [a.name for a in p.applies if a.action is Action.SCALE and a.index < 4]
    ups = [a.name for a in p.applies if a.action is Action.SCALE and a.index >= 6]
    assert (len(downs), len(ups)) == (2, 4)
    assert p.restarts_held == 2


def test_no_budget_at_one_hundred_percent() -> None:
    fleet = Fleet(config(percent=100))
    plans = _scale_down(fleet)
    assert [sum(a.action is Action.SCALE for a in p.applies) for p in plans] == [6, 0, 0, 0]
    assert all(p.restarts_held == 0 for p in plans)


def test_a_held_scale_down_gives_nothing_back_to_the_global_pool() -> None:
    # Ten instances at 1000m fill a pool of 10 cores. Instances 0-5 scale down to 400m,
    # instance 9 needs 1600m: only what the scale-downs applied can be granted to it.
    cfg = config(global_pool=GlobalPool(cpu_m=10_000, mem_b=None))
    fleet = Fleet(cfg)
    low = steady() | dict.fromkeys(range(6), 400.0)
    fleet.run(metrics(low), after_s=60)
    high = metrics(low | {9: 1600.0}, behind={9: 600.0})  # needs 3200m
    fleet.run(high, after_s=480)
    p = fleet.run(high, after_s=120)
    assert p.restarts_held == 4
    assert sum(fleet.cpu().values()) <= 10_000
    # Two scale-downs applied gave back 1200m; 9 got what they gave back.
    assert fleet.cpu()[9] == 1000 + 1200


def test_the_api_default_is_ten_percent_and_a_direct_config_has_no_budget() -> None:
    from konsumerator.api.v1 import AutoscalerSpec

    assert AutoscalerSpec().restart_budget_percent == disruption.DEFAULT_PERCENT == 10
    assert Autoscaling(rate_per_core=1, ram_per_core_b=1).restart_budget_percent == 100


def test_paused_instances_waiting_to_scale_down_take_no_turns() -> None:
    # Instances 0 and 1 waited out pendingScaleDownDuration, then the user paused them
    # (the disable annotation on their Deployments): they keep PENDING_SCALE_DOWN and
    # the oldest time for as long as they are paused. The budget (2 a pass) must still
    # let the others scale down, not reserve their turns for instances that never take
    # them.
    fleet = Fleet(config())
    low = steady() | dict.fromkeys(range(2), 400.0)
    fleet.run(metrics(low), after_s=60)  # 0 and 1 PENDING_SCALE_DOWN
    for name in ("c-0", "c-1"):
        body = copy.deepcopy(fleet.bodies[name])
        body["metadata"]["annotations"][keys.DISABLE_AUTOSCALER] = "true"
        fleet.cluster.apply(body)
    lower = low | dict.fromkeys(range(2, 6), 400.0)
    fleet.run(metrics(lower), after_s=600)  # 2-5 PENDING_SCALE_DOWN; 0, 1 waited
    plans = [fleet.run(metrics(lower), after_s=600 + 30 * i) for i in range(2)]
    assert fleet.status(0)[0] is PSD  # still paused, still waiting
    assert [sorted(a.name for a in p.applies) for p in plans] == [["c-2", "c-3"], ["c-4", "c-5"]]
