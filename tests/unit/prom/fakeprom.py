"""A scriptable fake Prometheus fleet behind `httpx2.MockTransport`.

Each fake server is addressed by host (`http://<host>:9090`). It answers
form-encoded `/api/v1/query` requests from a table `query → answer`, where an
answer is an `httpx2.Response` or an exception to raise (a transport error).
Optional delays (per server, per query) make a server slow; cancelled requests are recorded, so
hedging tests can prove that losers were cancelled rather than awaited.
"""

import asyncio
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

Answer = httpx2.Response | Exception


def vector(*samples: tuple[Mapping[str, str], str]) -> dict[str, Any]:
    return {
        "resultType": "vector",
        "result": [{"metric": dict(m), "value": [1700000000.0, v]} for m, v in samples],
    }


def matrix(*series: tuple[Mapping[str, str], Sequence[str]]) -> dict[str, Any]:
    return {
        "resultType": "matrix",
        "result": [
            {"metric": dict(m), "values": [[1700000000.0 + i, v] for i, v in enumerate(vs)]}
            for m, vs in series
        ],
    }


def success(data: Mapping[str, Any], *, warnings: Sequence[str] = ()) -> httpx2.Response:
    body: dict[str, Any] = {"status": "success", "data": dict(data)}
    if warnings:
        body["warnings"] = list(warnings)
    return httpx2.Response(200, json=body)


def failure(status: int, error_type: str, message: str) -> httpx2.Response:
    return httpx2.Response(
        status, json={"status": "error", "errorType": error_type, "error": message}
    )


@dataclass
class Server:
    answers: Mapping[str, Answer]
    delay: float = 0.0
    # Used for any query missing from `answers`.
    default: Answer | None = None
    # Per-query delays, on top of `delay`.
    delays: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    host: str
    method: str
    path: str
    query: str
    form: Mapping[str, str]


@dataclass
class FakeFleet:
    servers: dict[str, Server] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    cancelled: list[Recorded] = field(default_factory=list)

    def add(self, host: str, server: Server) -> str:
        self.servers[host] = server
        return f"http://{host}:9090"

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))

    def count(self, *, query: str | None = None, host: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (query is None or r.query == query) and (host is None or r.host == host)
        )

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
        else:
            form = dict(request.url.params)
        recorded = Recorded(
            host=request.url.host,
            method=request.method,
            path=request.url.path,
            query=form.get("query", ""),
            form=form,
        )
        self.requests.append(recorded)
        server = self.servers.get(request.url.host)
        if server is None:
            raise httpx2.ConnectError("connection refused", request=request)
        try:
            delay = server.delay + server.delays.get(recorded.query, 0.0)
            if delay:
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(recorded)
            raise
        answer = server.answers.get(recorded.query, server.default)
        if answer is None:
            return failure(400, "bad_data", f"unexpected query {recorded.query!r}")
        if isinstance(answer, Exception):
            raise answer
        # A fresh Response per request: Response objects are single-use.
        return httpx2.Response(answer.status_code, headers=answer.headers, content=answer.content)
