"""A Kafka topic and its consumers, as arithmetic: the simulator's pure model.

Everything here runs in virtual time and has no I/O, so the live simulator
(``konsumerator_dev.sim.live``), the demo and the autoscaling scorecard
(``konsumerator_dev.bench.autoscaling``) all play exactly the same physics, and the unit
tests pin it down step by step.

**Production.** A :class:`Trace` says how many messages per second each
partition receives at trace time ``t``: a base rate, times an optional
diurnal sine, times burst factors, times a per-partition skew (some
partitions hotter than others), plus bounded noise. Noise is a pure function
of ``(seed, partition, t // noise_period)``, so the same seed gives the same
trace whatever order it is sampled in. A trace may also be read from a CSV a
user supplies (:func:`from_csv`). A trace may carry *stalls*: windows in
which the consumers of some partitions cannot consume at all (a downstream
outage), which is how an incident builds a backlog that the autoscaler must
then drain.

**Consumption.** Each instance (one Deployment) owns some partitions and has
``cpu_m`` millicores allocated to the container that does the work. Per step
of ``dt`` seconds it can process ``truePerCoreRate × cores × dt`` messages,
shared max-min fairly among its partitions (a consumer polling its
partitions round-robin), and no partition consumes more than it has
(backlog plus what was just produced)::

    consumed_p = min(backlog_p + produced_p, fair share of truePerCoreRate × cores × dt)

``truePerCoreRate`` is what the consumer really does per core; the
Consumer's ``ratePerCore`` is only what the user believes, and they differ
in real life.

**Restarts.** A change of a Deployment's pod template (resources, env)
restarts its pods: the instance consumes nothing for ``restart_s`` seconds.
A new Deployment pays the same start-up time. Metadata-only writes (the
scaling-status annotations) change nothing. Restarts of existing instances
are counted: they are the disruptions the scorecard charges to scaling.

**Handover.** A partition that has never had a running owner is being
consumed by "the previous consumer" (lag 0): the operator takes over a live
topic, and the old consumers keep going until the new pods have started. Once
a partition has had a running owner, a restart or a lost owner means nobody
consumes it.

**Time scale.** ``time_scale`` compresses the trace's schedule only: at
``time_scale=10`` the incident of trace minute 10 happens at model minute 1,
while rates, capacities and restarts stay per model second. That keeps
Prometheus's ``rate()`` and the operator's arithmetic consistent when the
live simulator runs "faster than real time".
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from konsumerator.domain.metrics import MetricsSnapshot

_MASK = (1 << 64) - 1


@functools.lru_cache(maxsize=8192)
def _unit_noise(*, seed: int, partition: int, k: int) -> float:
    """A deterministic value in [-1, 1) for (seed, partition, k): splitmix64 of the key."""
    x = (seed * 0x9E3779B97F4A7C15 + (partition + 1) * 0xBF58476D1CE4E5B9 + k) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return (x >> 11) / float(1 << 52) - 1.0


@dataclass(frozen=True, slots=True)
class Window:
    """``[start_s, end_s)`` of trace time, with a factor (bursts) or none (stalls)."""

    start_s: float
    end_s: float
    factor: float = 1.0
    # None: every partition.
    partitions: frozenset[int] | None = None

    def covers(self, *, partition: int, t: float) -> bool:
        return self.start_s <= t < self.end_s and (
            self.partitions is None or partition in self.partitions
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """Messages per second produced into each partition, as a function of trace time."""

    name: str
    base_rate: float
    duration_s: float
    diurnal_amplitude: float = 0.0
    diurnal_period_s: float = 86_400.0
    bursts: tuple[Window, ...] = ()
    stalls: tuple[Window, ...] = ()
    # Per-partition rate multipliers (absent: 1).
    skew: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    noise: float = 0.0
    noise_period_s: float = 60.0
    seed: int = 0
    # A user's recorded rates: partition -> sorted (t, rate) steps; -1 means every partition.
    table: Mapping[int, tuple[tuple[float, float], ...]] | None = None
    description: str = ""

    def rate(self, *, partition: int, t: float) -> float:
        if self.table is not None:
            return _table_rate(self.table, partition=partition, t=t)
        r = self.base_rate * self.skew.get(partition, 1.0)
        if self.diurnal_amplitude:
            r *= 1.0 + self.diurnal_amplitude * math.sin(2 * math.pi * t / self.diurnal_period_s)
        for b in self.bursts:
            if b.covers(partition=partition, t=t):
                r *= b.factor
        if self.noise:
            k = int(t // self.noise_period_s)
            r *= 1.0 + self.noise * _unit_noise(seed=self.seed, partition=partition, k=k)
        return max(0.0, r)

    def stalled(self, *, partition: int, t: float) -> bool:
        """Whether the partition's consumer cannot consume at all (a downstream outage)."""
        if not self.stalls:
            return False
        return any(s.covers(partition=partition, t=t) for s in self.stalls)

    def phase(self, *, t: float) -> str:
        """A few words on what the trace is doing at ``t``, for people watching."""
        for s in self.stalls:
            if s.start_s <= t < s.end_s:
                return f"INCIDENT: consumers stalled (downstream outage) until {_mmss(s.end_s)}"
        for b in self.bursts:
            if b.start_s <= t < b.end_s:
                return f"burst: production x{b.factor:g} until {_mmss(b.end_s)}"
        if any(t >= s.end_s for s in self.stalls):
            return "incident over: backlog must be drained"
        return "normal traffic"


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _table_rate(
    table: Mapping[int, tuple[tuple[float, float], ...]], *, partition: int, t: float
) -> float:
    steps = table.get(partition) or table.get(-1) or ()
    value = 0.0
    for start, rate in steps:
        if start > t:
            break
        value = rate
    return value


# -- the trace suite --------------------------------------------------------------------------


def steady(*, base_rate: float = 1000.0, duration_s: float = 6 * 3600.0, seed: int = 0) -> Trace:
    return Trace(
        name="steady",
        base_rate=base_rate,
        duration_s=duration_s,
        noise=0.05,
        seed=seed,
        description="constant rate, ±5% noise",
    )


def diurnal(
    *,
    base_rate: float = 1000.0,
    duration_s: float = 24 * 3600.0,
    period_s: float = 24 * 3600.0,
    amplitude: float = 0.6,
    seed: int = 0,
) -> Trace:
    return Trace(
        name="diurnal",
        base_rate=base_rate,
        duration_s=duration_s,
        diurnal_amplitude=amplitude,
        diurnal_period_s=period_s,
        noise=0.05,
        seed=seed,
        description=f"sine ±{amplitude:.0%} over {period_s / 3600:g} h, ±5% noise",
    )


def burst(
    *,
    base_rate: float = 1000.0,
    duration_s: float = 6 * 3600.0,
    at_s: float = 3600.0,
    length_s: float = 600.0,
    factor: float = 3.0,
    seed: int = 0,
) -> Trace:
    return Trace(
        name="burst",
        base_rate=base_rate,
        duration_s=duration_s,
        bursts=(Window(start_s=at_s, end_s=at_s + length_s, factor=factor),),
        noise=0.05,
        seed=seed,
        description=f"x{factor:g} production for {length_s / 60:g} min",
    )


def incident(
    *,
    base_rate: float = 1000.0,
    duration_s: float = 6 * 3600.0,
    at_s: float = 3600.0,
    length_s: float = 900.0,
    seed: int = 0,
) -> Trace:
    return Trace(
        name="incident",
        base_rate=base_rate,
        duration_s=duration_s,
        stalls=(Window(start_s=at_s, end_s=at_s + length_s),),
        noise=0.05,
        seed=seed,
        description=f"consumers stalled {length_s / 60:g} min (downstream outage), then drain",
    )


def skewed(
    *,
    base_rate: float = 1000.0,
    duration_s: float = 6 * 3600.0,
    num_partitions: int = 10,
    hot_every: int = 5,
    hot_factor: float = 5.0,
    seed: int = 0,
) -> Trace:
    hot = dict.fromkeys(range(0, num_partitions, hot_every), hot_factor)
    return Trace(
        name="skewed",
        base_rate=base_rate,
        duration_s=duration_s,
        diurnal_amplitude=0.3,
        diurnal_period_s=duration_s,
        skew=MappingProxyType(hot),
        noise=0.05,
        seed=seed,
        description=f"partitions {sorted(hot)} x{hot_factor:g} hotter, slow sine",
    )


def from_csv(text: str, *, name: str = "csv", duration_s: float | None = None) -> Trace:
    """A trace from CSV: a header ``t,<partition>...`` then rows of seconds and msg/s.

    A column named ``*`` (or ``rate``) applies to every partition without its
    own column. Each row's rate holds until the next row's ``t``.
    """
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and not r[0].lstrip().startswith("#")]
    if len(rows) < 2 or rows[0][0].strip() != "t":
        raise ValueError("trace CSV: the header must be t,<partition>... with at least one row")
    columns: list[int] = []
    for raw in rows[0][1:]:
        label = raw.strip()
        if label in ("*", "rate"):
            columns.append(-1)
        elif label.isdigit():
            columns.append(int(label))
        else:
            raise ValueError(f"trace CSV: column {label!r} is not a partition id, * or rate")
    steps: dict[int, list[tuple[float, float]]] = {c: [] for c in columns}
    last_t = -math.inf
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns) + 1:
            raise ValueError(f"trace CSV line {number}: expected {len(columns) + 1} values")
        try:
            t, *rates = (float(v) for v in row)
        except ValueError:
            raise ValueError(f"trace CSV line {number}: values must be numbers") from None
        if t < last_t or any(not math.isfinite(r) or r < 0 for r in rates):
            raise ValueError(f"trace CSV line {number}: t must not decrease, rates must be >= 0")
        last_t = t
        for column, rate in zip(columns, rates, strict=True):
            steps[column].append((t, rate))
    table = {c: tuple(s) for c, s in steps.items()}
    return Trace(
        name=name,
        base_rate=0.0,
        duration_s=duration_s if duration_s is not None else max(last_t, 1.0),
        table=MappingProxyType(table),
        description="rates from a CSV file",
    )


TRACES: Mapping[str, Callable[..., Trace]] = MappingProxyType(
    {
        "steady": steady,
        "diurnal": diurnal,
        "burst": burst,
        "incident": incident,
        "skewed": skewed,
    }
)


# -- consumption ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instance:
    """One Deployment as the consumers see it."""

    name: str
    partitions: tuple[int, ...]
    # Millicores of the container that consumes.
    cpu_m: int
    # A fingerprint of the pod template: when it changes, the pods restart.
    template: str


@dataclass(slots=True)
class Partition:
    produced: float = 0.0
    consumed: float = 0.0
    # Messages/s over the last step, for people watching.
    production_rate: float = 0.0
    consumption_rate: float = 0.0
    # Whether any instance has ever owned it (see "Handover" above).
    owned: bool = False

    @property
    def backlog(self) -> float:
        return self.produced - self.consumed


@dataclass(slots=True)
class _Running:
    instance: Instance
    down_until: float


def fair_share(*, capacity: float, demands: Sequence[float]) -> list[float]:
    """Max-min fair split of ``capacity``: nobody gets more than it asks for."""
    grants = [0.0] * len(demands)
    remaining = max(0.0, capacity)
    order = sorted(range(len(demands)), key=lambda i: demands[i])
    for n, i in enumerate(order):
        give = min(max(0.0, demands[i]), remaining / (len(order) - n))
        grants[i] = give
        remaining -= give
    return grants


class Model:
    """Partitions' offsets and the instances consuming them, advanced step by step."""

    def __init__(
        self,
        *,
        trace: Trace,
        num_partitions: int,
        true_rate_per_core: float,
        restart_s: float,
        time_scale: float = 1.0,
        history_s: float = 0.0,
    ) -> None:
        self.trace = trace
        self.true_rate_per_core = true_rate_per_core
        self.restart_s = restart_s
        self.time_scale = time_scale
        self.t = 0.0
        self.partitions = [Partition() for _ in range(num_partitions)]
        self.restarts = 0
        self._running: dict[str, _Running] = {}
        self._history_s = history_s
        self._history: deque[tuple[float, tuple[float, ...], tuple[float, ...]]] = deque()
        self._remember()

    @property
    def trace_t(self) -> float:
        return self.t * self.time_scale

    def instances(self) -> list[Instance]:
        return [r.instance for r in self._running.values()]

    def restarting(self, name: str) -> bool:
        r = self._running.get(name)
        return r is not None and r.down_until > self.t

    def allocate(self, instances: Iterable[Instance]) -> list[str]:
        """Make ``instances`` the running ones; returns the names whose pods restart.

        A new instance starts (pays ``restart_s``, not counted as a restart);
        one whose template changed restarts (counted); one that is gone stops.
        """
        restarted: list[str] = []
        seen: dict[str, _Running] = {}
        for inst in instances:
            old = self._running.get(inst.name)
            if old is None:
                seen[inst.name] = _Running(inst, down_until=self.t + self.restart_s)
            elif old.instance.template != inst.template:
                seen[inst.name] = _Running(inst, down_until=self.t + self.restart_s)
                restarted.append(inst.name)
            else:
                seen[inst.name] = _Running(inst, down_until=old.down_until)
        self._running = seen
        self.restarts += len(restarted)
        return restarted

    def advance(self, *, dt: float) -> None:
        """Produce and consume for ``dt`` seconds (rates taken at the start of the step)."""
        if dt <= 0:
            return
        trace_t = self.trace_t
        parts = self.partitions
        produced = [self.trace.rate(partition=p, t=trace_t) * dt for p in range(len(parts))]
        consumed = [0.0] * len(parts)
        owned: set[int] = set()
        for running in self._running.values():
            inst = running.instance
            mine = [p for p in inst.partitions if 0 <= p < len(parts)]
            up_for = min(dt, max(0.0, self.t + dt - running.down_until))
            if up_for > 0:
                owned.update(mine)
            capacity = self.true_rate_per_core * inst.cpu_m / 1000.0 * up_for
            demands = [
                0.0
                if self.trace.stalled(partition=p, t=trace_t)
                else parts[p].backlog + produced[p]
                for p in mine
            ]
            for p, grant in zip(mine, fair_share(capacity=capacity, demands=demands), strict=True):
                consumed[p] = grant
        for p, part in enumerate(parts):
            if p in owned:
                part.owned = True
            elif not part.owned:
                consumed[p] = part.backlog + produced[p]  # the previous consumer keeps up
            part.produced += produced[p]
            part.consumed += consumed[p]
            part.production_rate = produced[p] / dt
            part.consumption_rate = consumed[p] / dt
        self.t += dt
        self._remember()

    def _remember(self) -> None:
        if self._history_s <= 0:
            return
        self._history.append(
            (
                self.t,
                tuple(p.produced for p in self.partitions),
                tuple(p.consumed for p in self.partitions),
            )
        )
        while len(self._history) > 2 and self._history[1][0] <= self.t - self._history_s:
            self._history.popleft()

    def snapshot(self) -> MetricsSnapshot:
        """What Prometheus would answer: rates over the remembered window, current lag.

        Like ``rate(x[window])`` the rates trail reality by about half the
        window, which is part of the detection delay the scorecard measures.
        """
        if not self._history:
            raise RuntimeError("snapshot() needs history_s > 0")
        t0, produced0, consumed0 = self._history[0]
        span = self.t - t0
        production: dict[int, float] = {}
        consumption: dict[int, float] = {}
        offset: dict[int, float] = {}
        for p, part in enumerate(self.partitions):
            if span > 0:
                production[p] = (part.produced - produced0[p]) / span
                consumption[p] = (part.consumed - consumed0[p]) / span
            offset[p] = math.floor(part.produced) - math.floor(part.consumed)
        return MetricsSnapshot(
            production=MappingProxyType(production),
            consumption=MappingProxyType(consumption),
            offset=MappingProxyType(offset),
        )
