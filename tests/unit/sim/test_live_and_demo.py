"""The live simulator's pieces and the demo's, without a cluster (a smoke test, not the demo).

Aspects tested:

* ``instances_from`` reads what the operator writes: the Deployments the
  real planner renders become instances with their partitions and the CPU
  request of the consuming container; the template fingerprint changes when
  resources change and not when only the scaling annotations do; foreign,
  deleting and zero-replica Deployments are ignored.
* ``LiveSim`` advances the model with its clock, allocates from what the
  lister returns, and survives a failing lister.
* The exporter serves kafka_exporter's three metric names with the labels
  the sample Consumer's queries select on, and lag = head - committed.
* The demo Consumer is the sample with the cluster's Prometheus address, the
  demo's short timings and rate windows, and still validates.
* The demo screen: sparklines, rows and the change log say what happened.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from konsumerator.api import manifests
from konsumerator.domain import planning
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.specs import Predictor, UpdateMode
from konsumerator.simulating import MemoryCluster
from konsumerator_dev.sim import demo, live, screen
from konsumerator_dev.sim.model import Instance, Model
from konsumerator_dev.sim.traces import Trace

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def consumer():
    doc, config = live.read_consumer(EXAMPLE)
    # These tests read the naive predictor's sizes (2 x 1000 msg/s at 2000/core -> 1000m).
    assert config.autoscaling is not None
    naive = replace(config.autoscaling, predictor=Predictor.NAIVE)
    return doc, replace(config, autoscaling=naive)


def rendered(config, *, production: float, lag: float = 0.0, now=NOW, bodies=None):
    """Deployment bodies after one refreshed planning pass."""
    snapshot = MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(range(config.num_partitions), production)),
        consumption=MappingProxyType(dict.fromkeys(range(config.num_partitions), production)),
        offset=MappingProxyType(dict.fromkeys(range(config.num_partitions), lag * production)),
    )
    owner = planning.Owner(
        api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="orders", uid="u"
    )
    cluster = MemoryCluster(owner_uid="u")
    bodies = dict(bodies or {})
    for body in bodies.values():
        cluster.apply(body)
    result = planning.plan(
        config=config,
        owner=owner,
        deployments=cluster.observed(),
        metrics=planning.Metrics(snapshot=snapshot, refreshed=True, synced_at=now),
        now=now,
    )
    for a in result.applies:
        bodies[a.name] = a.body
    return bodies


def test_instances_are_read_from_the_deployments_the_operator_writes(consumer):
    _, config = consumer
    bodies = rendered(config, production=1000.0)
    found = live.instances_from(bodies.values(), config=config, container="consumer")
    assert [i.name for i in found] == [f"orders-consumer-{n}" for n in range(5)]
    assert found[0].partitions == (0, 1)
    assert found[0].cpu_m == 1000  # 2 x 1000 msg/s at ratePerCore 2000


def test_the_fingerprint_changes_with_resources_not_with_scaling_annotations(consumer):
    _, config = consumer
    # Recreate: the size is in the template, so a resize is a new template (a restart).
    config = replace(config, update_mode=UpdateMode.RECREATE)
    first = rendered(config, production=1000.0)
    # Lagging with a bigger need: the planner only annotates (PENDING_SCALE_UP).
    pending = rendered(
        config, production=2000.0, lag=120.0, bodies=first, now=NOW + timedelta(minutes=1)
    )
    applied = rendered(
        config, production=2000.0, lag=120.0, bodies=pending, now=NOW + timedelta(minutes=5)
    )

    def prints(bodies):
        return {
            i.name: i.template
            for i in live.instances_from(bodies.values(), config=config, container="consumer")
        }

    assert (
        pending["orders-consumer-0"]["metadata"]["annotations"]
        != first["orders-consumer-0"]["metadata"]["annotations"]
    )
    assert prints(pending) == prints(first)
    assert prints(applied)["orders-consumer-0"] != prints(first)["orders-consumer-0"]


def test_in_place_the_cpu_follows_the_target_and_the_fingerprint_stays(consumer):
    _, config = consumer
    assert config.in_place  # the example runs with the default, InPlaceOrRecreate
    first = rendered(config, production=1000.0)
    pending = rendered(
        config, production=2000.0, lag=120.0, bodies=first, now=NOW + timedelta(minutes=1)
    )
    applied = rendered(
        config, production=2000.0, lag=120.0, bodies=pending, now=NOW + timedelta(minutes=5)
    )

    def found(bodies):
        listed = live.instances_from(bodies.values(), config=config, container="consumer")
        return {i.name: i for i in listed}

    before, after = found(first)["orders-consumer-0"], found(applied)["orders-consumer-0"]
    assert after.cpu_m > before.cpu_m
    assert after.template == before.template


def test_foreign_deleting_and_scaled_to_zero_deployments_are_ignored(consumer):
    _, config = consumer
    bodies = rendered(config, production=1000.0)
    other = {"metadata": {"name": "someone-else", "annotations": {}}, "spec": {}}
    bodies["orders-consumer-1"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    bodies["orders-consumer-2"]["spec"]["replicas"] = 0
    found = live.instances_from([*bodies.values(), other], config=config, container="consumer")
    assert [i.name for i in found] == [
        "orders-consumer-0",
        "orders-consumer-3",
        "orders-consumer-4",
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def live_sim(config, bodies, *, clock):
    calls = {"n": 0}

    def lister():
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("apiserver went away")
        return list(bodies.values())

    model = Model(
        trace=Trace(name="flat", base_rate=1000, duration_s=3600),
        num_partitions=config.num_partitions,
        true_rate_per_core=2000,
        restart_s=0,
    )
    return live.LiveSim(model=model, config=config, list_deployments=lister, clock=clock)


def test_the_live_simulator_follows_its_clock_and_the_deployments(consumer):
    _, config = consumer
    bodies = rendered(config, production=1000.0)
    clock = Clock()
    sim = live_sim(config, bodies, clock=clock)
    assert sim.poll() == []
    clock.now = 30.0
    sim.tick()
    assert sim.model.t == pytest.approx(30.0)
    assert sim.model.partitions[0].produced == pytest.approx(30_000)
    assert sim.model.partitions[0].backlog == pytest.approx(0.0)
    assert sim.poll() == []  # the lister failed: counted, nothing changes
    assert sim.poll_errors == 1
    assert len(sim.model.instances()) == 5


def test_the_exporter_speaks_kafka_exporter(consumer):
    doc, config = consumer
    sim = live_sim(config, {}, clock=Clock())
    sim.model.allocate(
        [Instance(name="orders-consumer-0", partitions=(0, 1), cpu_m=100, template="x")]
    )
    sim.model.advance(dt=10.0)
    registry = CollectorRegistry()
    topic = live.topic_name(doc, config)
    registry.register(live.KafkaExporterCollector(sim=sim, topic=topic, group=topic))
    text = generate_latest(registry).decode()
    assert 'kafka_topic_partition_current_offset{partition="0",topic="orders"} 10000.0' in text
    committed = 'kafka_consumergroup_current_offset{consumergroup="orders",partition="0",'
    assert committed + 'topic="orders"} 1000.0' in text
    assert (
        'kafka_consumergroup_lag{consumergroup="orders",partition="0",topic="orders"} 9000.0'
        in text
    )
    assert (
        'kafka_consumergroup_lag{consumergroup="orders",partition="9",topic="orders"} 0.0' in text
    )  # handover
    # 0.1 core consuming flat out for 10 s: 1 CPU-second, cAdvisor's series for its pod.
    assert 'container_cpu_usage_seconds_total{pod="orders-consumer-0-5d4f8b9c7d-model"} 1.0' in text


def test_the_demo_consumer_is_the_sample_with_demo_timings(consumer):
    doc, _ = consumer
    out = demo.demo_consumer(doc, prometheus_url="http://127.0.0.1:12345")
    prom = out["spec"]["autoscaler"]["prometheus"]
    assert prom["address"] == ["http://127.0.0.1:12345"]
    assert prom["minSyncPeriod"] == "10s"
    assert out["spec"]["autoscaler"]["pendingScaleUpDuration"] == "20s"
    # The demo's story (down again a minute after the lag) is the naive predictor's.
    assert out["spec"]["autoscaler"]["predictor"] == "naive"
    assert "predictor" not in doc["spec"]["autoscaler"]  # the example keeps the default
    assert "[15s]" in prom["production"]["query"]
    assert "[1m]" in doc["spec"]["autoscaler"]["prometheus"]["production"]["query"]  # untouched
    _, spec = manifests.read(yaml.safe_load(yaml.safe_dump(out)))
    assert spec.num_partitions == 10


def test_the_demo_screen_tells_the_story():
    assert screen.sparkline([0, 0, 5, 10, 5, 0]) == "▁▁▄█▄▁"
    assert len(screen.sparkline(list(range(1000)), width=60)) == 60
    view = screen.View()
    row = screen.Row(
        "orders-consumer-0", "0,1", 0, 0, "1/1", "256Mi", "RUNNING", "0:10", "2,000 msg/s"
    )
    view.observe(t=10, rows=[row], total_cpu_m=1000)
    grown = screen.Row(
        "orders-consumer-0",
        "0,1",
        90_000,
        45,
        "1/1",
        "256Mi",
        "PENDING_SCALE_UP",
        "0:01",
        "0 msg/s",
    )
    view.observe(t=100, rows=[grown], total_cpu_m=1000)
    up = screen.Row(
        "orders-consumer-0", "0,1", 60_000, 30, "1500m/2", "512Mi", "RUNNING", "0:00", "3,000 msg/s"
    )
    view.observe(t=130, rows=[up], total_cpu_m=1500)
    frame = screen.render(header="h", consumers="NAME\norders\n", rows=[up], view=view, phase="p")
    assert "1:40  orders-consumer-0: RUNNING -> PENDING_SCALE_UP  (lag 45s)" in frame
    assert (
        "2:10  orders-consumer-0: cpu 1/1 -> 1500m/2 (pods restart), PENDING_SCALE_UP -> RUNNING"
        in frame
    )
    assert screen._names(["orders-consumer-1", "orders-consumer-3"]) == "orders-consumer-{1,3}"
    assert "PID" not in frame  # a demo that cannot see processes shows neither column
    assert "RESTARTS" not in frame
    assert "peak 90k at 1:40" in frame
    assert "orders-consumer-0 0,1" in frame


def test_the_demo_screen_tells_an_in_place_resize_from_a_restart():
    def row(cpu: str, pid: str, restarts: int) -> screen.Row:
        return screen.Row(
            "orders-consumer-0",
            "0",
            0,
            0,
            cpu,
            "256Mi",
            "RUNNING",
            "0:00",
            "5 msg/s",
            pid,
            restarts,
        )

    view = screen.View()
    view.observe(t=10, rows=[row("100m/200m", "4100", 0)], total_cpu_m=100)
    view.observe(t=20, rows=[row("300m/500m", "4100", 0)], total_cpu_m=300)
    view.observe(t=30, rows=[row("100m/200m", "4250", 1)], total_cpu_m=100)
    last = row("100m/200m", "4250", 1)
    frame = screen.render(header="h", consumers="", rows=[last], view=view, phase="p")
    assert "0:20  orders-consumer-0: cpu 100m/200m -> 300m/500m (in place, same pid 4100)" in frame
    assert "0:30  orders-consumer-0: cpu 300m/500m -> 100m/200m (restarted, pid 4250)" in frame
    header = next(line for line in frame.splitlines() if line.startswith("INSTANCE"))
    assert header.split()[-2:] == ["PID", "RESTARTS"]
    (line,) = [x for x in frame.splitlines() if x.startswith("orders-consumer-0 ")]
    assert line.split()[-2:] == ["4250", "1"]


def test_alike_changes_share_a_line_with_their_pids():
    def row(i: int, cpu: str, pid: str, restarts: int) -> screen.Row:
        return screen.Row(
            f"orders-consumer-{i}", "0", 0, 0, cpu, "1Mi", "RUNNING", "0:00", "", pid, restarts
        )

    view = screen.View()
    view.observe(t=0, rows=[row(0, "1/1", "10", 0), row(1, "1/1", "11", 0)], total_cpu_m=2)
    view.observe(t=10, rows=[row(0, "2/2", "10", 0), row(1, "2/2", "11", 0)], total_cpu_m=4)
    view.observe(t=20, rows=[row(0, "1/1", "20", 1), row(1, "1/1", "21", 1)], total_cpu_m=2)
    assert view.events == [
        "0:10  orders-consumer-{0,1}: cpu 1/1 -> 2/2 (in place, same pids 10 11)  (lag 0s)",
        "0:20  orders-consumer-{0,1}: cpu 2/2 -> 1/1 (restarted, pids 20 21)  (lag 0s)",
    ]


@pytest.mark.parametrize(
    ("annotation", "cpu"),
    [
        (None, "1"),  # Recreate: the template is the size
        ('{"consumer": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}}}', "250m"),
        ('{"sidecar": {"requests": {"cpu": "9"}, "limits": {}}}', "1"),  # not this container
        ("not json", "1"),  # unreadable: as the operator reads it, absent
    ],
)
def test_the_demo_shows_the_in_place_target_over_the_template(annotation, cpu):
    from konsumerator.domain import keys

    deployment = {
        "metadata": {
            "annotations": {} if annotation is None else {keys.TARGET_RESOURCES: annotation}
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "consumer", "resources": {"requests": {"cpu": "1"}}},
                    ]
                }
            }
        },
    }
    assert demo.pod_resources(deployment, container="consumer")["requests"]["cpu"] == cpu
