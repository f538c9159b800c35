"""The simulator's pure model: traces, the consumption rule and the restart penalty.

Aspects tested:

* Consumption is ``min(backlog + produced, truePerCoreRate × cores × dt)``:
  a sized consumer keeps lag at zero, an undersized one builds backlog at
  exactly the deficit, a larger one drains at exactly the surplus, and the
  true rate (not the Consumer's ratePerCore) is what counts.
* An instance with several partitions shares its capacity max-min fairly:
  a light partition gets all it needs, the rest is split evenly.
* Restarts: a pod-template change costs ``restart_s`` of zero consumption
  (also when the restart ends mid-step), is counted; a metadata-only
  change (same fingerprint) costs nothing; a new Deployment pays the start
  time without being counted.
* In-place resizes: a new CPU with the same template never stops consumption; it is
  actuated ``resize_s`` later (the old CPU consumes until then), a newer size replaces one
  not yet actuated, and resizes are counted apart from restarts (a template change with
  another CPU counts as both).
* Handover: partitions that never had a running owner have lag 0; once
  owned, a lost owner means nobody consumes.
* Stalls (the incident) stop consumption whatever the CPU; the backlog then
  drains at the surplus.
* Traces: each suite trace has the shape its name promises; noise is
  deterministic for a seed, bounded, and differs between seeds; skewed
  partitions are 5x hotter; the CSV loader holds each row until the next
  and rejects malformed files; ``time_scale`` compresses the schedule only.
* ``snapshot()`` answers like Prometheus: rates over the window, lag now.
"""

import math

import pytest

from konsumerator.domain.adaptive.learning import instance_of_pod
from konsumerator_dev.sim.model import Instance, Model, fair_share
from konsumerator_dev.sim.traces import (
    TRACES,
    Trace,
    burst,
    diurnal,
    from_csv,
    incident,
    skewed,
    steady,
)


def flat(rate: float = 1000.0, **kwargs: object) -> Trace:
    return Trace(name="flat", base_rate=rate, duration_s=3600.0, **kwargs)  # type: ignore[arg-type]


def model(
    trace: Trace,
    *,
    partitions: int = 1,
    true_rate: float = 2000.0,
    restart_s=0.0,
    resize_s: float = 0.0,
):
    return Model(
        trace=trace,
        num_partitions=partitions,
        true_rate_per_core=true_rate,
        restart_s=restart_s,
        resize_s=resize_s,
        history_s=60.0,
    )


def run(m: Model, seconds: int, *, dt: float = 1.0) -> None:
    for _ in range(int(seconds / dt)):
        m.advance(dt=dt)


def own(m: Model, cpu_m: int, *, template: str = "v1", partitions=(0,), name: str = "i0"):
    return m.allocate(
        [Instance(name=name, partitions=tuple(partitions), cpu_m=cpu_m, template=template)]
    )


def test_a_consumer_with_enough_cpu_keeps_lag_at_zero():
    m = model(flat(1000))
    own(m, 500)  # 0.5 core x 2000/s = exactly the production
    run(m, 120)
    assert m.partitions[0].backlog == pytest.approx(0.0)
    assert m.partitions[0].consumption_rate == pytest.approx(1000.0)


def test_an_undersized_consumer_builds_backlog_at_the_deficit():
    m = model(flat(1000))
    own(m, 300)  # 600/s against 1000/s
    run(m, 100)
    assert m.partitions[0].backlog == pytest.approx(400.0 * 100)


def test_a_larger_consumer_drains_at_the_surplus_and_never_below_zero():
    m = model(flat(1000))
    own(m, 300)
    run(m, 100)  # 40,000 behind
    own(m, 1000, template="v1")  # same template: an in-place resize, no restart
    run(m, 20)  # 2000/s - 1000/s = 1000/s drained
    assert m.partitions[0].backlog == pytest.approx(40_000 - 20_000)
    run(m, 100)
    assert m.partitions[0].backlog == pytest.approx(0.0)
    assert m.partitions[0].consumed <= m.partitions[0].produced


def test_the_true_rate_per_core_decides_not_the_configured_one():
    m = model(flat(1000), true_rate=1600.0)  # the user believes 2000/s per core
    own(m, 500)
    run(m, 10)
    assert m.partitions[0].backlog == pytest.approx((1000 - 800) * 10)


def test_fair_share_gives_light_partitions_all_they_need_and_splits_the_rest():
    assert fair_share(capacity=1000, demands=[100, 5000, 5000]) == pytest.approx([100, 450, 450])
    assert fair_share(capacity=1000, demands=[100, 200]) == pytest.approx([100, 200])
    assert fair_share(capacity=0, demands=[10]) == [0.0]


def test_an_instance_shares_its_cpu_between_its_partitions():
    m = model(Trace(name="t", base_rate=1000, duration_s=60, skew={1: 3.0}), partitions=2)
    own(m, 1000, partitions=(0, 1))  # 2000/s for 1000/s + 3000/s
    run(m, 10)
    assert m.partitions[0].backlog == pytest.approx(0.0)
    assert m.partitions[1].backlog == pytest.approx((3000 - 1000) * 10)


def test_a_template_change_costs_the_restart_time_and_is_counted():
    m = model(flat(1000), restart_s=30.0)
    own(m, 1000)
    run(m, 40)  # started (30 s handover), then caught up
    assert m.partitions[0].backlog == pytest.approx(0.0)
    restarted = own(m, 2000, template="v2")
    assert restarted == ["i0"]
    assert m.restarts == 1
    assert m.restarting("i0")
    run(m, 30)
    assert m.partitions[0].backlog == pytest.approx(30 * 1000)
    assert not m.restarting("i0")
    run(m, 10)  # 4000/s against 1000/s
    assert m.partitions[0].backlog == pytest.approx(0.0)


def test_a_restart_that_ends_mid_step_consumes_for_the_rest_of_the_step():
    m = model(flat(1000), restart_s=5.0)
    own(m, 1000)
    run(m, 10)
    own(m, 1000, template="v2")
    m.advance(dt=10.0)  # down 5 s, then 5 s at 2000/s: 10,000 produced, 10,000 consumed
    assert m.partitions[0].backlog == pytest.approx(0.0)


def test_a_metadata_only_change_costs_nothing():
    m = model(flat(1000), restart_s=30.0)
    own(m, 1000)
    run(m, 40)
    assert own(m, 1000, template="v1") == []
    run(m, 10)
    assert m.restarts == 0
    assert m.partitions[0].backlog == pytest.approx(0.0)


def test_an_in_place_resize_keeps_consuming_at_the_old_cpu_until_actuated():
    m = model(flat(1000), restart_s=30.0, resize_s=4.0)
    own(m, 250)  # 500 msg/s against 1000/s produced: 500/s of backlog
    run(m, 40)  # 30 s starting (handover: no backlog), then 10 s undersized
    assert m.partitions[0].backlog == pytest.approx(5000)
    assert own(m, 1000) == []  # same template: no restart
    assert not m.restarting("i0")
    run(m, 4)  # the old CPU until actuated, never nothing
    assert m.partitions[0].backlog == pytest.approx(5000 + 4 * 500)
    assert m.instances()[0].cpu_m == 1000
    run(m, 7)  # now 2000/s: drains 1000/s
    assert m.partitions[0].backlog == pytest.approx(0.0)
    assert (m.restarts, m.resizes) == (0, 1)
    assert (m.restarts_by, m.resizes_by) == ({}, {"i0": 1})


def test_a_newer_size_replaces_one_not_yet_actuated():
    m = model(flat(1000), resize_s=10.0)
    own(m, 500)
    run(m, 5)
    own(m, 2000)
    run(m, 5)
    own(m, 750)  # before the first was actuated
    run(m, 9)
    assert m.instances()[0].cpu_m == 500
    run(m, 1)
    assert m.instances()[0].cpu_m == 750
    assert m.resizes == 2
    own(m, 750)  # the same size again: nothing to resize
    assert m.resizes == 2


def test_a_template_change_with_another_cpu_is_a_restart_and_a_resize():
    m = model(flat(1000), restart_s=5.0, resize_s=4.0)
    own(m, 500)
    run(m, 10)
    assert own(m, 1000, template="v2") == ["i0"]
    assert m.instances()[0].cpu_m == 1000  # a new pod starts with its size
    assert (m.restarts, m.resizes) == (1, 1)
    assert own(m, 1000, template="v3") == ["i0"]  # env only: a restart, no resize
    assert (m.restarts, m.resizes) == (2, 1)
    assert m.restarts_by == {"i0": 2}


def test_before_its_first_owner_runs_a_partition_is_consumed_by_the_previous_consumer():
    m = model(flat(1000), partitions=2, restart_s=20.0)
    run(m, 60)
    assert [p.backlog for p in m.partitions] == [0.0, 0.0]
    assert own(m, 100) == []  # a new Deployment: starting, not a restart
    run(m, 20)  # still starting: the old consumer keeps up
    assert m.partitions[0].backlog == pytest.approx(0.0)
    run(m, 10)  # now the new, undersized one owns it
    assert m.partitions[0].backlog == pytest.approx((1000 - 200) * 10)
    m.allocate([])  # the owner is gone: nobody consumes
    run(m, 10)
    assert m.partitions[0].backlog == pytest.approx(8000 + 10_000)
    assert m.partitions[1].backlog == 0.0  # never owned


def test_a_stall_stops_consumption_whatever_the_cpu_and_then_the_backlog_drains():
    m = model(flat(1000, stalls=incident(at_s=60, length_s=60).stalls))
    own(m, 4000)
    run(m, 60)
    assert m.partitions[0].backlog == pytest.approx(0.0)
    run(m, 60)
    assert m.partitions[0].backlog == pytest.approx(60_000)
    run(m, 10)  # 8000/s against 1000/s
    assert m.partitions[0].backlog == pytest.approx(0.0)


def test_traces_have_the_shape_their_names_promise():
    s = steady(base_rate=1000, seed=1)
    rates = [s.rate(partition=0, t=t) for t in range(0, 6 * 3600, 60)]
    assert min(rates) >= 950
    assert max(rates) <= 1050

    d = diurnal(base_rate=1000, amplitude=0.6, seed=1)
    assert d.rate(partition=0, t=6 * 3600) == pytest.approx(1600, rel=0.06)
    assert d.rate(partition=0, t=18 * 3600) == pytest.approx(400, rel=0.06)

    b = burst(base_rate=1000, at_s=3600, length_s=600, factor=3, seed=1)
    assert b.rate(partition=0, t=3700) == pytest.approx(3000, rel=0.06)
    assert b.rate(partition=0, t=4300) == pytest.approx(1000, rel=0.06)

    i = incident(at_s=3600, length_s=900)
    assert not i.stalled(partition=3, t=3599)
    assert i.stalled(partition=3, t=3600)
    assert not i.stalled(partition=3, t=4500)
    assert "INCIDENT" in i.phase(t=4000)

    k = skewed(base_rate=1000, num_partitions=10, seed=1)
    assert k.rate(partition=0, t=0) == pytest.approx(5 * k.rate(partition=1, t=0), rel=0.12)
    assert k.rate(partition=5, t=0) > 4 * k.rate(partition=6, t=0)
    assert set(TRACES) == {"steady", "diurnal", "burst", "incident", "skewed"}


def test_noise_is_deterministic_bounded_and_seeded():
    a, b, c = steady(seed=7), steady(seed=7), steady(seed=8)
    sample = [(p, t) for p in range(4) for t in range(0, 7200, 30)]
    ra = [a.rate(partition=p, t=t) for p, t in sample]
    assert ra == [b.rate(partition=p, t=t) for p, t in reversed(sample)][::-1]
    assert ra != [c.rate(partition=p, t=t) for p, t in sample]
    assert all(950 <= r <= 1050 for r in ra)
    assert len(set(ra)) > len(ra) // 4  # it does vary


def test_a_csv_trace_holds_each_row_until_the_next():
    t = from_csv("t,*,1\n0,100,500\n60,200,600\n", name="rec")
    assert t.rate(partition=0, t=0) == 100
    assert t.rate(partition=0, t=59.9) == 100
    assert t.rate(partition=0, t=61) == 200
    assert t.rate(partition=1, t=30) == 500
    assert t.rate(partition=7, t=1000) == 200
    assert t.duration_s == 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,0\n0,1\n", "header"),
        ("t,0\n", "header"),
        ("t,a\n0,1\n", "not a partition id"),
        ("t,0\n0,1,2\n", "line 2: expected 2 values"),
        ("t,0\n0,x\n", "numbers"),
        ("t,0\n10,1\n5,1\n", "must not decrease"),
        ("t,0\n0,-1\n", ">= 0"),
    ],
)
def test_a_malformed_csv_trace_is_rejected_with_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        from_csv(text)


def test_time_scale_compresses_the_schedule_but_not_the_rates():
    m = Model(
        trace=incident(base_rate=1000, at_s=600, length_s=600),
        num_partitions=1,
        true_rate_per_core=2000,
        restart_s=0,
        time_scale=10.0,
    )
    own(m, 4000)
    run(m, 60)  # trace minute 10: the stall begins
    assert m.trace_t == pytest.approx(600)
    run(m, 60)  # a model minute of stall, at 1000 msg/s per model second
    assert m.partitions[0].backlog == pytest.approx(60_000, rel=0.06)


def test_snapshot_reports_windowed_rates_and_current_lag_like_prometheus():
    m = model(flat(1000))
    own(m, 300)
    run(m, 120)
    snap = m.snapshot()
    assert snap.production[0] == pytest.approx(1000)
    assert snap.consumption[0] == pytest.approx(600)
    assert snap.offset[0] == 48_000
    assert snap.lag[0] == 48
    assert math.isclose(m.t, 120)


@pytest.mark.parametrize(
    ("cpu_m", "restart", "cores"),
    [
        (300, False, 0.3),  # falling behind: all it has (600/s at 2000/s per core)
        (2000, False, 0.5),  # keeping up: what 1000/s costs, not its request
        (300, True, 0.3 * 30 / 60),  # restarting for half the window: half of it
    ],
)
def test_snapshot_reports_the_cpu_each_pod_used_over_the_window(
    cpu_m: int, restart: bool, cores: float
) -> None:
    m = model(flat(1000), restart_s=30.0)
    own(m, cpu_m)
    run(m, 120)
    if restart:
        own(m, cpu_m, template="v2")
        run(m, 60)
    snap = m.snapshot()
    usage = snap.cpu_usage
    assert usage is not None
    (pod,) = usage.by_pod
    assert instance_of_pod(pod) == "i0"
    assert usage.by_pod[pod] == pytest.approx(cores)
    # Consumption over CPU used is the true rate per core, whatever the allocation.
    assert snap.consumption[0] / usage.by_pod[pod] == pytest.approx(2000)
