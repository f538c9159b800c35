"""The Consumer API: spec validation, conversion to the planner's config, manifests.

Aspects tested:

* ``parse_spec``: every error names its field (``spec.autoscaler.prometheus
  .ratePerCore``); one test per rule: numPartitions >= 1,
  numPartitionsPerInstance >= 1, ratePerCore > 0, recoveryTime > 0,
  cpuIncrement > 0, minAllowed <= maxAllowed (difference 6: Go swapped them),
  a non-empty http(s) address list, the prometheus section required in
  prometheus mode, fallbackStrategy values, bad quantity and duration
  strings, unknown fields, duplicate container policies, template shape;
  several problems are all reported.
* ``to_config``: defaults (pending 5m/15m, cpuIncrement 100m, fallback min,
  partition env key, the adaptive predictor unless ``predictor: naive``), exact
  units, memory format, missing policy sides and pool sides stay None
  (unbounded), autoscaling off for other modes or when disabled on the Consumer.
* ``manifests.read``: a Consumer, a guest ConfigMap (the ``consumer.yaml``
  key, the single-key fallback, several keys without it, missing managed
  annotation, bad YAML, field names prefixed ``data.consumer.yaml``), a
  namespace mismatch, a manifest without namespace, a wrong kind.
* Guest status annotations: round trip, bad JSON or bad counters read as
  absent / 0.
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from konsumerator.api import manifests
from konsumerator.api.v1 import SpecError, parse_spec, to_config
from konsumerator.domain import keys
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.prediction import estimate
from konsumerator.domain.quantities import Format
from konsumerator.domain.specs import Bounds, FallbackStrategy, GlobalPool

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PROM = ("autoscaler", "prometheus")


def minimal() -> dict[str, Any]:
    return {
        "numPartitions": 4,
        "name": "c",
        "namespace": "ns",
        "autoscaler": {
            "mode": "prometheus",
            "prometheus": {
                "address": ["http://prometheus:9090"],
                "offset": {"query": "lag", "partitionLabel": "partition"},
                "production": {"query": "prod", "partitionLabel": "partition"},
                "consumption": {"query": "cons", "partitionLabel": "partition"},
                "ratePerCore": 1000,
                "ramPerCore": "1G",
                "recoveryTime": "30m",
            },
        },
        "deploymentTemplate": {
            "selector": {"matchLabels": {"app": "c"}},
            "template": {
                "metadata": {"labels": {"app": "c"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }


def with_value(path: tuple[str, ...], value: Any, *, delete: bool = False) -> dict[str, Any]:
    spec = minimal()
    cursor = spec
    for key in path[:-1]:
        cursor = cursor.setdefault(key, {})
    if delete:
        del cursor[path[-1]]
    else:
        cursor[path[-1]] = value
    return spec


def problems_of(raw: Any, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, **kw)
    return info.value.problems


def test_minimal_spec_is_valid():
    spec = parse_spec(minimal())
    assert spec.num_partitions == 4
    assert spec.num_partitions_per_instance == 1


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("numPartitions",), 0, "spec.numPartitions"),
        (("numPartitions",), "ten", "spec.numPartitions"),
        (("numPartitionsPerInstance",), 0, "spec.numPartitionsPerInstance"),
        (("numPartitionsPerInstance",), -3, "spec.numPartitionsPerInstance"),
        ((*PROM, "ratePerCore"), 0, "spec.autoscaler.prometheus.ratePerCore"),
        ((*PROM, "ratePerCore"), -1, "spec.autoscaler.prometheus.ratePerCore"),
        ((*PROM, "recoveryTime"), "0s", "spec.autoscaler.prometheus.recoveryTime"),
        ((*PROM, "recoveryTime"), "-5m", "spec.autoscaler.prometheus.recoveryTime"),
        ((*PROM, "recoveryTime"), "abc", "spec.autoscaler.prometheus.recoveryTime"),
        ((*PROM, "cpuIncrement"), "0", "spec.autoscaler.prometheus.cpuIncrement"),
        ((*PROM, "cpuIncrement"), "-100m", "spec.autoscaler.prometheus.cpuIncrement"),
        ((*PROM, "cpuIncrement"), "1 core", "spec.autoscaler.prometheus.cpuIncrement"),
        ((*PROM, "ramPerCore"), "1Z", "spec.autoscaler.prometheus.ramPerCore"),
        ((*PROM, "ramPerCore"), "0", "spec.autoscaler.prometheus.ramPerCore"),
        ((*PROM, "ramPerCore"), True, "spec.autoscaler.prometheus.ramPerCore"),
        ((*PROM, "address"), [], "spec.autoscaler.prometheus.address"),
        ((*PROM, "address"), ["ftp://x"], "spec.autoscaler.prometheus.address"),
        ((*PROM, "fallbackStrategy"), "avg", "spec.autoscaler.prometheus.fallbackStrategy"),
        ((*PROM, "fallbackStrategy"), "MIN", "spec.autoscaler.prometheus.fallbackStrategy"),
        ((*PROM, "minSyncPeriod"), "1x", "spec.autoscaler.prometheus.minSyncPeriod"),
        ((*PROM, "minSyncPeriod"), "0s", "spec.autoscaler.prometheus.minSyncPeriod"),
        ((*PROM, "tolerableLag"), 5, "spec.autoscaler.prometheus.tolerableLag"),
        ((*PROM, "criticalLag"), "forever", "spec.autoscaler.prometheus.criticalLag"),
        (
            (*PROM, "offset"),
            {"query": "", "partitionLabel": "p"},
            "spec.autoscaler.prometheus.offset.query",
        ),
        (
            (*PROM, "production"),
            {"query": "q"},
            "spec.autoscaler.prometheus.production.partitionLabel",
        ),
        (("autoscaler", "pendingScaleUpDuration"), "5", "spec.autoscaler.pendingScaleUpDuration"),
        (
            ("autoscaler", "pendingScaleDownDuration"),
            "1d",
            "spec.autoscaler.pendingScaleDownDuration",
        ),
        (
            ("resourcePolicy", "containerPolicies"),
            [{"containerName": "main", "minAllowed": {"cpu": "abc"}}],
            "spec.resourcePolicy.containerPolicies[0].minAllowed.cpu",
        ),
        (
            ("resourcePolicy", "globalPolicy"),
            {"maxAllowed": {"memory": "lots"}},
            "spec.resourcePolicy.globalPolicy.maxAllowed.memory",
        ),
        (
            ("resourcePolicy", "containerPolicies"),
            [{"containerName": "main", "mode": "Sometimes"}],
            "spec.resourcePolicy.containerPolicies[0].mode",
        ),
        (("name",), "Bad_Name", "spec.name"),
        (("name",), "", "spec.name"),
        (("namespace",), "", "spec.namespace"),
        (("bogus",), 1, "spec.bogus"),
        ((*PROM, "bogus"), 1, "spec.autoscaler.prometheus.bogus"),
    ],
)
def test_errors_name_the_field(path, value, field):
    problems = problems_of(with_value(path, value))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{field}: "), problems


def test_a_bad_address_is_named_by_index_and_never_quoted():
    # What was pasted into the field (a token?) ends up in status and Events.
    value = ["http://prometheus:9090", "admin:hunter2@prometheus:9090"]
    problems = problems_of(with_value((*PROM, "address"), value))
    assert problems == [
        "spec.autoscaler.prometheus.address: item 1 is not an http:// or https:// URL"
    ]


@pytest.mark.parametrize(
    "missing",
    [
        ("numPartitions",),
        ("name",),
        ("namespace",),
        ("deploymentTemplate",),
        (*PROM, "ratePerCore"),
        (*PROM, "ramPerCore"),
        (*PROM, "recoveryTime"),
        (*PROM, "address"),
        (*PROM, "offset"),
    ],
)
def test_required_fields_are_named(missing):
    problems = problems_of(with_value(missing, None, delete=True))
    assert problems == [f"spec.{'.'.join(missing)}: Field required"]


@pytest.mark.parametrize(
    ("minimum", "maximum", "resource"),
    [
        ({"cpu": "2"}, {"cpu": "1"}, "cpu"),
        ({"memory": "1Gi"}, {"memory": "1G"}, "memory"),
    ],
)
def test_min_above_max_is_rejected(minimum, maximum, resource):
    """Difference 6: Go swapped min and max at run time and logged an error."""
    policy = {"containerName": "main", "minAllowed": minimum, "maxAllowed": maximum}
    problems = problems_of(with_value(("resourcePolicy", "containerPolicies"), [policy]))
    assert len(problems) == 1
    assert problems[0].startswith("spec.resourcePolicy.containerPolicies[0]: ")
    assert f"minAllowed.{resource}" in problems[0]
    assert f"maxAllowed.{resource}" in problems[0]


def test_min_equal_to_max_is_fine():
    policy = {"containerName": "main", "minAllowed": {"cpu": "1"}, "maxAllowed": {"cpu": "1000m"}}
    parse_spec(with_value(("resourcePolicy", "containerPolicies"), [policy]))


def test_fractional_memory_bound_is_rejected():
    policy = {"containerName": "main", "maxAllowed": {"memory": "1.5"}}
    problems = problems_of(with_value(("resourcePolicy", "containerPolicies"), [policy]))
    assert problems[0].startswith("spec.resourcePolicy.containerPolicies[0]: ")
    assert "maxAllowed.memory" in problems[0]


def test_duplicate_container_policies_are_rejected():
    policies = [{"containerName": "main"}, {"containerName": "main"}]
    problems = problems_of(with_value(("resourcePolicy", "containerPolicies"), policies))
    assert problems == ["spec.resourcePolicy.containerPolicies: duplicate containerName main"]


def test_prometheus_mode_needs_the_prometheus_section():
    problems = problems_of(with_value(PROM, None, delete=True))
    assert len(problems) == 1
    assert problems[0].startswith("spec.autoscaler: ")
    assert "prometheus" in problems[0]


@pytest.mark.parametrize(
    "template",
    [
        {"selector": {}},
        {"selector": {}, "template": {"spec": {"containers": []}}},
        {"selector": {}, "template": {"spec": {"containers": [{"image": "x"}]}}},
        {"template": {"spec": {"containers": [{"name": "main"}]}}},
    ],
)
def test_template_shape_is_checked(template):
    problems = problems_of(with_value(("deploymentTemplate",), template))
    assert len(problems) == 1
    assert problems[0].startswith("spec.deploymentTemplate: ")


def test_every_problem_is_reported():
    spec = with_value(("numPartitions",), 0)
    spec["autoscaler"]["prometheus"]["ratePerCore"] = 0
    problems = problems_of(spec)
    fields = sorted(p.split(":")[0] for p in problems)
    assert fields == ["spec.autoscaler.prometheus.ratePerCore", "spec.numPartitions"]


def test_spec_must_be_a_mapping():
    assert problems_of(["not", "a", "mapping"]) == ["spec: must be a mapping"]


def test_field_prefix_is_used():
    problems = problems_of(with_value(("numPartitions",), 0), field_prefix="data.consumer.yaml")
    assert problems[0].startswith("data.consumer.yaml.numPartitions: ")


def test_sub_second_recovery_time_is_not_silently_ignored():
    """recoveryTime > 0 is the rule, but the predictor works in whole seconds
    (Go: a division by zero below 1s). A "500ms" that validation accepts must
    still make a backlog raise the estimate, or be rejected."""
    raw = with_value((*PROM, "recoveryTime"), "500ms")
    try:
        spec = parse_spec(raw)
    except SpecError:
        assert problems_of(raw)[0].startswith("spec.autoscaler.prometheus.recoveryTime: ")
        return
    autoscaling = to_config(spec).autoscaling
    assert autoscaling is not None
    # 100 msg/s, 10 s behind, to be cleared within half a second.
    snap = MetricsSnapshot(production={0: 100}, offset={0: 1000})
    result = estimate(snapshot=snap, partitions=[0], autoscaling=autoscaling, fallback=None)
    backlog_free = estimate(
        snapshot=MetricsSnapshot(production={0: 100}),
        partitions=[0],
        autoscaling=autoscaling,
        fallback=None,
    )
    assert result.cpu_req_m > backlog_free.cpu_req_m


# --- to_config -------------------------------------------------------------------


def test_to_config_defaults():
    cfg = to_config(parse_spec(minimal()))
    assert cfg.name == "c"
    assert cfg.namespace == "ns"
    assert cfg.num_partitions == 4
    assert cfg.per_instance == 1
    assert cfg.partition_env_key == "KONSUMERATOR_PARTITION"
    assert cfg.fallback is FallbackStrategy.MIN
    assert cfg.global_pool is None
    assert dict(cfg.policies) == {}
    a = cfg.autoscaling
    assert a is not None
    assert a.pending_up_s == 300
    assert a.pending_down_s == 900
    assert a.cpu_increment_m == 100
    assert a.fallback is FallbackStrategy.MIN
    assert a.rate_per_core == 1000
    assert a.ram_per_core_b == 10**9
    assert a.recovery_s == 1800
    assert a.min_sync_period_s == 60
    assert a.tolerable_lag_s is None
    assert a.critical_lag_s is None
    assert a.memory_format is Format.DECIMAL_SI


@pytest.mark.parametrize(
    ("predictor", "want"),
    [
        (None, "adaptive"),  # the default for a Consumer that leaves it out
        ("adaptive", "adaptive"),
        ("naive", "naive"),  # the one-line opt-out: the Go operator's predictor
    ],
)
def test_the_predictor_is_adaptive_unless_naive_is_asked_for(
    predictor: str | None, want: str
) -> None:
    spec = minimal()
    if predictor is not None:
        spec["autoscaler"]["predictor"] = predictor
    a = to_config(parse_spec(spec)).autoscaling
    assert a is not None
    assert a.predictor.value == want


@pytest.mark.parametrize(
    ("predictor", "want"),
    [(None, "adaptive"), ("naive", "naive"), ("adaptive", "adaptive")],
)
@pytest.mark.parametrize("guest", [False, True], ids=["consumer", "guest-configmap"])
def test_a_consumer_and_a_guest_configmap_get_the_same_predictor_default(
    *, predictor: str | None, want: str, guest: bool
) -> None:
    spec = minimal()
    if predictor is not None:
        spec["autoscaler"]["predictor"] = predictor
    obj = configmap({"consumer.yaml": yaml.safe_dump(spec)}) if guest else consumer_manifest(spec)
    source, parsed = manifests.read(obj)
    assert source.guest is guest
    a = to_config(parsed).autoscaling
    assert a is not None
    assert a.predictor.value == want


def test_to_config_of_the_example():
    source, spec = manifests.read(yaml.safe_load((EXAMPLES / "consumer.yaml").read_text()))
    cfg = to_config(spec)
    assert source.kind == "Consumer"
    assert cfg.per_instance == 2
    a = cfg.autoscaling
    assert a is not None
    assert (a.pending_up_s, a.pending_down_s) == (120, 600)
    assert (a.tolerable_lag_s, a.critical_lag_s, a.recovery_s) == (60, 600, 300)
    assert a.min_sync_period_s == 30
    assert a.ram_per_core_b == 256 * 2**20
    assert a.memory_format is Format.BINARY_SI
    assert cfg.policies["consumer"] == Bounds(
        min_cpu_m=100, min_mem_b=128 * 2**20, max_cpu_m=4000, max_mem_b=2**30
    )
    assert cfg.policies["metrics-sidecar"] == Bounds(
        min_cpu_m=50, min_mem_b=32 * 2**20, max_cpu_m=50, max_mem_b=32 * 2**20
    )
    assert cfg.global_pool == GlobalPool(cpu_m=20_000, mem_b=20 * 2**30)


def test_to_config_keeps_missing_sides_unbounded():
    spec = with_value(
        ("resourcePolicy",),
        {
            "globalPolicy": {"maxAllowed": {"cpu": "10"}},
            "containerPolicies": [{"containerName": "main", "minAllowed": {"cpu": "250m"}}],
        },
    )
    cfg = to_config(parse_spec(spec))
    assert cfg.policies["main"] == Bounds(min_cpu_m=250)
    assert cfg.global_pool == GlobalPool(cpu_m=10_000, mem_b=None)


def test_to_config_explicit_values():
    spec = minimal()
    prom = spec["autoscaler"]["prometheus"]
    prom.update(
        cpuIncrement="250m",
        fallbackStrategy="max",
        tolerableLag="1m30s",
        criticalLag="1h",
        minSyncPeriod="15s",
    )
    spec["autoscaler"].update(pendingScaleUpDuration="0s", pendingScaleDownDuration="2h")
    spec["partitionEnvKey"] = "PARTS"
    cfg = to_config(parse_spec(spec))
    a = cfg.autoscaling
    assert a is not None
    assert a.cpu_increment_m == 250
    assert a.fallback is FallbackStrategy.MAX
    assert cfg.fallback is FallbackStrategy.MAX
    assert (a.tolerable_lag_s, a.critical_lag_s, a.min_sync_period_s) == (90, 3600, 15)
    assert (a.pending_up_s, a.pending_down_s) == (0, 7200)
    assert cfg.partition_env_key == "PARTS"


def test_empty_partition_env_key_means_default():
    cfg = to_config(parse_spec(with_value(("partitionEnvKey",), "")))
    assert cfg.partition_env_key == "KONSUMERATOR_PARTITION"


@pytest.mark.parametrize("mode", ["", "vpa"])
def test_other_modes_do_not_autoscale(mode):
    cfg = to_config(parse_spec(with_value(("autoscaler", "mode"), mode)))
    assert cfg.autoscaling is None


def test_paused_consumer_does_not_autoscale():
    spec = with_value((*PROM, "fallbackStrategy"), "max")
    cfg = to_config(parse_spec(spec), paused=True)
    assert cfg.autoscaling is None
    assert cfg.paused
    assert cfg.fallback is FallbackStrategy.MAX


# --- manifests.read ------------------------------------------------------------------


def consumer_manifest(spec=None, **meta) -> dict[str, Any]:
    metadata = {"name": "orders", "namespace": "ns", "uid": "u-1", "generation": 3}
    metadata.update(meta)
    return {
        "apiVersion": "konsumerator.lwolf.org/v1",
        "kind": "Consumer",
        "metadata": metadata,
        "spec": spec if spec is not None else minimal(),
    }


def configmap(data, *, managed=True, namespace="ns") -> dict[str, Any]:
    annotations = {keys.MANAGED: "true"} if managed else {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "guest", "namespace": namespace, "annotations": annotations},
        "data": data,
    }


def test_read_consumer():
    source, spec = manifests.read(consumer_manifest())
    assert source == manifests.Source(
        api_version="konsumerator.lwolf.org/v1",
        kind="Consumer",
        name="orders",
        namespace="ns",
        uid="u-1",
        generation=3,
        annotations={},
    )
    assert not source.guest
    assert spec.name == "c"


def test_read_consumer_error_names_spec_field():
    with pytest.raises(SpecError) as info:
        manifests.read(consumer_manifest(with_value(("numPartitions",), 0)))
    assert info.value.problems[0].startswith("spec.numPartitions: ")


def test_read_guest_configmap_example():
    source, spec = manifests.read(
        yaml.safe_load((EXAMPLES / "consumer-configmap.yaml").read_text())
    )
    assert source.guest
    assert source.name == "payments"
    assert spec.name == "payments-consumer"
    assert spec.autoscaler.prometheus is not None
    assert spec.autoscaler.prometheus.fallback_strategy == "max"


def test_read_guest_configmap_prefers_consumer_yaml():
    data = {"other.yaml": "not: a spec", "consumer.yaml": yaml.safe_dump(minimal())}
    _, spec = manifests.read(configmap(data))
    assert spec.name == "c"


def test_read_guest_configmap_single_key_fallback():
    _, spec = manifests.read(configmap({"spec": yaml.safe_dump(minimal())}))
    assert spec.name == "c"


def test_read_guest_configmap_several_keys_without_consumer_yaml():
    data = {"a": yaml.safe_dump(minimal()), "b": yaml.safe_dump(minimal())}
    with pytest.raises(SpecError) as info:
        manifests.read(configmap(data))
    assert info.value.problems[0].startswith("data.consumer.yaml: ")


def test_read_guest_configmap_without_managed_annotation():
    with pytest.raises(SpecError) as info:
        manifests.read(configmap({"consumer.yaml": yaml.safe_dump(minimal())}, managed=False))
    assert info.value.problems[0].startswith("metadata.annotations: ")
    assert keys.MANAGED in info.value.problems[0]


def test_read_guest_configmap_bad_yaml():
    with pytest.raises(SpecError) as info:
        manifests.read(configmap({"consumer.yaml": "numPartitions: [1\nname: x\n"}))
    assert info.value.problems[0].startswith("data.consumer.yaml: not valid YAML")


def test_read_guest_configmap_errors_are_prefixed_with_the_key():
    text = yaml.safe_dump(with_value((*PROM, "ratePerCore"), 0))
    with pytest.raises(SpecError) as info:
        manifests.read(configmap({"consumer.yaml": text}))
    assert info.value.problems == [
        "data.consumer.yaml.autoscaler.prometheus.ratePerCore: Input should be greater than 0"
    ]


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(consumer_manifest(namespace="elsewhere"), id="consumer"),
        pytest.param(
            configmap({"consumer.yaml": yaml.safe_dump(minimal())}, namespace="elsewhere"),
            id="configmap",
        ),
    ],
)
def test_namespace_mismatch_is_an_error(obj):
    with pytest.raises(SpecError) as info:
        manifests.read(obj)
    assert info.value.problems[0].startswith("spec.namespace: ")


def test_manifest_without_namespace_lives_where_its_spec_says():
    obj = consumer_manifest()
    del obj["metadata"]["namespace"]
    source, _ = manifests.read(obj)
    assert source.namespace == "ns"


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("konsumerator.lwolf.org/v2", "Consumer"), ("apps/v1", "Deployment"), ("v1", "Secret")],
)
def test_wrong_kind_is_an_error(api_version, kind):
    obj = consumer_manifest()
    obj["apiVersion"], obj["kind"] = api_version, kind
    with pytest.raises(SpecError) as info:
        manifests.read(obj)
    assert info.value.problems[0].startswith("kind: ")


def test_missing_name_is_an_error():
    obj = consumer_manifest()
    del obj["metadata"]["name"]
    with pytest.raises(SpecError) as info:
        manifests.read(obj)
    assert info.value.problems == ["metadata.name: is required"]


# --- guest status annotations ------------------------------------------------------


def test_status_annotations_round_trip():
    status = {
        "expected": 5,
        "running": 3,
        "paused": 1,
        "missing": 1,
        "lagging": 2,
        "outdated": 0,
        "lastSyncTime": "2026-01-01T00:00:00Z",
        "lastSyncState": {
            "0": {"productionRate": 1, "consumptionRate": 2, "messageBehind": 3},
        },
    }
    annotations = manifests.status_annotations(status)
    assert annotations[f"{keys.STATUS_PREFIX}expected"] == "5"
    assert annotations[manifests.LAST_SYNC_TIME] == "2026-01-01T00:00:00Z"
    assert manifests.status_from_annotations(annotations) == status


def test_status_without_sync_writes_null_state_and_no_time():
    annotations = manifests.status_annotations({"expected": 1})
    assert annotations[manifests.LAST_SYNC_STATE] == "null"
    assert manifests.LAST_SYNC_TIME not in annotations
    status = manifests.status_from_annotations(annotations)
    assert "lastSyncState" not in status
    assert "lastSyncTime" not in status
    assert status["expected"] == 1
    assert status["running"] == 0


def test_bad_status_annotations_read_as_absent():
    annotations = {
        manifests.LAST_SYNC_STATE: "{bad json",
        f"{keys.STATUS_PREFIX}running": "three",
        f"{keys.STATUS_PREFIX}missing": "-1",
    }
    status = manifests.status_from_annotations(annotations)
    assert "lastSyncState" not in status
    assert status["running"] == 0
    assert status["missing"] == 0
    assert status["expected"] == 0


def test_status_annotations_do_not_mutate_input():
    status = {"expected": 1, "lastSyncState": {"0": {"messageBehind": 1}}}
    before = copy.deepcopy(status)
    manifests.status_annotations(status)
    assert status == before


def test_a_cpu_usage_query_turns_learning_on() -> None:
    spec = parse_spec(with_value((*PROM, "cpuUsage"), {"query": "cpu", "podLabel": "pod"}))
    autoscaling = to_config(spec).autoscaling
    assert autoscaling is not None
    assert autoscaling.learns
    assert autoscaling.learned_rate_per_core is None  # the pipeline sets it, never the user
    assert to_config(parse_spec(minimal())).autoscaling.learns is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"query": "cpu"}, "spec.autoscaler.prometheus.cpuUsage.podLabel"),
        ({"query": "", "podLabel": "pod"}, "spec.autoscaler.prometheus.cpuUsage.query"),
        ({"query": "cpu", "podLabel": "pod-name"}, "spec.autoscaler.prometheus.cpuUsage.podLabel"),
        ({"query": "cpu", "podLabel": "pod", "x": 1}, "spec.autoscaler.prometheus.cpuUsage.x"),
    ],
)
def test_a_bad_cpu_usage_query_names_its_field(value: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec(with_value((*PROM, "cpuUsage"), value))


@pytest.mark.parametrize(
    ("value", "want"),
    [(None, 10), (1, 1), (100, 100), (0, None), (101, None), ("10%", None)],
)
def test_the_restart_budget_is_a_percentage_of_one_to_a_hundred_ten_by_default(
    value: object, want: int | None
) -> None:
    spec = minimal()
    if value is not None:
        spec["autoscaler"]["restartBudgetPercent"] = value
    if want is None:
        with pytest.raises(SpecError) as info:
            parse_spec(spec)
        assert info.value.problems[0].startswith("spec.autoscaler.restartBudgetPercent: ")
        return
    a = to_config(parse_spec(spec)).autoscaling
    assert a is not None
    assert a.restart_budget_percent == want
