"""CRD mode: reconcile ``konsumerator.lwolf.org/v1`` Consumers, cluster-wide.

A Consumer the schema let through can still be unusable (``spec.namespace``
not its own namespace, which ownerReferences cannot span), or unreadable (a
``deploymentTemplate`` nested deeper than ``kube.projections.MAX_DEPTH``,
quarantined by the watch): see ``Pipeline.reconcile`` for what happens then.

Status goes through server-side apply on the ``/status`` subresource, and
only when it differs from what the object holds (``reporting.CrdReporter``);
the watch predicate ignores status-only changes our own writes made, so they
never trigger a reconcile.
"""

from typing import Any

from konsumerator.controllers.reconciling import Pipeline
from konsumerator.controllers.reporting import CrdReporter
from konsumerator.domain import keys
from konsumerator.kube.projections import CustomObject
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.stores import ObjectKey, Store


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
        or old.undecodable != new.undecodable
    )


class ConsumerController:
    def __init__(
        self,
        *,
        consumers: Store[CustomObject],
        pipeline: Pipeline,
        reporter: CrdReporter,
    ) -> None:
        self._consumers = consumers
        self._pipeline = pipeline
        self._reporter = reporter

    def wants(self, old: CustomObject | None, new: CustomObject | None) -> bool:
        """Watch predicate: what ``spec_changed`` lets through, and any other change
        that our own last status write did not make (somebody else's status edit)."""
        if spec_changed(old, new) or new is None:
            return True
        return not self._reporter.is_ours(new)

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self._consumers.get(key)
        if obj is None or obj.deleting:
            # Deployments go with their owner (garbage collection).
            self._pipeline.forget(str(key))
            self._reporter.forget(key)
            return Result()
        return await self._pipeline.reconcile(
            key=str(key),
            manifest=as_manifest(obj),
            previous=self._reporter.previous(obj),
            generation=obj.generation,
            undecodable=obj.undecodable,
        )
