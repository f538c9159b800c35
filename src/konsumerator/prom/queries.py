"""What to ask Prometheus for one Consumer: addresses and three queries (four with cpuUsage).

Plain frozen dataclasses, deliberately decoupled from the pydantic CRD model:
the controller translates `spec.autoscaler.prometheus` into a
`PrometheusConfig`, so this package never sees Kubernetes objects and can be
tested with literals. Being frozen and hashable, a config can also be compared
by the provider to notice that a Consumer's queries changed.

Each query is evaluated as an instant query; its result is mapped to
partitions through the query's own `partition_label` (the Go operator's
`partitionLabel`), because the three queries may come from different
exporters that name the label differently.
"""

import math
from dataclasses import dataclass

from konsumerator.domain.metrics import MetricKind

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """One PromQL instant query and the label that carries the partition id."""

    query: str
    partition_label: str


@dataclass(frozen=True, slots=True)
class PodQuerySpec:
    """One PromQL instant query and the label that names the pod (``cpuUsage``)."""

    query: str
    pod_label: str


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """Where and what to query for one Consumer.

    `timeout_seconds` bounds one logical query end to end: every address is
    asked in parallel and each request, as well as the whole hedged query,
    is cut off after this long. The three logical queries run concurrently,
    so a whole snapshot refresh is bounded by the same figure.
    """

    addresses: tuple[str, ...]
    production: QuerySpec
    consumption: QuerySpec
    offset: QuerySpec
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # The optional fourth query (CPU cores used per pod), for the learned rate per
    # core; it may fail without failing the refresh (``cpuusage``).
    cpu_usage: PodQuerySpec | None = None

    def __post_init__(self) -> None:
        # A zero, negative or NaN timeout would make every query fail in
        # confusing ways (or never time out); refuse it at construction.
        if not (math.isfinite(self.timeout_seconds) and self.timeout_seconds > 0):
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds!r}")

    def spec_for(self, kind: MetricKind) -> QuerySpec:
        if kind is MetricKind.PRODUCTION:
            return self.production
        if kind is MetricKind.CONSUMPTION:
            return self.consumption
        return self.offset
