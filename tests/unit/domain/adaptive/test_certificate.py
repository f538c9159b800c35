"""The certificate of the adaptive rule's steady keep (``adaptive.certificate``, issue 15).

A cache of ``rules.scale_adaptively``'s outcome, not a second policy, so it must never
be seen:

* replaying random timelines (noise, steps, lag bursts, stalls, outages, time jumps,
  memory rotations) through random adaptive Consumers, every call of the rule gives the
  same decision (and remembered memory, and pool) with the certificate as in full;
* every certificate made is exact: its ends keep the instance as the rule's own
  proposal and comparison say, and the rates just outside do not (a certificate one
  rate too wide fails this);
* the interval search finds any interval's ends;
* it is refused (the full rule decides) for another Deployment object or config
  object, a lag that crosses a threshold, a rate just outside it, a memory that
  would be written, a status the rule changes (PENDING), and a global pool;
* and it does run: a steady noisy Consumer keeps nearly every instance by it.
"""

import copy
import dataclasses
import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from support.consumers import ConsumerBuilder

from konsumerator import simulating
from konsumerator.api import manifests
from konsumerator.domain import keys, limits, rules
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.adaptive import memory as adaptive_memory
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment

CONSUMER = ConsumerBuilder(partitions=4, max_cpu="4", max_memory="1Gi", sidecar=True).manifest()
PARTITIONS = 4


def consumer(
    *,
    update_mode: str = "Recreate",
    per_instance: int = 1,
    max_cpu: str = "4",
    pending_up: str = "2m",
    pending_down: str = "10m",
    global_cpu: str | None = None,
) -> tuple[manifests.Source, Any]:
    doc = copy.deepcopy(CONSUMER)
    spec = doc["spec"]
    spec["numPartitionsPerInstance"] = per_instance
    auto = spec["autoscaler"]
    auto["updateMode"] = update_mode
    auto["pendingScaleUpDuration"] = pending_up
    auto["pendingScaleDownDuration"] = pending_down
    spec["resourcePolicy"]["containerPolicies"][0]["maxAllowed"]["cpu"] = max_cpu
    if global_cpu is not None:
        spec["resourcePolicy"]["globalPolicy"] = {"maxAllowed": {"cpu": global_cpu}}
    return manifests.read(doc)


def snapshot(
    production: float, *, consumed: float | None = None, behind: float = 0.0
) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(range(PARTITIONS), production)),
        consumption=MappingProxyType(
            dict.fromkeys(range(PARTITIONS), production if consumed is None else consumed)
        ),
        offset=MappingProxyType(dict.fromkeys(range(PARTITIONS), behind)),
    )


# -- the rule in full alongside -----------------------------------------------------------

_RULE = rules.scale_adaptively


def _pred(
    ctx: rules.Context,
    inst: rules.Instance,
    d: ObservedDeployment,
    pool: limits.Pool,
    *,
    first: int,
    decided: bool,
) -> Callable[[int], bool]:
    """What a certificate's interval must be, restated from ``adaptive.certificate``'s
    invariant with the rule's own proposal, comparison and ``_keeps``."""

    def holds(rate: int) -> bool:
        proposal = rules._propose(ctx, inst, pool, critical=inst.critical, rate=rate)
        comparison = rules.compare(d.current, proposal.resources)
        keeps = rules._keeps(ctx, inst, d, cpu_shortage_m=proposal.cpu_shortage_m)
        if not decided:
            return comparison == 0 and keeps if first == 0 else comparison == first
        return keeps and (first > 0 or comparison >= 0)

    return holds


def _exact(holds: Callable[[int], bool], ends: tuple[int, int]) -> None:
    lo, hi = ends
    assert holds(lo)
    assert holds(hi)
    assert holds((lo + hi) // 2)
    assert lo == 1 or not holds(lo - 1)
    assert hi == certificate.TOP_RATE or not holds(hi + 1)


class Checked:
    """Runs the rule in full next to every certified call, and checks every certificate
    made; counts the calls kept by a certificate."""

    def __init__(self) -> None:
        self.calls = 0
        self.certified = 0
        self.made = 0
        self.held_calls = 0

    def rule(
        self, ctx: rules.Context, inst: rules.Instance, pool: limits.Pool
    ) -> rules.Decision | None:
        saved = pool.available
        twin = dataclasses.replace(ctx, budget=copy.deepcopy(ctx.budget))
        with mock.patch.object(rules, "_certified_keep", self._spy_keep):
            got = _RULE(ctx, inst, pool)
        after = pool.available
        pool.restore(saved)
        full = _RULE(twin, inst, pool, certify=False)
        assert got == full
        assert got is None or full is None or got.remembered == full.remembered
        assert pool.available == after
        self.calls += 1
        return got

    def _spy_keep(self, *args: Any, **kwargs: Any) -> rules.Decision | None:
        kept = _KEEP(*args, **kwargs)
        self.certified += kept is not None
        return kept

    def held(self, ctx: rules.Context, **kwargs: Any) -> Any:
        """``rules.held``, and when a hold stands, the rule in full for the instance it
        stands for (the planner asks it outside ``scale_adaptively``): it must keep the
        instance as it is and remember the same memory."""
        got = _HELD(ctx, **kwargs)
        if got is None:
            return None
        self.held_calls += 1
        self.certified += 1
        d = kwargs["d"]
        inst = rules.Instance(
            index=0,
            name=d.name,
            partitions=kwargs["partitions"],
            max_lag_s=0,
            lagging=kwargs["lagging"],
            critical=kwargs["critical"],
            deployment=d,
            outdated=False,
        )
        assert kwargs["unbounded"]
        pool = limits.Pool(pool=None, used_cpu_m=0, used_mem_b=0)
        twin = dataclasses.replace(ctx, budget=copy.deepcopy(ctx.budget))
        full = _RULE(twin, inst, pool, certify=False)
        assert full is not None
        assert full.action is None
        assert full.resources is d.current
        assert full.scaling is d.scaling
        assert full.cpu_shortage_m == d.saturation_m
        assert full.remembered == got
        return got

    def certify(
        self,
        ctx: rules.Context,
        inst: rules.Instance,
        d: ObservedDeployment,
        **kwargs: Any,
    ) -> None:
        _CERTIFY(ctx, inst, d, **kwargs)
        made = certificate.recall(
            d=d, config=ctx.sizing.config, critical=inst.critical, lagging=inst.lagging
        )
        assert made is not None
        self.made += 1
        pool = kwargs["pool"]
        _exact(_pred(ctx, inst, d, pool, first=made.first, decided=False), made.asks)
        if made.first != 0:
            _exact(_pred(ctx, inst, d, pool, first=made.first, decided=True), made.decided)


_KEEP = rules._certified_keep
_CERTIFY = rules._certify
_HELD = rules.held
_PEAKS = rules._peaks


def _admitted(made: certificate.Certificate, memory: Any, knobs: Any) -> Callable[[int], bool]:
    """What a hold's peaks must be, restated from ``certificate.Hold``: the held peaks
    whose rates (``sized_for_peak`` with no backlog need, keeping up) the certificate
    admits, with ``asks`` above 0."""

    def holds(peak: int) -> bool:
        sized = rules.adaptive.sized_for_peak(
            found=rules._NO_BACKLOG,
            peak=float(peak),
            memory=memory,
            knobs=knobs,
            keeping_up=True,
        )
        return sized.asks > 0 and made.admits(asks=sized.asks, decided=sized.rate)

    return holds


def _exact_peaks(made: certificate.Certificate, **kwargs: Any) -> tuple[int, int] | None:
    """``rules._peaks``, checked: both ends admitted, and the peaks just outside not."""
    found = _PEAKS(made, **kwargs)
    if found is not None:
        holds = _admitted(made, kwargs["memory"], kwargs["knobs"])
        lo, hi = found
        assert holds(lo)
        assert holds(hi)
        assert lo == 0 or not holds(lo - 1)
        assert hi == certificate.TOP_RATE or not holds(hi + 1)
    return found


@contextmanager
def checked() -> Iterator[Checked]:
    check = Checked()
    chain = tuple(check.rule if r is _RULE else r for r in rules.EXISTING)
    certificate.forget_all()
    with (
        mock.patch.object(rules, "scale_adaptively", check.rule),
        mock.patch.object(rules, "EXISTING", chain),
        mock.patch.object(rules, "_certify", check.certify),
        mock.patch.object(rules, "held", check.held),
        mock.patch.object(rules, "_peaks", _exact_peaks),
    ):
        yield check
    certificate.forget_all()


# -- random replays -----------------------------------------------------------------------


@st.composite
def consumers(draw: st.DrawFn) -> tuple[manifests.Source, Any]:
    return consumer(
        update_mode=draw(st.sampled_from(["Recreate", "InPlaceOrRecreate"])),
        per_instance=draw(st.sampled_from([1, 1, 2])),
        max_cpu=draw(st.sampled_from(["1", "4", "4"])),
        pending_up=draw(st.sampled_from(["0s", "2m"])),
        pending_down=draw(st.sampled_from(["0s", "10m"])),
        global_cpu=draw(st.sampled_from([None, None, None, None, "3"])),
    )


@st.composite
def timelines(draw: st.DrawFn) -> list[simulating.Step]:
    """A production level that mostly stays (noise of a few msg/s) and sometimes steps,
    with lag bursts, stalls, throughput limits, outages of Prometheus and jumps of time."""
    level = draw(st.sampled_from([500.0, 1000.0, 1900.0, 4000.0]))
    behind = 0.0
    limited = False
    steps = []
    for _ in range(draw(st.integers(5, 40))):
        event = draw(st.integers(0, 19))
        if event == 0:
            level = draw(st.sampled_from([100.0, 500.0, 1000.0, 1900.0, 4000.0, 9000.0]))
        consumed = level
        if event == 1:
            behind += draw(st.sampled_from([1e3, 1e5, 1e7]))  # a lag burst
        elif event == 2:
            consumed = 0.0  # a stall
        elif event == 3:
            behind = 0.0  # drained
        elif event == 4:
            consumed = level * 1.3  # the node lends CPU
        elif event == 6:
            limited = not limited  # a limit more CPU may not lift (``effect``), for a while
        if limited and event not in (2, 4):
            consumed = level * 0.6
        noise = draw(st.floats(-5, 5))
        metrics: MetricsSnapshot | None = snapshot(
            level + noise, consumed=consumed + noise, behind=behind
        )
        if event == 5:
            metrics = None
        advance = draw(st.sampled_from([31.0, 31.0, 31.0, 31.0, 10.0, 65.0, 301.0, 3600.0]))
        steps.append(simulating.Step(advance_s=advance, metrics=metrics))
    return steps


@settings(max_examples=120, deadline=None)
@given(consumer=consumers(), steps=timelines())
def test_every_call_decides_with_the_certificate_what_the_rule_decides_in_full(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step]
) -> None:
    source, spec = consumer
    with checked():
        r = simulating.Replay(source=source, spec=spec)
        try:
            for step in steps:
                r.step(advance_s=step.advance_s, metrics=step.metrics)
        finally:
            r.close()


def test_a_steady_noisy_consumer_keeps_nearly_every_instance_by_the_certificate() -> None:
    source, spec = consumer()
    with checked() as check:
        r = simulating.Replay(source=source, spec=spec)
        for i in range(60):
            r.step(advance_s=31.0, metrics=snapshot(1000.0 + (i * 7) % 11 - 5))
        r.close()
    assert check.made <= 2 * PARTITIONS
    assert check.certified >= 0.8 * check.calls
    # Nearly every instance of every pass by the peak's certificate (``rules.held``).
    assert check.held_calls >= 0.8 * 60 * PARTITIONS


# -- the interval ---------------------------------------------------------------------------


@given(
    bottom=st.integers(1, 1000),
    width=st.integers(0, 10**6),
    data=st.data(),
)
def test_the_interval_search_finds_both_ends_of_any_interval_whatever_its_hint(
    bottom: int, width: int, data: st.DataObject
) -> None:
    top = bottom + width
    lo = data.draw(st.integers(bottom, top))
    hi = data.draw(st.integers(lo, top))
    at = data.draw(st.integers(lo, hi))
    rates = st.integers(bottom - 2, top + 2)
    hint = data.draw(st.none() | st.tuples(rates, rates) | st.just((lo, hi)))
    asked: list[int] = []

    def holds(rate: int) -> bool:
        assert bottom <= rate <= top
        asked.append(rate)
        return lo <= rate <= hi

    found = certificate.interval(holds=holds, at=at, bottom=bottom, top=top, hint=hint)
    assert found == (lo, hi)
    assert len(asked) <= 4 * (top - bottom).bit_length() + 8
    if hint == (lo, hi):
        assert len(asked) <= 4  # a right hint: itself and the next one out, each end


@pytest.mark.parametrize("at", [1, 1000, 10**6])
def test_an_interval_that_reaches_the_top_rate_is_found_without_galloping_up_to_it(
    at: int,
) -> None:
    # A scale-down's decided rates have no upper bound: galloping up to ``TOP_RATE``
    # asked the rule 62 times for that end alone.
    asked: list[int] = []

    def holds(rate: int) -> bool:
        asked.append(rate)
        return rate >= at

    found = certificate.interval(holds=holds, at=at, bottom=1, top=certificate.TOP_RATE)
    assert found == (at, certificate.TOP_RATE)
    assert sum(1 for rate in asked if rate > at) <= 10


def test_instances_of_the_same_size_are_certified_with_each_others_ends_as_hints() -> None:
    # The first is searched from its rate out; the others of its size (the same ends)
    # ask the rule about each end and the rate next to it, no more.
    asked: list[int] = []
    search = certificate.interval

    def counted(*, holds: Callable[[int], bool], **kwargs: Any) -> tuple[int, int]:
        calls = [0]

        def counting(rate: int) -> bool:
            calls[0] += 1
            return holds(rate)

        found = search(holds=counting, **kwargs)
        if holds.__name__ == "at_asks":
            asked.append(calls[0])
        return found

    with mock.patch.object(certificate, "interval", counted):
        steady = Steady()
    assert len(asked) >= PARTITIONS
    first, *others = asked[:PARTITIONS]
    assert first > 4
    assert others == [4] * (PARTITIONS - 1)
    made = [certificate.last(d.uid) for d in steady.observed()]
    assert len({None if c is None else c.asks for c in made}) == 1  # the very same ends


# -- refused --------------------------------------------------------------------------------


class Steady:
    """A Consumer kept steady until every instance holds a certificate."""

    def __init__(self, **options: Any) -> None:
        source, spec = consumer(**options)
        self.replay = simulating.Replay(source=source, spec=spec)
        self.certified: list[int] = []
        self.certify_args: list[dict[str, Any]] = []
        self.by_hold = 0
        for _ in range(8):
            self.step(snapshot(1000.0))

    def step(self, metrics: MetricsSnapshot, advance_s: float = 31.0) -> Any:
        self.certified = []

        def keep(*args: Any, **kwargs: Any) -> rules.Decision | None:
            kept = _KEEP(*args, **kwargs)
            self.certified.append(kept is not None)
            return kept

        def certify(*args: Any, **kwargs: Any) -> None:
            self.certify_args.append(kwargs)
            _CERTIFY(*args, **kwargs)

        def held(*args: Any, **kwargs: Any) -> Any:
            got = _HELD(*args, **kwargs)
            if got is not None:
                self.certified.append(True)  # kept by the peak's certificate
                self.by_hold += 1
            return got

        self.by_hold = 0

        with (
            mock.patch.object(rules, "_certified_keep", keep),
            mock.patch.object(rules, "_certify", certify),
            mock.patch.object(rules, "held", held),
        ):
            return self.replay.step(advance_s=advance_s, metrics=metrics)

    def observed(self) -> list[ObservedDeployment]:
        return sorted(self.replay.cluster.observed(), key=lambda d: d.name)


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    certificate.forget_all()
    yield
    certificate.forget_all()


def test_a_steady_pass_is_kept_by_the_certificate() -> None:
    steady = Steady()
    done = steady.step(snapshot(1001.0))
    assert steady.certified == [True] * PARTITIONS
    assert not done.plan.applies


def test_a_certificate_is_recalled_for_exactly_the_inputs_it_was_made_for() -> None:
    steady = Steady()
    d = steady.observed()[0]
    (made,) = [c for c in certificate._KEPT.values() if c.d() is d]
    config = made.config
    assert certificate.recall(d=d, config=config, critical=False, lagging=False) is made
    other_config = dataclasses.replace(config)
    rewritten = simulating.observe(
        steady.replay.cluster._bodies[d.name], owner_uid=d.controller_uid or ""
    )
    for refused in (
        {"d": d, "config": other_config, "critical": False, "lagging": False},
        {"d": d, "config": config, "critical": True, "lagging": False},
        {"d": d, "config": config, "critical": False, "lagging": True},
        {"d": rewritten, "config": config, "critical": False, "lagging": False},
    ):
        assert certificate.recall(**refused) is None
    # Only a hint for the search of the next one (``last``), never an answer.
    assert certificate.last(d.uid) is made


@pytest.mark.parametrize("outside", ["below", "above"])
def test_a_rate_just_outside_the_certificate_is_decided_by_the_rule_in_full(
    outside: str,
) -> None:
    steady = Steady()
    asks = steady.certify_args[-1]["asks"]
    for made in list(certificate._KEPT.values()):
        lo, hi = made.asks
        narrowed = (asks + 1, hi) if outside == "below" else (lo, asks - 1)
        certificate.keep(dataclasses.replace(made, asks=narrowed, first=0))
    done = steady.step(snapshot(1000.0))
    assert steady.certified == [False] * PARTITIONS
    assert not done.plan.applies  # the rule in full keeps them too (and certifies again)


def test_a_memory_that_would_be_written_is_decided_by_the_rule_in_full() -> None:
    steady = Steady()
    # The same production (the same asks), consumed beyond what the request can: the
    # node lends CPU, which the memory remembers (``lent``): a write.
    done = steady.step(snapshot(1000.0, consumed=2000.0))
    assert steady.certified == [False] * PARTITIONS
    assert {a.action for a in done.plan.applies} == {rules.Action.ANNOTATE}
    assert all("lent=true" in d.annotations[keys.SCALING_MEMORY] for d in steady.observed())


def test_a_pending_status_is_never_certified() -> None:
    steady = Steady()
    name = steady.observed()[0].name
    body = copy.deepcopy(steady.replay.cluster._bodies[name])
    body["metadata"]["annotations"][keys.SCALING_STATUS] = "PENDING_SCALE_DOWN"
    steady.replay.cluster.apply(body)
    done = steady.step(snapshot(1000.0))
    assert steady.certified[0] is False
    (write,) = [a for a in done.plan.applies if a.name == name]
    assert write.action is rules.Action.ANNOTATE  # settled back to RUNNING


def test_a_global_pool_is_never_certified() -> None:
    steady = Steady(global_cpu="100")
    assert steady.certify_args == []
    assert certificate.kept_count() == 0
    steady.step(snapshot(1001.0))
    assert steady.certified == []  # not even asked: the pool is bounded


def test_a_lag_that_crosses_tolerable_lag_is_decided_by_the_rule_in_full() -> None:
    steady = Steady()
    # Behind by more than tolerableLag (1m of production) yet drained at the next pass.
    steady.step(snapshot(1000.0, behind=1000.0 * 120))
    assert steady.certified == [False] * PARTITIONS


def test_the_bytes_a_certificate_holds_are_bounded() -> None:
    first = ObservedDeployment(name="a", namespace="n", uid="u")
    made = certificate.Certificate(
        uid="u",
        d=weakref.ref(first),
        config=mock.sentinel.config,  # type: ignore[arg-type]
        critical=False,
        lagging=False,
        first=0,
        asks=(1, 2),
        decided=(1, certificate.TOP_RATE),
        cpu_shortage_m=0,
    )
    assert not hasattr(made, "__dict__")
    with mock.patch.object(certificate, "MAX_KEPT", 3):
        for i in range(10):
            d = ObservedDeployment(name="a", namespace="n", uid=f"u{i}")
            certificate.keep(dataclasses.replace(made, uid=d.uid, d=weakref.ref(d)))
            assert certificate.kept_count() <= 3


def test_a_certificate_keeps_no_deployment_alive_once_its_consumer_is_gone() -> None:
    steady = Steady()
    observed = [weakref.ref(d) for d in steady.observed()]
    assert certificate.kept_count() == PARTITIONS
    steady.replay.close()
    del steady
    gc.collect()
    # Each Deployment object is gone with the replay (its watch cache and planner), though
    # its certificate is still kept (till the next certification of its UID, or a clear):
    # a strong reference held some 3.9 kB an instance.
    assert [ref() for ref in observed] == [None] * PARTITIONS
    assert certificate.kept_count() == PARTITIONS


# -- the user and the cluster move too ------------------------------------------------------
#
# The replays above run one spec. Here the spec changes between the passes of one replay
# (``ratePerCore``, ``resourcePolicy`` bounds, a ``globalPolicy`` added and removed, the
# template's own resources, ``updateMode``, ``numPartitionsPerInstance``), the Consumer is
# paused and unpaused, a Deployment is deleted (the next pass creates it again), a
# partition's metrics are missing, NaN, infinite or negative, and the virtual clock goes
# backwards: every call must still decide with the certificate what it decides in full.


def _variant(name: str) -> tuple[manifests.Source, Any]:
    doc = copy.deepcopy(CONSUMER)
    spec = doc["spec"]
    auto = spec["autoscaler"]
    policies = spec["resourcePolicy"]["containerPolicies"]
    if name == "rate":
        auto["prometheus"]["ratePerCore"] = 1300
    elif name == "max":
        policies[0]["maxAllowed"]["cpu"] = "1500m"
    elif name == "min":
        policies[0]["minAllowed"]["cpu"] = "700m"
    elif name == "global":
        spec["resourcePolicy"]["globalPolicy"] = {"maxAllowed": {"cpu": "3"}}
    elif name == "template":
        containers = spec["deploymentTemplate"]["template"]["spec"]["containers"]
        containers[0]["resources"] = {"requests": {"cpu": "300m"}, "limits": {"cpu": "1"}}
    elif name == "inplace":
        auto["updateMode"] = "InPlaceOrRecreate"
    elif name == "pairs":
        spec["numPartitionsPerInstance"] = 2
    return manifests.read(doc)


VARIANTS = ["base", "rate", "max", "min", "global", "template", "inplace", "pairs"]
# Read once, so a spec returned to is the very object again, as the operator's
# converted config is while the spec stays equal.
SPECS = {name: _variant(name) for name in VARIANTS}
# What a partition's sample may be (None: missing). Not NaN or infinite: ``prom.parsing``
# drops those, and the rule in full crashes on some of them (``adaptive.urgent``
# divides by a total production of 0 beside a NaN one; ``_remember_resize`` takes the
# ``int`` of an infinite consumption).
ODD = [0.0, -50.0, 2.0**62, None]


def _snapshot(level: float, *, behind: float, odd: dict[int, float | None]) -> MetricsSnapshot:
    production = dict.fromkeys(range(PARTITIONS), level)
    consumption = dict.fromkeys(range(PARTITIONS), level)
    offset = dict.fromkeys(range(PARTITIONS), behind)
    for p, value in odd.items():
        for values in (production, consumption, offset):
            if value is None:
                values.pop(p, None)
            else:
                values[p] = value
    return MetricsSnapshot(production=production, consumption=consumption, offset=offset)


@st.composite
def events(draw: st.DrawFn) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(8, 40))):
        kind = draw(st.sampled_from(["metrics"] * 6 + ["spec", "pause", "delete", "back", "odd"]))
        if kind == "spec":
            steps.append((kind, draw(st.sampled_from(VARIANTS))))
        elif kind == "delete":
            steps.append((kind, draw(st.integers(0, PARTITIONS - 1))))
        elif kind == "back":
            steps.append((kind, draw(st.sampled_from([-31.0, -600.0, -3600.0]))))
        elif kind == "odd":
            p = draw(st.integers(0, PARTITIONS - 1))
            steps.append((kind, (p, draw(st.sampled_from(ODD)))))
        else:
            steps.append((kind, draw(st.sampled_from([500.0, 1000.0, 1000.0, 1900.0, 4000.0]))))
    return steps


@settings(
    max_examples=80,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=True,
)
@given(steps=events(), noise=st.lists(st.floats(-5, 5), min_size=40, max_size=40))
def test_every_call_decides_with_the_certificate_what_the_rule_decides_in_full_as_things_move(
    steps: list[tuple[str, Any]], noise: list[float]
) -> None:
    source, spec = SPECS["base"]
    level, behind = 1000.0, 0.0
    odd: dict[int, float | None] = {}
    paused = False
    with checked():
        r = simulating.Replay(source=source, spec=spec)
        try:
            for i, (kind, value) in enumerate(steps):
                advance = 31.0
                if kind == "metrics":
                    level, odd = value, {}
                    behind = 1e5 if value == 4000.0 else 0.0
                elif kind == "spec":
                    r.spec = SPECS[value][1]
                elif kind == "pause":
                    paused = not paused
                    annotations = dict(r.source.annotations)
                    if paused:
                        annotations[keys.DISABLE_AUTOSCALER] = "true"
                    else:
                        annotations.pop(keys.DISABLE_AUTOSCALER, None)
                    r.source = dataclasses.replace(r.source, annotations=annotations)
                elif kind == "delete":
                    names = sorted(d.name for d in r.cluster.observed())
                    if names:
                        r.cluster.delete(names[value % len(names)])
                elif kind == "back":
                    advance = value
                elif kind == "odd":
                    odd = {**odd, value[0]: value[1]}
                metrics = _snapshot(level + noise[i], behind=behind, odd=odd)
                r.step(advance_s=advance, metrics=metrics)
        finally:
            r.close()


# -- the peak's certificate (``certificate.Hold``) -------------------------------------------


def test_a_steady_pass_is_kept_by_the_peaks_certificate_through_rotations_of_the_peak() -> None:
    steady = Steady()
    for i in range(6):  # three rotations of the current bucket (every other pass)
        before = len(steady.certify_args)
        done = steady.step(snapshot(1000.0 + (i % 3) - 1))
        assert steady.certified == [True] * PARTITIONS
        assert len(steady.certify_args) == before
        assert not done.plan.applies
    made = [certificate.held(d.uid) for d in steady.observed()]
    assert all(h is not None and h.peaks is not None for h in made)


@pytest.mark.parametrize("outside", ["below", "above"])
def test_a_peak_just_outside_the_held_peaks_is_sized_the_long_way(outside: str) -> None:
    steady = Steady()
    steady.step(snapshot(1000.0))
    sized = mock.Mock(wraps=rules.adaptive.size)
    with mock.patch.object(rules.adaptive, "size", sized):
        steady.step(snapshot(1000.0))
    assert sized.call_count == 0  # within the held peaks: no ``Sized`` made
    for d in steady.observed():
        made = certificate.held(d.uid)
        assert made is not None
        assert made.peaks is not None
        memory = made.memory
        peak = max(memory.peak_rate, memory.previous_peak)
        lo, hi = made.peaks
        assert lo <= peak <= hi
        # The hold narrowed so that the peak the next pass holds is just outside it.
        narrowed = (peak + 1, hi) if outside == "below" else (lo, peak - 1)
        certificate.hold(dataclasses.replace(made, peaks=narrowed))
    # The same need: no rise, the same bucket (or a rotation to the same peak).
    with mock.patch.object(rules.adaptive, "size", sized):
        done = steady.step(snapshot(1000.0))
    assert sized.call_count == PARTITIONS  # sized by the rule's own ``size``
    assert steady.by_hold == PARTITIONS  # which the certificate admits
    assert not done.plan.applies


def test_a_hold_is_refused_for_a_memory_changed_but_for_its_peak() -> None:
    steady = Steady()
    steady.step(snapshot(1000.0))
    d = steady.observed()[0]
    made = certificate.held(d.uid)
    assert made is not None
    other = msgspec.structs.replace(
        made.memory, throughput_before=made.memory.throughput_before + 7
    )
    assert not made.holds(
        d=d,
        config=made.certificate.config,
        critical=False,
        lagging=False,
        memory=other,
    )
    rotated = made.memory.with_peak(
        peak_rate=made.memory.peak_rate + 7, peak_at=None, previous_peak=0
    )
    assert made.holds(
        d=d, config=made.certificate.config, critical=False, lagging=False, memory=rotated
    )


# -- the memory a hold vouches for (``Hold.vouches``) ---------------------------------------


def test_a_steady_pass_vouches_for_the_memory_it_remembers() -> None:
    steady = Steady()
    gave: dict[str, Any] = {}
    vouched_before: list[bool] = []
    held = rules.held

    def spy(ctx: rules.Context, **kwargs: Any) -> Any:
        d = kwargs["d"]
        made = certificate.held(d.uid)
        if made is not None and d.uid in gave:
            # The memory the last pass's hold gave is what this pass reads.
            vouched_before.append(made.vouches(gave[d.uid]))
        got = held(ctx, **kwargs)
        if got is not None:
            gave[d.uid] = got
        return got

    with mock.patch.object(rules, "held", spy):
        for i in range(4):  # two rotations of the peak
            steady.replay.step(advance_s=31.0, metrics=snapshot(1000.0 + i % 2))
    assert len(vouched_before) >= 3 * PARTITIONS
    assert all(vouched_before)
    for d in steady.observed():
        made = certificate.held(d.uid)
        assert made is not None
        memory = gave[d.uid]
        assert made.vouches(memory)
        assert adaptive_memory.durably_equal(memory, made.memory)
        assert adaptive_memory.as_written(memory) is memory


def test_a_new_hold_forgets_the_memory_vouched_for_the_one_it_replaces() -> None:
    steady = Steady()
    steady.step(snapshot(1000.0))
    d = steady.observed()[0]
    made = certificate.held(d.uid)
    assert made is not None
    vouched = made.memory.with_peak(peak_rate=1, peak_at=None, previous_peak=0)
    certificate.vouch(made, vouched)
    assert made.vouches(vouched)
    other = dataclasses.replace(made, memory=msgspec.structs.replace(made.memory, lent=True))
    certificate.hold(other)
    assert not other.vouches(vouched)
    # Nor is anything vouched for a hold no longer kept for its UID.
    certificate.vouch(made, vouched)
    assert not made.vouches(vouched)
    assert not other.vouches(vouched)


def test_a_hold_the_planner_found_not_standing_is_not_asked_again_by_the_rule() -> None:
    # In place (under Recreate a restart budget has the rule decide every instance).
    steady = Steady(update_mode="InPlaceOrRecreate")
    asked: list[str] = []
    held = rules.held

    def spy(ctx: rules.Context, **kwargs: Any) -> Any:
        got = held(ctx, **kwargs)
        asked.append(kwargs["d"].uid)
        assert got is None  # a rate no certificate admits
        return got

    # Twice the rate: the held peak is outside the hold's peaks and the rates it sizes
    # outside the certificate; the planner asks first, then the rule decides in full.
    with checked(), mock.patch.object(rules, "held", spy):
        steady.replay.step(advance_s=31.0, metrics=snapshot(2000.0))
    assert sorted(asked) == sorted(d.uid for d in steady.observed())  # once each
