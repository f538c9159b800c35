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

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from konsumerator.domain import rendering
from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.numbers import INT32_MAX, parse_decimal
from konsumerator.domain.planning import Counters, Metrics, Plan

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# Bytes of lastSyncState as JSON (``json.dumps``, as the guest annotation holds it;
# the API server's compact JSON is smaller). 192 KiB keeps ~2 300 busy partitions.
STATE_BUDGET_BYTES: Final = 192 * 1024
# Characters of one condition message (and of an Event's, see kube.eventing).
MESSAGE_LIMIT: Final = 1024
# The smallest lastSyncState entry, `"0": {"consumptionRate": 0, ...}, `: a state of
# n partitions takes at least n times this, so a too large one is never built.
MIN_ENTRY_BYTES: Final = 70
# The CRD says int64; a larger value (a broken exporter) would make every write fail.
_INT64_MAX: Final = 2**63 - 1
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


def state_size(state: object) -> int:
    """Bytes of a ``lastSyncState`` as JSON, measured as the guest annotation writes it."""
    return len(json.dumps(state, sort_keys=True).encode())


def _int64(value: float | None) -> int:
    # The CRD's fields are int64: one larger number makes the whole status
    # write fail (422) and freezes the status. Parsing already refuses such
    # answers; this keeps any snapshot (seeded, simulated) writable.
    return max(-_INT64_MAX, min(truncate(value), _INT64_MAX))


def sync_state(
    snapshot: MetricsSnapshot, *, num_partitions: int, budget_bytes: int = STATE_BUDGET_BYTES
) -> dict[str, dict[str, int]] | None:
    """The Go operator's ``lastSyncState``: every partition, absent values as 0.

    None when it would not fit ``budget_bytes``; decided without building it when even
    all-zero entries would not fit, so a 100 000-partition Consumer costs nothing here.
    """
    if num_partitions * MIN_ENTRY_BYTES > budget_bytes:
        return None
    state = {
        str(p): {
            "productionRate": _int64(snapshot.production.get(p)),
            "consumptionRate": _int64(snapshot.consumption.get(p)),
            "messageBehind": _int64(snapshot.offset.get(p)),
        }
        for p in range(num_partitions)
    }
    return state if state_size(state) <= budget_bytes else None


def snapshot_from_state(state: object) -> MetricsSnapshot | None:
    """Inverse of :func:`sync_state`, for seeding the cache after a restart."""
    if not isinstance(state, Mapping) or not state:
        return None
    production: dict[int, float] = {}
    consumption: dict[int, float] = {}
    offset: dict[int, float] = {}
    for key, values in state.items():
        # Anyone may edit the status: a key that is no partition id ("²",
        # 5,000 digits) makes the whole state unusable, as any other damage.
        p = parse_decimal(str(key), maximum=INT32_MAX)
        if p is None or not isinstance(values, Mapping):
            return None
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
    state_budget_bytes: int = STATE_BUDGET_BYTES,
    refusal: str | None = None,
) -> dict[str, Any]:
    """The status a pass reports, ``lastSyncState`` within ``state_budget_bytes``.

    ``refusal`` says why Prometheus was not asked at all (a disallowed address).
    """
    c = plan.counters
    result: dict[str, Any] = {**previous, **counters(c), "observedGeneration": generation}
    omitted = _sync(
        result, metrics=metrics, num_partitions=num_partitions, budget_bytes=state_budget_bytes
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
    result: dict[str, Any], *, metrics: Metrics, num_partitions: int, budget_bytes: int
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
    state = sync_state(metrics.snapshot, num_partitions=num_partitions, budget_bytes=budget_bytes)
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
