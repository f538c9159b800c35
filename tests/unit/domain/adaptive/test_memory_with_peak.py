"""A rotation or rise of the recent peak (``policy.hold_peak``, through
``Memory.with_peak``, which builds the memory field by field for speed) changes the
peak's three fields and keeps every other field of the memory, whatever fields
``Memory`` gains: a field forgotten in ``with_peak`` would be reset at every rotation.
"""

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from konsumerator.domain.adaptive import policy
from konsumerator.domain.adaptive.memory import Memory

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_rotation_or_rise_of_the_peak_keeps_every_other_field_of_the_memory() -> None:
    memory = Memory(
        peak_rate=100,
        peak_at=T,
        previous_peak=90,
        resized_at=T - timedelta(hours=1),
        throughput_before=80,
        cpu_before_m=300,
        limit_before_m=600,
        ineffective=True,
        short_need=70,
        for_backlog=True,
        up_need=60,
        lent=True,
        quiet_from_m=200,
        pending_low=50,
    )
    # Every field set away from its default, whatever fields the branches add.
    for f in dataclasses.fields(Memory):
        if getattr(memory, f.name) == f.default:
            assert f.type in ("int", int), f"set {f.name} in this test"
            extra: dict[str, Any] = {f.name: 41}
            memory = dataclasses.replace(memory, **extra)
    for now, need in ((T + timedelta(seconds=1), 500.0), (T + timedelta(hours=2), 100.0)):
        _, kept = policy.hold_peak(need=need, memory=memory, now=now, window_s=600.0)
        expected = dataclasses.replace(
            memory,
            peak_rate=kept.peak_rate,
            peak_at=kept.peak_at,
            previous_peak=kept.previous_peak,
        )
        assert kept == expected
