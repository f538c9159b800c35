"""``konsumerator score`` and ``simulate`` refuse a malformed Consumer file or timeline with
one line naming the file (and the field), exit 2, never a traceback.

The files are the user's YAML, not objects the apiserver validated: ``metadata``, a guest
ConfigMap's ``data`` and every field of a timeline can hold any YAML value (a date, a list,
NaN, a mapping with integer keys), and a key any string (a newline in it).

Aspects tested:

* Table: the malformed Consumer files a hostile review found (a date, a list, ``abc`` or
  NaN as ``metadata.generation``; annotations a list; a guest ConfigMap's ``data`` or
  ``consumer.yaml`` a list; a spec key with a newline) through both commands.
* Property (hypothesis): any YAML value at any field of the example Consumer, the guest
  ConfigMap example or a timeline, and any key next to the fields: the loader returns or
  raises ``InputError``, one line starting with the file's name, nothing else; and
  through the commands, exit 0, or exit 2 with one printable line and nothing on stdout.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from konsumerator.cli import main
from konsumerator.simulating import InputError, load_consumer, load_timeline

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "examples" / "traces" / "morning.csv"
TIMELINE = ROOT / "examples" / "timelines" / "incident.yaml"
HEAD = "apiVersion: konsumerator.lwolf.org/v1\nkind: Consumer\n"
GUEST = (
    "apiVersion: v1\nkind: ConfigMap\n"
    "metadata: {name: orders, annotations: {konsumerator.lwolf.org/managed: 'true'}}\n"
)
SPEC = "spec: {numPartitions: 1}\n"
FILES = {
    "generation a date": (
        HEAD + "metadata: {name: orders, generation: 2001-12-14}\n" + SPEC,
        "metadata.generation: must be a non-negative integer, got date",
    ),
    "generation a list": (
        HEAD + "metadata: {name: orders, generation: [1]}\n" + SPEC,
        "metadata.generation: must be a non-negative integer, got a list",
    ),
    "generation not a number": (
        HEAD + "metadata: {name: orders, generation: abc}\n" + SPEC,
        "metadata.generation: must be a non-negative integer, got str 'abc'",
    ),
    "generation NaN": (
        HEAD + "metadata: {name: orders, generation: .nan}\n" + SPEC,
        "metadata.generation: must be a non-negative integer, got float nan",
    ),
    "annotations a list": (
        HEAD + "metadata: {name: orders, annotations: [a, b]}\n" + SPEC,
        "metadata.annotations: must be a mapping of strings, got a list",
    ),
    "guest data a list": (GUEST + "data: [1]\n", "data: must be a mapping of strings"),
    "guest consumer.yaml a list": (
        GUEST + "data: {consumer.yaml: [1, 2]}\n",
        "data.consumer.yaml: must be a string (the ConsumerSpec as YAML), got a list",
    ),
    "a spec key with a newline": (
        HEAD + 'metadata: {name: orders}\nspec: {"we\\nird": 1}\n',
        "spec['we\\nird']: Extra inputs are not permitted",
    ),
    "JSON nested 100,000 deep": ('{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid"),
}


@pytest.mark.parametrize("command", ["score", "simulate"])
@pytest.mark.parametrize("case", list(FILES))
def test_a_malformed_consumer_file_is_one_line_naming_the_file_and_field(
    tmp_path: Path, command: str, case: str
) -> None:
    text, says = FILES[case]
    consumer = tmp_path / "consumer.yaml"
    consumer.write_text(text)
    second = TRACE if command == "score" else TIMELINE
    result = CliRunner().invoke(main, [command, str(consumer), str(second)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {consumer}: ")
    assert says in result.stderr


# -- any value anywhere ----------------------------------------------------------------------

SOURCE = "hostile.yaml"

# Keys of the files (so that a value lands beside a real field too) and a key with a newline.
KEY_NAMES = (
    "we\nird",
    "steps",
    "advance",
    "metrics",
    "cpu",
    "0",
    "production",
    "generation",
    "annotations",
    "uid",
    "namespace",
    "data",
    "consumer.yaml",
    "name",
    "kind",
)
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(KEY_NAMES),
    st.integers(min_value=-3, max_value=3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["unavailable", "1m", "-1m", "orders", "a\nb", "true", "false"]),
    st.dates(),
    st.datetimes(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)


def _places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in ``doc`` (the root too)."""
    found = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _places(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += _places(v, (*path, i))
    return found


def _with(doc: Any, path: tuple[Any, ...], value: Any, *, extra_key: Any) -> Any:
    """``doc`` with ``value`` at ``path``, or beside it under ``extra_key`` when given."""
    if not path:
        return value if extra_key is None else {extra_key: value}
    head, rest = path[0], path[1:]
    copy: Any = dict(doc) if isinstance(doc, dict) else list(doc)
    if not rest and extra_key is not None and isinstance(copy, dict):
        copy[extra_key] = value
        return copy
    copy[head] = _with(doc[head], rest, value, extra_key=extra_key if rest else None)
    return copy


def _dump(doc: Any) -> str:
    # Plain YAML (dates, NaN, integer keys), as a user may write it.
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _one_line_naming_the_file(load: Any, text: str) -> None:
    try:
        load(text, source=SOURCE)
    except InputError as e:
        problem = str(e)
        assert problem.startswith(f"{SOURCE}: "), problem
        assert problem.isprintable(), problem


CONSUMER_DOC = yaml.safe_load((ROOT / "examples" / "consumer.yaml").read_text())
GUEST_DOC = yaml.safe_load((ROOT / "examples" / "consumer-configmap.yaml").read_text())
GUEST_SPEC = yaml.safe_load(GUEST_DOC["data"]["consumer.yaml"])
CONSUMER_PLACES = [p for p in _places(CONSUMER_DOC) if len(p) <= 4]
GUEST_SPEC_PLACES = [p for p in _places(GUEST_SPEC) if len(p) <= 3]
TIMELINE_DOC = {
    "steps": [
        {"advance": "1m", "metrics": {"0": {"production": 1, "offset": 2}}, "cpu": {"a": 0.5}},
        {"advance": "30s", "metrics": "unavailable", "cpu": "unavailable"},
    ]
}
TIMELINE_PLACES = _places(TIMELINE_DOC)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    place=st.sampled_from(CONSUMER_PLACES),
    value=values,
    extra_key=st.one_of(st.none(), keys),
)
def test_any_value_anywhere_in_a_consumer_is_it_or_one_line(
    place: tuple[Any, ...], value: Any, extra_key: Any
) -> None:
    _one_line_naming_the_file(
        load_consumer, _dump(_with(CONSUMER_DOC, place, value, extra_key=extra_key))
    )


@SETTINGS
@given(
    place=st.sampled_from(GUEST_SPEC_PLACES),
    value=values,
    extra_key=st.one_of(st.none(), keys),
    where=st.sampled_from(["spec", "data", "data value", "annotations", "annotation"]),
)
def test_any_value_anywhere_in_a_guest_configmap_is_it_or_one_line(
    place: tuple[Any, ...], value: Any, extra_key: Any, where: str
) -> None:
    doc: dict[str, Any] = dict(GUEST_DOC)
    if where == "spec":
        doc["data"] = {"consumer.yaml": _dump(_with(GUEST_SPEC, place, value, extra_key=extra_key))}
    elif where == "data":
        doc["data"] = value
    elif where == "data value":
        doc["data"] = {"consumer.yaml" if extra_key is None else extra_key: value}
    elif where == "annotations":
        doc["metadata"] = {**doc["metadata"], "annotations": value}
    else:
        managed = {"konsumerator.lwolf.org/managed": "true"}
        doc["metadata"] = {**doc["metadata"], "annotations": {**managed, extra_key: value}}
    _one_line_naming_the_file(load_consumer, _dump(doc))


@SETTINGS
@given(
    place=st.sampled_from(TIMELINE_PLACES),
    value=values,
    extra_key=st.one_of(st.none(), keys),
    as_json=st.booleans(),
)
def test_any_value_anywhere_in_a_timeline_is_it_or_one_line(
    place: tuple[Any, ...], value: Any, extra_key: Any, as_json: bool
) -> None:
    doc = _with(TIMELINE_DOC, place, value, extra_key=extra_key)
    if as_json:
        try:
            text = json.dumps(doc, default=str)
        except (TypeError, ValueError):
            text = _dump(doc)  # keys JSON cannot hold
    else:
        text = _dump(doc)
    _one_line_naming_the_file(load_timeline, text)


def test_the_generators_reach_the_fields_that_broke() -> None:
    # The properties above are only as good as their places: they must include the fields
    # whose values raised out of the loaders.
    assert ("metadata", "name") in CONSUMER_PLACES
    assert ("spec", "autoscaler", "prometheus") in CONSUMER_PLACES
    assert ("steps", 0, "metrics", "0") in TIMELINE_PLACES
    assert ("steps", 1, "cpu") in TIMELINE_PLACES


# Through the command: exit 0, or exit 2 with one line and nothing on stdout.
SHORT_TRACE = (
    "t," + ",".join(map(str, range(10))) + "\n0" + ",100" * 10 + "\n61" + ",200" * 10 + "\n"
)


def _exit_0_or_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.rstrip("\n").isprintable(), result.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    place=st.sampled_from(CONSUMER_PLACES),
    value=values,
    extra_key=st.one_of(st.none(), keys),
    command=st.sampled_from(["score", "simulate"]),
)
def test_any_consumer_file_is_scored_simulated_or_one_line_and_exit_2(
    tmp_path_factory: pytest.TempPathFactory,
    place: tuple[Any, ...],
    value: Any,
    extra_key: Any,
    command: str,
) -> None:
    folder = tmp_path_factory.mktemp("files")
    consumer = folder / "consumer.yaml"
    consumer.write_text(_dump(_with(CONSUMER_DOC, place, value, extra_key=extra_key)))
    second = folder / "second"
    second.write_text(SHORT_TRACE if command == "score" else "steps:\n- advance: 1m\n")
    _exit_0_or_one_line([command, str(consumer), str(second)])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(place=st.sampled_from(TIMELINE_PLACES), value=values, extra_key=st.one_of(st.none(), keys))
def test_any_timeline_is_simulated_or_one_line_and_exit_2(
    tmp_path_factory: pytest.TempPathFactory, place: tuple[Any, ...], value: Any, extra_key: Any
) -> None:
    timeline = tmp_path_factory.mktemp("files") / "timeline.yaml"
    timeline.write_text(_dump(_with(TIMELINE_DOC, place, value, extra_key=extra_key)))
    _exit_0_or_one_line(["simulate", str(ROOT / "examples" / "consumer.yaml"), str(timeline)])
