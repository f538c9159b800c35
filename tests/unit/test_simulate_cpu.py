"""``konsumerator simulate`` replays the CPU each instance used (a timeline's ``cpu:``).

The learned rate per core (``domain.adaptive.learning``) divides consumption by
the CPU an instance used, the answer of the Consumer's cpuUsage query. A timeline
says it per step, by Deployment name; the replay hands it to the operator's own
learner as that query's answer.

Aspects tested:

* held: a step without ``cpu:`` keeps the last one given; ``cpu: unavailable`` is
  a failed query; before any, the source gave none (the learner's own message);
* judged by the learner, as a Prometheus answer is: a name of no instance, NaN,
  a negative or a huge figure reach ``learning.cores_by_instance`` unchanged, and
  it says what the operator says of such a series (hypothesis: any figures by any
  of the Consumer's Deployment names come back as those Deployments' cores);
* bad input (table): one line naming the file, the step and the key, exit 2;
* the output shows ``status.learning`` only for a Consumer with a cpuUsage query,
  and a Consumer without one gives the same bytes whether the timeline says
  ``cpu:`` or not;
* the example (consumer-learning + slow-consumers): the learned rate appears, falls
  toward the real 1000/s per core, and the requests follow it up.
"""

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator import simulating
from konsumerator.cli import main
from konsumerator.domain.adaptive import learning
from konsumerator.domain.quantities import millis, parse_quantity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONSUMER = EXAMPLES / "consumer.yaml"
LEARNING = EXAMPLES / "consumer-learning.yaml"
SLOW = EXAMPLES / "timelines" / "slow-consumers.yaml"
INSTANCES = ("orders-consumer-0", "orders-consumer-1")
METRICS = {str(p): {"production": 1000, "consumption": 500, "offset": 60000} for p in range(4)}


def simulate(consumer: Path, timeline: Path) -> Result:
    return CliRunner().invoke(main, ["simulate", str(consumer), str(timeline)])


def write(tmp_path: Path, steps: list[dict[str, Any]], name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"steps": steps}))
    return path


def lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines()]


def usage(steps: list[simulating.Step]) -> list[Any]:
    return [
        None
        if s.metrics is None or s.metrics.cpu_usage is None
        else (s.metrics.cpu_usage.problem, dict(s.metrics.cpu_usage.by_pod))
        for s in steps
    ]


def pod(instance: str) -> str:
    return simulating._pod_name(instance)


@pytest.mark.parametrize("spelling", ["yaml", "json"])
def test_a_step_without_cpu_keeps_the_last_one_given(spelling: str) -> None:
    doc = {
        "steps": [
            {"metrics": METRICS},
            {"metrics": METRICS, "cpu": {"orders-consumer-0": 1.5}},
            {"metrics": METRICS},
            {"metrics": METRICS, "cpu": "unavailable"},
            {"metrics": METRICS},
            {"metrics": METRICS, "cpu": {}},
        ]
    }
    text = yaml.safe_dump(doc) if spelling == "yaml" else json.dumps(doc)
    assert usage(simulating.load_timeline(text, source="t")) == [
        None,
        (None, {pod("orders-consumer-0"): 1.5}),
        (None, {pod("orders-consumer-0"): 1.5}),
        (simulating.CPU_UNAVAILABLE, {}),
        (simulating.CPU_UNAVAILABLE, {}),
        (None, {}),
    ]


def test_the_learner_finds_each_deployment_by_its_pods_name() -> None:
    """The replay's pod names are Kubernetes' (``<deployment>-<hash>-<suffix>``), so
    the name rule the operator applies to a Prometheus answer finds the instance."""
    tally = learning.cores_by_instance(
        simulating._cpu_usage(
            {"orders-consumer-0": 1.5, "orders-consumer-1": math.nan, "payments-0": 2.0}
        ),
        INSTANCES,
    )
    assert dict(tally.cores) == {"orders-consumer-0": 1.5}
    assert tally.lying == {"orders-consumer-1"}
    assert tally.unknown == 1


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(
        st.from_regex(r"[a-z][a-z0-9-]{0,60}[a-z0-9]", fullmatch=True), min_size=1, max_size=4
    ).map(lambda names: [f"{n}-{i}" for i, n in enumerate(names)]),
    cores=st.lists(st.floats(min_value=0.001, max_value=1024), min_size=4, max_size=4),
)
def test_any_figures_by_deployment_come_back_as_those_deployments_cores(
    names: list[str], cores: list[float]
) -> None:
    given_cores = dict(zip(names, cores, strict=False))
    text = json.dumps({"steps": [{"metrics": {}, "cpu": given_cores}]})
    (step,) = simulating.load_timeline(text, source="t")
    assert step.metrics is not None
    assert step.metrics.cpu_usage is not None
    tally = learning.cores_by_instance(step.metrics.cpu_usage, names)
    # Names Kubernetes cuts to the same 58 characters cannot be told apart: the
    # learner says so (ambiguous) rather than guess, as it does for the operator.
    assert {n: c for n, c in given_cores.items() if n not in tally.ambiguous} == dict(tally.cores)
    assert tally.unknown == 0


def test_unusable_figures_pause_learning_as_the_operator_says(tmp_path: Path) -> None:
    """NaN, negative and unknown names are the learner's to judge: the status says
    CpuUsageUnusable (what the operator says of such a Prometheus answer)."""
    steps = [
        {"advance": "0s", "metrics": METRICS},
        {"advance": "30s", "metrics": METRICS},
        {
            "advance": "30s",
            "metrics": METRICS,
            "cpu": {"orders-consumer-0": -1.0, "orders-consumer-1": math.nan, "other-0": 1.0},
        },
    ]
    last = lines(simulate(LEARNING, write(tmp_path, steps)))[-1]
    assert last["status"]["learning"]["state"] == "Paused"
    assert last["status"]["learning"]["reason"] == "CpuUsageUnusable"
    assert "1 series of pods of no instance" in last["status"]["learning"]["message"]


def test_cpu_unavailable_is_a_failed_query(tmp_path: Path) -> None:
    steps = [{"advance": "0s", "metrics": METRICS, "cpu": "unavailable"}]
    (line,) = lines(simulate(LEARNING, write(tmp_path, steps)))
    assert line["status"]["learning"]["reason"] == "CpuUsageUnavailable"
    assert simulating.CPU_UNAVAILABLE in line["status"]["learning"]["message"]


@pytest.mark.parametrize(
    ("cpu", "message"),
    [
        ("down", "steps[0].cpu: must map Deployment names to the cores they used, or be"),
        ([1.0], "steps[0].cpu: must map Deployment names to the cores they used, or be"),
        ({"orders-consumer-0": "1.5"}, "steps[0].cpu.orders-consumer-0: must be a number of"),
        ({"orders-consumer-0": True}, "steps[0].cpu.orders-consumer-0: must be a number of"),
        ({"orders-consumer-0": None}, "steps[0].cpu.orders-consumer-0: must be a number of"),
        ({"orders-consumer-0": {"a": 1}}, "steps[0].cpu.orders-consumer-0: must be a number"),
        ({"orders-consumer-0": 10**400}, "steps[0].cpu.orders-consumer-0: must be a number"),
        ({7: 1.0}, "steps[0].cpu.7: must be a Deployment name, got 7"),
    ],
)
def test_a_bad_cpu_gets_one_line_naming_file_step_and_key(
    tmp_path: Path, cpu: Any, message: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"steps": [{"metrics": METRICS, "cpu": cpu}]}))
    result = simulate(LEARNING, path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {path}: {message}")


def test_lines_show_learning_only_for_a_consumer_with_a_cpu_usage_query() -> None:
    assert all("learning" not in line["status"] for line in lines(simulate(CONSUMER, SLOW)))
    assert all("learning" in line["status"] for line in lines(simulate(LEARNING, SLOW)))


def test_without_a_cpu_usage_query_cpu_changes_no_byte(tmp_path: Path) -> None:
    doc = yaml.safe_load(SLOW.read_text())
    for step in doc["steps"]:
        step.pop("cpu", None)
    without = simulate(CONSUMER, write(tmp_path, doc["steps"]))
    assert without.exit_code == 0
    assert simulate(CONSUMER, SLOW).stdout_bytes == without.stdout_bytes


def test_the_example_learns_the_real_rate_and_the_size_follows() -> None:
    found = lines(simulate(LEARNING, SLOW))
    rates = [line["status"]["learning"].get("ratePerCore") for line in found]
    cpu = [
        millis(
            parse_quantity(
                line["deployments"]["orders-consumer-0"]["containers"]["consumer"]["requests"][
                    "cpu"
                ]
            )
        )
        for line in found
    ]
    assert rates[0] == 2000  # the prior
    assert rates == sorted(rates, reverse=True)  # learned down from it, never up
    assert 1000 <= rates[-1] < 1400  # toward the real 1000/s per core
    assert cpu == sorted(cpu)  # the requests follow the learned rate up
    assert cpu[-1] >= 2 * cpu[0]
    learned = [
        line["status"]["learning"]
        for line in found
        if line["status"]["learning"]["reason"] == "Learned"
    ]
    assert learned
    assert all(entry["configuredRatePerCore"] == 2000 for entry in learned)
