"""The hostile replays' hand edits edit something.

``test_hostile_replays`` compares the planner's shortcuts with the rule in full on
timelines that edit the scaling annotations by hand; an edit that leaves the annotation
as it was covers nothing while its name says it does. ``peak-edited`` is meant to change
the remembered peak.
"""

from __future__ import annotations

import test_hostile_replays as hostile
from support.consumers import ConsumerBuilder

from konsumerator.domain import keys
from konsumerator.domain.adaptive import memory
from konsumerator.domain.metrics import MetricsSnapshot


def test_the_peak_edit_of_the_hostile_replays_changes_the_remembered_peak() -> None:
    replay = ConsumerBuilder(partitions=1, rate_per_core=1000, max_cpu="4").replay()
    try:
        for _ in range(3):
            replay.step(
                advance_s=31.0,
                metrics=MetricsSnapshot(
                    production={0: 500.0}, consumption={0: 500.0}, offset={0: 0.0}
                ),
            )
        before = replay.cluster.observed()[0].annotations[keys.SCALING_MEMORY]
        hostile._edit(replay, index=0, edit="peak-edited")
        after = replay.cluster.observed()[0].annotations[keys.SCALING_MEMORY]
    finally:
        replay.close()
    assert memory.decode(before) is not None
    assert memory.decode(after) != memory.decode(before), after
