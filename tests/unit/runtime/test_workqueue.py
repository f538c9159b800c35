"""The work queue's client-go semantics.

Aspects tested:
- adding a key that is already waiting coalesces into one entry;
- a key handed to a worker is never handed out again until ``done``; a re-add
  meanwhile is remembered and re-queued by ``done``;
- FIFO order of first adds;
- ``add_after``: keys become ready at their deadline, the earliest deadline
  for a key wins, later ones are ignored;
- ``add_rate_limited``: per-key delays double from 5 ms, ``forget`` resets;
- ``shutdown`` wakes blocked getters and drops pending keys.
"""

import asyncio
import itertools
import random

import pytest

from konsumerator.runtime.limiting import ItemExponentialLimiter, MaxOfLimiter, TokenBucket
from konsumerator.runtime.queueing import ShutDown, WorkQueue


def make_queue() -> WorkQueue[str]:
    limiter = MaxOfLimiter(
        item=ItemExponentialLimiter(jitter=0.0, rng=random.Random(1)),
        bucket=TokenBucket(qps=10, burst=100),
    )
    return WorkQueue(name="test", rate_limiter=limiter)


async def test_adding_a_waiting_key_twice_coalesces() -> None:
    queue = make_queue()
    queue.add("a")
    queue.add("a")
    assert len(queue) == 1
    assert await queue.get() == "a"
    assert len(queue) == 0


async def test_keys_come_out_in_order_of_first_add() -> None:
    queue = make_queue()
    for key in ("a", "b", "a", "c"):
        queue.add(key)
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_being_processed_is_not_handed_out_again() -> None:
    queue = make_queue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    assert len(queue) == 0
    assert queue.is_dirty("a")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(10):
            await queue.get()


async def test_re_add_during_processing_is_requeued_by_done() -> None:
    queue = make_queue()
    queue.add("a")
    await queue.get()
    queue.add("a")
    queue.add("a")
    queue.done("a")
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_done_without_re_add_leaves_nothing_behind() -> None:
    queue = make_queue()
    queue.add("a")
    await queue.get()
    queue.done("a")
    assert len(queue) == 0
    assert not queue.is_processing("a")


async def test_blocked_getter_wakes_on_add() -> None:
    queue = make_queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(1)
    assert not getter.done()
    queue.add("a")
    assert await getter == "a"


async def test_add_after_makes_keys_ready_at_their_deadlines() -> None:
    loop = asyncio.get_running_loop()
    queue = make_queue()
    start = loop.time()
    queue.add_after("late", 3)
    queue.add_after("early", 1)
    assert len(queue) == 0
    assert await queue.get() == "early"
    assert loop.time() - start == pytest.approx(1)
    assert await queue.get() == "late"
    assert loop.time() - start == pytest.approx(3)


async def test_add_after_earliest_deadline_wins() -> None:
    loop = asyncio.get_running_loop()
    queue = make_queue()
    start = loop.time()
    queue.add_after("a", 10)
    queue.add_after("a", 2)
    queue.add_after("a", 5)  # later than the current deadline: ignored
    assert await queue.get() == "a"
    assert loop.time() - start == pytest.approx(2)
    queue.done("a")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(20):
            await queue.get()


async def test_add_after_zero_adds_immediately() -> None:
    queue = make_queue()
    queue.add_after("a", 0)
    assert len(queue) == 1


async def test_rate_limited_retries_back_off_exponentially_and_forget_resets() -> None:
    loop = asyncio.get_running_loop()
    queue = make_queue()
    delays = []
    for _ in range(4):
        start = loop.time()
        queue.add_rate_limited("a")
        await queue.get()
        queue.done("a")
        delays.append(loop.time() - start)
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert queue.num_requeues("a") == 4
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    start = loop.time()
    queue.add_rate_limited("a")
    await queue.get()
    assert loop.time() - start == pytest.approx(0.005)


def test_item_backoff_is_capped_and_jitter_only_lengthens() -> None:
    limiter = ItemExponentialLimiter(base=0.005, cap=1000.0, jitter=0.1, rng=random.Random(7))
    delays = [limiter.when("k") for _ in range(40)]
    assert delays[0] >= 0.005
    assert delays[0] <= 0.0055
    assert all(d <= 1000.0 for d in delays)
    assert delays[-1] == 1000.0
    assert all(b >= a for a, b in itertools.pairwise(delays))


async def test_token_bucket_allows_the_burst_then_spaces_at_qps() -> None:
    bucket = TokenBucket(qps=10, burst=100)
    assert [bucket.reserve() for _ in range(100)] == [0.0] * 100
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    await asyncio.sleep(10)  # refills 100 tokens minus the 2 owed
    assert bucket.reserve() == 0.0


async def test_shared_bucket_limits_retries_across_keys() -> None:
    limiter = MaxOfLimiter(
        item=ItemExponentialLimiter(jitter=0.0), bucket=TokenBucket(qps=1, burst=2)
    )
    assert [round(limiter.when(k), 3) for k in "abcd"] == [0.005, 0.005, 1.0, 2.0]


async def test_shutdown_wakes_blocked_getters_and_drops_pending_keys() -> None:
    queue = make_queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shutdown()
    with pytest.raises(ShutDown):
        await getter
    queue.add("a")
    queue.add_after("b", 1)
    assert len(queue) == 0
    with pytest.raises(ShutDown):
        await queue.get()
