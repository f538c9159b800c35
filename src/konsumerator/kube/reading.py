"""The few reads that cannot come from a cache.

Controllers read from watch caches. The exception is a name the cache cannot
know about: before creating ``{name}-{i}``, the operator must know whether a
Deployment of that name exists that it does not manage (the cache only holds
managed ones), because server-side apply would silently take it over. That
is one GET per creation, never per pass.
"""

from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR
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
