"""The bounded JSON scanner that splits what msgspec cannot decode.

Aspects tested:
* ``nesting_depth`` equals the nesting of any JSON value (strings full of brackets,
  quotes and backslashes included), and stops counting just past its limit;
* ``children``/``members``/``elements`` return exactly the top-level parts of any
  object or array, whatever the formatting;
* both work at depths where msgspec (and ``json``) raise ``RecursionError``.
"""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.kube import scanning

# Strings that stress the scanner: brackets, quotes, escapes, non-ASCII.
tricky_text = st.text(alphabet=st.sampled_from(list('[]{}",:\\/ aé\n\t\x00\u2028')), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def encodings(value: Any) -> list[bytes]:
    return [
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, indent=2).encode(),
        msgspec.json.encode(value),
    ]


@given(json_values)
def test_depth_is_the_nesting_of_any_json_value(value: Any) -> None:
    for data in encodings(value):
        assert scanning.nesting_depth(data, limit=100) == depth_of(value)


@given(json_values, st.integers(min_value=0, max_value=5))
def test_depth_stops_counting_just_past_the_limit(value: Any, limit: int) -> None:
    depth = scanning.nesting_depth(json.dumps(value).encode(), limit=limit)
    assert depth == min(depth_of(value), limit + 1)


@given(st.dictionaries(tricky_text, json_values, max_size=5))
def test_members_are_the_top_level_parts_of_any_object(value: dict[str, Any]) -> None:
    for data in encodings(value):
        parts = scanning.members(data)
        assert {k: json.loads(v) for k, v in parts.items()} == value


@given(st.lists(json_values, max_size=5))
def test_elements_are_the_top_level_parts_of_any_array(value: list[Any]) -> None:
    for data in encodings(value):
        assert [json.loads(v) for v in scanning.elements(data)] == value


@pytest.mark.parametrize("levels", [1_100, 100_000])
def test_deep_documents_are_split_where_decoders_recurse_out(levels: int) -> None:
    deep = b"[" * levels + b"]" * levels
    data = b'{"kind": "X", "spec": {"t": ' + deep + b'}, "status": {"n": 1}}'
    with pytest.raises(RecursionError):
        msgspec.json.decode(data)
    parts = scanning.members(data)
    assert sorted(parts) == ["kind", "spec", "status"]
    assert json.loads(parts["status"]) == {"n": 1}
    assert scanning.nesting_depth(data, limit=64) == 65
    assert scanning.nesting_depth(parts["spec"], limit=1_200) == min(levels + 1, 1_201)


def test_empty_containers_have_no_parts() -> None:
    assert scanning.members(b"{}") == {}
    assert scanning.elements(b" [ ] ") == []
    assert scanning.elements(b"null") == []
