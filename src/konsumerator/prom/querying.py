"""Instant queries, one address at a time and hedged across all of them.

Why hedged requests rather than failover: a Consumer lists several Prometheus
replicas (an HA pair, or Thanos/VictoriaMetrics frontends) that hold the same
data. Asking them one after the other makes the latency of a sync the sum of
every dead replica's timeout; asking all of them at once and taking the
FIRST successful answer makes it the latency of the fastest healthy one.
The Go operator did the same (`queryAll`). The losers are cancelled, and a
cancellation is not an error: it is the normal fate of a hedged request.

Bounded: every request is cut off after `timeout_seconds` (httpx's per-phase
timeouts do not bound a server that trickles bytes, so the whole exchange is
wrapped in `asyncio.timeout`), and the hedged query as a whole is too. We
also pass Prometheus a slightly shorter evaluation `timeout`, so a query that
is merely expensive comes back as Prometheus's own typed `timeout` error
instead of our client giving up without an explanation.

We do not send `time`: Prometheus then evaluates at its own "now", which
avoids querying the future (an empty result) when the operator's clock runs
ahead of Prometheus's.

What a failure reports: the address is a Consumer author's choice and the
answer comes from whatever listens there, while the failure reason ends up in
status conditions and Events that others read. So reasons never carry what the
server sent (a body, a reason phrase, a protocol error quoting its bytes), only
the HTTP status and a classification; the body goes to the debug log, cut
short. Addresses are shown redacted (`urls.redact`).

Bounded in size too: the answer is streamed and the read stops as soon as it
passes `MAX_ANSWER_BYTES` (before reading anything when `Content-Length`
already says so), so whatever listens at an address cannot make the operator
hold hundreds of megabytes; such an answer is that address's failure
("answer larger than ... bytes"), and the connection is dropped unread.
"""

import asyncio
import http
import time
from collections.abc import Mapping, Sequence
from typing import Final

import httpx2
import msgspec
import structlog

from konsumerator.prom import observing, urls
from konsumerator.prom.errors import AddressFailure, PrometheusUnavailable, QueryFailed
from konsumerator.prom.responses import QueryResponse, decode_envelope

log = structlog.stdlib.get_logger(__name__)

API_PATH = urls.API_PATH
# Fraction of our client timeout granted to Prometheus for evaluation, leaving
# headroom for the answer to travel back before our own deadline.
SERVER_TIMEOUT_FRACTION = 0.9
# How much of a body the debug log shows.
MAX_BODY_SNIPPET = 200
NOT_PROMETHEUS = "not a Prometheus API answer"
# The most of an answer we read, decoded. What a real answer needs: a sizing
# query returns one sample per partition, ~100 bytes of JSON each, so 100,000
# partitions make ~10 MB; 32 MiB is three times that. The check runs after
# each network read is decoded, so a compressed answer can overshoot by one
# read's expansion before it is refused (bounded, and dropped at once).
MAX_ANSWER_BYTES: Final = 32 * 2**20
# Answers longer than this are decoded in a thread: 29 MiB of series took 0.3 s of CPU to
# decode, which on the event loop stalled every other Consumer, the watches and the Lease
# renewal (the loop runs between the interpreter's switches, every 5 ms, meanwhile); a
# megabyte takes about 10 ms, less than a thread's round trip costs to matter.
DECODE_IN_THREAD_BYTES: Final = 2**20


class AnswerTooLarge(Exception):
    """An answer longer than the limit; its message names the limit, never the body."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        super().__init__(f"answer larger than {limit} bytes")


def endpoint_for(address: str) -> str:
    """`http://host:9090/prefix/` → `http://host:9090/prefix/api/v1/query`.

    Raises `PrometheusUnavailable` for an address that cannot be a base URL
    (no http/https scheme or no host), e.g. `localhost` or `%%22.%2`: the Go
    operator skipped those with an error log; here they become that address's
    failure reason, so a list with one good address still works.
    """
    try:
        urls.endpoint_url(address)
    except ValueError as exc:
        raise _unavailable(address, f"invalid address: {exc}") from exc
    return address.rstrip("/") + API_PATH


def _status_text(status: int) -> str:
    """`HTTP 502 Bad Gateway`, the phrase from the standard, never the server's."""
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _transport_reason(exc: httpx2.HTTPError) -> str:
    """Why a request failed, without anything the server sent.

    Connection errors come from our side (DNS, refused, TLS verification) and are
    kept; errors after the connection can quote the server's bytes (h11 puts an
    illegal status line into its message), so only their kind is reported.
    """
    if isinstance(exc, httpx2.ConnectError):
        return f"ConnectError: {str(exc)[:MAX_BODY_SNIPPET]}"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "RemoteProtocolError: the answer is not valid HTTP"
    return type(exc).__name__


async def query_instant(
    *,
    client: httpx2.AsyncClient,
    address: str,
    query: str,
    timeout_seconds: float,
    max_answer_bytes: int = MAX_ANSWER_BYTES,
) -> QueryResponse:
    """Evaluate `query` at one Prometheus; POST form, GET if the server says 405.

    Returns the decoded data with Prometheus's warnings. Raises `QueryFailed`
    when Prometheus answered with an error envelope, and
    `PrometheusUnavailable` (one failure) for everything else, including an
    answer longer than `max_answer_bytes`.
    """
    url = endpoint_for(address)
    form = {"query": query, "timeout": f"{timeout_seconds * SERVER_TIMEOUT_FRACTION:.3f}"}
    try:
        async with asyncio.timeout(timeout_seconds):
            status, body = await _exchange(
                client=client,
                method="POST",
                url=url,
                form=form,
                timeout_seconds=timeout_seconds,
                limit=max_answer_bytes,
            )
            if status == httpx2.codes.METHOD_NOT_ALLOWED:
                # Some read-only proxies only allow GET (client_golang does the same).
                status, body = await _exchange(
                    client=client,
                    method="GET",
                    url=url,
                    form=form,
                    timeout_seconds=timeout_seconds,
                    limit=max_answer_bytes,
                )
    except TimeoutError as exc:
        raise _unavailable(address, f"no answer within {timeout_seconds:g}s") from exc
    except httpx2.TimeoutException as exc:
        raise _unavailable(address, f"timed out ({type(exc).__name__})") from exc
    except httpx2.HTTPError as exc:
        log.debug(
            "prometheus request failed",
            address=urls.redact(address),
            error=_scrub(str(exc)[:MAX_BODY_SNIPPET], address),
        )
        raise _unavailable(address, _scrub(_transport_reason(exc), address)) from exc
    except AnswerTooLarge as exc:
        raise _unavailable(address, str(exc)) from exc
    if len(body) > DECODE_IN_THREAD_BYTES:
        return await asyncio.to_thread(_interpret, address=address, status=status, body=body)
    return _interpret(address=address, status=status, body=body)


async def _exchange(
    *,
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    form: Mapping[str, str],
    timeout_seconds: float,
    limit: int,
) -> tuple[int, bytes]:
    """One request: the status and at most `limit` bytes of body, else `AnswerTooLarge`.

    Leaving the `stream` block early closes the connection, so the rest of a
    too-long answer is never read.
    """
    async with client.stream(
        method,
        url,
        data=form if method == "POST" else None,
        params=form if method == "GET" else None,
        timeout=timeout_seconds,
    ) as response:
        return response.status_code, await _read_capped(response, limit=limit)


async def _read_capped(response: httpx2.Response, *, limit: int) -> bytes:
    """The decoded body, refused as soon as it is known to exceed `limit` bytes."""
    declared = response.headers.get("Content-Length", "")
    identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    if identity and declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(limit=limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(limit=limit)
    return bytes(body)


def _scrub(text: str, address: str) -> str:
    """``text`` without the credentials of ``address``, should a library quote the URL."""
    userinfo = address.partition("://")[2].partition("/")[0].rpartition("@")[0]
    return text.replace(userinfo, "***") if userinfo else text


def _interpret(*, address: str, status: int, body: bytes) -> QueryResponse:
    try:
        envelope = decode_envelope(body)
    except msgspec.DecodeError as exc:
        # A proxy, a load balancer, a non-ready server, or not Prometheus at all.
        log.debug(
            "not a prometheus answer",
            address=urls.redact(address),
            status=status,
            error=str(exc)[:MAX_BODY_SNIPPET],
            body=body[:MAX_BODY_SNIPPET].decode(errors="replace"),
        )
        raise _unavailable(address, f"{_status_text(status)}, {NOT_PROMETHEUS}") from exc
    if envelope.status == "error":
        log.debug(
            "prometheus rejected the query",
            address=urls.redact(address),
            status=status,
            error_type=envelope.error_type,
            error=(envelope.error or "")[: 5 * MAX_BODY_SNIPPET],
        )
        raise QueryFailed(
            address=address,
            error_type=envelope.error_type or "unknown",
            message=envelope.error or "(no message)",
            status_code=status,
        )
    if envelope.data is None or not 200 <= status < 300:
        raise _unavailable(
            address, f"{_status_text(status)}, {NOT_PROMETHEUS} (status success, no data)"
        )
    return QueryResponse(address=address, data=envelope.data, warnings=tuple(envelope.warnings))


def _unavailable(address: str, reason: str) -> PrometheusUnavailable:
    return PrometheusUnavailable(failures=(AddressFailure(address=address, reason=reason),))


async def query_any(
    *,
    client: httpx2.AsyncClient,
    addresses: Sequence[str],
    query: str,
    timeout_seconds: float,
    kind: str = "adhoc",
    observer: observing.QueryObserver = observing.NULL_OBSERVER,
) -> QueryResponse:
    """Send `query` to every address at once; the first success wins.

    The remaining requests are cancelled (reported as `CANCELLED`, not as
    errors). If every address fails, raises `QueryFailed` if at least one
    Prometheus answered with a rejection, else `PrometheusUnavailable`
    listing every address's reason. `kind` only labels observations.
    """
    started = time.perf_counter()
    if not addresses:
        observer.query_finished(
            kind=kind, outcome=observing.QueryOutcome.UNAVAILABLE, duration_seconds=0.0
        )
        raise PrometheusUnavailable(
            failures=(), message="no Prometheus address configured for this query"
        )

    async def attempt(address: str) -> QueryResponse:
        t0 = time.perf_counter()
        outcome = observing.RequestOutcome.CANCELLED
        try:
            result = await query_instant(
                client=client, address=address, query=query, timeout_seconds=timeout_seconds
            )
            outcome = observing.RequestOutcome.SUCCESS
            return result
        except QueryFailed:
            outcome = observing.RequestOutcome.REJECTED
            raise
        except PrometheusUnavailable:
            outcome = observing.RequestOutcome.UNAVAILABLE
            raise
        finally:
            observer.request_finished(
                address=urls.redact(address),
                kind=kind,
                outcome=outcome,
                duration_seconds=time.perf_counter() - t0,
            )

    # Duplicated addresses would only double the load on the same server.
    unique = list(dict.fromkeys(addresses))
    tasks = {asyncio.create_task(attempt(address)): address for address in unique}
    failures: dict[str, AddressFailure] = {}
    rejection: QueryFailed | None = None
    try:
        # Overall bound on top of each request's own: a little grace so that
        # the per-request deadlines normally fire first, with their reasons.
        async with asyncio.timeout(timeout_seconds + 1.0):
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # Iterate in configuration order so results are deterministic
                # when several requests finish in the same loop iteration.
                for task in sorted(done, key=lambda t: unique.index(tasks[t])):
                    error = task.exception()
                    if error is None:
                        _finish(observer, kind, observing.QueryOutcome.SUCCESS, started)
                        return task.result()
                    address = tasks[task]
                    if isinstance(error, QueryFailed):
                        rejection = rejection or error
                        failures[address] = AddressFailure(
                            address=address, reason=f"rejected: {error.summary}"
                        )
                    elif isinstance(error, PrometheusUnavailable):
                        failures[address] = error.failures[0]
                    else:
                        raise error
    except TimeoutError:
        for address in tasks.values():
            if address not in failures:
                failures[address] = AddressFailure(
                    address=address, reason=f"no answer within {timeout_seconds:g}s"
                )
    finally:
        for task in tasks:
            task.cancel()
        # Wait for the losers so no request outlives the call (and so their
        # connections go back to the pool instead of leaking).
        await asyncio.gather(*tasks, return_exceptions=True)

    ordered = tuple(failures[address] for address in unique if address in failures)
    if rejection is not None:
        _finish(observer, kind, observing.QueryOutcome.REJECTED, started)
        others = tuple(f for f in ordered if f.address != rejection.address)
        raise rejection.with_other_failures(others)
    _finish(observer, kind, observing.QueryOutcome.UNAVAILABLE, started)
    raise PrometheusUnavailable(failures=ordered)


def _finish(
    observer: observing.QueryObserver, kind: str, outcome: observing.QueryOutcome, started: float
) -> None:
    observer.query_finished(
        kind=kind, outcome=outcome, duration_seconds=time.perf_counter() - started
    )
