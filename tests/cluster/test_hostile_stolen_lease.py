"""Hostile review: the Lease is taken while the leader's own has not expired.

A misbehaving peer, or an admin's manual takeover (``kubectl edit lease``), writes another
holder into the Lease while the leader is in the middle of a wave. The leader used to see
it only at its next renewal, up to ``retry_period`` (2 s) later, and its fence let
writes start until then. It now watches its Lease: the watch event revokes leadership at
once, every write is refused from then on (the fence asks ``is_leader`` before each
write and again at the socket: tests/unit/runtime/test_deposed_leader.py proves, in
virtual time with the real writer, that no write starts after the event), and the
process ends with ``LeadershipLost``.

Aspects tested (an in-process operator with ``--leader-elect`` on the real apiserver, its
renewal slowed to one per 9 s so that the renewal cannot be what notices the steal):

* the leader notices the steal without reading the Lease (no Lease GET between the steal
  and its noticing): the watch told it; before, it noticed only at a renewal;
* it stops leading, and the operator ends (``LeadershipLost``);
* the Lease keeps the thief as holder (the deposed leader writes nothing into it).

Measured on this machine (2 shared cores, load 4-6; five steals each, mid-wave, at the
default 2 s renewal), from the steal's answer to the leader's ``is_leader`` turning
false, polled every 5 ms: 0-14 ms with the watch; with the old code 0.70-1.84 s (as the
renewal's phase fell), all of it a window in which writes could still start. On the old
code this test fails: the steal is noticed only by the renewal's Lease GET.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from operating import InProcessOperator, consumer, managed

from konsumerator import app
from konsumerator.domain import keys
from konsumerator.runtime.electing import LeaderElector
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

LEASE = keys.lease_name(namespace=None)
SLOW_RENEWAL_S = 9.0


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_gets(op: InProcessOperator) -> int:
    """Lease GETs so far (the renewals and acquisitions read the Lease; its watch does not)."""
    counts: dict[tuple[str, str], int] = op.call(
        lambda: dict(op.operator.client.counts.by_resource)
    )
    return counts.get(("get", "leases"), 0)


def test_a_lease_stolen_mid_wave_is_noticed_by_its_watch_and_ends_the_leadership(
    cluster: Cluster, namespace: str
) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    manifest = consumer("wave", namespace, num_partitions=300, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    op = InProcessOperator(
        app.Settings(
            kubeconfig=str(cluster.kubeconfig),
            leader_elect=True,
            leader_election_namespace=namespace,
        )
    ).start()
    try:
        elector: LeaderElector = op.operator.manager._elector  # type: ignore[assignment]
        assert elector.is_leader
        # Renewals 9 s apart: the steal falls between two of them.
        op.call(lambda: setattr(elector, "_retry_period", SLOW_RENEWAL_S))
        cluster.apply(manifest)
        wait_until(lambda: bool(managed(cluster, namespace)), timeout=60, what="the wave")
        seen: dict[str, Any] = cluster.api("GET", path)
        assert seen["spec"]["holderIdentity"] == elector.identity
        gets = _lease_gets(op)
        seen["spec"].update(holderIdentity="thief", renewTime=_micro_now())
        cluster.api("PUT", path, seen)
        stolen = time.monotonic()
        wait_until(
            lambda: not elector.is_leader, timeout=30, what="the leader to notice", interval=0.005
        )
        latency = time.monotonic() - stolen
        assert _lease_gets(op) == gets, f"noticed by a renewal after {latency:.3f}s"
        assert latency < SLOW_RENEWAL_S
        wait_until(lambda: not op.alive, timeout=60, what="the deposed operator to end")
    finally:
        op.stop()
    assert type(op.error).__name__ == "LeadershipLost", repr(op.error)
    assert cluster.api("GET", path)["spec"]["holderIdentity"] == "thief"
