"""The pod projection (in-place resizing): what planning reads of a managed pod.

Only metadata, the containers' spec resources, the running containers'
resources (``status.containerStatuses[].resources``, what the kubelet has
actuated) and the resize conditions are decoded (``kube.projections``
explains the wire-struct approach); probes, env, volumes and the rest of
a pod are skipped by the decoder without building objects.

A pod's instance is its Deployment, named by the pod's ReplicaSet: the
Deployment controller names a ReplicaSet ``<deployment>-<pod-template-hash>``
and labels its pods with that hash, so the name is the ReplicaSet's minus the
suffix. A pod with no such owner belongs to no instance (``deployment`` "").
That name is only a hint (anyone can create a ReplicaSet named like ours):
``owner_uid`` is the controlling ReplicaSet's UID, which the ReplicaSet
projection (``REPLICASET_PROJECTOR``) links to its Deployment's UID, and only
that chain makes a pod the instance's (``controllers.owned``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

import msgspec

from konsumerator.domain import keys
from konsumerator.domain.pods import ObservedPod, ObservedReplicaSet, Pending
from konsumerator.domain.resources import Resources, from_strings
from konsumerator.kube.projections import ObjectMetaWire, Projector, controller_uid


class _Resources(msgspec.Struct):
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}


class _Container(msgspec.Struct):
    name: str = ""
    resources: _Resources = msgspec.field(default_factory=_Resources)


class _ContainerStatus(msgspec.Struct):
    name: str = ""
    # None: not reported (not running, or a kubelet that cannot resize).
    resources: _Resources | None = None
    state: dict[str, msgspec.Raw] = {}


class _Condition(msgspec.Struct, rename="camel"):
    type: str = ""
    status: str = ""
    reason: str = ""
    last_transition_time: datetime | None = None


class _PodSpec(msgspec.Struct):
    containers: list[_Container] = []


class _PodStatus(msgspec.Struct, rename="camel"):
    phase: str = ""
    conditions: list[_Condition] = []
    container_statuses: list[_ContainerStatus] = []


class PodWire(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


def _instance(meta: ObjectMetaWire) -> tuple[str, str]:
    """The Deployment named by the pod's controlling ReplicaSet, and that ReplicaSet's UID."""
    hash_value = meta.labels.get(keys.POD_TEMPLATE_HASH, "")
    for ref in meta.owner_references:
        if ref.controller and ref.kind == "ReplicaSet" and hash_value:
            suffix = f"-{hash_value}"
            if ref.name.endswith(suffix) and len(ref.name) > len(suffix):
                return ref.name[: -len(suffix)], ref.uid
    return "", ""


def deployment_of(meta: ObjectMetaWire) -> str:
    """The Deployment that made the pod, from its controlling ReplicaSet's name (a hint)."""
    return _instance(meta)[0]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Distinct (container, size) sets kept shared; the pods of a Consumer mostly have a few.
_SHARED_SIZES: Final = 4096


@functools.lru_cache(maxsize=_SHARED_SIZES)
def _sized(requests: tuple[tuple[str, str], ...], limits: tuple[tuple[str, str], ...]) -> Resources:
    return from_strings(requests=dict(requests), limits=dict(limits))


def _resources(r: _Resources) -> Resources:
    """One ``Resources`` object per distinct size, and (``_shared_spec``,
    ``_shared_actual``) one read-only mapping per distinct set of container sizes: the
    pods of an instance, and mostly of a Consumer, have the same ones, and building
    them per pod was half of what a watched pod retained (1.9 KB, now 0.9 KB)."""
    return _sized(tuple(sorted(r.requests.items())), tuple(sorted(r.limits.items())))


@functools.lru_cache(maxsize=_SHARED_SIZES)
def _shared_spec(items: tuple[tuple[str, Resources], ...]) -> Mapping[str, Resources]:
    return MappingProxyType({sys.intern(name): r for name, r in items})


@functools.lru_cache(maxsize=_SHARED_SIZES)
def _shared_actual(
    items: tuple[tuple[str, Resources | None], ...],
) -> Mapping[str, Resources | None]:
    return MappingProxyType({sys.intern(name): r for name, r in items})


def to_observed_pod(wire: PodWire) -> ObservedPod:
    meta, status = wire.metadata, wire.status
    deployment, owner_uid = _instance(meta)
    pending: Pending | None = None
    since: datetime | None = None
    in_progress = False
    for c in status.conditions:
        if c.status != "True":
            continue
        if c.type == "PodResizePending" and c.reason in (p.value for p in Pending):
            pending, since = Pending(c.reason), _aware(c.last_transition_time)
        elif c.type == "PodResizeInProgress":
            in_progress = True
    return ObservedPod(
        name=meta.name,
        namespace=sys.intern(meta.namespace),
        uid=meta.uid,
        resource_version=meta.resource_version,
        deployment=deployment,
        owner_uid=owner_uid,
        spec=_shared_spec(tuple((c.name, _resources(c.resources)) for c in wire.spec.containers)),
        actual=_shared_actual(
            tuple(
                (s.name, None if s.resources is None else _resources(s.resources))
                for s in status.container_statuses
            )
        ),
        pending=pending,
        pending_since=since,
        in_progress=in_progress,
        deleting=meta.deletion_timestamp is not None,
        running=status.phase == "Running"
        and bool(status.container_statuses)
        and all("running" in s.state for s in status.container_statuses),
    )


POD_PROJECTOR: Projector[PodWire, ObservedPod] = Projector(wire=PodWire, convert=to_observed_pod)


class ReplicaSetWire(msgspec.Struct):
    """Only the metadata: the name, the UID and the controlling owner are read."""

    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)


def to_observed_replicaset(wire: ReplicaSetWire) -> ObservedReplicaSet:
    meta = wire.metadata
    return ObservedReplicaSet(
        name=meta.name,
        namespace=meta.namespace,
        uid=meta.uid,
        resource_version=meta.resource_version,
        controller_uid=controller_uid(meta),
    )


REPLICASET_PROJECTOR: Projector[ReplicaSetWire, ObservedReplicaSet] = Projector(
    wire=ReplicaSetWire, convert=to_observed_replicaset
)
