"""The connections to every Consumer's Prometheus: a limit per address, not one for all.

Every Consumer's queries go through one HTTP client, and httpx's pool allows 100
connections in all: whoever waits for one waits for the connections in use to end.
Addresses are a Consumer author's choice, and one that accepts connections and never
answers keeps each of them for the whole query timeout (10 s); a Consumer may list 16
of them and asks three or four queries of each at once. Four such Consumers (one
tenant's) took the 100 connections, and every other Consumer's queries, to its own
healthy Prometheus, queued behind them until they timed out: its metrics were as late
as the silent ones', or failed.

So the pool itself has no overall limit, and each origin (scheme, host, port) is
limited on its own (``PER_ORIGIN``): a silent address holds only its own origin's
connections, and a Consumer's queries wait only for those of the Prometheus they ask.
A request holds its origin's slot from before its connection is taken until its
response is closed (read to its end, or dropped), so the limit is one of connections
in use. How many connections there are in all is bounded by the Consumers: one refresh
at a time each (``providing``), of at most 16 addresses and four queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final

import httpx2

# Connections in use to one origin: what the one client allowed to all of them before.
PER_ORIGIN: Final = 100
# Idle connections kept for reuse, in all (httpx's default).
KEEPALIVE: Final = 20

_Origin = tuple[str, str, int | None]


@dataclass(slots=True)
class _Gate:
    slots: asyncio.Semaphore
    # Requests holding or waiting for a slot: the gate is dropped when none is left.
    users: int = field(default=0)


class OriginLimits(httpx2.AsyncBaseTransport):
    """A transport that lets at most ``per_origin`` requests use one origin at a time."""

    def __init__(
        self,
        *,
        per_origin: int = PER_ORIGIN,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: where requests go (a pool without an overall limit if None)."""
        if per_origin < 1:
            raise ValueError(f"per_origin must be at least 1, got {per_origin!r}")
        self._per_origin = per_origin
        self._transport = (
            transport
            if transport is not None
            else httpx2.AsyncHTTPTransport(
                trust_env=False,
                limits=httpx2.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE),
            )
        )
        self._gates: dict[_Origin, _Gate] = {}

    def in_use(self) -> dict[_Origin, int]:
        """Requests holding or waiting for a slot, by origin (for tests)."""
        return {origin: gate.users for origin, gate in self._gates.items()}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        origin: _Origin = (request.url.scheme, request.url.host, request.url.port)
        gate = self._gates.get(origin)
        if gate is None:
            gate = self._gates[origin] = _Gate(slots=asyncio.Semaphore(self._per_origin))
        gate.users += 1
        release = _Release(gates=self._gates, origin=origin, gate=gate)
        try:
            await gate.slots.acquire()
        except BaseException:
            release.leave()
            raise
        try:
            response = await self._transport.handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Releasing(stream=response.stream, release=release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


@dataclass(slots=True)
class _Release:
    """Gives a request's slot back, once."""

    gates: dict[_Origin, _Gate]
    origin: _Origin
    gate: _Gate
    done: bool = False

    def __call__(self) -> None:
        if self.done:
            return
        self.gate.slots.release()
        self.leave()

    def leave(self) -> None:
        self.done = True
        self.gate.users -= 1
        if self.gate.users == 0 and self.gates.get(self.origin) is self.gate:
            del self.gates[self.origin]


class _Releasing(httpx2.AsyncByteStream):
    """A response body that gives its request's slot back when it is closed."""

    def __init__(self, *, stream: httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()
