"""``simulate``'s and ``score``'s YAML loaders refuse what they cannot build, by name.

A plain scalar the YAML resolver types (an integer, a float, a timestamp) is built
by Python afterwards, which can refuse it: an integer of more than 4,300 digits,
a timestamp of month 13 or day 30 of February. Those raised ``ValueError`` out of
the command (a traceback, exit status 1) instead of the one line naming the file.

Property: whatever such a scalar, wherever it is in the timeline or the Consumer
file, ``load_timeline`` and ``load_consumer`` return or raise ``InputError``
naming the file, nothing else.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.simulating import InputError, load_consumer, load_timeline

SOURCE = "hostile.yaml"

digits = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)
timestamps = st.builds(
    lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
    st.integers(min_value=0, max_value=9999),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
)
floats = st.builds(lambda a, e: f"{a}.5e{e}", st.integers(-9, 9), st.integers(-999, 999))
scalars = st.one_of(digits, timestamps, floats, st.sampled_from([".nan", "-.inf", "0x" + "f" * 90]))

timeline_places = [
    "steps:\n- advance: 1m\n  metrics: {{'0': {{production: {v}}}}}\n",
    "steps:\n- advance: 1m\n  cpu: {{orders-consumer-0: {v}}}\n",
    "steps:\n- advance: 1m\n  note: {v}\n",
    "steps: [{v}]\n",
    "{v}\n",
]
consumer_places = [
    "kind: Consumer\nspec: {{numPartitions: {v}}}\n",
    "kind: Consumer\nmetadata: {{name: {v}}}\n",
    "kind: Consumer\nmetadata: {{labels: {{a: {v}}}}}\nspec: {{}}\n",
    "{v}\n",
]


def refused_by_name(load, text: str) -> None:  # type: ignore[no-untyped-def]
    problem = ""
    try:
        load(text, source=SOURCE)
    except InputError as e:
        problem = str(e)
    assert not problem or (problem.startswith(f"{SOURCE}: ") and "\n" not in problem), problem


@given(scalar=scalars, place=st.sampled_from(timeline_places))
def test_a_timeline_scalar_python_cannot_build_is_an_input_error(scalar: str, place: str) -> None:
    refused_by_name(load_timeline, place.format(v=scalar))


@given(scalar=scalars, place=st.sampled_from(consumer_places))
def test_a_consumer_scalar_python_cannot_build_is_an_input_error(scalar: str, place: str) -> None:
    refused_by_name(load_consumer, place.format(v=scalar))


@pytest.mark.parametrize(
    ("load", "text", "says"),
    [
        (load_timeline, "steps: [" + "9" * 5000 + "]\n", "not valid YAML: Exceeds the limit"),
        (load_timeline, "steps:\n- at: 2026-13-01\n", "not valid YAML: month must be in 1..12"),
        (load_consumer, "kind: Consumer\nspec: {n: 2026-02-30}\n", "not valid YAML: day is out"),
    ],
)
def test_the_message_says_what_python_could_not_build(load, text: str, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=f"^{SOURCE}: {says}"):
        load(text, source=SOURCE)
