"""The invented traces (``konsumerator_dev.sim.traces.INVENTED``) and their CSV export.

Aspects tested:

* Each has the shape its name promises (step up, step down, slow ramp,
  sawtooth, one hot partition x4/x6/x8, a long outage, ±30 % noise),
  deterministic for a seed.
* ``to_csv`` writes what ``konsumerator score`` reads (``scoring.traces.parse``),
  with the generator's rates; ``konsumerator-dev sim trace-csv`` prints it.
* The scorecard plays an invented trace only when it is named (or ``invented``),
  never in the published suite.
"""

import pytest
from click.testing import CliRunner

from konsumerator.scoring import traces as scoring_traces
from konsumerator_dev.sim import traces
from konsumerator_dev.sim.cli import sim


def test_the_invented_traces_have_the_shape_their_names_promise() -> None:
    s = traces.step_up(base_rate=1000, at_s=3600, factor=2.5, seed=1)
    assert s.rate(partition=0, t=3599) == pytest.approx(1000, rel=0.06)
    assert s.rate(partition=0, t=3600) == pytest.approx(2500, rel=0.06)
    assert s.rate(partition=0, t=s.duration_s - 1) == pytest.approx(2500, rel=0.06)

    r = traces.slow_ramp(base_rate=500, to=4.0, seed=1)
    assert r.rate(partition=0, t=0) == pytest.approx(500, rel=0.06)
    assert r.rate(partition=0, t=r.duration_s / 2) == pytest.approx(1250, rel=0.06)
    assert r.rate(partition=0, t=r.duration_s) == pytest.approx(2000, rel=0.06)

    w = traces.sawtooth(base_rate=1000, period_s=1800, amplitude=1.5, seed=1)
    assert w.rate(partition=0, t=0) == pytest.approx(1000, rel=0.06)
    assert w.rate(partition=0, t=1799) == pytest.approx(2500, rel=0.06)
    assert w.rate(partition=0, t=1800) == pytest.approx(1000, rel=0.06)

    h = traces.hot_partition(base_rate=1000, partition=0, factor=4.0, seed=1)
    assert h.rate(partition=0, t=0) == pytest.approx(4000, rel=0.06)
    assert h.rate(partition=1, t=0) == pytest.approx(1000, rel=0.06)

    o = traces.long_outage(at_s=3600, length_s=5400)
    assert not o.stalled(partition=0, t=3599)
    assert o.stalled(partition=9, t=3600 + 5399)
    assert not o.stalled(partition=0, t=9000)

    d = traces.step_down(base_rate=1000, at_s=3600, factor=2.5, seed=1)
    assert d.rate(partition=0, t=3599) == pytest.approx(2500, rel=0.06)
    assert d.rate(partition=0, t=3600) == pytest.approx(1000, rel=0.06)

    n = traces.noisy(base_rate=1000, noise=0.3, seed=1)
    rates = [n.rate(partition=0, t=60.0 * k) for k in range(200)]
    assert 700 <= min(rates) < 800
    assert 1200 < max(rates) <= 1300

    h8 = traces.INVENTED["hot-partition-x8"](seed=1)
    assert h8.name == "hot-partition-x8"
    assert h8.rate(partition=0, t=0) == pytest.approx(8000, rel=0.06)

    assert set(traces.INVENTED) == {
        "step-up",
        "slow-ramp",
        "sawtooth",
        "hot-partition",
        "hot-partition-x6",
        "hot-partition-x8",
        "long-outage",
        "step-down",
        "noisy",
    }
    for make in traces.INVENTED.values():
        assert make(seed=2).rate(partition=3, t=777) == make(seed=2).rate(partition=3, t=777)


def test_the_csv_export_is_what_konsumerator_score_reads() -> None:
    trace = traces.step_up(seed=1, duration_s=7200.0)
    text = traces.to_csv(trace, num_partitions=4, step_s=60.0)
    table = scoring_traces.parse(text, source="step-up.csv", num_partitions=4)
    assert table.duration_s == pytest.approx(7200.0)
    for t in (0.0, 3540.0, 3600.0, 7000.0):
        sampled = t - t % 60
        want = trace.rate(partition=2, t=sampled)
        assert table.rate(partition=2, t=t) == pytest.approx(want, abs=0.001)


def test_the_dev_cli_prints_a_trace_as_csv() -> None:
    result = CliRunner().invoke(sim, ["trace-csv", "hot-partition", "--partitions", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "t,0,1,2"
    assert len(lines) == 1 + 6 * 60
    assert float(lines[1].split(",")[1]) > 3 * float(lines[1].split(",")[2])


@pytest.mark.parametrize(
    ("only", "want"),
    [
        (None, {"steady", "diurnal", "burst", "incident", "skewed", "flapping", "diurnal-slow"}),
        (["burst", "step-up"], {"burst", "step-up"}),
        (["invented"], set(traces.INVENTED)),
    ],
)
def test_the_scorecard_plays_an_invented_trace_only_when_named(
    only: list[str] | None, want: set[str]
) -> None:
    from konsumerator_dev.bench import autoscaling

    source, spec = autoscaling.load_config(autoscaling.ROOT / "examples" / "consumer.yaml")
    played = autoscaling.suite(
        source=source,
        spec=spec,
        seed=1,
        restart_s=30.0,
        dt_s=2.0,
        base_rate=1000.0,
        csv=None,
        only=only,
    )
    assert {s.name for s in played} == want
