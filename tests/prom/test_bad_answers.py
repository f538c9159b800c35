"""Answers a real Prometheus gives that must not be sized from: a failed refresh, not zeros.

The Go operator read a scalar or an empty result as "every partition at 0" and sized
every instance down to its minimum; a value of 2^63 or more made every status write fail.
Here each is ``BadData``, whose reason becomes the ``MetricsAvailable`` reason and whose
message names the query, while the provider keeps the last good snapshot.

Aspects tested, with PromQL evaluated by a real Prometheus:
- a value >= 2^63 (``... * 2^63``, ``1e300``) → ``ValueOutOfRange``; a value just below
  2^63 is used;
- a scalar and a string result → ``UnsupportedResultType``; a matrix (range selector) is
  used (its last sample, see test_against_real_prometheus.py);
- a selector with a typo (no series at all) → ``NoData``; a ``partitionLabel`` with a typo
  (series, but none with the label) → ``NoData``;
- after a good refresh, a bad answer keeps the previous snapshot and its time, and says why.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from konsumerator.domain.metrics import MetricKind
from konsumerator.prom import fetching
from konsumerator.prom.errors import BadData, BadDataReason
from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec

from .conftest import PrometheusProcess
from .test_against_real_prometheus import CONSUMPTION, OFFSET, PRODUCTION


def config(
    address: str, *, offset: str = OFFSET, offset_label: str = "partition"
) -> PrometheusConfig:
    return PrometheusConfig(
        addresses=(address,),
        production=QuerySpec(PRODUCTION, "partition"),
        consumption=QuerySpec(CONSUMPTION, "partition"),
        offset=QuerySpec(offset, offset_label),
        timeout_seconds=5.0,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client


def _one(value: str) -> str:
    """A vector of one series, partition 0, with ``value``."""
    return f'label_replace(vector({value}), "partition", "0", "", "")'


BAD: dict[str, tuple[str, str, BadDataReason, str]] = {
    "lag times 2^63": (
        f"{OFFSET} * 2^63",
        "partition",
        BadDataReason.VALUE_OUT_OF_RANGE,
        "value(s) of 2^63 or more",
    ),
    "a lag of 1e300": (_one("1e300"), "partition", BadDataReason.VALUE_OUT_OF_RANGE, "2^63"),
    "a scalar": (
        "scalar(sum(kafka_consumergroup_lag))",
        "partition",
        BadDataReason.UNSUPPORTED_RESULT_TYPE,
        "returned a scalar",
    ),
    "a string": ('"300"', "partition", BadDataReason.UNSUPPORTED_RESULT_TYPE, "returned a string"),
    "a selector with a typo": (
        'sum by (partition) (kafka_consumergroup_lag{topic="typo"})',
        "partition",
        BadDataReason.NO_DATA,
        "returned no series",
    ),
    "a partitionLabel with a typo": (
        OFFSET,
        "parition",
        BadDataReason.NO_DATA,
        "returned 2 series but none with a usable partition",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_answer_is_bad_data_naming_the_query(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient, case: str
) -> None:
    query, label, reason, fragment = BAD[case]
    cfg = config(prometheus.address, offset=query, offset_label=label)
    with pytest.raises(BadData) as caught:
        await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert caught.value.condition_reason == reason.value
    assert f"the offset query {query!r}" in str(caught.value)
    assert fragment in str(caught.value)


async def test_a_value_just_below_2_63_is_used(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    cfg = config(prometheus.address, offset=_one("9223372036854774784"))
    result = await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert dict(result.snapshot.offset) == {0: 9223372036854774784.0}
    assert result.reports[MetricKind.OFFSET].parse.too_large == 0


async def test_bad_data_keeps_the_last_good_snapshot(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    provider = MetricsProvider(client=client)
    t0 = datetime.now(UTC)
    good = await provider.get(
        key="ns/c",
        config=config(prometheus.address),
        num_partitions=2,
        min_sync_period_seconds=30,
        now=t0,
    )
    assert good.snapshot is not None
    assert dict(good.snapshot.offset) == {0: 300.0, 1: 50.0}

    typo = 'sum by (partition) (kafka_consumergroup_lag{topic="typo"})'
    bad = await provider.get(
        key="ns/c",
        config=config(prometheus.address, offset=typo),
        num_partitions=2,
        min_sync_period_seconds=30,
        now=t0 + timedelta(seconds=31),
    )
    assert not bad.refreshed
    assert bad.snapshot == good.snapshot
    assert bad.synced_at == t0
    assert bad.error_reason == "NoData"
    assert bad.error is not None
    assert typo in bad.error
