"""Watches over a direct connection (``kube.streaming.DirectWatches``).

Aspects tested against an HTTP/1.1 server in this process (plain TCP; TLS is the
cluster tests', whose every watch goes this way):
- the request is the client's: ``base_url``'s path prefix, the query, the auth
  flow's header, no content coding;
- chunked bodies split anywhere (inside a chunk header, inside an event) and
  chunks that arrive together give the same events, in order;
- a 401 asks the auth flow again and retries once with what it gives; with the
  in-cluster token file (lightkube's ``BearerTokenFileAuth``) rotated on disk, the watch
  refused with the old token is retried with the new one, and later watches send it;
- a non-2xx answer is the kube error its Status names (410 Gone, 429 with
  Retry-After); a connection that breaks mid-chunk or goes silent past the
  read timeout is ``Unreachable``;
- the line limit holds on this path too (a stream without newlines is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightkube.config.client_adapter import BearerTokenFileAuth

from konsumerator.kube import streaming
from konsumerator.kube.errors import OversizedWatchEvent
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.kube.watching import ListWatch
from konsumerator.runtime import errors
from konsumerator.runtime.ports import EventType

# One step of an answer: bytes to write, or a pause (seconds) before the next write.
Step = bytes | float


@dataclass
class Server:
    """Answers each connection with the next script; records each request's head."""

    scripts: list[Sequence[Step]]
    heads: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            for step in self.scripts.pop(0):
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    writer.write(step)
                    await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(
    *scripts: Sequence[Step], auth: httpx2.Auth | None = None, prefix: str = ""
) -> AsyncIterator[tuple[ApiClient, Server]]:
    server = Server(scripts=list(scripts))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    http = httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}{prefix}", auth=auth)
    client = ApiClient(http=http, watches=streaming.DirectWatches(http=http, ssl_context=None))
    try:
        yield client, server
    finally:
        await http.aclose()
        listener.close()
        await listener.wait_closed()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def bookmark(rv: int) -> bytes:
    event = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(rv)}}}
    return msgspec.json.encode(event) + b"\n"


def refusal(code: int, reason: str, *headers: bytes) -> bytes:
    body = msgspec.json.encode({"kind": "Status", "code": code, "reason": reason, "message": "m"})
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (code, len(body), extra, body)


async def versions(client: ApiClient) -> list[str]:
    source = ListWatch(client=client, resource=DEPLOYMENTS, projector=DEPLOYMENT_PROJECTOR)
    events = [e async for e in source.watch(resource_version="1", timeout_seconds=30)]
    assert all(e.type is EventType.BOOKMARK for e in events)
    return [e.resource_version for e in events]


def cuts(data: bytes, at: list[int]) -> list[Step]:
    """``data`` written in pieces cut at ``at``, each piece after a short pause, so that
    the reader sees them apart."""
    bounds = [0, *sorted(set(at)), len(data)]
    return [s for a, b in itertools.pairwise(bounds) for s in (0.001, data[a:b]) if b > a]


async def test_the_request_is_the_clients_own() -> None:
    auth = httpx2.BasicAuth("u", "p")
    async with serving([HEAD, chunk(bookmark(7)), END], auth=auth, prefix="/k8s/c1") as (
        client,
        server,
    ):
        assert await versions(client) == ["7"]
    head = server.heads[0].decode()
    request_line = head.split("\r\n")[0]
    assert request_line.startswith("GET /k8s/c1/apis/apps/v1/deployments?")
    assert "watch=1" in request_line
    assert "resourceVersion=1" in request_line
    lowered = head.lower()
    assert "authorization: basic dtpw\r\n" in lowered
    assert "accept-encoding: identity\r\n" in lowered
    assert client.counts.by_verb == {"watch": 1}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    per_chunk=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4),
    at=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
)
def test_events_split_anywhere_arrive_whole_and_in_order(
    per_chunk: list[int], at: list[int]
) -> None:
    events = [bookmark(100 + i) for i in range(sum(per_chunk))]
    body, start = b"", 0
    for n in per_chunk:  # several events in one chunk too
        body += chunk(b"".join(events[start : start + n]))
        start += n
    wire = HEAD + body + END

    async def run() -> list[str]:
        async with serving(cuts(wire, [a % len(wire) for a in at])) as (client, _):
            return await versions(client)

    assert asyncio.run(run()) == [str(100 + i) for i in range(len(events))]


class RotatedToken(httpx2.Auth):
    """A token that the server refuses once; asked again, the flow has a new one."""

    def __init__(self) -> None:
        self.token = "old"

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            self.token = "new"
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


async def test_a_401_asks_the_auth_flow_again_and_retries_once() -> None:
    denied = [refusal(401, "Unauthorized")]
    async with serving(denied, [HEAD, chunk(bookmark(9)), END], auth=RotatedToken()) as (
        client,
        server,
    ):
        assert await versions(client) == ["9"]
    assert [h.split(b"Authorization: ")[1].split(b"\r\n")[0] for h in server.heads] == [
        b"Bearer old",
        b"Bearer new",
    ]


async def test_a_token_file_rotated_on_disk_is_read_again_on_401_and_kept(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")
    auth = BearerTokenFileAuth(str(token))
    answers = [HEAD, chunk(bookmark(9)), END]
    async with serving(answers, [refusal(401, "Unauthorized")], answers, answers, auth=auth) as (
        client,
        server,
    ):
        assert await versions(client) == ["9"]
        token.write_text("new\n")  # the kubelet rotates it; the old one expires later
        assert await versions(client) == ["9"]
        assert await versions(client) == ["9"]
    assert [h.split(b"Authorization: ")[1].split(b"\r\n")[0] for h in server.heads] == [
        b"Bearer old",
        b"Bearer old",
        b"Bearer new",
        b"Bearer new",
    ]


async def test_a_401_without_a_new_credential_is_unauthorized() -> None:
    async with serving([refusal(401, "Unauthorized")], auth=httpx2.BasicAuth("u", "p")) as (
        client,
        server,
    ):
        with pytest.raises(errors.Unauthorized):
            await versions(client)
    assert len(server.heads) == 1


@pytest.mark.parametrize(
    ("answer", "expected", "retry_after"),
    [
        (refusal(410, "Expired"), errors.Gone, None),
        (refusal(429, "TooManyRequests", b"Retry-After: 3"), errors.TooManyRequests, 3.0),
    ],
)
async def test_a_refusal_is_the_error_its_status_names(
    answer: bytes, expected: type[Exception], retry_after: float | None
) -> None:
    async with serving([answer]) as (client, _):
        with pytest.raises(expected) as raised:
            await versions(client)
    if retry_after is not None:
        assert getattr(raised.value, "retry_after", None) == retry_after


async def test_a_connection_broken_mid_chunk_is_unreachable() -> None:
    whole = chunk(bookmark(5))
    async with serving([HEAD, whole, whole[:20]]) as (client, _):
        with pytest.raises(errors.Unreachable, match="broke"):
            await versions(client)


async def test_a_silent_connection_fails_after_the_read_timeout() -> None:
    async with serving([HEAD, chunk(bookmark(5)), 5.0]) as (client, _):
        got: list[bytes] = []

        async def drain() -> None:
            async with client.stream(
                verb="watch", resource="deployments", path="/w", params={}, read_timeout=0.2
            ) as body:
                async for batch in body:
                    got.append(batch)  # noqa: PERF401 (keep what came before the silence)

        with pytest.raises(errors.Unreachable, match=r"nothing read for 0\.2 s"):
            await drain()
    assert got == [bookmark(5)]


async def test_a_stream_without_newlines_is_refused_soon_after_the_limit() -> None:
    limit = 1000
    endless = [HEAD] + [chunk(b" " * 300)] * 10
    async with serving(endless) as (client, _):
        source = ListWatch(
            client=client,
            resource=DEPLOYMENTS,
            projector=DEPLOYMENT_PROJECTOR,
            max_line_bytes=limit,
        )
        with pytest.raises(OversizedWatchEvent):
            async for _ in source.watch(resource_version="1", timeout_seconds=30):
                pass


async def test_nothing_listens_is_unreachable() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    http = httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}")
    client = ApiClient(http=http, watches=streaming.DirectWatches(http=http, ssl_context=None))
    with pytest.raises(errors.Unreachable, match="cannot connect"):
        await versions(client)
    await http.aclose()


async def test_the_tls_context_is_the_clients_own() -> None:
    context = ssl.create_default_context()
    http = httpx2.AsyncClient(verify=context)
    try:
        assert streaming.ssl_context_of(http) is context
    finally:
        await http.aclose()


async def test_an_https_server_without_a_tls_context_is_refused_before_connecting() -> None:
    http = httpx2.AsyncClient(base_url="https://127.0.0.1:1")
    client = ApiClient(http=http, watches=streaming.DirectWatches(http=http, ssl_context=None))
    with pytest.raises(errors.Unreachable, match="no TLS context"):
        await versions(client)
    await http.aclose()
