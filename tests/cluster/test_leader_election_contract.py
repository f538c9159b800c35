"""Leader election with two in-process electors on a real Lease.

Aspects tested:
- the first elector creates the Lease and leads; the second waits;
- cancelled *with* release, the leader hands over fast (holder cleared, the
  follower acquires at its next retry);
- cancelled *without* release, the follower takes over only after the lease
  expires;
- the stored Lease carries identity, duration and transitions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from konsumerator.kube.connecting import connect
from konsumerator.kube.leases import LeaseClient
from konsumerator.kube.requesting import ApiClient
from konsumerator.runtime.electing import LeaderElector
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

# Shortened timings so the test takes seconds; the ratios match the defaults.
TIMINGS = {"lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    api = connect(kubeconfig=cluster.kubeconfig)
    try:
        yield api
    finally:
        await api.aclose()


def elector(client: ApiClient, namespace: str, identity: str, *, release: bool) -> LeaderElector:
    return LeaderElector(
        store=LeaseClient(client=client),
        namespace=namespace,
        name="konsumerator-global",
        identity=identity,
        release_on_cancel=release,
        **TIMINGS,
    )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("release", [True, False], ids=["released", "killed"])
async def test_failover_between_two_electors(
    client: ApiClient, namespace: str, release: bool
) -> None:
    one = elector(client, namespace, "one", release=release)
    two = elector(client, namespace, "two", release=True)
    t1 = asyncio.create_task(one.run())
    await asyncio.wait_for(one.wait_until_leading(), timeout=10)
    t2 = asyncio.create_task(two.run())
    await asyncio.sleep(2 * TIMINGS["lease_duration"])
    assert one.is_leader
    assert not two.is_leader

    stopped = time.monotonic()
    await stop(t1)
    lease = await LeaseClient(client=client).get(namespace=namespace, name="konsumerator-global")
    assert lease is not None
    if release:
        assert lease.holder_identity == ""
        assert lease.lease_duration_seconds == 1
    else:
        assert lease.holder_identity == "one"

    await asyncio.wait_for(two.wait_until_leading(), timeout=20)
    took = time.monotonic() - stopped
    if release:
        assert took < TIMINGS["lease_duration"]
    else:
        assert took >= TIMINGS["lease_duration"] - TIMINGS["retry_period"] - 0.5
    lease = await LeaseClient(client=client).get(namespace=namespace, name="konsumerator-global")
    assert lease is not None
    assert lease.holder_identity == "two"
    assert lease.lease_transitions == 1
    assert lease.renew_time is not None
    await stop(t2)
