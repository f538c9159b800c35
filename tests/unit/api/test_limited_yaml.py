"""Bounded YAML for guest-mode ConfigMaps, and what ``manifests.read`` makes of it.

Aspects tested:
* properties: anything within the bounds loads exactly as ``yaml.safe_load`` does; a
  document is refused exactly when its nesting exceeds ``max_depth`` or its values,
  each alias counted as what it repeats, exceed ``max_nodes``;
* the attacks of the hardening issue are refused fast with a message saying which bound:
  1,100 nested lists, an alias bomb, a document over the size limit, an integer Python
  cannot build;
* through ``manifests.read`` each becomes a ``SpecError`` naming ``data.consumer.yaml``;
  ``numPartitions`` above the CRD's maximum is refused naming the field;
* ``managed: "false"`` (and other false values) means not managed.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.api import limited_yaml, manifests
from konsumerator.api.v1 import MAX_PARTITIONS, SpecError
from konsumerator.domain import keys

CRD = Path(__file__).parents[3] / "src" / "konsumerator" / "api" / "crd.yaml"

keys_text = st.text(alphabet="abcxyz-_", min_size=1, max_size=6)
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | keys_text


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=4)
        | st.dictionaries(keys_text, inner, max_size=4)
        # The same object several times: safe_dump writes an anchor and aliases.
        | st.builds(lambda value, n: [value] * n, inner, st.integers(2, 4))
    )


documents = st.recursive(scalars, _containers, max_leaves=25)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def nodes_of(value: Any) -> int:
    """Values after alias expansion: shared objects count every time they appear."""
    if isinstance(value, list):
        return 1 + sum(nodes_of(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(1 + nodes_of(v) for v in value.values())  # a key is a value too
    return 1


@given(documents)
def test_anything_within_bounds_loads_as_safe_load_does(value: Any) -> None:
    text = yaml.safe_dump(value)
    assert limited_yaml.load(text) == yaml.safe_load(text) == value


@given(documents, st.integers(min_value=0, max_value=6))
def test_refused_exactly_when_nested_deeper_than_the_bound(value: Any, bound: int) -> None:
    text = yaml.safe_dump(value)
    if depth_of(value) > bound:
        with pytest.raises(limited_yaml.Rejected, match=f"nests more than {bound} levels"):
            limited_yaml.load(text, max_depth=bound)
    else:
        assert limited_yaml.load(text, max_depth=bound) == value


@given(documents, st.integers(min_value=1, max_value=80))
def test_refused_exactly_when_aliases_expand_past_the_bound(value: Any, bound: int) -> None:
    text = yaml.safe_dump(value)
    if nodes_of(value) > bound:
        with pytest.raises(limited_yaml.Rejected, match=f"more than {bound} values"):
            limited_yaml.load(text, max_nodes=bound)
    else:
        assert limited_yaml.load(text, max_nodes=bound) == value


ALIAS_BOMB = "\n".join(
    [
        "numPartitions: 1",
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 1_100 + "]" * 1_100, "not valid YAML (line 1): exceeded maximum nesting"),
        ("a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 80)), "nests more than 64"),
        (ALIAS_BOMB, "expands to more than 50000 values"),
        ("a: [" + ",".join(["1"] * 40_000) + "]", "more than the limit of 65536"),
        ("a: " + "9" * 5_000, "not valid YAML: Exceeds the limit (4300 digits)"),
        ("a: 2001-13-01", "not valid YAML: month must be in 1..12"),
        ("a: 1\n---\nb: 2\n", "not valid YAML (line 2)"),
    ],
    ids=["flow-1100", "block-80", "alias-bomb", "size", "huge-int", "bad-date", "two-docs"],
)
def test_attacks_are_refused_naming_the_bound(text: str, message: str) -> None:
    with pytest.raises(limited_yaml.Rejected) as info:
        limited_yaml.load(text)
    assert str(info.value).startswith(message) or message in str(info.value)


def test_aliases_used_as_meant_still_work() -> None:
    text = "base: &base {cpu: 1, memory: 2}\nsmall: *base\nbig: {<<: *base, cpu: 4}\n"
    assert limited_yaml.load(text) == {
        "base": {"cpu": 1, "memory": 2},
        "small": {"cpu": 1, "memory": 2},
        "big": {"cpu": 4, "memory": 2},
    }


# --- through manifests.read ---------------------------------------------------------


def configmap(text: str, *, managed: str = "true") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", "annotations": {keys.MANAGED: managed}},
        "data": {keys.GUEST_SPEC_KEY: text},
    }


def spec_text(**overrides: Any) -> str:
    spec: dict[str, Any] = {
        "numPartitions": 4,
        "name": "c",
        "namespace": "ns",
        "autoscaler": {"mode": "manual"},
        "deploymentTemplate": {
            "selector": {"matchLabels": {"app": "c"}},
            "template": {
                "metadata": {"labels": {"app": "c"}},
                "spec": {"containers": [{"name": "consumer", "image": "x"}]},
            },
        },
        **overrides,
    }
    return yaml.safe_dump(spec)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (spec_text() + "extra: " + "[" * 1_100 + "]" * 1_100 + "\n", "not valid YAML"),
        (
            spec_text().replace("image: x", "image: x\n        env: " + "[" * 70 + "]" * 70),
            "nests more than 64 levels",
        ),
        (
            spec_text() + ALIAS_BOMB.replace("numPartitions: 1\n", ""),
            "expands to more than 50000 values",
        ),
        (spec_text() + "# " + "x" * 70_000 + "\n", "bytes, more than the limit of 65536"),
    ],
    ids=["deep-1100", "deep-70", "alias-bomb", "size"],
)
def test_guest_specs_beyond_the_bounds_are_invalid_specs(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        manifests.read(configmap(text))
    [problem] = info.value.problems
    assert problem.startswith("data.consumer.yaml: ")
    assert message in problem


def _crd_maximum(field: str) -> int:
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    maximum: int = spec["properties"][field]["maximum"]
    return maximum


def test_guest_num_partitions_has_the_crds_maximum() -> None:
    maximum = _crd_maximum("numPartitions")
    assert maximum == MAX_PARTITIONS
    _, spec = manifests.read(configmap(spec_text(numPartitions=maximum)))
    assert spec.num_partitions == maximum
    with pytest.raises(SpecError) as info:
        manifests.read(configmap(spec_text(numPartitions=maximum + 1)))
    assert info.value.problems == [
        f"data.consumer.yaml.numPartitions: Input should be less than or equal to {maximum}"
    ]


@pytest.mark.parametrize(
    ("value", "managed"),
    [
        ("true", True),
        ("", True),
        ("yes", True),
        ("enabled", True),
        ("false", False),
        ("False", False),
        (" FALSE ", False),
        ("no", False),
        ("off", False),
        ("0", False),
    ],
)
def test_managed_annotation_values(value: str, managed: bool) -> None:
    assert manifests.is_managed({keys.MANAGED: value}) is managed
    if managed:
        manifests.read(configmap(spec_text(), managed=value))
    else:
        with pytest.raises(SpecError, match="is missing or false"):
            manifests.read(configmap(spec_text(), managed=value))


def test_without_the_managed_annotation_a_configmap_is_not_managed() -> None:
    assert not manifests.is_managed({})


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("a: 1\na: 2\n", "a"),
        ("a: 1\n'a': 1\n", "a"),
        ("x:\n  y: {b: 1, b: 2}\n", "x.y.b"),
        ("x:\n- {c: 1}\n- {c: 1, c: 3}\n", "x.1.c"),
        ("{a: 1, a: 1}", "a"),
    ],
    ids=["top", "quoted-same-key", "nested", "in-a-list", "flow"],
)
def test_a_key_given_twice_is_refused_with_its_path(text: str, path: str) -> None:
    with pytest.raises(limited_yaml.Rejected, match="is given twice") as info:
        limited_yaml.load(text)
    assert info.value.path == path


@given(st.dictionaries(keys_text, st.dictionaries(keys_text, scalars, min_size=1), min_size=1))
def test_a_repeated_key_is_refused_wherever_it_is_and_unique_keys_load(
    doc: dict[str, dict[str, Any]],
) -> None:
    text = yaml.safe_dump(doc, sort_keys=True)
    assert limited_yaml.load(text) == doc
    outer = sorted(doc)[-1]
    inner = sorted(doc[outer])[-1]
    # Repeat the innermost last key (the dump sorts keys, so it is the last line).
    repeated = text + "  " + yaml.safe_dump({inner: 0}, sort_keys=True)
    with pytest.raises(limited_yaml.Rejected) as info:
        limited_yaml.load(repeated)
    assert info.value.path == f"{outer}.{inner}"


def test_a_key_given_twice_in_a_guest_document_names_its_path() -> None:
    text = "numPartitions: 1\nautoscaler:\n  mode: a\n  mode: b\n"
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", "annotations": {keys.MANAGED: "true"}},
        "data": {keys.GUEST_SPEC_KEY: text},
    }
    with pytest.raises(SpecError) as info:
        manifests.read(configmap)
    assert info.value.problems[0].startswith(f"data.{keys.GUEST_SPEC_KEY}.autoscaler.mode: ")
