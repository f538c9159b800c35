"""A large Prometheus answer is decoded and parsed in a thread, not on the event loop.

An answer may be 32 MiB (``querying.MAX_ANSWER_BYTES``); whatever listens at a Consumer's
address decides what it holds. 500,000 series of one partition label, 29 MiB, cost
about 0.3 s to decode and 1.6 s to parse, three queries a refresh, at every
``minSyncPeriod`` (1 s at the least): on the event loop, one Consumer's answers stalled
every other Consumer's pass, the watches and the Lease renewal for seconds at a time.
In a thread the loop runs between the interpreter's switches (every 5 ms).

Aspects tested (a fake transport; which thread runs what is recorded, nothing timed):
- a large answer (past ``DECODE_IN_THREAD_BYTES``, more series than
  ``PARSE_IN_THREAD_SERIES``) is decoded and parsed off the event loop's thread, and the
  snapshot is the same;
- a small answer is decoded and parsed on the loop (a thread would cost more than it);
- the same for the ``cpuUsage`` query's answer.
"""

import asyncio
import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from konsumerator.prom import cpuusage, fetching, querying
from konsumerator.prom.queries import PodQuerySpec, PrometheusConfig, QuerySpec

CONFIG = PrometheusConfig(
    addresses=("http://prom:9090",),
    production=QuerySpec("p", "partition"),
    consumption=QuerySpec("c", "partition"),
    offset=QuerySpec("o", "partition"),
    timeout_seconds=60.0,
)


def answer(series: int) -> bytes:
    result = [
        {"metric": {"partition": str(i), "filler": "x" * 64}, "value": [1.0, "5"]}
        for i in range(series)
    ]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def recording(fn: Callable[..., Any], threads: list[str]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return fn(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize(
    ("series", "off_the_loop"),
    [(30_000, True), (10, False)],
    ids=["large", "small"],
)
async def test_where_an_answer_is_decoded_and_parsed(
    series: int, off_the_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = answer(series)
    assert (len(body) > querying.DECODE_IN_THREAD_BYTES) is off_the_loop
    assert (series > fetching.PARSE_IN_THREAD_SERIES) is off_the_loop
    decoded: list[str] = []
    parsed: list[str] = []
    monkeypatch.setattr(querying, "decode_envelope", recording(querying.decode_envelope, decoded))
    monkeypatch.setattr(fetching, "parse_partitions", recording(fetching.parse_partitions, parsed))

    async def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body)

    loop_thread = threading.current_thread().name
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handle)) as client:
        result = await asyncio.wait_for(
            fetching.fetch_snapshot(client=client, config=CONFIG, num_partitions=series), 60
        )
    assert len(result.snapshot.offset) == series
    assert len(decoded) == len(parsed) == 3
    assert all((name != loop_thread) is off_the_loop for name in decoded), decoded
    assert all((name != loop_thread) is off_the_loop for name in parsed), parsed


@pytest.mark.parametrize(
    ("series", "off_the_loop"),
    [(30_000, True), (10, False)],
    ids=["large", "small"],
)
async def test_where_a_cpu_usage_answer_is_parsed(
    series: int, off_the_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (series > cpuusage.PARSE_IN_THREAD_SERIES) is off_the_loop
    body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"pod": f"pod-{i}"}, "value": [1.0, "0.5"]} for i in range(series)
                ],
            },
        }
    ).encode()
    parsed: list[str] = []
    monkeypatch.setattr(cpuusage, "parse_pods", recording(cpuusage.parse_pods, parsed))

    async def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body)

    loop_thread = threading.current_thread().name
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handle)) as client:
        usage = await asyncio.wait_for(
            cpuusage.fetch_cpu_usage(
                client=client,
                addresses=CONFIG.addresses,
                spec=PodQuerySpec("cpu", "pod"),
                timeout_seconds=60.0,
            ),
            60,
        )
    assert usage.problem is None
    assert len(usage.by_pod or {}) == series
    assert len(parsed) == 1
    assert (parsed[0] != loop_thread) is off_the_loop
