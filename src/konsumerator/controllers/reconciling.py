"""One reconcile of one Consumer: gather, decide, act, report.

Both controllers (CRD mode and guest mode) read their object, validate it
into a ``ConsumerSpec`` and hand it here; they differ only in where the spec
comes from and where the status goes.

Every step goes through a port (``controllers.ports``), so the operator,
``konsumerator simulate`` and the scorecard run this same pass:

1. **Gather**, with no API call: the owned Deployments from the
   ``DeploymentsView`` (the watch cache's owner index), and a metrics snapshot
   from the ``MetricsSource`` (the Prometheus provider queries only when
   ``minSyncPeriod`` has passed: three queries per Consumer per sync, a fourth
   with ``cpuUsage`` (the learned rate per core, ``domain.adaptive.learning``),
   whatever the partition count).
2. **Decide**: ``domain.planning.plan``, a pure function.
3. **Act**: the ``Actuator`` performs exactly the plan's writes
   (``acting.KubeActuator``), but for the creations of the last passes that the
   watch cache has not shown yet (``runtime.expecting``, ``_unawaited``).
4. **Report**: the status (``domain.status``), written by the ``Reporter`` of the
   mode only if it changed, and its Events: Normal for what was done, Warning for
   what went wrong.
"""

import dataclasses
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec, SpecError, to_config
from konsumerator.controllers import continuing, outcomes
from konsumerator.controllers.continuing import Continuations
from konsumerator.controllers.ports import (
    Actuator,
    DeploymentsView,
    InstancePodsView,
    MetricsSource,
    PodsView,
    Reporter,
)
from konsumerator.controllers.rechecking import ConflictRecheck
from konsumerator.controllers.resizing import ResizeMemory
from konsumerator.domain import keys, planning, rendering
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.adaptive import learning
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.planning import Plan
from konsumerator.domain.pods import ObservedPod
from konsumerator.domain.specs import Autoscaling, ConsumerConfig, Owner, Predictor, UpdateMode
from konsumerator.domain.status import ConsumerStatus, of_pass, of_rejection
from konsumerator.domain.syncstate import STATE_BUDGET_BYTES, SyncStates, snapshot_from_state
from konsumerator.prom.queries import PodQuerySpec, PrometheusConfig, QuerySpec
from konsumerator.prom.results import RefreshPending
from konsumerator.prom.urls import ALLOW_ALL, AddressPolicy, redact
from konsumerator.runtime import errors
from konsumerator.runtime.errors import TerminalError
from konsumerator.runtime.expecting import Expectations
from konsumerator.runtime.results import Result

if TYPE_CHECKING:  # prometheus_client, which a replay (``simulating``) never needs
    from konsumerator.obs.consumers import ConsumerMetrics

OWNER_INDEX = "controller-uid"
# The Ready reason of a pass that raised what nobody classified (``Pipeline._internal_error``).
INTERNAL_ERROR: Final = "InternalError"
# The Warning Event of a status the API server refuses (``Pipeline._status_refused``).
STATUS_REFUSED: Final = "StatusRefused"
POD_INDEX = "deployment"


def owner_index(d: ObservedDeployment) -> list[str]:
    return [d.controller_uid] if d.controller_uid else []


def pod_index(p: ObservedPod) -> list[str]:
    """A pod's instance: ``namespace/deployment`` (none when it cannot be told)."""
    return [f"{p.namespace}/{p.deployment}"] if p.deployment else []


class NoPods:
    """The ``PodsView`` where pods are not watched: in-place resizing sees no pod."""

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedPod]:
        return ()


class WritesFailed(errors.Retryable):
    """Some writes of a pass failed; the controller retries with backoff.

    Expected, and already reported (status, Events, a log line per pass), so
    it is logged without a traceback.
    """

    # The failures a message names: a wave refused by admission fails up to
    # ``acting.SLICE`` writes a pass, and this message is logged on every retry.
    SHOWN: Final = 3

    @classmethod
    def of(cls, failures: Sequence[str], *, requeue_after: float | None = None) -> "WritesFailed":
        """The first ``SHOWN`` failures, and how many more there were; ``requeue_after``:
        when the pass's plan is due again anyway (metrics, a pending period), which the
        backoff of the failed writes must not put off: a quota refusing two instances
        grew it to 1,000 s, and the instances that run were resized that seldom."""
        if not failures:
            return cls("a write conflicted; retrying", requeue_after=requeue_after)
        more = len(failures) - cls.SHOWN
        shown = "; ".join(failures[: cls.SHOWN])
        return cls(f"{shown}; and {more} more" if more > 0 else shown, requeue_after=requeue_after)


@dataclass(frozen=True, slots=True)
class Pass:
    """What one reconcile did: the status to report and whether to retry soon."""

    status: ConsumerStatus
    # What the pass decided (the writes done are in ``outcome``).
    plan: Plan
    requeue_after_s: float | None
    retry: bool
    failures: tuple[str, ...]
    conflicted: bool = False
    # Writes the act step left for the next pass (``acting.SLICE``).
    deferred: bool = False


def _prometheus_config(spec: ConsumerSpec) -> PrometheusConfig | None:
    prom = spec.autoscaler.prometheus
    if prom is None:
        return None
    return PrometheusConfig(
        addresses=tuple(prom.address),
        production=QuerySpec(
            query=prom.production.query, partition_label=prom.production.partition_label
        ),
        consumption=QuerySpec(
            query=prom.consumption.query, partition_label=prom.consumption.partition_label
        ),
        offset=QuerySpec(query=prom.offset.query, partition_label=prom.offset.partition_label),
        cpu_usage=None
        if prom.cpu_usage is None
        else PodQuerySpec(query=prom.cpu_usage.query, pod_label=prom.cpu_usage.pod_label),
    )


def refusal(*, policy: AddressPolicy, source: manifests.Source, spec: ConsumerSpec) -> str | None:
    """Why this Consumer's Prometheus addresses may not be requested, if they may not.

    All or nothing: one disallowed address and none is asked, so a refused address is
    never silently skipped while the others seem to work.
    """
    prom = spec.autoscaler.prometheus
    if prom is None:
        return None
    refused = policy.refused(prom.address)
    if not refused:
        return None
    prefix = f"data.{keys.GUEST_SPEC_KEY}" if source.guest else "spec"
    named = ", ".join(
        f"{prefix}.autoscaler.prometheus.address[{i}] ({redact(prom.address[i])})" for i in refused
    )
    return (
        f"{named}: not allowed by the operator's --prometheus-allowed-hosts"
        f" ({', '.join(policy.text)}); no request was made"
    )


def _learned(
    *,
    config: ConsumerConfig,
    metrics: planning.Metrics,
    previous: ConsumerStatus,
    now: datetime,
    remembered: MetricsSnapshot | None,
    pods: Mapping[str, Sequence[ObservedPod]],
) -> learning.Learned | None:
    """The learned rate per core after this pass (``domain.adaptive.learning``).

    Its memory is the status: the previous learning, and the previous sync's
    consumption (``lastSyncState``) to tell flat from rising; without it (left out
    for its size, or never written) the last snapshot this process reported
    (``remembered``). Decoded only in a pass that refreshed metrics under the
    adaptive predictor with a CPU-usage query. ``pods`` (in place): the owner
    chain says which pod is whose.
    """
    a = config.autoscaling
    learns = a is not None and a.learns and a.predictor is Predictor.ADAPTIVE
    fresh = learns and metrics.refreshed and metrics.snapshot is not None
    assignment = (
        partitioning.assign(num_partitions=config.num_partitions, per_instance=config.per_instance)
        if fresh
        else ()
    )
    before = (snapshot_from_state(previous.last_sync_state) or remembered) if fresh else None
    return learning.for_pass(
        previous=previous.learning,
        autoscaling=a,
        snapshot=metrics.snapshot,
        refreshed=metrics.refreshed,
        before=before,
        instances=[
            (rendering.deployment_name(config=config, index=i), parts)
            for i, parts in enumerate(assignment)
        ],
        now=now,
        owned={p.name: name for name, group in pods.items() for p in group} if fresh else {},
        namespace=config.namespace,
    )


@dataclass(slots=True)
class _Converted:
    """A Consumer's config (``to_config``) and what it was converted from.

    Kept from pass to pass while the spec stays equal, so that every pass of a steady
    Consumer plans with the very same config object: the planner's caches
    (``planning.KeptMemory``, the template hash) hold only for the same object, and the
    operator decodes the object afresh from each watch event (our own status writes
    included), so its spec is a new, equal one nearly every pass. Compared by value, not
    by ``metadata.generation``: a changed CRD default shows in the spec the apiserver
    serves without a new generation, and a guest ConfigMap has none. ``to_config`` reads
    nothing else (no operator flag) but the pause annotation; a Consumer deleted and
    created again (a new UID) converts afresh.
    """

    uid: str
    spec: ConsumerSpec
    paused: bool
    config: ConsumerConfig
    # ``config`` in Recreate mode, once the server turned out to have no pods/resize.
    fallback: ConsumerConfig | None = None
    # ``_prometheus_config(spec)``, once asked (``prometheus``): five objects a pass, else.
    prom: PrometheusConfig | None = None
    prom_made: bool = False

    def converts(self, *, uid: str, spec: ConsumerSpec, paused: bool) -> bool:
        return (
            self.uid == uid and self.paused == paused and (self.spec is spec or self.spec == spec)
        )

    def prometheus(self) -> PrometheusConfig | None:
        """What to query (``_prometheus_config``), of this spec or any equal one."""
        if not self.prom_made:
            self.prom, self.prom_made = _prometheus_config(self.spec), True
        return self.prom

    def recreate(self) -> ConsumerConfig:
        if self.fallback is None:
            self.fallback = dataclasses.replace(self.config, update_mode=UpdateMode.RECREATE)
        return self.fallback


def _sooner(planned: float | None, other: float | None) -> float | None:
    """The sooner of two delays, either of which may be none."""
    if planned is None or other is None:
        return other if planned is None else planned
    return min(planned, other)


class Offload(Protocol):
    """Where the planner runs: ``on_loop``, or threads of their own (``app.py``).

    ``planning.plan`` is pure CPU, proportional to the Consumer's instances: some 10 s
    for 100,000 (the CRD's most), 30 s when each was just observed. On the event loop
    that long, nothing else runs: not the Lease renewal (lost after 10 s: the process
    exits, and the next one plans the same again), not the ``/healthz`` heartbeat (stale
    after 20 s), not another Consumer's pass. In a thread the loop still runs between the
    interpreter's switches (every 5 ms). ``instances`` (the most of the expected and the
    observed) lets the operator plan large Consumers apart from the others: behind one
    100,000-instance plan, every other Consumer's plan waited its 10-30 s.
    """

    def __call__(self, work: Callable[[], Plan], /, *, instances: int) -> Awaitable[Plan]: ...


async def on_loop(work: Callable[[], Plan], /, *, instances: int) -> Plan:
    """Plan on the event loop: for a driver with nothing else to run (the simulator)."""
    return work()


class Pipeline:
    """One reconcile pass over ports (``controllers.ports``): whoever drives it, it is this one.

    The operator wires the real ports (``app.py``); ``konsumerator simulate`` and the
    scorecard wire an in-memory cluster and a virtual clock (``simulating``).
    """

    def __init__(
        self,
        *,
        deployments: DeploymentsView,
        provider: MetricsSource,
        actuator: Actuator,
        reporter: Reporter,
        now: Callable[[], datetime],
        pods: PodsView | None = None,
        metrics: "ConsumerMetrics | None" = None,
        clock: Callable[[], float] = time.perf_counter,
        addresses: AddressPolicy = ALLOW_ALL,
        offload: Offload = on_loop,
        expectations: Expectations | None = None,
    ) -> None:
        """``expectations``: the creations awaited from the watch (``_unawaited``), by
        owner UID; a test hands in one on a virtual clock."""
        self._expectations = expectations if expectations is not None else Expectations()
        self._addresses = addresses
        self._offload = offload
        self._gauges = metrics
        self._clock = clock
        self._actuator = actuator
        self._reporter = reporter
        self._provider = provider
        self._deployments = deployments
        self._pods: PodsView = pods if pods is not None else NoPods()
        # Where the view answers for all instances at once (``InstancePodsView``).
        self._all_pods = (
            self._pods.instance_pods if isinstance(self._pods, InstancePodsView) else None
        )
        self._resizes = ResizeMemory()
        # The pass after a cut refreshing pass plans as refreshing (``continuing``).
        self._continuations = Continuations()
        self._now = now
        self._seeded: set[str] = set()
        self._states = SyncStates()
        # The UID each key's memory above is of: a Consumer deleted and created again
        # under its name, both events handled in one pass, is a new object.
        self._uids: dict[str, str] = {}
        # The config each Consumer's passes plan with, while its spec stays equal
        # (``_Converted``): the planner's caches hold while it is the same object.
        self._configs: dict[str, _Converted] = {}
        # The last manifest each Consumer was read from, and what it read (``_read``).
        self._reads: dict[str, tuple[Mapping[str, Any], manifests.Source, ConsumerSpec]] = {}
        self._conflicts = ConflictRecheck()
        # What the planner remembers of each Consumer's instances: a cache of decisions,
        # and the adaptive policy's memory since its last write (``adaptive.memory.Recent``),
        # by Deployment UID, dropped with the Consumer (``forget``).
        self._kept: dict[str, planning.KeptMemory] = {}
        # The config sized with a learned rate (``_learned_config``), with the converted
        # config it was made from.
        self._learned_configs: dict[str, tuple[ConsumerConfig, ConsumerConfig]] = {}

    def _learned_config(
        self, *, key: str, converted: ConsumerConfig, sizing: Autoscaling
    ) -> ConsumerConfig:
        """``converted`` sizing with ``sizing`` (a learned rate): the same object while
        neither changes. The planner's caches of a steady Consumer hold by the config's
        identity (the adaptive keep's certificate, the decisions kept, the proposals of a
        size): a new object every pass, equal as it was, kept every one of them cold
        (no instance of a learning Consumer was ever kept by its certificate)."""
        last = self._learned_configs.get(key)
        if last is not None and last[0] is converted and last[1].autoscaling == sizing:
            return last[1]
        config = dataclasses.replace(converted, autoscaling=sizing)
        self._learned_configs[key] = (converted, config)
        return config

    def _unawaited(self, *, plan: Plan, owner_uid: str) -> tuple[Plan, float | None]:
        """``plan`` without the creations the last passes made and the watch cache has
        not shown yet (``runtime.expecting``), and the delay after which the next pass
        must look again (``None``: none was left out).

        Why: a pass that runs before the watch has delivered the previous pass's
        creations plans those names as missing again; each would be sent, refused as
        AlreadyExists, read and applied (``acting._create``): three requests for
        nothing. Left out, it costs none: the watch's addition wakes the Consumer, and
        if none comes (deleted right after our creation), the pass at the deadline
        creates it again. A left-out creation is not deferred (``Outcome.deferred``
        asks for a pass at once, which would spin until the watch delivers)."""
        awaited = self._expectations.awaited(
            owner=owner_uid,
            missing=(a.name for a in plan.applies if a.action is planning.Action.CREATE),
        )
        if not awaited:
            return plan, None
        applies = tuple(
            a
            for a in plan.applies
            if a.action is not planning.Action.CREATE or a.name not in awaited
        )
        return dataclasses.replace(plan, applies=applies), self._expectations.due_in(
            owner=owner_uid
        )

    def forget(self, key: str) -> None:
        self._provider.forget(key=key)
        self._seeded.discard(key)
        self._states.forget(key=key)
        uid = self._uids.pop(key, None)
        if uid is not None:
            self._expectations.forget(owner=uid)
        self._configs.pop(key, None)
        self._reads.pop(key, None)
        self._conflicts.forget(key)
        self._resizes.forget(key)
        self._continuations.forget(key)
        self._kept.pop(key, None)
        self._learned_configs.pop(key, None)
        if self._gauges is not None:
            self._gauges.forget(consumer=key)

    async def _metrics(
        self,
        *,
        key: str,
        prom: PrometheusConfig | None,
        config: ConsumerConfig,
        previous: ConsumerStatus,
        now: datetime,
    ) -> planning.Metrics:
        if config.autoscaling is None or prom is None:
            return planning.Metrics()
        if key not in self._seeded:
            # After a restart or failover, start from the snapshot the status
            # holds, so a fleet of Consumers does not query Prometheus at once.
            self._seeded.add(key)
            snapshot = snapshot_from_state(previous.last_sync_state)
            synced = rendering.parse_time(previous.last_sync_time)
            if snapshot is not None and synced is not None:
                self._provider.seed(key=key, snapshot=snapshot, synced_at=synced)
        result = await self._provider.get(
            key=key,
            config=prom,
            num_partitions=config.num_partitions,
            min_sync_period_seconds=config.autoscaling.min_sync_period_s,
            now=now,
        )
        return planning.Metrics(
            snapshot=result.snapshot,
            refreshed=result.refreshed,
            synced_at=result.synced_at,
            error=result.error,
            error_reason=result.error_reason,
            problems=result.problems,
        )

    def _config(self, *, key: str, uid: str, spec: ConsumerSpec, paused: bool) -> ConsumerConfig:
        last = self._configs.get(key)
        if last is None or not last.converts(uid=uid, spec=spec, paused=paused):
            last = self._configs[key] = _Converted(
                uid=uid, spec=spec, paused=paused, config=to_config(spec, paused=paused)
            )
        config = last.config
        if config.in_place and self._resizes.unsupported(key):
            # The server has no pods/resize: Recreate, for the life of the process.
            return last.recreate()
        return config

    def _instance_pods(
        self, *, config: ConsumerConfig, deployments: Sequence[ObservedDeployment]
    ) -> Mapping[str, Sequence[ObservedPod]]:
        """The pods of every instance, by Deployment name (in-place mode only)."""
        if not config.in_place:
            return {}
        if self._all_pods is not None:
            return self._all_pods(deployments=deployments)
        return {
            d.name: self._pods.by_index(index=POD_INDEX, value=f"{d.namespace}/{d.name}")
            for d in deployments
        }

    def _in_place_status(
        self, *, key: str, config: ConsumerConfig, plan: Plan
    ) -> dict[str, int] | None:
        if not config.in_place:
            return None
        return {
            "resized": plan.in_place.resized,
            "pending": plan.in_place.pending,
            "fellBack": self._resizes.fell_back(key),
        }

    async def _allowed_metrics(
        self,
        *,
        key: str,
        source: manifests.Source,
        spec: ConsumerSpec,
        prom: PrometheusConfig | None,
        config: ConsumerConfig,
        previous: ConsumerStatus,
        now: datetime,
    ) -> tuple[str | None, planning.Metrics]:
        """Why the Prometheus addresses are refused (if they are), and the metrics.

        A refused Consumer gets no metrics at all: none of its addresses is asked.
        """
        refused = (
            refusal(policy=self._addresses, source=source, spec=spec)
            if config.autoscaling is not None
            else None
        )
        if refused:
            return refused, planning.Metrics()
        metrics = await self._metrics(key=key, prom=prom, config=config, previous=previous, now=now)
        return refused, metrics

    def _count_writes(
        self,
        *,
        key: str,
        outcome: outcomes.Outcome,
        resize_outcomes: Mapping[str, int],
        actuated: Sequence[float],
    ) -> None:
        """Feed the act step's results to the operator's own metrics (when kept)."""
        if self._gauges is None:
            return
        self._gauges.deployments_written(
            consumer=key,
            done=Counter(outcomes.write_kind(item) for item in outcome.done),
            failed=outcome.refused,
        )
        self._gauges.resized(consumer=key, outcomes=resize_outcomes)
        for seconds in actuated:
            self._gauges.actuated(consumer=key, seconds=seconds)

    async def run(
        self,
        *,
        key: str,
        source: manifests.Source,
        spec: ConsumerSpec,
        previous: ConsumerStatus,
        state_budget_bytes: int = STATE_BUDGET_BYTES,
    ) -> Pass:
        now = self._now()
        if self._uids.setdefault(key, source.uid) != source.uid:
            # Re-created under the same name: the old object's last sync is not its own
            # previous sync (the learned rate would compare with another topic's).
            # Nor are its instances' last decisions this one's.
            self._states.forget(key=key)
            self._kept.pop(key, None)
            self._continuations.forget(key)
            self._learned_configs.pop(key, None)
            self._expectations.forget(owner=self._uids[key])
            self._uids[key] = source.uid
        config = self._config(
            key=key,
            uid=source.uid,
            spec=spec,
            paused=keys.DISABLE_AUTOSCALER in source.annotations,
        )
        owner = Owner(
            api_version=source.api_version, kind=source.kind, name=source.name, uid=source.uid
        )
        refused, metrics = await self._allowed_metrics(
            key=key,
            source=source,
            spec=spec,
            # What to query, kept with the config while the spec stays equal.
            prom=self._configs[key].prometheus(),
            config=config,
            previous=previous,
            now=now,
        )
        # Only those of its own namespace: ownerReferences cannot cross namespaces, but
        # anyone may write one naming this UID on a Deployment of theirs elsewhere.
        deployments = [
            d
            for d in self._deployments.by_index(index=OWNER_INDEX, value=source.uid)
            if d.namespace == config.namespace
        ]
        pods = self._instance_pods(config=config, deployments=deployments)
        # The config as converted from the spec (before a learned rate goes in): one
        # object while the spec stays equal, which a continued pass needs (``continuing``).
        converted = config
        learned = _learned(
            config=config,
            metrics=metrics,
            previous=previous,
            now=now,
            remembered=self._states.snapshot(key=key),
            pods=pods,
        )
        if config.autoscaling is not None:
            sizing = learning.sizing_with(config.autoscaling, learned)
            if sizing is not config.autoscaling:  # only when a learned rate is used
                config = self._learned_config(key=key, converted=config, sizing=sizing)
        planned = self._continuations.planned(key=key, metrics=metrics, config=converted)
        plan = await self._offload(
            functools.partial(
                planning.plan,
                config=config,
                owner=owner,
                deployments=deployments,
                metrics=planned,
                now=now,
                pods=pods,
                refused=self._resizes.refused(
                    key, pods=(p for group in pods.values() for p in group)
                ),
                memory=self._kept.setdefault(key, planning.KeptMemory()),
            ),
            instances=max(
                len(deployments), -(-config.num_partitions // max(config.per_instance, 1))
            ),
        )
        if self._gauges is not None:
            self._gauges.observe(consumer=key, plan=plan, config=config, snapshot=metrics.snapshot)
        actuated = self._resizes.actuated(
            key, pods=(p for group in pods.values() for p in group), now=now
        )
        acted, awaited_s = self._unawaited(plan=plan, owner_uid=source.uid)
        creations = {a.name for a in acted.applies if a.action is planning.Action.CREATE}
        self._expectations.expect(owner=source.uid, names=creations)
        try:
            outcome = await self._actuator.act(
                plan=acted, namespace=config.namespace, owner_uid=source.uid
            )
        except BaseException:
            # Which creations were made is unknown (a lost lease cancels the pass
            # midway): the next pass must not wait a minute for any of them, and one
            # made after all costs it an AlreadyExists answer.
            self._expectations.settle(owner=source.uid, names=creations, made={})
            raise
        self._expectations.settle(owner=source.uid, names=creations, made=outcome.created)
        resize_outcomes = self._resizes.acted(key, plan=plan, outcome=outcome, now=now)
        self._continuations.acted(
            key=key,
            planned=planned,
            config=converted,
            deferred=outcome.deferred > 0,
            restarts=continuing.spent(plan=plan, written=outcome.done),
        )
        self._count_writes(
            key=key, outcome=outcome, resize_outcomes=resize_outcomes, actuated=actuated
        )
        reported = of_pass(
            plan=plan,
            metrics=metrics,
            autoscaling=config.autoscaling is not None,
            num_partitions=config.num_partitions,
            failures=outcome.failures,
            conflicts=[*plan.conflicts, *outcome.conflicts],
            previous=previous,
            generation=source.generation,
            now=now,
            state_budget_bytes=state_budget_bytes,
            refusal=refused,
            states=(self._states, key),
            in_place=self._in_place_status(key=key, config=config, plan=plan),
            learning=learned,
        )
        await self._reporter.passed(
            key=key, source=source, plan=plan, outcome=outcome, metrics=metrics, refusal=refused
        )
        return Pass(
            status=reported,
            plan=plan,
            requeue_after_s=_sooner(plan.requeue_after_s, awaited_s),
            retry=outcome.retry or bool(outcome.failures),
            failures=tuple(outcome.failures),
            conflicted=bool(plan.conflicts or outcome.conflicts),
            deferred=outcome.deferred > 0,
        )

    async def reconcile(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        previous: ConsumerStatus,
        generation: int,
        undecodable: str | None = None,
        state_budget_bytes: int = STATE_BUDGET_BYTES,
    ) -> Result:
        """The whole reconcile of one Consumer or guest ConfigMap, given as a manifest.

        ``previous`` is the status the object holds (``Reporter`` of the mode).
        ``state_budget_bytes`` bounds ``lastSyncState`` (see ``domain.status``): where
        the status goes decides how much room it has.

        An unusable spec gets ``Ready=False, reason=InvalidSpec`` and a Warning
        Event, nothing is created from it, and it is not retried until it
        changes (``TerminalError``). An object the watch could not decode
        (``undecodable``, the reason; the manifest then has metadata only) is
        reported the same way with ``reason=UndecodableObject``, and its
        Deployments are left as they are. Failed writes are retried with
        backoff after the status has said what failed. The reporter writes only a
        status that changed.
        """
        started = self._clock()
        try:
            result = await self._reconcile(
                key=key,
                manifest=manifest,
                previous=previous,
                generation=generation,
                undecodable=undecodable,
                state_budget_bytes=state_budget_bytes,
            )
        except Exception:
            self._reconciled(key=key, started=started, failed=True)
            raise
        self._reconciled(key=key, started=started, failed=False)
        return result

    def _reconciled(self, *, key: str, started: float, failed: bool) -> None:
        if self._gauges is not None:
            self._gauges.reconciled(consumer=key, seconds=self._clock() - started, failed=failed)

    async def _write_status(self, *, key: str, status: ConsumerStatus) -> None:
        started = self._clock()
        if await self._reporter.status(key=key, status=status) and self._gauges is not None:
            self._gauges.status_written(consumer=key, seconds=self._clock() - started)

    async def _reconcile(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        previous: ConsumerStatus,
        generation: int,
        undecodable: str | None,
        state_budget_bytes: int,
    ) -> Result:
        reject = functools.partial(
            self._reject,
            key=key,
            manifest=manifest,
            previous=previous,
            generation=generation,
        )
        if undecodable is not None:
            await reject(
                reason="UndecodableObject",
                message=f"{undecodable}; the object is not read and its Deployments are left"
                " as they are until it changes",
            )
        try:
            source, spec = await self._read(key=key, manifest=manifest)
        except SpecError as e:
            await reject(reason="InvalidSpec", message=str(e))
        except Exception as e:
            await self._internal_error(
                key=key, manifest=manifest, error=e, previous=previous, generation=generation
            )
            raise
        try:
            done = await self.run(
                key=key,
                source=source,
                spec=spec,
                previous=previous,
                state_budget_bytes=state_budget_bytes,
            )
        except RefreshPending:
            # Its Prometheus is slow to answer: the pass gives its worker up, having
            # changed nothing, and runs again when the refresh ends (the provider wakes it).
            return Result()
        except (errors.ApiError, errors.Retryable, TimeoutError):
            raise
        except Exception as e:
            await self._internal_error(
                key=key, manifest=manifest, error=e, previous=previous, generation=generation
            )
            raise
        try:
            await self._write_status(key=key, status=done.status)
        except errors.Invalid as e:
            await self._status_refused(manifest=manifest, error=e)
            raise
        if done.retry:
            raise WritesFailed.of(done.failures, requeue_after=done.requeue_after_s)
        if done.deferred:
            # The rest of the plan's writes: the next pass, once the keys waiting for a
            # worker have had theirs (the queue serves the least recently served first).
            return Result(requeue=True)
        return Result(
            requeue_after=self._conflicts.requeue_after(
                key=key, conflicted=done.conflicted, planned=done.requeue_after_s
            )
        )

    async def _status_refused(self, *, manifest: Mapping[str, Any], error: errors.Invalid) -> None:
        """Say in a Warning Event that the API server refused the pass's status (422): a
        guest ConfigMap whose other annotations leave no room for ours, an admission
        policy on the status. The status cannot say it, and the log alone tells only
        the operator's owner. The error then goes on to the controller, which retries
        with backoff (the Event's repeats are aggregated); the Deployments were written.
        Best effort, as ``_internal_error``: it must not hide the refusal."""
        message = f"the API server refused the status: {error.message}"
        try:
            await self._reporter.rejected(
                manifest=manifest, reason=STATUS_REFUSED, message=message[:1024]
            )
        except Exception as reporting:
            error.add_note(f"reporting it failed too: {reporting!r}")

    async def _internal_error(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        error: Exception,
        previous: ConsumerStatus,
        generation: int,
    ) -> None:
        """Say on the object that its pass raised what nobody classified (a bug, or an
        input nobody foresaw): ``Ready=False, reason=InternalError`` naming the
        exception's type (its traceback is in the operator's log, under the pass's
        ``reconcileID``) and a Warning Event. The exception then goes on to the
        controller, which logs it and retries with backoff; the other Consumers are
        not affected. What nothing wrote otherwise would look healthy: the last
        status, ``Ready=True``, while nothing is reconciled.

        Reporting is best effort: it fails on what failed the pass (an apiserver
        down), and that must not hide the pass's own exception.
        """
        message = (
            f"the pass failed with {type(error).__name__}, an error the operator does not"
            " expect; it is retried with backoff, and the operator's log has the traceback"
        )
        try:
            await self._report_rejection(
                key=key,
                manifest=manifest,
                reason=INTERNAL_ERROR,
                message=message,
                previous=previous,
                generation=generation,
            )
        except Exception as reporting:
            error.add_note(f"reporting it failed too: {reporting!r}")

    async def _read(
        self, *, key: str, manifest: Mapping[str, Any]
    ) -> tuple[manifests.Source, ConsumerSpec]:
        """The object's identity and validated spec (``manifests.read``); the last ones
        again while the manifest is equal to the one they were read from.

        The operator builds the manifest afresh from each watch event, our own status
        writes included, so a steady Consumer's passes nearly all read an equal one.
        Reused, the spec is the same object and so is its config (``_Converted``); a
        spec that did not validate is read (and rejected) again.
        """
        last = self._reads.get(key)
        if last is not None and last[0] == manifest:
            return last[1], last[2]
        # Validation runs in a worker thread: a guest spec's YAML is bounded
        # (``api.limited_yaml``) but its worst case still costs up to ~0.3 s of CPU,
        # which must not stall the event loop (and with it the Lease renewal).
        # Imported here: ``konsumerator simulate`` runs passes without an event loop and
        # would pay for ``asyncio`` at start-up (some 50 ms) for nothing.
        import asyncio

        source, spec = await asyncio.to_thread(manifests.read, manifest)
        self._reads[key] = (manifest, source, spec)
        return source, spec

    async def _reject(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        reason: str,
        message: str,
        previous: ConsumerStatus,
        generation: int,
    ) -> NoReturn:
        """Report an object that cannot be used (status and a Warning Event), then stop
        retrying it until it changes."""
        if self._gauges is not None:
            self._gauges.rejected(reason=reason)
        await self._report_rejection(
            key=key,
            manifest=manifest,
            reason=reason,
            message=message,
            previous=previous,
            generation=generation,
        )
        raise TerminalError(message)

    async def _report_rejection(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        reason: str,
        message: str,
        previous: ConsumerStatus,
        generation: int,
    ) -> None:
        """Ready=False with ``reason`` and ``message`` in status, and a Warning Event."""
        await self._write_status(
            key=key,
            status=of_rejection(
                message=message,
                previous=previous,
                generation=generation,
                now=self._now(),
                reason=reason,
            ),
        )
        await self._reporter.rejected(manifest=manifest, reason=reason, message=message)
