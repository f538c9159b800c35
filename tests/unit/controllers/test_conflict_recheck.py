"""When a Consumer with a name conflict is looked at again.

Aspects tested (``ConflictRecheck`` alone, jitter from a seeded generator):
- while a conflict lasts, the delay doubles from ``BASE_S`` and never exceeds ``CAP_S``
  (no hot loop, no wait beyond the cap);
- a planned pass (the next metrics refresh) that is sooner wins;
- a pass without a conflict keeps the planned delay and starts the doubling over;
- keys are independent, and a forgotten key starts over.
"""

from __future__ import annotations

import random

import pytest

from konsumerator.controllers import rechecking
from konsumerator.controllers.rechecking import ConflictRecheck


def _recheck() -> ConflictRecheck:
    return ConflictRecheck(rng=random.Random(7))


def test_a_lasting_conflict_is_rechecked_with_a_doubling_delay_up_to_the_cap() -> None:
    recheck = _recheck()
    delays = [recheck.requeue_after(key="a", conflicted=True, planned=None) for _ in range(12)]
    assert all(d is not None for d in delays)
    for n, d in enumerate(delays):
        low = min(rechecking.BASE_S * 2**n, rechecking.CAP_S)
        assert d is not None
        assert low <= d <= min(low * 1.1, rechecking.CAP_S)
    assert delays[-1] == pytest.approx(rechecking.CAP_S)


@pytest.mark.parametrize(
    ("planned", "expected_at_most"),
    [(0.5, 0.5), (30.0, rechecking.BASE_S * 1.1)],
    ids=["the planned pass is sooner", "the recheck is sooner"],
)
def test_the_sooner_of_the_planned_pass_and_the_recheck_wins(
    planned: float, expected_at_most: float
) -> None:
    delay = _recheck().requeue_after(key="a", conflicted=True, planned=planned)
    assert delay is not None
    assert delay <= expected_at_most


def test_a_pass_without_a_conflict_keeps_its_plan_and_starts_the_doubling_over() -> None:
    recheck = _recheck()
    for _ in range(5):
        recheck.requeue_after(key="a", conflicted=True, planned=None)
    assert recheck.requeue_after(key="a", conflicted=False, planned=None) is None
    assert recheck.requeue_after(key="a", conflicted=False, planned=42.0) == 42.0
    delay = recheck.requeue_after(key="a", conflicted=True, planned=None)
    assert delay is not None
    assert delay <= rechecking.BASE_S * 1.1


def test_keys_are_independent_and_a_forgotten_key_starts_over() -> None:
    recheck = _recheck()
    for _ in range(5):
        recheck.requeue_after(key="a", conflicted=True, planned=None)
    other = recheck.requeue_after(key="b", conflicted=True, planned=None)
    assert other is not None
    assert other <= rechecking.BASE_S * 1.1
    recheck.forget("a")
    again = recheck.requeue_after(key="a", conflicted=True, planned=None)
    assert again is not None
    assert again <= rechecking.BASE_S * 1.1
