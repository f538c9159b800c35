"""Per-Consumer metrics, with the Go operator's names so its dashboards keep working.

The names are those of ``lwolf/konsumerator controllers/metrics.go``: the
instance counters and scaling states, the global pool gauges, and the
reconcile, status-update and Deployment-write counters. Where the values
differ (the ``consumer`` label is ``namespace/name``, not the bare name;
summaries carry no quantiles; the provider's ``prometheus_mp_*`` series are
not exported) docs/compatibility.md lists it.

Cardinality is bounded by design: labels are the Consumer (``namespace/name``)
and, for the per-instance gauges, the Deployment name, which is what the Go
operator exported. Nothing is labelled by partition: with thousands of
partitions that would be the cardinality explosion an on-call engineer pays
for. Per-partition lag is summarised as the worst lag of each instance and of
the Consumer, and the total backlog.

Series of a Consumer (and of instances it no longer has) are removed when
they go away, so deleted Consumers do not linger on dashboards.
"""

import contextlib
import math
import operator
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, Summary
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.planning import InstanceReport, Plan
from konsumerator.domain.scaling import ScalingStatus
from konsumerator.domain.specs import ConsumerConfig

# The Go operator's encoding of the scaling status (0 = unknown or deleted).
STATUS_CODES: Mapping[ScalingStatus | None, int] = {
    ScalingStatus.RUNNING: 1,
    ScalingStatus.SATURATED: 2,
    ScalingStatus.PENDING_SCALE_UP: 3,
    ScalingStatus.PENDING_SCALE_DOWN: 4,
}
COUNTERS = ("expected", "running", "paused", "missing", "lagging", "outdated", "redundant")
#: Kinds of Deployment write, as in the Go metric names: create, update (rollouts,
#: resizes and annotation changes), delete.
WRITES = ("create", "update", "delete")
#: Outcomes of in-place resizing: a pod patched; a patch refused (the instance then
#: rolls out); a patch failed (retried); the server has no pods/resize; an
#: instance rolled out because in-place was given up (Infeasible, Deferred too
#: long, refused, or the mode is Recreate with a target left over).
RESIZE_OUTCOMES = ("patched", "refused", "failed", "unsupported", "fell_back")


# The per-instance families: name, help (``InstanceGauges``).
_STATUS = (
    "konsumerator_deployment_status",
    "Scaling status: 1 RUNNING, 2 SATURATED, 3 PENDING_SCALE_UP, 4 PENDING_SCALE_DOWN",
)
_SATURATION = (
    "konsumerator_deployment_saturation",
    "CPU an instance lacks because of its limits, in millicores",
)
_LAG = ("konsumerator_deployment_max_lag_seconds", "Lag of the instance's worst partition")
_FAMILIES = (_STATUS, _SATURATION, _LAG)


# How prometheus_client writes a sample's value (``1.0``, ``+Inf``), in both formats.
_go_float = typing.cast("Callable[[float], str]", floatToGoString)


def _values(r: InstanceReport) -> tuple[int, int, int]:
    """An instance's three gauges, in ``_FAMILIES`` order."""
    return STATUS_CODES.get(r.status, 0), r.cpu_shortage_m, max(0, r.max_lag_s)


def _label_value(value: str) -> str:
    """A label value as the exposition formats escape it (both the same)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _rendered(consumer: str, reports: tuple[InstanceReport, ...]) -> tuple[bytes, ...]:
    """A Consumer's lines of each family (``_FAMILIES`` order)."""
    who = _label_value(consumer)
    texts: dict[int, str] = {}
    families: list[list[str]] = [[] for _ in _FAMILIES]
    for r in reports:
        labels = f'{{consumer="{who}",deployment="{_label_value(r.name)}"}} '
        for family, (name, _), value in zip(families, _FAMILIES, _values(r), strict=True):
            text = texts.get(value)
            if text is None:
                text = texts[value] = _go_float(value)
            family.append(f"{name}{labels}{text}\n")
    return tuple("".join(family).encode() for family in families)


class InstanceGauges(Collector):
    """The per-instance gauges (``konsumerator_deployment_*``), built at scrape time from
    each Consumer's last plan.

    As labelled ``Gauge`` children, 10,000 instances were 30,000 objects holding a lock
    each (19 MiB, tracemalloc) and a pass of 2,000 instances set 6,000 of them; the
    plan's instance reports exist anyway, so keeping the last tuple of them per Consumer
    costs nothing more. Vanished instances vanish with the tuple that named them.

    Scraped from the metrics thread while passes replace entries: a tuple is replaced
    whole, and the dict is copied to a list in one C call (under the GIL) before use.

    The operator's ``/metrics`` renders them with :meth:`exposition` instead of
    ``collect`` (``rendered``, set by ``RuntimeMetrics.wsgi_app``): prometheus_client
    formats each of 30,000 samples in Python, 0.2 s of CPU per scrape at 10,000
    instances (0.4 s in OpenMetrics, which Prometheus asks for), the whole steady CPU
    budget at a 15 s scrape interval. Rendered here, with f-strings, it takes 16 ms.
    """

    def __init__(self) -> None:
        self.instances: dict[str, tuple[InstanceReport, ...]] = {}
        # Whether the metrics app renders these families itself (``exposition``).
        self.rendered = False

    def collect(self) -> Iterator[Metric]:
        if self.rendered:
            return
        labels = ["consumer", "deployment"]
        families = [GaugeMetricFamily(name, doc, labels=labels) for name, doc in _FAMILIES]
        for consumer, reports in list(self.instances.items()):
            for r in reports:
                names = [consumer, r.name]
                for family, value in zip(families, _values(r), strict=True):
                    family.add_metric(names, value)
        yield from families

    def describe(self) -> Iterator[Metric]:
        """The families, empty: the registry then knows their names, and a scrape asking
        for some by name (``name[]``) finds them."""
        labels = ["consumer", "deployment"]
        yield from (GaugeMetricFamily(name, doc, labels=labels) for name, doc in _FAMILIES)

    def exposition(self, *, names: frozenset[str] | None = None) -> bytes:
        """The families as the text and OpenMetrics formats both write gauges
        (``# HELP``, ``# TYPE``, one line per sample), only those in ``names`` if given."""
        consumers = list(self.instances.items())
        rendered = [_rendered(consumer, reports) for consumer, reports in consumers]
        out: list[bytes] = []
        for i, (name, doc) in enumerate(_FAMILIES):
            if names is not None and name not in names:
                continue
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n".encode())
            out.extend(lines[i] for lines in rendered)
        return b"".join(out)


_MAX_LAG_S: Final = operator.attrgetter("max_lag_s")


def messages_behind(offset: Mapping[int, float]) -> int:
    """The sum over partitions of ``max(0, truncate(behind))``: what a Consumer is behind.

    Every partition of every pass: when every value is a finite number of at least 0
    (their sum finite, so no NaN or infinity, and the least at least 0), each is
    truncated and summed in C; anything else (None, NaN, negative) value by value.
    """
    values = list(offset.values())
    try:
        if math.isfinite(sum(values)) and (not values or min(values) >= 0):
            return sum(map(int, values))
    except TypeError:  # a None among them
        pass
    return sum(max(0, truncate(v)) for v in values)


class ConsumerMetrics:
    def __init__(self, *, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.status = gauge(
            "konsumerator_consumer_status", "Instances of a Consumer by state", ["consumer", "type"]
        )
        # The per-instance gauges: read from the last plan's reports at scrape time.
        self.per_instance = InstanceGauges()
        registry.register(self.per_instance)
        self.max_lag = gauge(
            "konsumerator_consumer_max_lag_seconds", "Lag of the worst partition", ["consumer"]
        )
        self.behind = gauge(
            "konsumerator_consumer_messages_behind", "Messages behind, all partitions", ["consumer"]
        )
        self.cpu_allocated = gauge(
            "konsumerator_consumer_global_cpu_allocated_mcores",
            "Sum of CPU requests of the Consumer's instances",
            ["consumer"],
        )
        self.memory_allocated = gauge(
            "konsumerator_consumer_global_memory_allocated_bytes",
            "Sum of memory requests of the Consumer's instances",
            ["consumer"],
        )
        self.cpu_limit = gauge(
            "konsumerator_consumer_global_cpu_limit_mcores",
            "The Consumer's global CPU pool (globalPolicy.maxAllowed.cpu)",
            ["consumer"],
        )
        self.memory_limit = gauge(
            "konsumerator_consumer_global_memory_limit_bytes",
            "The Consumer's global memory pool (globalPolicy.maxAllowed.memory)",
            ["consumer"],
        )
        self.learned_rate = gauge(
            "konsumerator_consumer_learned_rate_per_core",
            "adaptive predictor: the learned messages/s per core it sizes with"
            " (absent while the configured ratePerCore is used)",
            ["consumer"],
        )
        self.reconciles = Counter(
            "konsumerator_consumer_reconcile_total",
            "Reconciles of a Consumer",
            ["consumer"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "konsumerator_consumer_reconcile_errors_total",
            "Reconciles of a Consumer that failed (retried with backoff) or met an invalid spec",
            ["consumer"],
            registry=registry,
        )
        self.reconcile_duration = Summary(
            "konsumerator_consumer_reconcile_duration_seconds",
            "Duration of a Consumer's reconcile",
            ["consumer"],
            registry=registry,
        )
        self.status_update_duration = Summary(
            "konsumerator_consumer_status_update_duration_seconds",
            "Duration of a status write (passes that changed nothing write none)",
            ["consumer"],
            registry=registry,
        )
        self.writes = {
            kind: Counter(
                f"konsumerator_consumer_deployments_{kind}_total",
                f"Deployment {kind}s done",
                ["consumer"],
                registry=registry,
            )
            for kind in WRITES
        }
        # The Go operator exported these counters without the ``_total`` suffix, which
        # prometheus_client always appends to a Counter; a Gauge that only goes up keeps
        # the exact name, and rate()/increase() read it the same way.
        self.write_errors = {
            kind: Gauge(
                f"konsumerator_consumer_deployments_{kind}_errors",
                f"Deployment {kind}s that the API server refused (a counter)",
                ["consumer"],
                registry=registry,
            )
            for kind in WRITES
        }

        self.resizes = Counter(
            "konsumerator_consumer_inplace_resizes_total",
            "In-place resizing by outcome (patched, refused, failed, unsupported, fell_back)",
            ["consumer", "outcome"],
            registry=registry,
        )
        self.restarts_held = Counter(
            "konsumerator_consumer_restarts_held_total",
            "Scale-downs that would restart pods, held by the restart budget"
            " (restartBudgetPercent): one per instance and pass held",
            ["consumer"],
            registry=registry,
        )
        self.actuation = Histogram(
            "konsumerator_consumer_inplace_actuation_seconds",
            "Time from an in-place resize decision to the pod's status showing the target"
            " (status.containerStatuses[].resources)",
            ["consumer"],
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=registry,
        )
        # Labelled by reason only (InvalidSpec, UndecodableObject): which object it was
        # is in its status and Events; a steady rise here means a retry loop.
        self.rejections = Counter(
            "konsumerator_rejected_objects",
            "Reconciles that found their object unusable (and did not retry it), by reason",
            ["reason"],
            registry=registry,
        )

    def reconciled(self, *, consumer: str, seconds: float, failed: bool) -> None:
        """One reconcile of ``consumer`` ended; its write counters exist from now on, at 0."""
        self.reconciles.labels(consumer).inc()
        errors = self.reconcile_errors.labels(consumer)
        if failed:
            errors.inc()
        self.reconcile_duration.labels(consumer).observe(seconds)
        for kind in WRITES:
            self.writes[kind].labels(consumer)
            self.write_errors[kind].labels(consumer)

    def resized(self, *, consumer: str, outcomes: Mapping[str, int]) -> None:
        """One pass's in-place resizing, by outcome (``RESIZE_OUTCOMES``)."""
        for outcome in RESIZE_OUTCOMES:
            if outcomes.get(outcome):
                self.resizes.labels(consumer, outcome).inc(outcomes[outcome])

    def actuated(self, *, consumer: str, seconds: float) -> None:
        self.actuation.labels(consumer).observe(seconds)

    def status_written(self, *, consumer: str, seconds: float) -> None:
        self.status_update_duration.labels(consumer).observe(seconds)

    def deployments_written(
        self, *, consumer: str, done: Mapping[str, int], failed: Mapping[str, int]
    ) -> None:
        """Writes of one pass by kind (``WRITES``): those done and those refused."""
        for kind in WRITES:
            if done.get(kind):
                self.writes[kind].labels(consumer).inc(done[kind])
            if failed.get(kind):
                self.write_errors[kind].labels(consumer).inc(failed[kind])

    def rejected(self, *, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def observe(
        self,
        *,
        consumer: str,
        plan: Plan,
        config: ConsumerConfig,
        snapshot: MetricsSnapshot | None,
    ) -> None:
        counts = plan.counters
        for kind in COUNTERS:
            self.status.labels(consumer, kind).set(getattr(counts, kind))
        self.per_instance.instances[consumer] = plan.instances
        # The largest of max(0, lag): max(0, the largest), read in C (every instance of
        # every pass).
        self.max_lag.labels(consumer).set(max(0, max(map(_MAX_LAG_S, plan.instances), default=0)))
        if snapshot is not None:
            self.behind.labels(consumer).set(messages_behind(snapshot.offset))
        held = self.restarts_held.labels(consumer)  # there at 0 from the first pass
        if plan.restarts_held:
            held.inc(plan.restarts_held)
        self.cpu_allocated.labels(consumer).set(plan.allocated_cpu_m)
        self.memory_allocated.labels(consumer).set(plan.allocated_mem_b)
        learned = config.autoscaling.learned_rate_per_core if config.autoscaling else None
        if learned is not None:
            self.learned_rate.labels(consumer).set(learned)
        else:
            with contextlib.suppress(KeyError):
                self.learned_rate.remove(consumer)
        pool = config.global_pool
        if pool is not None and pool.cpu_m is not None:
            self.cpu_limit.labels(consumer).set(pool.cpu_m)
        if pool is not None and pool.mem_b is not None:
            self.memory_limit.labels(consumer).set(pool.mem_b)

    def forget(self, *, consumer: str) -> None:
        self.per_instance.instances.pop(consumer, None)
        for g in (
            self.max_lag,
            self.behind,
            self.cpu_allocated,
            self.memory_allocated,
            self.cpu_limit,
            self.memory_limit,
            self.learned_rate,
        ):
            with contextlib.suppress(KeyError):
                g.remove(consumer)
        for kind in COUNTERS:
            with contextlib.suppress(KeyError):
                self.status.remove(consumer, kind)
        for outcome in RESIZE_OUTCOMES:
            with contextlib.suppress(KeyError):
                self.resizes.remove(consumer, outcome)
        for metric in (
            self.reconciles,
            self.reconcile_errors,
            self.reconcile_duration,
            self.status_update_duration,
            self.actuation,
            self.restarts_held,
            *self.writes.values(),
            *self.write_errors.values(),
        ):
            with contextlib.suppress(KeyError):
                metric.remove(consumer)
