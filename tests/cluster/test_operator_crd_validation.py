"""The Consumer CRD (``konsumerator crd``) on a real apiserver: bad specs never get stored.

Aspects tested:

* the CRD installs and a well-formed Consumer is accepted (the control case);
* each invalid spec below makes ``kubectl apply`` fail, with a message that names the field
  and says what is wrong, and stores nothing: numPartitions 0, ratePerCore 0, recoveryTime
  0s, cpuIncrement 0, minAllowed greater than maxAllowed (cpu and memory), mode prometheus
  without a prometheus section or with an empty address list, an unknown fallbackStrategy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from operating import consumer, install_crd

from konsumerator.testenv import Cluster

pytestmark = pytest.mark.cluster

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def _crd(cluster: Cluster) -> None:
    install_crd(cluster)


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
}


def test_a_valid_consumer_is_accepted(cluster: Cluster, namespace: str) -> None:
    out = cluster.apply(_valid(namespace))
    assert "consumer.konsumerator.lwolf.org/v created" in out


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
