"""Specs the schema's types allow but no Deployment could honour are refused, naming the field.

Aspects tested (each rule is also a CEL rule of the CRD, proven on a real apiserver in
tests/cluster/test_operator_crd_validation.py; these are the guest-mode twins, which also
catch Consumers stored before the rules existed):

* quantities: every resource amount (policies, global pool, ramPerCore, cpuIncrement)
  must not be negative and must fit int64 milli-units, the bound every Kubernetes
  component can hold ("1e18" cpu, "1e309" cpu, "1e19" memory are refused); the
  largest amount that fits is accepted;
* tolerableLag, criticalLag and the pending scale durations must not be negative; 0 is
  allowed; minSyncPeriod is at least 1s;
* partitionEnvKey must be an environment variable name ("A=B" is not);
* numPartitions, numPartitionsPerInstance and ratePerCore have the CRD's upper bounds;
* the template: the selector must not be empty and must select the pod labels
  (matchLabels and every matchExpressions operator), restartPolicy must be Always,
  container names are unique DNS labels, replicas an int32 >= 0;
* every containerPolicies[].containerName names a container of the template;
* guest-mode YAML that is not plain JSON (an integer key, an unquoted date, a recursive
  alias, a "billion laughs" document) is refused with the path, not a crash;
* metadata.name must be usable as a label value (<= 63 characters).
"""

import copy
from typing import Any

import pytest
import yaml
from test_v1 import minimal

from konsumerator.api import manifests, templates
from konsumerator.api.v1 import SpecError, parse_spec, to_config
from konsumerator.domain import keys, quantities

PROM = ("autoscaler", "prometheus")
POLICY = ("resourcePolicy", "containerPolicies", 0)
MAX_M = f"{quantities.MAX_MILLIS}m"


def _spec_with(**changes: Any) -> dict[str, Any]:
    spec = minimal()
    spec["resourcePolicy"] = {"containerPolicies": [{"containerName": "main"}]}
    for dotted, value in changes.items():
        path = dotted.split("__")
        cursor: Any = spec
        for key in path[:-1]:
            cursor = cursor[int(key)] if key.isdigit() else cursor.setdefault(key, {})
        cursor[path[-1]] = value
    return spec


def _problems(spec: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return info.value.problems


P = "resourcePolicy__containerPolicies__0__"
R = "autoscaler__prometheus__"

REFUSED: dict[str, tuple[dict[str, Any], str, str]] = {
    "minAllowed.cpu 1e18": (
        {f"{P}minAllowed": {"cpu": "1e18"}},
        "spec.resourcePolicy.containerPolicies[0].minAllowed.cpu",
        "int64 milli-unit",
    ),
    "maxAllowed.cpu 1e309": (
        {f"{P}maxAllowed": {"cpu": "1e309"}},
        "spec.resourcePolicy.containerPolicies[0].maxAllowed.cpu",
        "more than Kubernetes can hold",
    ),
    "maxAllowed.memory 1e19": (
        {f"{P}maxAllowed": {"memory": "1e19"}, f"{R}fallbackStrategy": "max"},
        "spec.resourcePolicy.containerPolicies[0].maxAllowed.memory",
        "more than Kubernetes can hold",
    ),
    "one milli-unit over the bound": (
        {f"{P}maxAllowed": {"cpu": f"{quantities.MAX_MILLIS + 1}m"}},
        "spec.resourcePolicy.containerPolicies[0].maxAllowed.cpu",
        "more than Kubernetes can hold",
    ),
    "globalPolicy 9Ei of memory": (
        {"resourcePolicy__globalPolicy": {"maxAllowed": {"memory": "9Ei"}}},
        "spec.resourcePolicy.globalPolicy.maxAllowed.memory",
        "more than Kubernetes can hold",
    ),
    "ramPerCore 1e16": (
        {f"{R}ramPerCore": "1e16"},
        "spec.autoscaler.prometheus.ramPerCore",
        "more than Kubernetes can hold",
    ),
    "cpuIncrement 1e17": (
        {f"{R}cpuIncrement": "1e17"},
        "spec.autoscaler.prometheus.cpuIncrement",
        "more than Kubernetes can hold",
    ),
    "negative minAllowed.cpu": (
        {f"{P}minAllowed": {"cpu": "-1"}},
        "spec.resourcePolicy.containerPolicies[0].minAllowed.cpu",
        "negative",
    ),
    "negative globalPolicy cpu": (
        {"resourcePolicy__globalPolicy": {"maxAllowed": {"cpu": "-500m"}}},
        "spec.resourcePolicy.globalPolicy.maxAllowed.cpu",
        "negative",
    ),
    "negative tolerableLag": (
        {f"{R}tolerableLag": "-1m"},
        "spec.autoscaler.prometheus.tolerableLag",
        "must not be negative",
    ),
    "negative criticalLag": (
        {f"{R}criticalLag": "-1s"},
        "spec.autoscaler.prometheus.criticalLag",
        "must not be negative",
    ),
    "negative pendingScaleUpDuration": (
        {"autoscaler__pendingScaleUpDuration": "-1ns"},
        "spec.autoscaler.pendingScaleUpDuration",
        "must not be negative",
    ),
    "negative pendingScaleDownDuration": (
        {"autoscaler__pendingScaleDownDuration": "-5m"},
        "spec.autoscaler.pendingScaleDownDuration",
        "must not be negative",
    ),
    "minSyncPeriod 1ns": (
        {f"{R}minSyncPeriod": "1ns"},
        "spec.autoscaler.prometheus.minSyncPeriod",
        "at least 1s",
    ),
    "minSyncPeriod 999ms": (
        {f"{R}minSyncPeriod": "999ms"},
        "spec.autoscaler.prometheus.minSyncPeriod",
        "at least 1s",
    ),
    "partitionEnvKey A=B": ({"partitionEnvKey": "A=B"}, "spec.partitionEnvKey", "pattern"),
    "partitionEnvKey with a space": (
        {"partitionEnvKey": "MY PARTS"},
        "spec.partitionEnvKey",
        "pattern",
    ),
    "numPartitions above the CRD's maximum": (
        {"numPartitions": 100_001},
        "spec.numPartitions",
        "less than or equal to 100000",
    ),
    "ratePerCore beyond int64": (
        {f"{R}ratePerCore": 2**63},
        "spec.autoscaler.prometheus.ratePerCore",
        "less than or equal",
    ),
    "selector that does not select the pods": (
        {"deploymentTemplate__selector": {"matchLabels": {"app": "other"}}},
        "spec.deploymentTemplate",
        "selector.matchLabels.app is 'other' but template.metadata.labels.app is 'c'",
    ),
    "empty selector": (
        {"deploymentTemplate__selector": {}},
        "spec.deploymentTemplate",
        "selector must not be empty",
    ),
    "matchExpressions In without the label value": (
        {
            "deploymentTemplate__selector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]
            }
        },
        "spec.deploymentTemplate",
        "selector.matchExpressions[0] does not select the template's labels",
    ),
    "matchExpressions DoesNotExist on a present label": (
        {
            "deploymentTemplate__selector": {
                "matchLabels": {"app": "c"},
                "matchExpressions": [{"key": "app", "operator": "DoesNotExist"}],
            }
        },
        "spec.deploymentTemplate",
        "selector.matchExpressions[0] does not select",
    ),
    "matchExpressions unknown operator": (
        {
            "deploymentTemplate__selector": {
                "matchExpressions": [{"key": "app", "operator": "Near", "values": ["c"]}]
            }
        },
        "spec.deploymentTemplate",
        "selector.matchExpressions[0].operator must be one of",
    ),
    "restartPolicy Never": (
        {"deploymentTemplate__template__spec__restartPolicy": "Never"},
        "spec.deploymentTemplate",
        "template.spec.restartPolicy is 'Never'; a Deployment only allows Always",
    ),
    "duplicate container names": (
        {
            "deploymentTemplate__template__spec__containers": [
                {"name": "main", "image": "a"},
                {"name": "main", "image": "b"},
            ]
        },
        "spec.deploymentTemplate",
        "template.spec.containers[1].name 'main' is used by another container",
    ),
    "container name that is not a DNS label": (
        {"deploymentTemplate__template__spec__containers": [{"name": "Main_1", "image": "a"}]},
        "spec.deploymentTemplate",
        "is not a DNS-1123 label",
    ),
    "negative replicas": (
        {"deploymentTemplate__replicas": -1},
        "spec.deploymentTemplate",
        "replicas must be an integer from 0 to 2147483647",
    ),
    "policy naming a container that does not exist": (
        {f"{P}containerName": "sidecar"},
        "spec",
        "resourcePolicy.containerPolicies[0].containerName 'sidecar' is not a container",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_spec_that_cannot_be_honoured_is_refused_naming_the_field(case: str) -> None:
    changes, field, fragment = REFUSED[case]
    problems = _problems(_spec_with(**changes))
    assert any(p.startswith(f"{field}: ") and fragment in p for p in problems), problems


ACCEPTED: dict[str, dict[str, Any]] = {
    "the largest cpu that fits": {f"{P}maxAllowed": {"cpu": MAX_M}},
    "the largest memory that fits": {f"{P}maxAllowed": {"memory": "9223372036854775"}},
    "zero cpu": {f"{P}minAllowed": {"cpu": "0"}},
    "tolerableLag 0s": {f"{R}tolerableLag": "0s"},
    "criticalLag 0": {f"{R}criticalLag": "0"},
    "pendingScaleUpDuration 0s": {"autoscaler__pendingScaleUpDuration": "0s"},
    "pendingScaleDownDuration 0": {"autoscaler__pendingScaleDownDuration": "0"},
    "minSyncPeriod 1s": {f"{R}minSyncPeriod": "1s"},
    "partitionEnvKey with dots and dashes": {"partitionEnvKey": "my.parts-1"},
    "empty partitionEnvKey (the default)": {"partitionEnvKey": ""},
    "restartPolicy Always": {"deploymentTemplate__template__spec__restartPolicy": "Always"},
    "matchExpressions that select the pods": {
        "deploymentTemplate__selector": {
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["c", "d"]},
                {"key": "tier", "operator": "DoesNotExist"},
                {"key": "app", "operator": "NotIn", "values": ["x"]},
                {"key": "app", "operator": "Exists"},
            ]
        }
    },
    "replicas 0": {"deploymentTemplate__replicas": 0},
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_extreme_but_valid_spec_is_accepted(case: str) -> None:
    to_config(parse_spec(_spec_with(**ACCEPTED[case])))


def test_largest_quantities_convert_exactly() -> None:
    spec = _spec_with(**{f"{P}maxAllowed": {"cpu": MAX_M, "memory": "9223372036854775"}})
    bounds = to_config(parse_spec(spec)).policies["main"]
    assert (bounds.max_cpu_m, bounds.max_mem_b) == (quantities.MAX_MILLIS, 9223372036854775)


# --- guest mode: YAML that is not JSON -------------------------------------------------


def _configmap(text: str, *, name: str = "guest") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "annotations": {keys.MANAGED: ""}},
        "data": {keys.GUEST_SPEC_KEY: text},
    }


def _guest_problems(text: str, **kw: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        manifests.read(_configmap(text, **kw))
    return info.value.problems


def _yaml_with_template_labels(labels_yaml: str) -> str:
    spec = minimal()
    text = yaml.safe_dump(spec, sort_keys=True)
    # Replace the pod labels with raw YAML, which safe_dump could not produce.
    replaced = text.replace("      labels:\n        app: c\n", f"      labels:\n{labels_yaml}\n", 1)
    assert replaced != text
    return replaced


def test_guest_template_with_an_integer_key_is_refused() -> None:
    text = _yaml_with_template_labels("        app: c\n        1: x")
    problems = _guest_problems(text)
    assert problems == [
        "data.consumer.yaml.deploymentTemplate: template.metadata.labels has the key 1,"
        " which is not a string (quote it)"
    ]


def test_guest_template_with_an_unquoted_date_is_refused() -> None:
    text = _yaml_with_template_labels("        app: c\n        since: 2024-01-01")
    (problem,) = _guest_problems(text)
    assert problem.startswith("data.consumer.yaml.deploymentTemplate: template.metadata.labels.")
    assert "is a date" in problem


def test_guest_template_that_contains_itself_is_refused() -> None:
    spec = minimal()
    text = yaml.safe_dump(spec, sort_keys=True).replace(
        "deploymentTemplate:\n", "deploymentTemplate: &t\n  loop: *t\n", 1
    )
    (problem,) = _guest_problems(text)
    assert "contains itself" in problem


def test_guest_billion_laughs_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    laughs = "\n".join("    " + line for line in lines)
    text = yaml.safe_dump(minimal(), sort_keys=True).replace(
        "deploymentTemplate:\n", f"deploymentTemplate:\n  extra:\n{laughs}\n", 1
    )
    (problem,) = _guest_problems(text)
    # The parser's alias bound (api.limited_yaml) stops it before anything is built.
    assert "expands to more than 50000 values" in problem


def test_a_template_of_more_values_than_the_bound_is_refused() -> None:
    """The template check bounds its own walk too (Consumers come as JSON, not YAML)."""
    shared = ["x"] * 1_000
    [(path, message)] = templates.json_problems({"spec": [shared] * 200})
    assert (path.split("[")[0], message) == ("spec", "has more than 100000 values")


def test_long_object_name_is_refused_because_it_is_a_label_value() -> None:
    name = "a" * 62 + ".b"
    problems = _guest_problems(yaml.safe_dump(minimal()), name=name)
    assert problems[0].startswith("metadata.name: must be at most 63 characters")


def test_consumer_name_of_63_characters_is_fine() -> None:
    manifest = {
        "apiVersion": keys.API_VERSION,
        "kind": keys.KIND,
        "metadata": {"name": "a" * 63, "namespace": "ns"},
        "spec": copy.deepcopy(minimal()),
    }
    manifest["spec"]["namespace"] = "ns"
    source, _ = manifests.read(manifest)
    assert source.name == "a" * 63
