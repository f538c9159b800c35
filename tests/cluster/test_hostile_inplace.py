"""In-place resizing attacked on the real apiserver: it resizes only pods that are its own.

A pod is resized only when its owner chain is the operator's: its controlling
ReplicaSet (by UID) is controlled by one of the Consumer's Deployments (by UID).
The pod's labels and its ReplicaSet's *name* prove nothing: anyone can create a
ReplicaSet named ``<instance>-<hash>`` whose pods carry the managed-by label.

Aspects tested:

* a user's ReplicaSet named like one of the instance's ReplicaSets
  (``<deployment>-<hash>``), its pods labelled ``managed-by`` and shaped like the
  instance's, with no owner or with a foreign owner: its pods keep their size while the
  instance's pod is resized in place, and the foreign pods cause no refusal or rollout;
* a resize is conditional on the pod's UID on the real apiserver too: the ``pods/resize``
  subresource keeps ``metadata.uid`` from the patch, so a patch meant for a pod that was
  replaced under the same name is refused (422 on ``metadata.uid``, which the operator's
  Writer reads as a conflict: the pod is gone) and the successor keeps its size.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)
from test_inplace_resize import parsed, pods, replicasets, spec_of, status_of, target
from test_kwok_resize import ORIGINAL, _deployment, _get, _reported, _running_pod

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

NAME = "hi"
DEPLOYMENT = f"{NAME}-consumer-0"
FOREIGN_HASH = "f00d"


def set_floor(cluster: Cluster, namespace: str, *, cpu: str) -> None:
    cluster.api(
        "PATCH",
        consumer_path(namespace, NAME),
        {
            "spec": {
                "resourcePolicy": {
                    "containerPolicies": [
                        {
                            "containerName": "consumer",
                            "minAllowed": {"cpu": cpu, "memory": "128Mi"},
                            "maxAllowed": {"cpu": "24", "memory": "1Gi"},
                        }
                    ]
                }
            }
        },
    )


def foreign_replicaset(
    template: dict[str, Any], *, name: str, namespace: str, owner: dict[str, Any] | None
) -> dict[str, Any]:
    """A user's ReplicaSet named like an instance's, its pods shaped and labelled like ours
    (but not matching the instance's selector, so the Deployment controller leaves it be)."""
    labels = {
        keys.LABEL_MANAGED_BY: keys.MANAGED_BY_VALUE,
        keys.POD_TEMPLATE_HASH: FOREIGN_HASH,
        "hostile-test/foreign": "yes",
    }
    pod_template = copy.deepcopy(template)
    pod_template["metadata"] = {"labels": labels}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod_template},
    }


def foreign_pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [
        p for p in pods(cluster, namespace) if "hostile-test/foreign" in p["metadata"]["labels"]
    ]


def own_pod(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    found = [
        p for p in pods(cluster, namespace) if "hostile-test/foreign" not in p["metadata"]["labels"]
    ]
    return found[0] if len(found) == 1 else None


@pytest.mark.parametrize("owned_by", ["nobody", "a foreign ConfigMap"])
def test_a_foreign_replicaset_named_like_an_instance_is_never_resized(
    cluster: Cluster, namespace: str, owned_by: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda obj: converged(obj, 1),
            timeout=90,
            what="the Consumer to converge",
        )
        # Converged is the operator's word; kube-controller-manager creates the
        # instance's ReplicaSet and pod after it (seconds later when it is busy), and
        # the ReplicaSets are recorded below: wait for that pod first.
        eventually(
            lambda: own_pod(cluster, namespace),
            lambda pod: pod is not None and pod["status"].get("phase") == "Running",
            timeout=90,
            what="the instance's own pod to run",
        )
        ours = managed(cluster, namespace)[DEPLOYMENT]
        owner = None
        if owned_by != "nobody":
            cm = cluster.api(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "foreign-owner"}},
            )
            owner = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "foreign-owner",
                "uid": cm["metadata"]["uid"],
                "controller": True,
            }
        cluster.apply(
            foreign_replicaset(
                ours["spec"]["template"],
                name=f"{DEPLOYMENT}-{FOREIGN_HASH}",
                namespace=namespace,
                owner=owner,
            )
        )
        (theirs,) = eventually(
            lambda: foreign_pods(cluster, namespace),
            lambda found: (
                len(found) == 1
                and found[0]["status"].get("phase") == "Running"
                and status_of(found[0]) is not None
            ),
            timeout=90,
            what="the foreign ReplicaSet's pod to run",
        )
        before = spec_of(theirs)
        rs_uids = {r["metadata"]["uid"] for r in replicasets(cluster, namespace)}

        set_floor(cluster, namespace, cpu="900m")

        def resized() -> bool:
            pod = own_pod(cluster, namespace)
            goal = target(managed(cluster, namespace)[DEPLOYMENT])
            return (
                pod is not None
                and goal is not None
                and goal.cpu_req_m == 900
                and spec_of(pod).cpu_req_m == 900
                and status_of(pod) == spec_of(pod)
            )

        wait_until(resized, timeout=90, what="the instance's own pod resized in place")
        # The pass that resized our pod saw the foreign pod too (it ran before the
        # decision): had it been taken as ours, it was patched in that same pass.
        (after,) = foreign_pods(cluster, namespace)
        assert after["metadata"]["uid"] == theirs["metadata"]["uid"]
        assert spec_of(after) == before
        assert parsed(after["spec"]["containers"][0].get("resources")) == parsed(
            theirs["spec"]["containers"][0].get("resources")
        )
        # No rollout either: the ReplicaSets are the same ones.
        assert {r["metadata"]["uid"] for r in replicasets(cluster, namespace)} == rs_uids


def test_a_resize_meant_for_a_replaced_pod_is_refused_by_its_uid(
    cluster: Cluster, namespace: str
) -> None:
    body = _deployment("plain")
    body["metadata"]["namespace"] = namespace
    cluster.apply(body)
    pod = eventually(
        lambda: _get(cluster, _running_pod(cluster, namespace, "plain")),
        lambda p: _reported(p) is not None,
        timeout=60,
        what="the pod to report its resources (a kubelet that can resize)",
    )
    meta = pod["metadata"]
    response = cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{meta['name']}/resize",
        {
            "metadata": {"uid": "00000000-0000-0000-0000-000000000000"},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "resources": {"requests": {"cpu": "300m"}, "limits": {"cpu": "300m"}},
                    }
                ]
            },
        },
        content_type="application/strategic-merge-patch+json",
    )
    assert response.status == 422, response.body
    causes = response.json()["details"]["causes"]
    assert any(c.get("field") == "metadata.uid" for c in causes), causes
    after = _get(cluster, pod)
    assert after["metadata"]["uid"] == meta["uid"]
    assert after["spec"]["containers"][0]["resources"] == ORIGINAL


def test_a_target_annotation_nested_too_deeply_does_not_hide_the_deployment(
    cluster: Cluster, namespace: str
) -> None:
    """A hand edit of the target annotation to a JSON nesting bomb (10 KB, far below the
    annotation size limit), found by a starting operator (its first list), is read as no
    target: the Deployment stays the instance's (no NameConflict, no new Deployment), and
    the operator writes its target back."""
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda obj: converged(obj, 1),
            timeout=90,
            what="the Consumer to converge",
        )
    before = managed(cluster, namespace)[DEPLOYMENT]
    bomb = '{"a":' * 2000 + "1" + "}" * 2000
    cluster.api(
        "PATCH",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{DEPLOYMENT}",
        {"metadata": {"annotations": {keys.TARGET_RESOURCES: bomb}}},
    )
    set_floor(cluster, namespace, cpu="700m")
    with in_process_operator(cluster):

        def resized() -> bool:
            pod = own_pod(cluster, namespace)
            text = managed(cluster, namespace)[DEPLOYMENT]["metadata"]["annotations"]
            if len(text.get(keys.TARGET_RESOURCES, "")) > 1000:
                return False  # still the bomb
            goal = target(managed(cluster, namespace)[DEPLOYMENT])
            return (
                pod is not None
                and goal is not None
                and goal.cpu_req_m == 700
                and spec_of(pod).cpu_req_m == 700
            )

        wait_until(resized, timeout=90, what="the target written back and the pod resized")
        after = managed(cluster, namespace)[DEPLOYMENT]
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, 1),
            timeout=60,
            what="the Consumer to converge again",
        )
        assert condition(obj, "Ready")["status"] == "True", obj.get("status")
