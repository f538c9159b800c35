"""``domain.drift``: the fields we set that an observed object no longer holds.

Aspects tested:
* table: a hand edit of an env value, an image, a replica count, a removed env var or
  container, a changed quantity is reported with its path; what the API server does to an
  applied body (defaults added, empty values dropped, quantities canonicalised, items of
  other managers added to keyed lists, their order) is not;
* properties (hypothesis): any intent matches itself, and itself as the server returns it
  (extra keys and list items, canonical quantities); changing any non-empty scalar we set
  is reported at its path.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from konsumerator.domain.drift import MISSING, differences
from konsumerator.domain.quantities import parse_quantity


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"template": {"spec": {"containers": list(containers), **spec}}}


def env(**values: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


OURS = pod(
    {
        "name": "consumer",
        "image": "registry.invalid/consumer:1",
        "imagePullPolicy": "",
        "env": env(KAFKA="k:9092", KONSUMERATOR_PARTITION="0,1", GOMAXPROCS="1", EMPTY=""),
        "resources": {"requests": {"cpu": "1000m", "memory": "0.5Gi"}, "limits": {"cpu": "1"}},
        "ports": [{"containerPort": 8080}],
    },
    terminationGracePeriodSeconds=0,
    hostNetwork=False,
)


def server_view() -> dict[str, Any]:
    """OURS as the API server stores it: defaults, canonical quantities, empties dropped,
    another manager's env var and sidecar, keyed items in another order."""
    seen = copy.deepcopy(OURS)
    spec = seen["template"]["spec"]
    del spec["hostNetwork"]  # false is omitted
    spec["dnsPolicy"] = "ClusterFirst"
    main = spec["containers"][0]
    main["imagePullPolicy"] = "IfNotPresent"
    main["terminationMessagePath"] = "/dev/termination-log"
    main["ports"][0]["protocol"] = "TCP"
    main["resources"] = {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "1"}}
    main["env"] = [
        {"name": "EMPTY"},
        {"name": "INJECTED", "value": "by a webhook"},
        *env(GOMAXPROCS="1", KONSUMERATOR_PARTITION="0,1", KAFKA="k:9092"),
    ]
    spec["containers"].insert(0, {"name": "istio-proxy", "image": "proxy"})
    return seen


def edited(change: Any) -> dict[str, Any]:
    seen = server_view()
    change(seen["template"]["spec"])
    return seen


def main(spec: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in spec["containers"] if c["name"] == "consumer")
    return found


def set_env(spec: dict[str, Any], name: str, value: str) -> None:
    next(e for e in main(spec)["env"] if e["name"] == name)["value"] = value


def drop_env(spec: dict[str, Any], name: str) -> None:
    main(spec)["env"] = [e for e in main(spec)["env"] if e["name"] != name]


CONTAINER = "spec.template.spec.containers[consumer]"


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(server_view(), [], id="as-the-server-returns-it"),
        pytest.param(
            edited(lambda s: set_env(s, "KONSUMERATOR_PARTITION", "0,1,2,3")),
            [f"{CONTAINER}.env[KONSUMERATOR_PARTITION].value"],
            id="partition-env-edited",
        ),
        pytest.param(
            edited(lambda s: main(s).update(image="evil:2")),
            [f"{CONTAINER}.image"],
            id="image-edited",
        ),
        pytest.param(
            edited(lambda s: drop_env(s, "KONSUMERATOR_PARTITION")),
            [f"{CONTAINER}.env[KONSUMERATOR_PARTITION]"],
            id="env-var-removed",
        ),
        pytest.param(
            edited(lambda s: main(s)["resources"]["requests"].update(cpu="1500m")),
            [f"{CONTAINER}.resources.requests.cpu"],
            id="quantity-changed",
        ),
        pytest.param(
            edited(lambda s: main(s)["resources"].pop("limits")),
            [f"{CONTAINER}.resources.limits.cpu"],
            id="limits-removed",
        ),
        pytest.param(
            edited(lambda s: s.update(containers=[c for c in s["containers"] if c is not main(s)])),
            ["spec.template.spec.containers[consumer]"],
            id="container-removed",
        ),
        pytest.param(
            edited(lambda s: s.update(terminationGracePeriodSeconds=30)),
            ["spec.template.spec.terminationGracePeriodSeconds"],
            id="zero-changed",
        ),
        pytest.param(
            edited(lambda s: s.update(hostNetwork=True)),
            ["spec.template.spec.hostNetwork"],
            id="false-changed",
        ),
        pytest.param(
            edited(lambda s: main(s).update(ports=[{"containerPort": 9090, "protocol": "TCP"}])),
            [f"{CONTAINER}.ports[0]"],
            id="unnamed-item-changed",
        ),
    ],
)
def test_differences_name_what_was_changed(observed: Any, expected: list[str]) -> None:
    assert differences(intent=OURS, observed=observed, path="spec") == expected


def test_a_missing_object_differs_in_everything_non_empty() -> None:
    found = differences(intent={"a": "x", "b": "", "c": {"d": 1}}, observed=MISSING, path="m")
    assert found == ["m.a", "m.c.d"]


def test_atomic_scalar_lists_compare_whole() -> None:
    assert differences(intent={"args": ["a", "b"]}, observed={"args": ["a", "b"]}, path="s") == []
    assert differences(intent={"args": ["a", "b"]}, observed={"args": ["b", "a"]}, path="s") == [
        "s.args"
    ]


# -- properties -----------------------------------------------------------------------------

names = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
scalars = st.one_of(
    st.text(min_size=1, max_size=8),
    st.integers(min_value=1, max_value=10**6),
    st.just(True),
)


def json_like(depth: int = 3) -> st.SearchStrategy[Any]:
    if depth == 0:
        return scalars
    inner = json_like(depth - 1)
    named_items = st.dictionaries(names, inner, max_size=3).flatmap(
        lambda body: st.builds(lambda n: {**body, "name": n}, names)
    )
    return st.one_of(
        scalars,
        st.dictionaries(names, inner, min_size=1, max_size=4),
        st.lists(named_items, min_size=1, max_size=3, unique_by=lambda d: d["name"]),
        st.lists(scalars, min_size=1, max_size=3),
    )


@given(json_like())
def test_an_intent_matches_itself(intent: Any) -> None:
    assert differences(intent=intent, observed=copy.deepcopy(intent), path="x") == []


def _as_served(value: Any) -> Any:
    """What a server could return for ``value``: an extra key in every mapping, an extra
    item in every list of mappings, reversed keyed lists."""
    if isinstance(value, dict):
        served = {k: _as_served(v) for k, v in value.items()}
        served["zzz-added-by-server"] = "default"
        return served
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        return [{"name": "~other-manager"}, *(_as_served(i) for i in reversed(value))]
    return value


@given(json_like())
def test_what_the_server_adds_is_not_a_difference(intent: Any) -> None:
    assert differences(intent=intent, observed=_as_served(intent), path="x") == []


@given(
    st.integers(min_value=1, max_value=10**9),
    st.sampled_from(["m", "", "k", "Mi", "Gi", "M", "G"]),
)
def test_quantities_compare_by_value(amount: int, suffix: str) -> None:
    text = f"{amount}{suffix}"
    canonical = parse_quantity(text).canonical()
    intent = {"resources": {"limits": {"memory": text}}}
    assert (
        differences(
            intent=intent, observed={"resources": {"limits": {"memory": canonical}}}, path="c"
        )
        == []
    )
    bigger = parse_quantity(f"{amount + 1}{suffix}").canonical()
    assert differences(
        intent=intent, observed={"resources": {"limits": {"memory": bigger}}}, path="c"
    ) == ["c.resources.limits.memory"]


def _leaf_paths(value: Any, path: str) -> list[tuple[str, list[Any]]]:
    """(report path, access keys) of every scalar leaf reachable without a scalar list."""
    found: list[tuple[str, list[Any]]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            for p, keys in _leaf_paths(v, f"{path}.{k}"):
                found.append((p, [k, *keys]))
    elif isinstance(value, list) and all(isinstance(i, dict) for i in value):
        for i, item in enumerate(value):
            for p, keys in _leaf_paths(item, f"{path}[{item['name']}]"):
                found.append((p, [i, *keys]))
    elif not isinstance(value, list):
        found.append((path, []))
    return found


@given(json_like(), st.data())
def test_a_changed_scalar_is_reported_at_its_path(intent: Any, data: st.DataObject) -> None:
    leaves = [(p, k) for p, k in _leaf_paths(intent, "x") if k and k[-1] != "name"]
    assume(leaves)
    path, keys = data.draw(st.sampled_from(leaves))
    observed = copy.deepcopy(intent)
    holder = observed
    for key in keys[:-1]:
        holder = holder[key]
    old = holder[keys[-1]]
    holder[keys[-1]] = "changed" if old != "changed" else "changed again"
    assert differences(intent=intent, observed=observed, path="x") == [path]
