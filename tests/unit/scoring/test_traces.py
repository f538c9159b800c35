"""The ``konsumerator score`` trace parser, ``scoring.traces``.

Aspects tested:

* Any well-formed table parses back to the same times and rates, and a row's
  rates hold until the next row (the last for the step before it), however a
  spreadsheet wrote it: a UTF-8 byte-order mark, CRLF line ends, blank lines,
  quoted cells, cells padded with spaces.
* Property: corrupting any one cell of a well-formed file (not a number, or
  a number ``float()`` would take but a person would not write: ``1_000``,
  ``0x10``, ``infinity``, non-ASCII digits, a rate beyond ``MAX_RATE``) is
  refused with one line naming the file, that cell's row (header = 1) and
  column (1-based).
* A header whose partitions do not match the Consumer's numPartitions (too
  few, too many, out of order, duplicated, a gap, an extra or empty column)
  names row 1 and the column.
* Time starts at 0 and increases; a trace too short to score (a single row,
  rows within the warm-up) or longer than the caller can play names its row.
* Size is bounded while reading: more rows or rates than the limits are
  refused naming the row where the limit was crossed, more bytes naming the
  file (one line with no end too).
* Property: any text, and any bytes in a file, is either a trace or a
  one-line ``TraceError``.
"""

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.scoring import traces
from konsumerator.scoring.traces import Bounds, TraceError, parse

rates = st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def tables(draw: st.DrawFn) -> tuple[int, list[float], list[list[float]]]:
    n = draw(st.integers(min_value=1, max_value=6))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=12))
    times = [float(sum(gaps[:i])) for i in range(len(gaps))]
    rows = [draw(st.lists(rates, min_size=n, max_size=n)) for _ in times]
    return n, times, rows


def render(n: int, times: list[float], rows: list[list[float]]) -> list[list[str]]:
    return [
        ["t", *map(str, range(n))],
        *([repr(t), *map(repr, r)] for t, r in zip(times, rows, strict=True)),
    ]


def text_of(cells: list[list[str]]) -> str:
    return "".join(",".join(row) + "\n" for row in cells)


def rows_of(trace: traces.TableTrace) -> list[list[float]]:
    return [list(trace.row(i)) for i in range(len(trace.times))]


@given(tables())
def test_a_well_formed_table_round_trips(table: tuple[int, list[float], list[list[float]]]) -> None:
    n, times, rows = table
    trace = parse(text_of(render(n, times, rows)), source="t.csv", num_partitions=n)
    assert list(trace.times) == times
    assert rows_of(trace) == rows
    for i, t in enumerate(times):
        assert [trace.rate(partition=p, t=t) for p in range(n)] == rows[i]
    last = times[-1] - times[-2] if len(times) > 1 else 60.0
    assert trace.duration_s == times[-1] + last


@st.composite
def spreadsheet_text(draw: st.DrawFn, cells: list[list[str]]) -> str:
    """``cells`` as a spreadsheet might write them: BOM, CRLF, blank lines, quotes, padding."""
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for row in cells:
        out = []
        for cell in row:
            pad = draw(st.sampled_from(["", " ", "  ", "\t"]))
            cell = pad + cell + draw(st.sampled_from(["", " "]))
            out.append(f'"{cell}"' if draw(st.booleans()) else cell)
        lines.append(",".join(out) + end)
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            lines.append(end)  # a blank line
    return draw(st.sampled_from(["", "\ufeff"])) + "".join(lines)


@given(tables(), st.data())
def test_a_spreadsheets_formatting_parses_to_the_same_trace(
    table: tuple[int, list[float], list[list[float]]], data: st.DataObject
) -> None:
    n, times, rows = table
    text = data.draw(spreadsheet_text(render(n, times, rows)))
    trace = parse(text, source="t.csv", num_partitions=n)
    assert list(trace.times) == times
    assert rows_of(trace) == rows


def test_a_file_with_a_byte_order_mark_reads_as_without(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbft,0\r\n0,5\r\n120,7\r\n")
    trace = traces.read(str(path), num_partitions=1)
    assert list(trace.times) == [0.0, 120.0]
    assert rows_of(trace) == [[5.0], [7.0]]


BAD_VALUES = [
    "x",
    "-1",
    "nan",
    "inf",
    "Infinity",
    "",
    "1e400",
    "1_000",
    "0x10",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: float() takes it
    "1e10",  # beyond MAX_RATE
    "1,5",
    "1\n2",
    "--1",
]


def quoted(cell: str) -> str:
    return f'"{cell}"' if any(c in cell for c in ',"\n') else cell


@given(tables(), st.data())
def test_one_bad_cell_is_named_by_file_row_and_column(
    table: tuple[int, list[float], list[list[float]]], data: st.DataObject
) -> None:
    n, times, rows = table
    cells = render(n, times, rows)
    row = data.draw(st.integers(min_value=2, max_value=len(cells)))
    column = data.draw(st.integers(min_value=1, max_value=n + 1))
    bad = data.draw(st.sampled_from(BAD_VALUES))
    if column == 1 and bad == "1e10":
        bad = "x"  # a fine time (beyond MAX_RATE is wrong only for a rate)
    cells[row - 1][column - 1] = quoted(bad)
    with pytest.raises(TraceError) as caught:
        parse(text_of(cells), source="t.csv", num_partitions=n)
    message = str(caught.value)
    # Rows before the bad one with a quoted newline would shift lines; there is none here.
    assert message.startswith(f"t.csv: row {row}, column {column}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("header", "num_partitions", "where"),
    [
        ("t,0,1", 3, "row 1, column 4: partition 2 is missing"),
        ("t,0,1,2,3", 3, "row 1, column 5: partition '3' is beyond"),
        ("t,1,0,2", 3, "row 1, column 2: expected partition 0"),
        ("t,0,0,1", 3, "row 1, column 3: expected partition 1, got '0'"),
        ("t,0,2,3", 3, "row 1, column 3: expected partition 1, got '2'"),
        ("t,0,1,2,rack", 3, "row 1, column 5: unexpected column 'rack' after the last"),
        ("t,0,1,2,", 3, "row 1, column 5: an empty column after the last partition"),
        ("time,0,1,2", 3, "row 1, column 1: the header starts with t"),
        ("0,1,2,3", 3, "row 1, column 1: the header starts with t"),
    ],
)
def test_a_header_that_does_not_match_the_consumer_names_the_column(
    header: str, num_partitions: int, where: str
) -> None:
    row = ",".join(["0"] * (header.count(",") + 1))
    with pytest.raises(TraceError, match=f"^t.csv: {where}"):
        parse(f"{header}\n{row}\n", source="t.csv", num_partitions=num_partitions)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("", "row 1, column 1: empty file"),
        ("t,0\n", "row 2, column 1: no data row"),
        ("t,0\n\n\n", "row 2, column 1: no data row"),
        ("t,0\n0,1\n0,2\n", "row 3, column 1: t must increase"),
        ("t,0\n0,1\n60,2\n30,2\n", "row 4, column 1: t must increase"),
        ("t,0\n5,1\n60,2\n", "row 2, column 1: the first row's t must be 0"),
        ("t,0\n1700000000,1\n1700000060,2\n", "row 2, column 1: the first row's t must be 0"),
        ("t,0\n-0,1\n", "row 2, column 1: t must be a number"),
        ("t,0\n0,1,2\n", "row 2, column 3: expected 2 columns"),
        ("t,0\n0,1,\n", "row 2, column 3: expected 2 columns (t and 1 partitions), got 3 (a"),
        ("t,0,1\n0,1\n", "row 2, column 3: expected 3 columns"),
        ('t,0\n0,"1\n', "row 2, column 1: not CSV"),
        ('t,0\n0,"1"x\n', "row 2, column 1: not CSV"),
    ],
)
def test_structural_problems_are_named(body: str, where: str) -> None:
    n = 2 if body.startswith("t,0,1") else 1
    with pytest.raises(TraceError, match=f"^t.csv: {re.escape(where)}"):
        parse(body, source="t.csv", num_partitions=n)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("t,0\n0,1\n", "row 2, column 1: the trace ends at 60 s (its only row holds for 60 s)"),
        ("t,0\n0,1\n\n30,1\n", "row 4, column 1: the trace ends at 60 s, too short"),
        ("t,0\n0,1\n50,1\n", "row 3, column 1: the trace ends at 100 s, too short"),
    ],
)
def test_a_trace_too_short_to_score_names_its_last_row(body: str, where: str) -> None:
    with pytest.raises(TraceError, match=f"^t.csv: {re.escape(where)}"):
        parse(body, source="t.csv", num_partitions=1, bounds=Bounds(min_duration_s=120))


def test_a_trace_longer_than_the_caller_plays_is_refused_at_the_row_that_passes_it() -> None:
    bounds = Bounds(max_duration_s=1000, max_reason="with 3 partitions")
    body = "t,0\n0,1\n600,1\n1200,1\n" + "".join(f"{t},1\n" for t in range(1800, 10**6, 600))
    with pytest.raises(TraceError, match=r"^t.csv: row 4, column 1: t '1200' is longer than"):
        parse(body, source="t.csv", num_partitions=1, bounds=bounds)
    # The last row holds as long as the step before it: 0, 600, 900 ends at 1200.
    with pytest.raises(TraceError, match=r"^t.csv: row 4, column 1: the trace ends at 1200 s"):
        parse("t,0\n0,1\n600,1\n900,1\n", source="t.csv", num_partitions=1, bounds=bounds)


def test_more_rows_or_rates_than_the_limits_are_refused_where_crossed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = "t,0,1\n" + "".join(f"{t},1,1\n" for t in range(0, 600, 60))
    monkeypatch.setattr(traces, "MAX_ROWS", 4)
    with pytest.raises(TraceError, match=r"^t.csv: row 6, column 1: more than 4 data rows"):
        parse(body, source="t.csv", num_partitions=2)
    monkeypatch.setattr(traces, "MAX_ROWS", 100)
    monkeypatch.setattr(traces, "MAX_CELLS", 7)
    with pytest.raises(TraceError, match=r"^t.csv: row 5, column 1: more than 7 rates"):
        parse(body, source="t.csv", num_partitions=2)


def test_a_file_larger_than_the_limit_is_refused_without_reading_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.csv"
    path.write_text("t,0\n" + "".join(f"{t},1\n" for t in range(0, 60_000, 60)))
    monkeypatch.setattr(traces, "MAX_BYTES", 100)
    with pytest.raises(TraceError, match=rf"^{path}: larger than 100 bytes;"):
        traces.read(str(path), num_partitions=1)
    # One line with no end at all is bounded the same way.
    path.write_text("t,0\n0," + "1" * 10_000)
    with pytest.raises(TraceError, match=rf"^{path}: larger than 100 bytes;"):
        traces.read(str(path), num_partitions=1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"t,0\n0,1\n60,1\xff\n", r"row 3, column 2: .*, got '1\\udcff' \(not UTF-8 text\)"),
        (b"t,0\n0,1\n\xff\xfe,1\n", r"row 3, column 1: .* \(not UTF-8 text\)"),
        (b"\xff\xfet\x00,\x000\x00\n", r"row 1, column 1: .* \(not UTF-8 text\)"),
    ],
)
def test_a_file_that_is_not_utf8_text_names_the_row(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=f"^{path}: {message}"):
        traces.read(str(path), num_partitions=1)


def test_a_missing_file_or_a_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=f"^{tmp_path / 'nope.csv'}: no such file$"):
        traces.read(str(tmp_path / "nope.csv"), num_partitions=1)
    with pytest.raises(TraceError, match=f"^{tmp_path}: is a directory"):
        traces.read(str(tmp_path), num_partitions=1)


@given(st.text(max_size=300), st.integers(min_value=1, max_value=4))
def test_any_text_is_a_trace_or_a_trace_error(text: str, n: int) -> None:
    try:
        parse(text, source="t.csv", num_partitions=n)
    except TraceError as e:
        message = str(e)
    else:
        return
    assert message.startswith("t.csv: row ")
    assert "\n" not in message


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=4))
def test_any_bytes_in_a_file_are_a_trace_or_a_trace_error(content: bytes, n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_bytes(b"t," + b",".join(b"%d" % p for p in range(n)) + b"\n" + content)
        try:
            traces.read(str(path), num_partitions=n)
        except TraceError as e:
            message = str(e)
        else:
            return
    assert message.startswith(f"{path}: row ")
    assert "\n" not in message
