"""One Consumer for the tests that replay the operator's pipeline (``simulating.Replay``).

The replay tests all drive the same Consumer, ``orders`` in ``default``: one ``consumer``
container (and a fixed ``sidecar`` if asked), three Prometheus queries,
``pendingScaleUpDuration`` 2m and ``pendingScaleDownDuration`` 10m, ``minSyncPeriod``
30s (so a step of 31 s refreshes metrics), ``tolerableLag`` 1m, ``recoveryTime`` 5m,
``ramPerCore`` 256Mi and a CPU floor of 100m. What a test is about is what it sets: the
builder's fields, keyword-only, each the field of the Consumer it names, and
``dataclasses.replace`` for a variant of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec
from konsumerator.simulating import Replay

NAME = "orders"
NAMESPACE = "default"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerBuilder:
    """The ``orders`` Consumer; ``None`` leaves a field out (the CRD's default)."""

    partitions: int = 2
    per_instance: int = 1
    predictor: Literal["adaptive", "naive"] = "adaptive"
    update_mode: Literal["Recreate", "InPlaceOrRecreate"] = "Recreate"
    rate_per_core: int = 2000
    critical_lag: str | None = "10m"
    target_utilization_percent: int | None = None
    restart_time: str | None = None
    fallback: Literal["min", "max", "none"] | None = None
    min_memory: str | None = None
    max_cpu: str = "8"
    max_memory: str | None = None
    min_sync: str | None = "30s"
    # A second container at a fixed 50m and 32Mi, which the operator sizes to its bounds.
    sidecar: bool = False

    def manifest(self) -> dict[str, Any]:
        """The Consumer as the apiserver would hold it."""
        return {
            "apiVersion": "konsumerator.lwolf.org/v1",
            "kind": "Consumer",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "numPartitions": self.partitions,
                "numPartitionsPerInstance": self.per_instance,
                "name": NAME,
                "namespace": NAMESPACE,
                "autoscaler": self._autoscaler(),
                "deploymentTemplate": {
                    "selector": {"matchLabels": {"app": NAME}},
                    "template": {
                        "metadata": {"labels": {"app": NAME}},
                        "spec": {"containers": self._containers()},
                    },
                },
                "resourcePolicy": {"containerPolicies": self._policies()},
            },
        }

    def load(self) -> tuple[manifests.Source, ConsumerSpec]:
        """The Consumer read as the operator reads it (``api.manifests``)."""
        return manifests.read(self.manifest())

    def replay(self) -> Replay:
        """A replay of the operator's pipeline over this Consumer, at virtual time 0."""
        source, spec = self.load()
        return Replay(source=source, spec=spec)

    def _autoscaler(self) -> dict[str, Any]:
        optional = {
            "targetUtilizationPercent": self.target_utilization_percent,
            "restartTime": self.restart_time,
        }
        return {
            "mode": "prometheus",
            "predictor": self.predictor,
            "updateMode": self.update_mode,
            **{k: v for k, v in optional.items() if v is not None},
            "pendingScaleUpDuration": "2m",
            "pendingScaleDownDuration": "10m",
            "prometheus": self._prometheus(),
        }

    def _prometheus(self) -> dict[str, Any]:
        optional = {"criticalLag": self.critical_lag, "fallbackStrategy": self.fallback}
        optional |= {"minSyncPeriod": self.min_sync}
        return {
            "address": ["http://127.0.0.1:9090"],
            "tolerableLag": "1m",
            "recoveryTime": "5m",
            "ratePerCore": self.rate_per_core,
            "ramPerCore": "256Mi",
            **{k: v for k, v in optional.items() if v is not None},
            **{q: {"query": q[0], "partitionLabel": "partition"} for q in _QUERIES},
        }

    def _containers(self) -> list[dict[str, Any]]:
        consumer = {"name": "consumer", "image": f"{NAME}:1"}
        return [consumer, {"name": "sidecar", "image": "side:1"}] if self.sidecar else [consumer]

    def _policies(self) -> list[dict[str, Any]]:
        floor = {"cpu": "100m"} | ({} if self.min_memory is None else {"memory": self.min_memory})
        ceiling = {"cpu": self.max_cpu} | (
            {} if self.max_memory is None else {"memory": self.max_memory}
        )
        consumer = {"containerName": "consumer", "minAllowed": floor, "maxAllowed": ceiling}
        if not self.sidecar:
            return [consumer]
        fixed = {"cpu": "50m", "memory": "32Mi"}
        return [consumer, {"containerName": "sidecar", "minAllowed": fixed, "maxAllowed": fixed}]


# Each query is named by its first letter: the replay hands the pipeline its snapshot
# without asking Prometheus, so only their presence matters.
_QUERIES = ("offset", "production", "consumption")
