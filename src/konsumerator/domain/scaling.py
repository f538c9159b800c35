"""The scaling state machine: when a proposed size may replace the current one.

Resizing a Deployment restarts its pods, and a consumer that restarts stops
consuming for a while, so a new size is applied only after the need for it
has been seen twice, ``pendingScaleUpDuration`` (or ``...Down``) apart::

          lagging and more needed              still so after pendingUp
    RUNNING ─────────────────────▶ PENDING_SCALE_UP ───────────────▶ apply
       │ ▲                                                          │
       │ └─────────── need went away (equal, or not lagging) ◀──────┘
       │  not lagging and less needed            still so after pendingDown
       └─────────────────────────▶ PENDING_SCALE_DOWN ─────────────▶ apply

    SATURATED: the policy or the global pool cut the estimate while lagging;
    left as soon as the shortage is gone or the lag is.

The decision is per instance, from the comparison of all its containers'
requests. The Go operator decided per container and let the last container
overwrite the status; it also had no way out of PENDING_SCALE_DOWN when the
instance started lagging, and treated a pending duration of 0 as "never".
Here a lagging instance that needs more always moves to PENDING_SCALE_UP, and
a pending duration of 0 applies on the first observation.

An instance whose size was never set from metrics (``unsized``: created from the
fallback while Prometheus had no answer, RUNNING with no time) takes its first
metrics-based size at once, by either predictor: the pending period guards a
size the metrics chose against their noise, and the fallback's was chosen by
none. The resize stamps the time (``stamped``), so only the first one skips it;
so does a pass whose metrics ask for the size it has (it is theirs then).

State and the time it was entered live in annotations on the Deployment, so
they survive operator restarts and leader failover.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import msgspec

from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.stamps import age_s, ahead


class ScalingStatus(StrEnum):
    RUNNING = "RUNNING"
    SATURATED = "SATURATED"
    PENDING_SCALE_UP = "PENDING_SCALE_UP"
    PENDING_SCALE_DOWN = "PENDING_SCALE_DOWN"

    @classmethod
    def parse(cls, text: str | None) -> "ScalingStatus | None":
        try:
            return cls(text) if text is not None else None
        except ValueError:
            return None


# A msgspec Struct (frozen, hashable), built in C: see ``adaptive.memory.Memory``.
class ScalingState(msgspec.Struct, frozen=True, gc=False):
    status: ScalingStatus
    # When the status was entered; None reads as "infinitely long ago",
    # which is how Go treated a missing or unparsable timestamp.
    since: datetime | None
    # The adaptive policy's memory (``domain.adaptive.memory``); None under
    # the naive predictor, which remembers nothing else.
    memory: Memory | None = None
    # Why the adaptive policy decided what it did (its Event message and the
    # ``scaling-decision`` annotation). Not part of the state: a new
    # explanation alone is no reason to write the Deployment.
    explanation: str = ""

    def __eq__(self, other: object) -> bool:
        """Every field but the explanation, as a dataclass field with ``compare=False``
        is left out (a test pins that every other field is compared)."""
        if type(other) is not ScalingState:
            return NotImplemented
        return (self.status, self.since, self.memory) == (other.status, other.since, other.memory)

    def __hash__(self) -> int:
        return hash((self.status, self.since, self.memory))


def with_memory(state: ScalingState, *, memory: Memory | None, explanation: str) -> ScalingState:
    """``state`` with ``memory`` and ``explanation`` (the adaptive rules ask this for
    every instance in every pass)."""
    return msgspec.structs.replace(state, memory=memory, explanation=explanation)


@dataclass(frozen=True, slots=True)
class Decision:
    apply: bool
    state: ScalingState


def unsized(state: ScalingState) -> bool:
    """Whether the instance's size was never set from metrics: RUNNING without a time.

    ``rules.create_missing`` writes no time when it sizes from the fallback (no
    snapshot); every resize stamps one (``stamped``), and a status change sets
    one. So the mark is on the Deployment (an empty ``scaling-status-change``) and
    survives a restart; a user who empties that annotation by hand gets one
    resize without the pending period, after which the time is back. A Go
    operator's Deployment always has a time.
    """
    return state.since is None and state.status is ScalingStatus.RUNNING


def stamped(state: ScalingState, *, now: datetime) -> ScalingState:
    """``state`` once sized from metrics (resized to their size, or found at it): with a
    time, so no longer ``unsized``. One ANNOTATE write when it had none."""
    return state if state.since is not None else msgspec.structs.replace(state, since=now)


def _elapsed(state: ScalingState, now: datetime, period_s: float) -> bool:
    return age_s(state.since, now=now) >= period_s


def _enter(state: ScalingState, status: ScalingStatus, now: datetime) -> ScalingState:
    return (
        state
        if state.status is status
        else msgspec.structs.replace(state, status=status, since=now)
    )


def restarted(state: ScalingState, *, now: datetime) -> ScalingState:
    """``state``, but a scale-down's pending period whose start is too far ahead of the
    clock to measure from (``stamps.ahead``) starts again now: a dip shorter than the
    period must not resize the instance (``stamps``). One ANNOTATE write of the time."""
    if state.status is ScalingStatus.PENDING_SCALE_DOWN and ahead(state.since, now=now):
        return msgspec.structs.replace(state, since=now)
    return state


def settle(state: ScalingState, *, saturated: bool, now: datetime) -> ScalingState:
    """SATURATED or RUNNING, keeping ``since`` when the status does not change."""
    return _enter(state, ScalingStatus.SATURATED if saturated else ScalingStatus.RUNNING, now)


def _resized(state: ScalingState, *, saturated: bool, now: datetime) -> ScalingState:
    return stamped(settle(state, saturated=saturated, now=now), now=now)


def decide(
    *,
    state: ScalingState,
    comparison: int,
    lagging: bool,
    cpu_shortage_m: int,
    now: datetime,
    pending_up_s: float,
    pending_down_s: float,
) -> Decision:
    """Next state, and whether the proposed resources are applied now.

    ``comparison`` is +1 when the proposal asks for more than the instance
    has, -1 for less, 0 for the same. ``cpu_shortage_m`` is what the limits
    cut from the estimate; it only matters while lagging. After an apply the
    status is SATURATED or RUNNING.
    """
    # SATURATED means "lagging, and the limits withhold what would fix it".
    saturated = lagging and cpu_shortage_m > 0
    status = state.status
    if comparison == 0:
        # The metrics ask for the size it has: from now on it is theirs (``unsized``).
        return Decision(apply=False, state=_resized(state, saturated=saturated, now=now))
    if comparison > 0 and not lagging:
        # Naive keeps what keeps up: a decision from metrics all the same, so an instance
        # created without them is theirs from now on, and a later scale-up waits its turn.
        return Decision(apply=False, state=_resized(state, saturated=saturated, now=now))
    if comparison > 0:
        if status is ScalingStatus.SATURATED:
            return Decision(apply=False, state=settle(state, saturated=saturated, now=now))
        if status is ScalingStatus.PENDING_SCALE_UP:
            if _elapsed(state, now, pending_up_s):
                return Decision(apply=True, state=settle(state, saturated=saturated, now=now))
            return Decision(apply=False, state=state)
        if pending_up_s <= 0 or unsized(state):
            return Decision(apply=True, state=_resized(state, saturated=saturated, now=now))
        return Decision(apply=False, state=_enter(state, ScalingStatus.PENDING_SCALE_UP, now))
    if lagging:
        return Decision(apply=False, state=_resized(state, saturated=saturated, now=now))
    if status is ScalingStatus.PENDING_SCALE_DOWN:
        waiting = restarted(state, now=now)
        if _elapsed(waiting, now, pending_down_s):
            return Decision(apply=True, state=settle(state, saturated=saturated, now=now))
        return Decision(apply=False, state=waiting)
    if pending_down_s <= 0 or unsized(state):
        return Decision(apply=True, state=_resized(state, saturated=saturated, now=now))
    return Decision(apply=False, state=_enter(state, ScalingStatus.PENDING_SCALE_DOWN, now))
