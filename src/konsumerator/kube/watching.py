"""Raw LIST and WATCH against the API server, decoded into projections.

This is the hot read path and the reason we do not use lightkube's ``watch``
here: it has no ``allowWatchBookmarks`` and no read timeout, and it decodes
whole typed models. We speak the protocol directly:

- LIST is paginated (``limit`` + ``continue``) so that 10 k Deployments do not
  arrive as one 50 MB response; all pages belong to the first page's
  resourceVersion (an expired continue token is a 410, which the reflector
  answers with a fresh LIST).
- WATCH is ``?watch=1&allowWatchBookmarks=true&resourceVersion=RV&timeoutSeconds=T``:
  one JSON event per line. ``ERROR`` events carry a Status (a 410 becomes
  ``Gone``); ``BOOKMARK`` events only a resourceVersion. The read timeout
  is set a little above ``T``, a transport-level backstop to the reflector's
  inactivity watchdog. The stream is the client's ``WatchStreams``
  (``kube.streaming``: a direct connection in the operator); its byte batches
  are split into lines and decoded in one loop, with no generator layer per
  event between the connection and the reflector.

One bad object never stops the stream: an event line too deep for msgspec
(which recurses even to capture ``object`` as ``Raw``) is split with
``kube.scanning`` instead, and the object goes to the projector, which
quarantines it (see ``kube.projections``). An object of a kind that has no
quarantine is logged and its event skipped; the stream goes on.

Sizes: a LIST page is read whole; it is bounded by the page size times the
largest object etcd stores (``--max-request-bytes``, 1.5 MiB by default), and
it comes from the API server the operator is configured to trust, so it is not
capped (a cap could only make a legitimate cluster unlistable). A WATCH line is
one event, one object; the read refuses a line past ``MAX_WATCH_LINE_BYTES``
(``kube.errors.OversizedWatchEvent``) so that a stream without newlines cannot
grow the buffer without end.

``ListWatch`` implements ``konsumerator.runtime.ports.ListWatchSource``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Generic, TypeVar

import msgspec
import structlog

from konsumerator.kube import errors as kube_errors
from konsumerator.kube import scanning
from konsumerator.kube.projections import Projector, UndecodableObject
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import ResourceKind
from konsumerator.runtime.ports import EventType, Listing, Projection, WatchEvent

T = TypeVar("T", bound=Projection)

log = structlog.stdlib.get_logger(__name__)


class _EventWire(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _BookmarkMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class _Bookmark(msgspec.Struct):
    metadata: _BookmarkMeta = msgspec.field(default_factory=_BookmarkMeta)


_event_decoder = msgspec.json.Decoder(_EventWire)
_bookmark_decoder = msgspec.json.Decoder(_Bookmark)
_status_decoder = msgspec.json.Decoder(kube_errors.StatusWire)

# Extra read time beyond the server's timeoutSeconds before the transport gives up.
_READ_MARGIN = 60.0
# The longest watch event line read. One event holds one object: the API
# server accepts request bodies up to 3 MiB and etcd stores objects up to
# 1.5 MiB by default, and their JSON with managed fields stays within a few
# MiB, so 64 MiB is far above any real event while still bounding the buffer.
MAX_WATCH_LINE_BYTES = 64 * 2**20


class ListWatch(Generic[T]):
    def __init__(
        self,
        *,
        client: ApiClient,
        resource: ResourceKind,
        projector: Projector[Any, T],
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        max_line_bytes: int = MAX_WATCH_LINE_BYTES,
    ) -> None:
        self._client = client
        self._resource = resource
        self._projector = projector
        self._namespace = namespace
        self._path = resource.path(namespace=namespace)
        self._selectors: dict[str, str] = {}
        if label_selector:
            self._selectors["labelSelector"] = label_selector
        if field_selector:
            self._selectors["fieldSelector"] = field_selector
        self._page_size = page_size
        self._max_line_bytes = max_line_bytes

    async def list(self) -> Listing[T]:
        items: list[T] = []
        token = ""
        resource_version = ""
        while True:
            params = {**self._selectors, "limit": str(self._page_size)}
            if token:
                params["continue"] = token
            body = await self._client.request(
                verb="list",
                resource=self._resource.plural,
                method="GET",
                path=self._path,
                params=params,
            )
            page = self._projector.decode_page(body)
            items.extend(page.items)
            if not token:
                resource_version = page.resource_version
            token = page.continue_token
            if not token:
                return Listing(items=items, resource_version=resource_version)

    async def watch(
        self, *, resource_version: str, timeout_seconds: int
    ) -> AsyncGenerator[WatchEvent[T], None]:
        params = {
            **self._selectors,
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            params["resourceVersion"] = resource_version
        async with self._client.stream(
            verb="watch",
            resource=self._resource.plural,
            path=self._path,
            params=params,
            read_timeout=timeout_seconds + _READ_MARGIN,
        ) as body:
            # One loop over the batches the connection delivers, its lines split
            # here: no generator layer per event between the socket and the reflector.
            lines = _Lines(limit=self._max_line_bytes)
            async for batch in body:
                for line in lines.feed(batch):
                    event = self._decode(line)
                    if event is not None:
                        yield event
            for line in lines.rest():
                event = self._decode(line)
                if event is not None:
                    yield event

    def _decode(self, line: bytes) -> WatchEvent[T] | None:
        kind, raw = _split_event(line)
        if kind == "ERROR":
            raise kube_errors.from_status(_status_decoder.decode(raw))
        if kind == "BOOKMARK":
            bookmark = _bookmark_decoder.decode(raw)
            return WatchEvent(
                type=EventType.BOOKMARK,
                object=None,
                resource_version=bookmark.metadata.resource_version,
            )
        try:
            obj = self._projector.decode(raw)
        except UndecodableObject as e:
            log.error(
                "watch event skipped: its object cannot be decoded",
                resource=self._resource.plural,
                type=kind,
                error=str(e),
            )
            return None
        return WatchEvent(type=EventType(kind), object=obj, resource_version=obj.resource_version)


def _split_event(line: bytes) -> tuple[str, bytes | msgspec.Raw]:
    """An event's type and its undecoded object, whatever the object's depth."""
    try:
        event = _event_decoder.decode(line)
    except RecursionError:
        parts = scanning.members(line)
        kind = msgspec.json.decode(parts.get("type", b'""'), type=str)
        return kind, parts.get("object", b"{}")
    return event.type, event.object


class _Lines:
    """Split a byte stream on newlines without decoding it to str.

    ``feed`` raises ``OversizedWatchEvent`` for a line (newline excluded) longer
    than ``limit``, complete or not, so the buffer never holds much more than that.
    """

    def __init__(self, *, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        if not buffer and data.endswith(b"\n") and len(data) <= self._limit:
            # The common case, a batch of whole events: split without copying twice.
            return [line for line in data.split(b"\n") if line.strip()]
        buffer += data
        lines: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end - start > self._limit:
                raise kube_errors.OversizedWatchEvent(limit=self._limit)
            line = bytes(buffer[start:end])
            if line.strip():
                lines.append(line)
            start = end + 1
        del buffer[:start]
        if len(buffer) > self._limit:
            raise kube_errors.OversizedWatchEvent(limit=self._limit)
        return lines

    def rest(self) -> list[bytes]:
        """What is left after the stream's end (a last line without its newline)."""
        line = bytes(self._buffer)
        self._buffer.clear()
        return [line] if line.strip() else []
