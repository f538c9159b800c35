"""Three queries → one whole `MetricsSnapshot`, or an error and nothing.

Why whole snapshots: the Go operator ran the three queries one after the
other and replaced each map as it arrived, so a failure of the third query
left production and consumption from now next to lag from an hour ago, and
the estimator happily mixed them (``lwolf/konsumerator
pkg/providers/prometheus.go``, ``Update``). Here the three
logical queries run concurrently (each hedged across every address), and a
snapshot is built only when all three succeeded. If any fails, the others
are cancelled and the error is raised: the caller keeps whatever complete
snapshot it had before.

An answer can also arrive and still be unusable (`errors.BadData`): a query
that matched no series, or whose series all lack a usable partition label,
a scalar or string result, or a value of 2^63 and more. The Go operator read
the first two as "every partition at 0", so a typo in a label selector
shrank every instance to its minimum; here they fail the refresh, each one
counted through the observer, and the previous snapshot stays. A partition
missing from an otherwise good answer is still normal (see `prediction`; the
provider keeps a missing offset's last sample for a refresh or two: `metrics.carry_offsets`).

The cost of a refresh is exactly three logical queries per Consumer,
whatever the partition count: every query returns all partitions at once; a
fourth, the optional CPU-usage query (``cpuusage``), returns all pods at once and
runs concurrently with them. It cannot fail the refresh: its failure (a slow
answer included, bounded by the same timeout) is carried in the snapshot as
``cpu_usage.problem``, and when the sizing queries fail it is cancelled.
"""

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

import httpx2

from konsumerator.domain.metrics import MetricKind, MetricsSnapshot
from konsumerator.prom import cpuusage, observing, querying
from konsumerator.prom.errors import BadAnswer, BadData, BadDataReason
from konsumerator.prom.parsing import ParseReport, parse_partitions
from konsumerator.prom.queries import PrometheusConfig
from konsumerator.prom.responses import MatrixData, QueryResponse, VectorData

# Answers of more series than this (the three together) are parsed in a thread: 500,000
# series took 1.6 s of CPU, which on the event loop stalled every other Consumer, the
# watches and the Lease renewal; 10,000 take about 30 ms.
PARSE_IN_THREAD_SERIES: Final = 10_000


@dataclass(frozen=True, slots=True)
class QueryReport:
    """How one logical query went: who answered, warnings, what was dropped."""

    address: str
    warnings: tuple[str, ...]
    parse: ParseReport


@dataclass(frozen=True, slots=True)
class FetchResult:
    snapshot: MetricsSnapshot
    # One entry per MetricKind, always all three.
    reports: Mapping[MetricKind, QueryReport]

    @property
    def problems(self) -> str | None:
        """What the answers held that was not used as given, in words (None: nothing).

        A usable answer can still drop series (NaN or infinite values, a partition label
        that is no number, partitions past ``numPartitions``: a topic that grew) or merge
        several series of one partition (an unaggregated query, two exporter replicas):
        sizing goes on, from the rest or the fallback, and the status must say so, or it
        looks like "metrics are current". Negative values clamped to 0 are not listed:
        ``rate()`` across a counter reset makes them in healthy setups.
        """
        found = [
            text
            for kind in MetricKind
            if (text := _dropped(kind=kind, report=self.reports[kind].parse)) is not None
        ]
        return "; ".join(found) if found else None


def _dropped(*, kind: MetricKind, report: ParseReport) -> str | None:
    parts: list[str] = []
    if report.rejected_total:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(report.rejected.items()))
        parts.append(f"{report.rejected_total} series dropped ({reasons})")
    if report.duplicates:
        parts.append(f"{report.duplicates} more series of a partition merged into its maximum")
    if not parts:
        return None
    examples = f" (e.g. {report.examples[0]})" if report.examples else ""
    return f"{kind.value} query: {', '.join(parts)}{examples}"


async def fetch_snapshot(
    *,
    client: httpx2.AsyncClient,
    config: PrometheusConfig,
    num_partitions: int,
    observer: observing.QueryObserver = observing.NULL_OBSERVER,
) -> FetchResult:
    """Run the three queries concurrently; all must succeed.

    Raises the `PrometheusError` of the first query to fail (in `MetricKind`
    order when several fail together), after cancelling the others.
    """
    if num_partitions < 0:
        raise ValueError(f"num_partitions must be >= 0, got {num_partitions}")
    cpu = (
        None
        if config.cpu_usage is None
        else asyncio.create_task(
            cpuusage.fetch_cpu_usage(
                client=client,
                addresses=config.addresses,
                spec=config.cpu_usage,
                timeout_seconds=config.timeout_seconds,
                observer=observer,
            )
        )
    )
    try:
        found = await _sizing_snapshot(
            client=client, config=config, num_partitions=num_partitions, observer=observer
        )
    except BaseException:
        if cpu is not None:
            cpu.cancel()
            await asyncio.gather(cpu, return_exceptions=True)
        raise
    if cpu is None:
        return found
    # Bounded by the query's own timeout; it never raises (failures are its problem).
    usage = await cpu
    return FetchResult(snapshot=replace(found.snapshot, cpu_usage=usage), reports=found.reports)


async def _sizing_snapshot(
    *,
    client: httpx2.AsyncClient,
    config: PrometheusConfig,
    num_partitions: int,
    observer: observing.QueryObserver,
) -> FetchResult:
    """The three sizing queries; all must succeed."""
    kinds = list(MetricKind)
    tasks = {
        kind: asyncio.create_task(
            querying.query_any(
                client=client,
                addresses=config.addresses,
                query=config.spec_for(kind).query,
                timeout_seconds=config.timeout_seconds,
                kind=kind.value,
                observer=observer,
            )
        )
        for kind in kinds
    }
    try:
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        for kind in kinds:
            task = tasks[kind]
            error = task.exception() if task in done else None
            if error is not None:
                raise error
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    responses = {kind: tasks[kind].result() for kind in kinds}
    parse = functools.partial(
        _parse, responses=responses, config=config, num_partitions=num_partitions, observer=observer
    )
    if sum(_series(response) for response in responses.values()) > PARSE_IN_THREAD_SERIES:
        return await asyncio.to_thread(parse)
    return parse()


def _series(response: QueryResponse) -> int:
    data = response.data
    return len(data.result) if isinstance(data, VectorData | MatrixData) else 1


def _parse(
    *,
    responses: Mapping[MetricKind, QueryResponse],
    config: PrometheusConfig,
    num_partitions: int,
    observer: observing.QueryObserver,
) -> FetchResult:
    """The snapshot of the three answers, or ``BadData``."""
    values: dict[MetricKind, Mapping[int, float]] = {}
    reports: dict[MetricKind, QueryReport] = {}
    bad: list[BadAnswer] = []
    for kind, response in responses.items():
        parsed = parse_partitions(
            data=response.data,
            partition_label=config.spec_for(kind).partition_label,
            num_partitions=num_partitions,
        )
        values[kind] = parsed.values
        reports[kind] = QueryReport(
            address=response.address, warnings=response.warnings, parse=parsed.report
        )
        answer = judge(
            kind=kind,
            query=config.spec_for(kind).query,
            report=parsed.report,
            num_partitions=num_partitions,
        )
        if answer is not None:
            observer.bad_data(kind=kind.value, reason=answer.reason)
            bad.append(answer)
    if bad:
        raise BadData(answers=tuple(bad))
    snapshot = MetricsSnapshot(
        production=values[MetricKind.PRODUCTION],
        consumption=values[MetricKind.CONSUMPTION],
        offset=values[MetricKind.OFFSET],
    )
    return FetchResult(snapshot=snapshot, reports=MappingProxyType(reports))


def judge(
    *, kind: MetricKind, query: str, report: ParseReport, num_partitions: int
) -> BadAnswer | None:
    """Why this answer is unusable, or None when it may be sized from."""

    def bad(reason: BadDataReason, detail: str) -> BadAnswer:
        return BadAnswer(kind=kind.value, query=query, reason=reason, detail=detail)

    examples = f" (e.g. {'; '.join(report.examples)})" if report.examples else ""
    if report.unsupported_result_type:
        return bad(
            BadDataReason.UNSUPPORTED_RESULT_TYPE,
            f"returned a {report.result_type}, not a vector of one series per partition",
        )
    if report.too_large:
        return bad(
            BadDataReason.VALUE_OUT_OF_RANGE,
            f"returned {report.too_large} value(s) of 2^63 or more{examples}",
        )
    if report.accepted == 0 and num_partitions > 0:
        if report.series == 0:
            return bad(BadDataReason.NO_DATA, "returned no series (does it match anything?)")
        return bad(
            BadDataReason.NO_DATA,
            f"returned {report.series} series but none with a usable partition{examples}",
        )
    return None
