"""A template rollout reaches every outdated instance or none (``controllers.vetting``).

Aspects tested (the act step over a writer that answers dry runs and writes as told; no
API server; the real apiserver's side is ``tests/cluster/test_hostile_partial_refusals.py``):

* a dry run refused for one instance holds every rollout of the pass: no real write,
  the failures name that instance and the apiserver's words, and the other writes of the
  plan (a creation) still go ahead;
* a refusal of the first rollout costs one dry run, not one per instance, and says the
  others were not tried;
* at most ``limit`` dry runs a pass, the rest deferred to the next passes, and no
  rollout before every one has passed; a retry dry-runs only those not accepted yet;
* accepted, the generation is dry-run once: the next passes of the same template write
  without dry runs; a new template is dry-run again;
* a conflict in a dry run holds the rollouts and asks for a retry pass, reporting no
  failure;
* in-place fallbacks (one instance's own target) are not held.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from support.pipelines import NOW, UID, manifest

from konsumerator.api import manifests
from konsumerator.api.v1 import to_config
from konsumerator.controllers import acting, vetting
from konsumerator.controllers.outcomes import Outcome
from konsumerator.domain import planning
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.planning import Action
from konsumerator.domain.specs import Owner
from konsumerator.kube.writing import Written
from konsumerator.runtime import errors
from konsumerator.simulating import observe

INSTANCES = 5


def _plan(
    *, image: str, observed: list[ObservedDeployment], partitions: int = INSTANCES
) -> planning.Plan:
    doc = manifest(partitions=partitions)
    doc["spec"]["numPartitionsPerInstance"] = 1
    doc["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]["image"] = image
    source, spec = manifests.read(doc)
    return planning.plan(
        config=to_config(spec, paused=False),
        owner=Owner(api_version="v1", kind="Consumer", name=source.name, uid=UID),
        deployments=observed,
        metrics=planning.Metrics(),
        now=NOW,
    )


def _running(image: str) -> list[ObservedDeployment]:
    """The instances as the watch shows them once created with ``image``."""
    return [observe(a.render(), owner_uid=UID) for a in _plan(image=image, observed=[]).applies]


class Writer:
    """Refuses what ``refuse(name, dry_run)`` says; records dry runs and real writes."""

    def __init__(self, refuse: Any = None, error: type[errors.ApiError] = errors.Forbidden) -> None:
        self.refuse = refuse or (lambda name, dry_run: False)
        self.error = error
        self.dry_runs: list[str] = []
        self.written: list[str] = []

    async def apply(
        self, *, name: str, body: Mapping[str, Any], dry_run: bool = False, **_: Any
    ) -> Written:
        (self.dry_runs if dry_run else self.written).append(name)
        if self.refuse(name, dry_run):
            raise self.error(status=403, reason="Forbidden", message=f"{name}: denied by policy")
        return Written(namespace="default", name=name, uid=f"u-{name}", generation=1,
                       resource_version="1")  # fmt: skip


def _act(
    plan: planning.Plan, writer: Writer, vetted: vetting.Vetting, *, limit: int = acting.SLICE
) -> Outcome:
    return asyncio.run(
        acting.act(
            client=None,  # type: ignore[arg-type]  # creations that succeed read nothing
            writer=writer,  # type: ignore[arg-type]
            plan=plan,
            namespace="default",
            owner_uid=UID,
            vetted=vetted,
            limit=limit,
        )
    )


def test_a_dry_run_refused_for_one_instance_holds_every_rollout() -> None:
    plan = _plan(image="new:2", observed=_running("old:1"), partitions=INSTANCES + 1)
    rollouts = [a.name for a in plan.applies if a.action is Action.ROLLOUT]
    created = [a.name for a in plan.applies if a.action is Action.CREATE]
    assert len(rollouts) == INSTANCES
    assert len(created) == 1
    refused = rollouts[2]
    writer = Writer(refuse=lambda name, dry_run: name == refused)
    outcome = _act(plan, writer, vetting.Vetting())
    assert sorted(writer.dry_runs) == sorted(rollouts)
    assert writer.written == created
    assert refused in outcome.failures[0]
    assert f"none of the {INSTANCES} outdated instances" in outcome.failures[0]
    assert outcome.failures[1:] == [
        f"rollout {refused}: 403 Forbidden: {refused}: denied by policy"
    ]
    assert outcome.refused["update"] == 1


def test_a_refused_first_rollout_costs_one_dry_run() -> None:
    plan = _plan(image="new:2", observed=_running("old:1"))
    writer = Writer(refuse=lambda name, dry_run: True)
    outcome = _act(plan, writer, vetting.Vetting())
    assert len(writer.dry_runs) == 1
    assert writer.written == []
    assert f"the other {INSTANCES - 1} were not tried" in outcome.failures[0]


def test_an_accepted_generation_is_dry_run_once() -> None:
    vetted = vetting.Vetting()
    plan = _plan(image="new:2", observed=_running("old:1"))
    first = Writer()
    _act(plan, first, vetted)
    assert len(first.dry_runs) == INSTANCES
    assert len(first.written) == INSTANCES
    again = Writer()
    _act(plan, again, vetted)
    assert again.dry_runs == []
    assert len(again.written) == INSTANCES
    newer = Writer()
    _act(_plan(image="new:3", observed=_running("old:1")), newer, vetted)
    assert len(newer.dry_runs) == INSTANCES


def test_a_wave_of_dry_runs_is_cut_into_passes_and_the_rollouts_wait_for_all() -> None:
    vetted = vetting.Vetting()
    plan = _plan(image="new:2", observed=_running("old:1"))
    writers = [Writer() for _ in range(3)]
    outcomes = [_act(plan, w, vetted, limit=2) for w in writers]
    assert [len(w.dry_runs) for w in writers] == [2, 2, 1]
    assert [len(w.written) for w in writers] == [0, 0, 2]
    assert [o.deferred for o in outcomes] == [3, 1, 3]
    assert len({name for w in writers for name in w.dry_runs}) == INSTANCES


def test_a_retry_dry_runs_only_the_instances_not_accepted_yet() -> None:
    vetted = vetting.Vetting()
    plan = _plan(image="new:2", observed=_running("old:1"))
    refused = plan.applies[3].name
    _act(plan, Writer(refuse=lambda name, dry_run: name == refused), vetted)
    retry = Writer()
    _act(plan, retry, vetted)
    assert retry.dry_runs == [refused]
    assert len(retry.written) == INSTANCES


def test_a_conflicting_dry_run_holds_the_rollouts_and_asks_for_a_retry() -> None:
    plan = _plan(image="new:2", observed=_running("old:1"))
    writer = Writer(refuse=lambda name, dry_run: name.endswith("-3"), error=errors.Conflict)
    outcome = _act(plan, writer, vetting.Vetting())
    assert writer.written == []
    assert outcome.retry
    assert outcome.failures == []


@pytest.mark.parametrize(
    ("action", "fell_back", "held"),
    [
        (Action.ROLLOUT, None, True),
        (Action.ROLLOUT, "a pod's resize is Infeasible", False),
        (Action.CREATE, None, False),
        (Action.SCALE, None, False),
    ],
)
def test_only_template_rollouts_are_held(action: Action, fell_back: str | None, held: bool) -> None:
    item = _plan(image="new:2", observed=[]).applies[0]
    assert vetting.gated(_with(item, action=action, fell_back=fell_back)) is held


def _with(item: planning.Apply, **changes: Any) -> planning.Apply:
    return dataclasses.replace(item, **changes)
