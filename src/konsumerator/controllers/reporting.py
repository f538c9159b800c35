"""One ``ports.Reporter`` per mode: it owns both what a pass writes as status and its Events.

* ``CrdReporter``: the status of a Consumer, by server-side apply on the ``/status``
  subresource (``ConsumerStatus.to_body``).
* ``GuestReporter``: the status of a guest ConfigMap, as the Go operator's
  ``konsumerator.lwolf.org/status.*`` annotations by server-side apply (we own only
  those keys; ``ConsumerStatus.to_annotations``).

What the status says is decided in the domain (``domain.status``); here it is only
written, and only when it differs from what the object holds: our last write while
the watch cache has not seen it, else the cache, which also shows anybody else's
write (``statuses``). A pass with nothing new to report makes no write. A guest
ConfigMap's write names the UID of the ConfigMap the pass started from: one deleted
meanwhile is not brought back (a server-side apply creates what it does not find),
and one created again under its name does not get the old one's status
(``Conflict``; the retry reads the new one). It names the version the pass started
from too, since the spec lives on the same object: ``consumer.yaml`` edited meanwhile
fails the write, and only a change that left the spec as the pass read it has the
write sent again at the new version (``GuestReporter._write``). The status subresource of a Consumer
cannot be written on that condition (the apiserver keeps the stored metadata, UID
included, for a status write, and only fails one for a missing object), so a
Consumer's status write names the ``resourceVersion`` the pass started from (or the
one our own last status write produced, while the cache has not shown it:
``statuses.WrittenStatus.precondition``) and its UID: a re-creation fails the write
as a ``Conflict`` (the status is dropped and the pass retried, rate-limited, over
what the cache then shows), while any other change since (another controller's
label, a spec edit) has the write sent again at the version the same object now
has (``Writer.apply_status``), so a busy co-writer never starves the status.

The controller reads the object and asks :meth:`previous` for the status the pass
starts from; the same reporter then writes the pass's status over that object (the
work queue never runs two passes of one object at once, so one remembered object
per key is enough).
"""

from abc import ABC, abstractmethod
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
from konsumerator.kube.writing import Writer, Written
from konsumerator.runtime import errors
from konsumerator.runtime.stores import ObjectKey, key_of


@dataclass(frozen=True, slots=True)
class _Base:
    """The object a pass started from, and its status as the object shows it."""

    key: ObjectKey
    namespace: str
    name: str
    uid: str
    resource_version: str
    # The version a status write names as its precondition (``WrittenStatus.precondition``).
    expected: str
    shown: Mapping[str, Any]
    # What the pass read its spec from, where the status shares the object with it (a
    # guest ConfigMap: ``_guest_inputs``); None for a Consumer (``observedGeneration``).
    inputs: object = None


class _StatusReporter(EventReporter, ABC):
    """Events, and a status written only when it differs from what the object shows.

    A mode says how the status shows on its object (``_shown``), when what it shows
    already says it (``_unchanged``) and how it is written (``_write``).
    """

    def __init__(self, *, events: EventRecorder, writer: Writer) -> None:
        super().__init__(events=events)
        self._writer = writer
        self._statuses = WrittenStatus()
        self._bases: dict[str, _Base] = {}

    def _start(
        self,
        *,
        obj: CustomObject | ConfigMapView,
        shown: Mapping[str, Any],
        inputs: object = None,
    ) -> ObjectKey:
        key = key_of(obj)
        self._bases[str(key)] = _Base(
            key=key,
            namespace=obj.namespace,
            name=obj.name,
            uid=obj.uid,
            resource_version=obj.resource_version,
            expected=self._statuses.precondition(
                key=key, uid=obj.uid, resource_version=obj.resource_version
            ),
            shown=shown,
            inputs=inputs,
        )
        return key

    def forget(self, key: ObjectKey) -> None:
        self._statuses.forget(key)
        self._bases.pop(str(key), None)

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        base = self._bases[key]
        shown = self._shown(status)
        if self._unchanged(shown=shown, held=base.shown):
            return False
        # Recorded before the request: the watch event can come back before its answer.
        self._statuses.sending(key=base.key, shown=shown)
        done = await self._write(base=base, shown=shown)
        self._statuses.wrote(
            key=base.key,
            uid=base.uid,
            base=base.resource_version,
            resource_version=done.resource_version,
            status=status.to_body(),
        )
        return True

    @abstractmethod
    def _shown(self, status: ConsumerStatus) -> dict[str, Any]: ...

    @abstractmethod
    def _unchanged(self, *, shown: Mapping[str, Any], held: Mapping[str, Any]) -> bool: ...

    @abstractmethod
    async def _write(self, *, base: _Base, shown: dict[str, Any]) -> Written: ...


class CrdReporter(_StatusReporter):
    """CRD mode: Events, and the Consumer's status subresource."""

    def is_ours(self, obj: CustomObject) -> bool:
        """Whether ``obj`` shows what our last status write made (the watch predicate)."""
        return self._statuses.is_ours(
            key=key_of(obj), resource_version=obj.resource_version, shown=obj.status
        )

    def previous(self, obj: CustomObject) -> ConsumerStatus:
        """The status a pass over ``obj`` starts from (and compares its own with)."""
        written = self._statuses.written(
            key=key_of(obj), uid=obj.uid, resource_version=obj.resource_version
        )
        held = dict(obj.status if written is None else written)
        self._start(obj=obj, shown=held)
        return ConsumerStatus.from_body(held)

    def _shown(self, status: ConsumerStatus) -> dict[str, Any]:
        return status.to_body()

    def _unchanged(self, *, shown: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
        # The whole status: a field left out (lastSyncState over its budget) is a change.
        # But not a condition of a type we do not write: another writer's (a policy
        # engine's ``Audited``), which our apply never removes; counted, it made every
        # pass a status write.
        return shown == _without_foreign_conditions(held, shown=shown)

    async def _write(self, *, base: _Base, shown: dict[str, Any]) -> Written:
        return await self._writer.apply_status(
            resource=CONSUMERS,
            namespace=base.namespace,
            name=base.name,
            status=shown,
            resource_version=base.expected,
            uid=base.uid,
        )


def _without_foreign_conditions(
    held: Mapping[str, Any], *, shown: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``held`` without the conditions whose type ``shown`` has none of (in their order)."""
    conditions = held.get("conditions")
    if not isinstance(conditions, list):
        return held
    ours = {c.get("type") for c in shown.get("conditions") or () if isinstance(c, Mapping)}
    kept = [c for c in conditions if not isinstance(c, Mapping) or c.get("type") in ours]
    return held if len(kept) == len(conditions) else {**held, "conditions": kept}


def _status_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if k.startswith(keys.STATUS_PREFIX)}


def _guest_inputs(cm: ConfigMapView) -> tuple[dict[str, str], dict[str, str]]:
    """What a guest pass reads its spec from: the data and every annotation but ours."""
    others = {k: v for k, v in cm.annotations.items() if not k.startswith(keys.STATUS_PREFIX)}
    return dict(cm.data), others


class GuestReporter(_StatusReporter):
    """Guest mode: Events, and the ConfigMap's ``status.*`` annotations."""

    def is_ours(self, cm: ConfigMapView) -> bool:
        """Whether ``cm``'s status annotations are what our last write made."""
        return self._statuses.is_ours(
            key=key_of(cm),
            resource_version=cm.resource_version,
            shown=_status_annotations(cm.annotations),
        )

    def previous(self, cm: ConfigMapView) -> ConsumerStatus:
        """The status a pass over ``cm`` starts from (and compares its own with)."""
        written = self._statuses.written(
            key=key_of(cm), uid=cm.uid, resource_version=cm.resource_version
        )
        inputs = _guest_inputs(cm)
        if written is None:
            self._start(obj=cm, shown=dict(cm.annotations), inputs=inputs)
            return ConsumerStatus.from_annotations(cm.annotations)
        self._start(obj=cm, shown=status_annotations(written), inputs=inputs)
        return ConsumerStatus.from_body(written)

    def _shown(self, status: ConsumerStatus) -> dict[str, Any]:
        return status.to_annotations()

    def _unchanged(self, *, shown: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
        # Every status annotation is always written, so none can be left out.
        return all(held.get(k) == v for k, v in shown.items())

    async def _write(self, *, base: _Base, shown: dict[str, Any]) -> Written:
        """The status annotations, onto the ConfigMap the pass read (its UID) while it
        still holds the spec the pass read: the spec shares the object with its status,
        so a status that landed after an edit of ``consumer.yaml`` would describe a spec
        the object no longer has. The write names the version the pass started from; on
        a conflict, one GET tells whether only something else moved (a label stamped by
        a GitOps tool): then it is sent again at the version the object now has, as a
        Consumer's is; a changed spec (or another object) leaves the ``Conflict``, and
        the pass is retried over what the cache then shows."""
        try:
            return await self._apply_annotations(base=base, shown=shown, version=base.expected)
        except errors.Conflict:
            now = await self._writer.configmap(namespace=base.namespace, name=base.name)
            if now is None or now.uid != base.uid or _guest_inputs(now) != base.inputs:
                raise
        return await self._apply_annotations(base=base, shown=shown, version=now.resource_version)

    async def _apply_annotations(
        self, *, base: _Base, shown: dict[str, Any], version: str
    ) -> Written:
        return await self._writer.apply(
            resource=CONFIGMAPS,
            namespace=base.namespace,
            name=base.name,
            body={"metadata": {"annotations": shown}},
            uid=base.uid,
            resource_version=version,
        )
