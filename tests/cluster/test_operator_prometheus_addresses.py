"""What a Consumer's Prometheus addresses can make the operator do, and show, on the real
API server.

Aspects tested:

* an address with credentials that answers 502 with a body: the request is made (with the
  credentials, as Basic auth), and neither the password nor anything of the body reaches
  the ``MetricsAvailable`` condition or the Warning Event, which carry the redacted address
  and ``HTTP 502 Bad Gateway, not a Prometheus API answer``;
* with ``--prometheus-allowed-hosts``, a Consumer naming an address outside the list gets
  ``MetricsAvailable=False, reason=AddressNotAllowed`` naming
  ``spec.autoscaler.prometheus.address[0]``, a Warning Event, its Deployments (with the
  fallback resources), and no request reaches that address over several passes; a
  Consumer on an allowed address syncs as usual.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    install_crd,
    managed,
    metric_sum,
)

from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster
from konsumerator_dev.testenv.exporter import MetricsExporter

pytestmark = pytest.mark.cluster

SECRET_BODY = "<html>upstream said: SECRET-BODY-7f3a</html>"


class BadGateway:
    """An HTTP server on 127.0.0.1 that answers everything 502 with a telling body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (path, Authorization header)
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.path, self.headers.get("Authorization", "")))
                body = SECRET_BODY.encode()
                self.send_response(502, "SECRET-PHRASE")
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def bad_gateway() -> Iterator[BadGateway]:
    server = BadGateway()
    try:
        yield server
    finally:
        server.close()


def test_failures_show_neither_credentials_nor_bodies(
    cluster: Cluster, namespace: str, bad_gateway: BadGateway
) -> None:
    install_crd(cluster)
    address = f"http://admin:hunter2@127.0.0.1:{bad_gateway.port}"
    with in_process_operator(cluster):
        cluster.apply(consumer("leaky", namespace, prometheus_url=address))
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "leaky"),
            lambda o: condition(o, "MetricsAvailable").get("status") == "False",
            timeout=60,
            what="MetricsAvailable=False",
        )
        warnings = eventually(
            lambda: events(cluster, namespace, involved="leaky"),
            lambda evs: any(e["reason"] == "PrometheusUnreachable" for e in evs),
            timeout=30,
            what="a PrometheusUnreachable Event",
        )
    message = condition(obj, "MetricsAvailable")["message"]
    [event] = [e for e in warnings if e["reason"] == "PrometheusUnreachable"]
    for shown in (message, event["message"]):
        assert "hunter2" not in shown
        assert "admin" not in shown
        assert "SECRET" not in shown
        assert f"http://***@127.0.0.1:{bad_gateway.port}: HTTP 502 Bad Gateway," in shown
        assert "not a Prometheus API answer" in shown
    # The credentials are still used, as Basic auth.
    assert bad_gateway.requests
    path, authorization = bad_gateway.requests[0]
    assert path == "/api/v1/query"
    assert authorization == "Basic " + base64.b64encode(b"admin:hunter2").decode()


def test_an_address_outside_the_allowed_hosts_is_never_requested(
    cluster: Cluster, namespace: str, bad_gateway: BadGateway, exporter: MetricsExporter
) -> None:
    install_crd(cluster)
    # Series for the allowed Consumer's queries (a query matching nothing is NoData).
    exporter.set(
        "".join(
            f'kafka_consumergroup_lag{{consumergroup="allowed",partition="{p}"}} 0\n'
            f'kafka_topic_partition_current_offset{{topic="allowed",partition="{p}"}} 100\n'
            f'kafka_consumergroup_current_offset{{consumergroup="allowed",partition="{p}"}} 100\n'
            for p in range(4)
        )
    )
    cluster.set_scrape_targets([exporter.target])
    prometheus_port = cluster.prometheus_url.rpartition(":")[2]
    refused = consumer("refused", namespace, prometheus_url=f"http://localhost:{bad_gateway.port}")
    allowed = consumer("allowed", namespace, prometheus_url=cluster.prometheus_url)
    with in_process_operator(
        cluster,
        metrics_bind=Endpoint("127.0.0.1", 0),
        prometheus_allowed_hosts=(f"*.monitoring.svc,127.0.0.1:{prometheus_port}",),
    ) as op:
        cluster.apply(refused)
        cluster.apply(allowed)
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "refused"),
            lambda o: condition(o, "MetricsAvailable").get("reason") == "AddressNotAllowed",
            timeout=60,
            what="MetricsAvailable=False, AddressNotAllowed",
        )
        eventually(
            lambda: get_consumer(cluster, namespace, "allowed"),
            lambda o: condition(o, "MetricsAvailable").get("reason") == "Synced",
            timeout=60,
            what="the allowed Consumer to sync",
        )
        # A few more passes (each sync period requeues): still not a single request.
        passes = metric_sum(op.metrics(), "controller_runtime_reconcile_total")
        eventually(
            lambda: metric_sum(op.metrics(), "controller_runtime_reconcile_total"),
            lambda n: n >= passes + 4,
            timeout=60,
            what="four more reconciles",
        )
        warnings = eventually(
            lambda: events(cluster, namespace, involved="refused"),
            lambda evs: any(e["reason"] == "AddressNotAllowed" for e in evs),
            timeout=30,
            what="an AddressNotAllowed Event",
        )
        deployments = managed(cluster, namespace)
    available = condition(obj, "MetricsAvailable")
    assert available["status"] == "False"
    assert available["message"].startswith(
        f"spec.autoscaler.prometheus.address[0] (http://localhost:{bad_gateway.port}):"
        " not allowed by the operator's --prometheus-allowed-hosts"
    )
    [event] = [e for e in warnings if e["reason"] == "AddressNotAllowed"]
    assert event["type"] == "Warning"
    assert "spec.autoscaler.prometheus.address[0]" in event["message"]
    assert bad_gateway.requests == []
    # The instances still run, sized from the policy minimum (the fallback).
    assert {n for n in deployments if n.startswith("refused-")} == {
        "refused-consumer-0",
        "refused-consumer-1",
    }
    resources = deployments["refused-consumer-0"]["spec"]["template"]["spec"]["containers"][0][
        "resources"
    ]
    assert resources["requests"] == {"cpu": "100m", "memory": "128Mi"}
