"""Specs that cannot be honoured end in ``Ready=False`` naming the field, not a crash loop.

Guest mode, where specs never pass the CRD's schema: each ConfigMap below used to make
every reconcile raise (and retry with a traceback) with no status and no Event. The real
operator, against a real apiserver, now reports each with ``Ready=False, InvalidSpec``
naming the field, creates nothing from it, and keeps managing a good ConfigMap next to
them.

Aspects tested: an integer map key inside the template, ``minAllowed.cpu: "1e18"``,
``maxAllowed.memory: "1e19"`` with ``fallbackStrategy: max``, a negative ``tolerableLag``,
``partitionEnvKey: "A=B"``, ``restartPolicy: Never``, a selector that does not select the
pods, a policy naming a container that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from operating import consumer, eventually, guest_configmap, in_process_operator, managed

from konsumerator.api import keys
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

STATUS = keys.STATUS_PREFIX


def _spec(name: str, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = consumer(name, namespace, num_partitions=2, per_instance=1)["spec"]
    spec["autoscaler"]["prometheus"] = {
        **consumer(name, namespace, prometheus_url="http://127.0.0.1:1")["spec"]["autoscaler"][
            "prometheus"
        ]
    }
    spec["autoscaler"]["mode"] = "prometheus"
    return spec


def _policy(spec: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = spec["resourcePolicy"]["containerPolicies"][0]
    return policy


Mutation = Callable[[dict[str, Any]], None]


def _huge_memory_with_fallback_max(spec: dict[str, Any]) -> None:
    _policy(spec).update(maxAllowed={"memory": "1e19"})
    spec["autoscaler"]["prometheus"]["fallbackStrategy"] = "max"


CASES: dict[str, tuple[Mutation, str]] = {
    "huge-cpu": (
        lambda s: _policy(s).update(minAllowed={"cpu": "1e18"}, maxAllowed={"cpu": "1e19"}),
        "data.consumer.yaml.resourcePolicy.containerPolicies[0].minAllowed.cpu",
    ),
    "huge-memory": (
        _huge_memory_with_fallback_max,
        "data.consumer.yaml.resourcePolicy.containerPolicies[0].maxAllowed.memory",
    ),
    "negative-lag": (
        lambda s: s["autoscaler"]["prometheus"].update(tolerableLag="-1m"),
        "data.consumer.yaml.autoscaler.prometheus.tolerableLag",
    ),
    "env-key": (lambda s: s.update(partitionEnvKey="A=B"), "data.consumer.yaml.partitionEnvKey"),
    "never": (
        lambda s: s["deploymentTemplate"]["template"]["spec"].update(restartPolicy="Never"),
        "template.spec.restartPolicy",
    ),
    "selector": (
        lambda s: s["deploymentTemplate"]["selector"].update(matchLabels={"app": "other"}),
        "selector.matchLabels.app",
    ),
    "ghost": (
        lambda s: _policy(s).update(containerName="ghost"),
        "resourcePolicy.containerPolicies[0].containerName 'ghost'",
    ),
}


def _integer_key_configmap(namespace: str) -> dict[str, Any]:
    spec = _spec("intkey", namespace)
    text = yaml.safe_dump(spec, sort_keys=True)
    anchor = "    metadata:\n      labels:\n"
    assert anchor in text
    configmap = guest_configmap("intkey", namespace, spec)
    configmap["data"][keys.GUEST_SPEC_KEY] = text.replace(anchor, anchor + "        1: x\n", 1)
    return configmap


def _ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cm = cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    raw = cm["metadata"].get("annotations", {}).get(f"{STATUS}conditions")
    if raw is None:
        return {}
    ready: dict[str, Any] = {c["type"]: c for c in json.loads(raw)}.get("Ready", {})
    return ready


def test_unusable_guest_specs_get_ready_false_naming_the_field(
    cluster: Cluster, namespace: str
) -> None:
    expected: dict[str, str] = {"intkey": "template.metadata.labels has the key 1"}
    cluster.apply(_integer_key_configmap(namespace))
    for name, (mutate, field) in CASES.items():
        spec = _spec(name, namespace)
        mutate(spec)
        cluster.apply(guest_configmap(name, namespace, spec))
        expected[name] = field
    cluster.apply(guest_configmap("good", namespace, _spec("good", namespace)))

    with in_process_operator(cluster, namespace=namespace):
        for name, field in expected.items():
            ready = eventually(
                lambda name=name: _ready(cluster, namespace, name),
                lambda ready: bool(ready),
                timeout=60,
                what=f"the Ready condition of {name}",
            )
            assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), (name, ready)
            assert field in ready["message"], (name, ready["message"])
        found = eventually(
            lambda: managed(cluster, namespace),
            lambda found: len(found) == 2,
            timeout=60,
            what="the good ConfigMap's Deployments",
        )
    assert sorted(found) == ["good-consumer-0", "good-consumer-1"]
