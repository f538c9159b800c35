"""One reconcile pass for every driver: the operator's wiring and ``simulate`` agree.

``Pipeline`` depends only on its ports (``controllers.ports``). Here the same
timeline is fed to two wirings of it:

* ``simulate``'s (``simulating.Replay``: the in-memory cluster as both the
  Deployments view and the actuator; the scorecard's Upstream policy drives
  the same ``Replay``, see tests/unit/sim/test_scorecard.py);
* the operator's shape: the Deployments view is the watch cache
  (``runtime.stores.Store`` with the owner index ``app.py`` installs), writes
  reach it as the watch delivers them, and Events go to the operator's
  ``EventReporter``.

Aspects tested: every pass decides the same writes (names, actions,
resources, scaling state), reports the same status (counters, conditions,
``lastSyncState``), and the operator's reporter records an Event per write.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from konsumerator.controllers.events import EventReporter
from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, owner_index
from konsumerator.domain import planning
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.eventing import EventSpec
from konsumerator.runtime.stores import Store, key_of
from konsumerator.scoring.policies import with_predictor
from konsumerator.simulating import (
    START,
    MemoryPods,
    Replay,
    TimelineMetrics,
    load_consumer,
    load_timeline,
    observe,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CONSUMERS = [
    ("consumer.yaml", None),
    ("consumer.yaml", "adaptive"),
    ("consumer-configmap.yaml", None),
    ("go-operator-sample.yaml", None),
]


class WatchedActuator:
    """Writes land in the watch cache as the Deployment watch would deliver them."""

    def __init__(self, store: Store[ObservedDeployment], *, owner_uid: str) -> None:
        self.store = store
        self.owner_uid = owner_uid
        self.version = 0
        # The pods, as a kubelet keeps them (in-place resizes actuated at once).
        self.pods = MemoryPods()

    async def act(self, *, plan: planning.Plan, namespace: str, owner_uid: str) -> Outcome:
        outcome = Outcome()
        for delete in plan.deletes:
            held = [d for d in self.store.values() if d.name == delete.name]
            for d in held:
                self.store.delete(key_of(d))
            outcome.done.append(delete)
        for apply in plan.applies:
            # Every write is a new resourceVersion, as the API server gives it.
            self.version += 1
            observed = observe(apply.body, owner_uid=self.owner_uid)
            self.store.upsert(replace(observed, resource_version=str(self.version)))
            self.pods.started(d=observed, template=apply.body["spec"].get("template", {}))
            outcome.done.append(apply)
        for resize in plan.resizes:
            self.pods.resize(resize)
            outcome.resized.append(resize)
        return outcome


class RecordedEvents:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def record(self, *, obj: object, type: str, reason: str, message: str) -> None:
        self.reasons.append(reason)

    async def record_all(self, *, obj: object, events: Iterable[EventSpec]) -> None:
        self.reasons.extend(e.reason for e in events)


def decisions(plan: planning.Plan) -> list[tuple[object, ...]]:
    return (
        [
            (a.name, a.action, dict(a.resources), a.scaling, a.cpu_shortage_m, a.body)
            for a in plan.applies
        ]
        + [(d.name, d.reason) for d in plan.deletes]
        + [(r.pod, dict(r.containers)) for r in plan.resizes]
    )


@pytest.mark.parametrize(("consumer", "predictor"), CONSUMERS)
def test_the_operators_wiring_and_simulate_decide_and_report_alike(
    consumer: str, predictor: str | None
) -> None:
    path = EXAMPLES / consumer
    source, spec = load_consumer(path.read_text(), source=str(path))
    if predictor is not None:
        spec = with_predictor(spec, predictor)
    steps = load_timeline((EXAMPLES / "timelines" / "incident.yaml").read_text(), source="t")
    replay = Replay(source=source, spec=spec)
    store: Store[ObservedDeployment] = Store(indexers={OWNER_INDEX: owner_index})
    metrics = TimelineMetrics()
    clock = [START]
    events = RecordedEvents()
    actuator = WatchedActuator(store, owner_uid=replay.source.uid)
    operator = Pipeline(
        deployments=store,
        pods=actuator.pods,
        provider=metrics,
        actuator=actuator,
        reporter=EventReporter(events=events),  # type: ignore[arg-type]
        now=lambda: clock[0],
    )
    status = ConsumerStatus()
    writes = 0
    try:
        for step in steps:
            simulated = replay.step(advance_s=step.advance_s, metrics=step.metrics)
            clock[0], metrics.answer = replay.now, step.metrics
            done = asyncio.run(
                operator.run(
                    key=replay.source.name, source=replay.source, spec=spec, previous=status
                )
            )
            status = done.status
            writes += len(done.plan.applies) + len(done.plan.deletes)
            assert decisions(done.plan) == decisions(simulated.plan)
            assert done.status == simulated.status
            assert done.requeue_after_s == simulated.requeue_after_s
    finally:
        replay.close()
    assert writes > 0
    assert (
        len(
            [
                r
                for r in events.reasons
                if r
                in {
                    "Created",
                    "Scaled",
                    "ResizedInPlace",
                    "ScalingStatus",
                    "Saturated",
                    "IneffectiveScaling",
                    "RolledOut",
                    "Deleted",
                }
            ]
        )
        == writes
    )
