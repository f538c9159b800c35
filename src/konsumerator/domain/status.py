"""What a pass tells the user: the typed status of a Consumer and its conditions.

The status carries the Go operator's counters (EXPECTED ... REDUNDANT), the
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

Under the adaptive predictor, ``learning`` says whether the rate per core is
learned (``domain.adaptive.learning``): its state (``Off``, ``Learning``,
``Paused``), the reason, the learned ``ratePerCore`` and the configured one it
started from. It is also the learner's memory: read back every pass, so a
restarted operator goes on from the learned rate.

``restartsHeld`` counts the scale-downs ``restartBudgetPercent`` held in the last pass
that refreshed metrics (``domain.disruption``; CRD mode only, like ``inPlace``): only
such a pass decides scale-downs, so the passes between two refreshes (the ones the
admitted scale-downs' writes wake) carry it instead of flipping it to 0 and back. It is
absent until the budget first holds one of the Consumer's scale-downs (a Consumer it
never binds on gains no field and no write), then 0 when none is held: a count is
cleared by writing 0, not by leaving the field out, which a server-side apply would not
remove from a status somebody else edited (``kubectl edit --subresource=status``), so a
hand-edited count is put right by the next refresh like any other field.

A condition's ``lastTransitionTime`` moves only when its status flips
(``domain.conditions``).

The status is bounded whatever ``numPartitions`` is (the CRD allows 100 000):
an object must fit etcd (~1.5 MiB) and a guest ConfigMap's annotations 256 KiB
in total, and ``lastSyncState`` costs at least 70 bytes a partition. So it is
kept only while it fits a byte budget (``STATE_BUDGET_BYTES`` in CRD mode, less
in guest mode); above it the field is left out, a restarted operator queries
Prometheus afresh for that Consumer, and ``MetricsAvailable`` says so. Every
condition message is at most ``MESSAGE_LIMIT`` characters, lists of names
included. Together the status stays under 256 KiB.

Two renderings of one model: :meth:`ConsumerStatus.to_body` for the CRD's
status subresource, :meth:`ConsumerStatus.to_annotations` for a guest
ConfigMap (the Go operator's ``konsumerator.lwolf.org/status.*`` annotations).
Anyone allowed to write the status can put anything there, so reading one back
(:meth:`ConsumerStatus.from_body`) never fails: what the model cannot hold is
kept as it was (``carried``) and comes back out unchanged.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from konsumerator.domain import keys
from konsumerator.domain.adaptive.learning import Learned, Reason, State
from konsumerator.domain.conditions import (
    FALSE,
    MESSAGE_LIMIT,
    TRUE,
    UNKNOWN,
    Condition,
    bounded,
    is_int,
    listing,
    merge_conditions,
)
from konsumerator.domain.numbers import INT32_MAX, INT64_MAX, parse_decimal
from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.rendering import format_time, parse_time
from konsumerator.domain.syncstate import STATE_BUDGET_BYTES, SyncStates, state_size, sync_state

_UNBOUNDED_SUFFIX: Final = " (resources are left as they are)"

# The status fields of the counters, in the Go operator's order.
COUNTER_FIELDS: Final = (
    "expected",
    "running",
    "paused",
    "missing",
    "lagging",
    "outdated",
    "redundant",
)
# ``inPlace``'s fields (updateMode InPlaceOrRecreate).
IN_PLACE_FIELDS: Final = ("resized", "pending", "fellBack")
# Guest mode: the Go operator's annotations have no ``redundant``.
STATUS_COUNTERS: Final = COUNTER_FIELDS[:6]
LAST_SYNC_TIME: Final = f"{keys.STATUS_PREFIX}last-sync-time"
LAST_SYNC_STATE: Final = f"{keys.STATUS_PREFIX}last-sync-state"
CONDITIONS: Final = f"{keys.STATUS_PREFIX}conditions"
LEARNING: Final = f"{keys.STATUS_PREFIX}learning"


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """The status of one Consumer (or guest ConfigMap).

    ``None`` fields are absent from the rendering. ``last_sync_state`` is the
    metrics-snapshot codec's JSON (``domain.syncstate``), kept as the object held it
    when this pass did not refresh. ``carried`` holds the fields of a status read back
    that this model does not hold (incomplete counters from an older writer, a value of
    the wrong type), unchanged: the fields this status sets take precedence.
    """

    counters: Counters | None = None
    observed_generation: int | None = None
    last_sync_time: str | None = None
    last_sync_state: object = None
    conditions: tuple[Condition, ...] = ()
    carried: Mapping[str, Any] = field(default_factory=_empty)
    # ``inPlace``: the in-place counters (``IN_PLACE_FIELDS``), None in Recreate mode.
    in_place: Mapping[str, int] | None = None
    # ``learning``: the learned rate per core (adaptive predictor only).
    learning: Learned | None = None
    # ``restartsHeld``: scale-downs the restart budget held (``restarts_held``); None: absent.
    restarts_held: int | None = None

    def condition(self, type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type), None)

    def counter_fields(self) -> dict[str, int]:
        """The counters as status fields (empty when this status has none)."""
        return {} if self.counters is None else counter_fields(self.counters)

    def to_body(self) -> dict[str, Any]:
        """The CRD's ``status``."""
        body = dict(self.carried)
        body.update(self.counter_fields())
        if self.observed_generation is not None:
            body["observedGeneration"] = self.observed_generation
        if self.last_sync_time is not None:
            body["lastSyncTime"] = self.last_sync_time
        if self.last_sync_state is not None:
            body["lastSyncState"] = self.last_sync_state
        if self.conditions:
            body["conditions"] = [c.to_body() for c in self.conditions]
        if self.in_place is not None:
            body["inPlace"] = dict(self.in_place)
        if self.learning is not None:
            body["learning"] = learning_body(self.learning)
        if self.restarts_held is not None:
            body["restartsHeld"] = self.restarts_held
        return body

    def to_annotations(self) -> dict[str, str]:
        """Guest mode: the Go operator's ``konsumerator.lwolf.org/status.*`` annotations."""
        return status_annotations(self.to_body())

    @staticmethod
    def from_body(raw: Mapping[str, Any]) -> "ConsumerStatus":
        """A status as read back from the object: never fails, loses nothing."""
        counters = [raw.get(name) for name in COUNTER_FIELDS]
        complete = all(is_int(v) for v in counters)
        generation, synced = raw.get("observedGeneration"), raw.get("lastSyncTime")
        listed = raw.get("conditions")
        conditions = (Condition.from_body(c) for c in (listed if isinstance(listed, list) else ()))
        held = {"lastSyncState", "conditions"}
        held |= set(COUNTER_FIELDS) if complete else set()
        held |= {"observedGeneration"} if is_int(generation) else set()
        held |= {"lastSyncTime"} if isinstance(synced, str) else set()
        raw_in_place = raw.get("inPlace")
        in_place: dict[str, int] = dict(raw_in_place) if isinstance(raw_in_place, Mapping) else {}
        readable = set(in_place) == set(IN_PLACE_FIELDS) and all(
            is_int(v) for v in in_place.values()
        )
        held |= {"inPlace"} if readable else set()
        learning = learning_from_body(raw.get("learning"))
        held |= {"learning"} if learning is not None else set()
        # Any integer is a count (a hand-edited one too: the next refresh writes the
        # truth over it); anything else is carried as it was (the CRD allows none).
        restarts = raw.get("restartsHeld")
        counted = restarts if is_int(restarts) else None
        held |= {"restartsHeld"} if counted is not None else set()
        return ConsumerStatus(
            counters=Counters(**{n: raw[n] for n in COUNTER_FIELDS}) if complete else None,
            observed_generation=generation if is_int(generation) else None,
            last_sync_time=synced if isinstance(synced, str) else None,
            last_sync_state=raw.get("lastSyncState"),
            conditions=tuple(c for c in conditions if c is not None),
            carried=MappingProxyType({k: v for k, v in raw.items() if k not in held}),
            in_place=MappingProxyType(in_place) if readable else None,
            learning=learning,
            restarts_held=counted,
        )

    @staticmethod
    def from_annotations(annotations: Mapping[str, str]) -> "ConsumerStatus":
        return ConsumerStatus.from_body(status_from_annotations(annotations))


def learning_body(learned: Learned) -> dict[str, Any]:
    """``status.learning``: absent fields are left out."""
    body: dict[str, Any] = {
        "state": learned.state.value,
        "reason": learned.reason.value,
        "message": bounded(learned.message),
    }
    if learned.rate_per_core is not None:
        body["ratePerCore"] = learned.rate_per_core
    if learned.prior is not None:
        body["configuredRatePerCore"] = learned.prior
    if learned.rate_per_core is not None:
        body["samples"] = learned.samples
    if learned.learned_at is not None:
        body["lastLearnedTime"] = format_time(learned.learned_at)
    return body


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and is_int(value) and 0 < value <= INT64_MAX else None


def learning_from_body(raw: object) -> Learned | None:
    """``status.learning`` read back; None (carried as it was) when it is not one."""
    if not isinstance(raw, Mapping):
        return None
    try:
        state, reason = State(str(raw.get("state"))), Reason(str(raw.get("reason")))
    except ValueError:
        return None
    samples = raw.get("samples", 0)
    message = raw.get("message")
    learned_at = raw.get("lastLearnedTime")
    return Learned(
        state=state,
        reason=reason,
        message=message if isinstance(message, str) else "",
        rate_per_core=_positive(raw.get("ratePerCore")),
        prior=_positive(raw.get("configuredRatePerCore")),
        samples=samples if is_int(samples) and 0 <= samples <= INT32_MAX else 0,
        learned_at=parse_time(learned_at) if isinstance(learned_at, str) else None,
    )


def counter_fields(c: Counters) -> dict[str, int]:
    return {name: getattr(c, name) for name in COUNTER_FIELDS}


def status_annotations(status: Mapping[str, Any]) -> dict[str, str]:
    """A status body as the Go operator's ConfigMap annotations."""
    result = {f"{keys.STATUS_PREFIX}{k}": str(int(status.get(k, 0))) for k in STATUS_COUNTERS}
    if status.get("lastSyncTime"):
        result[LAST_SYNC_TIME] = str(status["lastSyncTime"])
    result[LAST_SYNC_STATE] = json.dumps(status.get("lastSyncState"), sort_keys=True)
    conditions = status.get("conditions")
    if conditions:
        result[CONDITIONS] = json.dumps(conditions, sort_keys=True)
    if status.get("learning"):
        result[LEARNING] = json.dumps(status["learning"], sort_keys=True)
    return result


def status_from_annotations(annotations: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of :func:`status_annotations`; unreadable values read as absent."""
    status: dict[str, Any] = {}
    for key in STATUS_COUNTERS:
        raw = annotations.get(f"{keys.STATUS_PREFIX}{key}", "")
        # The counters are the CRD's int32; "²" or 5,000 digits read as 0.
        status[key] = parse_decimal(raw, maximum=INT32_MAX) or 0
    if annotations.get(LAST_SYNC_TIME):
        status["lastSyncTime"] = annotations[LAST_SYNC_TIME]
    for key, name in (
        (LAST_SYNC_STATE, "lastSyncState"),
        (CONDITIONS, "conditions"),
        (LEARNING, "learning"),
    ):
        try:
            value = json.loads(annotations.get(key, "null"))
        except (ValueError, RecursionError):
            # Anyone who may edit the ConfigMap may write these: JSON nested past the
            # parser's recursion is as unreadable as JSON that is not.
            value = None
        if value is not None:
            status[name] = value
    return status


def metrics_reason(metrics: Metrics) -> str:
    """The MetricsAvailable reason of a failed refresh."""
    return metrics.error_reason or "PrometheusUnreachable"


def _unbounded(text: str) -> str:
    return bounded(text, limit=MESSAGE_LIMIT - len(_UNBOUNDED_SUFFIX)) + _UNBOUNDED_SUFFIX


def ready(*, counters: Counters, failures: Sequence[str], conflicts: Sequence[str]) -> Condition:
    """Ready: a name conflict first, then failed writes, then work still to do."""
    c = counters
    if conflicts:
        names = sorted(conflicts)
        message = listing("Deployments exist that this Consumer does not own: ", names)
        return Condition(type="Ready", status=FALSE, reason="NameConflict", message=message)
    if failures:
        message = bounded("; ".join(failures))
        return Condition(type="Ready", status=FALSE, reason="WriteFailed", message=message)
    if c.missing or c.outdated or c.redundant:
        message = f"{c.missing} missing, {c.outdated} outdated, {c.redundant} redundant"
        return Condition(type="Ready", status=FALSE, reason="Progressing", message=message)
    message = f"{c.expected} instances up to date"
    return Condition(type="Ready", status=TRUE, reason="Reconciled", message=message)


def metrics_available(
    *, metrics: Metrics, autoscaling: bool, refusal: str | None, note: str | None
) -> Condition:
    """MetricsAvailable; ``note`` says why ``lastSyncState`` was left out, if it was."""
    name = "MetricsAvailable"
    if not autoscaling:
        why = "autoscaling is off (mode is not prometheus, or the Consumer is paused)"
        return Condition(type=name, status=UNKNOWN, reason="AutoscalingDisabled", message=why)
    if refusal is not None:
        message = _unbounded(refusal)
        return Condition(type=name, status=FALSE, reason="AddressNotAllowed", message=message)
    if metrics.error is not None:
        message = _unbounded(metrics.error)
        return Condition(type=name, status=FALSE, reason=metrics_reason(metrics), message=message)
    message = "metrics are current" + (note or "")
    if metrics.problems is not None:
        # Usable, but not all as given: say what was dropped or merged (bounded).
        message = bounded(f"{message}; {metrics.problems}")
    return Condition(type=name, status=TRUE, reason="Synced", message=message)


def restarts_held(
    *, plan: Plan, metrics: Metrics, autoscaling: bool, previous: ConsumerStatus
) -> int | None:
    """``restartsHeld``: the scale-downs the restart budget held in the last pass that
    refreshed metrics, the only pass in which the scaling state machine decides them.

    A pass that did not refresh (one woken by the writes of the scale-downs the budget
    admitted, or one whose refresh failed: nothing was scaled down) keeps the previous
    count, so the field does not flip to 0 and back between two refreshes (two status
    writes per sync while the budget binds, and a kubectl user would mostly see no field
    at all). A fallback from in place that the budget held in such a pass shows at the
    next refresh if it still waits then. Autoscaling off (manual mode, paused): nothing
    is scaled down, nothing is held. None (absent) until a count is first held; from
    then on 0 says none is.
    """
    if not autoscaling:
        count: int | None = 0
    elif metrics.refreshed:
        count = plan.restarts_held
    else:
        count = previous.restarts_held
    return None if not count and previous.restarts_held is None else count


def saturated(plan: Plan) -> Condition:
    if plan.saturated:
        message = listing("lagging and held back by resourcePolicy: ", plan.saturated)
        return Condition(type="Saturated", status=TRUE, reason="LimitsReached", message=message)
    message = "no instance is held back by its limits"
    return Condition(type="Saturated", status=FALSE, reason="WithinLimits", message=message)


@dataclass(frozen=True, slots=True)
class _Sync:
    time: str | None
    state: object
    # Why the state was left out (for MetricsAvailable's message), if it was.
    note: str | None = None


def _sync(
    *,
    previous: ConsumerStatus,
    metrics: Metrics,
    num_partitions: int,
    budget_bytes: int,
    states: tuple[SyncStates, str] | None,
) -> _Sync:
    """The metrics cache this status carries.

    A state carried over from the previous status is dropped too when it exceeds the
    budget (the budget of a guest ConfigMap shrinks as its other annotations grow).
    """
    if metrics.synced_at is None or metrics.snapshot is None:
        state = previous.last_sync_state
        if state is not None and state_size(state) > budget_bytes:
            state = None
        return _Sync(time=previous.last_sync_time, state=state)
    synced = format_time(metrics.synced_at)
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
        return _Sync(time=synced, state=state)
    why = (
        f"{num_partitions} partitions exceed its {budget_bytes // 1024} KiB budget"
        if budget_bytes >= 1024
        else "the object's other annotations leave it no room"
    )
    note = f"; lastSyncState is left out: {why}, so a restarted operator queries Prometheus afresh"
    return _Sync(time=synced, state=None, note=note)


def of_pass(
    *,
    plan: Plan,
    metrics: Metrics,
    autoscaling: bool,
    num_partitions: int,
    failures: Sequence[str],
    conflicts: Sequence[str],
    previous: ConsumerStatus,
    generation: int,
    now: datetime,
    state_budget_bytes: int = STATE_BUDGET_BYTES,
    refusal: str | None = None,
    states: tuple[SyncStates, str] | None = None,
    in_place: Mapping[str, int] | None = None,
    learning: Learned | None = None,
) -> ConsumerStatus:
    """The status a pass reports, ``lastSyncState`` within ``state_budget_bytes``.

    ``refusal`` says why Prometheus was not asked at all (a disallowed address).
    ``states`` (the cache and this Consumer's key) encodes a snapshot once.
    ``in_place``: the in-place counters (``inPlace``), None in Recreate mode.
    ``learning``: the learned rate per core (adaptive predictor), else None.
    """
    sync = _sync(
        previous=previous,
        metrics=metrics,
        num_partitions=num_partitions,
        budget_bytes=state_budget_bytes,
        states=states,
    )
    current = (
        ready(counters=plan.counters, failures=failures, conflicts=conflicts),
        metrics_available(
            metrics=metrics, autoscaling=autoscaling, refusal=refusal, note=sync.note
        ),
        saturated(plan),
    )
    return ConsumerStatus(
        counters=plan.counters,
        observed_generation=generation,
        last_sync_time=sync.time,
        last_sync_state=sync.state,
        conditions=merge_conditions(
            previous=previous.conditions, current=current, now=now, generation=generation
        ),
        carried=previous.carried,
        in_place=None if in_place is None else MappingProxyType(dict(in_place)),
        learning=learning,
        restarts_held=restarts_held(
            plan=plan, metrics=metrics, autoscaling=autoscaling, previous=previous
        ),
    )


def of_rejection(
    *,
    message: str,
    previous: ConsumerStatus,
    generation: int,
    now: datetime,
    reason: str = "InvalidSpec",
) -> ConsumerStatus:
    """Status for a spec that cannot be used (``InvalidSpec``) or an object that cannot
    even be read (``UndecodableObject``): counters and other conditions kept, Ready=False
    with the reason."""
    current = Condition(type="Ready", status=FALSE, reason=reason, message=bounded(message))
    merged = merge_conditions(
        previous=previous.conditions, current=[current], now=now, generation=generation
    )
    others = tuple(c for c in previous.conditions if c.type != "Ready")
    return replace(previous, observed_generation=generation, conditions=merged + others)
