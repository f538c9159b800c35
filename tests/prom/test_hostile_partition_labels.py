"""Hostile review: partition labels a real Prometheus hands back that no exporter meant.

Any series a query matches can carry any label value (``label_replace`` writes whatever it
is given; so does a hostile or broken exporter). Whatever the labels say, a refresh ends in
a snapshot or a typed ``PrometheusError``, never in another exception (which the provider
does not catch: the reconcile then fails without a status, over and over).

Aspects tested, with PromQL evaluated by a real Prometheus:
- a partition label of 5,000 digits (past Python's 4,300-digit ``int()`` limit) is a
  partition out of range, and the other series are used;
- ``-1``, ``1e3``, ``+1``, ``1_0`` and a number past ``numPartitions`` are rejected and
  counted; ``01`` is partition 1; a NaN duplicate of a partition does not hide its value;
- what an answer held that was not used as given (series dropped: NaN, past
  ``numPartitions``; series of one partition merged) is named by the provider's result,
  for ``MetricsAvailable``'s message, in the refresh and in the passes served from its
  cache; an answer used as given names nothing.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from konsumerator.domain.metrics import MetricKind
from konsumerator.prom import fetching
from konsumerator.prom.parsing import RejectReason
from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec

from .conftest import PrometheusProcess
from .test_against_real_prometheus import CONSUMPTION, PRODUCTION


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client


def _series(value: str, partition: str) -> str:
    return f'label_replace(vector({value}), "partition", "{partition}", "", "")'


def _config(address: str, *, offset: str) -> PrometheusConfig:
    return PrometheusConfig(
        addresses=(address,),
        production=QuerySpec(PRODUCTION, "partition"),
        consumption=QuerySpec(CONSUMPTION, "partition"),
        offset=QuerySpec(offset, "partition"),
        timeout_seconds=5.0,
    )


async def test_a_partition_label_of_thousands_of_digits_is_out_of_range(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    huge = "9" * 5000
    offset = f"{_series('7', huge)} or {_series('3', '0')}"
    result = await fetching.fetch_snapshot(
        client=client, config=_config(prometheus.address, offset=offset), num_partitions=2
    )
    assert dict(result.snapshot.offset) == {0: 3.0}
    report = result.reports[MetricKind.OFFSET].parse
    assert report.rejected == {RejectReason.OUT_OF_RANGE: 1}


async def test_odd_partition_labels_are_rejected_or_read_as_decimal(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    offset = " or ".join(
        [
            _series("100", "-1"),
            _series("100", "1e3"),
            _series("100", "+1"),
            _series("100", "1_0"),
            _series("100", "99999999999999999999999"),
            _series("5", "01"),
            _series("NaN", "1"),
            _series("2", "0"),
        ]
    )
    result = await fetching.fetch_snapshot(
        client=client, config=_config(prometheus.address, offset=offset), num_partitions=2
    )
    assert dict(result.snapshot.offset) == {0: 2.0, 1: 5.0}
    report = result.reports[MetricKind.OFFSET].parse
    assert report.rejected == {
        RejectReason.NEGATIVE_PARTITION: 1,
        RejectReason.INVALID_LABEL: 3,
        RejectReason.OUT_OF_RANGE: 1,
        RejectReason.NOT_FINITE: 1,
    }


def _replica(value: str, partition: str, replica: str) -> str:
    return f'label_replace({_series(value, partition)}, "replica", "{replica}", "", "")'


async def test_series_dropped_or_merged_are_named_while_the_snapshot_is_used(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    offset = " or ".join(
        [
            _replica("3", "0", "a"),
            _replica("4", "0", "b"),  # a second exporter replica: merged, max kept
            _series("NaN", "1"),
            _series("7", "5"),  # the topic grew past numPartitions
        ]
    )
    provider = MetricsProvider(client=client)
    config = _config(prometheus.address, offset=offset)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    refreshed = await provider.get(
        key="ns/c", config=config, num_partitions=2, min_sync_period_seconds=60, now=now
    )
    assert refreshed.refreshed
    assert refreshed.snapshot is not None
    assert dict(refreshed.snapshot.offset) == {0: 4.0}
    problems = refreshed.problems or ""
    assert problems.startswith("offset query: 2 series dropped")
    assert "1 not_finite" in problems
    assert "1 out_of_range" in problems
    assert "1 more series of a partition merged into its maximum" in problems
    cached = await provider.get(
        key="ns/c",
        config=config,
        num_partitions=2,
        min_sync_period_seconds=60,
        now=now + timedelta(seconds=1),
    )
    assert not cached.refreshed
    assert cached.problems == refreshed.problems


async def test_an_answer_used_as_given_names_nothing(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    offset = f"{_series('3', '0')} or {_series('-2', '1')}"  # a negative is clamped: normal
    result = await MetricsProvider(client=client).get(
        key="ns/c",
        config=_config(prometheus.address, offset=offset),
        num_partitions=2,
        min_sync_period_seconds=60,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert result.refreshed
    assert result.problems is None
