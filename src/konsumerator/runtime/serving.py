"""A tiny HTTP server on its own thread for probes and metrics.

The probes are served from a thread, not from the event loop, on purpose: if
the loop is stuck (a blocking call, a CPU-bound bug), an in-loop ``/healthz``
would simply not answer and the kubelet could not tell "stuck" from "slow".
Served from a thread, ``/healthz`` answers promptly and *says* the loop's
heartbeat is stale, and the kubelet restarts the pod. Likewise ``/metrics``
keeps working while the loop is busy.

Routing is by exact path to plain WSGI applications (``prometheus_client``
ships one for ``/metrics``); everything else is 404.

Anything in the cluster that can reach the pod can open a connection to these
ports, so one client must not be able to hold them: each connection gets its
own thread and a read timeout, and at most ``MAX_CONNECTIONS`` are served at
once (more are closed at once). With the standard library's single-threaded
``WSGIServer`` one idle TCP connection blocked ``/healthz`` for good, and the
kubelet would have restarted the operator over and over. A client hanging up
or timing out is normal traffic, not an error worth a traceback on stderr.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog

log = structlog.stdlib.get_logger(__name__)


MAX_CONNECTIONS = 128
READ_TIMEOUT_S = 5.0


class _QuietHandler(WSGIRequestHandler):
    timeout = READ_TIMEOUT_S  # applied to the connection's socket by StreamRequestHandler

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would drown the logs


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most ``MAX_CONNECTIONS`` at once."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


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
        self._server: WSGIServer = make_server(
            host, port, self._app, server_class=_Server, handler_class=_QuietHandler
        )
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
