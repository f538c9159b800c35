"""A tiny HTTP server on its own thread for probes and metrics.

The probes are served from a thread, not from the event loop, on purpose: if
the loop is stuck (a blocking call, a CPU-bound bug), an in-loop ``/healthz``
would simply not answer and the kubelet could not tell "stuck" from "slow".
Served from a thread, ``/healthz`` answers promptly and *says* the loop's
heartbeat is stale, and the kubelet restarts the pod. Likewise ``/metrics``
keeps working while the loop is busy.

Routing is by exact path to plain WSGI applications (``prometheus_client``
ships one for ``/metrics``); everything else is 404.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog

log = structlog.stdlib.get_logger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would drown the logs


def text_response(start_response: StartResponse, *, status: str, body: str) -> Iterable[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class HttpServer:
    """Serve ``routes`` on ``host:port`` from a daemon thread."""

    def __init__(self, *, host: str, port: int, routes: Mapping[str, WSGIApplication]) -> None:
        self._routes = dict(routes)
        self._server: WSGIServer = make_server(host, port, self._app, handler_class=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        return int(self._server.server_port)

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = self._routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return text_response(start_response, status="404 Not Found", body="not found\n")
        return route(environ, start_response)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"http-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
