"""The kube layer's edge: decoding, error classification, list/watch protocol, counting.

Aspects tested (against httpx2's in-process MockTransport, no cluster):
- a realistic Deployment projects into ObservedDeployment (controller owner,
  container resources, status counts, deletion);
- custom objects keep spec/status raw; ConfigMaps keep data;
- Status bodies classify into the right runtime error, with field causes for
  422, AlreadyExists as a Conflict, Retry-After for 429;
- LIST follows ``continue`` tokens and keeps the first page's RV;
- WATCH sends bookmarks/timeout parameters, decodes ADDED/BOOKMARK events and
  turns an ERROR 410 event into Gone;
- every request is counted by verb; applies use the apply-patch content type.
"""

import json
from typing import Any

import httpx2
import msgspec
import pytest

from konsumerator.kube import errors as kube_errors
from konsumerator.kube.projections import (
    CONFIGMAP_PROJECTOR,
    CUSTOM_OBJECT_PROJECTOR,
    DEPLOYMENT_PROJECTOR,
)
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import CONSUMERS, DEPLOYMENTS
from konsumerator.kube.watching import ListWatch
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors
from konsumerator.runtime.ports import EventType


def deployment(name: str = "c-0", rv: str = "5", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "u-" + name,
            "resourceVersion": rv,
            "generation": 3,
            "labels": {"app": "c"},
            "annotations": {"konsumerator.lwolf.org/partition": "0"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "other"},
                {
                    "apiVersion": "konsumerator.lwolf.org/v1",
                    "kind": "Consumer",
                    "name": "c",
                    "uid": "owner-uid",
                    "controller": True,
                },
            ],
            "managedFields": [{"manager": "konsumerator", "fieldsV1": {"f:spec": {}}}],
            **meta,
        },
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "x",
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
                        }
                    ]
                }
            },
        },
        "status": {
            "readyReplicas": 1,
            "availableReplicas": 1,
            "updatedReplicas": 1,
            "observedGeneration": 3,
        },
    }


def test_deployment_projects_to_observed_deployment() -> None:
    observed = DEPLOYMENT_PROJECTOR.decode(json.dumps(deployment()).encode())
    assert observed.name == "c-0"
    assert observed.namespace == "ns"
    assert observed.controller_uid == "owner-uid"
    assert observed.containers[0].requests == {"cpu": "100m"}
    assert observed.containers[0].limits == {"memory": "1Gi"}
    assert observed.replicas == 1
    assert observed.observed_generation == 3
    assert observed.annotations["konsumerator.lwolf.org/partition"] == "0"
    assert not observed.deleting
    deleting = DEPLOYMENT_PROJECTOR.decode(
        json.dumps(deployment(deletionTimestamp="2026-01-01T00:00:00Z")).encode()
    )
    assert deleting.deleting


def test_custom_objects_and_configmaps_keep_raw_payloads() -> None:
    consumer = CUSTOM_OBJECT_PROJECTOR.decode(
        json.dumps(
            {
                "metadata": {
                    "name": "c",
                    "namespace": "ns",
                    "uid": "u",
                    "resourceVersion": "1",
                    "generation": 2,
                },
                "spec": {"numPartitions": 10},
                "status": {"running": 3},
            }
        ).encode()
    )
    assert consumer.spec == {"numPartitions": 10}
    assert consumer.status == {"running": 3}
    assert consumer.generation == 2
    cm = CONFIGMAP_PROJECTOR.decode(
        b'{"metadata":{"name":"g","namespace":"ns","resourceVersion":"1"},"data":{"k":"v"}}'
    )
    assert cm.data == {"k": "v"}


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (404, "NotFound", errors.NotFound),
        (409, "Conflict", errors.Conflict),
        (409, "AlreadyExists", errors.AlreadyExists),
        (410, "Expired", errors.Gone),
        (403, "Forbidden", errors.Forbidden),
        (500, "InternalError", errors.ServerError),
        (503, "ServiceUnavailable", errors.ServerError),
    ],
)
def test_status_bodies_classify_by_code(code: int, reason: str, expected: type) -> None:
    body = json.dumps({"kind": "Status", "code": code, "reason": reason, "message": "m"})
    error = kube_errors.from_response(http_status=code, body=body.encode(), retry_after=None)
    assert type(error) is expected
    assert error.status == code


def test_invalid_carries_field_causes_and_throttling_carries_retry_after() -> None:
    body = {
        "kind": "Status",
        "code": 422,
        "reason": "Invalid",
        "message": "bad",
        "details": {
            "causes": [
                {"field": "spec.replicas", "reason": "FieldValueInvalid", "message": "must be >= 0"}
            ]
        },
    }
    error = kube_errors.from_response(
        http_status=422, body=json.dumps(body).encode(), retry_after=None
    )
    assert isinstance(error, errors.Invalid)
    assert error.causes[0].field == "spec.replicas"
    throttled = kube_errors.from_response(http_status=429, body=b"<html>", retry_after="3")
    assert isinstance(throttled, errors.TooManyRequests)
    assert throttled.retry_after == 3.0


def client_with(handler: Any) -> ApiClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="https://k8s")
    return ApiClient(http=http)


async def test_list_follows_continue_tokens_and_keeps_the_first_version() -> None:
    pages = {
        "": {"metadata": {"resourceVersion": "100", "continue": "t1"}, "items": [deployment("a")]},
        "t1": {"metadata": {"resourceVersion": "100"}, "items": [deployment("b")]},
    }
    seen: list[dict[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        params = dict(request.url.params)
        seen.append(params)
        return httpx2.Response(200, json=pages[params.get("continue", "")])

    client = client_with(handler)
    source = ListWatch(
        client=client,
        resource=DEPLOYMENTS,
        projector=DEPLOYMENT_PROJECTOR,
        namespace="ns",
        label_selector="app=c",
        page_size=1,
    )
    listing = await source.list()
    assert [d.name for d in listing.items] == ["a", "b"]
    assert listing.resource_version == "100"
    assert seen[0] == {"labelSelector": "app=c", "limit": "1"}
    assert client.counts.by_verb == {"list": 2}


async def test_watch_decodes_events_bookmarks_and_turns_error_410_into_gone() -> None:
    lines = [
        {"type": "ADDED", "object": deployment("a", rv="101")},
        {
            "type": "BOOKMARK",
            "object": {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"resourceVersion": "150"},
            },
        },
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "code": 410,
                "reason": "Expired",
                "message": "too old resource version",
            },
        },
    ]
    requests: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(200, content=b"".join(msgspec.json.encode(x) + b"\n" for x in lines))

    client = client_with(handler)
    source = ListWatch(client=client, resource=DEPLOYMENTS, projector=DEPLOYMENT_PROJECTOR)
    got: list[Any] = []

    async def drain() -> None:
        async for event in source.watch(resource_version="100", timeout_seconds=30):
            got.append(event)  # noqa: PERF401 (keep what arrived before the error)

    with pytest.raises(errors.Gone):
        await drain()
    assert [e.type for e in got] == [EventType.ADDED, EventType.BOOKMARK]
    assert got[1].resource_version == "150"
    params = dict(requests[0].url.params)
    assert params == {
        "watch": "1",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "30",
        "resourceVersion": "100",
    }
    assert requests[0].url.path == "/apis/apps/v1/deployments"
    assert client.counts.by_verb == {"watch": 1}


async def test_writes_are_counted_and_apply_uses_server_side_apply() -> None:
    requests: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        if request.method == "DELETE":
            return httpx2.Response(404, json={"kind": "Status", "code": 404, "reason": "NotFound"})
        return httpx2.Response(
            200,
            json={"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "7", "uid": "u"}},
        )

    client = client_with(handler)
    writer = Writer(client=client)
    written = await writer.apply(
        resource=DEPLOYMENTS, namespace="ns", name="c", body={"spec": {"replicas": 1}}
    )
    assert written.resource_version == "7"
    await writer.apply_status(resource=CONSUMERS, namespace="ns", name="c", status={"running": 1})
    assert not await writer.delete(resource=DEPLOYMENTS, namespace="ns", name="c", uid="u")
    apply = requests[0]
    assert apply.headers["content-type"] == "application/apply-patch+yaml"
    assert dict(apply.url.params) == {"fieldManager": "konsumerator", "force": "true"}
    assert json.loads(apply.content)["kind"] == "Deployment"
    assert (
        requests[1].url.path == "/apis/konsumerator.lwolf.org/v1/namespaces/ns/consumers/c/status"
    )
    assert json.loads(requests[2].content)["preconditions"] == {"uid": "u"}
    assert writer.counts.by_verb == {"apply": 2, "delete": 1}
    assert writer.counts.writes == 3


async def test_transport_failures_become_unreachable() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    client = client_with(handler)
    with pytest.raises(errors.Unreachable):
        await ListWatch(client=client, resource=DEPLOYMENTS, projector=DEPLOYMENT_PROJECTOR).list()


async def test_an_answer_whose_compressed_body_is_corrupt_is_unreachable_not_a_bug() -> None:
    """A gzip body cut or mangled on the way (a proxy, a reset mid-body) is the network's
    fault, retried like any transport failure; escaping as an unclassified exception, it
    would mark the Consumer ``InternalError`` (a bug of the operator)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, headers={"Content-Encoding": "gzip"}, content=b"\x1f\x8b not gzip at all"
        )

    client = client_with(handler)
    with pytest.raises(errors.Unreachable):
        await ListWatch(client=client, resource=DEPLOYMENTS, projector=DEPLOYMENT_PROJECTOR).list()


def test_lease_times_are_written_as_micro_time_in_utc() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from konsumerator.kube.leases import micro_time

    stamp = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert micro_time(stamp) == "2026-01-02T03:04:05.000000Z"
    assert micro_time(datetime(2026, 1, 2, tzinfo=UTC).replace(microsecond=7)) == (
        "2026-01-02T00:00:00.000007Z"
    )


# The API server's answers to conditional applies (recorded from kube-apiserver 1.36).
_MODIFIED = {
    "kind": "Status",
    "code": 409,
    "reason": "Conflict",
    "message": 'Operation cannot be fulfilled on deployments.apps "a": the object has been '
    "modified; please apply your changes to the latest version and try again",
}
_UID_IMMUTABLE = {
    "kind": "Status",
    "code": 422,
    "reason": "Invalid",
    "message": 'Deployment.apps "a" is invalid: metadata.uid: Invalid value: "u-1": '
    "field is immutable",
    "details": {
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": "field is immutable",
                "field": "metadata.uid",
            }
        ]
    },
}


async def test_conditional_applies_say_so_in_the_body_and_map_refusals() -> None:
    sent: list[dict[str, Any]] = []
    answers = [_MODIFIED, _UID_IMMUTABLE, {"kind": "Status", "code": 422, "reason": "Invalid"}]

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        answer = answers.pop(0)
        return httpx2.Response(answer["code"], json=answer)

    writer = Writer(client=client_with(handler))
    with pytest.raises(errors.AlreadyExists):
        await writer.apply(
            resource=DEPLOYMENTS, namespace="ns", name="a", body={}, create_only=True
        )
    with pytest.raises(errors.Conflict) as refused:
        await writer.apply(resource=DEPLOYMENTS, namespace="ns", name="a", body={}, uid="u-1")
    assert refused.value.reason == "UIDMismatch"
    with pytest.raises(errors.Invalid):  # invalid for another reason: not a conflict
        await writer.apply(resource=DEPLOYMENTS, namespace="ns", name="a", body={}, uid="u-1")
    assert sent[0]["metadata"] == {"name": "a", "namespace": "ns", "resourceVersion": "1"}
    assert sent[1]["metadata"] == {"name": "a", "namespace": "ns", "uid": "u-1"}


def test_a_deployment_keeps_its_spec_for_drift_detection() -> None:
    raw = json.dumps(deployment("a")).encode()
    observed = DEPLOYMENT_PROJECTOR.decode(raw)
    assert observed.spec() == json.loads(raw)["spec"]
