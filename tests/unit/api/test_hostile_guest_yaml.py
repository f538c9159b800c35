"""Hostile review: guest ``consumer.yaml`` documents that must be refused, naming the field.

A guest ConfigMap skips the apiserver's schema: the operator is the only validator, so a
value the CRD would refuse for a Consumer must be refused here too, and a document must
never be read differently from how it reads (YAML 1.1's quiet conversions).

Aspects tested (table-driven; each row edits one line of a valid document):
- refused, naming the field: a boolean where the CRD wants an integer (``numPartitions:
  yes`` / ``true``, ``ratePerCore: true``), a key given twice with different values;
- refused (regressions): ``!!python/object`` tags, ``.inf``, ``.nan``, ``1e400``,
  an unknown unicode key, a date where a string is wanted.
"""

from typing import Any

import pytest
import yaml

from konsumerator.api import manifests
from konsumerator.api.v1 import SpecError
from konsumerator.domain import keys


def _spec() -> dict[str, Any]:
    return {
        "numPartitions": 6,
        "numPartitionsPerInstance": 2,
        "name": "orders",
        "namespace": "ns",
        "autoscaler": {
            "mode": "prometheus",
            "prometheus": {
                "address": ["http://prometheus:9090"],
                "offset": {"query": "lag", "partitionLabel": "partition"},
                "production": {"query": "prod", "partitionLabel": "partition"},
                "consumption": {"query": "cons", "partitionLabel": "partition"},
                "ratePerCore": 1000,
                "ramPerCore": "1Gi",
                "recoveryTime": "30m",
            },
        },
        "deploymentTemplate": {
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {
                "metadata": {"labels": {"app": "orders"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }


BASE = yaml.safe_dump(_spec(), sort_keys=True)


def _configmap(text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "orders",
            "namespace": "ns",
            "uid": "u",
            "annotations": {keys.MANAGED: "true"},
        },
        "data": {keys.GUEST_SPEC_KEY: text},
    }


def _edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


FIELD = f"data.{keys.GUEST_SPEC_KEY}"

# row -> (document, the field the refusal must name)
REFUSED: dict[str, tuple[str, str]] = {
    "numPartitions: yes": (
        _edited("numPartitions: 6", "numPartitions: yes"),
        f"{FIELD}.numPartitions",
    ),
    "numPartitions: true": (
        _edited("numPartitions: 6", "numPartitions: true"),
        f"{FIELD}.numPartitions",
    ),
    "ratePerCore: true": (
        _edited("ratePerCore: 1000", "ratePerCore: true"),
        f"{FIELD}.autoscaler.prometheus.ratePerCore",
    ),
    "numPartitions twice": (
        _edited("numPartitions: 6", "numPartitions: 6\nnumPartitions: 8"),
        f"{FIELD}.numPartitions",
    ),
    "python object tag": (
        _edited("numPartitions: 6", "numPartitions: !!python/object/apply:os.system ['true']"),
        FIELD,
    ),
    "infinite partitions": (
        _edited("numPartitions: 6", "numPartitions: .inf"),
        f"{FIELD}.numPartitions",
    ),
    "NaN rate": (
        _edited("ratePerCore: 1000", "ratePerCore: .nan"),
        f"{FIELD}.autoscaler.prometheus.ratePerCore",
    ),
    "1e400 partitions": (
        _edited("numPartitions: 6", "numPartitions: 1e400"),
        f"{FIELD}.numPartitions",
    ),
    "unknown unicode key": (
        _edited("numPartitions: 6", "numPartitions: 6\nnümPartitions: 7"),
        FIELD,
    ),
    "a date as image": (_edited("image: busybox", "image: 2024-01-01"), FIELD),
}


@pytest.mark.parametrize("row", list(REFUSED))
def test_guest_documents_the_crd_would_refuse_are_refused_naming_the_field(row: str) -> None:
    text, field = REFUSED[row]
    with pytest.raises(SpecError) as caught:
        manifests.read(_configmap(text))
    assert any(p.startswith(field) for p in caught.value.problems), caught.value.problems


def test_the_valid_document_is_accepted() -> None:
    _, spec = manifests.read(_configmap(BASE))
    assert spec.num_partitions == 6
