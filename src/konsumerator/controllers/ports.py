"""What a reconcile pass needs from the world, as small Protocols.

``reconciling.Pipeline`` depends on these only, so one pass runs the same
way whoever drives it: ``app.py`` wires the real ones (the Deployment watch
cache, the Prometheus provider, server-side apply, Events on the API
server); ``konsumerator simulate`` and the autoscaling scorecard wire an
in-memory cluster, a timeline of metrics and a virtual clock
(``simulating``).
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from konsumerator.api import manifests
from konsumerator.controllers.outcomes import Outcome
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.planning import Metrics, Plan
from konsumerator.domain.pods import ObservedPod
from konsumerator.domain.status import ConsumerStatus
from konsumerator.prom.queries import PrometheusConfig
from konsumerator.prom.results import ProviderResult


class DeploymentsView(Protocol):
    """What is read: the Deployments as last observed, by index (the owner's UID)."""

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedDeployment]: ...


class PodsView(Protocol):
    """What is read (in-place mode): the pods of managed Deployments, as last observed,
    by index (``namespace/deployment``)."""

    def by_index(self, *, index: str, value: str) -> Sequence[ObservedPod]: ...


@runtime_checkable
class InstancePodsView(PodsView, Protocol):
    """A ``PodsView`` that also answers for all of a pass's instances at once.

    ``instance_pods`` is ``{d.name: by_index(index="deployment", value=f"{d.namespace}/
    {d.name}") for d in deployments}``, but may be kept from pass to pass (and shared:
    nobody mutates it) where the view knows what changed: the simulator's in-memory pods
    (``simulating.MemoryPods``), where 100 instances' lookups were a tenth of a pass.
    """

    def instance_pods(
        self, *, deployments: Sequence[ObservedDeployment]
    ) -> Mapping[str, Sequence[ObservedPod]]: ...


class MetricsSource(Protocol):
    """What is read: a metrics snapshot, refreshed at most every ``minSyncPeriod``."""

    async def get(
        self,
        *,
        key: str,
        config: PrometheusConfig,
        num_partitions: int,
        min_sync_period_seconds: float,
        now: datetime,
    ) -> ProviderResult: ...

    def seed(self, *, key: str, snapshot: MetricsSnapshot, synced_at: datetime) -> None: ...

    def forget(self, *, key: str) -> None: ...


class Actuator(Protocol):
    """What is done: exactly the plan's writes, every failure collected."""

    async def act(self, *, plan: Plan, namespace: str, owner_uid: str) -> Outcome: ...


class Reporter(Protocol):
    """Where a pass reports: the object's status, and what it did and what went wrong
    (Events, the pass's log line). One per mode (``reporting``): the status goes to the
    Consumer's status subresource or to a guest ConfigMap's annotations."""

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        """Write ``status`` unless the object already shows it; whether it wrote."""
        ...

    async def passed(
        self,
        *,
        key: str,
        source: manifests.Source,
        plan: Plan,
        outcome: Outcome,
        metrics: Metrics,
        refusal: str | None,
    ) -> None: ...

    async def rejected(self, *, manifest: Mapping[str, Any], reason: str, message: str) -> None:
        """An object that cannot be used (invalid spec, undecodable)."""
        ...
