"""The operator's own metrics, with controller-runtime's names.

Dashboards and alerts written for Go operators (kubebuilder's default
dashboards, the kube-prometheus mixins) look for ``controller_runtime_*``,
``workqueue_*`` and ``leader_election_master_status``; we export exactly those
names and labels so they work unchanged. ``konsumerator_meta_info`` (always 1,
from the first scrape) is the Go operator's build-info series, with
``python_version`` where Go had ``go_version``. ``RuntimeMetrics`` implements the
runtime's ``Observer`` protocol and owns a dedicated ``CollectorRegistry``
(never the global one: tests and embedders can build several). Labels are
bounded: controller, queue, result, resource, verb, reason; never an object
name or a partition.
"""

from __future__ import annotations

import functools
import gzip
import platform
from collections.abc import Iterable, Sequence
from typing import Protocol
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import choose_encoder, gzip_accepted

from konsumerator import __version__

_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_QUEUE_BUCKETS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000)


class RuntimeMetrics:
    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.terminal_errors = Counter(
            "controller_runtime_terminal_reconcile_errors_total",
            "Total number of terminal reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.queue_depth_metric = Gauge(
            "workqueue_depth", "Current depth of workqueue", ["name"], registry=r
        )
        self.queue_adds = Counter(
            "workqueue_adds_total",
            "Total number of adds handled by workqueue",
            ["name"],
            registry=r,
        )
        self.queue_latency = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            ["name"],
            buckets=_QUEUE_BUCKETS,
            registry=r,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            ["name"],
            buckets=_QUEUE_BUCKETS,
            registry=r,
        )
        self.queue_retries = Counter(
            "workqueue_retries_total",
            "Total number of retries handled by workqueue",
            ["name"],
            registry=r,
        )
        self.leader = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, "
            "0 indicates backup, 1 indicates master",
            ["name"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "konsumerator_watch_restarts_total",
            "Watch streams restarted, by reflector and reason",
            ["resource", "reason"],
            registry=r,
        )
        self.relists = Counter(
            "konsumerator_relists_total", "Full LISTs made by a reflector", ["resource"], registry=r
        )
        self.api_requests = Counter(
            "konsumerator_api_requests_total",
            "Requests to the Kubernetes API server, by verb, resource and HTTP code",
            ["verb", "resource", "code"],
            registry=r,
        )
        self.meta_info = Gauge(
            "konsumerator_meta_info",
            "Always 1: the operator's version",
            ["binary_version", "python_version"],
            registry=r,
        )
        self.meta_info.labels(__version__, platform.python_version()).set(1)

    # -- konsumerator.runtime.observing.Observer ---------------------------

    def reconcile_finished(self, *, controller: str, result: str, seconds: float) -> None:
        self.reconcile_total.labels(controller, result).inc()
        self.reconcile_time.labels(controller).observe(seconds)

    def reconcile_errored(self, *, controller: str, terminal: bool) -> None:
        self.reconcile_errors.labels(controller).inc()
        if terminal:
            self.terminal_errors.labels(controller).inc()

    def queue_added(self, *, queue: str) -> None:
        self.queue_adds.labels(queue).inc()

    def queue_depth(self, *, queue: str, depth: int) -> None:
        self.queue_depth_metric.labels(queue).set(depth)

    def queue_waited(self, *, queue: str, seconds: float) -> None:
        self.queue_latency.labels(queue).observe(seconds)

    def queue_worked(self, *, queue: str, seconds: float) -> None:
        self.work_duration.labels(queue).observe(seconds)

    def queue_retried(self, *, queue: str) -> None:
        self.queue_retries.labels(queue).inc()

    def watch_restarted(self, *, reflector: str, reason: str) -> None:
        self.watch_restarts.labels(reflector, reason).inc()

    def relisted(self, *, reflector: str, objects: int) -> None:
        self.relists.labels(reflector).inc()

    def leadership_changed(self, *, name: str, leading: bool) -> None:
        self.leader.labels(name).set(1 if leading else 0)

    # -- konsumerator.kube.requesting.RequestHook --------------------------

    def api_request(self, verb: str, resource: str, code: int) -> None:
        self.api_requests.labels(verb, resource, str(code)).inc()

    def wsgi_app(self, *, rendered: Sequence[Rendered] = ()) -> WSGIApplication:
        """``/metrics`` for ``Manager(metrics_app=...)``: prometheus_client's app, with the
        families of ``rendered`` (collectors of this registry) written by themselves."""
        if not rendered:
            app: WSGIApplication = make_wsgi_app(self.registry)
            return app
        for collector in rendered:
            collector.rendered = True
        return functools.partial(_metrics_app, registry=self.registry, rendered=tuple(rendered))


class Rendered(Protocol):
    """A collector that writes its own exposition (gauges without timestamps, whose lines
    are the same in the text format and in OpenMetrics); ``collect`` yields nothing once
    ``rendered`` is set."""

    rendered: bool

    def exposition(self, *, names: frozenset[str] | None = None) -> bytes: ...


_EOF = b"# EOF\n"


def _metrics_app(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    *,
    registry: CollectorRegistry,
    rendered: tuple[Rendered, ...],
) -> Iterable[bytes]:
    """prometheus_client's ``make_wsgi_app`` (methods, content negotiation, ``name[]``,
    gzip), with the ``rendered`` families added before OpenMetrics' closing ``# EOF``."""
    method = environ["REQUEST_METHOD"]
    if method != "GET" or environ.get("PATH_INFO") == "/favicon.ico":
        return make_wsgi_app(registry)(environ, start_response)  # type: ignore[no-any-return]
    encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT") or "")
    params = parse_qs(environ.get("QUERY_STRING", ""))
    names = frozenset(params["name[]"]) if "name[]" in params else None
    source = registry if names is None else registry.restricted_registry(list(names))
    body = encoder(source)
    own = b"".join(collector.exposition(names=names) for collector in rendered)
    body = body[: -len(_EOF)] + own + _EOF if body.endswith(_EOF) else body + own
    headers = [("Content-Type", content_type)]
    if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    start_response("200 OK", headers)
    return [body]
