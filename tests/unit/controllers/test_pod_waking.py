"""Which pod and ReplicaSet watch events wake the Consumer's pass (``waking.PodWakes``).

Aspects tested:
- table: a pod starting, running or going away at its template's size under a Deployment
  with no other in-place target is quiet (no pass), a readiness change alone is nothing;
  a pod that needs a resize, one whose resize is actuated, a resize condition appearing
  or clearing, a kubelet reporting no resources, a pod edited by hand, any pod of an
  instance with an in-place target, and a pod whose Deployment is not cached wake it;
- table: a ReplicaSet wakes it only when its name, UID or controller changed and a pod it
  owns is not quiet;
- every field of ``ObservedPod`` is placed: compared (``POD_WAKING``) or not, with a reason
  (``POD_IGNORED``), never both;
- property: a quiet pod is invisible to planning: the same pass with and without it
  writes, patches and counts the same (the soundness of dropping its events).
"""

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from konsumerator.controllers import waking
from konsumerator.domain import keys, rendering
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.domain.planning import Metrics, plan
from konsumerator.domain.pods import ObservedPod, ObservedReplicaSet, Pending
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import Resources
from konsumerator.domain.specs import Autoscaling, Bounds, ConsumerConfig, Owner, UpdateMode
from konsumerator.simulating import MemoryCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)
G = 10**9
TEMPLATE = Resources(cpu_req_m=1000, mem_req_b=G, cpu_lim_m=1000, mem_lim_b=G)
BIGGER = Resources(cpu_req_m=2000, mem_req_b=G, cpu_lim_m=2000, mem_lim_b=G)
SIZES = {"template": TEMPLATE, "bigger": BIGGER}


def deployment(*, target: Resources | None = None) -> ObservedDeployment:
    annotations = {keys.CONSUMER_ID: "0", keys.PARTITION: "0"}
    if target is not None:
        annotations[keys.TARGET_RESOURCES] = rendering.target_annotation(
            {"app": target}, memory_format=Format.DECIMAL_SI
        )
    return ObservedDeployment(
        name="c-0",
        namespace="ns",
        uid="d-1",
        annotations=MappingProxyType(annotations),
        containers=(
            ObservedContainer(
                name="app",
                requests={"cpu": "1", "memory": "1G"},
                limits={"cpu": "1", "memory": "1G"},
            ),
        ),
    )


PLAIN = deployment()
TARGETED = deployment(target=BIGGER)
# The same as PLAIN: a target annotation that says the template's size.
PLAIN_WITH_TARGET = deployment(target=TEMPLATE)


def pod(**changes: Any) -> ObservedPod:
    """A pod of c-0 running at its template's size."""
    fields: dict[str, Any] = {
        "name": "c-0-h-x",
        "namespace": "ns",
        "uid": "p-1",
        "resource_version": "1",
        "deployment": "c-0",
        "owner_uid": "rs-1",
        "spec": MappingProxyType({"app": TEMPLATE}),
        "actual": MappingProxyType({"app": TEMPLATE}),
        "running": True,
    }
    fields.update(changes)
    return ObservedPod(**fields)


NEW = pod(actual=MappingProxyType({}), running=False, resource_version="0")
WAITING = pod(running=False)  # container statuses reported, not running yet
RUNNING = pod()

POD_CASES: list[
    tuple[str, ObservedDeployment | None, ObservedPod | None, ObservedPod | None, bool]
] = [
    # (id, its Deployment as cached, old, new, wakes)
    ("a-new-pod", PLAIN, None, NEW, False),
    ("container-statuses-appear", PLAIN, NEW, WAITING, False),
    ("it-starts-at-its-templates-size", PLAIN, WAITING, RUNNING, False),
    ("it-starts-at-a-target-equal-to-the-template", PLAIN_WITH_TARGET, WAITING, RUNNING, False),
    ("readiness-alone", PLAIN, RUNNING, dataclasses.replace(RUNNING, resource_version="9"), False),
    ("deletion-starts", PLAIN, RUNNING, pod(deleting=True), False),
    ("it-is-gone", PLAIN, RUNNING, None, False),
    ("a-running-pod-appears", PLAIN, None, RUNNING, False),
    ("it-starts-below-the-target", TARGETED, WAITING, RUNNING, True),
    ("a-new-pod-of-a-resized-instance", TARGETED, None, NEW, True),
    (
        "a-resize-is-actuated",
        TARGETED,
        pod(spec=MappingProxyType({"app": BIGGER})),
        pod(spec=MappingProxyType({"app": BIGGER}), actual=MappingProxyType({"app": BIGGER})),
        True,
    ),
    ("a-pod-of-a-resized-instance-goes", TARGETED, RUNNING, None, True),
    ("resize-deferred", PLAIN, RUNNING, pod(pending=Pending.DEFERRED, pending_since=T0), True),
    ("resize-infeasible-clears", PLAIN, pod(pending=Pending.INFEASIBLE), RUNNING, True),
    ("no-resources-reported", PLAIN, WAITING, pod(actual=MappingProxyType({"app": None})), True),
    ("edited-by-hand", PLAIN, RUNNING, pod(spec=MappingProxyType({"app": BIGGER})), True),
    ("deployment-not-cached", None, None, RUNNING, True),
]


def wakes_for(d: ObservedDeployment | None, pods: Sequence[ObservedPod] = ()) -> waking.PodWakes:
    return waking.PodWakes(
        deployment=lambda ns, name: (
            d if d is not None and (ns, name) == (d.namespace, d.name) else None
        ),
        deployments_by_uid=lambda uid: [d] if d is not None and d.uid == uid else [],
        instance_pods=lambda found: [p for p in pods if p.deployment == found.name],
    )


@pytest.mark.parametrize(
    ("d", "old", "new", "wakes"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES]
)
def test_a_pod_event_wakes_only_when_a_pass_derives_something_new(
    d: ObservedDeployment | None, old: ObservedPod | None, new: ObservedPod | None, wakes: bool
) -> None:
    assert wakes_for(d).pod(old, new) is wakes


def test_a_readiness_change_of_a_pod_that_is_read_does_not_wake_it() -> None:
    resizing = pod(spec=MappingProxyType({"app": BIGGER}))
    later = dataclasses.replace(resizing, resource_version="9", in_progress=True)
    assert not wakes_for(TARGETED).pod(resizing, later)


def rs(*, uid: str = "rs-1", controller: str | None = "d-1", rv: str = "1") -> ObservedReplicaSet:
    return ObservedReplicaSet(
        name="c-0-h", namespace="ns", uid=uid, resource_version=rv, controller_uid=controller
    )


RS_CASES: list[
    tuple[str, ObservedReplicaSet | None, ObservedReplicaSet | None, list[ObservedPod], bool]
] = [
    # (id, old, new, the cached pods, wakes); the Deployment is PLAIN
    ("new-with-no-pods-yet", None, rs(), [], False),
    ("new-with-quiet-pods", None, rs(), [RUNNING, NEW], False),
    ("new-after-a-pod-that-needs-a-pass", None, rs(), [pod(pending=Pending.INFEASIBLE)], True),
    ("status-only", rs(), rs(rv="2"), [pod(pending=Pending.INFEASIBLE)], False),
    ("new-controller", rs(), rs(controller="other"), [pod(pending=Pending.INFEASIBLE)], True),
    ("gone-with-quiet-pods", rs(), None, [RUNNING], False),
    ("gone-with-its-pod-resizing", rs(), None, [pod(pending=Pending.DEFERRED)], True),
    ("another-replicasets-pod", None, rs(uid="rs-2"), [pod(pending=Pending.INFEASIBLE)], False),
    ("not-our-deployments", None, rs(controller="other"), [pod(pending=Pending.INFEASIBLE)], False),
    ("ours-no-more", rs(), rs(controller=None), [pod(pending=Pending.INFEASIBLE)], True),
]


@pytest.mark.parametrize(
    ("old", "new", "pods", "wakes"), [c[1:] for c in RS_CASES], ids=[c[0] for c in RS_CASES]
)
def test_a_replicaset_event_wakes_only_through_a_pod_a_pass_reads(
    old: ObservedReplicaSet | None,
    new: ObservedReplicaSet | None,
    pods: list[ObservedPod],
    wakes: bool,
) -> None:
    assert wakes_for(PLAIN, pods).replicaset(old, new) is wakes


def test_every_pod_field_is_either_compared_or_ignored_with_a_reason() -> None:
    names = {f.name for f in dataclasses.fields(ObservedPod)}
    read, ignored = set(waking.POD_WAKING), set(waking.POD_IGNORED)
    assert not read & ignored
    assert read | ignored == names
    assert all(reason for reason in waking.POD_IGNORED.values())


# -- soundness: a quiet pod is invisible to planning -----------------------------------

M = 10**6
OWNER = Owner(api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="c", uid="u-1")
CONFIG = ConsumerConfig(
    name="c",
    namespace="ns",
    num_partitions=1,
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
        ram_per_core_b=1000 * M,
        tolerable_lag_s=10,
        pending_up_s=0,
        pending_down_s=0,
        min_sync_period_s=60,
    ),
    policies={"app": Bounds(min_cpu_m=100, min_mem_b=100 * M, max_cpu_m=8000)},
    update_mode=UpdateMode.IN_PLACE_OR_RECREATE,
)


def refreshed(rate: float, *, lag_s: float, at: datetime) -> Metrics:
    snapshot = MetricsSnapshot(
        production=MappingProxyType({0: rate}),
        consumption=MappingProxyType({0: rate}),
        offset=MappingProxyType({0: rate * lag_s}),
    )
    return Metrics(snapshot=snapshot, refreshed=True, synced_at=at)


def instance(*, resized: bool) -> tuple[ObservedDeployment, Metrics]:
    """c-0 as created (its template is its size), or after an in-place scale-up (a
    target other than the template); and the metrics a later pass that refreshes
    nothing sees."""
    cluster = MemoryCluster(owner_uid=OWNER.uid)
    passes = [(T0, refreshed(1000.0, lag_s=0, at=T0))]
    if resized:
        later = T0 + timedelta(minutes=2)
        passes.append((later, refreshed(3000.0, lag_s=60, at=later)))
    for at, m in passes:
        p = plan(
            config=CONFIG,
            owner=OWNER,
            deployments=cluster.observed(),
            metrics=m,
            now=at,
            pods={
                d.name: cluster.pods.by_index(index="", value=f"ns/{d.name}")
                for d in cluster.observed()
            },
        )
        for a in p.applies:
            cluster.apply(a.body)
    (d,) = cluster.observed()
    return d, dataclasses.replace(passes[-1][1], refreshed=False)


INSTANCES = {resized: instance(resized=resized) for resized in (False, True)}
assert [d.target != d.template_resources for d, _ in INSTANCES.values()] == [False, True]
MEMORY_BELOW = Resources(cpu_req_m=1000, mem_req_b=G // 2, cpu_lim_m=1000, mem_lim_b=G // 2)
SIZE = st.sampled_from([None, "template", "target", "bigger", "below"])


def size(name: str | None, d: ObservedDeployment) -> Resources | None:
    if name is None:
        return None
    return {
        "template": d.template_resources["app"],
        "target": d.current["app"],
        "bigger": BIGGER,
        "below": MEMORY_BELOW,
    }[name]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    resized=st.booleans(),
    spec=SIZE.filter(lambda s: s is not None),
    actual=SIZE,
    running=st.booleans(),
    deleting=st.booleans(),
    pending=st.sampled_from([None, *Pending]),
    other=st.sampled_from([None, "pending", "behind"]),
)
def test_a_quiet_pod_changes_nothing_a_pass_writes_patches_or_counts(
    resized: bool,
    spec: str,
    actual: str | None,
    running: bool,
    deleting: bool,
    pending: Pending | None,
    other: str | None,
) -> None:
    d, m = INSTANCES[resized]
    candidate = pod(
        uid="p-quiet",
        spec=MappingProxyType({"app": size(spec, d)}),
        actual=MappingProxyType({} if actual is None else {"app": size(actual, d)}),
        running=running,
        deleting=deleting,
        pending=pending,
        pending_since=None if pending is None else T0,
    )
    assume(wakes_for(d).quiet(candidate))
    # Another pod of the instance that a pass does read, or none.
    others = {
        None: [],
        "pending": [pod(uid="p-2", pending=Pending.DEFERRED, pending_since=T0)],
        "behind": [pod(uid="p-2", actual=MappingProxyType({"app": MEMORY_BELOW}))],
    }[other]
    later = T0 + timedelta(minutes=3)

    def passed(pods: list[ObservedPod]) -> tuple[object, ...]:
        p = plan(
            config=CONFIG, owner=OWNER, deployments=[d], metrics=m, now=later, pods={"c-0": pods}
        )
        writes = [(a.name, a.action, a.resources, a.scaling) for a in p.applies]
        return writes, p.resizes, p.in_place, p.deletes

    assert passed([*others, candidate]) == passed(others)
