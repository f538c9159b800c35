"""Which pods count as an instance's (``controllers.owned.OwnedPods``).

Aspects tested (one table): a pod counts only when its controlling ReplicaSet, by
UID, is cached and controlled by the instance's Deployment, by UID, in the same
namespace. A ReplicaSet merely named like the instance's (no owner, a foreign
owner), a pod without a ReplicaSet owner, a ReplicaSet the cache does not show
yet, or a Deployment the cache does not show: the pod is left out.
"""

from collections.abc import Sequence

import pytest

from konsumerator.controllers.owned import REPLICASET_UID_INDEX, OwnedPods
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.pods import ObservedPod, ObservedReplicaSet

DEPLOYMENT = ObservedDeployment(name="orders-0", namespace="ns", uid="d-1")
POD = ObservedPod(name="orders-0-h-x", namespace="ns", uid="p-1", deployment="orders-0")


class Pods:
    def __init__(self, pods: Sequence[ObservedPod]) -> None:
        self._pods = pods

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedPod]:
        return [p for p in self._pods if f"{p.namespace}/{p.deployment}" == value]


class ReplicaSets:
    def __init__(self, replicasets: Sequence[ObservedReplicaSet]) -> None:
        self._replicasets = replicasets

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedReplicaSet]:
        assert index == REPLICASET_UID_INDEX
        return [r for r in self._replicasets if r.uid == value]


def rs(*, uid: str = "rs-1", controller: str | None = "d-1", ns: str = "ns") -> ObservedReplicaSet:
    return ObservedReplicaSet(name="orders-0-h", namespace=ns, uid=uid, controller_uid=controller)


CASES = [
    # (id, the pod's ReplicaSet UID, cached ReplicaSets, Deployment cached, counts)
    ("owner-chain-is-ours", "rs-1", [rs()], True, True),
    ("replicaset-without-owner", "rs-1", [rs(controller=None)], True, False),
    ("replicaset-of-another-owner", "rs-1", [rs(controller="cm-9")], True, False),
    ("pod-of-another-replicaset", "rs-2", [rs()], True, False),
    ("pod-without-replicaset-owner", "", [rs()], True, False),
    ("replicaset-not-cached-yet", "rs-1", [], True, False),
    ("replicaset-in-another-namespace", "rs-1", [rs(ns="other")], True, False),
    ("deployment-not-cached", "rs-1", [rs()], False, False),
]


@pytest.mark.parametrize(
    ("owner_uid", "replicasets", "deployment_cached", "counts"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_a_pod_counts_only_when_its_owner_chain_is_the_instances(
    owner_uid: str,
    replicasets: list[ObservedReplicaSet],
    deployment_cached: bool,
    counts: bool,
) -> None:
    pod = ObservedPod(
        name=POD.name,
        namespace=POD.namespace,
        uid=POD.uid,
        deployment=POD.deployment,
        owner_uid=owner_uid,
    )
    view = OwnedPods(
        pods=Pods([pod]),
        replicasets=ReplicaSets(replicasets),
        deployment=lambda ns, name: (
            DEPLOYMENT if deployment_cached and (ns, name) == ("ns", "orders-0") else None
        ),
    )
    assert list(view.by_index(index="deployment", value="ns/orders-0")) == ([pod] if counts else [])
