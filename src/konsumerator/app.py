"""The composition root: build every piece of the operator and run it.

Nothing else constructs clients, caches or controllers; everything below
receives what it needs as arguments, so tests can build the same graph
against a real API server with their own settings.

Watches, and why they are shaped so:

* Deployments, selected by ``app.kubernetes.io/managed-by=konsumerator``: the
  cache holds only what we manage (not every Deployment of the cluster), and
  is indexed by controller UID so a Consumer finds its instances in O(1). Only
  events that change what a pass reads wake the Consumer, batched
  (``controllers.waking``).
* Pods of managed Deployments (in-place resizing), selected by the same label,
  which in-place mode puts on the pod template; projected to metadata and
  resources (``kube.pods``) and indexed by their Deployment, so a pass reads
  an instance's pods in O(1); a pod's event wakes the Consumer that owns its
  Deployment only when it changes what a pass derives (a resize to make,
  actuated or refused; not a pod starting at its template's size:
  ``controllers.waking.PodWakes``), and so does a ReplicaSet's (through its
  pods).
* Consumers (CRD mode, cluster-wide) or ConfigMaps (guest mode, one
  namespace). Status-only changes that our own last write made are filtered
  out, so our status writes never trigger a reconcile; anybody else's status
  edit does, and the pass puts the status back (``controllers.statuses``).
"""

import asyncio
import concurrent.futures
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx2
import structlog
from prometheus_client import ProcessCollector

from konsumerator.controllers import waking
from konsumerator.controllers.acting import SLICE, KubeActuator
from konsumerator.controllers.configmap import ConfigMapController
from konsumerator.controllers.consumer import ConsumerController
from konsumerator.controllers.owned import REPLICASET_UID_INDEX, OwnedPods, replicaset_uid_index
from konsumerator.controllers.ports import Reporter
from konsumerator.controllers.reconciling import (
    OWNER_INDEX,
    POD_INDEX,
    Pipeline,
    owner_index,
    pod_index,
)
from konsumerator.controllers.reporting import CrdReporter, GuestReporter
from konsumerator.domain import keys
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.planning import Plan
from konsumerator.domain.pods import ObservedPod, ObservedReplicaSet
from konsumerator.kube import connecting
from konsumerator.kube.eventing import EventRecorder
from konsumerator.kube.leases import LeaseClient
from konsumerator.kube.pods import POD_PROJECTOR, REPLICASET_PROJECTOR
from konsumerator.kube.projections import (
    CONFIGMAP_PROJECTOR,
    CUSTOM_OBJECT_PROJECTOR,
    DEPLOYMENT_PROJECTOR,
    LEASE_VIEW_PROJECTOR,
    LeaseView,
)
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import (
    CONFIGMAPS,
    CONSUMERS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DEPLOYMENTS,
    LEASES,
    PODS,
    REPLICASETS,
)
from konsumerator.kube.watching import ListWatch
from konsumerator.kube.writing import Writer
from konsumerator.obs.consumers import ConsumerMetrics
from konsumerator.obs.metrics import RuntimeMetrics
from konsumerator.obs.prometheus import PrometheusMetrics
from konsumerator.prom.connections import OriginLimits
from konsumerator.prom.providing import REFRESH_PATIENCE_S, MetricsProvider
from konsumerator.prom.urls import AddressPolicy
from konsumerator.runtime.collecting import FrozenSurvivors
from konsumerator.runtime.controlling import Controller
from konsumerator.runtime.electing import LeaderElector, LeadershipLost, default_identity
from konsumerator.runtime.expecting import Expectations
from konsumerator.runtime.managing import ComponentEnded, Endpoint, Manager
from konsumerator.runtime.reflecting import Reflector
from konsumerator.runtime.serving import BindError
from konsumerator.runtime.stores import ObjectKey, Store, key_of

# The Deployment cache by UID: a ReplicaSet names its Deployment by UID.
DEPLOYMENT_UID_INDEX = "uid"


@dataclass(frozen=True, slots=True)
class Settings:
    kubeconfig: str | None = None
    # Guest mode when set: ConfigMaps in this namespace, namespaced RBAC only.
    namespace: str | None = None
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    # None: not served. The CLI serves both on loopback unless told otherwise: they are
    # plain HTTP without authentication (see docs/operations.md).
    metrics_bind: Endpoint | None = None
    health_bind: Endpoint | None = None
    # --prometheus-allowed-hosts patterns; empty: every address may be requested.
    prometheus_allowed_hosts: tuple[str, ...] = ()
    max_concurrent_reconciles: int = 4
    # The most writes one pass makes (``acting.SLICE``); not a flag: tests make it small.
    writes_per_pass: int = SLICE
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"


def parse_endpoint(text: str) -> Endpoint | None:
    """``host:port``, ``[ipv6]:port``, ``:port`` (all interfaces, said explicitly) or ``0``
    (disabled); ``ValueError`` for a port that is no number from 0 to 65535."""
    if text in {"0", ""}:
        return None
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # as Go's net.SplitHostPort (controller-runtime's flags) reads it
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} of {text!r} is not from 0 to 65535")
    return Endpoint(host or "0.0.0.0", number)


def configure_logging(*, fmt: str, level: str) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


# Plans of Consumers with more instances than this go to a thread of their own: 1,000
# plan in well under a second, 100,000 in 10-30 s.
LARGE_PLAN: Final = 1_000


class Planners:
    """The planner's two threads (``reconciling.Offload``): one for the plans of
    Consumers of more than ``LARGE_PLAN`` instances, one for the others, each one plan
    at a time, so that no Consumer's plan waits behind a large one's (a tenant's
    100,000 instances held every other Consumer's plan for 10-30 s)."""

    def __init__(self) -> None:
        self._small = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="konsumerator-plan"
        )
        self._large = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="konsumerator-plan-large"
        )

    def offload(self, work: Callable[[], Plan], /, *, instances: int) -> Awaitable[Plan]:
        lane = self._large if instances > LARGE_PLAN else self._small
        return asyncio.get_running_loop().run_in_executor(lane, work)

    def shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        for lane in (self._small, self._large):
            lane.shutdown(wait=wait, cancel_futures=cancel_futures)


@dataclass(slots=True)
class Operator:
    manager: Manager
    client: ApiClient
    prometheus: httpx2.AsyncClient
    planner: Planners
    # Its refreshes that no pass waited out run as tasks of their own.
    metrics_provider: MetricsProvider | None = None

    async def run(self) -> None:
        try:
            await self.manager.run()
        finally:
            # A plan still running is left to finish on its own: nothing waits for it.
            self.planner.shutdown(wait=False, cancel_futures=True)
            if self.metrics_provider is not None:
                self.metrics_provider.close()
            await self.prometheus.aclose()
            await self.client.aclose()


def build(settings: Settings, *, now: Callable[[], datetime] = utc_now) -> Operator:
    metrics = RuntimeMetrics()
    ProcessCollector(registry=metrics.registry)
    client = connecting.connect(kubeconfig=settings.kubeconfig, hook=metrics.api_request)
    identity = default_identity()
    guest = settings.namespace
    elector = None
    if settings.leader_elect:
        lease_namespace = (
            guest
            or settings.leader_election_namespace
            or connecting.default_namespace(kubeconfig=settings.kubeconfig)
        )
        elector = LeaderElector(
            store=LeaseClient(client=client),
            namespace=lease_namespace,
            name=keys.lease_name(namespace=guest),
            identity=identity,
            observer=metrics,
        )
    # Every write but the Lease's goes through the elector's fence.
    writer = Writer(client=client, fence=elector)
    events = EventRecorder(writer=writer, instance=identity)

    deployments: Store[ObservedDeployment] = Store(
        indexers={
            OWNER_INDEX: owner_index,
            DEPLOYMENT_UID_INDEX: lambda d: [d.uid] if d.uid else [],
        }
    )

    def managed(name: str, resource: Any, projector: Any, store: Store[Any]) -> Reflector[Any]:
        """A watch of the objects the operator manages (selected by its managed-by label)."""
        return Reflector(
            name=name,
            source=ListWatch(
                client=client,
                resource=resource,
                projector=projector,
                namespace=guest,
                label_selector=f"{keys.LABEL_MANAGED_BY}={keys.MANAGED_BY_VALUE}",
            ),
            store=store,
            observer=metrics,
        )

    pods: Store[ObservedPod] = Store(indexers={POD_INDEX: pod_index})
    # The pods' ReplicaSets, metadata only: the owner chain pod -> ReplicaSet ->
    # Deployment is checked by UID before a pod is taken as an instance's.
    replicasets: Store[ObservedReplicaSet] = Store(
        indexers={REPLICASET_UID_INDEX: replicaset_uid_index}
    )
    reflectors: list[Reflector[Any]] = [
        managed("deployments", DEPLOYMENTS, DEPLOYMENT_PROJECTOR, deployments),
        managed("pods", PODS, POD_PROJECTOR, pods),
        managed("replicasets", REPLICASETS, REPLICASET_PROJECTOR, replicasets),
    ]
    owned_pods = OwnedPods(
        pods=pods,
        replicasets=replicasets,
        deployment=lambda namespace, name: deployments.get(ObjectKey(namespace, name)),
    )
    # No overall connection limit, one per origin: a Consumer's silent addresses must not
    # take the connections another Consumer's queries need (``prom.connections``).
    prometheus = httpx2.AsyncClient(trust_env=False, transport=OriginLimits())
    consumer_metrics = ConsumerMetrics(registry=metrics.registry)

    def contended() -> bool:
        """Whether a Consumer waits for a worker (a pass then yields its worker soon)."""
        return len(controller.queue) > 0

    # Plans are computed off the event loop, in two threads (``Planners``).
    planner = Planners()

    def wake(key: str) -> None:
        """Ask for the pass of ``namespace/name`` (its metrics refresh has ended)."""
        namespace, _, name = key.partition("/")
        controller.enqueue(ObjectKey(namespace, name))

    # A refresh is waited for REFRESH_PATIENCE_S at most: a Prometheus that never
    # answers (a Consumer author's address) must not hold a reconcile worker.
    provider = MetricsProvider(
        client=prometheus,
        observer=PrometheusMetrics(registry=metrics.registry),
        patience_s=REFRESH_PATIENCE_S,
        wake=wake,
    )

    # Creations made and not shown by the watch yet: a pass does not send them again
    # (``runtime.expecting``), but for one the watch saw deleted.
    expectations = Expectations()

    def settle(old: ObservedDeployment | None, new: ObservedDeployment | None) -> None:
        if new is None and old is not None and old.controller_uid:
            expectations.gone(owner=old.controller_uid, name=old.name, uid=old.uid)

    deployments.subscribe(settle)

    def pipeline(reporter: Reporter) -> Pipeline:
        return Pipeline(
            expectations=expectations,
            offload=planner.offload,
            actuator=KubeActuator(
                client=client,
                writer=writer,
                limit=settings.writes_per_pass,
                contended=contended,
            ),
            reporter=reporter,
            provider=provider,
            deployments=deployments,
            pods=owned_pods,
            now=now,
            metrics=consumer_metrics,
            addresses=AddressPolicy.parse(settings.prometheus_allowed_hosts),
        )

    # The primary objects: guest-mode ConfigMaps in one namespace, or Consumers.
    primary: Store[Any] = Store(indexers={"uid": lambda o: [o.uid]})
    reconcile: ConfigMapController | ConsumerController
    if guest:
        name = "configmap"
        source: ListWatch[Any] = ListWatch(
            client=client, resource=CONFIGMAPS, projector=CONFIGMAP_PROJECTOR, namespace=guest
        )
        # One reporter per mode: it writes the status where the mode keeps it, and Events.
        guest_reporter = GuestReporter(events=events, writer=writer)
        reconcile = ConfigMapController(
            configmaps=primary, pipeline=pipeline(guest_reporter), reporter=guest_reporter
        )
    else:
        name = "consumer"
        source = ListWatch(client=client, resource=CONSUMERS, projector=CUSTOM_OBJECT_PROJECTOR)
        crd_reporter = CrdReporter(events=events, writer=writer)
        reconcile = ConsumerController(
            consumers=primary, pipeline=pipeline(crd_reporter), reporter=crd_reporter
        )
    reflectors.append(Reflector(name=f"{name}s", source=source, store=primary, observer=metrics))
    controller: Controller[ObjectKey] = Controller(
        name=name,
        reconcile=reconcile.reconcile,
        max_concurrent_reconciles=settings.max_concurrent_reconciles,
        observer=metrics,
    )
    controller.watches(primary, keys=lambda o: [key_of(o)], predicate=reconcile.wants)

    def owners(d: ObservedDeployment) -> list[ObjectKey]:
        """The object controlling ``d`` now, and the one our ``controller`` label names.

        The label matters when they differ: a Deployment of a deleted (or re-created)
        Consumer, or one whose ownerReference was edited, holds the name of an instance
        of the Consumer it was made for; its deletion frees that name, and only that
        Consumer cares (it reports NameConflict until then). Waking it is one pass,
        harmless if it has nothing to do. The label is capped at 63 characters, so a
        longer name is not found here: the conflict recheck timer of
        ``controllers.rechecking`` covers it (and Deployments the watch never shows).
        """
        found = (
            [key_of(o) for o in primary.by_index(index="uid", value=d.controller_uid)]
            if d.controller_uid
            else []
        )
        named = d.labels.get(keys.LABEL_CONTROLLER)
        if named:
            labelled = ObjectKey(d.namespace, named)
            if labelled not in found and primary.get(labelled) is not None:
                found.append(labelled)
        return found

    controller.watches(
        deployments, keys=owners, predicate=waking.deployment_wakes, batch_s=waking.BATCH_S
    )
    # Status-only versions keep what the planner found comparing them with its intent.
    deployments.subscribe(waking.keep_drift_memo)

    def pod_owners(p: ObservedPod) -> list[ObjectKey]:
        """The owners of the pod's Deployment (none while the cache does not show it)."""
        d = deployments.get(ObjectKey(p.namespace, p.deployment)) if p.deployment else None
        return owners(d) if d is not None else []

    # Only pod and ReplicaSet events that change what a pass derives (waking.PodWakes).
    pod_wakes = waking.PodWakes(
        deployment=lambda namespace, name: deployments.get(ObjectKey(namespace, name)),
        deployments_by_uid=lambda uid: deployments.by_index(index=DEPLOYMENT_UID_INDEX, value=uid),
        instance_pods=lambda d: pods.by_index(index=POD_INDEX, value=f"{d.namespace}/{d.name}"),
    )
    controller.watches(pods, keys=pod_owners, predicate=pod_wakes.pod, batch_s=waking.BATCH_S)

    def replicaset_owners(rs: ObservedReplicaSet) -> list[ObjectKey]:
        """The owners of the Deployment controlling ``rs``: its pods may count from now on."""
        if not rs.controller_uid:
            return []
        return [
            key
            for d in deployments.by_index(index=DEPLOYMENT_UID_INDEX, value=rs.controller_uid)
            for key in owners(d)
        ]

    controller.watches(
        replicasets,
        keys=replicaset_owners,
        predicate=pod_wakes.replicaset,
        batch_s=waking.BATCH_S,
    )

    if elector is not None:
        reflectors.append(_lease_watch(client=client, elector=elector, observer=metrics))
    manager = Manager(
        reflectors=reflectors,
        controllers=[controller],
        elector=elector,
        health_endpoint=settings.health_bind,
        metrics_endpoint=settings.metrics_bind,
        metrics_app=metrics.wsgi_app(rendered=[consumer_metrics.per_instance]),
    )
    return Operator(
        manager=manager,
        client=client,
        prometheus=prometheus,
        planner=planner,
        metrics_provider=provider,
    )


def _lease_watch(
    *, client: ApiClient, elector: LeaderElector, observer: RuntimeMetrics
) -> Reflector[LeaseView]:
    """A watch of the elector's own Lease, which tells it at once when the Lease is taken
    (``LeaderElector.saw``), instead of at its next renewal."""
    leases: Store[LeaseView] = Store()
    leases.subscribe(
        lambda old, new: elector.saw(
            None if new is None else new.record, last=None if old is None else old.record
        )
    )
    return Reflector(
        name="leases",
        source=ListWatch(
            client=client,
            resource=LEASES,
            projector=LEASE_VIEW_PROJECTOR,
            namespace=elector.namespace,
            field_selector=f"metadata.name={elector.name}",
        ),
        store=leases,
        observer=observer,
    )


def run(settings: Settings) -> int:
    """Run until stopped; the exit status (1 when leadership or a component was lost,
    so the pod restarts with a clean slate, as controller-runtime does)."""
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    log = structlog.stdlib.get_logger(__name__)
    try:
        operator = build(settings)
    except connecting.ConfigError as e:
        log.error("cannot start", reason=str(e))
        return 2
    # Full collections examine what came after the last one, not the watch caches again.
    survivors = FrozenSurvivors()
    survivors.install()
    try:
        asyncio.run(operator.run())
    except (LeadershipLost, ComponentEnded) as e:
        log.error("stopping", reason=str(e))
        return 1
    except BindError as e:  # a probe or metrics address this process cannot listen on
        log.error("cannot start", reason=str(e))
        return 2
    finally:
        survivors.uninstall()
    return 0


def install_crd(*, kubeconfig: str | None, manifest: dict[str, Any]) -> str:
    """Server-side apply the Consumer CRD (``make run``'s first step); returns its name.

    The operator's own client does it, so installing needs no kubectl of the machine's, and
    it is the same request as ``kubectl apply --server-side`` with our field manager.
    """

    async def apply() -> str:
        client = connecting.connect(kubeconfig=kubeconfig)
        try:
            written = await Writer(client=client).apply(
                resource=CUSTOM_RESOURCE_DEFINITIONS,
                namespace=None,
                name=str(manifest["metadata"]["name"]),
                body=manifest,
            )
        finally:
            await client.aclose()
        return written.name

    return asyncio.run(apply())
