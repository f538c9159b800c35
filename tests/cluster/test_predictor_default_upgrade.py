"""The ``predictor`` default on a real apiserver, and what an upgrade does to Consumers
stored before it (docs/compatibility.md: the adaptive-default row).

The CRD gives ``spec.autoscaler.predictor`` the structural-schema default ``adaptive``.
The apiserver applies such a default whenever it reads an object, from a request or
from storage, so it also reaches Consumers stored without the field under a CRD that had
no default (this operator's before the change, or the Go operator's). The test plays the
upgrade through:

* under the CRD without the default, a Consumer created without ``predictor`` is stored
  and read back without it;
* once the new CRD is applied, the same Consumer reads back with ``predictor: adaptive``
  (and the operator, parsing what it reads, sizes it with the adaptive predictor); one
  created with ``predictor: naive`` (the one-line opt-out) keeps ``naive``; a new one
  without the field is stored with ``adaptive``;
* the default is stored with the object's next write (here a status write, as the
  operator's first pass makes): put the old CRD back and the Consumer still reads
  ``adaptive``, so undoing the upgrade takes ``predictor: naive`` on the object, not a CRD
  rollback.

The Consumer CRD is shared by the session: whatever happens, the test leaves the current
CRD installed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from operating import consumer, consumer_path, crd_text, eventually, get_consumer, install_crd

from konsumerator.api import manifests
from konsumerator.api.v1 import to_config
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

TIMEOUT = 120.0


def _without_the_default(text: str) -> str:
    """The current CRD with no default on ``predictor``: the CRD before the change."""
    crd = yaml.safe_load(text)
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        predictor = spec["properties"]["autoscaler"]["properties"]["predictor"]
        assert predictor.pop("default") == "adaptive"
    return yaml.safe_dump(crd)


def _apply_crd(cluster: Cluster, text: str) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=text)


def _manifest(name: str, namespace: str, predictor: str | None) -> dict[str, Any]:
    manifest = consumer(name, namespace, prometheus_url="http://127.0.0.1:9090")
    del manifest["spec"]["autoscaler"]["predictor"]
    if predictor is not None:
        manifest["spec"]["autoscaler"]["predictor"] = predictor
    return manifest


def _served_default(cluster: Cluster, namespace: str) -> str | None:
    """What the apiserver currently fills in for a Consumer without ``predictor``, asked
    with a server-side dry run (nothing stored). A CRD change reaches the served
    schema a moment after the write, so callers wait on this."""
    manifest = _manifest("probe", namespace, None)
    out = cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=yaml.safe_dump(manifest)
    ).stdout
    value: str | None = yaml.safe_load(out)["spec"]["autoscaler"].get("predictor")
    return value


def _predictor(cluster: Cluster, namespace: str, name: str) -> str | None:
    value: str | None = get_consumer(cluster, namespace, name)["spec"]["autoscaler"].get(
        "predictor"
    )
    return value


@pytest.fixture
def old_crd(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The CRD without the default installed and served; the current one put back after."""
    current = crd_text()
    old = _without_the_default(current)
    _apply_crd(cluster, old)
    try:
        eventually(
            lambda: _served_default(cluster, namespace),
            lambda value: value is None,
            timeout=TIMEOUT,
            what="the CRD without a predictor default to be served",
        )
        yield old
    finally:
        _apply_crd(cluster, current)
        install_crd(cluster)
        eventually(
            lambda: _served_default(cluster, namespace),
            lambda value: value == "adaptive",
            timeout=TIMEOUT,
            what="the current CRD to be served again",
        )


def test_an_upgrade_gives_stored_consumers_without_predictor_the_adaptive_default(
    cluster: Cluster, namespace: str, old_crd: str
) -> None:
    cluster.apply(_manifest("stored", namespace, None))
    cluster.apply(_manifest("opted-out", namespace, "naive"))
    assert _predictor(cluster, namespace, "stored") is None

    _apply_crd(cluster, crd_text())
    eventually(
        lambda: _predictor(cluster, namespace, "stored"),
        lambda value: value == "adaptive",
        timeout=TIMEOUT,
        what="the stored Consumer to read back with the new default",
    )
    assert _predictor(cluster, namespace, "opted-out") == "naive"
    cluster.apply(_manifest("new", namespace, None))
    assert _predictor(cluster, namespace, "new") == "adaptive"

    # What the operator does with what it reads: the adaptive predictor, or naive when asked.
    for name, want in (("stored", "adaptive"), ("opted-out", "naive")):
        _, spec = manifests.read(copy.deepcopy(get_consumer(cluster, namespace, name)))
        autoscaling = to_config(spec).autoscaling
        assert autoscaling is not None
        assert autoscaling.predictor.value == want

    # The next write stores the default: a CRD rollback does not bring naive back.
    cluster.api(
        "PATCH", consumer_path(namespace, "stored") + "/status", {"status": {"expected": 2}}
    )
    _apply_crd(cluster, old_crd)
    eventually(
        lambda: _served_default(cluster, namespace),
        lambda value: value is None,
        timeout=TIMEOUT,
        what="the CRD without a predictor default to be served again",
    )
    assert _predictor(cluster, namespace, "stored") == "adaptive"
    assert _predictor(cluster, namespace, "opted-out") == "naive"
