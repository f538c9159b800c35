"""What a Pipeline remembers about in-place resizing between passes (``controllers.resizing``).

Aspects tested:

* a refusal is remembered for its instance until that instance is rolled out, or until
  none of the pods it was about is alive (a refusal of an old pod patched while a rollout
  replaces it does not outlive that pod);
* a server without ``pods/resize`` is remembered for the Consumer, and the Pipeline then
  plans it as ``Recreate`` (a target left from in-place mode rolls out);
* the time from a patch to its actuation is measured once, on the pass that sees it,
  on the injected clock; a pod that went away is dropped;
* fallbacks are counted per instance, and ``forget`` drops everything of a Consumer.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.resizing import ResizeMemory
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.planning import Action, Apply, Plan
from konsumerator.domain.pods import ObservedPod, PodResize
from konsumerator.domain.resources import Resources
from konsumerator.domain.scaling import ScalingState, ScalingStatus
from konsumerator.domain.status import ConsumerStatus
from konsumerator.simulating import Replay, load_consumer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
R1 = Resources(cpu_req_m=1000)
R2 = Resources(cpu_req_m=2000)
EMPTY = Plan(
    applies=(),
    deletes=(),
    counters=None,  # type: ignore[arg-type]
    instances=(),
    conflicts=(),
    requeue_after_s=None,
    template_hash="",
)


def pod(spec: Resources, actual: Resources, *, uid: str = "u") -> ObservedPod:
    return ObservedPod(
        name="p",
        namespace="ns",
        uid=uid,
        deployment="c-0",
        spec=MappingProxyType({"app": spec}),
        actual=MappingProxyType({"app": actual}),
        running=True,
    )


PATCHED = replace(
    EMPTY, resizes=(PodResize(pod="p", uid="u", instance="c-0", containers={"app": R2}),)
)
REFUSED = Outcome(resize_refused={"c-0": "pod p: QoS"})


def rolled_out(name: str) -> Apply:
    return Apply(
        name=name,
        action=Action.ROLLOUT,
        message="",
        uid="d",
        index=0,
        partitions=(0,),
        resources={"app": R2},
        scaling=ScalingState(status=ScalingStatus.RUNNING, since=T0),
        cpu_shortage_m=0,
        render=dict,
        fell_back="pod p: QoS",
    )


def test_a_refusal_lasts_until_the_instance_is_rolled_out():
    memory = ResizeMemory()
    counts = memory.acted("k", plan=PATCHED, outcome=REFUSED, now=T0)
    assert counts["refused"] == 1
    assert memory.refused("k", pods=[pod(R1, R1)]) == {"c-0": "pod p: QoS"}

    counts = memory.acted("k", plan=EMPTY, outcome=Outcome(done=[rolled_out("c-0")]), now=T0)
    assert counts["fell_back"] == 1
    assert memory.refused("k", pods=[pod(R1, R1)]) == {}
    assert memory.fell_back("k") == 1


def test_a_refusal_does_not_outlive_the_pods_it_was_about():
    """The old pod of a fallback rollout is patched (and refused) while it still runs;
    once it is gone, the instance's next resize is tried in place again."""
    memory = ResizeMemory()
    memory.acted("k", plan=PATCHED, outcome=REFUSED, now=T0)
    assert memory.refused("k", pods=[pod(R1, R1), pod(R2, R2, uid="new")]) == {"c-0": "pod p: QoS"}
    assert memory.refused("k", pods=[replace(pod(R1, R1), deleting=True)]) == {}
    assert memory.refused("k", pods=[pod(R1, R1)]) == {}


def test_a_refusal_in_the_pass_that_rolls_the_instance_out_is_not_kept():
    memory = ResizeMemory()
    outcome = replace(REFUSED, done=[rolled_out("c-0")])
    memory.acted("k", plan=PATCHED, outcome=outcome, now=T0)
    assert memory.refused("k", pods=[pod(R1, R1)]) == {}


def test_actuation_is_timed_once_on_the_injected_clock():
    memory = ResizeMemory()
    sent = PodResize(pod="p", uid="u", instance="c-0", containers={"app": R2})
    memory.acted("k", plan=EMPTY, outcome=Outcome(resized=[sent]), now=T0)
    assert memory.actuated("k", pods=[pod(R2, R1)], now=T0 + timedelta(seconds=1)) == []
    assert memory.actuated("k", pods=[pod(R2, R2)], now=T0 + timedelta(seconds=3)) == [3.0]
    assert memory.actuated("k", pods=[pod(R2, R2)], now=T0 + timedelta(seconds=9)) == []


def test_a_pod_that_went_away_is_not_timed():
    memory = ResizeMemory()
    sent = PodResize(pod="p", uid="u", instance="c-0", containers={"app": R2})
    memory.acted("k", plan=EMPTY, outcome=Outcome(resized=[sent]), now=T0)
    assert memory.actuated("k", pods=[], now=T0) == []
    assert memory.actuated("k", pods=[pod(R2, R2)], now=T0) == []


def test_forget_drops_a_consumer():
    memory = ResizeMemory()
    memory.acted("k", plan=EMPTY, outcome=Outcome(resize_unsupported=True), now=T0)
    assert memory.unsupported("k")
    memory.forget("k")
    assert not memory.unsupported("k")
    assert memory.fell_back("k") == 0


class NoResize:
    """An actuator over the replay's cluster whose server has no pods/resize."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.plans: list[Plan] = []

    async def act(self, *, plan, namespace, owner_uid):
        self.plans.append(plan)
        trimmed = Plan(
            **{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "resizes": ()}
        )
        outcome = await self.inner.act(plan=trimmed, namespace=namespace, owner_uid=owner_uid)
        outcome.resize_unsupported = bool(plan.resizes)
        return outcome


def test_a_server_without_pods_resize_makes_the_consumer_recreate():
    example = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
    source, spec = load_consumer(example.read_text(), source=str(example))
    replay = Replay(source=source, spec=spec)
    actuator = NoResize(replay.cluster)
    replay.pipeline._actuator = actuator  # the same pipeline, another server
    try:

        def snap(rate: float, lag: float) -> MetricsSnapshot:
            parts = range(10)
            return MetricsSnapshot(
                production=MappingProxyType(dict.fromkeys(parts, rate)),
                consumption=MappingProxyType(dict.fromkeys(parts, rate)),
                offset=MappingProxyType(dict.fromkeys(parts, rate * lag)),
            )

        replay.step(advance_s=0, metrics=snap(1000.0, 0))
        for _ in range(12):
            replay.step(advance_s=61, metrics=snap(4000.0, 600))
        actions = [a.action for p in actuator.plans for a in p.applies]
    finally:
        replay.close()
    assert Action.RESIZE_IN_PLACE in actions  # tried in place first
    first = actions.index(Action.RESIZE_IN_PLACE)
    assert Action.ROLLOUT in actions[first:]  # then the target went into the template
    assert replay.pipeline._resizes.unsupported(replay.source.name)
    assert isinstance(replay.status, ConsumerStatus)
