"""The optional fourth query: CPU cores used per pod, for the learned rate per core.

Unlike the three sizing queries, this one may fail without failing the refresh:
sizing never depends on it, only the adaptive predictor's learning does
(``domain.adaptive.learning``). So every failure, a slow answer included, comes
back as ``CpuUsage.problem`` instead of an exception, and the snapshot stays whole.

The answer is kept per pod, as Prometheus sent it: NaN, negative and huge values
included, since only the learner knows which pods are whose and says in the
status what it could not use. Several series of one pod (one per container, when
the query does not aggregate) are added up: a pod's CPU is its containers' sum.
A series without a ``container`` label beside them is cAdvisor's pod total, which
already holds them: it is taken instead of their sum, never added to it. A series
with a ``namespace`` label is keyed ``namespace/pod``, so the learner can leave out
another namespace's pods of the same name (``domain.adaptive.learning``).
"""

import asyncio
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import httpx2

from konsumerator.domain.metrics import CpuUsage
from konsumerator.prom import observing, querying
from konsumerator.prom.errors import PrometheusError
from konsumerator.prom.queries import PodQuerySpec
from konsumerator.prom.responses import MatrixData, QueryData, VectorData

# Answers of more series than this are parsed in a thread, off the event loop.
PARSE_IN_THREAD_SERIES: Final = 10_000

KIND = "cpu_usage"


def parse_pods(*, data: QueryData, pod_label: str) -> Mapping[str, float] | str:
    """Cores by pod (``namespace/pod`` when the series say their namespace), or why
    the answer is not one series per pod."""
    if isinstance(data, VectorData):
        pairs = [(s.metric, s.value) for s in data.result]
    elif isinstance(data, MatrixData):
        pairs = [(s.metric, s.values[-1] if s.values else None) for s in data.result]
    else:
        return "returned a scalar or string, not a vector of one series per pod"
    # cAdvisor exports a pod's cgroup total (no ``container`` label: Prometheus drops
    # the empty one) beside each container's series; the total already holds them.
    totals: dict[str, float] = {}
    containers: dict[str, float] = {}
    for metric, pair in pairs:
        pod = metric.get(pod_label)
        if not pod or pair is None:
            continue
        where = metric.get("namespace")
        key = f"{where}/{pod}" if where else pod
        try:
            value = float(pair[1])
        except ValueError:
            value = math.nan
        into = containers if metric.get("container") else totals
        into[key] = into.get(key, 0.0) + value
    if not totals and not containers:
        return (
            f"returned no series with a {pod_label} label"
            if pairs
            else "returned no series (does it match anything?)"
        )
    return MappingProxyType(containers | totals)


async def fetch_cpu_usage(
    *,
    client: httpx2.AsyncClient,
    addresses: tuple[str, ...],
    spec: PodQuerySpec,
    timeout_seconds: float,
    observer: observing.QueryObserver = observing.NULL_OBSERVER,
) -> CpuUsage:
    """The query's answer; a failure (no answer in time included) is its ``problem``."""
    try:
        response = await querying.query_any(
            client=client,
            addresses=addresses,
            query=spec.query,
            timeout_seconds=timeout_seconds,
            kind=KIND,
            observer=observer,
        )
    except PrometheusError as exc:
        return CpuUsage(problem=str(exc))
    data = response.data
    series = len(data.result) if isinstance(data, VectorData | MatrixData) else 1
    if series > PARSE_IN_THREAD_SERIES:
        # As the sizing queries' (``fetching``): whoever answers decides how many.
        parsed = await asyncio.to_thread(parse_pods, data=data, pod_label=spec.pod_label)
    else:
        parsed = parse_pods(data=data, pod_label=spec.pod_label)
    if isinstance(parsed, str):
        return CpuUsage(problem=parsed)
    return CpuUsage(by_pod=parsed)
