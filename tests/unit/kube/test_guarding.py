"""The write check at the socket (``kube.guarding``), against a local TCP server.

Aspects tested:
- a request made inside ``guarded`` whose check refuses sends no byte, on a fresh
  connection and on a kept-alive one; one whose check passes goes through;
- requests outside ``guarded`` are never checked;
- ``connect`` installs the guard on the client it builds (the private attribute it relies
  on still exists in the pinned httpx2/httpcore2);
- a guarded stream tells an idle connection from one the server wrote to or closed, as the
  stream it wraps does (httpcore2's ``is_readable``), asking that stream for its socket once;
  a kept-alive connection the server closed is not reused.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import httpcore2
import httpx2
import pytest

from konsumerator.kube import guarding
from konsumerator.kube.connecting import connect
from konsumerator.runtime import errors

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Server:
    def __init__(self) -> None:
        self.received = bytearray()
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            self.received += head
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            self.received += await reader.readexactly(length)
            writer.write(OK)
            await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    served = Server()
    tcp = await asyncio.start_server(served._serve, "127.0.0.1", 0)
    served.port = tcp.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        tcp.close()


def refuse() -> None:
    raise errors.NotLeading(message="deposed")


async def test_a_refused_check_sends_no_byte(server: Server) -> None:
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        guarding.install(http)
        with guarding.guarded(refuse), pytest.raises(errors.NotLeading):
            await http.post("/fresh", content=b"{}")
        assert server.received == b""
        # A kept-alive connection is checked too.
        assert (await http.get("/warm")).text == "ok"
        with guarding.guarded(refuse), pytest.raises(errors.NotLeading):
            await http.post("/reused", content=b"{}")
        assert b"/reused" not in server.received
        with guarding.guarded(lambda: None):
            assert (await http.post("/allowed", content=b"{}")).text == "ok"
        assert b"/allowed" in server.received


async def test_requests_outside_a_guarded_block_are_not_checked(server: Server) -> None:
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        guarding.install(http)
        assert (await http.put("/lease", content=b"{}")).text == "ok"


async def test_connect_installs_the_guard(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ns}}]
current-context: x
"""
    )
    client = connect(kubeconfig=kubeconfig)
    try:
        assert guarding.installed(client.http)
    finally:
        await client.aclose()


class _SocketStream(httpcore2.AsyncNetworkStream):
    """A stream over one socket that answers ``get_extra_info`` as httpcore2's anyio one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.asked: list[str] = []

    def get_extra_info(self, info: str) -> typing.Any:
        self.asked.append(info)
        if info == "is_readable":
            from httpcore2._utils import is_socket_readable

            return is_socket_readable(self.sock)
        return self.sock if info == "socket" else None


def test_a_guarded_stream_probes_its_socket_as_the_stream_it_wraps() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        inner = _SocketStream(ours)
        guarded = guarding._GuardedStream(inner)
        answers = []
        for step in ("idle", "the server wrote", "the server closed"):
            if step == "the server wrote":
                server.send(b"x")
            if step == "the server closed":
                server.close()
            answers.append(guarded.get_extra_info("is_readable"))
            assert answers[-1] == inner.get_extra_info("is_readable"), step
        assert answers == [False, True, True]
        assert inner.asked.count("socket") == 1
        ours.close()
        assert guarded.get_extra_info("is_readable") is True
        assert guarded.get_extra_info("socket") is ours


async def test_a_kept_alive_connection_the_server_closed_is_not_reused(server: Server) -> None:
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        guarding.install(http)
        assert (await http.get("/first")).text == "ok"
        pool = typing.cast("httpcore2.AsyncConnectionPool", http._transport._pool)  # type: ignore[attr-defined]
        (first,) = pool.connections
        stream = first._connection._network_stream  # type: ignore[attr-defined]
        stream.get_extra_info("socket").shutdown(socket.SHUT_RD)
        assert (await http.get("/second")).text == "ok"
        assert first not in pool.connections
