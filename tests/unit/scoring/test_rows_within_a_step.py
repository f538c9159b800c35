"""``konsumerator score`` plays a trace's messages, whatever its rows' resolution.

A row holds until the next one (``scoring.traces``), and the parser takes rows any
distance apart, so a trace exported at Prometheus' or Kafka's own resolution (a row a
second) is a valid input. The model steps every ``dt`` (2 s): a step produces what the
rows within it produce (``TableTrace.mean_rates``, ``Model.production``), not the rate of
the one row its start falls on.

Aspects tested:

* An hour of rows a second apart alternating 0 and 2,000 msg/s costs the oracle (which
  sizes each step for exactly what it must consume) what an hour at a constant 1,000
  msg/s does; sampled at each step's start it was no production at all.
* Property: a step produces exactly the messages of the rows it covers (the integral of
  the piecewise-constant trace over the step), for any rows and any step, noise or not.
* Property: a trace whose rows fall on step boundaries (every published trace and the
  example, whose rows are a minute apart) gives the model byte-identical input to
  sampling each step's start, with and without noise: its scores are unchanged.
"""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.cli import main
from konsumerator.scoring.command import NOISE, Noisy, _unit_noise
from konsumerator.scoring.model import Model
from konsumerator.scoring.traces import TableTrace, parse

CONSUMER = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
PARTITIONS = 10
HEADER = "t," + ",".join(map(str, range(PARTITIONS))) + "\n"


def _row(t: int, rate: int) -> str:
    return f"{t}," + ",".join([str(rate)] * PARTITIONS) + "\n"


def _oracle_core_hours(trace: str) -> float:
    result = CliRunner().invoke(
        main, ["score", str(CONSUMER), "-", "--policy", "oracle", "--format", "json"], input=trace
    )
    assert result.exit_code == 0, result.output
    return float(json.loads(result.stdout)["policies"]["oracle"]["core_hours"])


def test_a_trace_with_a_row_a_second_is_scored_by_its_messages() -> None:
    fine = HEADER + "".join(_row(t, 2000 if t % 2 else 0) for t in range(3600))
    coarse = HEADER + "".join(_row(t, 1000) for t in range(0, 3600, 60))
    fine_a, coarse_a = _oracle_core_hours(fine), _oracle_core_hours(coarse)
    assert coarse_a > 0
    assert fine_a == pytest.approx(coarse_a, rel=0.25), (fine_a, coarse_a)


# -- the model's input, step by step ---------------------------------------------------------

rates = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@st.composite
def traces(draw: st.DrawFn, *, on_steps_of: float | None = None) -> TableTrace:
    """A table of 1-3 partitions; with ``on_steps_of``, its rows a whole number of steps apart."""
    n = draw(st.integers(min_value=1, max_value=3))
    if on_steps_of is None:
        gaps = draw(
            st.lists(
                st.floats(min_value=0.01, max_value=100, allow_nan=False), min_size=1, max_size=12
            )
        )
    else:
        steps = st.integers(min_value=1, max_value=40)
        gaps = [on_steps_of * k for k in draw(st.lists(steps, min_size=1, max_size=12))]
    times = [0.0]
    for gap in gaps[:-1]:
        times.append(times[-1] + gap)
    cells = draw(st.lists(rates, min_size=n * len(times), max_size=n * len(times)))
    return TableTrace(times=times, rates=cells, num_partitions=n, duration_s=times[-1] + gaps[-1])


def _integral(trace: TableTrace, *, partition: int, start: float, end: float) -> float:
    """Messages of ``partition`` over [start, end): each row's rate times its overlap."""
    total = 0.0
    times = [*trace.times, math.inf]
    for r in range(len(trace.times)):
        overlap = min(end, times[r + 1]) - max(start, times[r])
        if overlap > 0:
            total += trace.rates[r * trace.num_partitions + partition] * overlap
    return total


class Sampled:
    """The same workload, sampled at each step's start (no ``mean_rates``)."""

    def __init__(self, base: TableTrace | Noisy) -> None:
        self.base = base
        self.name = "sampled"
        self.duration_s = base.duration_s

    def rate(self, *, partition: int, t: float) -> float:
        return self.base.rate(partition=partition, t=t)

    def stalled(self, *, partition: int, t: float) -> bool:
        return False

    def phase(self, *, t: float) -> str:
        return ""


def _inputs(trace: object, *, num_partitions: int, dt: float, steps: int) -> list[list[float]]:
    model = Model(trace=trace, num_partitions=num_partitions, true_rate_per_core=1.0, restart_s=0)  # type: ignore[arg-type]
    produced = []
    for _ in range(steps):
        produced.append(model.production(dt=dt))
        model.advance(dt=dt)
    return produced


@given(trace=traces(), dt=st.sampled_from([0.5, 1.0, 2.0, 7.0, 60.0]))
def test_each_step_produces_the_messages_of_the_rows_it_covers(
    trace: TableTrace, dt: float
) -> None:
    steps = int(trace.duration_s // dt) + 2  # and past the last row, which holds
    produced = _inputs(trace, num_partitions=trace.num_partitions, dt=dt, steps=steps)
    for k, step in enumerate(produced):
        for p, messages in enumerate(step):
            exact = _integral(trace, partition=p, start=k * dt, end=(k + 1) * dt)
            assert messages == pytest.approx(exact, rel=1e-9, abs=1e-6), (k, p)


@given(trace=traces(), seed=st.integers(min_value=1, max_value=5))
def test_a_noisy_step_produces_each_minutes_messages_with_its_noise(
    trace: TableTrace, seed: int
) -> None:
    noisy = Noisy(base=trace, seed=seed)
    for start, end in [(0.0, 2.0), (59.0, 61.0), (30.0, 150.0)]:
        got = noisy.mean_rates(start=start, end=end)
        for p in range(trace.num_partitions):
            exact = sum(
                _integral(
                    trace, partition=p, start=max(start, m * 60.0), end=min(end, m * 60.0 + 60)
                )
                * (1 + NOISE * _unit_noise(seed, p, m))
                for m in range(int(start // 60), math.ceil(end / 60))
            ) / (end - start)
            assert got[p] == pytest.approx(exact, rel=1e-9, abs=1e-9)


@given(trace=traces(on_steps_of=2.0), seed=st.integers(min_value=0, max_value=3))
def test_rows_on_step_boundaries_give_the_sampled_input_to_the_bit(
    trace: TableTrace, seed: int
) -> None:
    workload: TableTrace | Noisy = trace if seed == 0 else Noisy(base=trace, seed=seed)
    steps = int(trace.duration_s // 2.0) + 2
    n = trace.num_partitions
    averaged = _inputs(workload, num_partitions=n, dt=2.0, steps=steps)
    sampled = _inputs(Sampled(workload), num_partitions=n, dt=2.0, steps=steps)
    assert averaged == sampled  # floats compared exactly


def test_the_example_trace_is_on_step_boundaries() -> None:
    # What makes the property above cover `konsumerator score` on the example.
    example = CONSUMER.parent / "traces" / "morning.csv"
    trace = parse(example.read_text(), source="morning.csv", num_partitions=PARTITIONS)
    assert all(t % 2.0 == 0 for t in trace.times)
