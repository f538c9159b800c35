"""Metrics about the operator's own Prometheus queries.

Implements `prom.observing.QueryObserver`. Labels are bounded: the query kind
(production, consumption, offset), an outcome enum and a bad-data reason
enum; never an address, a Consumer or a partition.

``konsumerator_prometheus_bad_data_total`` counts answers that arrived but
could not be used (no series, a scalar, a value beyond int64): each one is a
refresh that kept the previous sizes, and a sustained rate means a query in
some Consumer is wrong.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram

from konsumerator.prom.observing import QueryOutcome, RequestOutcome

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class PrometheusMetrics:
    def __init__(self, *, registry: CollectorRegistry) -> None:
        self.queries = Counter(
            "konsumerator_prometheus_queries_total",
            "Logical (hedged) Prometheus queries, by kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.query_time = Histogram(
            "konsumerator_prometheus_query_duration_seconds",
            "Duration of logical Prometheus queries",
            ["kind"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.bad = Counter(
            "konsumerator_prometheus_bad_data_total",
            "Answers that could not be used (NoData, UnsupportedResultType, ValueOutOfRange)",
            ["kind", "reason"],
            registry=registry,
        )

    def request_finished(
        self, *, address: str, kind: str, outcome: RequestOutcome, duration_seconds: float
    ) -> None:
        pass  # per-address figures would need the address as a label

    def query_finished(self, *, kind: str, outcome: QueryOutcome, duration_seconds: float) -> None:
        self.queries.labels(kind, outcome.value).inc()
        self.query_time.labels(kind).observe(duration_seconds)

    def bad_data(self, *, kind: str, reason: str) -> None:
        self.bad.labels(kind, reason).inc()
