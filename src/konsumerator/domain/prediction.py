"""From partition metrics to the CPU and memory an instance needs.

This is the Go operator's NaivePredictor, reproduced to the integer:

* lag(p) is the backlog expressed in seconds of production,
  ``trunc(behind / production)``; zero when nothing is produced.
* The rate an instance must sustain for partition p is production plus the
  backlog spread over ``recoveryTime``: ``(L*P + P*R) div R`` when lagging,
  else ``P``.
* Partitions with no sample borrow the largest known partition's need (the
  v1.2.1 workaround for partially missing series): under-sizing an instance
  because one series went missing is worse than over-sizing it briefly.
* CPU request is ``total*1000 div ratePerCore`` rounded up to ``cpuIncrement``;
  the CPU limit is the request rounded up to whole cores (GOMAXPROCS follows
  the limit, so fractional cores would be wasted); memory is
  ``limit cores * ramPerCore`` for both request and limit.
* Unlike Go's int64 arithmetic, nothing here overflows: the result is capped
  at the largest quantity Kubernetes can represent (``resources.MAX_CPU_M``,
  ``MAX_MEM_B``) instead of wrapping around.

Rates and offsets are truncated toward zero like Go's int64 conversion, so
every test vector of the Go operator holds here. The consumption rate is not
used for sizing (it is reported, and used by nothing else).
"""

from collections.abc import Sequence

from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.resources import MAX_CPU_M, MAX_MEM_B, NO_RESOURCES, Resources
from konsumerator.domain.specs import Autoscaling


def lag_seconds(*, snapshot: MetricsSnapshot, partition: int) -> int:
    """Whole seconds of production the partition is behind; 0 if nothing is produced.

    A negative backlog (the consumer offset scraped after the producer's)
    means "not behind" and yields a negative number that callers treat as 0.
    """
    return snapshot.lag.get(partition, 0)


def max_lag_seconds(*, snapshot: MetricsSnapshot, partitions: Sequence[int]) -> int:
    lag = snapshot.lag
    return max([lag.get(p, 0) for p in partitions], default=0)


def required_rate(*, production: int, lag_s: int, recovery_s: int) -> int:
    """Messages/s to keep up with production and clear the backlog within recovery."""
    if lag_s > 0 and recovery_s > 0:
        return (lag_s * production + production * recovery_s) // recovery_s
    return production


def instance_rate(*, snapshot: MetricsSnapshot, partitions: Sequence[int], recovery_s: int) -> int:
    """Total rate an instance must sustain; missing partitions borrow the largest need."""
    # ``required_rate`` of each partition, inlined: this runs for every instance of
    # every pass that refreshes metrics.
    production, lag = snapshot.production, snapshot.lag
    if len(partitions) == 1:
        # The loop below for one partition, which has no other to borrow from (the
        # common case: one more call per instance and pass than the sum is worth).
        produced = truncate(production.get(partitions[0]))
        lag_s = lag.get(partitions[0], 0)
        if lag_s > 0 and recovery_s > 0:
            produced = (lag_s * produced + produced * recovery_s) // recovery_s
        return produced if produced > 0 else 0
    rates = []
    for p in partitions:
        produced = truncate(production.get(p))
        lag_s = lag.get(p, 0)
        rates.append(
            (lag_s * produced + produced * recovery_s) // recovery_s
            if lag_s > 0 and recovery_s > 0
            else produced
        )
    largest = max([0, *rates])
    return sum(r if r > 0 else largest for r in rates)


def ceil_to(value: int, step: int) -> int:
    remainder = value % step
    return value if remainder == 0 else value + step - remainder


def size_for_rate(*, rate: int, autoscaling: Autoscaling) -> Resources:
    """The resources one container needs to process ``rate`` messages/s.

    Capped at what Kubernetes can represent: Prometheus can report any lag, and
    a rate beyond every machine on earth still has to become a valid quantity.
    """
    cpu_req = ceil_to(rate * 1000 // autoscaling.sizing_rate_per_core, autoscaling.cpu_increment_m)
    cpu_lim = min(ceil_to(cpu_req, 1000), MAX_CPU_M)
    cpu_req = min(cpu_req, cpu_lim)
    memory = min(cpu_lim * autoscaling.ram_per_core_b // 1000, MAX_MEM_B)
    return Resources(cpu_req_m=cpu_req, mem_req_b=memory, cpu_lim_m=cpu_lim, mem_lim_b=memory)


def instance_estimate(
    *, snapshot: MetricsSnapshot, partitions: Sequence[int], autoscaling: Autoscaling
) -> Resources | None:
    """What every container of an instance should get; None when nothing is produced."""
    rate = instance_rate(
        snapshot=snapshot, partitions=partitions, recovery_s=int(autoscaling.recovery_s)
    )
    return size_for_rate(rate=rate, autoscaling=autoscaling) if rate else None


def estimate(
    *,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    autoscaling: Autoscaling,
    fallback: Resources | None,
) -> Resources:
    """What an instance's container should get before policies are applied.

    When no partition of the instance has any production (metrics missing, or
    a silent topic) the container's fallback is used as is, or, without one,
    nothing at all: zero limits would mean "unlimited" to Kubernetes.
    """
    sized = instance_estimate(snapshot=snapshot, partitions=partitions, autoscaling=autoscaling)
    if sized is not None:
        return sized
    return fallback if fallback is not None else NO_RESOURCES
