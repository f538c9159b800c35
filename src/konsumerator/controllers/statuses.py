"""The status each object was last given, because the watch cache can lag our own write.

A pass compares the status it computed with the one the object holds, and
writes only when they differ; it also builds on the previous status (a
condition's ``lastTransitionTime``, the metrics cache). Read from the watch
cache, "the one the object holds" can be stale: two passes in quick
succession (a repair, then the pass its write wakes) would compare the second
status with the one from *before* the first write, find them equal, and never
write it, leaving the first pass's status (e.g. "1 outdated") in place.

So each controller remembers what it wrote, per object (and UID: a
re-created object starts from its own, empty, status), and uses that in
preference to the cache. The operator is the only writer of this status.
"""

from collections.abc import Mapping
from typing import Any

from konsumerator.runtime.stores import ObjectKey


class WrittenStatus:
    def __init__(self) -> None:
        self._written: dict[ObjectKey, tuple[str, dict[str, Any]]] = {}

    def written(self, *, key: ObjectKey, uid: str) -> Mapping[str, Any] | None:
        """The status we last wrote to this object (this UID), if any: newer than the cache."""
        found = self._written.get(key)
        return found[1] if found is not None and found[0] == uid else None

    def wrote(self, *, key: ObjectKey, uid: str, status: Mapping[str, Any]) -> None:
        self._written[key] = (uid, dict(status))

    def forget(self, key: ObjectKey) -> None:
        self._written.pop(key, None)
