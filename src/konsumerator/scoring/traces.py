"""A user's production trace: ``t,0,1,...,N-1`` CSV, parsed and played.

The header names the time column ``t`` and then every partition of the topic,
``0`` to ``N-1`` in order. Each data row gives a time in seconds (from 0,
strictly increasing) and each partition's production rate in messages per
second (finite, not negative); a row holds until the next one, and the last
row for as long as the step before it (60 s when it is the only one).

A bad file is refused as a whole with one line naming the file, the row
(the header is row 1) and the column (1-based), so that it can be fixed in
an editor: ``trace.csv: row 7, column 3: rate must be a finite number >= 0,
got 'x'``. Nothing is played from a file that is not entirely right.
"""

import bisect
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ROWS = 1_000_000
_LAST_ROW_S = 60.0


class TraceError(ValueError):
    """A trace that cannot be played; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class TableTrace:
    """Rates per partition, held from each row's time until the next."""

    times: tuple[float, ...]
    rates: tuple[tuple[float, ...], ...]  # rates[row][partition]
    duration_s: float
    name: str = "trace"

    @property
    def num_partitions(self) -> int:
        return len(self.rates[0])

    def rate(self, *, partition: int, t: float) -> float:
        row = bisect.bisect_right(self.times, t) - 1
        if row < 0 or not 0 <= partition < len(self.rates[row]):
            return 0.0
        return self.rates[row][partition]

    def stalled(self, *, partition: int, t: float) -> bool:
        return False

    def phase(self, *, t: float) -> str:
        return "recorded trace"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _header(row: Sequence[str], *, where: str, num_partitions: int) -> None:
    if not row or row[0].strip() != "t":
        found = row[0] if row else ""
        raise TraceError(f"{where}: row 1, column 1: the header starts with t, got {found!r}")
    for column, cell in enumerate(row[1:], start=2):
        if column - 2 >= num_partitions:
            raise TraceError(
                f"{where}: row 1, column {column}: partition {cell.strip()!r} is beyond the"
                f" Consumer's numPartitions {num_partitions}"
                f" (partitions are 0..{num_partitions - 1})"
            )
        if cell.strip() != str(column - 2):
            raise TraceError(
                f"{where}: row 1, column {column}: expected partition {column - 2}, got {cell!r}"
            )
    if len(row) - 1 < num_partitions:
        raise TraceError(
            f"{where}: row 1, column {len(row) + 1}: partition {len(row) - 1} is missing"
            f" (the Consumer has numPartitions {num_partitions})"
        )


def parse(text: str, *, source: str, num_partitions: int) -> TableTrace:
    """The trace in ``text``; raises ``TraceError`` naming the file, row and column."""
    rows = csv.reader(io.StringIO(text))
    try:
        header = next(rows, None)
        if header is None:
            raise TraceError(
                f"{source}: row 1, column 1: empty file, expected the header t,0,1,..."
            )
        _header(header, where=source, num_partitions=num_partitions)
        times: list[float] = []
        rates: list[tuple[float, ...]] = []
        for number, row in enumerate(rows, start=2):
            if not row:
                continue  # a blank line
            if number > MAX_ROWS:
                raise TraceError(f"{source}: row {number}, column 1: more than {MAX_ROWS} rows")
            times.append(_time(row, where=source, number=number, previous=times))
            rates.append(_rates(row, where=source, number=number, width=num_partitions))
    except csv.Error as e:
        raise TraceError(f"{source}: row {rows.line_num}, column 1: not CSV ({e})") from None
    if not times:
        raise TraceError(f"{source}: row 2, column 1: no data row after the header")
    last = times[-1] - times[-2] if len(times) > 1 else _LAST_ROW_S
    return TableTrace(
        times=tuple(times), rates=tuple(rates), duration_s=times[-1] + last, name=source
    )


def _time(row: Sequence[str], *, where: str, number: int, previous: Sequence[float]) -> float:
    t = _number(row[0])
    if t is None:
        raise TraceError(
            f"{where}: row {number}, column 1: t must be a finite number of seconds >= 0,"
            f" got {row[0]!r}"
        )
    if previous and t <= previous[-1]:
        raise TraceError(
            f"{where}: row {number}, column 1: t must increase, got {row[0]!r} after"
            f" {previous[-1]:g}"
        )
    return t


def _rates(row: Sequence[str], *, where: str, number: int, width: int) -> tuple[float, ...]:
    if len(row) != width + 1:
        column = min(len(row), width + 1) + 1
        raise TraceError(
            f"{where}: row {number}, column {column}: expected {width + 1} columns"
            f" (t and {width} partitions), got {len(row)}"
        )
    values: list[float] = []
    for column, cell in enumerate(row[1:], start=2):
        value = _number(cell)
        if value is None:
            raise TraceError(
                f"{where}: row {number}, column {column}: rate must be a finite number >= 0,"
                f" got {cell!r}"
            )
        values.append(value)
    return tuple(values)
