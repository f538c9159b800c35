"""A time in the future on a Deployment does not hold back a needed scale-up.

The scaling annotations carry wall-clock times: ``resizedAt`` in ``scaling-memory`` and
``scaling-status-change``. One can be ahead of the operator's clock: a replica whose clock
ran ahead wrote it before a failover, the operator's own clock stepped back (NTP), or
someone edited it by hand. The Prometheus cache already treats a ``synced_at`` in the
future as stale for that reason (``prom.providing``: "otherwise a bad timestamp could
freeze a Consumer's metrics until the clock caught up"); a scaling time in the future
must not freeze the instance's size either.

The trace: one partition at 500 msg/s for ten passes (the instance is created and
sized), then 1500 msg/s (a backlog growing by 1,000 msg/s: ``urgent`` at once) or 650
msg/s (a slow rise: a scale-up after ``pendingScaleUpDuration``), with the consumer
draining what its CPU request gives (1 msg/s per millicore). At the edit pass a time a
day ahead is written into the annotation.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from support.consumers import ConsumerBuilder
from support.replays import OnePartition

from konsumerator import simulating
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot

PASS_S = 30.0
PENDING_UP = timedelta(minutes=2)
AHEAD = timedelta(days=1)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _resized_ahead(replay: simulating.Replay, text: str | None) -> str | None:
    ahead = f"resizedAt={_stamp(replay.now + AHEAD)}"
    assert text is not None
    assert "resizedAt=" in text
    return re.sub(r"resizedAt=[^,]*", ahead, text)


def _status_change_ahead(replay: simulating.Replay, text: str | None) -> str | None:
    return _stamp(replay.now + AHEAD)


Edit = Callable[[simulating.Replay, str | None], str | None]
EDITS: dict[str, tuple[str, Edit]] = {
    "resizedAt a day ahead": (keys.SCALING_MEMORY, _resized_ahead),
    "scaling-status-change a day ahead": (keys.SCALING_STATUS_CHANGE, _status_change_ahead),
}


def _edit(replay: simulating.Replay, *, key: str, edit: Edit) -> None:
    name = replay.cluster.observed()[0].name
    body = copy.deepcopy(replay.cluster._bodies[name])
    annotations = body["metadata"]["annotations"]
    edited = edit(replay, annotations.get(key))
    if edited is None:
        annotations.pop(key, None)
    else:
        annotations[key] = edited
    replay.cluster.apply(body)


def _scaled_up_at(
    *, update_mode: str, production: float, edit_at: int, edit: str | None
) -> tuple[int | None, float]:
    """The pass whose plan raised the CPU request, and the backlog then (seconds)."""
    certificate.forget_all()
    replay = ConsumerBuilder(
        partitions=1,
        update_mode=update_mode,  # type: ignore[arg-type]
        rate_per_core=1000,
        max_cpu="4",
    ).replay()
    loop = OnePartition(replay, pass_s=PASS_S)
    sized_m = 0
    try:
        for i in range(60):
            rate = 500.0 if i < 10 else production
            if i == 10:
                sized_m = int(loop.cpu_m() or 0)
            if edit is not None and i == edit_at:
                key, change = EDITS[edit]
                _edit(replay, key=key, edit=change)
            loop.step(rate)
            if i >= 10 and (loop.cpu_m() or 0) > sized_m:
                return i, loop.behind / rate
    finally:
        replay.close()
        certificate.forget_all()
    return None, loop.behind / production


@pytest.mark.parametrize("update_mode", ["Recreate", "InPlaceOrRecreate"])
@pytest.mark.parametrize(
    ("edit", "production", "edit_at"),
    [
        # The urgent case: lag 15 minutes behind and climbing, past criticalLag (10m).
        ("resizedAt a day ahead", 1500.0, 10),
        ("resizedAt a day ahead", 650.0, 10),
        ("scaling-status-change a day ahead", 1500.0, 10),
        # In the middle of a pending wait (it began at pass 10).
        ("resizedAt a day ahead", 650.0, 12),
        ("scaling-status-change a day ahead", 650.0, 12),
    ],
)
def test_a_scaling_time_ahead_of_the_clock_does_not_delay_a_needed_scale_up(
    update_mode: str, edit: str, production: float, edit_at: int
) -> None:
    base, _ = _scaled_up_at(update_mode=update_mode, production=production, edit_at=0, edit=None)
    got, behind_s = _scaled_up_at(
        update_mode=update_mode, production=production, edit_at=edit_at, edit=edit
    )
    assert base is not None
    allowed = base + int(PENDING_UP.total_seconds() / PASS_S)
    assert got is not None, f"never scaled up (without the edit: at pass {base})"
    assert got <= allowed, (
        f"scaled up at pass {got} (without the edit: {base}), {behind_s:.0f} s behind"
    )


@pytest.mark.parametrize("update_mode", ["Recreate", "InPlaceOrRecreate"])
def test_a_peak_stamped_ahead_of_the_clock_is_not_held_past_its_window(update_mode: str) -> None:
    """1500 msg/s for ten passes, then 500: scaled down after ``pendingScaleDownDuration``
    (10m) whether or not the memory's ``peakAt`` was put a day ahead at pass 12."""
    certificate.forget_all()
    replay = ConsumerBuilder(
        partitions=1,
        update_mode=update_mode,  # type: ignore[arg-type]
        rate_per_core=1000,
        max_cpu="4",
    ).replay()
    top_m = 0
    down_at: int | None = None
    try:
        for i in range(60):
            rate = 1500.0 if i < 10 else 500.0
            if i == 12:
                _edit(
                    replay,
                    key=keys.SCALING_MEMORY,
                    edit=lambda r, text: re.sub(
                        r"peakAt=[^,]*", f"peakAt={_stamp(r.now + AHEAD)}", text or ""
                    ),
                )
            replay.step(
                advance_s=PASS_S,
                metrics=MetricsSnapshot(
                    production={0: rate}, consumption={0: rate}, offset={0: 0.0}
                ),
            )
            cpu_m = replay.cluster.observed()[0].current["consumer"].cpu_req_m
            if i == 9:
                top_m = int(cpu_m)
            if i > 10 and cpu_m < top_m:
                down_at = i
                break
    finally:
        replay.close()
        certificate.forget_all()
    # Without the edit: scaled down at pass 32 (both modes).
    assert down_at is not None, "the day-ahead peak held the size for the whole replay"
