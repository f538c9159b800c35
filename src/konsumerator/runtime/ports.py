"""What the runtime needs from the API server, as Protocols the kube layer implements.

The runtime never builds a URL or parses JSON. It asks a ``ListWatchSource``
for a consistent snapshot (``list``) and then for the changes after that
snapshot (``watch``), and it asks a ``LeaseStore`` to read and compare-and-swap
one Lease. Implementations decode objects into *projections*: immutable values
that carry just what the controllers read, plus the identity the cache needs
(``Projection``). Errors are raised as ``konsumerator.runtime.errors`` classes;
in particular a watch whose resourceVersion is too old raises ``Gone``, whether
the server said so in the HTTP status or in an ``ERROR`` event.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar


class Projection(Protocol):
    """The identity every cached object exposes (read-only attributes)."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def resource_version(self) -> str: ...


P = TypeVar("P", bound=Projection)
P_co = TypeVar("P_co", bound=Projection, covariant=True)


class EventType(enum.StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    # Carries only a resourceVersion: "you have seen everything up to here".
    BOOKMARK = "BOOKMARK"


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[P_co]):
    type: EventType
    # None only for BOOKMARK.
    object: P_co | None
    resource_version: str


@dataclass(frozen=True, slots=True)
class Listing(Generic[P_co]):
    """Every object at one resourceVersion (all pages already joined)."""

    items: Sequence[P_co]
    resource_version: str


class ListWatchSource(Protocol[P_co]):
    async def list(self) -> Listing[P_co]:
        """A consistent snapshot; pagination is the implementation's business."""
        ...

    def watch(
        self, *, resource_version: str, timeout_seconds: int
    ) -> AsyncGenerator[WatchEvent[P_co], None]:
        """Changes after ``resource_version``, with bookmarks, ending after the timeout.

        Raises ``Gone`` when the version is too old. A normal end of the
        stream (the server's ``timeoutSeconds``) is not an error.
        """
        ...


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The election-relevant part of a coordination.k8s.io/v1 Lease."""

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    lease_transitions: int
    # Empty for a record that is not stored yet.
    resource_version: str = ""


class LeaseStore(Protocol):
    async def get(self, *, namespace: str, name: str) -> LeaseRecord | None:
        """The current record, or None if there is no such Lease."""
        ...

    async def create(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Create it; raises ``AlreadyExists`` (a ``Conflict``) if someone was faster."""
        ...

    async def update(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Replace it if still at ``record.resource_version``; raises ``Conflict`` if not."""
        ...


class WriteFence(Protocol):
    """Whether a write may start now, and for how long it may run.

    Implemented by the leader elector: the kube layer asks before every write
    and bounds the request by the answer, so a process that may have lost
    its lease never starts (or keeps sending) a write.
    """

    def write_budget(self) -> float:
        """Seconds a write starting now may take; raises ``NotLeading`` if none."""
        ...
