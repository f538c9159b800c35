"""What the controller does with each reconcile outcome.

Aspects tested:
- success forgets the key and does not requeue;
- ``Result(requeue_after=s)`` reconciles again s seconds later;
- an exception requeues with per-key exponential backoff until it succeeds;
- a ``Retryable`` failure with ``requeue_after`` is due then at the latest, however long
  its backoff has grown;
- ``TerminalError`` is not retried;
- ``Conflict`` is retried quickly and quietly (``requeue``), not as an error;
- ``Result(requeue=True)`` reconciles again once the keys waiting longer had their pass;
- classified failures (a pass whose writes failed, API errors, timeouts) are logged in
  one line; only an unexpected exception (a bug) carries a traceback;
- N workers reconcile up to N keys at once, but never one key twice at once;
- a key that has not had a pass is not starved by converged keys woken again and again;
- observer hooks see every result with its label;
- ``watches`` maps store changes to keys of both the old and the new object,
  filtered by a predicate.
"""

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from konsumerator.controllers.reconciling import WritesFailed
from konsumerator.runtime import errors
from konsumerator.runtime.controlling import Controller, Result
from konsumerator.runtime.limiting import ItemExponentialLimiter, MaxOfLimiter, TokenBucket
from konsumerator.runtime.observing import NullObserver
from konsumerator.runtime.queueing import WorkQueue
from konsumerator.runtime.stores import ObjectKey, Store

from .fakes import Obj


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.results: Counter[str] = Counter()
        self.errors: Counter[bool] = Counter()

    def reconcile_finished(self, *, controller: str, result: str, seconds: float) -> None:
        self.results[result] += 1

    def reconcile_errored(self, *, controller: str, terminal: bool) -> None:
        self.errors[terminal] += 1


class Calls:
    def __init__(self) -> None:
        self.at: list[tuple[str, float]] = []

    def times(self, key: str) -> list[float]:
        return [t for k, t in self.at if k == key]


def controller_for(
    reconcile: Callable[[str], Awaitable[Result]], *, workers: int = 2, backoff: float = 0.005
) -> tuple[Controller[str], Recorder]:
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(
        name="test",
        rate_limiter=MaxOfLimiter(
            item=ItemExponentialLimiter(base=backoff, jitter=0.0, rng=random.Random(1)),
            bucket=TokenBucket(qps=10, burst=100),
        ),
        observer=recorder,
    )
    controller = Controller(
        name="test",
        reconcile=reconcile,
        queue=queue,
        max_concurrent_reconciles=workers,
        observer=recorder,
    )
    return controller, recorder


async def run_for(controller: Controller[str], seconds: float) -> None:
    task = asyncio.create_task(controller.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_success_is_not_requeued() -> None:
    calls = Calls()

    async def reconcile(key: str) -> Result:
        calls.at.append((key, asyncio.get_running_loop().time()))
        return Result()

    controller, recorder = controller_for(reconcile)
    controller.enqueue("a")
    await run_for(controller, 1000)
    assert len(calls.times("a")) == 1
    assert recorder.results == {"success": 1}


async def test_requeue_after_reconciles_again_later() -> None:
    calls = Calls()

    async def reconcile(key: str) -> Result:
        calls.at.append((key, asyncio.get_running_loop().time()))
        return Result(requeue_after=30)

    controller, recorder = controller_for(reconcile)
    controller.enqueue("a")
    await run_for(controller, 95)
    times = calls.times("a")
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([30, 30, 30])
    assert recorder.results["requeue_after"] == 4


async def test_errors_are_retried_with_growing_backoff_until_success() -> None:
    calls = Calls()

    async def reconcile(key: str) -> Result:
        calls.at.append((key, asyncio.get_running_loop().time()))
        if len(calls.at) < 4:
            raise RuntimeError("boom")
        return Result()

    controller, recorder = controller_for(reconcile)
    controller.enqueue("a")
    await run_for(controller, 100)
    times = calls.times("a")
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.005, 0.01, 0.02])
    assert recorder.results == {"error": 3, "success": 1}
    assert recorder.errors == {False: 3}
    assert controller.queue.num_requeues("a") == 0  # forgotten after the success


async def test_a_retryable_failure_is_due_at_requeue_after_whatever_the_backoff() -> None:
    """A pass whose writes keep failing (a quota refusing two instances) backs off, but
    its plan is due again at ``requeue_after`` (metrics, a pending period) at the latest:
    the instances that run keep being resized. Without it the backoff (client-go's, to
    1,000 s) set the pace, and the gaps doubled."""
    calls = Calls()

    async def reconcile(key: str) -> Result:
        calls.at.append((key, asyncio.get_running_loop().time()))
        raise WritesFailed.of(["create orders-4: 403 Forbidden: exceeded quota"], requeue_after=30)

    controller, recorder = controller_for(reconcile, backoff=60.0)  # grown past 30 s
    controller.enqueue("a")
    await run_for(controller, 95)
    gaps = [b - a for a, b in itertools.pairwise(calls.times("a"))]
    assert gaps == pytest.approx([30, 30, 30])
    assert recorder.errors == {False: 4}


async def test_terminal_error_is_not_retried() -> None:
    calls = Calls()

    async def reconcile(key: str) -> Result:
        calls.at.append((key, 0.0))
        raise errors.TerminalError("spec is invalid")

    controller, recorder = controller_for(reconcile)
    controller.enqueue("a")
    await run_for(controller, 1000)
    assert len(calls.at) == 1
    assert recorder.errors == {True: 1}


async def test_conflict_is_retried_quickly_without_counting_an_error() -> None:
    calls = Calls()

    async def reconcile(key: str) -> Result:
        calls.at.append((key, asyncio.get_running_loop().time()))
        if len(calls.at) == 1:
            raise errors.Conflict(status=409, message="the object has been modified")
        return Result()

    controller, recorder = controller_for(reconcile)
    controller.enqueue("a")
    await run_for(controller, 10)
    times = calls.times("a")
    assert len(times) == 2
    assert times[1] - times[0] == pytest.approx(0.005)
    assert recorder.results == {"requeue": 1, "success": 1}
    assert not recorder.errors


async def test_workers_run_keys_concurrently_but_never_one_key_twice() -> None:
    running: Counter[str] = Counter()
    peak_total = 0
    peak_per_key = 0
    done: list[str] = []
    controller: Controller[str]

    async def reconcile(key: str) -> Result:
        nonlocal peak_total, peak_per_key
        running[key] += 1
        peak_total = max(peak_total, sum(running.values()))
        peak_per_key = max(peak_per_key, running[key])
        if len(done) == 0:
            controller.enqueue(key)  # dirtied while processing: must wait for done
        await asyncio.sleep(1)
        running[key] -= 1
        done.append(key)
        return Result()

    controller, _ = controller_for(reconcile, workers=3)
    for key in "abcdef":
        controller.enqueue(key)
    await run_for(controller, 10)
    assert peak_total == 3
    assert peak_per_key == 1
    assert sorted(done) == sorted("abcdef" + "abc")


async def test_watches_enqueues_old_and_new_owner_keys_through_a_predicate() -> None:
    async def reconcile(key: str) -> Result:
        return Result()

    controller, _ = controller_for(reconcile)
    store: Store[Obj] = Store()
    controller.watches(
        store,
        keys=lambda o: [o.owner] if o.owner else [],
        predicate=lambda old, new: new is None or new.name != "ignored",
    )
    store.upsert(Obj("ns", "d", "1", owner="x"))
    store.upsert(Obj("ns", "d", "2", owner="y"))
    store.upsert(Obj("ns", "ignored", "3", owner="z"))
    assert [await controller.queue.get() for _ in range(2)] == ["x", "y"]
    assert len(controller.queue) == 0
    controller.queue.done("x")
    controller.queue.done("y")
    store.delete(ObjectKey("ns", "d"))
    assert await controller.queue.get() == "y"


async def test_classified_failures_log_one_line_and_only_bugs_a_traceback() -> None:
    """A refused write is retried every few seconds for as long as it is refused: its log
    line must say what failed, not carry a traceback each time. A bug keeps its traceback."""
    failures: dict[str, Exception] = {
        "writes": WritesFailed("create c-0: 422 Invalid: spec.template: bad"),
        "api": errors.ServerError(status=503, message="etcd leader changed"),
        "timeout": TimeoutError(),
        "bug": ZeroDivisionError("division by zero"),
    }

    async def reconcile(key: str) -> Result:
        raise failures[key]

    controller, _ = controller_for(reconcile, workers=4)
    with capture_logs() as logs:
        for key in failures:
            controller.enqueue(key)
        await run_for(controller, 0.05)
    traced = {e["key"]: e["exc_info"] for e in logs if e["event"] == "reconcile failed; will retry"}
    assert traced == {"writes": False, "api": False, "timeout": False, "bug": True}


async def test_a_new_key_waits_only_for_the_running_pass_while_converged_keys_are_woken() -> None:
    """Fairness: four converged keys are woken again and again (their own writes,
    another controller's updates) while one worker is busy; a key that has not had a
    pass yet gets the worker as soon as the running pass ends, not after all of them."""
    loop = asyncio.get_running_loop()
    started: list[tuple[str, float]] = []
    converged = ("a", "b", "c", "d")

    async def reconcile(key: str) -> Result:
        started.append((key, loop.time()))
        await asyncio.sleep(1.0)
        return Result()

    controller, _ = controller_for(reconcile, workers=1)

    async def wake_converged() -> None:
        while True:
            for key in converged:
                controller.enqueue(key)
            await asyncio.sleep(0.3)

    waker = asyncio.create_task(wake_converged())
    loop.call_later(5.05, controller.enqueue, "new")
    await run_for(controller, 12.0)
    waker.cancel()
    new = [t for k, t in started if k == "new"]
    assert new, started
    # The pass running at 5.05 ends at 6.0 (every pass starts on a whole second here).
    assert new[0] == pytest.approx(6.0)


async def test_a_sliced_pass_lets_a_waiting_key_in_after_one_slice() -> None:
    """``Result(requeue=True)``: a key with a long wave of work does it in slices of one
    pass each; a key that came meanwhile gets the (only) worker after the running slice,
    not after the whole wave, and the wave then goes on to its end."""
    loop = asyncio.get_running_loop()
    started: list[tuple[str, float]] = []
    left = {"wave": 10}

    async def reconcile(key: str) -> Result:
        started.append((key, loop.time()))
        await asyncio.sleep(1.0)
        if key == "wave":
            left["wave"] -= 1
            return Result(requeue=left["wave"] > 0)
        return Result()

    controller, recorder = controller_for(reconcile, workers=1)
    controller.enqueue("wave")
    loop.call_later(0.5, controller.enqueue, "late")
    await run_for(controller, 30.0)
    assert [t for k, t in started if k == "late"] == [pytest.approx(1.0)]
    assert left["wave"] == 0
    assert recorder.results == {"requeue": 9, "success": 2}
