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

With ``updateMode: InPlaceOrRecreate`` a resize keeps the template and writes the
target annotation (``RESIZE_IN_PLACE``), and the plan carries the ``pods/resize``
patches of the instances' running pods (``Plan.resizes``, from ``pods``, by
Deployment name), also in a pass that writes no Deployment (a pod started from the
old template); ``Plan.in_place`` counts instances resized and pending.

Each choice is a named rule in ``domain.rules``; the resources come from
``domain.sizing``; the apply body is rendered only when it is written
(``Apply.body``).

Deployments that no instance claims (an index out of range, an unparsable
annotation, a duplicate) are deleted. An instance whose Deployment name is
taken by an object we do not own is reported and never touched.

The counters follow the Go operator's definitions (``syncInstanceStates`` in
lwolf/konsumerator ``controllers/operator.go``) and
describe the world as observed at the start of the pass; the next pass, which
the Deployment watch triggers at once, reports the effect of the writes.
"""

import functools
import itertools
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import msgspec

from konsumerator.domain import disruption, keys, limits, rendering, rules, sizing
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.adaptive import memory as adaptive_memory
from konsumerator.domain.adaptive.memory import Recent
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.pods import ObservedPod, PodResize
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import Resources
from konsumerator.domain.rules import Action, Context, Decision, Instance
from konsumerator.domain.scaling import ScalingState, ScalingStatus
from konsumerator.domain.scaling import decide as scaling_decide
from konsumerator.domain.specs import Autoscaling, ConsumerConfig, Owner, Predictor
from konsumerator.domain.stamps import age_s

__all__ = [
    "Action",
    "Apply",
    "Counters",
    "Delete",
    "InPlaceCounters",
    "InstanceReport",
    "KeptMemory",
    "Metrics",
    "Plan",
    "plan",
]

# Never wait longer than this between passes: a safety net for missed events.
MAX_REQUEUE_S = 300.0
MIN_REQUEUE_S = 1.0


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
    # What the snapshot's answers held that was not used as given (series dropped or
    # merged), in words for ``MetricsAvailable``'s message; None: nothing.
    problems: str | None = None
    # The budgeted restarts (``disruption``) already written from this snapshot by the
    # cut passes this one continues (``controllers.continuing``): one refresh's budget
    # is shared by the passes that make its writes, not given to each of them.
    restarts_spent: int = 0


@dataclass(frozen=True)
class Apply:
    """One Deployment write: what the instance gets, typed; the body is rendered when written."""

    name: str
    action: Action
    message: str
    # The UID of the observed Deployment this write is for; None for a
    # creation. Every write but a creation is conditional on it.
    uid: str | None
    index: int
    partitions: tuple[int, ...]
    resources: Mapping[str, Resources]
    scaling: ScalingState
    cpu_shortage_m: int
    render: Callable[[], dict[str, Any]] = field(repr=False, compare=False)
    # In-place mode: why in-place resizing was given up (this write is the fallback).
    fell_back: str | None = None
    # The key under which ``rules.repair_drift`` remembers what it found comparing a
    # Deployment with this body (``ObservedDeployment.drift_memo``).
    drift_key: Hashable = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def body(self) -> dict[str, Any]:
        """The server-side apply body, rendered on first use (at act time)."""
        return self.render()


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
class InPlaceCounters:
    """In-place resizing, over instances (updateMode InPlaceOrRecreate).

    ``resized``: every pod runs the target, which is not the template's size (a
    resize without a restart); ``pending``: a pod whose spec or running size is not
    yet its target.
    """

    resized: int = 0
    pending: int = 0


# A msgspec Struct (frozen, hashable), built in C: see ``adaptive.memory.Memory``.
class InstanceReport(msgspec.Struct, frozen=True, gc=False):
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
    """One pass's decisions. ``applies`` are in the order the act step starts them:
    creations first (a new partition gets its consumer before any existing instance is
    rewritten, and a pass's write cap, ``acting.SLICE``, defers rewrites, not
    creations), then the writes to existing Deployments; each in index order. The act
    step starts ``deletes`` before them and ``resizes`` (pod patches) after them."""

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
    # In-place mode: the pod patches of this pass, and the counters.
    resizes: tuple[PodResize, ...] = field(default=())
    in_place: InPlaceCounters = field(default=InPlaceCounters())
    # Scale-downs that would restart pods, held by the restart budget (``disruption``).
    restarts_held: int = 0
    # The instance indexes whose restart the budget admitted (their writes spend it).
    restarts_admitted: frozenset[int] = frozenset()


def _claim(
    deployments: Sequence[ObservedDeployment],
    *,
    config: ConsumerConfig,
    assignment: partitioning.Assignment,
) -> tuple[dict[int, tuple[ObservedDeployment, bool]], list[Delete], set[str]]:
    """Match Deployments to instance indexes by their names, else their annotations.

    Returns index -> (deployment, whether its annotations still say that instance
    and its partitions), the deletions, and the names of Deployments that are being
    deleted (nothing may be applied to those until they are gone). An instance is
    the Deployment named ``{spec.name}-{index}`` (compatibility row 17): one whose
    ``consumer-id`` or ``partition`` annotation somebody garbled or changed is that
    instance still, OUTDATED, and its apply puts the annotations back (deleting it
    killed its pods and left its partitions without a consumer). A Deployment that
    carries an instance index under another name (an older naming scheme) is deleted
    and the instance created under its own name in the same pass.
    """
    claimed: dict[int, tuple[ObservedDeployment, bool]] = {}
    deletes: list[Delete] = []
    terminating: set[str] = set()
    names = rendering.deployment_names(config=config, count=len(assignment))
    indexes = rendering.deployment_indexes(config=config, count=len(assignment))
    # In the order given: of two Deployments of one name (in two namespaces) the later
    # claims, as it would in name order (a stable sort keeps their order); only the
    # deletions are listed in name order.
    for d in deployments:
        index, parts = d.instance, d.partitions
        named = indexes.get(d.name)
        if d.deleting:
            terminating.add(d.name)
        elif named is not None:
            claimed[named] = (d, index == named and parts == assignment[named])
        elif index is None or parts is None:
            deletes.append(Delete(name=d.name, uid=d.uid, reason="unparsable annotations"))
        elif index >= len(names):
            deletes.append(Delete(name=d.name, uid=d.uid, reason=f"instance {index} not needed"))
        else:
            deletes.append(Delete(name=d.name, uid=d.uid, reason=f"instance is now {names[index]}"))
    if len(deletes) > 1:
        deletes.sort(key=lambda delete: delete.name)
    return claimed, deletes, terminating


_Claimed = tuple[dict[int, tuple[ObservedDeployment, bool]], list[Delete], set[str]]
_Claims = tuple[ConsumerConfig, list[ObservedDeployment], _Claimed]


def _claims(
    deployments: Sequence[ObservedDeployment],
    *,
    config: ConsumerConfig,
    assignment: partitioning.Assignment,
    memory: "KeptMemory | None",
) -> _Claimed:
    """``_claim``, or what it made of the last pass's Deployments (``KeptMemory.claims``)
    when this pass has the same config object (and so the same assignment and names)
    and the very same Deployment objects in the same order: ``_claim`` is a function of
    those. A pass that refreshes metrics after a quiet one sees the Deployments it saw.
    The result is only read (``plan``, ``_kept_again``)."""
    if memory is None:
        return _claim(deployments, config=config, assignment=assignment)
    known = memory.claims
    if (
        known is not None
        and known[0] is config
        and len(known[1]) == len(deployments)
        and all(map(operator.is_, known[1], deployments))
    ):
        return known[2]
    claims = _claim(deployments, config=config, assignment=assignment)
    memory.claims = (config, list(deployments), claims)
    return claims


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


def _instance(
    *,
    config: ConsumerConfig,
    index: int,
    partitions: tuple[int, ...],
    snapshot: MetricsSnapshot | None,
    claimed: tuple[ObservedDeployment, bool] | None,
    hash_value: str,
    pods: Mapping[str, Sequence[ObservedPod]],
    refused: Mapping[str, str],
) -> Instance:
    autoscaling = config.autoscaling
    max_lag = 0
    if snapshot is not None and autoscaling is not None:
        # ``prediction.max_lag_seconds``, inlined (every instance of every pass).
        lag = snapshot.lag
        max_lag = max([lag.get(p, 0) for p in partitions], default=0)
    d, matches = claimed if claimed is not None else (None, True)
    name = rendering.deployment_name(config=config, index=index)
    return Instance(
        index=index,
        name=name,
        partitions=partitions,
        max_lag_s=max_lag,
        lagging=_at_least(max_lag, autoscaling.tolerable_lag_s if autoscaling else None),
        critical=_at_least(max_lag, autoscaling.critical_lag_s if autoscaling else None),
        deployment=d,
        outdated=d is not None
        and (not matches or d.annotations.get(keys.GENERATION) != hash_value),
        pods=tuple(pods.get(name, ())) if config.in_place and d is not None else (),
        refused=refused.get(name) if d is not None else None,
    )


def _apply(ctx: Context, inst: Instance, decision: Decision) -> Apply:
    assert decision.action is not None
    return Apply(
        name=inst.name,
        action=decision.action,
        message=decision.message,
        uid=None if inst.deployment is None else inst.deployment.uid,
        index=inst.index,
        partitions=inst.partitions,
        resources=decision.resources,
        scaling=decision.scaling,
        cpu_shortage_m=decision.cpu_shortage_m,
        render=functools.partial(
            ctx.render,
            index=inst.index,
            partitions=inst.partitions,
            resources=decision.resources,
            scaling=decision.scaling,
            cpu_shortage_m=decision.cpu_shortage_m,
            template=decision.template,
        ),
        fell_back=decision.fell_back,
        drift_key=rules.drift_key(
            memo_key=_memo_key(ctx),
            index=inst.index,
            partitions=inst.partitions,
            target=decision.resources,
            template=decision.template,
            scaling=decision.scaling,
            cpu_shortage_m=decision.cpu_shortage_m,
        ),
    )


def _in_place_state(inst: Instance, decision: Decision) -> tuple[bool, bool]:
    """(resized, pending) of one instance in in-place mode, as observed this pass.

    Only running pods count: one that is starting or going away is not waiting for a
    resize (a new one is resized once it runs), so a rollout or a restart does not
    flap the counters (and with them the status).
    """
    d = inst.deployment
    pods = [p for p in inst.pods if p.running and not p.deleting]
    if d is None or d.paused or not pods or decision.action in (Action.CREATE, Action.ROLLOUT):
        return False, False  # a paused instance's pods are left as they run
    # Found with the pod patches (``rules.in_place``), over the same pods.
    pending = decision.pods_pending
    resized = not pending and rules.resources_differ(d.template_resources, decision.resources)
    return resized, pending


def _report(inst: Instance, decision: Decision, *, paused: bool) -> InstanceReport:
    return InstanceReport(
        index=inst.index,
        name=inst.name,
        partitions=inst.partitions,
        max_lag_s=inst.max_lag_s,
        lagging=inst.lagging,
        paused=paused,
        status=decision.scaling.status,
        cpu_shortage_m=rules.reported_shortage(decision.scaling, decision.cpu_shortage_m),
    )


def _context(
    *,
    config: ConsumerConfig,
    owner: Owner,
    num_instances: int,
    deployments: Sequence[ObservedDeployment],
    metrics: Metrics,
    now: datetime,
    recent: Recent | None = None,
    budget: disruption.RestartBudget | None = None,
) -> Context:
    snapshot = metrics.snapshot if config.autoscaling is not None else None
    return Context(
        config=config,
        owner=owner,
        num_instances=num_instances,
        hash_value=_template_hash(config=config, num_instances=num_instances),
        memory_format=config.autoscaling.memory_format if config.autoscaling else Format.DECIMAL_SI,
        sizing=sizing.Sizing.for_pass(
            config=config, snapshot=snapshot, num_instances=num_instances, deployments=deployments
        ),
        snapshot=snapshot,
        refreshed=metrics.refreshed,
        now=now,
        recent=recent,
        budget=budget,
    )


def _budget(
    *,
    config: ConsumerConfig,
    claimed: Mapping[int, tuple[ObservedDeployment, bool]],
    num_instances: int,
    metrics: Metrics,
    now: datetime,
) -> disruption.RestartBudget | None:
    """The restart budget of this pass, None when it cannot bind (100 %, or no more
    instances than it allows). The turns are reserved only under ``Recreate`` in a pass
    that refreshed, the only one whose scale-downs apply and restart (in place only a
    fallback rollout restarts, and it takes the budget in index order): the scan of
    every instance's state is not made where it cannot matter. Not for a paused instance
    (the disable annotation): the scale rules do not decide it, so it keeps its
    ``PENDING_SCALE_DOWN`` as long as it is paused, and a turn reserved for it is taken
    by none (the oldest, it held every other scale-down for as long)."""
    a = config.autoscaling
    if a is None:
        return None
    limit = disruption.allowed(percent=a.restart_budget_percent, instances=num_instances)
    if limit >= num_instances:
        return None
    # What the cut passes of the same refresh left (a continued pass, ``Metrics``).
    limit = max(0, limit - metrics.restarts_spent)
    turns = (
        disruption.turns(
            ((i, d.scaling) for i, (d, _) in claimed.items() if not d.paused),
            now=now,
            pending_down_s=a.pending_down_s,
            limit=limit,
        )
        if metrics.refreshed and not config.in_place and limit > 0
        else frozenset()
    )
    return disruption.RestartBudget(limit=limit, turns=turns)


def _recent(*, config: ConsumerConfig, memory: "KeptMemory | None") -> Recent | None:
    """The adaptive memory kept of the Consumer's Deployments, when it uses the adaptive
    predictor; otherwise none, and what was kept is forgotten (a later switch back
    reads the annotations, as a restarted operator would)."""
    if memory is None:
        return None
    a = config.autoscaling
    if a is None or a.predictor is not Predictor.ADAPTIVE:
        if len(memory.recent):
            memory.recent.clear()
        return None
    return memory.recent


def _remember(recent: Recent, *, d: ObservedDeployment, decision: Decision) -> None:
    """Keep the adaptive memory ``decision`` computed for ``d``, with the annotation ``d``
    then holds: the one it is written with, or the one it already has (no write)."""
    remembered = decision.remembered
    if remembered is None:
        return
    written = decision.scaling.memory
    if decision.writes and written is not None:
        annotation: str | None = adaptive_memory.encode(written)
    else:
        annotation = d.annotations.get(keys.SCALING_MEMORY)
    recent.keep(uid=d.uid, annotation=annotation, memory=remembered)


# ``rendering.template_hash`` by config object (held, so its id is not reused while
# remembered) and instance count: it encodes and hashes the whole template, once per
# pass, and a Consumer's passes share one config until its spec changes. Bounded.
_HASHES: dict[int, tuple[ConsumerConfig, int, str]] = {}
_MAX_HASHES = 64


def _template_hash(*, config: ConsumerConfig, num_instances: int) -> str:
    known = _HASHES.get(id(config))
    if known is not None and known[0] is config and known[1] == num_instances:
        return known[2]
    if len(_HASHES) >= _MAX_HASHES:
        _HASHES.clear()
    value = rendering.template_hash(config=config, num_instances=num_instances)
    _HASHES[id(config)] = (config, num_instances, value)
    return value


def _memo_key(ctx: Context) -> Hashable:
    """What every instance's rendering shares, for the drift memo's keys.

    With the per-instance part (``rules.repair_drift``) it covers every input of
    ``rendering.render``, so a memoised body is never reused for another input.
    """
    config = ctx.config
    return (
        ctx.hash_value,
        config.name,
        config.namespace,
        ctx.owner,
        ctx.num_instances,
        ctx.memory_format,
    )


def _requests(resources: Mapping[str, Resources]) -> tuple[int, int]:
    """The CPU (millicores) and memory (bytes) an instance of ``resources`` requests."""
    cpu_m = mem_b = 0
    for r in resources.values():
        cpu_m += r.cpu_req_m or 0
        mem_b += r.mem_req_b or 0
    return cpu_m, mem_b


@dataclass(slots=True)
class _Tally:
    """What the per-instance loop of ``plan`` accumulates.

    Mutable on purpose: one pass builds it, ``_assemble`` freezes it into the
    ``Plan``; it never leaves this module. The instances kept as they are (``_kept``,
    ``_kept_again``) are in ``kept``; the reports are by instance index (None: no
    report, a missing instance that is not created).
    """

    kept: "_Again"
    reports: list[InstanceReport | None]
    # The writes in the order the act step starts them (``Plan.applies``): creations
    # first, then the writes to existing Deployments, each in index order.
    creates: list[Apply] = field(default_factory=list)
    applies: list[Apply] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("running", "paused", "lagging", "missing", "outdated"), 0
        )
    )
    # The requests held once the pass is done: CPU millicores and memory bytes.
    cpu_m: int = 0
    mem_b: int = 0
    resizes: list[PodResize] = field(default_factory=list)
    resized: int = 0
    pending: int = 0
    # Decided instances that are SATURATED, and missing ones without a report: only
    # then does ``_assemble`` look through the reports.
    saturated: int = 0
    unreported: int = 0

    def record_kept(self, index: int, kept: "_Last") -> None:
        """A running instance that keeps its Deployment as it is (``_kept``): no write or
        patch, no pod pending, its requests held (added up in ``kept``)."""
        self.kept.keep(index, kept)
        self.reports[index] = kept.report

    def add_kept(self) -> None:
        """What ``record`` would have added for each instance in ``kept``, but the
        reports, which are in place already."""
        counts = self.counts
        again = self.kept
        counts["running"] += again.running
        counts["lagging"] += again.lagging
        self.resized += again.resized
        self.cpu_m += again.cpu_m
        self.mem_b += again.mem_b
        self.saturated += again.saturated

    def record(self, *, ctx: Context, inst: Instance, decision: Decision, paused: bool) -> None:
        """Add one instance's decision: its write, pod patches, requests and report."""
        if decision.writes:
            (self.creates if inst.deployment is None else self.applies).append(
                _apply(ctx, inst, decision)
            )
        self.resizes += decision.resizes
        inst_resized, inst_pending = _in_place_state(inst, decision)
        self.resized += inst_resized
        self.pending += inst_pending
        cpu_m, mem_b = _requests(decision.resources)
        self.cpu_m += cpu_m
        self.mem_b += mem_b
        self.reports[inst.index] = report = _report(inst, decision, paused=paused)
        self.saturated += report.status is _SATURATED


# ``_kept``'s findings about one observed Deployment, remembered in its ``drift_memo``
# (a per-version cache of the planner's) under ``(_KEPT, token, index, partitions,
# in_place)``: ``()``, it is a plain instance of ours (not paused, not OUTDATED, no
# drift from what its own state renders); ``_TARGET``, the same with an in-place target
# that is not its template's size. Drift keys start with the pass's memo key, a tuple,
# so the two never meet.
_KEPT = "planning._kept"
_TARGET = ("target",)
# Scaling states whose verdict reads the time (the pending periods).
_TIMED = frozenset({ScalingStatus.PENDING_SCALE_UP, ScalingStatus.PENDING_SCALE_DOWN})
# Enum members read in the per-instance loops, as module constants: under Python 3.11
# an Enum member read from its class goes through ``EnumType.__getattr__``'s hook,
# some four times a plain class attribute.
_SATURATED = ScalingStatus.SATURATED
_PENDING_UP = ScalingStatus.PENDING_SCALE_UP
# The pass's memo key (``_memo_key``) as a small number: hashing the key itself costs
# more than the rest of ``_kept``. Never reused for another key (the numbers only grow).
_TOKENS: dict[Hashable, int] = {}
_MAX_TOKENS = 1024
_next_token = itertools.count()


def _token(memo_key: Hashable) -> int:
    token = _TOKENS.get(memo_key)
    if token is None:
        if len(_TOKENS) >= _MAX_TOKENS:
            _TOKENS.clear()
        token = _TOKENS[memo_key] = next(_next_token)
    return token


@dataclass(frozen=True, slots=True)
class _Keeping:
    """What ``_kept`` needs of a pass, found once per pass (None: no instance of it can
    take the shortcut).

    The shortcut is for metrics known, autoscaling not paused (the passes of a steady
    Consumer, where nearly every instance keeps its size), by either predictor. The
    naive predictor's rule (``rules.scale_by_metrics``) is what ``_kept`` repeats in
    plain numbers. The adaptive one's (``rules.scale_adaptively``) runs only in a pass
    that refreshed metrics: in any other it decides nothing and reads nothing (no
    metrics, no time, no memory kept in the process), so an instance's decision is the
    rest of the chain's, the same for both predictors (outdated, a target to roll out,
    pods off their size, drift). In a pass that refreshed, ``_kept`` asks the adaptive
    rule itself (``_adaptively_kept``: its rules read the time and every metric, so no
    decision of theirs is reused), and ``_kept_again`` reuses no keep then.
    """

    ctx: Context
    autoscaling: Autoscaling
    # The adaptive predictor: in a pass that refreshed, its own rule decides (``_kept``).
    adaptive: bool
    memo_key: Hashable
    token: int
    in_place: bool
    lag: Mapping[int, int]
    pods: Mapping[str, Sequence[ObservedPod]]
    refused: Mapping[str, str]
    # The pool grants what is wanted: a proposal is a function of the need's size.
    unbounded: bool
    # The instances' last keeps, by index (``KeptMemory``; empty without one).
    last: dict[int, "_Last"]
    # What the last pass with these keeps saw and kept (``KeptMemory``; None: not known).
    frame: "_Frame | None"
    # The instances' indexes by Deployment name.
    names: Mapping[str, int]
    # ``rules.compare`` of the shared proposals (``Sizing.peek``, from an unbounded
    # pool, alive for the pass) with the instances' sizes (shared between Deployments
    # of the same size, ``ObservedDeployment.current``), by identity.
    comparisons: dict[tuple[int, int], int] = field(default_factory=dict)
    # The instances ``_adaptively_kept`` built and the rule chain then decides (it
    # declined them), by index: the ones ``plan`` would build again (``_instance``).
    built: dict[int, Instance] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        *,
        ctx: Context,
        memo_key: Hashable,
        pods: Mapping[str, Sequence[ObservedPod]],
        refused: Mapping[str, str],
        pool: limits.Pool,
        memory: "KeptMemory | None",
    ) -> "_Keeping | None":
        a, snapshot = ctx.config.autoscaling, ctx.snapshot
        if a is None or ctx.config.paused or snapshot is None:
            return None
        token = _token(memo_key)
        last: dict[int, _Last] = {}
        frame = None
        names: Mapping[str, int] = {}
        if memory is not None:
            last = memory.of_pass(config=ctx.config, token=token)
            frame, names = memory.frame, memory.names(ctx.config, ctx.num_instances)
        return cls(
            ctx=ctx,
            autoscaling=a,
            adaptive=a.predictor is Predictor.ADAPTIVE,
            memo_key=memo_key,
            token=token,
            in_place=ctx.config.in_place,
            lag=snapshot.lag,
            pods=pods,
            refused=refused,
            unbounded=pool.unbounded,
            last=last,
            frame=frame,
            names=names,
        )


# A msgspec Struct (frozen, hashable), built in C: see ``adaptive.memory.Memory``.
class _Last(msgspec.Struct, frozen=True):
    """One instance's last keep by ``_kept`` (``report``, ``resized``), and what it read
    beyond what its pass shares (``KeptMemory``): its Deployment version, its pods,
    whether a resize of its was refused, its lag, and ``sized``: in a pass that refreshed
    metrics, the size of its need when that decided the verdict (an unbounded pool; None:
    not known, or not refreshed)."""

    d: ObservedDeployment
    pods: Sequence[ObservedPod]
    refused: bool
    max_lag: int
    sized: Resources | None
    report: InstanceReport
    resized: bool
    # The requests it holds (``_requests``).
    cpu_m: int
    mem_b: int
    # The instance the adaptive rule was asked for when it kept this one
    # (``_adaptively_kept``), a function of the fields above when no resize of it was
    # refused: the one a later pass with the same inputs asks for again. None: none.
    inst: Instance | None = None


class KeptMemory:
    """What ``plan`` remembers of one Consumer's instances from one pass to the next:
    each instance's last keep (``_kept``) with what it read. The caller keeps one per
    Consumer and hands it to each pass of that Consumer (the pipeline does).

    It is a cache, not state: a keep is reused only for inputs that give the same decision
    (the same config object, memo key, Deployment version, pods and refusal, a lag on the
    same side of both thresholds, and in a pass that refreshed metrics the same size of
    need from an unbounded pool, before any pending period runs out: ``_kept_again``).
    Most passes of a steady Consumer refresh nothing, and see all but the few Deployments
    the last pass wrote as it saw them: ``frame`` holds what the last pass saw and kept,
    so that the next one visits only the instances whose inputs changed.
    """

    __slots__ = ("_last", "_names", "_pass", "claims", "frame", "recent")

    def __init__(self) -> None:
        self._pass: tuple[ConsumerConfig, int] | None = None
        self._last: dict[int, _Last] = {}
        # What the last pass saw and kept; None: not known (set by every pass).
        self.frame: _Frame | None = None
        self._names: tuple[ConsumerConfig, int, dict[str, int]] | None = None
        # The last pass's config, Deployments and what ``_claim`` made of them (``_claims``).
        self.claims: _Claims | None = None
        # Unlike the keeps above, state: the adaptive policy's memory of each
        # Deployment since its last write (``adaptive_memory.Recent``), which the
        # passes read instead of the annotation while that is what it was kept with.
        self.recent = Recent()

    def of_pass(self, *, config: ConsumerConfig, token: int) -> dict[int, _Last]:
        """The instances' last keeps by index, when made under this config object and
        memo key (``_token``); else none (and those are forgotten). The frame of a pass
        under another config is not read then: a pass without keeps reads none."""
        known = self._pass
        if known is None or known[0] is not config or known[1] != token:
            self._pass = (config, token)
            self._last = {}
        return self._last

    def names(self, config: ConsumerConfig, count: int) -> dict[str, int]:
        """The instances' indexes by Deployment name, for this config object."""
        known = self._names
        if known is None or known[0] is not config or known[1] != count:
            names = rendering.deployment_names(config=config, count=count)
            known = self._names = (config, count, {name: i for i, name in enumerate(names)})
        return known[2]


def _plain(
    k: _Keeping, *, index: int, partitions: tuple[int, ...], d: ObservedDeployment
) -> tuple[str, ...] | None:
    """What ``_kept`` remembers of ``d`` (see ``_KEPT``), or None: not a plain instance,
    or its drift was never compared (the full rule chain compares and remembers it).

    Each part is a function of ``d`` and of the key it is remembered under: not paused
    and not OUTDATED (``rules.roll_out_outdated`` passes), and no drift from what its
    own size and scaling state render (``rules.repair_drift``, as remembered on ``d``).
    """
    if d.paused or d.annotations.get(keys.GENERATION) != k.ctx.hash_value:
        return None
    key = rules.drift_key(
        memo_key=k.memo_key,
        index=index,
        partitions=partitions,
        target=d.current,
        template=d.template_resources if k.in_place else None,
        scaling=d.scaling,
        cpu_shortage_m=d.saturation_m,
    )
    if not rules.no_drift_known(d, key=key):
        return None
    differs = d.target is not None and rules.resources_differ(d.template_resources, d.current)
    return _TARGET if differs else ()


def _kept(
    k: _Keeping,
    *,
    index: int,
    partitions: tuple[int, ...],
    d: ObservedDeployment,
    pool: limits.Pool,
    tally: _Tally,
) -> bool:
    """The decision of ``rules.decide_existing`` when it is "keep, write nothing", in
    plain numbers: recorded in ``tally`` (True), or nothing done (False: the full rule
    chain decides the instance).

    ``plan()`` runs its rules for every instance of every pass, and in a steady pass
    nearly all of them keep their size. This is the rule chain's own outcome for them,
    not another policy: each condition below is the one under which a rule of the chain
    passes (an instance OUTDATED, with a target to roll out, paused, resized by metrics,
    drifted or with a pod off its size goes the full way), the proposal is
    ``Sizing.propose``'s, its verdict ``scaling.decide``'s, and the drift is the one
    ``rules.repair_drift`` remembered on this very Deployment. Under the adaptive
    predictor, in a pass that refreshed metrics, the verdict is its rule's own
    (``_adaptively_kept``). A property test compares ``plan()`` with and without it on
    random passes.

    What it keeps is remembered (``KeptMemory``): a later pass with the same inputs keeps
    the instance again without coming here (``_kept_again``).
    """
    adaptive = k.adaptive
    if not adaptive and d.scaling.memory is not None:
        return False  # the adaptive predictor's memory: naive's rule chain drops it
    name = d.name
    pods = k.pods.get(name, ())
    refused = name in k.refused
    lag = k.lag
    if len(partitions) == 1:
        max_lag = lag.get(partitions[0], 0)
    else:
        max_lag = max([lag.get(p, 0) for p in partitions], default=0)
    ctx = k.ctx
    refreshed = ctx.refreshed
    scaling = d.scaling
    need = sized = None
    if refreshed and not adaptive:
        need = ctx.sizing.naive_need(partitions)
        if k.unbounded:
            # The proposal from an unbounded pool is a function of the size (and of
            # whether the lag is critical): what a later pass compares.
            sized = ctx.sizing.size(need)
    in_place = k.in_place
    memo = d.drift_memo
    plain_key = (_KEPT, k.token, index, partitions, in_place)
    plain = memo.get(plain_key)
    if plain is None:
        plain = _plain(k, index=index, partitions=partitions, d=d)
        if plain is None:
            return False
        memo[plain_key] = plain
    current = d.current
    running = False
    if in_place:
        for p in pods:
            if p.deleting or not p.running:
                continue
            if (p.spec != current or p.actual != current) and not rules.pod_settled(p, current):
                return False  # ``rules.in_place`` patches or waits for this pod
            running = True
        # ``rules.roll_out_target`` rolls out a target the pods cannot get in place.
        if plain and (refused or any(p.pending and not p.deleting for p in pods)):
            return False
    elif plain:
        return False  # Recreate mode rolls out a target left from in-place mode
    autoscaling = k.autoscaling
    lagging = _at_least(max_lag, autoscaling.tolerable_lag_s)
    level = d.saturation_m
    # The last keep of this instance, when made with the same inputs: every field of it
    # is a function of those, under the config and memo key the keeps are remembered
    # with (``KeptMemory.of_pass``).
    kept = k.last.get(index)
    if kept is not None and (
        kept.d is not d
        or kept.pods is not pods
        or kept.refused is not refused
        or kept.max_lag != max_lag
        or kept.sized is not sized
    ):
        kept = None
    inst = None
    if refreshed and adaptive:
        inst = _adaptively_kept(
            k,
            index=index,
            partitions=partitions,
            d=d,
            pool=pool,
            max_lag=max_lag,
            lagging=lagging,
            pods=pods,
            known=None if kept is None or refused else kept.inst,
        )
        if inst is None:
            return False
    elif refreshed:
        # ``rules.scale_by_metrics`` when its verdict changes nothing.
        saved = pool.available
        critical = _at_least(max_lag, autoscaling.critical_lag_s)
        if k.unbounded:
            proposal = ctx.sizing.shared(need=need, critical=critical, pool=pool)
            key = (id(proposal.resources), id(current))
            comparison = k.comparisons.get(key)
            if comparison is None:
                comparison = k.comparisons[key] = rules.compare(current, proposal.resources)
        else:
            proposal = ctx.sizing.peek(
                partitions=partitions, current=current, critical=critical, pool=pool
            )
            comparison = rules.compare(current, proposal.resources)
        verdict = scaling_decide(
            state=scaling,
            comparison=comparison,
            lagging=lagging,
            cpu_shortage_m=proposal.cpu_shortage_m,
            now=ctx.now,
            pending_up_s=autoscaling.pending_up_s,
            pending_down_s=autoscaling.pending_down_s,
        )
        pool.restore(saved)
        if (
            verdict.apply
            or (verdict.state is not scaling and verdict.state != scaling)
            or rules.level_moved(
                written=level,
                reported=rules.reported_shortage(verdict.state, proposal.cpu_shortage_m),
            )
        ):
            if k.unbounded:
                # The rule chain decides it: ``scale_by_metrics`` takes this verdict.
                ctx.verdicts[index] = rules.Verdict(
                    proposal=sizing.Proposal(
                        resources=dict(proposal.resources),
                        cpu_shortage_m=proposal.cpu_shortage_m,
                    ),
                    comparison=comparison,
                    decision=verdict,
                )
            return False
    if kept is None or (inst is not None and kept.inst is not inst):
        report = InstanceReport(
            index=index,
            name=name,
            partitions=partitions,
            max_lag_s=max_lag,
            lagging=lagging,
            paused=False,
            status=scaling.status,
            cpu_shortage_m=rules.reported_shortage(scaling, level),
        )
        cpu_m, mem_b = _requests(current)
        k.last[index] = kept = _Last(
            d=d,
            pods=pods,
            refused=refused,
            max_lag=max_lag,
            sized=sized,
            report=report,
            resized=running and bool(plain),
            cpu_m=cpu_m,
            mem_b=mem_b,
            inst=inst,
        )
    tally.record_kept(index, kept)
    return True


def _adaptively_kept(
    k: _Keeping,
    *,
    index: int,
    partitions: tuple[int, ...],
    d: ObservedDeployment,
    pool: limits.Pool,
    max_lag: int,
    lagging: bool,
    pods: Sequence[ObservedPod],
    known: Instance | None,
) -> Instance | None:
    """In a pass that refreshed metrics, whether the adaptive rule keeps the instance as
    it is (the instance it was asked for; None: it does not): its own decision
    (``rules.scale_adaptively``, asked for the instance the rule chain would build, not
    a copy of its reasoning), when that writes nothing and keeps
    the observed size, state and level, which ``_kept`` found plain. Its memory is then
    kept in the process as the chain's pass keeps it (``_remember``). Any other decision
    (a resize, an ANNOTATE write) is left to the rule chain, which decides it again from
    the pool as it was: what this drew is given back; the instance it was asked for is
    the one the chain decides (``_Keeping.built``).

    The instance is ``_instance``'s for ``d`` claimed with its partitions, built from
    what ``_kept`` found (``max_lag``, ``lagging``, ``pods``): named as ``d`` is (a claim
    is by that name), and not OUTDATED (``_kept`` found it plain: its generation is the
    pass's); or ``known``, the one of the instance's last keep with the same inputs.
    """
    ctx = k.ctx
    if ctx.budget is not None and not ctx.config.in_place:
        # A scale-down under Recreate takes a turn of the restart budget (``disruption``),
        # which the rule chain would take again: those passes go the full way.
        return None
    inst = known
    if inst is None:
        name = d.name
        inst = Instance(
            index=index,
            name=name,
            partitions=partitions,
            max_lag_s=max_lag,
            lagging=lagging,
            critical=_at_least(max_lag, k.autoscaling.critical_lag_s),
            deployment=d,
            outdated=False,
            pods=tuple(pods) if k.in_place else (),
            refused=k.refused.get(name),
        )
    saved = pool.available
    decision = rules.scale_adaptively(ctx, inst, pool)
    if (
        decision is None
        or decision.action is not None
        or decision.resources is not d.current
        or decision.scaling is not d.scaling
        or decision.cpu_shortage_m != d.saturation_m
    ):
        after = pool.available
        pool.restore(saved)
        k.built[index] = inst
        # The rule chain asks the rule for ``inst`` next, from the pool as it was.
        rules.decline(ctx=ctx, inst=inst, pool=pool, before=saved, after=after, decision=decision)
        return None
    if ctx.recent is not None:
        _remember(ctx.recent, d=d, decision=decision)
    return inst


@dataclass(slots=True)
class _Again:
    """The instances of a pass kept as they are: by index, their keep (``_Last``; None:
    not kept, the rules decide them), and what the keeps add up to. ``_kept_again`` finds
    the ones whose last keep holds again, ``_kept`` adds those it keeps."""

    keeps: list["_Last | None"]
    running: int = 0
    lagging: int = 0
    resized: int = 0
    cpu_m: int = 0
    mem_b: int = 0
    # How many of them are SATURATED (their reports name them in ``Plan.saturated``).
    saturated: int = 0

    def copy(self) -> "_Again":
        return _Again(
            keeps=list(self.keeps),
            running=self.running,
            lagging=self.lagging,
            resized=self.resized,
            cpu_m=self.cpu_m,
            mem_b=self.mem_b,
            saturated=self.saturated,
        )

    def keep(self, index: int, last: "_Last") -> None:
        """Instance ``index`` is kept as ``last`` says (it was not kept before)."""
        self.keeps[index] = last
        report = last.report
        self.running += 1
        self.lagging += report.lagging
        self.resized += last.resized
        self.cpu_m += last.cpu_m
        self.mem_b += last.mem_b
        self.saturated += report.status is _SATURATED

    def drop(self, index: int) -> None:
        """Instance ``index`` is not kept (whether it was or not)."""
        last = self.keeps[index]
        if last is None:
            return
        self.keeps[index] = None
        report = last.report
        self.running -= 1
        self.lagging -= report.lagging
        self.resized -= last.resized
        self.cpu_m -= last.cpu_m
        self.mem_b -= last.mem_b
        self.saturated -= report.status is _SATURATED


@dataclass(frozen=True, slots=True)
class _Frame:
    """What one pass saw of the inputs a keep reads beyond its config and memo key, and
    what it kept (``KeptMemory.frame``).

    The next pass compares its inputs with these (``_changed``: by identity, mostly in C
    loops) and finds the few instances whose Deployment version, pods or refusal
    changed; every other instance kept here is known to pass those tests again, and in a
    pass that did not refresh metrics and reads the same lag, to be kept again outright.
    """

    deployments: list[ObservedDeployment]
    lag: Mapping[int, int]
    pods: dict[str, Sequence[ObservedPod]]
    refused: frozenset[str]
    kept: _Again
    # The indexes with a remembered keep (``KeptMemory``) that this pass did not keep.
    others: list[int]


def _changed(
    k: _Keeping, *, frame: _Frame, deployments: Sequence[ObservedDeployment], instances: int
) -> set[int] | None:
    """The indexes (below ``instances``) whose claimed Deployment, pods or refusal may
    differ from what ``frame``'s pass saw (None: not known, every instance is looked at).

    An index not named here is claimed by the same Deployment object as in that pass
    (``_claim`` is a function of the Deployments in order and of the config, and only
    the positions that hold another object can claim otherwise: both the old and the
    new object's indexes count as changed), has the same pods object and the same
    refusal. Object identity, not equality: an equal copy is compared the full way.
    """
    before = frame.deployments
    if len(before) != len(deployments):
        return None
    changed: set[int] = set()
    pods, held, names = k.pods, frame.pods, k.names
    for position in itertools.compress(
        itertools.count(), map(operator.is_not, before, deployments)
    ):
        for d in (before[position], deployments[position]):
            # Anyone may write any consumer-id: one at or past the instance count names
            # no instance (a redundant Deployment), so no keep of it to drop. The
            # Deployment's name claims an index too (``_claim``), whatever it says.
            if d.instance is not None and d.instance < instances:
                changed.add(d.instance)
            named = names.get(d.name)
            if named is not None:
                changed.add(named)
    # Equal as a whole (a C loop, values by identity first): no instance's pods moved.
    if pods is not held and pods != held:
        moved = itertools.compress(pods, map(operator.is_not, map(held.get, pods), pods.values()))
        for name in itertools.chain(moved, held.keys() - pods.keys()):
            index = names.get(name)
            if index is not None:
                changed.add(index)
    refused = k.refused
    if len(refused) or len(frame.refused):
        for name in frame.refused.symmetric_difference(refused):
            index = names.get(name)
            if index is not None:
                changed.add(index)
    return changed


def _kept_again(
    k: _Keeping,
    *,
    assignment: Sequence[tuple[int, ...]],
    claimed: Mapping[int, tuple[ObservedDeployment, bool]],
    deployments: Sequence[ObservedDeployment],
) -> _Again:
    """The instances whose last keep (``KeptMemory``) holds again, found before anything
    else is decided (an empty ``_Again`` when none can be).

    This is ``_kept``'s reuse test, taken out of the per-instance rule loop: in a pass of
    a steady Consumer all but a few instances are kept again, and a visit of each through
    ``_kept`` and the tally costs more than the test itself. The test is the same: the
    same Deployment version (so the same partitions: the config, and with it the
    assignment, is the one the keeps were made under), pods and refusal; a lag on the
    same side of both thresholds (``_lag_moved``); and in a pass that refreshed metrics,
    a keep made in one that refreshed too, the same size of need from an unbounded pool
    and, in a pending period, one that has not run out (``_still_pending``). A keep reads
    no pool and draws nothing, so deciding these first changes nothing for the others,
    which the rule loop then decides in index order as before.

    After a pass that kept instances (``KeptMemory.frame``) only the instances whose
    Deployment, pods or refusal changed since (``_changed``) and those it did not keep
    take the whole test; the others passed its first part then and pass it now, and in a
    pass that neither refreshed metrics nor reads another lag than that one, the whole
    test: they are kept again as they were, without a visit.
    """
    lasts = k.last
    ctx = k.ctx
    refreshed = ctx.refreshed
    again = _Again(keeps=[None] * len(assignment))
    holding = refreshed and k.adaptive
    if (
        not lasts
        or (refreshed and not k.unbounded)
        or (holding and ctx.budget is not None and not k.in_place)
    ):
        # From a bounded pool a proposal depends on what the others drew; under Recreate
        # with a restart budget an adaptive scale-down takes a turn (``_adaptively_kept``).
        return again
    lag = k.lag
    sizes = ctx.sizing.naive_sizes(assignment) if refreshed and not holding else None
    frame = k.frame
    changed = (
        None
        if frame is None
        else _changed(k, frame=frame, deployments=deployments, instances=len(assignment))
    )
    rest: Iterable[int] = lasts
    if frame is not None and changed is not None:
        if sizes is None and lag is frame.lag and not holding:
            again = frame.kept.copy()
            for index in changed:
                again.drop(index)
        else:
            still = list(frame.kept.keeps)
            for index in changed:
                still[index] = None
            _recheck(k, again=again, still=still, assignment=assignment, sizes=sizes, held=holding)
        rest = changed.union(frame.others)
    pods, refused = k.pods, k.refused
    for index in rest:
        last = lasts.get(index)
        if last is None:
            continue
        got = claimed.get(index)
        d = last.d
        if got is None or got[0] is not d:
            continue
        name = d.name
        held = pods.get(name, ())
        if held is not last.pods and held != last.pods:
            continue
        if (name in refused) is not last.refused:
            continue
        kept = _holds(
            k, index=index, last=last, partitions=assignment[index], sizes=sizes, held=holding
        )
        if kept is not None:
            again.keep(index, kept)
    return again


def _holds(
    k: _Keeping,
    *,
    index: int,
    last: _Last,
    partitions: tuple[int, ...],
    sizes: list[Resources | None] | None,
    held: bool,
) -> "_Last | None":
    """``last`` as it holds for this pass (moved to the pass's lag, and remembered so),
    when its Deployment, pods and refusal are the pass's (None: it does not hold): the
    second part of ``_kept_again``'s test (``_recheck`` repeats it inline)."""
    lag = k.lag
    if len(partitions) == 1:
        max_lag = lag.get(partitions[0], 0)
    else:
        max_lag = max([lag.get(p, 0) for p in partitions], default=0)
    if sizes is not None:
        sized = last.sized
        if sized is None:
            return None
        now_sized = sizes[index]
        if now_sized is not sized and now_sized != sized:
            return None
        scaling = last.d.scaling
        if scaling.status in _TIMED and not _still_pending(k, scaling):
            return None
    if max_lag != last.max_lag:
        moved = _lag_moved(k, last=last, max_lag=max_lag)
        if moved is None:
            return None
        k.last[index] = last = moved
    if held and not _held_again(k, last=last, partitions=partitions, max_lag=max_lag):
        return None
    return last


def _recheck(
    k: _Keeping,
    *,
    again: _Again,
    still: list["_Last | None"],
    assignment: Sequence[tuple[int, ...]],
    sizes: list[Resources | None] | None,
    held: bool,
) -> None:
    """Add to ``again`` the keeps of ``still`` (by index) that hold in this pass, when each
    is known to have the pass's Deployment, pods and refusal: ``_holds`` for each,
    inlined (it runs for nearly every instance of a pass that refreshes metrics)."""
    lasts, lag = k.last, k.lag
    running = lagging = resized = cpu_m = mem_b = saturated = 0
    keeps = again.keeps
    for index, last in enumerate(still):
        if last is None:
            continue
        partitions = assignment[index]
        if len(partitions) == 1:
            max_lag = lag.get(partitions[0], 0)
        else:
            max_lag = max([lag.get(p, 0) for p in partitions], default=0)
        if sizes is not None:
            sized = last.sized
            if sized is None:
                continue
            now_sized = sizes[index]
            if now_sized is not sized and now_sized != sized:
                continue
            scaling = last.d.scaling
            if scaling.status in _TIMED and not _still_pending(k, scaling):
                continue
        if max_lag != last.max_lag:
            moved = _lag_moved(k, last=last, max_lag=max_lag)
            if moved is None:
                continue
            lasts[index] = last = moved
        if held and not _held_again(k, last=last, partitions=partitions, max_lag=max_lag):
            continue
        keeps[index] = last
        report = last.report
        running += 1
        lagging += report.lagging
        resized += last.resized
        cpu_m += last.cpu_m
        mem_b += last.mem_b
        saturated += report.status is _SATURATED
    again.saturated += saturated
    again.running += running
    again.lagging += lagging
    again.resized += resized
    again.cpu_m += cpu_m
    again.mem_b += mem_b


def _held_again(k: _Keeping, *, last: _Last, partitions: tuple[int, ...], max_lag: int) -> bool:
    """In a pass that refreshed metrics under the adaptive predictor, whether its rule
    keeps the instance of ``last`` as it is by the peak's certificate (``rules.held``,
    for the instance ``_adaptively_kept`` would ask about: as critical and as lagging
    as ``max_lag`` says), and if so, its memory kept as ``_remember`` keeps it (no write:
    with the annotation the Deployment holds). Its Deployment, pods and refusal are the
    ones ``last`` was kept with, so ``_kept`` would ask the rule; a hold draws nothing
    from the pool, so asking it before the rule loop changes nothing for the others."""
    ctx, d = k.ctx, last.d
    snapshot = ctx.snapshot
    assert snapshot is not None  # ``_Keeping.of``: metrics known
    memory = rules.held(
        ctx,
        d=d,
        partitions=partitions,
        critical=_at_least(max_lag, k.autoscaling.critical_lag_s),
        lagging=last.report.lagging,
        unbounded=k.unbounded,
        snapshot=snapshot,
        autoscaling=k.autoscaling,
    )
    if memory is None:
        return False  # the rule loop decides it (not by ``held`` again: ``Context.unheld``)
    recent = ctx.recent
    if recent is not None:
        recent.keep(uid=d.uid, annotation=d.annotations.get(keys.SCALING_MEMORY), memory=memory)
    return True


def _lag_moved(k: _Keeping, *, last: _Last, max_lag: int) -> _Last | None:
    """``last`` for an instance whose lag moved to ``max_lag`` (None: it does not hold).

    The lag reaches a keep only through whether it is at least the tolerable and the
    critical lag (the verdict, the report's ``lagging``, the proposal's bounds), through
    the need (compared by its size, as any need), and as the report's ``max_lag_s``: on
    either side of both thresholds as before, the keep holds with the new figure. A
    backlog that builds or drains moves the lag of its partitions at every refresh.
    """
    a = k.autoscaling
    before = last.max_lag
    if _at_least(max_lag, a.tolerable_lag_s) is not _at_least(
        before, a.tolerable_lag_s
    ) or _at_least(max_lag, a.critical_lag_s) is not _at_least(before, a.critical_lag_s):
        return None
    report = last.report
    return _Last(
        d=last.d,
        pods=last.pods,
        refused=last.refused,
        max_lag=max_lag,
        sized=last.sized,
        report=InstanceReport(
            index=report.index,
            name=report.name,
            partitions=report.partitions,
            max_lag_s=max_lag,
            lagging=report.lagging,
            paused=report.paused,
            status=report.status,
            cpu_shortage_m=report.cpu_shortage_m,
        ),
        resized=last.resized,
        cpu_m=last.cpu_m,
        mem_b=last.mem_b,
    )


def _still_pending(k: _Keeping, scaling: ScalingState) -> bool:
    """Whether the pending period ``scaling`` is in has not run out at the pass's time.

    In a pending period the verdict reads the time: it keeps the instance waiting
    (``scaling.decide``: not yet elapsed, the same expression) until the period is
    over, and then applies. A keep made while waiting holds while it still waits.
    """
    a = k.autoscaling
    period = a.pending_up_s if scaling.status is _PENDING_UP else a.pending_down_s
    return age_s(scaling.since, now=k.ctx.now) < period


def _frame(k: _Keeping, *, deployments: Sequence[ObservedDeployment], kept: _Again) -> _Frame:
    """What this pass saw and kept, for the next one (``KeptMemory.frame``)."""
    keeps = kept.keeps
    return _Frame(
        deployments=list(deployments),
        lag=k.lag,
        pods=dict(k.pods),
        refused=frozenset(k.refused),
        kept=kept,
        others=[i for i in k.last if keeps[i] is None],
    )


def _decide_missing(
    *,
    ctx: Context,
    inst: Instance,
    pool: limits.Pool,
    tally: _Tally,
    foreign_names: frozenset[str],
    terminating: set[str],
) -> Decision | None:
    """Create a missing Deployment, unless its name is taken or its old object is going.

    A name held by an object we do not own is a conflict, reported and never
    touched. A name whose Deployment is being deleted is recreated once the old
    object is gone (its delete event requeues). Either way the instance counts
    as missing and gets no decision (``None``).
    """
    tally.counts["missing"] += 1
    if inst.name in foreign_names:
        tally.conflicts.append(inst.name)
        return None
    if inst.name in terminating:
        return None
    return rules.create_missing(ctx, inst, pool)


def _decide_existing(
    *,
    ctx: Context,
    inst: Instance,
    pool: limits.Pool,
    tally: _Tally,
    memo_key: Hashable,
) -> tuple[Decision, bool]:
    """Run the rule chain for an instance that has a Deployment; count its state.

    Returns the decision and whether the instance is paused (its Deployment's
    own pause, or the consumer's).
    """
    assert inst.deployment is not None
    paused = inst.deployment.paused or ctx.config.paused
    decision = rules.decide_existing(ctx, inst, pool, memo_key=memo_key)
    counts = tally.counts
    counts["paused" if paused else "running"] += 1
    counts["lagging"] += inst.lagging
    counts["outdated"] += inst.outdated or decision.outdated
    return decision, paused


def _assemble(
    *,
    tally: _Tally,
    deletes: Sequence[Delete],
    num_instances: int,
    requeue_after_s: float | None,
    template_hash: str,
    budget: disruption.RestartBudget | None,
) -> Plan:
    """Freeze the tally of one pass into the ``Plan``, with its totals and what the
    restart ``budget`` (None: none) held and admitted."""
    counters = Counters(expected=num_instances, redundant=len(deletes), **tally.counts)
    # Every instance has a report but the missing ones counted in ``unreported``.
    reports = cast(
        list[InstanceReport],
        [r for r in tally.reports if r is not None] if tally.unreported else tally.reports,
    )
    saturated = tuple(r.name for r in reports if r.status is _SATURATED) if tally.saturated else ()
    return Plan(
        applies=(*tally.creates, *tally.applies),
        deletes=tuple(deletes),
        counters=counters,
        instances=tuple(reports),
        conflicts=tuple(tally.conflicts),
        requeue_after_s=requeue_after_s,
        template_hash=template_hash,
        allocated_cpu_m=tally.cpu_m,
        allocated_mem_b=tally.mem_b,
        saturated=saturated,
        resizes=tuple(tally.resizes),
        in_place=InPlaceCounters(resized=tally.resized, pending=tally.pending),
        restarts_held=0 if budget is None else budget.held,
        restarts_admitted=frozenset() if budget is None else frozenset(budget.taken),
    )


def plan(
    *,
    config: ConsumerConfig,
    owner: Owner,
    deployments: Sequence[ObservedDeployment],
    metrics: Metrics,
    now: datetime,
    foreign_names: frozenset[str] = frozenset(),
    pods: Mapping[str, Sequence[ObservedPod]] | None = None,
    refused: Mapping[str, str] | None = None,
    memory: KeptMemory | None = None,
) -> Plan:
    """Decide one pass. ``deployments`` are the ones the owner controls.

    ``foreign_names`` are names in the target namespace held by objects the
    owner does not control; the instances that would use them are skipped.
    ``pods`` are the instances' pods by Deployment name (in-place mode), and
    ``refused`` says, by Deployment name, why an in-place resize was refused
    at act time (the instance then falls back to a rollout). ``memory``: what the
    last passes of this Consumer remembered (``KeptMemory``), a cache of decisions.
    """
    assignment = partitioning.assign(
        num_partitions=config.num_partitions, per_instance=config.per_instance
    )
    recent = _recent(config=config, memory=memory)
    claimed, deletes, terminating = _claims(
        deployments, config=config, assignment=assignment, memory=memory
    )
    pool = sizing.global_pool(
        config=config,
        held=[d.current for d, _ in claimed.values()] if config.global_pool is not None else [],
    )
    budget = _budget(
        config=config, claimed=claimed, num_instances=len(assignment), metrics=metrics, now=now
    )
    ctx = _context(
        config=config,
        owner=owner,
        num_instances=len(assignment),
        deployments=deployments,
        metrics=metrics,
        now=now,
        recent=recent,
        budget=budget,
    )
    memo_key = _memo_key(ctx)
    keeping = _Keeping.of(
        ctx=ctx,
        memo_key=memo_key,
        pods=pods or {},
        refused=refused or {},
        pool=pool,
        memory=memory,
    )
    if keeping is None:
        kept = _Again(keeps=[None] * len(assignment))
        visit: Iterable[int] = range(len(assignment))
    else:
        kept = _kept_again(keeping, assignment=assignment, claimed=claimed, deployments=deployments)
        # The rule loop visits the others, in index order.
        visit = [i for i, last in enumerate(kept.keeps) if last is None]
    tally = _Tally(
        kept=kept, reports=[None if last is None else last.report for last in kept.keeps]
    )
    for index in visit:
        partitions = assignment[index]
        got = claimed.get(index)
        if (
            keeping is not None
            and got is not None
            and got[1]
            and _kept(keeping, index=index, partitions=partitions, d=got[0], pool=pool, tally=tally)
        ):
            continue
        built = None if keeping is None else keeping.built.pop(index, None)
        inst = (
            built
            if built is not None
            else _instance(
                config=config,
                index=index,
                partitions=partitions,
                snapshot=ctx.snapshot,
                claimed=got,
                hash_value=ctx.hash_value,
                pods=pods or {},
                refused=refused or {},
            )
        )
        if inst.deployment is None:
            decision = _decide_missing(
                ctx=ctx,
                inst=inst,
                pool=pool,
                tally=tally,
                foreign_names=foreign_names,
                terminating=terminating,
            )
            if decision is not None:
                tally.record(ctx=ctx, inst=inst, decision=decision, paused=False)
            else:
                tally.unreported += 1
        else:
            decision, paused = _decide_existing(
                ctx=ctx, inst=inst, pool=pool, tally=tally, memo_key=memo_key
            )
            tally.record(ctx=ctx, inst=inst, decision=decision, paused=paused)
            if recent is not None:
                _remember(recent, d=inst.deployment, decision=decision)
    if recent is not None and len(recent) > len(claimed):
        recent.retain({d.uid for d, _ in claimed.values()})
    tally.add_kept()
    if memory is not None:
        memory.frame = (
            None if keeping is None else _frame(keeping, deployments=deployments, kept=kept)
        )
    planned = _assemble(
        tally=tally,
        deletes=deletes,
        num_instances=len(assignment),
        requeue_after_s=_requeue(autoscaling=config.autoscaling, metrics=metrics, now=now),
        template_hash=ctx.hash_value,
        budget=budget,
    )
    return planned
