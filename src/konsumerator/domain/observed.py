"""The slice of a live Deployment that planning needs, decoded once at the edge.

The kube layer projects watch events into these values; the planner never sees
API objects or dicts. Quantities stay as the strings the apiserver returned
(it canonicalises them) and are parsed where they are compared, so that "1000m"
and "1" can never look like a change.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ObservedContainer:
    name: str
    requests: Mapping[str, str] = field(default_factory=_empty)
    limits: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class ObservedDeployment:
    name: str
    namespace: str
    uid: str = ""
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)
    # UID of the ownerReference with controller=true, if any.
    controller_uid: str | None = None
    containers: tuple[ObservedContainer, ...] = ()
    replicas: int | None = None
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    generation: int = 0
    observed_generation: int = 0
    deleting: bool = False
