"""An instance that falls behind on average is scaled up after its pending period under
Recreate, even when every other pass alone would not ask for more, and whatever happens
to the operator during the wait.

Production alternates 700 and 550 msg/s every pass (625 on average) on a request that
consumes 600: the backlog grows every minute. What failed on it:

* a rule that starts the pending period again whenever the need of one pass alone fits
  the current size (as ``spike`` does in place, where a resize restarts nothing): a
  version of ``spike`` under Recreate scaled it up 15 minutes after it began to wait,
  46 s behind, with a scaling-status write at every reset;
* the operator restarted in the middle of the wait with the memory annotation gone or
  garbled by hand: the instance read as never resized by the adaptive predictor,
  adopted (``adoption``), and with "keeps up" at λ·R (30 s) every 550 msg/s pass started
  the wait again until the backlog passed 30 s: scaled up 13 minutes late, 36 s behind.

With ``minSyncPeriod`` 20s every 30 s pass refreshes, so the operator sees the
alternation; with the default (30s) the replay refreshes every other pass and sees
550 msg/s each time, the alternation aliased away: both are played. (Lag samples missing
during the wait: ``test_missing_lag_samples``.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta

import pytest
from support.consumers import ConsumerBuilder
from support.replays import OnePartition, restart_operator

from konsumerator import simulating
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate

PASS_S = 30.0
# The operator restarts once, in the middle of the wait (which begins at pass 11).
RESTART_AT = 13
PENDING_UP = timedelta(minutes=2)

Edit = Callable[[str], str | None]


def _edit_memory(replay: simulating.Replay, edit: Edit) -> None:
    name = replay.cluster.observed()[0].name
    body = copy.deepcopy(replay.cluster._bodies[name])
    annotations = body["metadata"]["annotations"]
    edited = edit(annotations.get(keys.SCALING_MEMORY, ""))
    if edited is None:
        annotations.pop(keys.SCALING_MEMORY, None)
    else:
        annotations[keys.SCALING_MEMORY] = edited
    replay.cluster.apply(body)


def _restart(replay: simulating.Replay, edit: Edit | None) -> None:
    """A new process: nothing in memory but what the Deployments and status hold."""
    if edit is not None:
        _edit_memory(replay, edit)
    restart_operator(replay)


NO_RESTART = "no restart"
# Per case: minSyncPeriod, and the edit of the memory annotation with the restart
# (``NO_RESTART``: none; None: a restart that leaves the annotation as it is).
CASES: dict[str, tuple[str | None, Edit | str | None]] = {
    "default minSyncPeriod": (None, NO_RESTART),
    "every pass refreshes": ("20s", NO_RESTART),
    "operator restarted mid-wait": ("20s", None),
    "restarted, memory annotation gone": ("20s", lambda m: None),
    "restarted, memory annotation garbled": ("20s", lambda m: "x=y"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_instance_falling_behind_is_scaled_up_after_its_pending_period(case: str) -> None:
    min_sync, edit = CASES[case]
    replay = ConsumerBuilder(
        partitions=1, rate_per_core=1000, max_cpu="4", max_memory="1Gi", min_sync=min_sync
    ).replay()
    loop = OnePartition(replay, pass_s=PASS_S)
    pending_from: int | None = None
    scaled_at: int | None = None
    try:
        for i in range(60):
            if i == RESTART_AT and edit != NO_RESTART:
                _restart(replay, edit if callable(edit) else None)
            done = loop.step(500.0 if i < 10 else (700.0 if i % 2 else 550.0))
            status = replay.cluster.observed()[0].annotations[keys.SCALING_STATUS]
            if pending_from is None and status == "PENDING_SCALE_UP":
                pending_from = i
            if i >= 10 and any(a.action == "scale" for a in done.plan.applies):
                scaled_at = i
                break
    finally:
        replay.close()
        certificate.forget_all()
    assert pending_from is not None
    # The pending period, and two passes for the sync and the one that applies it.
    allowed = int(PENDING_UP.total_seconds() / PASS_S) + 2
    assert scaled_at is not None, f"pending from pass {pending_from}, never scaled up"
    assert scaled_at - pending_from <= allowed, (
        f"pending from pass {pending_from}, scaled up at pass {scaled_at}"
        f" ({loop.behind:.0f} messages behind, {loop.behind / 625:.0f} s)"
    )
