"""The typed (msgspec) way of loading a JSON timeline agrees with the careful way.

``simulating.load_timeline`` decodes a JSON timeline with typed wire structs in one C pass,
and falls back to the careful Python walk (which names the bad field) for anything the
types refuse. The two must never disagree.

Aspects tested (hypothesis):

* for random timelines, valid or not (partition ids in odd spellings, negative, boolean,
  null, huge or non-numeric values, unknown metrics and fields, "unavailable", other strings,
  bad durations): the typed way either gives exactly the careful way's steps (same values
  of the same types, same partition order) or declines (None); ``load_timeline`` gives
  the careful way's steps, or raises the careful way's message;
* the same for a step's ``cpu:`` (cores by Deployment name, held until the next step
  that gives it, or "unavailable"): NaN, negative and unknown names are kept for the
  learner to judge, as the operator keeps a Prometheus answer's;
* every valid timeline in the common spelling is taken by the typed way (so the fast path
  is the one that runs);
* the decoded steps and samples are not tracked by the cyclic garbage collector.
"""

import gc
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator import simulating

KINDS = ("production", "consumption", "offset")

good_value = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False),
)
odd_value = st.one_of(
    good_value,
    st.integers(min_value=-5, max_value=-1),
    st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just(10**400),
)
good_partition = st.integers(min_value=0, max_value=500).map(str)
odd_partition = st.one_of(
    good_partition,
    st.sampled_from(["01", "-1", "+1", " 1", "1.5", "abc", "١", "99999999999999999999999"]),
)


def sample(value: st.SearchStrategy[Any], kinds: st.SearchStrategy[str]) -> Any:
    return st.dictionaries(kinds, value, max_size=3)


good_metrics = st.one_of(
    st.just("unavailable"),
    st.none(),
    st.dictionaries(good_partition, sample(good_value, st.sampled_from(KINDS)), max_size=6),
)
odd_metrics = st.one_of(
    good_metrics,
    st.sampled_from(["down", 3, [1]]),
    st.dictionaries(
        odd_partition,
        st.one_of(sample(odd_value, st.sampled_from([*KINDS, "lag"])), st.integers(), st.none()),
        max_size=6,
    ),
)
good_cores = st.one_of(
    st.integers(min_value=0, max_value=64),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
good_instance = st.sampled_from(["orders-0", "orders-1", "orders-consumer-12", "x"])
good_cpu = st.one_of(st.just("unavailable"), st.dictionaries(good_instance, good_cores, max_size=4))
odd_cpu = st.one_of(
    good_cpu,
    st.none(),
    st.sampled_from(["down", 3, [1], True]),
    st.dictionaries(
        st.one_of(good_instance, st.text(max_size=3)),
        st.one_of(
            good_cores,
            st.floats(),  # NaN, negative, infinite: the learner's to judge
            st.booleans(),
            st.none(),
            st.text(max_size=3),
            st.just(10**400),
            st.integers(min_value=-(10**20), max_value=10**20),
        ),
        max_size=4,
    ),
)
good_advance = st.sampled_from(["0s", "10s", "1m30s", "250ms", "1h"])
odd_advance = st.one_of(good_advance, st.sampled_from(["-1s", "10", "x", "", "1d"]), st.just(10))


def step(
    advance: st.SearchStrategy[Any], metrics: st.SearchStrategy[Any], cpu: st.SearchStrategy[Any]
) -> Any:
    return st.fixed_dictionaries({}, optional={"advance": advance, "metrics": metrics, "cpu": cpu})


good_timeline = st.fixed_dictionaries(
    {"steps": st.lists(step(good_advance, good_metrics, good_cpu), max_size=8)}
)
odd_timeline = st.one_of(
    good_timeline,
    st.fixed_dictionaries(
        {"steps": st.lists(step(odd_advance, odd_metrics, odd_cpu), max_size=8)},
        optional={"extra": st.just(1)},
    ),
    st.fixed_dictionaries(
        {"steps": st.lists(st.fixed_dictionaries({"metrics": odd_metrics, "x": st.just(1)}))}
    ),
)


def shape(steps: list[simulating.Step]) -> list[Any]:
    """Every value with its type, in order: equality alone would take 1 for 1.0."""

    def values(mapping: Any) -> list[tuple[Any, str, str]]:
        return [(k, type(v).__name__, repr(v)) for k, v in mapping.items()]

    def cpu(usage: Any) -> Any:
        return None if usage is None else (usage.problem, values(usage.by_pod))

    return [
        (
            repr(s.advance_s),
            None
            if s.metrics is None
            else [
                *(values(getattr(s.metrics, kind)) for kind in KINDS),
                cpu(s.metrics.cpu_usage),
            ],
        )
        for s in steps
    ]


def text(doc: Any) -> str:
    # Python's json writes huge ints exactly and NaN/Infinity as tokens JSON lacks: both
    # must be handled (refused by the typed way, judged by the careful one).
    return json.dumps(doc)


def careful(doc_text: str) -> list[simulating.Step] | str:
    try:
        return simulating._load_checked(doc_text, source="t")
    except simulating.InputError as e:
        return str(e)


@settings(max_examples=400, deadline=None)
@given(odd_timeline)
def test_the_typed_way_gives_the_careful_ways_steps_or_declines(doc: Any) -> None:
    doc_text = text(doc)
    typed = simulating._load_typed(doc_text)
    expected = careful(doc_text)
    if typed is not None:
        assert not isinstance(expected, str), expected
        assert shape(typed) == shape(expected)
    try:
        loaded: list[simulating.Step] | str = simulating.load_timeline(doc_text, source="t")
    except simulating.InputError as e:
        loaded = str(e)
    if isinstance(expected, str):
        assert loaded == expected
    else:
        assert not isinstance(loaded, str)
        assert shape(loaded) == shape(expected)


@settings(max_examples=200, deadline=None)
@given(good_timeline)
def test_valid_timelines_in_the_common_spelling_take_the_typed_way(doc: Any) -> None:
    typed = simulating._load_typed(text(doc))
    assert typed is not None
    assert all(
        s.metrics is None or all(math.isfinite(v) for v in s.metrics.production.values())
        for s in typed
    )


def test_a_decoded_timeline_leaves_its_samples_to_reference_counting() -> None:
    """Millions of samples the cyclic garbage collector would scan again and again.

    A 10,000-step, 100-partition timeline holds a million decoded samples for the
    whole replay: tracked, every collection of the oldest generation walked them all
    (about a fifth of the replay's CPU). They hold numbers only, so they can be in no
    reference cycle.
    """
    text = json.dumps(
        {"steps": [{"advance": "10s", "metrics": {"0": {"production": 1.0, "offset": 2}}}]}
    )
    wire = simulating._timeline_decoder.decode(text)
    (step,) = wire.steps
    assert not gc.is_tracked(step)
    assert isinstance(step.metrics, dict)
    assert not any(gc.is_tracked(sample) for sample in step.metrics.values())


def test_steps_that_repeat_one_aliased_metrics_map_share_one_snapshot() -> None:
    """YAML's aliases repeat one map: one snapshot for all its steps, not one each (a
    1.3 MB file naming a map of 20,000 partitions in 2,000 steps expanded into some
    11 GB and died of a MemoryError); an equal map written out again is its own."""
    lines = ["steps:", "- advance: 0s", "  metrics: &m"]
    lines += [f'    "{p}": {{production: 1500, consumption: 1500, offset: 0}}' for p in range(500)]
    lines += ["- {advance: 31s, metrics: *m}"] * 2_000
    lines += ["- advance: 31s", "  metrics:"]
    lines += [f'    "{p}": {{production: 1500, consumption: 1500, offset: 0}}' for p in range(500)]
    steps = simulating.load_timeline("\n".join(lines) + "\n", source="t.yaml")
    snapshots = {id(step.metrics) for step in steps[:-1]}
    assert len(steps) == 2_002
    assert len(snapshots) == 1
    assert id(steps[-1].metrics) not in snapshots
    assert steps[-1].metrics == steps[0].metrics
