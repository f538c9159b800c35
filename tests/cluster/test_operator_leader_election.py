"""Two ``konsumerator run --leader-elect`` processes: one leader, and failover on SIGKILL.

Aspects tested:

* both replicas start; exactly one holds the ``konsumerator-global`` Lease in the namespace
  given by ``--leader-election-namespace``, and only that one reconciles (the follower logs
  no reconcile while it waits with warm caches);
* the leader is SIGKILLed (no release): the follower takes the Lease once it expires
  (``leaseTransitions`` grows, the holder is the survivor), and reconciles a change made
  after the kill (numPartitions grows: the new Deployments appear).
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    install_crd,
    managed,
    operator_processes,
)

from konsumerator.domain import keys
from konsumerator.testenv import Cluster

pytestmark = pytest.mark.cluster

LEASE = keys.lease_name(namespace=None)


@pytest.fixture(autouse=True)
def _crd(cluster: Cluster) -> None:
    install_crd(cluster)


def _lease(cluster: Cluster, namespace: str) -> dict[str, Any]:
    response = cluster.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    )
    return response.json() if response.ok else {}


def _holder(lease: dict[str, Any]) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_two_replicas_elect_one_leader_and_fail_over_when_it_is_killed(
    cluster: Cluster, namespace: str
) -> None:
    flags = ("--leader-elect", "--leader-election-namespace", namespace)
    with operator_processes(cluster, flags, flags) as replicas:
        cluster.apply(consumer("ha", namespace, num_partitions=2, per_instance=1))
        lease = eventually(
            lambda: _lease(cluster, namespace),
            lambda lease: bool(_holder(lease)),
            timeout=60,
            what=f"a holder of Lease {namespace}/{LEASE}",
        )
        eventually(
            lambda: get_consumer(cluster, namespace, "ha"),
            lambda obj: converged(obj, 2),
            timeout=60,
            what="the leader to reconcile the Consumer",
        )
        # POD_NAME is the replica's name; the identity is "<POD_NAME>_<random>".
        [leader] = [r for r in replicas if _holder(lease).startswith(f"{r.name}_")]
        [follower] = [r for r in replicas if r is not leader]
        assert follower.alive()
        assert "reconciled" in leader.log_text()
        assert "reconciled" not in follower.log_text()
        transitions = int(lease["spec"].get("leaseTransitions") or 0)

        leader.kill()
        cluster.api("PATCH", consumer_path(namespace, "ha"), {"spec": {"numPartitions": 3}})

        taken = eventually(
            lambda: _lease(cluster, namespace),
            lambda lease: _holder(lease).startswith(f"{follower.name}_"),
            timeout=60,
            what="the follower to take over the Lease",
        )
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "ha"),
            lambda obj: converged(obj, 3),
            timeout=60,
            what="the new leader to reconcile the change made after the kill",
        )
        assert follower.alive()
        assert "reconciled" in follower.log_text()

    assert int(taken["spec"]["leaseTransitions"]) > transitions
    assert obj["status"]["expected"] == 3
    assert sorted(managed(cluster, namespace)) == [f"ha-consumer-{i}" for i in range(3)]
