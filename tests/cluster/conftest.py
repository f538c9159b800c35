"""Fixtures of the cluster tier: one real control plane + Prometheus per pytest session.

* ``cluster`` (session): starts its own cluster, named ``pytest-<pid>`` (never the
  ``make cluster-up`` one), ties its processes to this pytest process and stops them at the
  end, also when tests fail. If it cannot start, every test of the tier ERRORs with the reason
  (binaries missing, port taken, component died with its log tail). Clusters left behind by a
  killed run are reaped first. To iterate against an already running dev cluster instead,
  set ``KONSUMERATOR_TESTENV_USE_CLUSTER=dev`` (it is then neither started nor stopped).
* ``namespace`` (function): a fresh namespace per test, deleted afterwards.
* ``exporter`` (function): a :class:`MetricsExporter` on 127.0.0.1 whose text the test sets;
  the scrape targets are reset to none after the test.
* ``kafka`` (session): the cluster with its Kafka broker and lag exporter running (started
  on first use, so a session without Kafka tests never starts a JVM); yields the broker's
  bootstrap address. Prometheus scrapes the exporter as job ``kafka``.
* ``crd`` (function): the Consumer CRD installed and established.
* every test of this directory gets the ``cluster`` marker, and finds Prometheus running
  (a test that stopped it gets it restarted afterwards).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from operating import install_crd

from konsumerator_dev.testenv import (
    Cluster,
    MetricsExporter,
    down,
    reap_orphans,
    start_kafka,
    start_prometheus,
    up,
)

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    existing = os.environ.get("KONSUMERATOR_TESTENV_USE_CLUSTER")
    if existing:
        yield Cluster.load(existing)
        return
    reap_orphans()
    name = f"pytest-{os.getpid()}"
    started = up(name, owned=True)
    try:
        yield started
    finally:
        down(name)


@pytest.fixture(scope="session")
def kafka(cluster: Cluster) -> str:
    start_kafka(cluster)
    return cluster.kafka_bootstrap


@pytest.fixture
def crd(cluster: Cluster) -> None:
    """The Consumer CRD installed and established (a test file asks for it with
    ``pytest.mark.usefixtures("crd")``)."""
    install_crd(cluster)


@pytest.fixture(autouse=True)
def _prometheus_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cluster" in request.fixturenames:
        cluster: Cluster = request.getfixturevalue("cluster")
        if not cluster.prometheus_running():
            start_prometheus(cluster)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = cluster.create_namespace(
        f"t-{slug}-{secrets.token_hex(3)}", labels={"konsumerator.testenv/test": "true"}
    )
    yield name
    cluster.delete_namespace(name)


@pytest.fixture
def exporter(cluster: Cluster) -> Iterator[MetricsExporter]:
    with MetricsExporter() as served:
        try:
            yield served
        finally:
            cluster.set_scrape_targets([])
