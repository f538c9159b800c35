"""A user's Deployment is never adopted, even when it appears in the middle of a wave.

The race: a 300-partition Consumer is applied; as soon as its first Deployment exists, a
thread creates plain Deployments (the template's selector and pod labels, the user's own
container, no owner) under the names of the highest instances, from the top down, as fast as
it can, while the operator is still creating the others. Every such Deployment that the API
server accepted (201) existed before the operator reached its name.

Aspects tested:

* none of them is touched: no ownerReference (so deleting the Consumer would not
  garbage-collect it), none of our labels or annotations, the user's container alone (no
  injected env), still at generation 1, and no ``konsumerator`` entry in its managedFields;
* the Consumer reports ``Ready=False, reason=NameConflict`` naming exactly those, and every
  other instance is ours (the Warning Event is tested with one conflict in
  ``test_operator_deployments``: here the per-object Event rate limit is spent on the
  creations);
* deleting the Consumer garbage-collects its own Deployments and leaves the user's;
* a Deployment the Go operator left (controlled by the Consumer, without our managed-by
  label, so not in the cache) is taken over in place: same UID, our labels.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    consumer_path,
    deployments,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    users_deployment,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PARTITIONS = 300
BASE = "wave-consumer"  # the Consumer "wave" names its Deployments wave-consumer-<i>


class Usurper(threading.Thread):
    """Creates foreign Deployments for the highest instance names once the wave has begun."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        super().__init__(name="usurper", daemon=True)
        self.cluster = cluster
        self.namespace = namespace
        self.created: dict[str, dict[str, Any]] = {}
        self.refused: list[str] = []
        self.error: BaseException | None = None
        self._path = f"/apis/apps/v1/namespaces/{namespace}/deployments"

    def _wave_started(self) -> bool:
        selector = f"labelSelector={keys.LABEL_MANAGED_BY}%3D{keys.MANAGED_BY_VALUE}&limit=1"
        return bool(self.cluster.api("GET", f"{self._path}?{selector}")["items"])

    def run(self) -> None:
        try:
            wait_until(self._wave_started, timeout=60, what="the first Deployment", interval=0.01)
            for index in range(PARTITIONS - 1, PARTITIONS // 2, -1):
                name = f"{BASE}-{index}"
                response = self.cluster.request(
                    "POST", self._path, users_deployment(self.namespace, name, app=BASE)
                )
                if response.status == 201:
                    self.created[name] = response.json()
                elif response.status == 409:
                    self.refused.append(name)
                    if len(self.refused) >= 5:
                        return  # the operator has got past us
                else:
                    raise AssertionError(f"POST {name}: {response.status} {response.text}")
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_deployments_created_during_a_wave_are_never_adopted(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer("wave", namespace, num_partitions=PARTITIONS, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0  # no pods: 300 is enough load
    usurper = Usurper(cluster, namespace)
    with in_process_operator(cluster):
        usurper.start()
        cluster.apply(manifest)
        usurper.join(120)
        assert not usurper.is_alive()
        assert usurper.error is None, usurper.error
        foreign = set(usurper.created)
        # The race happened: some names were taken before the operator reached them.
        assert foreign, f"the operator was faster everywhere: {usurper.refused}"

        # Every name is taken and the operator has settled (whatever it concluded).
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "wave"),
            lambda o: (
                len(deployments(cluster, namespace)) == PARTITIONS
                and condition(o, "Ready").get("reason") in ("NameConflict", "Reconciled")
                and (o.get("status") or {}).get("running", 0) + len(foreign) >= PARTITIONS
            ),
            timeout=180,
            what="every instance name taken and the Consumer settled",
        )
        found = deployments(cluster, namespace)

    for name in foreign:
        before, after = usurper.created[name], found[name]
        meta = after["metadata"]
        assert meta["uid"] == before["metadata"]["uid"]
        assert meta.get("ownerReferences") is None, name
        assert set(meta.get("labels") or {}).isdisjoint(
            {keys.LABEL_MANAGED_BY, keys.LABEL_CONTROLLER, keys.LABEL_PARTITIONS}
        ), name
        assert not any(k.startswith(keys.GROUP) for k in meta.get("annotations") or {}), name
        assert meta["generation"] == 1, name
        assert after["spec"]["template"] == before["spec"]["template"], name
        managers = {m["manager"] for m in meta.get("managedFields") or []}
        assert keys.FIELD_MANAGER not in managers, name

    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Ready")["reason"] == "NameConflict"
    named = condition(obj, "Ready")["message"].split(": ", 1)[1].split(", ")
    assert set(named) == foreign
    ours = {n for n in found if n not in foreign}
    assert ours == set(managed(cluster, namespace))
    assert ours == {f"{BASE}-{i}" for i in range(PARTITIONS)} - foreign

    # The owner goes, and takes only its own Deployments with it.
    cluster.api("DELETE", consumer_path(namespace, "wave"))
    remaining = eventually(
        lambda: deployments(cluster, namespace),
        lambda d: set(d) == foreign,
        timeout=180,
        what="the garbage collector to remove the Consumer's Deployments and only those",
    )
    assert {d["metadata"]["uid"] for d in remaining.values()} == {
        usurper.created[n]["metadata"]["uid"] for n in foreign
    }


def test_a_deployment_left_by_the_go_operator_is_taken_over_in_place(
    cluster: Cluster, namespace: str
) -> None:
    """The Go operator's Deployments are controlled by the Consumer but lack our managed-by
    label, so the cache does not show them: the creation finds the name taken, sees the
    Consumer as its controller, and applies to that very object (its UID is kept)."""
    cluster.apply(consumer("legacy", namespace, num_partitions=2, per_instance=1))
    owner = get_consumer(cluster, namespace, "legacy")
    left = users_deployment(namespace, "legacy-consumer-0", app=BASE)
    left["spec"]["selector"] = {"matchLabels": {"app": "legacy-consumer"}}
    left["spec"]["template"]["metadata"]["labels"] = {"app": "legacy-consumer"}
    left["metadata"]["annotations"] = {
        f"{keys.GROUP}/consumer-id": "0",
        f"{keys.GROUP}/partition": "0",
        f"{keys.GROUP}/generation": "-4242",  # Go's hash: outdated here
    }
    left["metadata"]["ownerReferences"] = [
        {
            "apiVersion": keys.API_VERSION,
            "kind": keys.KIND,
            "name": "legacy",
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    created = cluster.api("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", left)
    with in_process_operator(cluster):
        eventually(
            lambda: get_consumer(cluster, namespace, "legacy"),
            lambda o: condition(o, "Ready").get("reason") == "Reconciled",
            timeout=60,
            what="the Consumer to take both instances",
        )
        found = managed(cluster, namespace)

    assert sorted(found) == ["legacy-consumer-0", "legacy-consumer-1"]
    taken = found["legacy-consumer-0"]
    assert taken["metadata"]["uid"] == created["metadata"]["uid"]
    assert taken["metadata"]["labels"][keys.LABEL_MANAGED_BY] == keys.MANAGED_BY_VALUE
    names = [c["name"] for c in taken["spec"]["template"]["spec"]["containers"]]
    assert "consumer" in names
