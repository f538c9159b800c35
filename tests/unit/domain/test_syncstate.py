"""The metrics-snapshot codec (``domain.syncstate``) and its per-Consumer cache.

Aspects tested: a snapshot of whole, non-negative values survives the round
trip through ``lastSyncState`` (zeros are absent values, as in the Go
operator's format); a state over its byte budget is not built, and one under it is
never left out (the bounds that spare measuring most states hold: of any state of
n partitions, and of any whose values are no wider than its widest); the cache
encodes a snapshot once and encodes again for a new snapshot, another
partition count or another budget.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.syncstate import (
    MIN_ENTRY_BYTES,
    SyncStates,
    _int64,
    _largest_size,
    _size_bound,
    _widest,
    snapshot_from_state,
    state_size,
    sync_state,
)

values = st.dictionaries(
    st.integers(min_value=0, max_value=19), st.integers(min_value=1, max_value=2**53), max_size=20
)


@given(production=values, consumption=values, offset=values)
def test_a_snapshot_survives_the_round_trip_through_last_sync_state(
    production: dict[int, int], consumption: dict[int, int], offset: dict[int, int]
) -> None:
    snapshot = MetricsSnapshot(
        production={p: float(v) for p, v in production.items()},
        consumption={p: float(v) for p, v in consumption.items()},
        offset={p: float(v) for p, v in offset.items()},
    )
    state = sync_state(snapshot, num_partitions=20)
    assert state is not None
    assert sorted(state, key=int) == [str(p) for p in range(20)]
    decoded = snapshot_from_state(state)
    assert decoded is not None
    assert dict(decoded.production) == dict(snapshot.production)
    assert dict(decoded.consumption) == dict(snapshot.consumption)
    assert dict(decoded.offset) == dict(snapshot.offset)


int64s = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)


@given(
    num_partitions=st.integers(min_value=0, max_value=1200),
    value=st.one_of(int64s, st.sampled_from([0, -(2**63) + 1, 2**63 - 1, 10**18, -1])),
    budget=st.integers(min_value=0, max_value=200_000),
)
def test_the_largest_state_of_n_partitions_bounds_every_state_of_n_partitions(
    num_partitions: int, value: int, budget: int
) -> None:
    """A state is kept without measuring it when even its largest form would fit."""
    snapshot = MetricsSnapshot(
        production=dict.fromkeys(range(num_partitions), float(value)),
        consumption=dict.fromkeys(range(num_partitions), float(-value)),
        offset=dict.fromkeys(range(num_partitions), float(value)),
    )
    measured = {
        str(p): dict.fromkeys(("productionRate", "consumptionRate", "messageBehind"), value)
        for p in range(num_partitions)
    }
    assert state_size(measured) <= _largest_size(num_partitions)
    state = sync_state(snapshot, num_partitions=num_partitions, budget_bytes=budget)
    fits = (
        num_partitions * MIN_ENTRY_BYTES <= budget
        and state_size(sync_state(snapshot, num_partitions=num_partitions, budget_bytes=10**9))
        <= budget
    )
    assert (state is not None) == fits


@given(
    rows=st.lists(st.tuples(int64s, int64s, int64s), min_size=1, max_size=120),
    slack=st.integers(min_value=-400, max_value=400),
)
def test_a_states_widest_value_bounds_its_size_and_it_is_left_out_only_when_over_budget(
    rows: list[tuple[int, int, int]], slack: int
) -> None:
    """A state whose values are all narrow is kept without measuring it; the budgets
    around its exact size tell whether the shortcut ever keeps one that does not fit."""
    measured = {
        str(p): {"productionRate": a, "consumptionRate": b, "messageBehind": c}
        for p, (a, b, c) in enumerate(rows)
    }
    size = state_size(measured)
    assert size <= _size_bound(len(rows), widest=_widest([[r[i] for r in rows] for i in range(3)]))
    snapshot = MetricsSnapshot(
        production={p: float(a) for p, (a, _, _) in enumerate(rows)},
        consumption={p: float(b) for p, (_, b, _) in enumerate(rows)},
        offset={p: float(c) for p, (_, _, c) in enumerate(rows)},
    )
    full = sync_state(snapshot, num_partitions=len(rows), budget_bytes=10**9)
    assert full is not None
    budget = max(state_size(full) + slack, 0)
    state = sync_state(snapshot, num_partitions=len(rows), budget_bytes=budget)
    fits = len(rows) * MIN_ENTRY_BYTES <= budget and state_size(full) <= budget
    assert state == (full if fits else None)


@given(
    value=st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([2.0**62, -(2.0**62), 2.0**63, 2**62, 2**63 - 1]),
    )
)
def test_a_value_becomes_the_int64_its_definition_says(value: float | None) -> None:
    """``_int64``'s shortcut for ordinary values: Go's int64(float), clamped."""
    assert _int64(value) == max(-(2**63) + 1, min(truncate(value), 2**63 - 1))


anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2.0**62, -(2.0**62), 2.0**63, 2**62, 2**63 - 1]),
)


@given(
    production=st.dictionaries(st.integers(0, 5), anything),
    consumption=st.dictionaries(st.integers(0, 5), anything),
    offset=st.dictionaries(st.integers(0, 5), anything),
)
def test_every_value_of_a_state_is_its_int64_and_an_absent_one_0(
    production: dict[int, float], consumption: dict[int, float], offset: dict[int, float]
) -> None:
    """``sync_state`` takes ``_int64``'s common case inline: the same numbers."""
    snapshot = MetricsSnapshot(production=production, consumption=consumption, offset=offset)
    assert sync_state(snapshot, num_partitions=6) == {
        str(p): {
            "productionRate": _int64(production.get(p)),
            "consumptionRate": _int64(consumption.get(p)),
            "messageBehind": _int64(offset.get(p)),
        }
        for p in range(6)
    }


def test_a_state_over_its_budget_is_left_out() -> None:
    snapshot = MetricsSnapshot(production={}, consumption={}, offset={})
    assert sync_state(snapshot, num_partitions=100, budget_bytes=1024) is None


def test_the_cache_encodes_a_snapshot_once_per_snapshot_partition_count_and_budget() -> None:
    cache = SyncStates()
    one = MetricsSnapshot(production={0: 5.0}, consumption={}, offset={})
    first = cache.get(key="c", snapshot=one, num_partitions=2, budget_bytes=10_000)
    assert cache.get(key="c", snapshot=one, num_partitions=2, budget_bytes=10_000) is first
    assert cache.get(key="c", snapshot=one, num_partitions=3, budget_bytes=10_000) != first
    assert cache.get(key="c", snapshot=one, num_partitions=3, budget_bytes=100) is None
    other = MetricsSnapshot(production={0: 6.0}, consumption={}, offset={})
    assert cache.get(key="c", snapshot=other, num_partitions=2, budget_bytes=10_000) == {
        "0": {"productionRate": 6, "consumptionRate": 0, "messageBehind": 0},
        "1": {"productionRate": 0, "consumptionRate": 0, "messageBehind": 0},
    }


@settings(deadline=None)  # a loaded machine is no failure
@given(
    data=st.data(),
    num_partitions=st.integers(min_value=0, max_value=8),
)
def test_a_column_with_every_partition_in_any_order_is_each_values_int64(
    data: st.DataObject, num_partitions: int
) -> None:
    """The shortcut for a value of every partition in partition order (checked in C)
    gives each partition's own value, clamped as ``_int64`` says: keys in another order,
    NaN, infinities and values beyond int64 take the general way."""
    order = data.draw(st.permutations(range(num_partitions)))
    values = {p: data.draw(st.one_of(st.floats(0, 1e6), anything)) for p in order}
    snapshot = MetricsSnapshot(production=values, consumption=dict(values), offset={})
    state = sync_state(snapshot, num_partitions=num_partitions, budget_bytes=10**9)
    assert state == {
        str(p): {
            "productionRate": _int64(values[p]),
            "consumptionRate": _int64(values[p]),
            "messageBehind": 0,
        }
        for p in range(num_partitions)
    }


def test_a_column_in_partition_order_with_a_value_beyond_int64_is_clamped() -> None:
    values = {0: 1.5, 1: 2.0**70, 2: -(2.0**70), 3: float("nan"), 4: 7.9}
    snapshot = MetricsSnapshot(production=values, consumption={1: 3.0, 0: 4.0}, offset={})
    state = sync_state(snapshot, num_partitions=2, budget_bytes=10**9)
    assert state == {
        "0": {"productionRate": 1, "consumptionRate": 4, "messageBehind": 0},
        "1": {"productionRate": 2**63 - 1, "consumptionRate": 3, "messageBehind": 0},
    }
    dense = MetricsSnapshot(production={0: 1.5, 1: 2.0**70}, consumption={}, offset={})
    assert sync_state(dense, num_partitions=2, budget_bytes=10**9) == {
        "0": {"productionRate": 1, "consumptionRate": 0, "messageBehind": 0},
        "1": {"productionRate": 2**63 - 1, "consumptionRate": 0, "messageBehind": 0},
    }
    nan = MetricsSnapshot(production={0: float("nan"), 1: 2.5}, consumption={}, offset={})
    assert sync_state(nan, num_partitions=2, budget_bytes=10**9) == {
        "0": {"productionRate": 0, "consumptionRate": 0, "messageBehind": 0},
        "1": {"productionRate": 2, "consumptionRate": 0, "messageBehind": 0},
    }
