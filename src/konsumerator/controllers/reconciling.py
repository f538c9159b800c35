"""One reconcile of one Consumer: gather, decide, act, report.

Both controllers (CRD mode and guest mode) read their object, validate it
into a ``ConsumerSpec`` and hand it here; they differ only in where the spec
comes from and where the status goes.

1. **Gather**, with no API call: the owned Deployments from the watch cache's
   owner index, and a metrics snapshot from the Prometheus provider, which
   queries only when ``minSyncPeriod`` has passed (three queries per
   Consumer per sync, whatever the partition count).
2. **Decide**: ``domain.planning.plan``, a pure function.
3. **Act**: ``acting.act`` performs exactly the plan's writes.
4. **Report**: the status (written by the caller only if it changed) and
   Events: Normal for what was done, Warning for what went wrong.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from konsumerator.api import keys, manifests
from konsumerator.api.v1 import ConsumerSpec, SpecError, to_config
from konsumerator.controllers import acting, reporting
from konsumerator.domain import planning, rendering
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.planning import Action, Apply, Plan
from konsumerator.domain.specs import ConsumerConfig, Owner
from konsumerator.kube.eventing import EventRecorder, InvolvedObject
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.writing import Writer
from konsumerator.obs.consumers import ConsumerMetrics
from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.errors import TerminalError
from konsumerator.runtime.stores import Store

log = structlog.stdlib.get_logger(__name__)

OWNER_INDEX = "controller-uid"


def owner_index(d: ObservedDeployment) -> list[str]:
    return [d.controller_uid] if d.controller_uid else []


class WritesFailed(Exception):
    """Some writes of a pass failed; the controller retries with backoff."""


@dataclass(frozen=True, slots=True)
class Pass:
    """What one reconcile did: the status to report and whether to retry soon."""

    status: dict[str, Any]
    requeue_after_s: float | None
    retry: bool
    failures: tuple[str, ...]


_REASONS = {
    Action.CREATE: "Created",
    Action.ROLLOUT: "RolledOut",
    Action.SCALE: "Scaled",
    Action.ANNOTATE: "ScalingStatus",
    Action.REPAIR: "Repaired",
}


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
    )


def _involved(source: manifests.Source) -> InvolvedObject:
    return InvolvedObject(
        api_version=source.api_version,
        kind=source.kind,
        namespace=source.namespace,
        name=source.name,
        uid=source.uid,
    )


class Pipeline:
    def __init__(
        self,
        *,
        client: ApiClient,
        writer: Writer,
        events: EventRecorder,
        provider: MetricsProvider,
        deployments: Store[ObservedDeployment],
        now: Callable[[], datetime],
        metrics: ConsumerMetrics | None = None,
        write_concurrency: int = 16,
    ) -> None:
        self._gauges = metrics
        self._client = client
        self._writer = writer
        self._events = events
        self._provider = provider
        self._deployments = deployments
        self._now = now
        self._concurrency = write_concurrency
        self._seeded: set[str] = set()

    def forget(self, key: str) -> None:
        self._provider.forget(key=key)
        self._seeded.discard(key)
        if self._gauges is not None:
            self._gauges.forget(consumer=key)

    async def _metrics(
        self,
        *,
        key: str,
        spec: ConsumerSpec,
        config: ConsumerConfig,
        previous: Mapping[str, Any],
        now: datetime,
    ) -> planning.Metrics:
        prom = _prometheus_config(spec)
        if config.autoscaling is None or prom is None:
            return planning.Metrics()
        if key not in self._seeded:
            # After a restart or failover, start from the snapshot the status
            # holds, so a fleet of Consumers does not query Prometheus at once.
            self._seeded.add(key)
            snapshot = reporting.snapshot_from_state(previous.get("lastSyncState"))
            synced = rendering.parse_time(previous.get("lastSyncTime"))
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
        )

    async def run(
        self, *, key: str, source: manifests.Source, spec: ConsumerSpec, previous: Mapping[str, Any]
    ) -> Pass:
        now = self._now()
        config = to_config(spec, paused=keys.DISABLE_AUTOSCALER in source.annotations)
        owner = Owner(
            api_version=source.api_version, kind=source.kind, name=source.name, uid=source.uid
        )
        metrics = await self._metrics(key=key, spec=spec, config=config, previous=previous, now=now)
        deployments = self._deployments.by_index(index=OWNER_INDEX, value=source.uid)
        plan = planning.plan(
            config=config, owner=owner, deployments=deployments, metrics=metrics, now=now
        )
        if self._gauges is not None:
            self._gauges.observe(consumer=key, plan=plan, config=config, snapshot=metrics.snapshot)
        outcome = await acting.act(
            client=self._client,
            writer=self._writer,
            plan=plan,
            namespace=config.namespace,
            owner_uid=source.uid,
            concurrency=self._concurrency,
        )
        status = reporting.status(
            plan=plan,
            metrics=metrics,
            autoscaling=config.autoscaling is not None,
            num_partitions=config.num_partitions,
            failures=outcome.failures,
            conflicts=[*plan.conflicts, *outcome.conflicts],
            previous=previous,
            generation=source.generation,
            now=now,
        )
        await self._report(source=source, plan=plan, outcome=outcome, metrics=metrics)
        log.info(
            "reconciled",
            consumer=key,
            applies=len(plan.applies),
            deletes=len(plan.deletes),
            failures=len(outcome.failures),
            refreshed=metrics.refreshed,
            **reporting.counters(plan.counters),
        )
        return Pass(
            status=status,
            requeue_after_s=plan.requeue_after_s,
            retry=outcome.retry or bool(outcome.failures),
            failures=tuple(outcome.failures),
        )

    async def _report(
        self,
        *,
        source: manifests.Source,
        plan: Plan,
        outcome: acting.Outcome,
        metrics: planning.Metrics,
    ) -> None:
        obj = _involved(source)
        for item in outcome.done:
            if isinstance(item, Apply):
                status = item.body["metadata"]["annotations"][keys.SCALING_STATUS]
                saturated = item.action is Action.ANNOTATE and status == "SATURATED"
                # A repair undoes somebody's edit of a Deployment we manage: say so loudly.
                warning = saturated or item.action is Action.REPAIR
                await self._events.record(
                    obj=obj,
                    type="Warning" if warning else "Normal",
                    reason="Saturated" if saturated else _REASONS[item.action],
                    message=item.message,
                )
            else:
                await self._events.record(
                    obj=obj,
                    type="Normal",
                    reason="Deleted",
                    message=f"deleted {item.name}: {item.reason}",
                )
        for name in [*plan.conflicts, *outcome.conflicts]:
            await self._events.record(
                obj=obj,
                type="Warning",
                reason="NameConflict",
                message=f"Deployment {name} exists and is not owned by this {source.kind}; "
                "it is left alone and the instance is not run",
            )
        for failure in outcome.failures:
            await self._events.record(
                obj=obj, type="Warning", reason="WriteFailed", message=failure
            )
        if metrics.error is not None:
            await self._events.record(
                obj=obj, type="Warning", reason="PrometheusUnreachable", message=metrics.error
            )

    async def reconcile(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        previous: Mapping[str, Any],
        generation: int,
        write_status: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> Result:
        """The whole reconcile of one Consumer or guest ConfigMap, given as a manifest.

        An unusable spec gets ``Ready=False, reason=InvalidSpec`` and a Warning
        Event, nothing is created from it, and it is not retried until it
        changes (``TerminalError``). Failed writes are retried with backoff
        after the status has said what failed.
        """
        try:
            source, spec = manifests.read(manifest)
        except SpecError as e:
            message = str(e)
            await write_status(
                reporting.invalid(
                    message=message, previous=previous, generation=generation, now=self._now()
                )
            )
            await self._events.record(
                obj=_involved(manifests.identify(manifest)),
                type="Warning",
                reason="InvalidSpec",
                message=message,
            )
            raise TerminalError(message) from None
        done = await self.run(key=key, source=source, spec=spec, previous=previous)
        await write_status(done.status)
        if done.retry:
            raise WritesFailed("; ".join(done.failures) or "a write conflicted; retrying")
        return Result(requeue_after=done.requeue_after_s)
