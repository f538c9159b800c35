"""Hostile Consumer specs and guest ConfigMaps, through validation, planning and rendering.

Property-based (hypothesis). Specs start from a valid one and get hostile values at
random places: huge, negative and exotic quantities ("1e309", "-1", "9Ei", 2**80,
NaN, booleans, lists), durations ("-1m", "9999999999999999999h", "1d"), names and keys
(unicode, "A=B", 300 characters), selectors and templates that do not fit, sections
deleted. Guest ConfigMaps carry the same specs as YAML, plus YAML that JSON cannot
hold (integer keys, dates, aliases) and arbitrary text. Each spec is planned against
arbitrary existing Deployments and arbitrary metrics (rates and lags up to 1e308).

The properties:

* nothing but ``SpecError`` (the typed spec error, which becomes ``Ready=False,
  InvalidSpec``) escapes ``manifests.read``/``parse_spec``, ``to_config``, ``plan``,
  ``render`` or ``reporting.status``;
* every apply body is strict JSON, and every CPU and memory quantity in it parses
  with our quantities module, is not negative, fits int64 milli-units, and no request
  exceeds its limit (the apiserver's own rules for container resources);
* every number in the status fits the CRD's int64 fields.

That the apiserver accepts such quantities (not only our parser) is proven on a real
one in tests/cluster/test_extreme_quantities.py.
"""

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from konsumerator.api import manifests
from konsumerator.api.v1 import SpecError, to_config
from konsumerator.domain import keys, planning, quantities
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.domain.resources import MAX_CPU_M, MAX_MEM_B
from konsumerator.domain.specs import Owner
from konsumerator.domain.status import ConsumerStatus, of_pass

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
PROM = ("autoscaler", "prometheus")


def valid_spec() -> dict[str, Any]:
    return {
        "numPartitions": 6,
        "numPartitionsPerInstance": 2,
        "name": "orders",
        "namespace": "ns",
        "autoscaler": {
            "mode": "prometheus",
            "prometheus": {
                "address": ["http://prometheus:9090"],
                "offset": {"query": "lag", "partitionLabel": "partition"},
                "production": {"query": "prod", "partitionLabel": "partition"},
                "consumption": {"query": "cons", "partitionLabel": "partition"},
                "ratePerCore": 1000,
                "ramPerCore": "1Gi",
                "recoveryTime": "30m",
                "tolerableLag": "1m",
                "criticalLag": "10m",
            },
        },
        "deploymentTemplate": {
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {
                "metadata": {"labels": {"app": "orders"}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "busybox"},
                        {"name": "sidecar", "image": "busybox"},
                    ]
                },
            },
        },
        "resourcePolicy": {
            "containerPolicies": [
                {"containerName": "main", "minAllowed": {"cpu": "100m"}, "maxAllowed": {}}
            ]
        },
    }


# --- strategies --------------------------------------------------------------------

SUFFIXES = ["", "m", "n", "u", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]

exotic_quantity_text = st.builds(
    lambda sign, whole, fraction, suffix: f"{sign}{whole}{fraction}{suffix}",
    st.sampled_from(["", "", "-", "+"]),
    st.one_of(st.integers(0, 10**30).map(str), st.just("")),
    st.sampled_from(["", "", ".5", ".", ".000000001"]),
    st.one_of(st.sampled_from(SUFFIXES), st.integers(-400, 400).map(lambda e: f"e{e}")),
)
# Valid and extreme: right at and around the int64 milli-unit bound.
extreme_quantity = st.one_of(
    st.integers(0, quantities.MAX_MILLIS).map(lambda m: f"{m}m"),
    st.integers(0, MAX_MEM_B).map(str),
    st.sampled_from(
        [
            f"{quantities.MAX_MILLIS}m",
            f"{quantities.MAX_MILLIS + 1}m",
            str(MAX_MEM_B),
            str(MAX_MEM_B + 1),
            "8Pi",
            "9Ei",
            "1e18",
            "1e19",
            "1e309",
            "0",
            "1n",
        ]
    ),
)
hostile_quantity = st.one_of(
    extreme_quantity,
    exotic_quantity_text,
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.just([]),
)
hostile_duration = st.one_of(
    st.builds(
        lambda sign, n, unit: f"{sign}{n}{unit}",
        st.sampled_from(["", "", "-", "+"]),
        st.integers(0, 10**22),
        st.sampled_from(["ns", "us", "ms", "s", "m", "h", "", "d"]),
    ),
    st.sampled_from(["0", "-0", "2562047h47m16.854775807s", "2562048h", "1h-1m"]),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
hostile_int = st.one_of(
    st.integers(-3, 20),
    st.integers(-(2**70), 2**70),
    st.sampled_from([100_000, 100_001, 2**31, 2**63 - 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.none(),
)
hostile_name = st.one_of(
    st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,70}[a-z0-9])?", fullmatch=True),
    st.text(max_size=80),
    st.just("a" * 300),
)
resource_list = st.dictionaries(
    st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]), hostile_quantity, max_size=3
)
policies = st.lists(
    st.fixed_dictionaries(
        {"containerName": st.sampled_from(["main", "sidecar", "ghost", ""])},
        optional={
            "minAllowed": resource_list,
            "maxAllowed": resource_list,
            "mode": st.sampled_from(["Auto", "Off", "Sometimes"]),
        },
    ),
    max_size=3,
)
labels = st.dictionaries(
    st.sampled_from(["app", "tier", "a/b", ""]),
    st.one_of(st.sampled_from(["orders", "other", ""]), st.integers()),
    max_size=3,
)
selectors = st.one_of(
    st.fixed_dictionaries({"matchLabels": labels}),
    st.fixed_dictionaries(
        {
            "matchExpressions": st.lists(
                st.fixed_dictionaries(
                    {
                        "key": st.sampled_from(["app", "tier", ""]),
                        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "X"]),
                    },
                    optional={"values": st.lists(st.sampled_from(["orders", "x"]), max_size=2)},
                ),
                max_size=3,
            )
        }
    ),
    st.just({}),
    st.none(),
)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["main", "sidecar", "ghost"]), hostile_name)},
        optional={
            "resources": st.fixed_dictionaries({"limits": resource_list}),
            "env": st.lists(
                st.fixed_dictionaries({"name": st.text(max_size=8), "value": st.text(max_size=8)}),
                max_size=2,
            ),
        },
    ),
    max_size=3,
)

MUTATIONS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("numPartitions",): hostile_int,
    ("numPartitionsPerInstance",): hostile_int,
    ("name",): hostile_name,
    ("namespace",): hostile_name,
    ("partitionEnvKey",): st.one_of(st.text(max_size=12), st.just("A=B")),
    ("autoscaler", "mode"): st.sampled_from(["prometheus", "", "vpa"]),
    ("autoscaler", "pendingScaleUpDuration"): hostile_duration,
    ("autoscaler", "pendingScaleDownDuration"): hostile_duration,
    (*PROM, "ratePerCore"): hostile_int,
    (*PROM, "ramPerCore"): hostile_quantity,
    (*PROM, "cpuIncrement"): hostile_quantity,
    (*PROM, "recoveryTime"): hostile_duration,
    (*PROM, "minSyncPeriod"): hostile_duration,
    (*PROM, "tolerableLag"): hostile_duration,
    (*PROM, "criticalLag"): hostile_duration,
    (*PROM, "fallbackStrategy"): st.sampled_from(["min", "max", "avg", None]),
    (*PROM, "address"): st.lists(st.text(max_size=20), max_size=2),
    ("resourcePolicy", "containerPolicies"): policies,
    ("resourcePolicy", "globalPolicy"): st.fixed_dictionaries({"maxAllowed": resource_list}),
    ("deploymentTemplate", "replicas"): hostile_int,
    ("deploymentTemplate", "selector"): selectors,
    ("deploymentTemplate", "template", "metadata", "labels"): labels,
    ("deploymentTemplate", "template", "spec", "restartPolicy"): st.sampled_from(
        ["Always", "Never", "OnFailure", 1]
    ),
    ("deploymentTemplate", "template", "spec", "containers"): containers,
}
DELETABLE = [
    ("autoscaler",),
    PROM,
    (*PROM, "offset"),
    ("resourcePolicy",),
    ("deploymentTemplate", "template", "spec"),
    ("deploymentTemplate", "template", "metadata"),
    ("deploymentTemplate", "selector"),
    ("name",),
]


def _set(spec: dict[str, Any], path: tuple[str, ...], value: Any, *, delete: bool) -> None:
    cursor: Any = spec
    for key in path[:-1]:
        if not isinstance(cursor, dict):
            return
        cursor = cursor.setdefault(key, {})
    if not isinstance(cursor, dict):
        return
    if delete:
        cursor.pop(path[-1], None)
    else:
        cursor[path[-1]] = value


@st.composite
def hostile_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = valid_spec()
    paths = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=4, unique=True))
    for path in paths:
        _set(spec, path, draw(MUTATIONS[path]), delete=False)
    for path in draw(st.lists(st.sampled_from(DELETABLE), max_size=1)):
        _set(spec, path, None, delete=True)
    return spec


rates = st.one_of(
    st.floats(min_value=0, max_value=1e308),
    st.floats(min_value=0, max_value=1e6),
    st.sampled_from([0.0, 1.0, 2.0**63 - 1024, 1e300]),
)
snapshots = st.one_of(
    st.none(),
    st.builds(
        MetricsSnapshot,
        production=st.dictionaries(st.integers(0, 7), rates, max_size=4),
        consumption=st.dictionaries(st.integers(0, 7), rates, max_size=2),
        offset=st.dictionaries(st.integers(0, 7), rates, max_size=4),
    ),
)


def _valid_quantity(text: str) -> bool:
    try:
        return quantities.parse_quantity(text).nanos >= 0
    except quantities.QuantityError:
        return False


existing_resources = st.dictionaries(
    st.sampled_from(["cpu", "memory"]), extreme_quantity.filter(_valid_quantity), max_size=2
)


def _deployment(index: int, partitions: str, requests: dict[str, str]) -> ObservedDeployment:
    return ObservedDeployment(
        name=f"orders-{index}",
        namespace="ns",
        uid=f"uid-{index}",
        annotations={keys.CONSUMER_ID: str(index), keys.PARTITION: partitions},
        controller_uid="owner",
        containers=(
            ObservedContainer(name="main", requests=requests, limits=requests),
            ObservedContainer(name="sidecar"),
        ),
    )


existing_deployments = st.lists(
    st.builds(
        _deployment,
        index=st.integers(0, 3),
        partitions=st.sampled_from(["0,1", "2,3", "", "x"]),
        requests=existing_resources,
    ),
    max_size=3,
    unique_by=lambda d: d.name,
)


@dataclass(frozen=True)
class World:
    """What a reconcile sees besides the spec."""

    paused: bool = False
    snapshot: MetricsSnapshot | None = None
    refreshed: bool = False
    deployments: tuple[ObservedDeployment, ...] = ()


worlds = st.builds(
    World,
    paused=st.booleans(),
    snapshot=snapshots,
    refreshed=st.booleans(),
    deployments=existing_deployments.map(tuple),
)


# --- the properties ---------------------------------------------------------------------


def _check_quantity(text: object, where: str) -> quantities.Quantity:
    assert isinstance(text, str), where
    parsed = quantities.parse_quantity(text)
    assert parsed.nanos >= 0, where
    assert quantities.fits_int64_millis(parsed), where
    return parsed


def _check_body(body: dict[str, Any]) -> None:
    json.dumps(body, allow_nan=False)  # strict JSON: string keys, finite numbers only
    for container in body["spec"]["template"]["spec"]["containers"]:
        resources = container.get("resources", {})
        for side in ("requests", "limits"):
            for name, text in resources.get(side, {}).items():
                if name in ("cpu", "memory"):
                    _check_quantity(text, f"{container['name']}.{side}.{name}")
        for name in ("cpu", "memory"):
            request = resources.get("requests", {}).get(name)
            limit = resources.get("limits", {}).get(name)
            if request is not None and limit is not None:
                assert quantities.parse_quantity(request) <= quantities.parse_quantity(limit)
        for env in container["env"]:
            assert isinstance(env["name"], str)
            assert isinstance(env.get("value", ""), str)


def _ints(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return []


def _consumer(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.KIND,
        "metadata": {"name": "orders", "namespace": "ns", "uid": "owner", "generation": 1},
        "spec": spec,
    }


def _configmap(text: str, *, name: str = "orders") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "owner",
            "annotations": {keys.MANAGED: ""},
        },
        "data": {keys.GUEST_SPEC_KEY: text},
    }


def _check_problems(problems: list[str]) -> None:
    # At least one problem, each naming its field: "spec.x.y: what is wrong".
    assert problems
    assert all(isinstance(p, str) and ": " in p for p in problems)


def _reconcile_pure(manifest: dict[str, Any], world: World) -> None:
    """Everything a reconcile computes, without I/O; only SpecError may escape."""
    try:
        source, spec = manifests.read(manifest)
    except SpecError as e:
        event("refused")
        _check_problems(e.problems)
        return
    config = to_config(spec, paused=world.paused)
    owner = Owner(api_version=source.api_version, kind=source.kind, name=source.name, uid="owner")
    metrics = planning.Metrics(
        snapshot=world.snapshot,
        refreshed=world.snapshot is not None and world.refreshed,
        synced_at=NOW if world.snapshot is not None else None,
    )
    plan = planning.plan(
        config=config, owner=owner, deployments=world.deployments, metrics=metrics, now=NOW
    )
    event("planned" if plan.applies else "planned, nothing to apply")
    for apply in plan.applies:
        _check_body(apply.body)
    status = of_pass(
        plan=plan,
        metrics=metrics,
        autoscaling=config.autoscaling is not None,
        num_partitions=config.num_partitions,
        failures=[],
        conflicts=list(plan.conflicts),
        previous=ConsumerStatus(),
        generation=1,
        now=NOW,
    ).to_body()
    json.dumps(status, allow_nan=False)
    assert all(-(2**63) <= i < 2**63 for i in _ints(status))
    json.dumps(manifests.status_annotations(status))


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    spec = valid_spec()
    _set(spec, path, value, delete=False)
    return spec


POLICY = ("resourcePolicy", "containerPolicies")


@FUZZ
@given(spec=hostile_specs(), world=worlds)
@example(
    spec=_with(POLICY, [{"containerName": "main", "minAllowed": {"cpu": "1e18"}}]), world=World()
)
@example(
    spec=_with(POLICY, [{"containerName": "main", "maxAllowed": {"cpu": "1e309"}}]), world=World()
)
@example(
    spec=_with(POLICY, [{"containerName": "main", "maxAllowed": {"memory": "1e19"}}]),
    world=World(),
)
@example(spec=_with((*PROM, "tolerableLag"), "-1m"), world=World())
@example(spec=_with(("partitionEnvKey",), "A=B"), world=World())
def test_hostile_consumer_specs_raise_only_the_spec_error(
    spec: dict[str, Any], world: World
) -> None:
    _reconcile_pure(_consumer(copy.deepcopy(spec)), world)


# Raw YAML that safe_dump cannot produce: non-string keys, dates, aliases.
YAML_INJECTIONS = [
    "    1: x\n",
    "    since: 2024-01-01\n",
    "    yes: no\n",
    "    ~: null\n",
    "    big: 1e400\n",
    "    nan: .nan\n",
    "    ref: &r [*r]\n",
    "    ? [a, b]\n    : x\n",
]


@st.composite
def guest_texts(draw: st.DrawFn) -> str:
    spec = draw(hostile_specs())
    text = yaml.safe_dump(spec, sort_keys=True, allow_unicode=True)
    if draw(st.booleans()):
        injection = draw(st.sampled_from(YAML_INJECTIONS))
        anchor = "  template:\n    metadata:\n"
        if anchor in text:
            text = text.replace(anchor, anchor + injection.replace("    ", "      "), 1)
    return text


@FUZZ
@given(
    text=st.one_of(guest_texts(), guest_texts(), st.text(max_size=200)),
    name=st.one_of(st.just("orders"), hostile_name),
    world=worlds,
)
@example(
    text=yaml.safe_dump(valid_spec(), sort_keys=True).replace(
        "  template:\n    metadata:\n", "  template:\n    metadata:\n      1: x\n", 1
    ),
    name="orders",
    world=World(),
)
def test_hostile_guest_configmaps_raise_only_the_spec_error(
    text: str, name: str, world: World
) -> None:
    _reconcile_pure(_configmap(text, name=name), world)


@settings(max_examples=300, deadline=None)
@given(
    production=st.floats(min_value=1, max_value=1e308),
    offset=st.floats(min_value=0, max_value=1e308),
    ram=st.sampled_from(["1", "1Gi", str(MAX_MEM_B)]),
)
@example(production=1.0, offset=1e300, ram="1Gi")
def test_any_lag_on_a_container_without_a_maximum_renders_a_valid_quantity(
    production: float, offset: float, ram: str
) -> None:
    spec = valid_spec()
    spec["autoscaler"]["prometheus"]["ramPerCore"] = ram
    spec["resourcePolicy"] = {}
    _, parsed = manifests.read(_consumer(spec))
    config = to_config(parsed)
    snapshot = MetricsSnapshot(production={0: production}, offset={0: offset})
    plan = planning.plan(
        config=config,
        owner=Owner(api_version="v1", kind="Consumer", name="orders", uid="owner"),
        deployments=[],
        metrics=planning.Metrics(snapshot=snapshot, refreshed=True, synced_at=NOW),
        now=NOW,
    )
    for apply in plan.applies:
        _check_body(apply.body)
    first = plan.applies[0].body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert quantities.cpu_millis(first["limits"]["cpu"]) <= MAX_CPU_M
