"""``konsumerator simulate`` output is byte-identical to the recorded golden files.

The replay is the user's contract: a timeline checked against a Consumer
before an upgrade must give the same answer after it, unless a change of
behaviour is intended (and then the golden files change in the same commit,
so the diff shows what changed). Every example Consumer is replayed over the
example timelines and over two long generated timelines
(``konsumerator_dev.bench.simulate``'s
generator with a fixed seed: an incident that builds and drains a backlog,
and a Prometheus outage with the steps around it). None of those Consumers has a
cpuUsage query, so their lines carry no ``status.learning``, and a timeline's
``cpu:`` (``slow-consumers.yaml``) changes nothing in them.

``LEARNING`` adds the Consumer that learns its rate per core
(``consumer-learning.yaml``: the adaptive predictor with a cpuUsage query) on the
timeline made for it: its lines show ``status.learning``, the learned rate, and
the requests following it.

Each case runs twice: as the example is (``updateMode`` defaults to
``InPlaceOrRecreate``: files ``*--inplace.jsonl.gz``) and with
``updateMode: Recreate`` added to its autoscaler (the Go operator's way, and
this operator's only one before in-place resizing: those files are the ones
recorded before it, byte for byte).

To record new golden files after an intended change of behaviour:

    .venv/bin/python -m tests.unit.test_simulate_golden --update
"""

import gzip
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from konsumerator.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
CONSUMERS = ("consumer.yaml", "consumer-configmap.yaml", "go-operator-sample.yaml")
MODES = ("Recreate", "InPlaceOrRecreate")
LEARNING = ("consumer-learning.yaml", "slow-consumers.yaml")


def timelines() -> list[Path]:
    return [
        *sorted((EXAMPLES / "timelines").glob("*.yaml")),
        *sorted((GOLDEN / "timelines").glob("*.json.gz")),
    ]


def cases() -> list[tuple[str, Path, str]]:
    learning, timeline = LEARNING
    return [
        *(
            (consumer, timeline, mode)
            for consumer in CONSUMERS
            for timeline in timelines()
            for mode in MODES
        ),
        *((learning, EXAMPLES / "timelines" / timeline, mode) for mode in MODES),
    ]


def golden_path(consumer: str, timeline: Path, mode: str) -> Path:
    stem = timeline.name.split(".")[0]
    suffix = "" if mode == "Recreate" else "--inplace"
    return GOLDEN / "outputs" / f"{consumer.split('.')[0]}--{stem}{suffix}.jsonl.gz"


def with_mode(consumer: str, mode: str, tmp: Path) -> Path:
    """The example, with ``updateMode: Recreate`` added to its autoscaler for Recreate."""
    if mode != "Recreate":
        return EXAMPLES / consumer
    text = (EXAMPLES / consumer).read_text()
    changed, count = re.subn(
        r"^( *)autoscaler:\n", r"\g<0>\1  updateMode: Recreate\n", text, flags=re.M
    )
    assert count == 1, consumer
    path = tmp / f"recreate-{consumer}"
    path.write_text(changed)
    return path


def replay(consumer: str, timeline: Path, tmp: Path, mode: str) -> bytes:
    if timeline.suffix == ".gz":
        plain = tmp / timeline.name.removesuffix(".gz")
        plain.write_bytes(gzip.decompress(timeline.read_bytes()))
        timeline = plain
    path = with_mode(consumer, mode, tmp)
    result = CliRunner().invoke(main, ["simulate", str(path), str(timeline)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout_bytes


@pytest.mark.parametrize(
    ("consumer", "timeline", "mode"),
    cases(),
    ids=[golden_path(c, t, m).name for c, t, m in cases()],
)
def test_simulate_output_is_byte_identical_to_the_golden_file(
    consumer: str, timeline: Path, mode: str, tmp_path: Path
) -> None:
    expected = gzip.decompress(golden_path(consumer, timeline, mode).read_bytes())
    actual = replay(consumer, timeline, tmp_path, mode)
    assert actual == expected


def test_every_example_consumer_and_timeline_has_a_golden_file() -> None:
    recorded = set((GOLDEN / "outputs").glob("*.jsonl.gz"))
    assert recorded == {golden_path(c, t, m) for c, t, m in cases()}


def _update(tmp: Path) -> None:
    (GOLDEN / "outputs").mkdir(parents=True, exist_ok=True)
    for consumer, timeline, mode in cases():
        # mtime=0: the same output gives the same bytes on disk.
        with gzip.GzipFile(golden_path(consumer, timeline, mode), "wb", mtime=0) as f:
            f.write(replay(consumer, timeline, tmp, mode))


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _update(Path(tmp))
