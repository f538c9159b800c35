"""The memory codec's shortcuts give what the full codec gives.

Aspects tested: ``as_written`` (a memory the annotation already holds is its
own answer, any other goes through the codec) equals ``decode(encode(m))``
field for field, types and time zones included, and each condition of that
shortcut is needed, for every count; a memory found to read back is not checked
again when asked again (the same object); ``durably_equal`` is
``durable(a) == durable(b)``; both know every field of ``Memory`` (pinned);
``_format_time`` renders what ``strftime`` rendered.
"""

import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.adaptive.memory import (
    _MAX_RATE,
    Memory,
    _format_time,
    as_written,
    decode,
    durable,
    durably_equal,
    encode,
)

T = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


class _Moment(datetime):
    """A datetime subclass: not what the parser gives back."""


def _exact(memory: Memory) -> tuple[Any, ...]:
    """Every field with its type, and every time with its zone and fold: equality
    alone would not tell True from 1 or a UTC time from the same instant in +02:00."""
    out: list[Any] = []
    for name in Memory.__struct_fields__:
        value = getattr(memory, name)
        out.append((name, type(value), value))
        if isinstance(value, datetime):
            out.append((value.tzinfo, value.fold, value.microsecond))
    return tuple(out)


def _codec(memory: Memory) -> Memory:
    written = decode(encode(memory))
    assert written is not None
    return written


_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)), None]
)
_times = st.none() | st.builds(
    lambda moment, zone, fold: moment.replace(tzinfo=zone or UTC, fold=fold),
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    _zones,
    st.sampled_from([0, 0, 1]),
)
_counts = st.integers(min_value=-5, max_value=2**64) | st.integers(0, 10**6) | st.just(True)
# Plain ints too: the annotation cannot tell them from the booleans they equal.
_flags: st.SearchStrategy[Any] = st.booleans() | st.sampled_from([0, 1])


@st.composite
def _memories(draw: st.DrawFn) -> Memory:
    """Every field drawn by its kind (times, flags, counts): a field added to
    ``Memory`` is drawn too."""
    return Memory(**{name: draw(_kind(name)) for name in Memory.__struct_fields__})


def _kind(name: str) -> st.SearchStrategy[Any]:
    default = getattr(Memory(), name)
    if name.endswith("_at"):
        return _times
    return _flags if isinstance(default, bool) else _counts


def test_the_shortcuts_know_every_field_of_the_memory() -> None:
    # ``as_written``'s check (``_reads_back``) and ``durably_equal`` name every
    # field: one added to Memory must be added to both (then here).
    assert Memory.__struct_fields__ == (
        "peak_rate",
        "peak_at",
        "resized_at",
        "previous_peak",
        "throughput_before",
        "cpu_before_m",
        "limit_before_m",
        "ineffective",
        "short_need",
        "for_backlog",
        "up_need",
        "lent",
        "quiet_from_m",
    )


@settings(deadline=None, max_examples=400)
@given(_memories())
def test_as_written_is_the_round_trip_through_the_codec(memory: Memory) -> None:
    assert _exact(as_written(memory)) == _exact(_codec(memory))


@settings(deadline=None, max_examples=400)
@given(_memories())
def test_as_written_of_what_was_read_back_is_itself(memory: Memory) -> None:
    once = as_written(memory)
    assert as_written(once) is once


def test_as_written_keeps_no_memory_alive() -> None:
    # A cache of the memories that read back held each instance's memories of several
    # passes (65,536 of them) alive at 10,000 Deployments. A memory is not tracked by the
    # garbage collector (no containers): what holds it shows in its reference count.
    memory = Memory(peak_rate=7, peak_at=T, resized_at=T)
    before = sys.getrefcount(memory)
    assert as_written(memory) is memory
    assert sys.getrefcount(memory) == before


@pytest.mark.parametrize(
    ("memory", "check"),
    [
        # Each row breaks one condition of the shortcut: the codec's answer differs.
        (Memory(resized_at=T.replace(microsecond=5)), lambda m: m.resized_at.microsecond == 0),
        (
            Memory(resized_at=T.astimezone(timezone(timedelta(hours=2)))),
            lambda m: m.resized_at.tzinfo is UTC,
        ),
        (Memory(resized_at=T.replace(fold=1)), lambda m: m.resized_at.fold == 0),
        (Memory(resized_at=T.replace(year=999)), lambda m: m.resized_at is None),
        (
            Memory(resized_at=_Moment(2026, 1, 1, 12, 0, 5, tzinfo=UTC)),
            lambda m: type(m.resized_at) is datetime,
        ),
        (Memory(peak_rate=5, previous_peak=3), lambda m: m.peak_rate == m.previous_peak == 0),
        (Memory(throughput_before=-1), lambda m: m.throughput_before == 0),
        (Memory(up_need=2**63), lambda m: m.up_need == _MAX_RATE),
        (Memory(cpu_before_m=True), lambda m: m.cpu_before_m == 0),
        (Memory(lent=1), lambda m: m.lent is True),  # type: ignore[arg-type]
    ],
)
def test_a_memory_the_annotation_would_change_goes_through_the_codec(
    memory: Memory, check: Any
) -> None:
    assert check(as_written(memory))
    assert _exact(as_written(memory)) == _exact(_codec(memory))


@st.composite
def _memory_pairs(draw: st.DrawFn) -> tuple[Memory | None, Memory | None]:
    first = draw(st.none() | _memories())
    if first is None or draw(st.booleans()):
        return first, draw(st.none() | _memories())
    # Mostly the same memory with one field changed: the interesting comparisons.
    name = draw(st.sampled_from(Memory.__struct_fields__))
    value = draw(_kind(name))
    return first, Memory(
        **{**{n: getattr(first, n) for n in Memory.__struct_fields__}, name: value}
    )


@settings(deadline=None, max_examples=400)
@given(_memory_pairs())
def test_durably_equal_is_the_comparison_of_the_durable_parts(
    pair: tuple[Memory | None, Memory | None],
) -> None:
    a, b = pair
    assert durably_equal(a, b) == (durable(a) == durable(b))
    assert durably_equal(a, a) == (durable(a) == durable(a))


def test_durably_equal_tells_every_durable_field_and_ignores_the_peak() -> None:
    base = Memory(peak_rate=3, peak_at=T, previous_peak=2, resized_at=T)
    assert durably_equal(base, Memory(resized_at=T))
    assert durably_equal(None, None)
    assert not durably_equal(base, None)
    assert not durably_equal(None, base)
    changed: dict[str, Any] = {
        "resized_at": T + timedelta(seconds=1),
        "throughput_before": 1,
        "cpu_before_m": 1,
        "limit_before_m": 1,
        "ineffective": True,
        "short_need": 1,
        "for_backlog": True,
        "up_need": 1,
        "lent": True,
        "quiet_from_m": 1,
    }
    for name, value in changed.items():
        other = Memory(**{**{n: getattr(base, n) for n in Memory.__struct_fields__}, name: value})
        assert not durably_equal(base, other), name


@settings(deadline=None, max_examples=400)
@given(_times.filter(lambda t: t is not None))
def test_times_are_formatted_as_strftime_formatted_them(moment: datetime) -> None:
    want = moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _format_time(moment) == want


def test_a_year_before_1000_keeps_strftime_s_rendering() -> None:
    moment = datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert _format_time(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_COUNTS = [n for n in Memory.__struct_fields__ if type(getattr(Memory(), n)) is int]


@pytest.mark.parametrize("name", _COUNTS)
@pytest.mark.parametrize("value", [-1, 2**63, True])
def test_every_count_the_annotation_would_change_goes_through_the_codec(
    name: str, value: int
) -> None:
    # With its time, so that the peak's counts are not dropped for lack of one.
    fields: dict[str, Any] = {"peak_at": T, name: value}
    memory = Memory(**fields)
    assert _exact(as_written(memory)) == _exact(_codec(memory))
