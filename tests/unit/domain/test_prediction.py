"""The naive predictor: from partition metrics to an instance's estimate.

Aspects tested (every vector of the Go NaivePredictor, lwolf/konsumerator
``pkg/predictors/naive.go``):

* lag in whole seconds: ``trunc(behind / production)``, zero without
  production (even with a huge backlog), negative backlog, missing samples,
  fractional rates truncated like Go's int64 conversion, max over partitions.
* the required rate with recovery: 20001 msg/s, 12M behind, 30m recovery →
  26656; no backlog → production.
* the v1.2.1 partial-missing workaround: partitions without a sample borrow
  the largest need (20000+10000+20000+20000 = 70000).
* the CPU step: integer division, then round up to ``cpuIncrement``; limit
  rounded up to whole cores; memory = limit cores × ramPerCore.
* the estimate table (P=20000 → 2/2G, two partitions → 4/4G, partial → 7/7G,
  P=200 → 100m/1G with a 1 core limit, all zero → zeros, fallback used as is).
* invariants (hypothesis): request ≤ limit, limit a whole number of cores,
  request a multiple of the step, memory request == memory limit.
"""

from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.prediction import (
    ceil_to,
    estimate,
    instance_rate,
    lag_seconds,
    max_lag_seconds,
    required_rate,
    size_for_rate,
)
from konsumerator.domain.resources import MAX_MEM_B, NO_RESOURCES, Resources
from konsumerator.domain.specs import Autoscaling

G = 10**9
M = 10**6


def snap(production=None, offset=None) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType(dict(production or {})),
        offset=MappingProxyType(dict(offset or {})),
    )


def autoscaling(*, rate=10_000, ram=G, step=100, recovery=1800.0) -> Autoscaling:
    return Autoscaling(
        rate_per_core=rate, ram_per_core_b=ram, cpu_increment_m=step, recovery_s=recovery
    )


@pytest.mark.parametrize(
    ("production", "behind", "lag"),
    [
        (20001, 12_000_000, 599),
        (100, 1000, 10),
        (100, 1099, 10),  # truncated, not rounded
        (0, 1_000_000_000, 0),  # huge backlog, nothing produced: no lag
        (None, 1000, 0),  # no production sample
        (100, None, 0),  # no offset sample
        (100, -500, -5),  # negative backlog: negative, read as "not behind"
        (100.9, 1000.9, 10),  # floats truncated toward zero first
        (0.5, 1000, 0),  # a rate below 1 msg/s truncates to 0
        (3, 10, 3),
    ],
)
def test_lag_is_whole_seconds_of_production(production, behind, lag):
    production_map = {} if production is None else {0: production}
    offset_map = {} if behind is None else {0: behind}
    assert lag_seconds(snapshot=snap(production_map, offset_map), partition=0) == lag


def test_lag_of_non_finite_samples_is_zero():
    assert lag_seconds(snapshot=snap({0: float("nan")}, {0: 10}), partition=0) == 0
    assert lag_seconds(snapshot=snap({0: 10}, {0: float("inf")}), partition=0) == 0


def test_max_lag_over_partitions():
    s = snap({0: 100, 1: 100, 2: 100}, {0: 1000, 1: 5000, 2: 0})
    assert max_lag_seconds(snapshot=s, partitions=[0, 1, 2]) == 50
    assert max_lag_seconds(snapshot=s, partitions=[0, 2]) == 10
    assert max_lag_seconds(snapshot=s, partitions=[]) == 0


@pytest.mark.parametrize(
    ("production", "lag_s", "recovery_s", "rate"),
    [
        (20001, 599, 1800, 26656),
        (20001, 0, 1800, 20001),
        (100, -5, 1800, 100),  # negative lag is no lag
        (1000, 1800, 1800, 2000),  # a backlog of one recovery doubles the rate
        (0, 100, 1800, 0),
    ],
)
def test_required_rate_includes_recovering_the_backlog(production, lag_s, recovery_s, rate):
    assert required_rate(production=production, lag_s=lag_s, recovery_s=recovery_s) == rate


def test_required_rate_from_snapshot_matches_go_vector():
    s = snap({0: 20001}, {0: 12_000_000})
    assert instance_rate(snapshot=s, partitions=[0], recovery_s=1800) == 26656
    s = snap({0: 20001}, {0: 0})
    assert instance_rate(snapshot=s, partitions=[0], recovery_s=1800) == 20001


@pytest.mark.parametrize(
    ("production", "partitions", "total"),
    [
        ({0: 20000, 1: 10000}, [0, 1, 2, 3], 70000),  # missing ones borrow the largest
        ({0: 20000, 1: 10000}, [0, 1], 30000),
        ({}, [0, 1], 0),
        ({2: 500}, [0, 1, 2], 1500),
    ],
)
def test_partial_missing_metrics_borrow_the_largest_need(production, partitions, total):
    assert instance_rate(snapshot=snap(production), partitions=partitions, recovery_s=1800) == total


@pytest.mark.parametrize(
    ("total", "rate", "step", "req", "lim"),
    [
        (20000, 10000, 100, 2000, 2000),
        (18000, 10000, 100, 1800, 2000),
        (18510, 10000, 100, 1900, 2000),
        (11510, 10000, 400, 1200, 2000),
        (11510, 10000, 500, 1500, 2000),
        (11510, 10000, 1000, 2000, 2000),
        (10001, 10000, 100, 1000, 1000),  # integer division first (master, not v2-dev)
        (200, 10000, 100, 100, 1000),
        (0, 10000, 100, 0, 0),
    ],
)
def test_cpu_request_steps_and_limit_whole_cores(total, rate, step, req, lim):
    result = size_for_rate(rate=total, autoscaling=autoscaling(rate=rate, step=step))
    assert (result.cpu_req_m, result.cpu_lim_m) == (req, lim)


def test_memory_follows_the_cpu_limit_not_the_request():
    result = size_for_rate(rate=18000, autoscaling=autoscaling(ram=G))
    assert result == Resources(cpu_req_m=1800, mem_req_b=2 * G, cpu_lim_m=2000, mem_lim_b=2 * G)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [(0, 100, 0), (1, 100, 100), (100, 100, 100), (101, 100, 200), (1800, 1000, 2000)],
)
def test_ceil_to(value, step, expected):
    assert ceil_to(value, step) == expected


def R(cpu_req, mem_req, cpu_lim, mem_lim) -> Resources:
    return Resources(cpu_req_m=cpu_req, mem_req_b=mem_req, cpu_lim_m=cpu_lim, mem_lim_b=mem_lim)


FALLBACK = R(1000, 100 * M, 1100, 200 * M)


@pytest.mark.parametrize(
    ("production", "partitions", "fallback", "expected"),
    [
        ({0: 20000}, [0], None, R(2000, 2 * G, 2000, 2 * G)),
        ({0: 20000, 1: 20000}, [0, 1], None, R(4000, 4 * G, 4000, 4 * G)),
        ({0: 20000, 1: 10000}, [0, 1, 2, 3], None, R(7000, 7 * G, 7000, 7 * G)),
        ({0: 200}, [0], None, R(100, 1 * G, 1000, 1 * G)),
        # Go returned zeros; zero limits mean "unlimited" to Kubernetes, so no
        # metrics and no fallback yield no resources at all.
        ({}, [0], None, NO_RESOURCES),
        ({0: 0}, [0], None, NO_RESOURCES),
        ({}, [0], FALLBACK, FALLBACK),
        # With production, the fallback is not used.
        ({0: 20000}, [0], FALLBACK, R(2000, 2 * G, 2000, 2 * G)),
    ],
)
def test_estimate_table(production, partitions, fallback, expected):
    result = estimate(
        snapshot=snap(production),
        partitions=partitions,
        autoscaling=autoscaling(),
        fallback=fallback,
    )
    assert result == expected


def test_estimate_with_a_backlog_sizes_for_recovery():
    # 26656 msg/s at 10000/core → 2666m → 2700m with a 100m step, 3 cores limit.
    result = estimate(
        snapshot=snap({0: 20001}, {0: 12_000_000}),
        partitions=[0],
        autoscaling=autoscaling(),
        fallback=None,
    )
    assert result == R(2700, 3 * G, 3000, 3 * G)


@settings(max_examples=150, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=10**9),
    rate=st.integers(min_value=1, max_value=10**6),
    step=st.integers(min_value=1, max_value=2000),
    ram=st.integers(min_value=1, max_value=64 * G),
)
def test_size_invariants(total, rate, step, ram):
    r = size_for_rate(rate=total, autoscaling=autoscaling(rate=rate, step=step, ram=ram))
    assert r.cpu_req_m % step == 0
    assert r.cpu_lim_m % 1000 == 0
    assert r.cpu_req_m <= r.cpu_lim_m < r.cpu_req_m + 1000
    assert r.cpu_req_m * rate >= total * 1000 - rate  # never under the truncated need
    assert r.mem_req_b == r.mem_lim_b == min((r.cpu_lim_m // 1000) * ram, MAX_MEM_B)
