"""Guest mode: ConfigMaps in one namespace carry ConsumerSpecs.

For teams that cannot install a CRD or hold cluster-wide permissions: the
operator runs with ``--namespace=NS`` and a namespaced Role, and reconciles
ConfigMaps annotated ``konsumerator.lwolf.org/managed`` (any value but a false
one, see ``manifests.is_managed``) whose ``consumer.yaml`` holds the spec.
The YAML is parsed within bounds of size, depth and alias expansion
(``api.limited_yaml``), so one hostile ConfigMap costs one bounded parse per
change, never a stalled event loop or a retry storm. The spec never passes a
schema, so every problem is named in a Warning Event and in the
``konsumerator.lwolf.org/status.conditions`` annotation, and nothing is
created from an invalid ConfigMap.

Status is written as the Go operator's ``konsumerator.lwolf.org/status.*``
annotations by server-side apply (we own only those keys), only when they
changed (``reporting.GuestReporter``); the watch predicate ignores changes to
those keys alone when our own writes made them.
"""

from collections.abc import Mapping
from typing import Any

from konsumerator.api import manifests
from konsumerator.controllers.reconciling import Pipeline
from konsumerator.controllers.reporting import GuestReporter
from konsumerator.domain import keys
from konsumerator.kube.projections import ConfigMapView
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.stores import ObjectKey, Store


def as_manifest(cm: ConfigMapView) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm.name,
            "namespace": cm.namespace,
            "uid": cm.uid,
            "annotations": dict(cm.annotations),
        },
        "data": dict(cm.data),
    }


def _inputs(cm: ConfigMapView) -> tuple[Mapping[str, str], dict[str, str], bool, str | None]:
    ours = {k: v for k, v in cm.annotations.items() if not k.startswith(keys.STATUS_PREFIX)}
    return cm.data, ours, cm.deleting, cm.undecodable


def spec_changed(old: ConfigMapView | None, new: ConfigMapView | None) -> bool:
    """Watch predicate: data or non-status annotations changed, or add/delete."""
    if old is None or new is None:
        return True
    return _inputs(old) != _inputs(new)


class ConfigMapController:
    def __init__(
        self,
        *,
        configmaps: Store[ConfigMapView],
        pipeline: Pipeline,
        reporter: GuestReporter,
    ) -> None:
        self._configmaps = configmaps
        self._pipeline = pipeline
        self._reporter = reporter

    def wants(self, old: ConfigMapView | None, new: ConfigMapView | None) -> bool:
        """Watch predicate: what ``spec_changed`` lets through, and any other change
        that our own last status write did not make (somebody else's status edit)."""
        if spec_changed(old, new) or new is None:
            return True
        return not self._reporter.is_ours(new)

    async def reconcile(self, key: ObjectKey) -> Result:
        cm = self._configmaps.get(key)
        if cm is None or cm.deleting or not manifests.is_managed(cm.annotations):
            # Not ours (or no longer): nothing is written, its Deployments stay.
            self._pipeline.forget(str(key))
            self._reporter.forget(key)
            return Result()
        # ConfigMaps have no generation; guest-mode status does not carry one.
        return await self._pipeline.reconcile(
            key=str(key),
            manifest=as_manifest(cm),
            previous=self._reporter.previous(cm),
            generation=0,
            undecodable=cm.undecodable,
            # Annotations share 256 KiB per object: lastSyncState gets what is left.
            state_budget_bytes=manifests.guest_state_budget(cm.annotations),
        )
