"""Hostile review: the apiserver refuses a rendered Deployment for SOME instances only.

The spec passes the operator's validation; the apiserver (its admission, a quota) is
the final judge of each rendered Deployment, and it may judge instances differently:
by name, by size, by count.

Aspects tested (an in-process operator, a real apiserver):

* a template change that admission refuses for one instance only (a
  ValidatingAdmissionPolicy whose CEL refuses a changed pod template on instance 2):
  no instance is rolled out, every existing Deployment keeps the old template, and the
  Consumer says ``Ready=False, reason=WriteFailed`` naming that instance and the
  policy's message, with a Warning Event. Before: every other instance was rolled out
  and instance 2 kept the old one (half-applied). Once the policy is gone, the new
  template reaches them all;
* a template change the apiserver refuses for every instance (a container port out of
  range, a changed selector: valid for a creation, immutable for an update): no
  instance is rolled out, the condition quotes the apiserver's field message, and each
  retry costs one dry run and no Deployment write (before: one refused apply per
  instance per retry, every instance's write refused alike);
* a ResourceQuota that allows 3 of 5 Deployments: the 3 are created and the Consumer
  names the 2 refused instances with the quota's message; the refusal does not stop
  the instances that exist from being reconciled (a hand edit of one is repaired while
  the quota still refuses the others);
* nor from being resized: the Consumer's metrics keep being refreshed every
  ``minSyncPeriod`` (2 s here) while the quota refuses, since a failed pass is due again
  when its plan says at the latest. Before: the refused writes' backoff (5 ms doubling
  to 1,000 s) set the pace, and the refreshes came 20 s, 40 s, 80 s... apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    alone,
    condition,
    consumer,
    converged,
    deployments,
    env,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    metric_sum,
)

from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

VAP = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
NAME = "half"
INSTANCES = 4
REFUSED = f"{NAME}-consumer-2"
MESSAGE = "instance 2 keeps its pod template"


def _policy(name: str, *, namespace: str, expression: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
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
                                "operations": ["UPDATE"],
                                "resources": ["deployments"],
                            }
                        ]
                    },
                    "validations": [
                        {"expression": expression, "message": MESSAGE, "reason": "Forbidden"}
                    ],
                },
            },
        ),
        (
            BINDINGS,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name},
                "spec": {
                    "policyName": name,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        }
                    },
                },
            },
        ),
    ]


@pytest.fixture
def instance_two_frozen(cluster: Cluster, namespace: str) -> Iterator[str]:
    """Admission refuses any change of instance 2's pod template (its other writes pass)."""
    name = f"freeze-{namespace}"[:63]
    expression = (
        f"object.metadata.name != '{REFUSED}'"
        " || object.spec.template.spec.containers[0].image"
        " == oldObject.spec.template.spec.containers[0].image"
    )
    created = _policy(name, namespace=namespace, expression=expression)
    for path, body in created:
        cluster.api("POST", path, body)
    try:
        yield name
    finally:
        for path, _ in reversed(created):
            cluster.request("DELETE", f"{path}/{name}")


STRATEGIC = "application/strategic-merge-patch+json"


def _image(image: str) -> dict[str, Any]:
    """A strategic merge patch setting the consumer container's image."""
    return {"spec": {"template": {"spec": {"containers": [{"name": "consumer", "image": image}]}}}}


def _images(cluster: Cluster, namespace: str) -> dict[str, str]:
    return {
        name: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for name, d in deployments(cluster, namespace).items()
    }


def _probe_refused(cluster: Cluster, namespace: str) -> int:
    """A dry-run image change of instance 2: 403 once the policy is in force."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{REFUSED}?dryRun=All"
    return cluster.request("PATCH", path, _image("x"), content_type=STRATEGIC).status


def test_a_template_change_refused_for_one_instance_rolls_out_to_none(
    cluster: Cluster, namespace: str, instance_two_frozen: str
) -> None:
    old = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1, image="old:1")
    new = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1, image="new:2")
    with in_process_operator(cluster) as op:
        cluster.apply(old)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, INSTANCES),
            timeout=90,
            what="the Consumer to converge on the old template",
        )
        eventually(
            lambda: _probe_refused(cluster, namespace),
            lambda status: status == 403,
            timeout=60,
            what="the admission policy to refuse instance 2's change",
        )
        cluster.apply(new)
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=90,
            what="the Consumer to say WriteFailed",
        )
        ready = condition(obj, "Ready")["message"]
        assert REFUSED in ready, ready
        assert MESSAGE in ready, ready
        eventually(
            lambda: [
                e
                for e in events(cluster, namespace, involved=NAME)
                if e["reason"] == "WriteFailed" and REFUSED in e["message"]
            ],
            bool,
            timeout=60,
            what="a WriteFailed Event naming instance 2",
        )
        # Every existing instance keeps the old template: nothing half-applied.
        assert set(_images(cluster, namespace).values()) == {"old:1"}, _images(cluster, namespace)
        cluster.request("DELETE", f"{BINDINGS}/{instance_two_frozen}")
        cluster.request("DELETE", f"{VAP}/{instance_two_frozen}")
        op.enqueue(namespace, NAME)
        eventually(
            lambda: _images(cluster, namespace),
            lambda images: set(images.values()) == {"new:2"} and len(images) == INSTANCES,
            timeout=120,
            what="the new template to reach every instance once the policy is gone",
        )


QUOTA_ALLOWS = 3


@pytest.fixture
def deployment_quota(cluster: Cluster, namespace: str) -> str:
    """The namespace goes with the test, and its quota with it."""
    cluster.api(
        "POST",
        f"/api/v1/namespaces/{namespace}/resourcequotas",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "deployments"},
            "spec": {"hard": {"count/deployments.apps": str(QUOTA_ALLOWS)}},
        },
    )
    return "deployments"


def test_a_quota_refusing_some_instances_names_them_and_the_others_are_reconciled(
    cluster: Cluster, namespace: str, deployment_quota: str
) -> None:
    manifest = consumer(NAME, namespace, num_partitions=5, per_instance=1)
    with in_process_operator(cluster):
        cluster.apply(manifest)
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: (
                condition(o, "Ready").get("reason") == "WriteFailed"
                and len(deployments(cluster, namespace)) == QUOTA_ALLOWS
            ),
            timeout=90,
            what="the quota to refuse the instances past it",
        )
        ready = condition(obj, "Ready")["message"]
        created = set(deployments(cluster, namespace))
        refused = {f"{NAME}-consumer-{i}" for i in range(5)} - created
        assert len(refused) == 5 - QUOTA_ALLOWS
        assert all(name in ready for name in refused), ready
        assert "exceeded quota" in ready, ready
        # An instance that exists is still reconciled: a hand edit is put back.
        edited = sorted(created)[0]
        patched = cluster.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{edited}",
            _image("x:9"),
            content_type=STRATEGIC,
        )
        assert patched.ok, patched.text
        eventually(
            lambda: deployments(cluster, namespace)[edited],
            lambda d: (
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                == "registry.invalid/consumer:1"
                and env(d)["KAFKA_BROKERS"] == "kafka:9092"
            ),
            timeout=90,
            what="the hand-edited instance to be repaired while the quota refuses others",
        )


REFRESHES = 20


def _queries(op: Any) -> float:
    return metric_sum(op.metrics(), "konsumerator_prometheus_queries_total")


def test_a_quota_refusing_some_instances_does_not_slow_the_metrics_of_the_others(
    cluster: Cluster, namespace: str, deployment_quota: str
) -> None:
    manifest = consumer(NAME, namespace, num_partitions=5, per_instance=1)
    manifest["spec"]["autoscaler"] = consumer(
        NAME, namespace, prometheus_url=cluster.prometheus_url
    )["spec"]["autoscaler"]
    # The operator's query counter covers every Consumer: earlier tests' must be gone.
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=90,
            what="the quota to refuse the instances past it",
        )
        before = _queries(op)
        # Three queries a refresh; at one refresh per 2 s this takes some 40 s, while
        # the backoff's pace (20 s, 40 s, 80 s... apart) gives a handful in 3 minutes.
        eventually(
            lambda: _queries(op) - before,
            lambda n: n >= 3 * REFRESHES,
            timeout=180,
            what=f"{REFRESHES} metric refreshes while the quota refuses two instances",
        )


def _bad_port(template: dict[str, Any]) -> str:
    template["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 70000}]
    return "containerPort"


def _new_selector(template: dict[str, Any]) -> str:
    template["selector"] = {"matchLabels": {"app": "moved"}}
    template["template"]["metadata"]["labels"] = {"app": "moved"}
    return "field is immutable"


REFUSED_FOR_ALL = {"a port out of range": _bad_port, "a changed selector": _new_selector}


def _deployment_writes(op: Any) -> float:
    text = op.metrics()
    return sum(
        metric_sum(text, "konsumerator_api_requests_total", resource="deployments", verb=verb)
        for verb in ("apply", "create", "update", "patch")
    )


@pytest.mark.parametrize("change", REFUSED_FOR_ALL.values(), ids=REFUSED_FOR_ALL.keys())
def test_a_template_change_refused_for_every_instance_costs_one_dry_run_a_retry(
    cluster: Cluster, namespace: str, change: Any
) -> None:
    old = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1)
    new = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1, image="new:2")
    said = change(new["spec"]["deploymentTemplate"])
    # The operator's request counters cover every namespace: earlier tests' must be gone.
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(old)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, INSTANCES),
            timeout=90,
            what="the Consumer to converge on the old template",
        )
        writes = _deployment_writes(op)
        cluster.apply(new)
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=90,
            what="the Consumer to say WriteFailed",
        )
        dry_runs = eventually(
            lambda: metric_sum(
                op.metrics(), "konsumerator_api_requests_total", resource="deployments",
                verb="dryrun",
            ),
            lambda n: n >= 3,
            timeout=90,
            what="the refused template to be dry-run again on retries",
        )  # fmt: skip
        assert _deployment_writes(op) == writes
        assert set(_images(cluster, namespace).values()) == {"registry.invalid/consumer:1"}
    assert said in condition(obj, "Ready")["message"]
    assert dry_runs >= 3
