"""Watch streams: the body of a streaming GET, read as byte batches.

Why watches do not go through httpx: a watch delivers one event per HTTP chunk,
and through httpx2 every chunk climbs the same ladder (anyio's Python-level TLS
stream and a cancel scope per read, h11, httpcore2's and httpx2's async
generators, the content decoder and the byte chunker): about 200 us of CPU per
event. In place, 1,000 new Deployments bring about 6,900 events (Deployment,
ReplicaSet and pod status updates by kube-controller-manager and the kubelet)
while they settle, so the read path alone cost the operator more CPU than
everything it decides.

``DirectWatches`` opens its own connection for each watch (a watch holds a
connection for its life anyway): asyncio's TLS, which decrypts whatever has
arrived in one go, and h11 (httpcore2's own HTTP/1.1 parser) fed everything one
read returned, so the events that arrived together are handed on as one batch
of bytes. Everything else is the client's: the URL (``base_url``, so a path
prefix of a proxied API server is kept), the headers, the authentication flow
(``httpx2.Auth``: a bearer token, a token file re-read on 401, an exec plugin)
and the TLS context (the cluster's CA and the client certificate; read from the
client's connection pool, whose shape ``kube.guarding`` already pins). The
client ``kube.connecting`` builds has no proxy (``trust_env=False``), so a
direct connection reaches the same server the client does.

``ClientWatches`` streams through the httpx2 client itself; it is for clients
that have no network of their own (httpx2's ``MockTransport`` in unit tests).

Both raise what ``ApiClient`` maps: ``StreamFailed`` (no answer, a broken
connection, a read timeout) and ``StreamRefused`` (a non-2xx answer, with its
body) — the caller turns them into ``kube.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import h11
import httpx2

# An error answer's body is read for its Status; more than this is not a Status.
_MAX_ERROR_BODY: Final = 1 << 20
# What one read asks of the connection: everything that has arrived, up to this.
_READ_BYTES: Final = 1 << 16
# How long a trickling watch lets events gather before it reads again (``_gather``):
# well below the controllers' own batching of events (``controllers.waking.BATCH_S``).
GATHER_S: Final = 0.2
# Connecting (TCP, TLS) and sending the request, as httpx2's connect timeout was.
CONNECT_TIMEOUT: Final = 10.0


class StreamFailed(Exception):
    """No answer, or the connection broke or went silent past the read timeout."""


@dataclass(frozen=True, slots=True)
class StreamRefused(Exception):
    """A non-2xx answer."""

    status: int
    body: bytes
    retry_after: str | None


class WatchStreams(Protocol):
    def open(
        self, *, path: str, params: Mapping[str, str], read_timeout: float
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The body of a GET of ``path``: byte batches, in order, until the server ends it.

        Raises ``StreamRefused`` before the first batch for a non-2xx answer and
        ``StreamFailed`` when the connection fails at any point; a read that waits
        longer than ``read_timeout`` fails.
        """
        ...


class ClientWatches:
    """Streams through the httpx2 client (every chunk through its whole stack)."""

    def __init__(self, *, http: httpx2.AsyncClient) -> None:
        self._http = http

    @contextlib.asynccontextmanager
    async def open(
        self, *, path: str, params: Mapping[str, str], read_timeout: float
    ) -> AsyncGenerator[AsyncIterator[bytes], None]:
        timeout = httpx2.Timeout(CONNECT_TIMEOUT, read=read_timeout)
        try:
            async with self._http.stream(
                "GET", path, params=params, headers={"Accept": "application/json"}, timeout=timeout
            ) as response:
                if not response.is_success:
                    raise StreamRefused(
                        status=response.status_code,
                        body=await response.aread(),
                        retry_after=response.headers.get("Retry-After"),
                    )
                yield response.aiter_bytes()
        except httpx2.TransportError as exc:
            raise StreamFailed(f"{type(exc).__name__}: {exc}") from exc


class DirectWatches:
    """Streams over a connection of its own per watch (see the module docstring)."""

    def __init__(
        self,
        *,
        http: httpx2.AsyncClient,
        ssl_context: ssl.SSLContext | None,
        gather_s: float = GATHER_S,
    ) -> None:
        """``ssl_context`` is the client's (``ssl_context_of``); None for plain http.
        ``gather_s``: see ``_Connection._gather`` (0: read as soon as data arrives)."""
        self._http = http
        self._ssl_context = ssl_context
        self._gather_s = gather_s

    @contextlib.asynccontextmanager
    async def open(
        self, *, path: str, params: Mapping[str, str], read_timeout: float
    ) -> AsyncGenerator[AsyncIterator[bytes], None]:
        request = self._http.build_request(
            "GET",
            path,
            params=params,
            # No content coding: the lines are split as they arrive.
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
        )
        auth = self._http.auth
        flow = auth.async_auth_flow(request) if auth is not None else None
        if flow is not None:
            request = await flow.__anext__()
        try:
            connection = await self._connect(request)
            try:
                status = await connection.start(read_timeout=read_timeout)
                if status == 401 and flow is not None:
                    # The flow may have a fresh credential (a rotated token file, an
                    # exec plugin run again); if so, one more try, as httpx2 makes.
                    retry = await _next_request(flow, request, status)
                    if retry is not None:
                        connection.close()
                        connection = await self._connect(retry)
                        status = await connection.start(read_timeout=read_timeout)
                await connection.refuse_unless_success(status=status, read_timeout=read_timeout)
                yield connection.body(read_timeout=read_timeout)
            finally:
                connection.close()
        finally:
            if flow is not None:
                await flow.aclose()

    async def _connect(self, request: httpx2.Request) -> _Connection:
        url = request.url
        secure = url.scheme == "https"
        if secure and self._ssl_context is None:
            raise StreamFailed(f"no TLS context for {url.host}")
        port = url.port or (443 if secure else 80)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(
                    url.host,
                    port,
                    ssl=self._ssl_context if secure else None,
                    server_hostname=url.host if secure else None,
                )
        except (OSError, TimeoutError) as exc:
            raise StreamFailed(f"cannot connect to {url.host}:{port}: {_described(exc)}") from exc
        connection = _Connection(reader=reader, writer=writer, gather_s=self._gather_s)
        try:
            await connection.send(request)
        except BaseException:
            connection.close()
            raise
        return connection


async def _next_request(
    flow: AsyncGenerator[httpx2.Request, httpx2.Response],
    request: httpx2.Request,
    status: int,
) -> httpx2.Request | None:
    """What the auth flow sends after an answer of ``status`` (None: it is done)."""
    try:
        return await flow.asend(httpx2.Response(status, request=request))
    except StopAsyncIteration:
        return None


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Connection:
    """One HTTP/1.1 exchange on its own connection, parsed by h11."""

    def __init__(
        self, *, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gather_s: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        self._headers: list[tuple[bytes, bytes]] = []
        self._gather_s = gather_s

    async def send(self, request: httpx2.Request) -> None:
        head = h11.Request(
            method=b"GET", target=request.url.raw_path, headers=list(request.headers.raw)
        )
        data = self._h11.send(head) + (self._h11.send(h11.EndOfMessage()) or b"")
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self._writer.write(data)
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            raise StreamFailed(f"cannot send the request: {_described(exc)}") from exc

    async def start(self, *, read_timeout: float) -> int:
        """The answer's status code (its head read)."""
        while True:
            event = await self._next(read_timeout=read_timeout)
            if isinstance(event, h11.Response):
                self._headers = list(event.headers)
                return event.status_code
            if not isinstance(event, h11.InformationalResponse):
                raise StreamFailed(f"unexpected {type(event).__name__} before the answer")

    def _header(self, name: bytes) -> str | None:
        for key, value in self._headers:
            if key == name:
                return value.decode("latin-1")
        return None

    async def refuse_unless_success(self, *, status: int, read_timeout: float) -> None:
        if 200 <= status < 300:
            return
        body = bytearray()
        while len(body) <= _MAX_ERROR_BODY:
            event = await self._next(read_timeout=read_timeout)
            if isinstance(event, h11.Data):
                body += event.data
            else:  # EndOfMessage, or the connection closed
                break
        raise StreamRefused(
            status=status, body=bytes(body), retry_after=self._header(b"retry-after")
        )

    async def body(self, *, read_timeout: float) -> AsyncGenerator[bytes, None]:
        """The body, one batch per read: everything the read brought, in one bytes."""
        parser = self._h11
        try:
            while True:
                pieces: list[bytes] = []
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        break
                    if isinstance(event, h11.Data):
                        pieces.append(event.data)
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        if pieces:
                            yield b"".join(pieces)
                        return
                if pieces:
                    batch = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    yield batch
                    if len(batch) < _READ_BYTES and self._gather_s > 0:
                        await self._gather()
                # The timeout covers the read only, never the caller's work between reads.
                try:
                    async with asyncio.timeout(read_timeout):
                        data = await self._reader.read(_READ_BYTES)
                except TimeoutError as exc:
                    raise StreamFailed(f"nothing read for {read_timeout:g} s") from exc
                parser.receive_data(data)
        except (OSError, h11.RemoteProtocolError) as exc:
            raise StreamFailed(f"the watch connection broke: {_described(exc)}") from exc

    async def _next(self, *, read_timeout: float) -> h11.Event:
        try:
            async with asyncio.timeout(read_timeout):
                while True:
                    event = self._h11.next_event()
                    if event is h11.NEED_DATA:
                        self._h11.receive_data(await self._reader.read(_READ_BYTES))
                        continue
                    if event is h11.PAUSED:  # pragma: no cover - only after a whole answer
                        raise StreamFailed("the connection paused")
                    return event  # type: ignore[return-value]
        except TimeoutError as exc:
            raise StreamFailed(f"no answer within {read_timeout:g} s") from exc
        except (OSError, h11.RemoteProtocolError) as exc:
            raise StreamFailed(f"the watch connection broke: {_described(exc)}") from exc

    async def _gather(self) -> None:
        """Let the next events gather in the socket's buffer for ``gather_s``.

        A trickle of events (the status updates of settling Deployments and pods:
        tens a second) woke the event loop, TLS and the parser once per event, and
        those wake-ups, not the events, were most of the CPU (measured: 225 us an
        event woken one by one, 66 us when gathered for 0.1 s). Only after a batch
        smaller than one read: a busy stream is already read in full batches, and
        what can arrive during one pause is about what the last batch held, far
        below the socket's buffer, so the server is never held up for long.
        """
        # A stream connection's transport reads as well as writes (it is typed as a writer).
        transport = typing.cast("asyncio.Transport", self._writer.transport)
        if not transport.is_reading():  # paused by the reader's own flow control
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(self._gather_s)
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    def close(self) -> None:
        # A watch is abandoned mid-answer: nothing more is owed to the server, so the
        # connection is dropped at once (no TLS close_notify to wait for).
        self._writer.transport.abort()


def ssl_context_of(http: httpx2.AsyncClient) -> ssl.SSLContext | None:
    """The TLS context of ``http``'s connection pool (CA, client certificate), if it has one."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    context = getattr(pool, "_ssl_context", None)
    return context if isinstance(context, ssl.SSLContext) else None
