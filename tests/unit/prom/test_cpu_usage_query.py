"""The optional fourth query, CPU cores used per pod (``prom.cpuusage``).

Aspects tested:
- configured, it is exactly the fourth logical query of a refresh, asked once
  whatever the partition and pod counts, and its answer is in the snapshot by pod;
- not configured, a refresh is still exactly three queries and the snapshot has no
  CPU usage;
- a failing (rejected, unreachable), slow (past the timeout) or unusable (no
  series, a scalar, no pod label) answer never fails the refresh: the sizing
  snapshot is whole and the CPU usage carries the problem;
- a failing sizing query cancels it;
- several series of one pod add up, and any answer parses without an exception
  (NaN and negative values are kept for the learner to judge);
- cAdvisor's pod total (no ``container`` label) beside the pod's containers is taken
  instead of their sum, never added to it (whatever the series' order);
- a series with a ``namespace`` label is keyed ``namespace/pod``: two namespaces' pods
  of one name stay apart.
"""

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.prom import fetching
from konsumerator.prom.cpuusage import parse_pods
from konsumerator.prom.errors import QueryFailed
from konsumerator.prom.queries import PodQuerySpec, PrometheusConfig, QuerySpec
from konsumerator.prom.responses import (
    MatrixData,
    MatrixSeries,
    ScalarData,
    VectorData,
    VectorSample,
)

from .fakeprom import Answer, FakeFleet, Server, failure, success, vector

CPU = 'sum by (pod) (rate(container_cpu_usage_seconds_total{container="c"}[1m]))'


def config(address: str, *, cpu: bool = True, timeout: float = 1.0) -> PrometheusConfig:
    return PrometheusConfig(
        addresses=(address,),
        production=QuerySpec("prod", "partition"),
        consumption=QuerySpec("cons", "partition"),
        offset=QuerySpec("lag", "partition"),
        timeout_seconds=timeout,
        cpu_usage=PodQuerySpec(CPU, "pod") if cpu else None,
    )


def sizing(partitions: int) -> dict[str, Answer]:
    each = [({"partition": str(p)}, "10") for p in range(partitions)]
    return {q: success(vector(*each)) for q in ("prod", "cons", "lag")}


def pods(n: int) -> Answer:
    return success(vector(*(({"pod": f"c-{i}-5d4f8b9c7d-x1y2z"}, "0.5") for i in range(n))))


@pytest.mark.parametrize(("partitions", "n_pods"), [(1, 1), (100, 50), (1000, 500)])
async def test_configured_it_is_one_fourth_query_whatever_the_counts(
    partitions: int, n_pods: int
) -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={**sizing(partitions), CPU: pods(n_pods)}))
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(
            client=client, config=config(address), num_partitions=partitions
        )
    assert len(fleet.requests) == 4
    assert fleet.count(query=CPU) == 1
    usage = result.snapshot.cpu_usage
    assert usage is not None
    assert usage.problem is None
    assert len(usage.by_pod) == n_pods
    assert usage.by_pod["c-0-5d4f8b9c7d-x1y2z"] == 0.5


async def test_not_configured_a_refresh_is_still_three_queries() -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers=sizing(4)))
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(
            client=client, config=config(address, cpu=False), num_partitions=4
        )
    assert len(fleet.requests) == 3
    assert result.snapshot.cpu_usage is None


@pytest.mark.parametrize(
    ("answer", "delay", "problem"),
    [
        (failure(400, "bad_data", "parse error"), 0.0, "bad_data"),
        (pods(2), 5.0, "no answer within 1s"),
        (success(vector()), 0.0, "returned no series"),
        (success(vector(({"container": "c"}, "1"))), 0.0, "with a pod label"),
        (success({"resultType": "scalar", "result": [0, "1"]}), 0.0, "scalar or string"),
    ],
    ids=["rejected", "slow", "no-series", "no-pod-label", "scalar"],
)
async def test_a_failing_slow_or_unusable_answer_never_fails_the_refresh(
    answer: Answer, delay: float, problem: str
) -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={**sizing(2), CPU: answer}, delays={CPU: delay}))
    async with fleet.client() as client:
        result = await fetching.fetch_snapshot(
            client=client, config=config(address), num_partitions=2
        )
    assert dict(result.snapshot.production) == {0: 10.0, 1: 10.0}
    usage = result.snapshot.cpu_usage
    assert usage is not None
    assert usage.problem is not None
    assert problem in usage.problem
    assert not usage.by_pod


async def test_a_failing_sizing_query_fails_the_refresh_and_cancels_it() -> None:
    fleet = FakeFleet()
    answers = {**sizing(2), CPU: pods(2), "lag": failure(400, "bad_data", "parse error")}
    address = fleet.add("prom", Server(answers=answers, delays={CPU: 0.5}))
    async with fleet.client() as client:
        with pytest.raises(QueryFailed):
            await fetching.fetch_snapshot(client=client, config=config(address), num_partitions=2)
    assert [r.query for r in fleet.cancelled] == [CPU]


def test_several_series_of_one_pod_add_up() -> None:
    data = VectorData(
        result=[
            VectorSample(metric={"pod": "p-h-s", "container": "a"}, value=(0.0, "0.25")),
            VectorSample(metric={"pod": "p-h-s", "container": "b"}, value=(0.0, "0.5")),
            VectorSample(metric={"pod": "q-h-s"}, value=(0.0, "NaN")),
            VectorSample(metric={"pod": "r-h-s"}, value=(0.0, "-1")),
        ]
    )
    parsed = parse_pods(data=data, pod_label="pod")
    assert not isinstance(parsed, str)
    assert parsed["p-h-s"] == 0.75
    assert math.isnan(parsed["q-h-s"])
    assert parsed["r-h-s"] == -1.0


def test_a_pod_total_beside_its_containers_is_not_added_to_them() -> None:
    data = VectorData(
        result=[
            VectorSample(metric={"pod": "p-h-s", "container": "consumer"}, value=(0.0, "0.4")),
            VectorSample(metric={"pod": "p-h-s"}, value=(0.0, "0.5")),  # the cgroup total
            VectorSample(metric={"pod": "p-h-s", "container": "sidecar"}, value=(0.0, "0.1")),
        ]
    )
    parsed = parse_pods(data=data, pod_label="pod")
    assert not isinstance(parsed, str)
    assert dict(parsed) == {"p-h-s": 0.5}


def test_a_namespace_label_keys_the_pod_by_its_namespace() -> None:
    data = VectorData(
        result=[
            VectorSample(metric={"pod": "p-h-s", "namespace": "a"}, value=(0.0, "0.5")),
            VectorSample(metric={"pod": "p-h-s", "namespace": "b"}, value=(0.0, "2")),
            VectorSample(metric={"pod": "q-h-s"}, value=(0.0, "1")),
        ]
    )
    parsed = parse_pods(data=data, pod_label="pod")
    assert not isinstance(parsed, str)
    assert dict(parsed) == {"a/p-h-s": 0.5, "b/p-h-s": 2.0, "q-h-s": 1.0}


@given(
    pods=st.dictionaries(
        st.from_regex(r"[a-z]{1,5}-[a-z0-9]{1,10}-[a-z0-9]{5}", fullmatch=True),
        st.tuples(
            st.lists(st.integers(min_value=0, max_value=4000), min_size=0, max_size=4),
            st.one_of(st.none(), st.integers(min_value=0, max_value=16000)),
        ).filter(lambda t: t[0] or t[1] is not None),
        min_size=1,
        max_size=6,
    ),
    seed=st.randoms(),
)
def test_a_pod_is_its_total_if_answered_else_its_containers_sum(
    pods: dict[str, tuple[list[int], int | None]], seed: Any
) -> None:
    # Millicores, so the sums are exact.
    series = [
        VectorSample(metric={"pod": pod, "container": f"c{i}"}, value=(0.0, f"{m / 1000}"))
        for pod, (containers, _) in pods.items()
        for i, m in enumerate(containers)
    ] + [
        VectorSample(metric={"pod": pod}, value=(0.0, f"{total / 1000}"))
        for pod, (_, total) in pods.items()
        if total is not None
    ]
    seed.shuffle(series)
    parsed = parse_pods(data=VectorData(result=series), pod_label="pod")
    assert not isinstance(parsed, str)
    for pod, (containers, total) in pods.items():
        want = total if total is not None else sum(containers)
        assert parsed[pod] == pytest.approx(want / 1000, abs=1e-9)


_labels = st.dictionaries(st.sampled_from(["pod", "container", "x"]), st.text(max_size=8))
_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6))


@given(
    st.one_of(
        st.lists(st.tuples(_labels, _value), max_size=8).map(
            lambda s: VectorData(result=[VectorSample(metric=m, value=(0.0, v)) for m, v in s])
        ),
        st.lists(st.tuples(_labels, st.lists(_value, max_size=3)), max_size=5).map(
            lambda s: MatrixData(
                result=[MatrixSeries(metric=m, values=[(0.0, v) for v in vs]) for m, vs in s]
            )
        ),
        _value.map(lambda v: ScalarData(result=(0.0, v))),
    )
)
def test_any_answer_parses_without_an_exception(data: Any) -> None:
    parsed = parse_pods(data=data, pod_label="pod")
    if not isinstance(parsed, str):
        assert parsed
        assert all(isinstance(v, float) for v in parsed.values())
