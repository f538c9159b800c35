"""The size limit on one Prometheus answer (``querying.MAX_ANSWER_BYTES``).

Aspects tested:
- an answer of exactly the limit is accepted, one byte more is refused with
  ``PrometheusUnavailable`` whose reason names the limit and never the body,
  whether the server declares the length (``Content-Length``), streams it
  without one (chunked), or compresses it (the limit is on the decoded body);
- for any size, limit and chunking, an answer is accepted exactly when it
  fits (property);
- a streamed answer past the limit is not read to its end;
- the default limit is ``MAX_ANSWER_BYTES``: an answer of exactly that size
  is accepted, one byte more is not.
"""

import gzip
from collections.abc import AsyncIterator
from enum import Enum

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.prom import querying
from konsumerator.prom.errors import PrometheusUnavailable
from konsumerator.prom.responses import VectorData

ADDRESS = "http://prom:9090"
HEAD = b'{"status":"success","data":{"resultType":"vector","result":[]}'
MINIMAL = len(HEAD) + 1


def envelope(size: int) -> bytes:
    """A valid empty-vector answer of exactly ``size`` bytes (whitespace-padded)."""
    assert size >= MINIMAL
    return HEAD + b" " * (size - MINIMAL) + b"}"


class Delivery(Enum):
    DECLARED = "Content-Length"
    STREAMED = "chunked, no length"
    GZIPPED = "gzip, length of the compressed body"


class Answer:
    """Serves ``body`` the chosen way, counting how much of it was produced."""

    def __init__(self, body: bytes, *, delivery: Delivery, chunk: int = 4096) -> None:
        self.body = body
        self.delivery = delivery
        self.chunk = chunk
        self.produced = 0

    async def _stream(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.produced += len(piece)
            yield piece

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        if self.delivery is Delivery.DECLARED:
            return httpx2.Response(200, content=self.body)
        if self.delivery is Delivery.GZIPPED:
            return httpx2.Response(
                200, content=gzip.compress(self.body), headers={"Content-Encoding": "gzip"}
            )
        return httpx2.Response(200, content=self._stream())


async def ask(answer: Answer, **limit: int) -> object:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer.handle)) as client:
        response = await querying.query_instant(
            client=client, address=ADDRESS, query="lag", timeout_seconds=10.0, **limit
        )
    return response.data


LIMIT = 1000


@pytest.mark.parametrize("delivery", list(Delivery))
@pytest.mark.parametrize(
    ("size", "accepted"),
    [(LIMIT - 1, True), (LIMIT, True), (LIMIT + 1, False), (10 * LIMIT, False)],
)
async def test_an_answer_is_accepted_up_to_the_limit_and_refused_past_it(
    delivery: Delivery, size: int, accepted: bool
) -> None:
    answer = Answer(envelope(size), delivery=delivery, chunk=100)
    if accepted:
        assert isinstance(await ask(answer, max_answer_bytes=LIMIT), VectorData)
        return
    with pytest.raises(PrometheusUnavailable) as caught:
        await ask(answer, max_answer_bytes=LIMIT)
    [failure] = caught.value.failures
    assert failure.reason == f"answer larger than {LIMIT} bytes"
    assert "status" not in str(caught.value)  # nothing of the body


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=MINIMAL, max_value=3000),
    limit=st.integers(min_value=MINIMAL, max_value=3000),
    chunk=st.integers(min_value=1, max_value=512),
    delivery=st.sampled_from(Delivery),
)
async def test_an_answer_is_accepted_exactly_when_it_fits(
    size: int, limit: int, chunk: int, delivery: Delivery
) -> None:
    answer = Answer(envelope(size), delivery=delivery, chunk=chunk)
    if size <= limit:
        assert isinstance(await ask(answer, max_answer_bytes=limit), VectorData)
    else:
        with pytest.raises(PrometheusUnavailable, match=f"answer larger than {limit} bytes"):
            await ask(answer, max_answer_bytes=limit)


async def test_a_streamed_answer_past_the_limit_is_not_read_to_its_end() -> None:
    answer = Answer(envelope(100 * LIMIT), delivery=Delivery.STREAMED, chunk=100)
    with pytest.raises(PrometheusUnavailable):
        await ask(answer, max_answer_bytes=LIMIT)
    assert answer.produced <= LIMIT + answer.chunk


@pytest.mark.parametrize(("extra", "accepted"), [(0, True), (1, False)])
async def test_the_default_limit_is_max_answer_bytes(extra: int, accepted: bool) -> None:
    answer = Answer(
        envelope(querying.MAX_ANSWER_BYTES + extra), delivery=Delivery.STREAMED, chunk=2**20
    )
    if accepted:
        assert isinstance(await ask(answer), VectorData)
    else:
        with pytest.raises(PrometheusUnavailable, match="answer larger than 33554432 bytes"):
            await ask(answer)
