"""In-place resizing decided (``updateMode: InPlaceOrRecreate``): rules and the patch body.

Aspects tested:

* A scale becomes RESIZE_IN_PLACE: the Deployment's template keeps its
  resources (no rollout), the target annotation carries the new size, and
  every running pod that differs gets a patch; creations and rollouts put the
  size in the template and patch nothing.
* ``pod_target`` / ``resize_pods`` (table): which pods and containers are
  patched; memory is never lowered in place; pods that are not
  running, being deleted or already at the target are left alone.
* ``roll_out_target`` (table): Infeasible, Deferred past the bound, or a
  refusal roll the instance out with the target; Deferred within the bound,
  or a template that already has the target, do not; Recreate mode rolls out
  a target left from in-place mode.
* An instance annotated ``disable-autoscaler`` is never resized in place: its pods
  keep what they run, a new one the size its template gives, also when the user set
  that template by hand (a target left from before the pause resized it back), and
  it is neither resized nor pending in the counters.
* The in-place counters (resized / pending) and the rendering: no GOMAXPROCS,
  GOMEMLIMIT from the template, the managed-by label on the pod template.
* The ``pods/resize`` body is a strategic merge patch by container name whose
  quantities read back as the resources (property-based), and the target
  annotation is read back exactly (property-based); an annotation that is
  not ours reads as absent, never an exception.
"""

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from konsumerator.domain import keys, rendering, rules
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import parse_target
from konsumerator.domain.planning import Action, Metrics, Plan, plan
from konsumerator.domain.pods import ObservedPod, Pending
from konsumerator.domain.qos import QoS, keep_class, qos_class
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import MAX_CPU_M, MAX_MEM_B, Resources, from_strings
from konsumerator.domain.specs import Autoscaling, Bounds, ConsumerConfig, Owner, UpdateMode
from konsumerator.domain.status import ConsumerStatus
from konsumerator.simulating import MemoryCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)
M = 10**6
OWNER = Owner(api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="orders", uid="u-1")


def config(mode: UpdateMode = UpdateMode.IN_PLACE_OR_RECREATE) -> ConsumerConfig:
    return ConsumerConfig(
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
        update_mode=mode,
    )


def metrics(rate: float, *, lag_s: float = 0.0, at: datetime = T0) -> Metrics:
    return Metrics(
        snapshot=MetricsSnapshot(
            production=MappingProxyType({0: rate}),
            consumption=MappingProxyType({0: rate}),
            offset=MappingProxyType({0: rate * lag_s}),
        ),
        refreshed=True,
        synced_at=at,
    )


def run(cluster: MemoryCluster, cfg: ConsumerConfig, m: Metrics, now: datetime, **kw: Any) -> Plan:
    """One pass over the in-memory cluster and its pods, its writes applied."""
    p = plan(
        config=cfg,
        owner=OWNER,
        deployments=cluster.observed(),
        metrics=m,
        now=now,
        pods={
            d.name: cluster.pods.by_index(index="", value=f"ns/{d.name}")
            for d in cluster.observed()
        },
        **kw,
    )
    for a in p.applies:
        cluster.apply(a.body)
    for r in p.resizes:
        cluster.pods.resize(r)
    return p


def app(body: dict[str, Any]) -> dict[str, Any]:
    (container,) = body["spec"]["template"]["spec"]["containers"]
    return container


def created(cfg: ConsumerConfig) -> MemoryCluster:
    cluster = MemoryCluster(owner_uid=OWNER.uid)
    first = run(cluster, cfg, metrics(1000.0), T0)
    assert [a.action for a in first.applies] == [Action.CREATE]
    return cluster


def test_a_scale_up_keeps_the_template_and_resizes_the_pod_in_place():
    cfg = config()
    cluster = created(cfg)
    (before,) = cluster.observed()
    (pod,) = cluster.pods.by_index(index="", value="ns/c-0")
    later = T0 + timedelta(minutes=2)
    scaled = run(cluster, cfg, metrics(3000.0, lag_s=60, at=later), later)
    (write,) = scaled.applies
    assert write.action is Action.RESIZE_IN_PLACE
    assert app(write.body)["resources"] == {
        "requests": {"cpu": "1", "memory": "1G"},
        "limits": {"cpu": "1", "memory": "1G"},
    }
    target = parse_target(write.body["metadata"]["annotations"][keys.TARGET_RESOURCES])
    assert target is not None
    assert (target["app"].cpu_req_m or 0) > (before.template_resources["app"].cpu_req_m or 0)
    (resize,) = scaled.resizes
    assert (resize.pod, resize.uid, resize.instance) == (pod.name, pod.uid, "c-0")
    # The pod was Guaranteed (requests = limits) and stays so: its CPU limit is the
    # target's request, its memory request the target's memory limit.
    assert resize.containers == {
        "app": replace(
            target["app"], cpu_lim_m=target["app"].cpu_req_m, mem_req_b=target["app"].mem_lim_b
        )
    }
    (after,) = cluster.observed()
    assert after.template_resources == before.template_resources
    assert after.current == target
    assert (cluster.pods.restarts, cluster.pods.resizes) == (0, 1)
    assert qos_class(cluster.pods.by_index(index="", value="ns/c-0")[0].spec) is QoS.GUARANTEED


def test_recreate_puts_the_size_in_the_template_and_patches_no_pod():
    cfg = config(UpdateMode.RECREATE)
    cluster = created(cfg)
    later = T0 + timedelta(minutes=2)
    scaled = run(cluster, cfg, metrics(3000.0, lag_s=60, at=later), later)
    (write,) = scaled.applies
    assert write.action is Action.SCALE
    assert app(write.body)["resources"]["requests"]["cpu"] != "1"
    assert keys.TARGET_RESOURCES not in write.body["metadata"]["annotations"]
    assert scaled.resizes == ()
    assert cluster.pods.restarts == 1


def test_a_pass_after_the_resize_writes_and_patches_nothing_and_counts_it_resized():
    cfg = config()
    cluster = created(cfg)
    later = T0 + timedelta(minutes=2)
    run(cluster, cfg, metrics(3000.0, lag_s=60, at=later), later)
    again = run(cluster, cfg, Metrics(snapshot=metrics(3000.0).snapshot, synced_at=later), later)
    assert (again.applies, again.resizes) == ((), ())
    assert (again.in_place.resized, again.in_place.pending) == (1, 0)


def test_a_new_pod_from_the_old_template_is_resized_without_a_deployment_write():
    cfg = config()
    cluster = created(cfg)
    later = T0 + timedelta(minutes=2)
    run(cluster, cfg, metrics(3000.0, lag_s=60, at=later), later)
    (d,) = cluster.observed()
    fresh = ObservedPod(
        name="c-0-new",
        namespace="ns",
        uid="uid-new",
        deployment="c-0",
        spec=d.template_resources,
        actual=d.template_resources,
        running=True,
    )
    p = plan(
        config=cfg,
        owner=OWNER,
        deployments=[d],
        metrics=Metrics(snapshot=metrics(3000.0).snapshot, synced_at=later),
        now=later,
        pods={"c-0": [fresh]},
    )
    assert p.applies == ()
    (resize,) = p.resizes
    assert (resize.pod, resize.uid) == ("c-0-new", "uid-new")
    assert resize.containers == rules.pod_target(fresh, d.current)
    assert p.in_place.pending == 1


HAND_SET = {"requests": {"cpu": "3", "memory": "1G"}, "limits": {"cpu": "3", "memory": "1G"}}


@pytest.mark.parametrize(
    ("template_resources", "why"),
    [
        (HAND_SET, "the user set the paused instance's template by hand: its new pod runs it"),
        (None, "its pod was replaced: the new one runs what the template gives"),
    ],
)
def test_a_paused_instance_is_never_resized_in_place(
    template_resources: dict[str, Any] | None, why: str
) -> None:
    cfg = config()
    cluster = created(cfg)
    later = T0 + timedelta(minutes=2)
    run(cluster, cfg, metrics(3000.0, lag_s=60, at=later), later)  # a target, in place
    (resized,) = cluster.observed()
    assert resized.target is not None
    body = json.loads(json.dumps(cluster._bodies["c-0"]))
    body["metadata"]["annotations"][keys.DISABLE_AUTOSCALER] = "true"
    if template_resources is not None:
        app(body)["resources"] = template_resources
    cluster.apply(body)
    (d,) = cluster.observed()
    cluster.pods.delete("c-0")
    cluster.pods.started(d=d, template=body["spec"]["template"])
    (pod,) = cluster.pods.by_index(index="", value="ns/c-0")
    assert pod.spec == d.template_resources != d.current, why
    for step in range(3):
        at = later + timedelta(minutes=2 * (step + 1))
        p = run(cluster, cfg, metrics(3000.0 * (step + 1), lag_s=60, at=at), at)
        assert (p.applies, p.resizes) == ((), ()), why
        assert (p.in_place.resized, p.in_place.pending) == (0, 0), why
    assert cluster.pods.by_index(index="", value="ns/c-0")[0].spec == d.template_resources


def test_rendering_in_place_sets_no_gomaxprocs_and_labels_the_pods():
    cfg = config()
    body = rendering.render(
        config=cfg,
        owner=OWNER,
        index=0,
        partitions=(0,),
        num_instances=1,
        resources={
            "app": Resources(cpu_req_m=3000, cpu_lim_m=3000, mem_req_b=2000 * M, mem_lim_b=2000 * M)
        },
        scaling=rules.ScalingState(status=rules.ScalingStatus.RUNNING, since=T0),
        cpu_shortage_m=0,
        hash_value="1",
        template_resources={
            "app": Resources(cpu_req_m=1000, cpu_lim_m=1000, mem_req_b=1000 * M, mem_lim_b=1000 * M)
        },
    )
    env = {e["name"]: e["value"] for e in app(body)["env"]}
    assert keys.ENV_GOMAXPROCS not in env
    assert env[keys.ENV_GOMEMLIMIT] == rendering.gomemlimit(1000 * M)
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "c", keys.LABEL_MANAGED_BY: keys.MANAGED_BY_VALUE}


SAME = Resources(cpu_req_m=-1)  # "the spec's", for ``pod``


def pod(spec: Resources, *, actual: Resources | None = SAME, **kw: Any) -> ObservedPod:
    defaults: dict[str, Any] = {
        "name": "p",
        "namespace": "ns",
        "uid": "uid-p",
        "deployment": "c-0",
        "spec": {"app": spec},
        "actual": {"app": spec if actual is SAME else actual},
        "running": True,
    }
    defaults.update(kw)
    return ObservedPod(**defaults)


R1 = Resources(cpu_req_m=1000, mem_req_b=1000 * M, cpu_lim_m=1000, mem_lim_b=1000 * M)
R2 = Resources(cpu_req_m=2000, mem_req_b=2000 * M, cpu_lim_m=2000, mem_lim_b=2000 * M)
R_HALF = Resources(cpu_req_m=500, mem_req_b=500 * M, cpu_lim_m=500, mem_lim_b=500 * M)


@pytest.mark.parametrize(
    ("observed", "target", "patched"),
    [
        pytest.param(pod(R1), R2, R2, id="scale-up-everything"),
        pytest.param(
            pod(R1),
            R_HALF,
            replace(R_HALF, mem_req_b=1000 * M, mem_lim_b=1000 * M),
            id="scale-down-keeps-the-memory",
        ),
        pytest.param(
            pod(R1),
            replace(R_HALF, mem_req_b=1000 * M, mem_lim_b=1000 * M),
            replace(R_HALF, mem_req_b=1000 * M, mem_lim_b=1000 * M),
            id="scale-down-cpu-only",
        ),
        pytest.param(
            pod(R1), replace(R1, mem_lim_b=None), None, id="no-memory-limit-keeps-the-pods"
        ),
        pytest.param(pod(R2), R2, None, id="already-at-target"),
        pytest.param(pod(R1, running=False), R2, None, id="not-running-yet"),
        pytest.param(pod(R1, deleting=True), R2, None, id="being-deleted"),
        pytest.param(
            pod(R1, actual=None),
            R2,
            None,
            id="kubelet-reports-no-resources",
        ),
        pytest.param(pod(R1), Resources(), None, id="container-without-resources-is-not-ours"),
    ],
)
def test_which_pods_and_containers_are_patched(observed, target, patched):
    cfg = config()
    ctx = rules.Context(
        config=cfg,
        owner=OWNER,
        num_instances=1,
        hash_value="1",
        memory_format=Format.DECIMAL_SI,
        sizing=None,  # type: ignore[arg-type]
        snapshot=None,
        refreshed=False,
        now=T0,
    )
    inst = rules.Instance(
        index=0,
        name="c-0",
        partitions=(0,),
        max_lag_s=0,
        lagging=False,
        critical=False,
        pods=(observed,),
    )
    found = rules.resize_pods(ctx, inst, target={"app": target})
    if patched is None:
        assert found == ()
    else:
        (resize,) = found
        assert dict(resize.containers) == {"app": patched}
        assert resize.uid == observed.uid


def with_target(template: Resources, target: Resources) -> Any:
    """An observed Deployment whose template has ``template`` and whose target is ``target``."""
    cfg = config()
    cluster = MemoryCluster(owner_uid=OWNER.uid)
    body = rendering.render(
        config=cfg,
        owner=OWNER,
        index=0,
        partitions=(0,),
        num_instances=1,
        resources={"app": target},
        scaling=rules.ScalingState(status=rules.ScalingStatus.RUNNING, since=T0),
        cpu_shortage_m=0,
        hash_value=rendering.template_hash(config=cfg, num_instances=1),
        template_resources={"app": template},
    )
    cluster.apply(body)
    (d,) = cluster.observed()
    return d


@pytest.mark.parametrize(
    ("template", "pending", "since_s", "refused", "mode", "rolls_out"),
    [
        pytest.param(
            R1, Pending.INFEASIBLE, 0, None, UpdateMode.IN_PLACE_OR_RECREATE, True, id="infeasible"
        ),
        pytest.param(
            R1,
            Pending.DEFERRED,
            60,
            None,
            UpdateMode.IN_PLACE_OR_RECREATE,
            False,
            id="deferred-briefly",
        ),
        pytest.param(
            R1,
            Pending.DEFERRED,
            600,
            None,
            UpdateMode.IN_PLACE_OR_RECREATE,
            True,
            id="deferred-too-long",
        ),
        pytest.param(
            R1, None, 0, "pod p: invalid", UpdateMode.IN_PLACE_OR_RECREATE, True, id="refused"
        ),
        pytest.param(R1, None, 0, None, UpdateMode.IN_PLACE_OR_RECREATE, False, id="nothing-wrong"),
        pytest.param(
            R2,
            Pending.INFEASIBLE,
            0,
            None,
            UpdateMode.IN_PLACE_OR_RECREATE,
            False,
            id="template-has-it",
        ),
        pytest.param(R1, None, 0, None, UpdateMode.RECREATE, True, id="recreate-with-a-target"),
    ],
)
def test_when_in_place_gives_way_to_a_rollout(template, pending, since_s, refused, mode, rolls_out):
    d = with_target(template, R2)
    cfg = dataclasses.replace(config(), update_mode=mode)
    now = T0 + timedelta(seconds=since_s)
    observed = pod(R2, actual=template, pending=pending, pending_since=T0)
    p = plan(
        config=cfg,
        owner=OWNER,
        deployments=[d],
        metrics=Metrics(),
        now=now,
        pods={"c-0": [observed]},
        refused={"c-0": refused} if refused else {},
    )
    rollouts = [a for a in p.applies if a.action is Action.ROLLOUT]
    if rolls_out:
        (write,) = rollouts
        assert write.fell_back
        assert app(write.body)["resources"]["requests"]["cpu"] == "2"
        assert p.resizes == ()
    else:
        assert rollouts == []


def test_the_deferred_bound_is_two_minutes():
    assert rules.DEFERRED_BOUND_S == 120.0


amounts_cpu = st.integers(min_value=0, max_value=MAX_CPU_M)
amounts_mem = st.integers(min_value=0, max_value=MAX_MEM_B)
resources = st.builds(
    Resources,
    cpu_req_m=st.none() | amounts_cpu,
    mem_req_b=st.none() | amounts_mem,
    cpu_lim_m=st.none() | amounts_cpu,
    mem_lim_b=st.none() | amounts_mem,
)
names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@given(st.dictionaries(names, resources, min_size=1, max_size=4), st.sampled_from(list(Format)))
def test_the_resize_patch_merges_by_container_name_and_reads_back(containers, fmt):
    body = rendering.resize_patch(containers, memory_format=fmt)
    assert set(body) == {"spec"}
    assert set(body["spec"]) == {"containers"}
    listed = body["spec"]["containers"]
    assert [c["name"] for c in listed] == sorted(containers)
    for c in listed:
        res = c["resources"]
        assert set(res) <= {"requests", "limits"}
        back = from_strings(requests=res.get("requests", {}), limits=res.get("limits", {}))
        assert back == containers[c["name"]]


@given(st.dictionaries(names, resources, max_size=4), st.sampled_from(list(Format)))
def test_the_target_annotation_reads_back_exactly(containers, fmt):
    text = rendering.target_annotation(containers, memory_format=fmt)
    expected = {n: r for n, r in containers.items() if not r.is_empty}
    assert dict(parse_target(text) or {}) == expected
    assert json.loads(text) == json.loads(
        rendering.target_annotation(containers, memory_format=fmt)
    )


@given(
    st.text(max_size=200)
    | st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
        max_leaves=10,
    ).map(json.dumps)
)
def test_an_annotation_that_is_not_ours_reads_as_absent_never_an_error(text):
    parsed = parse_target(text)
    assert parsed is None or all(isinstance(r, Resources) for r in parsed.values())


def test_the_concrete_resize_patch():
    body = rendering.resize_patch({"app": R2, "side": Resources(cpu_req_m=50)})
    assert body == {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "resources": {
                        "requests": {"cpu": "2", "memory": "2G"},
                        "limits": {"cpu": "2", "memory": "2G"},
                    },
                },
                {"name": "side", "resources": {"requests": {"cpu": "50m"}}},
            ]
        }
    }


@pytest.mark.parametrize(
    ("raw", "in_place", "carried"),
    [
        (
            {"inPlace": {"resized": 1, "pending": 0, "fellBack": 2}},
            {"resized": 1, "pending": 0, "fellBack": 2},
            {},
        ),
        (
            {"inPlace": {"resized": "1", "pending": 0, "fellBack": 2}},
            None,
            {"inPlace": {"resized": "1", "pending": 0, "fellBack": 2}},
        ),
        ({"inPlace": "junk"}, None, {"inPlace": "junk"}),
        ({}, None, {}),
    ],
    ids=["ours", "wrong-type", "not-a-map", "absent"],
)
def test_the_in_place_status_reads_back_and_keeps_what_it_cannot_hold(raw, in_place, carried):
    status = ConsumerStatus.from_body(raw)
    assert (None if status.in_place is None else dict(status.in_place)) == in_place
    assert dict(status.carried) == carried
    assert status.to_body() == raw


G = Resources(cpu_req_m=100, cpu_lim_m=100, mem_req_b=128 * M, mem_lim_b=128 * M)
B = Resources(cpu_req_m=1500, cpu_lim_m=2000, mem_req_b=512 * M, mem_lim_b=512 * M)


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        pytest.param(G, B, replace(B, cpu_lim_m=1500), id="guaranteed-cpu-limit-is-the-request"),
        pytest.param(
            replace(G, cpu_req_m=500, cpu_lim_m=500),
            replace(G, cpu_req_m=100, cpu_lim_m=500),
            G,
            id="guaranteed-gives-cpu-back-on-a-scale-down",
        ),
        pytest.param(
            G,
            replace(B, mem_req_b=256 * M),
            replace(B, cpu_lim_m=1500),
            id="guaranteed-memory-request-goes-up-to-its-limit",
        ),
        pytest.param(
            replace(B, mem_req_b=128 * M, mem_lim_b=128 * M),
            replace(G, mem_req_b=128 * M, mem_lim_b=128 * M),
            replace(G, cpu_lim_m=2000),
            id="burstable-keeps-its-cpu-limit",
        ),
        pytest.param(B, replace(B, cpu_req_m=700), replace(B, cpu_req_m=700), id="same-class"),
        pytest.param(
            G,
            replace(G, cpu_req_m=200, cpu_lim_m=200),
            replace(G, cpu_req_m=200, cpu_lim_m=200),
            id="guaranteed-stays",
        ),
    ],
)
def test_a_resize_keeps_the_pods_qos_class(current, desired, expected):
    kept = keep_class({"app": current}, {"app": desired})
    assert kept == {"app": expected}
    assert qos_class(kept) is qos_class({"app": current})


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ({"a": G}, QoS.GUARANTEED),
        ({"a": G, "b": B}, QoS.BURSTABLE),
        ({"a": Resources(cpu_lim_m=100, mem_lim_b=M)}, QoS.GUARANTEED),
        ({"a": Resources()}, QoS.BEST_EFFORT),
        ({"a": Resources(), "b": Resources(cpu_req_m=1)}, QoS.BURSTABLE),
    ],
    ids=["guaranteed", "mixed", "limits-only", "nothing", "one-request"],
)
def test_qos_classes_follow_kubernetes(containers, expected):
    assert qos_class(containers) is expected


@pytest.mark.parametrize(
    "text",
    [
        '{"a":' * 2000 + "1" + "}" * 2000,
        "[" * 5000 + "]" * 5000,
        '{"consumer": {"requests": {"cpu": "' + "9" * 70_000 + '"}}}',
    ],
    ids=["object-nesting-bomb", "list-nesting-bomb", "beyond-the-size-bound"],
)
def test_a_target_annotation_too_deep_or_too_big_reads_as_absent(text: str) -> None:
    assert parse_target(text) is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ).map(json.dumps)
    | st.text(max_size=200)
)
def test_any_target_annotation_reads_as_a_target_or_absent_never_raises(text: str) -> None:
    result = parse_target(text)
    assert result is None or all(isinstance(r, Resources) for r in result.values())
