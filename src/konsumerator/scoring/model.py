"""A Kafka topic and its consumers, as arithmetic: the simulator's pure model.

Everything here runs in virtual time and has no I/O, so ``konsumerator score``
(``konsumerator.scoring``), the developers' live simulator, demo and published
scorecard all play exactly the same physics, and the unit tests pin it down
step by step.

Production is a ``Workload``: a user's recorded trace
(``konsumerator.scoring.traces``) or the developers' generators. A step of ``dt``
produces a generator's rate at the step's start times ``dt``, and a recorded trace's
(``Stepwise``) mean rate over the step times ``dt``: the messages of the rows within
it, however fine they are. Where no row begins within a step the two are the same.

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

**CPU model.** ``cores`` is the container's CPU *request* on a contended node
(``CpuModel.REQUEST``: every neighbour uses its share) or its *limit* on a
node with CPU to spare (``CpuModel.LIMIT``: the pod bursts up to it). Real
nodes are in between; the scorecard reports both bounds. What an instance
costs is its request either way.

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

**In-place resizes.** A new CPU size with the same pod template (the operator's
in-place mode resizes running pods through ``pods/resize`` and keeps the template)
restarts nothing: the instance goes on consuming at its old CPU and runs at the new
one ``resize_s`` seconds later (the kubelet's actuation delay; a later size replaces
one not yet actuated). Resizes (CPU changes of running instances, in place or through a
restart) are counted apart from restarts.

**CPU used.** Consuming a message costs ``1 / truePerCoreRate`` CPU-seconds, so an
instance uses ``consumed / truePerCoreRate`` cores: all it has when it falls behind
(its request, or its limit on a spare node), less when it keeps up, nothing while it
restarts. ``snapshot`` reports it over the rate window per pod, as
``sum by (pod) (rate(container_cpu_usage_seconds_total[1m]))`` would (one pod per
instance, named like a Deployment's pod), which lets the adaptive predictor learn the
real rate per core in ``konsumerator score`` and the scorecard.

**Time scale.** ``time_scale`` compresses the trace's schedule only: at
``time_scale=10`` the incident of trace minute 10 happens at model minute 1,
while rates, capacities and restarts stay per model second. That keeps
Prometheus's ``rate()`` and the operator's arithmetic consistent when the
live simulator runs "faster than real time".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot

# The pod of an instance, as a Deployment names it: ``<deployment>-<hash>-<suffix>``.
POD_SUFFIX = "-5d4f8b9c7d-model"


class Workload(Protocol):
    """Messages per second produced into each partition, as a function of time."""

    @property
    def name(self) -> str: ...

    @property
    def duration_s(self) -> float: ...

    def rate(self, *, partition: int, t: float) -> float: ...

    def stalled(self, *, partition: int, t: float) -> bool:
        """Whether the partition's consumer cannot consume at all (a downstream outage)."""
        ...

    def phase(self, *, t: float) -> str:
        """A few words on what the workload is doing at ``t``, for people watching."""
        ...


@runtime_checkable
class Stepwise(Protocol):
    """A workload whose rates hold from one time to the next: a recorded trace's rows.

    Its rows may be any distance apart, finer than the model's step too (a trace exported
    at Prometheus' or Kafka's own resolution, a row a second), so a step must produce what
    the rows within it produce, not the rate of the one row its start falls on (sampled,
    rows a second apart alternating 0 and 2,000 msg/s were no production at all).
    """

    def mean_rates(self, *, start: float, end: float) -> Sequence[float]:
        """Each partition's mean rate over ``[start, end)`` of trace time: exactly the rate
        at ``start`` when no row begins within it."""
        ...


class CpuModel(StrEnum):
    REQUEST = "request"
    LIMIT = "limit"


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
    # Its CPU limit (millicores); None: the same as the request (no bursting).
    cpu_limit_m: int | None = None

    def cores(self, model: CpuModel) -> float:
        if model is CpuModel.LIMIT and self.cpu_limit_m is not None:
            return max(self.cpu_m, self.cpu_limit_m) / 1000.0
        return self.cpu_m / 1000.0


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
    # What runs now (its CPU is the actuated one).
    instance: Instance
    down_until: float
    # An in-place resize decided but not actuated yet: the instance to run, and from when.
    resizing: tuple[Instance, float] | None = None


def _cores(running: _Running, t: float, dt: float, model: CpuModel) -> float:
    """The instance's cores over the step [t, t + dt]: a resize actuated within it counts
    from then on."""
    if running.resizing is None:
        return running.instance.cores(model)
    target, at = running.resizing
    before = min(dt, max(0.0, at - t))
    return (running.instance.cores(model) * before + target.cores(model) * (dt - before)) / dt


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
        trace: Workload,
        num_partitions: int,
        true_rate_per_core: float,
        restart_s: float,
        time_scale: float = 1.0,
        history_s: float = 0.0,
        resize_s: float = 0.0,
        cpu_model: CpuModel = CpuModel.REQUEST,
    ) -> None:
        self.trace = trace
        self.cpu_model = cpu_model
        self.resize_s = resize_s
        self.true_rate_per_core = true_rate_per_core
        self.restart_s = restart_s
        self.time_scale = time_scale
        self.t = 0.0
        self.partitions = [Partition() for _ in range(num_partitions)]
        self.restarts = 0
        self.resizes = 0
        #: Per instance name: restarts and in-place resizes so far.
        self.restarts_by: dict[str, int] = {}
        self.resizes_by: dict[str, int] = {}
        self._running: dict[str, _Running] = {}
        self._history_s = history_s
        self._history: deque[
            tuple[float, tuple[float, ...], tuple[float, ...], Mapping[str, float]]
        ] = deque()
        # CPU-seconds each instance used so far (see "CPU used" above).
        self.cpu_seconds: dict[str, float] = {}
        # Checked once: a protocol check per step would cost more than the step's rates.
        self._stepwise = trace if isinstance(trace, Stepwise) else None
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
                if inst.cpu_m != (old.resizing or (old.instance, 0.0))[0].cpu_m:
                    self._count_resize(inst.name)
            else:
                seen[inst.name] = self._resized(old, inst)
        self._running = seen
        self.restarts += len(restarted)
        for name in restarted:
            self.restarts_by[name] = self.restarts_by.get(name, 0) + 1
        return restarted

    def _resized(self, old: _Running, inst: Instance) -> _Running:
        """``old`` going on with ``inst``'s CPU: at once, or after ``resize_s`` in place."""
        target = old.resizing[0] if old.resizing is not None else old.instance
        if inst.cpu_m == target.cpu_m:
            return _Running(old.instance, down_until=old.down_until, resizing=old.resizing)
        self._count_resize(inst.name)
        if self.resize_s <= 0 or inst.cpu_m == old.instance.cpu_m:
            return _Running(inst, down_until=old.down_until)
        return _Running(
            old.instance, down_until=old.down_until, resizing=(inst, self.t + self.resize_s)
        )

    def _count_resize(self, name: str) -> None:
        self.resizes += 1
        self.resizes_by[name] = self.resizes_by.get(name, 0) + 1

    def _actuate(self) -> None:
        """Resizes whose actuation delay is over take effect."""
        for running in self._running.values():
            if running.resizing is not None and running.resizing[1] <= self.t + 1e-9:
                running.instance, running.resizing = running.resizing[0], None

    def production(self, *, dt: float) -> list[float]:
        """Messages produced into each partition over the coming ``dt`` seconds.

        A stepwise workload (a recorded trace) gives its mean rate over the step, so the
        step produces what its rows produce; a generator (a function of time) its rate at
        the step's start. When no row begins within the step the two are the same number:
        ``rate * dt``, to the bit.
        """
        trace_t = self.trace_t
        if self._stepwise is not None:
            rates = self._stepwise.mean_rates(start=trace_t, end=trace_t + dt * self.time_scale)
            produced = [rate * dt for rate in rates]
            # A trace of fewer partitions produces nothing into the others (as ``rate`` says).
            missing = len(self.partitions) - len(produced)
            return produced[: len(self.partitions)] + [0.0] * missing
        return [self.trace.rate(partition=p, t=trace_t) * dt for p in range(len(self.partitions))]

    def advance(self, *, dt: float) -> None:
        """Produce (``production``) and consume for ``dt`` seconds."""
        if dt <= 0:
            return
        trace_t = self.trace_t
        parts = self.partitions
        produced = self.production(dt=dt)
        consumed = [0.0] * len(parts)
        owned: set[int] = set()
        for running in self._running.values():
            inst = running.instance
            mine = [p for p in inst.partitions if 0 <= p < len(parts)]
            up_for = min(dt, max(0.0, self.t + dt - running.down_until))
            if up_for > 0:
                owned.update(mine)
            capacity = (
                self.true_rate_per_core * _cores(running, self.t, dt, self.cpu_model) * up_for
            )
            demands = [
                0.0
                if self.trace.stalled(partition=p, t=trace_t)
                else parts[p].backlog + produced[p]
                for p in mine
            ]
            grants = fair_share(capacity=capacity, demands=demands)
            for p, grant in zip(mine, grants, strict=True):
                consumed[p] = grant
            self.cpu_seconds[inst.name] = (
                self.cpu_seconds.get(inst.name, 0.0) + sum(grants) / self.true_rate_per_core
            )
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
        self._actuate()
        self._remember()

    def _remember(self) -> None:
        if self._history_s <= 0:
            return
        self._history.append(
            (
                self.t,
                tuple(p.produced for p in self.partitions),
                tuple(p.consumed for p in self.partitions),
                MappingProxyType(dict(self.cpu_seconds)),
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
        t0, produced0, consumed0, cpu0 = self._history[0]
        span = self.t - t0
        production: dict[int, float] = {}
        consumption: dict[int, float] = {}
        offset: dict[int, float] = {}
        for p, part in enumerate(self.partitions):
            if span > 0:
                production[p] = (part.produced - produced0[p]) / span
                consumption[p] = (part.consumed - consumed0[p]) / span
            offset[p] = math.floor(part.produced) - math.floor(part.consumed)
        cores = {
            f"{name}{POD_SUFFIX}": (used - cpu0.get(name, 0.0)) / span
            for name, used in self.cpu_seconds.items()
            if span > 0 and name in self._running
        }
        return MetricsSnapshot(
            production=MappingProxyType(production),
            consumption=MappingProxyType(consumption),
            offset=MappingProxyType(offset),
            cpu_usage=CpuUsage(by_pod=MappingProxyType(cores)),
        )
