"""Hostile review: a pass's status goes to the object the pass was for, or nowhere.

A pass reads a Consumer (or guest ConfigMap), plans, acts, then writes its status. The
object may be deleted meanwhile, and created again under the same name (``kubectl
replace --force``, a GitOps tool recreating it): the status the pass computed is about
the old object (its counters, conditions, learned rate, last sync of its queries) and
must not land on the new one, nor bring a deleted ConfigMap back.

Aspects tested, with the reporters of both modes writing to the real apiserver:

* guest mode: a ConfigMap deleted after the pass started is not re-created by the
  status write (a server-side apply creates what it does not find);
* guest mode: a ConfigMap re-created under the same name keeps its own annotations
  (the write is refused as a conflict; the pass is retried and reads the new object).

A Consumer's status subresource ignores a ``metadata.uid`` in the write (the apiserver
keeps the stored metadata for status writes): its write names a ``resourceVersion``
instead, tested end to end in ``test_hostile_recreated_mid_pass``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from operating import consumer, guest_configmap

from konsumerator.controllers.reporting import GuestReporter
from konsumerator.domain import keys
from konsumerator.domain.planning import Counters
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.connecting import connect
from konsumerator.kube.eventing import EventRecorder
from konsumerator.kube.projections import ConfigMapView
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

OLD_STATUS = ConsumerStatus(
    counters=Counters(expected=3, running=3, lagging=1),
    observed_generation=1,
)


@pytest.fixture
async def writer(cluster: Cluster) -> AsyncIterator[Writer]:
    client: ApiClient = connect(kubeconfig=cluster.kubeconfig)
    try:
        yield Writer(client=client)
    finally:
        await client.aclose()


def configmap_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def view(obj: dict[str, Any]) -> ConfigMapView:
    meta = obj["metadata"]
    return ConfigMapView(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        resource_version=meta["resourceVersion"],
        annotations=meta.get("annotations") or {},
        data=obj.get("data") or {},
    )


def gone(cluster: Cluster, path: str) -> bool:
    return cluster.request("GET", path).status == 404


def started_then_deleted(
    cluster: Cluster, namespace: str, writer: Writer
) -> tuple[dict[str, Any], dict[str, Any], str, GuestReporter]:
    """A guest ConfigMap a pass has started from (the reporter saw it), deleted since."""
    manifest = guest_configmap("orders", namespace, consumer("orders", namespace)["spec"])
    path = configmap_path(namespace, "orders")
    obj = cluster.api("POST", f"/api/v1/namespaces/{namespace}/configmaps", manifest)
    reporter = GuestReporter(events=EventRecorder(writer=writer), writer=writer)
    reporter.previous(view(obj))  # the pass starts from it
    cluster.api("DELETE", path)
    return manifest, obj, path, reporter


async def test_a_guest_configmap_deleted_mid_pass_is_not_brought_back(
    cluster: Cluster, namespace: str, writer: Writer
) -> None:
    _, _, path, reporter = started_then_deleted(cluster, namespace, writer)
    assert gone(cluster, path)
    with pytest.raises(errors.ApiError):
        await reporter.status(key=f"{namespace}/orders", status=OLD_STATUS)
    assert gone(cluster, path)


async def test_a_guest_configmap_recreated_mid_pass_keeps_its_own_annotations(
    cluster: Cluster, namespace: str, writer: Writer
) -> None:
    manifest, obj, path, reporter = started_then_deleted(cluster, namespace, writer)
    again = cluster.api("POST", f"/api/v1/namespaces/{namespace}/configmaps", manifest)
    assert again["metadata"]["uid"] != obj["metadata"]["uid"]
    with pytest.raises(errors.Conflict):
        await reporter.status(key=f"{namespace}/orders", status=OLD_STATUS)
    annotations = cluster.api("GET", path)["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith(f"{keys.GROUP}/status.")], annotations
