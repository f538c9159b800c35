"""The apiserver's bookmarks reach every shape of watch the operator opens.

The reflector takes a watch that hears nothing for ``reflecting.SILENCE_S`` for dead and
restarts it (with a warning). That is right only if the apiserver sends every idle
watcher a BOOKMARK sooner, whatever the watch filters: a watch whose events are all
filtered away, or one on a resource that has had no event at all, must still hear one,
or it is restarted every 3 minutes for good.

Aspects tested (a real apiserver; the watches the operator opens, all at once, idle):
- Deployments cluster-wide, selected by the managed-by label, none matching;
- Pods in one namespace, selected by the same label, none there;
- a custom resource that no object of has ever existed (the Consumers of a cluster where
  the CRD is installed and nobody has made a Consumer yet): a CRD made for this test.

Measured (apiserver 1.36, all three at once): the first BOOKMARK after 59 s
(Deployments), 121 s (Pods, namespaced) and 60 s (the unused CRD).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from operating import MANAGED_SELECTOR, eventually

from konsumerator.kube.connecting import connect
from konsumerator.kube.pods import POD_PROJECTOR
from konsumerator.kube.projections import CUSTOM_OBJECT_PROJECTOR, DEPLOYMENT_PROJECTOR
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS, PODS, ResourceKind
from konsumerator.kube.watching import ListWatch
from konsumerator.runtime.ports import EventType
from konsumerator.runtime.reflecting import SILENCE_S
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster]

QUIET = ResourceKind(group="quiet.example.com", version="v1", plural="quiets", kind="Quiet")


def _quiet_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{QUIET.plural}.{QUIET.group}"},
        "spec": {
            "group": QUIET.group,
            "names": {"plural": QUIET.plural, "singular": "quiet", "kind": QUIET.kind},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": QUIET.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    api = connect(kubeconfig=cluster.kubeconfig)
    try:
        yield api
    finally:
        await api.aclose()


async def _first_event_after(source: ListWatch[Any]) -> tuple[EventType, float]:
    listing = await source.list()
    started = time.monotonic()
    stream = source.watch(resource_version=listing.resource_version, timeout_seconds=600)
    try:
        async with asyncio.timeout(SILENCE_S):
            first = await anext(aiter(stream))
    finally:
        await stream.aclose()
    return first.type, time.monotonic() - started


async def test_every_watch_shape_the_operator_opens_hears_a_bookmark_when_idle(
    cluster: Cluster, client: ApiClient, namespace: str
) -> None:
    cluster.apply(_quiet_crd())
    eventually(
        lambda: cluster.request("GET", QUIET.path(namespace=namespace)).status,
        lambda status: status == 200,
        timeout=60,
        what="the quiet CRD to be served",
    )
    sources: dict[str, ListWatch[Any]] = {
        "deployments": ListWatch(
            client=client,
            resource=DEPLOYMENTS,
            projector=DEPLOYMENT_PROJECTOR,
            label_selector=MANAGED_SELECTOR,
        ),
        "pods": ListWatch(
            client=client,
            resource=PODS,
            projector=POD_PROJECTOR,
            namespace=namespace,
            label_selector=MANAGED_SELECTOR,
        ),
        "never-used CRD": ListWatch(
            client=client, resource=QUIET, projector=CUSTOM_OBJECT_PROJECTOR
        ),
    }
    results = await asyncio.gather(
        *(_first_event_after(s) for s in sources.values()), return_exceptions=True
    )
    found = dict(zip(sources, results, strict=True))
    for name, result in found.items():
        assert not isinstance(result, BaseException), f"{name}: no event in {SILENCE_S} s"
        assert result[0] is EventType.BOOKMARK, name
