"""What a container gets when there are no metrics to size it from.

Two sources, as in the Go operator (v1.2.0):

* When the Consumer is large (more than 10 instances) and more than half of
  its instances already exist, the resources of the existing container with
  the lowest (``min``) or highest (``max``) CPU request: the fleet itself is
  the best guess for a newcomer.
* Otherwise the container's policy: ``minAllowed`` or ``maxAllowed`` as both
  requests and limits.

A container with neither gets no fallback, and the estimate (all zeros) then
leaves its resources unset.
"""

from collections.abc import Mapping, Sequence

from konsumerator.domain.resources import Resources
from konsumerator.domain.specs import Bounds, FallbackStrategy


def from_policy(*, bounds: Bounds, strategy: FallbackStrategy) -> Resources | None:
    if strategy is FallbackStrategy.MAX:
        cpu, mem = bounds.max_cpu_m, bounds.max_mem_b
    else:
        cpu, mem = bounds.min_cpu_m, bounds.min_mem_b
    if cpu is None and mem is None:
        return None
    return Resources(cpu_req_m=cpu, mem_req_b=mem, cpu_lim_m=cpu, mem_lim_b=mem)


def compute(
    *,
    strategy: FallbackStrategy,
    policies: Mapping[str, Bounds],
    num_instances: int,
    existing: Sequence[Mapping[str, Resources]],
) -> dict[str, Resources]:
    """Fallback per container name.

    ``existing`` holds, per listed Deployment in a stable order, its
    containers' current resources. Ties keep the first one seen.
    """
    if num_instances > 10 and len(existing) > num_instances // 2:
        chosen: dict[str, Resources] = {}
        for containers in existing:
            for name, res in containers.items():
                best = chosen.get(name)
                if best is None:
                    chosen[name] = res
                    continue
                cpu, best_cpu = res.cpu_req_m or 0, best.cpu_req_m or 0
                if cpu > best_cpu if strategy is FallbackStrategy.MAX else cpu < best_cpu:
                    chosen[name] = res
        return chosen
    result: dict[str, Resources] = {}
    for name, bounds in policies.items():
        fallback = from_policy(bounds=bounds, strategy=strategy)
        if fallback is not None:
            result[name] = fallback
    return result
