"""Three logical queries → one complete snapshot, or an error and nothing.

Aspects tested:
- the Go test vectors: production 100, consumption 10, offset 1000 for
  partition "1", as vector and as matrix, served by 1, 3 and 21 servers;
- each query is mapped with its own partition label;
- exactly three logical queries per refresh, whatever the partition count;
- the three queries run concurrently;
- any failing query (the third one, or an unreachable fleet) raises and
  yields no snapshot at all; a rejected query raises `QueryFailed`;
- per-query reports carry the answering address, warnings and rejections.
"""

import time
from collections.abc import Callable
from typing import Any

import pytest

from konsumerator.domain.metrics import MetricKind
from konsumerator.prom import fetching
from konsumerator.prom.errors import PrometheusUnavailable, QueryFailed
from konsumerator.prom.parsing import RejectReason
from konsumerator.prom.queries import PrometheusConfig, QuerySpec

from .fakeprom import Answer, FakeFleet, Server, failure, matrix, success, vector

PRODUCTION = "sum(rate(konsumerator_messages_production_offset[2m])) by (partition)"
CONSUMPTION = "sum(rate(konsumerator_messages_consumption_offset[2m])) by (partition)"
OFFSET = (
    "max(konsumerator_messages_production_offset) by (partition)"
    " - max(konsumerator_messages_consumption_offset) by (partition)"
)


def config(addresses: list[str], *, timeout: float = 2.0) -> PrometheusConfig:
    return PrometheusConfig(
        addresses=tuple(addresses),
        production=QuerySpec(PRODUCTION, "partition"),
        consumption=QuerySpec(CONSUMPTION, "partition"),
        offset=QuerySpec(OFFSET, "partition"),
        timeout_seconds=timeout,
    )


def go_answers(shape: Callable[[str], dict[str, Any]]) -> dict[str, Answer]:
    return {
        PRODUCTION: success(shape("100")),
        CONSUMPTION: success(shape("10")),
        OFFSET: success(shape("1000")),
    }


def as_vector(value: str) -> dict[str, Any]:
    return vector(({"partition": "1"}, value))


def as_matrix(value: str) -> dict[str, Any]:
    return matrix(({"partition": "1"}, ["0", value]))


@pytest.mark.parametrize("servers", [1, 3, 21])
@pytest.mark.parametrize("shape", [as_vector, as_matrix], ids=["vector", "matrix"])
async def test_go_vectors(servers: int, shape: Callable[[str], dict[str, Any]]) -> None:
    fleet = FakeFleet()
    addresses = [fleet.add(f"prom-{i}", Server(answers=go_answers(shape))) for i in range(servers)]
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(
            client=client, config=config(addresses), num_partitions=2
        )
    assert dict(result.snapshot.production) == {1: 100.0}
    assert dict(result.snapshot.consumption) == {1: 10.0}
    assert dict(result.snapshot.offset) == {1: 1000.0}
    # The estimator's lag = offset / production: the Go vectors' 10 s.
    assert result.snapshot.offset[1] / result.snapshot.production[1] == 10.0
    assert set(result.reports) == set(MetricKind)


async def test_each_query_uses_its_own_partition_label() -> None:
    fleet = FakeFleet()
    address = fleet.add(
        "prom",
        Server(
            answers={
                "p": success(vector(({"partition": "0"}, "1"))),
                "c": success(vector(({"kafka_partition": "1"}, "2"))),
                "o": success(vector(({"p": "2"}, "3"))),
            }
        ),
    )
    cfg = PrometheusConfig(
        addresses=(address,),
        production=QuerySpec("p", "partition"),
        consumption=QuerySpec("c", "kafka_partition"),
        offset=QuerySpec("o", "p"),
    )
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(client=client, config=cfg, num_partitions=3)
    assert dict(result.snapshot.production) == {0: 1.0}
    assert dict(result.snapshot.consumption) == {1: 2.0}
    assert dict(result.snapshot.offset) == {2: 3.0}


@pytest.mark.parametrize("num_partitions", [1, 64, 5000])
async def test_exactly_three_queries_whatever_the_partition_count(num_partitions: int) -> None:
    many = vector(*[({"partition": str(i)}, "5") for i in range(num_partitions)])
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={}, default=success(many)))
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(
            client=client, config=config([address]), num_partitions=num_partitions
        )
    assert len(fleet.requests) == 3
    assert {r.query for r in fleet.requests} == {PRODUCTION, CONSUMPTION, OFFSET}
    assert len(result.snapshot.offset) == num_partitions


async def test_the_three_queries_run_concurrently() -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers=go_answers(as_vector), delay=0.3))
    started = time.monotonic()
    async with fleet.client() as client:
        await fetching.fetch_snapshot(client=client, config=config([address]), num_partitions=2)
    assert time.monotonic() - started < 0.8  # sequential would be >= 0.9


async def test_a_failing_third_query_yields_no_snapshot() -> None:
    answers = go_answers(as_vector)
    answers[OFFSET] = failure(422, "execution", "vector cannot contain metrics with same labelset")
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers=answers))
    async with fleet.client() as client:
        with pytest.raises(QueryFailed, match="execution, HTTP 422") as caught:
            await fetching.fetch_snapshot(client=client, config=config([address]), num_partitions=2)
    assert caught.value.message == "vector cannot contain metrics with same labelset"


async def test_a_failure_cancels_the_other_queries() -> None:
    answers = go_answers(as_vector)
    answers[OFFSET] = failure(400, "bad_data", "parse error")
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers=answers, delays={PRODUCTION: 10, CONSUMPTION: 10}))
    started = time.monotonic()
    async with fleet.client() as client:
        with pytest.raises(QueryFailed, match="parse error"):
            await fetching.fetch_snapshot(
                client=client, config=config([address], timeout=20), num_partitions=2
            )
    assert time.monotonic() - started < 1.0
    assert {r.query for r in fleet.cancelled} == {PRODUCTION, CONSUMPTION}


async def test_an_unreachable_fleet_yields_no_snapshot() -> None:
    fleet = FakeFleet()
    async with fleet.client() as client:
        with pytest.raises(PrometheusUnavailable):
            await fetching.fetch_snapshot(
                client=client, config=config(["http://a:9090", "http://b:9090"]), num_partitions=2
            )
    assert len(fleet.requests) == 6  # 3 queries x 2 addresses, no retries


async def test_reports_carry_address_warnings_and_rejections() -> None:
    answers = go_answers(as_vector)
    answers[OFFSET] = success(
        vector(({"partition": "1"}, "1000"), ({"partition": "x"}, "1"), ({"partition": "9"}, "1")),
        warnings=["PromQL info: metric might not be a counter"],
    )
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers=answers))
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(
            client=client, config=config([address]), num_partitions=2
        )
    report = result.reports[MetricKind.OFFSET]
    assert report.address == address
    assert report.warnings == ("PromQL info: metric might not be a counter",)
    assert dict(report.parse.rejected) == {
        RejectReason.INVALID_LABEL: 1,
        RejectReason.OUT_OF_RANGE: 1,
    }
    assert dict(result.snapshot.offset) == {1: 1000.0}
