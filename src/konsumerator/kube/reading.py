"""Reads that cannot come from a cache: one GET of one object, None when absent.

Controllers read from watch caches, which hold only the Deployments we
manage (label-selected). When a creation finds its name taken
(``controllers.acting``), the operator must know whether the holder is a
Deployment of its owner that the cache does not show (one left by the Go
operator, without our label) or somebody else's: one GET tells. The same GET
serves the Lease (``leases``) and a conflicting status write's identity check
(``writing``).
"""

from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube.projections import CONFIGMAP_PROJECTOR, DEPLOYMENT_PROJECTOR, ConfigMapView
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import CONFIGMAPS, DEPLOYMENTS, ResourceKind
from konsumerator.runtime import errors


async def get(
    *, client: ApiClient, resource: ResourceKind, namespace: str | None, name: str
) -> bytes | None:
    """The object's body as the apiserver sends it, or None: no such object."""
    try:
        return await client.request(
            verb="get",
            resource=resource.plural,
            method="GET",
            path=resource.path(namespace=namespace, name=name),
        )
    except errors.NotFound:
        return None


async def get_deployment(
    *, client: ApiClient, namespace: str, name: str
) -> ObservedDeployment | None:
    body = await get(client=client, resource=DEPLOYMENTS, namespace=namespace, name=name)
    return None if body is None else DEPLOYMENT_PROJECTOR.decode(body)


async def get_configmap(*, client: ApiClient, namespace: str, name: str) -> ConfigMapView | None:
    body = await get(client=client, resource=CONFIGMAPS, namespace=namespace, name=name)
    return None if body is None else CONFIGMAP_PROJECTOR.decode(body)
