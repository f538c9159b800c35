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
  that cannot be sized from; the message names the query), ``AddressNotAllowed``
  (an address outside ``--prometheus-allowed-hosts``: nothing was requested), or
  ``AutoscalingDisabled``.
* ``Saturated``: some instances are lagging and held back by their limits.

A condition's ``lastTransitionTime`` moves only when its status flips, and the
status is written only when something in it changed: a pass with nothing to
report makes no write.

The status is bounded whatever ``numPartitions`` is (the CRD allows 100 000):
an object must fit etcd (~1.5 MiB) and a guest ConfigMap's annotations 256 KiB
in total, and ``lastSyncState`` costs at least 70 bytes a partition. So it is
kept only while it fits a byte budget (``STATE_BUDGET_BYTES`` in CRD mode, less
in guest mode); above it the field is left out, a restarted operator queries
Prometheus afresh for that Consumer, and ``MetricsAvailable`` says so. Every
condition message is at most ``MESSAGE_LIMIT`` characters, lists of names
included. Together the status stays under 256 KiB.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from konsumerator.domain import rendering
from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.syncstate import (
    MIN_ENTRY_BYTES,
    STATE_BUDGET_BYTES,
    SyncStates,
    snapshot_from_state,
    state_size,
    sync_state,
)

__all__ = [
    "MIN_ENTRY_BYTES",
    "STATE_BUDGET_BYTES",
    "SyncStates",
    "snapshot_from_state",
    "state_size",
    "sync_state",
]

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# Characters of one condition message (and of an Event's, see kube.eventing).
MESSAGE_LIMIT: Final = 1024
_UNBOUNDED_SUFFIX: Final = " (resources are left as they are)"


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


def bounded(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def listing(prefix: str, names: Sequence[str], *, limit: int = MESSAGE_LIMIT) -> str:
    """``prefix`` and as many of ``names`` as fit ``limit`` characters, then "and N more"."""
    reserve = len(f" and {len(names)} more")
    shown: list[str] = []
    for name in names:
        if len(prefix) + len(", ".join([*shown, name])) + reserve > limit:
            break
        shown.append(name)
    text = prefix + ", ".join(shown)
    hidden = len(names) - len(shown)
    return bounded(text + (f" and {hidden} more" if hidden else ""), limit=limit)


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
    state_budget_bytes: int = STATE_BUDGET_BYTES,
    refusal: str | None = None,
    states: tuple[SyncStates, str] | None = None,
    in_place: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The status a pass reports, ``lastSyncState`` within ``state_budget_bytes``.

    ``refusal`` says why Prometheus was not asked at all (a disallowed address).
    ``states`` (the cache and this Consumer's key) encodes a snapshot once.
    ``in_place``: the in-place counters (``inPlace``), None in Recreate mode.
    """
    c = plan.counters
    result: dict[str, Any] = {**previous, **counters(c), "observedGeneration": generation}
    if in_place is None:
        result.pop("inPlace", None)
    else:
        result["inPlace"] = dict(in_place)
    omitted = _sync(
        result,
        metrics=metrics,
        num_partitions=num_partitions,
        budget_bytes=state_budget_bytes,
        states=states,
    )
    if conflicts:
        ready = condition(
            type="Ready",
            status=FALSE,
            reason="NameConflict",
            message=listing(
                "Deployments exist that this Consumer does not own: ", sorted(conflicts)
            ),
        )
    elif failures:
        ready = condition(
            type="Ready", status=FALSE, reason="WriteFailed", message=bounded("; ".join(failures))
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
    elif refusal is not None:
        available = condition(
            type="MetricsAvailable",
            status=FALSE,
            reason="AddressNotAllowed",
            message=bounded(refusal, limit=MESSAGE_LIMIT - len(_UNBOUNDED_SUFFIX))
            + _UNBOUNDED_SUFFIX,
        )
    elif metrics.error is not None:
        available = condition(
            type="MetricsAvailable",
            status=FALSE,
            reason=metrics_reason(metrics),
            message=bounded(metrics.error, limit=MESSAGE_LIMIT - len(_UNBOUNDED_SUFFIX))
            + _UNBOUNDED_SUFFIX,
        )
    else:
        available = condition(
            type="MetricsAvailable",
            status=TRUE,
            reason="Synced",
            message="metrics are current" + (omitted or ""),
        )
    saturated = condition(
        type="Saturated",
        status=TRUE if plan.saturated else FALSE,
        reason="LimitsReached" if plan.saturated else "WithinLimits",
        message=(
            listing("lagging and held back by resourcePolicy: ", plan.saturated)
            if plan.saturated
            else "no instance is held back by its limits"
        ),
    )
    result["conditions"] = merge_conditions(
        previous=previous.get("conditions") or [],
        current=[ready, available, saturated],
        now=now,
        generation=generation,
    )
    return result


def _sync(
    result: dict[str, Any],
    *,
    metrics: Metrics,
    num_partitions: int,
    budget_bytes: int,
    states: tuple[SyncStates, str] | None = None,
) -> str | None:
    """Put the metrics cache into ``result``; a note for the condition if it was left out.

    A state carried over from the previous status is dropped too when it exceeds the
    budget (the budget of a guest ConfigMap shrinks as its other annotations grow).
    """
    if metrics.synced_at is None or metrics.snapshot is None:
        if "lastSyncState" in result and state_size(result["lastSyncState"]) > budget_bytes:
            del result["lastSyncState"]
        return None
    result["lastSyncTime"] = rendering.format_time(metrics.synced_at)
    state = (
        sync_state(metrics.snapshot, num_partitions=num_partitions, budget_bytes=budget_bytes)
        if states is None
        else states[0].get(
            key=states[1],
            snapshot=metrics.snapshot,
            num_partitions=num_partitions,
            budget_bytes=budget_bytes,
        )
    )
    if state is not None:
        result["lastSyncState"] = state
        return None
    result.pop("lastSyncState", None)
    why = (
        f"{num_partitions} partitions exceed its {budget_bytes // 1024} KiB budget"
        if budget_bytes >= 1024
        else "the object's other annotations leave it no room"
    )
    return f"; lastSyncState is left out: {why}, so a restarted operator queries Prometheus afresh"


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
    ready = condition(type="Ready", status=FALSE, reason=reason, message=bounded(message))
    others = [c for c in previous.get("conditions") or [] if c.get("type") != "Ready"]
    merged = merge_conditions(
        previous=previous.get("conditions") or [], current=[ready], now=now, generation=generation
    )
    return {**previous, "observedGeneration": generation, "conditions": merged + others}
