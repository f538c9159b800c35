"""The adaptive demand, ``adaptive.demand``: need = max(λ/u, λ(1+R/T)) + max(0, b − λR)/T.

Aspects tested:

* One partition, table-driven: which term wins (headroom or restart), the
  backlog beyond one actuation's worth, and that the two production terms are
  never added.
* An instance sums its partitions; a partition without a production sample
  borrows the largest known partition's need.
* Property: the need never falls below production (nothing is sized below
  keeping up), and grows with the backlog.
* Property: ``instance_demand`` (its per-partition terms written inline, one
  partition without the sums) gives the very floats of its plain definition, the
  per-partition functions summed, a missing partition borrowing the largest.
"""

import math
from collections.abc import Sequence
from types import MappingProxyType

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive.demand import (
    Demand,
    Term,
    instance_demand,
    partition_need,
    restart_need,
)
from konsumerator.domain.metrics import MetricsSnapshot


def snap(production: dict[int, float], offset: dict[int, float]) -> MetricsSnapshot:
    return MetricsSnapshot(production=MappingProxyType(production), offset=MappingProxyType(offset))


@pytest.mark.parametrize(
    ("lam", "backlog", "u", "T", "R", "want_prod", "want_backlog"),
    [
        # headroom wins: 1/0.9 = 1.111 > 1 + 30/300 = 1.1
        (900.0, 0.0, 0.9, 300.0, 30.0, 1000.0, 0.0),
        # restart wins: 1 + 60/300 = 1.2 > 1.111
        (900.0, 0.0, 0.9, 300.0, 60.0, 1080.0, 0.0),
        # a backlog of one actuation's worth (λR) is paid by the restart term
        (900.0, 900.0 * 30, 0.9, 300.0, 30.0, 1000.0, 0.0),
        # beyond it, the excess is drained within T
        (900.0, 900.0 * 30 + 3000.0, 0.9, 300.0, 30.0, 1000.0, 10.0),
        # nothing produced: only the backlog counts
        (0.0, 600.0, 0.9, 300.0, 30.0, 0.0, 2.0),
        # u = 1 and R = 0: the naive predictor's need, λ + b/T
        (900.0, 3000.0, 1.0, 300.0, 0.0, 900.0, 10.0),
    ],
)
def test_partition_need_takes_the_larger_term_and_the_excess_backlog(
    lam: float,
    backlog: float,
    u: float,
    T: float,
    R: float,
    want_prod: float,
    want_backlog: float,
) -> None:
    prod, back = partition_need(
        production=lam, backlog=backlog, utilization=u, recovery_s=T, actuation_s=R
    )
    assert prod == pytest.approx(want_prod)
    assert back == pytest.approx(want_backlog)


def test_an_instance_sums_its_partitions_and_a_missing_one_borrows_the_largest() -> None:
    demand = instance_demand(
        snapshot=snap({0: 900.0, 1: 1800.0}, {0: 0.0, 1: 0.0}),
        partitions=[0, 1, 2],
        utilization=0.9,
        recovery_s=300.0,
        actuation_s=30.0,
    )
    assert demand.production == pytest.approx(2700.0)
    assert demand.production_need == pytest.approx(1000.0 + 2000.0 + 2000.0)
    assert demand.term is Term.HEADROOM


def test_the_restart_term_is_named_when_it_wins() -> None:
    demand = instance_demand(
        snapshot=snap({0: 100.0}, {}),
        partitions=[0],
        utilization=0.95,
        recovery_s=60.0,
        actuation_s=30.0,
    )
    assert demand.term is Term.RESTART
    assert demand.production_need == pytest.approx(150.0)


@given(
    lam=st.floats(min_value=0, max_value=1e9),
    backlog=st.floats(min_value=0, max_value=1e12),
    extra=st.floats(min_value=0, max_value=1e12),
    u=st.floats(min_value=0.1, max_value=1.0),
    T=st.floats(min_value=1, max_value=1e5),
    R=st.floats(min_value=0, max_value=600),
)
def test_the_need_covers_production_and_grows_with_the_backlog(
    lam: float,
    backlog: float,
    extra: float,
    u: float,
    T: float,
    R: float,
) -> None:
    prod, back = partition_need(
        production=lam, backlog=backlog, utilization=u, recovery_s=T, actuation_s=R
    )
    _, more = partition_need(
        production=lam, backlog=backlog + extra, utilization=u, recovery_s=T, actuation_s=R
    )
    assert prod >= lam
    assert back >= 0
    assert math.isfinite(back)
    assert more >= back


@pytest.mark.parametrize(
    ("lam", "backlog", "T", "R", "want"),
    [
        (1000.0, 0.0, 300.0, 30.0, 0.0),  # nothing behind: a restart is paid by λ(1+R/T)
        (1000.0, 15_000.0, 300.0, 30.0, 50.0),  # less than λR: all of it
        (1000.0, 30_000.0, 300.0, 30.0, 100.0),  # λR: what the backlog term leaves out
        (1000.0, 90_000.0, 300.0, 30.0, 100.0),  # beyond λR the backlog term has it
        (1000.0, 90_000.0, 300.0, 5.0, 1000.0 * 5 / 300),  # in place: R = 5 s
        (0.0, 600.0, 300.0, 30.0, 0.0),  # nothing produced: a restart adds nothing
    ],
)
def test_a_scale_up_is_sized_for_the_backlog_its_own_restart_leaves(
    lam: float, backlog: float, T: float, R: float, want: float
) -> None:
    got = restart_need(production=lam, backlog=backlog, recovery_s=T, actuation_s=R)
    assert math.isclose(got, want)


@given(
    lam=st.floats(min_value=0, max_value=1e6),
    backlog=st.floats(min_value=0, max_value=1e9),
    R=st.floats(min_value=0, max_value=600),
)
def test_sized_for_its_restart_a_scale_up_drains_all_it_leaves_behind(
    lam: float, backlog: float, R: float
) -> None:
    """Backlog term plus restart term drain b + λR within T: the pods that come back
    from the restart are not short of their own backlog (no resize storm)."""
    T = 300.0
    _, back = partition_need(
        production=lam, backlog=backlog, utilization=1.0, recovery_s=T, actuation_s=R
    )
    again = restart_need(production=lam, backlog=backlog, recovery_s=T, actuation_s=R)
    # λR/T of λ(1+R/T) is for the restart's λR; the rest of b must go within T too
    assert math.isclose(back + again, backlog / T, rel_tol=1e-9, abs_tol=1e-9)


def test_an_instance_sums_what_its_partitions_restarts_leave() -> None:
    d = instance_demand(
        snapshot=snap({0: 1000.0, 1: 500.0}, {0: 60_000.0, 1: 3_000.0}),
        partitions=[0, 1],
        utilization=0.9,
        recovery_s=300.0,
        actuation_s=30.0,
    )
    assert math.isclose(d.restart_need, 30_000 / 300 + 3_000 / 300)


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) and value > 0 else 0.0


def plain_demand(
    *,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    utilization: float,
    recovery_s: float,
    actuation_s: float,
) -> Demand:
    """The definition: each partition's ``partition_need`` and ``restart_need`` summed,
    one without a production sample borrowing the largest known partition's."""
    needs: list[tuple[float, float, float] | None] = []
    production = backlog = 0.0
    for p in partitions:
        rate = snapshot.production.get(p)
        if rate is None:
            needs.append(None)
            continue
        lam, behind = _finite(rate), _finite(snapshot.offset.get(p))
        production += lam
        backlog += behind
        prod, back = partition_need(
            production=lam,
            backlog=behind,
            utilization=utilization,
            recovery_s=recovery_s,
            actuation_s=actuation_s,
        )
        again = restart_need(
            production=lam, backlog=behind, recovery_s=recovery_s, actuation_s=actuation_s
        )
        needs.append((prod, back, again))
    known = [n for n in needs if n is not None]
    largest = max(known, key=lambda n: n[0] + n[1], default=(0.0, 0.0, 0.0))
    filled = [n if n is not None else largest for n in needs]
    restarts = 1 / utilization < 1 + actuation_s / recovery_s
    return Demand(
        production=production,
        backlog=backlog,
        production_need=sum(n[0] for n in filled),
        backlog_need=sum(n[1] for n in filled),
        term=Term.RESTART if restarts else Term.HEADROOM,
        restart_need=sum(n[2] for n in filled),
    )


samples = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e7),
    st.integers(min_value=-10, max_value=10**6),
)


@given(
    production=st.dictionaries(st.integers(0, 5), samples, max_size=6),
    offset=st.dictionaries(st.integers(0, 5), samples, max_size=6),
    partitions=st.lists(st.integers(0, 7), max_size=4),
    u=st.floats(min_value=0.05, max_value=1.0),
    T=st.floats(min_value=1, max_value=1e5),
    R=st.floats(min_value=0, max_value=600),
)
def test_an_instances_demand_is_its_plain_definition_to_the_bit(
    production: dict[int, float | None],
    offset: dict[int, float | None],
    partitions: list[int],
    u: float,
    T: float,
    R: float,
) -> None:
    snapshot = snap(
        {p: v for p, v in production.items() if v is not None},
        {p: v for p, v in offset.items() if v is not None},
    )
    got = instance_demand(
        snapshot=snapshot, partitions=partitions, utilization=u, recovery_s=T, actuation_s=R
    )
    want = plain_demand(
        snapshot=snapshot, partitions=partitions, utilization=u, recovery_s=T, actuation_s=R
    )
    assert got == want
    # The same floats, types included (an int production stays what the sums make it).
    assert [(type(v), repr(v)) for v in msgspec.structs.astuple(got)] == [
        (type(v), repr(v)) for v in msgspec.structs.astuple(want)
    ]
