"""The pass after a cut refreshing pass decides as that pass did (``Continuations``).

The scaling rules decide only in a pass that refreshed metrics (``rules.scale_by_metrics``,
``rules.scale_adaptively``: the pending periods measure observations, not reconciles).
A pass makes at most ``acting.SLICE`` writes and leaves the rest to the next pass,
asked for at once (``Outcome.deferred``); but that pass has no refresh of its own
(``minSyncPeriod`` has not passed), so the rest of a refreshing pass's scaling writes
was dropped until the next refresh, a whole sync period later. One Consumer of 1,000
partitions whose first pass had no Prometheus answer showed it: the refreshing pass
created the 500 missing instances first (``Plan.applies``) and deferred the first size
from metrics of the 500 created from the fallback; the next pass wrote none of them:
they waited a sync period, by when their pods run, so in place each needs a Deployment
write and a pod resize where one template write did before their pods started.

So the pass that follows a cut refreshing pass, while it plans with the very snapshot
that pass refreshed (the provider's cached object: no refresh, no failure between) and
the very config (``reconciling._Converted``: the spec did not change; a changed one
waits for the next refresh, as it always did), is planned as refreshing too. It decides
afresh from the watch cache: an instance the cut pass wrote is seen as written (its
decision is to keep it), one it did not write gets the decision it would have had, at
this pass's time. Only the planner sees it so: the learned rate
(``domain.adaptive.learning``), the status and the Events see the pass as it is (no
refresh), so nothing learns from one observation twice.

Nor does the restart budget (``restartBudgetPercent``, ``domain.disruption``) count
twice: it is a budget per refresh, and the passes that continue one share it. A
continued pass gets what the cut passes before it left (``Metrics.restarts_spent``: the
budgeted restarts they wrote), not a budget of its own, which let one refresh restart
twice its budget (or more, a continued pass cut again) within seconds.
"""

import dataclasses
from collections.abc import Iterable

from konsumerator.domain import planning
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.specs import ConsumerConfig


def spent(*, plan: planning.Plan, written: Iterable[planning.Apply | planning.Delete]) -> int:
    """The budgeted restarts ``plan`` admitted whose write was made (``written``: the
    act step's done writes)."""
    admitted = plan.restarts_admitted
    if not admitted:
        return 0
    done = {w.name for w in written if isinstance(w, planning.Apply)}
    return sum(1 for a in plan.applies if a.index in admitted and a.name in done)


class Continuations:
    """By Consumer key, the snapshot and config of the last pass if it refreshed (or
    continued one) and was cut, and the budgeted restarts written from that snapshot:
    the next pass with the same two continues it."""

    def __init__(self) -> None:
        self._cut: dict[str, tuple[MetricsSnapshot, ConsumerConfig, int]] = {}

    def planned(
        self, *, key: str, metrics: planning.Metrics, config: ConsumerConfig
    ) -> planning.Metrics:
        """The metrics to plan this pass with: ``metrics``, marked refreshed when the
        pass continues a cut refreshing pass (the same snapshot and config objects, no
        refresh, no error)."""
        cut = self._cut.pop(key, None)
        if (
            cut is None
            or metrics.refreshed
            or metrics.error is not None
            or metrics.snapshot is not cut[0]
            or config is not cut[1]
        ):
            return metrics
        return dataclasses.replace(metrics, refreshed=True, restarts_spent=cut[2])

    def acted(
        self,
        *,
        key: str,
        planned: planning.Metrics,
        config: ConsumerConfig,
        deferred: bool,
        restarts: int = 0,
    ) -> None:
        """Remember a pass planned as refreshing (``planned``) whose writes were cut,
        with the budgeted ``restarts`` it wrote (``spent``)."""
        if deferred and planned.refreshed and planned.snapshot is not None:
            self._cut[key] = (planned.snapshot, config, planned.restarts_spent + restarts)

    def forget(self, key: str) -> None:
        self._cut.pop(key, None)
