"""A pod's QoS class, and how an in-place resize keeps it.

The apiserver refuses a resize that would change a pod's QoS class ("Pod QOS Class
may not change as a result of resizing"), and the autoscaler's sizes do change
it: at a policy's floor requests often equal limits (Guaranteed), above it the
CPU limit is rounded up to whole cores (Burstable). Instead of giving up on
in-place resizing at every such step, ``keep_class`` bends the target the least
that keeps the pod's class:

* a Guaranteed pod keeps requests equal to limits. Its CPU limit comes down to
  the target's CPU request (what sizing says the consumer needs; the limit above
  it is only burst room, which a Guaranteed pod never had); raising the request
  to the limit instead would reserve up to a whole core more than needed and,
  with the limit clamped at ``maxAllowed``, never give CPU back after a
  scale-down. Its memory request goes up to the memory limit (lowering a memory
  limit in place risks an OOM kill, so memory is never bent downwards);
* a Burstable pod whose target would be Guaranteed keeps a CPU limit above its
  request: the pod's current CPU limit stays when it is higher than the target's
  (a cap, not a reservation).

The classes follow Kubernetes (``GetPodQOS``): Guaranteed when every container
has CPU and memory limits equal to its requests, BestEffort when none has any
request or limit, Burstable otherwise. A change that cannot be bent (to or from
BestEffort) is left to the apiserver, whose refusal rolls the instance out.
"""

from collections.abc import Mapping
from enum import StrEnum

from konsumerator.domain.resources import Resources


class QoS(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


def _requests(r: Resources) -> tuple[int | None, int | None]:
    # The apiserver defaults a request to its limit when only the limit is set.
    cpu = r.cpu_req_m if r.cpu_req_m is not None else r.cpu_lim_m
    mem = r.mem_req_b if r.mem_req_b is not None else r.mem_lim_b
    return cpu, mem


def qos_class(containers: Mapping[str, Resources]) -> QoS:
    # One loop, no generators: asked twice for every pod of every instance in every
    # pass (in-place mode).
    empty = guaranteed = True
    for r in containers.values():
        cpu_lim, mem_lim = r.cpu_lim_m, r.mem_lim_b
        if empty and not r.is_empty:
            empty = False
        if guaranteed and (
            cpu_lim is None or mem_lim is None or _requests(r) != (cpu_lim, mem_lim)
        ):
            guaranteed = False
    if empty:
        return QoS.BEST_EFFORT
    return QoS.GUARANTEED if guaranteed else QoS.BURSTABLE


def keep_class(
    current: Mapping[str, Resources], desired: Mapping[str, Resources]
) -> dict[str, Resources]:
    """``desired`` (some of the pod's containers) bent so the pod keeps the class of
    ``current`` (all its containers), where it can be (see the module docstring)."""
    result = dict(desired)
    before = qos_class(current)
    if qos_class({**current, **result}) is before:
        return result
    if before is QoS.GUARANTEED:
        for name, r in result.items():
            result[name] = Resources(
                cpu_req_m=r.cpu_req_m,
                mem_req_b=r.mem_lim_b if r.mem_lim_b is not None else r.mem_req_b,
                cpu_lim_m=r.cpu_req_m if r.cpu_req_m is not None else r.cpu_lim_m,
                mem_lim_b=r.mem_lim_b,
            )
    elif before is QoS.BURSTABLE:
        for name, r in result.items():
            have = current.get(name)
            if (
                have is not None
                and have.cpu_lim_m is not None
                and r.cpu_req_m is not None
                and have.cpu_lim_m > r.cpu_req_m
                and (r.cpu_lim_m is None or have.cpu_lim_m > r.cpu_lim_m)
            ):
                result[name] = Resources(
                    cpu_req_m=r.cpu_req_m,
                    mem_req_b=r.mem_req_b,
                    cpu_lim_m=have.cpu_lim_m,
                    mem_lim_b=r.mem_lim_b,
                )
                break
    return result
