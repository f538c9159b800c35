"""``scaling.ScalingState``: ``with_memory`` replaces the memory and the explanation
only, and equality (and the hash) compares every field but the explanation.

Aspects tested: for any state, memory and explanation ``with_memory`` keeps the status
and its time; two states that differ in any one field but the explanation are unequal,
and two that differ in the explanation alone are equal with the same hash (the
explanation is no reason to write the Deployment); the table of changed fields names
every field of ``ScalingState``, so one added to it must be compared (then added here).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.scaling import ScalingState, ScalingStatus, with_memory

T = datetime(2026, 1, 1, tzinfo=UTC)
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


@settings(deadline=None)
@given(_states, _memories, st.text(max_size=20))
def test_with_memory_keeps_the_status_and_its_time(
    state: ScalingState, memory: Memory | None, text: str
) -> None:
    got = with_memory(state, memory=memory, explanation=text)
    assert (got.status, got.since, got.memory, got.explanation) == (
        state.status,
        state.since,
        memory,
        text,
    )


# Each field but the explanation, and a value other than ``_BASE``'s.
_CHANGED: dict[str, Any] = {
    "status": ScalingStatus.PENDING_SCALE_DOWN,
    "since": T + timedelta(seconds=1),
    "memory": Memory(peak_rate=4),
}
_BASE = ScalingState(
    status=ScalingStatus.RUNNING, since=T, memory=Memory(peak_rate=3), explanation="a"
)


def test_the_table_names_every_field_but_the_explanation() -> None:
    assert set(ScalingState.__struct_fields__) == {*_CHANGED, "explanation"}


@pytest.mark.parametrize("name", sorted(_CHANGED))
def test_states_that_differ_in_one_field_but_the_explanation_are_unequal(name: str) -> None:
    other = msgspec.structs.replace(_BASE, **{name: _CHANGED[name]})
    assert other != _BASE
    assert not other == _BASE  # noqa: SIM201 (``==`` itself, not only ``!=``)


@settings(deadline=None)
@given(_states, st.text(max_size=20))
def test_a_new_explanation_alone_keeps_the_state_equal(state: ScalingState, text: str) -> None:
    other = msgspec.structs.replace(state, explanation=text)
    assert other == state
    assert hash(other) == hash(state)
