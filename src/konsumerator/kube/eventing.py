"""Kubernetes Events for humans, aggregated and rate-limited (core/v1).

A reconcile loop that fails the same way every few seconds must not create an
Event every few seconds: etcd fills up and ``kubectl describe`` becomes
unreadable. Like client-go's recorder we

- aggregate: the same (object, type, reason, message) within ``window``
  seconds bumps ``count`` and ``lastTimestamp`` of the existing Event with one
  merge patch instead of creating a new one;
- rate-limit per object: a token bucket (burst 25, one token per 5 minutes,
  client-go's defaults) drops what exceeds it, with a debug log.

Event failures are logged and swallowed: an Event is a courtesy, never a
reason to fail or retry a reconcile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from konsumerator.api import keys
from konsumerator.kube.leases import micro_time
from konsumerator.kube.resources import EVENTS
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors
from konsumerator.runtime.clocks import Clock, WallClock, utc_now
from konsumerator.runtime.limiting import TokenBucket

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class InvolvedObject:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass
class _Seen:
    event_name: str
    count: int
    first: datetime
    last_monotonic: float


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
        burst: int = 25,
        qps: float = 1.0 / 300.0,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self._writer = writer
        self._component = component
        self._instance = instance
        self._window = window
        self._burst = burst
        self._qps = qps
        self._clock = clock
        self._wall_clock = wall_clock
        self._seen: dict[tuple[str, str, str, str], _Seen] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self.dropped = 0

    async def record(self, *, obj: InvolvedObject, type: str, reason: str, message: str) -> None:
        """Emit (or aggregate) one Event; never raises API errors."""
        bucket = self._bucket(obj.uid or f"{obj.namespace}/{obj.name}")
        if not bucket.try_take():
            self.dropped += 1
            log.debug("event dropped by rate limit", reason=reason, object=obj.name)
            return
        key = (obj.uid, type, reason, message)
        now = self._wall_clock()
        seen = self._seen.get(key)
        try:
            if seen is not None and self._clock() - seen.last_monotonic < self._window:
                seen.count += 1
                seen.last_monotonic = self._clock()
                await self._writer.merge_patch(
                    resource=EVENTS,
                    namespace=obj.namespace,
                    name=seen.event_name,
                    patch={"count": seen.count, "lastTimestamp": _rfc3339(now)},
                )
                return
            name = f"{obj.name}.{time.time_ns():x}"
            await self._writer.create(
                resource=EVENTS,
                namespace=obj.namespace,
                body=self._body(obj, name, type, reason, message, now),
            )
            self._seen[key] = _Seen(
                event_name=name, count=1, first=now, last_monotonic=self._clock()
            )
        except errors.ApiError as exc:
            # A patch of an Event that expired (1 h TTL) 404s: start afresh next time.
            self._seen.pop(key, None)
            log.warning("could not record event", reason=reason, object=obj.name, error=repr(exc))

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(qps=self._qps, burst=self._burst, clock=self._clock)
            self._buckets[key] = bucket
        return bucket

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
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
        }
