"""A tiny in-process metrics endpoint for tests, whose exposition text the test rewrites.

Why: most operator tests do not need Kafka, only a lag metric with a value the test chooses.
Serving that text from a thread on 127.0.0.1 is deterministic and starts in milliseconds;
point Prometheus at it with :meth:`Cluster.set_scrape_targets([exporter.target])` and it is
queryable after the next 1 s scrape.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class MetricsExporter:
    """Serves ``/metrics`` with whatever text was last given to :meth:`set`."""

    def __init__(self, text: str = "") -> None:
        self._text = text.encode()
        self._lock = threading.Lock()
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with exporter._lock:
                    body = exporter._text
                    exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-exporter", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def target(self) -> str:
        """``host:port`` as Prometheus wants it in a scrape target list."""
        return f"127.0.0.1:{self.port}"

    def set(self, text: str) -> None:
        """Replace the exposition text (Prometheus text format, newline-terminated)."""
        with self._lock:
            self._text = text.encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsExporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
