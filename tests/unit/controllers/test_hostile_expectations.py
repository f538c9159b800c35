"""A pass that leaves an awaited creation out always asks for a later pass
(``runtime.expecting``, ``Pipeline._unawaited``).

The runtime requeues a key after ``Result.requeue_after`` only when it is above 0
(``runtime.controlling``: ``requeue_after > 0``); 0 or None schedules nothing. A pass
that leaves an awaited creation out must still ask for a later pass, or a Deployment
deleted right after our creation is never created again (and, as the delay is the
sooner of the plan's and the expectation's, the plan's own periodic pass is lost too).

Time passes during a pass: the expectations read the clock once to decide what is
awaited and again for how long, and a deadline can fall between the two reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from konsumerator.controllers.acting import KubeActuator
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, owner_index
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.writing import Written
from konsumerator.runtime.expecting import Expectations
from konsumerator.runtime.stores import Store

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT_S = 10.0


def manifest() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] |= {"namespace": "default", "uid": "uid-orders", "generation": 1}
    doc["spec"]["namespace"] = "default"
    doc["spec"].pop("autoscaler", None)
    return doc


@dataclass
class MovingClock:
    """A monotonic clock that moves ``tick`` seconds with every read: the time a pass
    takes between two reads."""

    now: float = 500.0
    tick: float = 0.0

    def __call__(self) -> float:
        now = self.now
        self.now += self.tick
        return now


@dataclass
class Writer:
    """Records every apply; nothing reaches the cache (the watch lags)."""

    applied: list[str]

    async def apply(self, *, namespace: str, name: str, body: Any, **kw: Any) -> Written:
        self.applied.append(name)
        return Written(
            namespace=namespace, name=name, uid=f"u-{name}", generation=1,
            resource_version=str(len(self.applied)),
        )  # fmt: skip


class NoMetrics:
    def forget(self, *, key: str) -> None:
        pass


class QuietReporter:
    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        return False

    async def passed(self, **_: Any) -> None:
        pass


def test_a_pass_that_leaves_an_awaited_creation_out_always_asks_for_a_later_pass() -> None:
    store: Store[ObservedDeployment] = Store(indexers={OWNER_INDEX: owner_index})
    writer = Writer(applied=[])
    clock = MovingClock()
    pipeline = Pipeline(
        deployments=store,
        provider=NoMetrics(),  # type: ignore[arg-type]
        actuator=KubeActuator(client=None, writer=writer),  # type: ignore[arg-type]
        reporter=QuietReporter(),  # type: ignore[arg-type]
        now=lambda: NOW,
        expectations=Expectations(timeout_s=TIMEOUT_S, clock=clock),
    )

    def reconcile() -> Any:
        return asyncio.run(
            pipeline.reconcile(
                key="default/orders", manifest=manifest(), previous=ConsumerStatus(), generation=1
            )
        )

    reconcile()  # creates every instance at 500.0: awaited until 510.0
    created = len(writer.applied)
    assert created > 0
    # The next pass starts 0.1 s before the deadline and reads the clock again 0.2 s later.
    clock.now, clock.tick = 500.0 + TIMEOUT_S - 0.1, 0.2
    result = reconcile()
    assert len(writer.applied) == created  # left out: still awaited when looked at
    assert result.requeue or (result.requeue_after is not None and result.requeue_after > 0), (
        f"a creation left out, and no later pass asked for: {result}"
    )
