"""``plan()``'s shortcut for instances that keep their size decides what the rules decide.

In a steady pass nearly every instance keeps its Deployment as it is, and ``plan()``
records that in plain numbers (``planning._kept``) instead of running the rule chain.
It is a cache of the chain's outcome, not a second policy, so it must never be seen:

* replaying random timelines (noisy metrics, backlogs, outages) through random
  Consumers (in place or Recreate, naive or adaptive, manual, paused, with or without
  a global pool) gives, after every step, the same plan, status and Deployments with
  and without the shortcut;
* so does one pass over a fleet that someone else changed (paused, drifted, outdated
  Deployments, targets left behind, pods off their size, pending, refused or going
  away), asked before and after the rules remembered what they compared;
* and the shortcut does run: a steady noisy pass keeps nearly all its instances by it;
* under the adaptive predictor a refreshing pass asks the rule for the instance the
  last keep asked for when its inputs are the same, and the rule chain decides the
  instance the shortcut asked for when it declines (no second one);
* a pass after one that ``KeptMemory`` remembered decides what the rules decide, with
  each input changed or kept at random, and with each input it must not outlive
  changed alone (the Deployment version, pods, refusal, lag, config, owner, the end
  of a pending period, a global pool that holds less);
* the drift results ``simulate``'s in-memory cluster primes on the Deployments it
  observes from applied bodies change no replay, nor does what it reuses of a write
  that keeps the pod template.
"""

import copy
import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest import mock

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator import simulating
from konsumerator.api import manifests
from konsumerator.api.v1 import to_config
from konsumerator.domain import keys, planning, rules
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.pods import ObservedPod, Pending
from konsumerator.domain.resources import Resources
from konsumerator.domain.specs import Owner
from konsumerator.domain.status import ConsumerStatus

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml").read_text()
)
PARTITIONS = 6


@contextmanager
def without_shortcut() -> Iterator[None]:
    """Every instance through the full rule chain."""
    with mock.patch.object(planning, "_kept", return_value=False):
        yield


@st.composite
def consumers(draw: st.DrawFn, *, keeping: bool = False) -> tuple[manifests.Source, Any]:
    """Random Consumers; ``keeping``: only those whose instances ``_kept`` may keep
    (autoscaled, not paused: by the naive predictor, or the adaptive one in passes that
    do not refresh metrics), mostly resized in place."""
    doc = copy.deepcopy(EXAMPLE)
    spec = doc["spec"]
    spec["numPartitions"] = PARTITIONS
    spec["numPartitionsPerInstance"] = draw(st.sampled_from([1, 1, 2, 4]))
    auto = spec["autoscaler"]
    if keeping:
        auto["mode"] = "prometheus"
        auto["predictor"] = draw(st.sampled_from(["naive", "naive", "adaptive"]))
        auto["updateMode"] = draw(st.sampled_from(["InPlaceOrRecreate"] * 3 + ["Recreate"]))
    else:
        auto["mode"] = draw(st.sampled_from(["prometheus", "prometheus", "prometheus", "manual"]))
        auto["updateMode"] = draw(st.sampled_from(["InPlaceOrRecreate", "Recreate"]))
        auto["predictor"] = draw(st.sampled_from(["naive", "naive", "adaptive"]))
    auto["pendingScaleUpDuration"] = draw(st.sampled_from(["0s", "30s", "2m"]))
    auto["pendingScaleDownDuration"] = draw(st.sampled_from(["0s", "1m", "10m"]))
    auto["prometheus"]["minSyncPeriod"] = draw(st.sampled_from(["10s", "30s"]))
    auto["prometheus"]["fallbackStrategy"] = draw(st.sampled_from(["min", "max"]))
    if draw(st.booleans()):
        spec["resourcePolicy"]["globalPolicy"]["maxAllowed"] = {"cpu": "1", "memory": "2Gi"}
    else:
        spec["resourcePolicy"].pop("globalPolicy")
    if draw(st.integers(0, 5)) == 0 and not keeping:
        doc["metadata"]["annotations"] = {keys.DISABLE_AUTOSCALER: "true"}
    return manifests.read(doc)


@st.composite
def snapshots(draw: st.DrawFn) -> MetricsSnapshot | None:
    if draw(st.integers(0, 12)) == 0:
        return None  # Prometheus down
    level = draw(st.sampled_from([0.0, 100.0, 1000.0, 1900.0, 6000.0]))
    chosen = draw(st.lists(st.integers(0, PARTITIONS - 1), unique=True, max_size=PARTITIONS))
    production = {p: level + draw(st.floats(-5, 5)) for p in chosen}
    offset = {p: draw(st.sampled_from([0.0, 0.0, 0.0, 10.0, 1e5, 1e7])) for p in chosen}
    return MetricsSnapshot(
        production=MappingProxyType(production),
        consumption=MappingProxyType(dict(production)),
        offset=MappingProxyType(offset),
    )


timelines = st.lists(
    st.builds(
        simulating.Step,
        advance_s=st.sampled_from([0.0, 10.0, 10.0, 10.0, 31.0, 300.0]),
        metrics=snapshots(),
    ),
    min_size=1,
    max_size=40,
)


def replay(
    source: manifests.Source, spec: Any, steps: list[simulating.Step]
) -> list[tuple[planning.Plan, ConsumerStatus, str]]:
    """Every pass: its plan, the status and the Deployments after it."""
    r = simulating.Replay(source=source, spec=spec)
    seen = []
    try:
        for step in steps:
            done = r.step(advance_s=step.advance_s, metrics=step.metrics)
            seen.append((done.plan, r.status, r.cluster.deployments_json()))
    finally:
        r.close()
    return seen


@settings(max_examples=150, deadline=None)
@given(consumer=consumers(), steps=timelines)
def test_replays_are_the_same_with_and_without_the_shortcut(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step]
) -> None:
    source, spec = consumer
    fast = replay(source, spec, steps)
    with without_shortcut():
        full = replay(source, spec, steps)
    assert fast == full


# -- one pass over a fleet someone else changed ------------------------------------------

SIZES = [
    Resources(cpu_req_m=100, mem_req_b=134217728, cpu_lim_m=1000, mem_lim_b=268435456),
    Resources(cpu_req_m=500, mem_req_b=268435456, cpu_lim_m=1000, mem_lim_b=268435456),
    Resources(cpu_req_m=50, mem_req_b=33554432, cpu_lim_m=50, mem_lim_b=33554432),
]


def target_annotation(data: st.DataObject, containers: list[str]) -> str:
    return json.dumps(
        {
            name: {
                "requests": {"cpu": f"{r.cpu_req_m}m", "memory": str(r.mem_req_b)},
                "limits": {"cpu": f"{r.cpu_lim_m}m", "memory": str(r.mem_lim_b)},
            }
            for name in containers
            for r in [data.draw(st.sampled_from(SIZES))]
        }
    )


def changed_body(data: st.DataObject, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as someone else may have left it."""
    body = copy.deepcopy(body)
    annotations = body["metadata"]["annotations"]
    containers = body["spec"]["template"]["spec"]["containers"]
    for change in data.draw(st.sets(st.integers(0, 7), max_size=3)):
        if change == 0:
            annotations[keys.DISABLE_AUTOSCALER] = "true"
        elif change == 1:
            annotations[keys.GENERATION] = "someone-else"
        elif change == 2:
            annotations[keys.TARGET_RESOURCES] = target_annotation(
                data, [c["name"] for c in containers]
            )
        elif change == 3:
            annotations.pop(keys.TARGET_RESOURCES, None)
        elif change == 4:
            annotations[keys.SCALING_STATUS] = data.draw(
                st.sampled_from(["RUNNING", "PENDING_SCALE_UP", "PENDING_SCALE_DOWN", "SATURATED"])
            )
        elif change == 5:
            annotations[keys.CPU_SATURATION_LEVEL] = "300"
        elif change == 6:
            containers[0]["image"] = "hand/edited:1"
        else:
            containers[0]["resources"] = {"requests": {"cpu": "3", "memory": "1Gi"}}
    return body


def changed_pod(data: st.DataObject, pod: ObservedPod, now: datetime) -> ObservedPod:
    kind = data.draw(st.integers(0, 6))
    if kind == 0:
        return dataclasses.replace(pod, running=False)
    if kind == 1:
        return dataclasses.replace(pod, deleting=True)
    if kind == 2:
        return dataclasses.replace(
            pod,
            pending=data.draw(st.sampled_from(list(Pending))),
            pending_since=now - timedelta(seconds=data.draw(st.sampled_from([1, 600]))),
        )
    if kind == 3:
        spec = {n: data.draw(st.sampled_from(SIZES)) for n in pod.spec}
        return dataclasses.replace(pod, spec=spec, actual=spec)
    if kind == 4:
        return dataclasses.replace(pod, actual=dict.fromkeys(pod.spec))
    return pod


@settings(max_examples=150, deadline=None)
@given(consumer=consumers(), steps=timelines, data=st.data())
def test_a_pass_over_a_changed_fleet_is_the_same_with_and_without_the_shortcut(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step], data: st.DataObject
) -> None:
    source, spec = consumer
    r = simulating.Replay(source=source, spec=spec)
    try:
        for step in steps:
            r.step(advance_s=step.advance_s, metrics=step.metrics)
    finally:
        r.close()
    cluster = r.cluster
    owner_uid = r.source.uid
    deployments = [
        simulating.observe(changed_body(data, body), owner_uid=owner_uid)
        if data.draw(st.booleans())
        else observed
        for body, observed in zip(cluster._bodies.values(), cluster._observed.values(), strict=True)
    ]
    pods = {
        d.name: [
            changed_pod(data, p, r.now)
            for p in cluster.pods.by_index(index="", value=f"{d.namespace}/{d.name}")
        ]
        for d in deployments
    }
    refused = {
        d.name: "refused at act time" for d in deployments if data.draw(st.integers(0, 5)) == 0
    }
    config = to_config(spec, paused=keys.DISABLE_AUTOSCALER in source.annotations)
    metrics = planning.Metrics(
        snapshot=data.draw(snapshots()), refreshed=data.draw(st.booleans()), synced_at=r.now
    )

    def plan() -> planning.Plan:
        return planning.plan(
            config=config,
            owner=Owner(
                api_version=source.api_version, kind=source.kind, name=source.name, uid=owner_uid
            ),
            deployments=deployments,
            metrics=metrics,
            now=r.now,
            pods=pods,
            refused=refused,
        )

    before = plan()  # the rules have not compared these Deployments yet
    with without_shortcut():
        full = plan()
    after = plan()  # now they have, and remember it
    assert before == full == after


# -- what ``plan`` remembers from one pass to the next (``KeptMemory``) ------------------


def maybe(data: st.DataObject, same: Any, changed: Any) -> Any:
    """``same`` (two times in three: what a memory can reuse), or ``changed()``."""
    return same if data.draw(st.integers(0, 2)) else changed()


@settings(max_examples=300, deadline=None)
@given(consumer=consumers(keeping=True), steps=timelines, data=st.data())
def test_a_pass_after_a_remembered_one_is_the_same_as_without_the_shortcut(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step], data: st.DataObject
) -> None:
    """A pass reuses an instance's last keep only for the same inputs: here the second
    of two passes gets each input as the first had it, or changed (its Deployments,
    pods, refusals, metrics and whether they were refreshed, the time, the config, the
    owner), and decides what the rules decide."""
    source, spec = consumer
    r = simulating.Replay(source=source, spec=spec)
    try:
        for step in steps:
            r.step(advance_s=step.advance_s, metrics=step.metrics)
    finally:
        r.close()
    cluster = r.cluster
    owner_uid = r.source.uid
    bodies = dict(zip(cluster._observed, cluster._bodies.values(), strict=True))
    first_deployments = list(cluster._observed.values())

    def deployments(before: list[Any]) -> list[Any]:
        return [
            maybe(
                data,
                d,
                lambda d=d: simulating.observe(
                    changed_body(data, bodies[d.name]), owner_uid=owner_uid
                ),
            )
            for d in before
        ]

    def pods(
        fleet: list[Any], now: datetime, before: dict[str, list[ObservedPod]] | None = None
    ) -> dict[str, list[ObservedPod]]:
        """The fleet's pods, each changed or not; ``before``: the first pass's, each
        instance's list kept as it was (the same object) or not."""
        return {
            d.name: maybe(
                data,
                (before or {}).get(d.name),
                lambda d=d: [
                    p if data.draw(st.booleans()) else changed_pod(data, p, now)
                    for p in cluster.pods.by_index(index="", value=f"{d.namespace}/{d.name}")
                ],
            )
            or []
            for d in fleet
        }

    def refused(fleet: list[Any]) -> dict[str, str]:
        return {d.name: "refused at act time" for d in fleet if data.draw(st.integers(0, 2)) == 0}

    config = to_config(spec, paused=keys.DISABLE_AUTOSCALER in source.annotations)
    owner = Owner(api_version=source.api_version, kind=source.kind, name=source.name, uid=owner_uid)
    first: dict[str, Any] = {
        "config": config,
        "owner": owner,
        "deployments": first_deployments,
        "metrics": planning.Metrics(
            snapshot=data.draw(snapshots()),
            refreshed=data.draw(st.integers(0, 3)) > 0,
            synced_at=r.now,
        ),
        "now": r.now,
        "pods": pods(first_deployments, r.now),
        "refused": refused(first_deployments),
    }
    memory = planning.KeptMemory()
    planning.plan(**first, memory=memory)

    def other_config() -> Any:
        if config.autoscaling is None:
            return dataclasses.replace(config)
        tolerable = data.draw(st.sampled_from([1.0, 60.0, 600.0]))
        return dataclasses.replace(
            config,
            autoscaling=dataclasses.replace(
                config.autoscaling,
                tolerable_lag_s=tolerable,
                critical_lag_s=tolerable * data.draw(st.sampled_from([1, 10])),
                pending_up_s=data.draw(st.sampled_from([0.0, 30.0, 120.0])),
            ),
        )

    now = r.now + timedelta(seconds=data.draw(st.sampled_from([0, 0, 10, 31, 130, 700])))
    second_deployments = deployments(first_deployments)
    second = {
        "config": maybe(data, config, other_config),
        "owner": maybe(data, owner, lambda: dataclasses.replace(owner, name="another-owner")),
        "deployments": second_deployments,
        "metrics": planning.Metrics(
            snapshot=maybe(data, first["metrics"].snapshot, lambda: data.draw(snapshots())),
            refreshed=data.draw(st.integers(0, 3)) > 0,
            synced_at=r.now,
        ),
        "now": now,
        "pods": pods(second_deployments, now, before=first["pods"]),
        "refused": maybe(data, first["refused"], lambda: refused(second_deployments)),
    }
    remembered = planning.plan(**second, memory=memory)
    # The full way with the same memory of the adaptive policy (``Recent``), which the
    # first pass left: that is state, not a cache, and the second pass reads it.
    with without_shortcut():
        full_memory = planning.KeptMemory()
        planning.plan(**first, memory=full_memory)
        full = planning.plan(**second, memory=full_memory)
    assert remembered == full
    assert _recalled(memory, second_deployments) == _recalled(full_memory, second_deployments)


def _recalled(memory: planning.KeptMemory, deployments: list[Any]) -> list[Any]:
    """The adaptive memory ``memory`` holds for each of ``deployments`` (None: none)."""
    return [
        memory.recent.recall(uid=d.uid, annotation=d.annotations.get(keys.SCALING_MEMORY))
        for d in deployments
    ]


def test_a_steady_noisy_pass_keeps_nearly_every_instance_by_the_shortcut() -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["spec"]["numPartitions"] = 20
    doc["spec"]["numPartitionsPerInstance"] = 1
    # The shortcut is the naive predictor's (the adaptive one decides by its rules).
    doc["spec"]["autoscaler"]["predictor"] = "naive"
    source, spec = manifests.read(doc)
    steps = [
        simulating.Step(
            advance_s=10.0,
            metrics=MetricsSnapshot(
                production=MappingProxyType({p: 1100.0 + (i * 7 + p) % 5 for p in range(20)}),
                consumption=MappingProxyType(dict.fromkeys(range(20), 1100.0)),
                offset=MappingProxyType(dict.fromkeys(range(20), 0.0)),
            ),
        )
        for i in range(40)
    ]
    # By pass: the instances kept again as remembered, kept by ``_kept``, and decided
    # by the full rule chain.
    counts: list[list[int]] = []
    real_again, real_kept = planning._kept_again, planning._kept
    real_full = planning._decide_existing

    def again(*args: Any, **kwargs: Any) -> Any:
        found = real_again(*args, **kwargs)
        counts.append([0 if found is None else found.running, 0, 0])
        return found

    def kept(*args: Any, **kwargs: Any) -> bool:
        result = real_kept(*args, **kwargs)
        counts[-1][1] += result
        return result

    def full(*args: Any, **kwargs: Any) -> Any:
        counts[-1][2] += 1
        return real_full(*args, **kwargs)

    with (
        mock.patch.object(planning, "_kept_again", again),
        mock.patch.object(planning, "_kept", kept),
        mock.patch.object(planning, "_decide_existing", full),
    ):
        passes = replay(source, spec, steps)
    with without_shortcut():
        assert replay(source, spec, steps) == passes
    # 40 passes of 20 instances: the first ones create them and see them settle (a
    # Deployment just written is compared with its intent once, the full way); then
    # every instance is kept, most as remembered from the pass before.
    last = counts[-20:]
    assert all(a + k == 20 and f == 0 for a, k, f in last), counts
    assert sum(a for a, _, _ in last) >= 20 * 20 // 2, counts


@settings(max_examples=100, deadline=None)
@given(consumer=consumers(), steps=timelines)
def test_replays_are_the_same_without_the_drift_results_the_memory_cluster_primes(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step]
) -> None:
    """``MemoryCluster`` tells a Deployment it observed from an applied body that the
    body holds no drift from itself; the rules would find the same, at a cost."""
    source, spec = consumer
    primed = replay(source, spec, steps)

    real_act = simulating.MemoryCluster.act

    async def act(self: simulating.MemoryCluster, **kwargs: Any) -> Any:
        outcome = await real_act(self, **kwargs)
        for apply in kwargs["plan"].applies:
            self._observed[apply.name].drift_memo.pop(apply.drift_key, None)
        return outcome

    with mock.patch.object(simulating.MemoryCluster, "act", act):
        unprimed = replay(source, spec, steps)
    assert primed == unprimed


def plain_apply(self: simulating.MemoryCluster, body: dict[str, Any]) -> None:
    """``MemoryCluster.apply`` by its definition: everything derived from ``body`` afresh."""
    name = body["metadata"]["name"]
    if name not in self._bodies:
        self._order = None
    self._bodies[name] = body
    self._json = self._bytes = None
    self._observed[name] = observed = simulating.observe(body, owner_uid=self._owner_uid)
    annotations = body["metadata"]["annotations"]
    target = json.loads(annotations.get(keys.TARGET_RESOURCES) or "{}")
    containers = {}
    for c in body["spec"]["template"]["spec"]["containers"]:
        resources = target.get(c["name"]) or c.get("resources", {})
        containers[c["name"]] = {
            "requests": resources.get("requests", {}),
            "limits": resources.get("limits", {}),
            "env": {e["name"]: e.get("value", "") for e in c.get("env", [])},
        }
    entry = {
        "partitions": [int(p) for p in annotations[keys.PARTITION].split(",")],
        "scalingStatus": annotations[keys.SCALING_STATUS],
        "containers": containers,
    }
    self._fragments[name] = json.dumps(name) + ":" + json.dumps(entry, separators=(",", ":"))
    self.pods.started(d=observed, template=body["spec"]["template"])


@settings(max_examples=100, deadline=None)
@given(consumer=consumers(), steps=timelines)
def test_the_memory_cluster_derives_from_a_body_what_the_body_gives(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step]
) -> None:
    """``MemoryCluster.apply`` reuses what a write that keeps the pod template keeps (the
    containers, the pod, the output of an unchanged target): the same as deriving it all
    from the body, Deployments, pods and output."""
    source, spec = consumer
    reusing = replay(source, spec, steps)
    with mock.patch.object(simulating.MemoryCluster, "apply", plain_apply):
        plain = replay(source, spec, steps)
    assert reusing == plain


# -- the inputs a remembered keep must not outlive, one by one ---------------------------


def _replayed(
    *,
    pending_up: str = "0s",
    pool_cpu: str | None = None,
    metrics: MetricsSnapshot | None = None,
    predictor: str = "naive",
    recreate: bool = False,
) -> simulating.Replay:
    """Two instances in place, settled at ``metrics`` (1,000 msg/s per partition), from a
    global pool of ``pool_cpu`` (None: none), sized by ``predictor``."""
    doc = copy.deepcopy(EXAMPLE)
    doc["spec"]["numPartitions"] = 2
    doc["spec"]["numPartitionsPerInstance"] = 1
    doc["spec"]["autoscaler"]["predictor"] = predictor
    if recreate:
        doc["spec"]["autoscaler"]["updateMode"] = "Recreate"
        # One restart per pass for the two instances (``disruption``), taken by the
        # first scale-down that asks (none waits for its turn).
        doc["spec"]["autoscaler"]["restartBudgetPercent"] = 10
        doc["spec"]["autoscaler"]["pendingScaleDownDuration"] = "0s"
    doc["spec"]["autoscaler"]["pendingScaleUpDuration"] = pending_up
    if pool_cpu is None:
        doc["spec"]["resourcePolicy"].pop("globalPolicy")
    else:
        doc["spec"]["resourcePolicy"]["globalPolicy"]["maxAllowed"]["cpu"] = pool_cpu
    source, spec = manifests.read(doc)
    r = simulating.Replay(source=source, spec=spec)
    for _ in range(6):
        r.step(advance_s=31.0, metrics=metrics or _metrics(production=1000.0, offset=0.0))
    return r


def _metrics(*, production: float, offset: float) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(range(2), production)),
        consumption=MappingProxyType(dict.fromkeys(range(2), production)),
        offset=MappingProxyType(dict.fromkeys(range(2), offset)),
    )


def _pass(
    r: simulating.Replay,
    *,
    snapshot: MetricsSnapshot,
    now: datetime,
    memory: planning.KeptMemory | None,
    owner_name: str | None = None,
    refused: dict[str, str] | None = None,
    edited: int | None = None,
    refreshed: bool = True,
    stopped: bool = False,
    config: Any = None,
    unclaimed: int | None = None,
    podless: bool = False,
    gone: int | None = None,
) -> planning.Plan:
    """One pass over the replay's fleet (``edited``: with that instance's in-place target
    set by hand to the policies' floors; ``stopped``: with the first pod not running;
    ``config``: another config than the replay's; ``unclaimed``: with that instance's
    Deployment's index annotation unreadable; ``podless``: without the first instance's
    pods; ``gone``: without that instance's Deployment)."""
    source = r.source
    deployments = r.cluster.observed()
    if edited is not None:
        body = copy.deepcopy(r.cluster._bodies[deployments[edited].name])
        body["metadata"]["annotations"][keys.TARGET_RESOURCES] = json.dumps(
            {
                name: {
                    "requests": {"cpu": cpu, "memory": memory},
                    "limits": {"cpu": cpu, "memory": memory},
                }
                for name, cpu, memory in [
                    ("consumer", "100m", "128Mi"),
                    ("metrics-sidecar", "50m", "32Mi"),
                ]
            }
        )
        deployments[edited] = simulating.observe(body, owner_uid=source.uid)
    if unclaimed is not None:
        body = copy.deepcopy(r.cluster._bodies[deployments[unclaimed].name])
        body["metadata"]["annotations"][keys.CONSUMER_ID] = "not a number"
        deployments[unclaimed] = simulating.observe(body, owner_uid=source.uid)
    pods = {
        d.name: r.cluster.pods.by_index(index="", value=f"{d.namespace}/{d.name}")
        for d in deployments
    }
    if podless:
        del pods[deployments[0].name]
    if gone is not None:
        del deployments[gone]
    if stopped:
        first = deployments[0].name
        pods[first] = [dataclasses.replace(p, running=False) for p in pods[first]]
    if config is None:
        config = to_config(r.spec, paused=False) if memory is None else _config(r)
    return planning.plan(
        config=config,
        owner=Owner(
            api_version=source.api_version,
            kind=source.kind,
            name=owner_name or source.name,
            uid=source.uid,
        ),
        deployments=deployments,
        metrics=planning.Metrics(snapshot=snapshot, refreshed=refreshed, synced_at=now),
        now=now,
        pods=pods,
        refused=refused or {},
        memory=memory,
    )


_CONFIGS: dict[int, tuple[simulating.Replay, Any]] = {}


def _config(r: simulating.Replay) -> Any:
    """One config object per replay: a memory keeps its keeps under the same one. Held
    with the replay: by its id alone, a later test's replay at the same address took an
    earlier test's config (another predictor or update mode) for the remembered pass."""
    known = _CONFIGS.get(id(r))
    if known is None or known[0] is not r:
        known = _CONFIGS[id(r)] = (r, to_config(r.spec, paused=False))
    return known[1]


def _both(r: simulating.Replay, first: dict[str, Any], second: dict[str, Any]) -> planning.Plan:
    """The second pass after the first, remembered, and checked against the full way."""
    memory = planning.KeptMemory()
    _pass(r, memory=memory, **first)
    remembered = _pass(r, memory=memory, **second)
    with without_shortcut():
        full = _pass(r, memory=None, **second)
    assert remembered == full
    return full


def test_a_keep_in_a_pending_period_is_not_reused_once_the_period_is_over() -> None:
    r = _replayed(pending_up="2m")
    # Lagging, with more work than the instances' size: both start waiting to scale up.
    behind = _metrics(production=3000.0, offset=1e6)
    r.step(advance_s=31.0, metrics=behind)
    r.step(advance_s=1.0, metrics=behind)
    assert all(d.scaling.status.name == "PENDING_SCALE_UP" for d in r.cluster.observed())
    full = _both(
        r,
        {"snapshot": behind, "now": r.now},
        {"snapshot": behind, "now": r.now + timedelta(minutes=3)},
    )
    assert full.applies  # the period is over: they scale up


def test_a_keep_is_not_reused_for_another_owner() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now},
        {"snapshot": steady, "now": r.now, "owner_name": "another-consumer"},
    )
    assert full.applies  # its label names the Consumer: repaired


def test_a_keep_with_a_target_is_not_reused_once_a_resize_was_refused() -> None:
    r = _replayed()
    # Resized in place down to half: the target differs from the template.
    half = _metrics(production=500.0, offset=0.0)
    for _ in range(40):
        r.step(advance_s=31.0, metrics=half)
    assert all(d.target is not None for d in r.cluster.observed())
    name = r.cluster.observed()[0].name
    full = _both(
        r,
        {"snapshot": half, "now": r.now},
        {"snapshot": half, "now": r.now, "refused": {name: "the node refused"}},
    )
    assert [a.name for a in full.applies] == [name]  # rolled out with its target


def test_a_keep_from_a_global_pool_is_not_reused_once_the_pool_holds_less() -> None:
    behind = _metrics(production=3000.0, offset=1e6)
    r = _replayed(pool_cpu="1", metrics=behind)
    assert all(d.scaling.status.name == "SATURATED" for d in r.cluster.observed())
    full = _both(
        r,
        {"snapshot": behind, "now": r.now},
        {"snapshot": behind, "now": r.now, "edited": 0},
    )
    # The first one's hand edit holds less of the pool: the second one gets more.
    assert "-1" in [a.name[-2:] for a in full.applies], full.applies


def test_a_keep_is_not_reused_for_another_lag() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now},
        # Not refreshed (a snapshot seeded from the status, say), the lag is another.
        {"snapshot": _metrics(production=1000.0, offset=1e5), "now": r.now, "refreshed": False},
    )
    assert full.counters.lagging == 2


def test_a_keep_is_not_reused_once_a_pod_stops() -> None:
    r = _replayed()
    half = _metrics(production=500.0, offset=0.0)
    for _ in range(40):
        r.step(advance_s=31.0, metrics=half)
    full = _both(
        r,
        {"snapshot": half, "now": r.now, "refreshed": False},
        {"snapshot": half, "now": r.now, "refreshed": False, "stopped": True},
    )
    assert full.in_place.resized == 1  # the other one: its pod runs the target


def test_a_keep_is_not_reused_under_another_config() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=100.0)
    config = _config(r)
    assert config.autoscaling is not None
    stricter = dataclasses.replace(
        config, autoscaling=dataclasses.replace(config.autoscaling, tolerable_lag_s=0.0)
    )
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": steady, "now": r.now, "refreshed": False, "config": stricter},
    )
    assert full.counters.lagging == 2


def test_a_keep_is_not_reused_for_another_version_of_its_deployment() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": steady, "now": r.now, "refreshed": False, "edited": 0},
    )
    assert full.resizes  # its pod follows the target set by hand


def _kept_again_in(r: simulating.Replay, first: dict[str, Any], second: dict[str, Any]) -> int:
    """``_both``, and how many instances of the second pass were kept again as remembered."""
    found: list[int] = []
    real = planning._kept_again

    def again(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        found.append(0 if result is None else result.running)
        return result

    with mock.patch.object(planning, "_kept_again", again):
        _both(r, first, second)
    return found[1]


def test_a_keep_is_reused_with_its_new_lag_while_the_lag_stays_below_the_thresholds() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    # 30 s behind: below the tolerable lag (1m) as before, its report says 30.
    behind = _metrics(production=1000.0, offset=30_000.0)
    kept = _kept_again_in(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": behind, "now": r.now, "refreshed": False},
    )
    assert kept == 2


def test_a_keep_is_not_reused_once_the_lag_turns_critical() -> None:
    # Settled 90 s behind (lagging, not critical), sized for it.
    r = _replayed(metrics=_metrics(production=1000.0, offset=90_000.0))
    config = _config(r)
    assert config.autoscaling is not None
    close = dataclasses.replace(
        config,
        autoscaling=dataclasses.replace(
            config.autoscaling, tolerable_lag_s=60.0, critical_lag_s=100.0
        ),
    )
    # 110 s behind needs the same size, but the lag is critical now: the policy's most.
    full = _both(
        r,
        {"snapshot": _metrics(production=1000.0, offset=90_000.0), "now": r.now, "config": close},
        {"snapshot": _metrics(production=1000.0, offset=110_000.0), "now": r.now, "config": close},
    )
    assert full.applies


def test_a_keep_in_a_pending_period_is_reused_while_the_period_runs() -> None:
    r = _replayed(pending_up="2m")
    behind = _metrics(production=3000.0, offset=1e6)
    r.step(advance_s=31.0, metrics=behind)
    r.step(advance_s=1.0, metrics=behind)
    assert all(d.scaling.status.name == "PENDING_SCALE_UP" for d in r.cluster.observed())
    kept = _kept_again_in(
        r,
        {"snapshot": behind, "now": r.now},
        {"snapshot": behind, "now": r.now + timedelta(seconds=31)},
    )
    assert kept == 2


def test_a_keep_made_without_a_refresh_is_not_reused_by_a_refresh() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    # Nothing produced: no estimate, the fallback, smaller than what they have.
    idle = _metrics(production=0.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": idle, "now": r.now, "refreshed": True},
    )
    assert full.applies  # waiting to scale down, written on the Deployments


def test_a_keep_is_not_reused_once_its_deployments_index_annotation_is_unreadable() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": steady, "now": r.now, "refreshed": False, "unclaimed": 0},
    )
    # Its index is unreadable: its name still claims the instance, OUTDATED, and the
    # rollout puts the annotation back (it was deleted and the instance created again).
    assert full.deletes == ()
    assert (full.counters.missing, full.counters.outdated) == (0, 1)
    [repair] = full.applies
    assert repair.action is planning.Action.ROLLOUT
    assert repair.body["metadata"]["annotations"][keys.CONSUMER_ID] == "0"


def test_a_keep_is_not_reused_once_its_pods_are_gone() -> None:
    r = _replayed()
    half = _metrics(production=500.0, offset=0.0)
    for _ in range(40):
        r.step(advance_s=31.0, metrics=half)
    full = _both(
        r,
        {"snapshot": half, "now": r.now, "refreshed": False},
        {"snapshot": half, "now": r.now, "refreshed": False, "podless": True},
    )
    assert full.in_place.resized == 1  # the other one: its pod runs the target


def test_a_keep_is_not_reused_once_its_deployment_is_gone() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": steady, "now": r.now, "refreshed": False, "gone": 1},
    )
    assert full.counters.missing == 1
    assert [a.action for a in full.applies] == [planning.Action.CREATE]


def test_a_keep_is_not_reused_for_another_version_of_its_deployment_in_a_refresh() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now},
        {"snapshot": steady, "now": r.now, "edited": 0},
    )
    assert full.resizes  # its pod follows the target set by hand


def test_the_claims_of_a_pass_are_not_reused_under_another_instance_count() -> None:
    r = _replayed()
    steady = _metrics(production=1000.0, offset=0.0)
    one = dataclasses.replace(_config(r), num_partitions=1)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": steady, "now": r.now, "refreshed": False, "config": one},
    )
    assert [d.reason for d in full.deletes] == ["instance 1 not needed"]


def test_the_rules_draw_from_a_global_pool_what_the_shortcut_only_looked_at() -> None:
    """``_kept`` hands ``scale_by_metrics`` the verdict it found only from an unbounded
    pool: from a global pool the rule draws what the instance gets, and the next one
    gets what is left."""
    r = _replayed(pool_cpu="2")
    steady = _metrics(production=1000.0, offset=0.0)
    behind = _metrics(production=3000.0, offset=1e6)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now},
        {"snapshot": behind, "now": r.now + timedelta(seconds=31)},
    )
    assert full.applies


# -- the adaptive predictor: kept only in passes that did not refresh metrics ------------


def test_an_adaptive_pass_without_a_refresh_keeps_its_instances_by_the_shortcut() -> None:
    """Its rules decide nothing without fresh metrics: the keep is the rest of the chain's."""
    r = _replayed(predictor="adaptive")
    steady = _metrics(production=1000.0, offset=0.0)
    assert all(d.scaling.memory is not None for d in r.cluster.observed())
    kept = _kept_again_in(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": steady, "now": r.now + timedelta(seconds=10), "refreshed": False},
    )
    assert kept == 2


def test_an_adaptive_keep_without_a_refresh_is_not_reused_by_a_refresh() -> None:
    r = _replayed(predictor="adaptive")
    steady = _metrics(production=1000.0, offset=0.0)
    # Four times the work, far behind: the adaptive rules scale up at once.
    burst = _metrics(production=4000.0, offset=1e7)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": burst, "now": r.now + timedelta(seconds=31), "refreshed": True},
    )
    assert full.applies


def test_an_adaptive_instance_goes_through_its_rules_in_a_pass_that_refreshed() -> None:
    """Where naive's verdict would keep the instance, the adaptive rules still run: the
    memory they compute (its recent peak, kept in the process: ``Recent``) is the next
    pass's, written or not."""
    r = _replayed(predictor="adaptive")
    settled = r.cluster.observed()[0].current["consumer"].cpu_req_m
    assert settled is not None
    # Naive's need for this production is the CPU the instance has (ratePerCore 2000):
    # its verdict keeps the size; the adaptive rules hold it too, with a new peak.
    even = _metrics(production=settled * 2.0, offset=0.0)
    refreshed = {"snapshot": even, "now": r.now + timedelta(seconds=31), "refreshed": True}
    memories = []
    for shortcut in (True, False):
        memory = planning.KeptMemory()
        if shortcut:
            plan = _pass(r, memory=memory, **refreshed)
        else:
            with without_shortcut():
                assert _pass(r, memory=memory, **refreshed) == plan
        memories.append(
            [
                memory.recent.recall(uid=d.uid, annotation=d.annotations.get(keys.SCALING_MEMORY))
                for d in r.cluster.observed()
            ]
        )
    assert memories[0] == memories[1]
    # The peak this pass saw, at its time.
    assert all(m is not None and m.peak_at == refreshed["now"] for m in memories[1])


def test_an_adaptive_resize_asked_by_the_shortcut_draws_from_a_global_pool_once() -> None:
    """The shortcut asks the adaptive rule first; when that resizes, the rule chain asks
    again from the pool as it was (what the first ask drew is given back)."""
    r = _replayed(predictor="adaptive", pool_cpu="2")
    steady = _metrics(production=1000.0, offset=0.0)
    # Four times the work, far behind: both want more than the pool has left.
    burst = _metrics(production=4000.0, offset=1e7)
    full = _both(
        r,
        {"snapshot": steady, "now": r.now, "refreshed": False},
        {"snapshot": burst, "now": r.now + timedelta(seconds=31), "refreshed": True},
    )
    assert full.applies


def test_an_adaptive_scale_down_asked_by_the_shortcut_takes_one_turn_of_the_restart_budget() -> (
    None
):
    """Under Recreate a scale-down takes a turn of the restart budget: the shortcut does
    not ask the adaptive rule then, so the rule chain takes it once (the first instance
    scales down, the second waits)."""
    r = _replayed(
        predictor="adaptive", recreate=True, metrics=_metrics(production=3000.0, offset=0.0)
    )
    idle = _metrics(production=100.0, offset=0.0)
    for _ in range(3):
        r.step(advance_s=700.0, metrics=_metrics(production=3000.0, offset=0.0))
    full = _both(
        r,
        {"snapshot": idle, "now": r.now, "refreshed": False},
        {"snapshot": idle, "now": r.now + timedelta(minutes=12), "refreshed": True},
    )
    assert [a.action for a in full.applies][:1] == [planning.Action.SCALE]
    assert full.restarts_held == 1


def _asked(r: simulating.Replay, passes: list[dict[str, Any]]) -> list[list[Any]]:
    """The instances each pass (remembered in one ``KeptMemory``) asked the adaptive
    rule for from the shortcut, and the ones the rule chain decided, in order; each pass
    checked against the full way (with a memory of its own, fed the same passes)."""
    memory, full = planning.KeptMemory(), planning.KeptMemory()
    asked: list[list[Any]] = []
    real_rule, real_chain = rules.scale_adaptively, rules.decide_existing

    def rule(ctx: Any, inst: Any, pool: Any) -> Any:
        asked[-1].append(inst)
        return real_rule(ctx, inst, pool)

    def chain(ctx: Any, inst: Any, pool: Any, **kwargs: Any) -> Any:
        asked[-1].append(("chain", inst))
        return real_chain(ctx, inst, pool, **kwargs)

    for second in passes:
        asked.append([])
        with (
            mock.patch.object(rules, "scale_adaptively", rule),
            mock.patch.object(rules, "decide_existing", chain),
        ):
            remembered = _pass(r, memory=memory, **second)
        with without_shortcut():
            assert remembered == _pass(r, memory=full, **second)
    return asked


def test_an_adaptive_refresh_with_the_same_inputs_asks_for_the_instances_it_asked_for() -> None:
    """A refreshing pass asks the adaptive rule for each instance again (its rules read
    the time and every metric), for the instance the last keep asked for when the
    Deployment version, pods and lag are the same: equal, and the same object."""
    r = _replayed(predictor="adaptive")
    steady = _metrics(production=1000.0, offset=0.0)
    later = [
        {"snapshot": steady, "now": r.now + timedelta(seconds=31 * i), "refreshed": True}
        for i in (1, 2)
    ]
    # No peak's certificate (``rules.held``): the rule itself is asked every pass.
    with mock.patch.object(rules, "held", return_value=None):
        first, second = _asked(r, later)
    assert len(first) == len(second) == 2
    assert all(a is b for a, b in zip(first, second, strict=True))
    # Another lag: the instances it asks for are new ones, with that lag.
    behind = _metrics(production=1000.0, offset=20_000.0)
    (third,) = _asked(r, [{**later[1], "snapshot": behind}])
    assert [i.max_lag_s for i in third] == [20, 20]


def test_a_steady_adaptive_refresh_keeps_its_instances_by_their_peaks_certificate() -> None:
    """A refreshing pass of a steady adaptive Consumer keeps the instances whose peak's
    certificate (``rules.held``) stands without asking the rule (the pass is the one the
    full way plans, ``_asked``); a burst of production asks it again."""
    r = _replayed(predictor="adaptive")
    steady = _metrics(production=1000.0, offset=0.0)
    passes = [
        {"snapshot": steady, "now": r.now + timedelta(seconds=31 * i), "refreshed": True}
        for i in (1, 2, 3)
    ]
    asked = _asked(r, passes)
    assert len(asked[0]) == 2  # the first refresh asks the rule, which makes the holds
    assert asked[1:] == [[], []]
    burst = _metrics(production=4000.0, offset=0.0)
    (again,) = _asked(r, [{**passes[2], "snapshot": burst}])
    assert len(again) >= 2


def test_an_adaptive_instance_the_shortcut_declines_is_decided_as_the_rule_saw_it() -> None:
    """When the adaptive rule resizes, the rule chain decides the instance the shortcut
    asked the rule for (one instance built per instance and pass)."""
    r = _replayed(predictor="adaptive")
    burst = _metrics(production=4000.0, offset=1e7)
    (asked,) = _asked(r, [{"snapshot": burst, "now": r.now + timedelta(seconds=31)}])
    shortcut = [i for i in asked if not isinstance(i, tuple)]
    chain = [i for tag, i in (x for x in asked if isinstance(x, tuple))]
    assert len(shortcut) == len(chain) == 2
    assert all(a is b for a, b in zip(shortcut, chain, strict=True))


def test_an_adaptive_decision_the_shortcut_declines_is_not_made_again_by_the_rule_chain() -> None:
    """The rule chain asks the rule for the instance the shortcut declined right after,
    from the pool as it was: it takes the declined decision (``rules.decline``), so the
    rule decides each instance once; the pass is the one the full way makes."""
    r = _replayed(predictor="adaptive")
    burst = _metrics(production=4000.0, offset=1e7)
    now = r.now + timedelta(seconds=31)
    situations = mock.Mock(wraps=rules._adaptive_situation)
    with mock.patch.object(rules, "_adaptive_situation", situations):
        planned = _pass(r, snapshot=burst, now=now, memory=planning.KeptMemory())
    assert len(planned.applies) == 2  # both resized: declined by the shortcut
    assert situations.call_count == 2
    with without_shortcut():
        assert planned == _pass(r, snapshot=burst, now=now, memory=planning.KeptMemory())


def test_a_declined_adaptive_decision_is_taken_only_by_the_call_it_was_made_for() -> None:
    r = _replayed(predictor="adaptive")
    burst = _metrics(production=4000.0, offset=1e7)
    now = r.now + timedelta(seconds=31)
    made: list[Any] = []
    real = rules.scale_adaptively

    def rule(ctx: Any, inst: Any, pool: Any) -> Any:
        made.append((ctx, inst, pool))
        return real(ctx, inst, pool)

    with mock.patch.object(rules, "scale_adaptively", rule):
        _pass(r, snapshot=burst, now=now, memory=planning.KeptMemory())
    ctx, inst, pool = made[-1]
    stale = mock.sentinel.stale
    before = pool.available
    for other in (
        {"ctx": dataclasses.replace(ctx, declined=[])},  # another pass's
        {"inst": dataclasses.replace(inst)},
        {"pool": copy.deepcopy(pool)},
    ):
        asked = {"ctx": ctx, "inst": inst, "pool": pool, **other}
        rules.decline(ctx=ctx, inst=inst, pool=pool, before=before, after=before, decision=stale)
        assert real(asked["ctx"], asked["inst"], asked["pool"]) is not stale
    # Nor by a later call: any call forgets it.
    rules.decline(ctx=ctx, inst=inst, pool=pool, before=before, after=before, decision=stale)
    real(ctx, dataclasses.replace(inst), pool)
    assert real(ctx, inst, pool) is not stale
    # The very call takes it.
    rules.decline(ctx=ctx, inst=inst, pool=pool, before=before, after=before, decision=stale)
    assert real(ctx, inst, pool) is stale
