"""The API resources we talk to, and how their URLs are built.

A ``ResourceKind`` is the (group, version, plural) triple that names a REST
collection; it knows whether the resource is namespaced and builds paths for
collections, objects and subresources. Nothing else in the code writes URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from konsumerator.domain import keys


@dataclass(frozen=True, slots=True)
class ResourceKind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        return base


DEPLOYMENTS: Final = ResourceKind(
    group="apps", version="v1", plural="deployments", kind="Deployment"
)
REPLICASETS: Final = ResourceKind(
    group="apps", version="v1", plural="replicasets", kind="ReplicaSet"
)
PODS: Final = ResourceKind(group="", version="v1", plural="pods", kind="Pod")
CONFIGMAPS: Final = ResourceKind(group="", version="v1", plural="configmaps", kind="ConfigMap")
EVENTS: Final = ResourceKind(group="", version="v1", plural="events", kind="Event")
NAMESPACES: Final = ResourceKind(
    group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False
)
LEASES: Final = ResourceKind(
    group="coordination.k8s.io", version="v1", plural="leases", kind="Lease"
)
CONSUMERS: Final = ResourceKind(
    group=keys.GROUP, version=keys.VERSION, plural=keys.PLURAL, kind=keys.KIND
)
CUSTOM_RESOURCE_DEFINITIONS: Final = ResourceKind(
    group="apiextensions.k8s.io",
    version="v1",
    plural="customresourcedefinitions",
    kind="CustomResourceDefinition",
    namespaced=False,
)
