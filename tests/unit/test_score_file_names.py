"""``konsumerator score`` and ``simulate`` refuse bad input with one line on stderr,
whatever the file's name.

A path is the user's (a script's temporary file, a name pasted from somewhere): one that
holds a newline must still give a one-line error, as a cell that holds one does (cells are
shown by repr). Exit 2, nothing on stdout, no traceback.
"""

from pathlib import Path

import pytest
from click.testing import CliRunner

from konsumerator.cli import main

CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer.yaml"


@pytest.mark.parametrize("what", ["missing", "bad row"])
def test_a_trace_path_with_a_newline_still_gives_a_one_line_error(
    tmp_path: Path, what: str
) -> None:
    trace = tmp_path / "trace\nerror: injected.csv"
    if what == "bad row":
        trace.write_text("t," + ",".join(map(str, range(10))) + "\n0,x\n")
    result = CliRunner().invoke(main, ["score", str(CONSUMER), str(trace)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_timeline_path_with_a_newline_still_gives_simulate_a_one_line_error(
    tmp_path: Path,
) -> None:
    timeline = tmp_path / "timeline\nerror: injected.yaml"
    result = CliRunner().invoke(main, ["simulate", str(CONSUMER), str(timeline)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "'" in result.stderr  # named by its repr


@pytest.mark.parametrize("bad", ["consumer", "timeline"])
def test_simulate_names_a_file_with_a_newline_by_its_repr_in_a_content_error(
    tmp_path: Path, bad: str
) -> None:
    # Not only _read's own errors (missing, not UTF-8): the loaders' errors about the
    # content name the file too, and must name it as files.describe does.
    consumer, timeline = CONSUMER, tmp_path / "timeline.yaml"
    timeline.write_text("steps: []\n")
    if bad == "consumer":
        consumer = tmp_path / "consumer\nerror: injected.yaml"
        consumer.write_text("kind: Consumer\n")
    else:
        timeline = tmp_path / "timeline\nerror: injected.yaml"
        timeline.write_text("steps: 5\n")
    result = CliRunner().invoke(main, ["simulate", str(consumer), str(timeline)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert repr(str(consumer if bad == "consumer" else timeline)) in result.stderr
