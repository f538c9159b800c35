"""The real-Kafka demo's pure parts: its Consumer, the rows read from Kafka's offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from konsumerator.api import manifests
from konsumerator_dev.sim import kafkademo, live

from .test_live_and_demo import rendered

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"


@pytest.fixture
def doc() -> dict:
    loaded, _ = live.read_consumer(EXAMPLE)
    return loaded


def test_demo_consumer_keeps_the_example_queries_and_fits_two_cores(doc: dict) -> None:
    out = kafkademo.kafka_demo_consumer(doc, prometheus_url="http://127.0.0.1:1")
    prom = out["spec"]["autoscaler"]["prometheus"]
    example = doc["spec"]["autoscaler"]["prometheus"]
    # the lag query is the example's, unchanged; the rates only get the demo's shorter window
    assert prom["offset"]["query"] == example["offset"]["query"]
    assert prom["production"]["query"] == example["production"]["query"].replace("[1m]", "[15s]")
    assert out["spec"]["numPartitions"] == kafkademo.PARTITIONS
    assert prom["ratePerCore"] * kafkademo.WORK_MS == 1000  # ratePerCore is the truth
    env = {
        e["name"]: e["value"]
        for e in out["spec"]["deploymentTemplate"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KAFKA_TOPIC"] == "orders"
    assert env["KAFKA_GROUP"] == "orders"
    assert env["WORK_MS_PER_MESSAGE"] == str(kafkademo.WORK_MS)
    _, spec = manifests.read(yaml.safe_load(yaml.safe_dump(out)))  # still a valid Consumer
    assert spec.num_partitions == kafkademo.PARTITIONS


def test_rows_read_lag_from_kafka_offsets_and_rates_from_commits(doc: dict, tmp_path: Path) -> None:
    out = kafkademo.kafka_demo_consumer(doc, prometheus_url="http://127.0.0.1:1")
    (tmp_path / "consumer.yaml").write_text(yaml.safe_dump(out))
    _, config = live.read_consumer(tmp_path / "consumer.yaml")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = rendered(config, production=5.0, now=now)
    before = kafkademo.Offsets(latest={0: 100, 1: 100}, committed={0: 50, 1: 90}, at=10.0)
    after = kafkademo.Offsets(
        latest={0: 110, 1: 110, 2: 5, 3: 5}, committed={0: 70, 1: 108, 2: 5, 3: 0}, at=12.0
    ).since(before)
    rows, cpu_m = kafkademo.rows_from_kafka(
        list(bodies.values()),
        offsets=after,
        production=5.0,
        container="consumer",
        now=(now + timedelta(seconds=30)).timestamp(),
    )
    by_name = {r.name: r for r in rows}
    assert set(by_name) == {f"orders-consumer-{i}" for i in range(4)}
    first = by_name["orders-consumer-0"]
    assert (first.partitions, first.lag_msgs, first.lag_s) == ("0", 40.0, 8.0)
    assert first.consuming == "10.0 msg/s"  # (70 - 50) / 2 s
    assert by_name["orders-consumer-3"].lag_msgs == 5.0
    assert all(r.lag_msgs >= 0 for r in rows)
    assert cpu_m > 0


def test_label_is_read_from_the_selector() -> None:
    query = 'sum by (partition) (kafka_consumergroup_lag{consumergroup="g1", topic="t1"})'
    assert kafkademo._label(query, "topic") == "t1"
    assert kafkademo._label(query, "consumergroup") == "g1"


@pytest.mark.parametrize(
    ("t", "lag_s", "words"),
    [
        (10.0, 0.0, "steady"),
        (80.0, 30.0, "OUTAGE"),
        (200.0, 12.0, "consumers drain the backlog"),
        (300.0, 0.4, "backlog drained"),
    ],
)
def test_phase_tells_the_incident(t: float, lag_s: float, words: str) -> None:
    assert words in kafkademo.phase(t, at=75.0, length=60.0, lag_s=lag_s)


@pytest.mark.parametrize(("flag", "expected"), [([], "kafka"), (["--simulator"], "simulator")])
def test_demo_runs_on_real_kafka_unless_asked_for_the_simulator(
    monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: str
) -> None:
    from konsumerator_dev.sim import cli, demo

    ran: list[str] = []
    monkeypatch.setattr(kafkademo, "main", lambda args: ran.append("kafka") or 0)
    monkeypatch.setattr(demo, "main", lambda args: ran.append("simulator") or 0)
    assert cli.main(["demo", *flag]) == 0
    assert ran == [expected]


def test_restarts_count_new_processes_of_an_instance_not_its_first() -> None:
    restarts = kafkademo.Restarts()
    assert restarts.observe("orders-0", []) == 0  # no process yet
    assert restarts.observe("orders-0", [100]) == 0  # its start
    assert restarts.observe("orders-0", [100]) == 0  # resized in place: same process
    assert restarts.observe("orders-0", [100, 200]) == 1  # a rollout: old and new side by side
    assert restarts.observe("orders-0", [200]) == 1
    assert restarts.observe("orders-1", [300]) == 0
    assert restarts.observe("orders-0", [400]) == 2  # a crash or another rollout
    assert restarts.total == 2


def test_rows_show_the_running_process_its_actuated_cpu_and_restarts(
    doc: dict, tmp_path: Path
) -> None:
    out = kafkademo.kafka_demo_consumer(doc, prometheus_url="http://127.0.0.1:1")
    (tmp_path / "consumer.yaml").write_text(yaml.safe_dump(out))
    _, config = live.read_consumer(tmp_path / "consumer.yaml")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = list(rendered(config, production=5.0, now=now).values())
    offsets = kafkademo.Offsets(latest={}, committed={}, at=1.0)
    restarts = kafkademo.Restarts()

    def frame(*processes: kafkademo.Process) -> dict[str, Any]:
        rows, cpu_m = kafkademo.rows_from_kafka(
            bodies,
            offsets=offsets,
            production=5.0,
            container="consumer",
            now=now.timestamp(),
            processes=processes,
            restarts=restarts,
        )
        return {"rows": {r.name: r for r in rows}, "cpu_m": cpu_m}

    template = frame()["rows"]["orders-consumer-0"]
    assert (template.pid, template.restarts) == ("-", 0)  # no process yet: the template's CPU

    first = kafkademo.Process("orders-consumer-0-5d8f7-abcde", 4100, 100, 200)
    seen = frame(first)
    row = seen["rows"]["orders-consumer-0"]
    assert (row.cpu, row.pid, row.restarts) == ("100m/200m", "4100", 0)

    # resized in place: the pod's actuated CPU changes, the process does not
    resized = kafkademo.Process(first.pod, 4100, 300, 500)
    row = frame(resized)["rows"]["orders-consumer-0"]
    assert (row.cpu, row.pid, row.restarts) == ("300m/500m", "4100", 0)

    # a rollout: a new pod's process replaces it; the newest one's CPU is shown
    rolled = kafkademo.Process("orders-consumer-0-77c9b-fghij", 4250, 400, 600)
    row = frame(resized, rolled)["rows"]["orders-consumer-0"]
    assert (row.cpu, row.pid, row.restarts) == ("400m/600m", "4100,4250", 1)
    assert frame(rolled)["rows"]["orders-consumer-0"].restarts == 1
    assert frame(rolled)["rows"]["orders-consumer-1"].restarts == 0
