"""Sizing: the resources one instance is proposed, and the global pool they draw from.

This is where an instance's CPU and memory requests are computed:
``Sizing.propose`` takes the instance's estimate from the metrics
(``prediction.instance_estimate``, the Go predictor's rule), or the fallback
without metrics, bounds it by the container policies (``limits``) and draws
the increase from the global pool. The pool is passed in explicitly: it is
the one piece of state shared by the instances of a pass, drawn in index
order so the result is deterministic.
"""

import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import msgspec

from konsumerator.domain import fallbacks, limits, prediction
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.resources import NO_RESOURCES, Resources
from konsumerator.domain.specs import Autoscaling, ConsumerConfig, FallbackStrategy


# A msgspec Struct (frozen, hashable), built in C: see ``adaptive.memory.Memory``.
class Proposal(msgspec.Struct, frozen=True):
    resources: dict[str, Resources]
    # CPU (millicores) the limits withheld from what the instance needs.
    cpu_shortage_m: int


def template_containers(config: ConsumerConfig) -> list[str]:
    pod = (config.deployment_template.get("template") or {}).get("spec") or {}
    return [str(c.get("name", "")) for c in pod.get("containers") or []]


def global_pool(*, config: ConsumerConfig, held: Sequence[Mapping[str, Resources]]) -> limits.Pool:
    """The global pool left after what the claimed instances (``held``) already request."""
    if config.global_pool is None:
        return limits.Pool(pool=None, used_cpu_m=0, used_mem_b=0)  # what they hold is moot
    used_cpu = used_mem = 0
    for current in held:
        for r in current.values():
            used_cpu += r.cpu_req_m or 0
            used_mem += r.mem_req_b or 0
    return limits.Pool(pool=config.global_pool, used_cpu_m=used_cpu, used_mem_b=used_mem)


# ``prediction.size_for_rate`` by everything it reads, across passes: by the rate per
# core, the CPU increment and the memory per core (a pass looks its table up once), then
# by the need: a noisy need is rarely the same twice in one pass, but the same few
# thousand come back pass after pass. Bounded (tables, and needs per table).
_SIZED: dict[tuple[int, int, int], dict[int, Resources]] = {}
_MAX_TABLES = 64
_MAX_SIZED = 65_536
# One object per size, shared by the needs that come to it: the planner's shortcut
# (``planning._kept``) compares two passes' sizes by identity first.
_ONE_OF: dict[Resources, Resources] = {}
_INF = float("inf")
# ``Sizing._bounded`` of a size (never None: the fallback depends on the Deployments)
# from an unbounded pool, across passes: by config object (held, so its id is not
# reused while remembered; its template names the containers), then by the size and
# whether the lag is critical. From an unbounded pool every grant is what the policy
# allows, so the proposal is a function of those alone. Shared, and so read-only, as
# ``peek`` says. Bounded (configs, and proposals per config).
_PROPOSED: dict[int, tuple[ConsumerConfig, dict[tuple[Resources, bool], "Proposal"]]] = {}


@dataclass(frozen=True, slots=True)
class Sizing:
    """What every instance's proposal in one pass shares."""

    config: ConsumerConfig
    snapshot: MetricsSnapshot | None
    containers: tuple[str, ...]
    num_instances: int
    # The Deployments the fallback is drawn from (none in manual mode).
    deployments: Sequence[ObservedDeployment]
    # ``fallback``, found on first use: a pass with metrics for every instance needs
    # none, and finding it looks at every Deployment. Not part of the value.
    _fallback: list[Mapping[str, Resources]] = field(
        default_factory=list, compare=False, repr=False, hash=False
    )
    # The proposals already made in this pass from an unbounded pool, by what they
    # depend on then (the need and whether the lag is critical), and by the size that
    # need comes to (a noisy need is rarely the same twice, its size nearly always):
    # most instances of a pass share a few sizes. Not part of the value.
    _unbounded: dict[tuple[int | None, bool], Proposal] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )
    _by_size: dict[tuple[Resources | None, bool], Proposal] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )
    # This pass's table of ``_SIZED``, found on first use. Not part of the value.
    _table: list[dict[int, Resources]] = field(
        default_factory=list, compare=False, repr=False, hash=False
    )

    @classmethod
    def for_pass(
        cls,
        *,
        config: ConsumerConfig,
        snapshot: MetricsSnapshot | None,
        num_instances: int,
        deployments: Sequence[ObservedDeployment],
    ) -> "Sizing":
        # In manual mode (no autoscaling) every instance's resources are the
        # policy's, which the operator keeps: a fleet-derived guess would let one
        # hand-edited instance resize all the others.
        manual = config.autoscaling is None and not config.paused
        return cls(
            config=config,
            snapshot=snapshot,
            containers=tuple(template_containers(config)),
            num_instances=num_instances,
            deployments=() if manual else deployments,
        )

    @property
    def fallback(self) -> Mapping[str, Resources]:
        """What each container gets without an estimate (``fallbacks.compute``)."""
        if not self._fallback:
            self._fallback.append(
                fallbacks.compute(
                    strategy=self.config.fallback,
                    policies=self.config.policies,
                    num_instances=self.num_instances,
                    existing=[d.current for d in sorted(self.deployments, key=lambda d: d.name)],
                )
            )
        return self._fallback[0]

    def propose(
        self,
        *,
        partitions: tuple[int, ...],
        current: Mapping[str, Resources],
        critical: bool,
        pool: limits.Pool,
        rate: int | None = None,
    ) -> Proposal:
        """Every container's resources for an instance, drawn from ``pool``.

        ``rate`` (msg/s) is the adaptive predictor's need (``domain.adaptive``);
        without it the naive predictor's estimate is used.
        """
        config = self.config
        if config.paused:
            return Proposal(resources=self.floors(), cpu_shortage_m=0)
        autoscaling = config.autoscaling
        # The need in msg/s (None: no estimate, the fallback): the naive predictor's
        # (``prediction.instance_estimate``), or the adaptive one's ``rate``.
        need: int | None = None
        if autoscaling is not None and self.snapshot is not None:
            if rate is None:
                rate = prediction.instance_rate(
                    snapshot=self.snapshot,
                    partitions=partitions,
                    recovery_s=int(autoscaling.recovery_s),
                )
                need = rate if rate else None
            else:
                need = rate if rate > 0 else None
        if pool.unbounded:
            known = self._shared(need=need, critical=critical, pool=pool)
            return Proposal(resources=dict(known.resources), cpu_shortage_m=known.cpu_shortage_m)
        return self._bounded(sized=self._sized(need), current=current, critical=critical, pool=pool)

    def peek(
        self,
        *,
        partitions: tuple[int, ...],
        current: Mapping[str, Resources],
        critical: bool,
        pool: limits.Pool,
    ) -> Proposal:
        """``propose``'s naive proposal, for a caller that only reads it: from an
        unbounded pool, the one this pass shares between the instances of the same
        need (not a copy, so it is the same object for all of them)."""
        autoscaling = self.config.autoscaling
        if self.config.paused or not pool.unbounded or autoscaling is None or self.snapshot is None:
            return self.propose(
                partitions=partitions, current=current, critical=critical, pool=pool
            )
        return self._shared(need=self.naive_need(partitions), critical=critical, pool=pool)

    def naive_need(self, partitions: tuple[int, ...]) -> int | None:
        """The naive predictor's need of an instance in msg/s (None: no estimate, the
        fallback), from this pass's snapshot (there must be one, and autoscaling)."""
        autoscaling = self.config.autoscaling
        snapshot = self.snapshot
        assert autoscaling is not None
        assert snapshot is not None
        recovery_s = int(autoscaling.recovery_s)
        if len(partitions) == 1:
            # ``prediction.instance_rate`` of one partition, inlined (every instance of
            # every pass that refreshes): truncated production (missing, NaN, infinite:
            # 0), plus the backlog over the recovery time when lagging; nothing below 0.
            p = partitions[0]
            value = snapshot.production.get(p)
            produced = int(value) if value is not None and -_INF < value < _INF else 0
            lag_s = snapshot.lag.get(p, 0)
            if lag_s > 0 and recovery_s > 0:
                produced = (lag_s * produced + produced * recovery_s) // recovery_s
            return produced if produced > 0 else None
        rate = prediction.instance_rate(
            snapshot=snapshot, partitions=partitions, recovery_s=recovery_s
        )
        return rate or None

    def naive_sizes(self, assignment: Sequence[tuple[int, ...]]) -> list[Resources | None]:
        """``size(naive_need(partitions))`` of every instance of ``assignment``, in one loop:
        what a refreshing pass compares with each instance's last keep (``planning``).
        One partition per instance is ``naive_need``'s inline case, repeated here so the
        loop makes no call per instance; the table is the one ``size`` reads."""
        autoscaling = self.config.autoscaling
        snapshot = self.snapshot
        assert autoscaling is not None
        assert snapshot is not None
        recovery_s = int(autoscaling.recovery_s)
        production, lag = snapshot.production, snapshot.lag
        table = self._pass_table(autoscaling)
        if len(assignment) == self.config.num_partitions:
            return self._one_each(len(assignment), table=table, recovery_s=recovery_s)
        sizes: list[Resources | None] = []
        for partitions in assignment:
            if len(partitions) == 1:
                p = partitions[0]
                value = production.get(p)
                produced = int(value) if value is not None and -_INF < value < _INF else 0
                lag_s = lag.get(p, 0)
                if lag_s > 0 and recovery_s > 0:
                    produced = (lag_s * produced + produced * recovery_s) // recovery_s
                need = produced if produced > 0 else None
            else:
                need = self.naive_need(partitions)
            if need is None:
                sizes.append(None)
            else:
                sized = table.get(need)
                sizes.append(sized if sized is not None else self._sized(need))
        return sizes

    def _one_each(
        self, count: int, *, table: dict[int, Resources], recovery_s: int
    ) -> list[Resources | None]:
        """``naive_sizes`` when instance ``i`` consumes partition ``i`` alone (as many
        instances as partitions: ``partitions.assign`` then makes one bucket of each),
        the same expressions over the whole pass at once, in ``map``s (C loops): most
        partitions have a finite production and no lag, and most needs a size known
        already. The others take the per-instance way."""
        snapshot = self.snapshot
        assert snapshot is not None
        partitions = range(count)
        got = list(map(snapshot.production.get, partitions))
        values = cast(list[float], got)
        if None in got or not -_INF < sum(values) < _INF:
            # Not every partition has a finite production (or their sum overflows).
            return [self.size(self.naive_need((p,))) for p in partitions]
        needs = list(map(int, values))
        lags = list(map(snapshot.lag.get, partitions, itertools.repeat(0, count)))
        if recovery_s > 0 and any(lags):
            for p in itertools.compress(partitions, lags):
                lag_s, produced = lags[p], needs[p]
                if lag_s > 0:
                    needs[p] = (lag_s * produced + produced * recovery_s) // recovery_s
        sizes: list[Resources | None] = list(map(table.get, needs))
        # Unknown needs, and those of no estimate (not above 0: never in the table).
        for p in itertools.compress(partitions, map(operator.is_, sizes, itertools.repeat(None))):
            need = needs[p]
            sizes[p] = self._sized(need) if need > 0 else None
        return sizes

    def size(self, need: int | None) -> Resources | None:
        """What one container needs for ``need`` msg/s before the policies (None: no
        estimate, the fallback). From an unbounded pool, ``peek``'s proposal for a need
        is a function of this size, of whether the lag is critical and of the config."""
        if need is None:
            return None
        table = self._table
        sized = table[0].get(need) if table else None
        return sized if sized is not None else self._sized(need)

    def shared(self, *, need: int | None, critical: bool, pool: limits.Pool) -> Proposal:
        """``peek``'s proposal for the naive need ``need`` (``naive_need``), from an
        unbounded ``pool``."""
        return self._shared(need=need, critical=critical, pool=pool)

    def _shared(self, *, need: int | None, critical: bool, pool: limits.Pool) -> Proposal:
        """The proposal for ``need`` from an unbounded pool, where the grant is what the
        policy allows whatever the instance holds: made once per pass."""
        known = self._unbounded.get((need, critical))
        if known is None:
            sized = self._sized(need)
            known = self._by_size.get((sized, critical))
            if known is None:
                known = self._by_size[sized, critical] = (
                    self._bounded(sized=None, current={}, critical=critical, pool=pool)
                    if sized is None
                    else self._proposed(sized=sized, critical=critical, pool=pool)
                )
            self._unbounded[need, critical] = known
        return known

    def _proposed(self, *, sized: Resources, critical: bool, pool: limits.Pool) -> Proposal:
        """``_bounded`` of ``sized`` from an unbounded ``pool``, remembered across passes
        (``_PROPOSED``): each refreshing pass of a steady Consumer asks again for the
        same few sizes."""
        config = self.config
        entry = _PROPOSED.get(id(config))
        if entry is None:
            if len(_PROPOSED) >= _MAX_TABLES:
                _PROPOSED.clear()
            entry = _PROPOSED[id(config)] = (config, {})
        table = entry[1]
        known = table.get((sized, critical))
        if known is None:
            if len(table) >= _MAX_SIZED:
                table.clear()
            known = table[sized, critical] = self._bounded(
                sized=sized, current={}, critical=critical, pool=pool
            )
        return known

    def _sized(self, need: int | None) -> Resources | None:
        """What one container needs for ``need`` msg/s (None: no estimate)."""
        autoscaling = self.config.autoscaling
        if need is None or autoscaling is None:
            return None
        table = self._pass_table(autoscaling)
        sized = table.get(need)
        if sized is None:
            if len(table) >= _MAX_SIZED:
                table.clear()
            if len(_ONE_OF) >= _MAX_SIZED:
                _ONE_OF.clear()  # sizes then compare equal, not identical: the same answer
            value = prediction.size_for_rate(rate=need, autoscaling=autoscaling)
            sized = table[need] = _ONE_OF.setdefault(value, value)
        return sized

    def _pass_table(self, autoscaling: Autoscaling) -> dict[int, Resources]:
        """This pass's table of ``_SIZED`` (sizes by need), found on first use."""
        if not self._table:
            key = (
                autoscaling.sizing_rate_per_core,
                autoscaling.cpu_increment_m,
                autoscaling.ram_per_core_b,
            )
            table = _SIZED.get(key)
            if table is None:
                if len(_SIZED) >= _MAX_TABLES:
                    _SIZED.clear()
                    _ONE_OF.clear()
                table = _SIZED[key] = {}
            self._table.append(table)
        return self._table[0]

    def _bounded(
        self,
        *,
        sized: Resources | None,
        current: Mapping[str, Resources],
        critical: bool,
        pool: limits.Pool,
    ) -> Proposal:
        """The proposal for the need ``sized`` (None: the fallback), bounded by the
        policies and drawn from ``pool``."""
        config = self.config
        proposed: dict[str, Resources] = {}
        shortage = 0
        for name in self.containers:
            bounds = config.policies.get(name)
            # Every container gets the instance's estimate (the Go predictor's
            # rule; policies keep sidecars small), or its fallback without one.
            estimate = sized if sized is not None else self.fallback.get(name, NO_RESOURCES)
            if estimate.is_empty and bounds is None:
                proposed[name] = NO_RESOURCES
                continue
            if critical:
                limited = limits.critical(estimate=estimate, bounds=bounds)
            else:
                limited = limits.apply_policy(estimate=estimate, bounds=bounds)
            grant = pool.grant(
                current=current.get(name, NO_RESOURCES), wanted=limited, bounds=bounds
            )
            proposed[name] = grant.resources
            shortage += grant.cpu_shortage_m
            if bounds is not None and bounds.min_cpu_m != bounds.max_cpu_m:
                # A container pinned by its policy (a sidecar) is sized on
                # purpose; only a cut on a container allowed to grow starves it.
                shortage += max(0, (estimate.cpu_req_m or 0) - (limited.cpu_req_m or 0))
        return Proposal(resources=proposed, cpu_shortage_m=shortage)

    def floors(self) -> dict[str, Resources]:
        """Paused autoscaling: every container at its policy's minAllowed (nothing drawn)."""
        floors: dict[str, Resources] = {}
        for name in self.containers:
            bounds = self.config.policies.get(name)
            floor = (
                None
                if bounds is None
                else fallbacks.from_policy(bounds=bounds, strategy=FallbackStrategy.MIN)
            )
            floors[name] = floor or NO_RESOURCES
        return floors
