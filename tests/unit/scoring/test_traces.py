"""The ``konsumerator score`` trace parser, ``scoring.traces``.

Aspects tested:

* Any well-formed table parses back to the same times and rates, and a row's
  rates hold until the next row (the last for the step before it).
* Property: corrupting any one cell of a well-formed file is refused with
  one line naming the file, that cell's row (header = 1) and column (1-based).
* A header whose partitions do not match the Consumer's numPartitions (too
  few, too many, out of order) names row 1 and the column.
* Property: any text at all is either a trace or a ``TraceError``.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.scoring.traces import TraceError, parse

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


@given(tables())
def test_a_well_formed_table_round_trips(table: tuple[int, list[float], list[list[float]]]) -> None:
    n, times, rows = table
    trace = parse(text_of(render(n, times, rows)), source="t.csv", num_partitions=n)
    assert trace.times == tuple(times)
    assert trace.rates == tuple(tuple(r) for r in rows)
    for i, t in enumerate(times):
        assert [trace.rate(partition=p, t=t) for p in range(n)] == rows[i]
    last = times[-1] - times[-2] if len(times) > 1 else 60.0
    assert trace.duration_s == times[-1] + last


BAD_VALUES = ["x", "-1", "nan", "inf", "", "1e400"]


@given(tables(), st.data())
def test_one_bad_cell_is_named_by_file_row_and_column(
    table: tuple[int, list[float], list[list[float]]], data: st.DataObject
) -> None:
    n, times, rows = table
    cells = render(n, times, rows)
    row = data.draw(st.integers(min_value=2, max_value=len(cells)))
    column = data.draw(st.integers(min_value=1, max_value=n + 1))
    cells[row - 1][column - 1] = data.draw(st.sampled_from(BAD_VALUES))
    with pytest.raises(TraceError) as caught:
        parse(text_of(cells), source="t.csv", num_partitions=n)
    message = str(caught.value)
    assert message.startswith(f"t.csv: row {row}, column {column}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("header", "num_partitions", "where"),
    [
        ("t,0,1", 3, "row 1, column 4: partition 2 is missing"),
        ("t,0,1,2,3", 3, "row 1, column 5: partition '3' is beyond"),
        ("t,1,0,2", 3, "row 1, column 2: expected partition 0"),
        ("time,0,1,2", 3, "row 1, column 1: the header starts with t"),
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
        ("t,0\n0,1\n0,2\n", "row 3, column 1: t must increase"),
        ("t,0\n0,1,2\n", "row 2, column 3: expected 2 columns"),
        ("t,0,1\n0,1\n", "row 2, column 3: expected 3 columns"),
    ],
)
def test_structural_problems_are_named(body: str, where: str) -> None:
    n = 2 if body.startswith("t,0,1") else 1
    with pytest.raises(TraceError, match=f"^t.csv: {where}"):
        parse(body, source="t.csv", num_partitions=n)


@given(st.text(max_size=300), st.integers(min_value=1, max_value=4))
def test_any_text_is_a_trace_or_a_trace_error(text: str, n: int) -> None:
    try:
        parse(text, source="t.csv", num_partitions=n)
    except TraceError as e:
        message = str(e)
    else:
        return
    assert message.startswith("t.csv: row ")
