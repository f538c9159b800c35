"""The work queue's client-go semantics.

Aspects tested:
- adding a key that is already waiting coalesces into one entry;
- a key handed to a worker is never handed out again until ``done``; a re-add
  meanwhile is remembered and re-queued by ``done``;
- order: never-served keys first (FIFO of first adds), then least recently served
  first, so a waiting key is not overtaken by keys woken again after it; the memory of
  services is bounded;
- ``add_batched``: a burst of adds is one pass, due a window after the first add;
- ``add_after``: keys become ready at their deadline, the earliest deadline
  for a key wins, later ones are ignored;
- ``add_rate_limited``: per-key delays double from 5 ms, ``forget`` resets;
- ``shutdown`` wakes blocked getters and drops pending keys;
- ``waited_for_worker``: from when a key is ready (not while its own pass runs) to ``get``.
"""

import asyncio
import itertools
import random

import pytest

from konsumerator.runtime.limiting import ItemExponentialLimiter, MaxOfLimiter, TokenBucket
from konsumerator.runtime.queueing import MEMORY, ShutDown, WorkQueue


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


# -- fairness: least recently served first -------------------------------------------


async def test_a_key_never_served_goes_before_keys_served_since_it_was_added() -> None:
    queue = make_queue()
    for key in ("a", "b"):
        queue.add(key)
        assert await queue.get() == key
        queue.done(key)
    # Converged keys woken again before a new one arrives.
    queue.add("a")
    queue.add("b")
    queue.add("new")
    assert await queue.get() == "new"
    assert [await queue.get() for _ in range(2)] == ["a", "b"]


async def test_served_keys_take_turns_least_recently_served_first() -> None:
    queue = make_queue()
    for key in ("a", "b", "c"):
        queue.add(key)
    served = []
    for _ in range(9):
        key = await queue.get()
        served.append(key)
        queue.done(key)
        # Every pass wakes every key again, in the opposite order.
        for other in ("c", "b", "a"):
            queue.add(other)
    assert served == ["a", "b", "c"] * 3


async def test_a_key_re_added_while_processed_waits_behind_keys_served_before_it() -> None:
    queue = make_queue()
    for key in ("a", "b"):
        queue.add(key)
    assert await queue.get() == "a"
    queue.add("a")  # its own write's event, mid-pass
    queue.done("a")
    assert await queue.get() == "b"
    queue.add("b")
    queue.done("b")
    assert [await queue.get() for _ in range(2)] == ["a", "b"]


async def test_the_queue_remembers_a_bounded_number_of_services() -> None:
    queue = make_queue()
    for key in range(MEMORY + 10):
        queue.add(str(key))
        assert await queue.get() == str(key)
        queue.done(str(key))
    assert len(queue._served) == MEMORY
    # The forgotten (oldest) ones rank as never served: still before the later ones.
    queue.add(str(MEMORY + 9))
    queue.add("0")
    assert await queue.get() == "0"


# -- batching ------------------------------------------------------------------------


async def test_a_burst_of_batched_adds_is_one_get_a_window_after_the_first() -> None:
    loop = asyncio.get_running_loop()
    queue = make_queue()
    start = loop.time()
    for _ in range(5):
        queue.add_batched("a", 0.5)
        await asyncio.sleep(0.2)  # the burst goes on past the window
        # Due a window after the first event, not postponed by the later ones.
        assert len(queue) == (1 if loop.time() - start > 0.5 else 0)
    assert await queue.get() == "a"
    queue.done("a")
    # What came after the key was due joined the pass (it was dirty): no second one.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):
            await queue.get()


async def test_a_batched_add_is_due_within_its_window() -> None:
    loop = asyncio.get_running_loop()
    queue = make_queue()
    start = loop.time()
    queue.add_batched("a", 0.5)
    for _ in range(3):
        queue.add_batched("a", 0.5)
    assert await queue.get() == "a"
    assert loop.time() - start == pytest.approx(0.5)


async def test_a_batched_add_of_a_pending_key_is_left_to_the_pending_pass() -> None:
    queue = make_queue()
    queue.add("a")
    queue.add_batched("a", 0.5)
    assert queue.waiting() == {}
    assert await queue.get() == "a"
    # While it is processed, a batched add asks for another pass after it.
    queue.add_batched("a", 0.5)
    assert "a" in queue.waiting()


async def test_the_wait_for_a_worker_starts_when_the_key_is_ready_not_while_it_runs() -> None:
    """``waited_for_worker``: a key re-added while its pass runs waits for a worker only
    from the end of that pass; a key added while all workers are busy, from its add."""
    queue = make_queue()
    queue.add("a")
    assert await queue.get() == "a"
    assert queue.waited_for_worker("a") == 0.0
    await asyncio.sleep(1.0)
    queue.add("a")  # woken while its pass runs (its own writes' events)
    queue.add("b")
    await asyncio.sleep(4.0)
    queue.done("a")  # ready again at t=5
    assert await queue.get() == "b"
    assert queue.waited_for_worker("b") == pytest.approx(4.0)
    await asyncio.sleep(2.0)
    queue.done("b")
    assert await queue.get() == "a"
    assert queue.waited_for_worker("a") == pytest.approx(2.0)
