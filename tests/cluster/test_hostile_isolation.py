"""Hostile review: one namespace's objects never steer a Consumer of another.

ownerReferences cannot cross namespaces (the garbage collector treats such an owner as
absent), but nothing stops anyone who can create a Deployment in their own namespace from
writing one whose controller ownerReference names a Consumer's UID in another namespace,
with our labels and annotations: a copy of one of its instances. The operator finds a
Consumer's Deployments by controller UID; one from another namespace is not its instance.

Aspects tested (an in-process operator, real apiserver and garbage collector):

* such a copy in another namespace, held by a finalizer while it is being deleted, does
  not stop the Consumer from creating its own instance of that name (and is never
  written to);
* two Consumers of the same name in two namespaces: each keeps its own Deployments, and
  deleting one (its Deployments go with it) leaves the other's untouched and Ready;
* a Consumer whose template the apiserver refuses (an invalid container port) says so
  (``Ready=False, reason=WriteFailed``, naming the field), and a Consumer created after it
  converges.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    consumer_path,
    converged,
    deployments,
    eventually,
    get_consumer,
    in_process_operator,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

HOLD = "hostile.test/hold"


def _path(namespace: str, name: str = "") -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"{base}/{name}" if name else base


@pytest.fixture
def elsewhere(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A second namespace, deleted with whatever a test left held in it."""
    other = cluster.create_namespace(
        f"{namespace[:50]}-b", labels={"konsumerator.testenv/test": "true"}
    )
    try:
        yield other
    finally:
        for name, d in deployments(cluster, other).items():
            if HOLD in (d["metadata"].get("finalizers") or []):
                response = cluster.request(
                    "PATCH", _path(other, name), {"metadata": {"finalizers": None}}
                )
                assert response.ok or response.status == 404, response.text
        cluster.delete_namespace(other)


def _copy_into(instance: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The instance as somebody in ``namespace`` would copy it: same name, labels,
    annotations and ownerReferences (the Consumer's UID), held by a finalizer."""
    meta = instance["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta["name"],
            "namespace": namespace,
            "labels": copy.deepcopy(meta.get("labels")),
            "annotations": copy.deepcopy(meta.get("annotations")),
            "ownerReferences": copy.deepcopy(meta.get("ownerReferences")),
            "finalizers": [HOLD],
        },
        "spec": {**copy.deepcopy(instance["spec"]), "replicas": 0},
    }


def _ours(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The operator's managed-fields entries on ``d``: what it has ever written there."""
    fields = d["metadata"].get("managedFields") or []
    return [m for m in fields if m.get("manager") == keys.FIELD_MANAGER]


def test_a_copy_in_another_namespace_naming_our_uid_is_not_taken_for_an_instance(
    cluster: Cluster, namespace: str, elsewhere: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("orders", namespace, num_partitions=4, per_instance=2))
        eventually(
            lambda: get_consumer(cluster, namespace, "orders"),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge",
        )
        ours = deployments(cluster, namespace)["orders-consumer-0"]
        cluster.api("POST", _path(elsewhere), _copy_into(ours, elsewhere))
        # Deleted, but held: it stays, being deleted, naming our Consumer as controller.
        cluster.api("DELETE", _path(elsewhere, "orders-consumer-0"))
        # Now our instance goes: the operator must create it again, in our namespace.
        cluster.api("DELETE", _path(namespace, "orders-consumer-0"))
        eventually(
            lambda: deployments(cluster, namespace).get("orders-consumer-0"),
            lambda d: d is not None and d["metadata"]["uid"] != ours["metadata"]["uid"],
            timeout=60,
            what="the instance to be created again in the Consumer's namespace",
        )
        eventually(
            lambda: get_consumer(cluster, namespace, "orders"),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge again",
        )
        copied = deployments(cluster, elsewhere)["orders-consumer-0"]
    assert copied["metadata"].get("deletionTimestamp")
    assert _ours(copied) == []


def test_consumers_of_one_name_in_two_namespaces_keep_to_their_own(
    cluster: Cluster, namespace: str, elsewhere: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("orders", namespace, num_partitions=4, per_instance=2))
        cluster.apply(consumer("orders", elsewhere, num_partitions=6, per_instance=2))
        for ns, expected in ((namespace, 2), (elsewhere, 3)):
            eventually(
                lambda ns=ns: get_consumer(cluster, ns, "orders"),
                lambda o, expected=expected: converged(o, expected),
                timeout=60,
                what=f"orders in {ns} to converge on {expected}",
            )
        kept = {n: d["metadata"]["uid"] for n, d in deployments(cluster, elsewhere).items()}
        assert len(kept) == 3
        cluster.api("PATCH", consumer_path(namespace, "orders"), {"spec": {"numPartitions": 2}})
        eventually(
            lambda: deployments(cluster, namespace),
            lambda ds: set(ds) == {"orders-consumer-0"},
            timeout=60,
            what="the shrunk Consumer to keep one Deployment",
        )
        cluster.api("DELETE", consumer_path(namespace, "orders"))
        eventually(
            lambda: deployments(cluster, namespace),
            lambda ds: not ds,
            timeout=60,
            what="the deleted Consumer's Deployments to go",
        )
        other = get_consumer(cluster, elsewhere, "orders")
        assert converged(other, 3)
        after = {n: d["metadata"]["uid"] for n, d in deployments(cluster, elsewhere).items()}
    assert after == kept


def test_a_template_the_apiserver_refuses_fails_that_consumer_only(
    cluster: Cluster, namespace: str, elsewhere: str
) -> None:
    bad = consumer("refused", namespace, num_partitions=2, per_instance=1)
    container = bad["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 70000}]
    with in_process_operator(cluster):
        cluster.apply(bad)
        refused = eventually(
            lambda: get_consumer(cluster, namespace, "refused"),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=60,
            what="the refused Consumer to say WriteFailed",
        )
        cluster.apply(consumer("fine", elsewhere, num_partitions=2, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, elsewhere, "fine"),
            lambda o: converged(o, 2),
            timeout=60,
            what="a Consumer created after it to converge",
        )
        cluster.apply(consumer("fine", namespace, num_partitions=2, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "fine"),
            lambda o: converged(o, 2),
            timeout=60,
            what="a Consumer beside it to converge",
        )
    assert condition(refused, "Ready")["status"] == "False"
    assert "containerPort" in condition(refused, "Ready")["message"]
    assert not any(n.startswith("refused-") for n in deployments(cluster, namespace))
