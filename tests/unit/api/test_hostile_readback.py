"""Hostile review: what the operator reads back from objects others can edit never raises.

The operator reads its own marks back: the instance annotations of a Deployment, a guest
ConfigMap's status annotations, a status's ``lastSyncState``. Anyone who can edit those
objects can write anything there. A digit string Python's ``int()`` refuses (more than
4,300 digits; a non-ASCII digit such as ``²``, which ``str.isdigit`` accepts) must read as
"absent", like any other unreadable value, not raise ``ValueError`` out of the projection
(which kills the Deployment watch) or out of a reconcile.

Aspects tested (table-driven over the hostile strings):
- ``DEPLOYMENT_PROJECTOR`` decodes a Deployment whose consumer-id, partition or saturation
  annotation holds one (a list page of it too);
- ``manifests.status_from_annotations`` reads a counter holding one as 0, and a JSON
  annotation (conditions, lastSyncState, learning) nested past Python's recursion limit as
  absent (it raised ``RecursionError``, not ``ValueError``: every pass of the guest failed);
- ``snapshot_from_state`` refuses a state keyed by one (None).
"""

import json

import pytest

from konsumerator.api import manifests
from konsumerator.domain import keys
from konsumerator.domain import status as status_keys
from konsumerator.domain.syncstate import snapshot_from_state
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR

HOSTILE = {"5000 digits": "9" * 5000, "superscript two": "²"}


def _deployment(annotation: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "orders-consumer-0",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "5",
            "annotations": {annotation: value},
        },
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}},
    }


ANNOTATIONS = [keys.CONSUMER_ID, keys.PARTITION, keys.CPU_SATURATION_LEVEL]


@pytest.mark.parametrize("annotation", ANNOTATIONS)
@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_deployment_annotation_no_int_can_hold_is_read_as_absent(
    annotation: str, value: str
) -> None:
    item = _deployment(annotation, value)
    observed = DEPLOYMENT_PROJECTOR.decode(json.dumps(item).encode())
    assert observed.name == "orders-consumer-0"
    page = {"metadata": {"resourceVersion": "9"}, "items": [item]}
    assert len(DEPLOYMENT_PROJECTOR.decode_page(json.dumps(page).encode()).items) == 1


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_guest_status_counter_no_int_can_hold_reads_as_zero(value: str) -> None:
    status = manifests.status_from_annotations({f"{keys.STATUS_PREFIX}expected": value})
    assert status["expected"] == 0


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_sync_state_keyed_by_no_partition_number_is_refused(value: str) -> None:
    state = {value: {"productionRate": 1, "consumptionRate": 1, "messageBehind": 1}}
    assert snapshot_from_state(state) is None


DEEP = "[" * 5_000 + "]" * 5_000
# The JSON annotations, and the status field each is read into.
JSON_ANNOTATIONS = {
    status_keys.CONDITIONS: "conditions",
    status_keys.LAST_SYNC_STATE: "lastSyncState",
    status_keys.LEARNING: "learning",
}


@pytest.mark.parametrize(("annotation", "field"), JSON_ANNOTATIONS.items())
def test_a_guest_status_annotation_too_deep_to_parse_reads_as_absent(
    annotation: str, field: str
) -> None:
    annotations = {annotation: DEEP, f"{keys.STATUS_PREFIX}expected": "3"}
    status = manifests.status_from_annotations(annotations)
    assert field not in status
    assert status["expected"] == 3
