"""Which partitions each instance consumes.

Partitions are split into ``ceil(n / per_instance)`` consecutive buckets that
are as even as possible: the first ``n % buckets`` buckets get one partition
more. No bucket exceeds ``per_instance``, so ``per_instance`` is an upper bound
rather than an exact size (10 partitions at 3 per instance give 3,3,2,2, not
3,3,3,1). The bucket index is the instance index and the Deployment suffix.

The layout is identical to the Go operator's SplitIntoBuckets, which is what
lets a cluster migrate between the two without reshuffling partitions.
"""

import functools
from collections.abc import Sequence

from konsumerator.domain.numbers import INT32_MAX, parse_decimal

Assignment = tuple[tuple[int, ...], ...]


@functools.lru_cache(maxsize=256)
def assign(*, num_partitions: int, per_instance: int) -> Assignment:
    """Buckets of consecutive partition ids; empty when either count is below 1."""
    if num_partitions < 1 or per_instance < 1:
        return ()
    buckets = -(-num_partitions // per_instance)
    base, big = divmod(num_partitions, buckets)
    result: list[tuple[int, ...]] = []
    start = 0
    for index in range(buckets):
        size = base + 1 if index < big else base
        result.append(tuple(range(start, start + size)))
        start += size
    return tuple(result)


def format_list(partitions: Sequence[int]) -> str:
    """The annotation and env form: ``"3,4,5"``."""
    return ",".join(str(p) for p in partitions)


def parse_list(text: str) -> tuple[int, ...] | None:
    """Inverse of :func:`format_list`; None for anything that is not a list of ids.

    Strict like the Go parser: no spaces, no ranges, no empty elements, so an
    annotation edited by hand never half-matches an assignment. Ids are
    Kafka's int32; a longer digit string is unreadable, not an exception.
    """
    if not text:
        return None
    result: list[int] = []
    for part in text.split(","):
        partition = parse_decimal(part, maximum=INT32_MAX)
        if partition is None:
            return None
        result.append(partition)
    return tuple(result)


@functools.lru_cache(maxsize=8192)
def range_label(partitions: tuple[int, ...]) -> str:
    """The ``partitions`` label: ``"0"``, ``"6-7"``, or ``"first-last"`` from 3 up.

    Label values are limited to 63 characters; the range form always fits
    for realistic partition counts, and we truncate defensively anyway.
    """
    if len(partitions) < 3:
        label = "-".join(str(p) for p in partitions)
    else:
        label = f"{partitions[0]}-{partitions[-1]}"
    return label[:63]
