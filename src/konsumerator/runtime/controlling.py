"""Workers that drain a work queue through ``reconcile(key) -> Result``.

The contract is controller-runtime's: reconcile is level-based. It gets a key,
reads the current state of the world (from caches), makes it right, and says
when it wants to look again. It is never told *what* changed, so a missed or
coalesced event cannot make it wrong.

What happens after a reconcile:

==============================  ==============================================
outcome                         queue action (and ``result`` label)
==============================  ==============================================
``Result()``                    ``forget`` (reset backoff) — ``success``
``Result(requeue_after=s)``     ``forget``, ``add_after(s)`` — ``requeue_after``
``Result(requeue=True)``        ``forget``, ``add`` now — ``requeue``: the
                                reconcile did part of its work and wants the
                                rest done; the key goes back behind every key
                                served less recently (``WorkQueue``), so the
                                others get their turn first.
raises ``Conflict``             rate-limited requeue, logged at debug —
                                ``requeue``. The cache is behind the server;
                                the first retry is after 5 ms and repeats back
                                off, so a slow cache cannot become a hot loop.
raises ``TerminalError``        ``forget``, no requeue — ``error``. Retrying
                                cannot help until the object changes (which
                                enqueues it again); the reconciler reports it.
raises ``Retryable``            rate-limited requeue — ``error``, one log
                                line (the reconciler reported the cause);
                                with ``requeue_after``, due then at the
                                latest (``add_after``: earliest wins).
raises anything else            rate-limited requeue — ``error``, logged
                                with its traceback (a bug).
==============================  ==============================================

Per-key exclusivity comes from the queue: two workers never reconcile the
same key at once, so a reconciler needs no locks of its own for one object.

Every reconcile gets a fresh id, bound with the controller's name and the key
into structlog's context variables for as long as it runs (controller-runtime's
``reconcileID``). Every line logged during it, by the reconciler, the kube
writer, the Prometheus client or the controller's own outcome line, carries
them, also from the tasks and threads it starts (they copy the context); lines
of other reconciles and of everything else do not. A retry is a new reconcile
with a new id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

import structlog

from konsumerator.runtime import errors
from konsumerator.runtime.clocks import Clock, loop_clock
from konsumerator.runtime.observing import NULL_OBSERVER, Observer
from konsumerator.runtime.ports import P
from konsumerator.runtime.queueing import ShutDown, WorkQueue
from konsumerator.runtime.results import Result as Result  # where it was defined before
from konsumerator.runtime.stores import Store

K = TypeVar("K", bound=Hashable)

log = structlog.stdlib.get_logger(__name__)


Reconciler = Callable[[K], Awaitable[Result]]


def new_reconcile_id() -> str:
    """A fresh random id for one reconcile (tests inject a deterministic factory)."""
    return uuid.uuid4().hex


class Controller(Generic[K]):
    def __init__(
        self,
        *,
        name: str,
        reconcile: Reconciler[K],
        queue: WorkQueue[K] | None = None,
        max_concurrent_reconciles: int = 4,
        reconcile_timeout: float | None = None,
        clock: Clock = loop_clock,
        observer: Observer = NULL_OBSERVER,
        reconcile_ids: Callable[[], str] = new_reconcile_id,
    ) -> None:
        if max_concurrent_reconciles < 1:
            raise ValueError("max_concurrent_reconciles must be at least 1")
        self.name = name
        # Not ``queue or ...``: an empty WorkQueue is falsy (it has a length).
        self.queue: WorkQueue[K] = (
            queue if queue is not None else WorkQueue(name=name, clock=clock, observer=observer)
        )
        self._reconcile = reconcile
        self._workers = max_concurrent_reconciles
        self._timeout = reconcile_timeout
        self._clock = clock
        self._observer = observer
        self._reconcile_ids = reconcile_ids

    def enqueue(self, key: K) -> None:
        """Ask for a reconcile of ``key`` (coalesced with pending ones)."""
        self.queue.add(key)

    def watches(
        self,
        store: Store[P],
        *,
        keys: Callable[[P], Iterable[K]],
        predicate: Callable[[P | None, P | None], bool] | None = None,
        batch_s: float = 0.0,
    ) -> Callable[[], None]:
        """Enqueue ``keys(obj)`` for the old *and* the new object of every change.

        Both sides matter: a Deployment whose owner changed must wake its old
        owner (which lost a child) and its new one. ``predicate(old, new)``
        can drop changes that cannot matter (e.g. status-only updates of the
        primary object). With ``batch_s``, a burst of changes is one reconcile, at
        most ``batch_s`` after the first (``WorkQueue.add_batched``): for secondary
        objects, whose events come in bursts (a pass's own writes, another
        controller's updates). Returns the unsubscribe function.
        """

        def on_change(old: P | None, new: P | None) -> None:
            if predicate is not None and not predicate(old, new):
                return
            seen: set[K] = set()
            for obj in (old, new):
                if obj is None:
                    continue
                for key in keys(obj):
                    if key in seen:
                        continue
                    seen.add(key)
                    if batch_s > 0:
                        self.queue.add_batched(key, batch_s)
                    else:
                        self.queue.add(key)

        return store.subscribe(on_change)

    async def run(self) -> None:
        """Run the workers until cancelled (or the queue is shut down and drained).

        Cancellation interrupts in-flight reconciles; the manager cancels
        controllers before it releases leadership, so nothing writes after a
        successor may have started.
        """
        try:
            async with asyncio.TaskGroup() as group:
                for n in range(self._workers):
                    group.create_task(self._work(), name=f"{self.name}-worker-{n}")
        finally:
            self.queue.shutdown()

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: K) -> None:
        # The worker task's own context: concurrent reconciles cannot see each other's
        # binding, and the previous values are restored on the way out.
        with structlog.contextvars.bound_contextvars(
            controller=self.name,
            key=str(key),
            reconcileID=self._reconcile_ids(),
            # How long the key waited for a worker (fairness shows in the logs).
            waited_s=round(self.queue.waited_for_worker(key), 3),
        ):
            await self._reconcile_and_requeue(key)

    async def _reconcile_and_requeue(self, key: K) -> None:
        started = self._clock()
        label: str | None = "error"
        try:
            async with asyncio.timeout(self._timeout):
                result = await self._reconcile(key)
        except asyncio.CancelledError:
            label = None  # shutting down: not a result of the reconcile
            raise
        except errors.TerminalError as exc:
            self.queue.forget(key)
            self._observer.reconcile_errored(controller=self.name, terminal=True)
            log.error("reconcile failed terminally", controller=self.name, key=str(key), error=exc)
        except errors.Conflict as exc:
            label = "requeue"
            self.queue.add_rate_limited(key)
            log.debug("reconcile hit a conflict", controller=self.name, key=str(key), error=exc)
        except Exception as exc:
            self.queue.add_rate_limited(key)
            due = exc.requeue_after if isinstance(exc, errors.Retryable) else None
            if due is not None and due > 0:
                self.queue.add_after(key, due)
            self._observer.reconcile_errored(controller=self.name, terminal=False)
            log.warning(
                "reconcile failed; will retry",
                controller=self.name,
                key=str(key),
                retries=self.queue.num_requeues(key),
                error=repr(exc),
                # A traceback only for what nobody classified: a bug.
                exc_info=not isinstance(exc, errors.ApiError | errors.Retryable | TimeoutError),
            )
        else:
            self.queue.forget(key)
            if result.requeue:
                label = "requeue"
                self.queue.add(key)
            elif result.requeue_after is not None and result.requeue_after > 0:
                label = "requeue_after"
                self.queue.add_after(key, result.requeue_after)
            else:
                label = "success"
        finally:
            if label is not None:
                self._observer.reconcile_finished(
                    controller=self.name, result=label, seconds=self._clock() - started
                )
