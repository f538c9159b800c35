"""A query result → one value per partition, and an account of what was dropped.

The partition id is `int(labels[partition_label])`. Everything that cannot
become a trustworthy `partition → value` pair is skipped and *counted* by
reason in a `ParseReport`, so the caller can log it and export it as a
metric: a typo in `partitionLabel` otherwise looks exactly like "no lag".

Decisions (and why):

- **Duplicate partitions keep the maximum.** Duplicates mean the query did
  not aggregate by partition: typically two replicas of a lag exporter, or
  two consumer groups / topics sharing a partition label. Prometheus does not
  order instant-vector results, so the Go operator's "last one wins" could
  pick a different series on every sync and make the autoscaler flap. The
  maximum is deterministic, and for rates and lag it errs towards more
  resources rather than starving a lagging partition. Duplicates are counted
  so the query can be fixed.
- **Negative values are clamped to 0.** `rate()` across a counter reset or
  a scrape-timing skew between the producer-offset and consumer-offset
  series makes rates and `produced - consumed` momentarily negative. A
  negative lag means "caught up", i.e. no lag; a negative rate means no
  traffic we can account for. The clamp is counted, not rejected.
- **Values of 2^63 and more are counted as `too_large`** and not kept: no
  int64 can hold them (the status's `lastSyncState` is int64), and no real
  topic has that many messages per second or behind. The fetch step treats
  such an answer as bad data as a whole (see `fetching`).
- **NaN and ±Inf are missing.** They come from divisions by zero and empty
  ranges; treating them as numbers would poison the estimate, so the
  partition falls back to the spec's missing-metrics strategy instead.
- **Matrix results use the last sample of each series** (Go parity), which
  lets range-vector selectors be used directly as queries.
- **Scalar and string results are unsupported**: an empty mapping and the
  report says so; the fetch step turns that into bad data (Go took it as
  "no partition has a value", i.e. every partition at 0).
- **Partitions >= num_partitions are dropped** and counted: they belong to a
  topic that grew beyond the spec, or to another topic.

Partition label syntax is strict ASCII decimal (`"007"` is 7): Python's
`int()` would also accept `" 7"`, `"+7"` and `"1_000"`, which Go's `Atoi`
mostly rejects and which are never what an exporter meant.
"""

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from konsumerator.domain.numbers import MAX_DIGITS, is_decimal, parse_decimal
from konsumerator.prom.responses import (
    MatrixData,
    QueryData,
    SamplePair,
    ScalarData,
    StringData,
    VectorData,
)

# How many human-readable examples of rejected samples a report keeps: enough
# to diagnose a query, bounded so a 10k-series mistake does not flood logs.
MAX_EXAMPLES = 5


class RejectReason(StrEnum):
    MISSING_LABEL = "missing_label"
    INVALID_LABEL = "invalid_label"
    NEGATIVE_PARTITION = "negative_partition"
    OUT_OF_RANGE = "out_of_range"
    NOT_FINITE = "not_finite"
    NO_VALUE = "no_value"
    TOO_LARGE = "too_large"


# The first value no int64 holds; floats just below it are exact integers.
INT64_LIMIT = 2.0**63


def _no_rejections() -> Mapping[RejectReason, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ParseReport:
    """What happened to each series of one result.

    `accepted` counts distinct partitions kept. `rejected` counts skipped
    series by reason. `duplicates` counts series whose partition had already
    been seen (merged with max); `clamped` counts negative values set to 0.
    `unsupported_result_type` is set for scalar/string results.
    """

    result_type: str
    series: int = 0
    accepted: int = 0
    rejected: Mapping[RejectReason, int] = field(default_factory=_no_rejections)
    duplicates: int = 0
    clamped: int = 0
    unsupported_result_type: bool = False
    examples: tuple[str, ...] = ()

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def too_large(self) -> int:
        return self.rejected.get(RejectReason.TOO_LARGE, 0)


@dataclass(frozen=True, slots=True)
class ParsedValues:
    values: Mapping[int, float]
    report: ParseReport


def parse_value(raw: str) -> float | None:
    """A Prometheus sample string → a usable float, or None for NaN/±Inf/junk."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_partition(raw: str | None, *, num_partitions: int) -> int | RejectReason:
    """The partition a label names, or why it names none we consume.

    A decimal of any length is a partition number; one past ``num_partitions``
    (thousands of digits included, which no ``int()`` may read) is out of range.
    """
    if raw is None:
        return RejectReason.MISSING_LABEL
    digits = raw[1:] if raw.startswith("-") else raw
    if not is_decimal(digits):
        return RejectReason.INVALID_LABEL
    if raw.startswith("-"):
        return RejectReason.NEGATIVE_PARTITION
    partition = parse_decimal(digits)
    if partition is None or partition >= num_partitions:
        return RejectReason.OUT_OF_RANGE
    return partition


def _all_common(
    data: VectorData, *, partition_label: str, num_partitions: int
) -> dict[int, float] | None:
    """The values of an answer whose every series is common (a decimal partition in
    range, seen once, with a finite value in [0, 2^63)): what the rules give it, in a few
    passes of C over all series at once; None when one series is not common (the
    rules then take the answer series by series).

    A refresh of 2,000 partitions parses 6,000 series, nearly always all of them
    common. The checks: every label is ASCII digits (checked on all labels joined; an
    empty one fails ``int``), ``int`` and ``float`` read every label and value, as many
    partitions as series (no duplicate), the largest partition below
    ``num_partitions``, and the values' sum finite (a NaN or an infinity makes it NaN
    or infinite), so that their least and greatest then bound them all.
    """
    result = data.result
    try:
        labels = [sample.metric[partition_label] for sample in result]
        texts = [sample.value[1] for sample in result]  # type: ignore[index]
    except (KeyError, TypeError):  # a label missing, a sample without a value
        return None
    joined = "".join(labels)
    if not (joined.isascii() and joined.isdigit()):
        return None
    try:
        partitions = list(map(int, labels))
        floats = list(map(float, texts))
    except ValueError:
        return None
    values = dict(zip(partitions, floats, strict=True))
    if len(values) != len(result) or (partitions and max(partitions) >= num_partitions):
        return None
    if floats and not (
        math.isfinite(sum(floats)) and min(floats) >= 0.0 and max(floats) < INT64_LIMIT
    ):
        return None
    return values


def parse_partitions(*, data: QueryData, partition_label: str, num_partitions: int) -> ParsedValues:
    if num_partitions < 0:
        raise ValueError(f"num_partitions must be >= 0, got {num_partitions}")
    if isinstance(data, ScalarData | StringData):
        kind = "scalar" if isinstance(data, ScalarData) else "string"
        report = ParseReport(
            result_type=kind,
            unsupported_result_type=True,
            examples=(f"{kind} results are not supported; the query must return a vector",),
        )
        return ParsedValues(values=MappingProxyType({}), report=report)
    if isinstance(data, VectorData):
        common = _all_common(data, partition_label=partition_label, num_partitions=num_partitions)
        if common is not None:
            report = ParseReport(result_type="vector", series=len(common), accepted=len(common))
            return ParsedValues(values=MappingProxyType(common), report=report)

    values: dict[int, float] = {}
    rejected: Counter[RejectReason] = Counter()
    examples: list[str] = []
    duplicates = clamped = 0

    def reject(reason: RejectReason, detail: str) -> None:
        rejected[reason] += 1
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{reason}: {detail}")

    def by_the_rules(labels: Mapping[str, str], pair: SamplePair | None) -> None:
        """One series, every rule in turn (the fast path below takes the common ones)."""
        nonlocal duplicates, clamped
        raw = labels.get(partition_label)
        partition = parse_partition(raw, num_partitions=num_partitions)
        if partition is RejectReason.OUT_OF_RANGE:
            shown = raw if raw is None or len(raw) <= 24 else f"{raw[:20]}... ({len(raw)} digits)"
            reject(partition, f"partition {shown} >= {num_partitions}")
            return
        if isinstance(partition, RejectReason):
            reject(partition, f"{partition_label}={raw!r} in {labels}")
            return
        if pair is None:
            reject(RejectReason.NO_VALUE, f"partition {partition} has no float sample")
            return
        value = parse_value(pair[1])
        if value is None:
            reject(RejectReason.NOT_FINITE, f"partition {partition} value {pair[1]!r}")
            return
        if value >= INT64_LIMIT:
            reject(RejectReason.TOO_LARGE, f"partition {partition} value {pair[1]!r} >= 2^63")
            return
        if value < 0:
            clamped += 1
            value = 0.0
        if partition in values:
            duplicates += 1
            value = max(value, values[partition])
        values[partition] = value

    if isinstance(data, VectorData):
        result_type = "vector"
        series = len(data.result)
        for sample in data.result:
            labels, pair = sample.metric, sample.value
            raw = labels.get(partition_label)
            if raw is not None and pair is not None and raw.isdigit() and raw.isascii():
                # The common series, inline: a partition in range, first seen, with a
                # finite value in [0, 2^63). What ``by_the_rules`` would do with it,
                # without its calls (a refresh of 2,000 partitions parses 6,000 series),
                # in series order, as it would (a duplicate's max keeps the first of
                # two equal zeros: the order decides the sign of a zero).
                first = int(raw) if len(raw) <= MAX_DIGITS else num_partitions
                if first < num_partitions and first not in values:
                    try:
                        value = float(pair[1])
                    except ValueError:
                        value = math.nan  # junk: the rules reject it
                    # NaN and infinities fail the comparison: the rules reject them.
                    if 0.0 <= value < INT64_LIMIT:
                        values[first] = value
                        continue
            by_the_rules(labels, pair)
    else:
        assert isinstance(data, MatrixData)
        result_type = "matrix"
        series = len(data.result)
        # Prometheus returns each series' samples in time order: last = newest.
        for s in data.result:
            by_the_rules(s.metric, s.values[-1] if s.values else None)

    report = ParseReport(
        result_type=result_type,
        series=series,
        accepted=len(values),
        rejected=MappingProxyType(dict(rejected)),
        duplicates=duplicates,
        clamped=clamped,
        examples=tuple(examples),
    )
    return ParsedValues(values=MappingProxyType(values), report=report)
