"""The probe and metrics server: no client can hold it.

Aspects tested, each on a real socket on loopback:

* an idle connection (a client that connects and sends nothing) does not
  block ``/healthz`` for the next client;
* connections beyond the cap are closed at once, and the server answers again
  when the held ones go away;
* a client that stalls past the read timeout is dropped without a traceback on
  stderr (it is normal traffic, not an error).
"""

import socket
import time
import urllib.request
from collections.abc import Iterable, Iterator
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest

from konsumerator.runtime import serving


def ok(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return serving.text_response(start_response, status="200 OK", body="ok\n")


@pytest.fixture
def server() -> Iterator[serving.HttpServer]:
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    yield s
    s.stop()


def healthz(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return bytes(answer.read())


def closed_by_server(sock: socket.socket, *, within_s: float = 10.0) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, ConnectionError):
        return False


def test_an_idle_connection_does_not_block_the_probe(server: serving.HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)):
        assert healthz(server.port) == b"ok\n"


def test_connections_beyond_the_cap_are_closed_and_the_server_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(serving._QuietHandler, "timeout", 60)  # only the cap can close the third
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(2)]
        # The kernel queues connections in the order their handshakes completed and
        # the server accepts them in that order: the held two take the slots first.
        with socket.create_connection(("127.0.0.1", s.port)) as third:
            assert closed_by_server(third, within_s=10)
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                assert healthz(s.port) == b"ok\n"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        s.stop()


def test_a_stalled_client_is_dropped_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(serving._QuietHandler, "timeout", 0.2)
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        with socket.create_connection(("127.0.0.1", s.port)) as stalled:
            stalled.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
            assert closed_by_server(stalled)
        assert healthz(s.port) == b"ok\n"
    finally:
        s.stop()
    assert capfd.readouterr().err == ""
