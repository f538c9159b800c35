"""``konsumerator score`` end to end, through the click command.

Aspects tested:

* ``--format json`` prints one JSON object, ``{"policies": {NAME: {...}}}``,
  with exactly the issue's fields for each policy scored (all four without
  ``--policy``, only those asked with it); the bounds hold on a burst: the
  oracle uses the least CPU and never restarts, static-peak never violates.
* ``--seeds N`` adds each field's spread (min..max) over the seeds.
* Markdown is the default: one table row per policy.
* ``--update-mode``: under Recreate resizes restart pods; InPlaceOrRecreate
  restarts nothing.
* Bad input exits 2 with one line on stderr naming the file, row and column
  (a malformed CSV, a partition count that does not match the Consumer), or
  the file and field (a bad Consumer); nothing on stdout.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from konsumerator.cli import main

CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer.yaml"
FIELDS = {
    "v_crit",
    "v_tol",
    "severity",
    "core_hours",
    "over",
    "under",
    "restarts",
    "resizes",
    "oscillations",
    "efficiency",
}


def burst_csv(tmp_path: Path, *, partitions: int = 10) -> Path:
    header = ",".join(["t", *map(str, range(partitions))])
    rows = [(0, 1000), (1200, 3000), (1800, 1000), (3600, 1000)]
    path = tmp_path / "burst.csv"
    path.write_text(
        header + "\n" + "".join(f"{t}," + ",".join([str(r)] * partitions) + "\n" for t, r in rows)
    )
    return path


def score(*args: str):
    return CliRunner().invoke(main, ["score", *args])


def test_json_has_every_field_of_every_policy(tmp_path: Path) -> None:
    result = score(
        str(CONSUMER), str(burst_csv(tmp_path)), "--format", "json", "--update-mode", "Recreate"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"policies"}
    policies = doc["policies"]
    assert list(policies) == ["naive", "adaptive", "static-peak", "oracle"]
    for row in policies.values():
        assert set(row) == FIELDS
    oracle = policies["oracle"]
    assert oracle["restarts"] == 0
    assert oracle["efficiency"] == 1.0
    assert oracle["oscillations"] is None  # it resizes continuously and for free
    assert all(oracle["core_hours"] <= p["core_hours"] for p in policies.values())
    assert policies["static-peak"]["v_tol"] == 0
    assert policies["naive"]["restarts"] > 0


def test_policy_selects_and_seeds_add_the_spread(tmp_path: Path) -> None:
    result = score(
        str(CONSUMER),
        str(burst_csv(tmp_path)),
        "--format=json",
        "--policy=adaptive",
        "--policy=naive",
        "--seeds=2",
    )
    assert result.exit_code == 0, result.output
    policies = json.loads(result.stdout)["policies"]
    assert list(policies) == ["adaptive", "naive"]
    low, high = policies["naive"]["spread"]["core_hours"]
    assert low <= policies["naive"]["core_hours"] <= high


def test_in_place_resizes_restart_nothing(tmp_path: Path) -> None:
    result = score(
        str(CONSUMER),
        str(burst_csv(tmp_path)),
        "--format=json",
        "--policy=adaptive",
        "--update-mode=InPlaceOrRecreate",
    )
    assert result.exit_code == 0, result.output
    adaptive = json.loads(result.stdout)["policies"]["adaptive"]
    assert adaptive["restarts"] == 0
    assert adaptive["resizes"] > 0


def test_markdown_is_the_default(tmp_path: Path) -> None:
    result = score(str(CONSUMER), str(burst_csv(tmp_path)), "--policy=oracle")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("| oracle")]
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("t,0,1,2,3,4,5,6,7,8,9\n0,1,1,1,1,x,1,1,1,1,1\n", "row 2, column 6: rate"),
        ("t,0,1,2\n0,1,1,1\n", "row 1, column 5: partition 3 is missing"),
        (
            "t,0,1,2,3,4,5,6,7,8,9\n0,1,1,1,1,1,1,1,1,1,1\n-5,1,1,1,1,1,1,1,1,1,1\n",
            "row 3, column 1",
        ),
    ],
)
def test_a_bad_trace_is_one_line_naming_file_row_and_column(
    tmp_path: Path, content: str, where: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = score(str(CONSUMER), str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: {where}")


def test_a_bad_consumer_is_one_line_naming_the_field(tmp_path: Path) -> None:
    consumer = tmp_path / "c.yaml"
    consumer.write_text(CONSUMER.read_text().replace("ratePerCore: 2000", "ratePerCore: -1"))
    result = score(str(consumer), str(burst_csv(tmp_path)))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {consumer}: spec.autoscaler.prometheus.ratePerCore")


def learning_consumer(tmp_path: Path) -> Path:
    """examples/consumer.yaml with a cpuUsage query: the adaptive predictor learns."""
    text = CONSUMER.read_text().replace(
        "      offset:\n",
        "      cpuUsage:\n"
        "        query: sum by (pod) (rate(container_cpu_usage_seconds_total[1m]))\n"
        "        podLabel: pod\n"
        "      offset:\n",
        1,
    )
    path = tmp_path / "learning.yaml"
    path.write_text(text)
    return path


def test_with_a_cpu_usage_query_adaptive_learns_the_true_rate_and_lags_less(
    tmp_path: Path,
) -> None:
    # Consumers 20 % slower than ratePerCore (2000) says, on a steady 1500 msg/s per
    # partition: sized from 2000 they fall behind; the learned rate approaches 1600.
    header = ",".join(["t", *map(str, range(10))])
    trace = tmp_path / "steady.csv"
    trace.write_text(
        header + "\n0," + ",".join(["1500"] * 10) + "\n5400," + ",".join(["1500"] * 10) + "\n"
    )
    common = (
        "--format=json",
        "--policy=adaptive",
        "--true-rate-factor=0.8",
        "--update-mode=Recreate",
    )
    learned = score(str(learning_consumer(tmp_path)), str(trace), *common)
    configured = score(str(CONSUMER), str(trace), *common)
    assert learned.exit_code == 0, learned.output
    assert configured.exit_code == 0, configured.output
    with_query = json.loads(learned.stdout)["policies"]["adaptive"]
    without = json.loads(configured.stdout)["policies"]["adaptive"]
    assert "learned_rate_per_core" not in without
    assert 1600 * 0.97 <= with_query["learned_rate_per_core"] <= 1600 * 1.1
    assert with_query["v_tol"] < without["v_tol"]
