"""A pass that runs before the watch has delivered the last passes' creations does not
send them again (``Pipeline._unawaited``, ``runtime.expecting``).

Aspects tested (the operator's pipeline and actuator over an in-memory watch cache that
the test feeds by hand, as a lagging watch would, a writer that records every apply,
and a virtual clock; no API server):
- the pass after a creation, the cache still behind, sends no write, and asks for no pass
  at once (no spin) but for one when the creations' expectation lapses, and for a later
  pass even when the deadline falls while it plans (a delay of 0 would schedule none);
- once the cache shows the creations, the expectations are gone (no leak) and nothing is
  written;
- a Deployment deleted right after our creation (the cache never showed it) is created
  again by the first pass after the timeout, not before;
- a Deployment the watch saw deleted while its pass was still creating the others is
  created again by the next pass (the expectation is recorded before the creations are
  sent);
- ours with its partitions garbled is repaired in place: nothing deleted or created;
- a creation that failed is not awaited: the next pass sends it again, and neither is
  any of a pass cancelled while creating;
- expectations are by owner UID: two Consumers in two namespaces with the same Deployment
  names each create theirs; a Consumer deleted and created again under its name (a new
  UID) creates its instances at once; a deleted Consumer's expectations are forgotten.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from support.pipelines import manifest, owned_store, pipeline, reconcile, written

from konsumerator.controllers.reconciling import Pipeline, WritesFailed
from konsumerator.domain import keys
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube.writing import Written
from konsumerator.runtime import errors
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.expecting import Expectations
from konsumerator.runtime.stores import ObjectKey, Store
from konsumerator.simulating import observe

TIMEOUT_S = 10.0
INSTANCES = 5  # the example's 10 partitions, 2 per instance


@dataclass
class VirtualClock:
    """A monotonic clock that moves ``tick`` seconds with every read: the time a pass
    takes between two reads."""

    now: float = 500.0
    tick: float = 0.0

    def __call__(self) -> float:
        now = self.now
        self.now += self.tick
        return now


@dataclass
class LaggingWatch:
    """Records every apply; what it wrote reaches the cache only when ``deliver`` says."""

    store: Store[ObservedDeployment]
    applied: list[tuple[str, str]] = field(default_factory=list)
    written: list[ObservedDeployment] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refuse_creations: bool = False
    # Called with each name before it is written: what the watch delivers, or what
    # happens to the pass, while the creations are in flight.
    during: Callable[[str], None] = lambda name: None

    async def apply(
        self, *, namespace: str, name: str, body: Mapping[str, Any], **kw: Any
    ) -> Written:
        self.during(name)
        if self.refuse_creations and kw.get("create_only"):
            raise errors.Forbidden(
                status=403, reason="Forbidden", message="exceeded quota: count/deployments.apps"
            )
        self.applied.append((namespace, name))
        owner = body["metadata"]["ownerReferences"][0]["uid"]
        self.written.append(observe(body, owner_uid=owner))
        return written(namespace=namespace, name=name, count=len(self.applied))

    async def delete(self, *, namespace: str, name: str, **kw: Any) -> None:
        self.deleted.append(name)

    def deliver(self) -> None:
        for d in self.written:
            self.store.upsert(d)
        self.written.clear()


@dataclass
class Setup:
    pipeline: Pipeline
    watch: LaggingWatch
    clock: VirtualClock
    expectations: Expectations

    def reconcile(self, doc: dict[str, Any] | None = None) -> Result:
        return reconcile(self.pipeline, manifest() if doc is None else doc)

    def sent(self, pass_: Any) -> list[tuple[str, str]]:
        before = len(self.watch.applied)
        pass_()
        return self.watch.applied[before:]


def setup() -> Setup:
    watch = LaggingWatch(owned_store())
    clock = VirtualClock()
    expectations = Expectations(timeout_s=TIMEOUT_S, clock=clock)
    p = pipeline(store=watch.store, writer=watch, expectations=expectations)
    return Setup(pipeline=p, watch=watch, clock=clock, expectations=expectations)


def test_a_pass_before_the_watch_delivers_sends_no_creation_and_does_not_spin() -> None:
    s = setup()
    assert len(s.sent(s.reconcile)) == INSTANCES
    s.clock.now += 1.0
    result: list[Result] = []
    assert s.sent(lambda: result.append(s.reconcile())) == []
    assert not result[0].requeue  # no pass at once: the watch's additions wake it
    assert result[0].requeue_after == pytest.approx(TIMEOUT_S - 1.0)


def test_a_pass_leaving_out_a_creation_that_lapses_as_it_plans_asks_for_a_later_pass() -> None:
    """The runtime requeues after ``requeue_after`` only when it is above 0; 0 or None
    schedules nothing. The expectations read the clock to decide what is awaited and
    again for how long, and a deadline can fall between the two reads: the pass must
    still ask for a later one, or a Deployment deleted right after our creation is never
    created again (nor, the delay being the sooner of the plan's and the expectation's,
    is the plan's own periodic pass)."""
    s = setup()
    s.reconcile()  # creates every instance at 500.0: awaited until 510.0
    # The next pass starts 0.1 s before the deadline and reads the clock again 0.2 s later.
    s.clock.now, s.clock.tick = 500.0 + TIMEOUT_S - 0.1, 0.2
    result: list[Result] = []
    assert s.sent(lambda: result.append(s.reconcile())) == []  # still awaited when looked at
    assert result[0].requeue or (result[0].requeue_after or 0) > 0, result[0]


def test_once_the_cache_shows_the_creations_nothing_is_awaited_or_written() -> None:
    s = setup()
    s.reconcile()
    s.watch.deliver()
    assert s.sent(s.reconcile) == []
    assert s.expectations.owners() == set()


@pytest.mark.parametrize(("elapsed", "created"), [(TIMEOUT_S - 0.5, 0), (TIMEOUT_S, 1)])
def test_a_deployment_deleted_right_after_creation_is_created_again_after_the_timeout(
    elapsed: float, created: int
) -> None:
    """Its addition and deletion both reached the cache before the next pass looked, so
    the cache never showed it: awaited until the timeout, created again then."""
    s = setup()
    s.reconcile()
    s.watch.deliver()
    s.watch.store.delete(ObjectKey("default", "orders-consumer-2"))
    s.clock.now += elapsed
    s.watch.written.clear()
    assert s.sent(s.reconcile) == [("default", "orders-consumer-2")] * created


def test_a_deployment_deleted_while_its_pass_still_creates_is_created_again_at_once() -> None:
    """The watch delivers the deletion of the first creation (a user's, a garbage
    collection) before the pass is back from sending the others: the expectation was
    recorded before the creations were sent, so the deletion settles it, and the next
    pass creates the Deployment again rather than after the timeout."""
    s = setup()

    def delete_first(name: str) -> None:
        if name == "orders-consumer-4":  # the first is written, the pass not back yet
            s.expectations.gone(
                owner="uid-orders", name="orders-consumer-0", uid="u-orders-consumer-0"
            )

    s.watch.during = delete_first
    s.reconcile()
    s.watch.during = lambda name: None
    s.watch.written.clear()
    assert s.sent(s.reconcile) == [("default", "orders-consumer-0")]


def test_ours_with_its_partitions_garbled_is_repaired_in_place_not_created_again() -> None:
    """Ours with its partitions garbled by a user is the instance its name says
    (``planning._claim``): one apply puts the annotation back on that very Deployment, and
    nothing is deleted, created or awaited. (It was deleted and created again under its
    name in one pass; the deletion of an older object of a name settling nothing is
    ``runtime.expecting``'s, tests/unit/runtime/test_expectations.py.)"""
    s = setup()
    s.reconcile()
    first = next(d for d in s.watch.written if d.name == "orders-consumer-0")
    garbled = dataclasses.replace(
        first,
        annotations=MappingProxyType(dict(first.annotations) | {keys.PARTITION: "banana"}),
    )
    s.watch.written.clear()
    s.watch.store.upsert(garbled)
    # (A rollout's dry run, then the apply: both to that one Deployment.)
    assert set(s.sent(s.reconcile)) == {("default", "orders-consumer-0")}
    assert s.watch.deleted == []
    repaired = s.watch.written[-1]
    assert repaired.uid == first.uid
    assert repaired.annotations[keys.PARTITION] == first.annotations[keys.PARTITION]


def test_a_pass_cancelled_while_creating_leaves_nothing_awaited() -> None:
    """Which creations a cancelled pass made is unknown (a lost lease cancels it midway):
    the next pass sends them all again rather than wait a minute for any."""
    s = setup()

    def cancel(name: str) -> None:
        if name == "orders-consumer-2":
            raise asyncio.CancelledError

    s.watch.during = cancel
    with pytest.raises(asyncio.CancelledError):
        s.reconcile()
    assert s.expectations.owners() == set()
    s.watch.during = lambda name: None
    assert len(s.sent(s.reconcile)) == INSTANCES


def test_a_deployment_the_cache_showed_and_lost_is_created_again_at_once() -> None:
    """Seen, the expectation settled: a later deletion is re-created by the next pass."""
    s = setup()
    s.reconcile()
    s.watch.deliver()
    s.reconcile()
    s.watch.store.delete(ObjectKey("default", "orders-consumer-2"))
    assert s.sent(s.reconcile) == [("default", "orders-consumer-2")]


def test_a_creation_that_failed_is_sent_again_by_the_next_pass() -> None:
    s = setup()
    s.watch.refuse_creations = True
    with pytest.raises(WritesFailed):
        s.reconcile()
    assert s.expectations.owners() == set()
    s.watch.refuse_creations = False
    assert len(s.sent(s.reconcile)) == INSTANCES


def test_two_consumers_with_the_same_names_in_two_namespaces_each_create_theirs() -> None:
    s = setup()
    s.reconcile(manifest(namespace="default", uid="uid-a"))
    sent = s.sent(lambda: s.reconcile(manifest(namespace="other", uid="uid-b")))
    assert sent == [("other", f"orders-consumer-{i}") for i in range(INSTANCES)]


def test_a_consumer_created_again_under_its_name_creates_its_instances_at_once() -> None:
    """The old Consumer's Deployments go with it (garbage collection): the new one, a new
    UID, has nothing awaited, and the old one's expectations are dropped."""
    s = setup()
    s.reconcile(manifest(uid="uid-old"))
    s.watch.written.clear()
    assert len(s.sent(lambda: s.reconcile(manifest(uid="uid-new")))) == INSTANCES
    assert s.expectations.owners() == {"uid-new"}


def test_a_deleted_consumers_expectations_are_forgotten() -> None:
    s = setup()
    s.reconcile()
    assert s.expectations.owners() == {"uid-orders"}
    s.pipeline.forget("default/orders")
    assert s.expectations.owners() == set()
