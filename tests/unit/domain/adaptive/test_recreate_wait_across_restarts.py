"""An instance that falls behind on average is scaled up after its pending period under
Recreate, whatever happens to the metrics or the operator during the wait.

``test_hostile_recreate_lag``'s trace (production alternating 700 and 550 msg/s on a
request that consumes 600: the backlog grows every minute), made worse: the operator
restarted in the middle of the wait (its in-process memory and caches gone), with the
memory annotation kept, gone or garbled by hand. Here every pass refreshes (``minSyncPeriod``
20s), so the operator sees the alternation: ``test_hostile_recreate_lag`` sets no
``minSyncPeriod`` (1m), and with 30 s passes the replay refreshes every third pass only.
(Lag samples missing during the wait: ``test_missing_lag_samples``.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta

import pytest
from support.consumers import ConsumerBuilder

from konsumerator import simulating
from konsumerator.api import manifests
from konsumerator.controllers.reconciling import Pipeline
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot

PASS_S = 30.0
# The operator restarts once, in the middle of the wait (which begins at pass 11).
RESTART_AT = 13
PENDING_UP = timedelta(minutes=2)
CONSUMER = ConsumerBuilder(partitions=1, update_mode="Recreate", rate_per_core=1000, max_cpu="4")


def _replay() -> simulating.Replay:
    """The Consumer with ``minSyncPeriod`` 20s: every 30 s pass refreshes, so the operator
    sees the alternation (with 30s the replay refreshes every other pass and would see
    550 msg/s each time: the alternation aliased away)."""
    doc = CONSUMER.manifest()
    doc["spec"]["autoscaler"]["prometheus"]["minSyncPeriod"] = "20s"
    source, spec = manifests.read(doc)
    return simulating.Replay(source=source, spec=spec)


def _edit_memory(replay: simulating.Replay, edit: Callable[[str], str | None]) -> None:
    name = replay.cluster.observed()[0].name
    body = copy.deepcopy(replay.cluster._bodies[name])
    annotations = body["metadata"]["annotations"]
    edited = edit(annotations.get(keys.SCALING_MEMORY, ""))
    if edited is None:
        annotations.pop(keys.SCALING_MEMORY, None)
    else:
        annotations[keys.SCALING_MEMORY] = edited
    replay.cluster.apply(body)


# Per case: whether the lag sample of pass ``i`` reaches the operator, and what happens
# to the operator before pass ``i`` (``None``: nothing).
Gap = Callable[[int], bool]
Restart = Callable[[int, simulating.Replay], simulating.Replay]


def _every_sample(i: int) -> bool:
    return True


def _no_restart(i: int, replay: simulating.Replay) -> simulating.Replay:
    return replay


def _restarted(edit: Callable[[str], str | None] | None) -> Restart:
    def restart(i: int, replay: simulating.Replay) -> simulating.Replay:
        if i != RESTART_AT:
            return replay
        # A new process: nothing in memory but what the Deployments and status hold.
        if edit is not None:
            _edit_memory(replay, edit)
        certificate.forget_all()
        replay.pipeline = Pipeline(
            deployments=replay.cluster,
            pods=replay.cluster.pods,
            provider=replay.metrics,
            actuator=replay.cluster,
            reporter=simulating.Silent(),
            now=lambda: replay.now,
        )
        return replay

    return restart


CASES: dict[str, tuple[Gap, Restart]] = {
    "no restart": (_every_sample, _no_restart),
    "operator restarted mid-wait": (_every_sample, _restarted(None)),
    "restarted, memory annotation gone": (_every_sample, _restarted(lambda m: None)),
    "restarted, memory annotation garbled": (_every_sample, _restarted(lambda m: "x=y")),
}
# With no memory (or one that reads as nothing) the instance reads as never resized by
# the adaptive predictor: adopted (``adoption``), kept at its size while it keeps up. With
# "keeps up" at lambda*R (30 s) every 550 msg/s pass started the wait again until the
# backlog passed 30 s: scaled up 13 minutes late, 36 s behind.


@pytest.mark.parametrize("case", CASES)
def test_an_instance_falling_behind_is_scaled_up_after_its_pending_period(case: str) -> None:
    sampled, restart = CASES[case]
    replay = _replay()
    behind = 0.0
    pending_from: int | None = None
    scaled_at: int | None = None
    try:
        for i in range(60):
            production = 500.0 if i < 10 else (700.0 if i % 2 else 550.0)
            observed = replay.cluster.observed()
            # A consumer drains at most what its CPU request gives (1 msg/s per millicore).
            capacity = observed[0].current["consumer"].cpu_req_m if observed else 1e9
            consumed = min(production + behind / PASS_S, capacity)
            behind = max(0.0, behind + (production - consumed) * PASS_S)
            if i >= 10:
                replay = restart(i, replay)
            done = replay.step(
                advance_s=PASS_S,
                metrics=MetricsSnapshot(
                    production={0: production},
                    consumption={0: consumed},
                    offset={0: behind} if sampled(i) else {},
                ),
            )
            status = replay.cluster.observed()[0].annotations[keys.SCALING_STATUS]
            if pending_from is None and status == "PENDING_SCALE_UP":
                pending_from = i
            if i >= 10 and any(a.action == "scale" for a in done.plan.applies):
                scaled_at = i
                break
    finally:
        replay.close()
    assert pending_from is not None
    allowed = int(PENDING_UP.total_seconds() / PASS_S) + 2
    assert scaled_at is not None, f"pending from pass {pending_from}, never scaled up"
    assert scaled_at - pending_from <= allowed, (
        f"pending from pass {pending_from}, scaled up at pass {scaled_at}"
        f" ({behind:.0f} messages behind, {behind / 625:.0f} s)"
    )
