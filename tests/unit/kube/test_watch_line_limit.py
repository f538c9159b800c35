"""The length limit on one watch event line (``watching.MAX_WATCH_LINE_BYTES``).

Aspects tested (httpx2's MockTransport, no cluster):
- a line of exactly the limit is read, one byte more ends the watch with
  ``OversizedWatchEvent`` naming the limit, whether the line arrives in one
  piece or in small chunks (the check on an incomplete line);
- for any line length, limit and chunking, a line is read exactly when it fits
  (property);
- a stream that never sends a newline is dropped soon after the limit instead
  of being buffered to its end;
- the default limit is ``MAX_WATCH_LINE_BYTES``, far above the API server's
  3 MiB request limit.
"""

from collections.abc import AsyncIterator

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.kube import watching
from konsumerator.kube.errors import OversizedWatchEvent
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.runtime.ports import EventType

HEAD = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}'
MINIMAL = len(HEAD) + 1


def bookmark_line(length: int) -> bytes:
    """A bookmark event of exactly ``length`` bytes, newline excluded (whitespace-padded)."""
    assert length >= MINIMAL
    return HEAD + b" " * (length - MINIMAL) + b"}"


class Stream:
    """Serves ``body`` in chunks of ``chunk`` bytes, counting how much was produced."""

    def __init__(self, body: bytes, *, chunk: int) -> None:
        self.body = body
        self.chunk = chunk
        self.produced = 0

    async def _pieces(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.produced += len(piece)
            yield piece

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=self._pieces())


async def watch(stream: Stream, *, limit: int) -> list[str]:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(stream.handle), base_url="https://k8s")
    source = watching.ListWatch(
        client=ApiClient(http=http),
        resource=DEPLOYMENTS,
        projector=DEPLOYMENT_PROJECTOR,
        max_line_bytes=limit,
    )
    try:
        events = [e async for e in source.watch(resource_version="1", timeout_seconds=30)]
    finally:
        await http.aclose()
    assert all(e.type is EventType.BOOKMARK for e in events)
    return [e.resource_version for e in events]


LIMIT = 1000


@pytest.mark.parametrize("chunk", [10 * LIMIT, 7], ids=["whole", "chunked"])
@pytest.mark.parametrize(("length", "read"), [(LIMIT - 1, True), (LIMIT, True), (LIMIT + 1, False)])
async def test_a_line_is_read_up_to_the_limit_and_refused_past_it(
    chunk: int, length: int, read: bool
) -> None:
    stream = Stream(bookmark_line(MINIMAL) + b"\n" + bookmark_line(length) + b"\n", chunk=chunk)
    if read:
        assert await watch(stream, limit=LIMIT) == ["5", "5"]
        return
    with pytest.raises(OversizedWatchEvent, match=f"a watch event longer than {LIMIT} bytes"):
        await watch(stream, limit=LIMIT)


@settings(max_examples=150, deadline=None)
@given(
    length=st.integers(min_value=MINIMAL, max_value=600),
    limit=st.integers(min_value=MINIMAL, max_value=600),
    chunk=st.integers(min_value=1, max_value=700),
    trailing_newline=st.booleans(),
)
async def test_a_line_is_read_exactly_when_it_fits(
    length: int, limit: int, chunk: int, trailing_newline: bool
) -> None:
    stream = Stream(bookmark_line(length) + (b"\n" if trailing_newline else b""), chunk=chunk)
    if length <= limit:
        assert await watch(stream, limit=limit) == ["5"]
    else:
        with pytest.raises(OversizedWatchEvent):
            await watch(stream, limit=limit)


async def test_a_stream_without_newlines_is_dropped_soon_after_the_limit() -> None:
    stream = Stream(b" " * (100 * LIMIT), chunk=100)
    with pytest.raises(OversizedWatchEvent):
        await watch(stream, limit=LIMIT)
    assert stream.produced <= LIMIT + stream.chunk


def test_the_default_limit_is_far_above_the_api_servers_request_limit() -> None:
    assert watching.MAX_WATCH_LINE_BYTES >= 10 * 3 * 2**20
