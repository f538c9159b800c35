"""The whole pass, fuzzed: random Consumers x random observed states x garbage metrics.

``tests/unit/api/test_spec_fuzzing.py`` fuzzes the spec through ``planning.plan``; this
drives ``Pipeline.reconcile`` itself (the operator's pass: conversion, the learned rate
per core, the planner's memories, in-place pods, the status), several passes in a row
with the clock moving, over ports that record (no API server, no Prometheus).

Property-based (hypothesis). What is drawn:

* specs at the CRD's limits: 1..100,000 partitions (instances kept at a few dozen so an
  example plans in milliseconds), every predictor and update mode, a CPU-usage query or
  none, resource policies whose minimum exceeds the maximum, odd quantities, a huge env,
  a name of 253 characters, a paused Consumer;
* observed states: Deployments with our owner's UID and garbage annotations (instance
  ids, partitions, scaling status and its time, the adaptive memory, the in-place
  target, saturation), in another namespace, being deleted, with a stored ``spec`` that
  is not what we render (or no mapping at all); pods in odd phases (not running, no
  resources reported, resize Deferred or Infeasible long ago, being deleted);
* metrics: missing partitions, partitions beyond the topic, values from 0 to just under
  2**63 (what the Prometheus layer lets through), a CPU-usage answer with NaN, infinite,
  negative and huge cores and pod names of anybody's; a refresh that failed; a
  previous status read back from garbage annotations (``lastSyncState``, learning).

The property: nothing but ``TerminalError`` (an unusable spec, reported) escapes a pass.
Anything else would be a pass that raises on an input (see
``test_internal_errors.py`` for what the operator then reports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from konsumerator.api import manifests
from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import Pipeline
from konsumerator.domain import keys, planning
from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.domain.pods import ObservedPod, Pending
from konsumerator.domain.resources import from_strings
from konsumerator.domain.status import ConsumerStatus
from konsumerator.prom.results import ProviderResult
from konsumerator.runtime.errors import TerminalError
from konsumerator.simulating import observe

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
UID = "owner-uid"
NS = "ns"

# --- the spec -------------------------------------------------------------------------

odd_quantity = st.sampled_from(
    ["0", "1n", "1m", "100m", "0.5", "1", "7", "1k", "1Gi", "8Pi", "9Ei", "1e3", "1.5e-3",
     "9223372036854775807m", "999999999999", "0.000000001", "64Mi", "3.3333"]
)  # fmt: skip
resource_list = st.dictionaries(st.sampled_from(["cpu", "memory"]), odd_quantity, max_size=2)


@st.composite
def instances_and_partitions(draw: st.DrawFn) -> tuple[int, int]:
    """(numPartitions, numPartitionsPerInstance): up to 100,000 partitions, few instances."""
    partitions = draw(st.one_of(st.integers(1, 60), st.integers(1, 100_000), st.just(100_000)))
    least = max(1, -(-partitions // 24))  # at most 24 instances
    per = draw(st.one_of(st.integers(least, max(least, partitions)), st.just(least)))
    return partitions, per


def _prometheus(*, cpu_usage: bool, rate: int, lags: tuple[str, str]) -> dict[str, Any]:
    prom: dict[str, Any] = {
        "address": ["http://prometheus:9090"],
        "offset": {"query": "lag", "partitionLabel": "partition"},
        "production": {"query": "prod", "partitionLabel": "partition"},
        "consumption": {"query": "cons", "partitionLabel": "partition"},
        "ratePerCore": rate,
        "ramPerCore": "1Gi",
        "recoveryTime": "30m",
        "minSyncPeriod": "1m",
        "tolerableLag": lags[0],
        "criticalLag": lags[1],
    }
    if cpu_usage:
        prom["cpuUsage"] = {"query": "cpu", "podLabel": "pod"}
    return prom


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    partitions, per = draw(instances_and_partitions())
    # The CRD's longest name (60: instance names must stay labels); 253 is refused.
    name = draw(st.sampled_from(["orders", "o", "a" * 60, "c" * 253]))
    env = [
        {"name": f"E{i}", "value": "x" * draw(st.sampled_from([0, 10, 4096]))}
        for i in range(draw(st.sampled_from([0, 1, 300])))
    ]
    spec: dict[str, Any] = {
        "numPartitions": partitions,
        "numPartitionsPerInstance": per,
        "name": name,
        "namespace": NS,
        "deploymentTemplate": {
            "replicas": draw(st.sampled_from([0, 1, 3])),
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {
                "metadata": {"labels": {"app": "orders"}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "busybox", "env": env,
                         "resources": {"requests": draw(resource_list),
                                       "limits": draw(resource_list)}},
                        {"name": "sidecar", "image": "busybox"},
                    ]
                },
            },
        },
        "resourcePolicy": {
            "containerPolicies": [
                {"containerName": c, "minAllowed": draw(resource_list),
                 "maxAllowed": draw(resource_list), "mode": draw(st.sampled_from(["Auto", "Off"]))}
                for c in draw(st.lists(st.sampled_from(["main", "sidecar"]), max_size=2,
                                       unique=True))
            ],
            "globalPolicy": {"maxAllowed": draw(resource_list)},
        },
    }  # fmt: skip
    mode = draw(st.sampled_from(["prometheus", "prometheus", "manual", None]))
    if mode is not None:
        spec["autoscaler"] = {
            "mode": mode,
            "pendingScaleUpDuration": draw(st.sampled_from(["0s", "1m", "5m"])),
            "pendingScaleDownDuration": draw(st.sampled_from(["0s", "10m"])),
            "predictor": draw(st.sampled_from(["naive", "adaptive"])),
            "updateMode": draw(st.sampled_from(["Recreate", "InPlaceOrRecreate"])),
            "targetUtilizationPercent": draw(st.sampled_from([10, 95, 100])),
            "prometheus": _prometheus(
                cpu_usage=draw(st.booleans()),
                rate=draw(st.sampled_from([1, 1000, 2**31 - 1])),
                lags=draw(st.sampled_from([("0s", "0s"), ("1m", "10m"), ("10m", "1m")])),
            ),
        }
    return spec


def _manifest(spec: dict[str, Any], *, paused: bool) -> dict[str, Any]:
    annotations = {keys.DISABLE_AUTOSCALER: "true"} if paused else {}
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.KIND,
        "metadata": {"name": "orders", "namespace": NS, "uid": UID, "generation": 1,
                     "annotations": annotations},
        "spec": spec,
    }  # fmt: skip


# --- the observed state -------------------------------------------------------------------

garbage = st.one_of(
    st.sampled_from(["", "x", "-1", "2147483648", "99999999999999999999", "1e9", "NaN", " 3",
                     "0,1,2", "5-2", "{}", "[]", "null", '{"main": 1}', "RUNNING", "SATURATED",
                     "PENDING_SCALE_UP", "2026-01-01T11:00:00Z", "9999-12-31T23:59:59Z",
                     "0001-01-01T00:00:00Z", "peak=1e308,peakAt=2026-01-01T11:00:00Z",
                     "peak=-5,peakAt=2026-01-01T11:59:00Z,resizedAt=2099-01-01T00:00:00Z,before=nan",
                     '{"main": {"requests": {"cpu": "9Ei"}, "limits": {"cpu": "1m"}}}',
                     '{"main": {"requests": {"cpu": "-1"}}}', '{"ghost": {"requests": {}}}']),
    st.text(max_size=20),
)  # fmt: skip
ANNOTATED = [
    keys.CONSUMER_ID,
    keys.PARTITION,
    keys.SCALING_STATUS,
    keys.SCALING_STATUS_CHANGE,
    keys.SCALING_MEMORY,
    keys.SCALING_DECISION,
    keys.CPU_SATURATION_LEVEL,
    keys.TARGET_RESOURCES,
    keys.GENERATION,
    keys.DISABLE_AUTOSCALER,
]
stored_specs = st.sampled_from(
    [None, b"{}", b"[]", b"null", b'{"template": 1}', b'{"template": {"spec": {"containers": 3}}}',
     b'{"template": {"spec": {"containers": [{"name": 1, "env": {"a": 1}}]}}}',
     b'{"replicas": "x", "selector": [], "template": {"metadata": {"labels": []}}}']
)  # fmt: skip


@st.composite
def deployments(draw: st.DrawFn, *, instances: int) -> ObservedDeployment:
    index = draw(st.integers(0, instances + 2))
    annotations = {
        k: draw(garbage) for k in draw(st.lists(st.sampled_from(ANNOTATED), unique=True))
    }
    if draw(st.booleans()):
        annotations[keys.CONSUMER_ID] = str(index)
    sizes = draw(resource_list)
    return ObservedDeployment(
        name=f"orders-{index}",
        namespace=draw(st.sampled_from([NS, NS, "elsewhere"])),
        uid=f"d-{index}",
        resource_version=str(draw(st.integers(1, 9))),
        labels=draw(st.sampled_from([{}, {keys.LABEL_MANAGED_BY: "konsumerator"}])),
        annotations=annotations,
        controller_uid=UID,
        containers=draw(
            st.sampled_from(
                [
                    (),
                    (ObservedContainer(name="main", requests=sizes, limits=sizes),),
                    (
                        ObservedContainer(name="main", requests=sizes, limits={}),
                        ObservedContainer(name="sidecar"),
                        ObservedContainer(name="stranger", requests=sizes),
                    ),
                ]
            )
        ),
        replicas=draw(st.sampled_from([None, 0, 1, 5])),
        deleting=draw(st.booleans()),
        spec_json=draw(stored_specs),
        generation=draw(st.integers(0, 3)),
        observed_generation=draw(st.integers(0, 3)),
    )


@st.composite
def pods(draw: st.DrawFn, *, deployment: str) -> ObservedPod:
    spec = from_strings(requests=draw(resource_list), limits=draw(resource_list))
    actual = draw(st.sampled_from([None, spec]))
    return ObservedPod(
        name=f"{deployment}-abc-{draw(st.integers(0, 9))}",
        namespace=NS,
        uid=f"p-{draw(st.integers(0, 99))}",
        deployment=deployment,
        owner_uid="rs",
        spec={"main": spec},
        actual={"main": actual},
        pending=draw(st.sampled_from([None, Pending.DEFERRED, Pending.INFEASIBLE])),
        pending_since=draw(
            st.sampled_from([None, NOW - timedelta(hours=1), NOW, NOW + timedelta(days=1)])
        ),
        in_progress=draw(st.booleans()),
        deleting=draw(st.booleans()),
        running=draw(st.booleans()),
    )


# --- the metrics ---------------------------------------------------------------------------

values = st.one_of(
    st.floats(min_value=0, max_value=2.0**63, exclude_max=True),
    st.sampled_from([0.0, 0.5, 1.0, 1e6, 2.0**62, 9.2e18]),
)
cores = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e308, float("nan"), 0.25, 1024.5]),
)


@st.composite
def snapshots(draw: st.DrawFn, *, partitions: int) -> MetricsSnapshot:
    ids = st.one_of(st.integers(0, min(partitions, 60)), st.integers(0, partitions + 5))
    pod_names = st.one_of(st.text(max_size=10), st.just("orders-0-abc-1"), st.just(f"{NS}/x"))
    return MetricsSnapshot(
        production=draw(st.dictionaries(ids, values, max_size=8)),
        consumption=draw(st.dictionaries(ids, values, max_size=8)),
        offset=draw(st.dictionaries(ids, values, max_size=8)),
        cpu_usage=draw(
            st.one_of(
                st.none(),
                st.builds(CpuUsage, by_pod=st.dictionaries(pod_names, cores, max_size=4)),
                st.just(CpuUsage(problem="timed out")),
            )
        ),
    )


status_garbage = st.dictionaries(
    st.sampled_from(
        [f"{keys.STATUS_PREFIX}{n}" for n in
         ("lastSyncState", "lastSyncTime", "conditions", "learning", "expected", "running")]
    ),
    st.one_of(garbage, st.sampled_from(['{"production": {"0": 1e400}}', '{"learning": 5}',
                                        '{"state": "Learning", "ratePerCore": -1}'])),
)  # fmt: skip


@dataclass
class Feed:
    """What the fake Prometheus answers, pass after pass."""

    answers: list[ProviderResult]
    asked: int = 0

    async def get(self, **_: Any) -> ProviderResult:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer

    def seed(self, **_: Any) -> None:
        pass

    def forget(self, **_: Any) -> None:
        pass


@dataclass
class Cluster:
    """The observed state; every write of a pass lands in it, as the watch would show it."""

    deployments: list[ObservedDeployment]
    pods: Mapping[str, Sequence[ObservedPod]]

    def by_index(self, *, index: str, value: str) -> Sequence[Any]:
        if index == "deployment":
            return self.pods.get(value.partition("/")[2], ())
        return self.deployments

    async def act(self, *, plan: planning.Plan, namespace: str, owner_uid: str) -> Outcome:
        written = {a.name: observe(a.body, owner_uid=owner_uid) for a in plan.applies}
        gone = {d.name for d in plan.deletes}
        kept = [d for d in self.deployments if d.name not in written and d.name not in gone]
        self.deployments = kept + list(written.values())
        return Outcome(done=[*plan.applies, *plan.deletes], resized=list(plan.resizes))


@dataclass
class Recorder:
    statuses: list[ConsumerStatus] = field(default_factory=list)

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        self.statuses.append(status)
        return True

    async def passed(self, **_: Any) -> None:
        pass

    async def rejected(self, **_: Any) -> None:
        pass


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[str, Any], Cluster, Feed, ConsumerStatus]:
    spec = draw(specs())
    instances = -(-spec["numPartitions"] // spec["numPartitionsPerInstance"])
    observed = draw(st.lists(deployments(instances=instances), max_size=5))
    seen = {d.name: d for d in observed}
    pod_map = {
        name: draw(st.lists(pods(deployment=name), max_size=3))
        for name in seen
        if draw(st.booleans())
    }
    answers = [
        draw(
            st.one_of(
                st.builds(
                    ProviderResult,
                    snapshot=snapshots(partitions=spec["numPartitions"]),
                    synced_at=st.just(NOW),
                    refreshed=st.booleans(),
                ),
                st.just(
                    ProviderResult(
                        snapshot=None,
                        synced_at=None,
                        refreshed=False,
                        error="down",
                        error_reason="PrometheusUnreachable",
                    )
                ),
            )
        )
        for _ in range(3)
    ]
    previous = ConsumerStatus.from_annotations(draw(status_garbage))
    return spec, Cluster(list(seen.values()), pod_map), Feed(answers), previous


async def _passes(
    spec: dict[str, Any], cluster: Cluster, feed: Feed, previous: ConsumerStatus, paused: bool
) -> None:
    clock = [NOW]
    recorder = Recorder()
    pipeline = Pipeline(
        deployments=cluster,
        provider=feed,
        actuator=cluster,
        reporter=recorder,
        pods=cluster,
        now=lambda: clock[0],
    )
    manifest = _manifest(spec, paused=paused)
    for step in range(3):
        try:
            await pipeline.reconcile(
                key=f"{NS}/orders", manifest=manifest, previous=previous, generation=1
            )
        except TerminalError as e:
            event(f"refused: {str(e)[:60]}")
            return
        event(f"pass {step + 1} planned")
        previous = recorder.statuses[-1]
        # Read back as a guest ConfigMap's annotations would hold it.
        previous = ConsumerStatus.from_annotations(manifests.status_annotations(previous.to_body()))
        clock[0] += timedelta(minutes=(1, 11, 31)[step])


FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@FUZZ
@given(world=worlds(), paused=st.booleans())
def test_no_pass_raises_on_any_consumer_observed_state_or_metrics(
    world: tuple[dict[str, Any], Cluster, Feed, ConsumerStatus], paused: bool
) -> None:
    spec, cluster, feed, previous = world
    asyncio.run(_passes(spec, cluster, feed, previous, paused))
