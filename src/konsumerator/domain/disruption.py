"""A disruption budget for the restarts the operator chooses: at most so many per pass.

A resize that restarts pods (``updateMode: Recreate``, or a fallback from in place to a
rollout) is a consumption gap, a cold start and a consumer-group rebalance. Most are
not the operator's to pace: a scale-up prevents lag, a creation starts consumption, and
a user's template or partition change, ``updateMode`` switch or autoscaling pause is a
change the user asked for (a Deployment's own ``maxUnavailable`` paces a rollout of its
pods, not a change of many Deployments). A **scale-down** is the operator's own choice:
it gives back CPU it could keep a while longer, and a fleet-wide one (a predictor
switched back to ``naive``, a raised ``ratePerCore``) restarted 40 % of a consumer
group in one pass. Those are budgeted, as Kubernetes paces voluntary disruptions
(a PodDisruptionBudget, Karpenter's disruption budgets): ``restartBudgetPercent`` of the
instances per pass, rounded up, at least one (``allowed``). A scale-down in place
restarts nothing and is not counted; its fallback to a rollout is.

Fair order: the instances whose scale-down has waited longest go first. A held
instance keeps its size and stays ``PENDING_SCALE_DOWN`` with the time it entered it,
so the next pass finds it among the instances whose ``pendingScaleDownDuration`` is
over, oldest first (``turns``); those get the budget reserved for them, and what is
left goes to the others in index order. Every instance gets its turn within
ceil(waiting / budget) passes, and the state lives on the Deployments, so a restarted
operator or a new leader keeps the order. ``since`` unknown reads as "infinitely long
ago", as everywhere in the scaling state machine. An instance held before its first
size from metrics (``scaling.unsized``: created from the fallback) keeps that mark, not
a ``PENDING_SCALE_DOWN`` from now: it takes what the turns leave in the next passes
instead of waiting ``pendingScaleDownDuration``.
"""

import heapq
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from konsumerator.domain.scaling import ScalingState, ScalingStatus, unsized
from konsumerator.domain.stamps import age_s, ahead

# The default share of a Consumer's instances that one pass may restart for a
# scale-down: Karpenter's default disruption budget (10 % of nodes) and between a
# Deployment's default maxUnavailable (25 %) and one at a time. 406 restarts of a
# 1,000-instance switch back to naive take 5 passes (2.5 minutes at minSyncPeriod 30s).
DEFAULT_PERCENT: Final = 10
# 100 % lets every instance restart in one pass: no budget (the Go operator's way).
UNLIMITED_PERCENT: Final = 100


def allowed(*, percent: int, instances: int) -> int:
    """Voluntary restarts one pass may make: ``percent`` of ``instances`` rounded up, at
    least one (a budget of none would hold every scale-down for ever)."""
    return max(1, math.ceil(percent * instances / 100))


def _waited(state: ScalingState, *, now: datetime, pending_down_s: float) -> bool:
    """A scale-down that has waited its pending period (the state machine would apply it)."""
    if state.status is not ScalingStatus.PENDING_SCALE_DOWN:
        return False
    # One whose start is too far ahead to measure from waits again (``scaling.restarted``).
    return not ahead(state.since, now=now) and age_s(state.since, now=now) >= pending_down_s


def turns(
    states: Iterable[tuple[int, ScalingState]],
    *,
    now: datetime,
    pending_down_s: float,
    limit: int,
) -> frozenset[int]:
    """The instance indexes the budget is reserved for: of those whose scale-down has
    waited ``pending_down_s``, the ``limit`` that entered ``PENDING_SCALE_DOWN`` first
    (then by index)."""
    waiting = (
        (-math.inf if s.since is None else s.since.timestamp(), index)
        for index, s in states
        if _waited(s, now=now, pending_down_s=pending_down_s)
    )
    return frozenset(index for _, index in heapq.nsmallest(limit, waiting))


class RestartBudget:
    """The voluntary restarts one pass may still make (mutable, local to one ``plan``).

    ``admit`` says whether an instance's scale-down may restart its pods now. The
    indexes in ``turns`` are always admitted (at most ``limit`` of them); the others
    share what they leave, first come in index order. So no pass admits more than
    ``limit``, and ``held`` counts those refused.
    """

    __slots__ = ("_spare", "_turns", "held", "limit", "taken")

    def __init__(self, *, limit: int, turns: frozenset[int] = frozenset()) -> None:
        # 0 only for a pass that continues a cut one which spent the whole budget of
        # their refresh (``spent``): the next refresh has a budget again.
        if limit < 0 or len(turns) > limit:
            raise ValueError(f"a budget of {limit} cannot reserve {len(turns)} turns")
        self.limit = limit
        self._turns = turns
        self._spare = limit - len(turns)
        self.held = 0
        # The instance indexes admitted (``spent`` counts those whose write was made).
        self.taken: set[int] = set()

    def admit(self, index: int) -> bool:
        """Take one restart for instance ``index`` if the budget has one for it."""
        if index in self._turns:
            self.taken.add(index)
            return True
        if self._spare > 0:
            self._spare -= 1
            self.taken.add(index)
            return True
        self.held += 1
        return False


def hold(state: ScalingState, *, now: datetime) -> ScalingState:
    """The state of an instance whose scale-down is held: ``PENDING_SCALE_DOWN``, since
    it first entered it (its place in the queue), or from now. One never sized from
    metrics (``scaling.unsized``) stays as it is: its first size skips the pending
    period, and entering ``PENDING_SCALE_DOWN`` now would make it wait the whole
    ``pendingScaleDownDuration`` instead of its turn (the next passes' spare budget)."""
    if state.status is ScalingStatus.PENDING_SCALE_DOWN or unsized(state):
        return state
    return ScalingState(
        status=ScalingStatus.PENDING_SCALE_DOWN,
        since=now,
        memory=state.memory,
        explanation=state.explanation,
    )
