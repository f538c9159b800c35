"""The few reads that cannot come from a cache.

Controllers read from watch caches. The exception is a name the cache cannot
know about: before creating ``{name}-{i}``, the operator must know whether a
Deployment of that name exists that it does not manage (the cache only holds
managed ones), because server-side apply would silently take it over. That
is one GET per creation, or, for a wave of creations (a new Consumer with
hundreds of partitions), one metadata-only LIST of the namespace: names and
ownerReferences only, a few hundred bytes per Deployment, paginated.
"""

import msgspec

from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube.projections import (
    DEPLOYMENT_PROJECTOR,
    ListMetaWire,
    ObjectMetaWire,
    controller_uid,
)
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.runtime import errors


async def get_deployment(
    *, client: ApiClient, namespace: str, name: str
) -> ObservedDeployment | None:
    try:
        body = await client.request(
            verb="get",
            resource=DEPLOYMENTS.plural,
            method="GET",
            path=DEPLOYMENTS.path(namespace=namespace, name=name),
        )
    except errors.NotFound:
        return None
    return DEPLOYMENT_PROJECTOR.decode(body)


class _Metadata(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)


class _MetadataList(msgspec.Struct):
    metadata: ListMetaWire = msgspec.field(default_factory=ListMetaWire)
    # An empty PartialObjectMetadataList comes back with "items": null.
    items: list[_Metadata] | None = None


_metadata_page = msgspec.json.Decoder(_MetadataList)
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


async def deployment_controllers(
    *, client: ApiClient, namespace: str, page_size: int = 500
) -> dict[str, str | None]:
    """Every Deployment name in ``namespace`` -> the UID of its controller, if any."""
    result: dict[str, str | None] = {}
    token = ""
    while True:
        params = {"limit": str(page_size)}
        if token:
            params["continue"] = token
        body = await client.request(
            verb="list",
            resource=DEPLOYMENTS.plural,
            method="GET",
            path=DEPLOYMENTS.path(namespace=namespace),
            params=params,
            accept=f"{_METADATA_ONLY}, application/json",
        )
        page = _metadata_page.decode(body)
        for item in page.items or ():
            result[item.metadata.name] = controller_uid(item.metadata)
        token = page.metadata.continue_
        if not token:
            return result
