"""The adaptive policy's memory codec (the ``scaling-memory`` annotation).

Aspects tested: a round trip keeps every field (to the second); whatever
someone wrote into the annotation decodes without an exception, an
unreadable field reading as absent; no annotation is no memory.
"""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive.memory import Memory, decode, encode

T = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "memory",
    [
        Memory(),
        Memory(peak_rate=1234, peak_at=T),
        Memory(peak_rate=7, peak_at=T, resized_at=T),
        Memory(resized_at=T),
        Memory(resized_at=T, for_backlog=True, up_need=6667),
        Memory(resized_at=T, lent=True),
        Memory(resized_at=T, cpu_before_m=2800, quiet_from_m=1100),
    ],
)
def test_a_round_trip_keeps_every_field(memory: Memory) -> None:
    assert decode(encode(memory)) == memory


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", Memory()),
        ("peak=12", Memory()),  # a peak without its time is no peak
        ("peak=x,peakAt=2026-01-01T12:00:05Z", Memory(peak_at=T)),
        ("peak=5,peakAt=yesterday,resizedAt=2026-01-01T12:00:05Z", Memory(resized_at=T)),
        ("peak=-3,peakAt=2026-01-01T12:00:05Z", Memory(peak_at=T)),
        ("shortNeed=1e3,resizedAt=2026-01-01T12:00:05Z", Memory(resized_at=T)),
        ("resizedAt=2026-01-01T12:00:05Z,resizedAt=1999-01-01T00:00:00Z", Memory(resized_at=T)),
    ],
)
def test_unreadable_fields_read_as_absent(text: str, want: Memory) -> None:
    assert decode(text) == want


def test_no_annotation_is_no_memory() -> None:
    assert decode(None) is None


@given(st.text(max_size=200))
def test_any_text_decodes(text: str) -> None:
    assert isinstance(decode(text), Memory)


def test_the_previous_peak_and_the_last_scale_up_round_trip() -> None:
    memory = Memory(
        peak_rate=5,
        peak_at=T,
        previous_peak=9,
        throughput_before=700,
        cpu_before_m=1200,
        limit_before_m=2000,
        ineffective=True,
        short_need=2300,
        for_backlog=True,
        up_need=4100,
        lent=True,
        quiet_from_m=1100,
    )
    assert "upNeed=4100" in encode(memory)
    assert "quietFrom=1100" in encode(memory)
    assert "limitBefore=2000" in encode(memory)
    assert "previous=9" in encode(memory)
    assert "shortNeed=2300" in encode(memory)
    assert decode(encode(memory)) == memory
