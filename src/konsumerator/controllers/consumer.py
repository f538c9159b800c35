"""CRD mode: reconcile ``konsumerator.lwolf.org/v1`` Consumers, cluster-wide.

A Consumer the schema let through can still be unusable (``spec.namespace``
not its own namespace, which ownerReferences cannot span): it gets
``Ready=False, reason=InvalidSpec`` and an Event, nothing is created, and it
is not retried until it changes (a ``TerminalError``).

Status goes through server-side apply on the ``/status`` subresource, and
only when it differs from what the cache holds; the watch predicate ignores
status-only changes, so our own status writes never trigger a reconcile.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from konsumerator.api import keys, manifests
from konsumerator.api.v1 import SpecError
from konsumerator.controllers import reporting
from konsumerator.controllers.reconciling import Pipeline
from konsumerator.kube.projections import CustomObject
from konsumerator.kube.resources import CONSUMERS
from konsumerator.kube.writing import Writer
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.errors import TerminalError
from konsumerator.runtime.stores import ObjectKey, Store


class WritesFailed(Exception):
    """Some writes of a pass failed; the controller retries with backoff."""


def as_manifest(obj: CustomObject) -> dict[str, Any]:
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.KIND,
        "metadata": {
            "name": obj.name,
            "namespace": obj.namespace,
            "uid": obj.uid,
            "generation": obj.generation,
            "annotations": dict(obj.annotations),
        },
        "spec": obj.spec,
    }


def spec_changed(old: CustomObject | None, new: CustomObject | None) -> bool:
    """Watch predicate: a new generation, annotations (pause), or add/delete."""
    if old is None or new is None:
        return True
    return (
        old.generation != new.generation
        or old.annotations != new.annotations
        or old.deleting != new.deleting
    )


class ConsumerController:
    def __init__(
        self,
        *,
        consumers: Store[CustomObject],
        pipeline: Pipeline,
        writer: Writer,
        now: Callable[[], datetime],
    ) -> None:
        self._consumers = consumers
        self._pipeline = pipeline
        self._writer = writer
        self._now = now

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self._consumers.get(key)
        if obj is None or obj.deleting:
            # Deployments go with their owner (garbage collection).
            self._pipeline.forget(str(key))
            return Result()
        manifest = as_manifest(obj)
        previous = dict(obj.status)
        try:
            source, spec = manifests.read(manifest)
        except SpecError as e:
            message = str(e)
            await self._write_status(
                obj,
                reporting.invalid(
                    message=message, previous=previous, generation=obj.generation, now=self._now()
                ),
            )
            await self._pipeline.report_invalid(
                source=manifests.identify(manifest), message=message
            )
            raise TerminalError(message) from None
        done = await self._pipeline.run(key=str(key), source=source, spec=spec, previous=previous)
        await self._write_status(obj, done.status)
        if done.retry:
            raise WritesFailed("; ".join(done.failures) or "a write conflicted; retrying")
        return Result(requeue_after=done.requeue_after_s)

    async def _write_status(self, obj: CustomObject, status: dict[str, Any]) -> None:
        if status == obj.status:
            return
        await self._writer.apply_status(
            resource=CONSUMERS, namespace=obj.namespace, name=obj.name, status=status
        )
