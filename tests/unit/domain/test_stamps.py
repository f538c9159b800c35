"""Reading the times a Deployment carries against the operator's clock (``domain.stamps``).

Aspects tested:

* table: a time in the past reads as its age; one at most ``SKEW_S`` ahead as now (0);
  one further ahead, or none, as infinitely long ago;
* property: an age is never negative, and a time further in the past is never younger
  (but for the jump to "unknown" beyond ``SKEW_S`` ahead).
"""

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.stamps import SKEW_S, age_s, ahead

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)

AGES = [
    (None, math.inf),
    (NOW, 0.0),
    (NOW - timedelta(seconds=90), 90.0),
    (NOW - timedelta(days=3), 3 * 86400.0),
    (NOW + timedelta(seconds=1), 0.0),  # a failover to a replica one second behind
    (NOW + timedelta(seconds=SKEW_S), 0.0),
    (NOW + timedelta(seconds=SKEW_S + 1), math.inf),
    (NOW + timedelta(days=1), math.inf),  # a hand edit, a clock stepped back
]


@pytest.mark.parametrize(("moment", "age"), AGES)
def test_a_written_time_reads_as_its_age_and_one_far_ahead_as_unknown(
    moment: datetime | None, age: float
) -> None:
    assert age_s(moment, now=NOW) == age
    # Exactly the times that cannot be measured from, but for a missing one.
    assert ahead(moment, now=NOW) is (moment is not None and age == math.inf)


@given(
    a=st.floats(min_value=-1e7, max_value=SKEW_S),
    b=st.floats(min_value=-1e7, max_value=SKEW_S),
)
def test_an_age_is_never_negative_and_older_times_are_never_younger(a: float, b: float) -> None:
    """``a`` and ``b``: seconds ahead of the clock (negative: in the past)."""
    older, newer = sorted((a, b))
    age_older = age_s(NOW + timedelta(seconds=older), now=NOW)
    age_newer = age_s(NOW + timedelta(seconds=newer), now=NOW)
    assert age_older >= age_newer >= 0.0
