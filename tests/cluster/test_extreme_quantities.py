"""The largest and smallest quantities Konsumerator can write are ones the real apiserver accepts.

The unit tier fuzzes specs and metrics and checks every rendered quantity with our own
parser against the int64 milli-unit bound (tests/unit/api/test_spec_fuzzing.py). This
proves the other half on a real kube-apiserver: Deployments rendered by ``plan`` for
extreme-but-valid inputs are accepted by a server-side apply (the operator's own write,
``dryRun=All`` so nothing is stored), and the apiserver reads back the same amounts.

Aspects tested:

* policies at the bound: ``maxAllowed`` of 9223372036854775807m CPU and 9223372036854775
  bytes of memory with ``fallbackStrategy: max``, i.e. requests = limits = the maximum;
* an estimate beyond every bound (a lag of 1e300 seconds on a container without a
  maximum), capped by the planner at the largest CPU (whole cores) and memory;
* the smallest non-zero amounts (1m CPU, 1 byte of memory) and binary-SI memory formats.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from konsumerator.api.v1 import parse_spec, to_config
from konsumerator.domain import keys, planning, quantities
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.resources import MAX_CPU_M, MAX_MEM_B
from konsumerator.domain.specs import Owner
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(namespace: str, *, policy: dict[str, Any] | None, ram: str = "1Gi") -> dict[str, Any]:
    return {
        "numPartitions": 2,
        "numPartitionsPerInstance": 1,
        "name": "extreme",
        "namespace": namespace,
        "autoscaler": {
            "mode": "prometheus",
            "predictor": "naive",  # the naive predictor's arithmetic at the extremes
            "prometheus": {
                "address": ["http://127.0.0.1:9090"],
                "offset": {"query": "o", "partitionLabel": "partition"},
                "production": {"query": "p", "partitionLabel": "partition"},
                "consumption": {"query": "c", "partitionLabel": "partition"},
                "ratePerCore": 1,
                "ramPerCore": ram,
                "recoveryTime": "1s",
                "fallbackStrategy": "max",
            },
        },
        "deploymentTemplate": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "extreme"}},
            "template": {
                "metadata": {"labels": {"app": "extreme"}},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/x:1"}]},
            },
        },
        "resourcePolicy": {"containerPolicies": [policy]} if policy else {},
    }


def _render(spec: dict[str, Any], snapshot: MetricsSnapshot | None) -> list[dict[str, Any]]:
    config = to_config(parse_spec(spec))
    plan = planning.plan(
        config=config,
        owner=Owner(api_version="v1", kind="ConfigMap", name="extreme", uid="0000-extreme"),
        deployments=[],
        metrics=planning.Metrics(snapshot=snapshot, refreshed=True, synced_at=NOW),
        now=NOW,
    )
    return [a.body for a in plan.applies]


def _dry_run_apply(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    path = (
        f"/apis/apps/v1/namespaces/{meta['namespace']}/deployments/{meta['name']}"
        f"?fieldManager={keys.FIELD_MANAGER}&force=true&dryRun=All"
    )
    response = cluster.request(
        "PATCH", path, json.dumps(body), content_type="application/apply-patch+yaml"
    )
    assert response.ok, response.text
    stored: dict[str, Any] = response.json()
    return stored


def _resources(deployment: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    return resources


def _same_amounts(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for side in ("requests", "limits"):
        for name, text in ours.get(side, {}).items():
            assert quantities.parse_quantity(theirs[side][name]) == quantities.parse_quantity(
                text
            ), (side, name, text, theirs[side][name])


CASES: dict[str, tuple[dict[str, Any] | None, str, MetricsSnapshot | None]] = {
    "policy maxima at the int64 milli-unit bound, fallback max": (
        {
            "containerName": "main",
            "minAllowed": {"cpu": "1m", "memory": "1"},
            "maxAllowed": {"cpu": f"{quantities.MAX_MILLIS}m", "memory": str(MAX_MEM_B)},
        },
        "1Gi",
        None,
    ),
    "a lag of 1e300 s on a container without a maximum": (
        None,
        "1Gi",
        MetricsSnapshot(production={0: 2.0**62, 1: 1.0}, offset={0: 2.0**62, 1: 1e300}),
    ),
    "the smallest amounts": (
        {
            "containerName": "main",
            "minAllowed": {"cpu": "1m", "memory": "1"},
            "maxAllowed": {"cpu": "1m", "memory": "1"},
        },
        "1",
        None,
    ),
    "binary memory near the bound": (
        {"containerName": "main", "maxAllowed": {"cpu": "1", "memory": "8Pi"}},
        "1Ki",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_extreme_quantities_are_accepted_by_the_apiserver(
    cluster: Cluster, namespace: str, case: str
) -> None:
    policy, ram, snapshot = CASES[case]
    bodies = _render(_spec(namespace, policy=policy, ram=ram), snapshot)
    assert bodies
    for body in bodies:
        ours = _resources(body)
        stored = _dry_run_apply(cluster, body)
        _same_amounts(ours, _resources(stored))


def test_the_capped_estimate_is_the_largest_quantity() -> None:
    """What the lag case above sends: whole cores at the bound, memory at the bound."""
    _, ram, snapshot = CASES["a lag of 1e300 s on a container without a maximum"]
    bodies = _render(_spec("ns", policy=None, ram=ram), snapshot)
    limits = _resources(bodies[1])["limits"]
    assert quantities.cpu_millis(limits["cpu"]) == MAX_CPU_M
    assert quantities.memory_bytes(limits["memory"]) == MAX_MEM_B
