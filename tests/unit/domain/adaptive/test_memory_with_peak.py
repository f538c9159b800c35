"""A rotation or rise of the recent peak (``policy.hold_peak``, through
``Memory.with_peak``) changes the peak's three fields and keeps every other field of
the memory, whatever fields ``Memory`` gains: a field forgotten in ``with_peak`` would be
reset at every rotation.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.adaptive import policy
from konsumerator.domain.adaptive.memory import (
    Memory,
    as_written,
    decode,
    encode,
    time_reads_back,
)

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
    )
    # Every field set away from its default, whatever fields the branches add.
    for f in msgspec.structs.fields(Memory):
        if getattr(memory, f.name) == f.default:
            assert f.type is int, f"set {f.name} in this test"
            extra: dict[str, Any] = {f.name: 41}
            memory = msgspec.structs.replace(memory, **extra)
    for now, need in ((T + timedelta(seconds=1), 500.0), (T + timedelta(hours=2), 100.0)):
        _, kept = policy.hold_peak(need=need, memory=memory, now=now, window_s=600.0)
        expected = msgspec.structs.replace(
            memory,
            peak_rate=kept.peak_rate,
            peak_at=kept.peak_at,
            previous_peak=kept.previous_peak,
        )
        assert kept == expected


_WHOLE = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31)).map(
    lambda t: t.replace(microsecond=0, tzinfo=UTC, fold=0)
)
_NEEDS = st.floats(min_value=0.0, allow_nan=False) | st.sampled_from([0.0, 2.0**62, 2.0**64])


@st.composite
def _read_back(draw: st.DrawFn) -> Memory:
    """A memory as an annotation gives it back (what a hold is made of)."""
    counts = st.integers(0, 2**63)
    memory = Memory(
        peak_rate=draw(counts),
        peak_at=draw(st.none() | _WHOLE),
        resized_at=draw(st.none() | _WHOLE),
        previous_peak=draw(counts),
        throughput_before=draw(counts),
        cpu_before_m=draw(counts),
        limit_before_m=draw(counts),
        ineffective=draw(st.booleans()),
        short_need=draw(counts),
        for_backlog=draw(st.booleans()),
        up_need=draw(counts),
        lent=draw(st.booleans()),
        quiet_from_m=draw(counts),
    )
    written = decode(encode(memory))
    assert written is not None
    return written


@settings(deadline=None, max_examples=400)
@given(
    memory=_read_back(),
    need=_NEEDS,
    now=_WHOLE,
    window_s=st.sampled_from([1.0, 120.0, 600.0]),
)
def test_the_held_peak_of_a_memory_that_reads_back_reads_back_at_a_whole_second(
    memory: Memory, need: float, now: datetime, window_s: float
) -> None:
    # ``rules.held`` remembers it without the codec's check when the hold vouches for
    # ``memory`` (``certificate.Hold.vouches``): its other fields are ``memory``'s own.
    assert as_written(memory) is memory
    assert time_reads_back(now)  # what ``rules.held`` asks of the time first
    _, kept = policy.hold_peak(need=need, memory=memory, now=now, window_s=window_s)
    assert as_written(kept) is kept
    for name in Memory.__struct_fields__:
        if name not in ("peak_rate", "peak_at", "previous_peak"):
            assert getattr(kept, name) is getattr(memory, name), name
