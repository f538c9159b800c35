"""In-memory stand-ins for the kube layer's ports, scripted per test."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from konsumerator.runtime import errors
from konsumerator.runtime.ports import EventType, LeaseRecord, Listing, WatchEvent


@dataclass(frozen=True, slots=True)
class Obj:
    namespace: str
    name: str
    resource_version: str
    owner: str = ""


def event(kind: str, obj: Obj) -> WatchEvent[Obj]:
    return WatchEvent(type=EventType(kind), object=obj, resource_version=obj.resource_version)


def bookmark(rv: str) -> WatchEvent[Obj]:
    return WatchEvent(type=EventType.BOOKMARK, object=None, resource_version=rv)


@dataclass(frozen=True)
class Sleep:
    seconds: float


HANG = Sleep(float("inf"))

Step = WatchEvent[Obj] | Sleep | Exception


@dataclass
class FakeSource:
    """Returns scripted lists and watches in order; records every call and when."""

    lists: list[Listing[Obj] | Exception] = field(default_factory=list)
    watches: list[Sequence[Step]] = field(default_factory=list)
    list_calls: list[float] = field(default_factory=list)
    watch_calls: list[tuple[float, str, int]] = field(default_factory=list)

    async def list(self) -> Listing[Obj]:
        self.list_calls.append(asyncio.get_running_loop().time())
        if not self.lists:
            await asyncio.Event().wait()
        result = self.lists.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    async def watch(
        self, *, resource_version: str, timeout_seconds: int
    ) -> AsyncGenerator[WatchEvent[Obj], None]:
        loop = asyncio.get_running_loop()
        self.watch_calls.append((loop.time(), resource_version, timeout_seconds))
        if not self.watches:
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, Sleep):
                if step.seconds == float("inf"):
                    await asyncio.Event().wait()
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Exception):
                raise step
            else:
                yield step


@dataclass
class FakeLeaseStore:
    """A Lease with server-side optimistic concurrency, and switchable failures."""

    record: LeaseRecord | None = None
    version: int = 0
    failing: bool = False
    writes: int = 0

    async def get(self, *, namespace: str, name: str) -> LeaseRecord | None:
        await asyncio.sleep(0)
        if self.failing:
            raise errors.ServerError(status=500, message="down")
        return self.record

    async def create(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        await asyncio.sleep(0)
        if self.failing:
            raise errors.ServerError(status=500, message="down")
        if self.record is not None:
            raise errors.AlreadyExists(status=409, reason="AlreadyExists")
        return self._store(record)

    async def update(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        await asyncio.sleep(0)
        if self.failing:
            raise errors.ServerError(status=500, message="down")
        if self.record is None:
            raise errors.NotFound(status=404)
        if record.resource_version != self.record.resource_version:
            raise errors.Conflict(status=409, reason="Conflict")
        return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.writes += 1
        self.record = dataclasses.replace(record, resource_version=str(self.version))
        return self.record
