"""The pass after a cut refreshing pass makes the writes that pass left (``continuing``).

Aspects tested (the operator's pipeline and ``acting.act`` with a write limit, over an
in-memory watch cache and a writer that records; a scripted Prometheus answer; no API
server), under both predictors, in place (the default update mode) and ``Recreate``:

- instances created before Prometheus answered take their first size from metrics (the
  adaptive predictor) or are stamped as sized (naive, compatibility row 79) in the first
  pass with an answer; that pass, cut by the limit, leaves the rest to the next pass,
  which has no refresh of its own but makes them: together the two write what one uncut
  pass would have, to the same resources;
- the continuation ends with the writes: the pass after it, with the same snapshot and
  nothing left, writes nothing;
- a pass that was cut without a refresh (creations) is not continued as refreshing, nor
  one whose spec changed before the next pass.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from konsumerator.api import manifests
from konsumerator.controllers import acting
from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, owner_index
from konsumerator.domain import planning
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.writing import Written
from konsumerator.prom.results import ProviderResult
from konsumerator.runtime.stores import Store
from konsumerator.simulating import observe

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
START = datetime(2026, 1, 1, tzinfo=UTC)
UID = "uid-orders"
PARTITIONS = 10


def manifest(*, predictor: str, update_mode: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] |= {"namespace": "default", "uid": UID, "generation": 1}
    spec = doc["spec"]
    spec.update(numPartitions=PARTITIONS, numPartitionsPerInstance=1)
    spec["autoscaler"] |= {"predictor": predictor, "updateMode": update_mode}
    return doc


def snapshot() -> MetricsSnapshot:
    """Every partition keeps up, each at its own rate (so instances differ in size)."""
    rates = {p: 300.0 + 150 * p for p in range(PARTITIONS)}
    return MetricsSnapshot(
        production=rates, consumption=dict(rates), offset=dict.fromkeys(rates, 10.0)
    )


class Writer:
    """Every apply lands in the watch cache, as the Deployment watch would show it."""

    def __init__(self, store: Store[ObservedDeployment]) -> None:
        self.store = store
        self.applied: list[str] = []

    async def apply(self, *, name: str, body: Mapping[str, Any], **_: Any) -> Written:
        self.applied.append(name)
        version = str(len(self.applied))
        self.store.upsert(replace(observe(body, owner_uid=UID), resource_version=version))
        return Written(
            namespace="default", name=name, uid=f"uid-{name}", generation=1,
            resource_version=version,
        )  # fmt: skip


class Limited:
    """``acting.act`` with a write limit the test sets pass by pass."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.limit = acting.SLICE

    async def act(self, *, plan: planning.Plan, namespace: str, owner_uid: str) -> Outcome:
        return await acting.act(
            client=None,  # type: ignore[arg-type]  # creations that succeed read nothing
            writer=self.writer,  # type: ignore[arg-type]
            plan=plan,
            namespace=namespace,
            owner_uid=owner_uid,
            limit=self.limit,
        )


class Answers:
    """Prometheus as the provider gives it: no answer until ``answer``; then the answer's
    one snapshot object, refreshed only in the pass right after ``answer``."""

    def __init__(self) -> None:
        self.snapshot: MetricsSnapshot | None = None
        self.fresh = False

    def answer(self) -> None:
        self.snapshot, self.fresh = snapshot(), True

    def forget(self, *, key: str) -> None:
        pass

    def seed(self, **_: Any) -> None:
        pass

    async def get(self, **_: Any) -> ProviderResult:
        fresh, self.fresh = self.fresh, False
        if self.snapshot is None:
            return ProviderResult(
                snapshot=None,
                synced_at=None,
                refreshed=False,
                error="no data",
                error_reason="NoData",
            )
        return ProviderResult(snapshot=self.snapshot, synced_at=START, refreshed=fresh)


class QuietReporter:
    async def status(self, **_: Any) -> bool:
        return False

    async def passed(self, **_: Any) -> None:
        pass


class Operator:
    def __init__(self, *, predictor: str, update_mode: str) -> None:
        self.doc = manifest(predictor=predictor, update_mode=update_mode)
        self.store: Store[ObservedDeployment] = Store(indexers={OWNER_INDEX: owner_index})
        self.writer = Writer(self.store)
        self.actuator = Limited(self.writer)
        self.metrics = Answers()
        self.now = START
        self.pipeline = Pipeline(
            deployments=self.store,
            provider=self.metrics,
            actuator=self.actuator,
            reporter=QuietReporter(),  # type: ignore[arg-type]
            now=lambda: self.now,
        )
        self.status = ConsumerStatus()

    def step(self, *, limit: int = acting.SLICE) -> list[str]:
        """One pass, 2 s after the last; the names it wrote."""
        self.now += timedelta(seconds=2)
        self.actuator.limit = limit
        before = len(self.writer.applied)
        source, spec = manifests.read(self.doc)
        done = asyncio.run(
            self.pipeline.run(key="default/orders", source=source, spec=spec, previous=self.status)
        )
        self.status = done.status
        return self.writer.applied[before:]

    def sizes(self) -> dict[str, object]:
        return {d.name: d.current for d in self.store.values()}


CASES = [
    pytest.param(predictor, mode, id=f"{predictor}-{mode}")
    for predictor in ("adaptive", "naive")
    for mode in ("InPlaceOrRecreate", "Recreate")
]


def created_before_the_answer(*, predictor: str, update_mode: str) -> Operator:
    op = Operator(predictor=predictor, update_mode=update_mode)
    assert len(op.step()) == PARTITIONS  # every instance, from the fallback
    op.metrics.answer()
    return op


@pytest.mark.parametrize(("predictor", "update_mode"), CASES)
def test_the_pass_after_a_cut_refreshing_pass_makes_the_writes_it_left(
    predictor: str, update_mode: str
) -> None:
    uncut = created_before_the_answer(predictor=predictor, update_mode=update_mode)
    wanted = uncut.step()
    assert len(wanted) == PARTITIONS  # every instance: a first size, or a stamp

    cut = created_before_the_answer(predictor=predictor, update_mode=update_mode)
    first = cut.step(limit=4)
    assert len(first) == 4
    rest = cut.step()
    assert sorted([*first, *rest]) == sorted(wanted)
    assert cut.sizes() == uncut.sizes()
    # Nothing was left: the next pass with the same snapshot is not a refreshing one.
    assert cut.step() == []


def test_a_pass_cut_without_a_refresh_is_not_continued_as_refreshing() -> None:
    """Creations cut before Prometheus answered: the next pass makes the rest from the
    fallback too; with no snapshot there is nothing to continue."""
    op = Operator(predictor="adaptive", update_mode="InPlaceOrRecreate")
    assert len(op.step(limit=4)) == 4
    assert len(op.step()) == PARTITIONS - 4
    assert op.step() == []


def test_a_changed_spec_is_not_continued_as_refreshing() -> None:
    """A spec changed between the cut pass and the next (a new config): what it asks of
    the sizes waits for the next refresh, as it did before passes were continued."""
    op = created_before_the_answer(predictor="naive", update_mode="Recreate")
    assert len(op.step(limit=4)) == 4
    op.doc["spec"]["autoscaler"]["prometheus"]["ratePerCore"] = 1000
    assert op.step() == []


# -- the restart budget is one refresh's, not one pass's --------------------------------


class Rates(Answers):
    """Prometheus answering the given production (consumed as produced), refreshed in
    the next pass."""

    def set(self, rates: Mapping[int, float]) -> None:
        self.snapshot = MetricsSnapshot(
            production=dict(rates), consumption=dict(rates), offset=dict.fromkeys(rates, 0.0)
        )
        self.fresh = True


def budgeted() -> Operator:
    """Naive, Recreate, a budget of one restart per refresh (10 % of 10 instances), no
    pending periods: every instance sized for 3,000 msg/s, then the production of the
    first five falls to 300 msg/s, five scale-downs of which the budget admits one."""
    op = Operator(predictor="naive", update_mode="Recreate")
    op.doc["spec"]["autoscaler"] |= {
        "restartBudgetPercent": 10,
        "pendingScaleDownDuration": "0s",
        "pendingScaleUpDuration": "0s",
    }
    op.metrics = Rates()
    op.pipeline._provider = op.metrics
    op.metrics.set(dict.fromkeys(range(PARTITIONS), 3000.0))
    assert len(op.step()) == PARTITIONS
    op.now += timedelta(seconds=60)
    op.metrics.set({p: 300.0 if p < 5 else 3000.0 for p in range(PARTITIONS)})
    return op


def restarted(op: Operator, *, before: dict[str, object]) -> list[str]:
    return sorted(name for name, current in op.sizes().items() if current != before[name])


def test_the_passes_continuing_a_cut_refresh_share_its_restart_budget() -> None:
    uncut = budgeted()
    before = uncut.sizes()
    uncut.step()
    assert restarted(uncut, before=before) == ["orders-consumer-0"]  # the budget: one

    cut = budgeted()
    assert cut.step(limit=1) == ["orders-consumer-0"]  # the restart; the holds are cut
    cut.step(limit=1)  # continued, and cut again
    cut.step()  # continued to the end
    assert cut.step() == []
    # One refresh, one restart, however many passes made its writes: the continued
    # passes made the holds the cut left, not restarts of a budget of their own.
    assert restarted(cut, before=before) == ["orders-consumer-0"]
    assert cut.sizes() == uncut.sizes()
