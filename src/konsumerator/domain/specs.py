"""The planner's view of a Consumer: every default resolved, every unit exact.

The API layer validates what a user wrote (CRD or guest-mode ConfigMap) and
converts it into these values; the planner never sees strings, optionals that
mean "default", or pydantic models. CPU is in millicores, memory in bytes and
durations in seconds, all plain numbers, so the arithmetic of the Go operator
can be reproduced exactly and tested without parsing.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from konsumerator.domain.quantities import Format


class Predictor(StrEnum):
    """How an instance's need is computed from its metrics."""

    # The Go operator's NaivePredictor, to the integer (``domain.prediction``).
    NAIVE = "naive"
    # Headroom, restart cost, urgent scale-up, no flapping (``domain.adaptive``).
    ADAPTIVE = "adaptive"


class FallbackStrategy(StrEnum):
    MIN = "min"
    MAX = "max"


class UpdateMode(StrEnum):
    """How a new size reaches the pods (``spec.autoscaler.updateMode``).

    ``InPlaceOrRecreate``: running pods are resized through ``pods/resize``
    and the Deployment template keeps its size until a rollout happens anyway
    (or in-place is refused); ``Recreate``: the size goes into the template,
    so every resize is a rollout (the Go operator's only way).
    """

    IN_PLACE_OR_RECREATE = "InPlaceOrRecreate"
    RECREATE = "Recreate"


@dataclass(frozen=True, slots=True)
class Bounds:
    """One container's min/max for cpu and memory; None means unbounded on that side."""

    min_cpu_m: int | None = None
    min_mem_b: int | None = None
    max_cpu_m: int | None = None
    max_mem_b: int | None = None


@dataclass(frozen=True, slots=True)
class GlobalPool:
    """A cap on the sum of requests over all instances of one Consumer."""

    cpu_m: int | None = None
    mem_b: int | None = None


@dataclass(frozen=True, slots=True)
class Autoscaling:
    """How to size instances; None on the Consumer means "never resize"."""

    rate_per_core: int
    ram_per_core_b: int
    cpu_increment_m: int = 100
    recovery_s: float = 1800.0
    tolerable_lag_s: float | None = None
    critical_lag_s: float | None = None
    min_sync_period_s: float = 60.0
    pending_up_s: float = 300.0
    pending_down_s: float = 900.0
    fallback: FallbackStrategy = FallbackStrategy.MIN
    # The format ramPerCore was written in, so "1Gi" per core renders as "2Gi".
    memory_format: Format = Format.DECIMAL_SI
    predictor: Predictor = Predictor.NAIVE
    # The adaptive predictor's target utilisation u and actuation time R
    # (seconds a resize stops consumption: a pod restart under Recreate).
    target_utilization: float = 0.95
    actuation_s: float = 30.0
    # Whether a CPU-usage query is configured, so the adaptive predictor may learn
    # the real rate per core (``domain.adaptive.learning``).
    learns: bool = False
    # The learned rate per core this pass sizes with (adaptive only; set by the
    # pipeline from the Consumer's status, never by the user). None: ``rate_per_core``.
    learned_rate_per_core: int | None = None
    # ``restartBudgetPercent``: the share of the instances one pass may restart for a
    # scale-down (``domain.disruption``). The API's default is 10; a config built
    # directly (tests, tools) gets the Go operator's way, no budget, unless it asks.
    restart_budget_percent: int = 100

    @property
    def sizing_rate_per_core(self) -> int:
        """The messages/s per core CPU is computed from: learned, else configured."""
        return self.learned_rate_per_core or self.rate_per_core


def _frozen(d: Mapping[str, Bounds] | None = None) -> Mapping[str, Bounds]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything the planner needs to know about one Consumer."""

    name: str
    namespace: str
    num_partitions: int
    per_instance: int
    deployment_template: Mapping[str, Any]
    partition_env_key: str = "KONSUMERATOR_PARTITION"
    # None: metrics are not used (mode is not prometheus, or autoscaling is
    # disabled on the Consumer); instances keep or get fallback resources.
    autoscaling: Autoscaling | None = None
    # The Consumer carries the disable-autoscaler annotation: every container
    # gets its policy's minAllowed (nothing where there is no policy).
    paused: bool = False
    policies: Mapping[str, Bounds] = field(default_factory=_frozen)
    global_pool: GlobalPool | None = None
    fallback: FallbackStrategy = FallbackStrategy.MIN
    # The API's default is InPlaceOrRecreate (api.v1); a config built directly (tests,
    # tools) gets the Go operator's way unless it asks.
    update_mode: UpdateMode = UpdateMode.RECREATE

    @property
    def in_place(self) -> bool:
        return self.update_mode is UpdateMode.IN_PLACE_OR_RECREATE


@dataclass(frozen=True, slots=True)
class Owner:
    """The object that owns the Deployments: a Consumer, or a guest-mode ConfigMap."""

    api_version: str
    kind: str
    name: str
    uid: str
