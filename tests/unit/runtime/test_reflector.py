"""The reflector keeps a store equal to a (fake) API server.

Aspects tested:
- LIST fills the store, marks it synced, and the watch starts from its RV;
- watch events add, update and delete; the RV follows them;
- a BOOKMARK moves the RV forward without touching the store;
- a clean end of the watch resumes from the last RV without a relist;
- 410 Gone relists and *replaces* the store: vanished keys are deleted (and
  subscribers are told), unchanged objects produce no notification;
- a silent watch is restarted by the watchdog after timeout + margin, or after
  ``SILENCE_S`` without an event when that is sooner (the server sends bookmarks);
- errors back off exponentially; TooManyRequests waits at least Retry-After,
  at most a minute of it;
- a misbehaving server does not make it loop: a watch ending at once without
  an event, or 410 again and again on a just-listed version, backs off;
- ``stalled`` reports a reflector that has made no progress for long.
"""

import asyncio
import itertools
import random

import pytest

from konsumerator.runtime import errors
from konsumerator.runtime.limiting import Backoff
from konsumerator.runtime.ports import Listing
from konsumerator.runtime.reflecting import SILENCE_S, Reflector
from konsumerator.runtime.stores import ObjectKey, Store

from .fakes import HANG, FakeSource, Obj, Sleep, bookmark, event

A1 = Obj("ns", "a", "1")
B1 = Obj("ns", "b", "2")


class Changes:
    def __init__(self, store: Store[Obj]) -> None:
        self.seen: list[tuple[str | None, str | None]] = []
        store.subscribe(self)

    def __call__(self, old: Obj | None, new: Obj | None) -> None:
        self.seen.append(
            (
                old and f"{old.name}@{old.resource_version}",
                new and f"{new.name}@{new.resource_version}",
            )
        )


def make(source: FakeSource, **kwargs: object) -> tuple[Reflector[Obj], Store[Obj]]:
    store: Store[Obj] = Store(indexers={"owner": lambda o: [o.owner] if o.owner else []})
    options: dict[str, object] = {
        "timeout_seconds": 10,
        "watchdog_margin": 5.0,
        "backoff": Backoff(initial=1.0, cap=30.0, jitter=0.0),
        "rng": random.Random(3),
    }
    options.update(kwargs)
    reflector = Reflector(name="test", source=source, store=store, **options)  # type: ignore[arg-type]
    return reflector, store


async def run_for(reflector: Reflector[Obj], seconds: float) -> None:
    task = asyncio.create_task(reflector.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_list_fills_the_store_and_watch_starts_from_its_version() -> None:
    source = FakeSource(lists=[Listing(items=[A1, B1], resource_version="10")], watches=[[HANG]])
    reflector, store = make(source)
    assert not store.has_synced
    await run_for(reflector, 1)
    assert store.has_synced
    assert sorted(store.keys()) == [ObjectKey("ns", "a"), ObjectKey("ns", "b")]
    assert source.watch_calls[0][1] == "10"


async def test_watch_events_update_the_store_and_the_resource_version() -> None:
    a2 = Obj("ns", "a", "11", owner="x")
    c = Obj("ns", "c", "12", owner="x")
    source = FakeSource(
        lists=[Listing(items=[A1, B1], resource_version="10")],
        watches=[[event("MODIFIED", a2), event("ADDED", c), event("DELETED", B1), HANG]],
    )
    reflector, store = make(source)
    await run_for(reflector, 1)
    assert store.get(ObjectKey("ns", "a")) == a2
    assert ObjectKey("ns", "b") not in store
    assert sorted(o.name for o in store.by_index(index="owner", value="x")) == ["a", "c"]
    assert reflector.resource_version == "2"  # the DELETED event's object RV


async def test_bookmark_advances_the_version_used_by_the_next_watch() -> None:
    source = FakeSource(
        lists=[Listing(items=[A1], resource_version="10")],
        watches=[[bookmark("50")], [HANG]],
    )
    reflector, store = make(source)
    changes = Changes(store)
    await run_for(reflector, 1)
    assert [call[1] for call in source.watch_calls] == ["10", "50"]
    assert len(source.list_calls) == 1  # a clean end re-watches, it does not relist
    assert changes.seen == [(None, "a@1")]


async def test_gone_relists_and_replace_emits_deletes_for_vanished_keys() -> None:
    c = Obj("ns", "c", "30")
    source = FakeSource(
        lists=[
            Listing(items=[A1, B1], resource_version="10"),
            Listing(items=[B1, c], resource_version="30"),
        ],
        watches=[[errors.Gone(status=410, reason="Expired")], [HANG]],
    )
    reflector, store = make(source)
    changes = Changes(store)
    await run_for(reflector, 1)
    assert len(source.list_calls) == 2
    assert sorted(o.name for o in store.values()) == ["b", "c"]
    # b is unchanged (same RV): no notification for it on the relist.
    assert changes.seen == [(None, "a@1"), (None, "b@2"), ("a@1", None), (None, "c@30")]
    assert source.watch_calls[-1][1] == "30"


async def test_silent_watch_is_restarted_by_the_watchdog() -> None:
    source = FakeSource(
        lists=[Listing(items=[A1], resource_version="10")],
        watches=[[HANG], [HANG]],
    )
    reflector, _ = make(source)
    await run_for(reflector, 100)
    first_at, _, first_timeout = source.watch_calls[0]
    second_at, second_rv, _ = source.watch_calls[1]
    # The server timeout is jittered into [10, 20); the watchdog adds 5 s.
    assert 10 <= first_timeout < 20
    assert second_at - first_at == pytest.approx(first_timeout + 5.0)
    assert second_rv == "10"
    assert len(source.list_calls) == 1


async def test_a_watch_silent_past_the_bookmark_cadence_is_restarted_from_its_version() -> None:
    """A dead connection (no FIN, no RST) or a server stalled mid-event: with the
    server's own timeout of 5-10 min, the cache stayed stale for up to 10.5 min."""
    source = FakeSource(
        lists=[Listing(items=[A1], resource_version="10")],
        watches=[[Sleep(60), bookmark("11"), HANG], [HANG]],
    )
    reflector, store = make(source, timeout_seconds=300, watchdog_margin=30.0)
    await run_for(reflector, 400)
    first_at, _, first_timeout = source.watch_calls[0]
    second_at, second_rv, _ = source.watch_calls[1]
    assert first_timeout >= 300
    assert second_at - first_at == pytest.approx(60 + SILENCE_S)
    assert second_rv == "11"
    assert len(source.list_calls) == 1
    assert store.get(ObjectKey("ns", "a")) == A1


async def test_events_keep_the_watchdog_at_bay() -> None:
    flat = [s for n in range(11, 15) for s in (Sleep(8), bookmark(str(n)))]
    source = FakeSource(lists=[Listing(items=[A1], resource_version="10")], watches=[[*flat, HANG]])
    reflector, _ = make(source, timeout_seconds=3, watchdog_margin=1.0)
    await run_for(reflector, 33)
    # 8 s gaps exceed 3 s: each gap trips the watchdog.
    assert len(source.watch_calls) > 1
    source2 = FakeSource(
        lists=[Listing(items=[A1], resource_version="10")], watches=[[*flat, HANG]]
    )
    reflector2, _ = make(source2, timeout_seconds=10, watchdog_margin=5.0)
    await run_for(reflector2, 33)
    assert len(source2.watch_calls) == 1
    assert reflector2.resource_version == "14"


async def test_errors_back_off_exponentially_then_reset() -> None:
    down = errors.ServerError(status=500, message="down")
    source = FakeSource(
        lists=[down, down, down, Listing(items=[A1], resource_version="10")],
        watches=[[HANG]],
    )
    reflector, store = make(source)
    await run_for(reflector, 30)
    gaps = [b - a for a, b in itertools.pairwise(source.list_calls)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0])
    assert store.has_synced


async def test_too_many_requests_waits_at_least_retry_after() -> None:
    source = FakeSource(
        lists=[
            errors.TooManyRequests(retry_after=7.0),
            Listing(items=[A1], resource_version="10"),
        ],
        watches=[[HANG]],
    )
    reflector, _ = make(source)
    await run_for(reflector, 30)
    assert source.list_calls[1] - source.list_calls[0] == pytest.approx(7.0)


async def test_reflector_failing_for_long_reports_stalled() -> None:
    down = errors.Unreachable(message="connection refused")
    source = FakeSource(lists=[down] * 100)
    reflector, _ = make(source)
    task = asyncio.create_task(reflector.run())
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1)
    assert not reflector.stalled(now=loop.time())
    await asyncio.sleep(200)
    assert reflector.stalled(now=loop.time())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_watch_that_ends_at_once_with_nothing_backs_off() -> None:
    # A proxy or a struggling apiserver that answers every watch and closes it at once:
    # client-go calls it a "very short watch" and backs off; re-watching at once would
    # send requests as fast as the loop runs, for as long as the server does it.
    source = FakeSource(
        lists=[Listing(items=[A1], resource_version="10")],
        watches=[[] for _ in range(1_000)],
    )
    reflector, store = make(source)
    await run_for(reflector, 30)
    # Backoff 1, 2, 4, 8, 16 s: five or six watches in 30 s, not a thousand.
    assert 2 <= len(source.watch_calls) <= 6
    assert len(source.list_calls) == 1  # it kept its version: nothing to relist
    assert store.has_synced


async def test_a_watch_that_lasted_ends_and_resumes_at_once() -> None:
    # The server's own timeout (or a watch that closes every few seconds) is no failure.
    source = FakeSource(
        lists=[Listing(items=[A1], resource_version="10")],
        watches=[[Sleep(3)], [Sleep(3)], [HANG]],
    )
    reflector, _ = make(source)
    await run_for(reflector, 10)
    starts = [at for at, _, _ in source.watch_calls]
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([3.0, 3.0])


async def test_gone_on_every_fresh_watch_backs_off_its_relists() -> None:
    # One 410 relists at once; a server answering 410 to the version it has just
    # listed would otherwise be listed in full as fast as the loop runs.
    gone = errors.Gone(status=410, reason="Expired")
    source = FakeSource(
        lists=[Listing(items=[A1], resource_version=str(n)) for n in range(1_000)],
        watches=[[gone] for _ in range(1_000)],
    )
    reflector, store = make(source)
    await run_for(reflector, 30)
    assert 2 <= len(source.list_calls) <= 7
    assert store.has_synced


async def test_gone_after_events_relists_at_once() -> None:
    gone = errors.Gone(status=410, reason="Expired")
    source = FakeSource(
        lists=[
            Listing(items=[A1], resource_version="10"),
            Listing(items=[A1], resource_version="30"),
        ],
        watches=[[Sleep(5), bookmark("20"), Sleep(5), gone], [HANG]],
    )
    reflector, _ = make(source)
    await run_for(reflector, 20)
    assert source.list_calls[1] - source.list_calls[0] == pytest.approx(10.0)


@pytest.mark.parametrize("retry_after", [3_600.0, 1e9, float("inf")])
async def test_a_retry_after_beyond_reason_is_bounded(retry_after: float) -> None:
    # Retry-After comes from the server (or a proxy in front of it): a value of hours or
    # an unparseable infinity must not silence the watch, and with it the operator.
    source = FakeSource(
        lists=[
            errors.TooManyRequests(retry_after=retry_after),
            Listing(items=[A1], resource_version="10"),
        ],
        watches=[[HANG]],
    )
    reflector, store = make(source)
    await run_for(reflector, 120)
    assert store.has_synced
    assert source.list_calls[1] - source.list_calls[0] <= 60.0
