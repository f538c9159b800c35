"""``konsumerator simulate`` end to end, through the click command.

Aspects tested:

* The shipped example (examples/consumer.yaml + examples/timelines/
  incident.yaml): one JSON line per step with ``step``, ``t``, ``status``
  (the six counters) and ``deployments`` (partitions, scalingStatus, and per
  container requests/limits/env); every quantity is canonical; the incident
  plays out as designed (pending scale-up, Prometheus outage, SATURATED at
  the policy max, pending scale-down, back to the original size).
* The guest-mode ConfigMap example with a timeline written here: creation
  from the ``max`` fallback while Prometheus is unavailable, then a
  scale-down after pendingScaleDownDuration (default 15m).
* Bad inputs exit with status 2 and print exactly one line on stderr naming
  the file and the field, with no traceback and nothing on stdout: bad YAML
  (timeline and consumer), a bad ``advance`` duration, a negative metric, a
  non-integer partition id, an unknown metric, an invalid spec field, a
  scalar YAML resolves but Python cannot build (an integer of 5,000 digits, a
  timestamp of month 13) in either file.
"""

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from konsumerator.cli import main
from konsumerator.domain.quantities import parse_quantity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONSUMER = EXAMPLES / "consumer.yaml"
CONFIGMAP = EXAMPLES / "consumer-configmap.yaml"
INCIDENT = EXAMPLES / "timelines" / "incident.yaml"
STATUS_KEYS = {"expected", "running", "paused", "missing", "lagging", "outdated"}
SCALING = {"RUNNING", "SATURATED", "PENDING_SCALE_UP", "PENDING_SCALE_DOWN"}


def simulate(consumer: Path, timeline: Path):
    return CliRunner().invoke(main, ["simulate", str(consumer), str(timeline)])


def lines_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_shape(line: dict, *, step: int, deployments: dict[str, list[int]]) -> None:
    assert set(line) == {"step", "t", "status", "deployments"}
    assert line["step"] == step
    assert isinstance(line["t"], int | float)
    assert set(line["status"]) == STATUS_KEYS
    assert all(isinstance(v, int) for v in line["status"].values())
    assert {n: d["partitions"] for n, d in line["deployments"].items()} == deployments
    for d in line["deployments"].values():
        assert set(d) == {"partitions", "scalingStatus", "containers"}
        assert d["scalingStatus"] in SCALING
        for container in d["containers"].values():
            assert set(container) == {"requests", "limits", "env"}
            for quantities in (container["requests"], container["limits"]):
                for text in quantities.values():
                    assert parse_quantity(text).canonical() == text
            assert all(isinstance(v, str) for v in container["env"].values())


def pinned_naive(example: Path, tmp: Path) -> Path:
    """The example with ``predictor: naive``: these tests read the naive predictor's sizes
    (the default is the adaptive one, replayed by the golden files)."""
    text, count = re.subn(
        r"^( *)autoscaler:\n", r"\g<0>\1  predictor: naive\n", example.read_text(), flags=re.M
    )
    assert count == 1, example
    path = tmp / f"naive-{example.name}"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return lines_of(simulate(pinned_naive(CONSUMER, tmp_path_factory.mktemp("naive")), INCIDENT))


def test_incident_lines_have_the_documented_shape(incident):
    assert len(incident) == 9
    expected = {f"orders-consumer-{i}": [2 * i, 2 * i + 1] for i in range(5)}
    for number, line in enumerate(incident, start=1):
        assert_shape(line, step=number, deployments=expected)
    assert [line["t"] for line in incident] == [0, 60, 120, 180, 240, 300, 600, 900, 1560]


def test_incident_first_step_creates_everything(incident):
    first = incident[0]
    assert first["status"] == {
        "expected": 5,
        "running": 0,
        "paused": 0,
        "missing": 5,
        "lagging": 0,
        "outdated": 0,
    }
    c0 = first["deployments"]["orders-consumer-0"]["containers"]
    # 2 × 1500 msg/s at 2000/core → 1500m, 2 cores limit × 256Mi.
    assert c0["consumer"]["requests"] == {"cpu": "1500m", "memory": "512Mi"}
    assert c0["consumer"]["limits"] == {"cpu": "2", "memory": "512Mi"}
    # In place (the default updateMode): no GOMAXPROCS (Go follows the CPU limit itself).
    assert c0["consumer"]["env"] == {
        "KAFKA_BROKERS": "kafka:9092",
        "KONSUMERATOR_PARTITION": "0,1",
        "GOMEMLIMIT": "409MiB",
        "KONSUMERATOR_INSTANCE": "0",
        "KONSUMERATOR_NUM_PARTITIONS": "10",
        "KONSUMERATOR_NUM_INSTANCES": "5",
    }
    # The sidecar is pinned by its policy.
    assert c0["metrics-sidecar"]["requests"] == {"cpu": "50m", "memory": "32Mi"}
    assert c0["metrics-sidecar"]["limits"] == {"cpu": "50m", "memory": "32Mi"}
    assert c0["metrics-sidecar"]["env"]["GOMEMLIMIT"] == "25MiB"
    assert incident[1]["status"]["running"] == 5
    assert incident[1]["status"]["missing"] == 0


def test_incident_scales_up_saturates_and_comes_back(incident):
    def instance1(line):
        d = line["deployments"]["orders-consumer-1"]
        return d["scalingStatus"], d["containers"]["consumer"]["requests"]

    small = {"cpu": "1500m", "memory": "512Mi"}
    big = {"cpu": "4", "memory": "1Gi"}
    assert [instance1(line) for line in incident] == [
        ("RUNNING", small),
        ("RUNNING", small),
        ("PENDING_SCALE_UP", small),  # lag appears
        ("PENDING_SCALE_UP", small),  # Prometheus unavailable
        ("SATURATED", big),  # 2m later: up, capped at maxAllowed
        ("SATURATED", big),
        ("PENDING_SCALE_DOWN", big),  # caught up
        ("PENDING_SCALE_DOWN", big),
        ("RUNNING", small),  # 10m later: down
    ]
    assert [line["status"]["lagging"] for line in incident] == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    # Only instance 1 was ever touched.
    for line in incident:
        for name in ("orders-consumer-0", "orders-consumer-2", "orders-consumer-3"):
            d = line["deployments"][name]
            assert d["scalingStatus"] == "RUNNING"
            assert d["containers"]["consumer"]["requests"] == small


GUEST_TIMELINE = {
    "steps": [
        {"advance": "0s", "metrics": "unavailable"},
        {
            "advance": "1m",
            "metrics": {str(p): {"production": 10000, "offset": 0} for p in range(4)},
        },
        {
            "advance": "15m",
            "metrics": {str(p): {"production": 10000, "offset": 0} for p in range(4)},
        },
    ]
}


def test_guest_configmap_with_a_timeline(tmp_path):
    timeline = tmp_path / "guest.yaml"
    timeline.write_text(yaml.safe_dump(GUEST_TIMELINE))
    lines = lines_of(simulate(pinned_naive(CONFIGMAP, tmp_path), timeline))
    names = {"payments-consumer-0": [0, 1], "payments-consumer-1": [2, 3]}
    for number, line in enumerate(lines, start=1):
        assert_shape(line, step=number, deployments=names)
    assert [line["t"] for line in lines] == [0, 60, 960]

    def consumer(line, i=0):
        return line["deployments"][f"payments-consumer-{i}"]["containers"]["consumer"]

    # Prometheus unavailable: fallbackStrategy max → the policy maximum.
    assert consumer(lines[0])["requests"] == {"cpu": "2", "memory": "1G"}
    assert consumer(lines[0])["limits"] == {"cpu": "2", "memory": "1G"}
    assert consumer(lines[0])["env"]["GOMEMLIMIT"] == "762MiB"
    assert consumer(lines[0])["env"]["KONSUMERATOR_PARTITION"] == "0,1"
    # 20000 msg/s at 50000/core → 400m, 1 core limit × 500M: the first size from metrics of
    # an instance created without them, at once (docs/compatibility.md, row 79), not after
    # pendingScaleDownDuration.
    assert lines[1]["deployments"]["payments-consumer-0"]["scalingStatus"] == "RUNNING"
    assert consumer(lines[1])["requests"] == {"cpu": "400m", "memory": "500M"}
    assert lines[2]["deployments"]["payments-consumer-0"]["scalingStatus"] == "RUNNING"
    assert consumer(lines[2])["requests"] == {"cpu": "400m", "memory": "500M"}
    assert consumer(lines[2])["limits"] == {"cpu": "1", "memory": "500M"}
    assert consumer(lines[2], 1)["requests"] == {"cpu": "400m", "memory": "500M"}
    assert lines[2]["status"]["running"] == 2


# --- bad inputs ----------------------------------------------------------------------

GOOD_STEP = "steps:\n- advance: 0s\n  metrics: {'0': {production: 1}}\n"


def invalid_consumer(tmp_path: Path) -> Path:
    doc = yaml.safe_load(CONSUMER.read_text())
    doc["spec"]["autoscaler"]["prometheus"]["ratePerCore"] = 0
    path = tmp_path / "consumer.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("which", "text", "needle"),
    [
        ("timeline", "steps: [\n", "not valid YAML"),
        ("timeline", "steps:\n- advance: 1x\n", "steps[0].advance"),
        ("timeline", "steps:\n- advance: -1m\n", "steps[0].advance"),
        (
            "timeline",
            GOOD_STEP + "- advance: 1m\n  metrics: {'3': {offset: -5}}\n",
            "steps[1].metrics.3.offset",
        ),
        ("timeline", "steps:\n- metrics: {'1.5': {production: 1}}\n", "steps[0].metrics.1.5"),
        ("timeline", "steps:\n- metrics: {abc: {production: 1}}\n", "steps[0].metrics.abc"),
        ("timeline", "steps:\n- metrics: {'0': {lag: 1}}\n", "steps[0].metrics.0.lag"),
        (
            "timeline",
            "steps:\n- metrics: {'0': {production: x}}\n",
            "steps[0].metrics.0.production",
        ),
        (
            "timeline",
            '{"steps": [{"metrics": {"0": {"offset": 1' + "0" * 400 + "}}}]}",
            "steps[0].metrics.0.offset: must be a finite number",
        ),
        ("timeline", "steps:\n- advance: 1m\n  extra: 1\n", "steps[0].extra"),
        ("timeline", "stepz: []\n", "steps"),
        ("consumer", "kind: [\n", "not valid YAML"),
        ("consumer", "", "exactly one"),
        # Scalars the YAML resolver accepts that Python cannot build: these raised
        # ValueError out of the command (a traceback, exit 1).
        ("timeline", "steps:\n- metrics: {'0': {production: " + "9" * 5000 + "}}\n", "4300"),
        ("timeline", '{"steps": [{"metrics": {"0": {"offset": ' + "9" * 5000 + "}}}]}", "4300"),
        ("timeline", "steps:\n- advance: 1m\n  cpu: {a-0: " + "9" * 5000 + "}\n", "4300"),
        ("timeline", "steps:\n- advance: 1m\n  at: 2026-13-01\n", "month must be in 1..12"),
        ("consumer", "kind: Consumer\nspec: {numPartitions: " + "9" * 5000 + "}\n", "4300"),
        ("consumer", "kind: Consumer\nmetadata: {name: 2026-02-30}\n", "day is out of range"),
        # Keys of any type YAML has: sorted() could not order an integer next to strings
        # (a TypeError out of the command).
        ("timeline", "steps:\n- {advance: 1m, 1: x, b: y}\n", "steps[0].1: unknown field"),
        ("timeline", "steps: []\n1: a\nb: c\n", "yaml: 1: unknown field"),
        # Deeper than json's recursion (RecursionError out of the command): libyaml's
        # parser stops at 1,000 levels and names the line.
        ("timeline", '{"steps": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid YAML"),
        # A key with a newline is named by its repr: the message stays one line.
        ("timeline", 'steps:\n- {"ad\\nvance": 1m}\n', "steps[0].'ad\\nvance': unknown field"),
        ("timeline", 'steps: []\n"x\\ny": 1\n', "'x\\ny': unknown field"),
        (
            "timeline",
            'steps:\n- {advance: 1m, metrics: {"0\\n1": {production: 1}}}\n',
            "steps[0].metrics.'0\\n1': partition ids",
        ),
        (
            "timeline",
            'steps:\n- {advance: 1m, metrics: {"0": {"produc\\ntion": 1}}}\n',
            "steps[0].metrics.0.'produc\\ntion': unknown metric",
        ),
        (
            "timeline",
            'steps:\n- {advance: 1m, cpu: {"a\\rb": x}}\n',
            "steps[0].cpu.'a\\rb': must be a number of cores",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_and_field(tmp_path, which, text, needle):
    bad = tmp_path / f"bad-{which}.yaml"
    bad.write_text(text)
    good_timeline = tmp_path / "good.yaml"
    good_timeline.write_text(GOOD_STEP)
    consumer, timeline = (bad, good_timeline) if which == "consumer" else (CONSUMER, bad)
    result = simulate(consumer, timeline)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(bad) in lines[0]
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_spec_field_is_named(tmp_path):
    path = invalid_consumer(tmp_path)
    result = simulate(path, INCIDENT)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert str(path) in line
    assert "spec.autoscaler.prometheus.ratePerCore" in line
    assert "Traceback" not in result.stderr


def test_invalid_guest_spec_field_is_named(tmp_path):
    doc = yaml.safe_load(CONFIGMAP.read_text())
    spec = yaml.safe_load(doc["data"]["consumer.yaml"])
    spec["numPartitionsPerInstance"] = 0
    doc["data"]["consumer.yaml"] = yaml.safe_dump(spec)
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = simulate(path, INCIDENT)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert str(path) in line
    assert "data.consumer.yaml.numPartitionsPerInstance" in line


def test_missing_file_exits_2(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = simulate(missing, INCIDENT)
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("which", "data", "needle"),
    [
        ("consumer", b"kind: Consumer\nname: \xff\xfe\n", "line 2: not UTF-8 text"),
        ("timeline", b"steps:\n- advance: 1m\n\x80\n", "line 3: not UTF-8 text"),
        ("timeline", "directory", "directory"),
    ],
)
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, which, data, needle):
    bad = tmp_path / f"bad-{which}"
    if data == "directory":
        bad.mkdir()
    else:
        bad.write_bytes(data)
    consumer, timeline = (bad, INCIDENT) if which == "consumer" else (CONSUMER, bad)
    result = simulate(consumer, timeline)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert str(bad) in line
    assert needle.lower() in line.lower()


def test_usage_errors_are_one_line():
    result = CliRunner().invoke(main, ["simulate", str(CONSUMER)])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "TIMELINE" in line


def test_the_go_operators_sample_consumer_simulates_unchanged():
    """The Go operator's sample (10 partitions, one per instance, a pinned sidecar)."""
    lines = lines_of(simulate(EXAMPLES / "go-operator-sample.yaml", INCIDENT))
    expected = {f"test-consumer-{i}": [i] for i in range(10)}
    for number, line in enumerate(lines, start=1):
        assert_shape(line, step=number, deployments=expected)
    # Partitions 2 and 3 lag 75 s at step 3: under tolerableLag (5m), so nothing moves.
    assert all(line["status"]["lagging"] == 0 for line in lines)
    sidecar = lines[-1]["deployments"]["test-consumer-2"]["containers"]["busybox-info"]
    assert sidecar["requests"] == {"cpu": "100m", "memory": "100M"}
