"""The slice of a live pod that in-place resizing needs, and what is done to it.

Decoded once at the edge (``kube.projections``), like ``observed``: the
planner never sees API objects. A pod belongs to the instance whose Deployment
created it, found from its ReplicaSet's name (``<deployment>-<pod-template-hash>``,
as the Deployment controller names it) and the hash label.

What the kubelet reports decides what is "actuated": ``actual`` is
``status.containerStatuses[].resources``, the resources the running
containers have. ``pending`` is the reason of the ``PodResizePending``
condition (``Deferred``: the node may fit it later; ``Infeasible``: it never
will), with the time it became so.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import Resources


class Pending(StrEnum):
    """Reasons of the ``PodResizePending`` condition (Kubernetes >= 1.33)."""

    DEFERRED = "Deferred"
    INFEASIBLE = "Infeasible"


def _empty() -> Mapping[str, Resources]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ObservedPod:
    name: str
    namespace: str
    uid: str = ""
    # Not compared: an event that changes nothing else (readiness) does not matter.
    resource_version: str = field(default="", compare=False)
    # The Deployment (instance) that created it; "" when it cannot be told. Only a
    # name: ``owner_uid`` (its controlling ReplicaSet) proves whose pod it is.
    deployment: str = ""
    owner_uid: str = ""
    # Per container: the spec's resources, and the running container's (None when
    # the kubelet reports none: not running yet, or a node that cannot resize).
    spec: Mapping[str, Resources] = field(default_factory=_empty)
    actual: Mapping[str, Resources | None] = field(default_factory=_empty)
    pending: Pending | None = None
    pending_since: datetime | None = None
    in_progress: bool = False
    deleting: bool = False
    # Whether every container runs (a pod that is not running cannot be resized
    # usefully: it starts from its spec, which we patch anyway).
    running: bool = False

    def actuated(self, target: Mapping[str, Resources]) -> bool:
        """Whether every container of ``target`` has it in the spec and on the node."""
        return all(
            self.spec.get(name) == wanted and self.actual.get(name) == wanted
            for name, wanted in target.items()
        )


@dataclass(frozen=True, slots=True)
class ObservedReplicaSet:
    """The link between a pod and its Deployment: who controls this ReplicaSet (by UID).

    A pod's labels and its ReplicaSet's name can be copied by anyone; the UIDs of
    the ownerReferences cannot be made to point at our objects by accident.
    """

    name: str
    namespace: str
    uid: str = ""
    # Not compared: only a change of controller matters (status updates do not).
    resource_version: str = field(default="", compare=False)
    controller_uid: str | None = None


@dataclass(frozen=True, slots=True)
class PodResize:
    """One ``pods/resize`` patch: ``containers`` get these resources (by container name).

    Conditional on ``uid``: a pod re-created under the same name is not patched
    with the old one's target.
    """

    pod: str
    uid: str
    instance: str
    containers: Mapping[str, Resources]
    # How memory is written (as the Deployment's: "1Gi" stays binary).
    memory_format: Format = Format.DECIMAL_SI
