"""The last check before a write leaves the process: at the socket.

The writer asks the leader elector's fence before a write starts
(``Writer._write``), but a request passes many awaits on its way to the
socket (the connection pool, a TLS handshake). A process frozen on that way
(SIGSTOP, a stalled node) and woken up after its lease was taken would run
the steps already scheduled before it checks any timer, and could send a
request that was allowed seconds ago. So the network stream itself asks
again, immediately before it writes bytes: the writer puts its check in a
context variable for the duration of its request, and every write of the
connection made in that task runs it. A refused check raises before a byte
of the request is sent; a request refused half-way (headers sent, body not)
is incomplete, and the API server discards it.

Only requests made inside ``guarded`` are checked (reads, watches and the
Lease's own writes are not), because the variable is per task.

httpx does not let a caller choose the connection pool's network backend, so
``install`` swaps it on the client's transport (``_transport._pool``): a
private attribute of the pinned httpx2/httpcore2, which ``installed`` lets a
test verify.
"""

# The ``timeout`` parameters are httpcore2's network-backend interface.
# ruff: noqa: ASYNC109

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import typing
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar

import httpcore2
import httpx2

Check = Callable[[], object]
"""Raises when the request must not be sent (its return value is ignored)."""

_CHECK: ContextVar[Check | None] = ContextVar("konsumerator_write_check", default=None)


@contextlib.contextmanager
def guarded(check: Check) -> Iterator[None]:
    """Run ``check`` before every socket write of requests made in this block."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def _readable(sock: socket.socket | None) -> bool:
    """httpcore2's idle-connection probe: data (or the server's close) waits to be read.

    A socket without a descriptor (closed) counts as readable, as httpcore2 has it: the
    next read would return the end of the stream, so the connection is not reused.
    """
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    probe = select.poll()
    probe.register(fd, select.POLLIN)
    return bool(probe.poll(0))


_UNKNOWN = object()


class _GuardedStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: object = _UNKNOWN

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        check = _CHECK.get()
        if check is not None:
            check()
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _GuardedStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            # The pool asks this of every idle connection each time it queues or releases
            # a request (``has_expired``). Through anyio every ask rebuilds the stream's
            # attribute mappings, which was 5 % of the operator's CPU while it created
            # 10,000 Deployments; the socket is the stream's for its life, so it is looked
            # up once.
            if self._socket is _UNKNOWN:
                self._socket = self._stream.get_extra_info("socket")
            return _readable(typing.cast("socket.socket | None", self._socket))
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """A network backend whose streams run the task's write check."""

    def __init__(self, backend: httpcore2.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _GuardedStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _GuardedStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def install(http: httpx2.AsyncClient) -> None:
    """Make every connection ``http`` opens from now on run the task's write check."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    if not isinstance(pool, httpcore2.AsyncConnectionPool):
        raise TypeError(f"unexpected httpx2 transport: {type(pool).__name__}")
    pool._network_backend = GuardedBackend(pool._network_backend)


def installed(http: httpx2.AsyncClient) -> bool:
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), GuardedBackend)
