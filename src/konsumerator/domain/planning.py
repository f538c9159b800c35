"""One reconcile pass, decided: ``plan(consumer, observed, metrics, now) -> Plan``.

This is the "decide" step of gather, decide, act, report. It is a pure
function of its inputs, so the operator, ``konsumerator simulate`` and the
tests all run exactly the same decisions, the last two in virtual time.

For every instance index the plan picks one of:

* **create** a missing Deployment, sized from the freshest metrics we have
  (or the fallback when there are none);
* **roll out** an OUTDATED one (template hash or partition list changed):
  rebuilt from the template, resized from metrics, not through the pending
  periods, since its pods restart anyway;
* **repair** one whose fields of ours someone else changed (drift: a hand
  edit of its partition env var, image or labels), found by comparing the
  body we would apply with what is observed (``domain.drift``); in manual
  mode, where the policy is the size, **resize** one whose resources are not
  its policy's (a hand edit, or a policy change); both count as OUTDATED
  until done;
* **scale** a current one through the state machine (``scaling.decide``),
  only in passes where metrics were just refreshed, so the pending timers
  measure observations and not reconcile frequency;
* **leave it alone**, which costs no API call.

Deployments that no instance claims (an index out of range, an unparsable
annotation, a duplicate) are deleted. An instance whose Deployment name is
taken by an object we do not own is reported and never touched.

The counters follow the Go operator's definitions (``syncInstanceStates`` in
lwolf/konsumerator ``controllers/operator.go``) and
describe the world as observed at the start of the pass; the next pass, which
the Deployment watch triggers at once, reports the effect of the writes.
"""

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from konsumerator.api import keys
from konsumerator.domain import drift, fallbacks, limits, prediction, rendering
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import NO_RESOURCES, Resources, compare_requests
from konsumerator.domain.scaling import ScalingState, ScalingStatus, decide
from konsumerator.domain.specs import Autoscaling, ConsumerConfig, FallbackStrategy, Owner

# Never wait longer than this between passes: a safety net for missed events.
MAX_REQUEUE_S = 300.0
MIN_REQUEUE_S = 1.0


class Action(StrEnum):
    CREATE = "create"
    ROLLOUT = "rollout"
    SCALE = "scale"
    ANNOTATE = "annotate"
    REPAIR = "repair"


@dataclass(frozen=True, slots=True)
class Metrics:
    """What the gather step knows about metrics for this pass."""

    snapshot: MetricsSnapshot | None = None
    # True only in the pass that fetched this snapshot.
    refreshed: bool = False
    synced_at: datetime | None = None
    error: str | None = None
    # Why the refresh failed, as a condition reason (PrometheusUnreachable, NoData...).
    error_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Apply:
    name: str
    action: Action
    body: dict[str, Any]
    message: str
    # The UID of the observed Deployment this write is for; None for a
    # creation. Every write but a creation is conditional on it.
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    name: str
    uid: str
    reason: str


@dataclass(frozen=True, slots=True)
class Counters:
    expected: int = 0
    running: int = 0
    paused: int = 0
    missing: int = 0
    lagging: int = 0
    outdated: int = 0
    redundant: int = 0


@dataclass(frozen=True, slots=True)
class InstanceReport:
    index: int
    name: str
    partitions: tuple[int, ...]
    max_lag_s: int
    lagging: bool
    paused: bool
    status: ScalingStatus | None
    cpu_shortage_m: int


@dataclass(frozen=True, slots=True)
class Plan:
    applies: tuple[Apply, ...]
    deletes: tuple[Delete, ...]
    counters: Counters
    instances: tuple[InstanceReport, ...]
    conflicts: tuple[str, ...]
    requeue_after_s: float | None
    template_hash: str
    allocated_cpu_m: int = 0
    allocated_mem_b: int = 0
    saturated: tuple[str, ...] = field(default=())


def _template_containers(config: ConsumerConfig) -> list[str]:
    pod = (config.deployment_template.get("template") or {}).get("spec") or {}
    return [str(c.get("name", "")) for c in pod.get("containers") or []]


def _claim(
    deployments: Sequence[ObservedDeployment],
    *,
    config: ConsumerConfig,
    assignment: partitioning.Assignment,
) -> tuple[dict[int, tuple[ObservedDeployment, bool]], list[Delete], set[str]]:
    """Match Deployments to instance indexes by their annotations.

    Returns index -> (deployment, whether its partitions still match), the
    deletions, and the names of Deployments that are being deleted (nothing
    may be applied to those until they are gone). A Deployment that carries
    an instance index under another name (an older naming scheme) is deleted
    and the instance created under its own name in the same pass.
    """
    claimed: dict[int, tuple[ObservedDeployment, bool]] = {}
    deletes: list[Delete] = []
    terminating: set[str] = set()
    for d in sorted(deployments, key=lambda d: d.name):
        index, parts = d.instance, d.partitions
        if d.deleting:
            terminating.add(d.name)
        elif index is None or parts is None:
            deletes.append(Delete(name=d.name, uid=d.uid, reason="unparsable annotations"))
        elif index >= len(assignment):
            deletes.append(Delete(name=d.name, uid=d.uid, reason=f"instance {index} not needed"))
        elif d.name != (expected := rendering.deployment_name(config=config, index=index)):
            deletes.append(Delete(name=d.name, uid=d.uid, reason=f"instance is now {expected}"))
        else:
            claimed[index] = (d, parts == assignment[index])
    return claimed, deletes, terminating


def _requeue(*, autoscaling: Autoscaling | None, metrics: Metrics, now: datetime) -> float | None:
    """When the next pass is due: the next metrics refresh.

    Resizes only happen in passes that refresh metrics, so pending deadlines
    need no timer of their own. After a failed refresh, retry a full period
    later rather than hammering an unreachable Prometheus.
    """
    if autoscaling is None:
        return None
    period = autoscaling.min_sync_period_s
    if metrics.synced_at is None or metrics.error is not None:
        due = period
    else:
        # Go refreshes when strictly more than minSyncPeriod has passed.
        due = period - (now - metrics.synced_at).total_seconds() + 0.001
    return max(MIN_REQUEUE_S, min(MAX_REQUEUE_S, due))


def _at_least(lag_s: int, threshold_s: float | None) -> bool:
    return threshold_s is not None and lag_s >= threshold_s


def _settled(shortage: int, *, lagging: bool) -> ScalingStatus:
    return ScalingStatus.SATURATED if lagging and shortage > 0 else ScalingStatus.RUNNING


def _enter_settled(state: ScalingState, *, saturated: bool, now: datetime) -> ScalingState:
    status = ScalingStatus.SATURATED if saturated else ScalingStatus.RUNNING
    return state if state.status is status else ScalingState(status=status, since=now)


def _has_resources(current: Mapping[str, Resources]) -> bool:
    return any(not r.is_empty for r in current.values())


def _compare(current: Mapping[str, Resources], proposed: Mapping[str, Resources]) -> int:
    """+1 if any container needs more, else -1 if any needs less, else 0.

    One verdict per instance: a pinned sidecar must not veto (or fake) the
    main container's resize, as the Go per-container loop let it.
    """
    results = [compare_requests(current.get(n, NO_RESOURCES), r) for n, r in proposed.items()]
    if 1 in results:
        return 1
    return -1 if -1 in results else 0


def _describe(resources: Mapping[str, Resources]) -> str:
    parts = []
    for name, r in sorted(resources.items()):
        parts.append(f"{name} cpu={r.cpu_req_m or 0}m mem={(r.mem_req_b or 0) // 1_000_000}M")
    return ", ".join(parts) or "no resources"


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


def _resources_differ(current: Mapping[str, Resources], target: Mapping[str, Resources]) -> bool:
    """Whether a container we give resources does not have them (manual mode).

    A container we give none is left out: its resources are not ours (an apply
    without them would not remove what someone else set).
    """
    return any(
        not wanted.is_empty and current.get(name, NO_RESOURCES) != wanted
        for name, wanted in target.items()
    )


def plan(
    *,
    config: ConsumerConfig,
    owner: Owner,
    deployments: Sequence[ObservedDeployment],
    metrics: Metrics,
    now: datetime,
    foreign_names: frozenset[str] = frozenset(),
) -> Plan:
    """Decide one pass. ``deployments`` are the ones the owner controls.

    ``foreign_names`` are names in the target namespace held by objects the
    owner does not control; the instances that would use them are skipped.
    """
    assignment = partitioning.assign(
        num_partitions=config.num_partitions, per_instance=config.per_instance
    )
    num_instances = len(assignment)
    hash_value = rendering.template_hash(config=config, num_instances=num_instances)
    autoscaling = config.autoscaling
    snapshot = metrics.snapshot if autoscaling is not None else None
    claimed, deletes, terminating = _claim(deployments, config=config, assignment=assignment)
    containers = _template_containers(config)
    memory_format = autoscaling.memory_format if autoscaling else Format.DECIMAL_SI

    # index -> (its Deployment, whether that is OUTDATED)
    instances: dict[int, tuple[ObservedDeployment, bool]] = {}
    for index, (d, matches) in claimed.items():
        outdated = not matches or d.annotations.get(keys.GENERATION) != hash_value
        instances[index] = (d, outdated)

    # In manual mode (no autoscaling) every instance's resources are the
    # policy's, which the operator keeps: a fleet-derived guess would let one
    # hand-edited instance resize all the others.
    manual = autoscaling is None and not config.paused
    fallback = fallbacks.compute(
        strategy=config.fallback,
        policies=config.policies,
        num_instances=num_instances,
        existing=[] if manual else [d.current for d in sorted(deployments, key=lambda d: d.name)],
    )
    used_cpu = used_mem = 0
    for held, _ in instances.values():
        for r in held.current.values():
            used_cpu += r.cpu_req_m or 0
            used_mem += r.mem_req_b or 0
    pool = limits.Pool(pool=config.global_pool, used_cpu_m=used_cpu, used_mem_b=used_mem)

    def propose(
        partitions: tuple[int, ...], current: Mapping[str, Resources], critical: bool
    ) -> tuple[dict[str, Resources], int]:
        proposed: dict[str, Resources] = {}
        shortage = 0
        sized = (
            prediction.instance_estimate(
                snapshot=snapshot, partitions=partitions, autoscaling=autoscaling
            )
            if autoscaling is not None and snapshot is not None and not config.paused
            else None
        )
        for name in containers:
            bounds = config.policies.get(name)
            if config.paused:
                floor = (
                    None
                    if bounds is None
                    else fallbacks.from_policy(bounds=bounds, strategy=FallbackStrategy.MIN)
                )
                proposed[name] = floor or NO_RESOURCES
                continue
            # Every container gets the instance's estimate (the Go predictor's
            # rule; policies keep sidecars small), or its fallback without one.
            estimate = sized if sized is not None else fallback.get(name, NO_RESOURCES)
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
        return proposed, shortage

    # What every instance's rendering shares, for the drift memo's keys: with the
    # per-instance part below, every input of rendering.render (config enters
    # through its name, namespace and the template hash).
    intent_key = (hash_value, config.name, config.namespace, owner, num_instances, memory_format)
    applies: list[Apply] = []
    reports: list[InstanceReport] = []
    conflicts: list[str] = []
    counts = dict.fromkeys(("running", "paused", "lagging", "missing", "outdated"), 0)
    alloc_cpu = alloc_mem = 0

    for index, partitions in enumerate(assignment):
        name = rendering.deployment_name(config=config, index=index)
        max_lag = (
            prediction.max_lag_seconds(snapshot=snapshot, partitions=partitions)
            if snapshot is not None and autoscaling is not None
            else 0
        )
        lagging = _at_least(max_lag, autoscaling.tolerable_lag_s if autoscaling else None)
        critical = _at_least(max_lag, autoscaling.critical_lag_s if autoscaling else None)
        instance = instances.get(index)
        is_paused = False
        outcome: tuple[Action, Mapping[str, Resources], ScalingState, int, str] | None = None

        if instance is None:
            counts["missing"] += 1
            if name in foreign_names:
                conflicts.append(name)
                continue
            if name in terminating:
                continue  # recreated once the old object is gone (its delete event requeues)
            resources, shortage = propose(partitions, {}, critical)
            state = ScalingState(status=_settled(shortage, lagging=lagging), since=now)
            current: Mapping[str, Resources] = {}
            outcome = (
                Action.CREATE,
                resources,
                state,
                shortage,
                f"created instance {index} for partitions "
                f"{partitioning.format_list(partitions)}: {_describe(resources)}",
            )
        else:
            d, outdated = instance
            current = d.current
            is_paused = d.paused or config.paused
            counts["paused" if is_paused else "running"] += 1
            counts["lagging"] += lagging
            state = d.scaling
            shortage = d.saturation_m
            if outdated:
                counts["outdated"] += 1
                keep = d.paused or (
                    autoscaling is not None and snapshot is None and _has_resources(current)
                )
                resources, shortage = (
                    (dict(current), 0) if keep else propose(partitions, current, critical)
                )
                state = _enter_settled(state, saturated=lagging and shortage > 0, now=now)
                outcome = (
                    Action.ROLLOUT,
                    resources,
                    state,
                    shortage,
                    f"rolled out instance {index}: {_describe(resources)}",
                )
            elif config.paused:
                floors, _ = propose(partitions, current, False)
                if any(current.get(n, NO_RESOURCES) != r for n, r in floors.items()):
                    outcome = (
                        Action.SCALE,
                        floors,
                        _enter_settled(state, saturated=False, now=now),
                        0,
                        f"autoscaling paused: instance {index} set to minAllowed",
                    )
            elif (
                not is_paused
                and autoscaling is not None
                and snapshot is not None
                and metrics.refreshed
            ):
                saved = pool.available
                proposed, new_shortage = propose(partitions, current, critical)
                comparison = _compare(current, proposed)
                decision = decide(
                    state=state,
                    comparison=comparison,
                    lagging=lagging,
                    cpu_shortage_m=new_shortage,
                    now=now,
                    pending_up_s=autoscaling.pending_up_s,
                    pending_down_s=autoscaling.pending_down_s,
                )
                saturated = decision.state.status is ScalingStatus.SATURATED
                if decision.apply:
                    verb = "scaled up" if comparison > 0 else "scaled down"
                    outcome = (
                        Action.SCALE,
                        proposed,
                        decision.state,
                        new_shortage,
                        f"{verb} instance {index} (max lag {max_lag}s): "
                        f"{_describe(current)} -> {_describe(proposed)}",
                    )
                else:
                    pool.restore(saved)
                    level = new_shortage if saturated else 0
                    if decision.state != state or level != shortage:
                        outcome = (
                            Action.ANNOTATE,
                            current,
                            decision.state,
                            level,
                            f"instance {index} is {decision.state.status.value} "
                            f"(max lag {max_lag}s)",
                        )
                state, shortage = decision.state, new_shortage if saturated else 0
            # What we own of its resources: in manual mode the policy's, else what it has.
            target: Mapping[str, Resources] = current
            if outcome is None and manual and not d.paused:
                # Manual mode: the policy is the size (a hand edit, or a policy change).
                saved = pool.available
                target, _ = propose(partitions, current, False)
                if _resources_differ(current, target):
                    counts["outdated"] += 1
                    outcome = (
                        Action.SCALE,
                        target,
                        state,
                        shortage,
                        f"instance {index} set to its resourcePolicy (manual mode): "
                        f"{_describe(current)} -> {_describe(target)}",
                    )
                else:
                    pool.restore(saved)
            if outcome is None:
                # Nothing planned: is everything we set still as we set it?
                level = shortage if state.status is ScalingStatus.SATURATED else 0
                changed = _drifted(
                    d,
                    key=(intent_key, index, partitions, tuple(target.items()), state, level),
                    render=functools.partial(
                        rendering.render,
                        config=config,
                        owner=owner,
                        index=index,
                        partitions=partitions,
                        num_instances=num_instances,
                        resources=target,
                        scaling=state,
                        cpu_shortage_m=level,
                        hash_value=hash_value,
                        memory_format=memory_format,
                    ),
                )
                if changed:
                    counts["outdated"] += 1
                    outcome = (
                        Action.REPAIR,
                        target,
                        state,
                        shortage,
                        f"restored instance {index}, changed by someone else: "
                        + ", ".join(changed),
                    )

        effective = current
        if outcome is not None:
            action, effective, state, shortage, message = outcome
            applies.append(
                Apply(
                    name=name,
                    action=action,
                    message=message,
                    uid=None if instance is None else instance[0].uid,
                    body=rendering.render(
                        config=config,
                        owner=owner,
                        index=index,
                        partitions=partitions,
                        num_instances=num_instances,
                        resources=effective,
                        scaling=state,
                        cpu_shortage_m=shortage if state.status is ScalingStatus.SATURATED else 0,
                        hash_value=hash_value,
                        memory_format=memory_format,
                    ),
                )
            )
        for r in effective.values():
            alloc_cpu += r.cpu_req_m or 0
            alloc_mem += r.mem_req_b or 0
        reports.append(
            InstanceReport(
                index=index,
                name=name,
                partitions=partitions,
                max_lag_s=max_lag,
                lagging=lagging,
                paused=is_paused,
                status=state.status,
                cpu_shortage_m=shortage if state.status is ScalingStatus.SATURATED else 0,
            )
        )

    counters = Counters(expected=num_instances, redundant=len(deletes), **counts)
    return Plan(
        applies=tuple(applies),
        deletes=tuple(deletes),
        counters=counters,
        instances=tuple(reports),
        conflicts=tuple(conflicts),
        requeue_after_s=_requeue(autoscaling=autoscaling, metrics=metrics, now=now),
        template_hash=hash_value,
        allocated_cpu_m=alloc_cpu,
        allocated_mem_b=alloc_mem,
        saturated=tuple(r.name for r in reports if r.status is ScalingStatus.SATURATED),
    )
