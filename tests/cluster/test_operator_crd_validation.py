"""The Consumer CRD (``konsumerator crd``) on a real apiserver: bad specs never get stored.

Aspects tested:

* the CRD installs and a well-formed Consumer is accepted (the control case);
* each invalid spec below makes ``kubectl apply`` fail, with a message that names the field
  and says what is wrong, and stores nothing: numPartitions 0, ratePerCore 0, recoveryTime
  0s, cpuIncrement 0, minAllowed greater than maxAllowed (cpu and memory), mode prometheus
  without a prometheus section or with an empty address list, an unknown fallbackStrategy;
* and the specs no Deployment could honour (the same rules guest mode applies in
  ``api/v1.py``): quantities beyond int64 milli-units ("1e18", "1e309" cpu, "1e19" memory,
  a too large ramPerCore or globalPolicy), a negative quantity, a negative tolerableLag,
  criticalLag, pendingScaleUpDuration or pendingScaleDownDuration, a minSyncPeriod below
  1s, ``partitionEnvKey: "A=B"``, an empty selector or one that does not select
  the pod labels (matchLabels, matchExpressions), ``restartPolicy: Never``, a container
  name that is not a DNS label, a policy naming a container that does not exist, a
  ``metadata.name`` longer than a label value, an unknown ``predictor``, a
  ``targetUtilizationPercent`` below 10, a negative ``restartTime``, a
  ``restartBudgetPercent`` outside 1-100, a ``cpuUsage``
  without ``podLabel`` or with one that is not a Prometheus label name;
* the largest quantities that fit, a 63-character name and selectors that do select the
  pods are accepted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from operating import consumer

from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

Mutation = Callable[[dict[str, Any]], None]


def _valid(namespace: str) -> dict[str, Any]:
    return consumer("v", namespace, prometheus_url="http://127.0.0.1:9090")


def _prom(m: dict[str, Any]) -> dict[str, Any]:
    prom: dict[str, Any] = m["spec"]["autoscaler"]["prometheus"]
    return prom


def _policy(m: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = m["spec"]["resourcePolicy"]["containerPolicies"][0]
    return policy


def _set(**values: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        _prom(m).update(values)

    return mutate


def _autoscaler(**values: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        m["spec"]["autoscaler"].update(values)

    return mutate


def _num_partitions_zero(m: dict[str, Any]) -> None:
    m["spec"]["numPartitions"] = 0


def _min_cpu_above_max(m: dict[str, Any]) -> None:
    _policy(m)["minAllowed"]["cpu"] = "3"
    _policy(m)["maxAllowed"]["cpu"] = "2"


def _min_memory_above_max(m: dict[str, Any]) -> None:
    _policy(m)["minAllowed"]["memory"] = "2Gi"
    _policy(m)["maxAllowed"]["memory"] = "1Gi"


def _prometheus_section_missing(m: dict[str, Any]) -> None:
    del m["spec"]["autoscaler"]["prometheus"]


def _policy_value(side: str, resource: str, value: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        _policy(m)[side][resource] = value

    return mutate


def _template(path: str, value: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        cursor = m["spec"]["deploymentTemplate"]
        keys = path.split(".")
        for key in keys[:-1]:
            cursor = cursor.setdefault(key, {})
        cursor[keys[-1]] = value

    return mutate


def _container_name(name: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        m["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]["name"] = name

    return mutate


def _name(name: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        m["metadata"]["name"] = name

    return mutate


def _global_memory(value: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        m["spec"]["resourcePolicy"]["globalPolicy"] = {"maxAllowed": {"memory": value}}

    return mutate


def _spec(**values: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        m["spec"].update(values)

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        first(m)
        second(m)

    return mutate


TOO_LARGE = "must be at most 9223372036854775807m"
POLICY = "spec.resourcePolicy.containerPolicies[0]"

CASES: dict[str, tuple[Mutation, list[str]]] = {
    "numPartitions 0": (_num_partitions_zero, ["spec.numPartitions", "greater than or equal to 1"]),
    "ratePerCore 0": (
        _set(ratePerCore=0),
        ["spec.autoscaler.prometheus.ratePerCore", "greater than or equal to 1"],
    ),
    "recoveryTime 0s": (
        _set(recoveryTime="0s"),
        ["spec.autoscaler.prometheus.recoveryTime", "recoveryTime must be at least 1s"],
    ),
    "cpuIncrement 0": (
        _set(cpuIncrement=0),
        ["spec.autoscaler.prometheus.cpuIncrement", "cpuIncrement must be at least 1m"],
    ),
    "minAllowed.cpu > maxAllowed.cpu": (
        _min_cpu_above_max,
        [
            "spec.resourcePolicy.containerPolicies[0]",
            "minAllowed.cpu must not be greater than maxAllowed.cpu",
        ],
    ),
    "minAllowed.memory > maxAllowed.memory": (
        _min_memory_above_max,
        [
            "spec.resourcePolicy.containerPolicies[0]",
            "minAllowed.memory must not be greater than maxAllowed.memory",
        ],
    ),
    "mode prometheus without a prometheus section": (
        _prometheus_section_missing,
        ["spec.autoscaler.prometheus", "mode prometheus needs prometheus.address"],
    ),
    "mode prometheus with no address": (
        _set(address=[]),
        ["spec.autoscaler.prometheus.address"],
    ),
    "unknown fallbackStrategy": (
        _set(fallbackStrategy="median"),
        ["spec.autoscaler.prometheus.fallbackStrategy", "Unsupported value", '"median"'],
    ),
    "minAllowed.cpu 1e18": (
        _policy_value("minAllowed", "cpu", "1e18"),
        [f"{POLICY}.minAllowed.cpu", TOO_LARGE],
    ),
    "maxAllowed.cpu 1e309": (
        _policy_value("maxAllowed", "cpu", "1e309"),
        [f"{POLICY}.maxAllowed.cpu", TOO_LARGE],
    ),
    # "1e19" itself would reach the apiserver as a YAML float, refused as not int-or-string.
    "maxAllowed.memory 10E (1e19)": (
        _policy_value("maxAllowed", "memory", "10E"),
        [f"{POLICY}.maxAllowed.memory", TOO_LARGE],
    ),
    "one milli-unit too many": (
        _policy_value("maxAllowed", "cpu", "9223372036854775808m"),
        [f"{POLICY}.maxAllowed.cpu", TOO_LARGE],
    ),
    "globalPolicy memory 9Ei": (
        _global_memory("9Ei"),
        ["spec.resourcePolicy.globalPolicy.maxAllowed.memory", TOO_LARGE],
    ),
    "ramPerCore 1e16": (
        _set(ramPerCore="1e16"),
        ["spec.autoscaler.prometheus.ramPerCore", TOO_LARGE],
    ),
    "negative minAllowed.cpu": (
        _policy_value("minAllowed", "cpu", "-1"),
        [f"{POLICY}.minAllowed.cpu", "must not be negative"],
    ),
    "negative tolerableLag": (
        _set(tolerableLag="-1m"),
        ["spec.autoscaler.prometheus.tolerableLag", "tolerableLag must not be negative"],
    ),
    "negative criticalLag": (
        _set(criticalLag="-10s"),
        ["spec.autoscaler.prometheus.criticalLag", "criticalLag must not be negative"],
    ),
    "negative pendingScaleUpDuration": (
        _autoscaler(pendingScaleUpDuration="-1ns"),
        ["spec.autoscaler.pendingScaleUpDuration", "pendingScaleUpDuration must not be negative"],
    ),
    "negative pendingScaleDownDuration": (
        _autoscaler(pendingScaleDownDuration="-5m"),
        [
            "spec.autoscaler.pendingScaleDownDuration",
            "pendingScaleDownDuration must not be negative",
        ],
    ),
    "unknown predictor": (
        _autoscaler(predictor="clever"),
        ["spec.autoscaler.predictor", "Unsupported value"],
    ),
    "targetUtilizationPercent 5": (
        _autoscaler(targetUtilizationPercent=5),
        ["spec.autoscaler.targetUtilizationPercent", "greater than or equal to 10"],
    ),
    "negative restartTime": (
        _autoscaler(restartTime="-1s"),
        ["spec.autoscaler.restartTime", "restartTime must not be negative"],
    ),
    "restartBudgetPercent 0": (
        _autoscaler(restartBudgetPercent=0),
        ["spec.autoscaler.restartBudgetPercent", "greater than or equal to 1"],
    ),
    "restartBudgetPercent 101": (
        _autoscaler(restartBudgetPercent=101),
        ["spec.autoscaler.restartBudgetPercent", "less than or equal to 100"],
    ),
    "cpuUsage podLabel not a label name": (
        _set(cpuUsage={"query": "up", "podLabel": "pod-name"}),
        ["spec.autoscaler.prometheus.cpuUsage.podLabel", "should match"],
    ),
    "cpuUsage without podLabel": (
        _set(cpuUsage={"query": "up"}),
        ["spec.autoscaler.prometheus.cpuUsage.podLabel", "Required value"],
    ),
    "minSyncPeriod 1ns": (
        _set(minSyncPeriod="1ns"),
        ["spec.autoscaler.prometheus.minSyncPeriod", "minSyncPeriod must be at least 1s"],
    ),
    "partitionEnvKey A=B": (_spec(partitionEnvKey="A=B"), ["spec.partitionEnvKey", "should match"]),
    "selector that does not select the pods": (
        _template("selector.matchLabels", {"app": "other"}),
        ["spec.deploymentTemplate.selector.matchLabels", "must select the pods"],
    ),
    "empty selector": (
        _template("selector", {}),
        ["spec.deploymentTemplate.selector", "selector must not be empty"],
    ),
    "matchExpressions that do not select the pods": (
        _template(
            "selector",
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["v-consumer"]}]},
        ),
        ["spec.deploymentTemplate.selector.matchExpressions", "must select the pods"],
    ),
    "restartPolicy Never": (
        _template("template.spec.restartPolicy", "Never"),
        ["spec.deploymentTemplate.template.spec.restartPolicy", "Unsupported value", '"Never"'],
    ),
    "container name that is not a DNS label": (
        _container_name("Consumer_1"),
        ["spec.deploymentTemplate.template.spec.containers[0].name", "should match"],
    ),
    "policy naming a container that does not exist": (
        lambda m: _policy(m).update(containerName="ghost"),
        ["spec.resourcePolicy.containerPolicies", "must name a container"],
    ),
    "metadata.name longer than a label value": (
        _name("a" * 64),
        ["metadata.name must be at most 63 characters"],
    ),
}

ACCEPTED: dict[str, Mutation] = {
    "the largest cpu that fits": _policy_value("maxAllowed", "cpu", "9223372036854775807m"),
    "the largest memory that fits": _policy_value("maxAllowed", "memory", "9223372036854775"),
    "a 63-character name": _name("a" * 63),
    "matchExpressions that select the pods": _template(
        "selector",
        {
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["v-consumer", "x"]},
                {"key": "tier", "operator": "DoesNotExist"},
                {"key": "app", "operator": "Exists"},
                {"key": "app", "operator": "NotIn", "values": ["x"]},
            ]
        },
    ),
    "minSyncPeriod 1s and pending durations 0s": _both(
        _set(minSyncPeriod="1s"),
        _autoscaler(pendingScaleUpDuration="0s", pendingScaleDownDuration="0"),
    ),
    "the adaptive predictor at 100% utilisation, restarts in 0s, no restart budget": _autoscaler(
        predictor="adaptive",
        targetUtilizationPercent=100,
        restartTime="0s",
        restartBudgetPercent=100,
    ),
    "a restart budget of 1%": _autoscaler(restartBudgetPercent=1),
    "the adaptive predictor learning from a cpuUsage query": _both(
        _autoscaler(predictor="adaptive"),
        _set(cpuUsage={"query": "sum by (pod) (rate(cpu[1m]))", "podLabel": "pod"}),
    ),
    "tolerableLag 0s and restartPolicy Always": _both(
        _set(tolerableLag="0s"), _template("template.spec.restartPolicy", "Always")
    ),
}


def test_a_valid_consumer_is_accepted(cluster: Cluster, namespace: str) -> None:
    out = cluster.apply(_valid(namespace))
    assert "consumer.konsumerator.lwolf.org/v created" in out


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_extreme_but_valid_spec_is_accepted(cluster: Cluster, namespace: str, case: str) -> None:
    manifest = copy.deepcopy(_valid(namespace))
    ACCEPTED[case](manifest)
    out = cluster.apply(manifest)
    assert "created" in out, out


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_spec_is_rejected_with_a_message_naming_the_field(
    cluster: Cluster, namespace: str, case: str
) -> None:
    mutate, expected = CASES[case]
    manifest = copy.deepcopy(_valid(namespace))
    mutate(manifest)

    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)

    assert result.returncode != 0, result.stdout
    message = result.stderr
    assert "is invalid" in message, message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    listed = cluster.kubectl("get", "consumers", "-n", namespace, "-o", "name").stdout
    assert listed.strip() == ""
