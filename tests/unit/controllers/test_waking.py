"""Which Deployment watch events wake the Consumer's pass (``controllers.waking``).

Aspects tested:
- table: every change a pass reads wakes it (spec via generation, replicas, containers,
  labels, our annotations and anybody's, ownership, deletion, identity); the other
  controllers' bookkeeping does not (the deployment controller's revision annotation, status
  counters, observedGeneration, a new resourceVersion alone);
- additions and deletions always wake;
- a version that differs only in what drift does not compare (status, resourceVersion,
  the deployment controller's revision) keeps the planner's drift results (a bounded
  few), any other does not;
- every field of ``ObservedDeployment`` is placed: read by the pass (``WAKING``) or not,
  with a reason (``IGNORED``), never both, so a new field cannot be forgotten.
"""

import dataclasses
from types import MappingProxyType
from typing import Any

import pytest

from konsumerator.controllers import waking
from konsumerator.domain import keys
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.runtime.stores import ObjectKey, Store

BASE_ANNOTATIONS = {
    keys.CONSUMER_ID: "0",
    keys.PARTITION: "0",
    "deployment.kubernetes.io/revision": "1",
}


def deployment(**changes: Any) -> ObservedDeployment:
    fields: dict[str, Any] = {
        "name": "c-0",
        "namespace": "ns",
        "uid": "uid-1",
        "resource_version": "10",
        "labels": MappingProxyType({"app": "c"}),
        "annotations": MappingProxyType(BASE_ANNOTATIONS),
        "controller_uid": "owner",
        "containers": (ObservedContainer(name="consumer", requests={"cpu": "100m"}),),
        "replicas": 1,
        "generation": 1,
        "spec_json": b'{"replicas":1}',
    }
    fields.update(changes)
    return ObservedDeployment(**fields)


def annotated(**extra: str) -> MappingProxyType[str, str]:
    return MappingProxyType(BASE_ANNOTATIONS | extra)


WAKES = {
    "a new generation (spec edit)": {"generation": 2, "spec_json": b'{"replicas":2}'},
    "replicas": {"replicas": 3},
    "container resources": {
        "containers": (ObservedContainer(name="consumer", requests={"cpu": "200m"}),)
    },
    "a label": {"labels": MappingProxyType({"app": "other"})},
    "our annotation": {"annotations": annotated(**{keys.PARTITION: "1"})},
    "somebody's annotation": {"annotations": annotated(**{"example.com/owner": "team-a"})},
    "the controlling owner": {"controller_uid": "other"},
    "deletion started": {"deleting": True},
    "a re-created object": {"uid": "uid-2"},
}

QUIET = {
    "the deployment controller's revision": {
        "annotations": annotated(**{"deployment.kubernetes.io/revision": "2"}),
        "resource_version": "11",
    },
    "status counters": {
        "ready_replicas": 1,
        "available_replicas": 1,
        "updated_replicas": 1,
        "resource_version": "12",
    },
    "observedGeneration catching up": {"observed_generation": 1, "resource_version": "13"},
    "a new resourceVersion alone": {"resource_version": "14"},
}


@pytest.mark.parametrize("changes", WAKES.values(), ids=WAKES.keys())
def test_changes_a_pass_reads_wake_it(changes: dict[str, Any]) -> None:
    assert waking.deployment_wakes(deployment(), deployment(**changes))


@pytest.mark.parametrize("changes", QUIET.values(), ids=QUIET.keys())
def test_other_controllers_bookkeeping_does_not_wake_it(changes: dict[str, Any]) -> None:
    assert not waking.deployment_wakes(deployment(), deployment(**changes))


def test_additions_and_deletions_always_wake() -> None:
    assert waking.deployment_wakes(None, deployment())
    assert waking.deployment_wakes(deployment(), None)


def test_every_observed_field_is_either_read_or_ignored_with_a_reason() -> None:
    names = {f.name for f in dataclasses.fields(ObservedDeployment)}
    read, ignored = set(waking.WAKING), set(waking.IGNORED)
    assert not read & ignored
    assert read | ignored == names
    assert all(reason for reason in waking.IGNORED.values())


def remembered(d: ObservedDeployment) -> ObservedDeployment:
    d.drift_memo["intent"] = ("spec.replicas",)
    return d


CARRIES = {
    "status counters": ({"ready_replicas": 1, "resource_version": "11"}, True),
    "observedGeneration": ({"observed_generation": 1, "resource_version": "12"}, True),
    "the deployment controller's revision": (
        {"annotations": annotated(**{"deployment.kubernetes.io/revision": "2"})},
        True,
    ),
    "our annotation": ({"annotations": annotated(**{keys.PARTITION: "1"})}, False),
    "a label": ({"labels": MappingProxyType({"app": "other"})}, False),
    "the spec": ({"generation": 2, "spec_json": b'{"replicas":2}'}, False),
}


@pytest.mark.parametrize(("changes", "carried"), CARRIES.values(), ids=CARRIES.keys())
def test_a_version_drift_cannot_tell_apart_keeps_the_planners_drift_results(
    changes: dict[str, Any], carried: bool
) -> None:
    old, new = remembered(deployment()), deployment(**changes)
    waking.keep_drift_memo(old, new)
    assert new.drift_memo == ({"intent": ("spec.replicas",)} if carried else {})


def test_drift_results_are_carried_only_while_few() -> None:
    old = deployment()
    old.drift_memo.update(dict.fromkeys(range(waking.CARRIED_DRIFT_RESULTS + 1), ()))
    new = deployment(resource_version="11")
    waking.keep_drift_memo(old, new)
    assert new.drift_memo == {}
    waking.keep_drift_memo(None, new)
    waking.keep_drift_memo(new, None)


def test_a_store_update_of_status_only_keeps_them() -> None:
    """Wired as app.py does: the store's listener runs before any pass reads the cache."""
    store: Store[ObservedDeployment] = Store(indexers={})
    store.subscribe(waking.keep_drift_memo)
    store.upsert(remembered(deployment()))
    store.upsert(deployment(ready_replicas=1, resource_version="11"))
    found = store.get(ObjectKey("ns", "c-0"))
    assert found is not None
    assert found.resource_version == "11"
    assert found.drift_memo == {"intent": ("spec.replicas",)}
