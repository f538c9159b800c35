"""Kubernetes Events for humans, correlated like client-go's recorder (core/v1).

A reconcile loop that fails the same way every few seconds must not create an
Event every few seconds (etcd fills up, ``kubectl describe`` becomes
unreadable), and a pass that deletes 580 Deployments must neither create 580
Events nor go silent after the first few. Like client-go's EventCorrelator
(k8s.io/client-go tools/record/events_cache.go) we

- aggregate similar Events: per (object, type, reason), the first
  ``max_similar - 1`` distinct messages within ``window`` seconds are Events
  of their own; from the ``max_similar``-th on they fold into one Event whose
  message is "(combined from similar events): <latest message>" and whose
  count keeps rising, so the last deletion is still reported;
- deduplicate: the same Event again within ``window`` bumps ``count`` and
  ``lastTimestamp`` (and, for the combined one, ``message``) with one merge
  patch instead of a new object;
- rate-limit each distinct Event (its object, type, reason and message): a
  token bucket (burst 25, one token per 5 minutes, client-go's defaults).
  Only the same message repeated faster than that is dropped, with a debug
  log and a count in ``dropped``: a hot loop cannot flood the apiserver, and
  no later, different Event is ever lost to an earlier flood (a per-object
  bucket dropped everything after 25 Events on an object).

Caches are LRUs of ``cache_size`` entries (client-go: 4096), so the memory an
operator uses for Events is bounded whatever the number of objects.

A batch of Events on one object (``record_all``: a pass's writes) sends each
Event's update once, with its final count, instead of once per event.

Event failures are logged and swallowed: an Event is a courtesy, never a
reason to fail or retry a reconcile.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import structlog

from konsumerator.domain import keys
from konsumerator.kube.leases import micro_time
from konsumerator.kube.resources import EVENTS
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors
from konsumerator.runtime.clocks import Clock, WallClock, utc_now
from konsumerator.runtime.limiting import TokenBucket

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One Event to record on an object (``EventRecorder.record_all``)."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class InvolvedObject:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


COMBINED_PREFIX = "(combined from similar events): "
MAX_MESSAGE = 1024

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Similar:
    """Distinct messages seen for one (object, type, reason) within the window."""

    messages: set[str] = field(default_factory=set)
    last_monotonic: float = 0.0


@dataclass
class _Seen:
    event_name: str
    count: int
    last_monotonic: float


# The dedupe key of the combined Event: no real message is this.
_COMBINED = "\x00combined"


def _rfc3339(value: datetime) -> str:
    # Event first/lastTimestamp are metav1.Time: second precision.
    return (micro_time(value) or "").split(".")[0] + "Z"


class EventRecorder:
    def __init__(
        self,
        *,
        writer: Writer,
        component: str = keys.EVENT_SOURCE,
        instance: str = "",
        window: float = 600.0,
        max_similar: int = 10,
        burst: int = 25,
        qps: float = 1.0 / 300.0,
        cache_size: int = 4096,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self._writer = writer
        self._component = component
        self._instance = instance
        self._window = window
        self._max_similar = max_similar
        self._burst = burst
        self._qps = qps
        self._clock = clock
        self._wall_clock = wall_clock
        self._similar: _Lru[tuple[str, str, str], _Similar] = _Lru(cache_size)
        self._seen: _Lru[tuple[str, str, str, str], _Seen] = _Lru(cache_size)
        self._buckets: _Lru[tuple[str, str, str, str], TokenBucket] = _Lru(cache_size)
        self.dropped = 0

    def _aggregate(self, ident: str, type: str, reason: str, message: str) -> tuple[str, str]:
        """(dedupe message key, message to show): the message, or the combined one."""
        now = self._clock()
        similar = self._similar.get((ident, type, reason))
        if similar is None or now - similar.last_monotonic > self._window:
            similar = _Similar()
        similar.last_monotonic = now
        self._similar.put((ident, type, reason), similar)
        if message in similar.messages or len(similar.messages) + 1 < self._max_similar:
            similar.messages.add(message)
            return message, message
        return _COMBINED, (COMBINED_PREFIX + message)[:MAX_MESSAGE]

    def _allowed(self, key: tuple[str, str, str, str]) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(qps=self._qps, burst=self._burst, clock=self._clock)
            self._buckets.put(key, bucket)
        return bucket.try_take()

    async def record(self, *, obj: InvolvedObject, type: str, reason: str, message: str) -> None:
        """Emit (or aggregate) one Event; never raises API errors."""
        await self.record_all(
            obj=obj, events=[EventSpec(type=type, reason=reason, message=message)]
        )

    async def record_all(self, *, obj: InvolvedObject, events: Iterable[EventSpec]) -> None:
        """``record`` each of ``events`` in order, but send each Event's update once.

        The updates of one Event within the batch (its ``count``, ``lastTimestamp``,
        the combined message) are absolute values, so only the last one is sent: a pass
        that creates 1,000 Deployments makes 10 Event requests (9 Events of their own
        and the combined one), plus one patch with the final count, not 1,000. What the
        cluster shows at the end is what one ``record`` per event would have left.
        """
        patches: dict[tuple[str, str, str, str], tuple[str, dict[str, Any], str]] = {}
        for event in events:
            ident = obj.uid or f"{obj.namespace}/{obj.name}"
            local, text = self._aggregate(
                ident, event.type, event.reason, event.message[:MAX_MESSAGE]
            )
            # Rate-limited per distinct Event as shown, as client-go's spam filter.
            if not self._allowed((ident, event.type, event.reason, text)):
                self.dropped += 1
                log.debug("event dropped by rate limit", reason=event.reason, object=obj.name)
                continue
            key = (ident, event.type, event.reason, local)
            now = self._wall_clock()
            seen = self._seen.get(key)
            if seen is not None and self._clock() - seen.last_monotonic < self._window:
                seen.count += 1
                seen.last_monotonic = self._clock()
                patch: dict[str, Any] = {"count": seen.count, "lastTimestamp": _rfc3339(now)}
                if local == _COMBINED:
                    patch["message"] = text
                patches[key] = (seen.event_name, patch, event.reason)
                continue
            name = f"{obj.name}.{time.time_ns():x}"
            try:
                await self._writer.create(
                    resource=EVENTS,
                    namespace=obj.namespace,
                    body=self._body(obj, name, event.type, event.reason, text, now),
                )
            except errors.ApiError as exc:
                self._failed(key, reason=event.reason, obj=obj, exc=exc)
                continue
            self._seen.put(key, _Seen(event_name=name, count=1, last_monotonic=self._clock()))
        for key, (name, patch, reason) in patches.items():
            try:
                await self._writer.merge_patch(
                    resource=EVENTS, namespace=obj.namespace, name=name, patch=patch
                )
            except errors.ApiError as exc:
                self._failed(key, reason=reason, obj=obj, exc=exc)

    def _failed(
        self,
        key: tuple[str, str, str, str],
        *,
        reason: str,
        obj: InvolvedObject,
        exc: errors.ApiError,
    ) -> None:
        # A patch of an Event that expired (1 h TTL) 404s: start afresh next time.
        self._seen.pop(key)
        log.warning("could not record event", reason=reason, object=obj.name, error=repr(exc))

    def _body(
        self, obj: InvolvedObject, name: str, type: str, reason: str, message: str, now: datetime
    ) -> dict[str, Any]:
        stamp = _rfc3339(now)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": obj.namespace},
            "involvedObject": {
                "apiVersion": obj.api_version,
                "kind": obj.kind,
                "namespace": obj.namespace,
                "name": obj.name,
                "uid": obj.uid,
            },
            "type": type,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
        }
