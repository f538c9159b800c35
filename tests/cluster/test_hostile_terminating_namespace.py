"""Hostile review: a namespace deleted under a Consumer while the operator works there.

The namespace controller deletes a terminating namespace's objects in its own order: the
Consumer's Deployments may go before the Consumer, whose pass then finds them missing and
creates them again, which the apiserver refuses (403: new content in a namespace being
terminated), as it refuses the pass's Events. A ConfigMap with a finalizer of ours keeps
the namespace Terminating meanwhile.

Aspects tested (an in-process operator, a real apiserver, kube-controller-manager's
namespace controller): the Consumer goes, no Deployment of it outlives it, the operator
stays alive, and a Consumer created in another namespace meanwhile converges.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)

from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

HOLD = "konsumerator.test/hold"


@pytest.fixture
def doomed(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A namespace of its own, kept Terminating by a finalizer until the test ends."""
    name = cluster.create_namespace(
        f"{namespace[:50]}-doomed", labels={"konsumerator.testenv/test": "true"}
    )
    held = f"/api/v1/namespaces/{name}/configmaps/held"
    cluster.api(
        "POST",
        f"/api/v1/namespaces/{name}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": [HOLD]},
        },
    )
    try:
        yield name
    finally:
        cluster.api("PATCH", held, {"metadata": {"finalizers": None}})
        cluster.delete_namespace(name)


def test_a_namespace_deleted_under_a_consumer_stops_nobody_else(
    cluster: Cluster, namespace: str, doomed: str
) -> None:
    with in_process_operator(cluster) as op:
        manifest = consumer("doomed", doomed, num_partitions=6, per_instance=1)
        manifest["spec"]["deploymentTemplate"]["replicas"] = 0
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, doomed, "doomed"),
            lambda o: converged(o, 6),
            timeout=60,
            what="the Consumer to converge before its namespace goes",
        )
        cluster.delete_namespace(doomed)
        survivor = consumer("survivor", namespace, num_partitions=2, per_instance=1)
        survivor["spec"]["deploymentTemplate"]["replicas"] = 0
        cluster.apply(survivor)
        eventually(
            lambda: cluster.request("GET", consumer_path(doomed, "doomed")).status,
            lambda status: status == 404,
            timeout=120,
            what="the namespace controller to delete the Consumer",
        )
        eventually(
            lambda: managed(cluster, doomed),
            lambda found: not found,
            timeout=120,
            what="no Deployment of the deleted Consumer to remain",
        )
        eventually(
            lambda: get_consumer(cluster, namespace, "survivor"),
            lambda o: converged(o, 2),
            timeout=60,
            what="a Consumer elsewhere to converge",
        )
        assert op.alive
    phase = cluster.api("GET", f"/api/v1/namespaces/{doomed}")["status"]["phase"]
    assert phase == "Terminating"
