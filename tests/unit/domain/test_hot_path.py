"""The planner's per-instance hot path gives what its plain definitions give.

``plan()`` runs its per-instance rules for every instance of every pass (a
10,000-step replay of 100 instances runs them half a million times), so a few of
them take shortcuts. Each shortcut is checked here against the plain definition
it replaces, written out in the test (hypothesis, random pods and targets):

* ``pod_target``: what a pod is resized to (memory never lowered, the QoS class
  kept), with its shortcut for containers already at their target;
* ``qos_class`` (one loop), ``Resources.is_empty`` (field by field) and ``compare``
  (the instance's verdict, stopping at the first container that needs more);
* ``in_place`` converts a decision without losing any of its fields;
* ``Decision.pods_pending``: whether a running pod does not yet run its target,
  found with the pod patches, as ``ObservedPod.actuated`` says;
* ``Sizing.propose`` remembers, within a pass, the proposals from an unbounded pool
  (also by the size a need comes to), and ``Sizing.peek`` reads them; it remembers a
  need's size across passes, as ``size_for_rate`` gives it, and a size's proposal from
  an unbounded pool by config, as ``_bounded`` gives it;
* a snapshot's lag (``truncate`` inline) is trunc(behind / production) of the truncated
  values, absent where nothing is produced; its values (plain ``dict`` reads) are the
  ones it was given, and no one changes them afterwards, neither through the snapshot
  nor through the mapping it was built from;
* ``Sizing.naive_need`` (one partition inline), ``Sizing.naive_sizes`` (every
  instance's size in one loop, in C loops when each has one partition) and
  ``prediction.instance_rate`` (one partition without the loop) are the naive
  predictor's rule written out;
* rendering copies the template with a copy for JSON-shaped data.
"""

import copy
import dataclasses
import json
import math
import pickle
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from konsumerator.domain import keys, limits, prediction, rendering, rules, sizing
from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.pods import ObservedPod
from konsumerator.domain.qos import QoS, keep_class, qos_class
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import NO_RESOURCES, Resources, compare_requests
from konsumerator.domain.scaling import ScalingState, ScalingStatus
from konsumerator.domain.specs import Autoscaling, Bounds, ConsumerConfig, Owner, UpdateMode
from konsumerator.simulating import observe

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ("app", "sidecar", "init")

amounts = st.one_of(st.none(), st.sampled_from([0, 1, 100, 500, 1000, 2000, 10**9]))
resources = st.builds(
    Resources, cpu_req_m=amounts, mem_req_b=amounts, cpu_lim_m=amounts, mem_lim_b=amounts
)
containers = st.dictionaries(st.sampled_from(NAMES), resources, max_size=3)


@st.composite
def pods(draw: st.DrawFn) -> ObservedPod:
    spec = draw(containers)
    actual = {n: draw(st.one_of(st.none(), st.just(r), resources)) for n, r in spec.items()}
    return ObservedPod(
        name="c-0-pod",
        namespace="ns",
        uid="uid-pod",
        deployment="c-0",
        spec=MappingProxyType(spec),
        actual=MappingProxyType(actual),
        running=draw(st.booleans()),
        deleting=draw(st.integers(0, 4)) == 0,
    )


@st.composite
def targets(draw: st.DrawFn, pod: ObservedPod) -> dict[str, Resources]:
    """Often the pod's own spec (the steady state), or partly so, or anything."""
    kind = draw(st.sampled_from(["same", "mixed", "any"]))
    if kind == "same":
        return dict(pod.spec)
    if kind == "mixed":
        return {n: draw(st.one_of(st.just(r), resources)) for n, r in pod.spec.items()}
    return draw(containers)


def plain_qos_class(c: Mapping[str, Resources]) -> QoS:
    """Kubernetes' GetPodQOS, as ``qos`` defines it."""
    if all(r == NO_RESOURCES for r in c.values()):
        return QoS.BEST_EFFORT

    def requests(r: Resources) -> tuple[int | None, int | None]:
        return (
            r.cpu_req_m if r.cpu_req_m is not None else r.cpu_lim_m,
            r.mem_req_b if r.mem_req_b is not None else r.mem_lim_b,
        )

    guaranteed = all(
        r.cpu_lim_m is not None
        and r.mem_lim_b is not None
        and requests(r) == (r.cpu_lim_m, r.mem_lim_b)
        for r in c.values()
    )
    return QoS.GUARANTEED if guaranteed else QoS.BURSTABLE


def plain_pod_target(pod: ObservedPod, target: Mapping[str, Resources]) -> dict[str, Resources]:
    """``pod_target`` as documented: memory never lowered, then the class kept."""

    def not_lower(wanted: int | None, have: int | None) -> int | None:
        return have if have is not None and (wanted is None or wanted < have) else wanted

    result = {
        name: msgspec.structs.replace(
            wanted,
            mem_req_b=not_lower(wanted.mem_req_b, pod.spec[name].mem_req_b),
            mem_lim_b=not_lower(wanted.mem_lim_b, pod.spec[name].mem_lim_b),
        )
        for name, wanted in target.items()
        if wanted != NO_RESOURCES and name in pod.spec
    }
    return keep_class(pod.spec, result)


@given(r=resources)
def test_is_empty_is_equality_with_no_resources(r: Resources) -> None:
    assert r.is_empty == (r == NO_RESOURCES)


@given(c=containers)
def test_the_qos_class_is_kubernetes_one(c: dict[str, Resources]) -> None:
    assert qos_class(c) is plain_qos_class(c)


@given(data=st.data(), pod=pods())
def test_a_pods_target_is_the_documented_one(data: st.DataObject, pod: ObservedPod) -> None:
    target = data.draw(targets(pod))
    assert rules.pod_target(pod, target) == plain_pod_target(pod, target)


def config() -> ConsumerConfig:
    return ConsumerConfig(
        name="c",
        namespace="ns",
        num_partitions=1,
        per_instance=1,
        deployment_template={"template": {"spec": {"containers": [{"name": "app"}]}}},
        autoscaling=None,
        policies={},
        update_mode=UpdateMode.IN_PLACE_OR_RECREATE,
    )


def context() -> rules.Context:
    return rules.Context(
        config=config(),
        owner=Owner(api_version="v1", kind="Consumer", name="c", uid="u"),
        num_instances=1,
        hash_value="1",
        memory_format=Format.BINARY_SI,
        sizing=None,  # type: ignore[arg-type]  # not asked by in_place
        snapshot=None,
        refreshed=False,
        now=T0,
    )


@given(data=st.data(), pod=pods())
def test_in_place_keeps_every_field_and_says_whether_pods_are_pending(
    data: st.DataObject, pod: ObservedPod
) -> None:
    target = data.draw(targets(pod))
    d = observe(
        {
            # Sized from metrics before (a time): a first size with no pod running yet goes
            # into the template instead (``rules._podless_first_size``).
            "metadata": {
                "name": "c-0",
                "namespace": "ns",
                "annotations": {keys.SCALING_STATUS_CHANGE: "2026-01-01T00:00:00Z"},
            },
            "spec": {"template": {"spec": {"containers": [{"name": n} for n in pod.spec]}}},
        },
        owner_uid="u",
    )
    inst = rules.Instance(
        index=0,
        name="c-0",
        partitions=(0,),
        max_lag_s=0,
        lagging=False,
        critical=False,
        deployment=d,
        pods=(pod,),
    )
    # Every field set to something other than its default, so a field the
    # conversion forgot would show.
    decision = rules.Decision(
        action=data.draw(st.sampled_from([None, rules.Action.SCALE, rules.Action.REPAIR])),
        resources=target,
        scaling=ScalingState(status=ScalingStatus.SATURATED, since=T0, explanation="why"),
        cpu_shortage_m=7,
        message="message",
        outdated=True,
        template={"x": NO_RESOURCES},
        resizes=(),
        fell_back="fell back",
        pods_pending=False,
    )
    converted = rules.in_place(context(), inst, decision)
    running = [p for p in inst.pods if p.running and not p.deleting]
    expected = msgspec.structs.replace(
        decision,
        action=rules.Action.RESIZE_IN_PLACE
        if decision.action is rules.Action.SCALE
        else decision.action,
        template=d.template_resources,
        resizes=rules.resize_pods(context(), inst, target=target),
        pods_pending=bool(rules.resize_pods(context(), inst, target=target))
        or any(not p.actuated(plain_pod_target(p, target)) for p in running),
    )
    assert converted == expected


@given(
    asked=st.lists(
        st.tuples(st.integers(0, 5), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_a_pass_proposes_from_an_unbounded_pool_what_a_fresh_sizing_would(
    asked: list[tuple[int, bool]],
) -> None:
    """The proposals a pass remembers (no global pool) are the ones it would compute."""
    cfg = dataclasses.replace(
        config(),
        num_partitions=6,
        deployment_template={
            "template": {"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]}}
        },
        autoscaling=Autoscaling(rate_per_core=1000, ram_per_core_b=10**9),
        policies={
            "app": Bounds(min_cpu_m=100, max_cpu_m=4000),
            "sidecar": Bounds(min_cpu_m=50, max_cpu_m=50, min_mem_b=10**6, max_mem_b=10**6),
        },
    )
    snapshot = MetricsSnapshot(
        production=MappingProxyType({p: 300.0 * p for p in range(6)}),
        offset=MappingProxyType({p: 1000.0 * p for p in range(6)}),
    )

    def fresh() -> sizing.Sizing:
        return sizing.Sizing.for_pass(
            config=cfg, snapshot=snapshot, num_instances=6, deployments=()
        )

    shared = fresh()
    for partition, critical in asked:
        pool = limits.Pool(pool=None, used_cpu_m=0, used_mem_b=0)
        args = {"partitions": (partition,), "current": {}, "critical": critical, "pool": pool}
        assert shared.propose(**args) == fresh().propose(**args)  # type: ignore[arg-type]
        # ``peek`` (the planner's shortcut reads it) is the same proposal, not a copy.
        assert shared.peek(**args) == fresh().propose(**args)  # type: ignore[arg-type]


@given(
    sizes=st.lists(st.tuples(resources, st.booleans()), min_size=1, max_size=8),
    max_cpu=st.sampled_from([None, 300, 4000]),
)
def test_proposals_remembered_across_passes_are_the_ones_each_config_computes(
    sizes: list[tuple[Resources, bool]], max_cpu: int | None
) -> None:
    """From an unbounded pool, a size's proposal is remembered from pass to pass by config
    object: each pass (a new ``Sizing``) gets what ``_bounded`` computes afresh for its
    own config, also after another config of other policies asked for the same sizes."""
    template = {"template": {"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]}}}

    def config_of(app_max: int | None) -> ConsumerConfig:
        return dataclasses.replace(
            config(),
            deployment_template=template,
            autoscaling=Autoscaling(rate_per_core=1000, ram_per_core_b=10**9),
            policies={
                "app": Bounds(min_cpu_m=100, max_cpu_m=app_max),
                "sidecar": Bounds(min_cpu_m=50, max_cpu_m=50),
            },
        )

    def pass_of(cfg: ConsumerConfig) -> sizing.Sizing:
        return sizing.Sizing.for_pass(config=cfg, snapshot=None, num_instances=2, deployments=())

    unbounded = limits.Pool(pool=None, used_cpu_m=0, used_mem_b=0)
    first, second = config_of(max_cpu), config_of(None if max_cpu else 500)
    for cfg in (first, second, first):
        for _ in range(2):  # a pass, and the next one
            remembering = pass_of(cfg)
            for size, critical in sizes:
                got = remembering._proposed(sized=size, critical=critical, pool=unbounded)
                want = pass_of(cfg)._bounded(
                    sized=size, current={}, critical=critical, pool=unbounded
                )
                assert got == want


@given(
    needs=st.lists(st.integers(1, 10**7), max_size=20),
    rate=st.sampled_from([1, 7, 1000, 2000]),
    learned=st.sampled_from([None, 1500]),
    increment=st.sampled_from([1, 100, 250]),
    ram=st.sampled_from([1, 2**28, 10**9]),
)
def test_a_need_is_sized_as_size_for_rate_sizes_it(
    needs: list[int], rate: int, learned: int | None, increment: int, ram: int
) -> None:
    """What ``Sizing`` remembers across passes of a need's size is ``size_for_rate``'s."""
    autoscaling = Autoscaling(
        rate_per_core=rate,
        ram_per_core_b=ram,
        cpu_increment_m=increment,
        learned_rate_per_core=learned,
    )
    cfg = dataclasses.replace(config(), autoscaling=autoscaling)
    shared = sizing.Sizing.for_pass(config=cfg, snapshot=None, num_instances=1, deployments=())
    for need in needs:
        assert shared._sized(need) == prediction.size_for_rate(rate=need, autoscaling=autoscaling)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


def containers_of(value: object) -> list[int]:
    """The ids of every dict and list in ``value``."""
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in containers_of(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in containers_of(v))]
    return []


@given(value=json_values)
def test_a_template_copy_is_equal_and_shares_nothing_mutable(value: object) -> None:
    copied = rendering._copy(value)
    assert copied == value
    assert not set(containers_of(copied)) & set(containers_of(value))


@given(current=containers, proposed=containers)
def test_an_instances_verdict_is_more_if_any_container_needs_more_else_less_if_any_does(
    current: dict[str, Resources], proposed: dict[str, Resources]
) -> None:
    results = [compare_requests(current.get(n, NO_RESOURCES), r) for n, r in proposed.items()]
    expected = 1 if 1 in results else -1 if -1 in results else 0
    assert rules.compare(current, proposed) == expected
    # The same objects compare as equal without being looked at.
    assert rules.compare(proposed, proposed) == 0


metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 0.5, 999.9, 1000.0, 2.0**62]),
)


@given(
    production=st.dictionaries(st.integers(0, 3), metric_values, max_size=4),
    offset=st.dictionaries(st.integers(0, 3), metric_values, max_size=4),
    partitions=st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True).map(tuple),
    recovery_s=st.sampled_from([0.0, 1.0, 300.0]),
)
def test_an_instance_needs_what_the_naive_rule_says(
    production: dict[int, float],
    offset: dict[int, float],
    partitions: tuple[int, ...],
    recovery_s: float,
) -> None:
    """Each partition needs its truncated production (missing, NaN, infinite: 0) plus
    its backlog over the recovery time when lagging; one with no positive need borrows
    the largest; the instance needs their sum (``naive_need``: None for 0)."""
    snapshot = MetricsSnapshot(
        production=MappingProxyType(production), offset=MappingProxyType(offset)
    )
    rates = []
    for p in partitions:
        value = production.get(p)
        produced = int(value) if value is not None and math.isfinite(value) else 0
        lag_s = snapshot.lag.get(p, 0)
        recovery = int(recovery_s)
        rates.append(
            (lag_s * produced + produced * recovery) // recovery
            if lag_s > 0 and recovery > 0
            else produced
        )
    largest = max([0, *rates])
    want = sum(r if r > 0 else largest for r in rates)
    got = prediction.instance_rate(
        snapshot=snapshot, partitions=partitions, recovery_s=int(recovery_s)
    )
    assert got == want
    cfg = dataclasses.replace(
        config(),
        autoscaling=Autoscaling(rate_per_core=1000, ram_per_core_b=10**9, recovery_s=recovery_s),
    )
    shared = sizing.Sizing.for_pass(config=cfg, snapshot=snapshot, num_instances=1, deployments=())
    assert shared.naive_need(partitions) == (want or None)
    # Every instance at once (``naive_sizes``, one partition inline): the same sizes.
    single = [(p,) for p in partitions]
    assert shared.naive_sizes([partitions, *single]) == [
        shared.size(shared.naive_need(parts)) for parts in [partitions, *single]
    ]


@given(
    production=st.dictionaries(st.integers(0, 5), metric_values, max_size=6),
    offset=st.dictionaries(st.integers(0, 5), metric_values, max_size=6),
    count=st.integers(1, 6),
    recovery_s=st.sampled_from([0.0, 1.0, 300.0]),
)
def test_the_sizes_of_instances_of_one_partition_each_are_each_instances_size(
    production: dict[int, float], offset: dict[int, float], count: int, recovery_s: float
) -> None:
    """As many instances as partitions (``naive_sizes`` at once, in C loops): the size of
    each instance's need, whatever the values (missing, NaN, infinite, negative, a sum
    that overflows, lagging or not, a need not sized before)."""
    snapshot = MetricsSnapshot(
        production=MappingProxyType(production), offset=MappingProxyType(offset)
    )
    cfg = dataclasses.replace(
        config(),
        num_partitions=count,
        autoscaling=Autoscaling(rate_per_core=1000, ram_per_core_b=10**9, recovery_s=recovery_s),
    )
    shared = sizing.Sizing.for_pass(
        config=cfg, snapshot=snapshot, num_instances=count, deployments=()
    )
    single = [(p,) for p in range(count)]
    expected = [shared.size(shared.naive_need(parts)) for parts in single]
    assert shared.naive_sizes(single) == expected
    sizing._SIZED.clear()  # needs not sized before, too
    fresh = sizing.Sizing.for_pass(
        config=cfg, snapshot=snapshot, num_instances=count, deployments=()
    )
    assert fresh.naive_sizes(single) == expected


@given(name=st.text(min_size=1, max_size=8), count=st.integers(0, 30))
def test_the_instance_names_are_each_instances_deployment_name(name: str, count: int) -> None:
    """``rendering.deployment_names`` (remembered by name and count) is ``deployment_name``
    of each index."""
    cfg = dataclasses.replace(config(), name=name)
    assert rendering.deployment_names(config=cfg, count=count) == tuple(
        rendering.deployment_name(config=cfg, index=i) for i in range(count)
    )


@given(
    sizes=st.dictionaries(st.sampled_from(NAMES), resources, max_size=3),
    memory_format=st.sampled_from(list(Format)),
)
def test_a_target_annotation_is_its_canonical_json(
    sizes: dict[str, Resources], memory_format: Format
) -> None:
    """``target_annotation`` (remembered by the sorted sizes) is the canonical JSON of
    each container's resources body, the empty ones left out."""
    want = json.dumps(
        {
            n: rendering.resources_body(r, memory_format=memory_format)
            for n, r in sizes.items()
            if not r.is_empty
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert rendering.target_annotation(sizes, memory_format=memory_format) == want
    assert (
        rendering.target_annotation(dict(reversed(sizes.items())), memory_format=memory_format)
        == want
    )


@given(
    production=st.dictionaries(st.integers(0, 3), metric_values, max_size=4),
    offset=st.dictionaries(st.integers(0, 3), metric_values, max_size=4),
)
def test_a_snapshots_lag_is_its_definition(
    production: dict[int, float], offset: dict[int, float]
) -> None:
    snapshot = MetricsSnapshot(
        production=MappingProxyType(production), offset=MappingProxyType(offset)
    )
    want = {
        p: int(truncate(offset.get(p)) / truncate(v)) for p, v in production.items() if truncate(v)
    }
    assert dict(snapshot.lag) == want


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 9), metric_values, metric_values | st.integers(-(2**70), 2**70)),
        max_size=6,
        unique_by=lambda row: row[0],
    )
)
def test_a_snapshots_lag_is_its_definition_with_every_offset_in_production_order(
    rows: list[tuple[int, float, float]],
) -> None:
    # The common case, which ``metrics._lags`` truncates in C when every value is finite.
    production = {p: v for p, v, _ in rows}
    offset = {p: b for p, _, b in rows}
    snapshot = MetricsSnapshot(
        production=MappingProxyType(production), offset=MappingProxyType(offset)
    )
    want = {
        p: int(truncate(offset.get(p)) / truncate(v)) for p, v in production.items() if truncate(v)
    }
    assert dict(snapshot.lag) == want


@given(
    production=st.dictionaries(st.integers(0, 3), metric_values, max_size=4),
    offset=st.dictionaries(st.integers(0, 3), metric_values, max_size=4),
)
@example(production={}, offset={0: math.nan})  # a pickle's NaN is another float object
def test_a_snapshots_values_are_the_ones_given_and_never_change(
    production: dict[int, float], offset: dict[int, float]
) -> None:
    given_production = dict(production)
    snapshot = MetricsSnapshot(production=MappingProxyType(production), offset=offset)
    again = MetricsSnapshot(production=snapshot.production, offset=snapshot.offset)
    assert again == snapshot
    assert again.production is snapshot.production  # read-only already: not copied
    production[99] = 1.0
    offset[99] = 1.0
    for values in (snapshot.production, snapshot.offset, snapshot.consumption, snapshot.lag):
        for change in (
            lambda v: v.__setitem__(0, 1.0),
            lambda v: v.pop(0),
            lambda v: v.update({0: 1.0}),
            lambda v: v.setdefault(0, 1.0),
            lambda v: v.clear(),
        ):
            with pytest.raises(TypeError, match="read-only"):
                change(values)
    assert dict(snapshot.production) == given_production
    assert 99 not in snapshot.offset
    assert copy.deepcopy(snapshot) == snapshot
    # By repr: a NaN read back from a pickle is another float object, and unequal to
    # itself (a dict compares values by identity first, so the deep copy's, which
    # shares the float, is equal).
    restored = pickle.loads(pickle.dumps(snapshot))
    assert repr(restored) == repr(snapshot)
    assert type(restored.offset) is type(snapshot.offset)


@given(pod=pods(), since=st.sampled_from(["", "2026-01-01T00:00:00Z"]))
def test_in_place_a_first_size_goes_into_the_template_while_no_pod_runs(
    pod: ObservedPod, since: str
) -> None:
    d = observe(
        {
            "metadata": {
                "name": "c-0",
                "namespace": "ns",
                "annotations": {keys.SCALING_STATUS_CHANGE: since},
            },
            "spec": {"template": {"spec": {"containers": [{"name": n} for n in pod.spec]}}},
        },
        owner_uid="u",
    )
    inst = rules.Instance(
        index=0,
        name="c-0",
        partitions=(0,),
        max_lag_s=0,
        lagging=False,
        critical=False,
        deployment=d,
        pods=(pod,),
    )
    decision = rules.Decision(
        action=rules.Action.SCALE,
        resources={n: Resources(cpu_req_m=500) for n in pod.spec},
        scaling=ScalingState(status=ScalingStatus.RUNNING, since=T0),
        cpu_shortage_m=0,
    )
    converted = rules.in_place(context(), inst, decision)
    # Never sized from metrics (no time) and no pod running yet: the template gets the
    # size, so the pods kube-controller-manager starts next start at it.
    podless_first = since == "" and not (pod.running and not pod.deleting)
    assert (converted is decision) is podless_first
    if not podless_first:
        assert converted.action is rules.Action.RESIZE_IN_PLACE
