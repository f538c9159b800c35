"""The "report" step: what a pass tells the user, as status and conditions.

Status carries the Go operator's counters (EXPECTED ... REDUNDANT), the
metrics cache (``lastSyncTime``/``lastSyncState``, so a restarted operator
does not hammer Prometheus), ``observedGeneration`` in its Kubernetes meaning
(the spec generation this status describes) and three conditions:

* ``Ready``: every instance exists, is current and nothing failed; otherwise
  why not (``InvalidSpec``, ``UndecodableObject``, ``NameConflict``,
  ``WriteFailed``, ``Progressing``).
* ``MetricsAvailable``: the last Prometheus refresh worked (``Synced``), or
  why not: ``PrometheusUnreachable`` (no answer, or the query was rejected),
  ``NoData``, ``UnsupportedResultType`` or ``ValueOutOfRange`` (an answer
  that cannot be sized from; the message names the query), or
  ``AutoscalingDisabled``.
* ``Saturated``: some instances are lagging and held back by their limits.

A condition's ``lastTransitionTime`` moves only when its status flips, and the
status is written only when something in it changed: a pass with nothing to
report makes no write.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from konsumerator.domain import rendering
from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.planning import Counters, Metrics, Plan

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def condition(*, type: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": type, "status": status, "reason": reason, "message": message}


def merge_conditions(
    *,
    previous: Sequence[Mapping[str, Any]],
    current: Sequence[Mapping[str, str]],
    now: datetime,
    generation: int,
) -> list[dict[str, Any]]:
    """Current conditions, keeping ``lastTransitionTime`` where status did not flip."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for c in current:
        old = before.get(c["type"])
        since = (
            old["lastTransitionTime"]
            if old is not None
            and old.get("status") == c["status"]
            and old.get("lastTransitionTime")
            else rendering.format_time(now)
        )
        merged.append({**c, "lastTransitionTime": since, "observedGeneration": generation})
    return merged


_INT64_MAX = 2**63 - 1


def _int64(value: float | None) -> int:
    # The CRD's fields are int64: one larger number makes the whole status
    # write fail (422) and freezes the status. Parsing already refuses such
    # answers; this keeps any snapshot (seeded, simulated) writable.
    return max(-_INT64_MAX, min(truncate(value), _INT64_MAX))


def sync_state(snapshot: MetricsSnapshot, *, num_partitions: int) -> dict[str, dict[str, int]]:
    """The Go operator's ``lastSyncState``: every partition, absent values as 0."""
    return {
        str(p): {
            "productionRate": _int64(snapshot.production.get(p)),
            "consumptionRate": _int64(snapshot.consumption.get(p)),
            "messageBehind": _int64(snapshot.offset.get(p)),
        }
        for p in range(num_partitions)
    }


def snapshot_from_state(state: object) -> MetricsSnapshot | None:
    """Inverse of :func:`sync_state`, for seeding the cache after a restart."""
    if not isinstance(state, Mapping) or not state:
        return None
    production: dict[int, float] = {}
    consumption: dict[int, float] = {}
    offset: dict[int, float] = {}
    for key, values in state.items():
        if not str(key).isdigit() or not isinstance(values, Mapping):
            return None
        p = int(key)
        for target, field in (
            (production, "productionRate"),
            (consumption, "consumptionRate"),
            (offset, "messageBehind"),
        ):
            value = values.get(field)
            if isinstance(value, int | float) and value:
                target[p] = float(value)
    return MetricsSnapshot(production=production, consumption=consumption, offset=offset)


def metrics_reason(metrics: Metrics) -> str:
    """The MetricsAvailable reason of a failed refresh."""
    return metrics.error_reason or "PrometheusUnreachable"


def counters(c: Counters) -> dict[str, int]:
    return {
        "expected": c.expected,
        "running": c.running,
        "paused": c.paused,
        "missing": c.missing,
        "lagging": c.lagging,
        "outdated": c.outdated,
        "redundant": c.redundant,
    }


def status(
    *,
    plan: Plan,
    metrics: Metrics,
    autoscaling: bool,
    num_partitions: int,
    failures: Sequence[str],
    conflicts: Sequence[str],
    previous: Mapping[str, Any],
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """The status a pass reports."""
    c = plan.counters
    if conflicts:
        ready = condition(
            type="Ready",
            status=FALSE,
            reason="NameConflict",
            message="Deployments exist that this Consumer does not own: "
            + ", ".join(sorted(conflicts)),
        )
    elif failures:
        ready = condition(
            type="Ready", status=FALSE, reason="WriteFailed", message="; ".join(failures)[:1024]
        )
    elif c.missing or c.outdated or c.redundant:
        ready = condition(
            type="Ready",
            status=FALSE,
            reason="Progressing",
            message=f"{c.missing} missing, {c.outdated} outdated, {c.redundant} redundant",
        )
    else:
        ready = condition(
            type="Ready",
            status=TRUE,
            reason="Reconciled",
            message=f"{c.expected} instances up to date",
        )
    if not autoscaling:
        available = condition(
            type="MetricsAvailable",
            status=UNKNOWN,
            reason="AutoscalingDisabled",
            message="autoscaling is off (mode is not prometheus, or the Consumer is paused)",
        )
    elif metrics.error is not None:
        available = condition(
            type="MetricsAvailable",
            status=FALSE,
            reason=metrics_reason(metrics),
            message=metrics.error[:1024] + " (resources are left as they are)",
        )
    else:
        available = condition(
            type="MetricsAvailable", status=TRUE, reason="Synced", message="metrics are current"
        )
    saturated = condition(
        type="Saturated",
        status=TRUE if plan.saturated else FALSE,
        reason="LimitsReached" if plan.saturated else "WithinLimits",
        message=(
            "lagging and held back by resourcePolicy: " + ", ".join(plan.saturated)
            if plan.saturated
            else "no instance is held back by its limits"
        ),
    )
    result: dict[str, Any] = {**previous, **counters(c), "observedGeneration": generation}
    if metrics.synced_at is not None and metrics.snapshot is not None:
        result["lastSyncTime"] = rendering.format_time(metrics.synced_at)
        result["lastSyncState"] = sync_state(metrics.snapshot, num_partitions=num_partitions)
    result["conditions"] = merge_conditions(
        previous=previous.get("conditions") or [],
        current=[ready, available, saturated],
        now=now,
        generation=generation,
    )
    return result


def invalid(
    *,
    message: str,
    previous: Mapping[str, Any],
    generation: int,
    now: datetime,
    reason: str = "InvalidSpec",
) -> dict[str, Any]:
    """Status for a spec that cannot be used (``InvalidSpec``) or an object that cannot
    even be read (``UndecodableObject``): counters kept, Ready=False with the reason."""
    ready = condition(type="Ready", status=FALSE, reason=reason, message=message[:1024])
    others = [c for c in previous.get("conditions") or [] if c.get("type") != "Ready"]
    merged = merge_conditions(
        previous=previous.get("conditions") or [], current=[ready], now=now, generation=generation
    )
    return {**previous, "observedGeneration": generation, "conditions": merged + others}
