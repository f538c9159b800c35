"""Hostile review: partition labels a real Prometheus hands back that no exporter meant.

Any series a query matches can carry any label value (``label_replace`` writes whatever it
is given; so does a hostile or broken exporter). Whatever the labels say, a refresh ends in
a snapshot or a typed ``PrometheusError``, never in another exception (which the provider
does not catch: the reconcile then fails without a status, over and over).

Aspects tested, with PromQL evaluated by a real Prometheus:
- a partition label of 5,000 digits (past Python's 4,300-digit ``int()`` limit) is a
  partition out of range, and the other series are used;
- ``-1``, ``1e3``, ``+1``, ``1_0`` and a number past ``numPartitions`` are rejected and
  counted; ``01`` is partition 1; a NaN duplicate of a partition does not hide its value.
"""

from collections.abc import AsyncIterator

import httpx2
import pytest

from konsumerator.domain.metrics import MetricKind
from konsumerator.prom import fetching
from konsumerator.prom.parsing import RejectReason
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
