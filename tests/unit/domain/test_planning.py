"""One reconcile pass, ``planning.plan``, and sequences of passes in virtual time.

Aspects tested:

Differences are the numbered rows of docs/compatibility.md; Go sources are
paths in lwolf/konsumerator.

* Counters and actions for the Go TestNewConsumerOperator vectors
  (``controllers/consumer_test.go``), counters describing the world at the
  start of the pass as Go's did (MISSING in the pass that creates), adapted
  to difference 17: a Deployment with the expected name ``{name}-{i}`` whose
  partitions changed is rolled out in place (OUTDATED), one with another name
  is deleted (REDUNDANT) and its instance created in the same pass.
* The Go TestConsumerReconciliation vectors
  (``controllers/reconcile_fake_test.go``): policy 100m..100m → 100m/100M; a
  sidecar without a policy gets no resources but the env vars; busybox
  400m..800m + sidecar 100m..100m → 400m/400M and 100m/100M, with GOMEMLIMIT
  per difference 1; and a global pool of 450m/450M, which since difference 3
  is drawn from on creation (Go ignored it there).
* Difference 16: changing numPartitions rolls out instances whose partitions
  stay (fresh KONSUMERATOR_NUM_PARTITIONS); difference 18: an outdated
  rollout keeps current resources while paused or without any metrics.
* Difference 3 in the planner: the pool starts from what existing instances
  hold, and a proposal that is not applied gives its grant back.
* Difference 13: a paused Deployment is never resized (counted PAUSED).
* Difference 10: one decision per instance over all containers.
* Difference 9: a pinned sidecar never makes an instance SATURATED.
* Sequences in virtual time, driven like ``konsumerator simulate`` against
  an in-memory cluster: lag growth → PENDING_SCALE_UP → scale-up after
  pendingScaleUpDuration; saturation at maxAllowed; critical lag →
  maxAllowed; lag gone → PENDING_SCALE_DOWN → scale-down after
  pendingScaleDownDuration; missing metrics → fallback; Prometheus
  unavailable → no resize at all; a pass with nothing to change writes
  nothing; requeue_after points at the next sync or pending deadline; a
  foreign object holding an instance's name is never touched.
"""

import copy
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from konsumerator.domain import keys, planning, rendering
from konsumerator.domain.metrics import MetricsSnapshot, refresh_due
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.domain.planning import Action, Counters, Metrics, plan
from konsumerator.domain.quantities import parse_quantity
from konsumerator.domain.scaling import ScalingStatus
from konsumerator.domain.specs import (
    Autoscaling,
    Bounds,
    ConsumerConfig,
    FallbackStrategy,
    GlobalPool,
    Owner,
)
from konsumerator.simulating import observe

M = 10**6
G = 10**9
T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = Owner(api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="orders", uid="u-1")

RUNNING = ScalingStatus.RUNNING
SATURATED = ScalingStatus.SATURATED
PSU = ScalingStatus.PENDING_SCALE_UP
PSD = ScalingStatus.PENDING_SCALE_DOWN


def template(*names: str, env=None) -> dict[str, Any]:
    containers = [{"name": n, "image": "busybox"} for n in (names or ("busybox",))]
    if env is not None:
        containers[0]["env"] = env
    return {
        "selector": {"matchLabels": {"app": "c"}},
        "template": {"metadata": {"labels": {"app": "c"}}, "spec": {"containers": containers}},
    }


def config(**kw) -> ConsumerConfig:
    base: dict[str, Any] = {
        "name": "c",
        "namespace": "ns",
        "num_partitions": 1,
        "per_instance": 1,
        "deployment_template": template(),
    }
    base.update(kw)
    return ConsumerConfig(**base)


def deployment(name, *, annotations=None, containers=(), deleting=False) -> ObservedDeployment:
    return ObservedDeployment(
        name=name,
        namespace="ns",
        uid=f"uid-{name}",
        annotations=MappingProxyType(dict(annotations or {})),
        controller_uid=OWNER.uid,
        containers=tuple(containers),
        deleting=deleting,
    )


def ann(consumer_id, partition, **extra) -> dict[str, str]:
    result = {keys.CONSUMER_ID: str(consumer_id), keys.PARTITION: str(partition)}
    result.update(extra)
    return result


NO_METRICS = Metrics()


def one_pass(cfg, deployments=(), *, metrics=NO_METRICS, now=T0, **kw) -> planning.Plan:
    return plan(
        config=cfg, owner=OWNER, deployments=list(deployments), metrics=metrics, now=now, **kw
    )


def counters(expected, running, paused, lagging, missing, outdated, redundant) -> Counters:
    return Counters(
        expected=expected,
        running=running,
        paused=paused,
        lagging=lagging,
        missing=missing,
        outdated=outdated,
        redundant=redundant,
    )


def containers_of(body) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in body["spec"]["template"]["spec"]["containers"]}


def env_of(container) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def snapshot(production: Mapping[int, float], offset: Mapping[int, float] | None = None):
    return MetricsSnapshot(
        production=MappingProxyType(dict(production)),
        offset=MappingProxyType(dict(offset or {})),
    )


# --- TestNewConsumerOperator (controllers/consumer_test.go) ---------------------------


@pytest.mark.parametrize(
    ("np", "per", "existing", "expected"),
    [
        (10, 1, [], counters(10, 0, 0, 0, 10, 0, 0)),
        (10, 2, [], counters(5, 0, 0, 0, 5, 0, 0)),
        # No generation annotation: valid but OUTDATED.
        (10, 1, [deployment("c-1", annotations=ann(1, 1))], counters(10, 1, 0, 0, 9, 1, 0)),
        (
            10,
            1,
            [
                deployment("c-6", annotations=ann(6, 6, **{keys.DISABLE_AUTOSCALER: "true"})),
                deployment("c-5", annotations=ann(5, 5, **{keys.DISABLE_AUTOSCALER: "true"})),
            ],
            counters(10, 0, 2, 0, 8, 2, 0),
        ),
        # Difference 17: expected name, partitions changed → rolled out in place.
        (10, 3, [deployment("c-0", annotations=ann(0, 0))], counters(4, 1, 0, 0, 3, 1, 0)),
        # Another name: deleted and recreated under its own name in the same pass,
        # so it is missing (Go tracked it: 4/0/0/0/3/0/1, and recreated it a pass later).
        (10, 3, [deployment("old-0", annotations=ann(0, 0))], counters(4, 0, 0, 0, 4, 0, 1)),
        # Out of range.
        (10, 3, [deployment("c-10", annotations=ann(10, 10))], counters(4, 0, 0, 0, 4, 0, 1)),
    ],
    ids=[
        "none",
        "per-2",
        "one-without-generation",
        "two-paused",
        "partition-changed-same-name",
        "partition-changed-other-name",
        "out-of-range",
    ],
)
def test_counters_match_go_new_consumer_operator(np, per, existing, expected):
    result = one_pass(config(num_partitions=np, per_instance=per), existing)
    assert result.counters == expected


def test_missing_instances_are_created_in_the_pass_that_counts_them_missing():
    result = one_pass(config(num_partitions=10, per_instance=3))
    assert result.counters.missing == 4
    assert [(a.name, a.action) for a in result.applies] == [
        (f"c-{i}", Action.CREATE) for i in range(4)
    ]
    parts = [a.body["metadata"]["annotations"][keys.PARTITION] for a in result.applies]
    assert parts == ["0,1,2", "3,4,5", "6,7", "8,9"]
    assert result.deletes == ()


def test_partition_change_with_expected_name_rolls_out_in_place():
    result = one_pass(
        config(num_partitions=10, per_instance=3), [deployment("c-0", annotations=ann(0, 0))]
    )
    assert result.deletes == ()
    actions = {a.name: a.action for a in result.applies}
    assert actions == {
        "c-0": Action.ROLLOUT,
        "c-1": Action.CREATE,
        "c-2": Action.CREATE,
        "c-3": Action.CREATE,
    }
    c0 = next(a for a in result.applies if a.name == "c-0")
    assert c0.body["metadata"]["annotations"][keys.PARTITION] == "0,1,2"
    assert env_of(containers_of(c0.body)["busybox"])["KONSUMERATOR_PARTITION"] == "0,1,2"


def test_deployment_under_another_name_is_replaced_in_the_same_pass():
    old = deployment("old-0", annotations=ann(0, 0))
    result = one_pass(config(num_partitions=10, per_instance=3), [old])
    assert [(d.name, d.uid) for d in result.deletes] == [("old-0", "uid-old-0")]
    assert {a.name: a.action for a in result.applies}["c-0"] == Action.CREATE


@pytest.mark.parametrize(
    "annotations",
    [
        {},
        {keys.CONSUMER_ID: "x", keys.PARTITION: "0"},
        {keys.CONSUMER_ID: "0", keys.PARTITION: ""},
        {keys.CONSUMER_ID: "0", keys.PARTITION: "0-1"},
        {keys.CONSUMER_ID: "0", keys.PARTITION: "0,1,a"},
        {keys.CONSUMER_ID: "-1", keys.PARTITION: "0"},
    ],
)
def test_unparsable_annotations_are_deleted_and_not_tracked(annotations):
    result = one_pass(config(), [deployment("weird", annotations=annotations)])
    assert [d.name for d in result.deletes] == ["weird"]
    assert result.counters == counters(1, 0, 0, 0, 1, 0, 1)
    assert [a.name for a in result.applies] == ["c-0"]


@pytest.mark.parametrize(
    "annotations",
    [
        {},
        {keys.CONSUMER_ID: "x", keys.PARTITION: "0"},
        {keys.CONSUMER_ID: "0", keys.PARTITION: "a"},
        {keys.CONSUMER_ID: "1", keys.PARTITION: "1"},
        {keys.CONSUMER_ID: "7", keys.PARTITION: "0"},
    ],
    ids=["none", "garbled-id", "garbled-partition", "another-instance", "past-the-count"],
)
def test_an_instance_whose_identity_annotations_were_edited_is_repaired_not_replaced(
    annotations,
):
    # Row 17: the name says which instance it is. Deleting it killed its pods at once
    # and left partition 0 without a consumer until it was created again.
    result = one_pass(
        config(num_partitions=2, per_instance=1), [deployment("c-0", annotations=annotations)]
    )
    assert result.deletes == ()
    [mine] = [a for a in result.applies if a.name == "c-0"]
    assert mine.action is not Action.CREATE
    assert mine.uid == "uid-c-0"
    assert mine.body["metadata"]["annotations"][keys.CONSUMER_ID] == "0"
    assert mine.body["metadata"]["annotations"][keys.PARTITION] == "0"
    assert result.counters.outdated == 1
    assert result.counters.redundant == 0


def test_duplicate_instance_keeps_the_expected_name():
    existing = [
        deployment("a-legacy", annotations=ann(0, 0)),
        deployment("c-0", annotations=ann(0, 0)),
    ]
    result = one_pass(config(), existing)
    assert [d.name for d in result.deletes] == ["a-legacy"]
    assert result.counters.redundant == 1
    assert result.counters.running == 1


def test_deployment_being_deleted_is_ignored():
    result = one_pass(config(), [deployment("c-0", annotations=ann(0, 0), deleting=True)])
    assert result.deletes == ()
    assert result.counters.missing == 1


# --- TestConsumerReconciliation (controllers/reconcile_fake_test.go), no metrics ------

PROM = Autoscaling(rate_per_core=10_000, ram_per_core_b=G)
NO_METRICS_VARIANTS = [
    pytest.param(Metrics(), id="no-snapshot"),
    pytest.param(
        Metrics(snapshot=MetricsSnapshot(), refreshed=True, synced_at=T0), id="empty-snapshot"
    ),
]


@pytest.mark.parametrize("metrics", NO_METRICS_VARIANTS)
def test_single_container_with_pinned_policy(metrics):
    cfg = config(
        deployment_template=template("busybox", env=[{"name": "TEST", "value": "1"}]),
        policies={"busybox": Bounds(100, 100 * M, 100, 100 * M)},
        autoscaling=PROM,
    )
    result = one_pass(cfg, metrics=metrics)
    (apply,) = result.applies
    busybox = containers_of(apply.body)["busybox"]
    assert busybox["resources"] == {
        "requests": {"cpu": "100m", "memory": "100M"},
        "limits": {"cpu": "100m", "memory": "100M"},
    }
    env = env_of(busybox)
    assert env["TEST"] == "1"
    assert env["GOMAXPROCS"] == "1"
    assert env["GOMEMLIMIT"] == "76MiB"  # difference 1 (Go: 80MiB)
    annotations = apply.body["metadata"]["annotations"]
    assert annotations[keys.PARTITION] == "0"
    assert annotations[keys.SCALING_STATUS] == "RUNNING"


@pytest.mark.parametrize("metrics", NO_METRICS_VARIANTS)
def test_sidecar_without_policy_gets_no_resources(metrics):
    cfg = config(
        deployment_template=template("busybox", "sidecar"),
        policies={"busybox": Bounds(100, 100 * M, 100, 100 * M)},
        autoscaling=PROM,
    )
    (apply,) = one_pass(cfg, metrics=metrics).applies
    sidecar = containers_of(apply.body)["sidecar"]
    assert "resources" not in sidecar
    env = env_of(sidecar)
    assert "GOMEMLIMIT" not in env
    assert env["GOMAXPROCS"] == "1"
    assert env["KONSUMERATOR_PARTITION"] == "0"
    assert env["KONSUMERATOR_INSTANCE"] == "0"


TWO_POLICIES = {
    "busybox": Bounds(400, 400 * M, 800, 800 * M),
    "sidecar": Bounds(100, 100 * M, 100, 100 * M),
}


@pytest.mark.parametrize("metrics", NO_METRICS_VARIANTS)
def test_two_containers_with_policies(metrics):
    cfg = config(
        deployment_template=template("busybox", "sidecar"),
        policies=TWO_POLICIES,
        autoscaling=PROM,
    )
    (apply,) = one_pass(cfg, metrics=metrics).applies
    c = containers_of(apply.body)
    assert c["busybox"]["resources"] == {
        "requests": {"cpu": "400m", "memory": "400M"},
        "limits": {"cpu": "400m", "memory": "400M"},
    }
    assert c["sidecar"]["resources"] == {
        "requests": {"cpu": "100m", "memory": "100M"},
        "limits": {"cpu": "100m", "memory": "100M"},
    }
    assert env_of(c["busybox"])["GOMEMLIMIT"] == "305MiB"  # Go: 320MiB
    assert env_of(c["sidecar"])["GOMEMLIMIT"] == "76MiB"  # Go: 80MiB


def test_global_pool_is_drawn_from_on_creation():
    """Difference 3. Go ignored the global policy on creation (400m + 100m = 500m).

    Here the pool of 450m/450M is drawn from on creation, but never below a
    container's minAllowed: busybox gets its 400m/400M, and the pinned sidecar
    (100m..100m) keeps its floor although only 50m/50M are left, overdrawing
    the pool rather than starting a container below its minimum.
    """
    cfg = config(
        deployment_template=template("busybox", "sidecar"),
        policies=TWO_POLICIES,
        global_pool=GlobalPool(cpu_m=450, mem_b=450 * M),
        autoscaling=PROM,
    )
    result = one_pass(cfg)
    (apply,) = result.applies
    c = containers_of(apply.body)
    assert c["busybox"]["resources"] == {
        "requests": {"cpu": "400m", "memory": "400M"},
        "limits": {"cpu": "400m", "memory": "400M"},
    }
    assert c["sidecar"]["resources"] == {
        "requests": {"cpu": "100m", "memory": "100M"},
        "limits": {"cpu": "100m", "memory": "100M"},
    }
    assert env_of(c["sidecar"])["GOMEMLIMIT"] == "76MiB"
    assert result.allocated_cpu_m == 500
    assert result.allocated_mem_b == 500 * M
    # Not lagging: a cut is not saturation.
    assert apply.body["metadata"]["annotations"][keys.SCALING_STATUS] == "RUNNING"


def test_exhausted_pool_never_renders_zero_limits():
    """A limit of "0" is read by the kubelet as "no limit" (and 0 requests + 0 limits
    make the pod BestEffort), so a pool that has nothing left must not produce one."""
    cfg = config(
        num_partitions=3,
        deployment_template=template("busybox", "sidecar"),
        policies=TWO_POLICIES,
        global_pool=GlobalPool(cpu_m=450, mem_b=450 * M),
        autoscaling=PROM,
    )
    result = one_pass(cfg)
    assert [a.name for a in result.applies] == ["c-0", "c-1", "c-2"]
    for apply in result.applies:
        for name, container in containers_of(apply.body).items():
            limits = container.get("resources", {}).get("limits", {})
            assert limits.get("cpu") != "0", (apply.name, name, container.get("resources"))
            assert limits.get("memory") != "0", (apply.name, name, container.get("resources"))


def test_pool_starts_from_what_existing_instances_hold():
    """Difference 3: Go started every pass with the full pool."""
    existing_resources = ObservedContainer(
        name="busybox",
        requests={"cpu": "400m", "memory": "400M"},
        limits={"cpu": "400m", "memory": "400M"},
    )
    cfg = config(
        num_partitions=2,
        policies={"busybox": Bounds(100, 100 * M, 800, 800 * M)},
        global_pool=GlobalPool(cpu_m=500, mem_b=500 * M),
        autoscaling=PROM,
    )
    first = one_pass(cfg, metrics=Metrics())
    hash_value = first.template_hash
    c0 = deployment(
        "c-0",
        annotations=ann(0, 0, **{keys.GENERATION: hash_value}),
        containers=[existing_resources],
    )
    result = one_pass(cfg, [c0])
    # c-0 only gets its labels (and scaling annotations) restored: it was built without them.
    assert {a.name: a.action for a in result.applies} == {
        "c-0": Action.REPAIR,
        "c-1": Action.CREATE,
    }
    apply = next(a for a in result.applies if a.name == "c-1")
    res = containers_of(apply.body)["busybox"]["resources"]
    assert res["requests"] == {"cpu": "100m", "memory": "100M"}


def test_a_stopped_consumer_still_counts_its_instances_running():
    """As in Go, RUNNING counts Deployments that exist and are not paused, not pods:
    ``replicas: 0`` (how a Consumer is stopped) leaves every instance RUNNING."""
    cluster = Cluster()
    stopped = config(num_partitions=3, deployment_template={**template(), "replicas": 0})
    cluster.run(stopped)
    result = cluster.run(stopped)
    assert all(b["spec"]["replicas"] == 0 for b in cluster.bodies.values())
    assert result.counters == counters(3, 3, 0, 0, 0, 0, 0)


# --- outdated rollouts ----------------------------------------------------------------


def test_num_partitions_change_rolls_out_instances_whose_partitions_stay():
    """Difference 16: Go left KONSUMERATOR_NUM_PARTITIONS stale."""
    cluster = Cluster()
    cfg = config(num_partitions=4, per_instance=2)
    cluster.run(cfg)
    grown = replace(cfg, num_partitions=5)
    result = cluster.run(grown)
    assert result.counters.outdated == 2
    assert {a.name: a.action for a in result.applies} == {
        "c-0": Action.ROLLOUT,
        "c-1": Action.ROLLOUT,
        "c-2": Action.CREATE,
    }
    for a in result.applies:
        env = env_of(containers_of(a.body)["busybox"])
        assert env["KONSUMERATOR_NUM_PARTITIONS"] == "5"
        assert env["KONSUMERATOR_NUM_INSTANCES"] == "3"
    assert cluster.partitions() == {"c-0": "0,1", "c-1": "2,3", "c-2": "4"}


def test_per_instance_change_rolls_out_in_place():
    """Difference 17: Go deleted and recreated every instance whose partitions changed."""
    cluster = Cluster()
    cluster.run(config(num_partitions=6, per_instance=2))
    result = cluster.run(config(num_partitions=6, per_instance=3))
    # Only the instance that is no longer needed goes.
    assert [d.name for d in result.deletes] == ["c-2"]
    assert result.counters == counters(2, 2, 0, 0, 0, 2, 1)
    assert {a.name: a.action for a in result.applies} == {
        "c-0": Action.ROLLOUT,
        "c-1": Action.ROLLOUT,
    }
    assert cluster.partitions() == {"c-0": "0,1,2", "c-1": "3,4,5"}


def test_outdated_paused_rollout_keeps_current_resources():
    """Difference 18: Go rebuilt it from the estimate, ignoring the annotation."""
    c0 = deployment(
        "c-0",
        annotations=ann(0, 0, **{keys.DISABLE_AUTOSCALER: ""}),
        containers=[
            ObservedContainer(
                name="busybox",
                requests={"cpu": "3", "memory": "3G"},
                limits={"cpu": "3", "memory": "3G"},
            )
        ],
    )
    cfg = config(policies={"busybox": Bounds(100, 100 * M, 1000, 1 * G)}, autoscaling=PROM)
    metrics = Metrics(snapshot=snapshot({0: 100}), refreshed=True, synced_at=T0)
    result = one_pass(cfg, [c0], metrics=metrics)
    assert result.counters == counters(1, 0, 1, 0, 0, 1, 0)
    (apply,) = result.applies
    assert apply.action is Action.ROLLOUT
    assert containers_of(apply.body)["busybox"]["resources"] == {
        "requests": {"cpu": "3", "memory": "3G"},
        "limits": {"cpu": "3", "memory": "3G"},
    }


def test_outdated_rollout_without_metrics_keeps_current_resources():
    """Difference 18: without any snapshot the fallback would throw away the sizing."""
    c0 = deployment(
        "c-0",
        annotations=ann(0, 0),
        containers=[
            ObservedContainer(
                name="busybox",
                requests={"cpu": "700m", "memory": "1G"},
                limits={"cpu": "1", "memory": "1G"},
            )
        ],
    )
    cfg = config(policies={"busybox": Bounds(100, 100 * M, 1000, 1 * G)}, autoscaling=PROM)
    (apply,) = one_pass(cfg, [c0]).applies
    assert apply.action is Action.ROLLOUT
    assert containers_of(apply.body)["busybox"]["resources"] == {
        "requests": {"cpu": "700m", "memory": "1G"},
        "limits": {"cpu": "1", "memory": "1G"},
    }


def test_outdated_rollout_with_metrics_is_resized_without_pending_period():
    c0 = deployment(
        "c-0",
        annotations=ann(0, 0),
        containers=[
            ObservedContainer(
                name="busybox",
                requests={"cpu": "700m", "memory": "1G"},
                limits={"cpu": "1", "memory": "1G"},
            )
        ],
    )
    cfg = config(policies={"busybox": Bounds(100, 100 * M, 4000, 4 * G)}, autoscaling=PROM)
    metrics = Metrics(snapshot=snapshot({0: 20_000}), refreshed=False, synced_at=T0)
    (apply,) = one_pass(cfg, [c0], metrics=metrics, now=T0 + timedelta(seconds=5)).applies
    assert apply.action is Action.ROLLOUT
    assert containers_of(apply.body)["busybox"]["resources"]["requests"] == {
        "cpu": "2",
        "memory": "2G",
    }


# --- sequences in virtual time --------------------------------------------------------

UNAVAILABLE = object()
USER_ANNOTATIONS = {keys.DISABLE_AUTOSCALER, keys.VERBOSE}


class Cluster:
    """An in-memory namespace driven pass by pass, like ``konsumerator simulate``.

    Applies replace our fields and keep the annotations users set (as
    server-side apply does); deletes remove. Every write is recorded.
    """

    def __init__(self, *, start: datetime = T0) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}
        self.now = start
        self.snapshot: MetricsSnapshot | None = None
        self.synced_at: datetime | None = None
        self.writes: list[tuple[str, str]] = []
        self.last: planning.Plan | None = None

    def observed(self) -> list[ObservedDeployment]:
        return [observe(b, owner_uid=OWNER.uid) for b in self.bodies.values()]

    def run(self, cfg, *, after_s: float = 0, metrics: Any = None, foreign=frozenset()):
        """Advance the clock, refresh metrics when due (None: keep the old ones,
        UNAVAILABLE: Prometheus fails), plan one pass and apply it."""
        self.now += timedelta(seconds=after_s)
        refreshed = False
        due = cfg.autoscaling is not None and refresh_due(
            synced_at=self.synced_at,
            now=self.now,
            min_sync_period_s=cfg.autoscaling.min_sync_period_s,
        )
        error = "every address failed" if due and metrics is UNAVAILABLE else None
        if due and metrics is not None and metrics is not UNAVAILABLE:
            self.snapshot, self.synced_at, refreshed = metrics, self.now, True
        result = plan(
            config=cfg,
            owner=OWNER,
            deployments=self.observed(),
            metrics=Metrics(
                snapshot=self.snapshot, refreshed=refreshed, synced_at=self.synced_at, error=error
            ),
            now=self.now,
            foreign_names=foreign,
        )
        for d in result.deletes:
            self.bodies.pop(d.name)
            self.writes.append(("delete", d.name))
        for a in result.applies:
            old = self.bodies.get(a.name)
            body = a.body
            if old is not None:
                kept = {
                    k: v for k, v in old["metadata"]["annotations"].items() if k in USER_ANNOTATIONS
                }
                body["metadata"]["annotations"].update(kept)
            self.bodies[a.name] = body
            self.writes.append((a.action.value, a.name))
        self.last = result
        return result

    def annotate(self, name: str, key: str, value: str) -> None:
        self.bodies[name]["metadata"]["annotations"][key] = value

    def status(self, name: str) -> str:
        return self.bodies[name]["metadata"]["annotations"][keys.SCALING_STATUS]

    def saturation(self, name: str) -> str | None:
        return self.bodies[name]["metadata"]["annotations"].get(keys.CPU_SATURATION_LEVEL)

    def requests(self, name: str, container: str = "consumer") -> dict[str, str]:
        return containers_of(self.bodies[name])[container].get("resources", {}).get("requests", {})

    def limits(self, name: str, container: str = "consumer") -> dict[str, str]:
        return containers_of(self.bodies[name])[container].get("resources", {}).get("limits", {})

    def partitions(self) -> dict[str, str]:
        return {n: b["metadata"]["annotations"][keys.PARTITION] for n, b in self.bodies.items()}


# ratePerCore 1000: 1 msg/s = 1 millicore. ramPerCore 1G per *limit* core.
AUTOSCALING = Autoscaling(
    rate_per_core=1000,
    ram_per_core_b=G,
    cpu_increment_m=100,
    recovery_s=600,
    tolerable_lag_s=60,
    critical_lag_s=600,
    min_sync_period_s=30,
    pending_up_s=120,
    pending_down_s=600,
)
POLICY = Bounds(min_cpu_m=100, min_mem_b=100 * M, max_cpu_m=2000, max_mem_b=2 * G)


def scaling_config(**kw) -> ConsumerConfig:
    base: dict[str, Any] = {
        "num_partitions": 2,
        "deployment_template": template("consumer"),
        "autoscaling": AUTOSCALING,
        "policies": {"consumer": POLICY},
    }
    base.update(kw)
    return config(**base)


def steady(p0=500, p1=500, lag0_s=0, lag1_s=0) -> MetricsSnapshot:
    """Production per partition and the backlog expressed in seconds of it."""
    return snapshot({0: p0, 1: p1}, {0: p0 * lag0_s, 1: p1 * lag1_s})


def started(cfg=None) -> tuple[Cluster, ConsumerConfig]:
    cfg = cfg or scaling_config()
    cluster = Cluster()
    first = cluster.run(cfg, metrics=steady())
    # As in Go, the counters describe the start of the pass: both still MISSING.
    assert first.counters == counters(2, 0, 0, 0, 2, 0, 0)
    assert [a.action for a in first.applies] == [Action.CREATE, Action.CREATE]
    # 500 msg/s → 500m request, 1 core limit → 1G.
    assert cluster.requests("c-0") == {"cpu": "500m", "memory": "1G"}
    assert cluster.limits("c-0") == {"cpu": "1", "memory": "1G"}
    return cluster, cfg


def test_creation_then_nothing_to_change_writes_nothing():
    cluster, cfg = started()
    n = len(cluster.writes)
    for _ in range(5):
        result = cluster.run(cfg, after_s=60, metrics=steady())
        assert result.applies == ()
        assert result.deletes == ()
        assert result.counters == counters(2, 2, 0, 0, 0, 0, 0)
    # And passes between syncs (no refresh) write nothing either.
    result = cluster.run(cfg, after_s=1, metrics=steady(p0=5000))
    assert result.applies == ()
    assert len(cluster.writes) == n


def test_scale_up_waits_for_pending_period():
    cluster, cfg = started()
    # 120s behind: lagging; need (120*500 + 500*600) // 600 = 600 msg/s → 600m.
    lagging = steady(lag0_s=120)
    result = cluster.run(cfg, after_s=60, metrics=lagging)
    assert result.counters.lagging == 1
    assert [(a.name, a.action) for a in result.applies] == [("c-0", Action.ANNOTATE)]
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    assert cluster.requests("c-0")["cpu"] == "500m"  # not yet
    assert cluster.status("c-1") == "RUNNING"
    # 60s later: still pending, nothing written.
    result = cluster.run(cfg, after_s=60, metrics=lagging)
    assert result.applies == ()
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    # 120s after entering PENDING_SCALE_UP: scale up.
    result = cluster.run(cfg, after_s=60, metrics=lagging)
    assert [(a.name, a.action) for a in result.applies] == [("c-0", Action.SCALE)]
    assert cluster.requests("c-0") == {"cpu": "600m", "memory": "1G"}
    assert cluster.status("c-0") == "RUNNING"
    assert result.counters.lagging == 1


def test_lag_gone_scales_down_after_pending_period():
    cluster, cfg = started()
    quiet = steady(p0=200)
    result = cluster.run(cfg, after_s=60, metrics=quiet)
    assert cluster.status("c-0") == "PENDING_SCALE_DOWN"
    assert [a.action for a in result.applies] == [Action.ANNOTATE]
    for _ in range(9):  # 540s later: still pending
        assert cluster.run(cfg, after_s=60, metrics=quiet).applies == ()
    result = cluster.run(cfg, after_s=60, metrics=quiet)
    assert [(a.name, a.action) for a in result.applies] == [("c-0", Action.SCALE)]
    assert cluster.requests("c-0") == {"cpu": "200m", "memory": "1G"}
    assert cluster.status("c-0") == "RUNNING"


def test_full_incident_up_saturated_then_down():
    cluster, cfg = started()
    # 3000 msg/s, 120s behind: needs 3600m, policy caps at 2 cores.
    burst = steady(p0=3000, lag0_s=120)
    cluster.run(cfg, after_s=60, metrics=burst)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    cluster.run(cfg, after_s=120, metrics=burst)
    assert cluster.requests("c-0") == {"cpu": "2", "memory": "2G"}
    assert cluster.limits("c-0") == {"cpu": "2", "memory": "2G"}
    assert cluster.status("c-0") == "SATURATED"
    assert cluster.saturation("c-0") == "1600"
    assert cluster.last.saturated == ("c-0",)
    # Still lagging at the cap: stays SATURATED, no resize.
    result = cluster.run(cfg, after_s=60, metrics=burst)
    assert result.applies == ()
    # Caught up: RUNNING, then PENDING_SCALE_DOWN, then down after 600s.
    calm = steady()
    result = cluster.run(cfg, after_s=60, metrics=calm)
    assert cluster.status("c-0") == "PENDING_SCALE_DOWN"
    assert cluster.saturation("c-0") is None
    cluster.run(cfg, after_s=599, metrics=calm)
    assert cluster.requests("c-0")["cpu"] == "2"
    cluster.run(cfg, after_s=31, metrics=calm)
    assert cluster.requests("c-0") == {"cpu": "500m", "memory": "1G"}
    assert cluster.status("c-0") == "RUNNING"


def test_saturated_instance_under_noisy_production_is_written_once_not_every_refresh():
    """The shortage follows production, which moves by a few msg/s at every refresh: the
    level is rewritten only when it moves meaningfully (``rules.level_moved``)."""
    cluster, cfg = started()
    # 3000 msg/s, 120s behind: needs 3600m, policy caps at 2 cores: 1600m short.
    cluster.run(cfg, after_s=60, metrics=steady(p0=3000, lag0_s=120))
    cluster.run(cfg, after_s=120, metrics=steady(p0=3000, lag0_s=120))
    assert (cluster.status("c-0"), cluster.saturation("c-0")) == ("SATURATED", "1600")
    n = len(cluster.writes)
    # +-5 msg/s: the need (1.2 x production) crosses a 100m step, 1600m <-> 1700m short.
    for noise in (4, -5, 3, -2, 5, -4, 1, -3):
        result = cluster.run(cfg, after_s=60, metrics=steady(p0=3000 + noise, lag0_s=120))
        assert result.applies == ()
        # The status and gauge show the level the Deployment holds.
        assert result.instances[0].cpu_shortage_m == 1600
        assert result.saturated == ("c-0",)
    assert len(cluster.writes) == n
    assert cluster.saturation("c-0") == "1600"
    # A meaningful growth (500 msg/s: 600m more) is written, once.
    result = cluster.run(cfg, after_s=60, metrics=steady(p0=3500, lag0_s=120))
    assert [(a.name, a.action) for a in result.applies] == [("c-0", Action.ANNOTATE)]
    assert cluster.saturation("c-0") == "2200"
    assert cluster.run(cfg, after_s=60, metrics=steady(p0=3502, lag0_s=120)).applies == ()
    # Leaving SATURATED removes the level at once, however small it was.
    cluster.run(cfg, after_s=60, metrics=steady())
    assert cluster.status("c-0") == "PENDING_SCALE_DOWN"
    assert cluster.saturation("c-0") is None


def test_critical_lag_goes_to_max_allowed():
    cluster, cfg = started()
    # 600s behind at 500 msg/s: critical. The estimate alone would be 1000m.
    critical = steady(lag0_s=600)
    cluster.run(cfg, after_s=60, metrics=critical)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    cluster.run(cfg, after_s=120, metrics=critical)
    assert cluster.requests("c-0") == {"cpu": "2", "memory": "2G"}
    assert cluster.limits("c-0") == {"cpu": "2", "memory": "2G"}
    # Granted more than estimated: no shortage, not SATURATED.
    assert cluster.status("c-0") == "RUNNING"


def test_critical_lag_without_policy_keeps_the_estimate():
    """Difference 8: Go dereferenced a nil policy and crashed."""
    cluster, cfg = started(scaling_config(policies={}))
    critical = steady(lag0_s=600)
    cluster.run(cfg, after_s=60, metrics=critical)
    cluster.run(cfg, after_s=120, metrics=critical)
    # (600*500 + 500*600) // 600 = 1000 msg/s → 1 core.
    assert cluster.requests("c-0") == {"cpu": "1", "memory": "1G"}


def test_missing_metrics_use_the_fallback():
    cfg = scaling_config()
    cluster = Cluster()
    # Prometheus never answered: creation from the policy minimum.
    result = cluster.run(cfg, metrics=UNAVAILABLE)
    assert [a.action for a in result.applies] == [Action.CREATE, Action.CREATE]
    assert cluster.requests("c-0") == {"cpu": "100m", "memory": "100M"}
    assert cluster.limits("c-0") == {"cpu": "100m", "memory": "100M"}


def test_partially_missing_metrics_borrow_the_largest_need():
    cfg = scaling_config(num_partitions=4, per_instance=2)
    cluster = Cluster()
    # Partition 1 and both of instance 1 have no series.
    cluster.run(cfg, metrics=snapshot({0: 700}))
    assert cluster.requests("c-0") == {"cpu": "1400m", "memory": "2G"}
    # No partition of instance 1 has a sample: the fallback (policy min).
    assert cluster.requests("c-1") == {"cpu": "100m", "memory": "100M"}


def test_missing_metrics_on_existing_instance_drifts_down_to_fallback():
    cluster, cfg = started()
    gone = snapshot({1: 500})
    cluster.run(cfg, after_s=60, metrics=gone)
    assert cluster.status("c-0") == "PENDING_SCALE_DOWN"
    cluster.run(cfg, after_s=600, metrics=gone)
    assert cluster.requests("c-0") == {"cpu": "100m", "memory": "100M"}


def test_prometheus_unavailable_means_no_resize_at_all():
    cluster, cfg = started()
    lagging = steady(lag0_s=120)
    cluster.run(cfg, after_s=60, metrics=lagging)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    writes = len(cluster.writes)
    for _ in range(10):  # well past pendingScaleUpDuration
        result = cluster.run(cfg, after_s=60, metrics=UNAVAILABLE)
        assert result.applies == ()
        assert result.deletes == ()
    assert len(cluster.writes) == writes
    assert cluster.requests("c-0")["cpu"] == "500m"
    # Back: the first refreshed pass applies the long-pending scale-up.
    result = cluster.run(cfg, after_s=60, metrics=lagging)
    assert [(a.name, a.action) for a in result.applies] == [("c-0", Action.SCALE)]


def test_paused_deployment_is_never_resized():
    """Difference 13: Go only moved it from RUNNING to PAUSED in the counters."""
    cluster, cfg = started()
    cluster.annotate("c-0", keys.DISABLE_AUTOSCALER, "true")
    burst = steady(p0=3000, p1=3000, lag0_s=120, lag1_s=120)
    for _ in range(10):
        result = cluster.run(cfg, after_s=60, metrics=burst)
        assert "c-0" not in {a.name for a in result.applies}
        assert result.counters.paused == 1
        assert result.counters.running == 1
        assert result.counters.lagging == 2  # paused instances still count as lagging
    assert cluster.requests("c-0") == {"cpu": "500m", "memory": "1G"}
    assert cluster.status("c-0") == "RUNNING"
    assert cluster.requests("c-1") == {"cpu": "2", "memory": "2G"}
    # Un-paused: autoscaled again.
    del cluster.bodies["c-0"]["metadata"]["annotations"][keys.DISABLE_AUTOSCALER]
    cluster.run(cfg, after_s=60, metrics=burst)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"


def test_pinned_sidecar_does_not_make_the_instance_saturated():
    """Difference 9: every container gets the same estimate, so a pinned sidecar
    is always "cut"; that is not saturation."""
    policies = {"consumer": POLICY, "sidecar": Bounds(50, 32 * M, 50, 32 * M)}
    cluster, cfg = started(
        scaling_config(deployment_template=template("consumer", "sidecar"), policies=policies)
    )
    assert cluster.requests("c-0", "sidecar") == {"cpu": "50m", "memory": "32M"}
    lagging = steady(lag0_s=120)
    cluster.run(cfg, after_s=60, metrics=lagging)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    cluster.run(cfg, after_s=120, metrics=lagging)
    assert cluster.requests("c-0") == {"cpu": "600m", "memory": "1G"}
    assert cluster.requests("c-0", "sidecar") == {"cpu": "50m", "memory": "32M"}
    assert cluster.status("c-0") == "RUNNING"
    assert cluster.saturation("c-0") is None


def test_pinned_sidecar_cut_by_the_pool_does_not_make_the_instance_saturated():
    """Difference 9 says a pinned container never contributes shortage; that
    includes a cut by the global pool, which starves nothing that consumes."""
    policies = {"consumer": POLICY, "sidecar": Bounds(50, 32 * M, 50, 32 * M)}
    cfg = scaling_config(
        num_partitions=1,
        deployment_template=template("consumer", "sidecar"),
        policies=policies,
        global_pool=GlobalPool(cpu_m=620, mem_b=None),
    )
    cluster = Cluster()
    # Lagging from the start: consumer 600m fits, the sidecar gets 20m of its 50m.
    result = cluster.run(cfg, metrics=snapshot({0: 500}, {0: 500 * 120}))
    assert result.counters.missing == 1
    assert cluster.requests("c-0") == {"cpu": "600m", "memory": "1G"}
    assert cluster.status("c-0") == "RUNNING"


def test_one_decision_over_all_containers():
    """Difference 10: a sidecar that wants less must not undo the main container's
    scale-up (Go: the last container evaluated decided the status)."""
    policies = {"consumer": POLICY, "sidecar": Bounds(None, None, 100, 100 * M)}
    cluster, cfg = started(
        scaling_config(deployment_template=template("consumer", "sidecar"), policies=policies)
    )
    lagging = steady(lag0_s=120)
    cluster.run(cfg, after_s=60, metrics=lagging)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    cluster.run(cfg, after_s=120, metrics=lagging)
    assert cluster.requests("c-0")["cpu"] == "600m"
    assert cluster.requests("c-0", "sidecar")["cpu"] == "100m"


def test_pool_gives_back_a_grant_that_was_not_applied():
    """Difference 3: instance 0's pending scale-up must not starve instance 1."""
    cfg = scaling_config(global_pool=GlobalPool(cpu_m=1700, mem_b=None))
    cluster, cfg = started(cfg)  # 2 × 500m = 1000m used, 700m left
    # Both lag; instance 0 enters PENDING_SCALE_UP first, instance 1 too.
    both = steady(p0=1000, p1=1000, lag0_s=120, lag1_s=120)
    cluster.run(cfg, after_s=60, metrics=both)
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    assert cluster.status("c-1") == "PENDING_SCALE_UP"
    # Each needs 1200m: +700m each, the pool has 700m in total.
    cluster.run(cfg, after_s=120, metrics=both)
    assert cluster.requests("c-0")["cpu"] == "1200m"
    assert cluster.requests("c-1")["cpu"] == "500m"
    assert cluster.status("c-1") == "SATURATED"
    assert cluster.saturation("c-1") == "700"
    assert cluster.last.allocated_cpu_m == 1700


def test_requeue_points_at_the_next_sync():
    cluster, cfg = started()
    assert cluster.last.requeue_after_s == pytest.approx(30.001)
    result = cluster.run(cfg, after_s=10, metrics=steady())
    assert result.requeue_after_s == pytest.approx(20.001)


def test_requeue_is_capped_and_floored():
    cfg = scaling_config(autoscaling=replace(AUTOSCALING, min_sync_period_s=3600))
    cluster, cfg = started(cfg)
    assert cluster.last.requeue_after_s == planning.MAX_REQUEUE_S
    result = cluster.run(cfg, after_s=3599.9995, metrics=steady())
    assert result.requeue_after_s == planning.MIN_REQUEUE_S


def test_no_requeue_without_autoscaling():
    assert one_pass(config()).requeue_after_s is None


def test_foreign_name_conflict_is_never_touched():
    cfg = scaling_config()
    cluster = Cluster()
    result = cluster.run(cfg, metrics=steady(), foreign=frozenset({"c-1"}))
    assert result.conflicts == ("c-1",)
    assert [a.name for a in result.applies] == ["c-0"]
    assert result.counters.missing == 2
    for _ in range(3):
        result = cluster.run(cfg, after_s=60, metrics=steady(p1=5000), foreign=frozenset({"c-1"}))
        assert "c-1" not in {a.name for a in result.applies}
        assert "c-1" not in {d.name for d in result.deletes}
        assert result.conflicts == ("c-1",)


def test_foreign_name_is_not_written_when_adopting_a_legacy_deployment():
    """An instance held by a Deployment of ours under an older name is rolled out
    under ``{name}-{i}``; if a foreign object holds that name it must not be applied."""
    legacy = deployment("legacy-orders-1", annotations=ann(1, 1))
    result = one_pass(config(num_partitions=2), [legacy], foreign_names=frozenset({"c-1"}))
    assert "c-1" not in {a.name for a in result.applies}


def test_requeue_after_an_expired_pending_deadline_waits_for_the_next_sync():
    """A pending scale is only applied in a pass that refreshed metrics, so once
    its deadline has passed, the next useful pass is the next sync: requeueing
    every MIN_REQUEUE_S until then only spins."""
    cfg = scaling_config(autoscaling=replace(AUTOSCALING, min_sync_period_s=250))
    cluster, cfg = started(cfg)
    cluster.run(cfg, after_s=251, metrics=steady(lag0_s=120))  # synced, PSU entered
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    result = cluster.run(cfg, after_s=121, metrics=steady(lag0_s=120))  # not synced
    assert result.applies == ()
    assert result.requeue_after_s == pytest.approx(250 - 121 + 0.001)


def test_requeue_after_a_failed_refresh_waits_a_full_period():
    cluster, cfg = started()
    result = cluster.run(cfg, after_s=31, metrics=UNAVAILABLE)
    assert result.requeue_after_s == pytest.approx(30)


@pytest.mark.parametrize("status", ["", "bogus", None])
def test_unknown_status_lagging_goes_to_pending_scale_up(status):
    """Difference 11: Go had no branch for an empty or unknown status and stayed stuck."""
    cluster, cfg = started()
    annotations = cluster.bodies["c-0"]["metadata"]["annotations"]
    if status is None:
        del annotations[keys.SCALING_STATUS]
    else:
        annotations[keys.SCALING_STATUS] = status
    cluster.run(cfg, after_s=60, metrics=steady(lag0_s=120))
    assert cluster.status("c-0") == "PENDING_SCALE_UP"
    cluster.run(cfg, after_s=120, metrics=steady(lag0_s=120))
    assert cluster.requests("c-0")["cpu"] == "600m"


def test_paused_consumer_gives_every_container_its_min_allowed():
    """The disable-autoscaler annotation on the Consumer: containers get minAllowed,
    containers without a policy get no resources, and every instance counts PAUSED."""
    cfg = config(deployment_template=template("busybox", "sidecar"), policies=TWO_POLICIES)
    first = one_pass(cfg)
    bodies = [a.body for a in first.applies]
    paused = replace(cfg, policies={"busybox": TWO_POLICIES["busybox"]}, paused=True)
    observed = [observe(b, owner_uid=OWNER.uid) for b in bodies]
    result = one_pass(paused, observed)
    (apply,) = result.applies
    c = containers_of(apply.body)
    assert c["busybox"]["resources"] == {
        "requests": {"cpu": "400m", "memory": "400M"},
        "limits": {"cpu": "400m", "memory": "400M"},
    }
    assert "resources" not in c["sidecar"]
    assert result.counters.paused == 1
    assert result.counters.running == 0
    again = one_pass(paused, [observe(apply.body, owner_uid=OWNER.uid)])
    assert again.applies == ()


# --- drift: fields of ours changed by someone else -----------------------------------

MANUAL_POLICY = {"busybox": Bounds(100, 128 * 2**20, 2000, 2 * G)}


def served(apply: planning.Apply, edit: Any = None) -> ObservedDeployment:
    """The Deployment the API server would return for ``apply``, optionally hand-edited
    (``edit(spec, metadata)``): defaults added and quantities canonicalised, as it does."""
    body = copy.deepcopy(apply.body)
    spec, meta = body["spec"], body["metadata"]
    spec.setdefault("strategy", {"type": "RollingUpdate"})
    spec["template"]["spec"].setdefault("dnsPolicy", "ClusterFirst")
    for c in spec["template"]["spec"]["containers"]:
        c.setdefault("imagePullPolicy", "IfNotPresent")
        for part in c.get("resources", {}).values():
            for k, v in part.items():
                part[k] = parse_quantity(v).canonical()
    if edit is not None:
        edit(spec, meta)
    return ObservedDeployment(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=f"uid-{meta['name']}",
        labels=MappingProxyType(dict(meta["labels"])),
        annotations=MappingProxyType(dict(meta["annotations"])),
        controller_uid=OWNER.uid,
        containers=tuple(
            ObservedContainer(
                name=c["name"],
                requests=MappingProxyType(dict(c.get("resources", {}).get("requests", {}))),
                limits=MappingProxyType(dict(c.get("resources", {}).get("limits", {}))),
            )
            for c in spec["template"]["spec"]["containers"]
        ),
        spec_json=json.dumps(spec).encode(),
    )


def main_container(spec: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = spec["template"]["spec"]["containers"][0]
    return found


def set_env(name: str, value: str) -> Any:
    def edit(spec: dict[str, Any], meta: dict[str, Any]) -> None:
        next(e for e in main_container(spec)["env"] if e["name"] == name)["value"] = value

    return edit


def manual_config(**kw: Any) -> ConsumerConfig:
    base: dict[str, Any] = {"num_partitions": 2, "policies": MANUAL_POLICY}
    base.update(kw)
    return config(**base)


BUSYBOX = "spec.template.spec.containers[busybox]"


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (set_env("KONSUMERATOR_PARTITION", "0,1"), f"{BUSYBOX}.env[KONSUMERATOR_PARTITION].value"),
        (
            set_env("KONSUMERATOR_NUM_PARTITIONS", "1"),
            f"{BUSYBOX}.env[KONSUMERATOR_NUM_PARTITIONS]",
        ),
        (lambda s, m: main_container(s).update(image="evil:1"), f"{BUSYBOX}.image"),
        (lambda s, m: s.update(replicas=5), "spec.replicas"),
        (lambda s, m: m["labels"].pop(keys.LABEL_MANAGED_BY), "metadata.labels"),
    ],
    ids=["partition-env", "num-partitions-env", "image", "replicas", "label"],
)
def test_a_hand_edit_of_a_field_we_own_is_repaired_and_counted_outdated(edit, changed):
    cfg = manual_config(deployment_template={**template(), "replicas": 1})
    first = one_pass(cfg)
    intended = {a.name: a.body for a in first.applies}
    observed = [served(first.applies[0], edit), served(first.applies[1])]
    result = one_pass(cfg, observed)
    assert result.counters.outdated == 1
    assert result.counters.running == 2
    (repair,) = result.applies
    assert (repair.name, repair.action, repair.uid) == ("c-0", Action.REPAIR, "uid-c-0")
    assert changed in repair.message
    assert repair.body == intended["c-0"]
    # Once the server holds our fields again, nothing more is written.
    assert one_pass(cfg, [served(repair), observed[1]]).applies == ()


def test_unchanged_deployments_as_the_server_returns_them_need_no_write():
    for cfg in (
        manual_config(deployment_template=template("busybox", "sidecar")),
        scaling_config(deployment_template=template("consumer", "sidecar")),
    ):
        first = one_pass(cfg, metrics=Metrics(snapshot=steady(), refreshed=True, synced_at=T0))
        observed = [served(a) for a in first.applies]
        result = one_pass(cfg, observed)
        assert result.applies == ()
        assert result.counters.outdated == 0


def test_manual_mode_restores_hand_edited_resources_from_the_policy():
    cfg = manual_config()
    first = one_pass(cfg)

    def bigger(spec: dict[str, Any], meta: dict[str, Any]) -> None:
        main_container(spec)["resources"] = {"requests": {"cpu": "1500m"}}

    result = one_pass(cfg, [served(first.applies[0], bigger), served(first.applies[1])])
    (repair,) = result.applies
    assert (repair.action, repair.uid) == (Action.SCALE, "uid-c-0")
    assert "resourcePolicy" in repair.message
    assert result.counters.outdated == 1
    assert containers_of(repair.body)["busybox"]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "100m", "memory": "128Mi"},
    }


def test_manual_mode_applies_a_policy_change_to_existing_instances():
    cfg = manual_config()
    observed = [served(a) for a in one_pass(cfg).applies]
    raised = replace(cfg, policies={"busybox": Bounds(300, 256 * 2**20, 2000, 2 * G)})
    result = one_pass(raised, observed)
    assert [a.action for a in result.applies] == [Action.SCALE, Action.SCALE]
    assert result.counters.outdated == 2
    for apply in result.applies:
        assert containers_of(apply.body)["busybox"]["resources"]["requests"] == {
            "cpu": "300m",
            "memory": "256Mi",
        }


def test_manual_mode_sizes_a_newcomer_from_the_policy_not_from_a_fleet_member():
    """In a large fleet the Go fallback copied a member's resources (fallbackStrategy max):
    one hand-edited member became the size of every newcomer."""
    cfg = manual_config(
        num_partitions=12,
        deployment_template=template("busybox", "sidecar"),
        fallback=FallbackStrategy.MAX,
    )
    created = one_pass(cfg).applies

    def sidecar_resources(spec: dict[str, Any], meta: dict[str, Any]) -> None:
        sidecar = spec["template"]["spec"]["containers"][1]
        sidecar["resources"] = {"requests": {"cpu": "3"}, "limits": {"cpu": "3"}}

    observed = [served(a, sidecar_resources if a.name == "c-3" else None) for a in created[:11]]
    (newcomer,) = one_pass(cfg, observed).applies
    assert (newcomer.name, newcomer.action) == ("c-11", Action.CREATE)
    c = containers_of(newcomer.body)
    assert "resources" not in c["sidecar"]
    assert c["busybox"]["resources"]["requests"] == {"cpu": "2", "memory": "2G"}


def test_autoscaled_resources_edited_by_hand_are_taken_as_the_current_size():
    """With autoscaling the size is the autoscaler's to change, starting from what it is."""
    cfg = scaling_config()
    metrics = Metrics(snapshot=steady(), refreshed=True, synced_at=T0)
    created = one_pass(cfg, metrics=metrics).applies

    def more_cpu(spec: dict[str, Any], meta: dict[str, Any]) -> None:
        main_container(spec)["resources"]["requests"]["cpu"] = "700m"

    observed = [served(created[0], more_cpu), served(created[1])]
    result = one_pass(cfg, observed, metrics=replace(metrics, refreshed=False))
    assert result.applies == ()
    assert result.counters.outdated == 0


def test_an_unchanged_deployment_is_compared_once(monkeypatch):
    cfg = manual_config(num_partitions=4)
    observed = [served(a) for a in one_pass(cfg).applies]
    calls: list[int] = []
    real = rendering.render

    def counting(**kw: Any) -> dict[str, Any]:
        calls.append(kw["index"])
        return real(**kw)

    monkeypatch.setattr(rendering, "render", counting)
    assert one_pass(cfg, observed).applies == ()
    assert sorted(calls) == [0, 1, 2, 3]
    calls.clear()
    for _ in range(3):
        assert one_pass(cfg, observed).applies == ()
    assert calls == []


def test_writes_to_existing_deployments_name_their_uid_and_creations_none():
    cfg = manual_config()
    first = one_pass(cfg)
    assert [a.uid for a in first.applies] == [None, None]
    observed = [served(first.applies[0], set_env("KONSUMERATOR_PARTITION", "9"))]
    result = one_pass(cfg, observed)
    assert {a.name: a.uid for a in result.applies} == {"c-0": "uid-c-0", "c-1": None}
