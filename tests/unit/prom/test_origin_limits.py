"""The Prometheus client's connections: a limit per origin, none for all of them.

Aspects tested (an inner transport that holds the answers of one host until released, so
nothing depends on timing):
- requests to a host whose answers are held take at most ``per_origin`` slots; one more
  to that host waits, while a request to another host is answered at once (before, one
  pool of 100 for all hosts: the held ones made every other host wait);
- a slot is given back when the response is closed, read to its end or dropped unread,
  and when the request fails; the waiting request then goes;
- a host with no request in flight keeps no gate (a Consumer's addresses come and go).
"""

import asyncio

import httpx2
import pytest

from konsumerator.prom.connections import OriginLimits

HELD, FREE = "held.example", "free.example"


class Inner:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.started.append(request.url.host)
        if request.url.host == HELD:
            await self.release.wait()
        if request.url.path == "/fail":
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, content=b"ok")


def client(inner: Inner, per_origin: int) -> tuple[httpx2.AsyncClient, OriginLimits]:
    limits = OriginLimits(per_origin=per_origin, transport=httpx2.MockTransport(inner.handle))
    return httpx2.AsyncClient(transport=limits), limits


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_held_host_takes_its_own_slots_and_no_other_hosts() -> None:
    inner = Inner()
    http, limits = client(inner, per_origin=2)
    held = [asyncio.ensure_future(http.get(f"http://{HELD}/q")) for _ in range(3)]
    await settle()
    assert inner.started.count(HELD) == 2
    free = await asyncio.wait_for(http.get(f"http://{FREE}/q"), 30)
    assert free.status_code == 200
    assert inner.started.count(HELD) == 2
    inner.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*held), 30)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert limits.in_use() == {}


@pytest.mark.parametrize("ending", ["read", "dropped unread", "failed"])
async def test_a_slot_is_given_back_when_its_request_ends(ending: str) -> None:
    inner = Inner()
    inner.release.set()
    http, limits = client(inner, per_origin=1)
    path = "/fail" if ending == "failed" else "/q"
    if ending == "failed":
        with pytest.raises(httpx2.ConnectError):
            await http.get(f"http://{HELD}{path}")
    else:
        async with http.stream("GET", f"http://{HELD}{path}") as response:
            if ending == "read":
                await response.aread()
    assert limits.in_use() == {}
    after = await asyncio.wait_for(http.get(f"http://{HELD}/q"), 30)
    assert after.status_code == 200


async def test_a_request_cancelled_while_it_waits_for_a_slot_leaves_no_trace() -> None:
    inner = Inner()
    http, limits = client(inner, per_origin=1)
    first = asyncio.ensure_future(http.get(f"http://{HELD}/q"))
    waiting = asyncio.ensure_future(http.get(f"http://{HELD}/q"))
    await settle()
    waiting.cancel()
    await settle()
    assert limits.in_use() == {("http", HELD, None): 1}
    inner.release.set()
    await asyncio.wait_for(first, 30)
    assert limits.in_use() == {}
    assert inner.started == [HELD]


def test_per_origin_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_origin"):
        OriginLimits(per_origin=0)
