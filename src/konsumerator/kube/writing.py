"""Every write the operator makes: server-side apply, patches, deletes.

Rules, and why:

- Children are written with **server-side apply** (field manager
  ``konsumerator``, ``force=True``). The body holds only the fields we own, so
  other actors (an HPA, a human adding a label) keep theirs, and "create or
  update" is one idempotent request with no read-modify-write race.
- Status goes through SSA on the ``/status`` subresource, or a merge patch: no
  resourceVersion in the body, so a status write never 409-loops.
- Deletes can carry a ``preconditions.uid``: we delete the Deployment we
  looked at, never a same-named successor created in the meantime.
- Callers compare desired and observed state *before* calling: the API server
  does not persist a no-op apply, but a no-op apply is still a request, and
  at 10 k Deployments requests are the budget.

Every method returns ``Written`` (identity and new resourceVersion of the
object) and raises typed runtime errors. Requests are counted by the shared
``ApiClient`` (``writer.counts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from konsumerator.domain import keys
from konsumerator.kube.projections import ObjectMetaWire
from konsumerator.kube.requesting import ApiClient, RequestCounts
from konsumerator.kube.resources import ResourceKind
from konsumerator.runtime import errors


@dataclass(frozen=True, slots=True)
class Written:
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int


class _Written(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)


_written_decoder = msgspec.json.Decoder(_Written)
_encoder = msgspec.json.Encoder()


def _written(body: bytes) -> Written:
    meta = _written_decoder.decode(body).metadata
    return Written(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        generation=meta.generation,
    )


class Writer:
    def __init__(self, *, client: ApiClient, field_manager: str = keys.FIELD_MANAGER) -> None:
        self._client = client
        self.field_manager = field_manager

    @property
    def counts(self) -> RequestCounts:
        return self._client.counts

    async def apply(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        force: bool = True,
        subresource: str | None = None,
    ) -> Written:
        """Server-side apply ``body`` (apiVersion, kind and metadata.name are filled in)."""
        document = _with_identity(resource=resource, namespace=namespace, name=name, body=body)
        raw = await self._client.request(
            verb="apply",
            resource=resource.plural if subresource is None else f"{resource.plural}/{subresource}",
            method="PATCH",
            path=resource.path(namespace=namespace, name=name, subresource=subresource),
            params={"fieldManager": self.field_manager, "force": "true" if force else "false"},
            content=_encoder.encode(document),
            content_type="application/apply-patch+yaml",
        )
        return _written(raw)

    async def apply_status(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        force: bool = True,
    ) -> Written:
        """Server-side apply of ``{"status": status}`` on the status subresource."""
        return await self.apply(
            resource=resource,
            namespace=namespace,
            name=name,
            body={"status": dict(status)},
            force=force,
            subresource="status",
        )

    async def merge_patch(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> Written:
        raw = await self._client.request(
            verb="patch",
            resource=resource.plural if subresource is None else f"{resource.plural}/{subresource}",
            method="PATCH",
            path=resource.path(namespace=namespace, name=name, subresource=subresource),
            params={"fieldManager": self.field_manager},
            content=_encoder.encode(patch),
            content_type="application/merge-patch+json",
        )
        return _written(raw)

    async def create(
        self, *, resource: ResourceKind, namespace: str | None, body: Mapping[str, Any]
    ) -> Written:
        raw = await self._client.request(
            verb="create",
            resource=resource.plural,
            method="POST",
            path=resource.path(namespace=namespace),
            params={"fieldManager": self.field_manager},
            content=_encoder.encode(body),
        )
        return _written(raw)

    async def update(
        self, *, resource: ResourceKind, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> Written:
        """A full PUT; the body's metadata.resourceVersion makes it compare-and-swap."""
        raw = await self._client.request(
            verb="update",
            resource=resource.plural,
            method="PUT",
            path=resource.path(namespace=namespace, name=name),
            params={"fieldManager": self.field_manager},
            content=_encoder.encode(body),
        )
        return _written(raw)

    async def delete(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete; False if it was already gone. With ``uid``, only that incarnation."""
        options: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self._client.request(
                verb="delete",
                resource=resource.plural,
                method="DELETE",
                path=resource.path(namespace=namespace, name=name),
                content=_encoder.encode(options),
            )
        except errors.NotFound:
            return False
        return True


def _with_identity(
    *, resource: ResourceKind, namespace: str | None, name: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    document = dict(body)
    document.setdefault("apiVersion", resource.api_version)
    document.setdefault("kind", resource.kind)
    metadata = dict(document.get("metadata") or {})
    metadata.setdefault("name", name)
    if namespace is not None and resource.namespaced:
        metadata.setdefault("namespace", namespace)
    document["metadata"] = metadata
    return document
