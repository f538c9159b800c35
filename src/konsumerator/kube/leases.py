"""Lease reads and compare-and-swap writes for leader election.

Implements ``konsumerator.runtime.ports.LeaseStore`` with GET, POST and PUT on
``coordination.k8s.io/v1`` Leases. ``update`` sends the resourceVersion it was
given, so the API server rejects it with 409 if anyone wrote in between: that
is the whole mutual-exclusion mechanism. Timestamps are written as
``MicroTime`` (RFC 3339 with exactly six fractional digits, UTC), which is
what the API server requires for Lease times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from konsumerator.kube import reading
from konsumerator.kube.projections import LEASE_PROJECTOR
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import LEASES
from konsumerator.runtime.ports import LeaseRecord

_encoder = msgspec.json.Encoder()


def micro_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _body(*, namespace: str, name: str, record: LeaseRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    spec: dict[str, Any] = {
        "holderIdentity": record.holder_identity,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.lease_transitions,
    }
    if record.acquire_time is not None:
        spec["acquireTime"] = micro_time(record.acquire_time)
    if record.renew_time is not None:
        spec["renewTime"] = micro_time(record.renew_time)
    return {
        "apiVersion": LEASES.api_version,
        "kind": LEASES.kind,
        "metadata": metadata,
        "spec": spec,
    }


class LeaseClient:
    def __init__(self, *, client: ApiClient) -> None:
        self._client = client

    async def get(self, *, namespace: str, name: str) -> LeaseRecord | None:
        body = await reading.get(
            client=self._client, resource=LEASES, namespace=namespace, name=name
        )
        return None if body is None else LEASE_PROJECTOR.decode(body)

    async def create(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        body = await self._client.request(
            verb="create",
            resource=LEASES.plural,
            method="POST",
            path=LEASES.path(namespace=namespace),
            content=_encoder.encode(_body(namespace=namespace, name=name, record=record)),
        )
        return LEASE_PROJECTOR.decode(body)

    async def update(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        body = await self._client.request(
            verb="update",
            resource=LEASES.plural,
            method="PUT",
            path=LEASES.path(namespace=namespace, name=name),
            content=_encoder.encode(_body(namespace=namespace, name=name, record=record)),
        )
        return LEASE_PROJECTOR.decode(body)
