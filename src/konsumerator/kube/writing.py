"""Every write the operator makes: server-side apply, patches, deletes.

Rules, and why:

- Children are written with **server-side apply** (field manager
  ``konsumerator``, ``force=True``). The body holds only the fields we own, so
  other actors (an HPA, a human adding a label) keep theirs.
- An apply never takes over somebody else's object. Plain SSA is "create or
  update": applied onto a same-named Deployment a user made, it would adopt
  it. So every apply is conditional, in the same request:

  * ``create_only``: the body carries ``metadata.resourceVersion: "1"``, a
    version no stored object has (etcd revisions of objects start above it).
    If the name is free, the API server creates the object (an apply that
    creates checks no version); if anything holds the name, the version
    check fails with 409 and nothing is written (``AlreadyExists``). This is
    how the Java Operator SDK creates with SSA. Unlike a POST, the new object
    is owned by our *Apply* entry only, so fields we later stop applying
    are removed.
  * ``uid``: the body carries ``metadata.uid``. The API server rejects the
    apply (422 on the immutable uid, or 409 if the name is free) unless the
    object is that very one: a Deployment deleted and re-created by someone
    else in the meantime is never touched (``Conflict``).
- Status goes through SSA on the ``/status`` subresource. The apiserver keeps the
  stored metadata of a status write, UID included, so a ``metadata.uid`` there
  does not stop a write meant for a Consumer deleted and re-created under its
  name; the status write names a ``resourceVersion`` instead (a precondition:
  409, ``Conflict``, unless the object is still at that version). The caller
  names the version its own last status write produced while the watch cache
  has not shown it yet, so its own writes never make the next one conflict.
  Any write moves the version, not only a re-creation: another controller
  stamping a label or an annotation every second (Argo CD, Flux, ``kubectl
  label``) landed between most passes' read and their status write, and every
  retry conflicted again, so the status was never written. So a conflicting
  status write that also names the ``uid`` asks the object's identity (a GET):
  still that UID, it is sent once more at the version it now has (the status
  describes the generation it names; a spec edit wakes its own pass); another
  UID, or none, and the ``Conflict`` stands.
- Deletes can carry a ``preconditions.uid``: we delete the Deployment we
  looked at, never a same-named successor created in the meantime.
- With leader election, every write asks the elector's fence first
  (``WriteFence.write_budget``) and is bounded by its answer: a process that
  may have lost its lease refuses the write (``NotLeading``) instead of
  sending it, and a write still pending when the budget runs out is
  abandoned. The fence is asked again at the socket, just before the
  request's bytes leave (``kube.guarding``). The budget is also the request's
  ``timeout`` on the API server, which gives it up there when it runs out (a
  request queued on a loaded server is not carried out after a takeover). Lease
  writes do not come through here.
- Callers compare desired and observed state *before* calling: the API server
  does not persist a no-op apply, but a no-op apply is still a request, and
  at 10 k Deployments requests are the budget.

Every method returns ``Written`` (identity and new resourceVersion of the
object) and raises typed runtime errors. Requests are counted by the shared
``ApiClient`` (``writer.counts``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from konsumerator.domain import keys
from konsumerator.kube import guarding, reading, scanning
from konsumerator.kube.projections import ConfigMapView, ObjectMetaWire, salvage_metadata
from konsumerator.kube.requesting import ApiClient, RequestCounts
from konsumerator.kube.resources import ResourceKind
from konsumerator.runtime import errors
from konsumerator.runtime.ports import WriteFence


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
    try:
        meta = _written_decoder.decode(body).metadata
    except RecursionError:
        # A part deeper than the decoder goes, skipped or not (a free-form spec, a
        # managedFields entry somebody nested thousands of levels): the identity alone,
        # read without recursing. The write itself was made.
        meta = salvage_metadata(scanning.members(body).get("metadata"))
    return Written(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        generation=meta.generation,
    )


# A resourceVersion no stored object has: an apply naming it can only create.
NEVER_STORED = "1"


class Writer:
    def __init__(
        self,
        *,
        client: ApiClient,
        field_manager: str = keys.FIELD_MANAGER,
        fence: WriteFence | None = None,
    ) -> None:
        self._client = client
        self.field_manager = field_manager
        self._fence = fence

    @property
    def counts(self) -> RequestCounts:
        return self._client.counts

    async def _write(
        self,
        *,
        verb: str,
        resource: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """One write request, through the fence (if any): refused before it is sent
        when the fence is closed, abandoned when the fence's budget runs out."""
        fence = self._fence
        budget = None if fence is None else fence.write_budget()
        if budget is not None:
            # The API server's own deadline for the request (its ``timeout`` parameter):
            # a request sent in time but held on the server (queued by API Priority and
            # Fairness on a loaded server, while this process is frozen and cannot give it
            # up) is dropped there when the budget runs out, before another replica may
            # take the Lease, instead of being carried out after the takeover.
            params = {**(params or {}), "timeout": _duration(budget)}
        try:
            with guarding.guarded(fence.write_budget) if fence else contextlib.nullcontext():
                async with asyncio.timeout(budget):
                    return await self._client.request(
                        verb=verb,
                        resource=resource,
                        method=method,
                        path=path,
                        params=params,
                        content=content,
                        content_type=content_type,
                    )
        except TimeoutError:
            if budget is None:
                raise
            raise errors.NotLeading(
                message=f"{verb} {path} abandoned: the lease could not be renewed in time"
            ) from None

    async def apply(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        force: bool = True,
        subresource: str | None = None,
        uid: str | None = None,
        create_only: bool = False,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> Written:
        """Server-side apply ``body`` (apiVersion, kind and metadata.name are filled in).

        With ``uid``, only onto the object with that UID (else ``Conflict``); with
        ``create_only``, only if no object has the name (else ``AlreadyExists``); with
        ``resource_version``, only onto the object at that version (else ``Conflict``).
        With ``dry_run``, the apiserver validates and admits it (admission policies and
        webhooks, quota) and answers as it would, but stores nothing (``dryRun=All``);
        counted under the verb ``dryrun``, not as a write.
        """
        document = _with_identity(resource=resource, namespace=namespace, name=name, body=body)
        if uid is not None:
            document["metadata"]["uid"] = uid
        if resource_version is not None:
            document["metadata"]["resourceVersion"] = resource_version
        if create_only:
            document["metadata"]["resourceVersion"] = NEVER_STORED
        params = {"fieldManager": self.field_manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        try:
            raw = await self._write(
                verb="dryrun" if dry_run else "apply",
                resource=resource.plural
                if subresource is None
                else f"{resource.plural}/{subresource}",
                method="PATCH",
                path=resource.path(namespace=namespace, name=name, subresource=subresource),
                params=params,
                content=_encoder.encode(document),
                content_type="application/apply-patch+yaml",
            )
        except errors.Invalid as e:
            if (conflict := _uid_mismatch(e, name=name, uid=uid)) is not None:
                raise conflict from e
            raise
        except errors.Conflict as e:
            if create_only and uid is None:
                raise errors.AlreadyExists(
                    status=409, reason="AlreadyExists", message=f"{name} exists"
                ) from e
            raise
        return _written(raw)

    async def apply_status(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
        uid: str | None = None,
        force: bool = True,
    ) -> Written:
        """Server-side apply of ``{"status": status}`` on the status subresource; with
        ``resource_version``, only onto the object at that version (else ``Conflict``);
        with ``uid`` too, a conflict is retried once at the version the object with that
        UID now has (see the module docstring)."""
        try:
            return await self._apply_status(
                resource=resource,
                namespace=namespace,
                name=name,
                status=status,
                resource_version=resource_version,
                force=force,
            )
        except errors.Conflict:
            if resource_version is None or uid is None:
                raise
            now = await self.identity(resource=resource, namespace=namespace, name=name)
            if now is None or now.uid != uid:
                raise
        return await self._apply_status(
            resource=resource,
            namespace=namespace,
            name=name,
            status=status,
            resource_version=now.resource_version,
            force=force,
        )

    async def identity(
        self, *, resource: ResourceKind, namespace: str | None, name: str
    ) -> Written | None:
        """The object's UID and resourceVersion now (a GET; None: no such object)."""
        body = await reading.get(
            client=self._client, resource=resource, namespace=namespace, name=name
        )
        return None if body is None else _written(body)

    async def configmap(self, *, namespace: str, name: str) -> ConfigMapView | None:
        """The ConfigMap as it is now (a GET; None: no such object)."""
        return await reading.get_configmap(client=self._client, namespace=namespace, name=name)

    async def _apply_status(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None,
        force: bool,
    ) -> Written:
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.apply(
            resource=resource,
            namespace=namespace,
            name=name,
            body=body,
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
        raw = await self._write(
            verb="patch",
            resource=resource.plural if subresource is None else f"{resource.plural}/{subresource}",
            method="PATCH",
            path=resource.path(namespace=namespace, name=name, subresource=subresource),
            params={"fieldManager": self.field_manager},
            content=_encoder.encode(patch),
            content_type="application/merge-patch+json",
        )
        return _written(raw)

    async def strategic_patch(
        self,
        *,
        resource: ResourceKind,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
        uid: str | None = None,
    ) -> Written:
        """A strategic merge patch (lists merged by their key, e.g. containers by name).

        With ``uid``, only onto the object with that UID: the patch carries
        ``metadata.uid``, immutable, so the server refuses it (422, raised as
        ``Conflict``) for a same-named successor.
        """
        document = dict(patch)
        if uid is not None:
            document["metadata"] = {**dict(document.get("metadata") or {}), "uid": uid}
        try:
            raw = await self._write(
                verb="patch",
                resource=resource.plural
                if subresource is None
                else f"{resource.plural}/{subresource}",
                method="PATCH",
                path=resource.path(namespace=namespace, name=name, subresource=subresource),
                params={"fieldManager": self.field_manager},
                content=_encoder.encode(document),
                content_type="application/strategic-merge-patch+json",
            )
        except errors.Invalid as e:
            if (conflict := _uid_mismatch(e, name=name, uid=uid)) is not None:
                raise conflict from e
            raise
        return _written(raw)

    async def create(
        self, *, resource: ResourceKind, namespace: str | None, body: Mapping[str, Any]
    ) -> Written:
        raw = await self._write(
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
        raw = await self._write(
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
            await self._write(
                verb="delete",
                resource=resource.plural,
                method="DELETE",
                path=resource.path(namespace=namespace, name=name),
                content=_encoder.encode(options),
            )
        except errors.NotFound:
            return False
        return True


def _duration(seconds: float) -> str:
    """``seconds`` as a Go duration (the API server's ``timeout``), rounded down to the
    millisecond, at least one."""
    return f"{max(int(seconds * 1000), 1)}ms"


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


def _uid_mismatch(e: errors.Invalid, *, name: str, uid: str | None) -> errors.Conflict | None:
    """A write conditional on ``uid`` refused on ``metadata.uid``: the object was replaced
    under the same name, a Conflict rather than an invalid request."""
    if uid is not None and any(c.field == "metadata.uid" for c in e.causes):
        return errors.Conflict(
            status=409, reason="UIDMismatch", message=f"{name} is no longer {uid}"
        )
    return None
