"""What Prometheus told us about a topic at one moment: a complete snapshot.

A snapshot is immutable and always complete (all three queries of one
refresh). The Go operator replaced its three maps one query at a time, so a
failure half-way left production from now and lag from an hour ago
(``lwolf/konsumerator pkg/providers/prometheus.go``, ``Update``); keeping
whole snapshots makes that impossible.

Values are per partition id. A partition that is absent from a mapping had no
usable sample. Rates are messages per second, offset is messages behind.
Rates and offsets are kept as floats here; the predictor truncates them like
the Go int64 conversion did.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import NoReturn


class MetricKind(StrEnum):
    PRODUCTION = "production"
    CONSUMPTION = "consumption"
    OFFSET = "offset"


class ReadOnly(dict[int, float]):
    """A snapshot's values by partition: a ``dict`` that refuses to change.

    Read per instance many times in every pass that refreshes metrics (the adaptive
    rules read each partition's production, consumption and offset several times):
    ``get`` is ``dict``'s own, where a ``MappingProxyType``'s calls the mapping's
    ``get`` method through the proxy, twice the cost. The snapshot copies what it is
    given into one, so whoever built it cannot change it afterwards either.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a metrics snapshot is read-only")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type["ReadOnly"], tuple[dict[int, float]]]:
        return (ReadOnly, (dict(self),))


def _read_only(values: Mapping[int, float]) -> Mapping[int, float]:
    if type(values) is ReadOnly:
        return values
    if type(values) is MappingProxyType:
        # What the parsers hand over: its mapping's own ``copy`` (a dict's, in C) is some
        # five times faster than reading it through the proxy key by key.
        return ReadOnly(values.copy())
    return ReadOnly(values)


def _empty() -> Mapping[int, float]:
    return ReadOnly()


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """The optional fourth query's answer: CPU cores each pod used (``cpuUsage``).

    Only the adaptive predictor's learned rate per core reads it
    (``domain.adaptive.learning``); sizing never depends on it, so a failed or
    unusable answer is carried as ``problem`` and the snapshot stays whole.
    Values are as Prometheus sent them (NaN, negative, huge included): judging
    them is the learner's business, which says in the status why it paused.
    """

    # Cores by pod name, or by ``namespace/pod`` when the series named their namespace.
    by_pod: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # Why the answer cannot be used at all (the query failed, timed out, matched
    # nothing); None when it came back.
    problem: str | None = None


_INF = float("inf")


def truncate(value: float | None) -> int:
    """Go's int64(float) for a metric value; missing, NaN and Inf read as 0."""
    if value is None or not math.isfinite(value):
        return 0
    return int(value)


def _lags(production: Mapping[int, float], offset: Mapping[int, float]) -> dict[int, int]:
    """``MetricsSnapshot.lag``: trunc(behind / production) of each partition with a
    production that truncates to a non-zero int, ``truncate`` of each value (None, NaN
    and infinities read as 0).

    Every partition of every refresh. The common case, a finite number for every
    partition's production and offset with the offsets in the productions' order (as
    Prometheus' answers and timelines give them), truncates in C (``int`` refuses NaN,
    infinities and None); anything else takes the general way, value by value."""
    if len(offset) == len(production) and list(offset) == list(production):
        try:
            rates = list(map(int, production.values()))
            behinds = list(map(int, offset.values()))
        except (ValueError, OverflowError, TypeError):
            pass
        else:
            return {
                partition: int(behind / rate)
                for partition, rate, behind in zip(production, rates, behinds, strict=True)
                if rate
            }
    lag = {}
    for partition, value in production.items():
        rate = int(value) if value is not None and -_INF < value < _INF else 0
        if rate:
            behind = offset.get(partition)
            behind_i = int(behind) if behind is not None and -_INF < behind < _INF else 0
            lag[partition] = int(behind_i / rate)
    return lag


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    production: Mapping[int, float] = field(default_factory=_empty)
    consumption: Mapping[int, float] = field(default_factory=_empty)
    offset: Mapping[int, float] = field(default_factory=_empty)
    # The CPU-usage query's answer; None when the Consumer has no such query.
    # Not part of ``lastSyncState``: a restarted operator learns from its next sync.
    cpu_usage: CpuUsage | None = field(default=None, compare=False)
    # Whole seconds of production each partition is behind:
    # trunc(behind / production), absent when nothing is produced. Derived
    # once per refresh, because every pass needs every partition's lag for
    # the LAGGING counter, and most passes reuse the same snapshot.
    lag: Mapping[int, int] = field(init=False, compare=False, repr=False)
    # Partitions whose offset is not this refresh's sample but carried from an earlier
    # one (``carry_offsets``), each with how many refreshes in a row it was.
    carried: Mapping[int, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("production", "consumption", "offset"):
            object.__setattr__(self, name, _read_only(getattr(self, name)))
        object.__setattr__(self, "lag", ReadOnly(_lags(self.production, self.offset)))

    def of(self, kind: MetricKind) -> Mapping[int, float]:
        if kind is MetricKind.PRODUCTION:
            return self.production
        if kind is MetricKind.CONSUMPTION:
            return self.consumption
        return self.offset


EMPTY_SNAPSHOT = MetricsSnapshot()

# How many refreshes in a row a partition's last offset sample stands in for a missing
# one (``carry_offsets``).
CARRY_REFRESHES = 2


def carry_offsets(*, new: MetricsSnapshot, previous: MetricsSnapshot | None) -> MetricsSnapshot:
    """``new``, where a partition it has a production sample for but no offset sample
    takes the offset of ``previous`` (the snapshot in use before this refresh, of the
    same queries), for at most ``CARRY_REFRESHES`` refreshes in a row.

    Why: a lag exporter loses a partition's series for a scrape now and then (it
    restarts, the partition's leader moves), and the partition then reads as having
    no backlog at all. The naive predictor sizes it for its production alone for one
    sync; the adaptive rules read an empty backlog as a drain that is over: under
    Recreate an instance with tens of thousands of messages behind was scaled down
    right after its scale-up, and a pending scale-up started its wait again at every
    gap. The last sample is the better estimate of a backlog for a sync or two; a
    series gone for longer reads as missing again (no stale backlog held forever).
    A partition without production is left alone: nothing is behind without it."""
    offset = new.offset
    if previous is None or new.production.keys() <= offset.keys():
        return new
    before, carried_before = previous.offset, previous.carried
    carried: dict[int, int] = {}
    filled = dict(offset)
    for partition in new.production.keys() - offset.keys():
        times = carried_before.get(partition, 0) + 1
        behind = before.get(partition)
        if behind is not None and times <= CARRY_REFRESHES:
            filled[partition] = behind
            carried[partition] = times
    if not carried:
        return new
    return MetricsSnapshot(
        production=new.production,
        consumption=new.consumption,
        offset=filled,
        cpu_usage=new.cpu_usage,
        carried=carried,
    )


def refresh_due(*, synced_at: datetime | None, now: datetime, min_sync_period_s: float) -> bool:
    """Whether Prometheus should be asked again: never synced, strictly older than
    ``minSyncPeriod`` (the Go operator's rule, kept so both refresh alike), or synced
    in the future: after a clock step back the snapshot would otherwise be kept until
    the clock caught up (the operator's provider and the replay's alike)."""
    if synced_at is None:
        return True
    age_s = (now - synced_at).total_seconds()
    return age_s > min_sync_period_s or age_s < 0
