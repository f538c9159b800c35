"""One logical query hedged across every address.

Aspects tested:
- every address is asked at once; the first success wins and the others are
  cancelled (a slow address does not delay a fast one);
- one failing address among good ones is fine;
- all addresses down → `PrometheusUnavailable` naming each address's reason;
- a rejection from one address and unavailability elsewhere → `QueryFailed`
  (a Prometheus did answer), listing the other addresses' reasons;
- an empty address list and a list of unparsable URLs (Go vector `%%22.%2`)
  → `PrometheusUnavailable` without any request;
- duplicate addresses are asked once;
- the whole hedged query is bounded by the timeout;
- observations: one per request with its outcome (cancellations are not
  errors), one per logical query, labelled by address and kind only.
"""

import time
from dataclasses import dataclass, field

import httpx2
import pytest

from konsumerator.prom import querying
from konsumerator.prom.errors import PrometheusUnavailable, QueryFailed
from konsumerator.prom.observing import QueryOutcome, RequestOutcome
from konsumerator.prom.responses import QueryResponse

from .fakeprom import FakeFleet, Server, failure, success, vector

Q = "sum by (partition) (kafka_consumergroup_lag)"
OK = success(vector(({"partition": "1"}, "1000")))


@dataclass
class RecordingObserver:
    requests: list[tuple[str, str, RequestOutcome]] = field(default_factory=list)
    queries: list[tuple[str, QueryOutcome]] = field(default_factory=list)

    def request_finished(
        self, *, address: str, kind: str, outcome: RequestOutcome, duration_seconds: float
    ) -> None:
        assert duration_seconds >= 0
        self.requests.append((address, kind, outcome))

    def query_finished(self, *, kind: str, outcome: QueryOutcome, duration_seconds: float) -> None:
        assert duration_seconds >= 0
        self.queries.append((kind, outcome))


async def ask(
    fleet: FakeFleet,
    addresses: list[str],
    *,
    timeout_seconds: float = 2.0,
    observer: RecordingObserver | None = None,
) -> QueryResponse:
    async with fleet.client() as client:
        return await querying.query_any(
            client=client,
            addresses=addresses,
            query=Q,
            timeout_seconds=timeout_seconds,
            kind="offset",
            observer=observer or RecordingObserver(),
        )


async def test_a_slow_address_does_not_delay_a_fast_one() -> None:
    fleet = FakeFleet()
    slow = fleet.add("slow", Server(answers={Q: OK}, delay=10))
    fast = fleet.add("fast", Server(answers={Q: OK}))
    observer = RecordingObserver()
    started = time.monotonic()
    response = await ask(fleet, [slow, fast], timeout_seconds=20, observer=observer)
    assert time.monotonic() - started < 1.0
    assert response.address == fast
    assert [r.host for r in fleet.cancelled] == ["slow"]
    assert sorted(observer.requests) == [
        (fast, "offset", RequestOutcome.SUCCESS),
        (slow, "offset", RequestOutcome.CANCELLED),
    ]
    assert observer.queries == [("offset", QueryOutcome.SUCCESS)]


async def test_one_failing_address_among_good_ones_is_fine() -> None:
    fleet = FakeFleet()
    good = fleet.add("good", Server(answers={Q: OK}, delay=0.05))
    observer = RecordingObserver()
    response = await ask(fleet, ["http://down:9090", good, "%%22.%2"], observer=observer)
    assert response.address == good
    outcomes = {address: outcome for address, _, outcome in observer.requests}
    assert outcomes == {
        "http://down:9090": RequestOutcome.UNAVAILABLE,
        "<not a URL>": RequestOutcome.UNAVAILABLE,  # an observer sees addresses redacted
        good: RequestOutcome.SUCCESS,
    }


async def test_all_addresses_down_names_every_reason() -> None:
    fleet = FakeFleet()  # "down" has no server: its connections are refused
    proxy = fleet.add("proxy", Server(answers={Q: httpx2.Response(502, text="Bad Gateway")}))
    observer = RecordingObserver()
    with pytest.raises(PrometheusUnavailable) as caught:
        await ask(fleet, ["http://down:9090/", proxy], observer=observer)
    reasons = {f.address: f.reason for f in caught.value.failures}
    assert reasons == {
        "http://down:9090/": "ConnectError: connection refused",
        proxy: "HTTP 502 Bad Gateway, not a Prometheus API answer",
    }
    assert "http://down:9090/: ConnectError: connection refused" in str(caught.value)
    assert f"{proxy}: HTTP 502 Bad Gateway, not a Prometheus API answer" in str(caught.value)
    assert observer.queries == [("offset", QueryOutcome.UNAVAILABLE)]


async def test_a_rejection_wins_over_unavailability() -> None:
    fleet = FakeFleet()
    prom = fleet.add("prom", Server(answers={Q: failure(400, "bad_data", "parse error")}))
    observer = RecordingObserver()
    with pytest.raises(QueryFailed) as caught:
        await ask(fleet, ["http://down:9090", prom], observer=observer)
    assert caught.value.address == prom
    assert caught.value.message == "parse error"
    assert [f.address for f in caught.value.other_failures] == ["http://down:9090"]
    assert observer.queries == [("offset", QueryOutcome.REJECTED)]


async def test_a_success_wins_over_a_rejection() -> None:
    fleet = FakeFleet()
    old = fleet.add("old", Server(answers={Q: failure(400, "bad_data", "unknown function")}))
    new = fleet.add("new", Server(answers={Q: OK}, delay=0.05))
    response = await ask(fleet, [old, new])
    assert response.address == new


@pytest.mark.parametrize(
    "addresses",
    [
        pytest.param([], id="empty"),
        pytest.param(["%%22.%2", "%%22.%2", "%%22.%2"], id="go-bad-urls"),
    ],
)
async def test_no_usable_address_is_unavailability(addresses: list[str]) -> None:
    fleet = FakeFleet()
    with pytest.raises(PrometheusUnavailable):
        await ask(fleet, addresses)
    assert fleet.requests == []


async def test_duplicate_addresses_are_asked_once() -> None:
    fleet = FakeFleet()
    prom = fleet.add("prom", Server(answers={Q: OK}))
    await ask(fleet, [prom, prom, prom])
    assert len(fleet.requests) == 1


async def test_the_hedged_query_is_bounded_by_the_timeout() -> None:
    fleet = FakeFleet()
    a = fleet.add("a", Server(answers={Q: OK}, delay=30))
    b = fleet.add("b", Server(answers={Q: OK}, delay=30))
    started = time.monotonic()
    with pytest.raises(PrometheusUnavailable) as caught:
        await ask(fleet, [a, b], timeout_seconds=0.2)
    assert time.monotonic() - started < 1.5
    assert [f.address for f in caught.value.failures] == [a, b]
    assert all("no answer within 0.2s" in f.reason for f in caught.value.failures)
    assert len(fleet.cancelled) == 2
