"""Hand edits of what the operator owns in a Deployment are reverted; the rest is kept.

A Consumer in manual mode (no autoscaler: the operator owns each instance's resources, from
the resourcePolicy) converges on two instances; then a Deployment is edited the way
``kubectl edit``/``kubectl patch`` do (a strategic merge patch under another field manager).

Aspects tested:

* an edit of a field we own, each a separate case: the partition env var (partitions would
  be consumed twice), the image, the resources. The operator restores it in the pass the
  edit wakes, the Consumer's status counts the instance OUTDATED in that pass (seen on a
  watch of the Consumer: ``outdated`` goes 0 → 1 → 0), and a ``Repaired`` Event names the
  field (resources, with ``updateMode: Recreate``, where the template holds the size: a
  ``Scaled`` Event, "set to its resourcePolicy");
* what a user adds beside our fields (an env var of their own, a pod-template annotation as
  ``kubectl rollout restart`` writes) is kept, and costs the operator no write at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from operating import (
    WRITE_VERBS,
    KubectlWatch,
    alone,
    consumer,
    container,
    converged,
    env,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

NAME = "drift"
TARGET = f"{NAME}-consumer-0"


def _edit(cluster: Cluster, namespace: str, name: str, patch: dict[str, Any]) -> None:
    """What ``kubectl edit`` sends: a strategic merge patch under its own field manager."""
    response = cluster.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}?fieldManager=kubectl-edit",
        patch,
        content_type="application/strategic-merge-patch+json",
    )
    assert response.ok, response.text


def _consumer_container(**fields: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": "consumer", **fields}]}}}}


Read = Callable[[dict[str, Any]], object]
CASES: dict[str, tuple[dict[str, Any], Read]] = {
    "partition-env": (
        _consumer_container(env=[{"name": "KONSUMERATOR_PARTITION", "value": "0,1,2,3"}]),
        lambda d: env(d)["KONSUMERATOR_PARTITION"],
    ),
    "image": (
        _consumer_container(image="registry.invalid/someone-elses:6"),
        lambda d: container(d)["image"],
    ),
    "resources": (
        _consumer_container(
            resources={
                "requests": {"cpu": "3", "memory": "3Gi"},
                "limits": {"cpu": "3", "memory": "3Gi"},
            }
        ),
        lambda d: container(d).get("resources"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hand_edit_of_an_owned_field_is_reverted_and_counted_outdated(
    cluster: Cluster, namespace: str, case: str
) -> None:
    patch, read = CASES[case]
    manifest = consumer(NAME, namespace, num_partitions=4, per_instance=2)
    if case == "resources":
        # The template's resources are the instance's size with Recreate only; in place
        # they are its last rollout's, and the pods are resized back to the target
        # instead (tests/cluster/test_inplace_resize.py).
        manifest["spec"]["autoscaler"]["updateMode"] = "Recreate"
    with in_process_operator(cluster):
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge",
        )
        original = read(managed(cluster, namespace)[TARGET])

        columns = '{.status.outdated}{"\\n"}'
        with KubectlWatch(
            cluster, "consumer", NAME, "-n", namespace, "-o", f"jsonpath={columns}"
        ) as watch:
            _edit(cluster, namespace, TARGET, patch)
            restored = eventually(
                lambda: managed(cluster, namespace)[TARGET],
                lambda d: read(d) == original,
                timeout=30,
                what=f"the operator to revert the {case} edit",
            )
            watch.wait_for(
                lambda lines: "1" in lines and lines[-1] == "0",
                timeout=30,
                what="the status to count the instance outdated, then not",
            )
            history = watch.stop()
        # A hand edit is Repaired; resources in manual mode are the policy's: Scaled back.
        reason = "Scaled" if case == "resources" else "Repaired"
        repaired = eventually(
            lambda: events(cluster, namespace, involved=NAME),
            lambda evs: any(e["reason"] == reason for e in evs),
            timeout=30,
            what=f"a {reason} Event",
        )

    assert history[0] == "0"
    assert history.index("1") < len(history) - 1
    # The edit and the repair are two spec changes.
    assert restored["metadata"]["generation"] == 3
    (event,) = [e for e in repaired if e["reason"] == reason]
    assert "instance 0" in event["message"]
    assert {
        "partition-env": "env[KONSUMERATOR_PARTITION]",
        "image": ".image",
        "resources": "resourcePolicy",
    }[case] in event["message"]


def test_what_a_user_adds_beside_our_fields_is_kept_and_costs_no_write(
    cluster: Cluster, namespace: str
) -> None:
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(consumer(NAME, namespace, num_partitions=4, per_instance=2))
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge",
        )

        def reconciles() -> float:
            return metric_sum(op.metrics(), "controller_runtime_reconcile_total")

        def idle() -> bool:
            return metric_sum(op.metrics(), "workqueue_depth") == 0

        wait_until(idle, timeout=30, what="the operator's queue to drain")
        before, start = op.counts(), reconciles()
        _edit(
            cluster,
            namespace,
            TARGET,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                        "spec": {
                            "containers": [
                                {"name": "consumer", "env": [{"name": "DEBUG", "value": "1"}]}
                            ]
                        },
                    }
                }
            },
        )
        wait_until(lambda: reconciles() > start, timeout=30, what="the edit to wake a reconcile")
        wait_until(idle, timeout=30, what="the operator's queue to drain")
        made = op.call(lambda: op.operator.client.counts.since(before))
        found = managed(cluster, namespace)[TARGET]

    assert {verb: n for verb, n in made.items() if verb in WRITE_VERBS} == {}, made
    assert env(found)["DEBUG"] == "1"
    assert env(found)["KONSUMERATOR_PARTITION"] == "0,1"
    template_annotations = found["spec"]["template"]["metadata"]["annotations"]
    assert template_annotations["kubectl.kubernetes.io/restartedAt"] == "now"


# Everything a real template has that the API server defaults, normalises or reorders.
RICH_TEMPLATE: dict[str, Any] = {
    "replicas": 1,
    "revisionHistoryLimit": 3,
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    "selector": {"matchLabels": {"app": f"{NAME}-consumer"}},
    "template": {
        "metadata": {
            "labels": {"app": f"{NAME}-consumer", "tier": "consumers"},
            "annotations": {"prometheus.io/scrape": "true"},
            "creationTimestamp": None,
        },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "hostNetwork": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kafka"}],
            "volumes": [
                {"name": "scratch", "emptyDir": {"sizeLimit": "0.5Gi"}},
                {"name": "config", "configMap": {"name": "consumer-config", "optional": True}},
            ],
            "initContainers": [
                {"name": "wait", "image": "registry.invalid/wait:1", "args": ["--for", "kafka"]}
            ],
            "containers": [
                {
                    "name": "consumer",
                    "image": "registry.invalid/consumer:1",
                    "imagePullPolicy": "",
                    "command": ["/bin/consumer"],
                    "args": ["--topic", "orders"],
                    "ports": [{"name": "metrics", "containerPort": 9102}],
                    "env": [
                        {"name": "KAFKA_BROKERS", "value": "kafka:9092"},
                        {"name": "EMPTY", "value": ""},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                    "envFrom": [{"configMapRef": {"name": "consumer-env", "optional": True}}],
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/tmp"},
                        {"name": "config", "mountPath": "/etc/consumer", "readOnly": True},
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": "metrics"},
                        "periodSeconds": 5,
                    },
                    "livenessProbe": {"tcpSocket": {"port": 9102}},
                },
                {
                    "name": "sidecar",
                    "image": "registry.invalid/sidecar:1",
                    "resources": {"requests": {"cpu": "0.05"}},
                },
            ],
        },
    },
}


def test_a_rich_template_converges_and_then_costs_no_write(
    cluster: Cluster, namespace: str
) -> None:
    """Defaults, canonical quantities ("0.5Gi" is "512Mi", "1000m" is "1"), dropped empty
    values and list items of other managers must not look like drift: that would be a write
    on every pass."""
    alone(cluster, namespace)
    manifest = consumer(NAME, namespace, num_partitions=4, per_instance=2, max_cpu="1000m")
    manifest["spec"]["deploymentTemplate"] = RICH_TEMPLATE
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge",
        )

        def reconciles() -> float:
            return metric_sum(op.metrics(), "controller_runtime_reconcile_total")

        def idle() -> bool:
            return metric_sum(op.metrics(), "workqueue_depth") == 0

        wait_until(idle, timeout=30, what="the operator's queue to drain")
        before, start = op.counts(), reconciles()
        for _ in range(3):
            op.enqueue(namespace, NAME)
        wait_until(lambda: reconciles() > start, timeout=30, what="a reconcile")
        wait_until(idle, timeout=30, what="the operator's queue to drain")
        made = op.call(lambda: op.operator.client.counts.since(before))
        found = managed(cluster, namespace)[TARGET]

    assert {verb: n for verb, n in made.items() if verb in WRITE_VERBS} == {}, made
    volumes = {v["name"]: v for v in found["spec"]["template"]["spec"]["volumes"]}
    assert volumes["scratch"]["emptyDir"]["sizeLimit"] == "512Mi"  # canonicalised indeed
