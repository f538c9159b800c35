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

The example Consumers leave ``predictor`` out, and the default is the adaptive
predictor. Their golden files were recorded under ``naive``, the default until
it changed: those cases add ``predictor: naive`` (the one-line opt-out), so the
files stay byte for byte what they were. ``ADAPTIVE`` replays ``consumer.yaml``
as it is (the adaptive default) over every timeline, in both modes: files
``*--adaptive.jsonl.gz`` and ``*--adaptive--inplace.jsonl.gz``.

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
# Replayed as it is, with the default predictor (adaptive): the ``--adaptive`` files.
ADAPTIVE = "consumer.yaml"


def timelines() -> list[Path]:
    return [
        *sorted((EXAMPLES / "timelines").glob("*.yaml")),
        *sorted((GOLDEN / "timelines").glob("*.json.gz")),
    ]


# A case: (example Consumer, timeline, updateMode, predictor added to it or "" for none).
Case = tuple[str, Path, str, str]


def cases() -> list[Case]:
    learning, timeline = LEARNING
    return [
        *(
            (consumer, timeline, mode, "naive")
            for consumer in CONSUMERS
            for timeline in timelines()
            for mode in MODES
        ),
        *((learning, EXAMPLES / "timelines" / timeline, mode, "") for mode in MODES),
        *((ADAPTIVE, timeline, mode, "") for timeline in timelines() for mode in MODES),
    ]


def golden_path(consumer: str, timeline: Path, mode: str, predictor: str) -> Path:
    stem = timeline.name.split(".")[0]
    default = "--adaptive" if consumer in CONSUMERS and not predictor else ""
    suffix = "" if mode == "Recreate" else "--inplace"
    return GOLDEN / "outputs" / f"{consumer.split('.')[0]}--{stem}{default}{suffix}.jsonl.gz"


def with_settings(consumer: str, mode: str, predictor: str, tmp: Path) -> Path:
    """The example, with ``updateMode: Recreate`` (for Recreate) and ``predictor``
    (when given) added to its autoscaler."""
    settings = [f"updateMode: {mode}"] if mode == "Recreate" else []
    settings += [f"predictor: {predictor}"] if predictor else []
    if not settings:
        return EXAMPLES / consumer
    text = (EXAMPLES / consumer).read_text()
    added = "".join(rf"\1  {setting}\n" for setting in settings)
    changed, count = re.subn(r"^( *)autoscaler:\n", rf"\g<0>{added}", text, flags=re.M)
    assert count == 1, consumer
    path = tmp / f"{mode}-{predictor}-{consumer}"
    path.write_text(changed)
    return path


def replay(consumer: str, timeline: Path, tmp: Path, mode: str, predictor: str) -> bytes:
    if timeline.suffix == ".gz":
        plain = tmp / timeline.name.removesuffix(".gz")
        plain.write_bytes(gzip.decompress(timeline.read_bytes()))
        timeline = plain
    path = with_settings(consumer, mode, predictor, tmp)
    result = CliRunner().invoke(main, ["simulate", str(path), str(timeline)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout_bytes


@pytest.mark.parametrize(
    ("consumer", "timeline", "mode", "predictor"),
    cases(),
    ids=[golden_path(*case).name for case in cases()],
)
def test_simulate_output_is_byte_identical_to_the_golden_file(
    consumer: str, timeline: Path, mode: str, predictor: str, tmp_path: Path
) -> None:
    expected = gzip.decompress(golden_path(consumer, timeline, mode, predictor).read_bytes())
    actual = replay(consumer, timeline, tmp_path, mode, predictor)
    assert actual == expected


def test_every_example_consumer_and_timeline_has_a_golden_file() -> None:
    recorded = set((GOLDEN / "outputs").glob("*.jsonl.gz"))
    assert recorded == {golden_path(*case) for case in cases()}


def _update(tmp: Path) -> None:
    (GOLDEN / "outputs").mkdir(parents=True, exist_ok=True)
    for consumer, timeline, mode, predictor in cases():
        path = golden_path(consumer, timeline, mode, predictor)
        # mtime=0: the same output gives the same bytes on disk.
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(replay(consumer, timeline, tmp, mode, predictor))


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _update(Path(tmp))
