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
  the file and field (a bad Consumer), or the option (NaN included: click's
  ranges let it through); nothing on stdout, no traceback. Hostile cases: not
  UTF-8, a missing file or a directory, both inputs on stdin, a guest
  ConfigMap of another size, a list or several documents, a Consumer with
  autoscaling disabled by annotation, a run too large to finish within the
  work limit (a long trace, 10^5 partitions).
* A trace can come on stdin (``-``), and a spreadsheet's BOM and CRLF are
  read as plain CSV.
* The JSON is strict JSON (no NaN or Infinity tokens) even with no traffic.
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


def score(*args: str, stdin: str | bytes | None = None):
    return CliRunner().invoke(main, ["score", *args], input=stdin)


def strict_json(text: str) -> object:
    def refuse(token: str) -> object:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


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


def consumer_with(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "consumer.yaml"
    text = CONSUMER.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def one_line_refusal(result, start: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {start}"), line


@pytest.mark.parametrize(
    ("option", "start"),
    [
        (["--true-rate-factor", "nan"], "--true-rate-factor: must be a number from 0.01 to 100"),
        (["--restart-seconds", "nan"], "--restart-seconds: must be a number from 0 to 3600"),
        (["--true-rate-factor", "inf"], "Invalid value for '--true-rate-factor'"),
        (["--true-rate-factor", "0"], "Invalid value for '--true-rate-factor'"),
        (["--restart-seconds", "-1"], "Invalid value for '--restart-seconds'"),
        (["--seeds", "0"], "Invalid value for '--seeds'"),
        (["--seeds", "-1"], "Invalid value for '--seeds'"),
        (["--seeds", "1000000000"], "Invalid value for '--seeds'"),
        (["--policy", "smart"], "Invalid value for '--policy'"),
        (["--format", "yaml"], "Invalid value for '--format'"),
        (["--update-mode", "InPlace"], "Invalid value for '--update-mode'"),
        (["--frobnicate"], "No such option '--frobnicate'"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(tmp_path: Path, option: list[str], start: str) -> None:
    one_line_refusal(score(str(CONSUMER), str(burst_csv(tmp_path)), *option), start)


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just text\n", "a: 1\n---\nb: 2\n"])
def test_a_consumer_file_that_is_not_one_object_is_one_line(tmp_path: Path, text: str) -> None:
    consumer = tmp_path / "c.yaml"
    consumer.write_text(text)
    result = score(str(consumer), str(burst_csv(tmp_path)))
    one_line_refusal(result, f"{consumer}: expected exactly one Consumer or ConfigMap")


def test_a_missing_argument_is_one_line() -> None:
    one_line_refusal(score(str(CONSUMER)), "Missing argument 'TRACE'")


def test_bad_files_are_one_line_naming_them(tmp_path: Path) -> None:
    trace = str(burst_csv(tmp_path))
    one_line_refusal(score(str(tmp_path / "nope.yaml"), trace), f"{tmp_path / 'nope.yaml'}: no")
    one_line_refusal(score(str(CONSUMER), str(tmp_path / "nope.csv")), f"{tmp_path}/nope.csv: no")
    one_line_refusal(score(str(tmp_path), trace), "Invalid value for 'CONSUMER'")
    one_line_refusal(score(str(CONSUMER), str(tmp_path)), "Invalid value for 'TRACE'")
    one_line_refusal(score("-", "-"), "CONSUMER and TRACE: only one of them can be -")
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"kind: Consumer\n\xff\xfe\n")
    one_line_refusal(score(str(binary), trace), f"{binary}: line 2: not UTF-8 text")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(burst_csv(tmp_path).read_bytes() + b"4000,\xe9" + b",1" * 9 + b"\n")
    one_line_refusal(score(str(CONSUMER), str(latin)), f"{latin}: row 6, column 2: rate must")


@pytest.mark.parametrize(
    ("old", "new", "start"),
    [
        # A guest ConfigMap for 4 partitions against a 10-partition trace.
        ("kind: Consumer", "kind: Consumer", "{trace}: row 1, column 6: partition '4' is beyond"),
        (
            "apiVersion: konsumerator.lwolf.org/v1\nkind: Consumer\n",
            "[",
            "{consumer}: not valid YAML",
        ),
        ("spec:\n", "---\nspec:\n", "{consumer}: expected exactly one Consumer or ConfigMap"),
        (
            "  namespace: default\nspec:",
            "  namespace: default\n  annotations:"
            " {konsumerator.lwolf.org/disable-autoscaler: 'true'}\nspec:",
            "{consumer}: metadata.annotations.konsumerator.lwolf.org/disable-autoscaler:",
        ),
        ("mode: prometheus", "mode: none", "{consumer}: spec.autoscaler.mode: must be prometheus"),
        ("tolerableLag: 1m", "tolerableLag: soon", "{consumer}: spec.autoscaler.prometheus."),
        (
            "numPartitions: 10\n",
            "numPartitions: 100000\n",
            "{consumer}: spec.numPartitions: 100000 partitions are too many to score",
        ),
        # Scalars YAML resolves but Python cannot build: a ValueError traceback before.
        (
            "numPartitions: 10\n",
            "numPartitions: " + "9" * 5000 + "\n",
            "{consumer}: not valid YAML: Exceeds the limit (4300 digits)",
        ),
        (
            "  namespace: default\nspec:",
            "  namespace: default\n  labels: {since: 2026-13-01}\nspec:",
            "{consumer}: not valid YAML: month must be in 1..12",
        ),
    ],
)
def test_a_consumer_that_cannot_be_scored_is_one_line(
    tmp_path: Path, old: str, new: str, start: str
) -> None:
    if old == new:
        consumer = tmp_path / "guest.yaml"
        consumer.write_text((CONSUMER.parent / "consumer-configmap.yaml").read_text())
    else:
        consumer = consumer_with(tmp_path, old, new)
    trace = burst_csv(tmp_path)
    result = score(str(consumer), str(trace))
    one_line_refusal(result, start.format(consumer=consumer, trace=trace))


@pytest.mark.parametrize(
    ("body", "start"),
    [
        ("1700000000,{r}\n1700000600,{r}\n", "row 2, column 1: the first row's t must be 0"),
        ("0,{r}\n", "row 2, column 1: the trace ends at 60 s (its only row holds for 60 s)"),
        ("0,{r}\n1e9,{r}\n", "row 3, column 1: t '1e9' is longer than the"),
        ("0,{r}\n60,{r}\n120,1e300" + ",1" * 9 + "\n", "row 4, column 2: rate must be"),
        ("0,{r}\n60,1_000" + ",1" * 9 + "\n", "row 3, column 2: rate must be"),
    ],
)
def test_a_trace_that_cannot_be_scored_is_one_line(tmp_path: Path, body: str, start: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text("t," + ",".join(map(str, range(10))) + "\n" + body.format(r=",".join("1" * 10)))
    one_line_refusal(score(str(CONSUMER), str(path)), f"{path}: {start}")


def test_a_trace_on_stdin_with_a_bom_and_crlf_scores(tmp_path: Path) -> None:
    text = burst_csv(tmp_path).read_text().replace("\n", "\r\n")
    result = score(
        str(CONSUMER),
        "-",
        "--format=json",
        "--policy=oracle",
        stdin=b"\xef\xbb\xbf" + text.encode(),
    )
    assert result.exit_code == 0, result.output
    from_file = score(str(CONSUMER), str(burst_csv(tmp_path)), "--format=json", "--policy=oracle")
    assert result.stdout == from_file.stdout


def test_no_traffic_still_prints_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "idle.csv"
    path.write_text(
        "t," + ",".join(map(str, range(10))) + "\n0" + ",0" * 10 + "\n600" + ",0" * 10 + "\n"
    )
    result = score(str(CONSUMER), str(path), "--format=json", "--seeds=2")
    assert result.exit_code == 0, result.output
    doc = strict_json(result.stdout)
    assert isinstance(doc, dict)
    assert doc["policies"]["oracle"]["core_hours"] == 0
    assert doc["policies"]["oracle"]["efficiency"] is None  # 0 / 0: no number at all


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
