"""Clamping estimates to what a Consumer allows: per container, then per Consumer.

Per container (the VPA-style ``containerPolicies``): the limit is clamped to
``[min, max]`` and the request to ``[min, limit]``, for cpu and memory
independently. Deliberate differences from the Go operator (see
docs/compatibility.md):

* A bound that is not given is unbounded. Go read a missing ``maxAllowed.cpu``
  as zero and clamped CPU to nothing, and a policy with only ``minAllowed``
  capped at the minimum.
* min > max is rejected by validation instead of being swapped at run time.
* Under critical lag a container without a policy keeps its estimate instead
  of crashing the operator on a nil dereference.

Per Consumer (``globalPolicy.maxAllowed``): the sum of requests over all
instances may not exceed the pool. Go built its pool empty on every reconcile,
so it only capped the increments of one pass and let the total grow without
bound; here the pool starts from what existing instances already hold, and
creations draw from it too. Decreases always pass and return capacity. The
pool caps requests only and never cuts below ``minAllowed``.

The shortage (what the estimate wanted minus what was granted, in
millicores) is what marks an instance SATURATED.
"""

from dataclasses import dataclass

import msgspec

from konsumerator.domain.resources import Resources
from konsumerator.domain.specs import Bounds, GlobalPool


def _clamp(value: int | None, low: int | None, high: int | None) -> int | None:
    if value is None:
        value = low if low is not None else None
        return value
    if high is not None and value > high:
        value = high
    if low is not None and value < low:
        value = low
    return value


def apply_policy(*, estimate: Resources, bounds: Bounds | None) -> Resources:
    """Clamp one container's estimate to its policy; no policy means no clamp."""
    if bounds is None:
        return estimate
    cpu_lim = _clamp(estimate.cpu_lim_m, bounds.min_cpu_m, bounds.max_cpu_m)
    mem_lim = _clamp(estimate.mem_lim_b, bounds.min_mem_b, bounds.max_mem_b)
    cpu_req = _clamp(estimate.cpu_req_m, bounds.min_cpu_m, cpu_lim)
    mem_req = _clamp(estimate.mem_req_b, bounds.min_mem_b, mem_lim)
    return Resources(cpu_req_m=cpu_req, mem_req_b=mem_req, cpu_lim_m=cpu_lim, mem_lim_b=mem_lim)


def critical(*, estimate: Resources, bounds: Bounds | None) -> Resources:
    """Under critical lag a container gets its maximum, requests equal to limits.

    A side without a maximum keeps the estimate for that side.
    """
    if bounds is None:
        return estimate
    cpu = bounds.max_cpu_m if bounds.max_cpu_m is not None else estimate.cpu_req_m
    cpu_lim = bounds.max_cpu_m if bounds.max_cpu_m is not None else estimate.cpu_lim_m
    mem = bounds.max_mem_b if bounds.max_mem_b is not None else estimate.mem_req_b
    mem_lim = bounds.max_mem_b if bounds.max_mem_b is not None else estimate.mem_lim_b
    return Resources(cpu_req_m=cpu, mem_req_b=mem, cpu_lim_m=cpu_lim, mem_lim_b=mem_lim)


@dataclass(frozen=True, slots=True)
class Grant:
    resources: Resources
    cpu_shortage_m: int
    mem_shortage_b: int


class Pool:
    """The remaining global capacity during one planning pass.

    Mutable on purpose and local to one ``plan()`` call: instances draw from
    it in index order, so the result is deterministic.
    """

    def __init__(self, *, pool: GlobalPool | None, used_cpu_m: int, used_mem_b: int) -> None:
        self._cpu = None if pool is None or pool.cpu_m is None else pool.cpu_m - used_cpu_m
        self._mem = None if pool is None or pool.mem_b is None else pool.mem_b - used_mem_b

    @property
    def unbounded(self) -> bool:
        """No global pool: every grant is what was wanted."""
        return self._cpu is None and self._mem is None

    @property
    def available(self) -> tuple[int | None, int | None]:
        return self._cpu, self._mem

    def restore(self, available: tuple[int | None, int | None]) -> None:
        """Undo grants for a proposal that was not applied (it holds nothing)."""
        self._cpu, self._mem = available

    def grant(self, *, current: Resources, wanted: Resources, bounds: Bounds | None) -> Grant:
        """Grant as much of the request increase as the pool holds.

        The pool caps requests, the reservation the scheduler makes; limits
        stay what the policy allows, so a cut instance can still burst and
        never ends up with a limit of 0 (which Kubernetes reads as
        "unlimited"). A request is never cut below the container's
        ``minAllowed``: an instance that runs at all needs its floor, even if
        the floors together overdraw the pool.
        """
        if self._cpu is None and self._mem is None:
            return Grant(resources=wanted, cpu_shortage_m=0, mem_shortage_b=0)
        cpu_req, cpu_short, self._cpu = _draw(
            current=current.cpu_req_m,
            wanted=wanted.cpu_req_m,
            available=self._cpu,
            floor=bounds.min_cpu_m if bounds else None,
        )
        mem_req, mem_short, self._mem = _draw(
            current=current.mem_req_b,
            wanted=wanted.mem_req_b,
            available=self._mem,
            floor=bounds.min_mem_b if bounds else None,
        )
        granted = msgspec.structs.replace(wanted, cpu_req_m=cpu_req, mem_req_b=mem_req)
        return Grant(resources=granted, cpu_shortage_m=cpu_short, mem_shortage_b=mem_short)


def _draw(
    *, current: int | None, wanted: int | None, available: int | None, floor: int | None
) -> tuple[int | None, int, int | None]:
    """(granted request, shortage, remaining pool) for one resource."""
    if wanted is None or available is None:
        return wanted, 0, available
    held = current or 0
    delta = wanted - held
    if delta <= 0:
        return wanted, 0, available - delta
    granted = held + min(delta, max(available, 0))
    if floor is not None:
        granted = max(granted, min(floor, wanted))
    return granted, wanted - granted, available - (granted - held)
