"""The Events half of the operator's ``ports.Reporter``: Events and one log line per pass.

Normal Events for what was done, Warning Events for what went wrong (a
name conflict, a failed write, a refused Prometheus address, failed
metrics) and for a repair, which undoes somebody's edit. The reporter of each
mode (``reporting``) adds the status write.
"""

import asyncio
import math
import time
from collections.abc import Mapping
from typing import Any

import structlog

from konsumerator.api import manifests
from konsumerator.controllers.outcomes import Outcome
from konsumerator.domain.planning import Action, Apply, Delete, Metrics, Plan
from konsumerator.domain.scaling import ScalingStatus
from konsumerator.domain.status import counter_fields, metrics_reason
from konsumerator.kube.eventing import EventRecorder, EventSpec, InvolvedObject
from konsumerator.runtime.clocks import Clock

log = structlog.stdlib.get_logger("konsumerator.controllers.reconciling")

_REASONS = {
    Action.CREATE: "Created",
    Action.ROLLOUT: "RolledOut",
    Action.SCALE: "Scaled",
    Action.RESIZE_IN_PLACE: "ResizedInPlace",
    Action.ANNOTATE: "ScalingStatus",
    Action.REPAIR: "Repaired",
}


def involved(source: manifests.Source) -> InvolvedObject:
    return InvolvedObject(
        api_version=source.api_version,
        kind=source.kind,
        namespace=source.namespace,
        name=source.name,
        uid=source.uid,
    )


def _written_event(item: Apply | Delete) -> EventSpec:
    if isinstance(item, Delete):
        return EventSpec(
            type="Normal", reason="Deleted", message=f"deleted {item.name}: {item.reason}"
        )
    saturated = item.action is Action.ANNOTATE and item.scaling.status is ScalingStatus.SATURATED
    # The adaptive predictor found that more CPU does not help.
    memory = item.scaling.memory
    ineffective = item.action is Action.ANNOTATE and memory is not None and memory.ineffective
    # A repair undoes somebody's edit of a Deployment we manage, and a fallback restarts
    # pods in-place resizing meant to keep: say so loudly.
    warning = saturated or ineffective or item.action is Action.REPAIR or item.fell_back is not None
    reason = (
        "Saturated"
        if saturated
        else "InPlaceResizeFellBack"
        if item.fell_back is not None
        else "IneffectiveScaling"
        if ineffective
        else _REASONS[item.action]
    )
    return EventSpec(type="Warning" if warning else "Normal", reason=reason, message=item.message)


def _problems(
    *,
    source: manifests.Source,
    plan: Plan,
    outcome: Outcome,
    metrics: Metrics,
    refusal: str | None,
) -> list[EventSpec]:
    """The Warning Events of what went wrong in a pass."""
    found = [
        EventSpec(
            type="Warning",
            reason="NameConflict",
            message=f"Deployment {name} exists and is not owned by this {source.kind}; "
            "it is left alone and the instance is not run",
        )
        for name in [*plan.conflicts, *outcome.conflicts]
    ]
    found.extend(
        EventSpec(
            type="Warning",
            reason="InPlaceResizeRefused",
            message=f"in-place resize of {name} refused ({why}); it is rolled out instead",
        )
        for name, why in sorted(outcome.resize_refused.items())
    )
    found.extend(
        EventSpec(type="Warning", reason="WriteFailed", message=failure)
        for failure in outcome.failures
    )
    if refusal is not None:
        found.append(EventSpec(type="Warning", reason="AddressNotAllowed", message=refusal))
    if metrics.error is not None:
        found.append(
            EventSpec(type="Warning", reason=metrics_reason(metrics), message=metrics.error)
        )
    return found


# The most a pass waits for its Events. They are sent in the pass (before its status),
# and an Event request that hangs (an admission webhook on Events that times out, an
# overloaded apiserver) held the pass, its worker and its status for the client's 30 s
# per request; an Event is a courtesy: past this, the rest of the batch is dropped.
# Far above what a healthy apiserver takes for a batch (about ten requests), and below
# the 30 s one hanging request took.
EVENTS_BUDGET_S = 10.0
# After a batch ran out of its budget, every pass drops its Events at once for this
# long. What held one batch (a webhook on Events timing out) holds the next: without
# the pause every pass of every Consumer waited the whole budget, and with a handful of
# workers a wave of 500 Consumers took 500 x 10 s / workers instead of seconds. One
# warning per pause, not one per pass; the batch after the pause tries again.
EVENTS_PAUSE_S = 60.0


class EventReporter:
    def __init__(self, *, events: EventRecorder, clock: Clock = time.monotonic) -> None:
        self._events = events
        self._clock = clock
        # Events are dropped unsent until then (``EVENTS_PAUSE_S``).
        self._paused_until = -math.inf

    async def _record(self, *, obj: InvolvedObject, events: list[EventSpec]) -> None:
        """Record ``events`` in one batch, for at most ``EVENTS_BUDGET_S``."""
        if not events:
            return
        if self._clock() < self._paused_until:
            log.debug("events dropped: paused", object=obj.name, events=len(events))
            return
        budget = EVENTS_BUDGET_S
        try:
            async with asyncio.timeout(budget):
                await self._events.record_all(obj=obj, events=events)
        except TimeoutError:
            self._paused_until = self._clock() + EVENTS_PAUSE_S
            log.warning(
                "events not recorded in time; dropped",
                object=obj.name,
                budget_s=budget,
                events=len(events),
                # Every pass's Events are dropped unsent for this long.
                paused_s=EVENTS_PAUSE_S,
            )

    async def passed(
        self,
        *,
        key: str,
        source: manifests.Source,
        plan: Plan,
        outcome: Outcome,
        metrics: Metrics,
        refusal: str | None,
    ) -> None:
        # One batch: a pass that creates 1,000 Deployments updates the combined Event
        # once, and so does one whose 500 writes an admission policy refused (one
        # ``record`` per failure sent an Event request per failure, every retry).
        await self._record(
            obj=involved(source),
            events=[
                *(_written_event(item) for item in outcome.done),
                *_problems(
                    source=source, plan=plan, outcome=outcome, metrics=metrics, refusal=refusal
                ),
            ],
        )
        log.info(
            "reconciled",
            consumer=key,
            applies=len(plan.applies),
            deletes=len(plan.deletes),
            failures=len(outcome.failures),
            # Writes left to the next pass (a slice of a wave: ``acting.SLICE``).
            deferred=outcome.deferred,
            refreshed=metrics.refreshed,
            **counter_fields(plan.counters),
        )

    async def rejected(self, *, manifest: Mapping[str, Any], reason: str, message: str) -> None:
        await self._record(
            obj=involved(manifests.identify(manifest)),
            events=[EventSpec(type="Warning", reason=reason, message=message)],
        )
