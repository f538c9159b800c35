"""Everything Konsumerator knows about talking to Prometheus.

The only package that speaks HTTP to Prometheus. It turns a Consumer's three
PromQL queries (production rate, consumption rate, messages behind) into one
complete, immutable `domain.metrics.MetricsSnapshot`, and caches it per
Consumer for `minSyncPeriod`.

Modules, from the wire up:

- `queries`: the typed configuration (addresses + three `QuerySpec`s).
- `errors`: the `PrometheusError` hierarchy.
- `responses`: msgspec Structs for the `/api/v1/query` envelope.
- `observing`: the callback protocol the obs package implements.
- `querying`: one instant query, and the hedged query across addresses.
- `parsing`: a query result → values per partition, with a reject report.
- `fetching`: the three queries → one whole snapshot, or an error.
- `cpuusage`: the optional fourth query (CPU used per pod), which never fails a refresh.
- `providing`: per-Consumer cache with the `minSyncPeriod` policy.

Import modules, not names: `from konsumerator.prom import fetching`.
"""
