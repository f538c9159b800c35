"""The adaptive predictor in virtual time, through the operator's own pipeline.

One instance (updateMode Recreate: 2 partitions, ratePerCore 2000, u 0.9, R 30 s, recoveryTime
5 m, tolerableLag 1 m, minSyncPeriod 30 s, pendingScaleUp 2 m, pendingScaleDown
10 m) is driven by ``simulating.Replay`` (the ``Pipeline`` the operator runs)
through one story, every pass 31 s after the last so that each one refreshes
metrics:

1. created sized with headroom: 2·1000/0.9 msg/s -> 1200m;
2. a rise that is not lagging yet still scales up (the high-water mark),
   after pendingScaleUpDuration and not before;
3. a burst whose lag will cross tolerableLag scales up at once (urgent);
4. a second urgent need within R + minSyncPeriod waits for the gap, also in
   an operator restarted meanwhile (the memory is on the Deployment);
5. the load drops: no scale-down while the backlog is not drained, nor while
   the recent peak holds, nor before pendingScaleDownDuration;
6. every write explains itself (the ``scaling-decision`` annotation).
"""

from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.simulating import Replay

ORDERS = ConsumerBuilder(per_instance=2, target_utilization_percent=90, restart_time="30s")
STEP_S = 31.0


def metrics(lam: float, consumed: float, behind: float = 0.0) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType({0: lam, 1: lam}),
        consumption=MappingProxyType({0: consumed, 1: consumed}),
        offset=MappingProxyType({0: behind, 1: behind}),
    )


class Story:
    def __init__(self, builder: ConsumerBuilder = ORDERS) -> None:
        self.replay = builder.replay()
        self.bodies: dict[str, dict[str, Any]] = {}

    def step(self, snapshot: MetricsSnapshot) -> int:
        """One pass STEP_S later; the consumer's CPU request (millicores) after it."""
        done = self.replay.step(advance_s=STEP_S, metrics=snapshot)
        for apply in done.plan.applies:
            self.bodies[apply.name] = apply.body
        return self.cpu()

    def cpu(self) -> int:
        (d,) = self.replay.cluster.observed()
        return d.current["consumer"].cpu_req_m or 0

    def annotations(self) -> dict[str, str]:
        (d,) = self.replay.cluster.observed()
        return dict(d.annotations)

    def restart_operator(self) -> None:
        """A new operator process: nothing in memory but what the cluster holds."""
        old = self.replay
        self.replay = Replay(source=old.source, spec=old.spec, start=old.now)
        for body in self.bodies.values():
            self.replay.cluster.apply(body)
        old.close()


def test_the_adaptive_story() -> None:
    story = Story()
    # 1. created with headroom: 2000/0.9 = 2223 msg/s -> 1112m -> 1200m
    assert story.step(metrics(1000, 1000)) == 1200
    assert "rule create" in story.annotations()[keys.SCALING_DECISION]

    # 2. 1200/s each keeps up (lag 0) but passes the high-water mark: 2667/s -> 1400m,
    # after pendingScaleUp (2 m: the 5th pass after the first that asked), not before.
    cpus = [story.step(metrics(1200, 1200)) for _ in range(5)]
    assert cpus == [1200, 1200, 1200, 1200, 1400]

    assert story.step(metrics(1200, 1200)) == 1400

    # 3. a x3 burst: consumption is capped, lag grows 0.5 s/s -> urgent, at once.
    assert story.step(metrics(3000, 1400)) == 3400  # 6000/0.9 = 6667/s -> 3334m
    assert "rule urgent" in story.annotations()[keys.SCALING_DECISION]

    # 4. more, while the pods restart (nothing consumed): urgent, but within the gap
    # (R + minSyncPeriod = 60 s), also for a restarted operator; the next pass may.
    story.restart_operator()
    assert story.step(metrics(4000, 0, 31 * 1000)) == 3400
    assert "gap_elapsed" in story.annotations()[keys.SCALING_DECISION]
    # consuming what 3400m does at 2000 msg/s per core: the scale-up was effective
    assert story.step(metrics(4000, 3400, 200_000)) > 3400
    peak_cpu = story.cpu()

    # 5. the load drops; a backlog beyond λR remains: no scale-down until drained
    for _ in range(3):
        assert story.step(metrics(1000, 1000, 35_000)) == peak_cpu
    # drained, but the recent peak holds (600 s window from the last peak) and then
    # pendingScaleDown (600 s) runs: nothing for at least 10 minutes
    held = [story.step(metrics(1000, 1000)) for _ in range(20)]
    assert held == [peak_cpu] * 20
    later = [story.step(metrics(1000, 1000)) for _ in range(30)]
    assert later[-1] == 1200
    # once down, it stays down (no flapping on a steady load)
    assert [story.step(metrics(1000, 1000)) for _ in range(30)] == [1200] * 30

    # 6. the explanation names every input of the last resize
    explanation = story.annotations()[keys.SCALING_DECISION]
    for part in ("lambda=2000/s", "T=300s", "u=0.9", "R=30s", "ratePerCore=2000", "term="):
        assert part in explanation
    story.replay.close()


def test_a_scale_up_that_does_not_raise_throughput_stops_the_scale_ups() -> None:
    """A single-threaded consumer: 1500 msg/s per partition whatever its CPU."""
    story = Story()
    assert story.step(metrics(1000, 1000)) == 1200
    behind = 0.0

    def falling_behind() -> MetricsSnapshot:
        nonlocal behind
        behind += (3000 - 1500) * STEP_S
        return metrics(3000, 1500, behind)

    assert story.step(falling_behind()) == 1200  # urgent, but within the gap since creation
    scaled = story.step(falling_behind())
    assert scaled > 1200  # urgent: scaled up once
    cpus = [story.step(falling_behind()) for _ in range(10)]
    # judged (a rate() window after its actuation), then found ineffective: no more CPU,
    # however far behind
    assert cpus == [scaled] * 10
    memory = story.annotations()[keys.SCALING_MEMORY]
    assert "ineffective=true" in memory
    assert "rule ineffective" in story.annotations()[keys.SCALING_DECISION]
    # it catches up (a fix downstream): effective again, and the flag is gone
    story.step(metrics(3000, 3000, behind))
    assert "ineffective" not in story.annotations()[keys.SCALING_MEMORY]
    story.replay.close()


def test_an_outage_adds_no_cpu_and_its_drain_scales_up_at_once_and_down_when_done() -> None:
    """A downstream outage: nothing consumed for 10 minutes while the backlog builds
    (the lag stays under ``criticalLag``, 10 m, and the drain's size far under the cap:
    ``at_cap`` below)."""
    story = Story()
    assert story.step(metrics(1000, 1000)) == 1200
    behind = 0.0
    cpus = []
    for _ in range(19):
        behind += 1000 * STEP_S
        cpus.append(story.step(metrics(1000, 0, behind)))
    # the lag is far past tolerableLag, yet no CPU helps while nothing is consumed
    assert cpus == [1200] * 19
    assert "rule outage" in story.annotations()[keys.SCALING_DECISION]
    # consumption resumes at what 1200m gives: the drain scales up in the same pass
    assert story.step(metrics(1000, 1200, behind)) > 1200
    assert "rule urgent" in story.annotations()[keys.SCALING_DECISION]
    assert "forBacklog=true" in story.annotations()[keys.SCALING_MEMORY]
    # drained: straight back to the production need, without pendingScaleDownDuration
    # (10 m) or the dwell; only the gap (R + minSyncPeriod) since the scale-up
    rules = []
    for _ in range(3):
        story.step(metrics(1000, 1000))
        rules.append(story.annotations()[keys.SCALING_DECISION].rpartition("rule ")[2])
    assert story.cpu() == 1200
    assert any(r.startswith("drain_over") for r in rules)
    story.replay.close()


@pytest.mark.parametrize("update_mode", ["Recreate", "InPlaceOrRecreate"])
def test_an_outage_whose_drain_wants_the_cap_restarts_to_it_once_before_the_drain(
    update_mode: str,
) -> None:
    """Past ``criticalLag`` (10 m) the drain's proposal is the policy's cap (8 cores, and
    2Gi of memory: ``ramPerCore`` 256Mi a core): under Recreate the instance goes there
    during the outage, when the restart costs nothing, and the drain starts at full speed
    with no restart of its own; in place (a resize stops nothing) the outage holds as
    before and the drain resizes."""
    builder = replace(ORDERS, update_mode=update_mode, max_memory="2Gi")  # type: ignore[arg-type]
    story = Story(builder)
    assert story.step(metrics(1000, 1000)) == 1200
    behind = 0.0
    cpus = []
    for _ in range(30):
        behind += 1000 * STEP_S
        cpus.append(story.step(metrics(1000, 0, behind)))
    restarts = story.replay.cluster.pods.restarts
    recreate = update_mode == "Recreate"
    assert cpus[:19] == [1200] * 19
    assert cpus[19:] == ([8000] if recreate else [1200]) * 11
    if recreate:
        assert "rule at_cap" in story.annotations()[keys.SCALING_DECISION]
        # sized as the cap's own CPU is: ramPerCore (256Mi) per limit core, not the
        # memory of the unbounded need that found the cap
        (d,) = story.replay.cluster.observed()
        assert d.current["consumer"].mem_req_b == 8 * 256 * 2**20
    # consumption resumes at what the CPU gives: at the cap no restart comes with it
    assert story.step(metrics(1000, 2 * 8000 if recreate else 1200, behind)) == 8000
    assert story.replay.cluster.pods.restarts == restarts
    for _ in range(40):
        behind = max(0.0, behind - 7000 * STEP_S)
        story.step(metrics(1000, 1000 + (7000 if behind else 0), behind))
    assert story.cpu() == 1200  # the drain over: given back (``drain_over``)
    story.replay.close()


def test_an_outage_holds_while_a_larger_need_could_ask_for_more_memory() -> None:
    """Without a memory bound the drain's memory follows its need (``ramPerCore`` per
    limit core of the need, the CPU clamped at the cap): no size at the cap is one the
    drain will not restart for memory alone, so the outage holds, as before ``at_cap``."""
    story = Story()  # maxAllowed cpu 8, no memory bound
    assert story.step(metrics(1000, 1000)) == 1200
    behind = 0.0
    for _ in range(30):
        behind += 1000 * STEP_S
        assert story.step(metrics(1000, 0, behind)) == 1200
    assert "rule outage" in story.annotations()[keys.SCALING_DECISION]
    story.replay.close()


def test_no_scale_down_back_to_a_size_found_short_within_half_an_hour() -> None:
    """Consumers slower than ratePerCore: 1200m consumes 1800/s where 2000/s is produced.

    The scale-up is sized for production and the backlog; once drained, the need
    is what 1200m was sized for, which was just seen too small: going back to it
    would lag again and scale up again (the up-down-up the scorecard counts on
    ``diurnal-slow``). It waits ``SETTLE_S`` (30 min) after the scale-up.
    """
    story = Story()
    assert story.step(metrics(1000, 1000)) == 1200
    # Consumption shows what 1200m does once its rate() window is past the creation
    # (R + 60 s: ``policy.observed``); found short only then.
    for _ in range(3):
        assert story.step(metrics(1000, 1000)) == 1200
    behind = 150_000.0
    passes = 0
    while story.step(metrics(1000, 900, behind)) == 1200:  # urgent, once the gap has passed
        passes += 1
        assert passes < 5
    up = story.cpu()
    assert "shortNeed=" in story.annotations()[keys.SCALING_MEMORY]
    # drained, at production the need is what 1200m was sized for: held (rule
    # ``settled``) for half an hour, never even pending a scale-down, though the peak
    # window and pendingScaleDownDuration (10 m each) pass meanwhile. A hold writes
    # nothing (its explanation neither), so the status shows which rule held.
    held, statuses = [], set()
    for _ in range(int(1800 // STEP_S) - 1):
        held.append(story.step(metrics(1000, 1000)))
        statuses.add(story.annotations()[keys.SCALING_STATUS])
    assert held == [up] * len(held)
    assert statuses == {"RUNNING"}
    # half an hour after the scale-up: down after pendingScaleDownDuration
    later = [story.step(metrics(1000, 1000)) for _ in range(25)]
    assert later[-1] == 1200
    story.replay.close()


def test_an_ineffective_scale_up_is_a_warning_event() -> None:
    import asyncio

    from konsumerator.controllers.events import EventReporter
    from konsumerator.controllers.outcomes import Outcome
    from konsumerator.domain import planning

    story = Story()
    story.step(metrics(1000, 1000))
    behind = 0.0
    done = None
    for _ in range(8):
        behind += 1500 * STEP_S
        done = story.replay.step(advance_s=STEP_S, metrics=metrics(3000, 1500, behind))
        if any("rule ineffective" in a.message for a in done.plan.applies):
            break
    assert done is not None

    class Recorded:
        def __init__(self) -> None:
            self.events: list[tuple[str, str]] = []

        async def record(self, *, obj: object, type: str, reason: str, message: str) -> None:
            self.events.append((type, reason))

        async def record_all(self, *, obj: object, events: list[Any]) -> None:
            self.events += [(e.type, e.reason) for e in events]

    recorded = Recorded()
    asyncio.run(
        EventReporter(events=recorded).passed(  # type: ignore[arg-type]
            key="default/orders",
            source=story.replay.source,
            plan=done.plan,
            outcome=Outcome(done=list(done.plan.applies)),
            metrics=planning.Metrics(refreshed=True),
            refusal=None,
        )
    )
    assert ("Warning", "IneffectiveScaling") in recorded.events
    story.replay.close()


def test_the_naive_predictor_writes_no_adaptive_annotation() -> None:
    replay = replace(ORDERS, predictor="naive").replay()
    replay.step(advance_s=STEP_S, metrics=metrics(1000, 1000))
    (d,) = replay.cluster.observed()
    assert keys.SCALING_MEMORY not in d.annotations
    assert keys.SCALING_DECISION not in d.annotations
    replay.close()


def test_a_step_up_under_recreate_is_one_scale_up_sized_for_its_own_restart() -> None:
    """A x3 step with 20 s behind: the urgent scale-up is sized for the backlog its own
    restart leaves (min(b, λR)/T), so the pods that come back drain it; while the
    rate() window still holds the restart (R + 60 s) its pause is no growth, so no
    second urgent restart; once the backlog is gone, its CPU is given back at once.

    Before: sized for λ(1+R/T) + max(0, b − λR)/T only, each restart's λR asked for
    the next urgent one (a step up: 54 restarts, V tol 114 against naive's 93).
    """
    story = Story()
    assert story.step(metrics(1000, 1000)) == 1200
    for _ in range(3):  # past the creation's rate() window
        assert story.step(metrics(1000, 1000)) == 1200
    # 3000/s each, 1200 consumed, 60 000 behind (20 s): urgent. need 2·3000/0.9 = 6667/s
    # -> 3400m; sized for its restart too: + 2·min(60 000, 90 000)/300 = 400/s -> 3600m
    assert story.step(metrics(3000, 1200, 60_000)) == 3600
    decision = story.annotations()[keys.SCALING_DECISION]
    assert "rule urgent" in decision
    assert "+min(backlog,lambda*R)/T=400/s -> 7067/s = 3600m" in decision
    # the restart: nothing consumed, then half the window without consumption
    assert story.step(metrics(3000, 0, 150_000)) == 3600
    assert story.step(metrics(3000, 1500, 150_000)) == 3600
    # nothing written since (a hold with nothing to change writes nothing): the
    # explanation on the Deployment is still the scale-up's
    assert story.annotations()[keys.SCALING_DECISION] == decision
    # drained to within λR but not empty: held (the band: 3400m saves under 15 %)
    assert story.step(metrics(3000, 3500, 30_000)) == 3600
    # empty: the backlog's CPU goes back at once, no pendingScaleDownDuration
    assert story.step(metrics(3000, 3000)) == 3400
    assert "rule drain_over" in story.annotations()[keys.SCALING_DECISION]
    story.replay.close()


def test_a_small_scale_up_that_is_not_urgent_is_not_worth_a_restart() -> None:
    """Created at 1900/s each: 2·1900/0.9 = 4223/s -> 2200m. 2000/s asks 4445/s ->
    2300m, 4.5 % more, and keeps up (no lag): not worth a restart, held for good.
    2100/s asks 4667/s -> 2400m, 9 % more: after pendingScaleUpDuration, as before."""
    story = Story()
    assert story.step(metrics(1900, 1900)) == 2200
    cpus = [story.step(metrics(2000, 2000)) for _ in range(8)]
    assert cpus == [2200] * 8
    assert "rule worth_a_step" in story.annotations()[keys.SCALING_DECISION]
    cpus = [story.step(metrics(2100, 2100)) for _ in range(5)]
    assert cpus == [2200, 2200, 2200, 2200, 2400]
    assert "rule pending_up: needed" in story.annotations()[keys.SCALING_DECISION]
    story.replay.close()


def test_a_scale_up_under_the_same_cpu_limit_is_no_evidence_of_ineffectiveness() -> None:
    """In place, on a node with CPU to spare (pods burst to their whole-core limit),
    consumers really doing 1000/s per core against a ratePerCore of 1400: production
    rises to 1100/s per partition, beyond the 2 cores the 2-core limit gives. The
    scale-up 1200m -> 1900m keeps that limit, so throughput stays flat: that must not
    mark the instance ineffective, and the size must go on to a limit that drains."""
    replay = replace(ORDERS, update_mode="InPlaceOrRecreate", rate_per_core=1400).replay()
    backlog = consumed = 0.0
    marked = []
    limits = []
    for i in range(60):
        lam = 700.0 if i < 6 else 1100.0
        replay.step(advance_s=STEP_S, metrics=metrics(lam, consumed, backlog))
        (d,) = replay.cluster.observed()
        limit_m = d.current["consumer"].cpu_lim_m or 0
        limits.append(limit_m)
        marked.append("ineffective=true" in d.annotations.get(keys.SCALING_MEMORY, ""))
        capacity = 1000.0 * limit_m / 1000 / 2  # per partition, at the limit
        consumed = min(capacity, lam + backlog / STEP_S)
        backlog = max(0.0, backlog + (lam - consumed) * STEP_S)
    replay.close()
    assert limits[0] == 2000  # created at 1200m: a 2-core limit
    assert not any(marked)
    assert limits[-1] > 2000
    assert backlog == 0


# -- under Recreate with u 0.95 (the documented default), where the restart term
# λ·(1 + R/T) = 1.1·λ is larger than the headroom λ/u = 1.053·λ: the restart term sizes a
# resize and never asks for one (``headroom_share``); a node that lends the pods CPU
# beyond their request holds a scale-up that is not urgent (``bursting``).

RECREATE = replace(ORDERS, target_utilization_percent=95)


def replay_of(consumer: ConsumerBuilder) -> Replay:
    return consumer.replay()


def cpu(replay: Replay) -> tuple[int, int]:
    """(request, limit) of the consumer container, millicores."""
    (d,) = replay.cluster.observed()
    resources = d.current["consumer"]
    return resources.cpu_req_m or 0, resources.cpu_lim_m or 0


def decision(replay: Replay) -> str:
    (d,) = replay.cluster.observed()
    return d.annotations[keys.SCALING_DECISION]


def step(replay: Replay, lam: float, consumed: float, behind: float = 0.0) -> int:
    replay.step(advance_s=STEP_S, metrics=metrics(lam, consumed, behind))
    return cpu(replay)[0]


def test_an_instance_that_keeps_up_with_headroom_is_not_restarted_for_its_restart() -> None:
    """1040/s each: the headroom asks 2·1040/0.95 = 2190/s -> 1100m, the restart term
    2·1040·1.1 = 2288/s -> 1200m. Created at 1100m and held there (before: created
    at 1200m; from 1100m, restarted to 1200m after pendingScaleUpDuration). 1100/s
    each passes the high-water mark (2316/s -> 1200m): the scale-up then is sized
    for its restart, 2·1100·1.1 = 2420/s -> 1300m, and back at 1040/s the band keeps it.
    """
    replay = replay_of(RECREATE)
    assert step(replay, 1040, 1040) == 1100
    assert "rule create" in decision(replay)
    assert [step(replay, 1040, 1040) for _ in range(12)] == [1100] * 12
    assert [step(replay, 1100, 1100) for _ in range(5)] == [1100] * 4 + [1300]
    assert "rule pending_up: needed" in decision(replay)
    assert [step(replay, 1040, 1040) for _ in range(30)] == [1300] * 30
    replay.close()


def test_a_node_that_lends_cpu_holds_a_scale_up_until_the_lag_grows() -> None:
    """Created at 1100m (a 2-core limit). 1300/s each is beyond what the request
    gives (2200/s), and the pods consume all of it: the node lends them CPU, and
    the limit (4000/s) covers the need (2·1300/0.95 = 2737/s): no restart for a
    guarantee, for as long as that lasts (before: a scale-up after
    pendingScaleUpDuration). When the node gets busy, the pods fall back to
    their request and the lag grows: the scale-up goes at once (urgent)."""
    replay = replay_of(RECREATE)
    assert step(replay, 1000, 1000) == 1100
    assert cpu(replay)[1] == 2000
    assert [step(replay, 1300, 1300) for _ in range(12)] == [1100] * 12
    assert "rule bursting" in decision(replay)
    assert "lent=true" in dict(replay.cluster.observed()[0].annotations)[keys.SCALING_MEMORY]
    assert step(replay, 1300, 1100, 60_000) > 1100
    assert "rule urgent" in decision(replay)
    replay.close()


# -- in place (R 5 s): an instance that keeps up asks for a scale-up only once
# production passes its request by RIDE_MARGIN (``ride_share``), so a node that lends
# the pods CPU shows it, and ``bursting`` then holds the request in place too.

IN_PLACE = replace(RECREATE, update_mode="InPlaceOrRecreate")


def test_in_place_a_lending_node_holds_the_request_until_the_lag_grows() -> None:
    """Created at 1100m (a 2-core limit). 1300/s each is 18 % beyond what the
    request gives (2200/s) and the pods consume all of it: the node lends them CPU
    and the limit (4000/s) covers 2·1300/0.95 = 2737/s, so the request stays
    (before: raised to 1400m after pendingScaleUpDuration, and the lending never
    seen again). When the node gets busy the lag grows: the scale-up goes at once."""
    replay = replay_of(IN_PLACE)
    assert step(replay, 1000, 1000) == 1100
    assert [step(replay, 1300, 1300) for _ in range(12)] == [1100] * 12
    assert "rule bursting" in decision(replay)
    assert step(replay, 1300, 1100, 60_000) > 1100
    assert "rule urgent" in decision(replay)
    replay.close()


def test_in_place_an_instance_that_keeps_up_is_not_scaled_up_for_headroom_alone() -> None:
    """1120/s each: the headroom asks 2·1120/0.95 = 2358/s -> 1200m (before: a
    scale-up after pendingScaleUpDuration), but the instance keeps up at 1100m
    (2240/s consumed, 2 % beyond its request: no evidence of lending either) and
    production has not passed the request by 10 %: it stays. Behind by 5.4 s
    (more than λ·R) while consuming what its request gives, it is within its room
    (``room``: half of tolerableLag) and stays (before: a scale-up after
    pendingScaleUpDuration). Once the lag passes the room (36 s), the headroom
    decides again: a scale-up after pendingScaleUpDuration."""
    replay = replay_of(IN_PLACE)
    assert step(replay, 1000, 1000) == 1100
    assert [step(replay, 1120, 1120) for _ in range(12)] == [1100] * 12
    assert "rule right-sized" in decision(replay) or "1100m" in decision(replay)
    assert [step(replay, 1120, 1100, 6_000) for _ in range(8)] == [1100] * 8
    cpus = [step(replay, 1120, 1100, 40_000) for _ in range(5)]
    assert cpus[:4] == [1100] * 4
    assert cpus[4] > 1100  # λ/u plus the backlog's drain over T: 1400m
    assert "rule pending_up: needed" in decision(replay)
    replay.close()


def test_in_place_a_burst_is_given_back_only_30_minutes_after_its_scale_up() -> None:
    """In place, 1000/s each, then 1300/s each for 10 minutes, with the lag growing
    (a busy node: consumption capped at the request). The scale-up is given back
    once the burst is over, but not within SETTLE_S (30 min) of it (``after_up``):
    a scale-down sooner and the next burst's scale-up would be an up-down-up
    (before: given back after pendingScaleDownDuration, 10 minutes after the burst)."""
    replay = replay_of(IN_PLACE)
    assert step(replay, 1000, 1000) == 1100
    cpus, t, up_at = [], 0.0, None
    for i in range(90):
        lam, behind = (1300.0, 20_000.0) if i < 20 else (1000.0, 0.0)
        consumed = 1100.0 if i < 20 else 1000.0
        cpus.append(step(replay, lam, consumed, behind))
        t += STEP_S
        if up_at is None and cpus[-1] > 1100:
            up_at = t
    assert up_at is not None
    downs = [STEP_S * (i + 1) for i in range(1, len(cpus)) if cpus[i] < cpus[i - 1]]
    assert downs, cpus
    assert downs[0] - up_at >= 1800
    assert "rule after_up" not in decision(replay)
    replay.close()


def test_in_place_the_explanation_says_when_a_keeping_up_instance_scales_up() -> None:
    """The ride level is in the explanation: 2·1300/1.1 = 2364/s (λ/u·u/(1 + 10 %))."""
    replay = replay_of(IN_PLACE)
    step(replay, 1000, 1000)
    step(replay, 1000, 1000)
    step(replay, 1300, 1300)
    assert "(in place, keeping up: scale up once lambda/1.1=2364/s passes the request)" in (
        decision(replay)
    )
    replay.close()


def _burst(replay: Replay, *, steps: int) -> list[tuple[float, int]]:
    """10 minutes of 1300/s each with the lag growing (a busy node), then ``steps``
    passes at 1000/s; (seconds since the burst began, request) after each pass."""
    cpus = []
    for i in range(steps + 20):
        lam, behind = (1300.0, 20_000.0) if i < 20 else (1000.0, 0.0)
        consumed = 1100.0 if i < 20 else 1000.0
        cpus.append((STEP_S * (i + 1), step(replay, lam, consumed, behind)))
    return cpus


def _ups_and_downs(cpus: list[tuple[float, int]], start: int) -> tuple[list[float], list[float]]:
    ups, downs, last = [], [], start
    for t, c in cpus:
        if c != last:
            (ups if c > last else downs).append(t)
        last = c
    return ups, downs


def test_in_place_a_burst_after_a_quiet_half_hour_is_given_back_when_it_is_over() -> None:
    """In place, 1000/s each for 36 minutes without a resize, then the burst of
    the test above. A run of scale-ups that follows a quiet window is an isolated
    rise: once the burst is over the scale-down goes back to the request the
    instance had before it (1100m) after pendingScaleDownDuration, within 30
    minutes of the scale-up (before: held until 30 minutes after it, ``after_up``).
    An up-down-up would need a second rise within the window, and none came in
    the window before."""
    replay = replay_of(IN_PLACE)
    assert [step(replay, 1000, 1000) for _ in range(70)] == [1100] * 70
    cpus = _burst(replay, steps=70)
    ups, downs = _ups_and_downs(cpus, 1100)
    assert ups, cpus
    assert downs, cpus
    assert downs[0] - ups[-1] < 1800
    assert cpus[-1][1] == 1100
    replay.close()


def test_in_place_a_second_burst_soon_after_an_isolated_one_is_held_the_whole_window() -> None:
    """The isolated burst above is given back; a second burst 15 minutes after that
    scale-down follows a resize within the window, so it is no isolated rise:
    its CPU is held 30 minutes after its scale-up (``after_up``), and the
    instance never goes up, down and up again within 30 minutes."""
    replay = replay_of(IN_PLACE)
    for _ in range(70):
        step(replay, 1000, 1000)
    first = _burst(replay, steps=50)
    _, downs = _ups_and_downs(first, 1100)
    assert downs, first
    second = _burst(replay, steps=70)
    ups, downs_after = _ups_and_downs(second, 1100)
    assert ups, second
    assert downs_after, second
    # The second rise came within the window after the first one's scale-down.
    assert first[-1][0] - downs[0] + ups[0] < 1800
    assert downs_after[0] - ups[-1] >= 1800
    replay.close()


def test_under_recreate_a_scale_down_is_sized_for_the_headroom_not_its_restart() -> None:
    """Recreate, 1020/s each: the headroom asks 2·1020/0.95 = 2148/s -> 1100m, the
    restart term 2·1020·1.1 = 2244/s -> 1200m. After a burst (1500/s each, the lag
    growing) the scale-down goes back to 1100m, the headroom (before: 1200m, sized
    for its own restart, and held there while production stayed: the 15 % band
    keeps 1200m -> 1100m from ever going). Its restart leaves λ·R behind (a lag of
    R = 30 s, under tolerableLag), which the headroom drains; nothing asks for the
    restart term back."""
    replay = replay_of(RECREATE)
    assert step(replay, 1020, 1020) == 1100
    cpus = [step(replay, 1500, 1100, 60_000) for _ in range(6)]
    assert max(cpus) > 1200
    after = [step(replay, 1020, 1020) for _ in range(60)]
    assert after[-1] == 1100
    assert "(scale down to lambda/u+backlog=" in decision(replay)
    assert [step(replay, 1020, 1020) for _ in range(30)] == [1100] * 30
    replay.close()


# -- in place, u 0.9 (``policy.spike``): a rise that only the held peak still asks for
# is no reason to scale up; a scale-up after its pending period goes to the need of its
# own pass. Closed loop: each partition consumes what the request gives at
# ratePerCore (a contended node), at most its production plus its backlog.

SPIKY = replace(ORDERS, update_mode="InPlaceOrRecreate")


def _contended(rates: list[float]) -> tuple[list[int], str]:
    """The request after each pass, and the last explanation written."""
    replay = replay_of(SPIKY)
    backlog, cpus = 0.0, []
    for lam in rates:
        capacity = cpus[-1] / 1000 * 2000 / 2 if cpus else lam
        consumed = min(capacity, lam + backlog / STEP_S)
        backlog = max(0.0, backlog + (lam - consumed) * STEP_S)
        cpus.append(step(replay, lam, consumed, backlog))
    explanation = decision(replay)
    replay.close()
    return cpus, explanation


def test_in_place_a_rise_of_a_minute_and_a_half_held_as_the_peak_scales_nothing_up() -> None:
    """1400/s each for three passes: beyond what 1200m gives (2400/s), so it asks for a
    scale-up; back at 1000/s the held peak (2·1400/0.9 = 3111/s) asks on until the
    pending period is over (before: 1600m then, for a rise already gone)."""
    cpus, explanation = _contended([1000.0] * 4 + [1400.0] * 3 + [1000.0] * 8)
    assert cpus == [1200] * 15
    assert "rule spike" in explanation


def test_in_place_a_scale_up_after_its_pending_period_is_sized_for_its_own_pass() -> None:
    """1400/s each from the 5th pass, with one pass of 1700/s in the pending period.
    After it (120 s), the pass at 1400/s asks 2·1400/0.9 = 3111/s, plus the backlog
    beyond λ·R and its restart term over T (about 270/s): 1700m. The held peak of the
    1700/s pass asked for 2100m (and was given it before)."""
    cpus, explanation = _contended([1000.0] * 4 + [1400.0, 1400.0, 1700.0, 1400.0, 1400.0])
    assert cpus == [1200] * 8 + [1700]
    assert "sized for this pass's need" in explanation
