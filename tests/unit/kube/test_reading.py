"""The creation guard's reads.

Aspects tested (httpx2 MockTransport, no cluster):
* the namespace LIST asks for metadata only and follows ``continue`` tokens;
* names map to their controller's UID, or None without a controller;
* an empty namespace (the API server answers ``"items": null``) is an empty map.
"""

import json

import httpx2

from konsumerator.kube import reading
from konsumerator.kube.requesting import ApiClient


def client(pages: list[dict[str, object]], seen: list[httpx2.Request]) -> ApiClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=json.dumps(pages[len(seen) - 1]).encode())

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="https://k8s")
    return ApiClient(http=http)


def item(name: str, *owners: tuple[str, bool]) -> dict[str, object]:
    refs = [{"uid": uid, "kind": "Consumer", "name": "c", "controller": c} for uid, c in owners]
    return {"metadata": {"name": name, "ownerReferences": refs}}


async def test_namespace_list_is_metadata_only_and_paginated():
    seen: list[httpx2.Request] = []
    pages = [
        {"metadata": {"continue": "t1"}, "items": [item("a-0", ("u1", True)), item("mine")]},
        {"metadata": {}, "items": [item("a-1", ("u2", False), ("u1", True))]},
    ]
    result = await reading.deployment_controllers(client=client(pages, seen), namespace="ns")
    assert result == {"a-0": "u1", "mine": None, "a-1": "u1"}
    assert "as=PartialObjectMetadataList" in seen[0].headers["Accept"]
    assert seen[0].url.path == "/apis/apps/v1/namespaces/ns/deployments"
    assert seen[1].url.params["continue"] == "t1"


async def test_an_empty_namespace_is_an_empty_map():
    seen: list[httpx2.Request] = []
    pages = [{"kind": "PartialObjectMetadataList", "metadata": {}, "items": None}]
    assert await reading.deployment_controllers(client=client(pages, seen), namespace="ns") == {}
