"""In-place resizing on the real apiserver (``updateMode: InPlaceOrRecreate``, the default).

The fake node's KWOK stages answer ``pods/resize`` as a kubelet does (they report
``status.containerStatuses[].resources`` and actuate a resize after a short delay, or
mark one beyond their capacity ``Infeasible``). The Consumers run in manual mode, where
the resource policy's floor is the size, so editing it is a resize decision.

Aspects tested:

* a scale-up and a scale-down happen in place: the same pod (UID), restartCount 0, no new
  ReplicaSet, the Deployment's template unchanged, the pod's spec and status resources
  equal to the target (memory never lowered in place), the target on the
  Deployment's annotation, ``status.inPlace.resized`` counting it;
* a pod deleted by hand comes back from the (old) template and is resized to the target
  without a Deployment write, still on one ReplicaSet;
* a resize the node says is ``Infeasible`` falls back to a rollout with the target size
  (a new ReplicaSet whose template has it) and a Warning Event;
* a resize beyond the node's allocatable, which the apiserver's admission refuses (403),
  is reported (``InPlaceResizeRefused``) and rolled out instead;
* guest mode, with exactly the shipped namespaced Role (deploy/rbac/guest/role.yaml),
  resizes in place too;
* once converged, a reconcile makes no write and no pod resize; the resize was counted
  (``konsumerator_consumer_inplace_resizes_total{outcome="patched"}``) and its actuation
  timed (``konsumerator_consumer_inplace_actuation_seconds``);
* an operator stopped in the middle of a resize and started again converges without a
  rollout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from operating import (
    WRITE_VERBS,
    alone,
    condition,
    consumer,
    consumer_path,
    container,
    converged,
    events,
    eventually,
    get_consumer,
    guest_configmap,
    guest_kubeconfig,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.domain.resources import Resources, from_strings
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

NAME = "rs"
DEPLOYMENT = f"{NAME}-consumer-0"


def parsed(resources: dict[str, Any] | None) -> Resources:
    resources = resources or {}
    return from_strings(
        requests=resources.get("requests") or {}, limits=resources.get("limits") or {}
    )


def pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    selector = f"{keys.LABEL_MANAGED_BY}%3D{keys.MANAGED_BY_VALUE}"
    items: list[dict[str, Any]] = cluster.api(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
    )["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def replicasets(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api(
        "GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets"
    )["items"]
    return items


def target(deployment: dict[str, Any]) -> Resources | None:
    text = deployment["metadata"].get("annotations", {}).get(keys.TARGET_RESOURCES)
    if not text:
        return None
    return parsed(json.loads(text).get("consumer"))


def spec_of(pod: dict[str, Any]) -> Resources:
    (c,) = pod["spec"]["containers"]
    return parsed(c.get("resources"))


def status_of(pod: dict[str, Any]) -> Resources | None:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if not statuses or "resources" not in statuses[0]:
        return None
    return parsed(statuses[0]["resources"])


def restarts(pod: dict[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses") or [])


def wanted(pod: dict[str, Any], goal: Resources) -> Resources:
    """``goal`` as the operator resizes a pod to it: memory is never lowered in place."""
    have = spec_of(pod)
    return Resources(
        cpu_req_m=goal.cpu_req_m,
        mem_req_b=max(goal.mem_req_b or 0, have.mem_req_b or 0) or None,
        cpu_lim_m=goal.cpu_lim_m,
        mem_lim_b=max(goal.mem_lim_b or 0, have.mem_lim_b or 0) or None,
    )


def at_target(cluster: Cluster, namespace: str, *, cpu_m: int) -> bool:
    """One running pod whose spec and actuated status are the Deployment's target, at ``cpu_m``."""
    d = managed(cluster, namespace).get(DEPLOYMENT)
    goal = target(d) if d else None
    found = pods(cluster, namespace)
    if goal is None or goal.cpu_req_m != cpu_m or len(found) != 1:
        return False
    pod = found[0]
    return spec_of(pod) == wanted(pod, goal) and status_of(pod) == spec_of(pod)


def running_pod(cluster: Cluster, namespace: str) -> dict[str, Any]:
    (pod,) = eventually(
        lambda: pods(cluster, namespace),
        lambda found: (
            len(found) == 1
            and found[0]["status"].get("phase") == "Running"
            and status_of(found[0]) is not None
        ),
        timeout=90,
        what="one running pod reporting its resources",
    )
    return pod


def set_floor(
    cluster: Cluster, namespace: str, *, cpu: str, memory: str = "128Mi", max_cpu: str = "24"
) -> None:
    """The resource policy's floor, which is the size in manual mode."""
    cluster.api(
        "PATCH",
        consumer_path(namespace, NAME),
        {
            "spec": {
                "resourcePolicy": {
                    "containerPolicies": [
                        {
                            "containerName": "consumer",
                            "minAllowed": {"cpu": cpu, "memory": memory},
                            "maxAllowed": {"cpu": max_cpu, "memory": "1Gi"},
                        }
                    ]
                }
            }
        },
    )


def converge(cluster: Cluster, namespace: str) -> dict[str, Any]:
    eventually(
        lambda: get_consumer(cluster, namespace, NAME),
        lambda obj: converged(obj, 1),
        timeout=90,
        what="the Consumer to converge",
    )
    return running_pod(cluster, namespace)


def test_scale_up_and_down_happen_in_place(cluster: Cluster, namespace: str) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        first = converge(cluster, namespace)
        template = managed(cluster, namespace)[DEPLOYMENT]["spec"]["template"]
        assert template["metadata"]["labels"][keys.LABEL_MANAGED_BY] == keys.MANAGED_BY_VALUE
        assert "GOMAXPROCS" not in {
            e["name"] for e in container(managed(cluster, namespace)[DEPLOYMENT])["env"]
        }
        (rs,) = replicasets(cluster, namespace)

        for cpu, cpu_m, memory in (("1500m", 1500, "256Mi"), ("300m", 300, "128Mi")):
            set_floor(cluster, namespace, cpu=cpu, memory=memory)
            wait_until(
                lambda cpu_m=cpu_m: at_target(cluster, namespace, cpu_m=cpu_m),
                timeout=90,
                what=f"the pod resized in place to {cpu}",
            )
            (pod,) = pods(cluster, namespace)
            assert pod["metadata"]["uid"] == first["metadata"]["uid"], [
                (e["reason"], e["message"]) for e in events(cluster, namespace, involved=NAME)
            ]
            assert restarts(pod) == 0
            assert [r["metadata"]["uid"] for r in replicasets(cluster, namespace)] == [
                rs["metadata"]["uid"]
            ]
            assert managed(cluster, namespace)[DEPLOYMENT]["spec"]["template"] == template

        # Memory went 128Mi -> 256Mi -> 128Mi: it stays at 256Mi in place (request and
        # limit: the pod stays Guaranteed, and is not squeezed below what it may use).
        assert spec_of(pod).mem_lim_b == spec_of(pod).mem_req_b == 256 * 2**20
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: (o.get("status") or {}).get("inPlace", {}).get("resized") == 1,
            timeout=60,
            what="status.inPlace.resized to count the instance",
        )
        assert obj["status"]["inPlace"]["pending"] == 0
        reasons = {e["reason"] for e in events(cluster, namespace, involved=NAME)}
        assert "ResizedInPlace" in reasons


def test_a_pod_deleted_by_hand_comes_back_resized(cluster: Cluster, namespace: str) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        converge(cluster, namespace)
        set_floor(cluster, namespace, cpu="900m")
        wait_until(lambda: at_target(cluster, namespace, cpu_m=900), timeout=90, what="resize")
        (old,) = pods(cluster, namespace)
        before = managed(cluster, namespace)[DEPLOYMENT]
        cluster.api("DELETE", f"/api/v1/namespaces/{namespace}/pods/{old['metadata']['name']}")
        wait_until(
            lambda: (
                at_target(cluster, namespace, cpu_m=900)
                and pods(cluster, namespace)[0]["metadata"]["uid"] != old["metadata"]["uid"]
            ),
            timeout=90,
            what="the new pod resized to the target",
        )
        after = managed(cluster, namespace)[DEPLOYMENT]
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
        assert after["spec"]["template"] == before["spec"]["template"]
        assert len(replicasets(cluster, namespace)) == 1


def test_an_infeasible_resize_falls_back_to_a_rollout(cluster: Cluster, namespace: str) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        converge(cluster, namespace)
        # 20 cores: within the node's allocatable (admission lets it through) but beyond
        # what the fake kubelet resizes in place (it answers Infeasible).
        set_floor(cluster, namespace, cpu="20")
        d = eventually(
            lambda: managed(cluster, namespace)[DEPLOYMENT],
            lambda d: parsed(container(d).get("resources")).cpu_req_m == 20000,
            timeout=90,
            what="the template to get the target (a rollout)",
        )
        goal = target(d)
        assert goal is not None
        assert goal.cpu_req_m == 20000
        fell_back = eventually(
            lambda: events(cluster, namespace, involved=NAME),
            lambda found: any(e["reason"] == "InPlaceResizeFellBack" for e in found),
            timeout=60,
            what="a Warning Event saying in-place fell back",
        )
        (event,) = [e for e in fell_back if e["reason"] == "InPlaceResizeFellBack"]
        assert event["type"] == "Warning"
        assert "Infeasible" in event["message"] or "forbidden" in event["message"].lower()
        eventually(
            lambda: replicasets(cluster, namespace),
            lambda found: len(found) == 2,
            timeout=60,
            what="the rollout's new ReplicaSet",
        )
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: (o.get("status") or {}).get("inPlace", {}).get("fellBack") == 1,
            timeout=60,
            what="status.inPlace.fellBack",
        )
        assert condition(obj, "Ready")


def test_a_resize_beyond_the_nodes_allocatable_is_refused_and_rolled_out(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        converge(cluster, namespace)
        # 40 cores: more than the node has, so the apiserver's admission refuses the
        # resize itself (403, NodeCapacity) and the instance is rolled out instead.
        set_floor(cluster, namespace, cpu="40", max_cpu="48")
        found = eventually(
            lambda: events(cluster, namespace, involved=NAME),
            lambda evs: (
                {"InPlaceResizeRefused", "InPlaceResizeFellBack"} <= {e["reason"] for e in evs}
            ),
            timeout=90,
            what="the refusal and the fallback Events",
        )
        (refused,) = [e for e in found if e["reason"] == "InPlaceResizeRefused"]
        assert refused["type"] == "Warning"
        d = eventually(
            lambda: managed(cluster, namespace)[DEPLOYMENT],
            lambda d: parsed(container(d).get("resources")).cpu_req_m == 40000,
            timeout=60,
            what="the template to get the target",
        )
        assert target(d) == parsed(container(d).get("resources"))


def test_guest_mode_with_its_namespaced_role_resizes_in_place(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "guest.kubeconfig"
    guest_kubeconfig(cluster, namespace, kubeconfig)
    spec = consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m")["spec"]
    with in_process_operator(cluster, kubeconfig=kubeconfig, namespace=namespace):
        cluster.apply(guest_configmap(NAME, namespace, spec))
        first = running_pod(cluster, namespace)
        (rs,) = replicasets(cluster, namespace)
        spec["resourcePolicy"]["containerPolicies"][0]["minAllowed"]["cpu"] = "700m"
        cluster.apply(guest_configmap(NAME, namespace, spec))
        wait_until(lambda: at_target(cluster, namespace, cpu_m=700), timeout=90, what="resize")
        (pod,) = pods(cluster, namespace)
        assert pod["metadata"]["uid"] == first["metadata"]["uid"]
        assert restarts(pod) == 0
        assert [r["metadata"]["uid"] for r in replicasets(cluster, namespace)] == [
            rs["metadata"]["uid"]
        ]


def test_a_converged_resize_makes_no_write(cluster: Cluster, namespace: str) -> None:
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:

        def reconciles() -> float:
            return metric_sum(op.metrics(), "controller_runtime_reconcile_total")

        def idle() -> bool:
            return metric_sum(op.metrics(), "workqueue_depth") == 0

        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        converge(cluster, namespace)
        set_floor(cluster, namespace, cpu="800m")
        wait_until(lambda: at_target(cluster, namespace, cpu_m=800), timeout=90, what="resize")
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: (o.get("status") or {}).get("inPlace", {}).get("resized") == 1,
            timeout=60,
            what="the status to show the resize",
        )
        wait_until(idle, timeout=30, what="the operator's queue to drain")
        text = op.metrics()
        consumer_label = f"{namespace}/{NAME}"
        resizes = "konsumerator_consumer_inplace_resizes_total"
        assert metric_sum(text, resizes, consumer=consumer_label, outcome="patched") >= 1
        assert metric_sum(text, resizes, consumer=consumer_label, outcome="fell_back") == 0
        actuation = "konsumerator_consumer_inplace_actuation_seconds_count"
        assert metric_sum(text, actuation, consumer=consumer_label) >= 1
        before = op.counts()
        start = reconciles()
        op.enqueue(namespace, NAME)
        wait_until(lambda: reconciles() >= start + 1, timeout=30, what="a reconcile")
        wait_until(idle, timeout=30, what="the operator's queue to drain")
        made = op.call(lambda: op.operator.client.counts.since(before))
    assert {verb: n for verb, n in made.items() if verb in WRITE_VERBS} == {}, made
    assert "get" not in made, made


def test_an_operator_restarted_mid_resize_converges_without_a_rollout(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer(NAME, namespace, num_partitions=2, per_instance=2, min_cpu="200m"))
        first = converge(cluster, namespace)
        (rs,) = replicasets(cluster, namespace)
        template = managed(cluster, namespace)[DEPLOYMENT]["spec"]["template"]
        set_floor(cluster, namespace, cpu="1200m")
        # Stopped as soon as the pod's spec shows the patch (the node may not have
        # actuated it yet).
        eventually(
            lambda: pods(cluster, namespace),
            lambda found: len(found) == 1 and spec_of(found[0]).cpu_req_m == 1200,
            timeout=90,
            what="the resize to be sent",
        )
    set_floor(cluster, namespace, cpu="1300m")  # and one more change while nobody runs
    with in_process_operator(cluster):
        wait_until(lambda: at_target(cluster, namespace, cpu_m=1300), timeout=90, what="resize")
        (pod,) = pods(cluster, namespace)
    assert pod["metadata"]["uid"] == first["metadata"]["uid"]
    assert restarts(pod) == 0
    assert [r["metadata"]["uid"] for r in replicasets(cluster, namespace)] == [
        rs["metadata"]["uid"]
    ]
    assert managed(cluster, namespace)[DEPLOYMENT]["spec"]["template"] == template
