"""``scaling.with_memory`` is ``dataclasses.replace`` by the constructor.

Aspects tested: for any state, memory and explanation it gives what ``replace``
gives, every field compared (the explanation too, which equality ignores); it
names every field of ``ScalingState``.
"""

from dataclasses import fields, replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.scaling import ScalingState, ScalingStatus, with_memory

_times = st.none() | st.datetimes(timezones=st.just(UTC))
_memories = st.none() | st.builds(
    Memory, peak_rate=st.integers(0, 10**6), peak_at=_times, resized_at=_times, lent=st.booleans()
)
_states = st.builds(
    ScalingState,
    status=st.sampled_from(ScalingStatus),
    since=_times,
    memory=_memories,
    explanation=st.text(max_size=20),
)


def _every_field(state: ScalingState) -> tuple[object, ...]:
    return tuple(getattr(state, f.name) for f in fields(ScalingState))


@settings(deadline=None)
@given(_states, _memories, st.text(max_size=20))
def test_with_memory_is_replace(state: ScalingState, memory: Memory | None, text: str) -> None:
    want = replace(state, memory=memory, explanation=text)
    assert _every_field(with_memory(state, memory=memory, explanation=text)) == _every_field(want)


def test_with_memory_keeps_the_status_and_its_time() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    state = ScalingState(status=ScalingStatus.PENDING_SCALE_UP, since=since, explanation="a")
    got = with_memory(state, memory=Memory(peak_rate=3), explanation="b")
    assert (got.status, got.since, got.memory, got.explanation) == (
        ScalingStatus.PENDING_SCALE_UP,
        since,
        Memory(peak_rate=3),
        "b",
    )


def test_with_memory_names_every_field_of_the_state() -> None:
    # A field added to ScalingState must be passed on by with_memory too (then
    # added here): the property test above draws states with its default only.
    assert [f.name for f in fields(ScalingState)] == ["status", "since", "memory", "explanation"]
