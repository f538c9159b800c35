"""The policies a trace is played with, and what they are played against.

* ``naive`` and ``adaptive``: the operator's reconcile pass (``Pipeline``, via
  ``simulating.Replay``) with the Consumer's ``predictor`` set to that name,
  run every ``minSyncPeriod`` on what Prometheus would answer (``rate()`` over
  the last minute, the lag now). Each write that changes a pod template
  restarts that instance (``model``).
* ``static-peak``: each instance fixed at the highest CPU the oracle ever
  gives it (rounded up to ``cpuIncrement``): never resized, never late
  because of it; the upper bound on cost.
* ``oracle``: knows the present demand exactly (not the future) and
  actuates instantly, without restarts, giving each instance the CPU that
  consumes everything available in the step (capped at the container's
  ``maxAllowed``): the lower bound on cost with no avoidable SLO breach.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec, CpuUsageSpec
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.metrics import refresh_due
from konsumerator.domain.specs import ConsumerConfig
from konsumerator.scoring.deployments import instances_from
from konsumerator.scoring.model import CpuModel, Instance, Model, Workload
from konsumerator.simulating import START, Replay


@dataclass(frozen=True, slots=True)
class Scenario:
    """A trace played against a Consumer."""

    name: str
    trace: Workload
    config: ConsumerConfig
    # The Consumer as read from its file: what the operator's pass starts from.
    source: manifests.Source
    spec: ConsumerSpec
    true_rate_per_core: float
    restart_s: float
    dt_s: float
    container: str
    cpu_model: CpuModel = CpuModel.REQUEST
    # Seconds from an in-place resize (no template change) to its actuation.
    resize_s: float = 5.0

    @property
    def instances(self) -> list[tuple[str, tuple[int, ...]]]:
        assignment = partitioning.assign(
            num_partitions=self.config.num_partitions, per_instance=self.config.per_instance
        )
        return [(f"{self.config.name}-{i}", parts) for i, parts in enumerate(assignment)]

    @property
    def max_cpu_m(self) -> int | None:
        bounds = self.config.policies.get(self.container)
        return bounds.max_cpu_m if bounds is not None else None


class Policy(Protocol):
    """Decides, before each step, which instances run with how much CPU."""

    def allocate(self, *, model: Model, scenario: Scenario) -> Sequence[Instance] | None:
        """The instances to run from now on; None keeps the current ones."""
        ...


def with_predictor(spec: ConsumerSpec, predictor: str) -> ConsumerSpec:
    autoscaler = spec.autoscaler.model_copy(update={"predictor": predictor})
    return spec.model_copy(update={"autoscaler": autoscaler})


# What the model's snapshot answers for (any query: the model serves CPU used per pod).
MODEL_CPU_QUERY = "sum by (pod) (rate(container_cpu_usage_seconds_total[1m]))"


def with_cpu_usage(spec: ConsumerSpec) -> ConsumerSpec:
    """``spec`` with a cpuUsage query (what the model's snapshot answers), unless it has one."""
    prom = spec.autoscaler.prometheus
    if prom is None or prom.cpu_usage is not None:
        return spec
    query = CpuUsageSpec(query=MODEL_CPU_QUERY, pod_label="pod")
    autoscaler = spec.autoscaler.model_copy(
        update={"prometheus": prom.model_copy(update={"cpu_usage": query})}
    )
    return spec.model_copy(update={"autoscaler": autoscaler})


class PipelinePolicy:
    """The operator's own reconcile pass (``Pipeline``), run every minSyncPeriod."""

    def __init__(self, predictor: str | None = None, *, learn: bool = False) -> None:
        # None: as the Consumer says; else the Consumer with this predictor.
        self._predictor = predictor
        # Give the Consumer a cpuUsage query (the model serves CPU used per pod), so
        # the adaptive predictor learns the rate per core.
        self._learn = learn
        self._replay: Replay | None = None
        self._bodies: dict[str, dict[str, Any]] = {}

    @property
    def learned_rate_per_core(self) -> int | None:
        """What the pass learned so far (``status.learning``), None before a sample."""
        learned = self._replay.status.learning if self._replay is not None else None
        return learned.rate_per_core if learned is not None and learned.samples else None

    def allocate(self, *, model: Model, scenario: Scenario) -> Sequence[Instance] | None:
        autoscaling = scenario.config.autoscaling
        assert autoscaling is not None
        first = self._replay is None
        if self._replay is None:
            spec = scenario.spec
            if self._predictor is not None:
                spec = with_predictor(spec, self._predictor)
            if self._learn:
                spec = with_cpu_usage(spec)
            self._replay = Replay(source=scenario.source, spec=spec, start=START)
        now = START + timedelta(seconds=model.t)
        if not first and not refresh_due(
            synced_at=self._replay.metrics.synced_at,
            now=now,
            min_sync_period_s=autoscaling.min_sync_period_s,
        ):
            return None
        result = self._replay.step(
            advance_s=(now - self._replay.now).total_seconds(), metrics=model.snapshot()
        ).plan
        if not result.applies and not result.deletes and not result.resizes:
            return None
        for d in result.deletes:
            self._bodies.pop(d.name, None)
        for a in result.applies:
            self._bodies[a.name] = a.body
        return instances_from(
            self._bodies.values(), config=scenario.config, container=scenario.container
        )


def oracle_cpu_m(
    *, model: Model, scenario: Scenario, parts: Sequence[int], produced: Sequence[float]
) -> int:
    """CPU that consumes everything available to these partitions in the coming step
    (``produced``: the model's ``production`` of that step, what it will produce)."""
    t = model.trace_t
    work = 0.0
    for p in parts:
        if scenario.trace.stalled(partition=p, t=t):
            continue
        work += model.partitions[p].backlog + produced[p]
    cpu_m = math.ceil(work / (scenario.true_rate_per_core * scenario.dt_s) * 1000 - 1e-9)
    cap = scenario.max_cpu_m
    return min(cpu_m, cap) if cap is not None else cpu_m


class Oracle:
    """Knows the present demand, actuates instantly and without restarts."""

    continuous = True

    def allocate(self, *, model: Model, scenario: Scenario) -> Sequence[Instance] | None:
        produced = model.production(dt=scenario.dt_s)
        return [
            Instance(
                name=name,
                partitions=parts,
                cpu_m=oracle_cpu_m(model=model, scenario=scenario, parts=parts, produced=produced),
                template="oracle",
            )
            for name, parts in scenario.instances
        ]


class StaticPeak:
    """Each instance fixed at ``peak`` (the oracle's peak CPU over the trace)."""

    def __init__(self, peak: Callable[[Scenario], dict[str, int]]) -> None:
        self._peak = peak
        self._fixed: list[Instance] | None = None

    def allocate(self, *, model: Model, scenario: Scenario) -> Sequence[Instance] | None:
        if self._fixed is not None:
            return None
        peak = self._peak(scenario)
        autoscaling = scenario.config.autoscaling
        increment = autoscaling.cpu_increment_m if autoscaling else 1
        self._fixed = [
            Instance(
                name=name,
                partitions=parts,
                cpu_m=-(-peak[name] // increment) * increment,
                template="static",
            )
            for name, parts in scenario.instances
        ]
        return self._fixed
