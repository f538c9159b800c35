"""A certificate of the adaptive rule's steady keep: the rule's own outcome, remembered.

Why: in a steady pass nearly every instance under the adaptive predictor ends as it
began (``rules.scale_adaptively`` finds the proposal the same size as the instance,
"right-sized", and writes nothing), yet the rule ran in full for each of them in every
pass that refreshed metrics. Production has noise, so the rate it sizes for moves every
pass, and a cache of the exact inputs never hits (issue 15).

What it is: when the full rule keeps an instance (nothing written) by a verdict that
reads nothing but the comparison of a proposal with the instance's size and that
proposal's CPU shortage, it remembers the rates for which those come out the same:

* "right-sized" at ``asks`` itself (``first`` 0): the rates ``asks`` may be whose
  proposal requests what the instance has (``rules.compare`` 0);
* "right-sized" at the rate a scale-down is decided with (``first`` -1): the rates
  ``asks`` may be whose proposal requests less, and the rates ``Sized.rate`` may be
  whose proposal requests no less;
* "saturated" (``first`` +1, SATURATED and lagging): the rates ``asks`` may be whose
  proposal requests more, and the rates ``Sized.up_rate`` may be;

and, for whichever proposal decided, a shortage that leaves the status and the reported
level where they are (``rules._keeps``). The comparison only grows with the rate (a
higher rate never proposes less, the policies clamp) and so does the shortage, so each
set of rates is one interval, whose ends are found by galloping and bisection
(``interval``) with the rule's own ``_propose`` and ``compare``: no formula is repeated
here.

Invariant (same inputs, same decision): a later pass that finds a certificate for the
very same Deployment object (its size, scaling status and time, and saturation level),
under the very same config object, with the instance as critical and as lagging as
then, from an unbounded pool, and whose rates are within it (``Certificate.admits``),
finds the same comparisons and a shortage that keeps the state: ``adaptive.decide``
says what it said ("right-sized", or "saturated", the first rule of a scale-up, which
reads nothing else) and the status and level stay, so the rule keeps the instance as
it is, provided the memory it computes writes nothing (``rules._hold_changes``, asked
again every time). That pass computes only what the certificate cannot stand for: the
sized need (the recent peak must evolve exactly as in the full rule), the effect and
lending flags and the memory they give.

What refuses it (the full rule runs, and certifies again when it keeps the instance so):
another Deployment object (any write or watch event), another config object, the lag
crossing ``criticalLag`` or ``tolerableLag``, a rate outside the certificate, ``asks``
not above 0 (no need: the fallback, which is not monotone in anything), a global pool
(a grant then depends on what the other instances drew), a Deployment without a UID, a
memory that would be written, and every other verdict (pending, dwelling, scaling,
held by a rule that reads the time or the metrics): a PENDING status is settled by a
right-sized verdict, a write, so it is never certified.

Kept by Deployment UID, at most ``MAX_KEPT`` (all forgotten when full): one per
instance, about 330 bytes each (the certificate, its two intervals and its dict entry,
measured for 10,000); the last certificate of a UID is where the search for its next
one looks first, ``last``. A certificate is recalled only for the very object it
names, so UIDs shared by two Consumers, or a Deployment deleted and created again,
never share one. It names that object by a weak reference: a strong one kept every
Deployment object last certified alive after the Deployment (or its Consumer) was
gone, some 3.9 kB an instance (a deleted 1,000-instance Consumer: 3.9 MB), until
``MAX_KEPT`` certificates cleared them all; a dead reference is never the object a
pass holds, so it is never recalled.
"""

import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final

from konsumerator.domain.adaptive.memory import Memory, durably_equal
from konsumerator.domain.adaptive.policy import Knobs
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.specs import ConsumerConfig

# The highest rate a certificate spans (``adaptive.policy``'s cap on a rate).
TOP_RATE: Final = 2**62
MAX_KEPT: Final = 1 << 17


@dataclass(frozen=True, slots=True)
class Certificate:
    """The rates ``[lo, hi]`` whose proposal keeps ``d`` as it is (the same requests, a
    CPU shortage of ``cpu_shortage_m``), for ``d`` (weakly referenced, ``uid``'s) and
    ``config`` (identity) and an instance as ``critical`` and ``lagging`` as then."""

    uid: str
    d: "weakref.ReferenceType[ObservedDeployment]"
    config: ConsumerConfig
    critical: bool
    lagging: bool
    # The comparison at ``asks`` (-1, 0, +1), and the rates ``asks`` may be to find it.
    first: int
    asks: tuple[int, int]
    # When ``first`` is not 0, the rates the verdict is decided with may be (the
    # scale-down's ``Sized.rate``, the scale-up's ``Sized.up_rate``) to decide it so.
    decided: tuple[int, int]
    cpu_shortage_m: int

    def admits(self, *, asks: int, decided: int) -> bool:
        """Whether rates ``asks`` and ``decided`` are within the certificate."""
        lo, hi = self.asks
        if not lo <= asks <= hi:
            return False
        if self.first == 0:
            return True
        lo, hi = self.decided
        return lo <= decided <= hi


_KEPT: dict[str, Certificate] = {}


def recall(
    *, d: ObservedDeployment, config: ConsumerConfig, critical: bool, lagging: bool
) -> Certificate | None:
    """The certificate made for exactly these inputs, or None."""
    kept = _KEPT.get(d.uid)
    if (
        kept is None
        or kept.d() is not d
        or kept.config is not config
        or kept.critical is not critical
        or kept.lagging is not lagging
    ):
        return None
    return kept


def last(uid: str) -> Certificate | None:
    """The last certificate made for Deployment ``uid``, whatever it was made for: where
    the search for a new one looks first (``interval``'s ``hint``), never an answer."""
    return _KEPT.get(uid)


def keep(certificate: Certificate, *, alike: Hashable = None) -> None:
    """Remember ``certificate`` for its Deployment's UID (none without one), and as the
    last one of its kind, ``alike`` (a key of the caller's; None: none)."""
    uid = certificate.uid
    if not uid:
        return
    if len(_KEPT) >= MAX_KEPT and uid not in _KEPT:
        _KEPT.clear()
    _KEPT[uid] = certificate
    if alike is not None:
        if len(_ALIKE) >= MAX_KEPT and alike not in _ALIKE:
            _ALIKE.clear()
        _ALIKE[alike] = certificate


# The last certificate made for each kind of instance (``alike``), by the caller's key.
_ALIKE: dict[Hashable, Certificate] = {}


def alike(key: Hashable, *, config: ConsumerConfig) -> Certificate | None:
    """The last certificate ``keep`` was given for ``key`` under ``config`` (identity):
    where the search for one of another instance of the same kind looks first
    (``interval``'s ``hint``), never an answer. Why: after a resize an instance's own
    last certificate is of its old size, and its ends are a CPU step away; the
    instances of a Consumer share a few sizes, and one of the same size (and comparison,
    status and level) mostly has the very same ends: two calls an end instead of some
    ten (a scale-down's decided rates: some thirty)."""
    made = _ALIKE.get(key)
    return made if made is not None and made.config is config else None


def forget_all() -> None:
    _KEPT.clear()
    _ALIKE.clear()
    _HELD.clear()
    _VOUCHED.clear()


def kept_count() -> int:
    return len(_KEPT)


@dataclass(frozen=True, slots=True)
class Hold:
    """The certificate's hold: a ``certificate`` stands for the rule's keep while the
    memory the rule reads is ``memory`` but for its recent peak (so it writes nothing,
    ``rules.held``); and for a steady instance of one partition (keeping up, no
    backlog need) the peak's certificate, the held peaks (``peaks``, msg/s) whose rates
    the certificate admits. One per Deployment UID, at most ``MAX_KEPT``.

    Why: the recent peak rotates every half window (``policy.hold_peak``), so the
    memory the rule reads is another object every other pass, and the sized rates move
    with the peak, not with the noise of each pass. Once no backlog need is left and
    the instance keeps up, the rates ``Sized`` gives (``asks``, ``rate``) are functions
    of the held peak alone (``policy.sized_for_peak``) and grow with it, so the peaks
    whose rates the certificate admits are one interval, found once per certificate by
    the rule's own ``sized_for_peak`` (``interval``). A later pass then computes the
    need of its partition and the peak held for it (``hold_peak`` itself, rotation and
    rise included), and when that peak is within ``peaks`` the rule's verdict is the
    certificate's: no proposal, no comparison, no ``Sized``.

    What it still asks every pass (``rules.held``): the certificate's inputs
    (the same Deployment object, config object, critical and lagging), a memory
    ``durably_equal`` to ``memory`` (the one this hold was checked with: the same
    resize, flags and every field but the peak, so the one ``_hold_changes`` found
    writing nothing), the need, backlog need and ``drained`` of the pass, the peak (or,
    without ``peaks`` or outside them, the rule's own ``size``, ``asks`` and the
    certificate's admission), the lending and effect flags, and the memory as written.

    ``knobs``, ``cpu_m``, ``limit_m``: the config's knobs and the instance's CPU request
    and limit, fixed by the certificate's config and Deployment."""

    certificate: Certificate
    memory: Memory
    # The first partition of the instance; with ``peaks``, its only one.
    partition: int
    # None: the rates are found the long way every pass (``rules.held``).
    peaks: tuple[int, int] | None
    knobs: Knobs
    cpu_m: int
    limit_m: int

    def holds(
        self,
        *,
        d: ObservedDeployment,
        config: ConsumerConfig,
        critical: bool,
        lagging: bool,
        memory: Memory | None,
    ) -> bool:
        """Whether this hold stands for a pass with these inputs (its metrics and time
        apart): its certificate, still the one kept for its Deployment (a hold extends
        the certificate of its instance, not one it was replaced by), and its inputs,
        and a memory that differs from the one it was made with in the recent peak
        alone."""
        return self.stands(d=d, config=config, critical=critical, lagging=lagging) and (
            self.vouches(memory) or durably_equal(memory, self.memory)
        )

    def stands(
        self, *, d: ObservedDeployment, config: ConsumerConfig, critical: bool, lagging: bool
    ) -> bool:
        """``holds`` but for the memory (which the caller compares: ``vouches``, else
        ``durably_equal`` with ``memory``)."""
        c = self.certificate
        return (
            _KEPT.get(c.uid) is c
            and c.d() is d
            and c.config is config
            and c.critical is critical
            and c.lagging is lagging
        )

    def vouches(self, memory: Memory | None) -> bool:
        """Whether ``memory`` is known, by identity, to be ``durably_equal`` to this
        hold's and to read back as written (``memory.as_written`` gives it itself): the
        hold's own (``rules._hold`` makes a hold only of one that reads back), or the
        last one vouched for it (``vouch``). Why: the memory a steady pass reads is the
        one the last pass's hold gave, a new object every other pass (the peak
        rotates), and comparing it field by field, and checking that it reads back,
        was a third of the cost of a held pass."""
        return memory is self.memory or _VOUCHED.get(self.certificate.uid) is memory


_HELD: dict[str, Hold] = {}


def held(uid: str) -> Hold | None:
    """The last hold made for Deployment ``uid`` (``Hold.holds`` says whether it stands)."""
    return _HELD.get(uid)


def hold(made: Hold) -> None:
    """Remember ``made`` for its Deployment's UID (none without one), forgetting the
    memory vouched for the hold it replaces (``vouch``)."""
    uid = made.certificate.uid
    if not uid:
        return
    if len(_HELD) >= MAX_KEPT and uid not in _HELD:
        _HELD.clear()
        _VOUCHED.clear()
    _HELD[uid] = made
    _VOUCHED.pop(uid, None)


# The memory last vouched for the hold of each UID (``Hold.vouches``): one per hold.
_VOUCHED: dict[str, Memory] = {}


def vouch(made: Hold, memory: Memory) -> None:
    """Remember that ``memory`` is ``durably_equal`` to ``made``'s and reads back as
    written (the caller knows it: ``rules.held``), so that ``made.vouches`` it. For the
    hold kept for its UID only: one memory a UID, forgotten with the hold."""
    uid = made.certificate.uid
    if uid and _HELD.get(uid) is made:
        _VOUCHED[uid] = memory


# The galloping step at which ``_edge`` asks about the end of its range itself.
_FAR: Final = 1 << 8


def interval(
    *,
    holds: Callable[[int], bool],
    at: int,
    bottom: int,
    top: int,
    hint: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The widest ``[lo, hi]`` within ``[bottom, top]`` around ``at`` on which ``holds``
    is true, for a ``holds`` true at ``at`` and true on one interval of integers (the
    caller's monotone predicate). About 2·log2 of each end's distance from ``at`` calls;
    two per end when ``hint`` (a guess, such as the last interval found) has it right."""
    lo_hint, hi_hint = hint if hint is not None else (None, None)
    return (
        _edge(holds, at=at, end=bottom, hint=lo_hint),
        _edge(holds, at=at, end=top, hint=hi_hint),
    )


def _edge(holds: Callable[[int], bool], *, at: int, end: int, hint: int | None = None) -> int:
    """The last integer from ``at`` towards ``end`` (inclusive) before ``holds`` fails:
    the ``hint`` checked first (it and the next one out), then galloping out (steps 1,
    2, 4, ...) from the last integer known to hold to the first failure, and bisecting
    back."""
    sign = 1 if end >= at else -1
    good = at
    bad: int | None = None
    if hint is not None and sign * (hint - at) > 0 and sign * (end - hint) >= 0:
        if not holds(hint):
            bad = hint
        elif hint == end or not holds(hint + sign):
            return hint
        else:
            good = hint + sign
    step = 1
    while bad is None:
        if good == end:
            return good
        if step == _FAR and holds(end):
            # Far out, the end itself is asked once: an interval that reaches it (a
            # rate with no upper bound, ``TOP_RATE``) costs one call, not one per
            # doubling up to it (62); one that does not, one call more.
            return end
        probe = good + sign * step
        if sign * (probe - end) > 0:
            probe = end
        if holds(probe):
            good, step = probe, step * 2
        else:
            bad = probe
    # ``holds(good)`` and not ``holds(bad)``, one interval: the edge is between them.
    while abs(bad - good) > 1:
        middle = (good + bad) // 2
        if holds(middle):
            good = middle
        else:
            bad = middle
    return good
