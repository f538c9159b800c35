"""The one funnel every API request goes through: counting and error mapping.

All reads, watches and writes of the operator pass through ``ApiClient``, so
there is one place that

- counts requests by verb and resource (``RequestCounts``): the operator's
  "a reconcile with nothing to change makes zero writes" promise is checked by
  tests against these numbers, and the scale bench reports them;
- turns non-2xx answers and transport failures into typed runtime errors
  (``konsumerator.kube.errors``), so no caller ever looks at a status code.

Verbs are the API server's own (``get``, ``list``, ``watch``, ``create``,
``update``, ``patch``, ``delete``), with server-side apply counted as
``apply`` because it is the write we care about most.

Why raw ``httpx2`` rather than lightkube's ``AsyncClient`` for writes too: the
watch path has to be raw (lightkube has no bookmarks and no read timeout), and
using one client for everything keeps one counting point, one error mapping
and plain-dict bodies for server-side apply (typed models would claim fields
we do not own). lightkube still provides what it is best at: kubeconfig,
in-cluster and exec authentication, TLS, and token rotation
(see ``connecting``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

import httpx2

from konsumerator.kube import errors as kube_errors
from konsumerator.kube import streaming

WRITE_VERBS: Final = frozenset({"create", "update", "patch", "apply", "delete"})

RequestHook = Callable[[str, str, int], None]
"""Called as ``hook(verb, resource, http_status)`` after every request (0 = no answer)."""


class RequestCounts:
    """Requests made so far, by verb and by (verb, resource)."""

    def __init__(self) -> None:
        self.by_verb: Counter[str] = Counter()
        self.by_resource: Counter[tuple[str, str]] = Counter()

    def record(self, *, verb: str, resource: str) -> None:
        self.by_verb[verb] += 1
        self.by_resource[(verb, resource)] += 1

    @property
    def writes(self) -> int:
        return sum(n for verb, n in self.by_verb.items() if verb in WRITE_VERBS)

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())

    def snapshot(self) -> dict[str, int]:
        return dict(self.by_verb)

    def since(self, before: Mapping[str, int]) -> dict[str, int]:
        """Per-verb requests made after ``before = counts.snapshot()``."""
        return {
            verb: n - before.get(verb, 0)
            for verb, n in self.by_verb.items()
            if n - before.get(verb, 0)
        }


class ApiClient:
    def __init__(
        self,
        *,
        http: httpx2.AsyncClient,
        counts: RequestCounts | None = None,
        hook: RequestHook | None = None,
        watches: streaming.WatchStreams | None = None,
    ) -> None:
        """``watches`` opens the watch streams: through ``http`` unless given
        (``kube.connecting`` gives ``streaming.DirectWatches``)."""
        self.http = http
        self._watches = watches if watches is not None else streaming.ClientWatches(http=http)
        self.counts = counts if counts is not None else RequestCounts()
        self._hook = hook

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        *,
        verb: str,
        resource: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> bytes:
        """Send one request; the body of a 2xx answer, or a typed ``ApiError``."""
        self.counts.record(verb=verb, resource=resource)
        headers = {"Accept": accept}
        if content is not None:
            headers["Content-Type"] = content_type
        try:
            response = await self.http.request(
                method,
                path,
                params=params,
                content=content,
                headers=headers,
            )
        except (httpx2.TransportError, httpx2.DecodingError) as exc:
            # A compressed body mangled on the way (DecodingError) is the network's fault
            # too: unclassified, it would fail the pass as a bug (``InternalError``).
            self._observe(verb, resource, 0)
            raise kube_errors.from_transport(exc) from exc
        self._observe(verb, resource, response.status_code)
        if response.is_success:
            return response.content
        raise kube_errors.from_response(
            http_status=response.status_code,
            body=response.content,
            retry_after=response.headers.get("Retry-After"),
        )

    @contextlib.asynccontextmanager
    async def stream(
        self,
        *,
        verb: str,
        resource: str,
        path: str,
        params: Mapping[str, str],
        read_timeout: float,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A streaming GET (watch): its body in byte batches. Failures inside the
        ``async with`` are mapped too."""
        self.counts.record(verb=verb, resource=resource)
        try:
            async with self._watches.open(
                path=path, params=params, read_timeout=read_timeout
            ) as body:
                self._observe(verb, resource, 200)
                yield body
        except streaming.StreamRefused as refused:
            self._observe(verb, resource, refused.status)
            raise kube_errors.from_response(
                http_status=refused.status, body=refused.body, retry_after=refused.retry_after
            ) from None
        except streaming.StreamFailed as exc:
            raise kube_errors.from_transport(exc) from exc

    def _observe(self, verb: str, resource: str, status: int) -> None:
        if self._hook is not None:
            self._hook(verb, resource, status)
