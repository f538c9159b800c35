"""Hostile review: a tenant's Prometheus that never answers does not hold the workers.

A Consumer's Prometheus addresses are its author's choice; one that accepts connections
and never answers (a tarpit, a firewall that drops the answers) keeps each query open for
the whole query timeout (10 s). A refresh used to be awaited inside the pass, so such a
Consumer held a reconcile worker for those 10 s at every refresh: as many of them as
there are workers (4 by default), created by one tenant, and every other tenant's
Consumers waited 10 s for a worker at every pass.

Aspects tested (an in-process operator with its 4 default workers, a real apiserver and a
TCP listener that never answers):

* four Consumers whose Prometheus never answers, then a fifth Consumer in another
  namespace (manual sizing, no Prometheus): the fifth converges while every query of the
  four is still open, none given up yet (before, a worker was free only once a query
  of the four had timed out, which the listener sees as a closed connection);
* the four say ``MetricsAvailable=False`` with the address's timeout once their queries
  time out: the pass that waited for the refresh is completed when it ends;
* Consumers listing 16 silent addresses each (the CRD's most; three queries each, so 48
  connections held per Consumer) do not take the connections another tenant's Consumer
  needs to reach its own, healthy, Prometheus: it syncs (``MetricsAvailable=True``) while
  every silent query is still open. Before, all Consumers' queries shared one connection
  pool of 100: the other tenant's queries queued behind the silent ones until those timed
  out.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from operating import (
    condition,
    consumer,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
)

from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

SILENT = 4  # the default max_concurrent_reconciles
QUERIES = 3  # offset, production, consumption: one connection each
ADDRESSES = 16  # the CRD's maxItems of spec.autoscaler.prometheus.address
CROWD = 4  # Consumers of 16 silent addresses: 192 connections, past a pool of 100


class Tarpit:
    """A TCP listener that accepts, reads and never answers; it counts the connections
    it accepted and those the client closed (a query given up)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self.accepted = 0
        self.closed = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> Tarpit:
        thread = threading.Thread(target=self._accept, name="tarpit", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(5)
        for s in self._sockets:
            s.close()
        self._server.close()

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.accepted, self.closed

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.2)
            with self._lock:
                self.accepted += 1
                self._sockets.append(conn)
            thread = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _hold(self, conn: socket.socket) -> None:
        """Read the request and whatever follows; never write. An empty read: the
        client closed the connection."""
        while not self._stopping.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    self.closed += 1
                return


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    with Tarpit() as pit:
        yield pit


def test_consumers_whose_prometheus_never_answers_do_not_hold_the_workers(
    cluster: Cluster, namespace: str, tarpit: Tarpit
) -> None:
    other = cluster.create_namespace(f"{namespace[:50]}-other")
    try:
        silent = [
            consumer(
                f"silent-{i}",
                namespace,
                num_partitions=1,
                per_instance=1,
                prometheus_url=f"http://127.0.0.1:{tarpit.port}",
            )
            for i in range(SILENT)
        ]
        victim = consumer("victim", other, num_partitions=2, per_instance=1)
        for manifest in (*silent, victim):
            manifest["spec"]["deploymentTemplate"]["replicas"] = 0
        with in_process_operator(cluster):
            for manifest in silent:
                cluster.apply(manifest)
            eventually(
                tarpit.counts,
                lambda counts: counts[0] >= SILENT * QUERIES,
                timeout=60,
                what="every silent Consumer's queries to be open",
            )
            cluster.apply(victim)
            _, (_, closed) = eventually(
                lambda: (get_consumer(cluster, other, "victim"), tarpit.counts()),
                lambda seen: converged(seen[0], 2),
                timeout=60,
                what="the other tenant's Consumer to converge",
            )
            assert closed == 0, (
                f"the other tenant's Consumer converged only after {closed} queries to the"
                " silent Prometheus had given up: the silent Consumers held the workers"
            )
            for manifest in silent:
                name = manifest["metadata"]["name"]
                obj = eventually(
                    lambda name=name: get_consumer(cluster, namespace, name),
                    lambda o: condition(o, "MetricsAvailable").get("status") == "False",
                    timeout=90,
                    what=f"{name} to say its metrics are unavailable",
                )
                assert "no answer within" in condition(obj, "MetricsAvailable")["message"]
    finally:
        cluster.delete_namespace(other)


def _real_queries() -> dict[str, dict[str, str]]:
    """Queries the test's real Prometheus answers without any exporter: partition 0."""
    series = 'label_replace(vector({value}), "partition", "0", "", "")'
    return {
        name: {"query": series.format(value=value), "partitionLabel": "partition"}
        for name, value in (("offset", 0), ("production", 10), ("consumption", 10))
    }


def test_consumers_of_many_silent_addresses_leave_connections_for_the_others(
    cluster: Cluster, namespace: str, tarpit: Tarpit
) -> None:
    other = cluster.create_namespace(f"{namespace[:50]}-other")
    try:
        crowd = []
        for i in range(CROWD):
            manifest = consumer(
                f"crowd-{i}",
                namespace,
                num_partitions=1,
                per_instance=1,
                prometheus_url=f"http://127.0.0.1:{tarpit.port}",
            )
            manifest["spec"]["autoscaler"]["prometheus"]["address"] = [
                f"http://127.0.0.1:{tarpit.port}/{i}/{a}" for a in range(ADDRESSES)
            ]
            crowd.append(manifest)
        victim = consumer(
            "victim", other, num_partitions=1, per_instance=1, prometheus_url=cluster.prometheus_url
        )
        victim["spec"]["autoscaler"]["prometheus"].update(_real_queries())
        for manifest in (*crowd, victim):
            manifest["spec"]["deploymentTemplate"]["replicas"] = 0
        with in_process_operator(cluster):
            for manifest in crowd:
                cluster.apply(manifest)
            eventually(
                tarpit.counts,
                lambda counts: counts[0] >= 100,
                timeout=60,
                what="the silent addresses to hold 100 connections",
            )
            cluster.apply(victim)
            _, (_, closed) = eventually(
                lambda: (get_consumer(cluster, other, "victim"), tarpit.counts()),
                lambda seen: condition(seen[0], "MetricsAvailable").get("status") == "True",
                timeout=60,
                what="the other tenant's Consumer to sync its metrics",
            )
            assert closed == 0, (
                f"the other tenant's Consumer synced only after {closed} queries to the"
                " silent addresses had given up: they held the connections it needed"
            )
    finally:
        cluster.delete_namespace(other)
