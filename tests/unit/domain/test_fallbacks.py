"""Fallback resources for containers that have no metrics to be sized from.

Aspects tested (the Go fallback calculation, lwolf/konsumerator
``controllers/utils.go``, and its test vectors):

* From the policy: ``min`` gives requests = limits = minAllowed, ``max`` gives
  maxAllowed; one entry per policy; no policy gives no fallback.
* A policy with neither side of the chosen bound gives no fallback; a policy
  with one resource gives that resource only.
* From the fleet: with more than 10 instances and more than half of them
  existing, the existing container with the lowest (``min``) or highest
  (``max``) CPU request lends its whole resources (requests and limits);
  ties keep the first one seen; containers without a policy get one too.
* The fleet thresholds: exactly 10 instances, or exactly half existing, still
  use the policy.
"""

import pytest

from konsumerator.domain.fallbacks import compute, from_policy
from konsumerator.domain.resources import Resources
from konsumerator.domain.specs import Bounds, FallbackStrategy

M = 10**6
G = 10**9
MIN, MAX = FallbackStrategy.MIN, FallbackStrategy.MAX


def R(cpu_req, mem_req, cpu_lim, mem_lim) -> Resources:
    return Resources(cpu_req_m=cpu_req, mem_req_b=mem_req, cpu_lim_m=cpu_lim, mem_lim_b=mem_lim)


TEST_POLICY = Bounds(min_cpu_m=100, min_mem_b=100 * M, max_cpu_m=2000, max_mem_b=150 * M)
TEST2_POLICY = Bounds(min_cpu_m=1000, min_mem_b=1 * G, max_cpu_m=4000, max_mem_b=4 * G)


@pytest.mark.parametrize(
    ("strategy", "policies", "expected"),
    [
        (MIN, {"test": TEST_POLICY}, {"test": R(100, 100 * M, 100, 100 * M)}),
        (MAX, {"test": TEST_POLICY}, {"test": R(2000, 150 * M, 2000, 150 * M)}),
        (
            MIN,
            {"test": TEST_POLICY, "test2": TEST2_POLICY},
            {"test": R(100, 100 * M, 100, 100 * M), "test2": R(1000, 1 * G, 1000, 1 * G)},
        ),
        (MIN, {}, {}),
        (MAX, {}, {}),
    ],
    ids=["min", "max", "two-policies", "no-policy-min", "no-policy-max"],
)
def test_fallback_from_policy(strategy, policies, expected):
    assert compute(strategy=strategy, policies=policies, num_instances=1, existing=[]) == expected


@pytest.mark.parametrize(
    ("bounds", "strategy", "expected"),
    [
        (Bounds(max_cpu_m=2000, max_mem_b=1 * G), MIN, None),
        (Bounds(min_cpu_m=100, min_mem_b=100 * M), MAX, None),
        (Bounds(min_cpu_m=100), MIN, Resources(cpu_req_m=100, cpu_lim_m=100)),
        (Bounds(max_mem_b=1 * G), MAX, Resources(mem_req_b=1 * G, mem_lim_b=1 * G)),
    ],
    ids=["max-only-min-strategy", "min-only-max-strategy", "cpu-only", "memory-only"],
)
def test_fallback_from_partial_policy(bounds, strategy, expected):
    assert from_policy(bounds=bounds, strategy=strategy) == expected


# The Go running-instances vector: busybox requests 100m/150m/200m, test 600m/50m/100m.
FLEET = [
    {"busybox": R(100, 100 * M, 100, 100 * M), "test": R(600, 600 * M, 600, 600 * M)},
    {"busybox": R(150, 150 * M, 150, 150 * M), "test": R(50, 50 * M, 2000, 200 * G)},
    {"busybox": R(200, 200 * M, 300, 300 * M), "test": R(100, 100 * M, 100, 100 * M)},
]
# Three more in between, so that more than half of 11 instances exist.
FILLER = [{"busybox": R(150, 150 * M, 150, 150 * M), "test": R(300, 300 * M, 300, 300 * M)}] * 3


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (MIN, {"busybox": R(100, 100 * M, 100, 100 * M), "test": R(50, 50 * M, 2000, 200 * G)}),
        (MAX, {"busybox": R(200, 200 * M, 300, 300 * M), "test": R(600, 600 * M, 600, 600 * M)}),
    ],
)
def test_fallback_from_running_instances(strategy, expected):
    result = compute(
        strategy=strategy,
        policies={"busybox": TEST_POLICY},
        num_instances=11,
        existing=FLEET + FILLER,
    )
    assert result == expected


@pytest.mark.parametrize(
    ("num_instances", "existing_count", "from_fleet"),
    [
        (10, 10, False),  # not more than 10 instances
        (11, 5, False),  # not more than half exist
        (11, 6, True),
        (20, 11, True),
        (20, 10, False),
    ],
)
def test_fleet_thresholds(num_instances, existing_count, from_fleet):
    existing = [{"test": R(700, 700 * M, 1000, 700 * M)}] * existing_count
    result = compute(
        strategy=MIN,
        policies={"test": TEST_POLICY},
        num_instances=num_instances,
        existing=existing,
    )
    fleet = {"test": R(700, 700 * M, 1000, 700 * M)}
    policy = {"test": R(100, 100 * M, 100, 100 * M)}
    assert result == (fleet if from_fleet else policy)


@pytest.mark.parametrize("strategy", [MIN, MAX])
def test_fleet_ties_keep_the_first_seen(strategy):
    first = R(500, 1 * G, 1000, 1 * G)
    second = R(500, 2 * G, 1000, 2 * G)
    existing = [{"c": first}, {"c": second}] * 3
    result = compute(strategy=strategy, policies={}, num_instances=11, existing=existing)
    assert result == {"c": first}
