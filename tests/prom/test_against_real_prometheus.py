"""The prom layer against a real Prometheus scraping a fake Kafka exporter.

Aspects tested:
- realistic queries: `sum by (partition)` over a lag gauge and `rate()` over
  offset counters map to the right per-partition values in one snapshot;
- a range selector (matrix result) uses each series' last sample;
- duplicates from an unaggregated query keep the maximum;
- (scalar, string and empty results are bad data: test_bad_answers.py);
- invalid PromQL → `QueryFailed` (bad_data, HTTP 400) with Prometheus's own
  message; a failing evaluation → `QueryFailed` (execution, HTTP 422);
- a second, dead address (refused port, unparsable URL) does not matter;
- stopping Prometheus → `PrometheusUnavailable`, and the provider keeps the
  previous complete snapshot while reporting the error.
"""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from konsumerator.domain.metrics import MetricKind
from konsumerator.prom import fetching, querying
from konsumerator.prom.errors import PrometheusUnavailable, QueryFailed
from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec

from .conftest import (
    CONSUMPTION_RATES,
    PRODUCTION_RATES,
    RATE_WINDOW,
    PrometheusProcess,
    free_port,
)

PRODUCTION = (
    f'sum by (partition) (rate(kafka_topic_partition_current_offset{{topic="t"}}[{RATE_WINDOW}]))'
)
CONSUMPTION = (
    "sum by (partition) "
    f'(rate(kafka_consumergroup_current_offset{{topic="t",consumergroup="g"}}[{RATE_WINDOW}]))'
)
OFFSET = 'sum by (partition) (kafka_consumergroup_lag{topic="t"})'


def config(addresses: tuple[str, ...], *, offset: str = OFFSET) -> PrometheusConfig:
    return PrometheusConfig(
        addresses=addresses,
        production=QuerySpec(PRODUCTION, "partition"),
        consumption=QuerySpec(CONSUMPTION, "partition"),
        offset=QuerySpec(offset, "partition"),
        timeout_seconds=5.0,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    # trust_env=False: a proxy from the environment must not intercept loopback.
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client


async def test_realistic_queries_give_per_partition_values(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    result = await fetching.fetch_snapshot(
        client=client, config=config((prometheus.address,)), num_partitions=2
    )
    snapshot = result.snapshot
    assert dict(snapshot.offset) == {0: 300.0, 1: 50.0}
    # rate() extrapolates over scrape jitter: compare loosely.
    assert snapshot.production == pytest.approx(PRODUCTION_RATES, rel=0.2)
    assert snapshot.consumption == pytest.approx(CONSUMPTION_RATES, rel=0.2)
    for report in result.reports.values():
        assert report.address == prometheus.address
        assert report.parse.rejected_total == 0


async def test_partitions_beyond_the_spec_are_dropped(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    result = await fetching.fetch_snapshot(
        client=client, config=config((prometheus.address,)), num_partitions=1
    )
    assert dict(result.snapshot.offset) == {0: 300.0}
    assert result.reports[MetricKind.OFFSET].parse.rejected_total == 1


async def test_a_range_selector_uses_the_last_sample(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    cfg = config((prometheus.address,), offset='kafka_consumergroup_lag{topic="t"}[5s]')
    result = await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert result.reports[MetricKind.OFFSET].parse.result_type == "matrix"
    assert dict(result.snapshot.offset) == {0: 300.0, 1: 50.0}


async def test_unaggregated_duplicates_keep_the_maximum(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    # Topic "t" partition 0 has lag 300, topic "other" partition 0 has 999.
    cfg = config((prometheus.address,), offset="kafka_consumergroup_lag")
    result = await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert dict(result.snapshot.offset) == {0: 999.0, 1: 50.0}
    assert result.reports[MetricKind.OFFSET].parse.duplicates == 1


async def test_invalid_promql_is_rejected_with_prometheus_message(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    cfg = config((prometheus.address,), offset="sum by (partition (kafka_consumergroup_lag")
    with pytest.raises(QueryFailed) as caught:
        await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert caught.value.error_type == "bad_data"
    assert caught.value.status_code == 400
    assert "parse error" in caught.value.message


async def test_a_failing_evaluation_is_rejected_as_execution_error(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    # Both topics have a partition-0 series: a one-to-one match is ambiguous.
    query = "kafka_consumergroup_lag + on (partition) kafka_consumergroup_lag"
    with pytest.raises(QueryFailed) as caught:
        await querying.query_instant(
            client=client, address=prometheus.address, query=query, timeout_seconds=5
        )
    assert caught.value.error_type == "execution"
    assert caught.value.status_code == 422
    assert "many-to-many matching not allowed" in caught.value.message


async def test_what_is_shown_of_a_failing_evaluation_quotes_no_series_and_no_password(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    # Prometheus's message names the duplicate series with all their labels: data from a
    # Prometheus the Consumer's author may not be meant to read. It stays in `message`
    # (the debug log) and out of the text that reaches status and Events.
    address = prometheus.address.replace("http://", "http://admin:hunter2@")
    query = "kafka_consumergroup_lag + on (partition) kafka_consumergroup_lag"
    with pytest.raises(QueryFailed) as caught:
        await querying.query_instant(client=client, address=address, query=query, timeout_seconds=5)
    assert 'topic="other"' in caught.value.message
    shown = str(caught.value)
    assert "topic" not in shown
    assert "hunter2" not in shown
    assert shown == (
        f"Prometheus at {prometheus.address.replace('http://', 'http://***@')} rejected the"
        " query: execution, HTTP 422 (Prometheus's message is in the operator's debug log)"
    )


async def test_a_dead_second_address_does_not_matter(
    prometheus: PrometheusProcess, client: httpx2.AsyncClient
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = config((dead, prometheus.address, "%%22.%2"))
    result = await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert dict(result.snapshot.offset) == {0: 300.0, 1: 50.0}
    assert {r.address for r in result.reports.values()} == {prometheus.address}


async def test_a_stopped_prometheus_is_unavailable_and_the_snapshot_is_kept(
    start_prometheus: Callable[[], PrometheusProcess], client: httpx2.AsyncClient
) -> None:
    own = start_prometheus()  # not the shared instance: this test stops it
    cfg = config((own.address,))
    provider = MetricsProvider(client=client)
    t0 = datetime.now(UTC)
    first = await provider.get(
        key="ns/c", config=cfg, num_partitions=2, min_sync_period_seconds=30, now=t0
    )
    assert first.refreshed
    assert first.snapshot is not None
    assert dict(first.snapshot.offset) == {0: 300.0, 1: 50.0}

    own.stop()

    with pytest.raises(PrometheusUnavailable) as caught:
        await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=2)
    assert own.address in str(caught.value)

    later = t0 + timedelta(seconds=31)
    after = await provider.get(
        key="ns/c", config=cfg, num_partitions=2, min_sync_period_seconds=30, now=later
    )
    assert not after.refreshed
    assert after.snapshot == first.snapshot
    assert after.synced_at == t0
    assert after.error is not None
    assert "no Prometheus address answered" in after.error
