"""A Deployment's spec is read once per spec, not once per version (``projections._spec_parts``).

Aspects tested:
* a version that changes only the status (what kube-controller-manager writes) shares the
  last version's compressed spec, containers and replicas;
* on any sequence of versions of Deployments (specs changed or not, UIDs re-used by a
  re-created object or not), every projection equals the one made without the kept
  specs;
* the kept specs are bounded: the oldest goes first, and a Deployment pushed out is read
  afresh, the same.
"""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube import projections
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR

BASE: dict[str, Any] = json.loads((Path(__file__).parent / "deployment.json").read_text())


def version(*, uid: str, cpu: str = "500m", replicas: int = 1, ready: int = 0) -> bytes:
    d = copy.deepcopy(BASE)
    d["metadata"]["uid"] = uid
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
