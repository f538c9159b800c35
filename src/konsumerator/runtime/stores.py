"""An in-memory cache of projections, keyed by (namespace, name), with indexes.

The store is what controllers read instead of the API server: a reconcile that
needs "this Consumer and its Deployments" does a dict lookup and an index
lookup, never a GET or a LIST. Only the reflector writes to it.

Invariants:

- Values are immutable projections, so handing them out needs no copies and a
  reader can never see half an update.
- Indexes are maintained on every write: for each named index function the
  store keeps ``value -> {keys}``; a lookup returns the current objects. A value
  with a single key keeps the bare key, not a one-element set: a unique index (a
  Deployment's UID, a ReplicaSet's) held a 216 B set per object, the largest part
  of the store's own cost per watched Deployment.
- Subscribers are told ``(old, new)`` synchronously after each change
  (``old is None`` for an add, ``new is None`` for a delete). They must be
  cheap and must not raise: they map changes to work-queue keys.
- ``replace`` (after a relist) emits a delete for every key that vanished and
  an update only for objects whose resourceVersion changed: the reflector's
  relist after a 410 therefore tells controllers exactly what they missed.
- ``has_synced`` turns true after the first complete list and stays true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Generic, NamedTuple

import structlog

from konsumerator.runtime.ports import P

log = structlog.stdlib.get_logger(__name__)


class ObjectKey(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


IndexFunc = Callable[[P], Iterable[str]]
# The keys an index value stands for: one bare key, or a set of two or more.
_Keys = ObjectKey | set[ObjectKey]
Listener = Callable[[P | None, P | None], None]


def key_of(obj: P) -> ObjectKey:
    return ObjectKey(obj.namespace, obj.name)


class Store(Generic[P]):
    def __init__(self, *, indexers: Mapping[str, IndexFunc[P]] | None = None) -> None:
        self._items: dict[ObjectKey, P] = {}
        self._indexers: dict[str, IndexFunc[P]] = dict(indexers or {})
        self._indexes: dict[str, dict[str, _Keys]] = {n: {} for n in self._indexers}
        self._listeners: list[Listener[P]] = []
        self._synced = False

    # -- reading -----------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced

    def get(self, key: ObjectKey) -> P | None:
        return self._items.get(key)

    def keys(self) -> list[ObjectKey]:
        return list(self._items)

    def values(self) -> list[P]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, *, index: str, value: str) -> list[P]:
        """Objects whose index function yielded ``value``; KeyError for an unknown index."""
        keys = self._indexes[index].get(value)
        if keys is None:
            return []
        if isinstance(keys, ObjectKey):
            return [self._items[keys]]
        return [self._items[k] for k in keys]

    def index_values(self, *, index: str) -> list[str]:
        return list(self._indexes[index])

    # -- subscribing -------------------------------------------------------

    def subscribe(self, listener: Listener[P]) -> Callable[[], None]:
        """Call ``listener(old, new)`` after every change; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- writing (the reflector's side) ------------------------------------

    def upsert(self, obj: P) -> None:
        key = key_of(obj)
        old = self._items.get(key)
        if old is not None and old.resource_version == obj.resource_version:
            # Same version, same content: nothing to tell anybody.
            return
        self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        self._notify(old, obj)

    def delete(self, key: ObjectKey) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        self._unindex(key, old)
        self._notify(old, None)

    def replace(self, objs: Iterable[P]) -> None:
        """Make the store equal to ``objs`` and mark it synced."""
        fresh = {key_of(o): o for o in objs}
        for key in [k for k in self._items if k not in fresh]:
            self.delete(key)
        for obj in fresh.values():
            self.upsert(obj)
        self._synced = True

    # -- internals ---------------------------------------------------------

    def _index(self, key: ObjectKey, obj: P) -> None:
        for name, fn in self._indexers.items():
            index = self._indexes[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is None or keys == key:
                    index[value] = key
                elif isinstance(keys, ObjectKey):
                    index[value] = {keys, key}
                else:
                    keys.add(key)

    def _unindex(self, key: ObjectKey, obj: P | None) -> None:
        if obj is None:
            return
        for name, fn in self._indexers.items():
            index = self._indexes[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is None:
                    continue
                if isinstance(keys, ObjectKey):
                    if keys == key:
                        del index[value]
                    continue
                keys.discard(key)
                if len(keys) == 1:
                    # Back to the bare key: the set would stay at its largest size.
                    index[value] = next(iter(keys))

    def _notify(self, old: P | None, new: P | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:
                # A broken mapper must not corrupt the cache or kill the watch.
                log.exception("store listener failed")
