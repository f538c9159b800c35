"""The provider's patience: a refresh that outlasts it goes on alone and wakes its Consumer.

A Consumer's Prometheus may never answer (its address is its author's choice); awaited in
the pass, its refresh held a reconcile worker for the whole query timeout. With
``patience_s`` the provider waits that long at most, raises ``RefreshPending`` and lets
the refresh run on; ``wake(key)`` asks for the Consumer's pass when it ends.

Aspects tested (an answer held until the test releases it, so nothing depends on timing):
- a refresh that is not done within the patience raises ``RefreshPending``, wakes the key
  once when it ends, and the next ``get`` returns its result without another request;
- a refresh that fails after the patience: the next ``get`` reports its error (it does not
  start another refresh that would outlast the patience again, for ever);
- an answer within the patience is returned at once and wakes nobody;
- a config changed while a refresh runs: that refresh is cancelled, never returned, and a
  new one is started for the new config;
- ``forget`` and ``close`` cancel a running refresh, and nobody is woken;
- without a patience, ``get`` waits as long as the refresh takes.
"""

import asyncio
import dataclasses
import urllib.parse
from datetime import UTC, datetime

import httpx2
import pytest

from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec
from konsumerator.prom.results import ProviderResult, RefreshPending

from .fakeprom import success, vector

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = "team-a/orders"
CONFIG = PrometheusConfig(
    addresses=("http://prom:9090",),
    production=QuerySpec("p", "partition"),
    consumption=QuerySpec("c", "partition"),
    offset=QuerySpec("o", "partition"),
    timeout_seconds=60.0,
)
LONG = 60.0  # a patience no immediate answer outlasts
SHORT = 0.01  # a patience a held answer always outlasts


class HeldPrometheus:
    """Answers every query once ``release`` is set (or fails, with ``fail``)."""

    def __init__(self, *, held: bool = True, fail: bool = False) -> None:
        self.release = asyncio.Event()
        if not held:
            self.release.set()
        self.fail = fail
        self.requests = 0
        self.cancelled = 0

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.fail:
            return httpx2.Response(503)
        query = dict(urllib.parse.parse_qsl(request.content.decode()))["query"]
        return success(vector(({"partition": "0"}, {"p": "1", "c": "2", "o": "3"}[query])))

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))


class Wakes:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.woken = asyncio.Event()

    def __call__(self, key: str) -> None:
        self.keys.append(key)
        self.woken.set()


async def get(
    provider: MetricsProvider, *, config: PrometheusConfig = CONFIG, num_partitions: int = 1
) -> ProviderResult:
    return await provider.get(
        key=KEY, config=config, num_partitions=num_partitions, min_sync_period_seconds=60, now=T0
    )


async def test_a_refresh_outlasting_the_patience_goes_on_alone_and_wakes_its_consumer() -> None:
    prom, wakes = HeldPrometheus(), Wakes()
    provider = MetricsProvider(client=prom.client(), patience_s=SHORT, wake=wakes)
    with pytest.raises(RefreshPending):
        await get(provider)
    assert wakes.keys == []
    prom.release.set()
    await asyncio.wait_for(wakes.woken.wait(), 30)
    asked = prom.requests
    result = await get(provider)
    assert result.refreshed
    assert result.snapshot is not None
    assert dict(result.snapshot.offset) == {0: 3.0}
    assert prom.requests == asked == 3
    assert wakes.keys == [KEY]


async def test_a_refresh_failing_after_the_patience_is_reported_by_the_next_pass() -> None:
    prom, wakes = HeldPrometheus(fail=True), Wakes()
    provider = MetricsProvider(client=prom.client(), patience_s=SHORT, wake=wakes)
    with pytest.raises(RefreshPending):
        await get(provider)
    prom.release.set()
    await asyncio.wait_for(wakes.woken.wait(), 30)
    asked = prom.requests
    result = await get(provider)
    assert not result.refreshed
    assert result.snapshot is None
    assert result.error is not None
    assert "503" in result.error
    assert prom.requests == asked


async def test_an_answer_within_the_patience_is_returned_and_wakes_nobody() -> None:
    prom, wakes = HeldPrometheus(held=False), Wakes()
    provider = MetricsProvider(client=prom.client(), patience_s=LONG, wake=wakes)
    result = await get(provider)
    assert result.refreshed
    await asyncio.sleep(0)
    assert wakes.keys == []


async def test_a_config_changed_meanwhile_cancels_the_refresh_and_starts_its_own() -> None:
    prom, wakes = HeldPrometheus(), Wakes()
    provider = MetricsProvider(client=prom.client(), patience_s=SHORT, wake=wakes)
    with pytest.raises(RefreshPending):
        await get(provider)
    changed = dataclasses.replace(CONFIG, addresses=("http://other:9090",))
    with pytest.raises(RefreshPending):
        await get(provider, config=changed)
    assert prom.cancelled == 3
    prom.release.set()
    await asyncio.wait_for(wakes.woken.wait(), 30)
    result = await get(provider, config=changed)
    assert result.refreshed
    assert prom.requests == 6
    assert wakes.keys == [KEY]


@pytest.mark.parametrize("how", ["forget", "close"])
async def test_forget_and_close_cancel_a_running_refresh_and_wake_nobody(how: str) -> None:
    prom, wakes = HeldPrometheus(), Wakes()
    provider = MetricsProvider(client=prom.client(), patience_s=SHORT, wake=wakes)
    with pytest.raises(RefreshPending):
        await get(provider)
    if how == "forget":
        provider.forget(key=KEY)
    else:
        provider.close()
    for _ in range(10):
        await asyncio.sleep(0)
    assert prom.cancelled == 3
    prom.release.set()
    await asyncio.sleep(0)
    assert wakes.keys == []


async def test_without_a_patience_get_waits_for_the_refresh() -> None:
    prom = HeldPrometheus()
    provider = MetricsProvider(client=prom.client())
    pending = asyncio.ensure_future(get(provider))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not pending.done()
    prom.release.set()
    result = await asyncio.wait_for(pending, 30)
    assert result.refreshed


def test_a_patience_must_be_positive() -> None:
    with pytest.raises(ValueError, match="patience_s"):
        MetricsProvider(client=httpx2.AsyncClient(), patience_s=0)
