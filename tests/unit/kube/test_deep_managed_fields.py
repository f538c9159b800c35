"""``metadata.managedFields`` nested past the decoder's limit hides no object.

Anyone who may update an object may write a managedFields entry whose ``fieldsV1`` nests
thousands of levels, on kinds the API server types (Deployments, Leases) as on Consumers;
the API server stores it. No projection reads managedFields, but the decoder recursed to
skip it and gave up: a Lease read that way ended the leader, a Deployment's watch events
were skipped (its cache entry went stale).

Aspects tested (no cluster):

* ``without_managed_fields`` removes exactly ``metadata.managedFields`` and keeps every
  other byte of the object (property, over generated objects); it says None when there is
  nothing to remove or the document is no object;
* a Deployment, a Lease and a Consumer with a 3,000-level managedFields entry decode to
  what they decode to without it (one object, a list page, a watch event); a Consumer
  whose spec is too deep as well is still quarantined;
* a write's answer with such an entry (or a spec too deep) still gives the written
  object's identity (``writing._written``).
"""

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.kube import writing
from konsumerator.kube.projections import (
    CUSTOM_OBJECT_PROJECTOR,
    DEPLOYMENT_PROJECTOR,
    LEASE_PROJECTOR,
    without_managed_fields,
)
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.kube.watching import ListWatch

LEVELS = 3_000
PLACEHOLDER = "@@deep@@"
QUOTED = json.dumps(PLACEHOLDER).encode()
DEEP = b'{"f:metadata":' + b'{"f:a":' * LEVELS + b"{}" + b"}" * LEVELS + b"}"
BASE: dict[str, Any] = json.loads((Path(__file__).parent / "deployment.json").read_text())


def with_deep_managed_fields(obj: dict[str, Any]) -> bytes:
    """``obj`` as JSON with a managedFields entry ``LEVELS`` deep (built as bytes:
    ``json.dumps`` itself recurses out past ~1,000 levels)."""
    meta = dict(obj["metadata"])
    meta["managedFields"] = [
        {"manager": "konsumerator", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
        {"manager": "hostile", "operation": "Update", "fieldsV1": PLACEHOLDER},
    ]
    text = json.dumps({**obj, "metadata": meta}).encode().replace(QUOTED, DEEP, 1)
    assert text.count(b'"f:a"') == LEVELS
    return text


def lease() -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "konsumerator-global", "namespace": "ns", "resourceVersion": "9"},
        "spec": {
            "holderIdentity": "op-0_1a2b",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-12-01T01:00:00.000000Z",
            "renewTime": "2026-12-01T01:02:00.000000Z",
            "leaseTransitions": 3,
        },
    }


def consumer() -> dict[str, Any]:
    """A Consumer whose template holds ``PLACEHOLDER``, for the test to replace."""
    return {
        "apiVersion": "konsumerator.lwolf.org/v1",
        "kind": "Consumer",
        "metadata": {"name": "c", "namespace": "ns", "uid": "u-1", "generation": 2},
        "spec": {"numPartitions": 2, "deploymentTemplate": {"x": PLACEHOLDER}},
        "status": {"running": 2},
    }


def test_removes_managed_fields_and_keeps_every_other_byte() -> None:
    raw = with_deep_managed_fields(BASE)
    slim = without_managed_fields(raw)
    assert slim is not None
    assert json.loads(slim) == BASE
    assert without_managed_fields(slim) is None
    assert without_managed_fields(b"[1, 2]") is None
    assert without_managed_fields(b'{"spec": {}}') is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    meta=st.dictionaries(st.text(max_size=8), JSON, max_size=4),
    rest=st.dictionaries(st.text(max_size=8).filter(lambda k: k != "metadata"), JSON, max_size=3),
    managed=JSON,
)
def test_drops_exactly_managed_fields_of_any_object(
    meta: dict[str, Any], rest: dict[str, Any], managed: Any
) -> None:
    meta.pop("managedFields", None)
    raw = json.dumps({**rest, "metadata": {**meta, "managedFields": managed}}).encode()
    slim = without_managed_fields(raw)
    assert slim is not None
    assert json.loads(slim) == {**rest, "metadata": meta}


def test_a_deployment_with_deep_managed_fields_decodes_as_without_them() -> None:
    expected = DEPLOYMENT_PROJECTOR.decode(json.dumps(BASE).encode())
    raw = with_deep_managed_fields(BASE)
    assert DEPLOYMENT_PROJECTOR.decode(raw) == expected
    page = b'{"metadata":{"resourceVersion":"7"},"items":[' + raw + b"]}"
    assert DEPLOYMENT_PROJECTOR.decode_page(page).items == [expected]


async def test_a_deployment_watch_event_with_deep_managed_fields_is_delivered() -> None:
    raw = with_deep_managed_fields(BASE)
    stream = b'{"type":"MODIFIED","object":' + raw + b"}\n"
    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=stream)),
        base_url="https://k8s",
    )
    source = ListWatch(
        client=ApiClient(http=http), resource=DEPLOYMENTS, projector=DEPLOYMENT_PROJECTOR
    )
    got = [e async for e in source.watch(resource_version="1", timeout_seconds=30)]
    assert [e.object for e in got] == [DEPLOYMENT_PROJECTOR.decode(json.dumps(BASE).encode())]


def test_a_lease_with_deep_managed_fields_decodes_as_without_them() -> None:
    expected = LEASE_PROJECTOR.decode(json.dumps(lease()).encode())
    assert LEASE_PROJECTOR.decode(with_deep_managed_fields(lease())) == expected
    assert expected.holder_identity == "op-0_1a2b"


def test_a_consumer_with_deep_managed_fields_is_not_quarantined() -> None:
    raw = with_deep_managed_fields(consumer()).replace(QUOTED, b"{}", 1)
    obj = CUSTOM_OBJECT_PROJECTOR.decode(raw)
    assert obj.undecodable is None
    assert obj.spec["numPartitions"] == 2


def test_a_consumer_whose_spec_is_too_deep_as_well_is_still_quarantined() -> None:
    raw = with_deep_managed_fields(consumer()).replace(QUOTED, b"[" * 1_100 + b"]" * 1_100, 1)
    obj = CUSTOM_OBJECT_PROJECTOR.decode(raw)
    assert obj.undecodable is not None
    assert "spec" in obj.undecodable
    assert (obj.name, obj.uid, obj.generation) == ("c", "u-1", 2)


@pytest.mark.parametrize("deep_spec", [False, True])
def test_a_writes_answer_too_deep_to_decode_still_gives_the_identity(deep_spec: bool) -> None:
    obj = {**BASE, "metadata": {**BASE["metadata"], "uid": "u-9", "resourceVersion": "77"}}
    raw = with_deep_managed_fields(obj)
    if deep_spec:
        raw = raw.replace(b'"spec": {', b'"spec": {"x": ' + b"[" * 1_100 + b"]" * 1_100 + b", ", 1)
    written = writing._written(raw)
    assert (written.name, written.uid, written.resource_version) == (
        BASE["metadata"]["name"],
        "u-9",
        "77",
    )
