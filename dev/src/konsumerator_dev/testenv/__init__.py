"""A real local Kubernetes control plane and Prometheus for Konsumerator's tests.

Why: an operator is only proven against a real kube-apiserver (CRD validation, server-side
apply, watches, ownerReferences and garbage collection, status subresource, RBAC). There is
no Docker here, so etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
KWOK are built from their Go modules (:mod:`~konsumerator_dev.testenv.build`, cached outside the
repo by version) and started as plain processes on 127.0.0.1 with a generated PKI
(:mod:`~konsumerator_dev.testenv.cluster`). KWOK fakes one node so Deployment pods become
Running, and its stages (:mod:`~konsumerator_dev.testenv.kwokstages`) answer in-place pod
resizes as a kubelet does. Debian's Prometheus scrapes targets from a file the tests control.

Command line: ``konsumerator-dev testenv build|up|down|status|env`` (see ``--help``);
``make cluster-up`` / ``make cluster-down`` wrap it. Tests use :class:`Cluster` through the
fixtures in ``tests/cluster/conftest.py``.
"""

from konsumerator_dev.testenv.build import build
from konsumerator_dev.testenv.cluster import ApiResponse, Cluster
from konsumerator_dev.testenv.config import Versions, cache_root
from konsumerator_dev.testenv.errors import (
    BuildError,
    ComponentDied,
    NotBuilt,
    NotReady,
    PortInUse,
    TestenvError,
)
from konsumerator_dev.testenv.exporter import MetricsExporter
from konsumerator_dev.testenv.kwokstages import NODE_ALLOCATABLE, RESIZE_CAPACITY
from konsumerator_dev.testenv.lifecycle import (
    down,
    reap_orphans,
    start_kafka,
    start_prometheus,
    stop_kafka,
    stop_prometheus,
    up,
)
from konsumerator_dev.testenv.process import wait_until
from konsumerator_dev.testenv.state import list_clusters

__all__ = [
    "NODE_ALLOCATABLE",
    "RESIZE_CAPACITY",
    "ApiResponse",
    "BuildError",
    "Cluster",
    "ComponentDied",
    "MetricsExporter",
    "NotBuilt",
    "NotReady",
    "PortInUse",
    "TestenvError",
    "Versions",
    "build",
    "cache_root",
    "down",
    "list_clusters",
    "reap_orphans",
    "start_kafka",
    "start_prometheus",
    "stop_kafka",
    "stop_prometheus",
    "up",
    "wait_until",
]
