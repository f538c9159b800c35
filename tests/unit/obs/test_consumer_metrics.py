"""Per-Consumer metrics.

Aspects tested:
* the Go operator's metric names and status encoding are exported after a pass;
* no series is labelled by partition (cardinality is bounded by instances);
* instances that went away, and forgotten Consumers, leave no series behind.
"""

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.planning import Metrics, plan
from konsumerator.domain.specs import Autoscaling, ConsumerConfig, GlobalPool, Owner
from konsumerator.obs.consumers import ConsumerMetrics

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
