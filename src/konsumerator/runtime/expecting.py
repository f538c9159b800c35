"""Creations a controller has made and its watch cache has not shown yet.

A controller plans from its watch cache, and the cache lags its own writes: a pass
that runs before the watch has delivered the previous pass's creations finds those
names missing and would create them again. Every such second creation is refused
(the name is taken) and costs the caller more requests to find out whose the object
is. So, as kube-controller-manager's ``ControllerExpectations`` do, the controller
remembers, per owner, the names it creates (``expect``, before it sends them: a
deletion the watch delivers while the creations are in flight must find them
recorded), and does not create a name again while it is awaited (``awaited``):

* an expectation ends when a pass finds the cache showing the object: the caller
  passes the names it would create now (those its cache does not show), and every
  expectation of the owner whose name is not among them is settled and dropped. A name
  dropped for another reason (no longer wanted) costs nothing: were it wanted again,
  the worst is one creation sent twice, which the caller already survives;
* or when the watch delivers the deletion of the object created (``gone``, from the
  store's listener, by UID), so a name deleted right after our creation, before a pass
  saw it, is created again by the next pass. Not the deletion of another object of the
  name (an older one of ours, deleted and created again under its name in one pass).
  Not at its addition either: a pass plans from the cache before it asks what is
  awaited (planning 2,000 instances takes a while), and an addition delivered in
  between would let that pass send the creation again (converging 10,000 Deployments:
  121 creations sent twice); the pass after it finds the name in the cache anyway;
* or when ``timeout_s`` has passed since the creation, should the watch never show
  it (a relist that missed both its addition and its deletion): the caller asks for a
  pass at ``due_in``, as an awaited creation wakes nothing else;
* or when the creation was not made after all (refused, failed or left for a later
  pass): ``settle``, once the caller knows, drops those and tells it the UIDs of the
  objects made.

Owners are opaque keys (the owner's UID, so that an owner deleted and created again
under its name starts afresh, and two owners never share a name's expectation); an
owner's expectations go with it (``forget``). Time comes from an injected monotonic
clock (``runtime.clocks``).
"""

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from konsumerator.runtime.clocks import Clock

# How long a creation is awaited at most, should no pass find it in the cache and the
# watch deliver no deletion of it. Not a few seconds: converging 10,000
# Deployments on a loaded apiserver, the watch showed creations more than 10 s late,
# and a 10 s timeout sent 813 of them again (each refused, read and applied). The
# ReplicaSet controller waits 5 minutes; a minute keeps a creation the watch missed
# from waiting that long.
TIMEOUT_S: Final = 60.0
# The shortest delay ``due_in`` gives (see there).
SOON_S: Final = 0.1


@dataclass(slots=True)
class _Expected:
    """One creation awaited: until ``deadline``, of the object with ``uid``."""

    deadline: float
    # The UID of the object made, once the creation is back (``created``); None while it
    # is in flight.
    uid: str | None = None
    # The UIDs of objects of this name whose deletion the watch delivered while the
    # creation was in flight: one may be the object it made (added and deleted before
    # the caller heard back), the others an older object's (ours, deleted and created
    # again under its name in the same pass).
    gone: set[str] = field(default_factory=set)


class Expectations:
    """Per owner: the names created and not seen yet, each with its deadline."""

    def __init__(self, *, timeout_s: float = TIMEOUT_S, clock: Clock = time.monotonic) -> None:
        self._timeout_s = timeout_s
        self._clock = clock
        # owner -> name -> its expectation.
        self._owners: dict[str, dict[str, _Expected]] = {}

    def expect(self, *, owner: str, names: Iterable[str]) -> None:
        """``names`` are about to be created for ``owner``: await them for ``timeout_s``.

        Before the creations are sent, not after: the watch can deliver a creation's
        addition and its deletion (a user's, a garbage collection) before the caller
        is back from sending the others, and a deletion that found nothing to settle
        would leave the name awaited, and missing, until the timeout."""
        deadline = self._clock() + self._timeout_s
        pending = self._owners.get(owner)
        for name in names:
            if pending is None:
                pending = self._owners[owner] = {}
            pending[name] = _Expected(deadline=deadline)

    def settle(self, *, owner: str, names: Iterable[str], made: Mapping[str, str]) -> None:
        """The creations of ``names`` that ``expect`` recorded are back: ``made`` maps
        each name created to the UID of the object now standing for it. A name not in
        ``made`` (refused, failed, left for a later pass, or unknown after a cancelled
        pass) is not awaited; a made one whose deletion the watch delivered meanwhile is
        settled; the others await that object."""
        pending = self._owners.get(owner)
        if pending is None:
            return
        for name in names:
            expected = pending.get(name)
            if expected is None or expected.uid is not None:
                continue
            uid = made.get(name)
            if uid is None or uid in expected.gone:
                self._drop(owner=owner, name=name)
            else:
                expected.uid, expected.gone = uid, set()

    def gone(self, *, owner: str, name: str, uid: str) -> None:
        """The watch delivered the deletion of ``owner``'s object ``name`` with ``uid``.
        The creation of that very object is no longer awaited (the next pass creates it
        again); the deletion of another object of the name (an older one, deleted and
        created again in one pass) settles nothing. While the creation is in flight
        its object's UID is not known yet: the deletion is kept for ``created``."""
        expected = self._owners.get(owner, {}).get(name)
        if expected is None:
            return
        if expected.uid is None:
            expected.gone.add(uid)
        elif expected.uid == uid:
            self._drop(owner=owner, name=name)

    def _drop(self, *, owner: str, name: str) -> None:
        pending = self._owners.get(owner)
        if pending is not None and pending.pop(name, None) is not None and not pending:
            del self._owners[owner]

    def awaited(self, *, owner: str, missing: Iterable[str]) -> frozenset[str]:
        """Of ``missing`` (the names the caller would create now, as its cache does not
        show them), those created for ``owner`` and still awaited: not to be created
        again yet. Every other expectation of the owner is settled and dropped: shown by
        the cache (not ``missing``), or past its deadline."""
        pending = self._owners.get(owner)
        if pending is None:
            return frozenset()
        now = self._clock()
        kept = {
            name: expected
            for name in missing
            if (expected := pending.get(name)) is not None and expected.deadline > now
        }
        if kept:
            self._owners[owner] = kept
        else:
            del self._owners[owner]
        return frozenset(kept)

    def due_in(self, *, owner: str) -> float | None:
        """Seconds until the owner's first expectation lapses (``None``: it has none):
        when a pass must look again if nothing else wakes it. Never less than
        ``SOON_S``: the clock moved on since ``awaited`` kept the expectation, and a
        deadline that fell in between would give 0, which asks for no pass at all (a
        controller requeues only after a positive delay), so the creation left out
        would wait for an unrelated event."""
        pending = self._owners.get(owner)
        if not pending:
            return None
        return max(SOON_S, min(e.deadline for e in pending.values()) - self._clock())

    def forget(self, *, owner: str) -> None:
        """The owner is gone (or replaced): nothing of it is awaited any more."""
        self._owners.pop(owner, None)

    def owners(self) -> frozenset[str]:
        """The owners something is awaited for."""
        return frozenset(self._owners)
