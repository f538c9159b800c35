"""Per-container policies, critical lag and the per-Consumer global pool.

Aspects tested:

* ``apply_policy``: the Go instance limiter vectors (lwolf/konsumerator
  ``pkg/limiters/instance_limiter.go``): the
  limit is clamped to [min, max], the request to [min, limit]; no policy (or a
  policy for another container) leaves the estimate alone.
* Deliberate difference 5 (docs/compatibility.md): a missing ``maxAllowed`` side is unbounded (Go
  clamped it to 0) and a min-only policy is a floor (Go made it a cap).
  (min > max is rejected by validation, see tests/unit/api/test_v1.py, where
  Go swapped the bounds.)
* ``critical``: requests = limits = maxAllowed; a side without a maximum, or a
  container without a policy, keeps the estimate (Go: nil-pointer panic).
* ``Pool``: the GlobalLimiter vectors (``pkg/limiters/global_limiter.go``),
  including the sequential steps, with the fixed semantics of deliberate
  differences 3 and 4: the pool starts from
  what existing instances already use, an unset pool side is unbounded (Go
  read a missing memory as 0 and blocked all memory growth), an overdrawn
  pool grants nothing instead of shrinking resources, and ``restore`` gives
  back a grant that was not applied.
* Limit recomputation after a cut: CPU limit = granted request rounded up to
  whole cores but never above the policy's max (Go could exceed a fractional
  max, difference 7), memory limit = granted memory request.
* Invariant (hypothesis): the sum of granted increases never exceeds the
  pool, and the pool's account equals pool - used - granted + released.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.limits import Pool, apply_policy, critical
from konsumerator.domain.resources import NO_RESOURCES, Resources
from konsumerator.domain.specs import Bounds, GlobalPool

M = 10**6
G = 10**9


def R(cpu_req, mem_req, cpu_lim, mem_lim) -> Resources:
    return Resources(cpu_req_m=cpu_req, mem_req_b=mem_req, cpu_lim_m=cpu_lim, mem_lim_b=mem_lim)


def B(min_cpu, min_mem, max_cpu, max_mem) -> Bounds:
    return Bounds(min_cpu_m=min_cpu, min_mem_b=min_mem, max_cpu_m=max_cpu, max_mem_b=max_mem)


@pytest.mark.parametrize(
    ("bounds", "estimate", "expected"),
    [
        (
            B(100, 100 * M, 2000, 150 * M),
            R(2100, 100 * M, 2000, 150 * M),
            R(2000, 100 * M, 2000, 150 * M),
        ),
        (
            B(100, 100 * M, 1000, 150 * M),
            R(100, 200 * M, 1000, 150 * M),
            R(100, 150 * M, 1000, 150 * M),
        ),
        (
            B(100, 100 * M, 2000, 150 * M),
            R(2000, 100 * M, 3000, 100 * M),
            R(2000, 100 * M, 2000, 100 * M),
        ),
        (
            B(100, 100 * M, 1000, 150 * M),
            R(1000, 100 * M, 1000, 200 * M),
            R(1000, 100 * M, 1000, 150 * M),
        ),
        (B(100, 100 * M, 1000, 150 * M), R(0, 0, 0, 0), R(100, 100 * M, 100, 100 * M)),
        (None, R(0, 0, 0, 0), R(0, 0, 0, 0)),
        (None, R(1000, 100 * M, 1000, 200 * M), R(1000, 100 * M, 1000, 200 * M)),
    ],
    ids=[
        "request-above-max",
        "memory-request-above-limit",
        "limit-above-max",
        "memory-limit-above-max",
        "zeros-raised-to-min",
        "no-policy-zeros",
        "no-policy-unchanged",
    ],
)
def test_policy_clamps_like_go_instance_limiter(bounds, estimate, expected):
    assert apply_policy(estimate=estimate, bounds=bounds) == expected


def test_policy_on_unset_estimate_gives_the_minimum():
    bounds = B(100, 100 * M, 1000, 150 * M)
    assert apply_policy(estimate=NO_RESOURCES, bounds=bounds) == R(100, 100 * M, 100, 100 * M)


# Deliberate difference 5: missing sides are unbounded.
@pytest.mark.parametrize(
    ("bounds", "estimate", "expected"),
    [
        # min-only is a floor (Go: [0, min], a cap).
        (B(500, 256 * M, None, None), R(2000, 2 * G, 2000, 2 * G), R(2000, 2 * G, 2000, 2 * G)),
        (
            B(500, 256 * M, None, None),
            R(100, 100 * M, 1000, 100 * M),
            R(500, 256 * M, 1000, 256 * M),
        ),
        # max memory only: CPU unbounded (Go clamped CPU to 0).
        (B(None, None, None, 1 * G), R(3000, 3 * G, 3000, 3 * G), R(3000, 1 * G, 3000, 1 * G)),
        # max cpu only: memory unbounded.
        (B(None, None, 1000, None), R(3000, 3 * G, 3000, 3 * G), R(1000, 3 * G, 1000, 3 * G)),
        # empty policy: no clamp at all.
        (B(None, None, None, None), R(3000, 3 * G, 3000, 3 * G), R(3000, 3 * G, 3000, 3 * G)),
    ],
    ids=[
        "min-only-floor-keeps-big",
        "min-only-floor-raises",
        "max-mem-only",
        "max-cpu-only",
        "empty",
    ],
)
def test_missing_policy_side_is_unbounded(bounds, estimate, expected):
    assert apply_policy(estimate=estimate, bounds=bounds) == expected


@pytest.mark.parametrize(
    ("bounds", "estimate", "expected"),
    [
        (
            B(100, 100 * M, 2000, 150 * M),
            R(100, 100 * M, 1000, 100 * M),
            R(2000, 150 * M, 2000, 150 * M),
        ),
        # Critical lag may grant less than estimated: the max is the max.
        (
            B(100, 100 * M, 2000, 150 * M),
            R(8000, 8 * G, 8000, 8 * G),
            R(2000, 150 * M, 2000, 150 * M),
        ),
        # Side without a maximum keeps the estimate.
        (B(100, None, None, 1 * G), R(3000, 3 * G, 3000, 3 * G), R(3000, 1 * G, 3000, 1 * G)),
        # No policy: the estimate (Go dereferenced nil and crashed).
        (None, R(3000, 3 * G, 3000, 3 * G), R(3000, 3 * G, 3000, 3 * G)),
    ],
    ids=["raised-to-max", "cut-to-max", "partial-max", "no-policy"],
)
def test_critical_lag_gives_max_allowed(bounds, estimate, expected):
    assert critical(estimate=estimate, bounds=bounds) == expected


# --- global pool (pkg/limiters/global_limiter.go) -------------------------------------


def pool(cpu_m=100_000, mem_b=100 * M, used_cpu=10_000, used_mem=10 * M) -> Pool:
    return Pool(pool=GlobalPool(cpu_m=cpu_m, mem_b=mem_b), used_cpu_m=used_cpu, used_mem_b=used_mem)


def req(cpu_m, mem_b) -> Resources:
    """Requests only; limits equal requests (limits are not drawn from the pool)."""
    return R(cpu_m, mem_b, cpu_m, mem_b)


@pytest.mark.parametrize(
    ("pool_cpu", "pool_mem", "used_cpu", "used_mem", "wanted", "granted", "short"),
    [
        (100_000, 100 * M, 10_000, 10 * M, (50_000, 50 * M), (50_000, 50 * M), (0, 0)),
        (100_000, 100 * M, 10_000, 10 * M, (90_000, 90 * M), (90_000, 90 * M), (0, 0)),
        (100_000, 100 * M, 10_000, 10 * M, (110_000, 120 * M), (90_000, 90 * M), (20_000, 30 * M)),
        (100_000, 10 * M, 10_000, 10 * M, (10_000, 20 * M), (10_000, 0), (0, 20 * M)),
        (100_000, 10 * M, 100_000, 5 * M, (10_000, 5 * M), (0, 5 * M), (10_000, 0)),
        (100_000, 100 * M, 100_000, 100 * M, (10_000, 10 * M), (0, 0), (10_000, 10 * M)),
    ],
    ids=["fits", "exactly-fits", "capped", "memory-exhausted", "cpu-exhausted", "both-exhausted"],
)
def test_pool_grants_increases_up_to_what_is_left(
    pool_cpu, pool_mem, used_cpu, used_mem, wanted, granted, short
):
    p = pool(cpu_m=pool_cpu, mem_b=pool_mem, used_cpu=used_cpu, used_mem=used_mem)
    g = p.grant(current=NO_RESOURCES, wanted=req(*wanted), bounds=None)
    assert (g.resources.cpu_req_m, g.resources.mem_req_b) == granted
    assert (g.cpu_shortage_m, g.mem_shortage_b) == short


def test_no_pool_passes_everything():
    p = Pool(pool=None, used_cpu_m=10_000, used_mem_b=10 * M)
    wanted = req(1_000_000, 1000 * M)
    g = p.grant(current=NO_RESOURCES, wanted=wanted, bounds=None)
    assert g.resources == wanted
    assert (g.cpu_shortage_m, g.mem_shortage_b) == (0, 0)
    assert p.available == (None, None)


def test_decrease_always_passes_and_returns_capacity():
    p = pool()
    g = p.grant(current=req(20_000, 30 * M), wanted=req(10_000, 10 * M), bounds=None)
    assert g.resources == req(10_000, 10 * M)
    assert p.available == (100_000, 110 * M)


def test_pool_sequential_steps():
    """The Go sequential vector: each step is a container asking for a change."""
    p = pool()
    steps = [
        # (delta cpu, delta mem) -> (granted, available afterwards)
        ((5_000, 5 * M), (5_000, 5 * M), (85_000, 85 * M)),
        ((15_000, 20 * M), (15_000, 20 * M), (70_000, 65 * M)),
        ((80_000, 20 * M), (70_000, 20 * M), (0, 45 * M)),
        ((-20_000, -40 * M), (-20_000, -40 * M), (20_000, 85 * M)),
        ((-10_000, -10 * M), (-10_000, -10 * M), (30_000, 95 * M)),
        ((25_000, 60 * M), (25_000, 60 * M), (5_000, 35 * M)),
    ]
    base = req(100_000, 100 * M)  # every container holds plenty, so decreases stay >= 0
    for (dc, dm), (gc, gm), available in steps:
        wanted = req(base.cpu_req_m + dc, base.mem_req_b + dm)
        g = p.grant(current=base, wanted=wanted, bounds=None)
        assert g.resources.cpu_req_m - base.cpu_req_m == gc
        assert g.resources.mem_req_b - base.mem_req_b == gm
        assert p.available == available


def test_pool_starts_from_what_existing_instances_use():
    """Difference 3: Go started every pass with a full pool; ours subtracts usage."""
    p = Pool(pool=GlobalPool(cpu_m=4000, mem_b=4 * G), used_cpu_m=3000, used_mem_b=1 * G)
    assert p.available == (1000, 3 * G)
    g = p.grant(current=req(1000, 1 * G), wanted=req(3000, 3 * G), bounds=None)
    assert g.resources.cpu_req_m == 2000
    assert g.resources.mem_req_b == 3 * G
    assert g.cpu_shortage_m == 1000
    assert p.available == (0, 1 * G)


def test_pool_without_memory_side_does_not_block_memory():
    """Go read a missing maxAllowed.memory as 0 and blocked all memory growth."""
    p = Pool(pool=GlobalPool(cpu_m=10_000, mem_b=None), used_cpu_m=0, used_mem_b=0)
    g = p.grant(current=NO_RESOURCES, wanted=req(1000, 64 * G), bounds=None)
    assert g.resources == req(1000, 64 * G)
    assert (g.cpu_shortage_m, g.mem_shortage_b) == (0, 0)
    assert p.available == (9000, None)


def test_overdrawn_pool_grants_nothing_rather_than_shrinking():
    """Go granted a negative avail, i.e. cut resources on a scale-up request."""
    p = Pool(pool=GlobalPool(cpu_m=1000, mem_b=1 * G), used_cpu_m=3000, used_mem_b=3 * G)
    current = req(1000, 1 * G)
    g = p.grant(current=current, wanted=req(2000, 2 * G), bounds=None)
    assert (g.resources.cpu_req_m, g.resources.mem_req_b) == (1000, 1 * G)
    assert (g.cpu_shortage_m, g.mem_shortage_b) == (1000, 1 * G)


def test_restore_gives_back_a_grant_that_was_not_applied():
    p = pool()
    saved = p.available
    p.grant(current=NO_RESOURCES, wanted=req(50_000, 50 * M), bounds=None)
    assert p.available == (40_000, 40 * M)
    p.restore(saved)
    assert p.available == (90_000, 90 * M)


def test_a_cut_cpu_request_keeps_the_policy_limit():
    """The pool caps requests (the reservation); the limit stays what the policy
    allows, so a cut instance can still burst and never gets a limit of 0."""
    p = Pool(pool=GlobalPool(cpu_m=1300, mem_b=None), used_cpu_m=0, used_mem_b=0)
    g = p.grant(current=NO_RESOURCES, wanted=R(3000, 3 * G, 3000, 3 * G), bounds=None)
    assert g.resources == R(1300, 3 * G, 3000, 3 * G)
    assert g.cpu_shortage_m == 1700


def test_the_pool_never_cuts_below_min_allowed():
    p = Pool(pool=GlobalPool(cpu_m=100, mem_b=None), used_cpu_m=100, used_mem_b=0)
    g = p.grant(current=NO_RESOURCES, wanted=R(800, G, 1000, G), bounds=B(400, None, 800, None))
    assert g.resources == R(400, G, 1000, G)
    assert g.cpu_shortage_m == 400
    assert p.available[0] == -400


def test_recomputed_cpu_limit_never_exceeds_a_fractional_max():
    """Difference 7: Go's limit was ceil(request) cores, above maxAllowed=1.5."""
    p = Pool(pool=GlobalPool(cpu_m=1200, mem_b=None), used_cpu_m=0, used_mem_b=0)
    bounds = B(100, None, 1500, None)
    g = p.grant(current=NO_RESOURCES, wanted=R(1500, 2 * G, 1500, 2 * G), bounds=bounds)
    assert g.resources.cpu_req_m == 1200
    assert g.resources.cpu_lim_m == 1500


def test_uncut_grant_keeps_the_policy_limits():
    p = pool()
    wanted = R(1500, 1 * M, 1500, 2 * M)
    g = p.grant(current=NO_RESOURCES, wanted=wanted, bounds=B(100, None, 1500, None))
    assert g.resources == wanted


def test_a_cut_memory_request_keeps_the_memory_limit():
    p = Pool(pool=GlobalPool(cpu_m=None, mem_b=1 * G), used_cpu_m=0, used_mem_b=0)
    g = p.grant(current=NO_RESOURCES, wanted=R(1000, 2 * G, 1000, 3 * G), bounds=None)
    assert g.resources == R(1000, 1 * G, 1000, 3 * G)
    assert g.mem_shortage_b == 1 * G


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.integers(min_value=0, max_value=100_000),
    used=st.integers(min_value=0, max_value=100_000),
    changes=st.lists(
        st.tuples(st.integers(0, 50_000), st.integers(0, 50_000)), min_size=1, max_size=20
    ),
)
def test_pool_never_grants_beyond_capacity(capacity, used, changes):
    p = Pool(pool=GlobalPool(cpu_m=capacity, mem_b=None), used_cpu_m=used, used_mem_b=0)
    increases = released = 0
    for current, wanted in changes:
        g = p.grant(current=req(current, 0), wanted=req(wanted, 0), bounds=None)
        delta = g.resources.cpu_req_m - current
        assert delta <= max(0, wanted - current)
        assert g.cpu_shortage_m == max(0, wanted - current) - max(0, delta)
        if delta >= 0:
            increases += delta
        else:
            released -= delta
        assert p.available[0] == capacity - used - increases + released
        # A grant never exceeds what was free just before it.
    assert increases <= max(0, capacity - used) + released
