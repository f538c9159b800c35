"""What the adaptive policy remembers between passes, and its annotation codec.

Everything the policy needs after a restart is written on the Deployment
(``keys.SCALING_MEMORY``) with the scaling status, and read back from the
watch cache, so a restarted operator or a new leader continues where the old
one stopped. The recent peak alone moves every pass or two (its two buckets
rotate every half window): a pass that changes nothing else keeps it in the
process (``Recent``) instead of writing the Deployment, so a steady instance
is not rewritten every other pass. A restart then reads the peak last written:
at worst a forgotten peak, and sizing from the current need (docs/adaptive.md).

* ``peak_rate`` (msg/s) and ``peak_at``: the highest production need of the
  instance seen since ``peak_at`` (the current half of the recent window,
  ``policy.peak_window_s``), and ``previous_peak``, the highest in the half
  before: sizing never goes below either, so a dip between two peaks does not
  cause a scale-down (a sliding maximum over the last half to whole window,
  in two numbers).
* ``resized_at``: when the instance was last created or resized; the minimum
  gap between two resizes and the minimum dwell after one are measured from
  it.
* ``throughput_before``, ``cpu_before_m``, ``limit_before_m`` and ``ineffective``:
  what it consumed and the CPU (request and limit) it had when last scaled up,
  and whether that scale-up was found not to raise the throughput;
  ``short_need``: the production need then, when that scale-up found the CPU
  short for production itself (``policy.settled``);
  ``for_backlog``: whether it was sized partly for a backlog, and ``up_need``
  the production need it was sized for (``policy.drain_over``).
* ``lent``: the node was seen lending the pods CPU beyond their request
  (``policy.bursting``).
* ``quiet_from_m``: when the run of scale-ups the last one belongs to began after
  ``policy.SETTLE_S`` without a resize, the CPU (millicores) the instance had
  through that quiet period; 0 otherwise (``policy.after_up``).

The codec is lenient: anyone who may edit the Deployment may write anything
into the annotation, and an unreadable field reads as absent (no peak,
resized "infinitely long ago"), never as an exception.
"""

from datetime import UTC, datetime

import msgspec

_MAX_RATE = 2**63 - 1


# A msgspec Struct, not a frozen dataclass: immutable and hashable alike, but built in C
# (a frozen dataclass's ``__init__`` calls ``object.__setattr__`` per field, and every
# instance of every refresh builds one or two). No containers: nothing to collect (gc).
class Memory(msgspec.Struct, frozen=True, gc=False):
    peak_rate: int = 0
    peak_at: datetime | None = None
    resized_at: datetime | None = None
    previous_peak: int = 0
    # What the instance consumed (msg/s) when it was last scaled up, and whether
    # that scale-up was found not to raise it (``policy.ineffective``).
    throughput_before: int = 0
    # The CPU (millicores, all containers) it had before that scale-up.
    cpu_before_m: int = 0
    # The CPU limit (millicores, all containers) it had then; 0: unknown or unlimited.
    limit_before_m: int = 0
    ineffective: bool = False
    # The production need (msg/s) when the last scale-up found the CPU short for
    # production itself, 0 otherwise (``policy.settled``).
    short_need: int = 0
    # The last scale-up was sized partly for a backlog (``policy.drain_over``).
    for_backlog: bool = False
    # The production need (msg/s) that scale-up was sized for: ``drain_over``
    # gives back the backlog's part only while production has not fallen below it.
    up_need: int = 0
    # The node was seen lending the pods CPU beyond their request (``policy.bursting``);
    # cleared by a scale-up that does not see it again.
    lent: bool = False
    # The CPU (millicores) before the run of scale-ups the last one belongs to, when
    # that run began after ``policy.SETTLE_S`` without a resize; 0 otherwise
    # (``policy.quiet_from``, ``policy.after_up``).
    quiet_from_m: int = 0

    def with_peak(
        self, *, peak_rate: int, peak_at: datetime | None, previous_peak: int
    ) -> "Memory":
        """The memory with the recent peak's three fields replaced (``hold_peak``)."""
        return msgspec.structs.replace(
            self, peak_rate=peak_rate, peak_at=peak_at, previous_peak=previous_peak
        )


def _format_time(moment: datetime) -> str:
    """``moment`` in UTC to the second, ``2026-11-30T07:31:52Z``.

    Formatted field by field: ``strftime`` costs several times more, and the memory
    is formatted on every adaptive decision it changes. Years before 1000 keep
    ``strftime``'s own (platform-dependent, unpadded) rendering, which the parser
    rejects: such a time still reads back as absent."""
    utc = moment.astimezone(UTC)
    if utc.year < 1000:
        return utc.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_rate(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return 0
    return min(int(text), _MAX_RATE)


def encode(memory: Memory) -> str:
    """``peak=<msg/s>,peakAt=<time>`` then the optional ``previous``, ``resizedAt``,
    ``before``, ``cpuBefore``, ``limitBefore``, ``ineffective``, ``shortNeed``, ``forBacklog``,
    ``upNeed``, ``lent`` and ``quietFrom`` fields."""
    parts = [f"peak={memory.peak_rate}"]
    if memory.peak_at is not None:
        parts.append(f"peakAt={_format_time(memory.peak_at)}")
    if memory.previous_peak:
        parts.append(f"previous={memory.previous_peak}")
    if memory.resized_at is not None:
        parts.append(f"resizedAt={_format_time(memory.resized_at)}")
    if memory.throughput_before:
        parts.append(f"before={memory.throughput_before}")
    if memory.cpu_before_m:
        parts.append(f"cpuBefore={memory.cpu_before_m}")
    if memory.limit_before_m:
        parts.append(f"limitBefore={memory.limit_before_m}")
    if memory.ineffective:
        parts.append("ineffective=true")
    if memory.short_need:
        parts.append(f"shortNeed={memory.short_need}")
    if memory.for_backlog:
        parts.append("forBacklog=true")
    if memory.up_need:
        parts.append(f"upNeed={memory.up_need}")
    if memory.lent:
        parts.append("lent=true")
    if memory.quiet_from_m:
        parts.append(f"quietFrom={memory.quiet_from_m}")
    return ",".join(parts)


def decode(text: str | None) -> Memory | None:
    """The memory an annotation holds; None when there is no annotation."""
    if text is None:
        return None
    fields: dict[str, str] = {}
    for part in text.split(",")[:14]:
        name, sep, value = part.partition("=")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    peak_at = _parse_time(fields.get("peakAt", ""))
    return Memory(
        peak_rate=_parse_rate(fields.get("peak", "")) if peak_at is not None else 0,
        peak_at=peak_at,
        resized_at=_parse_time(fields.get("resizedAt", "")),
        previous_peak=_parse_rate(fields.get("previous", "")) if peak_at is not None else 0,
        throughput_before=_parse_rate(fields.get("before", "")),
        cpu_before_m=_parse_rate(fields.get("cpuBefore", "")),
        limit_before_m=_parse_rate(fields.get("limitBefore", "")),
        ineffective=fields.get("ineffective") == "true",
        short_need=_parse_rate(fields.get("shortNeed", "")),
        for_backlog=fields.get("forBacklog") == "true",
        up_need=_parse_rate(fields.get("upNeed", "")),
        lent=fields.get("lent") == "true",
        quiet_from_m=_parse_rate(fields.get("quietFrom", "")),
    )


def durably_equal(a: Memory | None, b: Memory | None) -> bool:
    """``durable(a) == durable(b)``, without building the two copies: every field
    but the recent peak's three compared (two Nones are equal, one None is not).
    A field added to ``Memory`` must be compared here too (a test pins the fields)."""
    if a is None or b is None:
        return a is b
    return (
        a.resized_at == b.resized_at
        and a.throughput_before == b.throughput_before
        and a.cpu_before_m == b.cpu_before_m
        and a.limit_before_m == b.limit_before_m
        and a.ineffective == b.ineffective
        and a.short_need == b.short_need
        and a.for_backlog == b.for_backlog
        and a.up_need == b.up_need
        and a.lent == b.lent
        and a.quiet_from_m == b.quiet_from_m
    )


def durable(memory: Memory | None) -> Memory | None:
    """``memory`` without the recent peak: the part a pass writes when it changes.

    The peak (``peak_rate``, ``peak_at``, ``previous_peak``) is rotated every half
    window; losing it to a restart costs at most a scale-down sized from the
    current need, which still waits the pending scale-down period."""
    if memory is None:
        return None
    return msgspec.structs.replace(memory, peak_rate=0, peak_at=None, previous_peak=0)


def as_written(memory: Memory) -> Memory:
    """``memory`` as the annotation gives it back (times to the second): what the
    next pass would read had it been written.

    Asked on every adaptive decision. A memory that the annotation already holds
    exactly (``_reads_back``: the common case, one computed from a memory read
    back, with times to the second) is its own answer; any other goes through the
    codec. Nothing is remembered between calls: a cache of the memories found to read
    back (by identity, 65,536 of them) held every instance's memories of several
    passes alive, and a 10,000-Deployment operator grew by some 9 MiB in three steady
    minutes for a check that costs a few microseconds. (No cache by equality either:
    an equal memory is not always the same one, a count of ``True`` equals one of 1,
    and the codec tells them apart.)"""
    if _reads_back(memory):
        return memory
    written = decode(encode(memory))
    assert written is not None  # decode returns None only for a missing annotation
    return written


def _reads_back(memory: Memory) -> bool:
    """Whether ``decode(encode(memory)) == memory`` field for field, by a check
    much cheaper than the round trip: every count a plain int the parser
    accepts, every time a UTC one to the second the parser reads back, and no
    peak without its time (``decode`` drops it). A field added to ``Memory`` must
    be checked here too (a test pins the fields)."""
    for count in (
        memory.peak_rate,
        memory.previous_peak,
        memory.throughput_before,
        memory.cpu_before_m,
        memory.limit_before_m,
        memory.short_need,
        memory.up_need,
        memory.quiet_from_m,
    ):
        if type(count) is not int or not 0 <= count <= _MAX_RATE:
            return False
    for flag in (memory.ineffective, memory.for_backlog, memory.lent):
        if flag is not True and flag is not False:
            return False
    if memory.peak_at is None and (memory.peak_rate or memory.previous_peak):
        return False
    return time_reads_back(memory.peak_at) and time_reads_back(memory.resized_at)


def time_reads_back(moment: datetime | None) -> bool:
    """Whether ``_parse_time(_format_time(moment))`` gives ``moment`` itself: a
    plain ``datetime`` in ``UTC``, to the second, in the years the format pads."""
    return moment is None or (
        type(moment) is datetime
        and moment.tzinfo is UTC
        and moment.microsecond == 0
        and moment.fold == 0
        and moment.year >= 1000
    )


class Recent:
    """The memory this process last computed for each Deployment (by UID), with the
    ``keys.SCALING_MEMORY`` text that Deployment holds (or was just written with)
    when it was computed. One per Consumer, kept by the pipeline between passes.

    Recalled only while the Deployment's annotation is still exactly that text:
    when anyone else wrote it (a previous leader, a user, a restore), the
    annotation wins. It holds what a write would have stored, so reading it
    instead of the unwritten annotation changes no decision.
    """

    __slots__ = ("_by_uid",)

    def __init__(self) -> None:
        self._by_uid: dict[str, tuple[str | None, Memory]] = {}

    def __len__(self) -> int:
        return len(self._by_uid)

    def recall(self, *, uid: str, annotation: str | None) -> Memory | None:
        """The kept memory of Deployment ``uid`` whose annotation holds ``annotation``;
        None: none kept, or the annotation is not the one it was kept with."""
        kept = self._by_uid.get(uid) if uid else None
        if kept is None or kept[0] != annotation:
            return None
        return kept[1]

    def keep(self, *, uid: str, annotation: str | None, memory: Memory) -> None:
        """Remember ``memory`` for Deployment ``uid``, valid while its annotation is
        ``annotation``."""
        if uid:
            self._by_uid[uid] = (annotation, memory)

    def retain(self, uids: "frozenset[str] | set[str]") -> None:
        """Forget the Deployments not in ``uids`` (deleted, or no longer ours)."""
        for uid in [u for u in self._by_uid if u not in uids]:
            del self._by_uid[uid]

    def clear(self) -> None:
        self._by_uid.clear()
