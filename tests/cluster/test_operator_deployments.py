"""The Consumer controller against the real control plane: the Deployments it keeps.

Aspects tested:

* layout: numPartitions 10 / numPartitionsPerInstance 3 gives the four Deployments of Go's
  SplitIntoBuckets (lwolf/konsumerator ``pkg/helpers/util.go``: partitions 0,1,2 / 3,4,5 /
  6,7 / 8,9), each with the injected env
  (partition list, instance, instance count, partition count, GOMEMLIMIT; no GOMAXPROCS
  with the default updateMode, InPlaceOrRecreate), the
  fallback resources of the policy, our labels and annotations, and a controller
  ownerReference to the Consumer;
* ``kubectl get consumers`` prints exactly the seed's columns with the status numbers
  (``-o wide`` adds the in-place columns);
* a template change marks instances OUTDATED, then rolls all of them (status ends with
  outdated 0 and every Deployment carries the new template);
* shrinking numPartitions deletes the Deployments no longer needed (and re-lays the rest);
* deleting the Consumer garbage-collects its Deployments (kcm's garbage collector);
* a user's Deployment whose name collides with an instance's is never touched, and the
  Consumer reports ``Ready=False, reason=NameConflict`` and a Warning Event (a creation is
  an apply that can only create; see ``test_operator_adoption`` for the race);
* the per-Deployment ``disable-autoscaler`` annotation counts the instance PAUSED; the
  Consumer-level annotation gives every container its policy's ``minAllowed``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import (
    KubectlWatch,
    condition,
    consumer,
    consumer_path,
    container,
    converged,
    env,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)

from konsumerator.domain import keys
from konsumerator.domain.quantities import cpu_millis, memory_bytes
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

MiB = 2**20


def _converged(cluster: Cluster, namespace: str, name: str, expected: int) -> dict[str, Any]:
    return eventually(
        lambda: get_consumer(cluster, namespace, name),
        lambda obj: converged(obj, expected),
        timeout=60,
        what=f"Consumer {name} to converge on {expected} instances",
    )


def test_ten_partitions_three_per_instance_yield_four_deployments_with_env_and_resources(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer(
        "orders",
        namespace,
        num_partitions=10,
        per_instance=3,
        prometheus_url=cluster.prometheus_url,
    )
    with in_process_operator(cluster):
        cluster.apply(manifest)
        obj = _converged(cluster, namespace, "orders", 4)

    uid = obj["metadata"]["uid"]
    found = managed(cluster, namespace)
    assert sorted(found) == [f"orders-consumer-{i}" for i in range(4)]
    layout = {0: "0,1,2", 1: "3,4,5", 2: "6,7", 3: "8,9"}
    for index, partitions in layout.items():
        d = found[f"orders-consumer-{index}"]
        meta = d["metadata"]
        assert meta["annotations"][keys.PARTITION] == partitions
        assert meta["annotations"][keys.CONSUMER_ID] == str(index)
        assert meta["labels"][keys.LABEL_CONTROLLER] == "orders"
        assert meta["labels"][keys.LABEL_APP] == "orders-consumer"
        [owner] = meta["ownerReferences"]
        assert owner["kind"] == "Consumer"
        assert owner["name"] == "orders"
        assert owner["uid"] == uid
        assert owner["controller"] is True
        values = env(d)
        assert values["KAFKA_BROKERS"] == "kafka:9092"  # the template's own env is kept
        assert values[keys.ENV_PARTITION] == partitions
        assert values[keys.ENV_INSTANCE] == str(index)
        assert values[keys.ENV_NUM_INSTANCES] == "4"
        assert values[keys.ENV_NUM_PARTITIONS] == "10"
        # No metrics yet: fallback "min" gives requests = limits = minAllowed (100m, 128Mi).
        resources = container(d)["resources"]
        for side in ("requests", "limits"):
            assert cpu_millis(resources[side]["cpu"]) == 100
            assert memory_bytes(resources[side]["memory"]) == 128 * MiB
        # In place (the default updateMode) GOMAXPROCS is not set: Go follows the CPU limit.
        assert keys.ENV_GOMAXPROCS not in values
        assert values[keys.ENV_GOMEMLIMIT] == f"{128 * 8 // 10}MiB"

    table = cluster.kubectl("get", "consumers", "-n", namespace).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "EXPECTED",
        "RUNNING",
        "PAUSED",
        "MISSING",
        "LAGGING",
        "OUTDATED",
        "AUTOSCALER",
        "AGE",
    ]
    assert table[1].split()[:8] == ["orders", "4", "4", "0", "0", "0", "0", "prometheus"]
    assert len(table) == 2
    wide = cluster.kubectl("get", "consumers", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[7:10] == ["RESIZED", "RESIZING", "FELLBACK"]


def test_template_change_marks_instances_outdated_then_rolls_them_all(
    cluster: Cluster, namespace: str
) -> None:
    new_container = {
        "name": "consumer",
        "image": "registry.invalid/consumer:2",
        "env": [{"name": "KAFKA_BROKERS", "value": "kafka:9092"}],
    }
    patch = {
        "spec": {"deploymentTemplate": {"template": {"spec": {"containers": [new_container]}}}}
    }
    with in_process_operator(cluster):
        cluster.apply(consumer("rollme", namespace, num_partitions=6, per_instance=2))
        _converged(cluster, namespace, "rollme", 3)
        before = {
            n: d["metadata"]["annotations"][keys.GENERATION]
            for n, d in managed(cluster, namespace).items()
        }
        assert len(before) == 3

        # Every version of the status, as written: OUTDATED lasts one pass.
        columns = '{.metadata.generation} {.status.observedGeneration} {.status.outdated}{"\\n"}'
        with KubectlWatch(
            cluster, "consumer", "rollme", "-n", namespace, "-o", f"jsonpath={columns}"
        ) as watch:
            cluster.api("PATCH", consumer_path(namespace, "rollme"), patch)
            _converged(cluster, namespace, "rollme", 3)
            watch.wait_for(
                lambda lines: "2 2 0" in lines, timeout=30, what="the watch to see outdated 0"
            )
            history = watch.stop()

    # "generation observedGeneration outdated", per written version of the Consumer
    assert "2 2 3" in history, history  # the first pass on the new template: all outdated
    assert history.index("2 2 3") < history.index("2 2 0"), history  # then rolled
    found = managed(cluster, namespace)
    assert sorted(found) == sorted(before)
    for name, d in found.items():
        assert container(d)["image"] == "registry.invalid/consumer:2", name
        assert d["metadata"]["annotations"][keys.GENERATION] != before[name]
    reasons = [e["reason"] for e in events(cluster, namespace, involved="rollme")]
    assert "RolledOut" in reasons


def test_shrinking_num_partitions_deletes_the_extra_deployments(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("shrink", namespace, num_partitions=8, per_instance=2))
        _converged(cluster, namespace, "shrink", 4)
        assert len(managed(cluster, namespace)) == 4

        cluster.api("PATCH", consumer_path(namespace, "shrink"), {"spec": {"numPartitions": 3}})
        _converged(cluster, namespace, "shrink", 2)
        found = eventually(
            lambda: managed(cluster, namespace),
            lambda found: len(found) == 2,
            timeout=60,
            what="the extra Deployments to be deleted",
        )

    assert sorted(found) == ["shrink-consumer-0", "shrink-consumer-1"]
    assert found["shrink-consumer-0"]["metadata"]["annotations"][keys.PARTITION] == "0,1"
    assert found["shrink-consumer-1"]["metadata"]["annotations"][keys.PARTITION] == "2"
    assert env(found["shrink-consumer-1"])[keys.ENV_NUM_PARTITIONS] == "3"
    assert env(found["shrink-consumer-1"])[keys.ENV_NUM_INSTANCES] == "2"


def test_deleting_the_consumer_garbage_collects_its_deployments(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("doomed", namespace, num_partitions=4, per_instance=2))
        _converged(cluster, namespace, "doomed", 2)
        cluster.api("DELETE", consumer_path(namespace, "doomed"))
        wait_until(
            lambda: not managed(cluster, namespace),
            timeout=60,
            what="the Deployments of a deleted Consumer to be garbage-collected",
        )


# A couple of creations, and a wave of ten.
@pytest.mark.parametrize("num_partitions", [4, 20], ids=["few", "wave"])
def test_foreign_deployment_with_an_instance_name_is_never_touched(
    cluster: Cluster, namespace: str, num_partitions: int
) -> None:
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "clash-consumer-1",
            "namespace": namespace,
            "annotations": {"owner": "a human"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "mine"}},
            "template": {
                "metadata": {"labels": {"app": "mine"}},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/mine:1"}]},
            },
        },
    }
    created = cluster.api("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", foreign)
    with in_process_operator(cluster):
        cluster.apply(consumer("clash", namespace, num_partitions=num_partitions, per_instance=2))
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "clash"),
            lambda o: condition(o, "Ready").get("reason") == "NameConflict",
            timeout=60,
            what="Ready=False NameConflict",
        )
        eventually(
            lambda: events(cluster, namespace, involved="clash"),
            lambda evs: any(e["reason"] == "NameConflict" for e in evs),
            timeout=30,
            what="a NameConflict Event",
        )

    assert condition(obj, "Ready")["status"] == "False"
    assert "clash-consumer-1" in condition(obj, "Ready")["message"]
    assert "clash-consumer-0" in managed(cluster, namespace)
    after = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/clash-consumer-1")
    assert after["metadata"]["generation"] == created["metadata"]["generation"]
    assert after["spec"]["template"] == created["spec"]["template"]
    assert after["metadata"].get("ownerReferences") is None
    assert keys.LABEL_MANAGED_BY not in (after["metadata"].get("labels") or {})
    managers = {m["manager"] for m in after["metadata"].get("managedFields") or []}
    assert keys.FIELD_MANAGER not in managers


def test_disable_autoscaler_annotation_pauses_a_deployment_and_minimises_a_consumer(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer(
        "pause", namespace, num_partitions=4, per_instance=2, prometheus_url=cluster.prometheus_url
    )
    # fallbackStrategy max: instances start at maxAllowed, so "minAllowed" is visible.
    manifest["spec"]["autoscaler"]["prometheus"]["fallbackStrategy"] = "max"
    manifest["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"] = {
        "cpu": "2",
        "memory": "512Mi",
    }
    with in_process_operator(cluster):
        cluster.apply(manifest)
        _converged(cluster, namespace, "pause", 2)
        d0 = managed(cluster, namespace)["pause-consumer-0"]
        assert cpu_millis(container(d0)["resources"]["requests"]["cpu"]) == 2000  # created so

        cluster.api(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/pause-consumer-0",
            {"metadata": {"annotations": {keys.DISABLE_AUTOSCALER: "true"}}},
        )
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "pause"),
            lambda o: (o.get("status") or {}).get("paused") == 1,
            timeout=60,
            what="the annotated Deployment to count as PAUSED",
        )
        assert obj["status"]["running"] == 1
        table = cluster.kubectl("get", "consumers", "-n", namespace, "pause").stdout.splitlines()
        assert table[1].split()[1:4] == ["2", "1", "1"]

        # The Consumer-level annotation: every container gets its policy's minAllowed.
        cluster.api(
            "PATCH",
            consumer_path(namespace, "pause"),
            {"metadata": {"annotations": {keys.DISABLE_AUTOSCALER: ""}}},
        )

        def size(d: dict[str, Any]) -> dict[str, Any]:
            """The instance's size: in place (the default updateMode) the target annotation,
            which the pods are resized to (the template keeps its rollout's size)."""
            text = d["metadata"].get("annotations", {}).get(keys.TARGET_RESOURCES)
            found: dict[str, Any] = (
                json.loads(text)["consumer"] if text else container(d)["resources"]
            )
            return found

        def minimal(found: dict[str, dict[str, Any]]) -> bool:
            d = found.get("pause-consumer-1")
            if d is None:
                return False
            requests = size(d).get("requests", {})
            return cpu_millis(requests.get("cpu", 0)) == 100

        found = eventually(
            lambda: managed(cluster, namespace),
            minimal,
            timeout=60,
            what="the paused Consumer's containers to get minAllowed",
        )
    resources = size(found["pause-consumer-1"])
    assert memory_bytes(resources["requests"]["memory"]) == 128 * MiB
    assert cpu_millis(resources["limits"]["cpu"]) == 100
    assert memory_bytes(resources["limits"]["memory"]) == 128 * MiB
