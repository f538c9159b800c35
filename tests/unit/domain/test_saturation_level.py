"""When ``cpu-saturation-level`` is rewritten (``rules.level_moved``).

The level a SATURATED instance lacks follows its production, which moves by a few
msg/s at every metrics refresh: it is rewritten only when it appears, goes, or moves
by at least one resource step (100m) and a tenth of the level written.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.rules import LEVEL_STEP_M, level_moved


@pytest.mark.parametrize(
    ("written", "reported", "moved"),
    [
        (0, 0, False),  # not saturated, nothing written
        (0, 50, True),  # 0 -> x: the annotation appears, however small
        (0, 1600, True),
        (1600, 0, True),  # x -> 0 on leaving SATURATED: the annotation goes
        (50, 0, True),
        (1600, 1600, False),  # unchanged
        (1600, 1606, False),  # tiny jitter (+-5 msg/s of production)
        (1600, 1594, False),
        (1600, 1759, False),  # growth below a tenth of 1600 (160m)
        (1600, 1760, True),  # growth of a tenth
        (1600, 1440, True),  # shrink of a tenth
        (1600, 1441, False),
        (300, 399, False),  # small levels: one resource step, not a tenth
        (300, 400, True),
        (300, 200, True),  # shrink by one step
        (20000, 21999, False),  # large levels: a tenth, not one step
        (20000, 22000, True),
        (20000, 18000, True),
    ],
)
def test_the_level_is_rewritten_only_on_a_meaningful_move(written, reported, moved):
    assert level_moved(written=written, reported=reported) is moved


levels = st.integers(min_value=0, max_value=10**9)


@given(written=levels, reported=levels)
def test_level_moved_is_the_band(written, reported):
    moved = level_moved(written=written, reported=reported)
    if written == reported:
        assert not moved
    elif 0 in (written, reported):
        assert moved
    else:
        delta = abs(reported - written)
        assert moved == (delta >= LEVEL_STEP_M and delta >= written / 10)


@given(written=st.integers(min_value=1, max_value=10**9), jitter=st.integers(-99, 99))
def test_less_than_a_resource_step_never_rewrites_a_written_level(written, jitter):
    reported = written + jitter
    if reported > 0:
        assert not level_moved(written=written, reported=reported)


@given(written=levels, reported=levels)
def test_what_the_band_keeps_stays_within_it_of_the_exact_figure(written, reported):
    """A level kept (not rewritten) is never further from the exact figure than
    max(one step, a tenth of it): what the annotation and the gauge show."""
    if not level_moved(written=written, reported=reported):
        assert abs(reported - written) < max(LEVEL_STEP_M, written / 10 + 1)
