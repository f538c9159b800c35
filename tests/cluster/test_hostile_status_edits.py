"""Hostile review: a status edited by somebody else is not left standing.

The status is the operator's report; anyone allowed to write ``consumers/status`` (a
misguided script, ``kubectl edit --subresource=status``) can overwrite it. The next pass
must put the truth back, not compare with what it remembers writing and conclude there is
nothing to do.

Aspects tested (manual mode, an in-process operator): after a converged Consumer's status
is overwritten by hand (Ready=True with made-up numbers, then wiped), a pass (woken by an
annotation change, and by an explicit enqueue) restores the real counts and condition. In
guest mode, a status annotation of the ConfigMap overwritten by hand is restored the same
way, and so is a conditions annotation edited into JSON that is no list of conditions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    guest_configmap,
    in_process_operator,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


def _edit_status(cluster: Cluster, namespace: str, name: str, patch: object) -> Any:
    """Returns the object as the edit left it: the operator may restore the truth (a
    foreign status write wakes it) before a later GET could see the lie."""
    return cluster.api("PATCH", consumer_path(namespace, name) + "/status", patch)


@pytest.mark.parametrize(
    "lie",
    [
        {"status": {"running": 0, "missing": 2, "expected": 7}},
        {"status": None},
    ],
    ids=["made-up numbers", "wiped"],
)
def test_a_status_overwritten_by_hand_is_restored_by_the_next_pass(
    cluster: Cluster, namespace: str, lie: object
) -> None:
    manifest = consumer("truth", namespace, num_partitions=2, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    with in_process_operator(cluster) as operator:
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, "truth"),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge",
        )
        assert not converged(_edit_status(cluster, namespace, "truth", lie), 2)
        cluster.api(
            "PATCH",
            consumer_path(namespace, "truth"),
            {"metadata": {"annotations": {"example.com/note": "wake up"}}},
        )
        operator.enqueue(namespace, "truth")
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "truth"),
            lambda o: converged(o, 2),
            timeout=30,
            what="the next pass to restore the real status",
        )
    assert obj["status"]["running"] == 2
    assert condition(obj, "Ready")["reason"] == "Reconciled"


def test_a_guest_status_annotation_overwritten_by_hand_is_restored_by_the_next_pass(
    cluster: Cluster, namespace: str
) -> None:
    """Guest mode keeps its status in ``konsumerator.lwolf.org/status.*`` annotations of the
    ConfigMap: the same shortcut must not leave a hand-edited one standing."""
    spec = consumer("guest", namespace, num_partitions=2, per_instance=1)["spec"]
    spec["deploymentTemplate"]["replicas"] = 0
    path = f"/api/v1/namespaces/{namespace}/configmaps/guest"
    running = f"{keys.STATUS_PREFIX}running"

    def annotations() -> dict[str, str]:
        found: dict[str, str] = cluster.api("GET", path)["metadata"].get("annotations") or {}
        return found

    with in_process_operator(cluster, namespace=namespace) as operator:
        cluster.apply(guest_configmap("guest", namespace, spec))
        eventually(
            annotations, lambda a: a.get(running) == "2", timeout=60, what="the guest status"
        )
        cluster.api("PATCH", path, {"metadata": {"annotations": {running: "7"}}})
        operator.enqueue(namespace, "guest")
        eventually(
            annotations,
            lambda a: a.get(running) == "2",
            timeout=30,
            what="the next pass to restore the real status annotation",
        )


@pytest.mark.parametrize(
    "junk",
    ['[1, "x", {"type": 5}]', '{"type": "Ready"}'],
    ids=["junk-items", "not-a-list"],
)
def test_guest_conditions_edited_into_junk_are_restored_by_the_next_pass(
    cluster: Cluster, namespace: str, junk: str
) -> None:
    """A guest ConfigMap's conditions annotation holds whatever anyone writes there (no
    schema): JSON that is no list of conditions must not fail the pass, which restores
    the real conditions."""
    spec = consumer("guest", namespace, num_partitions=2, per_instance=1)["spec"]
    spec["deploymentTemplate"]["replicas"] = 0
    path = f"/api/v1/namespaces/{namespace}/configmaps/guest"
    conditions = f"{keys.STATUS_PREFIX}conditions"

    def ready() -> dict[str, Any]:
        found = cluster.api("GET", path)["metadata"].get("annotations") or {}
        listed = json.loads(found.get(conditions, "[]"))
        if not isinstance(listed, list):
            return {}
        return next((c for c in listed if isinstance(c, dict) and c.get("type") == "Ready"), {})

    with in_process_operator(cluster, namespace=namespace) as operator:
        cluster.apply(guest_configmap("guest", namespace, spec))
        eventually(
            ready,
            lambda c: c.get("reason") == "Reconciled",
            timeout=60,
            what="the guest ConfigMap to be Ready",
        )
        cluster.api("PATCH", path, {"metadata": {"annotations": {conditions: junk}}})
        operator.enqueue(namespace, "guest")
        restored = eventually(
            ready,
            lambda c: c.get("reason") == "Reconciled",
            timeout=60,
            what="the next pass to restore the conditions annotation",
        )
    assert restored["status"] == "True"
