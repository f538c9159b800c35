"""One undecodable object affects only itself: LIST and WATCH quarantine it.

Aspects tested (httpx2's MockTransport, no cluster):
* a LIST page holding a Consumer nested ~1,100 levels (msgspec's RecursionError) or
  just past ``MAX_DEPTH`` still yields every good Consumer, the page's resourceVersion
  and continue token, and the bad one as a quarantined projection with its identity,
  its readable status and the reason naming ``spec``; a reflector syncs its store;
* a WATCH stream with such an object goes on: the bad event is a quarantined object,
  the events after it arrive;
* identity is read even when the metadata itself is too deep to decode
  (``managedFields`` mirrors the spec's nesting);
* kinds without a quarantine (Deployments) leave the bad object out and keep the rest;
* property: a Consumer is quarantined exactly when some part nests more than
  ``MAX_DEPTH`` levels, and decodes unchanged otherwise.
"""

import asyncio
import json
from typing import Any

import httpx2
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.kube.projections import (
    CUSTOM_OBJECT_PROJECTOR,
    DEPLOYMENT_PROJECTOR,
    MAX_DEPTH,
    DeploymentWire,
    Projector,
    UndecodableObject,
)
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import CONSUMERS, DEPLOYMENTS
from konsumerator.kube.watching import ListWatch
from konsumerator.runtime.ports import EventType
from konsumerator.runtime.reflecting import Reflector
from konsumerator.runtime.stores import ObjectKey, Store

PLACEHOLDER = '"@@deep@@"'


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def consumer(name: str, *, rv: str = "5", deep: int = 0, deep_meta: int = 0) -> bytes:
    """A Consumer as JSON bytes; ``deep`` nests a list that many levels in its template
    (built as bytes: ``json.dumps`` itself recurses out past ~1,000 levels)."""
    obj: dict[str, Any] = {
        "apiVersion": "konsumerator.lwolf.org/v1",
        "kind": "Consumer",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "generation": 4,
            "annotations": {"note": "[[[ not structure ]]]"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": PLACEHOLDER}}],
        },
        "spec": {"numPartitions": 2, "deploymentTemplate": {"x": PLACEHOLDER}},
        "status": {"running": 2, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    text = json.dumps(obj).encode()
    text = text.replace(json.dumps(PLACEHOLDER).encode(), nested(deep_meta) or b"{}", 1)
    return text.replace(json.dumps(PLACEHOLDER).encode(), nested(deep) or b"{}", 1)


def page(*items: bytes, rv: str = "100", token: str = "") -> bytes:
    meta = json.dumps({"resourceVersion": rv, "continue": token}).encode()
    return b'{"kind":"List","metadata":' + meta + b',"items":[' + b",".join(items) + b"]}"


def client_with(handler: Any) -> ApiClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="https://k8s")
    return ApiClient(http=http)


@pytest.mark.parametrize("levels", [1_100, MAX_DEPTH + 1])
def test_a_too_deep_consumer_is_quarantined_and_the_page_still_decodes(levels: int) -> None:
    body = page(consumer("a"), consumer("bad", deep=levels), consumer("b"), token="next")
    decoded = CUSTOM_OBJECT_PROJECTOR.decode_page(body)
    assert (decoded.resource_version, decoded.continue_token) == ("100", "next")
    by_name = {o.name: o for o in decoded.items}
    assert sorted(by_name) == ["a", "b", "bad"]
    assert by_name["a"].undecodable is None
    assert by_name["a"].spec["numPartitions"] == 2
    bad = by_name["bad"]
    assert bad.undecodable is not None
    assert bad.undecodable.startswith("spec nests more than 64 levels")
    assert (bad.namespace, bad.uid, bad.resource_version, bad.generation) == (
        "ns",
        "uid-bad",
        "5",
        4,
    )
    assert bad.annotations == {"note": "[[[ not structure ]]]"}
    assert bad.spec == {}
    assert bad.status["running"] == 2


def test_identity_is_read_when_the_metadata_is_too_deep_as_well() -> None:
    bad = CUSTOM_OBJECT_PROJECTOR.decode(consumer("bad", deep=1_100, deep_meta=1_100))
    assert (bad.name, bad.namespace, bad.uid, bad.generation) == ("bad", "ns", "uid-bad", 4)
    assert (
        bad.undecodable
        == "metadata and spec nest more than 64 levels of JSON, the operator's limit"
    )


def test_a_kind_without_quarantine_leaves_the_bad_object_out() -> None:
    good = {"metadata": {"name": "d-0", "namespace": "ns", "resourceVersion": "3"}}
    deep = b'{"metadata":{"name":"d-1","namespace":"ns"},"spec":{"x":' + nested(1_100) + b"}}"
    decoded = DEPLOYMENT_PROJECTOR.decode_page(page(json.dumps(good).encode(), deep))
    assert [d.name for d in decoded.items] == ["d-0"]
    with pytest.raises(UndecodableObject, match="ns/d-1: is nested too deeply to decode"):
        DEPLOYMENT_PROJECTOR.decode(deep)


async def test_a_reflector_syncs_its_store_with_a_bad_consumer_listed() -> None:
    watching = asyncio.Event()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.params.get("watch"):
            # The reflector watches only after its LIST replaced the store.
            watching.set()
            await asyncio.Event().wait()  # a quiet watch: nothing happens
        return httpx2.Response(200, content=page(consumer("a"), consumer("bad", deep=1_100)))

    store: Store[Any] = Store()
    source = ListWatch(
        client=client_with(handler), resource=CONSUMERS, projector=CUSTOM_OBJECT_PROJECTOR
    )
    reflector = Reflector(name="consumers", source=source, store=store, timeout_seconds=1)
    task = asyncio.create_task(reflector.run())
    try:
        async with asyncio.timeout(10):
            await watching.wait()
    finally:
        task.cancel()
    assert store.has_synced
    assert store.get(ObjectKey("ns", "a")).undecodable is None
    assert store.get(ObjectKey("ns", "bad")).undecodable is not None


async def test_a_watch_goes_on_past_an_undecodable_object() -> None:
    def event(kind: str, obj: bytes) -> bytes:
        return b'{"type":"' + kind.encode() + b'","object":' + obj + b"}\n"

    stream = b"".join(
        [
            event("ADDED", consumer("bad", rv="101", deep=1_100)),
            event("MODIFIED", consumer("a", rv="102")),
            event("DELETED", consumer("bad", rv="103", deep=1_100)),
        ]
    )
    source = ListWatch(
        client=client_with(lambda request: httpx2.Response(200, content=stream)),
        resource=CONSUMERS,
        projector=CUSTOM_OBJECT_PROJECTOR,
    )
    got = [e async for e in source.watch(resource_version="100", timeout_seconds=30)]
    assert [(e.type, e.object.name, e.resource_version) for e in got] == [
        (EventType.ADDED, "bad", "101"),
        (EventType.MODIFIED, "a", "102"),
        (EventType.DELETED, "bad", "103"),
    ]
    assert got[0].object.undecodable is not None
    assert got[1].object.undecodable is None


async def test_a_deployment_watch_skips_an_undecodable_event_and_goes_on() -> None:
    deep = b'{"metadata":{"name":"d-1","namespace":"ns"},"spec":{"x":' + nested(1_100) + b"}}"
    good = msgspec.json.encode(
        {"metadata": {"name": "d-0", "namespace": "ns", "resourceVersion": "7"}}
    )
    stream = b'{"type":"ADDED","object":' + deep + b'}\n{"type":"ADDED","object":' + good + b"}\n"
    source = ListWatch(
        client=client_with(lambda request: httpx2.Response(200, content=stream)),
        resource=DEPLOYMENTS,
        projector=DEPLOYMENT_PROJECTOR,
    )
    got = [e async for e in source.watch(resource_version="1", timeout_seconds=30)]
    assert [e.object.name for e in got] == ["d-0"]


@settings(max_examples=40, deadline=None)
@given(
    spec_levels=st.integers(min_value=0, max_value=2 * MAX_DEPTH),
    status_levels=st.integers(min_value=0, max_value=2 * MAX_DEPTH),
)
def test_quarantined_exactly_when_a_part_is_too_deep(spec_levels: int, status_levels: int) -> None:
    status = b'{"x":' + (nested(status_levels) or b"0") + b"}"
    spec = b'{"x":' + (nested(spec_levels) or b"0") + b"}"
    raw = (
        b'{"metadata":{"name":"c","namespace":"ns"},"spec":' + spec + b',"status":' + status + b"}"
    )
    obj = CUSTOM_OBJECT_PROJECTOR.decode(raw)
    # A part is one level ({"x": ...}) plus its list's levels.
    too_deep = [
        n
        for n, levels in (("spec", spec_levels), ("status", status_levels))
        if levels + 1 > MAX_DEPTH
    ]
    if too_deep:
        assert obj.undecodable is not None
        assert obj.undecodable.startswith(" and ".join(too_deep))
        assert obj.spec == {}
    else:
        assert obj.undecodable is None
        assert obj.spec == json.loads(spec)
        assert obj.status == json.loads(status)


def _failing_conversion(wire: DeploymentWire) -> str:
    # A conversion that refuses one object, as a too-long annotation once did.
    if wire.metadata.name == "d-bad":
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
    return wire.metadata.name


def _deployment_named(name: str) -> bytes:
    return json.dumps({"metadata": {"name": name, "namespace": "ns"}}).encode()


def test_an_object_the_conversion_refuses_is_left_out_of_the_page_alone() -> None:
    projector = Projector(wire=DeploymentWire, convert=_failing_conversion)
    names = ["d-0", "d-bad", "d-2"]
    decoded = projector.decode_page(page(*(_deployment_named(n) for n in names), rv="7"))
    assert (decoded.items, decoded.resource_version) == (["d-0", "d-2"], "7")
    with pytest.raises(UndecodableObject, match="ns/d-bad: cannot be converted: ValueError"):
        projector.decode(_deployment_named("d-bad"))
    assert projector.decode(_deployment_named("d-0")) == "d-0"
