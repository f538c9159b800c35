"""The learned rate per core (``domain.adaptive.learning``).

Aspects tested: which pod is whose; what counts as saturated; the sample is
consumption over CPU used (ratio of sums); learning is off without a query,
pauses on a failed or lying answer and holds on no saturation; the estimate
moves by the EWMA, stays within the bounds whatever is answered, converges on
the true rate, restarts from a changed prior; and the status round trip.
"""

import math
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive import learning
from konsumerator.domain.adaptive.learning import (
    ALPHA,
    Learned,
    Observation,
    Reason,
    State,
    effective_rate,
    instance_of_pod,
    learn,
    saturated,
)
from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot
from konsumerator.domain.status import ConsumerStatus, learning_body, learning_from_body

T = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PRIOR = 1000
INSTANCES = (("orders-0", (0, 1)), ("orders-1", (2, 3)))


def snap(produced: float, consumed: float, backlog: float = 10_000) -> MetricsSnapshot:
    """Every partition of both instances alike."""
    parts = range(4)
    return MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(parts, produced)),
        consumption=MappingProxyType(dict.fromkeys(parts, consumed)),
        offset=MappingProxyType(dict.fromkeys(parts, backlog)),
    )


def usage(**by_pod: float) -> CpuUsage:
    return CpuUsage(by_pod=MappingProxyType({k.replace("_", "-"): v for k, v in by_pod.items()}))


# Both instances saturated at 400 msg/s each (2 partitions × 200), 0.5 core each: 800/s/core.
SATURATED, BEFORE = snap(300, 200), snap(300, 200)
HALF_CORE = usage(orders_0_5d4f8b9c7d_x1y2z=0.5, orders_1_5d4f8b9c7d_a1b2c=0.5)


@pytest.mark.parametrize(
    ("pod", "want"),
    [
        ("orders-0-5d4f8b9c7d-x1y2z", "orders-0"),
        ("orders-1-0-5d4f8b9c7d-x1y2z", "orders-1-0"),  # the Consumer orders-1's instance
        ("orders-0-x1y2z", "orders"),  # a bare pod: then no instance of that name, unknown
        ("orders", None),
        ("-a-b", None),
        ("a--b", None),
    ],
)
def test_a_pod_belongs_to_its_name_without_hash_and_suffix(pod: str, want: str | None) -> None:
    assert instance_of_pod(pod) == want


def obs(
    *, produced: float = 1000, consumed: float = 600, backlog: float = 5000, before: float | None
) -> Observation:
    return Observation(
        name="x",
        produced=produced,
        consumed=consumed,
        backlog=backlog,
        consumed_before=before,
        cores=1.0,
    )


@pytest.mark.parametrize(
    ("observation", "want", "why"),
    [
        (obs(before=600), True, "falling behind, flat"),
        (obs(before=590), True, "risen within FLAT"),
        (obs(before=500), False, "rising: a scale-up still taking effect"),
        (obs(before=None), False, "no previous sync to compare with"),
        (obs(consumed=960, before=960), False, "keeping up"),
        (obs(consumed=10, before=10), False, "an outage, not a CPU limit"),
        (obs(backlog=0, before=600), False, "nothing behind"),
        (obs(produced=0, consumed=0, before=0), False, "nothing produced"),
    ],
)
def test_saturated_means_lag_growing_and_consumption_flat(
    observation: Observation, want: bool, why: str
) -> None:
    assert saturated(observation) is want, why


def run(
    *,
    previous: Learned | None = None,
    cpu: CpuUsage | None = HALF_CORE,
    now_snap: MetricsSnapshot = SATURATED,
    before: MetricsSnapshot | None = BEFORE,
    prior: int = PRIOR,
) -> Learned:
    return learn(
        previous=previous,
        prior=prior,
        usage=cpu,
        snapshot=now_snap,
        before=before,
        instances=INSTANCES,
        now=T,
    )


def test_without_a_query_learning_is_off_and_sizing_uses_the_configured_rate() -> None:
    got = run(cpu=None)
    assert (got.state, got.reason, got.rate_per_core) == (
        State.OFF,
        Reason.NO_CPU_USAGE_QUERY,
        None,
    )
    assert effective_rate(got, prior=PRIOR) is None


def test_a_saturated_sample_moves_the_prior_by_the_ewma() -> None:
    got = run()
    # 800 msg/s per core used, folded into the prior 1000 with weight ALPHA.
    assert got.rate_per_core == round(ALPHA * 800 + (1 - ALPHA) * 1000)
    assert (got.state, got.reason, got.samples, got.learned_at) == (
        State.LEARNING,
        Reason.LEARNED,
        1,
        T,
    )
    assert effective_rate(got, prior=PRIOR) == got.rate_per_core


def test_the_sample_divides_by_cpu_used_as_a_ratio_of_sums() -> None:
    # 400/s on 0.25 core and 400/s on 0.75 core: 800/1.0 = 800, not mean(1600, 533).
    got = run(cpu=usage(orders_0_h_s=0.25, orders_1_h_s=0.75))
    assert got.rate_per_core == round(ALPHA * 800 + (1 - ALPHA) * 1000)


LEARNED_900 = Learned(
    state=State.LEARNING,
    reason=Reason.LEARNED,
    message="",
    rate_per_core=900,
    prior=PRIOR,
    samples=3,
    learned_at=T - timedelta(minutes=5),
)


@pytest.mark.parametrize(
    ("cpu", "now_snap", "state", "reason"),
    [
        (CpuUsage(problem="no answer within 10s"), SATURATED, State.PAUSED, "CpuUsageUnavailable"),
        (usage(orders_0_h_s=math.nan, orders_1_h_s=0.5), SATURATED, State.LEARNING, "Learned"),
        (
            usage(orders_0_h_s=math.nan, orders_1_h_s=-1),
            SATURATED,
            State.PAUSED,
            "CpuUsageUnusable",
        ),
        (usage(orders_0_h_s=0.0, orders_1_h_s=0.0), SATURATED, State.PAUSED, "CpuUsageUnusable"),
        (
            usage(orders_0_h_s=1e9, orders_1_h_s=math.inf),
            SATURATED,
            State.PAUSED,
            "CpuUsageUnusable",
        ),
        (usage(payments_0_h_s=0.5), SATURATED, State.PAUSED, "CpuUsageUnusable"),  # unknown pods
        (usage(), SATURATED, State.PAUSED, "CpuUsageUnusable"),
        (HALF_CORE, snap(300, 300), State.LEARNING, "NotSaturated"),
    ],
)
def test_a_failed_lying_or_idle_answer_holds_the_learned_rate_and_says_why(
    cpu: CpuUsage, now_snap: MetricsSnapshot, state: State, reason: str
) -> None:
    got = run(previous=LEARNED_900, cpu=cpu, now_snap=now_snap)
    assert (got.state, got.reason.value) == (state, reason)
    if reason != "Learned":
        assert (got.rate_per_core, got.samples, got.learned_at) == (900, 3, LEARNED_900.learned_at)
    assert got.message


def test_a_changed_ratepercore_restarts_learning_from_it() -> None:
    got = run(previous=LEARNED_900, prior=2000, now_snap=snap(300, 300))
    assert (got.rate_per_core, got.prior, got.samples) == (2000, 2000, 0)
    assert effective_rate(got, prior=PRIOR) is None  # nothing learned yet: the configured rate


def test_repeated_saturation_converges_on_the_true_rate() -> None:
    learned = None
    for _ in range(30):
        learned = run(previous=learned)
    assert learned is not None
    assert abs((learned.rate_per_core or 0) - 800) <= 2


@given(
    cores=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0)),
        min_size=2,
        max_size=2,
    ),
    consumed=st.floats(min_value=0, max_value=1e12),
    prior=st.integers(min_value=1, max_value=10**9),
    steps=st.integers(min_value=1, max_value=5),
)
def test_whatever_is_answered_the_rate_stays_within_the_bounds(
    cores: list[float], consumed: float, prior: int, steps: int
) -> None:
    cpu = usage(orders_0_h_s=cores[0], orders_1_h_s=cores[1])
    current = snap(consumed * 2 + 1, consumed)
    learned = None
    for _ in range(steps):
        learned = run(previous=learned, cpu=cpu, now_snap=current, before=current, prior=prior)
        assert learned.rate_per_core is not None
        assert max(1, math.floor(prior * learning.LOWER)) <= learned.rate_per_core
        assert learned.rate_per_core <= math.ceil(prior * learning.UPPER)


@pytest.mark.parametrize(
    "learned", [learning.off(), LEARNED_900, run(previous=LEARNED_900, cpu=CpuUsage(problem="x"))]
)
def test_the_status_round_trip_keeps_the_learning(learned: Learned) -> None:
    body = ConsumerStatus(learning=learned).to_body()
    assert ConsumerStatus.from_body(body).learning == learned
    assert (
        ConsumerStatus.from_annotations(ConsumerStatus(learning=learned).to_annotations()).learning
        == learned
    )


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.dictionaries(
            st.sampled_from(["state", "reason", "ratePerCore", "samples", "lastLearnedTime"]),
            st.one_of(st.integers(), st.text(), st.booleans(), st.none(), st.floats()),
        ),
    )
)
def test_any_learning_field_reads_back_without_failing(raw: object) -> None:
    got = learning_from_body(raw)
    status = ConsumerStatus.from_body({"learning": raw})
    # Unreadable: carried as it was, and written back unchanged.
    if got is None and raw is not None:
        assert status.to_body()["learning"] == raw
    if got is not None:
        assert learning_body(got)["state"] == got.state.value
