"""A user's production trace: ``t,0,1,...,N-1`` CSV, parsed and played.

The header names the time column ``t`` and then every partition of the topic,
``0`` to ``N-1`` in order. Each data row gives a time in seconds (the first
row at 0, then strictly increasing) and each partition's production rate in
messages per second (a plain decimal number, not negative, at most
``MAX_RATE``); a row holds until the next one, and the last row for as long
as the step before it (60 s when it is the only one). Cells may be quoted
and padded with spaces; a UTF-8 byte-order mark (spreadsheets write one),
CRLF line ends and blank lines are accepted.

Numbers are read by this module's grammar, not by ``float()``, which also
takes ``1_000``, ``infinity`` and non-ASCII digits: a cell that is not plainly
a number is a mistake in the file, not something to guess at.

A bad file is refused as a whole with one line naming the file, the row
(the header is row 1; blank lines count) and the column (1-based), so that it
can be fixed in an editor: ``trace.csv: row 7, column 3: rate must be a
number >= 0, got 'x'``. Nothing is played from a file that is not entirely
right.

Size is bounded before memory or time are: at most ``MAX_BYTES`` of file,
``MAX_ROWS`` data rows and ``MAX_CELLS`` rates, kept as flat arrays of
doubles (8 bytes a rate), so that a huge file is refused after reading at
most its first ``MAX_BYTES``, never by running out of memory.
"""

import bisect
import contextlib
import csv
import io
import itertools
import math
import operator
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from konsumerator.scoring import files

MAX_BYTES = 256 << 20
MAX_ROWS = 1_000_000
MAX_CELLS = 10_000_000
# Far above any Kafka partition's real rate, far below what would overflow the
# model's sums of messages over a trace.
MAX_RATE = 1e9
_LAST_ROW_S = 60.0
# A plain decimal: digits, an optional fraction and exponent; no sign but '+',
# no '_', no hex, no 'inf'/'nan', ASCII digits only.
_NUMBER = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PAD = " \t"
_PADDED = rf"[{_PAD}]*(?:{_NUMBER.pattern})[{_PAD}]*"
# Plain numbers, one a line: a row's cells joined with newlines.
_ROW = re.compile(rf"{_PADDED}(?:\n{_PADDED})*")


class TraceError(ValueError):
    """A trace that cannot be played; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """How long a trace may be, as the caller plays it."""

    min_duration_s: float = 0.0
    max_duration_s: float = math.inf
    # Why no longer, for the message (what the caller would play it with).
    max_reason: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class TableTrace:
    """Rates per partition, held from each row's time until the next."""

    times: Sequence[float]
    # Row after row, num_partitions rates each: rates[row * num_partitions + partition].
    rates: Sequence[float]
    num_partitions: int
    duration_s: float
    name: str = "trace"
    # The file's row (header = 1) of the last data row, for messages about the trace's end.
    last_row: int = 2
    # ``_cumulative``'s cache: filled once, on first use (only steps spanning rows use it).
    _messages: "list[array[float]]" = field(default_factory=list, repr=False)

    def row(self, index: int) -> tuple[float, ...]:
        start = index * self.num_partitions
        return tuple(self.rates[start : start + self.num_partitions])

    def rate(self, *, partition: int, t: float) -> float:
        row = bisect.bisect_right(self.times, t) - 1
        if row < 0 or not 0 <= partition < self.num_partitions:
            return 0.0
        return self.rates[row * self.num_partitions + partition]

    def mean_rates(self, *, start: float, end: float) -> Sequence[float]:
        """Each partition's mean rate over ``[start, end)`` (``model.Stepwise``): exactly
        its row's rates when no row begins within it, else the messages of the rows it
        covers (by their start times) over its length."""
        times = self.times
        first = bisect.bisect_right(times, start) - 1
        if first + 1 >= len(times) or times[first + 1] >= end:
            if first < 0:
                return [0.0] * self.num_partitions
            return self.row(first)
        last = bisect.bisect_left(times, end) - 1
        n, rates, span = self.num_partitions, self.rates, end - start
        cumulative = self._cumulative()
        means: list[float] = []
        for p in range(n):
            messages = cumulative[p][last] + rates[last * n + p] * (end - times[last])
            if first >= 0:
                messages -= cumulative[p][first] + rates[first * n + p] * (start - times[first])
            # Differences of large sums: never below nothing by a rounding error.
            means.append(max(0.0, messages) / span)
        return means

    def _cumulative(self) -> "Sequence[array[float]]":
        """Per partition, the messages produced from the first row's time to each row's:
        a step spanning any number of rows costs one difference per partition. Built once,
        on the first step that spans rows, at C speed (a column slice, products, sums)."""
        if not self._messages:
            widths = array("d", map(operator.sub, self.times[1:], self.times[:-1]))
            n = self.num_partitions
            for p in range(n):
                column = self.rates[p::n]
                products = map(operator.mul, column, widths)
                self._messages.append(array("d", itertools.accumulate(products, initial=0.0)))
        return self._messages

    def stalled(self, *, partition: int, t: float) -> bool:
        return False

    def phase(self, *, t: float) -> str:
        return "recorded trace"


def _show(cell: str) -> str:
    """A cell as quoted in a message: repr (one line whatever it holds), cut at 40 characters."""
    shown = repr(cell if len(cell) <= 40 else cell[:40] + "...")
    if any("\udc80" <= c <= "\udcff" for c in cell):
        return f"{shown} (not UTF-8 text)"
    return shown


def _number(text: str) -> float | None:
    """A plain decimal >= 0 (see ``_NUMBER``), or None; 1e400 is None (not finite)."""
    text = text.strip(_PAD)
    if _NUMBER.fullmatch(text) is None:
        return None
    value = float(text)
    return value if value != float("inf") else None


def _header(row: Sequence[str], *, where: str, num_partitions: int) -> None:
    if not row or row[0].strip(_PAD) != "t":
        found = row[0] if row else ""
        raise TraceError(f"{where}: row 1, column 1: the header starts with t, got {_show(found)}")
    for column, cell in enumerate(row[1:], start=2):
        if column - 2 >= num_partitions:
            raise TraceError(f"{where}: row 1, column {column}: {_beyond(cell, num_partitions)}")
        if cell.strip(_PAD) != str(column - 2):
            raise TraceError(
                f"{where}: row 1, column {column}: expected partition {column - 2},"
                f" got {_show(cell)}"
                " (the header is t and then every partition, 0 to N-1, in order)"
            )
    if len(row) - 1 < num_partitions:
        raise TraceError(
            f"{where}: row 1, column {len(row) + 1}: partition {len(row) - 1} is missing"
            f" (the Consumer has numPartitions {num_partitions})"
        )


def _beyond(cell: str, num_partitions: int) -> str:
    """Why a header cell after the last partition is wrong."""
    last = f"the last of the Consumer's numPartitions {num_partitions} is {num_partitions - 1}"
    if not cell.strip(_PAD):
        return f"an empty column after the last partition (a trailing comma?); {last}"
    if cell.strip(_PAD).isdigit():
        return f"partition {_show(cell.strip(_PAD))} is beyond the Consumer's partitions ({last})"
    return f"unexpected column {_show(cell)} after the last partition ({last})"


def parse(
    text: str, *, source: str, num_partitions: int, bounds: Bounds | None = None
) -> TableTrace:
    """The trace in ``text``; raises ``TraceError`` naming the file, row and column."""
    lines = io.StringIO(text.removeprefix("\ufeff"), newline="")
    return _parse(lines, source=source, num_partitions=num_partitions, bounds=bounds or Bounds())


def read(path: str, *, num_partitions: int, bounds: Bounds | None = None) -> TableTrace:
    """The trace in file ``path`` (``-``: stdin), read as it is parsed, at most ``MAX_BYTES``."""
    source = files.describe(path)
    try:
        with files.open_bounded(path, limit=MAX_BYTES) as stream:
            # surrogateescape: a byte that is not UTF-8 lands in its cell, which no cell's
            # grammar accepts, so the message names its row and column (and says why).
            lines = io.TextIOWrapper(
                stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
            return _parse(
                lines, source=source, num_partitions=num_partitions, bounds=bounds or Bounds()
            )
    except files.InputFileError as e:
        raise TraceError(str(e)) from None


class _Rows:
    """csv rows, each with the file's row number (its first line; blank lines count)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._reader = csv.reader(lines, strict=True)
        self.number = 0  # the row last read; 0 before the first

    def next(self) -> list[str] | None:
        # Set first: an error while reading the row names it too.
        self.number = self._reader.line_num + 1
        return next(self._reader, None)


def _parse(lines: Iterable[str], *, source: str, num_partitions: int, bounds: Bounds) -> TableTrace:
    rows = _Rows(lines)
    times = array("d")
    rates = array("d")
    last_row = 2
    try:
        header = rows.next()
        if header is None:
            raise TraceError(
                f"{source}: row 1, column 1: empty file, expected the header t,0,1,..."
            )
        _header(header, where=source, num_partitions=num_partitions)
        while (row := rows.next()) is not None:
            if not row:
                continue  # a blank line
            where = f"{source}: row {rows.number}"
            if len(times) >= MAX_ROWS:
                raise TraceError(f"{where}, column 1: more than {MAX_ROWS:,} data rows")
            if len(rates) + num_partitions > MAX_CELLS:
                raise TraceError(
                    f"{where}, column 1: more than {MAX_CELLS:,} rates (data rows × partitions);"
                    " resample the trace to fewer rows"
                )
            times.append(_time(row, where=where, previous=times, bounds=bounds))
            rates.extend(_rates(row, where=where, width=num_partitions))
            last_row = rows.number
    except csv.Error as e:
        raise TraceError(f"{source}: row {rows.number}, column 1: not CSV ({e})") from None
    except files.TooLarge:
        # No row: reading runs ahead of parsing, and the size is the whole file's anyway.
        raise TraceError(
            f"{source}: larger than {MAX_BYTES:,} bytes; resample the trace to fewer rows"
        ) from None
    except OSError as e:
        raise TraceError(f"{source}: row {rows.number}: cannot read ({e.strerror})") from None
    if not times:
        raise TraceError(f"{source}: row 2, column 1: no data row after the header")
    last = times[-1] - times[-2] if len(times) > 1 else _LAST_ROW_S
    duration = times[-1] + last
    if duration < bounds.min_duration_s:
        raise TraceError(
            f"{source}: row {last_row}, column 1: the trace ends at {duration:g} s"
            + (" (its only row holds for 60 s)" if len(times) == 1 else "")
            + f", too short to score: it needs to last at least {bounds.min_duration_s:g} s"
        )
    if duration > bounds.max_duration_s:
        raise TraceError(
            f"{source}: row {last_row}, column 1: the trace ends at {duration:g} s (its last row"
            f" holds as long as the step before it), {_too_long(bounds)}"
        )
    return TableTrace(
        times=times,
        rates=rates,
        num_partitions=num_partitions,
        duration_s=duration,
        name=source,
        last_row=last_row,
    )


def _too_long(bounds: Bounds) -> str:
    return f"longer than the {bounds.max_duration_s:,.0f} s that can be scored {bounds.max_reason}"


def _time(row: Sequence[str], *, where: str, previous: Sequence[float], bounds: Bounds) -> float:
    t = _number(row[0])
    if t is None:
        raise TraceError(
            f"{where}, column 1: t must be a number of seconds >= 0, got {_show(row[0])}"
        )
    if not previous and t != 0:
        raise TraceError(
            f"{where}, column 1: the first row's t must be 0 (seconds from the trace's start),"
            f" got {_show(row[0])}; subtract the first time from every row"
        )
    if previous and t <= previous[-1]:
        raise TraceError(
            f"{where}, column 1: t must increase, got {_show(row[0])} after {previous[-1]:g}"
        )
    if t > bounds.max_duration_s:
        raise TraceError(f"{where}, column 1: t {_show(row[0])} is {_too_long(bounds)}")
    return t


def _rates(row: Sequence[str], *, where: str, width: int) -> list[float]:
    if len(row) != width + 1:
        column = min(len(row), width + 1) + 1
        extra = " (a trailing comma?)" if len(row) > width + 1 and not row[-1].strip(_PAD) else ""
        raise TraceError(
            f"{where}, column {column}: expected {width + 1} columns"
            f" (t and {width} partitions), got {len(row)}{extra}"
        )
    cells = row[1:]
    # The common case at C speed: every cell a plain number (one regex over the row); a
    # quoted cell holding the separator fails float() and takes the slow path too.
    if _ROW.fullmatch("\n".join(cells)) is not None:
        with contextlib.suppress(ValueError):
            fast = list(map(float, cells))
            if max(fast) <= MAX_RATE:
                return fast
    # The slow path names the first bad cell.
    values: list[float] = []
    for column, cell in enumerate(cells, start=2):
        value = _number(cell)
        if value is None or value > MAX_RATE:
            raise TraceError(
                f"{where}, column {column}: rate must be a number of messages/s from 0 to"
                f" {MAX_RATE:,.0f}, got {_show(cell)}"
            )
        values.append(value)
    return values
