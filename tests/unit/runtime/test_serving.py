"""The probe and metrics server: no client can hold it.

Aspects tested, each on a real socket on loopback:

* an idle connection (a client that connects and sends nothing) does not
  block ``/healthz`` for the next client;
* with the cap reached, a new connection ends the oldest, so held connections
  cannot keep a probe out;
* one address holds at most ``MAX_PER_PEER`` connections, and a probe from
  another address is answered while one address holds as many as it can;
* a client that stalls past the read timeout is dropped without a traceback on
  stderr (it is normal traffic, not an error);
* a client trickling its request a byte at a time (slowloris), which the read
  timeout alone never ends, is cut at the connection's deadline;
* a request head beyond ``MAX_HEAD_BYTES`` is answered ``431`` before more is
  read (the standard library read 6.4 MB of headers a connection).
"""

import contextlib
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


def connect(port: int, *, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), source_address=(source, 0))


def served(sock: socket.socket, *, within_s: float = 10.0) -> bool:
    """Whether the server still serves ``sock``: it answers a request sent on it."""
    sock.settimeout(within_s)
    try:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.0 200")
    except (TimeoutError, ConnectionError):
        return False


def test_a_new_connection_beyond_the_cap_ends_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(serving._QuietHandler, "timeout", 60)  # only the cap can end one
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        oldest = connect(s.port, source="127.0.0.2")
        assert served_count_reaches(s, 1)
        with oldest, connect(s.port, source="127.0.0.3") as second:
            assert served_count_reaches(s, 2)
            with connect(s.port, source="127.0.0.4") as third:
                assert closed_by_server(oldest)
                assert served(third)
            assert served(second)
    finally:
        s.stop()


def served_count_reaches(s: serving.HttpServer, n: int, *, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if s.connections() >= n:
            return True
        time.sleep(0.01)
    return False


def test_one_address_cannot_keep_the_probe_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(serving._QuietHandler, "timeout", 60)
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        held = [connect(s.port, source="127.0.0.2") for _ in range(serving.MAX_CONNECTIONS)]
        try:
            assert healthz(s.port) == b"ok\n"
        finally:
            for sock in held:
                sock.close()
    finally:
        s.stop()


def test_one_address_holds_at_most_max_per_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "MAX_PER_PEER", 2)
    monkeypatch.setattr(serving._QuietHandler, "timeout", 60)
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        first, second = connect(s.port, source="127.0.0.2"), connect(s.port, source="127.0.0.2")
        with first, second:
            assert served_count_reaches(s, 2)
            with connect(s.port, source="127.0.0.2") as third:
                assert closed_by_server(third)
            assert healthz(s.port) == b"ok\n"
            assert served(first)
    finally:
        s.stop()


def test_the_listen_queue_holds_a_burst_as_large_as_the_cap() -> None:
    # With socketserver's default of 5 the kernel dropped the SYNs of a burst, the
    # kubelet's among them, which it retries after 1 s: its probe's default timeout.
    assert serving._Server.request_queue_size >= serving.MAX_CONNECTIONS


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


def test_a_client_trickling_its_request_is_cut_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(serving, "DEADLINE_S", 0.5)
    monkeypatch.setattr(serving._QuietHandler, "timeout", 60)  # the read timeout never fires
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        with connect(s.port) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert cut_while_trickling(slow, within_s=20)
        assert healthz(s.port) == b"ok\n"
    finally:
        s.stop()
    assert capfd.readouterr().err == ""


def cut_while_trickling(sock: socket.socket, *, within_s: float) -> bool:
    """Send a header byte every 50 ms until the server ends the connection."""
    sock.settimeout(0.05)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"X")
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


@pytest.mark.parametrize("header_bytes", [60_000, 1000])
def test_a_request_head_beyond_the_bound_is_refused(header_bytes: int) -> None:
    s = serving.HttpServer(host="127.0.0.1", port=0, routes={"/healthz": ok})
    s.start()
    try:
        with connect(s.port) as client:
            client.settimeout(10)
            # Every line is within the standard library's 64 KiB a line and 100 lines.
            lines = serving.MAX_HEAD_BYTES // header_bytes + 2
            head = b"GET /healthz HTTP/1.0\r\n" + b"".join(
                b"X-%d: " % i + b"a" * header_bytes + b"\r\n" for i in range(lines)
            )
            # It may stop reading and close before all of it is sent.
            with contextlib.suppress(ConnectionError):
                client.sendall(head + b"\r\n")
            assert client.recv(64).startswith(b"HTTP/1.0 431")
    finally:
        s.stop()
