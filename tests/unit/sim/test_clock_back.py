"""The replay's Prometheus refreshes after the clock steps back, as the operator's does.

``prom.providing`` treats a snapshot synced in the future (a clock stepped back) as
stale, so the operator asks Prometheus at its next pass; otherwise a bad timestamp
"could freeze a Consumer's metrics until the clock caught up". ``simulating.Replay``
stands for the operator in the replay tests, several of which step the clock back
(``test_hostile_replays``: -31 s, -700 s): its metrics must not freeze either, or those
tests replay an operator that does not exist.
"""

from datetime import UTC, datetime, timedelta

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.domain.metrics import MetricsSnapshot, refresh_due

NOW = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("synced_s_ago", "due"),
    [
        (None, True),
        (0.0, False),
        (30.0, False),  # exactly minSyncPeriod: not yet (Go's rule, strictly older)
        (30.5, True),
        (-0.5, True),  # synced in the future: a clock stepped back
        (-3600.0, True),
    ],
)
def test_metrics_are_due_when_older_than_the_period_or_from_the_future(
    synced_s_ago: float | None, due: bool
) -> None:
    synced_at = None if synced_s_ago is None else NOW - timedelta(seconds=synced_s_ago)
    assert refresh_due(synced_at=synced_at, now=NOW, min_sync_period_s=30.0) is due


def _snapshot(rate: float) -> MetricsSnapshot:
    return MetricsSnapshot(production={0: rate}, consumption={0: rate}, offset={0: 0.0})


def test_a_pass_after_the_clock_stepped_back_refreshes_metrics() -> None:
    replay = ConsumerBuilder(partitions=1, rate_per_core=1000, max_cpu="4").replay()
    try:
        replay.step(advance_s=31.0, metrics=_snapshot(500.0))
        replay.step(advance_s=-300.0, metrics=_snapshot(900.0))
        assert replay.metrics.synced_at == replay.now
        assert replay.status.last_sync_state is not None
        assert replay.status.last_sync_state["0"]["productionRate"] == 900
    finally:
        replay.close()
