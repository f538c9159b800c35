"""A de-duplicating work queue of keys, with client-go's semantics.

Controllers queue *keys*, not events: ten changes to one object before a
worker gets to it are one reconcile of its latest state (level triggering).

Invariants (client-go ``workqueue.Type``):

- ``dirty``: keys waiting to be processed. Adding a dirty key again is a no-op
  (coalescing). Every dirty key that is not being processed is in ``queue``
  exactly once.
- Order (where this queue differs from client-go's FIFO): the ready key that
  was *served least recently* goes first; keys never served (or served so long
  ago that the queue forgot them, see ``MEMORY``) go before every other, in
  order of their first add. So a key waiting for a worker is never overtaken
  by keys that were served after it last was: a Consumer that has not had its
  pass waits at most for the passes already running, however often converged
  ones are woken again (a FIFO lets a key re-added just before it go first,
  pass after pass).
- ``processing``: keys handed out by ``get`` and not yet ``done``. A key is
  never handed to two workers at once. Adding a key while it is processed
  only marks it dirty; ``done`` puts it back in the queue, so the change that
  arrived mid-reconcile is never lost.
- ``add_after``: a key becomes dirty after a delay. A key waits at most once;
  a new, earlier deadline replaces a later one ("earliest wins"), a later one
  is ignored.
- ``add_batched``: ``add_after`` for a burst of events: a key that is
  already dirty is left alone (the pending pass reads the latest state), any
  other is due ``window`` seconds after the *first* event of the burst (earliest
  wins), so a burst becomes one pass and none waits longer than ``window``.
- ``add_rate_limited``: ``add_after`` with the rate limiter's delay for this
  key (per-key exponential backoff and a shared token bucket); ``forget``
  resets the key's backoff after a success.
- ``shutdown``: no more adds, pending and delayed keys are dropped, ``get``
  raises ``ShutDown``; keys being processed finish normally (a stopping
  controller lets in-flight reconciles complete and starts no new ones; the
  next leader lists everything again anyway).

Time comes from the running event loop (delays are ``loop.call_at`` timers),
so a test loop with virtual time runs a 1000 s backoff instantly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

from konsumerator.runtime.clocks import Clock, loop_clock
from konsumerator.runtime.limiting import RateLimiter, default_controller_rate_limiter
from konsumerator.runtime.observing import NULL_OBSERVER, Observer

K = TypeVar("K", bound=Hashable)


# How many keys' last service the queue remembers. Forgetting the oldest is harmless:
# a forgotten key ranks as never served, which is where the oldest served keys rank
# anyway (behind no one that was served after them).
MEMORY: Final = 65_536
# The rank of a key never served (or forgotten): before every served one.
_NEVER: Final = -1


class ShutDown(Exception):
    """The queue was shut down and is empty."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        name: str,
        rate_limiter: RateLimiter | None = None,
        clock: Clock = loop_clock,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.name = name
        self._limiter = (
            rate_limiter
            if rate_limiter is not None
            else default_controller_rate_limiter(clock=clock)
        )
        self._clock = clock
        self._observer = observer
        # Ready keys as (rank of its last service, order of its add, key): a heap. A key
        # is in it at most once and its rank cannot change while it is (it is not served).
        self._queue: list[tuple[int, int, K]] = []
        # The service number of each key's last ``get``, oldest first (re-inserted on
        # every ``get``), at most MEMORY of them.
        self._served: dict[K, int] = {}
        self._services = itertools.count()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        # When each dirty key was added (for workqueue_queue_duration_seconds).
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        # When each ready key became ready (pushed to ``_queue``), and how long each key
        # handed out last waited there: its wait for a worker, not counting the time it
        # was dirty while its previous pass still ran (which the histogram counts).
        self._ready_at: dict[K, float] = {}
        self._waited: dict[K, float] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        # Delayed adds: the ready time per key, plus a heap with lazy deletion.
        self._waiting: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- introspection -----------------------------------------------------

    def __len__(self) -> int:
        """Keys ready to be handed out (workqueue_depth)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def is_dirty(self, key: K) -> bool:
        return key in self._dirty

    def waiting(self) -> dict[K, float]:
        """Delayed keys and when (loop time) they become ready."""
        return dict(self._waiting)

    def waited_for_worker(self, key: K) -> float:
        """How long ``key``, just handed out by ``get``, waited for a worker: from when it
        was ready (added, or done with a change pending) to ``get``."""
        return self._waited.get(key, 0.0)

    def num_requeues(self, key: K) -> int:
        return self._limiter.num_requeues(key)

    # -- adding ------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._added_at[key] = self._clock()
        self._observer.queue_added(queue=self.name)
        if key in self._processing:
            return
        self._push(key)
        self._report_depth()
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready = self._clock() + delay
        current = self._waiting.get(key)
        if current is not None and current <= ready:
            return
        self._waiting[key] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), key))
        self._arm()

    def add_batched(self, key: K, window: float) -> None:
        """Add ``key`` within ``window`` seconds, with whatever else comes for it meanwhile."""
        if key in self._dirty:
            return
        self.add_after(key, window)

    def add_rate_limited(self, key: K) -> None:
        self._observer.queue_retried(queue=self.name)
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        self._limiter.forget(key)

    # -- consuming ---------------------------------------------------------

    async def get(self) -> K:
        """The next key, now marked processing; raises ShutDown after ``shutdown``."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # If we were woken and cancelled at once, pass the wake-up on.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                raise
            finally:
                if waiter in self._getters:
                    self._getters.remove(waiter)
        _, _, key = heapq.heappop(self._queue)
        self._served.pop(key, None)
        self._served[key] = next(self._services)
        if len(self._served) > MEMORY:
            del self._served[next(iter(self._served))]
        self._processing.add(key)
        self._dirty.discard(key)
        now = self._clock()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._observer.queue_waited(queue=self.name, seconds=now - added)
        self._started_at[key] = now
        ready = self._ready_at.pop(key, None)
        self._waited[key] = 0.0 if ready is None else now - ready
        self._report_depth()
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        self._waited.pop(key, None)
        if self._shutting_down:
            self._started_at.pop(key, None)
            return
        started = self._started_at.pop(key, None)
        if started is not None:
            self._observer.queue_worked(queue=self.name, seconds=self._clock() - started)
        if key in self._dirty:
            self._push(key)
            self._report_depth()
            self._wake_one()

    def shutdown(self) -> None:
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._added_at.clear()
        self._ready_at.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.clear()
        self._heap.clear()
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- internals ---------------------------------------------------------

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _push(self, key: K) -> None:
        rank = self._served.get(key, _NEVER)
        self._ready_at[key] = self._clock()
        heapq.heappush(self._queue, (rank, next(self._seq), key))

    def _report_depth(self) -> None:
        self._observer.queue_depth(queue=self.name, depth=len(self._queue))

    def _arm(self) -> None:
        """Make sure a timer fires at the earliest live deadline."""
        while self._heap and self._waiting.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded entry
        if not self._heap:
            return
        earliest = self._heap[0][0]
        if self._timer is not None and self._timer_at is not None and self._timer_at <= earliest:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        # The clock and the loop may differ (a test clock); convert to a delay.
        self._timer = loop.call_later(max(0.0, earliest - self._clock()), self._fire)
        self._timer_at = earliest

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            ready, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == ready:
                del self._waiting[key]
                self.add(key)
        self._arm()
