"""Two ``konsumerator run --leader-elect`` processes: one leader, and failover on SIGKILL.

Aspects tested:

* both replicas start; exactly one holds the ``konsumerator-global`` Lease in the namespace
  given by ``--leader-election-namespace``, and only that one reconciles (the follower logs
  no reconcile while it waits with warm caches);
* the leader is SIGKILLed (no release): the follower takes the Lease once it expires
  (``leaseTransitions`` grows, the holder is the survivor), and reconciles a change made
  after the kill (numPartitions grows: the new Deployments appear);
* a leader frozen (SIGSTOP) in the middle of a 300-instance wave, whose Lease is taken while
  it is frozen, writes nothing once it wakes (no Deployment, Consumer status or Event
  changes after the takeover) and exits non-zero.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    deployments,
    events,
    eventually,
    get_consumer,
    managed,
    operator_processes,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

LEASE = keys.lease_name(namespace=None)


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


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _our_writes(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """Everything a write of the operator would change: which Deployments exist, their
    generation and the operator's managedFields entries, the Consumer's resourceVersion
    (only the operator writes its status), and the Events about it."""
    found = deployments(cluster, namespace)
    return {
        "deployments": {
            name: (
                d["metadata"]["generation"],
                [
                    m
                    for m in d["metadata"].get("managedFields") or []
                    if m["manager"] == keys.FIELD_MANAGER
                ],
            )
            for name, d in found.items()
        },
        "consumer": get_consumer(cluster, namespace, "wave")["metadata"]["resourceVersion"],
        "events": sorted(
            (e["metadata"]["name"], e.get("count")) for e in events(cluster, namespace)
        ),
    }


def test_a_leader_frozen_past_its_lease_writes_nothing_after_it_is_taken(
    cluster: Cluster, namespace: str
) -> None:
    """SIGSTOP in the middle of a 300-instance wave; a successor takes the Lease the way a
    candidate does (after the lease duration without renewal, compare-and-swap on its
    resourceVersion); SIGCONT. The old leader's next write is refused by its fence and it
    exits non-zero: nothing it would write (Deployments, the Consumer's status, Events)
    changes after the takeover."""
    flags = ("--leader-elect", "--leader-election-namespace", namespace)
    manifest = consumer("wave", namespace, num_partitions=300, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0  # no pods: 300 is enough load
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    with operator_processes(cluster, flags) as (leader,):
        eventually(
            lambda: _lease(cluster, namespace),
            lambda lease: _holder(lease).startswith(f"{leader.name}_"),
            timeout=60,
            what="the operator to lead",
        )
        cluster.apply(manifest)
        wait_until(
            lambda: bool(managed(cluster, namespace)),
            timeout=60,
            what="the wave to begin",
            interval=0.01,
        )
        os.kill(leader.pid, signal.SIGSTOP)
        try:
            frozen_at = len(managed(cluster, namespace))
            # A candidate waits out the lease from when it last saw it change.
            seen = _lease(cluster, namespace)
            time.sleep(int(seen["spec"]["leaseDurationSeconds"]) + 1)
            assert (
                _lease(cluster, namespace)["metadata"]["resourceVersion"]
                == (seen["metadata"]["resourceVersion"])
            )
            now = _micro_now()
            seen["spec"].update(
                holderIdentity="successor",
                acquireTime=now,
                renewTime=now,
                leaseTransitions=int(seen["spec"].get("leaseTransitions") or 0) + 1,
            )
            cluster.api("PUT", path, seen)
            taken = _our_writes(cluster, namespace)
        finally:
            os.kill(leader.pid, signal.SIGCONT)
        leader.proc.wait(60)
        after = _our_writes(cluster, namespace)
        log = leader.log_text()
    # Gone before the next test: its operator would otherwise pick the wave up while this
    # namespace is being torn down.
    cluster.api("DELETE", consumer_path(namespace, "wave"))

    assert frozen_at < 300, "the wave was over before the freeze"
    assert leader.proc.returncode == 1, log[-3000:]
    changed = {
        n: (taken["deployments"].get(n), d)
        for n, d in after["deployments"].items()
        if taken["deployments"].get(n) != d
    }
    assert changed == {}, json.dumps(changed, indent=1) + log[-3000:]
    assert after == taken, log[-3000:]
    assert "leadership lost; cancelling in-flight reconciles" in log
