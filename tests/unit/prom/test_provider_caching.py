"""The per-Consumer provider: minSyncPeriod caching, failures, seeding.

Aspects tested:
- the first call refreshes (exactly 3 logical queries); calls within
  minSyncPeriod make no request, also at exactly the period (strict `>`);
  the first call after the period refreshes again;
- a failed refresh keeps the previous complete snapshot and its synced_at
  and reports the error; with no previous snapshot it reports None;
- a failed third query leaves the previous snapshot intact (no mixing);
- `seed` (from the persisted status) avoids a query at startup; an older
  seed does not replace a newer snapshot; `forget` drops the key, also while
  a refresh is in flight;
- a synced_at in the future, a changed config or partition count → refresh;
- naive datetimes are refused;
- different keys refresh concurrently; same-key calls are serialised so
  concurrent calls cause one refresh.
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from konsumerator.domain.metrics import CARRY_REFRESHES, MetricsSnapshot
from konsumerator.prom.providing import MetricsProvider
from konsumerator.prom.queries import PrometheusConfig, QuerySpec
from konsumerator.prom.results import ProviderResult

from .fakeprom import Answer, FakeFleet, Server, failure, success, vector

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PERIOD = 60.0


def answers(production: str, consumption: str, offset: str) -> dict[str, Answer]:
    return {
        "p": success(vector(({"partition": "0"}, production))),
        "c": success(vector(({"partition": "0"}, consumption))),
        "o": success(vector(({"partition": "0"}, offset))),
    }


def make_config(addresses: tuple[str, ...] = ("http://prom:9090",)) -> PrometheusConfig:
    return PrometheusConfig(
        addresses=addresses,
        production=QuerySpec("p", "partition"),
        consumption=QuerySpec("c", "partition"),
        offset=QuerySpec("o", "partition"),
        timeout_seconds=2.0,
    )


CONFIG = make_config()


@pytest.fixture
def fleet() -> FakeFleet:
    fleet = FakeFleet()
    fleet.add("prom", Server(answers=answers("1", "2", "3")))
    return fleet


async def get(
    provider: MetricsProvider,
    now: datetime,
    *,
    key: str = "ns/c",
    config: PrometheusConfig = CONFIG,
    num_partitions: int = 1,
) -> ProviderResult:
    return await provider.get(
        key=key,
        config=config,
        num_partitions=num_partitions,
        min_sync_period_seconds=PERIOD,
        now=now,
    )


async def test_refreshes_once_per_min_sync_period(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        first = await get(provider, T0)
        assert first.refreshed
        assert first.synced_at == T0
        assert first.error is None
        assert first.snapshot == MetricsSnapshot(
            production={0: 1.0}, consumption={0: 2.0}, offset={0: 3.0}
        )
        assert len(fleet.requests) == 3

        for offset in (1, 30, PERIOD):  # strictly greater than the period is stale
            cached = await get(provider, T0 + timedelta(seconds=offset))
            assert not cached.refreshed
            assert cached.synced_at == T0
            assert cached.snapshot == first.snapshot
        assert len(fleet.requests) == 3

        later = T0 + timedelta(seconds=PERIOD + 0.001)
        again = await get(provider, later)
        assert again.refreshed
        assert again.synced_at == later
        assert len(fleet.requests) == 6


async def test_a_failed_refresh_keeps_the_previous_snapshot(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        first = await get(provider, T0)
        del fleet.servers["prom"]  # Prometheus goes away
        later = T0 + timedelta(seconds=PERIOD * 2)
        failed = await get(provider, later)
        assert not failed.refreshed
        assert failed.snapshot == first.snapshot
        assert failed.synced_at == T0
        assert failed.error is not None
        assert "no Prometheus address answered" in failed.error
        # The next reconcile retries (the snapshot is still stale).
        fleet.add("prom", Server(answers=answers("7", "8", "9")))
        recovered = await get(provider, later + timedelta(seconds=1))
        assert recovered.refreshed
        assert recovered.snapshot is not None
        assert dict(recovered.snapshot.offset) == {0: 9.0}


async def test_a_failure_without_history_reports_no_snapshot() -> None:
    fleet = FakeFleet()
    async with fleet.client() as client:
        result = await get(MetricsProvider(client=client), T0)
    assert result.snapshot is None
    assert result.synced_at is None
    assert not result.refreshed
    assert result.error


async def test_a_failed_third_query_leaves_the_previous_snapshot_intact(
    fleet: FakeFleet,
) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        first = await get(provider, T0)
        new = answers("100", "200", "300")
        new["o"] = failure(503, "timeout", "query timed out")
        fleet.servers["prom"] = Server(answers=new)
        result = await get(provider, T0 + timedelta(seconds=PERIOD + 1))
    assert result.snapshot == first.snapshot  # not production=100 with offset=3
    assert result.error is not None
    assert "timeout, HTTP 503" in result.error


async def test_seeding_avoids_a_query_after_restart(fleet: FakeFleet) -> None:
    persisted = MetricsSnapshot(production={0: 5.0}, consumption={0: 5.0}, offset={0: 0.0})
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        provider.seed(key="ns/c", snapshot=persisted, synced_at=T0)
        result = await get(provider, T0 + timedelta(seconds=10))
        assert not result.refreshed
        assert result.snapshot == persisted
        assert fleet.requests == []
        stale = await get(provider, T0 + timedelta(seconds=PERIOD + 1))
        assert stale.refreshed


async def test_an_older_seed_does_not_replace_a_newer_snapshot(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        fresh = await get(provider, T0)
        provider.seed(key="ns/c", snapshot=MetricsSnapshot(), synced_at=T0 - timedelta(hours=1))
        assert provider.cached(key="ns/c").snapshot == fresh.snapshot


async def test_forget_drops_the_key(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        await get(provider, T0)
        provider.forget(key="ns/c")
        assert provider.cached(key="ns/c").snapshot is None
        result = await get(provider, T0 + timedelta(seconds=1))
        assert result.refreshed


async def test_forget_during_a_refresh_is_not_undone(fleet: FakeFleet) -> None:
    fleet.servers["prom"].delay = 0.2
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        in_flight = asyncio.create_task(get(provider, T0))
        await asyncio.sleep(0.05)
        provider.forget(key="ns/c")
        result = await in_flight
        assert result.refreshed  # the caller still gets its answer...
        assert provider.cached(key="ns/c").snapshot is None  # ...but it is not cached


async def test_a_synced_at_in_the_future_is_stale(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        provider.seed(key="ns/c", snapshot=MetricsSnapshot(), synced_at=T0 + timedelta(days=1))
        result = await get(provider, T0)
    assert result.refreshed


@pytest.mark.parametrize(
    ("config", "num_partitions"),
    [
        (make_config(("http://prom:9090", "http://replica:9090")), 1),
        (CONFIG, 2),
    ],
    ids=["config-changed", "partitions-changed"],
)
async def test_a_changed_spec_refreshes_within_the_period(
    fleet: FakeFleet, config: PrometheusConfig, num_partitions: int
) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        await get(provider, T0)
        result = await get(
            provider, T0 + timedelta(seconds=1), config=config, num_partitions=num_partitions
        )
    assert result.refreshed


async def test_a_seeded_snapshot_is_attributed_to_the_first_config(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        provider.seed(key="ns/c", snapshot=MetricsSnapshot(), synced_at=T0)
        assert not (await get(provider, T0 + timedelta(seconds=1))).refreshed
        assert not (await get(provider, T0 + timedelta(seconds=2))).refreshed


async def test_naive_synced_at_is_refused(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
    with pytest.raises(ValueError, match="timezone-aware"):
        provider.seed(key="k", snapshot=MetricsSnapshot(), synced_at=datetime(2026, 1, 1))


async def test_naive_now_is_refused(fleet: FakeFleet) -> None:
    async with fleet.client() as client:
        with pytest.raises(ValueError, match="timezone-aware"):
            await get(MetricsProvider(client=client), datetime(2026, 1, 1))


async def test_different_keys_refresh_concurrently(fleet: FakeFleet) -> None:
    fleet.servers["prom"].delay = 0.3
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        started = time.monotonic()
        results = await asyncio.gather(*(get(provider, T0, key=f"ns/c{i}") for i in range(5)))
    assert time.monotonic() - started < 0.9
    assert all(r.refreshed for r in results)
    assert len(fleet.requests) == 15


async def test_concurrent_calls_for_one_key_refresh_once(fleet: FakeFleet) -> None:
    fleet.servers["prom"].delay = 0.1
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        results = await asyncio.gather(get(provider, T0), get(provider, T0))
    assert sorted(r.refreshed for r in results) == [False, True]
    assert len(fleet.requests) == 3


async def test_a_partition_missing_from_the_lag_answer_keeps_its_last_offset_for_a_while() -> None:
    """The lag exporter lost partition 1's series for a scrape: the refresh keeps its
    last offset (``metrics.carry_offsets``) for ``CARRY_REFRESHES`` refreshes, then
    reads it as missing; a Consumer whose queries changed starts afresh."""
    both = ({"partition": "0"}, "1"), ({"partition": "1"}, "1")
    lag = ({"partition": "0"}, "5"), ({"partition": "1"}, "700")
    by_query = {
        "p": success(vector(*both)),
        "c": success(vector(*both)),
        "o": success(vector(*lag)),
    }
    fleet = FakeFleet()
    fleet.add("prom", Server(answers=by_query))
    async with fleet.client() as client:
        provider = MetricsProvider(client=client)
        offsets = []
        for i in range(CARRY_REFRESHES + 2):
            result = await get(provider, T0 + timedelta(seconds=i * (PERIOD + 1)), num_partitions=2)
            assert result.refreshed
            assert result.snapshot is not None
            offsets.append(dict(result.snapshot.offset))
            by_query["o"] = success(vector(lag[0]))
        assert offsets == [{0: 5.0, 1: 700.0}] * (CARRY_REFRESHES + 1) + [{0: 5.0}]
        by_query["o"] = success(vector(*lag))
        await get(provider, T0 + timedelta(hours=1), num_partitions=2)
        by_query["o"] = success(vector(lag[0]))
        changed = make_config(addresses=("http://prom:9090", "http://prom:9090/"))
        fresh = await get(provider, T0 + timedelta(hours=2), num_partitions=2, config=changed)
        assert fresh.snapshot is not None
        assert dict(fresh.snapshot.offset) == {0: 5.0}
