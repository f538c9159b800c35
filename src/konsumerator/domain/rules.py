"""The named rules that decide one instance of one pass.

``planning.plan`` asks, for every instance index, the rules below in order
(a policy chain, as cert-manager's certificate policies): the first that has
something to say decides. An instance without a Deployment is decided by
``create_missing``; one with a Deployment by the first of

* ``roll_out_outdated``: template hash or partition list changed;
* ``roll_out_target``: in-place resizing given up (Infeasible, Deferred too long,
  refused), or ``Recreate`` mode with a target left from in-place mode;
* ``hold_at_floor``: autoscaling paused, every container at its minAllowed;
* ``scale_by_metrics``: the scaling state machine, in passes that refreshed metrics;

and, when none of them writes, ``resize_to_policy`` (manual mode: the policy is
the size) and then ``repair_drift``: a field of ours that someone else changed
is set back. A rule returns a ``Decision``: the resources and
scaling state the instance ends the pass with, and the write (``action``)
that gets it there, or ``None`` when nothing is written.

With ``updateMode: InPlaceOrRecreate`` (``in_place``) a resize is ``RESIZE_IN_PLACE``:
the Deployment keeps its template's resources and gets the target annotation, and
the decision carries a ``pods/resize`` patch for every running pod of the instance
that differs from the target (``resize_pods``; memory never lowered in place,
``pod_target``); creations and rollouts put the size in the template.

Resources come from ``sizing`` (the one place they are computed), drawn from
the global pool passed in explicitly; a proposal that is not applied gives
back what it drew.
"""

import functools
import math
import sys
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import msgspec

from konsumerator.domain import disruption, drift, keys, limits, qos, rendering, scaling
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.adaptive import adoption, certificate, demand
from konsumerator.domain.adaptive import memory as adaptive_memory
from konsumerator.domain.adaptive import policy as adaptive
from konsumerator.domain.adaptive.demand import Demand, Term
from konsumerator.domain.adaptive.memory import Memory, Recent
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.pods import ObservedPod, Pending, PodResize
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import NO_RESOURCES, Resources, compare_requests
from konsumerator.domain.scaling import (
    ScalingState,
    ScalingStatus,
    decide,
    settle,
    stamped,
    unsized,
    with_memory,
)
from konsumerator.domain.sizing import Proposal, Sizing
from konsumerator.domain.specs import Autoscaling, Bounds, ConsumerConfig, Owner, Predictor


class Action(StrEnum):
    CREATE = "create"
    ROLLOUT = "rollout"
    SCALE = "scale"
    # updateMode InPlaceOrRecreate: the new size goes into the target annotation
    # (the template is unchanged, so nothing rolls out) and the pods are resized.
    RESIZE_IN_PLACE = "resize-in-place"
    ANNOTATE = "annotate"
    REPAIR = "repair"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``scale_by_metrics`` finds for an instance of a pass from an unbounded pool,
    found ahead by the planner's shortcut (``planning._kept``) when that does not keep
    the instance, and handed to the rule in ``Context.verdicts``: the same proposal (a
    copy of its own), comparison and decision, for the same inputs. From an unbounded
    pool a proposal draws nothing, so finding it earlier changes nothing else."""

    proposal: Proposal
    comparison: int
    decision: scaling.Decision


# A pod whose resize the node has Deferred for longer than this is given up on:
# the instance is rolled out with the new size (the scheduler then places it).
DEFERRED_BOUND_S = 120.0


@dataclass(frozen=True, slots=True)
class Context:
    """What every instance's decision in one pass shares."""

    config: ConsumerConfig
    owner: Owner
    num_instances: int
    hash_value: str
    memory_format: Format
    sizing: Sizing
    # The metrics the pass sizes from (None without autoscaling), and whether
    # this pass fetched them: only then does the scaling state machine run.
    snapshot: MetricsSnapshot | None
    refreshed: bool
    now: datetime
    # The adaptive policy's memory this process kept of the Consumer's Deployments
    # (``adaptive_memory.Recent``; None: none, the annotations alone).
    recent: Recent | None = None
    # ``scale_by_metrics``'s verdicts found ahead, by instance index (``Verdict``).
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    # The inputs ``held`` found no hold for, by Deployment UID.
    unheld: dict[str, tuple[object, ...]] = field(default_factory=dict)
    # At most one: the decision the planner declined, until the next call of the rule
    # (``decline``). Kept by the pass, not the module: passes of different Consumers
    # run in different threads.
    declined: list["_Declined"] = field(default_factory=list)
    # The restarts for a scale-down this pass may still make (``domain.disruption``);
    # None: no budget (it cannot bind, or nothing is autoscaled).
    budget: disruption.RestartBudget | None = None

    def render(
        self,
        *,
        index: int,
        partitions: tuple[int, ...],
        resources: Mapping[str, Resources],
        scaling: ScalingState,
        cpu_shortage_m: int,
        template: Mapping[str, Resources] | None = None,
    ) -> dict[str, Any]:
        """The apply body of instance ``index`` (``cpu_shortage_m`` shown only when SATURATED).

        ``template``: the template's resources when they are not ``resources``
        (in-place mode, see ``rendering.render``)."""
        return rendering.render(
            config=self.config,
            owner=self.owner,
            index=index,
            partitions=partitions,
            num_instances=self.num_instances,
            resources=resources,
            scaling=scaling,
            cpu_shortage_m=reported_shortage(scaling, cpu_shortage_m),
            hash_value=self.hash_value,
            memory_format=self.memory_format,
            template_resources=template,
        )


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance index as the pass sees it."""

    index: int
    name: str
    partitions: tuple[int, ...]
    max_lag_s: int
    lagging: bool
    critical: bool
    # Its claimed Deployment (None: missing), and whether that is OUTDATED.
    deployment: ObservedDeployment | None = None
    outdated: bool = False
    # Its pods (in-place mode), and why an in-place resize of it was refused at act
    # time in an earlier pass (None: it was not).
    pods: tuple[ObservedPod, ...] = ()
    refused: str | None = None


# A msgspec Struct (frozen, hashable), built in C: see ``adaptive.memory.Memory``.
class Decision(msgspec.Struct, frozen=True):
    """How one instance ends the pass; ``action`` None means nothing is written."""

    action: Action | None
    resources: Mapping[str, Resources]
    scaling: ScalingState
    cpu_shortage_m: int
    message: str = ""
    # The write fixes what someone or something else changed: counted OUTDATED until done.
    outdated: bool = False
    # In-place mode: the template's resources when they are not ``resources``
    # (None: they are), the pod patches, and why in-place was given up (a fallback).
    template: Mapping[str, Resources] | None = None
    resizes: tuple[PodResize, ...] = ()
    fell_back: str | None = None
    # In-place mode: a running pod's spec or size is not yet its target (``in_place``).
    pods_pending: bool = False
    # The adaptive policy's memory after this pass, as the annotation would give it
    # back (``scale_adaptively``): kept in the process (``Context.recent``) whether
    # or not this decision writes it. None: the policy did not run.
    remembered: Memory | None = None

    @property
    def writes(self) -> bool:
        return self.action is not None


def reported_shortage(scaling: ScalingState, cpu_shortage_m: int) -> int:
    """The CPU shortage is reported only while SATURATED."""
    return cpu_shortage_m if scaling.status is ScalingStatus.SATURATED else 0


# The smallest move of the CPU shortage worth a write of ``cpu-saturation-level``: one
# resource step (CPU is sized in 100m steps), and at least a tenth of the level written.
LEVEL_STEP_M: Final = 100
LEVEL_FRACTION: Final = 10  # 1/10 of the written level


def level_moved(*, written: int, reported: int) -> bool:
    """Whether the shortage ``reported`` now moved meaningfully from the one last
    ``written`` to the Deployment (``cpu-saturation-level``), so that it is rewritten.

    Appearing (0 -> x) or going (x -> 0, leaving SATURATED) always counts: the
    annotation is there exactly while the instance is SATURATED. Otherwise the move
    must reach one resource step (``LEVEL_STEP_M``) and a tenth of the written level:
    a saturated instance's shortage follows its production, which moves by a few
    messages per second at every metrics refresh, and rewriting (and announcing) the
    Deployment for each of those millicores was one write per saturated instance per
    refresh, most of the operator's writes (docs/compatibility.md).
    """
    if written == reported:
        return False
    if written == 0 or reported == 0:
        return True
    moved = abs(reported - written)
    return moved >= LEVEL_STEP_M and moved * LEVEL_FRACTION >= written


def describe(resources: Mapping[str, Resources]) -> str:
    parts = []
    for name, r in sorted(resources.items()):
        parts.append(f"{name} cpu={r.cpu_req_m or 0}m mem={(r.mem_req_b or 0) // 1_000_000}M")
    return ", ".join(parts) or "no resources"


def compare(current: Mapping[str, Resources], proposed: Mapping[str, Resources]) -> int:
    """+1 if any container needs more, else -1 if any needs less, else 0.

    One verdict per instance: a pinned sidecar must not veto (or fake) the
    main container's resize, as the Go per-container loop let it.
    """
    verdict = 0
    for name, r in proposed.items():
        have = current.get(name, NO_RESOURCES)
        if have is r:
            continue
        result = compare_requests(have, r)
        if result == 1:
            return 1
        verdict = verdict or result
    return verdict


def _propose(
    ctx: Context, inst: Instance, pool: limits.Pool, *, critical: bool, rate: int | None = None
) -> Proposal:
    current = inst.deployment.current if inst.deployment is not None else {}
    return ctx.sizing.propose(
        partitions=inst.partitions, current=current, critical=critical, pool=pool, rate=rate
    )


def _asks_more(ctx: Context, inst: Instance, pool: limits.Pool, *, rate: int) -> bool:
    """Whether ``rate`` asks for more than the instance's current resources (the pool
    is left as it was)."""
    current = inst.deployment.current if inst.deployment is not None else {}
    saved = pool.available
    asked = compare(current, _propose(ctx, inst, pool, critical=inst.critical, rate=rate).resources)
    pool.restore(saved)
    return asked > 0


def _adaptive(ctx: Context) -> Autoscaling | None:
    """The Consumer's autoscaling when it uses the adaptive predictor and metrics are known."""
    a = ctx.config.autoscaling
    if a is None or a.predictor is not Predictor.ADAPTIVE or ctx.snapshot is None:
        return None
    return a


def _cpu(resources: Mapping[str, Resources]) -> int:
    return sum(r.cpu_req_m or 0 for r in resources.values())


def _mem(resources: Mapping[str, Resources]) -> int:
    return sum(r.mem_req_b or 0 for r in resources.values())


def _cpu_limit(resources: Mapping[str, Resources]) -> int:
    """Σ CPU limits (millicores); 0 when a container has none (the pods are unlimited)."""
    total = 0
    for r in resources.values():
        if r.cpu_lim_m is None:
            return 0
        total += r.cpu_lim_m
    return total


def _recalled(ctx: Context, d: ObservedDeployment) -> Memory | None:
    """The memory this process kept of ``d`` (``Context.recent``) while its annotation
    still holds what the memory was kept with; None: none."""
    recent = ctx.recent
    if recent is None:
        return None
    return recent.recall(uid=d.uid, annotation=d.annotations.get(keys.SCALING_MEMORY))


def _scaling_of(ctx: Context, d: ObservedDeployment) -> ScalingState:
    """``d``'s scaling state with the memory this process kept of it (``_recalled``);
    else as observed."""
    memory = _recalled(ctx, d)
    if memory is None:
        return d.scaling
    return with_memory(d.scaling, memory=memory, explanation=d.scaling.explanation)


def _above_policy(policies: Mapping[str, Bounds], current: Mapping[str, Resources]) -> bool:
    """Whether a container has more than its policy's ``maxAllowed`` (lowered by the user)."""
    for name, r in current.items():
        b = policies.get(name)
        if b is None:
            continue
        if b.max_cpu_m is not None and max(r.cpu_req_m or 0, r.cpu_lim_m or 0) > b.max_cpu_m:
            return True
        if b.max_mem_b is not None and max(r.mem_req_b or 0, r.mem_lim_b or 0) > b.max_mem_b:
            return True
    return False


def _into_policy(ctx: Context, inst: Instance, pool: limits.Pool) -> Proposal | None:
    """The instance's resources clamped into its containers' policies, drawn from
    ``pool``; None when they are within them.

    A user who raises ``minAllowed`` or lowers ``maxAllowed`` asks for that size now.
    The adaptive rules hold a scale-up in an outage (``outage``) and a scale-down while
    behind (``drained``), and held, an instance stayed outside its new bounds for as
    long as the outage or the backlog lasted. The correction moves the size no further
    than the bounds: the rules decide the rest afterwards."""
    d = inst.deployment
    assert d is not None
    policies = ctx.config.policies
    resources: dict[str, Resources] = {}
    outside = False
    for name, current in d.current.items():
        bounds = policies.get(name)
        clamped = limits.apply_policy(estimate=current, bounds=bounds)
        if clamped != current:
            outside = True
            clamped = pool.grant(current=current, wanted=clamped, bounds=bounds).resources
        resources[name] = clamped
    if not outside or not resources_differ(d.current, resources):
        return None
    return Proposal(resources=resources, cpu_shortage_m=0)


def _restart_held(ctx: Context, inst: Instance) -> bool:
    """Whether a scale-down that restarts ``inst``'s pods waits for the budget of this
    pass (``disruption``). Asked only for a restart the operator chooses: a scale-down
    under ``Recreate``, or the rollout a refused scale-down in place falls back to. Not
    for an instance above its container policy's ``maxAllowed``: the user lowered it,
    and asked for that scale-down (it is not counted either)."""
    budget = ctx.budget
    if budget is None:
        return False
    d = inst.deployment
    if d is not None and _above_policy(ctx.config.policies, d.current):
        return False
    return not budget.admit(inst.index)


def _actuate_adaptively(
    ctx: Context, inst: Instance, pool: limits.Pool, *, why: str
) -> tuple[Proposal, ScalingState] | None:
    """A creation or rollout under the adaptive predictor: sized for the need, and
    remembered as a resize (its pods start now)."""
    autoscaling = _adaptive(ctx)
    if autoscaling is None or ctx.snapshot is None:
        return None
    d = inst.deployment
    memory = _scaling_of(ctx, d).memory if d is not None else None
    if d is not None and d.partitions is not None and tuple(d.partitions) != tuple(inst.partitions):
        # Re-grouped (numPartitionsPerInstance changed): the memory is of other partitions.
        # Its peak sized the rollout for the old group (4 partitions' need for 2: twice
        # the CPU, then a second restart to give it back), and its throughput judged the
        # next scale-up against the old group's.
        memory = None
    sized = adaptive.size(
        snapshot=ctx.snapshot,
        partitions=inst.partitions,
        autoscaling=autoscaling,
        memory=memory,
        now=ctx.now,
    )
    proposal = _propose(ctx, inst, pool, critical=inst.critical, rate=sized.trigger)
    explanation = adaptive.explain(
        sized=sized, autoscaling=autoscaling, cpu_m=_cpu(proposal.resources), rule=why
    )
    saturated = inst.lagging and proposal.cpu_shortage_m > 0
    state = ScalingState(
        status=ScalingStatus.SATURATED if saturated else ScalingStatus.RUNNING,
        since=ctx.now,
        memory=msgspec.structs.replace(sized.memory, resized_at=ctx.now),
        explanation=explanation,
    )
    return proposal, state


def create_missing(ctx: Context, inst: Instance, pool: limits.Pool) -> Decision:
    """A missing Deployment is created, sized from the freshest metrics (or the fallback)."""
    adaptively = _actuate_adaptively(ctx, inst, pool, why="create")
    if adaptively is not None:
        proposal, scaling = adaptively
    else:
        proposal = _propose(ctx, inst, pool, critical=inst.critical)
        saturated = inst.lagging and proposal.cpu_shortage_m > 0
        status = ScalingStatus.SATURATED if saturated else ScalingStatus.RUNNING
        # Sized from the fallback (no snapshot): no time, so the first size from metrics
        # is taken at once (``scaling.unsized``), by either predictor.
        fallback = ctx.config.autoscaling is not None and ctx.snapshot is None
        scaling = ScalingState(status=status, since=None if fallback else ctx.now)
    return Decision(
        action=Action.CREATE,
        resources=proposal.resources,
        scaling=scaling,
        cpu_shortage_m=proposal.cpu_shortage_m,
        message=f"created instance {inst.index} for partitions "
        f"{partitioning.format_list(inst.partitions)}: {describe(proposal.resources)}",
    )


def roll_out_outdated(ctx: Context, inst: Instance, pool: limits.Pool) -> Decision | None:
    """An OUTDATED Deployment is rebuilt from the template and resized, without pending.

    Its pods restart anyway. A paused instance, or one with resources while
    metrics are not yet known, keeps the resources it has.
    """
    d = inst.deployment
    if d is None or not inst.outdated:
        return None
    keep = d.paused or (
        ctx.config.autoscaling is not None
        and ctx.snapshot is None
        and any(not r.is_empty for r in d.current.values())
    )
    adaptively = None if keep else _actuate_adaptively(ctx, inst, pool, why="rollout")
    if adaptively is not None:
        proposal, scaling = adaptively
    else:
        proposal = (
            Proposal(resources=dict(d.current), cpu_shortage_m=0)
            if keep
            else _propose(ctx, inst, pool, critical=inst.critical)
        )
        saturated = inst.lagging and proposal.cpu_shortage_m > 0
        scaling = settle(d.scaling, saturated=saturated, now=ctx.now)
        if not keep and ctx.snapshot is not None:
            scaling = stamped(scaling, now=ctx.now)  # sized from metrics now
    return Decision(
        action=Action.ROLLOUT,
        resources=proposal.resources,
        scaling=scaling,
        cpu_shortage_m=proposal.cpu_shortage_m,
        message=f"rolled out instance {inst.index}: {describe(proposal.resources)}",
    )


def hold_at_floor(ctx: Context, inst: Instance, pool: limits.Pool) -> Decision | None:
    """Autoscaling paused (the disable annotation): every container goes to its minAllowed."""
    d = inst.deployment
    if d is None or not ctx.config.paused:
        return None
    floors = ctx.sizing.floors()
    if all(d.current.get(n, NO_RESOURCES) == r for n, r in floors.items()):
        return None
    return Decision(
        action=Action.SCALE,
        resources=floors,
        scaling=settle(d.scaling, saturated=False, now=ctx.now),
        cpu_shortage_m=0,
        message=f"autoscaling paused: instance {inst.index} set to minAllowed",
    )


def scale_by_metrics(ctx: Context, inst: Instance, pool: limits.Pool) -> Decision | None:
    """The scaling state machine (``scaling.decide``), only in passes that refreshed metrics.

    The pending timers then measure observations, not reconcile frequency.
    Without a resize the state may still change (an ANNOTATE write, or none
    when only the in-memory level changes, or the shortage moved less than
    ``level_moved`` asks: the decision then keeps the level written), and the
    proposal gives back what it drew from the pool. A verdict the planner's
    shortcut found ahead for this instance (``Context.verdicts``) is taken as it
    was found.
    """
    d, autoscaling = inst.deployment, ctx.config.autoscaling
    if (
        d is None
        or d.paused
        or ctx.config.paused
        or autoscaling is None
        or autoscaling.predictor is not Predictor.NAIVE
        or ctx.snapshot is None
        or not ctx.refreshed
    ):
        return None
    saved = pool.available
    # A Consumer switched back from adaptive: its memory is dropped (one ANNOTATE
    # write). Kept, the Deployment explained the adaptive size it no longer had, and
    # its resizedAt kept a later switch to adaptive from adopting naive's sizes.
    # A verdict ``_kept`` found ahead was decided over the state as observed, so it is
    # taken only when nothing is dropped from it.
    adaptive_left = d.scaling.memory is not None or bool(d.scaling.explanation)
    state = with_memory(d.scaling, memory=None, explanation="") if adaptive_left else d.scaling
    handed = ctx.verdicts.pop(inst.index, None) if ctx.verdicts else None
    if handed is not None and not adaptive_left:
        proposal, comparison, decision = handed.proposal, handed.comparison, handed.decision
    else:
        proposal = _propose(ctx, inst, pool, critical=inst.critical)
        comparison = compare(d.current, proposal.resources)
        decision = decide(
            state=state,
            comparison=comparison,
            lagging=inst.lagging,
            cpu_shortage_m=proposal.cpu_shortage_m,
            now=ctx.now,
            pending_up_s=autoscaling.pending_up_s,
            pending_down_s=autoscaling.pending_down_s,
        )
    if decision.apply and comparison < 0 and not ctx.config.in_place and _restart_held(ctx, inst):
        # Held by the restart budget: the size and the pending state stay.
        decision = scaling.Decision(apply=False, state=disruption.hold(state, now=ctx.now))
    if decision.apply:
        verb = "scaled up" if comparison > 0 else "scaled down"
        return Decision(
            action=Action.SCALE,
            resources=proposal.resources,
            scaling=decision.state,
            cpu_shortage_m=proposal.cpu_shortage_m,
            message=f"{verb} instance {inst.index} (max lag {inst.max_lag_s}s): "
            f"{describe(d.current)} -> {describe(proposal.resources)}",
        )
    pool.restore(saved)
    level = reported_shortage(decision.state, proposal.cpu_shortage_m)
    changed = decision.state != d.scaling or level_moved(written=d.saturation_m, reported=level)
    if not changed:
        level = d.saturation_m  # what the Deployment shows: no drift to repair
    return Decision(
        action=Action.ANNOTATE if changed else None,
        resources=d.current,
        scaling=decision.state,
        cpu_shortage_m=level,
        message=f"instance {inst.index} is {decision.state.status.value} "
        f"(max lag {inst.max_lag_s}s)"
        if changed
        else "",
    )


def _consumed(snapshot: MetricsSnapshot, partitions: tuple[int, ...]) -> float:
    """What the instance of ``partitions`` consumes now (msg/s; 0 for no sample): the
    ``sum``, which for one partition is ``0 +`` its sample (asked for every instance of
    every refresh). A sample that is no finite number (NaN, an infinity: the parser and
    the replay's loader drop them, a replay built in code need not) reads as 0, as
    ``metrics.truncate`` reads one, and a sum past the largest float is that float; a
    sum of finite samples is checked once."""
    consumption = snapshot.consumption
    if len(partitions) == 1:
        total = 0 + (consumption.get(partitions[0]) or 0.0)
    else:
        total = sum(consumption.get(p) or 0.0 for p in partitions)
    if math.isfinite(total):
        return total
    finite = sum(v for p in partitions if math.isfinite(v := consumption.get(p) or 0.0))
    return min(finite, sys.float_info.max)


def _consumed_and_effect(
    *,
    ctx: Context,
    inst: Instance,
    snapshot: MetricsSnapshot,
    sized: adaptive.Sized,
    knobs: adaptive.Knobs,
    memory: Memory | None,
    cpu_m: int,
    limit_m: int,
) -> tuple[float, adaptive.Effect]:
    """The instance's consumption now, and what the last resize did to it (``cpu_m``,
    ``limit_m``: its CPU request and limit, ``_cpu`` and ``_cpu_limit`` of its size).

    The consumption is also what a scale-up remembers to be judged by later
    (``_remember_resize``); the effect feeds the rules and the memory.
    """
    consumed = _consumed(snapshot, inst.partitions)
    effect = adaptive.effect(
        memory=memory,
        consumed=consumed,
        produced=sized.demand.production,
        cpu_m=cpu_m,
        now=ctx.now,
        knobs=knobs,
        limit_m=limit_m,
    )
    return consumed, effect


def _adaptive_situation(
    *,
    ctx: Context,
    inst: Instance,
    snapshot: MetricsSnapshot,
    autoscaling: Autoscaling,
    knobs: adaptive.Knobs,
    proposal: Proposal,
    comparison: int,
    effect: adaptive.Effect,
    consumed: float,
    production_need: float,
    trigger: float,
    lent: bool,
    state: ScalingState,
    cpu_m: int,
    limit_m: int,
    drained: bool,
    banded_cpu_m: int = 0,
    spike: bool = False,
    at_cap: bool = False,
) -> adaptive.Situation:
    """Everything ``adaptive.decide`` judges for one instance in this pass (``state``:
    its scaling state, with the memory kept in the process, ``_scaling_of``; ``cpu_m``,
    ``limit_m``: its CPU request and limit now; ``drained``: ``adaptive.drained``)."""
    proposed_cpu_m = _cpu(proposal.resources)
    return adaptive.Situation(
        state=state,
        comparison=comparison,
        current_cpu_m=cpu_m,
        proposed_cpu_m=proposed_cpu_m,
        lagging=inst.lagging,
        urgent=adaptive.urgent(
            snapshot=snapshot,
            partitions=inst.partitions,
            tolerable_lag_s=autoscaling.tolerable_lag_s,
            horizon_s=knobs.pending_up_s,
            capacity=None
            if adaptive.observed(memory=state.memory, now=ctx.now, actuation_s=knobs.actuation_s)
            else cpu_m / 1000 * autoscaling.sizing_rate_per_core,
        ),
        emptied=adaptive.emptied(snapshot=snapshot, partitions=inst.partitions),
        production_need=production_need,
        drained=drained,
        cpu_shortage_m=proposal.cpu_shortage_m,
        now=ctx.now,
        effect=effect,
        outage=adaptive.outage(
            consumed=consumed,
            cpu_m=cpu_m,
            rate_per_core=autoscaling.sizing_rate_per_core,
        ),
        settled=adaptive.settled(
            memory=state.memory,
            now=ctx.now,
            proposed_cpu_m=proposed_cpu_m,
            production_need=production_need,
            lent=lent,
            proposed_limit_m=_cpu_limit(proposal.resources),
        ),
        bursting=adaptive.bursting(
            lent=lent,
            trigger=trigger,
            limit_m=limit_m,
            rate_per_core=autoscaling.sizing_rate_per_core,
        ),
        banded_cpu_m=banded_cpu_m,
        spike=spike,
        at_cap=at_cap,
    )


def _at_cap(
    ctx: Context,
    inst: Instance,
    pool: limits.Pool,
    *,
    saved: tuple[int | None, int | None],
    proposal: Proposal,
    knobs: adaptive.Knobs,
    rate_per_core: float,
) -> tuple[Proposal, bool]:
    """In an outage that restarts the pods to resize them, the proposal at the policy's
    cap and True when the drain's size (``proposal``) is within the band of it; else
    ``proposal`` and False.

    The backlog of an outage only grows, and so does the drain's need, up to the cap
    (``maxAllowed``, or the pool). A restart at the drain's start stops consumption for R
    when it is needed most; one during the outage costs nothing. It is worth making once
    no later need can ask for another: at the cap itself, made when the drain's size is
    already within the band (``adaptive.band``) of it. The cap is the CPU a need no
    policy grants whole is given, sized as that CPU's own rate is (memory per limit
    core, not the unbounded need's). Without a cap (no ``maxAllowed``, no pool) the
    outage holds, as before; so it does while a larger need could still be given more
    memory than the cap's size has: a proposal whose CPU the policy clamps keeps the
    memory of its whole need (``ramPerCore`` per limit core of the need, as the Go
    operator sizes it), so the drain's proposal, whose need grows with the backlog,
    would restart the pods for memory alone at the drain's start (a hostile review:
    ``maxAllowed`` 3 cores and no memory bound, 768Mi at the cap, 1Gi asked by the
    drain)."""
    drawn = pool.available
    pool.restore(saved)
    unbounded = _propose(ctx, inst, pool, critical=inst.critical, rate=_UNBOUNDED_RATE)
    pool.restore(saved)
    if unbounded.cpu_shortage_m > 0:
        cap_m = max((r.cpu_req_m or 0) for r in unbounded.resources.values())
        rate = math.ceil(cap_m * rate_per_core / 1000)
        capped = _propose(ctx, inst, pool, critical=inst.critical, rate=rate)
        if _cpu(proposal.resources) * (1 + knobs.band) >= _cpu(capped.resources) and _mem(
            unbounded.resources
        ) <= _mem(capped.resources):
            return capped, True
    pool.restore(drawn)
    return proposal, False


def _remember_resize(
    *,
    memory: Memory,
    now: datetime,
    up: bool,
    consumed: float,
    cpu_before_m: int,
    short_need: float,
    for_backlog: bool,
    up_need: float = 0.0,
    limit_before_m: int = 0,
) -> Memory:
    """The policy's memory once a resize is applied.

    A scale-up remembers the throughput and CPU it starts from, to be judged by
    (``adaptive.effect``), and the production need when the CPU was short for
    production itself, 0 otherwise (``adaptive.settled``), and whether it was
    mostly for a backlog (``adaptive.drain_over``); a scale-down clears them. A
    fresh resize is not yet ineffective.
    """
    return msgspec.structs.replace(
        memory,
        resized_at=now,
        throughput_before=min(2**62, int(consumed)) if up else 0,
        cpu_before_m=cpu_before_m if up else 0,
        limit_before_m=limit_before_m if up else 0,
        ineffective=False,
        short_need=min(2**62, math.ceil(short_need)) if up else 0,
        for_backlog=up and for_backlog,
        up_need=min(2**62, math.ceil(up_need)) if up and for_backlog else 0,
        quiet_from_m=adaptive.quiet_from(memory=memory, now=now, cpu_before_m=cpu_before_m)
        if up
        else 0,
    )


def _adaptive_scale(
    *,
    inst: Instance,
    proposal: Proposal,
    state: ScalingState,
    up: bool,
    explanation: str,
    remembered: Memory,
) -> Decision:
    """The SCALE decision when the adaptive rules apply the proposal now."""
    d = inst.deployment
    assert d is not None
    verb = "scaled up" if up else "scaled down"
    return Decision(
        action=Action.SCALE,
        resources=proposal.resources,
        scaling=state,
        cpu_shortage_m=proposal.cpu_shortage_m,
        message=f"{verb} instance {inst.index} (max lag {inst.max_lag_s}s): "
        f"{describe(d.current)} -> {describe(proposal.resources)}; {explanation}",
        remembered=remembered,
    )


def _durably_changed(state: ScalingState, observed: ScalingState, *, remembered: Memory) -> bool:
    """Whether ``state`` differs from the ``observed`` annotations in what must survive a
    restart: the status, its time, and the memory but for the recent peak
    (``adaptive_memory.durable``), which the process keeps between writes."""
    return (
        state.status is not observed.status
        or state.since != observed.since
        or not adaptive_memory.durably_equal(remembered, observed.memory)
    )


def _hold_changes(
    d: ObservedDeployment, *, cpu_shortage_m: int, state: ScalingState, remembered: Memory
) -> bool:
    """Whether a proposal (with ``cpu_shortage_m``) that waits is written
    (``_adaptive_hold``): when the scaling state (but for the recent peak, see
    ``_durably_changed``) changed or the reported shortage moved (``level_moved``). It
    reads no explanation: ``state`` may be the verdict's before one is added."""
    return _durably_changed(state, d.scaling, remembered=remembered) or level_moved(
        written=d.saturation_m, reported=reported_shortage(state, cpu_shortage_m)
    )


def _adaptive_unchanged(inst: Instance, *, remembered: Memory) -> Decision:
    """The decision when the proposal waits and nothing is written (``_hold_changes``):
    the Deployment as it is, its explanation and level the ones of its last write (so
    no drift to repair), and the memory kept in the process."""
    d = inst.deployment
    assert d is not None
    return Decision(
        action=None,
        resources=d.current,
        scaling=d.scaling,
        cpu_shortage_m=d.saturation_m,
        remembered=remembered,
    )


def _adaptive_hold(
    *,
    inst: Instance,
    proposal: Proposal,
    state: ScalingState,
    explanation: str,
    remembered: Memory,
) -> Decision:
    """The decision when the proposal waits: the resources stay, the state is recorded.

    An ANNOTATE write only when ``_hold_changes``; otherwise no write at all
    (``_adaptive_unchanged``), and the explanation (and level) on the Deployment
    stay the ones of its last write.
    """
    d = inst.deployment
    assert d is not None
    if not _hold_changes(
        d, cpu_shortage_m=proposal.cpu_shortage_m, state=state, remembered=remembered
    ):
        return _adaptive_unchanged(inst, remembered=remembered)
    return Decision(
        action=Action.ANNOTATE,
        resources=d.current,
        scaling=state,
        cpu_shortage_m=reported_shortage(state, proposal.cpu_shortage_m),
        message=f"instance {inst.index} is {state.status.value} "
        f"(max lag {inst.max_lag_s}s); {explanation}",
        remembered=remembered,
    )


# A need no policy grants whole: its proposal is the policy's cap (``_at_cap``).
_UNBOUNDED_RATE: Final = 10**12

# The rule of a resize the adaptive rules held, made for a size outside the policy.
BOUNDS: Final = (
    "resourcePolicy: outside its minAllowed or maxAllowed (changed); moved into them now"
)
# The rule of an adaptive scale-down held by the restart budget (``disruption``).
HELD: Final = "restart_budget: waiting for its turn (restartBudgetPercent)"


@dataclass(frozen=True, slots=True)
class _Declined:
    """A decision of ``scale_adaptively`` that its caller did not take, handed to the next
    call in the pass (``decline``): for ``inst`` (identity), from ``pool`` with
    ``before`` available, leaving ``after``."""

    inst: Instance
    pool: limits.Pool
    before: tuple[int | None, int | None]
    after: tuple[int | None, int | None]
    decision: Decision | None


def decline(
    *,
    ctx: Context,
    inst: Instance,
    pool: limits.Pool,
    before: tuple[int | None, int | None],
    after: tuple[int | None, int | None],
    decision: Decision | None,
) -> None:
    """Hand ``decision``, which ``scale_adaptively`` made for ``inst`` in ``ctx`` from
    ``pool`` (``before`` available, ``after`` once it decided; the caller gave that
    back), to its next call: when that is for the very same instance, context and pool
    with ``before`` available again, it is the answer, and the pool is left as the rule
    left it. Why: the planner asks the rule first (``planning._adaptively_kept``) and,
    for any decision but a plain keep (a resize, an ANNOTATE write: some 4,500 of 21,000
    in the bench's 10,000 steps), the rule chain asks it again for that instance right
    after, with the same inputs; it ran in full twice. Only the next call may take it
    (it is forgotten by any call), so nothing outlives the instance it was made for."""
    ctx.declined[:] = [
        _Declined(inst=inst, pool=pool, before=before, after=after, decision=decision)
    ]


def _taken(ctx: Context, inst: Instance, pool: limits.Pool) -> tuple[bool, Decision | None]:
    """The declined decision (``decline``) when it is for this call (True, it), forgotten
    either way."""
    if not ctx.declined:
        return False, None
    declined = ctx.declined.pop()
    if declined.inst is not inst or declined.pool is not pool or pool.available != declined.before:
        return False, None
    pool.restore(declined.after)
    return True, declined.decision


def scale_adaptively(
    ctx: Context, inst: Instance, pool: limits.Pool, *, certify: bool = True
) -> Decision | None:
    """The adaptive predictor (``domain.adaptive``), in passes that refreshed metrics.

    The proposal is sized for the adaptive need (``adaptive.size``), and its rules
    (``adaptive.decide``) say whether it is applied now. What the policy remembers
    (the recent peak, the last resize) and why it decided are written to the
    Deployment with the scaling status: an ANNOTATE write when only they change.

    An instance this rule kept as it is ("right-sized", nothing written) carries a
    certificate of that (``adaptive.certificate``) until one of its inputs changes:
    then only the sized need and the memory are found again (``certify=False``: never
    read nor made, the rule in full, which the certificate must always agree with).
    """
    if certify:
        taken, decision = _taken(ctx, inst, pool)
        if taken:
            return decision
    d, autoscaling, snapshot = inst.deployment, _adaptive(ctx), ctx.snapshot
    if d is None or d.paused or ctx.config.paused or autoscaling is None or not ctx.refreshed:
        return None
    assert snapshot is not None
    if certify:
        held = _held_keep(ctx, inst, d, pool, snapshot=snapshot, autoscaling=autoscaling)
        if held is not None:
            return held
    knobs = adaptive.knobs_for(autoscaling)  # one Knobs object per Autoscaling object
    observed = _scaling_of(ctx, d)
    drained = adaptive.drained(
        snapshot=snapshot, partitions=inst.partitions, actuation_s=knobs.actuation_s
    )
    cpu_m, limit_m = _cpu(d.current), _cpu_limit(d.current)
    sized = adaptive.size(
        snapshot=snapshot,
        partitions=inst.partitions,
        autoscaling=autoscaling,
        memory=observed.memory,
        now=ctx.now,
        knobs=knobs,
        keeping_up=drained,
        request_rate=cpu_m * autoscaling.sizing_rate_per_core / 1000,
    )
    # An instance sized before the adaptive predictor keeps its size while it keeps up
    # (``adoption``): an upgrade does not restart the instances for headroom alone.
    # Not one created without metrics (``scaling.unsized``): no one sized it.
    asks = (
        sized.asks
        if unsized(observed)
        else adoption.asks(
            sized=sized,
            memory=observed.memory,
            waiting=observed.status is ScalingStatus.PENDING_SCALE_UP,
            snapshot=snapshot,
            partitions=inst.partitions,
            actuation_s=knobs.actuation_s,
        )
    )
    consumed, effect = _consumed_and_effect(
        ctx=ctx,
        inst=inst,
        snapshot=snapshot,
        sized=sized,
        knobs=knobs,
        memory=observed.memory,
        cpu_m=cpu_m,
        limit_m=limit_m,
    )
    lends = adaptive.lends(
        consumed=consumed, cpu_m=cpu_m, rate_per_core=autoscaling.sizing_rate_per_core
    )
    lent = lends or (observed.memory is not None and observed.memory.lent)
    ineffective = effect is adaptive.Effect.INEFFECTIVE
    memory = sized.memory
    if memory.ineffective is not ineffective or memory.lent is not lent:
        # Mostly both already hold (``replace`` with the same values: the same memory).
        memory = msgspec.structs.replace(memory, ineffective=ineffective, lent=lent)
    certifiable = certify and pool.unbounded and asks > 0
    if certifiable:
        kept = _certified_keep(ctx, inst, d, sized=sized, asks=asks, memory=memory)
        if kept is not None:
            assert kept.remembered is not None
            _hold(
                ctx,
                inst,
                d,
                sized=sized,
                asks=asks,
                drained=drained,
                remembered=kept.remembered,
                knobs=knobs,
                cpu_m=cpu_m,
                limit_m=limit_m,
            )
            return kept
    saved = pool.available
    proposal = _propose(ctx, inst, pool, critical=inst.critical, rate=asks)
    comparison = first = compare(d.current, proposal.resources)
    if comparison > 0 and sized.up_rate != asks:
        # A scale-up is sized for its restart (``adaptive.Sized.up_rate``), which
        # the headroom alone (``trigger``) did not ask for.
        pool.restore(saved)
        proposal = _propose(ctx, inst, pool, critical=inst.critical, rate=sized.up_rate)
    at_cap = False
    if (
        comparison > 0
        and not adaptive.resizes_cheaply(knobs)
        and adaptive.outage(
            consumed=consumed, cpu_m=cpu_m, rate_per_core=autoscaling.sizing_rate_per_core
        )
    ):
        proposal, at_cap = _at_cap(
            ctx,
            inst,
            pool,
            saved=saved,
            proposal=proposal,
            knobs=knobs,
            rate_per_core=autoscaling.sizing_rate_per_core,
        )
    banded_cpu_m = 0
    if comparison < 0 and sized.rate != asks:
        # A scale-down is decided with the restart term: between the two there is
        # nothing to do; it goes to the headroom (``adaptive.Sized.down_rate``).
        pool.restore(saved)
        proposal = _propose(ctx, inst, pool, critical=inst.critical, rate=sized.rate)
        comparison = min(0, compare(d.current, proposal.resources))
        if comparison < 0 and sized.down_rate < sized.rate:
            banded_cpu_m = _cpu(proposal.resources)
            pool.restore(saved)
            proposal = _propose(ctx, inst, pool, critical=inst.critical, rate=sized.down_rate)
    spike = (
        comparison > 0
        and adaptive.resizes_cheaply(knobs)
        and not _asks_more(ctx, inst, pool, rate=sized.now_asks)
    )
    situation = _adaptive_situation(
        ctx=ctx,
        inst=inst,
        snapshot=snapshot,
        autoscaling=autoscaling,
        knobs=knobs,
        proposal=proposal,
        comparison=comparison,
        effect=effect,
        consumed=consumed,
        production_need=sized.peak,
        trigger=sized.trigger,
        lent=lent,
        state=observed,
        cpu_m=cpu_m,
        limit_m=limit_m,
        drained=drained,
        banded_cpu_m=banded_cpu_m,
        spike=spike,
        at_cap=at_cap,
    )
    verdict = adaptive.decide(situation, knobs=knobs)
    if verdict.now_sized and comparison > 0 and sized.now_up_rate < sized.up_rate:
        # After its pending period, a scale-up goes to the need of this pass, not to
        # the held peak (``adaptive.spike``): it asks for more itself (``spike``).
        pool.restore(saved)
        proposal = _propose(ctx, inst, pool, critical=inst.critical, rate=sized.now_up_rate)
    if verdict.apply and comparison < 0 and not ctx.config.in_place and _restart_held(ctx, inst):
        verdict = msgspec.structs.replace(
            verdict, apply=False, state=disruption.hold(observed, now=ctx.now), rule=HELD
        )
    if not verdict.apply and comparison != 0:
        # Held: nothing of the proposal is drawn, but a correction into the policy.
        pool.restore(saved)
        bounded = _into_policy(ctx, inst, pool)
        if bounded is not None:
            proposal, comparison = bounded, compare(d.current, bounded.resources)
            state = settle(observed, saturated=False, now=ctx.now)
            verdict = msgspec.structs.replace(verdict, apply=True, state=state, rule=BOUNDS)
    if comparison == 0 and asks < sized.asks:
        verdict = msgspec.structs.replace(verdict, rule=f"adopted: {adoption.HELD}")
    up = comparison > 0
    if verdict.apply and unsized(observed):
        # The first size from metrics is remembered as a creation (``_actuate_adaptively``):
        # what the fallback's size consumed (or was lent) says nothing of the new size.
        memory = msgspec.structs.replace(sized.memory, resized_at=ctx.now)
    elif verdict.apply:
        memory = _memory_of_resize(
            ctx=ctx,
            memory=memory,
            sized=sized,
            up=up,
            consumed=consumed,
            drained=drained,
            cpu_before_m=cpu_m,
            limit_before_m=limit_m,
            actuation_s=knobs.actuation_s,
            recovery_s=knobs.recovery_s,
        )
        # A scale-up forgets that the node lent CPU unless it does now (it may be busy).
        memory = msgspec.structs.replace(memory, lent=lends if up else lent)
    # Resized, or at the size the metrics ask for: sized from metrics (``scaling.unsized``).
    resized = (
        stamped(verdict.state, now=ctx.now) if verdict.apply or comparison == 0 else verdict.state
    )
    # What the next pass reads, written or not (``Decision.remembered``).
    remembered = adaptive_memory.as_written(memory)
    if not verdict.apply and not _hold_changes(
        d, cpu_shortage_m=proposal.cpu_shortage_m, state=resized, remembered=remembered
    ):
        # Most instances of most passes: nothing written, so no explanation is made (it
        # costs more than any rule), nor a state to carry it.
        pool.restore(saved)  # nothing applied: give back what the proposal reserved
        if certifiable and _certifiable(
            inst, observed, first=first, comparison=comparison, proposal=proposal
        ):
            _certify(
                ctx,
                inst,
                d,
                first=first,
                asks=asks,
                decided=sized.rate if first < 0 else sized.up_rate,
                cpu_shortage_m=proposal.cpu_shortage_m,
                pool=pool,
            )
            _hold(
                ctx,
                inst,
                d,
                sized=sized,
                asks=asks,
                drained=drained,
                remembered=remembered,
                knobs=knobs,
                cpu_m=cpu_m,
                limit_m=limit_m,
            )
        return _adaptive_unchanged(inst, remembered=remembered)
    explanation = adaptive.explain(
        sized=sized,
        autoscaling=autoscaling,
        cpu_m=_cpu(proposal.resources),
        rule=verdict.rule,
        up=up,
        down=comparison < 0,
        now_sized=verdict.now_sized,
    )
    state = with_memory(resized, memory=memory, explanation=explanation)
    if verdict.apply:
        return _adaptive_scale(
            inst=inst,
            proposal=proposal,
            state=state,
            up=up,
            explanation=explanation,
            remembered=remembered,
        )
    pool.restore(saved)  # nothing applied: give back what the proposal reserved
    return _adaptive_hold(
        inst=inst, proposal=proposal, state=state, explanation=explanation, remembered=remembered
    )


def _certifiable(
    inst: Instance, observed: ScalingState, *, first: int, comparison: int, proposal: Proposal
) -> bool:
    """Whether ``scale_adaptively`` kept the instance (nothing written) by a verdict that
    reads nothing but the comparison, the shortage and what the certificate fixes
    (``adaptive.certificate``): "right-sized" (``comparison`` 0), at ``asks`` itself
    (``first``, the comparison there, 0) or at the rate a scale-down is decided with
    (``first`` below 0); or "saturated" (``first`` above 0: SATURATED, lagging, and
    the scale-up's proposal still short), the first rule of ``adaptive.decide``'s
    scale-up, which reads nothing else either."""
    if comparison == 0:
        return True
    return (
        first > 0
        and observed.status is ScalingStatus.SATURATED
        and inst.lagging
        and proposal.cpu_shortage_m > 0
    )


def _certified_keep(
    ctx: Context,
    inst: Instance,
    d: ObservedDeployment,
    *,
    sized: adaptive.Sized,
    asks: int,
    memory: Memory,
) -> Decision | None:
    """``scale_adaptively``'s decision when a certificate (``adaptive.certificate``) says
    what it is: the instance kept as it is, with ``memory`` (the pass's, as the full rule
    computes it) remembered. None: no certificate for these inputs, a rate outside it,
    or the memory would be written (the full rule decides).

    Within the certificate the full rule finds the same comparisons and the certified
    shortage, so its verdict leaves ``d``'s status and time as they are ("right-sized":
    ``settle``, and ``stamped`` of a state with a time; "saturated": the state itself),
    and whether it writes is ``_hold_changes`` of ``d``'s own state with the memory of
    this pass."""
    certified = certificate.recall(
        d=d, config=ctx.sizing.config, critical=inst.critical, lagging=inst.lagging
    )
    if certified is None or not certified.admits(
        asks=asks, decided=sized.rate if certified.first < 0 else sized.up_rate
    ):
        return None
    remembered = adaptive_memory.as_written(memory)
    if _hold_changes(
        d, cpu_shortage_m=certified.cpu_shortage_m, state=d.scaling, remembered=remembered
    ):
        return None
    return _adaptive_unchanged(inst, remembered=remembered)


def _held_keep(
    ctx: Context,
    inst: Instance,
    d: ObservedDeployment,
    pool: limits.Pool,
    *,
    snapshot: MetricsSnapshot,
    autoscaling: Autoscaling,
) -> Decision | None:
    """``scale_adaptively``'s decision when the peak's certificate says what it is
    (``held``): the instance kept as it is, remembering the memory the rule computes.
    Not asked again when the planner asked it in this pass with these very inputs
    (``Context.unheld``)."""
    asked = ctx.unheld.get(d.uid)
    if asked is not None and _same(
        asked,
        (d, inst.partitions, inst.critical, inst.lagging, pool.unbounded, snapshot, autoscaling),
    ):
        return None
    remembered = held(
        ctx,
        d=d,
        partitions=inst.partitions,
        critical=inst.critical,
        lagging=inst.lagging,
        unbounded=pool.unbounded,
        snapshot=snapshot,
        autoscaling=autoscaling,
    )
    return None if remembered is None else _adaptive_unchanged(inst, remembered=remembered)


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Whether ``a`` and ``b`` hold the very same objects (identity, not equality)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def held(
    ctx: Context,
    *,
    d: ObservedDeployment,
    partitions: tuple[int, ...],
    critical: bool,
    lagging: bool,
    unbounded: bool,
    snapshot: MetricsSnapshot,
    autoscaling: Autoscaling,
) -> Memory | None:
    """``_hold_standing``'s answer, and when it is None the inputs it was None for,
    remembered for the pass (``Context.unheld``): the planner asks for every instance it
    kept last pass before the rule loop (``planning._held_again``), and the rule would
    ask again (``_held_keep``) for each one it then decides, some 15,000 of the bench's
    10,000 steps, a fifth of them sizing the instance before declining. Between the
    two nothing it reads changes for that Deployment (the certificate, the hold and
    the memory ``Recent`` keeps of its UID change only when the rule decides it), so the
    answer would be None again."""
    memory = _hold_standing(
        ctx,
        d=d,
        partitions=partitions,
        critical=critical,
        lagging=lagging,
        unbounded=unbounded,
        snapshot=snapshot,
        autoscaling=autoscaling,
    )
    if memory is None:
        ctx.unheld[d.uid] = (d, partitions, critical, lagging, unbounded, snapshot, autoscaling)
    return memory


def _hold_standing(
    ctx: Context,
    *,
    d: ObservedDeployment,
    partitions: tuple[int, ...],
    critical: bool,
    lagging: bool,
    unbounded: bool,
    snapshot: MetricsSnapshot,
    autoscaling: Autoscaling,
) -> Memory | None:
    """What ``scale_adaptively`` remembers when the peak's certificate
    (``certificate.Hold``) says that it keeps the instance of ``d`` (``partitions``, as
    ``critical`` and ``lagging``) as it is (``_adaptive_unchanged``, nothing written),
    in a pass that refreshed metrics, for a Deployment and config it decides (not
    paused), from a pool that is ``unbounded`` or not. None: no hold stands for these
    inputs (the rule decides, by its certificate or in full). Draws nothing.

    The rule's certified keep (``_certified_keep``) without what the hold fixes: the
    memory but for its peak, so whether it writes (``_hold_changes`` reads ``d``, the
    certificate's shortage and the memory but for its peak: asked when the hold was
    made). Its sizing is ``adaptive.size`` (``keeping_up``: ``drained``), its ``asks``
    the rule's, admitted by the certificate; no lending seen where the memory has none
    and the effect as "ineffective" as the memory says leave the flags, so the memory
    it remembers is the sized one, as written.

    Steady (``Hold.peaks``: one partition, keeping up with no backlog need), the sizing
    is the peak held for the need of the pass alone: ``demand.partition_need``
    (``instance_demand`` computes a lone partition's with the same expressions) and
    ``hold_peak`` (called here as there, rotation and rise included), and a held peak
    within ``peaks`` has the rates the certificate admits: no ``Sized`` is made."""
    made = certificate.held(d.uid)
    if made is None or not unbounded:
        return None
    recent = ctx.recent  # ``_recalled``, inline
    recalled = (
        None
        if recent is None
        else recent.recall(uid=d.uid, annotation=d.annotations.get(keys.SCALING_MEMORY))
    )
    memory = recalled if recalled is not None else d.scaling.memory
    if memory is None or not made.stands(
        d=d, config=ctx.sizing.config, critical=critical, lagging=lagging
    ):
        return None
    # ``made.holds``, its memory part asked once: whether it vouches is asked below too.
    vouched = made.vouches(memory)
    if not vouched and not adaptive_memory.durably_equal(memory, made.memory):
        return None
    knobs = made.knobs
    keeping_up = adaptive.drained(
        snapshot=snapshot, partitions=partitions, actuation_s=knobs.actuation_s
    )
    kept = _held_peak(made, memory=memory, snapshot=snapshot, now=ctx.now, keeping_up=keeping_up)
    if kept is not None:
        memory_after, produced = kept
    else:
        sized = adaptive.size(
            snapshot=snapshot,
            partitions=partitions,
            autoscaling=autoscaling,
            memory=memory,
            now=ctx.now,
            knobs=knobs,
            keeping_up=keeping_up,
            request_rate=_cpu(d.current) * autoscaling.sizing_rate_per_core / 1000,
        )
        asks = (
            sized.asks
            if unsized(d.scaling)
            else adoption.asks(
                sized=sized,
                memory=memory,
                waiting=d.scaling.status is ScalingStatus.PENDING_SCALE_UP,
                snapshot=snapshot,
                partitions=partitions,
                actuation_s=knobs.actuation_s,
            )
        )
        c = made.certificate
        if asks <= 0 or not c.admits(
            asks=asks, decided=sized.rate if c.first < 0 else sized.up_rate
        ):
            return None
        memory_after, produced = sized.memory, sized.demand.production
    consumed = _consumed(snapshot, partitions)
    if not memory.lent and adaptive.lends(
        consumed=consumed, cpu_m=made.cpu_m, rate_per_core=autoscaling.sizing_rate_per_core
    ):
        return None
    ineffective = (
        adaptive.effect(
            memory=memory,
            consumed=consumed,
            produced=produced,
            cpu_m=made.cpu_m,
            now=ctx.now,
            knobs=knobs,
            limit_m=made.limit_m,
        )
        is adaptive.Effect.INEFFECTIVE
    )
    if ineffective is not memory.ineffective:
        return None
    if vouched and memory_after is memory:
        return memory  # ``_held_memory``'s first case: nothing to check or vouch
    return _held_memory(
        made,
        memory=memory,
        vouched=vouched,
        after=memory_after,
        peak_only=kept is not None,
        now=ctx.now,
    )


def _held_memory(
    made: certificate.Hold,
    *,
    memory: Memory,
    vouched: bool,
    after: Memory,
    peak_only: bool,
    now: datetime,
) -> Memory:
    """What ``held`` remembers: ``after`` (the memory it found from ``memory``) as
    written (``as_written``), vouched for ``made`` (``Hold.vouches``) when it is known to
    be durably ``made``'s own and to read back, so the next pass compares nothing.

    A ``memory`` ``made`` vouches for is such a memory; so is ``after`` when it is
    ``memory`` itself, or, when ``peak_only`` (``hold_peak``'s memory of ``memory``:
    ``with_peak`` copies every other field), at a time ``now`` that reads back: a
    memory that reads back, held for a need not below 0 (``_held_peak``'s: a
    production above 0) at such a time, reads back (a property test of ``hold_peak``).
    Any other goes through ``as_written``, and is vouched for when that gives it
    back and it is durably ``made``'s."""
    if vouched and after is memory:
        return after
    if vouched and peak_only and adaptive_memory.time_reads_back(now):
        certificate.vouch(made, after)
        return after
    written = adaptive_memory.as_written(after)
    if written is after and adaptive_memory.durably_equal(after, made.memory):
        certificate.vouch(made, after)
    return written


def _held_peak(
    made: certificate.Hold,
    *,
    memory: Memory,
    snapshot: MetricsSnapshot,
    now: datetime,
    keeping_up: bool,
) -> tuple[Memory, float] | None:
    """``held``'s steady case: the memory ``hold_peak`` gives and the production of the
    pass, when the peak it holds is within ``made.peaks`` (keeping up, no backlog need,
    a production sample that ``instance_demand`` reads as it is); None: not so (the
    rates are found the long way, ``held``)."""
    peaks = made.peaks
    if peaks is None or not keeping_up:
        return None
    partition = made.partition
    rate = snapshot.production.get(partition)
    if rate is None or not 0 < rate < math.inf:
        return None  # ``instance_demand`` reads no sample, or no production, as 0
    behind = snapshot.offset.get(partition)
    knobs = made.knobs
    need, backlog_need = demand.partition_need(
        production=rate,
        backlog=behind if behind is not None and 0 < behind < math.inf else 0.0,
        utilization=knobs.utilization,
        recovery_s=knobs.recovery_s,
        actuation_s=knobs.actuation_s,
    )
    if backlog_need > 0:
        return None
    peak, kept = adaptive.hold_peak(need=need, memory=memory, now=now, window_s=knobs.peak_window_s)
    lo, hi = peaks
    if not lo <= peak <= hi:
        return None  # not admitted: the certificate's intervals end within ``peaks``
    return kept, rate


# The demand of a pass with no backlog need, as ``sized_for_peak`` reads it for a peak.
_NO_BACKLOG: Final = Demand(
    production=0.0, backlog=0.0, production_need=0.0, backlog_need=0.0, term=Term.HEADROOM
)


def _hold(
    ctx: Context,
    inst: Instance,
    d: ObservedDeployment,
    *,
    sized: adaptive.Sized,
    asks: int,
    drained: bool,
    remembered: Memory,
    knobs: adaptive.Knobs,
    cpu_m: int,
    limit_m: int,
) -> None:
    """After a keep by ``scale_adaptively`` (nothing written), the peak's certificate of
    its certificate (``certificate.Hold``), when that admits the pass's ``asks`` and
    decided rate, and ``remembered`` reads back as it is and writes nothing. Its
    ``peaks`` when this pass, for one partition, kept up with no backlog need and a
    comparison at ``asks`` not above 0, and ``asks`` is not the adopted one (a
    function of the production of each pass): searched once per certificate (the last
    hold's, when of the same certificate, and the memory is ``remembered`` but for its
    peak, is this one)."""
    if asks <= 0:
        return
    made = certificate.recall(
        d=d, config=ctx.sizing.config, critical=inst.critical, lagging=inst.lagging
    )
    if made is None or not made.admits(
        asks=asks, decided=sized.rate if made.first < 0 else sized.up_rate
    ):
        return
    steady = (
        len(inst.partitions) == 1
        and drained
        and not sized.demand.backlog_need > 0
        and made.first <= 0
        and (unsized(d.scaling) or not adoption.adopted(remembered))
    )
    memory = remembered
    last = certificate.held(d.uid)
    if (
        last is not None
        and last.certificate is made
        and adaptive_memory.durably_equal(memory, last.memory)
        and (last.peaks is not None or not steady)
    ):
        return
    if adaptive_memory.as_written(memory) is not memory or _hold_changes(
        d, cpu_shortage_m=made.cpu_shortage_m, state=d.scaling, remembered=memory
    ):
        return
    peaks = _peaks(made, memory=memory, knobs=knobs, peak=sized.peak, asks=asks) if steady else None
    certificate.hold(
        certificate.Hold(
            certificate=made,
            memory=memory,
            partition=inst.partitions[0],
            peaks=peaks,
            knobs=knobs,
            cpu_m=cpu_m,
            limit_m=limit_m,
        )
    )


def _peaks(
    made: certificate.Certificate,
    *,
    memory: Memory,
    knobs: adaptive.Knobs,
    peak: float,
    asks: int,
) -> tuple[int, int] | None:
    """The held peaks (whole msg/s) whose ``asks`` (above 0) and ``rate``
    (``sized_for_peak``, no backlog need, keeping up) the certificate ``made`` admits,
    around ``peak`` (a pass's, which it admitted with ``asks``); None: neither whole
    number next to it is. Both grow with the peak, so they are one interval; its
    ends are looked for first where the share of the peak ``asks`` is puts them."""

    def admitted(held: int) -> bool:
        sized = adaptive.sized_for_peak(
            found=_NO_BACKLOG, peak=float(held), memory=memory, knobs=knobs, keeping_up=True
        )
        asked = sized.asks
        return asked > 0 and made.admits(asks=asked, decided=sized.rate)

    top = certificate.TOP_RATE
    if not 0 <= peak < top:
        return None
    at = math.floor(peak)
    if not admitted(at):
        at += 1
        if not admitted(at):
            return None
    hint = None
    if peak > 0 and asks > 0:
        share = asks / peak
        low, high = made.asks[0] / share, made.asks[1] / share
        if made.first < 0:
            low, high = max(low, made.decided[0] - 1.0), min(high, float(made.decided[1]))
        hint = (int(max(0.0, low)), int(min(float(top), high)))
    return certificate.interval(holds=admitted, at=at, bottom=0, top=top, hint=hint)


def _certify(
    ctx: Context,
    inst: Instance,
    d: ObservedDeployment,
    *,
    first: int,
    asks: int,
    decided: int,
    cpu_shortage_m: int,
    pool: limits.Pool,
) -> None:
    """Remember the rates around ``asks`` whose proposal ``scale_adaptively`` compares
    with ``d``'s size as it did ``asks``'s (``first``), and when that was not 0, the
    rates around the one the verdict was then decided with (``decided``: ``Sized.rate``
    below, ``Sized.up_rate`` above) whose proposal decides it the same way (below: a
    comparison not below 0). Whichever proposal decided, its shortage must keep the
    instance as it is as ``cpu_shortage_m`` did (``_keeps``). By the rule's own
    ``_propose`` and ``compare`` (from an unbounded pool: nothing is drawn).

    The comparison only grows with the rate: from a scale-down at ``asks`` every lower
    rate is one too, from a scale-up every higher one, so that end is not searched."""
    current = d.current

    def proposed(rate: int) -> Proposal:
        return _propose(ctx, inst, pool, critical=inst.critical, rate=rate)

    def keeps(shortage_m: int) -> bool:
        return _keeps(ctx, inst, d, cpu_shortage_m=shortage_m)

    def at_asks(rate: int) -> bool:
        proposal = proposed(rate)
        comparison = compare(current, proposal.resources)
        if first == 0:
            return comparison == 0 and keeps(proposal.cpu_shortage_m)
        return comparison == first

    def at_decided(rate: int) -> bool:
        proposal = proposed(rate)
        if first < 0 and compare(current, proposal.resources) < 0:
            return False
        return keeps(proposal.cpu_shortage_m)

    if not keeps(cpu_shortage_m):
        return  # not a keep these rules stand for (never so after a keep: belt and braces)
    top = certificate.TOP_RATE
    # Where the ends are looked for first: the last certificate of an instance of the
    # same kind (its size, comparison, status, level, criticality, lag and partition
    # count: mostly the same ends), else the last of this Deployment (mostly of its last
    # version, the same size).
    alike = (
        first,
        _cpu(current),
        d.scaling.status,
        d.saturation_m,
        inst.critical,
        inst.lagging,
        len(inst.partitions),
    )
    hinted = certificate.alike(alike, config=ctx.sizing.config) or certificate.last(d.uid)
    hint = hinted if hinted is not None and hinted.first == first else None
    lo, hi = certificate.interval(
        holds=at_asks,
        at=asks,
        bottom=asks if first < 0 else 1,
        top=asks if first > 0 else top,
        hint=None if hint is None else hint.asks,
    )
    if first < 0:
        lo = 1
    elif first > 0:
        hi = top
    then = (
        (1, top)
        if first == 0
        else certificate.interval(
            holds=at_decided,
            at=decided,
            bottom=1,
            top=top,
            hint=None if hint is None else hint.decided,
        )
    )
    certificate.keep(
        certificate.Certificate(
            uid=d.uid,
            d=weakref.ref(d),
            config=ctx.sizing.config,
            critical=inst.critical,
            lagging=inst.lagging,
            first=first,
            asks=(lo, hi),
            decided=then,
            cpu_shortage_m=cpu_shortage_m,
        ),
        alike=alike,
    )


def _keeps(ctx: Context, inst: Instance, d: ObservedDeployment, *, cpu_shortage_m: int) -> bool:
    """Whether a verdict that reads the proposal's shortage alone ("right-sized", or
    "saturated" while SATURATED and lagging) keeps ``d``'s status and level with a
    proposal short of ``cpu_shortage_m``: ``settle`` leaves the status (SATURATED
    exactly while lagging and short) and the reported level does not move
    (``level_moved``). What ``_hold_changes`` then finds depends on the memory alone."""
    state = d.scaling
    saturated = inst.lagging and cpu_shortage_m > 0
    return settle(state, saturated=saturated, now=ctx.now) is state and not level_moved(
        written=d.saturation_m, reported=reported_shortage(state, cpu_shortage_m)
    )


def _memory_of_resize(
    *,
    ctx: Context,
    memory: Memory,
    sized: adaptive.Sized,
    up: bool,
    consumed: float,
    drained: bool,
    cpu_before_m: int,
    limit_before_m: int,
    actuation_s: float,
    recovery_s: float,
) -> Memory:
    """What the policy remembers of a resize it applies: when, which way, from what CPU,
    whether the old size was short for production and whether the resize was for backlog."""
    short = adaptive.short_for_production(
        consumed=consumed,
        produced=sized.demand.production,
        drained=drained,
        production_need=sized.peak,
        backlog_need=sized.demand.backlog_need,
        observed=adaptive.observed(memory=memory, now=ctx.now, actuation_s=actuation_s),
    )
    return _remember_resize(
        memory=memory,
        now=ctx.now,
        up=up,
        consumed=consumed,
        cpu_before_m=cpu_before_m,
        limit_before_m=limit_before_m,
        short_need=sized.peak if short else 0.0,
        for_backlog=adaptive.drain_sized(
            production_need=sized.peak,
            backlog_need=sized.demand.backlog_need,
            restart_need=sized.demand.restart_need,
            share=adaptive.drain_share(actuation_s=actuation_s, recovery_s=recovery_s),
        ),
        up_need=sized.peak,
    )


def _remembered(memo: dict[Hashable, tuple[str, ...]], key: Hashable) -> tuple[str, ...] | None:
    """``memo[key]`` if there is one, trying the last one remembered first.

    An unchanged Deployment is asked with an equal key pass after pass, and
    comparing it with the last key (tuples of the same objects, compared by
    identity first) costs much less than hashing it (every dataclass in it hashes
    in Python).
    """
    if not memo:
        return None
    last, found = next(reversed(memo.items()))
    if last == key:
        return found
    return memo.get(key)


def _drifted(
    d: ObservedDeployment, *, key: Hashable, render: Callable[[], dict[str, Any]]
) -> list[str]:
    """The fields of ``render()`` (the body we would apply) that ``d`` does not hold.

    Remembered on ``d`` per ``key`` (every input of the rendering): an unchanged
    Deployment is rendered and compared once, not on every pass.
    """
    memo = d.drift_memo.get(key)
    if memo is not None:
        return list(memo)
    body = render()
    meta = body["metadata"]
    found = [
        *drift.differences(intent=meta["labels"], observed=d.labels, path="metadata.labels"),
        *drift.differences(
            intent=meta["annotations"], observed=d.annotations, path="metadata.annotations"
        ),
    ]
    spec = d.spec()
    if spec is not None:
        found += drift.differences(intent=body["spec"], observed=spec, path="spec")
    d.drift_memo[key] = result = tuple(found[: drift.MAX_REPORTED])
    return list(result)


def resources_differ(current: Mapping[str, Resources], target: Mapping[str, Resources]) -> bool:
    """Whether a container we give resources does not have them (manual mode).

    A container we give none is left out: its resources are not ours (an apply
    without them would not remove what someone else set).
    """
    if current is target:
        return False
    for name, wanted in target.items():
        if wanted.is_empty:
            continue
        have = current.get(name)
        if have is not wanted and have != wanted:
            return True
    return False


def resize_to_policy(
    ctx: Context, inst: Instance, *, settled: Decision, target: Mapping[str, Resources]
) -> Decision | None:
    """Manual mode (no autoscaling): the policy is the size, so an instance whose
    resources are not ``target`` (its policy's: a hand edit, or a policy change) is
    set to them."""
    d = inst.deployment
    assert d is not None
    if not resources_differ(d.current, target):
        return None
    return Decision(
        action=Action.SCALE,
        resources=target,
        scaling=settled.scaling,
        cpu_shortage_m=settled.cpu_shortage_m,
        message=f"instance {inst.index} set to its resourcePolicy (manual mode): "
        f"{describe(d.current)} -> {describe(target)}",
        outdated=True,
    )


def drift_key(
    *,
    memo_key: Hashable,
    index: int,
    partitions: tuple[int, ...],
    target: Mapping[str, Resources],
    template: Mapping[str, Resources] | None,
    scaling: ScalingState,
    cpu_shortage_m: int,
) -> Hashable:
    """The key of ``ObservedDeployment.drift_memo`` for one rendering: with ``memo_key``
    (what every instance of the pass shares) every input of ``rendering.render``."""
    return (
        memo_key,
        index,
        partitions,
        tuple(target.items()),
        tuple(template.items()) if template is not None else None,
        scaling,
        reported_shortage(scaling, cpu_shortage_m),
    )


def no_drift_known(d: ObservedDeployment, *, key: Hashable) -> bool:
    """Whether ``d`` is known (remembered in its ``drift_memo``) to hold every field of
    the rendering ``key`` names: False when it is not, or when that was never compared."""
    return _remembered(d.drift_memo, key) == ()


def repair_drift(
    ctx: Context,
    inst: Instance,
    *,
    settled: Decision,
    target: Mapping[str, Resources],
    memo_key: Hashable,
) -> Decision | None:
    """Fields of ours that someone else changed are set back (``settled``: the state so far).

    Found by comparing the body we would apply (with ``target``, the resources we
    own) with what is observed (``domain.drift``): a hand edit of the partition
    env var, the image or labels.
    """
    d = inst.deployment
    assert d is not None
    template = d.template_resources if ctx.config.in_place else None
    key = drift_key(
        memo_key=memo_key,
        index=inst.index,
        partitions=inst.partitions,
        target=target,
        template=template,
        scaling=settled.scaling,
        cpu_shortage_m=settled.cpu_shortage_m,
    )
    memo = _remembered(d.drift_memo, key)
    changed = (
        list(memo)
        if memo is not None
        else _drifted(
            d,
            key=key,
            render=functools.partial(
                ctx.render,
                index=inst.index,
                partitions=inst.partitions,
                resources=target,
                scaling=settled.scaling,
                cpu_shortage_m=settled.cpu_shortage_m,
                template=template,
            ),
        )
    )
    if not changed:
        return None
    return Decision(
        action=Action.REPAIR,
        resources=target,
        scaling=settled.scaling,
        cpu_shortage_m=settled.cpu_shortage_m,
        message=f"restored instance {inst.index}, changed by someone else: " + ", ".join(changed),
        outdated=True,
        remembered=settled.remembered,
    )


def _refusal(inst: Instance, *, now: datetime) -> str | None:
    """Why in-place resizing of ``inst`` is given up, if it is: refused at act time,
    a pod's resize ``Infeasible``, or ``Deferred`` for longer than ``DEFERRED_BOUND_S``."""
    if inst.refused is not None:
        return inst.refused
    for pod in inst.pods:
        if pod.deleting:
            continue
        if pod.pending is Pending.INFEASIBLE:
            return f"pod {pod.name}: resize Infeasible"
        if (
            pod.pending is Pending.DEFERRED
            and pod.pending_since is not None
            and (now - pod.pending_since).total_seconds() > DEFERRED_BOUND_S
        ):
            return f"pod {pod.name}: resize Deferred for more than {DEFERRED_BOUND_S:g}s"
    return None


def roll_out_target(ctx: Context, inst: Instance, pool: limits.Pool) -> Decision | None:
    """The target size goes into the template (a rollout) when the pods cannot get it
    in place: a refusal (``_refusal``) in in-place mode, or ``Recreate`` mode with a
    target left from in-place mode (the mode was changed, or the server cannot resize).

    Nothing is written when the template already has the target.
    """
    d = inst.deployment
    if d is None or d.target is None or not resources_differ(d.template_resources, d.current):
        return None
    if ctx.config.in_place:
        why = _refusal(inst, now=ctx.now)
        if why is None:
            return None
        if compare(d.template_resources, d.current) < 0 and _restart_held(ctx, inst):
            # A scale-down the node refused, now a restart: it waits for the budget.
            return Decision(
                action=None, resources=d.current, scaling=d.scaling, cpu_shortage_m=d.saturation_m
            )
    else:
        why = "updateMode is Recreate"
    return Decision(
        action=Action.ROLLOUT,
        resources=d.current,
        scaling=d.scaling,
        cpu_shortage_m=d.saturation_m,
        message=f"rolled out instance {inst.index} with its target size ({why}): "
        f"{describe(d.current)}",
        fell_back=why,
    )


def _not_lower(wanted: int | None, have: int | None) -> int | None:
    return have if have is not None and (wanted is None or wanted < have) else wanted


def pod_target(pod: ObservedPod, target: Mapping[str, Resources]) -> dict[str, Resources]:
    """What ``pod``'s containers are resized to: ``target``, except that memory (request
    and limit) is never lowered in place.

    Lowering a running container's memory limit below what it uses gets it
    OOM-killed (the kubelet's check is best-effort), which is the restart in-place
    resizing exists to avoid; lowering only the request would turn a Guaranteed pod
    Burstable, a QoS class change the apiserver refuses. So a memory decrease
    reaches the pods at the next rollout (from the template), never in place.
    CPU (request and limit) follows the target both ways: a request only reserves,
    and a limit only throttles. The pod keeps its QoS class, which the apiserver
    does not let a resize change (``qos.keep_class``: towards more, never less).
    Containers we give no resources are left out (theirs are not ours).
    """
    result: dict[str, Resources] = {}
    spec = pod.spec
    kept = True  # every container of ``result`` has its target already
    for name, wanted in target.items():
        have = spec.get(name)
        if have is None or wanted.is_empty:
            continue
        if have == wanted:
            # The steady state: nothing to keep from memory, and the pod keeps its class.
            result[name] = wanted
            continue
        kept = False
        mem_req = _not_lower(wanted.mem_req_b, have.mem_req_b)
        mem_lim = _not_lower(wanted.mem_lim_b, have.mem_lim_b)
        # Copied only when memory is kept (every pod of every instance in every pass).
        result[name] = (
            wanted
            if mem_req == wanted.mem_req_b and mem_lim == wanted.mem_lim_b
            else msgspec.structs.replace(wanted, mem_req_b=mem_req, mem_lim_b=mem_lim)
        )
    return result if kept else qos.keep_class(spec, result)


def _pod_resizes(
    ctx: Context, inst: Instance, *, target: Mapping[str, Resources]
) -> tuple[tuple[PodResize, ...], bool]:
    """``resize_pods``, and whether every pod it looks at already runs its target
    (``ObservedPod.actuated``): one ``pod_target`` per pod for both."""
    patches: list[PodResize] = []
    actuated = True
    for pod in inst.pods:
        if pod.deleting or not pod.running:
            continue
        spec, actual = pod.spec, pod.actual
        changed: dict[str, Resources] = {}
        # One loop for both: the containers to patch (their spec differs and the
        # kubelet reports them) and ``pod.actuated(wanted)``.
        for n, r in pod_target(pod, target).items():
            have = spec.get(n)
            running = actual.get(n)
            same = have is r or have == r
            if not same and running is not None:
                changed[n] = r
            if actuated and not (same and (running is r or running == r)):
                actuated = False
        if changed:
            patches.append(
                PodResize(
                    pod=pod.name,
                    uid=pod.uid,
                    instance=inst.name,
                    containers=changed,
                    memory_format=ctx.memory_format,
                )
            )
    return tuple(patches), actuated


def pod_settled(pod: ObservedPod, target: Mapping[str, Resources]) -> bool:
    """Whether ``_pod_resizes`` finds nothing to patch in ``pod`` (running, not going
    away) and finds it running what it would be resized to (``pod_target``)."""
    spec, actual = pod.spec, pod.actual
    for n, r in pod_target(pod, target).items():
        have, running = spec.get(n), actual.get(n)
        if not (have is r or have == r) or not (running is r or running == r):
            return False
    return True


def resize_pods(
    ctx: Context, inst: Instance, *, target: Mapping[str, Resources]
) -> tuple[PodResize, ...]:
    """The ``pods/resize`` patches that bring ``inst``'s running pods to ``target``.

    Only pods the kubelet reports resources for (running on a node that can
    resize; a pod that is not there yet is resized when its status says so: the
    pod watch wakes the Consumer) and that are not being deleted; only the
    containers that differ.
    """
    return _pod_resizes(ctx, inst, target=target)[0]


def _podless_first_size(inst: Instance, d: ObservedDeployment) -> bool:
    """Whether a resize goes into the template in in-place mode too: the first size from
    metrics (``scaling.unsized``) of an instance none of whose pods runs yet.

    Such a Deployment was created moments ago from the fallback: kube-controller-manager
    is still starting its pods, from the template. Kept at the fallback's size, each one
    would start there, wake the Consumer and need its own resize (1,000 instances
    created before Prometheus answered: one pass per batch of pod events); in the
    template, they start at their size and nothing is restarted.
    """
    if not unsized(d.scaling):
        return False
    return not any(p.running and not p.deleting for p in inst.pods)


def in_place(ctx: Context, inst: Instance, decision: Decision) -> Decision:
    """``decision`` in in-place mode: a resize keeps the template and patches the pods.

    A creation or rollout starts new pods from the template, which then gets the
    size; anything else leaves the template's resources as they are and resizes
    the running pods to the target (``resize_pods``), and says whether a pod does
    not run it yet (``Decision.pods_pending``). A paused instance's pods are not
    patched, nor waited for.
    """
    d = inst.deployment
    if not ctx.config.in_place or d is None or decision.action in (Action.CREATE, Action.ROLLOUT):
        return decision
    if decision.action is Action.SCALE and _podless_first_size(inst, d):
        return decision
    action = Action.RESIZE_IN_PLACE if decision.action is Action.SCALE else decision.action
    resizes: tuple[PodResize, ...] = ()
    actuated = True
    if not d.paused:
        # A paused instance is never resized (docs/compatibility.md, 13): its pods keep
        # what they run, and a new one starts at its template's size, which the user
        # may set by hand (a target left from before the pause would resize it back).
        resizes, actuated = _pod_resizes(ctx, inst, target=decision.resources)
    return msgspec.structs.replace(
        decision,
        action=action,
        template=d.template_resources,
        resizes=resizes,
        pods_pending=bool(resizes) or not actuated,
    )


# The rules for an instance that has a Deployment, in order: the first that decides wins.
EXISTING: tuple[Callable[[Context, Instance, limits.Pool], Decision | None], ...] = (
    roll_out_outdated,
    roll_out_target,
    hold_at_floor,
    scale_by_metrics,
    scale_adaptively,
)


def decide_existing(
    ctx: Context, inst: Instance, pool: limits.Pool, *, memo_key: Hashable
) -> Decision:
    """The decision for an instance that has a Deployment: the chain, then ``repair_drift``."""
    d = inst.deployment
    assert d is not None
    for rule in EXISTING:
        decision = rule(ctx, inst, pool)
        if decision is not None:
            break
    else:
        decision = Decision(
            action=None, resources=d.current, scaling=d.scaling, cpu_shortage_m=d.saturation_m
        )
    if decision.action is not None:
        return in_place(ctx, inst, decision)
    # What we own of its resources: in manual mode the policy's, else what it has.
    target: Mapping[str, Resources] = d.current
    if ctx.config.autoscaling is None and not ctx.config.paused and not d.paused:
        saved = pool.available
        target = _propose(ctx, inst, pool, critical=False).resources
        resized = resize_to_policy(ctx, inst, settled=decision, target=target)
        if resized is not None:
            return in_place(ctx, inst, resized)
        pool.restore(saved)
    repaired = repair_drift(ctx, inst, settled=decision, target=target, memo_key=memo_key)
    return in_place(ctx, inst, repaired or decision)
