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
not written back (the refresh is cancelled).

Patience: a refresh is a task of its own, and a caller waits for it at most
`patience_s`. Addresses are a Consumer author's choice, and one that accepts
connections and never answers keeps a refresh open for the whole query
timeout: awaited in the pass, that held one of the operator's few reconcile
workers for it, and a handful of such Consumers (one tenant's) made every
other Consumer wait that long for a worker. A refresh that outlasts the
patience raises `RefreshPending` and goes on alone; when it ends, `wake(key)`
asks for the Consumer's pass again, and that pass takes its result (also a
failed one: it is reported as if the first pass had waited). A refresh for a
config that changed meanwhile is dropped (cancelled) and a new one started.
Without `patience_s` (simulations, tests of one piece) `get` waits, as a
pass always did.
"""

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import httpx2

from konsumerator.domain.metrics import MetricsSnapshot, carry_offsets, refresh_due
from konsumerator.prom import fetching, observing
from konsumerator.prom.errors import PrometheusError
from konsumerator.prom.queries import PrometheusConfig
from konsumerator.prom.results import ProviderResult, RefreshPending

_Origin = tuple[PrometheusConfig, int]

# How long the operator's passes wait for a refresh: a healthy Prometheus answers the
# three queries in milliseconds (a 100,000-partition answer, ~10 MB, in well under a
# second); a refresh that takes longer costs a second pass, not a worker held for the
# query timeout.
REFRESH_PATIENCE_S: Final = 1.0


@dataclass(slots=True)
class _Refresh:
    """A refresh running (or ended and not yet taken by a pass) and what it is for."""

    origin: _Origin
    task: "asyncio.Task[ProviderResult]"


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock
    snapshot: MetricsSnapshot | None = None
    synced_at: datetime | None = None
    # (config, num_partitions) the snapshot was fetched for; None = seeded.
    origin: _Origin | None = None
    # What the snapshot's answers held that was not used as given (``FetchResult.problems``).
    problems: str | None = None
    # The refresh a pass started and did not wait out (``patience_s``).
    refresh: _Refresh | None = None


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


class MetricsProvider:
    def __init__(
        self,
        *,
        client: httpx2.AsyncClient,
        observer: observing.QueryObserver = observing.NULL_OBSERVER,
        patience_s: float | None = None,
        wake: Callable[[str], None] | None = None,
    ) -> None:
        """``patience_s``: how long ``get`` waits for a refresh before it raises
        ``RefreshPending`` (None: as long as it takes); ``wake(key)`` is then called
        when that refresh ends (see the module docstring)."""
        if patience_s is not None and not patience_s > 0:
            raise ValueError(f"patience_s must be positive, got {patience_s!r}")
        self._client = client
        self._observer = observer
        self._patience_s = patience_s
        self._wake = wake
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
        entry = self._entries.pop(key, None)
        if entry is not None and entry.refresh is not None:
            entry.refresh.task.cancel()

    def close(self) -> None:
        """Cancel every refresh still running (the operator is stopping)."""
        for entry in self._entries.values():
            if entry.refresh is not None:
                entry.refresh.task.cancel()

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
        """The snapshot to plan with, refreshed first when it is due (see the module
        docstring); ``RefreshPending`` when the refresh outlasts ``patience_s``."""
        _require_aware("now", now)
        entry = self._entry(key)
        async with entry.lock:
            origin = (config, num_partitions)
            refresh = entry.refresh
            if refresh is not None and refresh.origin != origin:
                # Started for a config the Consumer no longer has: its answer is not
                # this config's, and nobody waits for it any more.
                refresh.task.cancel()
                refresh = entry.refresh = None
            if refresh is None:
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
                if self._patience_s is None:
                    return await self._refresh(key=key, entry=entry, origin=origin, now=now)
                task = asyncio.create_task(
                    self._refresh(key=key, entry=entry, origin=origin, now=now),
                    name=f"prometheus refresh {key}",
                )
                refresh = entry.refresh = _Refresh(origin=origin, task=task)
            await asyncio.wait([refresh.task], timeout=self._patience_s)
            if not refresh.task.done():
                refresh.task.add_done_callback(functools.partial(self._ended, key))
                raise RefreshPending(key)
            entry.refresh = None
            return refresh.task.result()

    def _ended(self, key: str, task: "asyncio.Task[ProviderResult]") -> None:
        """A refresh no pass waited for has ended: its Consumer's pass takes it."""
        if task.cancelled() or self._wake is None:
            return
        entry = self._entries.get(key)
        if entry is not None and entry.refresh is not None and entry.refresh.task is task:
            self._wake(key)

    async def _refresh(
        self, *, key: str, entry: _Entry, origin: _Origin, now: datetime
    ) -> ProviderResult:
        """Query Prometheus for ``origin``; a success becomes the entry's snapshot."""
        config, num_partitions = origin
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
        snapshot = carry_offsets(
            new=result.snapshot, previous=entry.snapshot if entry.origin == origin else None
        )
        if self._entries.get(key) is entry:  # not forgotten meanwhile
            entry.snapshot, entry.synced_at, entry.origin = snapshot, now, origin
            entry.problems = problems
        return ProviderResult(
            snapshot=snapshot,
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
    # A snapshot from the future (a clock step back) is due too (``refresh_due``).
    return refresh_due(synced_at=entry.synced_at, now=now, min_sync_period_s=min_sync_period_s)
