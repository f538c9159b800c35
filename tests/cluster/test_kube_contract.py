"""The kube layer against the real kube-apiserver.

Aspects tested:
- LIST + WATCH through a Reflector sees creates, updates and deletes;
- a server-side apply that changes nothing does not bump resourceVersion;
- server-side apply on the status subresource of a Deployment; one naming a
  resourceVersion is written at that version only (a Conflict at any other);
- an update with a stale resourceVersion is classified as Conflict;
- an idle watch hears a BOOKMARK within ``reflecting.SILENCE_S`` (the reflector restarts
  a watch silent for longer as dead);
- an invalid object is classified as Invalid with field causes;
- a reconcile-shaped sequence that finds nothing to change makes zero writes,
  as counted by the ApiClient.

Not covered here: a real 410. Kubernetes 1.36's watch cache serves watches
from old resourceVersions and paginated LIST continuations from its own
history, even after an etcd compaction, so neither path returns 410 on this
control plane (tried: watch from RV 1, watch after compaction, continue token
after compaction). Gone classification of ERROR events is unit-tested
against recorded protocol lines, and relist-on-Gone with a fake source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from operating import consumer

from konsumerator.kube.connecting import connect
from konsumerator.kube.projections import CONFIGMAP_PROJECTOR, DEPLOYMENT_PROJECTOR
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import CONFIGMAPS, CONSUMERS, DEPLOYMENTS
from konsumerator.kube.watching import ListWatch
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors
from konsumerator.runtime.ports import EventType
from konsumerator.runtime.reflecting import SILENCE_S, Reflector
from konsumerator.runtime.stores import ObjectKey, Store
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    api = connect(kubeconfig=cluster.kubeconfig)
    try:
        yield api
    finally:
        await api.aclose()


def deployment_body(*, replicas: int = 1, cpu: str = "100m") -> dict[str, Any]:
    labels = {"app": "contract"}
    return {
        "metadata": {"labels": {**labels, "app.kubernetes.io/managed-by": "konsumerator"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "registry.invalid/contract:1",
                            "resources": {"requests": {"cpu": cpu}},
                        }
                    ]
                },
            },
        },
    }


async def eventually(predicate: Callable[[], bool], *, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.05)


async def test_reflector_sees_create_update_delete(client: ApiClient, namespace: str) -> None:
    writer = Writer(client=client)
    store: Store[Any] = Store(
        indexers={"cpu": lambda d: [c.requests.get("cpu", "") for c in d.containers]}
    )
    source = ListWatch(
        client=client,
        resource=DEPLOYMENTS,
        projector=DEPLOYMENT_PROJECTOR,
        namespace=namespace,
        label_selector="app.kubernetes.io/managed-by=konsumerator",
    )
    await writer.apply(
        resource=DEPLOYMENTS, namespace=namespace, name="before", body=deployment_body()
    )
    reflector = Reflector(name="deployments", source=source, store=store, timeout_seconds=30)
    task = asyncio.create_task(reflector.run())
    try:
        await eventually(lambda: store.has_synced)
        assert [d.name for d in store.values()] == ["before"]

        await writer.apply(
            resource=DEPLOYMENTS, namespace=namespace, name="d", body=deployment_body()
        )
        await eventually(lambda: ObjectKey(namespace, "d") in store)

        await writer.apply(
            resource=DEPLOYMENTS, namespace=namespace, name="d", body=deployment_body(cpu="250m")
        )
        await eventually(
            lambda: [o.name for o in store.by_index(index="cpu", value="250m")] == ["d"]
        )

        await writer.delete(resource=DEPLOYMENTS, namespace=namespace, name="d")
        await eventually(lambda: ObjectKey(namespace, "d") not in store)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_noop_apply_does_not_bump_resource_version(client: ApiClient, namespace: str) -> None:
    # A ConfigMap, not a Deployment: kube-controller-manager writes Deployments
    # (revision annotation, status) between our requests and would bump the RV.
    writer = Writer(client=client)
    body = {"metadata": {"labels": {"a": "b"}}, "data": {"k": "v"}}
    first = await writer.apply(resource=CONFIGMAPS, namespace=namespace, name="cm", body=body)
    second = await writer.apply(resource=CONFIGMAPS, namespace=namespace, name="cm", body=body)
    assert second.resource_version == first.resource_version
    third = await writer.apply(
        resource=CONFIGMAPS, namespace=namespace, name="cm", body={"data": {"k": "w"}}
    )
    assert third.resource_version != first.resource_version


async def test_status_subresource_apply(client: ApiClient, namespace: str) -> None:
    writer = Writer(client=client)
    await writer.apply(
        resource=CONFIGMAPS, namespace=namespace, name="x", body={"data": {"a": "b"}}
    )
    created = await writer.apply(
        resource=DEPLOYMENTS, namespace=namespace, name="d", body=deployment_body()
    )
    await writer.apply_status(
        resource=DEPLOYMENTS,
        namespace=namespace,
        name="d",
        status={"conditions": [{"type": "Konsumerator", "status": "True", "reason": "Test"}]},
    )
    raw = await client.request(
        verb="get",
        resource="deployments",
        method="GET",
        path=DEPLOYMENTS.path(namespace=namespace, name="d"),
    )
    assert b'"Konsumerator"' in raw
    assert created.uid


@pytest.mark.usefixtures("crd")
async def test_a_status_apply_naming_a_resource_version_is_written_at_that_version_only(
    client: ApiClient, namespace: str
) -> None:
    """On a Consumer (no operator runs: nobody else writes it), whose status subresource
    keeps the stored metadata, UID included: a resourceVersion is what conditions it."""
    writer = Writer(client=client)
    manifest = consumer("c", namespace)
    created = await writer.apply(
        resource=CONSUMERS, namespace=namespace, name="c", body=manifest, create_only=True
    )
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }

    async def write(reason: str, version: str) -> str:
        done = await writer.apply_status(
            resource=CONSUMERS,
            namespace=namespace,
            name="c",
            status={"conditions": [{**ready, "reason": reason}]},
            resource_version=version,
        )
        return done.resource_version

    written = await write("First", created.resource_version)
    with pytest.raises(errors.Conflict):
        await write("Stale", created.resource_version)
    assert await write("Current", written) != written


async def test_stale_update_is_conflict_and_bad_object_is_invalid(
    client: ApiClient, namespace: str
) -> None:
    writer = Writer(client=client)
    first = await writer.apply(
        resource=CONFIGMAPS, namespace=namespace, name="cm", body={"data": {"k": "1"}}
    )
    await writer.apply(
        resource=CONFIGMAPS, namespace=namespace, name="cm", body={"data": {"k": "2"}}
    )
    stale = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cm",
            "namespace": namespace,
            "resourceVersion": first.resource_version,
        },
        "data": {"k": "3"},
    }
    with pytest.raises(errors.Conflict):
        await writer.update(resource=CONFIGMAPS, namespace=namespace, name="cm", body=stale)

    with pytest.raises(errors.Invalid) as invalid:
        await writer.apply(
            resource=DEPLOYMENTS, namespace=namespace, name="bad", body=deployment_body(replicas=-1)
        )
    assert any(c.field == "spec.replicas" for c in invalid.value.causes)

    with pytest.raises(errors.AlreadyExists):
        await writer.create(
            resource=CONFIGMAPS,
            namespace=namespace,
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
        )
    assert not await writer.delete(resource=CONFIGMAPS, namespace=namespace, name="missing")
    with pytest.raises(errors.Conflict):
        await writer.delete(resource=CONFIGMAPS, namespace=namespace, name="cm", uid="not-its-uid")


async def test_reconcile_with_nothing_to_change_makes_no_write(
    client: ApiClient, namespace: str
) -> None:
    writer = Writer(client=client)
    await writer.apply(resource=DEPLOYMENTS, namespace=namespace, name="d", body=deployment_body())
    store: Store[Any] = Store()
    source = ListWatch(
        client=client, resource=DEPLOYMENTS, projector=DEPLOYMENT_PROJECTOR, namespace=namespace
    )
    reflector = Reflector(name="deployments", source=source, store=store, timeout_seconds=30)
    task = asyncio.create_task(reflector.run())
    try:
        await eventually(lambda: store.has_synced)
        before = client.counts.snapshot()

        async def reconcile() -> None:
            # Desired state equals the cached projection: diff says nothing to do.
            observed = store.get(ObjectKey(namespace, "d"))
            assert observed is not None
            if observed.containers[0].requests.get("cpu") != "100m":
                await writer.apply(
                    resource=DEPLOYMENTS, namespace=namespace, name="d", body=deployment_body()
                )

        for _ in range(5):
            await reconcile()
        delta = client.counts.since(before)
        assert {v: n for v, n in delta.items() if v != "watch"} == {}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert client.counts.writes == 1


async def test_an_idle_watch_hears_a_bookmark_within_the_silence_limit(
    client: ApiClient, namespace: str
) -> None:
    """The reflector takes a watch silent for ``SILENCE_S`` for dead: the apiserver must
    send an idle watcher a BOOKMARK sooner (measured: the first after about 120 s).

    Idle by its selector: the namespace's ``kube-root-ca.crt`` ConfigMap, which the
    controller-manager adds to a new namespace, at times after the list, would otherwise
    be the first event."""
    source = ListWatch(
        client=client,
        resource=CONFIGMAPS,
        projector=CONFIGMAP_PROJECTOR,
        namespace=namespace,
        label_selector="konsumerator.test/idle-watch=nothing-has-it",
    )
    listing = await source.list()
    stream = source.watch(resource_version=listing.resource_version, timeout_seconds=600)
    async with asyncio.timeout(SILENCE_S):
        first = await anext(aiter(stream))
    await stream.aclose()
    assert first.type is EventType.BOOKMARK
