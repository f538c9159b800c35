"""One ``ports.Reporter`` per mode: it owns both what a pass writes as status and its Events.

* ``CrdReporter``: the status of a Consumer, by server-side apply on the ``/status``
  subresource (``ConsumerStatus.to_body``).
* ``GuestReporter``: the status of a guest ConfigMap, as the Go operator's
  ``konsumerator.lwolf.org/status.*`` annotations by server-side apply (we own only
  those keys; ``ConsumerStatus.to_annotations``).

What the status says is decided in the domain (``domain.status``); here it is only
written, and only when it differs from what the object holds: our last write while
the watch cache has not seen it, else the cache, which also shows anybody else's
write (``statuses``). A pass with nothing new to report makes no write.

The controller reads the object and asks :meth:`previous` for the status the pass
starts from; the same reporter then writes the pass's status over that object (the
work queue never runs two passes of one object at once, so one remembered object
per key is enough).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from konsumerator.controllers.events import EventReporter
from konsumerator.controllers.statuses import WrittenStatus
from konsumerator.domain import keys
from konsumerator.domain.status import ConsumerStatus, status_annotations
from konsumerator.kube.eventing import EventRecorder
from konsumerator.kube.projections import ConfigMapView, CustomObject
from konsumerator.kube.resources import CONFIGMAPS, CONSUMERS
from konsumerator.kube.writing import Writer
from konsumerator.runtime.stores import ObjectKey, key_of


@dataclass(frozen=True, slots=True)
class _Base:
    """The object a pass started from, and the status (as the object shows it) it held."""

    key: ObjectKey
    namespace: str
    name: str
    uid: str
    resource_version: str
    previous: Mapping[str, Any]


class CrdReporter(EventReporter):
    """CRD mode: Events, and the Consumer's status subresource."""

    def __init__(self, *, events: EventRecorder, writer: Writer) -> None:
        super().__init__(events=events)
        self._writer = writer
        self._statuses = WrittenStatus()
        self._bases: dict[str, _Base] = {}

    def is_ours(self, obj: CustomObject) -> bool:
        """Whether ``obj`` shows what our last status write made (the watch predicate)."""
        return self._statuses.is_ours(
            key=key_of(obj), resource_version=obj.resource_version, shown=obj.status
        )

    def previous(self, obj: CustomObject) -> ConsumerStatus:
        """The status a pass over ``obj`` starts from (and compares its own with)."""
        key = key_of(obj)
        written = self._statuses.written(
            key=key, uid=obj.uid, resource_version=obj.resource_version
        )
        held = dict(obj.status if written is None else written)
        self._bases[str(key)] = _Base(
            key=key,
            namespace=obj.namespace,
            name=obj.name,
            uid=obj.uid,
            resource_version=obj.resource_version,
            previous=held,
        )
        return ConsumerStatus.from_body(held)

    def forget(self, key: ObjectKey) -> None:
        self._statuses.forget(key)
        self._bases.pop(str(key), None)

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        base = self._bases[key]
        body = status.to_body()
        if body == base.previous:
            return False
        self._statuses.sending(key=base.key, shown=body)
        done = await self._writer.apply_status(
            resource=CONSUMERS, namespace=base.namespace, name=base.name, status=body
        )
        self._statuses.wrote(
            key=base.key,
            uid=base.uid,
            base=base.resource_version,
            resource_version=done.resource_version,
            status=body,
        )
        return True


def _status_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if k.startswith(keys.STATUS_PREFIX)}


class GuestReporter(EventReporter):
    """Guest mode: Events, and the ConfigMap's ``status.*`` annotations."""

    def __init__(self, *, events: EventRecorder, writer: Writer) -> None:
        super().__init__(events=events)
        self._writer = writer
        self._statuses = WrittenStatus()
        self._bases: dict[str, _Base] = {}

    def is_ours(self, cm: ConfigMapView) -> bool:
        """Whether ``cm``'s status annotations are what our last write made."""
        return self._statuses.is_ours(
            key=key_of(cm),
            resource_version=cm.resource_version,
            shown=_status_annotations(cm.annotations),
        )

    def previous(self, cm: ConfigMapView) -> ConsumerStatus:
        key = key_of(cm)
        written = self._statuses.written(key=key, uid=cm.uid, resource_version=cm.resource_version)
        if written is None:
            previous = ConsumerStatus.from_annotations(cm.annotations)
            held: Mapping[str, str] = cm.annotations
        else:
            previous, held = ConsumerStatus.from_body(written), status_annotations(written)
        self._bases[str(key)] = _Base(
            key=key,
            namespace=cm.namespace,
            name=cm.name,
            uid=cm.uid,
            resource_version=cm.resource_version,
            previous=dict(held),
        )
        return previous

    def forget(self, key: ObjectKey) -> None:
        self._statuses.forget(key)
        self._bases.pop(str(key), None)

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        base = self._bases[key]
        annotations = status.to_annotations()
        if all(base.previous.get(k) == v for k, v in annotations.items()):
            return False
        self._statuses.sending(key=base.key, shown=annotations)
        done = await self._writer.apply(
            resource=CONFIGMAPS,
            namespace=base.namespace,
            name=base.name,
            body={"metadata": {"annotations": annotations}},
        )
        self._statuses.wrote(
            key=base.key,
            uid=base.uid,
            base=base.resource_version,
            resource_version=done.resource_version,
            status=status.to_body(),
        )
        return True
