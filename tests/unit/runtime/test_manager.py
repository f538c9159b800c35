"""The manager's lifecycle.

Aspects tested:
- controllers start only after every cache has synced and the lease is held;
- ``/readyz`` turns ready once caches are synced (followers too);
- ``stop()`` stops the controllers, then releases the lease, then returns;
- a lost lease makes ``run`` raise (so the process exits non-zero);
- a follower never runs its controllers.
"""

import asyncio
from collections.abc import Iterable

import pytest

from konsumerator.runtime.controlling import Controller, Result
from konsumerator.runtime.electing import LeaderElector, LeadershipLost
from konsumerator.runtime.managing import Manager
from konsumerator.runtime.ports import Listing
from konsumerator.runtime.reflecting import Reflector
from konsumerator.runtime.stores import ObjectKey, Store

from .fakes import HANG, FakeLeaseStore, FakeSource, Obj

A1 = Obj("ns", "a", "1")


def probe(app: object) -> str:
    status: list[str] = []

    def start_response(s: str, headers: object, exc_info: object = None) -> None:
        status.append(s)

    body: Iterable[bytes] = app({}, start_response)  # type: ignore[operator]
    b"".join(body)
    return status[0]


def build(
    *, store: FakeLeaseStore, identity: str, list_delay: float = 0.0
) -> tuple[Manager, list[ObjectKey], Store[Obj]]:
    source = FakeSource(lists=[Listing(items=[A1], resource_version="1")], watches=[[HANG]])
    if list_delay:
        original = source.list

        async def slow_list() -> Listing[Obj]:
            await asyncio.sleep(list_delay)
            return await original()

        source.list = slow_list  # type: ignore[method-assign]
    cache: Store[Obj] = Store()
    reflector = Reflector(name="objs", source=source, store=cache)
    seen: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        assert cache.has_synced
        seen.append(key)
        return Result()

    controller: Controller[ObjectKey] = Controller(name="objs", reconcile=reconcile)

    def enqueue(old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        controller.enqueue(ObjectKey(obj.namespace, obj.name))

    cache.subscribe(enqueue)
    elector = LeaderElector(store=store, namespace="ns", name="lease", identity=identity)
    manager = Manager(
        reflectors=[reflector], controllers=[controller], elector=elector, handle_signals=False
    )
    return manager, seen, cache


async def test_controllers_start_after_sync_and_leadership_and_stop_releases() -> None:
    lease = FakeLeaseStore()
    manager, seen, _ = build(store=lease, identity="one", list_delay=5)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(1)
    assert probe(manager.readyz).startswith("503")
    await asyncio.wait_for(manager.leading.wait(), timeout=30)
    await asyncio.sleep(2)
    assert probe(manager.readyz).startswith("200")
    assert probe(manager.healthz).startswith("200")
    assert seen == [ObjectKey("ns", "a")]
    manager.stop()
    await task
    assert lease.record is not None
    assert lease.record.holder_identity == ""


async def test_follower_keeps_its_cache_but_runs_no_controllers() -> None:
    lease = FakeLeaseStore()
    leader, _, _ = build(store=lease, identity="one")
    follower, follower_seen, follower_cache = build(store=lease, identity="two")
    t1 = asyncio.create_task(leader.run())
    await leader.leading.wait()
    t2 = asyncio.create_task(follower.run())
    await asyncio.sleep(60)
    assert follower_cache.has_synced
    assert probe(follower.readyz).startswith("200")
    assert follower_seen == []
    follower.stop()
    leader.stop()
    await asyncio.gather(t1, t2)


async def test_lost_lease_makes_run_raise() -> None:
    lease = FakeLeaseStore()
    manager, _, _ = build(store=lease, identity="one")
    task = asyncio.create_task(manager.run())
    await manager.leading.wait()
    lease.failing = True
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(task, timeout=60)
    assert not manager.leading.is_set()
