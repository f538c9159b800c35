"""Hostile review: a "Prometheus" at a Consumer author's address that misbehaves on purpose.

The address is the Consumer author's choice, so whatever listens there can answer with
anything. A real Prometheus cannot be made to do this, so these servers are raw sockets on
loopback, speaking just enough HTTP, and the client is the operator's real httpx one.

Aspects tested:
- an answer of 256 MiB (valid JSON, padded with whitespace) is not read whole: the client
  stops reading long before the server has sent it, and the query fails
  (``PrometheusUnavailable``) instead of holding the whole body in memory;
- a server that sends its headers, then one byte at a time (slowloris), is cut off by the
  query's own timeout.
"""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx2
import pytest

from konsumerator.prom.errors import PrometheusUnavailable
from konsumerator.prom.querying import query_instant

MiB = 2**20


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


class RawServer:
    """One-connection-at-a-time HTTP server on 127.0.0.1 running ``respond(conn)``."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self._respond = respond
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.address = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(30)
                with contextlib.suppress(OSError):
                    _read_request(conn)
                    self._respond(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(35)
        self._sock.close()


@contextlib.contextmanager
def serving(respond: Callable[[socket.socket], None]) -> Iterator[RawServer]:
    server = RawServer(respond)
    try:
        yield server
    finally:
        server.close()


class HugeAnswer:
    """A valid empty vector, padded with ``size`` bytes of JSON whitespace."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.done = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        head = b'{"status":"success",'
        tail = b'"data":{"resultType":"vector","result":[]}}'
        length = len(head) + self.size + len(tail)
        try:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
                + head
            )
            chunk = b" " * MiB
            while self.sent < self.size:
                conn.sendall(chunk)
                self.sent += len(chunk)
            conn.sendall(tail)
        finally:
            self.done.set()


async def test_an_answer_of_hundreds_of_megabytes_is_not_read_whole() -> None:
    answer = HugeAnswer(256 * MiB)
    with serving(answer) as server:
        async with httpx2.AsyncClient(trust_env=False) as client:
            with pytest.raises(PrometheusUnavailable):
                await query_instant(
                    client=client, address=server.address, query="lag", timeout_seconds=60.0
                )
        assert answer.done.wait(35)
    # The client hung up long before the end: the read is bounded, not the whole body.
    assert answer.sent < 128 * MiB, f"the client read {answer.sent // MiB} MiB"


def _slowloris(conn: socket.socket) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    for _ in range(100):  # at most 20 s, well past the query's timeout
        conn.sendall(b" ")
        time.sleep(0.2)


async def test_a_server_trickling_its_answer_is_cut_off_by_the_timeout() -> None:
    with serving(_slowloris) as server:
        async with httpx2.AsyncClient(trust_env=False) as client:
            async with asyncio.timeout(15):  # a hang fails the test instead of blocking it
                with pytest.raises(PrometheusUnavailable) as caught:
                    await query_instant(
                        client=client, address=server.address, query="lag", timeout_seconds=1.0
                    )
    assert "no answer within 1s" in str(caught.value)
