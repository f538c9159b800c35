"""A guest ConfigMap's status never describes a spec the ConfigMap no longer holds.

The spec (``data.consumer.yaml``) and the status (``status.*`` annotations) live on one
object, so ``consumer.yaml`` edited while a pass runs would otherwise get the old
spec's status. The write names the resourceVersion the pass started from (as a
Consumer's status write does); a conflict is sent again at the object's new version
only when its spec is still the one the pass read.

Aspects tested (the guest controller over an in-memory cache, a scripted pipeline and a
writer that refuses any version but the object's own; no API server, the apiserver side
is tests/cluster/test_hostile_guest_edited_mid_pass.py), table-driven:

* the write names the version the pass read;
* edited since (``consumer.yaml`` changed, or a non-status annotation such as the pause
  one): nothing is written, the ``Conflict`` reaches the controller (a retried pass);
* only something else moved (a label, our own status annotations): written once more at
  the version the ConfigMap now has;
* deleted, or deleted and created again (another UID): nothing is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from konsumerator.api import manifests
from konsumerator.controllers.configmap import ConfigMapController
from konsumerator.controllers.reporting import GuestReporter
from konsumerator.domain import keys
from konsumerator.kube.projections import ConfigMapView
from konsumerator.kube.writing import Written
from konsumerator.runtime import errors
from konsumerator.runtime.stores import Store

from .test_status_writes import KEY, NO_EVENTS, S0, S1, ScriptedPipeline

READ = ConfigMapView(
    namespace="ns",
    name="c",
    uid="u1",
    resource_version="5",
    annotations={keys.MANAGED: "true", **manifests.status_annotations(S0)},
    data={keys.GUEST_SPEC_KEY: "numPartitions: 2\n"},
)


class Server:
    """One ConfigMap (``now``); as the apiserver, an apply naming another UID, or a
    version (when it names one) other than the object's, is a Conflict."""

    def __init__(self, now: ConfigMapView | None) -> None:
        self.now = now
        self.sent: list[tuple[str | None, Mapping[str, str]]] = []

    async def apply(self, **kw: Any) -> Written:
        version = kw.get("resource_version")
        now = self.now
        if now is None or kw.get("uid") != now.uid or version not in (None, now.resource_version):
            raise errors.Conflict(status=409, reason="Conflict", message="precondition")
        self.sent.append((version, kw["body"]["metadata"]["annotations"]))
        return Written(namespace="ns", name="c", uid=now.uid, resource_version="99", generation=0)

    async def configmap(self, *, namespace: str, name: str) -> ConfigMapView | None:
        return self.now


def _moved(**changes: Any) -> ConfigMapView:
    return dataclasses.replace(READ, resource_version="6", **changes)


CASES: dict[str, tuple[ConfigMapView | None, str | None]] = {
    "unchanged": (READ, "5"),
    "a label stamped": (_moved(labels={"synced": "1"}), "6"),
    "status annotations rewritten by someone": (
        _moved(annotations={**READ.annotations, f"{keys.STATUS_PREFIX}expected": "7"}),
        "6",
    ),
    "consumer.yaml edited": (_moved(data={keys.GUEST_SPEC_KEY: "numPartitions: 3\n"}), None),
    "paused meanwhile": (
        _moved(annotations={**READ.annotations, keys.DISABLE_AUTOSCALER: "true"}),
        None,
    ),
    "deleted": (None, None),
    "created again": (_moved(uid="u2"), None),
}


@pytest.mark.parametrize(("now", "written_at"), CASES.values(), ids=CASES.keys())
async def test_a_guest_status_lands_only_on_the_spec_its_pass_read(
    now: ConfigMapView | None, written_at: str | None
) -> None:
    cache: Store[ConfigMapView] = Store()
    cache.upsert(READ)
    server = Server(now)
    reporter = GuestReporter(events=NO_EVENTS, writer=server)  # type: ignore[arg-type]
    controller = ConfigMapController(
        configmaps=cache,
        pipeline=ScriptedPipeline(reporter, S1),  # type: ignore[arg-type]
        reporter=reporter,
    )
    if written_at is None:
        with pytest.raises(errors.Conflict):
            await controller.reconcile(KEY)
        assert server.sent == []
        return
    await controller.reconcile(KEY)
    assert [version for version, _ in server.sent] == [written_at]
    assert server.sent[0][1][f"{keys.STATUS_PREFIX}outdated"] == "1"
