"""Per-Consumer metrics.

Aspects tested:
* the Go operator's metric names and status encoding are exported after a pass;
* no series is labelled by partition (cardinality is bounded by instances);
* instances that went away, and forgotten Consumers, leave no series behind;
* the Go operator's reconcile, status-update and Deployment-write metrics, under its exact
  names (``konsumerator_consumer_deployments_*_errors`` without ``_total``), with the write
  counters present at 0 from the first reconcile, and removed with the Consumer;
* ``konsumerator_meta_info`` is 1 with the operator's version from the start.
* ``konsumerator_consumer_learned_rate_per_core`` is there only while sizing uses a learned rate.
* ``konsumerator_consumer_restarts_held_total`` counts the scale-downs the restart budget held.
* the per-instance series of 10,000 instances retain under 1 MiB beyond the plans (read
  from the plans at scrape time, not 30,000 Gauge children).
"""

import gc
import math
import platform
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

import konsumerator
from konsumerator.domain.metrics import MetricsSnapshot, truncate
from konsumerator.domain.planning import Metrics, plan
from konsumerator.domain.specs import Autoscaling, ConsumerConfig, GlobalPool, Owner
from konsumerator.obs.consumers import ConsumerMetrics, messages_behind
from konsumerator.obs.metrics import RuntimeMetrics

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = Owner(api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="c", uid="u")
TEMPLATE = {
    "selector": {"matchLabels": {"app": "c"}},
    "template": {"spec": {"containers": [{"name": "consumer"}]}},
}


def config(partitions: int) -> ConsumerConfig:
    return ConsumerConfig(
        name="c",
        namespace="ns",
        num_partitions=partitions,
        per_instance=1,
        deployment_template=TEMPLATE,
        autoscaling=Autoscaling(rate_per_core=1000, ram_per_core_b=10**9, tolerable_lag_s=60),
        global_pool=GlobalPool(cpu_m=8000, mem_b=None),
    )


SNAPSHOT = MetricsSnapshot(production={0: 100, 1: 100, 2: 100}, offset={0: 12000, 1: 0, 2: 50})


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_pass_exports_the_go_operator_metrics_without_partition_labels():
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    cfg = config(3)
    result = plan(
        config=cfg,
        owner=OWNER,
        deployments=[],
        metrics=Metrics(snapshot=SNAPSHOT, refreshed=True, synced_at=NOW),
        now=NOW,
    )
    gauges.observe(consumer="ns/c", plan=result, config=cfg, snapshot=SNAPSHOT)
    assert sample(registry, "konsumerator_consumer_status", consumer="ns/c", type="missing") == 3
    assert sample(registry, "konsumerator_consumer_status", consumer="ns/c", type="expected") == 3
    assert (
        sample(registry, "konsumerator_deployment_status", consumer="ns/c", deployment="c-0") == 1
    )
    assert (
        sample(
            registry, "konsumerator_deployment_max_lag_seconds", consumer="ns/c", deployment="c-0"
        )
        == 120
    )
    assert sample(registry, "konsumerator_consumer_max_lag_seconds", consumer="ns/c") == 120
    assert sample(registry, "konsumerator_consumer_messages_behind", consumer="ns/c") == 12050
    assert (
        sample(registry, "konsumerator_consumer_global_cpu_limit_mcores", consumer="ns/c") == 8000
    )
    allocated = sample(
        registry, "konsumerator_consumer_global_cpu_allocated_mcores", consumer="ns/c"
    )
    assert allocated == result.allocated_cpu_m > 0
    for metric in registry.collect():
        for s in metric.samples:
            assert "partition" not in s.labels


def test_vanished_instances_and_forgotten_consumers_leave_no_series():
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    for partitions in (3, 1):
        cfg = config(partitions)
        result = plan(config=cfg, owner=OWNER, deployments=[], metrics=Metrics(), now=NOW)
        gauges.observe(consumer="ns/c", plan=result, config=cfg, snapshot=None)
    assert (
        sample(registry, "konsumerator_deployment_status", consumer="ns/c", deployment="c-0") == 1
    )
    assert (
        sample(registry, "konsumerator_deployment_status", consumer="ns/c", deployment="c-2")
        is None
    )
    gauges.forget(consumer="ns/c")
    remaining = [
        s
        for metric in registry.collect()
        for s in metric.samples
        if s.labels.get("consumer") == "ns/c"
    ]
    assert remaining == []


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_reconcile_status_and_write_metrics_have_the_go_operator_names():
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    gauges.reconciled(consumer="ns/c", seconds=0.25, failed=False)
    gauges.reconciled(consumer="ns/c", seconds=0.5, failed=True)
    gauges.status_written(consumer="ns/c", seconds=0.01)
    gauges.deployments_written(
        consumer="ns/c", done={"create": 3, "update": 1}, failed={"delete": 2}
    )
    c = {"consumer": "ns/c"}
    assert registry.get_sample_value("konsumerator_consumer_reconcile_total", c) == 2
    assert registry.get_sample_value("konsumerator_consumer_reconcile_errors_total", c) == 1
    assert (
        registry.get_sample_value("konsumerator_consumer_reconcile_duration_seconds_count", c) == 2
    )
    assert (
        registry.get_sample_value("konsumerator_consumer_reconcile_duration_seconds_sum", c) == 0.75
    )
    assert (
        registry.get_sample_value("konsumerator_consumer_status_update_duration_seconds_count", c)
        == 1
    )
    written = {
        kind: registry.get_sample_value(f"konsumerator_consumer_deployments_{kind}_total", c)
        for kind in ("create", "update", "delete")
    }
    assert written == {"create": 3, "update": 1, "delete": 0}
    # Exactly Go's names: the error counters have no _total suffix.
    text = exposition(registry)
    for kind, value in (("create", 0), ("update", 0), ("delete", 2)):
        line = f'konsumerator_consumer_deployments_{kind}_errors{{consumer="ns/c"}} {value}.0'
        assert line in text.splitlines()
    assert "_errors_total" not in text.replace("reconcile_errors_total", "")


def test_a_reconciled_consumer_has_its_write_counters_at_zero_before_any_write():
    registry = CollectorRegistry()
    ConsumerMetrics(registry=registry).reconciled(consumer="ns/c", seconds=0.1, failed=False)
    c = {"consumer": "ns/c"}
    for kind in ("create", "update", "delete"):
        assert registry.get_sample_value(f"konsumerator_consumer_deployments_{kind}_total", c) == 0
        assert registry.get_sample_value(f"konsumerator_consumer_deployments_{kind}_errors", c) == 0
    assert registry.get_sample_value("konsumerator_consumer_reconcile_errors_total", c) == 0


def test_forgetting_a_consumer_removes_its_reconcile_and_write_series():
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    for consumer in ("ns/c", "ns/other"):
        gauges.reconciled(consumer=consumer, seconds=0.1, failed=True)
        gauges.status_written(consumer=consumer, seconds=0.1)
        gauges.deployments_written(consumer=consumer, done={"create": 1}, failed={"update": 1})
    gauges.forget(consumer="ns/c")
    labels = [s.labels.get("consumer") for m in registry.collect() for s in m.samples]
    assert "ns/c" not in labels
    assert "ns/other" in labels


def test_the_operator_exports_its_version_as_meta_info_from_the_start():
    registry = RuntimeMetrics().registry
    (sample_,) = [
        s for m in registry.collect() for s in m.samples if s.name == "konsumerator_meta_info"
    ]
    assert sample_.value == 1
    assert sample_.labels == {
        "binary_version": konsumerator.__version__,
        "python_version": platform.python_version(),
    }


def test_per_instance_series_cost_no_memory_beyond_the_plans_they_come_from():
    """10,000 instances (5 Consumers x 2,000): the series are read from the plans' own
    instance reports at scrape time; as labelled Gauge children they were 30,000 objects
    with a lock each (19 MiB)."""
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    cfg = config(2000)
    plans = [
        plan(config=cfg, owner=OWNER, deployments=[], metrics=Metrics(), now=NOW) for _ in range(5)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        for n, result in enumerate(plans):
            gauges.observe(consumer=f"ns/c{n}", plan=result, config=cfg, snapshot=None)
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert retained < 1 << 20, f"{retained} bytes"
    assert sample(registry, "konsumerator_deployment_status", consumer="ns/c4", deployment="c-1999")
    series = [
        s
        for m in registry.collect()
        for s in m.samples
        if s.name.startswith("konsumerator_deployment_")
    ]
    assert len(series) == 3 * 10_000


def test_the_learned_rate_is_a_gauge_only_while_sizing_uses_it():
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    cfg = config(1)
    assert cfg.autoscaling is not None
    learned = replace(cfg, autoscaling=replace(cfg.autoscaling, learned_rate_per_core=812))
    result = plan(config=cfg, owner=OWNER, deployments=[], metrics=Metrics(), now=NOW)
    name = "konsumerator_consumer_learned_rate_per_core"
    gauges.observe(consumer="ns/c", plan=result, config=cfg, snapshot=None)
    assert sample(registry, name, consumer="ns/c") is None
    gauges.observe(consumer="ns/c", plan=result, config=learned, snapshot=None)
    assert sample(registry, name, consumer="ns/c") == 812
    gauges.observe(consumer="ns/c", plan=result, config=cfg, snapshot=None)
    assert sample(registry, name, consumer="ns/c") is None
    gauges.observe(consumer="ns/c", plan=result, config=learned, snapshot=None)
    gauges.forget(consumer="ns/c")
    assert sample(registry, name, consumer="ns/c") is None


def test_restarts_held_by_the_budget_are_counted_from_zero():
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    cfg = config(1)
    result = plan(config=cfg, owner=OWNER, deployments=[], metrics=Metrics(), now=NOW)
    name = "konsumerator_consumer_restarts_held_total"
    gauges.observe(consumer="ns/c", plan=result, config=cfg, snapshot=None)
    assert sample(registry, name, consumer="ns/c") == 0
    gauges.observe(
        consumer="ns/c", plan=replace(result, restarts_held=3), config=cfg, snapshot=None
    )
    gauges.observe(
        consumer="ns/c", plan=replace(result, restarts_held=2), config=cfg, snapshot=None
    )
    assert sample(registry, name, consumer="ns/c") == 5
    gauges.forget(consumer="ns/c")
    assert sample(registry, name, consumer="ns/c") is None


@given(
    st.dictionaries(
        st.integers(min_value=0, max_value=50),
        st.none()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.floats(min_value=0, max_value=2.0**63)
        | st.integers(min_value=-(10**6), max_value=10**6),
        max_size=30,
    )
)
@example({0: 1.0, 1: math.nan})
@example({0: 1.0, 1: math.inf})
@example({0: 2.5, 1: -math.inf, 2: math.inf})
def test_messages_behind_is_the_sum_of_each_partitions_truncated_lag_at_least_0(
    offset: dict[int, float],
) -> None:
    """The all-finite answer is summed in C; any other value goes value by value, to the
    same sum (None, NaN and infinities count 0, negatives 0)."""
    assert messages_behind(offset) == sum(max(0, truncate(v)) for v in offset.values())


def test_the_consumers_max_lag_is_0_when_every_instance_is_ahead() -> None:
    registry = CollectorRegistry()
    gauges = ConsumerMetrics(registry=registry)
    cfg = config(3)
    result = plan(
        config=cfg,
        owner=OWNER,
        deployments=[],
        metrics=Metrics(snapshot=SNAPSHOT, refreshed=True, synced_at=NOW),
        now=NOW,
    )
    ahead = replace(
        result, instances=tuple(msgspec.structs.replace(i, max_lag_s=-5) for i in result.instances)
    )
    gauges.observe(consumer="ns/c", plan=ahead, config=cfg, snapshot=SNAPSHOT)
    assert sample(registry, "konsumerator_consumer_max_lag_seconds", consumer="ns/c") == 0
    gauges.observe(consumer="ns/c", plan=replace(result, instances=()), config=cfg, snapshot=None)
    assert sample(registry, "konsumerator_consumer_max_lag_seconds", consumer="ns/c") == 0
