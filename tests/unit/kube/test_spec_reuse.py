"""A Deployment's spec is read once per spec, not once per version (``projections._spec_parts``).

Aspects tested:
* a version that changes only the status (what kube-controller-manager writes) shares the
  last version's compressed spec, containers and replicas;
* on any sequence of versions of Deployments (specs changed or not, UIDs re-used by a
  re-created object or not), every projection equals the one made without the kept
  specs;
* the kept specs are bounded: the oldest goes first, and a Deployment pushed out is read
  afresh, the same;
* each spec is compressed against its owner's dictionary (the first spec seen of one of
  the owner's Deployments): whatever the specs and owners, ``spec()`` gives back exactly
  the spec the server sent (hypothesis), a sibling's spec shares the dictionary and
  compresses to a fraction of one compressed alone;
* the dictionaries are bounded, the oldest owner's first, and a projection made against
  a dictionary pushed out still reads its spec.
"""

import copy
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube import projections
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR

BASE: dict[str, Any] = json.loads((Path(__file__).parent / "deployment.json").read_text())


def version(
    *, uid: str, cpu: str = "500m", replicas: int = 1, ready: int = 0, owner: str | None = None
) -> bytes:
    d = copy.deepcopy(BASE)
    d["metadata"]["uid"] = uid
    if owner is not None:
        d["metadata"]["ownerReferences"][0]["uid"] = owner
    d["spec"]["replicas"] = replicas
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = cpu
    d["status"]["readyReplicas"] = ready
    return json.dumps(d).encode()


def fresh(raw: bytes) -> ObservedDeployment:
    """The projection without any kept spec."""
    kept = dict(projections._last_specs)
    projections._last_specs.clear()
    try:
        return DEPLOYMENT_PROJECTOR.decode(raw)
    finally:
        projections._last_specs.clear()
        projections._last_specs.update(kept)


def same(a: ObservedDeployment, b: ObservedDeployment) -> bool:
    return a == b and a.spec() == b.spec() and a.spec_json == b.spec_json


def test_a_status_only_version_shares_the_last_spec() -> None:
    first = DEPLOYMENT_PROJECTOR.decode(version(uid="status-only", ready=0))
    second = DEPLOYMENT_PROJECTOR.decode(version(uid="status-only", ready=1))
    assert second.ready_replicas == 1
    assert second.spec_json is first.spec_json
    assert second.containers is first.containers
    assert same(second, fresh(version(uid="status-only", ready=1)))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", ""]),
            st.sampled_from(["500m", "1", "1000m", "2"]),
            st.integers(min_value=0, max_value=2),
            st.integers(min_value=0, max_value=2),
        ),
        max_size=12,
    )
)
def test_every_projection_is_the_one_made_without_kept_specs(
    versions: list[tuple[str, str, int, int]],
) -> None:
    projections._last_specs.clear()
    for uid, cpu, replicas, ready in versions:
        raw = version(uid=uid, cpu=cpu, replicas=replicas, ready=ready)
        observed = DEPLOYMENT_PROJECTOR.decode(raw)
        assert same(observed, fresh(raw))
        assert observed.replicas == replicas
        assert observed.containers[0].requests["cpu"] == cpu


def test_the_kept_specs_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projections, "_LAST_SPECS", 3)
    projections._last_specs.clear()
    first = DEPLOYMENT_PROJECTOR.decode(version(uid="u0"))
    for n in range(1, 5):
        DEPLOYMENT_PROJECTOR.decode(version(uid=f"u{n}"))
    assert list(projections._last_specs) == ["u2", "u3", "u4"]
    again = DEPLOYMENT_PROJECTOR.decode(version(uid="u0"))
    assert again.spec_json is not first.spec_json
    assert same(again, first)
    assert len(projections._last_specs) == 3


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["owner-1", "owner-2", None]),
            st.dictionaries(st.text(max_size=6), JSON, max_size=4),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_every_spec_reads_back_whatever_its_owners_dictionary(
    specs: list[tuple[str | None, dict[str, Any]]],
) -> None:
    projections._dictionaries.clear()
    projections._last_specs.clear()
    for n, (owner, spec) in enumerate(specs):
        d = copy.deepcopy(BASE)
        d["metadata"]["uid"] = f"uid-{n}"
        d["metadata"]["ownerReferences"] = (
            [] if owner is None else [{"uid": owner, "controller": True}]
        )
        d["spec"] = spec
        observed = DEPLOYMENT_PROJECTOR.decode(json.dumps(d).encode())
        assert observed.spec() == spec


def test_a_siblings_spec_shares_the_dictionary_and_compresses_to_a_fraction() -> None:
    projections._dictionaries.clear()
    first = DEPLOYMENT_PROJECTOR.decode(version(uid="first", owner="o"))
    sibling = DEPLOYMENT_PROJECTOR.decode(version(uid="sibling", cpu="700m", owner="o"))
    assert sibling.spec_dictionary is first.spec_dictionary
    assert sibling.spec_json is not None
    alone = zlib.compress(json.dumps(BASE["spec"]).encode(), 1)
    assert len(sibling.spec_json) * 4 < len(alone), (len(sibling.spec_json), len(alone))
    assert sibling.containers[0].requests["cpu"] == "700m"
    assert sibling.spec() == json.loads(version(uid="sibling", cpu="700m", owner="o"))["spec"]


def test_the_dictionaries_are_bounded_oldest_owner_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projections, "_DICTIONARIES", 2)
    projections._dictionaries.clear()
    first = DEPLOYMENT_PROJECTOR.decode(version(uid="d0", owner="o0"))
    for n in range(1, 4):
        DEPLOYMENT_PROJECTOR.decode(version(uid=f"d{n}", cpu=f"{n}", owner=f"o{n}"))
    assert list(projections._dictionaries) == ["o2", "o3"]
    assert first.spec() == json.loads(version(uid="d0", owner="o0"))["spec"]
    again = DEPLOYMENT_PROJECTOR.decode(version(uid="d4", cpu="5", owner="o0"))
    assert again.spec_dictionary is not first.spec_dictionary
    assert again.spec() == json.loads(version(uid="d4", cpu="5", owner="o0"))["spec"]
