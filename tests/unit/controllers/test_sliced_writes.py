"""A pass makes at most ``acting.SLICE`` writes and asks for the next pass for the rest.

Aspects tested (the operator's pipeline and actuator over an in-memory watch cache and a
writer that records; no API server):
- ``act`` with a limit makes that many writes, in plan order, and reports the rest as
  deferred; with room for all, nothing is deferred;
- a plan lists its creations before its writes to existing Deployments, so a pass cut
  by the limit creates the missing instances first and defers the rollouts, but for a
  tenth of the slice: creations refused pass after pass never starve the rollouts;
- once another key waits for a worker (``contended``), ``act`` starts no write after
  ``yield_after_s`` of writing and ``min_writes`` writes, and defers the rest; nobody
  waiting, it writes on;
- a reconcile whose writes were cut asks for another pass at once (``Result(requeue=True)``),
  and passes in a row create every Deployment, each at most the limit, the last one
  asking for none (the work queue lets waiting Consumers go between them:
  ``tests/unit/runtime/test_controller.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from support.pipelines import NOW, UID, manifest, owned_store, pipeline, reconcile, written

from konsumerator.api import manifests
from konsumerator.api.v1 import to_config
from konsumerator.controllers import acting
from konsumerator.domain import planning
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.specs import Owner
from konsumerator.kube.writing import Written
from konsumerator.runtime import errors
from konsumerator.runtime.stores import Store
from konsumerator.simulating import observe


class RecordingWriter:
    """Every apply lands in the watch cache, as the Deployment watch would show it."""

    def __init__(self, store: Store[ObservedDeployment]) -> None:
        self.store = store
        self.applied: list[str] = []

    async def apply(self, *, name: str, body: Mapping[str, Any], **_: Any) -> Written:
        self.applied.append(name)
        self.store.upsert(observe(body, owner_uid=UID))
        return written(namespace="default", name=name, count=len(self.applied))


def missing_plan(
    *,
    partitions: int = 10,
    doc: dict[str, Any] | None = None,
    deployments: tuple[ObservedDeployment, ...] = (),
) -> planning.Plan:
    source, spec = manifests.read(manifest(partitions=partitions) if doc is None else doc)
    return planning.plan(
        config=to_config(spec, paused=False),
        owner=Owner(api_version="v1", kind="Consumer", name=source.name, uid=UID),
        deployments=deployments,
        metrics=planning.Metrics(),
        now=NOW,
    )


def test_a_cut_pass_creates_the_missing_instances_before_it_rolls_out_the_others() -> None:
    """Instances 0-2 run an older image (each a rollout), 3 and 4 are missing: with room
    for two writes, the pass creates 3 and 4 and defers the three rollouts."""
    old = manifest()
    old["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]["image"] += "-old"
    running = tuple(observe(a.render(), owner_uid=UID) for a in missing_plan(doc=old).applies[:3])
    plan = missing_plan(deployments=running)
    assert [(a.index, a.action) for a in plan.applies] == [
        (3, planning.Action.CREATE),
        (4, planning.Action.CREATE),
        (0, planning.Action.ROLLOUT),
        (1, planning.Action.ROLLOUT),
        (2, planning.Action.ROLLOUT),
    ]
    writer = RecordingWriter(Store())
    outcome = asyncio.run(
        acting.act(
            client=None,  # type: ignore[arg-type]  # creations that succeed read nothing
            writer=writer,  # type: ignore[arg-type]
            plan=plan,
            namespace="default",
            owner_uid=UID,
            concurrency=1,
            limit=2,
        )
    )
    assert [item.index for item in outcome.done] == [3, 4]  # type: ignore[union-attr]
    assert outcome.deferred == 3


@pytest.mark.parametrize(("limit", "written"), [(2, 2), (4, 4), (5, 5), (9, 5)])
def test_act_writes_at_most_its_limit_in_plan_order_and_defers_the_rest(
    limit: int, written: int
) -> None:
    plan = missing_plan()
    assert len(plan.applies) == 5
    writer = RecordingWriter(Store())
    outcome = asyncio.run(
        acting.act(
            client=None,  # type: ignore[arg-type]  # creations that succeed read nothing
            writer=writer,  # type: ignore[arg-type]
            plan=plan,
            namespace="default",
            owner_uid=UID,
            limit=limit,
        )
    )
    assert sorted(writer.applied) == sorted(a.name for a in plan.applies[:written])
    assert [item.name for item in outcome.done] == writer.applied
    assert outcome.deferred == 5 - written


class SlowWriter(RecordingWriter):
    """Each write takes one second of a fake clock."""

    def __init__(self, store: Store[ObservedDeployment]) -> None:
        super().__init__(store)
        self.now = 0.0

    async def apply(self, *, name: str, body: Mapping[str, Any], **kw: Any) -> Written:
        self.now += 1.0
        return await super().apply(name=name, body=body, **kw)


@pytest.mark.parametrize(
    ("waiting", "min_writes", "written"), [(True, 2, 3), (True, 4, 4), (False, 2, 5)]
)
def test_act_gives_its_worker_up_after_a_while_only_when_another_key_waits(
    waiting: bool, min_writes: int, written: int
) -> None:
    """One write a second, 3 s before yielding: the 4th write would start at 3 s."""
    writer = SlowWriter(Store())
    outcome = asyncio.run(
        acting.act(
            client=None,  # type: ignore[arg-type]
            writer=writer,  # type: ignore[arg-type]
            plan=missing_plan(),
            namespace="default",
            owner_uid=UID,
            concurrency=1,
            contended=lambda: waiting,
            yield_after_s=3.0,
            min_writes=min_writes,
            clock=lambda: writer.now,
        )
    )
    assert len(writer.applied) == written
    assert outcome.deferred == 5 - written


def test_a_yielding_pass_first_writes_for_a_tenth_of_the_instances() -> None:
    """400 instances to create: 40 writes before the worker goes to the waiting key, so a
    wave is about ten passes, each planning every instance once."""
    writer = SlowWriter(Store())
    plan = missing_plan(partitions=800)
    assert len(plan.applies) == 400
    outcome = asyncio.run(
        acting.act(
            client=None,  # type: ignore[arg-type]
            writer=writer,  # type: ignore[arg-type]
            plan=plan,
            namespace="default",
            owner_uid=UID,
            concurrency=1,
            contended=lambda: True,
            yield_after_s=3.0,
            min_writes=1,
            clock=lambda: writer.now,
        )
    )
    assert len(writer.applied) == 40
    assert outcome.deferred == 360


def test_a_cut_pass_asks_for_the_next_at_once_until_every_deployment_exists() -> None:
    writer = RecordingWriter(owned_store())
    p = pipeline(store=writer.store, writer=writer, limit=2)
    results = []
    per_pass = []
    for _ in range(4):
        before = len(writer.applied)
        results.append(reconcile(p, manifest()))
        per_pass.append(len(writer.applied) - before)
    assert per_pass == [2, 2, 1, 0]
    assert [r.requeue for r in results] == [True, True, False, False]
    assert len(set(writer.applied)) == 5


class QuotaWriter(RecordingWriter):
    """The namespace's quota refuses every creation (``count/deployments.apps``); writes
    to existing Deployments go through."""

    async def apply(self, *, name: str, body: Mapping[str, Any], **kw: Any) -> Written:
        if kw.get("create_only"):
            raise errors.Forbidden(
                status=403, reason="Forbidden", message="exceeded quota: count/deployments.apps"
            )
        return await super().apply(name=name, body=body, **kw)


def test_creations_refused_every_pass_never_starve_the_rewrites() -> None:
    """Instances 0-4 run an older image (each a rollout), 5-24 are missing and the
    quota refuses their creation, pass after pass, which fills a slice of 20 writes.
    Creations go first (a missing instance consumes nothing), but not the whole slice:
    the rollouts take a tenth of it in every pass, instead of waiting for ever."""
    old = manifest(partitions=10)
    old["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]["image"] += "-old"
    running = tuple(observe(a.render(), owner_uid=UID) for a in missing_plan(doc=old).applies)
    plan = missing_plan(partitions=50, deployments=running)
    assert [a.action for a in plan.applies] == [planning.Action.CREATE] * 20 + [
        planning.Action.ROLLOUT
    ] * 5
    for _ in range(3):  # what the quota refuses stays refused
        outcome = asyncio.run(
            acting.act(
                client=None,  # type: ignore[arg-type]  # no creation gets as far as reading
                writer=QuotaWriter(Store()),  # type: ignore[arg-type]
                plan=plan,
                namespace="default",
                owner_uid=UID,
                concurrency=1,
                limit=20,
            )
        )
        assert len(outcome.failures) == 18  # 18 creations started, all refused
        assert [item.index for item in outcome.done] == [0, 1]  # type: ignore[union-attr]
        assert outcome.deferred == 5  # 2 creations and 3 rollouts
