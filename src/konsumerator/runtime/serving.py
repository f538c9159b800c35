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

The read timeout is per socket operation, so a client sending a header byte
every few seconds (slowloris) would keep its connection for ever, and 128 of
them kept every probe out: a connection also has ``DEADLINE_S`` for its whole
life, after which the server shuts its socket down. One address (a pod, a node)
holds at most ``MAX_PER_PEER`` connections, so one hostile client cannot take
every slot from the kubelet's probes; when ``MAX_CONNECTIONS`` are open, a new
one ends the oldest (a probe is answered in milliseconds, so the oldest is the
one stalling), so many clients together cannot keep a probe out either: they
would have to open 128 connections while it is answered. The request head
(request line and headers) is at most ``MAX_HEAD_BYTES``: the standard library
reads 100 headers of 64 KiB each, 6.4 MB a connection, and 128 such connections
were beyond the operator's 512 MiB memory limit.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog

log = structlog.stdlib.get_logger(__name__)


MAX_CONNECTIONS = 128
MAX_PER_PEER = 16
READ_TIMEOUT_S = 5.0
DEADLINE_S = 10.0
MAX_HEAD_BYTES = 64 * 1024


class _HeadReader:
    """The connection's input, of which at most ``budget`` bytes are read.

    ``http.server`` reads the request line and each header with ``readline``;
    past the budget it raises ``LineTooLong``, which ``parse_request`` answers
    with ``431``. A line cut at the budget fails to parse (``400``) or runs into
    that on the next line: no path reads more.
    """

    def __init__(self, raw: Any, *, budget: int) -> None:
        self._raw = raw
        self._left = budget

    def _limit(self, size: int | None) -> int:
        if self._left <= 0:
            raise http.client.LineTooLong(f"request head over {MAX_HEAD_BYTES} bytes")
        return self._left if size is None or size < 0 else min(size, self._left)

    def readline(self, size: int | None = -1) -> bytes:
        line: bytes = self._raw.readline(self._limit(size))
        self._left -= len(line)
        return line

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._raw.read(self._limit(size))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._raw.close()


class _QuietHandler(WSGIRequestHandler):
    timeout = READ_TIMEOUT_S  # applied to the connection's socket by StreamRequestHandler

    def setup(self) -> None:
        super().setup()
        self.rfile = _HeadReader(self.rfile, budget=MAX_HEAD_BYTES)  # type: ignore[assignment]

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would drown the logs


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, ``MAX_PER_PEER`` of one address at most, each shut down
    ``DEADLINE_S`` after it was accepted, or when it is the oldest of
    ``MAX_CONNECTIONS`` and another arrives."""

    daemon_threads = True
    block_on_close = False
    # The kernel's queue of connections not accepted yet: with the default 5, a burst
    # of connections made it drop the kubelet's SYN, which it retries only after 1 s,
    # the probe's default timeout.
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._peers: Counter[str] = Counter()
        self._deadlines: dict[socket.socket, float] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        peer = str(client_address[0])
        with self._lock:
            if self._peers[peer] >= MAX_PER_PEER:
                self.shutdown_request(request)
                return
            oldest = None
            if len(self._deadlines) >= MAX_CONNECTIONS:
                # Out of the count at once, so that a burst ends the next oldest each,
                # not the same one again while its thread winds down.
                oldest = next(iter(self._deadlines))
                del self._deadlines[oldest]
            self._peers[peer] += 1
            self._deadlines[request] = time.monotonic() + DEADLINE_S
        if oldest is not None:
            _cut(oldest)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request, peer)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request, str(client_address[0]))

    def connections(self) -> int:
        """How many connections are being served."""
        with self._lock:
            return len(self._deadlines)

    def _release(self, request: socket.socket, peer: str) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
            self._peers[peer] -= 1
            if self._peers[peer] <= 0:
                del self._peers[peer]

    def service_actions(self) -> None:
        """Shut down the connections past their deadline (``serve_forever`` calls this
        at least every poll interval); their threads then see the end of the stream."""
        super().service_actions()
        now = time.monotonic()
        with self._lock:
            expired = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
        for sock in expired:
            _cut(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _cut(sock: socket.socket) -> None:
    """End a connection from outside its thread, which then reads the end of the stream."""
    with contextlib.suppress(OSError):  # closed by its thread meanwhile
        sock.shutdown(socket.SHUT_RDWR)


class _Server6(_Server):
    """An IPv6 address (``[::]:8081``, ``[fd00::1]:8081``): ``WSGIServer`` binds IPv4 only."""

    address_family = socket.AF_INET6


class BindError(Exception):
    """The address cannot be listened on; the message names it and why."""


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
        try:
            server = make_server(
                host,
                port,
                self._app,
                server_class=_Server6 if ":" in host else _Server,
                handler_class=_QuietHandler,
            )
        except (OSError, OverflowError) as e:  # taken, not ours, unresolvable, no port
            raise BindError(f"cannot serve on {host}:{port}: {e}") from None
        assert isinstance(server, _Server)
        self._server = server
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        return int(self._server.server_port)

    def connections(self) -> int:
        """How many connections are being served now."""
        return self._server.connections()

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
