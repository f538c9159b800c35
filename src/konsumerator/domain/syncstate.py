"""The metrics-snapshot codec: a ``MetricsSnapshot`` as the status's ``lastSyncState``.

The Go operator's format (every partition, absent values as 0), kept so a
restarted operator, or one taking over from the Go operator, seeds its cache
from the status instead of querying Prometheus at once. Bounded by a byte
budget: above it the field is left out (see ``controllers.reporting``).
"""

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Final

from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.numbers import INT32_MAX, parse_decimal

# Bytes of lastSyncState as JSON (``json.dumps``, as the guest annotation holds it;
# the API server's compact JSON is smaller). 192 KiB keeps ~2 300 busy partitions.
STATE_BUDGET_BYTES: Final = 192 * 1024
# The smallest lastSyncState entry, `"0": {"consumptionRate": 0, ...}, `: a state of
# n partitions takes at least n times this, so a too large one is never built.
MIN_ENTRY_BYTES: Final = 70
# The CRD says int64; a larger value (a broken exporter) would make every write fail.
_INT64_MAX: Final = 2**63 - 1


def state_size(state: object) -> int:
    """Bytes of a ``lastSyncState`` as JSON, measured as the guest annotation writes it."""
    return len(json.dumps(state, sort_keys=True).encode())


def _int64(value: float | None) -> int:
    # The CRD's fields are int64: one larger number makes the whole status
    # write fail (422) and freezes the status. Parsing already refuses such
    # answers; this keeps any snapshot (seeded, simulated) writable.
    if value is not None and -_INT64_BOUND < value < _INT64_BOUND:
        # The common case, without the calls below (every partition of every refresh):
        # finite (NaN fails the comparison) and well inside int64 once truncated.
        return int(value)
    return max(-_INT64_MAX, min(truncate(value), _INT64_MAX))


# Floats strictly inside this bound truncate to an int64 (2**62 is a float exactly).
_INT64_BOUND: Final = 2.0**62


def sync_state(
    snapshot: MetricsSnapshot, *, num_partitions: int, budget_bytes: int = STATE_BUDGET_BYTES
) -> dict[str, dict[str, int]] | None:
    """The Go operator's ``lastSyncState``: every partition, absent values as 0.

    None when it would not fit ``budget_bytes``; decided without building it when even
    all-zero entries would not fit, so a 100 000-partition Consumer costs nothing here.
    """
    if num_partitions * MIN_ENTRY_BYTES > budget_bytes:
        return None
    columns = [
        _column(values, num_partitions=num_partitions)
        for values in (snapshot.production, snapshot.consumption, snapshot.offset)
    ]
    state = {
        key: {"productionRate": a, "consumptionRate": b, "messageBehind": c}
        for key, a, b, c in zip(_keys(num_partitions), *columns, strict=True)
    }
    # Measured only when the largest state of this many partitions, or with values as
    # wide as this one's widest, might not fit: encoding it costs more than building
    # it, on every refresh (some 5 ms at 2,000 partitions).
    if _largest_size(num_partitions) <= budget_bytes or (
        num_partitions and _size_bound(num_partitions, widest=_widest(columns)) <= budget_bytes
    ):
        return state
    return state if state_size(state) <= budget_bytes else None


@functools.lru_cache(maxsize=8)
def _keys(num_partitions: int) -> tuple[str, ...]:
    """The keys of a state of ``num_partitions`` (``"0"``, ``"1"``...), spelled once per
    partition count, not on every refresh. Bounded: a state has at most some 2,800 keys
    (``MIN_ENTRY_BYTES`` in the budget), and a Consumer has one partition count at a time."""
    return tuple(map(str, range(num_partitions)))


@functools.lru_cache(maxsize=8)
def _partitions(num_partitions: int) -> list[int]:
    """``[0, 1, ... num_partitions - 1]``, to compare a column's keys with (read only)."""
    return list(range(num_partitions))


def _column(values: Mapping[int, float], *, num_partitions: int) -> list[int]:
    """``_int64`` of each partition's value (absent: 0).

    Every partition of every refresh. The common case, a value for every partition in
    partition order (as Prometheus' answers and timelines give them) and each finite and
    within int64 once truncated, is converted in C without a lookup per partition;
    ``int`` refuses NaN, infinities and None, and the bounds are checked on the result,
    so anything else takes the general way, value by value.
    """
    if len(values) == num_partitions and list(values) == _partitions(num_partitions):
        try:
            column = list(map(int, values.values()))
        except (ValueError, OverflowError, TypeError):
            pass
        else:
            if not column or (min(column) >= -_INT64_MAX and max(column) <= _INT64_MAX):
                return column
    bound = _INT64_BOUND
    return [
        int(v) if -bound < (v := values.get(p, 0.0)) < bound else _int64(v)
        for p in range(num_partitions)
    ]


def _widest(columns: Sequence[Sequence[int]]) -> int:
    """Characters of the widest of the (non-empty) columns' values, as JSON writes them."""
    highest = max(max(c) for c in columns)
    lowest = min(min(c) for c in columns)
    return max(len(str(highest)), len(str(lowest)))


# A one-entry state with every value one character wide and an empty key, as
# ``state_size`` measures it: an entry with its key's quotes, and 2 bytes more (the
# braces, or the ", " before the next entry). Each character more of a value adds one.
_NARROWEST_ENTRY_BYTES: Final = len(
    json.dumps({"": dict.fromkeys(("consumptionRate", "messageBehind", "productionRate"), 0)})
)
# The widest value: -9223372036854775807.
_WIDEST_VALUE: Final = len(str(-_INT64_MAX))


def _size_bound(num_partitions: int, *, widest: int) -> int:
    """An upper bound of ``state_size`` for any state of ``num_partitions`` partitions
    whose values are at most ``widest`` characters wide."""
    key_bytes = len(str(max(num_partitions - 1, 0)))
    entry_bytes = _NARROWEST_ENTRY_BYTES + 3 * (widest - 1)
    return 2 + num_partitions * (entry_bytes + key_bytes)


def _largest_size(num_partitions: int) -> int:
    """An upper bound of ``state_size`` for any state of ``num_partitions`` partitions."""
    return _size_bound(num_partitions, widest=_WIDEST_VALUE)


class SyncStates:
    """Each Consumer's last ``lastSyncState``, by the snapshot it encodes.

    A snapshot is refreshed every ``minSyncPeriod`` but reported on every
    pass: encoding it once per refresh, not per pass, is most of the cost of
    a pass's status at a few hundred partitions. The state is shared by the
    statuses of those passes, which nobody mutates.
    """

    def __init__(self) -> None:
        self._last: dict[
            str, tuple[MetricsSnapshot, int, int, dict[str, dict[str, int]] | None]
        ] = {}

    def get(
        self, *, key: str, snapshot: MetricsSnapshot, num_partitions: int, budget_bytes: int
    ) -> dict[str, dict[str, int]] | None:
        last = self._last.get(key)
        if last is not None and last[0] is snapshot and last[1:3] == (num_partitions, budget_bytes):
            return last[3]
        state = sync_state(snapshot, num_partitions=num_partitions, budget_bytes=budget_bytes)
        self._last[key] = (snapshot, num_partitions, budget_bytes, state)
        return state

    def snapshot(self, *, key: str) -> MetricsSnapshot | None:
        """The last snapshot reported for ``key`` (kept whether or not it fitted the
        budget): the learned rate's previous sync when the status holds none."""
        last = self._last.get(key)
        return None if last is None else last[0]

    def forget(self, *, key: str) -> None:
        self._last.pop(key, None)


def snapshot_from_state(state: object) -> MetricsSnapshot | None:
    """Inverse of :func:`sync_state`, for seeding the cache after a restart."""
    if not isinstance(state, Mapping) or not state:
        return None
    production: dict[int, float] = {}
    consumption: dict[int, float] = {}
    offset: dict[int, float] = {}
    for key, values in state.items():
        # Anyone may edit the status: a key that is no partition id ("²",
        # 5,000 digits) makes the whole state unusable, as any other damage.
        p = parse_decimal(str(key), maximum=INT32_MAX)
        if p is None or not isinstance(values, Mapping):
            return None
        for target, field in (
            (production, "productionRate"),
            (consumption, "consumptionRate"),
            (offset, "messageBehind"),
        ):
            value = values.get(field)
            if isinstance(value, int | float) and value:
                target[p] = float(value)
    return MetricsSnapshot(production=production, consumption=consumption, offset=offset)
