"""Per-Consumer cache of complete snapshots, refreshed every `minSyncPeriod`.

Each reconcile of a Consumer asks the provider for metrics. Prometheus is
queried only when there is no snapshot yet or the last one is older than the
Consumer's `minSyncPeriod` (strictly: `now - synced_at > period`, as in Go);
otherwise the cached snapshot is returned without any request. A refresh is
exactly three logical queries, four with the optional CPU-usage query
(see `fetching`).

Failure keeps the past: when a refresh fails, the last *complete* snapshot
stays in use, with its original `synced_at`, and the error is reported, so
the controller can surface it (condition, event) and keep sizing from the
most recent data it trusts. The next reconcile retries.

Restarts: the operator persists `lastSyncTime`/`lastSyncState` in the
Consumer status; `seed` loads them at startup so a restarted (or newly
elected) operator does not re-query every Consumer at once. `forget` drops a
deleted Consumer.

Time is injected (`now`, timezone-aware) so tests and the controller agree
on one clock. A `synced_at` in the future (clock step, a status written by a
replica whose clock ran ahead) counts as stale: otherwise a bad timestamp
could freeze a Consumer's metrics until the clock caught up.

A cached snapshot is also stale when the Consumer's queries, addresses or
partition count changed since it was fetched, so spec edits take effect on
the next reconcile instead of after `minSyncPeriod`. A seeded snapshot has
no known origin and is attributed to the first config it is used with.

Concurrency: the work queue never runs two reconciles of one key at once,
but a per-key lock makes that an invariant here too; different keys proceed
in parallel. `forget` during an in-flight refresh wins: the late result is
not written back.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

import httpx2

from konsumerator.domain.metrics import MetricsSnapshot, refresh_due
from konsumerator.prom import fetching, observing
from konsumerator.prom.errors import PrometheusError
from konsumerator.prom.queries import PrometheusConfig
from konsumerator.prom.results import ProviderResult


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock
    snapshot: MetricsSnapshot | None = None
    synced_at: datetime | None = None
    # (config, num_partitions) the snapshot was fetched for; None = seeded.
    origin: tuple[PrometheusConfig, int] | None = None
    # What the snapshot's answers held that was not used as given (``FetchResult.problems``).
    problems: str | None = None


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


class MetricsProvider:
    def __init__(
        self,
        *,
        client: httpx2.AsyncClient,
        observer: observing.QueryObserver = observing.NULL_OBSERVER,
    ) -> None:
        self._client = client
        self._observer = observer
        self._entries: dict[str, _Entry] = {}

    def _entry(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(lock=asyncio.Lock())
        return entry

    def seed(self, *, key: str, snapshot: MetricsSnapshot, synced_at: datetime) -> None:
        """Adopt a persisted snapshot unless a newer one is already cached."""
        _require_aware("synced_at", synced_at)
        entry = self._entry(key)
        if entry.synced_at is not None and entry.synced_at >= synced_at:
            return
        entry.snapshot, entry.synced_at, entry.origin = snapshot, synced_at, None
        entry.problems = None

    def forget(self, *, key: str) -> None:
        self._entries.pop(key, None)

    def cached(self, *, key: str) -> ProviderResult:
        """The cached state without any I/O or refresh decision."""
        entry = self._entries.get(key)
        if entry is None:
            return ProviderResult(snapshot=None, synced_at=None, refreshed=False)
        return ProviderResult(
            snapshot=entry.snapshot,
            synced_at=entry.synced_at,
            refreshed=False,
            problems=entry.problems,
        )

    async def get(
        self,
        *,
        key: str,
        config: PrometheusConfig,
        num_partitions: int,
        min_sync_period_seconds: float,
        now: datetime,
    ) -> ProviderResult:
        _require_aware("now", now)
        entry = self._entry(key)
        async with entry.lock:
            origin = (config, num_partitions)
            if entry.snapshot is not None and entry.origin is None:
                entry.origin = origin  # a seeded snapshot: attribute it to this config
            if not _is_stale(
                entry=entry, origin=origin, min_sync_period_s=min_sync_period_seconds, now=now
            ):
                return ProviderResult(
                    snapshot=entry.snapshot,
                    synced_at=entry.synced_at,
                    refreshed=False,
                    problems=entry.problems,
                )
            try:
                result = await fetching.fetch_snapshot(
                    client=self._client,
                    config=config,
                    num_partitions=num_partitions,
                    observer=self._observer,
                )
            except PrometheusError as exc:
                return ProviderResult(
                    snapshot=entry.snapshot,
                    synced_at=entry.synced_at,
                    refreshed=False,
                    error=str(exc),
                    error_reason=exc.condition_reason,
                    problems=entry.problems,
                )
            problems = result.problems
            if self._entries.get(key) is entry:  # not forgotten meanwhile
                entry.snapshot, entry.synced_at, entry.origin = result.snapshot, now, origin
                entry.problems = problems
            return ProviderResult(
                snapshot=result.snapshot,
                synced_at=now,
                refreshed=True,
                fetch=result,
                problems=problems,
            )


def _is_stale(
    *, entry: _Entry, origin: tuple[PrometheusConfig, int], min_sync_period_s: float, now: datetime
) -> bool:
    if entry.snapshot is None or entry.synced_at is None or entry.origin != origin:
        return True
    # A snapshot from the future (a clock step back) would otherwise freeze the Consumer.
    return entry.synced_at > now or refresh_due(
        synced_at=entry.synced_at, now=now, min_sync_period_s=min_sync_period_s
    )
