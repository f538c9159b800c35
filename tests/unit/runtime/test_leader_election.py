"""Lease leader election against an in-memory Lease with optimistic concurrency.

Aspects tested:
- with no Lease, the first candidate creates it and leads;
- the leader renews every retry period and keeps leading;
- a follower does not take a lease that is being renewed, and reports itself as standby
  (leading=False) from the start;
- a leader cancelled without release is replaced after the lease expires;
- a leader cancelled with release is replaced at the follower's next retry;
- a leader that cannot renew within the renew deadline raises LeadershipLost;
- two candidates racing for a fresh Lease: exactly one wins (409 for the other);
- expiry is judged on the local monotonic clock, not the record's timestamps.
"""

import asyncio
import random
from datetime import UTC, datetime

import pytest

from konsumerator.runtime.electing import LeaderElector, LeadershipLost
from konsumerator.runtime.observing import NullObserver
from konsumerator.runtime.ports import LeaseRecord

from .fakes import FakeLeaseStore


class Leadership(NullObserver):
    def __init__(self) -> None:
        self.changes: list[bool] = []

    def leadership_changed(self, *, name: str, leading: bool) -> None:
        self.changes.append(leading)


def elector(
    store: FakeLeaseStore, identity: str, observer: NullObserver | None = None, **kw: object
) -> LeaderElector:
    return LeaderElector(
        store=store,
        namespace="ns",
        name="konsumerator-global",
        identity=identity,
        rng=random.Random(identity),
        observer=observer or NullObserver(),
        **kw,  # type: ignore[arg-type]
    )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_first_candidate_creates_the_lease_and_leads() -> None:
    store = FakeLeaseStore()
    observer = Leadership()
    one = elector(store, "one", observer)
    task = asyncio.create_task(one.run())
    await asyncio.wait_for(one.wait_until_leading(), timeout=1)
    assert store.record is not None
    assert store.record.holder_identity == "one"
    assert store.record.lease_duration_seconds == 15
    assert observer.changes == [False, True]
    await stop(task)


async def test_leader_renews_every_retry_period() -> None:
    store = FakeLeaseStore()
    one = elector(store, "one")
    task = asyncio.create_task(one.run())
    await one.wait_until_leading()
    writes = store.writes
    await asyncio.sleep(20.5)
    assert store.writes - writes == 10
    assert one.is_leader
    assert store.record is not None
    assert store.record.lease_transitions == 0
    await stop(task)


async def test_follower_waits_while_the_leader_renews() -> None:
    store = FakeLeaseStore()
    observer = Leadership()
    one, two = elector(store, "one"), elector(store, "two", observer)
    t1 = asyncio.create_task(one.run())
    await one.wait_until_leading()
    t2 = asyncio.create_task(two.run())
    await asyncio.sleep(120)
    assert one.is_leader
    assert not two.is_leader
    # A standby is visible as one (leader_election_master_status 0), not absent.
    assert observer.changes == [False]
    await stop(t2)
    await stop(t1)


async def test_unreleased_lease_is_taken_over_after_it_expires() -> None:
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    one = elector(store, "one", release_on_cancel=False)
    two = elector(store, "two")
    t1 = asyncio.create_task(one.run())
    await one.wait_until_leading()
    t2 = asyncio.create_task(two.run())
    await asyncio.sleep(5)
    killed_at = loop.time()
    await stop(t1)  # dies without releasing
    await two.wait_until_leading()
    waited = loop.time() - killed_at
    # Not before the 15 s lease has run out (as last observed), and within a retry or two.
    assert 10 <= waited <= 15 + 2 * 2.2 * 2
    assert store.record is not None
    assert store.record.holder_identity == "two"
    assert store.record.lease_transitions == 1
    await stop(t2)


async def test_released_lease_is_taken_over_at_the_next_retry() -> None:
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    one, two = elector(store, "one"), elector(store, "two")
    t1 = asyncio.create_task(one.run())
    await one.wait_until_leading()
    t2 = asyncio.create_task(two.run())
    await asyncio.sleep(5)
    released_at = loop.time()
    await stop(t1)
    assert store.record is not None
    assert store.record.holder_identity == ""
    assert store.record.lease_duration_seconds == 1
    await two.wait_until_leading()
    assert loop.time() - released_at <= 2 * 2.2 + 0.1
    await stop(t2)


async def test_leader_that_cannot_renew_loses_leadership() -> None:
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    observer = Leadership()
    one = elector(store, "one", observer)
    task = asyncio.create_task(one.run())
    await one.wait_until_leading()
    await asyncio.sleep(3)
    store.failing = True
    failed_at = loop.time()
    with pytest.raises(LeadershipLost):
        await task
    # The last renewal happened at most one retry period before the failure.
    assert 10 - 2 <= loop.time() - failed_at <= 10 + 2
    assert not one.is_leader
    assert observer.changes == [False, True, False]


async def test_racing_candidates_elect_exactly_one_leader() -> None:
    store = FakeLeaseStore()
    candidates = [elector(store, f"c{n}") for n in range(3)]
    tasks = [asyncio.create_task(c.run()) for c in candidates]
    await asyncio.sleep(30)
    leaders = [c.identity for c in candidates if c.is_leader]
    assert len(leaders) == 1
    assert store.record is not None
    assert store.record.holder_identity == leaders[0]
    for task in tasks:
        await stop(task)


async def test_expiry_uses_the_local_clock_not_the_records_timestamps() -> None:
    # A record renewed "in 2099" by a node with a broken clock must still expire.
    future = datetime(2099, 1, 1, tzinfo=UTC)
    store = FakeLeaseStore(
        record=LeaseRecord(
            holder_identity="ghost",
            lease_duration_seconds=15,
            acquire_time=future,
            renew_time=future,
            lease_transitions=3,
            resource_version="7",
        ),
        version=7,
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    one = elector(store, "one")
    task = asyncio.create_task(one.run())
    await one.wait_until_leading()
    assert 15 <= loop.time() - start <= 15 + 2 * 2.2 + 0.1
    assert store.record is not None
    assert store.record.lease_transitions == 4
    await stop(task)
