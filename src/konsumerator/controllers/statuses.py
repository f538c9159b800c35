"""The status each object was last given, because the watch cache can lag our own write.

A pass compares the status it computed with the one the object holds, and
writes only when they differ; it also builds on the previous status (a
condition's ``lastTransitionTime``, the metrics cache). Read from the watch
cache, "the one the object holds" can be stale: two passes in quick
succession (a repair, then the pass its write wakes) would compare the second
status with the one from *before* the first write, find them equal, and never
write it, leaving the first pass's status (e.g. "1 outdated") in place.

So each controller remembers what it wrote, per object (and UID: a
re-created object starts from its own, empty, status), with the
``resourceVersion`` the write produced, and uses that in preference to the
cache only while the cache is *older* than that write. Once the cache shows
that version or a later one, the cache is the truth: it holds our write and
anything written after it. We are not the only possible writer (anyone
allowed to write ``consumers/status`` or the ConfigMap can overwrite it), and
trusting the memory then would compare with what we wrote, find nothing to
do, and leave somebody else's status standing for good.

The watch predicate asks :meth:`WrittenStatus.is_ours` too: an event that only
changed the status is dropped when it shows what our last write sent (recorded
before the request, because the watch event can arrive before the write's
answer) or the version that write produced, and passed on otherwise, because
then somebody else wrote the status and the next pass must put it back
(without that, a hand edit would stand until an unrelated change woke the
object; in manual mode, for good).

``resourceVersion`` is compared as the integer the API server issues (an etcd
revision; the watch delivers an object's versions in increasing order). A
version that is not an integer can only be matched exactly: the cache is
trusted once it shows our write's version, and also when it shows a version
that is neither ours nor the one the cache showed when we wrote.

The same memory gives the version a status write names as its precondition
(:meth:`WrittenStatus.precondition`): the cache's, or our last write's while
the cache lags it. A deletion and re-creation under the same name since fails
the write (409), and the pass is retried over what the cache then shows;
somebody's edit of the same object has the write sent again at its new version
(``kube.writing.Writer.apply_status``).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from konsumerator.runtime.stores import ObjectKey


@dataclass(frozen=True, slots=True)
class _Write:
    uid: str
    # The version the cache showed when we wrote, and the version our write produced.
    base: str
    version: str
    status: dict[str, Any]


def _as_int(version: str) -> int | None:
    try:
        return int(version)
    except ValueError:
        return None


def _cache_has_seen(write: _Write, cached: str) -> bool:
    ours, seen = _as_int(write.version), _as_int(cached)
    if ours is not None and seen is not None:
        return seen >= ours
    return cached != write.base


class WrittenStatus:
    def __init__(self) -> None:
        self._written: dict[ObjectKey, _Write] = {}
        # What our last status write sent (as the object shows it: the status, or the
        # guest annotations) and the version it produced, per object, kept after the
        # cache has caught up (``_written`` is not): what the watch predicate compares.
        self._sent: dict[ObjectKey, dict[str, Any]] = {}
        self._versions: dict[ObjectKey, str] = {}

    def sending(self, *, key: ObjectKey, shown: Mapping[str, Any]) -> None:
        """A status write is about to send ``shown`` (before the request: its watch event
        may come back before its answer)."""
        self._sent[key] = dict(shown)

    def is_ours(self, *, key: ObjectKey, resource_version: str, shown: Mapping[str, Any]) -> bool:
        """Whether the object (at ``resource_version``, showing ``shown``) is what our last
        status write made."""
        return self._versions.get(key) == resource_version or self._sent.get(key) == shown

    def written(
        self, *, key: ObjectKey, uid: str, resource_version: str
    ) -> Mapping[str, Any] | None:
        """The status we last wrote to this object (this UID), if the cache (showing
        ``resource_version``) has not seen that write yet; None: trust the cache."""
        found = self._written.get(key)
        if found is None or found.uid != uid:
            return None
        if _cache_has_seen(found, resource_version):
            # Our write or a later one is in the cache: it needs no memory any more.
            del self._written[key]
            return None
        return found.status

    def precondition(self, *, key: ObjectKey, uid: str, resource_version: str) -> str:
        """The version a status write over this object (the cache showing
        ``resource_version``) must name: our last write's while the cache has not shown
        it, so that a pass right after our own write does not conflict with it."""
        found = self._written.get(key)
        if found is None or found.uid != uid or _cache_has_seen(found, resource_version):
            return resource_version
        return found.version

    def wrote(
        self,
        *,
        key: ObjectKey,
        uid: str,
        base: str,
        resource_version: str,
        status: Mapping[str, Any],
    ) -> None:
        """``status`` was written over the object the cache showed at ``base``, and the
        write produced ``resource_version``."""
        self._written[key] = _Write(
            uid=uid, base=base, version=resource_version, status=dict(status)
        )
        self._versions[key] = resource_version

    def forget(self, key: ObjectKey) -> None:
        self._written.pop(key, None)
        self._versions.pop(key, None)
        self._sent.pop(key, None)
