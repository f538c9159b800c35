"""Lease-based leader election (coordination.k8s.io/v1), after client-go.

Only the leader runs controllers; followers keep their caches warm so that a
failover costs one lease period, not a relist of everything.

The protocol is optimistic concurrency on one Lease object:

- *Acquire*: every ``retry_period`` (jittered) read the Lease. If nobody holds
  it, or the holder has not renewed for ``lease_duration``, write ourselves in
  as holder with the resourceVersion we read. If another candidate wrote
  first, the API server answers 409 and we simply try again later.
- *Renew*: as leader, rewrite ``renewTime`` every ``retry_period``. If no
  renewal has succeeded for ``renew_deadline`` (< ``lease_duration``), we
  must assume someone else may take over soon: we stop leading and raise
  ``LeadershipLost``; the manager cancels the controllers and the process
  exits non-zero (controller-runtime does the same; a restart is the
  simplest correct way to drop every in-memory assumption).
- *Release*: on a clean shutdown the leader writes an empty holder with a 1 s
  duration (client-go ``ReleaseOnCancel``), so a follower takes over at its
  next retry instead of waiting out the lease.

Fencing, the part client-go leaves to its users: a deposed leader must not
write. Another candidate may take the Lease ``lease_duration`` after it saw
our last renewal, which it saw after that renewal *started*. So the leader
counts from the start of its last successful acquire or renew request and
lets writes start only within ``renew_deadline`` of it (``write_budget``,
asked by the writer before every write, which also bounds the request by
the time left). The gap up to ``lease_duration`` (5 s by default) covers a
request already on the wire and clocks that run at slightly different
rates. The check is made on the spot, not by the renew loop: a process that
was frozen (SIGSTOP, a stalled node, a long GC pause) and wakes up after its
lease expired refuses its next write before the renew loop has even run.

A Lease taken while ours has not expired (a misbehaving peer, a manual takeover
with ``kubectl``) shows in the Lease before our next renewal reads it, up to
``retry_period`` later: meanwhile the fence above would still let writes start.
So the process also watches its Lease (``saw``, fed by a watch of that one
object): the moment an event shows a version newer than our own last write
with another holder, or the Lease deleted, we stop leading, every write is
refused from then on, and the renew loop wakes to raise ``LeadershipLost``.
An event older than our last write (a watch behind our own renewal) is not
evidence of anything and is ignored; so is a delete the renewal has already
answered by creating the Lease anew (the watch shows the delete late). A delete
a relist reports (after a 410) with a version older than a Lease we created is
taken for such a one: if it was later, the next renewal finds it, as before.

Expiry is judged on *our* monotonic clock, never by comparing the
``renewTime`` in the Lease with our wall clock: clocks of different nodes
disagree. Like client-go we remember when we last saw the record change
(``observed_at``) and treat the lease as expired ``lease_duration`` after
that. The wall clock is used only to fill the timestamps humans read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import secrets
import socket

import structlog

from konsumerator.runtime import errors
from konsumerator.runtime.clocks import Clock, WallClock, loop_clock, utc_now
from konsumerator.runtime.observing import NULL_OBSERVER, Observer
from konsumerator.runtime.ports import LeaseRecord, LeaseStore

log = structlog.stdlib.get_logger(__name__)


class LeadershipLost(Exception):
    """We were leader and could not renew within the renew deadline."""


def default_identity() -> str:
    """``$POD_NAME`` (or the hostname) plus a random suffix, unique per process."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{secrets.token_hex(4)}"


class LeaderElector:
    def __init__(
        self,
        *,
        store: LeaseStore,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
        clock: Clock = loop_clock,
        wall_clock: WallClock = utc_now,
        rng: random.Random | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._store = store
        self._lease_duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._release_on_cancel = release_on_cancel
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._observer = observer
        self._observed: LeaseRecord | None = None
        # The Lease as we last created it (our renewal found none): a watch's delete of
        # any version before it is one the renewal already answered (``saw``).
        self._created: LeaseRecord | None = None
        self._observed_at = 0.0
        # When the last successful acquire or renew request started (self._clock).
        self._renewed_from: float | None = None
        self._leading = asyncio.Event()
        # Set when the Lease watch showed it taken (``saw``): wakes the renew loop.
        self._taken = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def observed(self) -> LeaseRecord | None:
        """The last Lease record we read or wrote."""
        return self._observed

    async def wait_until_leading(self) -> None:
        await self._leading.wait()

    def write_budget(self) -> float:
        """Seconds a write starting now may take (``WriteFence``).

        Raises ``NotLeading`` unless we lead and our last successful renewal
        started less than ``renew_deadline`` ago, by our own clock.
        """
        renewed = self._renewed_from
        if not self.is_leader or renewed is None:
            raise errors.NotLeading(message=f"not the holder of lease {self.namespace}/{self.name}")
        left = renewed + self._renew_deadline - self._clock()
        if left <= 0:
            raise errors.NotLeading(
                message=f"lease {self.namespace}/{self.name} not renewed for "
                f"{self._renew_deadline - left:.1f}s; it may have been taken"
            )
        return left

    def saw(self, lease: LeaseRecord | None, *, last: LeaseRecord | None = None) -> None:
        """The Lease as its watch shows it now (None: deleted; ``last``: the version the
        watch showed before the delete, if it had one).

        Taken (another holder, at a version newer than our own last write) or
        deleted while we lead: stop leading at once, so the fence refuses every
        write from now on, and wake the renew loop to raise ``LeadershipLost``.
        A delete of a version older than a Lease we have created since is not one:
        our renewal found no Lease and created ours (nobody else can hold it then,
        or the create would have failed), and the watch shows the delete only now.
        """
        if not self.is_leader:
            return
        if lease is not None:
            if lease.holder_identity == self.identity or not _newer(lease, than=self._observed):
                return
            holder = lease.holder_identity
        else:
            if last is not None and self._created is not None and _newer(self._created, than=last):
                return
            holder = "(the Lease was deleted)"
        log.error("the leader lease was taken; seen by its watch", lease=self.name, holder=holder)
        self._set_leading(False)
        self._taken.set()

    async def run(self) -> None:
        """Acquire, then renew until cancelled (release) or lost (``LeadershipLost``)."""
        try:
            await self._acquire()
            await self._renew()
        except asyncio.CancelledError:
            if self.is_leader and self._release_on_cancel:
                # Shield the release from the cancellation that triggered it.
                await asyncio.shield(self._release())
            raise
        finally:
            self._set_leading(False)

    # -- the loops ---------------------------------------------------------

    async def _acquire(self) -> None:
        log.info("waiting for the leader lease", lease=self.name, identity=self.identity)
        # A standby says so (0) from the start, so every replica is visible as leader or
        # standby, and a replica that exports nothing runs without leader election.
        self._observer.leadership_changed(name=self.name, leading=False)
        while True:
            if await self._try_acquire_or_renew():
                break
            # client-go: JitterUntil(retryPeriod, jitter=1.2).
            await asyncio.sleep(self._retry_period * (1.0 + 1.2 * self._rng.random()))
        self._set_leading(True)
        log.info("acquired the leader lease", lease=self.name, identity=self.identity)

    async def _renew(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_period):
                    await self._taken.wait()
            if not self.is_leader:
                raise LeadershipLost(f"lease {self.namespace}/{self.name} was taken")
            assert self._renewed_from is not None  # set by the acquisition
            remaining = self._renew_deadline - (self._clock() - self._renewed_from)
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        await self._try_acquire_or_renew()
                except TimeoutError:
                    pass
            if not self.is_leader:
                raise LeadershipLost(f"lease {self.namespace}/{self.name} was taken")
            if self._clock() - self._renewed_from >= self._renew_deadline:
                log.error("failed to renew the leader lease", lease=self.name)
                self._set_leading(False)
                raise LeadershipLost(f"lease {self.namespace}/{self.name} not renewed in time")

    # -- one attempt -------------------------------------------------------

    async def _try_acquire_or_renew(self) -> bool:
        started = self._clock()
        if await self._attempt():
            self._renewed_from = started
            return True
        return False

    async def _attempt(self) -> bool:
        now = self._wall_clock()
        try:
            current = await self._store.get(namespace=self.namespace, name=self.name)
            if current is None:
                record = LeaseRecord(
                    holder_identity=self.identity,
                    lease_duration_seconds=round(self._lease_duration),
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                )
                self._created = await self._store.create(
                    namespace=self.namespace, name=self.name, record=record
                )
                self._observe(self._created)
                return True

            if self._observed is None or current != self._observed:
                self._observe(current)
            if self.is_leader and current.holder_identity != self.identity:
                # Someone took the Lease (or an admin cleared it): stop writing now,
                # not at the renew deadline.
                log.error(
                    "the leader lease was taken", lease=self.name, holder=current.holder_identity
                )
                self._set_leading(False)
                return False
            held_by_other = current.holder_identity not in ("", self.identity)
            expires_at = self._observed_at + current.lease_duration_seconds
            if held_by_other and expires_at > self._clock():
                return False

            ours_already = current.holder_identity == self.identity
            record = dataclasses.replace(
                current,
                holder_identity=self.identity,
                lease_duration_seconds=round(self._lease_duration),
                renew_time=now,
                acquire_time=current.acquire_time if ours_already else now,
                lease_transitions=current.lease_transitions
                if ours_already
                else _next_transition(current.lease_transitions),
            )
            self._observe(
                await self._store.update(namespace=self.namespace, name=self.name, record=record)
            )
            return True
        except errors.Conflict:
            # Someone else wrote between our read and our write; not an error.
            return False
        except errors.ApiError as exc:
            log.warning("leader lease request failed", lease=self.name, error=repr(exc))
            return False

    async def _release(self) -> None:
        observed = self._observed
        if observed is None or observed.holder_identity != self.identity:
            return
        now = self._wall_clock()
        record = dataclasses.replace(
            observed,
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
        )
        try:
            async with asyncio.timeout(self._retry_period * 2):
                self._observe(
                    await self._store.update(
                        namespace=self.namespace, name=self.name, record=record
                    )
                )
            log.info("released the leader lease", lease=self.name, identity=self.identity)
        except (errors.ApiError, TimeoutError) as exc:
            # Not fatal: the successor waits out the lease instead.
            log.warning("could not release the leader lease", lease=self.name, error=repr(exc))
        finally:
            self._set_leading(False)

    def _observe(self, record: LeaseRecord) -> None:
        self._observed = record
        self._observed_at = self._clock()

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading.is_set():
            return
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        self._observer.leadership_changed(name=self.name, leading=leading)


# ``leaseTransitions`` is an int32 on the API server: a value past it is refused (400).
_MOST_TRANSITIONS = 2**31 - 1


def _next_transition(transitions: int) -> int:
    """The count after one more takeover, held at int32's maximum (and at 0 from below).

    The count is only informative; a Lease edited to the maximum (or a peer counting
    differently) must not make every takeover a write the API server refuses, which
    left the Lease with no possible leader once its holder was gone."""
    return min(max(transitions, 0) + 1, _MOST_TRANSITIONS)


def _newer(lease: LeaseRecord, *, than: LeaseRecord | None) -> bool:
    """Whether ``lease`` is a later version than ``than`` (our own last read or write).

    resourceVersions are etcd revisions, integers that grow; one that is not an
    integer can only be told apart, so any other version counts as newer.
    """
    if than is None:
        return True
    try:
        return int(lease.resource_version) > int(than.resource_version)
    except ValueError:
        return lease.resource_version != than.resource_version
