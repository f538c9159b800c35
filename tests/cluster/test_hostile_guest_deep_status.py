"""Hostile review: guest status annotations nested too deeply to parse.

A guest ConfigMap's status lives in its ``konsumerator.lwolf.org/status.*`` annotations,
which anyone who may edit the ConfigMap can rewrite. Three of them are JSON
(``conditions``, ``last-sync-state``, ``learning``), read back at the start of every pass;
an unreadable value is meant to read as absent. JSON nested past Python's recursion limit
is not a ``ValueError`` but a ``RecursionError``, which was not caught: every pass of the
ConfigMap raised before it began, retried with backoff for ever, and nothing was created
or reported.

Aspects tested (an in-process guest-mode operator): a guest created with each of the
three annotations 5,000 levels deep (10 KB each) is reconciled as if they were absent:
its Deployment is created and its status annotations are written anew, readable, Ready.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import (
    configmap_annotations,
    consumer,
    eventually,
    guest_configmap,
    in_process_operator,
    managed,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

STATUS = keys.STATUS_PREFIX
LEVELS = 5_000
DEEP = "[" * LEVELS + "]" * LEVELS


def test_guest_status_annotations_too_deep_to_parse_read_as_absent(
    cluster: Cluster, namespace: str
) -> None:
    spec: dict[str, Any] = consumer("deep", namespace, num_partitions=1)["spec"]
    cm = guest_configmap("deep", namespace, spec)
    for name in ("conditions", "last-sync-state", "learning"):
        cm["metadata"]["annotations"][f"{STATUS}{name}"] = DEEP
    cluster.apply(cm)
    with in_process_operator(cluster, namespace=namespace) as op:
        found = eventually(
            lambda: configmap_annotations(cluster, namespace, "deep"),
            lambda a: (
                a.get(f"{STATUS}conditions", DEEP) != DEEP
                and a.get(f"{STATUS}missing") == "0"
                and '"Reconciled"' in a.get(f"{STATUS}conditions", "")
            ),
            timeout=30,
            what="the status annotations to be written anew, Ready",
        )
        assert op.alive
    assert sorted(managed(cluster, namespace)) == ["deep-consumer-0"]
    conditions = json.loads(found[f"{STATUS}conditions"])
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled"), ready
    assert found.get(f"{STATUS}last-sync-state") != DEEP
