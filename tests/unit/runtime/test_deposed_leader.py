"""A leader that may have lost its lease writes nothing more, in virtual time.

The operator's whole write path is used (manager, controller, ``Writer`` with the elector as
its fence, ``ApiClient``) with an in-memory API server (httpx2 MockTransport) that records
when each write arrives, and an in-memory Lease.

Aspects tested:
- renewal fails: no write starts later than ``renew_deadline`` after the start of the last
  successful renewal (so strictly before another replica may take the lease), the
  in-flight reconcile is cancelled instead of drained, and ``run`` raises ``LeadershipLost``;
- the process freezes (SIGSTOP, a stalled node) past the lease duration in the middle of a
  reconcile: when it wakes up, its next write is refused before anything is sent;
- another candidate takes the Lease: the leader stops writing at the renewal that sees it,
  not at its renew deadline;
- the fence itself: the budget a write gets is the time left before the renew deadline,
  counted from the *start* of the last successful renewal; a follower gets none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random

import httpx2
import pytest

from konsumerator.app import _lease_watch
from konsumerator.kube.projections import LeaseView
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.kube.writing import Writer
from konsumerator.obs.metrics import RuntimeMetrics
from konsumerator.runtime import errors
from konsumerator.runtime.controlling import Controller, Result
from konsumerator.runtime.electing import LeaderElector, LeadershipLost
from konsumerator.runtime.managing import Manager
from konsumerator.runtime.ports import LeaseRecord, Listing
from konsumerator.runtime.reflecting import Reflector
from konsumerator.runtime.stores import ObjectKey, Store

from .conftest import VirtualTimeLoop
from .fakes import HANG, FakeLeaseStore, FakeSource, Obj

RENEW_DEADLINE = 10.0
LEASE_DURATION = 15.0


class Server:
    """An API server that answers every write after ``latency`` and records arrivals."""

    def __init__(self, *, latency: float = 0.05) -> None:
        self.arrivals: list[float] = []
        self.latency = latency
        self._arrived = asyncio.Event()

    async def received(self, count: int) -> None:
        """Until ``count`` writes have arrived."""
        while len(self.arrivals) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def client(self) -> ApiClient:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            self.arrivals.append(asyncio.get_running_loop().time())
            self._arrived.set()
            await asyncio.sleep(self.latency)
            meta = {"name": "d", "namespace": "ns", "uid": "u", "resourceVersion": "1"}
            body = {"metadata": meta}
            return httpx2.Response(200, content=json.dumps(body).encode())

        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="https://k8s")
        return ApiClient(http=http)


def elector(store: FakeLeaseStore, identity: str = "one") -> LeaderElector:
    return LeaderElector(
        store=store,
        namespace="ns",
        name="lease",
        identity=identity,
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=2.0,
        rng=random.Random(identity),
    )


class RenewalStarts:
    """Records when each successful acquire/renew request of the elector started."""

    def __init__(self, store: FakeLeaseStore) -> None:
        self.starts: list[float] = []
        original = store.get

        async def get(*, namespace: str, name: str) -> object:
            started = asyncio.get_running_loop().time()
            record = await original(namespace=namespace, name=name)
            if not store.failing:
                self.starts.append(started)
            return record

        store.get = get  # type: ignore[method-assign]


def operator(
    *, store: FakeLeaseStore, server: Server, reconcile_writes: int, pause: float
) -> tuple[Manager, LeaderElector, list[float]]:
    """One controller whose single reconcile writes ``reconcile_writes`` times, ``pause`` apart."""
    source = FakeSource(
        lists=[Listing(items=[Obj("ns", "c", "1")], resource_version="1")], watches=[[HANG]]
    )
    cache: Store[Obj] = Store()
    reflector = Reflector(name="objs", source=source, store=cache)
    lead = elector(store)
    writer = Writer(client=server.client(), fence=lead)
    started: list[float] = []

    async def reconcile(key: ObjectKey) -> Result:
        for n in range(reconcile_writes):
            started.append(asyncio.get_running_loop().time())
            await writer.apply(resource=DEPLOYMENTS, namespace="ns", name=f"d-{n}", body={})
            await asyncio.sleep(pause)
        return Result()

    controller: Controller[ObjectKey] = Controller(name="objs", reconcile=reconcile)
    controller.watches(cache, keys=lambda o: [ObjectKey(o.namespace, o.name)])
    manager = Manager(
        reflectors=[reflector],
        controllers=[controller],
        elector=lead,
        handle_signals=False,
        shutdown_timeout=30.0,
    )
    return manager, lead, started


async def test_failed_renewal_stops_every_write_before_the_lease_can_be_taken() -> None:
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    renewals = RenewalStarts(store)
    server = Server()
    manager, lead, _ = operator(store=store, server=server, reconcile_writes=100, pause=1.0)
    task = asyncio.create_task(manager.run())
    await server.received(5)
    store.failing = True
    failed_at = loop.time()
    with pytest.raises(LeadershipLost):
        await task
    last_renewal = renewals.starts[-1]
    assert last_renewal <= failed_at
    # Writes went on until the renew deadline, and not one started after it ...
    assert max(server.arrivals) < last_renewal + RENEW_DEADLINE
    assert max(server.arrivals) > failed_at
    # ... so none can land once another replica may hold the lease, and the
    # in-flight reconcile was cancelled, not drained for 30 s.
    assert max(server.arrivals) < last_renewal + LEASE_DURATION
    assert loop.time() < last_renewal + LEASE_DURATION
    assert not lead.is_leader


async def test_a_leader_frozen_past_its_lease_writes_nothing_when_it_wakes() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    store = FakeLeaseStore()
    server = Server()
    manager, lead, started = operator(store=store, server=server, reconcile_writes=100, pause=0.5)
    task = asyncio.create_task(manager.run())
    await server.received(3)
    await asyncio.sleep(0.1)  # the third write is answered; the reconcile is in its pause
    before = len(server.arrivals)
    # SIGSTOP for 30 s: the clock moves, nothing runs; another replica takes the lease.
    loop.advance(30.0)
    taken = loop.time()
    store.record = dataclasses.replace(store.record, holder_identity="two")  # type: ignore[arg-type]
    with pytest.raises(LeadershipLost):
        await task
    assert [t for t in server.arrivals if t >= taken] == []
    assert len(server.arrivals) == before
    assert not lead.is_leader
    # The reconcile was mid-flight and tried again when it woke: refused before sending.
    assert max(started) >= taken


async def test_a_leader_that_sees_another_holder_stops_writing_at_once() -> None:
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    server = Server()
    manager, lead, _ = operator(store=store, server=server, reconcile_writes=100, pause=0.5)
    task = asyncio.create_task(manager.run())
    await server.received(3)
    assert store.record is not None
    # An admin (or a buggy peer) writes another holder into the Lease.
    store.record = dataclasses.replace(store.record, holder_identity="two")
    taken = loop.time()
    with pytest.raises(LeadershipLost):
        await task
    # The next renewal (one retry period later) sees it; no write after that.
    assert not lead.is_leader
    assert loop.time() - taken <= 2.0 + 0.2
    assert max(server.arrivals) <= taken + 2.0 + 0.2


async def test_write_budget_counts_from_the_start_of_the_last_renewal() -> None:
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    renewals = RenewalStarts(store)
    lead = elector(store)
    with pytest.raises(errors.NotLeading):
        lead.write_budget()
    task = asyncio.create_task(lead.run())
    await lead.wait_until_leading()
    await asyncio.sleep(3.0)
    assert lead.write_budget() == pytest.approx(renewals.starts[-1] + RENEW_DEADLINE - loop.time())
    assert 0 < lead.write_budget() <= RENEW_DEADLINE
    store.failing = True
    await asyncio.sleep(RENEW_DEADLINE - 0.5)
    assert not lead.is_leader or lead.write_budget() <= 0.5
    with pytest.raises(LeadershipLost):
        await task
    with pytest.raises(errors.NotLeading):
        lead.write_budget()


async def test_a_refused_write_sends_nothing() -> None:
    store = FakeLeaseStore()
    server = Server()
    lead = elector(store)
    writer = Writer(client=server.client(), fence=lead)
    with pytest.raises(errors.NotLeading):
        await writer.apply(resource=DEPLOYMENTS, namespace="ns", name="d", body={})
    with pytest.raises(errors.NotLeading):
        await writer.delete(resource=DEPLOYMENTS, namespace="ns", name="d", uid="u")
    assert server.arrivals == []
    assert writer.counts.total == 0


def _taken_by(record: LeaseRecord | None, holder: str, *, versions_on: int) -> LeaseRecord:
    """``record`` as a watch event shows it once ``holder`` wrote itself in."""
    assert record is not None
    version = str(int(record.resource_version) + versions_on)
    return dataclasses.replace(record, holder_identity=holder, resource_version=version)


async def test_a_lease_taken_while_ours_is_valid_stops_every_write_once_its_watch_shows_it() -> (
    None
):
    """The watch of the Lease (``LeaderElector.saw``) shows another holder: no write starts
    after that instant, and ``run`` raises ``LeadershipLost`` at once, not at the next
    renewal (up to ``retry_period``, 2 s, later)."""
    loop = asyncio.get_running_loop()
    store = FakeLeaseStore()
    server = Server()
    manager, lead, _ = operator(store=store, server=server, reconcile_writes=100, pause=0.05)
    task = asyncio.create_task(manager.run())
    await server.received(3)
    await asyncio.sleep(0.01)  # between two renewals, writes under way
    # An admin (or a buggy peer) writes another holder into the Lease; its watch says so.
    store.record = _taken_by(store.record, "two", versions_on=1)
    lead.saw(store.record)
    taken = loop.time()
    with pytest.raises(LeadershipLost):
        await task
    assert not lead.is_leader
    assert loop.time() - taken < 0.05
    assert [t for t in server.arrivals if t > taken] == []
    with pytest.raises(errors.NotLeading):
        lead.write_budget()


async def test_a_lease_watch_behind_our_own_renewal_does_not_depose_the_leader() -> None:
    """An event older than our own last write (the previous holder, before we took it over)
    is no evidence of a takeover; one of ours is none either."""
    store = FakeLeaseStore()
    lead = elector(store)
    task = asyncio.create_task(lead.run())
    await lead.wait_until_leading()
    await asyncio.sleep(5.0)  # a few renewals
    lead.saw(_taken_by(lead.observed, "previous", versions_on=-1))
    lead.saw(lead.observed)
    await asyncio.sleep(3.0)
    assert lead.is_leader
    assert lead.write_budget() > 0
    lead.saw(None)  # deleted (kubectl delete lease): another may create it at once
    with pytest.raises(LeadershipLost):
        await task


def _lease_view(record: LeaseRecord) -> LeaseView:
    return LeaseView(
        namespace="ns", name="lease", resource_version=record.resource_version, record=record
    )


async def test_a_late_delete_of_a_lease_the_renewal_created_anew_keeps_the_leader() -> None:
    """The Lease is deleted; the leader's next renewal finds none and creates it anew (no
    other candidate can hold it then: the create would have failed). The watch's delete
    event arriving after that is no evidence of a takeover: the leader goes on leading. A
    delete the leader has not answered yet still deposes it."""
    store = FakeLeaseStore()
    lead = elector(store)
    watch = _lease_watch(client=Server().client(), elector=lead, observer=RuntimeMetrics())
    task = asyncio.create_task(lead.run())
    await lead.wait_until_leading()
    await asyncio.sleep(5.0)  # a few renewals
    before = lead.observed
    assert before is not None
    watch.store.upsert(_lease_view(before))
    store.record = None  # kubectl delete lease
    await asyncio.sleep(3.0)  # a renewal: no Lease, so it creates ours anew
    assert lead.observed is not None
    assert int(lead.observed.resource_version) > int(before.resource_version)
    watch.store.delete(ObjectKey("ns", "lease"))  # the watch shows the delete only now
    watch.store.upsert(_lease_view(lead.observed))
    await asyncio.sleep(3.0)
    assert lead.is_leader
    assert lead.write_budget() > 0
    store.record = None  # deleted again; the watch shows it before the renewal
    watch.store.delete(ObjectKey("ns", "lease"))
    with pytest.raises(LeadershipLost):
        await task
