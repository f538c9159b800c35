"""The one read that cannot come from a cache.

Controllers read from watch caches, which hold only the Deployments we
manage (label-selected). When a creation finds its name taken
(``controllers.acting``), the operator must know whether the holder is a
Deployment of its owner that the cache does not show (one left by the Go
operator, without our label) or somebody else's: one GET tells.
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
