"""Which pods are the instance's own: the owner chain, by UID, never by name.

The pod cache is selected by the managed-by label and indexed by the Deployment
its ReplicaSet's *name* points at (``kube.pods``). Neither is proof: a user can
create a ReplicaSet named ``<instance>-<hash>`` (with no owner, or owned by
something else) whose pods carry our labels and our container, and resizing
those would write to objects the operator does not own. A pod is the
instance's only when its controlling ReplicaSet (by UID) is in the ReplicaSet
cache and is controlled by the instance's Deployment (by UID), which is
itself one the Consumer controls (the Pipeline reads Deployments by owner UID).

A pod whose ReplicaSet the cache does not show yet is left out of this pass;
the ReplicaSet's event wakes the Consumer again (``app.py``).
"""

from collections.abc import Callable, Sequence
from typing import Protocol

from konsumerator.controllers.ports import PodsView
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.pods import ObservedPod, ObservedReplicaSet

REPLICASET_UID_INDEX = "uid"


class ReplicaSetsView(Protocol):
    """The ReplicaSets of managed Deployments, by index (``uid``)."""

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedReplicaSet]: ...


def replicaset_uid_index(rs: ObservedReplicaSet) -> list[str]:
    return [rs.uid] if rs.uid else []


class OwnedPods:
    """A ``PodsView`` that yields only the pods whose owner chain is the instance's."""

    def __init__(
        self,
        *,
        pods: PodsView,
        replicasets: ReplicaSetsView,
        deployment: Callable[[str, str], ObservedDeployment | None],
    ) -> None:
        """``deployment(namespace, name)``: the managed Deployment of that name, if cached."""
        self._pods = pods
        self._replicasets = replicasets
        self._deployment = deployment

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedPod]:
        pods = self._pods.by_index(index=index, value=value)
        if not pods:
            # Asked for every instance in every in-place pass: most often there is none.
            return []
        namespace, _, name = value.partition("/")
        d = self._deployment(namespace, name)
        if d is None or not d.uid:
            return []
        return [p for p in pods if self._owned(pod=p, deployment_uid=d.uid)]

    def _owned(self, *, pod: ObservedPod, deployment_uid: str) -> bool:
        if not pod.owner_uid:
            return False
        return any(
            rs.namespace == pod.namespace and rs.controller_uid == deployment_uid
            for rs in self._replicasets.by_index(index=REPLICASET_UID_INDEX, value=pod.owner_uid)
        )
