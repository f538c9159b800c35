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
"""

import asyncio
import time
from collections.abc import Sequence

import httpx2
import msgspec

from konsumerator.prom import observing
from konsumerator.prom.errors import AddressFailure, PrometheusUnavailable, QueryFailed
from konsumerator.prom.responses import QueryResponse, decode_envelope

API_PATH = "/api/v1/query"
# Fraction of our client timeout granted to Prometheus for evaluation, leaving
# headroom for the answer to travel back before our own deadline.
SERVER_TIMEOUT_FRACTION = 0.9
# Keep error messages from proxies (HTML pages...) short in logs and events.
MAX_BODY_SNIPPET = 200


def endpoint_for(address: str) -> str:
    """`http://host:9090/prefix/` → `http://host:9090/prefix/api/v1/query`.

    Raises `PrometheusUnavailable` for an address that cannot be a base URL
    (no http/https scheme or no host), e.g. `localhost` or `%%22.%2`: the Go
    operator skipped those with an error log; here they become that address's
    failure reason, so a list with one good address still works.
    """
    try:
        url = httpx2.URL(address)
    except httpx2.InvalidURL as exc:
        raise _unavailable(address, f"invalid address: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise _unavailable(address, "invalid address: need an http:// or https:// URL with a host")
    return address.rstrip("/") + API_PATH


async def query_instant(
    *, client: httpx2.AsyncClient, address: str, query: str, timeout_seconds: float
) -> QueryResponse:
    """Evaluate `query` at one Prometheus; POST form, GET if the server says 405.

    Returns the decoded data with Prometheus's warnings. Raises `QueryFailed`
    when Prometheus answered with an error envelope, and
    `PrometheusUnavailable` (one failure) for everything else.
    """
    url = endpoint_for(address)
    form = {"query": query, "timeout": f"{timeout_seconds * SERVER_TIMEOUT_FRACTION:.3f}"}
    try:
        async with asyncio.timeout(timeout_seconds):
            response = await client.post(url, data=form, timeout=timeout_seconds)
            if response.status_code == httpx2.codes.METHOD_NOT_ALLOWED:
                # Some read-only proxies only allow GET (client_golang does the same).
                response = await client.get(url, params=form, timeout=timeout_seconds)
    except TimeoutError as exc:
        raise _unavailable(address, f"no answer within {timeout_seconds:g}s") from exc
    except httpx2.TimeoutException as exc:
        raise _unavailable(address, f"timed out ({type(exc).__name__})") from exc
    except httpx2.HTTPError as exc:
        raise _unavailable(address, f"{type(exc).__name__}: {exc}") from exc
    return _interpret(address=address, response=response)


def _interpret(*, address: str, response: httpx2.Response) -> QueryResponse:
    status = response.status_code
    try:
        envelope = decode_envelope(response.content)
    except msgspec.DecodeError as exc:
        if 200 <= status < 300:
            raise _unavailable(address, f"malformed response: {exc}") from exc
        # Not a Prometheus envelope: a proxy, a load balancer, a non-ready server.
        snippet = response.text[:MAX_BODY_SNIPPET].strip()
        raise _unavailable(address, f"HTTP {status}: {snippet}") from exc
    if envelope.status == "error":
        raise QueryFailed(
            address=address,
            error_type=envelope.error_type or "unknown",
            message=envelope.error or "(no message)",
            status_code=status,
        )
    if envelope.data is None or not 200 <= status < 300:
        raise _unavailable(address, f"malformed response: HTTP {status}, status success, no data")
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
                address=address,
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
                            address=address, reason=f"rejected: {error.message}"
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
