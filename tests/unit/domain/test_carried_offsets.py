"""A partition's offset sample missing from a refresh is carried from the last one
(``metrics.carry_offsets``), for at most ``CARRY_REFRESHES`` refreshes in a row.

Aspects tested:
- table: what is carried (a produced partition with no offset sample that the last
  snapshot sampled) and what is not (no production, a sample of its own, no previous
  snapshot, a previous with no sample, a partition carried too many times already);
- a snapshot with every offset is returned as it is (no copy);
- property (hypothesis): over any sequence of refreshes, a present sample is never
  replaced, no partition without production gains an offset, a carried value is the
  last real sample of that partition, and no partition is carried more than
  ``CARRY_REFRESHES`` refreshes in a row.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.metrics import CARRY_REFRESHES, MetricsSnapshot, carry_offsets


def snap(
    production: dict[int, float], offset: dict[int, float], carried: dict[int, int] | None = None
) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=production, consumption=production, offset=offset, carried=carried or {}
    )


@pytest.mark.parametrize(
    ("new", "previous", "offset", "carried"),
    [
        # Partition 1 lost its lag series for this scrape: its last sample stands in.
        (snap({0: 5, 1: 5}, {0: 10}), snap({0: 5, 1: 5}, {0: 9, 1: 700}), {0: 10, 1: 700}, {1: 1}),
        # Carried once already: once more, up to the bound.
        (
            snap({1: 5}, {}),
            snap({1: 5}, {1: 700}, carried={1: CARRY_REFRESHES - 1}),
            {1: 700},
            {1: CARRY_REFRESHES},
        ),
        # Carried as often as it may be: missing again.
        (snap({1: 5}, {}), snap({1: 5}, {1: 700}, carried={1: CARRY_REFRESHES}), {}, {}),
        # Nothing produced: nothing is behind without production.
        (snap({0: 5}, {0: 1}), snap({0: 5, 1: 5}, {0: 1, 1: 700}), {0: 1}, {}),
        # A sample of its own is never replaced, zero included.
        (snap({1: 5}, {1: 0}), snap({1: 5}, {1: 700}), {1: 0}, {}),
        # Nothing to carry from.
        (snap({1: 5}, {}), None, {}, {}),
        (snap({1: 5}, {}), snap({1: 5}, {}), {}, {}),
    ],
    ids=["lost", "again", "bound", "unproduced", "own", "no-previous", "previous-missing"],
)
def test_what_is_carried(
    new: MetricsSnapshot,
    previous: MetricsSnapshot | None,
    offset: dict[int, float],
    carried: dict[int, int],
) -> None:
    result = carry_offsets(new=new, previous=previous)
    assert dict(result.offset) == offset
    assert dict(result.carried) == carried
    assert result.production == new.production
    assert result.consumption == new.consumption


def test_a_carried_offset_counts_in_the_lag() -> None:
    result = carry_offsets(new=snap({1: 100}, {}), previous=snap({1: 100}, {1: 6000}))
    assert result.lag[1] == 60


def test_a_complete_snapshot_is_returned_as_it_is() -> None:
    new = snap({0: 5, 1: 5}, {0: 1, 1: 2})
    assert carry_offsets(new=new, previous=snap({0: 5}, {0: 9})) is new


PARTITIONS = st.sampled_from([0, 1, 2])
REFRESH = st.tuples(
    st.dictionaries(PARTITIONS, st.floats(0, 1e6)),  # production
    st.dictionaries(PARTITIONS, st.floats(0, 1e6)),  # offset samples
)


@given(st.lists(REFRESH, min_size=1, max_size=12))
def test_carried_offsets_follow_the_last_real_sample(refreshes: list[tuple[dict, dict]]) -> None:
    previous: MetricsSnapshot | None = None
    last_real: dict[int, float] = {}
    run: dict[int, int] = {}
    for production, offset in refreshes:
        result = carry_offsets(new=snap(production, offset), previous=previous)
        for p, value in offset.items():
            assert result.offset[p] == value
        assert set(result.offset) <= set(offset) | set(production)
        for p in set(result.offset) - set(offset):
            assert result.offset[p] == last_real[p]
        run = {p: run.get(p, 0) + 1 for p in result.carried}
        assert all(n <= CARRY_REFRESHES for n in run.values())
        assert dict(result.carried) == run
        last_real.update(offset)
        previous = result
