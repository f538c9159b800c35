"""One instant query against one address: request shape, envelope, errors.

Aspects tested:
- a form POST to `{address}/api/v1/query`, with a trailing slash stripped and
  a path prefix kept; the server gets a shorter evaluation `timeout`;
- success returns the decoded vector/matrix/scalar data and the warnings;
- error envelopes (400 bad_data, 422 execution, 503 timeout) → `QueryFailed`
  carrying errorType, Prometheus's message and the HTTP status; its text (what
  status and Events show) has the message for bad_data only, an unknown
  errorType reads "unknown";
- non-Prometheus bodies (proxy 502 HTML, non-ready 503 text, junk 200,
  success without data, unknown resultType) → `PrometheusUnavailable` whose
  reason has the HTTP status and never the body or the server's reason phrase;
- credentials in an address never appear in a reason or message;
- 405 on POST falls back to GET with the same parameters;
- transport errors and a server slower than the timeout →
  `PrometheusUnavailable` within the bound;
- addresses that are not http(s) URLs with a host → `PrometheusUnavailable`.
"""

import time

import httpx2
import pytest

from konsumerator.prom import querying
from konsumerator.prom.errors import PrometheusUnavailable, QueryFailed
from konsumerator.prom.responses import MatrixData, QueryResponse, ScalarData, VectorData

from .fakeprom import FakeFleet, Server, failure, matrix, success, vector

Q = "sum by (partition) (kafka_consumergroup_lag)"


async def ask(fleet: FakeFleet, address: str, *, timeout_seconds: float = 2.0) -> QueryResponse:
    async with fleet.client() as client:
        return await querying.query_instant(
            client=client, address=address, query=Q, timeout_seconds=timeout_seconds
        )


@pytest.mark.parametrize(
    ("address", "path"),
    [
        ("http://prom:9090", "/api/v1/query"),
        ("http://prom:9090/", "/api/v1/query"),
        ("http://prom:9090/thanos/", "/thanos/api/v1/query"),
        ("https://prom:9090/a/b", "/a/b/api/v1/query"),
    ],
)
async def test_posts_form_to_the_query_endpoint(address: str, path: str) -> None:
    fleet = FakeFleet()
    fleet.add("prom", Server(answers={Q: success(vector(({"partition": "1"}, "1")))}))
    await ask(fleet, address, timeout_seconds=10)
    [request] = fleet.requests
    assert request.method == "POST"
    assert request.path == path
    assert request.form == {"query": Q, "timeout": "9.000"}


async def test_success_returns_data_and_warnings() -> None:
    fleet = FakeFleet()
    address = fleet.add(
        "prom",
        Server(answers={Q: success(vector(({"partition": "1"}, "100")), warnings=["partial"])}),
    )
    response = await ask(fleet, address)
    assert isinstance(response, QueryResponse)
    assert isinstance(response.data, VectorData)
    assert response.data.result[0].value == (1700000000.0, "100")
    assert response.warnings == ("partial",)
    assert response.address == address


@pytest.mark.parametrize(
    ("body", "data_type"),
    [
        (success(matrix(({"partition": "1"}, ["1", "2"]))), MatrixData),
        (success({"resultType": "scalar", "result": [1.0, "3"]}), ScalarData),
    ],
)
async def test_other_result_types_decode(body: httpx2.Response, data_type: type) -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={Q: body}))
    response = await ask(fleet, address)
    assert isinstance(response, QueryResponse)
    assert isinstance(response.data, data_type)


@pytest.mark.parametrize(
    ("status", "error_type", "message", "shown"),
    [
        (
            400,
            "bad_data",
            'invalid parameter "query": 1:5: parse error: unexpected',
            'bad_data, HTTP 400: invalid parameter "query": 1:5: parse error: unexpected',
        ),
        (
            422,
            "execution",
            'found duplicate series for the match group {job="secret"}',
            "execution, HTTP 422 (Prometheus's message is in the operator's debug log)",
        ),
        (
            503,
            "timeout",
            "query timed out in expression evaluation",
            "timeout, HTTP 503 (Prometheus's message is in the operator's debug log)",
        ),
        (
            400,
            "<script>steal()</script>",
            "whatever",
            "unknown, HTTP 400 (Prometheus's message is in the operator's debug log)",
        ),
    ],
)
async def test_error_envelopes_are_query_failures_showing_only_what_is_safe(
    status: int, error_type: str, message: str, shown: str
) -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={Q: failure(status, error_type, message)}))
    with pytest.raises(QueryFailed) as caught:
        await ask(fleet, address)
    assert caught.value.error_type == error_type
    assert caught.value.message == message
    assert caught.value.status_code == status
    assert caught.value.address == address
    assert str(caught.value) == f"Prometheus at {address} rejected the query: {shown}"


def test_a_long_bad_data_message_is_cut() -> None:
    error = QueryFailed(
        address="http://p", error_type="bad_data", message="x" * 10_000, status_code=400
    )
    assert len(str(error)) < 400


SECRET_BODY = "<html>Bad Gateway: token=SECRET-BODY</html>"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            httpx2.Response(502, text=SECRET_BODY),
            "HTTP 502 Bad Gateway, not a Prometheus API answer",
        ),
        (
            httpx2.Response(503, text="SECRET-BODY"),
            "HTTP 503 Service Unavailable, not a Prometheus API answer",
        ),
        (httpx2.Response(599, text="SECRET-BODY"), "HTTP 599, not a Prometheus API answer"),
        (httpx2.Response(200, text="SECRET-BODY"), "HTTP 200 OK, not a Prometheus API answer"),
        (
            httpx2.Response(200, json={"status": "success"}),
            "HTTP 200 OK, not a Prometheus API answer (status success, no data)",
        ),
        (
            # msgspec would quote the bad value in its message.
            httpx2.Response(200, json={"status": "SECRET-BODY"}),
            "HTTP 200 OK, not a Prometheus API answer",
        ),
        (
            httpx2.Response(
                200,
                json={"status": "success", "data": {"resultType": "SECRET-BODY", "result": []}},
            ),
            "HTTP 200 OK, not a Prometheus API answer",
        ),
    ],
)
async def test_non_prometheus_answers_are_unavailability_without_the_body(
    response: httpx2.Response, reason: str
) -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={Q: response}))
    with pytest.raises(PrometheusUnavailable) as caught:
        await ask(fleet, address)
    [failure_] = caught.value.failures
    assert failure_.address == address
    assert failure_.reason == reason
    assert "SECRET" not in str(caught.value)


async def test_a_server_reason_phrase_is_never_shown() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(502, extensions={"reason_phrase": b"SECRET-PHRASE"})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        with pytest.raises(PrometheusUnavailable) as caught:
            await querying.query_instant(
                client=client, address="http://prom:9090", query=Q, timeout_seconds=1
            )
    assert str(caught.value).endswith("HTTP 502 Bad Gateway, not a Prometheus API answer")


async def test_a_protocol_error_quoting_the_server_is_reported_by_kind() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.RemoteProtocolError("illegal status line: bytearray(b'SECRET-BANNER')")

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        with pytest.raises(PrometheusUnavailable) as caught:
            await querying.query_instant(
                client=client, address="http://prom:9090", query=Q, timeout_seconds=1
            )
    assert "SECRET" not in str(caught.value)
    assert "RemoteProtocolError: the answer is not valid HTTP" in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(502, text="nope"),
        failure(422, "execution", "boom"),
        failure(400, "bad_data", "parse error"),
    ],
)
async def test_credentials_in_an_address_never_reach_a_message(answer: httpx2.Response) -> None:
    fleet = FakeFleet()
    address = fleet.add("prom", Server(answers={Q: answer})).replace(
        "http://", "http://admin:hunter2@"
    )
    with pytest.raises((PrometheusUnavailable, QueryFailed)) as caught:
        await ask(fleet, address)
    assert "hunter2" not in str(caught.value)
    assert "admin" not in str(caught.value)
    assert "http://***@prom" in str(caught.value)


async def test_method_not_allowed_falls_back_to_get() -> None:
    ok = success(vector(({"partition": "0"}, "1")))

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return httpx2.Response(405)
        assert request.url.params["query"] == Q
        return httpx2.Response(200, content=ok.content)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        response = await querying.query_instant(
            client=client, address="http://prom:9090", query=Q, timeout_seconds=1
        )
    assert isinstance(response.data, VectorData)


async def test_transport_error_is_unavailability() -> None:
    fleet = FakeFleet()  # no server: every host refuses connections
    with pytest.raises(PrometheusUnavailable, match="connection refused"):
        await ask(fleet, "http://down:9090")


async def test_slow_server_times_out_within_the_bound() -> None:
    fleet = FakeFleet()
    address = fleet.add("slow", Server(answers={}, delay=30))
    started = time.monotonic()
    with pytest.raises(PrometheusUnavailable, match=r"no answer within 0\.2s"):
        await ask(fleet, address, timeout_seconds=0.2)
    assert time.monotonic() - started < 1.0
    assert len(fleet.cancelled) == 1


@pytest.mark.parametrize("address", ["%%22.%2", "localhost", "prom:9090", "ftp://prom", "http://"])
async def test_invalid_addresses_are_unavailability(address: str) -> None:
    fleet = FakeFleet()
    with pytest.raises(PrometheusUnavailable, match="invalid address"):
        await ask(fleet, address)
    assert fleet.requests == []
