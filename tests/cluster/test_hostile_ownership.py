"""Hostile review: ownership changes the watch does not route to the Consumer that cares.

A Deployment event is routed to the Consumer named by the Deployment's controller
ownerReference *now* (``app.build``'s ``owners``). Three hostile sequences change who holds
an instance's name without any event for the Consumer that needs to act; in manual mode
there is no periodic requeue either, so the Consumer must still converge by itself.

Aspects tested (manual mode, so only watch events can wake the Consumer):

* a Consumer deleted and re-created under the same name while its old Deployments are
  still held by a finalizer: the new one never takes the old one's Deployments (they keep
  their old owner, no write from us), and once they are gone it creates its own, owned by
  its new UID, and reports Ready;
* a user's Deployment holding an instance's name (NameConflict): once the user deletes it,
  the Consumer creates its instance and reports Ready;
* an instance whose ownerReference is edited by hand to another Consumer: no instance of
  the first Consumer is lost for good (it ends up with all its instances, controlled by it),
  also with no pods (replicas 0: no sibling's status change wakes the first owner);
* an instance whose ownerReference is edited to a UID no object has: the garbage collector
  deletes it, and the Consumer creates it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
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
    users_deployment,
)

from konsumerator_dev.testenv import Cluster
from konsumerator_dev.testenv.errors import NotReady

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

HOLD = "hostile.test/hold"


@contextlib.contextmanager
def _held(cluster: Cluster, namespace: str, names: Iterable[str]) -> Iterator[None]:
    """Deployments held by a finalizer of somebody's, released when the block ends however it
    ends: a finalizer left behind by a failing test would keep its namespace terminating
    forever, and every later test that waits for earlier namespaces to go would fail too."""
    for name in names:
        cluster.api(
            "PATCH", _deployment_path(namespace, name), {"metadata": {"finalizers": [HOLD]}}
        )
    try:
        yield
    finally:
        _release(cluster, namespace, names)


def _release(cluster: Cluster, namespace: str, names: Iterable[str]) -> None:
    for name in names:
        # Gone already is fine; anything else is a real failure.
        response = cluster.request(
            "PATCH", _deployment_path(namespace, name), {"metadata": {"finalizers": None}}
        )
        assert response.ok or response.status == 404, response.text


def _ours(d: dict[str, Any]) -> dict[str, Any]:
    """What the operator writes on a Deployment: its spec, labels, annotations, owners, and
    its own managed fields. (kube-controller-manager keeps updating the status of a
    Deployment being deleted, which moves its resourceVersion.)"""
    meta = d["metadata"]
    return {
        "spec": d.get("spec"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "ownerReferences": meta.get("ownerReferences"),
        "managed": [
            m for m in meta.get("managedFields") or [] if m.get("manager") == "konsumerator"
        ],
    }


def _deployment_path(namespace: str, name: str = "") -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"{base}/{name}" if name else base


def _converged(cluster: Cluster, namespace: str, name: str, expected: int) -> dict[str, Any]:
    return eventually(
        lambda: get_consumer(cluster, namespace, name),
        lambda obj: converged(obj, expected),
        timeout=60,
        what=f"Consumer {name} to converge on {expected} instances",
    )


def _controller_uid(d: dict[str, Any]) -> str | None:
    for ref in d["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            uid: str = ref["uid"]
            return uid
    return None


def _state(cluster: Cluster, namespace: str, name: str) -> str:
    """What a failed wait shows: the Consumer's status and who controls each Deployment."""
    status = get_consumer(cluster, namespace, name).get("status") or {}
    held = {
        n: (_controller_uid(d), bool(d["metadata"].get("deletionTimestamp")))
        for n, d in deployments(cluster, namespace).items()
    }
    return f"status={status} deployments(controller uid, deleting)={held}"


def _settles(
    cluster: Cluster, namespace: str, name: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """``eventually`` on the Consumer, failing with what the cluster shows instead."""
    try:
        return eventually(
            lambda: get_consumer(cluster, namespace, name), check, timeout=30, what=what
        )
    except NotReady:
        raise AssertionError(
            f"{what}: not within 30 s; {_state(cluster, namespace, name)}"
        ) from None


def _owned_by(cluster: Cluster, namespace: str, uid: str) -> dict[str, dict[str, Any]]:
    return {n: d for n, d in deployments(cluster, namespace).items() if _controller_uid(d) == uid}


def test_a_recreated_consumer_never_takes_the_old_ones_deployments_and_converges_once_they_go(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer("phoenix", namespace, num_partitions=2, per_instance=1)
    names = {"phoenix-consumer-0", "phoenix-consumer-1"}
    with in_process_operator(cluster):
        cluster.apply(manifest)
        old = _converged(cluster, namespace, "phoenix", 2)
        old_uid = old["metadata"]["uid"]
        # The old Deployments linger after their owner is gone (a finalizer of somebody's).
        with _held(cluster, namespace, names):
            cluster.api("DELETE", consumer_path(namespace, "phoenix"))
            held = eventually(
                lambda: deployments(cluster, namespace),
                lambda d: (
                    set(d) == names
                    and all(x["metadata"].get("deletionTimestamp") for x in d.values())
                ),
                timeout=60,
                what="the garbage collector to delete the old Deployments (held by the finalizer)",
            )

            cluster.apply(manifest)
            new_uid = get_consumer(cluster, namespace, "phoenix")["metadata"]["uid"]
            assert new_uid != old_uid
            _settles(
                cluster,
                namespace,
                "phoenix",
                lambda o: (
                    (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
                ),
                "the new Consumer to be reconciled once",
            )
            # The old Deployments are not the new Consumer's: untouched.
            for name, before in held.items():
                after = deployments(cluster, namespace)[name]
                assert _controller_uid(after) == old_uid, name
                assert _ours(after) == _ours(before), name

        # Their finalizer went: they are gone, and the new Consumer runs its own instances.
        obj = _settles(
            cluster,
            namespace,
            "phoenix",
            lambda o: converged(o, 2) and set(_owned_by(cluster, namespace, new_uid)) == names,
            "the re-created Consumer to create its own Deployments once the old ones are gone",
        )
    assert condition(obj, "Ready")["reason"] == "Reconciled"


def test_a_name_freed_by_its_user_is_taken_by_the_instance(
    cluster: Cluster, namespace: str
) -> None:
    cluster.api(
        "POST",
        _deployment_path(namespace),
        users_deployment(namespace, "freed-consumer-0", app="freed-consumer"),
    )
    with in_process_operator(cluster):
        # One instance: no Deployment of its own whose status changes could wake it by chance.
        cluster.apply(consumer("freed", namespace, num_partitions=1, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "freed"),
            lambda o: condition(o, "Ready").get("reason") == "NameConflict",
            timeout=60,
            what="the Consumer to report the name conflict",
        )
        cluster.api("DELETE", _deployment_path(namespace, "freed-consumer-0"))
        uid = get_consumer(cluster, namespace, "freed")["metadata"]["uid"]
        _settles(
            cluster,
            namespace,
            "freed",
            lambda o: converged(o, 1) and len(_owned_by(cluster, namespace, uid)) == 1,
            "the Consumer to create its instance once the user's Deployment is gone",
        )


def test_an_instance_handed_to_another_consumer_by_hand_is_not_lost_for_good(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("alpha", namespace, num_partitions=2, per_instance=1))
        cluster.apply(consumer("beta", namespace, num_partitions=2, per_instance=1))
        alpha = _converged(cluster, namespace, "alpha", 2)
        beta = _converged(cluster, namespace, "beta", 2)
        victim = deployments(cluster, namespace)["alpha-consumer-0"]
        refs = victim["metadata"]["ownerReferences"]
        refs[0]["name"], refs[0]["uid"] = "beta", beta["metadata"]["uid"]
        cluster.api(
            "PATCH",
            _deployment_path(namespace, "alpha-consumer-0"),
            {"metadata": {"ownerReferences": refs}},
        )
        alpha_uid = alpha["metadata"]["uid"]
        # Whatever beta does with it, alpha ends up running both of its instances again.
        _settles(
            cluster,
            namespace,
            "alpha",
            lambda o: (
                set(_owned_by(cluster, namespace, alpha_uid))
                == {"alpha-consumer-0", "alpha-consumer-1"}
            ),
            "alpha to have both of its instances again",
        )
        obj = _converged(cluster, namespace, "alpha", 2)
        assert condition(obj, "Ready")["reason"] == "Reconciled"
        assert {n for n in deployments(cluster, namespace) if n.startswith("beta-")} == {
            "beta-consumer-0",
            "beta-consumer-1",
        }


def _hand_over(cluster: Cluster, namespace: str, name: str, *, to: str, uid: str) -> None:
    """Edit the controller ownerReference of Deployment ``name`` by hand."""
    refs = deployments(cluster, namespace)[name]["metadata"]["ownerReferences"]
    refs[0]["name"], refs[0]["uid"] = to, uid
    cluster.api("PATCH", _deployment_path(namespace, name), {"metadata": {"ownerReferences": refs}})


def _quiet(name: str, namespace: str) -> dict[str, Any]:
    """A manual-mode Consumer with replicas 0: once converged, no Deployment status changes
    (no pods) that could wake it by chance."""
    manifest = consumer(name, namespace, num_partitions=2, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    return manifest


def test_an_instance_whose_owner_is_edited_to_a_missing_uid_is_recreated(
    cluster: Cluster, namespace: str
) -> None:
    """The garbage collector deletes a Deployment whose owner does not exist; the Consumer
    whose instance it was must notice once it is gone and create it again. (A finalizer
    holds it until the Consumer has seen it under the dangling owner: without it, whether
    the Consumer looks before or after the collector is a race.)"""
    name = "gamma-consumer-0"
    with in_process_operator(cluster):
        cluster.apply(_quiet("gamma", namespace))
        uid = _converged(cluster, namespace, "gamma", 2)["metadata"]["uid"]
        with _held(cluster, namespace, [name]):
            _hand_over(
                cluster, namespace, name, to="gamma", uid="00000000-0000-0000-0000-0000deadbeef"
            )
            _settles(
                cluster,
                namespace,
                "gamma",
                lambda o: condition(o, "Ready").get("reason") == "NameConflict",
                "the Deployment under a dangling owner to be reported as a conflict",
            )
            eventually(
                lambda: deployments(cluster, namespace)[name],
                lambda d: bool(d["metadata"].get("deletionTimestamp")),
                timeout=120,
                what="the garbage collector to delete the Deployment with a dangling owner (held)",
            )
        eventually(
            lambda: deployments(cluster, namespace),
            lambda d: name not in d or _controller_uid(d[name]) == uid,
            timeout=60,
            what="the held Deployment to go",
        )
        _settles(
            cluster,
            namespace,
            "gamma",
            lambda o: (
                converged(o, 2)
                and set(_owned_by(cluster, namespace, uid)) == {name, "gamma-consumer-1"}
            ),
            "gamma to create its lost instance again",
        )


def test_an_instance_handed_to_another_consumer_is_recreated_by_its_first_owner(
    cluster: Cluster, namespace: str
) -> None:
    """Like ``test_an_instance_handed_to_another_consumer_by_hand_is_not_lost_for_good``,
    with no pods: no status change of a sibling Deployment wakes the first owner."""
    with in_process_operator(cluster):
        cluster.apply(_quiet("delta", namespace))
        cluster.apply(_quiet("epsilon", namespace))
        delta = _converged(cluster, namespace, "delta", 2)["metadata"]["uid"]
        epsilon = _converged(cluster, namespace, "epsilon", 2)["metadata"]["uid"]
        _hand_over(cluster, namespace, "delta-consumer-0", to="epsilon", uid=epsilon)
        _settles(
            cluster,
            namespace,
            "delta",
            lambda o: (
                converged(o, 2)
                and set(_owned_by(cluster, namespace, delta))
                == {"delta-consumer-0", "delta-consumer-1"}
            ),
            "delta to have both of its instances again",
        )
