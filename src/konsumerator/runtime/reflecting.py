"""Keep a Store equal to the API server's state: LIST, then WATCH, forever.

This is client-go's reflector (and kube-rs's ``watcher`` + ``reflector``):

1. LIST gives a complete snapshot and the resourceVersion (RV) it was taken at;
   ``Store.replace`` makes the cache equal to it (emitting deletes for keys that
   vanished while we were not watching) and marks it synced.
2. WATCH from that RV streams every later change. Each event moves our RV
   forward, so when the stream ends we resume from where we were, without a
   new LIST.

Why bookmarks: a watch on a quiet resource (our Deployments change rarely)
sees no events, and our RV stays at the LIST's. Meanwhile etcd compacts, and
the next re-watch from that old RV fails with 410 and forces an expensive
relist. With ``allowWatchBookmarks`` the server periodically sends BOOKMARK
events carrying a fresh RV; we just move our RV forward. Bookmarks also keep
idle connections alive through proxies and load balancers.

Why a client-side watchdog: a watch stream can die without closing (a NAT
table drops the flow, the apiserver behind a load balancer goes away). Then
the socket stays open and the reads block forever, while the cache silently
goes stale (kopf#1276, kubespawner#209). The server promises to end every
watch after ``timeoutSeconds``; if nothing at all arrives for longer than
that plus a margin, the stream is dead and we restart it.

Why also a shorter silence limit: the server's timeout is minutes long (the re-watch
spreads it over [T, 2T), 5 to 10 min here), so a watch whose connection died without a
word (the apiserver's host gone, a NAT table flushed: no FIN, no RST; this transport
has no HTTP/2 ping) or whose server stalls mid-event left the cache stale for up to
10.5 min. But kube-apiserver sends every watcher that allows bookmarks a BOOKMARK about
every minute (its watch cache's bookmark frequency; measured on 1.36 with an idle
watch: the first after 120 s, then one every 60 s). So a watch that has heard nothing
for ``SILENCE_S`` (3 min) is dead, and is restarted from its last version like a
watchdog expiry. A server that sends no periodic bookmarks (its watch cache disabled)
only has its quiet watches restarted every 3 min: one cheap request, no relist.

Why relist on Gone: 410 means the server no longer has the history after our
RV. The only consistent recovery is a new snapshot; ``replace`` turns it into
the right add/update/delete notifications, so controllers recover too.

Failures back off exponentially with jitter (0.8 s doubling to 30 s) and
honour ``Retry-After`` on 429 up to a minute (``RETRY_AFTER_CAP_S``: the value
comes from the server or a proxy in front of it, and an hour of it would
silence the watch, and the operator with it), so a struggling API server is
not hammered by every replica at once. A clean end of the stream, a watchdog
restart and a 410 resume immediately: none of them is the server's fault.
Only watch events reset the backoff, not a successful LIST, so a server that
keeps failing right after each LIST is relisted less and less often.

Unless the server does it at once, again and again, which only a misbehaving
server (or proxy) does; then resuming at once would send requests as fast as
the loop runs, a full LIST each time for a 410. So, as client-go has it, a
watch that ends cleanly within ``VERY_SHORT_WATCH_S`` without a single event
(client-go's "very short watch") backs off before the next, and so does the
relist after a 410 answered to the version a LIST has just given, before any
event came, from the second time on: one 410 (after a quiet spell, the usual
one, or even right after a LIST) still relists at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import Final, Generic

import structlog

from konsumerator.runtime import errors
from konsumerator.runtime.clocks import Clock, loop_clock
from konsumerator.runtime.limiting import Backoff
from konsumerator.runtime.observing import NULL_OBSERVER, Observer
from konsumerator.runtime.ports import EventType, ListWatchSource, P, WatchEvent
from konsumerator.runtime.stores import ObjectKey, Store, key_of

log = structlog.stdlib.get_logger(__name__)


# The longest ``Retry-After`` honoured on a 429 (the backoff still applies).
RETRY_AFTER_CAP_S: Final = 60.0
# The longest a live watch goes without an event when the server sends bookmarks
# (about every minute, the first after two): past it, the watch is restarted.
SILENCE_S: Final = 180.0
# A watch that ends cleanly sooner than this with no event was not a watch.
VERY_SHORT_WATCH_S: Final = 1.0


class WatchdogExpired(Exception):
    """Nothing arrived on the watch for longer than the server's own timeout."""


class VeryShortWatch(Exception):
    """The watch ended cleanly at once without an event (client-go's "very short watch")."""


def honoured_retry_after(retry_after: float | None) -> float:
    """``Retry-After`` within [0, ``RETRY_AFTER_CAP_S``]; infinite counts as the cap."""
    if retry_after is None or math.isnan(retry_after):
        return 0.0
    return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)


class Reflector(Generic[P]):
    def __init__(
        self,
        *,
        name: str,
        source: ListWatchSource[P],
        store: Store[P],
        timeout_seconds: int = 300,
        watchdog_margin: float = 30.0,
        silence_s: float | None = SILENCE_S,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock = loop_clock,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.name = name
        self.store = store
        self._source = source
        self._timeout_seconds = timeout_seconds
        self._watchdog_margin = watchdog_margin
        # None: no periodic bookmarks expected; only the server's timeout bounds silence.
        self._silence_s = silence_s
        self._rng = rng or random.Random()
        self._backoff = backoff if backoff is not None else Backoff(rng=self._rng)
        self._clock = clock
        self._observer = observer
        self._resource_version: str | None = None
        self._last_progress: float | None = None
        # Whether the watch running (or the last one) has delivered an event.
        self._delivered = False

    @property
    def resource_version(self) -> str | None:
        """The RV the next watch resumes from; None means "relist first"."""
        return self._resource_version

    @property
    def has_synced(self) -> bool:
        return self.store.has_synced

    def stalled(self, *, now: float) -> bool:
        """No successful list, event or clean watch end for two watch lifetimes.

        A healthy reflector makes progress at least once per watch (the server
        ends it after ``timeoutSeconds``), so twice the watchdog period without
        any means it is stuck in failures; ``/healthz`` reports that.
        """
        if self._last_progress is None:
            return False
        limit = 2 * (2 * self._timeout_seconds + self._watchdog_margin)
        return now - self._last_progress > limit

    async def run(self) -> None:
        """Run until cancelled. Never returns normally and never raises on API errors."""
        self._last_progress = self._clock()
        listed = False
        while True:
            try:
                listed = self._resource_version is None
                if listed:
                    await self._list()
                started = self._clock()
                await self._watch(resource_version=self._resource_version or "")
                if not self._delivered and self._clock() - started < VERY_SHORT_WATCH_S:
                    raise VeryShortWatch
                # Clean end: the server's timeout. Resume right away.
                self._progress()
                self._observer.watch_restarted(reflector=self.name, reason="timeout")
            except errors.Gone:
                log.info("watch expired; relisting", reflector=self.name)
                self._observer.watch_restarted(reflector=self.name, reason="gone")
                self._resource_version = None
                if listed and not self._delivered:
                    # The version just listed is already gone. Once may be a race (the
                    # LIST served from a cache about to be compacted): relist at once;
                    # again, before any event came, is a server in trouble.
                    delay = self._backoff.next()
                    if self._backoff.attempts > 1:
                        await asyncio.sleep(delay)
            except VeryShortWatch:
                delay = self._backoff.next()
                log.warning(
                    "watch ended at once without an event; backing off",
                    reflector=self.name,
                    delay=round(delay, 3),
                )
                self._observer.watch_restarted(reflector=self.name, reason="short")
                await asyncio.sleep(delay)
            except WatchdogExpired:
                log.warning("watch silent past its deadline; restarting", reflector=self.name)
                self._observer.watch_restarted(reflector=self.name, reason="watchdog")
            except errors.TooManyRequests as exc:
                delay = max(honoured_retry_after(exc.retry_after), self._backoff.next())
                log.info("throttled by the API server", reflector=self.name, delay=delay)
                self._observer.watch_restarted(reflector=self.name, reason="throttled")
                await asyncio.sleep(delay)
            except Exception as exc:
                delay = self._backoff.next()
                log.warning(
                    "list/watch failed; backing off",
                    reflector=self.name,
                    error=repr(exc),
                    delay=round(delay, 3),
                )
                self._observer.watch_restarted(reflector=self.name, reason="error")
                await asyncio.sleep(delay)

    def _progress(self) -> None:
        self._last_progress = self._clock()

    async def _list(self) -> None:
        listing = await self._source.list()
        self.store.replace(listing.items)
        self._resource_version = listing.resource_version
        self._progress()
        self._observer.relisted(reflector=self.name, objects=len(listing.items))
        log.debug("listed", reflector=self.name, objects=len(listing.items))

    async def _watch(self, *, resource_version: str) -> None:
        # client-go spreads re-watches over [timeout, 2*timeout) so that all
        # reflectors of all replicas do not reconnect in the same second.
        timeout = int(self._timeout_seconds * (1.0 + self._rng.random()))
        inactivity = timeout + self._watchdog_margin
        if self._silence_s is not None:
            inactivity = min(inactivity, self._silence_s)
        loop = asyncio.get_running_loop()
        self._delivered = False
        stream = self._source.watch(resource_version=resource_version, timeout_seconds=timeout)
        async with contextlib.aclosing(stream):
            deadline = asyncio.timeout(loop.time() + inactivity)
            try:
                async with deadline:
                    async for event in stream:
                        deadline.reschedule(loop.time() + inactivity)
                        self._apply(event)
            except TimeoutError:
                if deadline.expired():
                    raise WatchdogExpired from None
                raise

    def _apply(self, event: WatchEvent[P]) -> None:
        self._delivered = True
        if event.type is EventType.BOOKMARK:
            pass
        elif event.object is None:
            log.warning("watch event without an object", reflector=self.name, type=event.type)
        elif event.type is EventType.DELETED:
            self.store.delete(key_of(event.object))
        else:
            self.store.upsert(event.object)
        if event.resource_version:
            self._resource_version = event.resource_version
        # A watch that delivers events is healthy again: the next failure
        # starts backing off from the beginning.
        self._backoff.reset()
        self._progress()


__all__ = ["ObjectKey", "Reflector", "VeryShortWatch", "WatchdogExpired"]
