"""Hostile review: the apiserver refuses one namespace, or loses the CRD for a while.

Aspects tested (an in-process operator, real apiserver):

* admission refuses every Deployment write in one namespace (a ValidatingAdmissionPolicy,
  as a cluster policy or a quota webhook would: 403 on create): that namespace's Consumer
  says so (``Ready=False, reason=WriteFailed``, with the apiserver's message), and a
  Consumer in another namespace converges meanwhile;
* the CRD deleted (its Consumers go with it; the garbage collector takes their
  Deployments in its own time) and installed again while the operator runs: the operator
  keeps running (its Consumer watch backs off on 404, up to a minute), and a Consumer
  created afterwards converges;
* a wave whose every write that policy refuses (200 instances) is no Event storm: each
  failure is a ``WriteFailed`` Event, aggregated like client-go's recorder (past nine
  distinct messages they fold into one combined Event), and sent as one batch a pass, so
  each Event's update goes once (sent one by one, it was one Event request per failure
  per pass, every retry); the combined Event still counts every refused write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    converged,
    deployments,
    deployments_refused,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    install_crd,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.kube.eventing import COMBINED_PREFIX
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

VAP = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"


@pytest.fixture
def elsewhere(cluster: Cluster, namespace: str) -> Iterator[str]:
    other = cluster.create_namespace(
        f"{namespace[:50]}-b", labels={"konsumerator.testenv/test": "true"}
    )
    yield other
    cluster.delete_namespace(other)


@pytest.fixture
def refused_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    """``namespace``, where admission refuses every Deployment create and update."""
    name = f"deny-{namespace}"[:63]
    cluster.api(
        "POST",
        VAP,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "false",
                        "message": "frozen by the hostile test",
                        "reason": "Forbidden",
                    }
                ],
            },
        },
    )
    cluster.api(
        "POST",
        BINDINGS,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    try:
        deployments_refused(cluster, namespace, what="the admission policy")
        yield namespace
    finally:
        cluster.request("DELETE", f"{BINDINGS}/{name}")
        cluster.request("DELETE", f"{VAP}/{name}")


def test_a_namespace_whose_writes_are_refused_fails_its_consumer_only(
    cluster: Cluster, refused_namespace: str, elsewhere: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("frozen", refused_namespace, num_partitions=2, per_instance=1))
        frozen = eventually(
            lambda: get_consumer(cluster, refused_namespace, "frozen"),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=90,
            what="the refused namespace's Consumer to say WriteFailed",
        )
        cluster.apply(consumer("thawed", elsewhere, num_partitions=2, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, elsewhere, "thawed"),
            lambda o: converged(o, 2),
            timeout=60,
            what="a Consumer elsewhere to converge",
        )
    assert "frozen by the hostile test" in condition(frozen, "Ready")["message"]
    assert deployments(cluster, refused_namespace) == {}


def test_the_crd_deleted_and_installed_again_while_running(
    cluster: Cluster, namespace: str
) -> None:
    crd = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{keys.PLURAL}.{keys.GROUP}"
    with in_process_operator(cluster) as operator:
        cluster.apply(consumer("before", namespace, num_partitions=2, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "before"),
            lambda o: converged(o, 2),
            timeout=60,
            what="a Consumer to converge",
        )
        cluster.api("DELETE", crd)
        eventually(
            lambda: cluster.request("GET", crd).status,
            lambda status: status == 404,
            timeout=120,
            what="the CRD to be gone",
        )
        install_crd(cluster)
        cluster.apply(consumer("after", namespace, num_partitions=3, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "after"),
            lambda o: converged(o, 3),
            timeout=240,
            what="a Consumer created after the CRD came back to converge",
        )
        assert operator.alive
    assert {f"after-consumer-{i}" for i in range(3)} <= set(deployments(cluster, namespace))


INSTANCES = 200
# Nine Events of their own, the combined one, and its one update; and a Normal or two.
PER_PASS = 12


def _combined(found: list[dict[str, Any]]) -> int:
    return sum(
        e.get("count", 1)
        for e in found
        if e["reason"] == "WriteFailed" and e["message"].startswith(COMBINED_PREFIX)
    )


def test_a_wave_refused_by_admission_makes_a_few_event_requests_a_pass(
    cluster: Cluster, refused_namespace: str
) -> None:
    manifest = consumer("frozen", refused_namespace, num_partitions=INSTANCES, per_instance=1)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, refused_namespace, "frozen"),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=90,
            what="the Consumer to say WriteFailed",
        )
        combined = eventually(
            lambda: _combined(events(cluster, refused_namespace, involved="frozen")),
            lambda n: n >= INSTANCES - 9,
            timeout=60,
            what="the combined WriteFailed Event to count the refused writes",
        )
        text = op.metrics()
    requests = metric_sum(text, "konsumerator_api_requests_total", resource="events")
    passes = metric_sum(text, "controller_runtime_reconcile_total")
    # The pass running when the metrics were read has not been counted yet.
    assert requests <= PER_PASS * (passes + 1), (requests, passes, combined)
