"""Answers Prometheus gives that must not be sized from are a failed refresh, not zeros.

The rule: a refresh is usable only if every one of the three queries returned a vector
(or matrix) with at least one series carrying a usable partition label, and no value
of 2^63 or more. Otherwise it fails with `BadData`, whose reason names what was wrong
and whose message names the query; the provider keeps the last good snapshot (so no
instance is resized), the status says ``MetricsAvailable=False`` with that reason, and
the observer counts it.

Aspects tested:
* a value >= 2^63 (in any of the three queries) → ``ValueOutOfRange``; just below 2^63
  is fine;
* scalar and string results → ``UnsupportedResultType``; a matrix is used as before
  (its last sample);
* an empty vector (a label typo in the selector) → ``NoData``; so is a vector whose
  series all lack the partition label (a typo in ``partitionLabel``); a vector with some
  partitions missing is still good data;
* the provider keeps the last good snapshot and its time, and reports the reason;
* ``konsumerator_prometheus_bad_data_total{kind,reason}`` counts each bad answer;
* the status: ``MetricsAvailable=False`` with the reason and the query in the message;
* whatever Prometheus returns, the status a pass writes holds only int64 numbers
  (property-based, through the real parsing).
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from konsumerator.domain.metrics import MetricKind, MetricsSnapshot
from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.status import ConsumerStatus, of_pass
from konsumerator.obs.prometheus import PrometheusMetrics
from konsumerator.prom import fetching
from konsumerator.prom.errors import BadData, BadDataReason
from konsumerator.prom.observing import QueryOutcome, RequestOutcome
from konsumerator.prom.parsing import parse_partitions
from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec
from konsumerator.prom.responses import VectorData, VectorSample

from .fakeprom import Answer, FakeFleet, Server, matrix, success, vector

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
QUERIES = {
    MetricKind.PRODUCTION: 'sum(rate(offsets{topic="orders"}[2m])) by (partition)',
    MetricKind.CONSUMPTION: 'sum(rate(committed{topic="orders"}[2m])) by (partition)',
    MetricKind.OFFSET: 'sum(lag{topic="orders"}) by (partition)',
}
CONFIG = PrometheusConfig(
    addresses=("http://prom:9090",),
    production=QuerySpec(QUERIES[MetricKind.PRODUCTION], "partition"),
    consumption=QuerySpec(QUERIES[MetricKind.CONSUMPTION], "partition"),
    offset=QuerySpec(QUERIES[MetricKind.OFFSET], "partition"),
    timeout_seconds=2.0,
)
GOOD = vector(({"partition": "0"}, "100"), ({"partition": "1"}, "50"))


class Recorder:
    def __init__(self) -> None:
        self.bad: list[tuple[str, str]] = []

    def request_finished(
        self, *, address: str, kind: str, outcome: RequestOutcome, duration_seconds: float
    ) -> None:
        pass

    def query_finished(self, *, kind: str, outcome: QueryOutcome, duration_seconds: float) -> None:
        pass

    def bad_data(self, *, kind: str, reason: str) -> None:
        self.bad.append((kind, reason))


def fleet_answering(replacements: dict[MetricKind, dict[str, Any]]) -> FakeFleet:
    answers: dict[str, Answer] = {
        QUERIES[kind]: success(replacements.get(kind, GOOD)) for kind in MetricKind
    }
    fleet = FakeFleet()
    fleet.add("prom", Server(answers=answers))
    return fleet


async def fetch(fleet: FakeFleet, observer: Recorder | None = None) -> fetching.FetchResult:
    async with fleet.client() as client:
        return await fetching.fetch_snapshot(
            client=client, config=CONFIG, num_partitions=2, observer=observer or Recorder()
        )


SCALAR = {"resultType": "scalar", "result": [1700000000.0, "42"]}
STRING = {"resultType": "string", "result": [1700000000.0, "42"]}
EMPTY = vector()
NO_LABEL = vector(({"parition": "0"}, "100"), ({"parition": "1"}, "50"))
HUGE = vector(({"partition": "0"}, "9223372036854775808"), ({"partition": "1"}, "1"))
HUGER = vector(({"partition": "0"}, "1e300"))

BAD: dict[str, tuple[MetricKind, dict[str, Any], BadDataReason, str]] = {
    "offset >= 2^63": (MetricKind.OFFSET, HUGE, BadDataReason.VALUE_OUT_OF_RANGE, "2^63"),
    "production 1e300": (MetricKind.PRODUCTION, HUGER, BadDataReason.VALUE_OUT_OF_RANGE, "2^63"),
    "consumption >= 2^63": (
        MetricKind.CONSUMPTION,
        HUGE,
        BadDataReason.VALUE_OUT_OF_RANGE,
        "2^63",
    ),
    "scalar": (MetricKind.PRODUCTION, SCALAR, BadDataReason.UNSUPPORTED_RESULT_TYPE, "scalar"),
    "string": (MetricKind.OFFSET, STRING, BadDataReason.UNSUPPORTED_RESULT_TYPE, "string"),
    "empty vector": (MetricKind.OFFSET, EMPTY, BadDataReason.NO_DATA, "returned no series"),
    "no series with the partition label": (
        MetricKind.PRODUCTION,
        NO_LABEL,
        BadDataReason.NO_DATA,
        "none with a usable partition",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_answer_fails_the_refresh_naming_the_query(case: str) -> None:
    kind, data, reason, fragment = BAD[case]
    observer = Recorder()
    with pytest.raises(BadData) as info:
        await fetch(fleet_answering({kind: data}), observer)
    assert info.value.condition_reason == reason.value
    message = str(info.value)
    assert f"the {kind.value} query {QUERIES[kind]!r}" in message
    assert fragment in message
    assert observer.bad == [(kind.value, reason)]


GOOD_CASES: dict[str, dict[MetricKind, dict[str, Any]]] = {
    "just below 2^63": {MetricKind.OFFSET: vector(({"partition": "0"}, "9223372036854774784"))},
    "a matrix (its last sample)": {
        MetricKind.PRODUCTION: matrix(({"partition": "0"}, ["1e300", "7"]))
    },
    "one partition missing": {MetricKind.OFFSET: vector(({"partition": "1"}, "5"))},
}


@pytest.mark.parametrize("case", list(GOOD_CASES))
async def test_usable_answer_is_a_snapshot(case: str) -> None:
    observer = Recorder()
    result = await fetch(fleet_answering(GOOD_CASES[case]), observer)
    assert observer.bad == []
    assert result.snapshot.production


async def test_provider_keeps_the_last_good_snapshot_on_bad_data() -> None:
    fleet = fleet_answering({})
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        good = await provider.get(
            key="ns/c", config=CONFIG, num_partitions=2, min_sync_period_seconds=60, now=T0
        )
        assert good.error is None
        fleet.servers["prom"].answers = {
            **fleet.servers["prom"].answers,
            QUERIES[MetricKind.OFFSET]: success(EMPTY),
        }
        later = T0 + timedelta(minutes=2)
        bad = await provider.get(
            key="ns/c", config=CONFIG, num_partitions=2, min_sync_period_seconds=60, now=later
        )
    assert bad.snapshot == good.snapshot
    assert bad.synced_at == T0
    assert not bad.refreshed
    assert bad.error_reason == "NoData"
    assert bad.error is not None
    assert QUERIES[MetricKind.OFFSET] in bad.error


def _plan() -> Plan:
    return Plan(
        applies=(),
        deletes=(),
        counters=Counters(expected=1, running=1),
        instances=(),
        conflicts=(),
        requeue_after_s=None,
        template_hash="1",
    )


def _status(metrics: Metrics) -> dict[str, Any]:
    return of_pass(
        plan=_plan(),
        metrics=metrics,
        autoscaling=True,
        num_partitions=2,
        failures=[],
        conflicts=[],
        previous=ConsumerStatus(),
        generation=1,
        now=T0,
    ).to_body()


def test_status_names_the_reason_and_the_query() -> None:
    error = BadData(
        answers=(
            fetching.judge(
                kind=MetricKind.OFFSET,
                query=QUERIES[MetricKind.OFFSET],
                report=parse_partitions(
                    data=VectorData(result=[]), partition_label="partition", num_partitions=2
                ).report,
                num_partitions=2,
            )
            or pytest.fail("an empty vector is bad data"),
        )
    )
    status = _status(Metrics(error=str(error), error_reason=error.condition_reason))
    (available,) = [c for c in status["conditions"] if c["type"] == "MetricsAvailable"]
    assert available["status"] == "False"
    assert available["reason"] == "NoData"
    assert QUERIES[MetricKind.OFFSET] in available["message"]


def _ints(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return []


SAMPLE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "1e300", "9223372036854775808", "x", ""]),
)


@settings(max_examples=300, deadline=None)
@given(
    samples=st.lists(
        st.tuples(st.integers(min_value=-1, max_value=3).map(str), SAMPLE), max_size=6
    ),
)
def test_status_never_carries_a_number_beyond_int64(samples: list[tuple[str, str]]) -> None:
    data = VectorData(
        result=[VectorSample(metric={"partition": p}, value=(1.0, v)) for p, v in samples]
    )
    parsed = parse_partitions(data=data, partition_label="partition", num_partitions=3)
    answer = fetching.judge(
        kind=MetricKind.OFFSET, query="q", report=parsed.report, num_partitions=3
    )
    if answer is not None:
        metrics = Metrics(error=str(BadData(answers=(answer,))), error_reason=answer.reason)
    else:
        snapshot = MetricsSnapshot(
            production=parsed.values, consumption=parsed.values, offset=parsed.values
        )
        metrics = Metrics(snapshot=snapshot, refreshed=True, synced_at=T0)
    status = _status(metrics)
    json.dumps(status, allow_nan=False)
    assert all(-(2**63) <= i < 2**63 for i in _ints(status)), status


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(min_value=0, max_value=1e308), min_size=1, max_size=3))
def test_status_of_any_snapshot_fits_int64(values: list[float]) -> None:
    """Snapshots that did not come through parsing (seeded, simulated) too."""
    mapping = dict(enumerate(values))
    snapshot = MetricsSnapshot(production=mapping, consumption=mapping, offset=mapping)
    status = _status(Metrics(snapshot=snapshot, refreshed=True, synced_at=T0))
    assert all(-(2**63) <= i < 2**63 for i in _ints(status))


async def test_bad_data_is_counted_in_the_operator_metrics() -> None:
    registry = CollectorRegistry()
    observer = PrometheusMetrics(registry=registry)
    for data in (EMPTY, SCALAR):
        with pytest.raises(BadData):
            async with fleet_answering({MetricKind.OFFSET: data}).client() as client:
                await fetching.fetch_snapshot(
                    client=client, config=CONFIG, num_partitions=2, observer=observer
                )

    def bad(reason: str) -> float | None:
        return registry.get_sample_value(
            "konsumerator_prometheus_bad_data_total", {"kind": "offset", "reason": reason}
        )

    assert bad("NoData") == 1
    assert bad("UnsupportedResultType") == 1
    succeeded = registry.get_sample_value(
        "konsumerator_prometheus_queries_total", {"kind": "offset", "outcome": "success"}
    )
    assert succeeded == 2  # the query itself was answered; its data was not usable
