"""``konsumerator simulate`` output is byte-identical to the recorded golden files.

The replay is the user's contract: a timeline checked against a Consumer
before an upgrade must give the same answer after it, unless a change of
behaviour is intended (and then the golden files change in the same commit,
so the diff shows what changed). Every example Consumer is replayed over the
example timelines and over two long generated timelines
(``konsumerator_dev.bench.simulate``'s
generator with a fixed seed: an incident that builds and drains a backlog,
and a Prometheus outage with the steps around it).

To record new golden files after an intended change of behaviour:

    .venv/bin/python -m tests.unit.test_simulate_golden --update
"""

import gzip
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from konsumerator.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
CONSUMERS = ("consumer.yaml", "consumer-configmap.yaml", "go-operator-sample.yaml")


def timelines() -> list[Path]:
    return [
        *sorted((EXAMPLES / "timelines").glob("*.yaml")),
        *sorted((GOLDEN / "timelines").glob("*.json.gz")),
    ]


def cases() -> list[tuple[str, Path]]:
    return [(consumer, timeline) for consumer in CONSUMERS for timeline in timelines()]


def golden_path(consumer: str, timeline: Path) -> Path:
    stem = timeline.name.split(".")[0]
    return GOLDEN / "outputs" / f"{consumer.split('.')[0]}--{stem}.jsonl.gz"


def replay(consumer: str, timeline: Path, tmp: Path) -> bytes:
    if timeline.suffix == ".gz":
        plain = tmp / timeline.name.removesuffix(".gz")
        plain.write_bytes(gzip.decompress(timeline.read_bytes()))
        timeline = plain
    result = CliRunner().invoke(main, ["simulate", str(EXAMPLES / consumer), str(timeline)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout_bytes


@pytest.mark.parametrize(
    ("consumer", "timeline"), cases(), ids=[golden_path(c, t).name for c, t in cases()]
)
def test_simulate_output_is_byte_identical_to_the_golden_file(
    consumer: str, timeline: Path, tmp_path: Path
) -> None:
    expected = gzip.decompress(golden_path(consumer, timeline).read_bytes())
    actual = replay(consumer, timeline, tmp_path)
    assert actual == expected


def test_every_example_consumer_and_timeline_has_a_golden_file() -> None:
    recorded = set((GOLDEN / "outputs").glob("*.jsonl.gz"))
    assert recorded == {golden_path(c, t) for c, t in cases()}


def _update(tmp: Path) -> None:
    (GOLDEN / "outputs").mkdir(parents=True, exist_ok=True)
    for consumer, timeline in cases():
        # mtime=0: the same output gives the same bytes on disk.
        with gzip.GzipFile(golden_path(consumer, timeline), "wb", mtime=0) as f:
            f.write(replay(consumer, timeline, tmp))


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _update(Path(tmp))
