"""The demo's screen: the instances' rows, lag and CPU history, the operator's changes.

Both demos (:mod:`~konsumerator_dev.sim.demo` on the simulator and
:mod:`~konsumerator_dev.sim.kafkademo` on real Kafka) observe rows each refresh and draw
the same screen. The drawing is rich's (a table and text in a ``Live`` display on a
terminal, plain text frames otherwise); :func:`render` gives the frame as text for logs and
tests.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

SPARKS = " ▁▂▃▄▅▆▇█"
#: Wide enough that a frame rendered as text never wraps a row of the instance table.
TEXT_WIDTH = 160


def mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def sparkline(values: Sequence[float], *, width: int = 60) -> str:
    """``values`` squeezed into ``width`` buckets (max of each), scaled to the peak."""
    if not values:
        return ""
    buckets: list[float] = []
    n = len(values)
    for i in range(min(width, n)):
        lo, hi = i * n // min(width, n), (i + 1) * n // min(width, n)
        buckets.append(max(values[lo:hi]))
    peak = max(buckets)
    if peak <= 0:
        return SPARKS[1] * len(buckets)
    return "".join(SPARKS[max(1, round(v / peak * (len(SPARKS) - 1)))] for v in buckets)


def _human(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


@dataclass(slots=True)
class Row:
    name: str
    partitions: str
    lag_msgs: float
    lag_s: float
    cpu: str
    memory: str
    status: str
    since: str
    consuming: str
    #: The consumer processes' ids ("-" when the demo has none: the simulator).
    pid: str = "-"
    #: Restarts of the instance's consumer so far; None when the demo cannot tell.
    restarts: int | None = None


@dataclass(slots=True)
class View:
    """What the screen remembers between frames: history and the change log."""

    history: list[tuple[float, float, float]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    last: dict[str, tuple[str, str]] = field(default_factory=dict)
    restarts: dict[str, int | None] = field(default_factory=dict)

    def observe(self, *, t: float, rows: Sequence[Row], total_cpu_m: int) -> None:
        """Record a frame; instances that changed alike share one line of the change log."""
        total_lag = sum(r.lag_msgs for r in rows)
        self.history.append((t, total_lag, total_cpu_m / 1000))
        alike: dict[str, list[Row]] = {}
        for r in rows:
            before = self.last.get(r.name)
            now = (r.cpu, r.status)
            restarted_before = self.restarts.get(r.name)
            self.last[r.name] = now
            self.restarts[r.name] = r.restarts
            if before is None or before == now:
                continue
            changed: list[str] = []
            if before[0] != now[0]:
                changed.append(f"cpu {before[0]} -> {now[0]} {_how(restarted_before, r)}")
            if before[1] != now[1]:
                changed.append(f"{before[1]} -> {now[1]}")
            alike.setdefault(", ".join(changed), []).append(r)
        for what, who in alike.items():
            lo, hi = min(r.lag_s for r in who), max(r.lag_s for r in who)
            lag = f"{lo:.0f}s" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f}s"
            what = what.replace("{pids}", _pids(who))
            self.events.append(f"{mmss(t)}  {_names([r.name for r in who])}: {what}  (lag {lag})")
        del self.events[:-10]


def _how(restarts_before: int | None, row: Row) -> str:
    """How a CPU change reached the consumer: with a restart, or in place (same process).

    ``{pids}`` stands for the instances' process ids, filled in once alike changes are
    grouped on one line."""
    if row.restarts is None or restarts_before is None:
        return "(pods restart)"  # a demo that cannot see processes: the Recreate behaviour
    seen = " {pids}" if row.pid != "-" else ""
    if row.restarts > restarts_before:
        return f"(restarted{',' if seen else ''}{seen})"
    return f"(in place{', same' if seen else ''}{seen})"


def _pids(rows: Sequence[Row]) -> str:
    pids = [r.pid for r in rows if r.pid != "-"]
    return ("pid " if len(pids) == 1 else "pids ") + " ".join(pids)


def _names(names: Sequence[str]) -> str:
    """``orders-0, orders-1`` as ``orders-{0,1}``."""
    if len(names) == 1:
        return names[0]
    stems = {n.rsplit("-", 1)[0] for n in names}
    if len(stems) == 1 and all(n.rsplit("-", 1)[-1].isdigit() for n in names):
        return f"{stems.pop()}-{{{','.join(n.rsplit('-', 1)[-1] for n in names)}}}"
    return ", ".join(names)


def screen(
    *,
    header: str,
    consumers: str,
    rows: Sequence[Row],
    view: View,
    phase: str,
) -> RenderableType:
    """One frame: the header, ``kubectl get consumers``, the instances, history, changes."""
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    table.add_column("INSTANCE", no_wrap=True)
    table.add_column("PARTITIONS", min_width=10, no_wrap=True)
    table.add_column("LAG msgs", justify="right", min_width=9, no_wrap=True)
    table.add_column("LAG s", justify="right", min_width=6, no_wrap=True)
    table.add_column("CPU req/lim", min_width=12, no_wrap=True)
    table.add_column("MEMORY", min_width=8, no_wrap=True)
    table.add_column("SCALING STATE", min_width=19, no_wrap=True)
    table.add_column("FOR", justify="right", min_width=5, no_wrap=True)
    table.add_column("CONSUMING", no_wrap=True)
    pids = any(r.pid != "-" for r in rows)
    restarts = any(r.restarts is not None for r in rows)
    if pids:
        table.add_column("PID", no_wrap=True)
    if restarts:
        table.add_column("RESTARTS", justify="right", no_wrap=True)
    for r in rows:
        cells = [
            r.name,
            r.partitions,
            f"{r.lag_msgs:,.0f}",
            f"{r.lag_s:.0f}",
            r.cpu,
            r.memory,
            r.status,
            r.since,
            r.consuming,
        ]
        if pids:
            cells.append(r.pid)
        if restarts:
            cells.append("-" if r.restarts is None else str(r.restarts))
        table.add_row(*cells)
    parts: list[RenderableType] = [
        Text(header, style="bold"),
        Text(f"phase: {phase}", style="yellow"),
        Text(""),
        Text("$ kubectl get consumers", style="dim"),
        Text(consumers.rstrip()),
        Text(""),
        table if rows else Text("(no Deployments yet)"),
    ]
    if view.history:
        lags = [h[1] for h in view.history]
        cpus = [h[2] for h in view.history]
        peak_lag = max(lags)
        at = view.history[lags.index(peak_lag)][0]
        parts += [
            Text(""),
            Text(
                f"total lag  |{sparkline(lags)}|  now {_human(lags[-1])} msgs,"
                f" peak {_human(peak_lag)} at {mmss(at)}"
            ),
            Text(f"total CPU  |{sparkline(cpus)}|  now {cpus[-1]:.1f} cores, peak {max(cpus):.1f}"),
        ]
    parts += [Text(""), Text("changes made by the operator:", style="bold")]
    parts += [Text(f"  {e}") for e in view.events] or [Text("  (none yet)")]
    return Group(*parts)


def render(
    *,
    header: str,
    consumers: str,
    rows: Sequence[Row],
    view: View,
    phase: str,
) -> str:
    """The frame of :func:`screen` as plain text (no colours, no terminal codes)."""
    out = io.StringIO()
    console = Console(file=out, width=TEXT_WIDTH, color_system=None, force_terminal=False)
    console.print(screen(header=header, consumers=consumers, rows=rows, view=view, phase=phase))
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").split("\n"))


class Display:
    """Where frames go: a rich ``Live`` display on a terminal, text frames elsewhere."""

    def __init__(self, *, live: Live | None, console: Console) -> None:
        self._live = live
        self._console = console

    def show(self, frame: RenderableType, *, at: float) -> None:
        if self._live is not None:
            self._live.update(frame, refresh=True)
            return
        self._console.print(f"\n----- {mmss(at)} -----", markup=False, highlight=False)
        self._console.print(frame)


@contextmanager
def display(*, interactive: bool) -> Iterator[Display]:
    """A full-screen live display when ``interactive`` (restored on exit), else text frames."""
    if not interactive:
        yield Display(live=None, console=Console(width=TEXT_WIDTH, highlight=False))
        return
    console = Console()
    with Live(console=console, screen=True, auto_refresh=False) as live:
        yield Display(live=live, console=console)
